#!/usr/bin/env bash
# The dockernft lab (Docker 29's nftables firewall backend) reproduces the problem, without any
# module: Docker's tables ip/ip6 docker-bridges are loaded and there is no iptables rule (no
# DOCKER-USER to put rules in); every published port (TCP 8080, 8443, 8007, UDP 8080) is reachable
# from every outside client over IPv4 and IPv6 through Docker's DNAT (the container sees the
# client's address), with the docker-proxy-like listeners on and off; a container's address is not
# reachable directly (Docker's "DROP DIRECT ACCESS"); containers reach out through Docker's
# masquerade; with IPv4-only networks docker-proxy serves IPv6. Needs no module binary.
# layouts: dockernft
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=nft_lib.sh
. "$(dirname "$0")/nft_lib.sh"
t_trap
t_lab_up

t_eq "Docker's two tables, nothing else" "table ip docker-bridges
table ip6 docker-bridges" "$(lab_nft list tables)"
t_eq "no iptables rule at all" 0 "$(snap /dev/stdout | grep -c '^-A ')"
for f in 4 6; do
    if [ "$f" = 6 ]; then t=ip6; else t=ip; fi
    dn=$(lab_nft list chain "$t" docker-bridges nat-prerouting-and-output | grep -c 'dnat to')
    t_eq "IPv$f: four DNAT rules in nat-prerouting-and-output" 4 "$dn"
    t_match "IPv$f: DNAT rules in Docker 29's form" "iifname != \"docker0\" tcp dport 8080 counter packets [0-9]+ bytes [0-9]+ dnat (ip6 )?to " \
        "$(lab_nft list chain "$t" docker-bridges nat-prerouting-and-output)"
    t_match "IPv$f: the bridges in filter-forward-in-jumps" "\"$LAB_BR2\" : jump filter-forward-in__$LAB_BR2" \
        "$(lab_nft list map "$t" docker-bridges filter-forward-in-jumps | tr -d '\n\t')"
done

lab_extra_ports
mapfile -t S < <(reach_specs allowed dnat 8080 8443; reach_specs denied dnat 8080 8443; reach_specs denied open 8007; outbound_specs)
S+=("host itself -> 127.0.0.1:8080 served by docker-proxy|$NS_HOST|127.0.0.1|8080|proxy"
    "host itself -> [::1]:8443 served by docker-proxy|$NS_HOST|::1|8443|proxy")
T_PRE="no protection, proxy on: " expect_probes "${S[@]}"
for a in "$HOST4" "$HOST6"; do
    t_eq "no protection: denied udp -> [$a]:8080 answered by c1" c1-udp "$(probe_udp "$NS_DENIED" "$a" 8080)"
done

# a stranger routing straight to a container address: Docker's raw-PREROUTING drops it
ip -n "$NS_DENIED" route add 10.200.1.0/24 via "$HOST4"
ip -n "$NS_DENIED" -6 route add fd00:201::/64 via "$HOST6"
T_PRE="direct access: " expect_probes \
    "denied -> c1:80 directly|$NS_DENIED|$C1_4|80|timeout" \
    "denied -> [c1]:80 directly|$NS_DENIED|$C1_6|80|timeout"

lab_proxy off
mapfile -t S < <(reach_specs allowed dnat; reach_specs denied dnat)
S+=("host itself -> 127.0.0.1:8080 without docker-proxy|$NS_HOST|127.0.0.1|8080|refused")
T_PRE="no protection, proxy off: " expect_probes "${S[@]}"

# the userland-proxy-off shape (DNAT also for traffic from the bridge, masquerade from the host)
lab_down
LAB_PROXY=off
t_lab_up
t_match "proxy off: DNAT rules without iifname" '^[[:space:]]*tcp dport 8080 counter packets [0-9]+ bytes [0-9]+ dnat to 10.200.1.2:80' \
    "$(lab_nft list chain ip docker-bridges nat-prerouting-and-output)"
mapfile -t S < <(reach_specs denied dnat; outbound_specs)
S+=("c2 -> host:8080 (hairpin through the DNAT)|$NS_C2|$GW2_4|8080|open")
T_PRE="userland proxy off: " expect_probes "${S[@]}"

# IPv4-only networks: the IPv6 table has only the daemon's base chains; docker-proxy serves IPv6
lab_down
# shellcheck disable=SC2034  # both read by lab_up (tests/lab/lab.sh)
LAB_PROXY=on LAB_IPV6=proxy
t_lab_up
t_eq "IPv4-only networks: no IPv6 DNAT" 0 "$(lab_nft list chain ip6 docker-bridges nat-prerouting-and-output | grep -c dnat)"
T_PRE="IPv4-only networks: " expect_probes \
    "denied v6 -> host:8080 served by docker-proxy|$NS_DENIED|$HOST6|8080|proxy" \
    "denied v4 -> host:8080|$NS_DENIED|$HOST4|8080|dnat" \
    "c1 v4 -> net|$NS_C1|$NET4|$NET_PORT|open"

t_done
