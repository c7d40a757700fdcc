//! What Docker shows (its iptables chains, its nftables tables) and so which dataplane carries the
//! policy, with the published ports and bridges every family plans from.

use super::Remembered;
use super::nftables::{docker_uses_nftables, read_docker_facts, require_nft};
use super::read::has_docker_chains;
use crate::core::desired::{DOCKER_USER, DockerFacts};
use crate::core::policy::{Config, Dataplane, DataplaneChoice, Family};
use crate::core::save::Ruleset;
use crate::system::System;
use anyhow::Result;

pub(crate) struct DockerView {
    pub(crate) dataplane: Dataplane,
    /// Docker runs its nftables firewall backend (`docker-bridges` tables).
    pub(crate) on_nftables: bool,
    /// Docker's chains are in the iptables rulesets read.
    pub(crate) in_iptables: bool,
    /// Per iptables family (in the order read), then per Docker nftables table.
    pub(crate) facts: Vec<DockerFacts>,
    /// What Docker's rules show in both families, before remembered extras (for the watcher).
    pub(crate) seen: Remembered,
}

impl DockerView {
    pub(crate) fn read(
        config: &Config,
        system: &dyn System,
        rulesets: &[(Family, Ruleset)],
        nft_tables: Option<&str>,
        remembered: &Remembered,
    ) -> Result<DockerView> {
        let on_nftables = docker_uses_nftables(nft_tables);
        let has_docker_user = rulesets
            .iter()
            .any(|(_, r)| r.table("filter").is_some_and(|t| t.has_chain(DOCKER_USER)));
        let dataplane = match config.dataplane {
            DataplaneChoice::Fixed(d) => d,
            DataplaneChoice::Auto if on_nftables && !has_docker_user => Dataplane::Nftables,
            DataplaneChoice::Auto => Dataplane::Iptables,
        };
        if dataplane == Dataplane::Nftables {
            require_nft(nft_tables)?;
        }
        let mut facts: Vec<DockerFacts> =
            rulesets.iter().map(|(_, r)| DockerFacts::read(r)).collect();
        if let Some(tables) = nft_tables.filter(|_| on_nftables && dataplane == Dataplane::Nftables)
        {
            facts.extend(read_docker_facts(system, tables)?);
        }
        let both = DockerFacts::default().with_ports_of(&facts);
        let seen = Remembered {
            published: both.published,
            bridges: both.bridges,
        };
        if facts.is_empty() {
            facts.push(DockerFacts::default());
        }
        if let Some(first) = facts.first_mut() {
            // with_ports_of shares the first entry's extras with every family
            first.published.extend(remembered.published.iter().cloned());
            first.bridges.extend(remembered.bridges.iter().cloned());
        }
        Ok(DockerView {
            dataplane,
            on_nftables,
            in_iptables: rulesets.iter().any(|(_, r)| has_docker_chains(r)),
            facts,
            seen,
        })
    }

    /// What one family plans from: its own facts with the ports and bridges of all.
    pub(crate) fn for_family(&self, index: usize) -> DockerFacts {
        self.facts
            .get(index)
            .cloned()
            .unwrap_or_default()
            .with_ports_of(&self.facts)
    }

    /// The ports and bridges of every family and table.
    pub(crate) fn all(&self) -> DockerFacts {
        DockerFacts::default().with_ports_of(&self.facts)
    }
}
