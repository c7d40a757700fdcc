//! What the module owns, live or desired: chains with our prefix and tagged hook rules in other
//! chains. Both sides are put in the same shape so the planner can compare them, and both render
//! to the same text (the `rules` result, the diff, and the persisted block).

use super::rule::{IptablesRule as Rule, is_owned_chain, tag_hash};
use super::save::{Ruleset, target};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Tables in the order we render them.
pub const TABLE_ORDER: [&str; 4] = ["raw", "mangle", "nat", "filter"];

pub fn builtin_chains(table: &str) -> &'static [&'static str] {
    match table {
        "filter" => &["INPUT", "FORWARD", "OUTPUT"],
        "nat" => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        "mangle" => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
        "raw" => &["PREROUTING", "OUTPUT"],
        "security" => &["INPUT", "FORWARD", "OUTPUT"],
        _ => &[],
    }
}

pub fn is_builtin(table: &str, chain: &str) -> bool {
    builtin_chains(table).contains(&chain)
}

fn table_rank(name: &str) -> usize {
    TABLE_ORDER
        .iter()
        .position(|t| *t == name)
        .unwrap_or(TABLE_ORDER.len())
}

/// A rule in one of our chains as iptables-save printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRule {
    pub spec: String,
    pub hash: Option<String>,
}

/// A tagged rule in a chain we do not own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveHook {
    pub chain: String,
    /// 1-based position among all rules of the chain.
    pub position: usize,
    pub spec: String,
    pub hash: Option<String>,
}

/// One table of a live ruleset, reduced to what the planner needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveTable {
    pub chains: BTreeMap<String, Vec<LiveRule>>,
    pub hooks: Vec<LiveHook>,
    /// Every chain declared in the table, ours or not.
    pub declared: BTreeSet<String>,
    /// Per foreign chain, how many rules it holds that are not ours.
    pub foreign_rules: BTreeMap<String, usize>,
    /// Chains that some foreign rule jumps to.
    pub foreign_targets: BTreeSet<String>,
}

/// One family's live ruleset reduced to what we own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveState {
    pub tables: BTreeMap<String, LiveTable>,
}

impl LiveState {
    pub fn from_ruleset(ruleset: &Ruleset) -> Self {
        let mut tables = BTreeMap::new();
        for table in &ruleset.tables {
            let mut live = LiveTable::default();
            for decl in &table.chains {
                live.declared.insert(decl.name.to_string());
                if is_owned_chain(decl.name) {
                    live.chains.entry(decl.name.to_string()).or_default();
                }
            }
            // Per chain: rules seen so far (positions are 1-based), and how many are foreign.
            // Keys borrow the save text; a host may hold tens of thousands of foreign rules.
            let mut counts: HashMap<&str, (usize, usize)> = HashMap::new();
            for rule in &table.rules {
                let (seen, foreign) = counts.entry(rule.chain).or_insert((0, 0));
                *seen += 1;
                let hash = tag_hash(rule.spec);
                if is_owned_chain(rule.chain) {
                    live.chains
                        .entry(rule.chain.to_string())
                        .or_default()
                        .push(LiveRule {
                            spec: rule.spec.to_string(),
                            hash,
                        });
                } else if hash.is_some() {
                    live.hooks.push(LiveHook {
                        chain: rule.chain.to_string(),
                        position: *seen,
                        spec: rule.spec.to_string(),
                        hash,
                    });
                } else {
                    *foreign += 1;
                    // Only DOCKER-USER is ever looked up (plan.rs removes it when we created it and nothing
                    // jumps to it): skip splitting every other rule.
                    if rule.spec.contains(super::names::DOCKER_USER)
                        && let Some(t) = target(rule.spec)
                    {
                        live.foreign_targets.insert(t);
                    }
                }
            }
            live.foreign_rules = counts
                .into_iter()
                .filter(|(_, (_, foreign))| *foreign > 0)
                .map(|(chain, (_, foreign))| (chain.to_string(), foreign))
                .collect();
            tables.insert(table.name.to_string(), live);
        }
        LiveState { tables }
    }

    pub fn table(&self, name: &str) -> Option<&LiveTable> {
        self.tables.get(name)
    }

    /// The owned part as text (see [`render_owned`]).
    pub fn render(&self) -> String {
        let mut tables: Vec<(&String, &LiveTable)> = self.tables.iter().collect();
        tables.sort_by_key(|(name, _)| table_rank(name));
        let mut blocks = Vec::new();
        for (name, table) in tables {
            if table.chains.is_empty() && table.hooks.is_empty() {
                continue;
            }
            let chains: Vec<(&str, Vec<&str>)> = table
                .chains
                .iter()
                .map(|(c, rules)| (c.as_str(), rules.iter().map(|r| r.spec.as_str()).collect()))
                .collect();
            let mut hooks: Vec<&LiveHook> = table.hooks.iter().collect();
            hooks.sort_by(|a, b| (&a.chain, a.position).cmp(&(&b.chain, b.position)));
            let hooks: Vec<(&str, usize, &str)> = hooks
                .iter()
                .map(|h| (h.chain.as_str(), h.position, h.spec.as_str()))
                .collect();
            blocks.push(render_owned(name, &[], &chains, &hooks));
        }
        blocks.concat()
    }
}

/// What we want one table to hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredTable {
    pub chains: BTreeMap<String, Vec<Rule>>,
    /// Per foreign chain, our hooks, which must be its first rules in this order.
    pub hooks: BTreeMap<String, Vec<Rule>>,
}

/// What we want one family to hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub tables: BTreeMap<String, DesiredTable>,
}

impl DesiredState {
    pub fn table_mut(&mut self, name: &str) -> &mut DesiredTable {
        self.tables.entry(name.to_string()).or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.tables
            .values()
            .all(|t| t.chains.is_empty() && t.hooks.is_empty())
    }

    /// The owned part as text. `declare` lists, per table, foreign chains that must be declared
    /// first (used for the rules file, where DOCKER-USER may not exist yet at boot).
    pub fn render(&self, declare: &BTreeMap<String, Vec<String>>) -> String {
        let mut tables: Vec<(&String, &DesiredTable)> = self
            .tables
            .iter()
            .filter(|(_, t)| !t.chains.is_empty() || !t.hooks.is_empty())
            .collect();
        tables.sort_by_key(|(name, _)| table_rank(name));
        let mut blocks = Vec::new();
        for (name, table) in tables {
            let chains: Vec<(&str, Vec<&str>)> = table
                .chains
                .iter()
                .map(|(c, rules)| (c.as_str(), rules.iter().map(|r| r.spec.as_str()).collect()))
                .collect();
            let hooks: Vec<(&str, usize, &str)> = table
                .hooks
                .iter()
                .flat_map(|(chain, rules)| {
                    rules
                        .iter()
                        .enumerate()
                        .map(move |(i, r)| (chain.as_str(), i + 1, r.spec.as_str()))
                })
                .collect();
            let extra: Vec<&str> = declare
                .get(name.as_str())
                .map(|v| v.iter().map(String::as_str).collect())
                .unwrap_or_default();
            blocks.push(render_owned(name, &extra, &chains, &hooks));
        }
        blocks.concat()
    }
}

/// Renders owned content of one table as an iptables-restore fragment: chain declarations,
/// hooks as `-I <chain> <position>`, then the owned chains' rules. The same text serves as the
/// `rules` result, as each side of the diff, and (between markers) in the rules files.
fn render_owned(
    table: &str,
    declare: &[&str],
    chains: &[(&str, Vec<&str>)],
    hooks: &[(&str, usize, &str)],
) -> String {
    let mut out = format!("*{table}\n");
    for name in declare {
        out.push_str(&format!(":{name} - [0:0]\n"));
    }
    for (name, _) in chains {
        out.push_str(&format!(":{name} - [0:0]\n"));
    }
    for (chain, position, spec) in hooks {
        out.push_str(&format!("-I {chain} {position} {spec}\n"));
    }
    for (name, rules) in chains {
        for spec in rules {
            out.push_str(&format!("-A {name} {spec}\n"));
        }
    }
    out.push_str("COMMIT\n");
    out
}

/// A small desired state for unit tests: one hook in DOCKER-USER, one owned chain.
#[cfg(test)]
pub fn sample_desired() -> DesiredState {
    use super::rule::{Action, iptables::always};
    let mut table = DesiredTable::default();
    table.hooks.insert(
        "DOCKER-USER".into(),
        vec![always("DOCKER-USER", Action::Jump("DFW-INGRESS"))],
    );
    table.chains.insert(
        "DFW-INGRESS".into(),
        vec![always("DFW-INGRESS", Action::Drop)],
    );
    let mut desired = DesiredState::default();
    desired.tables.insert("filter".into(), table);
    desired
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rule::{Action, iptables::always};
    use crate::core::save::parse_save;

    #[test]
    fn live_and_desired_render_alike() {
        let hook = always("DOCKER-USER", Action::Jump("DFW-INGRESS"));
        let rule = always("DFW-INGRESS", Action::Drop);
        let mut desired = DesiredState::default();
        let t = desired.table_mut("filter");
        t.hooks.insert("DOCKER-USER".into(), vec![hook.clone()]);
        t.chains.insert("DFW-INGRESS".into(), vec![rule.clone()]);
        let save = format!(
            "*filter\n:INPUT ACCEPT [0:0]\n:DFW-INGRESS - [0:0]\n:DOCKER-USER - [0:0]\n\
             -A DFW-INGRESS {}\n-A DOCKER-USER {}\n-A DOCKER-USER -j RETURN\nCOMMIT\n",
            rule.spec, hook.spec
        );
        let live = LiveState::from_ruleset(&parse_save(&save).unwrap());
        assert_eq!(live.render(), desired.render(&BTreeMap::new()));
        let filter = live.table("filter").unwrap();
        assert_eq!(filter.foreign_rules.get("DOCKER-USER"), Some(&1));
        assert_eq!(filter.hooks[0].position, 1);
    }
}
