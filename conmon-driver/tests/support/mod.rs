//! What every integration test of conmon-driver checks after a case, in one place so that the
//! test binaries (each its own crate, including this module with `mod support;`) cannot drift
//! apart in what "nothing is left" means: no process naming one of the case's ids (conmon, the
//! runtime, CRIU, the container), no zombie child of the test process, no container in the
//! runtime, nothing under the engine's state root, and nothing in a bundle but what the test
//! made (no node conmon made there, no CRIU log).

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::ensure;
use runtime_core::{CliBackend, ContainerId, OciBackend};
use testkit::bundle::Bundle;

/// How long a process naming an id may take to end once its case is over.
const PROCESSES_END_WITHIN: Duration = Duration::from_secs(5);

/// Nothing of a case is left (see the module docs). `ids` are the containers the case named,
/// `state` the engine's state root, `bundles` the bundles the case made. `reaped_within` is how
/// long an ended child may stay a zombie: zero where the driver reaps before it returns, a
/// moment where a killed child is reaped by tokio in the background.
pub async fn check_nothing_left<'a>(
    backend: &CliBackend,
    state: &Path,
    ids: &[ContainerId],
    bundles: impl IntoIterator<Item = &'a Bundle>,
    reaped_within: Duration,
) -> anyhow::Result<()> {
    for id in ids {
        let live =
            none_within(PROCESSES_END_WITHIN, || testkit::procs::live_with_argument(OsStr::new(id.as_str()))).await;
        ensure!(live.is_empty(), "processes naming {id} are still there: {live:?}");
    }
    let zombies = none_within(reaped_within, zombie_children).await;
    ensure!(zombies.is_empty(), "zombie children of the test process: {zombies:?}");
    let listed = backend.list().await?;
    ensure!(listed.is_empty(), "containers left in the runtime: {listed:?}");
    for dir in ["containers", "exits", "locks"] {
        let path = state.join(dir);
        let left: Vec<_> = std::fs::read_dir(&path)?.flatten().map(|entry| entry.file_name()).collect();
        ensure!(left.is_empty(), "left in {}: {left:?}", path.display());
    }
    // conmon makes its nodes (attach, ctl, winsz) in the bundle and names it as CRIU's work path.
    for bundle in bundles {
        let path = bundle.path();
        let mut left: Vec<_> = std::fs::read_dir(path)?.flatten().map(|entry| entry.file_name()).collect();
        left.sort();
        ensure!(left == ["config.json", "rootfs"], "left in the bundle {}: {left:?}", path.display());
    }
    Ok(())
}

/// What `find` finds once it finds nothing, or what it still finds once `bound` has passed.
async fn none_within(bound: Duration, find: impl Fn() -> Vec<i32>) -> Vec<i32> {
    let deadline = Instant::now() + bound;
    loop {
        let found = find();
        if found.is_empty() || Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Children of this process that have exited and were not reaped.
fn zombie_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            // After the command name in parentheses: state, ppid.
            let fields: Vec<&str> =
                stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
            fields.first() == Some(&"Z") && fields.get(1) == Some(&me.as_str())
        })
        .collect()
}
