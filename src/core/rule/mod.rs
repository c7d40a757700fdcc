//! Rules as typed values: what a packet must match and what happens to it. Both dataplanes build
//! their rules from these values and render them: `iptables` here (the exact text iptables-save
//! prints), core/nft/render.rs (the text nft prints). The rules the policy's entries and
//! verdicts describe are written once, in `from_policy`, for both.

pub mod from_policy;
pub mod iptables;

pub use iptables::{IptablesRule, Unexpressible, fnv12, is_owned_chain, quote, tag_hash};

use super::policy::{Family, PortRange, Rate};
use ipnet::IpNet;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub action: Action,
    /// The policy entry's comment, shown after the tag.
    pub note: Option<String>,
}

impl Rule {
    pub fn new(matches: Vec<Match>, action: Action) -> Rule {
        Rule {
            matches,
            action,
            note: None,
        }
    }

    /// A rule that matches everything.
    pub fn always(action: Action) -> Rule {
        Rule::new(Vec::new(), action)
    }

    pub fn with_note(mut self, note: Option<&str>) -> Rule {
        self.note = note.map(str::to_string);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Packets of connections already let through (and related ICMP).
    Replies,
    /// Only this family's packets (iptables: implied, each family has its own tables).
    Family(Family),
    /// An iptables interface pattern (`br-+`); nft writes the wildcard as `br-*`.
    InInterface(String),
    OutInterface(String),
    Source(IpNet),
    /// The source is in a named set of this family (an nft set, or an ipset).
    SourceSet(Family, String),
    /// The destination is one of these networks (iptables: exactly one per rule).
    Destinations(Family, Vec<IpNet>),
    /// The destination is an address of this host.
    LocalDestination,
    /// `tcp`, `udp`, or any protocol Docker publishes (`sctp`).
    Proto(String),
    /// The packet's own destination ports (before DNAT in prerouting).
    DestinationPorts(String, Vec<PortRange>),
    /// The connection's original destination port: the published host port, which DNAT keeps.
    OriginalPort(PortRange),
    OriginalAddress(IpAddr),
    /// ICMPv6 of these types (iptables: exactly one per rule).
    Icmpv6Types(Vec<u8>),
    /// Not TCP or UDP: no ports to key a log bucket on (nftables only: iptables' hashlimit keys
    /// port-less packets itself).
    Portless,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Back to the calling chain: allowed, on to Docker's rules.
    Return,
    Jump(&'static str),
    /// Final in the table it is in (the prerouting gate: not DNAT-ed).
    Accept,
    Drop,
    RejectTcpReset,
    /// ICMP(v6) port unreachable.
    RejectUnreachable,
    /// A log line per source, destination and port at most at `rate`, its buckets in `bucket`
    /// (a hashlimit name, or an nft meter set).
    LogPerFlow {
        bucket: String,
        family: Family,
        rate: Rate,
        prefix: String,
    },
    /// A log line at most at `rate` for everything the rule matches.
    LogLimited {
        rate: Rate,
        prefix: String,
    },
}
