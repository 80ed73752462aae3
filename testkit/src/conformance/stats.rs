//! Statistics and the event stream, held against what the test reads itself: the container's
//! cgroup files for real runtimes, `/proc` for the fakes (which have no cgroups). Where the probe
//! found no `events` command, both operations must be refused with the probed reason.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use runtime_core::{ContainerId, Error, Event, Stats};

use super::env::Env;
use crate::harness::{CaseResult, Ran};
use crate::procs::{Tracked, live_with_argument};

/// Three processes: the shell and two sleepers.
const THREE_PROCESSES: &[&str] = &["sh", "-c", "sleep 1000 & sleep 1000 & wait"];

/// How long the container's processes get to appear, and a dropped stream's runtime to go.
const PATIENCE: Duration = Duration::from_secs(10);

/// Between samples of the event stream. Longer than [`GONE_AFTER_DROP`]: a runtime left running
/// when its stream is dropped would die of the broken pipe at its next sample, too late to pass.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(3);

/// How soon the runtime behind a dropped event stream must be gone.
const GONE_AFTER_DROP: Duration = Duration::from_secs(1);

/// What the test reads about a container without asking the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Facts {
    pids: u64,
    memory: u64,
    /// CPU time in nanoseconds, where both the host and the runtimes count it that way.
    cpu: Option<u64>,
}

/// The file `v1_file` of `controller` (cgroup v1), else `v2_file` of the unified hierarchy,
/// for the cgroup process `pid` is in; `None` when neither exists.
fn cgroup_file(pid: u32, controller: &str, v1_file: &str, v2_file: &str) -> anyhow::Result<Option<String>> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).context("reading /proc/<pid>/cgroup")?;
    // The path may itself hold colons (youki's `/:youki:<id>`).
    let v1 = cgroups.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers.split(',').any(|c| c == controller).then(|| path.to_owned())
    });
    let file = match v1 {
        Some(path) => PathBuf::from(format!("/sys/fs/cgroup/{controller}{path}/{v1_file}")),
        None => {
            let path = cgroups.lines().find_map(|line| line.strip_prefix("0::")).context("no cgroup of pid")?;
            PathBuf::from(format!("/sys/fs/cgroup{path}/{v2_file}"))
        }
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("reading {}", file.display())),
    }
}

fn number(text: Option<String>, what: &str) -> anyhow::Result<u64> {
    let text = text.with_context(|| format!("the cgroup has no {what}"))?;
    text.parse().with_context(|| format!("{what} holds {text:?}"))
}

/// The container's cgroup: pids, memory and (cgroup v1, where both runc and youki report
/// `cpuacct.usage` in nanoseconds) CPU time.
fn cgroup_facts(init: u32) -> anyhow::Result<Facts> {
    Ok(Facts {
        pids: number(cgroup_file(init, "pids", "pids.current", "pids.current")?, "pids.current")?,
        memory: number(cgroup_file(init, "memory", "memory.usage_in_bytes", "memory.current")?, "memory usage")?,
        cpu: cgroup_file(init, "cpuacct", "cpuacct.usage", "cpuacct.usage")?.map(|text| text.parse()).transpose()?,
    })
}

/// The fake's container: the init's process group, their resident memory and CPU time.
fn proc_facts(init: u32) -> anyhow::Result<Facts> {
    let tick_ns = 1_000_000_000 / nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.context("no CLK_TCK")?;
    let mut facts = Facts { pids: 0, memory: 0, cpu: Some(0) };
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let fields: Vec<&str> = stat[stat.rfind(')').context("odd stat")? + 1..].split_whitespace().collect();
        // State is field 3 of the line, the process group 5, utime 14, stime 15.
        if fields[2] != init.to_string() || matches!(fields[0], "Z" | "X") {
            continue;
        }
        facts.pids += 1;
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        facts.cpu = facts.cpu.map(|cpu| cpu + ticks * tick_ns as u64);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rss = status.lines().find_map(|line| line.strip_prefix("VmRSS:")).context("no VmRSS")?;
        facts.memory += rss.trim().trim_end_matches("kB").trim().parse::<u64>()? * 1024;
    }
    Ok(facts)
}

fn facts(env: &Env, init: u32) -> anyhow::Result<Facts> {
    if env.is_real() { cgroup_facts(init) } else { proc_facts(init) }
}

/// Where the probe found no `events` command: stats and events are refused with its reason. A
/// backend that ran the command anyway would report the runtime's failure instead. `name` is the
/// case's own: cases run in parallel, and a real runtime names the cgroup after the id.
async fn refused_as_probed(env: &mut Env, reason: &str, name: &str) -> CaseResult {
    let features = env.backend.features().await?;
    let probe = features.events.evidence().first();
    if let Some(probe) = probe {
        ensure!(probe.status != Some(0), "the probe that refused events succeeded: {probe}");
        let said = probe.output.lines().next().unwrap_or_default().trim();
        ensure!(reason.contains(said), "the reason {reason:?} does not quote the runtime's {said:?}");
    }
    let (id, _bundle, _) = env.running(name, &["sleep", "1000"]).await?;
    let refused = |what: &str, result: runtime_core::Result<()>| match result {
        Err(Error::Unsupported { feature, reason: said, .. }) => {
            ensure!(feature == "events" && said == reason, "{what} refused as {feature}: {said}");
            Ok(())
        }
        other => bail!("{what} although events are unsupported ({reason}): {other:?}"),
    };
    refused("stats", env.backend.stats(&id).await.map(drop))?;
    refused("events", env.backend.events(&id, Duration::from_secs(1)).await.map(drop))?;
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

/// Waits until the test sees `pids` processes in the container.
async fn settled(env: &Env, init: u32, pids: u64) -> anyhow::Result<Facts> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = facts(env, init)?;
        if seen.pids == pids {
            return Ok(seen);
        }
        ensure!(Instant::now() < deadline, "the container has {} processes, not {pids}", seen.pids);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn check_against(stats: &Stats, before: Facts, after: Facts) -> anyhow::Result<()> {
    ensure!(
        stats.pids.current == after.pids,
        "stats say {} processes, the container has {}",
        stats.pids.current,
        after.pids
    );
    let (low, high) = (before.memory.min(after.memory), before.memory.max(after.memory));
    let slack = (high / 10).max(64 * 1024);
    let memory = stats.memory.usage.usage;
    ensure!(memory > 0, "no memory use reported");
    ensure!(
        memory + slack >= low && memory <= high + slack,
        "stats say {memory} bytes of memory, the test read {low}..{high}"
    );
    if let (Some(before), Some(after)) = (before.cpu, after.cpu) {
        // A counter only grows: the sample lies between the readings around it.
        ensure!(
            (before..=after).contains(&stats.cpu.total),
            "stats say {} ns of CPU, the test read {before} before and {after} after",
            stats.cpu.total
        );
    }
    Ok(())
}

pub(super) async fn stats_match_what_the_test_reads(env: &mut Env) -> CaseResult {
    let features = env.backend.features().await?;
    if let Some(reason) = features.events.reason() {
        return refused_as_probed(env, reason, "stats").await;
    }
    ensure!(features.events.evidence().iter().all(|probe| probe.status == Some(0)), "{:?}", features.events);
    let (id, _bundle, state) = env.running("stats", THREE_PROCESSES).await?;
    let init = state.pid.context("a running container has a pid")?;
    let before = settled(env, init, 3).await?;
    let stats = env.backend.stats(&id).await.context("stats")?;
    let after = facts(env, init)?;
    check_against(&stats, before, after)?;
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

/// Live `events` processes of this env's runtime (its global arguments name its state root) for
/// container `id`.
fn events_processes(env: &Env, id: &ContainerId) -> Vec<Tracked> {
    let global_args = env.backend.global_args();
    live_with_argument(OsStr::new(id.as_str()))
        .into_iter()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
            let has = |wanted: &[u8]| args.contains(&wanted);
            has(b"events") && global_args.iter().all(|arg| has(arg.as_encoded_bytes()))
        })
        .map(|pid| Tracked::capture(pid.unsigned_abs()))
        .collect()
}

pub(super) async fn events_stream_samples_and_dropping_it_ends_the_runtime(env: &mut Env) -> CaseResult {
    let features = env.backend.features().await?;
    if let Some(reason) = features.events.reason() {
        return refused_as_probed(env, reason, "events").await;
    }
    let (id, _bundle, _) = env.running("events", &["sleep", "1000"]).await?;
    let mut stream = env.backend.events(&id, SAMPLE_INTERVAL).await.context("events")?;
    let first = tokio::time::timeout(Duration::from_secs(30), stream.next()).await.context("no event within 30 s")?;
    match first {
        Some(Ok(Event::Stats(stats))) => ensure!(stats.pids.current == 1, "one sleeper, yet {:?}", stats.pids),
        other => bail!("the first event: {other:?}"),
    }
    let runtime = events_processes(env, &id);
    ensure!(runtime.len() == 1, "one runtime process streams the events, found {runtime:?}");
    drop(stream);
    let deadline = Instant::now() + GONE_AFTER_DROP;
    while runtime.iter().any(Tracked::alive) {
        ensure!(Instant::now() < deadline, "the runtime still runs after the stream was dropped: {runtime:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.remove(&id).await?;
    Ok(Ran::Passed)
}
