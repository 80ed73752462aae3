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
//! double-forks) is no longer the exec's by this measure and is left running. A sub-cgroup per
//! exec (`exec --cgroup`) would hold it, but is not used: runc 1.1.5 on this hybrid host refuses
//! `--cgroup sub` unless that sub-cgroup already exists (it looked in the unified hierarchy), so
//! the library would have to make and remove one per exec in every hierarchy. A runtime that
//! made no session for the process (it shares the embedding program's own session) gets only
//! that process killed.
//!
//! A session id is a pid number the kernel keeps from reuse while any process of the session
//! exists, a zombie included: the id is read while the exec'd process has not been reaped, and
//! the members are looked for only in that process's pid namespace. Each member is signalled
//! through a pidfd opened between two reads of its `stat` that agree (same start time, same
//! session), so a pid reused meanwhile is never hit.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
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

/// The session an exec's process leads, or `None` when it shares one that is not the exec's:
/// ours, or one whose leader lives outside our pid namespace, which the kernel shows as 0
/// (proc(5), getsid(2)) — as when the embedding program itself runs in a pid namespace whose
/// session was made by a process outside it. A session the runtime made for the exec is led by
/// a process of the container, which our namespace always sees, so it is never 0.
fn session_of_its_own(session: i32, ours: Option<i32>) -> Option<i32> {
    Some(session).filter(|session| *session > 0 && Some(*session) != ours)
}

/// The processes of one exec: the exec'd process and, when the runtime made one, its session.
/// Public for monitors outside this crate (conmon's), which end an exec's processes this way too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecTree {
    pid: i32,
    start_time: u64,
    /// `None` when the process shares the embedding program's session.
    session: Option<i32>,
    namespace: Option<PathBuf>,
}

impl ExecTree {
    /// The exec whose process is `pid`, which must not have been reaped yet (a zombie will do).
    /// `None` when no such process exists.
    pub fn of(pid: u32) -> Option<ExecTree> {
        let pid = i32::try_from(pid).ok().filter(|pid| *pid > 0)?;
        let (_fd, stat) = open_verified(pid, |_| true)?;
        let ours = Stat::read(std::process::id() as i32).map(|stat| stat.session);
        Some(ExecTree {
            pid,
            start_time: stat.start_time,
            session: session_of_its_own(stat.session, ours),
            namespace: pid_namespace(pid),
        })
    }

    /// When its process started (`/proc/<pid>/stat`'s start time, in clock ticks after boot):
    /// with the pid, what tells this process from a later one given the same pid.
    pub fn start_time(&self) -> u64 {
        self.start_time
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

    /// SIGKILLs every live process of the exec once, without waiting; returns pidfds on those
    /// it signalled.
    fn kill_round(&self) -> Vec<OwnedFd> {
        // ESRCH: it ended meanwhile.
        self.members().into_iter().filter(|fd| pidfd_send_signal(fd, Signal::KILL).is_ok()).collect()
    }

    /// SIGKILLs every process of the exec, round after round (one may fork while a round runs),
    /// until a round finds none alive or two seconds have passed. Blocks: call it off the async
    /// executor. Says how many processes were signalled.
    pub fn kill(&self) -> usize {
        let deadline = Instant::now() + KILL_PATIENCE;
        let mut signalled = 0;
        loop {
            let killed = self.kill_round();
            if killed.is_empty() {
                return signalled;
            }
            signalled += killed.len();
            if !wait_ended(&killed, deadline) {
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
/// process the runtime named in `pid_file` and its session when the call fails, times out or
/// is dropped. The pid file must have been made fresh before the call (see
/// `cli::rollback::fresh_pid_file`), so that only a pid the runtime wrote during it is read.
///
/// A failed call awaits [`UnfinishedExec::end`], which returns once the processes are gone.
/// A dropped one cannot wait: its `Drop` sends SIGKILL to every process it finds (a scan of
/// `/proc` and a few signals, no waiting), and a thread of its own finishes the work (more
/// rounds, for processes forked meanwhile), off the caller's executor.
///
/// Out of reach: a call given up before the runtime wrote the pid file. The runtimes start the
/// process first and write its pid after (runc's `exec` does), so for that moment nothing names
/// it; the runtime is killed with the call, and a process it had started already runs on.
#[derive(Debug)]
pub(crate) struct UnfinishedExec {
    pid_file: PathBuf,
    armed: bool,
}

impl UnfinishedExec {
    /// A guard for the exec whose pid the runtime writes to `pid_file`.
    pub(crate) fn arm(pid_file: PathBuf) -> Self {
        UnfinishedExec { pid_file, armed: true }
    }

    /// The call finished: its process is the caller's, or has ended.
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }

    /// Ends the exec now, on tokio's blocking pool, and returns once its processes are gone.
    pub(crate) async fn end(mut self) {
        self.armed = false;
        if let Some(tree) = self.tree() {
            let killed = tokio::task::spawn_blocking(move || tree.kill()).await.unwrap_or_default();
            tracing::debug!(killed, "ended the processes of an unfinished exec");
        }
    }

    /// The exec the runtime named, if it named one that has not been reaped.
    fn tree(&self) -> Option<ExecTree> {
        let pid = std::fs::read_to_string(&self.pid_file).ok()?.trim().parse::<u32>().ok()?;
        ExecTree::of(pid)
    }
}

impl Drop for UnfinishedExec {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Some(tree) = self.tree() else { return };
        if tree.kill_round().is_empty() {
            return;
        }
        let finishing = std::thread::Builder::new().name("ocikit-exec-end".into()).spawn(move || tree.kill());
        if let Err(err) = finishing {
            tracing::warn!(%err, "cannot start a thread to finish ending a dropped exec");
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

    fn wait_for_lines(path: &std::path::Path, lines: usize) -> Vec<i32> {
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

    /// Starts two processes in our own session and ends the first as an exec: only it goes.
    fn check_a_process_of_our_session_is_killed_alone() {
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
    fn a_process_in_our_own_session_is_killed_alone() {
        check_a_process_of_our_session_is_killed_alone();
    }

    /// Set in the copy of this test binary that runs inside a pid namespace of its own.
    const IN_PID_NAMESPACE: &str = "OCIKIT_TEST_IN_PID_NAMESPACE";

    /// As when the embedding program runs in a container (a CI job, say): its session was made
    /// outside its pid namespace, so the kernel reports that session as 0 for it and for every
    /// process it starts without a session of its own. Runs this test again, as the first
    /// process of a new user and pid namespace, where that holds.
    #[test]
    fn in_a_pid_namespace_whose_session_leader_is_outside_a_process_of_our_session_is_killed_alone() {
        if std::env::var_os(IN_PID_NAMESPACE).is_none() {
            let name = "exec_tree::tests::in_a_pid_namespace_whose_session_leader_is_outside_a_process_of_our_session_is_killed_alone";
            let output = Command::new("unshare")
                .args(["--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "--"])
                .arg(std::env::current_exe().unwrap())
                .args(["--exact", name, "--nocapture", "--test-threads", "1"])
                .env(IN_PID_NAMESPACE, "1")
                .output()
                .unwrap();
            let report = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success() && report.contains("1 passed"),
                "the copy in a pid namespace: {report}{}",
                String::from_utf8_lossy(&output.stderr)
            );
            return;
        }
        let our_session = Stat::read(std::process::id() as i32).unwrap().session;
        assert_eq!(our_session, 0, "our session's leader is outside this pid namespace");
        check_a_process_of_our_session_is_killed_alone();
    }

    #[test]
    fn a_dropped_armed_guard_ends_the_exec_in_its_pid_file_with_all_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let pids = dir.path().join("pids");
        let guard = UnfinishedExec::arm(pid_file.clone());
        let mut exec = in_new_session(&format!("sleep 100 & echo $! >> {}; sleep 100", pids.display()));
        std::fs::write(&pid_file, exec.id().to_string()).unwrap();
        let job = wait_for_lines(&pids, 1);
        drop(guard);
        assert!(exec.wait().unwrap().code().is_none(), "killed by a signal");
        let deadline = Instant::now() + Duration::from_secs(5);
        while job.iter().any(|pid| alive(*pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!job.iter().any(|pid| alive(*pid)), "the exec's job {job:?} still runs");
    }

    #[tokio::test]
    async fn a_failed_call_ends_the_exec_before_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let pids = dir.path().join("pids");
        let guard = UnfinishedExec::arm(pid_file.clone());
        let mut exec = in_new_session(&format!("(sleep 100 & echo $! >> {}) ; sleep 100", pids.display()));
        std::fs::write(&pid_file, exec.id().to_string()).unwrap();
        let orphan = wait_for_lines(&pids, 1);
        guard.end().await;
        assert!(!orphan.iter().any(|pid| alive(*pid)), "the orphan {orphan:?} still runs");
        assert!(exec.wait().unwrap().code().is_none(), "killed by a signal");
    }

    #[test]
    fn a_disarmed_guard_leaves_the_exec_alone() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut exec = in_new_session("sleep 100");
        std::fs::write(&pid_file, exec.id().to_string()).unwrap();
        UnfinishedExec::arm(pid_file).disarm();
        assert!(exec.try_wait().unwrap().is_none(), "still running");
        exec.kill().unwrap();
        exec.wait().unwrap();
    }
}
