//! Generators and helpers for tests/fuzz.rs: save-like text, edits of real fixtures, JSON values
//! and edits of valid policies, the rules-file "foreign lines kept" check, and the scale figures.

use docker_firewall::core::desired::{DockerFacts, desired_state};
use docker_firewall::core::owned::LiveState;
use docker_firewall::core::plan::plan;
use docker_firewall::core::policy::{Config, Family};
use docker_firewall::core::save::parse_save;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::Value;
use std::time::Instant;

const CHAIN: &str = "(INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING|DOCKER|DOCKER-USER|DOCKER-FORWARD|\
DOCKER-ISOLATION-STAGE-1|DFW-INGRESS|DFW-INGRESS-POLICY|DFW-GATE|DFW-PROXY-GUARD|DFW-[A-Z]{0,5}|[A-Za-z_-]{1,10})";

/// Strings matching a regular expression.
fn re(pattern: &str) -> BoxedStrategy<String> {
    proptest::string::string_regex(pattern)
        .unwrap_or_else(|e| panic!("{pattern}: {e}"))
        .boxed()
}

fn spec() -> BoxedStrategy<String> {
    prop_oneof![
        re(&format!("-m comment --comment \"docker_firewall:[0-9a-f]{{12}}( [a-z ]{{0,8}})?\" -j {CHAIN}")),
        re("-p tcp -m tcp --dport [0-9]{1,5} -j DNAT --to-destination 172\\.17\\.0\\.[0-9]{1,3}:[0-9]{1,5}"),
        re("(! )?-i (docker0|br-[0-9a-f]{4}|eth0) -o (docker0|br-[0-9a-f]{4}|mybr) -j (DOCKER|ACCEPT|RETURN)"),
        re("-m conntrack --ctstate RELATED,ESTABLISHED -j (ACCEPT|RETURN)"),
        re("-m comment --comment \"[^\"\n]{0,30}\"( -m comment --comment \"docker_firewall:[0-9a-f]{0,14}\")? -j DROP"),
        Just("-j".to_string()).boxed(),
        re("[^\n]{0,60}"),
    ]
    .boxed()
}

fn save_line() -> BoxedStrategy<String> {
    prop_oneof![
        3 => re("\\*(filter|nat|mangle|raw|security|[a-z]{0,6})"),
        4 => re(&format!(":{CHAIN} (ACCEPT|DROP|-)( \\[[0-9]{{1,3}}:[0-9]{{1,5}}\\])?")),
        8 => (re("(\\[[0-9]{1,3}:[0-9]{1,5}\\] )?"), re(CHAIN), spec())
            .prop_map(|(counters, chain, spec)| format!("{counters}-A {chain} {spec}")).boxed(),
        3 => Just("COMMIT".to_string()).boxed(),
        1 => re("# [^\n]{0,20}"),
        1 => re("[^\n]{0,40}"),
    ]
    .boxed()
}

/// Lines that look like iptables-save output, in any order.
pub fn save_text() -> BoxedStrategy<String> {
    vec(save_line(), 0..80)
        .prop_map(|lines| lines.join("\n"))
        .boxed()
}

/// Any text, newlines, control characters and non-ASCII included.
pub fn unicode_text() -> BoxedStrategy<String> {
    "(?s).{0,400}".boxed()
}

/// One edit of a text: (what, where, with what).
pub type Edit = (u8, usize, usize, String);

/// A fixture index and a few edits to apply to it.
pub fn mutated_text(fixtures: usize) -> BoxedStrategy<(usize, Vec<Edit>)> {
    let edit = (0u8..8, any::<usize>(), any::<usize>(), save_line());
    (0..fixtures.max(1), vec(edit, 1..6)).boxed()
}

/// Applies edits line-wise: delete, duplicate, swap, insert, replace, cut a line, truncate the
/// text, insert characters inside a line.
pub fn apply_edits(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (op, a, b, new) in edits {
        if lines.is_empty() {
            lines.push(new.clone());
            continue;
        }
        let (i, j) = (a % lines.len(), b % lines.len());
        match op {
            0 => {
                lines.remove(i);
            }
            1 => lines.insert(i, lines[i].clone()),
            2 => lines.swap(i, j),
            3 => lines.insert(i, new.clone()),
            4 => lines[i] = new.clone(),
            5 => {
                let cut = char_boundary(&lines[i], *b);
                lines[i].truncate(cut);
            }
            6 => lines.truncate(i + 1),
            _ => {
                let at = char_boundary(&lines[i], *b);
                lines[i].insert_str(at, new);
            }
        }
    }
    lines.join("\n")
}

fn char_boundary(s: &str, at: usize) -> usize {
    let mut at = at % (s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

const KEYS: &str = "(state|families|backend|external_interfaces|docker_interfaces|strategy|ingress|egress|\
log|audit|persist|rules_v4|rules_v6|lock_timeout|default|allow|ports|proto|sources|destination|comment|\
deny_private|deny_host|private_ranges|destinations|enabled|prefix|rate|_ansible_check_mode|_ansible_diff|[a-z_]{1,8})";

fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u64..70_000).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "(present|absent|ipv4|ipv6|auto|nft|legacy|both|prerouting|docker_user|drop|reject|tcp|udp|all|\
eth0|lo|\\+|docker0|br-\\+|ens\\+|10\\.0\\.0\\.1|10\\.0\\.0\\.0/8|::1|fd00::/8|0\\.0\\.0\\.0/0|8080|1-65535|\
70000|0|10/min|0/sec|/tmp/r\\.v4|ipv4,ipv6)"
            .prop_map(Value::from),
        "[^\"]{0,20}".prop_map(Value::from),
        "(?s).{0,12}".prop_map(Value::from),
    ]
    .boxed()
}

/// Any JSON value, with the module's keys and values likely.
pub fn json_value() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::Array),
                btree_map(KEYS, inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// (what, which node, new value, new key): 0 replace a node, 1 remove it, 2 add a key beside it.
pub type PolicyEdit = (u8, usize, Value, String);

pub fn mutate_policy() -> BoxedStrategy<(usize, Vec<PolicyEdit>)> {
    let edit = (0u8..3, any::<usize>(), json_value(), KEYS);
    (0usize..3, vec(edit, 1..4)).boxed()
}

/// Every node's path below the root (keys and indices).
fn paths(v: &Value, prefix: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(Value::from(k.as_str()));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                prefix.push(Value::from(i));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn parent_of<'v>(root: &'v mut Value, path: &[Value]) -> Option<&'v mut Value> {
    let mut node = root;
    for step in path {
        node = match step {
            Value::String(k) => node.get_mut(k.as_str())?,
            Value::Number(i) => node.get_mut(i.as_u64()? as usize)?,
            _ => return None,
        };
    }
    Some(node)
}

/// The edited policy and the top-level keys the edits touched (an added top-level key counts).
pub fn apply_policy_edits(base: &Value, edits: &[PolicyEdit]) -> (Value, Vec<String>) {
    let mut policy = base.clone();
    let mut touched = Vec::new();
    for (op, at, value, key) in edits {
        let mut all = Vec::new();
        paths(&policy, &mut Vec::new(), &mut all);
        if all.is_empty() {
            break;
        }
        let path = &all[at % all.len()];
        let (last, parent_path) = path.split_last().unwrap_or((&Value::Null, &[]));
        let Some(parent) = parent_of(&mut policy, parent_path) else {
            continue;
        };
        let top = path
            .first()
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match (op, parent, last) {
            (0, p, Value::String(k)) => p[k.as_str()] = value.clone(),
            (0, Value::Array(a), Value::Number(i)) => {
                a[i.as_u64().unwrap_or(0) as usize] = value.clone()
            }
            (1, Value::Object(m), Value::String(k)) => {
                m.remove(k.as_str());
            }
            (1, Value::Array(a), Value::Number(i)) => {
                a.remove(i.as_u64().unwrap_or(0) as usize);
            }
            (_, Value::Object(m), _) => {
                m.insert(key.clone(), value.clone());
                touched.push(if parent_path.is_empty() {
                    key.clone()
                } else {
                    top.clone()
                });
            }
            _ => continue,
        }
        touched.push(top);
    }
    touched.retain(|k| !k.is_empty());
    (policy, touched)
}

fn is_ours(line: &str) -> bool {
    line.contains("DFW-") || line.contains("docker_firewall")
}

/// Every line of `before` that is not ours and not inside one of our complete BEGIN/END blocks
/// is in `after`, in the same order.
pub fn foreign_lines_kept(before: &str, after: &str) -> TestCaseResult {
    let lines: Vec<&str> = before.lines().collect();
    let mut foreign = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim();
        if l.starts_with("# BEGIN docker_firewall")
            && let Some(end) = lines[i..]
                .iter()
                .position(|x| x.trim().starts_with("# END docker_firewall"))
        {
            i += end + 1;
            continue;
        }
        if !is_ours(l) && !l.is_empty() {
            // CRs at line ends are not compared (see the lone-CR note in tests/fuzz.rs)
            foreign.push(lines[i].trim_end_matches('\r'));
        }
        i += 1;
    }
    let mut out = after.lines();
    for want in foreign {
        prop_assert!(
            out.any(|l| l.trim_end_matches('\r') == want),
            "foreign line lost or moved: {:?}\nbefore:\n{}\nafter:\n{}",
            want,
            before,
            after
        );
    }
    Ok(())
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed().as_secs_f64() * 1000.0)
}

/// Parse and plan times of big inputs, printed as "scale-figure ..." lines.
pub fn scale_figures(configs: &[Config]) {
    let config = &configs[0];
    let external = vec!["eth0".to_string()];
    // The best of three runs: the machine is shared, the figures are for growth, not speed.
    let measure = |label: &str, text: String| {
        let (mut parse_ms, mut plan_ms, mut n) = (f64::MAX, f64::MAX, 0);
        for _ in 0..3 {
            let (parsed, ms) = timed(|| parse_save(&text));
            parse_ms = parse_ms.min(ms);
            let ruleset = parsed.unwrap_or_else(|e| panic!("{label}: {e}"));
            let (actions, ms) = timed(|| {
                let live = LiveState::from_ruleset(&ruleset);
                let facts = DockerFacts::read(&ruleset);
                let desired =
                    desired_state(config, Family::Ipv4, &external, &facts).expect("expressible");
                plan(&live, &desired).actions().len()
            });
            plan_ms = plan_ms.min(ms);
            n = actions;
        }
        println!(
            "scale-figure input={label} bytes={} parse_ms={parse_ms:.1} live_plan_ms={plan_ms:.1} actions={n}",
            text.len()
        );
        parse_ms + plan_ms
    };
    let head = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                :DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\n";
    let long_line = format!(
        "{head}-A INPUT -m comment --comment \"{}\" -j ACCEPT\nCOMMIT\n",
        "x".repeat(1 << 20)
    );
    measure("1MB-line", long_line);
    let chains = |n: usize| {
        let mut t = head.to_string();
        for i in 0..n {
            t.push_str(&format!(":CHAIN-{i} - [0:0]\n"));
        }
        for i in 0..n {
            t.push_str(&format!("-A CHAIN-{i} -j RETURN\n"));
        }
        t + "COMMIT\n"
    };
    let rules = |n: usize| {
        let mut t = head.to_string();
        for i in 0..n {
            t.push_str(&format!(
                "-A DOCKER-USER -s 10.{}.{}.{}/32 -p tcp -m tcp --dport {} -j RETURN\n",
                i >> 16 & 255,
                i >> 8 & 255,
                i & 255,
                1 + i % 65535
            ));
        }
        t + "COMMIT\n"
    };
    for (what, make) in [
        ("chains", &chains as &dyn Fn(usize) -> String),
        ("rules", &rules),
    ] {
        let small = measure(&format!("10k-{what}"), make(10_000));
        let big = measure(&format!("100k-{what}"), make(100_000));
        println!(
            "scale-figure growth={what} 10k_to_100k_time_ratio={:.1} (10.0 is linear)",
            big / small.max(0.001)
        );
    }
}
