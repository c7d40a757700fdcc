//! The prerouting gate (strategies prerouting and both): nat `PREROUTING` -> `DFW-GATE` (Docker's
//! published ports) -> `DFW-GATE-POLICY`. Allowed traffic RETURNs and goes on to Docker's DNAT; the
//! rest is ACCEPTed in nat, i.e. never DNAT-ed, and meets the proxy guard in INPUT.

use super::DockerFacts;
use super::ingress::{allow_rules, per_published_port};
use super::logging::log_rule;
use crate::core::names::{GATE, GATE_POLICY};
use crate::core::owned::DesiredState;
use crate::core::policy::{AllowEntry, Config, Family};
use crate::core::rule::RuleBuilder;

pub(super) fn add_gate(
    desired: &mut DesiredState,
    config: &Config,
    family: Family,
    external_interfaces: &[String],
    facts: &DockerFacts,
    allow: &[(usize, &AllowEntry)],
) {
    // Only Docker's published ports: other tools' nat rules keep seeing everything else.
    let gate = per_published_port(external_interfaces, &facts.published, GATE, GATE_POLICY);
    let mut gate_policy = allow_rules(GATE_POLICY, family, allow);
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
    let hook = RuleBuilder::new()
        .matching("-m addrtype --dst-type LOCAL")
        .jump("PREROUTING", GATE);
    nat.hooks.insert("PREROUTING".into(), vec![hook]);
}
