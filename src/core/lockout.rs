//! Policies that would cut the wrong traffic are refused before anything is read or written:
//! "external" interfaces that also match loopback or a Docker bridge would make the host's own
//! traffic, or container traffic, look like outside traffic to the ingress filter.

use super::desired::interface_matches;

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
    use super::external_interface_refusal;

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
