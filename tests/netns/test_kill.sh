#!/usr/bin/env bash
# A run killed (SIGKILL) at a random moment (issue 11, item 2): every table the module owns rules in
# is then either fully as before the run or fully as after it (iptables-restore commits a table whole),
# every foreign rule is as it was, and the next run converges. Rounds alternate between two policies
# that differ in both families and in the nat table (strategy both vs docker_user).
#   KILL_ROUNDS  rounds per job (default 70: 2 jobs = 140 rounds, about 115 of them killed mid-run)
# layouts: docker20
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_need_bin

ROUNDS=${KILL_ROUNDS:-70}
RANDOM=${KILL_SEED:-$$}
t_lab_up
lab_foreign_rules || not_ok "foreign rules loaded"

dfw_policy "$T_DIR/polA.json" "$(jq -nc --arg a4 "$ALLOWED4" --arg a6 "$ALLOWED6" \
    '{strategy: "docker_user", ingress: {allow: [{ports: [8080], sources: [$a4, $a6], comment: "kill A"}]}}')"
dfw_policy "$T_DIR/polB.json" "$(jq -nc --arg a4 "$ALLOWED4" --arg a6 "$ALLOWED6" \
    '{strategy: "both", egress: {deny_private: true},
      ingress: {allow: [{ports: [8443, "8400-8500"], sources: [$a4, $a6], comment: "kill B"}]}}')"

# sections <snap> <dir> — one file per "ipvN table" of an owned snap
sections() {
    mkdir -p "$2"
    awk -v d="$2" '/^=== / { fam = $2; next } /^\*/ { f = d "/" fam "-" substr($0, 2); next } { print > f }' "$1"
}
for p in A B; do
    T_SEQ=$((T_SEQ + 1))
    dfw_exec apply --policy "$T_DIR/pol$p.json"
    t_eq "reference: policy $p applied alone (exit 2)" 2 "$DFW_RC" "$(head -c 600 "$DFW_ERR")"
    owned_snap "$T_DIR/ref$p"
    sections "$T_DIR/ref$p" "$T_DIR/ref$p.d"
done
snap /dev/stdout | t_unowned | grep '^-A' >"$T_DIR/foreign0"

bad=0 killed=0 finished=0 mixed_tables=0
from=B
for ((r = 1; r <= ROUNDS; r++)); do
    if [ "$from" = A ]; then to=B; else to=A; fi
    dfw_spawn "kill-$r" apply --policy "$T_DIR/pol$to.json"
    pid=$DFW_PID
    # a moment between 0 and 60 ms: before the read, during the restores, during the read-back
    sleep "0.$(printf "%03d" $((RANDOM % 60)))"
    if dfw_alive "$pid"; then kill -KILL "$pid" 2>/dev/null && killed=$((killed + 1)); else finished=$((finished + 1)); fi
    dfw_reap "$pid" >/dev/null 2>&1
    owned_snap "$T_DIR/now"
    rm -rf "$T_DIR/now.d"
    sections "$T_DIR/now" "$T_DIR/now.d"
    for f in "$T_DIR/refA.d"/* "$T_DIR/refB.d"/* "$T_DIR/now.d"/*; do
        s=$(basename "$f")
        [ -f "$T_DIR/checked-$r-$s" ] && continue
        : >"$T_DIR/checked-$r-$s"
        now="$T_DIR/now.d/$s"
        [ -f "$now" ] || now=/dev/null
        a="$T_DIR/refA.d/$s" b="$T_DIR/refB.d/$s"
        [ -f "$a" ] || a=/dev/null
        [ -f "$b" ] || b=/dev/null
        if ! cmp -s "$now" "$a" && ! cmp -s "$now" "$b"; then
            mixed_tables=$((mixed_tables + 1))
            [ "$bad" -lt 3 ] && not_ok "round $r: table $s is neither before nor after" "$(diff "$a" "$now" | head -20)"
            bad=$((bad + 1))
        fi
    done
    rm -f "$T_DIR"/checked-"$r"-*
    snap /dev/stdout | t_unowned | grep '^-A' >"$T_DIR/foreign-now"
    if ! cmp -s "$T_DIR/foreign0" "$T_DIR/foreign-now"; then
        [ "$bad" -lt 3 ] && not_ok "round $r: foreign rules changed" "$(diff "$T_DIR/foreign0" "$T_DIR/foreign-now" | head -20)"
        bad=$((bad + 1))
    fi
    # the next run converges to the policy it was killed applying
    T_SEQ=$((T_SEQ + 1))
    dfw_exec apply --policy "$T_DIR/pol$to.json"
    owned_snap "$T_DIR/after"
    if [ "$DFW_RC" = 1 ] || ! cmp -s "$T_DIR/after" "$T_DIR/ref$to"; then
        [ "$bad" -lt 3 ] && not_ok "round $r: the next run converges" "rc=$DFW_RC $(head -c 400 "$DFW_ERR")" "$(diff "$T_DIR/ref$to" "$T_DIR/after" | head -20)"
        bad=$((bad + 1))
    fi
    from=$to
done
t_eq "$ROUNDS rounds killed at random moments: every table before or after, foreign rules kept, the next run converges" 0 "$bad"
t_figure "$ROUNDS rounds, $killed killed mid-run, $finished finished before the kill, $mixed_tables mixed tables"
t_done
