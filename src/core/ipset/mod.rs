//! Large allow lists on the iptables dataplane: an allow entry with at least [`SET_THRESHOLD`]
//! sources of a family matches them with one `hash:net` ipset (`dfw-allow-<entry>-v4|v6`)
//! instead of one rule per source, so a new connection costs the same at any list size
//! (docs/benchmarks.md). The model here is pure: the desired sets, the plan between live and
//! desired, the scripts for `ipset restore` and the parser of `ipset save` (script.rs).

mod script;

pub use script::{file_content, parse_save, render_save};

use super::names::{IPSET_PREFIX, IPSET_TEMP_SUFFIX};
use super::policy::{AllowEntry, Family};
use ipnet::IpNet;

/// Sources of one family in one allow entry from which the entry uses a set (measured: below
/// this, rules cost nothing measurable; see docs/benchmarks.md).
pub const SET_THRESHOLD: usize = 100;
/// IPSET_MAXNAMELEN (32) less the NUL.
pub const MAX_NAME_LEN: usize = 31;
pub const SET_TYPE: &str = "hash:net";

/// One set of ours: what we want, or what `ipset save` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpSet {
    pub name: String,
    pub family: Family,
    /// `hash:net` for ours; whatever a live set of our prefix holds otherwise.
    pub kind: String,
    pub maxelem: usize,
    /// Sorted; in a desired set also without networks another member covers.
    pub members: Vec<IpNet>,
    /// `add` lines of a live set that are not a plain network (options such as `nomatch`): a
    /// set holding any is not ours as written, so it differs from every desired set.
    pub unreadable: Vec<String>,
}

impl IpSet {
    /// The same set under the name it is filled under before the swap.
    pub fn temp_name(&self) -> String {
        format!("{}{IPSET_TEMP_SUFFIX}", self.name)
    }
}

pub fn is_ours(name: &str) -> bool {
    name.starts_with(IPSET_PREFIX)
}

/// A set filled beside its own and not yet swapped in (left over when a run was killed).
pub fn is_temp(name: &str) -> bool {
    is_ours(name) && name.ends_with(IPSET_TEMP_SUFFIX)
}

/// `dfw-allow-<entry index>-v4` / `-v6`; the index is the entry's place in `ingress.allow`.
pub fn set_name(entry_index: usize, family: Family) -> String {
    let suffix = match family {
        Family::Ipv4 => "v4",
        Family::Ipv6 => "v6",
    };
    format!("{IPSET_PREFIX}allow-{entry_index}-{suffix}")
}

/// The set an allow entry uses in `family`, or None when it keeps one rule per source: fewer
/// than [`SET_THRESHOLD`] sources of the family, or a `/0` among them (hash:net refuses it, and
/// a rule without `-s` says the same).
pub fn entry_set(entry: &AllowEntry, entry_index: usize, family: Family) -> Option<IpSet> {
    let sources: Vec<IpNet> = entry
        .sources
        .iter()
        .filter(|s| family.holds(s))
        .copied()
        .collect();
    if sources.len() < SET_THRESHOLD || sources.iter().any(|s| s.prefix_len() == 0) {
        return None;
    }
    let members = normalised(sources);
    Some(IpSet {
        name: set_name(entry_index, family),
        family,
        kind: SET_TYPE.into(),
        maxelem: maxelem_for(members.len()),
        members,
        unreadable: Vec::new(),
    })
}

/// Each set's members by name, for the exposure analysis; a set holding anything but plain
/// networks is left out (its rules stay unknown there).
pub fn members_by_name(sets: &[IpSet]) -> std::collections::BTreeMap<String, Vec<IpNet>> {
    sets.iter()
        .filter(|s| s.unreadable.is_empty())
        .map(|s| (s.name.clone(), s.members.clone()))
        .collect()
}

/// Every set the allow entries need in these families.
pub fn desired_sets(allow: &[AllowEntry], families: &[Family]) -> Vec<IpSet> {
    let mut sets = Vec::new();
    for (index, entry) in allow.iter().enumerate() {
        for &family in families {
            sets.extend(entry_set(entry, index, family));
        }
    }
    sets
}

/// Room for the members with some to spare, in steps that rarely change between runs.
fn maxelem_for(members: usize) -> usize {
    members.next_power_of_two().max(1024)
}

/// Sorted by address then prefix length, duplicates and networks inside another member
/// dropped: they never change what the set matches, and fewer elements is less kernel memory.
/// Sorted that way, a covering network comes before everything it covers, and CIDRs either nest
/// or do not overlap, so comparing with the last kept member is enough.
pub fn normalised(mut nets: Vec<IpNet>) -> Vec<IpNet> {
    nets.sort_by_key(|n| (n.network(), n.prefix_len()));
    let mut kept: Vec<IpNet> = Vec::with_capacity(nets.len());
    for net in nets {
        match kept.last() {
            Some(last) if last.contains(&net) => {}
            _ => kept.push(net),
        }
    }
    kept
}

/// What the sets need: created or refilled (before the rules that use them), and destroyed
/// (after the rules that used them are gone: the kernel refuses to destroy a set in use).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetPlan {
    /// Desired sets missing or different live, and whether a set of that name exists.
    pub fill: Vec<(IpSet, bool)>,
    /// Leftover temporary sets of an interrupted run, destroyed before anything else.
    pub stale_temps: Vec<String>,
    /// Our sets no longer wanted.
    pub destroy: Vec<String>,
}

impl SetPlan {
    pub fn is_empty(&self) -> bool {
        self.fill.is_empty() && self.stale_temps.is_empty() && self.destroy.is_empty()
    }

    /// The plan's operations in words, for the report.
    pub fn actions(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .stale_temps
            .iter()
            .map(|n| format!("destroy leftover set {n}"))
            .collect();
        for (set, exists) in &self.fill {
            let verb = if *exists { "refill" } else { "create" };
            out.push(format!(
                "{verb} set {} ({} member(s), swapped in whole)",
                set.name,
                set.members.len()
            ));
        }
        out.extend(self.destroy.iter().map(|n| format!("destroy set {n}")));
        out
    }

    /// `ipset restore` input run before the iptables rules: each set is filled under its
    /// temporary name, then swapped with (or renamed to) its own, so no rule ever sees it half
    /// filled. Empty when there is nothing to fill.
    pub fn fill_script(&self) -> String {
        let mut out = String::new();
        for name in &self.stale_temps {
            out.push_str(&format!("destroy {name}\n"));
        }
        for (set, exists) in &self.fill {
            let temp = set.temp_name();
            out.push_str(&script::create_line(set, &temp));
            for member in &set.members {
                out.push_str(&format!("add {temp} {}\n", script::member_text(member)));
            }
            if *exists {
                out.push_str(&format!("swap {temp} {}\ndestroy {temp}\n", set.name));
            } else {
                out.push_str(&format!("rename {temp} {}\n", set.name));
            }
        }
        out
    }

    /// `ipset restore` input run after the iptables rules no longer use the sets.
    pub fn destroy_script(&self) -> String {
        self.destroy
            .iter()
            .map(|n| format!("destroy {n}\n"))
            .collect()
    }
}

/// From the live sets of ours to the desired ones.
pub fn plan_sets(live: &[IpSet], desired: &[IpSet]) -> SetPlan {
    let mut plan = SetPlan::default();
    for set in live.iter().filter(|s| is_temp(&s.name)) {
        plan.stale_temps.push(set.name.clone());
    }
    for want in desired {
        match live.iter().find(|l| l.name == want.name) {
            Some(have) if have == want => {}
            Some(_) => plan.fill.push((want.clone(), true)),
            None => plan.fill.push((want.clone(), false)),
        }
    }
    for have in live.iter().filter(|s| !is_temp(&s.name)) {
        if !desired.iter().any(|d| d.name == have.name) {
            plan.destroy.push(have.name.clone());
        }
    }
    plan
}

#[cfg(test)]
mod tests;
