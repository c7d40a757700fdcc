//! Sets of source addresses, as disjoint inclusive ranges: what a packet's walk through the chains
//! splits the address space into (`-s` matches cut it, verdicts take the pieces).

use crate::core::policy::Family;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSet {
    family: Family,
    /// start -> end (inclusive); disjoint and not adjacent. A map, so that cutting one range out
    /// of a set fragmented by 10,000 allow entries costs a lookup, not a copy of the set.
    ranges: BTreeMap<u128, u128>,
}

fn top(family: Family) -> u128 {
    match family {
        Family::Ipv4 => u128::from(u32::MAX),
        Family::Ipv6 => u128::MAX,
    }
}

impl SourceSet {
    pub fn empty(family: Family) -> Self {
        SourceSet {
            family,
            ranges: BTreeMap::new(),
        }
    }

    pub fn all(family: Family) -> Self {
        SourceSet {
            family,
            ranges: BTreeMap::from([(0, top(family))]),
        }
    }

    /// The addresses of `net`; empty when it is of the other family.
    pub fn of_net(family: Family, net: &IpNet) -> Self {
        let range = match (family, net) {
            (Family::Ipv4, IpNet::V4(n)) => Some((
                u128::from(u32::from(n.network())),
                u128::from(u32::from(n.broadcast())),
            )),
            (Family::Ipv6, IpNet::V6(n)) => {
                Some((u128::from(n.network()), u128::from(n.broadcast())))
            }
            _ => None,
        };
        SourceSet {
            family,
            ranges: range.into_iter().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn is_all(&self) -> bool {
        self.ranges.len() == 1 && self.ranges.get(&0) == Some(&top(self.family))
    }

    /// The ranges that overlap `lo..=hi`, in order.
    fn overlapping(&self, lo: u128, hi: u128) -> Vec<(u128, u128)> {
        let mut found: Vec<(u128, u128)> = self
            .ranges
            .range(..=hi)
            .rev()
            .take_while(|(_, end)| **end >= lo)
            .map(|(s, e)| (*s, *e))
            .collect();
        found.reverse();
        found
    }

    pub fn complement(&self) -> Self {
        let mut ranges = BTreeMap::new();
        let mut next = Some(0u128);
        for (&lo, &hi) in &self.ranges {
            if let Some(start) = next
                && start < lo
            {
                ranges.insert(start, lo - 1);
            }
            next = hi.checked_add(1);
        }
        if let Some(start) = next
            && start <= top(self.family)
        {
            ranges.insert(start, top(self.family));
        }
        SourceSet {
            family: self.family,
            ranges,
        }
    }

    /// Costs a lookup per range of the smaller set.
    pub fn intersect(&self, other: &SourceSet) -> Self {
        let (small, large) = if self.ranges.len() <= other.ranges.len() {
            (self, other)
        } else {
            (other, self)
        };
        let mut ranges = BTreeMap::new();
        for (&lo, &hi) in &small.ranges {
            for (s, e) in large.overlapping(lo, hi) {
                ranges.insert(s.max(lo), e.min(hi));
            }
        }
        SourceSet {
            family: self.family,
            ranges,
        }
    }

    /// Takes `other` out of this set, in place.
    pub fn remove(&mut self, other: &SourceSet) {
        for (&lo, &hi) in &other.ranges {
            for (s, e) in self.overlapping(lo, hi) {
                self.ranges.remove(&s);
                if s < lo {
                    self.ranges.insert(s, lo - 1);
                }
                if e > hi {
                    self.ranges.insert(hi + 1, e);
                }
            }
        }
    }

    /// Adds `other` to this set, in place.
    pub fn add(&mut self, other: &SourceSet) {
        for (&lo, &hi) in &other.ranges {
            let (mut new_lo, mut new_hi) = (lo, hi);
            // ranges overlapping or adjacent to lo..=hi merge into it
            let near_lo = lo.saturating_sub(1);
            let near_hi = hi.saturating_add(1);
            for (s, e) in self.overlapping(near_lo, near_hi) {
                self.ranges.remove(&s);
                new_lo = new_lo.min(s);
                new_hi = new_hi.max(e);
            }
            self.ranges.insert(new_lo, new_hi);
        }
    }

    #[cfg(test)]
    pub fn subtract(&self, other: &SourceSet) -> Self {
        let mut out = self.clone();
        out.remove(other);
        out
    }

    #[cfg(test)]
    pub fn union(&self, other: &SourceSet) -> Self {
        let mut out = self.clone();
        out.add(other);
        out
    }

    /// The fewest CIDRs that cover exactly this set, in order.
    pub fn cidrs(&self) -> Vec<IpNet> {
        let bits = match self.family {
            Family::Ipv4 => 32u32,
            Family::Ipv6 => 128,
        };
        let mut out = Vec::new();
        for (&lo, &hi) in &self.ranges {
            let mut start = lo;
            loop {
                // the largest block aligned at `start` that stays within `hi`
                let mut size = if start == 0 {
                    bits
                } else {
                    start.trailing_zeros().min(bits)
                };
                while size > 0 && block_end(start, size).is_none_or(|end| end > hi) {
                    size -= 1;
                }
                out.push(net(self.family, start, bits - size));
                match block_end(start, size).and_then(|end| end.checked_add(1)) {
                    Some(next) if next <= hi => start = next,
                    _ => break,
                }
            }
        }
        out
    }
}

/// The last address of the block of 2^size addresses starting at `start`.
fn block_end(start: u128, size: u32) -> Option<u128> {
    if size >= 128 {
        return (start == 0).then_some(u128::MAX);
    }
    start.checked_add((1u128 << size) - 1)
}

fn net(family: Family, start: u128, prefix: u32) -> IpNet {
    match family {
        Family::Ipv4 => {
            let addr = Ipv4Addr::from(u32::try_from(start).unwrap_or(u32::MAX));
            IpNet::V4(Ipv4Net::new(addr, prefix as u8).unwrap_or_default())
        }
        Family::Ipv6 => {
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(start), prefix as u8).unwrap_or_default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(family: Family, nets: &[&str]) -> SourceSet {
        nets.iter().fold(SourceSet::empty(family), |acc, n| {
            acc.union(&SourceSet::of_net(family, &n.parse().unwrap()))
        })
    }

    fn shown(s: &SourceSet) -> Vec<String> {
        s.cidrs().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn splits_and_joins_v4() {
        let all = SourceSet::all(Family::Ipv4);
        assert_eq!(shown(&all), ["0.0.0.0/0"]);
        let allowed = set(Family::Ipv4, &["203.0.113.0/24", "198.51.100.7/32"]);
        assert_eq!(shown(&allowed), ["198.51.100.7/32", "203.0.113.0/24"]);
        let rest = all.subtract(&allowed);
        assert_eq!(rest.union(&allowed), all);
        assert!(rest.intersect(&allowed).is_empty());
        assert_eq!(
            shown(&rest.intersect(&set(Family::Ipv4, &["203.0.112.0/22"]))),
            ["203.0.112.0/24", "203.0.114.0/23"]
        );
        assert_eq!(
            shown(&set(Family::Ipv4, &["10.0.0.0/25", "10.0.0.128/25"])),
            ["10.0.0.0/24"]
        );
        assert!(all.complement().is_empty());
        assert!(SourceSet::empty(Family::Ipv4).complement().is_all());
    }

    #[test]
    fn splits_and_joins_v6() {
        let all = SourceSet::all(Family::Ipv6);
        assert_eq!(shown(&all), ["::/0"]);
        let allowed = set(Family::Ipv6, &["fd00:1::/64"]);
        let rest = all.subtract(&allowed);
        assert_eq!(rest.cidrs().len(), 64);
        assert_eq!(rest.union(&allowed), all);
        // other-family nets are empty here
        assert!(set(Family::Ipv6, &["10.0.0.0/8"]).is_empty());
    }
}
