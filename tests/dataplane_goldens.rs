//! One policy, both dataplanes: for each feature policy, the iptables rules (per family, as
//! restore input) and the nftables table the pure core renders from the same typed rules.
//! Goldens in tests/golden/dataplanes/<name>.txt; `UPDATE_GOLDEN=1 cargo test` rewrites them.

use docker_firewall::core::args::parse_args;
use docker_firewall::core::desired::{DockerFacts, PublishedPort, desired_state};
use docker_firewall::core::nft::desired::desired_table;
use docker_firewall::core::policy::Family;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

mod common;
use common::reject_egress_log_policy;

fn facts(forward_chain: &'static str) -> DockerFacts {
    let port = |proto: &str, port: &str| PublishedPort {
        proto: proto.into(),
        port: port.into(),
    };
    DockerFacts {
        published: vec![
            port("tcp", "8080"),
            port("tcp", "8000:8010"),
            port("udp", "53"),
        ],
        bridges: vec!["docker0".into(), "br-1a2b3c4d5e6f".into()],
        forward_chain,
    }
}

/// 120 sources per family: past the ipset threshold on iptables.
fn many_sources() -> Value {
    let v4 = (0..120).map(|i| format!("198.18.{}.{}/32", i / 100, i % 100));
    let v6 = (0..120).map(|i| format!("fd00:18::{i:x}/128"));
    Value::from(v4.chain(v6).collect::<Vec<_>>())
}

fn cases() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "allow-lists",
            "DOCKER-USER",
            json!({
                "external_interfaces": ["eth0"],
                "ingress": {"allow": [
                    {"ports": [8080], "sources": ["192.0.2.0/26", "192.0.2.7", "2001:db8:1::/48"], "comment": "load balancers"},
                    {"ports": ["5432", "8000-8010"], "sources": ["198.51.100.7"], "destination": "203.0.113.10"},
                    {"ports": [8080], "sources": many_sources(), "comment": "a country"},
                    {"proto": "udp", "ports": [53]}
                ]}
            }),
        ),
        (
            "reject-egress-log",
            "DOCKER-USER",
            reject_egress_log_policy(),
        ),
        (
            "audit-ipv4-only-gate",
            "DOCKER-USER",
            json!({"external_interfaces": ["eth0"], "families": ["ipv4"], "audit": true,
                   "strategy": "both", "egress": {"deny_host": true}}),
        ),
        (
            "forward-in-mangle-no-log",
            "FORWARD",
            json!({"external_interfaces": ["eth0"], "strategy": "both",
                   "log": {"enabled": false}, "egress": {"deny_private": true},
                   "ingress": {"allow": [{"sources": ["192.0.2.0/24"]}]}}),
        ),
    ]
}

fn describe(forward_chain: &'static str, args: &Value) -> String {
    let config = parse_args(args).expect("policy is valid");
    let external = config.external_interfaces.clone().unwrap_or_default();
    let facts = facts(forward_chain);
    let mut out = String::new();
    for family in [Family::Ipv4, Family::Ipv6] {
        out.push_str(&format!("== iptables {}\n", family.name()));
        out.push_str(
            &desired_state(&config, family, &external, &facts)
                .expect("expressible")
                .render(&BTreeMap::new()),
        );
    }
    out.push_str("== nftables\n");
    if let Some(table) = desired_table(&config, &external, &facts) {
        out.push_str(&table.render());
    }
    out
}

#[test]
fn both_dataplanes_render_each_feature_policy() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/dataplanes");
    let mut failures = Vec::new();
    for (name, forward_chain, args) in cases() {
        let actual = describe(forward_chain, &args);
        let path = dir.join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != actual {
            failures.push(
                similar::TextDiff::from_lines(&expected, &actual)
                    .unified_diff()
                    .header(&path.display().to_string(), "actual")
                    .to_string(),
            );
        }
    }
    assert!(
        failures.is_empty(),
        "golden mismatch (UPDATE_GOLDEN=1 cargo test --test dataplane_goldens):\n{}",
        failures.join("\n")
    );
}
