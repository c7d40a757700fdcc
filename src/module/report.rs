//! What the run tells: the diff entries (owned rules and rules files, before and after) and the
//! one-line summary.

use super::read::iptables_name;
use super::{DiffEntry, FamilyRun};
use crate::core::policy::{Backend, Config, Family};
use std::collections::BTreeMap;

pub(super) fn diff_entries(runs: &[FamilyRun], backend: Backend) -> Vec<DiffEntry> {
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
            let path = file.path.display();
            out.push(DiffEntry {
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
            });
        }
    }
    out
}

fn iptables_backend_name(family: Family, backend: Backend) -> String {
    format!("{}-{}", iptables_name(family), backend.name())
}

pub(super) fn summary(runs: &[FamilyRun], config: &Config, changed: bool) -> String {
    if !changed {
        return "the firewall already matches the policy".into();
    }
    let mut parts = Vec::new();
    for r in runs {
        let operations = r.plan.actions().len();
        if operations > 0 {
            parts.push(format!("{}: {operations} operation(s)", r.family.name()));
        }
        if let Some(file) = r.file.as_ref().filter(|f| f.changes()) {
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
