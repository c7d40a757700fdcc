//! The validated policy: what the user asked for, in types that cannot hold invalid values.

use ipnet::IpNet;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }

    pub fn holds(self, net: &IpNet) -> bool {
        matches!(
            (self, net),
            (Family::Ipv4, IpNet::V4(_)) | (Family::Ipv6, IpNet::V6(_))
        )
    }

    pub fn holds_addr(self, addr: &IpAddr) -> bool {
        matches!(
            (self, addr),
            (Family::Ipv4, IpAddr::V4(_)) | (Family::Ipv6, IpAddr::V6(_))
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    Legacy,
    Nft,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Legacy => "legacy",
            Backend::Nft => "nft",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    Auto,
    Fixed(Backend),
}

/// Which packet filter carries the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataplaneChoice {
    /// nftables where Docker runs its nftables firewall backend, else iptables.
    Auto,
    Fixed(Dataplane),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataplane {
    /// Chains and hooks in iptables' tables (DOCKER-USER, nat PREROUTING, INPUT).
    Iptables,
    /// One table of our own, `inet docker_firewall`, with base chains on the same hooks.
    Nftables,
}

impl Dataplane {
    pub fn name(self) -> &'static str {
        match self {
            Dataplane::Iptables => "iptables",
            Dataplane::Nftables => "nftables",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Present,
    Absent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    DockerUser,
    Prerouting,
    Both,
}

impl Strategy {
    pub fn filters_forward(self) -> bool {
        matches!(self, Strategy::DockerUser | Strategy::Both)
    }

    pub fn gates_prerouting(self) -> bool {
        matches!(self, Strategy::Prerouting | Strategy::Both)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Drop,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// An inclusive port range; `first == last` for a single port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    /// The form iptables prints: `443` or `8000:8010`.
    pub fn iptables(self) -> String {
        if self.first == self.last {
            self.first.to_string()
        } else {
            format!("{}:{}", self.first, self.last)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    /// Published host ports; empty means every port.
    pub ports: Vec<PortRange>,
    pub proto: Proto,
    /// Sources; empty means anywhere.
    pub sources: Vec<IpNet>,
    pub destination: Option<IpAddr>,
    pub comment: Option<String>,
}

impl AllowEntry {
    /// Whether this entry says anything about `family`: an entry whose sources or destination all
    /// belong to the other family does not apply here.
    pub fn applies_to(&self, family: Family) -> bool {
        let sources_ok = self.sources.is_empty() || self.sources.iter().any(|s| family.holds(s));
        let destination_ok = self.destination.is_none_or(|d| family.holds_addr(&d));
        sources_ok && destination_ok
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingress {
    pub default: Verdict,
    pub allow: Vec<AllowEntry>,
}

/// An exception to the egress denials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressAllow {
    pub destinations: Vec<IpNet>,
    /// Destination ports; empty means every port.
    pub ports: Vec<PortRange>,
    pub proto: Proto,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    pub deny_private: bool,
    pub private_ranges: Vec<IpNet>,
    pub deny_host: bool,
    pub allow: Vec<EgressAllow>,
}

impl Egress {
    pub fn enabled(&self) -> bool {
        self.deny_private || self.deny_host
    }
}

/// A hashlimit rate as iptables prints it: `6/min`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    /// `sec`, `min`, `hour` or `day`.
    pub unit: &'static str,
}

impl Rate {
    pub fn iptables(self) -> String {
        format!("{}/{}", self.count, self.unit)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    pub enabled: bool,
    pub prefix: String,
    pub rate: Rate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub state: State,
    pub families: Vec<Family>,
    pub backend: BackendChoice,
    pub dataplane: DataplaneChoice,
    /// None: the interfaces that hold a default route.
    pub external_interfaces: Option<Vec<String>>,
    pub docker_interfaces: Vec<String>,
    pub strategy: Strategy,
    pub ingress: Ingress,
    pub egress: Egress,
    pub log: Log,
    /// Log what would be dropped and drop nothing.
    pub audit: bool,
    pub persist: bool,
    pub rules_v4: PathBuf,
    pub rules_v6: PathBuf,
    /// The nftables dataplane's table as an `nft -f` script.
    pub rules_nft: PathBuf,
    /// The iptables dataplane's ipsets in `ipset save` format (netfilter-persistent's ipset
    /// plugin loads it before rules.v4).
    pub rules_ipset: PathBuf,
    /// Seconds to wait for another run's lock.
    pub lock_timeout: u64,
    pub check_mode: bool,
    pub diff: bool,
    /// Whether the run reports who can reach the published ports (the watch service, which
    /// reports nothing, skips the analysis).
    pub analyse_exposure: bool,
}

impl Config {
    pub fn rules_file(&self, family: Family) -> &PathBuf {
        match family {
            Family::Ipv4 => &self.rules_v4,
            Family::Ipv6 => &self.rules_v6,
        }
    }
}
