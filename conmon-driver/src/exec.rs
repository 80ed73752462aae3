//! Background execs through conmon, kept on disk so that they outlive the embedding process.
//!
//! conmon runs an exec much as it runs a container (`-e --exec-process-spec`): it starts the
//! runtime's `exec --detach`, sends the exec'd process's pid on the sync pipe, stays its
//! subreaper, and writes how it ended into its exit files, as it does for a container. Each exec
//! therefore gets a directory of its own, `<container dir>/execs/<exec id>/`, holding the process
//! spec, the pid files, conmon's exit files and the exec's log, plus this monitor's record of it
//! ([`ExecRecord`]). Everything a later [`wait`] or [`stop`] needs is there, so an engine
//! reconnected in another process serves a session made before the restart. The sync pipe's
//! second message (the exit code) is not read: the embedding process may be gone when it is
//! sent, and the exit file says the same thing to whoever asks, whenever they ask.
//!
//! `-T` is conmon's: on expiry it SIGKILLs the exec's process group and records `-1` as the
//! exit. The record says a timeout was set, which is how `-1` is read as [`Error::Timeout`] and
//! not as an unknown end. What the exec started outside its process group but in its session (and
//! orphans adopted by the container's init) is then ended through [`ExecTree`], as a stop ends it.
//!
//! conmon, not this monitor, reaps the exec'd process, so a stop cannot end the rest of its
//! session before the reaping as the direct monitor does: it ends them right after the process
//! ends. That is still safe, because the kernel keeps a session's id from reuse while any member
//! of the session lives; only once none is left could a new process take the number and start a
//! session of its own under it in the container in the meantime.
//!
//! A conmon that ends without recording the exec's exit (killed) is lost as a container's is:
//! [`wait`] answers [`Error::MonitorLost`] at once, and keeps the exec, because its process may
//! still run and nobody holds it any more. [`stop`] still ends it and everything it started
//! through the pidfd and [`ExecTree`] (neither needs conmon), forgets it, and answers
//! `MonitorLost` too: how it ended cannot be known. An exec nobody stops goes with its container.
//!
//! An exec with a terminal (`ExecOptions::tty`, or a process asking for one) is run as `podman
//! exec -t` runs it: conmon gets `-t`, makes the console socket itself, receives the pty's master
//! from the runtime and holds it; the terminal's output goes to the exec's log, as stdout. conmon
//! also gets the exec's directory as its bundle (`-b`, with `--full-attach` so that nothing is
//! made outside it), where it binds the exec's `attach` socket and makes its `ctl` fifo: a client
//! reaches the terminal as it reaches a container's ([`attach`], [`resize`]), from any process,
//! for as long as the exec runs. conmon writes what an attached client sends to the master
//! whether or not `-i` is given, so a terminal always takes input and `-i` is not passed.
//!
//! The exec'd process is named by its pid and its start time, read when conmon sent the pid: a
//! pid reused later (after conmon reaped the exec) is never signalled. The window between the
//! pid arriving and its start time being read is the one place where a reuse would go unseen;
//! it needs the exec to end and the kernel to hand out the same pid within it.

use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use runtime_core::oci_spec::runtime::Process;
use runtime_core::{
    ContainerFiles, ContainerId, ContainerStdio, Error, ExecOptions, ExecRequest, ExecSession, ExecStdio, ExecTree,
    Existence, Exit, Failure, KILL_GRACE, Monitor, OciBackend, Result, SystemdPassthrough, TerminalSize,
};

use crate::argv::{EmbedderEnv, ExecPaths, conmon_env, exec_argv};
use crate::attach::{self, ConmonAttach, ControlMessage};
use crate::monitor::{CONMON_EXIT_GRACE, ConmonMonitor, conmon_named, io, private_dir, recorded_pid, unsupported};
use crate::sync::{Answer, Retries};
use crate::watch;

/// How long conmon gets to start an exec and send its pid (a runtime call's default bound).
const EXEC_START_TIMEOUT: Duration = runtime_core::DEFAULT_TIMEOUT;

/// The longest exec id this monitor makes or accepts.
const MAX_EXEC_ID_LEN: usize = 64;

/// What this monitor keeps of one exec beside conmon's own files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ExecRecord {
    /// The exec'd process, as conmon sent it.
    pid: u32,
    /// Its start time, when it was still there to be read (an exec that ended at once was not).
    start_time: Option<u64>,
    /// The `-T` given to conmon, in seconds.
    timeout_secs: Option<u64>,
    /// The process's argv, to name it in errors.
    args: Vec<String>,
    /// It has a terminal, reached through the attach socket and `ctl` fifo in its directory.
    #[serde(default)]
    terminal: bool,
}

const RECORD: &str = "exec.json";

fn execs_dir(files: &ContainerFiles) -> PathBuf {
    files.dir.join("execs")
}

/// The directory of exec `exec_id`; an id this monitor could not have made names none.
fn exec_dir(files: &ContainerFiles, session: &ExecSession) -> Result<PathBuf> {
    let id = &session.exec_id;
    let well_formed = !id.is_empty()
        && id.len() <= MAX_EXEC_ID_LEN
        && id.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-');
    if !well_formed {
        return Err(not_supervised(session));
    }
    Ok(execs_dir(files).join(id))
}

fn not_supervised(session: &ExecSession) -> Error {
    Error::NotSupervised { what: format!("exec {} ({}) in {}", session.exec_id, session.pid, session.id) }
}

/// A new, empty directory for an exec of container `id`, and its id: unique because making the
/// directory is. A container conmon does not hold here has no directory to make it in.
fn new_exec_dir(id: &ContainerId, files: &ContainerFiles) -> Result<(String, PathBuf)> {
    static MADE: AtomicU64 = AtomicU64::new(0);
    if !files.dir.is_dir() {
        return Err(Error::NotFound {
            id: Some(id.clone()),
            evidence: Existence::Seen { what: "the container's conmon directory".into(), path: files.dir.clone() },
        });
    }
    let parent = execs_dir(files);
    private_dir(&parent)?;
    loop {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos());
        let exec_id = format!("{:x}-{nanos:x}-{:x}", std::process::id(), MADE.fetch_add(1, Ordering::Relaxed));
        let dir = parent.join(&exec_id);
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok((exec_id, dir)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(Error::Io { context: format!("creating {}", dir.display()), source: err }),
        }
    }
}

/// The exec's files as conmon writes them, in the shape the exit watch reads.
fn exit_files(paths: &ExecPaths, id: &ContainerId) -> ContainerFiles {
    ContainerFiles { exit_file: paths.exit_dir.join(id.as_str()), dir: paths.dir.clone() }
}

/// Options conmon does not serve for an exec: refused before anything runs, never dropped. What
/// no background exec can do is refused as the runtime backend refuses it (`InvalidArgument`,
/// naming the same option), so that every monitor answers alike; what only conmon lacks is
/// `Unsupported`. Returns the timeout in conmon's whole seconds.
fn refuse_unserved(options: &ExecOptions) -> Result<Option<u64>> {
    if options.console_socket.is_some() {
        return Err(unsupported(
            "ExecOptions::console_socket",
            "conmon makes the console socket and holds the exec's terminal itself",
        ));
    }
    match &options.stdio {
        ExecStdio::Capture => {
            return Err(Error::InvalidArgument {
                option: "ExecStdio::Capture".into(),
                reason: "a detached exec outlives the call, so nothing would read its output; wire its stdio instead"
                    .into(),
            });
        }
        ExecStdio::Wired(ContainerStdio::Null) => {}
        ExecStdio::Wired(_) => {
            return Err(unsupported(
                "ExecOptions::stdio",
                "conmon owns an exec's stdio and keeps its output in the exec's log",
            ));
        }
    }
    if !options.preserve_fds.is_empty() {
        return Err(unsupported(
            "ExecOptions::preserve_fds",
            "passing descriptors through conmon is not implemented yet",
        ));
    }
    if options.pid_file.is_some() {
        return Err(unsupported("ExecOptions::pid_file", "conmon writes an exec's pid in the exec's own directory"));
    }
    match options.timeout {
        None => Ok(None),
        Some(timeout) if timeout.subsec_nanos() == 0 && timeout.as_secs() > 0 => Ok(Some(timeout.as_secs())),
        Some(timeout) => Err(Error::InvalidArgument {
            option: "ExecOptions::timeout".into(),
            reason: format!("conmon's -T counts whole seconds, at least one; {timeout:?} is not"),
        }),
    }
}

fn write_json(path: &Path, value: &impl Serialize, what: &str) -> Result<()> {
    let json = serde_json::to_vec(value).map_err(|err| Error::Parse {
        what: what.into(),
        message: err.to_string(),
        source: Some(Box::new(err)),
    })?;
    std::fs::write(path, json).map_err(io(format!("writing {}", path.display())))
}

fn read_record(dir: &Path, session: &ExecSession) -> Result<ExecRecord> {
    let path = dir.join(RECORD);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(not_supervised(session)),
        Err(err) => return Err(Error::Io { context: format!("reading {}", path.display()), source: err }),
    };
    let record: ExecRecord = serde_json::from_slice(&bytes).map_err(|err| Error::Parse {
        what: format!("the exec record {}", path.display()),
        message: err.to_string(),
        source: Some(Box::new(err)),
    })?;
    if record.pid != session.pid {
        return Err(not_supervised(session));
    }
    Ok(record)
}

/// The exec's processes, if its process is still the one conmon named (not reaped, its pid not
/// reused).
fn live_tree(record: &ExecRecord) -> Option<ExecTree> {
    let start_time = record.start_time?;
    ExecTree::of(record.pid).filter(|tree| tree.start_time() == start_time)
}

/// Ends what the exec started, off the executor.
async fn end_tree(tree: ExecTree) {
    let killed = tokio::task::spawn_blocking(move || tree.kill()).await.unwrap_or_default();
    tracing::debug!(killed, "ended the processes of an exec");
}

/// How the exec ended, from conmon's exit file: `-1` is conmon's word for a timeout when one
/// was set, else for an end it did not see.
fn ended(record: &ExecRecord, exit: Exit) -> Result<Exit> {
    match (exit, record.timeout_secs) {
        (Exit::Exited(-1), Some(seconds)) => Err(Error::Timeout {
            argv: record.args.iter().map(OsString::from).collect(),
            after: Duration::from_secs(seconds),
            left_behind: None,
        }),
        (Exit::Exited(-1), None) => Ok(Exit::Unknown),
        (exit, _) => Ok(exit),
    }
}

/// Removes the exec's directory once its conmon has ended.
async fn forget(dir: &Path, conmon: Option<&watch::Process>) -> Result<()> {
    if let Some(conmon) = conmon
        && !conmon.exited_within(CONMON_EXIT_GRACE).await
    {
        tracing::warn!(pid = conmon.pid, dir = %dir.display(), "an exec's conmon outlived the exec; killing it");
        conmon.kill()?;
        conmon.exited_within(CONMON_EXIT_GRACE).await;
    }
    match std::fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::Io { context: format!("removing {}", dir.display()), source: err })
        }
        _ => Ok(()),
    }
}

/// The error for an exec whose conmon ended without recording its exit (or, with no conmon pid
/// recorded, was never started for it).
fn lost(monitor: &ConmonMonitor, session: &ExecSession, paths: &ExecPaths) -> Error {
    match recorded_pid(&paths.conmon_pid_file) {
        Some(pid) => Error::MonitorLost {
            id: format!("{} (exec {})", session.id, session.exec_id),
            monitor: monitor.name().to_owned(),
            pid,
        },
        None => not_supervised(session),
    }
}

fn conmon_of_exec(paths: &ExecPaths, exec_id: &str) -> Result<Option<watch::Process>> {
    conmon_named(&paths.conmon_pid_file, "-u", exec_id)
}

/// Starts `req` in the background through conmon; on failure nothing of it is left. A
/// transient failure of the runtime is undone, then run again in a new directory ([`Retries`]).
pub(crate) async fn start(monitor: &ConmonMonitor, backend: &dyn OciBackend, req: ExecRequest) -> Result<ExecSession> {
    let ExecRequest { id, mut process, options, files } = req;
    let timeout_secs = refuse_unserved(&options)?;
    if options.tty {
        process.set_terminal(Some(true));
    }
    let mut retries = Retries::new();
    loop {
        let (exec_id, dir) = new_exec_dir(&id, &files)?;
        let paths = ExecPaths::in_dir(&dir);
        let unfinished = UnfinishedStart { paths: paths.clone(), exec_id: exec_id.clone(), armed: true };
        let started = start_in(monitor, backend, &id, &exec_id, &paths, &process, timeout_secs).await;
        unfinished.disarm();
        let failure = match started {
            Ok(Ok(pid)) => return Ok(ExecSession { id, pid, exec_id }),
            Ok(Err(failure)) => failure,
            Err(err) => {
                undo(&paths, &exec_id).await;
                return Err(err);
            }
        };
        undo(&paths, &exec_id).await;
        if !retries.take_for(backend, &failure) {
            return Err(backend.classify_failure(Some(&id), failure));
        }
    }
}

/// Runs one conmon for the exec: the exec'd process's pid, or the runtime's refusal as conmon
/// relayed it.
async fn start_in(
    monitor: &ConmonMonitor,
    backend: &dyn OciBackend,
    id: &ContainerId,
    exec_id: &str,
    paths: &ExecPaths,
    process: &Process,
    timeout_secs: Option<u64>,
) -> Result<std::result::Result<u32, Failure>> {
    let terminal = process.terminal() == Some(true);
    let argv = exec_argv(monitor.binary(), backend, id, exec_id, paths, timeout_secs, terminal);
    monitor.require_options(&argv).await?;
    private_dir(&paths.exit_dir)?;
    write_json(&paths.process_spec, process, "the exec's process")?;
    let env = conmon_env(&EmbedderEnv::of_this_process(), SystemdPassthrough::default());
    let spawned = monitor.spawn(&argv, &paths.dir, Vec::new(), &env);
    let answer = match tokio::time::timeout(EXEC_START_TIMEOUT, spawned).await {
        Ok(answer) => answer?,
        Err(_) => return Err(Error::Timeout { argv, after: EXEC_START_TIMEOUT, left_behind: None }),
    };
    let pid = match answer {
        Answer::Created(pid) => pid,
        Answer::Refused(message) => return Ok(Err(Failure { argv, status: Exit::Unknown, message })),
    };
    let record = ExecRecord {
        pid,
        start_time: ExecTree::of(pid).map(|tree| tree.start_time()),
        timeout_secs,
        args: process.args().clone().unwrap_or_default(),
        terminal,
    };
    write_json(&paths.dir.join(RECORD), &record, "the exec record")?;
    Ok(Ok(pid))
}

/// An exec being started. Dropped before conmon answered (the caller gave up on the call), it
/// is undone as a failed start is, in a task of its own on the caller's runtime, so that neither
/// its conmon nor the process the runtime started runs on with nobody to end it. Out of reach:
/// a conmon dropped before it wrote its pid file (the process started is then killed, but the
/// one it forked is not yet named), as a runtime's exec before it wrote the exec's pid.
struct UnfinishedStart {
    paths: ExecPaths,
    exec_id: String,
    armed: bool,
}

impl UnfinishedStart {
    /// The call came back: a failure is undone by the caller.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for UnfinishedStart {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (paths, exec_id) = (self.paths.clone(), std::mem::take(&mut self.exec_id));
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { undo(&paths, &exec_id).await });
            }
            Err(_) => tracing::warn!(dir = %paths.dir.display(), "a dropped exec could not be undone: no runtime"),
        }
    }
}

/// Undoes an exec that failed to start: its conmon and whatever the runtime started are ended,
/// and its directory removed.
async fn undo(paths: &ExecPaths, exec_id: &str) {
    if let Ok(Some(conmon)) = conmon_of_exec(paths, exec_id) {
        let _ = conmon.kill();
        conmon.exited_within(CONMON_EXIT_GRACE).await;
    }
    let pid = std::fs::read_to_string(&paths.pid_file).ok().and_then(|text| text.trim().parse::<u32>().ok());
    if let Some(tree) = pid.and_then(ExecTree::of) {
        end_tree(tree).await;
    }
    if let Err(err) = forget(&paths.dir, None).await {
        tracing::warn!(%err, "removing a failed exec's files failed");
    }
}

/// Waits for the exec to end, then forgets it. A timeout that expired is [`Error::Timeout`],
/// with every process the exec started ended.
pub(crate) async fn wait(monitor: &ConmonMonitor, session: &ExecSession, files: &ContainerFiles) -> Result<Exit> {
    let dir = exec_dir(files, session)?;
    let record = read_record(&dir, session)?;
    let paths = ExecPaths::in_dir(&dir);
    // Taken while the process may still run: after conmon's kill, it is reaped.
    let tree = live_tree(&record);
    let conmon = conmon_of_exec(&paths, &session.exec_id)?;
    let conmon_gone = async {
        if let Some(conmon) = &conmon {
            conmon.exited().await;
        }
    };
    let Some(exit) = watch::exit_file(&exit_files(&paths, &session.id), conmon_gone).await? else {
        // conmon records the exit before it ends: nobody will now. The record stays, so that a
        // stop still ends what may run.
        return Err(lost(monitor, session, &paths));
    };
    let ended = ended(&record, exit);
    if let (Err(Error::Timeout { .. }), Some(tree)) = (&ended, tree) {
        end_tree(tree).await;
    }
    forget(&dir, conmon.as_ref()).await?;
    ended
}

/// Ends the exec and every process it started (SIGTERM, then after `timeout` SIGKILL), then
/// forgets it. One that ended on its own is only forgotten.
pub(crate) async fn stop(
    monitor: &ConmonMonitor,
    session: &ExecSession,
    files: &ContainerFiles,
    timeout: Duration,
) -> Result<Exit> {
    let dir = exec_dir(files, session)?;
    let record = read_record(&dir, session)?;
    let paths = ExecPaths::in_dir(&dir);
    let exec_files = exit_files(&paths, &session.id);
    let conmon = conmon_of_exec(&paths, &session.exec_id)?;
    // The pidfd first, then the start time: if they agree, the pidfd is the exec's process.
    let process = watch::Process::open(record.pid)?;
    if let (Some(process), Some(tree)) = (process, live_tree(&record)) {
        process.signal(rustix::process::Signal::TERM)?;
        if !process.exited_within(timeout).await {
            tracing::info!(exec = %session.exec_id, ?timeout, "SIGTERM did not end the exec; sending SIGKILL");
            process.kill()?;
            if !process.exited_within(KILL_GRACE).await {
                return Err(Error::DidNotStop {
                    id: format!("{} (exec {})", session.id, session.exec_id),
                    pid: Some(session.pid),
                    waited: KILL_GRACE,
                });
            }
        }
        end_tree(tree).await;
    }
    let conmon_gone = async {
        if let Some(conmon) = &conmon {
            conmon.exited().await;
        }
    };
    let exit = match tokio::time::timeout(CONMON_EXIT_GRACE, watch::exit_file(&exec_files, conmon_gone)).await {
        Ok(exit) => exit?.ok_or_else(|| lost(monitor, session, &paths)),
        Err(_) => {
            return Err(Error::WaitTimeout {
                what: format!("conmon's record of how exec {} in {} ended", session.exec_id, session.id),
                after: CONMON_EXIT_GRACE,
            });
        }
    };
    forget(&dir, conmon.as_ref()).await?;
    ended(&record, exit?)
}

/// The directory of a running exec with a terminal, where conmon bound its attach socket and
/// made its `ctl` fifo. Once the exec has ended, its conmon is gone and nobody listens on the one
/// or reads the other (conmon leaves both): reaching them is an [`Error::Io`].
fn terminal_dir(session: &ExecSession, files: &ContainerFiles, operation: &str) -> Result<PathBuf> {
    let dir = exec_dir(files, session)?;
    if !read_record(&dir, session)?.terminal {
        return Err(unsupported(
            operation,
            "the exec has no terminal: conmon serves a client only an exec's terminal, and the exec's output is in \
             its log",
        ));
    }
    Ok(dir)
}

/// Attaches a client to the exec's terminal: what it writes is the terminal's input, and all the
/// terminal's output is stdout.
pub(crate) async fn attach(session: &ExecSession, files: &ContainerFiles) -> Result<ConmonAttach> {
    let dir = terminal_dir(session, files, "attach_exec")?;
    attach::connect(&dir, true).await
}

/// Resizes the exec's terminal through its `ctl` fifo.
pub(crate) fn resize(session: &ExecSession, files: &ContainerFiles, size: TerminalSize) -> Result<()> {
    let dir = terminal_dir(session, files, "resize_exec")?;
    attach::control(&dir, ControlMessage::Resize(size))
}

/// Forgets every exec of a container that is gone (its execs ended with it): their conmons are
/// given time to record the end, then killed, and the files removed.
pub(crate) async fn release_all(files: &ContainerFiles) -> Result<()> {
    let parent = execs_dir(files);
    let entries = match std::fs::read_dir(&parent) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(Error::Io { context: format!("listing {}", parent.display()), source: err }),
    };
    for entry in entries.flatten() {
        let paths = ExecPaths::in_dir(&entry.path());
        let exec_id = entry.file_name().to_string_lossy().into_owned();
        let conmon = conmon_of_exec(&paths, &exec_id)?;
        forget(&paths.dir, conmon.as_ref()).await?;
    }
    match std::fs::remove_dir(&parent) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::Io { context: format!("removing {}", parent.display()), source: err })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(timeout_secs: Option<u64>) -> ExecRecord {
        let args = vec!["sleep".into(), "100".into()];
        ExecRecord { pid: 42, start_time: Some(1), timeout_secs, args, terminal: false }
    }

    #[test]
    fn minus_one_is_a_timeout_only_when_one_was_set() {
        match ended(&record(Some(1)), Exit::Exited(-1)) {
            Err(Error::Timeout { argv, after, left_behind: None }) => {
                assert_eq!(argv, vec![OsString::from("sleep"), OsString::from("100")]);
                assert_eq!(after, Duration::from_secs(1));
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert_eq!(ended(&record(None), Exit::Exited(-1)).unwrap(), Exit::Unknown);
        assert_eq!(ended(&record(Some(1)), Exit::Exited(5)).unwrap(), Exit::Exited(5));
    }

    #[test]
    fn options_conmon_cannot_serve_are_refused_and_a_timeout_is_whole_seconds() {
        let wired = || ExecOptions { stdio: ExecStdio::Wired(ContainerStdio::Null), ..ExecOptions::default() };
        assert_eq!(refuse_unserved(&wired()).unwrap(), None);
        let timed = |timeout| ExecOptions { timeout: Some(timeout), ..wired() };
        assert_eq!(refuse_unserved(&timed(Duration::from_secs(2))).unwrap(), Some(2));
        for timeout in [Duration::ZERO, Duration::from_millis(1500)] {
            assert!(matches!(refuse_unserved(&timed(timeout)), Err(Error::InvalidArgument { .. })));
        }
        let captured = refuse_unserved(&ExecOptions::default());
        assert!(matches!(captured, Err(Error::InvalidArgument { option, .. }) if option == "ExecStdio::Capture"));
        // conmon makes the console socket itself: a terminal takes none, and one given is refused.
        assert_eq!(refuse_unserved(&ExecOptions { tty: true, ..wired() }).unwrap(), None);
        let with_socket = ExecOptions { tty: true, console_socket: Some("/tmp/console.sock".into()), ..wired() };
        assert!(
            matches!(refuse_unserved(&with_socket), Err(Error::Unsupported { feature, .. }) if feature == "ExecOptions::console_socket")
        );
        let with_pid_file = ExecOptions { pid_file: Some("/tmp/pid".into()), ..wired() };
        assert!(matches!(refuse_unserved(&with_pid_file), Err(Error::Unsupported { .. })));
    }

    #[test]
    fn an_exec_id_that_could_leave_the_execs_directory_names_no_exec() {
        let files = ContainerFiles { exit_file: "/s/exits/c1".into(), dir: "/s/containers/c1".into() };
        let session =
            |exec_id: &str| ExecSession { id: ContainerId::new("c1").unwrap(), pid: 42, exec_id: exec_id.into() };
        assert_eq!(exec_dir(&files, &session("a1-b2")).unwrap(), PathBuf::from("/s/containers/c1/execs/a1-b2"));
        for bad in ["", "..", "../c2", "a/b", ".hidden", &"x".repeat(65)] {
            assert!(matches!(exec_dir(&files, &session(bad)), Err(Error::NotSupervised { .. })), "{bad:?}");
        }
    }

    #[test]
    fn each_new_exec_gets_its_own_private_directory() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let files = ContainerFiles { exit_file: root.path().join("exits/c1"), dir: root.path().join("c1") };
        let c1 = ContainerId::new("c1").unwrap();
        let unknown = new_exec_dir(&c1, &files);
        assert!(matches!(unknown, Err(Error::NotFound { .. })), "no directory, no container: {unknown:?}");
        assert!(!files.dir.exists(), "nothing is made for a container conmon does not hold");
        std::fs::create_dir(&files.dir).unwrap();
        let (first, first_dir) = new_exec_dir(&c1, &files).unwrap();
        let (second, second_dir) = new_exec_dir(&c1, &files).unwrap();
        assert_ne!(first, second);
        for (id, dir) in [(first, first_dir), (second, second_dir)] {
            assert_eq!(dir, root.path().join("c1/execs").join(&id));
            assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
            let session = ExecSession { id: c1.clone(), pid: 1, exec_id: id };
            assert_eq!(exec_dir(&files, &session).unwrap(), dir, "an id the monitor made is one it accepts");
        }
    }
}
