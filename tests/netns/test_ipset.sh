#!/usr/bin/env bash
# (ipset) An allow entry of 150 sources per family on the iptables dataplane matches them with one
# hash:net ipset per family: the allowed client (one of the 150) connects and the stranger does not,
# IPv4 and IPv6; a second run and check mode write nothing; membership changes swap a full set in
# (an allowed client probing throughout is never refused) and leave the rules alone; removing the
# client refuses it; the sets file then the rules files load into an empty namespace as at boot;
# absent leaves iptables-save and ipset save as before; another tool's set is never dumped nor touched.
# layouts: docker28
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_need_bin
t_lab_up

# ipset through a logging wrapper too, so dfw_restores counts "ipset restore"
printf '#!/bin/sh\necho "ipset $*" >>"%s"\nexec /usr/sbin/ipset "$@"\n' "$T_XTLOG" >"$T_WRAP/ipset"
chmod +x "$T_WRAP/ipset"
sets_save() { ip netns exec "$NS_HOST" ipset save | sed -E 's/ initval 0x[0-9a-f]+//'; }
set_members() { ip netns exec "$NS_HOST" ipset list "$1" 2>/dev/null | sed -n 's/^Number of entries: //p'; }
SETS_FILE=$RULES_DIR/ipsets

# allow_override <client4|-> <client6|-> [skip-filler] — 8080 for the client plus fillers (149 a
# family with the client, 150 without), sets file in the rules directory
allow_override() {
    local c4=$1 c6=$2 skip=${3:-0}
    jq -nc --arg c4 "$c4" --arg c6 "$c6" --argjson skip "$skip" --arg f "$SETS_FILE" '
        [range(1; 151) | select(. != $skip)] as $n
        | ([$n[] | "198.18.\(. / 100 | floor).\(. % 100 + 1)"] | if $c4 == "-" then . else .[1:] + [$c4] end) as $v4
        | ([$n[] | "fd00:299::\(.)"] | if $c6 == "-" then . else .[1:] + [$c6] end) as $v6
        | {ingress: {default: "drop", allow: [{ports: [8080], sources: ($v4 + $v6), comment: "many"}]},
           rules_ipset: $f}'
}
WITH_CLIENT=$(allow_override "$ALLOWED4" "$ALLOWED6")

# another tool's set: never dumped by a run (ours are saved by name), never touched
ip netns exec "$NS_HOST" ipset create blocklist hash:ip family inet
ip netns exec "$NS_HOST" ipset add blocklist 203.0.113.9
snap "$T_DIR/pristine"
sets_save >"$T_DIR/sets-pristine"

if t_dfw_ok "apply a 150-source entry" "$WITH_CLIENT"; then
    t_changed "apply reports changed" true
    t_eq "the run saves our sets by name, never every set" "0 2" \
        "$(grep -cx 'ipset save' "$T_XTLOG") $(grep -c '^ipset save dfw-allow-0-v[46]$' "$T_XTLOG")" "$(cat "$T_XTLOG")"
    t_eq "IPv4 set holds 150 members" 150 "$(set_members dfw-allow-0-v4)"
    t_eq "IPv6 set holds 150 members" 150 "$(set_members dfw-allow-0-v6)"
    for fam in 4 6; do
        policy=$(chain_rules "$fam" filter DFW-INGRESS-POLICY)
        t_eq "IPv$fam one set rule instead of 150 source rules" 1 "$(grep -c -- "--match-set dfw-allow-0-v$fam src" <<<"$policy")" "$policy"
        t_eq "IPv$fam no rule per source" 0 "$(grep -c -- '^-A DFW-INGRESS-POLICY -s ' <<<"$policy")"
    done
fi
for fam in 4 6; do
    row=$(dfw_q "[.exposure.ports[] | select(.family == \"ipv$fam\" and .host_port == 8080)][0]")
    [ "$fam" = 6 ] && client=$ALLOWED6/128 || client=$ALLOWED4/32
    t_eq "exposure reads the IPv$fam set's members: 8080 restricted, the client among them" "restricted true" \
        "$(jq -r '"\(.verdict) \(.sources | index("'"$client"'") != null)"' <<<"$row")" "$row"
done
mapfile -t P < <(reach_specs allowed dnat 8080; reach_specs denied closed 8080)
T_PRE="with the set: " expect_probes "${P[@]}"

if t_dfw_ok "second run" "$WITH_CLIENT"; then
    t_changed "second run reports changed=false" false
    t_eq "second run writes nothing (no restore of iptables or ipset)" 0 "$(dfw_restores)" "$(dfw_show)"
fi

snap "$T_DIR/applied"
sets_save >"$T_DIR/sets-applied"
WITHOUT_CLIENT=$(allow_override - -)
if t_dfw_ok "check mode, client removed" "$(jq -c '. + {_ansible_check_mode: true}' <<<"$WITHOUT_CLIENT")"; then
    t_changed "check mode predicts changed" true
    t_eq "check mode writes nothing" 0 "$(dfw_restores)" "$(dfw_show)"
    sets_diff() { dfw_q ".diff[] | select(.after_header | startswith(\"ipsets\")) | .$1" | grep -cx "add dfw-allow-0-v4 $ALLOWED4"; }
    t_eq "check mode's diff shows the client leaving the IPv4 set (before, after)" "1 0" "$(sets_diff before) $(sets_diff after)"
    snap "$T_DIR/checked"
    sets_save >"$T_DIR/sets-checked"
    t_same "check mode leaves iptables-save identical" "$T_DIR/applied" "$T_DIR/checked"
    t_same "check mode leaves ipset save identical" "$T_DIR/sets-applied" "$T_DIR/sets-checked"
fi

# Membership changes while the allowed client connects again and again: a half-filled set would
# refuse it at some point.
PROBE_LOG=$T_DIR/probes.log
: >"$PROBE_LOG"
(
    end=$((SECONDS + 30))
    while [ ! -e "$T_DIR/probes.stop" ] && [ $SECONDS -lt $end ]; do
        for a in "$HOST4" "$HOST6"; do
            PROBE_TIMEOUT=1 lab_probe "$NS_ALLOWED" "$a" 8080 | cut -d' ' -f1 >>"$PROBE_LOG"
        done
    done
) &
PROBER=$!
for skip in 7 0 9 0; do
    if t_dfw_ok "membership change (filler $skip left out)" "$(allow_override "$ALLOWED4" "$ALLOWED6" "$skip")"; then
        t_changed "membership change reports changed" true
        t_eq "membership change runs ipset restore only" "1 0" \
            "$(grep -c '^ipset restore' "$T_XTLOG") $(grep -v '^ipset' "$T_XTLOG" | grep -c 'restore')" "$(dfw_show)"
    fi
done
touch "$T_DIR/probes.stop"
wait "$PROBER"
t_eq "the allowed client is never refused while the sets change ($(wc -l <"$PROBE_LOG") probes)" \
    "" "$(grep -v '^open$' "$PROBE_LOG" | sort | uniq -c | tr '\n' ' ')"

if t_dfw_ok "client removed from the sets" "$WITHOUT_CLIENT"; then
    t_changed "client removal reports changed" true
fi
mapfile -t P < <(reach_specs allowed closed 8080; reach_specs denied closed 8080)
T_PRE="client removed: " expect_probes "${P[@]}"
t_dfw_ok "client back" "$WITH_CLIENT"

# Boot: the sets file first (netfilter-persistent's ipset plugin: ipset restore -exist), then the
# rules files, into an empty namespace.
lab_empty_ns boot && BOOT=$LAB_EMPTY_NS
if ip netns exec "$BOOT" ipset restore -exist <"$SETS_FILE" 2>"$T_DIR/boot.err"; then
    ok "the sets file loads into an empty namespace"
else
    not_ok "the sets file loads into an empty namespace" "$(cat "$T_DIR/boot.err")" "$(head -5 "$SETS_FILE")"
fi
t_eq "at boot the IPv4 set holds 150 members" 150 "$(ip netns exec "$BOOT" ipset list dfw-allow-0-v4 | sed -n 's/^Number of entries: //p')"
for fam in 4 6; do
    if lab_xt "$BOOT" "$fam" restore <"$RULES_DIR/rules.v$fam" 2>"$T_DIR/boot.err"; then
        ok "rules.v$fam loads after the sets file"
    else
        not_ok "rules.v$fam loads after the sets file" "$(cat "$T_DIR/boot.err")"
    fi
done

if t_dfw_ok "absent" '{"state": "absent", "rules_ipset": "'"$SETS_FILE"'"}'; then
    t_changed "absent reports changed" true
    snap "$T_DIR/absent"
    sets_save >"$T_DIR/sets-absent"
    t_same "absent restores iptables-save exactly" "$T_DIR/pristine" "$T_DIR/absent"
    t_same "absent restores ipset save exactly" "$T_DIR/sets-pristine" "$T_DIR/sets-absent"
    t_eq "absent removes the sets file (only our block was in it)" absent "$([ -e "$SETS_FILE" ] && echo present || echo absent)"
fi
t_done
