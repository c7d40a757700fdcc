//! Egress: containers to private ranges and to the host itself, with `egress.allow` exceptions.

use super::Layout;
use super::logging::log_rule;
use crate::core::names::{EGRESS, EGRESS_DENY, EGRESS_POLICY, HOST_GUARD, HOST_POLICY};
use crate::core::policy::{Config, EgressAllow, Family};
use crate::core::rule::from_policy::{deny_verdict, egress_allow, replies};
use crate::core::rule::{Action, Match, Rule, Unexpressible};

/// ICMPv6 a container must exchange with the host: MLD query/report/done, router and neighbour
/// solicitation/advertisement, MLDv2 report.
pub const IPV6_LINK_CONTROL: [u8; 8] = [130, 131, 132, 133, 134, 135, 136, 143];

/// Containers may not open connections to private ranges (FORWARD, via DOCKER-USER) or to the
/// host itself (INPUT from the Docker bridges), except to `egress.allow` destinations. Traffic
/// that stays on one Docker network is never touched.
pub(super) fn add_egress(
    config: &Config,
    forward_table: &str,
    bridges: &[String],
    layout: &mut Layout,
    (forward_hooks, input_hooks): (&mut Vec<Rule>, &mut Vec<Rule>),
) -> Result<(), Unexpressible> {
    let family = layout.family;
    let egress = &config.egress;
    let mut deny = log_rule(config, "out", "out", family);
    deny.extend(deny_verdict(config, false));
    let to_bridge = |bridge: &String, action: Action| {
        Rule::new(vec![Match::InInterface(bridge.clone())], action)
    };
    if egress.deny_private {
        layout.chain(forward_table, EGRESS_DENY, &deny)?;
        let mut rules = vec![replies()];
        for bridge in bridges {
            rules.push(Rule::new(
                vec![
                    Match::InInterface(bridge.clone()),
                    Match::OutInterface(bridge.clone()),
                ],
                Action::Return,
            ));
        }
        rules.extend(
            bridges
                .iter()
                .map(|b| to_bridge(b, Action::Jump(EGRESS_POLICY))),
        );
        let mut policy = egress_allow_rules(family, &egress.allow);
        for range in egress.private_ranges.iter().filter(|r| family.holds(r)) {
            policy.push(Rule::new(
                vec![Match::Destinations(family, vec![*range])],
                Action::Jump(EGRESS_DENY),
            ));
        }
        layout.chain(forward_table, EGRESS, &rules)?;
        layout.chain(forward_table, EGRESS_POLICY, &policy)?;
        forward_hooks.push(Rule::always(Action::Jump(EGRESS)));
    }
    if egress.deny_host {
        layout.chain("filter", EGRESS_DENY, &deny)?;
        let mut rules = vec![replies()];
        if family == Family::Ipv6 {
            // Neighbour discovery and MLD: without them no IPv6 reaches the containers at all.
            for icmp_type in IPV6_LINK_CONTROL {
                rules.push(Rule::new(
                    vec![Match::Icmpv6Types(vec![icmp_type])],
                    Action::Return,
                ));
            }
        }
        rules.extend(
            bridges
                .iter()
                .map(|b| to_bridge(b, Action::Jump(HOST_POLICY))),
        );
        let mut policy = egress_allow_rules(family, &egress.allow);
        policy.push(Rule::always(Action::Jump(EGRESS_DENY)));
        layout.chain("filter", HOST_GUARD, &rules)?;
        layout.chain("filter", HOST_POLICY, &policy)?;
        input_hooks.push(Rule::always(Action::Jump(HOST_GUARD)));
    }
    Ok(())
}

/// One rule (core/rule/from_policy) per destination and port of every entry, in this family.
fn egress_allow_rules(family: Family, entries: &[EgressAllow]) -> Vec<Rule> {
    let mut rules = Vec::new();
    for entry in entries {
        for destination in entry.destinations.iter().filter(|d| family.holds(d)) {
            let to = || Match::Destinations(family, vec![*destination]);
            if entry.ports.is_empty() {
                rules.push(egress_allow(entry, to(), Vec::new()));
            }
            for port in &entry.ports {
                rules.push(egress_allow(entry, to(), vec![*port]));
            }
        }
    }
    rules
}
