//! A long-running embedding process keeps its footprint: a thousand containers made, exec'd
//! into, waited for and deleted through one engine leave its open descriptors, threads,
//! zombie children and resident memory where they were after the first hundred. Driven against
//! the fake runc, which is quick enough for a thousand cycles and whose inits are real processes
//! reaped by the engine's monitor like a real runtime's.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_runc::Runc;
use runtime_core::{
    CliBackend, ContainerId, ContainerStdio, CreateOptions, DeleteMode, DirectMonitor, Engine, ExecOptions, ExecStdio,
    Exit, KillScope, Signal, StateRoot, process,
};
use testkit::bundle::{BundleBuilder, Rootfs};
use testkit::fake::{FakeRuntime, Flavour};

const CYCLES: usize = 1000;
const WARM_UP: usize = 100;

/// What the process holds, counted from /proc.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    fds: usize,
    threads: usize,
    zombies: usize,
    rss_kib: u64,
}

impl Footprint {
    fn now() -> Footprint {
        let count = |dir: &str| std::fs::read_dir(dir).unwrap().count();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let rss_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        Footprint {
            fds: count("/proc/self/fd"),
            threads: count("/proc/self/task"),
            zombies: zombie_children(),
            rss_kib,
        }
    }
}

/// Children of this process that have ended and were not reaped.
fn zombie_children() -> usize {
    let mut zombies = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children.split_whitespace() {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')) {
                zombies += 1;
            }
        }
    }
    zombies
}

async fn cycle(engine: &Engine, bundle: &Path, n: usize) {
    let id = ContainerId::new(format!("cycle-{n}")).unwrap();
    if n.is_multiple_of(2) {
        engine.create(&id, bundle, CreateOptions::default()).await.unwrap();
        engine.start(&id).await.unwrap();
    } else {
        engine.run(&id, bundle, CreateOptions::default()).await.unwrap();
    }
    let background = ExecOptions { stdio: ExecStdio::Wired(ContainerStdio::Null), ..ExecOptions::default() };
    let session = engine.exec_detached(&id, &process(["sh", "-c", "exit 3"]), background).await.unwrap();
    assert_eq!(engine.wait_exec(&session).await.unwrap(), Exit::Exited(3));
    engine.kill(&id, Signal::KILL, KillScope::Init).await.unwrap();
    assert_eq!(engine.wait(&id).await.unwrap(), Exit::Signaled(Signal::KILL));
    engine.delete(&id, DeleteMode::IfStopped).await.unwrap();
}

fn main() -> ExitCode {
    testkit::harness::main(|suite| {
        suite.case(
            "a_thousand_container_cycles_leave_descriptors_threads_zombies_and_memory_flat",
            a_thousand_container_cycles_leave_descriptors_threads_zombies_and_memory_flat,
        );
    })
}

async fn a_thousand_container_cycles_leave_descriptors_threads_zombies_and_memory_flat() -> anyhow::Result<()> {
    let fake = FakeRuntime::new(Flavour::Runc)?;
    let backend = CliBackend::connect(Arc::new(Runc), fake.config()).await?;
    let state = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(backend), Arc::new(DirectMonitor::new()), StateRoot::open(state.path()).unwrap());
    let bundle = BundleBuilder::new(["sleep", "1000"]).rootfs(Rootfs::Empty).build().unwrap();

    let started = Instant::now();
    let mut warm = None;
    for n in 0..CYCLES {
        cycle(&engine, bundle.path(), n).await;
        if n + 1 == WARM_UP {
            warm = Some(Footprint::now());
        }
    }
    // Idle blocking-pool threads leave after tokio's keep-alive (10 s); give the last reaps a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (warm, end) = (warm.unwrap(), Footprint::now());
    println!("{CYCLES} cycles in {:?}; after {WARM_UP}: {warm:?}; after {CYCLES}: {end:?}", started.elapsed());

    assert_eq!(end.fds, warm.fds, "open descriptors");
    assert_eq!(end.zombies, 0, "zombie children");
    // tokio's blocking pool grows and shrinks with demand; a leak would add a thread a cycle.
    assert!(end.threads <= warm.threads + 8, "threads: {} after warm-up, {} at the end", warm.threads, end.threads);
    // A leak of even 10 KiB a cycle would add 9 MiB over the last 900.
    assert!(
        end.rss_kib <= warm.rss_kib + 4 * 1024,
        "RSS: {} KiB after warm-up, {} KiB at the end",
        warm.rss_kib,
        end.rss_kib
    );
    assert!(std::fs::read_dir(state.path().join("containers")).unwrap().next().is_none(), "no container state left");
    Ok(())
}
