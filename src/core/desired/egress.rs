//! Egress: containers to private ranges and to the host itself, with `egress.allow` exceptions.

use super::REPLIES;
use super::logging::log_rule;
use crate::core::names::{EGRESS, EGRESS_DENY, EGRESS_POLICY, HOST_GUARD, HOST_POLICY};
use crate::core::owned::DesiredState;
use crate::core::policy::{Config, EgressAllow, Family};
use crate::core::rule::{Rule, RuleBuilder};

/// ICMPv6 a container must exchange with the host: MLD query/report/done, router and neighbour
/// solicitation/advertisement, MLDv2 report.
const IPV6_LINK_CONTROL: [u8; 8] = [130, 131, 132, 133, 134, 135, 136, 143];

/// Containers may not open connections to private ranges (FORWARD, via DOCKER-USER) or to the
/// host itself (INPUT from the Docker bridges), except to `egress.allow` destinations. Traffic
/// that stays on one Docker network is never touched.
pub(super) fn add_egress(
    config: &Config,
    family: Family,
    (forward_table, forward_chain): (&str, &str),
    bridges: &[String],
    desired: &mut DesiredState,
    (forward_hooks, input_hooks): (&mut Vec<Rule>, &mut Vec<Rule>),
) {
    let egress = &config.egress;
    let mut deny = log_rule(config, EGRESS_DENY, "out", "out", family);
    if config.audit {
        deny.push(RuleBuilder::new().jump(EGRESS_DENY, "RETURN"));
    } else {
        deny.push(RuleBuilder::new().jump(EGRESS_DENY, "DROP"));
    }
    if egress.deny_private {
        let table = desired.table_mut(forward_table);
        table.chains.insert(EGRESS_DENY.into(), deny.clone());
        let mut rules = vec![RuleBuilder::new().matching(REPLIES).jump(EGRESS, "RETURN")];
        for bridge in bridges {
            rules.push(
                RuleBuilder::new()
                    .in_interface(bridge)
                    .out_interface(bridge)
                    .jump(EGRESS, "RETURN"),
            );
        }
        for bridge in bridges {
            rules.push(
                RuleBuilder::new()
                    .in_interface(bridge)
                    .jump(EGRESS, EGRESS_POLICY),
            );
        }
        let mut policy = egress_allow_rules(EGRESS_POLICY, family, &egress.allow);
        for range in egress.private_ranges.iter().filter(|r| family.holds(r)) {
            policy.push(
                RuleBuilder::new()
                    .destination(range.to_string())
                    .jump(EGRESS_POLICY, EGRESS_DENY),
            );
        }
        let table = desired.table_mut(forward_table);
        table.chains.insert(EGRESS.into(), rules);
        table.chains.insert(EGRESS_POLICY.into(), policy);
        forward_hooks.push(RuleBuilder::new().jump(forward_chain, EGRESS));
    }
    if egress.deny_host {
        let filter = desired.table_mut("filter");
        filter.chains.insert(EGRESS_DENY.into(), deny);
        let mut rules = vec![
            RuleBuilder::new()
                .matching(REPLIES)
                .jump(HOST_GUARD, "RETURN"),
        ];
        if family == Family::Ipv6 {
            // Neighbour discovery and MLD: without them no IPv6 reaches the containers at all.
            for icmp_type in IPV6_LINK_CONTROL {
                rules.push(
                    RuleBuilder::new()
                        .proto("ipv6-icmp")
                        .matching(format!("-m icmp6 --icmpv6-type {icmp_type}"))
                        .jump(HOST_GUARD, "RETURN"),
                );
            }
        }
        for bridge in bridges {
            rules.push(
                RuleBuilder::new()
                    .in_interface(bridge)
                    .jump(HOST_GUARD, HOST_POLICY),
            );
        }
        let mut policy = egress_allow_rules(HOST_POLICY, family, &egress.allow);
        policy.push(RuleBuilder::new().jump(HOST_POLICY, EGRESS_DENY));
        filter.chains.insert(HOST_GUARD.into(), rules);
        filter.chains.insert(HOST_POLICY.into(), policy);
        input_hooks.push(RuleBuilder::new().jump("INPUT", HOST_GUARD));
    }
}

fn egress_allow_rules(chain: &str, family: Family, entries: &[EgressAllow]) -> Vec<Rule> {
    let mut rules = Vec::new();
    for entry in entries {
        for destination in entry.destinations.iter().filter(|d| family.holds(d)) {
            let proto = entry.proto.name();
            let ports: Vec<Option<String>> = if entry.ports.is_empty() {
                vec![None]
            } else {
                entry.ports.iter().map(|p| Some(p.iptables())).collect()
            };
            for port in ports {
                let mut rule = RuleBuilder::new()
                    .destination(destination.to_string())
                    .proto(proto);
                if let Some(p) = port {
                    rule = rule.matching(format!("-m {proto} --dport {p}"));
                }
                rules.push(rule.note(entry.comment.as_deref()).jump(chain, "RETURN"));
            }
        }
    }
    rules
}
