//! The fake's ipset: sets in memory, `ipset restore` replayed line by line as the real tool
//! does (each line takes effect at once: a failing line leaves the lines before it applied),
//! with the kernel's refusals that matter to the order of a run: a set in use by an iptables
//! rule cannot be destroyed, swap needs the same type and family, names are unique.

use super::CommandError;
use super::fake::FakeSystem;
use crate::core::save::split_args;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeSet {
    /// `hash:net family inet`: the type and the family, as created.
    pub kind: String,
    pub family: String,
    pub maxelem: String,
    /// As added (`192.0.2.1` or `192.0.2.0/24`; a `/32` is stored without its length).
    pub members: Vec<String>,
}

pub type FakeSets = BTreeMap<String, FakeSet>;

pub(super) fn run(
    fake: &FakeSystem,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, CommandError> {
    let command = format!("ipset {}", args.join(" "));
    let fail = |stderr: String| CommandError {
        command: command.clone(),
        status: "exit status: 1".into(),
        stderr,
    };
    if !fake.ipset_installed.get() {
        return Err(CommandError {
            command: command.clone(),
            status: "not installed".into(),
            stderr: String::new(),
        });
    }
    match args {
        ["save"] => {
            fake.ipset_full_saves.set(fake.ipset_full_saves.get() + 1);
            Ok(save(&fake.ipsets.borrow()))
        }
        ["save", name] => {
            let sets = fake.ipsets.borrow();
            let set = sets.get_key_value(*name).ok_or_else(|| {
                fail("ipset v7.17: The set with the given name does not exist".into())
            })?;
            Ok(save(
                &std::iter::once((set.0.clone(), set.1.clone())).collect(),
            ))
        }
        ["list", "-n"] => Ok(fake
            .ipsets
            .borrow()
            .keys()
            .map(|n| format!("{n}\n"))
            .collect()),
        ["restore"] => {
            let script = input.unwrap_or_default();
            fake.ipset_inputs.borrow_mut().push(script.to_string());
            for (index, line) in script.lines().enumerate() {
                let number = index + 1;
                let at_line =
                    |why: &str| fail(format!("ipset v7.17: Error in line {number}: {why}"));
                let injected = fake
                    .fail_ipset_line
                    .borrow()
                    .as_ref()
                    .is_some_and(|start| line.starts_with(start.as_str()));
                if injected {
                    fake.fail_ipset_line.replace(None);
                    return Err(at_line("injected failure"));
                }
                apply_line(fake, line).map_err(|why| at_line(&why))?;
            }
            Ok(String::new())
        }
        _ => Err(fail(format!("the fake ipset does not know: {command}"))),
    }
}

fn save(sets: &FakeSets) -> String {
    let mut out = String::new();
    for (name, set) in sets {
        out.push_str(&format!(
            "create {name} {} family {} hashsize 1024 maxelem {} bucketsize 12 initval 0x5eed\n",
            set.kind, set.family, set.maxelem
        ));
        // The kernel lists a hash in its own order, not as added.
        for member in set.members.iter().rev() {
            out.push_str(&format!("add {name} {member}\n"));
        }
    }
    out
}

fn apply_line(fake: &FakeSystem, line: &str) -> Result<(), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut sets = fake.ipsets.borrow_mut();
    match words.as_slice() {
        [] => Ok(()),
        [comment, ..] if comment.starts_with('#') => Ok(()),
        ["create", name, kind, options @ ..] => {
            if sets.contains_key(*name) {
                return Err("Set cannot be created: set with the same name already exists".into());
            }
            let option = |key: &str| {
                options
                    .windows(2)
                    .find(|w| w[0] == key)
                    .map_or(String::new(), |w| w[1].to_string())
            };
            let set = FakeSet {
                kind: kind.to_string(),
                family: option("family"),
                maxelem: option("maxelem"),
                members: Vec::new(),
            };
            sets.insert(name.to_string(), set);
            Ok(())
        }
        ["add", name, member] => {
            let set = sets
                .get_mut(*name)
                .ok_or("The set with the given name does not exist")?;
            let member = member.strip_suffix("/32").unwrap_or(member);
            let member = member.strip_suffix("/128").unwrap_or(member);
            if set.members.iter().any(|m| m == member) {
                return Err("Element cannot be added to the set: it's already added".into());
            }
            set.members.push(member.to_string());
            Ok(())
        }
        ["swap", from, to] => {
            let (Some(a), Some(b)) = (sets.get(*from).cloned(), sets.get(*to).cloned()) else {
                return Err("The set with the given name does not exist".into());
            };
            if a.kind != b.kind || a.family != b.family {
                return Err("The sets cannot be swapped: their type does not match".into());
            }
            sets.insert(from.to_string(), b);
            sets.insert(to.to_string(), a);
            Ok(())
        }
        ["rename", from, to] => {
            if sets.contains_key(*to) {
                return Err("Set cannot be renamed: a set with the new name already exists".into());
            }
            let set = sets
                .remove(*from)
                .ok_or("The set with the given name does not exist")?;
            sets.insert(to.to_string(), set);
            Ok(())
        }
        ["destroy", name] => {
            if !sets.contains_key(*name) {
                return Err("The set with the given name does not exist".into());
            }
            drop(sets);
            if set_in_use(fake, name) {
                return Err("Set cannot be destroyed: it is in use by a kernel component".into());
            }
            fake.ipsets.borrow_mut().remove(*name);
            Ok(())
        }
        _ => Err(format!("the fake ipset does not know: {line}")),
    }
}

/// Whether an iptables rule of any family or backend matches on this set.
pub(super) fn set_in_use(fake: &FakeSystem, name: &str) -> bool {
    let needle = format!("--match-set {name} ");
    fake.netfilter.borrow().values().any(|nf| {
        nf.tables
            .values()
            .any(|t| t.rules.iter().any(|(_, spec)| spec.contains(&needle)))
    })
}

/// The iptables-restore error for the first rule of `input` that matches on a set that does
/// not exist (the real tool refuses it).
pub(super) fn missing_set(fake: &FakeSystem, input: &str) -> Option<String> {
    input.lines().enumerate().find_map(|(index, line)| {
        let args = split_args(line);
        let at = args.iter().position(|a| a == "--match-set")?;
        let name = args.get(at + 1)?;
        let adds = line.starts_with("-A ") || line.starts_with("-I ");
        (adds && !fake.ipsets.borrow().contains_key(name)).then(|| {
            format!(
                "iptables-restore: line {} failed: Set {name} doesn't exist.",
                index + 1
            )
        })
    })
}
