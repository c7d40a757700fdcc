//! Expressions of Docker's rules (nft's JSON) as the walk's tests, and as nft prints them.

use crate::core::policy::Family;
use crate::exposure::matcher::Test;
use crate::exposure::sources::SourceSet;
use ipnet::IpNet;
use serde_json::Value;
use std::net::IpAddr;

pub(super) fn compile_match(
    family: Family,
    body: &Value,
    sources: &mut SourceSet,
    tests: &mut Vec<(Test, bool)>,
) {
    let negated = match body.get("op").and_then(Value::as_str) {
        Some("==" | "in") => false,
        Some("!=") => true,
        _ => {
            tests.push((Test::Unknown(match_text(body)), false));
            return;
        }
    };
    let left = body.get("left").unwrap_or(&Value::Null);
    let right = body.get("right").unwrap_or(&Value::Null);
    let test = if let Some(key) = left.pointer("/meta/key").and_then(Value::as_str) {
        match (key, right.as_str()) {
            ("iifname", Some(name)) => Test::In(iptables_pattern(name)),
            ("oifname", Some(name)) => Test::Out(iptables_pattern(name)),
            ("l4proto", Some(proto)) => Test::Proto(proto.to_string()),
            _ => Test::Unknown(match_text(body)),
        }
    } else if let Some(payload) = left.get("payload") {
        let protocol = payload
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("");
        let field = payload.get("field").and_then(Value::as_str).unwrap_or("");
        match (protocol, field) {
            ("ip" | "ip6", "saddr" | "daddr") if (protocol == "ip") != (family == Family::Ipv4) => {
                Test::Fixed(false)
            }
            ("ip" | "ip6", "saddr") => match networks(right) {
                Some(nets) => {
                    let mut set = SourceSet::empty(family);
                    for net in &nets {
                        set.add(&SourceSet::of_net(family, net));
                    }
                    match negated {
                        false => *sources = sources.intersect(&set),
                        true => sources.remove(&set),
                    }
                    return;
                }
                None => Test::Unknown(match_text(body)),
            },
            ("ip" | "ip6", "daddr") => match networks(right) {
                Some(nets) => Test::Dst(nets),
                None => Test::Unknown(match_text(body)),
            },
            ("tcp" | "udp" | "sctp" | "th", "dport") => match ports(right) {
                Some(ranges) => {
                    if protocol != "th" {
                        tests.push((Test::Proto(protocol.to_string()), false));
                    }
                    Test::Dport(ranges)
                }
                None => Test::Unknown(match_text(body)),
            },
            _ => Test::Unknown(match_text(body)),
        }
    } else if left.pointer("/ct/key").and_then(Value::as_str) == Some("state") {
        let states = match right {
            Value::String(s) => vec![s.to_uppercase()],
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_uppercase)
                .collect(),
            _ => Vec::new(),
        };
        Test::State(states)
    } else if left.pointer("/fib/result").and_then(Value::as_str) == Some("type")
        && let Some(kind) = right.as_str()
    {
        Test::DstType(vec![kind.to_uppercase()])
    } else {
        Test::Unknown(match_text(body))
    };
    tests.push((test, negated));
}

/// `192.0.2.2`, `{"prefix": {...}}` or a set of them.
pub(super) fn networks(value: &Value) -> Option<Vec<IpNet>> {
    match value {
        Value::String(s) => Some(vec![IpNet::from(s.parse::<IpAddr>().ok()?)]),
        Value::Object(o) if o.contains_key("prefix") => {
            let addr: IpAddr = value.pointer("/prefix/addr")?.as_str()?.parse().ok()?;
            let len = u8::try_from(value.pointer("/prefix/len")?.as_u64()?).ok()?;
            Some(vec![IpNet::new(addr, len).ok()?])
        }
        Value::Object(o) if o.contains_key("set") => {
            let items = o.get("set")?.as_array()?;
            items
                .iter()
                .map(networks)
                .collect::<Option<Vec<_>>>()
                .map(|v| v.concat())
        }
        _ => None,
    }
}

/// `8080`, `{"range": [a, b]}` or a set of them.
pub(super) fn ports(value: &Value) -> Option<Vec<(u16, u16)>> {
    let port = |v: &Value| v.as_u64().and_then(|p| u16::try_from(p).ok());
    match value {
        Value::Number(_) => port(value).map(|p| vec![(p, p)]),
        Value::Object(o) if o.contains_key("range") => {
            let r = o.get("range")?.as_array()?;
            Some(vec![(port(r.first()?)?, port(r.get(1)?)?)])
        }
        Value::Object(o) if o.contains_key("set") => {
            let items = o.get("set")?.as_array()?;
            items
                .iter()
                .map(ports)
                .collect::<Option<Vec<_>>>()
                .map(|v| v.concat())
        }
        _ => None,
    }
}

/// nft's `br-*` is iptables' `br-+`, which the walk's interface tests speak.
pub(super) fn iptables_pattern(name: &str) -> String {
    match name.strip_suffix('*') {
        Some(prefix) => format!("{prefix}+"),
        None => name.to_string(),
    }
}

/// `192.0.2.2:80`, `[fd00::2]:80`, as iptables' `--to-destination` reads.
pub(super) fn dnat_target(body: &Value) -> String {
    let addr = body.get("addr").and_then(Value::as_str).unwrap_or("");
    match (body.get("port").and_then(Value::as_u64), addr.contains(':')) {
        (Some(port), true) => format!("[{addr}]:{port}"),
        (Some(port), false) => format!("{addr}:{port}"),
        (None, _) => addr.to_string(),
    }
}

/// A match as nft prints it: `iifname != "bridge1"`, `ip daddr 192.0.2.2`, `tcp dport 80`.
pub(super) fn match_text(body: &Value) -> String {
    let op = match body.get("op").and_then(Value::as_str) {
        Some("==" | "in") | None => String::new(),
        Some(op) => format!("{op} "),
    };
    let left = body.get("left").unwrap_or(&Value::Null);
    let left = if let Some(p) = left.get("payload") {
        let field = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
        format!("{} {}", field("protocol"), field("field"))
    } else if let Some(key) = left.pointer("/meta/key").and_then(Value::as_str) {
        match key {
            "iifname" | "oifname" => key.to_string(),
            _ => format!("meta {key}"),
        }
    } else if let Some(key) = left.pointer("/ct/key").and_then(Value::as_str) {
        format!("ct {key}")
    } else if left.get("fib").is_some() {
        "fib daddr type".to_string()
    } else {
        value_text(left)
    };
    let right = body.get("right").unwrap_or(&Value::Null);
    format!("{left} {op}{}", value_text(right))
}

/// A value as nft prints it: `"bridge1"`, `80`, `10.0.0.0/8`, `8000-8010`, `{ a, b }`.
pub(super) fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join(","),
        Value::Object(o) => {
            if let (Some(addr), Some(len)) = (
                value.pointer("/prefix/addr").and_then(Value::as_str),
                value.pointer("/prefix/len"),
            ) {
                format!("{addr}/{len}")
            } else if let Some(Value::Array(r)) = o.get("range") {
                r.iter().map(value_text).collect::<Vec<_>>().join("-")
            } else if let Some(Value::Array(items)) = o.get("set") {
                let items: Vec<String> = items.iter().map(value_text).collect();
                format!("{{ {} }}", items.join(", "))
            } else {
                value.to_string()
            }
        }
        other => other.to_string(),
    }
}
