//! The iptables dataplane's ipsets in a run: read (`ipset save` of ours only), planned against
//! the sets the policy needs, filled before the rules that use them and destroyed after the
//! rules that used them are gone (iptables.rs orders the steps), read back, and put back as
//! they were when a step fails.

use super::apply::{failing_line, with_failing_line};
use super::{DiffEntry, FileChange};
use crate::core::ipset::{IpSet, SetPlan, is_ours, parse_save, plan_sets, render_save};
use crate::system::{CommandError, System};
use anyhow::{Result, anyhow};

pub(crate) struct SetRun {
    /// Ours as read before the run.
    pub(crate) live: Vec<IpSet>,
    pub(crate) desired: Vec<IpSet>,
    pub(crate) plan: SetPlan,
    /// The boot-time sets file (`rules_ipset`), with `persist`.
    pub(crate) file: Option<FileChange>,
}

/// Our sets in `ipset save` form: `ipset list -n` names every set, then one `ipset save NAME` per
/// set of ours, so another tool's large set (a country blocklist of 200,000 networks takes 0.2 s
/// and 5 MB to save) is never dumped. Only our runs touch our sets (the run lock), so none
/// disappears between the two.
pub(crate) fn save_ours(system: &dyn System) -> Result<String, CommandError> {
    let names = system.ipset(&["list", "-n"], None)?;
    let mut out = String::new();
    for name in names.lines().map(str::trim).filter(|n| is_ours(n)) {
        out.push_str(&system.ipset(&["save", name], None)?);
    }
    Ok(out)
}

/// Ours, read (see `save_ours`). Where ipset is missing or cannot work (no ip_set in the kernel, a
/// container) and no set is wanted, there is nothing of ours to see: no set could have been
/// made there, and a warning on every run of a host that never uses sets would be noise. Where
/// sets are wanted, the failure is the run's.
pub(crate) fn read_live(system: &dyn System, desired: &[IpSet]) -> Result<Vec<IpSet>> {
    match save_ours(system) {
        Ok(text) => parse_save(&text).map_err(|e| anyhow!(e)),
        Err(_) if desired.is_empty() => Ok(Vec::new()),
        Err(e) => {
            let first = &desired[0];
            Err(anyhow!(
                "{} ({} sources): allow entries with {} or more sources of a family are matched \
                 with an ipset on the iptables dataplane, and ipset cannot be used: {e}; install \
                 ipset (Debian package ipset) or use dataplane: nftables",
                first.name,
                first.members.len(),
                crate::core::ipset::SET_THRESHOLD
            ))
        }
    }
}

impl SetRun {
    pub(crate) fn new(live: Vec<IpSet>, desired: Vec<IpSet>) -> Self {
        let plan = plan_sets(&live, &desired);
        SetRun {
            live,
            desired,
            plan,
            file: None,
        }
    }

    pub(crate) fn before_text(&self) -> String {
        let sets: Vec<IpSet> = self.live.iter().filter(|s| !is_temp(s)).cloned().collect();
        render_save(&sets)
    }

    pub(crate) fn diff_entry(&self) -> Option<DiffEntry> {
        if self.plan.is_empty() {
            return None;
        }
        Some(DiffEntry {
            before: self.before_text(),
            after: render_save(&self.desired),
            before_header: "ipsets owned by docker_firewall, live".into(),
            after_header: "ipsets owned by docker_firewall, planned".into(),
        })
    }

    /// Creates and refills what the rules will use: before the iptables restore.
    pub(crate) fn fill(&self, system: &dyn System) -> Result<()> {
        restore(system, &self.plan.fill_script())
    }

    /// Destroys what no rule uses any more: after the iptables restore.
    pub(crate) fn destroy(&self, system: &dyn System) -> Result<()> {
        restore(system, &self.plan.destroy_script())
    }

    /// Ours read back must be exactly the desired sets.
    pub(crate) fn verify(&self, system: &dyn System) -> Result<()> {
        let text = save_ours(system)?;
        let now = parse_save(&text).map_err(|e| anyhow!(e))?;
        let left = plan_sets(&now, &self.desired);
        if left.is_empty() {
            Ok(())
        } else {
            Err(anyhow!(
                "the ipsets read back after ipset restore differ from the plan; still to do: {}",
                left.actions().join("; ")
            ))
        }
    }

    /// Puts our sets back as they were before the run (every rule that uses them must be back
    /// first); says what happened.
    pub(crate) fn roll_back(&self, system: &dyn System) -> String {
        let result = (|| -> Result<()> {
            let text = save_ours(system)?;
            let now = parse_save(&text).map_err(|e| anyhow!(e))?;
            let before: Vec<IpSet> = self.live.iter().filter(|s| !is_temp(s)).cloned().collect();
            let back = plan_sets(&now, &before);
            restore(system, &(back.fill_script() + &back.destroy_script()))
        })();
        match result {
            Ok(()) => "ipsets rolled back".into(),
            Err(e) => format!("rolling back ipsets FAILED: {e:#}"),
        }
    }
}

fn is_temp(set: &IpSet) -> bool {
    crate::core::ipset::is_temp(&set.name)
}

/// `ipset restore` of `script`; the error names the command, its stderr and the failing line.
fn restore(system: &dyn System, script: &str) -> Result<()> {
    if script.is_empty() {
        return Ok(());
    }
    system
        .ipset(&["restore"], Some(script))
        .map(|_| ())
        .map_err(|e| with_failing_line(e.to_string(), failing_line(&e.stderr), script))
}
