//! What a checkpoint leaves behind: the archive that carries it elsewhere (CRIU's images with
//! the container's spec, record and root filesystem changes, in podman's layout), and CRIU's
//! statistics of a dump or a restore.

mod archive;
mod rootfs;
mod stats;
mod unpack;

#[cfg(test)]
mod tests;

pub use archive::{
    ArchiveWriter, CHECKPOINT_DIR, CONFIG_DUMP, Compression, DELETED_FILES, DEVSHM_CHECKPOINT_TAR, NETWORK_STATUS,
    PRE_CHECKPOINT_DIR, ROOTFS_DIFF_TAR, SPEC_DUMP, STATS_DUMP, import, tar_directory, untar_directory,
};
pub use rootfs::{OverlayDirs, RootfsChanges, apply_rootfs_diff, overlay_dirs};
pub use stats::{DumpStatistics, RestoreStatistics};
