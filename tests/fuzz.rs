//! Hostile input, property-tested (stable Rust: proptest, no cargo-fuzz). Every test here is
//! `#[ignore]`: CI's `cargo test` skips them; `scripts/fuzz` runs them for a time budget each and
//! collects the figures they print ("fuzz-figure target=... cases=... seconds=... failures=...").
//!
//!   FUZZ_SECONDS=60 cargo test --release --test fuzz -- --ignored --nocapture
//!
//! Properties: no panic (proptest catches one and reports the input, shrunk), errors are values,
//! and where it holds a round trip: parse -> render -> parse, a policy applied once then planning
//! to nothing, a rules-file merge applied twice giving the same file.

use docker_firewall::core::args::parse_args;
use docker_firewall::core::desired::{DockerFacts, desired_state};
use docker_firewall::core::owned::{DesiredState, LiveState};
use docker_firewall::core::plan::{plan, rollback_input};
use docker_firewall::core::policy::{Backend, Config, Family};
use docker_firewall::core::rules_file::updated_content;
use docker_firewall::core::save::{Ruleset, incompatible_table_note, parse_save};
use docker_firewall::system::fake::FakeSystem;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseResult, TestRunner};
use serde_json::{Value, json};
use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod common;
#[path = "fuzz/gen.rs"]
mod generate;

use generate::{json_value, mutate_policy, mutated_text, save_text, unicode_text};

/// Runs `test` on values of `strategy` in batches until FUZZ_SECONDS (default 3) have passed,
/// then prints the figures. A failure panics with proptest's shrunk input.
fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S::Value: std::fmt::Debug,
{
    let seconds: f64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let cases = Cell::new(0u64);
    let slowest = Cell::new(Duration::ZERO);
    loop {
        let mut runner = TestRunner::new(RunnerConfig {
            cases: 500,
            failure_persistence: None,
            ..RunnerConfig::default()
        });
        let result = runner.run(&strategy, |value| {
            let t = Instant::now();
            let r = test(value);
            cases.set(cases.get() + 1);
            slowest.set(slowest.get().max(t.elapsed()));
            r
        });
        let failed = result.is_err();
        if failed || start.elapsed() >= budget {
            println!(
                "fuzz-figure target={name} cases={} seconds={:.1} slowest_case_ms={:.1} failures={}",
                cases.get(),
                start.elapsed().as_secs_f64(),
                slowest.get().as_secs_f64() * 1000.0,
                u8::from(failed)
            );
            if let Err(e) = result {
                panic!("{name}: {e}");
            }
            return;
        }
    }
}

fn fixtures(dir: &str) -> Vec<String> {
    let dir = format!("{}/tests/fixtures/{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            let text = std::fs::read_to_string(&p).ok()?;
            Some((p.display().to_string(), text))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, t)| t).collect()
}

fn saves() -> &'static [String] {
    static S: OnceLock<Vec<String>> = OnceLock::new();
    S.get_or_init(|| fixtures("saves"))
}

fn rules_files() -> &'static [String] {
    static S: OnceLock<Vec<String>> = OnceLock::new();
    S.get_or_init(|| {
        let mut files = fixtures("layouts");
        files.retain(|t| t.contains("COMMIT"));
        files
    })
}

/// Valid policies the plans are made for (and that the mutations start from).
fn policies() -> Vec<Value> {
    vec![
        json!({"external_interfaces": ["eth0"], "ingress": {"allow": [
            {"ports": [443, "8000-8100"], "sources": ["192.0.2.0/26", "2001:db8:1::/48"], "comment": "lb"},
            {"ports": [5432], "proto": "tcp", "sources": ["198.51.100.7"], "destination": "203.0.113.10"}]}}),
        json!({"external_interfaces": ["eth0", "ens+"], "strategy": "both", "audit": true,
            "ingress": {"default": "reject", "allow": [{"ports": [8080], "proto": "udp", "sources": ["10.0.0.0/8"]}]},
            "egress": {"deny_private": true, "deny_host": true,
                "allow": [{"destinations": ["10.1.2.3", "fd00::1"], "ports": [53], "proto": "udp", "comment": "dns"}]},
            "log": {"enabled": true, "prefix": "fw ", "rate": "10/min"}}),
        json!({"external_interfaces": ["eth0"], "strategy": "prerouting", "families": ["ipv4"],
            "docker_interfaces": ["docker0", "br-+", "mybr"], "ingress": {"default": "drop"}}),
    ]
}

fn configs() -> &'static [Config] {
    static C: OnceLock<Vec<Config>> = OnceLock::new();
    C.get_or_init(|| {
        policies()
            .iter()
            .map(|p| parse_args(p).unwrap_or_else(|e| panic!("{p}: {e}")))
            .collect()
    })
}

fn desired_for(config: &Config, family: Family, facts: &DockerFacts) -> DesiredState {
    let external = config.external_interfaces.clone().unwrap_or_default();
    desired_state(config, family, &external, facts).expect("every layout renders on iptables")
}

/// A ruleset in iptables-save form.
fn render(ruleset: &Ruleset) -> String {
    let mut out = String::new();
    for t in &ruleset.tables {
        out.push_str(&format!("*{}\n", t.name));
        for c in &t.chains {
            out.push_str(&format!(":{} {}\n", c.name, c.policy));
        }
        for r in &t.rules {
            out.push_str(&format!("-A {} {}\n", r.chain, r.spec));
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// parse_save, then everything the module does with a parsed ruleset.
fn check_save(text: &str) -> TestCaseResult {
    let _ = incompatible_table_note(text);
    let Ok(ruleset) = parse_save(text) else {
        return Ok(());
    };
    let rendered = render(&ruleset);
    let again = parse_save(&rendered)
        .map_err(|e| TestCaseError::fail(format!("a rendered ruleset does not parse: {e}")))?;
    prop_assert_eq!(&again, &ruleset, "parse -> render -> parse");
    let live = LiveState::from_ruleset(&ruleset);
    let _ = live.render();
    prop_assert_eq!(rollback_input(&live, &live), "", "nothing to roll back");
    let facts = DockerFacts::read(&ruleset);
    let facts = facts.with_ports_of(std::slice::from_ref(&facts));
    for config in configs() {
        for family in [Family::Ipv4, Family::Ipv6] {
            let p = plan(&live, &desired_for(config, family, &facts));
            let _ = (p.restore_input(), p.actions());
        }
    }
    Ok(())
}

#[test]
#[ignore]
fn fuzz_save_parser_generated() {
    fuzz("save-parser/generated", save_text(), |t| check_save(&t));
}

#[test]
#[ignore]
fn fuzz_save_parser_mutated_fixtures() {
    let n = saves().len();
    fuzz(
        "save-parser/mutated-fixtures",
        mutated_text(n),
        |(i, edits)| check_save(&generate::apply_edits(&saves()[i % n], &edits)),
    );
}

#[test]
#[ignore]
fn fuzz_save_parser_bytes() {
    fuzz(
        "save-parser/bytes",
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..600)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            unicode_text(),
        ],
        |t| check_save(&t),
    );
}

/// The whole module on the fake machine, from a mutated fixture: it either fails with a message
/// or converges, and then a second run changes nothing.
#[test]
#[ignore]
fn fuzz_module_on_mutated_rulesets() {
    let n = saves().len();
    let policy = policies()[0].clone();
    fuzz(
        "module-on-fake/mutated-rulesets",
        mutated_text(n),
        |(i, edits)| {
            let text = generate::apply_edits(&saves()[i % n], &edits);
            let fake = FakeSystem::new();
            fake.load(Family::Ipv4, Backend::Nft, &text);
            fake.load(Family::Ipv6, Backend::Nft, &saves()[(i + 1) % n]);
            converges(&fake, &policy)
        },
    );
}

/// One run, and when it succeeded (not in check mode) a second run that must change nothing.
fn converges(fake: &FakeSystem, args: &Value) -> TestCaseResult {
    let first = common::run(fake, args);
    if first["failed"] == true {
        let msg = first["msg"].as_str().unwrap_or("");
        prop_assert!(!msg.is_empty(), "a failure without a message: {first}");
        return Ok(());
    }
    if args["_ansible_check_mode"] == true {
        return Ok(());
    }
    let second = common::run(fake, args);
    prop_assert_eq!(
        &second["failed"],
        &Value::Null,
        "second run failed: {}",
        second
    );
    prop_assert_eq!(&second["changed"], &json!(false), "second run: {}", second);
    Ok(())
}

#[test]
#[ignore]
fn fuzz_args_arbitrary_json() {
    fuzz("args/arbitrary-json", json_value(), |v| {
        if let Err(e) = parse_args(&v) {
            prop_assert!(!e.to_string().is_empty());
        }
        let text = v.to_string();
        let _ = docker_firewall::core::args::parse_args_text(&text);
        let half: String = text.chars().take(text.chars().count() / 2).collect();
        let _ = docker_firewall::core::args::parse_args_text(&half);
        Ok(())
    });
}

/// A valid policy with a few parts replaced, removed or added: refused naming a field it touched,
/// or accepted and then applied on the fake machine, converging in one run.
#[test]
#[ignore]
fn fuzz_args_mutated_policies() {
    let bases = policies();
    let n = bases.len();
    let docker_v4 = saves()
        .iter()
        .find(|t| t.contains("DOCKER-USER") && t.contains("DNAT"))
        .cloned()
        .unwrap_or_default();
    fuzz("args/mutated-policies", mutate_policy(), |(i, edits)| {
        let (policy, touched) = generate::apply_policy_edits(&bases[i % n], &edits);
        match parse_args(&policy) {
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(
                    touched.is_empty() || touched.iter().any(|k| msg.contains(k.as_str())),
                    "the message names none of the fields changed {:?}: {}\npolicy: {}",
                    touched,
                    msg,
                    policy
                );
                Ok(())
            }
            Ok(_) => {
                let fake = FakeSystem::new();
                fake.load(Family::Ipv4, Backend::Nft, &docker_v4);
                fake.load(Family::Ipv6, Backend::Nft, "");
                converges(&fake, &policy)
            }
        }
    });
}

#[test]
#[ignore]
fn fuzz_rules_file_merge() {
    let files = rules_files();
    let n = files.len();
    let facts = parse_save(&saves()[0])
        .map(|r| DockerFacts::read(&r))
        .unwrap_or_default();
    let mut desired: Vec<DesiredState> = configs()
        .iter()
        .flat_map(|c| [Family::Ipv4, Family::Ipv6].map(|f| desired_for(c, f, &facts)))
        .collect();
    desired.push(DesiredState::default());
    let strategy = (
        mutated_text(n),
        any::<usize>(),
        proptest::option::of(unicode_text()),
    );
    fuzz("rules-file/merge", strategy, |((i, edits), d, raw)| {
        let existing = raw.unwrap_or_else(|| generate::apply_edits(&files[i % n], &edits));
        let d = &desired[d % desired.len()];
        let once = updated_content(Some(&existing), d);
        let twice = updated_content(once.as_deref(), d);
        if once != twice {
            // Known: a line ending in a lone CR, joined with our LF, reads back as a CRLF line
            // ending (str::lines drops the CR): each merge peels one such CR off, then it settles.
            prop_assert!(existing.contains('\r'), "a second merge changes the file");
            let mut text = twice;
            for _ in 0..existing.matches('\r').count() {
                text = updated_content(text.as_deref(), d);
            }
            prop_assert_eq!(
                &updated_content(text.as_deref(), d),
                &text,
                "the merges do not settle"
            );
        }
        let out = once.unwrap_or_default();
        generate::foreign_lines_kept(&existing, &out)
    });
}

/// Sizes, timed: a 1 MB line, 10k and 100k chains, 10k and 100k rules. Prints the figures; the
/// only assertions are that each input parses.
#[test]
#[ignore]
fn scale_figures() {
    generate::scale_figures(configs());
}
