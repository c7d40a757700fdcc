#!/usr/bin/env bash
# bench/watch_idle.sh — what an idle `docker_firewall watch` costs: CPU time over 60 s and memory.
#
#   sudo bash bench/watch_idle.sh            # about 2 minutes; not part of scripts/test
#
# A real dockerd (the lab of tests/docker/lib.sh: network namespaces, three containers publishing
# ports) and the watch in the Docker host's namespace, with the policy tests/docker/run.sh uses
# ("persist": false) and the service's default resync (10 s). Once the watch has converged and the
# lab is quiet (5 s), the watch's /proc/PID/stat is read, then again after 60 s:
#   own CPU      utime + stime of the watch process (all its threads)
#   children CPU cutime + cstime: the iptables-save / iptables-restore runs it waited for (a resync
#                reads the ruleset with iptables-save)
#   memory       VmRSS at the end and VmHWM (peak) from /proc/PID/status
# and the number of log lines written while idle (a quiet host: none expected).
#
# Environment: DK_ENGINE=20|28 (default 20: Debian 12's docker.io; 28 unpacks Debian unstable's
# docker.io like tests/docker/run.sh), DK_BACKEND=nft|legacy (default nft), DFW_IDLE_SECONDS (60),
# DFW_IDLE_RESYNC (10), DFW_BIN (default target/x86_64-unknown-linux-gnu/release/docker_firewall,
# else library/docker_firewall). Root only; nothing outside the namespaces it creates is changed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${DFW_IDLE_SECONDS:-60}
RESYNC=${DFW_IDLE_RESYNC:-10}
DFW_BIN=${DFW_BIN:-$ROOT/target/x86_64-unknown-linux-gnu/release/docker_firewall}
[ -x "$DFW_BIN" ] || DFW_BIN=$ROOT/library/docker_firewall
[ "$(id -u)" = 0 ] || { echo "root only (network namespaces, dockerd)" >&2; exit 1; }
"$DFW_BIN" watch --help >/dev/null 2>&1 || { echo "$DFW_BIN has no watch subcommand" >&2; exit 1; }

WORK=$(mktemp -d /tmp/dfwidle.XXXXXX)
DK_DIR=$WORK/lab
export DK_PREFIX=dfwidle$$ DK_ENGINE=${DK_ENGINE:-20} DK_BACKEND=${DK_BACKEND:-nft} DK_PROXY=on
# shellcheck source=../tests/docker/lib.sh
. "$ROOT/tests/docker/lib.sh"
WATCH_PID=
cleanup() {
    [ -n "$WATCH_PID" ] && kill -TERM "$WATCH_PID" 2>/dev/null && wait "$WATCH_PID" 2>/dev/null
    dk_cleanup
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

dk_install_packages >"$WORK/install.log" 2>&1 || { tail "$WORK/install.log"; exit 1; }
if [ "$DK_ENGINE" = 28 ]; then dk_docker28_fetch >"$WORK/docker28.log" 2>&1 || { tail "$WORK/docker28.log"; exit 1; }; fi
{ dk_net_up && dk_daemon_start && dk_image && dk_containers && dk_wait_up 60; } >"$WORK/up.log" 2>&1 ||
    { echo "the lab did not come up"; tail "$WORK/up.log" "$DK_DIR/dockerd.log"; exit 1; }

jq -n --arg a4 "$DK_ALLOWED4" --arg a6 "$DK_ALLOWED6" '{
    state: "present", strategy: "docker_user", external_interfaces: ["eth0"], persist: false,
    ingress: {default: "drop", allow: [{ports: [8080, 8443, 9090], sources: [$a4, $a6]}]}}' >"$WORK/policy.json"
# nsenter without --fork execs the watch: $! is its PID
nsenter --net="/run/netns/$NS_HOST" "$DFW_BIN" watch --policy "$WORK/policy.json" --resync "$RESYNC" \
    --docker-socket "$DK_DIR/docker.sock" >"$WORK/watch.log" 2>&1 </dev/null &
WATCH_PID=$!
for _ in $(seq 1 100); do
    grep -qE 'watch: (ready|(applied|in place|repaired) \(start\))' "$WORK/watch.log" && break
    sleep 0.1
done
grep -q "followed\|applied (start)\|in place (start)" "$WORK/watch.log" || { cat "$WORK/watch.log"; exit 1; }
sleep 5

# stat_ticks <pid> — "utime stime cutime cstime" in clock ticks (fields 14-17 of /proc/PID/stat)
stat_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12, $13, $14, $15}'; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)
lines0=$(wc -l <"$WORK/watch.log")
read -r u0 s0 cu0 cs0 < <(stat_ticks "$WATCH_PID")
t0=$EPOCHREALTIME
sleep "$SECS"
read -r u1 s1 cu1 cs1 < <(stat_ticks "$WATCH_PID")
t1=$EPOCHREALTIME
rss=$(status_kb "$WATCH_PID" VmRSS)
hwm=$(status_kb "$WATCH_PID" VmHWM)
threads=$(status_kb "$WATCH_PID" Threads)
lines1=$(wc -l <"$WORK/watch.log")

engine=$(dk_dockerd_version | sed -n 's/^Docker version \([0-9.]*\).*/\1/p')
awk -v hz="$HZ" -v u="$((u1 - u0))" -v s="$((s1 - s0))" -v cu="$((cu1 - cu0))" -v cs="$((cs1 - cs0))" \
    -v t0="$t0" -v t1="$t1" -v rss="$rss" -v hwm="$hwm" -v th="$threads" -v rs="$RESYNC" \
    -v eng="$engine" -v be="$DK_BACKEND" -v lines="$((lines1 - lines0))" 'BEGIN {
    el = t1 - t0; own = (u + s) / hz; kids = (cu + cs) / hz
    printf "# idle watch: Docker %s, iptables-%s, 3 containers, resync every %d s, %.1f s measured\n", eng, be, rs, el
    printf "# figure: idle watch CPU over %.0f s: own %.2f s (user %.2f, system %.2f), children (iptables-save/restore) %.2f s: %.3f%% of one CPU in all (resolution %.2f s)\n", el, own, u / hz, s / hz, kids, 100 * (own + kids) / el, 1 / hz
    printf "# figure: idle watch memory: RSS %.1f MiB, peak RSS %.1f MiB, %d threads\n", rss / 1024, hwm / 1024, th
    printf "# log lines while idle: %d\n", lines
}'
