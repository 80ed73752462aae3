//! The engine's state on disk, under one root the caller chooses.
//!
//! ```text
//! <root>/                 0700
//!   exits/<id>            exit files: the status as decimal text, written once, atomically
//!   containers/<id>/      0700, one per container: record.json, and the monitor's own files
//!     oom                 empty, present once the OOM killer struck the container (as conmon's)
//!     init.pid            the direct monitor's pid file for the runtime's create or run
//!   locks/<id>            flock(2) files: one process at a time works on a container
//! ```
//!
//! The state survives the embedding program: [`crate::Engine::reconnect`] finds its containers
//! again from `containers/`, and an exit recorded while it was away from `exits/`. Locks are
//! per container so that different containers proceed in parallel; a lock file is removed with
//! its container, and a locker that finds it removed under it starts over, so two processes can
//! never hold "the" lock of one id at once.
//!
//! A lock is taken with `flock(LOCK_EX | LOCK_NB)` attempts and a short async pause between
//! them, never with a blocking `flock`: a thread blocked in `flock(2)` cannot be called back, so
//! a caller that gave up (dropped its call, or hit the bound) would leave it waiting, and taking
//! the lock later for nobody. The wait is bounded ([`DEFAULT_LOCK_WAIT`], or
//! [`StateRoot::with_lock_wait`]): past it, [`Error::WaitTimeout`].

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::blocking::off_executor;
use crate::caller::Caller;
use crate::contract::error::{Error, Result};
use crate::contract::exit::Exit;
use crate::contract::id::ContainerId;
use crate::contract::monitor::ContainerFiles;
use crate::contract::signal::Signal;

/// How long a call waits for the lock of a container that another call holds, unless
/// [`StateRoot::with_lock_wait`] says otherwise: long enough for any call to end by its own
/// bounds with the default timeouts (a create through a monitor may take 240 s, as in libpod; a
/// stop its timeout, [`crate::KILL_GRACE`] and its runtime calls). A lock held longer belongs to
/// a call that hangs past every bound, or to a process that was stopped.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(300);

/// The first pause between two attempts to take a lock, doubled after each up to
/// [`LOCK_PAUSE_MAX`]: a lock held for a moment is taken at once, and a long wait costs a few
/// system calls a second.
const LOCK_PAUSE_MIN: Duration = Duration::from_millis(1);
const LOCK_PAUSE_MAX: Duration = Duration::from_millis(50);

/// [`StateRoot::default_path`] for `caller`, whose `XDG_RUNTIME_DIR` is `runtime_dir`.
fn default_path_for(caller: &Caller, runtime_dir: Option<&std::ffi::OsStr>) -> Result<PathBuf> {
    match caller.is_rootless() {
        true => Ok(caller.runtime_dir_from(runtime_dir)?.join("ocikit")),
        false => Ok(PathBuf::from("/run/ocikit")),
    }
}

/// The directory the engine keeps its state in.
#[derive(Debug, Clone)]
pub struct StateRoot {
    path: PathBuf,
    lock_wait: Duration,
}

/// What the engine remembers of a container it made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ContainerRecord {
    pub id: ContainerId,
    pub bundle: PathBuf,
    /// The backend that made it.
    pub backend: String,
    /// The monitor that supervises it.
    pub monitor: String,
    /// Its init pid once the runtime said it; the record is made before the runtime runs.
    #[serde(default)]
    pub pid: Option<u32>,
    /// The signal `stop` sends first, from the spec's stop-signal annotation, else TERM.
    pub stop_signal: i32,
    /// Dumped by a checkpoint that stopped it: the container lives on as its images only.
    #[serde(default)]
    pub checkpointed: bool,
}

impl StateRoot {
    /// The state root at `path`, made (0700) if missing.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let root = StateRoot { path: path.into(), lock_wait: DEFAULT_LOCK_WAIT };
        for dir in [root.path.clone(), root.path.join("exits"), root.path.join("containers"), root.path.join("locks")] {
            private_dir(&dir)?;
        }
        Ok(root)
    }

    /// `/run/ocikit` for root, `$XDG_RUNTIME_DIR/ocikit` for a rootless caller
    /// ([`Caller`]), whose runtime directory must be usable: else [`Error::RuntimeDir`].
    pub fn default_path() -> Result<PathBuf> {
        default_path_for(Caller::current(), std::env::var_os("XDG_RUNTIME_DIR").as_deref())
    }

    /// The same root, whose calls wait at most `wait` for the lock of a container another call
    /// holds ([`DEFAULT_LOCK_WAIT`] unless set).
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The files of container `id`.
    pub fn files(&self, id: &ContainerId) -> ContainerFiles {
        ContainerFiles {
            exit_file: self.path.join("exits").join(id.as_str()),
            dir: self.path.join("containers").join(id.as_str()),
        }
    }

    fn record_path(&self, id: &ContainerId) -> PathBuf {
        self.files(id).dir.join("record.json")
    }

    /// Takes the lock of container `id`, waiting for another holder (in this process or
    /// another) to let go, at most the root's lock wait; then [`Error::WaitTimeout`]. Dropping
    /// the future stops the wait: nothing keeps waiting for the lock.
    pub(crate) async fn lock(&self, id: &ContainerId) -> Result<ContainerLock> {
        let path = self.path.join("locks").join(id.as_str());
        let deadline = tokio::time::Instant::now() + self.lock_wait;
        let mut pause = LOCK_PAUSE_MIN;
        loop {
            if let Some(lock) = ContainerLock::try_acquire(&path)? {
                return Ok(lock);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                let what = format!("the lock of container {id} ({}), held by another call", path.display());
                return Err(Error::WaitTimeout { what, after: self.lock_wait });
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(LOCK_PAUSE_MAX);
        }
    }

    /// Makes the container's directory and writes its record.
    pub(crate) async fn save(&self, record: &ContainerRecord) -> Result<()> {
        let (root, record) = (self.clone(), record.clone());
        off_executor("saving a container record", move || root.save_now(&record)).await
    }

    /// The record of container `id`, if the engine made it.
    pub(crate) async fn load(&self, id: &ContainerId) -> Result<Option<ContainerRecord>> {
        let (root, id) = (self.clone(), id.clone());
        off_executor("reading a container record", move || root.load_now(&id)).await
    }

    /// Every container the engine has a record of.
    pub(crate) async fn records(&self) -> Result<Vec<ContainerRecord>> {
        let root = self.clone();
        off_executor("reading the container records", move || root.records_now()).await
    }

    /// Removes everything of container `id`: its directory, then its exit file (in that order, so
    /// that a monitor recording an exit at the same moment sees the container gone and takes its
    /// file back). The lock goes when its guard is dropped.
    pub(crate) async fn forget(&self, id: &ContainerId) -> Result<()> {
        let (root, id) = (self.clone(), id.clone());
        off_executor("removing a container's state", move || root.forget_now(&id)).await
    }

    // The file work itself, run off the executor by the calls above, and by the engine's calls
    // that do several at once in one trip.

    pub(crate) fn forget_now(&self, id: &ContainerId) -> Result<()> {
        let files = self.files(id);
        remove_if_there(&files.dir, std::fs::remove_dir_all(&files.dir))?;
        remove_if_there(&files.exit_file, std::fs::remove_file(&files.exit_file))
    }

    pub(crate) fn save_now(&self, record: &ContainerRecord) -> Result<()> {
        private_dir(&self.files(&record.id).dir)?;
        let json =
            serde_json::to_vec_pretty(record).map_err(|err| Error::parse("container record", err.to_string()))?;
        write_atomically(&self.record_path(&record.id), &json)
    }

    pub(crate) fn load_now(&self, id: &ContainerId) -> Result<Option<ContainerRecord>> {
        let path = self.record_path(id);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|err| Error::parse(format!("container record {}", path.display()), err.to_string())),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
            Err(err) => Err(Error::io(format!("reading {}", path.display()), err)),
        }
    }

    fn records_now(&self) -> Result<Vec<ContainerRecord>> {
        let dir = self.path.join("containers");
        let entries = std::fs::read_dir(&dir).map_err(|err| Error::io(format!("listing {}", dir.display()), err))?;
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let Ok(id) = ContainerId::new(entry.file_name().to_string_lossy()) else { continue };
            if let Some(record) = self.load_now(&id)? {
                records.push(record);
            }
        }
        records.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        Ok(records)
    }
}

/// The outcome of removing `path`, where "it was not there" is success.
fn remove_if_there(path: &Path, removed: std::io::Result<()>) -> Result<()> {
    match removed {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
        Err(err) => Err(Error::io(format!("removing {}", path.display()), err)),
    }
}

fn private_dir(path: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|err| Error::io(format!("creating {}", path.display()), err))
}

/// Writes `contents` to `path` through a temporary file and a rename, so that a reader sees
/// either nothing or all of it. Not fsynced: the state root lives in `/run` (tmpfs), and what it
/// records — running containers and how they ended — does not outlive the machine anyway, while
/// an fsync would delay every waiter behind the disk.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let context = || format!("writing {}", path.display());
    let mut temp =
        tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir).map_err(|err| Error::io(context(), err))?;
    temp.write_all(contents).map_err(|err| Error::io(context(), err))?;
    temp.persist(path).map_err(|err| Error::io(context(), err.error))?;
    Ok(())
}

/// The name, in a container's directory, of the exit as it was seen: conmon's exit file holds
/// `128 + n` for a killed process, which an `exit 137` also writes, so the engine keeps which of
/// the two it was beside it.
const EXIT_DETAIL: &str = "exit.json";

/// How a process ended, as [`EXIT_DETAIL`] holds it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ExitDetail {
    /// Exited with this code.
    Exited(i32),
    /// Killed by the signal with this number.
    Signaled(i32),
}

/// Records how a container's init ended: first the exact ending in the container's directory
/// (when it exists), then the exit file as conmon writes it, a decimal number without a newline,
/// 128 + the signal for a killed process. The exit file appearing is what others look for, so
/// the detail is there by then. An unknown ending writes nothing: no file is the record of "not
/// seen".
pub(crate) fn write_exit(files: &ContainerFiles, exit: Exit) -> Result<()> {
    let (code, detail) = match exit {
        Exit::Exited(code) => (code, ExitDetail::Exited(code)),
        Exit::Signaled(signal) => (128 + signal.number(), ExitDetail::Signaled(signal.number())),
        Exit::Unknown => return Ok(()),
    };
    if files.dir.is_dir() {
        let json = serde_json::to_vec(&detail).map_err(|err| Error::parse("exit record", err.to_string()))?;
        write_atomically(&files.dir.join(EXIT_DETAIL), &json)?;
    }
    write_atomically(&files.exit_file, code.to_string().as_bytes())
}

/// Reads how a container's init ended: the exact ending when the engine recorded it, else the
/// exit file alone (written by conmon, or for a container whose directory was gone). From the
/// exit file alone a number above 128 that is a signal reads as killed by it: the format cannot
/// tell `exit 137` from SIGKILL, and a killed process is what it almost always means.
pub(crate) fn read_exit(files: &ContainerFiles) -> Result<Option<Exit>> {
    let path = &files.exit_file;
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io(format!("reading {}", path.display()), err)),
    };
    let detail_path = files.dir.join(EXIT_DETAIL);
    match std::fs::read(&detail_path) {
        Ok(bytes) => {
            let detail: ExitDetail = serde_json::from_slice(&bytes)
                .map_err(|err| Error::parse(format!("exit record {}", detail_path.display()), err.to_string()))?;
            return Ok(Some(match detail {
                ExitDetail::Exited(code) => Exit::Exited(code),
                ExitDetail::Signaled(number) => Signal::from_number(number).map_or(Exit::Unknown, Exit::Signaled),
            }));
        }
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        Err(err) => return Err(Error::io(format!("reading {}", detail_path.display()), err)),
    }
    let code: i32 = text.trim().parse().map_err(|_| {
        Error::parse(format!("exit file {}", path.display()), format!("{:?} is not a status", text.trim()))
    })?;
    Ok(Some(match code.checked_sub(128).map(Signal::from_number) {
        Some(Ok(signal)) => Exit::Signaled(signal),
        _ => Exit::Exited(code),
    }))
}

impl ContainerFiles {
    /// How the container's init ended, as recorded in these files by any monitor (the engine's
    /// exact record, else the exit file alone, as conmon writes it); `None` while nothing is
    /// recorded. Every monitor reads exits through this, so one container has one answer.
    pub fn recorded_exit(&self) -> Result<Option<Exit>> {
        read_exit(self)
    }
}

/// The lock of one container, held until dropped; dropping it also removes the lock file when
/// the container was forgotten meanwhile.
#[derive(Debug)]
pub(crate) struct ContainerLock {
    path: PathBuf,
    _lock: Flock<File>,
    remove_on_drop: bool,
}

impl ContainerLock {
    /// The lock at `path` if nobody holds it, without waiting; `None` while another holds it.
    fn try_acquire(path: &Path) -> Result<Option<Self>> {
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(path)
                .map_err(|err| Error::io(format!("opening lock {}", path.display()), err))?;
            let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
                Err((_, errno)) => return Err(Error::io(format!("locking {}", path.display()), errno.into())),
            };
            // The previous holder may have removed the file while we waited: our lock is then on
            // a file nobody else can find, and the next locker would make a new one. Start over.
            let locked = lock.metadata().map_err(|err| Error::io("inspecting a lock", err))?;
            match std::fs::metadata(path) {
                Ok(current) if current.ino() == locked.ino() && current.dev() == locked.dev() => {
                    return Ok(Some(ContainerLock { path: path.to_path_buf(), _lock: lock, remove_on_drop: false }));
                }
                Ok(_) => continue,
                Err(err) if err.kind() == ErrorKind::NotFound => continue,
                Err(err) => return Err(Error::io(format!("inspecting {}", path.display()), err)),
            }
        }
    }

    /// Removes the lock file when the lock is let go: the container is gone.
    pub(crate) fn remove_on_drop(&mut self) {
        self.remove_on_drop = true;
    }
}

impl Drop for ContainerLock {
    fn drop(&mut self) {
        if self.remove_on_drop {
            // Removed while still locked, so a waiter sees it gone and starts over.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn id(name: &str) -> ContainerId {
        ContainerId::new(name).unwrap()
    }

    #[test]
    fn directories_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::open(dir.path().join("state")).unwrap();
        for sub in ["", "exits", "containers", "locks"] {
            let mode = std::fs::metadata(root.path().join(sub)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{sub:?}");
        }
    }

    /// Files of a container whose directory exists, as the engine makes it before the runtime runs.
    fn container_files(dir: &Path) -> ContainerFiles {
        let files = ContainerFiles { exit_file: dir.join("exits-c1"), dir: dir.join("c1") };
        std::fs::create_dir(&files.dir).unwrap();
        files
    }

    #[test]
    fn exit_files_hold_conmons_format() {
        let dir = tempfile::tempdir().unwrap();
        let files = container_files(dir.path());
        let path = &files.exit_file;
        write_exit(&files, Exit::Exited(7)).unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), "7", "decimal, no newline");
        write_exit(&files, Exit::Signaled(Signal::TERM)).unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), "143");
        assert_eq!(read_exit(&files).unwrap(), Some(Exit::Signaled(Signal::TERM)));
        // Exit files alone, as conmon 2.1.6 writes them for `exit 0`, for a kill, and with a
        // trailing newline from elsewhere.
        std::fs::remove_dir_all(&files.dir).unwrap();
        std::fs::write(path, "0").unwrap();
        assert_eq!(read_exit(&files).unwrap(), Some(Exit::Exited(0)));
        std::fs::write(path, "137").unwrap();
        assert_eq!(read_exit(&files).unwrap(), Some(Exit::Signaled(Signal::KILL)));
        std::fs::write(path, "3\n").unwrap();
        assert_eq!(read_exit(&files).unwrap(), Some(Exit::Exited(3)));
        std::fs::write(path, "garbage").unwrap();
        assert!(matches!(read_exit(&files), Err(Error::Parse { .. })));
        std::fs::remove_file(path).unwrap();
        assert_eq!(read_exit(&files).unwrap(), None);
    }

    #[test]
    fn an_exit_code_above_128_and_a_signal_read_back_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let files = container_files(dir.path());
        for (exit, text) in
            [(Exit::Exited(137), "137"), (Exit::Signaled(Signal::KILL), "137"), (Exit::Exited(143), "143")]
        {
            write_exit(&files, exit).unwrap();
            assert_eq!(std::fs::read_to_string(&files.exit_file).unwrap(), text, "conmon's format for {exit:?}");
            assert_eq!(read_exit(&files).unwrap(), Some(exit));
        }
    }

    #[test]
    fn an_unknown_ending_writes_no_exit_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = container_files(dir.path());
        write_exit(&files, Exit::Unknown).unwrap();
        assert!(!files.exit_file.exists());
        assert_eq!(std::fs::read_dir(&files.dir).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn records_round_trip_and_forget_removes_everything() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::open(dir.path()).unwrap();
        let record = ContainerRecord {
            id: id("c1"),
            bundle: "/b".into(),
            backend: "runc".into(),
            monitor: "direct".into(),
            pid: Some(42),
            stop_signal: 15,
            checkpointed: false,
        };
        root.save(&record).await.unwrap();
        write_exit(&root.files(&record.id), Exit::Exited(1)).unwrap();
        assert_eq!(root.load(&record.id).await.unwrap(), Some(record.clone()));
        assert_eq!(root.records().await.unwrap(), vec![record.clone()]);
        root.forget(&record.id).await.unwrap();
        assert_eq!(root.load(&record.id).await.unwrap(), None);
        assert!(!root.files(&record.id).exit_file.exists());
        assert!(root.records().await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lock_excludes_a_second_locker_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::open(dir.path()).unwrap();
        let first = root.lock(&id("c1")).await.unwrap();
        let second = tokio::spawn({
            let root = root.clone();
            async move { root.lock(&id("c1")).await.map(drop) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "the second locker waits");
        let other = root.lock(&id("c2")).await.unwrap();
        drop(other);
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(5), second).await.unwrap().unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_lock_held_past_the_lock_wait_gives_wait_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let wait = std::time::Duration::from_millis(300);
        let root = StateRoot::open(dir.path()).unwrap().with_lock_wait(wait);
        let _held = root.lock(&id("c1")).await.unwrap();
        let started = std::time::Instant::now();
        let second = tokio::time::timeout(std::time::Duration::from_secs(10), root.lock(&id("c1"))).await;
        match second.expect("the wait is bounded") {
            Err(Error::WaitTimeout { after, .. }) => assert_eq!(after, wait),
            other => panic!("a lock held past the wait: {other:?}"),
        }
        let took = started.elapsed();
        assert!(took >= wait && took < wait * 5, "gave up after {took:?}");
    }

    /// The threads of this process that are inside `flock(2)` now.
    fn threads_in_flock() -> Vec<String> {
        let tasks = std::fs::read_dir("/proc/self/task").unwrap();
        tasks
            .flatten()
            .filter(|task| {
                let syscall = std::fs::read_to_string(task.path().join("syscall")).unwrap_or_default();
                syscall.split_whitespace().next() == Some(&libc::SYS_flock.to_string())
            })
            .map(|task| task.file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_waiter_leaves_no_thread_waiting_for_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::open(dir.path()).unwrap();
        let held = root.lock(&id("waited-for")).await.unwrap();
        let waiter = tokio::spawn({
            let root = root.clone();
            async move { root.lock(&id("waited-for")).await.map(drop) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!waiter.is_finished(), "the waiter waits");
        assert_eq!(threads_in_flock(), Vec::<String>::new(), "no thread blocks in flock while waiting");
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        drop(held);
        // Nobody took the lock for the waiter that left: another locker gets it at once.
        let again = StateRoot::open(dir.path()).unwrap().with_lock_wait(std::time::Duration::ZERO);
        again.lock(&id("waited-for")).await.expect("free once its holder let go");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiter_whose_lock_file_was_removed_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::open(dir.path()).unwrap();
        let mut first = root.lock(&id("c1")).await.unwrap();
        let second = tokio::spawn({
            let root = root.clone();
            async move { root.lock(&id("c1")).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        first.remove_on_drop();
        drop(first);
        let second = tokio::time::timeout(std::time::Duration::from_secs(5), second).await.unwrap().unwrap().unwrap();
        assert!(root.path().join("locks/c1").exists(), "the waiter locks a file that others can find");
        drop(second);
    }

    #[test]
    fn the_default_root_is_run_ocikit_for_root_and_under_the_runtime_dir_when_rootless() {
        let dir = tempfile::tempdir().unwrap();
        let euid = nix::unistd::geteuid().as_raw();
        let root = Caller::detect(0, None, None, Some("0 0 4294967295"));
        assert_eq!(default_path_for(&root, Some(dir.path().as_os_str())).unwrap(), Path::new("/run/ocikit"));
        let rootless = Caller::detect(euid, Some("done".as_ref()), None, None);
        assert_eq!(default_path_for(&rootless, Some(dir.path().as_os_str())).unwrap(), dir.path().join("ocikit"));
        let unset = default_path_for(&rootless, None);
        assert!(matches!(unset, Err(Error::RuntimeDir { path: None, .. })), "{unset:?}");
    }
}
