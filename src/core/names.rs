//! Every name the module shares with Docker or owns, in one place.

// Docker's chains (iptables) and tables (nftables backend).
pub const DOCKER: &str = "DOCKER";
pub const DOCKER_USER: &str = "DOCKER-USER";
pub const DOCKER_FORWARD: &str = "DOCKER-FORWARD";
/// Docker 28+: the per-bridge `-o X -j DOCKER` jumps live here instead of FORWARD.
pub const DOCKER_BRIDGE: &str = "DOCKER-BRIDGE";
pub const DOCKER_ISOLATION_STAGE_1: &str = "DOCKER-ISOLATION-STAGE-1";
/// Docker's nftables firewall backend: `ip docker-bridges` and `ip6 docker-bridges`.
pub const DOCKER_NFT_TABLE: &str = "docker-bridges";
/// The chains whose presence shows that Docker manages iptables.
pub const DOCKER_CHAINS: [&str; 4] = [
    DOCKER_USER,
    DOCKER,
    DOCKER_FORWARD,
    DOCKER_ISOLATION_STAGE_1,
];

// What we own in iptables: chains with this prefix, rules tagged with this comment.
pub const CHAIN_PREFIX: &str = "DFW-";
pub const TAG: &str = "docker_firewall:";
pub const INGRESS: &str = "DFW-INGRESS";
pub const INGRESS_POLICY: &str = "DFW-INGRESS-POLICY";
pub const GATE: &str = "DFW-GATE";
pub const GATE_POLICY: &str = "DFW-GATE-POLICY";
pub const PROXY_GUARD: &str = "DFW-PROXY-GUARD";
pub const INGRESS_DENY: &str = "DFW-INGRESS-DENY";
pub const EGRESS: &str = "DFW-EGRESS";
pub const EGRESS_POLICY: &str = "DFW-EGRESS-POLICY";
pub const HOST_GUARD: &str = "DFW-HOST-GUARD";
pub const HOST_POLICY: &str = "DFW-HOST-POLICY";
pub const EGRESS_DENY: &str = "DFW-EGRESS-DENY";

// What we own in ipset (the iptables dataplane's large allow lists): sets with this prefix.
pub const IPSET_PREFIX: &str = "dfw-";
/// Appended to a set's name for the set filled beside it and then swapped in.
pub const IPSET_TEMP_SUFFIX: &str = "-new";

// What we own in nftables: one table; its rules tagged with this comment.
pub const NFT_TABLE_FAMILY: &str = "inet";
pub const NFT_TABLE_NAME: &str = "docker_firewall";
pub const NFT_TAG: &str = "dfw:";
