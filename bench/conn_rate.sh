#!/usr/bin/env bash
# bench/conn_rate.sh — new TCP connections per second through a Docker host's forward path to a
# published port, by the size of the allow list (issue 12). Run by hand, as root; not part of the
# test suite. Prints a Markdown report (docs/benchmarks.md holds one).
#
# Dataplanes, each with S allowed sources per family for the published port (two allow entries:
# 0 holds the IPv4 sources, 1 the IPv6 ones; the module takes at most 10,000 per entry), the
# client's network last (so rule by rule every new connection walks all S rules):
#   rules  the module's per-source layout (strategy docker_user): one RETURN rule per source in
#          DFW-INGRESS-POLICY (the sources split into entries of 99: from 100 the module uses an
#          ipset); on each backend of BACKENDS
#   ipset  the same, with those rules replaced by hand by one rule matching the hash:net ipsets
#          dfw-allow-0-v4 / dfw-allow-1-v6 (-m set --match-set NAME src); on each backend
#   nft    a table `inet docker_firewall` with interval sets, built by hand with nft -f (the shape
#          of issue 12's dataplane); Docker's own rules on iptables-nft. --nft-from-module: the
#          module writes it instead (dataplane: nftables)
# plus reference points: the client cap (client and server in one namespace over lo), the
# forwarded path without any netfilter rule, and Docker's rules without a policy.
#
# Topology per cell (all namespaces dfwconn-<pid>-<cell>-*, deleted on exit):
#   cli  eth0 198.19.255.10/24 fd00:200::10/64 (+ 198.18.0.20, fd00:300::20: a denied source)
#   host eth0 198.19.255.1 fd00:200::1 (+ 198.18.0.1, fd00:300::1); docker0 10.200.1.1/24 fd00:201::1/64;
#        Docker's rules (tests/lab/lab.sh, LAYOUT): DNAT host 8080 -> 10.200.1.2:80 / [fd00:201::2]:80
#   ctr  eth0 10.200.1.2 fd00:201::2 on docker0; bench/conn_rate.c's server: accept, close
# The client (bench/conn_rate.c, compiled here with cc) runs CLIENT_WORKERS processes that connect
# and close (SO_LINGER 0: an RST, so no TIME_WAIT and no port exhaustion) as fast as they can for
# DURATION seconds. All cells are set up first, then measured round by round (REPS rounds, cells
# interleaved), so a change of the machine's load hits every cell alike.
#
# usage: bench/conn_rate.sh [--quick] [--no-build] [--nft-from-module] [--out FILE]   (~20 min)
#   --quick            sizes 10 and 1,000, one 2 s run per cell, no IPv6 (a smoke test, ~1.5 min)
#   --no-build         use target/x86_64-unknown-linux-gnu/release/docker_firewall as it is
#   --nft-from-module  the nft cells get their table from the module (dataplane: nftables)
#   --out FILE         also write the report to FILE (it is always printed)
# Environment: BACKENDS (default "nft legacy"), SIZES (default 10,1000,10000: every dataplane),
# RULE_SIZES (extra sizes for the per-rule layout, default 100,300,3000), V6_SIZES (default
# 10,10000), DURATION (s per run, default 4), REPS (default 5), CLIENT_WORKERS (default 8),
# SERVER_WORKERS (default 2), LAYOUT (docker28 | docker20, default docker28), PYCLIENT=0 skips the
# Python client's cap, KEEP=1 keeps the work directory.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
TARGET_BIN=$ROOT/target/x86_64-unknown-linux-gnu/release/docker_firewall
COMMAND_LINE="bench/conn_rate.sh${*:+ $*}"

BUILD=1 OUT="" NFT_FROM_MODULE=""
BACKENDS=${BACKENDS:-nft legacy}
SIZES=${SIZES:-10,1000,10000} RULE_SIZES=${RULE_SIZES-100,300,3000} V6_SIZES=${V6_SIZES-10,10000}
DURATION=${DURATION:-4} REPS=${REPS:-5} CLIENT_WORKERS=${CLIENT_WORKERS:-8}
SERVER_WORKERS=${SERVER_WORKERS:-2} PYCLIENT=${PYCLIENT:-1}
LAYOUT=${LAYOUT:-docker28}
while [ $# -gt 0 ]; do
    case $1 in
        --quick) SIZES=10,1000 RULE_SIZES="" V6_SIZES="" DURATION=2 REPS=1 PYCLIENT=0 ;;
        --no-build) BUILD="" ;;
        --nft-from-module) NFT_FROM_MODULE=1 ;;
        --out) OUT=$2; shift ;;
        -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/conn_rate.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "bench/conn_rate.sh: $*" >&2; exit 1; }
log() { echo "# $(date +%T) $*" >&2; }
[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, iptables)"
for b in $BACKENDS; do
    for t in iptables ip6tables; do
        command -v "$t-$b-restore" >/dev/null || die "$t-$b-restore is missing"
    done
done
for t in cc nft ipset python3 socat; do
    command -v "$t" >/dev/null || die "$t is missing (ipset: apt-get install ipset)"
done

if [ -n "$BUILD" ]; then
    log "building the static binary"
    (cd "$ROOT" && RUSTFLAGS="-C target-feature=+crt-static" cargo build --release \
        --target x86_64-unknown-linux-gnu >&2)
fi
[ -x "$TARGET_BIN" ] || die "$TARGET_BIN is missing (run without --no-build)"

WORK=$(mktemp -d /tmp/dfwconn.XXXXXX)
PFX=dfwconn-$$
NAMESPACES=()
PIDS=()
cleanup() {
    local p ns
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for ns in "${NAMESPACES[@]}"; do ip netns delete "$ns" 2>/dev/null || true; done
    if [ -n "${KEEP:-}" ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "compiling the client and server (bench/conn_rate.c)"
cc -O2 -Wall -o "$WORK/conn_rate" "$BENCH/conn_rate.c"
CR=$WORK/conn_rate

# Docker's rules come from the lab the namespace tests use
# shellcheck source=/dev/null  # (lab.sh is linted with the tests)
. "$ROOT/tests/lab/lab.sh"
export LAB_IPV6=nat

# ------------------------------------------------------------------ topology
CLI4=198.19.255.10 CLI6=fd00:200::10 HOSTX4=198.19.255.1 HOSTX6=fd00:200::1
DENY4=198.18.0.20 DENY6=fd00:300::20
CTR4=10.200.1.2 CTR6=fd00:201::2
PORT=8080

sysctl_ns() { # <ns> key=value...
    local ns=$1 kv
    shift
    for kv in "$@"; do ip netns exec "$ns" sh -c "echo '${kv#*=}' > /proc/sys/${kv%%=*}"; done
}
mkns() {
    ip netns add "$1"
    NAMESPACES+=("$1")
    ip -n "$1" link set lo up
    sysctl_ns "$1" net/ipv6/conf/all/accept_dad=0 net/ipv6/conf/default/accept_dad=0
}
start_server() { # <ns> <port>
    ip netns exec "$1" "$CR" server "$2" "$SERVER_WORKERS" >"$WORK/server.$1.log" 2>&1 </dev/null &
    PIDS+=($!)
    local _
    for _ in $(seq 1 100); do
        ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
        sleep 0.05
    done
    die "the server in $1 does not listen"
}
# topology <cell> — the three namespaces of a cell, Docker's rules not loaded yet
topology() {
    local c=$1 cli=$PFX-$1-cli host=$PFX-$1-host ctr=$PFX-$1-ctr
    mkns "$cli" && mkns "$host" && mkns "$ctr"
    ip -n "$cli" link add eth0 type veth peer name eth0 netns "$host"
    ip -n "$cli" addr add "$CLI4/24" dev eth0
    ip -n "$cli" addr add "$DENY4/24" dev eth0
    ip -n "$cli" addr add "$CLI6/64" dev eth0 nodad
    ip -n "$cli" addr add "$DENY6/64" dev eth0 nodad
    ip -n "$host" addr add "$HOSTX4/24" dev eth0
    ip -n "$host" addr add 198.18.0.1/24 dev eth0
    ip -n "$host" addr add "$HOSTX6/64" dev eth0 nodad
    ip -n "$host" addr add fd00:300::1/64 dev eth0 nodad
    ip -n "$cli" link set eth0 up
    ip -n "$host" link set eth0 up
    ip -n "$cli" route add 10.200.1.0/24 via "$HOSTX4"
    ip -n "$cli" -6 route add fd00:201::/64 via "$HOSTX6"
    ip -n "$host" link add docker0 type bridge
    ip -n "$host" addr add 10.200.1.1/24 dev docker0
    ip -n "$host" addr add fd00:201::1/64 dev docker0 nodad
    ip -n "$host" link set docker0 up
    ip -n "$host" link add veth-c1 type veth peer name eth0 netns "$ctr"
    ip -n "$host" link set veth-c1 master docker0 up
    ip -n "$ctr" addr add "$CTR4/24" dev eth0
    ip -n "$ctr" addr add "$CTR6/64" dev eth0 nodad
    ip -n "$ctr" link set eth0 up
    ip -n "$ctr" route add default via 10.200.1.1
    ip -n "$ctr" -6 route add default via fd00:201::1
    sysctl_ns "$host" net/ipv4/ip_forward=1 net/ipv6/conf/all/forwarding=1
    # many short connections: the client reuses ports at once (its RSTs leave no TIME_WAIT), and
    # the host's conntrack forgets closed connections after 1 s instead of 10 (the table is shared
    # by every namespace of the machine: 262,144 entries)
    sysctl_ns "$cli" net/ipv4/ip_local_port_range="1024 65535" net/ipv4/tcp_tw_reuse=1
    sysctl_ns "$ctr" net/core/somaxconn=65535 net/ipv4/tcp_max_syn_backlog=65535
    start_server "$ctr" 80
    echo "$c" >/dev/null
}
conntrack_timeouts() { # <ns> — after the first conntrack user appeared in it
    local ns=$1 d=/proc/sys/net/netfilter
    ip netns exec "$ns" test -e $d/nf_conntrack_tcp_timeout_close || return 0
    sysctl_ns "$ns" net/netfilter/nf_conntrack_tcp_timeout_close=1 \
        net/netfilter/nf_conntrack_tcp_timeout_time_wait=1 net/netfilter/nf_conntrack_tcp_timeout_syn_recv=5
}
docker_rules() { # <host ns> <backend>
    local f
    for f in 4 6; do
        local t=iptables
        [ $f = 6 ] && t=ip6tables
        lab_docker_rules $f "$LAYOUT" | ip netns exec "$1" "$t-$2-restore" -w 10
    done
}
run_module() { # <host ns> <backend> <size> [dataplane]
    local args=$WORK/args.$1.json
    python3 "$BENCH/conn_rate.py" policy "$3" "$2" "$WORK" ${4:+"$4"} >"$args"
    PATH=/usr/sbin:/usr/bin:/sbin:/bin timeout 300 ip netns exec "$1" "$TARGET_BIN" "$args" >"$args.out" || true
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r.get("changed") and not r.get("failed") else "module run failed: " + str(r.get("msg")))' "$args.out"
}
ipsetify() { # <host ns> <backend>
    local ns=$1 b=$2 f t set setfam src
    for f in 4 6; do
        t=iptables set=dfw-allow-0-v4 setfam=inet
        [ $f = 6 ] && t=ip6tables set=dfw-allow-1-v6 setfam=inet6
        ip netns exec "$ns" ipset create "$set" hash:net family "$setfam" maxelem 1048576
        src=$(python3 "$BENCH/conn_rate.py" sources "$SIZE" $f)
        awk -v set="$set" '{ print "add", set, $0 }' <<<"$src" | ip netns exec "$ns" ipset restore
        ip netns exec "$ns" "$t-$b-save" >"$WORK/save.$ns.$f"
        python3 "$BENCH/conn_rate.py" ipsetify $f "$set" <"$WORK/save.$ns.$f" 2>"$WORK/ipsetify.$ns.$f" |
            ip netns exec "$ns" "$t-$b-restore" -w 10
    done
}
# probe <cli ns> <source> <dest> [tries] -> 0 when a TCP connection from <source> to <dest>:8080 opens
probe() {
    local s=$2 d=$3 v=4 t
    case $d in *:*) v=6 s="[$s]" d="[$d]" ;; esac
    for t in $(seq 1 "${4:-1}"); do
        timeout 3 ip netns exec "$1" socat -u OPEN:/dev/null "TCP$v:$d:$PORT,bind=$s,connect-timeout=1" 2>/dev/null && return 0
        [ "$t" = "${4:-1}" ] || sleep 0.2
    done
    return 1
}
# warmup <cell> — neighbour entries in place before the first probe (a fresh IPv6 link may lose it)
warmup() {
    local cli=$PFX-$1-cli ctr=$PFX-$1-ctr a
    for a in "$cli $HOSTX4" "$cli $HOSTX6" "$ctr 10.200.1.1" "$ctr fd00:201::1"; do
        # shellcheck disable=SC2086
        set -- $a
        timeout 5 ip netns exec "$1" ping -c1 -W2 "$2" >/dev/null 2>&1 || true
    done
}

# cell records: id dataplane backend size
CELLS=()
add_cell() { CELLS+=("$1 $2 $3 $4"); }
setup_cell() { # <id> <dataplane> <backend> <size>
    local id=$1 dp=$2 b=$3 cli=$PFX-$1-cli host=$PFX-$1-host
    SIZE=$4
    topology "$id"
    case $dp in
        loop) start_server "$cli" "$PORT" ;;
        route) ;;
        docker) docker_rules "$host" "$b" ;;
        rules) docker_rules "$host" "$b" && run_module "$host" "$b" "$SIZE" ;;
        ipset) docker_rules "$host" "$b" && run_module "$host" "$b" "$SIZE" && ipsetify "$host" "$b" ;;
        nft)
            docker_rules "$host" "$b"
            if [ -n "$NFT_FROM_MODULE" ]; then
                run_module "$host" "$b" "$SIZE" nftables
            else
                python3 "$BENCH/conn_rate.py" nft "$SIZE" "$PORT" eth0 docker0 >"$WORK/nft.$id"
                ip netns exec "$host" nft -f "$WORK/nft.$id"
            fi
            ;;
    esac
    conntrack_timeouts "$host"
    warmup "$id"
    # the allowed client connects; a denied source does not when a policy is in place
    local f src dst deny
    for f in 4 6; do
        if [ $f = 4 ]; then src=$CLI4 dst=$HOSTX4 deny=$DENY4; else src=$CLI6 dst=$HOSTX6 deny=$DENY6; fi
        case $dp in loop) continue ;; route) [ $f = 4 ] && dst=$CTR4 || dst=$CTR6 ;; esac
        if [ "$dp" = route ]; then
            timeout 3 ip netns exec "$cli" "$CR" client "$dst" 80 0.2 1 | grep -qv '^0 ' ||
                die "cell $id: no connection to the container over IPv$f"
            continue
        fi
        probe "$cli" "$src" "$dst" 3 || die "cell $id ($dp $b $SIZE): the allowed client cannot connect over IPv$f"
        case $dp in
            docker) probe "$cli" "$deny" "$dst" 3 || die "cell $id: the other source cannot connect without a policy" ;;
            *) if probe "$cli" "$deny" "$dst"; then die "cell $id ($dp $b $SIZE): a source outside the allow list connects over IPv$f"; fi ;;
        esac
    done
    case $dp in
        rules)
            local n
            n=$(ip netns exec "$host" "iptables-$b" -w 10 -S DFW-INGRESS-POLICY | grep -c -- ' -j RETURN') || true
            [ "$n" -ge "$SIZE" ] || die "cell $id: $n RETURN rules in DFW-INGRESS-POLICY, expected $SIZE"
            ip netns exec "$host" "iptables-$b" -w 10 -S DFW-INGRESS-POLICY | grep -- '-j RETURN' | tail -1 |
                grep -q -- "-s ${CLI4%.*}.0/24" || die "cell $id: the client's rule is not the last RETURN rule"
            ;;
    esac
}

IFS=, read -r -a SZ <<<"$SIZES"
IFS=, read -r -a RSZ <<<"$RULE_SIZES"
IFS=, read -r -a V6SZ <<<"$V6_SIZES"
first_backend=${BACKENDS%% *}
add_cell loop loop - 0
add_cell route route - 0
for b in $BACKENDS; do add_cell "docker-$b" docker "$b" 0; done
for b in $BACKENDS; do
    for s in $(printf '%s\n' "${SZ[@]}" "${RSZ[@]}" | sort -n -u); do add_cell "rules-$b-$s" rules "$b" "$s"; done
    for s in "${SZ[@]}"; do add_cell "ipset-$b-$s" ipset "$b" "$s"; done
done
nft_backend=nft
[[ " $BACKENDS " == *" nft "* ]] || nft_backend=$first_backend
for s in "${SZ[@]}"; do add_cell "nft-$s" nft "$nft_backend" "$s"; done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(date +%s)
log "setting up ${#CELLS[@]} cells in $WORK"
for c in "${CELLS[@]}"; do
    read -r id dp b s <<<"$c"
    log "  cell $id"
    setup_cell "$id" "$dp" "$b" "$s"
done

# measure <id> <dp> <backend> <size> <fam> <rep> [py]
RESULTS=$WORK/results.tsv
: >"$RESULTS"
measure() {
    local id=$1 dp=$2 b=$3 s=$4 f=$5 rep=$6 py=${7:-} dst port=$PORT out
    if [ "$f" = 4 ]; then dst=$HOSTX4; else dst=$HOSTX6; fi
    case $dp in
        loop) [ "$f" = 4 ] && dst=127.0.0.1 || dst=::1 ;;
        route) [ "$f" = 4 ] && dst=$CTR4 || dst=$CTR6; port=80 ;;
    esac
    if [ -n "$py" ]; then
        out=$(timeout $((DURATION + 30)) ip netns exec "$PFX-$id-cli" python3 "$BENCH/conn_rate.py" pyclient "$dst" "$port" "$DURATION" "$CLIENT_WORKERS")
        dp=py$dp
    else
        out=$(timeout $((DURATION + 30)) ip netns exec "$PFX-$id-cli" "$CR" client "$dst" "$port" "$DURATION" "$CLIENT_WORKERS")
    fi
    echo "$id $dp $b $s $f $rep $out" >>"$RESULTS"
    read -r ok err el <<<"$out"
    log "  round $rep: $dp $b S=$s IPv$f: $(awk -v o="$ok" -v e="$el" 'BEGIN { printf "%.0f", o / e }') conn/s${err:+ ($err failed)}"
    sleep 1 # let the closed connections leave conntrack
}
wants_v6() { # <dp> <size>
    case $1 in loop | route | docker) [ ${#V6SZ[@]} -gt 0 ]; return ;; esac
    local v
    for v in "${V6SZ[@]}"; do [ "$v" = "$2" ] && return 0; done
    return 1
}
for rep in $(seq 1 "$REPS"); do
    log "round $rep of $REPS"
    for c in "${CELLS[@]}"; do
        read -r id dp b s <<<"$c"
        measure "$id" "$dp" "$b" "$s" 4 "$rep"
        if wants_v6 "$dp" "$s"; then measure "$id" "$dp" "$b" "$s" 6 "$rep"; fi
    done
    if [ "$PYCLIENT" = 1 ] && [ "$rep" -le 3 ]; then
        measure loop loop - 0 4 "$rep" py
        measure "docker-$first_backend" docker "$first_backend" 0 4 "$rep" py
    fi
done
T1=$(date +%s)

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
ipt=$(for b in $BACKENDS; do "iptables-$b" --version; done | paste -sd';' | sed 's/;/; /g')
nft_source="hand-built (nft -f)"
[ -n "$NFT_FROM_MODULE" ] && nft_source="the module (dataplane: nftables)"
python3 - "$WORK/meta.json" <<EOF
import json, sys
json.dump({
    "command": "$COMMAND_LINE",
    "date": "$(date -u '+%Y-%m-%d %H:%M UTC')",
    "commit": "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)",
    "nproc": "$(nproc)",
    "cpu": "$cpu",
    "kernel": "$(uname -r)",
    "iptables": "$ipt",
    "nft": "$(nft --version)",
    "ipset": "$(ipset --version | head -1)",
    "layout": "$LAYOUT (tests/lab/lab.sh); the client's network is the last of S sources per family, prefix lengths /32../25 (IPv6 /128../121) in turn, the client's /24 (/120) last",
    "duration_per_run": "$DURATION s",
    "reps": $REPS,
    "client": "bench/conn_rate.c, $CLIENT_WORKERS client processes (connect, RST close), server $SERVER_WORKERS processes (accept, close)",
    "load_before": "$LOAD_BEFORE",
    "load_after": "$(cut -d' ' -f1-3 /proc/loadavg)",
    "elapsed": "measurements $((T1 - T0)) s (set-up included)",
    "nft_table": "$nft_source",
    "main_sizes": [$SIZES],
}, open(sys.argv[1], "w"))
EOF
REPORT=$WORK/report.md
python3 "$BENCH/conn_rate.py" report "$RESULTS" "$WORK/meta.json" >"$REPORT"
cat "$REPORT"
if [ -n "$OUT" ]; then cp "$REPORT" "$OUT"; fi
if [ -n "${KEEP:-}" ]; then cp "$RESULTS" "${OUT:-$WORK/report.md}.results.tsv" 2>/dev/null || true; fi
