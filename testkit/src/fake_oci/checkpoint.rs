//! `checkpoint` (youki: `checkpointt`) and `restore` (runc only), without CRIU.
//!
//! A checkpoint cannot capture a host process's memory, so it records what is needed to start
//! the container's process again: the image directory gets an `inventory.img` (the file CRIU
//! always writes, and the one drivers look for) and `fake-oci-checkpoint.json` with the process
//! and bundle. `restore` starts that process afresh as a running container. That is enough for
//! a driver's checkpoint/restore plumbing (options, paths, state transitions, errors) to be
//! exercised end to end.
//!
//! After a checkpoint that does not leave the container running, runc destroys the container
//! (so its id is free for `restore`), while youki keeps it as stopped; both are reproduced.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::args::{Grammar, Opt, clap_error, flag, flag_s, parse_command, val, val_s};
use super::error::{CmdResult, Failure, io_failure};
use super::flavour::{Ctx, Flavour};
use super::json_text;
use super::lifecycle::{check_new, commit, destroy, find, materialise, new_record, prepare, spawn_process};
use super::procs::{relay_signals, wait_code};
use super::state::{ProcSpec, Status};

const INVENTORY: &str = "inventory.img";
const IMAGE_FILE: &str = "fake-oci-checkpoint.json";
const CGROUP_MODES: [&str; 4] = ["ignore", "full", "strict", "soft"];

const RUNC_CHECKPOINT: &[Opt] = &[
    val("image-path"),
    val("work-path"),
    val("parent-path"),
    flag("leave-running"),
    flag("tcp-established"),
    flag("ext-unix-sk"),
    flag("shell-job"),
    flag("lazy-pages"),
    val("status-fd"),
    val("page-server"),
    flag("file-locks"),
    flag("pre-dump"),
    val("manage-cgroups-mode"),
    val("empty-ns"),
    flag("auto-dedup"),
];
const YOUKI_CHECKPOINT: &[Opt] = &[
    val("image-path"),
    val("work-path"),
    flag("leave-running"),
    flag("tcp-established"),
    flag("link-remap"),
    flag("ext-unix-sk"),
    flag("shell-job"),
    flag("file-locks"),
    val("manage-cgroups-mode"),
];
const RESTORE: &[Opt] = &[
    val("image-path"),
    val("work-path"),
    val_s("bundle", 'b'),
    flag_s("detach", 'd'),
    val("pid-file"),
    val("console-socket"),
    flag("no-subreaper"),
    flag("no-pivot"),
    flag("tcp-established"),
    flag("ext-unix-sk"),
    flag("shell-job"),
    flag("file-locks"),
    val("manage-cgroups-mode"),
    flag("lazy-pages"),
    val("empty-ns"),
    flag("auto-dedup"),
    val("lsm-profile"),
    val("lsm-mount-context"),
];

/// What a checkpoint image records.
#[derive(Debug, Serialize, Deserialize)]
struct Image {
    id: String,
    bundle: PathBuf,
    root_path: String,
    process: ProcSpec,
    checkpointed: DateTime<Utc>,
}

/// The image directory: `--image-path`, by default `./checkpoint` as in runc and youki.
fn image_dir(path: Option<&str>) -> Result<PathBuf, Failure> {
    let path = path.filter(|p| !p.is_empty()).unwrap_or("checkpoint");
    std::path::absolute(path).map_err(|e| io_failure(format!("image path {path}"), e))
}

fn make_dir(path: &Path) -> Result<(), Failure> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| io_failure(format!("mkdir {}", path.display()), e))
}

/// `checkpoint` / `checkpointt`: writes an image and, unless told otherwise, stops the container.
pub(crate) fn checkpoint(ctx: &Ctx, argv: &[String], name: &str) -> CmdResult {
    let opts = match ctx.flavour {
        Flavour::Youki => YOUKI_CHECKPOINT,
        Flavour::Runc | Flavour::Crun => RUNC_CHECKPOINT,
    };
    let grammar = Grammar::new(name, "checkpoint a running container", opts, &["container-id"]);
    let Some(m) = parse_command(ctx, &grammar, argv)? else {
        return Ok(0);
    };
    let id = m.first();
    let mode = m.value("manage-cgroups-mode");
    if let Some(mode) = mode.filter(|mode| !mode.is_empty() && !CGROUP_MODES.contains(mode)) {
        return Err(match ctx.flavour {
            Flavour::Youki => clap_error(
                &grammar,
                &format!(
                    "invalid value '{mode}' for '--manage-cgroups-mode <MANAGE_CGROUPS_MODE>'\n  [possible values: ignore, full, strict, soft]"
                ),
            ),
            Flavour::Runc | Flavour::Crun => Failure::runtime("Invalid manage-cgroups-mode value"),
        });
    }
    let record = find(ctx, id)?;
    let status = record.status();
    match ctx.flavour {
        Flavour::Youki if status != Status::Running => {
            return Err(Failure::runtime(Ctx::youki_incompatible("checkpoint", id, status)));
        }
        Flavour::Runc | Flavour::Crun if matches!(status, Status::Created | Status::Stopped) => {
            return Err(Failure::runtime(format!("Container cannot be checkpointed in {} state", status.lower())));
        }
        _ => {}
    }
    let image = image_dir(m.value("image-path"))?;
    make_dir(&image)?;
    if let Some(parent) = m.value("parent-path").filter(|p| !p.is_empty()) {
        if Path::new(parent).is_absolute() {
            return Err(Failure::runtime("--parent-path must be relative"));
        }
        let real = image.join(parent);
        if !real.is_dir() {
            return Err(Failure::runtime(format!(
                "invalid --parent-path: stat {}: no such file or directory",
                real.display()
            )));
        }
    }
    let work = match m.value("work-path").filter(|p| !p.is_empty()) {
        Some(path) => std::path::absolute(path).map_err(|e| io_failure("work path", e))?,
        None => image.clone(),
    };
    make_dir(&work)?;
    let saved = Image {
        id: record.id.clone(),
        bundle: record.bundle.clone(),
        root_path: record.root_path.clone(),
        process: record.process.clone(),
        checkpointed: Utc::now(),
    };
    let write = |path: PathBuf, data: &[u8]| {
        fs::write(&path, data).map_err(|e| io_failure(format!("write {}", path.display()), e))
    };
    write(image.join(INVENTORY), b"fake-oci checkpoint inventory\n")?;
    write(image.join(IMAGE_FILE), json_text(&saved, "  ").as_bytes())?;
    write(work.join("dump.log"), format!("fake-oci: dumped container {id}\n").as_bytes())?;
    if !(m.flag("leave-running") || m.flag("pre-dump")) {
        match ctx.flavour {
            Flavour::Runc | Flavour::Crun => destroy(ctx, &record),
            Flavour::Youki => record.kill_everything(),
        }
    }
    Ok(0)
}

fn load_image(image: &Path) -> Result<Image, Failure> {
    let missing = |path: PathBuf, err: io::Error| {
        Failure::runtime(format!("criu failed: type RESTORE errno 0: cannot open {}: {err}", path.display()))
    };
    let inventory = image.join(INVENTORY);
    fs::metadata(&inventory).map_err(|e| missing(inventory.clone(), e))?;
    let path = image.join(IMAGE_FILE);
    let text = fs::read_to_string(&path).map_err(|e| missing(path.clone(), e))?;
    serde_json::from_str(&text).map_err(|e| Failure::runtime(format!("criu failed: type RESTORE errno 0: {e}")))
}

/// `restore`: starts a checkpointed process again as a new, running container.
pub(crate) fn restore(ctx: &Ctx, argv: &[String], no_pid_file: bool) -> CmdResult {
    let grammar = Grammar::new("restore", "restore a container from a previous checkpoint", RESTORE, &["container-id"]);
    let Some(m) = parse_command(ctx, &grammar, argv)? else {
        return Ok(0);
    };
    let id = m.first();
    let bundle = m.value("bundle");
    // runc reads the bundle and refuses an existing id before asking CRIU for the image.
    check_new(ctx, id, bundle)?;
    let saved = load_image(&image_dir(m.value("image-path"))?)?;
    let prepared = prepare(ctx, id, bundle, Some(saved.process))?;
    let dir = materialise(ctx, &prepared, false)?;
    let mut child = spawn_process(&prepared.executable, &prepared.process, &prepared.cwd).map_err(|e| {
        let _ = fs::remove_dir_all(&dir);
        io_failure("restore container process", e)
    })?;
    let detach = m.flag("detach");
    if !detach {
        relay_signals(&child);
    }
    let record = new_record(prepared, &child, true);
    commit(ctx, &record, m.value("pid-file"), no_pid_file)?;
    if detach {
        return Ok(0);
    }
    let code = wait_code(&mut child);
    destroy(ctx, &record);
    Ok(code)
}
