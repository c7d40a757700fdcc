//! Following the packet through the chains of one table: every rule splits the sources still
//! travelling into those it catches and the rest, so one walk answers for every client at once.

use super::matcher::{Compiled, Cond, Packet, Target, compile};
use super::sources::SourceSet;
use crate::core::policy::Family;
use crate::core::save::Ruleset;
use std::borrow::Cow;
use std::collections::HashMap;

/// Where a walk leaves a set of sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Accept,
    Drop,
    /// Fell off the end of the chain (or RETURNed from it).
    Return,
    /// nat DNAT to this `--to-destination`.
    Dnat(String),
    /// A rule on the path we cannot evaluate.
    Unknown,
}

/// Sources, what happened to them, and the rule that decided it (`table CHAIN: spec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub sources: SourceSet,
    pub fate: Fate,
    pub rule: String,
}

/// A table with its rules compiled, by chain.
pub struct Table<'a> {
    pub(super) name: &'a str,
    /// chain -> (policy, rules in order)
    pub(super) chains: HashMap<Cow<'a, str>, (&'a str, Vec<Compiled<'a>>)>,
    /// Rules shown as nft prints them (our own table), not as `-A CHAIN spec`.
    pub(super) nftables: bool,
}

/// Every table of a ruleset, compiled once for all the ports analysed.
pub struct Tables<'a> {
    tables: Vec<Table<'a>>,
}

impl<'a> Tables<'a> {
    pub fn new(family: Family, ruleset: &Ruleset<'a>, sets: &super::SetMembers) -> Self {
        let tables = ruleset
            .tables
            .iter()
            .map(|t| {
                let mut chains: HashMap<Cow<'a, str>, (&'a str, Vec<Compiled<'a>>)> = t
                    .chains
                    .iter()
                    .map(|c| (Cow::Borrowed(c.name), (c.policy, Vec::new())))
                    .collect();
                for rule in &t.rules {
                    chains
                        .entry(Cow::Borrowed(rule.chain))
                        .or_insert(("-", Vec::new()))
                        .1
                        .push(compile(family, rule.spec, sets));
                }
                Table {
                    name: t.name,
                    chains,
                    nftables: false,
                }
            })
            .collect();
        Tables { tables }
    }

    /// These tables and `table` (a native nftables table: ours, or Docker's).
    pub fn with(mut self, table: Table<'a>) -> Self {
        self.tables.push(table);
        self
    }

    pub fn table(&self, name: &str) -> Option<&Table<'a>> {
        self.tables.iter().find(|t| t.name == name)
    }
}

/// Deeper than this, a jump loop is assumed (iptables itself refuses loops).
const MAX_DEPTH: usize = 64;

/// Walks a built-in chain (`PREROUTING`, `FORWARD`, `INPUT`); what falls off its end takes the
/// chain's policy. A missing table or chain, or an empty one that accepts, says "no rules".
pub fn walk_hook(
    table: Option<&Table>,
    chain: &str,
    pkt: &Packet,
    sources: SourceSet,
) -> Vec<Piece> {
    let no_rules = |sources| {
        vec![Piece {
            sources,
            fate: Fate::Accept,
            rule: format!("{chain}: no rules"),
        }]
    };
    let Some(table) = table else {
        return no_rules(sources);
    };
    let Some((policy, rules)) = table.chains.get(chain) else {
        return no_rules(sources);
    };
    if *policy != "DROP" && rules.is_empty() {
        return no_rules(sources);
    }
    walk_chain(table, chain, pkt, sources, 0)
        .into_iter()
        .map(|p| match p.fate {
            Fate::Return => Piece {
                fate: if *policy == "DROP" {
                    Fate::Drop
                } else {
                    Fate::Accept
                },
                rule: format!("{} {chain}: policy {policy}", table.name),
                ..p
            },
            _ => p,
        })
        .collect()
}

/// The fate a target gives the packet outright, if it is a verdict (not a jump, not a no-op).
fn verdict(target: &Target) -> Option<Fate> {
    Some(match target {
        Target::Accept => Fate::Accept,
        Target::Drop => Fate::Drop,
        Target::Return => Fate::Return,
        Target::Dnat(to) => Fate::Dnat(to.clone()),
        _ => return None,
    })
}

fn walk_chain(
    table: &Table,
    chain: &str,
    pkt: &Packet,
    sources: SourceSet,
    depth: usize,
) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut pending = sources;
    let rules = table
        .chains
        .get(chain)
        .map(|(_, r)| r.as_slice())
        .unwrap_or(&[]);
    for rule in rules {
        if pending.is_empty() {
            break;
        }
        if matches!(rule.target, Target::GoesOn | Target::Counts) {
            continue;
        }
        let shown = || match table.nftables {
            true => format!("{} {chain}: {}", table.name, rule.spec),
            false => format!("{} {chain}: -A {chain} {}", table.name, rule.spec),
        };
        let (hit, unknown) = match rule.evaluate(pkt) {
            Cond::Sources(s) => (pending.intersect(&s), None),
            Cond::Unknown(s, why) => (pending.intersect(&s), Some(why)),
        };
        if hit.is_empty() {
            continue;
        }
        if let Some(why) = unknown {
            pending.remove(&hit);
            out.push(Piece {
                sources: hit,
                fate: Fate::Unknown,
                rule: format!("{} (cannot evaluate {why})", shown()),
            });
            continue;
        }
        if let Some(fate) = verdict(&rule.target) {
            pending.remove(&hit);
            out.push(Piece {
                sources: hit,
                fate,
                rule: shown(),
            });
            continue;
        }
        let (next, goto) = match &rule.target {
            Target::Jump(next) => (next, false),
            Target::Goto(next) => (next, true),
            Target::SetsMark => {
                pkt.marks_unknown.set(true);
                continue;
            }
            _ => continue,
        };
        pending.remove(&hit);
        if !table.chains.contains_key(next.as_str()) || depth >= MAX_DEPTH {
            out.push(Piece {
                sources: hit,
                fate: Fate::Unknown,
                rule: format!("{} (cannot evaluate target {next})", shown()),
            });
            continue;
        }
        for piece in walk_chain(table, next, pkt, hit, depth + 1) {
            match piece.fate {
                // back in this chain, at the next rule (a goto returns to our caller instead)
                Fate::Return if !goto => pending.add(&piece.sources),
                _ => out.push(piece),
            }
        }
    }
    if !pending.is_empty() {
        out.push(Piece {
            sources: pending,
            fate: Fate::Return,
            rule: format!("{} {chain}: end of chain", table.name),
        });
    }
    out
}
