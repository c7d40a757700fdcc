//! Large allow lists as ipsets on the iptables dataplane, against the fake machine: the order of
//! a run (sets before the rules that use them, destroyed after the rules that used them), a
//! no-op run that writes nothing, check mode, diff, absent, roll-back and the boot-time file.

use docker_firewall::core::policy::{Backend, Family};
use docker_firewall::system::fake::FakeSystem;
use docker_firewall::system::fake_ipset::FakeSet;
use serde_json::{Value, json};
use std::path::Path;

mod common;
use common::{DOCKER_USER_ONLY, run, without_empty_tables};

const V4: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -j DOCKER
-A DOCKER-USER -j RETURN
COMMIT
";
const SETS_FILE: &str = "/etc/iptables/ipsets";

fn host() -> FakeSystem {
    let fake = FakeSystem::new();
    fake.load(Family::Ipv4, Backend::Nft, V4);
    fake.load(Family::Ipv6, Backend::Nft, DOCKER_USER_ONLY);
    // Somebody else's set: never touched.
    fake.ipsets.borrow_mut().insert(
        "blocklist".into(),
        FakeSet {
            kind: "hash:ip".into(),
            family: "inet".into(),
            maxelem: "10".into(),
            members: vec!["203.0.113.9".into()],
        },
    );
    fake
}

/// `v4` IPv4 hosts and `v6` IPv6 hosts (the client 198.18.0.1 / 2001:db8::1 first).
fn sources(v4: usize, v6: usize) -> Vec<String> {
    let mut out: Vec<String> = (0..v4)
        .map(|i| format!("198.18.{}.{}", i / 250, i % 250 + 1))
        .collect();
    out.extend((0..v6).map(|i| format!("2001:db8::{:x}", i + 1)));
    out
}

fn policy(sources: Vec<String>) -> Value {
    json!({
        "external_interfaces": ["eth0"],
        "backend": "nft",
        "ingress": {"allow": [
            {"ports": [8080, 8443], "sources": sources, "comment": "many"},
            {"ports": [22], "sources": ["192.0.2.1"]}
        ]},
    })
}

fn with(base: &Value, key: &str, value: Value) -> Value {
    let mut out = base.clone();
    out[key] = value;
    out
}

fn members(fake: &FakeSystem, name: &str) -> usize {
    fake.ipsets
        .borrow()
        .get(name)
        .map_or(0, |s| s.members.len())
}

fn set_names(fake: &FakeSystem) -> Vec<String> {
    fake.ipsets.borrow().keys().cloned().collect()
}

#[test]
fn a_large_entry_gets_a_set_per_family_and_a_second_run_writes_nothing() {
    let fake = host();
    let args = policy(sources(150, 120));
    let first = run(&fake, &args);
    assert_eq!(first["failed"], Value::Null, "{first}");
    assert_eq!(first["changed"], true);
    assert_eq!(members(&fake, "dfw-allow-0-v4"), 150);
    assert_eq!(members(&fake, "dfw-allow-0-v6"), 120);
    let v4 = fake.dump(Family::Ipv4, Backend::Nft);
    assert_eq!(
        v4.matches("--match-set dfw-allow-0-v4 src").count(),
        2,
        "a rule per port: {v4}"
    );
    assert!(!v4.contains("198.18.0.1/32"), "no rule per source: {v4}");
    assert!(
        v4.contains("-s 192.0.2.1/32"),
        "the small entry keeps its rule: {v4}"
    );
    let ipset_writes = fake.ipset_inputs.borrow().len();
    assert_eq!(ipset_writes, 1, "one ipset restore fills both sets");
    assert!(
        first["rules"]["ipsets"]
            .as_str()
            .unwrap()
            .contains("add dfw-allow-0-v6 2001:db8::1\n")
    );
    let restores = fake.restores.get();
    let second = run(&fake, &args);
    assert_eq!(second["changed"], false, "{second}");
    assert_eq!(fake.restores.get(), restores);
    assert_eq!(fake.ipset_inputs.borrow().len(), ipset_writes);
    // Another tool's set (a blocklist) is never dumped: runs save ours by name.
    assert_eq!(fake.ipset_full_saves.get(), 0);
}

#[test]
fn a_membership_change_swaps_the_set_and_leaves_the_rules() {
    let fake = host();
    run(&fake, &policy(sources(150, 0)));
    let rules = fake.dump(Family::Ipv4, Backend::Nft);
    let restores = fake.restores.get();
    let mut fewer = sources(150, 0);
    fewer.remove(0);
    let out = run(&fake, &policy(fewer));
    assert_eq!(out["changed"], true, "{out}");
    assert_eq!(fake.restores.get(), restores, "no iptables restore");
    assert_eq!(fake.dump(Family::Ipv4, Backend::Nft), rules);
    assert_eq!(members(&fake, "dfw-allow-0-v4"), 149);
    let script = fake.ipset_inputs.borrow().last().cloned().unwrap();
    assert!(script.starts_with("create dfw-allow-0-v4-new hash:net family inet maxelem 1024\n"));
    assert!(
        script.ends_with("swap dfw-allow-0-v4-new dfw-allow-0-v4\ndestroy dfw-allow-0-v4-new\n")
    );
    assert_eq!(set_names(&fake), ["blocklist", "dfw-allow-0-v4"]);
}

#[test]
fn check_mode_predicts_and_writes_nothing() {
    let fake = host();
    let args = with(&policy(sources(150, 0)), "_ansible_check_mode", json!(true));
    let args = with(&args, "_ansible_diff", json!(true));
    let out = run(&fake, &args);
    assert_eq!(out["changed"], true, "{out}");
    assert_eq!(fake.restores.get(), 0);
    assert!(fake.ipset_inputs.borrow().is_empty());
    assert_eq!(set_names(&fake), ["blocklist"]);
    let diff = out["diff"].as_array().unwrap();
    let sets = diff
        .iter()
        .find(|d| d["after_header"].as_str().unwrap().starts_with("ipsets"))
        .expect("a diff entry for the sets");
    assert_eq!(sets["before"], "");
    assert!(
        sets["after"]
            .as_str()
            .unwrap()
            .contains("add dfw-allow-0-v4 198.18.0.150\n")
    );
    assert!(
        out["plan"]["ipsets"][0]
            .as_str()
            .unwrap()
            .starts_with("create set dfw-allow-0-v4")
    );
}

#[test]
fn shrinking_below_the_threshold_destroys_the_set_after_the_rules() {
    let fake = host();
    run(&fake, &policy(sources(150, 0)));
    let out = run(&fake, &policy(sources(5, 0)));
    assert_eq!(out["failed"], Value::Null, "{out}");
    // The fake, like the kernel, refuses to destroy a set a rule uses: the order held.
    assert_eq!(set_names(&fake), ["blocklist"]);
    let v4 = fake.dump(Family::Ipv4, Backend::Nft);
    assert!(v4.contains("-s 198.18.0.5/32"), "{v4}");
    assert!(!v4.contains("--match-set"), "{v4}");
}

#[test]
fn absent_leaves_the_host_as_before() {
    let fake = host();
    let before = (fake.dump(Family::Ipv4, Backend::Nft), set_names(&fake));
    let args = policy(sources(150, 120));
    run(&fake, &args);
    let out = run(&fake, &with(&args, "state", json!("absent")));
    assert_eq!(out["failed"], Value::Null, "{out}");
    assert_eq!(set_names(&fake), before.1);
    assert_eq!(
        without_empty_tables(&fake.dump(Family::Ipv4, Backend::Nft)),
        without_empty_tables(&before.0)
    );
    assert!(!fake.files.borrow().contains_key(Path::new(SETS_FILE)));
}

#[test]
fn a_failed_restore_puts_sets_and_rules_back() {
    let fake = host();
    run(&fake, &policy(sources(150, 0)));
    let dumps = |f: &FakeSystem| {
        (
            f.dump(Family::Ipv4, Backend::Nft),
            f.dump(Family::Ipv6, Backend::Nft),
        )
    };
    let before = (dumps(&fake), fake.ipsets.borrow().clone());
    // IPv4 only refills its set; IPv6 gets a set and rules, and its restore fails.
    fake.fail_restore.set(Some(Family::Ipv6));
    let out = run(&fake, &policy(sources(100, 130)));
    assert_eq!(out["failed"], true, "{out}");
    let msg = out["msg"].as_str().unwrap();
    assert!(
        msg.contains("restore") && msg.contains("ipsets rolled back"),
        "{msg}"
    );
    fake.fail_restore.set(None);
    assert_eq!(dumps(&fake), before.0);
    assert_eq!(*fake.ipsets.borrow(), before.1);
}

#[test]
fn a_failed_set_fill_names_the_line_and_changes_nothing() {
    let fake = host();
    run(&fake, &policy(sources(150, 0)));
    let before = (
        fake.dump(Family::Ipv4, Backend::Nft),
        fake.ipsets.borrow().clone(),
    );
    fake.fail_ipset_line.replace(Some("swap".into()));
    let out = run(&fake, &policy(sources(140, 0)));
    assert_eq!(out["failed"], true, "{out}");
    let msg = out["msg"].as_str().unwrap();
    assert!(
        msg.contains("ipset restore")
            && msg.contains("input line 142: swap dfw-allow-0-v4-new dfw-allow-0-v4"),
        "{msg}"
    );
    assert_eq!(fake.dump(Family::Ipv4, Backend::Nft), before.0);
    assert_eq!(
        *fake.ipsets.borrow(),
        before.1,
        "the half-filled temporary set is gone"
    );
}

#[test]
fn a_leftover_temporary_set_is_cleaned_up() {
    let fake = host();
    let args = policy(sources(150, 0));
    run(&fake, &args);
    fake.ipsets.borrow_mut().insert(
        "dfw-allow-0-v4-new".into(),
        FakeSet {
            kind: "hash:net".into(),
            family: "inet".into(),
            maxelem: "1024".into(),
            members: vec!["10.0.0.1".into()],
        },
    );
    let out = run(&fake, &args);
    assert_eq!(out["changed"], true, "{out}");
    assert_eq!(set_names(&fake), ["blocklist", "dfw-allow-0-v4"]);
    assert_eq!(run(&fake, &args)["changed"], false);
}

#[test]
fn the_sets_file_is_written_before_the_rules_files() {
    let fake = host();
    let args = with(&policy(sources(150, 0)), "persist", json!(true));
    let out = run(&fake, &args);
    let persisted: Vec<&str> = out["persisted"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(persisted.first(), Some(&SETS_FILE), "{out}");
    let files = fake.files.borrow();
    let text = files.get(Path::new(SETS_FILE)).unwrap();
    assert!(text.starts_with("# BEGIN docker_firewall"), "{text}");
    assert!(text.contains("create dfw-allow-0-v4 hash:net family inet maxelem 1024\n"));
    assert!(
        files
            .get(Path::new("/etc/iptables/rules.v4"))
            .unwrap()
            .contains("--match-set dfw-allow-0-v4 src")
    );
}

#[test]
fn without_ipset_a_large_entry_is_refused_and_a_small_policy_runs() {
    let fake = host();
    fake.ipset_installed.set(false);
    let out = run(&fake, &policy(sources(150, 0)));
    assert_eq!(out["failed"], true, "{out}");
    let msg = out["msg"].as_str().unwrap();
    assert!(
        msg.contains("dfw-allow-0-v4") && msg.contains("install ipset"),
        "{msg}"
    );
    assert_eq!(fake.restores.get(), 0);
    let out = run(&fake, &policy(sources(3, 0)));
    assert_eq!(out["failed"], Value::Null, "{out}");
    assert!(out["warnings"].as_array().unwrap().is_empty(), "{out}");
}

#[test]
fn switching_to_the_nftables_dataplane_destroys_the_sets_after_the_rules() {
    let fake = host();
    *fake.nft_tables.borrow_mut() = Some(String::new());
    let args = policy(sources(150, 120));
    run(&fake, &args);
    assert_eq!(set_names(&fake).len(), 3);
    let out = run(&fake, &with(&args, "dataplane", json!("nftables")));
    assert_eq!(out["failed"], Value::Null, "{out}");
    assert_eq!(set_names(&fake), ["blocklist"]);
    assert!(fake.nft_ours.borrow().is_some());
    assert!(
        !fake
            .dump(Family::Ipv4, Backend::Nft)
            .contains("--match-set")
    );
    assert_eq!(
        run(&fake, &with(&args, "dataplane", json!("nftables")))["changed"],
        false
    );
}
