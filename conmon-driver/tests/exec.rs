//! Background execs through `ConmonMonitor`, on real conmon and each real runtime, through the
//! gate (`conmon`, then the runtime's own): the exit code of an exec as the shell gives it, a
//! stop that ends every process the exec started, conmon's `-T` as a typed timeout that leaves
//! only the container's init, and an exec started by another OS process (a copy of this binary)
//! waited for by a new engine after that process exited (also once its `-T` expired unwatched: still
//! a typed timeout), and a conmon killed under its exec: `MonitorLost` within a second, the
//! exec's process still running, and a stop that still ends it. An exec with a terminal: its
//! output in its log as stdout, a client attached to it that reads it live and writes its input,
//! a resize that `stty size` inside it reports, its exit code, and the same terminal attached from
//! a new engine after the process that started it exited. After each case nothing is left: no
//! process naming the container (conmon, the runtime, the container), no zombie child, no
//! container, nothing under the engine's state root. The answers real conmon does not give on
//! demand (no pid, garbage, a refusal) are played by a shell stand-in, without the gate.
//!
//! Expected values come from the shell (`exit 5`, `test -t`, what it echoes), busybox's `stty
//! size`, POSIX (a SIGTERM'd shell) and the runtime's
//! own `ps` of the container, read with the host's `/proc` (a zombie counts as ended: the
//! container's init, a `sleep`, never reaps the orphans it adopts).

#[path = "support/received.rs"]
mod received;
mod support;

use std::ffi::OsStr;
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
    CliBackend, ContainerId, ContainerStdio, CreateOptions, DeleteMode, Engine, Error, ExecOptions, ExecSession,
    ExecStdio, Exit, OciBackend, RuntimeConfig, RuntimeFamily, Signal, StateRoot, TerminalSize, process,
};
use testkit::bundle::{Bundle, BundleBuilder, Rootfs};
use testkit::gate::RealRuntime;
use testkit::harness::{CaseResult, Ran};

use received::Received;

/// One case against conmon and a runtime, with one running container (`sleep 1000`).
struct Env {
    backend: Arc<CliBackend>,
    family: String,
    runtime: PathBuf,
    conmon: PathBuf,
    runtime_root: tempfile::TempDir,
    engine_root: tempfile::TempDir,
    bundle: Bundle,
    id: ContainerId,
    init: u32,
}

impl Env {
    async fn new(family: Arc<dyn RuntimeFamily>, runtime: RealRuntime, conmon: PathBuf) -> anyhow::Result<Self> {
        let runtime_root = tempfile::Builder::new().prefix("runtime-root-").tempdir()?;
        let name = family.name().to_owned();
        let backend = Arc::new(connect(family, &runtime.binary, runtime_root.path()).await?);
        let engine_root = tempfile::Builder::new().prefix("engine-root-").tempdir()?;
        let bundle = BundleBuilder::new(["sleep", "1000"]).rootfs(Rootfs::Busybox).build()?;
        let id = ContainerId::new(format!("exec-{}-{name}", std::process::id()))?;
        let mut env = Env {
            backend,
            family: name,
            runtime: runtime.binary,
            conmon,
            runtime_root,
            engine_root,
            bundle,
            id,
            init: 0,
        };
        let engine = env.engine()?;
        let created = engine.create(&env.id, env.bundle.path(), CreateOptions::default()).await?;
        if let Err(err) = engine.start(&env.id).await {
            let _ = engine.delete(&env.id, DeleteMode::Force).await;
            return Err(err.into());
        }
        env.init = created.pid;
        Ok(env)
    }

    fn state_root(&self) -> PathBuf {
        self.engine_root.path().join("state")
    }

    /// A new engine (a restarted program would make one) with a new conmon monitor.
    fn engine(&self) -> anyhow::Result<Engine> {
        let monitor = Arc::new(ConmonMonitor::new(&self.conmon));
        Ok(Engine::new(self.backend.clone(), monitor, StateRoot::open(self.state_root())?))
    }

    /// The container's processes that have not ended, as the runtime lists them.
    async fn live_processes(&self) -> anyhow::Result<Vec<u32>> {
        let listed = self.backend.ps(&self.id).await?;
        Ok(listed.into_iter().filter(|pid| alive(*pid)).collect())
    }

    /// Waits (bounded) until the container runs at least `count` live processes.
    async fn until_running(&self, count: usize) -> anyhow::Result<Vec<u32>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let live = self.live_processes().await?;
            if live.len() >= count {
                return Ok(live);
            }
            ensure!(Instant::now() < deadline, "the container runs {live:?}, not {count} processes");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The exec directories conmon and the monitor keep for the container.
    fn exec_dirs(&self) -> Vec<PathBuf> {
        let execs = self.state_root().join("containers").join(self.id.as_str()).join("execs");
        std::fs::read_dir(execs).map(|dir| dir.flatten().map(|entry| entry.path()).collect()).unwrap_or_default()
    }

    /// Deletes the container, then checks that nothing is left (see the support module).
    async fn delete_and_check_nothing_left(&self) -> anyhow::Result<()> {
        self.engine()?.delete(&self.id, DeleteMode::Force).await?;
        let ids = [self.id.clone()];
        support::check_nothing_left(&self.backend, &self.state_root(), &ids, [&self.bundle], Duration::ZERO).await
    }
}

/// The runtime `family` at `binary`, its state under `root`.
async fn connect(family: Arc<dyn RuntimeFamily>, binary: &Path, root: &Path) -> anyhow::Result<CliBackend> {
    let config = RuntimeConfig::default().binary(binary).root(root);
    CliBackend::connect(family, config).await.context("connecting the runtime")
}

/// Options of a background exec whose output goes to conmon's log.
fn background(timeout: Option<Duration>) -> ExecOptions {
    ExecOptions { stdio: ExecStdio::Wired(ContainerStdio::Null), timeout, ..ExecOptions::default() }
}

/// A background exec of `args`, through conmon (which the monitor runs again while youki 0.7
/// fails to seal its own copy).
async fn exec_detached(
    engine: &Engine,
    id: &ContainerId,
    args: &[&str],
    timeout: Option<Duration>,
) -> anyhow::Result<ExecSession> {
    Ok(engine.exec_detached(id, &process(args.iter().copied()), background(timeout)).await?)
}

/// A background exec of `args` with a terminal, through conmon.
async fn exec_with_terminal(engine: &Engine, id: &ContainerId, args: &[&str]) -> anyhow::Result<ExecSession> {
    let options = ExecOptions { tty: true, ..background(None) };
    Ok(engine.exec_detached(id, &process(args.iter().copied()), options).await?)
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// A wait that fails the case instead of hanging it.
async fn bounded<T>(wait: impl Future<Output = runtime_core::Result<T>>) -> anyhow::Result<runtime_core::Result<T>> {
    let bound = Duration::from_secs(30);
    tokio::time::timeout(bound, wait).await.with_context(|| format!("nothing within {bound:?}"))
}

async fn a_background_exec_gives_its_exit_code(env: &Env) -> anyhow::Result<()> {
    let engine = env.engine()?;
    let session = exec_detached(&engine, &env.id, &["sh", "-c", "exit 5"], None).await?;
    assert_eq!(bounded(engine.wait_exec(&session)).await??, Exit::Exited(5));
    ensure!(env.exec_dirs().is_empty(), "a waited exec is forgotten: {:?}", env.exec_dirs());
    let again = bounded(engine.wait_exec(&session)).await?;
    ensure!(matches!(again, Err(Error::NotSupervised { .. })), "a second wait: {again:?}");
    Ok(())
}

async fn exec_stop_leaves_only_the_init(env: &Env) -> anyhow::Result<()> {
    let engine = env.engine()?;
    let session = exec_detached(&engine, &env.id, &["sh", "-c", "sleep 100 & sleep 100"], None).await?;
    // The init, the exec's process (busybox's shell execs its last command in place) and its job.
    let running = env.until_running(3).await?;
    ensure!(running.contains(&session.pid), "the exec's pid {} is not the container's: {running:?}", session.pid);
    let exit = bounded(engine.exec_stop(&session, Duration::from_secs(5))).await??;
    assert_eq!(exit, Exit::Signaled(Signal::TERM), "the exec's process ends by the SIGTERM");
    assert_eq!(env.live_processes().await?, vec![env.init], "only the init is left");
    ensure!(env.exec_dirs().is_empty(), "a stopped exec is forgotten: {:?}", env.exec_dirs());
    Ok(())
}

async fn a_timeout_is_typed_and_leaves_only_the_init(env: &Env) -> anyhow::Result<()> {
    let engine = env.engine()?;
    let script = ["sh", "-c", "sleep 100 & sleep 100"];
    let session = exec_detached(&engine, &env.id, &script, Some(Duration::from_secs(1))).await?;
    match bounded(engine.wait_exec(&session)).await? {
        Err(Error::Timeout { argv, after, .. }) => {
            ensure!(after == Duration::from_secs(1), "{after:?}");
            ensure!(argv == script.map(std::ffi::OsString::from), "the timeout names the exec: {argv:?}");
        }
        other => bail!("expected a timeout, got {other:?}"),
    }
    assert_eq!(env.live_processes().await?, vec![env.init], "only the init is left");
    ensure!(env.exec_dirs().is_empty(), "a timed-out exec is forgotten: {:?}", env.exec_dirs());
    Ok(())
}

/// Set (to the JSON of what to do) for a copy of this test binary that plays an embedding
/// program: it starts a background exec through conmon, prints its session, and exits.
const EMBEDDER: &str = "CONMON_DRIVER_TEST_EXEC_EMBEDDER";

fn embedder(job: &str) -> anyhow::Result<()> {
    let job: serde_json::Value = serde_json::from_str(job)?;
    let text = |key: &str| job[key].as_str().map(str::to_owned).with_context(|| format!("no {key}"));
    let name = text("family")?;
    let family = families().into_iter().find(|family| family.name() == name).context("an unknown runtime family")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let backend = connect(family, text("runtime")?.as_ref(), text("runtime_root")?.as_ref()).await?;
        let monitor = Arc::new(ConmonMonitor::new(text("conmon")?));
        let engine = Engine::new(Arc::new(backend), monitor, StateRoot::open(text("state_root")?)?);
        let id = ContainerId::new(text("id")?)?;
        let args: Vec<String> = serde_json::from_value(job["args"].clone())?;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let timeout = job["timeout_secs"].as_u64().map(Duration::from_secs);
        let session = match job["tty"].as_bool() {
            Some(true) => exec_with_terminal(&engine, &id, &args).await?,
            _ => exec_detached(&engine, &id, &args, timeout).await?,
        };
        println!("{}", serde_json::json!({ "pid": session.pid, "exec_id": session.exec_id }));
        anyhow::Ok(())
    })
}

/// Runs a copy of this binary that starts `args` as a background exec (with conmon's `-T` of
/// `timeout_secs`, or a terminal when `tty`) and exits; returns the session it printed.
fn exec_in_another_process(
    env: &Env,
    args: &[&str],
    timeout_secs: Option<u64>,
    tty: bool,
) -> anyhow::Result<ExecSession> {
    let job = serde_json::json!({
        "family": env.family,
        "runtime": env.runtime,
        "runtime_root": env.runtime_root.path(),
        "conmon": env.conmon,
        "state_root": env.state_root(),
        "id": env.id.as_str(),
        "args": args,
        "timeout_secs": timeout_secs,
        "tty": tty,
    });
    let embedder = std::process::Command::new(std::env::current_exe()?).env(EMBEDDER, job.to_string()).output()?;
    ensure!(embedder.status.success(), "the embedding program failed: {}", String::from_utf8_lossy(&embedder.stderr));
    let said: serde_json::Value = serde_json::from_slice(&embedder.stdout).context("the session it printed")?;
    Ok(ExecSession {
        id: env.id.clone(),
        pid: said["pid"].as_u64().context("no pid")?.try_into()?,
        exec_id: said["exec_id"].as_str().context("no exec id")?.to_owned(),
    })
}

/// A new engine, as a restarted program makes one over the same state root.
async fn reconnected(env: &Env) -> anyhow::Result<Engine> {
    let monitor = Arc::new(ConmonMonitor::new(&env.conmon));
    Ok(Engine::reconnect(env.backend.clone(), monitor, StateRoot::open(env.state_root())?).await?)
}

async fn an_exec_outlives_the_process_that_started_it(env: &Env) -> anyhow::Result<()> {
    let session = exec_in_another_process(env, &["sh", "-c", "sleep 2; exit 6"], None, false)?;
    ensure!(alive(session.pid), "the exec {} ended with the process that started it", session.pid);
    let engine = reconnected(env).await?;
    assert_eq!(bounded(engine.wait_exec(&session)).await??, Exit::Exited(6));
    ensure!(env.exec_dirs().is_empty(), "a waited exec is forgotten: {:?}", env.exec_dirs());
    Ok(())
}

async fn a_timeout_that_expired_while_nobody_waited_is_still_typed(env: &Env) -> anyhow::Result<()> {
    let session = exec_in_another_process(env, &["sh", "-c", "sleep 100 & sleep 100"], Some(1), false)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(session.pid) {
        ensure!(Instant::now() < deadline, "the exec {} outlived its timeout", session.pid);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let engine = reconnected(env).await?;
    match bounded(engine.wait_exec(&session)).await? {
        Err(Error::Timeout { after, .. }) => ensure!(after == Duration::from_secs(1), "{after:?}"),
        other => bail!("expected a timeout, got {other:?}"),
    }
    assert_eq!(env.live_processes().await?, vec![env.init], "only the init is left");
    ensure!(env.exec_dirs().is_empty(), "a timed-out exec is forgotten: {:?}", env.exec_dirs());
    Ok(())
}

async fn deleting_the_container_forgets_its_execs(env: &Env) -> anyhow::Result<()> {
    let engine = env.engine()?;
    exec_detached(&engine, &env.id, &["sleep", "100"], None).await?;
    ensure!(env.exec_dirs().len() == 1, "the exec is kept on disk: {:?}", env.exec_dirs());
    // The deletion and the checks are the harness's, after every case.
    Ok(())
}

async fn an_exec_the_runtime_refuses_is_its_typed_error_and_leaves_nothing(env: &Env) -> anyhow::Result<()> {
    let engine = env.engine()?;
    engine.kill(&env.id, Signal::KILL, runtime_core::KillScope::Init).await?;
    bounded(engine.wait(&env.id)).await??;
    let refused = exec_detached(&engine, &env.id, &["true"], None).await;
    match refused.as_ref().map_err(|err| err.downcast_ref::<Error>()) {
        Err(Some(Error::InvalidState { .. } | Error::NotFound { .. } | Error::RuntimeFailed(_))) => {}
        other => bail!("expected the runtime's refusal, got {other:?}"),
    }
    let failure = refused.as_ref().err().and_then(|err| err.downcast_ref::<Error>()).and_then(Error::failure);
    let failure = failure.context("the refusal carries the runtime's failure")?;
    ensure!(failure.argv.first().is_some_and(|conmon| Path::new(conmon).ends_with("conmon")), "{failure:?}");
    ensure!(!failure.message.trim().is_empty(), "the runtime's words are kept: {failure:?}");
    ensure!(env.exec_dirs().is_empty(), "a refused exec leaves its files: {:?}", env.exec_dirs());
    Ok(())
}

async fn stopping_an_exec_that_ended_only_forgets_it(env: &Env) -> anyhow::Result<()> {
    let engine = env.engine()?;
    let session = exec_detached(&engine, &env.id, &["sh", "-c", "exit 3"], None).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(session.pid) {
        ensure!(Instant::now() < deadline, "the exec {} still runs", session.pid);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bounded(engine.exec_stop(&session, Duration::from_secs(5))).await??, Exit::Exited(3));
    ensure!(env.exec_dirs().is_empty(), "a stopped exec is forgotten: {:?}", env.exec_dirs());
    Ok(())
}

/// How soon a wait answers once the conmon it waits on is gone (as for a container).
const LOST_WITHIN: Duration = Duration::from_secs(1);

async fn a_lost_conmon_is_monitor_lost_and_a_stop_still_ends_the_exec(env: &Env) -> anyhow::Result<()> {
    let engine = env.engine()?;
    let session = exec_detached(&engine, &env.id, &["sh", "-c", "sleep 100 & sleep 100"], None).await?;
    env.until_running(3).await?;
    let dirs = env.exec_dirs();
    let conmon: u32 =
        std::fs::read_to_string(dirs.first().context("no exec dir")?.join("conmon.pid"))?.trim().parse()?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(conmon.try_into()?), nix::sys::signal::Signal::SIGKILL)?;
    let killed = Instant::now();
    let lost = bounded(engine.wait_exec(&session)).await?;
    ensure!(killed.elapsed() < LOST_WITHIN, "the wait answered after {:?}", killed.elapsed());
    ensure!(matches!(lost, Err(Error::MonitorLost { pid, .. }) if pid == conmon), "conmon {conmon} was lost: {lost:?}");
    ensure!(alive(session.pid), "the exec's process {} ended with its conmon", session.pid);
    let stopped = bounded(engine.exec_stop(&session, Duration::from_secs(5))).await?;
    ensure!(matches!(stopped, Err(Error::MonitorLost { pid, .. }) if pid == conmon), "{stopped:?}");
    assert_eq!(env.live_processes().await?, vec![env.init], "only the init is left");
    ensure!(env.exec_dirs().is_empty(), "a stopped exec is forgotten: {:?}", env.exec_dirs());
    Ok(())
}

/// The exec's k8s-file log once it holds a line ending with `text` (bounded): the log goes with
/// the exec once it is waited for, so it is read while the exec is kept.
async fn logged(env: &Env, session: &ExecSession, text: &str) -> anyhow::Result<String> {
    let execs = env.state_root().join("containers").join(session.id.as_str()).join("execs");
    let log = execs.join(&session.exec_id).join("exec.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let read = std::fs::read_to_string(&log).unwrap_or_default();
        if read.lines().any(|line| line.trim_end_matches('\r').ends_with(text)) {
            return Ok(read);
        }
        ensure!(Instant::now() < deadline, "no line ending with {text:?} in {}: {read:?}", log.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn an_exec_with_a_terminal_logs_its_output_as_stdout(env: &Env) -> anyhow::Result<()> {
    let engine = env.engine()?;
    let script = "test -t 0 && test -t 1 && echo is-a-tty; exit 3";
    let session = exec_with_terminal(&engine, &env.id, &["sh", "-c", script]).await?;
    logged(env, &session, " stdout F is-a-tty").await?;
    assert_eq!(bounded(engine.wait_exec(&session)).await??, Exit::Exited(3));
    ensure!(env.exec_dirs().is_empty(), "a waited exec is forgotten: {:?}", env.exec_dirs());
    Ok(())
}

/// Says `got-<line>` for the first line it reads, its terminal's size for every line after,
/// and exits 6 at the end of its input.
const ANSWERING: &str = "read line; echo got-$line; while read next; do busybox stty size; done; exit 6";

/// The lines of a terminal's output that are `stty size`'s answers (two numbers).
fn sizes(output: &str) -> Vec<&str> {
    let is_size = |line: &str| {
        let numbers: Vec<&str> = line.split(' ').collect();
        numbers.len() == 2 && numbers.iter().all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    output.lines().map(|line| line.trim_end_matches('\r')).filter(|line| is_size(line)).collect()
}

/// How many times `stty size` answered: with a size, or with its complaint about a terminal of
/// no rows or columns (an exec's terminal starts so, and a resize may not have reached it yet).
fn stty_answers(output: &str) -> usize {
    sizes(output).len() + output.lines().filter(|line| line.starts_with("stty: ")).count()
}

async fn an_attached_client_reads_writes_and_resizes_an_execs_terminal(env: &Env) -> anyhow::Result<()> {
    let engine = env.engine()?;
    let session = exec_with_terminal(&engine, &env.id, &["sh", "-c", ANSWERING]).await?;
    let client = bounded(engine.attach_exec(&session)).await??;
    // The terminal keeps the input until the shell reads it.
    bounded(client.write(b"hello\n")).await??;
    let mut received = Received::default();
    ensure!(received.until(client.as_ref(), |got| got.stdout.contains("got-hello")).await?, "{received:?}");
    bounded(engine.resize_exec(&session, TerminalSize { rows: 33, cols: 101 })).await??;
    // The resize and the input reach conmon by different ways: ask until the new size shows.
    for asked in 1..=50 {
        bounded(client.write(b"size\n")).await??;
        let answered = |got: &Received| stty_answers(&got.stdout) >= asked;
        ensure!(received.until(client.as_ref(), answered).await?, "the attachment ended: {received:?}");
        if sizes(&received.stdout).contains(&"33 101") {
            break;
        }
    }
    ensure!(sizes(&received.stdout).contains(&"33 101"), "stty never said 33 101: {:?}", received.stdout);
    ensure!(received.stderr.is_empty(), "a terminal's output is all stdout: {:?}", received.stderr);
    // ^D at the start of a line is the end of a terminal's input.
    bounded(client.write(b"\x04")).await??;
    ensure!(!received.until(client.as_ref(), |_| false).await?, "the attachment outlived the exec");
    assert_eq!(bounded(engine.wait_exec(&session)).await??, Exit::Exited(6));
    drop(client);
    ensure!(env.exec_dirs().is_empty(), "a waited exec is forgotten: {:?}", env.exec_dirs());
    Ok(())
}

async fn an_execs_terminal_is_attached_from_a_new_engine(env: &Env) -> anyhow::Result<()> {
    let session = exec_in_another_process(env, &["sh", "-c", ANSWERING], None, true)?;
    let engine = reconnected(env).await?;
    let client = bounded(engine.attach_exec(&session)).await??;
    bounded(client.write(b"again\n")).await??;
    let mut received = Received::default();
    ensure!(received.until(client.as_ref(), |got| got.stdout.contains("got-again")).await?, "{received:?}");
    bounded(client.write(b"\x04")).await??;
    assert_eq!(bounded(engine.wait_exec(&session)).await??, Exit::Exited(6));
    drop(client);
    ensure!(env.exec_dirs().is_empty(), "a waited exec is forgotten: {:?}", env.exec_dirs());
    Ok(())
}

/// Starts a background exec through a stand-in for conmon that behaves as `body` says, into a
/// container whose directory exists (as conmon's create leaves it) when `known`; returns the
/// error, whether the stand-in ran, and checks that nothing of the exec is left and that a
/// stand-in that wrote its working directory to `<script>.cwd` ran in the exec's directory.
async fn exec_through_fake(body: &str, known: bool) -> anyhow::Result<(Error, bool)> {
    let dir = tempfile::tempdir()?;
    let conmon = testkit::fake::stand_in_conmon(dir.path(), body)?;
    let version = runtime_core::RuntimeVersion::parse("runc version 1.1.5\ncommit: v1.1.5\nspec: 1.0.2-dev\n")?;
    let config = RuntimeConfig::default().binary("/bin/false").root(dir.path().join("runtime"));
    let backend = Arc::new(CliBackend::with_version(Arc::new(Runc), config, "/bin/false".into(), version)?);
    let root = StateRoot::open(dir.path().join("state"))?;
    let id = ContainerId::new(format!("fake-exec-{}", std::process::id()))?;
    let container_dir = root.files(&id).dir;
    if known {
        std::fs::create_dir_all(&container_dir)?;
    }
    let engine = Engine::new(backend, Arc::new(ConmonMonitor::new(&conmon)), root);
    let error = match bounded(engine.exec_detached(&id, &process(["true"]), background(None))).await? {
        Ok(session) => bail!("an exec through a broken conmon started: {session:?}"),
        Err(error) => error,
    };
    let live = testkit::procs::live_with_argument(OsStr::new(id.as_str()));
    ensure!(live.is_empty(), "processes naming {id} are left: {live:?}");
    let execs = container_dir.join("execs");
    let left: Vec<_> =
        std::fs::read_dir(&execs).map(|dir| dir.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    ensure!(left.is_empty(), "left in {}: {left:?}", execs.display());
    if !known {
        ensure!(!container_dir.exists(), "{} was made for a container conmon does not hold", container_dir.display());
    }
    if let Ok(cwd) = std::fs::read_to_string(conmon.with_extension("cwd")) {
        let cwd = PathBuf::from(cwd.trim_end());
        ensure!(
            cwd.parent() == Some(&container_dir.join("execs")),
            "conmon ran in {}, not in a directory of the exec's",
            cwd.display()
        );
    }
    Ok((error, conmon.with_extension("ran").exists()))
}

fn register_faults(suite: &mut testkit::harness::Suite) {
    suite.case("fake_conmon::exec::a_container_without_conmons_directory_is_not_found_before_it_runs", || async {
        let (error, ran) = exec_through_fake("exit 0", false).await?;
        ensure!(matches!(error, Error::NotFound { evidence: runtime_core::Existence::Seen { .. }, .. }), "{error:?}");
        ensure!(!ran, "conmon was started");
        Ok(())
    });
    suite.case("fake_conmon::exec::conmon_runs_in_the_execs_directory", || async {
        // What conmon writes into its working directory (an `oom` file) goes with the exec.
        let (_, ran) = exec_through_fake("pwd > \"$0.cwd\"; exit 0", true).await?;
        ensure!(ran, "the stand-in for conmon never ran");
        Ok(())
    });
    suite.case("fake_conmon::exec::closing_the_sync_pipe_without_a_pid_is_a_failure", || async {
        let (error, ran) = exec_through_fake("exit 0", true).await?;
        ensure!(ran, "the stand-in for conmon never ran");
        ensure!(matches!(&error, Error::RuntimeFailed(failure) if failure.status == Exit::Unknown), "{error:?}");
        Ok(())
    });
    suite.case("fake_conmon::exec::garbage_instead_of_a_pid_is_a_parse_error", || async {
        let (error, ran) = exec_through_fake("echo 'not json' >&3; exit 0", true).await?;
        ensure!(ran, "the stand-in for conmon never ran");
        ensure!(matches!(error, Error::Parse { .. }), "{error:?}");
        Ok(())
    });
    suite.case("fake_conmon::exec::a_refusal_is_classified_by_the_backend", || async {
        let body = r#"printf '{"data": -1, "message": "container does not exist"}\n' >&3"#;
        let (error, ran) = exec_through_fake(body, true).await?;
        ensure!(ran, "the stand-in for conmon never ran");
        ensure!(
            matches!(error, Error::NotFound { evidence: runtime_core::Existence::Refused(_), .. }),
            "runc's words for a missing container: {error:?}"
        );
        Ok(())
    });
}

type Case = for<'a> fn(&'a Env) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>;

fn cases() -> Vec<(&'static str, Case)> {
    vec![
        ("a_background_exec_gives_its_exit_code", |env| Box::pin(a_background_exec_gives_its_exit_code(env))),
        ("exec_stop_leaves_only_the_init", |env| Box::pin(exec_stop_leaves_only_the_init(env))),
        ("a_timeout_is_typed_and_leaves_only_the_init", |env| {
            Box::pin(a_timeout_is_typed_and_leaves_only_the_init(env))
        }),
        ("an_exec_outlives_the_process_that_started_it", |env| {
            Box::pin(an_exec_outlives_the_process_that_started_it(env))
        }),
        ("a_timeout_that_expired_while_nobody_waited_is_still_typed", |env| {
            Box::pin(a_timeout_that_expired_while_nobody_waited_is_still_typed(env))
        }),
        ("an_exec_the_runtime_refuses_is_its_typed_error", |env| {
            Box::pin(an_exec_the_runtime_refuses_is_its_typed_error_and_leaves_nothing(env))
        }),
        ("stopping_an_exec_that_ended_only_forgets_it", |env| {
            Box::pin(stopping_an_exec_that_ended_only_forgets_it(env))
        }),
        ("a_lost_conmon_is_monitor_lost_and_a_stop_still_ends_the_exec", |env| {
            Box::pin(a_lost_conmon_is_monitor_lost_and_a_stop_still_ends_the_exec(env))
        }),
        ("deleting_the_container_forgets_its_execs", |env| Box::pin(deleting_the_container_forgets_its_execs(env))),
        ("an_exec_with_a_terminal_logs_its_output_as_stdout", |env| {
            Box::pin(an_exec_with_a_terminal_logs_its_output_as_stdout(env))
        }),
        ("an_attached_client_reads_writes_and_resizes_an_execs_terminal", |env| {
            Box::pin(an_attached_client_reads_writes_and_resizes_an_execs_terminal(env))
        }),
        ("an_execs_terminal_is_attached_from_a_new_engine", |env| {
            Box::pin(an_execs_terminal_is_attached_from_a_new_engine(env))
        }),
    ]
}

async fn run_case(family: Arc<dyn RuntimeFamily>, conmon: RealRuntime, runtime: RealRuntime, case: Case) -> CaseResult {
    let env = Env::new(family, runtime, conmon.binary).await?;
    let outcome = case(&env).await;
    let leftovers = env.delete_and_check_nothing_left().await;
    if leftovers.is_err() {
        let _ = env.backend.delete(&env.id, DeleteMode::Force).await;
    }
    outcome?;
    leftovers.context("the case left something behind")?;
    Ok(Ran::Passed)
}

fn families() -> Vec<Arc<dyn RuntimeFamily>> {
    vec![Arc::new(Runc), Arc::new(Crun::default()), Arc::new(Youki)]
}

fn main() -> ExitCode {
    if let Ok(job) = std::env::var(EMBEDDER) {
        return match embedder(&job) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("{err:#}");
                ExitCode::FAILURE
            }
        };
    }
    testkit::harness::main(|suite| {
        register_faults(suite);
        for family in families() {
            for (name, case) in cases() {
                let label = format!("conmon::{}::exec::{name}", family.name());
                let runs = family.clone();
                suite.gated_under(label, "conmon", family.clone(), move |conmon, runtime| {
                    run_case(runs, conmon, runtime, case)
                });
            }
        }
    })
}
