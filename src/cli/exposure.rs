//! `docker_firewall exposure`: which published ports can whom reach, and why — on the live host,
//! or from saved iptables-save output (no root needed).

use crate::core::args::parse_args;
use crate::core::policy::{Config, Family};
use crate::core::save::{Ruleset, parse_save};
use crate::exposure::{Exposure, HostView, analyze, render_text};
use crate::module::exposure::OwnTable;
use crate::module::{self, parse_saved, policy_file};
use crate::system::System;
use crate::system::process::RealSystem;
use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub struct Options {
    pub from: Vec<PathBuf>,
    pub external: Vec<String>,
    pub policy: Option<PathBuf>,
    pub docker_socket: Option<PathBuf>,
    pub json: bool,
}

pub fn run(options: &Options) -> i32 {
    match report(options, &RealSystem) {
        Ok(exposure) => {
            let text = if options.json {
                serde_json::to_string_pretty(&exposure).map(|t| t + "\n")
            } else {
                Ok(render_text(&exposure))
            };
            match text {
                Ok(text) => {
                    super::apply::say(&text);
                    0
                }
                Err(e) => {
                    super::apply::complain(&format!("docker_firewall: cannot encode: {e}\n"));
                    1
                }
            }
        }
        Err(e) => {
            super::apply::complain(&format!("docker_firewall exposure: {e:#}\n"));
            1
        }
    }
}

pub fn report(options: &Options, system: &dyn System) -> Result<Exposure> {
    let config = match &options.policy {
        Some(path) => policy_file::load(path, system)?,
        None => parse_args(&serde_json::json!({}))?,
    };
    if options.from.is_empty() {
        live(options, &config, system)
    } else {
        from_files(options, &config, system)
    }
}

fn live(options: &Options, config: &Config, system: &dyn System) -> Result<Exposure> {
    let module::HostRead { backend, texts, .. } = module::read_host(config, system)?;
    let rulesets = texts
        .iter()
        .map(|(family, text)| Ok((*family, parse_saved(text, *family, backend)?)))
        .collect::<Result<Vec<_>>>()?;
    let external = if !options.external.is_empty() {
        options.external.clone()
    } else if let Some(list) = &config.external_interfaces {
        list.clone()
    } else {
        system.default_route_interfaces()
    };
    // names are a courtesy: without Docker's API the report has addresses only
    let socket = options
        .docker_socket
        .clone()
        .unwrap_or_else(crate::system::events::docker_socket_from_env);
    let names = crate::system::events::docker::container_names(&socket).unwrap_or_default();
    // one `nft list tables` for other tools' hooks and for our own table
    let tables = system.nft_tables();
    let neighbours = module::exposure::nft_neighbours(system, tables.as_deref());
    let (present, own) =
        module::exposure::live_own_table(config, system, &rulesets, &external, tables.as_deref())?;
    let own = match (present, &own) {
        (false, _) => OwnTable::Absent,
        (true, Some(table)) => OwnTable::Known(table),
        (true, None) => OwnTable::NotVerified,
    };
    let (foreign_hooks, own_table, notes) = own.apply(&neighbours.hooks, &neighbours.notes);
    Ok(analyze(&HostView {
        rulesets,
        external,
        names,
        listeners: module::exposure::listeners(system),
        foreign_hooks,
        own_table,
        docker_nft: neighbours.docker,
        notes,
        sets: live_sets(system),
    }))
}

/// Our ipsets' members, live; without ipset (or when it fails) none, and their rules stay unknown.
fn live_sets(system: &dyn System) -> crate::exposure::SetMembers {
    crate::module::ipsets::save_ours(system)
        .ok()
        .and_then(|text| crate::core::ipset::parse_save(&text).ok())
        .map(|sets| crate::core::ipset::members_by_name(&sets))
        .unwrap_or_default()
}

fn from_files(options: &Options, config: &Config, system: &dyn System) -> Result<Exposure> {
    if options.from.len() > 2 {
        bail!("--from: at most two files (one IPv4, one IPv6)");
    }
    let mut texts = Vec::new();
    for path in &options.from {
        let text = system
            .read_file(path)
            .with_context(|| format!("--from: cannot read {}", path.display()))?
            .ok_or_else(|| anyhow!("--from: {} does not exist", path.display()))?;
        texts.push((path, text));
    }
    let mut rulesets: Vec<(Family, Ruleset)> = Vec::new();
    for (index, (path, text)) in texts.iter().enumerate() {
        let ruleset = parse_save(text)
            .with_context(|| format!("--from {}: not iptables-save output", path.display()))?;
        let family = family_of(text).unwrap_or(if index == 0 {
            Family::Ipv4
        } else {
            Family::Ipv6
        });
        if rulesets.iter().any(|(f, _)| *f == family) {
            bail!(
                "--from {}: a second {} ruleset (give one IPv4 and one IPv6 file)",
                path.display(),
                family.name()
            );
        }
        rulesets.push((family, ruleset));
    }
    let external = if !options.external.is_empty() {
        options.external.clone()
    } else if let Some(list) = &config.external_interfaces {
        list.clone()
    } else {
        owned_external_interfaces(&rulesets)
    };
    Ok(analyze(&HostView {
        rulesets,
        external,
        names: BTreeMap::new(),
        listeners: None,
        foreign_hooks: Vec::new(),
        own_table: None,
        docker_nft: Vec::new(),
        notes: vec![
            "from saved iptables-save output: what listens on the host is assumed (docker-proxy on \
             every published port) and other firewalls' nftables tables are not seen"
                .into(),
            "from saved files: the members of ipsets are not known (rules matching a set are \
             unknown)"
                .into(),
        ],
        sets: BTreeMap::new(),
    }))
}

/// IPv6 when any address in the rules is IPv6, IPv4 when any is IPv4, else not known.
fn family_of(text: &str) -> Option<Family> {
    for word in text.split_whitespace() {
        let addr = word.split('/').next().unwrap_or(word);
        let addr = addr
            .trim_start_matches('[')
            .split(']')
            .next()
            .unwrap_or(addr);
        match addr.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(_)) => return Some(Family::Ipv6),
            Ok(std::net::IpAddr::V4(_)) => return Some(Family::Ipv4),
            Err(_) => {}
        }
    }
    None
}

/// The interfaces this product's own rules call external (`-i` in DFW-INGRESS), a wildcard
/// taken as one interface it covers; otherwise one interface no rule names.
fn owned_external_interfaces(rulesets: &[(Family, Ruleset)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (_, ruleset) in rulesets {
        let Some(filter) = ruleset.table("filter") else {
            continue;
        };
        for rule in filter.rules_of(crate::core::desired::INGRESS) {
            let args = crate::core::save::split_args(rule.spec);
            if let Some(name) = crate::core::save::option_value(&args, &["-i"]) {
                let name = match name.strip_suffix('+') {
                    Some(prefix) => format!("{prefix}0"),
                    None => name,
                };
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
    }
    if out.is_empty() {
        out.push(UNNAMED_INTERFACE.to_string());
    }
    out
}

/// An interface no rule names (no real interface name holds a space).
pub const UNNAMED_INTERFACE: &str = "any other";
