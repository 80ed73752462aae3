//! A stand-in for the `criu` binary, selected when the fake is invoked as `criu`.
//!
//! Drivers probe for checkpoint support with `criu check` and `criu --version` before offering
//! checkpoint/restore. The fake runtimes never call it; it only answers those probes. Files next
//! to the `criu` link let a test simulate a host where CRIU is unusable or too old, without
//! touching the environment of a test process whose threads share it:
//!
//! - `criu-check-error`: `criu check` fails, printing this message the way CRIU prints its errors;
//! - `criu-version`: the version `criu --version` reports (3.17.1 otherwise).

use std::path::Path;
use std::process::ExitCode;

/// Runs fake CRIU, linked at `link`, with the arguments after argv[0].
pub(crate) fn main(link: &Path, args: &[String]) -> ExitCode {
    let setting = |name: &str| {
        let file = link.parent().unwrap_or(Path::new(".")).join(name);
        std::fs::read_to_string(file).ok().map(|text| text.trim().to_owned())
    };
    match args.first().map(String::as_str) {
        Some("check") => match setting("criu-check-error") {
            Some(message) => {
                eprintln!("Error (criu/vdso.c:613): {message}");
                eprintln!("Error (criu/crtools.c:260): Could not initialize kernel features detection.");
                ExitCode::FAILURE
            }
            None => {
                println!("Looks good.");
                ExitCode::SUCCESS
            }
        },
        Some("--version" | "-V") => {
            let version = setting("criu-version").unwrap_or_else(|| "3.17.1".to_owned());
            println!("Version: {version}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("Error (criu/crtools.c:1052): unknown command: {other}");
            ExitCode::FAILURE
        }
        None => {
            eprintln!("Usage:\n  criu check\n  criu --version");
            ExitCode::FAILURE
        }
    }
}
