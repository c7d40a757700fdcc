//! The run lock: one docker_firewall run at a time per network namespace, so that overlapping
//! runs (Ansible forks and retries, the watch service, a run by hand) never interleave their
//! read-plan-apply-verify and leave a mix of policies. A `flock` on a file under /run: the kernel
//! releases it when the holder exits, however it exits, so a killed run never leaves it stale.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const LOCK_DIR: &str = "/run/docker_firewall";

/// Held while a run reads, plans, applies and verifies; dropping it releases the lock.
#[derive(Debug)]
pub struct RunGuard {
    _file: Option<File>,
}

impl RunGuard {
    /// A guard that holds nothing (the fake machine, which has no other runs).
    pub fn unlocked() -> Self {
        RunGuard { _file: None }
    }
}

/// The lock file of this process's network namespace: rulesets are per namespace, so runs in
/// different namespaces do not wait for each other.
pub fn lock_path() -> PathBuf {
    let namespace = std::fs::read_link("/proc/self/ns/net")
        .ok()
        .and_then(|link| {
            let text = link.to_string_lossy().into_owned();
            let inode: String = text.chars().filter(char::is_ascii_digit).collect();
            (!inode.is_empty()).then_some(inode)
        })
        .unwrap_or_else(|| "unknown".into());
    PathBuf::from(LOCK_DIR).join(format!("net-{namespace}.lock"))
}

/// Takes the lock, waiting at most `timeout`; on time-out the message names the holder.
pub fn acquire(timeout: Duration) -> Result<RunGuard, String> {
    let path = lock_path();
    let shown = path.display();
    std::fs::create_dir_all(LOCK_DIR).map_err(|e| format!("cannot create {LOCK_DIR}: {e}"))?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open the run lock {shown}: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(format!(
                    "another docker_firewall run holds the run lock {shown} ({}) and did not \
                     release it within {} s (lock_timeout); nothing was changed",
                    holder(&mut file),
                    timeout.as_secs()
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(format!("cannot lock {shown}: {e}"));
            }
        }
    }
    // Who holds it, for the message of the next run that has to wait.
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let note = format!(
        "pid {} ({}), since unix time {since}\n",
        std::process::id(),
        command_line()
    );
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(note.as_bytes()));
    Ok(RunGuard { _file: Some(file) })
}

fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|_| file.read_to_string(&mut text));
    match text.trim() {
        "" => "holder unknown".into(),
        note => note.to_string(),
    }
}

fn command_line() -> String {
    let raw = std::fs::read("/proc/self/cmdline").unwrap_or_default();
    let words: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    let mut line = words.join(" ");
    line.truncate(200);
    line
}
