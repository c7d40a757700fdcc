//! Before planning: the warnings a run reports and the refusals that stop it with nothing changed
//! (interfaces that would lock the host out, an SSH session egress.deny_host would cut, a
//! dataplane nothing reads).

use super::docker::DockerView;
use crate::core::desired::bridges_to_guard;
use crate::core::ipset::entry_set;
use crate::core::lockout::{Management, deny_host_refusal, external_interface_refusal};
use crate::core::policy::{Backend, Config, Dataplane, Family, State, Strategy};
use crate::system::System;
use anyhow::{Result, bail};

/// Sources per allow entry and family above which one rule per source costs new connections 5%
/// of their rate (bench/conn_rate.sh, docs/benchmarks.md: about 170 on iptables-nft, 600 on
/// legacy), where a set lookup costs the same at any size.
const RULE_PER_SOURCE_LIMIT_NFT: usize = 200;
const RULE_PER_SOURCE_LIMIT_LEGACY: usize = 600;

pub(super) fn warnings_and_refusals(
    config: &Config,
    system: &dyn System,
    external: &[String],
    docker: &DockerView,
    backend: Backend,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    if config.state == State::Absent {
        return Ok(warnings);
    }
    if config.audit && !config.log.enabled {
        warnings.push(
            "audit is on and log.enabled is off: nothing is denied and nothing is logged".into(),
        );
    }
    if docker.dataplane == Dataplane::Iptables
        && config.strategy == Strategy::Prerouting
        && docker.facts.iter().all(|f| f.published.is_empty())
    {
        warnings.push(
            "strategy prerouting gates the ports Docker publishes when the module runs, and none \
             is published now: run the module again after starting containers, or use strategy \
             both, whose DOCKER-USER filter also covers ports published later"
                .into(),
        );
    }
    if docker.dataplane == Dataplane::Iptables {
        warnings.extend(large_allow_lists(config, backend));
    }
    let bridges: Vec<String> = docker
        .facts
        .iter()
        .flat_map(|f| bridges_to_guard(config, f))
        .collect();
    let explicit = config.external_interfaces.is_some();
    if let Some(why) = external_interface_refusal(external, explicit, &bridges) {
        bail!("{why}; nothing was changed");
    }
    if config.egress.deny_host {
        let ssh = system.ssh_connection();
        let management = ssh.as_deref().and_then(Management::parse);
        let routes = system.routes();
        if let Some(why) = deny_host_refusal(&config.egress, management.as_ref(), &routes, &bridges)
        {
            bail!("{why}; nothing was changed");
        }
    }
    if docker.dataplane == Dataplane::Iptables && docker.on_nftables && !docker.in_iptables {
        bail!(
            "dataplane: Docker runs its nftables firewall backend (Docker 29+, firewall-backend \
             nftables): it has no DOCKER-USER chain and does not read iptables rules, so the \
             iptables dataplane would write rules nothing reads. Use dataplane: nftables (or \
             auto); nothing was changed"
        );
    }
    if !docker.chains_seen && !docker.on_nftables {
        warnings.push(
            "Docker's chains were not found (is Docker running?); the hooks were put in place \
             so the policy holds as soon as Docker starts"
                .into(),
        );
    }
    Ok(warnings)
}

/// A warning per allow entry whose sources the iptables dataplane matches rule by rule at a
/// measurable cost (most get an ipset instead: core/ipset.rs; those with a `/0` among them do not).
fn large_allow_lists(config: &Config, backend: Backend) -> Vec<String> {
    let limit = match backend {
        Backend::Nft => RULE_PER_SOURCE_LIMIT_NFT,
        Backend::Legacy => RULE_PER_SOURCE_LIMIT_LEGACY,
    };
    let mut out = Vec::new();
    for (index, entry) in config.ingress.allow.iter().enumerate() {
        let largest = [Family::Ipv4, Family::Ipv6]
            .into_iter()
            .filter(|&f| entry_set(entry, index, f).is_none())
            .map(|f| entry.sources.iter().filter(|s| f.holds(s)).count())
            .max()
            .unwrap_or(0);
        if largest > limit {
            out.push(format!(
                "ingress.allow[{index}]: {largest} sources in one family become {largest} rules \
                 that every new connection walks (iptables-{}: above {limit} this costs new \
                 connections more than 5% of their rate, 78% at 10,000 on iptables-nft); \
                 dataplane: nftables matches them in one set lookup",
                backend.name()
            ));
        }
    }
    out
}
