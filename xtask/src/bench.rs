//! `cargo xtask bench`: what the library costs on top of the runtime CLI it drives.
//!
//! The library spawns the same runtime binary a shell script would, so its overhead is what it
//! adds around each call: argv building, `--log` files and their JSON, process-group handling,
//! timeouts and state parsing. Those costs only mean something next to the runtime's own, and
//! the machines this runs on are shared and noisy, so absolute times are never asserted. Instead
//! each runtime is measured two ways in the same run:
//!
//! - **raw**: `std::process::Command` running `<rt> --root R create|start|state|delete` directly;
//! - **lib**: the same lifecycle through the library's `CliBackend` on a tokio runtime,
//!
//! interleaved (raw then lib, then lib then raw, and so on) so a burst of load on the host, or
//! whatever one way leaves behind for the next, hits both ways alike, and reported as medians with
//! p10, p90 and p95 and the ratios lib/raw of the medians and of the p95s. A ratio near 1 says the
//! library adds little; a change in the ratio between runs is what matters, not the milliseconds.
//! `--json PATH` writes the same figures, each named by runtime and monitor (`none` until the
//! monitors take part), with every sample.
//!
//! The library is timed as users ship it: built with optimisations. `cargo xtask` runs a debug
//! build of this crate, so an unoptimised bench does not measure; it runs itself again through
//! `cargo run --release` (the fake runtime is built in release too), and the report states the
//! profile and optimisation level it was built with.
//!
//! The workload is the smallest complete lifecycle: a `/bin/true` container is created, started,
//! polled with `state` every 2 ms until it is stopped, and deleted. Each iteration uses a fresh
//! id under a private `--root`, so nothing depends on state left by another iteration or by other
//! users of the runtime. `create` gets `/dev/null` for its stdio in the raw way: the container's
//! init inherits it, and a pipe would make the reader wait for the container to exit.
//!
//! The fake runtime (`fake-oci` linked as `runc`) is always measured, needing neither root nor a
//! real runtime; it shows the library's overhead against a runtime that does almost nothing. The
//! real runc, crun and youki are measured when they are in `PATH`, we are root, and a static
//! busybox exists to build the root filesystem. A real runtime whose first raw lifecycle fails
//! (e.g. crun on a host whose cgroups it refuses) is reported as skipped with its message; a
//! failure after that, or any failure of the library where the raw CLI succeeded, fails the task.
//!
//! Every container is force-deleted if its iteration fails, and every temp directory (bundles,
//! state roots) is removed when the runtime's measurement ends.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use runtime_core::{CliBackend, ContainerId, CreateOptions, DeleteMode, OciBackend, RuntimeConfig, Status};
use serde_json::json;

use testkit::bundle::{BundleBuilder, Rootfs};
use testkit::fake::{FakeRuntime, Flavour};
use testkit::gate::Gate;

use crate::{cargo, run_command};

/// The profile and optimisation level this build of xtask was compiled with (see `build.rs`).
const BUILD_PROFILE: &str = env!("XTASK_BUILD_PROFILE");
const OPT_LEVEL: &str = env!("XTASK_BUILD_OPT_LEVEL");

/// Set on the optimised run that an unoptimised one starts, so that it never starts another.
const REINVOKED: &str = "XTASK_BENCH_REINVOKED";

/// Which monitor supervises the containers: none yet, the backends are driven directly.
const MONITOR: &str = "none";

/// What one iteration does, for the report.
const WORKLOAD: &str = "lifecycle of a /bin/true container: create, start, state every 2 ms until stopped, delete";

/// Iterations of each way run before measuring: they fill caches and reveal a broken runtime.
const WARM_UP: usize = 2;

/// How often `state` is asked while waiting for the container to stop.
const POLL: Duration = Duration::from_millis(2);

/// How long a `/bin/true` container may take to stop before the iteration counts as failed.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Which backend constructor drives a runtime.
#[derive(Debug, Clone, Copy)]
enum Family {
    Runc,
    Crun,
    Youki,
}

impl Family {
    async fn connect(self, config: RuntimeConfig) -> runtime_core::Result<CliBackend> {
        match self {
            Family::Runc => backend_runc::Runc::connect(config).await,
            Family::Crun => backend_crun::Crun::connect(config).await,
            Family::Youki => backend_youki::Youki::connect(config).await,
        }
    }
}

/// One runtime to measure.
#[derive(Debug)]
struct Subject {
    /// What the table calls it.
    name: &'static str,
    /// The runtime binary (for the fake, a link named `runc`; made in the work dir when `None`).
    binary: Option<PathBuf>,
    family: Family,
    /// The container's process.
    args: &'static [&'static str],
    /// The root filesystem: busybox for real runtimes, empty for the fake.
    rootfs: Rootfs,
    /// Whether a failing first raw lifecycle is reported as skipped rather than failed.
    may_skip: bool,
}

/// What measuring one runtime came to.
#[derive(Debug)]
enum Outcome {
    /// Milliseconds per iteration, for each way, in the order they ran.
    Measured {
        raw: Vec<f64>,
        lib: Vec<f64>,
    },
    Skipped(String),
    Failed(String),
}

pub fn run(iterations: usize, json_path: Option<&Path>) -> anyhow::Result<()> {
    if iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    if OPT_LEVEL == "0" {
        return run_optimised(iterations, json_path);
    }
    let fake = build_fake()?;
    let tokio =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("building a tokio runtime")?;

    let mut results: Vec<(&'static str, Outcome)> = Vec::new();
    let subjects = [
        (
            Subject {
                name: "fake-runc",
                binary: None,
                family: Family::Runc,
                args: &["true"],
                rootfs: Rootfs::Empty,
                may_skip: false,
            },
            Ok(()),
        ),
        real_subject("runc", Family::Runc),
        real_subject("crun", Family::Crun),
        real_subject("youki", Family::Youki),
    ];
    for (subject, available) in subjects {
        let outcome = match available {
            Err(reason) => Outcome::Skipped(reason),
            Ok(()) => {
                eprintln!("xtask: bench: {} ({iterations} iterations after {WARM_UP} warm-ups)", subject.name);
                measure(&tokio, &subject, &fake, iterations)
                    .unwrap_or_else(|error| Outcome::Failed(format!("{error:#}")))
            }
        };
        results.push((subject.name, outcome));
    }

    print_table(&results, iterations);
    if let Some(path) = json_path {
        let report = serde_json::to_string_pretty(&report(&results, iterations)).context("encoding the report")?;
        std::fs::write(path, report + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("xtask: bench: wrote {}", path.display());
    }
    let failed: Vec<&str> =
        results.iter().filter(|(_, outcome)| matches!(outcome, Outcome::Failed(_))).map(|(name, _)| *name).collect();
    if !failed.is_empty() {
        bail!("bench failed for {}", failed.join(", "));
    }
    Ok(())
}

/// Runs the same bench from a release build of xtask, so the library it times is optimised.
fn run_optimised(iterations: usize, json_path: Option<&Path>) -> anyhow::Result<()> {
    if std::env::var_os(REINVOKED).is_some() {
        bail!("the release profile builds xtask with opt-level 0; the bench only times optimised code");
    }
    eprintln!("xtask: bench: this xtask is unoptimised ({BUILD_PROFILE} profile); running it from a release build");
    let mut release = cargo(["run", "--quiet", "--release", "--package", "xtask", "--", "bench"]);
    release.arg("--iterations").arg(iterations.to_string()).env(REINVOKED, "1");
    if let Some(path) = json_path {
        release.arg("--json").arg(path);
    }
    run_command(&mut release)
}

/// A real runtime, or why it cannot be measured here (the test gate's verdict).
fn real_subject(name: &'static str, family: Family) -> (Subject, Result<(), String>) {
    let (binary, available) = match testkit::gate::real_runtime(name, &[]) {
        Gate::Open(real) => (Some(real.binary), Ok(())),
        Gate::Skip(reason) | Gate::Fail(reason) => (None, Err(reason)),
    };
    (Subject { name, binary, family, args: &["/bin/true"], rootfs: Rootfs::Busybox, may_skip: true }, available)
}

/// Builds `fake-oci` with optimisations, like the library it is measured with, and returns its path.
fn build_fake() -> anyhow::Result<PathBuf> {
    run_command(&mut cargo(["build", "--release", "-p", "testkit", "--bin", "fake-oci"]))?;
    let fake = target_dir()?.join("release").join("fake-oci");
    if !fake.is_file() {
        bail!("{} is missing after building it", fake.display());
    }
    Ok(fake)
}

/// The workspace's target directory, as cargo resolves it (`CARGO_TARGET_DIR`, config, default).
fn target_dir() -> anyhow::Result<PathBuf> {
    let output = cargo(["metadata", "--format-version", "1", "--no-deps"])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed: {}", output.status);
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).context("parsing cargo metadata")?;
    let dir = metadata["target_directory"].as_str().context("cargo metadata has no target_directory")?;
    Ok(PathBuf::from(dir))
}

/// Measures one runtime: warm-ups, then `iterations` of raw and lib, interleaved.
fn measure(
    tokio: &tokio::runtime::Runtime,
    subject: &Subject,
    fake: &Path,
    iterations: usize,
) -> anyhow::Result<Outcome> {
    let work = tempfile::Builder::new().prefix("xtask-bench-").tempdir().context("creating the work directory")?;
    let fake_runtime = match &subject.binary {
        Some(_) => None,
        None => Some(FakeRuntime::with_program(Flavour::Runc, fake)?),
    };
    let binary = match (&subject.binary, &fake_runtime) {
        (Some(binary), _) => binary.clone(),
        (None, Some(fake_runtime)) => fake_runtime.binary(),
        (None, None) => bail!("{} has neither a binary nor a fake", subject.name),
    };
    let built = BundleBuilder::new(subject.args.iter().copied()).rootfs(subject.rootfs).build()?;
    let bundle = built.path().to_path_buf();
    let raw = Raw { binary, root: work.path().join("root") };
    let capture = work.path().join("create-stderr");

    let tag = format!("bench-{}-{}", std::process::id(), subject.name);
    let id = |way: &str, n: usize| format!("{tag}-{way}-{n}");

    // The first raw lifecycle tells whether this runtime works on this host at all.
    for n in 0..WARM_UP {
        if let Err(error) = raw.lifecycle(&id("warm-raw", n), &bundle, Some(&capture)) {
            return Ok(if n == 0 && subject.may_skip {
                Outcome::Skipped(format!("its first raw lifecycle failed: {error:#}"))
            } else {
                Outcome::Failed(format!("raw warm-up: {error:#}"))
            });
        }
    }
    let config = RuntimeConfig::default().binary(&raw.binary).root(&raw.root);
    let backend = tokio.block_on(subject.family.connect(config)).context("connecting the library backend")?;
    for n in 0..WARM_UP {
        lib_lifecycle(tokio, &backend, &raw, &id("warm-lib", n), &bundle).context("lib warm-up")?;
    }

    let mut raw_ms = Vec::with_capacity(iterations);
    let mut lib_ms = Vec::with_capacity(iterations);
    for n in 0..iterations {
        let time_raw = |raw_ms: &mut Vec<f64>| -> anyhow::Result<()> {
            let started = Instant::now();
            raw.lifecycle(&id("raw", n), &bundle, None).with_context(|| format!("raw iteration {n}"))?;
            raw_ms.push(millis(started.elapsed()));
            Ok(())
        };
        let time_lib = |lib_ms: &mut Vec<f64>| -> anyhow::Result<()> {
            let started = Instant::now();
            lib_lifecycle(tokio, &backend, &raw, &id("lib", n), &bundle)
                .with_context(|| format!("lib iteration {n}"))?;
            lib_ms.push(millis(started.elapsed()));
            Ok(())
        };
        // Alternate which way goes first, so neither always runs right after the other.
        if n % 2 == 0 {
            time_raw(&mut raw_ms)?;
            time_lib(&mut lib_ms)?;
        } else {
            time_lib(&mut lib_ms)?;
            time_raw(&mut raw_ms)?;
        }
    }
    drop((work, built, fake_runtime));
    Ok(Outcome::Measured { raw: raw_ms, lib: lib_ms })
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The runtime CLI driven directly, as a script would.
#[derive(Debug)]
struct Raw {
    binary: PathBuf,
    root: PathBuf,
}

impl Raw {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("--root").arg(&self.root).stdin(Stdio::null());
        command
    }

    /// Runs `<rt> --root R args...`, returning its stdout; a failure carries its stderr.
    fn call(&self, args: &[&str]) -> anyhow::Result<Vec<u8>> {
        let mut command = self.command();
        command.args(args);
        let output = command.output().with_context(|| format!("cannot run {command:?}"))?;
        if !output.status.success() {
            bail!("{command:?}: {}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(output.stdout)
    }

    /// create, start, poll state until stopped, delete. `create`'s stderr goes to `capture`
    /// when given (to report why it failed), else to `/dev/null` like its other streams.
    fn lifecycle(&self, id: &str, bundle: &Path, capture: Option<&Path>) -> anyhow::Result<()> {
        let mut leftover = Leftover { raw: self, id, armed: true };
        let mut create = self.command();
        create.arg("create").arg("--bundle").arg(bundle).arg(id).stdout(Stdio::null());
        match capture {
            Some(path) => create.stderr(File::create(path).context("creating the stderr file")?),
            None => create.stderr(Stdio::null()),
        };
        let status = create.status().with_context(|| format!("cannot run {create:?}"))?;
        if !status.success() {
            let stderr = capture.and_then(|path| std::fs::read_to_string(path).ok()).unwrap_or_default();
            bail!("{create:?}: {status}: {}", stderr.trim());
        }
        self.call(&["start", id])?;
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            let stdout = self.call(&["state", id])?;
            let state: serde_json::Value = serde_json::from_slice(&stdout).context("parsing state")?;
            if state["status"] == "stopped" {
                break;
            }
            if Instant::now() > deadline {
                bail!("{id} not stopped after {STOP_DEADLINE:?} (status {})", state["status"]);
            }
            std::thread::sleep(POLL);
        }
        self.call(&["delete", id])?;
        leftover.armed = false;
        Ok(())
    }
}

/// The same lifecycle through the library.
fn lib_lifecycle(
    tokio: &tokio::runtime::Runtime,
    backend: &CliBackend,
    raw: &Raw,
    id: &str,
    bundle: &Path,
) -> anyhow::Result<()> {
    let mut leftover = Leftover { raw, id, armed: true };
    let id = ContainerId::new(id)?;
    tokio.block_on(async {
        backend.create(&id, bundle, CreateOptions::default()).await?;
        backend.start(&id).await?;
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            let state = backend.state(&id).await?;
            if state.status == Status::Stopped {
                break;
            }
            if Instant::now() > deadline {
                bail!("{id} not stopped after {STOP_DEADLINE:?} (status {})", state.status);
            }
            tokio::time::sleep(POLL).await;
        }
        backend.delete(&id, DeleteMode::IfStopped).await?;
        anyhow::Ok(())
    })?;
    leftover.armed = false;
    Ok(())
}

/// Force-deletes a container whose iteration did not finish, so none outlives the bench.
struct Leftover<'a> {
    raw: &'a Raw,
    id: &'a str,
    armed: bool,
}

impl Drop for Leftover<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut delete = self.raw.command();
            delete.args(["delete", "--force", self.id]).stdout(Stdio::null()).stderr(Stdio::null());
            // Nothing to do if it fails: the container may never have been created.
            let _ = delete.status();
        }
    }
}

/// The `fraction` quantile of sorted `values`, interpolating linearly between neighbours.
fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    match sorted {
        [] => f64::NAN,
        [only] => *only,
        _ => {
            let rank = fraction.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
            let below = rank.floor() as usize;
            let above = rank.ceil() as usize;
            sorted[below] + (sorted[above] - sorted[below]) * (rank - below as f64)
        }
    }
}

/// Median, p10, p90 and p95 of `values`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    median: f64,
    p10: f64,
    p90: f64,
    p95: f64,
}

impl Summary {
    fn of(values: &[f64]) -> Summary {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Summary {
            median: percentile(&sorted, 0.5),
            p10: percentile(&sorted, 0.1),
            p90: percentile(&sorted, 0.9),
            p95: percentile(&sorted, 0.95),
        }
    }
}

fn print_table(results: &[(&str, Outcome)], iterations: usize) {
    println!();
    println!("Workload: {WORKLOAD}.");
    println!(
        "{iterations} iterations per runtime for each way, raw and lib interleaved, after {WARM_UP} warm-ups; \
         xtask built with the {BUILD_PROFILE} profile (opt-level {OPT_LEVEL}); times in ms; ratios lib/raw."
    );
    println!();
    println!(
        "{:<10} {:<7}  {:>8} {:>8} {:>8}  {:>8} {:>8} {:>8}  {:>9} {:>9}",
        "runtime", "monitor", "raw med", "p10", "p95", "lib med", "p10", "p95", "ratio med", "ratio p95"
    );
    for (name, outcome) in results {
        match outcome {
            Outcome::Measured { raw, lib } => {
                let (raw, lib) = (Summary::of(raw), Summary::of(lib));
                println!(
                    "{name:<10} {MONITOR:<7}  {:>8.1} {:>8.1} {:>8.1}  {:>8.1} {:>8.1} {:>8.1}  {:>9.2} {:>9.2}",
                    raw.median,
                    raw.p10,
                    raw.p95,
                    lib.median,
                    lib.p10,
                    lib.p95,
                    lib.median / raw.median,
                    lib.p95 / raw.p95
                );
            }
            Outcome::Skipped(reason) => println!("{name:<10} {MONITOR:<7}  skipped: {reason}"),
            Outcome::Failed(error) => println!("{name:<10} {MONITOR:<7}  FAILED: {error}"),
        }
    }
}

/// The figures as JSON: one entry per runtime and monitor, with every sample behind them.
fn report(results: &[(&str, Outcome)], iterations: usize) -> serde_json::Value {
    let way = |samples: &[f64]| {
        let summary = Summary::of(samples);
        json!({
            "median_ms": summary.median,
            "p10_ms": summary.p10,
            "p90_ms": summary.p90,
            "p95_ms": summary.p95,
            "samples_ms": samples,
        })
    };
    let figures: Vec<serde_json::Value> = results
        .iter()
        .map(|(name, outcome)| match outcome {
            Outcome::Measured { raw, lib } => {
                let (raw_summary, lib_summary) = (Summary::of(raw), Summary::of(lib));
                json!({
                    "runtime": name,
                    "monitor": MONITOR,
                    "outcome": "measured",
                    "raw": way(raw),
                    "lib": way(lib),
                    "ratio": {
                        "median": lib_summary.median / raw_summary.median,
                        "p95": lib_summary.p95 / raw_summary.p95,
                    },
                })
            }
            Outcome::Skipped(reason) => {
                json!({ "runtime": name, "monitor": MONITOR, "outcome": "skipped", "reason": reason })
            }
            Outcome::Failed(error) => {
                json!({ "runtime": name, "monitor": MONITOR, "outcome": "failed", "error": error })
            }
        })
        .collect();
    json!({
        "workload": WORKLOAD,
        "iterations": iterations,
        "warm_ups": WARM_UP,
        "interleaving": "raw and lib alternate, and alternate which goes first",
        "ratios": "lib / raw",
        "build": { "profile": BUILD_PROFILE, "opt_level": OPT_LEVEL },
        "figures": figures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentiles_interpolate_like_numpy() {
        let values: Vec<f64> = [7.0, 1.0, 10.0, 4.0, 2.0, 9.0, 3.0, 6.0, 5.0, 8.0].to_vec();
        let summary = Summary::of(&values);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(summary.median, 5.5), "{summary:?}");
        assert!(close(summary.p10, 1.9), "{summary:?}");
        assert!(close(summary.p90, 9.1), "{summary:?}");
        assert!(close(summary.p95, 9.55), "{summary:?}");
    }

    #[test]
    fn the_json_report_names_each_figure_by_runtime_and_monitor() {
        let raw: Vec<f64> = (1..=10).map(f64::from).collect();
        let lib: Vec<f64> = raw.iter().map(|ms| ms * 2.0).collect();
        let results = [
            ("runc", Outcome::Measured { raw: raw.clone(), lib: lib.clone() }),
            ("crun", Outcome::Skipped("crun is not in PATH".into())),
        ];
        let report = report(&results, 10);
        let close = |value: &serde_json::Value, expected: f64| (value.as_f64().unwrap() - expected).abs() < 1e-9;

        assert_eq!(report["iterations"], 10);
        let runc = &report["figures"][0];
        assert_eq!(
            (&runc["runtime"], &runc["monitor"], &runc["outcome"]),
            (&json!("runc"), &json!("none"), &json!("measured"))
        );
        // numpy.percentile([1..10], [50, 95]) = 5.5, 9.55; the lib samples are exactly twice those.
        assert!(close(&runc["raw"]["median_ms"], 5.5), "{runc}");
        assert!(close(&runc["raw"]["p95_ms"], 9.55), "{runc}");
        assert!(close(&runc["lib"]["median_ms"], 11.0), "{runc}");
        assert!(close(&runc["lib"]["p95_ms"], 19.1), "{runc}");
        assert!(close(&runc["ratio"]["median"], 2.0), "{runc}");
        assert!(close(&runc["ratio"]["p95"], 2.0), "{runc}");
        assert_eq!(runc["raw"]["samples_ms"], json!(raw));
        assert_eq!(runc["lib"]["samples_ms"], json!(lib));

        let crun = &report["figures"][1];
        assert_eq!(
            crun,
            &json!({ "runtime": "crun", "monitor": "none", "outcome": "skipped", "reason": "crun is not in PATH" })
        );
    }

    #[test]
    fn odd_lengths_take_the_middle_value_and_edges_are_exact() {
        let sorted = [1.0, 2.0, 30.0];
        assert_eq!(percentile(&sorted, 0.5), 2.0);
        assert_eq!(percentile(&sorted, 0.0), 1.0);
        assert_eq!(percentile(&sorted, 1.0), 30.0);
        assert_eq!(percentile(&[4.0], 0.9), 4.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
