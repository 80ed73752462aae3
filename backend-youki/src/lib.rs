#![doc = include_str!("../README.md")]

use std::path::PathBuf;
use std::sync::Arc;

use runtime_core::dialect::{
    ErrorWording, EventsCommand, GlobalFlags, IntervalFormat, ListFormat, ResourcesInput, StatsShape,
};
use runtime_core::{CliBackend, Dialect, HostCheck, Result, RuntimeConfig, RuntimeFamily, RuntimeVersion, Version};

mod rootless;

pub use rootless::RootlessCgroupV1Check;

/// The youki family: pass it to [`CliBackend::connect`], or use [`Youki::connect`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Youki;

impl Youki {
    /// Connects to youki as `config` says (binary from `PATH` by default).
    pub async fn connect(config: RuntimeConfig) -> Result<CliBackend> {
        CliBackend::connect(Arc::new(Youki), config).await
    }
}

/// youki's dialect at `version` (measured on 0.7.0).
pub fn dialect(_version: Version) -> Dialect {
    Dialect {
        checkpoint_command: Some("checkpointt".into()),
        run_command: Some("run".into()),
        // youki 0.7 has no restore command; the probe asks anyway, so a youki that gains one is
        // recognised by what it answers.
        restore_command: Some("restore".into()),
        features_command: Some("features".into()),
        global_flags: GlobalFlags {
            json_log: true,
            criu: false,
            systemd_cgroup: true,
            cgroup_manager: false,
            rootless: false,
        },
        missing_flags: vec![
            "checkpointt --parent-path".into(),
            "checkpointt --pre-dump".into(),
            "checkpointt --lazy-pages".into(),
        ],
        // `list --format json` still prints a table.
        list_format: ListFormat::Table,
        // `update -r -` exits 0 without reading stdin.
        update_resources: ResourcesInput::File,
        errors: ErrorWording {
            not_found: vec!["container {id} does not exist".into(), "container state directory does not exist".into()],
            already_exists: vec!["container already exists".into()],
            invalid_state: vec![
                "incompatible container status".into(),
                "container not running".into(),
                "invalid container state".into(),
            ],
        },
        min_criu_version: None,
        // `events --interval 5` (whole seconds), pretty-printed statistics documents.
        events: Some(EventsCommand {
            command: "events".into(),
            interval: IntervalFormat::Seconds,
            stats: StatsShape::Youki,
        }),
    }
}

impl RuntimeFamily for Youki {
    fn name(&self) -> &str {
        "youki"
    }

    fn default_binary(&self) -> PathBuf {
        PathBuf::from("youki")
    }

    fn dialect(&self, version: &RuntimeVersion) -> Dialect {
        dialect(version.version)
    }

    fn host_checks(&self) -> Vec<Arc<dyn HostCheck>> {
        vec![Arc::new(RootlessCgroupV1Check::default())]
    }

    fn transient_failures(&self) -> Vec<String> {
        // youki re-executes itself from a sealed memfd copy before anything else; sealing it
        // sometimes fails with EBUSY while the kernel still holds the copy's pages (seen for
        // `--version` and `state` under load), and the next attempt goes through. Every command
        // on a container then loads its `state.json`, which other youki calls on it rewrite in
        // place (truncated, then written): a load that meets the file half written fails before
        // the command does anything (seen for `state` under a hundred concurrent lifecycles).
        vec![TRANSIENT_SEAL_FAILURE.to_owned(), TRANSIENT_STATE_LOAD_FAILURE.to_owned()]
    }

    fn wordless_failures_are_transient(&self) -> bool {
        // youki 0.7 seals its copy before it opens its `--log` (src/main.rs), and says a failure
        // to seal on stderr only, then exits 1; the stderr of `create`, `run` and `restore` is the
        // container's, so there the failure reaches us as an exit 1 with nothing logged. Its
        // other wordless failures (its log or root directory unusable) also come before it does
        // anything, so running such a call once more is harmless.
        true
    }
}

/// How youki 0.7 says it could not seal its own copy (then "Device or resource busy").
pub const TRANSIENT_SEAL_FAILURE: &str = "failed to seal /proc/self/exe";

/// How youki 0.7 says the state file of a container whose directory exists could not be read
/// (then the container's id and the cause); a container without one "does not exist".
pub const TRANSIENT_STATE_LOAD_FAILURE: &str = "could not load state for container";

#[cfg(test)]
mod tests;
