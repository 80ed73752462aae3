//! The one error type of the contract.
//!
//! Every failure a caller can act on has its own variant, and every variant that comes from a
//! runtime process carries the evidence: the argv that ran, how it ended, and the runtime's own
//! message. Callers match on `NotFound`, `AlreadyExists` and `InvalidState` without caring which
//! runtime worded them.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::contract::exit::Exit;
use crate::contract::id::ContainerId;
use crate::contract::state::{Status, excerpt};

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a runtime process did when it failed: the evidence attached to runtime errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The whole argv, binary first.
    pub argv: Vec<OsString>,
    /// How the process ended.
    pub status: Exit,
    /// The runtime's own message: the last `error` record of its JSON log, else its stderr.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", display_argv(&self.argv), self.status)?;
        match self.message.trim() {
            "" => f.write_str(" and printed no error message"),
            message => write!(f, ": {message}"),
        }
    }
}

/// What showed that a container was in the wrong state for an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WrongState {
    /// The runtime refused the call.
    Refused(Box<Failure>),
    /// The state was read first and the operation was not tried: it needs another state.
    Seen {
        /// The operation asked for (`checkpoint`).
        operation: &'static str,
        /// The state it needs.
        needs: Status,
        /// The state the container is in.
        found: Status,
    },
}

impl fmt::Display for WrongState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WrongState::Refused(failure) => failure.fmt(f),
            WrongState::Seen { operation, needs, found } => {
                write!(f, "{operation} needs a {needs} container and this one is {found}; nothing was run")
            }
        }
    }
}

/// What showed that something exists, or does not: [`Error::NotFound`] and
/// [`Error::AlreadyExists`] come from a runtime's answer or from the engine's own look before
/// anything ran, and say which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existence {
    /// The runtime said so.
    Refused(Box<Failure>),
    /// The file system was looked at first and the operation was not tried.
    Seen {
        /// What was looked for (`the export archive`, `the pre-checkpoint to build on`).
        what: String,
        /// Where.
        path: PathBuf,
    },
}

/// The message of [`Error::NotFound`].
fn missing(id: Option<&ContainerId>, evidence: &Existence) -> String {
    match evidence {
        Existence::Refused(failure) => format!("{}: {failure}", about(id, "does not exist", "no such container")),
        Existence::Seen { what, path } => seen(id, what, path, "does not exist"),
    }
}

/// The message of [`Error::AlreadyExists`].
fn present(id: Option<&ContainerId>, evidence: &Existence) -> String {
    match evidence {
        Existence::Refused(failure) => {
            format!("{}: {failure}", about(id, "already exists", "a container with that id already exists"))
        }
        Existence::Seen { what, path } => seen(id, what, path, "already exists"),
    }
}

/// "container ID: WHAT PATH PREDICATE; nothing was run".
fn seen(id: Option<&ContainerId>, what: &str, path: &Path, predicate: &str) -> String {
    let container = id.map(|id| format!("container {id}: ")).unwrap_or_default();
    format!("{container}{what} {} {predicate}; nothing was run", path.display())
}

/// Everything that can go wrong when driving a runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The runtime does not know this container, or something the call needs (a kept
    /// checkpoint, a pre-checkpoint to build on) is not there.
    #[error("{}", missing(id.as_ref(), evidence))]
    NotFound {
        /// The container asked for; `None` when the call named none (a `list`).
        id: Option<ContainerId>,
        /// The runtime's answer, or what was looked for before anything ran.
        evidence: Existence,
    },
    /// A container with this id already exists, or something the call would make (an export's
    /// archive) is there already.
    #[error("{}", present(id.as_ref(), evidence))]
    AlreadyExists {
        /// The container asked for; `None` when the call named none.
        id: Option<ContainerId>,
        /// The runtime's answer, or what was found before anything ran.
        evidence: Existence,
    },
    /// The container is not in a state that allows the operation (delete a running container,
    /// start a stopped one, pause a stopped one...).
    #[error(
        "{}: {evidence}",
        about(id.as_ref(), "is in the wrong state for this operation", "the container is in the wrong state for this operation")
    )]
    InvalidState {
        /// The container asked for; `None` when the call named none.
        id: Option<ContainerId>,
        /// The runtime's refusal, or the state seen before anything ran.
        evidence: WrongState,
    },
    /// The backend cannot do this, as decided by its probes; nothing was run.
    #[error("{backend} does not support {feature}: {reason}")]
    Unsupported {
        /// The backend's name.
        backend: String,
        /// The operation or option asked for.
        feature: String,
        /// Why, with the evidence that decided it.
        reason: String,
    },
    /// The host is set up in a way the runtime refuses; nothing was run.
    #[error("{backend} cannot run on this host: {problem}; fix: {fix}")]
    HostIncompatible {
        /// The backend's name.
        backend: String,
        /// What is wrong with the host.
        problem: String,
        /// What makes it work.
        fix: String,
    },
    /// The caller is rootless and its runtime directory (`$XDG_RUNTIME_DIR`), where its state
    /// and its runtimes' state live, is unusable; nothing was run.
    #[error(
        "rootless (uid {uid}): the runtime directory{} is unusable: {problem}; set XDG_RUNTIME_DIR to a directory of the user's, mode 0700 (/run/user/{uid} as a login session makes it)",
        path.as_ref().map(|path| format!(" {}", path.display())).unwrap_or_default()
    )]
    RuntimeDir {
        /// The directory named by `XDG_RUNTIME_DIR`, when it is set.
        path: Option<PathBuf>,
        /// What is wrong with it.
        problem: String,
        /// The user's uid.
        uid: u32,
    },
    /// A state root written by an engine of another backend or monitor: read as this
    /// engine's, its containers would be misread (another runtime's ids, another monitor's
    /// files). Refused before anything in it is touched.
    #[error(
        "the state root holds container {id} of {found_backend} under monitor {found_monitor}; this engine is {backend} under monitor {monitor}"
    )]
    ForeignStateRoot {
        /// The first container recorded by the other engine.
        id: ContainerId,
        /// The backend that wrote its record.
        found_backend: String,
        /// The monitor that wrote its record.
        found_monitor: String,
        /// This engine's backend.
        backend: String,
        /// This engine's monitor.
        monitor: String,
    },
    /// The runtime failed in a way none of the typed variants describe.
    #[error("the runtime failed: {0}")]
    RuntimeFailed(Box<Failure>),
    /// The call did not finish in time; the runtime's process group was killed.
    #[error(
        "`{}` did not finish within {after:?}; its process group was killed{}",
        display_argv(argv),
        left_behind.as_ref().map(|problem| format!("; rolling the call back left something behind: {problem}")).unwrap_or_default()
    )]
    Timeout {
        /// The whole argv, binary first.
        argv: Vec<OsString>,
        /// The limit that expired.
        after: Duration,
        /// For a call that makes a container, what its rollback could not undo (youki's shape:
        /// the call's error and the cleanup's in one); `None` when nothing was left behind or
        /// there was nothing to roll back.
        #[source]
        left_behind: Option<Box<Error>>,
    },
    /// A process printed more than the call keeps, and the call reads its output: a cut
    /// document is not parsed.
    #[error(
        "`{}` printed more than {limit} bytes on {stream}, the most this call keeps; its output was cut, so it was not read",
        display_argv(argv)
    )]
    OutputTruncated {
        /// The whole argv, binary first.
        argv: Vec<OsString>,
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The output limit of the call, in bytes.
        limit: usize,
    },
    /// The runtime binary is not there.
    #[error("runtime binary {} not found: {source}", path.display())]
    BinaryNotFound {
        /// The path that was tried.
        path: PathBuf,
        /// Why it could not be found.
        source: std::io::Error,
    },
    /// The runtime binary is there but cannot be executed (no permission, not a program).
    #[error("runtime binary {} cannot be executed: {source}", path.display())]
    BinaryNotExecutable {
        /// The path that was tried.
        path: PathBuf,
        /// Why it could not be executed.
        source: std::io::Error,
    },
    /// A container id outside the accepted grammar.
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId {
        /// The id as given (possibly shortened).
        id: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A signal that is not a name or number this host knows.
    #[error("invalid signal {0:?}: expected a name such as TERM or SIGTERM, or a number")]
    InvalidSignal(String),
    /// A local I/O failure (temp files, pipes, spawning, reading a process's output).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Output of a runtime (or a file it wrote) that could not be understood.
    #[error("cannot parse {what}: {message}")]
    Parse {
        /// What was being parsed.
        what: String,
        /// Why it failed, with the start of the input.
        message: String,
        /// The parser's own error, when one was involved.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A container did not exit even after SIGKILL: its process is stuck (in the kernel, or
    /// frozen) and is still there.
    #[error("container {id} did not exit within {waited:?} of SIGKILL{}", pid.map(|pid| format!(" (init pid {pid})")).unwrap_or_default())]
    DidNotStop {
        /// The container.
        id: String,
        /// Its init pid, when known.
        pid: Option<u32>,
        /// How long it was given after SIGKILL.
        waited: Duration,
    },
    /// An option (or combination of options) the call cannot serve: refused before anything
    /// runs, never silently dropped.
    #[error("{option}: {reason}; nothing was run")]
    InvalidArgument {
        /// The option, as the caller spells it (`ExecOptions::detach`, `tty`).
        option: String,
        /// Why the call cannot serve it.
        reason: String,
    },
    /// Something the library waited for (a container lock, a terminal on a console socket)
    /// did not come in time. Runtime processes that overrun their timeout are [`Error::Timeout`].
    #[error("waited {after:?} for {what}, which did not come")]
    WaitTimeout {
        /// What was waited for.
        what: String,
        /// How long.
        after: Duration,
    },
    /// A host port asked to be reserved for a container is taken by another socket; refused
    /// before any process starts.
    #[error("cannot reserve {protocol} port {address}: {source}")]
    PortInUse {
        /// `tcp` or `udp`.
        protocol: &'static str,
        /// The host address and port.
        address: std::net::SocketAddr,
        /// What binding it said (`EADDRINUSE`).
        source: std::io::Error,
    },
    /// A process the caller named is not one this monitor supervises.
    #[error("{what} is not supervised by this monitor")]
    NotSupervised {
        /// The process, as the caller named it.
        what: String,
    },
    /// The monitor process that held a container (its conmon) ended without recording the
    /// container's exit: the container may still run, but nobody will see it end, so its exit
    /// can never be known. Delete it with [`crate::DeleteMode::Force`].
    #[error(
        "container {id} lost its {monitor} monitor (pid {pid}) before an exit was recorded: its exit cannot be known"
    )]
    MonitorLost {
        /// The container.
        id: String,
        /// The monitor's name.
        monitor: String,
        /// The monitor process that is gone.
        pid: u32,
    },
    /// A checkpoint archive (or a tar inside one) that is damaged, incomplete, or holds an entry
    /// that could write outside the directory it is unpacked into. It is refused before anything
    /// is unpacked from it.
    #[error("checkpoint archive {}: {reason}", path.display())]
    InvalidArchive {
        /// The archive file.
        path: PathBuf,
        /// What is wrong with it, naming the offending entry.
        reason: String,
    },
    /// A backend plugin could not be loaded; nothing from it was called beyond its descriptor.
    #[error("plugin {}: {problem}", path.display())]
    Plugin {
        /// The shared library.
        path: PathBuf,
        /// What is wrong with it.
        problem: PluginProblem,
    },
}

/// The subject of a container error: "container ID <predicate>", or `anonymous` when the call
/// named no container.
fn about(id: Option<&ContainerId>, predicate: &str, anonymous: &str) -> String {
    match id {
        Some(id) => format!("container {id} {predicate}"),
        None => anonymous.to_owned(),
    }
}

/// Why a backend plugin was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginProblem {
    /// The shared library could not be opened.
    #[error("cannot open: {0}")]
    Open(String),
    /// The library does not export the descriptor symbol.
    #[error("missing symbol {symbol}: {message}")]
    MissingSymbol {
        /// The symbol looked for.
        symbol: String,
        /// The loader's message.
        message: String,
    },
    /// The plugin speaks another ABI version.
    #[error("ABI version {found}, this build speaks {expected}")]
    AbiVersion {
        /// The version the plugin declares.
        found: u32,
        /// The version this build understands.
        expected: u32,
    },
    /// The descriptor is null, not UTF-8, or its dialect is not valid.
    #[error("malformed descriptor: {0}")]
    Malformed(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// A parse failure found by our own checks.
    pub(crate) fn parse(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Parse { what: what.into(), message: message.into(), source: None }
    }

    /// A parse failure reported by a parser, which is kept as the source.
    pub(crate) fn parse_failed(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
        input: &[u8],
    ) -> Self {
        let message = match input.trim_ascii().is_empty() {
            true => format!("{source}; the input was empty"),
            false => format!("{source}; the input began: {}", excerpt(input)),
        };
        Error::Parse { what: what.into(), message, source: Some(Box::new(source)) }
    }

    /// The runtime call behind this error, when it came from one.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Error::NotFound { evidence: Existence::Refused(failure), .. }
            | Error::AlreadyExists { evidence: Existence::Refused(failure), .. }
            | Error::InvalidState { evidence: WrongState::Refused(failure), .. }
            | Error::RuntimeFailed(failure) => Some(failure),
            _ => None,
        }
    }
}

/// Renders an argv for messages: space separated, lossy for non-UTF-8.
pub(crate) fn display_argv(argv: &[OsString]) -> String {
    argv.iter().map(|arg| arg.to_string_lossy()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(argv: &str, status: Exit, message: &str) -> Box<Failure> {
        let argv = argv.split_whitespace().map(OsString::from).collect();
        Box::new(Failure { argv, status, message: message.to_owned() })
    }

    fn said(argv: &str) -> Box<Failure> {
        failure(argv, Exit::Exited(1), "the runtime's words")
    }

    fn c1() -> Option<ContainerId> {
        Some(ContainerId::new("c1").unwrap())
    }

    /// The whole sentence, and nothing that ends in mid-air.
    fn reads(error: Error, expected: &str) {
        let text = error.to_string();
        assert_eq!(text, expected);
        assert!(!text.trim_end().ends_with(':'), "ends in a bare colon: {text}");
    }

    #[test]
    fn not_found_names_the_container_or_says_none_was_named() {
        reads(
            Error::NotFound { id: c1(), evidence: Existence::Refused(said("runc state c1")) },
            "container c1 does not exist: `runc state c1` exited with status 1: the runtime's words",
        );
        reads(
            Error::NotFound { id: None, evidence: Existence::Refused(said("runc list")) },
            "no such container: `runc list` exited with status 1: the runtime's words",
        );
    }

    #[test]
    fn already_exists_names_the_container_or_says_none_was_named() {
        reads(
            Error::AlreadyExists { id: c1(), evidence: Existence::Refused(said("runc create c1")) },
            "container c1 already exists: `runc create c1` exited with status 1: the runtime's words",
        );
        reads(
            Error::AlreadyExists { id: None, evidence: Existence::Refused(said("runc create")) },
            "a container with that id already exists: `runc create` exited with status 1: the runtime's words",
        );
    }

    #[test]
    fn what_was_looked_for_before_running_is_named_with_its_path_and_no_runtime_call() {
        let error = Error::AlreadyExists {
            id: c1(),
            evidence: Existence::Seen { what: "the export archive".into(), path: "/tmp/c1.tar".into() },
        };
        assert_eq!(error.failure(), None, "no runtime was run");
        reads(error, "container c1: the export archive /tmp/c1.tar already exists; nothing was run");
        let error = Error::NotFound {
            id: c1(),
            evidence: Existence::Seen { what: "the kept checkpoint".into(), path: "/run/x/checkpoint".into() },
        };
        assert_eq!(error.failure(), None, "no runtime was run");
        reads(error, "container c1: the kept checkpoint /run/x/checkpoint does not exist; nothing was run");
    }

    #[test]
    fn a_foreign_state_root_names_both_engines() {
        reads(
            Error::ForeignStateRoot {
                id: c1().unwrap(),
                found_backend: "youki".into(),
                found_monitor: "conmon".into(),
                backend: "runc".into(),
                monitor: "direct".into(),
            },
            "the state root holds container c1 of youki under monitor conmon; this engine is runc under monitor direct",
        );
    }

    #[test]
    fn invalid_state_names_the_container_or_says_none_was_named() {
        reads(
            Error::InvalidState { id: c1(), evidence: WrongState::Refused(said("runc start c1")) },
            "container c1 is in the wrong state for this operation: `runc start c1` exited with status 1: the runtime's words",
        );
        reads(
            Error::InvalidState { id: None, evidence: WrongState::Refused(said("runc start")) },
            "the container is in the wrong state for this operation: `runc start` exited with status 1: the runtime's words",
        );
    }

    #[test]
    fn invalid_state_seen_before_running_says_what_was_needed() {
        let seen = WrongState::Seen { operation: "checkpoint", needs: Status::Running, found: Status::Created };
        reads(
            Error::InvalidState { id: c1(), evidence: seen },
            "container c1 is in the wrong state for this operation: checkpoint needs a running container and this one is created; nothing was run",
        );
    }

    #[test]
    fn a_lost_monitor_names_the_container_the_monitor_and_its_pid() {
        reads(
            Error::MonitorLost { id: "web".into(), monitor: "conmon".into(), pid: 4242 },
            "container web lost its conmon monitor (pid 4242) before an exit was recorded: its exit cannot be known",
        );
    }

    #[test]
    fn unsupported_and_host_incompatible_say_who_what_and_why() {
        reads(
            Error::Unsupported {
                backend: "crun".into(),
                feature: "checkpoint".into(),
                reason: "the runtime has no checkpoint command".into(),
            },
            "crun does not support checkpoint: the runtime has no checkpoint command",
        );
        reads(
            Error::HostIncompatible {
                backend: "crun".into(),
                problem: "cgroup v1 hybrid".into(),
                fix: "boot with unified cgroups".into(),
            },
            "crun cannot run on this host: cgroup v1 hybrid; fix: boot with unified cgroups",
        );
    }

    #[test]
    fn an_unusable_runtime_dir_says_which_and_how_to_fix_it() {
        reads(
            Error::RuntimeDir { path: None, problem: "XDG_RUNTIME_DIR is not set".into(), uid: 1000 },
            "rootless (uid 1000): the runtime directory is unusable: XDG_RUNTIME_DIR is not set; set XDG_RUNTIME_DIR to a directory of the user's, mode 0700 (/run/user/1000 as a login session makes it)",
        );
        reads(
            Error::RuntimeDir {
                path: Some("/run/user/1000".into()),
                problem: "it is not a directory".into(),
                uid: 1000,
            },
            "rootless (uid 1000): the runtime directory /run/user/1000 is unusable: it is not a directory; set XDG_RUNTIME_DIR to a directory of the user's, mode 0700 (/run/user/1000 as a login session makes it)",
        );
    }

    #[test]
    fn a_runtime_that_fails_without_a_word_is_said_to_have_said_nothing() {
        reads(
            Error::RuntimeFailed(failure("runc kill c1 9", Exit::Exited(1), "")),
            "the runtime failed: `runc kill c1 9` exited with status 1 and printed no error message",
        );
        reads(
            Error::RuntimeFailed(failure("runc kill c1 9", Exit::Exited(1), " \n")),
            "the runtime failed: `runc kill c1 9` exited with status 1 and printed no error message",
        );
        reads(
            Error::RuntimeFailed(failure("runc state c1", Exit::Signaled(crate::Signal::KILL), "")),
            "the runtime failed: `runc state c1` was killed by signal 9 and printed no error message",
        );
        reads(
            Error::RuntimeFailed(failure("runc state c1", Exit::Exited(2), "bad flag")),
            "the runtime failed: `runc state c1` exited with status 2: bad flag",
        );
    }

    #[test]
    fn timeout_and_truncation_name_the_call_and_the_limit() {
        let argv = || vec![OsString::from("runc"), OsString::from("state"), OsString::from("c1")];
        reads(
            Error::Timeout { argv: argv(), after: Duration::from_millis(500), left_behind: None },
            "`runc state c1` did not finish within 500ms; its process group was killed",
        );
        let delete = failure("runc delete --force c1", Exit::Exited(1), "device busy");
        reads(
            Error::Timeout {
                argv: argv(),
                after: Duration::from_secs(3),
                left_behind: Some(Box::new(Error::RuntimeFailed(delete))),
            },
            "`runc state c1` did not finish within 3s; its process group was killed; rolling the call back left something behind: the runtime failed: `runc delete --force c1` exited with status 1: device busy",
        );
        reads(
            Error::OutputTruncated { argv: argv(), stream: "stdout", limit: 4096 },
            "`runc state c1` printed more than 4096 bytes on stdout, the most this call keeps; its output was cut, so it was not read",
        );
    }

    #[test]
    fn refused_options_and_waits_that_ran_out_say_what_and_why() {
        reads(
            Error::InvalidArgument {
                option: "ExecOptions::tty".into(),
                reason: "a terminal needs a console socket".into(),
            },
            "ExecOptions::tty: a terminal needs a console socket; nothing was run",
        );
        reads(
            Error::WaitTimeout { what: "the lock of c1".into(), after: Duration::from_secs(2) },
            "waited 2s for the lock of c1, which did not come",
        );
    }

    #[test]
    fn a_port_in_use_names_the_protocol_the_address_and_what_binding_said() {
        reads(
            Error::PortInUse {
                protocol: "tcp",
                address: "127.0.0.1:8080".parse().unwrap(),
                source: std::io::Error::from_raw_os_error(libc::EADDRINUSE),
            },
            "cannot reserve tcp port 127.0.0.1:8080: Address already in use (os error 98)",
        );
    }

    #[test]
    fn a_missing_binary_and_one_that_cannot_run_are_told_apart() {
        reads(
            Error::BinaryNotFound { path: "/opt/runc".into(), source: std::io::Error::from_raw_os_error(libc::ENOENT) },
            "runtime binary /opt/runc not found: No such file or directory (os error 2)",
        );
        reads(
            Error::BinaryNotExecutable {
                path: "/opt/runc".into(),
                source: std::io::Error::from_raw_os_error(libc::EACCES),
            },
            "runtime binary /opt/runc cannot be executed: Permission denied (os error 13)",
        );
    }

    #[test]
    fn invalid_ids_and_signals_say_what_is_expected() {
        reads(
            Error::InvalidId { id: "-x".into(), reason: "must not start with '-' or '.'" },
            "invalid container id \"-x\": must not start with '-' or '.'",
        );
        reads(
            Error::InvalidSignal("FOO".into()),
            "invalid signal \"FOO\": expected a name such as TERM or SIGTERM, or a number",
        );
    }

    #[test]
    fn io_errors_say_what_was_being_done() {
        reads(
            Error::io("reading the process's stdout", std::io::Error::other("device gone")),
            "reading the process's stdout: device gone",
        );
    }

    #[test]
    fn parse_errors_keep_the_parser_s_error_as_their_source() {
        let input = b"garbage";
        let parser = serde_json::from_slice::<serde_json::Value>(input).unwrap_err();
        let parser_says = parser.to_string();
        let error = Error::parse_failed("container state", parser, input);
        let source = std::error::Error::source(&error).expect("the parser's error is kept");
        assert_eq!(source.to_string(), parser_says);
        reads(error, &format!("cannot parse container state: {parser_says}; the input began: garbage"));

        let empty = serde_json::from_slice::<serde_json::Value>(b"").unwrap_err();
        let empty_says = empty.to_string();
        reads(
            Error::parse_failed("container state", empty, b""),
            &format!("cannot parse container state: {empty_says}; the input was empty"),
        );
        reads(
            Error::parse("runtime version", "unexpected first line \"Usage\""),
            "cannot parse runtime version: unexpected first line \"Usage\"",
        );
    }

    #[test]
    fn archive_errors_name_the_archive_and_what_is_wrong() {
        reads(
            Error::InvalidArchive {
                path: "/tmp/c1.tar.zst".into(),
                reason: "entry \"../evil\" has a `..` component".into(),
            },
            "checkpoint archive /tmp/c1.tar.zst: entry \"../evil\" has a `..` component",
        );
    }

    #[test]
    fn plugin_errors_name_the_library_and_the_problem() {
        let path = || PathBuf::from("/opt/libx.so");
        reads(
            Error::Plugin { path: path(), problem: PluginProblem::Open("/opt/libx.so: invalid ELF header".into()) },
            "plugin /opt/libx.so: cannot open: /opt/libx.so: invalid ELF header",
        );
        reads(
            Error::Plugin {
                path: path(),
                problem: PluginProblem::MissingSymbol {
                    symbol: "desc".into(),
                    message: "undefined symbol: desc".into(),
                },
            },
            "plugin /opt/libx.so: missing symbol desc: undefined symbol: desc",
        );
        reads(
            Error::Plugin { path: path(), problem: PluginProblem::AbiVersion { found: 2, expected: 1 } },
            "plugin /opt/libx.so: ABI version 2, this build speaks 1",
        );
        reads(
            Error::Plugin { path: path(), problem: PluginProblem::Malformed("name is null".into()) },
            "plugin /opt/libx.so: malformed descriptor: name is null",
        );
    }
}
