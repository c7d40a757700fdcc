//! Whether one rule matches the packet being followed: a NEW connection from an outside client.
//! Everything about that packet is known except its source address, so a rule either never
//! matches, matches a set of sources, or holds a match we cannot evaluate (then we say so).
//! Rules are compiled once per ruleset: a host with thousands of published ports walks the same
//! chains once per port.

use super::sources::SourceSet;
use crate::core::desired::interface_matches;
use crate::core::policy::Family;
use ipnet::IpNet;
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::net::IpAddr;

/// A destination as a rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dst {
    Addr(IpAddr),
    /// One of the host's own addresses on an external interface (a port published on 0.0.0.0);
    /// known not to be loopback nor any container address.
    AnyLocal,
}

/// The first packet of a connection at one point of its path.
#[derive(Debug, Clone)]
pub struct Packet<'a> {
    pub family: Family,
    pub proto: String,
    pub in_iface: String,
    /// Known on the forward path (the container's bridge); `None` before routing and on INPUT.
    pub out_iface: Option<String>,
    pub dst: Dst,
    pub dport: u16,
    pub orig_dst: Dst,
    pub orig_dport: u16,
    /// Whether nat PREROUTING rewrote the destination.
    pub dnatted: bool,
    /// Container addresses: never one of the host's own (for `-d` against [`Dst::AnyLocal`]).
    pub not_local: &'a HashSet<IpAddr>,
    /// Set once a rule that changes marks caught the packet: from then on marks are not known
    /// (before that, a new connection's packet and conntrack marks are 0).
    pub marks_unknown: Cell<bool>,
}

/// What a rule's matches say about the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// Matches for these sources (empty: never).
    Sources(SourceSet),
    /// Cannot be evaluated for these sources; the text says which match.
    Unknown(SourceSet, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Accept,
    Drop,
    Return,
    Dnat(String),
    Jump(String),
    Goto(String),
    /// LOG and the like: the packet goes on to the next rule.
    GoesOn,
    /// MARK / CONNMARK: goes on, but marks are no longer known.
    SetsMark,
    /// No target: the rule only counts.
    Counts,
}

#[derive(Debug, Clone)]
pub(super) enum Test {
    Dst(Vec<IpNet>),
    In(String),
    Out(String),
    Proto(String),
    Dport(Vec<(u16, u16)>),
    OrigDport(Vec<(u16, u16)>),
    OrigDst(Vec<IpNet>),
    State(Vec<String>),
    Original(bool),
    DstType(Vec<String>),
    SrcUnicast(bool),
    Mark(u32, u32),
    Fixed(bool),
    Unknown(String),
}

/// A rule, parsed once.
#[derive(Debug, Clone)]
pub struct Compiled<'a> {
    pub spec: Cow<'a, str>,
    /// The sources its `-s` / `--ctorigsrc` matches allow (all when it has none).
    pub(super) sources: SourceSet,
    pub(super) tests: Vec<(Test, bool)>,
    pub target: Target,
}

const GOES_ON: [&str; 9] = [
    "LOG", "NFLOG", "ULOG", "TRACE", "AUDIT", "SET", "CLASSIFY", "TCPMSS", "DSCP",
];

pub fn compile<'a>(family: Family, spec: &'a str, sets: &super::SetMembers) -> Compiled<'a> {
    let args = crate::core::save::split_args(spec);
    let split = args
        .iter()
        .position(|a| matches!(a.as_str(), "-j" | "--jump" | "-g" | "--goto"));
    let (matches, target) = match split {
        Some(i) => (&args[..i], target_of(&args[i..])),
        None => (&args[..], Target::Counts),
    };
    let mut sources = SourceSet::all(family);
    let mut tests = Vec::new();
    let mut module = String::new();
    let mut i = 0;
    while i < matches.len() {
        let negated = matches[i] == "!";
        if negated {
            i += 1;
        }
        let Some(option) = matches.get(i) else { break };
        let value = matches.get(i + 1).map(String::as_str).unwrap_or("");
        let mut consumed = 2;
        let test = match option.as_str() {
            "--syn" => {
                consumed = 1;
                Some(Test::Proto("tcp".into()))
            }
            "-f" | "--fragment" => {
                consumed = 1;
                Some(Test::Fixed(false))
            }
            "-m" | "--match" => {
                module = value.to_string();
                // `-m rt` (IPv6 routing header): a client's SYN carries no extension header
                (module == "rt").then_some(Test::Fixed(false))
            }
            "-s" | "--source" | "--ctorigsrc" => match parse_nets(value) {
                Some(nets) => {
                    let mut set = SourceSet::empty(family);
                    for n in &nets {
                        set.add(&SourceSet::of_net(family, n));
                    }
                    let set = if negated { set.complement() } else { set };
                    sources = sources.intersect(&set);
                    None
                }
                None => Some(Test::Unknown(format!("{option} {value}"))),
            },
            "-d" | "--destination" | "--ctorigdst" => match parse_nets(value) {
                Some(nets) if option == "--ctorigdst" => Some(Test::OrigDst(nets)),
                Some(nets) => Some(Test::Dst(nets)),
                None => Some(Test::Unknown(format!("{option} {value}"))),
            },
            "-i" | "--in-interface" => Some(Test::In(value.into())),
            "-o" | "--out-interface" => Some(Test::Out(value.into())),
            "-p" | "--protocol" | "--ctproto" => Some(Test::Proto(value.into())),
            "--dport" | "--destination-port" | "--dports" | "--destination-ports" => {
                ports(value).map(Test::Dport)
            }
            "--ctorigdstport" => ports(value).map(Test::OrigDport),
            "--ctdir" => Some(Test::Original(value == "ORIGINAL")),
            "--ctstate" | "--state" => {
                Some(Test::State(value.split(',').map(String::from).collect()))
            }
            "--dst-type" => Some(Test::DstType(value.split(',').map(String::from).collect())),
            "--src-type" => Some(Test::SrcUnicast(value.split(',').any(|t| t == "UNICAST"))),
            "--mark" if module == "mark" || module == "connmark" => Some(mark(value)),
            "--limit-iface-in" | "--limit-iface-out" => {
                consumed = 1;
                Some(Test::Unknown(format!("-m addrtype {option}")))
            }
            "--tcp-flags" => {
                let set = matches.get(i + 2).map(String::as_str).unwrap_or("");
                consumed = 3;
                Some(Test::Fixed(syn_flags(value, set)))
            }
            "--comment" => None,
            // Our sets' members are known; a set of someone else's, or matched on anything but
            // the source address, is not.
            "--match-set" => {
                let flags = matches.get(i + 2).map(String::as_str).unwrap_or("");
                consumed = 3;
                match sets.get(value).filter(|_| flags == "src") {
                    Some(members) => {
                        let mut set = SourceSet::empty(family);
                        for n in members.iter().filter(|n| family.holds(n)) {
                            set.add(&SourceSet::of_net(family, n));
                        }
                        let set = if negated { set.complement() } else { set };
                        sources = sources.intersect(&set);
                        None
                    }
                    None => Some(Test::Unknown(format!("-m set --match-set {value} {flags}"))),
                }
            }
            _ => Some(Test::Unknown(format!(
                "{}{option} {value}",
                if module.is_empty() {
                    String::new()
                } else {
                    format!("-m {module} ")
                }
            ))),
        };
        // an unparsable port list is not something to guess about
        let test = match (option.as_str(), test) {
            (
                "--dport"
                | "--destination-port"
                | "--dports"
                | "--destination-ports"
                | "--ctorigdstport",
                None,
            ) => Some(Test::Unknown(format!("{option} {value}"))),
            (_, t) => t,
        };
        if let Some(test) = test {
            tests.push((test, negated));
        }
        i += consumed;
    }
    Compiled {
        spec: Cow::Borrowed(spec),
        sources,
        tests,
        target,
    }
}

fn target_of(args: &[String]) -> Target {
    let name = args.get(1).map(String::as_str).unwrap_or("");
    let goto = matches!(args[0].as_str(), "-g" | "--goto");
    match name {
        "ACCEPT" => Target::Accept,
        "DROP" | "REJECT" => Target::Drop,
        "RETURN" => Target::Return,
        "DNAT" => Target::Dnat(
            args.windows(2)
                .find(|w| w[0] == "--to-destination")
                .map(|w| w[1].clone())
                .unwrap_or_default(),
        ),
        "MARK" | "CONNMARK" => Target::SetsMark,
        n if GOES_ON.contains(&n) => Target::GoesOn,
        n if goto => Target::Goto(n.into()),
        n => Target::Jump(n.into()),
    }
}

impl Compiled<'_> {
    /// The sources this rule matches for `pkt`.
    pub fn evaluate(&self, pkt: &Packet) -> Cond {
        let mut unknown: Option<String> = None;
        for (test, negated) in &self.tests {
            match run(test, pkt) {
                Some(result) => {
                    if result == *negated {
                        return Cond::Sources(SourceSet::empty(pkt.family));
                    }
                }
                None => {
                    if unknown.is_none() {
                        unknown = Some(describe(test, *negated));
                    }
                }
            }
        }
        match unknown {
            Some(why) => Cond::Unknown(self.sources.clone(), why),
            None => Cond::Sources(self.sources.clone()),
        }
    }
}

fn describe(test: &Test, negated: bool) -> String {
    let text = match test {
        Test::Unknown(text) => text.clone(),
        Test::Dst(nets) | Test::OrigDst(nets) => format!(
            "-d {} (which of the host's addresses is not known)",
            nets.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
        Test::Out(name) => format!("-o {name} before routing"),
        Test::Mark(v, m) => format!("--mark {v:#x}/{m:#x} after a rule set marks"),
        other => format!("{other:?}"),
    };
    if negated { format!("! {text}") } else { text }
}

/// `Some(matches)`, or `None` when it cannot be known.
fn run(test: &Test, pkt: &Packet) -> Option<bool> {
    Some(match test {
        Test::Dst(nets) => dst_matches(&pkt.dst, nets, pkt)?,
        Test::OrigDst(nets) => dst_matches(&pkt.orig_dst, nets, pkt)?,
        Test::In(pattern) => interface_matches(pattern, &pkt.in_iface),
        Test::Out(pattern) => interface_matches(pattern, pkt.out_iface.as_deref()?),
        Test::Proto(p) => proto_matches(p, &pkt.proto),
        Test::Dport(ranges) => in_ranges(ranges, pkt.dport),
        Test::OrigDport(ranges) => in_ranges(ranges, pkt.orig_dport),
        Test::State(states) => states
            .iter()
            .any(|s| s == "NEW" || (s == "DNAT" && pkt.dnatted)),
        Test::Original(original) => *original,
        Test::DstType(types) => {
            let mut any = false;
            for kind in types {
                any |= match kind.as_str() {
                    "LOCAL" => is_local(&pkt.dst, pkt),
                    "UNICAST" => true,
                    "MULTICAST" | "BROADCAST" | "ANYCAST" | "BLACKHOLE" | "UNREACHABLE"
                    | "PROHIBIT" | "THROW" | "NAT" | "XRESOLVE" | "UNSPEC" => false,
                    _ => return None,
                };
            }
            any
        }
        Test::SrcUnicast(unicast) => *unicast,
        Test::Mark(value, _mask) => {
            if pkt.marks_unknown.get() {
                return None;
            }
            // the mark is 0, and 0 & mask == value only for value 0
            *value == 0
        }
        Test::Fixed(result) => *result,
        Test::Unknown(_) => return None,
    })
}

fn is_local(dst: &Dst, pkt: &Packet) -> bool {
    match dst {
        Dst::AnyLocal => true,
        Dst::Addr(a) => !pkt.not_local.contains(a),
    }
}

fn dst_matches(dst: &Dst, nets: &[IpNet], pkt: &Packet) -> Option<bool> {
    match dst {
        Dst::Addr(addr) => Some(nets.iter().any(|n| n.contains(addr))),
        Dst::AnyLocal => {
            if nets.iter().any(|n| n.prefix_len() == 0) {
                return Some(true);
            }
            // a host address is neither loopback nor a container's address
            let surely_not_local = |n: &IpNet| {
                n.addr().is_loopback()
                    || (n.prefix_len() == n.max_prefix_len() && pkt.not_local.contains(&n.addr()))
            };
            if nets.iter().all(surely_not_local) {
                Some(false)
            } else {
                None
            }
        }
    }
}

fn parse_nets(value: &str) -> Option<Vec<IpNet>> {
    value
        .split(',')
        .map(|v| {
            v.parse::<IpNet>()
                .ok()
                .or_else(|| v.parse::<IpAddr>().ok().map(IpNet::from))
        })
        .collect()
}

fn proto_matches(value: &str, proto: &str) -> bool {
    let number = match proto {
        "tcp" => "6",
        "udp" => "17",
        _ => "",
    };
    let v = value.to_ascii_lowercase();
    v == proto || v == number || v == "all" || v == "0"
}

/// `80`, `8000:8010`, `80,443,8000:8010`.
fn ports(value: &str) -> Option<Vec<(u16, u16)>> {
    value
        .split(',')
        .map(|part| match part.split_once(':') {
            Some((a, b)) => Some((
                if a.is_empty() { 0 } else { a.parse().ok()? },
                if b.is_empty() {
                    u16::MAX
                } else {
                    b.parse().ok()?
                },
            )),
            None => part.parse().ok().map(|p| (p, p)),
        })
        .collect()
}

fn in_ranges(ranges: &[(u16, u16)], port: u16) -> bool {
    ranges.iter().any(|(lo, hi)| *lo <= port && port <= *hi)
}

/// `--mark VALUE[/MASK]`.
fn mark(value: &str) -> Test {
    let parse = |s: &str| {
        s.strip_prefix("0x")
            .map_or_else(|| s.parse().ok(), |h| u32::from_str_radix(h, 16).ok())
    };
    let (v, m) = value.split_once('/').unwrap_or((value, "0xffffffff"));
    match (parse(v), parse(m)) {
        (Some(v), Some(m)) => Test::Mark(v, m),
        _ => Test::Unknown(format!("--mark {value}")),
    }
}

/// `--tcp-flags MASK SET` for the first packet of a TCP connection: SYN alone.
fn syn_flags(mask: &str, set: &str) -> bool {
    let has = |list: &str, flag: &str| list.split(',').any(|f| f == flag || f == "ALL");
    let flags = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
    flags
        .iter()
        .filter(|f| has(mask, f))
        .all(|f| (*f == "SYN") == (has(set, f) && set != "NONE"))
}
