//! The iptables rendering of typed rules: the exact canonical form `iptables-save` prints (both
//! backends, iptables 1.8), each rule tagged with `docker_firewall:<hash>` so that the live state
//! is recognised and compared without trusting rule text to round-trip.

use super::{Action, Match, Rule};
use crate::core::policy::{Family, PortRange};
use std::fmt;

pub use crate::core::names::{CHAIN_PREFIX, TAG};

pub fn is_owned_chain(name: &str) -> bool {
    name.starts_with(CHAIN_PREFIX)
}

/// A rule of ours as iptables holds it: its full spec (including the tag comment) and the hash
/// in that tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IptablesRule {
    pub spec: String,
    pub hash: String,
}

/// A typed rule one iptables rule cannot say (the layout never builds one; a test renders every
/// layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unexpressible {
    pub chain: String,
    pub what: String,
}

impl fmt::Display for Unexpressible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "internal: a rule for {} that one iptables rule cannot express: {}",
            self.chain, self.what
        )
    }
}

impl std::error::Error for Unexpressible {}

/// Renders `rule` for `chain` in `family`'s tables, in iptables-save order: addresses,
/// interfaces, protocol, matches, the tag comment, the target.
pub fn render(chain: &str, family: Family, rule: &Rule) -> Result<IptablesRule, Unexpressible> {
    let fail = |what: String| Unexpressible {
        chain: chain.to_string(),
        what,
    };
    let mut source = None;
    let mut destination = None;
    let mut in_interface = None;
    let mut out_interface = None;
    let mut proto: Option<&str> = None;
    let mut matches: Vec<String> = Vec::new();
    // --ctorigdst and --ctorigdstport share one conntrack match, where the first of them stands.
    let mut original: (Option<String>, Option<String>, Option<usize>) = (None, None, None);
    for m in &rule.matches {
        match m {
            Match::Replies => matches.push("-m conntrack --ctstate RELATED,ESTABLISHED".into()),
            Match::Family(f) if *f == family => {}
            Match::Family(f) => return Err(fail(format!("a rule of {}", f.name()))),
            Match::InInterface(p) => in_interface = Some(p.clone()),
            Match::OutInterface(p) => out_interface = Some(p.clone()),
            Match::Source(net) => source = Some(net.to_string()),
            Match::SourceSet(_, name) => matches.push(format!("-m set --match-set {name} src")),
            Match::Destinations(_, nets) => match nets.as_slice() {
                [one] => destination = Some(one.to_string()),
                _ => return Err(fail(format!("{} destinations", nets.len()))),
            },
            Match::LocalDestination => matches.push("-m addrtype --dst-type LOCAL".into()),
            Match::Proto(p) => proto = Some(p),
            Match::DestinationPorts(p, ports) => {
                proto = Some(p);
                matches.push(match ports.as_slice() {
                    [one] => format!("-m {p} --dport {}", one.iptables()),
                    _ => format!("-m multiport --dports {}", port_list(ports)),
                });
            }
            Match::OriginalAddress(a) => {
                original.0 = Some(a.to_string());
                original.2.get_or_insert(matches.len());
            }
            Match::OriginalPort(p) => {
                original.1 = Some(p.iptables());
                original.2.get_or_insert(matches.len());
            }
            Match::Icmpv6Types(types) => match types.as_slice() {
                [one] => {
                    proto = Some("ipv6-icmp");
                    matches.push(format!("-m icmp6 --icmpv6-type {one}"));
                }
                _ => return Err(fail(format!("{} ICMPv6 types", types.len()))),
            },
            Match::Portless => return Err(fail("not TCP and not UDP".into())),
        }
    }
    if let (destination, port, Some(at)) = original {
        matches.insert(at, ctorig_match(destination.as_deref(), port.as_deref()));
    }
    let (action_match, target) = target(&rule.action, family);
    matches.extend(action_match);

    let mut body = String::with_capacity(96);
    let options = [
        ("-s ", source.as_deref()),
        ("-d ", destination.as_deref()),
        ("-i ", in_interface.as_deref()),
        ("-o ", out_interface.as_deref()),
        ("-p ", proto),
    ];
    for (flag, value) in options {
        if let Some(value) = value {
            push_part(&mut body, flag);
            body.push_str(value);
        }
    }
    for text in &matches {
        push_part(&mut body, text);
    }
    let note = rule.note.as_deref();
    let hash = rule_hash(chain, &body, &target, note);
    let mut comment = String::with_capacity(TAG.len() + hash.len() + 1);
    comment.push_str(TAG);
    comment.push_str(&hash);
    if let Some(note) = note {
        comment.push(' ');
        comment.push_str(note);
    }
    let mut spec = body;
    push_part(&mut spec, "-m comment --comment ");
    spec.push_str(&quote(&comment));
    spec.push_str(" -j ");
    spec.push_str(&target);
    Ok(IptablesRule { spec, hash })
}

/// Renders every rule of `chain`.
pub fn render_all(
    chain: &str,
    family: Family,
    rules: &[Rule],
) -> Result<Vec<IptablesRule>, Unexpressible> {
    rules.iter().map(|r| render(chain, family, r)).collect()
}

/// A rule of `chain` that matches everything, for unit tests.
#[cfg(test)]
pub fn always(chain: &str, action: Action) -> IptablesRule {
    render(chain, Family::Ipv4, &Rule::always(action)).expect("a rule without matches renders")
}

/// The action's target, and the match it needs before the comment (a log rule's rate limit).
fn target(action: &Action, family: Family) -> (Option<String>, String) {
    let plain = |t: &str| (None, t.to_string());
    match action {
        Action::Return => plain("RETURN"),
        Action::Jump(chain) => plain(chain),
        Action::Accept => plain("ACCEPT"),
        Action::Drop => plain("DROP"),
        Action::RejectTcpReset => plain("REJECT --reject-with tcp-reset"),
        Action::RejectUnreachable => plain(match family {
            Family::Ipv4 => "REJECT --reject-with icmp-port-unreachable",
            Family::Ipv6 => "REJECT --reject-with icmp6-port-unreachable",
        }),
        Action::LogPerFlow {
            bucket,
            rate,
            prefix,
            ..
        } => (
            Some(format!(
                "-m hashlimit --hashlimit-upto {} --hashlimit-burst 5 --hashlimit-mode srcip,dstip,dstport --hashlimit-name {bucket}",
                rate.iptables()
            )),
            log_target(prefix),
        ),
        Action::LogLimited { rate, prefix } => (
            Some(format!(
                "-m limit --limit {} --limit-burst 5",
                rate.iptables()
            )),
            log_target(prefix),
        ),
    }
}

fn log_target(prefix: &str) -> String {
    format!("LOG --log-prefix {}", quote(prefix))
}

/// `-m conntrack [--ctorigdst D] [--ctorigdstport P] --ctdir ORIGINAL`.
fn ctorig_match(destination: Option<&str>, port: Option<&str>) -> String {
    let mut text = String::from("-m conntrack");
    if let Some(d) = destination {
        text.push_str(" --ctorigdst ");
        text.push_str(d);
    }
    if let Some(p) = port {
        text.push_str(" --ctorigdstport ");
        text.push_str(p);
    }
    text.push_str(" --ctdir ORIGINAL");
    text
}

fn port_list(ports: &[PortRange]) -> String {
    let items: Vec<String> = ports.iter().map(|p| p.iptables()).collect();
    items.join(",")
}

/// Appends `text` to a rule spec, space-separated.
fn push_part(spec: &mut String, text: &str) {
    if !spec.is_empty() {
        spec.push(' ');
    }
    spec.push_str(text);
}

/// 12 hex digits of FNV-1a over the rule's meaning: its chain, matches, target and note.
fn rule_hash(chain: &str, body: &str, target: &str, note: Option<&str>) -> String {
    fnv12(&[chain, body, target, note.unwrap_or("")])
}

/// 12 hex digits of FNV-1a over `parts`, each followed by a NUL but the last.
pub fn fnv12(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hash ^= 0;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for byte in part.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{:012x}", hash >> 16)
}

/// Quotes a value the way iptables-save does (`xtables_save_string`): bare when it is only
/// letters, digits, `_` and `-`; otherwise in double quotes with `"`, `\` and `'` escaped.
pub fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The hash in a rule's tag comment, if the rule carries our tag.
pub fn tag_hash(spec: &str) -> Option<String> {
    // Most rules are foreign: skip splitting them into arguments when the tag is not there.
    let at = spec.find(TAG)?;
    // Ours: the tag opens the comment (quoted, as iptables-save prints it): read the hash in place.
    if spec[..at].ends_with("--comment \"") {
        let rest = &spec[at + TAG.len()..];
        let end = rest.find([' ', '"', '\\']).unwrap_or(rest.len());
        if rest[end..].starts_with([' ', '"']) {
            return Some(rest[..end].to_string());
        }
    }
    crate::core::save::comments(spec).into_iter().find_map(|c| {
        c.strip_prefix(TAG)
            .map(|rest| rest.split(' ').next().unwrap_or("").to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::core::policy::Rate;

    fn ipv4(chain: &str, rule: &Rule) -> IptablesRule {
        render(chain, Family::Ipv4, rule).expect("expressible")
    }

    #[test]
    fn renders_in_save_order_and_tags() {
        let rule = Rule::new(
            vec![
                Match::OriginalPort(PortRange {
                    first: 443,
                    last: 443,
                }),
                Match::Proto("tcp".into()),
                Match::Source("192.0.2.0/24".parse().unwrap()),
                Match::OriginalAddress("203.0.113.10".parse().unwrap()),
            ],
            Action::Return,
        )
        .with_note(Some("load balancers"));
        let r = ipv4("DFW-INGRESS-POLICY", &rule);
        assert!(r.spec.starts_with(
            "-s 192.0.2.0/24 -p tcp -m conntrack --ctorigdst 203.0.113.10 --ctorigdstport 443 --ctdir ORIGINAL -m comment --comment \"docker_firewall:"
        ), "{}", r.spec);
        assert!(r.spec.ends_with(" load balancers\" -j RETURN"));
        assert_eq!(tag_hash(&r.spec).as_deref(), Some(r.hash.as_str()));
        assert_eq!(r.hash.len(), 12);
    }

    #[test]
    fn hash_depends_on_meaning() {
        let drop = Rule::always(Action::Drop);
        let a = ipv4("DFW-A", &drop);
        let b = ipv4("DFW-B", &drop);
        let c = ipv4("DFW-A", &drop.clone().with_note(Some("x")));
        assert_ne!(a.hash, b.hash);
        assert_ne!(a.hash, c.hash);
        assert_eq!(a, ipv4("DFW-A", &drop));
    }

    #[test]
    fn log_rules_carry_their_rate_limit_before_the_comment() {
        let rate = Rate {
            count: 6,
            unit: "min",
        };
        let log = Rule::always(Action::LogPerFlow {
            bucket: "dfw-in4-0001".into(),
            family: Family::Ipv4,
            rate,
            prefix: "docker-fw in-drop ".into(),
        });
        let spec = ipv4("DFW-INGRESS-DENY", &log).spec;
        assert!(spec.starts_with("-m hashlimit --hashlimit-upto 6/min --hashlimit-burst 5 --hashlimit-mode srcip,dstip,dstport --hashlimit-name dfw-in4-0001 -m comment"), "{spec}");
        assert!(
            spec.ends_with(" -j LOG --log-prefix \"docker-fw in-drop \""),
            "{spec}"
        );
        let unreachable = Rule::always(Action::RejectUnreachable);
        let v6 = render("DFW-INGRESS-DENY", Family::Ipv6, &unreachable).unwrap();
        assert!(
            v6.spec
                .ends_with("-j REJECT --reject-with icmp6-port-unreachable")
        );
    }

    #[test]
    fn what_one_rule_cannot_say_is_an_error_naming_the_chain() {
        let cases = [
            Match::Portless,
            Match::Destinations(Family::Ipv4, Vec::new()),
            Match::Icmpv6Types(vec![133, 134]),
            Match::Family(Family::Ipv6),
        ];
        for m in cases {
            let err = render("DFW-X", Family::Ipv4, &Rule::new(vec![m], Action::Drop)).unwrap_err();
            assert!(err.to_string().contains("DFW-X"), "{err}");
        }
        let ports = vec![
            PortRange {
                first: 53,
                last: 53,
            },
            PortRange {
                first: 8000,
                last: 8010,
            },
        ];
        let multi = Rule::new(
            vec![Match::DestinationPorts("udp".into(), ports)],
            Action::Return,
        );
        assert!(
            ipv4("DFW-X", &multi)
                .spec
                .starts_with("-p udp -m multiport --dports 53,8000:8010 ")
        );
    }

    #[test]
    fn quotes_like_iptables_save() {
        assert_eq!(quote("docker_firewall"), "docker_firewall");
        assert_eq!(quote("a:b"), "\"a:b\"");
        assert_eq!(quote("say \"hi\""), "\"say \\\"hi\\\"\"");
    }

    #[test]
    fn ignores_foreign_comments() {
        assert_eq!(
            tag_hash("-m comment --comment \"ufw rule\" -j ACCEPT"),
            None
        );
        assert_eq!(
            tag_hash("-m comment --comment \"docker_firewall:abc def\" -j ACCEPT").as_deref(),
            Some("abc")
        );
    }
}
