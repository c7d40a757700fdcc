#!/usr/bin/env bash
# tests/netns/run.sh — run every tests/netns/test_*.sh in its own fresh lab, for each iptables
# backend (legacy, nft) and each Docker layout the test declares ("# layouts: docker20 docker28";
# dockernft, Docker's nftables firewall backend, only where a test declares it), or exactly the
# backend/layout pairs a test declares ("# combos: nft/docker20 legacy/docker28").
#
#   sudo tests/netns/run.sh [-j JOBS] [test_name ...]      e.g. tests/netns/run.sh test_reject
#
# Environment: BACKENDS ("legacy nft"), LAYOUTS ("docker20 docker28 dockernft"), JOBS (4), TEST_TIMEOUT (300 s),
# DFW_BIN (module binary), PROBE_TIMEOUT (2 s), KEEP=1 (keep the work directory),
# DIAG_LINES (40: diagnostic lines shown per failure).
# Prints "ok - ..." / "not ok - ..." per case (diagnostics "# ..." only for failures), then the line
# "N passed, N failed"; exits non-zero on any failure. Everything runs inside network namespaces
# created for the run (prefix dfwlab-r<pid>-<job>-); the machine's own firewall is never touched.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
JOBS=${JOBS:-4}
BACKENDS=${BACKENDS:-legacy nft}
LAYOUTS=${LAYOUTS:-docker20 docker28 dockernft}
TEST_TIMEOUT=${TEST_TIMEOUT:-300}

while [ $# -gt 0 ]; do
    case $1 in
        -j) JOBS=$2; shift 2 ;;
        -j*) JOBS=${1#-j}; shift ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *) break ;;
    esac
done
if [ "$(id -u)" != 0 ]; then echo "run.sh needs root (network namespaces)" >&2; exit 2; fi
for tool in ip socat jq timeout flock nft "iptables-legacy" "iptables-nft"; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 2; }
done

tests=()
if [ $# -gt 0 ]; then
    for t in "$@"; do
        t=${t%.sh}
        t=${t#test_}
        [ -f "$HERE/test_$t.sh" ] || { echo "no such test: $HERE/test_$t.sh" >&2; exit 2; }
        tests+=("$HERE/test_$t.sh")
    done
else
    for t in "$HERE"/test_*.sh; do tests+=("$t"); done
fi

RUN_ID=dfwlab-r$$
RUN_DIR=$(mktemp -d /tmp/dfw-netns-run.XXXXXX)
export DFW_BIN=${DFW_BIN:-$(cd "$HERE/../.." && pwd)/target/x86_64-unknown-linux-gnu/release/docker_firewall}
export PROBE_TIMEOUT=${PROBE_TIMEOUT:-2}

# job list: "test backend layout"
jobs_list=()
for t in "${tests[@]}"; do
    # "# combos: nft/docker20 legacy/docker28" names exact backend/layout pairs instead
    combos=$(sed -n 's/^# combos:[[:space:]]*//p' "$t" | head -1)
    if [ -n "$combos" ]; then
        for c in $combos; do
            b=${c%%/*} l=${c#*/}
            case " $BACKENDS " in *" $b "*) ;; *) continue ;; esac
            case " $LAYOUTS " in *" $l "*) jobs_list+=("$t $b $l") ;; esac
        done
        continue
    fi
    declared=$(sed -n 's/^# layouts:[[:space:]]*//p' "$t" | head -1)
    [ -n "$declared" ] || declared="docker20 docker28"
    for b in $BACKENDS; do
        for l in $declared; do
            case " $LAYOUTS " in *" $l "*) jobs_list+=("$t $b $l") ;; esac
        done
    done
done

# sweep <job dir> <prefix> — whatever a killed test left behind: its processes (by recorded PID)
# and its namespaces (by this run's unique prefix)
sweep() {
    local d=$1 prefix=$2 pid ns
    if [ -f "$d/lab/pids" ]; then
        while read -r _ pid; do [ -n "$pid" ] && kill "$pid" 2>/dev/null; done <"$d/lab/pids"
    fi
    for ns in /run/netns/"$prefix"-*; do
        [ -e "$ns" ] && ip netns del "$(basename "$ns")" 2>/dev/null
    done
}

run_job() {
    local i=$1 t=$2 b=$3 l=$4 d=$RUN_DIR/$1 rc pass fail
    mkdir -p "$d/lab" "$d/t"
    local prefix=$RUN_ID-$i
    local start=$SECONDS
    BACKEND=$b LAYOUT=$l LAB_PREFIX=$prefix LAB_DIR=$d/lab T_DIR=$d/t \
        timeout -k 15 "$TEST_TIMEOUT" bash "$t" >"$d/out" 2>"$d/err" </dev/null
    rc=$?
    sweep "$d" "$prefix"
    local name
    name="[$b/$l] $(basename "$t" .sh)"
    name=${name/test_/}
    pass=$(grep -c '^ok - ' "$d/out")
    fail=$(grep -c '^not ok - ' "$d/out")
    {
        grep -E '^(ok|not ok) - |^#' "$d/out" | grep -Ev '^# \[[^]]*\] [^:]*: [0-9]+ passed, [0-9]+ failed$' | awk -v max="${DIAG_LINES:-40}" '
            /^not ok - / { if (cut) print "# ... " cut " more diagnostic lines (KEEP=1 keeps them)"; show = 1; n = 0; cut = 0; print; next }
            /^ok - / { if (cut) print "# ... " cut " more diagnostic lines (KEEP=1 keeps them)"; show = 0; cut = 0; print; next }
            /^# / && show { if (++n <= max) print; else cut++ }
            END { if (cut) print "# ... " cut " more diagnostic lines (KEEP=1 keeps them)" }'
        if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
            echo "not ok - $name: test script exited with status $rc$([ "$rc" = 124 ] && echo " (timeout ${TEST_TIMEOUT}s)")"
            tail -15 "$d/err" | sed 's/^/# /'
            fail=1
        fi
        echo "# $name: ${pass} ok, ${fail} not ok, $((SECONDS - start)) s"
    } >"$d/report"
    echo "$pass $fail" >"$d/counts"
    flock "$RUN_DIR/print.lock" cat "$d/report"
}

cleanup() {
    local p
    for p in $(jobs -p); do kill "$p" 2>/dev/null; done
    wait
    for d in "$RUN_DIR"/*/; do [ -d "$d" ] && sweep "$d" "$RUN_ID-$(basename "$d")"; done
    [ -n "${KEEP:-}" ] || rm -rf "$RUN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "# docker_firewall netns tests: ${#jobs_list[@]} jobs, $JOBS at a time, DFW_BIN=$DFW_BIN$([ -x "$DFW_BIN" ] || echo " (missing)")"
start=$SECONDS
i=0
running=0
for j in "${jobs_list[@]}"; do
    i=$((i + 1))
    # shellcheck disable=SC2086
    run_job "$i" $j &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

passed=0
failed=0
for c in "$RUN_DIR"/*/counts; do
    [ -f "$c" ] || continue
    read -r p f <"$c"
    passed=$((passed + p))
    failed=$((failed + f))
done
missing=$((i - $(find "$RUN_DIR" -name counts | wc -l)))
if [ "$missing" -gt 0 ]; then
    echo "not ok - $missing test jobs did not report"
    failed=$((failed + missing))
fi
echo "# total time $((SECONDS - start)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
