//! Ansible runs `docker_firewall ARGS_FILE` and reads one JSON object from stdout; people and
//! the watch service use the subcommands (`docker_firewall --help`).

use docker_firewall::cli;
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
    match args.get(1) {
        Some(first) if cli::is_command_line(first) => std::process::exit(cli::main(args)),
        None => std::process::exit(cli::main(vec!["docker_firewall".into(), "--help".into()])),
        Some(_) => {}
    }
    let path = args.get(1).cloned();
    let result =
        std::panic::catch_unwind(|| execute(path.as_deref(), &RealSystem)).unwrap_or_else(|_| {
            failure("internal error: docker_firewall panicked (see module_stderr)").to_string()
        });
    print_line(&result);
}
