# shellcheck shell=bash
# tests/docker/lib.sh — a REAL Docker host confined to network namespaces (sourced by
# tests/docker/run.sh and scripts/demo; bash >= 4.3, root).
#
# Topology (every namespace name starts with $DK_PREFIX; nothing is created in, or changed in, the
# machine's own network namespace: links are created inside namespaces, every iptables call runs
# inside the "host" namespace, and dockerd only ever sees that namespace):
#
#   allowed  10.200.100.10  fd00:200:100::10  ─┐
#   stranger 10.200.100.20  fd00:200:100::20  ─┼─ br0 in "sw" ─ eth0 of "host" 10.200.100.1 fd00:200:100::1
#   internet 10.200.100.254 fd00:200:100::254 ─┘   (the host's default routes point at "internet")
#     "internet" also holds 198.18.0.80 and fd00:2ff::80 (on its lo), where busybox httpd answers
#   host: a real dockerd (Debian docker.io 20.10) with
#     docker0  10.200.1.1/24   fd00:200:1::/64   c1 -p 8080:80
#     net1     10.200.20.0/24  fd00:200:20::/64  c2 -p 8443:80   (bridge br-<id>)
#     net2     10.200.21.0/24  fd00:200:21::/64  c3 -p 9090:80   (bridge named "dkcustom0", not br-*)
#
# Every container runs busybox httpd (image imported from busybox-static, no registry) with a CGI
# /cgi-bin/who that answers "<container> sees <client address>": the real client address means the
# packet was DNAT-ed to the container, the bridge gateway address means docker-proxy served it.
#
# Settings: DK_PREFIX (namespace names), DK_DIR (work dir), DK_BACKEND=nft|legacy (the iptables the
# daemon uses), DK_PROXY=on|off (--userland-proxy), DK_PROBE_TIMEOUT (seconds, default 2),
# DK_ENGINE=20|28 (Debian 12's docker.io 20.10, or Debian unstable's 28.x unpacked by
# dk_docker28_fetch under DFW_DOCKER28_ROOT; the 20.10 client talks to both).

DK_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DK_ROOT=$(cd "$DK_LIB_DIR/../.." && pwd)

DK_HOST4=10.200.100.1;      DK_HOST6=fd00:200:100::1
DK_ALLOWED4=10.200.100.10;  DK_ALLOWED6=fd00:200:100::10
DK_STRANGER4=10.200.100.20; DK_STRANGER6=fd00:200:100::20
DK_GW4=10.200.100.254;      DK_GW6=fd00:200:100::254
DK_INET4=198.18.0.80;       DK_INET6=fd00:2ff::80
DK_PORTS=(8080 8443 9090)
# shellcheck disable=SC2034  # used by scripts/demo
declare -A DK_PORT_CONTAINER=([8080]=c1 [8443]=c2 [9090]=c3)
DK_IMAGE=dfw-busybox:e2e
DK_DOCKER_BIN=/usr/bin/docker # Debian's docker.io client (20.10); /usr/local/bin/docker may be another

DK_PREFIX=${DK_PREFIX:-dfwdk$$}
DK_BACKEND=${DK_BACKEND:-nft}
DK_PROXY=${DK_PROXY:-on}
DK_ENGINE=${DK_ENGINE:-20}
DK_PROBE_TIMEOUT=${DK_PROBE_TIMEOUT:-2}
NS_SW=$DK_PREFIX-sw
NS_HOST=$DK_PREFIX-host
NS_ALLOWED=$DK_PREFIX-allowed
NS_STRANGER=$DK_PREFIX-stranger
NS_INET=$DK_PREFIX-internet
DK_WRAPPER_PID=
DK_DAEMON_PROXY=
DK_HAD_PLUGINS=
DK_HAD_CONTAINERD=

dk_note() { [ -n "${DK_VERBOSE:-}" ] && echo "# docker-lab: $*" >&2; return 0; }

# ---------------------------------------------------------------- packages (fresh Debian 12)
DK_APT_PACKAGES=(docker.io containerd runc busybox-static curl socat iptables iproute2 util-linux jq ca-certificates)
# dk_install_packages — what the real-Docker lab needs; never starts a daemon in the root namespace
dk_install_packages() {
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        # no package may start its service (dockerd, containerd) in the machine's own namespace
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        echo "# created /usr/sbin/policy-rc.d (exit 101): packages start no services"
    fi
    local p missing=()
    for p in "${DK_APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    echo "# installing ${missing[*]} (apt-get, --no-install-recommends)"
    export DEBIAN_FRONTEND=noninteractive
    dk_apt_get update -qq </dev/null >/dev/null &&
        dk_apt_get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
}

# dk_apt_get args... — apt-get that waits (up to 10 minutes) while another apt or dpkg run holds a lock
dk_apt_get() {
    local _ err rc
    err=$(mktemp)
    for _ in $(seq 1 120); do
        apt-get -o DPkg::Lock::Timeout=600 "$@" 2>"$err"
        rc=$?
        # apt-get update has no lock timeout for the lists lock: retry while another apt runs
        if [ "$rc" = 0 ] || ! grep -q 'Could not get lock' "$err"; then break; fi
        sleep 5
    done
    cat "$err" >&2
    rm -f "$err"
    return "$rc"
}

# ---------------------------------------------------------------- a Docker 28 engine (unpacked)
# Debian's unstable suite carries docker.io 28.x (with containerd 2.x); its binaries run on Debian
# 12's libc except runc (Debian 12's /usr/sbin/runc is used). Nothing is installed: the .debs are
# downloaded with a private apt configuration (own sources list, lists and cache directories; the
# machine's apt state is not touched) and unpacked under $DK_DOCKER28_CACHE/root, once; later runs
# reuse it. (shared/reference/real-docker-in-a-namespace.md has the recipe.)
DK_DOCKER28_CACHE=${DFW_DOCKER28_CACHE:-/var/cache/docker_firewall-tests/docker28}
DK_DOCKER28_PACKAGES=(docker.io containerd tini)

# dk_docker28_fetch — the unpacked engine under $DK_DOCKER28_CACHE/root (downloaded when missing);
# exports DFW_DOCKER28_ROOT (the directory holding usr/sbin/dockerd) for the other suites
dk_docker28_fetch() {
    local c=$DK_DOCKER28_CACHE
    mkdir -p "$c" || return 1
    (
        flock -w 900 9 || { echo "# $c/.lock: another run holds it for 15 minutes" >&2; exit 1; }
        if [ -f "$c/root/.complete" ] && [ -x "$c/root/usr/sbin/dockerd" ]; then exit 0; fi
        local mirror apt d v
        mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1 | cut -d' ' -f1)
        [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 !~ /^\[/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
        [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
        rm -rf "$c/lists" "$c/debs" "$c/apt-cache" "$c/root.new"
        mkdir -p "$c/lists/partial" "$c/debs" "$c/apt-cache/archives/partial" "$c/root.new" || exit 1
        echo "deb $mirror sid main" >"$c/sources.list"
        apt=(-o "Dir::Etc::sourcelist=$c/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$c/lists"
            -o "Dir::Cache=$c/apt-cache" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
            -o APT::Sandbox::User=root)
        echo "# downloading Debian unstable's ${DK_DOCKER28_PACKAGES[*]} from $mirror (unpacked, not installed)"
        apt-get "${apt[@]}" -qq update </dev/null || exit 1
        (cd "$c/debs" && apt-get "${apt[@]}" -qq download "${DK_DOCKER28_PACKAGES[@]}" </dev/null) || exit 1
        for d in "$c"/debs/*.deb; do dpkg -x "$d" "$c/root.new" || exit 1; done
        # Debian 12's runc: unstable's needs a newer libc
        rm -f "$c/root.new/usr/sbin/runc" "$c/root.new/usr/bin/runc"
        v=$("$c/root.new/usr/sbin/dockerd" --version 2>&1) || { echo "# the unpacked dockerd does not run: $v" >&2; exit 1; }
        echo "# unpacked: $v ($(cd "$c/debs" && echo *.deb))"
        case $v in *" 28."*) ;; *) echo "# note: Debian unstable's docker.io is no longer 28.x: $v" ;; esac
        rm -rf "$c/root" "$c/lists" "$c/apt-cache" "$c/debs"
        mv "$c/root.new" "$c/root" && touch "$c/root/.complete"
    ) 9>"$c/.lock" || return 1
    export DFW_DOCKER28_ROOT=$c/root
}

# dk_module_ready — .venv/bin/ansible-playbook and library/docker_firewall are there (else run
# scripts/setup, or build the binary directly when scripts/setup is missing)
dk_module_ready() {
    [ -x "$DK_ROOT/.venv/bin/ansible-playbook" ] && [ -x "$DK_ROOT/library/docker_firewall" ] && return 0
    if [ -f "$DK_ROOT/scripts/setup" ]; then
        echo "# running scripts/setup (packages, .venv, static build of library/docker_firewall)"
        bash "$DK_ROOT/scripts/setup" || return 1
    else
        if [ ! -x "$DK_ROOT/.venv/bin/ansible-playbook" ]; then
            python3 -m venv "$DK_ROOT/.venv" &&
                "$DK_ROOT/.venv/bin/pip" install -q 'ansible-core==2.19.14' || return 1
        fi
        if [ ! -x "$DK_ROOT/library/docker_firewall" ]; then
            [ -x "${HOME:-/root}/.cargo/bin/cargo" ] && PATH="${HOME:-/root}/.cargo/bin:$PATH"
            (cd "$DK_ROOT" && RUSTFLAGS="-C target-feature=+crt-static" \
                cargo build --release --quiet --target x86_64-unknown-linux-gnu) || return 1
            install -m 0755 "$DK_ROOT/target/x86_64-unknown-linux-gnu/release/docker_firewall" \
                "$DK_ROOT/library/docker_firewall"
        fi
    fi
    [ -x "$DK_ROOT/.venv/bin/ansible-playbook" ] && [ -x "$DK_ROOT/library/docker_firewall" ]
}

# ---------------------------------------------------------------- namespaces
# dk_in <ns> cmd... — run a command in a namespace's network stack (no mount namespace games)
dk_in() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }

# dk_xt <4|6> <tool-suffix: ""|-save|-restore> args... — the daemon's iptables backend, in the host
dk_xt() {
    local fam=$1 suffix=$2 bin
    shift 2
    [ "$fam" = 6 ] && bin=ip6tables || bin=iptables
    dk_in "$NS_HOST" "$bin-$DK_BACKEND$suffix" "$@"
}

# dk_attach <ns> <port name in sw> <ipv4/len> <ipv6/len> <mac> — a veth from the switch into <ns>
# as eth0, with a fixed MAC address (a rebooted host keeps its NIC's address, so the neighbours'
# ARP/ND caches stay right)
dk_attach() {
    local ns=$1 port=$2 a4=$3 a6=$4 mac=$5
    ip -n "$NS_SW" link add "$port" type veth peer name eth0 netns "$ns"
    ip -n "$NS_SW" link set "$port" master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 address "$mac"
    ip -n "$ns" link set eth0 up
    ip -n "$ns" addr add "$a4" dev eth0
    ip -n "$ns" -6 addr add "$a6" dev eth0 nodad
}

# dk_host_up — (re)create the Docker host namespace and wire it to the switch (a fresh "boot")
dk_host_up() {
    ip netns add "$NS_HOST"
    dk_attach "$NS_HOST" p-host "$DK_HOST4/24" "$DK_HOST6/64" 02:00:0a:c8:64:01
    ip -n "$NS_HOST" route add default via "$DK_GW4"
    ip -n "$NS_HOST" -6 route add default via "$DK_GW6"
    # a freshly booted host forwards nothing until dockerd enables it (the namespace's own sysctls)
    dk_in "$NS_HOST" sysctl -qw net.ipv4.ip_forward=0
}

# dk_host_down — delete the host namespace (dockerd must be stopped first)
dk_host_down() {
    dk_kill_ns_pids "$NS_HOST"
    ip netns del "$NS_HOST" 2>/dev/null
    # the kernel tears a namespace down asynchronously: wait until its veth peer left the switch
    local _
    for _ in $(seq 1 40); do
        ip -n "$NS_SW" link show p-host >/dev/null 2>&1 || return 0
        sleep 0.25
    done
    echo "# the old host namespace is still alive (p-host remains): removing the peer" >&2
    ip -n "$NS_SW" link del p-host 2>/dev/null
    return 0
}

# dk_net_up — the switch, the outside clients, the "internet" and the host
dk_net_up() {
    mkdir -p "$DK_DIR"
    : >"$DK_DIR/pids"
    ip netns add "$NS_SW"
    ip -n "$NS_SW" link set lo up
    ip -n "$NS_SW" link add br0 type bridge
    ip -n "$NS_SW" link set br0 up
    local ns
    for ns in "$NS_ALLOWED" "$NS_STRANGER" "$NS_INET"; do ip netns add "$ns"; done
    dk_attach "$NS_ALLOWED" p-allowed "$DK_ALLOWED4/24" "$DK_ALLOWED6/64" 02:00:0a:c8:64:0a
    dk_attach "$NS_STRANGER" p-stranger "$DK_STRANGER4/24" "$DK_STRANGER6/64" 02:00:0a:c8:64:14
    dk_attach "$NS_INET" p-internet "$DK_GW4/24" "$DK_GW6/64" 02:00:0a:c8:64:fe
    ip -n "$NS_INET" addr add "$DK_INET4/32" dev lo
    ip -n "$NS_INET" -6 addr add "$DK_INET6/128" dev lo nodad
    # the "internet": a web server that tells who it sees
    mkdir -p "$DK_DIR/inet-www/cgi-bin"
    printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\necho "internet sees $REMOTE_ADDR"\n' \
        >"$DK_DIR/inet-www/cgi-bin/who"
    chmod +x "$DK_DIR/inet-www/cgi-bin/who"
    dk_spawn inet-httpd "$NS_INET" /bin/busybox httpd -f -p 80 -h "$DK_DIR/inet-www"
    dk_host_up
}

# dk_spawn <name> <ns> cmd... — a background process in a namespace, PID kept in $DK_DIR/pids (and
# in DK_SPAWN_PID)
dk_spawn() {
    local name=$1 ns=$2
    shift 2
    # nsenter itself, not the dk_in function (which would put a subshell in between): $! is the
    # process (nsenter without --fork execs the command)
    nsenter --net="/run/netns/$ns" "$@" >"$DK_DIR/$name.log" 2>&1 </dev/null &
    DK_SPAWN_PID=$!
    echo "$name $DK_SPAWN_PID" >>"$DK_DIR/pids"
}

# dk_kill_ns_pids <ns> — every process still in a namespace (docker-proxy, shims, ...), by PID
dk_kill_ns_pids() {
    local ns=$1 p pids
    pids=$(ip netns pids "$ns" 2>/dev/null) || return 0
    [ -n "$pids" ] || return 0
    for p in $pids; do kill -TERM "$p" 2>/dev/null; done
    sleep 1
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    return 0
}

# ---------------------------------------------------------------- dockerd
# dk_engine_path — the directories that hold the engine's dockerd, containerd, docker-proxy and
# docker-init, first in the daemon's PATH: Debian 12's (20.10) or the unpacked 28 (DK_ENGINE=28)
dk_engine_path() {
    if [ "$DK_ENGINE" = 28 ]; then
        printf '%s' "${DFW_DOCKER28_ROOT:-$DK_DOCKER28_CACHE/root}/usr/sbin:${DFW_DOCKER28_ROOT:-$DK_DOCKER28_CACHE/root}/usr/bin:/usr/sbin"
    else
        printf '%s' /usr/sbin
    fi
}

# dk_dockerd_version — "Docker version ..." of the engine DK_ENGINE selects
dk_dockerd_version() { PATH="$(dk_engine_path):$PATH" dockerd --version 2>&1; }

# dk_daemon_config — daemon.json and the wrapper that starts dockerd inside the host namespace
dk_daemon_config() {
    local proxy=true
    [ "$DK_PROXY" = off ] && proxy=false
    mkdir -p "$DK_DIR/bin"
    local t
    for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
        ln -sfn "/usr/sbin/${t/tables/tables-$DK_BACKEND}" "$DK_DIR/bin/$t"
    done
    cat >"$DK_DIR/daemon.json" <<EOF
{
  "bip": "10.200.1.1/24",
  "default-address-pools": [{"base": "10.200.16.0/20", "size": 24}],
  "iptables": true,
  "ip-forward": true,
  "ipv6": true,
  "fixed-cidr-v6": "fd00:200:1::/64",
  "experimental": true,
  "ip6tables": true,
  "userland-proxy": $proxy,
  "storage-driver": "overlay2"
}
EOF
    # ip netns exec remounts /sys and loses the cgroup mounts dockerd needs: enter the network
    # namespace with nsenter, make a private mount namespace, mount a fresh sysfs and bind the cgroup
    # hierarchy back (shared/reference/real-docker-in-a-namespace.md)
    cat >"$DK_DIR/dockerd-in-ns.sh" <<EOF
#!/bin/sh
set -e
HOLD=$DK_DIR/cg
mkdir -p "\$HOLD"; mount --rbind /sys/fs/cgroup "\$HOLD"
mount -t sysfs sysfs /sys
mount --rbind "\$HOLD" /sys/fs/cgroup; umount -l "\$HOLD"
export PATH=$DK_DIR/bin:$(dk_engine_path)/usr/sbin:/usr/bin:/sbin:/bin
exec dockerd --config-file "$DK_DIR/daemon.json" --data-root "$DK_DIR/data" --exec-root "$DK_DIR/exec" \\
     --pidfile "$DK_DIR/docker.pid" -H "unix://$DK_DIR/docker.sock"
EOF
    chmod +x "$DK_DIR/dockerd-in-ns.sh"
}

dk_docker() { "$DK_DOCKER_BIN" -H "unix://$DK_DIR/docker.sock" "$@"; }

# dk_daemon_start — start dockerd in the host namespace, wait until it answers (<= 60 s)
dk_daemon_start() {
    [ -n "$DK_HAD_PLUGINS" ] || DK_HAD_PLUGINS=$([ -e /run/docker/plugins ] && echo yes || echo no)
    [ -n "$DK_HAD_CONTAINERD" ] || DK_HAD_CONTAINERD=$([ -e /run/containerd ] && echo yes || echo no)
    dk_daemon_config
    rm -f "$DK_DIR/docker.pid"
    echo "=== dockerd start $(date +%T) engine=$DK_ENGINE backend=$DK_BACKEND proxy=$DK_PROXY" >>"$DK_DIR/dockerd.log"
    nsenter --net="/run/netns/$NS_HOST" unshare --mount --propagation slave --fork \
        "$DK_DIR/dockerd-in-ns.sh" >>"$DK_DIR/dockerd.log" 2>&1 </dev/null &
    DK_WRAPPER_PID=$!
    # shellcheck disable=SC2034  # read by tests/docker/watch.sh
    DK_DAEMON_PROXY=$DK_PROXY # what the running daemon was started with
    local _
    for _ in $(seq 1 120); do
        if dk_docker version >/dev/null 2>&1; then return 0; fi
        kill -0 "$DK_WRAPPER_PID" 2>/dev/null || break
        sleep 0.5
    done
    echo "# dockerd did not come up; last log lines:" >&2
    tail -n 15 "$DK_DIR/dockerd.log" | sed 's/^/#   /' >&2
    return 1
}

# dk_daemon_stop — SIGTERM to dockerd by the PID in its own pidfile (the wrapper's PID is unshare's
# and does not forward signals), wait for it; containers stop with it (no live-restore)
dk_daemon_stop() {
    [ -n "$DK_WRAPPER_PID" ] || return 0
    local dpid _
    dpid=$(cat "$DK_DIR/docker.pid" 2>/dev/null)
    if [ -n "$dpid" ] && kill -0 "$dpid" 2>/dev/null; then kill -TERM "$dpid"; fi
    for _ in $(seq 1 60); do kill -0 "$DK_WRAPPER_PID" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$DK_WRAPPER_PID" 2>/dev/null; then
        echo "# dockerd ($dpid) did not stop in 30 s: SIGKILL" >&2
        [ -n "$dpid" ] && kill -KILL "$dpid" 2>/dev/null
        sleep 1
        kill -KILL "$DK_WRAPPER_PID" 2>/dev/null
    fi
    wait "$DK_WRAPPER_PID" 2>/dev/null
    DK_WRAPPER_PID=
    # containerd-shims and container processes of a daemon that died hard: by PID
    dk_kill_containers
    return 0
}

# dk_kill_containers — container processes recorded by dk_record_pids that are still alive
dk_kill_containers() {
    local p
    [ -f "$DK_DIR/container.pids" ] || return 0
    for p in $(sort -u "$DK_DIR/container.pids"); do
        [ -d "/proc/$p" ] && kill -KILL "$p" 2>/dev/null
    done
    : >"$DK_DIR/container.pids"
    return 0
}
# dk_record_pids — remember the containers' init PIDs (for cleanup after a hard daemon death)
dk_record_pids() {
    local c p
    for c in c1 c2 c3; do
        p=$(dk_docker inspect -f '{{.State.Pid}}' "$c" 2>/dev/null) || continue
        [ -n "$p" ] && [ "$p" != 0 ] && echo "$p" >>"$DK_DIR/container.pids"
    done
    return 0
}

# ---------------------------------------------------------------- image and containers
# dk_image — a busybox image without a registry: busybox-static + applet links, docker import
dk_image() {
    local img=$DK_DIR/img a
    rm -rf "$img"
    mkdir -p "$img/bin" "$img/www/cgi-bin" "$img/tmp"
    cp /bin/busybox "$img/bin/busybox"
    for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$img/bin/$a"; done
    echo "hello from a container" >"$img/www/index.html"
    printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\necho "$NAME sees $REMOTE_ADDR"\n' \
        >"$img/www/cgi-bin/who"
    chmod +x "$img/www/cgi-bin/who"
    tar -C "$img" -cf "$DK_DIR/img.tar" .
    dk_docker import "$DK_DIR/img.tar" "$DK_IMAGE" >/dev/null
}

# dk_containers — networks and containers (restart policy "always": they come back with dockerd)
dk_containers() {
    dk_docker network create --ipv6 --subnet 10.200.20.0/24 --subnet fd00:200:20::/64 net1 >/dev/null &&
        dk_docker network create --ipv6 --subnet 10.200.21.0/24 --subnet fd00:200:21::/64 \
            -o com.docker.network.bridge.name=dkcustom0 net2 >/dev/null || return 1
    local c
    for c in "c1 bridge 8080" "c2 net1 8443" "c3 net2 9090"; do
        set -- $c
        dk_docker run -d --init --restart always --name "$1" --network "$2" -e "NAME=$1" -p "$3:80" \
            "$DK_IMAGE" /bin/busybox httpd -f -p 80 -h /www >/dev/null || return 1
    done
    dk_record_pids
}

# dk_wait_up [seconds] — all three containers running and their DNAT rules in place
dk_wait_up() {
    local limit=${1:-60} _ n
    for _ in $(seq 1 $((limit * 2))); do
        n=$(dk_docker ps -q --filter status=running 2>/dev/null | wc -l)
        if [ "$n" -ge 3 ] && [ "$(dk_xt 4 -save -t nat 2>/dev/null | grep -c -- '-j DNAT')" -ge 3 ]; then
            dk_record_pids
            return 0
        fi
        sleep 0.5
    done
    return 1
}

# ---------------------------------------------------------------- probes
# dk_probe <client ns> <address> <port> — one HTTP request to /cgi-bin/who; prints
#   "open <container> sees <client address>", "closed (<reason>)" or "connected (...)" (handshake,
#   then no answer)
dk_probe() {
    local ns=$1 addr=$2 port=$3 out rc url
    case $addr in *:*) url="http://[$addr]:$port/cgi-bin/who" ;; *) url="http://$addr:$port/cgi-bin/who" ;; esac
    out=$(dk_in "$ns" curl -sS --connect-timeout "$DK_PROBE_TIMEOUT" --max-time $((DK_PROBE_TIMEOUT + 2)) \
        "$url" 2>&1)
    rc=$?
    out=${out//$'\n'/ }
    case $rc in
        0) out=${out//\[::ffff:/}; out=${out//[\[\]]/}; echo "open $out" ;;
        7) echo "closed (refused)" ;;
        28) echo "closed (timeout)" ;;
        # the TCP handshake succeeded but no answer came (e.g. docker-proxy accepted, then failed)
        52 | 56) echo "connected (curl $rc: no answer)" ;;
        *) echo "closed (curl $rc: $out)" ;;
    esac
}

# dk_probe_many <outdir> <spec>... — probes in parallel; spec = "<key> <ns> <addr> <port>";
# result of each in <outdir>/<key>
dk_probe_many() {
    local dir=$1 spec key ns addr port
    shift
    mkdir -p "$dir"
    local pids=()
    for spec in "$@"; do
        read -r key ns addr port <<<"$spec"
        (dk_probe "$ns" "$addr" "$port" >"$dir/$key") &
        pids+=($!)
    done
    wait "${pids[@]}"
}

# dk_specs <label> <ns> — probe specs for one client: every published port, IPv4 and IPv6
# (keys <label>-<port>-4 / -6)
dk_specs() {
    local label=$1 ns=$2 p
    for p in "${DK_PORTS[@]}"; do
        echo "$label-$p-4 $ns $DK_HOST4 $p"
        echo "$label-$p-6 $ns $DK_HOST6 $p"
    done
}

# dk_wait_open <ns> <label> [seconds] [families] — wait until the client reaches every published
# port over the families ("4 6" by default): containers listening, their IPv6 addresses past DAD,
# DNAT rules in place
dk_wait_open() {
    local ns=$1 label=$2 limit=${3:-30} fams=${4:-4 6} end dir f all specs=()
    mapfile -t specs < <(dk_specs "$label" "$ns" | grep -E -- "-($(tr ' ' '|' <<<"$fams")) ")
    end=$((SECONDS + limit))
    dir=$DK_DIR/wait-open
    while [ "$SECONDS" -lt "$end" ]; do
        rm -rf "$dir"
        DK_PROBE_TIMEOUT=1 dk_probe_many "$dir" "${specs[@]}"
        all=1
        for f in "$dir"/*; do grep -q '^open ' "$f" || all=0; done
        [ "$all" = 1 ] && return 0
        sleep 0.5
    done
    return 1
}

# dk_loops_start <dir> <spec>... — probe each spec over and over in the background (one request
# every ~0.2 s, 1 s timeout) until dk_loops_stop; each writes "<epoch> <result>" lines to <dir>/<key>
DK_LOOP_PIDS=()
dk_loops_start() {
    local dir=$1 spec key ns addr port
    shift
    mkdir -p "$dir"
    rm -f "$dir/.stop"
    for spec in "$@"; do
        read -r key ns addr port <<<"$spec"
        (
            while [ ! -e "$dir/.stop" ]; do
                r=$(DK_PROBE_TIMEOUT=1 dk_probe "$ns" "$addr" "$port")
                echo "$(date +%s.%N) $r" >>"$dir/$key"
                sleep 0.2
            done
        ) &
        DK_LOOP_PIDS+=($!)
    done
}
dk_loops_stop() {
    local dir=$1
    touch "$dir/.stop"
    [ "${#DK_LOOP_PIDS[@]}" -gt 0 ] && wait "${DK_LOOP_PIDS[@]}" 2>/dev/null
    DK_LOOP_PIDS=()
    return 0
}

# dk_egress <container> <address> — a container opens a connection to the "internet" (busybox nc
# inside the container); prints what the internet server answered, or nothing
dk_egress() {
    local c=$1 addr=$2
    timeout 15 "$DK_DOCKER_BIN" -H "unix://$DK_DIR/docker.sock" exec "$c" /bin/sh -c \
        "printf 'GET /cgi-bin/who HTTP/1.0\r\n\r\n' | timeout 5 nc $addr 80 | tail -n 1" 2>/dev/null
}

# dk_drop_empty — a snapshot (iptables-save text, "=== ..." headers, `nft list table` texts) without
# what filters nothing: blank lines; in nft texts, base chains with policy accept and no rule, then
# tables left with nothing in them; in iptables-save texts, tables with no rule and only builtin
# chains with policy ACCEPT. (iptables-nft creates a builtin chain, and its table, the first time a
# rule goes into it, and leaves them, empty, when the rule goes: e.g. the mangle table after the
# iptables dataplane has been replaced by the nftables one.)
dk_drop_empty() {
    awk '
        function flush_chain() {
            if (!(n == 1 && hook ~ /policy accept;/)) { tbl = tbl "\n" cbuf; if (n) tbl = tbl "\n" body; tbl = tbl "\n\t}"; tn++ }
            inchain = 0; body = ""; hook = ""
        }
        /^[[:space:]]*$/ { next }
        /^table / { intable = 1; tbl = $0; tn = 0; next }
        intable && /^\tchain .* \{$/ { cbuf = $0; n = 0; inchain = 1; next }
        intable && inchain && /^\t\}$/ { flush_chain(); next }
        intable && inchain { n++; if (n == 1) hook = $0; body = (n == 1 ? $0 : body "\n" $0); next }
        intable && /^\}$/ { if (tn) { print tbl; print } else if (hdr != "") hdr = ""; intable = 0; next }
        intable { tbl = tbl "\n" $0; tn++; next }
        /^\*/ { insave = 1; sbuf = $0; sn = 0; next }
        insave && /^COMMIT$/ { if (sn) { print sbuf; print } insave = 0; next }
        insave { sbuf = sbuf "\n" $0; if ($0 !~ /^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT /) sn++; next }
        { print }'
}

# ---------------------------------------------------------------- cleanup
dk_cleanup() {
    set +e
    local p
    for p in "${DK_LOOP_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    dk_daemon_stop
    local name pid ns
    if [ -f "$DK_DIR/pids" ]; then
        while read -r name pid; do
            [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
        done <"$DK_DIR/pids"
    fi
    for ns in "$NS_HOST" "$NS_ALLOWED" "$NS_STRANGER" "$NS_INET" "$NS_SW"; do
        dk_kill_ns_pids "$ns"
        ip netns del "$ns" 2>/dev/null
    done
    # dockerd creates /run/docker/plugins and containerd /run/containerd on the shared root
    # filesystem; remove them only when they were not there before (another daemon may use them)
    if [ "$DK_HAD_PLUGINS" = no ]; then rmdir /run/docker/plugins /run/docker 2>/dev/null; fi
    if [ "$DK_HAD_CONTAINERD" = no ]; then rmdir /run/containerd/s /run/containerd 2>/dev/null; fi
    if [ -n "$DK_DIR" ] && [ -d "$DK_DIR" ] && [ -z "${DK_KEEP:-}" ]; then
        # overlay mounts lived only in the daemon's private mount namespace
        rm -rf "$DK_DIR" 2>/dev/null || { sleep 2; rm -rf "$DK_DIR"; }
    fi
    return 0
}
