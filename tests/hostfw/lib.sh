# shellcheck shell=bash
# tests/hostfw/lib.sh — a real ufw or a real firewalld on the Docker host of tests/docker/lib.sh
# (sourced by tests/hostfw/run.sh; bash >= 4.3, root).
#
# The host namespace of tests/docker/lib.sh gets a mount namespace of its own, held by a "holder"
# process (sleep) and entered with nsenter by everything that runs on the host: dockerd, ufw,
# dbus-daemon, firewalld, firewall-cmd, docker_firewall, and this suite's iptables reads. In it:
#   - a fresh sysfs with the cgroup hierarchy bound back (dockerd needs it);
#   - a tmpfs on /run: the host's private system D-Bus socket, firewalld's state, the xtables lock,
#     /run/docker, /run/containerd and /run/docker_firewall never touch the machine's own /run;
#   - private copies of /etc/ufw, /etc/default/ufw, /etc/firewalld and /etc/alternatives, bound over
#     the originals: ufw enable/reload and firewalld write only the copies, and the copy of
#     /etc/alternatives points iptables* at the backend under test (ufw and firewalld run
#     /usr/sbin/iptables-restore, which is whatever that alternative says).
# Nothing here changes the machine's own firewall, routes, links or configuration files.
#
# Settings (besides tests/docker/lib.sh's): HF_DOCKER_ROOT (empty: Debian's /usr/sbin/dockerd; else
# the root of an unpacked Docker engine, e.g. /tmp/sid/root with usr/sbin/dockerd), DFW_BIN.

HF_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../docker/lib.sh
. "$HF_LIB_DIR/../docker/lib.sh"

HF_DOCKER_ROOT=${HF_DOCKER_ROOT:-}
HF_UNSHARE_PID=
HF_HOLDER_PID=
HF_DBUS_PID=
HF_FWD_PID=
HF_WATCH_PID=

# hf_hx cmd... — run a command on the Docker host: its network and its mount namespace. In the
# background, "hf_hx cmd &" would leave $! to a subshell: use "${HF_ENTER[@]}" cmd & instead (nsenter
# execs the command, so $! is the command's PID).
HF_ENTER=()
hf_hx() { "${HF_ENTER[@]}" "$@"; }

# hf_xt <4|6> <""|-save|-restore> args... — the iptables of the backend under test, on the host
hf_xt() {
    local fam=$1 suffix=$2 bin
    shift 2
    [ "$fam" = 6 ] && bin=ip6tables || bin=iptables
    hf_hx "$bin-$DK_BACKEND$suffix" "$@"
}

# hf_snap — both families' rules on the host, comments kept, counters zeroed
hf_snap() {
    { hf_xt 4 -save; echo "=== ipv6"; hf_xt 6 -save; } 2>/dev/null |
        grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]/[0:0]/g'
}

# ---------------------------------------------------------------- the host's mount namespace
# hf_private_configs — the private copies bound over /etc/ufw, /etc/default/ufw, /etc/firewalld and
# /etc/alternatives; ufw gets an after.rules block in the shape ufw-docker installs
hf_private_configs() {
    local w=$DK_DIR/etc t
    mkdir -p "$w"
    cp -a /etc/ufw "$w/ufw"
    cp -a /etc/default/ufw "$w/default-ufw"
    # ufw's sysctl file only holds per-namespace net.* keys; still, nothing of the machine is touched
    sed -i -e 's|^IPT_SYSCTL=.*|IPT_SYSCTL=|' -e 's|^IPT_MODULES=.*|IPT_MODULES=""|' "$w/default-ufw"
    for t in after.rules:ufw after6.rules:ufw6; do
        # ufw's chains are ufw-* in IPv4 and ufw6-* in IPv6; declaring DOCKER-USER flushes it
        # on every load (iptables-restore -n), as ufw-docker's block does
        printf '%s\n' '' '# BEGIN docker_firewall test: a block in the shape ufw-docker installs' '*filter' \
            ":${t#*:}-user-forward - [0:0]" ':DOCKER-USER - [0:0]' "-A DOCKER-USER -j ${t#*:}-user-forward" \
            '-A DOCKER-USER -j RETURN' 'COMMIT' '# END docker_firewall test' >>"$w/ufw/${t%:*}"
    done
    cp -a /etc/firewalld "$w/firewalld"
    cp -a /etc/alternatives "$w/alternatives"
    for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
        ln -sfn "/usr/sbin/${t/tables/tables-$DK_BACKEND}" "$w/alternatives/$t"
    done
}

# hf_holder_up — create the host's mount namespace (after dk_net_up) and wait until it is ready
hf_holder_up() {
    hf_private_configs
    cat >"$DK_DIR/holder.sh" <<EOF
#!/bin/sh
set -e
HOLD=$DK_DIR/cg
mkdir -p "\$HOLD"; mount --rbind /sys/fs/cgroup "\$HOLD"
mount -t sysfs sysfs /sys
mount --rbind "\$HOLD" /sys/fs/cgroup; umount -l "\$HOLD"
mount -t tmpfs -o mode=755 hf-run /run
mkdir -p /run/dbus /run/firewalld /run/lock
mount --bind "$DK_DIR/etc/ufw" /etc/ufw
mount --bind "$DK_DIR/etc/default-ufw" /etc/default/ufw
mount --bind "$DK_DIR/etc/firewalld" /etc/firewalld
mount --bind "$DK_DIR/etc/alternatives" /etc/alternatives
echo \$\$ >"$DK_DIR/holder.pid.tmp"; mv "$DK_DIR/holder.pid.tmp" "$DK_DIR/holder.pid"
exec sleep infinity
EOF
    rm -f "$DK_DIR/holder.pid"
    nsenter --net="/run/netns/$NS_HOST" unshare --mount --propagation private --fork \
        sh "$DK_DIR/holder.sh" >"$DK_DIR/holder.log" 2>&1 </dev/null &
    HF_UNSHARE_PID=$!
    local _
    for _ in $(seq 1 50); do
        if [ -s "$DK_DIR/holder.pid" ]; then
            HF_HOLDER_PID=$(cat "$DK_DIR/holder.pid")
            HF_ENTER=(nsenter --net="/run/netns/$NS_HOST" --mount="/proc/$HF_HOLDER_PID/ns/mnt" --wd=/ --)
            return 0
        fi
        kill -0 "$HF_UNSHARE_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "# the host's mount namespace did not come up: $(cat "$DK_DIR/holder.log")" >&2
    return 1
}

hf_holder_down() {
    [ -n "$HF_HOLDER_PID" ] && kill -TERM "$HF_HOLDER_PID" 2>/dev/null
    [ -n "$HF_UNSHARE_PID" ] && wait "$HF_UNSHARE_PID" 2>/dev/null
    HF_HOLDER_PID=
    HF_UNSHARE_PID=
    HF_ENTER=()
    return 0
}

# ---------------------------------------------------------------- dockerd in that namespace
# hf_dockerd_start — like dk_daemon_start, but inside the host's mount namespace (so it shares the
# private D-Bus with firewalld), with Debian's dockerd or the one under $HF_DOCKER_ROOT
hf_dockerd_start() {
    dk_daemon_config
    local dockerd=/usr/sbin/dockerd path=$DK_DIR/bin
    if [ -n "$HF_DOCKER_ROOT" ]; then
        dockerd=$HF_DOCKER_ROOT/usr/sbin/dockerd
        path=$path:$HF_DOCKER_ROOT/usr/sbin:$HF_DOCKER_ROOT/usr/bin
    fi
    cat >"$DK_DIR/hf-dockerd.sh" <<EOF
#!/bin/sh
export PATH=$path:/usr/sbin:/usr/bin:/sbin:/bin
exec $dockerd --config-file "$DK_DIR/daemon.json" --data-root "$DK_DIR/data" --exec-root "$DK_DIR/exec" \\
     --pidfile "$DK_DIR/docker.pid" -H "unix://$DK_DIR/docker.sock"
EOF
    rm -f "$DK_DIR/docker.pid"
    echo "=== dockerd start $(date +%T) backend=$DK_BACKEND $dockerd" >>"$DK_DIR/dockerd.log"
    "${HF_ENTER[@]}" sh "$DK_DIR/hf-dockerd.sh" >>"$DK_DIR/dockerd.log" 2>&1 </dev/null &
    DK_WRAPPER_PID=$! # nsenter and sh exec: this is dockerd itself (dk_daemon_stop stops it)
    local _
    for _ in $(seq 1 120); do
        dk_docker version >/dev/null 2>&1 && return 0
        kill -0 "$DK_WRAPPER_PID" 2>/dev/null || break
        sleep 0.5
    done
    echo "# dockerd did not come up; last log lines:" >&2
    tail -n 15 "$DK_DIR/dockerd.log" | sed 's/^/#   /' >&2
    return 1
}

# ---------------------------------------------------------------- ufw and firewalld
# hf_ufw_up — enable ufw (its default policies: incoming deny, routed deny) with one rule of each
# kind, so there is something of ufw's own to keep
hf_ufw_up() {
    hf_hx ufw --force enable &&
        hf_hx ufw allow 22/tcp &&
        hf_hx ufw route allow proto tcp from "$DK_ALLOWED4" to any port 80 &&
        hf_hx ufw reload # ufw's steady state: a reload writes its user chains in full
}

# hf_ufw_snap — ufw's own rules: its chains, the jumps to them, the builtin policies, and the
# rules of DOCKER-USER that are not docker_firewall's (the after.rules block), both families; then
# the checksums of ufw's files (the host's private copies)
hf_ufw_snap() {
    { hf_xt 4 -save -t filter; echo "=== ipv6"; hf_xt 6 -save -t filter; } 2>/dev/null |
        sed -E 's/\[[0-9]+:[0-9]+\]/[0:0]/g' |
        grep -E '^(\*|COMMIT|=== |:(INPUT|FORWARD|OUTPUT) |:ufw|-A ufw)|-j ufw|^-A DOCKER-USER ' |
        grep -v 'docker_firewall:'
    echo "=== files"
    (cd "$DK_DIR/etc" && find ufw default-ufw -type f | sort | xargs md5sum)
}

# hf_firewalld_up — a private system D-Bus and firewalld (its default nftables backend)
hf_firewalld_up() {
    HF_DBUS_PID=$(hf_hx dbus-daemon --system --fork --print-pid) || return 1
    : >"$DK_DIR/firewalld.out"
    hf_firewalld_start && return 0
    echo "# firewalld did not come up: $(tail -5 "$DK_DIR/firewalld.log" "$DK_DIR/firewalld.out" 2>&1)" >&2
    return 1
}

# hf_firewalld_start — firewalld on the private D-Bus (its PID in HF_FWD_PID); 0 once it runs
hf_firewalld_start() {
    "${HF_ENTER[@]}" firewalld --nofork --nopid --log-target file --log-file "$DK_DIR/firewalld.log" \
        >>"$DK_DIR/firewalld.out" 2>&1 </dev/null &
    HF_FWD_PID=$!
    local _
    for _ in $(seq 1 60); do
        [ "$(hf_hx firewall-cmd --state 2>/dev/null)" = running ] && return 0
        kill -0 "$HF_FWD_PID" 2>/dev/null || break
        sleep 0.5
    done
    return 1
}

# hf_stop_pid <pid> [seconds] — SIGTERM, wait, SIGKILL
hf_stop_pid() {
    local pid=$1 limit=${2:-10} _
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 $((limit * 10))); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# ---------------------------------------------------------------- docker_firewall
# hf_policy <file> [dataplane] — the policy of the tests: external eth0, drop by default, 8080 from
# the allowed client (both families), no rules files; the module's dataplane when given
hf_policy() {
    jq -n --arg a4 "$DK_ALLOWED4" --arg a6 "$DK_ALLOWED6" --arg dp "${2:-}" \
        '{external_interfaces: ["eth0"],
          ingress: {default: "drop", allow: [{ports: [8080], sources: [$a4, $a6]}]},
          persist: false} + (if $dp == "" then {} else {dataplane: $dp} end)' >"$1"
}

# hf_nft_ours — our table as nft lists it (empty when there is none)
hf_nft_ours() { hf_hx nft list table inet docker_firewall 2>/dev/null; }

# hf_nft_ours_static — the same without the elements the kernel adds to the dynamic (meter) sets
# while it logs drops; everything the module wrote stays
hf_nft_ours_static() {
    hf_nft_ours | awk '/^\tset /{dyn=0} /flags .*dynamic/{dyn=1} dyn && /elements = \{/{skip=1} skip{if (/\}/) skip=0; next} {print}'
}

# hf_others_snap — every rule that is not ours: both families' iptables (counters zeroed; the
# backend under test) and every nftables table but inet docker_firewall (counters dropped), in the
# order nft lists them; what filters nothing (empty builtin chains and tables) left out: dk_drop_empty
hf_others_snap() {
    {
        hf_snap
        hf_hx nft list tables 2>/dev/null | while read -r _ fam name; do
            [ "$fam $name" = "inet docker_firewall" ] || hf_hx nft list table "$fam" "$name" 2>/dev/null
        done
    } | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/g' | dk_drop_empty
}

# hf_firewalld_restart — stop firewalld (SIGTERM to its PID: it cleans up its own rules, as
# systemctl stop does) and start it again on the same private D-Bus
hf_firewalld_restart() {
    hf_stop_pid "$HF_FWD_PID" 15
    HF_FWD_PID=
    hf_firewalld_start
}

# hf_apply <policy> — one run of the module on the host. Exit 0 no change, 2 changed, 1 failed.
hf_apply() { hf_hx "$DFW_BIN" apply --policy "$1"; }

# hf_watch_start <policy> <resync seconds> <log> — the service's command on the host; waits for the
# line of its first converge, "applied (start): ..." or "in place (start): ..." (<= 30 s)
hf_watch_start() {
    local policy=$1 resync=$2 log=$3 _
    : >"$log"
    # each log line gets the epoch time it was read at, in $log.t (to line repairs up with the probes)
    "${HF_ENTER[@]}" "$DFW_BIN" watch --policy "$policy" --resync "$resync" --docker-socket "$DK_DIR/docker.sock" \
        </dev/null 2> >(tee -a "$log" | while IFS= read -r l; do echo "$(date +%s.%N) $l"; done >"$log.t") >>"$log" &
    HF_WATCH_PID=$!
    for _ in $(seq 1 300); do
        grep -qE 'watch: (applied|in place) \(start\)' "$log" && return 0
        kill -0 "$HF_WATCH_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- probes
# hf_probers_start <dir> <ports...> — one probe.py per client namespace, every published port over
# IPv4 and IPv6 every 0.2 s, each attempt bounded by 0.8 s (a dropped SYN is never retried)
HF_PROBER_PIDS=()
hf_probers_start() {
    local dir=$1 label ns p specs
    shift
    mkdir -p "$dir"
    rm -f "$dir/.stop"
    for label in allowed stranger; do
        [ "$label" = allowed ] && ns=$NS_ALLOWED || ns=$NS_STRANGER
        specs=()
        for p in "$@"; do specs+=("$label-$p-4=$DK_HOST4:$p" "$label-$p-6=[$DK_HOST6]:$p"); done
        nsenter --net="/run/netns/$ns" python3 "$HF_LIB_DIR/probe.py" run "$dir/$label.log" "$dir/.stop" \
            0.2 0.8 "${specs[@]}" >"$dir/$label.err" 2>&1 </dev/null &
        HF_PROBER_PIDS+=($!)
    done
}
hf_probers_stop() {
    local dir=$1 p
    touch "$dir/.stop"
    for p in "${HF_PROBER_PIDS[@]}"; do hf_stop_pid "$p" 5; done
    HF_PROBER_PIDS=()
    cat "$dir"/allowed.log "$dir"/stranger.log >"$dir/all.log" 2>/dev/null
    return 0
}
# hf_report <dir> <open|closed> <keys...> — probe.py report over both clients' attempts
hf_report() {
    local dir=$1
    shift
    python3 "$HF_LIB_DIR/probe.py" report "$dir/all.log" "$@"
}

# ---------------------------------------------------------------- cleanup
hf_cleanup() {
    set +e
    local p
    for p in "${HF_PROBER_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    HF_PROBER_PIDS=()
    hf_stop_pid "$HF_WATCH_PID" 10
    HF_WATCH_PID=
    dk_daemon_stop
    hf_stop_pid "$HF_FWD_PID" 15
    HF_FWD_PID=
    hf_stop_pid "$HF_DBUS_PID" 5
    HF_DBUS_PID=
    hf_holder_down
    dk_cleanup
    return 0
}
