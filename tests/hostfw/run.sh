#!/usr/bin/env bash
# tests/hostfw/run.sh — the watch service against REAL host firewalls (issue 9, proof (b) and (c)),
# each inside namespaces with a real dockerd (topology: tests/docker/lib.sh; the host's own mount
# namespace with private /run, /etc/ufw, /etc/firewalld: tests/hostfw/lib.sh).
#
# Scenarios, on Debian's docker.io 20.10 and, when an unpacked Docker 28 root is there (…/usr/sbin/dockerd:
# DFW_DOCKER28_ROOT, or the one tests/docker/lib.sh's dk_docker28_fetch unpacked), on Docker 28 too:
#   ufw, iptables-nft and iptables-legacy: Debian's ufw enabled on the Docker host, with an after.rules
#      block in the shape ufw-docker installs (declares :DOCKER-USER, jumps to ufw-user-forward, RETURN);
#   firewalld, nftables backend: Debian 12's firewalld 1.3.3 with a private system D-Bus, dockerd in the
#      same mount namespace (so it uses its firewalld integration).
# In each:
#   1. the hole first: the module applied once (no watch), then `ufw reload` / `firewall-cmd --reload`:
#      the stranger gets in again — the scenario is real;
#   2. `docker_firewall watch --policy P --resync R` runs on the host; a stranger and an allowed client
#      probe every published port over IPv4 and IPv6 every 0.2 s (tests/hostfw/probe.py, 0.8 s bound)
#      while the host firewall reloads (DFW_HOSTFW_RELOADS times): the allowed client is never
#      refused (with firewalld, whose reload itself removes Docker's DNAT rules until Docker puts
#      them back: not for more than 2 s longer than the same reloads refuse it without the watch,
#      measured in step 1); the longest window the stranger could connect is printed as "# figure:"
#      and must be at most 1 s on iptables-nft, at most the resync interval + 1 s on iptables-legacy;
#      the watch logs its repairs; ufw's own rules and files are the same byte for byte before our
#      runs, under the watch, and after it stopped; SIGTERM ends the watch (exit 0), the rules stay.
# And with the module's nftables dataplane (issue 12; scenarios "ufw:nft:nftables" and
# "firewalld:nft:nftables", scenario_nft below; on Docker 28 only by default, DFW_HOSTFW_NFT_ENGINES):
# dataplane: nftables applied once, NO watch; --check writes nothing; apply touches no rule of Docker's
# or the host firewall's; the second run changes nothing; while both clients probe, `ufw reload` /
# `firewall-cmd --reload` (DFW_HOSTFW_RELOADS times; DFW_HOSTFW_NFT_RESTART=1: and a firewalld
# restart): the stranger NEVER connects (longest window printed as "# figure:", must be 0) and our
# table's drop-log meters show it dropped the stranger and never the allowed client on 8080; the
# allowed client is never refused (firewalld: its reload refuses it with no module at all too, measured
# first as the control: then a figure and a known limitation); `nft list table inet docker_firewall`
# is the same before and after (the kernel's meter entries aside); the next run reports
# changed=false; state=absent deletes the table and nothing else, and the stranger gets in again.
#
# Prints "ok - ..." / "not ok - ..." per check and finally "N passed, N failed"; exit status 1 on any
# failure. Root only. Installs what it needs on a fresh Debian 12 (policy-rc.d first: no package starts
# a daemon in the machine's own namespace). Nothing here changes the machine's own firewall, routes,
# links or configuration files.
#
# Environment: DFW_BIN (default target/x86_64-unknown-linux-gnu/release/docker_firewall, built by
#   scripts/setup), DFW_DOCKER28_ROOT (default: tests/docker's cache, when it holds the engine),
#   DFW_HOSTFW_ENGINES (default "20.10 28"), DFW_HOSTFW_SCENARIOS (default "ufw:nft ufw:legacy firewalld:nft
#   ufw:nft:nftables firewalld:nft:nftables"; "ufw:legacy:nftables" also works), DFW_HOSTFW_NFT_RESTART
#   (1: the nftables-dataplane scenario on firewalld also restarts firewalld under the probes, with
#   its control; about 25 s more; default 0),
#   DFW_HOSTFW_NFT_ENGINES (the engines the nftables-dataplane scenarios run on: default "28", else the
#   first engine there is; "20.10 28" for both, about 2.5 minutes more),
#   DFW_HOSTFW_LEGACY_ENGINES (the engines the iptables-legacy scenarios run on: default "20.10",
#   "20.10 28" for both, about 45 s more; the CI budget),
#   DFW_HOSTFW_RESYNC (the watch's --resync, default 3), DFW_HOSTFW_RELOADS (default 2),
#   DFW_HOSTFW_FIREWALLD_PAUSE (seconds probed after each firewall-cmd --reload, default 7),
#   DFW_HOSTFW_FIGURES (a file to write the figures to, as a markdown table), DFW_HOSTFW_KEEP=1.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DFW_BIN_FROM_ENV=${DFW_BIN:-}
DFW_BIN=${DFW_BIN:-$ROOT/target/x86_64-unknown-linux-gnu/release/docker_firewall}
read -r -a SCENARIOS <<<"${DFW_HOSTFW_SCENARIOS:-ufw:nft ufw:legacy firewalld:nft ufw:nft:nftables firewalld:nft:nftables}"
RESYNC=${DFW_HOSTFW_RESYNC:-3}
RELOADS=${DFW_HOSTFW_RELOADS:-2}
FIREWALLD_PAUSE=${DFW_HOSTFW_FIREWALLD_PAUSE:-7}
HF_APT_PACKAGES=(ufw firewalld dbus python3 jq procps)

PASSED=0
FAILED=0
SKIPPED=()
KNOWN=()
FIGURES=()
CONTROL_OUTAGE=
T=""
ok() { echo "ok - $T$1"; PASSED=$((PASSED + 1)); }
diag() { local l x; for l in "$@"; do while IFS= read -r x; do echo "#   $x"; done <<<"$l"; done; }
not_ok() { echo "not ok - $T$1"; FAILED=$((FAILED + 1)); shift; [ $# -gt 0 ] && diag "$@"; return 0; }
finish() {
    local k
    for k in "${KNOWN[@]}"; do echo "# known limitation seen: $k"; done
    for k in "${SKIPPED[@]}"; do echo "# skipped: $k"; done
    local f
    for k in "${FIGURES[@]}"; do
        IFS='|' read -r -a f <<<"$k"
        echo "# figure: ${f[0]}: ${f[1]}: the stranger's longest window ${f[2]} (limit ${f[3]}), the allowed client's longest outage ${f[4]} (without the watch ${f[5]})"
    done
    if [ -n "${DFW_HOSTFW_FIGURES:-}" ]; then
        {
            echo "| engine, host firewall, iptables | event | stranger's longest window | limit | allowed client's longest outage | the same without the watch | probes |"
            echo "|---|---|---|---|---|---|---|"
            for k in "${FIGURES[@]}"; do
                IFS='|' read -r -a f <<<"$k"
                echo "| ${f[0]} | ${f[1]} | ${f[2]} | ${f[3]} | ${f[4]} | ${f[5]} | ${f[6]} |"
            done
        } >"$DFW_HOSTFW_FIGURES"
    fi
    [ "${DFW_HOSTFW_KEEP:-0}" = 1 ] && [ -n "${WORK:-}" ] && echo "# keeping $WORK"
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" = 0 ] && [ "$PASSED" -gt 0 ]
    exit $?
}

# ---------------------------------------------------------------- preflight
if [ "$(id -u)" != 0 ]; then
    not_ok "preflight: must run as root (network namespaces, dockerd, ufw, firewalld)"
    finish
fi
WORK=$(mktemp -d /tmp/dfwhf.XXXXXX)
[ "${DFW_HOSTFW_KEEP:-0}" = 1 ] && export DK_KEEP=1 # the last scenario's lab directory stays too
DK_DIR=$WORK/lab
export DK_PREFIX=dfwhf$$ # read by tests/docker/lib.sh
# shellcheck source=lib.sh
. "$HERE/lib.sh"

cleanup() {
    hf_cleanup
    [ "${DFW_HOSTFW_KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# daemons in the machine's own network namespace (to see that installing started none)
root_daemons() {
    local d p root_net
    root_net=$(readlink /proc/1/ns/net)
    for d in /proc/[0-9]*; do
        p=${d#/proc/}
        case $(cat "$d/comm" 2>/dev/null) in
            dockerd | containerd | firewalld | dbus-daemon)
                [ "$(readlink "$d/ns/net" 2>/dev/null)" = "$root_net" ] && echo "$p $(tr '\0' ' ' <"$d/cmdline" 2>/dev/null)"
                ;;
        esac
    done | sort
}
if [ -e /usr/sbin/policy-rc.d ] && { /usr/sbin/policy-rc.d firewalld start >/dev/null 2>&1; [ $? != 101 ]; }; then
    not_ok "preflight: /usr/sbin/policy-rc.d exists and does not exit 101 (packages would start daemons)"
    finish
fi
DAEMONS_BEFORE=$(root_daemons)
missing=()
for p in "${HF_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# dk_install_packages writes policy-rc.d (exit 101) first when there is none, then docker.io & co
if ! { dk_install_packages && { [ "${#missing[@]}" = 0 ] || { apt-get update -qq </dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null; }; }; } \
    >"$WORK/install.log" 2>&1; then
    not_ok "preflight: installing the Debian packages" "$(tail -20 "$WORK/install.log")"
    finish
fi
new=$(comm -13 <(echo "$DAEMONS_BEFORE") <(root_daemons))
if [ -n "$new" ]; then
    not_ok "preflight: installing started no daemon in the machine's own namespace" "$new"
fi
if [ ! -x "$DFW_BIN" ] && [ -z "$DFW_BIN_FROM_ENV" ]; then
    dk_module_ready >"$WORK/setup.log" 2>&1 || true
fi
if [[ $("$DFW_BIN" watch --help 2>&1) != *--policy* ]]; then
    not_ok "preflight: $DFW_BIN has the watch subcommand (build it with scripts/setup, or set DFW_BIN)"
    finish
fi
for b in dockerd ufw firewalld firewall-cmd dbus-daemon python3 curl nsenter unshare jq "$DK_DOCKER_BIN"; do
    command -v "$b" >/dev/null 2>&1 || { not_ok "preflight: $b is not installed"; finish; }
done
if command -v shellcheck >/dev/null 2>&1; then
    if out=$(cd "$HERE" && shellcheck -x -S warning run.sh lib.sh 2>&1); then
        ok "shellcheck -x -S warning tests/hostfw/run.sh lib.sh"
    else
        not_ok "shellcheck -x -S warning tests/hostfw/run.sh lib.sh" "$out"
    fi
fi
# the Docker 28 engine: DFW_DOCKER28_ROOT, else what tests/docker unpacked into its cache (this
# suite downloads nothing: run tests/docker/run.sh first, or set DFW_DOCKER28_ROOT)
D28=${DFW_DOCKER28_ROOT:-${DK_DOCKER28_CACHE:-/var/cache/docker_firewall-tests/docker28}/root}
ENGINES=()
for e in ${DFW_HOSTFW_ENGINES:-20.10 28}; do
    case $e in
        20.10) ENGINES+=("20.10:") ;;
        28)
            if [ -x "$D28/usr/sbin/dockerd" ] && [[ $("$D28/usr/sbin/dockerd" --version 2>&1) == *" 28."* ]]; then
                ENGINES+=("28:$D28")
            else
                SKIPPED+=("Docker 28 engine: no unpacked Docker 28 at $D28 (set DFW_DOCKER28_ROOT, or run tests/docker/run.sh once)")
            fi
            ;;
    esac
done
echo "# $(ufw --version | head -1); firewalld $(dpkg-query -W -f='${Version}' firewalld); binary $DFW_BIN; work dir $WORK"

# ---------------------------------------------------------------- checks
PORTS=("${DK_PORTS[@]}")
# who_ok <result> <client addr> — the container answered and saw the real client (DNAT path)
who_ok() { [[ $1 == "open "*" sees $2" ]]; }

# matrix <label> — the allowed client reaches 8080 over both families, the stranger no published port
matrix() {
    local label=$1 dir=$WORK/m.$RANDOM specs=() p bad=() r
    for p in "${PORTS[@]}"; do
        specs+=("stranger-$p-4 $NS_STRANGER $DK_HOST4 $p" "stranger-$p-6 $NS_STRANGER $DK_HOST6 $p")
    done
    specs+=("allowed-8080-4 $NS_ALLOWED $DK_HOST4 8080" "allowed-8080-6 $NS_ALLOWED $DK_HOST6 8080")
    DK_PROBE_TIMEOUT=1 dk_probe_many "$dir" "${specs[@]}"
    r=$(cat "$dir/allowed-8080-4")
    who_ok "$r" "$DK_ALLOWED4" || bad+=("allowed-8080-4: $r")
    r=$(cat "$dir/allowed-8080-6")
    who_ok "$r" "$DK_ALLOWED6" || bad+=("allowed-8080-6: $r")
    for p in "${PORTS[@]}"; do
        for r in 4 6; do
            grep -q '^closed ' "$dir/stranger-$p-$r" || bad+=("stranger-$p-$r: $(cat "$dir/stranger-$p-$r")")
        done
    done
    if [ "${#bad[@]}" = 0 ]; then
        ok "$label: the allowed client reaches 8080 (IPv4, IPv6), the stranger none of ${PORTS[*]}"
    else
        not_ok "$label: the allowed client reaches 8080 (IPv4, IPv6), the stranger none of ${PORTS[*]}" \
            "${bad[@]}" "$(hf_snap | grep -E -- '^-A (FORWARD|DOCKER-USER|INPUT|PREROUTING) |^=== ')"
    fi
}

# matrix_open <label> — the hole: the stranger reaches every published port over both families
matrix_open() {
    local dir=$WORK/m.$RANDOM specs=() p f bad=()
    for p in "${PORTS[@]}"; do
        specs+=("stranger-$p-4 $NS_STRANGER $DK_HOST4 $p" "stranger-$p-6 $NS_STRANGER $DK_HOST6 $p")
    done
    DK_PROBE_TIMEOUT=1 dk_probe_many "$dir" "${specs[@]}"
    for f in "$dir"/stranger-*; do grep -q '^open ' "$f" || bad+=("$(basename "$f"): $(cat "$f")"); done
    if [ "${#bad[@]}" = 0 ]; then
        ok "$1: the stranger reaches every one of ${PORTS[*]} (IPv4, IPv6): the hole is real"
    else
        not_ok "$1: the stranger reaches every one of ${PORTS[*]} (IPv4, IPv6)" "${bad[@]}"
    fi
}

# closed_keys — the probes that must never connect: the stranger everywhere, the allowed client on
# the ports it is not allowed on
closed_keys() {
    local p f
    for p in "${PORTS[@]}"; do
        for f in 4 6; do
            echo "stranger-$p-$f"
            [ "$p" = 8080 ] || echo "allowed-$p-$f"
        done
    done
}

# reload_under_probes <dir> <times> <pause> — both clients probe while the host firewall reloads
reload_under_probes() {
    local dir=$1 times=$2 pause=$3 i
    hf_probers_start "$dir" "${PORTS[@]}"
    sleep 1.5
    for i in $(seq 1 "$times"); do
        echo "=== $(reload_cmd) #$i at $(date +%s.%N)" >>"$DK_DIR/reload.log"
        reload_fw >>"$DK_DIR/reload.log" 2>&1 || not_ok "$(reload_cmd) (#$i) succeeds" "$(tail -5 "$DK_DIR/reload.log")"
        sleep "$pause"
    done
    hf_probers_stop "$dir"
}

reload_fw() {
    case $FW in
        ufw) hf_hx ufw reload ;;
        firewalld) hf_hx firewall-cmd --reload ;;
    esac
}

# ---------------------------------------------------------------- one scenario
# lab_up — the network, the host's mount namespace, the host firewall, dockerd, three containers
lab_up() {
    rm -rf "$DK_DIR"
    dk_net_up && hf_holder_up || return 1
    case $FW in
        ufw) hf_ufw_up || return 1 ;;
        firewalld) hf_firewalld_up || return 1 ;;
    esac
    hf_dockerd_start && dk_image && dk_containers && dk_wait_up 60 && dk_wait_open "$NS_ALLOWED" allowed 30
}

# lab_up_checked — lab_up as one check (timed from the scenario's t0, naming its fw); on failure the
# lab is cleaned up and it returns 1
lab_up_checked() {
    if ! lab_up >"$WORK/up.log" 2>&1; then
        not_ok "lab: $fw and a real dockerd on the host, three containers publishing ${PORTS[*]}" \
            "$(tail -20 "$WORK/up.log")" "$(tail -20 "$DK_DIR/dockerd.log" 2>/dev/null)"
        hf_cleanup
        return 1
    fi
    ok "lab: $fw and a real dockerd ($(dk_docker version -f '{{.Server.Version}}' 2>/dev/null)) on the host, containers publishing ${PORTS[*]} ($((SECONDS - t0)) s)"
}

scenario() {
    local engine=${1%%:*} fw=${2%%:*} backend=${2#*:} t0=$SECONDS
    FW=$fw
    export DK_BACKEND=$backend DK_PROXY=on
    export HF_DOCKER_ROOT=${1#*:} # read by lib.sh
    T="Docker $engine, $fw, iptables-$backend: "
    local policy=$DK_DIR/policy.json rc out
    lab_up_checked || return
    case $fw in
        ufw)
            out=$(hf_hx ufw status | head -1)
            if [[ $out == "Status: active" ]] && [[ $(hf_xt 4 -save -t filter) == *$'\n-A DOCKER-USER -j ufw-user-forward\n'* ]] &&
                [[ $(hf_xt 6 -save -t filter) == *$'\n-A DOCKER-USER -j ufw6-user-forward\n'* ]]; then
                ok "ufw is active, its after.rules block holds DOCKER-USER (IPv4 and IPv6)"
            else
                not_ok "ufw is active, its after.rules block holds DOCKER-USER" "$out" "$(hf_snap | grep DOCKER-USER)"
            fi
            ;;
        firewalld)
            out=$(hf_hx firewall-cmd --get-active-zones 2>&1)
            if grep -q '^docker' <<<"$out" && grep -q 'docker0' <<<"$out" &&
                [ "$(hf_hx firewall-cmd --get-default-zone 2>/dev/null)" = public ]; then
                ok "dockerd uses its firewalld integration (docker0 in firewalld's zone docker)"
            else
                not_ok "dockerd uses its firewalld integration" "$out" "$(grep -i firewalld "$DK_DIR/dockerd.log" | tail -5)"
            fi
            # the exposure report does not evaluate firewalld's own nftables chains: it says so
            out=$(hf_hx timeout 30 "$DFW_BIN" exposure --json --external eth0 2>&1)
            if [ "$(jq -r '[.ports[] | .verdict] | unique | join(" ")' <<<"$out" 2>/dev/null)" = unknown ] &&
                jq -e '.ports | length > 0 and all(.rule | test("nftables table inet firewalld"))' <<<"$out" >/dev/null 2>&1; then
                ok "exposure: every verdict is unknown, naming firewalld's nftables chain it does not evaluate"
            else
                not_ok "exposure: every verdict is unknown, naming firewalld's nftables chain" "$out"
            fi
            ;;
    esac
    local ufw0
    ufw0=$(hf_ufw_snap)
    hf_policy "$policy"

    # 1. the hole first: one run of the module, no watch, then the host firewall reloads while both
    # clients probe. Also the control for the allowed client: what the reloads alone do to it (on
    # firewalld hosts the same reloads as under the watch, to compare like with like)
    local dir=$DK_DIR/probes-nowatch rep got keys n_control=1
    [ "$fw" = firewalld ] && n_control=$RELOADS
    mapfile -t keys < <(closed_keys)
    CONTROL_OUTAGE=
    out=$(hf_apply "$policy" 2>&1)
    rc=$?
    if [ "$rc" = 2 ]; then
        matrix "one apply, no watch"
        reload_under_probes "$dir" "$n_control" "$(reload_pause "$backend")"
        rep=$(hf_report "$dir" open "${keys[@]}")
        got=$(grep -v ' open=0 ' <<<"$rep" | grep -v '^max ' | cut -d' ' -f1 | tr '\n' ' ')
        if [ -n "$got" ]; then
            ok "the hole: without the watch, after $(reload_cmd) the stranger gets in (probes that connected: $got)"
        else
            not_ok "the hole: without the watch, after $(reload_cmd) the stranger gets in (it did not: is the scenario real?)" \
                "$rep" "$(hf_snap | grep -E -- '^-A (FORWARD|DOCKER-USER) |^=== ')"
        fi
        CONTROL_OUTAGE=$(hf_report "$dir" closed allowed-8080-4 allowed-8080-6 | sed -n 's/^max //p')
        echo "# figure: ${T}without the watch, $n_control x $(reload_cmd): the allowed client's longest outage on 8080: $CONTROL_OUTAGE s"
    else
        not_ok "apply --policy (exit 2: changed)" "exit $rc" "$out"
    fi

    # 2. the watch, while the host firewall reloads
    local wlog=$DK_DIR/watch.log wait nrep
    dir=$DK_DIR/probes
    if ! hf_watch_start "$policy" "$RESYNC" "$wlog"; then
        not_ok "watch --policy --resync $RESYNC starts and converges (its first line: applied or in place (start))" "$(tail -20 "$wlog")"
        hf_cleanup
        return
    fi
    ok "watch --policy --resync $RESYNC runs on the host, first converge done"
    matrix "under the watch"
    wait=$(reload_pause "$backend")
    nrep=$(grep -c 'repaired' "$wlog")
    reload_under_probes "$dir" "$RELOADS" "$wait"
    check_probes "$dir" "$backend"
    out=$(tail -n +"$((nrep + 1))" "$wlog" | grep 'repaired')
    # the watch's log after the first reload: one line per repair
    if [ "$(grep -c . <<<"$out")" -ge 1 ] && [ -n "$out" ]; then
        ok "the watch logged its repairs ($(grep -c . <<<"$out") line(s), e.g. \"$(head -1 <<<"$out" | cut -c1-140)\")"
    else
        not_ok "the watch logged a repair line after $(reload_cmd)" "$(tail -10 "$wlog")"
    fi
    matrix "after the reloads, under the watch"
    [ "$fw" = ufw ] && ufw_same "$ufw0" "under the watch"

    # SIGTERM ends the watch promptly, exit 0, the rules stay
    local end=$((SECONDS + 5))
    kill -TERM "$HF_WATCH_PID"
    while kill -0 "$HF_WATCH_PID" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
    if kill -0 "$HF_WATCH_PID" 2>/dev/null; then
        not_ok "SIGTERM ends the watch within 5 s" "$(tail -5 "$wlog")"
        hf_stop_pid "$HF_WATCH_PID" 5
    else
        wait "$HF_WATCH_PID"
        rc=$?
        if [ "$rc" = 0 ]; then ok "SIGTERM ends the watch within 5 s, exit 0"; else not_ok "SIGTERM ends the watch, exit 0 (exit $rc)" "$(tail -5 "$wlog")"; fi
    fi
    HF_WATCH_PID=
    matrix "after the watch stopped (the rules stay)"
    [ "$fw" = ufw ] && ufw_same "$ufw0" "after the watch stopped"
    hf_cleanup
    echo "# ${T}done in $((SECONDS - t0)) s"
    T=""
}

# ---------------------------------------------------------------- the nftables dataplane (issue 12)
# scenario_nft <engine> <fw:backend:nftables> — the module with dataplane: nftables on the same host,
# applied once, NO watch: its own table (inet docker_firewall) is what a firewalld reload (which
# deletes every iptables-nft chain) or a ufw reload (whose after.rules declares :DOCKER-USER) does not
# touch. Check mode writes nothing; apply changes no rule of Docker's, ufw's or firewalld's; the second
# run changes nothing; while both clients probe every published port (IPv4, IPv6, every 0.2 s) the
# host firewall reloads RELOADS times (firewalld: and restarts once): the stranger never connects (the
# longest window is a figure, and must be 0), the allowed client is not refused, our table lists the
# same before and after (the kernel's meter entries aside), the next run reports changed=false;
# state=absent deletes the table and nothing else, and the stranger gets in again.
nft_run() { # nft_run <policy> [apply options] — sets NR_RC and NR_OUT (the --json result)
    local policy=$1
    shift
    NR_OUT=$(hf_hx timeout 60 "$DFW_BIN" apply --json "$@" --policy "$policy" 2>"$DK_DIR/apply.err")
    NR_RC=$?
}
nft_res() { jq -r "$@" <<<"$NR_OUT" 2>/dev/null; }

# nft_second_run <label> <policy> — a run that must change nothing
nft_second_run() {
    nft_run "$2"
    if [ "$NR_RC" = 0 ] && [ "$(nft_res .changed)" = false ]; then
        ok "$1: the module's next run reports changed=false (exit 0)"
    else
        not_ok "$1: the module's next run reports changed=false (exit $NR_RC)" \
            "$(nft_res -c '{changed, msg, plan}')" "$(cat "$DK_DIR/apply.err")"
    fi
}

# nft_table_same <label> <before> — our table lists the same as <before> (hf_nft_ours_static)
nft_table_same() {
    local now
    now=$(hf_nft_ours_static)
    if [ -n "$now" ] && [ "$now" = "$2" ]; then
        ok "$1: nft list table inet docker_firewall is the same as before, byte for byte ($(grep -c . <<<"$now") lines; the kernel's meter-set entries left out)"
    else
        not_ok "$1: nft list table inet docker_firewall is the same as before" "$(diff <(echo "$2") <(echo "$now") | head -30)"
    fi
}

# nft_probes_check <dir> <event> [control outage] — the stranger never connected, and our table
# dropped it (its drop-log meters); our table dropped none of the allowed client's connections to 8080
# (the meters), and the allowed client was never refused (on firewalld hosts, where the same event
# refuses it with no module at all (the control, measured first: firewalld rejects while Docker
# re-creates its rules), the outage is a figure beside the control's)
nft_probes_check() {
    local dir=$1 what=$2 control=${3:-} keys n rep max outage opened
    mapfile -t keys < <(closed_keys)
    n=$(grep -c . "$dir/all.log" 2>/dev/null)
    if [ "$n" -lt $((${#keys[@]} * 10)) ]; then
        not_ok "during $what: probes ran ($n attempts)" "$(cat "$dir"/*.err)"
        return
    fi
    # what our table dropped: its drop log's meter sets keep one entry per source . destination . port
    # (timeout 1m): the stranger's must be there, the allowed client's to 8080 (on the host, or c1's
    # port 80 after DNAT) never
    local meter mine c1 clean=0
    meter=$(hf_hx nft list set inet docker_firewall log_in_v4; hf_hx nft list set inet docker_firewall log_in_v6) 2>/dev/null
    c1=$(dk_docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}' c1 2>/dev/null)
    mine=$(tr ',{}' '\n\n\n' <<<"$meter" | grep -E "(^| )($DK_ALLOWED4|$DK_ALLOWED6) \. " |
        grep -E " \. 8080( |$)| \. (${c1// /|}) \. 80( |$)")
    [ -z "$mine" ] && clean=1
    if [ -n "$mine" ]; then
        not_ok "during $what: our table dropped none of the allowed client's connections to 8080 (its drop-log meters)" "$mine"
    elif grep -qE "(^| )$DK_STRANGER4 \. " <<<"$(tr ',{}' '\n\n\n' <<<"$meter")" &&
        grep -qE "(^| )$DK_STRANGER6 \. " <<<"$(tr ',{}' '\n\n\n' <<<"$meter")" &&
        grep -qE "(^| )$DK_ALLOWED4 \. .* \. (8443|9090)( |$)" <<<"$(tr ',{}' '\n\n\n' <<<"$meter")"; then
        ok "during $what: our table dropped the stranger (IPv4 and IPv6 entries in its drop-log meters) and the allowed client on 8443/9090, never on 8080"
    else
        not_ok "during $what: the drop-log meters hold the stranger's entries (IPv4 and IPv6) and the allowed client's on 8443/9090" "$meter"
    fi
    rep=$(hf_report "$dir" open "${keys[@]}")
    max=$(sed -n 's/^max //p' <<<"$rep")
    opened=$(grep -v ' open=0 ' <<<"$rep" | grep -v '^max ' | cut -d' ' -f1,3,4 | tr '\n' ';')
    outage=$(hf_report "$dir" closed allowed-8080-4 allowed-8080-6 | sed -n 's/^max //p')
    FIGURES+=("${T%: }|$what|$max s|0 s|$outage s|${control:-n/a} s (no module)|$n|${opened:-none}")
    echo "# figure: ${T}longest window the stranger could connect during $what: $max s; the allowed client's longest outage: $outage s ($n attempts)"
    if [ -z "$opened" ]; then
        ok "during $what: the stranger never connected ($(grep -c '^stranger-' "$dir/all.log") attempts on ${PORTS[*]}, IPv4 and IPv6; longest window $max s)"
    else
        not_ok "during $what: the stranger never connected (longest window $max s)" "$opened" \
            "$(grep -v '^allowed-8080' "$dir/all.log" | grep ' open ' | head -5)" "$(hf_nft_ours | head -40)"
    fi
    if awk -v o="$outage" 'BEGIN { exit !(o == 0) }'; then
        ok "during $what: the allowed client was never refused on 8080 ($(grep -c '^allowed-8080-' "$dir/all.log") attempts, IPv4 and IPv6)"
    elif [ "$FW" = firewalld ] && [ -n "$control" ] && [ "$clean" = 1 ] &&
        awk -v c="$control" 'BEGIN { exit !(c > 0) }'; then
        # firewalld's reload rejects (EHOSTUNREACH) and drops while Docker re-creates its rules, with
        # no module too (the control); the meters above show our table dropped none of these
        ok "during $what: the allowed client was refused on 8080 for at most $outage s, none of it by our table (the same event with no module at all: $control s) # known limitation"
        KNOWN+=("${T}$what refuses the allowed client with or without the module (firewalld's reject while Docker re-creates its rules): $outage s with the nftables table, $control s with no module")
    else
        not_ok "during $what: the allowed client was never refused on 8080 (longest outage $outage s; with no module: ${control:-?} s)" \
            "$(hf_report "$dir" closed allowed-8080-4 allowed-8080-6)" "$(grep -E '^allowed-8080-' "$dir/all.log" | grep -v ' open ' | head -5)"
    fi
}

scenario_nft() {
    local engine=${1%%:*} fw=${2%%:*} backend t0=$SECONDS
    backend=${2#*:}
    backend=${backend%%:*}
    FW=$fw
    export DK_BACKEND=$backend DK_PROXY=on
    export HF_DOCKER_ROOT=${1#*:} # read by lib.sh
    T="Docker $engine, $fw, iptables-$backend, dataplane nftables: "
    local policy=$DK_DIR/policy.json absent=$DK_DIR/absent.json out others0 others ufw0 tbl dir r rc
    lab_up_checked || return
    # the hole, with no module at all: the stranger reaches every published port
    matrix_open "before any policy"
    hf_policy "$policy" nftables
    jq '. + {state: "absent"}' "$policy" >"$absent"
    # firewalld: the control first, with no module at all: what the same reloads (and restart) do to
    # the allowed client (firewalld rejects while Docker re-creates its rules)
    local c_reload='' c_restart=''
    if [ "$fw" = firewalld ]; then
        dir=$DK_DIR/probes-control
        reload_under_probes "$dir" "$RELOADS" "$(reload_pause "$backend")"
        c_reload=$(hf_report "$dir" closed allowed-8080-4 allowed-8080-6 | sed -n 's/^max //p')
        if [ "${DFW_HOSTFW_NFT_RESTART:-0}" = 1 ]; then
            dir=$DK_DIR/probes-control-restart
            hf_probers_start "$dir" "${PORTS[@]}"
            sleep 1.5
            hf_firewalld_restart || not_ok "firewalld restarts (control)" "$(tail -5 "$DK_DIR/firewalld.log")"
            sleep "$FIREWALLD_PAUSE"
            hf_probers_stop "$dir"
            c_restart=$(hf_report "$dir" closed allowed-8080-4 allowed-8080-6 | sed -n 's/^max //p')
        fi
        echo "# figure: ${T}no module at all: the allowed client's longest outage on 8080: $c_reload s during $RELOADS x firewall-cmd --reload, ${c_restart:-n/a} s during a firewalld restart"
        dk_wait_open "$NS_ALLOWED" allowed 30 || not_ok "the allowed client reaches every port again after the control reloads"
    fi
    others0=$(hf_others_snap)
    [ "$fw" = ufw ] && ufw0=$(hf_ufw_snap)

    # an earlier run used the iptables dataplane: the nftables run below must take its place (its
    # DFW- chains and hooks gone, every other rule as before the iptables run)
    local ipt=$DK_DIR/policy-iptables.json
    hf_policy "$ipt" iptables
    out=$(hf_apply "$ipt" 2>&1)
    rc=$?
    if [ "$rc" = 2 ] && [ -n "$(hf_snap | grep -E '^:DFW-')" ]; then
        ok "first, dataplane iptables applied (exit 2): $(hf_snap | grep -c 'docker_firewall:') docker_firewall: rules"
    else
        not_ok "first, dataplane iptables applied (exit 2)" "exit $rc" "$out"
    fi

    # check mode: reports the change, writes nothing
    others=$(hf_others_snap)
    nft_run "$policy" --check
    if [ "$NR_RC" = 2 ] && [ "$(nft_res .changed)" = true ] && [ "$(nft_res .dataplane)" = nftables ] &&
        [ -z "$(hf_nft_ours)" ] && [ "$(hf_others_snap)" = "$others" ] &&
        [[ $(nft_res '.rules.nftables') == *"table inet docker_firewall"* ]]; then
        ok "--check: changed, dataplane nftables, the table shown in rules.nftables, nothing written"
    else
        not_ok "--check: changed, dataplane nftables, the table in rules.nftables, nothing written (exit $NR_RC)" \
            "$(nft_res -c '{changed, dataplane, msg}')" "$(cat "$DK_DIR/apply.err")" "$(hf_nft_ours | head)"
    fi

    # apply
    nft_run "$policy"
    tbl=$(hf_nft_ours)
    if [ "$NR_RC" = 2 ] && [ "$(nft_res .changed)" = true ] && [ "$(nft_res .dataplane)" = nftables ] &&
        grep -q 'type filter hook prerouting priority dstnat - 10' <<<"$tbl" &&
        grep -q 'type filter hook forward priority filter - 10' <<<"$tbl"; then
        ok "apply: changed, dataplane nftables; inet docker_firewall has prerouting (dstnat - 10) and forward (filter - 10)"
    else
        not_ok "apply: changed, dataplane nftables, the table with its base chains (exit $NR_RC)" \
            "$(nft_res -c '{changed, dataplane, msg, warnings}')" "$(cat "$DK_DIR/apply.err")" "$tbl"
        hf_cleanup
        return
    fi
    others=$(hf_others_snap)
    if [ "$others" = "$others0" ]; then
        ok "apply: the iptables dataplane's rules are gone; every other rule (Docker's, $fw's: iptables both families, every other nftables table) is the same as before"
    else
        not_ok "apply: every rule not ours is the same as before" "$(diff <(echo "$others0") <(echo "$others") | head -30)"
    fi
    if [ -z "$(hf_snap | grep -E 'docker_firewall:|^:DFW-')" ]; then
        ok "apply: no DFW- chain and no docker_firewall: rule in iptables (both families)"
    else
        not_ok "apply: no DFW- chain and no docker_firewall: rule in iptables" "$(hf_snap | grep -E 'docker_firewall:|^:DFW-')"
    fi
    nft_second_run "idempotence" "$policy"
    matrix "one apply, no watch"
    tbl=$(hf_nft_ours_static)

    # the host firewall reloads while both clients probe
    dir=$DK_DIR/probes-nft
    reload_under_probes "$dir" "$RELOADS" "$(reload_pause "$backend")"
    nft_probes_check "$dir" "$RELOADS x $(reload_cmd)" "$c_reload"
    nft_table_same "after $RELOADS x $(reload_cmd)" "$tbl"
    nft_second_run "after $RELOADS x $(reload_cmd)" "$policy"
    matrix "after $RELOADS x $(reload_cmd), no watch"
    [ "$fw" = ufw ] && ufw_same "$ufw0" "after $RELOADS x ufw reload"

    if [ "$fw" = firewalld ] && [ "${DFW_HOSTFW_NFT_RESTART:-0}" = 1 ]; then
        dir=$DK_DIR/probes-nft-restart
        hf_probers_start "$dir" "${PORTS[@]}"
        sleep 1.5
        echo "=== firewalld restart at $(date +%s.%N)" >>"$DK_DIR/reload.log"
        hf_firewalld_restart || not_ok "firewalld restarts (SIGTERM, started again)" "$(tail -5 "$DK_DIR/firewalld.log")"
        sleep "$FIREWALLD_PAUSE"
        hf_probers_stop "$dir"
        nft_probes_check "$dir" "a firewalld restart" "$c_restart"
        nft_table_same "after a firewalld restart" "$tbl"
        nft_second_run "after a firewalld restart" "$policy"
        matrix "after a firewalld restart, no watch"
    fi

    # state=absent: the table goes, nothing else changes, and the hole is back
    others0=$(hf_others_snap)
    nft_run "$absent"
    others=$(hf_others_snap)
    if [ "$NR_RC" = 2 ] && [ "$(nft_res .changed)" = true ] && [ -z "$(hf_nft_ours)" ] &&
        ! hf_hx nft list tables 2>/dev/null | grep -q docker_firewall; then
        ok "state=absent: changed, the table inet docker_firewall is gone"
    else
        not_ok "state=absent: changed, the table is gone (exit $NR_RC)" "$(nft_res -c '{changed, msg}')" "$(cat "$DK_DIR/apply.err")" "$(hf_hx nft list tables)"
    fi
    if [ "$others" = "$others0" ]; then
        ok "state=absent: every rule not ours is the same as before it ($(grep -c . <<<"$others") lines)"
    else
        not_ok "state=absent: every rule not ours is the same as before it" "$(diff <(echo "$others0") <(echo "$others") | head -30)"
    fi
    r=$(DK_PROBE_TIMEOUT=1 dk_probe "$NS_STRANGER" "$DK_HOST4" 8080)
    out=$(DK_PROBE_TIMEOUT=1 dk_probe "$NS_STRANGER" "$DK_HOST6" 8080)
    if [[ $r == "open "* ]] && [[ $out == "open "* ]]; then
        ok "after state=absent the stranger reaches 8080 again over IPv4 and IPv6 (the table was what blocked it)"
    else
        not_ok "after state=absent the stranger reaches 8080 again" "IPv4: $r" "IPv6: $out"
    fi
    nft_run "$absent"
    if [ "$NR_RC" = 0 ] && [ "$(nft_res .changed)" = false ]; then
        ok "state=absent again: changed=false"
    else
        not_ok "state=absent again: changed=false (exit $NR_RC)" "$(nft_res -c '{changed, msg, plan}')"
    fi
    hf_cleanup
    echo "# ${T}done in $((SECONDS - t0)) s"
    T=""
}

# reload_pause <backend> — seconds to probe after each reload: long enough for Docker to put its own
# rules back after a firewalld reload (Docker 28: about 4 s) and for a resync on iptables-legacy
reload_pause() {
    if [ "$FW" = firewalld ]; then echo "$FIREWALLD_PAUSE"; elif [ "$1" = nft ]; then echo 3; else echo $((RESYNC + 2)); fi
}

reload_cmd() { [ "$FW" = ufw ] && echo "ufw reload" || echo "firewall-cmd --reload"; }

# ufw_same <snapshot> <label> — ufw's own rules and files are byte for byte what they were before our runs
ufw_same() {
    local now
    now=$(hf_ufw_snap)
    if [ "$now" = "$1" ]; then
        ok "$2: ufw's own rules and files are the same byte for byte as before our runs ($(grep -c -- '^-A' <<<"$now") rules, both families; $(sed '1,/^=== files$/d' <<<"$now" | wc -l) files)"
    else
        not_ok "$2: ufw's own rules and files are the same byte for byte as before our runs" "$(diff <(echo "$1") <(echo "$now") | head -20)"
    fi
}

# check_probes <dir> <backend> — the allowed client not refused on 8080 (beyond what the reload alone
# does to it, see CONTROL_OUTAGE); the longest window a probe of closed_keys connected
check_probes() {
    local dir=$1 backend=$2 keys n outage limit max rep opened what
    what="$RELOADS x $(reload_cmd)"
    mapfile -t keys < <(closed_keys)
    n=$(grep -c . "$dir/all.log" 2>/dev/null)
    if [ "$n" -lt $((${#keys[@]} * 10)) ]; then
        not_ok "probes ran ($n attempts)" "$(cat "$dir"/*.err)"
        return
    fi
    rep=$(hf_report "$dir" closed allowed-8080-4 allowed-8080-6)
    outage=$(sed -n 's/^max //p' <<<"$rep")
    if awk -v o="$outage" 'BEGIN { exit !(o == 0) }'; then
        ok "during $what: the allowed client was never refused on 8080 ($(grep -c '^allowed-8080-' "$dir/all.log") attempts, IPv4 and IPv6)"
    elif [ "$FW" = firewalld ] && [ -n "$CONTROL_OUTAGE" ] &&
        awk -v o="$outage" -v c="$CONTROL_OUTAGE" 'BEGIN { exit !(c > 0 && o <= c + 2) }'; then
        # firewalld's reload itself takes Docker's DNAT rules away until Docker re-creates them, with
        # or without the watch; the two outages vary from run to run with the machine's load (0.6 s
        # and 2.0 s seen for the same scenario on a loaded machine), so this is a figure, and the
        # check only catches a watch that keeps the client out (more than 2 s, 10 probe intervals,
        # beyond what the reloads alone do)
        ok "during $what: the allowed client was refused on 8080 for at most $outage s; the same reloads without the watch: $CONTROL_OUTAGE s (at most 2 s more allowed) # known limitation"
        KNOWN+=("${T}firewall-cmd --reload removes Docker's own rules (DNAT included) until Docker re-creates them: the allowed client is refused for up to $outage s with the watch, $CONTROL_OUTAGE s without it")
    else
        not_ok "during $what: the allowed client was never refused on 8080 (longest outage $outage s; without the watch: ${CONTROL_OUTAGE:-?} s)" \
            "$rep" "$(grep -E '^allowed-8080-' "$dir/all.log" | grep -v ' open ' | head -5)"
    fi
    rep=$(hf_report "$dir" open "${keys[@]}")
    max=$(sed -n 's/^max //p' <<<"$rep")
    [ "$backend" = nft ] && limit=1 || limit=$((RESYNC + 1))
    opened=$(grep -v ' open=0 ' <<<"$rep" | grep -v '^max ' | cut -d' ' -f1,3,4 | tr '\n' ';')
    # scenario | event | stranger's longest window | limit | allowed client's longest outage, with and
    # without the watch | attempts | where the stranger got in
    FIGURES+=("${T%: }|$what|$max s|$limit s|$outage s|${CONTROL_OUTAGE:-?} s|$n|${opened:-none}")
    echo "# figure: ${T}longest window the stranger could connect during $what: $max s"
    if grep -q ' to-the-end' <<<"$rep"; then
        not_ok "during $what: the stranger's probes were all closed again when the probing stopped" \
            "$(grep ' to-the-end' <<<"$rep")" "$(hf_snap | grep -E -- '^-A (FORWARD|DOCKER-USER) |^=== ')"
    elif awk -v m="$max" -v l="$limit" 'BEGIN { exit !(m <= l) }'; then
        ok "during $what: the longest window the stranger could connect is $max s (at most $limit s)"
    else
        not_ok "during $what: the longest window the stranger could connect is $max s (at most $limit s)" \
            "$(grep -v ' open=0 ' <<<"$rep")" "$(grep -v '^allowed-8080' "$dir/all.log" | grep ' open ' | head -5)" \
            "$(hf_snap | grep -E -- '^-A (FORWARD|DOCKER-USER) |^=== ')"
    fi
}

# ---------------------------------------------------------------- main
# the nftables-dataplane scenarios run on DFW_HOSTFW_NFT_ENGINES (default 28); when none of those
# engines is there, on the first one that is
NFT_ENGINES=()
for e in "${ENGINES[@]}"; do
    [[ " ${DFW_HOSTFW_NFT_ENGINES:-28} " == *" ${e%%:*} "* ]] && NFT_ENGINES+=("$e")
done
[ "${#NFT_ENGINES[@]}" = 0 ] && [ "${#ENGINES[@]}" -gt 0 ] && NFT_ENGINES=("${ENGINES[0]}")
for e in "${ENGINES[@]}"; do
    for s in "${SCENARIOS[@]}"; do
        case $s in
            *:*:nftables) [[ " ${NFT_ENGINES[*]} " == *" $e "* ]] && scenario_nft "$e" "$s" ;;
            *:legacy) [[ " ${DFW_HOSTFW_LEGACY_ENGINES:-20.10} " == *" ${e%%:*} "* ]] && scenario "$e" "$s" ;;
            *) scenario "$e" "$s" ;;
        esac
    done
done
finish
