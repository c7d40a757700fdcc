//! Parsing `iptables-save` output (and rules files in the same format) into tables, chain
//! declarations and rules. Rule text is kept exactly as printed: we never rewrite foreign rules,
//! so we never need to understand them beyond their chain, target and comment.

use anyhow::{Result, bail};

/// A parsed ruleset borrows its text from the save output: a host with tens of thousands of
/// foreign rules is read without copying each one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruleset<'a> {
    pub tables: Vec<Table<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table<'a> {
    pub name: &'a str,
    pub chains: Vec<ChainDecl<'a>>,
    pub rules: Vec<RuleLine<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainDecl<'a> {
    pub name: &'a str,
    /// `ACCEPT`/`DROP` for built-in chains, `-` for user chains.
    pub policy: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleLine<'a> {
    pub chain: &'a str,
    /// Everything after `-A <chain> `, as printed.
    pub spec: &'a str,
}

impl<'a> Ruleset<'a> {
    pub fn table(&self, name: &str) -> Option<&Table<'a>> {
        self.tables.iter().find(|t| t.name == name)
    }
}

impl<'a> Table<'a> {
    pub fn has_chain(&self, name: &str) -> bool {
        self.chains.iter().any(|c| c.name == name)
    }

    pub fn rules_of<'s>(&'s self, chain: &'s str) -> impl Iterator<Item = &'s RuleLine<'a>> + 's {
        self.rules.iter().filter(move |r| r.chain == chain)
    }
}

/// Parses `iptables-save` output. Counters (`[p:b]` prefixes from `-c`) are dropped.
pub fn parse_save(text: &str) -> Result<Ruleset<'_>> {
    let mut tables: Vec<Table> = Vec::new();
    let mut current: Option<Table> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('*') {
            if let Some(open) = &current {
                bail!(
                    "line {number}: table {name} starts before table {} was committed",
                    open.name
                );
            }
            current = Some(Table {
                name: name.trim(),
                chains: Vec::new(),
                rules: Vec::new(),
            });
            continue;
        }
        let Some(table) = current.as_mut() else {
            bail!("line {number}: '{line}' is outside a table (no '*table' line before it)");
        };
        if line == "COMMIT" {
            tables.extend(current.take());
            continue;
        }
        if let Some(decl) = line.strip_prefix(':') {
            let mut parts = decl.split_whitespace();
            let (Some(name), Some(policy)) = (parts.next(), parts.next()) else {
                bail!("line {number}: malformed chain declaration '{line}'");
            };
            table.chains.push(ChainDecl { name, policy });
            continue;
        }
        let rule = strip_counters(line);
        let Some(rest) = rule.strip_prefix("-A ") else {
            bail!("line {number}: unexpected line '{line}'");
        };
        let rest = rest.trim_start();
        let (chain, spec) = rest.split_once(' ').unwrap_or((rest, ""));
        table.rules.push(RuleLine {
            chain,
            spec: spec.trim(),
        });
    }
    if let Some(open) = current {
        bail!("table {} is not committed (missing COMMIT)", open.name);
    }
    Ok(Ruleset { tables })
}

fn strip_counters(line: &str) -> &str {
    if line.starts_with('[')
        && let Some(end) = line.find(']')
    {
        return line[end + 1..].trim_start();
    }
    line
}

/// iptables-nft-save's note that a table holds native nftables rules it cannot print (it then
/// prints some of them wrongly, e.g. a set match as a bare `-p tcp -j DROP`).
pub fn incompatible_table_note(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with('#') && l.contains("incompatible"))
}

/// Splits a rule spec into arguments the way iptables-restore does: whitespace separates,
/// double quotes group, and a backslash escapes the next character inside quotes.
pub fn split_args(spec: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if quoted => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    args.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        args.push(current);
    }
    args
}

/// The values of every `--comment` in a rule spec.
pub fn comments(spec: &str) -> Vec<String> {
    let args = split_args(spec);
    args.windows(2)
        .filter(|w| w[0] == "--comment")
        .map(|w| w[1].clone())
        .collect()
}

/// The value after the first of `flags` in split arguments (`-p tcp` gives `tcp`).
pub fn option_value(args: &[String], flags: &[&str]) -> Option<String> {
    args.windows(2)
        .find(|w| flags.contains(&w[0].as_str()))
        .map(|w| w[1].clone())
}

/// The jump target of a rule (`-j X` or `-g X`), if any.
pub fn target(spec: &str) -> Option<String> {
    option_value(&split_args(spec), &["-j", "-g", "--jump", "--goto"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tables_chains_and_rules() {
        let text = "# Generated by iptables-save v1.8.9\n*nat\n:PREROUTING ACCEPT [3:180]\n:DOCKER - [0:0]\n\
                    -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n\
                    [5:300] -A INPUT -m comment --comment \"a \\\"b\\\" c\" -j ACCEPT\nCOMMIT\n";
        let rs = parse_save(text).unwrap();
        assert_eq!(rs.tables.len(), 2);
        let nat = rs.table("nat").unwrap();
        assert!(nat.has_chain("DOCKER"));
        assert_eq!(nat.rules[0].chain, "PREROUTING");
        assert_eq!(nat.rules[0].spec, "-m addrtype --dst-type LOCAL -j DOCKER");
        let filter = rs.table("filter").unwrap();
        assert_eq!(comments(filter.rules[0].spec), vec!["a \"b\" c"]);
        assert_eq!(target(filter.rules[0].spec).as_deref(), Some("ACCEPT"));
    }

    #[test]
    fn refuses_broken_input() {
        assert!(parse_save("-A INPUT -j ACCEPT\n").is_err());
        assert!(parse_save("*filter\n-A INPUT -j ACCEPT\n").is_err());
        assert!(parse_save("*filter\n*nat\nCOMMIT\n").is_err());
        assert!(parse_save("*filter\n-I INPUT 1 -j ACCEPT\nCOMMIT\n").is_err());
    }

    #[test]
    fn splits_like_iptables_restore() {
        assert_eq!(
            split_args("-s 10.0.0.0/8 -m comment --comment \"x y\" -j RETURN"),
            vec![
                "-s",
                "10.0.0.0/8",
                "-m",
                "comment",
                "--comment",
                "x y",
                "-j",
                "RETURN"
            ]
        );
        assert_eq!(split_args("--comment \"\""), vec!["--comment", ""]);
    }
}
