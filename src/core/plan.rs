//! The plan: the difference between what we own live and what we want, as a minimal set of
//! operations, rendered as one `iptables-restore --noflush` input per family. A new owned chain is
//! declared and filled; an existing one is edited rule by rule (deleted by exact live text,
//! inserted at its position), so the rules that did not change keep their packet counters, which
//! audit rollouts are read from (declaring a chain under --noflush would flush it). Hooks in
//! foreign chains are deleted by their exact live text and re-inserted at the top. Nothing else is
//! ever named in the input, so foreign rules cannot change.

use super::owned::{DesiredState, DesiredTable, LiveHook, LiveState, LiveTable, is_builtin};
use super::rule::IptablesRule as Rule;
use std::collections::BTreeSet;

/// Chains that belong to Docker but that we create when they are missing, so our hook is in
/// place before Docker starts; we remove them again only when empty and unreferenced.
const CREATABLE_FOREIGN_CHAINS: [&str; 1] = [super::names::DOCKER_USER];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainWrite {
    pub name: String,
    pub rules: Vec<Rule>,
    /// False when the chain exists and is being replaced.
    pub new: bool,
}

/// An existing owned chain brought to its desired rules in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainEdit {
    pub name: String,
    /// Live rule texts to delete (each `-D` removes the first rule with that text).
    pub deletes: Vec<String>,
    /// (1-based position in the desired chain, rule), in ascending position.
    pub inserts: Vec<(usize, Rule)>,
    /// The chain's length afterwards.
    pub total: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookInsert {
    pub chain: String,
    pub position: usize,
    pub rule: Rule,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TablePlan {
    pub table: String,
    pub create_foreign: Vec<String>,
    pub write_chains: Vec<ChainWrite>,
    pub edit_chains: Vec<ChainEdit>,
    pub delete_hooks: Vec<LiveHook>,
    pub insert_hooks: Vec<HookInsert>,
    pub delete_chains: Vec<String>,
    pub delete_foreign: Vec<String>,
}

impl TablePlan {
    pub fn is_empty(&self) -> bool {
        self.create_foreign.is_empty()
            && self.write_chains.is_empty()
            && self.edit_chains.is_empty()
            && self.delete_hooks.is_empty()
            && self.insert_hooks.is_empty()
            && self.delete_chains.is_empty()
            && self.delete_foreign.is_empty()
    }
}

/// The plan for one family: only tables with something to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyPlan {
    pub tables: Vec<TablePlan>,
}

impl FamilyPlan {
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// One line per operation, for the module result and logs.
    pub fn actions(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.tables {
            let table = &t.table;
            for c in &t.create_foreign {
                out.push(format!("{table}: create missing chain {c}"));
            }
            for w in &t.write_chains {
                let verb = if w.new { "create" } else { "rewrite" };
                out.push(format!(
                    "{table}: {verb} chain {} ({} rules)",
                    w.name,
                    w.rules.len()
                ));
            }
            for e in &t.edit_chains {
                out.push(format!(
                    "{table}: edit chain {} (delete {}, insert {}; {} rules)",
                    e.name,
                    e.deletes.len(),
                    e.inserts.len(),
                    e.total
                ));
            }
            for h in &t.delete_hooks {
                out.push(format!(
                    "{table}: delete hook at {} #{}: {}",
                    h.chain, h.position, h.spec
                ));
            }
            for h in &t.insert_hooks {
                out.push(format!(
                    "{table}: insert hook at {} #{}: {}",
                    h.chain, h.position, h.rule.spec
                ));
            }
            for c in &t.delete_chains {
                out.push(format!("{table}: delete chain {c}"));
            }
            for c in &t.delete_foreign {
                out.push(format!(
                    "{table}: delete empty chain {c} created for the hook"
                ));
            }
        }
        out
    }

    /// The input for one `iptables-restore --noflush`: one transaction per table.
    pub fn restore_input(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            out.push_str(&format!("*{}\n", t.table));
            for c in &t.create_foreign {
                out.push_str(&format!(":{c} - [0:0]\n"));
            }
            for w in &t.write_chains {
                out.push_str(&format!(":{} - [0:0]\n", w.name));
            }
            for c in &t.delete_chains {
                out.push_str(&format!(":{c} - [0:0]\n"));
            }
            for h in &t.delete_hooks {
                out.push_str(&format!("-D {} {}\n", h.chain, h.spec));
            }
            for h in &t.insert_hooks {
                out.push_str(&format!("-I {} {} {}\n", h.chain, h.position, h.rule.spec));
            }
            for w in &t.write_chains {
                for r in &w.rules {
                    out.push_str(&format!("-A {} {}\n", w.name, r.spec));
                }
            }
            for e in &t.edit_chains {
                for spec in &e.deletes {
                    out.push_str(&format!("-D {} {spec}\n", e.name));
                }
                for (position, r) in &e.inserts {
                    out.push_str(&format!("-I {} {position} {}\n", e.name, r.spec));
                }
            }
            for c in t.delete_chains.iter().chain(&t.delete_foreign) {
                out.push_str(&format!("-X {c}\n"));
            }
            out.push_str("COMMIT\n");
        }
        out
    }
}

/// Plans one family.
pub fn plan(live: &LiveState, desired: &DesiredState) -> FamilyPlan {
    let empty_live = LiveTable::default();
    let empty_desired = DesiredTable::default();
    let names: BTreeSet<&String> = live.tables.keys().chain(desired.tables.keys()).collect();
    let mut tables = Vec::new();
    for name in names {
        let l = live.tables.get(name).unwrap_or(&empty_live);
        let d = desired.tables.get(name).unwrap_or(&empty_desired);
        let t = plan_table(name, l, d);
        if !t.is_empty() {
            tables.push(t);
        }
    }
    FamilyPlan { tables }
}

fn same_rules(live: &[super::owned::LiveRule], desired: &[Rule]) -> bool {
    live.len() == desired.len()
        && live
            .iter()
            .zip(desired)
            .all(|(l, d)| l.hash.as_deref() == Some(d.hash.as_str()))
}

/// The rule-by-rule edit from `live` to `desired` (Myers' diff over the tag hashes); None when no
/// rule can stay, where a rewrite says the same more simply, and when the chain holds a rule that is
/// not ours: it is removed by flushing, since its text may not read back as a `-D` argument.
fn edit(name: &str, live: &[super::owned::LiveRule], desired: &[Rule]) -> Option<ChainEdit> {
    use similar::{Algorithm, DiffOp, capture_diff_slices};
    if live.iter().any(|r| r.hash.is_none()) {
        return None;
    }
    let have: Vec<Option<&str>> = live.iter().map(|r| r.hash.as_deref()).collect();
    let want: Vec<Option<&str>> = desired.iter().map(|r| Some(r.hash.as_str())).collect();
    let mut deletes = Vec::new();
    let mut inserts = Vec::new();
    let mut kept = 0;
    for op in capture_diff_slices(Algorithm::Myers, &have, &want) {
        match op {
            DiffOp::Equal { len, .. } => kept += len,
            DiffOp::Delete {
                old_index, old_len, ..
            } => deletes.extend(
                live[old_index..old_index + old_len]
                    .iter()
                    .map(|r| r.spec.clone()),
            ),
            DiffOp::Insert {
                new_index, new_len, ..
            } => inserts
                .extend((new_index..new_index + new_len).map(|i| (i + 1, desired[i].clone()))),
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                deletes.extend(
                    live[old_index..old_index + old_len]
                        .iter()
                        .map(|r| r.spec.clone()),
                );
                inserts
                    .extend((new_index..new_index + new_len).map(|i| (i + 1, desired[i].clone())));
            }
        }
    }
    (kept > 0).then(|| ChainEdit {
        name: name.to_string(),
        deletes,
        inserts,
        total: desired.len(),
    })
}

fn plan_table(table: &str, live: &LiveTable, desired: &DesiredTable) -> TablePlan {
    let mut plan = TablePlan {
        table: table.to_string(),
        ..TablePlan::default()
    };
    for (name, rules) in &desired.chains {
        match live.chains.get(name) {
            Some(existing) if same_rules(existing, rules) => {}
            Some(existing) => match edit(name, existing, rules) {
                Some(e) => plan.edit_chains.push(e),
                None => plan.write_chains.push(ChainWrite {
                    name: name.clone(),
                    rules: rules.clone(),
                    new: false,
                }),
            },
            None => plan.write_chains.push(ChainWrite {
                name: name.clone(),
                rules: rules.clone(),
                new: true,
            }),
        }
    }
    for name in live.chains.keys() {
        if !desired.chains.contains_key(name) {
            plan.delete_chains.push(name.clone());
        }
    }

    let hook_chains: BTreeSet<&String> = live
        .hooks
        .iter()
        .map(|h| &h.chain)
        .chain(desired.hooks.keys())
        .collect();
    for chain in hook_chains {
        let want: &[Rule] = desired.hooks.get(chain).map(Vec::as_slice).unwrap_or(&[]);
        let have: Vec<&LiveHook> = live.hooks.iter().filter(|h| &h.chain == chain).collect();
        let in_place = have.len() == want.len()
            && have.iter().zip(want).enumerate().all(|(i, (h, w))| {
                h.position == i + 1 && h.hash.as_deref() == Some(w.hash.as_str())
            });
        if in_place {
            continue;
        }
        // Delete from the bottom so the positions shown stay true while reading the plan.
        let mut stale: Vec<LiveHook> = have.into_iter().cloned().collect();
        stale.sort_by_key(|h| std::cmp::Reverse(h.position));
        plan.delete_hooks.extend(stale);
        for (i, rule) in want.iter().enumerate() {
            plan.insert_hooks.push(HookInsert {
                chain: chain.clone(),
                position: i + 1,
                rule: rule.clone(),
            });
        }
        let missing = !is_builtin(table, chain) && !live.declared.contains(chain);
        if !want.is_empty() && missing {
            plan.create_foreign.push(chain.clone());
        }
    }

    // A DOCKER-USER we may have created for an earlier run goes when we leave it empty and
    // nothing jumps to it (Docker is not running); Docker recreates it when it starts.
    for chain in CREATABLE_FOREIGN_CHAINS {
        let hooked = desired.hooks.get(chain).is_some_and(|h| !h.is_empty());
        let foreign_rules = live.foreign_rules.get(chain).copied().unwrap_or(0);
        if live.declared.contains(chain)
            && !hooked
            && foreign_rules == 0
            && !live.foreign_targets.contains(chain)
            && live.hooks.iter().any(|h| h.chain == chain)
        {
            plan.delete_foreign.push(chain.to_string());
        }
    }
    plan
}

/// The restore input that puts back what we owned before (`before`), given what we own now
/// (`now`): used to undo an applied family when a later step fails. Hooks go back to their old
/// positions; chains get their old rules verbatim.
pub fn rollback_input(before: &LiveState, now: &LiveState) -> String {
    let names: BTreeSet<&String> = before.tables.keys().chain(now.tables.keys()).collect();
    let empty = LiveTable::default();
    let mut out = String::new();
    for name in names {
        let b = before.tables.get(name).unwrap_or(&empty);
        let n = now.tables.get(name).unwrap_or(&empty);
        if b.chains == n.chains && b.hooks == n.hooks && b.declared == n.declared {
            continue;
        }
        out.push_str(&format!("*{name}\n"));
        let chains: BTreeSet<&String> = b.chains.keys().chain(n.chains.keys()).collect();
        for c in &chains {
            out.push_str(&format!(":{c} - [0:0]\n"));
        }
        let mut now_hooks: Vec<&LiveHook> = n.hooks.iter().collect();
        now_hooks.sort_by_key(|h| std::cmp::Reverse(h.position));
        for h in now_hooks {
            out.push_str(&format!("-D {} {}\n", h.chain, h.spec));
        }
        let mut old_hooks: Vec<&LiveHook> = b.hooks.iter().collect();
        old_hooks.sort_by(|a, b| (&a.chain, a.position).cmp(&(&b.chain, b.position)));
        for h in old_hooks {
            out.push_str(&format!("-I {} {} {}\n", h.chain, h.position, h.spec));
        }
        for (c, rules) in &b.chains {
            for r in rules {
                out.push_str(&format!("-A {c} {}\n", r.spec));
            }
        }
        for c in n.chains.keys().filter(|c| !b.chains.contains_key(*c)) {
            out.push_str(&format!("-X {c}\n"));
        }
        for c in CREATABLE_FOREIGN_CHAINS {
            if n.declared.contains(c) && !b.declared.contains(c) {
                out.push_str(&format!("-X {c}\n"));
            }
        }
        out.push_str("COMMIT\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::owned::sample_desired as desired;
    use crate::core::save::parse_save;

    fn live(rules: &[String]) -> LiveState {
        let text = format!(
            "*filter\n:FORWARD ACCEPT [0:0]\n:DFW-INGRESS - [0:0]\n:DOCKER-USER - [0:0]\n{}\nCOMMIT\n",
            rules.join("\n")
        );
        LiveState::from_ruleset(&parse_save(&text).unwrap())
    }

    #[test]
    fn in_sync_plans_nothing_and_a_moved_hook_is_reinserted() {
        let d = desired();
        let t = &d.tables["filter"];
        let hook = format!("-A DOCKER-USER {}", t.hooks["DOCKER-USER"][0].spec);
        let rule = format!("-A DFW-INGRESS {}", t.chains["DFW-INGRESS"][0].spec);
        let foreign = "-A DOCKER-USER -j RETURN".to_string();
        let synced = live(&[hook.clone(), foreign.clone(), rule.clone()]);
        assert!(plan(&synced, &d).is_empty());

        let moved = live(&[foreign.clone(), hook.clone(), rule.clone()]);
        let p = plan(&moved, &d);
        let input = p.restore_input();
        assert!(input.contains(&format!("-D DOCKER-USER {}", &hook[15..])));
        assert!(input.contains("-I DOCKER-USER 1 "));
        assert!(!input.contains(":DFW-INGRESS"), "the chain itself is fine");
        assert!(!input.contains("RETURN"), "foreign rules are never named");

        let back = rollback_input(&moved, &synced);
        assert!(
            back.contains("-I DOCKER-USER 2 "),
            "rollback puts the hook back where it was"
        );
    }

    #[test]
    fn absent_deletes_owned_chains_and_hooks_only() {
        let d = desired();
        let t = &d.tables["filter"];
        let hook = format!("-A DOCKER-USER {}", t.hooks["DOCKER-USER"][0].spec);
        let rule = format!("-A DFW-INGRESS {}", t.chains["DFW-INGRESS"][0].spec);
        let state = live(&[hook, "-A FORWARD -j DOCKER-USER".into(), rule]);
        let input = plan(&state, &DesiredState::default()).restore_input();
        assert!(input.contains(":DFW-INGRESS - [0:0]\n"));
        assert!(input.contains("-X DFW-INGRESS\n"));
        assert!(
            !input.contains("-X DOCKER-USER"),
            "referenced by FORWARD: kept"
        );
    }
}
