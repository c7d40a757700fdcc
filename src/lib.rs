//! docker_firewall: an Ansible module (a static binary) that closes the ports Docker publishes
//! to everyone but the sources the policy allows. `core` is pure; `system` is the only place
//! that touches the machine; `module` runs one invocation; `cli` and `watch` are the command
//! line and the service that drive the same run.

pub mod cli;
pub mod core;
pub mod exposure;
pub mod module;
pub mod system;
pub mod watch;
