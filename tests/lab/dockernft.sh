# shellcheck shell=bash
# tests/lab/dockernft.sh — the lab's Docker host with Docker's nftables firewall backend (Docker 29,
# "firewall-backend": "nftables"), LAYOUT=dockernft. Sourced by lab.sh; uses its topology and names.
#
# Docker writes no iptables rule at all (no DOCKER-USER). Its tables `ip docker-bridges` and
# `ip6 docker-bridges` are loaded with `nft -f` into the host namespace in the shape of
# ../shared/reference/docker-layouts/nftables/ (new-daemon, usernet-portmap, -noproxy): verdict maps
# per bridge, the DNAT rules in chain nat-prerouting-and-output, "DROP DIRECT ACCESS" in raw-PREROUTING,
# per-bridge forward chains ("UNPUBLISHED PORT DROP") and masquerade. Published (IPv4 and IPv6):
#   tcp 8080 -> c1:80, udp 8080 -> c1:80 (UDP listener "c1-udp"), tcp 8007 -> c1:7 (echo),
#   tcp 8443 -> c2:443
# LAB_PROXY=off at lab_up gives the userland-proxy-off shape (DNAT without `iifname !=`, the
# "MASQUERADE FROM HOST" / "MASQ TO OWN PORT" rules, nat-OUTPUT also for loopback);
# LAB_IPV6=proxy gives IPv4-only networks: the ip6 table holds only the daemon's base chains and
# empty maps, and the docker-proxy-like listeners serve IPv6 by forwarding to the IPv4 addresses.
#
# The udp 8080 and tcp 8007 ports exist on the iptables layouts too after lab_extra_ports, which
# adds Docker's iptables rules for them (lab_extra_ports is a no-op for the rules on dockernft).
#
# API: lab_docker_nft 4|6, lab_load_docker_nft, lab_nft (nft in the host namespace), lab_publish
#      (lab.sh; on dockernft it adds the DNAT rule to Docker's tables),
#      lab_extra_ports, probe_udp, lab_hold_open/lab_hold_say/lab_hold_close (a held connection).

LAB_ECHO_PORT=8007   # host port published to c1's TCP echo service on port 7

# lab_nft args... — nft in the Docker host namespace
lab_nft() { ip netns exec "$NS_HOST" nft "$@"; }

# lab_docker_nft <4|6> — `nft -f` input: Docker's table for this lab and family
lab_docker_nft() {
    local fam=$1 b=$LAB_BR2 t x net1 net2 c1 c2 d1 d2 lo
    if [ "$fam" = 6 ]; then
        t=ip6 x=ip6 net1=fd00:201::/64 net2=fd00:202::/64 c1=$C1_6 c2=$C2_6 d1="[$C1_6]" d2="[$C2_6]" lo=::1
    else
        t=ip x=ip net1=10.200.1.0/24 net2=10.200.2.0/24 c1=$C1_4 c2=$C2_4 d1=$C1_4 d2=$C2_4 lo=127.0.0.0/8
    fi
    # IPv4-only networks: the IPv6 table is the new daemon's, without any bridge
    if [ "$fam" = 6 ] && [ "${LAB_IPV6:-nat}" = proxy ]; then
        cat <<EOF
table ip6 docker-bridges {
	map filter-forward-in-jumps {
		type ifname : verdict
	}
	map filter-forward-out-jumps {
		type ifname : verdict
	}
	map nat-postrouting-in-jumps {
		type ifname : verdict
	}
	map nat-postrouting-out-jumps {
		type ifname : verdict
	}
	chain filter-FORWARD {
		type filter hook forward priority filter; policy accept;
		oifname vmap @filter-forward-in-jumps
		iifname vmap @filter-forward-out-jumps
	}
	chain nat-OUTPUT {
		type nat hook output priority -100; policy accept;
		ip6 daddr != ::1 fib daddr type local counter jump nat-prerouting-and-output
	}
	chain nat-POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		iifname vmap @nat-postrouting-out-jumps
		oifname vmap @nat-postrouting-in-jumps
	}
	chain nat-PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local counter jump nat-prerouting-and-output
	}
	chain nat-prerouting-and-output {
	}
	chain raw-PREROUTING {
		type filter hook prerouting priority raw; policy accept;
	}
}
EOF
        return 0
    fi
    local in1='iifname != "docker0" ' in2="iifname != \"$b\" " out="$x daddr != $lo " hostm1='' hostm2=''
    if [ "${LAB_PROXY:-on}" = off ]; then
        in1='' in2='' out=''
        hostm1='		fib saddr type local counter masquerade comment "MASQUERADE FROM HOST"'
        hostm2="$hostm1
		$x saddr $c2 $x daddr $c2 tcp dport 443 counter masquerade comment \"MASQ TO OWN PORT\""
        hostm1="$hostm1
		$x saddr $c1 $x daddr $c1 tcp dport 80 counter masquerade comment \"MASQ TO OWN PORT\""
    fi
    cat <<EOF
table $t docker-bridges {
	map filter-forward-in-jumps {
		type ifname : verdict
		elements = { "docker0" : jump filter-forward-in__docker0,
			     "$b" : jump filter-forward-in__$b }
	}
	map filter-forward-out-jumps {
		type ifname : verdict
		elements = { "docker0" : jump filter-forward-out__docker0,
			     "$b" : jump filter-forward-out__$b }
	}
	map nat-postrouting-in-jumps {
		type ifname : verdict
		elements = { "docker0" : jump nat-postrouting-in__docker0,
			     "$b" : jump nat-postrouting-in__$b }
	}
	map nat-postrouting-out-jumps {
		type ifname : verdict
		elements = { "docker0" : jump nat-postrouting-out__docker0,
			     "$b" : jump nat-postrouting-out__$b }
	}
	chain filter-FORWARD {
		type filter hook forward priority filter; policy accept;
		oifname vmap @filter-forward-in-jumps
		iifname vmap @filter-forward-out-jumps
	}
	chain nat-OUTPUT {
		type nat hook output priority -100; policy accept;
		${out}fib daddr type local counter jump nat-prerouting-and-output
	}
	chain nat-POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		iifname vmap @nat-postrouting-out-jumps
		oifname vmap @nat-postrouting-in-jumps
	}
	chain nat-PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local counter jump nat-prerouting-and-output
	}
	chain nat-prerouting-and-output {
		${in1}tcp dport 8080 counter dnat to $d1:80 comment "DNAT"
		${in1}udp dport 8080 counter dnat to $d1:80 comment "DNAT"
		${in1}tcp dport $LAB_ECHO_PORT counter dnat to $d1:7 comment "DNAT"
		${in2}tcp dport 8443 counter dnat to $d2:443 comment "DNAT"
	}
	chain raw-PREROUTING {
		type filter hook prerouting priority raw; policy accept;
		$x daddr $c1 iifname != "docker0" counter drop comment "DROP DIRECT ACCESS"
		$x daddr $c2 iifname != "$b" counter drop comment "DROP DIRECT ACCESS"
	}
	chain filter-forward-in__docker0 {
		ct state established,related counter accept
		iifname "docker0" counter accept comment "ICC"
		$x daddr $c1 tcp dport 80 counter accept
		$x daddr $c1 udp dport 80 counter accept
		$x daddr $c1 tcp dport 7 counter accept
		counter drop comment "UNPUBLISHED PORT DROP"
	}
	chain filter-forward-out__docker0 {
		ct state established,related counter accept
		counter accept comment "OUTGOING"
	}
	chain nat-postrouting-in__docker0 {
$hostm1
	}
	chain nat-postrouting-out__docker0 {
		oifname != "docker0" $x saddr $net1 counter masquerade comment "MASQUERADE"
	}
	chain filter-forward-in__$b {
		ct state established,related counter accept
		iifname "$b" counter accept comment "ICC"
		$x daddr $c2 tcp dport 443 counter accept
		counter drop comment "UNPUBLISHED PORT DROP"
	}
	chain filter-forward-out__$b {
		ct state established,related counter accept
		counter accept comment "OUTGOING"
	}
	chain nat-postrouting-in__$b {
$hostm2
	}
	chain nat-postrouting-out__$b {
		oifname != "$b" $x saddr $net2 counter masquerade comment "MASQUERADE"
	}
}
EOF
}

# lab_load_docker_nft — Docker's two tables into the (fresh) host namespace, one nft -f each; the
# extra servers (c1 udp 80, c1 tcp 7 echo)
lab_load_docker_nft() {
    lab_docker_nft 4 | lab_nft -f - || { lab_die "loading ip docker-bridges failed"; return 1; }
    lab_docker_nft 6 | lab_nft -f - || { lab_die "loading ip6 docker-bridges failed"; return 1; }
    _lab_extra_servers
}

# _lab_extra_servers — c1: UDP :80 answering "c1-udp", TCP :7 echoing every line back
_lab_extra_servers() {
    ip netns exec "$NS_C1" ss -Hltn 'sport = :7' | grep -q . && return 0
    # the command reads the datagram first (socat drops the answer of a command that exits early)
    lab_spawn c1-udp-4 "$NS_C1" socat UDP4-RECVFROM:80,fork,reuseaddr SYSTEM:"read -r _; echo c1-udp"
    lab_spawn c1-udp-6 "$NS_C1" socat UDP6-RECVFROM:80,fork,reuseaddr,ipv6only=1 SYSTEM:"read -r _; echo c1-udp"
    lab_spawn c1-echo-4 "$NS_C1" socat TCP4-LISTEN:7,fork,reuseaddr EXEC:cat
    lab_spawn c1-echo-6 "$NS_C1" socat TCP6-LISTEN:7,fork,reuseaddr,ipv6only=1 EXEC:cat
    _lab_wait_listen "$NS_C1" 7 || return 1
    for _ in $(seq 1 60); do
        [ "$(ip netns exec "$NS_C1" ss -Hlun 'sport = :80' | wc -l)" -ge 2 ] && break
        sleep 0.05
    done
}

# lab_extra_ports — publish udp 8080 -> c1:80 and tcp 8007 -> c1:7 (echo) on any layout: the
# servers, and on the iptables layouts Docker's nat DNAT + filter ACCEPT rules (one noflush restore
# per family; IPv4 only with LAB_IPV6=proxy, where docker-proxy-like listeners serve IPv6 8007)
lab_extra_ports() {
    _lab_extra_servers || return 1
    [ "$LAYOUT" = dockernft ] && return 0
    local fam c1 d fams="4 6"
    [ "${LAB_IPV6:-nat}" = proxy ] && fams=4
    for fam in $fams; do
        if [ "$fam" = 6 ]; then c1=$C1_6/128 d="[$C1_6]"; else c1=$C1_4/32 d=$C1_4; fi
        printf '%s\n' '*nat' \
            "-A DOCKER ! -i docker0 -p udp -m udp --dport 8080 -j DNAT --to-destination $d:80" \
            "-A DOCKER ! -i docker0 -p tcp -m tcp --dport $LAB_ECHO_PORT -j DNAT --to-destination $d:7" COMMIT \
            '*filter' \
            "-I DOCKER 1 -d $c1 ! -i docker0 -o docker0 -p udp -m udp --dport 80 -j ACCEPT" \
            "-I DOCKER 1 -d $c1 ! -i docker0 -o docker0 -p tcp -m tcp --dport 7 -j ACCEPT" COMMIT |
            lab_xt "$NS_HOST" "$fam" restore --noflush || return 1
    done
}

# _lab_publish_nft <4|6> <port> — Docker 29 publishing host <port> -> c1:80 while the lab runs: a DNAT
# rule added to nat-prerouting-and-output (c1's forward accept for tcp 80 is there already)
_lab_publish_nft() {
    local fam=$1 port=$2 t=ip d=$C1_4 in='iifname != "docker0" '
    [ "$fam" = 6 ] && t=ip6 d="[$C1_6]"
    [ "${LAB_PROXY:-on}" = off ] && in=''
    lab_nft add rule "$t" docker-bridges nat-prerouting-and-output "${in}tcp dport $port counter dnat to $d:80 comment \"DNAT\""
}

# probe_udp <ns> <addr> <port> — one datagram (two tries, PROBE_TIMEOUT each); prints the answer
# ("c1-udp") or "closed"
probe_udp() {
    local ns=$1 addr=$2 port=$3 t=${PROBE_TIMEOUT:-2} target r _
    case $addr in *:*) target="UDP6:[$addr]:$port" ;; *) target="UDP4:$addr:$port" ;; esac
    for _ in 1 2; do
        r=$(echo ping | timeout -k 1 $((t + 2)) ip netns exec "$ns" socat -t "$t" -T "$t" - "$target" 2>/dev/null | head -1)
        [ -n "$r" ] && break
    done
    echo "${r:-closed}"
}

# ---------------------------------------------------------------- a held connection
# lab_hold_open <name> <ns> <addr> [port] — a TCP connection to the echo service (default host port
# 8007) kept open in the background; returns 0 when a first line came back. The writer end is kept
# in LAB_HOLD_FD[name]; the process is recorded in $LAB_DIR/pids (lab_down stops it).
declare -gA LAB_HOLD_FD
lab_hold_open() {
    local name=$1 ns=$2 addr=$3 port=${4:-$LAB_ECHO_PORT} target fd
    case $addr in *:*) target="TCP6:[$addr]:$port" ;; *) target="TCP4:$addr:$port" ;; esac
    rm -f "$LAB_DIR/hold-$name.in" "$LAB_DIR/hold-$name.out"
    mkfifo "$LAB_DIR/hold-$name.in" || return 1
    timeout -k 1 600 ip netns exec "$ns" socat -T 600 STDIO "$target,connect-timeout=${PROBE_TIMEOUT:-2}" \
        <"$LAB_DIR/hold-$name.in" >"$LAB_DIR/hold-$name.out" 2>"$LAB_DIR/hold-$name.err" &
    echo "hold-$name $!" >>"$LAB_DIR/pids"
    exec {fd}>"$LAB_DIR/hold-$name.in"
    LAB_HOLD_FD[$name]=$fd
    lab_hold_say "$name" hello
}
# lab_hold_say <name> <word> — send a line on the held connection; 0 when it is echoed within
# PROBE_TIMEOUT seconds
lab_hold_say() {
    local name=$1 word=$2 fd=${LAB_HOLD_FD[$1]:-}
    [ -n "$fd" ] || return 1
    { echo "$word" >&"$fd"; } 2>/dev/null || return 1
    for _ in $(seq 1 $((${PROBE_TIMEOUT:-2} * 20))); do
        grep -qx -- "$word" "$LAB_DIR/hold-$name.out" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
# lab_hold_close <name> — close the writer end (socat ends the connection)
lab_hold_close() {
    local fd=${LAB_HOLD_FD[$1]:-}
    [ -n "$fd" ] && exec {fd}>&-
    unset "LAB_HOLD_FD[$1]"
    return 0
}
