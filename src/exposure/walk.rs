//! Following the packet through the chains of one table: every rule splits the sources still
//! travelling into those it catches and the rest, so one walk answers for every client at once.

use super::matcher::{Cond, Packet, evaluate, split_target};
use super::sources::SourceSet;
use crate::core::save::{Table, split_args};

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

/// Targets that let the packet go on to the next rule.
const GOES_ON: [&str; 11] = [
    "LOG", "NFLOG", "ULOG", "MARK", "CONNMARK", "TRACE", "AUDIT", "SET", "CLASSIFY", "TCPMSS",
    "DSCP",
];
/// Deeper than this, a jump loop is assumed (iptables itself refuses loops).
const MAX_DEPTH: usize = 64;

/// Walks a built-in chain (`PREROUTING`, `FORWARD`, `INPUT`); what falls off its end takes the
/// chain's policy. A missing table or chain accepts.
pub fn walk_hook(
    table: Option<&Table>,
    chain: &str,
    pkt: &Packet,
    sources: SourceSet,
) -> Vec<Piece> {
    let Some(table) = table.filter(|t| t.has_chain(chain)) else {
        return vec![Piece {
            sources,
            fate: Fate::Accept,
            rule: format!("{chain}: no rules"),
        }];
    };
    let policy = table
        .chains
        .iter()
        .find(|c| c.name == chain)
        .map(|c| c.policy)
        .unwrap_or("ACCEPT");
    if policy != "DROP" && table.rules_of(chain).next().is_none() {
        return vec![Piece {
            sources,
            fate: Fate::Accept,
            rule: format!("{chain}: no rules"),
        }];
    }
    walk_chain(table, chain, pkt, sources, 0)
        .into_iter()
        .map(|p| match p.fate {
            Fate::Return => Piece {
                fate: if policy == "DROP" {
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

fn walk_chain(
    table: &Table,
    chain: &str,
    pkt: &Packet,
    sources: SourceSet,
    depth: usize,
) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut pending = sources;
    for rule in table.rules_of(chain) {
        if pending.is_empty() {
            break;
        }
        let shown = format!("{} {chain}: -A {chain} {}", table.name, rule.spec);
        let args = split_args(rule.spec);
        let (matches, target) = split_target(&args);
        let Some((target, goto, _target_args)) = target else {
            continue; // a rule without a target only counts packets
        };
        if GOES_ON.contains(&target) {
            continue;
        }
        let (hit, unknown) = match evaluate(matches, pkt) {
            Cond::Sources(s) => (pending.intersect(&s), None),
            Cond::Unknown(s, why) => (pending.intersect(&s), Some(why)),
        };
        if hit.is_empty() {
            continue;
        }
        pending.remove(&hit);
        if let Some(why) = unknown {
            out.push(Piece {
                sources: hit,
                fate: Fate::Unknown,
                rule: format!("{shown} (cannot evaluate {why})"),
            });
            continue;
        }
        let fate = match target {
            "ACCEPT" => Some(Fate::Accept),
            "DROP" | "REJECT" => Some(Fate::Drop),
            "RETURN" => Some(Fate::Return),
            "DNAT" => Some(Fate::Dnat(
                _target_args
                    .windows(2)
                    .find(|w| w[0] == "--to-destination")
                    .map(|w| w[1].clone())
                    .unwrap_or_default(),
            )),
            _ => None,
        };
        if let Some(fate) = fate {
            out.push(Piece {
                sources: hit,
                fate,
                rule: shown,
            });
            continue;
        }
        if !table.has_chain(target) || depth >= MAX_DEPTH {
            out.push(Piece {
                sources: hit,
                fate: Fate::Unknown,
                rule: format!("{shown} (cannot evaluate target {target})"),
            });
            continue;
        }
        for piece in walk_chain(table, target, pkt, hit, depth + 1) {
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
