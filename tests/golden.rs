//! Golden-file tests over real iptables-save dumps (tests/fixtures/saves, see its README):
//! what the parser finds, the plan and restore input for a reference policy, and the rules-file
//! block. Each golden lives in tests/golden/<fixture>.txt; `UPDATE_GOLDEN=1 cargo test` rewrites
//! them, and the diff of the golden files is then the review.
//!
//! Every dump is also replayed through the whole module on the fake machine: foreign lines
//! survive byte for byte, a second run does nothing, and absent puts the ruleset back.

use docker_firewall::core::args::parse_args;
use docker_firewall::core::desired::{DockerFacts, desired_state};
use docker_firewall::core::owned::LiveState;
use docker_firewall::core::plan::plan;
use docker_firewall::core::policy::{Backend, Family};
use docker_firewall::core::rules_file::updated_content;
use docker_firewall::core::save::parse_save;
use docker_firewall::system::fake::FakeSystem;
use serde_json::{Value, json};
use std::fmt::Write;
use std::path::{Path, PathBuf};

mod common;
use common::{foreign_lines, run, without_empty_tables};

fn reference_policy(strategy: &str) -> Value {
    json!({
        "external_interfaces": ["eth0", "ens+"],
        "strategy": strategy,
        "ingress": {"default": "drop", "allow": [
            {"ports": [443, "8000-8010"], "sources": ["192.0.2.0/26", "2001:db8:1::/48"], "comment": "load balancers"},
            {"ports": [5432], "proto": "tcp", "sources": ["198.51.100.7"]},
            {"ports": [53], "proto": "udp"}
        ]},
        "rules_v4": "/etc/iptables/rules.v4",
        "rules_v6": "/etc/iptables/rules.v6"
    })
}

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/saves");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "save"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// `<scenario>.<backend>.<v4|v6>.save`
fn family_of(path: &Path) -> Family {
    if path.to_string_lossy().contains(".v6.") {
        Family::Ipv6
    } else {
        Family::Ipv4
    }
}

fn backend_of(path: &Path) -> Backend {
    if path.to_string_lossy().contains(".legacy.") {
        Backend::Legacy
    } else {
        Backend::Nft
    }
}

fn describe(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("fixture readable");
    let family = family_of(path);
    let ruleset = parse_save(&text).expect("fixture parses");
    let mut out = String::new();
    writeln!(out, "== parsed").unwrap();
    for t in &ruleset.tables {
        writeln!(
            out,
            "{}: {} chains, {} rules",
            t.name,
            t.chains.len(),
            t.rules.len()
        )
        .unwrap();
    }
    let facts = DockerFacts::read(&ruleset);
    let ports: Vec<String> = facts
        .published
        .iter()
        .map(|p| format!("{}/{}", p.port, p.proto))
        .collect();
    writeln!(out, "published: {}", ports.join(" ")).unwrap();
    writeln!(out, "bridges: {}", facts.bridges.join(" ")).unwrap();
    let live = LiveState::from_ruleset(&ruleset);
    for strategy in ["docker_user", "both"] {
        let config = parse_args(&reference_policy(strategy)).expect("reference policy is valid");
        let external = config.external_interfaces.clone().unwrap_or_default();
        let desired = desired_state(&config, family, &external, &facts).expect("expressible");
        let plan = plan(&live, &desired);
        writeln!(out, "\n== plan, strategy {strategy}").unwrap();
        for action in plan.actions() {
            writeln!(out, "{action}").unwrap();
        }
        writeln!(out, "\n== restore input, strategy {strategy}").unwrap();
        out.push_str(&plan.restore_input());
        if strategy == "docker_user" {
            writeln!(out, "\n== rules file created, strategy {strategy}").unwrap();
            out.push_str(&updated_content(None, &desired).unwrap_or_default());
        }
    }
    let mut args = reference_policy("both");
    args["audit"] = json!(true);
    args["egress"] = json!({
        "deny_private": true, "deny_host": true,
        "allow": [{"destinations": ["10.0.0.53", "fd00::53"], "ports": [53], "proto": "udp", "comment": "dns"}]
    });
    let config = parse_args(&args).expect("egress policy is valid");
    let external = config.external_interfaces.clone().unwrap_or_default();
    let plan = plan(
        &live,
        &desired_state(&config, family, &external, &facts).expect("expressible"),
    );
    writeln!(out, "\n== restore input, strategy both, egress, audit").unwrap();
    out.push_str(&plan.restore_input());
    out
}

#[test]
fn golden_outputs() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut failures = Vec::new();
    assert!(
        !fixtures().is_empty(),
        "no fixtures in tests/fixtures/saves"
    );
    for fixture in fixtures() {
        let name = fixture.file_stem().unwrap().to_string_lossy().into_owned();
        let actual = describe(&fixture);
        let golden = golden_dir.join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(&golden_dir).unwrap();
            std::fs::write(&golden, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        if expected != actual {
            let diff = similar::TextDiff::from_lines(&expected, &actual)
                .unified_diff()
                .header(&golden.display().to_string(), "actual")
                .to_string();
            failures.push(diff);
        }
    }
    assert!(
        failures.is_empty(),
        "golden mismatch (UPDATE_GOLDEN=1 cargo test to accept):\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_dump_survives_the_module() {
    for fixture in fixtures() {
        let text = std::fs::read_to_string(&fixture).unwrap();
        let family = family_of(&fixture);
        let backend = backend_of(&fixture);
        for strategy in ["docker_user", "prerouting", "both"] {
            let fake = FakeSystem::new();
            fake.load(family, backend, &text);
            let before = fake.dump(family, backend);
            for note in text.lines().filter(|l| {
                l.starts_with("# ") && !l.contains("Generated") && !l.contains("Completed")
            }) {
                fake.save_notes.borrow_mut().push_str(&format!("{note}\n"));
            }
            let families = json!([family.name()]);
            let mut args = reference_policy(strategy);
            args["families"] = families;
            args["backend"] = json!(backend.name());
            let first = run(&fake, &args);
            let name = format!("{} / {strategy}", fixture.display());
            if text.contains("incompatible") {
                let msg = first["msg"].as_str().unwrap_or_default();
                assert!(msg.contains("native nftables rules"), "{name}: {first}");
                assert_eq!(fake.restores.get(), 0);
                continue;
            }
            assert_eq!(first["failed"], Value::Null, "{name}: {first}");
            assert_eq!(first["changed"], true, "{name}");
            let mut after = foreign_lines(&fake.dump(family, backend)).join("\n") + "\n";
            if !before.contains(":DOCKER-USER ") {
                // Created so the hook is in place before Docker starts.
                after = after.replace(":DOCKER-USER - [0:0]\n", "");
            }
            assert_eq!(
                without_empty_tables(&after),
                without_empty_tables(&before),
                "{name}: foreign rules survive byte for byte"
            );
            let second = run(&fake, &args);
            assert_eq!(second["changed"], false, "{name}: {second}");
            assert_eq!(fake.restores.get(), 1, "{name}");
            args["state"] = json!("absent");
            assert_eq!(run(&fake, &args)["changed"], true, "{name}");
            assert_eq!(
                without_empty_tables(&fake.dump(family, backend)),
                without_empty_tables(&before),
                "{name}: absent restores the dump"
            );
        }
    }
}
