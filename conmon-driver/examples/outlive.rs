//! A program whose container outlives it: conmon holds the container, its output and its exit
//! code while the program is gone.
//!
//! `cargo run -p conmon-driver --example outlive`, as root, with conmon, runc and a static busybox
//! installed (`cargo xtask setup` installs them). The first run creates a container through conmon
//! and exits at once; the container prints a few lines and exits with code 42 about three seconds
//! later. Run the same command again: a new engine reconnects to the same state root, waits for
//! the container if it is still running, prints its log and exit code, then deletes it and what
//! the first run made, so the run after starts over.
//!
//! Everything lives under one directory, `/run/ocikit-outlive` unless another is given as the
//! only argument: the bundle, runc's state (`--root`) and the engine's state root.
//!
//! The bundle is written here, with the `oci-spec` types the library re-exports, rather than with
//! the workspace's test kit: a program embedding the library brings its own bundles, and this is
//! how it would write one. Its root filesystem is the host's static busybox.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backend_runc::Runc;
use conmon_driver::ConmonMonitor;
use runtime_core::oci_spec::runtime::Spec;
use runtime_core::{ContainerId, CreateOptions, DeleteMode, Engine, Exit, RuntimeConfig, StateRoot, Status};

/// The container's name.
const ID: &str = "outlive-demo";

/// What the container runs.
const SCRIPT: &str = "echo hello from the container; sleep 1; echo still running while its program is gone; sleep 2; \
     echo exiting with code 42; exit 42";

/// Where a static busybox is looked for (Debian's busybox-static installs `/bin/busybox`).
const BUSYBOX: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];

/// How long the second run waits for the container to exit.
const WAIT_AT_MOST: Duration = Duration::from_secs(60);

/// Where everything goes unless the argument says otherwise.
const DEFAULT_DIR: &str = "/run/ocikit-outlive";

#[tokio::main(flavor = "current_thread")]
pub async fn main() -> Result<(), Box<dyn Error>> {
    let dir = PathBuf::from(std::env::args_os().nth(1).unwrap_or_else(|| DEFAULT_DIR.into()));
    let runc = Runc::connect(RuntimeConfig::default().root(dir.join("runc"))).await?;
    let monitor = Arc::new(ConmonMonitor::new("conmon"));
    let engine = Engine::reconnect(Arc::new(runc), monitor, StateRoot::open(dir.join("state"))?).await?;
    let id = ContainerId::new(ID)?;
    let known = engine.list().await?.into_iter().find(|container| container.id == id);
    match known {
        None => first_run(&engine, &dir, &id).await,
        Some(container) => second_run(&engine, &dir, &id, container.status).await,
    }
}

async fn first_run(engine: &Engine, dir: &Path, id: &ContainerId) -> Result<(), Box<dyn Error>> {
    let bundle = write_bundle(&dir.join("bundle"))?;
    let created = engine.create(id, &bundle, CreateOptions::default()).await?;
    engine.start(id).await?;
    println!("Started container {id} through conmon (its init is pid {}).", created.pid);
    println!("It prints a few lines and exits with code 42 in about 3 seconds; conmon keeps its");
    println!("output and its exit code under {}.", dir.display());
    println!("This program exits now, without waiting. Run the same command again to see what the");
    println!("container did, even after it ended:");
    println!();
    match dir.to_str() {
        Some(DEFAULT_DIR) => println!("    cargo run -p conmon-driver --example outlive"),
        _ => println!("    cargo run -p conmon-driver --example outlive -- {}", dir.display()),
    }
    Ok(())
}

async fn second_run(engine: &Engine, dir: &Path, id: &ContainerId, status: Status) -> Result<(), Box<dyn Error>> {
    println!("Found container {id} in {}, started by an earlier run.", dir.join("state").display());
    if status != Status::Stopped {
        println!("It is still {status}; waiting for it to exit...");
    }
    let exit = tokio::time::timeout(WAIT_AT_MOST, engine.wait(id))
        .await
        .map_err(|_| format!("{id} did not exit within {WAIT_AT_MOST:?}"))??;
    let log_file = ConmonMonitor::log_file(&engine.state_root().files(id));
    println!("What it printed, from conmon's log ({}):", log_file.display());
    for line in std::fs::read_to_string(&log_file)?.lines() {
        let mut fields = line.splitn(4, ' ');
        if let (Some(_time), Some(stream), Some(_tag), Some(text)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        {
            println!("    {stream}: {text}");
        }
    }
    match exit {
        Exit::Exited(code) => println!("It exited with code {code}."),
        ended => println!("It {ended} (exit code {:?}).", ended.shell_code()),
    }
    engine.delete(id, DeleteMode::IfStopped).await?;
    for made in ["bundle", "runc", "state"] {
        std::fs::remove_dir_all(dir.join(made))?;
    }
    // Only if nothing else is in it: the directory may be the caller's.
    let _ = std::fs::remove_dir(dir);
    println!("Deleted it and everything this example made; the next run starts over.");
    Ok(())
}

/// Writes a bundle at `bundle` that runs [`SCRIPT`] in a busybox root filesystem.
fn write_bundle(bundle: &Path) -> Result<PathBuf, Box<dyn Error>> {
    let busybox =
        BUSYBOX.iter().map(Path::new).find(|path| path.is_file()).ok_or(
            "no busybox at /bin/busybox or /usr/bin/busybox: install a static one (apt install busybox-static)",
        )?;
    if bundle.exists() {
        std::fs::remove_dir_all(bundle)?;
    }
    let bin = bundle.join("rootfs/bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy(busybox, bin.join("busybox"))?;
    for applet in ["sh", "echo", "sleep"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet))?;
    }
    for dir in ["proc", "dev", "sys", "tmp"] {
        std::fs::create_dir(bundle.join("rootfs").join(dir))?;
    }
    let mut spec = Spec::default();
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_terminal(Some(false));
    process.set_args(Some(vec!["sh".into(), "-c".into(), SCRIPT.into()]));
    process.set_env(Some(vec!["PATH=/bin".into()]));
    spec.set_process(Some(process));
    spec.set_hostname(Some(ID.into()));
    spec.save(bundle.join("config.json"))?;
    Ok(bundle.to_path_buf())
}
