#!/usr/bin/env bash
# The lab reproduces the problem, without any module: published ports are reachable from every
# outside client (IPv4 and IPv6, both bridges), an INPUT drop does not help, containers reach out.
# layouts: docker20 docker28
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_lab_up

# the lab's Docker rules are in iptables-save's canonical form (tests may grep for them verbatim)
for f in 4 6; do
    for t in raw nat filter; do
        want=$(lab_docker_rules "$f" | awk -v t="$t" '/^\*/{cur=substr($0,2)} cur==t && /^-A /')
        [ -n "$want" ] || continue
        have=$(lab_xt "$NS_HOST" "$f" save -t "$t" | grep '^-A ')
        t_eq "Docker's IPv$f $t rules round-trip through iptables-save" "$want" "$have"
    done
    t_eq "IPv$f FORWARD policy is DROP" ":FORWARD DROP [0:0]" \
        "$(lab_xt "$NS_HOST" "$f" save -t filter | grep '^:FORWARD' | t_norm)"
done

mapfile -t S < <(reach_specs allowed dnat; reach_specs denied dnat; outbound_specs)
S+=("host itself -> 127.0.0.1:8080 served by docker-proxy|$NS_HOST|127.0.0.1|8080|proxy"
    "host itself -> [::1]:8443 served by docker-proxy|$NS_HOST|::1|8443|proxy")
T_PRE="no protection, proxy on: " expect_probes "${S[@]}"

lab_proxy off
mapfile -t S < <(reach_specs allowed dnat; reach_specs denied dnat)
S+=("host itself -> 127.0.0.1:8080 without docker-proxy|$NS_HOST|127.0.0.1|8080|refused")
T_PRE="no protection, proxy off: " expect_probes "${S[@]}"

# the seeds' "fix": a DROP in INPUT for the published ports
for f in 4 6; do
    ipt_fam "$f" -I INPUT -p tcp -m multiport --dports 8080,8443 -j DROP
done
lab_proxy on
mapfile -t S < <(reach_specs allowed dnat; reach_specs denied dnat)
S+=("host itself -> 127.0.0.1:8080 now dropped in INPUT|$NS_HOST|127.0.0.1|8080|timeout")
T_PRE="INPUT drop, proxy on: " expect_probes "${S[@]}"
lab_proxy off
mapfile -t S < <(reach_specs denied dnat)
T_PRE="INPUT drop, proxy off: " expect_probes "${S[@]}"

# the lab's Docker-restart simulation reproduces Docker's ruleset exactly
for f in 4 6; do ipt_fam "$f" -D INPUT -p tcp -m multiport --dports 8080,8443 -j DROP; done
snap "$T_DIR/before-restart"
if lab_docker_start 2>"$T_DIR/restart.err"; then
    snap "$T_DIR/after-restart"
    t_same "simulated Docker restart reproduces the same ruleset" "$T_DIR/before-restart" "$T_DIR/after-restart"
else
    not_ok "simulated Docker restart runs" "$(cat "$T_DIR/restart.err")"
fi
mapfile -t S < <(reach_specs denied dnat; outbound_specs)
T_PRE="after Docker restart: " expect_probes "${S[@]}"

t_done
