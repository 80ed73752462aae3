//! `checkpoint` (youki: `checkpointt`) and `restore` (runc only), without CRIU.
//!
//! CRIU freezes a container's processes, writes them to an image and, unless told to leave them
//! running, kills them; `restore` brings them back with the same pids, continuing where they
//! were. The fake cannot copy a process, so it keeps the processes themselves: `checkpoint` stops
//! every process of the container (SIGSTOP) and writes their identities into the image, and
//! `restore` adopts them as the new container and continues them (SIGCONT). A restored process
//! thus continues from where it was dumped, as with CRIU, provided the image is restored once,
//! on the same host, and nothing killed the stopped processes meanwhile (restore then fails as
//! CRIU fails on a broken image).
//!
//! After a checkpoint that does not leave the container running, runc destroys the container
//! (its id is free for `restore`, and the stopped processes belong to the image alone); youki
//! kills the processes and keeps the container as stopped.
//!
//! runc's `--pre-dump` dumps memory only and never stops the container; a later checkpoint names
//! it with `--parent-path`, relative to its own image path (`../pre`), and dumps only what changed
//! since. The fake writes a pre-dump image that holds no processes (restoring it fails, as
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

use nix::sys::signal::Signal;
use runtime_core::Status;

use super::lifecycle::{commit, new_container};
use super::state::{self, Record, youki_refusal};
use super::{Args, CmdResult, Ctx, Failure};
use crate::fake::Flavour;
use crate::procs::Tracked;

/// The file CRIU always writes, the one drivers look for.
const INVENTORY: &str = "inventory.img";
/// The stopped processes, the container's init first.
const PROCESSES: &str = "fake-oci-processes.json";
/// The link CRIU leaves in an image dumped on top of a parent image.
const PARENT: &str = "parent";

/// `--image-path`, by default `./checkpoint` as in runc and youki.
fn image_dir(args: &Args) -> Result<PathBuf, Failure> {
    std::path::absolute(args.value("image-path").unwrap_or("checkpoint")).map_err(|err| Failure::io("image path", err))
}

/// `checkpoint` / `checkpointt`: stops the container's processes and writes the image.
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
    let pre_dump = args.flag("pre-dump");
    let leave_running = args.flag("leave-running") || pre_dump;
    if !leave_running {
        record.signal_all(Signal::SIGSTOP);
    }
    if let Some(parent) = parent {
        std::os::unix::fs::symlink(parent, image.join(PARENT)).map_err(|err| Failure::io("link parent", err))?;
    }
    let written = if pre_dump {
        fs::write(image.join(INVENTORY), b"fake-oci pre-dump image\n")
    } else {
        let processes: Vec<Tracked> = record.groups().copied().collect();
        let processes = serde_json::to_vec(&processes).map_err(|err| Failure::runtime(err.to_string()))?;
        fs::write(image.join(INVENTORY), b"fake-oci image\n").and_then(|()| fs::write(image.join(PROCESSES), processes))
    };
    written.map_err(|err| Failure::io("write image", err))?;
    match (leave_running, ctx.flavour) {
        (true, _) => {}
        (false, Flavour::Youki) => record.kill_everything(),
        (false, _) => fs::remove_dir_all(state::dir(&ctx.root, id)).map_err(|err| Failure::io("remove", err))?,
    }
    Ok(0)
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

/// `restore --detach`: adopts the image's stopped processes as a new, running container.
pub(crate) fn restore(ctx: &Ctx, args: &Args) -> CmdResult {
    let id = args.id()?;
    if !args.flag("detach") {
        return Err(Failure::runtime("fake-oci restores only with --detach"));
    }
    let (bundle, spec) = new_container(ctx, id, args.value("bundle"))?;
    let image = image_dir(args)?;
    let processes = fs::read(image.join(PROCESSES))
        .ok()
        .and_then(|text| serde_json::from_slice::<Vec<Tracked>>(&text).ok())
        .filter(|processes| processes.first().is_some_and(Tracked::alive));
    let Some((init, execs)) = processes.as_deref().and_then(<[Tracked]>::split_first) else {
        let _ = fs::remove_dir_all(state::dir(&ctx.root, id));
        let image = image.display();
        return Err(Failure::runtime(format!("criu failed: type RESTORE errno 0: no live image in {image}")));
    };
    let record = Record { execs: execs.to_vec(), ..Record::new(id, bundle, &spec, *init, true) };
    commit(ctx, &record, &[], args.value("pid-file"))?;
    record.signal_all(Signal::SIGCONT);
    Ok(0)
}
