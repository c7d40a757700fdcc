//! Before planning: the warnings a run reports and the refusals that stop it with nothing changed
//! (interfaces that would lock the host out, an SSH session egress.deny_host would cut, a
//! dataplane nothing reads).

use super::docker::DockerView;
use crate::core::desired::bridges_to_guard;
use crate::core::lockout::{Management, deny_host_refusal, external_interface_refusal};
use crate::core::policy::{Config, Dataplane, State, Strategy};
use crate::system::System;
use anyhow::{Result, bail};

pub(super) fn warnings_and_refusals(
    config: &Config,
    system: &dyn System,
    external: &[String],
    docker: &DockerView,
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
    if !docker.in_iptables && !docker.on_nftables {
        warnings.push(
            "Docker's chains were not found (is Docker running?); the hooks were put in place \
             so the policy holds as soon as Docker starts"
                .into(),
        );
    }
    Ok(warnings)
}
