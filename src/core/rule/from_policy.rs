//! The rules the policy describes, written once for both dataplanes. A dataplane decides where
//! they hang (its chains and hooks) and how an entry's addresses are grouped (one rule per
//! source, an ipset, an nft set); what they match and what they do is decided here.

use super::{Action, Match, Rule};
use crate::core::policy::{AllowEntry, Config, EgressAllow, PortRange, Verdict};

/// Packets of connections already let through pass.
pub fn replies() -> Rule {
    Rule::new(vec![Match::Replies], Action::Return)
}

/// The allow rules of one `ingress.allow` entry: one per source match and port, each returning
/// to Docker's rules. Ports are the published host ports, matched on the connection's original
/// destination, which DNAT keeps. `sources` are the entry's source matches in one family: a
/// `Source` per address, one `SourceSet`, or `Family` when the entry allows every source.
pub fn entry_allows(entry: &AllowEntry, sources: &[Match]) -> Vec<Rule> {
    let ports: Vec<Option<PortRange>> = if entry.ports.is_empty() {
        vec![None]
    } else {
        entry.ports.iter().copied().map(Some).collect()
    };
    let mut rules = Vec::with_capacity(sources.len() * ports.len());
    for source in sources {
        for port in &ports {
            let mut matches = vec![source.clone(), Match::Proto(entry.proto.name().into())];
            matches.extend(entry.destination.map(Match::OriginalAddress));
            matches.extend(port.map(Match::OriginalPort));
            rules.push(Rule::new(matches, Action::Return).with_note(entry.comment.as_deref()));
        }
    }
    rules
}

/// The rule of an `egress.allow` entry for `destinations`: on its destination ports, or on its
/// protocol when it names no port.
pub fn egress_allow(entry: &EgressAllow, destinations: Match, ports: Vec<PortRange>) -> Rule {
    let proto = entry.proto.name().to_string();
    let on = if ports.is_empty() {
        Match::Proto(proto)
    } else {
        Match::DestinationPorts(proto, ports)
    };
    Rule::new(vec![destinations, on], Action::Return).with_note(entry.comment.as_deref())
}

/// How a deny chain ends: in audit mode traffic goes on (RETURN); otherwise it is dropped, or
/// rejected where the policy asks for it and `can_reject` (ingress, in a table that has REJECT).
pub fn deny_verdict(config: &Config, can_reject: bool) -> Vec<Rule> {
    if config.audit {
        return vec![Rule::always(Action::Return)];
    }
    if can_reject && config.ingress.default == Verdict::Reject {
        return vec![
            Rule::new(vec![Match::Proto("tcp".into())], Action::RejectTcpReset),
            Rule::always(Action::RejectUnreachable),
        ];
    }
    vec![Rule::always(Action::Drop)]
}

/// The prefix of a deny chain's log lines: `<log.prefix><in|out>-<drop|audit> `.
pub fn log_prefix(config: &Config, direction: &str) -> String {
    let mode = if config.audit { "audit" } else { "drop" };
    format!("{}{direction}-{mode} ", config.log.prefix)
}
