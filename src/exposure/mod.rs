//! The exposure report: for every port Docker publishes, who outside can connect and which rule
//! decides it. Pure: it reads saved rulesets (and, live, what listens on the host) and follows a
//! NEW connection the way netfilter does: raw, mangle and nat PREROUTING (Docker's DNAT), then
//! mangle and filter FORWARD to the container, or mangle and filter INPUT to docker-proxy when
//! the connection is not DNAT-ed. Native nftables tables on the way are walked where their
//! priorities put them: ours (`own_table`) and Docker's nftables backend (`docker_nft`).

mod docker_nft;
mod matcher;
mod nft;
mod own_table;
mod ports;
mod render;
mod simulate;
mod sources;
mod walk;

pub use nft::{ForeignHook, foreign_tables, hooks_in};
pub use own_table::OWN_TABLE;
pub use ports::{Listener, parse_listeners};
pub use render::{port_words, render_text, summary_line, who_can_connect};
pub use simulate::after_restore;

use crate::core::policy::Family;
use crate::core::save::Ruleset;
use matcher::{Dst, Packet};
use ports::{Published, published_ports};
use serde::Serialize;
use sources::SourceSet;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::collections::HashSet;
use std::net::IpAddr;
use walk::{Fate, Piece, Tables, walk_hook};

/// What the analysis is given.
pub struct HostView<'a> {
    pub rulesets: Vec<(Family, Ruleset<'a>)>,
    /// Interfaces outside clients arrive on.
    pub external: Vec<String>,
    /// Container address -> name, where Docker's API told.
    pub names: BTreeMap<IpAddr, String>,
    /// What listens on the host (live); `None`: assume docker-proxy listens on every published
    /// port (Docker's default userland proxy).
    pub listeners: Option<Vec<Listener>>,
    /// Other nftables tables' base chains on the path (live only): verdicts become unknown.
    pub foreign_hooks: Vec<ForeignHook>,
    /// Our own nftables table (the nftables dataplane), where it is known to be live: walked
    /// between iptables' chains at its hooks.
    pub own_table: Option<crate::core::nft::Table>,
    /// Docker's nftables backend: `nft -j list table ip|ip6 docker-bridges`, per family. Its DNAT
    /// rules give published ports, its chains are walked at their hooks.
    pub docker_nft: Vec<(Family, String)>,
    /// What the analysis could not look at, said beside the verdicts.
    pub notes: Vec<String>,
    /// Members of our ipsets (`ipset save`, or the sets a run plans): a `--match-set` on one of
    /// them matches its members; on any other set the verdict is unknown.
    pub sets: SetMembers,
}

/// ipset name -> its networks.
pub type SetMembers = BTreeMap<String, Vec<ipnet::IpNet>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Open,
    Restricted,
    Closed,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortExposure {
    pub family: &'static str,
    pub proto: String,
    pub host_address: String,
    pub host_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port_end: Option<u16>,
    pub container_address: Option<String>,
    pub container_port: Option<u16>,
    pub container: Option<String>,
    /// `forward` (DNAT to the container) or `input` (docker-proxy on the host).
    pub path: &'static str,
    pub verdict: Verdict,
    /// Who can connect (CIDRs); empty when closed or unknown.
    pub sources: Vec<String>,
    /// The rule that decides: what drops the others, or what lets everyone in, or what cannot be
    /// evaluated.
    pub rule: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Summary {
    pub open: usize,
    pub restricted: usize,
    pub closed: usize,
    pub unknown: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exposure {
    pub external_interfaces: Vec<String>,
    pub ports: Vec<PortExposure>,
    pub summary: Summary,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Analyses every published port of every family in `view`.
pub fn analyze(view: &HostView) -> Exposure {
    let mut all_published: Vec<Published> = Vec::new();
    for (family, ruleset) in &view.rulesets {
        all_published.extend(published_ports(*family, ruleset));
    }
    let mut notes = view.notes.clone();
    let mut docker_tables = Vec::new();
    for (family, json) in &view.docker_nft {
        match docker_nft::compile(*family, json) {
            Ok(docker) => {
                all_published.extend(docker.published);
                docker_tables.push((*family, docker.table));
            }
            Err(e) => notes.push(format!(
                "nftables table {} could not be read ({e}): the ports it publishes are not in \
                 this report",
                docker_nft::table_name(*family)
            )),
        }
    }
    let not_local: HashSet<IpAddr> = all_published.iter().map(|p| p.to_addr).collect();
    let mut ports = Vec::new();
    for (family, ruleset) in &view.rulesets {
        let mut tables = Tables::new(*family, ruleset, &view.sets);
        if let Some(own) = &view.own_table {
            tables = tables.with(own_table::compile_table(*family, own));
        }
        if let Some(at) = docker_tables.iter().position(|(f, _)| f == family) {
            tables = tables.with(docker_tables.swap_remove(at).1);
        }
        for row in ports::rows_for(*family, &all_published) {
            ports.push(judge_row(view, *family, &tables, &row, &not_local));
        }
    }
    let mut summary = Summary::default();
    for p in &ports {
        match p.verdict {
            Verdict::Open => summary.open += 1,
            Verdict::Restricted => summary.restricted += 1,
            Verdict::Closed => summary.closed += 1,
            Verdict::Unknown => summary.unknown += 1,
        }
    }
    Exposure {
        external_interfaces: view.external.clone(),
        ports,
        summary,
        notes,
    }
}

fn judge_row(
    view: &HostView,
    family: Family,
    tables: &Tables,
    row: &ports::Row,
    not_local: &HashSet<IpAddr>,
) -> PortExposure {
    let mut pieces = Vec::new();
    let loopback = row.host_addr.is_some_and(|a| a.is_loopback());
    if !loopback {
        for iface in &view.external {
            pieces.extend(follow(view, family, tables, row, iface, not_local));
        }
    }
    let mut reachable = SourceSet::empty(family);
    for piece in pieces.iter().filter(|p| p.fate == Fate::Accept) {
        reachable.add(&piece.sources);
    }
    let unknown = pieces.iter().find(|p| p.fate == Fate::Unknown);
    let first = |fate: Fate| {
        pieces
            .iter()
            .find(|p| p.fate == fate)
            .map(|p| p.rule.clone())
            .unwrap_or_default()
    };
    let (verdict, rule) = if loopback {
        (
            Verdict::Closed,
            "published on a loopback address: not reachable from outside".to_string(),
        )
    } else if let Some(hook) = view.foreign_hooks.iter().find(|h| h.applies_to(family)) {
        (Verdict::Unknown, hook.describe())
    } else if view.external.is_empty() {
        (
            Verdict::Unknown,
            "no external interface known (pass --external)".to_string(),
        )
    } else if let Some(u) = unknown {
        (Verdict::Unknown, u.rule.clone())
    } else if reachable.is_empty() {
        (Verdict::Closed, first(Fate::Drop))
    } else if reachable.is_all() {
        (Verdict::Open, first(Fate::Accept))
    } else {
        (Verdict::Restricted, first(Fate::Drop))
    };
    let sources = match verdict {
        Verdict::Open | Verdict::Restricted => {
            reachable.cidrs().iter().map(ToString::to_string).collect()
        }
        _ => Vec::new(),
    };
    let any = match family {
        Family::Ipv4 => "0.0.0.0",
        Family::Ipv6 => "::",
    };
    PortExposure {
        family: family.name(),
        proto: row.proto.clone(),
        host_address: row
            .host_addr
            .map_or_else(|| any.to_string(), |a| a.to_string()),
        host_port: row.host_port,
        host_port_end: row.host_port_end,
        container_address: row.to.map(|(a, _)| a.to_string()),
        container_port: row.to.map(|(_, p)| p),
        container: row.to.and_then(|(a, _)| view.names.get(&a).cloned()),
        path: if row.to.is_some() { "forward" } else { "input" },
        verdict,
        sources,
        rule,
    }
}

/// The final fates (accept, drop, unknown) of a NEW connection from `iface` to the row's port.
fn follow(
    view: &HostView,
    family: Family,
    tables: &Tables,
    row: &ports::Row,
    iface: &str,
    not_local: &HashSet<IpAddr>,
) -> Vec<Piece> {
    let host_dst = row.host_addr.map_or(Dst::AnyLocal, Dst::Addr);
    let arriving = Packet {
        family,
        proto: row.proto.clone(),
        in_iface: iface.to_string(),
        out_iface: None,
        dst: host_dst.clone(),
        dport: row.host_port,
        orig_dst: host_dst.clone(),
        orig_dport: row.host_port,
        dnatted: false,
        not_local,
        marks_unknown: Cell::new(false),
    };
    let mut done = Vec::new();
    let mut travelling = accepted(SourceSet::all(family), "");
    let docker = docker_nft::table_name(family);
    let prerouting = [
        ("raw", "PREROUTING"),
        (docker, "raw-PREROUTING"),
        ("mangle", "PREROUTING"),
        (OWN_TABLE, "prerouting"),
    ];
    for (table, chain) in prerouting {
        travelling = through(tables, table, chain, &arriving, travelling, &mut done);
    }
    // nat PREROUTING (iptables', then Docker's nftables backend's): Docker's DNAT sends the
    // connection to the container, anything else leaves it addressed to the host
    let mut forward = SourceSet::empty(family);
    for (table, chain) in [("nat", "PREROUTING"), (docker, "nat-PREROUTING")] {
        let mut not_dnatted = Vec::new();
        for arrived in travelling {
            for piece in walk_hook(tables.table(table), chain, &arriving, arrived.sources) {
                match &piece.fate {
                    Fate::Accept => not_dnatted.push(piece),
                    Fate::Dnat(to) if row.to.is_some_and(|t| ports::same_target(to, t)) => {
                        forward.add(&piece.sources)
                    }
                    Fate::Dnat(to) => done.push(Piece {
                        fate: Fate::Unknown,
                        rule: format!("{} (DNAT to {to}, not the published container)", piece.rule),
                        ..piece.clone()
                    }),
                    _ => done.push(piece),
                }
            }
        }
        travelling = not_dnatted;
    }
    let mut input = SourceSet::empty(family);
    for piece in travelling {
        input.add(&piece.sources);
    }
    if let (false, Some((addr, port))) = (forward.is_empty(), row.to) {
        let routed = Packet {
            out_iface: row.bridge.clone(),
            dst: Dst::Addr(addr),
            dport: port,
            dnatted: true,
            ..arriving.clone()
        };
        // named by the last rule that accepts it, or by this when no chain on the way has rules
        let mut left = accepted(
            forward,
            "forwarded to the container: no rule on the path stops it",
        );
        for (table, chain) in [
            ("mangle", "FORWARD"),
            (OWN_TABLE, "forward"),
            ("filter", "FORWARD"),
            (docker, "filter-FORWARD"),
        ] {
            left = through(tables, table, chain, &routed, left, &mut done);
        }
        done.extend(left);
    }
    if !input.is_empty() {
        let mut left = accepted(
            input,
            &format!(
                "no rule on the path stops it, and a process on the host (docker-proxy) listens \
                 on port {}",
                row.host_port
            ),
        );
        for (table, chain) in [
            ("mangle", "INPUT"),
            (OWN_TABLE, "input"),
            ("filter", "INPUT"),
        ] {
            left = through(tables, table, chain, &arriving, left, &mut done);
        }
        let listens = view
            .listeners
            .as_ref()
            .is_none_or(|l| ports::listens(l, family, &row.proto, row.host_addr, row.host_port));
        for piece in left {
            done.push(if listens {
                piece
            } else {
                Piece {
                    fate: Fate::Drop,
                    rule: format!(
                        "not DNAT-ed, and nothing listens on the host's port {}",
                        row.host_port
                    ),
                    ..piece
                }
            });
        }
    }
    done
}

/// Sources on their way, named by `rule` until a chain with rules accepts them.
fn accepted(sources: SourceSet, rule: &str) -> Vec<Piece> {
    vec![Piece {
        sources,
        fate: Fate::Accept,
        rule: rule.to_string(),
    }]
}

/// Walks one built-in chain for every travelling piece: accepted ones travel on (named by the
/// last rule that accepted them, where a chain has rules), the rest is done.
fn through(
    tables: &Tables,
    table: &str,
    chain: &str,
    pkt: &Packet,
    travelling: Vec<Piece>,
    done: &mut Vec<Piece>,
) -> Vec<Piece> {
    let mut next = Vec::new();
    for arrived in travelling {
        for piece in walk_hook(tables.table(table), chain, pkt, arrived.sources) {
            match piece.fate {
                // our table never accepts: what it lets go on is named by what comes next
                Fate::Accept if piece.rule.ends_with(": no rules") || table == OWN_TABLE => next
                    .push(Piece {
                        rule: arrived.rule.clone(),
                        ..piece
                    }),
                Fate::Accept => next.push(piece),
                Fate::Dnat(_) => done.push(Piece {
                    fate: Fate::Unknown,
                    ..piece
                }),
                _ => done.push(piece),
            }
        }
    }
    next
}

#[cfg(test)]
mod tests;
