//! What the watcher remembers: the host ports and bridges Docker used. The guards that name them
//! (the docker-proxy guard, the nat gate, the bridge list of the forward filter) must not shrink
//! while Docker is away: dockerd stopping takes its rules away (its containers "die"), and dockerd
//! starting, or a host booting, restores the containers, docker-proxy listening and DNAT written,
//! before its API answers and the watcher can hear of them. So the memory only grows, and shrinks to
//! what Docker's rules show when Docker says a container was removed (`destroy`). With `--state` it
//! is kept in a file for the next start.

use crate::module::Remembered;
use crate::system::System;
use std::path::PathBuf;

pub struct Memory {
    path: Option<PathBuf>,
    known: Remembered,
    /// Docker removed a container since the last converge: forget what its rules no longer show.
    forget: bool,
    nothing: Remembered,
}

impl Memory {
    /// Reads the file (none, unreadable or bad: nothing remembered, and a note why).
    pub fn load(path: Option<PathBuf>, system: &dyn System) -> (Self, Option<String>) {
        let mut note = None;
        let known = match &path {
            None => Remembered::default(),
            Some(p) => match system.read_file(p) {
                Ok(None) => Remembered::default(),
                Ok(Some(text)) => serde_json::from_str(&text).unwrap_or_else(|e| {
                    note = Some(format!("ignoring {} ({e})", p.display()));
                    Remembered::default()
                }),
                Err(e) => {
                    note = Some(format!("cannot read {} ({e})", p.display()));
                    Remembered::default()
                }
            },
        };
        let memory = Memory {
            path,
            known,
            forget: false,
            nothing: Remembered::default(),
        };
        (memory, note)
    }

    /// What to guard beside what Docker's rules show now (nothing right after a removal: then
    /// Docker's rules are the whole truth).
    pub fn guarded(&self) -> &Remembered {
        if self.forget {
            &self.nothing
        } else {
            &self.known
        }
    }

    /// Docker removed a container: at the next converge, keep only what its rules still show.
    pub fn forget_removed(&mut self) {
        self.forget = true;
    }

    /// After a converge: remember what Docker's rules show now. Returns a note when the file cannot
    /// be written.
    pub fn update(&mut self, now: &Remembered, system: &dyn System) -> Option<String> {
        let next = if std::mem::take(&mut self.forget) {
            now.clone()
        } else {
            self.known.union(now)
        };
        if next == self.known {
            return None;
        }
        self.known = next;
        let path = self.path.as_ref()?;
        let text = serde_json::to_string_pretty(&self.known).ok()? + "\n";
        system
            .write_file(path, &text)
            .err()
            .map(|e| format!("cannot write {} ({e})", path.display()))
    }
}
