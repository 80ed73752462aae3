//! `ConmonMonitor` against a conmon that misbehaves on demand: testkit's fake conmon over the
//! fake runc, so no real runtime, conmon or root is needed. Each fault ends the create (or the
//! wait) with a typed error within the create timeout the case sets (short where conmon hangs,
//! so that the timeout is what ends it), and leaves nothing: no process naming the container, no
//! zombie child, no container in the runtime, nothing under the engine's state root, no node
//! conmon made in the bundle. An exec whose conmon is killed is `MonitorLost` within a second,
//! and its process, still running, is ended by a stop. A create, restore or background exec
//! dropped while its conmon says nothing is undone in the background: its container or process,
//! its conmon and its files go, and a restore's checkpoint stays restorable. Under the fake
//! youki, whose failure to seal its own copy its backend calls transient, a create or background
//! exec that conmon saw fail so is undone and run again (a bounded number of times), and any
//! other failure is not. A plain container and a terminal one run through the fake conmon show
//! the paths the faults leave, as does an exec with a terminal (its attach socket and control
//! fifo in its own directory, `test -t` in its log; an exec without one is neither attached nor
//! resized).
//!
//! The expected exit code is the shell's (`exit 7`); the runtime's refusal is in runc's words.

mod support;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use backend_crun::Crun;
use backend_runc::Runc;
use backend_youki::Youki;
use conmon_driver::ConmonMonitor;
use runtime_core::{
    CliBackend, ContainerCheckpointOptions, ContainerId, ContainerRestoreOptions, ContainerStdio, CreateOptions,
    DeleteMode, Engine, Error, ExecOptions, ExecStdio, Existence, Exit, KillScope, OciBackend, RuntimeFamily, Signal,
    StateRoot, process,
};
use testkit::bundle::{Bundle, BundleBuilder, Rootfs};
use testkit::fake::{FakeConmon, FakeRuntime, Flavour};
use testkit::procs::Tracked;

/// The create timeout of the cases where conmon hangs: short, so that the timeout ends them.
const SHORT_TIMEOUT: Duration = Duration::from_secs(3);

/// The create timeout of the other cases: they end on their own, and a loaded machine must not
/// turn them into timeouts.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);

/// One case: the fake runc, a fake conmon, an engine over both with its own state root.
struct Env {
    runtime: FakeRuntime,
    conmon: FakeConmon,
    backend: Arc<CliBackend>,
    state: tempfile::TempDir,
    bundle: Bundle,
    id: ContainerId,
}

impl Env {
    /// The container runs `script` in a shell, under the fake of `flavour`.
    async fn new(name: &str, script: &str, flavour: Flavour) -> anyhow::Result<Self> {
        let runtime = FakeRuntime::new(flavour)?;
        let family: Arc<dyn RuntimeFamily> = match flavour {
            Flavour::Runc => Arc::new(Runc),
            Flavour::Crun => Arc::new(Crun::default()),
            Flavour::Youki => Arc::new(Youki),
        };
        let backend = Arc::new(CliBackend::connect(family, runtime.config()).await?);
        Ok(Env {
            runtime,
            conmon: FakeConmon::new()?,
            backend,
            state: tempfile::Builder::new().prefix("engine-root-").tempdir()?,
            bundle: BundleBuilder::new(["sh", "-c", script]).rootfs(Rootfs::Empty).build()?,
            id: ContainerId::new(format!("{name}-{}", std::process::id()))?,
        })
    }

    fn engine_with(&self, conmon: &Path) -> anyhow::Result<Engine> {
        let root = StateRoot::open(self.state.path().join("state"))?;
        Ok(Engine::new(self.backend.clone(), Arc::new(ConmonMonitor::new(conmon)), root))
    }

    fn engine(&self) -> anyhow::Result<Engine> {
        self.engine_with(&self.conmon.binary())
    }

    fn options() -> CreateOptions {
        Self::options_with(CREATE_TIMEOUT)
    }

    fn options_with(timeout: Duration) -> CreateOptions {
        CreateOptions { timeout: Some(timeout), ..CreateOptions::default() }
    }

    /// The create with `timeout` fails; its error. A create that hangs past twice its timeout
    /// fails the case.
    async fn failed_create(&self, timeout: Duration) -> anyhow::Result<Error> {
        let bound = timeout * 2;
        let engine = self.engine()?;
        let create = engine.create(&self.id, self.bundle.path(), Self::options_with(timeout));
        match tokio::time::timeout(bound, create).await.with_context(|| format!("no end in {bound:?}"))? {
            Ok(created) => bail!("a create through a broken conmon succeeded: {created:?}"),
            Err(error) => Ok(error),
        }
    }

    fn container_dir(&self) -> PathBuf {
        self.state.path().join("state/containers").join(self.id.as_str())
    }

    /// Nothing of the case is left (see the module docs). A killed child is reaped by tokio in
    /// the background, so it may stay a zombie for a moment.
    async fn check_nothing_left(&self) -> anyhow::Result<()> {
        let ids = [self.id.clone()];
        let state = self.state.path().join("state");
        support::check_nothing_left(&self.backend, &state, &ids, [&self.bundle], Duration::from_secs(5)).await
    }
}

/// Runs `case` in a new environment, then checks that nothing is left whatever the case said.
async fn with_env(name: &str, script: &str, flavour: Flavour, case: Case) -> anyhow::Result<()> {
    let env = Env::new(name, script, flavour).await?;
    let outcome = case(&env).await;
    let leftovers = env.check_nothing_left().await;
    if leftovers.is_err() {
        let _ = env.backend.delete(&env.id, DeleteMode::Force).await;
    }
    outcome?;
    leftovers.context("the case left something behind")
}

async fn a_container_exits_7_through_the_fake_conmon(env: &Env) -> anyhow::Result<()> {
    let engine = env.engine()?;
    let created = engine.create(&env.id, env.bundle.path(), Env::options()).await?;
    let dir = env.container_dir();
    let pid_file = std::fs::read_to_string(dir.join("pidfile")).context("the container's pid file")?;
    ensure!(pid_file.trim() == created.pid.to_string(), "pid file {pid_file:?}, created {created:?}");
    let conmon: i32 = std::fs::read_to_string(dir.join("conmon.pid"))?.trim().parse()?;
    let cmdline = std::fs::read(format!("/proc/{conmon}/cmdline")).context("conmon's pid is a live process")?;
    ensure!(cmdline.split(|byte| *byte == 0).any(|arg| arg == env.id.as_str().as_bytes()), "not conmon");
    // libpod runs conmon in the container's directory; conmon writes files into its working
    // directory (2.1.6 drops an `oom` file there).
    let cwd = std::fs::read_link(format!("/proc/{conmon}/cwd"))?;
    ensure!(cwd == dir, "conmon runs in {}, not in the container's directory", cwd.display());
    engine.start(&env.id).await?;
    let exit = tokio::time::timeout(Duration::from_secs(30), engine.wait(&env.id)).await.context("no exit")??;
    ensure!(exit == Exit::Exited(7), "{exit:?}");
    let raw = std::fs::read_to_string(env.state.path().join("state/exits").join(env.id.as_str()))?;
    ensure!(raw == "7", "the exit file says {raw:?}");
    let log = std::fs::read_to_string(dir.join("ctr.log"))?;
    let records: Vec<Vec<&str>> = log.lines().map(|line| line.splitn(4, ' ').collect()).collect();
    ensure!(records.iter().any(|record| record[1..] == ["stdout", "F", "out"]), "{log:?}");
    ensure!(records.iter().any(|record| record[1..] == ["stderr", "F", "err"]), "{log:?}");
    engine.delete(&env.id, DeleteMode::IfStopped).await?;
    Ok(())
}

async fn a_terminal_container_writes_to_the_fake_conmons_terminal(env: &Env) -> anyhow::Result<()> {
    let bundle =
        BundleBuilder::new(["sh", "-c", "test -t 1 && echo is-a-tty; exit 4"]).terminal().rootfs(Rootfs::Empty);
    let bundle = bundle.build()?;
    let engine = env.engine()?;
    engine.run(&env.id, bundle.path(), Env::options()).await?;
    let exit = tokio::time::timeout(Duration::from_secs(30), engine.wait(&env.id)).await.context("no exit")??;
    ensure!(exit == Exit::Exited(4), "{exit:?}");
    let log = std::fs::read_to_string(env.container_dir().join("ctr.log"))?;
    ensure!(log.lines().any(|line| line.ends_with(" stdout F is-a-tty")), "stdout was not a terminal: {log:?}");
    engine.delete(&env.id, DeleteMode::IfStopped).await?;
    for node in ["attach", "ctl", "winsz"] {
        ensure!(bundle.path().join(node).symlink_metadata().is_err(), "{node} is left in the terminal's bundle");
    }
    Ok(())
}

async fn options_conmon_does_not_serve_are_refused_before_it_runs(env: &Env) -> anyhow::Result<()> {
    // A conmon that is not there: starting it would be `BinaryNotFound`.
    let engine = env.engine_with(Path::new("/nonexistent/conmon"))?;
    let (stdio, _pipes) = runtime_core::ContainerStdio::pipes()?;
    let refused = [
        ("console_socket", CreateOptions { console_socket: Some("/tmp/console.sock".into()), ..Env::options() }),
        ("stdio", CreateOptions { stdio, ..Env::options() }),
    ];
    for (option, options) in refused {
        let error = engine.create(&env.id, env.bundle.path(), options).await.err();
        ensure!(
            matches!(&error, Some(Error::Unsupported { feature, .. }) if feature.ends_with(option)),
            "{option}: {error:?}"
        );
    }
    Ok(())
}

async fn a_conmon_killed_by_a_signal_is_a_runtime_failure_with_that_signal(env: &Env) -> anyhow::Result<()> {
    env.conmon.inject("signal:9")?;
    match env.failed_create(CREATE_TIMEOUT).await? {
        Error::RuntimeFailed(failure) => {
            ensure!(failure.status == Exit::Signaled(Signal::KILL), "{failure:?}");
            // What it said before it died (its stderr) is kept.
            ensure!(failure.message.contains("signal 9"), "{failure:?}");
        }
        other => bail!("expected RuntimeFailed, got {other:?}"),
    }
    Ok(())
}

async fn a_conmon_that_never_answers_times_out_and_its_container_goes(env: &Env) -> anyhow::Result<()> {
    env.conmon.inject("never-answer")?;
    let error = env.failed_create(SHORT_TIMEOUT).await?;
    ensure!(matches!(error, Error::Timeout { after, .. } if after == SHORT_TIMEOUT), "{error:?}");
    Ok(())
}

async fn a_conmon_that_never_forks_times_out_and_is_killed(env: &Env) -> anyhow::Result<()> {
    env.conmon.inject("hang-before-fork")?;
    let error = env.failed_create(SHORT_TIMEOUT).await?;
    ensure!(matches!(error, Error::Timeout { after, .. } if after == SHORT_TIMEOUT), "{error:?}");
    Ok(())
}

async fn a_conmon_that_dies_before_answering_is_a_runtime_failure(env: &Env) -> anyhow::Result<()> {
    env.conmon.inject("die-before-sync")?;
    let error = env.failed_create(CREATE_TIMEOUT).await?;
    ensure!(matches!(&error, Error::RuntimeFailed(failure) if failure.status == Exit::Unknown), "{error:?}");
    Ok(())
}

async fn a_refusal_from_conmon_is_classified_by_the_backend(env: &Env) -> anyhow::Result<()> {
    env.conmon.inject("refuse:runc create failed: container with given ID already exists")?;
    let error = env.failed_create(CREATE_TIMEOUT).await?;
    ensure!(matches!(error, Error::AlreadyExists { evidence: Existence::Refused(_), .. }), "{error:?}");
    Ok(())
}

async fn the_runtimes_own_refusal_is_relayed_in_its_words(env: &Env) -> anyhow::Result<()> {
    env.runtime.inject("create", "fail:cannot mount the rootfs: no such device")?;
    match env.failed_create(CREATE_TIMEOUT).await? {
        Error::RuntimeFailed(failure) => {
            ensure!(failure.message.contains("cannot mount the rootfs: no such device"), "{failure:?}");
            ensure!(failure.argv.first().is_some_and(|conmon| conmon == env.conmon.binary().as_os_str()));
        }
        other => bail!("expected RuntimeFailed, got {other:?}"),
    }
    Ok(())
}

async fn garbage_on_the_sync_pipe_is_a_parse_error_and_its_container_goes(env: &Env) -> anyhow::Result<()> {
    env.conmon.inject("garbage")?;
    let error = env.failed_create(CREATE_TIMEOUT).await?;
    ensure!(matches!(error, Error::Parse { .. }), "{error:?}");
    Ok(())
}

async fn a_conmon_that_records_no_exit_leaves_the_wait_unsupervised(env: &Env) -> anyhow::Result<()> {
    env.conmon.inject("no-exit-file")?;
    let engine = env.engine()?;
    engine.create(&env.id, env.bundle.path(), Env::options()).await?;
    engine.start(&env.id).await?;
    let waited = tokio::time::timeout(Duration::from_secs(30), engine.wait(&env.id)).await.context("wait hangs")?;
    ensure!(matches!(waited, Err(Error::MonitorLost { .. })), "{waited:?}");
    engine.delete(&env.id, DeleteMode::Force).await?;
    Ok(())
}

/// How soon a wait answers once the conmon it waits on is gone (as for a container).
const LOST_WITHIN: Duration = Duration::from_secs(1);

async fn an_execs_lost_conmon_is_monitor_lost_and_a_stop_still_ends_it(env: &Env) -> anyhow::Result<()> {
    let engine = env.engine()?;
    engine.create(&env.id, env.bundle.path(), Env::options()).await?;
    engine.start(&env.id).await?;
    let background = ExecOptions { stdio: ExecStdio::Wired(ContainerStdio::Null), ..ExecOptions::default() };
    let session = engine.exec_detached(&env.id, &process(["sleep", "100"]), background).await?;
    let exec = Tracked::capture(session.pid);
    let exec_dir = env.container_dir().join("execs").join(&session.exec_id);
    let conmon: u32 = std::fs::read_to_string(exec_dir.join("conmon.pid"))?.trim().parse()?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(conmon.try_into()?), nix::sys::signal::Signal::SIGKILL)?;
    let killed = Instant::now();
    let lost = tokio::time::timeout(Duration::from_secs(30), engine.wait_exec(&session)).await.context("wait hangs")?;
    ensure!(killed.elapsed() < LOST_WITHIN, "the wait answered after {:?}", killed.elapsed());
    ensure!(matches!(lost, Err(Error::MonitorLost { pid, .. }) if pid == conmon), "conmon {conmon} was lost: {lost:?}");
    ensure!(exec.alive(), "the exec's process {} ended with its conmon", session.pid);
    ensure!(exec_dir.exists(), "the exec is kept for a stop");
    let stopped = tokio::time::timeout(Duration::from_secs(30), engine.exec_stop(&session, Duration::from_secs(5)))
        .await
        .context("stop hangs")?;
    ensure!(matches!(stopped, Err(Error::MonitorLost { pid, .. }) if pid == conmon), "{stopped:?}");
    ensure!(!exec.alive(), "the stop left the exec's process {} running", session.pid);
    ensure!(!exec_dir.exists(), "a stopped exec is forgotten");
    engine.delete(&env.id, DeleteMode::Force).await?;
    Ok(())
}

async fn an_exec_with_a_terminal_runs_through_the_fake_conmon(env: &Env) -> anyhow::Result<()> {
    let engine = env.engine()?;
    engine.create(&env.id, env.bundle.path(), Env::options()).await?;
    engine.start(&env.id).await?;
    let wired = || ExecOptions { stdio: ExecStdio::Wired(ContainerStdio::Null), ..ExecOptions::default() };
    let script = process(["sh", "-c", "test -t 0 && test -t 1 && echo is-a-tty; exit 3"]);
    let session = engine.exec_detached(&env.id, &script, ExecOptions { tty: true, ..wired() }).await?;
    let exec_dir = env.container_dir().join("execs").join(&session.exec_id);
    // conmon made the exec's attach socket and control fifo in the exec's own directory.
    ensure!(std::fs::symlink_metadata(exec_dir.join("attach"))?.file_type().is_socket(), "no attach socket");
    ensure!(std::fs::symlink_metadata(exec_dir.join("ctl"))?.file_type().is_fifo(), "no ctl fifo");
    // Read before the wait, which forgets the exec and its log.
    let exit_file = exec_dir.join("exits").join(env.id.as_str());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !exit_file.exists() {
        ensure!(Instant::now() < deadline, "no exit file {}", exit_file.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = std::fs::read_to_string(exec_dir.join("exec.log"))?;
    ensure!(log.lines().any(|line| line.ends_with(" stdout F is-a-tty")), "stdin and stdout were no terminal: {log:?}");
    let exit = tokio::time::timeout(Duration::from_secs(30), engine.wait_exec(&session)).await.context("no end")??;
    ensure!(exit == Exit::Exited(3), "{exit:?}");

    // An exec without a terminal has nothing to attach to or resize.
    let session = engine.exec_detached(&env.id, &process(["sleep", "100"]), wired()).await?;
    let size = runtime_core::TerminalSize { rows: 24, cols: 80 };
    let attached = engine.attach_exec(&session).await.map(drop);
    for (operation, refused) in [("attach_exec", attached), ("resize_exec", engine.resize_exec(&session, size).await)] {
        ensure!(
            matches!(&refused, Err(Error::Unsupported { feature, .. }) if feature == operation),
            "{operation} of an exec without a terminal: {refused:?}"
        );
    }
    engine.exec_stop(&session, Duration::from_secs(5)).await?;
    engine.delete(&env.id, DeleteMode::Force).await?;
    Ok(())
}

/// How long what a dropped call started may take to be ended, in the background.
const UNDONE_WITHIN: Duration = Duration::from_secs(10);

/// The pid in `file` once something wrote one there (bounded).
async fn pid_written(file: &Path) -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pid) = std::fs::read_to_string(file).ok().and_then(|text| text.trim().parse().ok()) {
            return Ok(pid);
        }
        ensure!(Instant::now() < deadline, "nothing wrote a pid to {}", file.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether `done` holds within [`UNDONE_WITHIN`].
async fn undone_within(done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + UNDONE_WITHIN;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

async fn a_dropped_background_exec_undoes_itself(env: &Env) -> anyhow::Result<()> {
    let engine = env.engine()?;
    engine.create(&env.id, env.bundle.path(), Env::options()).await?;
    engine.start(&env.id).await?;
    env.conmon.inject("never-answer")?;
    let execs = env.container_dir().join("execs");
    let background = ExecOptions { stdio: ExecStdio::Wired(ContainerStdio::Null), ..ExecOptions::default() };
    let sleeper = process(["sleep", "100"]);
    let exec = engine.exec_detached(&env.id, &sleeper, background);
    // Given up once the runtime started the process and conmon holds it without a word.
    let (process, conmon) = tokio::select! {
        started = exec => bail!("an exec through a silent conmon came back: {started:?}"),
        pids = async {
            let dir = loop {
                match std::fs::read_dir(&execs).ok().and_then(|mut dir| dir.next()) {
                    Some(entry) => break entry?.path(),
                    None => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            };
            anyhow::Ok((pid_written(&dir.join("pidfile")).await?, pid_written(&dir.join("conmon.pid")).await?))
        } => pids?,
    };
    let (process, conmon) = (Tracked::capture(process), Tracked::capture(conmon));
    ensure!(process.alive() && conmon.alive(), "the exec runs under its conmon before the drop");
    ensure!(undone_within(|| !process.alive()).await, "the dropped exec's process {} runs on", process.pid);
    ensure!(undone_within(|| !conmon.alive()).await, "the dropped exec's conmon {} runs on", conmon.pid);
    let left = || std::fs::read_dir(&execs).map(|dir| dir.count()).unwrap_or(0);
    ensure!(undone_within(|| left() == 0).await, "the dropped exec's files are left in {}", execs.display());
    engine.delete(&env.id, DeleteMode::Force).await?;
    Ok(())
}

async fn a_dropped_create_undoes_itself(env: &Env) -> anyhow::Result<()> {
    env.conmon.inject("never-answer")?;
    let engine = env.engine()?;
    let dir = env.container_dir();
    let create = engine.create(&env.id, env.bundle.path(), Env::options());
    // Given up once the runtime made the container and conmon holds it without a word.
    let (init, conmon) = tokio::select! {
        created = create => bail!("a create through a silent conmon came back: {created:?}"),
        pids = async {
            anyhow::Ok((pid_written(&dir.join("pidfile")).await?, pid_written(&dir.join("conmon.pid")).await?))
        } => pids?,
    };
    let (init, conmon) = (Tracked::capture(init), Tracked::capture(conmon));
    ensure!(init.alive() && conmon.alive(), "the container is held by its conmon before the drop");
    ensure!(undone_within(|| !conmon.alive()).await, "the dropped create's conmon {} runs on", conmon.pid);
    ensure!(undone_within(|| !init.alive()).await, "the dropped create's container {} runs on", init.pid);
    // What is left is the engine's own record of the container, which it forgets on delete.
    let conmons = || -> Vec<std::ffi::OsString> {
        let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
        entries.flatten().map(|entry| entry.file_name()).filter(|name| name != "record.json").collect()
    };
    ensure!(undone_within(|| conmons().is_empty()).await, "conmon's files are left: {:?}", conmons());
    let listed = env.backend.list().await?;
    ensure!(listed.is_empty(), "the runtime still has {listed:?}");
    // runc's `delete --force` of a container it does not have succeeds.
    match engine.delete(&env.id, DeleteMode::Force).await {
        Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

async fn a_dropped_restore_undoes_itself_and_keeps_its_checkpoint(env: &Env) -> anyhow::Result<()> {
    let engine = env.engine()?;
    let dir = env.container_dir();
    engine.run(&env.id, env.bundle.path(), Env::options()).await?;
    engine.checkpoint(&env.id, ContainerCheckpointOptions::default()).await.context("checkpoint")?;
    env.conmon.inject("never-answer")?;
    let restore = engine.restore(&env.id, env.bundle.path(), ContainerRestoreOptions::default());
    // Given up once the runtime restored the container and conmon holds it without a word.
    let (init, conmon) = tokio::select! {
        restored = restore => bail!("a restore through a silent conmon came back: {restored:?}"),
        pids = async {
            anyhow::Ok((pid_written(&dir.join("pidfile")).await?, pid_written(&dir.join("conmon.pid")).await?))
        } => pids?,
    };
    let (init, conmon) = (Tracked::capture(init), Tracked::capture(conmon));
    ensure!(init.alive() && conmon.alive(), "the restored container is held by its conmon before the drop");
    ensure!(undone_within(|| !conmon.alive()).await, "the dropped restore's conmon {} runs on", conmon.pid);
    ensure!(undone_within(|| !init.alive()).await, "the dropped restore's container {} runs on", init.pid);
    engine.settle().await;
    let listed = env.backend.list().await?;
    ensure!(listed.is_empty(), "the runtime still has {listed:?}");
    // The checkpoint it was restored from is still there, and restores.
    env.conmon.heal()?;
    let restored = engine.restore(&env.id, env.bundle.path(), ContainerRestoreOptions::default()).await;
    let restored = restored.context("restoring again from the kept checkpoint")?;
    ensure!(Tracked::capture(restored.pid).alive(), "the second restore's init runs");
    engine.kill(&env.id, Signal::KILL, KillScope::Init).await?;
    ensure!(engine.wait(&env.id).await? == Exit::Signaled(Signal::KILL), "killed, it is reported killed");
    engine.delete(&env.id, DeleteMode::IfStopped).await?;
    Ok(())
}

/// youki 0.7.0's words when it cannot seal its own copy (`src/main.rs`:
/// `pentacle::ensure_sealed().context("failed to seal /proc/self/exe")`), then the cause.
const SEAL_FAILURE: &str = "failed to seal /proc/self/exe: Device or resource busy (os error 16)";

/// A create whose runtime fails its first `failures` runs of `create` with `message`: how it
/// ended, and, when it succeeded, the container run to its end (`exit 0`) and deleted.
async fn create_failing_first(env: &Env, failures: u32, message: &str) -> anyhow::Result<runtime_core::Result<()>> {
    env.runtime.inject("create", &format!("fail-first:{failures}:{message}"))?;
    let engine = env.engine()?;
    let create = engine.create(&env.id, env.bundle.path(), Env::options());
    if let Err(err) = tokio::time::timeout(CREATE_TIMEOUT * 2, create).await.context("the create hangs")? {
        return Ok(Err(err));
    }
    engine.start(&env.id).await?;
    let exit = tokio::time::timeout(Duration::from_secs(30), engine.wait(&env.id)).await.context("no exit")??;
    ensure!(exit == Exit::Exited(0), "the container runs `exit 0`: {exit:?}");
    engine.delete(&env.id, DeleteMode::IfStopped).await?;
    Ok(Ok(()))
}

async fn a_transient_failure_relayed_by_conmon_is_undone_and_run_again(env: &Env) -> anyhow::Result<()> {
    create_failing_first(env, 1, SEAL_FAILURE).await?.context("the second create")
}

async fn another_failure_relayed_by_conmon_is_not_run_again(env: &Env) -> anyhow::Result<()> {
    // The second run would go through: a create retried would succeed.
    match create_failing_first(env, 1, "cannot mount the rootfs: no such device").await? {
        Err(Error::RuntimeFailed(failure)) if failure.message.contains("cannot mount the rootfs") => Ok(()),
        other => bail!("expected the first run's failure, got {other:?}"),
    }
}

async fn a_transient_failure_that_persists_is_run_again_a_bounded_number_of_times(env: &Env) -> anyhow::Result<()> {
    match create_failing_first(env, 1000, SEAL_FAILURE).await? {
        Err(Error::RuntimeFailed(failure)) if failure.message.contains(SEAL_FAILURE) => Ok(()),
        other => bail!("expected the runtime's transient failure in the end, got {other:?}"),
    }
}

async fn a_background_execs_transient_failure_is_undone_and_run_again(env: &Env) -> anyhow::Result<()> {
    let engine = env.engine()?;
    engine.create(&env.id, env.bundle.path(), Env::options()).await?;
    engine.start(&env.id).await?;
    env.runtime.inject("exec", &format!("fail-first:1:{SEAL_FAILURE}"))?;
    let background = ExecOptions { stdio: ExecStdio::Wired(ContainerStdio::Null), ..ExecOptions::default() };
    let session = engine.exec_detached(&env.id, &process(["sh", "-c", "exit 4"]), background).await?;
    let exit = tokio::time::timeout(Duration::from_secs(30), engine.wait_exec(&session)).await.context("no exit")??;
    ensure!(exit == Exit::Exited(4), "{exit:?}");
    let execs = env.container_dir().join("execs");
    let left: Vec<_> = std::fs::read_dir(&execs)?.flatten().map(|entry| entry.file_name()).collect();
    ensure!(left.is_empty(), "the failed attempt left {left:?} in {}", execs.display());
    engine.delete(&env.id, DeleteMode::Force).await?;
    Ok(())
}

type Case = for<'a> fn(&'a Env) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>;

fn main() -> ExitCode {
    // Each case: its name, the container's id prefix, the container's shell script, the case.
    let cases: [(&str, &str, &str, Case); 16] = [
        ("a_container_exits_7_through_the_fake_conmon", "exit7", "echo out; echo err >&2; exit 7", |env| {
            Box::pin(a_container_exits_7_through_the_fake_conmon(env))
        }),
        ("a_terminal_container_writes_to_the_fake_conmons_terminal", "tty", "exit 0", |env| {
            Box::pin(a_terminal_container_writes_to_the_fake_conmons_terminal(env))
        }),
        ("options_conmon_does_not_serve_are_refused_before_it_runs", "unserved", "exit 0", |env| {
            Box::pin(options_conmon_does_not_serve_are_refused_before_it_runs(env))
        }),
        ("a_conmon_killed_by_a_signal_is_a_runtime_failure_with_that_signal", "signal", "exit 0", |env| {
            Box::pin(a_conmon_killed_by_a_signal_is_a_runtime_failure_with_that_signal(env))
        }),
        ("a_conmon_that_never_answers_times_out_and_its_container_goes", "silent", "exit 0", |env| {
            Box::pin(a_conmon_that_never_answers_times_out_and_its_container_goes(env))
        }),
        ("a_conmon_that_never_forks_times_out_and_is_killed", "unforked", "exit 0", |env| {
            Box::pin(a_conmon_that_never_forks_times_out_and_is_killed(env))
        }),
        ("a_conmon_that_dies_before_answering_is_a_runtime_failure", "dies", "exit 0", |env| {
            Box::pin(a_conmon_that_dies_before_answering_is_a_runtime_failure(env))
        }),
        ("a_refusal_from_conmon_is_classified_by_the_backend", "refused", "exit 0", |env| {
            Box::pin(a_refusal_from_conmon_is_classified_by_the_backend(env))
        }),
        ("the_runtimes_own_refusal_is_relayed_in_its_words", "relayed", "exit 0", |env| {
            Box::pin(the_runtimes_own_refusal_is_relayed_in_its_words(env))
        }),
        ("garbage_on_the_sync_pipe_is_a_parse_error_and_its_container_goes", "garbage", "exit 0", |env| {
            Box::pin(garbage_on_the_sync_pipe_is_a_parse_error_and_its_container_goes(env))
        }),
        ("a_conmon_that_records_no_exit_leaves_the_wait_unsupervised", "noexit", "exit 3", |env| {
            Box::pin(a_conmon_that_records_no_exit_leaves_the_wait_unsupervised(env))
        }),
        ("an_execs_lost_conmon_is_monitor_lost_and_a_stop_still_ends_it", "lostexec", "sleep 100", |env| {
            Box::pin(an_execs_lost_conmon_is_monitor_lost_and_a_stop_still_ends_it(env))
        }),
        ("a_dropped_background_exec_undoes_itself", "dropexec", "sleep 100", |env| {
            Box::pin(a_dropped_background_exec_undoes_itself(env))
        }),
        ("a_dropped_create_undoes_itself", "dropcreate", "sleep 100", |env| {
            Box::pin(a_dropped_create_undoes_itself(env))
        }),
        ("a_dropped_restore_undoes_itself_and_keeps_its_checkpoint", "droprestore", "sleep 100", |env| {
            Box::pin(a_dropped_restore_undoes_itself_and_keeps_its_checkpoint(env))
        }),
        ("an_exec_with_a_terminal_runs_through_the_fake_conmon", "ttyexec", "sleep 100", |env| {
            Box::pin(an_exec_with_a_terminal_runs_through_the_fake_conmon(env))
        }),
    ];
    // The same, under the fake youki, whose backend calls its failure to seal itself transient.
    let youki_cases: [(&str, &str, &str, Case); 4] = [
        ("a_transient_failure_relayed_by_conmon_is_undone_and_run_again", "sealed", "exit 0", |env| {
            Box::pin(a_transient_failure_relayed_by_conmon_is_undone_and_run_again(env))
        }),
        ("another_failure_relayed_by_conmon_is_not_run_again", "permanent", "exit 0", |env| {
            Box::pin(another_failure_relayed_by_conmon_is_not_run_again(env))
        }),
        ("a_transient_failure_that_persists_is_run_again_a_bounded_number_of_times", "persists", "exit 0", |env| {
            Box::pin(a_transient_failure_that_persists_is_run_again_a_bounded_number_of_times(env))
        }),
        ("a_background_execs_transient_failure_is_undone_and_run_again", "execsealed", "sleep 100", |env| {
            Box::pin(a_background_execs_transient_failure_is_undone_and_run_again(env))
        }),
    ];
    testkit::harness::main(|suite| {
        for (name, prefix, script, case) in cases {
            suite.case(format!("fake_conmon::{name}"), move || async move {
                with_env(prefix, script, Flavour::Runc, case).await
            });
        }
        for (name, prefix, script, case) in youki_cases {
            suite.case(format!("fake_conmon::youki::{name}"), move || async move {
                with_env(prefix, script, Flavour::Youki, case).await
            });
        }
    })
}
