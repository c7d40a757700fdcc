//! The table as text: each rule in the form nft prints it, with its tag comment; the whole table
//! and the scripts that replace or delete it in one transaction.

use super::{Action, MAX_COMMENT, Match, Rule, SetKind, TAG, Table, ip, table_id};
use crate::core::policy::{Family, PortRange, Rate};
use ipnet::IpNet;
use std::fmt::Write as _;

impl Match {
    fn render_nft(&self, out: &mut String) {
        match self {
            Match::Replies => out.push_str("ct state established,related"),
            Match::Family(f) => {
                let _ = write!(out, "meta nfproto {}", f.name());
            }
            Match::InInterface(p) => {
                let _ = write!(out, "iifname \"{}\"", wildcard(p));
            }
            Match::OutInterface(p) => {
                let _ = write!(out, "oifname \"{}\"", wildcard(p));
            }
            Match::LocalDestination => out.push_str("fib daddr type local"),
            Match::DestinationPorts(proto, ports) => {
                let _ = write!(out, "{proto} dport {}", port_list(ports));
            }
            Match::Proto(p) => {
                let _ = write!(out, "meta l4proto {p}");
            }
            Match::OriginalPort(p) => {
                let _ = write!(out, "ct original proto-dst {}", port(*p));
            }
            Match::OriginalAddress(a) => {
                let f = if a.is_ipv4() {
                    Family::Ipv4
                } else {
                    Family::Ipv6
                };
                let _ = write!(out, "ct original {} daddr {a}", ip(f));
            }
            Match::Source(n) => {
                let f = if n.addr().is_ipv4() {
                    Family::Ipv4
                } else {
                    Family::Ipv6
                };
                let _ = write!(out, "{} saddr {}", ip(f), net(n));
            }
            Match::SourceSet(f, name) => {
                let _ = write!(out, "{} saddr @{name}", ip(*f));
            }
            Match::Destinations(f, nets) => {
                let items: Vec<String> = nets.iter().map(net).collect();
                let _ = write!(out, "{} daddr {}", ip(*f), braced(&items));
            }
            Match::Icmpv6Types(types) => {
                let items: Vec<String> = types.iter().map(u8::to_string).collect();
                let _ = write!(out, "icmpv6 type {}", braced(&items));
            }
            Match::Portless => out.push_str("meta l4proto != { tcp, udp }"),
        }
    }
}

impl Action {
    fn render_nft(&self, out: &mut String) {
        match self {
            Action::Return => out.push_str("return"),
            Action::Jump(chain) => {
                let _ = write!(out, "jump {chain}");
            }
            Action::Accept => out.push_str("accept"),
            Action::Drop => out.push_str("drop"),
            Action::RejectTcpReset => out.push_str("reject with tcp reset"),
            Action::RejectUnreachable => out.push_str("reject with icmpx type port-unreachable"),
            Action::LogPerFlow {
                bucket: meter,
                family,
                rate,
                prefix,
            } => {
                let ip = ip(*family);
                let rate = nft_rate(*rate);
                let _ = write!(
                    out,
                    "add @{meter} {{ {ip} saddr . {ip} daddr . th dport limit rate {rate} burst 5 packets }} log prefix \"{prefix}\""
                );
            }
            Action::LogLimited { rate, prefix } => {
                let rate = nft_rate(*rate);
                let _ = write!(
                    out,
                    "limit rate {rate} burst 5 packets log prefix \"{prefix}\""
                );
            }
        }
    }
}

/// A rate as nft writes it: `6/minute`.
fn nft_rate(rate: Rate) -> String {
    let unit = match rate.unit {
        "sec" => "second",
        "hour" => "hour",
        "day" => "day",
        _ => "minute",
    };
    format!("{}/{unit}", rate.count)
}

/// iptables' `+` wildcard is nft's `*`.
fn wildcard(pattern: &str) -> String {
    match pattern.strip_suffix('+') {
        Some(prefix) => format!("{prefix}*"),
        None => pattern.to_string(),
    }
}

fn port(p: PortRange) -> String {
    if p.first == p.last {
        p.first.to_string()
    } else {
        format!("{}-{}", p.first, p.last)
    }
}

fn port_list(ports: &[PortRange]) -> String {
    let items: Vec<String> = ports.iter().map(|p| port(*p)).collect();
    braced(&items)
}

/// A single value bare, several as an anonymous set.
fn braced(items: &[String]) -> String {
    if items.len() == 1 {
        items[0].clone()
    } else {
        format!("{{ {} }}", items.join(", "))
    }
}

/// An address as nft prints it: a host without its prefix length.
fn net(n: &IpNet) -> String {
    if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

impl Rule {
    /// The rule's text without its comment.
    pub fn nft_body(&self) -> String {
        let mut out = String::with_capacity(96);
        for m in &self.matches {
            m.render_nft(&mut out);
            out.push(' ');
        }
        self.action.render_nft(&mut out);
        out
    }

    /// `dfw:<12 hex digits>` over the chain, the rule's position and its text.
    pub fn nft_tag(&self, chain: &str, index: usize) -> String {
        let index = index.to_string();
        let body = self.nft_body();
        let hash =
            crate::core::rule::fnv12(&[chain, &index, &body, self.note.as_deref().unwrap_or("")]);
        format!("{TAG}{hash}")
    }

    fn nft_comment(&self, chain: &str, index: usize) -> String {
        let mut comment = self.nft_tag(chain, index);
        if let Some(note) = &self.note {
            comment.push(' ');
            comment.push_str(note);
        }
        while comment.len() > MAX_COMMENT {
            comment.pop();
        }
        comment
    }
}

impl Table {
    /// The table as `nft list` shows it (our own layout: one set element per line, so a diff
    /// names the addresses that changed).
    pub fn render(&self) -> String {
        let mut out = format!("table {} {{\n", table_id());
        for set in &self.sets {
            let _ = writeln!(out, "\tset {} {{", set.name);
            let _ = writeln!(out, "\t\ttype {}", set.kind.key());
            match &set.kind {
                SetKind::Addresses { elements, .. } => {
                    out.push_str("\t\tflags interval\n");
                    if !elements.is_empty() {
                        out.push_str("\t\telements = {\n");
                        let last = elements.len() - 1;
                        for (i, e) in elements.iter().enumerate() {
                            let comma = if i == last { "" } else { "," };
                            let _ = writeln!(out, "\t\t\t{}{comma}", net(e));
                        }
                        out.push_str("\t\t}\n");
                    }
                }
                SetKind::Meter { timeout, .. } => {
                    out.push_str("\t\tsize 65535\n\t\tflags dynamic,timeout\n");
                    let _ = writeln!(out, "\t\ttimeout {timeout}");
                }
            }
            out.push_str("\t}\n");
        }
        for chain in &self.chains {
            let _ = writeln!(out, "\tchain {} {{", chain.name);
            if let Some(h) = chain.hook {
                let _ = writeln!(
                    out,
                    "\t\ttype filter hook {} priority {} - {}; policy accept;",
                    h.hook, h.base, -h.offset
                );
            }
            for (i, rule) in chain.rules.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "\t\t{} comment \"{}\"",
                    rule.nft_body(),
                    rule.nft_comment(chain.name, i)
                );
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        out
    }

    /// The `nft -f` script that replaces the table in one transaction (and loads at boot the
    /// same way: declaring the table first makes the delete safe when it does not exist).
    pub fn replace_script(&self) -> String {
        format!("{}{}", delete_script(), self.render())
    }

    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }

    pub fn element_count(&self) -> usize {
        self.sets
            .iter()
            .map(|s| match &s.kind {
                SetKind::Addresses { elements, .. } => elements.len(),
                SetKind::Meter { .. } => 0,
            })
            .sum()
    }
}

/// Deletes the table, whether it exists or not, in one transaction.
pub fn delete_script() -> String {
    let id = table_id();
    format!("table {id}\ndelete table {id}\n")
}
