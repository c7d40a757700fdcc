use super::*;
use crate::core::save::parse_save;

fn view<'a>(v4: &'a str, v6: Option<&'a str>, external: &[&str]) -> HostView<'a> {
    let mut rulesets = vec![(Family::Ipv4, parse_save(v4).unwrap())];
    if let Some(v6) = v6 {
        rulesets.push((Family::Ipv6, parse_save(v6).unwrap()));
    }
    HostView {
        rulesets,
        external: external.iter().map(|s| s.to_string()).collect(),
        names: BTreeMap::new(),
        listeners: None,
        foreign_hooks: Vec::new(),
        own_table: None,
        docker_nft: Vec::new(),
        notes: Vec::new(),
        sets: BTreeMap::new(),
    }
}

const DOCKER: &str = "*nat
:PREROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
-A DOCKER -d 127.0.0.1/32 ! -i docker0 -p tcp -m tcp --dport 9000 -j DNAT --to-destination 172.17.0.3:9000
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-USER -j RETURN
COMMIT
";

#[test]
fn docker_alone_is_open_and_loopback_is_closed() {
    let e = analyze(&view(DOCKER, None, &["eth0"]));
    assert_eq!(e.ports.len(), 2);
    let web = &e.ports[0];
    assert_eq!(web.verdict, Verdict::Open, "{web:?}");
    assert_eq!(web.sources, ["0.0.0.0/0"]);
    assert!(web.rule.contains("--dport 80 -j ACCEPT"), "{}", web.rule);
    assert_eq!(e.ports[1].verdict, Verdict::Closed);
}

#[test]
fn input_rules_do_not_close_a_dnat_port() {
    let text = DOCKER.replace(
        ":INPUT ACCEPT [0:0]\n",
        ":INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 8080 -j DROP\n",
    );
    let e = analyze(&view(&text, None, &["eth0"]));
    assert_eq!(e.ports[0].verdict, Verdict::Open);
}

#[test]
fn allowlist_in_docker_user_restricts() {
    let text = DOCKER.replace(
        "-A DOCKER-USER -j RETURN\n",
        "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN\n\
         -A DOCKER-USER -s 203.0.113.0/24 -i eth0 -j RETURN\n\
         -A DOCKER-USER -i eth0 -j DROP\n",
    );
    let e = analyze(&view(&text, None, &["eth0"]));
    let web = &e.ports[0];
    assert_eq!(web.verdict, Verdict::Restricted, "{web:?}");
    assert_eq!(web.sources, ["203.0.113.0/24"]);
    assert!(web.rule.contains("-i eth0 -j DROP"), "{}", web.rule);
    // from another interface nothing stops it
    let e = analyze(&view(&text, None, &["eth0", "eth1"]));
    assert_eq!(e.ports[0].verdict, Verdict::Open);
}

#[test]
fn unknown_match_is_named_never_guessed() {
    let text = DOCKER.replace(
        "-A DOCKER-USER -j RETURN\n",
        "-A DOCKER-USER -m set --match-set blocked src -j DROP\n",
    );
    let e = analyze(&view(&text, None, &["eth0"]));
    assert_eq!(e.ports[0].verdict, Verdict::Unknown);
    assert!(
        e.ports[0].rule.contains("--match-set"),
        "{}",
        e.ports[0].rule
    );
    assert_eq!(e.summary.unknown, 1);
}

#[test]
fn our_sets_are_read_by_their_members_others_stay_unknown() {
    let text = DOCKER.replace(
        "-A DOCKER-USER -j RETURN\n",
        "-A DOCKER-USER -m set --match-set dfw-allow-0-v4 src -i eth0 -j RETURN\n\
         -A DOCKER-USER -m set ! --match-set dfw-allow-1-v4 src -i eth0 -j RETURN\n\
         -A DOCKER-USER -i eth0 -j DROP\n",
    );
    let nets =
        |list: &[&str]| -> Vec<ipnet::IpNet> { list.iter().map(|n| n.parse().unwrap()).collect() };
    let mut v = view(&text, None, &["eth0"]);
    v.sets.insert(
        "dfw-allow-0-v4".into(),
        nets(&["198.51.100.7/32", "203.0.113.0/24"]),
    );
    // Everything but the set's members is refused by the negated rule and the drop.
    v.sets
        .insert("dfw-allow-1-v4".into(), nets(&["0.0.0.0/1", "128.0.0.0/1"]));
    let e = analyze(&v);
    assert_eq!(e.ports[0].verdict, Verdict::Restricted, "{:?}", e.ports[0]);
    assert_eq!(e.ports[0].sources, ["198.51.100.7/32", "203.0.113.0/24"]);
    // Without the second set's members, the verdict is unknown, naming the rule.
    v.sets.remove("dfw-allow-1-v4");
    let e = analyze(&v);
    assert_eq!(e.ports[0].verdict, Verdict::Unknown);
    assert!(
        e.ports[0].rule.contains("dfw-allow-1-v4"),
        "{}",
        e.ports[0].rule
    );
}

#[test]
fn ipv6_without_nat_goes_to_docker_proxy_in_input() {
    let v6 = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n\
              -A INPUT -s fd00:1::/64 -p tcp -m tcp --dport 8080 -j ACCEPT\n\
              -A INPUT -p tcp -m tcp --dport 8080 -j DROP\nCOMMIT\n";
    let e = analyze(&view(DOCKER, Some(v6), &["eth0"]));
    let row = e.ports.iter().find(|p| p.family == "ipv6").unwrap();
    assert_eq!(row.path, "input");
    assert_eq!(row.verdict, Verdict::Restricted, "{row:?}");
    assert_eq!(row.sources, ["fd00:1::/64"]);
    // live, with nothing listening: closed
    let mut v = view(DOCKER, Some(v6), &["eth0"]);
    v.listeners = Some(Vec::new());
    let e = analyze(&v);
    let row = e.ports.iter().find(|p| p.family == "ipv6").unwrap();
    assert_eq!(row.verdict, Verdict::Closed);
}

#[test]
fn proc_net_listeners() {
    let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   2: 0100007F:0051 0100007F:C000 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n";
    let l = parse_listeners(tcp, Family::Ipv4, "tcp");
    assert_eq!(l.len(), 2);
    assert_eq!(l[0].port, 8080);
    assert_eq!(l[0].addr, None);
    assert_eq!(l[1].addr, Some("127.0.0.1".parse().unwrap()));
    assert!(ports::listens(&l, Family::Ipv4, "tcp", None, 8080));
    assert!(!ports::listens(&l, Family::Ipv4, "tcp", None, 80));
}

#[test]
fn options_without_a_value_keep_the_parse_aligned() {
    // `--limit-iface-in` takes no value: the `-p udp` after it must still be read as a match
    let text = DOCKER.replace(
        "-A DOCKER-USER -j RETURN\n",
        "-A DOCKER-USER -m addrtype --dst-type UNICAST --limit-iface-in -p udp -j DROP\n\
         -A DOCKER-USER ! -p tcp -m tcp --syn -j DROP\n",
    );
    let e = analyze(&view(&text, None, &["eth0"]));
    assert_eq!(e.ports[0].verdict, Verdict::Open, "{:?}", e.ports[0]);
}

/// Our nftables table (the nftables dataplane) for a policy allowing 8080 from 192.0.2.10 and
/// fd00:1::/64, on the host `DOCKER` describes.
fn with_own_table<'a>(v4: &'a str, v6: Option<&'a str>) -> HostView<'a> {
    let config = crate::core::args::parse_args(&serde_json::json!({
        "dataplane": "nftables",
        "external_interfaces": ["eth0"],
        "ingress": {"allow": [{"ports": [8080], "sources": ["192.0.2.10", "fd00:1::/64"]}]},
    }))
    .unwrap();
    let mut v = view(v4, v6, &["eth0"]);
    let facts = crate::core::desired::DockerFacts::read(&v.rulesets[0].1);
    let external = vec!["eth0".to_string()];
    v.own_table = crate::core::nft::desired::desired_table(&config, &external, &facts);
    assert!(v.own_table.is_some());
    v
}

#[test]
fn our_nftables_table_is_walked_at_its_hooks() {
    let v6 = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n";
    let e = analyze(&with_own_table(DOCKER, Some(v6)));
    // DNAT path: our prerouting chain drops all but the allowed source before Docker's DNAT
    let web = &e.ports[0];
    assert_eq!(web.verdict, Verdict::Restricted, "{web:?}");
    assert_eq!(web.sources, ["192.0.2.10/32"]);
    assert!(
        web.rule
            .starts_with("inet docker_firewall ingress_deny: drop"),
        "{}",
        web.rule
    );
    // the allowed source goes on to Docker's chains and is named by the rule that accepts it
    assert_eq!(e.ports[1].verdict, Verdict::Closed, "loopback stays closed");
    // IPv6 without NAT, docker-proxy in INPUT: the same prerouting chain judges it
    let row = e.ports.iter().find(|p| p.family == "ipv6").unwrap();
    assert_eq!(row.verdict, Verdict::Restricted, "{row:?}");
    assert_eq!(row.sources, ["fd00:1::/64"]);
    // a port our table does not know of (published after the table was written) is judged in
    // forward, by the bridge it goes to
    let later = DOCKER.replace(
        "-A DOCKER -d 127.0.0.1/32",
        "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 172.17.0.4:90\n\
         -A DOCKER -d 127.0.0.1/32",
    );
    let mut v = with_own_table(DOCKER, None);
    v.rulesets = vec![(Family::Ipv4, parse_save(&later).unwrap())];
    let e = analyze(&v);
    let row = e.ports.iter().find(|p| p.host_port == 9090).unwrap();
    assert_eq!(row.verdict, Verdict::Closed, "{row:?}");
    assert!(row.rule.contains("ingress_deny"), "{}", row.rule);
}

const DOCKER_NFT: &str =
    include_str!("../../tests/fixtures/nft/docker-bridges-usernet-portmap.json");

/// A host where Docker runs its nftables backend: iptables' tables are empty.
fn docker_nft_host() -> HostView<'static> {
    let empty = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n";
    let mut v = view(empty, None, &["eth0"]);
    v.docker_nft = vec![(Family::Ipv4, DOCKER_NFT.to_string())];
    v
}

#[test]
fn dockers_nftables_backend_is_walked_port_by_port() {
    let e = analyze(&docker_nft_host());
    assert_eq!(e.ports.len(), 1, "{e:?}");
    let web = &e.ports[0];
    // `iifname != "bridge1" tcp dport 8080 dnat to 192.0.2.2:80`, then its forward chain accepts
    assert_eq!(
        (
            web.host_port,
            web.container_address.as_deref(),
            web.container_port,
            web.path
        ),
        (8080, Some("192.0.2.2"), Some(80), "forward")
    );
    assert_eq!(web.verdict, Verdict::Open, "{web:?}");
    assert_eq!(
        web.rule,
        "ip docker-bridges filter-forward-in__bridge1: ip daddr 192.0.2.2 tcp dport 80 accept"
    );
    assert!(e.notes.is_empty(), "{:?}", e.notes);
}

#[test]
fn our_table_in_front_of_dockers_nftables_backend_restricts_its_ports() {
    let mut v = docker_nft_host();
    let config = crate::core::args::parse_args(&serde_json::json!({
        "external_interfaces": ["eth0"],
        "ingress": {"allow": [{"ports": [8080], "sources": ["198.51.100.0/24"]}]},
    }))
    .unwrap();
    let facts = crate::core::nft::docker::docker_facts(DOCKER_NFT).unwrap();
    v.own_table = crate::core::nft::desired::desired_table(&config, &v.external, &facts);
    let e = analyze(&v);
    let web = &e.ports[0];
    assert_eq!(web.verdict, Verdict::Restricted, "{web:?}");
    assert_eq!(web.sources, ["198.51.100.0/24"]);
    assert!(
        web.rule
            .starts_with("inet docker_firewall ingress_deny: drop"),
        "{}",
        web.rule
    );
}

#[test]
fn what_dockers_nftables_rules_hold_beyond_the_walk_is_unknown_and_named() {
    // a rule in front of the DNAT that tests something the walk does not model
    let odd = DOCKER_NFT.replacen(
        r#"{"counter": {"packets": 0, "bytes": 0}}, {"dnat""#,
        r#"{"match": {"op": "==", "left": {"meta": {"key": "skuid"}}, "right": 0}}, {"dnat""#,
        1,
    );
    let mut v = docker_nft_host();
    v.docker_nft = vec![(Family::Ipv4, odd)];
    let e = analyze(&v);
    assert_eq!(e.ports[0].verdict, Verdict::Unknown, "{:?}", e.ports[0]);
    assert!(e.ports[0].rule.contains("skuid"), "{}", e.ports[0].rule);
    // unreadable JSON: a note, no rows
    v.docker_nft = vec![(Family::Ipv4, "{".into())];
    let e = analyze(&v);
    assert!(e.ports.is_empty());
    assert!(
        e.notes[0].contains("ip docker-bridges could not be read"),
        "{:?}",
        e.notes
    );
}
