//! Reading the host: which iptables backend holds Docker's chains, and its rulesets parsed.

use crate::core::names::{DOCKER, DOCKER_CHAINS};
use crate::core::policy::{Backend, BackendChoice, Config, Dataplane, DataplaneChoice, Family};
use crate::core::save::{Ruleset, incompatible_table_note, parse_save};
use crate::system::System;
use anyhow::{Context, Result, anyhow, bail};

/// How much of Docker a ruleset holds: its chains and their rules.
fn docker_weight(ruleset: &Ruleset) -> usize {
    ruleset
        .tables
        .iter()
        .map(|t| {
            let chains = t
                .chains
                .iter()
                .filter(|c| c.name.starts_with(DOCKER))
                .count();
            let rules = t
                .rules
                .iter()
                .filter(|r| r.chain.starts_with(DOCKER))
                .count();
            chains + rules
        })
        .sum()
}

pub(crate) fn has_docker_chains(ruleset: &Ruleset) -> bool {
    ruleset
        .tables
        .iter()
        .any(|t| DOCKER_CHAINS.iter().any(|c| t.has_chain(c)))
}

pub fn parse_saved(text: &str, family: Family, backend: Backend) -> Result<Ruleset<'_>> {
    if let Some(note) = incompatible_table_note(text) {
        bail!(
            "{}-{}-save cannot show this host's ruleset faithfully ({}): native nftables rules \
             live in an iptables table. Refusing to plan against an incomplete view; move those \
             rules to a table of their own",
            iptables_name(family),
            backend.name(),
            note.trim_start_matches(['#', ' '])
        );
    }
    parse_save(text).with_context(|| {
        format!(
            "cannot parse the output of {}-{}-save",
            iptables_name(family),
            backend.name()
        )
    })
}

pub(super) fn iptables_name(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "iptables",
        Family::Ipv6 => "ip6tables",
    }
}

/// The backend to use, and the IPv4 save text already read while choosing it.
fn choose_backend(config: &Config, system: &dyn System) -> Result<(Backend, Option<String>)> {
    if let BackendChoice::Fixed(backend) = config.backend {
        if !config
            .families
            .iter()
            .any(|f| system.has_tools(*f, backend))
        {
            bail!(
                "backend: the iptables-{0} tools (iptables-{0}-save, iptables-{0}-restore) are not installed",
                backend.name()
            );
        }
        return Ok((backend, None));
    }
    let mut best: Option<(Backend, usize, String)> = None;
    for backend in [Backend::Nft, Backend::Legacy] {
        if !system.has_tools(Family::Ipv4, backend) {
            continue;
        }
        let text = system.save(Family::Ipv4, backend)?;
        let weight = docker_weight(&parse_saved(&text, Family::Ipv4, backend)?);
        if weight > 0 && best.as_ref().is_none_or(|(_, w, _)| weight > *w) {
            best = Some((backend, weight, text));
        }
    }
    if let Some((backend, _, text)) = best {
        return Ok((backend, Some(text)));
    }
    let fallback = system
        .default_backend()
        .or_else(|| {
            [Backend::Nft, Backend::Legacy]
                .into_iter()
                .find(|b| system.has_tools(Family::Ipv4, *b))
        })
        .ok_or_else(|| {
            anyhow!("iptables is not installed (no iptables-save/iptables-restore found)")
        })?;
    Ok((fallback, None))
}

/// The host's rulesets as iptables-save prints them, per family, on the backend that holds
/// Docker's chains (or the one the config fixes), and warnings for the families skipped.
/// Read-only: takes no lock, changes nothing.
pub fn read_host(config: &Config, system: &dyn System) -> Result<HostRead> {
    let (backend, mut first_text) = choose_backend(config, system)?;
    let mut texts = Vec::new();
    let mut warnings = Vec::new();
    for &family in &config.families {
        if !system.has_tools(family, backend) {
            if family == Family::Ipv6 {
                warnings.push(format!(
                    "ipv6 skipped: ip6tables-{0}-save/ip6tables-{0}-restore are not installed",
                    backend.name()
                ));
                continue;
            }
            bail!(
                "ipv4: iptables-{0}-save/iptables-{0}-restore are not installed",
                backend.name()
            );
        }
        let text = match (family, first_text.take()) {
            (Family::Ipv4, Some(text)) => text,
            _ => system.save(family, backend)?,
        };
        texts.push((family, text));
    }
    Ok(HostRead {
        backend,
        texts,
        warnings,
    })
}

/// What [`read_host`] read.
pub struct HostRead {
    pub backend: Backend,
    /// Per family, the save text.
    pub texts: Vec<(Family, String)>,
    /// The families skipped, and why.
    pub warnings: Vec<String>,
}

/// [`read_host`], except on a host without iptables whose policy goes to nftables (Docker's
/// nftables backend, or `dataplane: nftables`): nothing of ours can be in iptables there.
pub(super) fn read_iptables(
    config: &Config,
    system: &dyn System,
    nft_tables: Option<&str>,
) -> Result<HostRead> {
    let wants_nft = config.dataplane == DataplaneChoice::Fixed(Dataplane::Nftables);
    let no_iptables = [Backend::Legacy, Backend::Nft]
        .iter()
        .all(|b| !system.has_tools(Family::Ipv4, *b));
    if no_iptables && (wants_nft || crate::core::nft::docker_uses_nftables(nft_tables)) {
        return Ok(HostRead {
            backend: Backend::Nft,
            texts: Vec::new(),
            warnings: Vec::new(),
        });
    }
    read_host(config, system)
}
