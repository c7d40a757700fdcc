#!/usr/bin/env bash
# tests/role/install.sh — the role's package installation (docker_firewall_install_packages: true) on
# this Debian machine, for real but thrown away: the role runs in a chroot whose root is an overlay
# of / with its upper layer on a tmpfs (in a private mount namespace), so apt, dpkg and debconf
# write nothing to the real system. Packages are downloaded first (the machine's network namespace,
# apt only); the playbook itself runs in a fresh network namespace with no network.
#
#   bash tests/role/install.sh        (root; needs the Debian mirrors)
#
# Checks (without the watch service, the path that installs iptables-persistent): --check installs
# nothing; a run installs iptables-persistent without prompting, with autosave_v4/v6 preseeded false
# and no dump of the live ruleset; a second run changes nothing; on a host with ufw the role stops
# before changing anything. With the service (the default) the role succeeds on the ufw host.
# Prints "ok - ..." / "not ok - ..." lines and "N passed, N failed".
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

if [ "${DFW_ROLE_INSTALL_INNER:-}" != 1 ]; then
    [ "$(id -u)" = 0 ] || { echo "not ok - run as root"; echo "0 passed, 1 failed"; exit 1; }
    [ -f /etc/debian_version ] || { echo "not ok - needs a Debian machine"; echo "0 passed, 1 failed"; exit 1; }
    BIN=${DFW_BIN:-$ROOT/library/docker_firewall}
    [ -x "$BIN" ] || { echo "not ok - $BIN missing (scripts/setup, or set DFW_BIN)"; echo "0 passed, 1 failed"; exit 1; }
    export BIN
    WORK=$(mktemp -d /tmp/dfwrole-install.XXXXXX) || exit 1
    trap 'rm -rf "$WORK"' EXIT
    # a private mount namespace: the overlay and every mount below vanish with it
    DFW_ROLE_INSTALL_INNER=1 WORK=$WORK unshare --mount --propagation private --fork bash "${BASH_SOURCE[0]}"
    exit $?
fi

# ---------------------------------------------------------------- inside the private mount namespace
PASSED=0
FAILED=0
ok() { echo "ok - install: $1"; PASSED=$((PASSED + 1)); }
not_ok() {
    echo "not ok - install: $1"
    FAILED=$((FAILED + 1))
    shift
    [ $# -gt 0 ] && printf '%s\n' "$@" | tail -n 40 | sed 's/^/# /'
    return 0
}
finish() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" = 0 ]
    exit $?
}

M=$WORK/root
mkdir -p "$WORK/layers" "$M"
if ! { mount -t tmpfs dfwrole-install "$WORK/layers" && mkdir "$WORK/layers/u" "$WORK/layers/w" &&
    mount -t overlay dfwrole-install -o "lowerdir=/,upperdir=$WORK/layers/u,workdir=$WORK/layers/w" "$M" &&
    mount -t proc proc "$M/proc" && mount --rbind /dev "$M/dev" && mount --rbind /sys "$M/sys" &&
    mount -t tmpfs run "$M/run" && mount -t tmpfs tmp "$M/tmp"; }; then
    not_ok "an overlay of / to install into"
    finish
fi
ok "an overlay of / to install into"

# this machine may have ufw installed (the host firewall suites use it): remove it in the overlay, in
# a fresh network namespace (its prerm stops ufw there only), so the test starts from a host without it
# shellcheck disable=SC2016  # a dpkg-query format, not a shell expansion
if [ "$(chroot "$M" dpkg-query -W -f='${db:Status-Status}' ufw 2>/dev/null)" = installed ]; then
    if out=$(chroot "$M" unshare --net --fork env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq ufw 2>&1); then
        ok "ufw removed from the overlay (the test starts without it)"
    else
        not_ok "ufw removed from the overlay (the test starts without it)" "$out"
        finish
    fi
fi

# the state of the real machine, to compare at the end
real_before=$(dpkg-query -W -f='${db:Status-Status}' iptables-persistent 2>/dev/null; ls -d /etc/iptables 2>/dev/null)

# downloads only (network: the machine's namespace; apt changes no firewall); ufw into a cache
# directory of its own, which apt's docker-clean hook (if any) does not empty. The fresh
# update-success-stamp tells the role's apt task (cache_valid_time) not to update again offline.
if out=$(chroot "$M" sh -c 'export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --download-only --no-install-recommends iptables iptables-persistent netfilter-persistent &&
    mkdir -p /var/cache/dfw-ufw/partial &&
    apt-get install -y -qq --download-only --no-install-recommends -o Dir::Cache::archives=/var/cache/dfw-ufw/ ufw &&
    mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/update-success-stamp' 2>&1); then
    ok "packages downloaded into the overlay"
else
    not_ok "packages downloaded into the overlay" "$out"
    finish
fi

P=/tmp/project
mkdir -p "$M$P/roles" "$M$P/library" "$M$P/home"
cp -r "$ROOT/roles/docker_firewall" "$M$P/roles/"
rm -rf "$M$P/roles/docker_firewall/library"
install -m 0755 "$BIN" "$M$P/library/docker_firewall"
# without the watch service (persist then defaults to true): the path that installs iptables-persistent
cat >"$M$P/site.yml" <<'EOF'
---
- name: Install and apply
  hosts: all
  gather_facts: false
  vars:
    docker_firewall_service: false
    docker_firewall_ingress:
      allow:
        - ports: [443]
          sources: [192.0.2.10]
  roles:
    - role: docker_firewall
EOF
printf '[all]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n' "$ROOT/.venv/bin/python" >"$M$P/hosts"

# In the chroot, in one fresh network namespace: --check --diff, a run, a second run; the output of
# run N goes to $P/runN.log, its exit status to $P/runN.rc, the package state after it to $P/runN.pkg.
# shellcheck disable=SC2016  # expanded by the inner shell
chroot "$M" unshare --net --fork env PATH="$ROOT/.venv/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    ANSIBLE_HOME="$P/home" ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 LANG=C.UTF-8 LC_ALL=C.UTF-8 P="$P" \
    sh -c '
    ip link set lo up && ip link add eth0 type veth peer name eth0-peer && ip link set eth0-peer up &&
        ip addr add 10.205.0.2/24 dev eth0 && ip link set eth0 up && ip route add default via 10.205.0.1 || exit 98
    # a live rule that an autosaving iptables-persistent would dump into rules.v4
    iptables -A INPUT -s 192.0.2.99/32 -j DROP -m comment --comment dfw-autosave-canary || exit 97
    cd "$P" || exit 1
    n=0
    for args in "--check --diff" "" ""; do
        n=$((n + 1))
        # shellcheck disable=SC2086
        timeout 900 ansible-playbook -i hosts site.yml $args >"run$n.log" 2>&1
        echo $? >"run$n.rc"
        dpkg-query -W -f="\${db:Status-Status}" iptables-persistent >"run$n.pkg" 2>/dev/null
    done' 2>&1
log() { cat "$M$P/run$1.log" 2>/dev/null; }
rc() { cat "$M$P/run$1.rc" 2>/dev/null; }
pkg() { cat "$M$P/run$1.pkg" 2>/dev/null; }

if [ "$(rc 1)" = 0 ] && [ "$(pkg 1)" != installed ] && grep -Eq 'changed=[1-9]' <<<"$(log 1)"; then
    ok "--check: reports the installation, installs nothing"
else
    not_ok "--check: reports the installation, installs nothing (exit $(rc 1), iptables-persistent: $(pkg 1))" "$(log 1)"
fi

if [ "$(rc 2)" = 0 ] && [ "$(pkg 2)" = installed ] && grep -q '"applied: ipv4: ' <<<"$(log 2)"; then
    ok "run: iptables-persistent installed, policy applied"
else
    not_ok "run: iptables-persistent installed, policy applied (exit $(rc 2), iptables-persistent: $(pkg 2))" "$(log 2)"
fi

sel=$(chroot "$M" debconf-show iptables-persistent 2>&1)
if grep -q 'autosave_v4: false' <<<"$sel" && grep -q 'autosave_v6: false' <<<"$sel"; then
    ok "debconf: autosave_v4 and autosave_v6 preseeded false"
else
    not_ok "debconf: autosave_v4 and autosave_v6 preseeded false" "$sel"
fi

# the rules file holds the module's block only: no iptables-save dump from the package's postinst
v4=$(cat "$M/etc/iptables/rules.v4" 2>&1)
if grep -q '^# BEGIN docker_firewall' <<<"$v4" && ! grep -q 'Generated by\|dfw-autosave-canary' <<<"$v4" &&
    [ "$(grep -c '^\*filter' <<<"$v4")" = 1 ]; then
    ok "/etc/iptables/rules.v4 (in the overlay) holds the module's block, no saved live ruleset"
else
    not_ok "/etc/iptables/rules.v4 (in the overlay) holds the module's block, no saved live ruleset" "$v4"
fi

if [ "$(rc 3)" = 0 ] && grep -Eq 'localhost +: ok=[0-9]+ +changed=0 ' <<<"$(log 3)"; then
    ok "second run: nothing changes (install tasks included)"
else
    not_ok "second run: nothing changes (install tasks included) (exit $(rc 3))" "$(log 3)"
fi

# shellcheck disable=SC2016  # a dpkg-query format, not a shell expansion
pkg_state() { chroot "$M" dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null; }

# a host with ufw: the role refuses to install iptables-persistent (which would remove ufw)
# (ufw installed from the download cache, in a fresh network namespace: its postinst changes no firewall)
out=$(chroot "$M" unshare --net --fork env DEBIAN_FRONTEND=noninteractive sh -c '
    apt-get install -y -qq --no-install-recommends -o Dir::Cache::archives=/var/cache/dfw-ufw/ ufw' 2>&1)
if [ "$(pkg_state ufw)" != installed ]; then
    not_ok "a host with ufw: set up" "$out"
else
    # shellcheck disable=SC2016  # expanded by the inner shell
    out=$(chroot "$M" unshare --net --fork env PATH="$ROOT/.venv/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        ANSIBLE_HOME="$P/home" ANSIBLE_NOCOLOR=1 LANG=C.UTF-8 LC_ALL=C.UTF-8 P="$P" sh -c '
        ip link set lo up && ip link add eth0 type veth peer name eth0-peer && ip link set eth0-peer up &&
            ip addr add 10.205.0.2/24 dev eth0 && ip link set eth0 up && ip route add default via 10.205.0.1 || exit 98
        cd "$P" && timeout 900 ansible-playbook -i hosts site.yml; echo "rc=$?"; iptables-save' 2>&1)
    if grep -q '^rc=2$' <<<"$out" && grep -q 'ufw is installed, and installing iptables-persistent would remove it' <<<"$out" &&
        ! grep -q 'DFW-' <<<"$out" &&
        [ "$(pkg_state ufw)" = installed ]; then
        ok "a host with ufw, no service: the role stops before installing or applying anything, ufw stays"
    else
        not_ok "a host with ufw, no service: the role stops before installing or applying anything, ufw stays" "$out"
    fi
    # the same host with the watch service (the default): iptables only, the service's files, ufw stays
    # shellcheck disable=SC2016  # expanded by the inner shell
    out=$(chroot "$M" unshare --net --fork env PATH="$ROOT/.venv/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        ANSIBLE_HOME="$P/home" ANSIBLE_NOCOLOR=1 LANG=C.UTF-8 LC_ALL=C.UTF-8 P="$P" sh -c '
        ip link set lo up && ip link add eth0 type veth peer name eth0-peer && ip link set eth0-peer up &&
            ip addr add 10.205.0.2/24 dev eth0 && ip link set eth0 up && ip route add default via 10.205.0.1 || exit 98
        cd "$P" && timeout 900 ansible-playbook -i hosts site.yml -e docker_firewall_service=true; echo "rc=$?"
        ls /usr/local/sbin/docker_firewall /etc/docker_firewall/policy.json /etc/systemd/system/docker-firewall.service
        iptables-save' 2>&1)
    if grep -q '^rc=0$' <<<"$out" && grep -q 'DFW-INGRESS' <<<"$out" &&
        grep -q '^/etc/systemd/system/docker-firewall.service$' <<<"$out" &&
        [ "$(pkg_state ufw)" = installed ]; then
        ok "a host with ufw, with the service: the role installs and applies, ufw stays"
    else
        not_ok "a host with ufw, with the service: the role installs and applies, ufw stays" "$out"
    fi
fi

real_after=$(dpkg-query -W -f='${db:Status-Status}' iptables-persistent 2>/dev/null; ls -d /etc/iptables 2>/dev/null)
if [ "$real_before" = "$real_after" ]; then
    ok "the real machine is untouched (iptables-persistent state, /etc/iptables)"
else
    not_ok "the real machine is untouched" "before: $real_before" "after: $real_after"
fi
finish
