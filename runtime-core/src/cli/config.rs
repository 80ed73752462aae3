//! How the caller wants a runtime driven: binary, state root, cgroup manager, timeouts.

use std::path::PathBuf;
use std::time::Duration;

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
    /// The limit of each runtime call; on expiry the runtime's process group is killed.
    pub timeout: Duration,
    /// The bound on captured stdout and stderr, each; more is read and dropped.
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
}
