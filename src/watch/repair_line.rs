//! The one log line a converge that changed something writes: what triggered it, and per family
//! what was done, short enough to read in the journal.

use crate::module::Report;

/// None when nothing was changed.
pub fn describe(reason: &str, report: &Report) -> Option<String> {
    if !report.changed {
        return None;
    }
    let mut parts = Vec::new();
    for (family, actions) in &report.plan {
        if actions.is_empty() {
            continue;
        }
        let shown: Vec<String> = actions.iter().take(4).map(|a| short(a)).collect();
        let more = actions.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!(" (+{more} more)")
        } else {
            String::new()
        };
        parts.push(format!("{family}: {}{tail}", shown.join("; ")));
    }
    for file in &report.persisted {
        parts.push(format!("wrote {file}"));
    }
    let verb = if reason == "start" {
        "applied"
    } else {
        "repaired"
    };
    Some(format!("{verb} ({reason}): {}", parts.join(" | ")))
}

/// A hook action without its rule text: "filter: insert hook at DOCKER-USER #1".
fn short(action: &str) -> String {
    match action.find(" hook at ") {
        Some(at) => {
            let rest = &action[at..];
            let end = rest.find(": ").map_or(action.len(), |i| at + i);
            action[..end].to_string()
        }
        None => action.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn hook_actions_lose_their_rule_text() {
        assert_eq!(
            short("filter: insert hook at DOCKER-USER #1: -m comment --comment x -j DFW-INGRESS"),
            "filter: insert hook at DOCKER-USER #1"
        );
        assert_eq!(
            short("filter: rewrite chain DFW-INGRESS-POLICY (3 rules)"),
            "filter: rewrite chain DFW-INGRESS-POLICY (3 rules)"
        );
    }
}
