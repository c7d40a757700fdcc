//! `docker_firewall watch`: apply the policy, then converge again whenever something may have
//! undone it. Every converge is the module's own run (lock, read, plan, apply, verify): the watcher
//! only decides *when*, never *what*. Event sources (src/system/events) feed one channel; between
//! events the loop sleeps until the next resync.

mod memory;
mod repair_line;

pub use memory::Memory;

use crate::core::policy::Config;
use crate::module::{self, policy_file};
use crate::system::System;
use crate::system::events::{self, Trigger};
use crate::system::process::RealSystem;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Events closer together than this are one converge (a container start is several events).
const SETTLE: Duration = Duration::from_millis(50);
/// Repairs closer than this to the one before count as a fight; this many in a row slow down.
const FIGHT_WINDOW: Duration = Duration::from_secs(2);
const FIGHT_REPAIRS: u32 = 5;
/// The longest wait between two attempts after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub fn main(
    policy: &Path,
    resync: u64,
    docker_socket: Option<PathBuf>,
    state: Option<PathBuf>,
) -> i32 {
    let system = RealSystem;
    let socket = docker_socket.unwrap_or_else(events::docker_socket_from_env);
    // A closed stderr is not worth a panic: the line is lost, the watcher goes on.
    let log = |line: &str| {
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), "docker_firewall watch: {line}");
    };
    let config = match policy_file::load(policy, &system) {
        Ok(config) => config,
        Err(e) => {
            log(&format!("cannot start: {e:#}"));
            return 1;
        }
    };
    let (memory, note) = Memory::load(state, &system);
    if let Some(note) = note {
        log(&note);
    }
    let triggers = events::start(&socket);
    log(&format!(
        "started: policy {}, resync every {resync}s, Docker events from {}",
        policy.display(),
        socket.display()
    ));
    let on_ready = |status: &str| events::notify_ready(status);
    let mut watcher = Watcher::new(
        &system,
        policy,
        config,
        Duration::from_secs(resync),
        memory,
        &log,
        &on_ready,
    );
    match watcher.run(&triggers) {
        Ok(()) => 0,
        Err(e) => {
            log(&format!("stopped: {e:#}"));
            1
        }
    }
}

pub struct Watcher<'a> {
    system: &'a dyn System,
    policy: PathBuf,
    config: Config,
    resync: Duration,
    log: &'a dyn Fn(&str),
    /// Told once, after the first converge (systemd's READY=1).
    on_ready: &'a dyn Fn(&str),
    /// The policy file's text the config was read from (to notice edits).
    policy_text: Option<String>,
    last_attempt: Instant,
    memory: Memory,
    /// The same repair again and again, each soon after the one before: another tool fighting
    /// the policy. (Docker re-creating its rules after a reload needs several *different* repairs.)
    churn: u32,
    last_repair: Option<(Instant, BTreeMap<String, Vec<String>>)>,
}

impl<'a> Watcher<'a> {
    pub fn new(
        system: &'a dyn System,
        policy: &Path,
        config: Config,
        resync: Duration,
        memory: Memory,
        log: &'a dyn Fn(&str),
        on_ready: &'a dyn Fn(&str),
    ) -> Self {
        Watcher {
            system,
            policy: policy.to_path_buf(),
            config: quiet(config),
            resync,
            log,
            on_ready,
            policy_text: system.read_file(policy).ok().flatten(),
            last_attempt: Instant::now(),
            memory,
            churn: 0,
            last_repair: None,
        }
    }
}

impl Watcher<'_> {
    /// Converges now, then on every trigger and resync, until `Trigger::Stop`.
    pub fn run(&mut self, triggers: &Receiver<Trigger>) -> Result<()> {
        let mut failures = 0u32;
        let first = self.converge("start", &mut failures);
        (self.on_ready)(&first);
        let mut next_resync = Instant::now() + self.resync;
        let mut pending: Vec<String> = Vec::new();
        loop {
            let retry_at = (failures > 0).then(|| self.last_attempt + backoff(failures));
            let deadline = retry_at.map_or(next_resync, |at| at.min(next_resync));
            let mut stop = None;
            match triggers.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(trigger) => {
                    stop = self.absorb(trigger, &mut pending);
                    // A burst of events (a container start is several) settles into one converge.
                    while stop.is_none() {
                        match triggers.recv_timeout(SETTLE) {
                            Ok(more) => stop = self.absorb(more, &mut pending),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => anyhow::bail!("the event sources stopped"),
            }
            let now = Instant::now();
            if now >= next_resync {
                pending.push("resync".into());
            }
            let backing_off = retry_at.is_some_and(|at| now < at);
            if retry_at.is_some() && !backing_off && pending.is_empty() {
                pending.push("retry".into());
            }
            if !pending.is_empty() && !backing_off {
                pending.sort();
                pending.dedup();
                let reason = pending.join(", ");
                pending.clear();
                self.converge(&reason, &mut failures);
                next_resync = Instant::now() + self.resync;
            }
            if let Some(signal) = stop {
                (self.log)(&format!("stopped by {signal}; the rules stay in place"));
                return Ok(());
            }
        }
    }

    /// Takes one trigger in: logs notes, re-reads the policy on SIGHUP, queues the rest.
    /// Returns the signal's name for a stop.
    fn absorb(&mut self, trigger: Trigger, pending: &mut Vec<String>) -> Option<String> {
        match trigger {
            Trigger::Stop(signal) => return Some(signal),
            Trigger::Note(line) => (self.log)(&line),
            Trigger::DockerGone(line) => (self.log)(&line),
            Trigger::Docker(what) => {
                if what.ends_with(" destroy") {
                    self.memory.forget_removed();
                }
                pending.push(Trigger::Docker(what).label());
            }
            Trigger::Reload => {
                self.reload_policy("SIGHUP");
                pending.push("SIGHUP".into());
            }
            other => pending.push(other.label()),
        }
        None
    }

    /// Reads the policy file again when it changed (or when told to); a bad file keeps the policy
    /// in force and says why.
    fn reload_policy(&mut self, why: &str) {
        let text = self.system.read_file(&self.policy).ok().flatten();
        if why != "SIGHUP" && text.as_ref() == self.policy_text.as_ref() {
            return;
        }
        match policy_file::load(&self.policy, self.system) {
            Ok(config) => {
                if text != self.policy_text {
                    (self.log)(&format!(
                        "policy {} read again ({why})",
                        self.policy.display()
                    ));
                }
                self.config = quiet(config);
                self.policy_text = text;
            }
            Err(e) => {
                if text != self.policy_text {
                    (self.log)(&format!(
                        "the changed policy is refused, the previous one stays in force: {e:#}"
                    ));
                    self.policy_text = text;
                }
            }
        }
    }

    /// One run of the module; one log line when it changed something or failed.
    /// Returns a status line for systemd.
    fn converge(&mut self, reason: &str, failures: &mut u32) -> String {
        self.reload_policy("changed on disk");
        self.last_attempt = Instant::now();
        match module::run_with(&self.config, self.system, self.memory.guarded()) {
            Ok(report) => {
                if let Some(note) = self.memory.update(&report.docker, self.system) {
                    (self.log)(&note);
                }
                let line = repair_line::describe(reason, &report);
                if let Some(line) = &line {
                    (self.log)(line);
                } else if *failures > 0 || reason == "start" {
                    (self.log)(&format!("in place ({reason}): {}", report.msg));
                }
                *failures = self.churn_backoff(report.changed.then_some(&report.plan));
                line.unwrap_or_else(|| format!("in place: {}", report.msg))
            }
            Err(e) => {
                *failures = failures.saturating_add(1);
                let wait = backoff(*failures);
                let line = format!(
                    "failed ({reason}), attempt {}: {e:#}; next attempt in {}s",
                    failures,
                    wait.as_secs()
                );
                (self.log)(&line);
                line
            }
        }
    }
}

impl Watcher<'_> {
    /// The same repair right after the same repair, again and again, is a fight with another tool
    /// (a second watcher with another policy, a script that keeps deleting our hook): after a few,
    /// wait as after failures instead of answering every change at once. Returns the back-off level.
    fn churn_backoff(&mut self, repair: Option<&BTreeMap<String, Vec<String>>>) -> u32 {
        let now = Instant::now();
        let soon = self
            .last_repair
            .as_ref()
            .is_some_and(|(at, _)| now.duration_since(*at) < FIGHT_WINDOW);
        match repair {
            Some(plan) => {
                let same = soon && self.last_repair.as_ref().is_some_and(|(_, p)| p == plan);
                self.churn = if same { self.churn + 1 } else { 1 };
                self.last_repair = Some((now, plan.clone()));
            }
            None if !soon => self.churn = 0,
            None => {}
        }
        if self.churn < FIGHT_REPAIRS {
            return 0;
        }
        let level = self.churn - FIGHT_REPAIRS + 1;
        (self.log)(&format!(
            "the same repair {} times in a row, each within {}s of the last: another tool may be \
             fighting the policy; next check in {}s",
            self.churn,
            FIGHT_WINDOW.as_secs(),
            backoff(level).as_secs()
        ));
        level
    }
}

/// 1 s, 2 s, 4 s ... up to a minute: a failing host is retried, never hammered.
fn backoff(failures: u32) -> Duration {
    let secs = 1u64 << failures.saturating_sub(1).min(6);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

/// The watcher's runs report nothing beyond their log line: no exposure analysis.
fn quiet(mut config: Config) -> Config {
    config.analyse_exposure = false;
    config
}
