//! Restore through conmon, on real conmon, runc and CRIU (each through the gate: `conmon`,
//! `runc`, `criu`): a checkpointed counter goes on counting under a new conmon (whose exit
//! command runs once the restored counter's exit is recorded), a checkpoint
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

mod support;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use backend_runc::Runc;
use conmon_driver::ConmonMonitor;
use runtime_core::checkpoint::Compression;
use runtime_core::{
    CliBackend, ContainerCheckpointOptions, ContainerFiles, ContainerId, ContainerRestoreOptions, ContainerStdio,
    CreateOptions, DeleteMode, Engine, Error, Exit, ExitCommand, Export, KillScope, Monitor, OciBackend,
    RestoreOptions, RestoreRequest, RuntimeConfig, Signal, StateRoot, Status,
};
use testkit::bundle::{Bundle, BundleBuilder, Rootfs};
use testkit::counter::{COUNTER, count_in, counted_past, next_count};
use testkit::gate::{self, Lacking, RealRuntime};
use testkit::harness::{CaseResult, Ran};

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

    /// Nothing of the case is left (see the support module).
    async fn check_nothing_left(&self) -> anyhow::Result<()> {
        let state = self.engine_root.path().join("state");
        support::check_nothing_left(&self.backend, &state, &self.ids, &self.bundles, Duration::ZERO).await
    }

    async fn clean_up(&self) {
        for id in &self.ids {
            let _ = self.backend.delete(id, DeleteMode::Force).await;
        }
    }
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
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

    // The restored container's exit command copies its exit file: it runs after the exit is
    // recorded, as after a created container's.
    let copied = env.engine_root.path().join("exit-command-copy");
    let copy = format!("cp {} {}", env.exit_file(&id).display(), copied.display());
    let exit_command = ExitCommand { path: "/bin/sh".into(), args: vec!["-c".into(), copy.into()], delay_secs: 0 };
    let options = ContainerRestoreOptions { exit_command: Some(exit_command), ..ContainerRestoreOptions::default() };
    let restored = engine.restore(&id, &bundle_path, options).await.context("restore")?;
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
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !copied.exists() {
        ensure!(std::time::Instant::now() < deadline, "the restore's exit command did not run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ensure!(std::fs::read_to_string(&copied)? == "3", "the exit command ran after the exit was recorded");
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

/// What conmon cannot serve in a restore is refused before it runs: the runtime's attached
/// mode, a console socket, stdio (conmon holds them), and no image directory at all (conmon
/// would take an empty `--restore` for none and create the container afresh).
async fn restore_options_conmon_cannot_serve_are_refused_before_it_runs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let conmon = testkit::fake::stand_in_conmon(dir.path(), "")?;
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

/// Runs `case` once CRIU passed the gate too.
async fn run_case(conmon: PathBuf, runc: RealRuntime, case: Case) -> CaseResult {
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
            suite.gated_under(format!("conmon::runc::{name}"), "conmon", Arc::new(Runc), move |conmon, runc| {
                run_case(conmon.binary, runc, case)
            });
        }
    })
}
