//! Every process one exec started, found from the host and ended together.
//!
//! Killing the exec'd process is not enough: what it started (children, `&` jobs, and orphans
//! the container's init adopted) keeps running in the container. Each runtime starts an exec'd
//! process in a session of its own (`setsid`), as checked on this host with runc 1.1.5, crun
//! 1.8.1 and youki 0.7.0, attached or detached: runc and youki make the process itself the
//! session leader, crun an intermediate process that exits at once. Everything the process
//! starts inherits that session, orphans included, and `/proc/<pid>/stat` shows it from the
//! host. The container's init and every other exec lead sessions of their own, so ending the
//! exec's session never reaches them.
//!
//! Out of reach: a process that left the session on purpose (`setsid`, as a daemon does when it
//! double-forks) is no longer the exec's by this measure and is left running; the runtime's
//! `exec --cgroup` (a sub-cgroup per exec) would hold it, but needs a sub-cgroup made in every
//! controller of a v1 hierarchy first, and is not used. A runtime that made no session for the
//! process (it shares the embedding program's own session) gets only that process killed.
//!
//! A session id is a pid number the kernel keeps from reuse while any process of the session
//! exists, a zombie included: the id is read while the exec'd process has not been reaped, and
//! the members are looked for only in that process's pid namespace. Each member is signalled
//! through a pidfd opened between two reads of its `stat` that agree (same start time, same
//! session), so a pid reused meanwhile is never hit.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

/// How long ending a session may take: each round waits for the processes it killed to die.
const KILL_PATIENCE: Duration = Duration::from_secs(2);

/// The fields of `/proc/<pid>/stat` that identify a process and its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    state: char,
    session: i32,
    start_time: u64,
}

impl Stat {
    fn read(pid: i32) -> Option<Stat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces and parentheses: fields resume after the last ')'.
        let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
        Some(Stat {
            state: fields.first()?.chars().next()?,
            // Fields 6 and 22 of the whole line; the state is field 3.
            session: fields.get(3)?.parse().ok()?,
            start_time: fields.get(19)?.parse().ok()?,
        })
    }

    /// A zombie has ended: only its parent's `wait` is missing.
    fn ended(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// The pid namespace `pid` lives in, as its `ns/pid` link names it.
fn pid_namespace(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

/// A pidfd on the process `pid` whose `stat` reads `expected` before and after it was opened.
fn open_verified(pid: i32, expected: impl Fn(&Stat) -> bool) -> Option<(OwnedFd, Stat)> {
    let before = Stat::read(pid).filter(&expected)?;
    let fd = pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()?;
    let after = Stat::read(pid)?;
    (after.start_time == before.start_time && expected(&after)).then_some((fd, after))
}

/// The processes of one exec: the exec'd process and, when the runtime made one, its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecTree {
    pid: i32,
    start_time: u64,
    /// `None` when the process shares the embedding program's session.
    session: Option<i32>,
    namespace: Option<PathBuf>,
}

impl ExecTree {
    /// The exec whose process is `pid`, which must not have been reaped yet (a zombie will do).
    /// `None` when no such process exists.
    pub(crate) fn of(pid: u32) -> Option<ExecTree> {
        let pid = i32::try_from(pid).ok().filter(|pid| *pid > 0)?;
        let (_fd, stat) = open_verified(pid, |_| true)?;
        let ours = rustix::process::getsid(None).ok().map(|pid| pid.as_raw_nonzero().get());
        Some(ExecTree {
            pid,
            start_time: stat.start_time,
            session: Some(stat.session).filter(|session| Some(*session) != ours),
            namespace: pid_namespace(pid),
        })
    }

    /// The live processes of the exec, each with a pidfd on it.
    fn members(&self) -> Vec<OwnedFd> {
        let Some(session) = self.session else {
            let main = open_verified(self.pid, |stat| stat.start_time == self.start_time && !stat.ended());
            return main.into_iter().map(|(fd, _)| fd).collect();
        };
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|pid| {
                let (fd, _) = open_verified(pid, |stat| stat.session == session && !stat.ended())?;
                (pid_namespace(pid) == self.namespace).then_some(fd)
            })
            .collect()
    }

    /// SIGKILLs every process of the exec, round after round (one may fork while a round runs),
    /// until a round finds none alive or [`KILL_PATIENCE`] has passed. Says how many processes
    /// were signalled.
    pub(crate) fn kill(&self) -> usize {
        let deadline = Instant::now() + KILL_PATIENCE;
        let mut signalled = 0;
        loop {
            let members = self.members();
            if members.is_empty() {
                return signalled;
            }
            for fd in &members {
                // ESRCH: it ended meanwhile.
                if pidfd_send_signal(fd, Signal::KILL).is_ok() {
                    signalled += 1;
                }
            }
            if !wait_ended(&members, deadline) {
                tracing::warn!(pid = self.pid, session = ?self.session, "processes of an exec outlived SIGKILL");
                return signalled;
            }
        }
    }
}

/// Waits until every pidfd says its process ended, or `deadline` passes (false).
fn wait_ended(pidfds: &[OwnedFd], deadline: Instant) -> bool {
    for fd in pidfds {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = Timespec { tv_sec: left.as_secs() as i64, tv_nsec: i64::from(left.subsec_nanos()) };
            let mut fds = [PollFd::new(fd, PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) => return false,
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return false,
            }
        }
    }
    true
}

/// Ends the exec a call started unless disarmed: armed before the runtime runs, it kills the
/// process the runtime named in `pid_file` and its session when the call times out, fails or is
/// dropped. The pid file must not exist before the call, so that only a pid the runtime wrote
/// during it is read.
#[derive(Debug)]
pub(crate) struct UnfinishedExec {
    pid_file: PathBuf,
    armed: bool,
}

impl UnfinishedExec {
    /// Removes a pid file left by an earlier process, then arms the guard.
    pub(crate) fn arm(pid_file: &Path) -> io::Result<Self> {
        match std::fs::remove_file(pid_file) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        Ok(UnfinishedExec { pid_file: pid_file.to_path_buf(), armed: true })
    }

    /// The call finished: its process is the caller's, or has ended.
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for UnfinishedExec {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let pid = std::fs::read_to_string(&self.pid_file).ok().and_then(|text| text.trim().parse::<u32>().ok());
        if let Some(tree) = pid.and_then(ExecTree::of) {
            let killed = tree.kill();
            tracing::debug!(pid = tree.pid, killed, "ended the processes of an unfinished exec");
        }
    }
}

#[cfg(test)]
// Processes are reaped by the tests' own waits, not through `Child::wait` on every path.
#[allow(clippy::zombie_processes)]
mod tests {
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command, Stdio};

    use super::*;

    /// `sh -c script` in a session of its own, as the runtimes start an exec'd process; the
    /// script writes the pids it starts to `pids`, one a line.
    fn in_new_session(script: &str) -> Child {
        let mut command = Command::new("setsid");
        command.args(["sh", "-c", script]).stdin(Stdio::null());
        // Not a group leader, so `setsid` makes the session itself and execs in place.
        command.spawn().unwrap()
    }

    fn alive(pid: i32) -> bool {
        Stat::read(pid).is_some_and(|stat| !stat.ended())
    }

    fn wait_for_lines(path: &Path, lines: usize) -> Vec<i32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let pids: Vec<i32> = text.lines().filter_map(|line| line.trim().parse().ok()).collect();
            if pids.len() >= lines || Instant::now() > deadline {
                return pids;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn killing_an_exec_ends_its_children_jobs_and_orphans_but_not_other_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let script = format!(
            "sleep 100 & echo $! >> {0}; (sleep 100 & echo $! >> {0}) ; echo $$ >> {0}; sleep 100",
            pids.display()
        );
        let mut exec = in_new_session(&script);
        // Another exec, in a session of its own: it must survive.
        let mut other = Command::new("sleep").arg("100").process_group(0).spawn().unwrap();
        let started = wait_for_lines(&pids, 3);
        assert_eq!(started.len(), 3, "the script reported its processes: {started:?}");
        let tree = ExecTree::of(exec.id()).unwrap();
        assert!(tree.kill() >= 4, "the shell, its job, the orphan and the last sleep");
        for pid in started {
            assert!(!alive(pid), "{pid} was the exec's and still runs");
        }
        exec.wait().unwrap();
        assert!(other.try_wait().unwrap().is_none(), "a process of another session was hit");
        other.kill().unwrap();
        other.wait().unwrap();
    }

    #[test]
    fn a_process_in_our_own_session_is_killed_alone() {
        let mut ours = Command::new("sleep").arg("100").spawn().unwrap();
        let mut sibling = Command::new("sleep").arg("100").spawn().unwrap();
        let tree = ExecTree::of(ours.id()).unwrap();
        assert_eq!(tree.kill(), 1);
        assert!(ours.wait().unwrap().code().is_none(), "killed by a signal");
        assert!(sibling.try_wait().unwrap().is_none(), "the rest of our session is left alone");
        sibling.kill().unwrap();
        sibling.wait().unwrap();
    }

    #[test]
    fn a_dropped_armed_guard_ends_the_exec_in_its_pid_file_and_a_stale_file_is_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut bystander = Command::new("sleep").arg("100").process_group(0).spawn().unwrap();
        std::fs::write(&pid_file, bystander.id().to_string()).unwrap();
        // The file names a process of an earlier call: arming removes it.
        drop(UnfinishedExec::arm(&pid_file).unwrap());
        assert!(bystander.try_wait().unwrap().is_none(), "a stale pid file was read");
        let guard = UnfinishedExec::arm(&pid_file).unwrap();
        let mut exec = in_new_session("sleep 100 & sleep 100");
        std::fs::write(&pid_file, exec.id().to_string()).unwrap();
        drop(guard);
        assert!(exec.wait().unwrap().code().is_none(), "killed by a signal");
        assert!(bystander.try_wait().unwrap().is_none());
        bystander.kill().unwrap();
        bystander.wait().unwrap();
    }
}
