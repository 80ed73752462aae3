//! Container records under `<root>/<id>/`.
//!
//! Every invocation is a separate short-lived process, so all state lives on disk: the fake's
//! own `state.json` ([`Record`]), the `exec.fifo` between `create` and `start`, and the
//! resources document the last `update` received. The status is never stored; it is derived on
//! every read from the init process (alive or not) and two flags, as runc derives it from the
//! kernel rather than trusting its own files.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::Signal;
use oci_spec::runtime::Spec;
use runtime_core::Status;
use serde::{Deserialize, Serialize};

use super::{Ctx, Failure};
use crate::fake::Flavour;
use crate::procs::Tracked;

const STATE_FILE: &str = "state.json";
pub(crate) const FIFO: &str = "exec.fifo";
/// The file in a container's directory holding the resources document `update` received.
pub const RECEIVED_RESOURCES: &str = "received-resources.json";

/// What the fake remembers about one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub id: String,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// `root.path` exactly as written in config.json.
    pub root_path: String,
    pub created: DateTime<Utc>,
    /// The config's annotations, if it has the key.
    pub annotations: Option<BTreeMap<String, String>>,
    pub init: Tracked,
    /// Set once `start` released the init (at once for `restore`).
    pub started: bool,
    pub paused: bool,
    /// Processes started by `exec`, each leading its own process group.
    pub execs: Vec<Tracked>,
}

impl Record {
    /// A new container from `bundle` and its config, whose process is `init`.
    pub(crate) fn new(id: &str, bundle: PathBuf, spec: &Spec, init: Tracked, started: bool) -> Record {
        Record {
            id: id.to_owned(),
            bundle,
            root_path: spec.root().as_ref().map(|root| root.path().to_string_lossy().into_owned()).unwrap_or_default(),
            created: Utc::now(),
            annotations: spec.annotations().as_ref().map(|annotations| annotations.clone().into_iter().collect()),
            init,
            started,
            paused: false,
            execs: Vec::new(),
        }
    }

    pub(crate) fn status(&self) -> Status {
        match (self.init.alive(), self.paused, self.started) {
            (false, _, _) => Status::Stopped,
            (true, true, _) => Status::Paused,
            (true, false, true) => Status::Running,
            (true, false, false) => Status::Created,
        }
    }

    /// The root filesystem directory on the host.
    pub(crate) fn rootfs(&self) -> PathBuf {
        self.bundle.join(&self.root_path)
    }

    /// The init's and every exec'd process's group: together they stand in for the cgroup.
    pub(crate) fn groups(&self) -> impl Iterator<Item = &Tracked> {
        std::iter::once(&self.init).chain(self.execs.iter())
    }

    pub(crate) fn signal_all(&self, signal: Signal) {
        self.groups().for_each(|group| group.signal_group(signal));
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

/// A container's record, or the flavour's "does not exist" for `command`.
pub(crate) fn find(ctx: &Ctx, command: &str, id: &str) -> Result<Record, Failure> {
    load(&ctx.root, id).ok_or_else(|| not_found(ctx, command, id))
}

/// How each runtime says that `id` does not exist, as `command` reports it.
pub(crate) fn not_found(ctx: &Ctx, command: &str, id: &str) -> Failure {
    let root = ctx.root.display();
    match (ctx.flavour, command) {
        (Flavour::Runc, _) => Failure::runtime("container does not exist"),
        (Flavour::Crun, "delete") => {
            Failure::runtime(format!("cannot open directory '{root}/{id}': No such file or directory"))
        }
        // crun's `ps` fails before its logging is set up, with -3 as its exit status.
        (Flavour::Crun, "ps") => {
            Failure::runtime(format!("error opening file `{root}/{id}/status`: No such file or directory"))
                .with_code(253)
                .unlogged()
        }
        (Flavour::Crun, _) => {
            Failure::runtime(format!("error opening file `{root}/{id}/status`: No such file or directory"))
        }
        (Flavour::Youki, "exec") => Failure::runtime("container state directory does not exist"),
        (Flavour::Youki, _) => Failure::runtime(format!("container {id} does not exist.")),
    }
}

/// youki's refusal of `operation` for a container in `status`.
pub(crate) fn youki_refusal(operation: &str, id: &str, status: Status) -> Failure {
    Failure::runtime(format!(
        "failed to {operation} container {id}\n\nCaused by:\n    failed operation due to incompatible container status: `{status:?}`"
    ))
}

/// Loads a container's record; `None` when it does not exist (or was never fully created).
pub(crate) fn load(root: &Path, id: &str) -> Option<Record> {
    let text = fs::read_to_string(dir(root, id).join(STATE_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

pub(crate) fn save(ctx: &Ctx, record: &Record) -> Result<(), Failure> {
    let text = serde_json::to_vec(record).map_err(|err| Failure::runtime(err.to_string()))?;
    write_atomic(&dir(&ctx.root, &record.id).join(STATE_FILE), &text).map_err(|err| Failure::io("save state", err))
}

/// Replaces `path` with `data` through a rename, so readers never see half a file.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&temp, data)?;
    fs::rename(&temp, path)
}

/// An exclusive lock on `<root>/<id>` for a read-modify-write of its record.
pub(crate) fn lock(ctx: &Ctx, command: &str, id: &str) -> Result<Flock<File>, Failure> {
    let file = File::open(dir(&ctx.root, id)).map_err(|_| not_found(ctx, command, id))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| Failure::io("lock", errno.into()))
}

/// Every container under `root`, by id.
pub(crate) fn list(root: &Path) -> Vec<Record> {
    let Ok(entries) = fs::read_dir(root) else { return Vec::new() };
    let mut records: Vec<Record> =
        entries.filter_map(Result::ok).filter_map(|entry| load(root, &entry.file_name().to_string_lossy())).collect();
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records
}
