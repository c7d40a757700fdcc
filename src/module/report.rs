//! What the run tells: the diff entries (owned rules and rules files, before and after) and the
//! one-line summary.

use super::exposure;
use super::nftables::NftRun;
use super::read::iptables_name;
use super::{DiffEntry, FamilyRun, Remembered, Report};
use crate::core::nft::table_id;
use crate::core::policy::Dataplane;
use crate::core::policy::{Backend, Config, Family};
use crate::exposure::Exposure;
use std::collections::BTreeMap;

/// Everything a finished (or, in check mode, planned) run reports from.
pub(super) struct Outcome<'a> {
    pub(super) config: &'a Config,
    pub(super) runs: &'a [FamilyRun],
    pub(super) nft: &'a NftRun,
    pub(super) dataplane: Dataplane,
    pub(super) backend: Backend,
    pub(super) changed: bool,
    pub(super) persisted: Vec<String>,
    pub(super) warnings: Vec<String>,
    pub(super) exposures: Option<(Exposure, Exposure)>,
    pub(super) docker: Remembered,
}

pub(super) fn build(o: Outcome) -> Report {
    let Outcome {
        config, runs, nft, ..
    } = o;
    let mut rules: BTreeMap<String, String> = runs
        .iter()
        .map(|r| {
            let text = match (&r.after, config.check_mode) {
                (Some(after), _) => after.render(),
                (None, true) => r.desired.render(&BTreeMap::new()),
                (None, false) => r.live.render(),
            };
            (r.family.name().to_string(), text)
        })
        .collect();
    let mut plan: BTreeMap<String, Vec<String>> = runs
        .iter()
        .map(|r| (r.family.name().to_string(), r.plan.actions()))
        .collect();
    if o.dataplane == Dataplane::Nftables || !nft.is_empty() {
        let text = nft.desired.as_ref().map(|d| d.render()).unwrap_or_default();
        rules.insert("nftables".into(), text);
        plan.insert("nftables".into(), nft.actions());
    }
    let exposure_changes = o
        .exposures
        .as_ref()
        .map(|(before, after)| exposure::changes_in_words(before, after))
        .unwrap_or_default();
    let diff = config.diff.then(|| {
        let mut entries = diff_entries(runs, o.backend, nft);
        if let (Some((before, after)), false) = (&o.exposures, exposure_changes.is_empty()) {
            entries.push(DiffEntry {
                before: exposure::lines(before),
                after: exposure::lines(after),
                before_header: "who can reach the published ports, before".into(),
                after_header: "who can reach the published ports, after".into(),
            });
        }
        entries
    });
    let (exposure_before, exposure) = match o.exposures {
        Some((before, after)) => (config.check_mode.then_some(before), Some(after)),
        None => (None, None),
    };
    Report {
        changed: o.changed,
        msg: summary(runs, nft, config, o.changed),
        dataplane: o.dataplane.name().to_string(),
        backend: o.backend.name().to_string(),
        rules,
        persisted: o.persisted,
        warnings: o.warnings,
        plan,
        diff,
        exposure,
        exposure_before,
        exposure_changes,
        docker: o.docker,
    }
}

fn diff_entries(runs: &[FamilyRun], backend: Backend, nft: &NftRun) -> Vec<DiffEntry> {
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

fn summary(runs: &[FamilyRun], nft: &NftRun, config: &Config, changed: bool) -> String {
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
