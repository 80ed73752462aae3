//! Checkpoint, export, import and restore: a running container is dumped into one archive,
//! removed, and brought back from the archive alone under a new id, with CRIU's statistics.
//!
//! `cargo run -p backend-runc --example migrate` as root, with runc, a working CRIU and a static
//! busybox (`cargo xtask setup` installs them). Its own container is a busybox counter loop; the
//! archive goes to a temporary directory. `--bundle DIR` runs yours instead (its process should
//! run for a while), `--runtime` picks another backend: a runtime that cannot checkpoint or
//! restore here (crun has no checkpoint, youki 0.7 no restore) is refused with the library's
//! `Error::Unsupported`, its probed reason, before anything runs. Interrupted (Ctrl-C) or
//! failing, it deletes both containers and the archive, so the next run starts clean.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use runtime_core::checkpoint::Compression;
use runtime_core::{
    ContainerCheckpointOptions, ContainerId, ContainerRestoreOptions, CreateOptions, DeleteMode, DirectMonitor, Engine,
    Error, Export, OciBackend, RuntimeConfig, StateRoot, StopOptions,
};
use testkit::bundle::BundleBuilder;
use testkit::example::{ExampleArgs, ExampleResult, Interruptions, clean_up, finish};

/// What the example's own container runs: a counter that runs until it is stopped.
const COUNTER: &str = "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); sleep 0.2; done";

#[tokio::main(flavor = "current_thread")]
pub async fn main() -> ExitCode {
    finish(migrate().await)
}

async fn migrate() -> ExampleResult {
    let mut interruptions = Interruptions::listen()?;
    let args = ExampleArgs::from_env("")?;
    let bundle = args.bundle_or(BundleBuilder::new(["sh", "-c", COUNTER]))?;
    let archive_dir = tempfile::Builder::new().prefix("migrate-").tempdir()?;

    let backend = args.connect(RuntimeConfig::default()).await?;
    let features = backend.features().await?;
    for (feature, support) in [("checkpoint", &features.checkpoint), ("restore", &features.restore)] {
        if let Some(reason) = support.reason() {
            let refused = Error::Unsupported {
                backend: backend.name().to_owned(),
                feature: feature.into(),
                reason: reason.into(),
            };
            return Err(format!("{refused}; migrate needs checkpoint and restore (runc has both)").into());
        }
    }
    let engine =
        Engine::new(Arc::new(backend), Arc::new(DirectMonitor::new()), StateRoot::open(StateRoot::default_path()?)?);

    let (source, restored) = (ContainerId::new("migrate-source")?, ContainerId::new("migrate-restored")?);
    let archive = archive_dir.path().join("migrate.tar.zst");
    let outcome = interruptions.run(move_container(&engine, [&source, &restored], bundle.path(), &archive)).await;
    clean_up(&engine, &[&source, &restored], outcome).await
}

async fn move_container(
    engine: &Engine,
    [source, restored]: [&ContainerId; 2],
    bundle: &Path,
    archive: &Path,
) -> ExampleResult {
    let created = engine.run(source, bundle, CreateOptions::default()).await?;
    println!("{source} running, init pid {}", created.pid);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let export = Export { path: archive.to_owned(), compression: Compression::Zstd };
    let dumped = engine
        .checkpoint(source, ContainerCheckpointOptions { export: Some(export), statistics: true, ..Default::default() })
        .await?;
    println!("checkpointed in {:?}, exported to {}", dumped.runtime_duration, archive.display());
    if let Some(stats) = dumped.statistics {
        println!(
            "  CRIU dump: frozen {:?} (freezing {:?}), memory dump {:?}, memory write {:?}, pages scanned {}, written {}",
            stats.frozen_time,
            stats.freezing_time,
            stats.memdump_time,
            stats.memwrite_time,
            stats.pages_scanned,
            stats.pages_written
        );
    }
    // Only the archive is left of it.
    engine.delete(source, DeleteMode::Force).await?;

    let opts = ContainerRestoreOptions { import: Some(archive.to_owned()), statistics: true, ..Default::default() };
    let back = engine.restore(restored, bundle, opts).await?;
    println!("{restored} restored from the archive in {:?}, init pid {}", back.runtime_duration, back.pid);
    if let Some(stats) = back.statistics {
        println!(
            "  CRIU restore: forking {:?}, restore {:?}, pages compared {}, skipped (COW) {}",
            stats.forking_time, stats.restore_time, stats.pages_compared, stats.pages_skipped_cow
        );
    }

    let exit = engine.stop(restored, StopOptions::default()).await?;
    println!("{restored} stopped: {exit}");
    engine.delete(restored, DeleteMode::IfStopped).await?;
    Ok(())
}
