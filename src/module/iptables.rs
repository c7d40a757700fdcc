//! The iptables dataplane's share of a run: one plan per family (owned chains and hooks), applied
//! with one iptables-restore per family (apply.rs), reported as iptables-save text; and the
//! ipsets of large allow lists (ipsets.rs): filled before the restore that uses them, destroyed
//! after the restore that stops using them.

use super::apply::{apply, roll_back};
use super::dataplane::Dataplane;
use super::ipsets::SetRun;
use super::read::iptables_name;
use super::{DiffEntry, FamilyRun, FileChange, file_entry};
use crate::core::policy::Backend;
use crate::system::System;
use anyhow::Result;
use std::collections::BTreeMap;

pub(crate) struct IptablesRun {
    pub(crate) runs: Vec<FamilyRun>,
    pub(crate) backend: Backend,
    pub(crate) sets: SetRun,
}

impl IptablesRun {
    /// Whether the report shows the sets (some are ours live or wanted).
    fn shows_sets(&self) -> bool {
        !self.sets.live.is_empty() || !self.sets.desired.is_empty()
    }
}

impl Dataplane for IptablesRun {
    fn is_empty(&self) -> bool {
        self.runs.iter().all(|r| r.plan.is_empty()) && self.sets.plan.is_empty()
    }

    fn rules(&self, check_mode: bool) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        if self.shows_sets() {
            // Reported after a successful run or as the plan: the desired sets either way.
            let text = crate::core::ipset::render_save(&self.sets.desired);
            out.push(("ipsets".into(), text));
        }
        out.extend(self.runs.iter().map(|r| {
            let text = match (&r.after, check_mode) {
                (Some(after), _) => after.render(),
                (None, true) => r.desired.render(&BTreeMap::new()),
                (None, false) => r.live.render(),
            };
            (r.family.name().to_string(), text)
        }));
        out
    }

    fn actions(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = self
            .runs
            .iter()
            .map(|r| (r.family.name().to_string(), r.plan.actions()))
            .collect();
        if self.shows_sets() {
            out.push(("ipsets".into(), self.sets.plan.actions()));
        }
        out
    }

    fn summary(&self) -> Vec<String> {
        let mut parts = Vec::new();
        let set_operations = self.sets.plan.actions().len();
        if set_operations > 0 {
            parts.push(format!("ipsets: {set_operations} operation(s)"));
        }
        if let Some(file) = self.sets.file.as_ref().filter(|f| f.changes()) {
            parts.push(file.summary());
        }
        for r in &self.runs {
            let operations = r.plan.actions().len();
            if operations > 0 {
                parts.push(format!("{}: {operations} operation(s)", r.family.name()));
            }
            if let Some(file) = r.file.as_ref().filter(|f| f.changes()) {
                parts.push(file.summary());
            }
        }
        parts
    }

    fn diff_entries(&self) -> Vec<DiffEntry> {
        let mut out: Vec<DiffEntry> = self.sets.diff_entry().into_iter().collect();
        if let Some(file) = self.sets.file.as_ref().filter(|f| f.changes()) {
            out.push(file_entry(file));
        }
        for r in &self.runs {
            let before = r.live.render();
            let after = r.desired.render(&BTreeMap::new());
            if before != after || !r.plan.is_empty() {
                let what = format!(
                    "{} rules owned by docker_firewall ({}-{})",
                    r.family.name(),
                    iptables_name(r.family),
                    self.backend.name()
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
        out
    }

    fn files(&self) -> Vec<&FileChange> {
        // The sets file first: a rules file never names a set its companion lacks.
        let sets = self.sets.file.iter();
        sets.chain(self.runs.iter().filter_map(|r| r.file.as_ref()))
            .collect()
    }

    /// Sets first (a rule cannot name a missing set), then the rules, then the sets no rule
    /// uses any more (the kernel refuses to destroy a set in use); any failure puts back what
    /// was applied, rules before sets.
    fn apply(&mut self, system: &dyn System) -> Result<()> {
        if self.sets.plan.is_empty() {
            return apply(&mut self.runs, system, self.backend);
        }
        if let Err(e) = self.sets.fill(system) {
            return Err(e.context(self.sets.roll_back(system)));
        }
        if let Err(e) = apply(&mut self.runs, system, self.backend) {
            return Err(e.context(self.sets.roll_back(system)));
        }
        let finished = self
            .sets
            .destroy(system)
            .and_then(|()| self.sets.verify(system));
        finished.map_err(|e| e.context(self.roll_back(system)))
    }

    fn roll_back(&self, system: &dyn System) -> String {
        let mut notes = Vec::new();
        if self.runs.iter().any(|r| !r.plan.is_empty()) {
            notes.push(roll_back(&self.runs, system, self.backend));
        }
        if !self.sets.plan.is_empty() {
            notes.push(self.sets.roll_back(system));
        }
        notes.join(", ")
    }
}
