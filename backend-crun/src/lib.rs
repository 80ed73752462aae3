#![doc = include_str!("../README.md")]

use std::path::PathBuf;
use std::sync::Arc;

use runtime_core::dialect::{
    ErrorWording, EventsCommand, GlobalFlags, IntervalFormat, ListFormat, ResourcesInput, StatsShape,
};
use runtime_core::{CliBackend, Dialect, HostCheck, Result, RuntimeConfig, RuntimeFamily, RuntimeVersion, Version};

mod hybrid;

pub use hybrid::HybridCgroupCheck;

/// The crun family: pass it to [`CliBackend::connect`], or use [`Crun::connect`].
#[derive(Debug, Clone, Default)]
pub struct Crun {
    hybrid_check: HybridCgroupCheck,
}

impl Crun {
    /// Connects to crun as `config` says (binary from `PATH` by default).
    pub async fn connect(config: RuntimeConfig) -> Result<CliBackend> {
        CliBackend::connect(Arc::new(Crun::default()), config).await
    }

    /// A crun family that reads the host's mounts from `mountinfo` (for tests on fake layouts).
    pub fn with_mountinfo(mountinfo: impl Into<PathBuf>) -> Self {
        Crun { hybrid_check: HybridCgroupCheck::new(mountinfo) }
    }
}

/// crun 1.22 reworded "no such container" and stopped binding `--rootless` to `--root`.
const REWORDED: Version = Version::new(1, 22, 0);

/// crun's dialect at `version`.
pub fn dialect(version: Version) -> Dialect {
    let mut not_found = vec![
        // Before 1.22: state, kill... read `<root>/<id>/status`; delete opens `<root>/<id>`.
        "/{id}/status`: No such file or directory".into(),
        "/{id}': No such file or directory".into(),
    ];
    if version >= REWORDED {
        not_found.push("container `{id}` does not exist".into());
    }
    Dialect {
        // Registered only when crun is built with CRIU: the probes ask the binary.
        checkpoint_command: Some("checkpoint".into()),
        // Not `run --detach`: crun 1.8.1 leaves the container's init the child of an intermediate
        // crun process that outlives the call, so a supervising subreaper neither gets the init
        // as its child (its exit code is then lost) nor the intermediate's status (a zombie).
        // Create and start give the same container, supervised properly.
        run_command: None,
        restore_command: Some("restore".into()),
        // Present from 1.8.6; older builds answer `unknown command features`, which the probe
        // reports as evidence.
        features_command: Some("features".into()),
        global_flags: GlobalFlags {
            json_log: true,
            criu: false,
            systemd_cgroup: true,
            cgroup_manager: true,
            rootless: version >= REWORDED,
        },
        missing_flags: Vec::new(),
        list_format: ListFormat::Json,
        update_resources: ResourcesInput::Stdin,
        errors: ErrorWording {
            not_found,
            already_exists: vec!["container `{id}` already exists".into()],
            invalid_state: vec![
                "is not in `created` or `stopped` state".into(),
                "is not running".into(),
                "kill container: No such process".into(),
                // The same kill once the stopped init was reaped: no pidfd for it any more.
                "open pidfd: No such process".into(),
                // `start` of a container that already started finds no exec fifo.
                "/{id}/exec.fifo`: No such file or directory".into(),
            ],
        },
        min_criu_version: Some(Version::new(3, 15, 0)),
        // crun 1.8.1 has no `events` command (`unknown command events`); the probe asks the
        // binary, so this spelling, runc's, is used only by a build that answers.
        events: Some(EventsCommand {
            command: "events".into(),
            interval: IntervalFormat::GoDuration,
            stats: StatsShape::Runc,
        }),
    }
}

impl RuntimeFamily for Crun {
    fn name(&self) -> &str {
        "crun"
    }

    fn default_binary(&self) -> PathBuf {
        PathBuf::from("crun")
    }

    fn dialect(&self, version: &RuntimeVersion) -> Dialect {
        dialect(version.version)
    }

    fn host_checks(&self) -> Vec<Arc<dyn HostCheck>> {
        vec![Arc::new(self.hybrid_check.clone())]
    }
}

#[cfg(test)]
mod tests;
