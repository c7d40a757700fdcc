//! Renders the command line's own help (`docker_firewall::cli::Cli`) into man pages, so that the
//! pages cannot drift from `--help`:
//!
//!     cargo run --example man -- OUT_DIR
//!
//! writes OUT_DIR/docker_firewall.8 and one page per subcommand (docker_firewall-apply.8, ...).
//! scripts/build-deb ships them (gzipped) in /usr/share/man/man8. clap_mangen is a dev-dependency:
//! the shipped binary does not link it. SOURCE_DATE_EPOCH (seconds), when set, dates the pages
//! (reproducible builds); otherwise they carry no date.

use clap::CommandFactory;
use clap_mangen::Man;
use docker_firewall::cli::Cli;
use std::path::{Path, PathBuf};

const SECTION: &str = "8";
const MANUAL: &str = "System Administration";

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm), for the pages' date.
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn page(cmd: clap::Command, source: &str, date: Option<&str>) -> Man {
    let man = Man::new(cmd)
        .section(SECTION)
        .manual(MANUAL)
        .source(source.to_owned());
    match date {
        Some(d) => man.date(d.to_owned()),
        None => man,
    }
}

/// One page for `cmd`, then one for each of its visible subcommands (named `parent-sub.8`).
fn generate(
    cmd: clap::Command,
    out: &Path,
    source: &str,
    date: Option<&str>,
) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        generate(sub, out, source, date)?;
    }
    let path = page(cmd, source, date).generate_to(out)?;
    println!("{}", path.display());
    Ok(())
}

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .unwrap_or_else(|| "target/man".into()),
    );
    std::fs::create_dir_all(&out)?;
    let date = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .map(|secs| civil_date(secs.div_euclid(86_400)));
    let source = format!("docker_firewall {}", env!("CARGO_PKG_VERSION"));
    // build() gives the subcommands their display names (docker_firewall-apply); `help` is not a page
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    generate(cmd, &out, &source, date.as_deref())
}
