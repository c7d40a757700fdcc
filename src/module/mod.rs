//! One module run: read, plan, (apply, verify, persist), report. The plan computed here drives
//! everything: check mode returns it, diff mode renders it, apply executes it, and the read-back
//! must plan to nothing. The phases live in their own files, in the order a run takes them.

mod apply;
pub mod exposure;
mod nftables;
pub mod policy_file;
mod read;
mod report;

use crate::core::args::parse_args_text;
use crate::core::desired::{
    DOCKER_USER, DockerFacts, PublishedPort, bridges_to_guard, desired_state,
};
use crate::core::lockout::{Management, deny_host_refusal, external_interface_refusal};
use crate::core::nft::desired::desired_table;
use crate::core::owned::{DesiredState, LiveState};
use crate::core::plan::{FamilyPlan, plan};
use crate::core::policy::{Backend, Config, Dataplane, DataplaneChoice, Family, State, Strategy};
use crate::core::rules_file::updated_content;
use crate::system::System;
use anyhow::{Context, Result, anyhow, bail};
use apply::{apply, persist, roll_back};
use nftables::NftRun;
pub use read::parse_saved;
use read::{choose_backend, has_docker_chains};
use report::{diff_entries, summary};
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
}

/// The host's rulesets as iptables-save prints them, per family, on the backend that holds
/// Docker's chains (or the one the config fixes), and warnings for the families skipped.
/// Read-only: takes no lock, changes nothing.
pub fn read_host(config: &Config, system: &dyn System) -> Result<HostRead> {
    let (backend, mut first_text) = choose_backend(config, system)?;
    let mut texts = Vec::new();
    let mut warnings = Vec::new();
    for &family in &config.families {
        if !system.has_tools(family, backend) {
            if family == Family::Ipv6 {
                warnings.push(format!(
                    "ipv6 skipped: ip6tables-{0}-save/ip6tables-{0}-restore are not installed",
                    backend.name()
                ));
                continue;
            }
            bail!(
                "ipv4: iptables-{0}-save/iptables-{0}-restore are not installed",
                backend.name()
            );
        }
        let text = match (family, first_text.take()) {
            (Family::Ipv4, Some(text)) => text,
            _ => system.save(family, backend)?,
        };
        texts.push((family, text));
    }
    Ok(HostRead {
        backend,
        texts,
        warnings,
    })
}

/// What [`read_host`] read.
pub struct HostRead {
    pub backend: Backend,
    /// Per family, the save text.
    pub texts: Vec<(Family, String)>,
    /// The families skipped, and why.
    pub warnings: Vec<String>,
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
    let mut warnings = Vec::new();
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
    let nft_tables = system.nft_tables();
    let docker_on_nft = nftables::docker_uses_nftables(nft_tables.as_deref());
    let wants_nft = config.dataplane == DataplaneChoice::Fixed(Dataplane::Nftables);
    let no_iptables = [Backend::Legacy, Backend::Nft]
        .iter()
        .all(|b| !system.has_tools(Family::Ipv4, *b));
    let HostRead {
        backend,
        texts,
        warnings: skipped,
    } = if no_iptables && (docker_on_nft || wants_nft) {
        // A host without iptables: nothing of ours can be there either.
        HostRead {
            backend: Backend::Nft,
            texts: Vec::new(),
            warnings: Vec::new(),
        }
    } else {
        read_host(config, system)?
    };
    warnings.extend(skipped);
    let rulesets = texts
        .iter()
        .map(|(family, text)| Ok((*family, parse_saved(text, *family, backend)?)))
        .collect::<Result<Vec<_>>>()?;
    let docker_in_iptables = rulesets.iter().any(|(_, r)| has_docker_chains(r));
    let saw_docker = docker_in_iptables || docker_on_nft;
    let has_docker_user = rulesets
        .iter()
        .any(|(_, r)| r.table("filter").is_some_and(|t| t.has_chain(DOCKER_USER)));
    let dataplane = match config.dataplane {
        DataplaneChoice::Fixed(d) => d,
        DataplaneChoice::Auto if docker_on_nft && !has_docker_user => Dataplane::Nftables,
        DataplaneChoice::Auto => Dataplane::Iptables,
    };
    if dataplane == Dataplane::Nftables {
        nftables::require_nft(nft_tables.as_deref())?;
    }
    // Per iptables family, then per Docker nftables table: what Docker publishes.
    let mut facts: Vec<DockerFacts> = rulesets.iter().map(|(_, r)| DockerFacts::read(r)).collect();
    if let Some(tables) = nft_tables
        .as_deref()
        .filter(|_| docker_on_nft && dataplane == Dataplane::Nftables)
    {
        facts.extend(nftables::read_docker_facts(system, tables)?);
    }
    // What Docker's rules show in both families, before the remembered extras are added.
    let seen = DockerFacts::default().with_ports_of(&facts);
    let docker = Remembered {
        published: seen.published,
        bridges: seen.bridges,
    };
    if facts.is_empty() {
        facts.push(DockerFacts::default());
    }
    if let Some(first) = facts.first_mut() {
        // with_ports_of below shares the first family's extras with every family
        first.published.extend(remembered.published.iter().cloned());
        first.bridges.extend(remembered.bridges.iter().cloned());
    }
    if config.state == State::Present && config.audit && !config.log.enabled {
        warnings.push(
            "audit is on and log.enabled is off: nothing is denied and nothing is logged".into(),
        );
    }
    if config.state == State::Present
        && dataplane == Dataplane::Iptables
        && config.strategy == Strategy::Prerouting
        && facts.iter().all(|f| f.published.is_empty())
    {
        warnings.push(
            "strategy prerouting gates the ports Docker publishes when the module runs, and none \
             is published now: run the module again after starting containers, or use strategy \
             both, whose DOCKER-USER filter also covers ports published later"
                .into(),
        );
    }
    if config.state == State::Present {
        let mut bridges = Vec::new();
        for f in &facts {
            bridges.extend(bridges_to_guard(config, f));
        }
        let explicit = config.external_interfaces.is_some();
        if let Some(why) = external_interface_refusal(&external, explicit, &bridges) {
            bail!("{why}; nothing was changed");
        }
        if config.egress.deny_host {
            let ssh = system.ssh_connection();
            let management = ssh.as_deref().and_then(Management::parse);
            let routes = system.routes();
            if let Some(why) =
                deny_host_refusal(&config.egress, management.as_ref(), &routes, &bridges)
            {
                bail!("{why}; nothing was changed");
            }
        }
    }
    let mut runs: Vec<FamilyRun> = Vec::new();
    for ((family, ruleset), own) in rulesets.iter().zip(&facts) {
        let live = LiveState::from_ruleset(ruleset);
        let desired = match dataplane {
            Dataplane::Iptables => {
                desired_state(config, *family, &external, &own.with_ports_of(&facts))
            }
            // Switching dataplanes removes what the other one owned.
            Dataplane::Nftables => DesiredState::default(),
        };
        let plan = plan(&live, &desired);
        runs.push(FamilyRun {
            family: *family,
            live,
            desired,
            plan,
            after: None,
            file: None,
        });
    }

    if config.state == State::Present
        && dataplane == Dataplane::Iptables
        && docker_on_nft
        && !docker_in_iptables
    {
        bail!(
            "dataplane: Docker runs its nftables firewall backend (Docker 29+, firewall-backend \
             nftables): it has no DOCKER-USER chain and does not read iptables rules, so the \
             iptables dataplane would write rules nothing reads. Use dataplane: nftables (or \
             auto); nothing was changed"
        );
    }
    let nft_desired = match dataplane {
        Dataplane::Nftables => desired_table(
            config,
            &external,
            &DockerFacts::default().with_ports_of(&facts),
        ),
        Dataplane::Iptables => None,
    };
    let mut nft_run = NftRun::plan(system, nft_tables.as_deref(), nft_desired)?;
    if config.diff {
        nft_run.read_before_text(system);
    }
    if config.state == State::Present && !saw_docker {
        warnings.push(
            "Docker's chains were not found (is Docker running?); the hooks were put in place \
             so the policy holds as soon as Docker starts"
                .into(),
        );
    }

    if config.persist {
        for r in &mut runs {
            let path = config.rules_file(r.family).clone();
            let before = system
                .read_file(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let after = updated_content(before.as_deref(), &r.desired);
            r.file = Some(FileChange {
                path,
                before,
                after,
            });
        }
        let path = config.rules_nft.clone();
        let before = system
            .read_file(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let after = nftables::file_content(nft_run.desired.as_ref());
        nft_run.file = Some(FileChange {
            path,
            before,
            after,
        });
    }

    // The exposure analysis walks iptables rules; the nftables dataplane's table is not modelled.
    let exposures = if config.analyse_exposure && dataplane == Dataplane::Iptables {
        let published = facts.iter().map(|f| f.published.len()).sum();
        match exposure::before_and_after(&runs, &rulesets, published, &external, system) {
            Ok(pair) => Some(pair),
            Err(e) => {
                warnings.push(format!("exposure not analysed: {e:#}"));
                None
            }
        }
    } else {
        None
    };
    let live_changes = runs.iter().any(|r| !r.plan.is_empty()) || !nft_run.is_empty();
    let files: Vec<&FileChange> = runs
        .iter()
        .filter_map(|r| r.file.as_ref())
        .chain(nft_run.file.as_ref())
        .collect();
    let file_changes = files.iter().any(|f| f.changes());
    let mut persisted = Vec::new();
    if !config.check_mode {
        // The dataplane that protects goes in first, then the other one's rules go.
        if dataplane == Dataplane::Nftables {
            nft_run
                .apply(system)
                .map_err(|e| e.context(nft_run.roll_back(system)))?;
            if let Err(e) = apply(&mut runs, system, backend) {
                return Err(e.context(nft_run.roll_back(system)));
            }
        } else {
            apply(&mut runs, system, backend)?;
            if let Err(e) = nft_run.apply(system) {
                let undo = format!(
                    "{}, {}",
                    nft_run.roll_back(system),
                    roll_back(&runs, system, backend)
                );
                return Err(e.context(undo));
            }
        }
        let files: Vec<&FileChange> = runs
            .iter()
            .filter_map(|r| r.file.as_ref())
            .chain(nft_run.file.as_ref())
            .collect();
        if let Err(e) = persist(&files, system, &mut persisted) {
            let undo = format!(
                "{}, {}",
                nft_run.roll_back(system),
                roll_back(&runs, system, backend)
            );
            return Err(e.context(undo));
        }
    }

    let changed = live_changes || file_changes;
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
    if dataplane == Dataplane::Nftables || !nft_run.is_empty() {
        let text = nft_run
            .desired
            .as_ref()
            .map(|d| d.render())
            .unwrap_or_default();
        rules.insert("nftables".into(), text);
        plan.insert("nftables".into(), nft_run.actions());
    }
    let exposure_changes = exposures
        .as_ref()
        .map(|(before, after)| exposure::changes_in_words(before, after))
        .unwrap_or_default();
    let diff = config.diff.then(|| {
        let mut entries = diff_entries(&runs, backend, &nft_run);
        if let (Some((before, after)), false) = (&exposures, exposure_changes.is_empty()) {
            entries.push(DiffEntry {
                before: exposure::lines(before),
                after: exposure::lines(after),
                before_header: "who can reach the published ports, before".into(),
                after_header: "who can reach the published ports, after".into(),
            });
        }
        entries
    });
    let (exposure_before, exposure) = match exposures {
        Some((before, after)) => (config.check_mode.then_some(before), Some(after)),
        None => (None, None),
    };
    Ok(Report {
        changed,
        msg: summary(&runs, &nft_run, config, changed),
        dataplane: dataplane.name().to_string(),
        backend: backend.name().to_string(),
        rules,
        persisted,
        warnings,
        plan,
        diff,
        exposure,
        exposure_before,
        exposure_changes,
        docker,
    })
}
