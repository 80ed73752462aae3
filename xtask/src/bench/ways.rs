//! The ways the bench drives a container: the runtime CLI as a script would, the library's
//! `CliBackend`, the `Engine` with its `DirectMonitor` or `ConmonMonitor`, and containerd's
//! `runc` crate (conmon by hand and podman are in [`super::conmon`]).
//!
//! Each way returns the milliseconds it is judged by (the whole sequence, or only the part a
//! latency is about) and leaves nothing behind, failed or not: a container whose sequence did
//! not finish is force-deleted through the raw CLI.
//!
//! The latencies start from moments the bench makes itself, never from what the code under test
//! reports. For exit detection the container runs `read line; exit 3` with its stdin a pipe from
//! the bench: closing the write end is the moment the shell can exit, and the exit code 3 says
//! it ended that way. For stop, the container installs a TERM trap that ends it at once and then
//! says `ready` on a stdout pipe; the signal is sent only after that line arrived, so the trap is
//! in place and the stop never falls back to SIGKILL (the engine's result says which happened).

use std::collections::BTreeMap;
use std::io::{PipeReader, PipeWriter};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use runtime_core::{
    CliBackend, ContainerCheckpointOptions, ContainerId, ContainerRestoreOptions, ContainerStdio, CreateOptions,
    DeleteMode, Engine, Exit, KillScope, OciBackend, Signal, Status, StopOptions,
};
use tokio::io::AsyncBufReadExt;

use super::conmon::{Podman, RawConmon};

/// The container process of the exit-latency workload: ends with status 3 when its stdin closes.
pub(super) const EXIT_ON_EOF: &[&str] = &["sh", "-c", "read line; exit 3"];

/// The exit status [`EXIT_ON_EOF`] ends with.
const EXIT_ON_EOF_STATUS: i32 = 3;

/// The container process of the stop-latency workload: exits 0 at once on TERM (ending its
/// `sleep` first, for runtimes without a pid namespace), after saying `ready` on stdout.
pub(super) const EXIT_ON_TERM: &[&str] = &["sh", "-c", "trap 'kill $!; exit 0' TERM; echo ready; sleep 1000 & wait"];

/// How often `state` (or `/proc`) is looked at while waiting for a container to stop.
pub(super) const POLL: Duration = Duration::from_millis(2);

/// How long a container may take to stop, or to say it is ready, before the iteration fails.
pub(super) const DEADLINE: Duration = Duration::from_secs(10);

pub(super) fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// One run of a way: the milliseconds it is judged by and, when the engine said the container
/// ended otherwise than the workload makes it end, what it said. Such a run is kept and listed
/// rather than failing the bench: its time is still how long the engine took to answer.
#[derive(Debug)]
pub(super) struct Sample {
    pub(super) ms: f64,
    pub(super) unexpected: Option<String>,
}

impl Sample {
    fn expected(ms: f64) -> Self {
        Sample { ms, unexpected: None }
    }

    /// A run of the engine, whose `exit` should have been `expected` (for the reason `why`).
    pub(super) fn judged(ms: f64, exit: Exit, expected: Exit, why: &str) -> Self {
        let unexpected = (exit != expected).then(|| format!("{exit}, where {why}"));
        Sample { ms, unexpected }
    }
}

/// Times `sequence`, whose every run ends as expected.
pub(super) fn timed(sequence: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Sample> {
    let started = Instant::now();
    sequence()?;
    Ok(Sample::expected(millis(started.elapsed())))
}

/// How many times a raw call runs at most while it fails transiently.
const ATTEMPTS: usize = 3;

/// The raw calls run again after a transient failure, counted by the runtime's words they
/// failed with.
#[derive(Debug, Default)]
pub(super) struct Retries(Mutex<BTreeMap<String, usize>>);

impl Retries {
    fn count(&self, words: &str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(words.to_owned()).or_default() += 1;
    }

    /// How many calls were run again so far.
    pub(super) fn total(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).values().sum()
    }

    /// How many calls were run again so far, by the words they failed with.
    pub(super) fn by_words(&self) -> BTreeMap<String, usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A failed attempt of a raw call: what the runtime said (its stderr), and the error.
#[derive(Debug)]
pub(super) struct Failed {
    said: String,
    error: anyhow::Error,
}

impl From<anyhow::Error> for Failed {
    /// A call that could not run at all said nothing.
    fn from(error: anyhow::Error) -> Self {
        Failed { said: String::new(), error }
    }
}

/// Runs `attempt` as a script that knows its runtime's transient failures has to: again while
/// it fails saying one of `transient` (the backend's own list,
/// `RuntimeFamily::transient_failures`), [`ATTEMPTS`] times in all at most, each run again
/// counted in `retries`; any other failure ends it at once, as does the last attempt's.
pub(super) fn retrying<T>(
    transient: &[String],
    retries: &Retries,
    mut attempt: impl FnMut() -> Result<T, Failed>,
) -> anyhow::Result<T> {
    let mut attempts = 1;
    loop {
        let failed = match attempt() {
            Ok(value) => return Ok(value),
            Err(failed) => failed,
        };
        let Some(words) = transient.iter().find(|words| failed.said.contains(words.as_str())) else {
            return Err(failed.error);
        };
        if attempts == ATTEMPTS {
            return Err(failed.error.context(format!("failed transiently {ATTEMPTS} times in a row")));
        }
        retries.count(words);
        attempts += 1;
    }
}

/// The runtime CLI driven directly, as a script would: a call that fails with one of the
/// runtime's transient failures is run again (see [`retrying`]).
#[derive(Debug)]
pub(super) struct Raw {
    pub(super) binary: PathBuf,
    pub(super) root: PathBuf,
    /// Where `create` writes its stderr, a file per container.
    pub(super) stderr_dir: PathBuf,
    /// The runtime's transient failures, in its own words.
    pub(super) transient: Vec<String>,
    /// The calls run again.
    pub(super) retries: Retries,
}

impl Raw {
    pub(super) fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("--root").arg(&self.root).stdin(Stdio::null());
        command
    }

    /// Runs `<rt> --root R args...`, returning its stdout; a failure carries its stderr.
    pub(super) fn call(&self, args: &[&str]) -> anyhow::Result<Vec<u8>> {
        retrying(&self.transient, &self.retries, || {
            let mut command = self.command();
            command.args(args);
            let output = command.output().with_context(|| format!("cannot run {command:?}"))?;
            if !output.status.success() {
                let said = String::from_utf8_lossy(&output.stderr).trim().to_owned();
                return Err(Failed { error: anyhow::anyhow!("{command:?}: {}: {said}", output.status), said });
            }
            Ok(output.stdout)
        })
    }

    /// `create` with the container's stdin and stdout as given (else `/dev/null`). Its stderr
    /// goes to a file (a pipe would stay open as long as the container) where what the runtime
    /// says on a failure is read: when it may be one of the runtime's transient failures, or
    /// when `explain` asks for it; otherwise to `/dev/null`, which, unlike a file of the host
    /// outside the container's mounts, CRIU can checkpoint. The streams are closed here when it
    /// returns, so the container holds the only copies the bench gave away.
    fn create(
        &self,
        id: &str,
        bundle: &Path,
        stdin: Option<PipeReader>,
        stdout: Option<PipeWriter>,
        explain: bool,
    ) -> anyhow::Result<()> {
        let stderr_file =
            (explain || !self.transient.is_empty()).then(|| self.stderr_dir.join(format!("{id}.create-stderr")));
        retrying(&self.transient, &self.retries, || {
            let mut create = self.command();
            create.arg("create").arg("--bundle").arg(bundle).arg(id);
            if let Some(stdin) = &stdin {
                create.stdin(stdin.try_clone().context("duplicating the container's stdin")?);
            }
            match &stdout {
                Some(stdout) => create.stdout(stdout.try_clone().context("duplicating the container's stdout")?),
                None => create.stdout(Stdio::null()),
            };
            match &stderr_file {
                Some(path) => create.stderr(std::fs::File::create(path).context("creating the stderr file")?),
                None => create.stderr(Stdio::null()),
            };
            let status = create.status().with_context(|| format!("cannot run {create:?}"))?;
            if !status.success() {
                let read = |path| std::fs::read_to_string(path).unwrap_or_default();
                let said = stderr_file.as_ref().map(read).unwrap_or_default().trim().to_owned();
                return Err(Failed { error: anyhow::anyhow!("{create:?}: {status}: {said}"), said });
            }
            Ok(())
        })
    }

    /// Asks `state` every [`POLL`] until the container is stopped.
    fn wait_stopped(&self, id: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let stdout = self.call(&["state", id])?;
            let state: serde_json::Value = serde_json::from_slice(&stdout).context("parsing state")?;
            if state["status"] == "stopped" {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{id} not stopped after {DEADLINE:?} (status {})", state["status"]);
            }
            std::thread::sleep(POLL);
        }
    }

    /// create, start, poll `state` until stopped, delete; what `create` says on a failure is
    /// kept when `explain` asks for it.
    pub(super) fn lifecycle(&self, id: &str, bundle: &Path, explain: bool) -> anyhow::Result<()> {
        let leftover = Leftover::new(self, id);
        self.create(id, bundle, None, None, explain)?;
        self.call(&["start", id])?;
        self.wait_stopped(id)?;
        self.call(&["delete", id])?;
        leftover.disarm();
        Ok(())
    }

    /// Runs `<rt> --root R args...` with no stdio at all: a detached restore hands the
    /// runtime's own stdio to the restored process, so a pipe there would never close.
    fn call_detached(&self, args: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
        let mut command = self.command();
        command.args(args).stdout(Stdio::null()).stderr(Stdio::null());
        let status = command.status().with_context(|| format!("cannot run {command:?}"))?;
        if !status.success() {
            bail!("{command:?}: {status}");
        }
        Ok(())
    }

    /// The time `checkpoint` and `restore --detach` of a running container take, one after the
    /// other, with the images in `images`.
    fn checkpoint_restore(&self, id: &str, bundle: &Path, images: &Path) -> anyhow::Result<f64> {
        let leftover = Leftover::new(self, id);
        self.create(id, bundle, None, None, false)?;
        self.call(&["start", id])?;
        let started = Instant::now();
        let image_path = images.as_os_str();
        self.call_detached(&["checkpoint".as_ref(), "--image-path".as_ref(), image_path, id.as_ref()])?;
        let restore = ["restore", "--detach", "--bundle"].map(std::ffi::OsStr::new);
        self.call_detached(
            &[&restore[..], &[bundle.as_os_str(), "--image-path".as_ref(), image_path, id.as_ref()]].concat(),
        )?;
        let elapsed = started.elapsed();
        self.call(&["kill", id, "KILL"])?;
        self.wait_stopped(id)?;
        self.call(&["delete", id])?;
        leftover.disarm();
        std::fs::remove_dir_all(images).context("removing the images")?;
        Ok(millis(elapsed))
    }

    /// The time from closing the container's stdin to `state` saying it stopped.
    fn exit_latency(&self, id: &str, bundle: &Path) -> anyhow::Result<f64> {
        let leftover = Leftover::new(self, id);
        let (stdin, hang_up) = std::io::pipe().context("creating the stdin pipe")?;
        self.create(id, bundle, Some(stdin), None, false)?;
        self.call(&["start", id])?;
        let hung_up = Instant::now();
        drop(hang_up);
        self.wait_stopped(id)?;
        let latency = millis(hung_up.elapsed());
        self.call(&["delete", id])?;
        leftover.disarm();
        Ok(latency)
    }

    /// The time `kill ID TERM` takes to return, and the time from running it to `state` saying
    /// the container stopped.
    fn stop_latency(&self, tokio: &tokio::runtime::Runtime, id: &str, bundle: &Path) -> anyhow::Result<StopTimes> {
        let leftover = Leftover::new(self, id);
        let (ready, says_ready) = std::io::pipe().context("creating the stdout pipe")?;
        self.create(id, bundle, None, Some(says_ready), false)?;
        self.call(&["start", id])?;
        tokio.block_on(until_ready(ready))?;
        let signalled = Instant::now();
        self.call(&["kill", id, "TERM"])?;
        let kill_ms = millis(signalled.elapsed());
        self.wait_stopped(id)?;
        let stopped_ms = millis(signalled.elapsed());
        self.call(&["delete", id])?;
        leftover.disarm();
        Ok(StopTimes { kill_ms, stopped_ms })
    }
}

/// What a raw stop takes: the `kill` call alone, and until `state` says stopped.
struct StopTimes {
    kill_ms: f64,
    stopped_ms: f64,
}

/// Waits until the container says `ready` on the pipe whose read end is `ready`.
async fn until_ready(ready: PipeReader) -> anyhow::Result<()> {
    let receiver = tokio::net::unix::pipe::Receiver::from_owned_fd(ready.into()).context("registering the pipe")?;
    let (mut reader, mut line) = (tokio::io::BufReader::new(receiver), String::new());
    tokio::time::timeout(DEADLINE, reader.read_line(&mut line))
        .await
        .with_context(|| format!("the container did not say ready within {DEADLINE:?}"))?
        .context("reading the container's stdout")?;
    if line != "ready\n" {
        bail!("the container said {line:?} instead of ready");
    }
    Ok(())
}

/// Force-deletes a container whose sequence did not finish, so none outlives the bench.
pub(super) struct Leftover<'a> {
    raw: &'a Raw,
    id: &'a str,
    armed: bool,
}

impl<'a> Leftover<'a> {
    pub(super) fn new(raw: &'a Raw, id: &'a str) -> Self {
        Leftover { raw, id, armed: true }
    }

    pub(super) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Leftover<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Nothing to do if it fails: the container may never have been created.
            let _ = self.raw.call(&["delete", "--force", self.id]);
        }
    }
}

/// Whether a `/proc/<pid>/stat` line (or its absence) says the process has exited: gone, or a
/// zombie (`Z`) or dead (`X`) nobody reaped yet. The state follows the last `)`, since the
/// command name in parentheses may hold anything.
pub(super) fn exited_per_stat(stat: Option<&str>) -> bool {
    let Some(stat) = stat else { return true };
    let state = stat.rfind(')').and_then(|end| stat[end + 1..].split_whitespace().next());
    matches!(state, Some("Z" | "X"))
}

/// Waits until the process whose pid is in `pid_file` has exited, looking at `/proc/<pid>/stat`
/// every [`POLL`].
async fn until_exited(pid_file: &Path, id: &str) -> anyhow::Result<()> {
    let pid = std::fs::read_to_string(pid_file).context("reading the pid file")?;
    let stat = PathBuf::from(format!("/proc/{}/stat", pid.trim()));
    let deadline = Instant::now() + DEADLINE;
    while !exited_per_stat(std::fs::read_to_string(&stat).ok().as_deref()) {
        if Instant::now() > deadline {
            bail!("{id} not stopped after {DEADLINE:?}");
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// How the lifecycle container ends, and why.
pub(super) const LIFECYCLE_EXIT: Exit = Exit::Exited(0);
pub(super) const LIFECYCLE_EXIT_WHY: &str = "/bin/true exits with status 0";

/// A lifecycle through `engine`: create and start (or `run`), `wait`, delete; how it ended.
pub(super) async fn engine_sequence(
    engine: &Engine,
    id: &ContainerId,
    bundle: &Path,
    run: bool,
) -> anyhow::Result<Exit> {
    if run {
        engine.run(id, bundle, CreateOptions::default()).await?;
    } else {
        engine.create(id, bundle, CreateOptions::default()).await?;
        engine.start(id).await?;
    }
    let exit = engine.wait(id).await?;
    engine.delete(id, DeleteMode::IfStopped).await?;
    Ok(exit)
}

/// Everything the non-raw ways drive, over one runtime.
pub(super) struct Drivers<'a> {
    pub(super) tokio: &'a tokio::runtime::Runtime,
    pub(super) raw: &'a Raw,
    pub(super) backend: Arc<CliBackend>,
    /// The engine with its `DirectMonitor` (shared with the tasks of a throughput batch).
    pub(super) engine: Arc<Engine>,
    /// What goes through conmon, where conmon is there and works with this runtime.
    pub(super) conmon: Option<ConmonWays<'a>>,
    /// `podman run`, where podman is there and works with this runtime.
    pub(super) podman: Option<Podman>,
    /// The root filesystem of the lifecycle bundle, for `podman run --rootfs`.
    pub(super) lifecycle_rootfs: PathBuf,
    /// containerd's client, when the runtime is runc (or the fake in its place).
    pub(super) runc_crate: Option<runc::Runc>,
    /// Where the `runc` crate's pid files go.
    pub(super) scratch: &'a Path,
}

impl Drivers<'_> {
    pub(super) fn raw_lifecycle(&self, id: &str, bundle: &Path) -> anyhow::Result<Sample> {
        timed(|| self.raw.lifecycle(id, bundle, false))
    }

    pub(super) fn raw_exit_latency(&self, id: &str, bundle: &Path) -> anyhow::Result<Sample> {
        self.raw.exit_latency(id, bundle).map(Sample::expected)
    }

    pub(super) fn raw_stop_latency(&self, id: &str, bundle: &Path) -> anyhow::Result<Sample> {
        self.raw.stop_latency(self.tokio, id, bundle).map(|times| Sample::expected(times.stopped_ms))
    }

    /// The raw stop, timing only its `kill ID TERM` call: what the runtime itself costs a stop.
    pub(super) fn raw_kill_latency(&self, id: &str, bundle: &Path) -> anyhow::Result<Sample> {
        self.raw.stop_latency(self.tokio, id, bundle).map(|times| Sample::expected(times.kill_ms))
    }

    /// The raw lifecycle through the library's `CliBackend`: create, start, `state` every
    /// [`POLL`] until stopped, delete.
    pub(super) fn backend_lifecycle(&self, id: &str, bundle: &Path) -> anyhow::Result<Sample> {
        timed(|| self.backend_sequence(id, bundle))
    }

    fn backend_sequence(&self, id: &str, bundle: &Path) -> anyhow::Result<()> {
        let leftover = Leftover::new(self.raw, id);
        let id = ContainerId::new(id)?;
        let backend = self.backend.as_ref();
        self.tokio.block_on(async {
            backend.create(&id, bundle, CreateOptions::default()).await?;
            backend.start(&id).await?;
            let deadline = Instant::now() + DEADLINE;
            loop {
                let state = backend.state(&id).await?;
                if state.status == Status::Stopped {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{id} not stopped after {DEADLINE:?} (status {})", state.status);
                }
                tokio::time::sleep(POLL).await;
            }
            backend.delete(&id, DeleteMode::IfStopped).await?;
            anyhow::Ok(())
        })?;
        leftover.disarm();
        Ok(())
    }

    pub(super) fn raw_checkpoint_restore(&self, id: &str, bundle: &Path) -> anyhow::Result<Sample> {
        let images = self.scratch.join(format!("{id}.images"));
        self.raw.checkpoint_restore(id, bundle, &images).map(Sample::expected)
    }

    /// The time `engine.checkpoint` and `engine.restore` of a running container take, one after
    /// the other (the images under the engine's state root).
    pub(super) fn engine_checkpoint_restore(&self, id: &str, bundle: &Path) -> anyhow::Result<Sample> {
        let leftover = Leftover::new(self.raw, id);
        let id = ContainerId::new(id)?;
        let engine = &self.engine;
        let sample = self.tokio.block_on(async {
            engine.create(&id, bundle, CreateOptions::default()).await?;
            engine.start(&id).await?;
            let started = Instant::now();
            engine.checkpoint(&id, ContainerCheckpointOptions::default()).await?;
            engine.restore(&id, bundle, ContainerRestoreOptions::default()).await?;
            let ms = millis(started.elapsed());
            engine.kill(&id, Signal::KILL, KillScope::Init).await?;
            let exit = engine.wait(&id).await?;
            engine.delete(&id, DeleteMode::IfStopped).await?;
            let why = "SIGKILL ends the restored container";
            anyhow::Ok(Sample::judged(ms, exit, Exit::Signaled(Signal::KILL), why))
        })?;
        leftover.disarm();
        Ok(sample)
    }

    /// The backend's lifecycle waiting as the runc crate's users do ([`Drivers::runc_crate_lifecycle`]):
    /// create with a pid file, start, `/proc` every [`POLL`], delete.
    pub(super) fn backend_proc_wait_lifecycle(&self, id: &str, bundle: &Path) -> anyhow::Result<Sample> {
        timed(|| {
            let leftover = Leftover::new(self.raw, id);
            let id = ContainerId::new(id)?;
            let backend = self.backend.as_ref();
            let pid_file = self.scratch.join(format!("{id}.pid"));
            let opts = CreateOptions { pid_file: Some(pid_file.clone()), ..CreateOptions::default() };
            self.tokio.block_on(async {
                backend.create(&id, bundle, opts).await?;
                backend.start(&id).await?;
                until_exited(&pid_file, id.as_str()).await?;
                backend.delete(&id, DeleteMode::IfStopped).await?;
                anyhow::Ok(())
            })?;
            leftover.disarm();
            std::fs::remove_file(&pid_file).context("removing the pid file")
        })
    }

    /// The lifecycle through `engine`: create and start (or `run`, one runtime call where the
    /// runtime has it), `wait` (a pidfd wakes the direct monitor, inotify on the exit directory
    /// the conmon one), delete.
    pub(super) fn engine_lifecycle(
        &self,
        engine: &Engine,
        id: &str,
        bundle: &Path,
        run: bool,
    ) -> anyhow::Result<Sample> {
        let leftover = Leftover::new(self.raw, id);
        let id = ContainerId::new(id)?;
        let started = Instant::now();
        let exit = self.tokio.block_on(engine_sequence(engine, &id, bundle, run))?;
        let ms = millis(started.elapsed());
        leftover.disarm();
        Ok(Sample::judged(ms, exit, LIFECYCLE_EXIT, LIFECYCLE_EXIT_WHY))
    }

    /// The time from closing the container's stdin to `engine.wait` returning.
    pub(super) fn engine_exit_latency(&self, id: &str, bundle: &Path) -> anyhow::Result<Sample> {
        let leftover = Leftover::new(self.raw, id);
        let id = ContainerId::new(id)?;
        let engine = &self.engine;
        let (stdin, hang_up) = std::io::pipe().context("creating the stdin pipe")?;
        let stdio = ContainerStdio::Fds { stdin: Some(stdin.into()), stdout: None, stderr: None };
        let sample = self.tokio.block_on(async {
            engine.create(&id, bundle, CreateOptions { stdio, ..CreateOptions::default() }).await?;
            engine.start(&id).await?;
            let hung_up = Instant::now();
            drop(hang_up);
            let exit = engine.wait(&id).await?;
            let latency = millis(hung_up.elapsed());
            engine.delete(&id, DeleteMode::IfStopped).await?;
            let why = format!("end of file on its stdin makes it exit with status {EXIT_ON_EOF_STATUS}");
            anyhow::Ok(Sample::judged(latency, exit, Exit::Exited(EXIT_ON_EOF_STATUS), &why))
        })?;
        leftover.disarm();
        Ok(sample)
    }

    /// The time `engine.stop` takes (TERM, the container's stop signal) to return.
    pub(super) fn engine_stop_latency(&self, id: &str, bundle: &Path) -> anyhow::Result<Sample> {
        let leftover = Leftover::new(self.raw, id);
        let id = ContainerId::new(id)?;
        let engine = &self.engine;
        let (ready, says_ready) = std::io::pipe().context("creating the stdout pipe")?;
        let stdio = ContainerStdio::Fds { stdin: None, stdout: Some(says_ready.into()), stderr: None };
        let sample = self.tokio.block_on(async {
            engine.create(&id, bundle, CreateOptions { stdio, ..CreateOptions::default() }).await?;
            engine.start(&id).await?;
            until_ready(ready).await?;
            let signalled = Instant::now();
            let exit = engine.stop(&id, StopOptions::default()).await?;
            let latency = millis(signalled.elapsed());
            engine.delete(&id, DeleteMode::IfStopped).await?;
            anyhow::Ok(Sample::judged(latency, exit, Exit::Exited(0), "its TERM trap exits with status 0"))
        })?;
        leftover.disarm();
        Ok(sample)
    }

    /// The lifecycle through containerd's `runc` crate as its users drive it: create with a pid
    /// file (and `/dev/null` stdio: with its default pipes, `create` waits for the container to
    /// exit), start, wait for the init to exit by looking at `/proc/<pid>/stat` every [`POLL`]
    /// (the crate has no wait, and its `state` cannot parse runc's RFC 3339 `created`), delete.
    pub(super) fn runc_crate_lifecycle(&self, id: &str, bundle: &Path) -> anyhow::Result<Sample> {
        timed(|| self.runc_crate_sequence(id, bundle))
    }

    fn runc_crate_sequence(&self, id: &str, bundle: &Path) -> anyhow::Result<()> {
        let client = self.runc_crate.as_ref().context("the runc crate drives runc only")?;
        let leftover = Leftover::new(self.raw, id);
        let pid_file = self.scratch.join(format!("{id}.pid"));
        let io = runc::io::NullIo::new().context("making the crate's null io")?;
        let opts = runc::options::CreateOpts::new().pid_file(&pid_file).io(Arc::new(io));
        self.tokio.block_on(async {
            client.create(id, bundle, Some(&opts)).await.map_err(crate_error)?;
            client.start(id).await.map_err(crate_error)?;
            until_exited(&pid_file, id).await?;
            client.delete(id, None).await.map_err(crate_error)?;
            anyhow::Ok(())
        })?;
        leftover.disarm();
        std::fs::remove_file(&pid_file).context("removing the pid file")
    }
}

/// The ways through conmon: by hand, and the Engine with a `ConmonMonitor`.
pub(super) struct ConmonWays<'a> {
    pub(super) raw: RawConmon<'a>,
    pub(super) engine: Engine,
}

impl Drivers<'_> {
    fn conmon(&self) -> anyhow::Result<&ConmonWays<'_>> {
        self.conmon.as_ref().context("conmon is not measured with this runtime")
    }

    pub(super) fn raw_conmon_lifecycle(&self, id: &str, bundle: &Path) -> anyhow::Result<Sample> {
        let conmon = self.conmon()?;
        timed(|| conmon.raw.lifecycle(self.tokio, id, bundle))
    }

    pub(super) fn engine_conmon_lifecycle(&self, id: &str, bundle: &Path) -> anyhow::Result<Sample> {
        self.engine_lifecycle(&self.conmon()?.engine, id, bundle, false)
    }

    pub(super) fn podman_lifecycle(&self, id: &str) -> anyhow::Result<Sample> {
        let podman = self.podman.as_ref().context("podman is not measured with this runtime")?;
        timed(|| podman.lifecycle(id, &self.lifecycle_rootfs))
    }
}

/// containerd's client for the runtime `raw` drives, with its defaults otherwise but JSON logs
/// (to stderr, as with text ones): the fake runtime writes no other kind.
pub(super) fn runc_crate_client(raw: &Raw) -> anyhow::Result<runc::Runc> {
    runc::options::GlobalOpts::new().command(&raw.binary).root(&raw.root).log_json().build().map_err(crate_error)
}

/// The crate's errors are not `Sync`, so they travel as their message.
fn crate_error(err: runc::error::Error) -> anyhow::Error {
    anyhow::anyhow!("runc crate: {err}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// youki 0.7's words when another call was rewriting the container's state file.
    const HALF_WRITTEN: &str = "could not load state for container c1";

    /// An attempt that fails saying `said`.
    fn failing(said: &str) -> Failed {
        Failed {
            said: format!("ERROR youki: {said}"),
            error: anyhow::anyhow!("youki state c1: exit status: 1: {said}"),
        }
    }

    fn transient() -> Vec<String> {
        vec!["failed to seal /proc/self/exe".to_owned(), "could not load state for container".to_owned()]
    }

    #[test]
    fn a_transient_failure_is_run_again_and_counted_by_its_words() {
        let retries = Retries::default();
        let mut said = vec![Err(failing(HALF_WRITTEN)), Err(failing("failed to seal /proc/self/exe")), Ok("state")];
        said.reverse();
        let answer = retrying(&transient(), &retries, || said.pop().expect("no more attempts than answers"));
        assert_eq!(answer.unwrap(), "state");
        assert!(said.is_empty(), "three attempts");
        let expected: BTreeMap<String, usize> =
            [("could not load state for container".to_owned(), 1), ("failed to seal /proc/self/exe".to_owned(), 1)]
                .into();
        assert_eq!(retries.by_words(), expected);
        assert_eq!(retries.total(), 2);
    }

    #[test]
    fn any_other_failure_ends_the_call_at_once_with_its_own_words() {
        let retries = Retries::default();
        let mut attempts = 0;
        let answer: anyhow::Result<()> = retrying(&transient(), &retries, || {
            attempts += 1;
            Err(failing("container c1 does not exist"))
        });
        assert_eq!(format!("{:#}", answer.unwrap_err()), "youki state c1: exit status: 1: container c1 does not exist");
        assert_eq!((attempts, retries.total()), (1, 0));
    }

    #[test]
    fn a_runtime_without_transient_failures_never_runs_a_call_again() {
        let retries = Retries::default();
        let mut attempts = 0;
        let answer: anyhow::Result<()> = retrying(&[], &retries, || {
            attempts += 1;
            Err(failing(HALF_WRITTEN))
        });
        assert!(answer.is_err());
        assert_eq!((attempts, retries.total()), (1, 0));
    }

    #[test]
    fn a_failure_that_stays_transient_fails_after_three_attempts_saying_so() {
        let retries = Retries::default();
        let mut attempts = 0;
        let answer: anyhow::Result<()> = retrying(&transient(), &retries, || {
            attempts += 1;
            Err(failing(HALF_WRITTEN))
        });
        assert_eq!(
            format!("{:#}", answer.unwrap_err()),
            "failed transiently 3 times in a row: youki state c1: exit status: 1: could not load state for container c1"
        );
        assert_eq!((attempts, retries.total()), (3, 2), "the two runs again are counted, not the last failure");
    }

    #[test]
    fn a_call_that_cannot_run_at_all_is_not_run_again() {
        let retries = Retries::default();
        let mut attempts = 0;
        let answer: anyhow::Result<()> = retrying(&transient(), &retries, || {
            attempts += 1;
            Err(anyhow::anyhow!("cannot run youki: No such file or directory").into())
        });
        assert!(answer.is_err());
        assert_eq!((attempts, retries.total()), (1, 0));
    }

    #[test]
    fn a_stat_line_says_exited_for_zombies_and_dead_processes_only() {
        // proc(5): "pid (comm) state ppid ...".
        assert!(exited_per_stat(Some("4242 (true) Z 1 4242 4242 0 -1")));
        assert!(exited_per_stat(Some("4242 (true) X 1 4242 4242 0 -1")));
        assert!(!exited_per_stat(Some("4242 (sh) S 1 4242 4242 0 -1")));
        assert!(!exited_per_stat(Some("4242 (sh) R 1 4242 4242 0 -1")));
        // A name may hold spaces and parentheses; the state follows the last one.
        assert!(!exited_per_stat(Some("4242 (a) Z (b) S 1 4242")));
        assert!(exited_per_stat(Some("4242 (x) S) Z 1 4242")));
        assert!(exited_per_stat(None), "no stat file: the process is gone");
    }

    #[test]
    fn a_stat_line_of_a_live_process_is_not_exited() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(!exited_per_stat(Some(&stat)), "{stat}");
    }
}
