//! A create or restore through conmon that its caller gave up on (dropped) before conmon
//! answered is undone as a failed one is: conmon ended, the container deleted if the runtime
//! made it, conmon's files removed. Nothing can wait on a dropped call, so the undoing runs in a
//! task of its own on the caller's runtime, as the engine rolls back a dropped `run`.
//!
//! The backend is the call's, borrowed for the call only, and the task outlives it: the task
//! therefore runs the runtime's `delete --force` itself, with the backend's binary and global
//! flags, as conmon runs the runtime's create with them.
//!
//! Out of reach: a conmon dropped before it wrote its pid file. The process started here is
//! killed with the call, but the one it forked is not yet named anywhere.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use runtime_core::{ContainerFiles, ContainerId, OciBackend};

use crate::monitor::{container_pid_file, end_conmon, remove_monitor_files};
use crate::watch;

/// A bring-up under way; armed until the call comes back.
pub(crate) struct UnfinishedBringUp {
    undo: Option<Undo>,
}

/// What undoing a dropped bring-up needs, owned.
struct Undo {
    id: ContainerId,
    files: ContainerFiles,
    /// Where the runtime writes the container's pid: written, the runtime made the container.
    pid_file: PathBuf,
    runtime: PathBuf,
    global_args: Vec<OsString>,
}

impl UnfinishedBringUp {
    /// A guard for the bring-up of `id` by `backend`'s runtime, which writes the container's
    /// pid to the caller's `pid_file` or to the one in `files`.
    pub(crate) fn arm(
        backend: &dyn OciBackend,
        id: &ContainerId,
        files: &ContainerFiles,
        pid_file: Option<&Path>,
    ) -> Self {
        let undo = Undo {
            id: id.clone(),
            files: files.clone(),
            pid_file: container_pid_file(files, pid_file),
            runtime: backend.binary().to_path_buf(),
            global_args: backend.global_args(),
        };
        UnfinishedBringUp { undo: Some(undo) }
    }

    /// The call came back: a failure is undone by the caller.
    pub(crate) fn disarm(mut self) {
        self.undo = None;
    }
}

impl Drop for UnfinishedBringUp {
    fn drop(&mut self) {
        let Some(undo) = self.undo.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(undo.run());
            }
            Err(_) => tracing::warn!(id = %undo.id, "a dropped create through conmon could not be undone: no runtime"),
        }
    }
}

impl Undo {
    async fn run(self) {
        let id = &self.id;
        end_conmon(id, &self.files).await;
        if watch::exists(&self.pid_file) {
            self.delete_container().await;
        }
        if let Err(err) = remove_monitor_files(&self.files) {
            tracing::warn!(%id, %err, "removing conmon's files failed");
        }
    }

    /// `<runtime> <global flags> delete --force <id>`, bounded as a runtime call is.
    async fn delete_container(&self) {
        let id = &self.id;
        let mut command = tokio::process::Command::new(&self.runtime);
        command
            .args(&self.global_args)
            .args(["delete", "--force", id.as_str()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match tokio::time::timeout(runtime_core::DEFAULT_TIMEOUT, command.output()).await {
            Ok(Ok(output)) if output.status.success() => {}
            Ok(Ok(output)) => {
                let said = String::from_utf8_lossy(&output.stderr);
                tracing::warn!(%id, status = %output.status, %said, "undoing a dropped create left the container behind");
            }
            Ok(Err(err)) => tracing::warn!(%id, %err, "cannot run the runtime to undo a dropped create"),
            Err(_) => tracing::warn!(%id, "the runtime's delete of a dropped create did not end"),
        }
    }
}
