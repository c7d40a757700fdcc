#!/usr/bin/env bash
# Audit mode with real packets (issue 4): audit=true drops nothing — containers reach the private
# service and the host, a denied outside client reaches the published port — while the LOG rules
# of DFW-EGRESS-DENY / DFW-INGRESS-DENY (prefix "... out-audit " / "... in-audit ") count exactly
# the packets that would have been dropped (iptables-save -c), and allowed traffic is not counted.
# Switching audit off enforces again (changed=true, then changed=false). Check mode changes
# nothing. The prerouting gate's audit LOG (nat DFW-GATE-POLICY) counts what it lets through.
# Neighbour caches are flushed before each batch of probes (IPv6 neighbour discovery between the
# containers and the host goes through INPUT, so it must not be logged or dropped either).
# layouts: docker20 docker28
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=egress_lib.sh
. "$(dirname "$0")/egress_lib.sh"
t_trap
t_need_bin
eg_lab_up

EG='"egress":{"deny_private":true,"deny_host":true}'
A_ON="{$EG,\"audit\":true}"
A_OFF="{$EG,\"audit\":false}"

# counters <file> — LOG / DROP packet counters of both deny chains, both families
counters() {
    local f c
    for f in 4 6; do
        for c in DFW-EGRESS-DENY DFW-INGRESS-DENY; do
            echo "$c/$f log=$(eg_log_count "$f" "$c") drop=$(eg_count "$f" "$c" '-j (DROP|REJECT)')"
        done
    done >"$1"
}
# delta <before> <after> <chain/fam> <log|drop> — how much the counter grew
delta() {
    local a b
    a=$(awk -v k="$3" -v f="$4" '$1 == k { for (i = 2; i <= NF; i++) if (index($i, f "=") == 1) print substr($i, length(f) + 2) }' "$1")
    b=$(awk -v k="$3" -v f="$4" '$1 == k { for (i = 2; i <= NF; i++) if (index($i, f "=") == 1) print substr($i, length(f) + 2) }' "$2")
    echo $((${b:-0} - ${a:-0}))
}

# denied_probes audit|drop — the connections the policy denies (egress: c1 -> svc:22, -> the
# docker0 address, -> the eth0 address; ingress: denied client -> published 8080): in audit mode
# each reaches its server, in drop mode each times out
denied_probes() {
    local svc=open:svc host=open:host c1=open:c1
    [ "$1" = drop ] && svc=timeout host=timeout c1=timeout
    eg_expect \
        "c1 -> svc:22|$NS_C1|$SVC4|22|$svc" \
        "c1 -> [svc]:22|$NS_C1|$SVC6|22|$svc" \
        "c1 -> docker0 addr:2222|$NS_C1|$GW1_4|2222|$host" \
        "c1 -> [docker0 addr]:2222|$NS_C1|$GW1_6|2222|$host" \
        "c1 -> eth0 addr:2223|$NS_C1|$HOST4|2223|$host" \
        "c1 -> [eth0 addr]:2223|$NS_C1|$HOST6|2223|$host" \
        "denied -> host:8080|$NS_DENIED|$HOST4|8080|$c1" \
        "denied -> [host]:8080|$NS_DENIED|$HOST6|8080|$c1"
}

# ================================================================ 1. audit on
if t_dfw_ok "audit on: apply" "$A_ON"; then
    t_changed "audit on: first run reports changed" true
    for f in 4 6; do
        t_match "audit on: IPv$f egress LOG rule with prefix 'docker-fw out-audit '" \
            '-j LOG --log-prefix "docker-fw out-audit "$' "$(chain_rules "$f" filter DFW-EGRESS-DENY)"
        t_match "audit on: IPv$f ingress LOG rule with prefix 'docker-fw in-audit '" \
            '-j LOG --log-prefix "docker-fw in-audit "$' "$(chain_rules "$f" filter DFW-INGRESS-DENY)"
        t_eq "audit on: IPv$f deny chains end in RETURN and drop nothing" "RETURN RETURN" \
            "$(for c in DFW-EGRESS-DENY DFW-INGRESS-DENY; do chain_rules "$f" filter "$c" | tail -1 | awk '{print $NF}'; done | xargs)" \
            "$(chain_rules "$f" filter DFW-EGRESS-DENY; chain_rules "$f" filter DFW-INGRESS-DENY)"
        t_eq "audit on: IPv$f no DROP/REJECT rule in any DFW- chain" 0 \
            "$(lab_xt "$NS_HOST" "$f" save | grep -E '^-A DFW-' | grep -cE -- '-j (DROP|REJECT)')"
    done

    # allowed traffic: nothing is counted
    counters "$T_DIR/c0"
    eg_flush_neigh
    T_PRE="audit on, allowed traffic: " eg_expect \
        "c1 -> pub:22|$NS_C1|$PUB4|22|open:pub" \
        "c1 -> [pub]:22|$NS_C1|$PUB6|22|open:pub" \
        "c1 -> c3:7000|$NS_C1|$C3_4|7000|open:c3" \
        "c1 -> [c3]:7000|$NS_C1|$C3_6|7000|open:c3" \
        "allowed -> host:8080|$NS_ALLOWED|$HOST4|8080|open:c1" \
        "allowed -> [host]:8080|$NS_ALLOWED|$HOST6|8080|open:c1" \
        "host -> c1:80|$NS_HOST|$C1_4|80|open:c1"
    counters "$T_DIR/c1"
    t_same "audit on: allowed traffic is not logged (counters unchanged)" "$T_DIR/c0" "$T_DIR/c1"

    # denied traffic: gets through, and is counted
    eg_flush_neigh
    T_PRE="audit on, would-be-dropped traffic passes: " denied_probes audit
    counters "$T_DIR/c2"
    d=$(delta "$T_DIR/c1" "$T_DIR/c2" DFW-EGRESS-DENY/4 log)
    check "audit on: IPv4 out-audit LOG rule counted the 3 would-be-dropped connections (+$d)" test "$d" -ge 3
    d=$(delta "$T_DIR/c1" "$T_DIR/c2" DFW-EGRESS-DENY/6 log)
    check "audit on: IPv6 out-audit LOG rule counted the 3 would-be-dropped connections (+$d)" test "$d" -ge 3
    d=$(delta "$T_DIR/c1" "$T_DIR/c2" DFW-INGRESS-DENY/4 log)
    check "audit on: IPv4 in-audit LOG rule counted the denied client (+$d)" test "$d" -ge 1
    d=$(delta "$T_DIR/c1" "$T_DIR/c2" DFW-INGRESS-DENY/6 log)
    check "audit on: IPv6 in-audit LOG rule counted the denied client (+$d)" test "$d" -ge 1
    eg_rerun_unchanged "audit on" "$A_ON"
fi

# ================================================================ 2. check mode: audit off previewed
snap "$T_DIR/pre-check"
if t_dfw_ok "audit off, check mode: runs" "$(jq -c '. + {"_ansible_check_mode": true}' <<<"$A_OFF")"; then
    t_changed "audit off, check mode: reports changed" true
    snap "$T_DIR/post-check"
    t_same "audit off, check mode: iptables-save unchanged" "$T_DIR/pre-check" "$T_DIR/post-check"
fi

# ================================================================ 3. audit off: enforced again
if t_dfw_ok "audit off: apply" "$A_OFF"; then
    t_changed "audit off: reports changed=true" true
    for f in 4 6; do
        t_match "audit off: IPv$f egress LOG prefix 'docker-fw out-drop '" \
            '-j LOG --log-prefix "docker-fw out-drop "$' "$(chain_rules "$f" filter DFW-EGRESS-DENY)"
        t_match "audit off: IPv$f ingress LOG prefix 'docker-fw in-drop '" \
            '-j LOG --log-prefix "docker-fw in-drop "$' "$(chain_rules "$f" filter DFW-INGRESS-DENY)"
        t_eq "audit off: IPv$f no audit LOG rule left" 0 "$(lab_xt "$NS_HOST" "$f" save | grep -c 'audit ')"
        t_eq "audit off: IPv$f deny chains end in DROP" "DROP DROP" \
            "$(for c in DFW-EGRESS-DENY DFW-INGRESS-DENY; do chain_rules "$f" filter "$c" | tail -1 | awk '{print $NF}'; done | xargs)"
    done
    counters "$T_DIR/c3"
    eg_flush_neigh
    T_PRE="audit off: " denied_probes drop
    counters "$T_DIR/c4"
    for k in DFW-EGRESS-DENY/4 DFW-EGRESS-DENY/6 DFW-INGRESS-DENY/4 DFW-INGRESS-DENY/6; do
        d=$(delta "$T_DIR/c3" "$T_DIR/c4" "$k" drop)
        check "audit off: $k DROP rule counted the blocked packets (+$d)" test "$d" -ge 1
        d=$(delta "$T_DIR/c3" "$T_DIR/c4" "$k" log)
        check "audit off: $k drop LOG rule counted the blocked packets (+$d)" test "$d" -ge 1
    done
    eg_flush_neigh
    T_PRE="audit off: " eg_expect \
        "c1 -> [pub]:22 still open|$NS_C1|$PUB6|22|open:pub" \
        "allowed -> host:8080 still open|$NS_ALLOWED|$HOST4|8080|open:c1"
    eg_rerun_unchanged "audit off" "$A_OFF"
fi

# ================================================================ 4. audit on the prerouting gate
GATE_ON='{"strategy":"prerouting","audit":true}'
GATE_OFF='{"strategy":"prerouting","audit":false}'
lab_proxy on
if t_dfw_ok "prerouting, audit on: apply" "$GATE_ON"; then
    t_changed "prerouting, audit on: reports changed" true
    for f in 4 6; do
        t_match "prerouting, audit on: IPv$f gate LOG rule (nat DFW-GATE-POLICY) with prefix 'docker-fw in-audit '" \
            '-j LOG --log-prefix "docker-fw in-audit "$' "$(chain_rules "$f" nat DFW-GATE-POLICY)"
        t_eq "prerouting, audit on: IPv$f gate policy ends in RETURN (DNAT goes on)" RETURN \
            "$(chain_rules "$f" nat DFW-GATE-POLICY | tail -1 | awk '{print $NF}')"
        t_eq "prerouting, audit on: IPv$f egress chains removed" 0 "$(lab_xt "$NS_HOST" "$f" save | grep -cE 'DFW-(EGRESS|HOST)')"
    done
    g4=$(EG_TABLE=nat eg_log_count 4 DFW-GATE-POLICY)
    g6=$(EG_TABLE=nat eg_log_count 6 DFW-GATE-POLICY)
    eg_flush_neigh
    T_PRE="prerouting, audit on: " eg_expect \
        "denied -> host:8080 passes (served by the container: DNAT)|$NS_DENIED|$HOST4|8080|open:c1" \
        "denied -> [host]:8080 passes (DNAT)|$NS_DENIED|$HOST6|8080|open:c1" \
        "allowed -> host:8080|$NS_ALLOWED|$HOST4|8080|open:c1"
    t_eq "prerouting, audit on: IPv4 denied client is served through DNAT, not by docker-proxy" dnat "$(probe_who "$NS_DENIED" "$HOST4" 8080)"
    t_eq "prerouting, audit on: IPv6 denied client is served through DNAT, not by docker-proxy" dnat "$(probe_who "$NS_DENIED" "$HOST6" 8080)"
    n4=$(EG_TABLE=nat eg_log_count 4 DFW-GATE-POLICY)
    n6=$(EG_TABLE=nat eg_log_count 6 DFW-GATE-POLICY)
    check "prerouting, audit on: IPv4 gate in-audit LOG rule counted the denied client ($g4 -> $n4)" test "${n4:-0}" -gt "${g4:-0}"
    check "prerouting, audit on: IPv6 gate in-audit LOG rule counted the denied client ($g6 -> $n6)" test "${n6:-0}" -gt "${g6:-0}"
    eg_rerun_unchanged "prerouting, audit on" "$GATE_ON"
fi
if t_dfw_ok "prerouting, audit off: apply" "$GATE_OFF"; then
    t_changed "prerouting, audit off: reports changed=true" true
    for f in 4 6; do
        t_eq "prerouting, audit off: IPv$f gate policy ends in ACCEPT (no DNAT)" ACCEPT \
            "$(chain_rules "$f" nat DFW-GATE-POLICY | tail -1 | awk '{print $NF}')"
    done
    eg_flush_neigh
    T_PRE="prerouting, audit off: " eg_expect \
        "denied -> host:8080 blocked (gate and proxy guard)|$NS_DENIED|$HOST4|8080|closed" \
        "denied -> [host]:8080 blocked|$NS_DENIED|$HOST6|8080|closed" \
        "allowed -> host:8080|$NS_ALLOWED|$HOST4|8080|open:c1"
    eg_rerun_unchanged "prerouting, audit off" "$GATE_OFF"
fi

t_done
