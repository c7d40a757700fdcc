//! Ansible runs `docker_firewall <args file>` and reads one JSON object from stdout.

use docker_firewall::module::{execute, failure};
use docker_firewall::system::process::RealSystem;
use std::io::Write;

/// Prints one line; a closed stdout (the reader went away) is not worth a panic.
fn print_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"));
    let _ = out.flush();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--version") {
        print_line(concat!("docker_firewall ", env!("CARGO_PKG_VERSION")));
        return;
    }
    let path = args.get(1).cloned();
    let result =
        std::panic::catch_unwind(|| execute(path.as_deref(), &RealSystem)).unwrap_or_else(|_| {
            failure("internal error: docker_firewall panicked (see module_stderr)").to_string()
        });
    print_line(&result);
}
