//! Ingress: which new connections from external interfaces to Docker may pass. The policy chain
//! (allow entries RETURN, the rest goes to the deny chain), the deny chain's verdict, and the
//! per-published-port rules the gate and the proxy guard send through it.

use super::Layout;
use super::docker_facts::PublishedPort;
use super::logging::log_rule;
use crate::core::ipset::entry_set;
use crate::core::names::{INGRESS, INGRESS_DENY, INGRESS_POLICY, PROXY_GUARD};
use crate::core::policy::{AllowEntry, Config, Family};
use crate::core::rule::from_policy::{deny_verdict, entry_allows, replies};
use crate::core::rule::{Action, Match, Rule, Unexpressible};

/// `DFW-INGRESS` in the forward path: replies pass, external interfaces to the Docker bridges go
/// through the policy chain, which lives beside it in `table`.
pub(super) fn add_forward(
    layout: &mut Layout,
    table: &str,
    external_interfaces: &[String],
    bridges: &[String],
    config: &Config,
    allow: &[(usize, &AllowEntry)],
) -> Result<(), Unexpressible> {
    let mut rules = vec![replies()];
    for ext in external_interfaces {
        for bridge in bridges {
            rules.push(Rule::new(
                vec![
                    Match::InInterface(ext.clone()),
                    Match::OutInterface(bridge.clone()),
                ],
                Action::Jump(INGRESS_POLICY),
            ));
        }
    }
    layout.chain(table, INGRESS, &rules)?;
    add_policy(layout, table, config, allow)
}

/// `DFW-PROXY-GUARD` in filter INPUT. Whatever is not DNAT-ed (refused by the gate, or IPv6 where
/// Docker writes no IPv6 NAT) lands in INPUT, where docker-proxy listens on the published ports of
/// both families.
pub(super) fn add_proxy_guard(
    layout: &mut Layout,
    external_interfaces: &[String],
    published: &[PublishedPort],
) -> Result<(), Unexpressible> {
    let mut guard = vec![replies()];
    guard.extend(per_published_port(
        external_interfaces,
        published,
        INGRESS_POLICY,
    ));
    layout.chain("filter", PROXY_GUARD, &guard)
}

/// `DFW-INGRESS-POLICY` and `DFW-INGRESS-DENY` in `table`.
pub(super) fn add_policy(
    layout: &mut Layout,
    table: &str,
    config: &Config,
    allow: &[(usize, &AllowEntry)],
) -> Result<(), Unexpressible> {
    let mut policy = allow_rules(layout.family, allow);
    policy.push(Rule::always(Action::Jump(INGRESS_DENY)));
    // REJECT exists only in the filter table; elsewhere a reject policy drops.
    let mut deny = log_rule(config, "in", "in", layout.family);
    deny.extend(deny_verdict(config, table == "filter"));
    layout.chain(table, INGRESS_POLICY, &policy)?;
    layout.chain(table, INGRESS_DENY, &deny)
}

/// One rule per external interface and published host port (matched on the original
/// destination), jumping to `target`.
pub(super) fn per_published_port(
    external_interfaces: &[String],
    published: &[PublishedPort],
    target: &'static str,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    for ext in external_interfaces {
        for p in published {
            if let Some(port) = p.range() {
                rules.push(Rule::new(
                    vec![
                        Match::InInterface(ext.clone()),
                        Match::Proto(p.proto.clone()),
                        Match::OriginalPort(port),
                    ],
                    Action::Jump(target),
                ));
            }
        }
    }
    rules
}

/// The allow rules of every entry that applies to `family` (core/rule/from_policy): one per
/// source address, or, for an entry with an ipset in this family (core/ipset: many sources),
/// one matching the set.
pub(super) fn allow_rules(family: Family, entries: &[(usize, &AllowEntry)]) -> Vec<Rule> {
    let mut rules = Vec::new();
    for &(index, entry) in entries {
        let sources: Vec<Match> = if let Some(set) = entry_set(entry, index, family) {
            vec![Match::SourceSet(family, set.name)]
        } else if entry.sources.is_empty() {
            vec![Match::Family(family)]
        } else {
            entry
                .sources
                .iter()
                .filter(|s| family.holds(s))
                .map(|s| Match::Source(*s))
                .collect()
        };
        rules.extend(entry_allows(entry, &sources));
    }
    rules
}
