//! What Docker's iptables rules tell: the published host ports, the bridges, and where the
//! forward-path hooks go.

use crate::core::names::{DOCKER, DOCKER_BRIDGE, DOCKER_USER};
use crate::core::policy::PortRange;
use crate::core::rule::tag_hash;
use crate::core::save::{Ruleset, option_value, split_args, target};

/// A host port Docker publishes, as its nat DNAT rule matches it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct PublishedPort {
    pub proto: String,
    /// `8080` or `8000:8010`.
    pub port: String,
}

impl PublishedPort {
    /// The port as a range (`8080`, or `8000:8010` as iptables prints it).
    pub fn range(&self) -> Option<PortRange> {
        let (first, last) = self
            .port
            .split_once([':', '-'])
            .unwrap_or((&self.port, &self.port));
        let first: u16 = first.parse().ok()?;
        let last: u16 = last.parse().ok()?;
        (first <= last).then_some(PortRange { first, last })
    }
}

/// What the live ruleset tells about Docker right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerFacts {
    /// Host ports published through DNAT in nat `DOCKER`.
    pub published: Vec<PublishedPort>,
    /// Bridges Docker forwards published traffic to (`-o X -j DOCKER`).
    pub bridges: Vec<String>,
    /// Where the forward-path hooks go: `DOCKER-USER`, or `FORWARD` itself where Docker set up
    /// its chains without a DOCKER-USER jump (Docker 20.10's experimental IPv6).
    pub forward_chain: &'static str,
}

impl Default for DockerFacts {
    fn default() -> Self {
        DockerFacts {
            published: Vec::new(),
            bridges: Vec::new(),
            forward_chain: DOCKER_USER,
        }
    }
}

impl DockerFacts {
    pub fn read(ruleset: &Ruleset) -> Self {
        DockerFacts {
            published: published_ports(ruleset),
            bridges: docker_bridges(ruleset),
            forward_chain: forward_chain(ruleset),
        }
    }

    /// These facts with the ports and bridges every family shows: docker-proxy listens on a
    /// published port in both families even where Docker writes NAT rules for one only.
    pub fn with_ports_of(&self, all: &[DockerFacts]) -> Self {
        let mut published: Vec<PublishedPort> =
            all.iter().flat_map(|f| f.published.clone()).collect();
        published.sort();
        published.dedup();
        let mut bridges: Vec<String> = all.iter().flat_map(|f| f.bridges.clone()).collect();
        bridges.sort();
        bridges.dedup();
        DockerFacts {
            published,
            bridges,
            forward_chain: self.forward_chain,
        }
    }
}

/// `DOCKER-USER`, unless Docker's filter chains exist and FORWARD does not send traffic to
/// DOCKER-USER before anything else. Docker 20.10 writes no DOCKER-USER jump for its experimental
/// IPv6, and after a firewalld reload it puts the jump back *behind* its per-bridge ACCEPTs, where a
/// filter in DOCKER-USER is never reached: then our hook goes first in FORWARD itself.
fn forward_chain(ruleset: &Ruleset) -> &'static str {
    let Some(filter) = ruleset.table("filter") else {
        return DOCKER_USER;
    };
    let first_foreign = filter
        .rules_of("FORWARD")
        .find(|r| tag_hash(r.spec).is_none());
    let jumps_first = first_foreign.is_some_and(|r| target(r.spec).as_deref() == Some(DOCKER_USER));
    if filter.has_chain(DOCKER) && !jumps_first {
        "FORWARD"
    } else {
        DOCKER_USER
    }
}

/// The DNAT rules of Docker's nat `DOCKER` chain.
fn published_ports(ruleset: &Ruleset) -> Vec<PublishedPort> {
    let mut ports = Vec::new();
    let Some(nat) = ruleset.table("nat") else {
        return ports;
    };
    for rule in nat.rules_of(DOCKER) {
        let args = split_args(rule.spec);
        if option_value(&args, &["-j"]).as_deref() != Some("DNAT") {
            continue;
        }
        if let (Some(proto), Some(port)) = (
            option_value(&args, &["-p"]),
            option_value(&args, &["--dport"]),
        ) {
            ports.push(PublishedPort { proto, port });
        }
    }
    // sort + dedup: contains() per rule was quadratic in the published ports
    ports.sort();
    ports.dedup();
    ports
}

/// Bridges named in Docker's `-o X -j DOCKER` jumps (FORWARD up to Docker 27, DOCKER-BRIDGE
/// from 28 on).
fn docker_bridges(ruleset: &Ruleset) -> Vec<String> {
    let mut bridges = Vec::new();
    let Some(filter) = ruleset.table("filter") else {
        return bridges;
    };
    for rule in &filter.rules {
        if rule.chain != "FORWARD" && rule.chain != DOCKER_BRIDGE {
            continue;
        }
        let args = split_args(rule.spec);
        let negated = args.iter().any(|a| a == "!");
        if negated || option_value(&args, &["-j"]).as_deref() != Some(DOCKER) {
            continue;
        }
        if let Some(bridge) = option_value(&args, &["-o"])
            && !bridges.contains(&bridge)
        {
            bridges.push(bridge);
        }
    }
    bridges.sort();
    bridges
}

#[cfg(test)]
mod tests {
    use super::forward_chain;
    use crate::core::save::parse_save;

    fn chain_for(forward: &str) -> &'static str {
        let text = format!(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             :DOCKER - [0:0]\n:DOCKER-USER - [0:0]\n{forward}COMMIT\n"
        );
        forward_chain(&parse_save(&text).expect("parses"))
    }

    #[test]
    fn the_hook_goes_where_forwarded_traffic_meets_it_first() {
        // Docker's own order: DOCKER-USER first.
        assert_eq!(
            chain_for("-A FORWARD -j DOCKER-USER\n-A FORWARD -o docker0 -j DOCKER\n"),
            "DOCKER-USER"
        );
        // Our hook already first in FORWARD does not count as "something before DOCKER-USER".
        assert_eq!(
            chain_for(
                "-A FORWARD -m comment --comment \"docker_firewall:0123456789ab\" -j DFW-INGRESS\n\
                 -A FORWARD -j DOCKER-USER\n"
            ),
            "DOCKER-USER"
        );
        // Docker 20.10 after a firewalld reload: its ACCEPTs come before the DOCKER-USER jump.
        assert_eq!(
            chain_for(
                "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
                 -A FORWARD -o docker0 -j DOCKER\n-A FORWARD -j DOCKER-USER\n"
            ),
            "FORWARD"
        );
        // Docker 20.10's experimental IPv6: no DOCKER-USER jump at all.
        assert_eq!(chain_for("-A FORWARD -o docker0 -j DOCKER\n"), "FORWARD");
    }
}
