//! `cargo xtask <task>`: the project's tasks, in Rust so they run the same everywhere.
//!
//! - `setup`: installs the real runtimes and prepares the host (root only).
//! - `test`: formatting, lints, then the whole test suite.
//! - `matrix`: the conformance suite over every backend found, rootful and rootless, as a table.
//! - `bench`: the library and its engine, built with optimisations, against the raw runtime CLIs
//!   and containerd's `runc` crate, and through conmon against conmon by hand and `podman run`,
//!   as ratios and targets met or missed; throughput, memory and processes left beside them
//!   (`--quick` for CI).
//! - `bundle`: an OCI bundle (busybox root filesystem and `config.json`) in a directory, written
//!   by the builder the tests use.
//! - `ci`: what `.ci/run` does (see [`ci`]): the matrix on the host as found, setup, then with
//!   the real runtimes, conmon, CRIU and the rootless user required the matrix, the test suite
//!   and the bench's quick run.

mod bench;
mod bundle;
mod ci;
mod matrix;
mod rootless;
mod setup;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install runc, crun, youki, conmon, CRIU and busybox, and fix hybrid cgroup hosts (root).
    Setup,
    /// cargo fmt --check, clippy -D warnings, then cargo test --workspace.
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        cargo_test_args: Vec<String>,
    },
    /// The conformance matrix over every backend found (fakes always, real runtimes if present)
    /// and every monitor, as a table of cases by backend × monitor.
    Matrix(matrix::MatrixArgs),
    /// The library and its engine against the raw runtime CLIs and containerd's runc crate, and
    /// through conmon against conmon by hand and podman run: medians and ratios of a container
    /// lifecycle, of exit detection, of stop and of batches of containers, the targets met or
    /// missed, memory, and the processes left.
    Bench {
        /// Measured iterations per runtime for each way (after 2 warm-ups).
        #[arg(long, default_value_t = 20, conflicts_with = "quick")]
        iterations: usize,
        /// Containers in a throughput batch (10 at a time, and all at once).
        #[arg(long, default_value_t = 100, conflicts_with = "quick")]
        throughput: usize,
        /// A short run for CI: 3 iterations and one batch of 10 containers.
        #[arg(long)]
        quick: bool,
        /// Also write every figure (by runtime, monitor, workload and way: medians, percentiles,
        /// samples) and every ratio as JSON to this file.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
    },
    /// What `.ci/run` does: the matrix on the host as found, setup, then with every real runtime
    /// the code drives required the matrix, the test suite and `bench --quick`.
    Ci,
    /// Write an OCI bundle into DIR (missing or empty): a static busybox root filesystem and a
    /// config.json that runs CMD.
    Bundle(bundle::BundleArgs),
}

fn main() -> ExitCode {
    // This program is the fake runtimes and the fake conmon of the matrix it runs.
    if let Some(code) = testkit::harness::serve_as_fake() {
        return code;
    }
    // And the unprivileged user's copy of itself that runs one of the matrix's rootless cells.
    if let Some(code) = rootless::serve_as_user_copy() {
        return code;
    }
    // And the user's copy of itself that reports the runtimes' host verdicts as the user.
    if let Some(code) = rootless::serve_host_verdicts() {
        return code;
    }
    // And the user's copy of itself that measures the bench's rootless lifecycle.
    if let Some(code) = bench::rootless::serve_as_user_copy() {
        return code;
    }
    match task(Cli::parse().task) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:?}");
            ExitCode::FAILURE
        }
    }
}

fn task(task: Task) -> anyhow::Result<ExitCode> {
    let done = |()| ExitCode::SUCCESS;
    match task {
        Task::Setup => setup::run().map(done),
        Task::Test { cargo_test_args } => test(&cargo_test_args).map(done),
        Task::Matrix(args) => matrix::run(&args).map(matrix::Finished::exit_code),
        Task::Bench { iterations, throughput, quick, json } => {
            let settings = if quick { bench::Settings::quick() } else { bench::Settings::full(iterations, throughput) };
            bench::run(settings, quick, json.as_deref()).map(done)
        }
        Task::Bundle(args) => bundle::run(&args).map(done),
        Task::Ci => ci::run().map(done),
    }
}

/// A `cargo` command, using the cargo that runs this task.
pub fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.args(args);
    command
}

/// Runs `command`, failing when it fails.
pub fn run_command(command: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: running {command:?}");
    let status = command.status().with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

fn lint() -> anyhow::Result<()> {
    run_command(&mut cargo(["fmt", "--all", "--", "--check"]))?;
    run_command(&mut cargo(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))
}

/// Lints, then runs every test.
fn test(extra: &[String]) -> anyhow::Result<()> {
    lint()?;
    let mut test = cargo(["test", "--workspace"]);
    if !extra.is_empty() {
        test.arg("--").args(extra);
    }
    run_command(&mut test)
}
