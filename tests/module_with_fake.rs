//! The whole module against the fake machine: apply, idempotence, check mode, diff, absent,
//! rollback, persistence, and failures, with every process call counted.

use docker_firewall::core::policy::{Backend, Family};
use docker_firewall::system::fake::FakeSystem;
use serde_json::{Value, json};
use std::path::Path;

mod common;
use common::{DOCKER_USER_ONLY, foreign_lines, run, without_empty_tables};

const DOCKER_20_V4: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
:ufw-user-input - [0:0]
-A INPUT -j ufw-user-input
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -s 192.0.2.66/32 -m comment --comment \"admin: block scanner\" -j DROP
-A DOCKER-USER -j RETURN
-A ufw-user-input -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
";

fn machine() -> FakeSystem {
    let fake = FakeSystem::new();
    fake.load(Family::Ipv4, Backend::Nft, DOCKER_20_V4);
    fake.load(Family::Ipv6, Backend::Nft, DOCKER_USER_ONLY);
    fake
}

fn policy() -> Value {
    json!({
        "external_interfaces": ["eth0"],
        "ingress": {"allow": [
            {"ports": [443], "sources": ["192.0.2.0/26", "2001:db8:1::/48"], "comment": "load balancers"},
            {"ports": ["5432"], "sources": ["198.51.100.7"], "destination": "203.0.113.10"}
        ]},
        "rules_v4": "/etc/iptables/rules.v4",
        "rules_v6": "/etc/iptables/rules.v6",
        "_ansible_diff": true,
        "_ansible_version": "2.19.14",
        "_ansible_module_name": "docker_firewall"
    })
}

fn with(base: &Value, changes: Value) -> Value {
    let mut out = base.clone();
    for (k, v) in changes.as_object().unwrap() {
        out[k] = v.clone();
    }
    out
}

#[test]
fn applies_once_then_changes_nothing() {
    let fake = machine();
    let before_v4 = fake.dump(Family::Ipv4, Backend::Nft);
    let first = run(&fake, &policy());
    assert_eq!(first["failed"], Value::Null, "{first}");
    assert_eq!(first["changed"], true);
    assert_eq!(first["backend"], "nft");
    assert_eq!(fake.restores.get(), 2, "one restore per family");
    assert_eq!(
        first["persisted"],
        json!(["/etc/iptables/rules.v4", "/etc/iptables/rules.v6"])
    );
    let after_v4 = fake.dump(Family::Ipv4, Backend::Nft);
    assert_eq!(foreign_lines(&before_v4), foreign_lines(&after_v4));
    assert!(after_v4.contains("-A DOCKER-USER -m comment --comment \"docker_firewall:"));
    let docker_user: Vec<&str> = after_v4
        .lines()
        .filter(|l| l.starts_with("-A DOCKER-USER"))
        .collect();
    assert!(
        docker_user[0].ends_with("-j DFW-INGRESS"),
        "our hook is first"
    );

    let restores = fake.restores.get();
    let writes = fake.file_writes.get();
    let second = run(&fake, &policy());
    assert_eq!(second["changed"], false, "{second}");
    assert_eq!(
        fake.restores.get(),
        restores,
        "a no-op run restores nothing"
    );
    assert_eq!(
        fake.file_writes.get(),
        writes,
        "an unchanged file is left alone"
    );
    assert_eq!(second["diff"], json!([]));
    assert_eq!(second["rules"], first["rules"]);
}

#[test]
fn check_mode_predicts_exactly_and_changes_nothing() {
    let fake = machine();
    let dump = fake.dump(Family::Ipv4, Backend::Nft);
    let check = run(
        &fake,
        &with(&policy(), json!({"_ansible_check_mode": true})),
    );
    assert_eq!(check["changed"], true);
    assert_eq!(fake.restores.get(), 0);
    assert_eq!(fake.file_writes.get(), 0);
    assert_eq!(fake.dump(Family::Ipv4, Backend::Nft), dump);
    assert_eq!(check["persisted"], json!([]));

    let real = run(&fake, &policy());
    assert_eq!(
        real["diff"], check["diff"],
        "check mode shows the same diff"
    );
    assert_eq!(real["rules"], check["rules"]);
    assert_eq!(real["plan"], check["plan"]);

    let again = run(
        &fake,
        &with(&policy(), json!({"_ansible_check_mode": true})),
    );
    assert_eq!(again["changed"], false);
}

#[test]
fn diff_only_when_asked() {
    let fake = machine();
    let result = run(&fake, &with(&policy(), json!({"_ansible_diff": false})));
    assert!(result.get("diff").is_none());
    let fake = machine();
    let result = run(&fake, &policy());
    let diff = result["diff"].as_array().unwrap();
    assert_eq!(
        diff.len(),
        5,
        "two families, two files and who can reach the ports: {diff:?}"
    );
    let exposure = &diff[4];
    assert!(
        exposure["before_header"]
            .as_str()
            .unwrap()
            .starts_with("who can reach")
    );
    let changes = result["exposure_changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c.as_str().unwrap()
                == "ipv6 8080/tcp -> docker-proxy: open to anyone -> closed"),
        "{changes:?}"
    );
    assert!(
        diff[0]["before_header"]
            .as_str()
            .unwrap()
            .starts_with("ipv4")
    );
    assert!(
        diff[1]["before_header"]
            .as_str()
            .unwrap()
            .contains("rules.v4 (absent)")
    );
}

#[test]
fn absent_restores_the_ruleset() {
    let fake = machine();
    let v4 = fake.dump(Family::Ipv4, Backend::Nft);
    let v6 = fake.dump(Family::Ipv6, Backend::Nft);
    for strategy in ["docker_user", "prerouting", "both"] {
        let present = with(&policy(), json!({"strategy": strategy}));
        assert_eq!(run(&fake, &present)["changed"], true);
        let absent = with(&policy(), json!({"state": "absent"}));
        let result = run(&fake, &absent);
        assert_eq!(result["changed"], true, "{result}");
        assert_eq!(
            without_empty_tables(&fake.dump(Family::Ipv4, Backend::Nft)),
            v4,
            "{strategy}"
        );
        // iptables-restore cannot delete a table, so a nat table we used stays, empty.
        assert_eq!(
            without_empty_tables(&fake.dump(Family::Ipv6, Backend::Nft)),
            v6,
            "{strategy}"
        );
        assert!(fake.files.borrow().is_empty(), "created files are removed");
        assert_eq!(run(&fake, &absent)["changed"], false);
    }
}

#[test]
fn repairs_a_hook_docker_moved() {
    let fake = machine();
    run(&fake, &policy());
    // Docker restarting: its rules go back to the top of DOCKER-USER's parent chain.
    fake.apply(
        Family::Ipv4,
        Backend::Nft,
        "*filter\n-I DOCKER-USER 1 -s 192.0.2.99/32 -j DROP\nCOMMIT\n",
    )
    .unwrap();
    let result = run(&fake, &policy());
    assert_eq!(result["changed"], true);
    let plan = result["plan"]["ipv4"].as_array().unwrap();
    assert_eq!(plan.len(), 2, "{plan:?}");
    let dump = fake.dump(Family::Ipv4, Backend::Nft);
    let first = dump
        .lines()
        .find(|l| l.starts_with("-A DOCKER-USER"))
        .unwrap();
    assert!(first.ends_with("-j DFW-INGRESS"));
    assert!(dump.contains("-A DOCKER-USER -s 192.0.2.99/32 -j DROP"));
    assert_eq!(run(&fake, &policy())["changed"], false);
}

#[test]
fn rewrites_an_owned_chain_holding_a_foreign_rule() {
    let fake = machine();
    run(&fake, &policy());
    fake.apply(
        Family::Ipv4,
        Backend::Nft,
        "*filter\n-I DFW-INGRESS-POLICY 1 -j RETURN\nCOMMIT\n",
    )
    .unwrap();
    let result = run(&fake, &policy());
    assert_eq!(result["changed"], true);
    assert_eq!(
        result["plan"]["ipv4"],
        json!(["filter: rewrite chain DFW-INGRESS-POLICY (3 rules)"])
    );
    assert!(
        !fake
            .dump(Family::Ipv4, Backend::Nft)
            .contains("-A DFW-INGRESS-POLICY -j RETURN")
    );
}

#[test]
fn puts_back_a_deleted_owned_rule_without_touching_the_others() {
    let fake = machine();
    run(&fake, &policy());
    let first = fake
        .dump(Family::Ipv4, Backend::Nft)
        .lines()
        .find(|l| l.starts_with("-A DFW-INGRESS-POLICY "))
        .map(|l| l.trim_start_matches("-A DFW-INGRESS-POLICY ").to_string())
        .unwrap();
    fake.apply(
        Family::Ipv4,
        Backend::Nft,
        &format!("*filter\n-D DFW-INGRESS-POLICY {first}\nCOMMIT\n"),
    )
    .unwrap();
    let result = run(&fake, &policy());
    assert_eq!(
        result["plan"]["ipv4"],
        json!(["filter: edit chain DFW-INGRESS-POLICY (delete 0, insert 1; 3 rules)"])
    );
    let input = fake.restore_inputs.borrow().last().cloned().unwrap();
    assert!(
        !input.contains(":DFW-INGRESS-POLICY"),
        "an edit never declares (flushes) the chain: {input}"
    );
    assert_eq!(run(&fake, &policy())["changed"], false);
}

#[test]
fn a_later_family_failing_rolls_back_the_earlier() {
    let fake = machine();
    let v4 = fake.dump(Family::Ipv4, Backend::Nft);
    fake.fail_restore.set(Some(Family::Ipv6));
    let result = run(&fake, &policy());
    assert_eq!(result["failed"], true);
    let msg = result["msg"].as_str().unwrap();
    assert!(msg.contains("ipv4 rolled back"), "{msg}");
    assert!(msg.contains("ipv6"), "{msg}");
    assert!(
        msg.contains("input line 2"),
        "names the failing input line: {msg}"
    );
    assert_eq!(fake.dump(Family::Ipv4, Backend::Nft), v4);
    assert_eq!(fake.file_writes.get(), 0);
}

/// Found by tests/netns/test_faults.sh: iptables-restore commits each table at its COMMIT, so a
/// failure in the input's second table left the first one applied, and the run said "nothing
/// was changed". The failing family is rolled back too.
#[test]
fn a_restore_failing_on_its_second_table_rolls_back_the_first() {
    let fake = machine();
    let start = with(&policy(), json!({"strategy": "docker_user"}));
    assert_eq!(run(&fake, &start)["failed"], Value::Null);
    let (v4, v6) = (
        fake.dump(Family::Ipv4, Backend::Nft),
        fake.dump(Family::Ipv6, Backend::Nft),
    );
    *fake.fail_restore_table.borrow_mut() = Some("nat".into());
    // nat gets the gate, filter a new allow entry: a restore of two tables per family
    let both = with(
        &policy(),
        json!({"strategy": "both",
               "ingress": {"allow": [{"ports": [8443], "sources": ["192.0.2.0/26"]}]}}),
    );
    let result = run(&fake, &both);
    assert_eq!(result["failed"], true, "{result}");
    // inputs: the first run's two, then this run's ipv4 one (the one that fails)
    let input = fake.restore_inputs.borrow()[2].clone();
    assert!(
        input.starts_with("*filter\n") && input.contains("\n*nat\n"),
        "{input}"
    );
    let msg = result["msg"].as_str().unwrap();
    assert!(msg.starts_with("ipv4 rolled back: ipv4: "), "{msg}");
    assert_eq!(fake.dump(Family::Ipv4, Backend::Nft), v4, "filter put back");
    assert_eq!(fake.dump(Family::Ipv6, Backend::Nft), v6);
    assert_eq!(run(&fake, &both)["changed"], true);
    assert_eq!(run(&fake, &both)["changed"], false);
}

#[test]
fn a_rules_file_that_cannot_be_written_undoes_the_run() {
    let fake = machine();
    let (v4, v6) = (
        fake.dump(Family::Ipv4, Backend::Nft),
        fake.dump(Family::Ipv6, Backend::Nft),
    );
    let admin = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n";
    fake.files
        .borrow_mut()
        .insert("/etc/iptables/rules.v4".into(), admin.into());
    *fake.fail_write.borrow_mut() = Some("/etc/iptables/rules.v6".into());
    let result = run(&fake, &policy());
    assert_eq!(result["failed"], true);
    let msg = result["msg"].as_str().unwrap();
    assert!(msg.contains("cannot write /etc/iptables/rules.v6"), "{msg}");
    assert!(msg.contains("/etc/iptables/rules.v4 put back"), "{msg}");
    assert!(msg.contains("ipv4 rolled back, ipv6 rolled back"), "{msg}");
    let files = fake.files.borrow();
    assert_eq!(files["/etc/iptables/rules.v4".as_ref() as &Path], admin);
    assert!(!files.contains_key("/etc/iptables/rules.v6".as_ref() as &Path));
    assert_eq!(fake.dump(Family::Ipv4, Backend::Nft), v4);
    assert_eq!(fake.dump(Family::Ipv6, Backend::Nft), v6);
}

#[test]
fn a_restore_error_names_the_command_and_line() {
    let fake = machine();
    // A foreign rule jumping to our chain keeps it from being deleted.
    run(&fake, &policy());
    fake.apply(
        Family::Ipv4,
        Backend::Nft,
        "*filter\n-A FORWARD -j DFW-INGRESS\nCOMMIT\n",
    )
    .unwrap();
    let result = run(&fake, &with(&policy(), json!({"state": "absent"})));
    assert_eq!(result["failed"], true);
    let msg = result["msg"].as_str().unwrap();
    assert!(
        msg.contains("fake-ipv4-nft-restore --noflush --wait"),
        "{msg}"
    );
    assert!(msg.contains("-X DFW-INGRESS"), "{msg}");
}

#[test]
fn bad_input_touches_nothing() {
    for args in [
        json!({"ingress": {"allow": [{"sources": ["987.65.432.1"]}]}}),
        json!({"ingress": {"allow": [{"ports": [70000]}]}}),
        json!({"unknown_key": 1}),
        json!({"external_interfaces": ["eth0", "this-name-is-too-long"]}),
    ] {
        let fake = machine();
        let result = run(&fake, &args);
        assert_eq!(result["failed"], true, "{args}");
        assert_eq!(
            fake.saves.get() + fake.restores.get() + fake.file_writes.get(),
            0
        );
    }
}

#[test]
fn needs_an_external_interface() {
    let fake = machine();
    fake.routes.borrow_mut().clear();
    let mut args = policy();
    args.as_object_mut().unwrap().remove("external_interfaces");
    let result = run(&fake, &args);
    assert_eq!(result["failed"], true);
    assert!(
        result["msg"]
            .as_str()
            .unwrap()
            .starts_with("external_interfaces:")
    );
    fake.routes.borrow_mut().push("ens3".into());
    let result = run(&fake, &args);
    assert!(
        result["rules"]["ipv4"]
            .as_str()
            .unwrap()
            .contains("-i ens3 -o docker0")
    );
}

#[test]
fn refuses_docker_nftables_backend_on_the_iptables_dataplane() {
    let fake = FakeSystem::new();
    fake.load(
        Family::Ipv4,
        Backend::Nft,
        "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
    );
    *fake.nft_tables.borrow_mut() =
        Some("table ip docker-bridges\ntable ip6 docker-bridges\n".into());
    let result = run(&fake, &with(&policy(), json!({"dataplane": "iptables"})));
    assert_eq!(result["failed"], true);
    assert!(
        result["msg"]
            .as_str()
            .unwrap()
            .contains("nftables firewall backend")
    );
    assert_eq!(fake.restores.get(), 0);
}

#[test]
fn without_docker_prepares_docker_user() {
    let fake = FakeSystem::new();
    let result = run(&fake, &policy());
    assert_eq!(result["changed"], true, "{result}");
    assert!(
        result["warnings"][0]
            .as_str()
            .unwrap()
            .contains("Docker's chains were not found")
    );
    assert!(
        fake.dump(Family::Ipv4, Backend::Nft)
            .contains(":DOCKER-USER - [0:0]")
    );
    let absent = run(&fake, &with(&policy(), json!({"state": "absent"})));
    assert_eq!(absent["changed"], true);
    assert!(
        !fake
            .dump(Family::Ipv4, Backend::Nft)
            .contains("DOCKER-USER")
    );
}

#[test]
fn skips_ipv6_without_ip6tables() {
    let fake = machine();
    fake.installed
        .borrow_mut()
        .remove(&(Family::Ipv6, Backend::Nft));
    let result = run(&fake, &policy());
    assert_eq!(result["changed"], true);
    assert!(
        result["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("ipv6 skipped")
    );
    assert!(result["rules"].get("ipv6").is_none());
    assert_eq!(fake.restores.get(), 1);
}

#[test]
fn auto_backend_follows_docker() {
    let fake = FakeSystem::new();
    fake.load(Family::Ipv4, Backend::Legacy, DOCKER_20_V4);
    fake.load(
        Family::Ipv4,
        Backend::Nft,
        "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
    );
    let result = run(&fake, &policy());
    assert_eq!(result["backend"], "legacy");
    assert!(
        fake.dump(Family::Ipv4, Backend::Legacy)
            .contains("DFW-INGRESS")
    );
    assert!(
        !fake
            .dump(Family::Ipv4, Backend::Nft)
            .contains("DFW-INGRESS")
    );
}

#[test]
fn keeps_the_rest_of_the_rules_file() {
    let fake = machine();
    let admin = "# admin's own rules\n*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                 -A INPUT -i lo -j ACCEPT\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n";
    fake.files
        .borrow_mut()
        .insert("/etc/iptables/rules.v4".into(), admin.into());
    run(&fake, &policy());
    let file = fake.files.borrow()["/etc/iptables/rules.v4".as_ref() as &Path].clone();
    let kept: Vec<&str> = file
        .lines()
        .filter(|l| !l.contains("DFW-") && !l.contains("docker_firewall"))
        .collect();
    let original: Vec<&str> = admin.lines().collect();
    assert_eq!(
        kept.iter()
            .filter(|l| !l.starts_with(":DOCKER-USER"))
            .copied()
            .collect::<Vec<_>>(),
        original
    );
    // The block sits inside the admin's *filter section, before its COMMIT.
    let begin = file.find("# BEGIN docker_firewall").unwrap();
    assert!(begin > file.find("--dport 22").unwrap());

    let absent = run(&fake, &with(&policy(), json!({"state": "absent"})));
    assert_eq!(absent["changed"], true);
    assert_eq!(
        fake.files.borrow()["/etc/iptables/rules.v4".as_ref() as &Path],
        admin
    );
}

#[test]
fn strings_coerce_like_ansible() {
    let fake = machine();
    let args = json!({
        "external_interfaces": "eth0,eth1", "persist": "no", "families": "ipv4",
        "ingress": {"default": "reject", "allow": [{"ports": "8080", "sources": "192.0.2.1"}]},
        "_ansible_check_mode": "False"
    });
    let result = run(&fake, &args);
    assert_eq!(result["changed"], true, "{result}");
    assert_eq!(fake.file_writes.get(), 0, "persist: no");
    let rules = result["rules"]["ipv4"].as_str().unwrap();
    assert!(rules.contains("-i eth1 -o br-+"));
    assert!(rules.contains("-j REJECT --reject-with tcp-reset"));
    assert!(result["rules"].get("ipv6").is_none());
}

/// egress.deny_host would cut the controller's next SSH connection when it comes over a Docker
/// bridge: refused, naming the field, with nothing changed; an egress.allow entry for SSH, or a
/// controller from outside, lets it through.
#[test]
fn deny_host_is_refused_when_the_controller_comes_over_a_docker_network() {
    let fake = machine();
    *fake.route_table.borrow_mut() = vec![
        ("0.0.0.0/0".parse().unwrap(), "eth0".into()),
        ("172.17.0.0/16".parse().unwrap(), "docker0".into()),
    ];
    *fake.ssh_connection.borrow_mut() = Some("172.17.0.5 50122 172.17.0.1 22".into());
    let v4 = fake.dump(Family::Ipv4, Backend::Nft);
    let deny = with(&policy(), json!({"egress": {"deny_host": true}}));
    let result = run(&fake, &deny);
    assert_eq!(result["failed"], true, "{result}");
    let msg = result["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("egress.deny_host: the controller (172.17.0.5)"),
        "{msg}"
    );
    assert!(msg.ends_with("nothing was changed"), "{msg}");
    assert_eq!(fake.dump(Family::Ipv4, Backend::Nft), v4);
    assert_eq!(fake.restores.get(), 0);

    let ssh = json!({"egress": {"deny_host": true, "allow": [
        {"destinations": ["172.17.0.1"], "ports": [22], "proto": "tcp"}]}});
    assert_eq!(run(&fake, &with(&policy(), ssh))["failed"], Value::Null);
    *fake.ssh_connection.borrow_mut() = Some("192.0.2.77 50122 192.0.2.10 22".into());
    assert_eq!(run(&fake, &deny)["failed"], Value::Null);
}
