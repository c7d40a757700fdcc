//! Our table as `nft -j list table inet docker_firewall` shows it, reduced to what identifies it:
//! the chains (hook, priority, policy), each rule's tag in order, the sets' types and address
//! elements. The desired [`Table`] reduces to the same [`TableView`]; equal views mean nothing
//! to do. Rule text is not compared: nft prints rules in its own canonical form, the tag (a hash
//! of our text and position) identifies them.

use super::{SetKind, TABLE_NAME, TAG, Table};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableView {
    pub sets: BTreeMap<String, SetView>,
    pub chains: BTreeMap<String, ChainView>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetView {
    /// `ipv4_addr`, or `ipv4_addr . ipv4_addr . inet_service` for a meter.
    pub key: String,
    /// Address sets' elements, sorted; `None` for meters (packets fill them).
    pub elements: Option<Vec<IpNet>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainView {
    /// `filter prerouting -110 accept` for a base chain.
    pub hook: Option<String>,
    /// Each rule's tag, in order; a rule without our tag shows as `?`.
    pub tags: Vec<String>,
}

impl Table {
    pub fn view(&self) -> TableView {
        let sets = self
            .sets
            .iter()
            .map(|s| {
                let elements = match &s.kind {
                    SetKind::Addresses { elements, .. } => {
                        let mut e = elements.clone();
                        e.sort();
                        Some(e)
                    }
                    SetKind::Meter { .. } => None,
                };
                let view = SetView {
                    key: s.kind.key().to_string(),
                    elements,
                };
                (s.name.clone(), view)
            })
            .collect();
        let chains = self
            .chains
            .iter()
            .map(|c| {
                let view = ChainView {
                    hook: c
                        .hook
                        .map(|h| format!("filter {} {} accept", h.hook, h.priority())),
                    tags: c
                        .rules
                        .iter()
                        .enumerate()
                        .map(|(i, r)| r.nft_tag(c.name, i))
                        .collect(),
                };
                (c.name.to_string(), view)
            })
            .collect();
        TableView { sets, chains }
    }
}

/// Parses `nft -j list table inet docker_firewall`.
pub fn parse_view(json: &str) -> Result<TableView, String> {
    let doc: Value =
        serde_json::from_str(json).map_err(|e| format!("nft -j printed invalid JSON: {e}"))?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("nft -j printed no \"nftables\" list")?;
    let mut view = TableView::default();
    for item in items {
        if let Some(set) = item.get("set") {
            let (name, set_view) = parse_set(set)?;
            view.sets.insert(name, set_view);
        } else if let Some(chain) = item.get("chain") {
            let name = text(chain, "name")?;
            let hook = chain.get("hook").and_then(Value::as_str).map(|hook| {
                format!(
                    "{} {hook} {} {}",
                    chain.get("type").and_then(Value::as_str).unwrap_or("?"),
                    chain
                        .get("prio")
                        .and_then(Value::as_i64)
                        .unwrap_or(i64::MIN),
                    chain.get("policy").and_then(Value::as_str).unwrap_or("?")
                )
            });
            view.chains
                .entry(name)
                .or_insert(ChainView {
                    hook: None,
                    tags: Vec::new(),
                })
                .hook = hook;
        } else if let Some(rule) = item.get("rule") {
            let chain = text(rule, "chain")?;
            let tag = rule
                .get("comment")
                .and_then(Value::as_str)
                .and_then(|c| c.split(' ').next())
                .filter(|t| t.starts_with(TAG))
                .unwrap_or("?");
            view.chains
                .entry(chain)
                .or_insert(ChainView {
                    hook: None,
                    tags: Vec::new(),
                })
                .tags
                .push(tag.to_string());
        }
    }
    Ok(view)
}

fn text(v: &Value, key: &str) -> Result<String, String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("an object of table {TABLE_NAME} has no \"{key}\""))
}

fn parse_set(set: &Value) -> Result<(String, SetView), String> {
    let name = text(set, "name")?;
    let key = match set.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" . "),
        _ => return Err(format!("set {name} has no type")),
    };
    let elements = if key.contains(" . ") {
        None
    } else {
        let mut out = Vec::new();
        for e in set
            .get("elem")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.extend(
                element(e).ok_or_else(|| format!("set {name}: cannot read the element {e}"))?,
            );
        }
        out.sort();
        Some(out)
    };
    Ok((name, SetView { key, elements }))
}

/// An element: `"10.0.0.1"`, `{"prefix": {"addr", "len"}}`, `{"range": [a, b]}` (as prefixes),
/// or any of these wrapped in `{"elem": {"val": ...}}`.
fn element(e: &Value) -> Option<Vec<IpNet>> {
    if let Some(inner) = e.get("elem").and_then(|x| x.get("val")) {
        return element(inner);
    }
    if let Some(addr) = e.as_str() {
        return Some(vec![IpNet::from(addr.parse::<IpAddr>().ok()?)]);
    }
    if let Some(prefix) = e.get("prefix") {
        let addr: IpAddr = prefix.get("addr")?.as_str()?.parse().ok()?;
        let len = u8::try_from(prefix.get("len")?.as_u64()?).ok()?;
        return IpNet::new(addr, len).ok().map(|n| vec![n]);
    }
    if let Some(range) = e.get("range").and_then(Value::as_array) {
        let first: IpAddr = range.first()?.as_str()?.parse().ok()?;
        let last: IpAddr = range.get(1)?.as_str()?.parse().ok()?;
        return range_as_prefixes(first, last);
    }
    None
}

/// The fewest prefixes that cover exactly `first..=last`.
fn range_as_prefixes(first: IpAddr, last: IpAddr) -> Option<Vec<IpNet>> {
    let (lo, hi, bits) = match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return None,
    };
    if lo > hi {
        return None;
    }
    let mut out = Vec::new();
    let mut start = lo;
    loop {
        // The largest block aligned at `start` that ends within `hi`.
        let mut size = if start == 0 {
            bits
        } else {
            start.trailing_zeros().min(bits)
        };
        while size > 0 && block_end(start, size) > hi {
            size -= 1;
        }
        let len = u8::try_from(bits - size).ok()?;
        out.push(if bits == 32 {
            IpNet::V4(Ipv4Net::new(u32::try_from(start).ok()?.into(), len).ok()?)
        } else {
            IpNet::V6(Ipv6Net::new(start.into(), len).ok()?)
        });
        let end = block_end(start, size);
        if end >= hi {
            return Some(out);
        }
        start = end + 1;
    }
}

/// The last address of the block of 2^`size` addresses at `start`.
fn block_end(start: u128, size: u32) -> u128 {
    if size >= 128 {
        u128::MAX
    } else {
        start.saturating_add((1u128 << size) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn a_range_reads_as_the_prefixes_that_cover_it() {
        let p = |a: &str, b: &str| range_as_prefixes(a.parse().unwrap(), b.parse().unwrap());
        assert_eq!(
            p("10.0.0.1", "10.0.0.6"),
            Some(nets(&[
                "10.0.0.1/32",
                "10.0.0.2/31",
                "10.0.0.4/31",
                "10.0.0.6/32"
            ]))
        );
        assert_eq!(p("0.0.0.0", "255.255.255.255"), Some(nets(&["0.0.0.0/0"])));
        assert_eq!(
            p("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            Some(nets(&["::/0"]))
        );
        assert_eq!(p("fd00::", "fd00::ff"), Some(nets(&["fd00::/120"])));
        assert_eq!(p("10.0.0.2", "10.0.0.1"), None);
    }

    #[test]
    fn a_listing_reads_as_chains_tags_and_elements() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
          {"table": {"family": "inet", "name": "docker_firewall", "handle": 2}},
          {"set": {"family": "inet", "name": "ingress_allow_0_v4", "table": "docker_firewall",
            "type": "ipv4_addr", "flags": ["interval"],
            "elem": ["10.200.100.10", {"prefix": {"addr": "11.0.0.0", "len": 8}},
                     {"range": ["10.0.0.1", "10.0.0.2"]}]}},
          {"set": {"family": "inet", "name": "log_in_v4", "table": "docker_firewall",
            "type": ["ipv4_addr", "ipv4_addr", "inet_service"], "flags": ["timeout"]}},
          {"chain": {"family": "inet", "table": "docker_firewall", "name": "prerouting",
            "type": "filter", "hook": "prerouting", "prio": -110, "policy": "accept"}},
          {"chain": {"family": "inet", "table": "docker_firewall", "name": "ingress_deny"}},
          {"rule": {"family": "inet", "table": "docker_firewall", "chain": "prerouting",
            "comment": "dfw:0123456789ab web", "expr": []}},
          {"rule": {"family": "inet", "table": "docker_firewall", "chain": "prerouting",
            "expr": []}}]}"#;
        let view = parse_view(json).unwrap();
        assert_eq!(
            view.sets["ingress_allow_0_v4"].elements,
            Some(nets(&[
                "10.0.0.1/32",
                "10.0.0.2/32",
                "10.200.100.10/32",
                "11.0.0.0/8"
            ]))
        );
        assert_eq!(view.sets["log_in_v4"].elements, None);
        assert_eq!(
            view.sets["log_in_v4"].key,
            "ipv4_addr . ipv4_addr . inet_service"
        );
        let pre = &view.chains["prerouting"];
        assert_eq!(pre.hook.as_deref(), Some("filter prerouting -110 accept"));
        assert_eq!(pre.tags, vec!["dfw:0123456789ab", "?"]);
        assert_eq!(view.chains["ingress_deny"].hook, None);
    }
}
