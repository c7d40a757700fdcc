#!/usr/bin/env bash
# Options beyond the defaults: backend auto, families, destination, docker_interfaces, interface
# wildcards and defaults, allow entries without ports/sources, no ingress at all, persist=false,
# diff on/off, policy changes leave no stale rules, ports Docker publishes after the run, and the
# traffic the module must not touch (containers -> host ports, host -> its own ports).
# layouts: docker20 docker28
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_need_bin
t_lab_up

# traffic that is not "outside -> published port": baseline before any module run
BASE_SPECS=(
    "c1 -> host:8443 (container to a published port)|$NS_C1|$HOST4|8443"
    "c1 -> [host]:8443 (container to a published port)|$NS_C1|$HOST6|8443"
    "host -> 127.0.0.1:8080 (host to its own port)|$NS_HOST|127.0.0.1|8080"
)
mapfile -t BASE < <(for s in "${BASE_SPECS[@]}"; do IFS='|' read -r _ ns a p <<<"$s"; echo "$ns $a $p"; done)
mapfile -t BASE_RES < <(lab_probe_many "${BASE[@]}")
# unaffected <label> — the baseline traffic behaves as before the module
unaffected() {
    local i=0 s state specs=()
    for s in "${BASE_SPECS[@]}"; do
        state=${BASE_RES[$i]%% *}
        [ "$state" = refused ] || [ "$state" = timeout ] && state=closed
        specs+=("$s|$state")
        i=$((i + 1))
    done
    T_PRE="$1: unchanged: " expect_probes "${specs[@]}"
}

# --- backend auto picks the backend that holds Docker's chains
new_rules_dir
if t_dfw_ok "backend auto: apply" '{"backend":"auto"}'; then
    t_eq "backend auto picks the backend Docker uses ($BACKEND)" "$BACKEND" "$(dfw_q .backend)"
    mapfile -t P < <(reach_specs allowed dnat 8080; reach_specs denied closed 8080)
    T_PRE="backend auto: " expect_probes "${P[@]}"
    unaffected "backend auto"
fi
t_dfw_ok "cleanup" '{"state":"absent"}'

# --- families: [ipv4] leaves IPv6 alone
new_rules_dir
ipt6_save | t_norm >"$T_DIR/v6-before"
if t_dfw_ok "families [ipv4]: apply" '{"families":["ipv4"]}'; then
    ipt6_save | t_norm >"$T_DIR/v6-after"
    t_same "families [ipv4]: ip6tables untouched" "$T_DIR/v6-before" "$T_DIR/v6-after"
    check "families [ipv4]: no rules_v6 written" test ! -e "$RULES_DIR/rules.v6"
    mapfile -t P < <(echo "denied v4 -> host:8080|$NS_DENIED|$HOST4|8080|closed"; echo "denied v6 -> host:8080|$NS_DENIED|$HOST6|8080|dnat")
    T_PRE="families [ipv4]: " expect_probes "${P[@]}"
fi
t_dfw_ok "cleanup" '{"state":"absent"}'

# --- destination: the entry applies to one host address (and only to its family)
ip -n "$NS_HOST" addr add 10.200.0.2/24 dev eth0
ip -n "$NS_HOST" addr add fd00:200::2/64 dev eth0 nodad
new_rules_dir
if t_dfw_ok "destination: apply" "{\"ingress\":{\"allow\":[{\"ports\":[8080],\"sources\":[\"$ALLOWED4\",\"$ALLOWED6\"],\"destination\":\"$HOST4\"}]}}"; then
    mapfile -t P < <(
        echo "allowed v4 -> $HOST4:8080 (the destination)|$NS_ALLOWED|$HOST4|8080|dnat"
        echo "allowed v4 -> 10.200.0.2:8080 (another host address)|$NS_ALLOWED|10.200.0.2|8080|closed"
        echo "allowed v6 -> host:8080 (destination is IPv4: no IPv6 allow)|$NS_ALLOWED|$HOST6|8080|closed"
        echo "denied v4 -> $HOST4:8080|$NS_DENIED|$HOST4|8080|closed")
    T_PRE="destination: " expect_probes "${P[@]}"
fi
t_dfw_ok "cleanup" '{"state":"absent"}'
ip -n "$NS_HOST" addr del 10.200.0.2/24 dev eth0
ip -n "$NS_HOST" addr del fd00:200::2/64 dev eth0

# --- docker_interfaces is a floor: bridges Docker uses are guarded even when not listed
new_rules_dir
if t_dfw_ok "docker_interfaces [docker0]: apply" '{"docker_interfaces":["docker0"]}'; then
    mapfile -t P < <(reach_specs denied closed 8080; reach_specs denied closed 8443)
    T_PRE="docker_interfaces [docker0] (Docker's other bridge still guarded): " expect_probes "${P[@]}"
fi
t_dfw_ok "cleanup" '{"state":"absent"}'

# --- interface wildcard, and the default (interfaces holding a default route)
for variant in '{"external_interfaces":["eth+"]}|external_interfaces [eth+]' '{"external_interfaces":null}|external_interfaces omitted'; do
    IFS='|' read -r o label <<<"$variant"
    new_rules_dir
    if t_dfw_ok "$label: apply" "$o"; then
        mapfile -t P < <(reach_specs allowed dnat 8080; reach_specs denied closed 8080)
        T_PRE="$label: " expect_probes "${P[@]}"
    fi
    t_dfw_ok "cleanup" '{"state":"absent"}'
done

# --- allow entries without ports (all ports) / without sources (anyone); no ingress at all
new_rules_dir
if t_dfw_ok "allow without ports: apply" "{\"ingress\":{\"allow\":[{\"sources\":[\"$ALLOWED4\",\"$ALLOWED6\"]}]}}"; then
    mapfile -t P < <(reach_specs allowed dnat; reach_specs denied closed)
    T_PRE="allow without ports: " expect_probes "${P[@]}"
fi
if t_dfw_ok "allow without sources: apply" '{"ingress":{"allow":[{"ports":[8443]}]}}'; then
    t_changed "allow without sources: a policy change reports changed" true
    mapfile -t P < <(reach_specs allowed dnat 8443; reach_specs denied dnat 8443; reach_specs allowed closed 8080)
    T_PRE="allow without sources: " expect_probes "${P[@]}"
    for fam in 4 6; do
        t_eq "allow without sources: IPv$fam no stale owned rules after the policy change" \
            "$(dfw_q ".rules.ipv$fam" | grep -c 'docker_firewall:')" "$(lab_xt "$NS_HOST" "$fam" save | grep -c 'docker_firewall:')"
    done
fi
if t_dfw_ok "no ingress: apply" '{"ingress":null}'; then
    mapfile -t P < <(reach_specs allowed closed; reach_specs denied closed; outbound_specs)
    T_PRE="no ingress: " expect_probes "${P[@]}"
    unaffected "no ingress"
fi
t_dfw_ok "cleanup" '{"state":"absent"}'

# --- persist=false: no files; diff only with _ansible_diff
new_rules_dir
if t_dfw_ok "persist false: apply" '{"persist":false,"_ansible_diff":false}'; then
    t_eq "persist false: no rules files" "" "$(ls -A "$RULES_DIR")"
    t_eq "persist false: persisted is empty" 0 "$(dfw_q '.persisted // [] | length')"
    t_eq "_ansible_diff false: no diff returned" null "$(dfw_q '.diff')"
fi
t_dfw_ok "cleanup" '{"state":"absent","persist":false}'
new_rules_dir
if t_dfw_ok "check mode + diff: runs" '{"_ansible_check_mode":true,"_ansible_diff":true}'; then
    t_match "check mode + diff: a diff with before/after" 'after' "$(dfw_q '.diff | tostring')"
    jq -S '.rules' "$DFW_OUT" >"$T_DIR/planned-rules"
    if t_dfw_ok "apply after the check-mode preview" '{}'; then
        jq -S '.rules' "$DFW_OUT" >"$T_DIR/applied-rules"
        t_same "check mode predicts exactly the rules the real run leaves" "$T_DIR/planned-rules" "$T_DIR/applied-rules"
    fi
fi

# --- a user-defined network with a custom bridge name (com.docker.network.bridge.name=dockernet1)
saved_br2=$LAB_BR2
LAB_BR2=dockernet1
t_lab_reset
new_rules_dir
if t_dfw_ok "custom bridge name: apply with the defaults" '{}'; then
    mapfile -t P < <(reach_specs allowed dnat; reach_specs denied closed; outbound_specs)
    T_PRE="custom bridge name dockernet1: " expect_probes "${P[@]}"
fi
LAB_BR2=$saved_br2

# --- a port Docker publishes after the run
for strategy in docker_user prerouting; do
    t_lab_reset
    new_rules_dir
    t_dfw_ok "$strategy, new port: apply" "{\"strategy\":\"$strategy\"}" || continue
    publish_9090_like_docker
    if [ "$strategy" = docker_user ]; then
        mapfile -t P < <(reach_specs denied closed 9090)
        T_PRE="$strategy, port published after the run: " expect_probes "${P[@]}"
    else
        # documented limitation: prerouting alone gates the ports published at the time of the run
        mapfile -t P < <(reach_specs denied dnat 9090)
        T_PRE="$strategy, port published after the run (documented gap, Docker's DNAT serves): " expect_probes "${P[@]}"
    fi
    if t_dfw_ok "$strategy, new port: run again" "{\"strategy\":\"$strategy\"}"; then
        # the docker-proxy guard (every strategy) and the gate learn the new port
        t_changed "$strategy: a newly published port makes the run report changed=true" true
        mapfile -t P < <(reach_specs denied closed 9090; reach_specs allowed closed 9090)
        T_PRE="$strategy, new port after a re-run: " expect_probes "${P[@]}"
        t_dfw_ok "$strategy, new port: third run" "{\"strategy\":\"$strategy\"}" &&
            t_changed "$strategy: the run after that reports changed=false" false
    fi
done

t_done
