#!/usr/bin/env bash
# The nftables dataplane (issue 12) with real packets: on Docker's nftables firewall backend
# (dockernft: ip/ip6 docker-bridges, no iptables rules) and with `dataplane: nftables` on the
# iptables layouts (docker20, docker28; both iptables backends).
#  - the lab first shows the hole: the stranger reaches every published port (TCP, UDP, IPv4, IPv6);
#  - auto picks nftables on dockernft and iptables on the iptables layouts;
#  - check mode changes nothing (nft ruleset and iptables-save identical) and predicts the change;
#  - rules_nft, loaded as a boot would, gives the same table (the next run changes nothing); after
#    absent or a switch to iptables it no longer defines the table;
#  - the default policy: the allowed client reaches its ports, the stranger is dropped, UDP entries
#    apply to UDP only, with and without the docker-proxy-like listeners; a connection opened
#    before the run keeps working and containers reach out (replies pass); Docker's tables (or
#    Docker's iptables rules) stay as they were; the module's table is the only one it adds;
#  - 2,300 overlapping sources (interval sets, read back as ranges), families [ipv4];
#  - allow by port (any source), by destination address (the host address the port is published
#    on), reject (refused at once) vs drop (timeout), audit (nothing dropped, the audit log rule
#    matches), log rate limiting (one bucket logs its burst, then nothing) and log.enabled false;
#  - egress deny_private / deny_host with egress.allow;
#  - every policy applied twice, the second run changed=false with an identical ruleset;
#  - bad input (dataplane bogus, a bad source) fails naming the field and changes nothing;
#  - iptables layouts: switching dataplane iptables -> nftables removes every DFW- chain and hook,
#    and back; a firewalld-style wipe of every iptables chain (Docker then recreates its own) and a
#    ufw-style `iptables-restore --noflush` declaring :DOCKER-USER leave the stranger outside;
#  - a port Docker publishes after the run, and a container reached directly (routed mode), are
#    judged on the way to the bridge (original port); a Docker restart (dockernft: its tables
#    deleted and re-created) leaves our table alone;
#  - state absent (check mode first) removes the table and leaves Docker's state byte-identical;
#  - IPv4-only networks (no IPv6 DNAT; docker-proxy serves IPv6 published ports): IPv6 is judged too;
#  - dockernft with the userland proxy off (Docker's other DNAT shape);
#  - dockernft: auto while Docker's tables are gone for a while, then back: the ports are protected.
# layouts: docker20 docker28 dockernft
# Docker's nftables backend on both iptables backends; on Docker's iptables layouts each backend
# once (the dataplane reads them through the same code; run.sh -j with LAYOUTS/BACKENDS and
# this line removed runs every pair).
# combos: nft/dockernft legacy/dockernft nft/docker28 legacy/docker20
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=egress_lib.sh
. "$(dirname "$0")/egress_lib.sh"
# shellcheck source=nft_lib.sh
. "$(dirname "$0")/nft_lib.sh"
t_trap
t_need_bin
eg_lab_up
if ! lab_extra_ports >"$T_DIR/extra_ports.log" 2>&1; then
    not_ok "lab: udp 8080 and tcp 8007 published" "$(cat "$T_DIR/extra_ports.log")"
    t_done
fi
NFTL=
[ "$LAYOUT" = dockernft ] && NFTL=1
HOST2_4=10.200.0.2
HOST2_6=fd00:200::2
ip -n "$NS_HOST" addr add "$HOST2_4/24" dev eth0
ip -n "$NS_HOST" addr add "$HOST2_6/64" dev eth0 nodad

# udp_specs <allowed-expect> <denied-expect> — UDP 8080 from both clients, both families
# (dfw_base allows UDP 8080 for the "denied" client only)
udp_specs() {
    echo "allowed udp v4 -> host:8080|$NS_ALLOWED|$HOST4|u8080|$1"
    echo "allowed udp v6 -> host:8080|$NS_ALLOWED|$HOST6|u8080|$1"
    echo "denied udp v4 -> host:8080|$NS_DENIED|$HOST4|u8080|$2"
    echo "denied udp v6 -> host:8080|$NS_DENIED|$HOST6|u8080|$2"
}
# held <label> — the connections opened before the first run still carry data
held() {
    local f
    for f in 4 6; do
        if lab_hold_say "h$f" "$1-$f"; then ok "$1: IPv$f connection opened before the run still works"; else
            not_ok "$1: IPv$f connection opened before the run still works" "$(tail -3 "$LAB_DIR/hold-h$f.out" "$LAB_DIR/hold-h$f.err" 2>&1)"
        fi
    done
}
# base_probes <label> — the default policy (dfw_base) with real packets
base_probes() {
    mapfile -t P < <(reach_specs allowed dnat; reach_specs denied timeout; outbound_specs)
    T_PRE="$1: " expect_probes "${P[@]}"
    mapfile -t P < <(udp_specs closed open:c1-udp)
    T_PRE="$1: " eg_expect "${P[@]}"
}

# ================================================================ 0. the hole
mapfile -t P < <(reach_specs allowed dnat; reach_specs denied dnat; outbound_specs)
T_PRE="no module: " expect_probes "${P[@]}"
mapfile -t P < <(udp_specs open:c1-udp open:c1-udp)
T_PRE="no module: " eg_expect "${P[@]}"
if [ -n "$NFTL" ]; then
    t_eq "dockernft: Docker's tables are loaded" "table ip docker-bridges
table ip6 docker-bridges" "$(lab_nft list tables)"
    t_eq "dockernft: no iptables rules from Docker (no DOCKER-USER)" 0 "$(snap /dev/stdout | grep -c '^-A ')"
    # the exposure report reads the ports from Docker's DNAT rules and walks its chains: what the
    # probes above reached is open (both families, TCP and UDP)
    T_SEQ=$((T_SEQ + 1))
    dfw_exec exposure --json
    t_eq "dockernft, no module: exposure says every published port is open" \
        "ipv4 tcp 8007 open,ipv4 tcp 8080 open,ipv4 tcp 8443 open,ipv4 udp 8080 open,ipv6 tcp 8007 open,ipv6 tcp 8080 open,ipv6 tcp 8443 open,ipv6 udp 8080 open" \
        "$(dfw_q '[.ports[] | "\(.family) \(.proto) \(.host_port) \(.verdict)"] | sort | join(",")')" \
        "rc=$DFW_RC $(head -c 1500 "$DFW_OUT") $(head -c 500 "$DFW_ERR")"
fi
for f in 4 6; do
    if [ "$f" = 4 ]; then a=$HOST4; else a=$HOST6; fi
    if lab_hold_open "h$f" "$NS_DENIED" "$a"; then ok "no module: IPv$f connection from the stranger to 8007 opened (held open)"; else
        not_ok "no module: IPv$f connection from the stranger to 8007 opened (held open)" "$(cat "$LAB_DIR/hold-h$f.err" 2>/dev/null)"
    fi
done
docker_state "$T_DIR/docker-pristine"
lab_nft list tables | sort >"$T_DIR/tables-pristine"

# ================================================================ 1. auto
nsnap "$T_DIR/s0"
if dfw '{"dataplane":null,"_ansible_check_mode":true}' && [ "$(dfw_q '.failed // false')" = false ]; then
    if [ -n "$NFTL" ]; then want=nftables; else want=iptables; fi
    t_eq "auto (no dataplane option) picks $want" "$want" "$(dfw_q .dataplane)" "$(dfw_show)"
    nsnap "$T_DIR/s1"
    t_same "auto in check mode changes nothing" "$T_DIR/s0" "$T_DIR/s1"
else
    not_ok "auto (no dataplane option) runs in check mode" "$(dfw_show)"
fi
if [ -n "$NFTL" ] && dfw '{"dataplane":"auto","_ansible_check_mode":true}'; then
    t_eq "dataplane: auto picks nftables on dockernft" nftables "$(dfw_q .dataplane)" "$(dfw_show)"
fi

# ================================================================ 2. iptables layouts: the iptables dataplane first
if [ -z "$NFTL" ]; then
    if t_dfw_ok "iptables dataplane: apply" '{"dataplane":"iptables"}'; then
        t_eq "iptables dataplane: result dataplane" iptables "$(dfw_q .dataplane)"
        check "iptables dataplane: DFW- chains are live" test "$(ipt_owned_count)" -gt 0
        t_eq "iptables dataplane: no nftables table of ours" "" "$(our_table)"
        base_probes "iptables dataplane"
    fi
fi

# ================================================================ 3. check mode
new_rules_dir
nsnap "$T_DIR/c0"
if t_dfwn_ok "check mode: runs" '{"_ansible_check_mode":true}'; then
    t_changed "check mode: predicts changed" true
    t_eq "check mode: result dataplane" nftables "$(dfw_q .dataplane)"
    check "check mode: plan.nftables lists actions" test "$(nft_plan_len)" -gt 0
    t_match "check mode: the diff shows the table" 'table inet docker_firewall' "$(dfw_q '.diff | tostring')"
    nsnap "$T_DIR/c1"
    t_same "check mode: nft ruleset and iptables-save identical" "$T_DIR/c0" "$T_DIR/c1"
    t_eq "check mode: no rules files written" "" "$(ls -A "$RULES_DIR")"
fi

# ================================================================ 4. the default policy
if nft_apply "nftables" '{}'; then
    # the first run's result is gone (nft_apply ran twice); look at the live state
    check "nftables: rules_nft written with the table" grep -q 'table inet docker_firewall' "$RULES_DIR/docker_firewall.nft"
    t_eq "nftables: no DFW- chain or docker_firewall: rule in iptables" 0 "$(ipt_owned_count)" "$(owned_snap)"
    docker_state "$T_DIR/docker-now"
    t_same "nftables: Docker's state untouched" "$T_DIR/docker-pristine" "$T_DIR/docker-now"
    t_eq "nftables: the only table added is ours" "$(cat "$T_DIR/tables-pristine")" \
        "$(lab_nft list tables | grep -vx 'table inet docker_firewall' | sort)"
    t_match "nftables: base chain prerouting at priority -110" 'type filter hook prerouting priority (-110|dstnat - 10)' "$(our_table)"
    # the exposure report walks our table at its hooks: the module's report (the second run's) and
    # `exposure --policy` (a policy file holds the module's options) say 8080/tcp is restricted to
    # the allowed client; on dockernft the ports come from Docker's own tables, walked too
    row='[.ports // .exposure.ports | .[] | select(.family == "ipv4" and .host_port == 8080 and .proto == "tcp")
         | "\(.verdict) \(.sources | join(","))"] | first'
    t_eq "nftables: the module's exposure report: 8080/tcp restricted to the allowed client" \
        "restricted $ALLOWED4/32" "$(dfw_q "$row")" "$(jq -c .exposure "$DFW_OUT" 2>/dev/null | head -c 1500)"
    jq 'with_entries(select(.key | startswith("_") | not))' "$DFW_ARGS" >"$T_DIR/policy.json"
    T_SEQ=$((T_SEQ + 1))
    dfw_exec exposure --json --policy "$T_DIR/policy.json"
    t_eq "nftables: exposure --policy: 8080/tcp restricted to the allowed client" \
        "restricted $ALLOWED4/32" "$(dfw_q "$row")" "rc=$DFW_RC $(head -c 1500 "$DFW_OUT") $(head -c 500 "$DFW_ERR")"
    t_eq "nftables: exposure --policy: no port open or unknown" "" \
        "$(dfw_q '[.ports[] | select(.verdict == "open" or .verdict == "unknown")] | map("\(.family) \(.host_port) \(.verdict)") | join(" ")')"
    # the rules file is what a boot loads (nftables.service or the watch service): load it into a
    # host without our table and the module finds nothing to change
    nf=$RULES_DIR/docker_firewall.nft
    our_table >"$T_DIR/table-applied"
    if lab_nft -c -f "$nf" >"$T_DIR/nft-c.log" 2>&1; then ok "nftables: nft -c accepts rules_nft"; else not_ok "nftables: nft -c accepts rules_nft" "$(cat "$T_DIR/nft-c.log")"; fi
    lab_nft delete table inet docker_firewall
    if lab_nft -f "$nf" >"$T_DIR/nft-f.log" 2>&1; then
        our_table >"$T_DIR/table-booted"
        t_same "nftables: rules_nft loaded at boot gives the same table" "$T_DIR/table-applied" "$T_DIR/table-booted"
        if t_dfwn_ok "nftables: a run after the boot load" '{}'; then
            t_changed "nftables: a run after the boot load reports changed=false" false
        fi
    else
        not_ok "nftables: rules_nft loads with nft -f" "$(cat "$T_DIR/nft-f.log")"
        t_dfwn_ok "nftables: re-apply after the failed load" '{}'
    fi
    base_probes "nftables, proxy on"
    held "nftables"
    lab_proxy off
    mapfile -t P < <(reach_specs allowed dnat; reach_specs denied timeout)
    T_PRE="nftables, proxy off: " expect_probes "${P[@]}"
    lab_proxy on
    if t_dfwn_ok "nftables: check mode on the applied host" '{"_ansible_check_mode":true}'; then
        t_changed "nftables: check mode on the applied host reports changed=false" false
    fi
fi

# ================================================================ 5. by port, by destination
P5=$(jq -nc --arg a4 "$ALLOWED4" --arg a6 "$ALLOWED6" --arg d4 "$HOST2_4" --arg d6 "$HOST2_6" '{ingress: {allow: [
    {ports: [8443], comment: "anyone"},
    {ports: [8080], sources: [$a4, $a6]},
    {ports: [8007], destination: $d4},
    {ports: [8007], destination: $d6}]}}')
if nft_apply "by port / destination" "$P5"; then
    T_PRE="by port / destination: " expect_probes \
        "denied v4 -> host:8443 (any source)|$NS_DENIED|$HOST4|8443|dnat" \
        "denied v6 -> host:8443 (any source)|$NS_DENIED|$HOST6|8443|dnat" \
        "denied v4 -> host:8080|$NS_DENIED|$HOST4|8080|timeout" \
        "denied v6 -> host:8080|$NS_DENIED|$HOST6|8080|timeout" \
        "allowed v4 -> host:8080|$NS_ALLOWED|$HOST4|8080|dnat" \
        "allowed v6 -> host:8080|$NS_ALLOWED|$HOST6|8080|dnat" \
        "denied v4 -> second address:8007 (allowed destination)|$NS_DENIED|$HOST2_4|8007|open" \
        "denied v6 -> second address:8007 (allowed destination)|$NS_DENIED|$HOST2_6|8007|open" \
        "denied v4 -> first address:8007 (other destination)|$NS_DENIED|$HOST4|8007|timeout" \
        "denied v6 -> first address:8007 (other destination)|$NS_DENIED|$HOST6|8007|timeout"
    mapfile -t P < <(udp_specs closed closed)
    T_PRE="by port / destination (no UDP entry): " eg_expect "${P[@]}"
fi

# ================================================================ 6. reject vs drop
if nft_apply "reject" '{"ingress":{"default":"reject"}}'; then
    mapfile -t P < <(reach_specs allowed dnat; reach_specs denied fastfail)
    T_PRE="reject: " expect_probes "${P[@]}"
fi

# ================================================================ 6b. large and overlapping allow lists; one family
# 2,300 sources: 1,500 consecutive IPv4 addresses (the set holds them as ranges), 500 scattered ones,
# 300 IPv6 ones, and overlapping networks around the allowed client (10.200.0.8/29 + 10.200.0.10,
# fd00:200::10/127 + fd00:200::10); the stranger (.20, ::20) is in none of them
mapfile -t BIG < <(awk 'BEGIN {
    for (i = 0; i < 1500; i++) printf "198.19.%d.%d\n", int(i / 250), i % 250 + 1
    for (i = 0; i < 500; i++) printf "198.18.%d.%d\n", 100 + int(i / 100), (i % 100) * 2 + 1
    for (i = 0; i < 300; i++) printf "fd00:300::%x\n", i * 3 + 1 }')
P6B=$(printf '%s\n' "${BIG[@]}" 10.200.0.8/29 "$ALLOWED4" fd00:200::10/127 "$ALLOWED6" |
    jq -Rsc 'split("\n") | map(select(length > 0)) | {ingress: {allow: [{ports: [8080, 8443], sources: .}]}}')
t0=$(date +%s%N)
if nft_apply "2,300 overlapping sources" "$P6B"; then
    t_figure "nftables dataplane, 2,300 sources: apply + no-op run $((($(date +%s%N) - t0) / 1000000)) ms"
    mapfile -t P < <(reach_specs allowed dnat; reach_specs denied timeout)
    T_PRE="2,300 overlapping sources: " expect_probes "${P[@]}"
fi
if nft_apply "families ipv4" '{"families":["ipv4"]}'; then
    T_PRE="families ipv4: " expect_probes \
        "denied v4 -> host:8080|$NS_DENIED|$HOST4|8080|timeout" \
        "denied v6 -> host:8080 (IPv6 not managed)|$NS_DENIED|$HOST6|8080|dnat" \
        "allowed v4 -> host:8080|$NS_ALLOWED|$HOST4|8080|dnat"
fi

# ================================================================ 7. audit, logging
# (the monitor starts after each run: `nft monitor trace` names rules from the ruleset it read at
# its start, so a monitor started before a table is replaced prints the old rules' text)
if nft_apply "audit" '{"audit":true}'; then
    trace_start "$DENIED4" "$DENIED6"
    mapfile -t P < <(reach_specs denied dnat; reach_specs allowed dnat)
    T_PRE="audit: " expect_probes "${P[@]}"
    trace_stop
    n=$(trace_log_hits)
    check "audit: the audit log rule matched the stranger's connections ($n log hits)" test "$n" -ge 2
    t_match "audit: the log prefix says in-audit" 'log prefix "docker-fw in-audit ' "$(trace_log_lines | head -1)"
    t_eq "audit: nothing dropped by the table" 0 "$(trace_drops)" "$(grep -E 'inet docker_firewall .*verdict drop' "$TRACE_OUT" | head -3)"
fi

if nft_apply "egress audit" '{"audit":true,"egress":{"deny_private":true}}'; then
    trace_start "$C1_4" "$C1_6"
    eg_flush_neigh
    T_PRE="egress audit: " eg_expect \
        "c1 -> svc:22 (would be blocked)|$NS_C1|$SVC4|22|open:svc" \
        "c1 -> [svc]:22 (would be blocked)|$NS_C1|$SVC6|22|open:svc"
    trace_stop
    check "egress audit: the audit log rule matched ($(trace_log_hits) log hits)" test "$(trace_log_hits)" -ge 2
    t_match "egress audit: the log prefix says out-audit" 'log prefix "docker-fw out-audit ' "$(trace_log_lines | head -1)"
    t_eq "egress audit: nothing dropped by the table" 0 "$(trace_drops)"
fi

if nft_apply "log rate 1/hour" '{"log":{"rate":"1/hour"}}'; then
    # a bucket no earlier probe used: stranger -> the host's second address, port 8443
    trace_start "$DENIED4"
    attempts 8 "$NS_DENIED" "$HOST2_4" 8443
    trace_stop
    n=$(trace_log_hits)
    d=$(trace_drops)
    check "log rate 1/hour: the stranger's packets were dropped ($d drops >= 8)" test "$d" -ge 8
    check "log rate 1/hour: one bucket logs at least one packet ($n)" test "$n" -ge 1
    check "log rate 1/hour: one bucket logs its burst (at most 5), not every packet ($n of $d)" test "$n" -le 5
    t_match "log rate 1/hour: the log prefix says in-drop" 'log prefix "docker-fw in-drop ' "$(trace_log_lines | head -1)"
    # the exhausted bucket logs nothing more; another destination port has its own bucket
    trace_start "$DENIED4"
    attempts 1 "$NS_DENIED" "$HOST2_4" 8443
    trace_stop
    t_eq "log rate 1/hour: the exhausted bucket logs nothing ($(trace_drops) drops)" 0 "$(trace_log_hits)"
    trace_start "$DENIED4"
    attempts 1 "$NS_DENIED" "$HOST2_4" 8080
    trace_stop
    check "log rate 1/hour: another destination port has its own bucket ($(trace_log_hits) log hits)" test "$(trace_log_hits)" -ge 1
fi

if nft_apply "log disabled" '{"log":{"enabled":false}}'; then
    t_eq "log disabled: no log statement in the table" 0 "$(our_table | grep -cw log)"
    trace_start "$DENIED4" "$DENIED6"
    mapfile -t P < <(reach_specs denied timeout 8080)
    T_PRE="log disabled: " expect_probes "${P[@]}"
    trace_stop
    t_eq "log disabled: nothing logged" 0 "$(trace_log_hits)"
    check "log disabled: still dropped by the table ($(trace_drops))" test "$(trace_drops)" -ge 2
fi

# ================================================================ 8. egress
P8=$(jq -nc --arg s4 "$SVC4" --arg s6 "$SVC6" '{egress: {deny_private: true, allow: [
    {destinations: [$s4, $s6], ports: [5432], comment: "db"},
    {destinations: [$s4, $s6], ports: [5353], proto: "udp"}]}}')
if nft_apply "deny_private + allow" "$P8"; then
    eg_flush_neigh
    T_PRE="deny_private + allow: " eg_expect \
        "c1 -> svc:5432 (allowed)|$NS_C1|$SVC4|5432|open:svc" \
        "c1 -> [svc]:5432 (allowed)|$NS_C1|$SVC6|5432|open:svc" \
        "c1 -> svc:22 blocked|$NS_C1|$SVC4|22|timeout" \
        "c1 -> [svc]:22 blocked|$NS_C1|$SVC6|22|timeout" \
        "c1 -> svc.11:5432 (other address) blocked|$NS_C1|$SVC4B|5432|timeout" \
        "c1 -> svc udp 5353 (allowed udp)|$NS_C1|$SVC4|u5353|open:svc-udp" \
        "c1 -> [svc] udp 5353 (allowed udp)|$NS_C1|$SVC6|u5353|open:svc-udp" \
        "c2 -> svc:22 blocked|$NS_C2|$SVC4|22|timeout" \
        "c1 -> pub:22 (public)|$NS_C1|$PUB4|22|open:pub" \
        "c1 -> [pub]:22 (public)|$NS_C1|$PUB6|22|open:pub" \
        "c1 -> c3:7000 (same network)|$NS_C1|$C3_4|7000|open:c3" \
        "host -> svc:22 (the host's own traffic)|$NS_HOST|$SVC4|22|open:svc" \
        "svc -> int0 addr:8080 (replies of c1 to a private address)|$NS_SVC|$INT4|8080|open:c1" \
        "denied -> host:8080 (ingress unchanged)|$NS_DENIED|$HOST4|8080|timeout" \
        "allowed -> host:8080 (ingress unchanged)|$NS_ALLOWED|$HOST4|8080|open:c1"
fi
P8H=$(jq -nc --arg g4 "$GW1_4" --arg g6 "$GW1_6" '{egress: {deny_host: true, allow: [
    {destinations: [$g4, $g6], ports: [2222], comment: "host ssh"}]}}')
if nft_apply "deny_host + allow" "$P8H"; then
    eg_flush_neigh
    T_PRE="deny_host + allow: " eg_expect \
        "c1 -> docker0 addr:2222 (allowed)|$NS_C1|$GW1_4|2222|open:host" \
        "c1 -> [docker0 addr]:2222 (allowed)|$NS_C1|$GW1_6|2222|open:host" \
        "c1 -> docker0 addr:2223 blocked|$NS_C1|$GW1_4|2223|timeout" \
        "c1 -> [docker0 addr]:2223 blocked|$NS_C1|$GW1_6|2223|timeout" \
        "c1 -> eth0 addr:2222 blocked|$NS_C1|$HOST4|2222|timeout" \
        "c1 -> [eth0 addr]:2222 blocked|$NS_C1|$HOST6|2222|timeout" \
        "c1 -> svc:22 (deny_private off)|$NS_C1|$SVC4|22|open:svc" \
        "allowed -> host:2222 (outside clients unaffected)|$NS_ALLOWED|$HOST4|2222|open:host" \
        "c1 -> pub:22|$NS_C1|$PUB4|22|open:pub"
fi

# ================================================================ 9. bad input
nft_bad "dataplane bogus" '{"dataplane":"bogus"}' 'dataplane'
nft_bad "bad source with the nftables dataplane" '{"ingress":{"allow":[{"ports":[8080],"sources":["987.65.432.1"]}]}}' 'sources'
nft_bad "dataplane not a string" '{"dataplane":true}' 'dataplane'
nft_bad "rules_nft not a string" '{"rules_nft":["x"]}' 'rules_nft'
nft_bad "source prefix /129" '{"ingress":{"allow":[{"ports":[8080],"sources":["fd00::/129"]}]}}' 'sources'

# ================================================================ 10. back to the default policy; the held connections
if t_dfwn_ok "default policy again" '{}'; then
    base_probes "default policy again"
    held "after every scenario"
    # external_interfaces left out: the interfaces that hold a default route (eth0), the same table
    if t_dfwn_ok "default external_interfaces" '{"external_interfaces":null}'; then
        t_changed "default external_interfaces (eth0 holds the default routes): changed=false" false
    fi
    if nft_apply "external_interfaces [eth+]" '{"external_interfaces":["eth+"]}'; then
        mapfile -t P < <(reach_specs allowed dnat 8080; reach_specs denied timeout)
        T_PRE="external_interfaces [eth+]: " expect_probes "${P[@]}"
        t_dfwn_ok "external_interfaces back to [eth0]" '{}'
    fi
fi

# ================================================================ 11. iptables layouts: wipes, switching
if [ -z "$NFTL" ]; then
    our_table >"$T_DIR/table-before-wipe"
    # firewalld --reload style: every iptables chain flushed and deleted, then Docker recreates its
    # own (with an empty DOCKER-USER)
    # (only the tables that exist: a restore would create the others)
    wiped=1
    for f in 4 6; do
        lab_xt "$NS_HOST" "$f" save | sed -n 's/^\*\(.*\)/*\1\nCOMMIT/p' | lab_xt "$NS_HOST" "$f" restore || wiped=
    done
    if [ -n "$wiped" ] && [ "$(snap /dev/stdout | grep -c '^-A ')" = 0 ]; then ok "wipe: every iptables rule is gone"; else not_ok "wipe: every iptables rule is gone" "$(snap)"; fi
    if ! { lab_load_docker && lab_extra_ports; } >"$T_DIR/reload.log" 2>&1; then
        not_ok "wipe: Docker recreates its rules" "$(cat "$T_DIR/reload.log")"
    fi
    our_table >"$T_DIR/table-after-wipe"
    t_same "wipe: our nftables table is untouched" "$T_DIR/table-before-wipe" "$T_DIR/table-after-wipe"
    mapfile -t P < <(reach_specs allowed dnat; reach_specs denied timeout)
    T_PRE="after a firewalld-style wipe: " expect_probes "${P[@]}"
    # ufw reload with a ufw-docker after.rules block: :DOCKER-USER declared in a noflush restore
    # (flushes the chain; refilled with Docker's own content, so Docker's state stays as it was)
    for f in 4 6; do
        { printf '%s\n' '*filter' ':DOCKER-USER - [0:0]'; lab_docker_rules "$f" | grep '^-A DOCKER-USER '; echo COMMIT; } |
            lab_xt "$NS_HOST" "$f" restore --noflush || not_ok "ufw-style restore IPv$f"
    done
    mapfile -t P < <(reach_specs denied timeout)
    T_PRE="after a ufw-style :DOCKER-USER restore: " expect_probes "${P[@]}"
    if t_dfwn_ok "after the wipes: a run" '{}'; then
        t_changed "after the wipes: nothing to change for the nftables dataplane" false
    fi

    # nftables -> iptables -> nftables
    # (rules_nft given, so the run knows which file held the table)
    if t_dfwn_ok "switch to iptables: apply" '{"dataplane":"iptables"}'; then
        t_changed "switch to iptables: reports changed" true
        t_eq "switch to iptables: result dataplane" iptables "$(dfw_q .dataplane)"
        t_eq "switch to iptables: our table is gone" "" "$(our_table)"
        nf=$RULES_DIR/docker_firewall.nft
        if [ -e "$nf" ]; then
            t_eq "switch to iptables: rules_nft no longer defines the table" 0 "$(grep -c 'table inet docker_firewall {' "$nf")" "$(head -20 "$nf")"
        else
            ok "switch to iptables: rules_nft no longer defines the table (file removed)"
        fi
        check "switch to iptables: DFW- chains are live" test "$(ipt_owned_count)" -gt 0
        mapfile -t P < <(reach_specs allowed dnat 8080; reach_specs denied timeout)
        T_PRE="switched to iptables: " expect_probes "${P[@]}"
    fi
    if t_dfwn_ok "switch to nftables again: apply" '{}'; then
        t_changed "switch to nftables again: reports changed" true
        t_eq "switch to nftables again: no DFW- chain or docker_firewall: rule left" 0 "$(ipt_owned_count)" "$(owned_snap)"
        t_match "switch to nftables again: the table is live" '^table inet docker_firewall \{' "$(our_table)"
        for f in 4 6; do
            t_eq "switch to nftables again: rules.v$f holds no docker_firewall rule (a boot would bring them back)" 0 \
                "$(cat "$RULES_DIR/rules.v$f" 2>/dev/null | grep -c 'docker_firewall:')"
        done
        mapfile -t P < <(reach_specs allowed dnat 8080; reach_specs denied timeout)
        T_PRE="switched to nftables again: " expect_probes "${P[@]}"
    fi
fi

# ================================================================ 11b. a port Docker publishes after the run
# The run does not know 9090; the connection is DNAT-ed to c1 and judged on its way to the bridge
# (forward), on the original destination port: the entry for 9090 lets the allowed client in.
P11=$(dfw_base | jq -c --arg a4 "$ALLOWED4" --arg a6 "$ALLOWED6" \
    '{ingress: {allow: (.ingress.allow + [{ports: [9090], sources: [$a4, $a6], comment: "late"},
        {ports: [80], sources: [$a4, $a6], comment: "routed"}])}}')
if nft_apply "late publish" "$P11"; then
    if lab_publish 9090 >"$T_DIR/publish.log" 2>&1; then
        ok "late publish: Docker publishes 9090 -> c1:80 after the run"
        mapfile -t P < <(reach_specs allowed dnat 9090; reach_specs denied timeout 9090)
        T_PRE="late publish: " expect_probes "${P[@]}"
    else
        not_ok "late publish: Docker publishes 9090 -> c1:80 after the run" "$(cat "$T_DIR/publish.log")"
    fi
    # routed access (a network in routed mode: no "DROP DIRECT ACCESS"): clients that route to the
    # containers' networks; the new connection is judged on its way to the bridge
    case $LAYOUT in
        dockernft) lab_nft flush chain ip docker-bridges raw-PREROUTING && lab_nft flush chain ip6 docker-bridges raw-PREROUTING ;;
        docker28) ipt -t raw -F PREROUTING && ipt6 -t raw -F PREROUTING ;;
    esac
    for ns in "$NS_ALLOWED" "$NS_DENIED"; do
        ip -n "$ns" route add 10.200.1.0/24 via "$HOST4"
        ip -n "$ns" -6 route add fd00:201::/64 via "$HOST6"
    done
    T_PRE="routed access: " expect_probes \
        "allowed -> c1:80 directly|$NS_ALLOWED|$C1_4|80|dnat" \
        "allowed -> [c1]:80 directly|$NS_ALLOWED|$C1_6|80|dnat" \
        "denied -> c1:80 directly|$NS_DENIED|$C1_4|80|timeout" \
        "denied -> [c1]:80 directly|$NS_DENIED|$C1_6|80|timeout"
    docker_state "$T_DIR/docker-pristine" # Docker's own changes: the reference for absent
fi

# Docker's nftables backend re-creates its tables when the daemon starts: ours is not touched
if [ -n "$NFTL" ]; then
    if t_dfwn_ok "a run after the late publish" "$P11"; then
        t_changed "a run after the late publish adds 9090 to the published ports" true
        t_match "a run after the late publish: 9090 in prerouting" 'dport \{[^}]*9090' "$(our_table)"
    fi
    our_table >"$T_DIR/table-before-restart"
    lab_nft delete table ip docker-bridges && lab_nft delete table ip6 docker-bridges
    { lab_docker_nft 4 | lab_nft -f - && lab_docker_nft 6 | lab_nft -f -; } || not_ok "Docker restart: tables re-created"
    lab_publish 9090 >>"$T_DIR/publish.log" 2>&1 # (listeners already run; the DNAT rules again)
    our_table >"$T_DIR/table-after-restart"
    t_same "Docker restart: our table untouched" "$T_DIR/table-before-restart" "$T_DIR/table-after-restart"
    mapfile -t P < <(reach_specs allowed dnat 8080; reach_specs denied timeout)
    T_PRE="after a Docker restart: " expect_probes "${P[@]}"
    if t_dfwn_ok "after a Docker restart: a run" "$P11"; then
        t_changed "after a Docker restart: nothing to change" false
    fi
    docker_state "$T_DIR/docker-pristine" # (raw drops back, as a restart writes them)
fi

# ================================================================ 12. absent
nsnap "$T_DIR/present"
if t_dfwn_ok "absent, check mode" '{"state":"absent","_ansible_check_mode":true}'; then
    t_changed "absent, check mode: predicts changed" true
    nsnap "$T_DIR/absent-check"
    t_same "absent, check mode: ruleset identical" "$T_DIR/present" "$T_DIR/absent-check"
fi
if t_dfwn_ok "absent" '{"state":"absent"}'; then
    t_changed "absent: reports changed" true
    t_eq "absent: our table is gone" "" "$(our_table)"
    t_eq "absent: no DFW- chain or docker_firewall: rule" 0 "$(ipt_owned_count)"
    docker_state "$T_DIR/docker-after"
    t_same "absent: Docker's state byte-identical to before the module" "$T_DIR/docker-pristine" "$T_DIR/docker-after"
    nf=$RULES_DIR/docker_firewall.nft
    if [ -e "$nf" ]; then
        t_eq "absent: rules_nft no longer defines the table (a boot would bring it back)" 0 "$(grep -c 'table inet docker_firewall {' "$nf")" "$(head -20 "$nf")"
    else
        ok "absent: rules_nft no longer defines the table (file removed)"
    fi
    mapfile -t P < <(reach_specs denied dnat)
    T_PRE="absent (the hole is back): " expect_probes "${P[@]}"
    if t_dfwn_ok "absent again" '{"state":"absent"}'; then
        t_changed "absent again: changed=false" false
    fi
fi

# ================================================================ 13. IPv4-only networks: docker-proxy serves IPv6
# (LAB_IPV6=proxy: no IPv6 DNAT at all; [::]:8080 is docker-proxy forwarding to c1's IPv4 address)
lab_down
# shellcheck disable=SC2034  # read by lab_up (tests/lab/lab.sh)
LAB_IPV6=proxy
t_lab_up
new_rules_dir
T_PRE="IPv4-only networks, no module: " expect_probes \
    "denied v6 -> host:8080 served by docker-proxy|$NS_DENIED|$HOST6|8080|proxy" \
    "denied v4 -> host:8080|$NS_DENIED|$HOST4|8080|dnat"
if nft_apply "IPv4-only networks" '{}'; then
    T_PRE="IPv4-only networks: " expect_probes \
        "allowed v6 -> host:8080 (docker-proxy)|$NS_ALLOWED|$HOST6|8080|proxy" \
        "allowed v6 -> host:8443 (docker-proxy)|$NS_ALLOWED|$HOST6|8443|proxy" \
        "allowed v4 -> host:8080|$NS_ALLOWED|$HOST4|8080|dnat" \
        "denied v6 -> host:8080 (docker-proxy)|$NS_DENIED|$HOST6|8080|timeout" \
        "denied v6 -> host:8443 (docker-proxy)|$NS_DENIED|$HOST6|8443|timeout" \
        "denied v4 -> host:8080|$NS_DENIED|$HOST4|8080|timeout" \
        "c1 v4 -> net|$NS_C1|$NET4|$NET_PORT|open"
fi

# ================================================================ 14. dockernft, userland proxy off
# (Docker's DNAT rules without `iifname !=`, masquerade from the host: the published ports are read
# from this shape too)
if [ -n "$NFTL" ]; then
    lab_down
    # shellcheck disable=SC2034  # both read by lab_up (tests/lab/lab.sh)
    LAB_IPV6=nat LAB_PROXY=off
    t_lab_up
    new_rules_dir
    if nft_apply "userland proxy off" '{}'; then
        t_match "userland proxy off: the published TCP ports are judged in prerouting" 'tcp dport \{ 8007, 8080, 8443 \}' "$(our_table)"
        mapfile -t P < <(reach_specs allowed dnat; reach_specs denied timeout; outbound_specs)
        T_PRE="userland proxy off: " expect_probes "${P[@]}"
    fi
fi

# ================================================================ 15. dockernft: auto while Docker's tables are gone
# (dockerd stopped and its tables removed, or `nft flush ruleset` by nftables.service): whatever an
# auto run does meanwhile, once Docker's tables are back an auto run must protect the ports again
if [ -n "$NFTL" ]; then
    if t_dfwn_ok "auto, Docker's tables present" '{"dataplane":"auto"}'; then
        t_eq "auto, Docker's tables present: dataplane" nftables "$(dfw_q .dataplane)"
    fi
    lab_nft delete table ip docker-bridges && lab_nft delete table ip6 docker-bridges
    if t_dfwn_ok "auto, Docker's tables gone: a run" '{"dataplane":"auto"}'; then
        diag "auto with Docker's tables gone chose $(dfw_q .dataplane): $(dfw_q .msg)"
    fi
    { lab_docker_nft 4 | lab_nft -f - && lab_docker_nft 6 | lab_nft -f -; } || not_ok "Docker's tables re-created"
    if t_dfwn_ok "auto, Docker's tables back: a run" '{"dataplane":"auto"}'; then
        t_eq "auto, Docker's tables back: dataplane" nftables "$(dfw_q .dataplane)" "$(dfw_show)"
        mapfile -t P < <(reach_specs allowed dnat 8080; reach_specs denied timeout)
        T_PRE="auto, Docker's tables back: " expect_probes "${P[@]}"
    fi
fi

t_done
