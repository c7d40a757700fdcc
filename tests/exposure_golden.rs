//! The exposure analysis over recorded hosts.
//!
//! * tests/fixtures/exposure: rulesets of lab hosts with what nmap saw from an allowed and a
//!   stranger client (ground truth from real packets, recorded by tests/netns/test_exposure.sh):
//!   every verdict must say what nmap saw.
//! * tests/fixtures/saves: every Docker layout, as Docker leaves it and after the reference policy
//!   (strategy both, planned and applied by the restore simulator): the report is a golden file in
//!   tests/golden/exposure/ (`UPDATE_GOLDEN=1 cargo test` rewrites them).

use docker_firewall::core::args::parse_args;
use docker_firewall::core::desired::{DockerFacts, desired_state};
use docker_firewall::core::owned::LiveState;
use docker_firewall::core::plan::plan;
use docker_firewall::core::policy::Family;
use docker_firewall::core::save::{Ruleset, parse_save};
use docker_firewall::exposure::{Exposure, HostView, Verdict, after_restore, analyze, render_text};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

fn dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(sub)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn view<'a>(texts: &'a [(Family, String)], external: &[&str]) -> HostView<'a> {
    HostView {
        rulesets: texts
            .iter()
            .map(|(f, t)| (*f, parse_save(t).expect("fixture parses")))
            .collect(),
        external: external.iter().map(|s| s.to_string()).collect(),
        names: BTreeMap::new(),
        listeners: None,
        foreign_hooks: Vec::new(),
        own_table: None,
        docker_nft: Vec::new(),
        notes: Vec::new(),
        sets: BTreeMap::new(),
    }
}

fn reaches(row: &docker_firewall::exposure::PortExposure, addr: &str) -> bool {
    let addr: IpAddr = addr.parse().unwrap();
    match row.verdict {
        Verdict::Open => true,
        Verdict::Restricted => row.sources.iter().any(|s| {
            s.parse::<ipnet::IpNet>()
                .map(|n| n.contains(&addr))
                .unwrap_or(false)
        }),
        _ => false,
    }
}

#[test]
fn verdicts_say_what_nmap_saw() {
    let root = dir("tests/fixtures/exposure");
    let mut expects: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".expect.json"))
        .collect();
    expects.sort();
    assert!(expects.len() >= 5, "fixtures in {}", root.display());
    let mut checked = 0;
    let mut failures = Vec::new();
    for expect_path in expects {
        let expect: Value = serde_json::from_str(&read(&expect_path)).unwrap();
        let scenario = expect["scenario"].as_str().unwrap();
        let backend = expect["recorded_on"].as_str().unwrap();
        let texts: Vec<(Family, String)> = [(Family::Ipv4, "v4"), (Family::Ipv6, "v6")]
            .iter()
            .map(|(f, v)| {
                (
                    *f,
                    read(&root.join(format!("{scenario}.{backend}.{v}.save"))),
                )
            })
            .collect();
        let exposure = analyze(&view(&texts, &["eth0"]));
        for port in expect["ports"].as_array().unwrap() {
            let family = port["family"].as_str().unwrap();
            let row = exposure.ports.iter().find(|r| {
                r.family == family
                    && r.proto == port["proto"].as_str().unwrap()
                    && u64::from(r.host_port) == port["host_port"].as_u64().unwrap()
            });
            let Some(row) = row else {
                failures.push(format!("{scenario}: no row for {port}"));
                continue;
            };
            for client in ["allowed", "stranger"] {
                let addr = expect["clients"][client][family].as_str().unwrap();
                let seen = port[client].as_str().unwrap() == "open";
                checked += 1;
                if row.verdict == Verdict::Unknown || reaches(row, addr) != seen {
                    failures.push(format!(
                        "{scenario} {family} {}/{}: {client} {addr}: nmap saw {}, exposure says {:?} {:?} ({})",
                        row.host_port, row.proto, port[client], row.verdict, row.sources, row.rule
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 40, "only {checked} verdicts checked");
}

fn reference_policy() -> Value {
    json!({
        "external_interfaces": ["eth0"],
        "strategy": "both",
        "ingress": {"default": "drop", "allow": [
            {"ports": [443, 8443], "sources": ["192.0.2.0/26", "2001:db8:1::/48"], "comment": "load balancers"},
            {"ports": [8080], "proto": "tcp"}
        ]}
    })
}

/// The rulesets after the module applied the reference policy (planned, then simulated).
fn protected(texts: &[(Family, String)]) -> Vec<(Family, String)> {
    let config = parse_args(&reference_policy()).unwrap();
    let rulesets: Vec<(Family, Ruleset)> = texts
        .iter()
        .map(|(f, t)| (*f, parse_save(t).unwrap()))
        .collect();
    let facts: Vec<DockerFacts> = rulesets.iter().map(|(_, r)| DockerFacts::read(r)).collect();
    rulesets
        .iter()
        .zip(&facts)
        .map(|((family, ruleset), own)| {
            let desired = desired_state(
                &config,
                *family,
                &["eth0".to_string()],
                &own.with_ports_of(&facts),
            )
            .expect("expressible");
            let input = plan(&LiveState::from_ruleset(ruleset), &desired).restore_input();
            (*family, after_restore(ruleset, &input).unwrap())
        })
        .collect()
}

fn report(title: &str, exposure: &Exposure) -> String {
    format!("== {title}\n{}", render_text(exposure))
}

#[test]
fn golden_reports_for_every_docker_layout() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let saves = dir("tests/fixtures/saves");
    let golden_dir = dir("tests/golden/exposure");
    let mut v4s: Vec<PathBuf> = std::fs::read_dir(&saves)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".v4.save"))
        .collect();
    v4s.sort();
    let mut failures = Vec::new();
    for v4 in v4s {
        let name = v4
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".v4.save", "");
        let mut texts = vec![(Family::Ipv4, read(&v4))];
        let v6 = saves.join(format!("{name}.v6.save"));
        if v6.exists() {
            texts.push((Family::Ipv6, read(&v6)));
        }
        let before = analyze(&view(&texts, &["eth0"]));
        let after_texts = protected(&texts);
        let after = analyze(&view(&after_texts, &["eth0"]));
        let actual = format!(
            "{}\n{}",
            report("as Docker leaves it", &before),
            report(
                "after the reference policy (strategy both; 8080 public, 443/8443 for 192.0.2.0/26 and 2001:db8:1::/48)",
                &after
            )
        );
        let golden = golden_dir.join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(&golden_dir).unwrap();
            std::fs::write(&golden, &actual).unwrap();
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(expected) if expected == actual => {}
            Ok(_) => failures.push(format!("{name}: differs from {}", golden.display())),
            Err(_) => failures.push(format!("{name}: no golden file {}", golden.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(UPDATE_GOLDEN=1 cargo test rewrites the golden files; review their diff)",
        failures.join("\n")
    );
}
