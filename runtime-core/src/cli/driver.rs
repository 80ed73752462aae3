//! The generic CLI driver: runs one runtime command and turns its ending into a typed result.
//!
//! Rules it enforces for every call: argv vectors only (no shell); a controlled environment
//! (`NOTIFY_SOCKET` stripped unless asked for, `XDG_RUNTIME_DIR` set when rootless, Rust
//! backtrace variables removed so youki's messages stay one line); a timeout after which the
//! runtime's whole process group is killed and reaped; bounded capture of stdout and stderr that
//! stops once the runtime has exited (a container that inherited a stream must not keep the call
//! open); and the runtime's own message read from the last `error` record of its JSON `--log`,
//! falling back to stderr.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use command_fds::{CommandFdExt, FdMapping};
use nix::sys::signal::{Signal as NixSignal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tracing::Instrument;

use crate::cli::dialect::{Dialect, ErrorKind};
use crate::contract::error::{Error, Failure, Result};
use crate::contract::exit::Exit;
use crate::contract::id::ContainerId;

/// How long captured streams are still read after the runtime exited, for bytes it wrote just
/// before. Only a process that inherited the stream and keeps it open makes this wait matter.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// The longest runtime message kept in an error.
const MESSAGE_LIMIT: usize = 4096;

/// What the runtime's stdin is.
#[derive(Debug, Default)]
pub enum Input {
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

/// Where one of the runtime's output streams goes.
#[derive(Debug, Default)]
pub enum Sink {
    /// Read by the driver, up to the output limit.
    #[default]
    Capture,
    /// `/dev/null`.
    Null,
    /// The caller's own stream.
    Inherit,
    /// A descriptor the caller owns.
    Fd(OwnedFd),
}

/// One runtime invocation.
#[derive(Debug, Default)]
pub struct Call {
    /// The subcommand and its arguments; global and log flags are added by the driver.
    pub args: Vec<OsString>,
    /// The container concerned, for classifying errors.
    pub id: Option<ContainerId>,
    /// Stdin.
    pub stdin: Input,
    /// Stdout.
    pub stdout: Sink,
    /// Stderr.
    pub stderr: Sink,
    /// Overrides the driver's timeout.
    pub timeout: Option<Duration>,
    /// A pid file the runtime writes for a process that outlives it (non-detached `exec`): on
    /// timeout that process is killed too.
    pub kill_on_timeout: Option<PathBuf>,
    /// Descriptors the runtime gets as fds 3, 4, ..., to pass on with `--preserve-fds`.
    pub extra_fds: Vec<OwnedFd>,
}

impl Call {
    /// A call with captured output and no stdin.
    pub fn new(args: Vec<OsString>) -> Self {
        Call { args, ..Call::default() }
    }

    /// About container `id`.
    pub fn for_container(mut self, id: &ContainerId) -> Self {
        self.id = Some(id.clone());
        self
    }
}

/// How a call ended.
#[derive(Debug)]
pub struct Finished {
    /// The whole argv, binary first.
    pub argv: Vec<OsString>,
    /// Its exit.
    pub status: Exit,
    /// Captured stdout (empty unless captured).
    pub stdout: Vec<u8>,
    /// Captured stderr (empty unless captured).
    pub stderr: Vec<u8>,
    /// The last `error` record of the JSON log, if the runtime wrote one.
    pub log_error: Option<String>,
}

impl Finished {
    /// The runtime's message: the JSON log's last error, else stderr.
    pub fn message(&self) -> String {
        self.log_error.clone().unwrap_or_else(|| message_from_stderr(&self.stderr))
    }

    fn failure(&self) -> Box<Failure> {
        Box::new(Failure { argv: self.argv.clone(), status: self.status, message: self.message() })
    }
}

/// Runs one runtime binary with its dialect's global flags.
#[derive(Debug, Clone)]
pub struct CliRuntime {
    binary: PathBuf,
    global_args: Vec<OsString>,
    dialect: Arc<Dialect>,
    timeout: Duration,
    output_limit: usize,
    env: RuntimeEnv,
}

/// How the runtime's environment differs from the caller's.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RuntimeEnv {
    remove: Vec<&'static str>,
    set: Vec<(&'static str, String)>,
}

impl RuntimeEnv {
    /// Rust backtrace variables make youki append backtraces to its messages; `NOTIFY_SOCKET`
    /// would make the runtime wait for a container's `READY=1`; a rootless runtime keeps its
    /// state under `XDG_RUNTIME_DIR`, which must exist in its environment.
    fn for_caller(euid: u32, has_runtime_dir: bool, pass_notify_socket: bool) -> Self {
        let mut remove = vec!["RUST_BACKTRACE", "RUST_LIB_BACKTRACE"];
        if !pass_notify_socket {
            remove.push("NOTIFY_SOCKET");
        }
        let mut set = Vec::new();
        if euid != 0 && !has_runtime_dir {
            set.push(("XDG_RUNTIME_DIR", format!("/run/user/{euid}")));
        }
        RuntimeEnv { remove, set }
    }
}

impl CliRuntime {
    /// A driver for `binary`, prefixing every call with `global_args`.
    pub fn new(
        binary: PathBuf,
        global_args: Vec<OsString>,
        dialect: Arc<Dialect>,
        timeout: Duration,
        output_limit: usize,
        pass_notify_socket: bool,
    ) -> Self {
        let env = RuntimeEnv::for_caller(
            nix::unistd::geteuid().as_raw(),
            std::env::var_os("XDG_RUNTIME_DIR").is_some(),
            pass_notify_socket,
        );
        CliRuntime { binary, global_args, dialect, timeout, output_limit, env }
    }

    /// The binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The global flags every call gets.
    pub fn global_args(&self) -> &[OsString] {
        &self.global_args
    }

    /// The dialect.
    pub fn dialect(&self) -> &Dialect {
        &self.dialect
    }

    /// The default timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A blocking command for `args` with the global flags and the environment every call gets,
    /// for work that must run where nothing can be awaited (rollback in `Drop`).
    pub(crate) fn blocking_command(&self, args: Vec<OsString>) -> std::process::Command {
        let mut command = std::process::Command::new(&self.binary);
        command.args(&self.global_args).args(args);
        for name in &self.env.remove {
            command.env_remove(name);
        }
        command.envs(self.env.set.iter().map(|(key, value)| (key, value)));
        command
    }

    /// Runs `call` and returns how it ended, whatever its exit status. Fails only when the
    /// binary cannot be run, on timeout, or on local I/O errors.
    pub async fn run(&self, call: Call) -> Result<Finished> {
        let subcommand = call.args.first().map(|arg| arg.to_string_lossy().into_owned()).unwrap_or_default();
        let span = tracing::debug_span!(
            "runtime_call",
            binary = %self.binary.display(),
            subcommand = %subcommand,
            id = call.id.as_ref().map(ContainerId::as_str),
        );
        self.run_inner(call).instrument(span).await
    }

    /// Runs `call`; a non-zero exit becomes the matching typed error.
    pub async fn run_ok(&self, call: Call) -> Result<Finished> {
        let id = call.id.clone();
        let finished = self.run(call).await?;
        self.check(finished, id.as_ref())
    }

    /// Turns a failed `finished` into its typed error; passes a successful one through.
    pub fn check(&self, finished: Finished, id: Option<&ContainerId>) -> Result<Finished> {
        if finished.status == Exit::Exited(0) {
            return Ok(finished);
        }
        Err(self.error_for(&finished, id))
    }

    /// The typed error for a failed call.
    pub fn error_for(&self, finished: &Finished, id: Option<&ContainerId>) -> Error {
        let failure = finished.failure();
        let name = || id.map(|id| id.as_str().to_owned()).unwrap_or_default();
        let kind = self.dialect.classify(id, &failure.message);
        tracing::debug!(?kind, message = %failure.message, "runtime call failed");
        match kind {
            ErrorKind::NotFound => Error::NotFound { id: name(), failure },
            ErrorKind::AlreadyExists => Error::AlreadyExists { id: name(), failure },
            ErrorKind::InvalidState => Error::InvalidState { id: name(), failure },
            ErrorKind::Other => Error::RuntimeFailed(failure),
        }
    }

    async fn run_inner(&self, call: Call) -> Result<Finished> {
        let log = tempfile::Builder::new()
            .prefix("runtime-log-")
            .tempfile()
            .map_err(|err| Error::io("creating the runtime log file", err))?;
        let mut argv: Vec<OsString> = vec![self.binary.clone().into()];
        argv.extend(self.global_args.iter().cloned());
        argv.extend(self.dialect.log_args(log.path()));
        argv.extend(call.args);

        let mut command = tokio::process::Command::new(&argv[0]);
        command.args(&argv[1..]).process_group(0).kill_on_drop(true);
        for name in &self.env.remove {
            command.env_remove(name);
        }
        command.envs(self.env.set.iter().map(|(key, value)| (key, value)));
        let stdin_bytes = match call.stdin {
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
        command.stdout(call.stdout.into_stdio());
        command.stderr(call.stderr.into_stdio());
        let mappings: Vec<FdMapping> = call
            .extra_fds
            .into_iter()
            .zip(3..)
            .map(|(parent_fd, child_fd)| FdMapping { parent_fd, child_fd })
            .collect();
        if !mappings.is_empty() {
            command
                .fd_mappings(mappings)
                .map_err(|err| Error::io("mapping descriptors", std::io::Error::other(err)))?;
        }

        tracing::trace!(argv = %crate::contract::error::display_argv(&argv), "spawning");
        let mut child = command.spawn().map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                Error::BinaryNotFound { path: self.binary.clone(), source: err }
            }
            _ => Error::io(format!("spawning {}", self.binary.display()), err),
        })?;
        let group = GroupGuard::new(child.id());

        if let (Some(bytes), Some(mut stdin)) = (stdin_bytes, child.stdin.take()) {
            tokio::spawn(async move {
                // A runtime that exits without reading its stdin is reported by its exit status.
                let _ = stdin.write_all(&bytes).await;
            });
        }
        let stdout = child.stdout.take().map(|pipe| Capture::start(pipe, self.output_limit));
        let stderr = child.stderr.take().map(|pipe| Capture::start(pipe, self.output_limit));

        let limit = call.timeout.unwrap_or(self.timeout);
        let status = match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => status.map_err(|err| Error::io("waiting for the runtime", err))?,
            Err(_) => {
                group.kill();
                if let Some(pid_file) = &call.kill_on_timeout {
                    kill_pid_from_file(pid_file);
                }
                // Reap the runtime so it does not linger as a zombie.
                let _ = child.wait().await;
                group.disarm();
                tracing::warn!(?limit, "runtime call timed out; process group killed");
                return Err(Error::Timeout { argv, after: limit });
            }
        };
        group.disarm();

        let stdout = match stdout {
            Some(capture) => capture.finish().await,
            None => Vec::new(),
        };
        let stderr = match stderr {
            Some(capture) => capture.finish().await,
            None => Vec::new(),
        };
        let log_text = std::fs::read(log.path()).unwrap_or_default();
        let log_error = last_error_record(&String::from_utf8_lossy(&log_text));
        Ok(Finished { argv, status: status.into(), stdout, stderr, log_error })
    }
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

/// Kills the runtime's process group if the call is abandoned (timeout, or the future dropped).
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn new(pid: Option<u32>) -> Self {
        GroupGuard { pgid: pid.and_then(|pid| i32::try_from(pid).ok()).map(Pid::from_raw) }
    }

    fn kill(&self) {
        if let Some(pgid) = self.pgid {
            // ESRCH means the group is already gone, which is the goal.
            let _ = killpg(pgid, NixSignal::SIGKILL);
        }
    }

    fn disarm(mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

fn kill_pid_from_file(pid_file: &Path) {
    let pid = std::fs::read_to_string(pid_file).ok().and_then(|text| text.trim().parse::<i32>().ok());
    if let Some(pid) = pid.filter(|pid| *pid > 0) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), NixSignal::SIGKILL);
    }
}

/// Reads a stream into a bounded buffer in the background.
struct Capture {
    buffer: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Capture {
    fn start(mut reader: impl AsyncRead + Unpin + Send + 'static, limit: usize) -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let task = tokio::spawn(async move {
            let mut chunk = vec![0u8; 16 * 1024];
            loop {
                match reader.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => {
                        let mut buffer = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        let room = limit.saturating_sub(buffer.len());
                        buffer.extend_from_slice(&chunk[..read.min(room)]);
                    }
                }
            }
        });
        Capture { buffer, task }
    }

    /// What was read, once the stream ended or shortly after the runtime exited.
    async fn finish(self) -> Vec<u8> {
        let Capture { buffer, mut task } = self;
        if tokio::time::timeout(DRAIN_AFTER_EXIT, &mut task).await.is_err() {
            task.abort();
            tracing::debug!("a process that outlived the runtime holds its output open; stopped reading");
        }
        std::mem::take(&mut *buffer.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

/// The message of the last `error` record of a JSON log: runc and crun write `msg` and `error`,
/// youki `message` and `ERROR`.
fn last_error_record(log: &str) -> Option<String> {
    log.lines().rev().find_map(|line| {
        let record: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
        let level = record.get("level")?.as_str()?;
        if !level.eq_ignore_ascii_case("error") {
            return None;
        }
        let message = record.get("msg").or_else(|| record.get("message"))?.as_str()?;
        Some(clean_message(message))
    })
}

/// The message in a runtime's stderr: runc's logrus `msg="…"` when present, else the text.
fn message_from_stderr(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let logrus = text.lines().rev().find_map(|line| {
        let (_, rest) = line.split_once("level=error msg=\"")?;
        let end = rest.rfind('"')?;
        Some(rest[..end].replace("\\\"", "\"").replace("\\n", "\n"))
    });
    clean_message(&logrus.unwrap_or_else(|| text.into_owned()))
}

/// Drops Rust backtraces (youki) and trailing space, and bounds the length.
fn clean_message(message: &str) -> String {
    let message = message.split("Stack backtrace:").next().unwrap_or_default().trim();
    match message.char_indices().nth(MESSAGE_LIMIT) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_error_of_runc_and_crun_logs() {
        let runc = concat!(
            "{\"level\":\"warning\",\"msg\":\"something odd\",\"time\":\"2026-11-23T12:43:09Z\"}\n",
            "{\"level\":\"error\",\"msg\":\"container does not exist\",\"time\":\"2026-11-23T12:43:09Z\"}\n",
        );
        assert_eq!(last_error_record(runc).as_deref(), Some("container does not exist"));
        let crun = "{\"msg\":\"error opening file `/run/crun/nope/status`: No such file or directory\",\"level\":\"error\",\"time\":\"2026-11-23T12:43:18.146814Z\"}";
        assert_eq!(
            last_error_record(crun).as_deref(),
            Some("error opening file `/run/crun/nope/status`: No such file or directory")
        );
    }

    #[test]
    fn reads_youki_uppercase_level_and_message_key_without_backtrace() {
        let youki = "{\"timestamp\":\"2026-11-23T12:45:44.780197Z\",\"level\":\"ERROR\",\"message\":\"error in executing command: container nope does not exist.\\n\\nStack backtrace:\\n   0: <unknown>\",\"target\":\"youki\"}";
        assert_eq!(
            last_error_record(youki).as_deref(),
            Some("error in executing command: container nope does not exist.")
        );
    }

    #[test]
    fn no_error_record_means_none() {
        assert_eq!(last_error_record(""), None);
        assert_eq!(last_error_record("not json\n{\"level\":\"info\",\"msg\":\"x\"}"), None);
    }

    #[test]
    fn runtime_env_strips_notify_socket_unless_asked_and_backtraces_always() {
        let root = RuntimeEnv::for_caller(0, false, false);
        assert_eq!(root.remove, ["RUST_BACKTRACE", "RUST_LIB_BACKTRACE", "NOTIFY_SOCKET"]);
        assert!(root.set.is_empty(), "root needs no XDG_RUNTIME_DIR");
        let notify = RuntimeEnv::for_caller(0, false, true);
        assert!(!notify.remove.contains(&"NOTIFY_SOCKET"));
    }

    #[test]
    fn runtime_env_gives_rootless_runtimes_an_xdg_runtime_dir() {
        let rootless = RuntimeEnv::for_caller(1000, false, false);
        assert_eq!(rootless.set, [("XDG_RUNTIME_DIR", "/run/user/1000".to_owned())]);
        let already = RuntimeEnv::for_caller(1000, true, false);
        assert!(already.set.is_empty(), "the caller's own XDG_RUNTIME_DIR is kept");
    }

    #[test]
    fn stderr_message_prefers_logrus_msg() {
        let stderr = b"time=\"2026-11-23T12:43:09Z\" level=error msg=\"runc create failed: container with given ID already exists\"\n";
        assert_eq!(message_from_stderr(stderr), "runc create failed: container with given ID already exists");
        assert_eq!(message_from_stderr(b"unknown command features\n"), "unknown command features");
    }
}
