#!/usr/bin/env bash
# (a) For each strategy: the allowed client reaches the published ports (IPv4, IPv6, both bridges),
# the denied one does not, with the docker-proxy-like listener on and off; containers still reach
# out; a second run changes nothing and runs no iptables-restore; check mode changes nothing.
# layouts: docker20 docker28
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_need_bin

for strategy in docker_user prerouting both; do
    t_lab_reset
    new_rules_dir
    S="{\"strategy\":\"$strategy\"}"
    SC="{\"strategy\":\"$strategy\",\"_ansible_check_mode\":true}"

    # check mode on a fresh lab: changed=true, nothing touched, no rules files
    snap "$T_DIR/s0"
    if t_dfw_ok "$strategy: check mode on a fresh lab runs" "$SC"; then
        t_changed "$strategy: check mode on a fresh lab reports changed" true
        snap "$T_DIR/s1"
        t_same "$strategy: check mode leaves iptables-save identical" "$T_DIR/s0" "$T_DIR/s1"
        t_eq "$strategy: check mode writes no rules files" "" "$(ls -A "$RULES_DIR")"
        t_eq "$strategy: check mode runs no iptables-restore" 0 "$(dfw_restores)" "$(dfw_show)"
        t_match "$strategy: check mode returns a plan" '[^[:space:]]' "$(dfw_q '.plan.ipv4[]?')"
    fi

    # apply
    if ! t_dfw_ok "$strategy: apply" "$S"; then
        diag "$(ipt_save)"
        continue
    fi
    t_changed "$strategy: first run reports changed" true
    check "$strategy: rules_v4 written" test -s "$RULES_DIR/rules.v4"
    check "$strategy: rules_v6 written" test -s "$RULES_DIR/rules.v6"
    t_eq "$strategy: reported backend" "$BACKEND" "$(dfw_q .backend)"
    snap "$T_DIR/applied"

    # reachability, docker-proxy on
    mapfile -t P < <(reach_specs allowed dnat; reach_specs denied closed; outbound_specs)
    T_PRE="$strategy, proxy on: " expect_probes "${P[@]}"
    # and off
    lab_proxy off
    mapfile -t P < <(reach_specs allowed dnat; reach_specs denied closed; outbound_specs)
    T_PRE="$strategy, proxy off: " expect_probes "${P[@]}"
    lab_proxy on

    # second run: no change, nothing written
    if t_dfw_ok "$strategy: second run" "$S"; then
        t_changed "$strategy: second run reports changed=false" false
        snap "$T_DIR/again"
        t_same "$strategy: second run leaves iptables-save identical" "$T_DIR/applied" "$T_DIR/again"
        if dfw_tools_seen; then
            t_eq "$strategy: second run runs no iptables-restore" 0 "$(dfw_restores)" "$(dfw_show)"
        else
            ok "$strategy: second run runs no iptables-restore (not observable: module bypasses PATH) # SKIP"
        fi
        t_eq "$strategy: second run plans nothing" "" "$(dfw_q '(.plan.ipv4 // []) + (.plan.ipv6 // []) | .[]')"
    fi

    # check mode on the applied lab: changed=false, nothing touched
    if t_dfw_ok "$strategy: check mode on the applied lab runs" "$SC"; then
        t_changed "$strategy: check mode on the applied lab reports changed=false" false
        snap "$T_DIR/again2"
        t_same "$strategy: check mode on the applied lab leaves iptables-save identical" "$T_DIR/applied" "$T_DIR/again2"
    fi

    # the module's own report of the rules matches what is live
    for fam in 4 6; do
        key=ipv$fam
        live=$(lab_xt "$NS_HOST" "$fam" save | grep -c 'docker_firewall:')
        rep=$(dfw_q ".rules.$key // \"\"" | grep -c 'docker_firewall:')
        t_eq "$strategy: result rules.$key lists every owned rule that is live" "$live" "$rep"
    done
done

t_done
