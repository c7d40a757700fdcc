//! Rules the module writes, rendered in the exact canonical form `iptables-save` prints them in
//! (both backends, iptables 1.8), each tagged with `docker_firewall:<hash>` so that the live
//! state is recognised and compared without trusting rule text to round-trip.

pub use super::names::{CHAIN_PREFIX, TAG};

pub fn is_owned_chain(name: &str) -> bool {
    name.starts_with(CHAIN_PREFIX)
}

/// A rule of ours: its full spec (including the tag comment) and the hash in that tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub spec: String,
    pub hash: String,
}

/// Builds a rule spec in iptables-save order: addresses, interfaces, protocol, matches, the tag
/// comment, the target.
#[derive(Debug, Default, Clone)]
pub struct RuleBuilder {
    source: Option<String>,
    destination: Option<String>,
    in_interface: Option<String>,
    out_interface: Option<String>,
    proto: Option<String>,
    matches: Vec<String>,
    note: Option<String>,
}

impl RuleBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn source(mut self, cidr: impl Into<String>) -> Self {
        self.source = Some(cidr.into());
        self
    }

    pub fn destination(mut self, cidr: impl Into<String>) -> Self {
        self.destination = Some(cidr.into());
        self
    }

    pub fn in_interface(mut self, name: impl Into<String>) -> Self {
        self.in_interface = Some(name.into());
        self
    }

    pub fn out_interface(mut self, name: impl Into<String>) -> Self {
        self.out_interface = Some(name.into());
        self
    }

    pub fn proto(mut self, proto: impl Into<String>) -> Self {
        self.proto = Some(proto.into());
        self
    }

    /// A match as iptables-save prints it, e.g. `-m conntrack --ctstate RELATED,ESTABLISHED`.
    pub fn matching(mut self, text: impl Into<String>) -> Self {
        self.matches.push(text.into());
        self
    }

    /// A human note appended to the tag comment (the user's `comment`).
    pub fn note(mut self, note: Option<&str>) -> Self {
        self.note = note.map(str::to_string);
        self
    }

    /// Finishes the rule for `chain` with `target` (e.g. `RETURN`, `DROP`,
    /// `REJECT --reject-with tcp-reset`).
    pub fn jump(self, chain: &str, target: &str) -> Rule {
        let mut body = String::with_capacity(96);
        let options = [
            ("-s ", &self.source),
            ("-d ", &self.destination),
            ("-i ", &self.in_interface),
            ("-o ", &self.out_interface),
            ("-p ", &self.proto),
        ];
        for (flag, value) in options {
            if let Some(value) = value {
                push_part(&mut body, flag);
                body.push_str(value);
            }
        }
        for text in &self.matches {
            push_part(&mut body, text);
        }
        let hash = rule_hash(chain, &body, target, self.note.as_deref());
        let mut comment = String::with_capacity(TAG.len() + hash.len() + 1);
        comment.push_str(TAG);
        comment.push_str(&hash);
        if let Some(note) = &self.note {
            comment.push(' ');
            comment.push_str(note);
        }
        let mut spec = body;
        push_part(&mut spec, "-m comment --comment ");
        spec.push_str(&quote(&comment));
        spec.push_str(" -j ");
        spec.push_str(target);
        Rule { spec, hash }
    }
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
    super::save::comments(spec).into_iter().find_map(|c| {
        c.strip_prefix(TAG)
            .map(|rest| rest.split(' ').next().unwrap_or("").to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_in_save_order_and_tags() {
        let r = RuleBuilder::new()
            .proto("tcp")
            .source("192.0.2.0/24")
            .matching("-m conntrack --ctorigdstport 443 --ctdir ORIGINAL")
            .note(Some("load balancers"))
            .jump("DFW-INGRESS-POLICY", "RETURN");
        assert!(r.spec.starts_with(
            "-s 192.0.2.0/24 -p tcp -m conntrack --ctorigdstport 443 --ctdir ORIGINAL -m comment --comment \"docker_firewall:"
        ));
        assert!(r.spec.ends_with(" load balancers\" -j RETURN"));
        assert_eq!(tag_hash(&r.spec).as_deref(), Some(r.hash.as_str()));
        assert_eq!(r.hash.len(), 12);
    }

    #[test]
    fn hash_depends_on_meaning() {
        let a = RuleBuilder::new().jump("DFW-A", "DROP");
        let b = RuleBuilder::new().jump("DFW-B", "DROP");
        let c = RuleBuilder::new().note(Some("x")).jump("DFW-A", "DROP");
        assert_ne!(a.hash, b.hash);
        assert_ne!(a.hash, c.hash);
        assert_eq!(a, RuleBuilder::new().jump("DFW-A", "DROP"));
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
