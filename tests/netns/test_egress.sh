#!/usr/bin/env bash
# Egress control with real packets (issue 4): egress.deny_private keeps containers from opening
# connections to private ranges (internal service 10.200.50.10 / fd00:250::10 behind the host's
# int0) but not to a public host (198.18.0.10 / 2001:db8:18::10); egress.allow opens exactly the
# destination, port and protocol it names; egress.deny_host keeps containers from the host's own
# addresses (docker0 and eth0 addresses) while outside clients and the host itself are unaffected;
# containers on one Docker network still reach each other (bridged traffic through iptables:
# br_netfilter); replies pass; custom private_ranges; switching egress off removes every egress
# rule; each combination's second run reports changed=false; bad values fail and change nothing.
# Neighbour caches are flushed before each batch of probes, so IPv6 neighbour discovery between
# the containers and the host (which goes through INPUT) is exercised every time.
# layouts: docker20 docker28
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=egress_lib.sh
. "$(dirname "$0")/egress_lib.sh"
t_trap
t_need_bin
eg_lab_up

# ---------------------------------------------------------------- baseline: the lab itself works
# (so every "closed" below is the module's doing)
eg_flush_neigh
T_PRE="lab, no module: " eg_expect \
    "c1 -> svc:5432|$NS_C1|$SVC4|5432|open:svc" \
    "c1 -> [svc]:5432|$NS_C1|$SVC6|5432|open:svc" \
    "c1 -> svc udp 5353|$NS_C1|$SVC4|u5353|open:svc-udp" \
    "c1 -> [svc] udp 5353|$NS_C1|$SVC6|u5353|open:svc-udp" \
    "c1 -> svc icmp|$NS_C1|$SVC4|icmp|open" \
    "c1 -> pub:5432|$NS_C1|$PUB4|5432|open:pub" \
    "c1 -> [pub]:5432|$NS_C1|$PUB6|5432|open:pub" \
    "c1 -> docker0 addr:2222|$NS_C1|$GW1_4|2222|open:host" \
    "c1 -> [docker0 addr]:2222|$NS_C1|$GW1_6|2222|open:host" \
    "c1 -> eth0 addr:2222|$NS_C1|$HOST4|2222|open:host" \
    "c1 -> c3:7000|$NS_C1|$C3_4|7000|open:c3" \
    "c1 -> [c3]:7000|$NS_C1|$C3_6|7000|open:c3"

bridge_nf=$(ip netns exec "$NS_HOST" cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)
bridge_nf6=$(ip netns exec "$NS_HOST" cat /proc/sys/net/bridge/bridge-nf-call-ip6tables 2>/dev/null)
if [ "$bridge_nf" != 1 ] || [ "$bridge_nf6" != 1 ]; then
    # try inside the host namespace only (per-namespace sysctl since Linux 5.3)
    ip netns exec "$NS_HOST" sh -c 'echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables; echo 1 >/proc/sys/net/bridge/bridge-nf-call-ip6tables' 2>/dev/null
    bridge_nf=$(ip netns exec "$NS_HOST" cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)
    bridge_nf6=$(ip netns exec "$NS_HOST" cat /proc/sys/net/bridge/bridge-nf-call-ip6tables 2>/dev/null)
fi
[ "$bridge_nf" = 1 ] && [ "$bridge_nf6" = 1 ] && BRNF=1 || BRNF=
[ -n "$BRNF" ] || diag "br_netfilter is not active in the host namespace: traffic between containers on one bridge does not traverse iptables, the same-network checks only show it is not broken"

# same_network <label> — c1 <-> c3 (docker0) both ways, both families; with br_netfilter the
# packets went through FORWARD and hit the module's "-i docker0 -o docker0 -j RETURN"
same_network() {
    local label=$1 before4 before6 after4 after6
    before4=$(eg_count 4 DFW-EGRESS '-i docker0 -o docker0')
    before6=$(eg_count 6 DFW-EGRESS '-i docker0 -o docker0')
    eg_flush_neigh
    T_PRE="$label: " eg_expect \
        "c1 -> c3:7000 (same Docker network)|$NS_C1|$C3_4|7000|open:c3" \
        "c1 -> [c3]:7000 (same Docker network)|$NS_C1|$C3_6|7000|open:c3" \
        "c3 -> c1:80 (same Docker network)|$NS_C3|$C1_4|80|open:c1" \
        "c3 -> [c1]:80 (same Docker network)|$NS_C3|$C1_6|80|open:c1"
    if [ -n "$BRNF" ] && [ -n "$before4" ]; then
        after4=$(eg_count 4 DFW-EGRESS '-i docker0 -o docker0')
        after6=$(eg_count 6 DFW-EGRESS '-i docker0 -o docker0')
        check "$label: bridged container traffic went through DFW-EGRESS's same-network RETURN (IPv4: $before4 -> $after4 packets)" test "${after4:-0}" -ge $((before4 + 2))
        check "$label: bridged container traffic went through DFW-EGRESS's same-network RETURN (IPv6: $before6 -> $after6 packets)" test "${after6:-0}" -ge $((before6 + 2))
    fi
}

# ================================================================ 1. deny_private
P1='{"egress":{"deny_private":true}}'
snap "$T_DIR/s0"
if t_dfw_ok "deny_private: apply" "$P1"; then
    t_changed "deny_private: first run reports changed" true
    for f in 4 6; do
        t_eq "deny_private: IPv$f hooks DFW-EGRESS from DOCKER-USER" 1 "$(chain_rules "$f" filter DOCKER-USER | grep -c -- '-j DFW-EGRESS$')"
        t_eq "deny_private: IPv$f has no host guard" 0 "$(chain_rules "$f" filter INPUT | grep -c 'DFW-HOST-GUARD')"
    done
    # unowned rules untouched
    snap "$T_DIR/s1"
    t_unowned <"$T_DIR/s0" >"$T_DIR/s0.unowned"
    t_unowned <"$T_DIR/s1" >"$T_DIR/s1.unowned"
    t_same "deny_private: rules the module does not own are untouched" "$T_DIR/s0.unowned" "$T_DIR/s1.unowned"
    declare -A log0 drop0
    for f in 4 6; do
        log0[$f]=$(eg_log_count "$f" DFW-EGRESS-DENY)
        drop0[$f]=$(eg_count "$f" DFW-EGRESS-DENY '-j DROP')
    done

    eg_flush_neigh
    T_PRE="deny_private: " eg_expect \
        "c1 -> svc:5432 blocked|$NS_C1|$SVC4|5432|timeout" \
        "c1 -> svc:22 blocked|$NS_C1|$SVC4|22|timeout" \
        "c1 -> [svc]:5432 blocked|$NS_C1|$SVC6|5432|timeout" \
        "c1 -> [svc]:22 blocked|$NS_C1|$SVC6|22|timeout" \
        "c1 -> svc udp 5353 blocked|$NS_C1|$SVC4|u5353|closed" \
        "c1 -> [svc] udp 5353 blocked|$NS_C1|$SVC6|u5353|closed" \
        "c1 -> svc icmp blocked|$NS_C1|$SVC4|icmp|closed" \
        "c1 -> [svc] icmp blocked|$NS_C1|$SVC6|icmp|closed" \
        "c2 (br- network) -> svc:5432 blocked|$NS_C2|$SVC4|5432|timeout" \
        "c2 (br- network) -> [svc]:5432 blocked|$NS_C2|$SVC6|5432|timeout" \
        "c1 -> pub:5432 (public) open|$NS_C1|$PUB4|5432|open:pub" \
        "c1 -> pub:22 (public) open|$NS_C1|$PUB4|22|open:pub" \
        "c1 -> [pub]:5432 (public) open|$NS_C1|$PUB6|5432|open:pub" \
        "c1 -> [pub]:22 (public) open|$NS_C1|$PUB6|22|open:pub" \
        "c1 -> pub udp 5353 open|$NS_C1|$PUB4|u5353|open:pub-udp" \
        "c1 -> [pub] udp 5353 open|$NS_C1|$PUB6|u5353|open:pub-udp" \
        "c1 -> pub icmp open|$NS_C1|$PUB4|icmp|open" \
        "c1 -> [pub] icmp open|$NS_C1|$PUB6|icmp|open" \
        "c2 (br- network) -> pub:5432 open|$NS_C2|$PUB4|5432|open:pub" \
        "c2 (br- network) -> [pub]:5432 open|$NS_C2|$PUB6|5432|open:pub" \
        "c1 -> lab internet 198.18.0.1:9000 open|$NS_C1|$NET4|$NET_PORT|open:net" \
        "c1 -> docker0 addr:2222 (host: deny_host's job, not deny_private's)|$NS_C1|$GW1_4|2222|open:host" \
        "c1 -> [docker0 addr]:2222 (host: not deny_private's)|$NS_C1|$GW1_6|2222|open:host" \
        "c1 -> eth0 addr:2222 (host: not deny_private's)|$NS_C1|$HOST4|2222|open:host" \
        "svc -> int0 addr:8080 (published; c1's replies to a private address pass)|$NS_SVC|$INT4|8080|open:c1" \
        "svc -> [int0 addr]:8080 (published; c1's replies to a private address pass)|$NS_SVC|$INT6|8080|open:c1" \
        "host -> svc:5432 (the host's own traffic)|$NS_HOST|$SVC4|5432|open:svc" \
        "host -> [svc]:5432 (the host's own traffic)|$NS_HOST|$SVC6|5432|open:svc" \
        "allowed -> host:8080 (ingress policy unchanged)|$NS_ALLOWED|$HOST4|8080|open:c1" \
        "allowed -> [host]:8080 (ingress policy unchanged)|$NS_ALLOWED|$HOST6|8080|open:c1" \
        "denied -> host:8080 (ingress policy unchanged)|$NS_DENIED|$HOST4|8080|timeout"
    same_network "deny_private"
    for f in 4 6; do
        l0=${log0[$f]:-0} d0=${drop0[$f]:-0}
        l1=$(eg_log_count "$f" DFW-EGRESS-DENY)
        d1=$(eg_count "$f" DFW-EGRESS-DENY '-j DROP')
        check "deny_private: IPv$f out-drop LOG rule counted the blocked packets ($l0 -> $l1)" test "${l1:-0}" -gt "$l0"
        check "deny_private: IPv$f DROP rule counted the blocked packets ($d0 -> $d1)" test "${d1:-0}" -gt "$d0"
    done
    eg_rerun_unchanged "deny_private" "$P1"
fi

# ================================================================ 2. deny_private + allow
P2=$(jq -nc --arg s4 "$SVC4" --arg s6 "$SVC6" --arg b4 "$SVC4B/32" --arg b6 "$SVC6B/128" '{egress: {
    deny_private: true,
    allow: [
        {destinations: [$s4, $s6], ports: [5432], comment: "db"},
        {destinations: [$s4, $s6], ports: [5353], proto: "udp", comment: "dns"},
        {destinations: [$b4, $b6], ports: ["20-25"]}
    ]}}')
if t_dfw_ok "deny_private + allow: apply" "$P2"; then
    t_changed "deny_private + allow: reports changed" true
    t_match "deny_private + allow: the entry comment is on its rule" 'docker_firewall:[0-9a-f]{12} db".*-j RETURN' "$(chain_rules 4 filter DFW-EGRESS-POLICY)"
    eg_flush_neigh
    T_PRE="deny_private + allow: " eg_expect \
        "c1 -> svc:5432 (allowed) open|$NS_C1|$SVC4|5432|open:svc" \
        "c1 -> [svc]:5432 (allowed) open|$NS_C1|$SVC6|5432|open:svc" \
        "c1 -> svc:22 (same host, other port) blocked|$NS_C1|$SVC4|22|timeout" \
        "c1 -> [svc]:22 (same host, other port) blocked|$NS_C1|$SVC6|22|timeout" \
        "c1 -> svc.11:5432 (same port, other address) blocked|$NS_C1|$SVC4B|5432|timeout" \
        "c1 -> [svc::11]:5432 (same port, other address) blocked|$NS_C1|$SVC6B|5432|timeout" \
        "c1 -> svc udp 5353 (allowed udp) open|$NS_C1|$SVC4|u5353|open:svc-udp" \
        "c1 -> [svc] udp 5353 (allowed udp) open|$NS_C1|$SVC6|u5353|open:svc-udp" \
        "c1 -> svc tcp 5353 (only udp allowed) blocked|$NS_C1|$SVC4|5353|timeout" \
        "c1 -> [svc] tcp 5353 (only udp allowed) blocked|$NS_C1|$SVC6|5353|timeout" \
        "c1 -> svc icmp (entries are tcp/udp) blocked|$NS_C1|$SVC4|icmp|closed" \
        "c1 -> svc.11:22 (allowed range 20-25, CIDR) open|$NS_C1|$SVC4B|22|open:svc" \
        "c1 -> [svc::11]:22 (allowed range 20-25, CIDR) open|$NS_C1|$SVC6B|22|open:svc" \
        "c2 (br- network) -> svc:5432 (allowed) open|$NS_C2|$SVC4|5432|open:svc" \
        "c2 (br- network) -> svc:22 blocked|$NS_C2|$SVC4|22|timeout" \
        "c1 -> pub:22 (public) open|$NS_C1|$PUB4|22|open:pub" \
        "c1 -> [pub]:22 (public) open|$NS_C1|$PUB6|22|open:pub"
    same_network "deny_private + allow"
    eg_rerun_unchanged "deny_private + allow" "$P2"
fi

# ================================================================ 3. deny_host (alone)
P3=$(jq -nc --arg g4 "$GW1_4" --arg g6 "$GW1_6" '{egress: {
    deny_host: true,
    allow: [
        {destinations: [$g4, $g6], ports: [2222], comment: "host ssh"},
        {destinations: [$g4, $g6], ports: [5353], proto: "udp"}
    ]}}')
if t_dfw_ok "deny_host: apply" "$P3"; then
    t_changed "deny_host: reports changed" true
    for f in 4 6; do
        t_eq "deny_host: IPv$f hooks DFW-HOST-GUARD from INPUT" 1 "$(chain_rules "$f" filter INPUT | grep -c -- '-j DFW-HOST-GUARD$')"
        t_eq "deny_host: IPv$f DFW-EGRESS (deny_private) is gone" 0 "$(lab_xt "$NS_HOST" "$f" save -t filter | grep -Ec '^(:DFW-EGRESS |:DFW-EGRESS-POLICY |-A DOCKER-USER .*-j DFW-EGRESS$)')"
    done
    declare -A log0
    for f in 4 6; do log0[$f]=$(eg_log_count "$f" DFW-EGRESS-DENY); done
    eg_flush_neigh
    T_PRE="deny_host: " eg_expect \
        "c1 -> docker0 addr:2223 blocked|$NS_C1|$GW1_4|2223|timeout" \
        "c1 -> [docker0 addr]:2223 blocked|$NS_C1|$GW1_6|2223|timeout" \
        "c1 -> eth0 addr:2222 (external address) blocked|$NS_C1|$HOST4|2222|timeout" \
        "c1 -> [eth0 addr]:2222 (external address) blocked|$NS_C1|$HOST6|2222|timeout" \
        "c1 -> eth0 addr:2223 blocked|$NS_C1|$HOST4|2223|timeout" \
        "c1 -> int0 addr:2223 blocked|$NS_C1|$INT4|2223|timeout" \
        "c1 -> docker0 addr:2222 (allowed) open|$NS_C1|$GW1_4|2222|open:host" \
        "c1 -> [docker0 addr]:2222 (allowed) open|$NS_C1|$GW1_6|2222|open:host" \
        "c1 -> docker0 addr udp 5353 (allowed udp) open|$NS_C1|$GW1_4|u5353|open:host-udp" \
        "c1 -> [docker0 addr] udp 5353 (allowed udp) open|$NS_C1|$GW1_6|u5353|open:host-udp" \
        "c1 -> eth0 addr udp 5353 blocked|$NS_C1|$HOST4|u5353|closed" \
        "c1 -> docker0 addr icmp blocked|$NS_C1|$GW1_4|icmp|closed" \
        "c2 (br- network) -> its gateway:2223 blocked|$NS_C2|$GW2_4|2223|timeout" \
        "c2 (br- network) -> [its gateway]:2223 blocked|$NS_C2|$GW2_6|2223|timeout" \
        "c2 (br- network) -> its gateway:2222 (allow names docker0's address only) blocked|$NS_C2|$GW2_4|2222|timeout" \
        "allowed -> eth0 addr:2222 (outside clients unaffected) open|$NS_ALLOWED|$HOST4|2222|open:host" \
        "allowed -> [eth0 addr]:2222 (outside clients unaffected) open|$NS_ALLOWED|$HOST6|2222|open:host" \
        "denied -> eth0 addr:2223 (outside clients unaffected) open|$NS_DENIED|$HOST4|2223|open:host" \
        "denied -> [eth0 addr]:2223 (outside clients unaffected) open|$NS_DENIED|$HOST6|2223|open:host" \
        "svc -> int0 addr:2223 (internal clients unaffected) open|$NS_SVC|$INT4|2223|open:host" \
        "host -> 127.0.0.1:2223 (host's own traffic) open|$NS_HOST|127.0.0.1|2223|open:host" \
        "host -> [::1]:2223 (host's own traffic) open|$NS_HOST|::1|2223|open:host" \
        "host -> docker0 addr:2223 (host's own traffic) open|$NS_HOST|$GW1_4|2223|open:host" \
        "host -> [eth0 addr]:2223 (host's own traffic) open|$NS_HOST|$HOST6|2223|open:host" \
        "host -> c1:80 (replies from the container enter INPUT) open|$NS_HOST|$C1_4|80|open:c1" \
        "host -> [c1]:80 (replies from the container enter INPUT) open|$NS_HOST|$C1_6|80|open:c1" \
        "c1 -> svc:22 (deny_private off) open|$NS_C1|$SVC4|22|open:svc" \
        "c1 -> [pub]:22 open|$NS_C1|$PUB6|22|open:pub" \
        "allowed -> host:8080 (ingress unchanged)|$NS_ALLOWED|$HOST4|8080|open:c1" \
        "allowed -> [host]:8080 (ingress unchanged, DNAT to c1 over IPv6)|$NS_ALLOWED|$HOST6|8080|open:c1" \
        "denied -> [host]:8080 (ingress unchanged)|$NS_DENIED|$HOST6|8080|timeout"
    # IPv6 neighbour discovery between the host and its containers runs through INPUT: the
    # container's neighbour advertisement must reach the host, or no IPv6 packet reaches c1
    t_match "deny_host: the host resolved c1's IPv6 address (neighbour discovery passes the host guard)" \
        'lladdr .*(REACHABLE|STALE|DELAY|PROBE)' "$(ip -n "$NS_HOST" -6 neigh show "$C1_6" dev docker0)"
    same_network "deny_host"
    for f in 4 6; do
        l0=${log0[$f]:-0}
        l1=$(eg_log_count "$f" DFW-EGRESS-DENY)
        check "deny_host: IPv$f out-drop LOG rule counted the blocked packets ($l0 -> $l1)" test "${l1:-0}" -gt "$l0"
    done
    eg_rerun_unchanged "deny_host" "$P3"
fi

# ================================================================ 4. both, with strategy both
P4=$(jq -nc --arg s4 "$SVC4" --arg s6 "$SVC6" '{strategy: "both", egress: {
    deny_private: true, deny_host: true,
    allow: [{destinations: [$s4, $s6], ports: [5432]}]}}')
if t_dfw_ok "deny_private + deny_host, strategy both: apply" "$P4"; then
    t_changed "deny_private + deny_host, strategy both: reports changed" true
    eg_flush_neigh
    T_PRE="deny_private + deny_host, strategy both: " eg_expect \
        "c1 -> svc:5432 (allowed) open|$NS_C1|$SVC4|5432|open:svc" \
        "c1 -> [svc]:22 blocked|$NS_C1|$SVC6|22|timeout" \
        "c1 -> docker0 addr:2222 blocked|$NS_C1|$GW1_4|2222|timeout" \
        "c1 -> [eth0 addr]:2222 blocked|$NS_C1|$HOST6|2222|timeout" \
        "c1 -> pub:5432 open|$NS_C1|$PUB4|5432|open:pub" \
        "c1 -> [pub]:5432 open|$NS_C1|$PUB6|5432|open:pub" \
        "allowed -> host:8080|$NS_ALLOWED|$HOST4|8080|open:c1" \
        "allowed -> [host]:8080|$NS_ALLOWED|$HOST6|8080|open:c1" \
        "denied -> host:8080 blocked|$NS_DENIED|$HOST4|8080|closed" \
        "denied -> eth0 addr:2222 (not a published port) open|$NS_DENIED|$HOST4|2222|open:host" \
        "svc -> int0 addr:8080 (published, from a non-external interface) open|$NS_SVC|$INT4|8080|open:c1"
    same_network "deny_private + deny_host"
    eg_rerun_unchanged "deny_private + deny_host, strategy both" "$P4"
fi

# ================================================================ 5. custom private_ranges
P5=$(jq -nc --arg b4 "$SVC4B/32" --arg b6 "$SVC6B/128" '{egress: {deny_private: true, private_ranges: [$b4, $b6]}}')
if t_dfw_ok "custom private_ranges: apply" "$P5"; then
    t_changed "custom private_ranges: reports changed" true
    for f in 4 6; do
        t_eq "custom private_ranges: IPv$f policy holds only the given range (no stale default ranges, no host guard)" \
            1 "$(chain_rules "$f" filter DFW-EGRESS-POLICY | grep -c -- '-j DFW-EGRESS-DENY')" "$(chain_rules "$f" filter DFW-EGRESS-POLICY)"
        t_eq "custom private_ranges: IPv$f host guard removed" 0 "$(lab_xt "$NS_HOST" "$f" save -t filter | grep -c 'DFW-HOST')"
    done
    eg_flush_neigh
    T_PRE="custom private_ranges: " eg_expect \
        "c1 -> svc.11:5432 (in the given range) blocked|$NS_C1|$SVC4B|5432|timeout" \
        "c1 -> [svc::11]:5432 (in the given range) blocked|$NS_C1|$SVC6B|5432|timeout" \
        "c1 -> svc.10:5432 (outside the given range) open|$NS_C1|$SVC4|5432|open:svc" \
        "c1 -> [svc::10]:5432 (outside the given range) open|$NS_C1|$SVC6|5432|open:svc" \
        "c1 -> docker0 addr:2222 (deny_host off again) open|$NS_C1|$GW1_4|2222|open:host"
    eg_rerun_unchanged "custom private_ranges" "$P5"
fi

# ================================================================ 6. bad values change nothing
snap "$T_DIR/before-bad"
eg_bad "egress.private_ranges [10.0.0.0/33]" '{"egress":{"deny_private":true,"private_ranges":["10.0.0.0/33"]}}' 'egress\.private_ranges'
eg_bad "egress.private_ranges [fd00::/129]" '{"egress":{"deny_private":true,"private_ranges":["fd00::/129"]}}' 'egress\.private_ranges'
eg_bad "egress.private_ranges empty" '{"egress":{"deny_private":true,"private_ranges":[]}}' 'egress\.private_ranges'
eg_bad "egress.allow entry without destinations" '{"egress":{"deny_private":true,"allow":[{"ports":[5432]}]}}' 'egress\.allow\[0\]'
eg_bad "egress.allow port 70000" '{"egress":{"deny_private":true,"allow":[{"destinations":["10.200.50.10"],"ports":[70000]}]}}' 'egress\.allow\[0\]'
eg_bad "egress.allow proto icmp" '{"egress":{"deny_private":true,"allow":[{"destinations":["10.200.50.10"],"proto":"icmp"}]}}' 'egress\.allow\[0\]'
eg_bad "egress.deny_host not a bool" '{"egress":{"deny_host":"perhaps"}}' 'egress\.deny_host'
eg_bad "unknown key in egress" '{"egress":{"deny_privat":true}}' 'deny_privat'
eg_flush_neigh
T_PRE="after the bad runs: " eg_expect \
    "c1 -> svc.11:5432 still blocked|$NS_C1|$SVC4B|5432|timeout" \
    "c1 -> svc.10:5432 still open|$NS_C1|$SVC4|5432|open:svc"

# ================================================================ 7. egress off again
P7='{"egress":{"deny_private":false,"deny_host":false}}'
if t_dfw_ok "egress off: apply" "$P7"; then
    t_changed "egress off: reports changed" true
    for f in 4 6; do
        t_eq "egress off: IPv$f no egress chain or hook is left" "" \
            "$(lab_xt "$NS_HOST" "$f" save | grep -E 'DFW-(EGRESS|HOST)')"
    done
    eg_flush_neigh
    T_PRE="egress off: " eg_expect \
        "c1 -> svc.11:5432 open|$NS_C1|$SVC4B|5432|open:svc" \
        "c1 -> [svc]:22 open|$NS_C1|$SVC6|22|open:svc" \
        "c1 -> docker0 addr:2223 open|$NS_C1|$GW1_4|2223|open:host" \
        "denied -> host:8080 still blocked (ingress)|$NS_DENIED|$HOST4|8080|timeout"
    eg_rerun_unchanged "egress off" "$P7"
fi

t_done
