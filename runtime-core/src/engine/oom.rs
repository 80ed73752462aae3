//! Whether the kernel's OOM killer struck a container, read from the container's memory cgroup.
//!
//! Runtimes do not say it: only runc's `events` stream reports an OOM, and only to a listener
//! that was there at the time. The kernel counts every OOM kill in the memory cgroup itself
//! (`oom_kill N` in cgroup v1's `memory.oom_control`, in cgroup v2's `memory.events`), whichever
//! runtime made the cgroup. That count goes when the runtime's `delete` removes the cgroup, so
//! the monitor finds the cgroup while the init lives (from `/proc/<pid>/cgroup`, resolved against
//! this process's own mount table, `/proc/self/mountinfo`) and reads the count once the init has
//! ended, before the record of its exit is complete. It must be found before the init ends: an
//! ended process's `/proc/<pid>/cgroup` names the root cgroups. The search runs off the executor
//! while the create finishes, and the start of a created container waits for it. A count above
//! zero is recorded the way conmon records it: an empty `oom` file in the container's directory,
//! which outlives the process. The kernel counts a kill before it sends the SIGKILL, so a count
//! read after the init has ended includes the kill that ended it.
//!
//! As with conmon and podman, a kill of any process in the container's memory cgroup counts, not
//! only of its init: a container whose init survived the OOM killer and exited on its own is
//! still reported as OOM-killed.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::contract::error::{Error, Result};
use crate::contract::monitor::ContainerFiles;

/// Where the kernel counts the OOM kills of one memory cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OomCounter {
    file: PathBuf,
}

impl OomCounter {
    /// The counter of the memory cgroup that process `pid` is in, found while it lives.
    /// `None` when it is in no memory cgroup this process can see, or in this process's own
    /// (as the processes of a runtime that makes no cgroups are): kills counted there may be of
    /// anything else in it.
    pub(crate) fn of(pid: u32) -> Result<Option<Self>> {
        Self::of_in(Path::new("/proc"), pid)
    }

    /// As [`OomCounter::of`], with `proc` mounted where given.
    fn of_in(proc: &Path, pid: u32) -> Result<Option<Self>> {
        let mounts = read(&proc.join("self").join("mountinfo"))?;
        let counter = locate(&read(&proc.join(pid.to_string()).join("cgroup"))?, &mounts);
        let own = locate(&read(&proc.join("self").join("cgroup"))?, &mounts);
        Ok(counter.filter(|counter| Some(counter) != own.as_ref()))
    }

    /// How many processes the OOM killer has killed in the cgroup so far.
    pub(crate) fn kills(&self) -> Result<u64> {
        let text = read(&self.file)?;
        oom_kills(&text).ok_or_else(|| {
            Error::parse(format!("OOM counter {}", self.file.display()), format!("no `oom_kill N` line in {text:?}"))
        })
    }

    /// Reads the count now and, when the OOM killer struck, records it in the container's `oom`
    /// file. Says whether it struck.
    pub(crate) fn record(&self, files: &ContainerFiles) -> Result<bool> {
        if self.kills()? == 0 {
            return Ok(false);
        }
        let path = files.oom_file();
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|err| Error::io(format!("writing {}", path.display()), err))?;
        Ok(true)
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|err| Error::io(format!("reading {}", path.display()), err))
}

/// The OOM counter of the memory cgroup named in `cgroups` (a `/proc/<pid>/cgroup`), under the
/// mounts of `mountinfo` (a `/proc/self/mountinfo`). A cgroup v1 `memory` hierarchy wins: on a
/// hybrid host the unified (`0::`) hierarchy has no memory controller.
fn locate(cgroups: &str, mountinfo: &str) -> Option<OomCounter> {
    let mounts: Vec<Mount> = mountinfo.lines().filter_map(Mount::parse).collect();
    let memberships: Vec<(&str, &str)> = cgroups
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_hierarchy, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            Some((controllers, path))
        })
        .collect();
    let v1_memory = memberships.iter().find(|(controllers, _)| controllers.split(',').any(|c| c == "memory"));
    if let Some((_, path)) = v1_memory {
        let mount = mounts.iter().filter(|mount| mount.fstype == "cgroup" && mount.has_option("memory"));
        return resolve(mount, path, "memory.oom_control");
    }
    let (_, path) = memberships.iter().find(|(controllers, _)| controllers.is_empty())?;
    resolve(mounts.iter().filter(|mount| mount.fstype == "cgroup2"), path, "memory.events")
}

/// `file` of cgroup `path` under the first of `mounts` that shows that part of the hierarchy.
fn resolve<'a>(mut mounts: impl Iterator<Item = &'a Mount>, path: &str, file: &str) -> Option<OomCounter> {
    mounts.find_map(|mount| {
        let inside = Path::new(path).strip_prefix(&mount.root).ok()?;
        Some(OomCounter { file: mount.point.join(inside).join(file) })
    })
}

/// The count of an `oom_kill N` line, as both `memory.oom_control` (v1) and `memory.events`
/// (v2) write it.
fn oom_kills(text: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix("oom_kill ")?.trim().parse().ok())
}

/// One line of `/proc/self/mountinfo`, as far as finding cgroups needs it.
#[derive(Debug)]
struct Mount {
    /// The part of the filesystem mounted (for a cgroup filesystem, a cgroup path).
    root: PathBuf,
    /// Where it is mounted.
    point: PathBuf,
    fstype: String,
    super_options: String,
}

impl Mount {
    /// `id parent major:minor root point options [optional fields...] - fstype source super_options`
    fn parse(line: &str) -> Option<Mount> {
        let (before, after) = line.split_once(" - ")?;
        let before: Vec<&str> = before.split(' ').collect();
        let mut after = after.split(' ');
        let (fstype, _source, super_options) = (after.next()?, after.next()?, after.next()?);
        Some(Mount {
            root: PathBuf::from(unescape(before.get(3)?)),
            point: PathBuf::from(unescape(before.get(4)?)),
            fstype: fstype.to_owned(),
            super_options: super_options.to_owned(),
        })
    }

    fn has_option(&self, option: &str) -> bool {
        self.super_options.split(',').any(|o| o == option)
    }
}

/// Undoes the kernel's octal escapes of space, tab, newline and backslash (`\040`...).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal.and_then(|digits| u8::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/self/mountinfo` of a process on this host (Debian 12, cgroup v1 hybrid), the
    /// lines up to the cgroup mounts.
    const HOST_MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334096k,nr_inodes=3083524,mode=755
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
45 31 0:40 / /sys/fs/cgroup/hugetlb rw,relatime - cgroup cgroup rw,hugetlb
";

    /// `/proc/<pid>/cgroup` of a runc 1.1.5 container's init here (`runc run -d oomt1`, no
    /// `cgroupsPath`: runc nests the memory cgroup under its caller's).
    const RUNC_CGROUP: &str = "\
10:hugetlb:/oomt1
9:name=systemd:/oomt1
8:pids:/oomt1
7:blkio:/oomt1
6:freezer:/oomt1
5:devices:/oomt1
4:memory:/process_api/ea892ace9d0953029e429a0fc3bcb15b/oomt1
3:cpuset:/oomt1
2:cpuacct:/oomt1
1:cpu:/oomt1
0::/oomt1
";

    /// The memory and unified lines of crun 1.8.1's and youki 0.7.0's inits here (`oomt3`).
    const CRUN_CGROUP: &str = "4:memory:/oomt3\n0::/oomt3\n";
    const YOUKI_CGROUP: &str = "4:memory:/:youki:oomt3\n0::/\n";

    /// `memory.oom_control` of the runc container above after its init was OOM-killed.
    const V1_OOM_CONTROL: &str = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";

    /// `memory.events` as the kernel's cgroup-v2 documentation lists its keys (this host has no
    /// memory controller on its unified hierarchy to copy from).
    const V2_MEMORY_EVENTS: &str = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 7\n";

    fn file(counter: Option<OomCounter>) -> Option<PathBuf> {
        counter.map(|counter| counter.file)
    }

    #[test]
    fn a_runc_container_on_the_hybrid_host_is_found_in_its_v1_memory_hierarchy() {
        assert_eq!(
            file(locate(RUNC_CGROUP, HOST_MOUNTINFO)),
            Some(PathBuf::from(
                "/sys/fs/cgroup/memory/process_api/ea892ace9d0953029e429a0fc3bcb15b/oomt1/memory.oom_control"
            ))
        );
    }

    #[test]
    fn crun_and_youki_paths_resolve_as_written_colons_and_all() {
        assert_eq!(
            file(locate(CRUN_CGROUP, HOST_MOUNTINFO)),
            Some(PathBuf::from("/sys/fs/cgroup/memory/oomt3/memory.oom_control"))
        );
        assert_eq!(
            file(locate(YOUKI_CGROUP, HOST_MOUNTINFO)),
            Some(PathBuf::from("/sys/fs/cgroup/memory/:youki:oomt3/memory.oom_control"))
        );
    }

    #[test]
    fn on_a_pure_v2_host_the_unified_line_and_memory_events_are_used() {
        let mountinfo = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
33 25 0:28 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
        assert_eq!(
            file(locate("0::/system.slice/runc-c1.scope\n", mountinfo)),
            Some(PathBuf::from("/sys/fs/cgroup/system.slice/runc-c1.scope/memory.events"))
        );
    }

    #[test]
    fn a_mount_of_part_of_the_hierarchy_is_used_only_for_cgroups_inside_it() {
        // As a container sees its own cgroup (`runc` mounts the hierarchy from the container's
        // cgroup down), with the memory line of a process under it, then of one outside it.
        let mountinfo = "35 31 0:32 /oomt1 /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n";
        assert_eq!(
            file(locate("4:memory:/oomt1/sub\n", mountinfo)),
            Some(PathBuf::from("/sys/fs/cgroup/memory/sub/memory.oom_control"))
        );
        assert_eq!(file(locate("4:memory:/oomt10\n", mountinfo)), None);
        assert_eq!(file(locate("4:memory:/elsewhere\n", mountinfo)), None);
    }

    #[test]
    fn escaped_mount_points_are_unescaped() {
        let mountinfo = "35 31 0:32 / /mnt/cgroup\\040memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(
            file(locate("4:memory:/c1\n", mountinfo)),
            Some(PathBuf::from("/mnt/cgroup memory/c1/memory.oom_control"))
        );
    }

    #[test]
    fn no_memory_hierarchy_mounted_means_no_counter() {
        let without_memory: String =
            HOST_MOUNTINFO.lines().filter(|l| !l.ends_with("rw,memory")).map(|l| l.to_owned() + "\n").collect();
        // The v1 memory line is there but its hierarchy is not mounted: the unified hierarchy
        // of a hybrid host has no memory controller to fall back on.
        assert_eq!(file(locate(RUNC_CGROUP, &without_memory)), None);
        assert_eq!(file(locate("", HOST_MOUNTINFO)), None);
    }

    #[test]
    fn the_oom_kill_count_is_read_from_both_formats() {
        assert_eq!(oom_kills(V1_OOM_CONTROL), Some(1));
        assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"), Some(0));
        assert_eq!(oom_kills(V2_MEMORY_EVENTS), Some(2), "not oom, not oom_group_kill");
        assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\n"), None, "kernels before 4.13 had no count");
    }

    /// `/proc/self/cgroup` of the process that ran the runc container above.
    const CALLER_CGROUP: &str = "\
10:hugetlb:/
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/ea892ace9d0953029e429a0fc3bcb15b
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    /// A fabricated host under `dir`: `proc/<pid>/cgroup` of the runc container, `proc/self/cgroup`
    /// of its caller, `proc/self/mountinfo` with the host's cgroup mounts moved under `dir`, and
    /// the container's memory cgroup with `oom_control` as its `memory.oom_control`.
    fn fabricated_host(dir: &Path, pid: u32, oom_control: &str) -> PathBuf {
        let proc = dir.join("proc");
        std::fs::create_dir_all(proc.join(pid.to_string())).unwrap();
        std::fs::create_dir_all(proc.join("self")).unwrap();
        std::fs::write(proc.join(pid.to_string()).join("cgroup"), RUNC_CGROUP).unwrap();
        std::fs::write(proc.join("self/cgroup"), CALLER_CGROUP).unwrap();
        let cgroupfs = dir.join("sys/fs/cgroup");
        let mountinfo = HOST_MOUNTINFO.replace(" /sys/fs/cgroup", &format!(" {}", cgroupfs.display()));
        std::fs::write(proc.join("self/mountinfo"), mountinfo).unwrap();
        let memory = cgroupfs.join("memory/process_api/ea892ace9d0953029e429a0fc3bcb15b/oomt1");
        std::fs::create_dir_all(&memory).unwrap();
        std::fs::write(memory.join("memory.oom_control"), oom_control).unwrap();
        proc
    }

    fn container_files(dir: &Path) -> ContainerFiles {
        let files = ContainerFiles { exit_file: dir.join("exits/c1"), dir: dir.join("containers/c1") };
        std::fs::create_dir_all(&files.dir).unwrap();
        files
    }

    #[test]
    fn a_counted_kill_is_recorded_as_an_empty_oom_file() {
        let dir = tempfile::tempdir().unwrap();
        let proc = fabricated_host(dir.path(), 4242, V1_OOM_CONTROL);
        let counter = OomCounter::of_in(&proc, 4242).unwrap().expect("the memory cgroup is found");
        assert_eq!(counter.kills().unwrap(), 1);
        let files = container_files(dir.path());
        assert!(counter.record(&files).unwrap());
        let oom = dir.path().join("containers/c1/oom");
        assert_eq!(std::fs::read(&oom).unwrap(), b"", "conmon's shape: an empty file named oom");
    }

    #[test]
    fn no_kill_counted_writes_no_oom_file() {
        let dir = tempfile::tempdir().unwrap();
        let proc = fabricated_host(dir.path(), 4242, "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
        let counter = OomCounter::of_in(&proc, 4242).unwrap().expect("the memory cgroup is found");
        let files = container_files(dir.path());
        assert!(!counter.record(&files).unwrap());
        assert!(!dir.path().join("containers/c1/oom").exists());
    }

    #[test]
    fn a_process_in_the_callers_own_memory_cgroup_has_no_counter_of_its_own() {
        // A fake runtime's process, say: it runs on the host, in the caller's cgroups.
        let dir = tempfile::tempdir().unwrap();
        let proc = fabricated_host(dir.path(), 4242, V1_OOM_CONTROL);
        std::fs::create_dir_all(proc.join("5151")).unwrap();
        std::fs::write(proc.join("5151/cgroup"), CALLER_CGROUP).unwrap();
        assert_eq!(OomCounter::of_in(&proc, 5151).unwrap(), None);
    }

    #[test]
    fn a_cgroup_removed_before_it_was_read_is_an_error_not_a_count() {
        let dir = tempfile::tempdir().unwrap();
        let proc = fabricated_host(dir.path(), 4242, V1_OOM_CONTROL);
        let counter = OomCounter::of_in(&proc, 4242).unwrap().expect("the memory cgroup is found");
        std::fs::remove_dir_all(dir.path().join("sys/fs/cgroup/memory/process_api")).unwrap();
        assert!(matches!(counter.kills(), Err(Error::Io { .. })));
        assert!(matches!(OomCounter::of_in(&proc, 4343), Err(Error::Io { .. })), "no such process");
    }
}
