# shellcheck shell=bash
# tests/netns/nft_lib.sh — helpers for the nftables-dataplane tests (sourced after lib.sh).
#
# The module's nftables dataplane owns one table, `inet docker_firewall`; Docker's nftables backend
# owns `ip docker-bridges` and `ip6 docker-bridges` (LAYOUT=dockernft, tests/lab/dockernft.sh).
# Kernel log lines of a LOG/log rule are not visible from a network namespace other than the
# machine's own (net.netfilter.nf_log_all_netns is 0 and is a machine-wide setting, left alone), so
# the log tests watch the rules themselves: a trace table marks the packets of chosen sources
# (meta nftrace), `nft monitor trace` reports every rule of the module's table that matched a
# packet in full: a rule with a log statement shows up once per packet it logged (a packet over
# the rate limit stops at the limit and is not reported), a drop shows as "(verdict drop)".

# nft_norm — a ruleset listing without state that changes by itself (dynamic set elements' expiry)
nft_norm() { sed -E 's/ expires [0-9hmsd.]+//g; s/ timeout [0-9hmsd.]+s?(,| |$)/\1/g'; }
# nsnap [file] — the whole netfilter state of the host: nft's stateless ruleset, then both
# families of iptables (normalised like snap)
nsnap() {
    local out=${1:-/dev/stdout}
    { echo "=== nft"; lab_nft -s list ruleset 2>&1 | nft_norm; snap /dev/stdout; } >"$out"
}
# our_table — the module's table (stateless listing), empty when it does not exist
our_table() { lab_nft -s list table inet docker_firewall 2>/dev/null | nft_norm; }
# docker_state [file] — what Docker owns: its nftables tables (stateless) on dockernft, the
# iptables rules the module does not own on the iptables layouts
docker_state() {
    local out=${1:-/dev/stdout}
    if [ "$LAYOUT" = dockernft ]; then
        { lab_nft -s list table ip docker-bridges; lab_nft -s list table ip6 docker-bridges; snap /dev/stdout; } >"$out" 2>&1
    else
        snap /dev/stdout | t_unowned | _drop_empty_tables >"$out"
    fi
}
# _drop_empty_tables — leave out iptables-save table blocks that hold nothing (no rule, no user
# chain, every built-in chain ACCEPT): with iptables-nft such a table exists once any tool used it
_drop_empty_tables() {
    awk '/^\*/ { blk = $0 "\n"; inblk = 1; keep = 0; next }
        inblk && /^COMMIT/ { blk = blk $0 "\n"; if (keep) printf "%s", blk; inblk = 0; next }
        inblk { blk = blk $0 "\n"; if ($0 ~ /^-A / || ($0 ~ /^:/ && $2 != "ACCEPT")) keep = 1; next }
        { print }'
}
# ipt_owned_count — DFW- chains and docker_firewall: rules in iptables, both families
ipt_owned_count() { snap /dev/stdout | grep -Ec '^(:DFW-|-A DFW-)|docker_firewall:'; }

# NFT_O — the override every nftables run starts from: the dataplane, and its rules file in the
# test's rules directory (dfw_base persists)
nft_o() { jq -nc --arg f "$RULES_DIR/docker_firewall.nft" '{dataplane: "nftables", rules_nft: $f}'; }
# dfwn [override-json] — dfw with nft_o deep-merged under the override
dfwn() {
    local o=${1:-}
    [ -n "$o" ] || o='{}'
    dfw "$(jq -nc --argjson a "$(nft_o)" --argjson b "$o" '$a * $b')"
}
# t_dfwn_ok <name> [override] — dfwn; ok when it did not fail
t_dfwn_ok() {
    local name=$1
    if dfwn "${2:-}" && [ "$(dfw_q '.failed // false')" = false ]; then
        ok "$name"
        return 0
    fi
    not_ok "$name" "$(dfw_show)" "stderr: $(head -c 800 "$DFW_ERR")"
    return 1
}
# nft_plan_len — how many actions the last result plans for the table
nft_plan_len() { dfw_q '(.plan.nftables // []) | length'; }

# nft_apply <label> <override> — apply (changed=true, dataplane nftables, the table is live and is
# what rules.nftables says), then the same again: changed=false, nothing planned, the ruleset
# identical. Returns 1 when the first run failed.
nft_apply() {
    local label=$1 o=${2:-}
    t_dfwn_ok "$label: apply" "$o" || return 1
    t_changed "$label: first run reports changed" true
    t_eq "$label: result dataplane" nftables "$(dfw_q .dataplane)"
    t_match "$label: the table is live" '^table inet docker_firewall \{' "$(our_table)"
    t_match "$label: result rules.nftables holds the table" 'table inet docker_firewall' "$(dfw_q '.rules.nftables // ""')"
    nft_again "$label" "$o"
}
# nft_again <label> <override> — the same arguments again: changed=false, no plan, ruleset identical
nft_again() {
    local label=$1 o=${2:-}
    nsnap "$T_DIR/again-before"
    if t_dfwn_ok "$label: second run" "$o"; then
        t_changed "$label: second run reports changed=false" false
        t_eq "$label: second run plans nothing" 0 "$(nft_plan_len)" "$(dfw_show)"
        nsnap "$T_DIR/again-after"
        t_same "$label: second run leaves the ruleset identical" "$T_DIR/again-before" "$T_DIR/again-after"
    fi
}

# nft_bad <label> <override> <ERE> — failed=true, msg matches <ERE> (case-insensitive),
# changed=false; the ruleset and the rules files unchanged
nft_bad() {
    local label=$1 o=$2 re=$3
    nsnap "$T_DIR/bad-before"
    files_state "$RULES_DIR/rules.v4" "$RULES_DIR/rules.v6" "$RULES_DIR/docker_firewall.nft" >"$T_DIR/bad-files-before"
    if ! dfwn "$o"; then
        not_ok "$label: one JSON object on stdout" "$(dfw_show)"
        return
    fi
    if [ "$(dfw_q .failed)" = true ]; then
        ok "$label: failed=true"
        if grep -Eiq -- "$re" <<<"$(dfw_q .msg)"; then ok "$label: msg names the field"; else not_ok "$label: msg names the field (/$re/)" "msg: $(dfw_q .msg)"; fi
        t_eq "$label: changed=false" false "$(dfw_q '.changed // false')"
    else
        not_ok "$label: failed=true" "$(dfw_show)"
    fi
    nsnap "$T_DIR/bad-after"
    t_same "$label: ruleset unchanged" "$T_DIR/bad-before" "$T_DIR/bad-after"
    files_state "$RULES_DIR/rules.v4" "$RULES_DIR/rules.v6" "$RULES_DIR/docker_firewall.nft" >"$T_DIR/bad-files-after"
    t_same "$label: rules files unchanged" "$T_DIR/bad-files-before" "$T_DIR/bad-files-after"
}

# ---------------------------------------------------------------- rule traces
# trace_start <addr>... — mark packets from these sources for tracing and start the monitor
# (a table of the test's own, inet dfwtest_trace, priority -400, before everything)
trace_start() {
    local a r4='' r6=''
    for a in "$@"; do
        case $a in *:*) r6+="${r6:+, }$a" ;; *) r4+="${r4:+, }$a" ;; esac
    done
    {
        echo 'table inet dfwtest_trace {'
        echo '  chain pre {'
        echo '    type filter hook prerouting priority -400; policy accept;'
        [ -n "$r4" ] && echo "    ip saddr { $r4 } meta nftrace set 1"
        [ -n "$r6" ] && echo "    ip6 saddr { $r6 } meta nftrace set 1"
        echo '  }'
        echo '}'
    } | lab_nft -f - || return 1
    TRACE_OUT=$T_DIR/trace.$T_SEQ.out
    ip netns exec "$NS_HOST" timeout -k 1 300 nft monitor trace >"$TRACE_OUT" 2>&1 &
    TRACE_PID=$!
    echo "trace $TRACE_PID" >>"$LAB_DIR/pids"
    sleep 0.5
}
# trace_stop — stop the monitor (by its PID), delete the trace table
trace_stop() {
    sleep 0.3
    [ -n "${TRACE_PID:-}" ] && kill "$TRACE_PID" 2>/dev/null && wait "$TRACE_PID" 2>/dev/null
    sed -i "/ ${TRACE_PID:-x}\$/d" "$LAB_DIR/pids"
    TRACE_PID=
    lab_nft delete table inet dfwtest_trace 2>/dev/null
    return 0
}
# trace_log_lines — the module's rules with a log statement that matched a packet (one per packet)
trace_log_lines() { grep -E '^trace id [0-9a-f]+ inet docker_firewall [^ ]+ rule .*\blog\b' "$TRACE_OUT"; }
trace_log_hits() { trace_log_lines | grep -c .; }
# trace_drops — packets the module's table dropped (drop or reject)
trace_drops() { grep -Ec '^trace id [0-9a-f]+ inet docker_firewall [^ ]+ (rule .*\(verdict drop\)|policy drop)' "$TRACE_OUT"; }
# trace_seen — packets the module's table saw at all (its chains' "packet:" lines)
trace_seen() { grep -Ec '^trace id [0-9a-f]+ inet docker_firewall [^ ]+ packet:' "$TRACE_OUT"; }

# attempts <n> <ns> <addr> <port> — n concurrent TCP connection attempts (each bounded)
attempts() {
    local n=$1 i pids=()
    shift
    for ((i = 0; i < n; i++)); do
        lab_probe "$@" >/dev/null &
        pids+=($!)
    done
    wait "${pids[@]}" 2>/dev/null
}
