//! Conditions of the host a runtime needs, checked before it is asked to run anything.
//!
//! Some runtimes refuse whole host layouts (crun refuses hybrid cgroup hosts whose v2 hierarchy
//! holds a controller). Such a refusal is a property of the host, not a runtime failure: it is
//! detected from the host itself and reported as `Error::HostIncompatible` with the fix.

use std::fmt;

/// A host condition a runtime needs.
pub trait HostCheck: Send + Sync + fmt::Debug {
    /// What the check looks at, for evidence (`"cgroup layout from /proc/self/mountinfo"`).
    fn describe(&self) -> String;
    /// Checks the host now.
    fn check(&self) -> HostVerdict;
}

/// The outcome of a [`HostCheck`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostVerdict {
    /// The host is fine; what was looked at.
    Fine {
        /// What was read and what it said.
        evidence: String,
    },
    /// The runtime will refuse this host.
    Incompatible {
        /// What is wrong.
        problem: String,
        /// What makes it work.
        fix: String,
        /// What was read and what it said.
        evidence: String,
    },
}
