//! Overlay root filesystems, as container engines give their containers: an image's tree as the
//! read-only lower layer, the container's changes in an upper directory. Checkpoint export
//! archives the upper directory (its whiteouts are the deleted files), so the cases that check
//! a root filesystem's changes across an export need one.

use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// An overlay mounted on a directory, unmounted when dropped.
#[derive(Debug)]
pub struct Overlay {
    merged: PathBuf,
    layers: tempfile::TempDir,
}

impl Overlay {
    /// Mounts an overlay of `lower` (read-only) on `merged`, with a fresh upper directory.
    pub fn mount(lower: &Path, merged: &Path) -> anyhow::Result<Self> {
        let layers = tempfile::Builder::new().prefix("overlay-").tempdir().context("a directory for the layers")?;
        let (upper, work) = (layers.path().join("upper"), layers.path().join("work"));
        std::fs::create_dir(&upper)?;
        std::fs::create_dir(&work)?;
        let data = format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display());
        mount(Some("overlay"), merged, Some("overlay"), MsFlags::empty(), Some(data.as_str()))
            .with_context(|| format!("mounting an overlay on {}", merged.display()))?;
        Ok(Overlay { merged: merged.to_path_buf(), layers })
    }

    /// The directory that holds the container's changes.
    pub fn upper(&self) -> PathBuf {
        self.layers.path().join("upper")
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        // Detached: a process of a failed case may still have its cwd in it.
        let _ = umount2(&self.merged, MntFlags::MNT_DETACH);
    }
}

/// Why overlays cannot be mounted here, if they cannot: mounting one takes root
/// (`CAP_SYS_ADMIN` in the initial user namespace) and a kernel with overlayfs, which a trial
/// mount shows. A case that needs one is skipped with this reason rather than failed.
pub fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("mounting an overlay root filesystem needs root".to_owned());
    }
    let trial = || -> anyhow::Result<()> {
        let dir = tempfile::Builder::new().prefix("overlay-trial-").tempdir()?;
        let (lower, merged) = (dir.path().join("lower"), dir.path().join("merged"));
        std::fs::create_dir(&lower)?;
        std::fs::create_dir(&merged)?;
        drop(Overlay::mount(&lower, &merged)?);
        Ok(())
    };
    trial().err().map(|err| format!("a trial overlay does not mount here: {err:#}"))
}

/// A bundle's root filesystem turned into an overlay: its tree moves to `image` (the lower
/// layer) and an overlay of it is mounted where it was.
pub fn overlay_rootfs(rootfs: &Path, image: &Path) -> anyhow::Result<Overlay> {
    std::fs::rename(rootfs, image).with_context(|| format!("moving {} to {}", rootfs.display(), image.display()))?;
    std::fs::create_dir(rootfs)?;
    Overlay::mount(image, rootfs)
}
