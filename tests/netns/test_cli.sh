#!/usr/bin/env bash
# The command line: --help, SUB --help and --version; `apply --policy FILE` exit codes (2 changed, 0 no
# change, 1 failed with a message naming the field and the ruleset unchanged); --check changes nothing
# and predicts 2/0 exactly (fresh host, applied host, a new policy, drift); --diff prints the diff;
# --json prints the module's JSON result; the Ansible form `docker_firewall ARGS_FILE` still works and
# agrees with `apply` on the same options.
# layouts: docker20 docker28
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_need_bin

# cli <name> args... — dfw_exec with its own artifact names
cli() {
    T_SEQ=$((T_SEQ + 1))
    dfw_exec "$@"
}
cli_show() { echo "rc=$DFW_RC"; echo "stdout: $(head -c 1500 "$DFW_OUT")"; echo "stderr: $(head -c 800 "$DFW_ERR")"; }
# t_rc <name> <expected rc> — the last cli run's exit status
t_rc() { t_eq "$1" "$2" "$DFW_RC" "$(cli_show)"; }

# ---------------------------------------------------------------- help, version (harmless anywhere)
out=$("$DFW_BIN" --help 2>&1)
rc=$?
t_eq "--help exits 0" 0 "$rc" "$out"
t_match "--help names the subcommands apply and watch" 'apply' "$(grep -w apply <<<"$out")"
t_match "--help names watch" 'watch' "$(grep -w watch <<<"$out")"
t_match "--help names the Ansible form (ARGS_FILE)" '(ARGS|args)[_ -]?(FILE|file)|Ansible' "$out"
out=$("$DFW_BIN" apply --help 2>&1)
rc=$?
t_eq "apply --help exits 0" 0 "$rc" "$out"
for o in --policy --check --diff --json; do
    t_match "apply --help documents $o" "$o" "$out"
done
out=$("$DFW_BIN" watch --help 2>&1)
rc=$?
t_eq "watch --help exits 0" 0 "$rc" "$out"
for o in --policy --resync --docker-socket; do
    t_match "watch --help documents $o" "$o" "$out"
done
out=$("$DFW_BIN" --version 2>&1)
rc=$?
t_eq "--version exits 0" 0 "$rc" "$out"
t_match "--version prints a version" '[0-9]+\.[0-9]+' "$out"

t_lab_up
lab_foreign_rules || not_ok "foreign rules loaded"

# ---------------------------------------------------------------- usage errors (in the lab)
dfw_policy "$T_DIR/p1.json"
# t_usage_rc <name> — a usage error: neither 0 (no change) nor 2 (changed); 64 (EX_USAGE) or 1
t_usage_rc() {
    case $DFW_RC in
        0 | 2) not_ok "$1: exit status neither 0 nor 2 (would read as a successful run)" "$(cli_show)" ;;
        *) ok "$1: exit $DFW_RC (neither 0 nor 2)" ;;
    esac
}
cli apply
t_usage_rc "apply without --policy"
t_match "apply without --policy: stderr names --policy" 'policy' "$(cat "$DFW_ERR")"
cli apply --policy "$T_DIR/p1.json" --bogus-flag
t_usage_rc "apply with an unknown flag"
t_match "apply with an unknown flag: stderr names it" 'bogus-flag' "$(cat "$DFW_ERR")"

# ---------------------------------------------------------------- a fresh host
P1=$T_DIR/p1.json
P2=$T_DIR/p2.json
dfw_policy "$P2" "$(jq -cn --arg a4 "$ALLOWED4" --arg a6 "$ALLOWED6" \
    '{ingress: {allow: [{ports: [8080, 8081], proto: "tcp", sources: [$a4, $a6], comment: "web v2"}]}}')"
snap "$T_DIR/s0"
cli apply --policy "$P1" --check
t_rc "fresh host: --check predicts a change (exit 2)" 2
snap "$T_DIR/s"
t_same "fresh host: --check leaves iptables-save identical" "$T_DIR/s0" "$T_DIR/s"

cli apply --policy "$P1"
t_rc "apply P1: exit 2 (changed)" 2
t_match "apply P1: a human summary on stdout" '[[:alpha:]]' "$(cat "$DFW_OUT")"
t_eq "apply P1: stdout is not the module's JSON" "" "$(jq -e 'type == "object"' "$DFW_OUT" 2>/dev/null)"
snap "$T_DIR/p1-applied"
t_match "apply P1: owned rules are live" 'docker_firewall:' "$(ipt_save; ipt6_save)"
mapfile -t P < <(reach_specs allowed dnat 8080; reach_specs denied closed 8080 8443)
T_PRE="apply P1: " expect_probes "${P[@]}"
grep -E 'foreign:|ufw-' "$T_DIR/s0" >"$T_DIR/foreign0"
{ lab_foreign_lines 4; lab_foreign_lines 6; } >"$T_DIR/foreign1"
t_same "apply P1: foreign rules intact" "$T_DIR/foreign0" "$T_DIR/foreign1"

cli apply --policy "$P1"
t_rc "apply P1 again: exit 0 (no change)" 0
snap "$T_DIR/s"
t_same "apply P1 again: iptables-save identical" "$T_DIR/p1-applied" "$T_DIR/s"
cli apply --policy "$P1" --check
t_rc "applied host: --check predicts no change (exit 0)" 0

# the Ansible form on the same options agrees
if t_dfw_ok "Ansible form (ARGS_FILE) with P1's options: runs" '{"persist":false}'; then
    t_changed "Ansible form with P1's options: changed=false (same state as apply)" false
    t_eq "Ansible form: exit 0" 0 "$DFW_RC"
fi
if t_dfw_ok "Ansible form (ARGS_FILE), check mode, P2's options: runs" \
    "$(jq -c '. + {_ansible_check_mode: true}' "$P2")"; then
    t_changed "Ansible form, check mode, P2: changed=true" true
fi
snap "$T_DIR/s"
t_same "Ansible form runs: iptables-save identical" "$T_DIR/p1-applied" "$T_DIR/s"

# ---------------------------------------------------------------- a new policy: --check, --diff
cli apply --policy "$P2" --check --diff
t_rc "P2 --check --diff: exit 2" 2
t_match "P2 --check --diff: the diff adds port 8081" '^\+.*8081' "$(cat "$DFW_OUT")"
t_match "P2 --check --diff: the diff removes P1's comment" '^-.*web from allowed' "$(cat "$DFW_OUT")"
snap "$T_DIR/s"
t_same "P2 --check --diff: iptables-save identical" "$T_DIR/p1-applied" "$T_DIR/s"

cli apply --policy "$P2" --diff
t_rc "P2 --diff: exit 2" 2
t_match "P2 --diff: the diff adds port 8081" '^\+.*8081' "$(cat "$DFW_OUT")"
t_match "P2 --diff: the diff adds P2's comment" '^\+.*web v2' "$(cat "$DFW_OUT")"
t_match "P2 --diff: port 8081 is live" 'dport(s)? [0-9,:]*8081|8081' "$(ipt_save | grep 'docker_firewall:')"
snap "$T_DIR/p2-applied"
cli apply --policy "$P2" --check --diff
t_rc "P2 applied: --check --diff exit 0" 0
t_eq "P2 applied: --check --diff prints no added or removed rule" "" \
    "$(grep -E '^[-+][^-+]' "$DFW_OUT" | grep -E 'docker_firewall|-A ' | head -5)"

# ---------------------------------------------------------------- --json
cli apply --policy "$P1" --json
t_rc "P1 --json: exit 2" 2
t_eq "P1 --json: stdout is one JSON object" 1 "$(jq -s 'map(select(type == "object")) | length' "$DFW_OUT" 2>/dev/null)" "$(cli_show)"
t_eq "P1 --json: changed=true" true "$(jq -r .changed "$DFW_OUT" 2>/dev/null)"
t_eq "P1 --json: not failed" false "$(jq -r '.failed // false' "$DFW_OUT" 2>/dev/null)"
t_match "P1 --json: carries the module's rules" 'docker_firewall:' "$(jq -r '.rules.ipv4 // empty' "$DFW_OUT" 2>/dev/null)"
snap "$T_DIR/s"
t_same "P1 --json: the same state as apply P1" "$T_DIR/p1-applied" "$T_DIR/s"
cli apply --policy "$P1" --json --check
t_rc "P1 --json --check on P1: exit 0" 0
t_eq "P1 --json --check on P1: changed=false" false "$(jq -r .changed "$DFW_OUT" 2>/dev/null)"
cli apply --policy "$P2" --json --check
t_rc "P2 --json --check on P1: exit 2" 2
t_eq "P2 --json --check on P1: changed=true" true "$(jq -r .changed "$DFW_OUT" 2>/dev/null)"

# ---------------------------------------------------------------- drift: the hook deleted
hook=$(first_rule 4 filter DOCKER-USER)
if grep -q 'docker_firewall:' <<<"$hook"; then
    eval "ipt ${hook/-A DOCKER-USER/-D DOCKER-USER}"
    snap "$T_DIR/drift"
    cli apply --policy "$P1" --check
    t_rc "hook deleted: --check predicts a change (exit 2)" 2
    snap "$T_DIR/s"
    t_same "hook deleted: --check leaves iptables-save identical" "$T_DIR/drift" "$T_DIR/s"
    cli apply --policy "$P1"
    t_rc "hook deleted: apply repairs (exit 2)" 2
    snap "$T_DIR/s"
    t_same "hook deleted: apply restores P1's state exactly" "$T_DIR/p1-applied" "$T_DIR/s"
else
    not_ok "P1 puts its hook first in DOCKER-USER" "first rule: $hook"
fi

# ---------------------------------------------------------------- bad input
snap "$T_DIR/before-bad"
# name | policy text (a file's content; @missing = no file) | ERE the stderr must match (case-insensitive)
# shellcheck disable=SC2016
cases=(
    'port 70000|{"ingress":{"allow":[{"ports":[70000]}]}}|ports'
    'bad IPv4 source|{"ingress":{"allow":[{"ports":[8080],"sources":["987.65.432.1"]}]}}|sources'
    'unknown key|{"bogus_key":1}|bogus_key'
    'strategy unknown|{"strategy":"nat"}|strategy'
    'lock_timeout not a number|{"lock_timeout":"soon"}|lock_timeout'
    'external interface with a space|{"external_interfaces":["eth 0"]}|external_interfaces'
    'not JSON|{"ingress": [|json|parse|syntax|expected|eof'
    'not an object|[1, 2]|object|map|policy'
    'missing file|@missing|nonexistent-policy.json'
)
for c in "${cases[@]}"; do
    IFS='|' read -r name text re <<<"$c"
    re=${c#*|*|}
    f=$T_DIR/nonexistent-policy.json
    if [ "$text" != @missing ]; then
        f=$T_DIR/bad.json
        if [[ $text == '{'*'}' ]] && jq -e . >/dev/null 2>&1 <<<"$text"; then
            dfw_policy "$f" "$text"
        else
            printf '%s\n' "$text" >"$f"
        fi
    fi
    for mode in apply check json; do
        case $mode in
            apply) cli apply --policy "$f" ;;
            check) cli apply --policy "$f" --check ;;
            json) cli apply --policy "$f" --json ;;
        esac
        t_rc "bad input, $name ($mode): exit 1" 1
        if [ "$mode" = json ] && [ -s "$DFW_OUT" ]; then
            t_eq "bad input, $name (json): stdout is a failed JSON result" true "$(jq -r .failed "$DFW_OUT" 2>/dev/null)" "$(cli_show)"
            msg="$(jq -r '.msg // empty' "$DFW_OUT" 2>/dev/null) $(cat "$DFW_ERR")"
        else
            msg=$(cat "$DFW_ERR")
        fi
        if grep -Eiq -- "$re" <<<"$msg"; then ok "bad input, $name ($mode): the message names it"; else
            not_ok "bad input, $name ($mode): the message names it (/$re/)" "$(cli_show)" "policy: $(head -c 300 "$f" 2>/dev/null)"
        fi
    done
    snap "$T_DIR/s"
    t_same "bad input, $name: iptables-save unchanged" "$T_DIR/before-bad" "$T_DIR/s"
done

t_done
