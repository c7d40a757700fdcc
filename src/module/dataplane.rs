//! The seam between a run and the packet filters: each dataplane (iptables: one plan per
//! family; nftables: one table) is planned from what it read, then applied, verified, reported
//! and rolled back through [`Dataplane`]. A run holds both: the chosen one carries the policy,
//! the other one plans to remove whatever it owned.

use super::{DiffEntry, FileChange};
use crate::system::System;
use anyhow::Result;

pub(crate) trait Dataplane {
    /// Nothing to change live.
    fn is_empty(&self) -> bool;
    /// What the report shows under `rules`: per key (`ipv4`, `ipv6`, `nftables`), what we own
    /// after the run (in check mode, what we would own).
    fn rules(&self, check_mode: bool) -> Vec<(String, String)>;
    /// What the report shows under `plan`, per key.
    fn actions(&self) -> Vec<(String, Vec<String>)>;
    /// The summary's words for this dataplane's changes (operations and files).
    fn summary(&self) -> Vec<String>;
    /// Before and after, for diff mode (rules and files that change).
    fn diff_entries(&self) -> Vec<DiffEntry>;
    /// The rules files this dataplane writes or removes.
    fn files(&self) -> Vec<&FileChange>;
    /// Applies the plan and verifies the read-back; on failure it has put back what it applied.
    fn apply(&mut self, system: &dyn System) -> Result<()>;
    /// Puts back what a successful [`Dataplane::apply`] changed (a later step failed).
    fn roll_back(&self, system: &dyn System) -> String;
}

/// Applies every dataplane in order (the one that protects first), then writes the rules files;
/// any failure puts back what was applied. Returns the files written.
pub(crate) fn apply_all(
    dataplanes: &mut [&mut dyn Dataplane],
    system: &dyn System,
) -> Result<Vec<String>> {
    for i in 0..dataplanes.len() {
        if let Err(e) = dataplanes[i].apply(system) {
            let undo = roll_back(&dataplanes[..i], system);
            return Err(if undo.is_empty() { e } else { e.context(undo) });
        }
    }
    let files: Vec<&FileChange> = dataplanes.iter().flat_map(|d| d.files()).collect();
    let mut persisted = Vec::new();
    if let Err(e) = super::apply::persist(&files, system, &mut persisted) {
        return Err(e.context(roll_back(dataplanes, system)));
    }
    Ok(persisted)
}

fn roll_back(dataplanes: &[&mut dyn Dataplane], system: &dyn System) -> String {
    dataplanes
        .iter()
        .rev()
        .filter(|d| !d.is_empty())
        .map(|d| d.roll_back(system))
        .collect::<Vec<_>>()
        .join(", ")
}
