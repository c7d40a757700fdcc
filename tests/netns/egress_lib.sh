# shellcheck shell=bash
# tests/netns/egress_lib.sh — lab pieces for the egress / audit / log tests (sourced after lib.sh).
# Uses only the public API of tests/lab/lab.sh (lab_empty_ns, lab_spawn, lab_probe_many, lab_xt).
#
# Added to the lab by eg_lab_up (all inside the lab's namespaces):
#
#   c3   10.200.1.3 fd00:201::3 on docker0 (same Docker network as c1), TCP listener :7000 "c3"
#   svc  "internal service" on a private network behind the host's second interface int0:
#        host int0 10.200.50.1/24 fd00:250::1/64 ── svc eth0 10.200.50.10 + .11, fd00:250::10 + ::11
#        TCP :5432 and :22 "svc", UDP :5353 "svc-udp"; default routes via the host.
#        (10.200.0.0/16 is in 10.0.0.0/8 and fd00::/16 in fc00::/7: private ranges.)
#   pub  "public host" on the lab's "internet" namespace (net), on its lo:
#        198.18.0.10 and 2001:db8:18::10 (outside every default private range), routed by the
#        host's default routes; TCP :5432 and :22 "pub", UDP :5353 "pub-udp".
#   host listeners on every host address (docker0 10.200.1.1, eth0 10.200.0.1, int0, lo):
#        TCP :2222 "host", :2223 "host", UDP :5353 "host-udp".

SVC4=10.200.50.10;   SVC6=fd00:250::10
SVC4B=10.200.50.11;  SVC6B=fd00:250::11
INT4=10.200.50.1;    INT6=fd00:250::1
PUB4=198.18.0.10;    PUB6=2001:db8:18::10
C3_4=10.200.1.3;     C3_6=fd00:201::3

# _eg_tcp_echo <name> <ns> <port> <tag> [bind4] [bind6]
_eg_tcp_echo() {
    local name=$1 ns=$2 port=$3 tag=$4 b4=${5:+,bind=$5} b6=${6:+,bind=[$6]}
    # shellcheck disable=SC2016  # $SOCAT_PEERADDR is expanded by the shell socat starts
    lab_spawn "$name-4" "$ns" socat "TCP4-LISTEN:$port,fork,reuseaddr$b4" SYSTEM:"echo $tag "'$SOCAT_PEERADDR'
    # shellcheck disable=SC2016
    lab_spawn "$name-6" "$ns" socat "TCP6-LISTEN:$port,fork,reuseaddr,ipv6only=1$b6" SYSTEM:"echo $tag "'$SOCAT_PEERADDR'
}
# _eg_udp_echo <name> <ns> <port> <tag> [bind4] [bind6] — answers each datagram with "<tag>" (bind
# to the address clients use when the namespace has several: the answer must come from it)
_eg_udp_echo() {
    local name=$1 ns=$2 port=$3 tag=$4 b4=${5:+,bind=$5} b6=${6:+,bind=[$6]}
    # the command reads the datagram first: a command that exits before socat hands it over makes
    # socat fail with EPIPE and, now and then, drop the answer
    lab_spawn "$name-4" "$ns" socat "UDP4-RECVFROM:$port,fork,reuseaddr$b4" SYSTEM:"read -r _; echo $tag"
    lab_spawn "$name-6" "$ns" socat "UDP6-RECVFROM:$port,fork,reuseaddr,ipv6only=1$b6" SYSTEM:"read -r _; echo $tag"
}
# _eg_wait <ns> <t|u> <port> <count> — until <count> sockets listen on <port> (max ~3 s)
_eg_wait() {
    local ns=$1 kind=$2 port=$3 want=$4 i
    for i in $(seq 1 60); do
        [ "$(ip netns exec "$ns" ss -Hl"$kind"n "sport = :$port" 2>/dev/null | wc -l)" -ge "$want" ] && return 0
        sleep 0.05
    done
    echo "# egress lab: nothing listens on $ns $kind:$port" >&2
    return 1
}

# eg_extras — add c3, svc, pub and the host listeners to a running lab
eg_extras() {
    lab_empty_ns c3 || return 1
    NS_C3=$LAB_EMPTY_NS
    lab_empty_ns svc || return 1
    NS_SVC=$LAB_EMPTY_NS
    # shellcheck disable=SC2034  # read by lab.sh's probe_who (who served: dnat or proxy)
    LAB_ADDR4[$NS_C3]=$C3_4
    LAB_ADDR6[$NS_C3]=$C3_6
    # shellcheck disable=SC2034
    LAB_ADDR4[$NS_SVC]=$SVC4
    # shellcheck disable=SC2034
    LAB_ADDR6[$NS_SVC]=$SVC6

    # c3: a second container on docker0
    ip -n "$NS_HOST" link add veth-c3 type veth peer name eth0 netns "$NS_C3" || return 1
    ip -n "$NS_HOST" link set veth-c3 master docker0 up || return 1
    ip -n "$NS_C3" addr add "$C3_4/24" dev eth0 &&
        ip -n "$NS_C3" addr add "$C3_6/64" dev eth0 nodad &&
        ip -n "$NS_C3" link set eth0 up &&
        ip -n "$NS_C3" route add default via "$GW1_4" &&
        ip -n "$NS_C3" -6 route add default via "$GW1_6" || return 1

    # svc: the internal network behind int0
    ip -n "$NS_HOST" link add int0 type veth peer name eth0 netns "$NS_SVC" || return 1
    ip -n "$NS_HOST" addr add "$INT4/24" dev int0 &&
        ip -n "$NS_HOST" addr add "$INT6/64" dev int0 nodad &&
        ip -n "$NS_HOST" link set int0 up || return 1
    ip -n "$NS_SVC" addr add "$SVC4/24" dev eth0 &&
        ip -n "$NS_SVC" addr add "$SVC4B/24" dev eth0 &&
        ip -n "$NS_SVC" addr add "$SVC6/64" dev eth0 nodad &&
        ip -n "$NS_SVC" addr add "$SVC6B/64" dev eth0 nodad &&
        ip -n "$NS_SVC" link set eth0 up &&
        ip -n "$NS_SVC" route add default via "$INT4" &&
        ip -n "$NS_SVC" -6 route add default via "$INT6" || return 1

    # pub: public addresses on the "internet" namespace
    ip -n "$NS_NET" addr add "$PUB4/32" dev lo &&
        ip -n "$NS_NET" addr add "$PUB6/128" dev lo || return 1

    _eg_tcp_echo c3-7000 "$NS_C3" 7000 c3
    _eg_tcp_echo svc-5432 "$NS_SVC" 5432 svc
    _eg_tcp_echo svc-22 "$NS_SVC" 22 svc
    _eg_udp_echo svc-5353 "$NS_SVC" 5353 svc-udp "$SVC4" "$SVC6"
    _eg_tcp_echo pub-5432 "$NS_NET" 5432 pub "$PUB4" "$PUB6"
    _eg_tcp_echo pub-22 "$NS_NET" 22 pub "$PUB4" "$PUB6"
    _eg_udp_echo pub-5353 "$NS_NET" 5353 pub-udp "$PUB4" "$PUB6"
    _eg_tcp_echo host-2222 "$NS_HOST" 2222 host
    _eg_tcp_echo host-2223 "$NS_HOST" 2223 host
    _eg_udp_echo host-5353 "$NS_HOST" 5353 host-udp
    _eg_wait "$NS_C3" t 7000 2 && _eg_wait "$NS_SVC" t 5432 2 && _eg_wait "$NS_SVC" t 22 2 &&
        _eg_wait "$NS_SVC" u 5353 2 && _eg_wait "$NS_NET" t 5432 2 && _eg_wait "$NS_NET" t 22 2 &&
        _eg_wait "$NS_NET" u 5353 2 && _eg_wait "$NS_HOST" t 2222 2 && _eg_wait "$NS_HOST" t 2223 2 &&
        _eg_wait "$NS_HOST" u 5353 2 || return 1

    # neighbour entries (bounded)
    local p pids=()
    for p in "$NS_C3 $GW1_4" "$NS_C3 $GW1_6" "$NS_SVC $INT4" "$NS_SVC $INT6" "$NS_C3 $C1_4" "$NS_C3 $C1_6"; do
        # shellcheck disable=SC2086
        (set -- $p; for _ in 1 2 3; do [ "$(eg_ping "$1" "$2")" = open ] && break; done) &
        pids+=($!)
    done
    wait "${pids[@]}" 2>/dev/null
    return 0
}

# eg_lab_up — t_lab_up plus the extras (a failure line and exit when they cannot be built)
eg_lab_up() {
    t_lab_up
    if ! eg_extras >"$T_DIR/eg_extras.log" 2>&1; then
        not_ok "egress lab extras come up" "$(tail -20 "$T_DIR/eg_extras.log")"
        t_done
    fi
}
eg_lab_reset() { lab_down; eg_lab_up; }

# eg_flush_neigh — forget every neighbour (ARP / IPv6 ND) entry of the host and the containers, so
# the next probes resolve neighbours again through the firewall (a policy that breaks IPv6
# neighbour discovery shows at once, not only when the cache happens to expire)
eg_flush_neigh() {
    local ns
    for ns in "$NS_HOST" "$NS_C1" "$NS_C2" "$NS_C3"; do
        ip -n "$ns" -4 neigh flush all 2>/dev/null
        ip -n "$ns" -6 neigh flush all 2>/dev/null
    done
    return 0
}

# ---------------------------------------------------------------- probes
# eg_udp <ns> <addr> <port> — a datagram, waits PROBE_TIMEOUT for the answer (two tries); prints
# the answer or nothing
eg_udp() {
    local ns=$1 addr=$2 port=$3 t=${PROBE_TIMEOUT:-2} target r _
    case $addr in *:*) target="UDP6:[$addr]:$port" ;; *) target="UDP4:$addr:$port" ;; esac
    for _ in 1 2; do
        r=$(echo ping | timeout -k 1 $((t + 2)) ip netns exec "$ns" socat -t "$t" -T "$t" - "$target" 2>/dev/null | head -1)
        [ -n "$r" ] && break
    done
    echo "$r"
}
# eg_ping <ns> <addr> — ICMP echo: open (answered within ~2 s) | closed. iputils ping when
# installed, else busybox (scripts/setup installs busybox-static)
eg_ping() {
    local p=(ping -c2 -W2)
    command -v ping >/dev/null || p=(busybox ping -c2 -W2)
    if timeout -k 1 5 ip netns exec "$1" "${p[@]}" "$2" >/dev/null 2>&1; then echo open; else echo closed; fi
}

# eg_expect "<label>|<ns>|<addr>|<port>|<expect>"... — concurrent probes, one ok/not ok each.
# port: a number (TCP), u<number> (UDP), icmp (ping; <expect> open|closed only).
# expect: open | closed (refused or timeout; for UDP: no answer) | timeout (dropped) | refused (the
# SYN reached the destination, which answered with a reset) | open:<tag> (the listener that
# answered says <tag>, i.e. the packet reached the intended server).
eg_expect() {
    local d s label ns addr port exp i=0 pids=() res state tag banner good
    d=$(mktemp -d "${LAB_DIR:-/tmp}/egx.XXXXXX")
    for s in "$@"; do
        IFS='|' read -r label ns addr port exp <<<"$s"
        case $port in
            icmp) (eg_ping "$ns" "$addr" >"$d/$i") & ;;
            u*) (r=$(eg_udp "$ns" "$addr" "${port#u}"); if [ -n "$r" ]; then echo "open 0 $r"; else echo "timeout 0"; fi >"$d/$i") & ;;
            *) (lab_probe "$ns" "$addr" "$port" >"$d/$i") & ;;
        esac
        pids+=($!)
        i=$((i + 1))
    done
    wait "${pids[@]}" 2>/dev/null
    i=0
    for s in "$@"; do
        IFS='|' read -r label ns addr port exp <<<"$s"
        res=$(cat "$d/$i")
        state=${res%% *}
        banner=$(cut -d' ' -f3 <<<"$res")
        case $exp in
            open) [ "$state" = open ] && good=1 || good= ;;
            open:*) tag=${exp#open:}; [ "$state" = open ] && [ "$banner" = "$tag" ] && good=1 || good= ;;
            closed) case $state in refused | timeout | closed) good=1 ;; *) good= ;; esac ;;
            timeout | refused) [ "$state" = "$exp" ] && good=1 || good= ;;
            *) good= ;;
        esac
        if [ -n "$good" ]; then ok "${T_PRE:-}$label ($exp)"; else not_ok "${T_PRE:-}$label (expected $exp)" "probe: $res"; fi
        i=$((i + 1))
    done
    rm -rf "$d"
}

# ---------------------------------------------------------------- counters
# eg_count <4|6> <chain> <ERE> — sum of the packet counters (iptables-save -c, filter table unless
# EG_TABLE is set) of the rules of <chain> whose text matches <ERE>; empty when no rule matches
eg_count() {
    lab_xt "$NS_HOST" "$1" save -c -t "${EG_TABLE:-filter}" | awk -v chain="$2" -v re="$3" '
        $2 == "-A" && $3 == chain && $0 ~ re { c = $1; gsub(/[^0-9:]/, "", c); split(c, a, ":"); n += a[1]; seen = 1 }
        END { if (seen) print n }'
}
# eg_log_count <4|6> <chain> — packets counted by the chain's LOG rule(s)
eg_log_count() { eg_count "$1" "$2" '-j LOG'; }
# eg_log_rules <4|6> — every LOG rule the module owns (any table), as iptables-save shows it
eg_log_rules() {
    lab_xt "$NS_HOST" "$1" save | grep -E '^-A DFW-' | grep -- '-j LOG' || true
}

# eg_rerun_unchanged <label> <override> — the same arguments again: changed=false, nothing planned,
# iptables-save identical, no iptables-restore
eg_rerun_unchanged() {
    local label=$1 o=$2
    snap "$T_DIR/eg-before"
    if t_dfw_ok "$label: second run" "$o"; then
        t_changed "$label: second run reports changed=false" false
        t_eq "$label: second run plans nothing" "" "$(dfw_q '(.plan.ipv4 // []) + (.plan.ipv6 // []) | .[]')"
        if dfw_tools_seen; then t_eq "$label: second run runs no iptables-restore" 0 "$(dfw_restores)" "$(dfw_show)"; fi
        snap "$T_DIR/eg-after"
        t_same "$label: second run leaves iptables-save identical" "$T_DIR/eg-before" "$T_DIR/eg-after"
    fi
}

# eg_bad <label> <override> <ERE> — a bad value: failed=true, msg matches <ERE>, changed=false,
# iptables-save and the rules files unchanged
eg_bad() {
    local label=$1 o=$2 re=$3
    snap "$T_DIR/eg-bad-before"
    files_state "$RULES_DIR/rules.v4" "$RULES_DIR/rules.v6" >"$T_DIR/eg-bad-files-before"
    if ! dfw "$o"; then
        not_ok "$label: one JSON object on stdout" "$(dfw_show)"
        return
    fi
    if [ "$(dfw_q .failed)" = true ]; then
        ok "$label: failed=true"
        t_match "$label: msg names the field" "$re" "$(dfw_q .msg)"
        t_eq "$label: changed=false" false "$(dfw_q '.changed // false')"
    else
        not_ok "$label: failed=true" "$(dfw_show)"
    fi
    snap "$T_DIR/eg-bad-after"
    t_same "$label: iptables-save unchanged" "$T_DIR/eg-bad-before" "$T_DIR/eg-bad-after"
    files_state "$RULES_DIR/rules.v4" "$RULES_DIR/rules.v6" >"$T_DIR/eg-bad-files-after"
    t_same "$label: rules files unchanged" "$T_DIR/eg-bad-files-before" "$T_DIR/eg-bad-files-after"
}
