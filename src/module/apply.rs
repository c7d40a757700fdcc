//! Writing: one restore per family, the read-back that must plan to nothing, the rules files, and
//! the roll-back that puts everything as it was when a step fails.

use super::read::parse_saved;
use super::{FamilyRun, FileChange};
use crate::core::owned::LiveState;
use crate::core::plan::{plan, rollback_input};
use crate::core::policy::{Backend, Family};
use crate::core::save::Ruleset;
use crate::system::{CommandError, System};
use anyhow::{Context, Result, anyhow};
use std::path::Path;

fn restore_failure(family: Family, error: &CommandError, input: &str) -> anyhow::Error {
    let line = failing_line(&error.stderr);
    with_failing_line(format!("{}: {error}", family.name()), line, input)
}

/// `msg`, and line `line` of `input` (the line the failed command's stderr names: iptables-restore,
/// ipset restore, nft -f), as "; input line N: TEXT".
pub(super) fn with_failing_line(
    mut msg: String,
    line: Option<usize>,
    input: &str,
) -> anyhow::Error {
    if let Some(line) = line
        && let Some(text) = input.lines().nth(line.saturating_sub(1))
    {
        msg.push_str(&format!("; input line {line}: {}", text.trim()));
    }
    anyhow!(msg)
}

/// The line number in "line N failed" / "line N: ..." messages of iptables-restore.
/// Both backends' forms: "line 5 failed", "line 5: RULE_APPEND failed", "Error occurred at line: 5";
/// ipset's "Error in line 5: ...".
pub(super) fn failing_line(stderr: &str) -> Option<usize> {
    stderr.match_indices("line").find_map(|(at, _)| {
        let rest = stderr[at + 4..].trim_start_matches([':', ' ']);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// One restore per family that has work; then every applied family is read back and must plan
/// to nothing. Any failure undoes the families already applied.
pub(super) fn apply(runs: &mut [FamilyRun], system: &dyn System, backend: Backend) -> Result<()> {
    let mut applied = Vec::new();
    for (index, r) in runs.iter().enumerate() {
        if r.plan.is_empty() {
            continue;
        }
        let input = r.plan.restore_input();
        if let Err(e) = system.restore(r.family, backend, &input) {
            // iptables-restore commits table by table: the tables before the failing one are in.
            applied.push(index);
            let undo = roll_back_some(runs, &applied, system, backend);
            return Err(restore_failure(r.family, &e, &input).context(undo));
        }
        applied.push(index);
    }
    for &index in &applied {
        let family = runs[index].family;
        // Read back only the tables the plan wrote; the others are as read before the run.
        let read_back = (|| -> Result<LiveState> {
            let mut after = runs[index].live.clone();
            for t in &runs[index].plan.tables {
                let text = system.save_table(family, backend, &t.table)?;
                let parsed = parse_saved(&text, family, backend)?;
                let single = Ruleset {
                    tables: parsed
                        .tables
                        .into_iter()
                        .filter(|x| x.name == t.table)
                        .collect(),
                };
                let live = LiveState::from_ruleset(&single);
                after.tables.remove(&t.table);
                after.tables.extend(live.tables);
            }
            Ok(after)
        })();
        let verdict = read_back.and_then(|after| {
            let left = plan(&after, &runs[index].desired);
            if left.is_empty() {
                Ok(after)
            } else {
                Err(anyhow!(
                    "{}: the rules read back after iptables-restore differ from the plan; still to do: {}",
                    family.name(),
                    left.actions().join("; ")
                ))
            }
        });
        match verdict {
            Ok(after) => runs[index].after = Some(after),
            Err(e) => {
                let undo = roll_back_some(runs, &applied, system, backend);
                return Err(e.context(undo));
            }
        }
    }
    Ok(())
}

/// Writes the rules files that change. If one cannot be written, the ones already written are put
/// back as they were, so that no file keeps a policy the live ruleset is rolled back from.
pub(super) fn persist(
    files: &[&FileChange],
    system: &dyn System,
    persisted: &mut Vec<String>,
) -> Result<()> {
    let mut written: Vec<&FileChange> = Vec::new();
    for &file in files {
        if !file.changes() {
            continue;
        }
        if let Err(e) = write_content(system, &file.path, file.after.as_deref()) {
            let undo = written
                .iter()
                .map(
                    |w| match write_content(system, &w.path, w.before.as_deref()) {
                        Ok(()) => format!("{} put back", w.path.display()),
                        Err(e) => format!("putting back {} FAILED: {e:#}", w.path.display()),
                    },
                )
                .collect::<Vec<_>>();
            persisted.clear();
            return Err(if undo.is_empty() {
                e
            } else {
                e.context(undo.join(", "))
            });
        }
        written.push(file);
        persisted.push(file.path.display().to_string());
    }
    Ok(())
}

/// Makes the file hold `content`, or removes it for `None`.
fn write_content(system: &dyn System, path: &Path, content: Option<&str>) -> Result<()> {
    let shown = path.display();
    match content {
        Some(content) => system
            .write_file(path, content)
            .with_context(|| format!("cannot write {shown}")),
        None => system
            .remove_file(path)
            .with_context(|| format!("cannot remove {shown}")),
    }
}

pub(super) fn roll_back(runs: &[FamilyRun], system: &dyn System, backend: Backend) -> String {
    let all: Vec<usize> = (0..runs.len())
        .filter(|i| !runs[*i].plan.is_empty())
        .collect();
    roll_back_some(runs, &all, system, backend)
}

/// Puts the given families back to what we owned before the run; says what happened.
fn roll_back_some(
    runs: &[FamilyRun],
    indices: &[usize],
    system: &dyn System,
    backend: Backend,
) -> String {
    if indices.is_empty() {
        return "nothing was changed".into();
    }
    let mut notes = Vec::new();
    for &index in indices {
        let r = &runs[index];
        let result = (|| -> Result<()> {
            let text = system.save(r.family, backend)?;
            let now = LiveState::from_ruleset(&parse_saved(&text, r.family, backend)?);
            let input = rollback_input(&r.live, &now);
            if !input.is_empty() {
                system
                    .restore(r.family, backend, &input)
                    .map_err(|e| restore_failure(r.family, &e, &input))?;
            }
            Ok(())
        })();
        notes.push(match result {
            Ok(()) => format!("{} rolled back", r.family.name()),
            Err(e) => format!("rolling back {} FAILED: {e:#}", r.family.name()),
        });
    }
    notes.join(", ")
}
