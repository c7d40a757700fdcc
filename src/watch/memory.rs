//! What the watcher remembers across restarts: the host ports Docker published the last time its
//! API answered. At boot the watcher starts before Docker; Docker then starts docker-proxy on each
//! published port before the watcher hears of the container, and the proxy's path (IPv6 on an
//! IPv4-only network, or everything the nat gate refuses) is guarded by port. So until Docker's API
//! answers, the remembered ports are guarded too; afterwards Docker's own rules are the truth.

use crate::core::desired::PublishedPort;
use crate::system::System;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Saved {
    published: Vec<PublishedPort>,
}

pub struct Memory {
    path: Option<PathBuf>,
    ports: Vec<PublishedPort>,
    /// Docker's API answered since it was last seen gone: its rules are complete.
    docker_ready: bool,
}

impl Memory {
    /// Reads the file (none, unreadable or bad: nothing remembered, and a note why).
    pub fn load(path: Option<PathBuf>, system: &dyn System) -> (Self, Option<String>) {
        let mut note = None;
        let ports = match &path {
            None => Vec::new(),
            Some(p) => match system.read_file(p) {
                Ok(None) => Vec::new(),
                Ok(Some(text)) => match serde_json::from_str::<Saved>(&text) {
                    Ok(saved) => saved.published,
                    Err(e) => {
                        note = Some(format!("ignoring {} ({e})", p.display()));
                        Vec::new()
                    }
                },
                Err(e) => {
                    note = Some(format!("cannot read {} ({e})", p.display()));
                    Vec::new()
                }
            },
        };
        let memory = Memory {
            path,
            ports,
            docker_ready: false,
        };
        (memory, note)
    }

    /// The ports to guard beside the live ones.
    pub fn guarded(&self) -> &[PublishedPort] {
        if self.docker_ready { &[] } else { &self.ports }
    }

    pub fn set_docker_ready(&mut self, ready: bool) {
        self.docker_ready = ready;
    }

    /// After a converge while Docker is up: remember what it publishes now. Returns a note when the
    /// file cannot be written.
    pub fn update(&mut self, published: &[PublishedPort], system: &dyn System) -> Option<String> {
        if !self.docker_ready || self.ports == published {
            return None;
        }
        self.ports = published.to_vec();
        let path = self.path.as_ref()?;
        let saved = Saved {
            published: self.ports.clone(),
        };
        let text = serde_json::to_string_pretty(&saved).ok()? + "\n";
        system
            .write_file(path, &text)
            .err()
            .map(|e| format!("cannot write {} ({e})", path.display()))
    }
}
