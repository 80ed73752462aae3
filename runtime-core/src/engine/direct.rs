//! [`DirectMonitor`]: the embedding process supervises its containers itself.
//!
//! No process per container: while `create` (or `run`, `restore`, a background exec) runs, the
//! embedding process is a child subreaper (`PR_SET_CHILD_SUBREAPER`), so when the runtime exits
//! the process it leaves behind — orphaned — becomes the embedding process's child. A pidfd on
//! the tokio reactor says when it ends; `waitid(P_PIDFD)` reaps exactly that process and gives
//! its status (any signal, real-time ones included), which is handed to every waiter and
//! written to the exit file (as conmon writes it, with the exact ending beside it).
//!
//! Between the reap and the waiters, one trip to tokio's blocking pool reads the OOM counter and
//! writes the files, then tells the waiters from there: the exit is on disk when anyone learns
//! it, and the executor never waits for a file. The init's memory cgroup is found likewise off
//! the executor while the runtime's create returns and the engine saves its record;
//! [`Monitor::ready_to_start`] makes a start wait for it, so that a created init cannot end
//! before it is found.
//!
//! A process is watched once per embedding process, however many monitors supervise it (an
//! engine reconnected in the same process, a monitor dropped and made again): the watch is a
//! task of its own, not owned by the monitor value, so dropping a monitor hands its watches on
//! and releasing a container never leaves its init unreaped; it only stops recording.
//!
//! What this monitor cannot do, honestly stated: its supervision ends with the embedding
//! process (or its tokio runtime). Containers keep running when it exits, but their inits are
//! then reparented away and nobody records how they end: after a restart,
//! [`crate::Engine::reconnect`] reports such an exit as [`Exit::Unknown`]. Use conmon for
//! containers that must outlive their caller with their exit codes. Background execs are not
//! durable either: they are known to the monitor that started them, in memory (their exec id is
//! their pid), and any other monitor answers their sessions with [`Error::NotSupervised`]. Being a subreaper is
//! process-wide, for the length of a call: an orphan of another program this process started
//! that is adopted in that window becomes its child, and is not reaped by the library (nothing
//! tells such an orphan apart from the program's own children, whose statuses are the
//! program's to wait for).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::contract::backend::OciBackend;
use crate::contract::error::{Error, Result};
use crate::contract::exit::Exit;
use crate::contract::id::ContainerId;
use crate::contract::monitor::{
    Capability, ContainerFiles, CreateRequest, ExecRequest, ExecSession, Launch, Monitor, RestoreRequest,
};
use crate::contract::options::{ContainerStdio, CreateOptions, Created, ExecOptions, ExecOutcome};
use crate::contract::output::{AttachStdin, LogDriver, MonitorStdio};
use crate::contract::signal::Signal;
use crate::engine::KILL_GRACE;
use crate::engine::oom::OomCounter;
use crate::engine::pidfd::ProcessHandle;
use crate::engine::state_root::{read_exit, write_exit};
use crate::exec_tree::ExecTree;

/// Supervises containers from inside the embedding process.
#[derive(Debug, Default)]
pub struct DirectMonitor {
    containers: Mutex<HashMap<ContainerId, Watched>>,
    execs: Mutex<HashMap<u32, WatchedExec>>,
}

/// The processes watched in this process, by pid, until reaped: a process is watched (and
/// reaped) once, however many monitors supervise it.
static LIVE_WATCHES: LazyLock<Mutex<HashMap<u32, Watched>>> = LazyLock::new(Default::default);

/// One supervised process: its exit once seen, and where its exit is recorded.
#[derive(Debug, Clone)]
struct Watched {
    exit: watch::Receiver<Option<Exit>>,
    /// True once its memory cgroup has been looked for (at once for a process that is no
    /// container's init): its start waits for it.
    located: watch::Receiver<bool>,
    /// Where its exit is to be recorded; emptied when the container is released, so that a
    /// process still ending after its container was deleted (or replaced by one of the same id)
    /// is reaped without recording anything.
    record_to: RecordTo,
}

type RecordTo = Arc<Mutex<Option<ContainerFiles>>>;

impl Watched {
    /// Stops recording for this process; its watch still reaps it when it ends.
    fn let_go(&self) {
        self.record_to.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// A background exec: its process (ours to reap: the runtime left it to this subreaper), its exit
/// once seen, and whether a stop asked for everything it started to end with it.
#[derive(Debug)]
struct WatchedExec {
    container: ContainerId,
    handle: Option<Arc<ProcessHandle>>,
    exit: watch::Receiver<Option<Exit>>,
    /// Set by a stop: when the process ends, every other process of its session is killed
    /// before it is reaped, while the session's id is still theirs.
    stopping: Arc<AtomicBool>,
}

/// This process is a child subreaper while at least one of these lives.
struct Subreaper;

/// How many [`Subreaper`]s live; the flag changes only with the count's lock held.
static SUBREAPERS: Mutex<usize> = Mutex::new(0);

impl Subreaper {
    fn hold() -> Result<Self> {
        let mut count = SUBREAPERS.lock().unwrap_or_else(|p| p.into_inner());
        if *count == 0 {
            nix::sys::prctl::set_child_subreaper(true)
                .map_err(|errno| Error::io("becoming a child subreaper (PR_SET_CHILD_SUBREAPER)", errno.into()))?;
        }
        *count += 1;
        Ok(Subreaper)
    }
}

impl Drop for Subreaper {
    fn drop(&mut self) {
        let mut count = SUBREAPERS.lock().unwrap_or_else(|p| p.into_inner());
        *count -= 1;
        if *count == 0 {
            // Failing to clear it only widens the window described in the module docs.
            let _ = nix::sys::prctl::set_child_subreaper(false);
        }
    }
}

impl DirectMonitor {
    /// A monitor for this process.
    pub fn new() -> Self {
        DirectMonitor::default()
    }

    /// Watches `pid` and, when it ends, reaps it and records its exit in the container's files
    /// (if given, and not let go of meanwhile) and for waiters. A process that is already gone
    /// and reaped is recorded as unknown.
    ///
    /// The watch is a task of its own on the tokio runtime, not tied to the monitor value: a
    /// monitor that is dropped hands its watches on, and they still reap their processes and
    /// record their exits for as long as the runtime runs.
    fn watch(pid: u32, files: Option<ContainerFiles>, id: String) -> Watched {
        let mut live = LIVE_WATCHES.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(watched) = live.get(&pid) {
            // Already watched in this process (by a monitor dropped since, or another one): one
            // watch reaps it, and the newest supervisor says where its exit is recorded.
            if files.is_some() {
                *watched.record_to.lock().unwrap_or_else(|p| p.into_inner()) = files;
            }
            return watched.clone();
        }
        let (sender, exit) = watch::channel(None);
        let handle = match ProcessHandle::open(pid) {
            Ok(handle) => Some(Arc::new(handle)),
            Err(err) => {
                tracing::warn!(%id, pid, %err, "the process was gone before it could be watched");
                None
            }
        };
        // A container's (its files are given): its memory cgroup is found while the init lives,
        // off the executor and off the create's path.
        let (found, located) = watch::channel(files.is_none());
        let oom = files.as_ref().map(|_| {
            let id = id.clone();
            tokio::task::spawn_blocking(move || {
                let counter = oom_counter(pid, &id);
                let _ = found.send(true);
                counter
            })
        });
        let record_to: RecordTo = Arc::new(Mutex::new(files));
        let watched = Watched { exit, located, record_to: record_to.clone() };
        if handle.is_some() {
            live.insert(pid, watched.clone());
        }
        tokio::spawn(async move {
            let (exit, oom) = match handle {
                Some(handle) => match handle.exited().await {
                    // Found before the reap, while the pid still names this process.
                    Ok(()) => {
                        let oom = match oom {
                            Some(finding) => finding.await.ok().flatten(),
                            None => None,
                        };
                        (handle.reap().await, oom)
                    }
                    Err(err) => {
                        tracing::warn!(%id, pid, %err, "waiting on a pidfd failed");
                        (Exit::Unknown, None)
                    }
                },
                None => (Exit::Unknown, None),
            };
            let files = record_to.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let recorded = match (exit, files) {
                // Reaped by another watch before this one began (a watch of a dropped monitor
                // that has finished): what it recorded is the answer.
                (Exit::Unknown, Some(files)) => {
                    tokio::task::spawn_blocking(move || {
                        let exit = read_exit(&files).ok().flatten().unwrap_or(Exit::Unknown);
                        ended(pid, &id, exit, &sender);
                    })
                    .await
                }
                // The files first, then the waiters, from the thread that wrote them: one trip
                // between the reap and the waiters, and the exit on disk when anyone learns it.
                (exit, Some(_)) => {
                    tokio::task::spawn_blocking(move || {
                        record(&record_to, oom.as_ref(), exit, &id);
                        ended(pid, &id, exit, &sender);
                    })
                    .await
                }
                (exit, None) => {
                    ended(pid, &id, exit, &sender);
                    Ok(())
                }
            };
            if let Err(err) = recorded {
                tracing::warn!(pid, %err, "recording an exit did not finish");
            }
        });
        watched
    }

    /// Watches the background exec `pid` in `id` and reaps it when it ends. Reaping at once
    /// matters beyond this process: a container's init cannot finish dying while a process of
    /// its pid namespace is an unreaped zombie.
    fn watch_exec(id: &ContainerId, pid: u32) -> WatchedExec {
        let (sender, exit) = watch::channel(None);
        let name = format!("{id} exec {pid}");
        let handle = match ProcessHandle::open(pid) {
            Ok(handle) => Some(Arc::new(handle)),
            Err(err) => {
                tracing::warn!(exec = %name, %err, "the process was gone before it could be watched");
                None
            }
        };
        // Read before the task below can reap the process.
        let tree = handle.as_ref().and_then(|_| ExecTree::of(pid));
        let stopping = Arc::new(AtomicBool::new(false));
        let (watched, stop) = (handle.clone(), Arc::clone(&stopping));
        tokio::spawn(async move {
            let exit = match watched {
                Some(handle) => match handle.exited().await {
                    Ok(()) => {
                        if let Some(tree) = tree.filter(|_| stop.load(Ordering::SeqCst)) {
                            let killed = tokio::task::spawn_blocking(move || tree.kill()).await.unwrap_or_default();
                            tracing::debug!(exec = %name, killed, "ended what the stopped exec started");
                        }
                        handle.reap().await
                    }
                    Err(err) => {
                        tracing::warn!(exec = %name, %err, "waiting on a pidfd failed");
                        Exit::Unknown
                    }
                },
                None => Exit::Unknown,
            };
            tracing::debug!(exec = %name, %exit, "process ended");
            let _ = sender.send(Some(exit));
        });
        WatchedExec { container: id.clone(), handle, exit, stopping }
    }

    /// Supervises the background exec `pid` the runtime left to this process, until forgotten.
    fn supervise_exec(&self, id: ContainerId, pid: u32) -> Result<ExecSession> {
        let watched = Self::watch_exec(&id, pid);
        let mut execs = self.execs.lock().unwrap_or_else(|p| p.into_inner());
        match execs.entry(pid) {
            // An exec that ended and was never waited for keeps its entry, and the kernel may
            // since have given its pid to this one: the new process must not answer for the
            // old (nor lose the old one's exit), so it is refused, and ended with its tree.
            std::collections::hash_map::Entry::Occupied(_) => {
                drop(execs);
                watched.stopping.store(true, Ordering::SeqCst);
                if let Some(handle) = &watched.handle {
                    let _ = handle.signal(Signal::KILL);
                }
                Err(Error::NotSupervised {
                    what: format!("exec {pid} in {id}, whose pid still names an earlier exec nobody waited for"),
                })
            }
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(watched);
                Ok(ExecSession { id, pid, exec_id: pid.to_string() })
            }
        }
    }

    /// The exec `session` names, if this monitor supervises it.
    fn watched_exec<T>(&self, session: &ExecSession, what: impl FnOnce(&WatchedExec) -> T) -> Result<T> {
        let execs = self.execs.lock().unwrap_or_else(|p| p.into_inner());
        let watched = execs
            .get(&session.pid)
            .filter(|watched| watched.container == session.id && session.exec_id == session.pid.to_string());
        watched
            .map(what)
            .ok_or_else(|| Error::NotSupervised { what: format!("exec {} in {}", session.pid, session.id) })
    }

    /// Drops the entry of `session` once its exit is known.
    fn drop_exec(&self, session: &ExecSession) {
        let mut execs = self.execs.lock().unwrap_or_else(|p| p.into_inner());
        if execs.get(&session.pid).is_some_and(|watched| watched.container == session.id) {
            execs.remove(&session.pid);
        }
    }

    fn supervise(&self, id: &ContainerId, pid: u32, files: &ContainerFiles) {
        let watched = Self::watch(pid, Some(files.clone()), id.as_str().to_owned());
        let previous = self.containers.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), watched.clone());
        if let Some(previous) = previous.filter(|previous| !Arc::ptr_eq(&previous.record_to, &watched.record_to)) {
            previous.let_go();
        }
    }

    fn receiver(&self, id: &ContainerId) -> Option<watch::Receiver<Option<Exit>>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner()).get(id).map(|w| w.exit.clone())
    }
}

/// Hands the exit of `pid` to its waiters and lets its pid go.
fn ended(pid: u32, id: &str, exit: Exit, sender: &watch::Sender<Option<Exit>>) {
    tracing::debug!(%id, pid, %exit, "process ended");
    // No receiver left is fine: the exit file holds it.
    let _ = sender.send(Some(exit));
    // Reaped: the pid may name another process from now on.
    LIVE_WATCHES.lock().unwrap_or_else(|p| p.into_inner()).remove(&pid);
}

/// Records a container's end where `record_to` says, unless it was released meanwhile: the
/// OOM kills its cgroup counted, then the exit. Holds `record_to` throughout, so that a
/// release waits for a record under way to finish.
fn record(record_to: &RecordTo, oom: Option<&OomCounter>, exit: Exit, id: &str) {
    let files = record_to.lock().unwrap_or_else(|p| p.into_inner());
    let Some(files) = files.as_ref() else { return };
    if let Some(oom) = oom {
        record_oom(files, oom, id);
    }
    record_exit(files, exit, id);
}

/// Writes the exit file, unless the container was deleted meanwhile (another process may delete
/// a container this one watches): the directory goes first when a container is forgotten, so an
/// exit file written after that is taken back here and none is left behind.
fn record_exit(files: &ContainerFiles, exit: Exit, id: &str) {
    if let Err(err) = write_exit(files, exit) {
        tracing::warn!(%id, %err, "cannot record the exit");
    }
    if !files.dir.exists() {
        let _ = std::fs::remove_file(&files.exit_file);
    }
}

/// The OOM counter of the memory cgroup `pid` is in; none (with the reason logged) when it
/// cannot be found, and then no OOM kill is ever reported for it.
fn oom_counter(pid: u32, id: &str) -> Option<OomCounter> {
    match OomCounter::of(pid) {
        Ok(Some(counter)) => Some(counter),
        Ok(None) => {
            tracing::debug!(%id, pid, "no memory cgroup to count OOM kills in");
            None
        }
        Err(err) => {
            tracing::warn!(%id, pid, %err, "cannot find the memory cgroup; OOM kills will not be reported");
            None
        }
    }
}

/// Records an OOM kill the cgroup counted, before the exit is recorded: whoever sees the exit
/// sees the OOM file too.
fn record_oom(files: &ContainerFiles, oom: &OomCounter, id: &str) {
    match oom.record(files) {
        Ok(killed) => tracing::debug!(%id, killed, "OOM kills read"),
        Err(err) => tracing::warn!(%id, %err, "cannot read or record the OOM kills"),
    }
}

async fn until_exit(mut exit: watch::Receiver<Option<Exit>>) -> Exit {
    match exit.wait_for(Option::is_some).await {
        Ok(seen) => seen.unwrap_or(Exit::Unknown),
        // The watching task ended without a word (its runtime shut down): nobody saw the end.
        Err(_) => Exit::Unknown,
    }
}

impl DirectMonitor {
    /// Whether this monitor serves `wanted`, refused before anything runs if not: it keeps no
    /// log and holds no stdin (the runtime is handed the container's stdio as `stdio` wires
    /// it), so it serves its default and passthrough, and dropped output when `stdio` drops it.
    fn serves(&self, wanted: &MonitorStdio, stdio: &ContainerStdio) -> Result<()> {
        match &wanted.log {
            LogDriver::MonitorDefault | LogDriver::Passthrough => {}
            LogDriver::None if matches!(stdio, ContainerStdio::Null) => {}
            LogDriver::None => {
                return Err(Error::InvalidArgument {
                    option: "MonitorStdio::log".to_owned(),
                    reason: "LogDriver::None drops the output that CreateOptions::stdio wires; \
                        the direct monitor hands the container the stdio as wired"
                        .to_owned(),
                });
            }
            LogDriver::K8sFile { .. } => self.require(Capability::Logs, "LogDriver::K8sFile")?,
            LogDriver::Journald { .. } => {
                return Err(Error::Unsupported {
                    backend: format!("the {} monitor", self.name()),
                    feature: "LogDriver::Journald".to_owned(),
                    reason: format!("the {} monitor cannot send a container's output to the journal", self.name()),
                });
            }
        }
        match wanted.stdin {
            AttachStdin::Closed => Ok(()),
            AttachStdin::UntilDetach => self.require(Capability::Attach, "AttachStdin::UntilDetach"),
            AttachStdin::KeptOpen => self.require(Capability::Attach, "AttachStdin::KeptOpen"),
        }
    }
}

#[async_trait]
impl Monitor for DirectMonitor {
    fn name(&self) -> &str {
        "direct"
    }

    fn capabilities(&self) -> &[Capability] {
        &[Capability::Exec, Capability::Oom, Capability::Restore]
    }

    async fn create(&self, backend: &dyn OciBackend, req: CreateRequest) -> Result<Created> {
        let CreateRequest { id, bundle, options, launch, files } = req;
        self.serves(&options.monitor_stdio, &options.stdio)?;
        refuse_monitor_only(options.monitor_only_option())?;
        let _subreaper = Subreaper::hold()?;
        // The init's pid is written in the container's own private directory, which the engine
        // made before the runtime runs: no directory of its own for each create.
        let options =
            CreateOptions { pid_file: options.pid_file.or_else(|| Some(files.dir.join("init.pid"))), ..options };
        let created = match launch {
            Launch::Create => backend.create(&id, &bundle, options).await?,
            Launch::Run => backend.run(&id, &bundle, options).await?,
        };
        self.supervise(&id, created.pid, &files);
        Ok(created)
    }

    async fn restore(&self, backend: &dyn OciBackend, req: RestoreRequest) -> Result<Created> {
        let RestoreRequest { id, bundle, options, files } = req;
        self.serves(&options.monitor_stdio, &options.stdio)?;
        refuse_monitor_only(options.monitor_only_option())?;
        let _subreaper = Subreaper::hold()?;
        let created = backend.restore(&id, &bundle, options).await?;
        self.supervise(&id, created.pid, &files);
        Ok(created)
    }

    async fn exec(&self, backend: &dyn OciBackend, req: ExecRequest) -> Result<ExecSession> {
        // Its execs are kept in memory, not in the container's files: they end with this process.
        let ExecRequest { id, process, options, files: _ } = req;
        let _subreaper = Subreaper::hold()?;
        let options = ExecOptions { detach: true, ..options };
        let ExecOutcome::Detached { pid } = backend.exec(&id, &process, options).await? else {
            return Err(Error::parse("the answer to a detached exec", "an exit status instead of a pid"));
        };
        self.supervise_exec(id, pid)
    }

    async fn adopt(&self, id: &ContainerId, pid: u32, files: &ContainerFiles) -> Result<()> {
        self.supervise(id, pid, files);
        Ok(())
    }

    async fn exit_status(&self, id: &ContainerId, files: &ContainerFiles) -> Result<Option<Exit>> {
        if let Some(exit) = self.receiver(id).and_then(|receiver| *receiver.borrow()) {
            return Ok(Some(exit));
        }
        read_exit(files)
    }

    async fn wait(&self, id: &ContainerId, files: &ContainerFiles) -> Result<Exit> {
        match self.receiver(id) {
            Some(receiver) => Ok(until_exit(receiver).await),
            // Not watched by this process: what the exit file says, or nothing seen.
            None => Ok(read_exit(files)?.unwrap_or(Exit::Unknown)),
        }
    }

    async fn ready_to_start(&self, id: &ContainerId) {
        let located = self.containers.lock().unwrap_or_else(|p| p.into_inner()).get(id).map(|w| w.located.clone());
        if let Some(mut located) = located {
            // A closed channel is a search that ended too (its runtime shutting down).
            let _ = located.wait_for(|found| *found).await;
        }
    }

    async fn wait_exec(&self, session: &ExecSession, _files: &ContainerFiles) -> Result<Exit> {
        let exit = until_exit(self.watched_exec(session, |watched| watched.exit.clone())?).await;
        self.drop_exec(session);
        Ok(exit)
    }

    async fn stop_exec(&self, session: &ExecSession, _files: &ContainerFiles, timeout: Duration) -> Result<Exit> {
        let (handle, exit) = self.watched_exec(session, |watched| {
            watched.stopping.store(true, Ordering::SeqCst);
            (watched.handle.clone(), watched.exit.clone())
        })?;
        let what = format!("exec {} in {}", session.pid, session.id);
        let signal = |signal| match handle.as_ref().map(|handle| handle.signal(signal)) {
            // Reaped already: nothing is left to signal.
            Some(Err(err)) if err.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            Some(Err(err)) => Err(Error::io(format!("signalling {what}"), err)),
            Some(Ok(())) | None => Ok(()),
        };
        signal(Signal::TERM)?;
        let ended = match tokio::time::timeout(timeout, until_exit(exit.clone())).await {
            Ok(ended) => Ok(ended),
            Err(_) => {
                tracing::info!(exec = %what, ?timeout, "SIGTERM did not end it; sending SIGKILL");
                signal(Signal::KILL)?;
                tokio::time::timeout(KILL_GRACE, until_exit(exit)).await.map_err(|_| Error::DidNotStop {
                    id: format!("{} (exec)", session.id),
                    pid: Some(session.pid),
                    waited: KILL_GRACE,
                })
            }
        };
        self.drop_exec(session);
        ended
    }

    async fn release(&self, id: &ContainerId, _files: &ContainerFiles) -> Result<()> {
        // The watch goes on until its process is reaped (no zombie), recording nothing.
        if let Some(watched) = self.containers.lock().unwrap_or_else(|p| p.into_inner()).remove(id) {
            watched.let_go();
        }
        // Ended with the container; their watches still reap them.
        self.execs.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, watched| watched.container != *id);
        Ok(())
    }
}

/// Refuses an option only a monitor that outlives the embedding process serves. Held
/// in-process, a port, the systemd environment or relay, or an exit command would end with the
/// embedding process rather than with the container: an exit command promised to run after the
/// exit would not run when the embedding process is gone first.
fn refuse_monitor_only(option: Option<&'static str>) -> Result<()> {
    match option {
        None => Ok(()),
        Some(option) => Err(Error::Unsupported {
            backend: "the direct monitor".into(),
            feature: option.into(),
            reason: "the direct monitor runs the runtime itself and holds nothing for a container beyond its exit"
                .into(),
        }),
    }
}

#[cfg(test)]
// The children are reaped through the pidfds under test, not through `Child::wait`.
#[allow(clippy::zombie_processes)]
mod tests {
    use super::*;

    #[test]
    fn the_process_is_a_subreaper_only_while_a_supervised_call_holds_it() {
        let is_subreaper = || nix::sys::prctl::get_child_subreaper().unwrap();
        assert!(!is_subreaper(), "not before");
        let first = Subreaper::hold().unwrap();
        let second = Subreaper::hold().unwrap();
        assert!(is_subreaper());
        drop(first);
        assert!(is_subreaper(), "while any call still holds it");
        drop(second);
        assert!(!is_subreaper(), "not after the last");
    }

    #[test]
    fn an_exit_seen_after_the_container_was_forgotten_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = ContainerFiles { exit_file: dir.path().join("exit"), dir: dir.path().join("deleted") };
        record_exit(&files, Exit::Exited(1), "c1");
        assert!(!files.exit_file.exists());
    }

    /// The files of a container `c1` whose directory exists, in `dir`.
    fn container_files(dir: &std::path::Path) -> ContainerFiles {
        let files = ContainerFiles { exit_file: dir.join("exit"), dir: dir.join("c1") };
        std::fs::create_dir(&files.dir).unwrap();
        files
    }

    /// A child that exits with `code` once its stdin is closed.
    fn child_exiting_on_eof(code: i32) -> std::process::Child {
        std::process::Command::new("sh")
            .args(["-c", &format!("read line; exit {code}")])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    #[tokio::test]
    async fn a_released_containers_init_is_still_reaped_and_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = container_files(dir.path());
        let mut child = child_exiting_on_eof(5);
        let monitor = DirectMonitor::new();
        let id = ContainerId::new("c1").unwrap();
        monitor.supervise(&id, child.id(), &files);
        let receiver = monitor.receiver(&id).unwrap();
        monitor.release(&id, &files).await.unwrap();
        drop(child.stdin.take()); // the init ends after its container was released
        assert_eq!(until_exit(receiver).await, Exit::Exited(5));
        assert!(!std::path::Path::new(&format!("/proc/{}", child.id())).exists(), "reaped, not a zombie");
        assert!(!files.exit_file.exists(), "a released container's exit is not recorded");
        assert_eq!(std::fs::read_dir(&files.dir).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_dropped_monitor_hands_its_watches_on() {
        let dir = tempfile::tempdir().unwrap();
        let files = container_files(dir.path());
        let mut child = child_exiting_on_eof(9);
        let monitor = DirectMonitor::new();
        monitor.supervise(&ContainerId::new("c1").unwrap(), child.id(), &files);
        drop(monitor);
        drop(child.stdin.take());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !files.exit_file.exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(std::fs::read_to_string(&files.exit_file).unwrap(), "9");
        assert!(!std::path::Path::new(&format!("/proc/{}", child.id())).exists(), "reaped, not a zombie");
    }

    #[tokio::test]
    async fn a_watched_child_records_its_exit_in_the_file_and_for_waiters() {
        let dir = tempfile::tempdir().unwrap();
        let exit_file = dir.path().join("c1");
        let child = std::process::Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
        let files = ContainerFiles { exit_file: exit_file.clone(), dir: dir.path().join("c1-dir") };
        std::fs::create_dir(&files.dir).unwrap();
        let watched = DirectMonitor::watch(child.id(), Some(files), "c1".into());
        assert_eq!(until_exit(watched.exit).await, Exit::Exited(7));
        assert_eq!(std::fs::read_to_string(&exit_file).unwrap(), "7");
    }

    /// Runs `test` on a runtime whose blocking pool has one thread, which `test` may hold with
    /// [`hold_the_blocking_pool`] to keep file work from running.
    fn with_one_blocking_thread(test: impl std::future::Future<Output = ()>) {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().max_blocking_threads(1).build().unwrap();
        runtime.block_on(test);
    }

    /// Occupies the blocking pool's one thread until the sender returned is dropped.
    async fn hold_the_blocking_pool() -> std::sync::mpsc::Sender<()> {
        let (held, release) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let _ = started.send(());
            let _ = release.recv();
        });
        running.await.unwrap();
        held
    }

    /// `c1`, supervised with its init a child that exits with `code` once its stdin is closed,
    /// and its memory cgroup looked for already.
    async fn supervised_c1(monitor: &DirectMonitor, files: &ContainerFiles, code: i32) -> std::process::Child {
        let child = child_exiting_on_eof(code);
        monitor.supervise(&c1(), child.id(), files);
        monitor.ready_to_start(&c1()).await;
        child
    }

    #[test]
    fn a_waiter_is_told_of_an_exit_only_once_it_is_on_disk() {
        with_one_blocking_thread(async {
            let dir = tempfile::tempdir().unwrap();
            let files = container_files(dir.path());
            let monitor = DirectMonitor::new();
            let mut child = supervised_c1(&monitor, &files, 6).await;
            let receiver = monitor.receiver(&c1()).unwrap();
            let held = hold_the_blocking_pool().await;
            drop(child.stdin.take());
            // Reaped on the executor; recorded on the blocking pool, which is held.
            while std::path::Path::new(&format!("/proc/{}", child.id())).exists() {
                tokio::task::yield_now().await;
            }
            assert_eq!(*receiver.borrow(), None, "nobody is told before the files are written");
            assert_eq!(monitor.exit_status(&c1(), &files).await.unwrap(), None);
            drop(held);
            assert_eq!(monitor.wait(&c1(), &files).await.unwrap(), Exit::Exited(6));
            assert_eq!(files.recorded_exit().unwrap(), Some(Exit::Exited(6)), "on disk when the waiter is told");
        });
    }

    fn state_of(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit(')').next()?.trim_start().chars().next()
    }

    /// Files of a container that does not exist: the direct monitor keeps its execs in memory
    /// and never reads them.
    fn unread_files() -> ContainerFiles {
        ContainerFiles { exit_file: "/nonexistent/exits/c1".into(), dir: "/nonexistent/c1".into() }
    }

    fn c1() -> ContainerId {
        ContainerId::new("c1").unwrap()
    }

    #[tokio::test]
    async fn an_exec_that_ended_is_reaped_at_once_and_its_exit_kept_until_waited_for() {
        let monitor = DirectMonitor::new();
        let child = std::process::Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let session = monitor.supervise_exec(c1(), child.id()).unwrap();
        // No zombie: one would keep the container's init from finishing its own exit.
        let reaped = async {
            while state_of(child.id()).is_some() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), reaped).await.expect("reaped without a wait");
        assert_eq!(monitor.wait_exec(&session, &unread_files()).await.unwrap(), Exit::Exited(3));
        assert!(monitor.execs.lock().unwrap().is_empty(), "forgotten once waited for");
    }

    #[tokio::test]
    async fn a_session_is_known_by_its_pid_and_exec_id_together() {
        let monitor = DirectMonitor::new();
        let child = std::process::Command::new("sh").args(["-c", "exit 4"]).spawn().unwrap();
        let session = monitor.supervise_exec(c1(), child.id()).unwrap();
        assert_eq!(session.exec_id, child.id().to_string());
        let renamed = ExecSession { exec_id: "another".into(), ..session.clone() };
        assert!(matches!(monitor.wait_exec(&renamed, &unread_files()).await, Err(Error::NotSupervised { .. })));
        assert_eq!(monitor.wait_exec(&session, &unread_files()).await.unwrap(), Exit::Exited(4));
    }

    #[tokio::test]
    async fn a_pid_that_names_a_known_exec_is_refused_and_the_known_one_still_answers() {
        let monitor = DirectMonitor::new();
        let child = std::process::Command::new("sleep").arg("100").spawn().unwrap();
        let session = monitor.supervise_exec(c1(), child.id()).unwrap();
        let other = ContainerId::new("c2").unwrap();
        assert!(matches!(monitor.supervise_exec(other, child.id()), Err(Error::NotSupervised { .. })));
        // The refused one was killed; the known session reports that end as its own.
        assert_eq!(monitor.wait_exec(&session, &unread_files()).await.unwrap(), Exit::Signaled(Signal::KILL));
    }

    #[tokio::test]
    async fn an_exec_never_waited_for_is_forgotten_and_reaped_when_its_container_is_released() {
        let monitor = DirectMonitor::new();
        let mut child = std::process::Command::new("sleep").arg("100").spawn().unwrap();
        let session = monitor.supervise_exec(c1(), child.id()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = ContainerFiles { exit_file: dir.path().join("exit"), dir: dir.path().to_path_buf() };
        monitor.release(&c1(), &files).await.unwrap();
        assert!(monitor.execs.lock().unwrap().is_empty(), "forgotten with its container");
        assert!(matches!(monitor.wait_exec(&session, &files).await, Err(Error::NotSupervised { .. })));
        // Deleting the container kills it; the task that held it still reaps it.
        child.kill().unwrap();
        let reaped = async {
            while state_of(child.id()).is_some() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), reaped).await.expect("no zombie is left");
    }
}
