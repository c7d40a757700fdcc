//! The desired state of what the module owns, computed from the policy for one family.
//! Chain layout (see docs/design.md):
//!
//! * filter `DOCKER-USER` -> `DFW-INGRESS`: replies pass, traffic from an external interface to a
//!   Docker bridge goes to `DFW-INGRESS-POLICY` (allow entries RETURN, the rest is dropped). Where
//!   Docker keeps no DOCKER-USER jump, the same chains hang from mangle `FORWARD` instead.
//! * nat `PREROUTING` -> `DFW-GATE` (Docker's published ports) -> `DFW-GATE-POLICY`: allowed
//!   traffic RETURNs and goes on to Docker's DNAT; the rest is ACCEPTed in nat, i.e. never DNAT-ed.
//! * filter `INPUT` -> `DFW-PROXY-GUARD`: what is not DNAT-ed (refused by the gate, or IPv6 where
//!   Docker writes no IPv6 NAT) lands in INPUT, where Docker's userland proxy listens on the
//!   published ports; the guard sends those ports through the same policy chain.
//! * Denials go through `DFW-INGRESS-DENY` / `DFW-EGRESS-DENY`: a rate-limited LOG, then DROP
//!   (or REJECT), or in audit mode RETURN.
//! * Egress: filter `DOCKER-USER` -> `DFW-EGRESS` (containers to private ranges) and `INPUT` ->
//!   `DFW-HOST-GUARD` (containers to the host), with `egress.allow` exceptions.

use super::owned::DesiredState;
use super::policy::{AllowEntry, Config, EgressAllow, Family, State, Verdict};
use super::rule::{Rule, RuleBuilder, quote, tag_hash};
use super::save::{Ruleset, option_value, split_args, target};

use super::names::{DOCKER, DOCKER_BRIDGE};
pub use super::names::{
    DOCKER_USER, EGRESS, EGRESS_DENY, EGRESS_POLICY, GATE, GATE_POLICY, HOST_GUARD, HOST_POLICY,
    INGRESS, INGRESS_DENY, INGRESS_POLICY, PROXY_GUARD,
};

const REPLIES: &str = "-m conntrack --ctstate RELATED,ESTABLISHED";
/// ICMPv6 a container must exchange with the host: MLD query/report/done, router and neighbour
/// solicitation/advertisement, MLDv2 report.
const IPV6_LINK_CONTROL: [u8; 8] = [130, 131, 132, 133, 134, 135, 136, 143];

/// A host port Docker publishes, as its nat DNAT rule matches it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct PublishedPort {
    pub proto: String,
    /// `8080` or `8000:8010`.
    pub port: String,
}

/// What the live ruleset tells about Docker right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerFacts {
    /// Host ports published through DNAT in nat `DOCKER`.
    pub published: Vec<PublishedPort>,
    /// Bridges Docker forwards published traffic to (`-o X -j DOCKER`).
    pub bridges: Vec<String>,
    /// Where the forward-path hooks go: `DOCKER-USER`, or `FORWARD` itself where Docker set up
    /// its chains without a DOCKER-USER jump (Docker 20.10's experimental IPv6).
    pub forward_chain: &'static str,
}

impl Default for DockerFacts {
    fn default() -> Self {
        DockerFacts {
            published: Vec::new(),
            bridges: Vec::new(),
            forward_chain: DOCKER_USER,
        }
    }
}

impl DockerFacts {
    pub fn read(ruleset: &Ruleset) -> Self {
        DockerFacts {
            published: published_ports(ruleset),
            bridges: docker_bridges(ruleset),
            forward_chain: forward_chain(ruleset),
        }
    }

    /// These facts with the ports and bridges every family shows: docker-proxy listens on a
    /// published port in both families even where Docker writes NAT rules for one only.
    pub fn with_ports_of(&self, all: &[DockerFacts]) -> Self {
        let mut published: Vec<PublishedPort> =
            all.iter().flat_map(|f| f.published.clone()).collect();
        published.sort();
        published.dedup();
        let mut bridges: Vec<String> = all.iter().flat_map(|f| f.bridges.clone()).collect();
        bridges.sort();
        bridges.dedup();
        DockerFacts {
            published,
            bridges,
            forward_chain: self.forward_chain,
        }
    }
}

/// `DOCKER-USER`, unless Docker's filter chains exist and FORWARD does not send traffic to
/// DOCKER-USER before anything else. Docker 20.10 writes no DOCKER-USER jump for its experimental
/// IPv6, and after a firewalld reload it puts the jump back *behind* its per-bridge ACCEPTs, where a
/// filter in DOCKER-USER is never reached: then our hook goes first in FORWARD itself.
fn forward_chain(ruleset: &Ruleset) -> &'static str {
    let Some(filter) = ruleset.table("filter") else {
        return DOCKER_USER;
    };
    let first_foreign = filter
        .rules_of("FORWARD")
        .find(|r| tag_hash(r.spec).is_none());
    let jumps_first = first_foreign.is_some_and(|r| target(r.spec).as_deref() == Some(DOCKER_USER));
    if filter.has_chain(DOCKER) && !jumps_first {
        "FORWARD"
    } else {
        DOCKER_USER
    }
}

/// The DNAT rules of Docker's nat `DOCKER` chain.
fn published_ports(ruleset: &Ruleset) -> Vec<PublishedPort> {
    let mut ports = Vec::new();
    let Some(nat) = ruleset.table("nat") else {
        return ports;
    };
    for rule in nat.rules_of(DOCKER) {
        let args = split_args(rule.spec);
        if option_value(&args, &["-j"]).as_deref() != Some("DNAT") {
            continue;
        }
        if let (Some(proto), Some(port)) = (
            option_value(&args, &["-p"]),
            option_value(&args, &["--dport"]),
        ) {
            ports.push(PublishedPort { proto, port });
        }
    }
    // sort + dedup: contains() per rule was quadratic in the published ports
    ports.sort();
    ports.dedup();
    ports
}

/// Bridges named in Docker's `-o X -j DOCKER` jumps (FORWARD up to Docker 27, DOCKER-BRIDGE
/// from 28 on).
fn docker_bridges(ruleset: &Ruleset) -> Vec<String> {
    let mut bridges = Vec::new();
    let Some(filter) = ruleset.table("filter") else {
        return bridges;
    };
    for rule in &filter.rules {
        if rule.chain != "FORWARD" && rule.chain != DOCKER_BRIDGE {
            continue;
        }
        let args = split_args(rule.spec);
        let negated = args.iter().any(|a| a == "!");
        if negated || option_value(&args, &["-j"]).as_deref() != Some(DOCKER) {
            continue;
        }
        if let Some(bridge) = option_value(&args, &["-o"])
            && !bridges.contains(&bridge)
        {
            bridges.push(bridge);
        }
    }
    bridges.sort();
    bridges
}

/// Whether an iptables interface pattern (`br-+` is a wildcard) matches `name`.
pub fn interface_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('+') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// The configured Docker interfaces plus every bridge Docker uses that they do not cover
/// (a network created with a custom bridge name).
pub fn bridges_to_guard(config: &Config, facts: &DockerFacts) -> Vec<String> {
    let mut out = config.docker_interfaces.clone();
    for bridge in &facts.bridges {
        if !config
            .docker_interfaces
            .iter()
            .any(|p| interface_matches(p, bridge))
        {
            out.push(bridge.clone());
        }
    }
    out
}

/// Everything the module should own in `family`, given the interfaces that count as external
/// and what Docker's rules show right now.
pub fn desired_state(
    config: &Config,
    family: Family,
    external_interfaces: &[String],
    facts: &DockerFacts,
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
    let bridges = bridges_to_guard(config, facts);
    // Docker puts its own FORWARD rules above ours on every start where it keeps no DOCKER-USER
    // jump; mangle FORWARD runs before them and Docker never touches it.
    let forward_table = if facts.forward_chain == DOCKER_USER {
        "filter"
    } else {
        "mangle"
    };
    let mut forward_hooks = Vec::new();
    let mut input_hooks = Vec::new();

    if strategy.filters_forward() {
        let mut rules = vec![RuleBuilder::new().matching(REPLIES).jump(INGRESS, "RETURN")];
        for ext in external_interfaces {
            for bridge in &bridges {
                rules.push(
                    RuleBuilder::new()
                        .in_interface(ext)
                        .out_interface(bridge)
                        .jump(INGRESS, INGRESS_POLICY),
                );
            }
        }
        desired
            .table_mut(forward_table)
            .chains
            .insert(INGRESS.into(), rules);
        add_ingress_policy(&mut desired, forward_table, config, family, &allow);
        forward_hooks.push(RuleBuilder::new().jump(facts.forward_chain, INGRESS));
    }

    if strategy.gates_prerouting() {
        // Only Docker's published ports: other tools' nat rules keep seeing everything else.
        let gate = per_published_port(external_interfaces, &facts.published, GATE, GATE_POLICY);
        let mut gate_policy = allow_rules(GATE_POLICY, family, &allow);
        if config.audit {
            // Audit: log what the gate would keep from Docker, keep nothing.
            gate_policy.extend(log_rule(config, GATE_POLICY, "in", "gate", family));
            gate_policy.push(RuleBuilder::new().jump(GATE_POLICY, "RETURN"));
        } else {
            gate_policy.push(RuleBuilder::new().jump(GATE_POLICY, "ACCEPT"));
        }
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
    }

    // Whatever is not DNAT-ed (refused by the gate, or IPv6 where Docker writes no IPv6 NAT)
    // lands in INPUT, where docker-proxy listens on the published ports of both families.
    let mut guard = vec![
        RuleBuilder::new()
            .matching(REPLIES)
            .jump(PROXY_GUARD, "RETURN"),
    ];
    guard.extend(per_published_port(
        external_interfaces,
        &facts.published,
        PROXY_GUARD,
        INGRESS_POLICY,
    ));
    desired
        .table_mut("filter")
        .chains
        .insert(PROXY_GUARD.into(), guard);
    input_hooks.push(RuleBuilder::new().jump("INPUT", PROXY_GUARD));

    add_ingress_policy(&mut desired, "filter", config, family, &allow);

    if config.egress.enabled() {
        let hooks = (&mut forward_hooks, &mut input_hooks);
        let forward = (forward_table, facts.forward_chain);
        add_egress(config, family, forward, &bridges, &mut desired, hooks);
    }
    if !forward_hooks.is_empty() {
        desired
            .table_mut(forward_table)
            .hooks
            .insert(facts.forward_chain.into(), forward_hooks);
    }
    desired
        .table_mut("filter")
        .hooks
        .insert("INPUT".into(), input_hooks);
    desired
}

/// `DFW-INGRESS-POLICY` and `DFW-INGRESS-DENY` in `table`.
fn add_ingress_policy(
    desired: &mut DesiredState,
    table: &str,
    config: &Config,
    family: Family,
    allow: &[&AllowEntry],
) {
    let mut policy = allow_rules(INGRESS_POLICY, family, allow);
    policy.push(RuleBuilder::new().jump(INGRESS_POLICY, INGRESS_DENY));
    let deny = ingress_deny(config, family, table == "filter");
    let t = desired.table_mut(table);
    t.chains.insert(INGRESS_POLICY.into(), policy);
    t.chains.insert(INGRESS_DENY.into(), deny);
}

/// Containers may not open connections to private ranges (FORWARD, via DOCKER-USER) or to the
/// host itself (INPUT from the Docker bridges), except to `egress.allow` destinations. Traffic
/// that stays on one Docker network is never touched.
fn add_egress(
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

/// The rate-limited LOG rule of a deny chain (none when logging is off). One hashlimit bucket
/// per source, destination and destination port, so a port scan cannot flood the log.
fn log_rule(
    config: &Config,
    chain: &str,
    direction: &str,
    bucket: &str,
    family: Family,
) -> Vec<Rule> {
    if !config.log.enabled {
        return Vec::new();
    }
    let mode = if config.audit { "audit" } else { "drop" };
    let prefix = format!("{}{direction}-{mode} ", config.log.prefix);
    // The kernel keeps a hashlimit table's first rate for as long as the name is in use, so the
    // name carries the rate: a new rate gets a new table.
    let rate = config.log.rate.iptables();
    let rate_tag = rate.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let family_digit = match family {
        Family::Ipv4 => 4,
        Family::Ipv6 => 6,
    };
    let bucket = format!("dfw-{bucket}{family_digit}-{:04x}", rate_tag & 0xffff);
    vec![
        RuleBuilder::new()
            .matching(format!(
                "-m hashlimit --hashlimit-upto {rate} --hashlimit-burst 5 --hashlimit-mode srcip,dstip,dstport --hashlimit-name {bucket}"
            ))
            .jump(chain, &format!("LOG --log-prefix {}", quote(&prefix))),
    ]
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
fn per_published_port(
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
fn ctorig_match(destination: Option<&str>, port: Option<&str>) -> String {
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

#[cfg(test)]
mod tests {
    use super::forward_chain;
    use crate::core::save::parse_save;

    fn chain_for(forward: &str) -> &'static str {
        let text = format!(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             :DOCKER - [0:0]\n:DOCKER-USER - [0:0]\n{forward}COMMIT\n"
        );
        forward_chain(&parse_save(&text).expect("parses"))
    }

    #[test]
    fn the_hook_goes_where_forwarded_traffic_meets_it_first() {
        // Docker's own order: DOCKER-USER first.
        assert_eq!(
            chain_for("-A FORWARD -j DOCKER-USER\n-A FORWARD -o docker0 -j DOCKER\n"),
            "DOCKER-USER"
        );
        // Our hook already first in FORWARD does not count as "something before DOCKER-USER".
        assert_eq!(
            chain_for(
                "-A FORWARD -m comment --comment \"docker_firewall:0123456789ab\" -j DFW-INGRESS\n\
                 -A FORWARD -j DOCKER-USER\n"
            ),
            "DOCKER-USER"
        );
        // Docker 20.10 after a firewalld reload: its ACCEPTs come before the DOCKER-USER jump.
        assert_eq!(
            chain_for(
                "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
                 -A FORWARD -o docker0 -j DOCKER\n-A FORWARD -j DOCKER-USER\n"
            ),
            "FORWARD"
        );
        // Docker 20.10's experimental IPv6: no DOCKER-USER jump at all.
        assert_eq!(chain_for("-A FORWARD -o docker0 -j DOCKER\n"), "FORWARD");
    }
}
