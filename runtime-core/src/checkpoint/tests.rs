//! Archives written and read back, archives made by the `tar` command, hostile archives built
//! header by header, and root filesystem changes that need no root (those that do, with
//! whiteouts and a real overlay mount, are testkit's `rootfs_changes` test, gated on root).

use std::collections::BTreeMap;
use std::fs::{self, Permissions};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::*;
use crate::Error;

fn write_file(path: &Path, content: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// Every path under `root` with what it is: file contents, link targets, or a directory mark.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let metadata = fs::symlink_metadata(&path).unwrap();
            let what = if metadata.is_symlink() {
                format!("link to {}", fs::read_link(&path).unwrap().display())
            } else if metadata.is_dir() {
                pending.push(path.clone());
                "dir".to_owned()
            } else {
                format!("file {:?}", String::from_utf8_lossy(&fs::read(&path).unwrap()))
            };
            found.insert(path.strip_prefix(root).unwrap().to_owned(), what);
        }
    }
    found
}

/// Names listed by the `tar` command, an oracle independent of the `tar` crate.
fn tar_listing(archive: &Path) -> Vec<String> {
    let output = Command::new("tar").arg("-tf").arg(archive).output().unwrap();
    assert!(output.status.success(), "tar -tf failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().lines().map(|line| line.trim_end_matches('/').to_owned()).collect()
}

fn run_tar(args: &[&str]) {
    let output = Command::new("tar").args(args).output().unwrap();
    assert!(output.status.success(), "tar {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// A checkpoint directory as a dump leaves it: images of several modes, a subdirectory, and the
/// relative `parent` link of a pre-dump chain.
fn sample_images(root: &Path) -> PathBuf {
    let images = root.join("images");
    write_file(&images.join("pages-1.img"), b"memory pages", 0o600);
    write_file(&images.join("inventory.img"), b"inventory", 0o644);
    write_file(&images.join("tool"), b"#!/bin/sh\n", 0o755);
    write_file(&images.join("sub/descriptors.json"), b"[]", 0o640);
    fs::set_permissions(images.join("sub"), Permissions::from_mode(0o750)).unwrap();
    symlink("../pre-checkpoint", images.join("parent")).unwrap();
    images
}

#[test]
fn archives_round_trip_with_every_compression() {
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let tmp = TempDir::new().unwrap();
        let images = sample_images(tmp.path());
        let pre_images = tmp.path().join("pre");
        write_file(&pre_images.join("pages-1.img"), b"older pages", 0o600);
        write_file(&tmp.path().join("config.dump"), b"{\"id\":\"c1\"}", 0o644);
        let archive = tmp.path().join("export.tar");

        let mut writer = ArchiveWriter::create(&archive, compression).unwrap();
        writer.add_tree(CHECKPOINT_DIR, &images).unwrap();
        writer.add_tree(PRE_CHECKPOINT_DIR, &pre_images).unwrap();
        writer.add_bytes(SPEC_DUMP, b"{\"ociVersion\":\"1.0.2\"}").unwrap();
        writer.add_file(CONFIG_DUMP, &tmp.path().join("config.dump")).unwrap();
        writer.finish().unwrap();
        assert_eq!(mode_of(&archive), 0o600, "{compression:?}");
        assert_eq!(Compression::detect(&archive).unwrap(), compression);

        let into = tmp.path().join("into");
        fs::create_dir(&into).unwrap();
        import(&archive, &into).unwrap();
        let checkpoint = into.join("checkpoint");
        assert_eq!(fs::read(checkpoint.join("pages-1.img")).unwrap(), b"memory pages");
        assert_eq!(fs::read(checkpoint.join("inventory.img")).unwrap(), b"inventory");
        assert_eq!(fs::read(checkpoint.join("sub/descriptors.json")).unwrap(), b"[]");
        assert_eq!(fs::read(into.join("pre-checkpoint/pages-1.img")).unwrap(), b"older pages");
        assert_eq!(fs::read(into.join("spec.dump")).unwrap(), b"{\"ociVersion\":\"1.0.2\"}");
        assert_eq!(fs::read(into.join("config.dump")).unwrap(), b"{\"id\":\"c1\"}");
        assert_eq!(mode_of(&checkpoint.join("pages-1.img")), 0o600);
        assert_eq!(mode_of(&checkpoint.join("inventory.img")), 0o644);
        assert_eq!(mode_of(&checkpoint.join("tool")), 0o755);
        assert_eq!(mode_of(&checkpoint.join("sub")), 0o750);
        assert_eq!(mode_of(&checkpoint.join("sub/descriptors.json")), 0o640);
        assert_eq!(mode_of(&into.join("spec.dump")), 0o600);
        assert_eq!(fs::read_link(checkpoint.join("parent")).unwrap(), Path::new("../pre-checkpoint"));
        // The link works where it landed.
        assert_eq!(fs::read(checkpoint.join("parent/pages-1.img")).unwrap(), b"older pages");
    }
}

#[test]
fn the_archive_file_is_never_overwritten() {
    let tmp = TempDir::new().unwrap();
    let archive = tmp.path().join("export.tar.zst");
    fs::write(&archive, b"precious").unwrap();
    let error = ArchiveWriter::create(&archive, Compression::Zstd).unwrap_err();
    assert!(matches!(error, Error::Io { .. }), "{error}");
    assert_eq!(fs::read(&archive).unwrap(), b"precious");
}

fn tar_supports_zstd() -> bool {
    let help = Command::new("tar").arg("--help").output().unwrap();
    String::from_utf8_lossy(&help.stdout).contains("--zstd")
}

#[test]
fn compression_is_detected_on_archives_made_by_the_tar_command_and_they_import() {
    assert!(tar_supports_zstd(), "this host's tar has --zstd (GNU tar 1.31 and later)");
    let tmp = TempDir::new().unwrap();
    let source = tmp.path().join("source");
    write_file(&source.join("spec.dump"), b"spec", 0o600);
    write_file(&source.join("checkpoint/core-1.img"), b"core", 0o600);
    let source_arg = source.to_str().unwrap();
    for (name, flag, expected) in [
        ("plain.tar", "-cf", Compression::None),
        ("gzip.tar.gz", "-czf", Compression::Gzip),
        ("zstd.tar.zst", "--zstd", Compression::Zstd),
    ] {
        let archive = tmp.path().join(name);
        let archive_arg = archive.to_str().unwrap();
        match flag {
            "--zstd" => run_tar(&["--zstd", "-cf", archive_arg, "-C", source_arg, "."]),
            flag => run_tar(&[flag, archive_arg, "-C", source_arg, "."]),
        }
        assert_eq!(Compression::detect(&archive).unwrap(), expected, "{name}");

        let into = tmp.path().join(format!("into-{name}"));
        fs::create_dir(&into).unwrap();
        import(&archive, &into).unwrap();
        assert_eq!(fs::read(into.join("checkpoint/core-1.img")).unwrap(), b"core", "{name}");
        assert_eq!(fs::read(into.join("spec.dump")).unwrap(), b"spec", "{name}");
    }
}

#[test]
fn a_short_file_is_a_plain_tar() {
    assert_eq!(Compression::from_magic(b""), Compression::None);
    assert_eq!(Compression::from_magic(&[0x1f]), Compression::None);
    assert_eq!(Compression::from_magic(&[0x28, 0xb5, 0x2f]), Compression::None);
    assert_eq!(Compression::from_magic(&[0x1f, 0x8b, 0x08]), Compression::Gzip);
    assert_eq!(Compression::from_magic(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Compression::Zstd);
    assert_eq!(Compression::default(), Compression::Zstd, "podman's default");
}

/// A tar built header by header, so it can hold what `tar::Builder` refuses to write.
#[derive(Default)]
struct RawTar(Vec<u8>);

impl RawTar {
    fn entry(mut self, name: &str, entry_type: tar::EntryType, link: &str, data: &[u8]) -> Self {
        let mut header = tar::Header::new_gnu();
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(entry_type);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.0.extend_from_slice(header.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().next_multiple_of(512), 0);
        self
    }

    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name, tar::EntryType::Regular, "", data)
    }

    fn dir(self, name: &str) -> Self {
        self.entry(name, tar::EntryType::Directory, "", b"")
    }

    fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name, tar::EntryType::Symlink, target, b"")
    }

    /// A complete checkpoint archive with the entries so far.
    fn checkpoint(self) -> Self {
        self.file("spec.dump", b"{}").dir("checkpoint/").file("checkpoint/core-1.img", b"core")
    }

    fn end(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0; 1024]);
        self.0
    }
}

/// Imports `bytes` into an empty directory deep inside a temp dir and checks that it is
/// refused, naming `expected`, with nothing written anywhere in the temp dir.
fn assert_refused(what: &str, bytes: &[u8], expected: &str) {
    let tmp = TempDir::new().unwrap();
    let into = tmp.path().join("a/b/scratch");
    fs::create_dir_all(&into).unwrap();
    write_file(&tmp.path().join("sentinel"), b"untouched", 0o644);
    let archive = tmp.path().join("hostile.tar");
    fs::write(&archive, bytes).unwrap();
    let before = snapshot(tmp.path());

    let error = import(&archive, &into).expect_err(what);
    match &error {
        Error::InvalidArchive { path, reason } => {
            assert_eq!(path, &archive, "{what}");
            assert!(reason.contains(expected), "{what}: {reason:?} does not mention {expected:?}");
        }
        other => panic!("{what}: not InvalidArchive: {other}"),
    }
    assert_eq!(fs::read_dir(&into).unwrap().count(), 0, "{what}: the scratch dir is not empty");
    assert_eq!(snapshot(tmp.path()), before, "{what}: something was written");
    assert!(!Path::new("/evil").exists(), "{what}");
}

#[test]
fn hostile_archives_are_refused_before_anything_is_written() {
    let outside = TempDir::new().unwrap();
    let absolute = format!("{}/evil", outside.path().display());
    assert_refused("parent", &RawTar::default().checkpoint().file("../evil", b"x").end(), "\"../evil\"");
    assert_refused("absolute", &RawTar::default().checkpoint().file(&absolute, b"x").end(), "absolute path");
    assert_refused("/evil", &RawTar::default().checkpoint().file("/evil", b"x").end(), "absolute path");
    assert_refused("climb", &RawTar::default().checkpoint().file("a/../../evil", b"x").end(), "`..`");
    assert_refused(
        "link to /etc, then through it",
        &RawTar::default().checkpoint().symlink("link", "/etc").file("link/passwd", b"x").end(),
        "absolute path /etc",
    );
    assert_refused(
        "a file under a link inside the archive",
        &RawTar::default().checkpoint().symlink("link", "checkpoint").file("link/x", b"x").end(),
        "lies under \"link\", which is a symbolic link",
    );
    assert_refused(
        "the link comes after the file under it",
        &RawTar::default().checkpoint().file("link/x", b"x").symlink("link", "checkpoint").end(),
        "which is a symbolic link",
    );
    assert_refused("up", &RawTar::default().checkpoint().symlink("up", "../..").end(), "leads out of the archive");
    assert_refused(
        "deep up",
        &RawTar::default().checkpoint().symlink("checkpoint/up", "../../x").end(),
        "leads out of the archive",
    );
    assert_refused(
        "up after a name",
        &RawTar::default().checkpoint().symlink("checkpoint/up", "sub/../../..").end(),
        "goes up after a name",
    );
    assert_refused(
        "hard link",
        &RawTar::default().checkpoint().entry("hard", tar::EntryType::Link, "spec.dump", b"").end(),
        "a hard link",
    );
    assert_refused(
        "device",
        &RawTar::default().checkpoint().entry("dev", tar::EntryType::Char, "", b"").end(),
        "a character device",
    );
    assert_refused("fifo", &RawTar::default().checkpoint().entry("p", tar::EntryType::Fifo, "", b"").end(), "a fifo");
    assert_refused(
        "twice",
        &RawTar::default().checkpoint().file("checkpoint/core-1.img", b"other").end(),
        "more than once",
    );
    assert_refused(
        "under a file",
        &RawTar::default().checkpoint().file("spec.dump/x", b"x").end(),
        "which is a regular file",
    );
    assert_refused(
        "no spec",
        &RawTar::default().dir("checkpoint/").file("checkpoint/core-1.img", b"core").end(),
        "no spec.dump",
    );
    assert_refused("no images", &RawTar::default().file("spec.dump", b"{}").end(), "no checkpoint/");
    assert_refused(
        "images as a file",
        &RawTar::default().file("spec.dump", b"{}").file("checkpoint", b"").end(),
        "no checkpoint/",
    );
}

/// A good archive of some size, written by this module, as bytes.
fn good_archive(compression: Compression) -> Vec<u8> {
    let tmp = TempDir::new().unwrap();
    let images = sample_images(tmp.path());
    let noise: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    write_file(&images.join("pages-2.img"), &noise, 0o600);
    let archive = tmp.path().join("good");
    let mut writer = ArchiveWriter::create(&archive, compression).unwrap();
    writer.add_tree(CHECKPOINT_DIR, &images).unwrap();
    writer.add_bytes(SPEC_DUMP, b"{}").unwrap();
    writer.finish().unwrap();
    fs::read(&archive).unwrap()
}

#[test]
fn truncated_archives_are_refused() {
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let bytes = good_archive(compression);
        assert_refused(&format!("{compression:?} cut in half"), &bytes[..bytes.len() / 2], "");
        assert_refused(&format!("{compression:?} without its last byte"), &bytes[..bytes.len() - 1], "");
    }
    // Cut exactly where the end-of-archive marker (two zero blocks) begins: every entry whole.
    let plain = good_archive(Compression::None);
    let end = plain.len() - plain.iter().rev().take_while(|byte| **byte == 0).count();
    let at_block = end.next_multiple_of(512);
    assert_refused("plain without its end marker", &plain[..at_block], "truncated");
}

#[test]
fn a_header_with_a_field_that_is_not_a_number_is_refused() {
    let mut bytes = RawTar::default().checkpoint().end();
    // The uid field of the first header, then the checksum made right again.
    let mut header = tar::Header::from_byte_slice(&bytes[..512]).clone();
    header.as_gnu_mut().unwrap().uid = *b"banana\0\0";
    header.set_cksum();
    bytes[..512].copy_from_slice(header.as_bytes());
    assert_refused("uid", &bytes, "malformed header");
}

#[test]
fn a_corrupt_archive_is_refused() {
    let mut bytes = good_archive(Compression::Gzip);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    assert_refused("gzip with a flipped byte", &bytes, "cannot be read");
}

#[test]
fn import_wants_an_empty_directory() {
    let tmp = TempDir::new().unwrap();
    let archive = tmp.path().join("a.tar");
    fs::write(&archive, RawTar::default().checkpoint().end()).unwrap();
    let into = tmp.path().join("into");
    write_file(&into.join("already"), b"here", 0o600);
    let error = import(&archive, &into).unwrap_err();
    assert!(matches!(&error, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::DirectoryNotEmpty));
    assert_eq!(fs::read_dir(&into).unwrap().count(), 1);
}

#[test]
fn a_directory_travels_as_a_plain_tar() {
    let tmp = TempDir::new().unwrap();
    let shm = tmp.path().join("shm");
    write_file(&shm.join("segment"), b"shared", 0o600);
    write_file(&shm.join("dir/other"), b"more", 0o644);
    symlink("segment", shm.join("alias")).unwrap();
    let tar_path = tmp.path().join(DEVSHM_CHECKPOINT_TAR);
    tar_directory(&shm, &tar_path).unwrap();
    assert_eq!(mode_of(&tar_path), 0o600);
    assert_eq!(Compression::detect(&tar_path).unwrap(), Compression::None);
    let mut listed = tar_listing(&tar_path);
    listed.sort();
    assert_eq!(listed, ["alias", "dir", "dir/other", "segment"]);

    let into = tmp.path().join("restored");
    fs::create_dir(&into).unwrap();
    untar_directory(&tar_path, &into).unwrap();
    assert_eq!(snapshot(&into), snapshot(&shm));
    assert_eq!(mode_of(&into.join("segment")), 0o600);
    assert_eq!(mode_of(&into.join("dir/other")), 0o644);
}

#[test]
fn a_tree_with_a_fifo_is_not_archived() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("dir");
    fs::create_dir(&dir).unwrap();
    nix::unistd::mkfifo(&dir.join("pipe"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let error = tar_directory(&dir, &tmp.path().join("out.tar")).unwrap_err();
    assert!(error.to_string().contains("a fifo"), "{error}");
}

const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
100 22 0:50 / /var/lib/x/my\\040root rw,relatime shared:60 - overlay overlay rw,lowerdir=/l1:/l2,upperdir=/var/lib/up\\040dir,workdir=/var/lib/work
101 22 0:51 / /mnt/plain rw - tmpfs tmpfs rw
102 22 0:52 / /stacked rw - overlay overlay rw,lowerdir=/a,upperdir=/u1,workdir=/w1
103 102 0:53 / /stacked rw - tmpfs tmpfs rw
104 22 0:54 / /under rw - tmpfs tmpfs rw
105 104 0:55 / /under rw master:3 - overlay overlay rw,lowerdir=/a,upperdir=/u\\0542,workdir=/w2
106 22 0:56 / /ro rw - overlay overlay ro,lowerdir=/a:/b
";

#[test]
fn mountinfo_gives_the_upper_dir_of_the_last_overlay_at_a_mount_point() {
    let upper = |at: &str| overlay_dirs(MOUNTINFO, Path::new(at)).unwrap().map(|dirs| dirs.upper_dir);
    assert_eq!(
        overlay_dirs(MOUNTINFO, Path::new("/var/lib/x/my root")).unwrap(),
        Some(OverlayDirs { upper_dir: "/var/lib/up dir".into(), lower_dirs: vec!["/l1".into(), "/l2".into()] })
    );
    assert_eq!(upper("/var/lib/x/my\\040root"), None, "mount points are compared unescaped");
    assert_eq!(upper("/mnt/plain"), None);
    assert_eq!(upper("/stacked"), None, "the tmpfs mounted later hides the overlay");
    assert_eq!(upper("/under"), Some(PathBuf::from("/u,2")));
    assert_eq!(upper("/ro"), None, "a read-only overlay has no upper dir");
    assert_eq!(upper("/"), None);
    assert_eq!(upper("/elsewhere"), None);

    let broken = overlay_dirs("22 1 254:0 / / rw,relatime ext4 /dev/vda rw\n", Path::new("/")).unwrap_err();
    assert!(matches!(broken, Error::Parse { .. }), "{broken}");
}

fn read_deleted(path: &Path) -> Vec<String> {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_rootfs_that_is_not_an_overlay_is_carried_whole() {
    let tmp = TempDir::new().unwrap();
    let rootfs = tmp.path().join("rootfs");
    write_file(&rootfs.join("etc/hostname"), b"box", 0o644);
    write_file(&rootfs.join("bin/busybox"), b"ELF", 0o755);
    symlink("busybox", rootfs.join("bin/sh")).unwrap();
    let changes = RootfsChanges::of(&rootfs).unwrap();
    assert_eq!(changes, RootfsChanges::WholeTree { rootfs: fs::canonicalize(&rootfs).unwrap() });

    let diff = tmp.path().join(ROOTFS_DIFF_TAR);
    let deleted = tmp.path().join(DELETED_FILES);
    changes.write(&diff, &deleted).unwrap();
    let mut listed = tar_listing(&diff);
    listed.sort();
    assert_eq!(listed, ["bin", "bin/busybox", "bin/sh", "etc", "etc/hostname"]);
    assert!(read_deleted(&deleted).is_empty());

    let fresh = tmp.path().join("fresh");
    fs::create_dir(&fresh).unwrap();
    apply_rootfs_diff(Some(&diff), Some(&deleted), &fresh).unwrap();
    assert_eq!(snapshot(&fresh), snapshot(&rootfs));
    assert_eq!(mode_of(&fresh.join("bin/busybox")), 0o755);
}

#[test]
fn applying_a_diff_never_goes_through_a_symlink_of_the_target() {
    let tmp = TempDir::new().unwrap();
    let host = tmp.path().join("host");
    write_file(&host.join("passwd"), b"host's own", 0o644);
    let rootfs = tmp.path().join("rootfs");
    fs::create_dir(&rootfs).unwrap();
    symlink(&host, rootfs.join("etc")).unwrap();
    let before = snapshot(tmp.path());

    let diff = tmp.path().join("diff.tar");
    fs::write(&diff, RawTar::default().file("etc/passwd", b"evil").file("etc/new", b"evil").end()).unwrap();
    let before_with_diff = snapshot(tmp.path());
    let error = apply_rootfs_diff(Some(&diff), None, &rootfs).unwrap_err();
    assert!(matches!(&error, Error::InvalidArchive { reason, .. } if reason.contains("symbolic link")), "{error}");
    assert_eq!(snapshot(tmp.path()), before_with_diff);

    let deleted = tmp.path().join("deleted.files");
    fs::write(&deleted, br#"["/etc/passwd"]"#).unwrap();
    fs::remove_file(&diff).unwrap();
    let error = apply_rootfs_diff(None, Some(&deleted), &rootfs).unwrap_err();
    assert!(matches!(&error, Error::InvalidArchive { path, .. } if *path == deleted), "{error}");
    fs::remove_file(&deleted).unwrap();
    assert_eq!(snapshot(tmp.path()), before);

    let outside = tmp.path().join("deleted.files");
    fs::write(&outside, br#"["/../host/passwd"]"#).unwrap();
    let error = apply_rootfs_diff(None, Some(&outside), &rootfs).unwrap_err();
    assert!(matches!(&error, Error::InvalidArchive { reason, .. } if reason.contains("`..`")), "{error}");
    assert_eq!(fs::read(host.join("passwd")).unwrap(), b"host's own");
}

#[test]
fn a_deletion_under_a_symlink_the_diff_makes_is_refused() {
    let tmp = TempDir::new().unwrap();
    let host = tmp.path().join("host");
    write_file(&host.join("x"), b"host's own", 0o644);
    let rootfs = tmp.path().join("rootfs");
    write_file(&rootfs.join("var/x"), b"container's", 0o644);
    let diff = tmp.path().join("diff.tar");
    fs::write(&diff, RawTar::default().symlink("var", host.to_str().unwrap()).end()).unwrap();
    let deleted = tmp.path().join("deleted.files");
    fs::write(&deleted, br#"["/var/x"]"#).unwrap();
    let before = snapshot(tmp.path());

    let error = apply_rootfs_diff(Some(&diff), Some(&deleted), &rootfs).unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArchive { path, reason } if *path == deleted && reason.contains("makes a symbolic link")),
        "{error}"
    );
    assert_eq!(snapshot(tmp.path()), before);
}
