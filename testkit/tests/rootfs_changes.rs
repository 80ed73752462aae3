//! A checkpoint's root filesystem changes where making them takes root: overlay whiteouts are
//! character devices (mknod needs `CAP_MKNOD`), a real overlay needs a mount, and a diff
//! unpacked with its owners keeps root's ownership. Run through the testkit harness so that,
//! without root, each is reported skipped with its reason instead of failing.

use std::collections::BTreeMap;
use std::fs::{self, Permissions};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, ensure};
use runtime_core::checkpoint::{DELETED_FILES, OverlayDirs, ROOTFS_DIFF_TAR, RootfsChanges, apply_rootfs_diff};
use tempfile::TempDir;
use testkit::harness::{CaseResult, Ran};

/// Why this host cannot run a case that needs root, if it cannot.
fn without_root(what: &str) -> Option<CaseResult> {
    (!nix::unistd::geteuid().is_root()).then(|| Ok(Ran::Skipped(format!("{what} needs root"))))
}

fn write_file(path: &Path, content: &[u8], mode: u32) -> anyhow::Result<()> {
    fs::create_dir_all(path.parent().context("a parent")?)?;
    fs::write(path, content)?;
    fs::set_permissions(path, Permissions::from_mode(mode))?;
    Ok(())
}

fn mode_of(path: &Path) -> anyhow::Result<u32> {
    Ok(fs::symlink_metadata(path)?.mode() & 0o7777)
}

/// Every path under `root` with what it is: file contents, link targets, or a directory mark.
fn snapshot(root: &Path) -> anyhow::Result<BTreeMap<PathBuf, String>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let metadata = fs::symlink_metadata(&path)?;
            let what = if metadata.is_symlink() {
                format!("link to {}", fs::read_link(&path)?.display())
            } else if metadata.is_dir() {
                pending.push(path.clone());
                "dir".to_owned()
            } else {
                format!("file {:?}", String::from_utf8_lossy(&fs::read(&path)?))
            };
            found.insert(path.strip_prefix(root)?.to_owned(), what);
        }
    }
    Ok(found)
}

/// Runs the `tar` command, an oracle independent of the `tar` crate; its stdout.
fn run_tar(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("tar").args(args).output()?;
    ensure!(output.status.success(), "tar {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8(output.stdout)?)
}

/// Names listed by `tar -tf`, sorted.
fn tar_listing(archive: &Path) -> anyhow::Result<Vec<String>> {
    let listing = run_tar(&["-tf", archive.to_str().context("a UTF-8 path")?])?;
    let mut names: Vec<String> = listing.lines().map(|line| line.trim_end_matches('/').to_owned()).collect();
    names.sort();
    Ok(names)
}

fn read_deleted(path: &Path) -> anyhow::Result<Vec<String>> {
    let mut deleted: Vec<String> = serde_json::from_slice(&fs::read(path)?)?;
    deleted.sort();
    Ok(deleted)
}

/// An overlay upper dir as a container leaves it, and the lower tree it changed.
fn upper_and_lower(root: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let lower = root.join("lower");
    write_file(&lower.join("etc/hostname"), b"old", 0o644)?;
    write_file(&lower.join("gone"), b"to be deleted", 0o644)?;
    write_file(&lower.join("var/gone-dir/inside"), b"x", 0o644)?;
    write_file(&lower.join("keep"), b"kept", 0o644)?;
    let upper = root.join("upper");
    write_file(&upper.join("etc/hostname"), b"new", 0o644)?;
    write_file(&upper.join("etc/added.conf"), b"added", 0o600)?;
    fs::create_dir_all(upper.join("var"))?;
    fs::create_dir_all(upper.join("bin"))?;
    symlink("/bin/busybox", upper.join("bin/sh"))?;
    // `opt` removed and made again: opaque, hiding old1; old2 written anew.
    write_file(&lower.join("opt/old1"), b"hidden", 0o644)?;
    write_file(&lower.join("opt/old2"), b"replaced", 0o644)?;
    write_file(&upper.join("opt/old2"), b"anew", 0o644)?;
    rustix::fs::lsetxattr(upper.join("opt"), "trusted.overlay.opaque", b"y", rustix::fs::XattrFlags::empty())?;
    for whiteout in [upper.join("gone"), upper.join("var/gone-dir")] {
        let (kind, mode) = (nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::from_bits_truncate(0o000));
        nix::sys::stat::mknod(&whiteout, kind, mode, 0)?;
    }
    Ok((upper, lower))
}

async fn an_overlay_upper_dir_becomes_a_diff_and_its_whiteouts_deletions() -> CaseResult {
    if let Some(skipped) = without_root("making overlay whiteouts (character devices)") {
        return skipped;
    }
    let tmp = TempDir::new()?;
    let (upper, lower) = upper_and_lower(tmp.path())?;
    let diff = tmp.path().join(ROOTFS_DIFF_TAR);
    let deleted = tmp.path().join(DELETED_FILES);
    let dirs = OverlayDirs { upper_dir: upper.clone(), lower_dirs: vec![lower.clone()] };
    RootfsChanges::Overlay(dirs).write(&diff, &deleted)?;

    let listed = tar_listing(&diff)?;
    ensure!(
        listed == ["bin", "bin/sh", "etc", "etc/added.conf", "etc/hostname", "opt", "opt/old2", "var"],
        "{listed:?}"
    );
    let deletions = read_deleted(&deleted)?;
    ensure!(deletions == ["/gone", "/opt/old1", "/var/gone-dir"], "{deletions:?}");
    ensure!(mode_of(&diff)? == 0o600 && mode_of(&deleted)? == 0o600, "the diff and its deletions are private");

    apply_rootfs_diff(Some(&diff), Some(&deleted), &lower)?;
    ensure!(fs::read(lower.join("etc/hostname"))? == b"new");
    ensure!(fs::read(lower.join("etc/added.conf"))? == b"added");
    ensure!(mode_of(&lower.join("etc/added.conf"))? == 0o600);
    ensure!(fs::read(lower.join("keep"))? == b"kept");
    ensure!(fs::read_link(lower.join("bin/sh"))? == Path::new("/bin/busybox"));
    ensure!(fs::read(lower.join("opt/old2"))? == b"anew");
    ensure!(!lower.join("opt/old1").exists());
    ensure!(!lower.join("var/gone-dir").exists());
    ensure!(fs::symlink_metadata(lower.join("gone")).is_err(), "no whiteout was unpacked");
    Ok(Ran::Passed)
}

async fn a_diff_replaces_a_symlink_of_the_target_at_the_entry_itself_without_following_it() -> CaseResult {
    if let Some(skipped) = without_root("unpacking a diff whose entries root owns, keeping their owner,") {
        return skipped;
    }
    let tmp = TempDir::new()?;
    let host = tmp.path().join("host");
    write_file(&host.join("passwd"), b"host's own", 0o644)?;
    let rootfs = tmp.path().join("rootfs");
    fs::create_dir(&rootfs)?;
    symlink(host.join("passwd"), rootfs.join("passwd"))?;
    let diff = tmp.path().join("diff.tar");
    let mut builder = tar::Builder::new(fs::File::create(&diff)?);
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(b"container's".len() as u64);
    builder.append_data(&mut header, "passwd", &b"container's"[..])?;
    builder.finish()?;
    drop(builder);

    apply_rootfs_diff(Some(&diff), None, &rootfs)?;
    ensure!(fs::read(rootfs.join("passwd"))? == b"container's");
    ensure!(!fs::symlink_metadata(rootfs.join("passwd"))?.is_symlink(), "the link itself was replaced");
    ensure!(fs::read(host.join("passwd"))? == b"host's own", "the link's target is untouched");
    Ok(Ran::Passed)
}

/// Unmounts an overlay when the case ends, passing or not.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

async fn changes_made_through_a_real_overlay_are_found_and_carried() -> CaseResult {
    if let Some(reason) = testkit::overlay::unavailable() {
        return Ok(Ran::Skipped(reason));
    }
    let tmp = TempDir::new()?;
    let root = fs::canonicalize(tmp.path())?;
    let lower = root.join("lower");
    write_file(&lower.join("etc/hostname"), b"old", 0o644)?;
    write_file(&lower.join("gone"), b"to be deleted", 0o644)?;
    write_file(&lower.join("keep"), b"kept", 0o644)?;
    write_file(&lower.join("cache/a"), b"a", 0o644)?;
    write_file(&lower.join("cache/b/c"), b"c", 0o644)?;
    let (upper, work, merged) = (root.join("up per"), root.join("work"), root.join("merged"));
    for dir in [&upper, &work, &merged] {
        fs::create_dir(dir)?;
    }
    let options = format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display());
    nix::mount::mount(Some("overlay"), &merged, Some("overlay"), nix::mount::MsFlags::empty(), Some(options.as_str()))
        .context("mounting an overlay")?;
    let mounted = Mounted(merged.clone());

    fs::write(merged.join("etc/hostname"), b"new")?;
    fs::write(merged.join("added"), b"added")?;
    fs::remove_file(merged.join("gone"))?;
    fs::remove_dir_all(merged.join("cache"))?;
    write_file(&merged.join("cache/fresh"), b"fresh", 0o644)?;

    let changes = RootfsChanges::of(&merged)?;
    let expected = RootfsChanges::Overlay(OverlayDirs { upper_dir: upper.clone(), lower_dirs: vec![lower.clone()] });
    ensure!(changes == expected, "{changes:?}");
    let diff = root.join(ROOTFS_DIFF_TAR);
    let deleted = root.join(DELETED_FILES);
    changes.write(&diff, &deleted)?;
    let listed = tar_listing(&diff)?;
    ensure!(listed == ["added", "cache", "cache/fresh", "etc", "etc/hostname"], "{listed:?}");
    let deletions = read_deleted(&deleted)?;
    ensure!(deletions == ["/cache/a", "/cache/b", "/gone"], "{deletions:?}");

    let expected = snapshot(&merged)?;
    drop(mounted);
    let copy = root.join("copy");
    let lower_tar = root.join("lower.tar");
    run_tar(&["-cf", lower_tar.to_str().context("UTF-8")?, "-C", lower.to_str().context("UTF-8")?, "."])?;
    fs::create_dir(&copy)?;
    run_tar(&["-xf", lower_tar.to_str().context("UTF-8")?, "-C", copy.to_str().context("UTF-8")?])?;
    apply_rootfs_diff(Some(&diff), Some(&deleted), &copy)?;
    ensure!(snapshot(&copy)? == expected, "the copy with the diff applied is what the overlay showed");
    Ok(Ran::Passed)
}

fn main() -> ExitCode {
    testkit::harness::main(|suite| {
        suite.case_that_may_skip(
            "an_overlay_upper_dir_becomes_a_diff_and_its_whiteouts_deletions",
            an_overlay_upper_dir_becomes_a_diff_and_its_whiteouts_deletions,
        );
        suite.case_that_may_skip(
            "a_diff_replaces_a_symlink_of_the_target_at_the_entry_itself_without_following_it",
            a_diff_replaces_a_symlink_of_the_target_at_the_entry_itself_without_following_it,
        );
        suite.case_that_may_skip(
            "changes_made_through_a_real_overlay_are_found_and_carried",
            changes_made_through_a_real_overlay_are_found_and_carried,
        );
    })
}
