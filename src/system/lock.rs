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

/// Who holds the lock: the kernel's answer (/proc/locks), with the holder's own note when the note
/// is its own (a lock taken with `flock(1)` by hand leaves a stale note of the last run).
fn holder(file: &mut File) -> String {
    let mut note = String::new();
    let _ = file.rewind().and_then(|_| file.read_to_string(&mut note));
    let note = note.trim();
    match flock_holder(file) {
        Some(pid) if note.starts_with(&format!("pid {pid} ")) => note.to_string(),
        Some(pid) => format!("pid {pid} ({})", process_command_line(pid)),
        None if !note.is_empty() => format!("{note}, by its own account"),
        None => "holder unknown".into(),
    }
}

/// The pid /proc/locks shows holding a flock on this file.
fn flock_holder(file: &File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let wanted = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    // "1: FLOCK  ADVISORY  WRITE 1234 00:19:5678 0 EOF"; waiters have "->" after the number.
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&wanted.as_str()))
            .then(|| fields.get(4)?.parse().ok())
            .flatten()
    })
}

fn process_command_line(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    let mut line = words.join(" ");
    if line.is_empty() {
        line = "command unknown".into();
    }
    line.truncate(200);
    line
}

fn command_line() -> String {
    process_command_line(std::process::id())
}
