//! What a backend can do on this host, decided by probes and carrying their evidence.
//!
//! Callers ask before they act: an operation whose `Support` is `Unsupported` returns
//! `Error::Unsupported` with the same reason, without running anything. Each verdict keeps the
//! probes that decided it (argv, exit status, the relevant output), so "why can't I checkpoint?"
//! is answered by the runtime's and CRIU's own words rather than by the backend's name.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::contract::version::RuntimeVersion;

/// One probe that ran: the evidence behind a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// The argv, binary first.
    pub argv: Vec<String>,
    /// Its exit status; `None` when it could not run or was killed.
    pub status: Option<i32>,
    /// The part of its output that mattered (shortened).
    pub output: String,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.status.map_or_else(|| "did not finish".to_owned(), |code| format!("exit {code}"));
        write!(f, "`{}` ({status}): {}", self.argv.join(" "), self.output)
    }
}

/// Whether a capability is there, and the evidence either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "support", rename_all = "snake_case")]
pub enum Support {
    /// It works.
    Supported {
        /// The probes that showed it.
        evidence: Vec<Probe>,
    },
    /// It does not.
    Unsupported {
        /// Why, in one sentence that quotes the runtime or CRIU.
        reason: String,
        /// The probes that showed it.
        evidence: Vec<Probe>,
    },
}

impl Support {
    /// True when supported.
    pub fn is_supported(&self) -> bool {
        matches!(self, Support::Supported { .. })
    }

    /// The reason, when unsupported.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Support::Supported { .. } => None,
            Support::Unsupported { reason, .. } => Some(reason),
        }
    }

    /// The probes behind the verdict.
    pub fn evidence(&self) -> &[Probe] {
        match self {
            Support::Supported { evidence } | Support::Unsupported { evidence, .. } => evidence,
        }
    }
}

/// How the runtime manages cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupManager {
    /// Writes cgroupfs directly; every runtime does this.
    Cgroupfs,
    /// Through systemd.
    Systemd,
    /// No cgroups at all (crun only).
    Disabled,
}

impl CgroupManager {
    /// The name runtimes use.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupManager::Cgroupfs => "cgroupfs",
            CgroupManager::Systemd => "systemd",
            CgroupManager::Disabled => "disabled",
        }
    }
}

/// Everything probed about one backend on this host.
#[derive(Debug, Clone, Serialize)]
pub struct Features {
    /// What `--version` said.
    pub version: RuntimeVersion,
    /// `checkpoint`: the runtime's command, a working CRIU, and CRIU's version.
    pub checkpoint: Support,
    /// `restore`: the same, plus the runtime's restore command.
    pub restore: Support,
    /// `checkpoint --pre-dump` (and so `--parent-path` chains): checkpoint, the flag in the
    /// runtime's dialect, and a kernel on which CRIU tracks dirty memory
    /// (`criu check --feature mem_dirty_track`).
    pub pre_dump: Support,
    /// `--lazy-pages` on checkpoint and restore: checkpoint, the flag in the runtime's dialect,
    /// and userfaultfd as CRIU needs it (`criu check --feature uffd-noncoop`).
    pub lazy_pages: Support,
    /// The runtime's `features` command.
    pub features_command: Support,
    /// The parsed `features` document, when the command answered.
    pub document: Option<oci_spec::runtime::Features>,
    /// Errors written as JSON records to `--log` (else they are read from stderr).
    pub json_error_log: Support,
    /// The `update` command.
    pub update: Support,
    /// Each cgroup manager and whether the runtime accepts it.
    pub cgroup_managers: BTreeMap<CgroupManager, Support>,
    /// Whether the host is set up the way this runtime needs (crun refuses hybrid cgroup hosts
    /// with controllers in the v2 hierarchy).
    pub host: Support,
    /// The runtime's `events` command: statistics and the event stream.
    pub events: Support,
}
