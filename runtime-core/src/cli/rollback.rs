//! Undoing what an unfinished call started.
//!
//! A call that makes a container (create, restore) or a process (exec) can end without finishing:
//! it times out, or the caller drops its future. Killing the runtime's process group is not
//! enough: a container's init leads a process group of its own, an exec'd process outlives the
//! runtime, and the runtime's state directory and cgroups keep the id taken. A guard armed before
//! the runtime runs undoes all of it when it is dropped armed, on any path out of the call:
//! the process named by the pid file is killed, and for a container `delete --force` runs.
//!
//! The work happens synchronously in `Drop`, so when a dropped call returns the id is free again;
//! it is bounded by a deadline (the rest of the call's budget, at least [`ROLLBACK_FLOOR`]) and
//! kills the rollback's own runtime process on expiry. Waiting is on a pidfd, not a sleep loop.
//!
//! A runtime that refuses a create (the id exists, the bundle is wrong) is not rolled back: it
//! made nothing, and deleting would remove the container that made it refuse.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal as NixSignal, kill, killpg};
use nix::unistd::Pid;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{PidfdFlags, pidfd_open};

/// The least time a rollback gets, even when the call's own budget is spent: it deletes what a
/// hung runtime may have left, and must not be skipped.
pub(crate) const ROLLBACK_FLOOR: Duration = Duration::from_secs(2);

/// How often a rollback's `delete --force` is tried, and the pause between attempts.
const DELETE_ATTEMPTS: u32 = 3;
const DELETE_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// What to undo if the call does not finish.
#[derive(Debug)]
pub(crate) struct Rollback {
    /// The process the call started, named by the runtime's pid file once written.
    pid_file: PathBuf,
    /// `delete --force` of the container, binary first, environment as for every call; `None`
    /// for an exec, which makes no container.
    delete: Option<std::process::Command>,
    deadline: Instant,
    armed: bool,
}

impl Rollback {
    /// Kills the process named by `pid_file` and, when given, runs `delete` (a whole
    /// `delete --force` command), unless disarmed first.
    pub(crate) fn arm(pid_file: PathBuf, delete: Option<std::process::Command>, deadline: Instant) -> Self {
        Rollback { pid_file, delete, deadline, armed: true }
    }

    /// The call finished: nothing to undo.
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        kill_pid_from_file(&self.pid_file);
        if let Some(delete) = self.delete.as_mut() {
            let deadline = self.deadline.max(Instant::now() + ROLLBACK_FLOOR);
            // The init killed above may still be leaving its cgroup, which makes a runtime's
            // delete fail for a moment: try again, a few times (a runtime killed before it made
            // its state fails every attempt, and a dropped call should not wait long for that).
            for attempt in 1..=DELETE_ATTEMPTS {
                match run_bounded(delete, deadline) {
                    Ok(()) => break,
                    Err(problem) if attempt == DELETE_ATTEMPTS || Instant::now() + DELETE_RETRY_PAUSE >= deadline => {
                        tracing::warn!(%problem, "rolling back an unfinished call left something behind");
                        break;
                    }
                    Err(problem) => {
                        tracing::debug!(%problem, "rollback delete failed; trying again");
                        std::thread::sleep(DELETE_RETRY_PAUSE);
                    }
                }
            }
        }
    }
}

/// SIGKILLs the process whose pid the runtime wrote to `pid_file`, if it wrote one.
pub(crate) fn kill_pid_from_file(pid_file: &std::path::Path) {
    let pid = std::fs::read_to_string(pid_file).ok().and_then(|text| text.trim().parse::<i32>().ok());
    if let Some(pid) = pid.filter(|pid| *pid > 0) {
        // ESRCH: it is gone already, which is the goal.
        let _ = kill(Pid::from_raw(pid), NixSignal::SIGKILL);
    }
}

/// Runs `command` in its own process group until it exits or `deadline` passes; then the group
/// is killed. Errors say what went wrong, for the log.
fn run_bounded(command: &mut std::process::Command, deadline: Instant) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let argv: Vec<OsString> =
        std::iter::once(command.get_program().to_owned()).chain(command.get_args().map(ToOwned::to_owned)).collect();
    let shown = crate::contract::error::display_argv(&argv);
    command
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = command.spawn().map_err(|err| format!("cannot run `{shown}`: {err}"))?;
    let pid = Pid::from_raw(child.id() as i32);
    let exited = wait_until(child.id(), deadline);
    if !exited {
        let _ = killpg(pid, NixSignal::SIGKILL);
    }
    let status = child.wait().map_err(|err| format!("waiting for `{shown}`: {err}"))?;
    match (exited, status.success()) {
        (true, true) => Ok(()),
        (true, false) => Err(format!("`{shown}` {}", crate::contract::exit::Exit::from(status))),
        (false, _) => Err(format!("`{shown}` did not finish in time and was killed")),
    }
}

/// Waits on a pidfd until the child `pid` exits (true) or `deadline` passes (false). The child is
/// not reaped here.
fn wait_until(pid: u32, deadline: Instant) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else { return true };
    let Ok(pidfd) = pidfd_open(pid, PidfdFlags::empty()) else {
        // Without a pidfd (ancient kernel) nothing can be waited for with a bound: kill it.
        return false;
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let timeout = Timespec { tv_sec: left.as_secs() as i64, tv_nsec: i64::from(left.subsec_nanos()) };
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_finishes_in_time_succeeds() {
        let mut command = std::process::Command::new("true");
        assert_eq!(run_bounded(&mut command, Instant::now() + Duration::from_secs(5)), Ok(()));
    }

    #[test]
    fn a_hung_command_is_killed_at_its_deadline_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        // The grandchild writes its pid and keeps running: killing the group must reach it.
        let mut command = std::process::Command::new("sh");
        command.args(["-c", &format!("sleep 1000 & echo $! > {}; wait", pids.display())]);
        let started = Instant::now();
        let outcome = run_bounded(&mut command, Instant::now() + Duration::from_millis(300));
        assert!(outcome.unwrap_err().contains("did not finish in time"));
        assert!(started.elapsed() < Duration::from_secs(5), "bounded by the deadline");
        let grandchild: i32 = std::fs::read_to_string(&pids).unwrap().trim().parse().unwrap();
        // SIGKILL is delivered at once but the dying process takes a moment to become a zombie.
        let ended = || {
            let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
            let state = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()).map(str::to_owned);
            state.is_none() || state.as_deref() == Some("Z")
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ended() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(ended(), "the grandchild {grandchild} was killed with the group");
    }

    #[test]
    fn a_dropped_armed_guard_kills_the_process_in_its_pid_file() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut sleeper = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
        std::fs::write(&pid_file, sleeper.id().to_string()).unwrap();
        drop(Rollback::arm(pid_file, None, Instant::now()));
        let status = sleeper.wait().unwrap();
        assert_eq!(crate::contract::exit::Exit::from(status), crate::Exit::Signaled(crate::Signal::KILL));
    }

    #[test]
    fn a_failing_delete_is_tried_again_until_it_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let attempts = dir.path().join("attempts");
        // Fails on its first run, as a delete does while the killed init is still in its cgroup.
        let script = format!("echo x >> {0}; [ $(wc -l < {0}) -ge 2 ]", attempts.display());
        let mut delete = std::process::Command::new("sh");
        delete.args(["-c", &script]);
        drop(Rollback::arm(dir.path().join("no-pid-file"), Some(delete), Instant::now()));
        assert_eq!(std::fs::read_to_string(&attempts).unwrap().lines().count(), 2);
    }

    #[test]
    fn a_delete_that_always_fails_is_given_up_after_a_few_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let attempts = dir.path().join("attempts");
        let mut delete = std::process::Command::new("sh");
        delete.args(["-c", &format!("echo x >> {}; exit 1", attempts.display())]);
        drop(Rollback::arm(dir.path().join("no-pid-file"), Some(delete), Instant::now()));
        assert_eq!(std::fs::read_to_string(&attempts).unwrap().lines().count(), 3);
    }

    #[test]
    fn a_disarmed_guard_leaves_the_process_alone() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut sleeper = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
        std::fs::write(&pid_file, sleeper.id().to_string()).unwrap();
        Rollback::arm(pid_file, None, Instant::now()).disarm();
        assert!(sleeper.try_wait().unwrap().is_none(), "still running");
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }
}
