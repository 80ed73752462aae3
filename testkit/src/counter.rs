//! A counter: a shell loop that counts in a variable and writes the count to `count` in its
//! working directory (by a rename, so that a checkpoint never catches it half written) until a `stop` file appears there, then exits 3. Read through
//! `/proc/<pid>/cwd` while it runs (a fact of the process, whatever root it runs in) and from
//! its root filesystem once dumped, it is the evidence that a checkpoint kept memory: a restored
//! counter goes on from its count, a restarted one counts from 1 again.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

/// Counts until a `stop` file appears in its working directory, then exits 3.
pub const COUNTER: &str =
    "i=0; while [ ! -e stop ]; do i=$((i+1)); echo $i > count.new; mv count.new count; sleep 0.1; done; exit 3";

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
