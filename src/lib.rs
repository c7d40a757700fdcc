//! docker_firewall: an Ansible module (a static binary) that closes the ports Docker publishes
//! to everyone but the sources the policy allows. `core` is pure; `system` is the only place
//! that touches the machine; `module` runs one invocation.

pub mod core;
pub mod module;
pub mod system;
