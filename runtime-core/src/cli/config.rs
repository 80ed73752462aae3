//! How the caller wants a runtime driven: binary, state root, cgroup manager, timeouts.
//!
//! What the caller leaves unset is the runtime's default, except for a rootless caller
//! ([`Caller`]): its runtimes keep their state under its runtime directory, use cgroupfs (the
//! systemd manager needs root on a cgroup v1 host) and are told `--rootless true` where they take
//! it, as libpod does.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use crate::caller::Caller;
use crate::contract::error::Result;
use crate::contract::features::CgroupManager;

/// The default limit of one runtime call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The default bound on captured stdout and stderr, each.
pub const DEFAULT_OUTPUT_LIMIT: usize = 4 << 20;

/// Settings shared by every call a backend makes.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The runtime binary; `None` looks the backend's default name up in `PATH`.
    pub binary: Option<PathBuf>,
    /// `--root`: where the runtime keeps container state; `None` is the runtime's default.
    pub root: Option<PathBuf>,
    /// The cgroup manager; `None` is the runtime's default. One the runtime cannot select is
    /// `Error::Unsupported`.
    pub cgroup_manager: Option<CgroupManager>,
    /// `--rootless true|false` for runtimes that take it; `None` lets the runtime decide. Runtimes
    /// without the flag (youki, crun before 1.22) always decide themselves.
    pub rootless: Option<bool>,
    /// The CRIU binary, for feature probes and `--criu`; `None` is `criu` from `PATH`.
    pub criu: Option<PathBuf>,
    /// The limit of each runtime call and probe; on expiry the process group is killed. It
    /// bounds the whole call: a create or restore keeps part of it (a quarter, at most 2 s) to
    /// remove what a failed or timed-out runtime left.
    pub timeout: Duration,
    /// The bound on captured stdout and stderr, each, in bytes; more is read and dropped, and
    /// never silently: a call whose output the library parses (state, list, ps, features,
    /// probes) fails with `Error::OutputTruncated`.
    pub output_limit: usize,
    /// Pass the caller's `NOTIFY_SOCKET` on (for `sd_notify` containers); stripped otherwise.
    pub pass_notify_socket: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            binary: None,
            root: None,
            cgroup_manager: None,
            rootless: None,
            criu: None,
            timeout: DEFAULT_TIMEOUT,
            output_limit: DEFAULT_OUTPUT_LIMIT,
            pass_notify_socket: false,
        }
    }
}

/// A builder method per field: `RuntimeConfig::default().binary("/usr/bin/runc").root(dir)`.
impl RuntimeConfig {
    /// Drives the binary at `binary` (a path, or a name looked up in `PATH`).
    pub fn binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = Some(binary.into());
        self
    }

    /// Keeps container state under `root` (`--root`).
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }

    /// Selects the cgroup manager.
    pub fn cgroup_manager(mut self, manager: CgroupManager) -> Self {
        self.cgroup_manager = Some(manager);
        self
    }

    /// Says whether the runtime runs rootless (`--rootless true|false`) where it takes the flag.
    pub fn rootless(mut self, rootless: bool) -> Self {
        self.rootless = Some(rootless);
        self
    }

    /// Uses the CRIU binary at `criu`.
    pub fn criu(mut self, criu: impl Into<PathBuf>) -> Self {
        self.criu = Some(criu.into());
        self
    }

    /// Limits each call to `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Bounds captured stdout and stderr to `limit` bytes each.
    pub fn output_limit(mut self, limit: usize) -> Self {
        self.output_limit = limit;
        self
    }

    /// Passes the caller's `NOTIFY_SOCKET` on to the runtime.
    pub fn pass_notify_socket(mut self, pass: bool) -> Self {
        self.pass_notify_socket = pass;
        self
    }

    /// The config runtime `runtime` is driven with by `caller`, whose `XDG_RUNTIME_DIR` is
    /// `runtime_dir`: for a rootless caller, unset fields get the rootless defaults (`--root`
    /// `<runtime dir>/<runtime>`, cgroupfs, `--rootless true`); a runtime directory that is
    /// needed and unusable is `Error::RuntimeDir`. Root's config is left as it is.
    pub(crate) fn for_caller(mut self, runtime: &str, caller: &Caller, runtime_dir: Option<&OsStr>) -> Result<Self> {
        if !caller.is_rootless() {
            return Ok(self);
        }
        if self.root.is_none() {
            self.root = Some(caller.runtime_dir_from(runtime_dir)?.join(runtime));
        }
        self.cgroup_manager.get_or_insert(CgroupManager::Cgroupfs);
        self.rootless.get_or_insert(true);
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::error::Error;

    const IDENTITY: Option<&str> = Some("0 0 4294967295");

    #[test]
    fn roots_config_keeps_the_runtimes_defaults() {
        let root = Caller::detect(0, None, None, IDENTITY);
        let config = RuntimeConfig::default().for_caller("runc", &root, None).unwrap();
        assert_eq!((config.root, config.cgroup_manager, config.rootless), (None, None, None));
    }

    #[test]
    fn a_rootless_runtime_keeps_state_under_the_runtime_dir_with_cgroupfs_and_rootless() {
        let dir = tempfile::tempdir().unwrap();
        let caller = Caller::detect(nix::unistd::geteuid().as_raw(), Some(OsStr::new("done")), None, IDENTITY);
        let config = RuntimeConfig::default().for_caller("crun", &caller, Some(dir.path().as_os_str())).unwrap();
        assert_eq!(config.root, Some(dir.path().join("crun")), "as crun and runc put it: $XDG_RUNTIME_DIR/<runtime>");
        assert_eq!(config.cgroup_manager, Some(CgroupManager::Cgroupfs));
        assert_eq!(config.rootless, Some(true));
    }

    #[test]
    fn a_rootless_callers_own_choices_stay_and_need_no_runtime_dir() {
        let caller = Caller::detect(1000, None, None, IDENTITY);
        let chosen = RuntimeConfig::default().root("/tmp/state").cgroup_manager(CgroupManager::Systemd).rootless(false);
        let config = chosen.for_caller("runc", &caller, None).unwrap();
        assert_eq!(config.root, Some(PathBuf::from("/tmp/state")));
        assert_eq!(config.cgroup_manager, Some(CgroupManager::Systemd));
        assert_eq!(config.rootless, Some(false));
        let unset = RuntimeConfig::default().for_caller("runc", &caller, None);
        assert!(matches!(unset, Err(Error::RuntimeDir { path: None, uid: 1000, .. })), "{unset:?}");
    }
}
