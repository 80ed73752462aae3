//! The generic CLI driver: runs one runtime command and turns its ending into a typed result.
//!
//! Rules it adds to those of the [`Spawner`] (own process group, deadline, bounded capture): the
//! runtime's global flags and, where the dialect has them, `--log FILE --log-format json` on every
//! call; a controlled environment (`NOTIFY_SOCKET` stripped unless asked for, `XDG_RUNTIME_DIR`
//! set when rootless, Rust backtrace variables removed so youki's messages stay one line); and the
//! runtime's own message read from the last `error` record of its JSON log, falling back to
//! stderr, then classified by the dialect's wording.

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use crate::cli::config::RuntimeConfig;
use crate::cli::dialect::{Dialect, ErrorKind};
use crate::cli::spawn::{EnvChanges, Input, Invocation, Leftovers, Outcome, Sink, Spawner};
use crate::contract::error::{Error, Existence, Failure, Result, WrongState};
use crate::contract::exit::Exit;
use crate::contract::id::ContainerId;

/// The longest runtime message kept in an error.
const MESSAGE_LIMIT: usize = 4096;

/// One process invocation: the arguments after the program's fixed prefix, and how to run it.
#[derive(Debug, Default)]
pub(crate) struct Call {
    /// The subcommand and its arguments; the program, global and log flags come first.
    pub(crate) args: Vec<OsString>,
    /// The container concerned, for classifying errors.
    pub(crate) id: Option<ContainerId>,
    /// Stdin.
    pub(crate) stdin: Input,
    /// Stdout.
    pub(crate) stdout: Sink,
    /// Stderr.
    pub(crate) stderr: Sink,
    /// Overrides the default timeout.
    pub(crate) timeout: Option<Duration>,
    /// Overrides the default bound on each captured stream.
    pub(crate) output_limit: Option<usize>,
    /// Descriptors the runtime gets as fds 3, 4, ..., to pass on with `--preserve-fds`.
    pub(crate) extra_fds: Vec<OwnedFd>,
    /// What becomes of processes the runtime leaves in its group when it exits.
    pub(crate) leftovers: Leftovers,
}

/// The timeout of a call that stands in for none: an event stream, which ends when its consumer
/// drops it, or an exec the caller waits for without a limit.
pub(crate) const NO_DEADLINE: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

impl Call {
    /// A call with captured output and no stdin.
    pub(crate) fn new(args: Vec<OsString>) -> Self {
        Call { args, ..Call::default() }
    }

    /// The same call again, its descriptors duplicated, for a second attempt; `None` when a
    /// descriptor cannot be duplicated.
    fn duplicate(&self) -> Option<Call> {
        let fd = |fd: &OwnedFd| fd.try_clone().ok();
        let sink = |sink: &Sink| match sink {
            Sink::Capture => Some(Sink::Capture),
            Sink::Null => Some(Sink::Null),
            Sink::Inherit => Some(Sink::Inherit),
            Sink::Fd(owned) => fd(owned).map(Sink::Fd),
        };
        let stdin = match &self.stdin {
            Input::Null => Input::Null,
            Input::Bytes(bytes) => Input::Bytes(bytes.clone()),
            Input::Inherit => Input::Inherit,
            Input::Fd(owned) => Input::Fd(fd(owned)?),
        };
        Some(Call {
            args: self.args.clone(),
            id: self.id.clone(),
            stdin,
            stdout: sink(&self.stdout)?,
            stderr: sink(&self.stderr)?,
            timeout: self.timeout,
            output_limit: self.output_limit,
            extra_fds: self.extra_fds.iter().map(fd).collect::<Option<_>>()?,
            leftovers: self.leftovers,
        })
    }

    /// About container `id`.
    pub(crate) fn for_container(mut self, id: &ContainerId) -> Self {
        self.id = Some(id.clone());
        self
    }
}

/// How a call ended.
#[derive(Debug)]
pub(crate) struct Finished {
    /// The whole argv, binary first.
    pub(crate) argv: Vec<OsString>,
    /// Its exit.
    pub(crate) status: Exit,
    /// Captured stdout (empty unless captured).
    pub(crate) stdout: Vec<u8>,
    /// True when stdout went past the output limit and was cut.
    pub(crate) stdout_truncated: bool,
    /// Captured stderr (empty unless captured).
    pub(crate) stderr: Vec<u8>,
    /// True when stderr went past the output limit and was cut.
    pub(crate) stderr_truncated: bool,
    /// The limit the streams were cut at.
    pub(crate) output_limit: usize,
    /// The last `error` record of the JSON log, if the runtime wrote one.
    pub(crate) log_error: Option<String>,
}

impl Finished {
    /// The runtime's message: the JSON log's last error, else stderr.
    pub(crate) fn message(&self) -> String {
        if let Some(logged) = &self.log_error {
            return logged.clone();
        }
        let message = message_from_stderr(&self.stderr);
        match (self.stderr_truncated, message.ends_with('…')) {
            (false, _) => message,
            (true, true) => format!("{message} (stderr cut at {} bytes)", self.output_limit),
            (true, false) => format!("{message}… (stderr cut at {} bytes)", self.output_limit),
        }
    }

    pub(crate) fn failure(&self) -> Box<Failure> {
        Box::new(Failure { argv: self.argv.clone(), status: self.status, message: self.message() })
    }

    /// Stdout of a call whose output is parsed: cut output is an error, never half a document.
    pub(crate) fn complete_stdout(&self) -> Result<&[u8]> {
        self.refuse_cut("stdout", self.stdout_truncated)?;
        Ok(&self.stdout)
    }

    /// Stdout then stderr, as text, of a probe whose output is read: cut output is an error.
    pub(crate) fn complete_output(&self) -> Result<String> {
        self.refuse_cut("stdout", self.stdout_truncated)?;
        self.refuse_cut("stderr", self.stderr_truncated)?;
        Ok(self.output_text())
    }

    /// Stdout then stderr, as text, whether cut or not (for evidence).
    pub(crate) fn output_text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&self.stderr));
        text
    }

    fn refuse_cut(&self, stream: &'static str, truncated: bool) -> Result<()> {
        if truncated {
            return Err(Error::OutputTruncated { argv: self.argv.clone(), stream, limit: self.output_limit });
        }
        Ok(())
    }
}

/// What every process the library starts shares: the spawner, the environment, the default
/// timeout and the default bound on captured output. Runtime calls and probes alike go through it.
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    spawner: Arc<dyn Spawner>,
    env: EnvChanges,
    timeout: Duration,
    output_limit: usize,
}

impl Runner {
    /// Processes run by `spawner` with the environment, timeout and output limit of `config`.
    pub(crate) fn new(spawner: Arc<dyn Spawner>, config: &RuntimeConfig) -> Self {
        let caller = crate::caller::Caller::current();
        let env = runtime_env(
            caller.is_rootless().then_some(caller.uid()),
            std::env::var_os("XDG_RUNTIME_DIR").is_some(),
            config.pass_notify_socket,
        );
        Runner { spawner, env, timeout: config.timeout, output_limit: config.output_limit }
    }

    /// The default timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `prefix` (the program and its fixed flags) followed by `call.args`, whatever its exit
    /// status. Fails when the program cannot be run, on timeout, or on local I/O errors.
    pub(crate) async fn run(&self, prefix: Vec<OsString>, call: Call) -> Result<Finished> {
        let Call { args, id: _, stdin, stdout, stderr, timeout, output_limit, extra_fds, leftovers } = call;
        let mut argv = prefix;
        argv.extend(args);
        let timeout = timeout.unwrap_or(self.timeout);
        let output_limit = output_limit.unwrap_or(self.output_limit);
        let invocation = Invocation {
            argv: argv.clone(),
            env: self.env.clone(),
            stdin,
            stdout,
            stderr,
            extra_fds,
            deadline: Instant::now() + timeout,
            output_limit,
            leftovers,
        };
        match self.spawner.run(invocation).await? {
            Outcome::TimedOut => {
                tracing::warn!(?timeout, "call timed out; its process group was killed");
                Err(Error::Timeout { argv, after: timeout, left_behind: None })
            }
            Outcome::Ended { status, stdout, stderr } => Ok(Finished {
                argv,
                status,
                stdout: stdout.bytes,
                stdout_truncated: stdout.truncated,
                stderr: stderr.bytes,
                stderr_truncated: stderr.truncated,
                output_limit,
                log_error: None,
            }),
        }
    }
}

/// Runs one runtime binary with its dialect's global flags.
#[derive(Debug, Clone)]
pub(crate) struct CliRuntime {
    binary: PathBuf,
    global_args: Vec<OsString>,
    dialect: Arc<Dialect>,
    runner: Runner,
    /// Messages of failures the runtime meets before it does anything, and may not meet again
    /// ([`RuntimeFamily::transient_failures`](crate::RuntimeFamily::transient_failures)).
    transient: Vec<String>,
    /// Whether an exit 1 without a word is one of those failures, said where we cannot read it
    /// ([`RuntimeFamily::wordless_failures_are_transient`](crate::RuntimeFamily::wordless_failures_are_transient)).
    wordless_transient: bool,
}

/// Whether `finished` failed with a message containing one of `messages`.
pub(crate) fn failed_with(finished: &Finished, messages: &[String]) -> bool {
    !finished.status.success() && says_one_of(&finished.failure().message, messages)
}

/// Whether `said` contains one of `messages`.
fn says_one_of(said: &str, messages: &[String]) -> bool {
    messages.iter().any(|message| said.contains(message.as_str()))
}

/// How the runtime's environment differs from the caller's. Rust backtrace variables make youki
/// append backtraces to its messages; `NOTIFY_SOCKET` would make the runtime wait for a
/// container's `READY=1`; a rootless runtime (of user `rootless_uid`) keeps its state under
/// `XDG_RUNTIME_DIR`, which must exist in its environment.
fn runtime_env(rootless_uid: Option<u32>, has_runtime_dir: bool, pass_notify_socket: bool) -> EnvChanges {
    let mut remove = vec!["RUST_BACKTRACE", "RUST_LIB_BACKTRACE"];
    if !pass_notify_socket {
        remove.push("NOTIFY_SOCKET");
    }
    let mut set = Vec::new();
    if let (Some(uid), false) = (rootless_uid, has_runtime_dir) {
        set.push(("XDG_RUNTIME_DIR", format!("/run/user/{uid}")));
    }
    EnvChanges { remove, set }
}

impl CliRuntime {
    /// A driver for `binary`, prefixing every call with `global_args`.
    pub(crate) fn new(
        binary: PathBuf,
        global_args: Vec<OsString>,
        dialect: Arc<Dialect>,
        runner: Runner,
        transient: Vec<String>,
        wordless_transient: bool,
    ) -> Self {
        CliRuntime { binary, global_args, dialect, runner, transient, wordless_transient }
    }

    /// The binary.
    pub(crate) fn binary(&self) -> &Path {
        &self.binary
    }

    /// The global flags every call gets.
    pub(crate) fn global_args(&self) -> &[OsString] {
        &self.global_args
    }

    /// The dialect.
    pub(crate) fn dialect(&self) -> &Dialect {
        &self.dialect
    }

    /// How processes are run, for probes of other programs.
    pub(crate) fn runner(&self) -> &Runner {
        &self.runner
    }

    /// The default timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.runner.timeout()
    }

    /// Runs `call` and returns how it ended, whatever its exit status. Fails only when the
    /// binary cannot be run, on timeout, or on local I/O errors.
    pub(crate) async fn run(&self, call: Call) -> Result<Finished> {
        let subcommand = call.args.first().map(|arg| arg.to_string_lossy().into_owned()).unwrap_or_default();
        let span = tracing::debug_span!(
            "runtime_call",
            binary = %self.binary.display(),
            subcommand = %subcommand,
            id = call.id.as_ref().map(ContainerId::as_str),
        );
        self.run_retrying_transient(call).instrument(span).await
    }

    /// Runs `call`, and once more (within what is left of its timeout) if it failed in one of
    /// the runtime's transient ways, before doing anything.
    async fn run_retrying_transient(&self, call: Call) -> Result<Finished> {
        let started = Instant::now();
        let timeout = call.timeout.unwrap_or(self.runner.timeout());
        let spare = if self.transient.is_empty() { None } else { call.duplicate() };
        let finished = self.run_inner(call).await?;
        match spare {
            Some(mut spare) if !finished.status.success() && self.is_transient(&finished.failure()) => {
                tracing::info!(message = %finished.failure().message, "transient runtime failure; trying once more");
                spare.timeout = Some(timeout.saturating_sub(started.elapsed()));
                self.run_inner(spare).await
            }
            _ => Ok(finished),
        }
    }

    /// Whether `failure` is one of the runtime's transient ones: in one of their words, or, for a
    /// runtime whose transient failures come before its log is open, an exit 1 without a word.
    pub(crate) fn is_transient(&self, failure: &Failure) -> bool {
        let wordless = failure.status == Exit::Exited(1) && failure.message.trim().is_empty();
        says_one_of(&failure.message, &self.transient) || (self.wordless_transient && wordless)
    }

    /// Runs `call`; a non-zero exit becomes the matching typed error.
    pub(crate) async fn run_ok(&self, call: Call) -> Result<Finished> {
        let id = call.id.clone();
        let finished = self.run(call).await?;
        self.check(finished, id.as_ref())
    }

    /// Turns a failed `finished` into its typed error; passes a successful one through.
    pub(crate) fn check(&self, finished: Finished, id: Option<&ContainerId>) -> Result<Finished> {
        if finished.status.success() {
            return Ok(finished);
        }
        Err(self.error_for(&finished, id))
    }

    /// The typed error for a failed call.
    pub(crate) fn error_for(&self, finished: &Finished, id: Option<&ContainerId>) -> Error {
        self.typed_error(finished.failure(), id)
    }

    /// The typed error for `failure`, by the dialect's wording of its message.
    pub(crate) fn typed_error(&self, failure: Box<Failure>, id: Option<&ContainerId>) -> Error {
        let kind = self.dialect.classify(id, &failure.message);
        tracing::debug!(?kind, message = %failure.message, "runtime call failed");
        let id = id.cloned();
        match kind {
            ErrorKind::NotFound => Error::NotFound { id, evidence: Existence::Refused(failure) },
            ErrorKind::AlreadyExists => Error::AlreadyExists { id, evidence: Existence::Refused(failure) },
            ErrorKind::InvalidState => Error::InvalidState { id, evidence: WrongState::Refused(failure) },
            ErrorKind::Other => Error::RuntimeFailed(failure),
        }
    }

    async fn run_inner(&self, call: Call) -> Result<Finished> {
        let new_log = || tempfile::Builder::new().prefix("runtime-log-").tempfile();
        let mut log = self
            .dialect
            .global_flags
            .json_log
            .then(new_log)
            .transpose()
            .map_err(|err| Error::io("creating the runtime log file", err))?;
        let mut prefix: Vec<OsString> = vec![self.binary.clone().into()];
        prefix.extend(self.global_args.iter().cloned());
        if let Some(log) = &log {
            prefix.extend(self.dialect.log_args(log.path()));
        }
        let mut finished = self.runner.run(prefix, call).await?;
        if let Some(log) = &mut log {
            finished.log_error = last_error_record(&read_log_tail(log.as_file_mut(), finished.output_limit)?);
        }
        Ok(finished)
    }
}

/// The end of the runtime's log, at most `limit` bytes: the last error record is near the end,
/// and a runtime that floods its log must not flood memory.
fn read_log_tail(log: &mut std::fs::File, limit: usize) -> Result<String> {
    let failed = |err| Error::io("reading the runtime's log", err);
    let length = log.seek(SeekFrom::End(0)).map_err(failed)?;
    let kept = u64::try_from(limit).unwrap_or(u64::MAX).min(length);
    log.seek(SeekFrom::Start(length - kept)).map_err(failed)?;
    let mut tail = Vec::new();
    log.take(kept).read_to_end(&mut tail).map_err(failed)?;
    Ok(String::from_utf8_lossy(&tail).into_owned())
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
    use crate::cli::spawn::recording::{RecordingSpawner, Reply};

    fn runner(spawner: &Arc<RecordingSpawner>, output_limit: usize) -> Runner {
        let config = RuntimeConfig { output_limit, ..RuntimeConfig::default() };
        Runner::new(Arc::clone(spawner) as Arc<dyn Spawner>, &config)
    }

    #[tokio::test]
    async fn a_call_s_output_limit_overrides_the_configured_one_and_cuts_are_flagged() {
        let spawner = RecordingSpawner::new(|_| Reply::Exits {
            status: Exit::Exited(0),
            stdout: b"0123456789abcdef".to_vec(),
            stderr: b"short".to_vec(),
            log: None,
        });
        let runner = runner(&spawner, 64);
        let default = runner.run(vec!["prog".into()], Call::new(vec!["a".into()])).await.unwrap();
        assert!(!default.stdout_truncated && !default.stderr_truncated, "16 bytes fit in 64");
        let call = Call { output_limit: Some(10), ..Call::new(vec!["b".into()]) };
        let cut = runner.run(vec!["prog".into()], call).await.unwrap();
        assert_eq!((cut.stdout.as_slice(), cut.stdout_truncated), (&b"0123456789"[..], true));
        assert_eq!((cut.stderr.as_slice(), cut.stderr_truncated), (&b"short"[..], false));
        let limits: Vec<usize> = spawner.asked().iter().map(|asked| asked.output_limit).collect();
        assert_eq!(limits, [64, 10]);
        match cut.complete_stdout() {
            Err(Error::OutputTruncated { argv, stream, limit }) => {
                assert_eq!((argv, stream, limit), (vec![OsString::from("prog"), OsString::from("b")], "stdout", 10))
            }
            other => panic!("cut stdout handed out for parsing: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_runtime_that_says_nothing_has_an_empty_message_and_cut_stderr_is_marked() {
        let spawner = RecordingSpawner::new(|command| Reply::Exits {
            status: Exit::Exited(1),
            stdout: Vec::new(),
            stderr: if command[0] == "quiet" { Vec::new() } else { b"x".repeat(100) },
            log: None,
        });
        let runner = runner(&spawner, 10);
        let quiet = runner.run(vec!["prog".into()], Call::new(vec!["quiet".into()])).await.unwrap();
        assert_eq!(quiet.message(), "");
        let loud = runner.run(vec!["prog".into()], Call::new(vec!["loud".into()])).await.unwrap();
        assert_eq!(loud.message(), "xxxxxxxxxx… (stderr cut at 10 bytes)");
    }

    #[test]
    fn only_the_tail_of_a_long_log_is_read() {
        use std::io::Write;
        let mut log = tempfile::tempfile().unwrap();
        let early = "{\"level\":\"error\",\"msg\":\"an early error\"}\n";
        let last = "{\"level\":\"error\",\"msg\":\"the last error\"}\n";
        write!(log, "{early}{}\n{last}", "y".repeat(10_000)).unwrap();
        let tail = read_log_tail(&mut log, last.len()).unwrap();
        assert_eq!(tail, last);
        assert_eq!(last_error_record(&tail).as_deref(), Some("the last error"));
        let cut_inside_a_record = read_log_tail(&mut log, last.len() - 1).unwrap();
        assert_eq!(last_error_record(&cut_inside_a_record), None, "a cut record is not read");
    }

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
        let root = runtime_env(None, false, false);
        assert_eq!(root.remove, ["RUST_BACKTRACE", "RUST_LIB_BACKTRACE", "NOTIFY_SOCKET"]);
        assert!(root.set.is_empty(), "root needs no XDG_RUNTIME_DIR");
        let notify = runtime_env(None, false, true);
        assert!(!notify.remove.contains(&"NOTIFY_SOCKET"));
    }

    #[test]
    fn runtime_env_gives_rootless_runtimes_an_xdg_runtime_dir() {
        let rootless = runtime_env(Some(1000), false, false);
        assert_eq!(rootless.set, [("XDG_RUNTIME_DIR", "/run/user/1000".to_owned())]);
        let already = runtime_env(Some(1000), true, false);
        assert!(already.set.is_empty(), "the caller's own XDG_RUNTIME_DIR is kept");
    }

    #[test]
    fn stderr_message_prefers_logrus_msg() {
        let stderr = b"time=\"2026-11-23T12:43:09Z\" level=error msg=\"runc create failed: container with given ID already exists\"\n";
        assert_eq!(message_from_stderr(stderr), "runc create failed: container with given ID already exists");
        assert_eq!(message_from_stderr(b"unknown command features\n"), "unknown command features");
    }
}
