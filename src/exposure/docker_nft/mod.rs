//! Docker's nftables firewall backend (Docker 29+: tables `ip docker-bridges` and `ip6
//! docker-bridges`) on the packet's path: its published ports (the DNAT rules of
//! `nat-prerouting-and-output`) and its chains, compiled from `nft -j` into the walk's rules.
//! Verdict maps (`oifname vmap @filter-forward-in-jumps`) become one rule per element. An
//! expression the walk does not know makes the rule's verdict unknown, naming it.

mod expr;

use super::matcher::{Compiled, Target, Test};
use super::ports::Published;
use super::sources::SourceSet;
use super::walk::Table;
use crate::core::policy::Family;
use expr::{compile_match, dnat_target, iptables_pattern, match_text, ports, value_text};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

const DNAT_CHAIN: &str = "nat-prerouting-and-output";

/// How the walk names Docker's table of `family`.
pub fn table_name(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "ip docker-bridges",
        Family::Ipv6 => "ip6 docker-bridges",
    }
}

/// Docker's table of one family: its ports and its chains.
pub struct DockerNft {
    pub published: Vec<Published>,
    pub table: Table<'static>,
}

/// Compiles `nft -j list table ip|ip6 docker-bridges`.
pub fn compile(family: Family, json: &str) -> Result<DockerNft, String> {
    let doc: Value = serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("no \"nftables\" array")?;
    let mut maps: HashMap<&str, Vec<(&str, &Value)>> = HashMap::new();
    for map in items.iter().filter_map(|i| i.get("map")) {
        let name = map.get("name").and_then(Value::as_str).unwrap_or("");
        let elements = map
            .get("elem")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let pairs = elements
            .filter_map(|e| Some((e.get(0)?.as_str()?, e.get(1)?)))
            .collect();
        maps.insert(name, pairs);
    }
    let mut chains: HashMap<Cow<'static, str>, (&'static str, Vec<Compiled<'static>>)> =
        HashMap::new();
    for chain in items.iter().filter_map(|i| i.get("chain")) {
        let name = chain.get("name").and_then(Value::as_str).unwrap_or("");
        let policy = match (
            chain.get("hook"),
            chain.get("policy").and_then(Value::as_str),
        ) {
            (Some(_), Some("drop")) => "DROP",
            (Some(_), _) => "ACCEPT",
            (None, _) => "-",
        };
        chains.insert(Cow::Owned(name.to_string()), (policy, Vec::new()));
    }
    let mut published: Vec<Published> = Vec::new();
    let rules: Vec<&Value> = items.iter().filter_map(|i| i.get("rule")).collect();
    for &rule in &rules {
        let chain = rule.get("chain").and_then(Value::as_str).unwrap_or("");
        let expr: &[Value] = rule
            .get("expr")
            .and_then(Value::as_array)
            .map_or(&[], |v| v);
        if chain == DNAT_CHAIN {
            published.extend(published_port(family, expr));
        }
        let compiled = compile_rule(family, expr, &maps);
        chains
            .entry(Cow::Owned(chain.to_string()))
            .or_insert(("-", Vec::new()))
            .1
            .extend(compiled);
    }
    // Without the userland proxy Docker's DNAT names no bridge: the bridge is the one whose
    // forward chain accepts the container's address.
    for p in published.iter_mut().filter(|p| p.bridge.is_none()) {
        p.bridge = rules.iter().find_map(|rule| {
            let chain = rule.get("chain")?.as_str()?;
            let bridge = chain.strip_prefix("filter-forward-in__")?;
            let expr = rule.get("expr")?.as_array()?;
            let to = Value::String(p.to_addr.to_string());
            expr.iter()
                .filter_map(|e| e.get("match"))
                .any(|m| {
                    m.pointer("/left/payload/field").and_then(Value::as_str) == Some("daddr")
                        && m.get("right") == Some(&to)
                })
                .then(|| bridge.to_string())
        });
    }
    Ok(DockerNft {
        published,
        table: Table {
            name: table_name(family),
            chains,
            nftables: true,
        },
    })
}

/// What one rule's statements test, and its verdict; a verdict map gives one rule per element.
fn compile_rule(
    family: Family,
    expr: &[Value],
    maps: &HashMap<&str, Vec<(&str, &Value)>>,
) -> Vec<Compiled<'static>> {
    let mut sources = SourceSet::all(family);
    let mut tests = Vec::new();
    let mut words = Vec::new();
    let mut target = Target::Counts;
    for statement in expr {
        let Some((kind, body)) = statement.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        match kind.as_str() {
            "match" => {
                words.push(match_text(body));
                compile_match(family, body, &mut sources, &mut tests);
            }
            "counter" | "comment" => {}
            "accept" => target = Target::Accept,
            "drop" | "reject" => target = Target::Drop,
            "return" => target = Target::Return,
            "jump" | "goto" => {
                let to = body.get("target").and_then(Value::as_str).unwrap_or("");
                words.push(format!("{kind} {to}"));
                target = if kind == "jump" {
                    Target::Jump(to.to_string())
                } else {
                    Target::Goto(to.to_string())
                };
            }
            "dnat" => {
                let to = dnat_target(body);
                words.push(format!("dnat to {to}"));
                target = Target::Dnat(to);
            }
            "masquerade" | "snat" | "log" => target = Target::GoesOn,
            "vmap" => return verdict_map(family, body, maps, (&sources, &tests, &words)),
            _ => tests.push((Test::Unknown(format!("{kind} {}", value_text(body))), false)),
        }
        if matches!(
            kind.as_str(),
            "accept" | "drop" | "reject" | "return" | "masquerade" | "snat" | "log"
        ) {
            words.push(kind.to_string());
        }
    }
    vec![Compiled {
        spec: Cow::Owned(words.join(" ")),
        sources,
        tests,
        target,
    }]
}

/// `oifname vmap @map`: a rule per element, testing the key against it, with its verdict.
fn verdict_map(
    family: Family,
    body: &Value,
    maps: &HashMap<&str, Vec<(&str, &Value)>>,
    (sources, tests, words): (&SourceSet, &[(Test, bool)], &[String]),
) -> Vec<Compiled<'static>> {
    let key = body.pointer("/key/meta/key").and_then(Value::as_str);
    let name = body.get("data").and_then(Value::as_str).unwrap_or("");
    let elements = maps.get(name.trim_start_matches('@'));
    let (Some(key @ ("iifname" | "oifname")), Some(elements)) = (key, elements) else {
        let mut tests = tests.to_vec();
        tests.push((Test::Unknown(format!("vmap {body}")), false));
        return vec![Compiled {
            spec: Cow::Owned(format!("{} vmap {name}", words.join(" "))),
            sources: sources.clone(),
            tests,
            target: Target::Counts,
        }];
    };
    elements
        .iter()
        .map(|(iface, verdict)| {
            let mut tests = tests.to_vec();
            let iface = iptables_pattern(iface);
            tests.push(match key {
                "iifname" => (Test::In(iface.clone()), false),
                _ => (Test::Out(iface.clone()), false),
            });
            let rule = compile_rule(family, std::slice::from_ref(verdict), &HashMap::new());
            let target = rule.into_iter().next().map_or(Target::Counts, |r| r.target);
            Compiled {
                spec: Cow::Owned(format!(
                    "{} {key} \"{iface}\" (vmap {name})",
                    words.join(" ")
                )),
                sources: sources.clone(),
                tests,
                target,
            }
        })
        .collect()
}

/// A DNAT rule of `nat-prerouting-and-output`: `[iifname != BRIDGE] [ip daddr HOST] PROTO dport
/// PORT dnat to ADDR[:PORT]`.
fn published_port(family: Family, expr: &[Value]) -> Option<Published> {
    let dnat = expr.iter().find_map(|e| e.get("dnat"))?;
    let to_addr: IpAddr = dnat.get("addr")?.as_str()?.parse().ok()?;
    let mut proto = None;
    let mut range = None;
    let mut host_addr = None;
    let mut bridge = None;
    for m in expr.iter().filter_map(|e| e.get("match")) {
        let op = m.get("op").and_then(Value::as_str).unwrap_or("");
        let left = m.get("left").unwrap_or(&Value::Null);
        let right = m.get("right").unwrap_or(&Value::Null);
        if let Some(payload) = left.get("payload") {
            match payload.get("field").and_then(Value::as_str) {
                Some("dport") if op == "==" => {
                    proto = payload.get("protocol").and_then(Value::as_str);
                    range = ports(right).and_then(|r| r.first().copied());
                }
                Some("daddr") if op == "==" => {
                    host_addr = right.as_str().and_then(|a| a.parse::<IpAddr>().ok());
                }
                _ => {}
            }
        } else if left.pointer("/meta/key").and_then(Value::as_str) == Some("iifname") && op == "!="
        {
            bridge = right.as_str().map(str::to_string);
        }
    }
    let (first, last) = range?;
    Some(Published {
        family,
        proto: proto?.to_string(),
        host_addr,
        host_port: first,
        host_port_end: (last != first).then_some(last),
        to_addr,
        to_port: dnat
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(first),
        bridge,
    })
}
