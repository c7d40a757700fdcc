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

mod docker_facts;
mod egress;
mod gate;
mod ingress;
mod logging;

use crate::core::owned::DesiredState;
use crate::core::policy::{AllowEntry, Config, Family, State};
use crate::core::rule::iptables::render_all;
use crate::core::rule::{Action, Rule, Unexpressible};

pub use crate::core::names::{
    DOCKER_USER, EGRESS, EGRESS_DENY, EGRESS_POLICY, GATE, GATE_POLICY, HOST_GUARD, HOST_POLICY,
    INGRESS, INGRESS_DENY, INGRESS_POLICY, PROXY_GUARD,
};
pub use docker_facts::{DockerFacts, PublishedPort};
pub use egress::IPV6_LINK_CONTROL;

/// The layout's chains and hooks, rendered for one family's tables as they are placed.
pub(super) struct Layout {
    family: Family,
    state: DesiredState,
}

impl Layout {
    /// `rules` become our chain `name` in `table`.
    pub(super) fn chain(
        &mut self,
        table: &str,
        name: &'static str,
        rules: &[Rule],
    ) -> Result<(), Unexpressible> {
        let rendered = render_all(name, self.family, rules)?;
        let t = self.state.table_mut(table);
        t.chains.insert(name.into(), rendered);
        Ok(())
    }

    /// `rules` become the first rules of the foreign chain `chain` in `table`.
    pub(super) fn hooks(
        &mut self,
        table: &str,
        chain: &str,
        rules: &[Rule],
    ) -> Result<(), Unexpressible> {
        let rendered = render_all(chain, self.family, rules)?;
        let t = self.state.table_mut(table);
        t.hooks.insert(chain.into(), rendered);
        Ok(())
    }
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
) -> Result<DesiredState, Unexpressible> {
    let mut layout = Layout {
        family,
        state: DesiredState::default(),
    };
    if config.state == State::Absent {
        return Ok(layout.state);
    }
    let strategy = config.strategy;
    // With their place in ingress.allow, which names their ipsets.
    let allow: Vec<(usize, &AllowEntry)> = config
        .ingress
        .allow
        .iter()
        .enumerate()
        .filter(|(_, e)| e.applies_to(family))
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
    let ext = external_interfaces;

    if strategy.filters_forward() {
        ingress::add_forward(&mut layout, forward_table, ext, &bridges, config, &allow)?;
        forward_hooks.push(Rule::always(Action::Jump(INGRESS)));
    }
    if strategy.gates_prerouting() {
        gate::add_gate(&mut layout, config, ext, facts, &allow)?;
    }
    ingress::add_proxy_guard(&mut layout, ext, &facts.published)?;
    input_hooks.push(Rule::always(Action::Jump(PROXY_GUARD)));
    ingress::add_policy(&mut layout, "filter", config, &allow)?;

    if config.egress.enabled() {
        let hooks = (&mut forward_hooks, &mut input_hooks);
        egress::add_egress(config, forward_table, &bridges, &mut layout, hooks)?;
    }
    if !forward_hooks.is_empty() {
        layout.hooks(forward_table, facts.forward_chain, &forward_hooks)?;
    }
    layout.hooks("filter", "INPUT", &input_hooks)?;
    Ok(layout.state)
}
