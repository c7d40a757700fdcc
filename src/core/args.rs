//! Module arguments: the flat JSON object Ansible writes to the args file, validated into a
//! [`Config`]. Binary modules get no argument-spec validation from Ansible, so every check lives
//! here, and every message names the offending field (e.g. `ingress.allow[1].sources[0]`).
//! Coercions follow Ansible's own argument spec: "yes"/"no" for booleans, "8080" for integers,
//! "a,b" for lists.

use crate::core::policy::{
    AllowEntry, Backend, BackendChoice, Config, Dataplane, DataplaneChoice, Egress, EgressAllow,
    Family, Ingress, Log, PortRange, Proto, Rate, State, Strategy, Verdict,
};
use ipnet::IpNet;
use serde_json::{Map, Value};
use std::net::IpAddr;
use std::path::PathBuf;

pub const DEFAULT_RULES_V4: &str = "/etc/iptables/rules.v4";
pub const DEFAULT_RULES_V6: &str = "/etc/iptables/rules.v6";
pub const DEFAULT_RULES_NFT: &str = "/etc/docker_firewall/docker_firewall.nft";
pub const DEFAULT_RULES_IPSET: &str = "/etc/iptables/ipsets";
pub const DEFAULT_DOCKER_INTERFACES: [&str; 2] = ["docker0", "br-+"];

const TOP_LEVEL_KEYS: [&str; 17] = [
    "lock_timeout",
    "state",
    "families",
    "backend",
    "dataplane",
    "external_interfaces",
    "docker_interfaces",
    "strategy",
    "ingress",
    "egress",
    "log",
    "audit",
    "persist",
    "rules_v4",
    "rules_v6",
    "rules_nft",
    "rules_ipset",
];
const INGRESS_KEYS: [&str; 2] = ["default", "allow"];
const ALLOW_KEYS: [&str; 5] = ["ports", "proto", "sources", "destination", "comment"];
const EGRESS_KEYS: [&str; 4] = ["deny_private", "private_ranges", "deny_host", "allow"];
const EGRESS_ALLOW_KEYS: [&str; 4] = ["destinations", "ports", "proto", "comment"];
const LOG_KEYS: [&str; 3] = ["enabled", "prefix", "rate"];

pub const DEFAULT_PRIVATE_RANGES: [&str; 9] = [
    "10.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];
pub const DEFAULT_LOG_PREFIX: &str = "docker-fw ";
/// The module appends the longest of these to the prefix; iptables allows 29 characters.
pub const LOG_KINDS: [&str; 4] = ["in-drop ", "in-audit ", "out-drop ", "out-audit "];
const MAX_LOG_PREFIX_LEN: usize = 29 - 10;

/// iptables keeps comments up to 255 bytes; our tag takes the rest.
const MAX_COMMENT_LEN: usize = 200;
/// IFNAMSIZ - 1.
const MAX_INTERFACE_LEN: usize = 15;

/// Longest address list (sources, destinations, private ranges) and port list of one entry.
const MAX_ADDRESSES: usize = 10_000;
const MAX_PORTS: usize = 1_000;

/// Seconds a run waits for another run to finish before it fails.
pub const DEFAULT_LOCK_TIMEOUT: u64 = 30;
const MAX_LOCK_TIMEOUT: u64 = 3600;

/// A validation failure; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

type Result<T> = std::result::Result<T, ArgError>;

fn err<T>(field: &str, what: impl std::fmt::Display) -> Result<T> {
    Err(ArgError(format!("{field}: {what}")))
}

/// Parses the args file's text.
pub fn parse_args_text(text: &str) -> Result<Config> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ArgError(format!("the args file is not valid JSON: {e}")))?;
    parse_args(&value)
}

pub fn parse_args(value: &Value) -> Result<Config> {
    let Value::Object(args) = value else {
        return Err(ArgError(
            "the args file must hold one JSON object of module arguments".into(),
        ));
    };
    let mut unknown: Vec<&str> = args
        .keys()
        .map(String::as_str)
        .filter(|k| !k.starts_with("_ansible_") && !TOP_LEVEL_KEYS.contains(k))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(ArgError(format!(
            "Unsupported parameters for (docker_firewall) module: {}. Supported parameters include: {}.",
            unknown.join(", "),
            sorted(&TOP_LEVEL_KEYS).join(", ")
        )));
    }
    let args = &dicts_from_json_strings(args);
    let get = |key: &str| args.get(key).filter(|v| !v.is_null());

    let state = match get("state") {
        None => State::Present,
        Some(v) => match choice(v, "state", &["present", "absent"])? {
            "present" => State::Present,
            _ => State::Absent,
        },
    };
    let families = match get("families") {
        None => vec![Family::Ipv4, Family::Ipv6],
        Some(v) => families(v)?,
    };
    let backend = match get("backend") {
        None => BackendChoice::Auto,
        Some(v) => match choice(v, "backend", &["auto", "legacy", "nft"])? {
            "legacy" => BackendChoice::Fixed(Backend::Legacy),
            "nft" => BackendChoice::Fixed(Backend::Nft),
            _ => BackendChoice::Auto,
        },
    };
    let dataplane = match get("dataplane") {
        None => DataplaneChoice::Auto,
        Some(v) => match choice(v, "dataplane", &["auto", "iptables", "nftables"])? {
            "iptables" => DataplaneChoice::Fixed(Dataplane::Iptables),
            "nftables" => DataplaneChoice::Fixed(Dataplane::Nftables),
            _ => DataplaneChoice::Auto,
        },
    };
    let external_interfaces = match get("external_interfaces") {
        None => None,
        Some(v) => Some(interfaces(v, "external_interfaces")?),
    };
    let docker_interfaces = match get("docker_interfaces") {
        None => DEFAULT_DOCKER_INTERFACES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        Some(v) => interfaces(v, "docker_interfaces")?,
    };
    let strategy = match get("strategy") {
        None => Strategy::DockerUser,
        Some(v) => match choice(v, "strategy", &["docker_user", "prerouting", "both"])? {
            "prerouting" => Strategy::Prerouting,
            "both" => Strategy::Both,
            _ => Strategy::DockerUser,
        },
    };
    let ingress = match get("ingress") {
        None => Ingress {
            default: Verdict::Drop,
            allow: Vec::new(),
        },
        Some(v) => ingress(v)?,
    };
    let egress = match get("egress") {
        None => egress(&Value::Object(Map::new()))?,
        Some(v) => egress(v)?,
    };
    let log = match get("log") {
        None => log(&Value::Object(Map::new()))?,
        Some(v) => log(v)?,
    };
    let audit = match get("audit") {
        None => false,
        Some(v) => boolean(v, "audit")?,
    };
    let persist = match get("persist") {
        None => true,
        Some(v) => boolean(v, "persist")?,
    };
    let rules_v4 = match get("rules_v4") {
        None => PathBuf::from(DEFAULT_RULES_V4),
        Some(v) => path(v, "rules_v4")?,
    };
    let rules_v6 = match get("rules_v6") {
        None => PathBuf::from(DEFAULT_RULES_V6),
        Some(v) => path(v, "rules_v6")?,
    };
    let rules_nft = match get("rules_nft") {
        None => PathBuf::from(DEFAULT_RULES_NFT),
        Some(v) => path(v, "rules_nft")?,
    };
    let rules_ipset = match get("rules_ipset") {
        None => PathBuf::from(DEFAULT_RULES_IPSET),
        Some(v) => path(v, "rules_ipset")?,
    };
    let lock_timeout = match get("lock_timeout") {
        None => DEFAULT_LOCK_TIMEOUT,
        Some(v) => seconds(v, "lock_timeout", MAX_LOCK_TIMEOUT)?,
    };
    if persist && rules_v4 == rules_v6 {
        return err("rules_v6", "must differ from rules_v4");
    }
    if persist && (rules_nft == rules_v4 || rules_nft == rules_v6) {
        return err("rules_nft", "must differ from rules_v4 and rules_v6");
    }
    if persist && [&rules_v4, &rules_v6, &rules_nft].contains(&&rules_ipset) {
        return err(
            "rules_ipset",
            "must differ from rules_v4, rules_v6 and rules_nft",
        );
    }
    let internal_flag = |key: &str| {
        args.get(key)
            .filter(|v| !v.is_null())
            .map(|v| boolean(v, key))
            .transpose()
            .map(|b| b.unwrap_or(false))
    };
    Ok(Config {
        state,
        families,
        backend,
        dataplane,
        external_interfaces,
        docker_interfaces,
        strategy,
        ingress,
        egress,
        log,
        audit,
        persist,
        rules_v4,
        rules_v6,
        rules_nft,
        rules_ipset,
        lock_timeout,
        check_mode: internal_flag("_ansible_check_mode")?,
        diff: internal_flag("_ansible_diff")?,
        analyse_exposure: true,
    })
}

/// Ansible's `dict` type also takes a JSON string (free-form `ingress='{"allow": ...}'`).
fn dicts_from_json_strings(args: &Map<String, Value>) -> Map<String, Value> {
    let mut out = args.clone();
    for key in ["ingress", "egress", "log"] {
        if let Some(Value::String(text)) = args.get(key)
            && text.trim_start().starts_with('{')
            && let Ok(parsed @ Value::Object(_)) = serde_json::from_str::<Value>(text)
        {
            out.insert(key.to_string(), parsed);
        }
    }
    out
}

fn sorted<'a>(keys: &[&'a str]) -> Vec<&'a str> {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a dict",
    }
}

/// A string, as Ansible's `str` type: numbers are converted, everything else refused.
fn string(v: &Value, field: &str) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.trim().to_string()),
        Value::Number(n) => Ok(n.to_string()),
        other => err(
            field,
            format!("expected a string, got {}", type_name(other)),
        ),
    }
}

fn choice<'a>(v: &Value, field: &str, choices: &[&'a str]) -> Result<&'a str> {
    let s = string(v, field)?;
    choices.iter().find(|c| **c == s).copied().ok_or_else(|| {
        ArgError(format!(
            "{field}: value must be one of: {}, got: {s}",
            choices.join(", ")
        ))
    })
}

fn boolean(v: &Value, field: &str) -> Result<bool> {
    let text = match v {
        Value::Bool(b) => return Ok(*b),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_ascii_lowercase(),
        other => {
            return err(
                field,
                format!("expected a boolean, got {}", type_name(other)),
            );
        }
    };
    match text.as_str() {
        "yes" | "on" | "1" | "true" | "y" | "t" | "1.0" => Ok(true),
        "no" | "off" | "0" | "false" | "n" | "f" | "0.0" => Ok(false),
        _ => err(field, format!("'{text}' is not a valid boolean")),
    }
}

/// A list, as Ansible's `list` type: a comma-separated string or a single scalar becomes a list.
fn list(v: &Value, field: &str) -> Result<Vec<Value>> {
    match v {
        Value::Array(items) => Ok(items.clone()),
        Value::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| Value::String(p.to_string()))
            .collect()),
        Value::Number(_) => Ok(vec![v.clone()]),
        other => err(field, format!("expected a list, got {}", type_name(other))),
    }
}

fn dict<'a>(v: &'a Value, field: &str, allowed: &[&str]) -> Result<&'a Map<String, Value>> {
    let Value::Object(map) = v else {
        return err(field, format!("expected a dict, got {}", type_name(v)));
    };
    let mut unknown: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return err(
            field,
            format!(
                "unsupported key(s): {}. Supported keys: {}",
                unknown.join(", "),
                allowed.join(", ")
            ),
        );
    }
    Ok(map)
}

fn families(v: &Value) -> Result<Vec<Family>> {
    let mut out = Vec::new();
    for (i, item) in list(v, "families")?.iter().enumerate() {
        let field = format!("families[{i}]");
        let family = match choice(item, &field, &["ipv4", "ipv6"])? {
            "ipv4" => Family::Ipv4,
            _ => Family::Ipv6,
        };
        if !out.contains(&family) {
            out.push(family);
        }
    }
    if out.is_empty() {
        return err("families", "must name at least one of ipv4, ipv6");
    }
    out.sort();
    Ok(out)
}

/// Interface names as iptables takes them: 1-15 characters, a trailing `+` as wildcard.
fn interfaces(v: &Value, field: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for (i, item) in list(v, field)?.iter().enumerate() {
        let field = format!("{field}[{i}]");
        let name = string(item, &field)?;
        validate_interface(&name).map_err(|why| ArgError(format!("{field}: '{name}' {why}")))?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    if out.is_empty() {
        return err(field, "must name at least one interface");
    }
    Ok(out)
}

pub fn validate_interface(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > MAX_INTERFACE_LEN {
        return Err("is longer than 15 characters, which iptables refuses");
    }
    let body = name.strip_suffix('+').unwrap_or(name);
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@');
    if !body.chars().all(valid) {
        return Err(
            "is not a valid interface name (letters, digits, '-', '_', '.', '@', and a trailing '+' as wildcard)",
        );
    }
    Ok(())
}

fn ingress(v: &Value) -> Result<Ingress> {
    let map = dict(v, "ingress", &INGRESS_KEYS)?;
    let default = match map.get("default").filter(|v| !v.is_null()) {
        None => Verdict::Drop,
        Some(v) => match choice(v, "ingress.default", &["drop", "reject"])? {
            "reject" => Verdict::Reject,
            _ => Verdict::Drop,
        },
    };
    let mut allow = Vec::new();
    if let Some(entries) = map.get("allow").filter(|v| !v.is_null()) {
        let Value::Array(entries) = entries else {
            return err(
                "ingress.allow",
                format!("expected a list of dicts, got {}", type_name(entries)),
            );
        };
        for (i, entry) in entries.iter().enumerate() {
            allow.push(allow_entry(entry, &format!("ingress.allow[{i}]"))?);
        }
    }
    Ok(Ingress { default, allow })
}

fn allow_entry(v: &Value, field: &str) -> Result<AllowEntry> {
    let map = dict(v, field, &ALLOW_KEYS)?;
    let get = |key: &str| map.get(key).filter(|v| !v.is_null());
    let ports = ports(get("ports"), field)?;
    let proto = proto(get("proto"), field)?;
    let mut sources = Vec::new();
    let mut seen = std::collections::HashSet::new();
    if let Some(s) = get("sources") {
        let items = list(s, &format!("{field}.sources"))?;
        at_most(&items, &format!("{field}.sources"), MAX_ADDRESSES)?;
        if items.is_empty() {
            return err(
                &format!("{field}.sources"),
                "is empty; omit it to allow any source",
            );
        }
        for (i, item) in items.iter().enumerate() {
            let net = network(item, &format!("{field}.sources[{i}]"))?;
            if seen.insert(net) {
                sources.push(net);
            }
        }
    }
    let destination = match get("destination") {
        None => None,
        Some(v) => Some(address(v, &format!("{field}.destination"))?),
    };
    let comment = match get("comment") {
        None => None,
        Some(v) => Some(comment(v, &format!("{field}.comment"))?),
    };
    let entry = AllowEntry {
        ports,
        proto,
        sources,
        destination,
        comment,
    };
    if let Some(d) = entry.destination
        && !entry.sources.is_empty()
        && !entry.sources.iter().any(|s| match d {
            IpAddr::V4(_) => Family::Ipv4.holds(s),
            IpAddr::V6(_) => Family::Ipv6.holds(s),
        })
    {
        return err(
            field,
            format!("destination {d} and sources belong to different IP families"),
        );
    }
    Ok(entry)
}

fn egress(v: &Value) -> Result<Egress> {
    let map = dict(v, "egress", &EGRESS_KEYS)?;
    let get = |key: &str| map.get(key).filter(|v| !v.is_null());
    let deny_private = match get("deny_private") {
        None => false,
        Some(v) => boolean(v, "egress.deny_private")?,
    };
    let deny_host = match get("deny_host") {
        None => false,
        Some(v) => boolean(v, "egress.deny_host")?,
    };
    let private_ranges = match get("private_ranges") {
        None => DEFAULT_PRIVATE_RANGES
            .iter()
            .filter_map(|r| r.parse::<ipnet::IpNet>().ok())
            .collect(),
        Some(v) => networks(v, "egress.private_ranges")?,
    };
    let mut allow = Vec::new();
    if let Some(entries) = get("allow") {
        let Value::Array(entries) = entries else {
            return err(
                "egress.allow",
                format!("expected a list of dicts, got {}", type_name(entries)),
            );
        };
        for (i, entry) in entries.iter().enumerate() {
            let field = format!("egress.allow[{i}]");
            let map = dict(entry, &field, &EGRESS_ALLOW_KEYS)?;
            let get = |key: &str| map.get(key).filter(|v| !v.is_null());
            let destinations = match get("destinations") {
                None => return err(&field, "destinations is required"),
                Some(v) => networks(v, &format!("{field}.destinations"))?,
            };
            allow.push(EgressAllow {
                destinations,
                ports: ports(get("ports"), &field)?,
                proto: proto(get("proto"), &field)?,
                comment: get("comment")
                    .map(|v| comment(v, &format!("{field}.comment")))
                    .transpose()?,
            });
        }
    }
    Ok(Egress {
        deny_private,
        private_ranges,
        deny_host,
        allow,
    })
}

fn networks(v: &Value, field: &str) -> Result<Vec<IpNet>> {
    let items = list(v, field)?;
    at_most(&items, field, MAX_ADDRESSES)?;
    if items.is_empty() {
        return err(field, "must name at least one address or CIDR");
    }
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let net = network(item, &format!("{field}[{i}]"))?;
        if seen.insert(net) {
            out.push(net);
        }
    }
    Ok(out)
}

fn log(v: &Value) -> Result<Log> {
    let map = dict(v, "log", &LOG_KEYS)?;
    let get = |key: &str| map.get(key).filter(|v| !v.is_null());
    let enabled = match get("enabled") {
        None => true,
        Some(v) => boolean(v, "log.enabled")?,
    };
    let prefix = match get("prefix") {
        None => DEFAULT_LOG_PREFIX.to_string(),
        Some(v) => {
            let Value::String(text) = v else {
                return err(
                    "log.prefix",
                    format!("expected a string, got {}", type_name(v)),
                );
            };
            if text.len() > MAX_LOG_PREFIX_LEN {
                return err(
                    "log.prefix",
                    format!(
                        "'{text}' is longer than {MAX_LOG_PREFIX_LEN} characters (the module appends \
                         up to 10, e.g. 'out-audit ', and iptables allows 29)"
                    ),
                );
            }
            if let Some(c) = text
                .chars()
                .find(|c| c.is_control() || matches!(c, '"' | '\'' | '\\' | '`'))
            {
                return err(
                    "log.prefix",
                    format!(
                        "must not contain quotes, backslashes or control characters (found {c:?})"
                    ),
                );
            }
            text.clone()
        }
    };
    let rate = match get("rate") {
        None => Rate {
            count: 6,
            unit: "min",
        },
        Some(v) => rate(v, "log.rate")?,
    };
    Ok(Log {
        enabled,
        prefix,
        rate,
    })
}

/// `6/minute`, `10/s`, `2/hour`: hashlimit's rate.
fn rate(v: &Value, field: &str) -> Result<Rate> {
    let text = string(v, field)?;
    let bad = || {
        ArgError(format!(
            "{field}: '{text}' is not a rate such as 6/minute (count 1-10000 per second, minute, hour or day)"
        ))
    };
    let (count, unit) = text.split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    if !(1..=10000).contains(&count) {
        return Err(bad());
    }
    let unit = match unit.trim() {
        "s" | "sec" | "second" => "sec",
        "m" | "min" | "minute" => "min",
        "h" | "hour" => "hour",
        "d" | "day" => "day",
        _ => return Err(bad()),
    };
    Ok(Rate { count, unit })
}

fn ports(v: Option<&Value>, field: &str) -> Result<Vec<PortRange>> {
    let mut out = Vec::new();
    if let Some(p) = v {
        let items = list(p, &format!("{field}.ports"))?;
        at_most(&items, &format!("{field}.ports"), MAX_PORTS)?;
        let mut seen = std::collections::HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let range = port_range(item, &format!("{field}.ports[{i}]"))?;
            if seen.insert(range) {
                out.push(range);
            }
        }
    }
    Ok(out)
}

/// Refuses lists too long to be a policy: in the iptables dataplane every address is one rule per
/// port, and a new connection walks them in order.
fn at_most(items: &[Value], field: &str, max: usize) -> Result<()> {
    if items.len() > max {
        return err(
            field,
            format!(
                "{} entries, at most {max} (each is a rule per port; use fewer, wider CIDRs)",
                items.len()
            ),
        );
    }
    Ok(())
}

/// A whole number of seconds in 0..=max, as Ansible's int (also "30" and 30.0).
fn seconds(v: &Value, field: &str, max: u64) -> Result<u64> {
    let n = match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match n {
        Some(n) if n <= max => Ok(n),
        Some(n) => err(field, format!("{n} is more than {max} seconds")),
        None => err(
            field,
            format!("expected a whole number of seconds, got {v}"),
        ),
    }
}

fn proto(v: Option<&Value>, field: &str) -> Result<Proto> {
    Ok(match v {
        None => Proto::Tcp,
        Some(v) => match choice(v, &format!("{field}.proto"), &["tcp", "udp"])? {
            "udp" => Proto::Udp,
            _ => Proto::Tcp,
        },
    })
}

fn port_range(v: &Value, field: &str) -> Result<PortRange> {
    let text = match v {
        // Ansible's int accepts 443.0.
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.as_u64().is_none() && f.fract() == 0.0 && f >= 0.0 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        Value::String(s) => s.trim().to_string(),
        other => {
            return err(
                field,
                format!(
                    "expected a port or a range 'lo-hi', got {}",
                    type_name(other)
                ),
            );
        }
    };
    let port = |p: &str| -> Result<u16> {
        let n: u64 = p.trim().parse().map_err(|_| {
            ArgError(format!(
                "{field}: '{text}' is not a port (1-65535) or a range 'lo-hi'"
            ))
        })?;
        if !(1..=65535).contains(&n) {
            return err(field, format!("port {n} is outside 1-65535"));
        }
        Ok(n as u16)
    };
    let (first, last) = match text.split_once(['-', ':']) {
        Some((lo, hi)) => (port(lo)?, port(hi)?),
        None => {
            let p = port(&text)?;
            (p, p)
        }
    };
    if first > last {
        return err(
            field,
            format!("range '{text}' is reversed (the first port must not exceed the last)"),
        );
    }
    Ok(PortRange { first, last })
}

/// A CIDR or a single address; host bits are cleared, as iptables itself does.
fn network(v: &Value, field: &str) -> Result<IpNet> {
    let text = string(v, field)?;
    let bad = || {
        ArgError(format!(
            "{field}: '{text}' is not a valid IP address or CIDR"
        ))
    };
    if text.contains('/') {
        let net: IpNet = text.parse().map_err(|_| bad())?;
        Ok(net.trunc())
    } else {
        let addr: IpAddr = text.parse().map_err(|_| bad())?;
        Ok(IpNet::from(addr))
    }
}

fn address(v: &Value, field: &str) -> Result<IpAddr> {
    let text = string(v, field)?;
    text.parse()
        .map_err(|_| ArgError(format!("{field}: '{text}' is not a valid IP address")))
}

fn comment(v: &Value, field: &str) -> Result<String> {
    let text = string(v, field)?;
    if text.len() > MAX_COMMENT_LEN {
        return err(field, format!("is longer than {MAX_COMMENT_LEN} bytes"));
    }
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() || matches!(c, '"' | '\'' | '\\' | '`'))
    {
        return err(
            field,
            format!("must not contain quotes, backslashes or control characters (found {c:?})"),
        );
    }
    Ok(text)
}

fn path(v: &Value, field: &str) -> Result<PathBuf> {
    let text = string(v, field)?;
    if !text.starts_with('/') {
        return err(field, format!("'{text}' must be an absolute path"));
    }
    if text.ends_with('/') {
        return err(field, format!("'{text}' names a directory, not a file"));
    }
    Ok(PathBuf::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fails(args: Value) -> String {
        parse_args(&args).unwrap_err().0
    }

    #[test]
    fn defaults() {
        let c = parse_args(&json!({"_ansible_check_mode": false, "_ansible_whatever": 3})).unwrap();
        assert_eq!(c.state, State::Present);
        assert_eq!(c.families, vec![Family::Ipv4, Family::Ipv6]);
        assert_eq!(c.backend, BackendChoice::Auto);
        assert_eq!(c.strategy, Strategy::DockerUser);
        assert_eq!(c.docker_interfaces, vec!["docker0", "br-+"]);
        assert!(c.persist);
        assert_eq!(c.rules_v4, PathBuf::from(DEFAULT_RULES_V4));
        assert!(!c.check_mode && !c.diff);
        assert!(!c.audit && c.log.enabled && !c.egress.enabled());
        assert_eq!(c.log.rate.iptables(), "6/min");
        assert_eq!(c.egress.private_ranges.len(), 9);
    }

    #[test]
    fn coerces_like_ansible() {
        let c = parse_args(&json!({
            "persist": "no", "families": "ipv6,ipv4", "_ansible_check_mode": "yes",
            "ingress": {"allow": [{"ports": "8080", "sources": "10.0.0.1, 2001:db8::/32"}]}
        }))
        .unwrap();
        assert!(!c.persist && c.check_mode);
        assert_eq!(c.families, vec![Family::Ipv4, Family::Ipv6]);
        let e = &c.ingress.allow[0];
        assert_eq!(
            e.ports,
            vec![PortRange {
                first: 8080,
                last: 8080
            }]
        );
        assert_eq!(e.sources.len(), 2);
    }

    #[test]
    fn names_the_offending_field() {
        let msg = fails(json!({"ingress": {"allow": [
            {"ports": [443]},
            {"ports": [5432], "sources": ["123.45.67.89", "987.65.432.1"]}
        ]}}));
        assert_eq!(
            msg,
            "ingress.allow[1].sources[1]: '987.65.432.1' is not a valid IP address or CIDR"
        );
        assert!(
            fails(json!({"ingress": {"allow": [{"ports": [70000]}]}}))
                .starts_with("ingress.allow[0].ports[0]: port 70000 is outside 1-65535")
        );
        assert!(
            fails(json!({"ingress": {"allow": [{"ports": ["9000-8000"]}]}})).contains("reversed")
        );
        assert!(fails(json!({"ingress": {"allow": [{"ports": [0]}]}})).contains("outside"));
        assert!(fails(json!({"extrnal_interfaces": ["eth0"]})).starts_with(
            "Unsupported parameters for (docker_firewall) module: extrnal_interfaces."
        ));
        assert!(
            fails(json!({"ingress": {"allow": [{"port": 1}]}}))
                .starts_with("ingress.allow[0]: unsupported key(s): port.")
        );
        assert!(
            fails(json!({"external_interfaces": ["averyveryverylongname"]}))
                .starts_with("external_interfaces[0]: 'averyveryverylongname' is longer")
        );
        assert!(
            fails(json!({"external_interfaces": ["eth 0"]})).starts_with("external_interfaces[0]")
        );
        assert!(
            fails(json!({"ingress": {"allow": [{"comment": "it's"}]}}))
                .starts_with("ingress.allow[0].comment: must not contain quotes")
        );
        assert!(
            fails(json!({"ingress": {"allow": [{"comment": "a\nb"}]}}))
                .starts_with("ingress.allow[0].comment")
        );
        assert!(fails(json!({"persist": "maybe"})).starts_with("persist: 'maybe'"));
        assert!(fails(json!({"strategy": "nat"})).starts_with("strategy: value must be one of"));
        assert!(fails(json!({"rules_v4": "rules"})).contains("absolute"));
        assert!(fails(json!({"ingress": {"allow": [{"destination": "10.0.0.1", "sources": ["2001:db8::1"]}]}}))
            .contains("different IP families"));
        assert!(fails(json!([1])).contains("one JSON object"));
        assert!(
            fails(json!({"egress": {"allow": [{"ports": [5432]}]}}))
                .starts_with("egress.allow[0]: destinations is required")
        );
        assert!(
            fails(json!({"egress": {"private_ranges": ["10.0.0.0/33"]}}))
                .starts_with("egress.private_ranges[0]: '10.0.0.0/33'")
        );
        assert!(
            fails(json!({"log": {"rate": "6/fortnight"}})).starts_with("log.rate: '6/fortnight'")
        );
        assert!(
            fails(json!({"log": {"prefix": "a prefix that is far too long"}}))
                .starts_with("log.prefix")
        );
        assert!(fails(json!({"audit": "perhaps"})).starts_with("audit:"));
    }

    #[test]
    fn normalises_sources_and_ranges() {
        let c = parse_args(&json!({"ingress": {"allow": [
            {"ports": ["8000:8010", "9000-9000", 22], "sources": ["10.1.2.3/8", "2001:DB8::1"]}
        ]}}))
        .unwrap();
        let e = &c.ingress.allow[0];
        assert_eq!(e.ports[0].iptables(), "8000:8010");
        assert_eq!(e.ports[1].iptables(), "9000");
        assert_eq!(e.sources[0].to_string(), "10.0.0.0/8");
        assert_eq!(e.sources[1].to_string(), "2001:db8::1/128");
    }
}
