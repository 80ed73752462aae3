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
//! only argument: the bundle, the runtime's state (`--root`) and the engine's state root.
//! `--runtime crun` or `--runtime youki` runs the container with another runtime (give the second
//! run the same), `--bundle DIR` runs your bundle instead of the example's busybox script. A run
//! that fails or is interrupted (Ctrl-C) deletes the container and what the example made, as the
//! second run does when it is done.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use conmon_driver::ConmonMonitor;
use runtime_core::{ContainerId, CreateOptions, DeleteMode, Engine, Exit, RuntimeConfig, StateRoot, Status};
use testkit::bundle::BundleBuilder;
use testkit::example::{ExampleArgs, ExampleResult, Interruptions, clean_up, finish};

/// The container's name.
const ID: &str = "outlive-demo";

/// What the container runs.
const SCRIPT: &str = "echo hello from the container; sleep 1; echo still running while its program is gone; sleep 2; \
     echo exiting with code 42; exit 42";

/// How long the second run waits for the container to exit.
const WAIT_AT_MOST: Duration = Duration::from_secs(60);

/// Where everything goes unless the argument says otherwise.
const DEFAULT_DIR: &str = "/run/ocikit-outlive";

#[tokio::main(flavor = "current_thread")]
pub async fn main() -> ExitCode {
    finish(outlive().await)
}

async fn outlive() -> ExampleResult {
    let mut interruptions = Interruptions::listen()?;
    let args = ExampleArgs::from_env("[DIR]")?;
    let dir = match &args.positional[..] {
        [] => PathBuf::from(DEFAULT_DIR),
        [dir] => PathBuf::from(dir),
        [_, extra, ..] => return Err(format!("one directory at most, not also {extra}").into()),
    };
    let made = Made { dir: &dir, runtime: &args.runtime };
    let backend = args.connect(RuntimeConfig::default().root(made.runtime_root())).await?;
    let monitor = Arc::new(ConmonMonitor::new("conmon"));
    let engine = Engine::reconnect(Arc::new(backend), monitor, StateRoot::open(made.state_root())?).await?;
    let id = ContainerId::new(ID)?;
    let known = engine.list().await?.into_iter().find(|container| container.id == id);
    match known {
        None => {
            let outcome = interruptions.run(first_run(&engine, &args, &made, &id)).await;
            if outcome.is_ok() {
                // The container runs on under conmon: that is the point.
                return Ok(());
            }
            made.remove(clean_up(&engine, &[&id], outcome).await)
        }
        Some(container) => {
            let outcome = interruptions.run(second_run(&engine, &made, &id, container.status)).await;
            made.remove(clean_up(&engine, &[&id], outcome).await)?;
            println!("Deleted it and everything this example made; the next run starts over.");
            Ok(())
        }
    }
}

/// What the example makes under its directory.
struct Made<'a> {
    dir: &'a Path,
    runtime: &'a str,
}

impl Made<'_> {
    /// The example's own bundle, when no `--bundle` is given.
    fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }

    /// The runtime's `--root`.
    fn runtime_root(&self) -> PathBuf {
        self.dir.join(self.runtime)
    }

    /// The engine's state root.
    fn state_root(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Removes all of it once the container is gone, and the directory if nothing else is in
    /// it (it may be the caller's); gives `outcome` back, or what could not be removed.
    fn remove(&self, outcome: ExampleResult) -> ExampleResult {
        for made in [self.bundle(), self.runtime_root(), self.state_root()] {
            match std::fs::remove_dir_all(&made) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound && outcome.is_ok() => {
                    return Err(format!("removing {}: {err}", made.display()).into());
                }
                _ => {}
            }
        }
        let _ = std::fs::remove_dir(self.dir);
        outcome
    }
}

async fn first_run(engine: &Engine, args: &ExampleArgs, made: &Made<'_>, id: &ContainerId) -> ExampleResult {
    let bundle = match &args.bundle {
        Some(bundle) => bundle.clone(),
        None => {
            // Left by a run that was killed outright; nothing holds it now.
            if made.bundle().exists() {
                std::fs::remove_dir_all(made.bundle())?;
            }
            BundleBuilder::new(["sh", "-c", SCRIPT]).write_to(&made.bundle())?;
            made.bundle()
        }
    };
    let created = engine.create(id, &bundle, CreateOptions::default()).await?;
    engine.start(id).await?;
    println!("Started container {id} through conmon (its init is pid {}).", created.pid);
    if args.bundle.is_none() {
        println!("It prints a few lines and exits with code 42 in about 3 seconds; conmon keeps its");
        println!("output and its exit code under {}.", made.dir.display());
    }
    println!("This program exits now, without waiting. Run the same command again to see what the");
    println!("container did, even after it ended:");
    println!();
    let mut again = String::from("cargo run -p conmon-driver --example outlive");
    if args.runtime != "runc" || made.dir != Path::new(DEFAULT_DIR) {
        again.push_str(" --");
    }
    if args.runtime != "runc" {
        again.push_str(&format!(" --runtime {}", args.runtime));
    }
    if made.dir != Path::new(DEFAULT_DIR) {
        again.push_str(&format!(" {}", made.dir.display()));
    }
    println!("    {again}");
    Ok(())
}

async fn second_run(engine: &Engine, made: &Made<'_>, id: &ContainerId, status: Status) -> ExampleResult {
    println!("Found container {id} in {}, started by an earlier run.", made.state_root().display());
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
    Ok(())
}
