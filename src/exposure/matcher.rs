//! Whether one rule matches the packet being followed: a NEW connection from an outside client.
//! Everything about that packet is known except its source address, so a rule either never
//! matches, matches a set of sources, or holds a match we cannot evaluate (then we say so).

use super::sources::SourceSet;
use crate::core::desired::interface_matches;
use crate::core::policy::Family;
use ipnet::IpNet;
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
pub struct Packet {
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
    /// Addresses the host does not own: containers (for `-d` against [`Dst::AnyLocal`]).
    pub not_local: Vec<IpNet>,
}

/// What a rule's matches say about the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// Matches for these sources (empty: never).
    Sources(SourceSet),
    /// Cannot be evaluated for these sources; the text says which match.
    Unknown(SourceSet, String),
}

enum Test {
    Yes,
    No,
    Unknown(String),
}

impl From<bool> for Test {
    fn from(b: bool) -> Self {
        if b { Test::Yes } else { Test::No }
    }
}

/// Splits a rule's arguments into its matches and its target (`-j X ...` / `-g X ...`).
pub fn split_target(args: &[String]) -> (&[String], Option<(&str, bool, &[String])>) {
    match args
        .iter()
        .position(|a| matches!(a.as_str(), "-j" | "--jump" | "-g" | "--goto"))
    {
        Some(i) if i + 1 < args.len() => {
            let goto = matches!(args[i].as_str(), "-g" | "--goto");
            (
                &args[..i],
                Some((args[i + 1].as_str(), goto, &args[i + 2..])),
            )
        }
        Some(i) => (&args[..i], None),
        None => (args, None),
    }
}

/// Evaluates the match part of a rule.
pub fn evaluate(matches: &[String], pkt: &Packet) -> Cond {
    let mut sources = SourceSet::all(pkt.family);
    let mut unknown: Option<String> = None;
    let mut module = String::new();
    let mut i = 0;
    while i < matches.len() {
        let mut negated = false;
        if matches[i] == "!" {
            negated = true;
            i += 1;
        }
        let Some(option) = matches.get(i) else { break };
        // options without a value
        let flag = match option.as_str() {
            "--syn" => Some(Test::from(pkt.proto == "tcp")),
            "-f" | "--fragment" => Some(Test::No),
            _ => None,
        };
        if let Some(test) = flag {
            match apply_negation(test, negated) {
                Test::No => return never(pkt),
                Test::Unknown(why) => unknown = unknown.or(Some(why)),
                Test::Yes => {}
            }
            i += 1;
            continue;
        }
        let value = matches.get(i + 1).map(String::as_str).unwrap_or("");
        let mut consumed = 2;
        let test = match option.as_str() {
            "-m" | "--match" => {
                module = value.to_string();
                // `-m rt` (IPv6 routing header): a client's SYN carries no extension header
                if module == "rt" { Some(Test::No) } else { None }
            }
            "-s" | "--source" | "--ctorigsrc" => match parse_nets(value) {
                Some(nets) => {
                    let mut set = SourceSet::empty(pkt.family);
                    for n in &nets {
                        set.add(&SourceSet::of_net(pkt.family, n));
                    }
                    let set = if negated { set.complement() } else { set };
                    sources = sources.intersect(&set);
                    None
                }
                None => Some(Test::Unknown(format!("{option} {value}"))),
            },
            "-d" | "--destination" => Some(negate(dst_test(&pkt.dst, value, pkt), negated)),
            "--ctorigdst" => Some(negate(dst_test(&pkt.orig_dst, value, pkt), negated)),
            "-i" | "--in-interface" => Some(negate(
                interface_matches(value, &pkt.in_iface).into(),
                negated,
            )),
            "-o" | "--out-interface" => Some(negate(
                match &pkt.out_iface {
                    Some(out) => interface_matches(value, out).into(),
                    None => Test::Unknown(format!("-o {value} before routing")),
                },
                negated,
            )),
            "-p" | "--protocol" => Some(negate(proto_test(value, &pkt.proto), negated)),
            "--ctproto" => Some(negate(proto_test(value, &pkt.proto), negated)),
            "--dport" | "--destination-port" if module != "multiport" => {
                Some(negate(port_test(value, pkt.dport), negated))
            }
            "--dports" | "--destination-ports" | "--dport" | "--destination-port" => {
                Some(negate(port_list_test(value, pkt.dport), negated))
            }
            "--ctorigdstport" => Some(negate(port_test(value, pkt.orig_dport), negated)),
            "--ctdir" => Some(negate(Test::from(value == "ORIGINAL"), negated)),
            "--ctstate" | "--state" => Some(negate(state_test(value, pkt.dnatted), negated)),
            "--dst-type" => Some(negate(addrtype_test(value, pkt), negated)),
            "--src-type" => Some(negate(
                Test::from(value.split(',').any(|t| t == "UNICAST")),
                negated,
            )),
            "--limit-iface-in" | "--limit-iface-out" => {
                consumed = 1;
                Some(Test::Unknown(format!("addrtype {option}")))
            }
            "--tcp-flags" => {
                let set = matches.get(i + 2).map(String::as_str).unwrap_or("");
                consumed = 3;
                Some(negate(syn_flags_test(value, set), negated))
            }
            "--comment" | "--log-prefix" => None,
            _ => Some(Test::Unknown(format!(
                "{}{option} {value}",
                if module.is_empty() {
                    String::new()
                } else {
                    format!("-m {module} ")
                }
            ))),
        };
        match test {
            Some(Test::No) => return never(pkt),
            Some(Test::Unknown(why)) => unknown = unknown.or(Some(why)),
            _ => {}
        }
        i += consumed;
    }
    match unknown {
        Some(why) => Cond::Unknown(sources, why),
        None => Cond::Sources(sources),
    }
}

fn never(pkt: &Packet) -> Cond {
    Cond::Sources(SourceSet::empty(pkt.family))
}

fn negate(test: Test, negated: bool) -> Test {
    apply_negation(test, negated)
}

fn apply_negation(test: Test, negated: bool) -> Test {
    match (test, negated) {
        (Test::Yes, true) => Test::No,
        (Test::No, true) => Test::Yes,
        (t, _) => t,
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

fn dst_test(dst: &Dst, value: &str, pkt: &Packet) -> Test {
    let Some(nets) = parse_nets(value) else {
        return Test::Unknown(format!("-d {value}"));
    };
    match dst {
        Dst::Addr(addr) => nets.iter().any(|n| n.contains(addr)).into(),
        Dst::AnyLocal => {
            if nets.iter().any(|n| n.prefix_len() == 0) {
                return Test::Yes;
            }
            // a host address is neither loopback nor a container's address
            let surely_not_local = |n: &IpNet| {
                n.addr().is_loopback() || pkt.not_local.iter().any(|c| c.contains(n) || n == c)
            };
            if nets.iter().all(surely_not_local) {
                Test::No
            } else {
                Test::Unknown(format!(
                    "-d {value} (which of the host's addresses is not known)"
                ))
            }
        }
    }
}

fn proto_test(value: &str, proto: &str) -> Test {
    let number = match proto {
        "tcp" => "6",
        "udp" => "17",
        _ => "",
    };
    let v = value.to_ascii_lowercase();
    Test::from(v == proto || v == number || v == "all" || v == "0")
}

fn port_range(value: &str) -> Option<(u16, u16)> {
    match value.split_once(':') {
        Some((a, b)) => Some((
            if a.is_empty() { 0 } else { a.parse().ok()? },
            if b.is_empty() {
                u16::MAX
            } else {
                b.parse().ok()?
            },
        )),
        None => value.parse().ok().map(|p| (p, p)),
    }
}

fn port_test(value: &str, port: u16) -> Test {
    match port_range(value) {
        Some((lo, hi)) => Test::from(lo <= port && port <= hi),
        None => Test::Unknown(format!("port {value}")),
    }
}

fn port_list_test(value: &str, port: u16) -> Test {
    let mut any = false;
    for part in value.split(',') {
        match port_range(part) {
            Some((lo, hi)) => any |= lo <= port && port <= hi,
            None => return Test::Unknown(format!("ports {value}")),
        }
    }
    any.into()
}

/// The first packet of a connection is NEW, and DNAT where nat PREROUTING rewrote it.
fn state_test(value: &str, dnatted: bool) -> Test {
    value
        .split(',')
        .any(|s| s == "NEW" || (s == "DNAT" && dnatted))
        .into()
}

fn addrtype_test(value: &str, pkt: &Packet) -> Test {
    let local = matches!(pkt.dst, Dst::AnyLocal)
        || matches!(&pkt.dst, Dst::Addr(a) if !pkt.not_local.iter().any(|n| n.contains(a)) && !pkt.dnatted);
    let mut any = false;
    for kind in value.split(',') {
        any |= match kind {
            "LOCAL" => local,
            "UNICAST" => true,
            "MULTICAST" | "BROADCAST" | "ANYCAST" | "BLACKHOLE" | "UNREACHABLE" | "PROHIBIT"
            | "THROW" | "NAT" | "XRESOLVE" | "UNSPEC" => false,
            other => return Test::Unknown(format!("--dst-type {other}")),
        };
    }
    any.into()
}

/// `--tcp-flags MASK SET` for the first packet of a TCP connection: SYN alone.
fn syn_flags_test(mask: &str, set: &str) -> Test {
    let has = |list: &str, flag: &str| list.split(',').any(|f| f == flag || f == "ALL");
    let flags = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
    let ok = flags
        .iter()
        .filter(|f| has(mask, f))
        .all(|f| (*f == "SYN") == (has(set, f) && set != "NONE"));
    ok.into()
}
