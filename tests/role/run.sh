#!/usr/bin/env bash
# tests/role/run.sh — the docker_firewall role's tests: lint, argument spec, a copy of the role in
# another project, the watch service, hosts with ufw and with firewalld (a private D-Bus), and molecule
# (scenarios default and check, through tests/role/molecule.sh).
#
#   bash tests/role/run.sh
#   bash tests/role/run.sh service portable     # only these steps (function names)
#
# One line per step, "ok - ..." / "not ok - ..." (with the step's log as "# ..." lines on failure),
# then "N passed, N failed". Exit status non-zero when a step failed. DFW_ROLE_VERBOSE=1 shows the
# log of every step; DFW_BIN=FILE tests that binary (copied into the role's library/ first).
# Everything that reaches netfilter runs in a throw-away network namespace; rules files go to
# temporary directories.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT" || exit 1
export PATH="$ROOT/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 NO_COLOR=1 PY_COLORS=0 LANG=C.UTF-8 LC_ALL=C.UTF-8

# the namespaces this runs in: every test's own must differ (in_netns, unit_exec.py check)
DFW_ROLE_OUTER_NETNS=$(readlink /proc/self/ns/net) && DFW_ROLE_OUTER_MNTNS=$(readlink /proc/self/ns/mnt) || exit 1
export DFW_ROLE_OUTER_NETNS DFW_ROLE_OUTER_MNTNS
WORK=$(mktemp -d /tmp/dfwrole-run.XXXXXX) || exit 1
trap 'rm -rf "$WORK"' EXIT
PASSED=0
FAILED=0
N=0

# step NAME COMMAND... : run, log to a file, print ok/not ok (and the log's tail on failure)
# With arguments (function names), run.sh runs only those steps (and what they need).
ONLY="$*"
step() {
    local name=$1 log rc
    shift
    if [ -n "$ONLY" ] && [[ " $ONLY " != *" $1 "* ]] && [ "$1" != role_binary ] && [ "$1" != make_project ]; then
        return 0
    fi
    N=$((N + 1))
    log=$WORK/step-$N.log
    "$@" >"$log" 2>&1 </dev/null
    rc=$?
    if [ "$rc" = 0 ]; then
        echo "ok - $name"
        [ -z "${DFW_ROLE_VERBOSE:-}" ] || sed 's/^/# /' "$log"
        PASSED=$((PASSED + 1))
    else
        echo "not ok - $name (exit $rc)"
        tail -n "${DFW_ROLE_LOG_LINES:-60}" "$log" | sed 's/^/# /'
        FAILED=$((FAILED + 1))
    fi
    return "$rc"
}

# ---------------------------------------------------------------- the module binary in the role
# scripts/setup copies library/docker_firewall to roles/docker_firewall/library/docker_firewall;
# refresh the copy here too, so the tests never run a stale binary. DFW_BIN overrides the binary.
BIN=${DFW_BIN:-library/docker_firewall}
role_binary() {
    local src=$BIN dst=roles/docker_firewall/library/docker_firewall
    [ -x "$src" ] || { echo "$src is missing (run scripts/setup, or set DFW_BIN)"; return 1; }
    if ! cmp -s "$src" "$dst"; then
        mkdir -p "$(dirname "$dst")" && install -m 0755 "$src" "$dst.tmp" && mv -f "$dst.tmp" "$dst" || return 1
        echo "copied $src to $dst"
    fi
    cmp "$src" "$dst"
}

# ---------------------------------------------------------------- lint
shell_lint() {
    command -v shellcheck >/dev/null 2>&1 || { echo "shellcheck not installed: skipped"; return 0; }
    shellcheck -x -S warning tests/role/*.sh
}
yaml_lint() { yamllint -s roles molecule tests/role .yamllint .ansible-lint; }
ansible_lint() { ansible-lint roles/docker_firewall molecule tests/role/example; }
role_doc() {
    local out
    out=$(ansible-doc -t role -r roles docker_firewall) || return 1
    grep -q 'docker_firewall_ingress' <<<"$out" && grep -q 'docker_firewall_install_packages' <<<"$out"
}

# ---------------------------------------------------------------- playbooks in a fresh netns
# a project of its own: the role copied without its library/, the module in library/ beside the playbook
make_project() {
    local p=$WORK/project
    mkdir -p "$p/roles" "$p/library" "$p/home" "$p/tmp" "$p/rules" &&
        cp -r roles/docker_firewall "$p/roles/" && rm -rf "$p/roles/docker_firewall/library" &&
        install -m 0755 "$BIN" "$p/library/docker_firewall" || return 1
    cat >"$p/site.yml" <<EOF
---
- name: Close every published port but 8080 from 192.0.2.10
  hosts: all
  gather_facts: false
  vars:
    docker_firewall_install_packages: false
    docker_firewall_persist: true
    docker_firewall_rules_v4: $p/rules/rules.v4
    docker_firewall_rules_v6: $p/rules/rules.v6
    docker_firewall_ingress:
      allow:
        - ports: [8080]
          sources: [192.0.2.10]
  roles:
    - role: docker_firewall
EOF
    cat >"$p/bad.yml" <<'EOF'
---
- name: Misspelled role input
  hosts: all
  gather_facts: false
  vars:
    docker_firewall_install_packages: false
    docker_firewall_strategy: docker-user
    docker_firewall_ingress:
      allow:
        - port: [443]
  roles:
    - role: docker_firewall
EOF
    printf '[all]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n' "$ROOT/.venv/bin/python" >"$p/hosts"
}

# in_netns DIR SCRIPT : run bash SCRIPT in DIR, in a fresh network namespace with an external interface
# holding the default routes and a docker0 bridge (no Docker rules: the module warns and hooks anyway),
# and a private mount namespace where /etc, /usr/local and /var/lib are throw-away overlays (the
# role's service files and the service's state go there). $DIR/writes lists the files the script wrote there.
in_netns() {
    # shellcheck disable=SC2016  # expanded by the inner shell
    unshare --net --mount --propagation private --fork \
        env ROOT="$ROOT" ANSIBLE_HOME="$1/home" ANSIBLE_LOCAL_TEMP="$1/tmp" ANSIBLE_REMOTE_TEMP="$1/tmp" \
        bash -c '
        set -u
        # (not /proc/1/ns: unreadable where PID 1 holds capabilities this process lacks)
        [ -n "$DFW_ROLE_OUTER_NETNS" ] && [ "$(readlink /proc/self/ns/net)" != "$DFW_ROLE_OUTER_NETNS" ] || exit 99
        [ -n "$DFW_ROLE_OUTER_MNTNS" ] && [ "$(readlink /proc/self/ns/mnt)" != "$DFW_ROLE_OUTER_MNTNS" ] || exit 99
        ovl=$1/overlay
        mkdir -p "$ovl" && mount -t tmpfs dfwrole-ovl "$ovl" || exit 97
        for d in /etc /usr/local /var/lib; do
            n=$(echo "$d" | tr / _)
            mkdir "$ovl/u$n" "$ovl/w$n" &&
                mount -t overlay dfwrole-ovl -o "lowerdir=$d,upperdir=$ovl/u$n,workdir=$ovl/w$n" "$d" || exit 97
        done
        ip link set lo up &&
            ip link add eth0 type veth peer name eth0-peer && ip link set eth0-peer up &&
            ip addr add 10.204.0.2/24 dev eth0 && ip -6 addr add fd00:204::2/64 dev eth0 nodad &&
            ip link set eth0 up &&
            ip route add default via 10.204.0.1 && ip -6 route add default via fd00:204::1 &&
            ip link add docker0 type bridge && ip link set docker0 up || exit 98
        cd "$1" && eval "$2"
        rc=$?
        for d in /etc /usr/local /var/lib; do
            (cd "$ovl/u$(echo "$d" | tr / _)" && find . -mindepth 1 ! -type d | sed "s|^\.|$d|")
        done >"$1/writes"
        exit "$rc"' in-netns "$1" "$2"
}

# argument spec: bad input stops the play at the role's validation, before the module runs
bad_input() {
    local out rc
    # shellcheck disable=SC2016
    out=$(in_netns "$WORK/project" 'ansible-playbook -i hosts bad.yml; echo "rc=$?"; iptables-save; ip6tables-save')
    echo "$out"
    grep -q '^rc=2$' <<<"$out" &&
        grep -q 'Validating arguments against arg spec' <<<"$out" &&
        grep -q 'docker_firewall_strategy must be one of: docker_user, prerouting, both, got: docker-user' <<<"$out" &&
        grep -q 'docker_firewall_ingress.allow.port. Supported parameters include' <<<"$out" &&
        ! grep -q 'Apply the Docker firewall policy' <<<"$out" &&
        ! grep -q 'DFW-' <<<"$out"
}

# the role copied into another project, the module in library/ beside the playbook:
# applies, is idempotent, and check mode of a changed policy changes nothing
portable() {
    local out
    # shellcheck disable=SC2016
    out=$(in_netns "$WORK/project" '
        ansible-playbook -i hosts site.yml > run1.log 2>&1; echo "run1=$?"
        ansible-playbook -i hosts site.yml > run2.log 2>&1; echo "run2=$?"
        grep -qx "ReadWritePaths=$PWD/rules" /etc/systemd/system/docker-firewall.service && echo "rw=rules"
        jq -e ".persist == true" /etc/docker_firewall/policy.json >/dev/null && echo "policy=persist"
        iptables-save | sed -E "/^#/d; s/\[[0-9]+:[0-9]+\]//" > before-check.rules
        cp rules/rules.v4 before-check.v4
        ansible-playbook -i hosts site.yml --check --diff -e "{\"docker_firewall_ingress\": {\"allow\": [{\"ports\": [8443]}]}}" > run3.log 2>&1
        echo "run3=$?"
        iptables-save | sed -E "/^#/d; s/\[[0-9]+:[0-9]+\]//" > after-check.rules
        cmp -s before-check.rules after-check.rules && echo "live=unchanged"
        cmp -s before-check.v4 rules/rules.v4 && echo "file=unchanged"
        for f in run1 run2 run3; do echo "=== $f"; cat "$f.log"; done')
    echo "$out"
    local run1 run2 run3
    run1=$(sed -n '/^=== run1/,/^=== run2/p' <<<"$out")
    run2=$(sed -n '/^=== run2/,/^=== run3/p' <<<"$out")
    run3=$(sed -n '/^=== run3/,$p' <<<"$out")
    grep -q '^run1=0$' <<<"$out" && grep -q '^run2=0$' <<<"$out" && grep -q '^run3=0$' <<<"$out" &&
        grep -q '^live=unchanged$' <<<"$out" && grep -q '^file=unchanged$' <<<"$out" &&
        # persist set: the policy says so, and the service may write the rules files' directory
        grep -q '^rw=rules$' <<<"$out" && grep -q '^policy=persist$' <<<"$out" &&
        # run 1 changed (the module, the service's files), warned that Docker is not running, said what it did
        grep -Eq 'localhost +: ok=[0-9]+ +changed=[1-9] .*failed=0' <<<"$run1" &&
        grep -q "warning: Docker's chains were not found" <<<"$run1" &&
        grep -q '"applied: ipv4: ' <<<"$run1" &&
        # run 2 changed nothing
        grep -Eq 'localhost +: ok=[0-9]+ +changed=0 .*failed=0' <<<"$run2" &&
        # run 3 (--check --diff, another port) reported the change (rules, policy file) and showed the diff
        grep -Eq 'localhost +: ok=[0-9]+ +changed=2 .*failed=0' <<<"$run3" &&
        grep -q '"would apply: ' <<<"$run3" &&
        grep -q '^+++ after: ipv4 rules owned by docker_firewall' <<<"$run3" &&
        grep -q '^+.*--ctorigdstport 8443' <<<"$run3"
}

# ---------------------------------------------------------------- the watch service
# The role with the service (the default), in a fresh network namespace with /etc and /usr/local
# as throw-away overlays; the host has no systemd as PID 1, so the role installs and does not start.
# --check --diff on a fresh host reports the files and changes nothing; a run installs them (modes,
# content), the unit passes systemd-analyze verify, a changed policy rewrites the policy file only
# (the second run with nothing to change is molecule's idempotence step); the unit's ExecStart, run as systemd would (unit_exec.py), puts back
# a flushed chain and leaves the rules in place after SIGTERM; state absent removes files and rules.
service() {
    local p=$WORK/project out
    cat >"$p/svc.yml" <<EOF
---
- name: The role with its watch service
  hosts: all
  gather_facts: false
  vars:
    docker_firewall_install_packages: false
    docker_firewall_rules_v4: $p/rules/rules.v4
    docker_firewall_rules_v6: $p/rules/rules.v6
    docker_firewall_ingress:
      allow:
        - ports: [8080]
          sources: [192.0.2.10]
  roles:
    - role: docker_firewall
EOF
    # shellcheck disable=SC2016  # expanded by the inner shell
    out=$(in_netns "$p" '
        F="/usr/local/sbin/docker_firewall /etc/docker_firewall /etc/docker_firewall/policy.json /etc/systemd/system/docker-firewall.service"
        rules() { iptables-save | sed -E "/^#/d; s/\[[0-9]+:[0-9]+\]//"; }
        run() { ansible-playbook -i hosts svc.yml "$@"; }
        rm -f rules/rules.v4 rules/rules.v6
        run --check --diff > s1.log 2>&1; echo "s1=$?"
        for f in $F; do [ -e "$f" ] && echo "s1-exists=$f"; done
        echo "s1-dfw=$(rules | grep -c DFW-)"
        run > s2.log 2>&1; echo "s2=$?"
        stat -c "mode %n %a %U:%G" $F
        echo "=== policy"; cat /etc/docker_firewall/policy.json; echo "=== end"
        echo "=== unit"; cat /etc/systemd/system/docker-firewall.service; echo "=== end"
        systemd-analyze verify /etc/systemd/system/docker-firewall.service > verify.log 2>&1
        echo "verify=$? lines=$(wc -l < verify.log)"; cat verify.log
        cmp -s /usr/local/sbin/docker_firewall library/docker_firewall && echo "binary=same"
        run -e "{\"docker_firewall_ingress\": {\"allow\": [{\"ports\": [8443]}]}}" > s4.log 2>&1; echo "s4=$?"
        grep -q 8443 /etc/docker_firewall/policy.json && echo "policy=updated"
        rules > applied.rules
        iptables -F DFW-INGRESS-POLICY && echo "flushed=$(rules | grep -c "^-A DFW-INGRESS-POLICY")"
        python3 "$ROOT/tests/role/unit_exec.py" /etc/systemd/system/docker-firewall.service --run 2 > exec.log 2>&1
        echo "exec=$?"; cat exec.log
        stat -c "mode %n %a %U:%G" /var/lib/docker_firewall /var/lib/docker_firewall/*
        rules > after-exec.rules
        cmp -s applied.rules after-exec.rules && echo "after-exec=same"
        run -e docker_firewall_state=absent > s5.log 2>&1; echo "s5=$?"
        for f in $F /var/lib/docker_firewall rules/rules.v4 rules/rules.v6; do [ -e "$f" ] && echo "s5-exists=$f"; done
        echo "s5-dfw=$(rules | grep -c DFW-)"
        for f in s1 s2 s4 s5; do echo "=== $f"; cat "$f.log"; done')
    echo "$out"
    local s1 s2 s4 s5 policy
    s1=$(sed -n '/^=== s1$/,/^=== s2$/p' <<<"$out")
    s2=$(sed -n '/^=== s2$/,/^=== s4$/p' <<<"$out")
    s4=$(sed -n '/^=== s4$/,/^=== s5$/p' <<<"$out")
    s5=$(sed -n '/^=== s5$/,$p' <<<"$out")
    policy=$(sed -n '/^=== policy$/,/^=== end$/p' <<<"$out" | sed '1d;$d')
    # --check --diff on a fresh host: reports the files (their diff) and the rules, changes nothing
    grep -q '^s1=0$' <<<"$out" && ! grep -q '^s1-exists=' <<<"$out" && grep -q '^s1-dfw=0$' <<<"$out" &&
        grep -Eq 'localhost +: ok=[0-9]+ +changed=[4-9] .*failed=0' <<<"$s1" &&
        grep -q '^+ExecStart=/usr/local/sbin/docker_firewall watch --policy /etc/docker_firewall/policy.json' <<<"$s1" &&
        grep -q '^+    "persist": false' <<<"$s1" &&
        grep -q '"would apply: ' <<<"$s1" &&
        # the run installed the files with their modes, warned that no systemd runs here
        grep -q '^s2=0$' <<<"$out" &&
        grep -q '^mode /usr/local/sbin/docker_firewall 755 root:root$' <<<"$out" &&
        grep -q '^mode /etc/docker_firewall 700 root:root$' <<<"$out" &&
        grep -q '^mode /etc/docker_firewall/policy.json 600 root:root$' <<<"$out" &&
        grep -q '^mode /etc/systemd/system/docker-firewall.service 644 root:root$' <<<"$out" &&
        grep -q 'was installed but not started' <<<"$s2" &&
        grep -q '"applied: ipv4: ' <<<"$s2" &&
        jq -e --arg r "$p/rules" '.state == "present" and .persist == false and .rules_v4 == ($r + "/rules.v4")
            and .ingress.allow[0].ports == [8080] and .ingress.allow[0].sources == ["192.0.2.10"]
            and .strategy == "docker_user"' <<<"$policy" >/dev/null &&
        grep -q '^verify=0 lines=0$' <<<"$out" &&
        # the binary is the module's (a second run changing nothing: molecule's idempotence step)
        grep -q '^binary=same$' <<<"$out" &&
        # a changed policy: the policy file and the rules change, nothing else
        grep -q '^s4=0$' <<<"$out" && grep -q '^policy=updated$' <<<"$out" &&
        grep -Eq 'localhost +: ok=[0-9]+ +changed=2 .*failed=0' <<<"$s4" &&
        # the unit's command: ready (READY=1), repaired the flushed chain, exit 0 on SIGTERM, rules stay
        grep -q '^flushed=0$' <<<"$out" && grep -q '^exec=0$' <<<"$out" && grep -q '^after-exec=same$' <<<"$out" &&
        grep -q '^mode /var/lib/docker_firewall 700 root:root$' <<<"$out" &&
        # state absent: the service's files and the rules are gone
        grep -q '^s5=0$' <<<"$out" && ! grep -q '^s5-exists=' <<<"$out" && grep -q '^s5-dfw=0$' <<<"$out" &&
        grep -Eq 'localhost +: ok=[0-9]+ +changed=[2-9] .*failed=0' <<<"$s5"
}

# host_playbook FILE NAME — the role with the service and packages, 8080 for 192.0.2.10, on a host
# running NAME (ufw_host, firewalld_host)
host_playbook() {
    cat >"$1" <<EOF
---
- name: The role on a host with $2
  hosts: all
  gather_facts: false
  vars:
    docker_firewall_ingress:
      allow:
        - ports: [8080]
          sources: [192.0.2.10]
  roles:
    - role: docker_firewall
EOF
}

# A host with ufw enabled (this machine's ufw package, its /etc/ufw in the throw-away overlay), with an
# after.rules block in the style of ufw-docker that declares :DOCKER-USER (so `ufw reload` flushes the
# hook): the role, packages included (iptables only), succeeds with the service, and a --check --diff
# run then has nothing to change, ufw stays installed and active, iptables-persistent is not
# installed; after `ufw reload` the unit's command puts the rules back. Without the service and with
# persist, the role stops before installing anything (iptables-persistent would remove ufw).
ufw_host() {
    local p=$WORK/project out
    command -v ufw >/dev/null 2>&1 || { echo "ufw is not installed on this machine"; return 1; }
    host_playbook "$p/ufw.yml" ufw
    # shellcheck disable=SC2016  # expanded by the inner shell
    out=$(in_netns "$p" '
        owned() { iptables-save | grep -E "DFW-|docker_firewall:" | sed -E "s/\[[0-9]+:[0-9]+\]//"; }
        dpkg() { dpkg-query -W -f="\${db:Status-Status}" "$1" 2>/dev/null; }
        printf "%s\n" "# BEGIN a ufw-docker style block (tests/role/run.sh)" "*filter" ":ufw-user-forward - [0:0]" \
            ":DOCKER-USER - [0:0]" \
            "-A DOCKER-USER -j ufw-user-forward" "-A DOCKER-USER -j RETURN" "COMMIT" >> /etc/ufw/after.rules
        ufw --force enable >ufw.log 2>&1; echo "ufw-enable=$?"; cat ufw.log
        # the role'"'"'s apt task updates a cache older than an hour; this namespace has no network
        mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/update-success-stamp
        rm -f /etc/iptables/rules.v4 /etc/iptables/rules.v6
        run() { ansible-playbook -i hosts ufw.yml "$@"; }
        run > u1.log 2>&1; echo "u1=$?"
        run --check --diff > u3.log 2>&1; echo "u3=$?"
        echo "ufw=$(dpkg ufw) persistent=$(dpkg iptables-persistent)"
        ufw status | head -1
        [ -e /etc/iptables/rules.v4 ] && echo "rules-file=written"
        owned > applied.rules
        ufw reload >>ufw.log 2>&1; echo "reload=$? hooks-after-reload=$(iptables -S DOCKER-USER | grep -c docker_firewall:)"
        python3 "$ROOT/tests/role/unit_exec.py" /etc/systemd/system/docker-firewall.service --run 1 > exec.log 2>&1
        echo "exec=$?"; cat exec.log
        owned > after-exec.rules
        cmp -s applied.rules after-exec.rules && echo "after-exec=same"
        run -e docker_firewall_service=false > u4.log 2>&1; echo "u4=$?"
        echo "ufw=$(dpkg ufw) persistent=$(dpkg iptables-persistent)"
        for f in u1 u3 u4; do echo "=== $f"; cat "$f.log"; done')
    echo "$out"
    local u1 u3 u4
    u1=$(sed -n '/^=== u1$/,/^=== u3$/p' <<<"$out")
    u3=$(sed -n '/^=== u3$/,/^=== u4$/p' <<<"$out")
    u4=$(sed -n '/^=== u4$/,$p' <<<"$out")
    grep -q '^ufw-enable=0$' <<<"$out" &&
        grep -q '^u1=0$' <<<"$out" && grep -q '"applied: ipv4: ' <<<"$u1" &&
        grep -q 'TASK \[docker_firewall : Install iptables\]' <<<"$u1" &&
        # --check --diff of the same policy: nothing to change (packages, service files, rules)
        grep -q '^u3=0$' <<<"$out" && grep -Eq 'localhost +: ok=[0-9]+ +changed=0 .*failed=0' <<<"$u3" &&
        [ "$(grep -c '^ufw=installed persistent=not-installed$' <<<"$out")" = 2 ] &&
        grep -q '^Status: active$' <<<"$out" && ! grep -q '^rules-file=written$' <<<"$out" &&
        grep -q '^reload=0 hooks-after-reload=0$' <<<"$out" &&
        grep -q '^exec=0$' <<<"$out" && grep -q '^after-exec=same$' <<<"$out" &&
        grep -q '^u4=2$' <<<"$out" && grep -q 'ufw is installed, and installing iptables-persistent would remove it' <<<"$u4"
}

# A host with firewalld running (this machine's firewalld 1.3.3, its nftables backend, on a private system
# D-Bus; /etc/firewalld in the throw-away overlay, /run a tmpfs): the role with the service, packages
# included, succeeds and a --check --diff run has nothing to change; `firewall-cmd --reload` deletes
# every iptables-nft rule, ours included, and the unit's command puts them back. With
# docker_firewall_dataplane: nftables the role switches to our own table, a --check --diff run has
# nothing to change, and a reload leaves the table as it was. state: absent removes everything.
firewalld_host() {
    local p=$WORK/project out
    command -v firewalld >/dev/null 2>&1 && command -v dbus-daemon >/dev/null 2>&1 ||
        { echo "firewalld or dbus-daemon is not installed on this machine"; return 1; }
    host_playbook "$p/firewalld.yml" firewalld
    # shellcheck disable=SC2016  # expanded by the inner shell
    out=$(in_netns "$p" '
        owned() { iptables-save | grep -E "DFW-|docker_firewall:" | sed -E "s/\[[0-9]+:[0-9]+\]//"; }
        table() { nft list table inet docker_firewall 2>/dev/null; }
        mount -t tmpfs dfwrole-run /run && mkdir -p /run/dbus /run/firewalld /run/lock || exit 96
        dbus=$(dbus-daemon --system --fork --print-pid) || exit 95
        firewalld --nofork --nopid --log-target file --log-file "$PWD/firewalld.log" >/dev/null 2>&1 </dev/null &
        fw=$!
        trap '"'"'kill "$fw" "$dbus" 2>/dev/null; wait "$fw" 2>/dev/null'"'"' EXIT
        for _ in $(seq 100); do [ "$(firewall-cmd --state 2>/dev/null)" = running ] && break; sleep 0.2; done
        echo "firewalld=$(firewall-cmd --state 2>&1)"
        mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/update-success-stamp
        rm -f /etc/iptables/rules.v4 /etc/iptables/rules.v6
        run() { ansible-playbook -i hosts firewalld.yml "$@"; }
        run > f1.log 2>&1; echo "f1=$?"
        run --check --diff > f2.log 2>&1; echo "f2=$?"
        owned > applied.rules; echo "owned-lines=$(wc -l < applied.rules)"
        firewall-cmd --reload >/dev/null 2>&1; echo "reload=$? owned-after-reload=$(owned | wc -l)"
        python3 "$ROOT/tests/role/unit_exec.py" /etc/systemd/system/docker-firewall.service --run 1 > exec.log 2>&1
        echo "exec=$?"
        owned > after-exec.rules
        cmp -s applied.rules after-exec.rules && echo "after-exec=same"
        run -e docker_firewall_dataplane=nftables > f3.log 2>&1; echo "f3=$? owned-after-switch=$(owned | wc -l)"
        run -e docker_firewall_dataplane=nftables --check --diff > f4.log 2>&1; echo "f4=$?"
        table | sed -E "s/(packets|bytes) [0-9]+/\\1 N/g" > table.before
        firewall-cmd --reload >/dev/null 2>&1; echo "reload2=$?"
        table | sed -E "s/(packets|bytes) [0-9]+/\\1 N/g" > table.after
        [ -s table.before ] && cmp -s table.before table.after && echo "table-after-reload=same"
        run -e docker_firewall_dataplane=nftables -e docker_firewall_state=absent > f5.log 2>&1
        echo "f5=$? table-left=$(table | wc -l) owned-left=$(owned | wc -l) unit-left=$(ls /etc/systemd/system/docker-firewall.service 2>/dev/null | wc -l)"
        echo "firewalld-still=$(firewall-cmd --state 2>&1)"
        for f in f1 f2 f3 f4 f5; do echo "=== $f"; cat "$f.log"; done
        echo "=== exec"; cat exec.log')
    echo "$out"
    local f2 f4
    f2=$(sed -n '/^=== f2$/,/^=== f3$/p' <<<"$out")
    f4=$(sed -n '/^=== f4$/,/^=== f5$/p' <<<"$out")
    grep -q '^firewalld=running$' <<<"$out" &&
        grep -q '^f1=0$' <<<"$out" && grep -q '^f2=0$' <<<"$out" &&
        grep -Eq 'localhost +: ok=[0-9]+ +changed=0 .*failed=0' <<<"$f2" &&
        grep -Eq '^owned-lines=[1-9]' <<<"$out" &&
        # the reload deletes our iptables rules (the hole the watch closes) ...
        grep -q '^reload=0 owned-after-reload=0$' <<<"$out" &&
        # ... and the unit's command puts them back
        grep -q '^exec=0$' <<<"$out" && grep -q '^after-exec=same$' <<<"$out" &&
        grep -q '^f3=0 owned-after-switch=0$' <<<"$out" &&
        grep -q '^f4=0$' <<<"$out" && grep -Eq 'localhost +: ok=[0-9]+ +changed=0 .*failed=0' <<<"$f4" &&
        grep -q '^reload2=0$' <<<"$out" && grep -q '^table-after-reload=same$' <<<"$out" &&
        grep -q '^f5=0 table-left=0 owned-left=0 unit-left=0$' <<<"$out" &&
        grep -q '^firewalld-still=running$' <<<"$out"
}

# ---------------------------------------------------------------- the example of docs/role.md
# tests/role/example holds the files docs/role.md shows; they must appear there verbatim
example_in_docs() {
    local f rc=0
    for f in inventory.ini group_vars/docker_hosts.yml site.yml; do
        # the file, without its YAML document start, indented by 4 or fenced, is a block of docs/role.md
        python3 - "tests/role/example/$f" docs/role.md <<'PY' || { echo "$f is not shown verbatim in docs/role.md"; rc=1; }
import sys
body = open(sys.argv[1]).read()
body = body[4:] if body.startswith("---\n") else body
docs = open(sys.argv[2]).read()
indented = "".join(("    " + l if l.strip() else l) for l in body.splitlines(True))
sys.exit(0 if (body in docs or indented in docs) else 1)
PY
    done
    return "$rc"
}

# the example runs as it is (the role with the module in its own library/), with the docker hosts
# replaced by this machine (local connection, in a fresh netns) and the rules files in a temp dir
example_runs() {
    local p=$WORK/example out
    mkdir -p "$p/roles" "$p/home" "$p/tmp" "$p/rules" && cp -r tests/role/example/. "$p/" &&
        cp -r roles/docker_firewall "$p/roles/" || return 1
    [ -x "$p/roles/docker_firewall/library/docker_firewall" ] || { echo "the role has no library/docker_firewall"; return 1; }
    jq -n --arg py "$ROOT/.venv/bin/python" --arg r "$p/rules" '{
        ansible_connection: "local", ansible_python_interpreter: $py, ansible_become: false,
        docker_firewall_install_packages: false,
        docker_firewall_rules_v4: ($r + "/rules.v4"), docker_firewall_rules_v6: ($r + "/rules.v6")}' >"$p/local.json" ||
        return 1
    # shellcheck disable=SC2016
    out=$(in_netns "$p" '
        run() { ansible-playbook -i inventory.ini site.yml --limit web1.example.com -e @local.json "$@"; }
        run --check --diff > run1.log 2>&1; echo "run1=$?"
        run --diff > run2.log 2>&1; echo "run2=$?"
        run > run3.log 2>&1; echo "run3=$?"
        echo "=== live"; iptables-save; ip6tables-save
        for f in run1 run2 run3; do echo "=== $f"; cat "$f.log"; done')
    echo "$out"
    local live run1 run3
    live=$(sed -n '/^=== live/,/^=== run1/p' <<<"$out")
    run1=$(sed -n '/^=== run1/,/^=== run2/p' <<<"$out")
    run3=$(sed -n '/^=== run3/,$p' <<<"$out")
    grep -q '^run1=0$' <<<"$out" && grep -q '^run2=0$' <<<"$out" && grep -q '^run3=0$' <<<"$out" &&
        grep -q '"would apply: ' <<<"$run1" &&
        grep -q '^+.*-s 192.0.2.10/32 -p tcp -m conntrack --ctorigdstport 443 .*load balancers' <<<"$run1" &&
        grep -q '^+.*-s 2001:db8:10::/64 -p tcp -m conntrack --ctorigdstport 443 .*load balancers' <<<"$run1" &&
        grep -q '^+.*-s 198.51.100.22/32 -p tcp -m conntrack --ctorigdstport 5432 .*app servers' <<<"$run1" &&
        grep -q -- '-A DFW-INGRESS-POLICY -s 192.0.2.11/32 -p tcp -m conntrack --ctorigdstport 443 ' <<<"$live" &&
        grep -q -- '-A DFW-INGRESS-POLICY -s 198.51.100.21/32 -p tcp -m conntrack --ctorigdstport 5432 ' <<<"$live" &&
        grep -Eq 'web1.example.com +: ok=[0-9]+ +changed=0 .*failed=0' <<<"$run3"
}

# ---------------------------------------------------------------- molecule
molecule_default() { bash tests/role/molecule.sh default test; }
molecule_check() {
    local rc
    bash tests/role/molecule.sh check test 2>&1 | tee "$WORK/molecule-check.log"
    rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || return "$rc"
    # the check action printed the module's diff (ansible-playbook --check --diff), and the service's
    grep -q '^+ExecStart=/usr/local/sbin/docker_firewall watch --policy /etc/docker_firewall/policy.json' \
        "$WORK/molecule-check.log" &&
        grep -q '^+    "persist": false' "$WORK/molecule-check.log" &&
        grep -q '^+++ after: ipv4 rules owned by docker_firewall' "$WORK/molecule-check.log" &&
        grep -q '^+++ after: ipv6 rules owned by docker_firewall' "$WORK/molecule-check.log" &&
        grep -q '"would apply: ' "$WORK/molecule-check.log"
}

if [ "$(id -u)" != 0 ]; then
    echo "not ok - run as root (network namespaces)"
    echo "0 passed, 1 failed"
    exit 1
fi

step "role library binary (roles/docker_firewall/library/docker_firewall = ${DFW_BIN:-library/docker_firewall})" role_binary
step "shellcheck tests/role" shell_lint
step "yamllint (.yamllint)" yaml_lint
step "ansible-lint, production profile (.ansible-lint)" ansible_lint
step "ansible-doc renders the role's argument spec" role_doc
if step "a project with the role copied and library/ beside the playbook" make_project; then
    step "argument spec stops misspelled role input before the module runs" bad_input
    step "copied role: applies, idempotent, --check --diff reports and changes nothing" portable
    step "the watch service: --check --diff, install, verify the unit, policy change, its command runs, absent removes" service
    step "a host with ufw enabled and a ufw-docker block: the role with the service, packages included" ufw_host
    step "a host with firewalld (nftables backend, private D-Bus): the role with the service, both dataplanes, reloads" firewalld_host
fi
step "docs/role.md shows the example files verbatim (tests/role/example)" example_in_docs
step "docs/role.md example runs: --check --diff previews, applies, idempotent" example_runs
if [ "${DFW_ROLE_INSTALL:-0}" = 1 ]; then
    step "package installation in a throw-away overlay of / (tests/role/install.sh)" bash tests/role/install.sh
else
    echo "# skipped: package installation test (DFW_ROLE_INSTALL=1 bash tests/role/run.sh; needs the Debian mirrors)"
fi
step "molecule test -s default (netns Docker host: converge, idempotence, real connections)" molecule_default
step "molecule test -s check (--check --diff changes nothing, reports the change)" molecule_check

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
