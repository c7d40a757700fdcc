use super::*;
use crate::core::policy::{AllowEntry, Proto};

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn entry(sources: Vec<IpNet>) -> AllowEntry {
    AllowEntry {
        ports: Vec::new(),
        proto: Proto::Tcp,
        sources,
        destination: None,
        comment: None,
    }
}

/// `count` IPv4 hosts 198.18.x.y plus what is given.
fn many(count: usize, extra: &[&str]) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = (0..count)
        .map(|i| {
            format!("198.18.{}.{}/32", i / 250, i % 250 + 1)
                .parse()
                .unwrap()
        })
        .collect();
    out.extend(nets(extra));
    out
}

#[test]
fn the_threshold_is_per_family_and_inclusive() {
    assert!(entry_set(&entry(many(99, &[])), 0, Family::Ipv4).is_none());
    let set = entry_set(&entry(many(100, &[])), 3, Family::Ipv4).unwrap();
    assert_eq!(set.name, "dfw-allow-3-v4");
    assert_eq!(set.members.len(), 100);
    assert_eq!(set.maxelem, 1024);
    // 100 IPv4 sources say nothing about IPv6.
    assert!(entry_set(&entry(many(100, &["2001:db8::/64"])), 0, Family::Ipv6).is_none());
}

#[test]
fn a_catch_all_source_keeps_rules() {
    assert!(entry_set(&entry(many(150, &["0.0.0.0/0"])), 0, Family::Ipv4).is_none());
}

#[test]
fn names_fit_the_kernel_limit() {
    let set = entry_set(&entry(many(100, &[])), 99_999, Family::Ipv4).unwrap();
    assert!(set.temp_name().len() <= MAX_NAME_LEN, "{}", set.temp_name());
    assert!(is_ours(&set.temp_name()));
}

#[test]
fn covered_and_duplicate_members_are_dropped() {
    let got = normalised(nets(&[
        "10.1.2.3/32",
        "10.0.0.0/8",
        "192.0.2.0/25",
        "192.0.2.128/25",
        "192.0.2.7/32",
        "10.0.0.0/8",
    ]));
    // Siblings stay apart (nothing covers them); 10.1.2.3 and the second /8 go.
    assert_eq!(got, nets(&["10.0.0.0/8", "192.0.2.0/25", "192.0.2.128/25"]));
}

#[test]
fn the_fill_script_swaps_a_full_set_in() {
    let mut set = entry_set(&entry(many(100, &["192.0.2.0/24"])), 0, Family::Ipv4).unwrap();
    set.members.truncate(2);
    let plan = plan_sets(&[], std::slice::from_ref(&set));
    assert_eq!(
        plan.fill_script(),
        "create dfw-allow-0-v4-new hash:net family inet maxelem 1024\n\
         add dfw-allow-0-v4-new 192.0.2.0/24\n\
         add dfw-allow-0-v4-new 198.18.0.1\n\
         rename dfw-allow-0-v4-new dfw-allow-0-v4\n"
    );
    let live = IpSet {
        members: nets(&["192.0.2.0/24"]),
        ..set.clone()
    };
    let plan = plan_sets(&[live], std::slice::from_ref(&set));
    assert!(
        plan.fill_script()
            .ends_with("swap dfw-allow-0-v4-new dfw-allow-0-v4\ndestroy dfw-allow-0-v4-new\n")
    );
    assert!(plan.destroy.is_empty());
}

#[test]
fn same_members_plan_nothing() {
    let set = entry_set(&entry(many(120, &[])), 0, Family::Ipv4).unwrap();
    let live = parse_save(&render_save(std::slice::from_ref(&set))).unwrap();
    assert!(plan_sets(&live, &[set]).is_empty());
}

#[test]
fn unwanted_sets_and_leftovers_go_foreign_sets_stay() {
    let save = "create dfw-allow-1-v6 hash:net family inet6 hashsize 1024 maxelem 1024 bucketsize 12 initval 0x1\n\
                add dfw-allow-1-v6 2001:db8::1\n\
                create dfw-allow-0-v4-new hash:net family inet maxelem 1024\n\
                create blocklist hash:ip family inet maxelem 10\n\
                add blocklist 203.0.113.9\n";
    let live = parse_save(save).unwrap();
    assert_eq!(live.len(), 2);
    assert_eq!(live[0].members, nets(&["2001:db8::1/128"]));
    let plan = plan_sets(&live, &[]);
    assert_eq!(plan.stale_temps, vec!["dfw-allow-0-v4-new"]);
    assert_eq!(plan.destroy, vec!["dfw-allow-1-v6"]);
    assert_eq!(plan.fill_script(), "destroy dfw-allow-0-v4-new\n");
    assert_eq!(plan.destroy_script(), "destroy dfw-allow-1-v6\n");
}

#[test]
fn an_odd_element_makes_the_set_differ() {
    let set = entry_set(&entry(many(100, &[])), 0, Family::Ipv4).unwrap();
    let mut save = render_save(std::slice::from_ref(&set));
    save.push_str("add dfw-allow-0-v4 203.0.113.0/24 nomatch\n");
    let live = parse_save(&save).unwrap();
    assert_eq!(live[0].unreadable, vec!["203.0.113.0/24 nomatch"]);
    assert_eq!(plan_sets(&live, &[set]).fill.len(), 1);
}

#[test]
fn unreadable_lines_of_ours_are_errors_not_panics() {
    assert!(
        parse_save("add dfw-x 1.2.3.4\n")
            .unwrap_err()
            .contains("line 1")
    );
    // Sets of our prefix we did not make are read as unreadable, so they get replaced.
    let odd = parse_save(
        "create dfw-x list:set maxelem 3\ncreate dfw-y hash:net family inet maxelem x\n",
    )
    .unwrap();
    assert!(odd.iter().all(|s| !s.unreadable.is_empty()), "{odd:?}");
    assert_eq!(plan_sets(&odd, &[]).destroy, ["dfw-x", "dfw-y"]);
    assert!(
        parse_save("create\nadd\n\u{0}garbage dfw-\n")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn the_file_keeps_foreign_sets_and_owns_its_block() {
    let set = entry_set(&entry(many(100, &[])), 0, Family::Ipv4).unwrap();
    let existing = "create blocklist hash:ip family inet maxelem 10\n\
                    add blocklist 203.0.113.9\n\
                    create dfw-allow-0-v4 hash:net family inet maxelem 1024\n\
                    add dfw-allow-0-v4 198.18.0.1\n";
    let text = file_content(Some(existing), std::slice::from_ref(&set)).unwrap();
    assert!(text.starts_with(
        "create blocklist hash:ip family inet maxelem 10\nadd blocklist 203.0.113.9\n# BEGIN docker_firewall"
    ));
    assert_eq!(text.matches("create dfw-allow-0-v4 ").count(), 1);
    assert!(text.ends_with("# END docker_firewall\n"));
    // Idempotent, and with no sets left only the foreign part stays.
    assert_eq!(
        file_content(Some(&text), &[set]).as_deref(),
        Some(text.as_str())
    );
    assert_eq!(
        file_content(Some(&text), &[]).as_deref(),
        Some("create blocklist hash:ip family inet maxelem 10\nadd blocklist 203.0.113.9\n")
    );
    assert_eq!(file_content(None, &[]), None);
}
