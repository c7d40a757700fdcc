//! The nftables dataplane's share of a run: read our table (`nft -j`) and Docker's nftables
//! tables, plan (replace the table, delete it, or nothing), apply in one `nft -f` transaction,
//! read back, and roll back by feeding the listing read before the run back to nft.

use super::apply::with_failing_line;
use super::dataplane::Dataplane;
use super::{DiffEntry, FileChange, file_entry};
use crate::core::desired::DockerFacts;
use crate::core::nft::docker::{DOCKER_TABLE, docker_facts};
use crate::core::nft::live::{TableView, parse_view};
use crate::core::nft::{TABLE_FAMILY, TABLE_NAME, Table, delete_script, table_id};
pub(crate) use crate::core::nft::{docker_uses_nftables, has_table};
use crate::system::System;
use anyhow::{Result, anyhow};
use serde_json::{Value, json};

/// The ports and bridges Docker's nftables tables show, per family that has a table.
pub(crate) fn read_docker_facts(system: &dyn System, tables: &str) -> Result<Vec<DockerFacts>> {
    let mut out = Vec::new();
    for family in ["ip", "ip6"] {
        if has_table(tables, family, DOCKER_TABLE) {
            let json = system.nft(&["-j", "list", "table", family, DOCKER_TABLE], None)?;
            out.push(docker_facts(&json).map_err(|e| anyhow!("{family} {DOCKER_TABLE}: {e}"))?);
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NftPlan {
    Nothing,
    Replace,
    Delete,
}

pub(crate) struct NftRun {
    /// Our table's listing before the run (None: there was no table).
    pub(crate) live_json: Option<String>,
    pub(crate) live: Option<TableView>,
    pub(crate) desired: Option<Table>,
    pub(crate) plan: NftPlan,
    pub(crate) file: Option<FileChange>,
    /// The table as nft lists it before the run, for the diff (read only in diff mode).
    pub(crate) before_text: String,
}

impl NftRun {
    /// Reads our table (when `nft list tables` shows it) and plans against `desired`.
    pub(crate) fn plan(
        system: &dyn System,
        tables: Option<&str>,
        desired: Option<Table>,
    ) -> Result<NftRun> {
        let live_json = match tables {
            Some(t) if has_table(t, TABLE_FAMILY, TABLE_NAME) => {
                Some(system.nft(&["-j", "list", "table", TABLE_FAMILY, TABLE_NAME], None)?)
            }
            _ => None,
        };
        let live = live_json
            .as_deref()
            .map(parse_view)
            .transpose()
            .map_err(|e| anyhow!("table {}: {e}", table_id()))?;
        let plan = match (&live, &desired) {
            (None, None) => NftPlan::Nothing,
            (Some(_), None) => NftPlan::Delete,
            (live, Some(d)) if live.as_ref() == Some(&d.view()) => NftPlan::Nothing,
            (_, Some(_)) => NftPlan::Replace,
        };
        Ok(NftRun {
            live_json,
            live,
            desired,
            plan,
            file: None,
            before_text: String::new(),
        })
    }

    fn table_actions(&self) -> Vec<String> {
        let id = table_id();
        match (self.plan, &self.desired) {
            (NftPlan::Replace, Some(d)) => vec![format!(
                "{} table {id} ({} chains, {} rules, {} set elements)",
                if self.live.is_some() {
                    "replace"
                } else {
                    "create"
                },
                d.chains.len(),
                d.rule_count(),
                d.element_count()
            )],
            (NftPlan::Delete, _) => vec![format!("delete table {id}")],
            _ => Vec::new(),
        }
    }

    /// The `nft -f` script of the plan.
    fn script(&self) -> Option<String> {
        match (self.plan, &self.desired) {
            (NftPlan::Replace, Some(d)) => Some(d.replace_script()),
            (NftPlan::Delete, _) => Some(delete_script()),
            _ => None,
        }
    }

    /// One `nft -f` transaction, then the read-back must show the planned table (or none).
    fn apply_script(&self, system: &dyn System) -> Result<()> {
        let Some(script) = self.script() else {
            return Ok(());
        };
        system.nft(&["-f", "-"], Some(&script)).map_err(|e| {
            with_failing_line(format!("nftables: {e}"), failing_line(&e.stderr), &script)
        })?;
        let tables = system.nft_tables().unwrap_or_default();
        let after = NftRun::plan(system, Some(&tables), self.desired.clone())?;
        if after.is_empty() {
            Ok(())
        } else {
            Err(anyhow!(
                "nftables: the table read back after nft -f differs from the plan; still to do: {}",
                after.table_actions().join("; ")
            ))
        }
    }

    /// Puts our table back as it was before the run; says what happened.
    fn restore_before(&self, system: &dyn System) -> String {
        if self.is_empty() {
            return "nftables unchanged".into();
        }
        let result = match &self.live_json {
            None => system.nft(&["-f", "-"], Some(&delete_script())),
            Some(listing) => match restore_listing(listing) {
                Some(doc) => system.nft(&["-j", "-f", "-"], Some(&doc)),
                None => return "rolling back nftables FAILED: cannot read the old listing".into(),
            },
        };
        match result {
            Ok(_) => "nftables rolled back".into(),
            Err(e) => format!("rolling back nftables FAILED: {e}"),
        }
    }

    /// Reads the table as nft lists it, for the diff's "before" (empty when there is none).
    pub(crate) fn read_before_text(&mut self, system: &dyn System) {
        if self.live.is_some() && !self.is_empty() {
            self.before_text = system
                .nft(&["list", "table", TABLE_FAMILY, TABLE_NAME], None)
                .unwrap_or_else(|e| format!("# cannot list the table: {e}\n"));
        }
    }
}

impl Dataplane for NftRun {
    fn is_empty(&self) -> bool {
        self.plan == NftPlan::Nothing
    }

    fn rules(&self, _check_mode: bool) -> Vec<(String, String)> {
        if self.desired.is_none() && self.live.is_none() {
            return Vec::new();
        }
        let text = self.desired.as_ref().map(Table::render).unwrap_or_default();
        vec![("nftables".into(), text)]
    }

    fn actions(&self) -> Vec<(String, Vec<String>)> {
        if self.desired.is_none() && self.live.is_none() {
            return Vec::new();
        }
        vec![("nftables".into(), self.table_actions())]
    }

    fn summary(&self) -> Vec<String> {
        let mut parts = self.table_actions();
        parts.extend(
            self.file
                .iter()
                .filter(|f| f.changes())
                .map(FileChange::summary),
        );
        parts
    }

    fn diff_entries(&self) -> Vec<DiffEntry> {
        let mut out = Vec::new();
        if !self.is_empty() {
            let id = table_id();
            out.push(DiffEntry {
                before: self.before_text.clone(),
                after: self.desired.as_ref().map(Table::render).unwrap_or_default(),
                before_header: format!("nftables table {id}, live"),
                after_header: format!("nftables table {id}, planned"),
            });
        }
        out.extend(self.file.iter().filter(|f| f.changes()).map(file_entry));
        out
    }

    fn files(&self) -> Vec<&FileChange> {
        self.file.iter().collect()
    }

    fn apply(&mut self, system: &dyn System) -> Result<()> {
        self.apply_script(system)
            .map_err(|e| e.context(self.restore_before(system)))
    }

    fn roll_back(&self, system: &dyn System) -> String {
        self.restore_before(system)
    }
}

/// The rules file of the nftables dataplane: the script that replaces the table (loading it
/// twice is harmless), or `None` when the policy owns no table.
pub(crate) fn file_content(desired: Option<&Table>) -> Option<String> {
    desired.map(|d| {
        format!(
            "# Written by docker_firewall (dataplane: nftables). Load with: nft -f THIS_FILE\n\
             # (docker-firewall.service applies the policy itself at boot).\n{}",
            d.replace_script()
        )
    })
}

/// One JSON transaction: declare, delete, then every object of the old listing.
fn restore_listing(listing: &str) -> Option<String> {
    let doc: Value = serde_json::from_str(listing).ok()?;
    let table = json!({"family": TABLE_FAMILY, "name": TABLE_NAME});
    let mut items = vec![
        json!({"add": {"table": table}}),
        json!({"delete": {"table": table}}),
    ];
    items.extend(
        doc.get("nftables")?
            .as_array()?
            .iter()
            .filter(|o| o.get("metainfo").is_none())
            .cloned(),
    );
    Some(json!({ "nftables": items }).to_string())
}

/// The line number in nft's "FILE:LINE:COL-COL: Error" messages.
fn failing_line(stderr: &str) -> Option<usize> {
    stderr.lines().find_map(|l| {
        let (_, rest) = l.split_once(':')?;
        rest.split(':').next()?.parse().ok()
    })
}

/// The nftables dataplane needs nft.
pub(crate) fn require_nft(tables: Option<&str>) -> Result<()> {
    if tables.is_none() {
        return Err(anyhow!(
            "dataplane: nftables needs the nft command (Debian package nftables), which is not \
             installed; nothing was changed"
        ));
    }
    Ok(())
}
