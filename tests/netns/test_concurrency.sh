#!/usr/bin/env bash
# Concurrent runs (issue 11, item 1). Each round starts 2 to 8 runs at once — the Ansible form
# (ARGS_FILE), `apply --policy`, and in one round of three a `watch` (stopped with SIGTERM once the
# others are done and its first converge is logged) — each with one of four DIFFERENT policies (other ports, sources, strategies). After
# each round the owned ruleset must be exactly one policy's (compared with a reference render made by
# applying each policy alone first), every foreign rule byte-for-byte as before, and no run may have
# failed except with the run lock's timeout message.
# Then the locks: the run lock (a file per network namespace under /run/docker_firewall/) held with
# flock(1) makes a run with lock_timeout 1 fail naming the holder and change nothing; the xtables lock
# held (legacy; in a private /run so no other test waits) becomes an "xtables lock busy" failure within a
# bound instead of a hang.
#   CONCURRENCY_ROUNDS  rounds per job (default 50: 4 jobs = 200 rounds, 1-3 min per job;
#                       150 for the manual run reported in docs/watch.md: 600 rounds, about 6 min)
# layouts: docker20 docker28
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_need_bin

ROUNDS=${CONCURRENCY_ROUNDS:-50}
LOCK_RE='lock'
RANDOM=${CONCURRENCY_SEED:-$$}

t_lab_up
lab_foreign_rules || not_ok "foreign rules loaded"
snap "$T_DIR/s0"
t_unowned <"$T_DIR/s0" | grep '^-A' >"$T_DIR/foreign-rules0"

# ---------------------------------------------------------------- four policies, references
allow() { # <ports JSON> <who: a|d|ad> <comment>
    jq -cn --argjson p "$1" --arg w "$2" --arg c "$3" --arg a4 "$ALLOWED4" --arg a6 "$ALLOWED6" \
        --arg d4 "$DENIED4" --arg d6 "$DENIED6" \
        '{ports: $p, proto: "tcp", comment: $c,
          sources: ((if ($w | contains("a")) then [$a4, $a6] else [] end) + (if ($w | contains("d")) then [$d4, $d6] else [] end))}'
}
OVR=(
    "{\"ingress\":{\"allow\":[$(allow '[8080]' a 'conc P1')]}}"
    "{\"ingress\":{\"allow\":[$(allow '[8080,8443]' a 'conc P2'),$(allow '[8080]' d 'conc P2 denied')]}}"
    "{\"ingress\":{\"allow\":[$(allow '["8400-8500"]' ad 'conc P3')]}}"
    "{\"strategy\":\"both\",\"ingress\":{\"allow\":[$(allow '[8443]' d 'conc P4')]}}"
)
K=${#OVR[@]}
for ((i = 0; i < K; i++)); do
    dfw_policy "$T_DIR/pol$i.json" "${OVR[$i]}"
    # the same options as module arguments (persist off, like the policies)
    T_SEQ=$((T_SEQ + 1))
    cp "$(dfw_args "$(jq -c '. + {persist: false}' <<<"${OVR[$i]}")")" "$T_DIR/args$i.json"
done
for ((i = 0; i < K; i++)); do
    T_SEQ=$((T_SEQ + 1))
    dfw_exec apply --policy "$T_DIR/pol$i.json"
    t_eq "reference: P$((i + 1)) applied alone (exit 2)" 2 "$DFW_RC" "$(head -c 800 "$DFW_ERR")"
    owned_snap "$T_DIR/ref$i"
    T_SEQ=$((T_SEQ + 1))
    dfw_exec apply --policy "$T_DIR/pol$i.json"
    t_eq "reference: P$((i + 1)) again: no change (exit 0)" 0 "$DFW_RC" "$(head -c 800 "$DFW_OUT")"
done
for ((i = 0; i < K; i++)); do
    for ((j = i + 1; j < K; j++)); do
        cmp -s "$T_DIR/ref$i" "$T_DIR/ref$j" && not_ok "references P$((i + 1)) and P$((j + 1)) differ"
    done
done
snap "$T_DIR/s1"
t_unowned <"$T_DIR/s1" >"$T_DIR/foreign-ref"
grep '^-A' "$T_DIR/foreign-ref" >"$T_DIR/foreign-rules1"
t_same "references: every foreign rule as before the first run" "$T_DIR/foreign-rules0" "$T_DIR/foreign-rules1"

# ---------------------------------------------------------------- rounds
# conc_start <dir> <j> <module|apply> <policy index> — one run in the background (as dfw_exec: /etc
# under a throw-away overlay); <dir>/<j>.rc appears when it ended
conc_start() {
    local d=$1 j=$2 mode=$3 i=$4
    if [ "$mode" = module ]; then set -- "$T_DIR/args$i.json"; else set -- apply --policy "$T_DIR/pol$i.json"; fi
    (
        # shellcheck disable=SC2016  # expanded by the inner shell
        ip netns exec "$NS_HOST" env LANG=C OVL="$T_DIR/etcovl" sh -c '
            mount -t tmpfs dfw-etc "$OVL" && mkdir "$OVL/u" "$OVL/w" &&
                mount -t overlay dfw-etc -o "lowerdir=/etc,upperdir=$OVL/u,workdir=$OVL/w" /etc ||
                { echo "test harness: cannot cover /etc with an overlay" >&2; exit 97; }
            exec timeout -k 5 90 "$0" "$@"' "$DFW_BIN" "$@" >"$d/$j.out" 2>"$d/$j.err" </dev/null
        echo $? >"$d/$j.rc"
    ) &
    CONC_PIDS+=($!)
}
# conc_verdict <dir> <j> <mode> — "ok", "lock" (failed with the lock-timeout message) or "bad: ..."
conc_verdict() {
    local d=$1 j=$2 mode=$3 rc msg
    rc=$(cat "$d/$j.rc" 2>/dev/null)
    if [ "$mode" = module ]; then
        if [ "$(jq -s 'length' "$d/$j.out" 2>/dev/null)" != 1 ]; then echo "bad: rc=$rc stdout not one JSON value: $(head -c 300 "$d/$j.out") $(head -c 300 "$d/$j.err")"; return; fi
        if [ "$(jq -r '.failed // false' "$d/$j.out")" = false ] && [ "$rc" = 0 ]; then echo ok; return; fi
        msg=$(jq -r '.msg // ""' "$d/$j.out")
    else
        case $rc in 0 | 2) echo ok; return ;; esac
        msg=$(cat "$d/$j.err")
    fi
    if grep -Eqi -- "$LOCK_RE" <<<"$msg"; then echo lock; else echo "bad: rc=$rc msg: $(head -c 400 <<<"$msg")"; fi
}

MODES=(module apply)
declare -A USED FINAL
runs=0 lockfails=0 bad_rounds=0 mixed=0 foreign_bad=0 watch_bad=0 shown=0
start=$SECONDS
for ((r = 1; r <= ROUNDS; r++)); do
    echo "round $r at $((SECONDS - start)) s" >>"$T_DIR/progress"
    d=$T_DIR/round
    rm -rf "$d"
    mkdir -p "$d"
    n=$((2 + RANDOM % 7))
    spec=()
    wj=
    CONC_PIDS=()
    # a watch in one round of three (it costs a start and a stop), in a random place
    w=-1
    [ $((RANDOM % 3)) = 0 ] && w=$((RANDOM % n))
    for ((j = 0; j < n; j++)); do
        m=${MODES[$((RANDOM % 2))]}
        [ "$j" = "$w" ] && m=watch
        i=$((RANDOM % K))
        spec+=("$m $i")
        USED[$m]=$((${USED[$m]:-0} + 1))
    done
    # start them all, as close together as the shell allows
    for ((j = 0; j < n; j++)); do
        read -r m i <<<"${spec[$j]}"
        if [ "$m" = watch ]; then
            wj=$j
            dfw_spawn "conc-watch" watch --policy "$T_DIR/pol$i.json" --resync 1 --docker-socket /nonexistent
            WPID=$DFW_PID
        else
            conc_start "$d" "$j" "$m" "$i"
        fi
    done
    problems=()
    # the one-shot runs end
    for ((j = 0; j < n; j++)); do
        [ "$j" = "$wj" ] && continue
        for _ in $(seq 1 1000); do [ -s "$d/$j.rc" ] && break; sleep 0.05; done
        read -r m i <<<"${spec[$j]}"
        v=$(conc_verdict "$d" "$j" "$m")
        runs=$((runs + 1))
        case $v in
            ok) ;;
            lock) lockfails=$((lockfails + 1)) ;;
            *) problems+=("run $j ($m P$((i + 1))): $v") ;;
        esac
    done
    # the watch: ready (its first converge done), then SIGTERM
    if [ -n "$wj" ]; then
        runs=$((runs + 1))
        for _ in $(seq 1 300); do grep -Eq '(applied|in place) \(start\)' "$T_DIR/conc-watch.log" 2>/dev/null && break; dfw_alive "$WPID" || break; sleep 0.05; done
        grep -Eq '(applied|in place) \(start\)' "$T_DIR/conc-watch.log" || problems+=("watch: no first-converge line ('applied|in place (start)') within 15 s")
        kill -TERM "$WPID" 2>/dev/null
        for _ in $(seq 1 200); do dfw_alive "$WPID" || break; sleep 0.05; done
        if dfw_alive "$WPID"; then
            problems+=("watch: still running 10 s after SIGTERM")
            kill -KILL "$WPID" 2>/dev/null
        fi
        dfw_reap "$WPID"
        wrc=$?
        [ "$wrc" = 0 ] || problems+=("watch: exit status $wrc after SIGTERM")
        [ ${#problems[@]} -eq 0 ] || problems+=("watch log: $(cut -d' ' -f2- "$T_DIR/conc-watch.log" | tail -5)")
        [ "$wrc" = 0 ] || watch_bad=$((watch_bad + 1))
    fi
    wait "${CONC_PIDS[@]}"
    # the state: exactly one policy, foreign rules intact
    snap "$d/snap"
    t_owned <"$d/snap" >"$d/owned"
    which=
    for ((i = 0; i < K; i++)); do cmp -s "$T_DIR/ref$i" "$d/owned" && which=$i && break; done
    if [ -n "$which" ]; then
        FINAL[$which]=$((${FINAL[$which]:-0} + 1))
    else
        mixed=$((mixed + 1))
        best=0 bestn=999999
        for ((i = 0; i < K; i++)); do
            dn=$(diff "$T_DIR/ref$i" "$d/owned" | grep -c '^[<>]')
            [ "$dn" -lt "$bestn" ] && best=$i bestn=$dn
        done
        problems+=("owned ruleset is none of the policies; closest P$((best + 1)):" "$(diff -u "$T_DIR/ref$best" "$d/owned" | head -30)")
    fi
    if ! t_unowned <"$d/snap" | cmp -s "$T_DIR/foreign-ref" -; then
        foreign_bad=$((foreign_bad + 1))
        problems+=("foreign rules changed:" "$(t_unowned <"$d/snap" | diff -u "$T_DIR/foreign-ref" - | head -30)")
    fi
    if [ ${#problems[@]} -gt 0 ]; then
        bad_rounds=$((bad_rounds + 1))
        if [ "$shown" -lt 3 ]; then
            shown=$((shown + 1))
            not_ok "round $r (${spec[*]})" "${problems[@]}"
            cp -r "$d" "$T_DIR/failed-round-$r"
        fi
        # start the next round from a known policy
        T_SEQ=$((T_SEQ + 1))
        dfw_exec apply --policy "$T_DIR/pol0.json"
    fi
done
elapsed=$((SECONDS - start))
t_eq "$ROUNDS rounds of 2-8 concurrent runs: every round clean" 0 "$bad_rounds"
t_eq "$ROUNDS rounds: the owned ruleset was always exactly one policy" 0 "$mixed"
t_eq "$ROUNDS rounds: foreign rules always intact" 0 "$foreign_bad"
t_eq "$ROUNDS rounds: every watch exited 0 on SIGTERM" 0 "$watch_bad"
dist=
for ((i = 0; i < K; i++)); do dist+=" P$((i + 1))=${FINAL[$i]:-0}"; done
t_figure "concurrency: $ROUNDS rounds, $runs runs (module ${USED[module]:-0}, apply ${USED[apply]:-0}, watch ${USED[watch]:-0}), $lockfails lock-timeout failures, $bad_rounds bad rounds, $mixed mixed states; final policy:$dist; ${elapsed} s"

# ---------------------------------------------------------------- the run lock held
T_SEQ=$((T_SEQ + 1))
dfw_exec apply --policy "$T_DIR/pol0.json"
ino=$(ip netns exec "$NS_HOST" stat -L -c %i /proc/self/ns/net)
LOCK=$(find /run/docker_firewall -maxdepth 1 -type f -name "*$ino*" 2>/dev/null | head -1)
if [ -z "$LOCK" ]; then
    not_ok "the run lock: a file under /run/docker_firewall/ named after the namespace (inode $ino)" "$(ls -la /run/docker_firewall/ 2>&1 | head)"
else
    ok "the run lock: $LOCK"
    flock -x -o "$LOCK" sleep 60 </dev/null >/dev/null 2>&1 &
    HOLDER=$!
    echo "lock-holder $HOLDER" >>"$LAB_DIR/pids"
    for _ in $(seq 1 100); do flock -n -x "$LOCK" true || break; sleep 0.05; done
    dfw_policy "$T_DIR/held.json" "$(jq -c '. + {lock_timeout: 1}' "$T_DIR/pol1.json")"
    snap "$T_DIR/held0"
    T_SEQ=$((T_SEQ + 1))
    t0=$EPOCHREALTIME
    dfw_exec apply --policy "$T_DIR/held.json"
    t1=$EPOCHREALTIME
    t_eq "run lock held: apply with lock_timeout 1 fails (exit 1)" 1 "$DFW_RC" "$(head -c 500 "$DFW_ERR")"
    t_match "run lock held: the message is about the lock" "$LOCK_RE" "$(cat "$DFW_ERR")"
    t_match "run lock held: the message names the holder (flock, pid $HOLDER)" "\\b$HOLDER\\b" "$(cat "$DFW_ERR")"
    t_figure "run lock held, lock_timeout 1: failed after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s: $(head -c 300 "$DFW_ERR" | tr '\n' ' ')"
    if dfw "$(jq -c '. + {lock_timeout: 1}' "$T_DIR/args1.json")"; then
        t_eq "run lock held: the Ansible form fails too" true "$(dfw_q .failed)" "$(dfw_show)"
        t_match "run lock held: the Ansible form's msg names the holder" "\\b$HOLDER\\b" "$(dfw_q .msg)"
    fi
    snap "$T_DIR/held1"
    t_same "run lock held: nothing changed" "$T_DIR/held0" "$T_DIR/held1"
    for c in $(ps -o pid= --ppid "$HOLDER"); do kill "$c"; done
    kill "$HOLDER"
    wait "$HOLDER" 2>/dev/null
    sed -i "/^lock-holder /d" "$LAB_DIR/pids"
    T_SEQ=$((T_SEQ + 1))
    dfw_exec apply --policy "$T_DIR/held.json"
    t_eq "run lock released: the same apply succeeds (exit 2)" 2 "$DFW_RC" "$(head -c 500 "$DFW_ERR")"
fi

# ---------------------------------------------------------------- the xtables lock held (legacy)
if [ "$BACKEND" = legacy ]; then
    dfw_policy "$T_DIR/xt.json" "$(jq -c '. + {lock_timeout: 1}' "$T_DIR/pol2.json")"
    snap "$T_DIR/xt0"
    mkdir -p "$T_DIR/xtrun"
    # a private /run (tmpfs) in this run's mount namespace: the held /run/xtables.lock is ours alone
    # shellcheck disable=SC2016  # expanded by the inner shell
    ip netns exec "$NS_HOST" env -u XTABLES_LOCKFILE LANG=C OVL="$T_DIR/etcovl" F="$T_DIR/xtrun" sh -c '
        mount -t tmpfs dfw-etc "$OVL" && mkdir "$OVL/u" "$OVL/w" &&
            mount -t overlay dfw-etc -o "lowerdir=/etc,upperdir=$OVL/u,workdir=$OVL/w" /etc &&
            mount -t tmpfs dfw-run /run && : >/run/xtables.lock ||
            { echo "test harness: cannot set up a private /run" >&2; exit 97; }
        flock -x -o /run/xtables.lock sleep 200 </dev/null >/dev/null 2>&1 &
        h=$!
        while flock -n -x /run/xtables.lock true; do sleep 0.05; done
        s=$(date +%s%N)
        timeout -k 5 150 "$0" "$@"
        rc=$?
        echo $(( ($(date +%s%N) - s) / 1000000 )) >"$F/ms"
        for c in $(ps -o pid= --ppid "$h"); do kill "$c"; done
        kill "$h"
        exit $rc' "$DFW_BIN" apply --policy "$T_DIR/xt.json" >"$T_DIR/xtrun/out" 2>"$T_DIR/xtrun/err" </dev/null
    rc=$?
    ms=$(cat "$T_DIR/xtrun/ms" 2>/dev/null)
    t_eq "xtables lock held: apply fails (exit 1), no hang" 1 "$rc" "after ${ms:-?} ms" "$(head -c 600 "$T_DIR/xtrun/err")"
    t_match "xtables lock held: the message says the xtables lock is busy" 'xtables.*(lock|busy)|lock.*busy' "$(cat "$T_DIR/xtrun/err")"
    t_figure "xtables lock held (legacy), lock_timeout 1: failed after ${ms:-?} ms: $(head -c 300 "$T_DIR/xtrun/err" | tr '\n' ' ')"
    snap "$T_DIR/xt1"
    t_same "xtables lock held: nothing changed" "$T_DIR/xt0" "$T_DIR/xt1"
else
    ok "xtables lock held: not applicable to the nft backend # SKIP"
fi

t_done
