//! What the run tells: every dataplane's rules, plan, diff entries and summary words, the
//! exposure, and the one-line summary.

use super::dataplane::Dataplane;
use super::exposure;
use super::{DiffEntry, Remembered, Report};
use crate::core::policy::{Backend, Config, Dataplane as DataplaneChoice};
use crate::exposure::Exposure;
use std::collections::BTreeMap;

/// Everything a finished (or, in check mode, planned) run reports from.
pub(super) struct Outcome<'a> {
    pub(super) config: &'a Config,
    /// The chosen dataplane first.
    pub(super) dataplanes: [&'a dyn Dataplane; 2],
    pub(super) dataplane: DataplaneChoice,
    pub(super) backend: Backend,
    pub(super) changed: bool,
    pub(super) persisted: Vec<String>,
    pub(super) warnings: Vec<String>,
    pub(super) exposures: Option<(Exposure, Exposure)>,
    pub(super) docker: Remembered,
}

pub(super) fn build(o: Outcome) -> Report {
    let config = o.config;
    let mut rules = BTreeMap::new();
    let mut plan = BTreeMap::new();
    let mut diff_entries = Vec::new();
    let mut parts = Vec::new();
    for d in o.dataplanes {
        rules.extend(d.rules(config.check_mode));
        plan.extend(d.actions());
        diff_entries.extend(d.diff_entries());
        parts.extend(d.summary());
    }
    let exposure_changes = o
        .exposures
        .as_ref()
        .map(|(before, after)| exposure::changes_in_words(before, after))
        .unwrap_or_default();
    let diff = config.diff.then(|| {
        if let (Some((before, after)), false) = (&o.exposures, exposure_changes.is_empty()) {
            diff_entries.push(DiffEntry {
                before: exposure::lines(before),
                after: exposure::lines(after),
                before_header: "who can reach the published ports, before".into(),
                after_header: "who can reach the published ports, after".into(),
            });
        }
        diff_entries
    });
    let (exposure_before, exposure) = match o.exposures {
        Some((before, after)) => (config.check_mode.then_some(before), Some(after)),
        None => (None, None),
    };
    let msg = if !o.changed {
        "the firewall already matches the policy".to_string()
    } else if config.check_mode {
        format!("would apply: {}", parts.join(", "))
    } else {
        format!("applied: {}", parts.join(", "))
    };
    Report {
        changed: o.changed,
        msg,
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
