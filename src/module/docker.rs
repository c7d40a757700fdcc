//! What Docker shows (its iptables chains, its nftables tables) and so which dataplane carries the
//! policy, with the published ports and bridges every family plans from.

use super::Remembered;
use super::nftables::{docker_uses_nftables, has_table, read_docker_facts, require_nft};
use super::read::has_docker_chains;
use crate::core::desired::DockerFacts;
use crate::core::names::{DOCKER_CHAINS, DOCKER_USER};
use crate::core::nft::{TABLE_FAMILY, TABLE_NAME};
use crate::core::policy::{Config, Dataplane, DataplaneChoice, Family};
use crate::core::save::Ruleset;
use crate::system::System;
use anyhow::Result;

pub(crate) struct DockerView {
    pub(crate) dataplane: Dataplane,
    /// Docker runs its nftables firewall backend (`docker-bridges` tables).
    pub(crate) on_nftables: bool,
    /// Docker's own chains (more than a DOCKER-USER) are in the iptables rulesets read.
    pub(crate) in_iptables: bool,
    /// Any of Docker's chains, DOCKER-USER included, is there.
    pub(crate) chains_seen: bool,
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
        // Docker's own iptables chains; not DOCKER-USER alone, which our iptables run creates
        // when Docker is not running.
        let docker_iptables = rulesets.iter().any(|(_, r)| {
            r.tables.iter().any(|t| {
                DOCKER_CHAINS
                    .iter()
                    .any(|c| *c != DOCKER_USER && t.has_chain(c))
            })
        });
        let our_table = nft_tables.is_some_and(|t| has_table(t, TABLE_FAMILY, TABLE_NAME));
        let dataplane = match config.dataplane {
            DataplaneChoice::Fixed(d) => d,
            DataplaneChoice::Auto if on_nftables && !docker_iptables => Dataplane::Nftables,
            // Docker is not running: the dataplane already in place stays.
            DataplaneChoice::Auto if !on_nftables && !docker_iptables && our_table => {
                Dataplane::Nftables
            }
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
            in_iptables: docker_iptables,
            chains_seen: rulesets.iter().any(|(_, r)| has_docker_chains(r)),
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
