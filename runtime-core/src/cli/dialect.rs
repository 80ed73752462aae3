//! How one runtime spells things, as data.
//!
//! runc, crun, youki and plugin runtimes take the same operations with different subcommand
//! names, flags, list formats and error wording. All of that is a [`Dialect`] value, chosen by
//! runtime and version in the backend crates or read from a plugin's descriptor; argv building is
//! a set of pure functions over it, tested as exact vectors. Nothing elsewhere branches on a
//! runtime's name.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cli::config::RuntimeConfig;
use crate::contract::features::CgroupManager;
use crate::contract::id::ContainerId;
use crate::contract::options::{CheckpointOptions, CreateOptions, DeleteMode, ExecOptions, KillScope, RestoreOptions};
use crate::contract::signal::Signal;
use crate::contract::version::Version;

pub use crate::cli::events::{EventsCommand, IntervalFormat, StatsShape};

/// The spelling of one runtime at one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dialect {
    /// The checkpoint subcommand (`checkpoint`; youki: `checkpointt`), if the runtime has one.
    pub checkpoint_command: Option<String>,
    /// The subcommand that creates and starts at once (`run`), taking `--detach`, if the
    /// runtime has one.
    #[serde(default)]
    pub run_command: Option<String>,
    /// The restore subcommand, if the runtime has one. Feature probes still ask the binary.
    pub restore_command: Option<String>,
    /// The `features` subcommand, if the runtime has one.
    pub features_command: Option<String>,
    /// Which global flags it takes.
    pub global_flags: GlobalFlags,
    /// Flags of subcommands it does not take, as `"<subcommand> --<flag>"`
    /// (e.g. `"checkpoint --lazy-pages"`); asking for one is `Error::Unsupported`.
    #[serde(default)]
    pub missing_flags: Vec<String>,
    /// How `list` is read.
    pub list_format: ListFormat,
    /// How `update` receives the resources document.
    pub update_resources: ResourcesInput,
    /// How it words the errors callers match on.
    pub errors: ErrorWording,
    /// The oldest CRIU its checkpoint works with.
    pub min_criu_version: Option<Version>,
    /// Its `events` command (statistics and the event stream), if it has one.
    #[serde(default)]
    pub events: Option<EventsCommand>,
}

/// The global flags a runtime takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalFlags {
    /// `--log FILE --log-format json`, with errors as JSON records.
    pub json_log: bool,
    /// `--criu PATH`.
    pub criu: bool,
    /// `--systemd-cgroup`.
    pub systemd_cgroup: bool,
    /// `--cgroup-manager systemd|cgroupfs|disabled`.
    pub cgroup_manager: bool,
    /// `--rootless true|false`.
    pub rootless: bool,
}

/// How `list` output is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListFormat {
    /// `list --format json` prints an array of states.
    Json,
    /// `list` prints a table whose first column is the id; each id is then asked with `state`.
    Table,
}

/// How `update` receives the resources document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourcesInput {
    /// `-r -` and the document on stdin.
    Stdin,
    /// `-r FILE` (youki 0.7 ignores `-`).
    File,
}

/// Substrings (case-insensitive) that identify an error; `{id}` stands for the container id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorWording {
    /// The container does not exist.
    pub not_found: Vec<String>,
    /// A container with that id exists already.
    pub already_exists: Vec<String>,
    /// The container's state forbids the operation.
    pub invalid_state: Vec<String>,
}

/// What an error message means, per [`ErrorWording`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not found.
    NotFound,
    /// Already exists.
    AlreadyExists,
    /// Invalid state.
    InvalidState,
    /// None of the above.
    Other,
}

/// An option the dialect cannot express: the caller turns it into `Error::Unsupported`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// What was asked for (`"checkpoint"`, `"checkpoint --lazy-pages"`).
    pub feature: String,
    /// Why it cannot be.
    pub reason: String,
}

type Argv = Result<Vec<OsString>, Missing>;

/// Builds one subcommand's argv, refusing flags the dialect lists as missing.
struct ArgvBuilder<'d> {
    dialect: &'d Dialect,
    subcommand: String,
    argv: Vec<OsString>,
    missing: Option<Missing>,
}

impl<'d> ArgvBuilder<'d> {
    fn new(dialect: &'d Dialect, subcommand: &str) -> Self {
        ArgvBuilder { dialect, subcommand: subcommand.to_owned(), argv: vec![subcommand.into()], missing: None }
    }

    fn check(&mut self, flag: &str) {
        if self.missing.is_none() && self.dialect.lacks_flag(&self.subcommand, flag) {
            let feature = format!("{} {flag}", self.subcommand);
            self.missing = Some(Missing { feature, reason: "the runtime does not take this flag".into() });
        }
    }

    fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.argv.push(arg.into());
        self
    }

    fn flag(mut self, flag: &str, on: bool) -> Self {
        if on {
            self.check(flag);
            self.argv.push(flag.into());
        }
        self
    }

    fn value(mut self, flag: &str, value: Option<impl Into<OsString>>) -> Self {
        if let Some(value) = value {
            self.check(flag);
            self.argv.push(flag.into());
            self.argv.push(value.into());
        }
        self
    }

    /// Ends with the container id (always last but for kill's signal), or the first refusal.
    fn id(self, id: &ContainerId) -> Argv {
        self.arg(id.as_str()).finish()
    }

    fn finish(self) -> Argv {
        match self.missing {
            Some(missing) => Err(missing),
            None => Ok(self.argv),
        }
    }
}

/// The flags of `restore` that say how CRIU restores.
fn restore_flags<'d>(builder: ArgvBuilder<'d>, opts: &RestoreOptions) -> ArgvBuilder<'d> {
    builder
        .flag("--no-subreaper", opts.no_subreaper)
        .flag("--no-pivot", opts.no_pivot)
        .flag("--tcp-established", opts.tcp_established)
        .flag("--ext-unix-sk", opts.ext_unix_sk)
        .flag("--shell-job", opts.shell_job)
        .flag("--file-locks", opts.file_locks)
        .value("--manage-cgroups-mode", opts.manage_cgroups_mode.map(|mode| mode.as_str()))
        .flag("--lazy-pages", opts.lazy_pages)
}

/// The flags of a command that makes a container from a bundle (`create`, `run`).
fn container_flags<'d>(
    builder: ArgvBuilder<'d>,
    bundle: &Path,
    pid_file: &Path,
    opts: &CreateOptions,
) -> ArgvBuilder<'d> {
    builder
        .value("--bundle", Some(bundle))
        .value("--pid-file", Some(pid_file))
        .value("--console-socket", path(&opts.console_socket))
        .flag("--no-pivot", opts.no_pivot)
        .flag("--no-new-keyring", opts.no_new_keyring)
        .value("--preserve-fds", nonzero(opts.preserve_fds.len()))
}

fn path(path: &Option<std::path::PathBuf>) -> Option<&Path> {
    path.as_deref()
}

fn nonzero(count: usize) -> Option<String> {
    (count > 0).then(|| count.to_string())
}

impl Dialect {
    /// True when [`Dialect::missing_flags`] lists `flag` (`--lazy-pages`) of `subcommand`.
    pub fn lacks_flag(&self, subcommand: &str, flag: &str) -> bool {
        self.missing_flags.iter().any(|missing| missing.split_once(' ') == Some((subcommand, flag)))
    }

    /// What `--log` is given as, and the format flag, when the runtime writes JSON errors.
    pub fn log_args(&self, log_file: &Path) -> Vec<OsString> {
        if self.global_flags.json_log {
            vec!["--log".into(), log_file.into(), "--log-format".into(), "json".into()]
        } else {
            Vec::new()
        }
    }

    /// The global flags every call (and a monitor's `--runtime-arg`) needs for `config`.
    pub fn global_args(&self, config: &RuntimeConfig) -> Argv {
        let flags = self.global_flags;
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(root) = &config.root {
            argv.extend(["--root".into(), root.into()]);
        }
        if let (Some(criu), true) = (&config.criu, flags.criu) {
            argv.extend(["--criu".into(), criu.into()]);
        }
        match config.cgroup_manager {
            None => {}
            Some(manager) if flags.cgroup_manager => {
                argv.extend(["--cgroup-manager".into(), manager.as_str().into()]);
            }
            Some(CgroupManager::Cgroupfs) => {}
            Some(CgroupManager::Systemd) if flags.systemd_cgroup => argv.push("--systemd-cgroup".into()),
            Some(manager) => {
                return Err(Missing {
                    feature: format!("cgroup manager {}", manager.as_str()),
                    reason: "the runtime has no flag that selects it".into(),
                });
            }
        }
        if let (Some(rootless), true) = (config.rootless, flags.rootless) {
            argv.extend(["--rootless".into(), rootless.to_string().into()]);
        }
        Ok(argv)
    }

    /// `create`; the pid file is always passed (the caller's, or the driver's own) so the init
    /// pid is known without another call.
    pub fn create_args(&self, id: &ContainerId, bundle: &Path, pid_file: &Path, opts: &CreateOptions) -> Argv {
        container_flags(ArgvBuilder::new(self, "create"), bundle, pid_file, opts).id(id)
    }

    /// `run --detach`: `create`'s flags, and the runtime returns once the container started.
    pub fn run_args(&self, id: &ContainerId, bundle: &Path, pid_file: &Path, opts: &CreateOptions) -> Argv {
        let command = self.run_command.as_deref().ok_or_else(|| Missing {
            feature: "run".into(),
            reason: "the runtime has no command that creates and starts at once".into(),
        })?;
        container_flags(ArgvBuilder::new(self, command).flag("--detach", true), bundle, pid_file, opts).id(id)
    }

    /// `start`.
    pub fn start_args(&self, id: &ContainerId) -> Argv {
        ArgvBuilder::new(self, "start").id(id)
    }

    /// `state`.
    pub fn state_args(&self, id: &ContainerId) -> Argv {
        ArgvBuilder::new(self, "state").id(id)
    }

    /// `list`, in the format the dialect reads.
    pub fn list_args(&self) -> Argv {
        let json = self.list_format == ListFormat::Json;
        ArgvBuilder::new(self, "list").value("--format", json.then_some("json")).finish()
    }

    /// `kill`; the signal always goes as a number (youki requires it, all accept numbers).
    pub fn kill_args(&self, id: &ContainerId, signal: Signal, scope: KillScope) -> Argv {
        ArgvBuilder::new(self, "kill")
            .flag("--all", scope == KillScope::All)
            .arg(id.as_str())
            .arg(signal.to_arg())
            .finish()
    }

    /// `delete`.
    pub fn delete_args(&self, id: &ContainerId, mode: DeleteMode) -> Argv {
        ArgvBuilder::new(self, "delete").flag("--force", mode == DeleteMode::Force).id(id)
    }

    /// `pause`.
    pub fn pause_args(&self, id: &ContainerId) -> Argv {
        ArgvBuilder::new(self, "pause").id(id)
    }

    /// `resume`.
    pub fn resume_args(&self, id: &ContainerId) -> Argv {
        ArgvBuilder::new(self, "resume").id(id)
    }

    /// `exec` of the process spec in `process_file`. The driver always passes a pid file (the
    /// caller's, or its own) to reach the process if the runtime has to be killed.
    pub fn exec_args(&self, id: &ContainerId, process_file: &Path, pid_file: &Path, opts: &ExecOptions) -> Argv {
        ArgvBuilder::new(self, "exec")
            .value("--process", Some(process_file))
            .flag("--detach", opts.detach)
            .value("--pid-file", Some(pid_file))
            .value("--console-socket", path(&opts.console_socket))
            .value("--preserve-fds", nonzero(opts.preserve_fds.len()))
            .id(id)
    }

    /// `ps --format json`.
    pub fn ps_args(&self, id: &ContainerId) -> Argv {
        ArgvBuilder::new(self, "ps").value("--format", Some("json")).id(id)
    }

    /// `update -r -` (resources on stdin) or `update -r FILE`.
    pub fn update_args(&self, id: &ContainerId, resources_file: Option<&Path>) -> Argv {
        let source: OsString = match (self.update_resources, resources_file) {
            (ResourcesInput::File, Some(file)) => file.into(),
            _ => "-".into(),
        };
        ArgvBuilder::new(self, "update").value("-r", Some(source)).id(id)
    }

    /// `features`.
    pub fn features_args(&self) -> Option<Vec<OsString>> {
        self.features_command.as_deref().map(|command| vec![command.into()])
    }

    /// The runtime's checkpoint command.
    pub fn checkpoint_args(&self, id: &ContainerId, opts: &CheckpointOptions) -> Argv {
        let command = self.checkpoint_command.as_deref().ok_or_else(|| Missing {
            feature: "checkpoint".into(),
            reason: "the runtime has no checkpoint command".into(),
        })?;
        ArgvBuilder::new(self, command)
            .value("--image-path", Some(&opts.image_path))
            .value("--work-path", path(&opts.work_path))
            .value("--parent-path", path(&opts.parent_path))
            .flag("--leave-running", opts.leave_running)
            .flag("--tcp-established", opts.tcp_established)
            .flag("--ext-unix-sk", opts.ext_unix_sk)
            .flag("--shell-job", opts.shell_job)
            .flag("--file-locks", opts.file_locks)
            .flag("--pre-dump", opts.pre_dump)
            .value("--manage-cgroups-mode", opts.manage_cgroups_mode.map(|mode| mode.as_str()))
            .flag("--lazy-pages", opts.lazy_pages)
            .id(id)
    }

    /// The runtime's restore command; like create, always with a pid file.
    pub fn restore_args(&self, id: &ContainerId, bundle: &Path, pid_file: &Path, opts: &RestoreOptions) -> Argv {
        let command = self.restore_command.as_deref().ok_or_else(|| Missing {
            feature: "restore".into(),
            reason: "the runtime has no restore command".into(),
        })?;
        let builder = ArgvBuilder::new(self, command)
            .value("--image-path", Some(&opts.image_path))
            .value("--work-path", path(&opts.work_path))
            .value("--bundle", Some(bundle))
            .flag("--detach", !opts.attached)
            .value("--pid-file", Some(pid_file))
            .value("--console-socket", path(&opts.console_socket));
        restore_flags(builder, opts).id(id)
    }

    /// The flags of the runtime's restore command that say how CRIU restores, without the
    /// command, the image, the bundle, the pid file, the console and the id: what a monitor
    /// that runs the restore itself hands on (conmon's `--runtime-opt`). The work path is
    /// among them, since conmon names its own (the bundle) first and the runtime keeps the
    /// last one given.
    pub fn restore_option_args(&self, opts: &RestoreOptions) -> Argv {
        let command = self.restore_command.as_deref().ok_or_else(|| Missing {
            feature: "restore".into(),
            reason: "the runtime has no restore command".into(),
        })?;
        let builder = ArgvBuilder::new(self, command).value("--work-path", path(&opts.work_path));
        let mut argv = restore_flags(builder, opts).finish()?;
        argv.remove(0);
        Ok(argv)
    }

    /// `events --stats`: the container's statistics, once.
    pub fn stats_args(&self, id: &ContainerId) -> Argv {
        let events = self.events_command()?;
        ArgvBuilder::new(self, &events.command).flag("--stats", true).id(id)
    }

    /// `events --interval`: statistics every `interval` until the container stops.
    pub fn events_args(&self, id: &ContainerId, interval: Duration) -> Argv {
        let events = self.events_command()?;
        let value = events.interval.format(interval).ok_or_else(|| Missing {
            feature: format!("{} --interval {interval:?}", events.command),
            reason: match events.interval {
                IntervalFormat::GoDuration => "the interval must be longer than zero".into(),
                IntervalFormat::Seconds => "the runtime takes a whole number of seconds, at least one".into(),
            },
        })?;
        ArgvBuilder::new(self, &events.command).value("--interval", Some(value)).id(id)
    }

    /// The `events` command, or why there is none.
    pub(crate) fn events_command(&self) -> Result<&EventsCommand, Missing> {
        self.events
            .as_ref()
            .ok_or_else(|| Missing { feature: "events".into(), reason: "the runtime has no events command".into() })
    }

    /// What `message` means for container `id`.
    pub fn classify(&self, id: Option<&ContainerId>, message: &str) -> ErrorKind {
        let message = message.to_lowercase();
        let matches = |patterns: &[String]| {
            patterns.iter().any(|pattern| {
                if pattern.contains("{id}") {
                    id.is_some_and(|id| message.contains(&pattern.replace("{id}", id.as_str()).to_lowercase()))
                } else {
                    message.contains(&pattern.to_lowercase())
                }
            })
        };
        if matches(&self.errors.already_exists) {
            ErrorKind::AlreadyExists
        } else if matches(&self.errors.not_found) {
            ErrorKind::NotFound
        } else if matches(&self.errors.invalid_state) {
            ErrorKind::InvalidState
        } else {
            ErrorKind::Other
        }
    }
}

/// The ids in a `list` table: the first column of every line after the header.
pub fn ids_from_list_table(table: &str) -> Vec<String> {
    table.lines().skip(1).filter_map(|line| line.split_whitespace().next()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> Dialect {
        Dialect {
            checkpoint_command: None,
            run_command: None,
            restore_command: None,
            features_command: None,
            global_flags: GlobalFlags::default(),
            missing_flags: vec!["kill --all".into(), "exec --preserve-fds".into()],
            list_format: ListFormat::Table,
            update_resources: ResourcesInput::Stdin,
            errors: ErrorWording {
                not_found: vec!["no container {id}".into()],
                already_exists: vec!["exists".into()],
                invalid_state: vec!["wrong state".into()],
            },
            min_criu_version: None,
            events: None,
        }
    }

    fn id() -> ContainerId {
        ContainerId::new("c1").unwrap()
    }

    #[test]
    fn restore_option_args_are_restores_criu_flags_without_command_image_console_or_id() {
        let dialect = Dialect { restore_command: Some("restore".into()), ..plain() };
        let opts = RestoreOptions {
            image_path: "/img".into(),
            work_path: Some("/work".into()),
            pid_file: Some("/pid".into()),
            console_socket: Some("/console".into()),
            tcp_established: true,
            file_locks: true,
            manage_cgroups_mode: Some(crate::ManageCgroupsMode::Ignore),
            ..RestoreOptions::default()
        };
        // The flag names of `runc restore --help`.
        assert_eq!(
            dialect.restore_option_args(&opts).unwrap(),
            ["--work-path", "/work", "--tcp-established", "--file-locks", "--manage-cgroups-mode", "ignore"]
        );
        assert_eq!(plain().restore_option_args(&opts).unwrap_err().feature, "restore");
    }

    #[test]
    fn a_flag_listed_as_missing_is_refused_only_when_asked_for() {
        let dialect = plain();
        assert_eq!(dialect.kill_args(&id(), Signal::KILL, KillScope::Init).unwrap(), ["kill", "c1", "9"]);
        let missing = dialect.kill_args(&id(), Signal::KILL, KillScope::All).unwrap_err();
        assert_eq!(missing.feature, "kill --all");
        let null = || std::fs::File::open("/dev/null").unwrap().into();
        let exec = ExecOptions { preserve_fds: vec![null(), null()], ..ExecOptions::default() };
        assert_eq!(
            dialect.exec_args(&id(), Path::new("/p"), Path::new("/pid"), &exec).unwrap_err().feature,
            "exec --preserve-fds"
        );
    }

    #[test]
    fn commands_the_dialect_lacks_are_missing() {
        let dialect = plain();
        assert_eq!(dialect.checkpoint_args(&id(), &CheckpointOptions::default()).unwrap_err().feature, "checkpoint");
        let restore = RestoreOptions::default();
        assert_eq!(
            dialect.restore_args(&id(), Path::new("/b"), Path::new("/pid"), &restore).unwrap_err().feature,
            "restore"
        );
        assert_eq!(dialect.features_args(), None);
        assert_eq!(dialect.list_args().unwrap(), ["list"], "a table list takes no format flag");
    }

    #[test]
    fn id_patterns_match_only_this_container_and_ignore_case() {
        let dialect = plain();
        assert_eq!(dialect.classify(Some(&id()), "No Container C1 here"), ErrorKind::NotFound);
        assert_eq!(dialect.classify(Some(&id()), "no container c2"), ErrorKind::Other);
        assert_eq!(dialect.classify(None, "no container c1"), ErrorKind::Other);
        assert_eq!(
            dialect.classify(None, "it exists, in the wrong state"),
            ErrorKind::AlreadyExists,
            "first kind wins"
        );
    }

    #[test]
    fn table_lists_give_the_first_column_after_the_header() {
        let table = "ID  PID   STATUS   BUNDLE   CREATED  CREATOR\ny2  6050  Running  /tmp/b1  2026-11-23T12:45:52+00:00  root\n";
        assert_eq!(ids_from_list_table(table), ["y2"]);
        assert!(ids_from_list_table("ID  PID\n").is_empty());
    }

    #[test]
    fn dialects_round_trip_through_json_and_reject_unknown_fields() {
        let dialect = plain();
        let json = serde_json::to_string(&dialect).unwrap();
        assert_eq!(serde_json::from_str::<Dialect>(&json).unwrap(), dialect);
        let typo = json.replacen("missing_flags", "missing_flag", 1);
        assert!(serde_json::from_str::<Dialect>(&typo).is_err());
    }
}
