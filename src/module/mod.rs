//! One module run: read, plan, (apply, verify, persist), report. The plan computed here drives
//! everything: check mode returns it, diff mode renders it, apply executes it, and the read-back
//! must plan to nothing. The phases live in their own files, in the order a run takes them.

mod apply;
mod checks;
mod dataplane;
mod docker;
pub mod exposure;
pub(crate) mod ipsets;
mod iptables;
mod nftables;
pub mod policy_file;
mod read;
mod report;

use crate::core::args::parse_args_text;
use crate::core::desired::{PublishedPort, desired_state};
use crate::core::ipset::{IpSet, desired_sets};
use crate::core::nft::desired::desired_table;
use crate::core::owned::{DesiredState, LiveState};
use crate::core::plan::{FamilyPlan, plan};
use crate::core::policy::{Config, Dataplane, Family, State};
use crate::core::rules_file::updated_content;
use crate::core::save::Ruleset;
use crate::system::System;
use anyhow::{Context, Result, anyhow, bail};
use dataplane::apply_all;
use docker::DockerView;
use iptables::IptablesRun;
use nftables::NftRun;
pub use read::{HostRead, parse_saved, read_host};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct DiffEntry {
    pub before: String,
    pub after: String,
    pub before_header: String,
    pub after_header: String,
}

/// The module's answer on success.
#[derive(Debug, Serialize)]
pub struct Report {
    pub changed: bool,
    pub msg: String,
    /// `iptables` or `nftables`.
    pub dataplane: String,
    pub backend: String,
    /// Per family, what we own after the run (predicted in check mode).
    pub rules: BTreeMap<String, String>,
    pub persisted: Vec<String>,
    pub warnings: Vec<String>,
    /// Per family, the planned operations.
    pub plan: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<Vec<DiffEntry>>,
    /// Who can reach each published port after the run (in check mode: what the change would
    /// produce).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposure: Option<crate::exposure::Exposure>,
    /// In check mode, the exposure now, beside the one the change would produce.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposure_before: Option<crate::exposure::Exposure>,
    /// The ports whose exposure the run changes (or would), in words.
    pub exposure_changes: Vec<String>,
    /// What Docker's rules show now (both families), for the watch service's memory.
    #[serde(skip)]
    pub docker: Remembered,
}

/// Runs the module with the args file at `args_path` and returns the JSON text to print.
pub fn execute(args_path: Option<&str>, system: &dyn System) -> String {
    let outcome = (|| -> Result<Report> {
        let path = args_path.ok_or_else(|| {
            anyhow!(
                "usage: docker_firewall ARGS_FILE (Ansible passes the path of a JSON args file)"
            )
        })?;
        let text = system
            .read_file(Path::new(path))
            .with_context(|| format!("cannot read the args file {path}"))?
            .ok_or_else(|| anyhow!("the args file {path} does not exist"))?;
        let config = parse_args_text(&text)?;
        run(&config, system)
    })();
    // Straight to text: the report can hold thousands of rules, no need for a Value copy.
    match outcome {
        Ok(report) => serde_json::to_string(&report)
            .unwrap_or_else(|e| failure(&format!("cannot encode the result: {e}")).to_string()),
        Err(e) => failure(&format!("{e:#}")).to_string(),
    }
}

pub fn failure(msg: &str) -> Value {
    json!({"failed": true, "changed": false, "msg": msg})
}

/// Everything known about one family during a run.
pub(crate) struct FamilyRun {
    pub(crate) family: Family,
    pub(crate) live: LiveState,
    pub(crate) desired: DesiredState,
    pub(crate) plan: FamilyPlan,
    pub(crate) after: Option<LiveState>,
    pub(crate) file: Option<FileChange>,
}

pub(crate) struct FileChange {
    pub(crate) path: PathBuf,
    pub(crate) before: Option<String>,
    pub(crate) after: Option<String>,
}

impl FileChange {
    pub(crate) fn changes(&self) -> bool {
        self.before != self.after
    }

    /// `update PATH` or `remove PATH`.
    pub(crate) fn summary(&self) -> String {
        let verb = if self.after.is_some() {
            "update"
        } else {
            "remove"
        };
        format!("{verb} {}", self.path.display())
    }
}

/// A rules file before and after, for diff mode.
pub(crate) fn file_entry(file: &FileChange) -> DiffEntry {
    let path = file.path.display();
    let before_note = if file.before.is_some() {
        ""
    } else {
        " (absent)"
    };
    let after_note = if file.after.is_some() {
        ""
    } else {
        " (removed)"
    };
    DiffEntry {
        before: file.before.clone().unwrap_or_default(),
        after: file.after.clone().unwrap_or_default(),
        before_header: format!("{path}{before_note}"),
        after_header: format!("{path}{after_note}"),
    }
}

pub fn run(config: &Config, system: &dyn System) -> Result<Report> {
    run_with(config, system, &Remembered::default())
}

/// Host ports and bridges Docker used, guarded beside what its rules show now (sorted, no
/// duplicates).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Remembered {
    pub published: Vec<PublishedPort>,
    #[serde(default)]
    pub bridges: Vec<String>,
}

impl Remembered {
    /// Everything in either.
    pub fn union(&self, other: &Remembered) -> Remembered {
        fn merged<T: Ord + Clone>(a: &[T], b: &[T]) -> Vec<T> {
            let mut all: Vec<T> = a.iter().chain(b).cloned().collect();
            all.sort();
            all.dedup();
            all
        }
        Remembered {
            published: merged(&self.published, &other.published),
            bridges: merged(&self.bridges, &other.bridges),
        }
    }
}

/// A run that also guards what Docker used before (`remembered`): the watch service passes it so
/// that while dockerd restarts, or the host boots, the guards do not shrink. Docker restores its
/// containers (docker-proxy listening, DNAT written) before its API answers, so the watcher can
/// only hear of them afterwards.
pub fn run_with(config: &Config, system: &dyn System, remembered: &Remembered) -> Result<Report> {
    // Held until the read-back is verified and the files are written: overlapping runs queue.
    let _lock = system
        .lock_run(std::time::Duration::from_secs(config.lock_timeout))
        .map_err(|e| anyhow!(e))?;
    let external = external_interfaces(config, system)?;
    // Read: nftables' table list, the iptables rulesets, what Docker shows.
    let nft_tables = system.nft_tables();
    let host = read::read_iptables(config, system, nft_tables.as_deref())?;
    let rulesets = host
        .texts
        .iter()
        .map(|(family, text)| Ok((*family, parse_saved(text, *family, host.backend)?)))
        .collect::<Result<Vec<_>>>()?;
    let docker = DockerView::read(config, system, &rulesets, nft_tables.as_deref(), remembered)?;
    let mut warnings = host.warnings.clone();
    warnings.extend(checks::warnings_and_refusals(
        config,
        system,
        &external,
        &docker,
        host.backend,
    )?);
    // Plan every dataplane: the chosen one gets the policy, the other one nothing.
    let mut runs = plan_families(config, &external, &rulesets, &docker)?;
    let mut sets = plan_sets(config, system, &runs, docker.dataplane)?;
    let nft_desired = match docker.dataplane {
        Dataplane::Nftables => desired_table(config, &external, &docker.all()),
        Dataplane::Iptables => None,
    };
    let mut nft_run = NftRun::plan(system, nft_tables.as_deref(), nft_desired)?;
    if config.diff {
        nft_run.read_before_text(system);
    }
    if config.persist {
        prepare_files(config, system, &mut runs, &mut nft_run)?;
        sets.file = Some(sets_file(config, system, &sets.desired)?);
    }
    // Before and after: iptables' rules and our nftables table, where the run knows it.
    let exposures = if config.analyse_exposure {
        let published = docker.facts.iter().map(|f| f.published.len()).sum();
        match exposure::before_and_after(
            &runs, &nft_run, &sets, &rulesets, published, &external, system,
        ) {
            Ok(pair) => Some(pair),
            Err(e) => {
                warnings.push(format!("exposure not analysed: {e:#}"));
                None
            }
        }
    } else {
        None
    };
    let mut iptables = IptablesRun {
        runs,
        backend: host.backend,
        sets,
    };
    let changed = [&iptables as &dyn dataplane::Dataplane, &nft_run]
        .iter()
        .any(|d| !d.is_empty() || d.files().iter().any(|f| f.changes()));
    let mut ordered: [&mut dyn dataplane::Dataplane; 2] = match docker.dataplane {
        Dataplane::Nftables => [&mut nft_run, &mut iptables],
        Dataplane::Iptables => [&mut iptables, &mut nft_run],
    };
    let persisted = if config.check_mode {
        Vec::new()
    } else {
        apply_all(&mut ordered, system)?
    };
    let [first, second] = ordered;
    Ok(report::build(report::Outcome {
        config,
        dataplanes: [&*first, &*second],
        dataplane: docker.dataplane,
        backend: host.backend,
        changed,
        persisted,
        warnings,
        exposures,
        docker: docker.seen,
    }))
}

/// The configured external interfaces, else those holding a default route.
fn external_interfaces(config: &Config, system: &dyn System) -> Result<Vec<String>> {
    let external = match &config.external_interfaces {
        Some(list) => list.clone(),
        None => system.default_route_interfaces(),
    };
    if external.is_empty() && config.state == State::Present {
        bail!(
            "external_interfaces: not set, and no interface holds a default route; \
             name the interfaces where outside traffic enters"
        );
    }
    Ok(external)
}

/// Per iptables family: what we own live, what the policy wants there, and the plan between.
fn plan_families(
    config: &Config,
    external: &[String],
    rulesets: &[(Family, Ruleset)],
    docker: &DockerView,
) -> Result<Vec<FamilyRun>> {
    rulesets
        .iter()
        .enumerate()
        .map(|(index, (family, ruleset))| {
            let live = LiveState::from_ruleset(ruleset);
            let desired = match docker.dataplane {
                Dataplane::Iptables => {
                    desired_state(config, *family, external, &docker.for_family(index))?
                }
                // Switching dataplanes removes what the other one owned.
                Dataplane::Nftables => DesiredState::default(),
            };
            let plan = plan(&live, &desired);
            Ok(FamilyRun {
                family: *family,
                live,
                desired,
                plan,
                after: None,
                file: None,
            })
        })
        .collect()
}

/// The ipsets the iptables dataplane's large allow entries need (in the families planned), and
/// ours as they are.
fn plan_sets(
    config: &Config,
    system: &dyn System,
    runs: &[FamilyRun],
    dataplane: Dataplane,
) -> Result<ipsets::SetRun> {
    let families: Vec<Family> = runs.iter().map(|r| r.family).collect();
    let desired = match (dataplane, config.state) {
        (Dataplane::Iptables, State::Present) => desired_sets(&config.ingress.allow, &families),
        _ => Vec::new(),
    };
    let live = ipsets::read_live(system, &desired)?;
    Ok(ipsets::SetRun::new(live, desired))
}

/// The boot-time sets file (`rules_ipset`) as it is and as the plan leaves it.
fn sets_file(config: &Config, system: &dyn System, desired: &[IpSet]) -> Result<FileChange> {
    let path = config.rules_ipset.clone();
    let before = system
        .read_file(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let after = crate::core::ipset::file_content(before.as_deref(), desired);
    Ok(FileChange {
        path,
        before,
        after,
    })
}

/// The rules files as they are and as the plan leaves them.
fn prepare_files(
    config: &Config,
    system: &dyn System,
    runs: &mut [FamilyRun],
    nft_run: &mut NftRun,
) -> Result<()> {
    let read = |path: &Path| {
        system
            .read_file(path)
            .with_context(|| format!("cannot read {}", path.display()))
    };
    for r in runs.iter_mut() {
        let path = config.rules_file(r.family).clone();
        let before = read(&path)?;
        let after = updated_content(before.as_deref(), &r.desired);
        r.file = Some(FileChange {
            path,
            before,
            after,
        });
    }
    let path = config.rules_nft.clone();
    let before = read(&path)?;
    let after = nftables::file_content(nft_run.desired.as_ref());
    nft_run.file = Some(FileChange {
        path,
        before,
        after,
    });
    Ok(())
}
