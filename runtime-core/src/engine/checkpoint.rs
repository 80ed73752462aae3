//! Checkpoint and restore as an embedder uses them: the engine decides where the images live,
//! what an exported archive holds, and what a restore needs before the runtime is asked.
//!
//! Images live in the container's directory under the state root, as podman keeps them:
//!
//! ```text
//! <root>/containers/<id>/checkpoint/       the last checkpoint (CRIU's images and dump.log)
//! <root>/containers/<id>/pre-checkpoint/   the last pre-checkpoint, the parent of the next dump
//! ```
//!
//! A dump with a parent is given `--parent-path ../pre-checkpoint`: CRIU stores the path as the
//! `parent` link of the image directory, and a relative link keeps the pair valid wherever the
//! two directories move together (into an archive, and out of it on another host).
//!
//! An exported archive is self-describing (podman's layout, see [`crate::checkpoint`]): the
//! images, the spec, the engine's record of the container, CRIU's statistics, and the root
//! filesystem's changes, so that a host with only the image and the archive can restore it,
//! under the same id or a new one.
//!
//! Everything that touches the images, the archive, the spec or the bundle runs off the
//! caller's executor ([`off_executor`]): an archive of a few hundred megabytes takes seconds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::blocking::off_executor;
use crate::checkpoint::{
    self as archive, ArchiveWriter, CHECKPOINT_DIR, CONFIG_DUMP, Compression, DELETED_FILES, DEVSHM_CHECKPOINT_TAR,
    DumpStatistics, NETWORK_STATUS, PRE_CHECKPOINT_DIR, ROOTFS_DIFF_TAR, RestoreStatistics, RootfsChanges, SPEC_DUMP,
    STATS_DUMP,
};
use crate::contract::error::{Error, Existence, Result, WrongState};
use crate::contract::id::ContainerId;
use crate::contract::monitor::{Capability, RestoreRequest};
use crate::contract::options::{CheckpointOptions, ContainerStdio, ExitCommand, ManageCgroupsMode, RestoreOptions};
use crate::contract::output::MonitorStdio;
use crate::contract::state::Status;
use crate::engine::Engine;
use crate::engine::state_root::ContainerRecord;

/// How a dump names its parent: relative, so the pair can move together.
const PARENT_LINK: &str = "../pre-checkpoint";

/// CRIU's own files in an image or work directory, kept only when asked to.
const CRIU_LOGS: [&str; 4] = ["dump.log", "stats-dump", "restore.log", "stats-restore"];

/// Where an exported checkpoint goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The archive file to write (mode 0600); it must not exist yet.
    pub path: PathBuf,
    /// How it is compressed.
    pub compression: Compression,
}

/// Options of [`Engine::checkpoint`].
#[derive(Debug, Clone, Default)]
pub struct ContainerCheckpointOptions {
    /// Keep the container running after the dump.
    pub leave_running: bool,
    /// Dump established TCP connections.
    pub tcp_established: bool,
    /// Allow external unix sockets.
    pub ext_unix_sk: bool,
    /// Allow a process with a controlling terminal.
    pub shell_job: bool,
    /// Dump file locks.
    pub file_locks: bool,
    /// Dump memory only, into `pre-checkpoint/`, leaving the container running: the first step
    /// of an iterative migration.
    pub pre_checkpoint: bool,
    /// Dump against the last pre-checkpoint, so that pages unchanged since are not written again.
    pub with_previous: bool,
    /// `--manage-cgroups-mode`; `None` leaves the runtime's default.
    pub manage_cgroups_mode: Option<ManageCgroupsMode>,
    /// Where CRIU writes its log; by default the image directory.
    pub work_path: Option<PathBuf>,
    /// Write an archive of the checkpoint. Without `keep`, the images then leave the state root.
    pub export: Option<Export>,
    /// Leave the root filesystem's changes out of the archive.
    pub ignore_rootfs: bool,
    /// The container's network state (podman's `network.status`), stored in the archive as is.
    pub network_status: Option<Vec<u8>>,
    /// Read CRIU's dump statistics into the report.
    pub statistics: bool,
    /// Keep CRIU's log and statistics files (and, with `export`, the images) after success.
    pub keep: bool,
    /// Overrides the backend's timeout for the dump.
    pub timeout: Option<Duration>,
}

/// What a checkpoint did.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointReport {
    /// The image directory, while it is kept under the state root.
    pub images: Option<PathBuf>,
    /// The archive written, with `export`.
    pub archive: Option<PathBuf>,
    /// How long the runtime's checkpoint command took.
    pub runtime_duration: Duration,
    /// CRIU's statistics, when asked for.
    pub statistics: Option<DumpStatistics>,
}

/// Options of [`Engine::restore`].
#[derive(Debug, Default)]
pub struct ContainerRestoreOptions {
    /// Restore from this archive (written by an export) instead of the images under the state
    /// root. The archive may come from another container id and another host.
    pub import: Option<PathBuf>,
    /// Restore established TCP connections.
    pub tcp_established: bool,
    /// Allow external unix sockets.
    pub ext_unix_sk: bool,
    /// Allow a process with a controlling terminal.
    pub shell_job: bool,
    /// Restore file locks.
    pub file_locks: bool,
    /// `--manage-cgroups-mode`; `None` leaves the runtime's default.
    pub manage_cgroups_mode: Option<ManageCgroupsMode>,
    /// Do not apply the archive's root filesystem changes to the bundle.
    pub ignore_rootfs: bool,
    /// Drop the saved network state's addresses: the restored container gets new ones.
    pub ignore_static_ip: bool,
    /// Drop the saved network state's MAC addresses.
    pub ignore_static_mac: bool,
    /// How the restored container's stdio is wired.
    pub stdio: ContainerStdio,
    /// What the monitor keeps of the restored container's stdio (its log, a stdin to attach
    /// to); a monitor refuses what it cannot serve.
    pub monitor_stdio: MonitorStdio,
    /// Read CRIU's restore statistics into the report.
    pub statistics: bool,
    /// Keep CRIU's log and statistics files after success.
    pub keep: bool,
    /// Overrides the backend's timeout for the restore.
    pub timeout: Option<Duration>,
    /// Run by the monitor once the restored container has exited
    /// ([`RestoreOptions::exit_command`]); a monitor that cannot promise it refuses it.
    pub exit_command: Option<ExitCommand>,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreReport {
    /// The restored init's host pid.
    pub pid: u32,
    /// How long the runtime's restore command took.
    pub runtime_duration: Duration,
    /// CRIU's statistics, when asked for.
    pub statistics: Option<RestoreStatistics>,
    /// The archive's saved network state, for the caller's network setup; `None` without one,
    /// and when `ignore_static_ip` or `ignore_static_mac` drops it.
    pub network_status: Option<Vec<u8>>,
}

/// `config.dump`: the engine's record of the container, as an archive carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ArchivedConfig {
    /// The id it had when it was dumped.
    id: ContainerId,
    /// The backend that ran it.
    backend: String,
    /// The monitor that supervised it.
    monitor: String,
    /// The signal `stop` sends first.
    stop_signal: i32,
    /// The spec's annotations.
    annotations: std::collections::BTreeMap<String, String>,
}

impl Engine {
    /// Dumps a running container with CRIU, through the backend. The images stay under the
    /// state root unless exported; a container that is not running is refused before anything
    /// runs. A dump that stops the container (neither `leave_running` nor `pre_checkpoint`)
    /// ends its init, which is not the container exiting: that ending is forgotten, so a
    /// restore starts clean.
    pub async fn checkpoint(&self, id: &ContainerId, opts: ContainerCheckpointOptions) -> Result<CheckpointReport> {
        let _lock = self.root.lock(id).await?;
        let files = self.root.files(id);
        // Checkpointed already: the runtimes would each answer their own way (runc no longer
        // knows the container), so the record answers for all of them.
        let found = match self.root.load(id).await?.is_some_and(|record| record.checkpointed) {
            true => Status::Stopped,
            false => match self.monitor.exit_status(id, &files).await? {
                Some(_) => Status::Stopped,
                None => self.backend.state(id).await?.status,
            },
        };
        if found != Status::Running {
            let evidence = WrongState::Seen { operation: "checkpoint", needs: Status::Running, found };
            return Err(Error::InvalidState { id: Some(id.clone()), evidence });
        }
        let images = files.dir.join(if opts.pre_checkpoint { PRE_CHECKPOINT_DIR } else { CHECKPOINT_DIR });
        let previous = files.dir.join(PRE_CHECKPOINT_DIR);
        if opts.with_previous && !previous.is_dir() {
            let evidence = Existence::Seen { what: "the pre-checkpoint to build on".to_owned(), path: previous };
            return Err(Error::NotFound { id: Some(id.clone()), evidence });
        }
        if let Some(export) = opts.export.as_ref().filter(|export| export.path.symlink_metadata().is_ok()) {
            // Found now rather than after the dump stopped the container; a dangling link too,
            // which the archive's exclusive create would refuse.
            let evidence = Existence::Seen { what: "the export archive".to_owned(), path: export.path.clone() };
            return Err(Error::AlreadyExists { id: Some(id.clone()), evidence });
        }
        off_executor("making the image directory", {
            let images = images.clone();
            move || fresh_private_dir(&images)
        })
        .await?;
        let dump = CheckpointOptions {
            image_path: images.clone(),
            work_path: Some(opts.work_path.clone().unwrap_or_else(|| images.clone())),
            parent_path: opts.with_previous.then(|| PathBuf::from(PARENT_LINK)),
            leave_running: opts.leave_running,
            tcp_established: opts.tcp_established,
            ext_unix_sk: opts.ext_unix_sk,
            shell_job: opts.shell_job,
            file_locks: opts.file_locks,
            pre_dump: opts.pre_checkpoint,
            manage_cgroups_mode: opts.manage_cgroups_mode,
            lazy_pages: false,
            timeout: opts.timeout,
        };
        let started = Instant::now();
        if let Err(err) = self.backend.checkpoint(id, &dump).await {
            // A failed dump keeps CRIU's log for the diagnosis; a refusal ran nothing.
            if let Error::Unsupported { .. } = err {
                remove_dir(&images)?;
            }
            return Err(err);
        }
        let runtime_duration = started.elapsed();
        if opts.with_previous {
            relative_parent_link(&images)?;
        }
        if !opts.leave_running && !opts.pre_checkpoint {
            if self.is_watched(id) {
                // Bounded: the dump killed the init, so the monitor's event is a moment away.
                let _ = tokio::time::timeout(super::KILL_GRACE, self.monitor.wait(id, &files)).await;
            }
            self.forget_exit(id).await?;
            if let Some(record) = self.root.load(id).await? {
                self.root.save(&ContainerRecord { checkpointed: true, ..record }).await?;
            }
        }
        let statistics = match opts.statistics {
            true => Some(off_executor("reading CRIU's statistics", in_dir(&images, DumpStatistics::read)).await?),
            false => None,
        };
        let archive = match &opts.export {
            Some(export) => {
                self.export(id, &files.dir, &images, &opts, export).await?;
                Some(export.path.clone())
            }
            None => None,
        };
        let images = match (&opts.export, opts.keep) {
            (_, true) => Some(images),
            (Some(_), false) if !opts.pre_checkpoint => {
                off_executor("removing the exported images", in_dir(&images, remove_dir)).await?;
                None
            }
            _ => {
                off_executor("removing CRIU's logs", in_dir(&images, remove_criu_logs)).await?;
                Some(images)
            }
        };
        Ok(CheckpointReport { images, archive, runtime_duration, statistics })
    }

    /// Writes the archive of a checkpoint just taken.
    async fn export(
        &self,
        id: &ContainerId,
        dir: &Path,
        images: &Path,
        opts: &ContainerCheckpointOptions,
        export: &Export,
    ) -> Result<()> {
        let bundle = self.bundle_of(id).await?;
        let contents = ArchiveContents {
            id: id.clone(),
            backend: self.backend.name().to_owned(),
            monitor: self.monitor.name().to_owned(),
            stop_signal: self.root.load(id).await?.map(|record| record.stop_signal),
            bundle,
            dir: dir.to_path_buf(),
            images: images.to_path_buf(),
            pre_checkpoint: opts.pre_checkpoint,
            with_previous: opts.with_previous,
            ignore_rootfs: opts.ignore_rootfs,
            network_status: opts.network_status.clone(),
            export: export.clone(),
        };
        off_executor("writing the checkpoint archive", move || contents.write()).await
    }

    /// The bundle a container was made from: the engine's record, else the runtime's state.
    async fn bundle_of(&self, id: &ContainerId) -> Result<PathBuf> {
        match self.root.load(id).await? {
            Some(record) => Ok(record.bundle),
            None => Ok(self.backend.state(id).await?.bundle),
        }
    }

    /// Restores `id` from a checkpoint: the images under the state root, or an archive
    /// (`import`), which may come from another id and another host. The restored container is
    /// supervised by the monitor like a created one. A backend or monitor
    /// ([`Capability::Restore`]) that cannot restore is refused before anything is unpacked or run. A relative `bundle` is taken from the current
    /// directory now, as for [`Engine::create`].
    pub async fn restore(
        &self,
        id: &ContainerId,
        bundle: &Path,
        opts: ContainerRestoreOptions,
    ) -> Result<RestoreReport> {
        let bundle = &super::absolute_bundle(bundle)?;
        self.monitor.require(Capability::Restore, "restore")?;
        let features = self.backend.features().await?;
        if let Some(reason) = features.restore.reason() {
            return Err(Error::Unsupported {
                backend: self.backend.name().to_owned(),
                feature: "restore".to_owned(),
                reason: reason.to_owned(),
            });
        }
        self.after_rollback_of(id).await;
        let mut lock = self.root.lock(id).await?;
        let known = self.root.load(id).await?.is_some();
        let restored = self.restore_locked(id, bundle, opts).await;
        if restored.is_err() && !known {
            // An import under a new id leaves nothing behind when it fails; the archive is intact.
            self.root.forget(id).await?;
            lock.remove_on_drop();
        }
        restored
    }

    async fn restore_locked(
        &self,
        id: &ContainerId,
        bundle: &Path,
        mut opts: ContainerRestoreOptions,
    ) -> Result<RestoreReport> {
        let previous = self.root.load(id).await?;
        // Whatever was recorded of an earlier container of this id is not the restored one's.
        self.forget_exit(id).await?;
        let files = self.root.files(id);
        let images = files.dir.join(CHECKPOINT_DIR);
        let network_status = match opts.import.take() {
            Some(archive) => {
                let import = Import {
                    archive,
                    dir: files.dir.clone(),
                    bundle: bundle.to_path_buf(),
                    ignore_rootfs: opts.ignore_rootfs,
                    keep_network_status: !(opts.ignore_static_ip || opts.ignore_static_mac),
                };
                off_executor("importing the checkpoint archive", move || import.unpack()).await?
            }
            None if images.is_dir() => None,
            None => {
                let evidence = Existence::Seen { what: "the kept checkpoint".to_owned(), path: images };
                return Err(Error::NotFound { id: Some(id.clone()), evidence });
            }
        };
        let restore = RestoreOptions {
            image_path: images.clone(),
            work_path: Some(images.clone()),
            tcp_established: opts.tcp_established,
            ext_unix_sk: opts.ext_unix_sk,
            shell_job: opts.shell_job,
            file_locks: opts.file_locks,
            manage_cgroups_mode: opts.manage_cgroups_mode,
            stdio: std::mem::take(&mut opts.stdio),
            monitor_stdio: std::mem::take(&mut opts.monitor_stdio),
            timeout: opts.timeout,
            exit_command: opts.exit_command.take(),
            ..RestoreOptions::default()
        };
        let request = RestoreRequest { id: id.clone(), bundle: bundle.to_path_buf(), options: restore, files };
        let started = Instant::now();
        // Dropped before the monitor answers, the restore is rolled back in the background and
        // the record it was made over put back.
        let unfinished = self.unfinished(self.rollback_of(id).restoring_over(previous.clone()));
        let created = self.monitor.restore(self.backend.as_ref(), request).await;
        unfinished.disarm();
        let created = created?;
        let runtime_duration = started.elapsed();
        self.mark_watched(id);
        let finished = async {
            self.root.save(&ContainerRecord { pid: Some(created.pid), ..self.record(id, bundle).await? }).await?;
            let statistics = match opts.statistics {
                true => {
                    Some(off_executor("reading CRIU's statistics", in_dir(&images, RestoreStatistics::read)).await?)
                }
                false => None,
            };
            if !opts.keep {
                off_executor("removing CRIU's logs", in_dir(&images, remove_criu_logs)).await?;
            }
            Ok(statistics)
        };
        match finished.await {
            Ok(statistics) => Ok(RestoreReport { pid: created.pid, runtime_duration, statistics, network_status }),
            Err(err) => {
                // The runtime restored it, but the restore as asked for failed: the container
                // goes, and the checkpoint it came from stays restorable.
                self.rollback_of(id).delete_and_release().await;
                if let Some(previous) = previous {
                    self.root.save(&previous).await?;
                }
                Err(err)
            }
        }
    }
}

/// What an exported archive is made of: everything [`ArchiveContents::write`] needs, owned, so
/// that it can be written off the executor.
#[derive(Debug)]
struct ArchiveContents {
    id: ContainerId,
    backend: String,
    monitor: String,
    /// From the engine's record; `None` for a container the engine did not make.
    stop_signal: Option<i32>,
    bundle: PathBuf,
    /// The container's directory under the state root.
    dir: PathBuf,
    images: PathBuf,
    pre_checkpoint: bool,
    with_previous: bool,
    ignore_rootfs: bool,
    network_status: Option<Vec<u8>>,
    export: Export,
}

impl ArchiveContents {
    fn write(self) -> Result<()> {
        let ArchiveContents { id, backend, monitor, stop_signal, bundle, dir, images, .. } = &self;
        let spec_path = bundle.join("config.json");
        let spec = read_spec(&spec_path)?;
        let config = ArchivedConfig {
            id: id.clone(),
            backend: backend.clone(),
            monitor: monitor.clone(),
            stop_signal: stop_signal.unwrap_or_else(|| super::stop_signal_of(bundle).number()),
            annotations: spec.annotations().clone().unwrap_or_default().into_iter().collect(),
        };
        let config = serde_json::to_vec_pretty(&config)
            .map_err(|err| Error::parse("the container's record", err.to_string()))?;
        let rootfs = rootfs_of(bundle, &spec);
        let devshm = devshm_source(&spec);
        let staging = tempfile::Builder::new()
            .prefix("export-")
            .tempdir_in(dir)
            .map_err(|err| Error::io(format!("making a staging directory in {}", dir.display()), err))?;
        let mut writer = ArchiveWriter::create(&self.export.path, self.export.compression)?;
        let image_name = if self.pre_checkpoint { PRE_CHECKPOINT_DIR } else { CHECKPOINT_DIR };
        writer.add_tree(image_name, images)?;
        if self.with_previous && !self.pre_checkpoint {
            writer.add_tree(PRE_CHECKPOINT_DIR, &dir.join(PRE_CHECKPOINT_DIR))?;
        }
        writer.add_file(SPEC_DUMP, &spec_path)?;
        writer.add_bytes(CONFIG_DUMP, &config)?;
        if images.join(STATS_DUMP).is_file() {
            writer.add_file(STATS_DUMP, &images.join(STATS_DUMP))?;
        }
        if let Some(status) = &self.network_status {
            writer.add_bytes(NETWORK_STATUS, status)?;
        }
        if let Some(shm) = devshm.filter(|shm| shm.is_dir()) {
            let tar = staging.path().join(DEVSHM_CHECKPOINT_TAR);
            archive::tar_directory(&shm, &tar)?;
            writer.add_file(DEVSHM_CHECKPOINT_TAR, &tar)?;
        }
        if !self.ignore_rootfs {
            let diff = staging.path().join(ROOTFS_DIFF_TAR);
            let deleted = staging.path().join(DELETED_FILES);
            RootfsChanges::of(&rootfs)?.write(&diff, &deleted)?;
            writer.add_file(ROOTFS_DIFF_TAR, &diff)?;
            writer.add_file(DELETED_FILES, &deleted)?;
        }
        writer.finish()
    }
}

/// An exported archive to unpack for a restore, with what [`Import::unpack`] needs, owned.
#[derive(Debug)]
struct Import {
    archive: PathBuf,
    /// The container's directory under the state root.
    dir: PathBuf,
    bundle: PathBuf,
    ignore_rootfs: bool,
    /// Hand the saved network state back (neither its addresses nor its MACs are dropped).
    keep_network_status: bool,
}

impl Import {
    /// Validated into a scratch directory first, then the bundle gets the spec (when it has
    /// none), the root filesystem's changes and `/dev/shm`, and the images move under the state
    /// root. Returns the saved network state.
    fn unpack(self) -> Result<Option<Vec<u8>>> {
        let Import { archive: archive_path, dir, bundle, .. } = &self;
        std::fs::create_dir_all(dir).map_err(|err| Error::io(format!("making {}", dir.display()), err))?;
        let scratch = tempfile::Builder::new()
            .prefix("import-")
            .tempdir_in(dir)
            .map_err(|err| Error::io(format!("making a scratch directory in {}", dir.display()), err))?;
        archive::import(archive_path, scratch.path())?;
        let unpacked = scratch.path();
        let spec_path = bundle.join("config.json");
        if !spec_path.exists() {
            copy(&unpacked.join(SPEC_DUMP), &spec_path)?;
        }
        let spec = read_spec(&spec_path)?;
        if !self.ignore_rootfs {
            let diff = Some(unpacked.join(ROOTFS_DIFF_TAR)).filter(|path| path.is_file());
            let deleted = Some(unpacked.join(DELETED_FILES)).filter(|path| path.is_file());
            archive::apply_rootfs_diff(diff.as_deref(), deleted.as_deref(), &rootfs_of(bundle, &spec))?;
        }
        if let Some(shm) = devshm_source(&spec).filter(|_| unpacked.join(DEVSHM_CHECKPOINT_TAR).is_file()) {
            archive::untar_directory(&unpacked.join(DEVSHM_CHECKPOINT_TAR), &shm)?;
        }
        for name in [CHECKPOINT_DIR, PRE_CHECKPOINT_DIR] {
            let target = dir.join(name);
            remove_dir(&target)?;
            if unpacked.join(name).is_dir() {
                std::fs::rename(unpacked.join(name), &target)
                    .map_err(|err| Error::io(format!("moving the imported {name} to {}", target.display()), err))?;
            }
        }
        let network_status = match self.keep_network_status {
            true => std::fs::read(unpacked.join(NETWORK_STATUS)).ok(),
            false => None,
        };
        Ok(network_status)
    }
}

/// `work` on its own copy of `dir`, for [`off_executor`].
fn in_dir<T, W: FnOnce(&Path) -> Result<T>>(dir: &Path, work: W) -> impl FnOnce() -> Result<T> + use<T, W> {
    let dir = dir.to_path_buf();
    move || work(&dir)
}

/// The spec at `path`.
fn read_spec(path: &Path) -> Result<oci_spec::runtime::Spec> {
    let bytes = std::fs::read(path).map_err(|err| Error::io(format!("reading {}", path.display()), err))?;
    serde_json::from_slice(&bytes)
        .map_err(|err| Error::parse_failed(format!("the spec {}", path.display()), err, &bytes))
}

/// The root filesystem of a bundle, as its spec names it (relative to the bundle or absolute).
fn rootfs_of(bundle: &Path, spec: &oci_spec::runtime::Spec) -> PathBuf {
    let root = spec.root().as_ref().map_or_else(|| PathBuf::from("rootfs"), |root| root.path().clone());
    bundle.join(root)
}

/// The host directory bind-mounted at `/dev/shm`, when the spec gives the container a private
/// one that way (a tmpfs inside the container is CRIU's to dump).
fn devshm_source(spec: &oci_spec::runtime::Spec) -> Option<PathBuf> {
    spec.mounts().as_ref()?.iter().find_map(|mount| {
        let bind = mount.typ().as_deref() == Some("bind")
            || mount.options().as_ref().is_some_and(|options| options.iter().any(|o| o == "bind" || o == "rbind"));
        (mount.destination() == Path::new("/dev/shm") && bind).then(|| mount.source().clone()).flatten()
    })
}

/// Makes the `parent` link of a dump's images [`PARENT_LINK`], whatever path the runtime gave
/// CRIU: an absolute link would break when the pair moves (and an archive refuses it).
fn relative_parent_link(images: &Path) -> Result<()> {
    let link = images.join("parent");
    match std::fs::read_link(&link) {
        Ok(target) if target == Path::new(PARENT_LINK) => Ok(()),
        Ok(_) => std::fs::remove_file(&link)
            .and_then(|()| std::os::unix::fs::symlink(PARENT_LINK, &link))
            .map_err(|err| Error::io(format!("making {} relative", link.display()), err)),
        Err(err) => Err(Error::io(format!("reading the parent link {}", link.display()), err)),
    }
}

/// An empty directory at `path` (0700), replacing whatever was there.
fn fresh_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    remove_dir(path)?;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(path)
        .map_err(|err| Error::io(format!("making {}", path.display()), err))
}

fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing {}", path.display()), err))
        }
        _ => Ok(()),
    }
}

/// Removes CRIU's logs and statistics from an image or work directory.
fn remove_criu_logs(dir: &Path) -> Result<()> {
    for name in CRIU_LOGS {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(format!("removing {}", path.display()), err));
            }
            _ => {}
        }
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|err| Error::io(format!("copying {} to {}", from.display(), to.display()), err))
}
