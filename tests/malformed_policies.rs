//! Hostile and malformed policies: each is refused with a message that names the field, and the
//! machine (rulesets and rules files) is exactly as it was.

use docker_firewall::core::policy::{Backend, Family};
use docker_firewall::system::fake::FakeSystem;
use serde_json::{Value, json};

mod common;

const V4: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\n-A DOCKER-USER -j RETURN\nCOMMIT\n";

fn allow(entry: Value) -> Value {
    json!({"ingress": {"allow": [entry]}})
}

/// (policy, the start of the message: the field it names)
fn cases() -> Vec<(Value, &'static str)> {
    let many_sources: Vec<String> = (0..70_000)
        .map(|i| format!("10.{}.{}.0/24", i / 256 % 256, i % 256))
        .collect();
    vec![
        (json!([]), "the args file must hold one JSON object"),
        (json!("ingress"), "the args file must hold one JSON object"),
        (
            json!({"bogus": 1}),
            "Unsupported parameters for (docker_firewall) module: bogus",
        ),
        (json!({"state": "gone"}), "state:"),
        (json!({"state": 1}), "state:"),
        (json!({"families": ["ipv5"]}), "families"),
        (json!({"families": []}), "families"),
        (json!({"backend": "iptables"}), "backend:"),
        (json!({"strategy": "input"}), "strategy:"),
        (json!({"audit": "perhaps"}), "audit:"),
        (json!({"persist": [true]}), "persist:"),
        (json!({"lock_timeout": -1}), "lock_timeout:"),
        (json!({"lock_timeout": "soon"}), "lock_timeout:"),
        (json!({"lock_timeout": 100000}), "lock_timeout:"),
        (
            json!({"external_interfaces": ["eth 0"]}),
            "external_interfaces",
        ),
        (
            json!({"external_interfaces": ["a-very-long-interface-name"]}),
            "external_interfaces",
        ),
        (
            json!({"external_interfaces": ["eth0/1"]}),
            "external_interfaces",
        ),
        (json!({"external_interfaces": [""]}), "external_interfaces"),
        (
            json!({"external_interfaces": {"eth0": true}}),
            "external_interfaces",
        ),
        (
            json!({"docker_interfaces": ["br-\"x"]}),
            "docker_interfaces",
        ),
        (json!({"ingress": "drop"}), "ingress"),
        (
            json!({"ingress": {"default": "accept"}}),
            "ingress.default:",
        ),
        (json!({"ingress": {"allow": "everyone"}}), "ingress.allow"),
        (
            json!({"ingress": {"allow": [{"ports": [0]}]}}),
            "ingress.allow[0].ports[0]:",
        ),
        (
            json!({"ingress": {"allow": [{"ports": [70000]}]}}),
            "ingress.allow[0].ports[0]:",
        ),
        (
            json!({"ingress": {"allow": [{"ports": ["9000-8000"]}]}}),
            "ingress.allow[0].ports[0]:",
        ),
        (
            json!({"ingress": {"allow": [{"ports": ["80-"]}]}}),
            "ingress.allow[0].ports[0]:",
        ),
        (
            json!({"ingress": {"allow": [{"ports": [80.5]}]}}),
            "ingress.allow[0].ports[0]:",
        ),
        (
            json!({"ingress": {"allow": [{"ports": [true]}]}}),
            "ingress.allow[0].ports[0]:",
        ),
        (allow(json!({"proto": "icmp"})), "ingress.allow[0].proto:"),
        (allow(json!({"sources": []})), "ingress.allow[0].sources"),
        (
            allow(json!({"sources": ["987.65.432.1"]})),
            "ingress.allow[0].sources[0]:",
        ),
        (
            allow(json!({"sources": ["10.0.0.0/33"]})),
            "ingress.allow[0].sources[0]:",
        ),
        (
            allow(json!({"sources": ["fd00::/129"]})),
            "ingress.allow[0].sources[0]:",
        ),
        (
            allow(json!({"sources": ["example.com"]})),
            "ingress.allow[0].sources[0]:",
        ),
        (
            allow(json!({"sources": [{"cidr": "10.0.0.0/8"}]})),
            "ingress.allow[0].sources[0]:",
        ),
        (
            allow(json!({"destination": "10.0.0.0/8x"})),
            "ingress.allow[0].destination:",
        ),
        (
            allow(json!({"comment": "it's \"quoted\""})),
            "ingress.allow[0].comment:",
        ),
        (
            allow(json!({"comment": "two\nlines"})),
            "ingress.allow[0].comment:",
        ),
        (
            allow(json!({"comment": "x".repeat(201)})),
            "ingress.allow[0].comment:",
        ),
        (
            allow(json!({"comment": "back`tick"})),
            "ingress.allow[0].comment:",
        ),
        (allow(json!({"port": [80]})), "ingress.allow[0]"),
        (
            allow(json!({"sources": many_sources})),
            "ingress.allow[0].sources",
        ),
        (
            json!({"egress": {"deny_private": "sometimes"}}),
            "egress.deny_private:",
        ),
        (
            json!({"egress": {"private_ranges": ["not-a-cidr"]}}),
            "egress.private_ranges[0]:",
        ),
        (
            json!({"egress": {"allow": [{"ports": [443]}]}}),
            "egress.allow[0]",
        ),
        (
            json!({"egress": {"allow": [{"destinations": ["10.0.0.1"], "proto": "sctp"}]}}),
            "egress.allow[0].proto:",
        ),
        (json!({"log": {"prefix": "x".repeat(40)}}), "log.prefix:"),
        (json!({"log": {"prefix": "bad\"prefix"}}), "log.prefix:"),
        (json!({"log": {"rate": "fast"}}), "log.rate:"),
        (json!({"log": {"rate": "0/second"}}), "log.rate:"),
        (
            json!({"rules_v4": "/etc/x", "rules_v6": "/etc/x"}),
            "rules_v6:",
        ),
        (json!({"rules_v4": ""}), "rules_v4"),
    ]
}

#[test]
fn every_malformed_policy_is_refused_naming_its_field_and_changes_nothing() {
    let mut wrong = Vec::new();
    let cases = cases();
    assert!(
        cases.len() >= 40,
        "the table holds {} policies",
        cases.len()
    );
    for (policy, field) in &cases {
        let fake = FakeSystem::new();
        fake.load(Family::Ipv4, Backend::Nft, V4);
        fake.load(Family::Ipv6, Backend::Nft, V4);
        let before = (
            fake.dump(Family::Ipv4, Backend::Nft),
            fake.dump(Family::Ipv6, Backend::Nft),
        );
        let out = common::run(&fake, policy);
        let msg = out["msg"].as_str().unwrap_or_default().to_string();
        let after = (
            fake.dump(Family::Ipv4, Backend::Nft),
            fake.dump(Family::Ipv6, Backend::Nft),
        );
        let shown: String = policy.to_string().chars().take(80).collect();
        if out["failed"] != true || !msg.starts_with(field) {
            wrong.push(format!(
                "{shown}: expected a failure starting {field:?}, got {out}"
            ));
        } else if before != after || fake.restores.get() != 0 || fake.file_writes.get() != 0 {
            wrong.push(format!("{shown}: refused but the machine changed"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {}:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}
