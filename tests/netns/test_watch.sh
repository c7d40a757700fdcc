#!/usr/bin/env bash
# `watch --policy P --resync 2 --docker-socket /nonexistent` in the lab's host namespace (no Docker API
# here: it must keep going and say it waits for Docker), proven with real packets from the allowed and
# the denied client:
#   (i)   a port published after the start (Docker-like DNAT/ACCEPT rules and docker-proxy listeners) is
#         guarded, IPv4 and IPv6, also when docker-proxy alone serves IPv6 (LAB_IPV6=proxy);
#   (ii)  a ufw-style `iptables-restore -n` that declares :DOCKER-USER (flushing it) is repaired;
#   (iii) the hook deleted, a DFW- chain flushed: repaired;
#   (iv)  each repair logs exactly one 'repaired' line naming its trigger (netfilter change on nft,
#         resync on legacy);
#   (v)   SIGTERM (and SIGINT) end it with exit 0 and leave the rules in place;
#   (vi)  the policy file edited while it runs is picked up: in place + SIGHUP, and replaced by a
#         rename (as Ansible writes files) without a signal.
# Nothing here asserts speed beyond "it happened eventually" (poll up to resync + 5 s); reaction times
# (trigger -> 'repaired' log line) and exposure windows (the denied client probing every ~0.2 s) are
# recorded as '# figure:' lines (and appended to $DFW_FIGURES when set).
# layouts: docker20 docker28
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_need_bin

RESYNC=${WATCH_RESYNC:-2}
BOUND=$((RESYNC + 5))
# The watchers that see the drifts (i)-(iii) run with --resync 2 on legacy (the resync is what repairs
# there) and 60 on nft: a 2 s resync tick can coincide with a drift and take the credit for the
# repair, so only a long one proves that each nft repair came from a netfilter notification.
if [ "$BACKEND" = nft ]; then TRIGGER='netfilter' DRIFT_RESYNC=60; else TRIGGER='resync' DRIFT_RESYNC=$RESYNC; fi

# policy <file> <tag> [extra allow entries (JSON array)] — ports 8080, 9090, 9091 from the allowed
# client; rule comments carry the tag, so the live ruleset shows which policy is in place
policy() {
    dfw_policy "$1" "$(jq -cn --arg a4 "$ALLOWED4" --arg a6 "$ALLOWED6" --arg tag "$2" --argjson x "${3:-[]}" \
        '{ingress: {allow: ([{ports: [8080, 9090, 9091], proto: "tcp", sources: [$a4, $a6], comment: ("watch " + $tag)}] + $x)}}')"
}
policy_b_extra() { jq -cn --arg d4 "$DENIED4" --arg d6 "$DENIED6" '[{ports: [8080], proto: "tcp", sources: [$d4, $d6], comment: "watch B denied"}]'; }

# ---------------------------------------------------------------- watch log helpers
log_after() { awk -v t="$1" '$1 > t' "$WLOG"; }
# log_wait <ERE> <t0> <bound s> — until a watch log line after t0 matches; prints its arrival time
log_wait() {
    local re=$1 t0=$2 end=$((SECONDS + $3)) l
    while :; do
        l=$(log_after "$t0" | grep -E -m1 -- "$re")
        if [ -n "$l" ]; then echo "${l%% *}"; return 0; fi
        [ "$SECONDS" -ge "$end" ] && return 1
        sleep 0.1
    done
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
log_tail() { echo "watch log (last lines):"; tail -n 15 "$WLOG"; }

# watch_start <name> <policy file> <resync> — start the watcher (log $T_DIR/<name>.log) with a
# NOTIFY_SOCKET (systemd's Type=notify) and wait for READY=1 after its first converge
watch_start() {
    local name=$1 resync=$3 t _ sock=$T_DIR/notify.sock
    WLOG=$T_DIR/$name.log
    shift
    rm -f "$sock"
    lab_kill notify
    lab_spawn notify "$NS_HOST" socat -u "UNIX-RECV:$sock" STDOUT
    for _ in $(seq 1 40); do [ -S "$sock" ] && break; sleep 0.05; done
    WATCH_T0=$EPOCHREALTIME
    DFW_NOTIFY_SOCKET=$sock dfw_spawn "$name" watch --policy "$1" --resync "$resync" --docker-socket /nonexistent
    WPID=$DFW_PID
    for _ in $(seq 1 200); do grep -q 'READY=1' "$LAB_DIR/notify.log" 2>/dev/null && break; sleep 0.1; done
    t=$EPOCHREALTIME
    if grep -q 'READY=1' "$LAB_DIR/notify.log"; then
        ok "watch: started, READY=1 sent to NOTIFY_SOCKET after the first converge"
        t_figure "watch: start -> READY=1: $(secs "$WATCH_T0" "$t") s (polled every 0.1 s)"
        t_match "watch: the first converge is logged before READY=1" '(applied|in place) \(start\)' "$(cat "$WLOG")"
    else
        not_ok "watch: started and ready (READY=1 within 20 s)" "$(log_tail)" "alive: $(dfw_alive "$WPID" && echo yes || echo no)"
        return 1
    fi
    log_wait 'waiting for Docker' "$WATCH_T0" "$BOUND" >/dev/null
    t_match "watch: logs that it waits for Docker (socket /nonexistent)" 'waiting for Docker.*/nonexistent' \
        "$(grep -m1 'waiting for Docker' "$WLOG")"
    check "watch: still running without Docker" dfw_alive "$WPID"
}

# watch_stop <signal> — signal the watcher, wait for it (bounded), check exit 0 and the rules left
watch_stop() {
    local sig=$1 t0 t1 rc _
    owned_snap "$T_DIR/owned-before-stop"
    t0=$EPOCHREALTIME
    kill "-$sig" "$WPID"
    for _ in $(seq 1 100); do
        dfw_alive "$WPID" || break
        sleep 0.05
    done
    t1=$EPOCHREALTIME
    if dfw_alive "$WPID"; then
        not_ok "watch: SIG$sig ends it (within 5 s)" "$(log_tail)"
        kill -KILL "$WPID" 2>/dev/null
    else
        ok "watch: SIG$sig ends it"
        t_figure "watch: SIG$sig -> exit: $(secs "$t0" "$t1") s"
    fi
    dfw_reap "$WPID"
    rc=$?
    t_eq "watch: exit status 0 after SIG$sig" 0 "$rc" "$(log_tail)"
    owned_snap "$T_DIR/owned-after-stop"
    t_same "watch: SIG$sig leaves the owned rules in place" "$T_DIR/owned-before-stop" "$T_DIR/owned-after-stop"
}

# ---------------------------------------------------------------- probers (exposure windows)
# prober_start <name> <ns> <addr> <port> — a connection attempt every ~0.2 s, "<epoch> open|closed"
prober_start() {
    local target
    case $3 in *:*) target="TCP6:[$3]:$4" ;; *) target="TCP4:$3:$4" ;; esac
    # shellcheck disable=SC2016  # expanded by the inner shell
    lab_spawn "prober-$1" "$2" bash -c 'while :; do t=$EPOCHREALTIME
        if timeout 2 socat -u -T 1 "$0,connect-timeout=0.3" STDOUT >/dev/null 2>&1; then echo "$t open"; else echo "$t closed"; fi
        sleep 0.1; done' "$target"
}
# exposure <name> <t0> — seconds from t0 to the last successful connection after it (0.00: none)
exposure() { awk -v t="$2" '$1 >= t && $2 == "open" { last = $1 } END { printf "%.2f", last ? last - t : 0 }' "$LAB_DIR/prober-$1.log"; }

# trigger <name> <count: 1 | 1+> <probers (names, space-separated)> cmd... — run the drift, wait for the
# repair, check the 'repaired' lines, record reaction time and exposure
trigger() {
    local name=$1 want=$2 probers=$3 t0 t ts n p fig
    shift 3
    t0=$EPOCHREALTIME
    "$@" || not_ok "$name: the drift command ran" "$*"
    if ! ts=$(log_wait 'repaired' "$t0" "$BOUND"); then
        not_ok "$name: repaired (a 'repaired' line within ${BOUND} s)" "$(log_tail)" "$(ipt_save -t filter | grep -E 'DOCKER-USER|DFW-' | head -20)"
        return 1
    fi
    ok "$name: repaired"
    # a second repair would come at the latest at the next resync tick
    sleep "$(awk -v r="$RESYNC" 'BEGIN { print r + 0.7 }')"
    n=$(log_after "$t0" | grep -c 'repaired')
    if [ "$want" = 1 ]; then
        t_eq "$name: exactly one 'repaired' line" 1 "$n" "$(log_after "$t0")"
    elif [ "$n" -ge 1 ]; then ok "$name: 'repaired' logged ($n line(s))"; else not_ok "$name: 'repaired' logged"; fi
    t_match "$name: the 'repaired' line names the trigger ($TRIGGER)" "repaired.*$TRIGGER" "$(log_after "$t0" | grep -m1 'repaired')"
    fig="$name: reaction $(secs "$t0" "$ts") s"
    for p in $probers; do fig+=", exposure $p $(exposure "$p" "$t0") s"; done
    [ "$n" = 1 ] || fig+=", $n repaired lines"
    t_figure "$fig"
}

# ufw_style <4|6> — what ufw's after.rules block in the ufw-docker style does on `ufw reload`
ufw_style() { printf '*filter\n:DOCKER-USER - [0:0]\n-A DOCKER-USER -j RETURN\nCOMMIT\n' | lab_xt "$NS_HOST" "$1" restore -n; }
# delete_hook <4|6> — delete the owned hook(s) in DOCKER-USER
delete_hook() {
    local h
    h=$(lab_xt "$NS_HOST" "$1" save -t filter | grep -m1 -- '^-A DOCKER-USER .*docker_firewall:') || return 1
    eval "lab_xt \"\$NS_HOST\" $1 cmd ${h/-A DOCKER-USER/-D DOCKER-USER}"
}
# first_dfw_chain <4|6> — the first owned filter chain that has rules
first_dfw_chain() { lab_xt "$NS_HOST" "$1" save -t filter | awk '$1 == "-A" && $2 ~ /^DFW-/ { print $2; exit }'; }
# converged <policy> <name> — the policy's own --check predicts no change
converged() { # <policy> <name>
    T_SEQ=$((T_SEQ + 1))
    dfw_exec apply --policy "$1" --check
    t_eq "$2: converged (apply --check exits 0 while the watch runs)" 0 "$DFW_RC" "stdout: $(head -c 800 "$DFW_OUT")" "stderr: $(head -c 500 "$DFW_ERR")"
}
# wait_live <ERE> <present|absent> <bound> — until the live IPv4 and IPv6 rulesets (do not) match
wait_live() {
    local end=$((SECONDS + $3)) n
    while :; do
        n=$( { ipt_save; ipt6_save; } | grep -cE -- "$1")
        if [ "$2" = present ] && [ "$n" -gt 0 ]; then return 0; fi
        if [ "$2" = absent ] && [ "$n" -eq 0 ]; then return 0; fi
        [ "$SECONDS" -ge "$end" ] && return 1
        sleep 0.1
    done
}

# ================================================================ part 1: Docker's IPv6 NAT (LAB_IPV6=nat)
t_lab_up
lab_foreign_rules || not_ok "foreign rules loaded"
PA=$T_DIR/policy-a.json
policy "$PA" A
cp "$PA" "$T_DIR/policy.json"
POL=$T_DIR/policy.json
# foreign_intact <name> — the foreign rules as recorded in $T_DIR/foreign (by foreign_record)
foreign_record() { { lab_foreign_lines 4; lab_foreign_lines 6; } >"$T_DIR/foreign"; }
foreign_intact() {
    { lab_foreign_lines 4; lab_foreign_lines 6; } >"$T_DIR/foreign-now"
    t_same "$1: foreign rules intact" "$T_DIR/foreign" "$T_DIR/foreign-now"
}
foreign_record

if watch_start watch-drift "$POL" "$DRIFT_RESYNC"; then
    converged "$POL" "after start"
    mapfile -t P < <(reach_specs allowed dnat 8080; reach_specs denied closed 8080 8443)
    T_PRE="watch running: " expect_probes "${P[@]}"
    prober_start d4-8080 "$NS_DENIED" "$HOST4" 8080
    prober_start d6-8080 "$NS_DENIED" "$HOST6" 8080
    prober_start d4-9091 "$NS_DENIED" "$HOST4" 9091
    prober_start d6-9091 "$NS_DENIED" "$HOST6" 9091
    sleep 0.5

    # (i) a port published after the start (both families have NAT rules here: one restore each)
    trigger "(i) port 9091 published, IPv4+IPv6 NAT" 1+ "d4-9091 d6-9091" lab_publish 9091
    mapfile -t P < <(reach_specs allowed dnat 9091; reach_specs denied closed 9091)
    T_PRE="(i) 9091 published: " expect_probes "${P[@]}"
    converged "$POL" "(i) 9091 published"

    # (ii) ufw-style restore that declares DOCKER-USER, each family
    for fam in 4 6; do
        trigger "(ii) ufw-style restore declaring :DOCKER-USER, IPv$fam" 1 "d$fam-8080" ufw_style "$fam"
        t_match "(ii) IPv$fam: the hook is back first in DOCKER-USER" 'docker_firewall:' "$(first_rule "$fam" filter DOCKER-USER)"
    done
    mapfile -t P < <(reach_specs allowed dnat 8080; reach_specs denied closed 8080 8443)
    T_PRE="(ii) after the repairs: " expect_probes "${P[@]}"
    # the restores flushed DOCKER-USER, the admin's foreign rule there too (ufw would put its own back)
    foreign_record

    # (iii) the hook deleted; a DFW- chain flushed
    trigger "(iii) hook deleted from DOCKER-USER, IPv4" 1 "d4-8080" delete_hook 4
    t_match "(iii) hook deleted: back first in DOCKER-USER" 'docker_firewall:' "$(first_rule 4 filter DOCKER-USER)"
    c=$(first_dfw_chain 6)
    if [ -n "$c" ]; then
        trigger "(iii) DFW- chain flushed ($c), IPv6" 1 "d6-8080" ipt6 -F "$c"
        t_match "(iii) $c flushed: its rules are back" "^-A $c " "$(ipt6_save -t filter)"
    else
        not_ok "(iii) an owned filter chain with rules exists (IPv6)" "$(ipt6_save -t filter)"
    fi
    mapfile -t P < <(reach_specs allowed dnat 8080; reach_specs denied closed 8080 8443)
    T_PRE="(iii) after the repairs: " expect_probes "${P[@]}"
    converged "$POL" "(iii)"
    foreign_intact "(iii) after the repairs"

    # the watcher's cost so far (CPU since start, memory)
    if [ -r "/proc/$WPID/stat" ]; then
        cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$WPID/stat")
        rss=$(awk '/^VmRSS/ { print $2 " " $3 }' "/proc/$WPID/status")
        t_figure "watcher CPU over its $(secs "$WATCH_T0" "$EPOCHREALTIME") s life (resync ${DRIFT_RESYNC} s, $(grep -c repaired "$WLOG") repairs): ${cpu} s; RSS ${rss}"
    fi

    # (v) SIGTERM: exit 0, rules stay, still guarded after the exit
    watch_stop TERM
    mapfile -t P < <(reach_specs allowed dnat 8080; reach_specs denied closed 8080 8443)
    T_PRE="(v) after the watcher stopped: " expect_probes "${P[@]}"
    t_eq "(v) no panic in the watch log" "" "$(grep -i 'panicked' "$WLOG")"
fi

# ---------------------------------------------------------------- (vi) policy edits, resync 2 s
if watch_start watch-policy "$POL" "$RESYNC"; then

    # (vi) the policy edited in place, then SIGHUP: B also lets the denied client reach 8080
    policy "$T_DIR/policy-b.json" B "$(policy_b_extra)"
    t0=$EPOCHREALTIME
    cat "$T_DIR/policy-b.json" >"$POL"
    kill -HUP "$WPID"
    if wait_live 'watch B denied' present "$BOUND" && wait_live 'watch A' absent "$BOUND"; then
        ok "(vi) policy edited in place + SIGHUP: picked up"
        t_figure "(vi) policy edited + SIGHUP: live after $(secs "$t0" "$EPOCHREALTIME") s (polled every 0.1 s)"
        converged "$POL" "(vi) SIGHUP"
        mapfile -t P < <(reach_specs allowed dnat 8080; reach_specs denied dnat 8080; reach_specs denied closed 8443)
        T_PRE="(vi) policy B: " expect_probes "${P[@]}"
    else
        not_ok "(vi) policy edited in place + SIGHUP: picked up within ${BOUND} s" "$(log_tail)"
    fi
    check "(vi) still running after SIGHUP" dfw_alive "$WPID"

    # (vi) the policy replaced by a rename, no signal: back to A
    t0=$EPOCHREALTIME
    cp "$PA" "$POL.tmp" && mv -f "$POL.tmp" "$POL"
    if wait_live 'watch A' present "$BOUND" && wait_live 'watch B' absent "$BOUND"; then
        ok "(vi) policy replaced by a rename, no signal: picked up"
        t_figure "(vi) policy replaced (rename), no signal: live after $(secs "$t0" "$EPOCHREALTIME") s (polled every 0.1 s)"
        converged "$POL" "(vi) rename"
        mapfile -t P < <(reach_specs allowed dnat 8080; reach_specs denied closed 8080 8443)
        T_PRE="(vi) back to policy A: " expect_probes "${P[@]}"
    else
        not_ok "(vi) policy replaced by a rename, no signal: picked up within ${BOUND} s" "$(log_tail)"
    fi

    watch_stop TERM
    foreign_intact "(vi) after the policy changes and the stop"
    t_eq "(vi) no panic in the watch log" "" "$(grep -i 'panicked' "$WLOG")"
fi

# ================================================================ part 2: docker-proxy serves IPv6 (LAB_IPV6=proxy)
export LAB_IPV6=proxy
t_lab_reset
PA=$T_DIR/policy-a.json
policy "$PA" A
cp "$PA" "$POL"
if watch_start watch-proxy "$POL" "$DRIFT_RESYNC"; then
    mapfile -t P < <(
        echo "allowed v4 -> host:8080|$NS_ALLOWED|$HOST4|8080|dnat"
        echo "allowed v6 -> host:8080|$NS_ALLOWED|$HOST6|8080|proxy"
        reach_specs denied closed 8080 8443
    )
    T_PRE="proxy IPv6, watch running: " expect_probes "${P[@]}"
    prober_start d4-9090 "$NS_DENIED" "$HOST4" 9090
    prober_start d6-9090 "$NS_DENIED" "$HOST6" 9090
    sleep 0.5
    trigger "(i) port 9090 published, IPv6 by docker-proxy only" 1 "d4-9090 d6-9090" lab_publish 9090
    mapfile -t P < <(
        echo "allowed v4 -> host:9090|$NS_ALLOWED|$HOST4|9090|dnat"
        echo "allowed v6 -> host:9090|$NS_ALLOWED|$HOST6|9090|proxy"
        reach_specs denied closed 9090
    )
    T_PRE="(i) 9090 published, proxy IPv6: " expect_probes "${P[@]}"
    converged "$POL" "(i) 9090 published, proxy IPv6"
    watch_stop INT
fi

t_done
