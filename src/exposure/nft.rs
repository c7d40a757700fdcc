//! Native nftables tables of other managers (firewalld, Docker's nftables backend, an admin's
//! table) with base chains on the hooks a published port's traffic takes: their rules are not
//! iptables rules, so the analysis does not evaluate them and says so.

use crate::core::policy::Family;

/// A base chain on prerouting, forward or input in a table that is not iptables-nft's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignHook {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub hook: String,
}

impl ForeignHook {
    pub fn applies_to(&self, family: Family) -> bool {
        match self.family.as_str() {
            "inet" => true,
            "ip" => family == Family::Ipv4,
            "ip6" => family == Family::Ipv6,
            _ => false,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "nftables table {} {}, chain {} (hook {}): another firewall's rules on the same path, not evaluated",
            self.family, self.table, self.chain, self.hook
        )
    }
}

/// The tables of `nft list tables` that iptables-nft does not own, as (family, name).
pub fn foreign_tables(list: &str) -> Vec<(String, String)> {
    const IPTABLES_NFT: [&str; 5] = ["filter", "nat", "mangle", "raw", "security"];
    list.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("table")).then_some(())?;
            let (family, name) = (words.next()?, words.next()?);
            let compat = matches!(family, "ip" | "ip6") && IPTABLES_NFT.contains(&name);
            let relevant = matches!(family, "ip" | "ip6" | "inet");
            (relevant && !compat).then(|| (family.to_string(), name.to_string()))
        })
        .collect()
}

/// The base chains on prerouting, forward or input in `nft list table FAMILY NAME` output.
pub fn hooks_in(family: &str, table: &str, listing: &str) -> Vec<ForeignHook> {
    let mut out = Vec::new();
    let mut chain = String::new();
    for line in listing.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("chain ") {
            chain = rest.trim_end_matches('{').trim().to_string();
            continue;
        }
        if !line.starts_with("type ") {
            continue;
        }
        let mut words = line.split_whitespace();
        let hook = words
            .by_ref()
            .skip_while(|w| *w != "hook")
            .nth(1)
            .unwrap_or("")
            .trim_end_matches(';');
        if matches!(hook, "prerouting" | "forward" | "input") {
            out.push(ForeignHook {
                family: family.into(),
                table: table.into(),
                chain: chain.clone(),
                hook: hook.into(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_other_tables_base_chains() {
        let tables = "table ip filter\ntable ip nat\ntable ip6 filter\ntable inet firewalld\ntable ip docker-bridges\ntable bridge filter\n";
        assert_eq!(
            foreign_tables(tables),
            [
                ("inet".to_string(), "firewalld".to_string()),
                ("ip".to_string(), "docker-bridges".to_string())
            ]
        );
        let listing = "table inet firewalld {\n\tchain filter_FORWARD {\n\t\ttype filter hook forward priority filter + 10; policy accept;\n\t\tct state established,related accept\n\t}\n\tchain filter_OUTPUT {\n\t\ttype filter hook output priority filter + 10; policy accept;\n\t}\n\tchain mangle_PREROUTING {\n\t\ttype filter hook prerouting priority mangle + 10; policy accept;\n\t}\n}\n";
        let hooks = hooks_in("inet", "firewalld", listing);
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks[0].chain, "filter_FORWARD");
        assert_eq!(hooks[1].hook, "prerouting");
        assert!(hooks[0].applies_to(Family::Ipv6));
        assert!(hooks[0].describe().contains("inet firewalld"));
    }
}
