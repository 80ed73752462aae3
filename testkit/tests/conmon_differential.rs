//! The fake conmon held to the real one: the same `ConmonMonitor` requests, through an engine
//! over the real runc, once through real conmon and once through `fake-conmon`, must be seen to
//! end alike: what `--version` prints (the monitor refuses a conmon whose version it cannot
//! read), the sync answer (the pid the create returns, the pid files), who holds the
//! container (conmon's pid, session and the init's parent), the nodes made in the bundle and the
//! files in the persist and socket directories, what a client attached before start reads,
//! the exit files for `exit 7`, a SIGKILL and a
//! real-time signal, the log's streams, tags, texts and timestamp shape, a terminal's log, a
//! bounded log, the other log drivers (`none`, `passthrough`), a create the runtime refuses, and
//! background execs (`-e`): the pid answered, who holds the exec'd process, the exec's files,
//! log and exit files, an exec with a terminal (its directory with the attach socket and fifos,
//! its log, its exit), and a `-T` that expires (the process killed, `-1` recorded), and a
//! restore (`--restore`, `--runtime-opt`): who holds the restored init, what it goes on
//! doing, its exit after a SIGKILL; and an exit command with its delay beside descriptors
//! preserved as fds 3 and 4 (what the container read, when the command ran and with what, how
//! long conmon lives). Runs when the gate
//! opens for `conmon` and `runc`. The expected values are whatever real conmon does; a
//! difference is a bug in the fake, which the hermetic tests of `ConmonMonitor` trust.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use backend_runc::Runc;
use conmon_driver::ConmonMonitor;
use runtime_core::{
    CliBackend, ContainerCheckpointOptions, ContainerId, ContainerRestoreOptions, ContainerStdio, CreateOptions,
    DeleteMode, Engine, Error, ExecOptions, ExecSession, ExecStdio, Existence, ExitCommand, KillScope, LogDriver,
    MonitorStdio, OciBackend, RuntimeConfig, RuntimeFamily, Signal, StateRoot,
};
use testkit::bundle::{Bundle, BundleBuilder, Rootfs};
use testkit::fake::FakeConmon;
use testkit::gate::{self, Gate, RealRuntime};
use testkit::harness::{CaseResult, Ran};

/// What was seen, by name, in the order seen.
type Seen = Vec<(String, String)>;

/// One side of the comparison: a conmon, the real runc with its own root, an engine state root.
struct Side {
    conmon: PathBuf,
    backend: Arc<CliBackend>,
    _runtime_root: tempfile::TempDir,
    state: tempfile::TempDir,
    bundles: Vec<Bundle>,
    ids: Vec<ContainerId>,
}

impl Side {
    async fn new(conmon: PathBuf, runc: &Path) -> anyhow::Result<Self> {
        let runtime_root = tempfile::Builder::new().prefix("runc-root-").tempdir()?;
        let config = RuntimeConfig::default().binary(runc).root(runtime_root.path());
        let backend = Arc::new(CliBackend::connect(Arc::new(Runc), config).await?);
        let state = tempfile::Builder::new().prefix("engine-root-").tempdir()?;
        Ok(Side { conmon, backend, _runtime_root: runtime_root, state, bundles: Vec::new(), ids: Vec::new() })
    }

    fn engine(&self) -> anyhow::Result<Engine> {
        let root = StateRoot::open(self.state.path().join("state"))?;
        Ok(Engine::new(self.backend.clone(), Arc::new(ConmonMonitor::new(&self.conmon)), root))
    }

    fn id(&mut self, what: &str) -> ContainerId {
        // The same ids on both sides (each has its own runtime root), so that listings compare.
        let id = ContainerId::new(format!("{what}-{}-{}", std::process::id(), self.ids.len())).unwrap();
        self.ids.push(id.clone());
        id
    }

    fn bundle(&mut self, args: &[&str]) -> anyhow::Result<PathBuf> {
        self.bundle_of(BundleBuilder::new(args.iter().copied()))
    }

    fn bundle_of(&mut self, builder: BundleBuilder) -> anyhow::Result<PathBuf> {
        let bundle = builder.rootfs(Rootfs::Busybox).build()?;
        let path = bundle.path().to_path_buf();
        self.bundles.push(bundle);
        Ok(path)
    }

    fn container_dir(&self, id: &ContainerId) -> PathBuf {
        self.state.path().join("state/containers").join(id.as_str())
    }

    fn exit_file(&self, id: &ContainerId) -> PathBuf {
        self.state.path().join("state/exits").join(id.as_str())
    }

    /// Removes whatever a failed case left in the runtime.
    async fn clean_up(&self) {
        for id in &self.ids {
            let _ = self.backend.delete(id, DeleteMode::Force).await;
        }
    }
}

/// A wait that fails the case instead of hanging it.
async fn waited(engine: &Engine, id: &ContainerId) -> anyhow::Result<runtime_core::Exit> {
    let bound = Duration::from_secs(30);
    Ok(tokio::time::timeout(bound, engine.wait(id)).await.with_context(|| format!("no exit within {bound:?}"))??)
}

/// Fields of `/proc/<pid>/stat` after the command name: state, ppid, pgrp, session...
fn stat_fields(pid: i32) -> anyhow::Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("no process {pid}"))?;
    let (_, rest) = stat.rsplit_once(')').context("a stat line")?;
    Ok(rest.split_whitespace().map(str::to_owned).collect())
}

fn read_pid(path: &Path) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.trim().parse().with_context(|| format!("{} holds {text:?}", path.display()))
}

/// The entries of `dir`, sorted, each with its kind (and a link's target, told apart as the
/// bundle or not).
fn listing(dir: &Path, bundle: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else { return "(no directory)".into() };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = match entry.file_type() {
                Ok(kind) if kind.is_symlink() => match std::fs::read_link(entry.path()) {
                    Ok(target) if target == bundle => "link to the bundle",
                    _ => "link elsewhere",
                },
                Ok(kind) if kind.is_dir() => "dir",
                Ok(kind) if kind.is_fifo() => "fifo",
                Ok(kind) if kind.is_socket() => "socket",
                Ok(_) => "file",
                Err(_) => "?",
            };
            format!("{name} ({kind})")
        })
        .collect();
    names.sort();
    names.join(", ")
}

/// The log's records as (stream, tag, text), sorted (the two streams interleave as they come),
/// and the shapes of its timestamps with every digit a `9`.
fn log_records(path: &Path) -> anyhow::Result<(String, String)> {
    let log = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut records = Vec::new();
    let mut shapes = std::collections::BTreeSet::new();
    for line in log.lines() {
        let fields: Vec<&str> = line.splitn(4, ' ').collect();
        ensure!(fields.len() == 4, "a log line of fewer than four fields: {line:?}");
        shapes.insert(fields[0].chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect::<String>());
        records.push(format!("{} {} {}", fields[1], fields[2], fields[3]));
    }
    records.sort();
    Ok((records.join(" | "), shapes.into_iter().collect::<Vec<_>>().join(" ")))
}

/// A container that prints on both streams and exits 7, seen from creation to deletion.
async fn exit_7(side: &mut Side, seen: &mut Seen) -> anyhow::Result<()> {
    let id = side.id("seven");
    let bundle = side.bundle(&["sh", "-c", "echo to-out; echo to-err >&2; printf unfinished; exit 7"])?;
    let engine = side.engine()?;
    let mut see = |what: &str, value: String| seen.push((what.to_owned(), value));
    let created = engine.create(&id, &bundle, CreateOptions::default()).await?;
    let dir = side.container_dir(&id);
    let init = read_pid(&dir.join("pidfile"))?;
    see("the pid file holds the answered pid", (u32::try_from(init)? == created.pid).to_string());
    let conmon = read_pid(&dir.join("conmon.pid"))?;
    let conmon_stat = stat_fields(conmon)?;
    let me = std::process::id().to_string();
    see("conmon is not the caller's child", (conmon_stat[1] != me).to_string());
    see("conmon leads its own session", (conmon_stat[3] == conmon.to_string()).to_string());
    let cmdline = std::fs::read(format!("/proc/{conmon}/cmdline"))?;
    let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
    let names_the_container = args.windows(2).any(|pair| pair[0] == b"-c" && pair[1] == id.as_str().as_bytes());
    see("conmon's command line names the container after -c", names_the_container.to_string());
    see("the init's parent is conmon", (stat_fields(init)?[1] == conmon.to_string()).to_string());
    see("the bundle while it runs", listing(&bundle, &bundle));
    see("the persist dir while it runs", listing(&dir, &bundle));
    see("the socket dir while it runs", listing(&dir.join("sockets"), &bundle));
    engine.start(&id).await?;
    see("the exit", format!("{:?}", waited(&engine, &id).await?));
    // conmon writes its files and then ends; the engine's wait may see the exit file first.
    let conmon_process = testkit::procs::Tracked::capture(u32::try_from(conmon)?);
    ensure!(conmon_process.wait_gone(Duration::from_secs(10)), "conmon {conmon} outlived its container");
    see("the exit file", std::fs::read_to_string(side.exit_file(&id))?);
    see("the persist dir's exit file", std::fs::read_to_string(dir.join("exit"))?);
    see("the persist dir after the exit", listing(&dir, &bundle));
    see("the socket dir after the exit", listing(&dir.join("sockets"), &bundle));
    see("the bundle after the exit", listing(&bundle, &bundle));
    let (records, shapes) = log_records(&dir.join("ctr.log"))?;
    see("the log's records", records);
    see("the log's timestamps", shapes);
    engine.delete(&id, DeleteMode::IfStopped).await?;
    see("the persist dir after delete", listing(&dir, &bundle));
    see("the bundle after delete", listing(&bundle, &bundle));
    Ok(())
}

/// What a client attached between create and start reads, packet by packet, until the socket
/// closes.
async fn attached(side: &mut Side, seen: &mut Seen) -> anyhow::Result<()> {
    let id = side.id("attached");
    let bundle = side.bundle(&["sh", "-c", "echo to-out; echo to-err >&2; exit 3"])?;
    let engine = side.engine()?;
    engine.create(&id, &bundle, CreateOptions::default()).await?;
    let attached = engine.attach(&id).await?;
    engine.start(&id).await?;
    let mut packets = Vec::new();
    let reading = async {
        while let Some(chunk) = attached.read().await? {
            packets.push(format!("{:?} {:?}", chunk.stream, String::from_utf8_lossy(&chunk.bytes)));
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(30), reading).await.context("the attach socket never closed")??;
    // The two streams are separate pipes: their order between them is nobody's to keep.
    packets.sort();
    seen.push(("what an attached client reads until the socket closes".into(), packets.join(" | ")));
    seen.push(("the attached container's exit".into(), format!("{:?}", waited(&engine, &id).await?)));
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

/// A container killed by SIGKILL.
async fn killed(side: &mut Side, seen: &mut Seen) -> anyhow::Result<()> {
    let id = side.id("killed");
    let bundle = side.bundle(&["sleep", "100"])?;
    let engine = side.engine()?;
    engine.run(&id, &bundle, CreateOptions::default()).await?;
    engine.kill(&id, Signal::KILL, KillScope::Init).await?;
    seen.push(("a SIGKILL's exit".into(), format!("{:?}", waited(&engine, &id).await?)));
    seen.push(("a SIGKILL's exit file".into(), std::fs::read_to_string(side.exit_file(&id))?));
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

/// A container that dies of a real-time signal, SIGRTMIN+3 (37 with glibc), which it sends
/// itself: in the host's pid namespace, where the signal's default action applies to it.
async fn real_time_signal(side: &mut Side, seen: &mut Seen) -> anyhow::Result<()> {
    let id = side.id("rt-signal");
    let bundle = side.bundle_of(BundleBuilder::new(["sh", "-c", "kill -37 $$; sleep 100"]).host_pid_namespace())?;
    let engine = side.engine()?;
    engine.run(&id, &bundle, CreateOptions::default()).await?;
    seen.push(("a real-time signal's exit".into(), format!("{:?}", waited(&engine, &id).await?)));
    seen.push(("a real-time signal's exit file".into(), std::fs::read_to_string(side.exit_file(&id))?));
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

/// The directory conmon was given for a background exec.
fn exec_dir(side: &Side, session: &ExecSession) -> PathBuf {
    side.container_dir(&session.id).join("execs").join(&session.exec_id)
}

/// The text of the exec's exit file once conmon wrote it (the engine's wait removes it).
async fn exec_exit_file(side: &Side, session: &ExecSession) -> anyhow::Result<String> {
    let path = exec_dir(side, session).join("exits").join(session.id.as_str());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Ok(text);
        }
        ensure!(std::time::Instant::now() < deadline, "no exit file {} within 30s", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `pid`'s command line comes to hold `script` within a few seconds. The runtime writes
/// the exec's pid once its process is started, which may be before that process has replaced
/// the runtime's own code (`runc init`) with the exec'd program: a pid that names another
/// process never does.
async fn becomes_the_process_of(pid: u32, script: &str) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.windows(script.len()).any(|w| w == script.as_bytes()) {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Background execs into a running container: one that prints on both streams and exits 5,
/// and one that `-T` ends.
async fn execs(side: &mut Side, seen: &mut Seen) -> anyhow::Result<()> {
    let id = side.id("execs");
    let bundle = side.bundle(&["sleep", "100"])?;
    let engine = side.engine()?;
    engine.run(&id, &bundle, CreateOptions::default()).await?;
    let mut see = |what: &str, value: String| seen.push((format!("exec: {what}"), value));
    let wired = || ExecOptions { stdio: ExecStdio::Wired(ContainerStdio::Null), ..ExecOptions::default() };
    let script = "echo to-out; echo to-err >&2; sleep 1; exit 5";
    let session = engine.exec_detached(&id, &runtime_core::process(["sh", "-c", script]), wired()).await?;
    let dir = exec_dir(side, &session);
    see("the answered pid is the exec'd shell", becomes_the_process_of(session.pid, script).await.to_string());
    see(
        "the pid file holds the answered pid",
        (u32::try_from(read_pid(&dir.join("pidfile"))?)? == session.pid).to_string(),
    );
    let conmon = read_pid(&dir.join("conmon.pid"))?;
    see(
        "the exec'd process's parent is its conmon",
        (stat_fields(i32::try_from(session.pid)?)?[1] == conmon.to_string()).to_string(),
    );
    see("the exec's directory while it runs", listing(&dir, &bundle));
    see("the exit file", exec_exit_file(side, &session).await?);
    let conmon_process = testkit::procs::Tracked::capture(u32::try_from(conmon)?);
    ensure!(conmon_process.wait_gone(Duration::from_secs(10)), "the exec's conmon {conmon} outlived it");
    see("the persist dir's exit file", std::fs::read_to_string(dir.join("exit"))?);
    see("the exec's directory after it ended", listing(&dir, &bundle));
    let (records, _) = log_records(&dir.join("exec.log"))?;
    see("the exec's log", records);
    see("the wait", format!("{:?}", engine.wait_exec(&session).await?));

    let tty = ExecOptions { tty: true, ..wired() };
    let script = "test -t 0 && test -t 1 && echo is-a-tty; sleep 1; exit 3";
    let session = engine.exec_detached(&id, &runtime_core::process(["sh", "-c", script]), tty).await?;
    let dir = exec_dir(side, &session);
    see("a terminal exec's directory while it runs", listing(&dir, &bundle));
    see("a terminal exec's exit file", exec_exit_file(side, &session).await?);
    let conmon = read_pid(&dir.join("conmon.pid"))?;
    let conmon_process = testkit::procs::Tracked::capture(u32::try_from(conmon)?);
    ensure!(conmon_process.wait_gone(Duration::from_secs(10)), "the terminal exec's conmon {conmon} outlived it");
    see("a terminal exec's directory after it ended", listing(&dir, &bundle));
    let (records, _) = log_records(&dir.join("exec.log"))?;
    see("a terminal exec's log", records);
    see("a terminal exec's wait", format!("{:?}", engine.wait_exec(&session).await?));

    let timed = ExecOptions { timeout: Some(Duration::from_secs(1)), ..wired() };
    let session = engine.exec_detached(&id, &runtime_core::process(["sleep", "100"]), timed).await?;
    let process = testkit::procs::Tracked::capture(session.pid);
    see("-T's exit file", exec_exit_file(side, &session).await?);
    let ended = match engine.wait_exec(&session).await {
        Err(Error::Timeout { after, .. }) => format!("Timeout after {after:?}"),
        other => format!("{other:?}"),
    };
    see("the wait after -T", ended);
    // Real conmon may write the exit file while the process it SIGKILLed is still going (seen
    // under load); the process never outlives the wait.
    see("the process -T ended is gone once the wait returns", (!process.alive()).to_string());
    engine.delete(&id, DeleteMode::Force).await?;
    Ok(())
}

/// A counting container checkpointed and restored through conmon: who holds the restored init,
/// whether it counts on from where it was dumped, and its exit after a SIGKILL.
async fn restored(side: &mut Side, seen: &mut Seen) -> anyhow::Result<()> {
    let id = side.id("restored");
    let bundle = side.bundle(&["sh", "-c", testkit::counter::COUNTER])?;
    let count = || testkit::counter::count_in(&bundle.join("rootfs"));
    let engine = side.engine()?;
    engine.run(&id, &bundle, CreateOptions::default()).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    // Far enough that a counter started over (from 1) stays below the dump for a second.
    while count().unwrap_or(0) < 10 {
        ensure!(std::time::Instant::now() < deadline, "the container did not count to 10");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.checkpoint(&id, ContainerCheckpointOptions::default()).await.context("checkpoint")?;
    let dumped = count()?;
    let report = engine.restore(&id, &bundle, ContainerRestoreOptions::default()).await.context("restore")?;
    let dir = side.container_dir(&id);
    let mut see = |what: &str, value: String| seen.push((format!("restore: {what}"), value));
    see(
        "the pid file holds the answered pid",
        (u32::try_from(read_pid(&dir.join("pidfile"))?)? == report.pid).to_string(),
    );
    // conmon gives the runtime `--work-path <bundle>`, and the backend's own after it, which
    // wins: CRIU's restore log is not left in the bundle.
    see("the bundle after the restore", listing(&bundle, &bundle));
    let conmon = read_pid(&dir.join("conmon.pid"))?;
    see(
        "the restored init's parent is conmon",
        (stat_fields(i32::try_from(report.pid)?)?[1] == conmon.to_string()).to_string(),
    );
    while count()? == dumped {
        ensure!(std::time::Instant::now() < deadline + Duration::from_secs(15), "no count after the restore");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Above the dump: restored memory goes on from it (the next count, or a later one when
    // this poll came late), where a counter started over would write 1.
    see("the count goes on from the dump", (count()? > dumped).to_string());
    engine.kill(&id, Signal::KILL, KillScope::Init).await?;
    see("a SIGKILL's exit", format!("{:?}", waited(&engine, &id).await?));
    see("the exit file", std::fs::read_to_string(side.exit_file(&id))?);
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

/// A container with a terminal, and one whose log is bounded: what each log keeps.
async fn terminal_and_bounded_log(side: &mut Side, seen: &mut Seen) -> anyhow::Result<()> {
    let id = side.id("tty");
    let bundle = side.bundle_of(BundleBuilder::new(["sh", "-c", "test -t 1 && echo is-a-tty; exit 4"]).terminal())?;
    let engine = side.engine()?;
    engine.run(&id, &bundle, CreateOptions::default()).await?;
    seen.push(("a terminal container's exit".into(), format!("{:?}", waited(&engine, &id).await?)));
    let (records, _) = log_records(&side.container_dir(&id).join("ctr.log"))?;
    seen.push(("a terminal container's log".into(), records));
    engine.delete(&id, DeleteMode::IfStopped).await?;

    let id = side.id("bounded");
    let bundle = side.bundle(&["sh", "-c", "for n in 1 2 3 4 5 6; do echo line-$n; done"])?;
    let engine = side.engine()?;
    let log = LogDriver::K8sFile { path: None, max_size: Some(200) };
    engine.run(&id, &bundle, logging_to(log)).await?;
    waited(&engine, &id).await?;
    let (records, _) = log_records(&side.container_dir(&id).join("ctr.log"))?;
    seen.push(("a log bounded to 200 bytes".into(), records));
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

/// Create options that keep the container's output as `log` says.
fn logging_to(log: LogDriver) -> CreateOptions {
    CreateOptions { monitor_stdio: MonitorStdio { log, ..MonitorStdio::default() }, ..CreateOptions::default() }
}

/// A container under each other log driver: what is made, and where its output goes.
async fn other_log_drivers(side: &mut Side, seen: &mut Seen) -> anyhow::Result<()> {
    for (name, driver) in [("none", LogDriver::None), ("passthrough", LogDriver::Passthrough)] {
        let id = side.id(name);
        let bundle = side.bundle(&["sh", "-c", "echo to-out; echo to-err >&2; exit 5"])?;
        let engine = side.engine()?;
        engine.create(&id, &bundle, logging_to(driver)).await?;
        let dir = side.container_dir(&id);
        let mut see = |what: &str, value: String| seen.push((format!("log driver {name}: {what}"), value));
        see("the bundle while it runs", listing(&bundle, &bundle));
        see("the persist dir while it runs", listing(&dir, &bundle));
        engine.start(&id).await?;
        see("the exit", format!("{:?}", waited(&engine, &id).await?));
        let conmon = testkit::procs::Tracked::capture(u32::try_from(read_pid(&dir.join("conmon.pid"))?)?);
        ensure!(conmon.wait_gone(Duration::from_secs(10)), "conmon outlived its container");
        // conmon's own stderr holds its warnings too, which the fake does not imitate.
        let stderr = std::fs::read_to_string(dir.join("conmon.stderr")).unwrap_or_default();
        see("the container's stderr is in conmon's", stderr.contains("to-err").to_string());
        see("the persist dir after the exit", listing(&dir, &bundle));
        engine.delete(&id, DeleteMode::IfStopped).await?;
    }
    let id = side.id("passthrough-tty");
    let bundle = side.bundle_of(BundleBuilder::new(["sh", "-c", "exit 6"]).terminal())?;
    let engine = side.engine()?;
    engine.run(&id, &bundle, logging_to(LogDriver::Passthrough)).await?;
    let exit = waited(&engine, &id).await?;
    seen.push(("a terminal with passthrough logging: the exit".into(), format!("{exit:?}")));
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

/// A create the runtime refuses: the id is taken in its root, by a container another engine
/// made.
async fn refused(side: &mut Side, seen: &mut Seen) -> anyhow::Result<()> {
    let id = side.id("taken");
    let bundle = side.bundle(&["sleep", "100"])?;
    side.engine()?.create(&id, &bundle, CreateOptions::default()).await?;
    let other_state = tempfile::Builder::new().prefix("engine-root-").tempdir()?;
    let other = Engine::new(
        side.backend.clone(),
        Arc::new(ConmonMonitor::new(&side.conmon)),
        StateRoot::open(other_state.path().join("state"))?,
    );
    let refusal = match other.create(&id, &bundle, CreateOptions::default()).await {
        Ok(created) => bail!("a second create of {id} succeeded: {created:?}"),
        Err(Error::AlreadyExists { evidence: Existence::Refused(failure), .. }) => {
            // What conmon relayed of runc's stderr, its digits (the time) made alike.
            let words: String = failure.message.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect();
            format!("AlreadyExists, relayed {words:?}, status {:?}", failure.status)
        }
        Err(other) => format!("{other}"),
    };
    seen.push(("a taken id".into(), refusal));
    side.engine()?.delete(&id, DeleteMode::Force).await?;
    Ok(())
}

/// A container reading the descriptors it was given as fds 3 and 4 into its log, with an exit
/// command run a second after its exit: what it read, whether the command ran at once, whether
/// conmon waits for it, what it was given and whether the exit was recorded when it ran.
async fn exit_command_and_preserved_fds(side: &mut Side, seen: &mut Seen) -> anyhow::Result<()> {
    use std::io::Write;
    let id = side.id("exitcmd");
    let bundle = side.bundle(&["sh", "-c", "cat <&3; cat <&4"])?;
    let out = tempfile::tempdir()?;
    let report = out.path().join("report");
    let script = r#"{ if [ -e "$1" ]; then echo recorded; else echo unrecorded; fi; shift; printf '%s\n' "$@"; } > "$0.tmp"
        mv "$0.tmp" "$0""#;
    let exit_file = side.exit_file(&id);
    let args = ["-c", script, &report.to_string_lossy(), &exit_file.to_string_lossy(), "cleanup", id.as_str()]
        .into_iter()
        .map(Into::into)
        .collect();
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    std::fs::File::from(write).write_all(b"through fd 3\n")?;
    let fd4 = out.path().join("fd4");
    std::fs::write(&fd4, "through fd 4\n")?;
    let options = CreateOptions {
        preserve_fds: vec![read, std::fs::File::open(&fd4)?.into()],
        exit_command: Some(ExitCommand { path: "/bin/sh".into(), args, delay_secs: 1 }),
        ..CreateOptions::default()
    };
    let engine = side.engine()?;
    engine.create(&id, &bundle, options).await?;
    let conmon = read_pid(&side.container_dir(&id).join("conmon.pid"))?;
    let conmon_process = testkit::procs::Tracked::capture(u32::try_from(conmon)?);
    engine.start(&id).await?;
    let mut see = |what: &str, value: String| seen.push((what.to_owned(), value));
    see("the exit", format!("{:?}", waited(&engine, &id).await?));
    see("the exit command ran at once", report.exists().to_string());
    see("conmon waits out the delay", (!conmon_process.wait_gone(Duration::ZERO)).to_string());
    see("conmon ends after the exit command", conmon_process.wait_gone(Duration::from_secs(10)).to_string());
    see("the exit command's report", std::fs::read_to_string(&report).unwrap_or_default());
    let modified = |path: &Path| std::fs::metadata(path).and_then(|meta| meta.modified()).ok();
    let after = modified(&report).zip(modified(&exit_file)).and_then(|(ran, exited)| ran.duration_since(exited).ok());
    // The files' times are the kernel's coarse clock: a tick's worth is allowed.
    let waited_out = after.is_some_and(|after| after + Duration::from_millis(20) >= Duration::from_secs(1));
    see("the exit command ran after its delay", waited_out.to_string());
    let (records, _) = log_records(&side.container_dir(&id).join("ctr.log"))?;
    see("what the container read from fds 3 and 4", records);
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}

/// What `conmon --version` prints and how it exits, byte for byte.
async fn version(side: &mut Side, seen: &mut Seen) -> anyhow::Result<()> {
    let output = tokio::process::Command::new(&side.conmon).arg("--version").output().await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    seen.push(("--version".into(), format!("{}, stdout {stdout:?}, stderr {stderr:?}", output.status)));
    Ok(())
}

/// Everything seen through `conmon` over the real `runc`.
async fn observe(name: &'static str, conmon: PathBuf, runc: &Path) -> anyhow::Result<Seen> {
    let mut side = Side::new(conmon, runc).await?;
    let mut seen = Seen::new();
    let outcome = async {
        version(&mut side, &mut seen).await.context("--version")?;
        exit_7(&mut side, &mut seen).await.context("exit 7")?;
        attached(&mut side, &mut seen).await.context("an attached client")?;
        killed(&mut side, &mut seen).await.context("SIGKILL")?;
        real_time_signal(&mut side, &mut seen).await.context("a real-time signal")?;
        terminal_and_bounded_log(&mut side, &mut seen).await.context("terminal and bounded log")?;
        other_log_drivers(&mut side, &mut seen).await.context("other log drivers")?;
        refused(&mut side, &mut seen).await.context("a taken id")?;
        execs(&mut side, &mut seen).await.context("background execs")?;
        restored(&mut side, &mut seen).await.context("a restore")?;
        exit_command_and_preserved_fds(&mut side, &mut seen).await.context("an exit command and preserved fds")
    }
    .await;
    if outcome.is_err() {
        side.clean_up().await;
    }
    outcome.with_context(|| format!("through {name} conmon"))?;
    let listed = side.backend.list().await?;
    ensure!(listed.is_empty(), "containers left in the runtime: {listed:?}");
    for id in &side.ids {
        let live = testkit::procs::live_with_argument(std::ffi::OsStr::new(id.as_str()));
        ensure!(live.is_empty(), "processes naming {id} are left through {name} conmon: {live:?}");
    }
    Ok(seen)
}

async fn fake_conmon_ends_as_real_conmon_does(conmon: RealRuntime) -> CaseResult {
    let runc = match gate::real_runtime("runc", &Runc.host_checks()) {
        Gate::Open(runc) => runc,
        Gate::Skip(reason) => return Ok(Ran::Skipped(reason)),
        Gate::Fail(reason) => bail!("{reason}"),
    };
    let fake = FakeConmon::with_program(Path::new(env!("CARGO_BIN_EXE_fake-conmon")))?;
    let real_seen = observe("real", conmon.binary, &runc.binary).await?;
    let fake_seen = observe("fake", fake.binary(), &runc.binary).await?;
    let differences: Vec<String> = real_seen
        .iter()
        .zip(&fake_seen)
        .filter(|(real, fake)| real != fake)
        .map(|((what, real), (_, fake))| format!("{what}: conmon {real:?}, fake-conmon {fake:?}"))
        .collect();
    ensure!(real_seen.len() == fake_seen.len(), "seen {real_seen:?} and {fake_seen:?}");
    ensure!(differences.is_empty(), "fake-conmon differs from conmon:\n{}", differences.join("\n"));
    Ok(Ran::Passed)
}

fn main() -> ExitCode {
    testkit::harness::main(|suite| {
        suite.gated("conmon::fake_conmon_ends_as_real_conmon_does", "conmon", Vec::new(), |conmon| {
            fake_conmon_ends_as_real_conmon_does(conmon)
        });
    })
}
