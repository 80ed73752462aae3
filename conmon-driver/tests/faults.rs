//! `ConmonMonitor` against a conmon that misbehaves on demand: testkit's fake conmon over the
//! fake runc, so no real runtime, conmon or root is needed. Each fault ends the create (or the
//! wait) with a typed error within the create timeout the case sets (short where conmon hangs,
//! so that the timeout is what ends it), and leaves nothing: no process naming the container, no
//! zombie child, no container in the runtime, nothing under the engine's state root, no node
//! conmon made in the bundle. A plain container and a terminal
//! one run through the fake conmon show the paths the faults leave.
//!
//! The expected exit code is the shell's (`exit 7`); the runtime's refusal is in runc's words.

mod support;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use backend_runc::Runc;
use conmon_driver::ConmonMonitor;
use runtime_core::{
    CliBackend, ContainerId, CreateOptions, DeleteMode, Engine, Error, Existence, Exit, OciBackend, Signal, StateRoot,
};
use testkit::bundle::{Bundle, BundleBuilder, Rootfs};
use testkit::fake::{FakeConmon, FakeRuntime, Flavour};

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
    /// The container runs `script` in a shell.
    async fn new(name: &str, script: &str) -> anyhow::Result<Self> {
        let runtime = FakeRuntime::new(Flavour::Runc)?;
        let backend = Arc::new(CliBackend::connect(Arc::new(Runc), runtime.config()).await?);
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
async fn with_env(name: &str, script: &str, case: Case) -> anyhow::Result<()> {
    let env = Env::new(name, script).await?;
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

type Case = for<'a> fn(&'a Env) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>;

fn main() -> ExitCode {
    // Each case: its name, the container's id prefix, the container's shell script, the case.
    let cases: [(&str, &str, &str, Case); 11] = [
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
    ];
    testkit::harness::main(|suite| {
        for (name, prefix, script, case) in cases {
            suite.case(format!("fake_conmon::{name}"), move || async move { with_env(prefix, script, case).await });
        }
    })
}
