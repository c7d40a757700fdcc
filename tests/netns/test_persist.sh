#!/usr/bin/env bash
# (e) Persistence: the rules files pass iptables-restore --test in an empty namespace; restoring them
# in a fresh host BEFORE Docker's rules exist (as netfilter-persistent does at boot), then starting
# Docker (chains created if missing, FORWARD -> DOCKER-USER first, per-container rules added) gives
# the same protection, and the next module run changes nothing. An existing rules file keeps its
# other content, and that content still works after a restore.
# layouts: docker20 docker28
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_need_bin

# boot_with <label> <strategy> — a fresh host without Docker's rules; restore the rules files
# (full restore, as at boot), then Docker starts; probe; run the module again
boot_with() {
    local label=$1 strategy=$2 fam
    lab_down
    LAB_DOCKER=no t_lab_up
    for fam in 4 6; do
        if lab_xt "$NS_HOST" "$fam" restore <"$RULES_DIR/rules.v$fam" 2>"$T_DIR/restore.err"; then
            ok "$label: rules.v$fam restores on a fresh host (no Docker chains yet)"
        else
            not_ok "$label: rules.v$fam restores on a fresh host (no Docker chains yet)" "$(cat "$T_DIR/restore.err")"
        fi
    done
    if ! lab_docker_start 2>"$T_DIR/dstart.err"; then
        not_ok "$label: Docker starts after the restore" "$(cat "$T_DIR/dstart.err")" "$(ipt_save)"
        return 1
    fi
    ok "$label: Docker starts after the restore"
    mapfile -t P < <(reach_specs allowed dnat; reach_specs denied closed; outbound_specs)
    T_PRE="$label, after boot: " expect_probes "${P[@]}"
    lab_proxy off
    mapfile -t P < <(reach_specs denied closed 8080)
    T_PRE="$label, after boot, proxy off: " expect_probes "${P[@]}"
    lab_proxy on
    for fam in 4 6; do
        case $strategy in docker_user | both)
            t_match "$label: IPv$fam our hook is the first rule of DOCKER-USER after boot" 'docker_firewall:' "$(first_rule "$fam" filter DOCKER-USER)"
            t_eq "$label: IPv$fam exactly one hook in DOCKER-USER after boot" 1 "$(chain_rules "$fam" filter DOCKER-USER | grep -c 'docker_firewall:')" ;;
        esac
        case $strategy in prerouting | both)
            t_match "$label: IPv$fam our hook is the first rule of nat PREROUTING after boot" 'docker_firewall:' "$(first_rule "$fam" nat PREROUTING)"
            t_eq "$label: IPv$fam exactly one hook in nat PREROUTING after boot" 1 "$(chain_rules "$fam" nat PREROUTING | grep -c 'docker_firewall:')" ;;
        esac
    done
    files_state "$RULES_DIR/rules.v4" "$RULES_DIR/rules.v6" >"$T_DIR/files-boot"
    if t_dfw_ok "$label: module run after boot" "{\"strategy\":\"$strategy\"}"; then
        t_changed "$label: module run after boot reports changed=false" false
        files_state "$RULES_DIR/rules.v4" "$RULES_DIR/rules.v6" >"$T_DIR/files-boot2"
        t_same "$label: module run after boot leaves the rules files alone" "$T_DIR/files-boot" "$T_DIR/files-boot2"
    fi
}

for strategy in docker_user prerouting both; do
    t_lab_reset
    lab_empty_ns empty && EMPTY=$LAB_EMPTY_NS
    new_rules_dir
    t_dfw_ok "$strategy: apply with persist" "{\"strategy\":\"$strategy\"}" || continue
    for fam in 4 6; do
        f=$RULES_DIR/rules.v$fam
        if [ ! -s "$f" ]; then not_ok "$strategy: rules.v$fam written"; continue; fi
        if lab_xt "$EMPTY" "$fam" restore --test <"$f" 2>"$T_DIR/test.err"; then
            ok "$strategy: rules.v$fam passes iptables-restore --test in an empty namespace"
        else
            not_ok "$strategy: rules.v$fam passes iptables-restore --test in an empty namespace" "$(cat "$T_DIR/test.err")" "$(cat "$f")"
        fi
        t_eq "$strategy: persisted lists rules_v$fam" true "$(dfw_q "[.persisted[]?] | index(\"$f\") != null")"
    done
    boot_with "$strategy" "$strategy"
done

# an existing rules file (an admin's own rules) keeps its content, and it still applies after a restore
lab_down
t_lab_up
lab_empty_ns empty && EMPTY=$LAB_EMPTY_NS
new_rules_dir
for fam in 4 6; do
    [ "$fam" = 6 ] && net=fd00:297::/64 || net=198.18.97.0/24
    cat >"$RULES_DIR/rules.v$fam" <<EOF
# admin rules, saved by hand
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -m comment --comment "admin: ssh" -j ACCEPT
-A INPUT -s $net -m comment --comment "admin: block" -j DROP
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -s $net -m comment --comment "admin: mark" -j MARK --set-xmark 0x2/0xffffffff
COMMIT
EOF
    cp "$RULES_DIR/rules.v$fam" "$T_DIR/admin.v$fam"
done
if t_dfw_ok "existing rules file: apply" '{"strategy":"both"}'; then
    for fam in 4 6; do
        f=$RULES_DIR/rules.v$fam
        missing=$(grep -vxF -f "$f" "$T_DIR/admin.v$fam")
        t_eq "existing rules.v$fam: every line of the admin's content is kept" "" "$missing"
        if lab_xt "$EMPTY" "$fam" restore <"$f" 2>"$T_DIR/r.err"; then
            ok "existing rules.v$fam: the merged file restores"
            n=$(lab_xt "$EMPTY" "$fam" save | grep -c 'admin:')
            t_eq "existing rules.v$fam: after a restore the admin's 3 rules are live" 3 "$n" "$(lab_xt "$EMPTY" "$fam" save)" "file:" "$(cat "$f")"
            n=$(lab_xt "$EMPTY" "$fam" save | grep -c 'docker_firewall:')
            t_eq "existing rules.v$fam: after a restore our rules are live" "$(dfw_q ".rules.ipv$fam" | grep -c 'docker_firewall:')" "$n"
        else
            not_ok "existing rules.v$fam: the merged file restores" "$(cat "$T_DIR/r.err")" "$(cat "$f")"
        fi
    done
    if t_dfw_ok "existing rules file: second run" '{"strategy":"both"}'; then
        t_changed "existing rules file: second run reports changed=false" false
    fi
fi

# the rules file is a full "netfilter-persistent save" of the protected host (Docker's rules and
# ours included), then the module runs again and the host reboots
lab_down
t_lab_up
new_rules_dir
if t_dfw_ok "full-save rules file: apply" '{"strategy":"both"}'; then
    ipt_save >"$RULES_DIR/rules.v4"
    ipt6_save >"$RULES_DIR/rules.v6"
    if t_dfw_ok "full-save rules file: run on top of a full save" '{"strategy":"both"}'; then
        t_changed "full-save rules file: run on top of a full save reports changed (block added)" true
    fi
    boot_with "full-save rules file" both
fi

t_done
