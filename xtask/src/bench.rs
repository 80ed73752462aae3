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
//! over four workloads:
//!
//! - **lifecycle**: a `/bin/true` container created, started, waited for (raw and CliBackend ask
//!   `state` every 2 ms until it is stopped) and deleted; every way;
//! - **exit latency**: from the moment the bench closes the stdin of a container running
//!   `sh -c 'read line; exit 3'` until its exit is seen: `engine.wait` returning, or `state`
//!   saying stopped; the moment is the bench's own, not something the code under test reports;
//! - **stop latency**: from asking a container whose TERM trap exits at once to stop (after it
//!   said it is ready) until it is seen stopped: `engine.stop`, or `kill TERM` and `state`;
//! - **checkpoint-restore**: a running container dumped with CRIU and restored detached from its
//!   images, where a real runtime restores (runc with a working CRIU; the fake's checkpoint dumps
//!   no memory, only a file standing for it, which would measure nothing): the two
//!   runtime calls, or `engine.checkpoint` and `engine.restore` with what the engine adds (the
//!   state check, the images under its state root, supervising the restored init).
//!
//! The ways of a workload are interleaved (each iteration rotates which goes first) so a burst of
//! load on the host, or whatever one way leaves behind for the next, hits every way alike. The
//! report gives medians with p10, p90 and p95 and the ratios of medians and of p95s of each way
//! to its baseline (the raw CLI; the runc crate for `Engine run` and `CliBackend /proc`; raw
//! conmon and podman for the Engine through conmon), with the targets the engine was built for
//! (lifecycle: Engine at most 0.95 of the raw CLI, Engine run at most 0.80; through conmon at
//! most 1.05 of raw conmon and at most 0.40 of `podman run`, i.e. 2.5 times as fast); a target is
//! reported as met or missed, never asserted. Memory is reported beside the times: the resident
//! size of a live conmon (from `/proc`), and the peak resident size (`VmHWM`) of the bench
//! process, which holds the engines (the engine's own peak is at most that). A change in a ratio
//! between runs is what matters, not the milliseconds. `--json PATH` writes every figure named by
//! runtime, monitor (`direct` for the engine, `none` for the CLI-level ways), workload and way,
//! with every sample, and every ratio.
//!
//! The library is timed as users ship it: built with optimisations. `cargo xtask` runs a debug
//! build of this crate, so an unoptimised bench does not measure; it runs itself again through
//! `cargo run --release` (the fake runtime is built in release too), and the report states the
//! profile and optimisation level it was built with.
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
//! Every container is force-deleted if its sequence fails, and every temp directory (bundles,
//! state roots) is removed when the runtime's measurement ends.

mod conmon;
mod ways;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use anyhow::{Context, bail};
use conmon_driver::ConmonMonitor;
use runtime_core::{CliBackend, DirectMonitor, Engine, OciBackend, RuntimeConfig, StateRoot};
use serde_json::json;

use testkit::bundle::{Bundle, BundleBuilder, Rootfs};
use testkit::fake::{FakeRuntime, Flavour};
use testkit::gate::Gate;

use crate::{cargo, run_command};
use conmon::{Podman, RawConmon};
use ways::{ConmonWays, Drivers, EXIT_ON_EOF, EXIT_ON_TERM, Raw, Sample};

/// The profile and optimisation level this build of xtask was compiled with (see `build.rs`).
const BUILD_PROFILE: &str = env!("XTASK_BUILD_PROFILE");
const OPT_LEVEL: &str = env!("XTASK_BUILD_OPT_LEVEL");

/// Set on the optimised run that an unoptimised one starts, so that it never starts another.
const REINVOKED: &str = "XTASK_BENCH_REINVOKED";

/// Iterations of every way run before measuring: they fill caches and reveal a broken runtime.
const WARM_UP: usize = 2;

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Lifecycle,
    ExitLatency,
    StopLatency,
    CheckpointRestore,
}

impl Workload {
    const ALL: [Workload; 4] =
        [Workload::Lifecycle, Workload::ExitLatency, Workload::StopLatency, Workload::CheckpointRestore];

    fn key(self) -> &'static str {
        match self {
            Workload::Lifecycle => "lifecycle",
            Workload::ExitLatency => "exit-latency",
            Workload::StopLatency => "stop-latency",
            Workload::CheckpointRestore => "checkpoint-restore",
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
                 it is seen stopped (raw CLI: kill TERM, then state every 2 ms; Engine: stop returns)"
            }
            Workload::CheckpointRestore => {
                "a running container checkpointed with CRIU and restored detached from its images, one call \
                 after the other (raw CLI: checkpoint, restore --detach; Engine: checkpoint, restore, the \
                 images under its state root); where the runtime restores"
            }
        }
    }
}

/// How a workload is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    RawCli,
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
            Way::RawCli | Way::CliBackend | Way::RuncCrate | Way::CliBackendProcWait => "none",
        }
    }
}

/// A ratio the report gives: `way` over `baseline` in `workload`, with the median ratio the
/// engine was built to reach, if any.
#[derive(Debug, Clone, Copy)]
struct RatioSpec {
    workload: Workload,
    way: Way,
    baseline: Way,
    target: Option<f64>,
}

const RATIOS: &[RatioSpec] = &[
    RatioSpec { workload: Workload::Lifecycle, way: Way::CliBackend, baseline: Way::RawCli, target: None },
    RatioSpec { workload: Workload::Lifecycle, way: Way::Engine, baseline: Way::RawCli, target: Some(0.95) },
    RatioSpec { workload: Workload::Lifecycle, way: Way::EngineRun, baseline: Way::RawCli, target: Some(0.80) },
    RatioSpec { workload: Workload::Lifecycle, way: Way::EngineRun, baseline: Way::RuncCrate, target: None },
    RatioSpec { workload: Workload::Lifecycle, way: Way::CliBackendProcWait, baseline: Way::RuncCrate, target: None },
    RatioSpec { workload: Workload::Lifecycle, way: Way::EngineConmon, baseline: Way::RawConmon, target: Some(1.05) },
    RatioSpec { workload: Workload::Lifecycle, way: Way::EngineConmon, baseline: Way::Podman, target: Some(0.40) },
    RatioSpec { workload: Workload::Lifecycle, way: Way::EngineConmon, baseline: Way::Engine, target: None },
    RatioSpec { workload: Workload::Lifecycle, way: Way::RawConmon, baseline: Way::RawCli, target: None },
    RatioSpec { workload: Workload::ExitLatency, way: Way::Engine, baseline: Way::RawCli, target: None },
    RatioSpec { workload: Workload::StopLatency, way: Way::Engine, baseline: Way::RawCli, target: None },
    RatioSpec { workload: Workload::CheckpointRestore, way: Way::Engine, baseline: Way::RawCli, target: None },
];

/// The samples of one way of one workload, in milliseconds, in the order they ran, and the
/// iterations whose container the engine said ended otherwise than expected.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    workload: Workload,
    way: Way,
    samples: Vec<f64>,
    unexpected: Vec<String>,
}

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
    /// The optional ways left out with this runtime, each with why.
    left_out: Vec<String>,
}

/// Resident sizes, in KiB.
#[derive(Debug, Clone, Default, PartialEq)]
struct Memory {
    /// `VmRSS` of live conmons, one per container (none when conmon was not measured).
    conmon_rss_kib: Vec<u64>,
    /// `VmHWM` of the bench process once the runtime was measured: the peak of everything it
    /// holds, the engines included.
    bench_peak_kib: u64,
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
            Workload::ExitLatency | Workload::StopLatency | Workload::CheckpointRestore => {
                (workload, vec![Way::RawCli, Way::Engine])
            }
        })
        .collect()
}

/// `ways` starting at the `round`-th: over successive rounds each way goes first in turn.
fn rotated(ways: &[Way], round: usize) -> Vec<Way> {
    let start = round % ways.len().max(1);
    ways[start..].iter().chain(&ways[..start]).copied().collect()
}

/// Drives `workload` one time the `way` way.
fn drive(drivers: &Drivers, bundles: &Bundles, workload: Workload, way: Way, id: &str) -> anyhow::Result<Sample> {
    let bundle = bundles.of(workload);
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
        (Workload::StopLatency, Way::Engine) => drivers.engine_stop_latency(id, bundle),
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
    let bundles = Bundles::build(subject)?;
    let raw = Raw { binary, root: work.path().join("root") };
    let tag = format!("bench-{}-{}", std::process::id(), subject.name);

    let capture = work.path().join("create-stderr");
    if let Err(error) = raw.lifecycle(&format!("{tag}-probe"), bundles.lifecycle.path(), Some(&capture)) {
        return Ok(if subject.may_skip {
            Outcome::Skipped(format!("its first raw lifecycle failed: {error:#}"))
        } else {
            Outcome::Failed(format!("the first raw lifecycle: {error:#}"))
        });
    }

    let config = RuntimeConfig::default().binary(&raw.binary).root(&raw.root);
    let backend = Arc::new(tokio.block_on(subject.family.connect(config)).context("connecting the library backend")?);
    let state_root = StateRoot::open(work.path().join("engine")).context("opening the engine's state root")?;
    let engine = Engine::new(Arc::clone(&backend) as _, Arc::new(DirectMonitor::new()), state_root);
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
            })
        })
        .collect();
    for round in 0..WARM_UP + iterations {
        let warming = round < WARM_UP;
        let (stage, n) = if warming { ("warm-up", round) } else { ("iteration", round - WARM_UP) };
        for (workload, ways) in &plan {
            for way in rotated(ways, round) {
                let id = format!("{tag}-{}-{}-{}-{round}", workload.key(), way.key(), way.monitor());
                let sample = drive(&drivers, &bundles, *workload, way, &id)
                    .with_context(|| format!("{} {}, {stage} {n}", way.label(), workload.key()))?;
                if !warming {
                    let series = measured.iter_mut().find(|series| (series.workload, series.way) == (*workload, way));
                    let series = series.context("a way outside the plan")?;
                    series.samples.push(sample.ms);
                    series.unexpected.extend(sample.unexpected.map(|what| format!("{stage} {n}: {what}")));
                }
            }
        }
    }
    let mut memory = Memory::default();
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
    drop((work, bundles, fake_runtime));
    Ok(Outcome::Measured(Measured { series: measured, memory, left_out }))
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

impl Ratio {
    /// Whether the median ratio reached its target, if it has one.
    fn met(&self) -> Option<bool> {
        self.spec.target.map(|target| self.median <= target)
    }
}

fn ratios(measured: &[Series]) -> Vec<Ratio> {
    let summary = |workload: Workload, way: Way| {
        measured.iter().find(|series| (series.workload, series.way) == (workload, way)).map(|s| Summary::of(&s.samples))
    };
    RATIOS
        .iter()
        .filter_map(|&spec| {
            let way = summary(spec.workload, spec.way)?;
            let baseline = summary(spec.workload, spec.baseline)?;
            Some(Ratio { spec, median: way.median / baseline.median, p95: way.p95 / baseline.p95 })
        })
        .collect()
}

fn print_table(results: &[(&str, Outcome)], iterations: usize) {
    println!();
    for workload in Workload::ALL {
        println!("{:<18} {}.", workload.key(), workload.description());
    }
    println!(
        "{iterations} iterations per runtime for each way, the ways of a workload interleaved, after {WARM_UP} \
         warm-ups; xtask built with the {BUILD_PROFILE} profile (opt-level {OPT_LEVEL}); times in ms."
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
                    println!(
                        "{name:<10} {:<18} {:<16} {:<7}  {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                        series.workload.key(),
                        series.way.label(),
                        series.way.monitor(),
                        summary.median,
                        summary.p10,
                        summary.p90,
                        summary.p95
                    );
                }
            }
            Outcome::Skipped(reason) => println!("{name:<10} skipped: {reason}"),
            Outcome::Failed(error) => println!("{name:<10} FAILED: {error}"),
        }
    }
    for (name, outcome) in results {
        let Outcome::Measured(measured) = outcome else { continue };
        for left_out in &measured.left_out {
            println!("{name}: left out: {left_out}");
        }
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
    }
    println!();
    println!(
        "{:<10} {:<18} {:<44}  {:>6} {:>6}  target (median)",
        "runtime", "workload", "ratio (monitor)", "median", "p95"
    );
    for (name, outcome) in results {
        let Outcome::Measured(measured) = outcome else { continue };
        for ratio in ratios(&measured.series) {
            let RatioSpec { workload, way, baseline, target } = ratio.spec;
            let label = format!("{} ({}) / {} ({})", way.label(), way.monitor(), baseline.label(), baseline.monitor());
            let target = match (target, ratio.met()) {
                (Some(target), Some(true)) => format!("<= {target:.2}, met"),
                (Some(target), _) => format!("<= {target:.2}, missed"),
                (None, _) => String::new(),
            };
            println!(
                "{name:<10} {:<18} {label:<44}  {:>6.2} {:>6.2}  {target}",
                workload.key(),
                ratio.median,
                ratio.p95
            );
        }
    }
    println!();
    println!("{:<10} {:>24} {:>28}", "runtime", "live conmon VmRSS (KiB)", "bench process VmHWM (KiB)");
    for (name, outcome) in results {
        let Outcome::Measured(Measured { memory, .. }) = outcome else { continue };
        let conmon = match conmon_rss_median(memory) {
            Some(median) => format!("{median:.0} (median of {})", memory.conmon_rss_kib.len()),
            None => "-".to_owned(),
        };
        println!("{name:<10} {conmon:>24} {:>28}", memory.bench_peak_kib);
    }
}

/// The median resident size of the conmons read, if any were.
fn conmon_rss_median(memory: &Memory) -> Option<f64> {
    let sizes: Vec<f64> = memory.conmon_rss_kib.iter().map(|&kib| kib as f64).collect();
    (!sizes.is_empty()).then(|| Summary::of(&sizes).median)
}

/// The figures as JSON: every series named by runtime, monitor, workload and way, with its
/// samples; every ratio with its target; and what became of each runtime.
fn report(results: &[(&str, Outcome)], iterations: usize) -> serde_json::Value {
    let mut runtimes = Vec::new();
    let mut figures = Vec::new();
    let mut ratio_figures = Vec::new();
    let mut memory_figures = Vec::new();
    for (name, outcome) in results {
        runtimes.push(match outcome {
            Outcome::Measured(measured) => {
                json!({ "runtime": name, "outcome": "measured", "left_out": measured.left_out })
            }
            Outcome::Skipped(reason) => json!({ "runtime": name, "outcome": "skipped", "reason": reason }),
            Outcome::Failed(error) => json!({ "runtime": name, "outcome": "failed", "error": error }),
        });
        let Outcome::Measured(measured) = outcome else { continue };
        memory_figures.push(json!({
            "runtime": name,
            "conmon_rss_kib": measured.memory.conmon_rss_kib,
            "conmon_rss_median_kib": conmon_rss_median(&measured.memory),
            "bench_peak_rss_kib": measured.memory.bench_peak_kib,
        }));
        for series in &measured.series {
            let summary = Summary::of(&series.samples);
            figures.push(json!({
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
            }));
        }
        for ratio in ratios(&measured.series) {
            let RatioSpec { workload, way, baseline, target } = ratio.spec;
            ratio_figures.push(json!({
                "runtime": name,
                "workload": workload.key(),
                "way": way.key(),
                "monitor": way.monitor(),
                "baseline": { "way": baseline.key(), "monitor": baseline.monitor() },
                "median": ratio.median,
                "p95": ratio.p95,
                "target_median": target,
                "target_met": ratio.met(),
            }));
        }
    }
    let workloads: serde_json::Map<String, serde_json::Value> =
        Workload::ALL.into_iter().map(|workload| (workload.key().to_owned(), json!(workload.description()))).collect();
    json!({
        "workloads": workloads,
        "iterations": iterations,
        "warm_ups": WARM_UP,
        "interleaving": "the ways of a workload take turns, each iteration rotating which goes first",
        "ratios_are": "way / baseline, of the medians and of the p95s",
        "build": { "profile": BUILD_PROFILE, "opt_level": OPT_LEVEL },
        "runtimes": runtimes,
        "figures": figures,
        "ratios": ratio_figures,
        "memory_is": "conmon: VmRSS of a live conmon; bench: VmHWM of the bench process, which holds the engines",
        "memory": memory_figures,
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
        let series =
            |workload, way, samples: &[f64]| Series { workload, way, samples: samples.to_vec(), unexpected: vec![] };
        let results = [
            (
                "runc",
                Outcome::Measured(Measured {
                    series: vec![
                        series(Workload::Lifecycle, Way::RawCli, &raw),
                        series(Workload::Lifecycle, Way::Engine, &engine),
                        series(Workload::Lifecycle, Way::EngineRun, &engine_run),
                        Series {
                            unexpected: vec!["iteration 4: ended, but how was not seen".into()],
                            ..series(Workload::ExitLatency, Way::Engine, &exit)
                        },
                    ],
                    memory: Memory { conmon_rss_kib: vec![1600, 1500, 1700], bench_peak_kib: 30_000 },
                    left_out: vec!["podman run: podman is not in PATH".into()],
                }),
            ),
            ("crun", Outcome::Skipped("crun is not in PATH".into())),
        ];
        let report = report(&results, 10);
        let close = |value: &serde_json::Value, expected: f64| (value.as_f64().unwrap() - expected).abs() < 1e-9;

        assert_eq!(report["iterations"], 10);
        assert_eq!(
            report["runtimes"],
            json!([
                { "runtime": "runc", "outcome": "measured", "left_out": ["podman run: podman is not in PATH"] },
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
        assert!(close(&engine["target_median"], 0.95), "{engine}");
        assert_eq!(engine["target_met"], json!(false), "twice the raw time misses 0.95");
        let run = &ratios[1];
        assert_eq!(run["way"], "engine-run");
        assert!(close(&run["median"], 0.5) && close(&run["p95"], 0.5), "{run}");
        assert!(close(&run["target_median"], 0.80), "{run}");
        assert_eq!(run["target_met"], json!(true), "half the raw time meets 0.80");
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
        assert_eq!(workloads(false), [Workload::Lifecycle, Workload::ExitLatency, Workload::StopLatency]);
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
        let series =
            |way, ms: f64| Series { workload: Workload::Lifecycle, way, samples: vec![ms; 3], unexpected: vec![] };
        // 104 / 100 is within 1.05 of raw conmon; 104 / 250 = 0.416 is short of 2.5 times podman.
        let measured = [series(Way::RawConmon, 100.0), series(Way::EngineConmon, 104.0), series(Way::Podman, 250.0)];
        let verdicts: Vec<(Way, Option<f64>, Option<bool>)> =
            ratios(&measured).into_iter().map(|ratio| (ratio.spec.baseline, ratio.spec.target, ratio.met())).collect();
        assert_eq!(verdicts, [(Way::RawConmon, Some(1.05), Some(true)), (Way::Podman, Some(0.40), Some(false))]);
        assert_eq!(
            [Way::EngineConmon, Way::RawConmon, Way::Podman].map(Way::monitor),
            ["conmon"; 3],
            "every conmon way is reported under the conmon monitor"
        );
        assert_eq!((Way::EngineConmon.key(), Way::Engine.key()), ("engine", "engine"), "told apart by monitor only");
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
