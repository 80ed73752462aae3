//! `cargo xtask bench`: what the library and its engine cost, or save, next to the runtime CLI
//! they drive.
//!
//! The library spawns the same runtime binary a shell script would, so its overhead is what it
//! adds around each call: argv building, `--log` files and their JSON, process-group handling,
//! timeouts and state parsing. The engine adds supervision: its `DirectMonitor` learns of a
//! container's exit from a pidfd where a script polls `state`, and `run` makes one runtime call
//! where a script makes two. Those costs and savings only mean something next to the runtime's
//! own, and the machines this runs on are shared and noisy, so absolute times are never asserted.
//! Instead each runtime is measured several ways in the same run:
//!
//! - **raw CLI**: `std::process::Command` running `<rt> --root R create|start|state|kill|delete`;
//! - **CliBackend**: the same sequence through the library's backend, on a tokio runtime;
//! - **Engine** (monitor `direct`): create, start, `wait`, delete through the `Engine`;
//! - **Engine run**: the same with `run` (`run --detach` where the runtime has it);
//! - **Engine** (monitor `conmon`): the same lifecycle through the `Engine` with a
//!   `ConmonMonitor`, beside **raw conmon** (conmon started by hand with its sync and start
//!   pipes, `start`, its exit file, `delete`) and **podman run** (`podman run --rm` of the same
//!   root filesystem and runtime, which drives conmon too), where conmon and podman are there
//!   (see [`conmon`]);
//! - **runc crate**: containerd's `runc` client (runc and the fake runc only), as its users drive
//!   it: a pid file, `/dev/null` stdio, `/proc` looked at until the init exits;
//! - **CliBackend /proc**: the library's backend waiting the same way as the runc crate (where
//!   the crate is measured), so that the two differ only in the CLI layer.
//!
//! over these workloads:
//!
//! - **lifecycle**: a `/bin/true` container created, started, waited for (raw and CliBackend ask
//!   `state` every 2 ms until it is stopped) and deleted; every way;
//! - **exit latency**: from the moment the bench closes the stdin of a container running
//!   `sh -c 'read line; exit 3'` until its exit is seen: `engine.wait` returning, or `state`
//!   saying stopped; the moment is the bench's own, not something the code under test reports;
//! - **stop latency**: from asking a container whose TERM trap exits at once to stop (after it
//!   said it is ready) until it is seen stopped: `engine.stop`, or `kill TERM` and `state`; and
//!   the raw `kill TERM` call alone, what the runtime itself costs a stop;
//! - **checkpoint-restore**: a running container dumped with CRIU and restored detached from its
//!   images, where a real runtime restores (runc with a working CRIU; the fake's checkpoint dumps
//!   no memory, only a file standing for it, which would measure nothing): the two
//!   runtime calls, or `engine.checkpoint` and `engine.restore` with what the engine adds (the
//!   state check, the images under its state root, supervising the restored init);
//! - **throughput**: a batch of lifecycle containers (100 unless `--throughput` says otherwise)
//!   through one engine against the raw CLI, 10 at a time and all at once (see [`throughput`]);
//!   its batches run in the first measured iterations only (three at most), since one is a
//!   hundred lifecycles;
//! - **rootless lifecycle**: the Engine lifecycle (direct monitor) of runc and crun as the
//!   unprivileged user `cargo xtask setup` makes, beside the rootful one (see [`rootless`]).
//!
//! The ways of a workload are interleaved (each iteration rotates which goes first) so a burst of
//! load on the host, or whatever one way leaves behind for the next, hits every way alike. The
//! report gives medians with p10, p90 and p95 and the ratios of medians and of p95s of each way
//! to its baseline (the raw CLI; the runc crate for `Engine run` and `CliBackend /proc`; raw
//! conmon and podman for the Engine through conmon), and the targets the engine was built for
//! ([`TARGETS`], the project's table: ratios to a baseline, a margin over the raw `kill`, a
//! latency in milliseconds), each judged on medians and reported as met or missed, never
//! asserted. Memory and what was left are reported beside the times (see [`census`]): the
//! resident size of a live conmon (from `/proc`), the peak resident size (`VmHWM`) of the bench
//! process over each runtime's run and its growth over the measured rounds (the process holds
//! the engines, so the engine's own are at most these), and the processes the run left behind.
//! A change in a ratio between runs is what matters, not the milliseconds. `--json PATH` writes
//! every figure named by runtime, monitor (`direct` for the engine, `none` for the CLI-level
//! ways), workload and way, with every sample, every ratio and every target's verdict. `--quick`
//! measures 3 iterations and one batch of 10, for CI.
//!
//! The library is timed as users ship it: built with optimisations. `cargo xtask` runs a debug
//! build of this crate, so an unoptimised bench does not measure; it builds itself and the fake
//! runtime with optimisations (one cargo invocation, so their dependencies build once), runs that
//! build, and the report states the profile and optimisation level it was built with.
//!
//! Each container has a fresh id under a private `--root` (and the engine a private state root),
//! so nothing depends on state left by another iteration or by other users of the runtime.
//! `create` gets `/dev/null` for the stdio the bench does not use: the container's init inherits
//! it, and a pipe would make the reader wait for the container to exit.
//!
//! The fake runtime (`fake-oci` linked as `runc`) is always measured, needing neither root nor a
//! real runtime; it shows the library's overhead against a runtime that does almost nothing. The
//! real runc, crun and youki are measured when they are in `PATH`, we are root, and a static
//! busybox exists to build the root filesystem; the conmon ways with each of them when conmon
//! passes the same gate and a first raw conmon lifecycle works, `podman run` when podman is in
//! `PATH` and a first run works (otherwise the report says why they are left out). A real runtime whose first raw lifecycle fails
//! (e.g. crun on a host whose cgroups it refuses) is reported as skipped with its message; a
//! failure after that, or any failure of another way where the raw CLI succeeded, fails the task.
//! A run in which the engine said the container ended otherwise than the workload makes it end
//! (an exit it did not see, a stop that took SIGKILL) is not a failure of the bench: its time is
//! kept, since it is how long the engine took to answer, and the run is listed under the figures
//! (and in the JSON), so a wrong answer never hides behind a good time.
//!
//! The raw CLI copes with the runtime as a script would have to: a call that fails with one of
//! the runtime's transient failures (the backend's own list: youki 0.7 now and then fails to
//! seal its copy of itself, or loads a container's state file while another call rewrites it) is
//! run again, three times in all at most; the calls run again are counted by workload and way
//! and by the runtime's words, and reported beside the figures. Any other failure fails the
//! run as before.
//!
//! Every container is force-deleted if its sequence fails, and every temp directory (bundles,
//! state roots) is removed when the runtime's measurement ends.

mod census;
mod conmon;
pub mod rootless;
mod throughput;
mod ways;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, bail};
use conmon_driver::ConmonMonitor;
use runtime_core::{CliBackend, DirectMonitor, Engine, OciBackend, RuntimeConfig, RuntimeFamily, StateRoot};
use serde_json::json;

use testkit::bundle::{Bundle, BundleBuilder, Rootfs};
use testkit::fake::{FakeRuntime, Flavour};
use testkit::gate::Gate;

use crate::{cargo, run_command};
use conmon::{Podman, RawConmon};
use ways::{ConmonWays, Drivers, EXIT_ON_EOF, EXIT_ON_TERM, Raw, Retries, Sample};

/// The profile and optimisation level this build of xtask was compiled with (see `build.rs`).
const BUILD_PROFILE: &str = env!("XTASK_BUILD_PROFILE");
const OPT_LEVEL: &str = env!("XTASK_BUILD_OPT_LEVEL");

/// Set on the optimised run that an unoptimised one starts, so that it never starts another.
const REINVOKED: &str = "XTASK_BENCH_REINVOKED";

/// Iterations of every way run before measuring: they fill caches and reveal a broken runtime.
const WARM_UP: usize = 2;

/// How much is measured: `--iterations`, or `--quick` for CI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Measured iterations of every way of the single-container workloads.
    pub iterations: usize,
    /// Containers in a throughput batch.
    pub throughput_containers: usize,
    /// Measured batches of every throughput way (each runs in one of the first iterations).
    pub throughput_rounds: usize,
}

impl Settings {
    /// The full bench: `iterations` of each way, three batches of `throughput_containers`
    /// (fewer if there are fewer iterations).
    pub fn full(iterations: usize, throughput_containers: usize) -> Self {
        Settings { iterations, throughput_containers, throughput_rounds: iterations.min(3) }
    }

    /// A run for CI, of a couple of minutes: few iterations, one small batch.
    pub fn quick() -> Self {
        Settings { iterations: 3, throughput_containers: 10, throughput_rounds: 1 }
    }

    /// Whether `workload` is driven in the measured iteration `n` (counted from 0).
    fn drives(&self, workload: Workload, n: Option<usize>) -> bool {
        match (workload.parallelism(self.throughput_containers), n) {
            (None, _) => true,
            // The single-container warm-ups have warmed the runtime for the batches too.
            (Some(_), None) => false,
            (Some(_), Some(n)) => n < self.throughput_rounds,
        }
    }
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Lifecycle,
    ExitLatency,
    StopLatency,
    CheckpointRestore,
    /// A batch of lifecycles, [`THROUGHPUT_LANES`] at a time.
    ThroughputLanes,
    /// A batch of lifecycles, all at once.
    ThroughputAll,
}

/// How many containers of a batch run at a time in [`Workload::ThroughputLanes`].
const THROUGHPUT_LANES: usize = 10;

impl Workload {
    const ALL: [Workload; 6] = [
        Workload::Lifecycle,
        Workload::ExitLatency,
        Workload::StopLatency,
        Workload::CheckpointRestore,
        Workload::ThroughputLanes,
        Workload::ThroughputAll,
    ];

    fn key(self) -> &'static str {
        match self {
            Workload::Lifecycle => "lifecycle",
            Workload::ExitLatency => "exit-latency",
            Workload::StopLatency => "stop-latency",
            Workload::CheckpointRestore => "checkpoint-restore",
            Workload::ThroughputLanes => "throughput-10",
            Workload::ThroughputAll => "throughput-all",
        }
    }

    /// How many containers of a batch of `containers` run at a time, for a throughput workload.
    fn parallelism(self, containers: usize) -> Option<usize> {
        match self {
            Workload::ThroughputLanes => Some(THROUGHPUT_LANES),
            Workload::ThroughputAll => Some(containers),
            Workload::Lifecycle | Workload::ExitLatency | Workload::StopLatency | Workload::CheckpointRestore => None,
        }
    }

    fn description(self) -> &'static str {
        match self {
            Workload::Lifecycle => {
                "a /bin/true container created, started, waited for until stopped (raw CLI and CliBackend: \
                 state every 2 ms; Engine: wait; runc crate and CliBackend /proc: /proc every 2 ms) and deleted; \
                 the whole sequence"
            }
            Workload::ExitLatency => {
                "sh -c 'read line; exit 3' with its stdin a pipe from the bench: from closing the write end \
                 until the exit is seen (raw CLI: state every 2 ms says stopped; Engine: wait returns)"
            }
            Workload::StopLatency => {
                "a container whose TERM trap exits at once, once it said ready: from asking it to stop until \
                 it is seen stopped (raw CLI: kill TERM, then state every 2 ms; raw kill: the kill call alone; \
                 Engine: stop returns)"
            }
            Workload::CheckpointRestore => {
                "a running container checkpointed with CRIU and restored detached from its images, one call \
                 after the other (raw CLI: checkpoint, restore --detach; Engine: checkpoint, restore, the \
                 images under its state root); where the runtime restores"
            }
            Workload::ThroughputLanes => {
                "a batch of lifecycle containers, 10 at a time (raw CLI: a thread per lane, state every 2 ms; \
                 Engine: a task per lane, run, wait, delete, one engine); the whole batch"
            }
            Workload::ThroughputAll => "the same batch, all its containers at once; the whole batch",
        }
    }
}

/// How a workload is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    RawCli,
    /// The raw CLI's stop, its `kill` call alone.
    RawKill,
    CliBackend,
    Engine,
    EngineRun,
    RuncCrate,
    CliBackendProcWait,
    /// The Engine with a `ConmonMonitor`.
    EngineConmon,
    RawConmon,
    Podman,
}

impl Way {
    fn key(self) -> &'static str {
        match self {
            Way::RawCli => "raw-cli",
            Way::RawKill => "raw-kill",
            Way::CliBackend => "cli-backend",
            Way::Engine => "engine",
            Way::EngineRun => "engine-run",
            Way::RuncCrate => "runc-crate",
            Way::CliBackendProcWait => "cli-backend-proc-wait",
            // Told apart from the direct one's by its monitor.
            Way::EngineConmon => "engine",
            Way::RawConmon => "raw-conmon",
            Way::Podman => "podman-run",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Way::RawCli => "raw CLI",
            Way::RawKill => "raw kill",
            Way::CliBackend => "CliBackend",
            Way::Engine => "Engine",
            Way::EngineRun => "Engine run",
            Way::RuncCrate => "runc crate",
            Way::CliBackendProcWait => "CliBackend /proc",
            Way::EngineConmon => "Engine",
            Way::RawConmon => "raw conmon",
            Way::Podman => "podman run",
        }
    }

    /// Which monitor supervises the containers: the engine's direct one, conmon, or none.
    fn monitor(self) -> &'static str {
        match self {
            Way::Engine | Way::EngineRun => "direct",
            Way::EngineConmon | Way::RawConmon | Way::Podman => "conmon",
            Way::RawCli | Way::RawKill | Way::CliBackend | Way::RuncCrate | Way::CliBackendProcWait => "none",
        }
    }
}

/// A ratio the report gives: `way` over `baseline` in `workload`.
#[derive(Debug, Clone, Copy)]
struct RatioSpec {
    workload: Workload,
    way: Way,
    baseline: Way,
}

const RATIOS: &[RatioSpec] = &[
    RatioSpec { workload: Workload::Lifecycle, way: Way::CliBackend, baseline: Way::RawCli },
    RatioSpec { workload: Workload::Lifecycle, way: Way::Engine, baseline: Way::RawCli },
    RatioSpec { workload: Workload::Lifecycle, way: Way::EngineRun, baseline: Way::RawCli },
    RatioSpec { workload: Workload::Lifecycle, way: Way::Engine, baseline: Way::RuncCrate },
    RatioSpec { workload: Workload::Lifecycle, way: Way::EngineRun, baseline: Way::RuncCrate },
    RatioSpec { workload: Workload::Lifecycle, way: Way::CliBackendProcWait, baseline: Way::RuncCrate },
    RatioSpec { workload: Workload::Lifecycle, way: Way::EngineConmon, baseline: Way::RawConmon },
    RatioSpec { workload: Workload::Lifecycle, way: Way::EngineConmon, baseline: Way::Podman },
    RatioSpec { workload: Workload::Lifecycle, way: Way::EngineConmon, baseline: Way::Engine },
    RatioSpec { workload: Workload::Lifecycle, way: Way::RawConmon, baseline: Way::RawCli },
    RatioSpec { workload: Workload::ExitLatency, way: Way::Engine, baseline: Way::RawCli },
    RatioSpec { workload: Workload::StopLatency, way: Way::Engine, baseline: Way::RawCli },
    RatioSpec { workload: Workload::CheckpointRestore, way: Way::Engine, baseline: Way::RawCli },
    RatioSpec { workload: Workload::ThroughputLanes, way: Way::Engine, baseline: Way::RawCli },
    RatioSpec { workload: Workload::ThroughputAll, way: Way::Engine, baseline: Way::RawCli },
];

/// What a target bounds, of medians.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bound {
    /// The way's at most this fraction of the baseline's.
    RatioAtMost(f64),
    /// The way's below the baseline's.
    Faster,
    /// The way's at most the baseline's plus this many milliseconds.
    MarginAtMost(f64),
    /// The way's at most this many milliseconds (no baseline).
    MsAtMost(f64),
}

impl Bound {
    /// The figure judged, from the way's and the baseline's medians: a ratio, or milliseconds.
    fn value(self, way: f64, baseline: Option<f64>) -> Option<f64> {
        match self {
            Bound::RatioAtMost(_) | Bound::Faster => baseline.map(|baseline| way / baseline),
            Bound::MarginAtMost(_) => baseline.map(|baseline| way - baseline),
            Bound::MsAtMost(_) => Some(way),
        }
    }

    fn met(self, value: f64) -> bool {
        match self {
            Bound::RatioAtMost(limit) | Bound::MarginAtMost(limit) | Bound::MsAtMost(limit) => value <= limit,
            Bound::Faster => value < 1.0,
        }
    }

    fn describe(self) -> String {
        match self {
            Bound::RatioAtMost(limit) => format!("<= {limit:.2}x"),
            Bound::Faster => "< 1.00x".to_owned(),
            Bound::MarginAtMost(limit) => format!("<= +{limit:.1} ms"),
            Bound::MsAtMost(limit) => format!("<= {limit:.1} ms"),
        }
    }

    fn show(self, value: f64) -> String {
        match self {
            Bound::RatioAtMost(_) | Bound::Faster => format!("{value:.2}x"),
            Bound::MarginAtMost(_) => format!("{value:+.1} ms"),
            Bound::MsAtMost(_) => format!("{value:.1} ms"),
        }
    }
}

/// A target the engine was built to reach (the table), judged on medians.
#[derive(Debug, Clone, Copy)]
struct TargetSpec {
    figure: &'static str,
    workload: Workload,
    way: Way,
    baseline: Option<Way>,
    bound: Bound,
}

const TARGETS: &[TargetSpec] = &[
    TargetSpec {
        figure: "Engine + direct, lifecycle",
        workload: Workload::Lifecycle,
        way: Way::Engine,
        baseline: Some(Way::RawCli),
        bound: Bound::RatioAtMost(0.95),
    },
    TargetSpec {
        figure: "Engine + direct, run",
        workload: Workload::Lifecycle,
        way: Way::EngineRun,
        baseline: Some(Way::RawCli),
        bound: Bound::RatioAtMost(0.80),
    },
    TargetSpec {
        figure: "Engine + conmon vs raw conmon",
        workload: Workload::Lifecycle,
        way: Way::EngineConmon,
        baseline: Some(Way::RawConmon),
        bound: Bound::RatioAtMost(1.05),
    },
    TargetSpec {
        figure: "Engine + conmon vs podman (2.5x)",
        workload: Workload::Lifecycle,
        way: Way::EngineConmon,
        baseline: Some(Way::Podman),
        bound: Bound::RatioAtMost(0.40),
    },
    TargetSpec {
        figure: "Engine + direct vs runc crate",
        workload: Workload::Lifecycle,
        way: Way::Engine,
        baseline: Some(Way::RuncCrate),
        bound: Bound::Faster,
    },
    TargetSpec {
        figure: "exit detection",
        workload: Workload::ExitLatency,
        way: Way::Engine,
        baseline: None,
        bound: Bound::MsAtMost(2.0),
    },
    TargetSpec {
        figure: "stop, TERM obeyed, vs raw kill",
        workload: Workload::StopLatency,
        way: Way::Engine,
        baseline: Some(Way::RawKill),
        bound: Bound::MarginAtMost(5.0),
    },
    TargetSpec {
        figure: "throughput, 10 at a time",
        workload: Workload::ThroughputLanes,
        way: Way::Engine,
        baseline: Some(Way::RawCli),
        bound: Bound::RatioAtMost(1.0),
    },
    TargetSpec {
        figure: "throughput, all at once",
        workload: Workload::ThroughputAll,
        way: Way::Engine,
        baseline: Some(Way::RawCli),
        bound: Bound::RatioAtMost(1.0),
    },
];

/// The samples of one way of one workload, in milliseconds, in the order they ran, the
/// iterations whose container the engine said ended otherwise than expected, and how many raw
/// CLI calls were run again after a transient failure in them.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    workload: Workload,
    way: Way,
    samples: Vec<f64>,
    unexpected: Vec<String>,
    retries: usize,
}

/// Which backend constructor drives a runtime.
#[derive(Debug, Clone, Copy)]
enum Family {
    Runc,
    Crun,
    Youki,
}

impl Family {
    /// The runtime's failures that a call may meet before it does anything and not meet again.
    fn transient_failures(self) -> Vec<String> {
        match self {
            Family::Runc => backend_runc::Runc.transient_failures(),
            Family::Crun => backend_crun::Crun::default().transient_failures(),
            Family::Youki => backend_youki::Youki.transient_failures(),
        }
    }

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
    /// The lifecycle container's process: `true` (the fake finds it in `PATH`) or `/bin/true`.
    args: &'static [&'static str],
    /// The root filesystem: busybox for real runtimes, empty for the fake.
    rootfs: Rootfs,
    /// Whether a failing first raw lifecycle is reported as skipped rather than failed.
    may_skip: bool,
}

/// What was measured of one runtime.
#[derive(Debug, Default)]
struct Measured {
    /// Every workload and way that was measured.
    series: Vec<Series>,
    memory: Memory,
    /// What the bench started that was still there after the run (see [`census`]).
    processes_left: Vec<census::LeftProcess>,
    /// The optional ways left out with this runtime, each with why.
    left_out: Vec<String>,
    /// The raw CLI calls run again after a transient failure over the whole run (the first
    /// lifecycle and the warm-ups included), by the runtime's words.
    retries: std::collections::BTreeMap<String, usize>,
}

/// Resident sizes, in KiB.
#[derive(Debug, Clone, Default, PartialEq)]
struct Memory {
    /// `VmRSS` of live conmons, one per container (none when conmon was not measured).
    conmon_rss_kib: Vec<u64>,
    /// `VmHWM` of the bench process over this runtime's run: the peak of everything it holds,
    /// the engines included.
    bench_peak_kib: u64,
    /// `VmRSS` of the bench process after the warm-ups, and after the last round.
    bench_rss_after_warm_up_kib: u64,
    bench_rss_at_end_kib: u64,
}

impl Memory {
    /// How much the bench process's resident size grew over the measured rounds (negative if
    /// it shrank).
    fn growth_kib(&self) -> i64 {
        self.bench_rss_at_end_kib as i64 - self.bench_rss_after_warm_up_kib as i64
    }
}

/// How many containers' conmons have their resident size read.
const CONMON_RSS_SAMPLES: usize = 3;

/// What measuring one runtime came to.
#[derive(Debug)]
enum Outcome {
    Measured(Measured),
    Skipped(String),
    Failed(String),
}

pub fn run(settings: Settings, quick: bool, json_path: Option<&Path>) -> anyhow::Result<()> {
    if settings.iterations == 0 || settings.throughput_containers == 0 {
        bail!("--iterations and --throughput must be at least 1");
    }
    if OPT_LEVEL == "0" {
        return run_optimised(settings, quick, json_path);
    }
    let iterations = settings.iterations;
    let fake = build_release("fake-oci")?;
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
            None,
        ),
        real_subject("runc", Family::Runc),
        real_subject("crun", Family::Crun),
        real_subject("youki", Family::Youki),
    ];
    for (subject, unavailable) in subjects {
        let outcome = match unavailable {
            Some(outcome) => outcome,
            None => {
                eprintln!("xtask: bench: {} ({iterations} iterations after {WARM_UP} warm-ups)", subject.name);
                measure(&tokio, &subject, &fake, settings).unwrap_or_else(|error| Outcome::Failed(format!("{error:#}")))
            }
        };
        results.push((subject.name, outcome));
    }

    print_table(&results, settings);
    let rootless = rootless::report(&results, iterations);
    if let Some(path) = json_path {
        let mut report = report(&results, settings);
        report["rootless_lifecycle"] = rootless;
        let report = serde_json::to_string_pretty(&report).context("encoding the report")?;
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
fn run_optimised(settings: Settings, quick: bool, json_path: Option<&Path>) -> anyhow::Result<()> {
    if std::env::var_os(REINVOKED).is_some() {
        bail!("the release profile builds xtask with opt-level 0; the bench only times optimised code");
    }
    eprintln!("xtask: bench: this xtask is unoptimised ({BUILD_PROFILE} profile); running it from a release build");
    let mut release = Command::new(build_release("xtask")?);
    release.arg("bench").env(REINVOKED, "1");
    if quick {
        release.arg("--quick");
    } else {
        release.arg("--iterations").arg(settings.iterations.to_string());
        release.arg("--throughput").arg(settings.throughput_containers.to_string());
    }
    if let Some(path) = json_path {
        release.arg("--json").arg(path);
    }
    run_command(&mut release)
}

/// A real runtime, with what measuring it comes to when the test gate keeps it out: skipped,
/// or failed when `REQUIRE_REAL_RUNTIMES` names it.
fn real_subject(name: &'static str, family: Family) -> (Subject, Option<Outcome>) {
    let (binary, unavailable) = match testkit::gate::real_runtime(name, &[]) {
        Gate::Open(real) => (Some(real.binary), None),
        Gate::Skip(reason) => (None, Some(Outcome::Skipped(reason))),
        Gate::Fail(reason) => (None, Some(Outcome::Failed(reason))),
    };
    (Subject { name, binary, family, args: &["/bin/true"], rootfs: Rootfs::Busybox, may_skip: true }, unavailable)
}

/// Builds xtask and `fake-oci` with optimisations, in one cargo invocation so that their
/// dependencies are built once with the features of both (apart, each would build them again
/// with its own), and returns the path of `binary`, one of the two. The bench runs the release
/// xtask (the library as users ship it) and measures the release `fake-oci` beside the real
/// runtimes.
fn build_release(binary: &str) -> anyhow::Result<PathBuf> {
    run_command(&mut cargo([
        "build",
        "--quiet",
        "--release",
        "-p",
        "xtask",
        "-p",
        "testkit",
        "--bin",
        "xtask",
        "--bin",
        "fake-oci",
    ]))?;
    let built = target_dir()?.join("release").join(binary);
    if !built.is_file() {
        bail!("{} is missing after building it", built.display());
    }
    Ok(built)
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

/// The bundles of the workloads.
struct Bundles {
    lifecycle: Bundle,
    exit: Bundle,
    stop: Bundle,
}

impl Bundles {
    fn build(subject: &Subject) -> anyhow::Result<Self> {
        let bundle = |args: &[&str]| BundleBuilder::new(args.iter().copied()).rootfs(subject.rootfs).build();
        Ok(Bundles { lifecycle: bundle(subject.args)?, exit: bundle(EXIT_ON_EOF)?, stop: bundle(EXIT_ON_TERM)? })
    }

    fn of(&self, workload: Workload) -> &Path {
        match workload {
            Workload::Lifecycle => self.lifecycle.path(),
            Workload::ExitLatency => self.exit.path(),
            // The container that stops at once on TERM is also the one checkpointed.
            Workload::StopLatency | Workload::CheckpointRestore => self.stop.path(),
            Workload::ThroughputLanes | Workload::ThroughputAll => self.lifecycle.path(),
        }
    }
}

/// What a runtime is measured with beyond the ways every runtime gets.
#[derive(Debug, Clone, Copy, Default)]
struct Extras {
    /// containerd's `runc` crate and the backend waiting as its users do.
    runc_crate: bool,
    /// checkpoint and restore.
    restore: bool,
    /// conmon by hand and the Engine through conmon.
    conmon: bool,
    /// `podman run`.
    podman: bool,
}

/// The ways each workload is driven, in the order of the report; the extras only where asked.
fn plan(extras: Extras) -> Vec<(Workload, Vec<Way>)> {
    let mut lifecycle = vec![Way::RawCli, Way::CliBackend, Way::Engine, Way::EngineRun];
    if extras.runc_crate {
        lifecycle.extend([Way::RuncCrate, Way::CliBackendProcWait]);
    }
    if extras.conmon {
        lifecycle.extend([Way::RawConmon, Way::EngineConmon]);
    }
    if extras.podman {
        lifecycle.push(Way::Podman);
    }
    Workload::ALL
        .into_iter()
        .filter(|workload| extras.restore || *workload != Workload::CheckpointRestore)
        .map(|workload| match workload {
            Workload::Lifecycle => (workload, lifecycle.clone()),
            Workload::StopLatency => (workload, vec![Way::RawCli, Way::RawKill, Way::Engine]),
            Workload::ExitLatency
            | Workload::CheckpointRestore
            | Workload::ThroughputLanes
            | Workload::ThroughputAll => (workload, vec![Way::RawCli, Way::Engine]),
        })
        .collect()
}

/// `ways` starting at the `round`-th: over successive rounds each way goes first in turn.
fn rotated(ways: &[Way], round: usize) -> Vec<Way> {
    let start = round % ways.len().max(1);
    ways[start..].iter().chain(&ways[..start]).copied().collect()
}

/// Drives `workload` one time the `way` way.
fn drive(
    drivers: &Drivers,
    bundles: &Bundles,
    settings: Settings,
    workload: Workload,
    way: Way,
    id: &str,
) -> anyhow::Result<Sample> {
    let bundle = bundles.of(workload);
    let containers = settings.throughput_containers;
    let parallel = workload.parallelism(containers).unwrap_or(1);
    match (workload, way) {
        (Workload::Lifecycle, Way::RawCli) => drivers.raw_lifecycle(id, bundle),
        (Workload::Lifecycle, Way::CliBackend) => drivers.backend_lifecycle(id, bundle),
        (Workload::Lifecycle, Way::Engine) => drivers.engine_lifecycle(&drivers.engine, id, bundle, false),
        (Workload::Lifecycle, Way::EngineRun) => drivers.engine_lifecycle(&drivers.engine, id, bundle, true),
        (Workload::Lifecycle, Way::EngineConmon) => drivers.engine_conmon_lifecycle(id, bundle),
        (Workload::Lifecycle, Way::RawConmon) => drivers.raw_conmon_lifecycle(id, bundle),
        (Workload::Lifecycle, Way::Podman) => drivers.podman_lifecycle(id),
        (Workload::Lifecycle, Way::RuncCrate) => drivers.runc_crate_lifecycle(id, bundle),
        (Workload::Lifecycle, Way::CliBackendProcWait) => drivers.backend_proc_wait_lifecycle(id, bundle),
        (Workload::ExitLatency, Way::RawCli) => drivers.raw_exit_latency(id, bundle),
        (Workload::ExitLatency, Way::Engine) => drivers.engine_exit_latency(id, bundle),
        (Workload::StopLatency, Way::RawCli) => drivers.raw_stop_latency(id, bundle),
        (Workload::StopLatency, Way::RawKill) => drivers.raw_kill_latency(id, bundle),
        (Workload::StopLatency, Way::Engine) => drivers.engine_stop_latency(id, bundle),
        (Workload::ThroughputLanes | Workload::ThroughputAll, Way::RawCli) => {
            drivers.raw_throughput(id, bundle, containers, parallel)
        }
        (Workload::ThroughputLanes | Workload::ThroughputAll, Way::Engine) => {
            drivers.engine_throughput(id, bundle, containers, parallel)
        }
        (Workload::CheckpointRestore, Way::RawCli) => drivers.raw_checkpoint_restore(id, bundle),
        (Workload::CheckpointRestore, Way::Engine) => drivers.engine_checkpoint_restore(id, bundle),
        (workload, way) => bail!("the bench has no {} way for {}", way.label(), workload.key()),
    }
}

/// Measures one runtime: a first raw lifecycle that says whether it works here, warm-ups, then
/// `iterations` of every workload, its ways interleaved.
fn measure(
    tokio: &tokio::runtime::Runtime,
    subject: &Subject,
    fake: &Path,
    settings: Settings,
) -> anyhow::Result<Outcome> {
    let iterations = settings.iterations;
    census::reset_peak_rss()?;
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
    let bundles = Bundles::build(subject)?;
    let raw = Raw {
        binary,
        root: work.path().join("root"),
        stderr_dir: work.path().to_path_buf(),
        transient: subject.family.transient_failures(),
        retries: Retries::default(),
    };
    let tag = format!("bench-{}-{}", std::process::id(), subject.name);

    if let Err(error) = raw.lifecycle(&format!("{tag}-probe"), bundles.lifecycle.path(), true) {
        return Ok(if subject.may_skip {
            Outcome::Skipped(format!("its first raw lifecycle failed: {error:#}"))
        } else {
            Outcome::Failed(format!("the first raw lifecycle: {error:#}"))
        });
    }

    let config = RuntimeConfig::default().binary(&raw.binary).root(&raw.root);
    let backend = Arc::new(tokio.block_on(subject.family.connect(config)).context("connecting the library backend")?);
    let state_root = StateRoot::open(work.path().join("engine")).context("opening the engine's state root")?;
    let engine = Arc::new(Engine::new(Arc::clone(&backend) as _, Arc::new(DirectMonitor::new()), state_root));
    let runc_crate = match subject.family {
        Family::Runc => Some(ways::runc_crate_client(&raw)?),
        Family::Crun | Family::Youki => None,
    };
    // The fake's checkpoint dumps no memory, only a file standing for it: its figure would say
    // nothing of the library or of CRIU, so only a real runtime with a working CRIU is measured.
    let restores = subject.binary.is_some()
        && tokio.block_on(backend.features()).context("probing the backend")?.restore.is_supported();
    let mut left_out = Vec::new();
    let (conmon, podman) = match &subject.binary {
        Some(runtime) => (
            conmon_ways(tokio, &raw, &backend, &bundles, work.path(), &tag, &mut left_out)?,
            podman(runtime, &bundles, work.path(), &tag, &mut left_out),
        ),
        None => {
            left_out.push("conmon and podman: measured with real runtimes only".to_owned());
            (None, None)
        }
    };
    let plan = plan(Extras {
        runc_crate: runc_crate.is_some(),
        restore: restores,
        conmon: conmon.is_some(),
        podman: podman.is_some(),
    });
    let drivers = Drivers {
        tokio,
        raw: &raw,
        backend,
        engine,
        conmon,
        podman,
        lifecycle_rootfs: bundles.lifecycle.rootfs(),
        runc_crate,
        scratch: work.path(),
    };

    let mut measured: Vec<Series> = plan
        .iter()
        .flat_map(|(workload, ways)| {
            ways.iter().map(|&way| Series {
                workload: *workload,
                way,
                samples: Vec::with_capacity(iterations),
                unexpected: Vec::new(),
                retries: 0,
            })
        })
        .collect();
    let mut memory = Memory::default();
    for round in 0..WARM_UP + iterations {
        let warming = round < WARM_UP;
        let (stage, n) = if warming { ("warm-up", round) } else { ("iteration", round - WARM_UP) };
        if round == WARM_UP {
            memory.bench_rss_after_warm_up_kib = conmon::status_kib("/proc/self/status", "VmRSS")?;
        }
        for (workload, ways) in &plan {
            if !settings.drives(*workload, (!warming).then_some(n)) {
                continue;
            }
            for way in rotated(ways, round) {
                let id = format!("{tag}-{}-{}-{}-{round}", workload.key(), way.key(), way.monitor());
                let retried_before = drivers.raw.retries.total();
                let sample = drive(&drivers, &bundles, settings, *workload, way, &id)
                    .with_context(|| format!("{} {}, {stage} {n}", way.label(), workload.key()))?;
                if !warming {
                    let series = measured.iter_mut().find(|series| (series.workload, series.way) == (*workload, way));
                    let series = series.context("a way outside the plan")?;
                    series.retries += drivers.raw.retries.total() - retried_before;
                    series.samples.push(sample.ms);
                    series.unexpected.extend(sample.unexpected.map(|what| format!("{stage} {n}: {what}")));
                }
            }
        }
    }
    memory.bench_rss_at_end_kib = conmon::status_kib("/proc/self/status", "VmRSS")?;
    if let Some(conmon) = &drivers.conmon {
        for n in 0..CONMON_RSS_SAMPLES {
            let id = format!("{tag}-conmon-rss-{n}");
            let rss = conmon::conmon_rss_kib(tokio, &conmon.engine, &id, bundles.stop.path())
                .context("reading a live conmon's resident size")?;
            memory.conmon_rss_kib.push(rss);
        }
    }
    memory.bench_peak_kib = conmon::status_kib("/proc/self/status", "VmHWM")?;
    if let Some(podman) = &drivers.podman {
        podman.remove_storage()?;
    }
    drop(drivers);
    let processes_left = census::processes_left(
        &tag,
        &[work.path(), bundles.lifecycle.path(), bundles.exit.path(), bundles.stop.path()],
    );
    drop((work, bundles, fake_runtime));
    let retries = raw.retries.by_words();
    Ok(Outcome::Measured(Measured { series: measured, memory, processes_left, left_out, retries }))
}

/// The conmon ways over a real runtime, if conmon passes the test gate and a first lifecycle
/// through it by hand works; otherwise why not goes to `left_out`.
fn conmon_ways<'a>(
    tokio: &tokio::runtime::Runtime,
    raw: &'a Raw,
    backend: &Arc<CliBackend>,
    bundles: &Bundles,
    scratch: &'a Path,
    tag: &str,
    left_out: &mut Vec<String>,
) -> anyhow::Result<Option<ConmonWays<'a>>> {
    let binary = match testkit::gate::real_runtime("conmon", &[]) {
        Gate::Open(real) => real.binary,
        Gate::Skip(reason) | Gate::Fail(reason) => {
            left_out.push(format!("conmon: {reason}"));
            return Ok(None);
        }
    };
    let by_hand = RawConmon { conmon: binary.clone(), raw, scratch };
    if let Err(error) = by_hand.lifecycle(tokio, &format!("{tag}-conmon-probe"), bundles.lifecycle.path()) {
        left_out.push(format!("conmon: its first raw lifecycle failed: {error:#}"));
        return Ok(None);
    }
    let state_root =
        StateRoot::open(scratch.join("engine-conmon")).context("opening the conmon engine's state root")?;
    let engine = Engine::new(Arc::clone(backend) as _, Arc::new(ConmonMonitor::new(binary)), state_root);
    Ok(Some(ConmonWays { raw: by_hand, engine }))
}

/// `podman run` over the real runtime at `runtime`, if podman is in `PATH` and a first run
/// works; otherwise why not goes to `left_out`.
fn podman(runtime: &Path, bundles: &Bundles, scratch: &Path, tag: &str, left_out: &mut Vec<String>) -> Option<Podman> {
    let Ok(binary) = which::which("podman") else {
        left_out.push("podman run: podman is not in PATH".to_owned());
        return None;
    };
    let podman = Podman { binary, runtime: runtime.to_path_buf(), storage: scratch.join("podman") };
    match podman.lifecycle(&format!("{tag}-podman-probe"), &bundles.lifecycle.rootfs()) {
        Ok(()) => Some(podman),
        Err(error) => {
            left_out.push(format!("podman run: its first run failed: {error:#}"));
            None
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

/// A ratio of medians and of p95s, when both ways were measured.
#[derive(Debug, Clone, Copy)]
struct Ratio {
    spec: RatioSpec,
    median: f64,
    p95: f64,
}

/// The summary of `way` in `workload`, if it was measured.
fn summary_of(measured: &[Series], workload: Workload, way: Way) -> Option<Summary> {
    measured.iter().find(|series| (series.workload, series.way) == (workload, way)).map(|s| Summary::of(&s.samples))
}

fn ratios(measured: &[Series]) -> Vec<Ratio> {
    RATIOS
        .iter()
        .filter_map(|&spec| {
            let way = summary_of(measured, spec.workload, spec.way)?;
            let baseline = summary_of(measured, spec.workload, spec.baseline)?;
            Some(Ratio { spec, median: way.median / baseline.median, p95: way.p95 / baseline.p95 })
        })
        .collect()
}

/// A target judged on one runtime's medians.
#[derive(Debug, Clone, Copy)]
struct Verdict {
    spec: TargetSpec,
    median: f64,
    baseline_median: Option<f64>,
    /// The figure the bound applies to: a ratio, or milliseconds.
    value: f64,
    met: bool,
}

/// The targets whose ways (and baseline) were measured, each judged.
fn verdicts(measured: &[Series]) -> Vec<Verdict> {
    TARGETS
        .iter()
        .filter_map(|&spec| {
            let median = summary_of(measured, spec.workload, spec.way)?.median;
            let baseline_median = match spec.baseline {
                Some(baseline) => Some(summary_of(measured, spec.workload, baseline)?.median),
                None => None,
            };
            let value = spec.bound.value(median, baseline_median)?;
            Some(Verdict { spec, median, baseline_median, value, met: spec.bound.met(value) })
        })
        .collect()
}

/// Containers a second, of a batch of `containers` that took `ms`.
fn containers_per_second(containers: usize, ms: f64) -> f64 {
    containers as f64 / (ms / 1000.0)
}

fn print_table(results: &[(&str, Outcome)], settings: Settings) {
    let Settings { iterations, throughput_containers, throughput_rounds } = settings;
    println!();
    for workload in Workload::ALL {
        println!("{:<18} {}.", workload.key(), workload.description());
    }
    println!(
        "{iterations} iterations per runtime for each way, the ways of a workload interleaved, after {WARM_UP} \
         warm-ups; throughput: {throughput_rounds} batches of {throughput_containers} containers for each way, in \
         the first iterations; xtask built with the {BUILD_PROFILE} profile (opt-level {OPT_LEVEL}); times in ms."
    );
    println!();
    println!(
        "{:<10} {:<18} {:<16} {:<7}  {:>8} {:>8} {:>8} {:>8}",
        "runtime", "workload", "way", "monitor", "median", "p10", "p90", "p95"
    );
    for (name, outcome) in results {
        match outcome {
            Outcome::Measured(measured) => {
                for series in &measured.series {
                    let summary = Summary::of(&series.samples);
                    let rate = match series.workload.parallelism(throughput_containers) {
                        Some(_) => format!(
                            "  ({:.1} containers/s)",
                            containers_per_second(throughput_containers, summary.median)
                        ),
                        None => String::new(),
                    };
                    println!(
                        "{name:<10} {:<18} {:<16} {:<7}  {:>8.1} {:>8.1} {:>8.1} {:>8.1}{rate}",
                        series.workload.key(),
                        series.way.label(),
                        series.way.monitor(),
                        summary.median,
                        summary.p10,
                        summary.p90,
                        summary.p95
                    );
                }
                for left in &measured.left_out {
                    println!("{name:<10} left out: {left}");
                }
            }
            Outcome::Skipped(reason) => println!("{name:<10} skipped: {reason}"),
            Outcome::Failed(error) => println!("{name:<10} FAILED: {error}"),
        }
    }
    for (name, outcome) in results {
        let Outcome::Measured(measured) = outcome else { continue };
        for series in measured.series.iter().filter(|series| !series.unexpected.is_empty()) {
            println!(
                "{name} {} {}: {} of {} runs ended otherwise than expected, e.g. {}",
                series.workload.key(),
                series.way.label(),
                series.unexpected.len(),
                series.samples.len(),
                series.unexpected[0]
            );
        }
        for series in measured.series.iter().filter(|series| series.retries > 0) {
            println!(
                "{name} {} {}: {} raw CLI call(s) run again after a transient failure of the runtime",
                series.workload.key(),
                series.way.label(),
                series.retries
            );
        }
    }
    println!();
    println!("{:<10} {:<18} {:<44}  {:>6} {:>6}", "runtime", "workload", "ratio (monitor)", "median", "p95");
    for (name, outcome) in results {
        let Outcome::Measured(measured) = outcome else { continue };
        for ratio in ratios(&measured.series) {
            let RatioSpec { workload, way, baseline } = ratio.spec;
            let label = format!("{} ({}) / {} ({})", way.label(), way.monitor(), baseline.label(), baseline.monitor());
            println!("{name:<10} {:<18} {label:<44}  {:>6.2} {:>6.2}", workload.key(), ratio.median, ratio.p95);
        }
    }
    println!();
    println!(
        "{:<10} {:<34} {:>9} {:>9} {:>10} {:>12}  verdict",
        "runtime", "target (medians)", "ms", "baseline", "figure", "target"
    );
    for (name, outcome) in results {
        let Outcome::Measured(measured) = outcome else { continue };
        for verdict in verdicts(&measured.series) {
            let baseline = verdict.baseline_median.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1}"));
            println!(
                "{name:<10} {:<34} {:>9.1} {baseline:>9} {:>10} {:>12}  {}",
                verdict.spec.figure,
                verdict.median,
                verdict.spec.bound.show(verdict.value),
                verdict.spec.bound.describe(),
                if verdict.met { "met" } else { "MISSED" }
            );
        }
    }
    println!();
    println!(
        "{:<10} {:>24} {:>16} {:>18} {:>16}  raw CLI calls run again after a transient failure",
        "runtime", "live conmon VmRSS (KiB)", "bench peak (KiB)", "bench growth (KiB)", "processes left"
    );
    for (name, outcome) in results {
        let Outcome::Measured(Measured { memory, processes_left, retries, .. }) = outcome else { continue };
        let conmon = match conmon_rss_median(memory) {
            Some(median) => format!("{median:.0} (median of {})", memory.conmon_rss_kib.len()),
            None => "-".to_owned(),
        };
        println!(
            "{name:<10} {conmon:>24} {:>16} {:>+18} {:>16}  {}",
            memory.bench_peak_kib,
            memory.growth_kib(),
            processes_left.len(),
            describe_retries(retries)
        );
        for left in processes_left {
            println!("{name:<10} left: pid {} ({}): {}", left.pid, left.name, left.why);
        }
    }
}

/// The raw calls run again, in all and by the runtime's words: `0`, or `3 (could not load
/// state for container: 2; failed to seal /proc/self/exe: 1)`.
fn describe_retries(retries: &std::collections::BTreeMap<String, usize>) -> String {
    let total: usize = retries.values().sum();
    if total == 0 {
        return "0".to_owned();
    }
    let by_words: Vec<String> = retries.iter().map(|(words, count)| format!("{words}: {count}")).collect();
    format!("{total} ({})", by_words.join("; "))
}

/// The median resident size of the conmons read, if any were.
fn conmon_rss_median(memory: &Memory) -> Option<f64> {
    let sizes: Vec<f64> = memory.conmon_rss_kib.iter().map(|&kib| kib as f64).collect();
    (!sizes.is_empty()).then(|| Summary::of(&sizes).median)
}

/// The figures as JSON: every series named by runtime, monitor, workload and way, with its
/// samples; every ratio; every target with its verdict; memory and processes left; and what
/// became of each runtime.
fn report(results: &[(&str, Outcome)], settings: Settings) -> serde_json::Value {
    let mut runtimes = Vec::new();
    let mut figures = Vec::new();
    let mut ratio_figures = Vec::new();
    let mut target_figures = Vec::new();
    let mut memory_figures = Vec::new();
    let mut left_figures = Vec::new();
    for (name, outcome) in results {
        runtimes.push(match outcome {
            Outcome::Measured(measured) => json!({
                "runtime": name,
                "outcome": "measured",
                "left_out": measured.left_out,
                "raw_cli_retries": measured.retries,
            }),
            Outcome::Skipped(reason) => json!({ "runtime": name, "outcome": "skipped", "reason": reason }),
            Outcome::Failed(error) => json!({ "runtime": name, "outcome": "failed", "error": error }),
        });
        let Outcome::Measured(measured) = outcome else { continue };
        let memory = &measured.memory;
        memory_figures.push(json!({
            "runtime": name,
            "conmon_rss_kib": memory.conmon_rss_kib,
            "conmon_rss_median_kib": conmon_rss_median(memory),
            "bench_peak_rss_kib": memory.bench_peak_kib,
            "bench_rss_after_warm_up_kib": memory.bench_rss_after_warm_up_kib,
            "bench_rss_at_end_kib": memory.bench_rss_at_end_kib,
            "bench_rss_growth_kib": memory.growth_kib(),
        }));
        left_figures.push(json!({
            "runtime": name,
            "count": measured.processes_left.len(),
            "processes": measured.processes_left.iter().map(|left| json!({
                "pid": left.pid, "name": left.name, "why": left.why,
            })).collect::<Vec<_>>(),
        }));
        for series in &measured.series {
            let summary = Summary::of(&series.samples);
            let mut figure = json!({
                "runtime": name,
                "monitor": series.way.monitor(),
                "workload": series.workload.key(),
                "way": series.way.key(),
                "median_ms": summary.median,
                "p10_ms": summary.p10,
                "p90_ms": summary.p90,
                "p95_ms": summary.p95,
                "samples_ms": series.samples,
                "unexpected_ends": series.unexpected,
                "raw_cli_retries": series.retries,
            });
            if let Some(parallel) = series.workload.parallelism(settings.throughput_containers) {
                figure["containers"] = json!(settings.throughput_containers);
                figure["parallel"] = json!(parallel);
                figure["containers_per_s_median"] =
                    json!(containers_per_second(settings.throughput_containers, summary.median));
            }
            figures.push(figure);
        }
        for ratio in ratios(&measured.series) {
            let RatioSpec { workload, way, baseline } = ratio.spec;
            ratio_figures.push(json!({
                "runtime": name,
                "workload": workload.key(),
                "way": way.key(),
                "monitor": way.monitor(),
                "baseline": { "way": baseline.key(), "monitor": baseline.monitor() },
                "median": ratio.median,
                "p95": ratio.p95,
            }));
        }
        for verdict in verdicts(&measured.series) {
            let TargetSpec { figure, workload, way, baseline, bound } = verdict.spec;
            target_figures.push(json!({
                "runtime": name,
                "figure": figure,
                "workload": workload.key(),
                "way": way.key(),
                "monitor": way.monitor(),
                "baseline": baseline.map(|baseline| json!({ "way": baseline.key(), "monitor": baseline.monitor() })),
                "median_ms": verdict.median,
                "baseline_median_ms": verdict.baseline_median,
                "value": verdict.value,
                "target": bound.describe(),
                "met": verdict.met,
            }));
        }
    }
    let workloads: serde_json::Map<String, serde_json::Value> =
        Workload::ALL.into_iter().map(|workload| (workload.key().to_owned(), json!(workload.description()))).collect();
    json!({
        "workloads": workloads,
        "iterations": settings.iterations,
        "warm_ups": WARM_UP,
        "throughput": { "containers": settings.throughput_containers, "batches": settings.throughput_rounds },
        "interleaving": "the ways of a workload take turns, each iteration rotating which goes first",
        "ratios_are": "way / baseline, of the medians and of the p95s",
        "targets_are": "judged on medians: a ratio to the baseline, a margin over it in ms, or ms",
        "build": { "profile": BUILD_PROFILE, "opt_level": OPT_LEVEL },
        "runtimes": runtimes,
        "figures": figures,
        "ratios": ratio_figures,
        "targets": target_figures,
        "memory_is": "conmon: VmRSS of a live conmon; bench: VmHWM over the runtime's run and VmRSS growth \
                      from after the warm-ups to the end, of the bench process, which holds the engines",
        "memory": memory_figures,
        "processes_left": left_figures,
        "raw_cli_retries_are": "raw CLI calls run again after failing with one of the runtime's transient failures \
                                (its backend's list), three attempts at most: by runtime and the runtime's words \
                                over the whole run, and by figure over its measured iterations",
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
    fn the_json_report_names_each_figure_by_runtime_monitor_workload_and_way() {
        let raw: Vec<f64> = (1..=10).map(f64::from).collect();
        let engine: Vec<f64> = raw.iter().map(|ms| ms * 2.0).collect();
        let engine_run: Vec<f64> = raw.iter().map(|ms| ms / 2.0).collect();
        let exit: Vec<f64> = vec![3.0, 1.0, 2.0];
        let series = |workload, way, samples: &[f64]| Series {
            workload,
            way,
            samples: samples.to_vec(),
            unexpected: vec![],
            retries: 0,
        };
        let results = [
            (
                "runc",
                Outcome::Measured(Measured {
                    series: vec![
                        Series { retries: 2, ..series(Workload::Lifecycle, Way::RawCli, &raw) },
                        series(Workload::Lifecycle, Way::Engine, &engine),
                        series(Workload::Lifecycle, Way::EngineRun, &engine_run),
                        Series {
                            unexpected: vec!["iteration 4: ended, but how was not seen".into()],
                            ..series(Workload::ExitLatency, Way::Engine, &exit)
                        },
                    ],
                    memory: Memory {
                        conmon_rss_kib: vec![1600, 1500, 1700],
                        bench_peak_kib: 30_000,
                        bench_rss_after_warm_up_kib: 20_000,
                        bench_rss_at_end_kib: 20_512,
                    },
                    processes_left: vec![census::LeftProcess {
                        pid: 4242,
                        name: "sh".into(),
                        why: "lives in a bundle or work directory of the bench",
                    }],
                    left_out: vec!["podman run: podman is not in PATH".into()],
                    retries: [("could not load state for container".to_owned(), 3)].into(),
                }),
            ),
            ("crun", Outcome::Skipped("crun is not in PATH".into())),
        ];
        let report = report(&results, Settings::full(10, 100));
        let close = |value: &serde_json::Value, expected: f64| (value.as_f64().unwrap() - expected).abs() < 1e-9;

        assert_eq!(report["iterations"], 10);
        assert_eq!(
            report["runtimes"],
            json!([
                {
                    "runtime": "runc",
                    "outcome": "measured",
                    "left_out": ["podman run: podman is not in PATH"],
                    "raw_cli_retries": { "could not load state for container": 3 },
                },
                { "runtime": "crun", "outcome": "skipped", "reason": "crun is not in PATH" },
            ])
        );
        assert_eq!(
            report["memory"],
            json!([{
                "runtime": "runc",
                "conmon_rss_kib": [1600, 1500, 1700],
                "conmon_rss_median_kib": 1600.0,
                "bench_peak_rss_kib": 30_000,
                "bench_rss_after_warm_up_kib": 20_000,
                "bench_rss_at_end_kib": 20_512,
                "bench_rss_growth_kib": 512,
            }])
        );
        assert_eq!(
            report["processes_left"],
            json!([{
                "runtime": "runc",
                "count": 1,
                "processes": [{ "pid": 4242, "name": "sh", "why": "lives in a bundle or work directory of the bench" }],
            }])
        );

        let figures = report["figures"].as_array().unwrap();
        assert_eq!(figures.len(), 4, "one figure per series of a measured runtime");
        fn names(figure: &serde_json::Value) -> [&str; 4] {
            ["runtime", "monitor", "workload", "way"].map(|key| figure[key].as_str().unwrap())
        }
        assert_eq!(names(&figures[0]), ["runc", "none", "lifecycle", "raw-cli"]);
        assert_eq!(names(&figures[1]), ["runc", "direct", "lifecycle", "engine"]);
        assert_eq!(names(&figures[2]), ["runc", "direct", "lifecycle", "engine-run"]);
        assert_eq!(names(&figures[3]), ["runc", "direct", "exit-latency", "engine"]);
        // numpy.percentile([1..10], [50, 95]) = 5.5, 9.55; the engine's samples are twice those.
        assert!(close(&figures[0]["median_ms"], 5.5), "{}", figures[0]);
        assert!(close(&figures[0]["p95_ms"], 9.55), "{}", figures[0]);
        assert!(close(&figures[1]["median_ms"], 11.0), "{}", figures[1]);
        assert!(close(&figures[3]["median_ms"], 2.0), "{}", figures[3]);
        assert_eq!(figures[0]["samples_ms"], json!(raw));
        assert_eq!(figures[3]["samples_ms"], json!([3.0, 1.0, 2.0]), "samples stay in the order they ran");
        assert_eq!(figures[0]["unexpected_ends"], json!([]));
        assert_eq!(figures[3]["unexpected_ends"], json!(["iteration 4: ended, but how was not seen"]));
        assert_eq!([&figures[0]["raw_cli_retries"], &figures[1]["raw_cli_retries"]], [&json!(2), &json!(0)]);

        // Only the ratios whose two ways were measured: the exit latency has no raw baseline here.
        let ratios = report["ratios"].as_array().unwrap();
        assert_eq!(ratios.len(), 2, "{ratios:?}");
        let engine = &ratios[0];
        assert_eq!(
            [&engine["runtime"], &engine["workload"], &engine["way"], &engine["monitor"], &engine["baseline"]],
            [
                &json!("runc"),
                &json!("lifecycle"),
                &json!("engine"),
                &json!("direct"),
                &json!({ "way": "raw-cli", "monitor": "none" })
            ]
        );
        assert!(close(&engine["median"], 2.0) && close(&engine["p95"], 2.0), "{engine}");
        let run = &ratios[1];
        assert_eq!(run["way"], "engine-run");
        assert!(close(&run["median"], 0.5) && close(&run["p95"], 0.5), "{run}");

        // Targets: the lifecycle ratios, and the exit detection's own median (no baseline).
        let targets = report["targets"].as_array().unwrap();
        let judged: Vec<(&str, &str, bool)> = targets
            .iter()
            .map(|t| (t["figure"].as_str().unwrap(), t["target"].as_str().unwrap(), t["met"].as_bool().unwrap()))
            .collect();
        assert_eq!(
            judged,
            [
                ("Engine + direct, lifecycle", "<= 0.95x", false),
                ("Engine + direct, run", "<= 0.80x", true),
                ("exit detection", "<= 2.0 ms", true),
            ],
            "twice the raw time misses 0.95, half of it meets 0.80, a 2 ms median meets 2 ms"
        );
        assert_eq!(targets[0]["baseline"], json!({ "way": "raw-cli", "monitor": "none" }));
        assert!(close(&targets[0]["median_ms"], 11.0) && close(&targets[0]["baseline_median_ms"], 5.5));
        assert!(close(&targets[0]["value"], 2.0), "{}", targets[0]);
        assert_eq!(targets[2]["baseline"], json!(null));
        assert!(close(&targets[2]["value"], 2.0), "{}", targets[2]);
    }

    #[test]
    fn throughput_figures_carry_their_batch_and_rate_and_are_judged_against_the_raw_cli() {
        // 100 containers in 4 s through the raw CLI, in 5 s through the engine: 25 and 20 a second.
        let series = |way, ms: f64| Series {
            workload: Workload::ThroughputLanes,
            way,
            samples: vec![ms, ms + 1000.0, ms - 1000.0],
            unexpected: vec![],
            retries: 0,
        };
        let results = [(
            "crun",
            Outcome::Measured(Measured {
                series: vec![series(Way::RawCli, 4000.0), series(Way::Engine, 5000.0)],
                ..Measured::default()
            }),
        )];
        let report = report(&results, Settings::full(5, 100));
        assert_eq!(report["throughput"], json!({ "containers": 100, "batches": 3 }));
        let raw = &report["figures"][0];
        assert_eq!((raw["workload"].as_str(), raw["way"].as_str()), (Some("throughput-10"), Some("raw-cli")));
        assert_eq!((&raw["containers"], &raw["parallel"]), (&json!(100), &json!(10)));
        assert_eq!(raw["containers_per_s_median"], json!(25.0));
        assert_eq!(report["figures"][1]["containers_per_s_median"], json!(20.0));
        let [target] = report["targets"].as_array().unwrap().as_slice() else { panic!("{}", report["targets"]) };
        assert_eq!(target["figure"], "throughput, 10 at a time");
        assert_eq!((&target["value"], &target["met"]), (&json!(1.25), &json!(false)), "5 s / 4 s misses 1.00");
    }

    #[test]
    fn a_target_is_a_ratio_a_margin_or_milliseconds_of_medians() {
        assert_eq!(Bound::RatioAtMost(0.95).value(19.0, Some(20.0)), Some(0.95));
        assert!(Bound::RatioAtMost(0.95).met(0.95), "the bound itself is met");
        assert!(!Bound::RatioAtMost(0.95).met(0.96));
        assert!(Bound::Faster.met(0.99) && !Bound::Faster.met(1.0), "as fast is not faster");
        // Stop: 9 ms against a 3.5 ms kill is 5.5 ms over it, more than 5.
        assert_eq!(Bound::MarginAtMost(5.0).value(9.0, Some(3.5)), Some(5.5));
        assert!(!Bound::MarginAtMost(5.0).met(5.5) && Bound::MarginAtMost(5.0).met(4.0));
        assert_eq!(Bound::MsAtMost(2.0).value(1.5, None), Some(1.5));
        assert_eq!(Bound::RatioAtMost(1.0).value(1.5, None), None, "a ratio needs its baseline");
        assert_eq!(
            [
                Bound::RatioAtMost(0.8).show(0.754),
                Bound::MarginAtMost(5.0).show(-1.26),
                Bound::MsAtMost(2.0).show(3.04)
            ],
            ["0.75x", "-1.3 ms", "3.0 ms"]
        );
    }

    #[test]
    fn the_stop_is_judged_against_the_raw_kill_plus_five_milliseconds() {
        let series = |way, ms: f64| Series {
            workload: Workload::StopLatency,
            way,
            samples: vec![ms; 3],
            unexpected: vec![],
            retries: 0,
        };
        let measured = [series(Way::RawCli, 12.0), series(Way::RawKill, 6.0), series(Way::Engine, 10.0)];
        let verdicts = verdicts(&measured);
        let [stop] = verdicts.as_slice() else { panic!("{verdicts:?}") };
        assert_eq!((stop.spec.baseline, stop.value, stop.met), (Some(Way::RawKill), 4.0, true), "10 - 6 = 4 <= 5");
    }

    #[test]
    fn batches_run_in_the_first_measured_iterations_only_and_quick_is_small() {
        let settings = Settings::full(20, 100);
        assert_eq!(settings.throughput_rounds, 3);
        let batches = |workload| (0..20).filter(|&n| settings.drives(workload, Some(n))).count();
        assert_eq!(batches(Workload::ThroughputAll), 3);
        assert_eq!(batches(Workload::Lifecycle), 20);
        assert!(!settings.drives(Workload::ThroughputLanes, None), "not in the warm-ups");
        assert!(settings.drives(Workload::Lifecycle, None));
        assert_eq!(Settings::full(2, 100).throughput_rounds, 2, "no more batches than iterations");
        assert_eq!(Settings::quick(), Settings { iterations: 3, throughput_containers: 10, throughput_rounds: 1 });
        assert_eq!(Workload::ThroughputAll.parallelism(100), Some(100));
        assert_eq!(Workload::ThroughputLanes.parallelism(100), Some(10));
    }

    #[test]
    fn every_way_of_a_workload_goes_first_in_turn() {
        let ways = [Way::RawCli, Way::CliBackend, Way::Engine];
        assert_eq!(rotated(&ways, 0), [Way::RawCli, Way::CliBackend, Way::Engine]);
        assert_eq!(rotated(&ways, 1), [Way::CliBackend, Way::Engine, Way::RawCli]);
        assert_eq!(rotated(&ways, 2), [Way::Engine, Way::RawCli, Way::CliBackend]);
        assert_eq!(rotated(&ways, 3), [Way::RawCli, Way::CliBackend, Way::Engine]);
    }

    #[test]
    fn the_runc_crate_and_its_like_for_like_backend_are_lifecycle_ways_only_where_asked_for() {
        let beside_the_crate = [Way::RuncCrate, Way::CliBackendProcWait];
        let with: Vec<(Workload, Way)> = plan(Extras { runc_crate: true, restore: true, ..Extras::default() })
            .into_iter()
            .flat_map(|(workload, ways)| ways.into_iter().map(move |way| (workload, way)))
            .filter(|(_, way)| beside_the_crate.contains(way))
            .collect();
        assert_eq!(with, [(Workload::Lifecycle, Way::RuncCrate), (Workload::Lifecycle, Way::CliBackendProcWait)]);
        let without = plan(Extras { restore: true, ..Extras::default() });
        assert!(without.iter().all(|(_, ways)| !ways.iter().any(|way| beside_the_crate.contains(way))));
        let workloads: Vec<Workload> = without.into_iter().map(|(workload, _)| workload).collect();
        assert_eq!(workloads, Workload::ALL);
    }

    #[test]
    fn checkpoint_and_restore_are_measured_only_where_the_runtime_restores() {
        let workloads = |with_restore| -> Vec<Workload> {
            plan(Extras { restore: with_restore, ..Extras::default() })
                .into_iter()
                .map(|(workload, _)| workload)
                .collect()
        };
        assert!(workloads(true).contains(&Workload::CheckpointRestore));
        assert_eq!(
            workloads(false),
            [
                Workload::Lifecycle,
                Workload::ExitLatency,
                Workload::StopLatency,
                Workload::ThroughputLanes,
                Workload::ThroughputAll
            ]
        );
    }

    #[test]
    fn conmon_and_podman_are_lifecycle_ways_only_where_asked_for() {
        let through_conmon = [Way::RawConmon, Way::EngineConmon, Way::Podman];
        let ways_of = |extras: Extras| -> Vec<(Workload, Way)> {
            plan(extras)
                .into_iter()
                .flat_map(|(workload, ways)| ways.into_iter().map(move |way| (workload, way)))
                .filter(|(_, way)| through_conmon.contains(way))
                .collect()
        };
        assert_eq!(
            ways_of(Extras { conmon: true, podman: true, ..Extras::default() }),
            [
                (Workload::Lifecycle, Way::RawConmon),
                (Workload::Lifecycle, Way::EngineConmon),
                (Workload::Lifecycle, Way::Podman)
            ]
        );
        assert_eq!(ways_of(Extras { conmon: true, ..Extras::default() }).len(), 2);
        assert!(ways_of(Extras::default()).is_empty());
    }

    #[test]
    fn the_engine_through_conmon_is_judged_against_raw_conmon_and_podman() {
        let series = |way, ms: f64| Series {
            workload: Workload::Lifecycle,
            way,
            samples: vec![ms; 3],
            unexpected: vec![],
            retries: 0,
        };
        // 104 / 100 is within 1.05 of raw conmon; 104 / 250 = 0.416 is short of 2.5 times podman.
        let measured = [series(Way::RawConmon, 100.0), series(Way::EngineConmon, 104.0), series(Way::Podman, 250.0)];
        let verdicts: Vec<(Option<Way>, Bound, bool)> = verdicts(&measured)
            .into_iter()
            .map(|verdict| (verdict.spec.baseline, verdict.spec.bound, verdict.met))
            .collect();
        assert_eq!(
            verdicts,
            [
                (Some(Way::RawConmon), Bound::RatioAtMost(1.05), true),
                (Some(Way::Podman), Bound::RatioAtMost(0.40), false)
            ]
        );
        assert_eq!(
            [Way::EngineConmon, Way::RawConmon, Way::Podman].map(Way::monitor),
            ["conmon"; 3],
            "every conmon way is reported under the conmon monitor"
        );
        assert_eq!((Way::EngineConmon.key(), Way::Engine.key()), ("engine", "engine"), "told apart by monitor only");
    }

    #[test]
    fn retries_are_told_in_all_and_by_the_runtime_s_words() {
        assert_eq!(describe_retries(&Default::default()), "0");
        let retries =
            [("failed to seal /proc/self/exe".to_owned(), 1), ("could not load state for container".to_owned(), 2)];
        assert_eq!(
            describe_retries(&retries.into()),
            "3 (could not load state for container: 2; failed to seal /proc/self/exe: 1)"
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
