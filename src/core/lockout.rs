//! Policies that would cut the wrong traffic are refused before anything is written:
//! "external" interfaces that also match loopback or a Docker bridge would make the host's own
//! traffic, or container traffic, look like outside traffic to the ingress filter; and
//! `egress.deny_host` would drop the controller's next SSH connection when it reaches the host
//! over a Docker network (a controller in a container on this host, or on a Docker network routed
//! to it).

use super::desired::interface_matches;
use super::policy::{Egress, Proto};
use ipnet::IpNet;
use std::net::IpAddr;

/// The management connection, as sshd describes it in SSH_CONNECTION:
/// "client_ip client_port server_ip server_port".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Management {
    pub client: IpAddr,
    pub server: IpAddr,
    pub server_port: u16,
}

impl Management {
    /// None for anything that is not four fields with two addresses and a port.
    pub fn parse(ssh_connection: &str) -> Option<Management> {
        let fields: Vec<&str> = ssh_connection.split_whitespace().collect();
        let [client, _, server, port] = fields.as_slice() else {
            return None;
        };
        Some(Management {
            client: address(client)?,
            server: address(server)?,
            server_port: port.parse().ok()?,
        })
    }
}

/// An address as sshd prints it: IPv4-mapped IPv6 reads as IPv4, a zone (`%eth0`) is dropped.
fn address(text: &str) -> Option<IpAddr> {
    let bare = text.split('%').next()?;
    match bare.parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)),
        v4 => Some(v4),
    }
}

/// The interface of the most specific route to `to` (the main routing table).
pub fn route_interface(routes: &[(IpNet, String)], to: IpAddr) -> Option<&str> {
    routes
        .iter()
        .filter(|(net, _)| net.contains(&to))
        .max_by_key(|(net, _)| net.prefix_len())
        .map(|(_, dev)| dev.as_str())
}

/// Why `egress.deny_host` cannot be applied, naming the field; None when it can. The guard drops
/// new connections from a Docker bridge to the host (replies and the running session pass), so
/// a controller whose route is a Docker bridge loses its next SSH connection, unless an
/// `egress.allow` entry lets TCP to the host's SSH address and port through.
pub fn deny_host_refusal(
    egress: &Egress,
    management: Option<&Management>,
    routes: &[(IpNet, String)],
    bridges: &[String],
) -> Option<String> {
    let m = management.filter(|_| egress.deny_host)?;
    let via = route_interface(routes, m.client)?;
    let bridge = bridges.iter().find(|b| interface_matches(b, via))?;
    let allowed = egress.allow.iter().any(|entry| {
        entry.proto == Proto::Tcp
            && entry.destinations.iter().any(|d| d.contains(&m.server))
            && (entry.ports.is_empty()
                || entry
                    .ports
                    .iter()
                    .any(|p| (p.first..=p.last).contains(&m.server_port)))
    });
    (!allowed).then(|| {
        format!(
            "egress.deny_host: the controller ({}) reaches this host over the Docker network on \
             '{via}' (matching '{bridge}'), and deny_host drops new connections from Docker \
             bridges to the host: the next SSH connection to {}:{} would be cut off. Add an \
             egress.allow entry for it (destinations: ['{}'], ports: [{}], proto: tcp), or run \
             the controller from outside the Docker networks",
            m.client, m.server, m.server_port, m.server, m.server_port
        )
    })
}

/// Whether two iptables interface patterns (`+` is a trailing wildcard) can match one name.
fn overlap(a: &str, b: &str) -> bool {
    match (a.strip_suffix('+'), b.strip_suffix('+')) {
        (Some(pa), Some(pb)) => pa.starts_with(pb) || pb.starts_with(pa),
        (Some(_), None) => interface_matches(a, b),
        (None, Some(_)) => interface_matches(b, a),
        (None, None) => a == b,
    }
}

/// Why the external interfaces cannot be used, naming the field; None when they can.
/// `bridges` are the Docker interface patterns plus the bridges Docker's rules name.
pub fn external_interface_refusal(
    external: &[String],
    explicit: bool,
    bridges: &[String],
) -> Option<String> {
    let field = |i: usize| {
        if explicit {
            format!("external_interfaces[{i}]")
        } else {
            "external_interfaces (not set: the interfaces holding a default route)".into()
        }
    };
    for (i, pattern) in external.iter().enumerate() {
        if interface_matches(pattern, "lo") {
            return Some(format!(
                "{}: '{pattern}' matches the loopback interface lo: the host's own connections, \
                 the management connection included, would be judged as outside traffic",
                field(i)
            ));
        }
        if let Some(bridge) = bridges.iter().find(|b| overlap(pattern, b)) {
            return Some(format!(
                "{}: '{pattern}' also matches the Docker bridge '{bridge}': traffic between \
                 containers and the host would be judged as outside traffic (and a controller \
                 reaching the host over a Docker network would be cut off); name the uplinks only",
                field(i)
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::policy::{EgressAllow, PortRange};

    fn egress(deny_host: bool, allow: Vec<EgressAllow>) -> Egress {
        Egress {
            deny_private: false,
            private_ranges: Vec::new(),
            deny_host,
            allow,
        }
    }

    fn routes() -> Vec<(IpNet, String)> {
        [
            ("0.0.0.0/0", "eth0"),
            ("192.0.2.0/24", "eth0"),
            ("172.17.0.0/16", "docker0"),
            ("172.18.0.0/16", "br-1a2b3c"),
            ("::/0", "eth0"),
            ("fd00:17::/64", "docker0"),
        ]
        .iter()
        .filter_map(|(n, d)| Some((n.parse().ok()?, d.to_string())))
        .collect()
    }

    fn bridges() -> Vec<String> {
        vec!["docker0".into(), "br-+".into()]
    }

    fn ssh_allow(dest: &str, ports: Vec<PortRange>, proto: Proto) -> EgressAllow {
        EgressAllow {
            destinations: vec![
                dest.parse::<IpNet>()
                    .or_else(|_| dest.parse::<IpAddr>().map(IpNet::from))
                    .unwrap(),
            ],
            ports,
            proto,
            comment: None,
        }
    }

    fn refusal(conn: &str, e: &Egress) -> Option<String> {
        deny_host_refusal(e, Management::parse(conn).as_ref(), &routes(), &bridges())
    }

    #[test]
    fn ssh_connection_parses() {
        let m = Management::parse("172.17.0.5 50122 172.17.0.1 22").unwrap();
        assert_eq!(m.client, "172.17.0.5".parse::<IpAddr>().unwrap());
        assert_eq!(m.server_port, 22);
        let mapped = Management::parse("::ffff:172.18.0.9 1 ::ffff:172.18.0.1 2222").unwrap();
        assert_eq!(mapped.client, "172.18.0.9".parse::<IpAddr>().unwrap());
        assert!(Management::parse("fe80::2%docker0 1 fe80::1%docker0 22").is_some());
        for bad in [
            "",
            "1.2.3.4 1 5.6.7.8",
            "x 1 5.6.7.8 22",
            "1.2.3.4 1 5.6.7.8 70000",
        ] {
            assert_eq!(Management::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_most_specific_route_wins() {
        let r = routes();
        assert_eq!(
            route_interface(&r, "172.17.3.4".parse().unwrap()),
            Some("docker0")
        );
        assert_eq!(
            route_interface(&r, "198.51.100.1".parse().unwrap()),
            Some("eth0")
        );
        assert_eq!(route_interface(&[], "198.51.100.1".parse().unwrap()), None);
    }

    #[test]
    fn deny_host_is_refused_for_a_controller_on_a_docker_network() {
        let on = egress(true, Vec::new());
        let msg = refusal("172.17.0.5 50122 172.17.0.1 22", &on).unwrap();
        assert!(
            msg.starts_with("egress.deny_host: the controller (172.17.0.5)"),
            "{msg}"
        );
        assert!(
            msg.contains("'docker0'") && msg.contains("172.17.0.1:22"),
            "{msg}"
        );
        let msg = refusal("172.18.0.9 1 192.0.2.10 2222", &on).unwrap();
        assert!(msg.contains("'br-1a2b3c' (matching 'br-+')"), "{msg}");
        assert!(refusal("fd00:17::5 1 fd00:17::1 22", &on).is_some());
        // from outside, deny_host off, no SSH session: nothing to refuse
        assert_eq!(refusal("192.0.2.77 1 192.0.2.10 22", &on), None);
        assert_eq!(
            refusal("172.17.0.5 1 172.17.0.1 22", &egress(false, Vec::new())),
            None
        );
        assert_eq!(deny_host_refusal(&on, None, &routes(), &bridges()), None);
    }

    #[test]
    fn an_egress_allow_entry_for_ssh_lifts_the_refusal() {
        let ssh = PortRange {
            first: 22,
            last: 22,
        };
        let conn = "172.17.0.5 50122 172.17.0.1 22";
        let ok = |allow| refusal(conn, &egress(true, vec![allow]));
        assert_eq!(ok(ssh_allow("172.17.0.1", vec![ssh], Proto::Tcp)), None);
        assert_eq!(ok(ssh_allow("172.17.0.0/16", Vec::new(), Proto::Tcp)), None);
        assert!(ok(ssh_allow("172.17.0.1", vec![ssh], Proto::Udp)).is_some());
        assert!(ok(ssh_allow("172.17.0.2", vec![ssh], Proto::Tcp)).is_some());
        let other = PortRange {
            first: 80,
            last: 443,
        };
        assert!(ok(ssh_allow("172.17.0.1", vec![other], Proto::Tcp)).is_some());
    }

    fn refused(external: &[&str]) -> Option<String> {
        let external: Vec<String> = external.iter().map(|s| s.to_string()).collect();
        let bridges = vec![
            "docker0".to_string(),
            "br-+".to_string(),
            "mybridge".to_string(),
        ];
        external_interface_refusal(&external, true, &bridges)
    }

    #[test]
    fn uplinks_pass_and_loopback_or_bridges_are_refused() {
        assert_eq!(refused(&["eth0", "ens+", "bond0"]), None);
        assert!(
            refused(&["eth0", "lo"]).is_some_and(|m| m.starts_with("external_interfaces[1]: 'lo'"))
        );
        assert!(refused(&["+"]).is_some_and(|m| m.contains("loopback")));
        assert!(refused(&["l+"]).is_some_and(|m| m.contains("loopback")));
        assert!(refused(&["docker0"]).is_some_and(|m| m.contains("Docker bridge 'docker0'")));
        assert!(refused(&["br+"]).is_some_and(|m| m.contains("'br-+'")));
        assert!(refused(&["br-abc"]).is_some_and(|m| m.contains("'br-+'")));
        assert!(refused(&["my+"]).is_some_and(|m| m.contains("'mybridge'")));
        assert_eq!(refused(&["brx0"]), None);
    }
}
