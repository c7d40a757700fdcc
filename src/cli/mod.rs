//! The command line beside Ansible's call: `apply` and `watch` take a policy file with the
//! module's options. Ansible's `docker_firewall ARGS_FILE` is told apart in `main`.

pub mod apply;
pub mod exposure;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Closes the ports Docker publishes to everyone but the sources a policy allows.
///
/// Ansible runs it as a module (`docker_firewall ARGS_FILE`); these subcommands do the same job from
/// a policy file (a JSON object with the module's options) and keep it in place afterwards.
#[derive(Debug, Parser)]
#[command(
    name = "docker_firewall",
    version,
    about = "Close the ports Docker publishes to everyone but the sources a policy allows",
    long_about
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply a policy once, like the Ansible module.
    ///
    /// Exit status: 0 when the firewall already matched the policy, 2 when it was changed (or, with
    /// --check, would be), 1 when the run failed (nothing is left half-applied), 64 when the command
    /// line itself is wrong (an unknown flag, no --policy).
    Apply {
        /// Policy file: a JSON object with the module's options (state, ingress, egress, ...).
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// Plan and report only; change nothing.
        #[arg(long)]
        check: bool,
        /// Show the owned rules and the rules files before and after.
        #[arg(long)]
        diff: bool,
        /// Print the module's JSON result instead of the summary.
        #[arg(long)]
        json: bool,
    },
    /// Apply a policy, then keep the host converged until stopped.
    ///
    /// Re-applies within a second when Docker starts, stops or re-creates containers (its event
    /// stream), when another tool changes the ruleset (netfilter notifications, nft backend), and at
    /// every resync as a safety net. The policy file is read again when it changes and on SIGHUP.
    /// SIGTERM and SIGINT stop it and leave the rules in place. One log line per repair, on stderr.
    Watch {
        /// Policy file: a JSON object with the module's options.
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// Seconds between two full checks when nothing was noticed.
        #[arg(long, value_name = "SECONDS", default_value_t = 10,
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        resync: u64,
        /// Docker's API socket (default: DOCKER_HOST when it is unix://..., else /var/run/docker.sock).
        #[arg(long, value_name = "PATH")]
        docker_socket: Option<PathBuf>,
        /// Keep the host ports and bridges Docker used in FILE, and guard them from the next start
        /// on, before Docker is up (a reboot: Docker restores its containers before its API answers).
        /// The watcher remembers them anyway while it runs, so its guards never shrink while dockerd
        /// restarts; they are forgotten when Docker removes a container. The unit uses
        /// /var/lib/docker_firewall/published-ports.json.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
    },
    /// Which published ports can whom reach from outside, and which rule decides it.
    ///
    /// One row per port Docker publishes and family: open (anyone), restricted (only the sources
    /// listed), closed, or unknown (a rule on the path the analysis cannot evaluate: it names the
    /// rule and never guesses). Follows a new connection from an external interface through raw,
    /// mangle and nat PREROUTING (Docker's DNAT), then FORWARD to the container, or INPUT to
    /// docker-proxy where the connection is not DNAT-ed (IPv6 on an IPv4-only network).
    Exposure {
        /// Analyse saved iptables-save / ip6tables-save output instead of the live host (up to two
        /// files, the family taken from the addresses in them); needs no root.
        #[arg(long, value_name = "FILE")]
        from: Vec<PathBuf>,
        /// An interface outside clients arrive on (repeatable). Default: the policy's
        /// external_interfaces, else (live) the interfaces holding a default route, as the module
        /// takes them, else (files) those this product's rules name.
        #[arg(long, value_name = "IFACE")]
        external: Vec<String>,
        /// Take external_interfaces (and backend) from this policy file; with the nftables
        /// dataplane, its table is walked too when the live one reads back equal to what this
        /// policy gives (the watch service's is /etc/docker_firewall/policy.json).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Docker's API socket, for the containers' names (default: DOCKER_HOST when it is
        /// unix://..., else /var/run/docker.sock); without it the report shows addresses only.
        #[arg(long, value_name = "PATH")]
        docker_socket: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// The names `main` treats as the command line rather than an args file.
pub fn is_command_line(first: &str) -> bool {
    first.starts_with('-') || matches!(first, "apply" | "watch" | "exposure" | "help")
}

/// Runs the command line; returns the process exit status.
pub fn main(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 64 } else { 0 };
        }
    };
    match cli.command {
        Command::Apply {
            policy,
            check,
            diff,
            json,
        } => apply::run(&policy, check, diff, json),
        Command::Watch {
            policy,
            resync,
            docker_socket,
            state,
        } => crate::watch::main(&policy, resync, docker_socket, state),
        Command::Exposure {
            from,
            external,
            policy,
            docker_socket,
            json,
        } => exposure::run(&exposure::Options {
            from,
            external,
            policy,
            docker_socket,
            json,
        }),
    }
}
