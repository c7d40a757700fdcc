#!/usr/bin/env bash
# tests/ansible/case.sh CASE WORKDIR — one ansible-playbook test case.
#
# Must run as the only process of a fresh network namespace: run.sh starts it with
#   unshare --net --fork bash case.sh CASE WORKDIR
# and it refuses to run otherwise, so it can never touch the machine's own firewall.
# Prints "ok - ..." / "not ok - ..." lines; run.sh counts them.
# shellcheck disable=SC2016  # the bash -c snippets expand their own positional arguments
set -uo pipefail

CASE=${1:?case}
WORK=${2:?workdir}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VENV=$ROOT/.venv
export PATH="$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# ---------------------------------------------------------------- safety: fresh namespace only
if [ "$(readlink /proc/self/ns/net)" = "$(readlink /proc/1/ns/net)" ]; then
    echo "not ok - $CASE: refusing to run in the root network namespace (use run.sh)"
    exit 1
fi
if [ "${DFW_TEST_IN_NETNS:-}" != 1 ]; then
    echo "not ok - $CASE: run through tests/ansible/run.sh"
    exit 1
fi

mkdir -p "$WORK/rules" "$WORK/out" "$WORK/ansible-home" "$WORK/tmp"
export ANSIBLE_CONFIG="$HERE/ansible.cfg"
export ANSIBLE_LIBRARY="$ROOT/library"
export ANSIBLE_HOME="$WORK/ansible-home"
export ANSIBLE_LOCAL_TEMP="$WORK/tmp"
export ANSIBLE_REMOTE_TEMP="$WORK/tmp"
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_DEPRECATION_WARNINGS=0
export LANG=C.UTF-8 LC_ALL=C.UTF-8

FAILS=0
ok() { echo "ok - $CASE: $*"; }
notok() {
    echo "not ok - $CASE: $*"
    FAILS=$((FAILS + 1))
}
# check DESCRIPTION COMMAND... : ok when the command succeeds
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else notok "$what"; fi
}

# ---------------------------------------------------------------- the namespace's network
# An external interface holding the default routes (veth: the dummy link type may be missing),
# Docker's bridges, and a Docker 20.10-like ruleset. No packet is sent anywhere.
setup_net() {
    local backend=$1
    ip link set lo up &&
        ip link add eth0 type veth peer name eth0-peer &&
        ip link set eth0-peer up &&
        ip addr add 10.200.0.2/24 dev eth0 &&
        ip -6 addr add fd00:200::2/64 dev eth0 nodad &&
        ip link set eth0 up &&
        ip route add default via 10.200.0.1 dev eth0 &&
        ip -6 route add default via fd00:200::1 dev eth0 &&
        ip link add docker0 type bridge && ip link set docker0 up &&
        ip addr add 10.200.1.1/24 dev docker0 &&
        ip link add br-0123456789ab type bridge && ip link set br-0123456789ab up &&
        ip addr add 10.200.16.1/24 dev br-0123456789ab &&
        "iptables-$backend-restore" <"$HERE/fixtures/docker-20.10.v4.rules" &&
        "ip6tables-$backend-restore" <"$HERE/fixtures/docker-20.10.v6.rules"
}

# Every ruleset of the namespace, both backends and families, without counters and comments.
snapshot() {
    local t b
    for t in iptables ip6tables; do
        for b in nft legacy; do
            echo "### $t-$b"
            "$t-$b-save" 2>/dev/null | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]/[0:0]/'
        done
    done
}

# playbook LOG PLAYBOOK ARGS... : run ansible-playbook, output to LOG, bounded in time.
playbook() {
    local log=$1
    shift
    (cd "$HERE" && timeout --kill-after=10 300 ansible-playbook "$@") >"$log" 2>&1
}
show_log() {
    echo "# --- $1 (last 40 lines)"
    tail -n 40 "$1" | sed 's/^/#   /'
}

# nth_rule CMD TABLE CHAIN N : the Nth rule of a chain, as -S prints it
nth_rule() {
    "$1" -w -t "$2" -S "$3" 2>/dev/null | grep -E '^-A ' | sed -n "${4}p"
}

admin_rules_v4() {
    cat <<'EOF'
# the admin's own rules, which the module must keep
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -m comment --comment admin-ssh -j ACCEPT
COMMIT
EOF
}

# boot_load FILE RESTORE : FILE loads into an empty ruleset (as at boot, before Docker starts)
boot_load() {
    unshare --net bash -c '"$2" <"$1"' _ "$1" "$2" 2>"$WORK/out/boot-load.err"
}

# ---------------------------------------------------------------- cases
case_apply() { # apply twice (idempotent), check live rules and rules files, then state=absent
    local backend=$1 strategy=$2 v4 v6
    v4="iptables-$backend" v6="ip6tables-$backend"
    if ! setup_net "$backend"; then
        notok "namespace setup"
        return
    fi
    admin_rules_v4 >"$WORK/rules/rules.v4"
    snapshot >"$WORK/out/baseline"

    if playbook "$WORK/out/apply.log" apply.yml \
        -e "rules_dir=$WORK/rules out_dir=$WORK/out expected_backend=$backend strategy=$strategy"; then
        ok "apply: first run changed, second run not changed, results as documented (backend $backend)"
    else
        notok "apply (ansible-playbook apply.yml)"
        show_log "$WORK/out/apply.log"
    fi

    local want_hooks=()
    case $strategy in
        docker_user) want_hooks=("filter DOCKER-USER DFW-INGRESS") ;;
        prerouting) want_hooks=("nat PREROUTING DFW-GATE" "filter INPUT DFW-PROXY-GUARD") ;;
        both) want_hooks=("filter DOCKER-USER DFW-INGRESS" "nat PREROUTING DFW-GATE" "filter INPUT DFW-PROXY-GUARD") ;;
    esac
    local h table chain target cmd r
    for h in "${want_hooks[@]}"; do
        read -r table chain target <<<"$h"
        for cmd in "$v4" "$v6"; do
            r=$(nth_rule "$cmd" "$table" "$chain" 1)
            if [[ $r == *"-j $target"* && $r == *docker_firewall:* ]]; then
                ok "$cmd: first rule of $table $chain jumps to $target"
            else
                notok "$cmd: first rule of $table $chain jumps to $target (got: ${r:-nothing})"
            fi
        done
    done
    check "foreign rules kept (DOCKER-USER drop, INPUT ssh accept, Docker's DNAT)" \
        bash -c '"$1" -w -S DOCKER-USER | grep -q -- "-s 192.0.2.99/32 -j DROP" &&
                 "$1" -w -S INPUT | grep -q -- "--dport 22 -j ACCEPT" &&
                 "$1" -w -t nat -S DOCKER | grep -q -- "--to-destination 10.200.1.2:80" &&
                 "$2" -w -S DOCKER-USER | grep -q -- "-s 2001:db8::99/128 -j DROP"' _ "$v4" "$v6"
    check "allowed sources are in the policy chain (443 load balancers, 5432 app servers)" \
        bash -c 's=$("$1" -w -S); grep -q "192.0.2.10" <<<"$s" && grep -q "198.51.100.0/24" <<<"$s" &&
                 grep -q -- "--ctorigdstport 443" <<<"$s" && grep -q -- "--ctorigdstport 5432" <<<"$s" &&
                 s6=$("$2" -w -S); grep -q "2001:db8:10::/64" <<<"$s6" && ! grep -q "192.0.2.10" <<<"$s6"' \
        _ "$v4" "$v6"
    check "rules.v4 keeps the admin's rule and holds the module's block" \
        bash -c 'grep -q -- "--comment admin-ssh" "$1" && grep -q "docker_firewall" "$1" && grep -q "DFW-" "$1"' \
        _ "$WORK/rules/rules.v4"
    check "rules.v6 created with the module's block" grep -q "DFW-" "$WORK/rules/rules.v6"
    if boot_load "$WORK/rules/rules.v4" "iptables-$backend-restore" &&
        boot_load "$WORK/rules/rules.v6" "ip6tables-$backend-restore"; then
        ok "rules.v4/rules.v6 load into an empty ruleset (boot, before Docker)"
    else
        notok "rules.v4/rules.v6 load into an empty ruleset (boot, before Docker): $(head -c 300 "$WORK/out/boot-load.err")"
    fi

    snapshot >"$WORK/out/applied"
    if cmp -s "$WORK/out/baseline" "$WORK/out/applied"; then
        notok "apply left the live ruleset unchanged, so state=absent below proves nothing"
    fi

    if playbook "$WORK/out/absent.log" absent.yml -e "rules_dir=$WORK/rules out_dir=$WORK/out"; then
        ok "state=absent: first run changed, second run not changed"
    else
        notok "state=absent (ansible-playbook absent.yml)"
        show_log "$WORK/out/absent.log"
    fi
    snapshot >"$WORK/out/after-absent"
    if diff -u "$WORK/out/baseline" "$WORK/out/after-absent" >"$WORK/out/absent.diff"; then
        ok "state=absent restores the ruleset exactly (both backends, both families)"
    else
        notok "state=absent restores the ruleset exactly"
        sed 's/^/#   /' "$WORK/out/absent.diff" | head -40
    fi
    check "state=absent: rules.v4 keeps the admin's rule, module block gone" \
        bash -c 'grep -q -- "--comment admin-ssh" "$1" && ! grep -q "DFW-" "$1"' _ "$WORK/rules/rules.v4"
    check "state=absent: rules.v6 has no module block" bash -c '! grep -qs "DFW-" "$1"' _ "$WORK/rules/rules.v6"
}

case_check_diff() { # --check --diff on a fresh namespace: diff shown, nothing changed
    if ! setup_net nft; then
        notok "namespace setup"
        return
    fi
    snapshot >"$WORK/out/before"
    if playbook "$WORK/out/check.log" check.yml --check --diff -e "rules_dir=$WORK/rules out_dir=$WORK/out"; then
        ok "--check: module reports changed with a plan and persists nothing"
    else
        notok "--check (ansible-playbook --check --diff check.yml)"
        show_log "$WORK/out/check.log"
    fi
    snapshot >"$WORK/out/after"
    if diff -u "$WORK/out/before" "$WORK/out/after" >"$WORK/out/check.diff"; then
        ok "--check: iptables-save identical before and after (both backends, both families)"
    else
        notok "--check changed the live ruleset"
        sed 's/^/#   /' "$WORK/out/check.diff" | head -40
    fi
    check "--check: no rules file written" bash -c '[ -z "$(ls -A "$1")" ]' _ "$WORK/rules"
    check "--diff: ansible shows a unified diff adding the DFW- rules" \
        bash -c 'grep -q "^+++ after" "$1" && grep -qE "^\+.*DFW-INGRESS" "$1"' _ "$WORK/out/check.log"
}

case_bad_input() { # invalid arguments fail, naming the field, and change nothing
    if ! setup_net nft; then
        notok "namespace setup"
        return
    fi
    snapshot >"$WORK/out/before"
    if playbook "$WORK/out/bad.log" bad_input.yml -e "rules_dir=$WORK/rules out_dir=$WORK/out"; then
        ok "bad input fails naming the field (ingress.allow[0].sources[0], familes, strategy, ports)"
    else
        notok "bad input (ansible-playbook bad_input.yml)"
        show_log "$WORK/out/bad.log"
    fi
    local msg
    msg=$(jq -r '.bad_source.msg // empty' "$WORK/out/bad.json" 2>/dev/null)
    if [[ $msg == *"ingress.allow[0].sources[0]"* && $msg == *987.65.432.1* ]]; then
        ok "bad input: msg names the field and the value: $msg"
    else
        notok "bad input: msg for 987.65.432.1 names ingress.allow[0].sources[0] (got: ${msg:-nothing})"
    fi
    snapshot >"$WORK/out/after"
    check "bad input: ruleset unchanged" diff -q "$WORK/out/before" "$WORK/out/after"
    check "bad input: no rules file written" bash -c '[ -z "$(ls -A "$1")" ]' _ "$WORK/rules"
}

case_doc_examples() { # the EXAMPLES of library/docker_firewall.yml run, unchanged but for the rules files
    if ! setup_net nft; then
        notok "namespace setup"
        return
    fi
    if ! python3 -c 'import sys, yaml; open(sys.argv[2], "w").write(yaml.safe_load(open(sys.argv[1]))["EXAMPLES"])' \
        "$ROOT/library/docker_firewall.yml" "$WORK/out/examples-tasks.yml"; then
        notok "EXAMPLES extracted from library/docker_firewall.yml"
        return
    fi
    # become: true in the examples; here we are root already and sudo may be missing
    if playbook "$WORK/out/examples.log" examples.yml -e ansible_become=false \
        -e "rules_dir=$WORK/rules out_dir=$WORK/out"; then
        ok "every task in EXAMPLES runs ($(grep -c '^TASK \[' "$WORK/out/examples.log") tasks)"
    else
        notok "EXAMPLES (ansible-playbook examples.yml)"
        show_log "$WORK/out/examples.log"
    fi
    check "after the last example (state: absent) nothing owned is left" \
        bash -c '! iptables-nft-save | grep -q DFW- && ! ip6tables-nft-save | grep -q DFW- && ! grep -qs DFW- "$1"/*' \
        _ "$WORK/rules"
}

case "$CASE" in
    apply-nft) case_apply nft docker_user ;;
    both-legacy) case_apply legacy both ;;
    check-diff) case_check_diff ;;
    bad-input) case_bad_input ;;
    doc-examples) case_doc_examples ;;
    *)
        echo "not ok - unknown case $CASE"
        exit 2
        ;;
esac
[ "$FAILS" = 0 ]
