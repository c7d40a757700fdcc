//! The nftables dataplane: one table of our own, `inet docker_firewall`, described as typed sets,
//! chains and rules ([`Table`]) and rendered as the `nft -f` script that replaces it atomically.
//! Base chains run before iptables' and Docker's at the same hooks: a drop here is final, an
//! accept (or the end of our chain) lets the packet go on to them.

pub mod desired;
pub mod docker;
pub mod live;
mod render;

pub use render::delete_script;

use super::policy::Family;
use ipnet::IpNet;

/// The typed rules both dataplanes render (core/rule).
pub use super::rule::{Action, Match, Rule};

pub use super::names::{
    NFT_TABLE_FAMILY as TABLE_FAMILY, NFT_TABLE_NAME as TABLE_NAME, NFT_TAG as TAG,
};
/// nftables keeps rule comments up to 128 bytes.
pub(super) const MAX_COMMENT: usize = 127;

/// Whether `nft list tables` shows `table FAMILY NAME`.
pub fn has_table(tables: &str, family: &str, name: &str) -> bool {
    let wanted = format!("table {family} {name}");
    tables.lines().any(|l| l.trim() == wanted)
}

/// Whether Docker runs its nftables firewall backend (its `docker-bridges` tables exist), from
/// `nft list tables` (`None`: nft is not installed).
pub fn docker_uses_nftables(tables: Option<&str>) -> bool {
    tables.is_some_and(|t| {
        has_table(t, "ip", docker::DOCKER_TABLE) || has_table(t, "ip6", docker::DOCKER_TABLE)
    })
}

/// `inet docker_firewall`.
pub fn table_id() -> String {
    format!("{TABLE_FAMILY} {TABLE_NAME}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub sets: Vec<Set>,
    pub chains: Vec<Chain>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub name: String,
    pub kind: SetKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetKind {
    /// Source addresses of one allow entry in one family, merged so no two intervals overlap.
    Addresses {
        family: Family,
        elements: Vec<IpNet>,
    },
    /// The rate-limit buckets of a log rule (source . destination . port), filled by packets.
    Meter {
        family: Family,
        timeout: &'static str,
    },
}

impl SetKind {
    /// The set's key type as nft prints it.
    pub fn key(&self) -> &'static str {
        match self {
            SetKind::Addresses { family, .. } => addr_type(*family),
            SetKind::Meter {
                family: Family::Ipv4,
                ..
            } => "ipv4_addr . ipv4_addr . inet_service",
            SetKind::Meter {
                family: Family::Ipv6,
                ..
            } => "ipv6_addr . ipv6_addr . inet_service",
        }
    }
}

fn addr_type(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "ipv4_addr",
        Family::Ipv6 => "ipv6_addr",
    }
}

/// `ip` or `ip6`, the payload protocol of a family's addresses.
pub(super) fn ip(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "ip",
        Family::Ipv6 => "ip6",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: &'static str,
    pub hook: Option<Hook>,
    pub rules: Vec<Rule>,
}

/// A base chain's place: type filter, policy accept, at `priority` = `base` + `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    pub hook: &'static str,
    /// `dstnat` (-100) or `filter` (0).
    pub base: &'static str,
    pub offset: i32,
}

impl Hook {
    pub fn priority(self) -> i64 {
        let base = match self.base {
            "raw" => -300,
            "mangle" => -150,
            "dstnat" => -100,
            "security" => 50,
            "srcnat" => 100,
            _ => 0,
        };
        base + i64::from(self.offset)
    }
}
