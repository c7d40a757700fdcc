#!/usr/bin/env bash
# tests/role/molecule.sh — run molecule for the docker_firewall role inside throw-away network
# namespaces, so the role never touches this machine's own firewall, routes or links.
#
#   bash tests/role/molecule.sh [SCENARIO [MOLECULE-COMMAND [ARGS...]]]
#   bash tests/role/molecule.sh default            # molecule test -s default
#   bash tests/role/molecule.sh check              # molecule test -s check
#   bash tests/role/molecule.sh default converge   # any molecule command
#
# Topology (every namespace name starts with $PREFIX = dfwrole-<pid>; all are deleted at exit):
#
#   allowed 10.203.0.10 fd00:203::10 ─┐
#   denied  10.203.0.20 fd00:203::20 ─┼─ br0 in "sw" ─ eth0 of "host" 10.203.0.1 fd00:203::1
#                                     ┘                  (default routes via .254 / ::fe on eth0)
#   host: docker0 10.203.1.1/24 fd00:203:1::1/64 ── c1 10.203.1.2 fd00:203:1::2, TCP listener :80
#         answering "c1 <peer address>"
#
# molecule runs in "host" (ip netns exec), with /etc, /usr/local and /var/lib covered by throw-away overlays:
# whatever `molecule test` writes there is listed, and fails the run unless it is exactly the list in
# molecule/SCENARIO/writes (the watch service's files). The scenarios' prepare playbook loads Docker-like
# iptables rules (published 8080 and 9090 -> c1:80) there; verify probes from "allowed" and "denied"
# with real TCP connections. Rules files go to a temporary directory ($DFW_ROLE_WORK).
#
# Environment: DFW_ROLE_KEEP=1 keeps the work directory; DFW_ROLE_WORK sets it.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SCENARIO=${1:-default}
shift || true
[ $# -gt 0 ] || set -- test

say() { printf 'role-molecule: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 2; }

[ "$(id -u)" = 0 ] || die "run as root (creates network namespaces)"
[ -f "$ROOT/molecule/$SCENARIO/molecule.yml" ] || die "no scenario molecule/$SCENARIO"
[ -x "$ROOT/.venv/bin/molecule" ] || die "no .venv/bin/molecule (run scripts/setup)"
[ -x "$ROOT/roles/docker_firewall/library/docker_firewall" ] ||
    die "roles/docker_firewall/library/docker_firewall is missing (scripts/setup copies library/docker_firewall there)"
for b in ip socat iptables-save ip6tables-save; do
    command -v "$b" >/dev/null 2>&1 || die "$b not found"
done

PREFIX=dfwrole-$$
NS_SW=$PREFIX-sw NS_HOST=$PREFIX-host NS_C1=$PREFIX-c1 NS_ALLOWED=$PREFIX-allowed NS_DENIED=$PREFIX-denied
NAMESPACES=("$NS_SW" "$NS_HOST" "$NS_C1" "$NS_ALLOWED" "$NS_DENIED")
PIDS=()
if [ -n "${DFW_ROLE_WORK:-}" ]; then
    WORK=$DFW_ROLE_WORK
    mkdir -p "$WORK" || die "cannot create $WORK"
else
    WORK=$(mktemp -d "/tmp/dfwrole-$SCENARIO.XXXXXX") || die "mktemp failed"
    WORK_CREATED=1
fi

# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    local pid ns
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    for ns in "${NAMESPACES[@]}"; do
        [ -e "/run/netns/$ns" ] || continue
        # socat's per-connection children, if any are left: by PID, only those in our namespaces
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    if [ -n "${WORK_CREATED:-}" ] && [ -z "${DFW_ROLE_KEEP:-}" ]; then
        # the overlay upper dir lives on a tmpfs mounted in molecule's private mount namespace,
        # gone with it; what is left here are plain files
        rm -rf "$WORK"
    elif [ -n "${DFW_ROLE_KEEP:-}" ]; then
        say "kept $WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- topology
nsx() { ip netns exec "$@"; }
sysctl_ns() { # <ns> key=value...
    local ns=$1 kv
    shift
    for kv in "$@"; do nsx "$ns" sh -c "echo ${kv#*=} >/proc/sys/${kv%%=*}" || return 1; done
}
mkns() {
    ip netns add "$1" && ip -n "$1" link set lo up &&
        sysctl_ns "$1" net/ipv6/conf/all/accept_dad=0 net/ipv6/conf/default/accept_dad=0
}
# outside <ns> <v4> <v6> <switch port>: a veth from the namespace's eth0 into the switch bridge
outside() {
    ip -n "$NS_SW" link add "$4" type veth peer name eth0 netns "$1" &&
        ip -n "$NS_SW" link set "$4" master br0 up &&
        ip -n "$1" addr add "$2/24" dev eth0 &&
        ip -n "$1" addr add "$3/64" dev eth0 nodad &&
        ip -n "$1" link set eth0 up
}
build() {
    local ns
    for ns in "${NAMESPACES[@]}"; do mkns "$ns" || return 1; done
    ip -n "$NS_SW" link add br0 type bridge && ip -n "$NS_SW" link set br0 up || return 1
    outside "$NS_HOST" 10.203.0.1 fd00:203::1 p-host || return 1
    outside "$NS_ALLOWED" 10.203.0.10 fd00:203::10 p-allowed || return 1
    outside "$NS_DENIED" 10.203.0.20 fd00:203::20 p-denied || return 1
    # the host's external interface is the one holding the default routes (the module's default)
    ip -n "$NS_HOST" route add default via 10.203.0.254 dev eth0 onlink || return 1
    ip -n "$NS_HOST" -6 route add default via fd00:203::fe dev eth0 onlink || return 1
    sysctl_ns "$NS_HOST" net/ipv4/ip_forward=1 net/ipv6/conf/all/forwarding=1 || return 1
    # docker0 and one "container"
    ip -n "$NS_HOST" link add docker0 type bridge &&
        ip -n "$NS_HOST" addr add 10.203.1.1/24 dev docker0 &&
        ip -n "$NS_HOST" addr add fd00:203:1::1/64 dev docker0 nodad &&
        ip -n "$NS_HOST" link set docker0 up || return 1
    ip -n "$NS_HOST" link add vethc1 type veth peer name eth0 netns "$NS_C1" &&
        ip -n "$NS_HOST" link set vethc1 master docker0 up &&
        ip -n "$NS_C1" addr add 10.203.1.2/24 dev eth0 &&
        ip -n "$NS_C1" addr add fd00:203:1::2/64 dev eth0 nodad &&
        ip -n "$NS_C1" link set eth0 up &&
        ip -n "$NS_C1" route add default via 10.203.1.1 &&
        ip -n "$NS_C1" -6 route add default via fd00:203:1::1 || return 1
    # the container's service: one line "c1 <peer>" per connection, IPv4 and IPv6
    # shellcheck disable=SC2016  # $SOCAT_PEERADDR is expanded by the shell socat starts
    nsx "$NS_C1" socat TCP4-LISTEN:80,fork,reuseaddr SYSTEM:'echo c1 $SOCAT_PEERADDR' \
        >"$WORK/c1-4.log" 2>&1 </dev/null &
    PIDS+=($!)
    # shellcheck disable=SC2016
    nsx "$NS_C1" socat TCP6-LISTEN:80,fork,reuseaddr,ipv6only=1 SYSTEM:'echo c1 $SOCAT_PEERADDR' \
        >"$WORK/c1-6.log" 2>&1 </dev/null &
    PIDS+=($!)

    for _ in $(seq 1 100); do
        [ "$(nsx "$NS_C1" ss -Hltn 'sport = :80' 2>/dev/null | wc -l)" -ge 2 ] && return 0
        sleep 0.05
    done
    say "the container's listeners did not come up"
    return 1
}

build || die "cannot build the namespaces"
say "namespaces $PREFIX-{sw,host,c1,allowed,denied} ready; work dir $WORK"

# ---------------------------------------------------------------- molecule, inside "host"
mkdir -p "$WORK/overlay" "$WORK/home" "$WORK/cache" "$WORK/tmp"
DFW_ROLE_OUTER_NETNS=$(readlink /proc/self/ns/net) || die "cannot read this process's network namespace"
export DFW_ROLE_OUTER_NETNS
export DFW_ROLE_WORK=$WORK DFW_ROLE_NS_HOST=$NS_HOST DFW_ROLE_NS_ALLOWED=$NS_ALLOWED DFW_ROLE_NS_DENIED=$NS_DENIED
export DFW_ROLE_HOST4=10.203.0.1 DFW_ROLE_HOST6=fd00:203::1
export DFW_ROLE_ALLOWED4=10.203.0.10 DFW_ROLE_ALLOWED6=fd00:203::10
export DFW_ROLE_DENIED4=10.203.0.20 DFW_ROLE_DENIED6=fd00:203::20
export DFW_ROLE_C1_4=10.203.1.2 DFW_ROLE_C1_6=fd00:203:1::2
export DFW_ROLE_SUBNET4=10.203.1.0/24 DFW_ROLE_SUBNET6=fd00:203:1::/64

# shellcheck disable=SC2016  # expanded by the inner shell
nsx "$NS_HOST" env \
    PATH="$ROOT/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    VIRTUAL_ENV="$ROOT/.venv" \
    ANSIBLE_HOME="$WORK/home" XDG_CACHE_HOME="$WORK/cache" \
    ANSIBLE_LOCAL_TEMP="$WORK/tmp" ANSIBLE_REMOTE_TEMP="$WORK/tmp" ANSIBLE_ASYNC_DIR="$WORK/async" \
    ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 NO_COLOR=1 PY_COLORS=0 \
    LANG=C.UTF-8 LC_ALL=C.UTF-8 \
    bash -c '
    set -u
    ovl=$DFW_ROLE_WORK/overlay
    # ip netns exec gave us a private mount namespace (mounts do not propagate back): cover /etc,
    # /usr/local (the role installs its service there) and /var/lib (its state) for this process tree only
    mount -t tmpfs dfwrole-etc "$ovl" || { echo "role-molecule: cannot mount a tmpfs for the overlays" >&2; exit 97; }
    for d in /etc /usr/local /var/lib; do
        n=$(echo "$d" | tr / _)
        mkdir "$ovl/u$n" "$ovl/w$n" &&
            mount -t overlay dfwrole-etc -o "lowerdir=$d,upperdir=$ovl/u$n,workdir=$ovl/w$n" "$d" ||
            { echo "role-molecule: cannot cover $d with an overlay" >&2; exit 97; }
    done
    cd "$1" || exit 1
    shift
    scenario=$1
    shift
    cmd=$1
    shift
    molecule "$cmd" -s "$scenario" "$@"
    rc=$?
    # what the run wrote there must be listed in molecule/SCENARIO/writes (the service files), if anything
    writes=$(for d in /etc /usr/local /var/lib; do
        (cd "$ovl/u$(echo "$d" | tr / _)" && find . -mindepth 1 ! -type d | sed "s|^\.|$d|")
    done | sort)
    expected=$(sed "/^#/d; /^$/d" "molecule/$scenario/writes" 2>/dev/null | sort)
    unexpected=$(comm -23 <(echo "$writes") <(echo "$expected") | sed "/^$/d")
    if [ -n "$unexpected" ]; then
        echo "role-molecule: the run wrote under /etc, /usr/local or /var/lib (kept out of the real ones by the overlay):" >&2
        echo "$unexpected" >&2
        echo "role-molecule: the scenario expects only (molecule/$scenario/writes):" >&2
        echo "${expected:-(nothing)}" >&2
        [ "$rc" = 0 ] && rc=98
    fi
    exit "$rc"
' molecule-in-netns "$ROOT" "$SCENARIO" "$@" </dev/null
rc=$?
say "molecule $* -s $SCENARIO: exit $rc"
exit "$rc"
