//! The fake's nft: it understands the scripts our renderer writes (`table`/`delete table`, then
//! the table with its sets, chains and tagged rules) and lists our table back as `nft -j` would,
//! with what the module reads (chains, hooks, rule comments, set elements). Other tables are
//! canned JSON in `FakeSystem::nft_json`.

use super::CommandError;
use super::fake::FakeSystem;
use serde_json::{Value, json};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeTable {
    pub sets: Vec<(String, String, Vec<String>)>,
    pub chains: Vec<FakeChain>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeChain {
    pub name: String,
    /// `(hook, priority)` of a base chain.
    pub hook: Option<(String, i64)>,
    pub comments: Vec<String>,
}

const OURS: &str = "inet docker_firewall";

pub(super) fn list_tables(fake: &FakeSystem) -> Option<String> {
    let mut text = fake.nft_tables.borrow().clone()?;
    for name in fake.nft_json.borrow().keys() {
        text.push_str(&format!("table {name}\n"));
    }
    if fake.nft_ours.borrow().is_some() {
        text.push_str(&format!("table {OURS}\n"));
    }
    Some(text)
}

pub(super) fn run(
    fake: &FakeSystem,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, CommandError> {
    let command = format!("nft {}", args.join(" "));
    let fail = |stderr: String| CommandError {
        command: command.clone(),
        status: "exit status: 1".into(),
        stderr,
    };
    fake.nft_tables
        .borrow()
        .as_ref()
        .ok_or_else(|| CommandError {
            command: command.clone(),
            status: "not installed".into(),
            stderr: String::new(),
        })?;
    match args {
        ["-j", "list", "table", family, name] => {
            let id = format!("{family} {name}");
            if id == OURS {
                let ours = fake.nft_ours.borrow();
                let table = ours
                    .as_ref()
                    .ok_or_else(|| fail("Error: No such file or directory".into()))?;
                return Ok(listing(table));
            }
            fake.nft_json
                .borrow()
                .get(&id)
                .cloned()
                .ok_or_else(|| fail("Error: No such file or directory".into()))
        }
        ["list", "table", "inet", "docker_firewall"] => {
            let ours = fake.nft_ours.borrow();
            let table = ours
                .as_ref()
                .ok_or_else(|| fail("Error: No such file or directory".into()))?;
            Ok(format!("{table:?}\n"))
        }
        ["-f", "-"] | ["-j", "-f", "-"] => {
            let script = input.unwrap_or_default();
            fake.nft_scripts.borrow_mut().push(script.to_string());
            if fake.fail_nft.get() {
                return Err(fail(
                    "Error: Could not process rule: Operation not supported".into(),
                ));
            }
            if args[0] == "-j" {
                // A roll-back: our listing fed back.
                let doc: Value = serde_json::from_str(script).map_err(|e| fail(e.to_string()))?;
                fake.nft_ours.replace(from_listing(&doc));
                return Ok(String::new());
            }
            fake.nft_ours.replace(parse_script(script)?);
            Ok(String::new())
        }
        _ => Err(fail(format!("the fake nft does not know: {command}"))),
    }
}

/// Our renderer's script: the last `table inet docker_firewall {` block wins; a script that only
/// declares and deletes the table leaves none.
fn parse_script(script: &str) -> Result<Option<FakeTable>, CommandError> {
    let mut table: Option<FakeTable> = None;
    let mut chain: Option<FakeChain> = None;
    let mut set: Option<(String, String, Vec<String>)> = None;
    let mut in_elements = false;
    for line in script.lines().map(str::trim) {
        if line == format!("table {OURS} {{") {
            table = Some(FakeTable::default());
        } else if let Some(name) = line.strip_prefix("set ").and_then(|l| l.strip_suffix(" {")) {
            set = Some((name.to_string(), String::new(), Vec::new()));
        } else if let Some(name) = line
            .strip_prefix("chain ")
            .and_then(|l| l.strip_suffix(" {"))
        {
            chain = Some(FakeChain {
                name: name.to_string(),
                ..FakeChain::default()
            });
        } else if line == "elements = {" {
            in_elements = true;
        } else if in_elements {
            if line == "}" {
                in_elements = false;
            } else if let Some(s) = set.as_mut() {
                s.2.push(line.trim_end_matches(',').to_string());
            }
        } else if let Some(t) = line.strip_prefix("type ") {
            if let Some(c) = chain.as_mut() {
                // type filter hook prerouting priority dstnat - 10; policy accept;
                let words: Vec<&str> = t.split_whitespace().collect();
                let base = match words.get(4).copied() {
                    Some("dstnat") => -100,
                    _ => 0,
                };
                let offset: i64 = words
                    .get(6)
                    .map(|w| w.trim_end_matches(';'))
                    .and_then(|w| w.parse().ok())
                    .unwrap_or(0);
                c.hook = Some((words.get(2).unwrap_or(&"").to_string(), base - offset));
            } else if let Some(s) = set.as_mut() {
                s.1 = t.to_string();
            }
        } else if line == "}" {
            if let (Some(c), Some(t)) = (chain.take(), table.as_mut()) {
                t.chains.push(c);
            } else if let (Some(s), Some(t)) = (set.take(), table.as_mut()) {
                t.sets.push(s);
            }
        } else if let Some(c) = chain.as_mut() {
            let comment = line
                .rsplit_once("comment \"")
                .map(|(_, c)| c.trim_end_matches('"').to_string())
                .unwrap_or_default();
            c.comments.push(comment);
        }
    }
    Ok(table)
}

/// What `nft -j list table inet docker_firewall` prints of the table.
fn listing(table: &FakeTable) -> String {
    let mut items = vec![json!({"table": {"family": "inet", "name": "docker_firewall"}})];
    for (name, key, elements) in &table.sets {
        let key: Value = if key.contains(" . ") {
            json!(key.split(" . ").collect::<Vec<_>>())
        } else {
            json!(key)
        };
        let elem: Vec<Value> = elements
            .iter()
            .map(|e| match e.split_once('/') {
                Some((addr, len)) => {
                    json!({"prefix": {"addr": addr, "len": len.parse::<u8>().unwrap_or(0)}})
                }
                None => json!(e),
            })
            .collect();
        items.push(json!({"set": {"family": "inet", "table": "docker_firewall", "name": name, "type": key, "elem": elem}}));
    }
    for c in &table.chains {
        let mut chain = json!({"family": "inet", "table": "docker_firewall", "name": c.name});
        if let Some((hook, prio)) = &c.hook {
            chain["type"] = json!("filter");
            chain["hook"] = json!(hook);
            chain["prio"] = json!(prio);
            chain["policy"] = json!("accept");
        }
        items.push(json!({ "chain": chain }));
    }
    for c in &table.chains {
        for comment in &c.comments {
            items.push(json!({"rule": {"family": "inet", "table": "docker_firewall", "chain": c.name, "comment": comment, "expr": []}}));
        }
    }
    json!({ "nftables": items }).to_string()
}

/// The table back from a listing (the roll-back path), or none when the listing is a delete.
fn from_listing(doc: &Value) -> Option<FakeTable> {
    let items = doc.get("nftables")?.as_array()?;
    let mut table = FakeTable::default();
    let mut any = false;
    for item in items {
        if let Some(s) = item.get("set") {
            any = true;
            let key = match s.get("type") {
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" . "),
                Some(v) => v.as_str().unwrap_or_default().to_string(),
                None => String::new(),
            };
            let elements = s
                .get("elem")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|e| match e.get("prefix") {
                    Some(p) => format!("{}/{}", p["addr"].as_str().unwrap_or(""), p["len"]),
                    None => e.as_str().unwrap_or_default().to_string(),
                })
                .collect();
            table
                .sets
                .push((s["name"].as_str().unwrap_or_default().into(), key, elements));
        } else if let Some(c) = item.get("chain") {
            any = true;
            table.chains.push(FakeChain {
                name: c["name"].as_str().unwrap_or_default().into(),
                hook: c
                    .get("hook")
                    .and_then(Value::as_str)
                    .map(|h| (h.to_string(), c["prio"].as_i64().unwrap_or(0))),
                comments: Vec::new(),
            });
        } else if let Some(r) = item.get("rule") {
            let name = r["chain"].as_str().unwrap_or_default();
            if let Some(c) = table.chains.iter_mut().find(|c| c.name == name) {
                c.comments
                    .push(r["comment"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    any.then_some(table)
}
