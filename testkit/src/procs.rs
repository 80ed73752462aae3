//! Host processes identified across pid reuse.
//!
//! A pid alone is not an identity: pids are reused. A [`Tracked`] process is recorded with its
//! start time from `/proc/<pid>/stat` and counts as alive only while both match and it is not a
//! zombie — orphans here are reaped lazily by whoever inherited them, so a zombie has exited.
//! The fake runtime uses this for its containers; tests use it to prove nothing was left behind.

use std::ffi::OsStr;
use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// The fields of `/proc/<pid>/stat` the fake needs.
#[derive(Debug, Clone, Copy)]
struct ProcStat {
    state: char,
    pgrp: i32,
    start_time: u64,
}

impl ProcStat {
    /// Zombies count as exited: orphans are reaped lazily by whoever inherited them.
    fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        // Field 22 of the whole line; the state is field 3.
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// A process identified by pid and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    pub pid: i32,
    pub start_time: u64,
}

impl Tracked {
    /// Records `pid` as it is now.
    pub fn capture(pid: u32) -> Self {
        let pid = i32::try_from(pid).unwrap_or(0);
        Self { pid, start_time: proc_stat(pid).map(|s| s.start_time).unwrap_or(0) }
    }

    /// True while the very same process exists and has not exited.
    pub fn alive(&self) -> bool {
        self.pid > 0 && proc_stat(self.pid).is_some_and(|s| s.start_time == self.start_time && !s.exited())
    }

    /// True when the pid now belongs to some other process.
    fn reused(&self) -> bool {
        proc_stat(self.pid).is_some_and(|s| s.start_time != self.start_time)
    }

    /// Signals the process itself, if it is still the one recorded.
    pub fn signal(&self, signal: Signal) {
        if self.alive() {
            // It may exit between the check and the signal; ESRCH is then the right outcome.
            let _ = kill(Pid::from_raw(self.pid), signal);
        }
    }

    /// Signals the whole process group this process leads. The group outlives its leader, so
    /// this also reaches children left behind by an exited leader, unless the pid was reused.
    pub fn signal_group(&self, signal: Signal) {
        if self.pid > 0 && !self.reused() {
            let _ = killpg(Pid::from_raw(self.pid), signal);
        }
    }

    /// Live members of the process group this process leads.
    pub fn group_members(&self) -> Vec<i32> {
        if self.pid <= 0 || self.reused() {
            return Vec::new();
        }
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| proc_stat(pid).is_some_and(|s| s.pgrp == self.pid && !s.exited()))
            .collect()
    }

    /// Waits up to `timeout` for the process to exit; returns whether it did.
    pub fn wait_gone(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.alive() {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

/// Live (non-zombie) processes with `argument` among their command-line arguments: how a test
/// finds runtime processes of a fake whose state root it knows.
pub fn live_with_argument(argument: &OsStr) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else { return false };
            cmdline.split(|byte| *byte == 0).any(|arg| arg == argument.as_encoded_bytes())
                && proc_stat(pid).is_some_and(|stat| !stat.exited())
        })
        .collect()
}
