//! Checkpoint, export, import and restore: a running container is dumped into one archive,
//! removed, and brought back from the archive alone under a new id, with CRIU's statistics.
//!
//! `cargo run -p backend-runc --example migrate -- <bundle> <archive>` (as root, with runc and a
//! working CRIU; `cargo xtask setup` installs both). The bundle's process should run for a
//! while (a counter loop, say); it is stopped at the end.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use backend_runc::Runc;
use runtime_core::checkpoint::Compression;
use runtime_core::{
    ContainerCheckpointOptions, ContainerId, ContainerRestoreOptions, CreateOptions, DeleteMode, DirectMonitor, Engine,
    Export, RuntimeConfig, StateRoot, StopOptions,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: migrate <bundle> <archive>";
    let bundle = PathBuf::from(args.next().ok_or(usage)?);
    let archive = PathBuf::from(args.next().ok_or(usage)?);

    let runc = Runc::connect(RuntimeConfig::default()).await?;
    let engine =
        Engine::new(Arc::new(runc), Arc::new(DirectMonitor::new()), StateRoot::open(StateRoot::default_path()?)?);

    let id = ContainerId::new("migrate-source")?;
    let created = engine.run(&id, &bundle, CreateOptions::default()).await?;
    println!("{id} running, init pid {}", created.pid);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let export = Export { path: archive.clone(), compression: Compression::Zstd };
    let dumped = engine
        .checkpoint(&id, ContainerCheckpointOptions { export: Some(export), statistics: true, ..Default::default() })
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
    let _ = engine.delete(&id, DeleteMode::Force).await;

    let restored_id = ContainerId::new("migrate-restored")?;
    let opts = ContainerRestoreOptions { import: Some(archive), statistics: true, ..Default::default() };
    let restored = engine.restore(&restored_id, &bundle, opts).await?;
    println!("{restored_id} restored from the archive in {:?}, init pid {}", restored.runtime_duration, restored.pid);
    if let Some(stats) = restored.statistics {
        println!(
            "  CRIU restore: forking {:?}, restore {:?}, pages compared {}, skipped (COW) {}",
            stats.forking_time, stats.restore_time, stats.pages_compared, stats.pages_skipped_cow
        );
    }

    let exit = engine.stop(&restored_id, StopOptions::default()).await?;
    println!("{restored_id} stopped: {exit}");
    engine.delete(&restored_id, DeleteMode::IfStopped).await?;
    Ok(())
}
