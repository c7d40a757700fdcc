//! The desired state of what the module owns, computed from the policy for one family.
//! Chain layout (see docs/design.md):
//!
//! * filter `DOCKER-USER` -> `DFW-INGRESS`: replies pass, traffic from an external interface to a
//!   Docker bridge goes to `DFW-INGRESS-POLICY` (allow entries RETURN, the rest is dropped).
//! * nat `PREROUTING` -> `DFW-GATE` -> `DFW-GATE-POLICY`: allowed traffic RETURNs and goes on to
//!   Docker's DNAT; the rest is ACCEPTed in nat, i.e. never DNAT-ed.
//! * filter `INPUT` -> `DFW-PROXY-GUARD`: what the gate refused lands in INPUT, where Docker's
//!   userland proxy listens on the published ports; the guard sends those ports through the same
//!   policy chain.

use super::owned::DesiredState;
use super::policy::{AllowEntry, Config, Family, State, Verdict};
use super::rule::{Rule, RuleBuilder};
use super::save::{Ruleset, split_args};

pub const INGRESS: &str = "DFW-INGRESS";
pub const INGRESS_POLICY: &str = "DFW-INGRESS-POLICY";
pub const GATE: &str = "DFW-GATE";
pub const GATE_POLICY: &str = "DFW-GATE-POLICY";
pub const PROXY_GUARD: &str = "DFW-PROXY-GUARD";
pub const DOCKER_USER: &str = "DOCKER-USER";

const REPLIES: &str = "-m conntrack --ctstate RELATED,ESTABLISHED";

/// A host port Docker publishes, as its nat DNAT rule matches it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PublishedPort {
    pub proto: String,
    /// `8080` or `8000:8010`.
    pub port: String,
}

/// The host ports Docker currently publishes: the DNAT rules of its nat `DOCKER` chain.
pub fn published_ports(ruleset: &Ruleset) -> Vec<PublishedPort> {
    let mut ports = Vec::new();
    let Some(nat) = ruleset.table("nat") else {
        return ports;
    };
    for rule in nat.rules_of("DOCKER") {
        let args = split_args(&rule.spec);
        let value = |flag: &str| args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone());
        if value("-j").as_deref() != Some("DNAT") {
            continue;
        }
        if let (Some(proto), Some(port)) = (value("-p"), value("--dport")) {
            let published = PublishedPort { proto, port };
            if !ports.contains(&published) {
                ports.push(published);
            }
        }
    }
    ports.sort();
    ports
}

/// Everything the module should own in `family`, given the interfaces that count as external
/// and the host ports Docker publishes right now.
pub fn desired_state(
    config: &Config,
    family: Family,
    external_interfaces: &[String],
    published: &[PublishedPort],
) -> DesiredState {
    let mut desired = DesiredState::default();
    if config.state == State::Absent {
        return desired;
    }
    let strategy = config.strategy;
    let allow: Vec<&AllowEntry> = config
        .ingress
        .allow
        .iter()
        .filter(|e| e.applies_to(family))
        .collect();

    if strategy.filters_forward() {
        let mut rules = vec![RuleBuilder::new().matching(REPLIES).jump(INGRESS, "RETURN")];
        for ext in external_interfaces {
            for bridge in &config.docker_interfaces {
                rules.push(
                    RuleBuilder::new()
                        .in_interface(ext)
                        .out_interface(bridge)
                        .jump(INGRESS, INGRESS_POLICY),
                );
            }
        }
        let filter = desired.table_mut("filter");
        filter.chains.insert(INGRESS.into(), rules);
        filter.hooks.insert(
            DOCKER_USER.into(),
            vec![RuleBuilder::new().jump(DOCKER_USER, INGRESS)],
        );
    }

    if strategy.gates_prerouting() {
        let gate = external_interfaces
            .iter()
            .map(|ext| RuleBuilder::new().in_interface(ext).jump(GATE, GATE_POLICY))
            .collect();
        let mut gate_policy = allow_rules(GATE_POLICY, family, &allow);
        gate_policy.push(RuleBuilder::new().jump(GATE_POLICY, "ACCEPT"));
        let nat = desired.table_mut("nat");
        nat.chains.insert(GATE.into(), gate);
        nat.chains.insert(GATE_POLICY.into(), gate_policy);
        nat.hooks.insert(
            "PREROUTING".into(),
            vec![
                RuleBuilder::new()
                    .matching("-m addrtype --dst-type LOCAL")
                    .jump("PREROUTING", GATE),
            ],
        );

        let mut guard = vec![
            RuleBuilder::new()
                .matching(REPLIES)
                .jump(PROXY_GUARD, "RETURN"),
        ];
        for ext in external_interfaces {
            for p in published {
                guard.push(
                    RuleBuilder::new()
                        .in_interface(ext)
                        .proto(&p.proto)
                        .matching(format!(
                            "-m conntrack --ctorigdstport {} --ctdir ORIGINAL",
                            p.port
                        ))
                        .jump(PROXY_GUARD, INGRESS_POLICY),
                );
            }
        }
        let filter = desired.table_mut("filter");
        filter.chains.insert(PROXY_GUARD.into(), guard);
        filter.hooks.insert(
            "INPUT".into(),
            vec![RuleBuilder::new().jump("INPUT", PROXY_GUARD)],
        );
    }

    if !desired.is_empty() {
        let mut policy = allow_rules(INGRESS_POLICY, family, &allow);
        policy.extend(final_verdict(config.ingress.default, family));
        desired
            .table_mut("filter")
            .chains
            .insert(INGRESS_POLICY.into(), policy);
    }
    desired
}

/// One RETURN rule per (source, port) of every entry that applies to `family`. Ports are the
/// published host ports, matched on the connection's original destination, which DNAT keeps.
fn allow_rules(chain: &str, family: Family, entries: &[&AllowEntry]) -> Vec<Rule> {
    let mut rules = Vec::new();
    for entry in entries {
        let sources: Vec<Option<String>> = if entry.sources.is_empty() {
            vec![None]
        } else {
            entry
                .sources
                .iter()
                .filter(|s| family.holds(s))
                .map(|s| Some(s.to_string()))
                .collect()
        };
        let ports: Vec<Option<String>> = if entry.ports.is_empty() {
            vec![None]
        } else {
            entry.ports.iter().map(|p| Some(p.iptables())).collect()
        };
        for source in &sources {
            for port in &ports {
                let mut conntrack = Vec::new();
                if let Some(d) = entry.destination {
                    conntrack.push(format!("--ctorigdst {d}"));
                }
                if let Some(p) = port {
                    conntrack.push(format!("--ctorigdstport {p}"));
                }
                let mut rule = RuleBuilder::new();
                if let Some(s) = source {
                    rule = rule.source(s);
                }
                rule = rule.proto(entry.proto.name());
                if !conntrack.is_empty() {
                    rule = rule.matching(format!(
                        "-m conntrack {} --ctdir ORIGINAL",
                        conntrack.join(" ")
                    ));
                }
                rules.push(rule.note(entry.comment.as_deref()).jump(chain, "RETURN"));
            }
        }
    }
    rules
}

fn final_verdict(verdict: Verdict, family: Family) -> Vec<Rule> {
    match verdict {
        Verdict::Drop => vec![RuleBuilder::new().jump(INGRESS_POLICY, "DROP")],
        Verdict::Reject => {
            let unreachable = match family {
                Family::Ipv4 => "REJECT --reject-with icmp-port-unreachable",
                Family::Ipv6 => "REJECT --reject-with icmp6-port-unreachable",
            };
            vec![
                RuleBuilder::new()
                    .proto("tcp")
                    .jump(INGRESS_POLICY, "REJECT --reject-with tcp-reset"),
                RuleBuilder::new().jump(INGRESS_POLICY, unreachable),
            ]
        }
    }
}
