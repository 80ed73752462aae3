//! Host-process plumbing of the fake: resolving executables, pid files, and waiting for a
//! foreground process while forwarding signals. Processes are identified with
//! [`crate::procs::Tracked`].
//!
//! Containers here are plain host processes, each the leader of its own process group, so the
//! group stands in for the container's cgroup: `kill --all`, `pause` and `ps` act on it.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::str::FromStr;
use std::thread;

use nix::sys::signal::{SigSet, Signal, kill};
use nix::unistd::Pid;

/// The `PATH` used when the process environment has none, as runc does.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Signals a foreground `exec`, `run` or `restore` relays to its process, as runc's signal proxy
/// does.
const FORWARDED: [Signal; 6] =
    [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2];

/// Parses a signal the way runtimes accept it: `KILL`, `SIGKILL`, `kill` or `9`.
pub(crate) fn parse_signal(text: &str) -> Option<Signal> {
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).ok();
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    Signal::from_str(&name).ok()
}

/// Looks `arg0` up the way `execvp` would, using the `PATH` from the process environment.
pub(crate) fn resolve_executable(arg0: &str, env: &[String], cwd: &Path) -> Option<PathBuf> {
    let executable =
        |path: &Path| path.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0);
    if arg0.contains('/') {
        let path = cwd.join(arg0);
        return executable(&path).then_some(path);
    }
    let search = env.iter().rev().find_map(|entry| entry.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
    search.split(':').filter(|dir| !dir.is_empty()).map(|dir| cwd.join(dir).join(arg0)).find(|path| executable(path))
}

/// Splits `KEY=VALUE` environment entries; entries without `=` are dropped, as execve would.
pub(crate) fn env_pairs(env: &[String]) -> Vec<(String, String)> {
    env.iter().filter_map(|entry| entry.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The host directory a process runs in: its `cwd` when that exists on the host, else the
/// bundle. There is no root filesystem switch, so container paths are host paths.
pub(crate) fn host_cwd(cwd: &str, bundle: &Path) -> PathBuf {
    let path = Path::new(cwd);
    if path.is_absolute() && path.is_dir() { path.to_path_buf() } else { bundle.to_path_buf() }
}

/// Writes a pid file the way runc does: decimal, no newline, replaced atomically.
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&temp, pid.to_string())?;
    fs::rename(&temp, path)
}

/// The shell convention for an exit status: the code, or 128 plus the killing signal.
pub(crate) fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
        (None, None) => 1,
    }
}

/// Relays termination signals to a foreground `child` from now on, as runc's signal proxy
/// does.
///
/// The signals are blocked only after the child was spawned, because a spawned child inherits
/// the signal mask; a thread then collects them with `sigwait`, so no signal handler is needed.
/// Callers start relaying before writing the pid file, so a caller that saw the pid file can
/// rely on it.
pub(crate) fn relay_signals(child: &Child) {
    let mut set = SigSet::empty();
    for signal in FORWARDED {
        set.add(signal);
    }
    // Without the mask the runtime would merely die of the signal, leaving the child alone.
    if set.thread_block().is_ok() {
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
        thread::spawn(move || {
            while let Ok(signal) = set.wait() {
                let _ = kill(pid, signal);
            }
        });
    }
}

/// Waits for a child and returns its exit code.
pub(crate) fn wait_code(child: &mut Child) -> u8 {
    match child.wait() {
        Ok(status) => exit_code(status),
        Err(_) => 1,
    }
}
