//! Ingress: which new connections from external interfaces to Docker may pass. The policy chain
//! (allow entries RETURN, the rest goes to the deny chain), the deny chain's verdict, and the
//! per-published-port rules the gate and the proxy guard send through it.

use super::REPLIES;
use super::docker_facts::PublishedPort;
use super::logging::log_rule;
use crate::core::ipset::entry_set;
use crate::core::names::{INGRESS, INGRESS_DENY, INGRESS_POLICY, PROXY_GUARD};
use crate::core::owned::DesiredState;
use crate::core::policy::{AllowEntry, Config, Family, Verdict};
use crate::core::rule::{Rule, RuleBuilder};

/// `DFW-INGRESS` in the forward path: replies pass, external interfaces to the Docker bridges go
/// through the policy chain, which lives beside it in `table`.
pub(super) fn add_forward(
    desired: &mut DesiredState,
    table: &str,
    external_interfaces: &[String],
    bridges: &[String],
    config: &Config,
    family: Family,
    allow: &[(usize, &AllowEntry)],
) {
    let mut rules = vec![RuleBuilder::new().matching(REPLIES).jump(INGRESS, "RETURN")];
    for ext in external_interfaces {
        for bridge in bridges {
            rules.push(
                RuleBuilder::new()
                    .in_interface(ext)
                    .out_interface(bridge)
                    .jump(INGRESS, INGRESS_POLICY),
            );
        }
    }
    desired
        .table_mut(table)
        .chains
        .insert(INGRESS.into(), rules);
    add_policy(desired, table, config, family, allow);
}

/// `DFW-PROXY-GUARD` in filter INPUT. Whatever is not DNAT-ed (refused by the gate, or IPv6 where
/// Docker writes no IPv6 NAT) lands in INPUT, where docker-proxy listens on the published ports of
/// both families.
pub(super) fn add_proxy_guard(
    desired: &mut DesiredState,
    external_interfaces: &[String],
    published: &[PublishedPort],
) {
    let mut guard = vec![
        RuleBuilder::new()
            .matching(REPLIES)
            .jump(PROXY_GUARD, "RETURN"),
    ];
    let ports = per_published_port(external_interfaces, published, PROXY_GUARD, INGRESS_POLICY);
    guard.extend(ports);
    desired
        .table_mut("filter")
        .chains
        .insert(PROXY_GUARD.into(), guard);
}

/// `DFW-INGRESS-POLICY` and `DFW-INGRESS-DENY` in `table`.
pub(super) fn add_policy(
    desired: &mut DesiredState,
    table: &str,
    config: &Config,
    family: Family,
    allow: &[(usize, &AllowEntry)],
) {
    let mut policy = allow_rules(INGRESS_POLICY, family, allow);
    policy.push(RuleBuilder::new().jump(INGRESS_POLICY, INGRESS_DENY));
    let deny = ingress_deny(config, family, table == "filter");
    let t = desired.table_mut(table);
    t.chains.insert(INGRESS_POLICY.into(), policy);
    t.chains.insert(INGRESS_DENY.into(), deny);
}

/// Log, then drop or reject (or, in audit mode, let it through). REJECT exists only in the
/// filter table; elsewhere a reject policy drops.
fn ingress_deny(config: &Config, family: Family, can_reject: bool) -> Vec<Rule> {
    let mut rules = log_rule(config, INGRESS_DENY, "in", "in", family);
    if config.audit {
        rules.push(RuleBuilder::new().jump(INGRESS_DENY, "RETURN"));
        return rules;
    }
    let verdict = if can_reject {
        config.ingress.default
    } else {
        Verdict::Drop
    };
    rules.extend(final_verdict(verdict, family));
    rules
}

/// One rule per external interface and published host port, jumping to `target`.
pub(super) fn per_published_port(
    external_interfaces: &[String],
    published: &[PublishedPort],
    chain: &str,
    target: &str,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    for ext in external_interfaces {
        for p in published {
            rules.push(
                RuleBuilder::new()
                    .in_interface(ext)
                    .proto(&p.proto)
                    .matching(ctorig_match(None, Some(&p.port)))
                    .jump(chain, target),
            );
        }
    }
    rules
}

/// One RETURN rule per (source, port) of every entry that applies to `family`. Ports are the
/// published host ports, matched on the connection's original destination, which DNAT keeps.
/// One RETURN per source and port; an entry with an ipset in this family (core/ipset: many
/// sources) matches them all with the set, one rule per port.
pub(super) fn allow_rules(
    chain: &str,
    family: Family,
    entries: &[(usize, &AllowEntry)],
) -> Vec<Rule> {
    let mut rules = Vec::new();
    for &(index, entry) in entries {
        let set =
            entry_set(entry, index, family).map(|s| format!("-m set --match-set {} src", s.name));
        let sources: Vec<Option<String>> = if entry.sources.is_empty() || set.is_some() {
            vec![None]
        } else {
            entry
                .sources
                .iter()
                .filter(|s| family.holds(s))
                .map(|s| Some(s.to_string()))
                .collect()
        };
        // The conntrack match of each port, built once for all sources.
        let destination = entry.destination.map(|d| d.to_string());
        let matches: Vec<Option<String>> = if entry.ports.is_empty() {
            vec![destination.as_deref().map(|d| ctorig_match(Some(d), None))]
        } else {
            entry
                .ports
                .iter()
                .map(|p| Some(ctorig_match(destination.as_deref(), Some(&p.iptables()))))
                .collect()
        };
        for source in &sources {
            for matching in &matches {
                let mut rule = RuleBuilder::new();
                if let Some(s) = source {
                    rule = rule.source(s);
                }
                rule = rule.proto(entry.proto.name());
                if let Some(m) = &set {
                    rule = rule.matching(m);
                }
                if let Some(m) = matching {
                    rule = rule.matching(m);
                }
                rules.push(rule.note(entry.comment.as_deref()).jump(chain, "RETURN"));
            }
        }
    }
    rules
}

/// `-m conntrack [--ctorigdst D] [--ctorigdstport P] --ctdir ORIGINAL`, as iptables-save prints it.
pub(super) fn ctorig_match(destination: Option<&str>, port: Option<&str>) -> String {
    let mut text = String::from("-m conntrack");
    if let Some(d) = destination {
        text.push_str(" --ctorigdst ");
        text.push_str(d);
    }
    if let Some(p) = port {
        text.push_str(" --ctorigdstport ");
        text.push_str(p);
    }
    text.push_str(" --ctdir ORIGINAL");
    text
}

fn final_verdict(verdict: Verdict, family: Family) -> Vec<Rule> {
    match verdict {
        Verdict::Drop => vec![RuleBuilder::new().jump(INGRESS_DENY, "DROP")],
        Verdict::Reject => {
            let unreachable = match family {
                Family::Ipv4 => "REJECT --reject-with icmp-port-unreachable",
                Family::Ipv6 => "REJECT --reject-with icmp6-port-unreachable",
            };
            vec![
                RuleBuilder::new()
                    .proto("tcp")
                    .jump(INGRESS_DENY, "REJECT --reject-with tcp-reset"),
                RuleBuilder::new().jump(INGRESS_DENY, unreachable),
            ]
        }
    }
}
