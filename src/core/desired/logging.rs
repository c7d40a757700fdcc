//! The rate-limited LOG rule every deny chain starts with.

use crate::core::policy::{Config, Family};
use crate::core::rule::from_policy::log_prefix;
use crate::core::rule::{Action, Rule};

/// The rate-limited LOG rule of a deny chain (none when logging is off). One hashlimit bucket
/// per source, destination and destination port, so a port scan cannot flood the log.
pub(super) fn log_rule(
    config: &Config,
    direction: &str,
    bucket: &str,
    family: Family,
) -> Vec<Rule> {
    if !config.log.enabled {
        return Vec::new();
    }
    // The kernel keeps a hashlimit table's first rate for as long as the name is in use, so the
    // name carries the rate: a new rate gets a new table.
    let rate = config.log.rate;
    let rate_tag = rate.iptables().bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let family_digit = match family {
        Family::Ipv4 => 4,
        Family::Ipv6 => 6,
    };
    vec![Rule::always(Action::LogPerFlow {
        bucket: format!("dfw-{bucket}{family_digit}-{:04x}", rate_tag & 0xffff),
        family,
        rate,
        prefix: log_prefix(config, direction),
    })]
}
