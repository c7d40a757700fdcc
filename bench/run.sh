#!/usr/bin/env bash
# bench/run.sh — performance benchmark of the docker_firewall module (run by hand, as root; not
# part of the test suite). Prints a Markdown report (docs/benchmarks.md holds one) of medians:
#   1. the module as a process, no-op and applying runs, on hosts holding N foreign rules (Docker-
#      and kube-proxy-like, bench/gen_foreign.py) with S allowed sources, both iptables backends,
#      backend passed explicitly, plus backend: auto once per backend;
#   2. the floor measured beside it: one iptables-save per family (no-op) and one
#      iptables-restore --noflush of the module's own restore input per family (apply);
#   3. end to end through ansible-playbook: one docker_firewall task vs a looped
#      ansible.builtin.iptables task;
#   4. static binary size and start-up time.
#
# Safety: every iptables call and module run happens inside a network namespace made here
# (dfwbench-<pid>-<backend>), deleted on exit; measure.py refuses to run outside it. The module
# runs with persist: false and rules_v4/rules_v6 in the work directory, never /etc/iptables.
#
# usage: bench/run.sh [--quick] [--no-build] [--backends "legacy nft"] [--skip-ansible] [--out FILE]
#   --quick        small sizes and few repetitions (a smoke test of the script, ~2 min)
#   --no-build     use the binary already at target/x86_64-unknown-linux-gnu/release/docker_firewall
#   --out FILE     also write the report to FILE (it is always printed)
# Environment: REPS (process runs per cell, default 5), ANSIBLE_REPS (default 3), SIZES
# (default 100,1000,10000), SOURCES (default 10,100,1000), ANSIBLE_SIZE (default 1000),
# ANSIBLE_SOURCES (default 10,100), KEEP=1 keeps the work directory.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
TARGET_BIN=$ROOT/target/x86_64-unknown-linux-gnu/release/docker_firewall
VENV=$ROOT/.venv
COMMAND_LINE="bench/run.sh${*:+ $*}"

BUILD=1 OUT="" BACKENDS="legacy nft" ANSIBLE=1
REPS=${REPS:-5} ANSIBLE_REPS=${ANSIBLE_REPS:-3}
SIZES=${SIZES:-100,1000,10000} SOURCES=${SOURCES:-10,100,1000}
ANSIBLE_SIZE=${ANSIBLE_SIZE:-1000} ANSIBLE_SOURCES=${ANSIBLE_SOURCES:-10,100}
AUTO_SIZE=${AUTO_SIZE:-} AUTO_SOURCES=${AUTO_SOURCES:-100} STARTUP_REPS=${STARTUP_REPS:-200}
while [ $# -gt 0 ]; do
    case $1 in
        --quick) REPS=2 ANSIBLE_REPS=1 SIZES=100,1000 SOURCES=10,100,1000 ANSIBLE_SOURCES=3,10 STARTUP_REPS=20 ;;
        --no-build) BUILD="" ;;
        --backends) BACKENDS=$2; shift ;;
        --skip-ansible) ANSIBLE="" ;;
        --out) OUT=$2; shift ;;
        -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
AUTO_SIZE=${AUTO_SIZE:-${SIZES##*,}}

die() { echo "bench/run.sh: $*" >&2; exit 1; }
log() { echo "# $(date +%T) $*" >&2; }
[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, iptables)"
for b in $BACKENDS; do
    for t in iptables ip6tables; do
        for s in save restore; do
            command -v "/usr/sbin/$t-$b-$s" >/dev/null || die "/usr/sbin/$t-$b-$s is missing"
        done
    done
done
command -v python3 >/dev/null || die "python3 is missing"

if [ -n "$ANSIBLE" ] && [ ! -x "$VENV/bin/ansible-playbook" ]; then
    log "creating $VENV with ansible-core 2.19.14"
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q 'ansible-core==2.19.14'
fi

if [ -n "$BUILD" ]; then
    log "building the static binary"
    (cd "$ROOT" && RUSTFLAGS="-C target-feature=+crt-static" cargo build --release \
        --target x86_64-unknown-linux-gnu >&2)
fi
[ -x "$TARGET_BIN" ] || die "$TARGET_BIN is missing (run without --no-build)"

WORK=$(mktemp -d /tmp/dfwbench.XXXXXX)
NAMESPACES=()
cleanup() {
    local ns
    for ns in "${NAMESPACES[@]}"; do ip netns delete "$ns" 2>/dev/null || true; done
    if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else log "kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A private copy: another build of target/ during the run cannot change what is measured.
BIN=$WORK/docker_firewall
cp "$TARGET_BIN" "$BIN"
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
machine() { jq -cn --arg k "$1" --arg v "$2" '{kind: "machine", key: $k, value: $v}' >>"$RESULTS"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

START=$(date +%s)
machine command "$COMMAND_LINE"
machine date "$(date -u '+%Y-%m-%d %H:%M UTC')"
machine commit "$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' (src/ modified in the work tree)')"
machine binary "sha256 $(sha256sum "$BIN" | cut -c1-16), $(file -b "$BIN" | cut -d, -f1-2,4 | sed 's/  */ /g')"
machine nproc "$(nproc)"
machine cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
machine kernel "$(uname -r)"
machine iptables "$(/usr/sbin/iptables-legacy --version 2>/dev/null | head -1); $(/usr/sbin/iptables-nft --version 2>/dev/null | head -1)"
[ -n "$ANSIBLE" ] && machine ansible "$("$VENV/bin/ansible-playbook" --version 2>/dev/null | head -1), $("$VENV/bin/python" --version)"
machine reps "process: $REPS per cell; ansible: $ANSIBLE_REPS per cell; start-up: $STARTUP_REPS"
machine load_before "load average $(loadavg) (uptime)"

log "start-up time and size"
python3 "$BENCH/measure.py" startup --bin "$BIN" --reps "$STARTUP_REPS" >>"$RESULTS"

for backend in $BACKENDS; do
    ns=dfwbench-$$-$backend
    ip netns add "$ns"
    NAMESPACES+=("$ns")
    ip -n "$ns" link set lo up
    dir=$WORK/$backend
    mkdir -p "$dir"
    inns() { DFWBENCH_NETNS=$ns ip netns exec "$ns" python3 "$BENCH/measure.py" "$@" >>"$RESULTS"; }
    log "$backend: module vs floor, N=$SIZES S=$SOURCES, $REPS runs each"
    inns process --backend "$backend" --bin "$BIN" --work "$dir" --sizes "$SIZES" --sources "$SOURCES" --reps "$REPS"
    log "$backend: backend auto, N=$AUTO_SIZE S=$AUTO_SOURCES"
    inns auto --backend "$backend" --bin "$BIN" --work "$dir" --size "$AUTO_SIZE" --nsources "$AUTO_SOURCES" --reps $((REPS * 2))
    if [ -n "$ANSIBLE" ]; then
        log "$backend: ansible-playbook, N=$ANSIBLE_SIZE S=$ANSIBLE_SOURCES, $ANSIBLE_REPS runs each"
        inns ansible --backend "$backend" --bin "$BIN" --work "$dir" --size "$ANSIBLE_SIZE" \
            --sources "$ANSIBLE_SOURCES" --reps "$ANSIBLE_REPS" --venv "$VENV"
    fi
    ip netns delete "$ns"
done

machine load_after "load average $(loadavg)"
machine duration "$(( ($(date +%s) - START) / 60 )) min $(( ($(date +%s) - START) % 60 )) s"
cp "$RESULTS" /tmp/dfwbench-last-results.jsonl && log "raw results: /tmp/dfwbench-last-results.jsonl (render again with bench/report.py)"
python3 "$BENCH/report.py" "$RESULTS" | if [ -n "$OUT" ]; then tee "$OUT"; else cat; fi
