//! The iptables dataplane's share of a run: one plan per family (owned chains and hooks), applied
//! with one iptables-restore per family (apply.rs), reported as iptables-save text.

use super::apply::{apply, roll_back};
use super::dataplane::Dataplane;
use super::read::iptables_name;
use super::{DiffEntry, FamilyRun, FileChange, file_entry};
use crate::core::policy::Backend;
use crate::system::System;
use anyhow::Result;
use std::collections::BTreeMap;

pub(crate) struct IptablesRun {
    pub(crate) runs: Vec<FamilyRun>,
    pub(crate) backend: Backend,
}

impl Dataplane for IptablesRun {
    fn is_empty(&self) -> bool {
        self.runs.iter().all(|r| r.plan.is_empty())
    }

    fn rules(&self, check_mode: bool) -> Vec<(String, String)> {
        self.runs
            .iter()
            .map(|r| {
                let text = match (&r.after, check_mode) {
                    (Some(after), _) => after.render(),
                    (None, true) => r.desired.render(&BTreeMap::new()),
                    (None, false) => r.live.render(),
                };
                (r.family.name().to_string(), text)
            })
            .collect()
    }

    fn actions(&self) -> Vec<(String, Vec<String>)> {
        self.runs
            .iter()
            .map(|r| (r.family.name().to_string(), r.plan.actions()))
            .collect()
    }

    fn summary(&self) -> Vec<String> {
        let mut parts = Vec::new();
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
        let mut out = Vec::new();
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
        self.runs.iter().filter_map(|r| r.file.as_ref()).collect()
    }

    fn apply(&mut self, system: &dyn System) -> Result<()> {
        apply(&mut self.runs, system, self.backend)
    }

    fn roll_back(&self, system: &dyn System) -> String {
        roll_back(&self.runs, system, self.backend)
    }
}
