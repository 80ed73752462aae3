//! A container's stdio through the Engine and conmon, on real conmon and each real runtime,
//! through the gate (`conmon`, then the runtime's own): the k8s-file log read back by stream,
//! an attached client that reads output as it comes and writes stdin, a terminal resized, a log
//! followed to the container's end and reopened; and the direct monitor refusing what it cannot
//! serve. Nothing is left behind after each case (no conmon, no container, no zombie, no file).
//!
//! The expected output is the shell's: what each container's script prints, written out in
//! the case; a terminal's size is what `stty size` inside it says.

#[path = "support/received.rs"]
mod received;
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
    AttachStdin, CliBackend, ContainerId, CreateOptions, DeleteMode, DirectMonitor, Engine, Error, Exit, KillScope,
    LogDriver, LogLine, LogOptions, LogReader, MonitorStdio, OciBackend, OutputStream, RuntimeConfig, RuntimeFamily,
    Signal, StateRoot, TerminalSize,
};
use testkit::bundle::{Bundle, BundleBuilder, Rootfs};
use testkit::gate::RealRuntime;
use testkit::harness::{CaseResult, Ran};

use received::Received;

/// How long any one step may take before the case fails instead of hanging.
const STEP: Duration = Duration::from_secs(30);

/// One case against conmon and a runtime.
struct Env {
    backend: Arc<CliBackend>,
    conmon: PathBuf,
    _runtime_root: tempfile::TempDir,
    engine_root: tempfile::TempDir,
    bundles: Vec<Bundle>,
    /// Directories holding long paths to bundles (symlinks), removed with the case.
    long_paths: Vec<tempfile::TempDir>,
    ids: Vec<ContainerId>,
}

impl Env {
    async fn new(family: Arc<dyn RuntimeFamily>, runtime: RealRuntime, conmon: PathBuf) -> anyhow::Result<Self> {
        let runtime_root = tempfile::Builder::new().prefix("runtime-root-").tempdir()?;
        let config = RuntimeConfig::default().binary(&runtime.binary).root(runtime_root.path());
        let backend = Arc::new(CliBackend::connect(family, config).await.context("connecting the runtime")?);
        let engine_root = tempfile::Builder::new().prefix("engine-root-").tempdir()?;
        Ok(Env {
            backend,
            conmon,
            _runtime_root: runtime_root,
            engine_root,
            bundles: Vec::new(),
            long_paths: Vec::new(),
            ids: Vec::new(),
        })
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

    fn bundle(&mut self, builder: BundleBuilder) -> anyhow::Result<PathBuf> {
        let bundle = builder.rootfs(Rootfs::Busybox).build()?;
        let path = bundle.path().to_path_buf();
        self.bundles.push(bundle);
        Ok(path)
    }

    /// The bundle under a path longer than a socket address holds (108 bytes with its `attach`),
    /// through a symlink.
    fn long_path_to(&mut self, bundle: &Path) -> anyhow::Result<PathBuf> {
        let dir = tempfile::Builder::new().prefix("long-").tempdir()?;
        let deep = dir.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep)?;
        let link = deep.join("bundle");
        std::os::unix::fs::symlink(bundle, &link)?;
        ensure!(link.join("attach").as_os_str().len() > 108, "{} is not long enough", link.display());
        self.long_paths.push(dir);
        Ok(link)
    }

    /// Nothing of the case is left (see the support module).
    async fn check_nothing_left(&self) -> anyhow::Result<()> {
        let state = self.engine_root.path().join("state");
        support::check_nothing_left(&self.backend, &state, &self.ids, &self.bundles, Duration::ZERO).await
    }

    /// Removes what a failed case left, so the next case starts clean.
    async fn clean_up(&self) {
        let engine = self.engine();
        for id in &self.ids {
            match &engine {
                Ok(engine) => drop(engine.delete(id, DeleteMode::Force).await),
                Err(_) => drop(self.backend.delete(id, DeleteMode::Force).await),
            }
        }
    }
}

/// `step`, or a failure naming `what` when it takes longer than [`STEP`].
async fn bounded<T>(what: &str, step: impl Future<Output = runtime_core::Result<T>>) -> anyhow::Result<T> {
    Ok(tokio::time::timeout(STEP, step).await.with_context(|| format!("{what}: nothing within {STEP:?}"))??)
}

/// Every line of the log, read to its end.
async fn lines(mut reader: Box<dyn LogReader>) -> anyhow::Result<Vec<LogLine>> {
    let mut lines = Vec::new();
    while let Some(line) = bounded("reading the log", reader.next_line()).await? {
        lines.push(line);
    }
    Ok(lines)
}

fn with_stdin(stdin: AttachStdin) -> CreateOptions {
    CreateOptions { monitor_stdio: MonitorStdio { stdin, ..MonitorStdio::default() }, ..CreateOptions::default() }
}

async fn lines_land_in_the_log_by_stream_and_long_ones_whole(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("log");
    // 20000 bytes on one line: conmon reads at most 8192 at a time and logs pieces of it.
    let script = "echo to-out; echo to-err >&2; echo; busybox head -c 20000 /dev/zero | busybox tr '\\0' x; echo; \
                  printf no-newline";
    let bundle = env.bundle(BundleBuilder::new(["sh", "-c", script]))?;
    let engine = env.engine()?;
    engine.run(&id, &bundle, CreateOptions::default()).await?;
    assert_eq!(bounded("waiting", engine.wait(&id)).await?, Exit::Exited(0));
    let read = lines(engine.logs(&id, LogOptions::default()).await?).await?;
    let got: Vec<(OutputStream, String, bool)> = read
        .into_iter()
        .map(|line| (line.stream, String::from_utf8_lossy(&line.text).into_owned(), line.complete))
        .collect();
    let stdout: Vec<_> = got.iter().filter(|line| line.0 == OutputStream::Stdout).cloned().collect();
    let stderr: Vec<_> = got.iter().filter(|line| line.0 == OutputStream::Stderr).cloned().collect();
    let out = |text: &str, complete| (OutputStream::Stdout, text.to_owned(), complete);
    ensure!(
        stdout == vec![out("to-out", true), out("", true), out(&"x".repeat(20000), true), out("no-newline", false)],
        "stdout: {:?}",
        stdout.iter().map(|line| (&line.1[..line.1.len().min(40)], line.1.len(), line.2)).collect::<Vec<_>>()
    );
    ensure!(stderr == vec![(OutputStream::Stderr, "to-err".to_owned(), true)], "stderr: {stderr:?}");
    // The long line really was logged in pieces (the file itself, read raw).
    let raw = std::fs::read_to_string(ConmonMonitor::log_file(&engine.state_root().files(&id)))?;
    ensure!(raw.lines().any(|line| line.split(' ').nth(2) == Some("P")), "no partial record in {} bytes", raw.len());
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

async fn a_bounded_log_at_the_callers_path_stays_within_its_bound(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("bounded");
    // 200 lines of 100 bytes, 20000 bytes of output for a log of at most 4096.
    let script = "i=0; while [ $i -lt 200 ]; do printf '%099d\\n' $i; i=$((i+1)); done";
    let bundle = env.bundle(BundleBuilder::new(["sh", "-c", script]))?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bounded.log");
    let engine = env.engine()?;
    let options = CreateOptions {
        monitor_stdio: MonitorStdio {
            log: LogDriver::K8sFile { path: Some(path.clone()), max_size: Some(4096) },
            ..MonitorStdio::default()
        },
        ..CreateOptions::default()
    };
    engine.run(&id, &bundle, options).await?;
    assert_eq!(bounded("waiting", engine.wait(&id)).await?, Exit::Exited(0));
    let size = std::fs::metadata(&path)?.len();
    ensure!(size > 0 && size <= 4096, "the log holds {size} bytes");
    let read = lines(engine.logs(&id, LogOptions::default()).await?).await?;
    let last = read.last().context("the bounded log is empty")?;
    ensure!(last.text == format!("{:099}", 199).into_bytes(), "the last line: {last:?}");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    ensure!(path.exists(), "the caller's log was removed with the container");
    Ok(())
}

async fn an_attached_client_reads_live_and_writes_stdin_through_a_long_bundle_path(
    env: &mut Env,
) -> anyhow::Result<()> {
    let id = env.id("attach");
    let script = "echo ready; read line; echo \"got $line\"; echo \"err $line\" >&2; cat; echo cat-ended";
    let bundle = env.bundle(BundleBuilder::new(["sh", "-c", script]))?;
    let long = env.long_path_to(&bundle)?;
    let engine = env.engine()?;
    engine.create(&id, &long, with_stdin(AttachStdin::UntilDetach)).await?;
    let client = bounded("attaching", engine.attach(&id)).await?;
    engine.start(&id).await?;
    let mut received = Received::default();
    // The container waits for its input: what arrives now came while it ran.
    ensure!(received.until(client.as_ref(), |got| got.stdout.contains("ready\n")).await?, "{received:?}");
    bounded("writing", client.write(b"hello\n")).await?;
    let answered = |got: &Received| got.stdout.contains("got hello\n") && got.stderr.contains("err hello\n");
    ensure!(received.until(client.as_ref(), answered).await?, "{received:?}");
    bounded("writing", client.write(b"echoed by cat\n")).await?;
    ensure!(received.until(client.as_ref(), |got| got.stdout.contains("echoed by cat\n")).await?, "{received:?}");
    // The end of this client's input is cat's end of file.
    bounded("closing the input", client.close_input()).await?;
    ensure!(!received.until(client.as_ref(), |_| false).await?, "the attachment never ended");
    ensure!(received.stdout == "ready\ngot hello\nechoed by cat\ncat-ended\n", "stdout: {:?}", received.stdout);
    ensure!(received.stderr == "err hello\n", "stderr: {:?}", received.stderr);
    assert_eq!(bounded("waiting", engine.wait(&id)).await?, Exit::Exited(0));
    drop(client);
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

async fn stdin_kept_open_outlives_the_first_client_and_otherwise_ends_with_it(env: &mut Env) -> anyhow::Result<()> {
    let script = "read first; echo \"first=$first\"; read second; echo \"second=$second\"";
    for (stdin, expected) in [
        (AttachStdin::KeptOpen, "first=one\nsecond=two\n"),
        // The first client's end of input is the container's: its second read finds nothing.
        (AttachStdin::UntilDetach, "first=one\nsecond=\n"),
    ] {
        let id = env.id("stdin");
        let bundle = env.bundle(BundleBuilder::new(["sh", "-c", script]))?;
        let engine = env.engine()?;
        engine.create(&id, &bundle, with_stdin(stdin)).await?;
        let first = bounded("attaching", engine.attach(&id)).await?;
        engine.start(&id).await?;
        let mut received = Received::default();
        bounded("writing", first.write(b"one\n")).await?;
        ensure!(received.until(first.as_ref(), |got| got.stdout.contains("first=one\n")).await?, "{received:?}");
        bounded("closing the input", first.close_input()).await?;
        // The first client still receives output; a second one writes where the stdin is kept.
        let reader = match stdin {
            AttachStdin::KeptOpen => {
                let second = bounded("attaching again", engine.attach(&id)).await?;
                bounded("writing", second.write(b"two\n")).await?;
                second
            }
            _ => first,
        };
        ensure!(!received.until(reader.as_ref(), |_| false).await?, "the attachment never ended");
        ensure!(received.stdout == expected, "{stdin:?}: {:?}", received.stdout);
        assert_eq!(bounded("waiting", engine.wait(&id)).await?, Exit::Exited(0));
        drop(reader);
        engine.delete(&id, DeleteMode::IfStopped).await?;
    }
    Ok(())
}

async fn a_resize_reaches_the_containers_terminal(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("resize");
    // Says its size for every line it reads.
    let script = "while read line; do busybox stty size; done";
    let bundle = env.bundle(BundleBuilder::new(["sh", "-c", script]).terminal())?;
    let engine = env.engine()?;
    engine.run(&id, &bundle, CreateOptions::default()).await?;
    let client = bounded("attaching", engine.attach(&id)).await?;
    bounded("resizing", engine.resize(&id, TerminalSize { rows: 33, cols: 101 })).await?;
    // The resize and the input reach conmon by different ways: ask until the new size shows.
    let mut received = Received::default();
    let mut resized = false;
    for asked in 1..=50 {
        bounded("writing", client.write(b"size\n")).await?;
        let answers = |got: &Received| got.stdout.matches('\n').count() >= 2 * asked;
        ensure!(received.until(client.as_ref(), answers).await?, "the attachment ended: {received:?}");
        if received.stdout.contains("33 101") {
            resized = true;
            break;
        }
    }
    ensure!(resized, "stty never said 33 101: {:?}", received.stdout);
    ensure!(received.stderr.is_empty(), "a terminal's output is all stdout: {:?}", received.stderr);
    engine.kill(&id, Signal::KILL, KillScope::Init).await?;
    assert_eq!(bounded("waiting", engine.wait(&id)).await?, Exit::Signaled(Signal::KILL));
    drop(client);
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

async fn a_followed_log_yields_lines_as_they_come_and_ends_at_exit(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("follow");
    let script = "echo one; read line; echo two; echo three >&2";
    let bundle = env.bundle(BundleBuilder::new(["sh", "-c", script]))?;
    let engine = env.engine()?;
    engine.run(&id, &bundle, with_stdin(AttachStdin::UntilDetach)).await?;
    let mut follow = engine.logs(&id, LogOptions { follow: true }).await?;
    // The container waits for its input: this line came while it ran.
    let first = bounded("following", follow.next_line()).await?.context("the log ended early")?;
    ensure!((first.stream, first.text.as_slice()) == (OutputStream::Stdout, &b"one"[..]), "{first:?}");
    ensure!(engine.status(&id).await?.exit.is_none(), "the container ended before it was given input");
    let client = bounded("attaching", engine.attach(&id)).await?;
    bounded("writing", client.write(b"go\n")).await?;
    let rest: Vec<(OutputStream, Vec<u8>)> =
        lines(follow).await?.into_iter().map(|line| (line.stream, line.text)).collect();
    ensure!(
        rest == vec![(OutputStream::Stdout, b"two".to_vec()), (OutputStream::Stderr, b"three".to_vec())],
        "{rest:?}"
    );
    assert_eq!(bounded("waiting", engine.wait(&id)).await?, Exit::Exited(0));
    drop(client);
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

async fn a_reopened_log_starts_a_new_file_and_the_moved_one_keeps_what_it_had(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("reopen");
    let script = "echo before; read line; echo after";
    let bundle = env.bundle(BundleBuilder::new(["sh", "-c", script]))?;
    let engine = env.engine()?;
    engine.run(&id, &bundle, with_stdin(AttachStdin::UntilDetach)).await?;
    let mut follow = engine.logs(&id, LogOptions { follow: true }).await?;
    bounded("following", follow.next_line()).await?.context("no first line")?;
    drop(follow);
    let log = ConmonMonitor::log_file(&engine.state_root().files(&id));
    let moved = log.with_extension("log.1");
    std::fs::rename(&log, &moved)?;
    bounded("reopening", engine.reopen_log(&id)).await?;
    // The reopen and the input reach conmon by different ways: the input goes once the new
    // file is there.
    let deadline = Instant::now() + STEP;
    while !log.exists() {
        ensure!(Instant::now() < deadline, "conmon made no new log within {STEP:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let client = bounded("attaching", engine.attach(&id)).await?;
    bounded("writing", client.write(b"go\n")).await?;
    assert_eq!(bounded("waiting", engine.wait(&id)).await?, Exit::Exited(0));
    drop(client);
    let (old, new) = (std::fs::read_to_string(&moved)?, std::fs::read_to_string(&log)?);
    std::fs::remove_file(&moved)?;
    let texts = |log: &str| {
        log.lines().map(|line| line.splitn(4, ' ').skip(1).collect::<Vec<_>>().join(" ")).collect::<Vec<_>>()
    };
    ensure!(texts(&old) == ["stdout F before"], "the moved log: {old:?}");
    ensure!(texts(&new) == ["stdout F after"], "the new log: {new:?}");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

async fn passed_through_output_has_no_attach_socket_to_reach(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("passthrough");
    let bundle = env.bundle(BundleBuilder::new(["sleep", "100"]).host_pid_namespace())?;
    let engine = env.engine()?;
    let options = CreateOptions {
        monitor_stdio: MonitorStdio { log: LogDriver::Passthrough, ..MonitorStdio::default() },
        ..CreateOptions::default()
    };
    engine.run(&id, &bundle, options).await?;
    for (operation, refused) in [
        ("attach", engine.attach(&id).await.map(drop)),
        ("resize", engine.resize(&id, TerminalSize { rows: 24, cols: 80 }).await),
        ("logs", engine.logs(&id, LogOptions::default()).await.map(drop)),
    ] {
        ensure!(
            matches!(&refused, Err(Error::Unsupported { feature, .. }) if feature == operation),
            "{operation}: {refused:?}"
        );
    }
    engine.kill(&id, Signal::KILL, KillScope::Init).await?;
    assert_eq!(bounded("waiting", engine.wait(&id)).await?, Exit::Signaled(Signal::KILL));
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

async fn journald_output_is_accepted_by_conmon_and_not_read_back(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("journald");
    let bundle = env.bundle(BundleBuilder::new(["sh", "-c", "echo to-the-journal; exit 3"]))?;
    let engine = env.engine()?;
    let options = CreateOptions {
        monitor_stdio: MonitorStdio { log: LogDriver::Journald { tag: None }, ..MonitorStdio::default() },
        ..CreateOptions::default()
    };
    engine.run(&id, &bundle, options).await?;
    assert_eq!(bounded("waiting", engine.wait(&id)).await?, Exit::Exited(3));
    let logs = engine.logs(&id, LogOptions::default()).await.map(drop);
    ensure!(matches!(&logs, Err(Error::Unsupported { feature, .. }) if feature == "logs"), "{logs:?}");
    let log = ConmonMonitor::log_file(&engine.state_root().files(&id));
    ensure!(!log.exists(), "a k8s-file log was written too: {}", log.display());
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

async fn the_direct_monitor_refuses_a_k8s_file_log_and_attach_and_runs_nothing(env: &mut Env) -> anyhow::Result<()> {
    let id = env.id("direct");
    let bundle = env.bundle(BundleBuilder::new(["sleep", "100"]))?;
    let root = StateRoot::open(env.engine_root.path().join("state"))?;
    let engine = Engine::new(env.backend.clone(), Arc::new(DirectMonitor::default()), root);
    let k8s_file = CreateOptions {
        monitor_stdio: MonitorStdio { log: LogDriver::K8sFile { path: None, max_size: None }, ..Default::default() },
        ..CreateOptions::default()
    };
    let refused = engine.create(&id, &bundle, k8s_file).await;
    match &refused {
        Err(Error::Unsupported { backend, feature, .. }) => {
            ensure!(backend == "the direct monitor" && feature == "LogDriver::K8sFile", "{refused:?}");
        }
        other => bail!("expected Unsupported, got {other:?}"),
    }
    let attach = engine.attach(&id).await.map(drop);
    ensure!(
        matches!(&attach, Err(Error::Unsupported { backend, feature, .. }) if backend == "the direct monitor" && feature == "attach"),
        "{attach:?}"
    );
    ensure!(env.backend.list().await?.is_empty(), "the runtime made a container");
    Ok(())
}

type Case = fn(&mut Env) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + '_>>;

fn cases() -> Vec<(&'static str, Case)> {
    vec![
        ("lines_land_in_the_log_by_stream", |env| Box::pin(lines_land_in_the_log_by_stream_and_long_ones_whole(env))),
        ("a_bounded_log_stays_within_its_bound", |env| {
            Box::pin(a_bounded_log_at_the_callers_path_stays_within_its_bound(env))
        }),
        ("an_attached_client_reads_and_writes_live", |env| {
            Box::pin(an_attached_client_reads_live_and_writes_stdin_through_a_long_bundle_path(env))
        }),
        ("stdin_kept_open_outlives_a_client", |env| {
            Box::pin(stdin_kept_open_outlives_the_first_client_and_otherwise_ends_with_it(env))
        }),
        ("a_resize_reaches_the_terminal", |env| Box::pin(a_resize_reaches_the_containers_terminal(env))),
        ("a_followed_log_ends_at_exit", |env| Box::pin(a_followed_log_yields_lines_as_they_come_and_ends_at_exit(env))),
        ("a_reopened_log_starts_a_new_file", |env| {
            Box::pin(a_reopened_log_starts_a_new_file_and_the_moved_one_keeps_what_it_had(env))
        }),
        ("passthrough_has_no_attach", |env| Box::pin(passed_through_output_has_no_attach_socket_to_reach(env))),
        ("journald_is_not_read_back", |env| Box::pin(journald_output_is_accepted_by_conmon_and_not_read_back(env))),
        ("the_direct_monitor_refuses", |env| {
            Box::pin(the_direct_monitor_refuses_a_k8s_file_log_and_attach_and_runs_nothing(env))
        }),
    ]
}

async fn run_case(family: Arc<dyn RuntimeFamily>, conmon: RealRuntime, runtime: RealRuntime, case: Case) -> CaseResult {
    let mut env = Env::new(family, runtime, conmon.binary).await?;
    let outcome = case(&mut env).await;
    if outcome.is_err() {
        env.clean_up().await;
    }
    let leftovers = env.check_nothing_left().await;
    outcome?;
    leftovers.context("the case left something behind")?;
    Ok(Ran::Passed)
}

fn families() -> Vec<Arc<dyn RuntimeFamily>> {
    vec![Arc::new(Runc), Arc::new(Crun::default()), Arc::new(Youki)]
}

fn main() -> ExitCode {
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
