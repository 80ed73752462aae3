//! Checkpoint and restore through the [`Engine`]: a counter that keeps its count across a
//! restore, `leave_running`, exported archives restored on their own (under a new id, with the
//! root filesystem's changes), and hostile archives refused.
//!
//! The counter ([`crate::counter`]) is the evidence that memory survived.
//!
//! A runtime that cannot checkpoint or restore must refuse before anything runs: those cases
//! check the refusal instead, against what the runtime (or CRIU) prints when the case runs it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use runtime_core::checkpoint::Compression;
use runtime_core::{
    Capability, ContainerCheckpointOptions, ContainerId, ContainerRestoreOptions, CreateOptions, DeleteMode, Engine,
    Error, Exit, Export, Status,
};

use super::CaseSpec;
use super::env::{Env, refusal_quotes, skipped};
use crate::counter::{COUNTER, count_in, count_of, counted_past, next_count};
use crate::harness::{CaseResult, Ran};
use crate::overlay::{self, Overlay, overlay_rootfs};

/// Every checkpoint case of the engine with its name.
pub(super) fn all() -> Vec<CaseSpec> {
    vec![
        CaseSpec::needing(
            "a_checkpointed_counter_continues_after_restore",
            "checkpoint and restore through the engine: a counter continues where it stopped",
            &[Capability::Restore],
            |env| Box::pin(counter_continues(env)),
        ),
        CaseSpec::new(
            "leave_running_keeps_the_container_and_its_image",
            "runtime behaviour (`checkpoint --leave-running`): the container runs on and the image is kept",
            |env| Box::pin(leave_running(env)),
        ),
        CaseSpec::needing(
            "a_pre_checkpoint_chain_restores_and_dumps_fewer_pages",
            "a pre-checkpoint chain restores and its last dump writes fewer pages",
            &[Capability::Restore],
            |env| Box::pin(pre_checkpoint_chain(env)),
        ),
        CaseSpec::needing(
            "an_exported_checkpoint_restores_from_the_archive_alone",
            "an exported checkpoint restores from its archive alone",
            &[Capability::Restore],
            |env| Box::pin(export_and_import(env)),
        ),
        CaseSpec::needing(
            "a_hostile_archive_is_refused_and_writes_nothing",
            "an archive with paths leaving its directory is refused and writes nothing",
            &[Capability::Restore],
            |env| Box::pin(hostile_archive_case(env)),
        ),
    ]
}

/// Ends a counter (the `stop` file in its working directory) and checks its exit is recorded.
async fn stop_counter(engine: &Engine, id: &ContainerId, pid: u32) -> anyhow::Result<()> {
    std::fs::write(format!("/proc/{pid}/cwd/stop"), "")?;
    let exit = tokio::time::timeout(Duration::from_secs(30), engine.wait(id)).await.context("no exit")??;
    ensure!(exit == Exit::Exited(3), "the restored process's own exit: {exit:?}");
    engine.delete(id, DeleteMode::IfStopped).await?;
    Ok(())
}

/// A started counter under the engine, counting.
async fn started_counter(env: &mut Env, engine: &Engine, id: &ContainerId, bundle: &Path) -> anyhow::Result<u32> {
    let created = engine.create(id, bundle, CreateOptions::default()).await.context("create")?;
    env.track(created.pid);
    engine.start(id).await.context("start")?;
    counted_past(created.pid, 2).await?;
    Ok(created.pid)
}

/// What a case does about `what` (checkpoint or restore) on this subject.
pub(super) enum Verdict {
    /// It works: go on.
    Works,
    /// The runtime has no such command: check that the engine refuses with this probed reason.
    Refuses(String),
    /// The runtime has it but this host cannot (no working CRIU): the case ends with this.
    Ends(CaseResult),
}

pub(super) async fn verdict(env: &Env, what: &str) -> anyhow::Result<Verdict> {
    let flavour = env.imitates()?;
    let features = env.backend.features().await?;
    let (able, support) = match what {
        "checkpoint" => (flavour.checkpoints(), &features.checkpoint),
        _ => (flavour.restores(), &features.restore),
    };
    Ok(match (able, support.reason()) {
        (_, None) => Verdict::Works,
        (false, Some(reason)) => Verdict::Refuses(reason.to_owned()),
        (true, Some(reason)) => Verdict::Ends(env.cannot_checkpoint(what, reason)),
    })
}

/// Checks that `result` is the backend's refusal of `feature`, with a reason that quotes what
/// `program args` printed when this case ran it: the tool's own words, not the probe's.
fn refused_with<T: std::fmt::Debug>(
    result: runtime_core::Result<T>,
    feature: &str,
    program: &Path,
    args: &[&str],
) -> anyhow::Result<()> {
    match result {
        Err(Error::Unsupported { feature: refused, reason, .. }) => {
            ensure!(refused == feature, "refused {refused}, expected {feature}");
            refusal_quotes(program, args, &reason)
        }
        other => bail!("{feature} should be refused as unsupported: {other:?}"),
    }
}

/// `refused_with` for a runtime command the runtime lacks: it fails `--help`.
fn runtime_refused<T: std::fmt::Debug>(
    env: &Env,
    result: runtime_core::Result<T>,
    feature: &str,
    command: &str,
) -> anyhow::Result<()> {
    refused_with(result, feature, env.backend.binary(), &[command, "--help"])
}

async fn counter_continues(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let id = env.id("counter");
    let bundle = env.bundle(["sh", "-c", COUNTER])?;
    started_counter(env, &engine, &id, bundle.path()).await?;
    match verdict(env, "checkpoint").await? {
        Verdict::Works => {}
        Verdict::Refuses(_) => {
            let refused = engine.checkpoint(&id, ContainerCheckpointOptions::default()).await;
            runtime_refused(env, refused, "checkpoint", env.checkpoint_command()?)?;
            ensure!(engine.status(&id).await?.status == Status::Running, "a refused checkpoint leaves it running");
            engine.delete(&id, DeleteMode::Force).await?;
            return Ok(Ran::Passed);
        }
        Verdict::Ends(result) => {
            engine.delete(&id, DeleteMode::Force).await?;
            return result;
        }
    }
    // The fake writes no CRIU images, so only a real CRIU has statistics to read.
    let statistics = env.is_real();
    let report = engine
        .checkpoint(&id, ContainerCheckpointOptions { statistics, ..Default::default() })
        .await
        .context("checkpoint")?;
    let before = count_in(&bundle.rootfs())?;
    if let Some(stats) = &report.statistics {
        ensure!(stats.pages_written > 0, "a dump writes pages: {stats:?}");
    }
    ensure!(report.images.as_ref().is_some_and(|dir| dir.is_dir()), "the images stay under the state root");
    let status = engine.status(&id).await?;
    ensure!(status.status == Status::Stopped && status.checkpointed, "stopped by the checkpoint: {status:?}");
    ensure!(engine.list().await?.contains(&status), "and listed so");
    match verdict(env, "restore").await? {
        Verdict::Works => {}
        Verdict::Refuses(_) => {
            let refused = engine.restore(&id, bundle.path(), ContainerRestoreOptions::default()).await;
            runtime_refused(env, refused, "restore", "restore")?;
            let _ = engine.delete(&id, DeleteMode::Force).await;
            return Ok(Ran::Passed);
        }
        Verdict::Ends(result) => {
            let _ = engine.delete(&id, DeleteMode::Force).await;
            return result;
        }
    }
    let restored = engine
        .restore(&id, bundle.path(), ContainerRestoreOptions { statistics, ..Default::default() })
        .await
        .context("restore")?;
    env.track(restored.pid);
    let status = engine.status(&id).await?;
    ensure!(status.status == Status::Running && !status.checkpointed, "restored and running: {status:?}");
    let after = next_count(restored.pid, before).await?;
    ensure!(after == before + 1, "the count went on from {before} to {after}, not from zero");
    if let Some(stats) = &restored.statistics {
        ensure!(stats.restore_time > Duration::ZERO, "a restore takes time: {stats:?}");
    }
    stop_counter(&engine, &id, restored.pid).await?;
    Ok(Ran::Passed)
}

/// A pre-checkpoint, then a checkpoint against it: the dump links its parent relatively, the
/// pair restores, and (with CRIU's statistics) the second dump writes fewer pages than a full
/// one of the same container.
async fn pre_checkpoint_chain(env: &mut Env) -> CaseResult {
    match verdict(env, "restore").await? {
        Verdict::Works => {}
        Verdict::Refuses(reason) => return skipped(format!("no restore to check a chain with: {reason}")),
        Verdict::Ends(result) => return result,
    }
    let engine = env.engine()?;
    let id = env.id("chain");
    let bundle = env.bundle(["sh", "-c", COUNTER])?;
    started_counter(env, &engine, &id, bundle.path()).await?;
    let features = env.backend.features().await?;
    if let Some(reason) = features.pre_dump.reason() {
        let pre = ContainerCheckpointOptions { pre_checkpoint: true, ..Default::default() };
        let refused = engine.checkpoint(&id, pre).await;
        engine.delete(&id, DeleteMode::Force).await?;
        // The runtime takes --pre-dump (restore works); the kernel, through CRIU, decides.
        let dirty_tracking = ["check", "--feature", "mem_dirty_track"];
        refused_with(refused, "checkpoint --pre-dump", &env.criu(), &dirty_tracking)?;
        return skipped(format!("the engine refuses pre-checkpoints here, as it must: {reason}"));
    }
    let statistics = env.is_real();
    let full = ContainerCheckpointOptions { leave_running: true, statistics, ..Default::default() };
    let full = engine.checkpoint(&id, full).await.context("a full dump")?;
    let pre = ContainerCheckpointOptions { pre_checkpoint: true, statistics, ..Default::default() };
    engine.checkpoint(&id, pre).await.context("pre-checkpoint")?;
    ensure!(engine.status(&id).await?.status == Status::Running, "a pre-checkpoint leaves it running");
    let last = ContainerCheckpointOptions { with_previous: true, statistics, ..Default::default() };
    let last = engine.checkpoint(&id, last).await.context("checkpoint with the pre-checkpoint as parent")?;
    let before = count_in(&bundle.rootfs())?;
    let images = last.images.context("the images stay under the state root")?;
    let parent = std::fs::read_link(images.join("parent")).context("the dump links its parent")?;
    ensure!(parent == Path::new("../pre-checkpoint"), "the parent link is relative: {}", parent.display());
    if let (Some(full), Some(last)) = (&full.statistics, &last.statistics) {
        ensure!(
            last.pages_written < full.pages_written,
            "the dump after a pre-checkpoint writes fewer pages ({}) than a full one ({})",
            last.pages_written,
            full.pages_written
        );
    }
    let restored = engine.restore(&id, bundle.path(), ContainerRestoreOptions::default()).await.context("restore")?;
    env.track(restored.pid);
    let after = next_count(restored.pid, before).await?;
    ensure!(after == before + 1, "the count went on from {before} to {after}");
    stop_counter(&engine, &id, restored.pid).await?;
    Ok(Ran::Passed)
}

async fn leave_running(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let id = env.id("leave-running");
    let bundle = env.bundle(["sh", "-c", COUNTER])?;
    let pid = started_counter(env, &engine, &id, bundle.path()).await?;
    let opts = ContainerCheckpointOptions { leave_running: true, ..Default::default() };
    match verdict(env, "checkpoint").await? {
        Verdict::Works => {}
        Verdict::Refuses(_) => {
            runtime_refused(env, engine.checkpoint(&id, opts).await, "checkpoint", env.checkpoint_command()?)?;
            engine.delete(&id, DeleteMode::Force).await?;
            return Ok(Ran::Passed);
        }
        Verdict::Ends(result) => {
            engine.delete(&id, DeleteMode::Force).await?;
            return result;
        }
    }
    let report = engine.checkpoint(&id, opts).await.context("checkpoint")?;
    let images = report.images.context("the images stay under the state root")?;
    let written = std::fs::read_dir(&images)?.count();
    ensure!(written > 0, "the image directory {} is empty", images.display());
    ensure!(engine.status(&id).await?.status == Status::Running, "still running");
    let at_dump = count_of(pid).context("a count")?;
    counted_past(pid, at_dump).await.context("the same process goes on counting")?;
    std::fs::write(format!("/proc/{pid}/cwd/stop"), "")?;
    ensure!(engine.wait(&id).await? == Exit::Exited(3), "its own exit");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    ensure!(!images.exists(), "delete removes the images with the container");
    Ok(Ran::Passed)
}

/// A counter that first writes a file and deletes another: the root filesystem's changes an
/// export must carry.
fn changer() -> String {
    format!("echo made-after-start > added; rm doomed; {COUNTER}")
}

async fn export_and_import(env: &mut Env) -> CaseResult {
    match verdict(env, "restore").await? {
        Verdict::Works => {}
        Verdict::Refuses(reason) => {
            return skipped(format!("no restore; the counter case covers its refusal: {reason}"));
        }
        Verdict::Ends(result) => return result,
    }
    if let Some(reason) = overlay::unavailable() {
        return skipped(format!("the root filesystem's changes are an overlay's upper layer: {reason}"));
    }
    let engine = env.engine()?;
    let archives = tempfile::tempdir()?;
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let id = env.id("exported");
        let bundle = env.bundle(["sh".to_owned(), "-c".to_owned(), changer()])?;
        std::fs::write(bundle.rootfs().join("doomed"), "to be deleted")?;
        let image = archives.path().join(format!("image-{compression:?}"));
        let overlay = overlay_rootfs(&bundle.rootfs(), &image)?;
        let shm = archives.path().join(format!("shm-{compression:?}"));
        std::fs::create_dir(&shm)?;
        std::fs::write(shm.join("segment"), "shared")?;
        bind_dev_shm(bundle.path(), &shm)?;
        started_counter(env, &engine, &id, bundle.path()).await?;
        let archive = archives.path().join(format!("checkpoint-{compression:?}.tar"));
        let export = Export { path: archive.clone(), compression };
        let network_status = br#"{"podman":{"interfaces":{}}}"#.to_vec();
        let opts = ContainerCheckpointOptions {
            export: Some(export),
            network_status: Some(network_status.clone()),
            ..Default::default()
        };
        let report = engine.checkpoint(&id, opts).await.with_context(|| format!("checkpoint ({compression:?})"))?;
        let before = count_in(&bundle.rootfs())?;
        ensure!(report.archive.as_deref() == Some(archive.as_path()), "the report names the archive");
        ensure!(report.images.is_none(), "exported images leave the state root");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&archive)?.permissions().mode() & 0o777;
        ensure!(mode == 0o600, "the archive is private: {mode:o}");
        // The container and everything kept of it go: the archive is all that is left.
        engine.delete(&id, DeleteMode::Force).await.context("delete of a checkpointed container")?;
        ensure!(!engine.state_root().files(&id).dir.exists(), "nothing of {id} is left");
        std::fs::remove_file(shm.join("segment"))?;

        // Another bundle of the same image, without a spec: the archive brings it.
        let renamed = env.id("imported");
        let target = env.bundle(["true"])?;
        std::fs::remove_file(target.path().join("config.json"))?;
        std::fs::remove_dir_all(target.rootfs())?;
        std::fs::create_dir(target.rootfs())?;
        let target_overlay = Overlay::mount(&image, &target.rootfs())?;
        // The last archive is restored with new addresses: its saved network state is dropped.
        let ignore_static_ip = compression == Compression::Zstd;
        let opts = ContainerRestoreOptions { import: Some(archive.clone()), ignore_static_ip, ..Default::default() };
        let restored = engine
            .restore(&renamed, target.path(), opts)
            .await
            .with_context(|| format!("restore from the {compression:?} archive"))?;
        env.track(restored.pid);
        let rootfs = target.rootfs();
        let added = std::fs::read_to_string(rootfs.join("added")).context("the file written after start")?;
        ensure!(added == "made-after-start\n", "the written file's content: {added:?}");
        ensure!(!rootfs.join("doomed").exists(), "the file deleted after start stays deleted");
        ensure!(image.join("doomed").exists(), "the image itself is untouched");
        let segment = std::fs::read_to_string(shm.join("segment")).context("/dev/shm's file after the import")?;
        ensure!(segment == "shared", "/dev/shm came back: {segment:?}");
        let expected = (!ignore_static_ip).then(|| network_status.clone());
        ensure!(restored.network_status == expected, "the saved network state: {:?}", restored.network_status);
        let after = next_count(restored.pid, before).await?;
        ensure!(after == before + 1, "the count went on from {before} to {after}");
        stop_counter(&engine, &renamed, restored.pid).await?;
        drop(target_overlay);
        drop(overlay);
    }
    Ok(Ran::Passed)
}

/// Gives the bundle's container a `/dev/shm` that is a bind mount of the host directory `shm`,
/// as engines that share it with the host do.
fn bind_dev_shm(bundle: &Path, shm: &Path) -> anyhow::Result<()> {
    let path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    let mut mounts: Vec<serde_json::Value> = config["mounts"].as_array().cloned().unwrap_or_default();
    mounts.retain(|mount| mount["destination"] != "/dev/shm");
    mounts.push(serde_json::json!({
        "destination": "/dev/shm", "type": "bind", "source": shm, "options": ["rbind", "rw"]
    }));
    config["mounts"] = serde_json::Value::Array(mounts);
    std::fs::write(&path, serde_json::to_vec(&config)?)?;
    Ok(())
}

/// One raw archive entry: its name, its type, and its content (a link's target for links).
type RawEntry<'a> = (&'a str, tar::EntryType, &'a str);

/// Writes an archive whose entries are given raw, bypassing the checks a tar writer makes.
fn hostile_archive(path: &Path, entries: &[RawEntry<'_>]) -> anyhow::Result<()> {
    let mut builder = tar::Builder::new(std::fs::File::create(path)?);
    for (name, kind, content) in entries {
        let mut header = tar::Header::new_gnu();
        let raw = &mut header.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        match kind {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                header.set_link_name(content)?;
                header.set_size(0);
                header.set_cksum();
                builder.append(&header, std::io::empty())?;
            }
            _ => {
                header.set_size(content.len() as u64);
                header.set_cksum();
                builder.append(&header, content.as_bytes())?;
            }
        }
    }
    builder.finish()?;
    Ok(())
}

async fn hostile_archive_case(env: &mut Env) -> CaseResult {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let engine = env.engine()?;
    let dir = tempfile::tempdir()?;
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside)?;
    std::fs::write(outside.join("sentinel"), "untouched")?;
    // Large enough that cutting the archive in half cuts an entry, not the end-of-archive padding.
    let pages = "x".repeat(64 * 1024);
    let complete = [
        ("spec.dump", Regular, "{}"),
        ("checkpoint/", Directory, ""),
        ("checkpoint/pages-1.img", Regular, pages.as_str()),
    ];
    let escape = format!("{}/evil", outside.display());
    let cases: Vec<(&str, Vec<RawEntry<'_>>)> = vec![
        ("a ../ entry", vec![("../../../../../../../../../tmp/evil", Regular, "x")]),
        ("an absolute path", vec![(escape.as_str(), Regular, "x")]),
        (
            "a symlink out of the archive",
            vec![("checkpoint/link", Symlink, "/etc"), ("checkpoint/link/evil", Regular, "x")],
        ),
        ("a link up and out", vec![("up", Symlink, "../../.."), ("up/evil", Regular, "x")]),
        ("a hard link", vec![("checkpoint/hard", Link, "/etc/passwd")]),
    ];
    let unsupported = env.backend.features().await?.restore.reason().map(str::to_owned);
    let binary = env.backend.binary().to_path_buf();
    for (what, mut entries) in cases {
        entries.extend(complete.iter().cloned());
        let archive = dir.path().join("hostile.tar");
        hostile_archive(&archive, &entries)?;
        let id = env.id("hostile");
        let bundle = env.bundle(["true"])?;
        let before = tree_of(bundle.path())?;
        refused_import(&engine, &id, bundle.path(), archive, unsupported.is_some().then_some(&binary), what).await?;
        ensure!(tree_of(bundle.path())? == before, "the bundle is untouched after {what}");
        ensure!(std::fs::read_dir(&outside)?.count() == 1, "nothing was written outside after {what}");
        ensure!(!Path::new("/tmp/evil").exists(), "nothing was written to /tmp after {what}");
        let files = engine.state_root().files(&id);
        let left = std::fs::read_dir(&files.dir).map(|entries| entries.count()).unwrap_or(0);
        ensure!(left == 0, "the scratch directory of {what} was removed ({left} entries left)");
        let _ = std::fs::remove_dir(&files.dir);
    }
    // A good archive cut in half: refused as well.
    let good = dir.path().join("good.tar");
    hostile_archive(&good, &complete)?;
    let bytes = std::fs::read(&good)?;
    let truncated = dir.path().join("truncated.tar");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2])?;
    let id = env.id("truncated");
    let bundle = env.bundle(["true"])?;
    let cut = "its second half cut off";
    refused_import(&engine, &id, bundle.path(), truncated, unsupported.is_some().then_some(&binary), cut).await?;
    let _ = std::fs::remove_dir(engine.state_root().files(&id).dir);
    Ok(Ran::Passed)
}

/// Checks that importing `archive` is refused: as invalid, or, where the backend cannot
/// restore (`without_restore` is then the runtime's binary), as unsupported in the runtime's
/// own words, before the archive is looked at.
async fn refused_import(
    engine: &Engine,
    id: &ContainerId,
    bundle: &Path,
    archive: PathBuf,
    without_restore: Option<&PathBuf>,
    what: &str,
) -> anyhow::Result<()> {
    let opts = ContainerRestoreOptions { import: Some(archive), ..Default::default() };
    match (without_restore, engine.restore(id, bundle, opts).await) {
        (Some(binary), result) => refused_with(result, "restore", binary, &["restore", "--help"]),
        (None, Err(Error::InvalidArchive { .. })) => Ok(()),
        (None, other) => bail!("an archive with {what} was not refused as invalid: {other:?}"),
    }
}

/// Every path under `dir` with its size, to see that nothing changed.
fn tree_of(dir: &Path) -> anyhow::Result<Vec<(PathBuf, u64)>> {
    let mut seen = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next)? {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            if meta.is_dir() {
                pending.push(entry.path());
            }
            seen.push((entry.path(), meta.len()));
        }
    }
    seen.sort();
    Ok(seen)
}
