//! Throughput: a batch of lifecycle containers (`/bin/true`, created and started, waited for,
//! deleted) through one `Engine`, against the same batch through the raw CLI, at the same
//! parallelism.
//!
//! Both ways split the batch into the same lanes (container `n` goes to lane `n % lanes`), and
//! each lane runs its containers one after the other: the raw CLI with a thread per lane, as a
//! script running `lanes` jobs would; the engine with a task per lane on its tokio runtime, all
//! sharing the one engine (its state root, its monitor), as a program starting many containers
//! would. The figure is the time of the whole batch, from the first call to the last lane's end;
//! what a single lifecycle hides (the engine's locks and records under contention, the runtime's
//! own locking of its root, the host's two cores) shows here.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use runtime_core::ContainerId;

use super::ways::{Drivers, LIFECYCLE_EXIT, LIFECYCLE_EXIT_WHY, Leftover, Sample, engine_sequence, millis, timed};

/// The positions in a batch of `count` containers that each of `lanes` lanes runs, in order:
/// position `n` in lane `n % lanes`; no more lanes than containers.
pub(super) fn lanes(count: usize, lanes: usize) -> Vec<Vec<usize>> {
    let lanes = lanes.clamp(1, count.max(1));
    (0..lanes).map(|lane| (lane..count).step_by(lanes).collect()).collect()
}

/// The ids of a batch: `id` with each container's position.
fn batch_ids(id: &str, count: usize) -> Vec<String> {
    (0..count).map(|n| format!("{id}-{n}")).collect()
}

impl Drivers<'_> {
    /// `count` raw CLI lifecycles in `parallel` lanes, a thread each.
    pub(super) fn raw_throughput(
        &self,
        id: &str,
        bundle: &Path,
        count: usize,
        parallel: usize,
    ) -> anyhow::Result<Sample> {
        let ids = batch_ids(id, count);
        timed(|| {
            std::thread::scope(|scope| {
                let lanes: Vec<_> = lanes(count, parallel)
                    .into_iter()
                    .map(|lane| {
                        let ids = &ids;
                        scope.spawn(move || {
                            lane.into_iter().try_for_each(|n| self.raw.lifecycle(&ids[n], bundle, false))
                        })
                    })
                    .collect();
                lanes.into_iter().try_for_each(|lane| lane.join().map_err(|_| anyhow::anyhow!("a lane panicked"))?)
            })
        })
    }

    /// `count` engine lifecycles (`run`, `wait`, `delete`) in `parallel` lanes, a task each, all
    /// through the one engine; a container that ended otherwise than `/bin/true` does is listed.
    pub(super) fn engine_throughput(
        &self,
        id: &str,
        bundle: &Path,
        count: usize,
        parallel: usize,
    ) -> anyhow::Result<Sample> {
        let ids = batch_ids(id, count);
        let leftovers: Vec<Leftover> = ids.iter().map(|id| Leftover::new(self.raw, id)).collect();
        let container_ids = ids.iter().map(ContainerId::new).collect::<runtime_core::Result<Vec<_>>>()?;
        let started = Instant::now();
        let exits = self.tokio.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for lane in lanes(count, parallel) {
                let engine = Arc::clone(&self.engine);
                let bundle = bundle.to_path_buf();
                let lane: Vec<ContainerId> = lane.into_iter().map(|n| container_ids[n].clone()).collect();
                tasks.spawn(async move {
                    let mut exits = Vec::with_capacity(lane.len());
                    for id in lane {
                        let exit =
                            engine_sequence(&engine, &id, &bundle, true).await.with_context(|| id.to_string())?;
                        exits.push((id, exit));
                    }
                    anyhow::Ok(exits)
                });
            }
            let mut exits = Vec::with_capacity(count);
            while let Some(lane) = tasks.join_next().await {
                exits.extend(lane.context("a lane panicked")??);
            }
            anyhow::Ok(exits)
        })?;
        let ms = millis(started.elapsed());
        leftovers.into_iter().for_each(Leftover::disarm);
        let unexpected: Vec<String> = exits
            .iter()
            .filter(|(_, exit)| *exit != LIFECYCLE_EXIT)
            .map(|(id, exit)| format!("{id}: {exit}, where {LIFECYCLE_EXIT_WHY}"))
            .collect();
        Ok(Sample {
            ms,
            unexpected: unexpected
                .first()
                .map(|first| format!("{} of {count} containers, e.g. {first}", unexpected.len())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_take_the_batch_in_turn_and_never_outnumber_it() {
        assert_eq!(lanes(7, 3), [vec![0, 3, 6], vec![1, 4], vec![2, 5]]);
        assert_eq!(lanes(3, 10), [vec![0], vec![1], vec![2]], "three containers need three lanes at most");
        assert_eq!(lanes(4, 1), [vec![0, 1, 2, 3]]);
        assert_eq!(lanes(100, 100).iter().map(Vec::len).sum::<usize>(), 100);
    }

    #[test]
    fn a_batch_names_each_container_after_the_iteration_and_its_position() {
        assert_eq!(
            batch_ids("bench-1-runc-throughput-10-engine-direct-2", 2),
            ["bench-1-runc-throughput-10-engine-direct-2-0", "bench-1-runc-throughput-10-engine-direct-2-1"]
        );
    }
}
