//! youki and rootless containers on cgroup v1.
//!
//! youki 0.7 makes a cgroup in every cgroup v1 hierarchy for each container, rootless or not,
//! where runc and crun skip the cgroups a rootless container cannot write. An unprivileged user
//! may not make directories there, so on a host with v1 hierarchies (legacy or hybrid) every
//! rootless create fails, in youki's words: "cgroup error: io error: failed to create dir
//! /sys/fs/cgroup/hugetlb/:youki:<id>: Permission denied (os error 13)". That is a property of
//! the host (its cgroup version) and of the caller (rootless), not a failure of youki or of the
//! library, so it is a host check: the create is refused as `Error::HostIncompatible` before youki
//! runs, and feature probes report it.

use std::path::PathBuf;

use runtime_core::{Caller, CgroupLayout, HostCheck, HostVerdict};

/// Detects a rootless caller on a host with cgroup v1 hierarchies.
#[derive(Debug, Clone)]
pub struct RootlessCgroupV1Check {
    mountinfo: PathBuf,
    rootless: bool,
}

impl Default for RootlessCgroupV1Check {
    fn default() -> Self {
        RootlessCgroupV1Check::new("/proc/self/mountinfo", Caller::current().is_rootless())
    }
}

impl RootlessCgroupV1Check {
    /// Reads the mount table from `mountinfo`, for a caller that is `rootless` or not.
    pub fn new(mountinfo: impl Into<PathBuf>, rootless: bool) -> Self {
        RootlessCgroupV1Check { mountinfo: mountinfo.into(), rootless }
    }
}

impl HostCheck for RootlessCgroupV1Check {
    fn describe(&self) -> String {
        format!("rootless caller and cgroup v1 hierarchies in {}", self.mountinfo.display())
    }

    fn check(&self) -> HostVerdict {
        if !self.rootless {
            return HostVerdict::Fine { evidence: "not rootless: youki may make its v1 cgroups".into() };
        }
        let evidence = match CgroupLayout::read(&self.mountinfo) {
            Err(err) => {
                let evidence = format!("cannot read {}: {err}; nothing to refuse", self.mountinfo.display());
                return HostVerdict::Fine { evidence };
            }
            Ok(CgroupLayout::Unified { mount_point }) => {
                let evidence = format!("rootless on a unified host: only cgroup v2, at {}", mount_point.display());
                return HostVerdict::Fine { evidence };
            }
            Ok(CgroupLayout::Legacy) => "rootless on a legacy host: only cgroup v1 hierarchies".to_owned(),
            Ok(CgroupLayout::Hybrid { v1_options, .. }) => {
                format!("rootless on a hybrid host: v1 hierarchies with options {v1_options:?}")
            }
        };
        HostVerdict::Incompatible {
            problem: "rootless on a host with cgroup v1 hierarchies: youki 0.7 makes a cgroup in each of them even \
                      when rootless, which an unprivileged user may not (\"failed to create dir \
                      /sys/fs/cgroup/<controller>/:youki:<id>: Permission denied\")"
                .into(),
            fix: "run youki as root on this host, or rootless on a cgroup v2 (unified) host; runc and crun run \
                  rootless here"
                .into(),
            evidence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "40 30 0:40 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n";
    const V2: &str = "35 30 0:30 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";

    fn check(mountinfo: &str, rootless: bool) -> HostVerdict {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mountinfo"), mountinfo).unwrap();
        RootlessCgroupV1Check::new(dir.path().join("mountinfo"), rootless).check()
    }

    #[test]
    fn rootless_on_v1_hierarchies_is_incompatible_in_youkis_words() {
        for mountinfo in [V1.to_owned(), format!("{V1}{V2}")] {
            match check(&mountinfo, true) {
                HostVerdict::Incompatible { problem, fix, .. } => {
                    assert!(problem.contains("failed to create dir") && problem.contains("Permission denied"));
                    assert!(fix.contains("cgroup v2"), "{fix}");
                }
                fine => panic!("{mountinfo:?}: expected incompatible, got {fine:?}"),
            }
        }
    }

    #[test]
    fn root_anywhere_and_rootless_on_a_unified_host_are_fine() {
        assert!(matches!(check(V1, false), HostVerdict::Fine { .. }));
        assert!(matches!(check(V2, true), HostVerdict::Fine { .. }));
    }
}
