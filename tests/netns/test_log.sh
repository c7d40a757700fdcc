#!/usr/bin/env bash
# Logging with real packets (issue 4): by default every deny chain starts with a rate-limited LOG
# rule (hashlimit 6/min, burst 5, one bucket per source, destination and destination port;
# prefix "docker-fw " + "in-drop "/"out-drop "), then DROP; the LOG rules count denied packets;
# log.enabled=false removes every LOG rule and still drops; log.prefix and log.rate are applied,
# the rate limit really limits per bucket (iptables-save -c), a changed rate takes effect; the
# longest prefix (19 characters + "out-audit ") is accepted by iptables; each combination's second
# run reports changed=false; bad values fail naming the field and change nothing.
# layouts: docker20
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=egress_lib.sh
. "$(dirname "$0")/egress_lib.sh"
t_trap
t_need_bin
eg_lab_up

EG='"egress":{"deny_private":true}'

# deny_rules <4|6> <chain> — the chain's rules with the comment hash blanked
deny_rules() { chain_rules "$1" filter "$2" | sed -E 's/docker_firewall:[0-9a-f]{12}/docker_firewall:H/'; }
# attempts <n> <ns> <addr> <port> — n concurrent connection attempts (each bounded by PROBE_TIMEOUT)
attempts() {
    local n=$1 i pids=()
    shift
    for ((i = 0; i < n; i++)); do
        lab_probe "$@" >/dev/null &
        pids+=($!)
    done
    wait "${pids[@]}" 2>/dev/null
}
# rate_masked — the hashlimit table name's rate tag (4 hex digits, new for every rate) as "R"
rate_masked() { sed -E 's/(--hashlimit-name dfw-[a-z]+[46])-[0-9a-f]{4} /\1-R /'; }
# out4 — "<log> <drop>" packet counters of IPv4 DFW-EGRESS-DENY
out4() { echo "$(eg_log_count 4 DFW-EGRESS-DENY) $(eg_count 4 DFW-EGRESS-DENY '-j DROP')"; }

# ================================================================ 1. defaults
P1="{$EG}"
if t_dfw_ok "defaults: apply" "$P1"; then
    t_changed "defaults: reports changed" true
    for f in 4 6; do
        t_eq "defaults: IPv$f DFW-INGRESS-DENY is the rate-limited LOG, then DROP" \
            "-A DFW-INGRESS-DENY -m hashlimit --hashlimit-upto 6/min --hashlimit-burst 5 --hashlimit-mode srcip,dstip,dstport --hashlimit-name dfw-in$f-R -m comment --comment \"docker_firewall:H\" -j LOG --log-prefix \"docker-fw in-drop \"
-A DFW-INGRESS-DENY -m comment --comment \"docker_firewall:H\" -j DROP" "$(deny_rules "$f" DFW-INGRESS-DENY | rate_masked)"
        t_eq "defaults: IPv$f DFW-EGRESS-DENY is the rate-limited LOG, then DROP" \
            "-A DFW-EGRESS-DENY -m hashlimit --hashlimit-upto 6/min --hashlimit-burst 5 --hashlimit-mode srcip,dstip,dstport --hashlimit-name dfw-out$f-R -m comment --comment \"docker_firewall:H\" -j LOG --log-prefix \"docker-fw out-drop \"
-A DFW-EGRESS-DENY -m comment --comment \"docker_firewall:H\" -j DROP" "$(deny_rules "$f" DFW-EGRESS-DENY | rate_masked)"
    done
    declare -A li0 lo0
    for f in 4 6; do
        li0[$f]=$(eg_log_count "$f" DFW-INGRESS-DENY)
        lo0[$f]=$(eg_log_count "$f" DFW-EGRESS-DENY)
    done
    eg_flush_neigh
    T_PRE="defaults: " eg_expect \
        "denied -> host:8080 dropped|$NS_DENIED|$HOST4|8080|timeout" \
        "denied -> [host]:8080 dropped|$NS_DENIED|$HOST6|8080|timeout" \
        "c1 -> svc:5432 dropped|$NS_C1|$SVC4|5432|timeout" \
        "c1 -> [svc]:5432 dropped|$NS_C1|$SVC6|5432|timeout" \
        "allowed -> host:8080|$NS_ALLOWED|$HOST4|8080|open:c1"
    for f in 4 6; do
        n=$(eg_log_count "$f" DFW-INGRESS-DENY)
        check "defaults: IPv$f in-drop LOG rule counted the denied client (${li0[$f]} -> $n)" test "${n:-0}" -gt "${li0[$f]:-0}"
        n=$(eg_log_count "$f" DFW-EGRESS-DENY)
        check "defaults: IPv$f out-drop LOG rule counted the blocked container (${lo0[$f]} -> $n)" test "${n:-0}" -gt "${lo0[$f]:-0}"
    done
    eg_rerun_unchanged "defaults" "$P1"
fi

# ================================================================ 2. log.enabled false
P2="{$EG,\"strategy\":\"both\",\"log\":{\"enabled\":false}}"
if t_dfw_ok "log.enabled false: apply" "$P2"; then
    t_changed "log.enabled false: reports changed" true
    for f in 4 6; do
        t_eq "log.enabled false: IPv$f no LOG rule in any table" "" \
            "$(lab_xt "$NS_HOST" "$f" save | grep -E '^-A DFW-' | grep -- '-j LOG')"
        t_eq "log.enabled false: IPv$f no hashlimit match left" 0 "$(lab_xt "$NS_HOST" "$f" save | grep -c hashlimit)"
        t_eq "log.enabled false: IPv$f deny chains still drop" "DROP DROP" \
            "$(for c in DFW-EGRESS-DENY DFW-INGRESS-DENY; do chain_rules "$f" filter "$c" | tail -1 | awk '{print $NF}'; done | xargs)"
    done
    eg_flush_neigh
    T_PRE="log.enabled false: " eg_expect \
        "denied -> host:8080 still blocked|$NS_DENIED|$HOST4|8080|closed" \
        "denied -> [host]:8080 still blocked|$NS_DENIED|$HOST6|8080|closed" \
        "c1 -> svc:5432 still blocked|$NS_C1|$SVC4|5432|timeout" \
        "c1 -> [svc]:5432 still blocked|$NS_C1|$SVC6|5432|timeout" \
        "c1 -> [pub]:5432 open|$NS_C1|$PUB6|5432|open:pub" \
        "allowed -> [host]:8080|$NS_ALLOWED|$HOST6|8080|open:c1"
    eg_rerun_unchanged "log.enabled false" "$P2"
fi

# ================================================================ 3. prefix and rate; the rate limit per bucket
P3="{$EG,\"log\":{\"prefix\":\"lab-fw \",\"rate\":\"1/hour\"}}"
if t_dfw_ok "prefix 'lab-fw ', rate 1/hour: apply" "$P3"; then
    t_changed "prefix 'lab-fw ', rate 1/hour: reports changed" true
    for f in 4 6; do
        t_match "prefix 'lab-fw ', rate 1/hour: IPv$f egress LOG rule" \
            "--hashlimit-upto 1/hour --hashlimit-burst 5 .*-j LOG --log-prefix \"lab-fw out-drop \"$" "$(chain_rules "$f" filter DFW-EGRESS-DENY)"
        t_match "prefix 'lab-fw ', rate 1/hour: IPv$f ingress LOG rule" \
            "--hashlimit-upto 1/hour --hashlimit-burst 5 .*-j LOG --log-prefix \"lab-fw in-drop \"$" "$(chain_rules "$f" filter DFW-INGRESS-DENY)"
        t_eq "prefix 'lab-fw ', rate 1/hour: IPv$f the default prefix is gone" 0 "$(lab_xt "$NS_HOST" "$f" save | grep -c 'docker-fw ')"
    done
    eg_rerun_unchanged "prefix 'lab-fw ', rate 1/hour" "$P3"

    # one bucket (c1 -> svc:22): 8 concurrent attempts (with SYN retries) -> the burst of 5 logged
    eg_flush_neigh
    read -r l0 d0 <<<"$(out4)"
    attempts 8 "$NS_C1" "$SVC4" 22
    read -r l1 d1 <<<"$(out4)"
    t_eq "rate 1/hour: one bucket logs its burst of 5 packets, no more (dropped: $((d1 - d0)))" 5 "$((l1 - l0))"
    check "rate 1/hour: every attempt was dropped ($((d1 - d0)) packets >= 8)" test $((d1 - d0)) -ge 8
    # the exhausted bucket logs nothing more
    attempts 1 "$NS_C1" "$SVC4" 22
    read -r l2 d2 <<<"$(out4)"
    t_eq "rate 1/hour: the exhausted bucket logs nothing (dropped: $((d2 - d1)))" 0 "$((l2 - l1))"
    # other destination port, other source, other destination: their own buckets
    attempts 1 "$NS_C1" "$SVC4" 5432
    read -r l3 d3 <<<"$(out4)"
    check "rate 1/hour: another destination port has its own bucket (logged $((l3 - l2)) of $((d3 - d2)))" test $((l3 - l2)) -ge 1
    attempts 1 "$NS_C3" "$SVC4" 22
    read -r l4 d4 <<<"$(out4)"
    check "rate 1/hour: another source has its own bucket (logged $((l4 - l3)) of $((d4 - d3)))" test $((l4 - l3)) -ge 1
    attempts 1 "$NS_C1" "$SVC4B" 22
    read -r l5 d5 <<<"$(out4)"
    check "rate 1/hour: another destination has its own bucket (logged $((l5 - l4)) of $((d5 - d4)))" test $((l5 - l4)) -ge 1
fi

# ================================================================ 4. a changed rate takes effect
P4="{$EG,\"log\":{\"prefix\":\"lab-fw \",\"rate\":\"10000/second\"}}"
if t_dfw_ok "rate 1/hour -> 10000/second: apply" "$P4"; then
    t_changed "rate 1/hour -> 10000/second: reports changed" true
    t_match "rate 1/hour -> 10000/second: IPv4 rule shows the new rate" '--hashlimit-upto 10000/sec ' "$(chain_rules 4 filter DFW-EGRESS-DENY)"
    eg_rerun_unchanged "rate 10000/second" "$P4"
    # a fresh bucket (c3 -> svc.11:5432): at 10000/s every one of these packets is logged
    read -r l0 d0 <<<"$(out4)"
    attempts 8 "$NS_C3" "$SVC4B" 5432
    read -r l1 d1 <<<"$(out4)"
    # The old table (1/hour) would cap the count at its burst of 5; at 10000/s a packet is only
    # refused when two arrive within 0.1 ms, which parallel attempts can do on a loaded machine.
    check "rate 10000/second: the kernel applies the new rate (logged $((l1 - l0)) of $((d1 - d0)) dropped; the old 1/hour table would stop at 5)" \
        test "$((d1 - d0))" -gt 5 -a "$((l1 - l0))" -gt 5
fi

# ================================================================ 5. the longest prefix, in audit mode
long19="abcdefghijklmnopqr "
P5="{$EG,\"audit\":true,\"log\":{\"prefix\":\"$long19\"}}"
if t_dfw_ok "19-character prefix + audit (29-character LOG prefix): apply" "$P5"; then
    t_changed "19-character prefix + audit: reports changed" true
    for f in 4 6; do
        t_match "19-character prefix + audit: IPv$f LOG prefix '${long19}out-audit '" \
            "-j LOG --log-prefix \"${long19}out-audit \"$" "$(chain_rules "$f" filter DFW-EGRESS-DENY)"
        t_match "19-character prefix + audit: IPv$f LOG prefix '${long19}in-audit '" \
            "-j LOG --log-prefix \"${long19}in-audit \"$" "$(chain_rules "$f" filter DFW-INGRESS-DENY)"
    done
    eg_rerun_unchanged "19-character prefix + audit" "$P5"
fi

# ================================================================ 6. bad values change nothing
eg_bad "log.rate 6/fortnight" '{"log":{"rate":"6/fortnight"}}' 'log\.rate'
eg_bad "log.rate 0/minute" '{"log":{"rate":"0/minute"}}' 'log\.rate'
eg_bad "log.rate six/minute" '{"log":{"rate":"six/minute"}}' 'log\.rate'
eg_bad "log.prefix of 20 characters" '{"log":{"prefix":"abcdefghijklmnopqrs "}}' 'log\.prefix'
eg_bad "log.prefix of 40 characters" '{"log":{"prefix":"docker-firewall-prefix-that-is-too-long "}}' 'log\.prefix'
eg_bad "log.prefix with a double quote" '{"log":{"prefix":"fw\" "}}' 'log\.prefix'
eg_bad "log.prefix not a string" '{"log":{"prefix":["fw "]}}' 'log\.prefix'
eg_bad "log.enabled not a bool" '{"log":{"enabled":"perhaps"}}' 'log\.enabled'
eg_bad "unknown key in log" '{"log":{"level":"info"}}' 'level'
eg_bad "audit not a bool" '{"audit":"perhaps"}' 'audit'

t_done
