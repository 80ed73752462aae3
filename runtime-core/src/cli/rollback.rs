//! Undoing what an unfinished call started, away from the caller's executor.
//!
//! A call that makes a container (create, run, restore) or a process (exec) can end without
//! finishing: it fails, times out, or the caller drops its future. Killing the runtime's process
//! group is not enough: a container's init leads a process group of its own, an exec'd process
//! outlives the runtime, and the runtime's state directory and cgroups keep the id taken. A
//! [`Rollback`] armed before the runtime runs undoes all of it: the process named by the pid
//! file is killed, and for a container `delete --force` runs.
//!
//! Only the kill happens where the call ends (in `Drop` for a dropped call): reading a pid file
//! and signalling through a pidfd are a few system calls that never wait. The `delete --force`,
//! retried while the killed init leaves its cgroup, waits for a runtime process; it runs on a
//! thread of its own with a small tokio runtime, so that a caller's executor (a `current_thread`
//! runtime above all) never stalls behind it. [`Cleanups`] counts those threads per backend:
//! [`Cleanups::settled`] waits for all of them and reports what they could not undo, and a call
//! that makes a container first waits for the rollbacks of its id ([`Cleanups::settled_for`]),
//! whose `delete --force` would otherwise remove the new container.
//!
//! The kill trusts only a pid the runtime wrote during this call: the caller's pid file is
//! removed before the runtime runs ([`fresh_pid_file`]), and the pid is signalled through a pidfd
//! opened as it is read, never by number later, so a stale file or a reused pid never makes the
//! library kill an unrelated process.
//!
//! A rollback is bounded by a deadline: a failed call's own by the call's deadline, a dropped
//! call's by the rest of its budget, at least [`ROLLBACK_FLOOR`].
//!
//! A runtime that refuses a create (the id exists, the bundle is wrong) is not rolled back: it
//! made nothing, and deleting would remove the container that made it refuse.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::process::{PidfdFlags, Signal as RawSignal, pidfd_open, pidfd_send_signal};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::cli::driver::{Call, CliRuntime};
use crate::contract::error::{Error, Result};
use crate::contract::id::ContainerId;

/// The least time a rollback gets, even when the call's own budget is spent: it deletes what a
/// hung runtime may have left, and must not be skipped.
pub(crate) const ROLLBACK_FLOOR: Duration = Duration::from_secs(2);

/// How often a rollback's `delete --force` is tried, and the pause between attempts.
const DELETE_ATTEMPTS: u32 = 3;
const DELETE_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The rollbacks of one backend that run in the background, and what they could not undo.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cleanups(Arc<Tracker>);

#[derive(Debug, Default)]
struct Tracker {
    state: Mutex<Pending>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct Pending {
    /// The container of each rollback under way, once per rollback.
    running: Vec<ContainerId>,
    /// Failures of rollbacks nobody waits for, until [`Cleanups::settled`] hands them over.
    left_behind: Vec<Error>,
}

impl Cleanups {
    /// Waits until every rollback under way has finished; returns what those nobody waited
    /// for could not undo (each error names the command that failed).
    pub(crate) async fn settled(&self) -> Vec<Error> {
        self.wait_until(|pending| pending.running.is_empty()).await;
        std::mem::take(&mut self.lock().left_behind)
    }

    /// Waits until no rollback of container `id` is under way.
    pub(crate) async fn settled_for(&self, id: &ContainerId) {
        self.wait_until(|pending| !pending.running.contains(id)).await;
    }

    async fn wait_until(&self, done: impl Fn(&Pending) -> bool) {
        loop {
            let changed = self.0.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so that a change right after the look still wakes us.
            changed.as_mut().enable();
            if done(&self.lock()) {
                return;
            }
            changed.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.0.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `delete` on a thread of its own; its outcome goes to `reply`, or when nobody waits
    /// for it (any more), to [`Cleanups::settled`].
    fn start(&self, delete: Delete, reply: Option<oneshot::Sender<Result<()>>>) {
        self.lock().running.push(delete.id.clone());
        let finisher = Finisher { cleanups: self.clone(), id: delete.id.clone(), reply, done: false };
        let spawned = std::thread::Builder::new().name("ocikit-rollback".into()).spawn(move || {
            let outcome = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(delete.run()),
                Err(err) => Err(Error::io("starting a runtime for a rollback", err)),
            };
            finisher.finish(outcome);
        });
        // Without a thread the finisher was dropped with the closure, and said so.
        if let Err(err) = spawned {
            tracing::warn!(%err, "cannot start a rollback thread");
        }
    }
}

/// Reports the end of one background rollback, exactly once: dropped unfinished (its thread
/// could not start, or panicked), it reports that the rollback did not run to its end.
#[derive(Debug)]
struct Finisher {
    cleanups: Cleanups,
    id: ContainerId,
    reply: Option<oneshot::Sender<Result<()>>>,
    done: bool,
}

impl Finisher {
    fn finish(mut self, outcome: Result<()>) {
        self.report(outcome);
    }

    fn report(&mut self, outcome: Result<()>) {
        self.done = true;
        let unheard = match self.reply.take() {
            Some(reply) => reply.send(outcome).err(),
            None => Some(outcome),
        };
        let mut pending = self.cleanups.lock();
        if let Some(Err(err)) = unheard {
            tracing::warn!(id = %self.id, %err, "rolling back an unfinished call left something behind");
            pending.left_behind.push(err);
        }
        if let Some(at) = pending.running.iter().position(|running| *running == self.id) {
            pending.running.swap_remove(at);
        }
        drop(pending);
        self.cleanups.0.changed.notify_waiters();
    }
}

impl Drop for Finisher {
    fn drop(&mut self) {
        if !self.done {
            let stopped = std::io::Error::other("the rollback thread stopped before it finished");
            self.report(Err(Error::io(format!("rolling back {}", self.id), stopped)));
        }
    }
}

/// Removes what a pid file holds before a call that writes it: only a pid the runtime writes
/// during the call is ever signalled.
pub(crate) fn fresh_pid_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != ErrorKind::NotFound => {
            Err(Error::io(format!("removing the old pid file {}", path.display()), err))
        }
        _ => Ok(()),
    }
}

/// The `delete --force` of a container, run until it succeeds, the container is gone, or the
/// deadline passes.
#[derive(Debug)]
pub(crate) struct Delete {
    cli: CliRuntime,
    id: ContainerId,
    args: Vec<OsString>,
    deadline: Instant,
}

impl Delete {
    /// `args` (a whole `delete --force` of `id`) run by `cli`, by `deadline`.
    pub(crate) fn new(cli: &CliRuntime, id: &ContainerId, args: Vec<OsString>, deadline: Instant) -> Self {
        Delete { cli: cli.clone(), id: id.clone(), args, deadline }
    }

    async fn run(self) -> Result<()> {
        let mut attempt = 1;
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            let call = Call { timeout: Some(left), ..Call::new(self.args.clone()).for_container(&self.id) };
            match self.cli.run_ok(call).await {
                Ok(_) | Err(Error::NotFound { .. }) => return Ok(()),
                // The init killed before may still be leaving its cgroup, which makes a
                // runtime's delete fail for a moment: try again, a few times.
                Err(err) if attempt == DELETE_ATTEMPTS || Instant::now() + DELETE_RETRY_PAUSE >= self.deadline => {
                    return Err(err);
                }
                Err(err) => tracing::debug!(id = %self.id, %err, "rollback delete failed; trying again"),
            }
            attempt += 1;
            tokio::time::sleep(DELETE_RETRY_PAUSE).await;
        }
    }
}

/// What to undo if the call does not finish.
#[derive(Debug)]
pub(crate) struct Rollback {
    /// The process the call started, named by the runtime's pid file once written.
    pid_file: PathBuf,
    /// `delete --force` of the container, taken when it runs.
    delete: Option<Delete>,
    cleanups: Cleanups,
    armed: bool,
}

impl Rollback {
    /// Kills the process named by `pid_file` and runs the container's `delete`, unless
    /// disarmed first. The pid file must have been made fresh ([`fresh_pid_file`]) before the
    /// runtime ran.
    pub(crate) fn arm(cleanups: &Cleanups, pid_file: PathBuf, delete: Delete) -> Self {
        Rollback { pid_file, delete: Some(delete), cleanups: cleanups.clone(), armed: true }
    }

    /// The call finished: nothing to undo.
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }

    /// Undoes the call now, by its deadline, and says what could not be undone. Dropping the
    /// returned future leaves the rollback running in the background.
    pub(crate) async fn roll_back(mut self) -> Result<()> {
        self.armed = false;
        kill_pid_from_file(&self.pid_file);
        let Some(delete) = self.delete.take() else { return Ok(()) };
        let (reply, outcome) = oneshot::channel();
        self.cleanups.start(delete, Some(reply));
        let vanished = || Error::io("rolling back", std::io::Error::other("the rollback ended without a word"));
        outcome.await.unwrap_or_else(|_| Err(vanished()))
    }
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        kill_pid_from_file(&self.pid_file);
        if let Some(mut delete) = self.delete.take() {
            delete.deadline = delete.deadline.max(Instant::now() + ROLLBACK_FLOOR);
            self.cleanups.start(delete, None);
        }
    }
}

/// SIGKILLs the process whose pid the runtime wrote to `pid_file`, if it wrote one, through a
/// pidfd opened as the pid is read.
fn kill_pid_from_file(pid_file: &Path) {
    let pid = std::fs::read_to_string(pid_file).ok().and_then(|text| text.trim().parse::<i32>().ok());
    let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) else { return };
    // ESRCH: it is gone already, which is the goal.
    match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(pidfd) => {
            if let Err(err) = pidfd_send_signal(&pidfd, RawSignal::KILL) {
                tracing::debug!(%pid, %err, "killing the process of an unfinished call");
            }
        }
        Err(err) => tracing::debug!(%pid, %err, "the process of an unfinished call is gone"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::exit::Exit;
    use crate::contract::signal::Signal;

    fn sleeper_named_in(pid_file: &Path) -> std::process::Child {
        let sleeper = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
        std::fs::write(pid_file, sleeper.id().to_string()).unwrap();
        sleeper
    }

    #[test]
    fn the_process_a_pid_file_names_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut sleeper = sleeper_named_in(&pid_file);
        kill_pid_from_file(&pid_file);
        assert_eq!(Exit::from(sleeper.wait().unwrap()), Exit::Signaled(Signal::KILL));
    }

    #[test]
    fn a_fresh_pid_file_names_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut sleeper = sleeper_named_in(&pid_file);
        fresh_pid_file(&pid_file).unwrap();
        fresh_pid_file(&pid_file).unwrap();
        kill_pid_from_file(&pid_file);
        assert!(sleeper.try_wait().unwrap().is_none(), "the process an old pid file named runs on");
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }

    /// A rollback of `id` under way, as [`Cleanups::start`] registers one.
    fn under_way(cleanups: &Cleanups, id: &ContainerId) -> Finisher {
        cleanups.lock().running.push(id.clone());
        Finisher { cleanups: cleanups.clone(), id: id.clone(), reply: None, done: false }
    }

    #[tokio::test]
    async fn a_create_waits_for_the_rollbacks_of_its_own_id_only() {
        let cleanups = Cleanups::default();
        let (c1, c2) = (ContainerId::new("c1").unwrap(), ContainerId::new("c2").unwrap());
        let rollback = under_way(&cleanups, &c1);
        let waiting = tokio::spawn({
            let (cleanups, c1) = (cleanups.clone(), c1.clone());
            async move { cleanups.settled_for(&c1).await }
        });
        tokio::time::timeout(Duration::from_secs(5), cleanups.settled_for(&c2)).await.expect("c2 has none");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "c1 waits for its rollback");
        rollback.finish(Ok(()));
        tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("c1's rollback finished").unwrap();
    }

    #[tokio::test]
    async fn settled_hands_over_what_unheard_rollbacks_left_once() {
        let cleanups = Cleanups::default();
        let c1 = ContainerId::new("c1").unwrap();
        under_way(&cleanups, &c1).finish(Err(Error::io("deleting c1", std::io::Error::other("busy"))));
        // A rollback whose thread stopped before it finished reports that much.
        drop(under_way(&cleanups, &c1));
        let left = cleanups.settled().await;
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(matches!(&left[0], Error::Io { context, .. } if context == "deleting c1"), "{left:?}");
        assert!(cleanups.settled().await.is_empty(), "handed over once");
    }
}
