#!/usr/bin/env bash
# tests/package/deb_root.sh DEB — the Debian package installed into a throw-away Debian 12 root: an
# overlay of / with its upper layer on a tmpfs, in a private mount namespace, entered with chroot
# (as tests/role/install.sh does), so dpkg writes nothing to the real system. Every command that runs
# the binary runs in a fresh network namespace. There is no systemd in the root (no /run/systemd/system):
# the maintainer scripts skip systemctl, as in a container or debootstrap, and policy-rc.d blocks starts.
#
# Checks: the files and their modes, the unit enabled (deb-systemd-helper) but not started, the unit
# passes systemd-analyze verify, --help, man -l of every page, the example policy is valid (apply --check
# in a netns with Docker-like rules), remove keeps the state, purge leaves nothing but the admin's policy.
# Prints "ok - deb: ..." / "not ok - deb: ..." lines and "N passed, N failed".
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

if [ "${DFW_DEB_INNER:-}" != 1 ]; then
    DEB=${1:?usage: deb_root.sh DEB}
    DEB=$(readlink -f "$DEB")
    [ "$(id -u)" = 0 ] || { echo "not ok - deb: run as root"; echo "0 passed, 1 failed"; exit 1; }
    [ -f "$DEB" ] || { echo "not ok - deb: $DEB missing"; echo "0 passed, 1 failed"; exit 1; }
    WORK=$(mktemp -d /tmp/dfwpkg-deb.XXXXXX) || exit 1
    trap 'rm -rf "$WORK"' EXIT
    DFW_DEB_INNER=1 WORK=$WORK DEB=$DEB unshare --mount --propagation private --fork bash "${BASH_SOURCE[0]}"
    exit $?
fi

# ---------------------------------------------------------------- inside the private mount namespace
PASSED=0
FAILED=0
ok() { echo "ok - deb: $1"; PASSED=$((PASSED + 1)); }
not_ok() {
    echo "not ok - deb: $1"
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
check() { # check NAME OUTPUT CONDITION...: ok when the command CONDITION... succeeds
    local name=$1 out=$2
    shift 2
    if "$@"; then ok "$name"; else not_ok "$name" "$out"; fi
}

M=$WORK/root
U=$WORK/layers/u
mkdir -p "$WORK/layers" "$M"
if ! { mount -t tmpfs dfwpkg-deb "$WORK/layers" && mkdir "$U" "$WORK/layers/w" &&
    mount -t overlay dfwpkg-deb -o "lowerdir=/,upperdir=$U,workdir=$WORK/layers/w" "$M" &&
    mount -t proc proc "$M/proc" && mount --rbind /dev "$M/dev" && mount --rbind /sys "$M/sys" &&
    mount -t tmpfs run "$M/run" && mount -t tmpfs tmp "$M/tmp"; }; then
    not_ok "an overlay of / to install into"
    finish
fi
# the root must start without the package, and with starts blocked
# shellcheck disable=SC2016  # a dpkg-query format
if [ "$(chroot "$M" dpkg-query -W -f='${db:Status-Status}' docker-firewall 2>/dev/null)" = installed ] ||
    [ -e "$M/usr/sbin/docker_firewall" ] || [ -e "$M/lib/systemd/system/docker-firewall.service" ]; then
    not_ok "the root starts without docker-firewall" "$(ls -l "$M/usr/sbin/docker_firewall" "$M/lib/systemd/system/docker-firewall.service" 2>&1)"
    finish
fi
[ -x "$M/usr/sbin/policy-rc.d" ] || { printf '#!/bin/sh\nexit 101\n' >"$M/usr/sbin/policy-rc.d" && chmod 0755 "$M/usr/sbin/policy-rc.d"; }
ok "an overlay of / to install into, without docker-firewall, policy-rc.d blocking starts"

# the files in the upper layer that are not dpkg's or apt's bookkeeping (to find leftovers)
upper_files() {
    (cd "$U" && find . -mindepth 1 ! -type d | sed 's|^\.||' |
        grep -Ev '^/(var/lib/dpkg|var/log|var/cache|tmp|run|proc|dev|sys)/' | LC_ALL=C sort)
}
before=$(upper_files)

# in the chroot, in a fresh network namespace
in_root() { chroot "$M" unshare --net --fork env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

cp "$DEB" "$M/tmp/pkg.deb"
out=$(in_root env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/pkg.deb 2>&1)
rc=$?
# shellcheck disable=SC2016
status=$(chroot "$M" dpkg-query -W -f='${db:Status-Status}' docker-firewall 2>&1)
check "dpkg -i installs (exit $rc, $status), postinst says the service waits for a policy" "$out" \
    test "$rc" = 0 -a "$status" = installed
grep -q 'starts once /etc/docker_firewall/policy.json exists' <<<"$out" || not_ok "postinst message" "$out"

modes=$(cd "$M" && stat -c '%n %a %U:%G' usr/sbin/docker_firewall lib/systemd/system/docker-firewall.service \
    usr/share/man/man8/docker_firewall.8.gz usr/share/man/man8/docker_firewall-apply.8.gz \
    usr/share/man/man8/docker_firewall-watch.8.gz usr/share/doc/docker-firewall/examples/policy.json \
    usr/share/doc/docker-firewall/copyright usr/share/doc/docker-firewall/changelog.Debian.gz \
    usr/share/doc/docker-firewall/README.Debian 2>&1)
expected="usr/sbin/docker_firewall 755 root:root
lib/systemd/system/docker-firewall.service 644 root:root
usr/share/man/man8/docker_firewall.8.gz 644 root:root
usr/share/man/man8/docker_firewall-apply.8.gz 644 root:root
usr/share/man/man8/docker_firewall-watch.8.gz 644 root:root
usr/share/doc/docker-firewall/examples/policy.json 644 root:root
usr/share/doc/docker-firewall/copyright 644 root:root
usr/share/doc/docker-firewall/changelog.Debian.gz 644 root:root
usr/share/doc/docker-firewall/README.Debian 644 root:root"
check "the files are installed with their modes" "$modes" test "$modes" = "$expected"

elf=$(readelf -d "$M/usr/sbin/docker_firewall" 2>&1)
check "/usr/sbin/docker_firewall is static (no NEEDED)" "$elf" eval '! grep -q "(NEEDED)" <<<"$elf"'

unit=$(cat "$M/lib/systemd/system/docker-firewall.service")
check "the unit: ExecStart with the package's paths, ConditionPathExists on the policy" "$unit" eval '
    grep -qx "ExecStart=/usr/sbin/docker_firewall watch --policy /etc/docker_firewall/policy.json --resync 10 --state /var/lib/docker_firewall/published-ports.json" <<<"$unit" &&
    grep -qx "ConditionPathExists=/etc/docker_firewall/policy.json" <<<"$unit" &&
    grep -qx "Type=notify" <<<"$unit" && grep -qx "WantedBy=multi-user.target" <<<"$unit"'

link=$(readlink "$M/etc/systemd/system/multi-user.target.wants/docker-firewall.service" 2>&1)
check "enabled by deb-systemd-helper (multi-user.target.wants), not started (no state, policy-rc.d)" "$link" eval '
    [ "$link" = /lib/systemd/system/docker-firewall.service ] && [ ! -e "$M/var/lib/docker_firewall" ]'

out=$(chroot "$M" systemd-analyze verify /lib/systemd/system/docker-firewall.service 2>&1)
rc=$?
check "systemd-analyze verify the unit (exit $rc, no output)" "$out" test "$rc" = 0 -a -z "$out"

out=$(in_root docker_firewall --help 2>&1)
rc=$?
check "docker_firewall --help (in a netns)" "$out" eval '[ "$rc" = 0 ] && grep -q "^Usage: docker_firewall" <<<"$out" &&
    grep -q "^  apply" <<<"$out" && grep -q "^  watch" <<<"$out"'

# one page per subcommand that --help lists (so a new subcommand without its page is caught)
subs=$(sed -n '/^Commands:/,/^$/p' <<<"$out" | awk 'NR > 1 && $1 != "help" && NF { print $1 }' | tr '\n' ' ' | sed 's/ $//')
pages_ok=1
pages_out=""
for p in docker_firewall $(printf 'docker_firewall-%s ' $subs); do
    page=$(chroot "$M" env MANWIDTH=100 LANG=C.UTF-8 man -l "/usr/share/man/man8/$p.8.gz" 2>&1)
    pages_out+="=== $p"$'\n'"$page"$'\n'
    grep -q '^NAME' <<<"$page" && grep -q "^       $p" <<<"$page" || pages_ok=0
done
check "man -l renders every page (docker_firewall $subs)" "$pages_out" test "$pages_ok" = 1
grep -q -- '--state <FILE>' <<<"$pages_out" || not_ok "docker_firewall-watch(8) documents --state" "$pages_out"

# the example policy is valid: apply --check in a netns with Docker 20.10-like rules and an eth0
cp "$ROOT/tests/ansible/fixtures/docker-20.10.v4.rules" "$ROOT/tests/ansible/fixtures/docker-20.10.v6.rules" "$M/tmp/"
# shellcheck disable=SC2016  # expanded by the inner shell
out=$(in_root sh -c '
    ip link set lo up && ip link add eth0 type veth peer name eth0-peer && ip link set eth0 up &&
        ip addr add 10.206.0.2/24 dev eth0 && ip route add default via 10.206.0.1 || exit 98
    iptables-restore < /tmp/docker-20.10.v4.rules && ip6tables-restore < /tmp/docker-20.10.v6.rules || exit 97
    docker_firewall apply --policy /usr/share/doc/docker-firewall/examples/policy.json --check --diff; echo "rc=$?"
    echo "dfw=$(iptables-save | grep -c DFW-)"' 2>&1)
check "the example policy is valid (apply --check --diff: would change, changes nothing)" "$out" eval '
    grep -q "^rc=2$" <<<"$out" && grep -q "^dfw=0$" <<<"$out" && grep -q -- "--ctorigdstport 443" <<<"$out"'

# the admin's policy and the service's state, then remove: the binary and unit go, both stay
mkdir -p "$M/etc/docker_firewall" "$M/var/lib/docker_firewall"
cp "$M/usr/share/doc/docker-firewall/examples/policy.json" "$M/etc/docker_firewall/policy.json"
echo '{}' >"$M/var/lib/docker_firewall/published-ports.json"
out=$(in_root dpkg -r docker-firewall 2>&1)
rc=$?
check "dpkg -r: binary, unit, man pages gone; policy and state stay; the unit masked (exit $rc)" "$out" eval '
    [ "$rc" = 0 ] && [ ! -e "$M/usr/sbin/docker_firewall" ] && [ ! -e "$M/lib/systemd/system/docker-firewall.service" ] &&
    [ ! -e "$M/usr/share/man/man8/docker_firewall.8.gz" ] &&
    [ -e "$M/etc/docker_firewall/policy.json" ] && [ -e "$M/var/lib/docker_firewall/published-ports.json" ] &&
    [ "$(readlink "$M/etc/systemd/system/docker-firewall.service")" = /dev/null ]'

out=$(in_root dpkg --purge docker-firewall 2>&1)
rc=$?
# shellcheck disable=SC2016
status=$(chroot "$M" dpkg-query -W -f='${db:Status-Status}' docker-firewall 2>&1)
left=$(diff <(echo "$before") <(upper_files) | sed -n 's/^> //p' | grep -vx '/etc/docker_firewall/policy.json')
check "dpkg --purge: nothing left but the admin's policy (state, mask, enablement gone)" \
    "exit $rc, status $status; left: $left" eval '
    [ "$rc" = 0 ] && [ -z "$left" ] && [ ! -e "$M/var/lib/docker_firewall" ] &&
    [ ! -e "$M/etc/systemd/system/docker-firewall.service" ] &&
    [ ! -e "$M/etc/systemd/system/multi-user.target.wants/docker-firewall.service" ] &&
    [ -e "$M/etc/docker_firewall/policy.json" ]'

finish
