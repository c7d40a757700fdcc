#!/usr/bin/env bash
# Drift and odd starting points: duplicate hooks, leftover DFW- chains and hooks, a flushed
# DOCKER-USER, a foreign rule inside an owned chain, Docker not running yet at the first run,
# Ansible's string forms for lists, unicode and shell characters in comments (quotes, backslashes
# and backticks are refused by design: see test_badinput).
# layouts: docker20 docker28
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_need_bin
t_lab_up

owned_count() { lab_xt "$NS_HOST" "$1" save | grep -c 'docker_firewall:'; }

t_dfw_ok "apply" '{"strategy":"both"}'
snap "$T_DIR/applied"
N4=$(owned_count 4)

# a duplicate of our DOCKER-USER hook (a concurrent run, a manual copy)
hook=$(first_rule 4 filter DOCKER-USER)
# shellcheck disable=SC2086
eval "ipt ${hook/-A DOCKER-USER/-A DOCKER-USER}"
if t_dfw_ok "duplicate hook: run" '{"strategy":"both"}'; then
    t_changed "duplicate hook: reported as a change" true
    t_eq "duplicate hook: exactly one hook left in DOCKER-USER" 1 "$(chain_rules 4 filter DOCKER-USER | grep -c 'docker_firewall:')"
fi

# leftovers of an older version: an owned chain and a hook to it, nat and filter
ipt -N DFW-OLD-STUFF && ipt -A DFW-OLD-STUFF -j RETURN
ipt -A INPUT -m comment --comment "docker_firewall:0123456789ab" -j DFW-OLD-STUFF
ipt6 -t nat -N DFW-OLD-GATE && ipt6 -t nat -A PREROUTING -m comment --comment "docker_firewall:ba9876543210" -j DFW-OLD-GATE
if t_dfw_ok "leftover owned chains: run" '{"strategy":"both"}'; then
    t_changed "leftover owned chains: reported as a change" true
    snap "$T_DIR/now"
    t_same "leftover owned chains and hooks removed, nothing else touched" "$T_DIR/applied" "$T_DIR/now"
fi

# a foreign rule appended into an owned chain (owned chains are replaced whole)
ipt -A DFW-INGRESS-POLICY -s 198.18.77.0/24 -j RETURN
if t_dfw_ok "foreign rule in an owned chain: run" '{"strategy":"both"}'; then
    t_changed "foreign rule in an owned chain: reported as a change" true
    snap "$T_DIR/now"
    t_same "foreign rule in an owned chain: removed" "$T_DIR/applied" "$T_DIR/now"
fi

# an owned rule deleted; DOCKER-USER flushed by someone
ipt -D DFW-INGRESS-POLICY 1
ipt6 -F DOCKER-USER
if t_dfw_ok "deleted owned rule + flushed DOCKER-USER: run" '{"strategy":"both"}'; then
    t_changed "deleted owned rule + flushed DOCKER-USER: reported as a change" true
    t_eq "IPv4 owned rules complete again" "$N4" "$(owned_count 4)"
    t_match "IPv6 hook back in DOCKER-USER" 'docker_firewall:' "$(first_rule 6 filter DOCKER-USER)"
    mapfile -t P < <(reach_specs allowed dnat 8080; reach_specs denied closed 8080)
    T_PRE="after repair: " expect_probes "${P[@]}"
fi

# Ansible's free-form forms: a comma-separated string for a list
if t_dfw_ok "families and external_interfaces as strings: run" '{"strategy":"both","families":"ipv4,ipv6","external_interfaces":"eth0"}'; then
    t_changed "string forms of the same lists: no change" false
fi

# comments with unicode and shell characters round-trip (idempotent)
# shellcheck disable=SC2016  # literal $x on purpose
for cmt in 'café ☕ äöü' 'a#b $x;c |z& <y>'; do
    o=$(jq -cn --arg c "$cmt" '{strategy:"both", ingress:{allow:[{ports:[8080], sources:["10.200.0.10","fd00:200::10"], comment:$c}]}}')
    if t_dfw_ok "comment '$cmt': apply" "$o"; then
        t_match "comment '$cmt': in iptables-save" "$(printf '%s' "$cmt" | sed 's/[][\.*^$|?+(){}]/\\&/g')" "$(ipt_save | grep -F -- "$cmt")"
        t_dfw_ok "comment '$cmt': second run" "$o" && t_changed "comment '$cmt': second run reports changed=false" false
    fi
done

# Docker not running yet at the first run (a role that sets up the firewall before Docker)
LAB_DOCKER=no t_lab_reset
new_rules_dir
if t_dfw_ok "no Docker yet: docker_user apply" '{"strategy":"docker_user"}'; then
    t_match "no Docker yet: a warning says so" 'Docker|DOCKER' "$(dfw_q '.warnings[]?')"
    lab_docker_start 2>"$T_DIR/ds.err" || not_ok "Docker starts" "$(cat "$T_DIR/ds.err")"
    mapfile -t P < <(reach_specs allowed dnat; reach_specs denied closed; outbound_specs)
    T_PRE="docker_user set up before Docker started: " expect_probes "${P[@]}"
    if t_dfw_ok "no Docker yet: run after Docker started" '{"strategy":"docker_user"}'; then
        # the docker-proxy guard learns the ports Docker now publishes
        t_changed "no Docker yet: run after Docker started reports changed=true" true
        t_dfw_ok "no Docker yet: one more run" '{"strategy":"docker_user"}' &&
            t_changed "no Docker yet: one more run reports changed=false" false
    fi
fi

t_done
