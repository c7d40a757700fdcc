//! The prerouting gate (strategies prerouting and both): nat `PREROUTING` -> `DFW-GATE` (Docker's
//! published ports) -> `DFW-GATE-POLICY`. Allowed traffic RETURNs and goes on to Docker's DNAT; the
//! rest is ACCEPTed in nat, i.e. never DNAT-ed, and meets the proxy guard in INPUT.

use super::ingress::{allow_rules, per_published_port};
use super::logging::log_rule;
use super::{DockerFacts, Layout};
use crate::core::names::{GATE, GATE_POLICY};
use crate::core::policy::{AllowEntry, Config};
use crate::core::rule::{Action, Match, Rule, Unexpressible};

pub(super) fn add_gate(
    layout: &mut Layout,
    config: &Config,
    external_interfaces: &[String],
    facts: &DockerFacts,
    allow: &[(usize, &AllowEntry)],
) -> Result<(), Unexpressible> {
    // Only Docker's published ports: other tools' nat rules keep seeing everything else.
    let gate = per_published_port(external_interfaces, &facts.published, GATE_POLICY);
    let mut gate_policy = allow_rules(layout.family, allow);
    if config.audit {
        // Audit: log what the gate would keep from Docker, keep nothing.
        gate_policy.extend(log_rule(config, "in", "gate", layout.family));
        gate_policy.push(Rule::always(Action::Return));
    } else {
        gate_policy.push(Rule::always(Action::Accept));
    }
    layout.chain("nat", GATE, &gate)?;
    layout.chain("nat", GATE_POLICY, &gate_policy)?;
    let hook = Rule::new(vec![Match::LocalDestination], Action::Jump(GATE));
    layout.hooks("nat", "PREROUTING", &[hook])
}
