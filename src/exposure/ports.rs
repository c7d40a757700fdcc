//! Which ports Docker publishes (its nat DNAT rules) and what listens on the host.

use crate::core::policy::Family;
use crate::core::save::{Ruleset, option_value, split_args};
use ipnet::IpNet;
use std::net::IpAddr;

/// One DNAT rule of nat `DOCKER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub family: Family,
    pub proto: String,
    /// `None`: every host address (published on 0.0.0.0 / ::).
    pub host_addr: Option<IpAddr>,
    pub host_port: u16,
    pub host_port_end: Option<u16>,
    pub to_addr: IpAddr,
    pub to_port: u16,
    /// The container's bridge (`! -i docker0` in the DNAT rule).
    pub bridge: Option<String>,
}

/// A row of the report: a published port in one family, forwarded to a container (`to`) or,
/// where this family has no DNAT for it, served by docker-proxy on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub proto: String,
    pub host_addr: Option<IpAddr>,
    pub host_port: u16,
    pub host_port_end: Option<u16>,
    pub to: Option<(IpAddr, u16)>,
    pub bridge: Option<String>,
}

pub fn published_ports(family: Family, ruleset: &Ruleset) -> Vec<Published> {
    let Some(nat) = ruleset.table("nat") else {
        return Vec::new();
    };
    let bridges = container_bridges(ruleset);
    nat.rules_of(crate::core::names::DOCKER)
        .filter_map(|rule| {
            let args = split_args(rule.spec);
            if option_value(&args, &["-j"]).as_deref() != Some("DNAT") {
                return None;
            }
            let proto = option_value(&args, &["-p"])?;
            let (host_port, host_port_end) = port_range(&option_value(&args, &["--dport"])?)?;
            let (to_addr, to_port) = parse_target(&option_value(&args, &["--to-destination"])?)?;
            let host_addr = option_value(&args, &["-d"])
                .and_then(|d| d.parse::<IpNet>().ok())
                .filter(|n| n.prefix_len() == n.max_prefix_len())
                .map(|n| n.addr());
            // with the userland proxy off Docker's DNAT has no `! -i <bridge>`
            let bridge = args
                .windows(3)
                .find(|w| w[0] == "!" && w[1] == "-i")
                .map(|w| w[2].clone())
                .or_else(|| bridge_of(&bridges, &to_addr));
            Some(Published {
                family,
                proto,
                host_addr,
                host_port,
                host_port_end,
                to_addr,
                to_port,
                bridge,
            })
        })
        .collect()
}

/// Where Docker routes container addresses: its filter `DOCKER` ACCEPTs (`-d <container> -o
/// <bridge>`) and its nat `POSTROUTING` MASQUERADEs (`-s <subnet> ! -o <bridge>`).
fn container_bridges(ruleset: &Ruleset) -> Vec<(IpNet, String)> {
    let mut out = Vec::new();
    let chains = [
        ("filter", crate::core::names::DOCKER, "-d", false),
        ("nat", "POSTROUTING", "-s", true),
    ];
    for (table, chain, flag, negated_out) in chains {
        let Some(table) = ruleset.table(table) else {
            continue;
        };
        for rule in table.rules_of(chain) {
            let args = split_args(rule.spec);
            let net = option_value(&args, &[flag]).and_then(|v| v.parse::<IpNet>().ok());
            let out_iface = args
                .windows(2)
                .enumerate()
                .find(|(i, w)| w[0] == "-o" && (*i > 0 && args[i - 1] == "!") == negated_out)
                .map(|(_, w)| w[1].clone());
            if let (Some(net), Some(bridge)) = (net, out_iface) {
                out.push((net, bridge));
            }
        }
    }
    out
}

fn bridge_of(bridges: &[(IpNet, String)], addr: &IpAddr) -> Option<String> {
    bridges
        .iter()
        .filter(|(net, _)| net.contains(addr))
        .max_by_key(|(net, _)| net.prefix_len())
        .map(|(_, bridge)| bridge.clone())
}

/// The rows of `family`: its own DNAT rules, and the ports published on every address in the
/// other family only (docker-proxy listens on both families for those).
pub fn rows_for(family: Family, all: &[Published]) -> Vec<Row> {
    let mut rows: Vec<Row> = all
        .iter()
        .filter(|p| p.family == family)
        .map(|p| Row {
            proto: p.proto.clone(),
            host_addr: p.host_addr,
            host_port: p.host_port,
            host_port_end: p.host_port_end,
            to: Some((p.to_addr, p.to_port)),
            bridge: p.bridge.clone(),
        })
        .collect();
    for p in all
        .iter()
        .filter(|p| p.family != family && p.host_addr.is_none())
    {
        let served_here = rows
            .iter()
            .any(|r| r.proto == p.proto && r.host_port == p.host_port);
        if !served_here {
            rows.push(Row {
                proto: p.proto.clone(),
                host_addr: None,
                host_port: p.host_port,
                host_port_end: p.host_port_end,
                to: None,
                bridge: None,
            });
        }
    }
    rows
}

fn port_range(value: &str) -> Option<(u16, Option<u16>)> {
    match value.split_once(':') {
        Some((a, b)) => Some((a.parse().ok()?, Some(b.parse().ok()?))),
        None => Some((value.parse().ok()?, None)),
    }
}

/// `172.17.0.2:80`, `172.17.0.2:80-90`, `[fd00::2]:80`.
fn parse_target(value: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = match value.strip_prefix('[') {
        Some(rest) => {
            let (addr, port) = rest.split_once("]:")?;
            (addr, port)
        }
        None => value.rsplit_once(':')?,
    };
    let port = port.split('-').next()?;
    Some((addr.parse().ok()?, port.parse().ok()?))
}

/// Whether a DNAT `--to-destination` sends to this container address and port.
pub fn same_target(to: &str, (addr, port): (IpAddr, u16)) -> bool {
    parse_target(to) == Some((addr, port))
}

/// A listening socket on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub family: Family,
    pub proto: String,
    /// `None`: every address (0.0.0.0 / ::).
    pub addr: Option<IpAddr>,
    pub port: u16,
}

/// Parses `/proc/net/{tcp,tcp6,udp,udp6}`: TCP sockets in LISTEN state, every bound UDP socket.
pub fn parse_listeners(text: &str, family: Family, proto: &str) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state) = (fields.get(1)?, fields.get(3)?);
            if proto == "tcp" && *state != "0A" {
                return None;
            }
            let (hex_addr, hex_port) = local.split_once(':')?;
            let port = u16::from_str_radix(hex_port, 16).ok()?;
            let addr = proc_addr(hex_addr)?;
            Some(Listener {
                family,
                proto: proto.to_string(),
                addr: (!addr.is_unspecified()).then_some(addr),
                port,
            })
        })
        .collect()
}

/// /proc/net prints addresses as 32-bit words in host byte order (little endian here).
fn proc_addr(hex: &str) -> Option<IpAddr> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// Whether something on the host accepts `proto` connections of `family` to `addr:port` from
/// outside. A socket on `::` serves IPv4 too unless it is IPv6-only, which /proc does not show:
/// counted as serving both.
pub fn listens(
    listeners: &[Listener],
    family: Family,
    proto: &str,
    addr: Option<IpAddr>,
    port: u16,
) -> bool {
    listeners.iter().any(|l| {
        l.proto == proto
            && l.port == port
            && (l.family == family || (l.family == Family::Ipv6 && l.addr.is_none()))
            && match (l.addr, addr) {
                (None, _) => true,
                (Some(a), _) if a.is_loopback() => false,
                (Some(a), Some(b)) => a == b,
                // bound to one address: reachable when the client picks it; counted as listening
                (Some(_), None) => true,
            }
    })
}
