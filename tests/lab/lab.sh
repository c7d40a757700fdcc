# shellcheck shell=bash disable=SC2119,SC2120
# tests/lab/lab.sh — a Docker-like host built from network namespaces (sourced, bash >= 4.3).
#
# Topology (every namespace name carries LAB_PREFIX, so parallel or aborted runs never collide;
# nothing is created in the machine's own network namespace):
#
#   allowed 10.200.0.10 fd00:200::10 ─┐
#   denied  10.200.0.20 fd00:200::20 ─┼─ br0 in "sw" ─ eth0 host 10.200.0.1 fd00:200::1
#   net     10.200.0.30 fd00:200::30 ─┘                 (default routes via net)
#     "internet": 198.18.0.1, fd00:2ff::1 (on net's lo), echo listener :9000
#   host: docker0 10.200.1.1/24 fd00:201::1/64 ── c1 10.200.1.2 fd00:201::2  listener :80
#         $LAB_BR2 10.200.2.1/24 fd00:202::1/64 ── c2 10.200.2.2 fd00:202::2  listener :443
#   published: host 8080 -> c1:80 (docker0), host 8443 -> c2:443 ($LAB_BR2), IPv4 and IPv6
#
# Every listener answers one line "<name> <peer address>" and closes, so a probe tells who served:
# the real client address = DNAT path, the bridge gateway address = docker-proxy (userland proxy).
#
# Settings (environment, read by lab_up):
#   BACKEND=legacy|nft     iptables backend used for Docker's rules and by the ipt* wrappers
#   LAYOUT=docker20|docker28|dockernft   dockernft: Docker's nftables firewall backend (Docker 29),
#                          tables ip/ip6 docker-bridges and no iptables rules (tests/lab/dockernft.sh)
#   LAB_PROXY=on|off       start the docker-proxy-like socat listeners on the host (default on)
#   LAB_DOCKER=yes|no      load Docker's rules at lab_up (default yes)
#   LAB_IPV6=nat|proxy     nat (default): Docker writes IPv6 rules (ip6tables on, IPv6 networks);
#                          proxy: Docker writes no IPv6 NAT (docker20: ip6tables off, no IPv6 rules at
#                          all; docker28: only its base IPv6 chains) and docker-proxy serves [::]:PORT
#                          by forwarding to the container's IPv4 address — Docker's default for
#                          IPv4-only networks
#   LAB_PREFIX, LAB_DIR    per-run names / work directory (generated when unset)
#   PROBE_TIMEOUT          seconds per probe (default 2)
#   LAB_KEEP=1             keep LAB_DIR after lab_down (debugging)
#
# API: lab_up, lab_down, lab_trap, ipt/ipt6/ipt_save/ipt6_save/ipt_restore/ipt6_restore, lab_xt,
#      lab_proxy on|off, lab_docker_rules 4|6, lab_load_docker, lab_docker_start, lab_foreign_rules,
#      lab_probe, probe_tcp, probe_who, probe_outbound, lab_probe_many, lab_empty_ns, lab_spawn, lab_kill,
#      lab_docker_start (simulated daemon (re)start), lab_foreign_lines, lab_publish.

LAB_BR2=${LAB_BR2:-br-d0c4e5b1a7f2}   # the user-defined bridge (set before lab_up to rename it)

HOST4=10.200.0.1;     HOST6=fd00:200::1
ALLOWED4=10.200.0.10; ALLOWED6=fd00:200::10
DENIED4=10.200.0.20;  DENIED6=fd00:200::20
NETGW4=10.200.0.30;   NETGW6=fd00:200::30
NET4=198.18.0.1;      NET6=fd00:2ff::1
GW1_4=10.200.1.1;     GW1_6=fd00:201::1
C1_4=10.200.1.2;      C1_6=fd00:201::2
GW2_4=10.200.2.1;     GW2_6=fd00:202::1
C2_4=10.200.2.2;      C2_6=fd00:202::2
NET_PORT=9000

lab_log() { [ -n "${LAB_VERBOSE:-}" ] && echo "# lab: $*" >&2; return 0; }
lab_die() { echo "# lab: FATAL: $*" >&2; return 1; }

# ---------------------------------------------------------------- iptables wrappers
# lab_xt <ns> <4|6> <cmd|save|restore> [args...]
lab_xt() {
    local ns=$1 fam=$2 tool=$3 bin
    shift 3
    [ "$fam" = 6 ] && bin=ip6tables || bin=iptables
    bin="$bin-${BACKEND:-nft}"
    case $tool in
        cmd) ip netns exec "$ns" "$bin" -w 10 "$@" ;;
        save) ip netns exec "$ns" "$bin-save" "$@" ;;
        restore) ip netns exec "$ns" "$bin-restore" -w 10 "$@" ;;
        *) lab_die "lab_xt: unknown tool $tool" ;;
    esac
}
ipt() { lab_xt "$NS_HOST" 4 cmd "$@"; }
ipt6() { lab_xt "$NS_HOST" 6 cmd "$@"; }
ipt_save() { lab_xt "$NS_HOST" 4 save "$@"; }
ipt6_save() { lab_xt "$NS_HOST" 6 save "$@"; }
ipt_restore() { lab_xt "$NS_HOST" 4 restore "$@"; }
ipt6_restore() { lab_xt "$NS_HOST" 6 restore "$@"; }
# ipt_fam <4|6> args... — ipt or ipt6
ipt_fam() { local f=$1; shift; lab_xt "$NS_HOST" "$f" cmd "$@"; }

# ---------------------------------------------------------------- processes
# lab_spawn <name> <ns> cmd... — background process inside a namespace; PID recorded in $LAB_DIR/pids
lab_spawn() {
    local name=$1 ns=$2
    shift 2
    ip netns exec "$ns" "$@" >"$LAB_DIR/$name.log" 2>&1 </dev/null &
    echo "$name $!" >>"$LAB_DIR/pids"
}
# lab_kill <name> — stop a process started by lab_spawn, by its PID
lab_kill() {
    local name=$1 n pid rest=()
    [ -f "$LAB_DIR/pids" ] || return 0
    while read -r n pid; do
        if [ "$n" = "$name" ]; then
            kill "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
        else
            rest+=("$n $pid")
        fi
    done <"$LAB_DIR/pids"
    if [ ${#rest[@]} -gt 0 ]; then printf '%s\n' "${rest[@]}" >"$LAB_DIR/pids"; else : >"$LAB_DIR/pids"; fi
}
# _lab_wait_listen <ns> <port> — until something listens on TCP <port> in <ns> (max ~3 s)
_lab_wait_listen() {
    local ns=$1 port=$2 i
    for i in $(seq 1 60); do
        if ip netns exec "$ns" ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.05
    done
    lab_die "nothing listens on $ns:$port"
}
# _lab_echo_server <name> <ns> <port> <tag> — IPv4 and IPv6 listeners answering "<tag> <peer>"
_lab_echo_server() {
    local name=$1 ns=$2 port=$3 tag=$4
    # shellcheck disable=SC2016  # $SOCAT_PEERADDR is expanded by the shell socat starts
    lab_spawn "$name-4" "$ns" socat "TCP4-LISTEN:$port,fork,reuseaddr" SYSTEM:"echo $tag "'$SOCAT_PEERADDR'
    # shellcheck disable=SC2016
    lab_spawn "$name-6" "$ns" socat "TCP6-LISTEN:$port,fork,reuseaddr,ipv6only=1" SYSTEM:"echo $tag "'$SOCAT_PEERADDR'
}

# ---------------------------------------------------------------- topology
_lab_ns() {
    ip netns add "$1" && ip -n "$1" link set lo up &&
        _lab_sysctl "$1" net/ipv6/conf/all/accept_dad=0 net/ipv6/conf/default/accept_dad=0
}
# _lab_outside <ns> <v4> <v6> <swport> — veth ns:eth0 <-> sw:<swport> on br0
_lab_outside() {
    local ns=$1 v4=$2 v6=$3 port=$4
    ip -n "$NS_SW" link add "$port" type veth peer name eth0 netns "$ns" || return 1
    ip -n "$NS_SW" link set "$port" master br0 up
    ip -n "$ns" addr add "$v4/24" dev eth0
    ip -n "$ns" addr add "$v6/64" dev eth0 nodad
    ip -n "$ns" link set eth0 up
}
# _lab_container <ns> <bridge> <hostveth> <v4> <v6> <gw4> <gw6>
_lab_container() {
    local ns=$1 br=$2 hv=$3 v4=$4 v6=$5 gw4=$6 gw6=$7
    ip -n "$NS_HOST" link add "$hv" type veth peer name eth0 netns "$ns" || return 1
    ip -n "$NS_HOST" link set "$hv" master "$br" up
    ip -n "$ns" addr add "$v4/24" dev eth0
    ip -n "$ns" addr add "$v6/64" dev eth0 nodad
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$gw4"
    ip -n "$ns" -6 route add default via "$gw6"
}
_lab_bridge() { # <name> <v4cidr> <v6cidr>
    ip -n "$NS_HOST" link add "$1" type bridge || return 1
    ip -n "$NS_HOST" addr add "$2" dev "$1"
    ip -n "$NS_HOST" addr add "$3" dev "$1" nodad
    ip -n "$NS_HOST" link set "$1" up
}
_lab_sysctl() { # <ns> key=value...
    local ns=$1 kv
    shift
    for kv in "$@"; do
        ip netns exec "$ns" sh -c "echo ${kv#*=} > /proc/sys/${kv%%=*}" || return 1
    done
}

lab_up() {
    BACKEND=${BACKEND:-nft}
    LAYOUT=${LAYOUT:-docker20}
    case $BACKEND in legacy | nft) ;; *) lab_die "BACKEND must be legacy or nft"; return 1 ;; esac
    case $LAYOUT in docker20 | docker28 | dockernft) ;; *) lab_die "LAYOUT must be docker20, docker28 or dockernft"; return 1 ;; esac
    LAB_PREFIX=${LAB_PREFIX:-dfwlab-$$-$RANDOM}
    if [ -z "${LAB_DIR:-}" ]; then
        LAB_DIR=$(mktemp -d /tmp/dfwlab.XXXXXX) || return 1
        LAB_DIR_CREATED=1
    fi
    mkdir -p "$LAB_DIR" && : >"$LAB_DIR/pids" && echo "$LAB_PREFIX" >"$LAB_DIR/prefix"
    NS_SW=$LAB_PREFIX-sw NS_HOST=$LAB_PREFIX-host NS_C1=$LAB_PREFIX-c1 NS_C2=$LAB_PREFIX-c2
    NS_ALLOWED=$LAB_PREFIX-allowed NS_DENIED=$LAB_PREFIX-denied NS_NET=$LAB_PREFIX-net
    LAB_NAMESPACES=("$NS_SW" "$NS_HOST" "$NS_C1" "$NS_C2" "$NS_ALLOWED" "$NS_DENIED" "$NS_NET")
    declare -gA LAB_ADDR4 LAB_ADDR6
    LAB_ADDR4=([$NS_ALLOWED]=$ALLOWED4 [$NS_DENIED]=$DENIED4 [$NS_NET]=$NETGW4 [$NS_HOST]=$HOST4 [$NS_C1]=$C1_4 [$NS_C2]=$C2_4)
    LAB_ADDR6=([$NS_ALLOWED]=$ALLOWED6 [$NS_DENIED]=$DENIED6 [$NS_NET]=$NETGW6 [$NS_HOST]=$HOST6 [$NS_C1]=$C1_6 [$NS_C2]=$C2_6)
    lab_log "up $LAB_PREFIX backend=$BACKEND layout=$LAYOUT dir=$LAB_DIR"

    local ns
    for ns in "${LAB_NAMESPACES[@]}"; do
        _lab_ns "$ns" || { lab_die "cannot create namespace $ns"; return 1; }
    done
    ip -n "$NS_SW" link add br0 type bridge && ip -n "$NS_SW" link set br0 up || return 1
    _lab_outside "$NS_HOST" "$HOST4" "$HOST6" p-host || return 1
    _lab_outside "$NS_ALLOWED" "$ALLOWED4" "$ALLOWED6" p-allowed || return 1
    _lab_outside "$NS_DENIED" "$DENIED4" "$DENIED6" p-denied || return 1
    _lab_outside "$NS_NET" "$NETGW4" "$NETGW6" p-net || return 1
    ip -n "$NS_NET" addr add "$NET4/32" dev lo && ip -n "$NS_NET" addr add "$NET6/128" dev lo || return 1
    ip -n "$NS_HOST" route add default via "$NETGW4" dev eth0 || return 1
    ip -n "$NS_HOST" -6 route add default via "$NETGW6" dev eth0 || return 1
    _lab_sysctl "$NS_HOST" net/ipv4/ip_forward=1 net/ipv6/conf/all/forwarding=1 || return 1
    _lab_bridge docker0 "$GW1_4/24" "$GW1_6/64" || return 1
    _lab_bridge "$LAB_BR2" "$GW2_4/24" "$GW2_6/64" || return 1
    _lab_container "$NS_C1" docker0 veth-c1 "$C1_4" "$C1_6" "$GW1_4" "$GW1_6" || return 1
    _lab_container "$NS_C2" "$LAB_BR2" veth-c2 "$C2_4" "$C2_6" "$GW2_4" "$GW2_6" || return 1

    _lab_echo_server c1 "$NS_C1" 80 c1
    _lab_echo_server c2 "$NS_C2" 443 c2
    _lab_echo_server net "$NS_NET" "$NET_PORT" net
    if [ "${LAB_DOCKER:-yes}" = yes ]; then lab_load_docker || return 1; fi
    LAB_PROXY_STATE=off
    if [ "${LAB_PROXY:-on}" = on ]; then lab_proxy on || return 1; fi
    _lab_wait_listen "$NS_C1" 80 && _lab_wait_listen "$NS_C2" 443 && _lab_wait_listen "$NS_NET" "$NET_PORT" || return 1
    # neighbour tables warm up (first probes must not pay for ND/ARP races)
    lab_warmup
}

# lab_warmup — neighbour entries everywhere: ping until answered (bounded, ~3 s at most)
lab_warmup() {
    local pids=() p
    _lab_ping() { local ns=$1 a=$2 i; for i in 1 2 3; do ip netns exec "$ns" ping -c1 -W1 "$a" >/dev/null 2>&1 && return 0; done; return 1; }
    for p in "$NS_ALLOWED $HOST4" "$NS_ALLOWED $HOST6" "$NS_DENIED $HOST4" "$NS_DENIED $HOST6" \
        "$NS_NET $HOST4" "$NS_NET $HOST6" "$NS_C1 $GW1_4" "$NS_C1 $GW1_6" "$NS_C2 $GW2_4" "$NS_C2 $GW2_6"; do
        # shellcheck disable=SC2086
        _lab_ping $p &
        pids+=($!)
    done
    wait "${pids[@]}" 2>/dev/null
    return 0
}

# lab_down — stop every process we started (by PID), delete our namespaces, remove LAB_DIR
lab_down() {
    local n pid ns
    if [ -n "${LAB_DIR:-}" ] && [ -f "$LAB_DIR/pids" ]; then
        while read -r n pid; do
            [ -n "$pid" ] && kill "$pid" 2>/dev/null
        done <"$LAB_DIR/pids"
        while read -r n pid; do
            [ -n "$pid" ] && wait "$pid" 2>/dev/null
        done <"$LAB_DIR/pids"
        : >"$LAB_DIR/pids"
    fi
    for ns in "${LAB_NAMESPACES[@]}"; do
        [ -e "/run/netns/$ns" ] && ip netns del "$ns" 2>/dev/null
    done
    LAB_NAMESPACES=()
    if [ -n "${LAB_DIR_CREATED:-}" ] && [ -z "${LAB_KEEP:-}" ]; then
        rm -rf "$LAB_DIR"
        LAB_DIR='' LAB_DIR_CREATED=''
    fi
    return 0
}

# lab_reset — a fresh lab with the same settings (same names; a LAB_DIR given by the caller is kept)
lab_reset() {
    lab_down
    lab_up
}

# lab_trap — clean up on exit, Ctrl-C and TERM (timeout)
lab_trap() {
    trap 'lab_down' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# lab_empty_ns <suffix> — an extra empty namespace (lo up), deleted by lab_down; its name is left
# in LAB_EMPTY_NS (not printed: a command substitution would lose the bookkeeping)
lab_empty_ns() {
    LAB_EMPTY_NS="$LAB_PREFIX-$1"
    [ -e "/run/netns/$LAB_EMPTY_NS" ] && ip netns del "$LAB_EMPTY_NS"
    _lab_ns "$LAB_EMPTY_NS" || return 1
    LAB_NAMESPACES+=("$LAB_EMPTY_NS")
}

# ---------------------------------------------------------------- docker-proxy
# lab_proxy on|off — socat listeners on host:8080/8443 forwarding to the containers (userland proxy)
lab_proxy() {
    case $1 in
        on)
            [ "${LAB_PROXY_STATE:-off}" = on ] && return 0
            lab_spawn proxy-8080-4 "$NS_HOST" socat TCP4-LISTEN:8080,fork,reuseaddr "TCP4:$C1_4:80"
            local t1="TCP6:[$C1_6]:80" t2="TCP6:[$C2_6]:443"
            if [ "${LAB_IPV6:-nat}" = proxy ]; then t1="TCP4:$C1_4:80" t2="TCP4:$C2_4:443"; fi
            lab_spawn proxy-8080-6 "$NS_HOST" socat TCP6-LISTEN:8080,fork,reuseaddr,ipv6only=1 "$t1"
            lab_spawn proxy-8443-4 "$NS_HOST" socat TCP4-LISTEN:8443,fork,reuseaddr "TCP4:$C2_4:443"
            lab_spawn proxy-8443-6 "$NS_HOST" socat TCP6-LISTEN:8443,fork,reuseaddr,ipv6only=1 "$t2"
            _lab_wait_listen "$NS_HOST" 8080 && _lab_wait_listen "$NS_HOST" 8443 || return 1
            # both families must listen
            local i
            for i in $(seq 1 40); do
                [ "$(ip netns exec "$NS_HOST" ss -Hltn '( sport = :8080 or sport = :8443 )' | wc -l)" -ge 4 ] && break
                sleep 0.05
            done
            LAB_PROXY_STATE=on
            ;;
        off)
            local n
            for n in proxy-8080-4 proxy-8080-6 proxy-8443-4 proxy-8443-6; do lab_kill "$n"; done
            LAB_PROXY_STATE=off
            ;;
        *) lab_die "lab_proxy on|off"; return 1 ;;
    esac
}

# ---------------------------------------------------------------- Docker's rules
# lab_docker_rules <4|6> [layout] — iptables-restore input of Docker's rules for this lab, in
# iptables-save's canonical form (so each rule line can be found verbatim in iptables-save output)
lab_docker_rules() {
    local fam=$1 layout=${2:-$LAYOUT} b=$LAB_BR2
    [ "$layout" = dockernft ] && return 0 # Docker's nftables backend writes no iptables rules
    if [ "$fam" = 6 ] && [ "${LAB_IPV6:-nat}" = proxy ]; then
        _lab_docker_rules6_base "$layout"
        return
    fi
    local net1 net2 c1 c2 c1d c2d lo h1 h2
    if [ "$fam" = 6 ]; then
        net1=fd00:201::/64 net2=fd00:202::/64 c1=$C1_6/128 c2=$C2_6/128 lo=::1/128
        c1d="[$C1_6]" c2d="[$C2_6]"
    else
        net1=10.200.1.0/24 net2=10.200.2.0/24 c1=$C1_4/32 c2=$C2_4/32 lo=127.0.0.0/8
        c1d=$C1_4 c2d=$C2_4
    fi
    h1="-A POSTROUTING -s $c1 -d $c1 -p tcp -m tcp --dport 80 -j MASQUERADE"
    h2="-A POSTROUTING -s $c2 -d $c2 -p tcp -m tcp --dport 443 -j MASQUERADE"
    case $layout in
        docker20)
            cat <<EOF
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d $lo -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s $net2 ! -o $b -j MASQUERADE
-A POSTROUTING -s $net1 ! -o docker0 -j MASQUERADE
$h1
$h2
-A DOCKER -i $b -j RETURN
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination $c1d:80
-A DOCKER ! -i $b -p tcp -m tcp --dport 8443 -j DNAT --to-destination $c2d:443
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o $b -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o $b -j DOCKER
-A FORWARD -i $b ! -o $b -j ACCEPT
-A FORWARD -i $b -o $b -j ACCEPT
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER -d $c1 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER -d $c2 ! -i $b -o $b -p tcp -m tcp --dport 443 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i $b ! -o $b -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o $b -j DROP
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
EOF
            ;;
        docker28)
            cat <<EOF
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -d $c1 ! -i docker0 -j DROP
-A PREROUTING -d $c2 ! -i $b -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d $lo -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s $net2 ! -o $b -j MASQUERADE
-A POSTROUTING -s $net1 ! -o docker0 -j MASQUERADE
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination $c1d:80
-A DOCKER ! -i $b -p tcp -m tcp --dport 8443 -j DNAT --to-destination $c2d:443
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-BRIDGE - [0:0]
:DOCKER-CT - [0:0]
:DOCKER-FORWARD - [0:0]
:DOCKER-INTERNAL - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-FORWARD
-A DOCKER -d $c2 ! -i $b -o $b -p tcp -m tcp --dport 443 -j ACCEPT
-A DOCKER -d $c1 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER ! -i docker0 -o docker0 -j DROP
-A DOCKER ! -i $b -o $b -j DROP
-A DOCKER-BRIDGE -o docker0 -j DOCKER
-A DOCKER-BRIDGE -o $b -j DOCKER
-A DOCKER-CT -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A DOCKER-CT -o $b -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A DOCKER-FORWARD -j DOCKER-CT
-A DOCKER-FORWARD -j DOCKER-INTERNAL
-A DOCKER-FORWARD -j DOCKER-BRIDGE
-A DOCKER-FORWARD -i docker0 -j ACCEPT
-A DOCKER-FORWARD -i $b -j ACCEPT
COMMIT
EOF
            ;;
        *) lab_die "unknown layout $layout"; return 1 ;;
    esac
}

# _lab_docker_rules6_base <layout> — IPv6 when no Docker network has IPv6: nothing at all for
# docker20 (ip6tables off), the daemon's base chains for docker28 (ip6tables on by default)
_lab_docker_rules6_base() {
    [ "$1" = docker28 ] || return 0
    cat <<EOF
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-BRIDGE - [0:0]
:DOCKER-CT - [0:0]
:DOCKER-FORWARD - [0:0]
:DOCKER-INTERNAL - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-FORWARD
-A DOCKER-FORWARD -j DOCKER-CT
-A DOCKER-FORWARD -j DOCKER-INTERNAL
-A DOCKER-FORWARD -j DOCKER-BRIDGE
COMMIT
EOF
}

# lab_load_docker — Docker's rules into the (fresh) host namespace, one full restore per family
lab_load_docker() {
    if [ "$LAYOUT" = dockernft ]; then lab_load_docker_nft; return; fi
    lab_docker_rules 4 | ipt_restore || { lab_die "loading Docker's IPv4 rules failed"; return 1; }
    [ -n "$(lab_docker_rules 6)" ] || return 0
    lab_docker_rules 6 | ipt6_restore || { lab_die "loading Docker's IPv6 rules failed"; return 1; }
}

LAB_DOCKER_CHAINS="DOCKER DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2 DOCKER-FORWARD DOCKER-CT DOCKER-BRIDGE DOCKER-INTERNAL"

# _lab_docker_remove_script <fam> — noflush restore input that removes Docker's own objects the
# way the daemon does at start: its jumps and built-in-chain rules, then its chains (flush, delete).
# DOCKER-USER and its content are kept.
_lab_docker_remove_script() {
    local fam=$1
    awk -v owned="$LAB_DOCKER_CHAINS" '
        BEGIN { n = split(owned, o, " "); for (i = 1; i <= n; i++) own[o[i]] = 1 }
        FNR == NR { if ($0 ~ /^\*/) t = substr($0, 2); else if ($1 == "-A" && !($2 in own) && $2 != "DOCKER-USER") want[t SUBSEP $0] = 1; next }
        /^\*/ { t = substr($0, 2); tables[++nt] = t; next }
        /^:/ { c = substr($1, 2); if (c in own) { chains[t] = chains[t] " " c } ; next }
        $1 == "-A" {
            if ($2 in own) next
            if ($2 == "DOCKER-USER") next
            j = ""; for (i = 1; i < NF; i++) if ($i == "-j") j = $(i + 1)
            if ((t SUBSEP $0) in want || (j in own)) { line = $0; sub(/^-A/, "-D", line); dels[t] = dels[t] line "\n" }
        }
        END {
            for (k = 1; k <= nt; k++) {
                t = tables[k]
                if (dels[t] == "" && chains[t] == "") continue
                printf "*%s\n%s", t, dels[t]
                m = split(chains[t], cs, " ")
                for (i = 1; i <= m; i++) printf "-F %s\n", cs[i]
                for (i = 1; i <= m; i++) printf "-X %s\n", cs[i]
                print "COMMIT"
            }
        }' <(lab_docker_rules "$fam") <(lab_xt "$NS_HOST" "$fam" save)
}

# _lab_docker_add_script <fam> — noflush restore input that (re)creates Docker's chains and rules:
# own chains created/flushed and filled, rules in built-in chains inserted at the top (FORWARD,
# POSTROUTING, raw PREROUTING) or appended (nat PREROUTING/OUTPUT jumps, as the daemon does).
# DOCKER-USER and the FORWARD -> DOCKER-USER jump are handled by lab_docker_start.
_lab_docker_add_script() {
    local fam=$1
    lab_docker_rules "$fam" | awk -v owned="$LAB_DOCKER_CHAINS" '
        BEGIN { n = split(owned, o, " "); for (i = 1; i <= n; i++) own[o[i]] = 1 }
        /^\*/ { t = substr($0, 2); print; next }
        /^:/ { c = substr($1, 2); if (c in own) print ":" c " - [0:0]"; next }
        /^COMMIT/ { print; next }
        $1 == "-A" {
            if ($2 == "DOCKER-USER") next
            if ($2 == "FORWARD" && $0 == "-A FORWARD -j DOCKER-USER") next
            if ($2 in own) { print; next }
            if (t == "nat" && ($2 == "PREROUTING" || $2 == "OUTPUT")) { print; next }
            line = $0; sub(/^-A [^ ]+/, "-I " $2 " " (++pos[t SUBSEP $2]), line); print line
        }'
}

# lab_docker_start — simulate the Docker daemon (re)starting on this host: remove its old chains and
# jumps, create DOCKER-USER if missing (content kept; docker20 adds "-j RETURN" if missing), recreate
# its chains and per-container rules, and move FORWARD -> DOCKER-USER to the top.
lab_docker_start() {
    local fam
    for fam in 4 6; do
        [ -n "$(lab_docker_rules "$fam")" ] || continue
        _lab_docker_remove_script "$fam" | lab_xt "$NS_HOST" "$fam" restore --noflush ||
            { lab_die "docker start (remove, IPv$fam) failed"; return 1; }
        lab_xt "$NS_HOST" "$fam" cmd -S DOCKER-USER >/dev/null 2>&1 || lab_xt "$NS_HOST" "$fam" cmd -N DOCKER-USER || return 1
        if [ "$LAYOUT" = docker20 ]; then
            lab_xt "$NS_HOST" "$fam" cmd -C DOCKER-USER -j RETURN 2>/dev/null ||
                lab_xt "$NS_HOST" "$fam" cmd -A DOCKER-USER -j RETURN || return 1
        fi
        _lab_docker_add_script "$fam" | lab_xt "$NS_HOST" "$fam" restore --noflush ||
            { lab_die "docker start (add, IPv$fam) failed"; return 1; }
        while lab_xt "$NS_HOST" "$fam" cmd -D FORWARD -j DOCKER-USER 2>/dev/null; do :; done
        lab_xt "$NS_HOST" "$fam" cmd -I FORWARD -j DOCKER-USER || return 1
    done
}

# lab_publish <port> — what Docker does when a container publishes host <port> -> c1:80 while the lab
# runs (dockernft: a DNAT rule in its nftables tables, see _lab_publish_nft): nat DNAT + filter ACCEPT (one noflush restore per family, so each family changes at once) for
# each family Docker writes NAT rules for (IPv4 only with LAB_IPV6=proxy), plus docker-proxy's
# listeners (names proxy-<port>-4/-6; the IPv6 one forwards to c1's IPv4 address with LAB_IPV6=proxy)
lab_publish() {
    local port=$1 fam c1 d t6="TCP6:[$C1_6]:80" fams="4 6"
    if [ "${LAB_IPV6:-nat}" = proxy ]; then fams=4 t6="TCP4:$C1_4:80"; fi
    for fam in $fams; do
        if [ "$LAYOUT" = dockernft ]; then _lab_publish_nft "$fam" "$port" || return 1; continue; fi
        if [ "$fam" = 6 ]; then c1=$C1_6/128 d="[$C1_6]"; else c1=$C1_4/32 d=$C1_4; fi
        printf '%s\n' '*nat' "-A DOCKER ! -i docker0 -p tcp -m tcp --dport $port -j DNAT --to-destination $d:80" COMMIT \
            '*filter' "-I DOCKER 1 -d $c1 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT" COMMIT |
            lab_xt "$NS_HOST" "$fam" restore --noflush || return 1
    done
    lab_spawn "proxy-$port-4" "$NS_HOST" socat "TCP4-LISTEN:$port,fork,reuseaddr" "TCP4:$C1_4:80"
    lab_spawn "proxy-$port-6" "$NS_HOST" socat "TCP6-LISTEN:$port,fork,reuseaddr,ipv6only=1" "$t6"
    local i
    for i in $(seq 1 60); do # both families listen
        [ "$(ip netns exec "$NS_HOST" ss -Hltn "sport = :$port" | wc -l)" -ge 2 ] && return 0
        sleep 0.05
    done
    lab_die "docker-proxy-like listeners on $port did not start"
}

# ---------------------------------------------------------------- rules of other tools
# lab_foreign_rules — an admin rule in DOCKER-USER, INPUT rules, a ufw-like chain pair, a nat
# PREROUTING rule and a mangle rule, both families. Every one carries a "foreign:" comment; all are
# harmless for the lab's traffic. lab_foreign_lines <4|6> prints them as iptables-save shows them.
lab_foreign_rules() {
    local f net
    for f in 4 6; do
        if [ "$f" = 6 ]; then net=fd00:299::/64; else net=198.18.99.0/24; fi
        ipt_fam "$f" -I DOCKER-USER 1 -s "$net" -m comment --comment "foreign: admin block" -j DROP || return 1
        ipt_fam "$f" -A INPUT -i lo -m comment --comment "foreign: lo" -j ACCEPT || return 1
        ipt_fam "$f" -A INPUT -p tcp -m tcp --dport 22 -m comment --comment "foreign: ssh" -j ACCEPT || return 1
        ipt_fam "$f" -N ufw-before-forward && ipt_fam "$f" -N ufw-user-forward || return 1
        ipt_fam "$f" -A FORWARD -j ufw-before-forward || return 1
        ipt_fam "$f" -A ufw-before-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT || return 1
        ipt_fam "$f" -A ufw-before-forward -j ufw-user-forward || return 1
        ipt_fam "$f" -A ufw-user-forward -s "$net" -m comment --comment "foreign: ufw route deny" -j DROP || return 1
        ipt_fam "$f" -t nat -I PREROUTING 1 -s "$net" -m comment --comment "foreign: nat skip" -j RETURN || return 1
        ipt_fam "$f" -t mangle -A PREROUTING -s "$net" -m comment --comment "foreign: mangle" -j MARK --set-xmark 0x1/0xffffffff || return 1
    done
}
# lab_foreign_lines <4|6> — the foreign rules (and ufw-like chains) currently present, in save order
lab_foreign_lines() {
    lab_xt "$NS_HOST" "$1" save | grep -E 'foreign:|ufw-' | sed -E 's/\[[0-9]+:[0-9]+\]/[0:0]/'
}

# ---------------------------------------------------------------- probes
_lab_v6full() { # expand an IPv6 address to 8 groups of 4 lower-case hex digits
    local a=${1,,} head tail i out=() g
    a=${a#[}
    a=${a%]}
    if [[ $a == *::* ]]; then head=${a%%::*} tail=${a#*::}; else head=$a tail=; fi
    local -a H=() T=()
    [ -n "$head" ] && IFS=: read -ra H <<<"$head"
    [ -n "$tail" ] && IFS=: read -ra T <<<"$tail"
    for g in "${H[@]}"; do out+=("$(printf '%04x' "0x$g")"); done
    for ((i = ${#H[@]} + ${#T[@]}; i < 8; i++)); do out+=(0000); done
    for g in "${T[@]}"; do out+=("$(printf '%04x' "0x$g")"); done
    local IFS=:
    echo "${out[*]}"
}
_lab_addr_eq() { # compare two addresses (v4 or v6, v6 possibly bracketed/expanded)
    local a=$1 b=$2
    if [[ $a == *:* && $b == *:* ]]; then
        [ "$(_lab_v6full "$a")" = "$(_lab_v6full "$b")" ]
    elif [[ $a != *:* && $b != *:* ]]; then
        [ "$a" = "$b" ]
    else
        return 1
    fi
}

# lab_probe <ns> <addr> <port> — one bounded TCP connection; prints "<state> <ms> [banner]"
# state: open (connected; banner = what the server said), refused, timeout, error
lab_probe() {
    local ns=$1 addr=$2 port=$3 t=${PROBE_TIMEOUT:-2} target out rc err start end
    case $addr in *:*) target="TCP6:[$addr]:$port" ;; *) target="TCP4:$addr:$port" ;; esac
    err=$(mktemp "${LAB_DIR:-/tmp}/probe.XXXXXX")
    start=$(date +%s%N)
    out=$(timeout -k 1 $((t + 2)) ip netns exec "$ns" socat -u -T "$t" "$target,connect-timeout=$t" STDOUT 2>"$err")
    rc=$?
    end=$(date +%s%N)
    local ms=$(((end - start) / 1000000)) state
    if [ $rc -eq 0 ]; then
        state=open
    elif grep -q 'refused' "$err"; then
        state=refused
    elif [ $rc -eq 124 ] || grep -qi 'timed out\|timeout' "$err"; then
        state=timeout
    else
        state=error
        out=$(tr '\n' ' ' <"$err")
    fi
    rm -f "$err"
    echo "$state $ms${out:+ $out}"
}

# probe_tcp <ns> <addr> <port> — prints open|closed; returns 0 when open
probe_tcp() {
    local r
    r=$(lab_probe "$@")
    if [ "${r%% *}" = open ]; then echo open; return 0; fi
    echo closed
    return 1
}

# _lab_who <ns> <probe result> — dnat|proxy|closed|other:<banner>
_lab_who() {
    local ns=$1 r=$2 state peer
    state=${r%% *}
    [ "$state" = open ] || { echo closed; return 0; }
    peer=$(awk '{print $4}' <<<"$r")
    local client4=${LAB_ADDR4[$ns]:-} client6=${LAB_ADDR6[$ns]:-} g
    if [ -n "$peer" ] && { _lab_addr_eq "$peer" "$client4" || _lab_addr_eq "$peer" "$client6"; }; then
        echo dnat
        return 0
    fi
    for g in "$GW1_4" "$GW1_6" "$GW2_4" "$GW2_6"; do
        if [ -n "$peer" ] && _lab_addr_eq "$peer" "$g"; then echo proxy; return 0; fi
    done
    echo "other:$(cut -d' ' -f3- <<<"$r" | tr ' ' '_')"
}
# probe_who <ns> <addr> <port> — who served: dnat (container saw the client) | proxy (container saw
# the bridge gateway: docker-proxy) | closed | other:<banner>
probe_who() {
    _lab_who "$1" "$(lab_probe "$@")"
}

# probe_outbound <c1|c2> <4|6> — container -> "internet" host; prints open|closed
probe_outbound() {
    local ns
    case $1 in c1) ns=$NS_C1 ;; c2) ns=$NS_C2 ;; *) ns=$1 ;; esac
    if [ "$2" = 6 ]; then probe_tcp "$ns" "$NET6" "$NET_PORT"; else probe_tcp "$ns" "$NET4" "$NET_PORT"; fi
}

# lab_probe_many <spec>... — run probes concurrently; spec "<ns> <addr> <port>"; prints one line per
# spec, in order: "<state> <ms> [banner] | <who>"
lab_probe_many() {
    local d i=0 spec pids=()
    d=$(mktemp -d "${LAB_DIR:-/tmp}/pm.XXXXXX")
    for spec in "$@"; do
        # shellcheck disable=SC2086
        (set -- $spec; r=$(lab_probe "$1" "$2" "$3"); echo "$r | $(_lab_who "$1" "$r")") >"$d/$i" &
        pids+=($!)
        i=$((i + 1))
    done
    wait "${pids[@]}" 2>/dev/null
    for ((i = 0; i < $#; i++)); do cat "$d/$i"; done
    rm -rf "$d"
}

# shellcheck source=tests/lab/dockernft.sh
. "$(dirname "${BASH_SOURCE[0]}")/dockernft.sh"
