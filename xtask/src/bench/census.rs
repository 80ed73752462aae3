//! What a runtime's run leaves behind, and what the process holding the engines used.
//!
//! Processes left: after a runtime's run every container was deleted, so anything the bench
//! started should be gone. Three kinds are looked for in `/proc`, each found by a fact the bench
//! knows rather than by anything the code under test reports: a live process with an argument
//! naming one of the bench's containers (their ids all start with the run's tag: conmon's `-c`,
//! a runtime's arguments, podman's `--name`); a child of the bench process, live or a zombie
//! (the engine's direct monitor makes the bench a subreaper, so orphaned container inits land
//! here and must be reaped); and a live process whose root or working directory lies in the
//! run's work directory or bundles (a container's init, whatever its arguments). They are
//! counted and reported, never asserted: the bench measures, and a leak is a finding.
//!
//! Memory: the bench process holds every engine it measures with, so its resident size bounds
//! the engine's from above. Its peak (`VmHWM`) is reset when a runtime's run starts (writing `5`
//! to `/proc/self/clear_refs`, proc(5)), so each runtime's peak is its own, and its `VmRSS` is
//! read after the warm-ups and after the last round: the growth over the run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

/// How long what the last container left may take to end before it counts as left.
const SETTLE: Duration = Duration::from_secs(2);

/// A process the bench started that is still there.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LeftProcess {
    pub(super) pid: i32,
    /// Its `comm`.
    pub(super) name: String,
    pub(super) why: &'static str,
}

/// The `/proc/<pid>/stat` state and parent of a process (fields 3 and 4, after the name in
/// parentheses, which may hold anything).
fn state_and_parent(stat: &str) -> Option<(char, i32)> {
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.next()?.parse().ok()?))
}

/// Why a process counts as left by the bench, if it does: `me` is the bench's pid, `tag` the
/// prefix of its container ids, `dirs` the work directory and bundles.
fn left_because(
    me: i32,
    stat: &str,
    arguments: &[u8],
    root_and_cwd: &[Option<PathBuf>],
    tag: &str,
    dirs: &[&Path],
) -> Option<&'static str> {
    let (state, parent) = state_and_parent(stat)?;
    if parent == me {
        return Some(if matches!(state, 'Z' | 'X') { "a zombie child of the bench" } else { "a child of the bench" });
    }
    if matches!(state, 'Z' | 'X') {
        return None;
    }
    if arguments.split(|byte| *byte == 0).any(|argument| argument.windows(tag.len()).any(|w| w == tag.as_bytes())) {
        return Some("names a container of the bench");
    }
    root_and_cwd
        .iter()
        .flatten()
        .any(|path| dirs.iter().any(|dir| path.starts_with(dir)))
        .then_some("lives in a bundle or work directory of the bench")
}

/// The processes the bench started that are still there once [`SETTLE`] has passed.
pub(super) fn processes_left(tag: &str, dirs: &[&Path]) -> Vec<LeftProcess> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let left = scan(tag, dirs);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn scan(tag: &str, dirs: &[&Path]) -> Vec<LeftProcess> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let arguments = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let root_and_cwd = ["root", "cwd"].map(|link| std::fs::read_link(format!("/proc/{pid}/{link}")).ok());
            let why = left_because(me, &stat, &arguments, &root_and_cwd, tag, dirs)?;
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned();
            Some(LeftProcess { pid, name, why })
        })
        .collect()
}

/// Resets this process's peak resident size (`VmHWM`) to its current one.
pub(super) fn reset_peak_rss() -> anyhow::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5").context("resetting the peak resident size (/proc/self/clear_refs)")
}

#[cfg(test)]
mod tests {
    use super::super::conmon::parse_status_kib;
    use super::*;

    const ME: i32 = 100;
    const TAG: &str = "bench-100-runc";

    fn why(stat: &str, arguments: &str, root: Option<&str>) -> Option<&'static str> {
        let arguments = arguments.replace(' ', "\0");
        let work = Path::new("/tmp/xtask-bench-x");
        left_because(ME, stat, arguments.as_bytes(), &[root.map(PathBuf::from), None], TAG, &[work])
    }

    #[test]
    fn a_child_of_the_bench_is_left_alive_or_zombie() {
        // proc(5): "pid (comm) state ppid ...".
        assert_eq!(why("7 (true) Z 100 7 7", "", None), Some("a zombie child of the bench"));
        assert_eq!(why("7 (sleep) S 100 7 7", "sleep 1000", None), Some("a child of the bench"));
    }

    #[test]
    fn a_process_naming_a_bench_container_is_left_unless_it_is_a_zombie_of_another() {
        let conmon = "conmon --api-version 1 -c bench-100-runc-lifecycle-engine-conmon-3";
        assert_eq!(why("8 (conmon) S 1 8 8", conmon, None), Some("names a container of the bench"));
        assert_eq!(why("8 (conmon) Z 1 8 8", conmon, None), None, "a zombie of another is not ours to reap");
        assert_eq!(why("8 (conmon) S 1 8 8", "conmon -c bench-99-runc-lifecycle", None), None, "another run's");
    }

    #[test]
    fn a_process_rooted_in_the_work_directory_is_left_and_others_are_not() {
        let init = Some("/tmp/xtask-bench-x/bundle/rootfs");
        assert_eq!(
            why("9 (sh) S 1 9 9", "sh -c sleep", init),
            Some("lives in a bundle or work directory of the bench")
        );
        assert_eq!(why("9 (sh) S 1 9 9", "sh -c sleep", Some("/")), None);
        assert_eq!(why("9 (a) b) S 1 9 9", "x", Some("/tmp/xtask-bench-xy")), None, "a sibling path is not inside");
    }

    #[test]
    fn resetting_the_peak_leaves_it_at_least_the_current_size() {
        reset_peak_rss().unwrap();
        // One read: the kernel gives the peak as at least the size it reports beside it.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let (peak, now) = (parse_status_kib(&status, "VmHWM").unwrap(), parse_status_kib(&status, "VmRSS").unwrap());
        assert!(peak >= now, "VmHWM {peak} kB, VmRSS {now} kB");
    }
}
