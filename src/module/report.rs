//! What the run tells: the diff entries (owned rules and rules files, before and after) and the
//! one-line summary.

use super::nftables::NftRun;
use super::read::iptables_name;
use super::{DiffEntry, FamilyRun};
use crate::core::nft::table_id;
use crate::core::policy::{Backend, Config, Family};
use std::collections::BTreeMap;

pub(super) fn diff_entries(runs: &[FamilyRun], backend: Backend, nft: &NftRun) -> Vec<DiffEntry> {
    let mut out = Vec::new();
    for r in runs {
        let before = r.live.render();
        let after = r.desired.render(&BTreeMap::new());
        if before != after || !r.plan.is_empty() {
            let what = format!(
                "{} rules owned by docker_firewall ({})",
                r.family.name(),
                iptables_backend_name(r.family, backend)
            );
            out.push(DiffEntry {
                before,
                after,
                before_header: format!("{what}, live"),
                after_header: format!("{what}, planned"),
            });
        }
        if let Some(file) = r.file.as_ref().filter(|f| f.changes()) {
            out.push(file_entry(file));
        }
    }
    if !nft.is_empty() {
        let id = table_id();
        out.push(DiffEntry {
            before: nft.before_text.clone(),
            after: nft.desired.as_ref().map(|d| d.render()).unwrap_or_default(),
            before_header: format!("nftables table {id}, live"),
            after_header: format!("nftables table {id}, planned"),
        });
    }
    if let Some(file) = nft.file.as_ref().filter(|f| f.changes()) {
        out.push(file_entry(file));
    }
    out
}

fn file_entry(file: &super::FileChange) -> DiffEntry {
    let path = file.path.display();
    DiffEntry {
        before: file.before.clone().unwrap_or_default(),
        after: file.after.clone().unwrap_or_default(),
        before_header: format!(
            "{path}{}",
            if file.before.is_some() {
                ""
            } else {
                " (absent)"
            }
        ),
        after_header: format!(
            "{path}{}",
            if file.after.is_some() {
                ""
            } else {
                " (removed)"
            }
        ),
    }
}

fn iptables_backend_name(family: Family, backend: Backend) -> String {
    format!("{}-{}", iptables_name(family), backend.name())
}

pub(super) fn summary(runs: &[FamilyRun], nft: &NftRun, config: &Config, changed: bool) -> String {
    if !changed {
        return "the firewall already matches the policy".into();
    }
    let mut parts = nft.actions();
    for r in runs {
        let operations = r.plan.actions().len();
        if operations > 0 {
            parts.push(format!("{}: {operations} operation(s)", r.family.name()));
        }
    }
    let files = runs.iter().filter_map(|r| r.file.as_ref());
    for file in files.chain(nft.file.as_ref()) {
        if file.changes() {
            let verb = if file.after.is_some() {
                "update"
            } else {
                "remove"
            };
            parts.push(format!("{verb} {}", file.path.display()));
        }
    }
    let lead = if config.check_mode {
        "would apply"
    } else {
        "applied"
    };
    format!("{lead}: {}", parts.join(", "))
}
