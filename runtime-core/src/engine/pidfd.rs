//! Waiting for one process to end without polling: a pidfd on the tokio reactor.
//!
//! `pidfd_open` works on a zombie, so a process that ended before we looked is still seen, and
//! the fd becomes readable the moment the process exits. A process that is our child (the
//! monitor is its subreaper) is then reaped through the same fd with `waitid(P_PIDFD)`, which
//! touches that one process only: a catch-all `waitpid(-1)` would steal the statuses tokio
//! waits for. A process that is not our child (found again after a restart) can be seen to end,
//! but how it ended cannot be read: that is [`Exit::Unknown`], never a guess.

// Registering a descriptor with tokio's reactor is `unsafe` (the caller vouches for its I/O
// safety); the one such block says why it holds.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, WaitId, WaitIdOptions, WaitIdStatus, pidfd_open, waitid};
use tokio::io::unix::AsyncFd;

use crate::contract::exit::Exit;
use crate::contract::signal::Signal;

/// A handle on one process, by pidfd.
#[derive(Debug)]
pub(crate) struct ProcessHandle {
    fd: AsyncFd<OwnedFd>,
}

impl ProcessHandle {
    /// Opens a pidfd for `pid`; fails with `ESRCH` when no such process (not even a zombie)
    /// exists. Must be called inside a tokio runtime.
    pub(crate) fn open(pid: u32) -> io::Result<Self> {
        let raw = Pid::from_raw(i32::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let fd = pidfd_open(raw, PidfdFlags::NONBLOCK)?;
        // SAFETY: an `OwnedFd` is a valid open descriptor, and the `AsyncFd` owns it: it stays
        // open, and `as_raw_fd` returns the same number, until the `AsyncFd` is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|err| err.into_parts().1)?;
        Ok(ProcessHandle { fd })
    }

    /// Resolves once the process has ended (it may still be a zombie).
    pub(crate) async fn exited(&self) -> io::Result<()> {
        // Readiness stays set once the process has exited, so it is never cleared here.
        self.fd.readable().await.map(drop)
    }

    /// Sends `signal` to the process through its pidfd: never to a later process that reused
    /// the pid. ESRCH once it has been reaped.
    pub(crate) fn signal(&self, signal: Signal) -> io::Result<()> {
        let signal = rustix::process::Signal::from_named_raw(signal.number())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a signal pidfds cannot send"))?;
        rustix::process::pidfd_send_signal(self.fd.get_ref(), signal).map_err(io::Error::from)
    }

    /// Reaps the ended process and says how it ended: only a child of ours can be reaped;
    /// for any other process the ending is unknown. Call after [`ProcessHandle::exited`].
    ///
    /// A child that ended while traced (CRIU dumps a container by tracing it, then kills it) is
    /// reported to its tracer first and becomes ours to reap only when the tracer lets go: until
    /// then `waitid` says "not yet", and the next SIGCHLD says when to ask again.
    pub(crate) async fn reap(&self) -> Exit {
        // Listening before asking, so that the SIGCHLD of the tracer letting go is not missed.
        let mut child_signals = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
        loop {
            match waitid(WaitId::PidFd(self.fd.get_ref().as_fd()), WaitIdOptions::EXITED) {
                Ok(Some(status)) => return exit_of(&status),
                // Ended, but not ours to reap yet.
                Ok(None) | Err(Errno::AGAIN) => match child_signals.as_mut() {
                    Some(signals) => {
                        signals.recv().await;
                    }
                    None => return Exit::Unknown,
                },
                Err(Errno::INTR) => {}
                // ECHILD: not our child (or already reaped by someone else): seen to end, not how.
                Err(_) => return Exit::Unknown,
            }
        }
    }
}

/// How a reaped child ended, from the kernel's `siginfo`: the raw signal number, so that a
/// real-time signal (`SIGRTMIN+3`, as systemd uses) is reported like any other.
fn exit_of(status: &WaitIdStatus) -> Exit {
    if let Some(code) = status.exit_status() {
        return Exit::Exited(code);
    }
    status
        .terminating_signal()
        .and_then(|number| Signal::from_number(number).ok())
        .map_or(Exit::Unknown, Exit::Signaled)
}

#[cfg(test)]
// The children are reaped through the pidfds under test, not through `Child::wait`.
#[allow(clippy::zombie_processes)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A child spawned with std, so that tokio's reaper never waits for it.
    fn spawn(script: &str) -> std::process::Child {
        std::process::Command::new("sh").args(["-c", script]).spawn().unwrap()
    }

    #[tokio::test]
    async fn a_child_that_exits_is_seen_and_reaped_with_its_code() {
        let child = spawn("exit 7");
        let handle = ProcessHandle::open(child.id()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), handle.exited()).await.unwrap().unwrap();
        assert_eq!(handle.reap().await, Exit::Exited(7));
        assert!(!std::path::Path::new(&format!("/proc/{}", child.id())).exists(), "reaped, not a zombie");
    }

    #[tokio::test]
    async fn a_child_killed_by_a_signal_reports_it() {
        let child = spawn("kill -TERM $$");
        let handle = ProcessHandle::open(child.id()).unwrap();
        handle.exited().await.unwrap();
        assert_eq!(handle.reap().await, Exit::Signaled(Signal::TERM));
    }

    #[tokio::test]
    async fn a_child_killed_by_a_real_time_signal_reports_it() {
        // SIGRTMIN+3 as the C library numbers it: the kernel's 32 + 2 reserved by glibc + 3.
        let rtmin_plus_3 = libc::SIGRTMIN() + 3;
        let child = spawn(&format!("kill -{rtmin_plus_3} $$"));
        let handle = ProcessHandle::open(child.id()).unwrap();
        handle.exited().await.unwrap();
        let exit = handle.reap().await;
        assert_eq!(exit.shell_code(), Some(128 + rtmin_plus_3), "{exit:?}");
        assert!(matches!(exit, Exit::Signaled(_)), "{exit:?}");
    }

    #[tokio::test]
    async fn a_zombie_can_still_be_opened() {
        let child = spawn("exit 3");
        // Let it die and stay a zombie before the pidfd exists.
        let stat = format!("/proc/{}/stat", child.id());
        while !std::fs::read_to_string(&stat).unwrap().rsplit(')').next().unwrap().trim_start().starts_with('Z') {
            std::thread::sleep(Duration::from_millis(5));
        }
        let handle = ProcessHandle::open(child.id()).unwrap();
        handle.exited().await.unwrap();
        assert_eq!(handle.reap().await, Exit::Exited(3));
    }

    #[test]
    fn how_a_process_that_is_not_our_child_ends_is_unknown() {
        // Our own parent is never our child, whatever subreaper flags this test process has.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _entered = runtime.enter();
        let handle = ProcessHandle::open(std::os::unix::process::parent_id()).unwrap();
        assert_eq!(runtime.block_on(handle.reap()), Exit::Unknown);
    }
}
