#!/usr/bin/env bash
# (d) Bad input fails with failed=true and a msg naming the field, and changes nothing: iptables-save
# and the rules files stay as they were. Inputs Ansible itself may send (unknown _ansible_* keys,
# strings for ints/bools) are accepted.
# layouts: docker20
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_need_bin
t_lab_up

# a fresh host: a bad run creates nothing
snap "$T_DIR/s0"
if dfw '{"ingress":{"allow":[{"ports":[70000]}]}}'; then
    t_eq "fresh host, bad port: failed" true "$(dfw_q .failed)" "$(dfw_show)"
    snap "$T_DIR/s1"
    t_same "fresh host, bad port: iptables-save unchanged" "$T_DIR/s0" "$T_DIR/s1"
    t_eq "fresh host, bad port: no rules files written" "" "$(ls -A "$RULES_DIR")"
else
    not_ok "fresh host, bad port: one JSON object on stdout" "$(dfw_show)"
fi

# an applied host
t_dfw_ok "valid configuration applied" '{"strategy":"both"}'
snap "$T_DIR/applied"
files_state "$RULES_DIR/rules.v4" "$RULES_DIR/rules.v6" >"$T_DIR/files-applied"

long=$(printf 'x%.0s' $(seq 1 201))
# name | override JSON | ERE the msg must match (case-insensitive)
cases=(
    'bad IPv4 source|{"ingress":{"allow":[{"ports":[8080],"sources":["987.65.432.1"]}]}}|sources'
    'source prefix /33|{"ingress":{"allow":[{"ports":[8080],"sources":["10.0.0.0/33"]}]}}|sources'
    'bad IPv6 source|{"ingress":{"allow":[{"ports":[8080],"sources":["fd00:200::zz"]}]}}|sources'
    'empty sources|{"ingress":{"allow":[{"ports":[8080],"sources":[]}]}}|sources'
    'port 70000|{"ingress":{"allow":[{"ports":[70000]}]}}|ports'
    'port 0|{"ingress":{"allow":[{"ports":[0]}]}}|ports'
    'port not a number|{"ingress":{"allow":[{"ports":["http"]}]}}|ports'
    'reversed range 9000-8000|{"ingress":{"allow":[{"ports":["9000-8000"]}]}}|ports|9000-8000'
    'valid entry then a bad one|{"ingress":{"allow":[{"ports":[8081]},{"ports":[70000]}]}}|ports'
    'unknown top-level key|{"bogus_key":1}|bogus_key'
    'unknown key in ingress|{"ingress":{"bogus":1}}|bogus'
    'unknown key in an allow entry|{"ingress":{"allow":[{"ports":[8080],"prot":"tcp"}]}}|prot'
    'external interface longer than 15 chars|{"external_interfaces":["eth0-waytoolong0"]}|external_interfaces'
    'docker interface longer than 15 chars|{"docker_interfaces":["br-0123456789abcd"]}|docker_interfaces'
    'interface name with a space|{"external_interfaces":["eth 0"]}|external_interfaces'
    'comment with a single quote|{"ingress":{"allow":[{"ports":[8080],"comment":"it'"'"'s"}]}}|comment'
    'comment with a double quote|{"ingress":{"allow":[{"ports":[8080],"comment":"say \"hi\""}]}}|comment'
    "comment longer than 200 chars|{\"ingress\":{\"allow\":[{\"ports\":[8080],\"comment\":\"$long\"}]}}|comment"
    'proto icmp|{"ingress":{"allow":[{"ports":[8080],"proto":"icmp"}]}}|proto'
    'destination is a network|{"ingress":{"allow":[{"ports":[8080],"destination":"10.200.0.0/24"}]}}|destination'
    'strategy unknown|{"strategy":"nat"}|strategy'
    'ingress.default accept|{"ingress":{"default":"accept"}}|default'
    'state unknown|{"state":"gone"}|state'
    'families ipv5|{"families":["ipv5"]}|families'
    'backend unknown|{"backend":"ebtables"}|backend'
    'persist not a bool|{"persist":"maybe"}|persist'
    'ingress.allow not a list|{"ingress":{"allow":"8080"}}|allow'
    'rules_v4 equals rules_v6|{"rules_v6":"'"$RULES_DIR"'/rules.v4"}|rules_v'
)
for c in "${cases[@]}"; do
    IFS='|' read -r name override re <<<"$c"
    if ! dfw "$override"; then
        not_ok "$name: one JSON object on stdout" "$(dfw_show)"
        continue
    fi
    if [ "$(dfw_q .failed)" = true ]; then
        ok "$name: failed=true"
        if grep -Eiq -- "$re" <<<"$(dfw_q .msg)"; then ok "$name: msg names the field"; else not_ok "$name: msg names the field (/$re/)" "msg: $(dfw_q .msg)"; fi
        t_eq "$name: changed=false" false "$(dfw_q '.changed // false')"
    else
        not_ok "$name: failed=true" "$(dfw_show)"
    fi
    snap "$T_DIR/now"
    t_same "$name: iptables-save unchanged" "$T_DIR/applied" "$T_DIR/now"
    files_state "$RULES_DIR/rules.v4" "$RULES_DIR/rules.v6" >"$T_DIR/files-now"
    t_same "$name: rules files unchanged" "$T_DIR/files-applied" "$T_DIR/files-now"
done

# what Ansible may send is accepted (checked in check mode, so nothing changes)
good=(
    'an unknown _ansible_ key|{"_ansible_future_option":true}'
    'ports given as strings|{"ingress":{"allow":[{"ports":["8080","8443"],"sources":["10.200.0.10"]}]}}'
    'booleans as strings|{"persist":"yes","_ansible_diff":"no"}'
    'families given explicitly|{"families":["ipv4","ipv6"]}'
)
for c in "${good[@]}"; do
    IFS='|' read -r name override <<<"$c"
    o=$(jq -c '. + {"_ansible_check_mode": true, "strategy": "both"}' <<<"$override")
    if dfw "$o" && [ "$(dfw_q '.failed // false')" = false ]; then ok "$name: accepted"; else not_ok "$name: accepted" "$(dfw_show)"; fi
    snap "$T_DIR/now"
    t_same "$name (check mode): iptables-save unchanged" "$T_DIR/applied" "$T_DIR/now"
done

t_done
