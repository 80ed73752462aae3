//! Container records under `<root>/<id>/`.
//!
//! Every invocation is a separate short-lived process, so all state lives on disk:
//!
//! - `state.json`: the fake's own record ([`Record`]); its layout is private to the fake.
//! - `exec.fifo`: present between `create` and `start`; the init blocks opening it.
//! - `resources.json`: the effective `LinuxResources` after `create`/`update`, for tests to read.
//!
//! The status is never stored; it is derived on every read from the init process (alive, exited
//! or replaced) and two flags, just as runc derives it from the kernel rather than trusting its
//! own files.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::Signal;
use oci_spec::runtime::Process;
use serde::{Deserialize, Serialize};

use crate::procs::Tracked;

pub(crate) const STATE_FILE: &str = "state.json";
pub(crate) const FIFO: &str = "exec.fifo";
pub(crate) const RESOURCES_FILE: &str = "resources.json";

/// The OCI status of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    /// As in `state` output: `running`.
    pub(crate) fn lower(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
        }
    }

    /// As youki displays it: `Running`.
    pub(crate) fn capitalised(self) -> &'static str {
        match self {
            Self::Created => "Created",
            Self::Running => "Running",
            Self::Paused => "Paused",
            Self::Stopped => "Stopped",
        }
    }
}

/// The part of an OCI process the fake can honour on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
}

impl ProcSpec {
    pub(crate) fn from_oci(process: &Process) -> Self {
        Self {
            args: process.args().clone().unwrap_or_default(),
            env: process.env().clone().unwrap_or_default(),
            cwd: process.cwd().to_string_lossy().into_owned(),
        }
    }
}

/// What the fake remembers about one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub id: String,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// `root.path` exactly as written in config.json.
    pub root_path: String,
    pub created: DateTime<Utc>,
    pub init: Tracked,
    /// Set once `start` released the init (or at once for `run` and `restore`).
    pub started: bool,
    pub paused: bool,
    /// Processes started by `exec`, each leading its own process group.
    pub execs: Vec<Tracked>,
    /// The container process, kept for `checkpoint`.
    pub process: ProcSpec,
}

impl Record {
    pub(crate) fn status(&self) -> Status {
        if !self.init.alive() {
            Status::Stopped
        } else if self.paused {
            Status::Paused
        } else if self.started {
            Status::Running
        } else {
            Status::Created
        }
    }

    /// The absolute root filesystem path, as runc reports it.
    pub(crate) fn rootfs(&self) -> PathBuf {
        self.bundle.join(&self.root_path)
    }

    /// The init and every exec'd process: the process groups standing in for the cgroup.
    fn groups(&self) -> impl Iterator<Item = &Tracked> {
        std::iter::once(&self.init).chain(self.execs.iter())
    }

    /// Signals every process of the container.
    pub(crate) fn signal_all(&self, signal: Signal) {
        for group in self.groups() {
            group.signal_group(signal);
        }
    }

    /// The pids of every live process of the container, ascending.
    pub(crate) fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self.groups().flat_map(Tracked::group_members).collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Kills everything left, thawing it first as runtimes do with a frozen cgroup, and waits
    /// briefly for the init to go.
    pub(crate) fn kill_everything(&self) {
        self.signal_all(Signal::SIGCONT);
        self.signal_all(Signal::SIGKILL);
        self.init.wait_gone(std::time::Duration::from_secs(5));
    }
}

/// `<root>/<id>`.
pub(crate) fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Loads a container's record; `None` when it does not exist (or was never fully created).
pub(crate) fn load(root: &Path, id: &str) -> Option<Record> {
    let text = fs::read_to_string(dir(root, id).join(STATE_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes a record atomically, so concurrent readers never see half a file.
pub(crate) fn save(root: &Path, record: &Record) -> io::Result<()> {
    let text = serde_json::to_string_pretty(record).map_err(io::Error::other)?;
    write_atomic(&dir(root, &record.id).join(STATE_FILE), text.as_bytes())
}

/// Replaces `path` with `data` through a rename.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&temp, data)?;
    fs::rename(&temp, path)
}

/// An exclusive lock on a container directory, held for a read-modify-write of its record.
#[derive(Debug)]
pub(crate) struct Lock {
    _flock: Flock<File>,
}

/// Locks `<root>/<id>`; fails when the directory does not exist.
pub(crate) fn lock(root: &Path, id: &str) -> io::Result<Lock> {
    let file = File::open(dir(root, id))?;
    let flock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| errno)?;
    Ok(Lock { _flock: flock })
}

/// Every container under `root`, by id. Missing roots and stray files are simply skipped.
pub(crate) fn list(root: &Path) -> Vec<Record> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut records: Vec<Record> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|entry| load(root, &entry.file_name().to_string_lossy()))
        .collect();
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records
}
