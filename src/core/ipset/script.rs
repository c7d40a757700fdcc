//! The text forms of our sets: `ipset save` output read back (ours only), the same format
//! written for diff mode and for the boot-time file, and that file's merge.

use super::{IpSet, SET_TYPE, is_ours};
use crate::core::policy::Family;
use crate::core::rules_file::{BEGIN, END};
use ipnet::IpNet;

const BEGIN_LINE: &str =
    "# BEGIN docker_firewall (managed by Ansible: this block is rewritten on every run)";

/// ipset prints a host without its prefix length (`192.0.2.1`, not `192.0.2.1/32`).
pub(super) fn member_text(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

fn family_word(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "inet",
        Family::Ipv6 => "inet6",
    }
}

/// `create NAME hash:net family inet maxelem N`.
pub(super) fn create_line(set: &IpSet, name: &str) -> String {
    format!(
        "create {name} {SET_TYPE} family {} maxelem {}\n",
        family_word(set.family),
        set.maxelem
    )
}

/// Our sets in `ipset save` format (what diff mode shows and the boot file holds).
pub fn render_save(sets: &[IpSet]) -> String {
    let mut out = String::new();
    for set in sets {
        out.push_str(&create_line(set, &set.name));
        for member in &set.members {
            out.push_str(&format!("add {} {}\n", set.name, member_text(member)));
        }
    }
    out
}

/// The sets of ours in `ipset save` output, members sorted; every other set is skipped.
/// Fails on an element of ours before its set's `create` line, naming the line.
pub fn parse_save(text: &str) -> Result<Vec<IpSet>, String> {
    let mut sets: Vec<IpSet> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let bad = |why: &str| format!("ipset save line {}: {why}: {line}", index + 1);
        match words.as_slice() {
            ["create", name, kind, options @ ..] if is_ours(name) => {
                let option = |key: &str| {
                    options
                        .windows(2)
                        .find(|w| w[0] == key)
                        .map(|w| w[1].to_string())
                };
                // A set of our prefix we did not make (no family, an odd maxelem) is kept as
                // unreadable: it differs from every desired set, and is replaced or destroyed.
                let mut unreadable = Vec::new();
                let family = match option("family").as_deref() {
                    Some("inet6") => Family::Ipv6,
                    Some("inet") => Family::Ipv4,
                    _ => {
                        unreadable.push(format!("(no family inet or inet6: {})", words.join(" ")));
                        Family::Ipv4
                    }
                };
                let maxelem = match option("maxelem").map(|n| n.parse()) {
                    Some(Ok(n)) => n,
                    None => 65536,
                    Some(Err(_)) => {
                        unreadable.push(format!("(maxelem not a number: {})", words.join(" ")));
                        0
                    }
                };
                sets.push(IpSet {
                    name: name.to_string(),
                    family,
                    kind: kind.to_string(),
                    maxelem,
                    members: Vec::new(),
                    unreadable,
                });
            }
            ["add", name, rest @ ..] if is_ours(name) => {
                let Some(set) = sets.iter_mut().rev().find(|s| s.name == *name) else {
                    return Err(bad("an element of a set not created before"));
                };
                match (rest, parse_member(rest.first().copied().unwrap_or(""))) {
                    ([_], Some(net)) if set.family.holds(&net) => set.members.push(net),
                    _ => set.unreadable.push(rest.join(" ")),
                }
            }
            _ => {}
        }
    }
    for set in &mut sets {
        set.members.sort_by_key(|n| (n.network(), n.prefix_len()));
    }
    Ok(sets)
}

fn parse_member(text: &str) -> Option<IpNet> {
    if text.contains('/') {
        text.parse().ok()
    } else {
        text.parse::<std::net::IpAddr>().ok().map(IpNet::from)
    }
}

/// The boot-time sets file (netfilter-persistent's ipset plugin restores it before rules.v4):
/// our sets between marker lines, every other line kept; copies of our sets outside the
/// markers (an `ipset save` of the live sets) dropped. None when nothing is left.
pub fn file_content(existing: Option<&str>, sets: &[IpSet]) -> Option<String> {
    let holds_ours = |text: &str| {
        text.lines()
            .any(|l| l.trim().starts_with(BEGIN) || names_ours(l.trim()))
    };
    if sets.is_empty() && !existing.is_some_and(holds_ours) {
        // Nothing of ours to add or remove: the file stays byte for byte.
        return existing.map(str::to_string);
    }
    let mut lines: Vec<String> = Vec::new();
    let mut in_block = false;
    for line in existing.unwrap_or("").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with(BEGIN) {
            in_block = true;
        } else if in_block {
            in_block = !trimmed.starts_with(END);
        } else if !names_ours(trimmed) {
            lines.push(line.to_string());
        }
    }
    if !sets.is_empty() {
        lines.push(BEGIN_LINE.to_string());
        lines.extend(render_save(sets).lines().map(str::to_string));
        lines.push(END.to_string());
    }
    if lines.iter().all(|l| l.trim().is_empty()) {
        return None;
    }
    Some(lines.join("\n") + "\n")
}

/// A `create`, `add`, `flush`, `destroy`, ... line about one of our sets.
fn names_ours(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or("");
    !command.starts_with('#') && words.next().is_some_and(is_ours)
}
