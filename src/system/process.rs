//! The real machine: iptables tools run as processes, files written atomically.

use super::lock::{self, RunGuard};
use super::{CommandError, System};
use crate::core::policy::{Backend, Family};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long iptables waits for the xtables lock (legacy: another iptables command running) before
/// it gives up; a stuck lock then fails the run with "xtables lock busy" instead of hanging Ansible.
pub const XTABLES_WAIT_SECONDS: u32 = 10;

/// `--wait=N`: the attached form, since both tools take the seconds as an optional argument.
fn wait_option() -> String {
    format!("--wait={XTABLES_WAIT_SECONDS}")
}

/// Where iptables lives; Ansible may run us with a PATH that lacks the sbin directories.
const FALLBACK_PATH: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

pub struct RealSystem;

/// The parent of a process, from /proc/PID/stat ("pid (comm) state ppid ...").
fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .chain(FALLBACK_PATH)
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file())
}

fn tool_name(family: Family, backend: Backend, tool: &str) -> String {
    let base = match family {
        Family::Ipv4 => "iptables",
        Family::Ipv6 => "ip6tables",
    };
    format!("{base}-{}-{tool}", backend.name())
}

/// The program for `tool` (save or restore): the backend-specific name, or on systems that ship
/// only the plain name (`iptables-save`), that one when it uses the wanted backend.
fn tool(family: Family, backend: Backend, tool: &str) -> Option<PathBuf> {
    if let Some(p) = find_program(&tool_name(family, backend, tool)) {
        return Some(p);
    }
    let base = match family {
        Family::Ipv4 => "iptables",
        Family::Ipv6 => "ip6tables",
    };
    let plain = find_program(&format!("{base}-{tool}"))?;
    (detect_backend(base) == Some(backend)).then_some(plain)
}

fn detect_backend(program: &str) -> Option<Backend> {
    let path = find_program(program)?;
    let output = Command::new(path)
        .arg("--version")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("nf_tables") {
        Some(Backend::Nft)
    } else {
        Some(Backend::Legacy)
    }
}

fn run(program: &Path, args: &[&str], input: Option<&str>) -> Result<String, CommandError> {
    let command = std::iter::once(program.display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let failed = |status: String, stderr: String| CommandError {
        command: command.clone(),
        status,
        stderr,
    };
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed("could not start".into(), e.to_string()))?;
    if let Some(text) = input
        && let Some(mut stdin) = child.stdin.take()
    {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| failed("could not write its input".into(), e.to_string()))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| failed("could not be waited for".into(), e.to_string()))?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        let status = if stderr.contains("xtables lock") {
            format!(
                "xtables lock busy: another program held it for more than {XTABLES_WAIT_SECONDS} s, {}",
                output.status
            )
        } else {
            output.status.to_string()
        };
        return Err(failed(status, stderr));
    }
    // iptables-save output is ASCII: take the bytes as they are (from_utf8_lossy copies them).
    Ok(String::from_utf8(output.stdout)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

fn missing(family: Family, backend: Backend, what: &str) -> CommandError {
    CommandError {
        command: tool_name(family, backend, what),
        status: "not found".into(),
        stderr: String::new(),
    }
}

/// `iptables -S` output (`-P`, `-N`, `-A` lines) as an iptables-save table.
fn listing_as_save(table: &str, listing: &str) -> String {
    let mut out = format!("*{table}\n");
    for line in listing.lines() {
        if let Some(rest) = line.strip_prefix("-P ") {
            let mut parts = rest.split_whitespace();
            let (chain, policy) = (parts.next().unwrap_or(""), parts.next().unwrap_or("-"));
            out.push_str(&format!(":{chain} {policy} [0:0]\n"));
        } else if let Some(chain) = line.strip_prefix("-N ") {
            out.push_str(&format!(":{} - [0:0]\n", chain.trim()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str("COMMIT\n");
    out
}

impl System for RealSystem {
    fn lock_run(&self, timeout: Duration) -> Result<RunGuard, String> {
        lock::acquire(timeout)
    }

    fn has_tools(&self, family: Family, backend: Backend) -> bool {
        tool(family, backend, "save").is_some() && tool(family, backend, "restore").is_some()
    }

    fn default_backend(&self) -> Option<Backend> {
        detect_backend("iptables")
    }

    fn save(&self, family: Family, backend: Backend) -> Result<String, CommandError> {
        let program =
            tool(family, backend, "save").ok_or_else(|| missing(family, backend, "save"))?;
        run(&program, &[], None)
    }

    /// `iptables-<backend> -w -t TABLE -S`, rewritten into iptables-save format: with nft this reads
    /// only that table (iptables-nft-save -t still fetches every table). Falls back to a full save
    /// where the backend's own `iptables` command is not installed under its backend name.
    fn save_table(
        &self,
        family: Family,
        backend: Backend,
        table: &str,
    ) -> Result<String, CommandError> {
        let base = match family {
            Family::Ipv4 => "iptables",
            Family::Ipv6 => "ip6tables",
        };
        let Some(program) = find_program(&format!("{base}-{}", backend.name())) else {
            return self.save(family, backend);
        };
        let text = run(&program, &[&wait_option(), "-t", table, "-S"], None)?;
        Ok(listing_as_save(table, &text))
    }

    fn restore(&self, family: Family, backend: Backend, input: &str) -> Result<(), CommandError> {
        let program =
            tool(family, backend, "restore").ok_or_else(|| missing(family, backend, "restore"))?;
        run(&program, &["--noflush", &wait_option()], Some(input)).map(|_| ())
    }

    fn nft_tables(&self) -> Option<String> {
        let nft = find_program("nft")?;
        run(&nft, &["list", "tables"], None).ok()
    }

    fn nft_table(&self, family: &str, name: &str) -> Option<String> {
        let nft = find_program("nft")?;
        run(&nft, &["list", "table", family, name], None).ok()
    }

    fn nft(&self, args: &[&str], input: Option<&str>) -> Result<String, CommandError> {
        let nft = find_program("nft").ok_or_else(|| CommandError {
            command: format!("nft {}", args.join(" ")),
            status: "not installed".into(),
            stderr: "the nft command (Debian package nftables) is not installed".into(),
        })?;
        run(&nft, args, input)
    }

    fn ipset(&self, args: &[&str], input: Option<&str>) -> Result<String, CommandError> {
        let ipset = find_program("ipset").ok_or_else(|| CommandError {
            command: format!("ipset {}", args.join(" ")),
            status: "not installed".into(),
            stderr: "the ipset command (Debian package ipset) is not installed".into(),
        })?;
        run(&ipset, args, input)
    }

    fn default_route_interfaces(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        // /proc/net/route: Iface Destination Gateway Flags RefCnt Use Metric Mask ...
        if let Ok(text) = std::fs::read_to_string("/proc/net/route") {
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() > 7 && f[1] == "00000000" && f[7] == "00000000" {
                    out.push(f[0].to_string());
                }
            }
        }
        // /proc/net/ipv6_route: dest prefixlen src srclen nexthop metric ref use flags iface
        if let Ok(text) = std::fs::read_to_string("/proc/net/ipv6_route") {
            for line in text.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                let default = f.len() > 9 && f[0].bytes().all(|b| b == b'0') && f[1] == "00";
                if default && f[9] != "lo" {
                    out.push(f[9].to_string());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn routes(&self) -> Vec<(IpNet, String)> {
        let mut out = Vec::new();
        // /proc/net/route: Iface Destination Gateway Flags RefCnt Use Metric Mask ..., addresses
        // as the host-order (x86: little-endian) value of network-order bytes
        if let Ok(text) = std::fs::read_to_string("/proc/net/route") {
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                let hex = |i: usize| f.get(i).and_then(|h| u32::from_str_radix(h, 16).ok());
                if let (Some(dest), Some(mask)) = (hex(1), hex(7))
                    && let Ok(net) =
                        Ipv4Net::new(Ipv4Addr::from(dest.to_le_bytes()), mask.count_ones() as u8)
                {
                    out.push((IpNet::V4(net), f[0].to_string()));
                }
            }
        }
        // /proc/net/ipv6_route: dest prefixlen src srclen nexthop metric ref use flags iface
        if let Ok(text) = std::fs::read_to_string("/proc/net/ipv6_route") {
            for line in text.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() < 10 || f[9] == "lo" {
                    continue;
                }
                if let (Ok(dest), Ok(len)) =
                    (u128::from_str_radix(f[0], 16), u8::from_str_radix(f[1], 16))
                    && let Ok(net) = Ipv6Net::new(Ipv6Addr::from(dest), len)
                {
                    out.push((IpNet::V6(net), f[9].to_string()));
                }
            }
        }
        out
    }

    /// Ours, or else the nearest ancestor's: sudo (Ansible's usual become) resets the environment,
    /// but the shell sshd started for the session still holds it.
    fn ssh_connection(&self) -> Option<String> {
        if let Ok(value) = std::env::var("SSH_CONNECTION") {
            return Some(value);
        }
        let mut pid = std::os::unix::process::parent_id();
        for _ in 0..32 {
            if pid <= 1 {
                break;
            }
            if let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ"))
                && let Some(value) = environ
                    .split(|b| *b == 0)
                    .find_map(|kv| kv.strip_prefix(b"SSH_CONNECTION="))
            {
                return Some(String::from_utf8_lossy(value).into_owned());
            }
            pid = parent_pid(pid)?;
        }
        None
    }

    fn read_file(&self, path: &Path) -> std::io::Result<Option<String>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write_file(&self, path: &Path, content: &str) -> std::io::Result<()> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = path.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir)?;
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o640);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = dir.join(format!(".{name}.docker_firewall.{}", std::process::id()));
        let result = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&temp)?;
            file.write_all(content.as_bytes())?;
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
            file.sync_all()?;
            std::fs::rename(&temp, path)?;
            std::fs::File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::listing_as_save;

    #[test]
    fn a_listing_reads_as_a_saved_table() {
        let listing =
            "-P INPUT ACCEPT\n-P FORWARD DROP\n-N DOCKER-USER\n-A FORWARD -j DOCKER-USER\n";
        assert_eq!(
            listing_as_save("filter", listing),
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\nCOMMIT\n"
        );
    }
}
