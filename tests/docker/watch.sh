# shellcheck shell=bash
# tests/docker/watch.sh — `docker_firewall watch` against a REAL dockerd, with real packets
# (sourced by tests/docker/run.sh, which provides ok/not_ok/diag/snap/owned_count and the lab of
# tests/docker/lib.sh; bash >= 5 for EPOCHREALTIME).
#
# watch_suite runs on a lab whose dockerd is up with c1/c2/c3 and none of the module's rules. The watch
# (`docker_firewall watch --policy P --resync $W_RESYNC --docker-socket <the lab's docker.sock>`, a
# policy with "persist": false) runs in the Docker host's network namespace, while a stranger and an
# allowed client (tests/docker/probe.py, one process per client) probe every published port over
# IPv4 and IPv6, one request per port and family every 0.2 s, each bounded by 1 s. The scenarios
# (issue 9's proof):
#   a-proxy-on / a-proxy-off  a container published after the watch started (late7070 on 7070 with
#                             the userland proxy on; late7071 on 7071 after dockerd restarted with it
#                             off)
#   d-restart / d-restart-proxy-off  a dockerd restart (SIGTERM to its PID, started again; containers
#                             come back through their restart policy)
#   f-hook-deleted / f-chain-flushed  every rule of the module outside its own chains (the hooks)
#                             deleted by hand (iptables-restore --noflush with -D lines, both
#                             families); then every DFW- chain flushed by hand (iptables-restore
#                             --noflush declaring them)
#   sigterm                   SIGTERM ends the watch within 1 s, exit 0, the rules stay in place
#   e-reboot                  a simulated reboot: dockerd stopped, the host namespace thrown away, a
#                             fresh one (empty ruleset), the watch started first, then dockerd, which
#                             brings the containers back (restart policy "always")
# For each scenario: "# figure: <engine> <backend> <scenario>: longest stranger window X s", the
# longest time the stranger's probes connected (tests/docker/probe.py window); the limit is 0 for d and
# e, 1 s for a and f on iptables-nft and the resync interval + 1 s on iptables-legacy (no netfilter
# change notifications there). The allowed client is never refused once it got through (while its
# container runs).

W_RESYNC=${DFW_WATCH_RESYNC:-2}
W_PORTS=(8080 8443 9090 7070 7071)
W_PROBE=$DK_LIB_DIR/probe.py
# the first converge's log line ("applied (start): ...", "in place (start): ..."; "ready" for later
# versions that say so)
W_READY_RE='watch: (ready|(applied|in place|repaired) \(start\))'
W_PYTHON=${DFW_PYTHON:-python3}
WATCH_PID=
W_PROBE_PIDS=()
W_ENGINE_LABEL=
W_ALLOWED_FAMS="4 6"
W_ALLOWED_EXCLUDE=(none)

# w_now — the time, epoch seconds with microseconds
w_now() { echo "$EPOCHREALTIME"; }

# w_policy <file> <strategy> — the watch's policy: every published port closed to outside traffic
# but for the allowed client (the test ports, 7070 and 7071 too), nothing persisted
w_policy() {
    jq -n --arg s "$2" --arg a4 "$DK_ALLOWED4" --arg a6 "$DK_ALLOWED6" '{
        state: "present", strategy: $s, external_interfaces: ["eth0"], persist: false,
        ingress: {default: "drop", allow: [{ports: [8080, 8443, 9090, 7070, 7071],
                  sources: [$a4, $a6], comment: "allowed client"}]}}' >"$1"
}

# w_probes_start — one probe process per client, over every test port and both families
w_probes_start() {
    local who ns p targets _
    for who in stranger allowed; do
        [ "$who" = stranger ] && ns=$NS_STRANGER || ns=$NS_ALLOWED
        targets=()
        for p in "${W_PORTS[@]}"; do
            targets+=("$who-$p-4=$DK_HOST4:$p" "$who-$p-6=[$DK_HOST6]:$p")
        done
        rm -f "$W_DIR/$who.ready"
        # nsenter directly (not the dk_in function, which would run in a subshell): $! is the
        # process itself, which nsenter replaces with python (no --fork)
        nsenter --net="/run/netns/$ns" "$W_PYTHON" "$W_PROBE" run --ready-file "$W_DIR/$who.ready" "$W_DIR/$who.log" \
            "${targets[@]}" >"$W_DIR/$who.probe.err" 2>&1 </dev/null &
        W_PROBE_PIDS+=($!)
        echo "probe-$who $!" >>"$DK_DIR/pids"
    done
    for _ in $(seq 1 50); do
        [ -e "$W_DIR/stranger.ready" ] && [ -e "$W_DIR/allowed.ready" ] && return 0
        sleep 0.1
    done
    return 1
}
w_probes_stop() {
    local p
    for p in "${W_PROBE_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${W_PROBE_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    W_PROBE_PIDS=()
}

# w_watch_start <log> — the watch in the host's network namespace (nsenter without --fork execs it,
# and a simple command in the background is not wrapped in a subshell: $! is the watch's own PID)
w_watch_start() {
    local log=$1
    # PATH as the daemon's: "iptables" is the backend under test (on a legacy host the alternative
    # points at iptables-legacy; the watch's "auto" backend falls back to it before Docker runs)
    local state=()
    # the unit's --state file (the ports Docker published, guarded at the next start until Docker's
    # API answers), when the binary has the option; it outlives the simulated reboot
    "$DFW_BIN" watch --help 2>/dev/null | grep -q -- '--state' && state=(--state "$W_DIR/published-ports.json")
    PATH=$DK_DIR/bin:$PATH nsenter --net="/run/netns/$NS_HOST" "$DFW_BIN" watch --policy "$W_DIR/policy.json" \
        --resync "$W_RESYNC" --docker-socket "$DK_DIR/docker.sock" "${state[@]}" </dev/null \
        > >(w_stamp >"$log") 2>&1 &
    WATCH_PID=$!
    echo "watch $WATCH_PID" >>"$DK_DIR/pids"
}

# w_stamp — prefix each line with the epoch time it was read at (the watch's log lines carry no time)
w_stamp() {
    local line
    while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done
}

# w_wait_log <log> <regex> <seconds> — until a line matches
w_wait_log() {
    local log=$1 re=$2 limit=$3 _
    for _ in $(seq 1 $((limit * 10))); do
        grep -qE "$re" "$log" 2>/dev/null && return 0
        kill -0 "$WATCH_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# w_wait_allowed <since> <seconds> <port>... — until the allowed client's probes connected to every
# port (both families, or IPv4 only when W_ALLOWED_FAMS=4) after <since>
w_wait_allowed() {
    local since=$1 limit=$2 end p f missing
    shift 2
    end=$((SECONDS + limit))
    while [ "$SECONDS" -le "$end" ]; do
        missing=0
        for p in "$@"; do
            for f in $W_ALLOWED_FAMS; do
                awk -v s="$since" -v k="allowed-$p-$f" '$1 >= s && $3 == k && ($4 == "open" || $4 == "connected") {f=1; exit} END {exit !f}' \
                    "$W_DIR/allowed.log" || missing=1
            done
        done
        [ "$missing" = 0 ] && return 0
        sleep 0.2
    done
    return 1
}

# w_owned — the module's rules and chains, both families (counters and comments kept out of it)
w_owned() { snap | grep -E 'docker_firewall:|^:DFW-' | sort; }

# w_check <scenario> <since> <until> <limit> [allowed-failures options...] — the figure, the stranger
# window against the limit, the allowed client's probes
w_check() {
    local sc=$1 since=$2 until=$3 limit=$4 res secs key from to n total fails
    shift 4
    res=$("$W_PYTHON" "$W_PROBE" window "$W_DIR/stranger.log" --since "$since" --until "$until" 2>&1)
    read -r secs key from to n total <<<"$res"
    if [ -z "$total" ]; then
        not_ok "$sc: the stranger's probes could be read" "$res"
        return 0
    fi
    echo "# figure: $W_ENGINE_LABEL $BACKEND $sc: longest stranger window $secs s ($total stranger probes; strategy $W_STRATEGY, resync ${W_RESYNC}s)"
    echo "$W_ENGINE_LABEL $BACKEND $sc $secs $total" >>"$WORK/watch-figures.txt"
    if [ "$limit" = 0 ] && [ "$key" = - ]; then
        ok "$sc: the stranger never connects ($total probes)"
    elif [ "$limit" != 0 ] && awk -v s="$secs" -v l="$limit" 'BEGIN {exit !(s <= l)}'; then
        ok "$sc: the stranger's longest window is $secs s (limit $limit s; $total probes)"
    else
        not_ok "$sc: the stranger's longest window is $secs s (limit $limit s)" \
            "on $key from $(w_clock "$from") to $(w_clock "$to"), $n probes connected:" \
            "$(awk -v s="$from" -v u="$to" -v k="$key" '$3 == k && $1 >= s - 0.5 && $1 <= u + 0.5' "$W_DIR/stranger.log" | sort -n | head -20 | w_clock_lines)" \
            "watch log:" "$(w_log_between "$since" "$until")"
    fi
    if [ "$total" -lt 10 ]; then
        not_ok "$sc: the stranger probed (only $total probes)"
    fi
    # the allowed client: from W_ALLOWED_SINCE (when dockerd answered again, after a restart) or <since>
    fails=$("$W_PYTHON" "$W_PROBE" failures "$W_DIR/allowed.log" --since "${W_ALLOWED_SINCE:-$since}" \
        --until "$until" --exclude "${W_ALLOWED_EXCLUDE[@]}" "$@" 2>&1)
    if [ $? = 0 ]; then
        ok "$sc: the allowed client is never refused"
    else
        not_ok "$sc: the allowed client is never refused" "$(head -15 <<<"$fails" | w_clock_lines)" \
            "watch log:" "$(w_log_between "$since" "$until")"
    fi
}

# w_clock <epoch> — HH:MM:SS.mmm; w_clock_lines — the same for the first field of each line
w_clock() { date -u -d "@$1" +%T.%3N 2>/dev/null || echo "$1"; }
w_clock_lines() {
    local t rest
    while read -r t rest; do
        if [[ $t =~ ^[0-9]+\.[0-9]+$ ]]; then echo "$(w_clock "$t") $rest"; else echo "$t $rest"; fi
    done
}
# w_log_between <since> <until> — the watch's log lines from 1 s before <since> to 1 s after <until>
w_log_between() {
    awk -v s="$1" -v u="$2" '$1 >= s - 1 && $1 <= u + 1' "$W_LOG" 2>/dev/null | cut -c1-400 | w_clock_lines
}

# w_hooks_delete — delete by hand every rule of the module outside its own chains (both families,
# every table), one iptables-restore --noflush per table with -D lines
w_hooks_delete() {
    local fam t lines
    for fam in 4 6; do
        for t in filter nat mangle raw; do
            lines=$(dk_xt "$fam" -save -t "$t" 2>/dev/null | grep -E '^-A ' | grep -vE '^-A DFW-' |
                grep 'docker_firewall:' | sed 's/^-A /-D /')
            [ -n "$lines" ] || continue
            printf '*%s\n%s\nCOMMIT\n' "$t" "$lines" | dk_xt "$fam" -restore --noflush ||
                echo "# could not delete the hooks in $t (IPv$fam)" >&2
        done
    done
}
# w_chains_flush — flush every DFW- chain by hand, both families, every table: one
# iptables-restore --noflush per table that declares the chains (declaring a chain in restore input
# flushes it: what a tool restoring a rules file that names the chain does)
w_chains_flush() {
    local fam t decl
    for fam in 4 6; do
        for t in filter nat mangle raw; do
            decl=$(dk_xt "$fam" -save -t "$t" 2>/dev/null | sed -n 's/^:\(DFW-[^ ]*\) .*/:\1 - [0:0]/p')
            [ -n "$decl" ] || continue
            printf '*%s\n%s\nCOMMIT\n' "$t" "$decl" | dk_xt "$fam" -restore --noflush ||
                echo "# could not flush the DFW- chains in $t (IPv$fam)" >&2
        done
    done
}

# w_wait_owned <want> <seconds> — until the module's rules are <want> again
w_wait_owned() {
    local want=$1 limit=$2 _
    for _ in $(seq 1 $((limit * 4))); do
        [ "$(w_owned)" = "$want" ] && return 0
        sleep 0.25
    done
    return 1
}

# w_restart <proxy on|off> — dockerd stopped by its PID and started again; sets W_T_STOP, W_T_UP
w_restart() {
    W_T_STOP=$(w_now)
    dk_daemon_stop
    DK_PROXY=$1
    dk_daemon_start || return 1
    W_T_UP=$(w_now)
    dk_wait_up 60
}

# w_publish <container> <network> <port> — a container published while the watch runs
w_publish() {
    dk_docker run -d --init --restart always --name "$1" --network "$2" -e "NAME=$1" -p "$3:80" \
        "$DK_IMAGE" /bin/busybox httpd -f -p 80 -h /www >/dev/null
}

# w_allowed_scope — which of the allowed client's probes are checked: IPv6 is left out on
# iptables-legacy with the userland proxy off, where dockerd writes IPv6 DNAT rules for only some ports
# (the ip6tables-legacy -C bug run.sh's check_v6_dnat describes)
w_allowed_scope() {
    W_ALLOWED_FAMS="4 6"
    W_ALLOWED_EXCLUDE=(none)
    if [ "$BACKEND" = legacy ] && [ "$DK_PROXY" = off ]; then
        W_ALLOWED_FAMS=4
        W_ALLOWED_EXCLUDE=(-6)
        echo "# skip - ${T}allowed client's IPv6 probes with the userland proxy off on iptables-legacy (dockerd's IPv6 DNAT rules are incomplete there)"
    fi
    W_ALLOWED_EXCLUDE+=("$@")
}

# watch_suite <strategy> — every scenario on the running lab; DFW_BIN is the binary
watch_suite() {
    W_STRATEGY=$1
    W_DIR=$WORK/watch.$ENGINE.$BACKEND
    W_LOG=$W_DIR/watch.log
    W_ENGINE_LABEL=$(dk_dockerd_version | sed -n 's/^Docker version \([0-9.]*\).*/docker-\1/p')
    [ -n "$W_ENGINE_LABEL" ] || W_ENGINE_LABEL=docker-$ENGINE
    local lim=1 t0 t1 before secs rc p fails start=$SECONDS
    [ "$BACKEND" = legacy ] && lim=$((W_RESYNC + 1))
    T="$W_ENGINE_LABEL, $BACKEND, watch ($W_STRATEGY): "
    mkdir -p "$W_DIR"
    if ! "$DFW_BIN" watch --help >/dev/null 2>&1; then
        not_ok "the binary has a watch subcommand ($DFW_BIN)" "$("$DFW_BIN" watch --help 2>&1 | head -5)"
        T=""
        return 0
    fi
    w_policy "$W_DIR/policy.json" "$W_STRATEGY"
    # the lab as Docker leaves it by default: userland proxy on
    if [ "${DK_DAEMON_PROXY:-}" != on ]; then
        dk_daemon_stop
        DK_PROXY=on
        { dk_daemon_start && dk_wait_up 60; } || { not_ok "dockerd (proxy on) before the watch"; T=""; return 0; }
    fi
    # names that are not hexadecimal: `docker rm c5` removes the container whose ID starts with c5
    # when none is named so
    dk_docker rm -f late7070 late7071 >/dev/null 2>&1
    if ! w_probes_start; then
        not_ok "the probe processes start" "$(cat "$W_DIR"/*.probe.err)"
        T=""
        return 0
    fi

    # ------------------------------------------------ start: the first converge
    t0=$(w_now)
    w_watch_start "$W_LOG"
    if w_wait_log "$W_LOG" "$W_READY_RE" 20; then
        ok "the watch starts and reports ready ($(awk -v a="$t0" -v b="$(w_now)" 'BEGIN {printf "%.1f", b - a}') s)"
    else
        not_ok "the watch starts and reports ready" "$(tail -20 "$W_LOG")"
        w_probes_stop
        T=""
        return 0
    fi
    sleep 1.5
    t1=$(w_now)
    # from the ready line on: nothing for the stranger, everything for the allowed client
    fails=$("$W_PYTHON" "$W_PROBE" window "$W_DIR/stranger.log" --since "$(awk -v t="$t1" 'BEGIN {printf "%.3f", t - 1}')" --until "$t1")
    if [[ $fails == "0.00 -"* ]]; then
        ok "once ready, the stranger reaches none of 8080/8443/9090 (IPv4, IPv6)"
    else
        not_ok "once ready, the stranger reaches none of 8080/8443/9090" "$fails" "$(w_owned)"
    fi

    # ------------------------------------------------ (a) a container published after the start, proxy on
    sleep 1
    w_allowed_scope 7071
    t0=$(w_now)
    w_publish late7070 bridge 7070 || not_ok "docker run late7070 -p 7070:80"
    w_wait_allowed "$t0" 20 7070 || not_ok "a-proxy-on: the allowed client reaches 7070 within 20 s"
    sleep 3
    t1=$(w_now)
    w_check a-proxy-on "$t0" "$t1" "$lim" --after-first-success

    # ------------------------------------------------ (d) dockerd restart
    sleep 1
    t0=$(w_now)
    if w_restart on && w_wait_allowed "$W_T_UP" 40 8080 8443 9090 7070; then
        sleep 2
        t1=$(w_now)
        echo "# figure: $W_ENGINE_LABEL $BACKEND d-restart: allowed client back $(w_back "$W_T_UP") s after dockerd answered"
        W_ALLOWED_SINCE=$W_T_UP w_check d-restart "$t0" "$t1" 0 --after-first-success
        # before the stop, the allowed client was never refused
        fails=$("$W_PYTHON" "$W_PROBE" failures "$W_DIR/allowed.log" --since "$t0" --until "$W_T_STOP" \
            --exclude "${W_ALLOWED_EXCLUDE[@]}" 2>&1) || not_ok "d-restart: the allowed client is never refused before dockerd stops" "$fails"
    else
        not_ok "d-restart: dockerd restarted and the allowed client got through again" \
            "$(tail -5 "$DK_DIR/dockerd.log")" "$(tail -10 "$W_LOG")"
    fi

    # ------------------------------------------------ (f) hooks deleted, chains flushed by hand
    sleep 1
    before=$(w_owned)
    t0=$(w_now)
    w_hooks_delete
    if w_wait_owned "$before" 10; then
        secs=$(awk -v a="$t0" -v b="$(w_now)" 'BEGIN {printf "%.2f", b - a}')
        ok "f-hook-deleted: the watch put the module's rules back exactly ($secs s)"
    else
        not_ok "f-hook-deleted: the watch put the module's rules back exactly" "$(diff <(echo "$before") <(w_owned))" "$(tail -10 "$W_LOG")"
    fi
    sleep 2
    t1=$(w_now)
    w_check f-hook-deleted "$t0" "$t1" "$lim"
    t0=$(w_now)
    w_chains_flush
    if w_wait_owned "$before" 10; then
        secs=$(awk -v a="$t0" -v b="$(w_now)" 'BEGIN {printf "%.2f", b - a}')
        ok "f-chain-flushed: the watch put the module's rules back exactly ($secs s)"
    else
        not_ok "f-chain-flushed: the watch put the module's rules back exactly" "$(diff <(echo "$before") <(w_owned))" "$(tail -10 "$W_LOG")"
    fi
    sleep 2
    t1=$(w_now)
    w_check f-chain-flushed "$t0" "$t1" "$lim"
    grep -E 'repaired' "$W_LOG" | tail -n 4 | cut -c1-300 | w_clock_lines | sed 's/^/#   watch log: /'

    # ------------------------------------------------ (d) restart into userland-proxy=false, (a) proxy off
    sleep 1
    t0=$(w_now)
    if w_restart off; then
        w_allowed_scope 7071
        if w_wait_allowed "$W_T_UP" 40 8080 8443 9090 7070; then
            sleep 2
            t1=$(w_now)
            W_ALLOWED_SINCE=$W_T_UP w_check d-restart-proxy-off "$t0" "$t1" 0 --after-first-success
        else
            not_ok "d-restart-proxy-off: the allowed client got through again" "$(tail -10 "$W_LOG")"
        fi
        t0=$(w_now)
        w_publish late7071 net1 7071 || not_ok "docker run late7071 -p 7071:80"
        w_wait_allowed "$t0" 20 7071 || not_ok "a-proxy-off: the allowed client reaches 7071 within 20 s"
        sleep 3
        t1=$(w_now)
        w_allowed_scope
        w_check a-proxy-off "$t0" "$t1" "$lim" --after-first-success
    else
        not_ok "dockerd restarted with userland-proxy false" "$(tail -5 "$DK_DIR/dockerd.log")"
    fi

    # ------------------------------------------------ SIGTERM
    before=$(w_owned)
    t0=$(w_now)
    kill -TERM "$WATCH_PID"
    for p in $(seq 1 100); do kill -0 "$WATCH_PID" 2>/dev/null || break; sleep 0.02; done
    secs=$(awk -v a="$t0" -v b="$(w_now)" 'BEGIN {printf "%.2f", b - a}')
    if kill -0 "$WATCH_PID" 2>/dev/null; then
        not_ok "sigterm: the watch ends within 1 s (still running after $secs s)" "$(tail -5 "$W_LOG")"
        kill -KILL "$WATCH_PID" 2>/dev/null
    fi
    wait "$WATCH_PID"
    rc=$?
    if [ "$rc" = 0 ] && awk -v s="$secs" 'BEGIN {exit !(s <= 1)}'; then
        ok "sigterm: the watch ends in $secs s with exit status 0"
    else
        not_ok "sigterm: the watch ends within 1 s with exit status 0 ($secs s, status $rc)" "$(tail -5 "$W_LOG")"
    fi
    echo "# figure: $W_ENGINE_LABEL $BACKEND sigterm: the watch ended $secs s after SIGTERM"
    sleep 1
    if [ "$(w_owned)" = "$before" ]; then
        ok "sigterm: the rules stay in place"
    else
        not_ok "sigterm: the rules stay in place" "$(diff <(echo "$before") <(w_owned))"
    fi

    # ------------------------------------------------ (e) simulated reboot: the watch first, then dockerd
    DK_PROXY=on
    dk_daemon_stop
    dk_host_down
    t0=$(w_now)
    dk_host_up
    w_watch_start "$W_DIR/watch.boot.log"
    W_LOG=$W_DIR/watch.boot.log
    if w_wait_log "$W_LOG" "$W_READY_RE" 20; then
        ok "e-reboot: on the fresh host the watch converges and reports ready before dockerd runs"
    else
        not_ok "e-reboot: on the fresh host the watch reports ready before dockerd runs (a unit ordered Before=docker.service waits for READY=1)" \
            "$(tail -10 "$W_LOG")"
    fi
    if [ -n "$(w_owned)" ]; then
        ok "e-reboot: the module's rules are in place before dockerd starts"
    else
        not_ok "e-reboot: the module's rules are in place before dockerd starts" "$(snap)"
    fi
    sleep 1
    w_allowed_scope
    if dk_daemon_start && W_T_UP=$(w_now) && dk_wait_up 60 && w_wait_allowed "$W_T_UP" 40 "${W_PORTS[@]}"; then
        sleep 2
        t1=$(w_now)
        echo "# figure: $W_ENGINE_LABEL $BACKEND e-reboot: allowed client back $(w_back "$W_T_UP") s after dockerd answered"
        W_ALLOWED_SINCE=$W_T_UP w_check e-reboot "$t0" "$t1" 0 --after-first-success
    else
        not_ok "e-reboot: dockerd brought the containers back and the allowed client got through" \
            "$(tail -5 "$DK_DIR/dockerd.log")" "$(dk_docker ps -a 2>&1)" "$(tail -10 "$W_LOG")"
    fi
    kill -TERM "$WATCH_PID" 2>/dev/null
    wait "$WATCH_PID" 2>/dev/null
    WATCH_PID=
    w_probes_stop
    echo "# watch scenarios ($W_ENGINE_LABEL, $BACKEND) done in $((SECONDS - start)) s"
    T=""
}

# w_back <since> — seconds from <since> to the allowed client's first probe that connected to every
# port afterwards (the latest of the per-key firsts)
w_back() {
    awk -v s="$1" '$1 >= s && ($4 == "open" || $4 == "connected") && !($3 in f) {f[$3] = $1}
        END {m = s; for (k in f) if (f[k] > m) m = f[k]; printf "%.2f", m - s}' "$W_DIR/allowed.log"
}

# watch_figures_table <figures file> — the figures as a markdown table: one row per engine and
# backend, one column per scenario (the longest stranger window in seconds; limits in the header)
watch_figures_table() {
    local f=$1
    [ -s "$f" ] || return 0
    awk -v rs="$W_RESYNC" '
        { key = $1 " " $2; if (!(key in seen)) { seen[key] = 1; rows[++n] = key } v[key, $3] = $4; p[key] += $5 }
        END {
            split("a-proxy-on a-proxy-off d-restart d-restart-proxy-off e-reboot f-hook-deleted f-chain-flushed", sc, " ")
            printf "| engine | iptables |"
            for (i = 1; i <= 7; i++) printf " %s |", sc[i]
            printf " stranger probes |\n|---|---|"
            for (i = 1; i <= 7; i++) printf "---|"
            printf "---|\n"
            printf "| limit | nft / legacy | 1 s / %d s | 1 s / %d s | 0 | 0 | 0 | 1 s / %d s | 1 s / %d s | |\n", rs + 1, rs + 1, rs + 1, rs + 1
            for (r = 1; r <= n; r++) {
                split(rows[r], k, " ")
                sub(/^docker-/, "Docker ", k[1])
                printf "| %s | %s |", k[1], k[2]
                for (i = 1; i <= 7; i++) printf " %s |", ((rows[r], sc[i]) in v) ? v[rows[r], sc[i]] " s" : "-"
                printf " %d |\n", p[rows[r]]
            }
        }' "$f"
}
