#!/usr/bin/env bash
# Protection gaps found with the lab (these cases failed against the module of 2026-11-22):
#  1. IPv6 through docker-proxy: Docker writes no IPv6 NAT (IPv4-only networks; docker20 with
#     ip6tables off), docker-proxy listens on [::]:PORT and forwards to the container's IPv4. No
#     strategy may let the denied client in over IPv6.
#  2. strategy prerouting/both: the nat gate must not disable other tools' nat PREROUTING rules
#     (an admin's port forward, kube-proxy node ports) for traffic that is not for Docker.
#  3. strategy both set up before Docker starts, or a port published after the run: the gate
#     knows only the ports published when the module ran, so the DOCKER-USER filter must cover the
#     rest. strategy prerouting alone cannot know future ports: the module says so in a warning.
#  4. an owned rule that was changed by hand and lost its docker_firewall:<hash> tag is repaired.
#     (The module trusts its tags, as Calico Felix does: a rule edited under an intact tag is not
#     detected; see the README's limitations.)
# layouts: docker20 docker28
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_need_bin

# --- 1. IPv6 via docker-proxy
LAB_IPV6=proxy t_lab_up
mapfile -t P < <(reach_specs denied proxy 8080)
T_PRE="no IPv6 NAT, before the module: " expect_probes "${P[@]:1}"
for strategy in docker_user prerouting both; do
    new_rules_dir
    if t_dfw_ok "no IPv6 NAT, $strategy: apply" "{\"strategy\":\"$strategy\"}"; then
        mapfile -t P < <(
            echo "denied v6 -> [host]:8080 via docker-proxy|$NS_DENIED|$HOST6|8080|closed"
            echo "denied v6 -> [host]:8443 via docker-proxy|$NS_DENIED|$HOST6|8443|closed"
            echo "allowed v6 -> [host]:8080 via docker-proxy|$NS_ALLOWED|$HOST6|8080|proxy"
            echo "denied v4 -> host:8080|$NS_DENIED|$HOST4|8080|closed")
        T_PRE="no IPv6 NAT, $strategy: " expect_probes "${P[@]}"
    fi
    t_dfw_ok "cleanup" '{"state":"absent"}'
done
lab_down
LAB_IPV6=nat

# --- 2. other tools' nat PREROUTING rules keep working
t_lab_up
lab_spawn sshd "$NS_HOST" socat TCP4-LISTEN:2200,fork,reuseaddr SYSTEM:'echo host-sshd'
lab_spawn sshd6 "$NS_HOST" socat TCP6-LISTEN:2200,fork,reuseaddr,ipv6only=1 SYSTEM:'echo host-sshd'
for fam in 4 6; do
    ipt_fam "$fam" -t nat -A PREROUTING -i eth0 -p tcp -m tcp --dport 2222 \
        -m comment --comment "admin: port forward 2222 -> 2200" -j REDIRECT --to-ports 2200
done
sleep 0.2
PF=("denied v4 -> host:2222 (admin's REDIRECT to 2200)|$NS_DENIED|$HOST4|2222|open"
    "denied v6 -> [host]:2222 (admin's REDIRECT to 2200)|$NS_DENIED|$HOST6|2222|open")
T_PRE="before the module: " expect_probes "${PF[@]}"
for strategy in docker_user prerouting both; do
    new_rules_dir
    if t_dfw_ok "foreign nat rule, $strategy: apply" "{\"strategy\":\"$strategy\"}"; then
        T_PRE="$strategy: " expect_probes "${PF[@]}"
    fi
    t_dfw_ok "cleanup" '{"state":"absent"}'
done

# --- 3a. both applied before Docker starts; prerouting alone warns that it cannot
LAB_DOCKER=no t_lab_reset
new_rules_dir
if t_dfw_ok "before Docker, prerouting: apply" '{"strategy":"prerouting"}'; then
    t_eq "before Docker, prerouting: warns that only published ports are gated" true \
        "$(dfw_q '[.warnings[] | select(contains("none is published now"))] | length > 0')" "$(dfw_show)"
fi
t_dfw_ok "cleanup" '{"state":"absent"}'
LAB_DOCKER=no t_lab_reset
new_rules_dir
if t_dfw_ok "before Docker, both: apply" '{"strategy":"both"}'; then
    lab_docker_start 2>"$T_DIR/ds.err" || not_ok "Docker starts" "$(cat "$T_DIR/ds.err")"
    mapfile -t P < <(reach_specs denied closed; reach_specs allowed dnat 8080)
    T_PRE="both set up before Docker started (warning promises the policy holds): " expect_probes "${P[@]}"
fi

# --- 3b. strategy both, a port published after the run (docker_user alone closes it at once)
t_lab_reset
new_rules_dir
if t_dfw_ok "both, new port: apply" '{"strategy":"both"}'; then
    publish_9090_like_docker
    mapfile -t P < <(reach_specs denied closed 9090)
    T_PRE="both, port published after the run: " expect_probes "${P[@]}"
fi

# --- 4. a tampered owned rule that lost its tag
t_lab_reset
new_rules_dir
if t_dfw_ok "tamper: apply" '{"strategy":"docker_user"}'; then
    r=$(chain_rules 4 filter DFW-INGRESS-POLICY | grep -m1 -- "-s $ALLOWED4/32 .*--ctorigdstport 8080 ")
    n=$(chain_rules 4 filter DFW-INGRESS-POLICY | grep -n -m1 -- "-s $ALLOWED4/32 .*--ctorigdstport 8080 " | cut -d: -f1)
    if [ -n "$r" ]; then
        t=${r/-s $ALLOWED4\/32/-s $DENIED4/32}
        t=${t/docker_firewall:/edited-by-hand:}
        t=${t/-A DFW-INGRESS-POLICY/-R DFW-INGRESS-POLICY $n}
        eval "ipt $t"
        if t_dfw_ok "tamper: run" '{"strategy":"docker_user"}'; then
            t_changed "tamper: a rule changed by hand is reported as a change" true
            mapfile -t P < <(echo "denied v4 -> host:8080 after the repair|$NS_DENIED|$HOST4|8080|closed")
            expect_probes "${P[@]}"
        fi
    else
        not_ok "tamper: found the allow rule for $ALLOWED4:8080" "$(chain_rules 4 filter DFW-INGRESS-POLICY)"
    fi
fi

t_done
