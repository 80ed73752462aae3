//! Embedding: one container under the engine, from create to delete, with an exec on the way
//! and its exit code at the end.
//!
//! `cargo run -p backend-runc --example embed` as root, with runc and a static busybox
//! installed (`cargo xtask setup` installs them). It runs a busybox counter loop of its own that
//! ends with exit code 3, the container's output on this program's. `--runtime crun` or
//! `--runtime youki` picks another backend and nothing else changes; `--bundle DIR` runs your
//! bundle instead (`cargo xtask bundle DIR -- CMD...` writes one). Interrupted (Ctrl-C) or
//! failing, it deletes its container all the same, so the next run starts clean.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use runtime_core::{
    ContainerId, ContainerStdio, CreateOptions, DeleteMode, DirectMonitor, Engine, ExecOptions, ExecOutcome,
    OciBackend, RuntimeConfig, StateRoot, process,
};
use testkit::bundle::BundleBuilder;
use testkit::example::{ExampleArgs, ExampleResult, Interruptions, clean_up, finish};

/// What the example's own container runs: a counter that ends by itself.
const COUNTER: &str = "for i in 1 2 3; do echo tick $i; sleep 1; done; exit 3";

#[tokio::main(flavor = "current_thread")]
pub async fn main() -> ExitCode {
    finish(embed().await)
}

async fn embed() -> ExampleResult {
    let mut interruptions = Interruptions::listen()?;
    let args = ExampleArgs::from_env("")?;
    let bundle = args.bundle_or(BundleBuilder::new(["sh", "-c", COUNTER]))?;

    let backend = args.connect(RuntimeConfig::default()).await?;
    let features = backend.features().await?;
    println!("{} {}", backend.name(), features.version.version);
    if let Some(reason) = features.checkpoint.reason() {
        println!("checkpoint is not available here: {reason}");
    }
    let engine =
        Engine::new(Arc::new(backend), Arc::new(DirectMonitor::new()), StateRoot::open(StateRoot::default_path()?)?);

    let id = ContainerId::new("embed-demo")?;
    let outcome = interruptions.run(run_one(&engine, &id, bundle.path())).await;
    clean_up(&engine, &[&id], outcome).await
}

async fn run_one(engine: &Engine, id: &ContainerId, bundle: &Path) -> ExampleResult {
    let options = CreateOptions { stdio: ContainerStdio::Inherit, ..Default::default() };
    let created = engine.create(id, bundle, options).await?;
    engine.start(id).await?;
    println!("{id} started, init pid {}", created.pid);

    if let ExecOutcome::Exited { code, stdout, .. } =
        engine.exec(id, &process(["echo", "hello from an exec"]), ExecOptions::default()).await?
    {
        println!("exec exited {code}: {}", String::from_utf8_lossy(&stdout.bytes).trim());
    }

    let exit = engine.wait(id).await?;
    println!("{id} {exit}");
    engine.delete(id, DeleteMode::IfStopped).await?;
    println!("{id} deleted");
    Ok(())
}
