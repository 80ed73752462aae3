//! Resource usage of a container and the runtime's stream of events about it.
//!
//! runc and youki report the same cgroup counters under different names and layouts; callers get
//! one [`Stats`] whichever runtime answered. The numbers are the runtime's own, not recomputed:
//! a caller comparing them across runtimes should know that youki 0.7 passes some counters through
//! in the cgroup's raw unit where runc converts them (see [`CpuStats`]).
//!
//! An [`EventStream`] is open-ended: it lasts until its consumer drops it, and whatever produces
//! the events (for command-line runtimes, one long-running runtime process) ends with it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use crate::contract::error::Result;

/// One sample of a container's resource usage, as its runtime reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// CPU time.
    pub cpu: CpuStats,
    /// Memory.
    pub memory: MemoryStats,
    /// Processes.
    pub pids: PidStats,
    /// Block I/O.
    pub blkio: BlkioStats,
}

/// CPU time used by the container's cgroup.
///
/// runc reports every figure in nanoseconds. youki 0.7 passes the cgroup's files through: on
/// cgroup v1 `total` and `per_cpu` are nanoseconds (`cpuacct.usage`) but `user` and `kernel` are
/// clock ticks (`cpuacct.stat`); on cgroup v2 all are microseconds (`cpu.stat`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    /// Total CPU time.
    pub total: u64,
    /// Time in user mode.
    pub user: u64,
    /// Time in kernel mode.
    pub kernel: u64,
    /// Total CPU time per CPU, in CPU order (empty where the runtime does not break it down).
    pub per_cpu: Vec<u64>,
    /// CFS bandwidth throttling.
    pub throttling: Throttling,
}

/// How often the CPU quota stopped the container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Throttling {
    /// Enforcement periods that elapsed.
    pub periods: u64,
    /// Periods in which the container was throttled.
    pub throttled_periods: u64,
    /// Total time it was throttled (nanoseconds on cgroup v1).
    pub throttled_time: u64,
}

/// Memory charged to the container's cgroup, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    /// Memory (`memory.usage_in_bytes` on cgroup v1).
    pub usage: MemoryUsage,
    /// Memory and swap together (cgroup v1 `memsw`: runc calls it `swap`, youki `memswap`).
    pub swap: MemoryUsage,
    /// Kernel memory.
    pub kernel: MemoryUsage,
    /// Page cache.
    pub cache: u64,
    /// Every counter of `memory.stat`, by name.
    pub raw: BTreeMap<String, u64>,
}

/// One memory counter with its high-water mark and limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemoryUsage {
    /// Current usage.
    pub usage: u64,
    /// Highest usage seen.
    pub max_usage: u64,
    /// The limit (a huge number when unlimited).
    pub limit: u64,
    /// How many times usage hit the limit.
    pub fail_count: u64,
}

/// Processes in the container's cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PidStats {
    /// Processes (and threads) now.
    pub current: u64,
    /// The limit; `None` when there is none.
    pub limit: Option<u64>,
}

/// Block I/O per device, as cgroup v1's `blkio` controller counts it (recursive counters).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlkioStats {
    /// Bytes transferred.
    pub service_bytes: Vec<BlkioEntry>,
    /// I/O operations.
    pub serviced: Vec<BlkioEntry>,
    /// Requests queued.
    pub queued: Vec<BlkioEntry>,
    /// Time between dispatch and completion.
    pub service_time: Vec<BlkioEntry>,
    /// Time spent waiting in scheduler queues.
    pub wait_time: Vec<BlkioEntry>,
    /// Requests merged.
    pub merged: Vec<BlkioEntry>,
    /// Time the device was used by the container.
    pub time: Vec<BlkioEntry>,
    /// Sectors transferred.
    pub sectors: Vec<BlkioEntry>,
}

/// One counter of one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    /// Device major number.
    pub major: u64,
    /// Device minor number.
    pub minor: u64,
    /// The operation counted (`Read`, `Write`, `Sync`, `Async`, `Discard`, `Total`), if any.
    pub op: Option<String>,
    /// The count.
    pub value: u64,
}

/// Something the runtime reported about a running container.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A statistics sample.
    Stats(Box<Stats>),
    /// The container hit its memory limit and the kernel killed a process.
    Oom,
    /// An event of a type this version does not know, named as the runtime names it.
    Other {
        /// The runtime's name for it.
        kind: String,
    },
}

/// What produces the events of an [`EventStream`]; backends implement it.
#[async_trait]
pub trait EventSource: Send {
    /// The next event; `None` once the source has ended. An error ends the source too.
    async fn next(&mut self) -> Option<Result<Event>>;
}

/// Events about one container, until the container stops or the stream is dropped. Dropping it
/// ends whatever produces them.
pub struct EventStream {
    source: Box<dyn EventSource>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    /// A stream of what `source` produces.
    pub fn new(source: impl EventSource + 'static) -> Self {
        EventStream { source: Box::new(source) }
    }

    /// The next event; `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        self.source.next().await
    }
}
