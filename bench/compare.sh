#!/usr/bin/env bash
# bench/compare.sh — before/after: the module's no-op and applying runs for several binaries, on
# the same benchmark host (bench/gen_foreign.py), interleaved run by run, medians printed.
# Runs as root inside its own network namespace (deleted on exit), like bench/run.sh.
#
# usage: bench/compare.sh BACKEND SIZES SOURCES REPS BIN...
#   e.g. bench/compare.sh nft 10000 100 7 target/x86_64-unknown-linux-gnu/release/docker_firewall /tmp/new
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
[ $# -ge 5 ] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
backend=$1 sizes=$2 sources=$3 reps=$4
shift 4
WORK=$(mktemp -d /tmp/dfwbench-cmp.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# private copies (a rebuild during the run cannot swap a binary), named <n>-<original name>
bins=()
for b in "$@"; do
    copy=$WORK/${#bins[@]}-$(basename "$b")
    cp "$b" "$copy"
    bins+=("$copy")
done
ns=dfwbench-$$-cmp
trap 'ip netns delete "$ns" 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
ip netns add "$ns"
ip -n "$ns" link set lo up
DFWBENCH_NETNS=$ns ip netns exec "$ns" python3 "$BENCH/measure.py" compare --backend "$backend" \
    --bins "$(IFS=,; echo "${bins[*]}")" --work "$WORK" --sizes "$sizes" --sources "$sources" --reps "$reps" |
    tee "$WORK/compare.jsonl" >/dev/null
python3 "$BENCH/report.py" "$WORK/compare.jsonl"
