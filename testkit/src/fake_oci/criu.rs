//! A stand-in for the `criu` binary, selected when the fake is invoked as `criu`.
//!
//! Drivers probe for checkpoint support with `criu check` and `criu --version` before offering
//! checkpoint/restore, and for the checkpoint options that need more of the kernel with
//! `criu check --feature <name>`. The fake runtimes never call it; it only answers those probes,
//! with CRIU 4.1.1's words and exit statuses. By default it models a kernel that has every
//! feature the library asks about, dirty-memory tracking included, so that the fakes can run
//! pre-dump chains. Files next to the `criu` link let a test simulate a host where CRIU is
//! unusable, too old or lacks a feature, without touching the environment of a test process
//! whose threads share it:
//!
//! - `criu-check-error`: `criu check` (with or without `--feature`) fails, printing this message
//!   the way CRIU prints its errors;
//! - `criu-version`: the version `criu --version` reports (otherwise 4.1.1, the CRIU `cargo xtask setup` installs);
//! - `criu-no-dirty-tracking`: the kernel has no soft-dirty bits (no `CONFIG_MEM_SOFT_DIRTY`), so
//!   `criu check --feature mem_dirty_track` fails with CRIU's warning.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// The features `criu check --feature` is asked about: pre-dump's and lazy pages'.
const FEATURES: [&str; 2] = ["mem_dirty_track", "uffd-noncoop"];

/// Runs fake CRIU with the arguments after argv\[0\] (the link, whose directory holds the
/// settings).
pub(crate) fn main(args: &[OsString]) -> ExitCode {
    let link = PathBuf::from(std::env::args_os().next().unwrap_or_default());
    let dir = link.parent().map(PathBuf::from).unwrap_or_default();
    let setting = |name: &str| std::fs::read_to_string(dir.join(name)).ok().map(|text| text.trim().to_owned());
    let args: Vec<&str> = args.iter().filter_map(|arg| arg.to_str()).collect();
    match args[..] {
        ["check", ..] if setting("criu-check-error").is_some() => {
            let message = setting("criu-check-error").unwrap_or_default();
            eprintln!("Error (criu/vdso.c:613): {message}");
            eprintln!("Error (criu/crtools.c:260): Could not initialize kernel features detection.");
            ExitCode::FAILURE
        }
        ["check"] => {
            println!("Looks good.");
            ExitCode::SUCCESS
        }
        ["check", "--feature", "mem_dirty_track"] if dir.join("criu-no-dirty-tracking").exists() => {
            eprintln!("Warn  (criu/cr-check.c:824): Dirty tracking is OFF. Memory snapshot will not work.");
            ExitCode::FAILURE
        }
        ["check", "--feature", feature] if FEATURES.contains(&feature) => {
            println!("{feature} is supported");
            ExitCode::SUCCESS
        }
        ["check", "--feature", feature] => {
            eprintln!("Error (criu/cr-check.c:1866): Unknown feature {feature}");
            ExitCode::FAILURE
        }
        ["--version" | "-V"] => {
            let version = setting("criu-version").unwrap_or_else(|| "4.1.1".to_owned());
            println!("Version: {version}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("Usage:\n  criu check [--feature FEAT]\n  criu --version");
            ExitCode::FAILURE
        }
    }
}
