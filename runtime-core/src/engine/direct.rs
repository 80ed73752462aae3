//! [`DirectMonitor`]: the embedding process supervises its containers itself.
//!
//! No process per container: while `create` (or `run`, `restore`, a background exec) runs, the
//! embedding process is a child subreaper (`PR_SET_CHILD_SUBREAPER`), so when the runtime exits
//! the process it leaves behind — orphaned — becomes the embedding process's child. A pidfd on
//! the tokio reactor says when it ends; `waitid(P_PIDFD)` reaps exactly that process and gives
//! its status (any signal, real-time ones included), which is written to the exit file (as
//! conmon writes it, with the exact ending beside it) and handed to every waiter.
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
//! containers that must outlive their caller with their exit codes. Being a subreaper is
//! process-wide, for the length of a call: an orphan of another program this process started
//! that is adopted in that window becomes its child, and is not reaped by the library (nothing
//! tells such an orphan apart from the program's own children, whose statuses are the
//! program's to wait for).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::contract::backend::OciBackend;
use crate::contract::error::{Error, Result};
use crate::contract::exit::Exit;
use crate::contract::id::ContainerId;
use crate::contract::monitor::{
    ContainerFiles, CreateRequest, ExecRequest, ExecSession, Launch, Monitor, RestoreRequest,
};
use crate::contract::options::{Created, ExecOptions, ExecOutcome, ExecStdio};
use crate::contract::signal::Signal;
use crate::engine::oom::OomCounter;
use crate::engine::pidfd::ProcessHandle;
use crate::engine::state_root::{read_exit, write_exit};

/// Supervises containers from inside the embedding process.
#[derive(Debug, Default)]
pub struct DirectMonitor {
    containers: Mutex<HashMap<ContainerId, Watched>>,
    execs: Mutex<HashMap<u32, Watched>>,
}

/// The processes watched in this process, by pid, until reaped: a process is watched (and
/// reaped) once, however many monitors supervise it.
static LIVE_WATCHES: LazyLock<Mutex<HashMap<u32, Watched>>> = LazyLock::new(Default::default);

/// One supervised process: its pidfd, its exit once seen, and where its exit is recorded.
#[derive(Debug, Clone)]
struct Watched {
    handle: Option<Arc<ProcessHandle>>,
    exit: watch::Receiver<Option<Exit>>,
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
        // A container's (its files are given): its memory cgroup is found while the init lives.
        let oom = files.as_ref().and_then(|_| oom_counter(pid, &id));
        let record_to: RecordTo = Arc::new(Mutex::new(files));
        let watched = Watched { handle: handle.clone(), exit, record_to: record_to.clone() };
        if handle.is_some() {
            live.insert(pid, watched.clone());
        }
        tokio::spawn(async move {
            let exit = match handle {
                Some(handle) => match handle.exited().await {
                    Ok(()) => handle.reap().await,
                    Err(err) => {
                        tracing::warn!(%id, pid, %err, "waiting on a pidfd failed");
                        Exit::Unknown
                    }
                },
                None => Exit::Unknown,
            };
            // Held while recording, so that a release waits for a record under way to finish.
            let files = record_to.lock().unwrap_or_else(|p| p.into_inner());
            let exit = match (exit, files.as_ref()) {
                // Reaped by another watch before this one began (a watch of a dropped monitor
                // that has finished): what it recorded is the answer.
                (Exit::Unknown, Some(files)) => read_exit(files).ok().flatten().unwrap_or(Exit::Unknown),
                (exit, Some(files)) => {
                    if let Some(oom) = &oom {
                        record_oom(files, oom, &id);
                    }
                    record_exit(files, exit, &id);
                    exit
                }
                (exit, None) => exit,
            };
            drop(files);
            tracing::debug!(%id, pid, %exit, "process ended");
            // No receiver left is fine: the exit file holds it.
            let _ = sender.send(Some(exit));
            // Only now may the pid name another process.
            LIVE_WATCHES.lock().unwrap_or_else(|p| p.into_inner()).remove(&pid);
        });
        watched
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

#[async_trait]
impl Monitor for DirectMonitor {
    fn name(&self) -> &str {
        "direct"
    }

    async fn create(&self, backend: &dyn OciBackend, req: CreateRequest) -> Result<Created> {
        let CreateRequest { id, bundle, options, launch, files } = req;
        let _subreaper = Subreaper::hold()?;
        let created = match launch {
            Launch::Create => backend.create(&id, &bundle, options).await?,
            Launch::Run => backend.run(&id, &bundle, options).await?,
        };
        self.supervise(&id, created.pid, &files);
        Ok(created)
    }

    async fn restore(&self, backend: &dyn OciBackend, req: RestoreRequest) -> Result<Created> {
        let RestoreRequest { id, bundle, options, files } = req;
        let _subreaper = Subreaper::hold()?;
        let created = backend.restore(&id, &bundle, options).await?;
        self.supervise(&id, created.pid, &files);
        Ok(created)
    }

    async fn exec(&self, backend: &dyn OciBackend, req: ExecRequest) -> Result<ExecSession> {
        let ExecRequest { id, process, options } = req;
        let options = ExecOptions {
            detach: true,
            stdio: match options.stdio {
                ExecStdio::Capture => ExecStdio::Wired(crate::ContainerStdio::Null),
                wired => wired,
            },
            ..options
        };
        let _subreaper = Subreaper::hold()?;
        let ExecOutcome::Detached { pid } = backend.exec(&id, &process, options).await? else {
            return Err(Error::parse("the answer to a detached exec", "an exit status instead of a pid"));
        };
        let watched = Self::watch(pid, None, format!("{id} exec {pid}"));
        self.execs.lock().unwrap_or_else(|p| p.into_inner()).insert(pid, watched);
        Ok(ExecSession { id, pid })
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

    async fn wait_exec(&self, session: &ExecSession) -> Result<Exit> {
        let receiver = self.execs.lock().unwrap_or_else(|p| p.into_inner()).get(&session.pid).map(|w| w.exit.clone());
        let receiver =
            receiver.ok_or_else(|| Error::NotSupervised { what: format!("exec {} in {}", session.pid, session.id) })?;
        let exit = until_exit(receiver).await;
        self.execs.lock().unwrap_or_else(|p| p.into_inner()).remove(&session.pid);
        Ok(exit)
    }

    async fn signal_exec(&self, session: &ExecSession, signal: Signal) -> Result<()> {
        let handle =
            self.execs.lock().unwrap_or_else(|p| p.into_inner()).get(&session.pid).and_then(|w| w.handle.clone());
        let handle =
            handle.ok_or_else(|| Error::NotSupervised { what: format!("exec {} in {}", session.pid, session.id) })?;
        match handle.signal(signal) {
            // Already ended (and reaped): nothing left to signal.
            Err(err) if err.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            other => other.map_err(|err| Error::io(format!("signalling exec {} in {}", session.pid, session.id), err)),
        }
    }

    async fn release(&self, id: &ContainerId, _files: &ContainerFiles) -> Result<()> {
        // The watch goes on until its process is reaped (no zombie), recording nothing.
        if let Some(watched) = self.containers.lock().unwrap_or_else(|p| p.into_inner()).remove(id) {
            watched.let_go();
        }
        Ok(())
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
}
