//! The pure core: no processes, no files. Arguments, the policy model, parsing iptables-save,
//! the desired state, planning, rendering and the rules-file merge.

pub mod args;
pub mod desired;
pub mod ipset;
pub mod lockout;
pub mod names;
pub mod nft;
pub mod owned;
pub mod plan;
pub mod policy;
pub mod rule;
pub mod rules_file;
pub mod save;
