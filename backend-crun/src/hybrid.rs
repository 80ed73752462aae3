//! crun and hybrid cgroup hosts.
//!
//! On a hybrid host (cgroup v1 hierarchies plus a v2 hierarchy, usually at
//! `/sys/fs/cgroup/unified`), crun fails every create with "cgroups in hybrid mode not
//! supported, drop all controllers from cgroupv2" as soon as one controller is attached to the
//! v2 hierarchy. Debian's kernels leave `hugetlb` there when no v1 hierarchy claims it; mounting
//! the v1 hugetlb hierarchy moves it out. This check reads the mount table and the v2
//! `cgroup.controllers`, so the refusal is known before crun runs.

use std::path::PathBuf;

use runtime_core::{CgroupLayout, HostCheck, HostVerdict};

/// Detects a hybrid cgroup host whose v2 hierarchy holds controllers.
#[derive(Debug, Clone)]
pub struct HybridCgroupCheck {
    mountinfo: PathBuf,
}

impl Default for HybridCgroupCheck {
    fn default() -> Self {
        HybridCgroupCheck::new("/proc/self/mountinfo")
    }
}

impl HybridCgroupCheck {
    /// Reads the mount table from `mountinfo` (normally `/proc/self/mountinfo`).
    pub fn new(mountinfo: impl Into<PathBuf>) -> Self {
        HybridCgroupCheck { mountinfo: mountinfo.into() }
    }
}

impl HostCheck for HybridCgroupCheck {
    fn describe(&self) -> String {
        format!("cgroup layout from {}", self.mountinfo.display())
    }

    fn check(&self) -> HostVerdict {
        let layout = match CgroupLayout::read(&self.mountinfo) {
            Ok(layout) => layout,
            Err(err) => {
                return HostVerdict::Fine {
                    evidence: format!("cannot read {}: {err}; nothing to refuse", self.mountinfo.display()),
                };
            }
        };
        let (v2, controllers, v1_options) = match layout {
            CgroupLayout::Legacy => {
                return HostVerdict::Fine { evidence: "no cgroup v2 hierarchy is mounted (legacy host)".into() };
            }
            CgroupLayout::Unified { mount_point } => {
                return HostVerdict::Fine {
                    evidence: format!("unified host: only cgroup v2, at {}", mount_point.display()),
                };
            }
            CgroupLayout::Hybrid { v2_mount_point, v2_controllers, v1_options } => {
                (v2_mount_point, v2_controllers, v1_options)
            }
        };
        let listed = controllers.join(" ");
        let evidence = format!(
            "hybrid host: cgroup v2 at {} with controllers [{listed}]; v1 hierarchies with options {v1_options:?}",
            v2.display()
        );
        if controllers.is_empty() {
            return HostVerdict::Fine { evidence };
        }
        let mount_hint = controllers
            .iter()
            .map(|controller| format!("mount -t cgroup -o {controller} cgroup /sys/fs/cgroup/{controller}"))
            .collect::<Vec<_>>()
            .join(" && ");
        HostVerdict::Incompatible {
            problem: format!(
                "this is a hybrid cgroup host and the v2 hierarchy at {} holds controllers ({listed}); crun refuses \
                 such hosts (\"cgroups in hybrid mode not supported, drop all controllers from cgroupv2\")",
                v2.display()
            ),
            fix: format!(
                "attach those controllers to cgroup v1 hierarchies as root: `mkdir -p /sys/fs/cgroup/<name> && \
                 {mount_hint}` (`cargo xtask setup` does this)"
            ),
            evidence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake host: a mountinfo file and cgroup directories inside a temp dir.
    struct FakeHost {
        dir: tempfile::TempDir,
    }

    impl FakeHost {
        fn new(v1_controllers: &[&str], v2_controllers: Option<&str>) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("sys/fs/cgroup");
            let mut mountinfo = format!(
                "25 1 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n\
                 30 25 0:26 / {} ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755\n",
                root.display()
            );
            for (n, controller) in v1_controllers.iter().enumerate() {
                let point = root.join(controller);
                std::fs::create_dir_all(&point).unwrap();
                mountinfo.push_str(&format!(
                    "{} 30 0:{} / {} rw,nosuid,nodev,noexec,relatime shared:{} - cgroup cgroup rw,{controller}\n",
                    40 + n,
                    40 + n,
                    point.display(),
                    20 + n
                ));
            }
            if let Some(controllers) = v2_controllers {
                let point = root.join("unified");
                std::fs::create_dir_all(&point).unwrap();
                std::fs::write(point.join("cgroup.controllers"), format!("{controllers}\n")).unwrap();
                mountinfo.push_str(&format!(
                    "35 30 0:30 / {} rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate\n",
                    point.display()
                ));
            }
            std::fs::write(dir.path().join("mountinfo"), mountinfo).unwrap();
            FakeHost { dir }
        }

        fn check(&self) -> HostVerdict {
            HybridCgroupCheck::new(self.dir.path().join("mountinfo")).check()
        }
    }

    #[test]
    fn hybrid_host_with_a_v2_controller_is_incompatible_and_names_the_fix() {
        let host = FakeHost::new(&["cpu", "memory", "pids"], Some("hugetlb"));
        match host.check() {
            HostVerdict::Incompatible { problem, fix, evidence } => {
                assert!(problem.contains("hugetlb") && problem.contains("hybrid"), "{problem}");
                assert!(fix.contains("mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb"), "{fix}");
                assert!(fix.contains("cargo xtask setup"), "{fix}");
                assert!(evidence.contains("[hugetlb]"), "{evidence}");
            }
            fine => panic!("expected incompatible, got {fine:?}"),
        }
    }

    #[test]
    fn hybrid_host_with_an_empty_v2_hierarchy_is_fine() {
        let host = FakeHost::new(&["cpu", "memory", "hugetlb"], Some(""));
        assert!(matches!(host.check(), HostVerdict::Fine { .. }));
    }

    #[test]
    fn unified_and_legacy_hosts_are_fine() {
        assert!(matches!(FakeHost::new(&[], Some("cpu memory io pids")).check(), HostVerdict::Fine { .. }));
        assert!(matches!(FakeHost::new(&["cpu", "memory"], None).check(), HostVerdict::Fine { .. }));
    }
}
