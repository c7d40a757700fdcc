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
use crate::core::desired::{DockerFacts, PublishedPort, bridges_to_guard};
use crate::core::policy::{AllowEntry, Config, EgressAllow, Family, PortRange, State, Verdict};
use ipnet::IpNet;

pub const PREROUTING: &str = "prerouting";
pub const FORWARD: &str = "forward";
pub const INPUT: &str = "input";
pub const INGRESS_POLICY: &str = "ingress_policy";
pub const INGRESS_DENY: &str = "ingress_deny";
pub const EGRESS_POLICY: &str = "egress_policy";
pub const HOST_POLICY: &str = "host_policy";
pub const EGRESS_DENY: &str = "egress_deny";

/// ICMPv6 a container must exchange with the host (MLD, router and neighbour discovery).
const IPV6_LINK_CONTROL: [u8; 8] = [130, 131, 132, 133, 134, 135, 136, 143];

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
    let replies = || Rule::new(vec![Match::Replies], Action::Return);

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
    ingress_policy.push(Rule::new(vec![], Action::Jump(INGRESS_DENY)));
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
        policy.push(Rule::new(vec![], Action::Jump(EGRESS_DENY)));
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

/// One rule per entry, family and port: sources in a named interval set of the entry, ports
/// matched on the original destination (the published host port, which DNAT keeps).
fn allow_rules(config: &Config, sets: &mut Vec<Set>) -> Vec<Rule> {
    let mut rules = Vec::new();
    for (index, entry) in config.ingress.allow.iter().enumerate() {
        for &family in &config.families {
            if !entry.applies_to(family) {
                continue;
            }
            let mut matches = vec![Match::Family(family)];
            if !entry.sources.is_empty() {
                let name = format!("ingress_allow_{index}_v{}", family_digit(family));
                matches = vec![Match::SourceSet(family, name.clone())];
                sets.push(Set {
                    name,
                    kind: SetKind::Addresses {
                        family,
                        elements: merged(family, &entry.sources),
                    },
                });
            }
            matches.push(Match::Proto(entry.proto));
            if let Some(d) = entry.destination {
                matches.push(Match::OriginalAddress(d));
            }
            for port in ports_or_any(entry) {
                let mut m = matches.clone();
                if let Some(p) = port {
                    m.push(Match::OriginalPort(p));
                }
                rules.push(Rule {
                    matches: m,
                    action: Action::Return,
                    note: entry.comment.clone(),
                });
            }
        }
    }
    rules
}

fn ports_or_any(entry: &AllowEntry) -> Vec<Option<PortRange>> {
    if entry.ports.is_empty() {
        vec![None]
    } else {
        entry.ports.iter().copied().map(Some).collect()
    }
}

fn egress_allow_rules(families: &[Family], entries: &[EgressAllow]) -> Vec<Rule> {
    let mut rules = Vec::new();
    for entry in entries {
        for &family in families {
            let destinations = merged(family, &entry.destinations);
            if destinations.is_empty() {
                continue;
            }
            let mut matches = vec![Match::Destinations(family, destinations)];
            if entry.ports.is_empty() {
                matches.push(Match::Proto(entry.proto));
            } else {
                matches.push(Match::DestinationPorts(
                    entry.proto.name().to_string(),
                    merged_ports(entry.ports.clone()),
                ));
            }
            rules.push(Rule {
                matches,
                action: Action::Return,
                note: entry.comment.clone(),
            });
        }
    }
    rules
}

/// A deny chain: per family a log line per flow at most at the configured rate, one for
/// port-less protocols, then the verdict.
fn deny_rules(config: &Config, direction: &str, sets: &mut Vec<Set>) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mode = if config.audit { "audit" } else { "drop" };
    if config.log.enabled {
        let prefix = format!("{}{direction}-{mode} ", config.log.prefix);
        let (rate, timeout) = nft_rate(config);
        for &family in &config.families {
            let meter = format!("log_{direction}_v{}", family_digit(family));
            sets.push(Set {
                name: meter.clone(),
                kind: SetKind::Meter { family, timeout },
            });
            rules.push(Rule::new(
                vec![],
                Action::LogPerFlow {
                    meter,
                    family,
                    rate: rate.clone(),
                    prefix: prefix.clone(),
                },
            ));
        }
        rules.push(Rule::new(
            vec![Match::Portless],
            Action::LogLimited { rate, prefix },
        ));
    }
    if config.audit {
        rules.push(Rule::new(vec![], Action::Return));
    } else if direction == "in" && config.ingress.default == Verdict::Reject {
        rules.push(Rule::new(
            vec![Match::Proto(crate::core::policy::Proto::Tcp)],
            Action::RejectTcpReset,
        ));
        rules.push(Rule::new(vec![], Action::RejectUnreachable));
    } else {
        rules.push(Rule::new(vec![], Action::Drop));
    }
    rules
}

/// The log rate as nft writes it (`6/minute`), and how long a bucket lives: one period.
fn nft_rate(config: &Config) -> (String, &'static str) {
    let rate = config.log.rate;
    let (unit, timeout) = match rate.unit {
        "sec" => ("second", "1m"),
        "hour" => ("hour", "1h"),
        "day" => ("day", "1d"),
        _ => ("minute", "1m"),
    };
    (format!("{}/{unit}", rate.count), timeout)
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
        if let Some(range) = parse_port(&p.port) {
            by_proto.entry(p.proto.clone()).or_default().push(range);
        }
    }
    by_proto
        .into_iter()
        .map(|(proto, ports)| (proto, merged_ports(ports)))
        .collect()
}

/// `8080` or `8000:8010` (iptables' form, which the Docker facts keep).
fn parse_port(text: &str) -> Option<PortRange> {
    let (first, last) = text.split_once([':', '-']).unwrap_or((text, text));
    let first: u16 = first.parse().ok()?;
    let last: u16 = last.parse().ok()?;
    (first <= last).then_some(PortRange { first, last })
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
