//! Restore through conmon, on real conmon, runc and CRIU (each through the gate: `conmon`,
//! `runc`, `criu`): a checkpointed counter goes on counting under a new conmon, a checkpoint
//! exported to an archive restores under a new id, the restored container's exit is the one
//! conmon records, and nothing is left behind (no conmon, no container, no zombie, no file of
//! ours, no node conmon made in the bundle). What conmon cannot serve in a restore is refused
//! before a shell stand-in for it runs.
//!
//! The counter is the evidence that memory survived: a shell loop counts in a variable and
//! writes the count to a file in its working directory, read through `/proc/<pid>/cwd` (a fact
//! of the process itself). A process started afresh would count from 1 again. The expected
//! exit codes are the shell's (`exit 3`) and POSIX's (128 + SIGKILL's 9), the exit file read
//! raw as conmon wrote it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use backend_runc::Runc;
use conmon_driver::ConmonMonitor;
use runtime_core::checkpoint::Compression;
use runtime_core::{
    CliBackend, ContainerCheckpointOptions, ContainerFiles, ContainerId, ContainerRestoreOptions, ContainerStdio,
    CreateOptions, DeleteMode, Engine, Error, Exit, Export, KillScope, Monitor, OciBackend, RestoreOptions,
    RestoreRequest, RuntimeConfig, RuntimeFamily, Signal, StateRoot, Status,
};
use testkit::bundle::{Bundle, BundleBuilder, Rootfs};
use testkit::gate::{self, Gate, Lacking};
use testkit::harness::{CaseResult, Ran};

/// Counts until a `stop` file appears in its working directory, then exits 3.
const COUNTER: &str =
    "i=0; while [ ! -e stop ]; do i=$((i+1)); echo $i > count.new; mv count.new count; sleep 0.1; done; exit 3";

/// One case: runc with its own root, an engine root, the bundles and ids it made.
struct Env {
    backend: Arc<CliBackend>,
    conmon: PathBuf,
    engine_root: tempfile::TempDir,
    _runtime_root: tempfile::TempDir,
    bundles: Vec<Bundle>,
    ids: Vec<ContainerId>,
}

impl Env {
    async fn new(runc: &Path, conmon: PathBuf) -> anyhow::Result<Self> {
        let runtime_root = tempfile::Builder::new().prefix("runtime-root-").tempdir()?;
        let config = RuntimeConfig::default().binary(runc).root(runtime_root.path());
        let backend = Arc::new(CliBackend::connect(Arc::new(Runc), config).await.context("connecting runc")?);
        let engine_root = tempfile::Builder::new().prefix("engine-root-").tempdir()?;
        Ok(Env { backend, conmon, engine_root, _runtime_root: runtime_root, bundles: Vec::new(), ids: Vec::new() })
    }

    fn engine(&self) -> anyhow::Result<Engine> {
        let root = StateRoot::open(self.engine_root.path().join("state"))?;
        Ok(Engine::new(self.backend.clone(), Arc::new(ConmonMonitor::new(&self.conmon)), root))
    }

    fn id(&mut self, name: &str) -> ContainerId {
        let id = ContainerId::new(format!("{name}-{}-{}", std::process::id(), self.ids.len())).unwrap();
        self.ids.push(id.clone());
        id
    }

    /// A counter's bundle; the index of it in `bundles`.
    fn counter_bundle(&mut self) -> anyhow::Result<usize> {
        self.bundles.push(BundleBuilder::new(["sh", "-c", COUNTER]).rootfs(Rootfs::Busybox).build()?);
        Ok(self.bundles.len() - 1)
    }

    fn exit_file(&self, id: &ContainerId) -> PathBuf {
        self.engine_root.path().join("state/exits").join(id.as_str())
    }

    fn conmon_pid(&self, id: &ContainerId) -> anyhow::Result<i32> {
        let path = self.engine_root.path().join("state/containers").join(id.as_str()).join("conmon.pid");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(text.trim().parse()?)
    }

    /// Nothing of the case is left: no process naming one of its ids (conmon, runc, CRIU), no
    /// zombie child of this process, no container in runc, nothing under the engine's state
    /// root, no node conmon made in a bundle.
    async fn check_nothing_left(&self) -> anyhow::Result<()> {
        for id in &self.ids {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let live = testkit::procs::live_with_argument(OsStr::new(id.as_str()));
                if live.is_empty() {
                    break;
                }
                ensure!(Instant::now() < deadline, "processes naming {id} are still there: {live:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let zombies = zombie_children();
        ensure!(zombies.is_empty(), "zombie children of the test process: {zombies:?}");
        let listed = self.backend.list().await?;
        ensure!(listed.is_empty(), "containers left in runc: {listed:?}");
        for dir in ["containers", "exits", "locks"] {
            let path = self.engine_root.path().join("state").join(dir);
            let left: Vec<_> = std::fs::read_dir(&path)?.flatten().map(|entry| entry.file_name()).collect();
            ensure!(left.is_empty(), "left in {}: {left:?}", path.display());
        }
        // Nothing in a bundle but what the test made: no node conmon made there, no CRIU log
        // (conmon names the bundle as CRIU's work path; the engine's own comes after it).
        for bundle in &self.bundles {
            let mut left: Vec<_> = std::fs::read_dir(bundle.path())?.flatten().map(|entry| entry.file_name()).collect();
            left.sort();
            ensure!(left == ["config.json", "rootfs"], "left in the bundle {}: {left:?}", bundle.path().display());
        }
        Ok(())
    }

    async fn clean_up(&self) {
        for id in &self.ids {
            let _ = self.backend.delete(id, DeleteMode::Force).await;
        }
    }
}

/// Children of this process that have exited and were not reaped.
fn zombie_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            let fields: Vec<&str> =
                stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
            fields.first() == Some(&"Z") && fields.get(1) == Some(&me.as_str())
        })
        .collect()
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// The count the process `pid` last wrote.
fn count_of(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/cwd/count")).ok()?.trim().parse().ok()
}

/// Waits until `pid` has counted past `least`.
async fn counted_past(pid: u32, least: u32) -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match count_of(pid) {
            Some(count) if count > least => return Ok(count),
            _ => ensure!(Instant::now() < deadline, "process {pid} did not count past {least}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first count a restored `pid` writes after `dumped`: a later one when memory survived, a
/// small one (from 1) when the process started over.
async fn next_count(pid: u32, dumped: u32) -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match count_of(pid) {
            Some(count) if count != dumped => return Ok(count),
            _ => ensure!(Instant::now() < deadline, "process {pid} wrote no count after {dumped}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The count a dumped counter wrote last, from its root filesystem.
fn count_in(rootfs: &Path) -> anyhow::Result<u32> {
    let text = std::fs::read_to_string(rootfs.join("count")).context("reading the dumped count")?;
    text.trim().parse().with_context(|| format!("a count: {text:?}"))
}

/// A wait that fails the case instead of hanging it.
async fn waited(engine: &Engine, id: &ContainerId) -> anyhow::Result<Exit> {
    let bound = Duration::from_secs(30);
    Ok(tokio::time::timeout(bound, engine.wait(id)).await.with_context(|| format!("no exit within {bound:?}"))??)
}

/// A counter created and started through conmon, counting; its pid.
async fn started_counter(engine: &Engine, id: &ContainerId, bundle: &Path) -> anyhow::Result<u32> {
    let created = engine.create(id, bundle, CreateOptions::default()).await.context("create")?;
    engine.start(id).await.context("start")?;
    counted_past(created.pid, 2).await?;
    Ok(created.pid)
}

async fn a_counter_goes_on_counting_under_a_new_conmon(env: &mut Env) -> anyhow::Result<()> {
    let engine = env.engine()?;
    let id = env.id("counter");
    let bundle = env.counter_bundle()?;
    let (bundle_path, rootfs) = (env.bundles[bundle].path().to_path_buf(), env.bundles[bundle].rootfs());
    started_counter(&engine, &id, &bundle_path).await?;
    let first_conmon = env.conmon_pid(&id)?;
    engine.checkpoint(&id, ContainerCheckpointOptions::default()).await.context("checkpoint")?;
    let dumped = count_in(&rootfs)?;
    let status = engine.status(&id).await?;
    ensure!(status.status == Status::Stopped && status.checkpointed, "stopped by the checkpoint: {status:?}");

    let restored = engine.restore(&id, &bundle_path, ContainerRestoreOptions::default()).await.context("restore")?;
    let conmon = env.conmon_pid(&id)?;
    ensure!(conmon != first_conmon && alive(conmon), "a new conmon ({conmon}) holds the restored container");
    let ppid = std::fs::read_to_string(format!("/proc/{}/stat", restored.pid))?
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
        .context("the restored init's parent")?;
    ensure!(ppid == conmon, "the restored init {} is conmon's child, not {ppid}'s", restored.pid);
    let next = next_count(restored.pid, dumped).await?;
    ensure!(next > dumped, "the count went on from {dumped} to {next}, not from 1");
    ensure!(engine.status(&id).await?.status == Status::Running, "restored and running");

    std::fs::write(format!("/proc/{}/cwd/stop", restored.pid), "")?;
    ensure!(waited(&engine, &id).await? == Exit::Exited(3), "the restored process's own exit");
    ensure!(std::fs::read_to_string(env.exit_file(&id))? == "3", "conmon's exit file");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

async fn an_exported_checkpoint_restores_under_a_new_id(env: &mut Env) -> anyhow::Result<()> {
    let engine = env.engine()?;
    let id = env.id("exported");
    let bundle = env.counter_bundle()?;
    let (bundle_path, rootfs) = (env.bundles[bundle].path().to_path_buf(), env.bundles[bundle].rootfs());
    started_counter(&engine, &id, &bundle_path).await?;
    let archives = tempfile::tempdir()?;
    let archive = archives.path().join("checkpoint.tar.zst");
    let export = Export { path: archive.clone(), compression: Compression::Zstd };
    // A restore flag reaches runc through conmon's --runtime-opt (CRIU restores the TCP state
    // it dumped; runc refuses an unknown flag).
    let opts = ContainerCheckpointOptions {
        export: Some(export),
        ignore_rootfs: true,
        tcp_established: true,
        ..Default::default()
    };
    engine.checkpoint(&id, opts).await.context("checkpoint with export")?;
    let dumped = count_in(&rootfs)?;
    // The checkpointed container goes: the archive is all that is left of it.
    engine.delete(&id, DeleteMode::Force).await.context("delete of the checkpointed container")?;

    let renamed = env.id("imported");
    let opts = ContainerRestoreOptions {
        import: Some(archive),
        ignore_rootfs: true,
        tcp_established: true,
        ..Default::default()
    };
    let restored = engine.restore(&renamed, &bundle_path, opts).await.context("restore from the archive")?;
    let next = next_count(restored.pid, dumped).await?;
    ensure!(next > dumped, "the count went on from {dumped} to {next}, not from 1");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", env.conmon_pid(&renamed)?))?;
    let words: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
    let asked = words.windows(2).any(|pair| pair == [&b"--runtime-opt"[..], &b"--tcp-established"[..]]);
    ensure!(asked, "conmon was not given --tcp-established for runc: {:?}", String::from_utf8_lossy(&cmdline));
    engine.kill(&renamed, Signal::KILL, KillScope::Init).await?;
    ensure!(waited(&engine, &renamed).await? == Exit::Signaled(Signal::KILL), "killed");
    ensure!(std::fs::read_to_string(env.exit_file(&renamed))? == "137", "conmon's exit file after a KILL");
    engine.delete(&renamed, DeleteMode::IfStopped).await?;
    Ok(())
}

/// A stand-in for conmon that answers `--version` as conmon 2.1.6 and otherwise only leaves
/// `<script>.ran` behind.
fn stand_in_conmon(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("conmon");
    let script = "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'conmon version 2.1.6'; exit 0; }\ntouch \"$0.ran\"\n";
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// What conmon cannot serve in a restore is refused before it runs: the runtime's attached
/// mode, a console socket, stdio (conmon holds them), and no image directory at all (conmon
/// would take an empty `--restore` for none and create the container afresh).
async fn restore_options_conmon_cannot_serve_are_refused_before_it_runs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let conmon = stand_in_conmon(dir.path())?;
    let version = runtime_core::RuntimeVersion::parse("runc version 1.1.5\ncommit: v1.1.5\nspec: 1.0.2-dev\n")?;
    let config = RuntimeConfig::default().binary("/bin/false").root(dir.path().join("runtime"));
    let backend = CliBackend::with_version(Arc::new(Runc), config, "/bin/false".into(), version)?;
    let bundle = BundleBuilder::new(["true"]).rootfs(Rootfs::Empty).build()?;
    let files = ContainerFiles { exit_file: dir.path().join("exits/c1"), dir: dir.path().join("containers/c1") };
    let image = || PathBuf::from("/checkpoint");
    let (stdio, _pipes) = ContainerStdio::pipes()?;
    let cases = [
        ("RestoreOptions::attached", RestoreOptions { image_path: image(), attached: true, ..Default::default() }),
        (
            "RestoreOptions::console_socket",
            RestoreOptions { image_path: image(), console_socket: Some("/console".into()), ..Default::default() },
        ),
        ("RestoreOptions::stdio", RestoreOptions { image_path: image(), stdio, ..Default::default() }),
        ("RestoreOptions::image_path", RestoreOptions::default()),
    ];
    for (option, options) in cases {
        let id = ContainerId::new("c1")?;
        let request = RestoreRequest { id, bundle: bundle.path().to_path_buf(), options, files: files.clone() };
        match ConmonMonitor::new(&conmon).restore(&backend, request).await {
            Err(Error::Unsupported { feature, .. } | Error::InvalidArgument { option: feature, .. }) => {
                ensure!(feature == option, "refused {feature}, expected {option}");
            }
            other => bail!("{option}: expected a refusal, got {other:?}"),
        }
    }
    ensure!(!conmon.with_extension("ran").exists(), "conmon was run");
    ensure!(!files.dir.exists(), "files were made for the container");
    Ok(())
}

type Case = fn(&mut Env) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + '_>>;

fn cases() -> Vec<(&'static str, Case)> {
    vec![
        ("a_counter_goes_on_counting_under_a_new_conmon", |env| {
            Box::pin(a_counter_goes_on_counting_under_a_new_conmon(env))
        }),
        ("an_exported_checkpoint_restores_under_a_new_id", |env| {
            Box::pin(an_exported_checkpoint_restores_under_a_new_id(env))
        }),
    ]
}

/// Runs `case` once runc and CRIU passed the gate too.
async fn run_case(conmon: PathBuf, case: Case) -> CaseResult {
    let runc = match gate::real_runtime("runc", &Runc.host_checks()) {
        Gate::Open(runc) => runc,
        Gate::Skip(reason) => return Ok(Ran::Skipped(reason)),
        Gate::Fail(reason) => bail!("{reason}"),
    };
    if let Some(problem) = gate::criu_problem() {
        return match gate::lacking(gate::CRIU, problem, &gate::required()) {
            Lacking::Skip(reason) => Ok(Ran::Skipped(reason)),
            Lacking::Fail(reason) => bail!("{reason}"),
        };
    }
    let mut env = Env::new(&runc.binary, conmon).await?;
    let outcome = case(&mut env).await;
    let leftovers = env.check_nothing_left().await;
    if outcome.is_err() || leftovers.is_err() {
        env.clean_up().await;
    }
    outcome?;
    leftovers.context("the case left something behind")?;
    Ok(Ran::Passed)
}

fn main() -> ExitCode {
    testkit::harness::main(|suite| {
        suite.case(
            "restore_options_conmon_cannot_serve_are_refused_before_it_runs",
            restore_options_conmon_cannot_serve_are_refused_before_it_runs,
        );
        for (name, case) in cases() {
            suite.gated(format!("conmon::runc::{name}"), "conmon", Vec::new(), move |conmon| {
                run_case(conmon.binary, case)
            });
        }
    })
}
