//! Our part of /etc/iptables/rules.v4 and rules.v6 (the files netfilter-persistent restores at
//! boot, before Docker starts). Our content lives between BEGIN/END marker lines inside each
//! table section; every other line of the file is kept byte for byte. Copies of our rules found
//! outside the markers (a `netfilter-persistent save` dumps the live ruleset, ours included) are
//! dropped so they cannot be declared twice.

use super::owned::{DesiredState, is_builtin};
use super::rule::{is_owned_chain, tag_hash};
use std::collections::BTreeMap;

pub const BEGIN: &str = "# BEGIN docker_firewall";
pub const END: &str = "# END docker_firewall";
const BEGIN_LINE: &str =
    "# BEGIN docker_firewall (managed by Ansible: this block is rewritten on every run)";

/// The file's new content, or None when the file should not exist (nothing left in it).
pub fn updated_content(existing: Option<&str>, desired: &DesiredState) -> Option<String> {
    let mut lines: Vec<String> = existing.map(strip_owned).unwrap_or_default();
    for (table, body) in table_bodies(desired) {
        let section = find_section(&lines, &table);
        match section {
            Some((start, commit)) => {
                let declared = |chain: &str| {
                    lines[start..commit]
                        .iter()
                        .any(|l| l.split_whitespace().next() == Some(&format!(":{chain}")))
                };
                let mut block = vec![BEGIN_LINE.to_string()];
                block.extend(
                    foreign_chains(desired, &table)
                        .into_iter()
                        .filter(|c| !declared(c))
                        .map(|c| format!(":{c} - [0:0]")),
                );
                block.extend(body);
                block.push(END.to_string());
                lines.splice(commit..commit, block);
            }
            None => {
                lines.push(BEGIN_LINE.to_string());
                lines.push(format!("*{table}"));
                lines.extend(
                    foreign_chains(desired, &table)
                        .into_iter()
                        .map(|c| format!(":{c} - [0:0]")),
                );
                lines.extend(body);
                lines.push("COMMIT".to_string());
                lines.push(END.to_string());
            }
        }
    }
    if lines.iter().all(|l| l.trim().is_empty()) {
        return None;
    }
    let mut text = lines.join("\n");
    text.push('\n');
    Some(text)
}

/// The file without anything of ours.
fn strip_owned(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with(BEGIN) {
            in_block = true;
            continue;
        }
        if in_block {
            if trimmed.starts_with(END) {
                in_block = false;
            }
            continue;
        }
        if is_owned_line(trimmed) {
            continue;
        }
        out.push(line.to_string());
    }
    out
}

fn is_owned_line(line: &str) -> bool {
    if let Some(decl) = line.strip_prefix(':') {
        return decl.split_whitespace().next().is_some_and(is_owned_chain);
    }
    let line = match line.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(line, |(_, r)| r.trim_start()),
        None => line,
    };
    let Some(rule) = line.strip_prefix("-A ") else {
        return false;
    };
    let chain = rule.split_whitespace().next().unwrap_or("");
    is_owned_chain(chain) || tag_hash(rule).is_some()
}

/// Start (`*table` line) and COMMIT line indices of a table section. A section cut short (no
/// COMMIT before the next `*table` line or the end) is not one: our block would otherwise land
/// inside the next table's section.
fn find_section(lines: &[String], table: &str) -> Option<(usize, usize)> {
    let header = format!("*{table}");
    let start = lines.iter().position(|l| l.trim() == header)?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.trim() == "COMMIT" || l.trim_start().starts_with('*'))?
        + start
        + 1;
    (lines[end].trim() == "COMMIT").then_some((start, end))
}

/// Foreign, non-built-in chains our hooks need (DOCKER-USER before Docker has started).
fn foreign_chains(desired: &DesiredState, table: &str) -> Vec<String> {
    desired
        .tables
        .get(table)
        .map(|t| {
            t.hooks
                .keys()
                .filter(|c| !is_builtin(table, c))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Per table, the lines between `*table` and COMMIT of the desired rendering.
fn table_bodies(desired: &DesiredState) -> Vec<(String, Vec<String>)> {
    let text = desired.render(&BTreeMap::new());
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(table) = line.strip_prefix('*') {
            out.push((table.to_string(), Vec::new()));
        } else if line != "COMMIT"
            && let Some((_, body)) = out.last_mut()
        {
            body.push(line.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::owned::sample_desired as desired;
    use crate::core::rule::{Action, iptables::always};

    #[test]
    fn creates_a_file_that_declares_docker_user() {
        let text = updated_content(None, &desired()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with(BEGIN));
        assert_eq!(lines[1], "*filter");
        assert_eq!(lines[2], ":DOCKER-USER - [0:0]");
        assert!(lines[4].starts_with("-I DOCKER-USER 1 "));
        assert_eq!(lines[lines.len() - 2], "COMMIT");
        assert_eq!(lines[lines.len() - 1], END);
        assert_eq!(updated_content(Some(&text), &DesiredState::default()), None);
    }

    #[test]
    fn keeps_foreign_lines_and_drops_stray_copies_of_ours() {
        let hook = always("DOCKER-USER", Action::Jump("DFW-INGRESS"));
        // As `netfilter-persistent save` would write it: live state, ours included.
        let saved = format!(
            "# Generated by iptables-save\n*filter\n:INPUT DROP [10:600]\n:DFW-INGRESS - [0:0]\n\
             :DOCKER-USER - [0:0]\n[0:0] -A INPUT -i lo -j ACCEPT\n-A DOCKER-USER {}\n\
             -A DOCKER-USER -j RETURN\n-A DFW-INGRESS -j DROP\nCOMMIT\n",
            hook.spec
        );
        let text = updated_content(Some(&saved), &desired()).unwrap();
        assert_eq!(text.matches(":DFW-INGRESS ").count(), 1);
        assert_eq!(
            text.matches(":DOCKER-USER ").count(),
            1,
            "declared once:\n{text}"
        );
        assert_eq!(text.matches("-j DFW-INGRESS").count(), 1);
        for kept in [
            "# Generated by iptables-save",
            ":INPUT DROP [10:600]",
            "[0:0] -A INPUT -i lo -j ACCEPT",
            "-A DOCKER-USER -j RETURN",
        ] {
            assert!(text.contains(kept), "{kept} kept");
        }
        let block = text.find(BEGIN).unwrap();
        assert!(block > text.find("-A DOCKER-USER -j RETURN").unwrap());
        assert!(block < text.rfind("COMMIT").unwrap());
        // Idempotent, and absent leaves only the foreign lines.
        assert_eq!(updated_content(Some(&text), &desired()).unwrap(), text);
        let without = updated_content(Some(&text), &DesiredState::default()).unwrap();
        assert!(!without.contains("DFW-") && !without.contains("docker_firewall"));
        assert!(without.contains("-A DOCKER-USER -j RETURN"));
    }

    /// Found by tests/fuzz.rs: a truncated file (`*filter` and no COMMIT) put our filter block
    /// inside the nat section appended after it, and the next merge changed the file again.
    #[test]
    fn a_section_without_commit_is_left_alone() {
        let mut d = desired();
        d.table_mut("nat")
            .chains
            .insert("DFW-GATE".into(), vec![always("DFW-GATE", Action::Return)]);
        let cut = "# saved\n*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\n";
        let text = updated_content(Some(cut), &d).unwrap();
        assert!(text.starts_with(cut), "{text}");
        for table in ["*nat", "*filter"] {
            let at = text.rfind(table).unwrap();
            assert!(
                text[at..].find("COMMIT").unwrap()
                    < text[at + 1..].find('*').map_or(usize::MAX, |i| i + 1)
            );
        }
        assert_eq!(updated_content(Some(&text), &d).unwrap(), text);
    }
}
