//! How the host mounts cgroups (v1 hierarchies, the v2 hierarchy, or both), read from a mount
//! table. Runtimes differ in what they accept of it: crun refuses a hybrid host whose v2
//! hierarchy holds controllers, youki 0.7 cannot run rootless where v1 hierarchies exist, and
//! `cargo xtask setup` moves controllers out of the v2 hierarchy; each backend's host check and
//! setup read the layout here.

use std::path::{Path, PathBuf};

/// How the host mounts cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// Only v1 hierarchies.
    Legacy,
    /// Only the v2 hierarchy.
    Unified {
        /// Where it is mounted.
        mount_point: PathBuf,
    },
    /// v1 hierarchies plus a v2 hierarchy.
    Hybrid {
        /// Where the v2 hierarchy is mounted.
        v2_mount_point: PathBuf,
        /// The controllers attached to it (crun needs none).
        v2_controllers: Vec<String>,
        /// The super options of the v1 mounts (their controllers).
        v1_options: Vec<String>,
    },
}

impl CgroupLayout {
    /// Reads the mount table `mountinfo` (normally `/proc/self/mountinfo`) and, on a hybrid host,
    /// the v2 hierarchy's `cgroup.controllers`.
    pub fn read(mountinfo: &Path) -> std::io::Result<CgroupLayout> {
        let mounts = parse_mountinfo(&std::fs::read_to_string(mountinfo)?);
        let v1_options: Vec<String> =
            mounts.iter().filter(|mount| mount.fstype == "cgroup").map(|mount| mount.super_options.clone()).collect();
        let v2 = mounts.iter().find(|mount| mount.fstype == "cgroup2");
        Ok(match (v2, v1_options.is_empty()) {
            (None, _) => CgroupLayout::Legacy,
            (Some(v2), true) => CgroupLayout::Unified { mount_point: v2.point.clone() },
            (Some(v2), false) => CgroupLayout::Hybrid {
                v2_mount_point: v2.point.clone(),
                v2_controllers: std::fs::read_to_string(v2.point.join("cgroup.controllers"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                v1_options,
            },
        })
    }
}

/// One mount, from a mountinfo line.
struct Mount {
    point: PathBuf,
    fstype: String,
    super_options: String,
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let point = before.split_whitespace().nth(4)?;
            let mut after = after.split_whitespace();
            let fstype = after.next()?.to_owned();
            let _source = after.next();
            let super_options = after.next().unwrap_or_default().to_owned();
            Some(Mount { point: PathBuf::from(unescape(point)), fstype, super_options })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_with_spaces_are_unescaped() {
        let mounts = parse_mountinfo("35 30 0:30 / /a\\040b rw - cgroup2 cgroup2 rw\n");
        assert_eq!(mounts[0].point, PathBuf::from("/a b"));
    }
}
