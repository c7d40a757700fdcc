//! The nftables dataplane against the fake machine: auto-detection of Docker's nftables backend,
//! one `nft -f` per change and none when nothing changes, check mode, absent, switching from the
//! iptables dataplane, roll-back, the rules file, and golden renderings of the table.

use docker_firewall::core::policy::{Backend, Family};
use docker_firewall::system::fake::FakeSystem;
use serde_json::{Value, json};
use std::path::Path;

mod common;
use common::{reject_egress_log_policy, run};

const DOCKER_NFT_V4: &str = include_str!("fixtures/nft/docker-bridges-usernet-portmap.json");
const NFT_FILE: &str = "/etc/docker_firewall/docker_firewall.nft";

/// Docker 29 on its nftables backend: no iptables rules at all, `ip docker-bridges` publishing
/// 8080/tcp on bridge1.
fn docker_nft_host() -> FakeSystem {
    let fake = FakeSystem::new();
    fake.load(
        Family::Ipv4,
        Backend::Nft,
        "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
    );
    fake.load(
        Family::Ipv6,
        Backend::Nft,
        "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
    );
    *fake.nft_tables.borrow_mut() = Some(String::new());
    fake.nft_json
        .borrow_mut()
        .insert("ip docker-bridges".into(), DOCKER_NFT_V4.into());
    fake
}

fn policy() -> Value {
    json!({
        "external_interfaces": ["eth0"],
        "ingress": {"allow": [
            {"ports": [8080], "sources": ["192.0.2.0/26", "192.0.2.7", "2001:db8:1::/48"], "comment": "load balancers"},
            {"ports": ["5432"], "sources": ["198.51.100.7"], "destination": "203.0.113.10"}
        ]},
        "_ansible_diff": true
    })
}

fn with(base: &Value, changes: Value) -> Value {
    let mut out = base.clone();
    for (k, v) in changes.as_object().unwrap() {
        out[k] = v.clone();
    }
    out
}

#[test]
fn auto_picks_nftables_on_dockers_nftables_backend_and_a_second_run_writes_nothing() {
    let fake = docker_nft_host();
    let first = run(&fake, &policy());
    assert_eq!(first["failed"], Value::Null, "{first}");
    assert_eq!(first["dataplane"], "nftables");
    assert_eq!(first["changed"], true);
    assert_eq!(fake.nft_scripts.borrow().len(), 1);
    assert_eq!(
        fake.restores.get(),
        0,
        "no iptables restore on an nftables host"
    );
    let table = first["rules"]["nftables"].as_str().unwrap();
    assert!(
        table.contains("iifname \"eth0\" fib daddr type local tcp dport 8080 jump ingress_policy"),
        "{table}"
    );
    assert!(table.contains("oifname \"bridge1\""), "{table}");
    assert!(table.contains("192.0.2.0/26"), "{table}");
    assert!(!table.contains("192.0.2.7"), "merged into the /26: {table}");
    assert_eq!(
        fake.files
            .borrow()
            .get(Path::new(NFT_FILE))
            .map(|f| f.contains("delete table inet docker_firewall")),
        Some(true)
    );

    let second = run(&fake, &policy());
    assert_eq!(second["changed"], false, "{second}");
    assert_eq!(second["plan"]["nftables"], json!([]));
    assert_eq!(
        fake.nft_scripts.borrow().len(),
        1,
        "a no-op run writes nothing"
    );
}

#[test]
fn check_mode_predicts_and_changes_nothing() {
    let fake = docker_nft_host();
    let check = run(
        &fake,
        &with(&policy(), json!({"_ansible_check_mode": true})),
    );
    assert_eq!(check["changed"], true);
    assert!(fake.nft_scripts.borrow().is_empty());
    assert!(fake.files.borrow().get(Path::new(NFT_FILE)).is_none());
    let diff = check["diff"].as_array().unwrap();
    assert!(
        diff.iter()
            .any(|d| d["after_header"] == "nftables table inet docker_firewall, planned")
    );
    let applied = run(&fake, &policy());
    assert_eq!(applied["rules"]["nftables"], check["rules"]["nftables"]);
    let check_again = run(
        &fake,
        &with(&policy(), json!({"_ansible_check_mode": true})),
    );
    assert_eq!(check_again["changed"], false);
}

#[test]
fn absent_deletes_the_table_and_the_file() {
    let fake = docker_nft_host();
    run(&fake, &policy());
    let absent = run(&fake, &with(&policy(), json!({"state": "absent"})));
    assert_eq!(absent["changed"], true, "{absent}");
    assert!(fake.nft_ours.borrow().is_none());
    assert!(fake.files.borrow().get(Path::new(NFT_FILE)).is_none());
    let again = run(&fake, &with(&policy(), json!({"state": "absent"})));
    assert_eq!(again["changed"], false);
}

#[test]
fn the_iptables_dataplane_refuses_dockers_nftables_backend() {
    let fake = docker_nft_host();
    let result = run(&fake, &with(&policy(), json!({"dataplane": "iptables"})));
    assert_eq!(result["failed"], true);
    let msg = result["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("dataplane:") && msg.contains("nftables firewall backend"),
        "{msg}"
    );
    assert_eq!(fake.restores.get(), 0);
    assert!(fake.nft_scripts.borrow().is_empty());
}

#[test]
fn switching_dataplanes_moves_the_policy_and_leaves_nothing_behind() {
    let fake = FakeSystem::new();
    let docker = "*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n\
        -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\nCOMMIT\n\
        *filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:DOCKER - [0:0]\n:DOCKER-USER - [0:0]\n\
        -A FORWARD -j DOCKER-USER\n-A FORWARD -o docker0 -j DOCKER\nCOMMIT\n";
    fake.load(Family::Ipv4, Backend::Nft, docker);
    fake.load(
        Family::Ipv6,
        Backend::Nft,
        "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
    );
    *fake.nft_tables.borrow_mut() = Some(String::new());
    let args = with(&policy(), json!({"persist": false}));
    let iptables = run(&fake, &args);
    assert_eq!(
        iptables["dataplane"], "iptables",
        "Docker keeps DOCKER-USER: auto stays on iptables"
    );
    assert!(fake.dump(Family::Ipv4, Backend::Nft).contains("DFW-"));

    let nft = run(&fake, &with(&args, json!({"dataplane": "nftables"})));
    assert_eq!(nft["changed"], true, "{nft}");
    assert!(
        !fake.dump(Family::Ipv4, Backend::Nft).contains("DFW-"),
        "our iptables rules are gone"
    );
    assert!(
        nft["rules"]["nftables"]
            .as_str()
            .unwrap()
            .contains("tcp dport 8080"),
        "ports read from iptables: {nft}"
    );
    // the exposure report walks our table at its hooks
    let port = nft["exposure"]["ports"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["family"] == "ipv4"))
        .unwrap_or_else(|| panic!("an ipv4 row: {nft}"));
    assert_eq!(port["verdict"], "restricted", "{port}");
    assert_eq!(port["sources"], json!(["192.0.2.0/26"]), "{port}");
    let rule = port["rule"].as_str().unwrap();
    assert!(
        rule.starts_with("inet docker_firewall ingress_deny: "),
        "{rule}"
    );
    assert_eq!(
        run(&fake, &with(&args, json!({"dataplane": "nftables"})))["changed"],
        false
    );

    let back = run(&fake, &args);
    assert_eq!(back["changed"], true);
    assert!(fake.nft_ours.borrow().is_none(), "the table is gone");
    assert!(fake.dump(Family::Ipv4, Backend::Nft).contains("DFW-"));
}

#[test]
fn a_failing_nft_changes_nothing_and_names_the_command() {
    let fake = docker_nft_host();
    fake.fail_nft.set(true);
    let result = run(&fake, &policy());
    assert_eq!(result["failed"], true);
    let msg = result["msg"].as_str().unwrap();
    assert!(msg.contains("nft -f -"), "{msg}");
    assert!(fake.nft_ours.borrow().is_none());
    assert!(fake.files.borrow().get(Path::new(NFT_FILE)).is_none());
}

#[test]
fn a_drifted_table_is_replaced() {
    let fake = docker_nft_host();
    run(&fake, &policy());
    // Someone flushes a chain of ours.
    if let Some(t) = fake.nft_ours.borrow_mut().as_mut() {
        t.chains
            .iter_mut()
            .find(|c| c.name == "prerouting")
            .unwrap()
            .comments
            .clear();
    }
    let repair = run(&fake, &policy());
    assert_eq!(repair["changed"], true);
    assert_eq!(run(&fake, &policy())["changed"], false);
}

#[test]
fn nftables_without_nft_fails_clearly() {
    let fake = FakeSystem::new();
    fake.load(
        Family::Ipv4,
        Backend::Nft,
        "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
    );
    let result = run(&fake, &with(&policy(), json!({"dataplane": "nftables"})));
    assert_eq!(result["failed"], true);
    assert!(
        result["msg"]
            .as_str()
            .unwrap()
            .contains("needs the nft command")
    );
}

/// The table each policy renders, against tests/golden/nft/<name>.nft (UPDATE_GOLDEN=1 rewrites).
#[test]
fn golden_tables() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let cases = [
        ("allow-lists", policy()),
        ("reject-egress-log", reject_egress_log_policy()),
        (
            "audit-ipv4-only",
            json!({"external_interfaces": ["eth0"], "families": ["ipv4"], "audit": true,
                   "egress": {"deny_host": true}}),
        ),
    ];
    let mut mismatches = Vec::new();
    for (name, args) in cases {
        let fake = docker_nft_host();
        let args = with(
            &args,
            json!({"_ansible_check_mode": true, "dataplane": "nftables"}),
        );
        let result = run(&fake, &args);
        let table = result["rules"]["nftables"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {result}"))
            .to_string();
        let path = format!("{}/tests/golden/nft/{name}.nft", env!("CARGO_MANIFEST_DIR"));
        if update {
            std::fs::create_dir_all(Path::new(&path).parent().unwrap()).unwrap();
            std::fs::write(&path, &table).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(table.as_str()) {
            mismatches.push(name);
        }
    }
    assert!(
        mismatches.is_empty(),
        "golden mismatch (UPDATE_GOLDEN=1 cargo test --test nft_with_fake): {mismatches:?}"
    );
}

#[test]
fn auto_follows_docker_to_nftables_even_after_creating_docker_user_itself() {
    // Docker (nftables backend) not running yet: auto uses iptables, which creates DOCKER-USER.
    let fake = docker_nft_host();
    let docker = fake
        .nft_json
        .borrow_mut()
        .remove("ip docker-bridges")
        .unwrap();
    let args = with(&policy(), json!({"persist": false}));
    let before = run(&fake, &args);
    assert_eq!(before["dataplane"], "iptables", "{before}");
    assert!(
        fake.dump(Family::Ipv4, Backend::Nft)
            .contains(":DOCKER-USER")
    );
    // Docker starts: its tables appear, the DOCKER-USER chain is still ours alone.
    fake.nft_json
        .borrow_mut()
        .insert("ip docker-bridges".into(), docker.clone());
    let after = run(&fake, &args);
    assert_eq!(after["dataplane"], "nftables", "{after}");
    assert!(!fake.dump(Family::Ipv4, Backend::Nft).contains("DFW-"));
    // Docker stops again: the table stays, nothing flips back.
    fake.nft_json.borrow_mut().remove("ip docker-bridges");
    let stopped = run(&fake, &args);
    assert_eq!(stopped["dataplane"], "nftables", "{stopped}");
    assert!(fake.nft_ours.borrow().is_some());
}

#[test]
fn a_large_allow_list_on_iptables_rules_suggests_the_nftables_dataplane() {
    let fake = FakeSystem::new();
    fake.load(
        Family::Ipv4,
        Backend::Nft,
        "*filter\n:INPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n:DOCKER-USER - [0:0]\nCOMMIT\n",
    );
    let mut sources: Vec<String> = (0..300)
        .map(|i| format!("10.{}.{}.1", i / 256, i % 256))
        .collect();
    let args = json!({"external_interfaces": ["eth0"], "persist": false, "families": ["ipv4"],
                      "ingress": {"allow": [{"ports": [443], "sources": sources}]}});
    // Matched with an ipset: nothing to warn about.
    let with_set = run(&fake, &args);
    assert_eq!(with_set["warnings"], json!([]), "{with_set}");
    // A /0 keeps the entry on rules (hash:net cannot hold it): 300 rules, a warning.
    sources[0] = "0.0.0.0/0".into();
    let args = json!({"external_interfaces": ["eth0"], "persist": false, "families": ["ipv4"],
                      "ingress": {"allow": [{"ports": [443], "sources": sources}]}});
    let result = run(&fake, &args);
    let warnings = result["warnings"].to_string();
    assert!(
        warnings.contains("ingress.allow[0]: 300 sources")
            && warnings.contains("dataplane: nftables"),
        "{result}"
    );
    let few = run(
        &fake,
        &json!({"external_interfaces": ["eth0"], "persist": false, "families": ["ipv4"],
                                  "ingress": {"allow": [{"ports": [443], "sources": ["10.0.0.1"]}]}}),
    );
    assert_eq!(few["warnings"], json!([]));
}

#[test]
fn the_exposure_report_walks_dockers_nftables_backend_under_our_table() {
    let fake = docker_nft_host();
    let before = run(
        &fake,
        &with(&policy(), json!({"_ansible_check_mode": true})),
    );
    let row = |result: &Value, key: &str| {
        result[key]["ports"]
            .as_array()
            .and_then(|ports| ports.iter().find(|p| p["host_port"] == 8080).cloned())
            .unwrap_or_else(|| panic!("no 8080 in {key}: {result}"))
    };
    // before: Docker's own rules accept 8080 from anywhere
    assert_eq!(
        row(&before, "exposure_before")["verdict"],
        "open",
        "{before}"
    );
    // after: our prerouting chain lets only the entry's sources through to Docker's DNAT
    assert_eq!(
        row(&before, "exposure")["verdict"],
        "restricted",
        "{before}"
    );
    let applied = run(&fake, &policy());
    let after = row(&applied, "exposure");
    assert_eq!(after["verdict"], "restricted", "{applied}");
    assert_eq!(after["sources"], json!(["192.0.2.0/26"]), "{applied}");
}
