//! Checkpoint archives: one self-describing file that carries a checkpoint to another place or
//! host, in podman's layout, so either tool can read the other's.
//!
//! At the top of the archive: `checkpoint/` (or `pre-checkpoint/`), CRIU's image directory;
//! `spec.dump`, the bundle's `config.json`; `config.dump`, the engine's record of the container;
//! `stats-dump`; and when there is something to carry, `network.status`,
//! `devshm-checkpoint.tar`, `rootfs-diff.tar` with `deleted.files`. What goes in is the engine's
//! choice; this module writes and reads the file.
//!
//! Archives are streamed (tar, then the compressor, then the file), never held in memory, and the
//! file is created with mode 0600 from the start: it holds the container's memory. An archive
//! read back is checked whole before anything is unpacked from it (see `unpack`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::unpack::{Destination, Plan};
use crate::contract::error::{Error, Result};

/// CRIU's image directory of a checkpoint.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// CRIU's image directory of a pre-checkpoint (a pre-dump), which a later checkpoint's `parent`
/// symlink points to as `../pre-checkpoint`.
pub const PRE_CHECKPOINT_DIR: &str = "pre-checkpoint";
/// The bundle's `config.json`.
pub const SPEC_DUMP: &str = "spec.dump";
/// The engine's record of the container.
pub const CONFIG_DUMP: &str = "config.dump";
/// CRIU's dump statistics.
pub const STATS_DUMP: &str = "stats-dump";
/// The container's network status, to restore it with the same addresses.
pub const NETWORK_STATUS: &str = "network.status";
/// The contents of the container's `/dev/shm`, as a plain tar.
pub const DEVSHM_CHECKPOINT_TAR: &str = "devshm-checkpoint.tar";
/// The files the container changed in its root filesystem, as a plain tar.
pub const ROOTFS_DIFF_TAR: &str = "rootfs-diff.tar";
/// The files the container deleted from its root filesystem, as a JSON array of paths.
pub const DELETED_FILES: &str = "deleted.files";

/// The magic bytes a gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The magic bytes a zstd frame starts with.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How an archive is compressed. podman's default is zstd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (`.tar.gz`).
    Gzip,
    /// zstd (`.tar.zst`), podman's default.
    #[default]
    Zstd,
}

impl Compression {
    /// The compression of a stream that starts with `head`, from its magic bytes; anything
    /// else is taken for a plain tar.
    pub fn from_magic(head: &[u8]) -> Compression {
        if head.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else if head.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else {
            Compression::None
        }
    }

    /// The compression of the archive at `path`.
    pub fn detect(path: &Path) -> Result<Compression> {
        let mut file = open_archive(path)?;
        Ok(Compression::from_magic(&read_head(&mut file, path)?))
    }
}

fn open_archive(path: &Path) -> Result<File> {
    File::open(path).map_err(|error| Error::io(format!("opening checkpoint archive {}", path.display()), error))
}

/// The first bytes of `file`, as many as a magic needs (fewer if the file is shorter).
fn read_head(file: &mut File, path: &Path) -> Result<Vec<u8>> {
    let mut head = Vec::with_capacity(ZSTD_MAGIC.len());
    Read::by_ref(file)
        .take(ZSTD_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(|error| Error::io(format!("reading checkpoint archive {}", path.display()), error))?;
    Ok(head)
}

/// The archive at `path`, decompressed as its magic bytes say.
pub(crate) fn open_decoded(path: &Path) -> Result<Box<dyn Read>> {
    let mut file = open_archive(path)?;
    let compression = Compression::from_magic(&read_head(&mut file, path)?);
    let reading = |error| Error::io(format!("reading checkpoint archive {}", path.display()), error);
    file.rewind().map_err(reading)?;
    Ok(match compression {
        Compression::None => Box::new(BufReader::new(file)),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(BufReader::new(file))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(file).map_err(reading)?),
    })
}

/// The compressor between the tar stream and the file.
enum Encoder {
    None(BufWriter<File>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<File>>),
}

impl Write for Encoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(file) => file.write(buf),
            Encoder::Gzip(encoder) => encoder.write(buf),
            Encoder::Zstd(encoder) => encoder.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(file) => file.flush(),
            Encoder::Gzip(encoder) => encoder.flush(),
            Encoder::Zstd(encoder) => encoder.flush(),
        }
    }
}

impl Encoder {
    /// Ends the compressed stream (gzip's trailer, zstd's last frame) and writes it all to disk.
    fn finish(self) -> io::Result<()> {
        let buffered = match self {
            Encoder::None(file) => file,
            Encoder::Gzip(encoder) => encoder.finish()?,
            Encoder::Zstd(encoder) => encoder.finish()?,
        };
        buffered.into_inner().map_err(io::IntoInnerError::into_error)?.sync_all()
    }
}

/// Writes an archive entry by entry, streaming. Nothing is complete until [`finish`]; an
/// archive dropped before that is cut short (and refused by [`import`]).
///
/// [`finish`]: ArchiveWriter::finish
pub struct ArchiveWriter {
    path: PathBuf,
    builder: tar::Builder<Encoder>,
}

impl std::fmt::Debug for ArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter").field("path", &self.path).finish_non_exhaustive()
    }
}

impl ArchiveWriter {
    /// Creates the archive file at `path` with mode 0600; it must not exist yet.
    pub fn create(path: &Path, compression: Compression) -> Result<ArchiveWriter> {
        let creating = |error| Error::io(format!("creating checkpoint archive {}", path.display()), error);
        let file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(creating)?;
        let file = BufWriter::new(file);
        let encoder = match compression {
            Compression::None => Encoder::None(file),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(file, flate2::Compression::default())),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(file, 0).map_err(creating)?),
        };
        Ok(ArchiveWriter { path: path.to_owned(), builder: tar::Builder::new(encoder) })
    }

    /// Adds the directory tree at `dir` under `name` (`checkpoint`, say): directories, regular
    /// files and symbolic links as they are, with their modes and owners. An empty `name` puts
    /// the directory's contents at the top of the archive. Anything else in the tree (a device,
    /// a fifo, a socket) is an error: an archive holds only what [`import`] accepts. So are
    /// symbolic links that point outside the archive, to [`import`]: CRIU writes the `parent`
    /// link of a dump after a pre-dump as an absolute path, which must be made relative
    /// (`../pre-checkpoint`) before the image directory is added, as podman does.
    pub fn add_tree(&mut self, name: impl AsRef<Path>, dir: &Path) -> Result<()> {
        self.append_tree(name.as_ref(), dir, None)
    }

    /// Adds the file at `file` under `name`, with its mode and owner.
    pub fn add_file(&mut self, name: impl AsRef<Path>, file: &Path) -> Result<()> {
        let name = name.as_ref();
        let metadata = fs::symlink_metadata(file).map_err(|error| self.reading(file, error))?;
        self.append_file(name, file, &metadata)
    }

    /// Adds `bytes` as a regular file under `name`, mode 0600, owned by this process's user.
    pub fn add_bytes(&mut self, name: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o600);
        header.set_uid(nix::unistd::geteuid().as_raw().into());
        header.set_gid(nix::unistd::getegid().as_raw().into());
        header.set_size(bytes.len() as u64);
        header.set_mtime(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs(),
        );
        let name = name.as_ref();
        self.builder.append_data(&mut header, name, bytes).map_err(|error| self.writing(name, error))
    }

    /// Ends the archive (tar's end marker, the compressor's trailer) and syncs the file.
    pub fn finish(self) -> Result<()> {
        let path = self.path;
        let finishing = |error| Error::io(format!("finishing checkpoint archive {}", path.display()), error);
        self.builder.into_inner().map_err(finishing)?.finish().map_err(finishing)
    }

    /// Adds a tree; with `overlay`, `dir` is an overlay's upper directory: its whiteouts
    /// (character devices 0:0) are left out, and they and its opaque directories are collected
    /// there, as paths relative to `dir`.
    pub(crate) fn append_tree(
        &mut self,
        name: &Path,
        dir: &Path,
        mut overlay: Option<&mut OverlayMarks>,
    ) -> Result<()> {
        let metadata = fs::symlink_metadata(dir).map_err(|error| self.reading(dir, error))?;
        if !metadata.is_dir() {
            return Err(self.reading(dir, io::Error::other("not a directory")));
        }
        if !name.as_os_str().is_empty() {
            self.append_header_only(name, dir, &metadata, tar::EntryType::Directory)?;
        }
        // Depth first, names sorted, so the same tree always makes the same archive.
        let mut pending = vec![PathBuf::new()];
        while let Some(relative) = pending.pop() {
            let source = dir.join(&relative);
            let mut children = fs::read_dir(&source)
                .and_then(|entries| {
                    entries.map(|entry| entry.map(|entry| entry.file_name())).collect::<io::Result<Vec<_>>>()
                })
                .map_err(|error| self.reading(&source, error))?;
            children.sort();
            let mut subdirs = Vec::new();
            for child in children {
                let relative = relative.join(child);
                let source = dir.join(&relative);
                let entry_name = name.join(&relative);
                let metadata = fs::symlink_metadata(&source).map_err(|error| self.reading(&source, error))?;
                let file_type = metadata.file_type();
                if file_type.is_dir() {
                    self.append_header_only(&entry_name, &source, &metadata, tar::EntryType::Directory)?;
                    if let Some(overlay) = overlay.as_deref_mut()
                        && is_opaque(&source).map_err(|error| self.reading(&source, error))?
                    {
                        overlay.opaque_dirs.push(relative.clone());
                    }
                    subdirs.push(relative);
                } else if file_type.is_file() {
                    self.append_file(&entry_name, &source, &metadata)?;
                } else if file_type.is_symlink() {
                    self.append_header_only(&entry_name, &source, &metadata, tar::EntryType::Symlink)?;
                } else if let Some(overlay) = overlay.as_deref_mut().filter(|_| is_whiteout(&metadata)) {
                    overlay.whiteouts.push(relative);
                } else {
                    let what = if file_type.is_char_device() || file_type.is_block_device() {
                        "a device"
                    } else if file_type.is_fifo() {
                        "a fifo"
                    } else {
                        "a socket"
                    };
                    let why = format!("{what}; an archive holds only regular files, directories and symbolic links");
                    return Err(self.reading(&source, io::Error::new(io::ErrorKind::InvalidInput, why)));
                }
            }
            pending.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }

    fn append_header_only(
        &mut self,
        name: &Path,
        source: &Path,
        metadata: &fs::Metadata,
        entry_type: tar::EntryType,
    ) -> Result<()> {
        let mut header = header_from(metadata, entry_type);
        match entry_type {
            tar::EntryType::Symlink => {
                let target = fs::read_link(source).map_err(|error| self.reading(source, error))?;
                self.builder.append_link(&mut header, name, target)
            }
            _ => self.builder.append_data(&mut header, name, io::empty()),
        }
        .map_err(|error| self.writing(name, error))
    }

    fn append_file(&mut self, name: &Path, source: &Path, metadata: &fs::Metadata) -> Result<()> {
        if !metadata.is_file() {
            return Err(self.reading(source, io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")));
        }
        let file = File::open(source).map_err(|error| self.reading(source, error))?;
        let mut header = header_from(metadata, tar::EntryType::Regular);
        header.set_size(metadata.len());
        // A file that changes size while it is read would make a corrupt archive: take exactly the
        // size in the header, and refuse if fewer bytes came.
        let mut data = file.take(metadata.len());
        self.builder.append_data(&mut header, name, &mut data).map_err(|error| self.writing(name, error))?;
        if data.limit() != 0 {
            return Err(
                self.reading(source, io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while it was read"))
            );
        }
        Ok(())
    }

    fn reading(&self, source: &Path, error: io::Error) -> Error {
        Error::io(format!("adding {} to checkpoint archive {}", source.display(), self.path.display()), error)
    }

    fn writing(&self, name: &Path, error: io::Error) -> Error {
        Error::io(format!("writing {} to checkpoint archive {}", name.display(), self.path.display()), error)
    }
}

/// A tar header carrying `metadata`'s mode, owner and modification time.
fn header_from(metadata: &fs::Metadata, entry_type: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(metadata, tar::HeaderMode::Complete);
    header.set_entry_type(entry_type);
    header.set_size(0);
    header
}

/// What overlayfs marks in an upper directory besides the files themselves.
#[derive(Debug, Default)]
pub(crate) struct OverlayMarks {
    /// Deleted lower files and directories.
    pub(crate) whiteouts: Vec<PathBuf>,
    /// Directories that hide everything the lower layers have under them (a directory removed
    /// and made again).
    pub(crate) opaque_dirs: Vec<PathBuf>,
}

/// overlayfs marks a deleted lower file with a character device 0:0 in the upper directory.
fn is_whiteout(metadata: &fs::Metadata) -> bool {
    metadata.file_type().is_char_device() && metadata.rdev() == 0
}

/// Whether overlayfs marked the upper directory `dir` opaque: `y` in `trusted.overlay.opaque`,
/// or `user.overlay.opaque` on mounts with `userxattr` (rootless).
fn is_opaque(dir: &Path) -> io::Result<bool> {
    for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        let mut value = [0u8; 1];
        match rustix::fs::lgetxattr(dir, name, &mut value[..]) {
            Ok(1) if value == *b"y" => return Ok(true),
            Ok(_) => {}
            Err(rustix::io::Errno::NODATA | rustix::io::Errno::RANGE | rustix::io::Errno::OPNOTSUPP) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(false)
}

/// Unpacks the checkpoint archive `archive` into `into`, a directory the caller created empty
/// (mode 0700). The whole archive is read and checked first; it is refused, with nothing
/// written, if it is damaged or truncated, lacks `spec.dump` or `checkpoint/`, or holds an entry
/// that is not a regular file, directory or symbolic link, an absolute path or a `..`, a path
/// twice or under a symbolic link, or a symbolic link that points out of the archive.
pub fn import(archive: &Path, into: &Path) -> Result<()> {
    let plan = Plan::read(archive, Destination::Scratch)?;
    if !plan.has_file(SPEC_DUMP) {
        return Err(plan.invalid(format!("it has no {SPEC_DUMP}")));
    }
    if !plan.has_dir(CHECKPOINT_DIR) {
        return Err(plan.invalid(format!("it has no {CHECKPOINT_DIR}/ directory")));
    }
    unpack_into_empty(&plan, into)
}

/// Tars the directory `dir` (its contents at the top) into a new plain tar at `tar_path`, mode
/// 0600: how `/dev/shm` travels as `devshm-checkpoint.tar`.
pub fn tar_directory(dir: &Path, tar_path: &Path) -> Result<()> {
    let mut writer = ArchiveWriter::create(tar_path, Compression::None)?;
    writer.add_tree("", dir)?;
    writer.finish()
}

/// Unpacks a tar written by [`tar_directory`] (or any tar of plain files) into `into`, an empty
/// directory, with the same checks as [`import`] apart from its required entries.
pub fn untar_directory(tar_path: &Path, into: &Path) -> Result<()> {
    let plan = Plan::read(tar_path, Destination::Scratch)?;
    unpack_into_empty(&plan, into)
}

fn unpack_into_empty(plan: &Plan, into: &Path) -> Result<()> {
    let looking = |error| Error::io(format!("unpacking into {}", into.display()), error);
    if fs::read_dir(into).map_err(looking)?.next().is_some() {
        return Err(looking(io::Error::new(io::ErrorKind::DirectoryNotEmpty, "the directory is not empty")));
    }
    plan.unpack(into)
}
