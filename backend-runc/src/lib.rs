#![doc = include_str!("../README.md")]

use std::path::PathBuf;
use std::sync::Arc;

use runtime_core::dialect::{
    ErrorWording, EventsCommand, GlobalFlags, IntervalFormat, ListFormat, ResourcesInput, StatsShape,
};
use runtime_core::{CliBackend, Dialect, Result, RuntimeConfig, RuntimeFamily, RuntimeVersion, Version};

/// The runc family: pass it to [`CliBackend::connect`], or use [`Runc::connect`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Runc;

impl Runc {
    /// Connects to runc as `config` says (binary from `PATH` by default).
    pub async fn connect(config: RuntimeConfig) -> Result<CliBackend> {
        CliBackend::connect(Arc::new(Runc), config).await
    }
}

/// runc's dialect at `version`.
pub fn dialect(version: Version) -> Dialect {
    Dialect {
        checkpoint_command: Some("checkpoint".into()),
        run_command: Some("run".into()),
        restore_command: Some("restore".into()),
        // `runc features` arrived in 1.1.
        features_command: (version >= Version::new(1, 1, 0)).then(|| "features".into()),
        global_flags: GlobalFlags {
            json_log: true,
            criu: true,
            systemd_cgroup: true,
            cgroup_manager: false,
            rootless: true,
        },
        missing_flags: Vec::new(),
        list_format: ListFormat::Json,
        update_resources: ResourcesInput::Stdin,
        errors: ErrorWording {
            not_found: vec!["container does not exist".into()],
            already_exists: vec!["container with given ID already exists".into()],
            invalid_state: vec![
                "that is not stopped".into(),
                "cannot start an already running container".into(),
                "cannot start a container that has stopped".into(),
                "container not running".into(),
                "container not paused".into(),
                "cannot exec in a stopped container".into(),
            ],
        },
        min_criu_version: Some(Version::new(3, 0, 0)),
        // `events --interval 5s`, one `{"type":"stats",...}` line per sample.
        events: Some(EventsCommand {
            command: "events".into(),
            interval: IntervalFormat::GoDuration,
            stats: StatsShape::Runc,
        }),
    }
}

impl RuntimeFamily for Runc {
    fn name(&self) -> &str {
        "runc"
    }

    fn default_binary(&self) -> PathBuf {
        PathBuf::from("runc")
    }

    fn dialect(&self, version: &RuntimeVersion) -> Dialect {
        dialect(version.version)
    }
}

#[cfg(test)]
mod tests;
