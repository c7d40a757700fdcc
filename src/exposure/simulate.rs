//! What a ruleset becomes after `iptables-restore --noflush` of a plan's input: the exposure a
//! check-mode run would produce. Handles what plans write (chain declarations, -A, -I, -D, -X).

use crate::core::save::Ruleset;
use anyhow::{Result, anyhow, bail};

struct Table {
    name: String,
    chains: Vec<(String, String)>,
    rules: Vec<(String, String)>,
}

/// The save text of `live` with `input` applied.
pub fn after_restore(live: &Ruleset, input: &str) -> Result<String> {
    let mut tables: Vec<Table> = live
        .tables
        .iter()
        .map(|t| Table {
            name: t.name.to_string(),
            chains: t
                .chains
                .iter()
                .map(|c| (c.name.to_string(), c.policy.to_string()))
                .collect(),
            rules: t
                .rules
                .iter()
                .map(|r| (r.chain.to_string(), r.spec.to_string()))
                .collect(),
        })
        .collect();
    let mut current: Option<usize> = None;
    for (index, line) in input.lines().enumerate() {
        let line = line.trim();
        let at = || format!("restore input line {}: '{line}'", index + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('*') {
            current = Some(match tables.iter().position(|t| t.name == name) {
                Some(i) => i,
                None => {
                    tables.push(Table {
                        name: name.to_string(),
                        chains: Vec::new(),
                        rules: Vec::new(),
                    });
                    tables.len() - 1
                }
            });
            continue;
        }
        if line == "COMMIT" {
            current = None;
            continue;
        }
        let table = &mut tables[current.ok_or_else(|| anyhow!("{}: outside a table", at()))?];
        if let Some(decl) = line.strip_prefix(':') {
            // declaring a chain creates it, or flushes it (even with --noflush)
            let mut parts = decl.split_whitespace();
            let name = parts.next().ok_or_else(|| anyhow!("{}", at()))?.to_string();
            let policy = parts.next().unwrap_or("-").to_string();
            table.rules.retain(|(c, _)| *c != name);
            match table.chains.iter_mut().find(|(c, _)| *c == name) {
                Some(chain) if policy != "-" => chain.1 = policy,
                Some(_) => {}
                None => table.chains.push((name, policy)),
            }
            continue;
        }
        let (op, rest) = line.split_once(' ').unwrap_or((line, ""));
        let (chain, spec) = rest.trim().split_once(' ').unwrap_or((rest.trim(), ""));
        let (chain, spec) = (chain.to_string(), spec.trim().to_string());
        match op {
            "-A" => table.rules.push((chain, spec)),
            "-I" => {
                let (position, spec) = match spec.split_once(' ') {
                    Some((n, s)) if n.parse::<usize>().is_ok() => {
                        (n.parse::<usize>().unwrap_or(1), s.to_string())
                    }
                    _ => (1, spec),
                };
                let at_index = table
                    .rules
                    .iter()
                    .enumerate()
                    .filter(|(_, (c, _))| *c == chain)
                    .nth(position.saturating_sub(1))
                    .map(|(i, _)| i)
                    .or_else(|| {
                        table
                            .rules
                            .iter()
                            .rposition(|(c, _)| *c == chain)
                            .map(|i| i + 1)
                    })
                    .unwrap_or(table.rules.len());
                table.rules.insert(at_index, (chain, spec));
            }
            "-D" => {
                let found = table
                    .rules
                    .iter()
                    .position(|(c, s)| *c == chain && *s == spec);
                match found {
                    Some(i) => {
                        table.rules.remove(i);
                    }
                    None => bail!("{}: no such rule", at()),
                }
            }
            "-X" => {
                table.chains.retain(|(c, _)| *c != chain);
                table.rules.retain(|(c, _)| *c != chain);
            }
            _ => bail!("{}: not something a plan writes", at()),
        }
    }
    let mut out = String::new();
    for t in &tables {
        out.push_str(&format!("*{}\n", t.name));
        for (name, policy) in &t.chains {
            out.push_str(&format!(":{name} {policy} [0:0]\n"));
        }
        for (chain, spec) in &t.rules {
            out.push_str(&format!("-A {chain} {spec}\n"));
        }
        out.push_str("COMMIT\n");
    }
    Ok(out)
}
