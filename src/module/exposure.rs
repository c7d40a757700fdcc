//! The exposure a run leaves (or, in check mode, would leave): the analysis of the rulesets
//! before, and after the plan's restore input, in words for the diff.

use super::FamilyRun;
use super::Remembered;
use super::docker::DockerView;
use super::ipsets::SetRun;
use super::nftables::{NftPlan, NftRun, has_table};
use crate::core::ipset::members_by_name;
use crate::core::names::DOCKER_NFT_TABLE;
use crate::core::nft::desired::desired_table;
use crate::core::nft::{TABLE_FAMILY, TABLE_NAME, Table, table_id};
use crate::core::policy::Family;
use crate::core::policy::{Config, Dataplane};
use crate::core::save::{Ruleset, parse_save};
use crate::exposure::SetMembers;
use crate::exposure::{
    Exposure, ForeignHook, HostView, Listener, PortExposure, after_restore, analyze,
    foreign_tables, hooks_in, parse_listeners, who_can_connect,
};
use crate::system::System;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;

/// What listens on the host, from /proc/net; `None` where it cannot be read.
pub fn listeners(system: &dyn System) -> Option<Vec<Listener>> {
    let mut out = Vec::new();
    let mut any = false;
    for (family, proto, file) in [
        (Family::Ipv4, "tcp", "/proc/net/tcp"),
        (Family::Ipv6, "tcp", "/proc/net/tcp6"),
        (Family::Ipv4, "udp", "/proc/net/udp"),
        (Family::Ipv6, "udp", "/proc/net/udp6"),
    ] {
        if let Ok(Some(text)) = system.read_file(Path::new(file)) {
            any = true;
            out.extend(parse_listeners(&text, family, proto));
        }
    }
    any.then_some(out)
}

/// The nftables tables beside iptables' on the path of published ports.
pub struct NftNeighbours {
    /// Other firewalls' base chains (our own table's too, where it exists): not evaluated.
    pub hooks: Vec<ForeignHook>,
    /// Docker's nftables backend, per family (`nft -j list table`): walked.
    pub docker: Vec<(Family, String)>,
    /// What could not be looked at.
    pub notes: Vec<String>,
}

/// Reads the tables of `tables` (`nft list tables`) that the analysis walks or names.
pub fn nft_neighbours(system: &dyn System, tables: Option<&str>) -> NftNeighbours {
    let Some(list) = tables else {
        return NftNeighbours {
            hooks: Vec::new(),
            docker: Vec::new(),
            notes: vec![
                "nft is not installed: other firewalls' own nftables tables (firewalld's, Docker's \
                 nftables backend) were not looked for; their rules could change these verdicts"
                    .into(),
            ],
        };
    };
    let mut hooks = Vec::new();
    let mut docker = Vec::new();
    let mut notes = Vec::new();
    for (family, name) in foreign_tables(list) {
        let docker_family = match family.as_str() {
            "ip" => Some(Family::Ipv4),
            "ip6" => Some(Family::Ipv6),
            _ => None,
        };
        if let (Some(f), DOCKER_NFT_TABLE) = (docker_family, name.as_str()) {
            match system.nft(&["-j", "list", "table", &family, &name], None) {
                Ok(json) => {
                    docker.push((f, json));
                    continue;
                }
                Err(e) => notes.push(format!("{e}: Docker's rules there are not walked")),
            }
        }
        hooks.extend(
            system
                .nft_table(&family, &name)
                .map(|listing| hooks_in(&family, &name, &listing))
                .unwrap_or_default(),
        );
    }
    NftNeighbours {
        hooks,
        docker,
        notes,
    }
}

/// Our own nftables table as the analysis sees it.
#[derive(Debug, Clone, Copy)]
pub enum OwnTable<'t> {
    Absent,
    /// Live, and equal to this table (read back: same chains, rule tags and set elements).
    Known(&'t Table),
    /// There, but not the table a policy at hand gives: shown as another firewall's (unknown).
    NotVerified,
}

impl<'t> OwnTable<'t> {
    /// What a run's nftables plan says of the table now (`after`: once the run is done).
    pub(super) fn of_run(nft: &'t NftRun, after: bool) -> OwnTable<'t> {
        match (after, &nft.live, &nft.desired) {
            (true, _, Some(d)) => OwnTable::Known(d),
            (true, _, None) | (false, None, _) => OwnTable::Absent,
            (false, Some(_), Some(d)) if nft.plan == NftPlan::Nothing => OwnTable::Known(d),
            (false, Some(_), _) => OwnTable::NotVerified,
        }
    }

    /// `hooks` without our table's (unless it cannot be modelled), the table to walk, and notes.
    pub fn apply(
        self,
        hooks: &[ForeignHook],
        notes: &[String],
    ) -> (Vec<ForeignHook>, Option<Table>, Vec<String>) {
        let others = || {
            let ours = |h: &&ForeignHook| h.family == TABLE_FAMILY && h.table == TABLE_NAME;
            hooks.iter().filter(|h| !ours(h)).cloned().collect()
        };
        let mut notes = notes.to_vec();
        let (hooks, table) = match self {
            OwnTable::NotVerified => {
                notes.push(format!(
                    "the nftables dataplane's table ({}) is not the one the policy gives (pass the \
                     policy applied with --policy, or apply it): its verdicts are unknown",
                    table_id()
                ));
                (hooks.to_vec(), None)
            }
            OwnTable::Known(t) => (others(), Some(t.clone())),
            OwnTable::Absent => (others(), None),
        };
        (hooks, table, notes)
    }
}

/// The exposure before the run and after its plan.
/// Above this many published ports (all families) a module run does not analyse the exposure:
/// the walk costs about a millisecond per port on a large host, and an Ansible run should not
/// pay seconds for it. `docker_firewall exposure` has no limit.
pub(super) const PORT_LIMIT: usize = 200;

pub(super) fn before_and_after(
    runs: &[FamilyRun],
    nft: &NftRun,
    sets: &SetRun,
    rulesets: &[(Family, Ruleset)],
    published: usize,
    external: &[String],
    system: &dyn System,
) -> Result<(Exposure, Exposure)> {
    if published > PORT_LIMIT {
        anyhow::bail!(
            "{published} published ports (more than {PORT_LIMIT}): run `docker_firewall exposure` \
             on the host for the report"
        );
    }
    let listening = listeners(system);
    let neighbours = nft_neighbours(system, system.nft_tables().as_deref());
    let view = |rulesets: Vec<(Family, Ruleset<'_>)>, own: OwnTable, members: SetMembers| {
        let (foreign_hooks, own_table, notes) = own.apply(&neighbours.hooks, &neighbours.notes);
        analyze(&HostView {
            rulesets,
            external: external.to_vec(),
            names: BTreeMap::new(),
            listeners: listening.clone(),
            foreign_hooks,
            own_table,
            docker_nft: neighbours.docker.clone(),
            notes,
            sets: members,
        })
    };
    let before = view(
        rulesets.to_vec(),
        OwnTable::of_run(nft, false),
        members_by_name(&sets.live),
    );
    let unchanged = runs.iter().all(|r| r.plan.is_empty()) && sets.plan.is_empty();
    if unchanged && nft.plan == NftPlan::Nothing {
        // nothing changes: the exposure after is the exposure now
        return Ok((before.clone(), before));
    }
    let mut texts = Vec::new();
    for (run, (family, ruleset)) in runs.iter().zip(rulesets) {
        texts.push((*family, after_restore(ruleset, &run.plan.restore_input())?));
    }
    let after_rulesets = texts
        .iter()
        .map(|(family, text)| Ok((*family, parse_save(text)?)))
        .collect::<Result<Vec<_>>>()?;
    let after = view(
        after_rulesets,
        OwnTable::of_run(nft, true),
        members_by_name(&sets.desired),
    );
    Ok((before, after))
}

fn key(p: &PortExposure) -> (&str, &str, &str, u16) {
    (p.family, &p.proto, &p.host_address, p.host_port)
}

/// `ipv4 8080/tcp -> 172.17.0.2:80: open to anyone -> only 203.0.113.0/24`, per port whose
/// answer changes.
pub(super) fn changes_in_words(before: &Exposure, after: &Exposure) -> Vec<String> {
    let mut out = Vec::new();
    for a in &after.ports {
        let old = before.ports.iter().find(|b| key(b) == key(a));
        let (was, now) = (old.map(who_can_connect), who_can_connect(a));
        if was.as_deref() != Some(now.as_str()) {
            out.push(format!(
                "{}: {} -> {now}",
                crate::exposure::port_words(a),
                was.as_deref().unwrap_or("not published")
            ));
        }
    }
    out
}

/// One line per port, for the diff's before and after.
pub(super) fn lines(exposure: &Exposure) -> String {
    exposure
        .ports
        .iter()
        .map(|p| {
            format!(
                "{}: {}\n",
                crate::exposure::port_words(p),
                who_can_connect(p)
            )
        })
        .collect()
}

/// For `docker_firewall exposure`: whether the host has our nftables table (`tables`: `nft list
/// tables`), and the table `config` gives on this host now when the live one reads back equal to
/// it.
pub fn live_own_table(
    config: &Config,
    system: &dyn System,
    rulesets: &[(Family, Ruleset)],
    external: &[String],
    tables: Option<&str>,
) -> Result<(bool, Option<Table>)> {
    let Some(list) = tables else {
        return Ok((false, None));
    };
    if !has_table(list, TABLE_FAMILY, TABLE_NAME) {
        return Ok((false, None));
    }
    let docker = DockerView::read(config, system, rulesets, Some(list), &Remembered::default())?;
    if docker.dataplane != Dataplane::Nftables {
        return Ok((true, None));
    }
    let desired = desired_table(config, external, &docker.all());
    let run = NftRun::plan(system, Some(list), desired)?;
    Ok((true, run.desired.filter(|_| run.plan == NftPlan::Nothing)))
}
