//! What can undo the policy, as one stream of triggers for the watcher: Docker's event stream,
//! netfilter's change notifications and the process's signals. Each source runs on its own and
//! only says *that* something happened; the watcher's converge reads the truth itself.

pub mod docker;
mod netfilter;
mod notify;

pub use notify::notify_ready;

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Docker published, unpublished or re-created something ("container web start").
    Docker(String),
    /// Docker's API answered (again): it may have (re)written its rules while we were not looking.
    DockerConnected,
    /// Docker's API is gone or not there yet (the line says why).
    DockerGone(String),
    /// Something changed the nftables ruleset (iptables-nft, nft, firewalld, another tool).
    Netfilter,
    /// SIGHUP: read the policy again.
    Reload,
    /// SIGTERM or SIGINT.
    Stop(String),
    /// A line for the log from a source (Docker went away, came back, ...).
    Note(String),
}

impl Trigger {
    /// How a converge names what prompted it.
    pub fn label(&self) -> String {
        match self {
            Trigger::Docker(what) => format!("docker: {what}"),
            Trigger::DockerConnected => "docker: connected".into(),
            Trigger::DockerGone(_) => "docker: gone".into(),
            Trigger::Netfilter => "netfilter change".into(),
            Trigger::Reload => "SIGHUP".into(),
            Trigger::Stop(signal) => signal.clone(),
            Trigger::Note(line) => line.clone(),
        }
    }
}

/// DOCKER_HOST when it names a Unix socket, else Docker's default socket.
pub fn docker_socket_from_env() -> PathBuf {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"))
}

/// Starts every source; they run until the process exits.
pub fn start(docker_socket: &std::path::Path) -> Receiver<Trigger> {
    let (tx, rx) = channel();
    netfilter::spawn(tx.clone());
    spawn_async_sources(docker_socket.to_path_buf(), tx);
    rx
}

/// Docker's HTTP stream and the signals need an async runtime: one small thread runs both.
fn spawn_async_sources(docker_socket: PathBuf, tx: Sender<Trigger>) {
    let spawned = std::thread::Builder::new()
        .name("events".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Trigger::Note(format!(
                        "cannot start the event runtime ({e}); only the periodic resync runs"
                    )));
                    return;
                }
            };
            runtime.block_on(async move {
                let signals = tokio::spawn(signals(tx.clone()));
                docker::follow(docker_socket, tx).await;
                let _ = signals.await;
            });
        });
    if let Err(e) = spawned {
        eprintln!("docker_firewall watch: cannot start the event thread: {e}");
    }
}

async fn signals(tx: Sender<Trigger>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tx.send(Trigger::Note(
            "cannot listen for signals; stop it with SIGKILL".into(),
        ));
        return;
    };
    loop {
        let trigger = tokio::select! {
            _ = term.recv() => Trigger::Stop("SIGTERM".into()),
            _ = int.recv() => Trigger::Stop("SIGINT".into()),
            _ = hup.recv() => Trigger::Reload,
        };
        if tx.send(trigger).is_err() {
            return;
        }
    }
}
