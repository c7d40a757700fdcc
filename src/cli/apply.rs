//! `docker_firewall apply`: the module's job from a policy file, for people and scripts.

use crate::module::{self, DiffEntry, Report, policy_file};
use crate::system::process::RealSystem;
use std::path::Path;

pub const EXIT_UNCHANGED: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_CHANGED: i32 = 2;

pub fn run(policy: &Path, check: bool, diff: bool, json: bool) -> i32 {
    let system = RealSystem;
    let outcome = policy_file::load(policy, &system).and_then(|mut config| {
        config.check_mode = check;
        config.diff = diff || config.diff;
        module::run(&config, &system)
    });
    match outcome {
        Ok(report) => {
            if json {
                match serde_json::to_string(&report) {
                    Ok(text) => say(&format!("{text}\n")),
                    Err(e) => {
                        complain(&format!("docker_firewall: cannot encode the result: {e}\n"));
                        return EXIT_FAILED;
                    }
                }
            } else {
                say(&human_summary(&report));
            }
            if report.changed {
                EXIT_CHANGED
            } else {
                EXIT_UNCHANGED
            }
        }
        Err(e) => {
            if json {
                say(&format!("{}\n", module::failure(&format!("{e:#}"))));
            }
            complain(&format!("docker_firewall: {e:#}\n"));
            EXIT_FAILED
        }
    }
}

/// Writes to stdout; a reader that went away (`| head`) is not worth a panic.
pub(crate) fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

pub(crate) fn complain(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// What a person wants to read: the diff (when asked), the summary line, the warnings.
pub fn human_summary(report: &Report) -> String {
    let mut out = String::new();
    for entry in report.diff.iter().flatten() {
        out.push_str(&unified(entry));
    }
    let place = match report.dataplane.as_str() {
        "nftables" => "dataplane nftables".to_string(),
        _ => format!("backend {}", report.backend),
    };
    out.push_str(&format!("{} ({place})\n", report.msg));
    for change in &report.exposure_changes {
        out.push_str(&format!("exposure: {change}\n"));
    }
    for warning in &report.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    out
}

fn unified(entry: &DiffEntry) -> String {
    similar::TextDiff::from_lines(&entry.before, &entry.after)
        .unified_diff()
        .context_radius(3)
        .header(&entry.before_header, &entry.after_header)
        .to_string()
}
