//! Starting one process under the rules every process of the library obeys, behind a small trait
//! so that the decisions taken around it can be tested without any process.
//!
//! The rules: an argv vector, never a shell; a controlled environment; extra descriptors at
//! 3, 4, ...; its own process group, so that whatever it forks can be found again; a deadline
//! after which the whole group is killed and the process reaped; and captured output kept up to a
//! bound, the rest read and dropped, with a flag saying that it was. When the process exits, what
//! it left in its group is killed as well, unless the call starts something meant to outlive it
//! (a container, a detached exec). The group is killed while the exited process is still a
//! zombie, so its id cannot have been reused by then.
//!
//! [`Spawner`] is the seam (as in containerd rust-extensions' `runc` crate): [`ProcessSpawner`]
//! is the real one, and the driver's tests put a recording double in its place. A spawner knows
//! nothing of runtimes: global flags, log flags and the reading of errors belong to the driver.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use command_fds::{CommandFdExt, FdMapping};
use nix::sys::signal::{Signal as NixSignal, killpg};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::contract::error::{Error, Result};
use crate::contract::exit::Exit;

/// How long captured streams are still read after the process exited, for bytes it wrote just
/// before. Only a process outside its group that inherited a stream and keeps it open makes this
/// wait matter; reading stops then, and what was read is kept.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// The size of one read from a captured stream.
const READ_CHUNK: usize = 16 * 1024;

/// What the process's stdin is.
#[derive(Debug, Default)]
pub(crate) enum Input {
    /// `/dev/null`.
    #[default]
    Null,
    /// These bytes, then end of file.
    Bytes(Vec<u8>),
    /// The caller's own stdin.
    Inherit,
    /// A descriptor the caller owns.
    Fd(OwnedFd),
}

/// Where one of the process's output streams goes.
#[derive(Debug, Default)]
pub(crate) enum Sink {
    /// Read by the spawner, up to the output limit.
    #[default]
    Capture,
    /// `/dev/null`.
    Null,
    /// The caller's own stream.
    Inherit,
    /// A descriptor the caller owns.
    Fd(OwnedFd),
}

/// How the process's environment differs from the caller's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EnvChanges {
    /// Variables removed.
    pub(crate) remove: Vec<&'static str>,
    /// Variables set.
    pub(crate) set: Vec<(&'static str, String)>,
}

/// What becomes of the processes a program leaves in its process group when it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Leftovers {
    /// Killed: nothing the call starts is meant to outlive it.
    #[default]
    Kill,
    /// Left running: the call starts something that outlives it (a container, a detached exec, a
    /// lazy-pages server).
    Keep,
}

/// One process to run.
#[derive(Debug)]
pub(crate) struct Invocation {
    /// The whole argv, program first.
    pub(crate) argv: Vec<OsString>,
    /// Environment changes.
    pub(crate) env: EnvChanges,
    /// Stdin.
    pub(crate) stdin: Input,
    /// Stdout.
    pub(crate) stdout: Sink,
    /// Stderr.
    pub(crate) stderr: Sink,
    /// Descriptors the process gets as fds 3, 4, ...
    pub(crate) extra_fds: Vec<OwnedFd>,
    /// When the process group is killed if the process has not exited.
    pub(crate) deadline: Instant,
    /// The most bytes kept of each captured stream.
    pub(crate) output_limit: usize,
    /// What becomes of processes left in its group when it exits.
    pub(crate) leftovers: Leftovers,
}

/// What was read from one captured stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Output {
    /// The bytes kept, at most the output limit.
    pub(crate) bytes: Vec<u8>,
    /// True when the process wrote more than the limit; the rest was read and dropped.
    pub(crate) truncated: bool,
}

/// How a process ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// It exited (or was killed by someone else) before the deadline.
    Ended {
        /// Its exit.
        status: Exit,
        /// Captured stdout (empty unless captured).
        stdout: Output,
        /// Captured stderr (empty unless captured).
        stderr: Output,
    },
    /// The deadline passed: its process group was killed and it was reaped.
    TimedOut,
}

/// Runs processes.
#[async_trait]
pub(crate) trait Spawner: Send + Sync + fmt::Debug {
    /// Runs `invocation` to its end or its deadline. Fails when the program cannot be started,
    /// or when waiting for it or reading its output fails.
    async fn run(&self, invocation: Invocation) -> Result<Outcome>;
}

/// The real spawner: tokio processes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcessSpawner;

#[async_trait]
impl Spawner for ProcessSpawner {
    async fn run(&self, invocation: Invocation) -> Result<Outcome> {
        let Invocation { argv, env, stdin, stdout, stderr, extra_fds, deadline, output_limit, leftovers } = invocation;
        let Some((program, args)) = argv.split_first() else {
            return Err(Error::io("starting a process", io::Error::new(io::ErrorKind::InvalidInput, "empty argv")));
        };
        let mut command = tokio::process::Command::new(program);
        command.args(args).process_group(0).kill_on_drop(true);
        for name in &env.remove {
            command.env_remove(name);
        }
        command.envs(env.set.iter().map(|(key, value)| (key, value)));
        let stdin_bytes = match stdin {
            Input::Null => {
                command.stdin(Stdio::null());
                None
            }
            Input::Bytes(bytes) => {
                command.stdin(Stdio::piped());
                Some(bytes)
            }
            Input::Inherit => {
                command.stdin(Stdio::inherit());
                None
            }
            Input::Fd(fd) => {
                command.stdin(Stdio::from(fd));
                None
            }
        };
        command.stdout(stdout.into_stdio());
        command.stderr(stderr.into_stdio());
        let mappings: Vec<FdMapping> =
            extra_fds.into_iter().zip(3..).map(|(parent_fd, child_fd)| FdMapping { parent_fd, child_fd }).collect();
        if !mappings.is_empty() {
            command.fd_mappings(mappings).map_err(|err| Error::io("mapping descriptors", io::Error::other(err)))?;
        }

        tracing::trace!(argv = %crate::contract::error::display_argv(&argv), "spawning");
        let mut child = command.spawn().map_err(|err| spawn_error(program, err))?;
        let pid = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .ok_or_else(|| Error::io("starting a process", io::Error::other("the new process has no pid")))?;
        let group = GroupGuard { pgid: Some(Pid::from_raw(pid)) };
        let exit = ExitWatch::new(pid).map_err(|err| Error::io("watching the process for its exit", err))?;

        // Dropped (and so stopped) with this call: once the process ended, the rest is moot.
        let _feeder = match (stdin_bytes, child.stdin.take()) {
            (Some(bytes), Some(mut pipe)) => Some(AbortOnDrop(tokio::spawn(async move {
                // A process that exits without reading its stdin is reported by its exit status.
                let _ = pipe.write_all(&bytes).await;
            }))),
            _ => None,
        };
        let stdout = child.stdout.take().map(|pipe| Capture::start(pipe, output_limit));
        let stderr = child.stderr.take().map(|pipe| Capture::start(pipe, output_limit));

        match tokio::time::timeout_at(deadline, exit.exited()).await {
            Ok(watched) => watched.map_err(|err| Error::io("watching the process for its exit", err))?,
            Err(_) => {
                group.kill();
                reap(&mut child).await?;
                group.disarm();
                return Ok(Outcome::TimedOut);
            }
        }
        // The process is a zombie until reaped: its group id cannot belong to anyone else yet.
        if leftovers == Leftovers::Kill {
            group.kill();
        }
        let status = reap(&mut child).await?;
        group.disarm();
        let stdout = Capture::finish_optional(stdout, "stdout").await?;
        let stderr = Capture::finish_optional(stderr, "stderr").await?;
        Ok(Outcome::Ended { status, stdout, stderr })
    }
}

fn spawn_error(program: &OsString, err: io::Error) -> Error {
    let path = program.into();
    // ENOEXEC: a file the kernel cannot execute (no ELF header, no `#!` line).
    let not_executable = err.kind() == io::ErrorKind::PermissionDenied || err.raw_os_error() == Some(libc::ENOEXEC);
    if err.kind() == io::ErrorKind::NotFound {
        Error::BinaryNotFound { path, source: err }
    } else if not_executable {
        Error::BinaryNotExecutable { path, source: err }
    } else {
        Error::io(format!("starting {}", program.to_string_lossy()), err)
    }
}

async fn reap(child: &mut tokio::process::Child) -> Result<Exit> {
    child.wait().await.map(Exit::from).map_err(|err| Error::io("reaping the process", err))
}

impl Sink {
    fn into_stdio(self) -> Stdio {
        match self {
            Sink::Capture => Stdio::piped(),
            Sink::Null => Stdio::null(),
            Sink::Inherit => Stdio::inherit(),
            Sink::Fd(fd) => Stdio::from(fd),
        }
    }
}

/// Tells when a child exits without reaping it: its pidfd becomes readable.
struct ExitWatch(AsyncFd<OwnedFd>);

impl ExitWatch {
    #[allow(unsafe_code)]
    fn new(pid: i32) -> io::Result<Self> {
        let pid = rustix::process::Pid::from_raw(pid).ok_or_else(|| io::Error::other("pid 0"))?;
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
        // SAFETY: the descriptor is an `OwnedFd` moved into the `AsyncFd`: it stays open for as
        // long as the registration lives and is closed only when the `AsyncFd` drops it.
        let registered = unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) };
        Ok(ExitWatch(registered.map_err(|err| err.into_parts().1)?))
    }

    async fn exited(&self) -> io::Result<()> {
        self.0.readable().await.map(drop)
    }
}

/// Kills the process group if the run is abandoned (the future dropped, or an error).
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn kill(&self) {
        if let Some(pgid) = self.pgid {
            // ESRCH means the group is already gone, which is the goal.
            let _ = killpg(pgid, NixSignal::SIGKILL);
        }
    }

    /// Once the leader is reaped its id may be reused, so the guard must not fire any more.
    fn disarm(mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A background task that ends with its owner.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads a stream into a bounded buffer in the background, until the capture is finished or
/// dropped.
struct Capture {
    kept: Arc<Mutex<Output>>,
    task: AbortOnDrop<io::Result<()>>,
}

impl Capture {
    fn start(mut reader: impl AsyncRead + Unpin + Send + 'static, limit: usize) -> Self {
        let kept = Arc::new(Mutex::new(Output::default()));
        let sink = Arc::clone(&kept);
        let task = tokio::spawn(async move {
            let mut chunk = vec![0u8; READ_CHUNK];
            loop {
                let read = match reader.read(&mut chunk).await {
                    Ok(0) => return Ok(()),
                    Ok(read) => read,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => return Err(err),
                };
                let mut output = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let room = limit.saturating_sub(output.bytes.len());
                output.bytes.extend_from_slice(&chunk[..read.min(room)]);
                output.truncated |= read > room;
            }
        });
        Capture { kept, task: AbortOnDrop(task) }
    }

    /// What was read, once the stream ended or shortly after the process exited.
    async fn finish(self, stream: &str) -> Result<Output> {
        let Capture { kept, mut task } = self;
        let failed = |err| Error::io(format!("reading the process's {stream}"), err);
        match tokio::time::timeout(DRAIN_AFTER_EXIT, &mut task.0).await {
            Ok(Ok(read)) => read.map_err(failed)?,
            Ok(Err(join)) => return Err(failed(io::Error::other(join))),
            // Reading stops when `task` drops.
            Err(_) => tracing::debug!(stream, "a process outside the group holds the stream open; stopped reading"),
        }
        Ok(std::mem::take(&mut *kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner())))
    }

    async fn finish_optional(capture: Option<Capture>, stream: &str) -> Result<Output> {
        match capture {
            Some(capture) => capture.finish(stream).await,
            None => Ok(Output::default()),
        }
    }
}

/// A spawner that runs nothing: it records what it is asked and answers as told.
#[cfg(test)]
pub(crate) mod recording {
    use std::ffi::OsStr;
    use std::path::PathBuf;

    use super::*;

    /// What the double answers to one invocation.
    #[derive(Debug, Clone)]
    pub(crate) enum Reply {
        /// The program exits with this status, printing these, and (when the argv has `--log
        /// FILE`) writes this line to its log, as a runtime does.
        Exits { status: Exit, stdout: Vec<u8>, stderr: Vec<u8>, log: Option<String> },
        /// The deadline passes.
        TimesOut,
        /// The program cannot be started.
        Missing,
    }

    impl Reply {
        /// Exit 0 printing `stdout`.
        pub(crate) fn prints(stdout: impl Into<Vec<u8>>) -> Self {
            Reply::Exits { status: Exit::Exited(0), stdout: stdout.into(), stderr: Vec::new(), log: None }
        }

        /// Exit `code` with nothing said.
        pub(crate) fn exits(code: i32) -> Self {
            Reply::Exits { status: Exit::Exited(code), stdout: Vec::new(), stderr: Vec::new(), log: None }
        }

        /// Exit 1 with a JSON log error record saying `message`.
        pub(crate) fn logs_error(message: &str) -> Self {
            let record = serde_json::json!({ "level": "error", "msg": message }).to_string();
            Reply::Exits { status: Exit::Exited(1), stdout: Vec::new(), stderr: Vec::new(), log: Some(record) }
        }
    }

    /// What the double was asked: the invocation minus its descriptors.
    #[derive(Debug, Clone)]
    pub(crate) struct Asked {
        pub(crate) argv: Vec<OsString>,
        pub(crate) deadline: Instant,
        pub(crate) output_limit: usize,
        pub(crate) leftovers: Leftovers,
    }

    impl Asked {
        /// The argv after the program and the global and log flags a dialect adds.
        pub(crate) fn command(&self) -> Vec<String> {
            const WITH_VALUE: [&str; 6] =
                ["--root", "--log", "--log-format", "--criu", "--cgroup-manager", "--rootless"];
            let argv: Vec<String> = self.argv.iter().map(|arg| arg.to_string_lossy().into_owned()).collect();
            let mut start = 1;
            while let Some(arg) = argv.get(start) {
                match arg.as_str() {
                    flag if WITH_VALUE.contains(&flag) => start += 2,
                    "--systemd-cgroup" => start += 1,
                    _ => break,
                }
            }
            argv[start.min(argv.len())..].to_vec()
        }
    }

    type Script = dyn Fn(&[String]) -> Reply + Send + Sync;

    /// Records every invocation and answers with `script(command)`.
    pub(crate) struct RecordingSpawner {
        script: Box<Script>,
        asked: Mutex<Vec<Asked>>,
    }

    impl fmt::Debug for RecordingSpawner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RecordingSpawner").field("asked", &self.asked).finish_non_exhaustive()
        }
    }

    impl RecordingSpawner {
        pub(crate) fn new(script: impl Fn(&[String]) -> Reply + Send + Sync + 'static) -> Arc<Self> {
            Arc::new(RecordingSpawner { script: Box::new(script), asked: Mutex::new(Vec::new()) })
        }

        /// Everything asked so far, in order.
        pub(crate) fn asked(&self) -> Vec<Asked> {
            self.asked.lock().unwrap().clone()
        }

        /// The commands asked so far, in order (see [`Asked::command`]).
        pub(crate) fn commands(&self) -> Vec<Vec<String>> {
            self.asked().iter().map(Asked::command).collect()
        }
    }

    #[async_trait]
    impl Spawner for RecordingSpawner {
        async fn run(&self, invocation: Invocation) -> Result<Outcome> {
            let asked = Asked {
                argv: invocation.argv.clone(),
                deadline: invocation.deadline,
                output_limit: invocation.output_limit,
                leftovers: invocation.leftovers,
            };
            let reply = (self.script)(&asked.command());
            self.asked.lock().unwrap().push(asked);
            match reply {
                Reply::TimesOut => Ok(Outcome::TimedOut),
                Reply::Missing => Err(Error::BinaryNotFound {
                    path: invocation.argv[0].clone().into(),
                    source: io::Error::from(io::ErrorKind::NotFound),
                }),
                Reply::Exits { status, stdout, stderr, log } => {
                    if let Some(line) = log {
                        let log_file = invocation.argv.windows(2).find(|pair| pair[0] == OsStr::new("--log"));
                        let log_file = PathBuf::from(&log_file.expect("a log record needs --log FILE")[1]);
                        std::fs::write(log_file, format!("{line}\n")).unwrap();
                    }
                    let keep = |bytes: Vec<u8>| {
                        let truncated = bytes.len() > invocation.output_limit;
                        Output { bytes: bytes[..bytes.len().min(invocation.output_limit)].to_vec(), truncated }
                    };
                    Ok(Outcome::Ended { status, stdout: keep(stdout), stderr: keep(stderr) })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `chunks`, then fails with `error` (or ends).
    struct Scripted {
        chunks: Vec<Vec<u8>>,
        error: Option<io::Error>,
    }

    impl AsyncRead for Scripted {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            if !self.chunks.is_empty() {
                let chunk = self.chunks.remove(0);
                buf.put_slice(&chunk);
                return std::task::Poll::Ready(Ok(()));
            }
            std::task::Poll::Ready(match self.error.take() {
                Some(err) => Err(err),
                None => Ok(()),
            })
        }
    }

    #[tokio::test]
    async fn capture_keeps_the_limit_reads_the_rest_and_says_it_cut() {
        let reader = Scripted { chunks: vec![vec![b'a'; 6], vec![b'b'; 6], vec![b'c'; 6]], error: None };
        let output = Capture::start(reader, 8).finish("stdout").await.unwrap();
        assert_eq!(output.bytes, b"aaaaaabb");
        assert!(output.truncated);
    }

    #[tokio::test]
    async fn capture_of_exactly_the_limit_is_not_cut() {
        let reader = Scripted { chunks: vec![vec![b'a'; 4], vec![b'b'; 4]], error: None };
        let output = Capture::start(reader, 8).finish("stdout").await.unwrap();
        assert_eq!(output, Output { bytes: b"aaaabbbb".to_vec(), truncated: false });
    }

    #[tokio::test]
    async fn a_read_error_is_reported_not_taken_for_the_end() {
        let reader = Scripted { chunks: vec![b"{\"id\":".to_vec()], error: Some(io::Error::other("device gone")) };
        match Capture::start(reader, 1024).finish("stdout").await {
            Err(Error::Io { context, source }) => {
                assert_eq!(context, "reading the process's stdout");
                assert_eq!(source.to_string(), "device gone");
            }
            other => panic!("a failed read: {other:?}"),
        }
    }
}
