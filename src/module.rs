//! One module run: read, plan, (apply, verify, persist), report. The plan computed here drives
//! everything: check mode returns it, diff mode renders it, apply executes it, and the read-back
//! must plan to nothing.

use crate::core::args::parse_args_text;
use crate::core::desired::{DockerFacts, PublishedPort, bridges_to_guard, desired_state};
use crate::core::lockout::external_interface_refusal;
use crate::core::owned::{DesiredState, LiveState};
use crate::core::plan::{FamilyPlan, plan, rollback_input};
use crate::core::policy::{Backend, BackendChoice, Config, Family, State, Strategy};
use crate::core::rules_file::updated_content;
use crate::core::save::{Ruleset, incompatible_table_note, parse_save};
use crate::system::{CommandError, System};
use anyhow::{Context, Result, anyhow, bail};
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
    pub backend: String,
    /// Per family, what we own after the run (predicted in check mode).
    pub rules: BTreeMap<String, String>,
    pub persisted: Vec<String>,
    pub warnings: Vec<String>,
    /// Per family, the planned operations.
    pub plan: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<Vec<DiffEntry>>,
    /// The host ports Docker's rules publish now (both families), for the watch service's memory.
    #[serde(skip)]
    pub published: Vec<PublishedPort>,
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
struct FamilyRun {
    family: Family,
    live: LiveState,
    desired: DesiredState,
    plan: FamilyPlan,
    after: Option<LiveState>,
    file: Option<FileChange>,
}

struct FileChange {
    path: PathBuf,
    before: Option<String>,
    after: Option<String>,
}

impl FileChange {
    fn changes(&self) -> bool {
        self.before != self.after
    }
}

const DOCKER_CHAINS: [&str; 4] = [
    "DOCKER-USER",
    "DOCKER",
    "DOCKER-FORWARD",
    "DOCKER-ISOLATION-STAGE-1",
];

/// How much of Docker a ruleset holds: its chains and their rules.
fn docker_weight(ruleset: &Ruleset) -> usize {
    ruleset
        .tables
        .iter()
        .map(|t| {
            let chains = t
                .chains
                .iter()
                .filter(|c| c.name.starts_with("DOCKER"))
                .count();
            let rules = t
                .rules
                .iter()
                .filter(|r| r.chain.starts_with("DOCKER"))
                .count();
            chains + rules
        })
        .sum()
}

fn has_docker_chains(ruleset: &Ruleset) -> bool {
    ruleset
        .tables
        .iter()
        .any(|t| DOCKER_CHAINS.iter().any(|c| t.has_chain(c)))
}

fn parse_saved(text: &str, family: Family, backend: Backend) -> Result<Ruleset<'_>> {
    if let Some(note) = incompatible_table_note(text) {
        bail!(
            "{}-{}-save cannot show this host's ruleset faithfully ({}): native nftables rules \
             live in an iptables table. Refusing to plan against an incomplete view; move those \
             rules to a table of their own",
            iptables_name(family),
            backend.name(),
            note.trim_start_matches(['#', ' '])
        );
    }
    parse_save(text).with_context(|| {
        format!(
            "cannot parse the output of {}-{}-save",
            iptables_name(family),
            backend.name()
        )
    })
}

fn iptables_name(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "iptables",
        Family::Ipv6 => "ip6tables",
    }
}

/// The backend to use, and the IPv4 save text already read while choosing it.
fn choose_backend(config: &Config, system: &dyn System) -> Result<(Backend, Option<String>)> {
    if let BackendChoice::Fixed(backend) = config.backend {
        if !config
            .families
            .iter()
            .any(|f| system.has_tools(*f, backend))
        {
            bail!(
                "backend: the iptables-{0} tools (iptables-{0}-save, iptables-{0}-restore) are not installed",
                backend.name()
            );
        }
        return Ok((backend, None));
    }
    let mut best: Option<(Backend, usize, String)> = None;
    for backend in [Backend::Nft, Backend::Legacy] {
        if !system.has_tools(Family::Ipv4, backend) {
            continue;
        }
        let text = system.save(Family::Ipv4, backend)?;
        let weight = docker_weight(&parse_saved(&text, Family::Ipv4, backend)?);
        if weight > 0 && best.as_ref().is_none_or(|(_, w, _)| weight > *w) {
            best = Some((backend, weight, text));
        }
    }
    if let Some((backend, _, text)) = best {
        return Ok((backend, Some(text)));
    }
    let fallback = system
        .default_backend()
        .or_else(|| {
            [Backend::Nft, Backend::Legacy]
                .into_iter()
                .find(|b| system.has_tools(Family::Ipv4, *b))
        })
        .ok_or_else(|| {
            anyhow!("iptables is not installed (no iptables-save/iptables-restore found)")
        })?;
    Ok((fallback, None))
}

fn restore_failure(family: Family, error: &CommandError, input: &str) -> anyhow::Error {
    let mut msg = format!("{}: {error}", family.name());
    if let Some(line) = failing_line(&error.stderr)
        && let Some(text) = input.lines().nth(line.saturating_sub(1))
    {
        msg.push_str(&format!("; input line {line}: {text}"));
    }
    anyhow!(msg)
}

/// The line number in "line N failed" / "line N: ..." messages of iptables-restore.
/// Both backends' forms: "line 5 failed", "line 5: RULE_APPEND failed", "Error occurred at line: 5".
fn failing_line(stderr: &str) -> Option<usize> {
    stderr.match_indices("line").find_map(|(at, _)| {
        let rest = stderr[at + 4..].trim_start_matches([':', ' ']);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

pub fn run(config: &Config, system: &dyn System) -> Result<Report> {
    run_with(config, system, &[])
}

/// A run that also guards `remembered` ports: the watch service passes the ports Docker published
/// before a reboot until Docker's API answers again, so that docker-proxy, which Docker starts
/// before the watcher hears of the container, never serves them unguarded.
pub fn run_with(
    config: &Config,
    system: &dyn System,
    remembered: &[PublishedPort],
) -> Result<Report> {
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
    let (backend, mut first_text) = choose_backend(config, system)?;

    let mut texts: Vec<(Family, String)> = Vec::new();
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
    let rulesets = texts
        .iter()
        .map(|(family, text)| Ok((*family, parse_saved(text, *family, backend)?)))
        .collect::<Result<Vec<_>>>()?;
    let saw_docker = rulesets.iter().any(|(_, r)| has_docker_chains(r));
    let mut facts: Vec<DockerFacts> = rulesets.iter().map(|(_, r)| DockerFacts::read(r)).collect();
    let mut published: Vec<PublishedPort> =
        facts.iter().flat_map(|f| f.published.clone()).collect();
    published.sort();
    published.dedup();
    if !remembered.is_empty()
        && let Some(first) = facts.first_mut()
    {
        first.published.extend(remembered.iter().cloned());
    }
    if config.state == State::Present && config.audit && !config.log.enabled {
        warnings.push(
            "audit is on and log.enabled is off: nothing is denied and nothing is logged".into(),
        );
    }
    if config.state == State::Present
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
    }
    let mut runs: Vec<FamilyRun> = Vec::new();
    for ((family, ruleset), own) in rulesets.iter().zip(&facts) {
        let live = LiveState::from_ruleset(ruleset);
        let desired = desired_state(config, *family, &external, &own.with_ports_of(&facts));
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

    if config.state == State::Present && !saw_docker {
        let nft = system.nft_tables().unwrap_or_default();
        if nft.contains("docker-bridges") {
            bail!(
                "Docker runs its nftables firewall backend (Docker 29+, firewall-backend nftables): \
                 it has no DOCKER-USER chain and does not read iptables rules, so this module would \
                 write rules nothing reads. Run dockerd with the iptables firewall backend to use \
                 this module."
            );
        }
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
    }

    let live_changes = runs.iter().any(|r| !r.plan.is_empty());
    let file_changes = runs
        .iter()
        .any(|r| r.file.as_ref().is_some_and(FileChange::changes));
    let mut persisted = Vec::new();
    if !config.check_mode {
        apply(&mut runs, system, backend)?;
        if let Err(e) = persist(&runs, system, &mut persisted) {
            let undo = roll_back(&runs, system, backend);
            return Err(e.context(undo));
        }
    }

    let changed = live_changes || file_changes;
    let rules = runs
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
    let plan = runs
        .iter()
        .map(|r| (r.family.name().to_string(), r.plan.actions()))
        .collect();
    let diff = config.diff.then(|| diff_entries(&runs, backend));
    Ok(Report {
        changed,
        msg: summary(&runs, config, changed),
        backend: backend.name().to_string(),
        rules,
        persisted,
        warnings,
        plan,
        diff,
        published,
    })
}

/// One restore per family that has work; then every applied family is read back and must plan
/// to nothing. Any failure undoes the families already applied.
fn apply(runs: &mut [FamilyRun], system: &dyn System, backend: Backend) -> Result<()> {
    let mut applied = Vec::new();
    for (index, r) in runs.iter().enumerate() {
        if r.plan.is_empty() {
            continue;
        }
        let input = r.plan.restore_input();
        if let Err(e) = system.restore(r.family, backend, &input) {
            let undo = roll_back_some(runs, &applied, system, backend);
            return Err(restore_failure(r.family, &e, &input).context(undo));
        }
        applied.push(index);
    }
    for &index in &applied {
        let family = runs[index].family;
        // Read back only the tables the plan wrote; the others are as read before the run.
        let read_back = (|| -> Result<LiveState> {
            let mut after = runs[index].live.clone();
            for t in &runs[index].plan.tables {
                let text = system.save_table(family, backend, &t.table)?;
                let parsed = parse_saved(&text, family, backend)?;
                let single = Ruleset {
                    tables: parsed
                        .tables
                        .into_iter()
                        .filter(|x| x.name == t.table)
                        .collect(),
                };
                let live = LiveState::from_ruleset(&single);
                after.tables.remove(&t.table);
                after.tables.extend(live.tables);
            }
            Ok(after)
        })();
        let verdict = read_back.and_then(|after| {
            let left = plan(&after, &runs[index].desired);
            if left.is_empty() {
                Ok(after)
            } else {
                Err(anyhow!(
                    "{}: the rules read back after iptables-restore differ from the plan; still to do: {}",
                    family.name(),
                    left.actions().join("; ")
                ))
            }
        });
        match verdict {
            Ok(after) => runs[index].after = Some(after),
            Err(e) => {
                let undo = roll_back_some(runs, &applied, system, backend);
                return Err(e.context(undo));
            }
        }
    }
    Ok(())
}

/// Writes the rules files that change. If one cannot be written, the ones already written are put
/// back as they were, so that no file keeps a policy the live ruleset is rolled back from.
fn persist(runs: &[FamilyRun], system: &dyn System, persisted: &mut Vec<String>) -> Result<()> {
    let mut written: Vec<&FileChange> = Vec::new();
    for file in runs.iter().filter_map(|r| r.file.as_ref()) {
        if !file.changes() {
            continue;
        }
        if let Err(e) = write_content(system, &file.path, file.after.as_deref()) {
            let undo = written
                .iter()
                .map(
                    |w| match write_content(system, &w.path, w.before.as_deref()) {
                        Ok(()) => format!("{} put back", w.path.display()),
                        Err(e) => format!("putting back {} FAILED: {e:#}", w.path.display()),
                    },
                )
                .collect::<Vec<_>>();
            persisted.clear();
            return Err(if undo.is_empty() {
                e
            } else {
                e.context(undo.join(", "))
            });
        }
        written.push(file);
        persisted.push(file.path.display().to_string());
    }
    Ok(())
}

/// Makes the file hold `content`, or removes it for `None`.
fn write_content(system: &dyn System, path: &Path, content: Option<&str>) -> Result<()> {
    let shown = path.display();
    match content {
        Some(content) => system
            .write_file(path, content)
            .with_context(|| format!("cannot write {shown}")),
        None => system
            .remove_file(path)
            .with_context(|| format!("cannot remove {shown}")),
    }
}

fn roll_back(runs: &[FamilyRun], system: &dyn System, backend: Backend) -> String {
    let all: Vec<usize> = (0..runs.len())
        .filter(|i| !runs[*i].plan.is_empty())
        .collect();
    roll_back_some(runs, &all, system, backend)
}

/// Puts the given families back to what we owned before the run; says what happened.
fn roll_back_some(
    runs: &[FamilyRun],
    indices: &[usize],
    system: &dyn System,
    backend: Backend,
) -> String {
    if indices.is_empty() {
        return "nothing was changed".into();
    }
    let mut notes = Vec::new();
    for &index in indices {
        let r = &runs[index];
        let result = (|| -> Result<()> {
            let text = system.save(r.family, backend)?;
            let now = LiveState::from_ruleset(&parse_saved(&text, r.family, backend)?);
            let input = rollback_input(&r.live, &now);
            if !input.is_empty() {
                system
                    .restore(r.family, backend, &input)
                    .map_err(|e| restore_failure(r.family, &e, &input))?;
            }
            Ok(())
        })();
        notes.push(match result {
            Ok(()) => format!("{} rolled back", r.family.name()),
            Err(e) => format!("rolling back {} FAILED: {e:#}", r.family.name()),
        });
    }
    notes.join(", ")
}

fn diff_entries(runs: &[FamilyRun], backend: Backend) -> Vec<DiffEntry> {
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

fn summary(runs: &[FamilyRun], config: &Config, changed: bool) -> String {
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
