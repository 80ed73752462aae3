//! A container's changes to its root filesystem, carried in a checkpoint archive as
//! `rootfs-diff.tar` (what was written) and `deleted.files` (what was removed), as podman does.
//!
//! CRIU restores processes, not files: a restored process that reopens a file it wrote must find
//! it. On an overlay root filesystem the changes are exactly the upper directory, whose whiteouts
//! (character devices 0:0) mark deletions, as do opaque directories: what the lower layers have
//! under one and the upper layer does not is listed as deleted, since `deleted.files` is applied
//! after the tar (podman's order) and must not remove what the tar just wrote. Renamed
//! directories (`redirect_dir`) and metadata-only copies (`metacopy`) are not understood; both
//! are off unless the overlay is mounted asking for them. A root filesystem that is not an overlay has no record
//! of what changed, so all of it is carried and `deleted.files` is empty: the archive must restore
//! on a host that has only the image, and a partial tree would silently lose files.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::archive::{ArchiveWriter, Compression, OverlayMarks, ROOTFS_DIFF_TAR};
use super::unpack::{Destination, Plan, plain_relative, remove_existing, resolve_without_links};
use crate::contract::error::{Error, Result};

/// Where the changes to a root filesystem are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootfsChanges {
    /// An overlay mount: the changes are its upper directory.
    Overlay(OverlayDirs),
    /// Anything else: the whole tree is the change.
    WholeTree {
        /// The root filesystem.
        rootfs: PathBuf,
    },
}

impl RootfsChanges {
    /// How `rootfs` (a bundle's root filesystem) is mounted, from `/proc/self/mountinfo`.
    pub fn of(rootfs: &Path) -> Result<RootfsChanges> {
        let rootfs = fs::canonicalize(rootfs)
            .map_err(|error| Error::io(format!("resolving root filesystem {}", rootfs.display()), error))?;
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|error| Error::io("reading /proc/self/mountinfo", error))?;
        Ok(match overlay_dirs(&mountinfo, &rootfs)? {
            Some(dirs) => RootfsChanges::Overlay(dirs),
            None => RootfsChanges::WholeTree { rootfs },
        })
    }

    /// Writes the changes: `rootfs_diff_tar` (a plain tar, mode 0600) and `deleted_files` (a JSON
    /// array of paths rooted at the container's `/`, as podman writes them, mode 0600). Neither
    /// may exist yet.
    pub fn write(&self, rootfs_diff_tar: &Path, deleted_files: &Path) -> Result<()> {
        let mut writer = ArchiveWriter::create(rootfs_diff_tar, Compression::None)?;
        let mut deleted = BTreeSet::new();
        match self {
            RootfsChanges::Overlay(dirs) => {
                let mut marks = OverlayMarks::default();
                writer.append_tree(Path::new(""), &dirs.upper_dir, Some(&mut marks))?;
                deleted.extend(marks.whiteouts);
                for opaque in &marks.opaque_dirs {
                    deleted.extend(dirs.hidden_under(opaque)?);
                }
            }
            RootfsChanges::WholeTree { rootfs } => writer.add_tree("", rootfs)?,
        }
        writer.finish()?;

        let deleted: Vec<String> = deleted
            .iter()
            .map(|path| Path::new("/").join(path).to_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                Error::io(
                    format!("writing {}", deleted_files.display()),
                    io::Error::new(io::ErrorKind::InvalidData, "a deleted path is not UTF-8, which JSON cannot carry"),
                )
            })?;
        let json = serde_json::to_vec(&deleted).expect("a list of strings always serializes");
        let writing = |error| Error::io(format!("writing {}", deleted_files.display()), error);
        let mut file =
            OpenOptions::new().write(true).create_new(true).mode(0o600).open(deleted_files).map_err(writing)?;
        file.write_all(&json).and_then(|()| file.sync_all()).map_err(writing)
    }
}

/// The directories of an overlay mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayDirs {
    /// `upperdir`: where the container's changes are.
    pub upper_dir: PathBuf,
    /// `lowerdir`, topmost first: the image.
    pub lower_dirs: Vec<PathBuf>,
}

impl OverlayDirs {
    /// What the lower layers have directly under the opaque directory `opaque` (relative to the
    /// root) and the upper layer does not: hidden, so deleted from the container's view.
    fn hidden_under(&self, opaque: &Path) -> Result<Vec<PathBuf>> {
        let mut hidden = Vec::new();
        for lower in &self.lower_dirs {
            let dir = lower.join(opaque);
            if !fs::symlink_metadata(&dir).is_ok_and(|found| found.is_dir()) {
                continue;
            }
            let reading = |error| Error::io(format!("reading {}", dir.display()), error);
            for entry in fs::read_dir(&dir).map_err(reading)? {
                let relative = opaque.join(entry.map_err(reading)?.file_name());
                if fs::symlink_metadata(self.upper_dir.join(&relative)).is_err() {
                    hidden.push(relative);
                }
            }
        }
        Ok(hidden)
    }
}

/// The directories of the overlay mounted at `mount_point`, from the text of a
/// `/proc/<pid>/mountinfo`; `None` when the mount there (the last one, which hides those below)
/// is not an overlay, or is a read-only overlay without an upper directory, or nothing is
/// mounted there. `mount_point` must be canonical, as the kernel prints it.
pub fn overlay_dirs(mountinfo: &str, mount_point: &Path) -> Result<Option<OverlayDirs>> {
    let mut found = None;
    for line in mountinfo.lines().filter(|line| !line.trim().is_empty()) {
        let malformed = |why: &str| Error::parse("/proc/self/mountinfo", format!("{why} in line {line:?}"));
        let fields: Vec<&str> = line.split(' ').collect();
        let at = fields.get(4).ok_or_else(|| malformed("no mount point"))?;
        if unescape(at) != mount_point.as_os_str() {
            continue;
        }
        // After the optional fields, a lone `-`, then the filesystem type, the source and the
        // superblock options (where overlayfs shows its directories).
        let separator = fields.iter().skip(6).position(|field| *field == "-").ok_or_else(|| malformed("no `-`"))? + 6;
        let (Some(fstype), Some(super_options)) = (fields.get(separator + 1), fields.get(separator + 3)) else {
            return Err(malformed("no filesystem type or superblock options"));
        };
        let option = |name: &str| super_options.split(',').find_map(|option| option.strip_prefix(name));
        found = match (*fstype, option("upperdir=")) {
            ("overlay", Some(upper)) => Some(OverlayDirs {
                upper_dir: PathBuf::from(unescape(upper)),
                lower_dirs: option("lowerdir=")
                    .into_iter()
                    .flat_map(|lower| lower.split(':'))
                    .filter(|lower| !lower.is_empty())
                    .map(|lower| PathBuf::from(unescape(lower)))
                    .collect(),
            }),
            _ => None,
        };
    }
    Ok(found)
}

/// Undoes the kernel's octal escapes (`\040` for a space, `\054` for a comma...).
fn unescape(field: &str) -> OsString {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|digits| digits.iter().all(|digit| (b'0'..=b'7').contains(digit)));
        match (bytes[i], octal) {
            (b'\\', Some(digits)) => {
                let value = digits.iter().fold(0u32, |value, digit| value * 8 + u32::from(digit - b'0'));
                out.push(value as u8);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    OsString::from_vec(out)
}

/// Applies a checkpoint's root filesystem changes to `rootfs`: unpacks `rootfs_diff_tar`, then
/// deletes each path of `deleted_files` (podman's order). Both are checked first, against the
/// archive and against `rootfs` as it is, and refused with nothing changed if an entry would be
/// written or a deletion made through a symbolic link of `rootfs` (a link the container's image
/// has, such as `etc -> /host`, must not lead outside it), or names a path outside `rootfs`.
/// Deleted paths may be written as podman does (`/etc/x`) or without the leading slash.
pub fn apply_rootfs_diff(rootfs_diff_tar: Option<&Path>, deleted_files: Option<&Path>, rootfs: &Path) -> Result<()> {
    let plan = rootfs_diff_tar.map(|tar| Plan::read(tar, Destination::Rootfs)).transpose()?;
    if let Some(plan) = &plan {
        plan.check_destination(rootfs)?;
    }
    let deleted = match deleted_files {
        Some(list) => read_deleted_files(list)?.into_iter().map(|path| (list, path)).collect(),
        None => Vec::new(),
    };
    // Checked against the root filesystem as it is and against what the tar will make of it,
    // then again when deleting, since the tar may have put a symbolic link on the way.
    for (list, path) in &deleted {
        if let Some(link) = plan.as_ref().and_then(|plan| plan.symlink_above(path)) {
            let reason = format!(
                "deleting {} would go through {}, which {ROOTFS_DIFF_TAR} makes a symbolic link",
                path.display(),
                link.display()
            );
            return Err(Error::InvalidArchive { path: list.to_path_buf(), reason });
        }
        deletion_target(rootfs, list, path)?;
    }
    if let Some(plan) = &plan {
        plan.unpack(rootfs)?;
    }
    for (list, path) in &deleted {
        if let Some(full) = deletion_target(rootfs, list, path)? {
            remove_existing(&full).map_err(|error| Error::io(format!("deleting {}", full.display()), error))?;
        }
    }
    Ok(())
}

/// Where the deleted `path` is under `rootfs`, if it is there, reached without following a link.
fn deletion_target(rootfs: &Path, list: &Path, path: &Path) -> Result<Option<PathBuf>> {
    let looking = |error| Error::io(format!("looking at {} in {}", path.display(), rootfs.display()), error);
    match resolve_without_links(rootfs, path).map_err(looking)? {
        Ok(found) => Ok(found),
        Err(blocker) if fs::symlink_metadata(&blocker).is_ok_and(|found| found.is_symlink()) => {
            let reason = format!(
                "deleting {} would go through {}, a symbolic link; nothing is deleted through one",
                path.display(),
                blocker.display()
            );
            Err(Error::InvalidArchive { path: list.to_path_buf(), reason })
        }
        // Under a file: there is nothing to delete.
        Err(_) => Ok(None),
    }
}

/// The paths of a `deleted.files`, relative to the root filesystem.
fn read_deleted_files(list: &Path) -> Result<Vec<PathBuf>> {
    let invalid = |reason: String| Error::InvalidArchive { path: list.to_owned(), reason };
    let text = fs::read(list).map_err(|error| Error::io(format!("reading {}", list.display()), error))?;
    let paths: Vec<String> =
        serde_json::from_slice(&text).map_err(|error| invalid(format!("not a JSON array of paths: {error}")))?;
    paths
        .iter()
        .map(|path| {
            let relative = plain_relative(Path::new(path.trim_start_matches('/')))
                .map_err(|why| invalid(format!("deleted path {path:?} {why}")))?;
            if relative.as_os_str().is_empty() {
                return Err(invalid(format!("deleted path {path:?} names the whole root filesystem")));
            }
            Ok(relative)
        })
        .collect()
}
