#!/usr/bin/env bash
# Counters kept: a run that changes one rule of an owned chain leaves the packet counters of the
# rules that did not change as they were (audit rollouts are read from them), and the counters of
# every foreign rule too. Real packets make the counts.
# layouts: docker20
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_need_bin
t_lab_up

# counters <4|6> — "[packets:bytes] rule" for every owned rule of DFW-INGRESS-POLICY
counters() { lab_xt "$NS_HOST" "$1" save -c -t filter | grep -E -- '^\[[0-9]+:[0-9]+\] -A DFW-INGRESS-POLICY '; }
# count_of <4|6> <ERE> — the packet count of the first DFW-INGRESS-POLICY rule matching ERE
count_of() { counters "$1" | grep -E -m1 -- "$2" | sed -E 's/^\[([0-9]+):.*/\1/'; }

t_dfw_ok "apply" '{"audit": true}'
# Traffic for the allowed rule of 8080 and for the audit-logged deny path, both families.
for fam in 4 6; do
    if [ "$fam" = 4 ]; then h=$HOST4; else h=$HOST6; fi
    for _ in 1 2 3; do
        probe_tcp "$NS_ALLOWED" "$h" 8080 >/dev/null
        probe_tcp "$NS_DENIED" "$h" 8443 >/dev/null
    done
done
before4=$(counters 4)
before6=$(counters 6)
allowed4=$(count_of 4 'ctorigdstport 8080 ')
allowed6=$(count_of 6 'ctorigdstport 8080 ')
foreign_before=$(lab_xt "$NS_HOST" 4 save -c | t_unowned | grep -v '^#')
check "traffic was counted on the 8080 allow rule (IPv4: ${allowed4:-none}, IPv6: ${allowed6:-none})" \
    test "${allowed4:-0}" -gt 0 -a "${allowed6:-0}" -gt 0

# One entry changes: a second source for 8443. Only that rule may lose its count.
t_dfw_ok "change one entry" "$(jq -nc --arg d4 "$DENIED4" --arg d6 "$DENIED6" --arg a4 "$ALLOWED4" --arg a6 "$ALLOWED6" '{
    audit: true,
    ingress: {default: "drop", allow: [
        {ports: [8080], proto: "tcp", sources: [$a4, $a6], comment: "web from allowed"},
        {ports: ["8400-8500"], proto: "tcp", sources: [($a4 + "/32"), ($a6 + "/128"), "198.18.5.0/24", "fd00:5::/64"]},
        {ports: [8080, 8443], proto: "udp", sources: [$d4, $d6]}]}}')"
t_changed "the change is applied" true
t_match "the plan edits the chain instead of rewriting it" 'edit chain DFW-INGRESS-POLICY' "$(dfw_q '.plan.ipv4 | join("; ")')"
t_eq "IPv4: the 8080 allow rule kept its count" "$allowed4" "$(count_of 4 'ctorigdstport 8080 ')"
t_eq "IPv6: the 8080 allow rule kept its count" "$allowed6" "$(count_of 6 'ctorigdstport 8080 ')"
# Every rule that is in both the old and the new chain kept its counters.
for fam in 4 6; do
    if [ "$fam" = 4 ]; then old=$before4; else old=$before6; fi
    lost=$(comm -23 <(sort <<<"$old") <(counters "$fam" | sort) |
        grep -v -e '198.18.5.0' -e 'fd00:5::' | while IFS= read -r line; do
            rule=${line#* }
            counters "$fam" | grep -qF -- " $rule" && echo "$line"
        done)
    t_eq "IPv$fam: no unchanged rule lost its counters" "" "$lost"
done
foreign_after=$(lab_xt "$NS_HOST" 4 save -c | t_unowned | grep -v '^#')
t_eq "foreign rules untouched" "$(t_norm <<<"$foreign_before")" "$(t_norm <<<"$foreign_after")"
# Traffic goes on meanwhile (neighbour discovery, the lab's own probes): counts may grow, never reset.
reset=$(paste -d'\n' <(grep -E '^\[' <<<"$foreign_before") <(grep -E '^\[' <<<"$foreign_after") |
    paste - - | awk -F'\t' '{ split($1, a, /[][:]/); split($2, b, /[][:]/); if (b[2] + 0 < a[2] + 0) print }')
t_eq "no foreign rule's counters were reset" "" "$reset"
t_dfw_ok "again" "$(jq -c 'del(._ansible_check_mode)' "$DFW_ARGS")"
t_changed "second run changes nothing" false
t_done
