//! The Engine with `ConmonMonitor`, on real conmon and each real runtime, through the gate
//! (`conmon`, then the runtime's own), for what is conmon's own: an exit seen after the engine
//! was dropped and reconnected while conmon lived on, and after the embedding process itself
//! exited (a copy of this binary plays it), the k8s-file log, a terminal, a lost conmon, a
//! refused create as a typed error, and nothing left behind after each case (no conmon, no
//! container, no zombie, no file of ours). The faults real conmon does not show on demand are
//! in `faults.rs`, played by testkit's fake conmon. What every monitor owes the Engine (exit codes and signals,
//! many containers at once, OOM kills) is testkit's conformance suite, which runs each
//! engine case under conmon as `<runtime>+conmon`.
//!
//! The expected exit codes are the shell's (`exit 9`); the exit file is read raw, as conmon
//! wrote it.

mod support;

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
    CliBackend, ContainerId, CreateOptions, DeleteMode, Engine, Error, Existence, Exit, OciBackend, RuntimeConfig,
    RuntimeFamily, StateRoot,
};
use testkit::bundle::{Bundle, BundleBuilder, Rootfs};
use testkit::gate::RealRuntime;
use testkit::harness::{CaseResult, Ran};

/// One case against conmon and a runtime.
struct Env {
    backend: Arc<CliBackend>,
    family: String,
    runtime: PathBuf,
    conmon: PathBuf,
    runtime_root: tempfile::TempDir,
    engine_root: tempfile::TempDir,
    bundles: Vec<Bundle>,
    ids: Vec<ContainerId>,
}

impl Env {
    async fn new(family: Arc<dyn RuntimeFamily>, runtime: RealRuntime, conmon: PathBuf) -> anyhow::Result<Self> {
        let runtime_root = tempfile::Builder::new().prefix("runtime-root-").tempdir()?;
        let name = family.name().to_owned();
        let backend = Arc::new(connect(family, &runtime.binary, runtime_root.path()).await?);
        let engine_root = tempfile::Builder::new().prefix("engine-root-").tempdir()?;
        Ok(Env {
            backend,
            family: name,
            runtime: runtime.binary,
            conmon,
            runtime_root,
            engine_root,
            bundles: Vec::new(),
            ids: Vec::new(),
        })
    }

    fn state_root(&self) -> anyhow::Result<StateRoot> {
        Ok(StateRoot::open(self.engine_root.path().join("state"))?)
    }

    /// A new engine (a restarted program would make one) with a new conmon monitor.
    fn engine(&self) -> anyhow::Result<Engine> {
        let monitor = Arc::new(ConmonMonitor::new(&self.conmon));
        Ok(Engine::new(self.backend.clone(), monitor, self.state_root()?))
    }

    fn id(&mut self, name: &str) -> ContainerId {
        let id = ContainerId::new(format!("{name}-{}-{}", std::process::id(), self.ids.len())).unwrap();
        self.ids.push(id.clone());
        id
    }

    fn bundle(&mut self, builder: BundleBuilder) -> anyhow::Result<PathBuf> {
        let bundle = builder.rootfs(Rootfs::Busybox).build()?;
        let path = bundle.path().to_path_buf();
        self.bundles.push(bundle);
        Ok(path)
    }

    fn exit_file(&self, id: &ContainerId) -> PathBuf {
        self.engine_root.path().join("state/exits").join(id.as_str())
    }

    /// Nothing of the case is left (see the support module).
    async fn check_nothing_left(&self) -> anyhow::Result<()> {
        let state = self.engine_root.path().join("state");
        support::check_nothing_left(&self.backend, &state, &self.ids, &self.bundles, Duration::ZERO).await
    }

    /// Removes what a failed case left, so the next case starts clean.
    async fn clean_up(&self) {
        for id in &self.ids {
            let _ = self.backend.delete(id, DeleteMode::Force).await;
        }
    }
}

/// The runtime `family` at `binary`, its state under `root`.
async fn connect(family: Arc<dyn RuntimeFamily>, binary: &Path, root: &Path) -> anyhow::Result<CliBackend> {
    let config = RuntimeConfig::default().binary(binary).root(root);
    CliBackend::connect(family, config).await.context("connecting the runtime")
}

/// Set (to the JSON of what to do) for a copy of this test binary that plays an embedding
/// program: it creates and starts a container through conmon, then exits.
const EMBEDDER: &str = "CONMON_DRIVER_TEST_EMBEDDER";

/// The embedding program: an engine over the runtime and conmon, one container created and
/// started, and the process exits without waiting.
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
        engine.create(&id, text("bundle")?.as_ref(), CreateOptions::default()).await?;
        engine.start(&id).await?;
        anyhow::Ok(())
    })
}

/// The pid conmon wrote for container `id`, from its pid file in the engine's state root.
fn conmon_pid(env: &Env, id: &ContainerId) -> anyhow::Result<i32> {
    let path = env.engine_root.path().join("state/containers").join(id.as_str()).join("conmon.pid");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.trim().parse()?)
}

/// A wait that fails the case instead of hanging it when no exit comes.
async fn waited(wait: impl std::future::Future<Output = runtime_core::Result<Exit>>) -> anyhow::Result<Exit> {
    let bound = Duration::from_secs(30);
    Ok(tokio::time::timeout(bound, wait).await.with_context(|| format!("no exit seen within {bound:?}"))??)
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

async fn an_exit_before_the_wait_is_still_seen(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("fast");
    let bundle = env.bundle(BundleBuilder::new(["true"]))?;
    let engine = env.engine()?;
    // `run`: conmon creates, the engine starts.
    engine.run(&id, &bundle, CreateOptions::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(env.exit_file(&id)).unwrap_or_default().is_empty() {
        ensure!(Instant::now() < deadline, "no exit file within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(waited(engine.wait(&id)).await?, Exit::Exited(0));
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

async fn the_exit_outlives_the_engine(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("outlive");
    let bundle = env.bundle(BundleBuilder::new(["sh", "-c", "sleep 2; exit 9"]))?;
    let engine = env.engine()?;
    engine.create(&id, &bundle, CreateOptions::default()).await?;
    engine.start(&id).await?;
    let conmon = conmon_pid(env, &id)?;
    drop(engine);
    ensure!(alive(conmon), "conmon {conmon} ended with the engine");
    let parent = std::fs::read_to_string(format!("/proc/{conmon}/stat"))?;
    let ppid: u32 =
        parent.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok()).context("ppid")?;
    ensure!(ppid != std::process::id(), "conmon is a child of the embedding process");
    let monitor = Arc::new(ConmonMonitor::new(&env.conmon));
    let engine = Engine::reconnect(env.backend.clone(), monitor, env.state_root()?).await?;
    assert_eq!(waited(engine.wait(&id)).await?, Exit::Exited(9));
    assert_eq!(engine.status(&id).await?.exit, Some(Exit::Exited(9)));
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

async fn the_exit_and_log_outlive_the_embedding_process(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("process");
    let bundle = env.bundle(BundleBuilder::new(["sh", "-c", "echo from-before; sleep 2; exit 11"]))?;
    let job = serde_json::json!({
        "family": env.family,
        "runtime": env.runtime,
        "runtime_root": env.runtime_root.path(),
        "conmon": env.conmon,
        "state_root": env.engine_root.path().join("state"),
        "id": id.as_str(),
        "bundle": bundle,
    });
    let embedder = std::process::Command::new(std::env::current_exe()?).env(EMBEDDER, job.to_string()).output()?;
    ensure!(embedder.status.success(), "the embedding program failed: {}", String::from_utf8_lossy(&embedder.stderr));
    let conmon = conmon_pid(env, &id)?;
    ensure!(alive(conmon), "conmon {conmon} ended with the embedding program");
    let monitor = Arc::new(ConmonMonitor::new(&env.conmon));
    let engine = Engine::reconnect(env.backend.clone(), monitor, env.state_root()?).await?;
    assert_eq!(waited(engine.wait(&id)).await?, Exit::Exited(11));
    let log = std::fs::read_to_string(ConmonMonitor::log_file(&engine.state_root().files(&id)))?;
    ensure!(log.contains(" stdout F from-before"), "{log:?}");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

async fn a_taken_id_is_already_exists_in_the_runtimes_words(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("taken");
    let first = env.bundle(BundleBuilder::new(["sleep", "100"]))?;
    let second = env.bundle(BundleBuilder::new(["sleep", "100"]))?;
    // Made outside the engine: the runtime has it, the engine has no record of it.
    env.backend.create(&id, &first, CreateOptions::default()).await?;
    let engine = env.engine()?;
    let refused = engine.create(&id, &second, CreateOptions::default()).await;
    match &refused {
        Err(Error::AlreadyExists { id: Some(taken), evidence: Existence::Refused(failure) }) => {
            ensure!(taken == &id);
            ensure!(failure.argv.first().is_some_and(|conmon| Path::new(conmon).ends_with("conmon")), "{failure:?}");
            ensure!(!failure.message.trim().is_empty(), "the runtime's words are kept: {failure:?}");
        }
        other => bail!("expected AlreadyExists relayed by conmon, got {other:?}"),
    }
    // The other container is untouched.
    env.backend.state(&id).await.context("the first container is still there")?;
    env.backend.delete(&id, DeleteMode::Force).await?;
    Ok(())
}

async fn a_lost_conmon(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("lost");
    let bundle = env.bundle(BundleBuilder::new(["sleep", "100"]))?;
    let engine = env.engine()?;
    engine.create(&id, &bundle, CreateOptions::default()).await?;
    engine.start(&id).await?;
    let conmon = conmon_pid(env, &id)?;
    // conmon is killed while the engine waits, and once more before a new wait begins.
    let kill_conmon = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(conmon), nix::sys::signal::Signal::SIGKILL)
    };
    let (lost, killed) = tokio::join!(tokio::time::timeout(Duration::from_millis(1300), engine.wait(&id)), kill_conmon);
    killed?;
    let lost = lost.context("wait hangs after conmon died")?;
    let is_lost = |error: Option<&Error>| {
        matches!(error, Some(Error::MonitorLost { id: lost, monitor, pid })
            if lost == id.as_str() && monitor == "conmon" && *pid == conmon as u32)
    };
    ensure!(is_lost(lost.as_ref().err()), "while waiting: {lost:?}");
    let lost = tokio::time::timeout(Duration::from_secs(1), engine.wait(&id)).await.context("a new wait hangs")?;
    ensure!(is_lost(lost.as_ref().err()), "a new wait: {lost:?}");
    let status = tokio::time::timeout(Duration::from_secs(1), engine.status(&id)).await.context("status hangs")?;
    ensure!(is_lost(status.as_ref().err()), "status: {status:?}");
    let listed = engine.list().await?;
    ensure!(listed.iter().any(|listed| listed.id == id && listed.exit.is_none()), "list hides it: {listed:?}");
    engine.delete(&id, DeleteMode::Force).await?;
    Ok(())
}

async fn output_lands_in_the_k8s_file_log_by_stream(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("log");
    let bundle = env.bundle(BundleBuilder::new(["sh", "-c", "echo to-out; echo to-err >&2"]))?;
    let engine = env.engine()?;
    engine.create(&id, &bundle, CreateOptions::default()).await?;
    engine.start(&id).await?;
    assert_eq!(waited(engine.wait(&id)).await?, Exit::Exited(0));
    let files = engine.state_root().files(&id);
    let log = std::fs::read_to_string(ConmonMonitor::log_file(&files)).context("reading the log")?;
    // k8s-file lines: TIMESTAMP STREAM F|P TEXT, F for a full line.
    let lines: Vec<Vec<&str>> = log.lines().map(|line| line.splitn(4, ' ').collect()).collect();
    let streams: Vec<(&str, &str, &str)> =
        lines.iter().map(|l| (l[1], l[2], l.get(3).copied().unwrap_or(""))).collect();
    ensure!(streams.contains(&("stdout", "F", "to-out")), "{log:?}");
    ensure!(streams.contains(&("stderr", "F", "to-err")), "{log:?}");
    ensure!(lines.iter().all(|l| l[0].contains('T')), "every line begins with a timestamp: {log:?}");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

async fn a_terminal_container_runs_under_conmons_terminal(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("tty");
    let bundle = env.bundle(BundleBuilder::new(["sh", "-c", "test -t 1 && echo is-a-tty; exit 4"]).terminal())?;
    let engine = env.engine()?;
    engine.create(&id, &bundle, CreateOptions::default()).await?;
    engine.start(&id).await?;
    assert_eq!(waited(engine.wait(&id)).await?, Exit::Exited(4));
    let log = std::fs::read_to_string(ConmonMonitor::log_file(&engine.state_root().files(&id)))?;
    ensure!(log.contains("is-a-tty"), "stdout was not a terminal: {log:?}");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

type Case = fn(&mut Env) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + '_>>;

fn cases() -> Vec<(&'static str, Case)> {
    vec![
        ("an_exit_before_the_wait_is_seen", |env| Box::pin(an_exit_before_the_wait_is_still_seen(env))),
        ("the_exit_outlives_the_engine", |env| Box::pin(the_exit_outlives_the_engine(env))),
        ("the_exit_and_log_outlive_the_embedding_process", |env| {
            Box::pin(the_exit_and_log_outlive_the_embedding_process(env))
        }),
        ("a_taken_id_is_already_exists", |env| Box::pin(a_taken_id_is_already_exists_in_the_runtimes_words(env))),
        ("a_lost_conmon_is_a_monitor_lost_error_from_wait_and_status", |env| Box::pin(a_lost_conmon(env))),
        ("output_lands_in_the_log_by_stream", |env| Box::pin(output_lands_in_the_k8s_file_log_by_stream(env))),
        ("a_terminal_container_runs", |env| Box::pin(a_terminal_container_runs_under_conmons_terminal(env))),
    ]
}

async fn run_case(family: Arc<dyn RuntimeFamily>, conmon: RealRuntime, runtime: RealRuntime, case: Case) -> CaseResult {
    let mut env = Env::new(family, runtime, conmon.binary).await?;
    let outcome = case(&mut env).await;
    let leftovers = env.check_nothing_left().await;
    if outcome.is_err() || leftovers.is_err() {
        env.clean_up().await;
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
        for family in families() {
            for (name, case) in cases() {
                let label = format!("conmon::{}::{name}", family.name());
                let runs = family.clone();
                suite.gated_under(label, "conmon", family.clone(), move |conmon, runtime| {
                    run_case(runs, conmon, runtime, case)
                });
            }
        }
    })
}
