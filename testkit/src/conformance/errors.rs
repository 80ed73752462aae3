//! Errors the [`Engine`] decides before a runtime runs, the same on every runtime: a
//! container a checkpoint already stopped (the runtime forgets such a container; the engine's
//! record answers for it), an export onto an existing archive, a dump
//! against a pre-checkpoint that was never taken, and a restore with nothing kept to restore.
//! Each is matched by its variant and its evidence, never by its message. And an id as long as
//! a file name may be works everywhere, while a longer one never reaches a runtime.

use std::path::Path;

use anyhow::{Context, bail, ensure};
use runtime_core::checkpoint::Compression;
use runtime_core::{
    Capability, ContainerCheckpointOptions, ContainerId, ContainerRestoreOptions, CreateOptions, DeleteMode, Engine,
    Error, Existence, Export, Status, WrongState,
};

use super::CaseSpec;
use super::checkpoint::{Verdict, verdict};
use super::env::{Env, skipped};
use crate::bundle::Bundle;
use crate::harness::{CaseResult, Ran};

/// Every case of this file with its name.
pub(super) fn all() -> Vec<CaseSpec> {
    vec![
        CaseSpec::new(
            "a_second_checkpoint_of_a_checkpointed_container_is_invalid_state",
            "a checkpointed container cannot be checkpointed again (InvalidState)",
            |env| Box::pin(checkpointed_twice(env)),
        ),
        CaseSpec::new(
            "checkpoint_preconditions_are_typed_before_anything_runs",
            "checkpoint preconditions are typed errors before the runtime runs",
            |env| Box::pin(checkpoint_preconditions(env)),
        ),
        CaseSpec::needing(
            "a_restore_with_nothing_kept_is_not_found",
            "a restore with no checkpoint kept is NotFound",
            &[Capability::Restore],
            |env| Box::pin(restore_with_nothing_kept(env)),
        ),
        CaseSpec::new(
            "an_id_as_long_as_a_file_name_runs_and_a_longer_one_is_refused",
            "an id as long as a file name runs; a longer one is refused before the runtime runs",
            |env| Box::pin(longest_id(env)),
        ),
    ]
}

/// A started `sleep` under `engine`, with its bundle.
async fn started_sleeper(env: &mut Env, engine: &Engine, name: &str) -> anyhow::Result<(ContainerId, Bundle)> {
    let id = env.id(name);
    let bundle = env.bundle(["sleep", "1000"])?;
    let created = engine.create(&id, bundle.path(), CreateOptions::default()).await.context("create")?;
    env.track(created.pid);
    engine.start(&id).await.context("start")?;
    Ok((id, bundle))
}

async fn checkpointed_twice(env: &mut Env) -> CaseResult {
    match verdict(env, "checkpoint").await? {
        Verdict::Works => {}
        Verdict::Refuses(reason) => return skipped(format!("no checkpoint, so nothing is checkpointed: {reason}")),
        Verdict::Ends(result) => return result,
    }
    let engine = env.engine()?;
    let (id, bundle) = started_sleeper(env, &engine, "twice").await?;
    engine.checkpoint(&id, ContainerCheckpointOptions::default()).await.context("the first checkpoint")?;
    let second = engine.checkpoint(&id, ContainerCheckpointOptions::default()).await;
    let refused = matches!(
        &second,
        Err(Error::InvalidState {
            id: Some(refused),
            evidence: WrongState::Seen { operation: "checkpoint", needs: Status::Running, found: Status::Stopped },
        }) if *refused == id
    );
    let status = engine.status(&id).await?;
    // The refusal kept the images: where the runtime and the monitor restore, the container
    // comes back from them.
    let restores = env.lacks(Capability::Restore).is_none();
    let restored = match verdict(env, "restore").await? {
        Verdict::Works if restores => {
            Some(engine.restore(&id, bundle.path(), ContainerRestoreOptions::default()).await)
        }
        Verdict::Works | Verdict::Refuses(_) | Verdict::Ends(_) => None,
    };
    if let Some(Ok(report)) = &restored {
        env.track(report.pid);
    }
    engine.delete(&id, DeleteMode::Force).await.context("delete the checkpointed container")?;
    ensure!(refused, "a second checkpoint of a checkpointed container: {second:?}");
    ensure!(status.checkpointed && status.status == Status::Stopped, "still checkpointed: {status:?}");
    if let Some(restored) = restored {
        restored.context("a restore from the images the refusal kept")?;
    }
    Ok(Ran::Passed)
}

async fn checkpoint_preconditions(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let (id, _bundle) = started_sleeper(env, &engine, "preconditions").await?;
    let dir = tempfile::tempdir()?;
    let existing = dir.path().join("earlier.tar");
    std::fs::write(&existing, "an earlier archive")?;
    let export = Export { path: existing.clone(), compression: Compression::None };
    let onto_existing =
        engine.checkpoint(&id, ContainerCheckpointOptions { export: Some(export), ..Default::default() }).await;
    let without_parent =
        engine.checkpoint(&id, ContainerCheckpointOptions { with_previous: true, ..Default::default() }).await;
    let status = engine.status(&id).await?;
    let images = engine.state_root().files(&id).dir.join("checkpoint");
    engine.delete(&id, DeleteMode::Force).await?;
    match onto_existing {
        Err(Error::AlreadyExists { id: Some(refused), evidence: Existence::Seen { path, .. } })
            if refused == id && path == existing => {}
        other => bail!("an export onto an existing file: {other:?}"),
    }
    ensure!(std::fs::read_to_string(&existing)? == "an earlier archive", "the existing archive is untouched");
    match without_parent {
        Err(Error::NotFound { id: Some(refused), evidence: Existence::Seen { path, .. } })
            if refused == id && path.ends_with("pre-checkpoint") => {}
        other => bail!("a dump against a pre-checkpoint never taken: {other:?}"),
    }
    ensure!(status.status == Status::Running, "both refusals left it running: {status:?}");
    ensure!(!images.exists(), "no image directory was made: {}", images.display());
    Ok(Ran::Passed)
}

async fn restore_with_nothing_kept(env: &mut Env) -> CaseResult {
    let verdict = verdict(env, "restore").await?;
    let engine = env.engine()?;
    let id = env.id("nothing-kept");
    let bundle = env.bundle(["sleep", "1000"])?;
    let restored = engine.restore(&id, bundle.path(), ContainerRestoreOptions::default()).await;
    ensure!(!engine.state_root().files(&id).dir.exists(), "nothing is left of {id}");
    match (verdict, restored) {
        (Verdict::Works, Err(Error::NotFound { id: Some(refused), evidence: Existence::Seen { path, .. } }))
            if refused == id && path.ends_with(Path::new(id.as_str()).join("checkpoint")) =>
        {
            Ok(Ran::Passed)
        }
        // A runtime without restore is refused before anything is looked for.
        (Verdict::Refuses(_), Err(Error::Unsupported { feature, .. })) if feature == "restore" => Ok(Ran::Passed),
        (Verdict::Ends(result), _) => result,
        (_, other) => bail!("a restore with no checkpoint kept: {other:?}"),
    }
}

/// Ids are file names (in the engine's state root and in every runtime's): the longest one
/// Linux takes, 255 bytes (`NAME_MAX`), goes through a whole life; 256 is refused up front.
async fn longest_id(env: &mut Env) -> CaseResult {
    let unique = format!("-{}", env.id("n"));
    let longest = format!("{}{unique}", "l".repeat(255 - unique.len()));
    ensure!(longest.len() == 255, "an id of {} bytes", longest.len());
    match ContainerId::new(format!("{longest}x")) {
        Err(Error::InvalidId { .. }) => {}
        other => bail!("an id of 256 bytes: {other:?}"),
    }
    let id = ContainerId::new(longest)?;
    env.own(&id);
    let engine = env.engine()?;
    let bundle = env.bundle(["sh", "-c", "exit 5"])?;
    let created = engine.run(&id, bundle.path(), CreateOptions::default()).await.context("run")?;
    env.track(created.pid);
    let exit = engine.wait(&id).await.context("wait")?;
    engine.delete(&id, DeleteMode::IfStopped).await.context("delete")?;
    ensure!(exit == runtime_core::Exit::Exited(5), "its own exit: {exit:?}");
    Ok(Ran::Passed)
}
