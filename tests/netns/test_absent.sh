#!/usr/bin/env bash
# (b) state=absent after state=present restores iptables-save exactly as it was before the module
# (counters and the "# Generated/Completed" lines aside), for every strategy; absent is idempotent;
# check mode of absent changes nothing; the rules files lose the module's rules.
# layouts: docker20 docker28
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_need_bin
t_lab_up
lab_foreign_rules || not_ok "foreign rules added"

snap "$T_DIR/pristine"
for strategy in docker_user prerouting both; do
    new_rules_dir
    t_dfw_ok "$strategy: present" "{\"strategy\":\"$strategy\"}" || continue
    snap "$T_DIR/present"
    mapfile -t P < <(reach_specs denied closed 8080)
    T_PRE="$strategy present: " expect_probes "${P[@]}"

    # absent in check mode: reports a change, changes nothing
    if t_dfw_ok "$strategy: absent, check mode" '{"state":"absent","_ansible_check_mode":true}'; then
        t_changed "$strategy: absent in check mode reports changed" true
        snap "$T_DIR/absent-check"
        t_same "$strategy: absent in check mode leaves iptables-save identical" "$T_DIR/present" "$T_DIR/absent-check"
    fi

    if t_dfw_ok "$strategy: absent" '{"state":"absent"}'; then
        t_changed "$strategy: absent reports changed" true
        snap "$T_DIR/absent"
        t_same "$strategy: absent restores iptables-save exactly" "$T_DIR/pristine" "$T_DIR/absent"
        for fam in 4 6; do
            f=$RULES_DIR/rules.v$fam
            if [ -e "$f" ]; then
                t_eq "$strategy: rules.v$fam holds no docker_firewall rules after absent" 0 "$(grep -c 'docker_firewall:' "$f")" "$(cat "$f")"
            else
                ok "$strategy: rules.v$fam holds no docker_firewall rules after absent (file removed)"
            fi
        done
        mapfile -t P < <(reach_specs denied dnat 8080)
        T_PRE="$strategy absent: " expect_probes "${P[@]}"
    fi
    if t_dfw_ok "$strategy: absent again" '{"state":"absent"}'; then
        t_changed "$strategy: absent again reports changed=false" false
        snap "$T_DIR/absent2"
        t_same "$strategy: absent again leaves iptables-save identical" "$T_DIR/pristine" "$T_DIR/absent2"
        t_eq "$strategy: absent again runs no iptables-restore" 0 "$(dfw_restores)" "$(dfw_show)"
    fi
done

# absent on a host that never saw the module: no change, nothing written
new_rules_dir
if t_dfw_ok "absent on a pristine host" '{"state":"absent"}'; then
    t_changed "absent on a pristine host reports changed=false" false
    t_eq "absent on a pristine host creates no rules files" "" "$(ls -A "$RULES_DIR")"
fi

t_done
