#!/usr/bin/env bash
# (c) Rules of other tools (an admin rule in DOCKER-USER, INPUT rules, a ufw-like chain pair, nat and
# mangle rules) survive every run byte for byte, in order. When someone inserts a rule above our hook
# (as Docker does with its jumps on restart), the next run reports changed and puts the hook first
# again. A simulated Docker restart keeps the protection and needs no change.
# layouts: docker20 docker28
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_need_bin
t_lab_up
lab_foreign_rules || not_ok "foreign rules added"

snap "$T_DIR/pristine"
t_unowned <"$T_DIR/pristine" >"$T_DIR/U0"
lab_foreign_lines 4 >"$T_DIR/F4"
lab_foreign_lines 6 >"$T_DIR/F6"
check "lab has foreign rules to protect" test "$(wc -l <"$T_DIR/F4")" -ge 8

# foreign_intact <label> — every non-owned line identical and in order, foreign rules identical
foreign_intact() {
    snap "$T_DIR/now"
    t_unowned <"$T_DIR/now" >"$T_DIR/U1"
    t_same "$1: every rule the module does not own is unchanged, in order" "$T_DIR/U0" "$T_DIR/U1"
    lab_foreign_lines 4 >"$T_DIR/F4now"
    lab_foreign_lines 6 >"$T_DIR/F6now"
    t_same "$1: IPv4 foreign rules byte for byte" "$T_DIR/F4" "$T_DIR/F4now"
    t_same "$1: IPv6 foreign rules byte for byte" "$T_DIR/F6" "$T_DIR/F6now"
}
# hooks_first <label> <strategy>
hooks_first() {
    local fam
    for fam in 4 6; do
        case $2 in docker_user | both)
            t_match "$1: IPv$fam our hook is the first rule of DOCKER-USER" 'docker_firewall:' "$(first_rule "$fam" filter DOCKER-USER)" ;;
        esac
        case $2 in prerouting | both)
            t_match "$1: IPv$fam our hook is the first rule of nat PREROUTING" 'docker_firewall:' "$(first_rule "$fam" nat PREROUTING)"
            t_match "$1: IPv$fam our hook is the first rule of INPUT" 'docker_firewall:' "$(first_rule "$fam" filter INPUT)" ;;
        esac
    done
}
# intruders add|del — rules inserted at the top of DOCKER-USER, nat PREROUTING and INPUT
intruders() {
    local fam net op=(-D) t c
    [ "$1" = add ] && op=(-I)
    local pos=()
    for fam in 4 6; do
        [ "$fam" = 6 ] && net=fd00:298::/64 || net=198.18.98.0/24
        for t in filter:DOCKER-USER nat:PREROUTING filter:INPUT; do
            c=${t#*:}
            pos=()
            [ "$1" = add ] && pos=(1)
            ipt_fam "$fam" -t "${t%%:*}" "${op[@]}" "$c" "${pos[@]}" -s "$net" \
                -m comment --comment "intruder: above the hook" -j RETURN
        done
    done
}

for strategy in docker_user prerouting both; do
    S="{\"strategy\":\"$strategy\"}"
    new_rules_dir
    t_dfw_ok "$strategy: present" "$S" || continue
    foreign_intact "$strategy present"
    hooks_first "$strategy present" "$strategy"

    intruders add
    lab_xt "$NS_HOST" 4 save | grep -c 'intruder:' >"$T_DIR/n_intruders"
    if t_dfw_ok "$strategy: run after rules were inserted above our hooks" "$S"; then
        t_changed "$strategy: a rule above our hook makes the run report changed" true
        hooks_first "$strategy after intruders" "$strategy"
        t_eq "$strategy: the inserted rules are kept" "$(cat "$T_DIR/n_intruders")" "$(lab_xt "$NS_HOST" 4 save | grep -c 'intruder:')"
        for fam in 4 6; do
            case $strategy in docker_user | both)
                t_match "$strategy: IPv$fam the inserted DOCKER-USER rule is now second" 'intruder:' \
                    "$(chain_rules "$fam" filter DOCKER-USER | sed -n 2p)" ;;
            esac
        done
    fi
    if t_dfw_ok "$strategy: run again" "$S"; then
        t_changed "$strategy: run again reports changed=false" false
    fi
    intruders del
    foreign_intact "$strategy after intruders left"

    # a Docker restart: Docker's chains rebuilt, FORWARD -> DOCKER-USER first again, nat jump re-appended
    if lab_docker_start 2>"$T_DIR/restart.err"; then
        foreign_intact "$strategy after Docker restart"
        hooks_first "$strategy after Docker restart" "$strategy"
        mapfile -t P < <(reach_specs allowed dnat 8080; reach_specs denied closed 8080)
        T_PRE="$strategy after Docker restart: " expect_probes "${P[@]}"
        if t_dfw_ok "$strategy: run after Docker restart" "$S"; then
            t_changed "$strategy: run after Docker restart reports changed=false" false
        fi
    else
        not_ok "$strategy: simulated Docker restart" "$(cat "$T_DIR/restart.err")"
    fi

    if t_dfw_ok "$strategy: absent" '{"state":"absent"}'; then
        foreign_intact "$strategy absent"
        snap "$T_DIR/after-absent"
        t_same "$strategy: absent restores iptables-save exactly" "$T_DIR/pristine" "$T_DIR/after-absent"
    fi
done

t_done
