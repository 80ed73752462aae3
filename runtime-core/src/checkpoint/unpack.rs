//! Unpacking tars that came from elsewhere, in two passes.
//!
//! An archive is refused before anything is written, so a hostile or damaged one leaves no half
//! state behind: the first pass reads every header and the whole stream (a truncated or corrupt
//! archive fails there) and checks each entry; only then does the second pass write, entry by entry,
//! to paths built from the checked components, creating missing directories itself and never
//! following a symbolic link on the way. `tar::Archive::unpack` is not used: it follows symlinks
//! already present in the destination, which a container's root filesystem is full of.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt, fchown, lchown};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use tar::EntryType;

use super::archive::open_decoded;
use crate::contract::error::{Error, Result};

/// The size of a tar block: headers and padded data come in these.
const BLOCK: u64 = 512;

/// Where a tar is unpacked, which decides what it may hold and what of its headers is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Destination {
    /// A directory created empty for this archive. Symbolic links must stay inside the archive;
    /// owners are not kept (the files belong to whoever imports them), nor are set-id bits.
    Scratch,
    /// A container's root filesystem. Entries replace what is there; owners and set-id bits are
    /// kept. Symbolic link targets are the container's own business (absolute ones are normal in
    /// images): they are stored, and neither this code nor the checks ever follow them.
    Rootfs,
}

impl Destination {
    /// The mode of a directory the archive does not list but one of its entries lies in.
    fn implied_dir_mode(self) -> u32 {
        match self {
            Destination::Scratch => 0o700,
            Destination::Rootfs => 0o755,
        }
    }
}

/// What an entry is, with what the checks need of it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink(PathBuf),
}

/// One checked entry: its path relative to the destination, made of plain names only.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checked {
    path: PathBuf,
    kind: Kind,
}

/// The first pass's verdict: every entry of a readable, complete archive, checked.
#[derive(Debug)]
pub(crate) struct Plan {
    archive: PathBuf,
    destination: Destination,
    entries: Vec<Checked>,
}

/// Counts what the tar reader consumed, to tell a complete archive from one cut at a block
/// boundary (which the `tar` crate takes for a normal end).
struct Counting<R> {
    inner: R,
    consumed: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.consumed += read as u64;
        Ok(read)
    }
}

impl Plan {
    /// First pass: reads `archive` to its end and checks every entry for `destination`.
    pub(crate) fn read(archive: &Path, destination: Destination) -> Result<Plan> {
        let invalid = |reason: String| Error::InvalidArchive { path: archive.to_owned(), reason };
        let unreadable = |error: io::Error| invalid(format!("cannot be read: {error}"));

        let mut tar = tar::Archive::new(Counting { inner: open_decoded(archive)?, consumed: 0 });
        let mut entries = Vec::new();
        let mut end_of_last_entry = 0;
        for entry in tar.entries().map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            end_of_last_entry = entry.raw_file_position() + entry.size().next_multiple_of(BLOCK);
            if let Some(checked) = check_entry(&entry, destination).map_err(invalid)? {
                entries.push(checked);
            }
        }
        // The `tar` crate stops at the first zero block, and at the end of the stream between two
        // entries: the end-of-archive marker, two zero blocks, is checked here.
        let mut rest = tar.into_inner();
        let mut second_block = Vec::with_capacity(BLOCK as usize);
        (&mut rest).take(BLOCK).read_to_end(&mut second_block).map_err(unreadable)?;
        let marked = rest.consumed == end_of_last_entry + 2 * BLOCK
            && second_block.len() == BLOCK as usize
            && second_block.iter().all(|byte| *byte == 0);
        if !marked {
            return Err(invalid(
                "does not end with the end-of-archive marker (two zero blocks): it is truncated".into(),
            ));
        }
        // Reading to the end makes the decoder check its trailer (gzip's CRC, zstd's frame end).
        io::copy(&mut rest, &mut io::sink()).map_err(unreadable)?;

        check_tree(&entries).map_err(invalid)?;
        Ok(Plan { archive: archive.to_owned(), destination, entries })
    }

    /// Whether the archive holds a regular file at `path`.
    pub(crate) fn has_file(&self, path: &str) -> bool {
        self.entries.iter().any(|entry| entry.path == Path::new(path) && entry.kind == Kind::File)
    }

    /// Whether unpacking the archive makes a directory at `path`, listed or implied by an entry in it.
    pub(crate) fn has_dir(&self, path: &str) -> bool {
        let path = Path::new(path);
        self.entries.iter().any(|entry| {
            (entry.path == path && entry.kind == Kind::Dir) || (entry.path != path && entry.path.starts_with(path))
        })
    }

    /// The symbolic link of the archive that `path` lies under, if any.
    pub(crate) fn symlink_above<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        path.ancestors().skip(1).find(|ancestor| {
            self.entries.iter().any(|entry| entry.path == *ancestor && matches!(entry.kind, Kind::Symlink(_)))
        })
    }

    /// The error for this archive.
    pub(crate) fn invalid(&self, reason: String) -> Error {
        Error::InvalidArchive { path: self.archive.clone(), reason }
    }

    /// Checks that nothing in `root` as it is now would lead a write astray: no entry may lie under
    /// a symbolic link of the destination, nor under another non-directory the archive does not
    /// replace with a directory.
    pub(crate) fn check_destination(&self, root: &Path) -> Result<()> {
        for entry in &self.entries {
            let resolved = resolve_without_links(root, &entry.path)
                .map_err(|error| Error::io(format!("looking at {}", root.join(&entry.path).display()), error))?;
            let Err(blocker) = resolved else { continue };
            let is_link = fs::symlink_metadata(&blocker).is_ok_and(|found| found.is_symlink());
            let replaced = blocker.strip_prefix(root).is_ok_and(|relative| {
                self.entries.iter().any(|other| other.path == relative && other.kind == Kind::Dir)
            });
            if is_link || !replaced {
                let what = if is_link { "a symbolic link; nothing is written through one" } else { "not a directory" };
                return Err(self.invalid(format!(
                    "entry {:?} would be written under {}, which is {what}",
                    entry.path,
                    blocker.display()
                )));
            }
        }
        Ok(())
    }

    /// Second pass: writes the checked entries under `root`. A `Scratch` root must be empty.
    pub(crate) fn unpack(&self, root: &Path) -> Result<()> {
        let mut tar = tar::Archive::new(open_decoded(&self.archive)?);
        let mut planned = self.entries.iter();
        // Directories get their mode once everything inside them is written, deepest first, so a
        // read-only directory does not stop its own contents.
        let mut directories = Vec::new();
        let changed = || self.invalid("changed while it was being unpacked".into());
        for entry in tar.entries().map_err(|_| changed())? {
            let mut entry = entry.map_err(|_| changed())?;
            let checked = match check_entry(&entry, self.destination) {
                Ok(Some(checked)) => checked,
                Ok(None) => continue,
                Err(_) => return Err(changed()),
            };
            if planned.next() != Some(&checked) {
                return Err(changed());
            }
            let destination = root.join(&checked.path);
            let written = self.write_entry(&mut entry, root, &checked, &mut directories);
            written.map_err(|error| {
                Error::io(
                    format!(
                        "unpacking {:?} from {} to {}",
                        checked.path,
                        self.archive.display(),
                        destination.display()
                    ),
                    error,
                )
            })?;
        }
        if planned.next().is_some() {
            return Err(changed());
        }
        for (path, header) in directories.iter().rev() {
            self.set_owner_and_mode(path, header, None)
                .map_err(|error| Error::io(format!("setting the mode of {}", path.display()), error))?;
        }
        Ok(())
    }

    fn write_entry<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        root: &Path,
        checked: &Checked,
        directories: &mut Vec<(PathBuf, tar::Header)>,
    ) -> io::Result<()> {
        let path = make_parents(root, &checked.path, self.destination.implied_dir_mode())?;
        match &checked.kind {
            Kind::Dir => {
                match fs::symlink_metadata(&path) {
                    Ok(found) if found.is_dir() => {}
                    Ok(_) => {
                        fs::remove_file(&path)?;
                        DirBuilder::new().mode(0o700).create(&path)?;
                    }
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        DirBuilder::new().mode(0o700).create(&path)?
                    }
                    Err(error) => return Err(error),
                }
                directories.push((path, entry.header().clone()));
            }
            Kind::Symlink(target) => {
                remove_existing(&path)?;
                std::os::unix::fs::symlink(target, &path)?;
                if self.destination == Destination::Rootfs {
                    let header = entry.header();
                    lchown(&path, Some(header.uid()? as u32), Some(header.gid()? as u32))?;
                }
            }
            Kind::File => {
                remove_existing(&path)?;
                let header = entry.header().clone();
                // Created no more permissive than the archive says, and written through this
                // descriptor whatever the mode.
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(header.mode()? & 0o777)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)?;
                let written = io::copy(entry, &mut file)?;
                if written != header.size()? {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the entry's data is cut short"));
                }
                self.set_owner_and_mode(&path, &header, Some(&file))?;
                file.set_modified(UNIX_EPOCH + Duration::from_secs(header.mtime()?))?;
            }
        }
        Ok(())
    }

    /// Owner (for a root filesystem) first, then the mode, since changing the owner clears set-id bits.
    fn set_owner_and_mode(&self, path: &Path, header: &tar::Header, file: Option<&fs::File>) -> io::Result<()> {
        let mode = match self.destination {
            Destination::Scratch => header.mode()? & 0o777,
            Destination::Rootfs => {
                let (uid, gid) = (Some(header.uid()? as u32), Some(header.gid()? as u32));
                match file {
                    Some(file) => fchown(file, uid, gid)?,
                    None => lchown(path, uid, gid)?,
                }
                header.mode()? & 0o7777
            }
        };
        match file {
            Some(file) => file.set_permissions(Permissions::from_mode(mode)),
            None => fs::set_permissions(path, Permissions::from_mode(mode)),
        }
    }
}

/// Checks one entry on its own. `Ok(None)` for entries that write nothing: the archive's root
/// directory (`./`) and pax global headers.
fn check_entry<R: Read>(entry: &tar::Entry<'_, R>, destination: Destination) -> Result<Option<Checked>, String> {
    let raw = entry.path_bytes();
    let name = String::from_utf8_lossy(&raw).into_owned();
    let header = entry.header();
    let entry_type = header.entry_type();
    if entry_type == EntryType::XGlobalHeader {
        return Ok(None);
    }
    let path = plain_relative(Path::new(OsStr::from_bytes(&raw))).map_err(|why| format!("entry {name:?} {why}"))?;
    let fields = [header.mode().map(drop), header.uid().map(drop), header.gid().map(drop), header.mtime().map(drop)];
    if let Some(Err(error)) = fields.into_iter().find(Result::is_err) {
        return Err(format!("entry {name:?} has a malformed header: {error}"));
    }
    let kind = match entry_type {
        EntryType::Regular => Kind::File,
        EntryType::Directory => Kind::Dir,
        EntryType::Symlink => {
            let target = entry
                .link_name_bytes()
                .map(|target| PathBuf::from(OsStr::from_bytes(&target)))
                .filter(|target| !target.as_os_str().is_empty())
                .ok_or_else(|| format!("entry {name:?} is a symbolic link without a target"))?;
            if destination == Destination::Scratch {
                check_link_target(&path, &target).map_err(|why| format!("entry {name:?} is a symbolic link {why}"))?;
            }
            Kind::Symlink(target)
        }
        other => {
            return Err(format!(
                "entry {name:?} is {}; only regular files, directories and symbolic links are accepted",
                describe(other)
            ));
        }
    };
    if path.as_os_str().is_empty() {
        return match kind {
            Kind::Dir => Ok(None),
            _ => Err(format!("entry {name:?} names the archive's root but is not a directory")),
        };
    }
    Ok(Some(Checked { path, kind }))
}

/// `path` as plain names, `.` dropped; absolute paths and `..` refused.
pub(crate) fn plain_relative(path: &Path) -> Result<PathBuf, &'static str> {
    let mut plain = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => plain.push(name),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path"),
            Component::ParentDir => return Err("has a `..` component"),
        }
    }
    Ok(plain)
}

/// A link target must be a run of `..` that stays within the archive, then plain names. Names
/// followed by `..` are refused too: what they lead to depends on whether the names are links.
fn check_link_target(link: &Path, target: &Path) -> Result<(), String> {
    let shown = target.display();
    let mut depth = link.components().count() - 1;
    let mut named = false;
    for component in target.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => return Err(format!("to the absolute path {shown}")),
            Component::CurDir => {}
            Component::Normal(_) => named = true,
            Component::ParentDir if named => {
                return Err(format!("to {shown}, which goes up after a name; only leading `..` are accepted"));
            }
            Component::ParentDir if depth == 0 => return Err(format!("to {shown}, which leads out of the archive")),
            Component::ParentDir => depth -= 1,
        }
    }
    Ok(())
}

/// Checks the entries together: no path twice, and none under a symbolic link or a file of the
/// archive (where unpacking would follow the link, or fail half way).
fn check_tree(entries: &[Checked]) -> Result<(), String> {
    let mut kinds = HashMap::with_capacity(entries.len());
    for entry in entries {
        if kinds.insert(entry.path.as_path(), &entry.kind).is_some() {
            return Err(format!("entry {:?} appears more than once", entry.path));
        }
    }
    for entry in entries {
        for ancestor in entry.path.ancestors().skip(1) {
            let what = match kinds.get(ancestor) {
                Some(Kind::Symlink(_)) => "a symbolic link",
                Some(Kind::File) => "a regular file",
                Some(Kind::Dir) | None => continue,
            };
            return Err(format!("entry {:?} lies under {:?}, which is {what} in the archive", entry.path, ancestor));
        }
    }
    Ok(())
}

fn describe(entry_type: EntryType) -> String {
    match entry_type {
        EntryType::Link => "a hard link".into(),
        EntryType::Char => "a character device".into(),
        EntryType::Block => "a block device".into(),
        EntryType::Fifo => "a fifo".into(),
        EntryType::GNUSparse => "a sparse file".into(),
        other => format!("an entry of type {:?}", other.as_byte() as char),
    }
}

/// Creates the missing directories between `root` and `relative`'s last name and returns the
/// full path, refusing to pass through anything but a real directory.
fn make_parents(root: &Path, relative: &Path, implied_mode: u32) -> io::Result<PathBuf> {
    let mut current = root.to_path_buf();
    for component in relative.parent().into_iter().flat_map(Path::components) {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(found) if found.is_dir() => {}
            Ok(found) => {
                let what = if found.is_symlink() { "a symbolic link" } else { "not a directory" };
                return Err(io::Error::other(format!(
                    "{} is {what}; nothing is written through it",
                    current.display()
                )));
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new().mode(implied_mode).create(&current)?
            }
            Err(error) => return Err(error),
        }
    }
    Ok(root.join(relative))
}

/// Removes whatever is at `path` without following it: a directory with its contents, anything
/// else by unlinking.
pub(crate) fn remove_existing(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(found) if found.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Walks `relative` under `root` and returns its full path, unless a component on the way is a
/// symbolic link or not a directory (`Err` with the one found) or missing (`Ok(None)`).
pub(crate) fn resolve_without_links(root: &Path, relative: &Path) -> io::Result<Result<Option<PathBuf>, PathBuf>> {
    let mut current = root.to_path_buf();
    for component in relative.parent().into_iter().flat_map(Path::components) {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(found) if found.is_dir() => {}
            Ok(_) => return Ok(Err(current)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Ok(None)),
            Err(error) => return Err(error),
        }
    }
    Ok(Ok(Some(root.join(relative))))
}
