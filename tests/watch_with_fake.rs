//! The watcher's loop against the fake machine: it converges at start, repairs what drifted on a
//! trigger with one log line, re-reads a changed policy, backs off on failures, stops on a signal;
//! and the run lock refuses a run while another holds it.

use docker_firewall::core::policy::{Backend, Family};
use docker_firewall::module::policy_file;
use docker_firewall::system::events::Trigger;
use docker_firewall::system::fake::FakeSystem;
use docker_firewall::watch::{Memory, Watcher};
use serde_json::json;
use std::cell::RefCell;
use std::path::Path;
use std::sync::mpsc::channel;
use std::time::Duration;

mod common;
use common::DOCKER_USER_ONLY;

const POLICY: &str = "/etc/docker_firewall/policy.json";
fn machine(policy: serde_json::Value) -> FakeSystem {
    let fake = FakeSystem::new();
    fake.load(Family::Ipv4, Backend::Nft, DOCKER_USER_ONLY);
    fake.load(Family::Ipv6, Backend::Nft, DOCKER_USER_ONLY);
    fake.files
        .borrow_mut()
        .insert(POLICY.into(), policy.to_string());
    fake
}

fn policy(port: u16) -> serde_json::Value {
    json!({"external_interfaces": ["eth0"], "persist": false,
           "ingress": {"allow": [{"ports": [port], "sources": ["192.0.2.1"]}]}})
}

/// Runs the watcher over the given triggers (then a stop); returns its log lines. `on_log` sees
/// each line as it is written: the fake is not Sync, so drift is made from there (after the start
/// converge, before the queued triggers are read).
fn watch(fake: &FakeSystem, triggers: Vec<Trigger>, on_log: &dyn Fn(&str)) -> Vec<String> {
    let lines = RefCell::new(Vec::new());
    let log = |line: &str| {
        lines.borrow_mut().push(line.to_string());
        on_log(line);
    };
    let ready = |_: &str| {};
    let (tx, rx) = channel();
    let mut watcher = Watcher::new(
        fake,
        Path::new(POLICY),
        policy_file::load(Path::new(POLICY), fake).expect("policy loads"),
        Duration::from_secs(3600),
        Memory::load(None, fake).0,
        &log,
        &ready,
    );
    for t in triggers {
        tx.send(t).expect("queue");
    }
    tx.send(Trigger::Stop("SIGTERM".into())).expect("queue");
    watcher.run(&rx).expect("watcher ends cleanly");
    lines.into_inner()
}

#[test]
fn a_trigger_repairs_what_drifted_with_one_line() {
    let fake = machine(policy(8080));
    // Someone flushes our chain right after the start converge; the trigger brings it back.
    let flush_after_start = |line: &str| {
        if line.starts_with("applied (start)") {
            fake.apply(
                Family::Ipv4,
                Backend::Nft,
                "*filter\n-F DFW-INGRESS-POLICY\nCOMMIT\n",
            )
            .expect("flush");
        }
    };
    let triggers = vec![Trigger::Netfilter, Trigger::Netfilter];
    let lines = watch(&fake, triggers, &flush_after_start);
    assert!(lines[0].starts_with("applied (start):"), "{lines:?}");
    let repaired: Vec<_> = lines.iter().filter(|l| l.starts_with("repaired")).collect();
    assert_eq!(repaired.len(), 1, "{lines:?}");
    assert!(
        repaired[0].starts_with(
            "repaired (netfilter change): ipv4: filter: rewrite chain DFW-INGRESS-POLICY (2 rules)"
        ),
        "{lines:?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("stopped by SIGTERM; the rules stay in place")
    );
}

#[test]
fn nothing_drifted_nothing_written() {
    let fake = machine(policy(8080));
    watch(&fake, vec![], &|_| {});
    let restores = fake.restores.get();
    let lines = watch(
        &fake,
        vec![Trigger::Docker("container web start".into())],
        &|_| {},
    );
    assert_eq!(
        fake.restores.get(),
        restores,
        "a no-op converge writes nothing"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("repaired")),
        "{lines:?}"
    );
}

fn write_policy(fake: &FakeSystem, policy: serde_json::Value) {
    fake.files
        .borrow_mut()
        .insert(POLICY.into(), policy.to_string());
}

#[test]
fn a_changed_policy_is_read_again_and_a_bad_one_is_refused() {
    let fake = machine(policy(8080));
    let edit_after_start = |line: &str| {
        if line.contains("(start)") {
            write_policy(&fake, policy(9090));
        }
    };
    let lines = watch(&fake, vec![Trigger::Netfilter], &edit_after_start);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("policy ") && l.contains("read again")),
        "{lines:?}"
    );
    assert!(
        fake.dump(Family::Ipv4, Backend::Nft)
            .contains("--ctorigdstport 9090"),
        "{lines:?}"
    );

    let restores = fake.restores.get();
    let break_after_start = |line: &str| {
        if line.contains("(start)") {
            write_policy(&fake, json!({"ingress": {"allow": [{"ports": [0]}]}}));
        }
    };
    let lines = watch(&fake, vec![Trigger::Reload], &break_after_start);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("the changed policy is refused")
                && l.contains("ingress.allow[0].ports[0]")),
        "{lines:?}"
    );
    assert_eq!(
        fake.restores.get(),
        restores,
        "a refused policy changes nothing"
    );
    assert!(
        fake.dump(Family::Ipv4, Backend::Nft)
            .contains("--ctorigdstport 9090")
    );
}

#[test]
fn failures_back_off_instead_of_spinning() {
    let fake = machine(policy(8080));
    fake.fail_restore.set(Some(Family::Ipv4));
    let burst = vec![Trigger::Netfilter; 20];
    let lines = watch(&fake, burst, &|_| {});
    let failed: Vec<_> = lines.iter().filter(|l| l.starts_with("failed")).collect();
    assert_eq!(
        failed.len(),
        1,
        "a burst during the back-off is one attempt: {lines:?}"
    );
    assert!(failed[0].contains("next attempt in 1s"), "{lines:?}");
}

#[test]
fn a_held_run_lock_fails_the_run_naming_the_holder_and_changes_nothing() {
    let fake = machine(policy(8080));
    *fake.lock_holder.borrow_mut() = Some("pid 4242 (docker_firewall watch)".into());
    let before = fake.dump(Family::Ipv4, Backend::Nft);
    let out = common::run(
        &fake,
        &json!({"external_interfaces": ["eth0"], "persist": false, "lock_timeout": 1}),
    );
    assert_eq!(out["failed"], true);
    let msg = out["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("pid 4242 (docker_firewall watch)") && msg.contains("within 1 s"),
        "{msg}"
    );
    assert_eq!(fake.saves.get(), 0, "nothing read before the lock");
    assert_eq!(fake.dump(Family::Ipv4, Backend::Nft), before);
}

const DOCKER_PUBLISHES_8080: &str = "*nat\n:DOCKER - [0:0]\n\
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.200.1.2:80\nCOMMIT\n";

#[test]
fn guards_never_shrink_while_docker_is_away_and_forget_only_removed_containers() {
    const STATE: &str = "/var/lib/docker_firewall/published-ports.json";
    let fake = machine(policy(8080));
    fake.files.borrow_mut().insert(
        STATE.into(),
        json!({"published": [{"proto": "tcp", "port": "9999"}]}).to_string(),
    );
    let lines = RefCell::new(Vec::new());
    let log = |line: &str| lines.borrow_mut().push(line.to_string());
    let ready = |_: &str| {};
    let (tx, rx) = channel();
    let mut watcher = Watcher::new(
        &fake,
        Path::new(POLICY),
        policy_file::load(Path::new(POLICY), &fake).expect("policy loads"),
        Duration::from_secs(3600),
        Memory::load(Some(STATE.into()), &fake).0,
        &log,
        &ready,
    );
    let saved = || {
        fake.files
            .borrow()
            .get(Path::new(STATE))
            .cloned()
            .unwrap_or_default()
    };
    // Boot: Docker not up yet. The start converge guards the remembered port.
    tx.send(Trigger::Stop("SIGTERM".into())).expect("queue");
    watcher.run(&rx).expect("ends");
    assert!(fake.dump(Family::Ipv6, Backend::Nft).contains("9999"));
    // Docker comes up and publishes 8080: both are guarded, both remembered.
    fake.apply(Family::Ipv4, Backend::Nft, DOCKER_PUBLISHES_8080)
        .expect("docker publishes");
    tx.send(Trigger::DockerConnected).expect("queue");
    tx.send(Trigger::Stop("SIGTERM".into())).expect("queue");
    watcher.run(&rx).expect("ends");
    let v6 = fake.dump(Family::Ipv6, Backend::Nft);
    assert!(v6.contains("9999") && v6.contains("8080"), "{v6}");
    assert!(
        saved().contains("\"8080\"") && saved().contains("9999"),
        "{}",
        saved()
    );
    // dockerd stops: its containers die and its rules go. The guards stay.
    fake.apply(Family::Ipv4, Backend::Nft, "*nat\n-F DOCKER\nCOMMIT\n")
        .expect("docker stops");
    tx.send(Trigger::Docker("container web die".into()))
        .expect("queue");
    tx.send(Trigger::DockerGone("Docker went away".into()))
        .expect("queue");
    tx.send(Trigger::Stop("SIGTERM".into())).expect("queue");
    watcher.run(&rx).expect("ends");
    assert!(fake.dump(Family::Ipv6, Backend::Nft).contains("8080"));
    // Docker is back with 8080 only, and a container is removed: only then is 9999 forgotten.
    fake.apply(Family::Ipv4, Backend::Nft, DOCKER_PUBLISHES_8080)
        .expect("docker publishes again");
    tx.send(Trigger::Docker("container old destroy".into()))
        .expect("queue");
    tx.send(Trigger::Stop("SIGTERM".into())).expect("queue");
    watcher.run(&rx).expect("ends");
    let v6 = fake.dump(Family::Ipv6, Backend::Nft);
    assert!(!v6.contains("9999") && v6.contains("8080"), "{v6}");
    assert!(
        saved().contains("\"8080\"") && !saved().contains("9999"),
        "{}",
        saved()
    );
}

#[test]
fn a_tool_that_keeps_undoing_the_policy_is_answered_more_slowly() {
    let fake = machine(policy(8080));
    let (tx, rx) = channel();
    let lines = RefCell::new(Vec::new());
    // The "other tool": every time we repair, it flushes our chain again and netfilter tells us.
    let log = |line: &str| {
        lines.borrow_mut().push(line.to_string());
        if line.starts_with("applied") || line.starts_with("repaired") {
            fake.apply(
                Family::Ipv4,
                Backend::Nft,
                "*filter\n-F DFW-INGRESS-POLICY\nCOMMIT\n",
            )
            .expect("flush");
            tx.send(Trigger::Netfilter).expect("queue");
        }
        if line.contains("another tool may be fighting the policy") {
            tx.send(Trigger::Stop("SIGTERM".into())).expect("queue");
        }
    };
    let ready = |_: &str| {};
    let mut watcher = Watcher::new(
        &fake,
        Path::new(POLICY),
        policy_file::load(Path::new(POLICY), &fake).expect("policy loads"),
        Duration::from_secs(3600),
        Memory::load(None, &fake).0,
        &log,
        &ready,
    );
    watcher.run(&rx).expect("ends");
    let lines = lines.into_inner();
    let repairs = lines.iter().filter(|l| l.starts_with("repaired")).count();
    assert_eq!(
        repairs, 5,
        "the fifth repair in a row slows down: {lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("the same repair 5 times in a row")
                && l.contains("next check in 1s")),
        "{lines:?}"
    );
}

#[test]
fn a_flushed_ipset_is_filled_again_with_one_line() {
    // 150 sources: the entry's IPv4 sources live in an ipset (core/ipset).
    let sources: Vec<String> = (0..150)
        .map(|i| format!("198.18.{}.{}", i / 100, i % 100))
        .collect();
    let fake = machine(json!({"external_interfaces": ["eth0"], "persist": false,
        "ingress": {"allow": [{"ports": [8080], "sources": sources}]}}));
    fake.ipset_installed.set(true);
    let members = |fake: &FakeSystem| {
        fake.ipsets
            .borrow()
            .get("dfw-allow-0-v4")
            .map_or(0, |s| s.members.len())
    };
    // Someone empties the set after the start converge (every allowed client is refused).
    let flush_after_start = |line: &str| {
        if line.starts_with("applied (start)") {
            assert_eq!(members(&fake), 150, "{line}");
            if let Some(set) = fake.ipsets.borrow_mut().get_mut("dfw-allow-0-v4") {
                set.members.clear();
            }
        }
    };
    let lines = watch(&fake, vec![Trigger::Netfilter], &flush_after_start);
    let repaired: Vec<_> = lines.iter().filter(|l| l.starts_with("repaired")).collect();
    assert_eq!(repaired.len(), 1, "{lines:?}");
    assert!(repaired[0].contains("dfw-allow-0-v4"), "{lines:?}");
    assert_eq!(members(&fake), 150);
    // Converged: the next trigger writes nothing.
    let again = watch(&fake, vec![Trigger::Netfilter], &|_| {});
    assert!(
        !again.iter().any(|l| l.starts_with("repaired")),
        "{again:?}"
    );
}
