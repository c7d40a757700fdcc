//! Our own nftables table (the nftables dataplane) on the packet's path. Its typed rules compile
//! into the walk's rules, so the verdicts name our rules as they name iptables'. Base chains sit
//! where their priorities put them: `prerouting` (dstnat - 10) after mangle and before nat's
//! DNAT, `forward` and `input` (filter - 10) after mangle and before filter. As in the kernel, an
//! accept or the end of one of our base chains lets the packet go on; a drop is final.
//! Only a table known to be live (read back equal to the one the policy gives) is modelled.

use super::matcher::{Compiled, Target, Test};
use super::sources::SourceSet;
use super::walk::Table;
use crate::core::nft::{self, Action, Match, SetKind};
use crate::core::policy::{Family, PortRange};
use ipnet::IpNet;
use std::borrow::Cow;
use std::collections::HashMap;

/// How the walk names our table (`nft list` names it so too).
pub const OWN_TABLE: &str = "inet docker_firewall";

/// Our table's chains for packets of `family`, with base chains' policy accept.
pub fn compile_table(family: Family, table: &nft::Table) -> Table<'static> {
    let sets: HashMap<&str, (Family, &[IpNet])> = table
        .sets
        .iter()
        .filter_map(|s| match &s.kind {
            SetKind::Addresses { family, elements } => {
                Some((s.name.as_str(), (*family, elements.as_slice())))
            }
            SetKind::Meter { .. } => None,
        })
        .collect();
    let chains = table
        .chains
        .iter()
        .map(|c| {
            let policy = if c.hook.is_some() { "ACCEPT" } else { "-" };
            let rules = c.rules.iter().map(|r| compile_rule(family, r, &sets));
            (Cow::Borrowed(c.name), (policy, rules.collect()))
        })
        .collect();
    Table {
        name: OWN_TABLE,
        chains,
        nftables: true,
    }
}

fn compile_rule(
    family: Family,
    rule: &nft::Rule,
    sets: &HashMap<&str, (Family, &[IpNet])>,
) -> Compiled<'static> {
    let mut sources = SourceSet::all(family);
    let mut tests = Vec::new();
    let range = |p: &PortRange| (p.first, p.last);
    for m in &rule.matches {
        match m {
            Match::Replies => {
                let states = vec!["ESTABLISHED".into(), "RELATED".into()];
                tests.push((Test::State(states), false));
            }
            Match::Family(f) => tests.push((Test::Fixed(*f == family), false)),
            Match::InInterface(p) => tests.push((Test::In(p.clone()), false)),
            Match::OutInterface(p) => tests.push((Test::Out(p.clone()), false)),
            Match::LocalDestination => tests.push((Test::DstType(vec!["LOCAL".into()]), false)),
            Match::DestinationPorts(proto, ports) => {
                tests.push((Test::Proto(proto.clone()), false));
                tests.push((Test::Dport(ports.iter().map(range).collect()), false));
            }
            Match::Proto(p) => tests.push((Test::Proto(p.clone()), false)),
            Match::OriginalPort(p) => tests.push((Test::OrigDport(vec![range(p)]), false)),
            Match::OriginalAddress(a) => tests.push((Test::OrigDst(vec![IpNet::from(*a)]), false)),
            Match::Source(net) if !family.holds(net) => tests.push((Test::Fixed(false), false)),
            Match::Source(net) => sources = sources.intersect(&SourceSet::of_net(family, net)),
            Match::SourceSet(f, _) if *f != family => tests.push((Test::Fixed(false), false)),
            Match::SourceSet(_, name) => match sets.get(name.as_str()) {
                Some((_, elements)) => {
                    let mut set = SourceSet::empty(family);
                    for net in *elements {
                        set.add(&SourceSet::of_net(family, net));
                    }
                    sources = sources.intersect(&set);
                }
                None => tests.push((Test::Unknown(format!("saddr @{name}")), false)),
            },
            Match::Destinations(f, _) if *f != family => tests.push((Test::Fixed(false), false)),
            Match::Destinations(_, nets) => tests.push((Test::Dst(nets.clone()), false)),
            // the first packet of a published port's connection is TCP or UDP, never ICMPv6
            Match::Icmpv6Types(_) => tests.push((Test::Fixed(false), false)),
            Match::Portless => {
                tests.push((Test::Proto("tcp".into()), true));
                tests.push((Test::Proto("udp".into()), true));
            }
        }
    }
    let target = match &rule.action {
        Action::Return => Target::Return,
        Action::Accept => Target::Accept,
        Action::Jump(chain) => Target::Jump((*chain).to_string()),
        Action::Drop | Action::RejectTcpReset | Action::RejectUnreachable => Target::Drop,
        Action::LogPerFlow { .. } | Action::LogLimited { .. } => Target::GoesOn,
    };
    Compiled {
        spec: Cow::Owned(rule.nft_body()),
        sources,
        tests,
        target,
    }
}
