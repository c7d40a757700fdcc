//! The table the policy asks for, from the same policy and Docker facts as the iptables
//! dataplane. Layout (see docs/design.md):
//!
//! * `prerouting` (before Docker's DNAT): new connections from an external interface to a
//!   published host port go through `ingress_policy`; this covers the DNAT path and docker-proxy
//!   (IPv6 without NAT) alike.
//! * `forward`: new connections from an external interface to a Docker bridge go through
//!   `ingress_policy` (container addresses reached directly: routed networks); containers'
//!   connections to private ranges through `egress_policy`.
//! * `input`: containers' connections to the host through `host_policy`.
//! * Allowed traffic returns and meets Docker's chains; the rest goes to `ingress_deny` /
//!   `egress_deny`: a rate-limited log line, then drop (or reject), or in audit mode nothing.

use super::{Action, Chain, Hook, Match, Rule, Set, SetKind, Table};
use crate::core::desired::{DockerFacts, IPV6_LINK_CONTROL, PublishedPort, bridges_to_guard};
use crate::core::policy::{Config, EgressAllow, Family, PortRange, Rate, State};
use crate::core::rule::from_policy::{
    deny_verdict, egress_allow, entry_allows, log_prefix, replies,
};
use ipnet::IpNet;

pub const PREROUTING: &str = "prerouting";
pub const FORWARD: &str = "forward";
pub const INPUT: &str = "input";
pub const INGRESS_POLICY: &str = "ingress_policy";
pub const INGRESS_DENY: &str = "ingress_deny";
pub const EGRESS_POLICY: &str = "egress_policy";
pub const HOST_POLICY: &str = "host_policy";
pub const EGRESS_DENY: &str = "egress_deny";

/// The table for `config`, or `None` when the policy owns nothing (state absent).
pub fn desired_table(config: &Config, external: &[String], facts: &DockerFacts) -> Option<Table> {
    if config.state == State::Absent {
        return None;
    }
    let families = &config.families;
    // One family configured: the other family's traffic is not ours to judge.
    let only = |rule_matches: Vec<Match>| -> Vec<Match> {
        match families.as_slice() {
            [one] => std::iter::once(Match::Family(*one))
                .chain(rule_matches)
                .collect(),
            _ => rule_matches,
        }
    };
    let bridges = bridges_to_guard(config, facts);
    let mut sets = Vec::new();

    let mut prerouting = vec![replies()];
    for ext in external {
        for (proto, ports) in published_by_proto(&facts.published) {
            prerouting.push(Rule::new(
                only(vec![
                    Match::InInterface(ext.clone()),
                    Match::LocalDestination,
                    Match::DestinationPorts(proto, ports),
                ]),
                Action::Jump(INGRESS_POLICY),
            ));
        }
    }
    let mut forward = vec![replies()];
    for ext in external {
        for bridge in &bridges {
            forward.push(Rule::new(
                only(vec![
                    Match::InInterface(ext.clone()),
                    Match::OutInterface(bridge.clone()),
                ]),
                Action::Jump(INGRESS_POLICY),
            ));
        }
    }
    let mut ingress_policy = allow_rules(config, &mut sets);
    ingress_policy.push(Rule::always(Action::Jump(INGRESS_DENY)));
    let mut chains = vec![
        base(PREROUTING, "dstnat", prerouting),
        base(FORWARD, "filter", forward),
    ];
    let mut policy_chains = vec![
        plain(INGRESS_POLICY, ingress_policy),
        plain(INGRESS_DENY, deny_rules(config, "in", &mut sets)),
    ];

    let egress = &config.egress;
    if egress.deny_private {
        let forward = &mut chains[1].rules;
        for bridge in &bridges {
            forward.push(Rule::new(
                vec![
                    Match::InInterface(bridge.clone()),
                    Match::OutInterface(bridge.clone()),
                ],
                Action::Return,
            ));
        }
        for bridge in &bridges {
            forward.push(Rule::new(
                only(vec![Match::InInterface(bridge.clone())]),
                Action::Jump(EGRESS_POLICY),
            ));
        }
        let mut policy = egress_allow_rules(families, &egress.allow);
        for &family in families {
            let ranges = merged(family, &egress.private_ranges);
            if !ranges.is_empty() {
                policy.push(Rule::new(
                    vec![Match::Destinations(family, ranges)],
                    Action::Jump(EGRESS_DENY),
                ));
            }
        }
        policy_chains.push(plain(EGRESS_POLICY, policy));
    }
    if egress.deny_host {
        let mut input = vec![replies()];
        if families.contains(&Family::Ipv6) {
            input.push(Rule::new(
                vec![Match::Icmpv6Types(IPV6_LINK_CONTROL.to_vec())],
                Action::Return,
            ));
        }
        for bridge in &bridges {
            input.push(Rule::new(
                only(vec![Match::InInterface(bridge.clone())]),
                Action::Jump(HOST_POLICY),
            ));
        }
        chains.push(base(INPUT, "filter", input));
        let mut policy = egress_allow_rules(families, &egress.allow);
        policy.push(Rule::always(Action::Jump(EGRESS_DENY)));
        policy_chains.push(plain(HOST_POLICY, policy));
    }
    if egress.enabled() {
        policy_chains.push(plain(EGRESS_DENY, deny_rules(config, "out", &mut sets)));
    }
    chains.extend(policy_chains);
    Some(Table { sets, chains })
}

fn base(name: &'static str, priority_base: &'static str, rules: Vec<Rule>) -> Chain {
    Chain {
        name,
        hook: Some(Hook {
            hook: name,
            base: priority_base,
            offset: -10,
        }),
        rules,
    }
}

fn plain(name: &'static str, rules: Vec<Rule>) -> Chain {
    Chain {
        name,
        hook: None,
        rules,
    }
}

/// One rule per entry, family and port (core/rule/from_policy): the entry's sources in a named
/// interval set of their own.
fn allow_rules(config: &Config, sets: &mut Vec<Set>) -> Vec<Rule> {
    let mut rules = Vec::new();
    for (index, entry) in config.ingress.allow.iter().enumerate() {
        for &family in &config.families {
            if !entry.applies_to(family) {
                continue;
            }
            let mut source = Match::Family(family);
            if !entry.sources.is_empty() {
                let name = format!("ingress_allow_{index}_v{}", family_digit(family));
                source = Match::SourceSet(family, name.clone());
                sets.push(Set {
                    name,
                    kind: SetKind::Addresses {
                        family,
                        elements: merged(family, &entry.sources),
                    },
                });
            }
            rules.extend(entry_allows(entry, &[source]));
        }
    }
    rules
}

fn egress_allow_rules(families: &[Family], entries: &[EgressAllow]) -> Vec<Rule> {
    let mut rules = Vec::new();
    for entry in entries {
        for &family in families {
            let destinations = merged(family, &entry.destinations);
            if !destinations.is_empty() {
                let ports = merged_ports(entry.ports.clone());
                let to = Match::Destinations(family, destinations);
                rules.push(egress_allow(entry, to, ports));
            }
        }
    }
    rules
}

/// A deny chain: per family a log line per flow at most at the configured rate, one for
/// port-less protocols, then the verdict.
fn deny_rules(config: &Config, direction: &str, sets: &mut Vec<Set>) -> Vec<Rule> {
    let mut rules = Vec::new();
    if config.log.enabled {
        let prefix = log_prefix(config, direction);
        let rate = config.log.rate;
        for &family in &config.families {
            let meter = format!("log_{direction}_v{}", family_digit(family));
            sets.push(Set {
                name: meter.clone(),
                kind: SetKind::Meter {
                    family,
                    timeout: bucket_timeout(rate),
                },
            });
            rules.push(Rule::always(Action::LogPerFlow {
                bucket: meter,
                family,
                rate,
                prefix: prefix.clone(),
            }));
        }
        rules.push(Rule::new(
            vec![Match::Portless],
            Action::LogLimited { rate, prefix },
        ));
    }
    rules.extend(deny_verdict(config, direction == "in"));
    rules
}

/// How long a log bucket lives: one period of the rate.
fn bucket_timeout(rate: Rate) -> &'static str {
    match rate.unit {
        "hour" => "1h",
        "day" => "1d",
        _ => "1m",
    }
}

fn family_digit(family: Family) -> u8 {
    match family {
        Family::Ipv4 => 4,
        Family::Ipv6 => 6,
    }
}

/// The networks of `family`, merged so that no two overlap (nft refuses overlapping
/// intervals), sorted.
pub fn merged(family: Family, nets: &[IpNet]) -> Vec<IpNet> {
    let own: Vec<IpNet> = nets
        .iter()
        .filter(|n| family.holds(n))
        .map(IpNet::trunc)
        .collect();
    let mut out = IpNet::aggregate(&own);
    out.sort();
    out
}

/// Port ranges sorted and merged where they overlap or touch.
pub fn merged_ports(mut ports: Vec<PortRange>) -> Vec<PortRange> {
    ports.sort();
    let mut out: Vec<PortRange> = Vec::with_capacity(ports.len());
    for p in ports {
        match out.last_mut() {
            Some(last) if u32::from(p.first) <= u32::from(last.last) + 1 => {
                last.last = last.last.max(p.last);
            }
            _ => out.push(p),
        }
    }
    out
}

/// Docker's published host ports per protocol, merged (a range and a port inside it may both be
/// published, on different host addresses).
fn published_by_proto(published: &[PublishedPort]) -> Vec<(String, Vec<PortRange>)> {
    let mut by_proto: std::collections::BTreeMap<String, Vec<PortRange>> = Default::default();
    for p in published {
        if let Some(range) = p.range() {
            by_proto.entry(p.proto.clone()).or_default().push(range);
        }
    }
    by_proto
        .into_iter()
        .map(|(proto, ports)| (proto, merged_ports(ports)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_merge_where_they_overlap_or_touch() {
        let r = |first, last| PortRange { first, last };
        assert_eq!(
            merged_ports(vec![
                r(8005, 8005),
                r(8000, 8010),
                r(8011, 8012),
                r(9000, 9000)
            ]),
            vec![r(8000, 8012), r(9000, 9000)]
        );
    }

    #[test]
    fn networks_merge_and_keep_their_family() {
        let nets: Vec<IpNet> = ["10.0.0.0/8", "10.1.2.3/32", "fd00::1/128", "10.1.0.0/16"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            merged(Family::Ipv4, &nets),
            vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]
        );
        assert_eq!(merged(Family::Ipv6, &nets).len(), 1);
    }
}
