//! The edge: everything that touches the machine. [`System`] is the only way the module runs a
//! process or touches a file; [`process::RealSystem`] implements it, [`fake::FakeSystem`] stands in
//! for it in tests.

pub mod events;
pub mod fake;
pub mod fake_ipset;
mod fake_nft;
pub mod lock;
pub mod process;

use crate::core::policy::{Backend, Family};
use ipnet::IpNet;
use lock::RunGuard;
use std::path::Path;
use std::time::Duration;

/// A failed command, with what is needed to understand it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub command: String,
    pub status: String,
    pub stderr: String,
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "'{}' failed ({})", self.command, self.status)?;
        let stderr = self.stderr.trim();
        if !stderr.is_empty() {
            write!(f, ": {stderr}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CommandError {}

pub trait System {
    /// Takes the run lock (one run at a time per network namespace), waiting at most `timeout`.
    /// The error names the holder.
    fn lock_run(&self, timeout: Duration) -> Result<RunGuard, String>;
    /// Whether the save and restore tools of this family and backend are installed.
    fn has_tools(&self, family: Family, backend: Backend) -> bool;
    /// The backend the plain `iptables` command uses, if it is installed.
    fn default_backend(&self) -> Option<Backend>;
    fn save(&self, family: Family, backend: Backend) -> Result<String, CommandError>;
    /// One table in iptables-save format. The default reads everything (the caller picks the table).
    fn save_table(
        &self,
        family: Family,
        backend: Backend,
        table: &str,
    ) -> Result<String, CommandError> {
        let _ = table;
        self.save(family, backend)
    }
    /// `iptables-restore --noflush --wait` with `input` on stdin.
    fn restore(&self, family: Family, backend: Backend, input: &str) -> Result<(), CommandError>;
    /// `nft list tables`, when nft is installed (to recognise Docker's nftables backend).
    fn nft_tables(&self) -> Option<String>;
    /// `nft list table FAMILY NAME`, when nft is installed (the exposure report looks for other
    /// firewalls' base chains).
    fn nft_table(&self, family: &str, name: &str) -> Option<String> {
        let _ = (family, name);
        None
    }
    /// `nft ARGS`, with `input` on stdin (for `-f -`); fails when nft is not installed.
    fn nft(&self, args: &[&str], input: Option<&str>) -> Result<String, CommandError> {
        let _ = input;
        Err(CommandError {
            command: format!("nft {}", args.join(" ")),
            status: "not available".into(),
            stderr: String::new(),
        })
    }
    /// `ipset ARGS` (`save`, or `restore` with `input` on stdin); fails when ipset is not
    /// installed.
    fn ipset(&self, args: &[&str], input: Option<&str>) -> Result<String, CommandError> {
        let _ = input;
        Err(CommandError {
            command: format!("ipset {}", args.join(" ")),
            status: "not available".into(),
            stderr: String::new(),
        })
    }
    /// Interfaces that hold a default route (IPv4 or IPv6).
    fn default_route_interfaces(&self) -> Vec<String>;
    /// The main routing table, both families: destination network and interface.
    fn routes(&self) -> Vec<(IpNet, String)>;
    /// SSH_CONNECTION of the SSH session this run belongs to, if any (see process.rs).
    fn ssh_connection(&self) -> Option<String>;
    fn read_file(&self, path: &Path) -> std::io::Result<Option<String>>;
    /// Replaces the file atomically (temporary file, fsync, rename).
    fn write_file(&self, path: &Path, content: &str) -> std::io::Result<()>;
    fn remove_file(&self, path: &Path) -> std::io::Result<()>;
}
