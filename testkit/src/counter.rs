//! A counter: a shell loop that counts in a variable and writes the count to `count` in its
//! working directory (by a rename, so that a checkpoint never catches it half written) until a
//! `stop` file appears there, then exits 3. Read through `/proc/<pid>/cwd` while it runs (a fact
//! of the process, whatever root it runs in) and from its root filesystem once dumped, it is the
//! evidence that a checkpoint kept memory: a restored counter goes on from its count, a
//! restarted one counts from 1 again.
//!
//! `fake-oci` cannot copy a process's memory; it gives a container's init a file that stands for
//! it, named by [`crate::fake_oci::MEMORY_VARIABLE`], and restores that file with the init. The
//! counter keeps its count there too, after the `count` file (a dump between the two finds the
//! file no further than the variable), and starts from it when there is one. Under a real
//! runtime the variable is unset and the count lives in the shell's memory alone.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

/// Counts until a `stop` file appears in its working directory, then exits 3.
pub const COUNTER: &str = "i=0; if [ -s \"$FAKE_OCI_MEMORY\" ]; then i=$(cat \"$FAKE_OCI_MEMORY\"); fi; \
    while [ ! -e stop ]; do i=$((i+1)); echo $i > count.new; mv count.new count; \
    if [ -n \"$FAKE_OCI_MEMORY\" ]; then echo $i > \"$FAKE_OCI_MEMORY.new\"; mv \"$FAKE_OCI_MEMORY.new\" \"$FAKE_OCI_MEMORY\"; fi; \
    sleep 0.1; done; exit 3";

/// The count the process `pid` last wrote.
pub fn count_of(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/cwd/count")).ok()?.trim().parse().ok()
}

/// Waits until `pid` has counted past `least`, and returns the count.
pub async fn counted_past(pid: u32, least: u32) -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match count_of(pid) {
            Some(count) if count > least => return Ok(count),
            _ => ensure!(Instant::now() < deadline, "process {pid} did not count past {least}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first count a restored `pid` writes after `dumped`: the one after it when memory
/// survived, 1 when the process started over.
pub async fn next_count(pid: u32, dumped: u32) -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match count_of(pid) {
            Some(count) if count != dumped => return Ok(count),
            _ => ensure!(Instant::now() < deadline, "process {pid} wrote no count after {dumped}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The count in a root filesystem's `count` file: what a dumped process wrote last.
pub fn count_in(rootfs: &Path) -> anyhow::Result<u32> {
    let path = rootfs.join("count");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.trim().parse().with_context(|| format!("a count in {}: {text:?}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use super::{COUNTER, count_in};
    use crate::fake_oci::MEMORY_VARIABLE;

    /// Runs the counter in `dir` for one round (its `sleep` makes the `stop` file) and returns
    /// the count it wrote, after removing what an earlier round left.
    fn first_count(dir: &Path, memory: Option<&Path>) -> u32 {
        for name in ["count", "stop"] {
            let _ = std::fs::remove_file(dir.join(name));
        }
        let mut counter = Command::new("sh");
        counter.arg("-c").arg(format!("sleep() {{ touch stop; }}; {COUNTER}"));
        counter.current_dir(dir).env_remove(MEMORY_VARIABLE);
        if let Some(memory) = memory {
            counter.env(MEMORY_VARIABLE, memory);
        }
        assert_eq!(counter.status().unwrap().code(), Some(3), "the counter's own exit");
        count_in(dir).unwrap()
    }

    #[test]
    fn the_counter_starts_from_the_fake_runtimes_memory_and_from_1_without_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(first_count(dir.path(), None), 1);
        let memory = dir.path().join("memory");
        assert_eq!(first_count(dir.path(), Some(&memory)), 1, "no memory yet: from 1");
        assert_eq!(std::fs::read_to_string(&memory).unwrap(), "1\n", "the count is kept in the memory file");
        std::fs::write(&memory, "41\n").unwrap();
        assert_eq!(first_count(dir.path(), Some(&memory)), 42);
        assert_eq!(std::fs::read_to_string(&memory).unwrap(), "42\n");
    }
}
