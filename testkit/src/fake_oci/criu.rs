//! A stand-in for the `criu` binary, selected when the fake is invoked as `criu`.
//!
//! Drivers probe for checkpoint support with `criu check` and `criu --version` before offering
//! checkpoint/restore. The fake runtimes never call it; it only answers those probes. Files next
//! to the `criu` link let a test simulate a host where CRIU is unusable or too old, without
//! touching the environment of a test process whose threads share it:
//!
//! - `criu-check-error`: `criu check` fails, printing this message the way CRIU prints its errors;
//! - `criu-version`: the version `criu --version` reports (otherwise 4.1.1, the CRIU `cargo xtask setup` installs).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs fake CRIU with the arguments after argv\[0\] (the link, whose directory holds the
/// settings).
pub(crate) fn main(args: &[OsString]) -> ExitCode {
    let link = PathBuf::from(std::env::args_os().next().unwrap_or_default());
    let setting = |name: &str| {
        let file = link.parent().map_or_else(|| PathBuf::from(name), |dir| dir.join(name));
        std::fs::read_to_string(file).ok().map(|text| text.trim().to_owned())
    };
    match args.first().and_then(|arg| arg.to_str()) {
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
            let version = setting("criu-version").unwrap_or_else(|| "4.1.1".to_owned());
            println!("Version: {version}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("Usage:\n  criu check\n  criu --version");
            ExitCode::FAILURE
        }
    }
}
