//! What Docker's nftables firewall backend (Docker 29+, tables `ip docker-bridges` and
//! `ip6 docker-bridges`) shows: the published host ports (its DNAT rules) and its bridges (the
//! keys of its forward verdict map). The same [`DockerFacts`] the iptables rules give.

use crate::core::desired::{DOCKER_USER, DockerFacts, PublishedPort};
use serde_json::Value;

pub use crate::core::names::DOCKER_NFT_TABLE as DOCKER_TABLE;
const DNAT_CHAIN: &str = "nat-prerouting-and-output";
const BRIDGE_MAP: &str = "filter-forward-in-jumps";

/// Reads `nft -j list table ip|ip6 docker-bridges`.
pub fn docker_facts(json: &str) -> Result<DockerFacts, String> {
    let doc: Value = serde_json::from_str(json)
        .map_err(|e| format!("nft -j printed invalid JSON for Docker's table: {e}"))?;
    let mut facts = DockerFacts {
        published: Vec::new(),
        bridges: Vec::new(),
        forward_chain: DOCKER_USER,
    };
    for item in doc
        .get("nftables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(rule) = item.get("rule")
            && rule.get("chain").and_then(Value::as_str) == Some(DNAT_CHAIN)
        {
            facts.published.extend(published_port(rule));
        } else if let Some(map) = item.get("map")
            && map.get("name").and_then(Value::as_str) == Some(BRIDGE_MAP)
        {
            for elem in map
                .get("elem")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = elem.get(0).and_then(Value::as_str) {
                    facts.bridges.push(name.to_string());
                }
            }
        }
    }
    facts.published.sort();
    facts.published.dedup();
    facts.bridges.sort();
    facts.bridges.dedup();
    Ok(facts)
}

/// `tcp dport 8080 ... dnat to ...`: the protocol and host port (`8000:8010` for a range, as
/// iptables writes it, which the facts keep).
fn published_port(rule: &Value) -> Option<PublishedPort> {
    let expr = rule.get("expr")?.as_array()?;
    if !expr.iter().any(|e| e.get("dnat").is_some()) {
        return None;
    }
    expr.iter().find_map(|e| {
        let m = e.get("match")?;
        if m.get("op").and_then(Value::as_str) != Some("==") {
            return None;
        }
        let payload = m.get("left")?.get("payload")?;
        if payload.get("field").and_then(Value::as_str) != Some("dport") {
            return None;
        }
        let proto = payload.get("protocol")?.as_str()?.to_string();
        let right = m.get("right")?;
        let port = match (right.as_u64(), right.get("range").and_then(Value::as_array)) {
            (Some(p), _) => p.to_string(),
            (None, Some(r)) => format!("{}:{}", r.first()?.as_u64()?, r.get(1)?.as_u64()?),
            _ => return None,
        };
        Some(PublishedPort { proto, port })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_nftables_layout_gives_ports_and_bridges() {
        let json = include_str!("../../../tests/fixtures/nft/docker-bridges-usernet-portmap.json");
        let facts = docker_facts(json).unwrap();
        assert_eq!(
            facts.published,
            vec![PublishedPort {
                proto: "tcp".into(),
                port: "8080".into()
            }]
        );
        assert_eq!(facts.bridges, vec!["bridge1", "docker0"]);
    }

    #[test]
    fn a_published_range_keeps_both_ends() {
        let rule: Value = serde_json::from_str(
            r#"{"chain": "nat-prerouting-and-output", "expr": [
              {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}},
                         "right": {"range": [5000, 5010]}}},
              {"dnat": {"addr": "192.0.2.2"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            published_port(&rule),
            Some(PublishedPort {
                proto: "udp".into(),
                port: "5000:5010".into()
            })
        );
    }
}
