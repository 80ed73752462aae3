//! Statistics and events from the runtime's `events` command.
//!
//! runc prints each event as one JSON line, `{"type":"stats","id":..,"data":{..}}`; youki 0.7
//! prints bare statistics documents, pretty-printed over many lines and with other field names;
//! crun has no `events` command. The dialect says which shape a runtime prints and how it spells
//! `--interval` ([`EventsCommand`]), the feature probe says whether the command answers, and both
//! shapes become one [`Stats`].
//!
//! Output is read as a sequence of JSON values rather than lines, since youki's span many; each
//! value is bounded by [`RECORD_LIMIT`]. The stream is one ordinary runtime call through the
//! driver (own process group, log file, typed errors) without a deadline of its own: it lasts
//! until the consumer drops it, and dropping it drops the call, which kills the runtime's process
//! group.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use crate::cli::driver::{Call, CliRuntime, Finished, NO_DEADLINE};
use crate::cli::spawn::Sink;
use crate::contract::error::{Error, Result};
use crate::contract::exit::Exit;
use crate::contract::id::ContainerId;
use crate::contract::state::excerpt;
use crate::contract::stats::{
    BlkioEntry, BlkioStats, CpuStats, Event, EventSource, EventStream, MemoryStats, MemoryUsage, PidStats, Stats,
    Throttling,
};

/// The longest single event or statistics document read from a runtime.
pub const RECORD_LIMIT: usize = 1 << 20;

/// How long the rest of the output is still read after the runtime exited.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// How a runtime spells its `events` command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsCommand {
    /// The subcommand (`events`).
    pub command: String,
    /// How `--interval` takes its value.
    pub interval: IntervalFormat,
    /// What the statistics it prints look like.
    pub stats: StatsShape,
}

/// How `events --interval` takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalFormat {
    /// A Go duration: `5s`, `500ms` (runc).
    GoDuration,
    /// Whole seconds: `5` (youki).
    Seconds,
}

impl IntervalFormat {
    /// `interval` as the runtime takes it; `None` when it cannot say it (zero, or a fraction of
    /// a second for runtimes that count whole seconds).
    pub fn format(self, interval: Duration) -> Option<String> {
        if interval.is_zero() {
            return None;
        }
        let (seconds, nanos) = (interval.as_secs(), interval.subsec_nanos());
        match self {
            IntervalFormat::GoDuration if nanos == 0 => Some(format!("{seconds}s")),
            IntervalFormat::GoDuration if nanos % 1_000_000 == 0 => Some(format!("{}ms", interval.as_millis())),
            IntervalFormat::GoDuration => Some(format!("{}ns", interval.as_nanos())),
            IntervalFormat::Seconds => (nanos == 0).then(|| seconds.to_string()),
        }
    }
}

/// The shape of the statistics a runtime prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatsShape {
    /// runc's events: `{"type":"stats","id":..,"data":{"cpu":{"usage":{"total":..}}..}}`.
    Runc,
    /// youki's bare documents: `{"cpu":{"usage":{"usage_total":..}}..}`.
    Youki,
}

/// Reads `events --stats` output.
pub(crate) fn stats_from_output(shape: StatsShape, output: &[u8]) -> Result<Stats> {
    let mut records = Records::default();
    records.push(output);
    match records.next_event(shape)? {
        Some(Event::Stats(stats)) => Ok(*stats),
        Some(other) => Err(Error::parse("runtime statistics", format!("expected statistics, got {other:?}"))),
        None => Err(Error::parse("runtime statistics", format!("no statistics in {:?}", excerpt(output)))),
    }
}

/// Starts `events` with `args` and returns the stream of what it prints.
pub(crate) async fn stream(
    cli: &CliRuntime,
    id: &ContainerId,
    shape: StatsShape,
    args: Vec<OsString>,
) -> Result<EventStream> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|errno| Error::io("creating the events pipe", errno.into()))?;
    let output = pipe::Receiver::from_owned_fd(read).map_err(|err| Error::io("reading the events pipe", err))?;
    let call = Call { stdout: Sink::Fd(write), timeout: Some(NO_DEADLINE), ..Call::new(args).for_container(id) };
    let runtime = cli.clone();
    let mut running: Pin<Box<dyn Future<Output = Result<Finished>> + Send>> =
        Box::pin(async move { runtime.run(call).await });
    // One poll spawns the runtime, so it runs from now on rather than from the first `next`.
    let started = std::future::poll_fn(|cx| Poll::Ready(running.as_mut().poll(cx))).await;
    let exit = match started {
        Poll::Ready(Err(err)) => return Err(err),
        Poll::Ready(Ok(finished)) => Some(finished),
        Poll::Pending => None,
    };
    let running = if exit.is_some() { None } else { Some(running) };
    Ok(EventStream::new(RuntimeEvents {
        cli: cli.clone(),
        id: id.clone(),
        shape,
        output,
        running,
        exit,
        records: Records::default(),
        ended: false,
    }))
}

/// The events of one running `events` call.
struct RuntimeEvents {
    cli: CliRuntime,
    id: ContainerId,
    shape: StatsShape,
    output: pipe::Receiver,
    /// The call, until the runtime exits; dropping it kills the runtime's process group.
    running: Option<Pin<Box<dyn Future<Output = Result<Finished>> + Send>>>,
    /// How the runtime ended, once it has.
    exit: Option<Finished>,
    records: Records,
    ended: bool,
}

/// What waiting for more output gave.
enum Progress {
    Read(usize),
    Exited(Result<Finished>),
    EndOfOutput,
}

impl RuntimeEvents {
    async fn progress(&mut self, chunk: &mut [u8]) -> Result<Progress> {
        let read = match &mut self.running {
            Some(running) => tokio::select! {
                read = self.output.read(chunk) => read,
                finished = running => return Ok(Progress::Exited(finished)),
            },
            None => match tokio::time::timeout(DRAIN_AFTER_EXIT, self.output.read(chunk)).await {
                Ok(read) => read,
                // Something the runtime started holds the pipe open: its output is over anyway.
                Err(_) => return Ok(Progress::EndOfOutput),
            },
        };
        match read.map_err(|err| Error::io("reading the runtime's events", err))? {
            0 => Ok(Progress::EndOfOutput),
            count => Ok(Progress::Read(count)),
        }
    }

    /// What the runtime's exit means once its output is read: nothing after a clean exit, else
    /// its typed error.
    fn outcome(&mut self) -> Option<Result<Event>> {
        self.ended = true;
        let finished = self.exit.take()?;
        if !self.records.is_empty() {
            return Some(Err(Error::parse(
                "runtime events",
                format!("output ended inside a record: {}", excerpt(&self.records.buffer)),
            )));
        }
        match finished.status {
            Exit::Exited(0) => None,
            _ => Some(Err(self.cli.error_for(&finished, Some(&self.id)))),
        }
    }
}

#[async_trait]
impl EventSource for RuntimeEvents {
    async fn next(&mut self) -> Option<Result<Event>> {
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            if self.ended {
                return None;
            }
            match self.records.next_event(self.shape) {
                Ok(Some(event)) => return Some(Ok(event)),
                Ok(None) => {}
                Err(err) => {
                    self.ended = true;
                    self.running = None;
                    return Some(Err(err));
                }
            }
            match self.progress(&mut chunk).await {
                Ok(Progress::Read(count)) => self.records.push(&chunk[..count]),
                Ok(Progress::Exited(Ok(finished))) => {
                    self.running = None;
                    self.exit = Some(finished);
                }
                Ok(Progress::Exited(Err(err))) | Err(err) => {
                    self.ended = true;
                    self.running = None;
                    return Some(Err(err));
                }
                Ok(Progress::EndOfOutput) if self.running.is_none() => return self.outcome(),
                // Only the runtime's exit ends the stream; wait for it.
                Ok(Progress::EndOfOutput) => {
                    if let Some(running) = self.running.take() {
                        self.exit = Some(match running.await {
                            Ok(finished) => finished,
                            Err(err) => {
                                self.ended = true;
                                return Some(Err(err));
                            }
                        });
                    }
                }
            }
        }
    }
}

/// Splits a runtime's output into top-level JSON objects, each at most [`RECORD_LIMIT`] bytes.
///
/// A value is parsed only once its closing brace has arrived: serde reports a number cut at a
/// read boundary (`0.` of `0.0`) as malformed rather than incomplete, so the end is found by
/// scanning brackets outside strings.
#[derive(Debug, Default)]
struct Records {
    buffer: Vec<u8>,
    /// How far the scan for the current value's end has got.
    scanned: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl Records {
    fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// True when nothing but white space is left.
    fn is_empty(&self) -> bool {
        self.buffer.iter().all(u8::is_ascii_whitespace)
    }

    /// The end of the value at the start of the buffer, once it has arrived.
    fn value_end(&mut self) -> Result<Option<usize>> {
        while self.scanned < self.buffer.len() {
            let byte = self.buffer[self.scanned];
            self.scanned += 1;
            if self.in_string {
                match (self.escaped, byte) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' if self.depth > 0 => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Ok(Some(self.scanned));
                    }
                }
                _ if self.depth == 0 && !byte.is_ascii_whitespace() => {
                    return Err(Error::parse(
                        "runtime events",
                        format!("expected a JSON object: {}", excerpt(&self.buffer[self.scanned - 1..])),
                    ));
                }
                _ => {}
            }
        }
        if self.buffer.len() > RECORD_LIMIT {
            return Err(Error::parse(
                "runtime events",
                format!("a record longer than {RECORD_LIMIT} bytes: {}", excerpt(&self.buffer)),
            ));
        }
        Ok(None)
    }

    /// The next complete value; `None` until one has arrived.
    fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        let Some(end) = self.value_end()? else {
            return Ok(None);
        };
        let parsed = serde_json::from_slice(&self.buffer[..end])
            .map_err(|err| Error::parse_failed("runtime events", err, &self.buffer[..end]));
        self.buffer.drain(..end);
        self.scanned = 0;
        parsed.map(Some)
    }

    fn next_event(&mut self, shape: StatsShape) -> Result<Option<Event>> {
        Ok(match shape {
            StatsShape::Runc => self.next::<RuncEvent>()?.map(RuncEvent::into_event),
            StatsShape::Youki => self.next::<YoukiStats>()?.map(|stats| Event::Stats(Box::new(stats.into()))),
        })
    }
}

/// runc's event (`types.Event`); fields runc leaves out when zero default to zero.
#[derive(Debug, Deserialize)]
struct RuncEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Option<RuncStats>,
}

impl RuncEvent {
    fn into_event(self) -> Event {
        match self.kind.as_str() {
            "stats" => Event::Stats(Box::new(self.data.unwrap_or_default().into())),
            "oom" => Event::Oom,
            _ => Event::Other { kind: self.kind },
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuncStats {
    cpu: RuncCpu,
    memory: RuncMemory,
    pids: RuncPids,
    blkio: RuncBlkio,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuncCpu {
    usage: RuncCpuUsage,
    throttling: RuncThrottling,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuncCpuUsage {
    total: u64,
    percpu: Vec<u64>,
    kernel: u64,
    user: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RuncThrottling {
    periods: u64,
    throttled_periods: u64,
    throttled_time: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuncMemory {
    cache: u64,
    usage: RuncMemoryEntry,
    swap: RuncMemoryEntry,
    kernel: RuncMemoryEntry,
    raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuncMemoryEntry {
    limit: u64,
    usage: u64,
    max: u64,
    failcnt: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuncPids {
    current: u64,
    limit: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuncBlkio {
    #[serde(rename = "ioServiceBytesRecursive")]
    service_bytes: Vec<RuncBlkioEntry>,
    #[serde(rename = "ioServicedRecursive")]
    serviced: Vec<RuncBlkioEntry>,
    // runc's name, without the "d".
    #[serde(rename = "ioQueueRecursive")]
    queued: Vec<RuncBlkioEntry>,
    #[serde(rename = "ioServiceTimeRecursive")]
    service_time: Vec<RuncBlkioEntry>,
    #[serde(rename = "ioWaitTimeRecursive")]
    wait_time: Vec<RuncBlkioEntry>,
    #[serde(rename = "ioMergedRecursive")]
    merged: Vec<RuncBlkioEntry>,
    #[serde(rename = "ioTimeRecursive")]
    time: Vec<RuncBlkioEntry>,
    #[serde(rename = "sectorsRecursive")]
    sectors: Vec<RuncBlkioEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuncBlkioEntry {
    major: u64,
    minor: u64,
    op: String,
    value: u64,
}

impl From<RuncMemoryEntry> for MemoryUsage {
    fn from(entry: RuncMemoryEntry) -> Self {
        MemoryUsage { usage: entry.usage, max_usage: entry.max, limit: entry.limit, fail_count: entry.failcnt }
    }
}

fn runc_entries(entries: Vec<RuncBlkioEntry>) -> Vec<BlkioEntry> {
    entries
        .into_iter()
        .map(|entry| BlkioEntry {
            major: entry.major,
            minor: entry.minor,
            op: (!entry.op.is_empty()).then_some(entry.op),
            value: entry.value,
        })
        .collect()
}

/// runc and youki both say 0 for "no limit".
fn pid_limit(limit: u64) -> Option<u64> {
    (limit != 0).then_some(limit)
}

impl From<RuncStats> for Stats {
    fn from(stats: RuncStats) -> Self {
        let RuncStats { cpu, memory, pids, blkio } = stats;
        Stats {
            cpu: CpuStats {
                total: cpu.usage.total,
                user: cpu.usage.user,
                kernel: cpu.usage.kernel,
                per_cpu: cpu.usage.percpu,
                throttling: Throttling {
                    periods: cpu.throttling.periods,
                    throttled_periods: cpu.throttling.throttled_periods,
                    throttled_time: cpu.throttling.throttled_time,
                },
            },
            memory: MemoryStats {
                usage: memory.usage.into(),
                swap: memory.swap.into(),
                kernel: memory.kernel.into(),
                cache: memory.cache,
                raw: memory.raw,
            },
            pids: PidStats { current: pids.current, limit: pid_limit(pids.limit) },
            blkio: BlkioStats {
                service_bytes: runc_entries(blkio.service_bytes),
                serviced: runc_entries(blkio.serviced),
                queued: runc_entries(blkio.queued),
                service_time: runc_entries(blkio.service_time),
                wait_time: runc_entries(blkio.wait_time),
                merged: runc_entries(blkio.merged),
                time: runc_entries(blkio.time),
                sectors: runc_entries(blkio.sectors),
            },
        }
    }
}

/// youki's statistics document (`libcgroups::stats::Stats`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct YoukiStats {
    cpu: YoukiCpu,
    memory: YoukiMemory,
    pids: YoukiPids,
    blkio: YoukiBlkio,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct YoukiCpu {
    usage: YoukiCpuUsage,
    throttling: YoukiThrottling,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct YoukiCpuUsage {
    usage_total: u64,
    usage_user: u64,
    usage_kernel: u64,
    per_core_usage_total: Vec<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct YoukiThrottling {
    periods: u64,
    throttled_periods: u64,
    throttled_time: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct YoukiMemory {
    memory: YoukiMemoryData,
    memswap: YoukiMemoryData,
    kernel: YoukiMemoryData,
    cache: u64,
    stats: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct YoukiMemoryData {
    usage: u64,
    max_usage: u64,
    fail_count: u64,
    limit: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct YoukiPids {
    current: u64,
    limit: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct YoukiBlkio {
    service_bytes: Vec<YoukiBlkioEntry>,
    serviced: Vec<YoukiBlkioEntry>,
    queued: Vec<YoukiBlkioEntry>,
    service_time: Vec<YoukiBlkioEntry>,
    wait_time: Vec<YoukiBlkioEntry>,
    merged: Vec<YoukiBlkioEntry>,
    time: Vec<YoukiBlkioEntry>,
    sectors: Vec<YoukiBlkioEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct YoukiBlkioEntry {
    major: u64,
    minor: u64,
    op_type: Option<String>,
    value: u64,
}

impl From<YoukiMemoryData> for MemoryUsage {
    fn from(data: YoukiMemoryData) -> Self {
        MemoryUsage { usage: data.usage, max_usage: data.max_usage, limit: data.limit, fail_count: data.fail_count }
    }
}

fn youki_entries(entries: Vec<YoukiBlkioEntry>) -> Vec<BlkioEntry> {
    entries
        .into_iter()
        .map(|entry| BlkioEntry { major: entry.major, minor: entry.minor, op: entry.op_type, value: entry.value })
        .collect()
}

impl From<YoukiStats> for Stats {
    fn from(stats: YoukiStats) -> Self {
        let YoukiStats { cpu, memory, pids, blkio } = stats;
        Stats {
            cpu: CpuStats {
                total: cpu.usage.usage_total,
                user: cpu.usage.usage_user,
                kernel: cpu.usage.usage_kernel,
                per_cpu: cpu.usage.per_core_usage_total,
                throttling: Throttling {
                    periods: cpu.throttling.periods,
                    throttled_periods: cpu.throttling.throttled_periods,
                    throttled_time: cpu.throttling.throttled_time,
                },
            },
            memory: MemoryStats {
                usage: memory.memory.into(),
                swap: memory.memswap.into(),
                kernel: memory.kernel.into(),
                cache: memory.cache,
                raw: memory.stats,
            },
            pids: PidStats { current: pids.current, limit: pid_limit(pids.limit) },
            blkio: BlkioStats {
                service_bytes: youki_entries(blkio.service_bytes),
                serviced: youki_entries(blkio.serviced),
                queued: youki_entries(blkio.queued),
                service_time: youki_entries(blkio.service_time),
                wait_time: youki_entries(blkio.wait_time),
                merged: youki_entries(blkio.merged),
                time: youki_entries(blkio.time),
                sectors: youki_entries(blkio.sectors),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    //! Expected values are read off the fixtures and the cgroup files captured with them
    //! (`tests/fixtures/*-events-stats.cgroup.txt`), not from the parser.

    use super::*;

    const RUNC_STATS: &str = include_str!("../../tests/fixtures/runc-events-stats.json");
    const YOUKI_STATS: &str = include_str!("../../tests/fixtures/youki-events-stats.json");
    const RUNC_INTERVAL: &str = include_str!("../../tests/fixtures/runc-events-interval.jsonl");
    const YOUKI_INTERVAL: &str = include_str!("../../tests/fixtures/youki-events-interval.json");

    fn entry(op: &str, value: u64) -> BlkioEntry {
        BlkioEntry { major: 254, minor: 0, op: Some(op.to_owned()), value }
    }

    #[test]
    fn runc_stats_event_reads_what_the_cgroup_said() {
        let stats = stats_from_output(StatsShape::Runc, RUNC_STATS.as_bytes()).unwrap();
        // cpuacct.usage and cpuacct.usage_percpu.
        assert_eq!(stats.cpu.total, 20_680_672);
        assert_eq!(stats.cpu.per_cpu, [4_044_596, 16_636_076]);
        assert_eq!((stats.cpu.kernel, stats.cpu.user), (10_000_000, 0));
        assert_eq!(stats.cpu.throttling, Throttling::default(), "runc leaves zero throttling out");
        // memory.usage_in_bytes, memory.max_usage_in_bytes, memory.limit_in_bytes.
        let limit = 9_223_372_036_854_771_712;
        assert_eq!(stats.memory.usage, MemoryUsage { usage: 1_830_912, max_usage: 3_219_456, limit, fail_count: 0 });
        assert_eq!(stats.memory.kernel.usage, 315_392);
        assert_eq!(stats.memory.cache, 1_417_216);
        assert_eq!(stats.memory.raw["total_rss"], 98_304);
        // pids.current; pids.max is "max", which runc leaves out.
        assert_eq!(stats.pids, PidStats { current: 2, limit: None });
        // blkio.throttle.io_service_bytes_recursive: dd wrote 16 blocks of 64 KiB.
        assert_eq!(
            stats.blkio.service_bytes,
            [
                entry("Read", 1_998_848),
                entry("Write", 16 * 65_536),
                entry("Sync", 3_047_424),
                entry("Async", 0),
                entry("Discard", 0),
                entry("Total", 3_047_424),
            ]
        );
        assert_eq!(stats.blkio.serviced[1], entry("Write", 16));
        assert!(stats.blkio.time.is_empty() && stats.blkio.queued.is_empty());
    }

    #[test]
    fn youki_stats_document_reads_what_the_cgroup_said() {
        let stats = stats_from_output(StatsShape::Youki, YOUKI_STATS.as_bytes()).unwrap();
        assert_eq!(stats.cpu.total, 14_060_689);
        assert_eq!(stats.cpu.per_cpu, [14_003_222, 57_467]);
        // youki passes cpuacct.stat's clock ticks through.
        assert_eq!((stats.cpu.kernel, stats.cpu.user), (1, 0));
        let limit = 9_223_372_036_854_771_712;
        assert_eq!(stats.memory.usage, MemoryUsage { usage: 1_040_384, max_usage: 1_740_800, limit, fail_count: 0 });
        assert_eq!(stats.memory.swap.usage, 1_040_384);
        assert_eq!(stats.memory.cache, 589_824);
        assert_eq!(stats.memory.raw["total_rss"], 110_592);
        assert_eq!(stats.pids, PidStats { current: 2, limit: None }, "youki says 0 for no limit");
        assert_eq!(stats.blkio.service_bytes[0], entry("Read", 581_632));
        assert_eq!(stats.blkio.service_bytes[1], entry("Write", 16 * 65_536));
        assert_eq!(stats.blkio.serviced[1], entry("Write", 16));
        assert_eq!(stats.blkio.service_bytes.len(), 6);
    }

    /// Feeds `text` in small pieces, as a pipe would deliver it.
    fn events_in_pieces(shape: StatsShape, text: &str, piece: usize) -> Vec<Event> {
        let mut records = Records::default();
        let mut events = Vec::new();
        for bytes in text.as_bytes().chunks(piece) {
            records.push(bytes);
            while let Some(event) = records.next_event(shape).unwrap() {
                events.push(event);
            }
        }
        assert!(records.is_empty(), "nothing is left over");
        events
    }

    #[test]
    fn interval_output_of_both_runtimes_splits_into_one_event_per_sample() {
        for (shape, text) in [(StatsShape::Runc, RUNC_INTERVAL), (StatsShape::Youki, YOUKI_INTERVAL)] {
            for piece in [7, 100, 4096] {
                let events = events_in_pieces(shape, text, piece);
                assert_eq!(events.len(), 2, "{shape:?} in pieces of {piece}");
                for event in events {
                    let Event::Stats(stats) = event else { panic!("{shape:?}: {event:?}") };
                    assert_eq!(stats.pids.current, 2);
                }
            }
        }
    }

    #[test]
    fn runc_oom_and_unknown_events_are_told_apart() {
        let text = "{\"type\":\"oom\",\"id\":\"c1\"}\n{\"type\":\"intel_rdt\",\"id\":\"c1\"}\n";
        let events = events_in_pieces(StatsShape::Runc, text, 5);
        assert_eq!(events, [Event::Oom, Event::Other { kind: "intel_rdt".into() }]);
        // Brackets and escaped quotes inside strings do not end a record.
        let odd = r#"{"type":"odd \"}]\" kind","id":"c1"}"#;
        let events = events_in_pieces(StatsShape::Runc, odd, 3);
        assert_eq!(events, [Event::Other { kind: r#"odd "}]" kind"#.into() }]);
    }

    #[test]
    fn malformed_or_endless_records_are_errors() {
        let mut records = Records::default();
        records.push(b"{\"type\": oops}\n");
        assert!(matches!(records.next_event(StatsShape::Runc), Err(Error::Parse { .. })));
        let mut records = Records::default();
        records.push(b"container does not exist\n");
        assert!(matches!(records.next_event(StatsShape::Runc), Err(Error::Parse { .. })));

        let mut records = Records::default();
        records.push(b"{\"type\":\"stats\",\"id\":\"");
        records.push(&vec![b'x'; RECORD_LIMIT]);
        match records.next_event(StatsShape::Runc) {
            Err(Error::Parse { message, .. }) => assert!(message.contains("longer than"), "{message}"),
            other => panic!("an endless record gave {other:?}"),
        }
    }

    #[test]
    fn empty_output_is_not_statistics() {
        assert!(matches!(stats_from_output(StatsShape::Youki, b"\n"), Err(Error::Parse { .. })));
        let oom = stats_from_output(StatsShape::Runc, b"{\"type\":\"oom\",\"id\":\"c1\"}");
        assert!(matches!(oom, Err(Error::Parse { .. })));
    }

    #[test]
    fn dialects_written_before_events_existed_still_parse() {
        let json = r#"{
            "checkpoint_command": null, "restore_command": null, "features_command": null,
            "global_flags": {"json_log": true, "criu": false, "systemd_cgroup": false, "cgroup_manager": false, "rootless": false},
            "list_format": "json", "update_resources": "stdin",
            "errors": {"not_found": [], "already_exists": [], "invalid_state": []},
            "min_criu_version": null
        }"#;
        let dialect: crate::cli::dialect::Dialect = serde_json::from_str(json).unwrap();
        assert_eq!(dialect.events, None);
        let with_events = json.replace(
            r#""min_criu_version": null"#,
            r#""min_criu_version": null, "events": {"command": "events", "interval": "seconds", "stats": "youki"}"#,
        );
        let dialect: crate::cli::dialect::Dialect = serde_json::from_str(&with_events).unwrap();
        let expected =
            EventsCommand { command: "events".into(), interval: IntervalFormat::Seconds, stats: StatsShape::Youki };
        assert_eq!(dialect.events, Some(expected));
    }

    #[test]
    fn intervals_are_spelled_as_each_runtime_takes_them() {
        let go = IntervalFormat::GoDuration;
        assert_eq!(go.format(Duration::from_secs(5)).as_deref(), Some("5s"));
        assert_eq!(go.format(Duration::from_millis(1500)).as_deref(), Some("1500ms"));
        assert_eq!(go.format(Duration::from_nanos(1_000_500)).as_deref(), Some("1000500ns"));
        assert_eq!(go.format(Duration::ZERO), None);
        let seconds = IntervalFormat::Seconds;
        assert_eq!(seconds.format(Duration::from_secs(2)).as_deref(), Some("2"));
        assert_eq!(seconds.format(Duration::from_millis(1500)), None);
        assert_eq!(seconds.format(Duration::ZERO), None);
    }
}
