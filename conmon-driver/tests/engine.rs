//! The Engine with `ConmonMonitor`, on real conmon and each real runtime, through the gate
//! (`conmon`, then the runtime's own): exit codes as conmon records them, an exit seen after
//! the engine was dropped and reconnected, and after the embedding process itself exited (a
//! copy of this binary plays it), the log, OOM kills, a lost conmon, a refused create as a typed
//! error, and nothing left behind after each case (no conmon, no container, no zombie, no file
//! of ours). The faults real conmon does not show on demand are played by a shell stand-in.
//!
//! The expected exit codes are the shell's (`exit 7`) and POSIX's (128 + the signal number);
//! the exit file is read raw, as conmon wrote it.

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
    CliBackend, ContainerId, CreateOptions, DeleteMode, Engine, Error, Existence, Exit, KillScope, OciBackend,
    RuntimeConfig, RuntimeFamily, Signal, StateRoot,
};
use testkit::bundle::{Bundle, BundleBuilder, Rootfs};
use testkit::gate::{self, Gate, RealRuntime};
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

    /// Nothing of the case is left: no process naming one of its ids (conmon, the runtime, the
    /// container), no zombie child of this process, no container in the runtime, nothing under
    /// the engine's state root, no node conmon made in a bundle.
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
        ensure!(listed.is_empty(), "containers left in the runtime: {listed:?}");
        for dir in ["containers", "exits", "locks"] {
            let path = self.engine_root.path().join("state").join(dir);
            let left: Vec<_> = std::fs::read_dir(&path)?.flatten().map(|entry| entry.file_name()).collect();
            ensure!(left.is_empty(), "left in {}: {left:?}", path.display());
        }
        for bundle in &self.bundles {
            for node in ["attach", "ctl", "winsz"] {
                let path = bundle.path().join(node);
                ensure!(path.symlink_metadata().is_err(), "{} is left", path.display());
            }
        }
        Ok(())
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

fn families() -> Vec<Arc<dyn RuntimeFamily>> {
    vec![Arc::new(Runc), Arc::new(Crun::default()), Arc::new(Youki)]
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

/// Children of this process that have exited and were not reaped.
fn zombie_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            // After the command name in parentheses: state, ppid.
            let fields: Vec<&str> =
                stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
            fields.first() == Some(&"Z") && fields.get(1) == Some(&me.as_str())
        })
        .collect()
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

async fn exits_with_the_shells_code(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("exit7");
    let bundle = env.bundle(BundleBuilder::new(["sh", "-c", "exit 7"]))?;
    let engine = env.engine()?;
    engine.create(&id, &bundle, CreateOptions::default()).await?;
    engine.start(&id).await?;
    assert_eq!(waited(engine.wait(&id)).await?, Exit::Exited(7));
    assert_eq!(std::fs::read_to_string(env.exit_file(&id))?, "7", "conmon's exit file");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

async fn ends_by_signal(env: &mut Env, signal: Signal, code: &str) -> anyhow::Result<()> {
    let id = env.id("signal");
    // In the host's pid namespace the init is not pid 1, so TERM is not ignored.
    let bundle = env.bundle(BundleBuilder::new(["sleep", "100"]).host_pid_namespace())?;
    let engine = env.engine()?;
    engine.create(&id, &bundle, CreateOptions::default()).await?;
    engine.start(&id).await?;
    engine.kill(&id, signal, KillScope::Init).await?;
    assert_eq!(waited(engine.wait(&id)).await?, Exit::Signaled(signal));
    assert_eq!(std::fs::read_to_string(env.exit_file(&id))?, code, "conmon's exit file");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
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

/// A stand-in for conmon, as a shell script that answers `--version` as conmon 2.1.6 does,
/// else leaves `<script>.ran` behind, finds the `-P` path in its arguments and then runs `body`
/// (fd 3 is its sync pipe), for the faults real conmon does not show on demand.
fn fake_conmon(dir: &Path, body: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("conmon");
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = --version ] && {{ printf 'conmon version 2.1.6\\ncommit: unknown\\n'; exit 0; }}\ntouch \"$0.ran\"\nP=\nwhile [ $# -gt 0 ]; do case \"$1\" in -P) P=\"$2\"; shift;; esac; shift; done\n{body}\n"
    );
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// Creates a container through a fake conmon that behaves as `body` says, with create timeout
/// `timeout`; returns the error and checks that nothing is left: no process naming the
/// container, nothing under the engine's state root.
async fn create_through_fake(body: &str, timeout: Option<Duration>) -> anyhow::Result<Error> {
    let options = CreateOptions { timeout, ..CreateOptions::default() };
    let (error, ran) = create_through_fake_with(body, options).await?;
    ensure!(ran, "the stand-in for conmon never ran");
    Ok(error)
}

/// [`create_through_fake`] with `options`; also says whether conmon was started at all.
async fn create_through_fake_with(body: &str, options: CreateOptions) -> anyhow::Result<(Error, bool)> {
    let dir = tempfile::tempdir()?;
    let conmon = fake_conmon(dir.path(), body)?;
    let version = runtime_core::RuntimeVersion::parse("runc version 1.1.5\ncommit: v1.1.5\nspec: 1.0.2-dev\n")?;
    let config = RuntimeConfig::default().binary("/bin/false").root(dir.path().join("runtime"));
    let backend = Arc::new(CliBackend::with_version(Arc::new(Runc), config, "/bin/false".into(), version)?);
    let root = StateRoot::open(dir.path().join("state"))?;
    let engine = Engine::new(backend, Arc::new(ConmonMonitor::new(&conmon)), root);
    let bundle = BundleBuilder::new(["true"]).rootfs(Rootfs::Empty).build()?;
    let id = ContainerId::new(format!("fake-{}", std::process::id()))?;
    let started = Instant::now();
    let error = match engine.create(&id, bundle.path(), options).await {
        Ok(created) => bail!("a create through a broken conmon succeeded: {created:?}"),
        Err(error) => error,
    };
    ensure!(started.elapsed() < Duration::from_secs(20), "the failure took {:?}", started.elapsed());
    let live = testkit::procs::live_with_argument(OsStr::new(id.as_str()));
    ensure!(live.is_empty(), "processes naming {id} are left: {live:?}");
    for sub in ["containers", "exits", "locks"] {
        let left: Vec<_> =
            std::fs::read_dir(dir.path().join("state").join(sub))?.flatten().map(|e| e.file_name()).collect();
        ensure!(left.is_empty(), "left in {sub}: {left:?}");
    }
    Ok((error, conmon.with_extension("ran").exists()))
}

fn register_faults(suite: &mut testkit::harness::Suite) {
    suite.case("fake_conmon::options_conmon_does_not_serve_are_refused_before_it_runs", || async {
        let (stdio, _pipes) = runtime_core::ContainerStdio::pipes()?;
        let refused = [
            (
                "console_socket",
                CreateOptions { console_socket: Some("/tmp/console.sock".into()), ..Default::default() },
            ),
            (
                "preserve_fds",
                CreateOptions { preserve_fds: vec![std::fs::File::open("/dev/null")?.into()], ..Default::default() },
            ),
            ("stdio", CreateOptions { stdio, ..Default::default() }),
        ];
        for (option, options) in refused {
            let (error, ran) = create_through_fake_with("exit 0", options).await?;
            ensure!(
                matches!(&error, Error::Unsupported { feature, .. } if feature.ends_with(option)),
                "{option}: {error:?}"
            );
            ensure!(!ran, "{option}: conmon was started");
        }
        Ok(())
    });
    suite.case("fake_conmon::dying_at_once_is_a_runtime_failure_with_its_words", || async {
        let error = create_through_fake("echo 'conmon: cannot go on' >&2; exit 3", None).await?;
        match error {
            Error::RuntimeFailed(failure) => {
                ensure!(failure.status == Exit::Exited(3), "{failure:?}");
                ensure!(failure.message.contains("cannot go on"), "{failure:?}");
            }
            other => bail!("expected RuntimeFailed, got {other:?}"),
        }
        Ok(())
    });
    suite.case("fake_conmon::closing_the_sync_pipe_without_an_answer_is_a_failure", || async {
        let error = create_through_fake("exit 0", None).await?;
        ensure!(matches!(&error, Error::RuntimeFailed(failure) if failure.status == Exit::Unknown), "{error:?}");
        Ok(())
    });
    suite.case("fake_conmon::garbage_on_the_sync_pipe_is_a_parse_error", || async {
        let error = create_through_fake("echo 'not json' >&3; exit 0", None).await?;
        ensure!(matches!(error, Error::Parse { .. }), "{error:?}");
        Ok(())
    });
    suite.case("fake_conmon::a_refusal_is_classified_by_the_backend", || async {
        let body =
            r#"printf '{"data": -1, "message": "runc create failed: container with given ID already exists"}\n' >&3"#;
        let error = create_through_fake(body, None).await?;
        ensure!(matches!(error, Error::AlreadyExists { evidence: Existence::Refused(_), .. }), "{error:?}");
        Ok(())
    });
    suite.case("fake_conmon::one_that_never_answers_times_out_and_is_killed", || async {
        // Double-forks like conmon, and the process that stays holds the sync pipe open without
        // a word, blocked on a fifo nobody writes.
        let body = "mkfifo \"$P.fifo\"; ( read x < \"$P.fifo\" ) & echo $! > \"$P\"; exit 0";
        let error = create_through_fake(body, Some(Duration::from_secs(1))).await?;
        ensure!(matches!(error, Error::Timeout { after, .. } if after == Duration::from_secs(1)), "{error:?}");
        Ok(())
    });
}

async fn an_oom_kill_is_reported_from_conmons_record(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("oom");
    // Doubles a shell variable until the 32 MiB limit is hit.
    let builder = BundleBuilder::new(["sh", "-c", "x=a; while :; do x=$x$x; done"]).memory_limit(32 * 1024 * 1024);
    let bundle = env.bundle(builder)?;
    let engine = env.engine()?;
    engine.create(&id, &bundle, CreateOptions::default()).await?;
    engine.start(&id).await?;
    assert_eq!(waited(engine.wait(&id)).await?, Exit::Signaled(Signal::KILL));
    let persist = env.engine_root.path().join("state/containers").join(id.as_str());
    ensure!(persist.join("oom").exists(), "conmon wrote no oom file in its persist dir {}", persist.display());
    ensure!(engine.status(&id).await?.oom_killed, "the engine reports no OOM kill");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

async fn a_container_that_was_never_oom_killed_says_so(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("nooom");
    let bundle = env.bundle(BundleBuilder::new(["sleep", "100"]).host_pid_namespace())?;
    let engine = env.engine()?;
    engine.create(&id, &bundle, CreateOptions::default()).await?;
    engine.start(&id).await?;
    engine.kill(&id, Signal::KILL, KillScope::Init).await?;
    assert_eq!(waited(engine.wait(&id)).await?, Exit::Signaled(Signal::KILL));
    ensure!(!engine.status(&id).await?.oom_killed, "a SIGKILL is reported as an OOM kill");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

async fn many_at_once_each_get_their_own_exit(env: &mut Env) -> anyhow::Result<()> {
    const COUNT: i32 = 10;
    let engine = Arc::new(env.engine()?);
    let mut containers = Vec::new();
    for code in 1..=COUNT {
        let id = env.id("many");
        let bundle = env.bundle(BundleBuilder::new(["sh", "-c", &format!("sleep 1; exit {code}")]))?;
        containers.push((id, bundle, code));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (id, bundle, code) in containers.clone() {
        let engine = engine.clone();
        tasks.spawn(async move {
            engine.run(&id, &bundle, CreateOptions::default()).await?;
            let exit = waited(engine.wait(&id)).await?;
            anyhow::Ok((code, exit))
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (code, exit) = joined??;
        ensure!(exit == Exit::Exited(code), "the container that exits {code} was seen to end as {exit:?}");
    }
    for (id, _, _) in &containers {
        engine.delete(id, DeleteMode::IfStopped).await?;
    }
    Ok(())
}

async fn a_lost_conmon_is_an_error_not_a_hang(env: &mut Env) -> anyhow::Result<()> {
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
    ensure!(matches!(lost, Err(Error::NotSupervised { .. })), "while waiting: {lost:?}");
    let lost = tokio::time::timeout(Duration::from_secs(1), engine.wait(&id)).await.context("a new wait hangs")?;
    ensure!(matches!(lost, Err(Error::NotSupervised { .. })), "a new wait: {lost:?}");
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
        ("exit_code_7", |env| Box::pin(exits_with_the_shells_code(env))),
        ("term_is_143", |env| Box::pin(ends_by_signal(env, Signal::TERM, "143"))),
        ("kill_is_137", |env| Box::pin(ends_by_signal(env, Signal::KILL, "137"))),
        ("an_exit_before_the_wait_is_seen", |env| Box::pin(an_exit_before_the_wait_is_still_seen(env))),
        ("the_exit_outlives_the_engine", |env| Box::pin(the_exit_outlives_the_engine(env))),
        ("the_exit_and_log_outlive_the_embedding_process", |env| {
            Box::pin(the_exit_and_log_outlive_the_embedding_process(env))
        }),
        ("a_taken_id_is_already_exists", |env| Box::pin(a_taken_id_is_already_exists_in_the_runtimes_words(env))),
        ("ten_at_once_each_get_their_own_exit", |env| Box::pin(many_at_once_each_get_their_own_exit(env))),
        ("a_lost_conmon_is_an_error", |env| Box::pin(a_lost_conmon_is_an_error_not_a_hang(env))),
        ("output_lands_in_the_log_by_stream", |env| Box::pin(output_lands_in_the_k8s_file_log_by_stream(env))),
        ("a_terminal_container_runs", |env| Box::pin(a_terminal_container_runs_under_conmons_terminal(env))),
        ("an_oom_kill_is_reported", |env| Box::pin(an_oom_kill_is_reported_from_conmons_record(env))),
        ("a_kill_is_no_oom_kill", |env| Box::pin(a_container_that_was_never_oom_killed_says_so(env))),
    ]
}

async fn run_case(family: Arc<dyn RuntimeFamily>, conmon: RealRuntime, case: Case) -> CaseResult {
    let runtime = match gate::real_runtime(family.name(), &family.host_checks()) {
        Gate::Open(runtime) => runtime,
        Gate::Skip(reason) => return Ok(Ran::Skipped(reason)),
        Gate::Fail(reason) => bail!("{reason}"),
    };
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
                let family = family.clone();
                let label = format!("conmon::{}::{name}", family.name());
                suite.gated(label, "conmon", Vec::new(), move |conmon| run_case(family, conmon, case));
            }
        }
    })
}
