//! `checkpoint` (youki: `checkpointt`) and `restore` (runc only), without CRIU.
//!
//! CRIU freezes a container's processes, writes them to an image and, unless told to leave them
//! running, kills them; `restore` starts them again from the image: new processes, children of
//! the restoring runtime (and so, once it exits, of the subreaper it leaves them to: conmon, or
//! the embedding process), continuing where they were. The fake cannot copy a process's memory,
//! so it models it: a container's init is given a file, named in its environment by
//! [`MEMORY_VARIABLE`], that stands for its memory. `checkpoint` freezes the container's
//! processes (SIGSTOP), writes the init's `process` (from the bundle's config) and a copy of its
//! memory file into the image, and then, unless told to leave them running, kills them as CRIU
//! does. `restore` starts a new init from the image's `process` in the restoring bundle's root
//! filesystem, with the image's memory file as its own: a process that keeps its state in that
//! file (the checkpoint counter, `crate::counter`) goes on from where it was dumped, one that
//! keeps nothing there starts over. Only the init is restored; processes exec'd into the
//! container are not.
//!
//! After a checkpoint that does not leave the container running, runc and youki destroy the
//! container (its id is free for `restore`).
//!
//! runc's `--pre-dump` dumps memory only and never stops the container; a later checkpoint names
//! it with `--parent-path`, relative to its own image path (`../pre`), and dumps only what changed
//! since. The fake writes a pre-dump image that holds no process (restoring it fails, as
//! restoring CRIU's memory-only image does), checks the parent path as runc 1.1.5 does before
//! anything is dumped, and leaves the link CRIU leaves in the image: a symlink named `parent`
//! whose target is `--parent-path` as given.
//!
//! The images are the fake's own: `inventory.img` is there because drivers look for it, but the
//! fake writes no CRIU image files (no `stats-dump`, which a real dump leaves for its statistics),
//! so nothing that reads CRIU's images can be exercised against it.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use nix::sys::signal::Signal;
use oci_spec::runtime::{Process, Spec};
use runtime_core::Status;

use super::lifecycle::{commit, container_command, new_container, rootfs_of};
use super::state::{self, Record, youki_refusal};
use super::{Args, CmdResult, Ctx, Failure, console};
use crate::fake::Flavour;
use crate::procs::Tracked;

/// The environment variable naming the file that stands for a container init's memory: what
/// the init keeps there survives a checkpoint and restore, as its memory survives CRIU's.
pub const MEMORY_VARIABLE: &str = "FAKE_OCI_MEMORY";
/// The init's memory file in its container's directory.
const MEMORY: &str = "memory";
/// The file CRIU always writes, the one drivers look for.
const INVENTORY: &str = "inventory.img";
/// The dumped init's `process`, as its bundle's config gave it.
const PROCESS: &str = "fake-oci-process.json";
/// The dumped init's memory file, when it had written one.
const DUMPED_MEMORY: &str = "fake-oci-memory";
/// The link CRIU leaves in an image dumped on top of a parent image.
const PARENT: &str = "parent";

/// Gives the init of the container whose directory is `container_dir` its memory file.
pub(crate) fn give_memory(init: &mut Command, container_dir: &Path) {
    init.env(MEMORY_VARIABLE, container_dir.join(MEMORY));
}

/// `--image-path`, by default `./checkpoint` as in runc and youki.
fn image_dir(args: &Args) -> Result<PathBuf, Failure> {
    std::path::absolute(args.value("image-path").unwrap_or("checkpoint")).map_err(|err| Failure::io("image path", err))
}

/// `checkpoint` / `checkpointt`: freezes the container's processes, writes the image and, unless
/// told to leave them running, kills them.
pub(crate) fn checkpoint(ctx: &Ctx, args: &Args) -> CmdResult {
    let id = args.id()?;
    let _lock = state::lock(ctx, "checkpoint", id)?;
    let record = state::find(ctx, "checkpoint", id)?;
    match (ctx.flavour, record.status()) {
        (_, Status::Running) | (Flavour::Runc, Status::Paused) => {}
        (Flavour::Youki, status) => return Err(youki_refusal("checkpoint", id, status)),
        (_, status) => return Err(Failure::runtime(format!("Container cannot be checkpointed in {status} state"))),
    }
    let image = image_dir(args)?;
    for dir in std::iter::once(image.clone()).chain(args.value("work-path").map(PathBuf::from)) {
        DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|err| Failure::io("mkdir image", err))?;
    }
    let parent = args.value("parent-path").map(|parent| parent_image(&image, parent)).transpose()?;
    if let Some(parent) = parent {
        std::os::unix::fs::symlink(parent, image.join(PARENT)).map_err(|err| Failure::io("link parent", err))?;
    }
    if args.flag("pre-dump") {
        fs::write(image.join(INVENTORY), b"fake-oci pre-dump image\n")
            .map_err(|err| Failure::io("write image", err))?;
        return Ok(0);
    }
    // Frozen while dumped, as CRIU freezes the cgroup; a paused container stays frozen.
    let thaw = !record.paused;
    record.signal_all(Signal::SIGSTOP);
    let dumped = dump(ctx, &record, &image);
    if dumped.is_err() || args.flag("leave-running") {
        if thaw {
            record.signal_all(Signal::SIGCONT);
        }
        return dumped.map(|()| 0);
    }
    record.kill_everything();
    fs::remove_dir_all(state::dir(&ctx.root, id)).map_err(|err| Failure::io("remove", err))?;
    Ok(0)
}

/// Writes the image of a frozen container: the inventory, its init's `process` and the init's
/// memory file, if it wrote one.
fn dump(ctx: &Ctx, record: &Record, image: &Path) -> Result<(), Failure> {
    let config = record.bundle.join("config.json");
    let spec =
        Spec::load(&config).map_err(|err| Failure::runtime(format!("cannot load {}: {err}", config.display())))?;
    let process = spec.process().as_ref().ok_or_else(|| Failure::runtime("process property must not be empty"))?;
    let process = serde_json::to_vec(process).map_err(|err| Failure::runtime(err.to_string()))?;
    fs::write(image.join(INVENTORY), b"fake-oci image\n")
        .and_then(|()| fs::write(image.join(PROCESS), process))
        .map_err(|err| Failure::io("write image", err))?;
    copy_if_there(&state::dir(&ctx.root, &record.id).join(MEMORY), &image.join(DUMPED_MEMORY))
        .map_err(|err| Failure::io("dump memory", err))
}

/// Copies `from` to `to`; nothing when there is no `from`.
fn copy_if_there(from: &Path, to: &Path) -> std::io::Result<()> {
    match fs::copy(from, to) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// `--parent-path`, checked as runc 1.1.5 checks it: relative to the image path, and a directory.
fn parent_image<'a>(image: &Path, parent: &'a str) -> Result<&'a str, Failure> {
    if Path::new(parent).is_absolute() {
        return Err(Failure::runtime("--parent-path must be relative"));
    }
    // Go's filepath.Join cleans the path lexically: `img/../pre` is `pre`.
    let mut joined = PathBuf::new();
    for component in image.join(parent).components() {
        match component {
            Component::ParentDir => drop(joined.pop()),
            Component::CurDir => {}
            other => joined.push(other),
        }
    }
    let problem = match fs::metadata(&joined) {
        Ok(metadata) if metadata.is_dir() => return Ok(parent),
        Ok(_) => "not a directory".to_owned(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        Err(err) => err.to_string(),
    };
    Err(Failure::runtime(format!("invalid --parent-path: stat {}: {problem}", joined.display())))
}

/// `restore --detach`: starts the image's init as a new, running container.
pub(crate) fn restore(ctx: &Ctx, args: &Args) -> CmdResult {
    let id = args.id()?;
    if !args.flag("detach") {
        return Err(Failure::runtime("fake-oci restores only with --detach"));
    }
    let (bundle, spec) = new_container(ctx, id, args.value("bundle"))?;
    let dir = state::dir(&ctx.root, id);
    let init = restored_init(ctx, args, &rootfs_of(&bundle, &spec), &dir).inspect_err(|_| {
        let _ = fs::remove_dir_all(&dir);
    })?;
    let record = Record::new(id, bundle, &spec, Tracked::capture(init.id()), true);
    commit(ctx, &record, &[], args.value("pid-file"))?;
    Ok(0)
}

/// Starts the init of the image `--image-path` names in `rootfs`, with the image's memory as
/// its own (in the new container's directory `dir`), as a child of this call.
fn restored_init(ctx: &Ctx, args: &Args, rootfs: &Path, dir: &Path) -> Result<std::process::Child, Failure> {
    let image = image_dir(args)?;
    let process = fs::read(image.join(PROCESS)).ok().and_then(|text| serde_json::from_slice::<Process>(&text).ok());
    let process = process.ok_or_else(|| {
        Failure::runtime(format!("criu failed: type RESTORE errno 0: no process image in {}", image.display()))
    })?;
    copy_if_there(&image.join(DUMPED_MEMORY), &dir.join(MEMORY)).map_err(|err| Failure::io("restore memory", err))?;
    let mut init = container_command(ctx.flavour, &process, rootfs, None)?;
    give_memory(&mut init, dir);
    console::attach(ctx, &process, args.value("console-socket"), &mut init)?;
    init.spawn().map_err(|err| Failure::io("start the restored init", err))
}
