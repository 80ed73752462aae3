//! conmon's command line, as a pure function of the backend and what is asked.
//!
//! The runtime conmon runs is the backend's: its binary (`-r`) and the flags every call of it
//! needs (`--runtime-arg`, one per word), so a backend configured with its own `--root` or
//! cgroup manager is driven by conmon exactly as the library would drive it. Nothing here names
//! a runtime flag of its own: a restore's CRIU flags come from the backend too, and conmon hands
//! them to the runtime's restore as `--runtime-opt` (after its own `--work-path`, so the
//! backend's wins).
//!
//! What conmon does besides running the runtime comes from the request (the log's tag, the exit
//! command, the sd-notify relay, the listening descriptors' pid), the monitor (conmon's own log
//! level) and the backend: a runtime driven with the systemd cgroup manager gets `-s`, as
//! libpod passes it, for conmon to name the manager to the runtime too. Descriptors the
//! container is to keep are conmon's fds 3, 4, ...: conmon's runtime inherits them there, and
//! `--preserve-fds N` (a `--runtime-opt`, conmon has no flag of its own) tells it to pass them on.
//!
//! conmon's environment is built here as well, as podman builds it: `HOME`, `XDG_RUNTIME_DIR`
//! and podman's two user namespace variables always, the systemd variables only when the
//! request asks for them.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use runtime_core::{
    AttachStdin, Caller, CgroupManager, ContainerId, ExitCommand, LogDriver, MonitorStdio, OciBackend,
    SystemdPassthrough,
};

use crate::monitor::ConmonLogLevel;

/// The files conmon is told about, all inside the container's directory but the exit directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConmonPaths {
    /// `-p`: where the runtime writes the container's init pid.
    pub container_pid_file: PathBuf,
    /// `-P`: where conmon writes its own pid (the long-lived process, after its double fork).
    pub conmon_pid_file: PathBuf,
    /// `--exit-dir`: conmon writes `<exit dir>/<id>`.
    pub exit_dir: PathBuf,
    /// `--persist-dir`: conmon's own `exit` and `oom` files.
    pub persist_dir: PathBuf,
    /// `--socket-dir-path`: where conmon links the attach socket.
    pub socket_dir: PathBuf,
    /// The k8s-file log unless the request names another.
    pub log_file: PathBuf,
}

/// Everything one conmon invocation is made of, besides the backend.
#[derive(Debug)]
pub(crate) struct Invocation<'a> {
    pub id: &'a ContainerId,
    pub bundle: &'a Path,
    pub paths: &'a ConmonPaths,
    /// Where output is kept and whether stdin stays open for attach.
    pub stdio: &'a MonitorStdio,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// The spec asks for a terminal: conmon makes the console socket and holds the pty.
    pub terminal: bool,
    /// A restore instead of a create.
    pub restore: Option<Restore<'a>>,
    /// conmon's own log level (`--log-level`), the monitor's; `None` is conmon's default.
    pub log_level: Option<ConmonLogLevel>,
    /// Run after the container exits.
    pub exit_command: Option<&'a ExitCommand>,
    /// The sd-notify relay and the listening descriptors' pid.
    pub systemd: &'a SystemdPassthrough,
    /// How many of the descriptors conmon holds at fds 3, 4, ... its runtime is told to pass on
    /// (`--preserve-fds`): listening descriptors the runtime takes itself are not counted.
    pub preserved_fds: usize,
}

/// What makes conmon restore rather than create.
#[derive(Debug)]
pub(crate) struct Restore<'a> {
    /// `--restore`: the checkpoint's image directory.
    pub images: &'a Path,
    /// The backend's restore flags, each a `--runtime-opt`.
    pub runtime_opts: Vec<OsString>,
}

/// conmon's argv, `conmon` first, to create a container through `backend`'s runtime.
pub(crate) fn create_argv(conmon: &Path, backend: &dyn OciBackend, call: &Invocation<'_>) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![conmon.into(), "--api-version".into(), "1".into()];
    let id = call.id.as_str();
    for flag in ["-c", "-u", "-n"] {
        argv.extend([flag.into(), id.into()]);
    }
    argv.extend(["-r".into(), backend.binary().into()]);
    for arg in backend.global_args() {
        argv.extend(["--runtime-arg".into(), arg]);
    }
    let paths = call.paths;
    for (flag, path) in [
        ("-b", call.bundle),
        ("-p", &paths.container_pid_file),
        ("-P", &paths.conmon_pid_file),
        ("--exit-dir", &paths.exit_dir),
        ("--persist-dir", &paths.persist_dir),
        ("--socket-dir-path", &paths.socket_dir),
    ] {
        argv.extend([flag.into(), path.into()]);
    }
    argv.push("-l".into());
    match &call.stdio.log {
        LogDriver::MonitorDefault => argv.push(k8s_file(&paths.log_file)),
        LogDriver::K8sFile { path, max_size } => {
            argv.push(k8s_file(path.as_deref().unwrap_or(&paths.log_file)));
            if let Some(max) = max_size {
                argv.extend(["--log-size-max".into(), max.to_string().into()]);
            }
        }
        LogDriver::None => argv.push("none".into()),
        LogDriver::Passthrough => argv.push("passthrough".into()),
        // conmon ignores the path of a journald log, but wants the colon.
        LogDriver::Journald { tag } => {
            argv.push("journald:".into());
            if let Some(tag) = tag {
                argv.extend(["--log-tag".into(), tag.into()]);
            }
        }
    }
    match call.stdio.stdin {
        AttachStdin::Closed => {}
        AttachStdin::UntilDetach => argv.push("-i".into()),
        AttachStdin::KeptOpen => argv.extend(["-i".into(), "--leave-stdin-open".into()]),
    }
    for (set, flag) in [(call.no_pivot, "--no-pivot"), (call.no_new_keyring, "--no-new-keyring"), (call.terminal, "-t")]
    {
        if set {
            argv.push(flag.into());
        }
    }
    if let Some(level) = call.log_level {
        argv.extend(["--log-level".into(), level.as_str().into()]);
    }
    if let Some(command) = call.exit_command {
        argv.extend(["--exit-command".into(), command.path.clone().into()]);
        for arg in &command.args {
            argv.extend(["--exit-command-arg".into(), arg.clone()]);
        }
        if command.delay_secs > 0 {
            argv.extend(["--exit-delay".into(), command.delay_secs.to_string().into()]);
        }
    }
    if let Some(socket) = &call.systemd.sdnotify_socket {
        argv.extend(["--sdnotify-socket".into(), socket.into()]);
    }
    if call.systemd.replace_listen_pid {
        argv.push("--replace-listen-pid".into());
    }
    if backend.cgroup_manager() == Some(CgroupManager::Systemd) {
        argv.push("-s".into());
    }
    if call.preserved_fds > 0 {
        argv.extend(["--runtime-opt".into(), "--preserve-fds".into()]);
        argv.extend(["--runtime-opt".into(), call.preserved_fds.to_string().into()]);
    }
    if let Some(restore) = &call.restore {
        argv.extend(["--restore".into(), restore.images.into()]);
        for opt in &restore.runtime_opts {
            argv.extend(["--runtime-opt".into(), opt.clone()]);
        }
    }
    argv
}

/// `k8s-file:PATH`.
fn k8s_file(path: &Path) -> OsString {
    let mut log = OsString::from("k8s-file:");
    log.push(path);
    log
}

/// What conmon's environment is made from: the embedding process's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EmbedderEnv {
    /// Rootless ([`Caller`]): conmon gets a runtime directory of the user's.
    pub rootless_uid: Option<u32>,
    pub home: Option<OsString>,
    pub xdg_runtime_dir: Option<OsString>,
    /// `_CONTAINERS_USERNS_CONFIGURED` and `_CONTAINERS_ROOTLESS_UID`, which a parent that made
    /// the user namespace (podman) sets.
    pub userns_configured: Option<OsString>,
    pub containers_rootless_uid: Option<OsString>,
    pub notify_socket: Option<OsString>,
    pub listen_fds: Option<OsString>,
    pub listen_pid: Option<OsString>,
    /// The embedding process's pid, which `LISTEN_PID` names when the descriptors are its own.
    pub pid: u32,
}

impl EmbedderEnv {
    /// This process's.
    pub fn of_this_process() -> Self {
        let caller = Caller::current();
        EmbedderEnv {
            rootless_uid: caller.is_rootless().then_some(caller.uid()),
            home: std::env::var_os("HOME"),
            xdg_runtime_dir: std::env::var_os("XDG_RUNTIME_DIR"),
            userns_configured: std::env::var_os("_CONTAINERS_USERNS_CONFIGURED"),
            containers_rootless_uid: std::env::var_os("_CONTAINERS_ROOTLESS_UID"),
            notify_socket: std::env::var_os("NOTIFY_SOCKET"),
            listen_fds: std::env::var_os("LISTEN_FDS"),
            listen_pid: std::env::var_os("LISTEN_PID"),
            pid: std::process::id(),
        }
    }

    /// How many listening descriptors the embedding process holds at fds 3, 4, ..., as
    /// `sd_listen_fds` counts them: `LISTEN_FDS` when `LISTEN_PID` names this process, else
    /// none (they were meant for another).
    pub fn listening_fds(&self) -> usize {
        let number = |value: &Option<OsString>| value.as_ref()?.to_str()?.parse::<usize>().ok();
        match number(&self.listen_pid) {
            Some(pid) if pid == self.pid as usize => number(&self.listen_fds).unwrap_or(0),
            _ => 0,
        }
    }
}

/// Changes to the environment conmon inherits (it keeps the rest: the runtime it runs finds
/// CRIU in `PATH`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConmonEnv {
    pub set: Vec<(&'static str, OsString)>,
    pub remove: Vec<&'static str>,
}

/// conmon's environment as podman makes it: `XDG_RUNTIME_DIR` empty as root, else the
/// user's (`/run/user/UID` when unset); `_CONTAINERS_USERNS_CONFIGURED`,
/// `_CONTAINERS_ROOTLESS_UID` and `HOME` the embedding process's (empty when unset);
/// `NOTIFY_SOCKET` and `LISTEN_FDS` (with `LISTEN_PID=1`) passed on when asked for and set,
/// `LISTEN_FDS` only when the descriptors are the embedding process's own (and so passed on
/// too), and removed otherwise, so that conmon never acts on the embedding process's by
/// accident.
pub(crate) fn conmon_env(embedder: &EmbedderEnv, systemd: SystemdPassthrough) -> ConmonEnv {
    let mut env = ConmonEnv::default();
    let runtime_dir = match embedder.rootless_uid {
        None => OsString::new(),
        Some(uid) => embedder.xdg_runtime_dir.clone().unwrap_or_else(|| format!("/run/user/{uid}").into()),
    };
    env.set.push(("XDG_RUNTIME_DIR", runtime_dir));
    env.set.push(("_CONTAINERS_USERNS_CONFIGURED", embedder.userns_configured.clone().unwrap_or_default()));
    env.set.push(("_CONTAINERS_ROOTLESS_UID", embedder.containers_rootless_uid.clone().unwrap_or_default()));
    env.set.push(("HOME", embedder.home.clone().unwrap_or_default()));
    match (&embedder.notify_socket, systemd.notify_socket) {
        (Some(socket), true) => env.set.push(("NOTIFY_SOCKET", socket.clone())),
        _ => env.remove.push("NOTIFY_SOCKET"),
    }
    match (embedder.listening_fds(), systemd.listen_fds) {
        (count, true) if count > 0 => {
            env.set.push(("LISTEN_FDS", count.to_string().into()));
            env.set.push(("LISTEN_PID", OsStr::new("1").into()));
        }
        _ => env.remove.extend(["LISTEN_FDS", "LISTEN_PID"]),
    }
    env
}

/// The files of one background exec, all in its own directory: conmon treats an exec much as a
/// container of its own, with its pid file, exit files and log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecPaths {
    /// `--persist-dir`: conmon writes `exit` (and `oom`) here; the exec's other files live here too.
    pub dir: PathBuf,
    /// `--exec-process-spec`: the process, as OCI JSON.
    pub process_spec: PathBuf,
    /// `-p`: where the runtime writes the exec'd process's pid.
    pub pid_file: PathBuf,
    /// `-P`: where conmon writes its own pid.
    pub conmon_pid_file: PathBuf,
    /// `--exit-dir`: conmon writes `<exit dir>/<container id>`. A directory of its own, so that
    /// no container id can name one of the exec's other files.
    pub exit_dir: PathBuf,
    /// The exec's k8s-file log.
    pub log_file: PathBuf,
}

impl ExecPaths {
    /// The files of the exec whose directory is `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        ExecPaths {
            dir: dir.to_path_buf(),
            process_spec: dir.join("process.json"),
            pid_file: dir.join("pidfile"),
            conmon_pid_file: dir.join("conmon.pid"),
            exit_dir: dir.join("exits"),
            log_file: dir.join("exec.log"),
        }
    }
}

/// conmon's argv, `conmon` first, to exec the process in `paths.process_spec` into container `id`
/// in the background through `backend`'s runtime (`-e`), as exec `exec_id` (`-u`), killed with
/// everything in its process group after `timeout_secs` (`-T`) when given. With a `terminal`
/// (`-t`), the exec's directory is conmon's bundle (`-b`), where `--full-attach` makes it bind the
/// attach socket itself rather than through a link in a socket directory, and make its `ctl`
/// fifo.
pub(crate) fn exec_argv(
    conmon: &Path,
    backend: &dyn OciBackend,
    id: &ContainerId,
    exec_id: &str,
    paths: &ExecPaths,
    timeout_secs: Option<u64>,
    terminal: bool,
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![conmon.into(), "--api-version".into(), "1".into()];
    argv.extend(["-c".into(), id.as_str().into(), "-u".into(), exec_id.into()]);
    argv.extend(["-r".into(), backend.binary().into()]);
    for arg in backend.global_args() {
        argv.extend(["--runtime-arg".into(), arg]);
    }
    for (flag, path) in [
        ("-p", &paths.pid_file),
        ("-P", &paths.conmon_pid_file),
        ("--exit-dir", &paths.exit_dir),
        ("--persist-dir", &paths.dir),
    ] {
        argv.extend([flag.into(), path.into()]);
    }
    argv.extend([
        "-l".into(),
        k8s_file(&paths.log_file),
        "-e".into(),
        "--exec-process-spec".into(),
        paths.process_spec.clone().into(),
    ]);
    if let Some(seconds) = timeout_secs {
        argv.extend(["-T".into(), seconds.to_string().into()]);
    }
    if terminal {
        argv.extend(["-b".into(), paths.dir.clone().into(), "--full-attach".into(), "-t".into()]);
    }
    argv
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use backend_runc::Runc;
    use runtime_core::{CliBackend, RuntimeConfig, RuntimeVersion};

    use super::*;

    /// runc at `/usr/sbin/runc` with its state under `/run/test-root`; nothing runs.
    fn runc() -> CliBackend {
        let version = RuntimeVersion::parse("runc version 1.1.5\ncommit: v1.1.5\nspec: 1.0.2-dev\n").unwrap();
        let config = RuntimeConfig::default().binary("/usr/sbin/runc").root("/run/test-root");
        CliBackend::with_version(Arc::new(Runc), config, "/usr/sbin/runc".into(), version).unwrap()
    }

    fn paths() -> ConmonPaths {
        ConmonPaths {
            container_pid_file: "/s/containers/c1/pidfile".into(),
            conmon_pid_file: "/s/containers/c1/conmon.pid".into(),
            exit_dir: "/s/exits".into(),
            persist_dir: "/s/containers/c1".into(),
            socket_dir: "/s/containers/c1/sockets".into(),
            log_file: "/s/containers/c1/ctr.log".into(),
        }
    }

    /// Argv as the test writes it.
    fn words(text: &str) -> Vec<OsString> {
        text.split_whitespace().map(OsString::from).collect()
    }

    const COMMON: &str = "/usr/bin/conmon --api-version 1 -c c1 -u c1 -n c1 -r /usr/sbin/runc \
        --runtime-arg --root --runtime-arg /run/test-root -b /bundles/c1 \
        -p /s/containers/c1/pidfile -P /s/containers/c1/conmon.pid --exit-dir /s/exits \
        --persist-dir /s/containers/c1 --socket-dir-path /s/containers/c1/sockets";

    fn argv(change: impl FnOnce(&mut Invocation<'_>)) -> Vec<OsString> {
        argv_with(&MonitorStdio::default(), change)
    }

    fn argv_with(stdio: &MonitorStdio, change: impl FnOnce(&mut Invocation<'_>)) -> Vec<OsString> {
        argv_of(&runc(), stdio, change)
    }

    /// The argv of container c1 through `backend`, with what `change` sets.
    fn argv_of(
        backend: &dyn OciBackend,
        stdio: &MonitorStdio,
        change: impl FnOnce(&mut Invocation<'_>),
    ) -> Vec<OsString> {
        let (id, paths) = (ContainerId::new("c1").unwrap(), paths());
        let mut call = Invocation {
            id: &id,
            bundle: Path::new("/bundles/c1"),
            paths: &paths,
            stdio,
            no_pivot: false,
            no_new_keyring: false,
            terminal: false,
            restore: None,
            log_level: None,
            exit_command: None,
            systemd: &SystemdPassthrough::default(),
            preserved_fds: 0,
        };
        change(&mut call);
        create_argv(Path::new("/usr/bin/conmon"), backend, &call)
    }

    fn log(log: LogDriver) -> MonitorStdio {
        MonitorStdio { log, ..MonitorStdio::default() }
    }

    #[test]
    fn a_plain_create_logs_to_a_k8s_file_and_drives_the_backends_runtime_with_its_root() {
        assert_eq!(argv(|_| {}), words(&format!("{COMMON} -l k8s-file:/s/containers/c1/ctr.log")));
    }

    #[test]
    fn a_k8s_file_log_goes_where_asked_with_its_bound() {
        let default_path = log(LogDriver::K8sFile { path: None, max_size: Some(1048576) });
        assert_eq!(
            argv_with(&default_path, |_| {}),
            words(&format!("{COMMON} -l k8s-file:/s/containers/c1/ctr.log --log-size-max 1048576"))
        );
        let own_path = log(LogDriver::K8sFile { path: Some("/var/log/c1.log".into()), max_size: None });
        assert_eq!(argv_with(&own_path, |_| {}), words(&format!("{COMMON} -l k8s-file:/var/log/c1.log")));
    }

    #[test]
    fn other_log_drivers_name_no_file() {
        assert_eq!(argv_with(&log(LogDriver::None), |_| {}), words(&format!("{COMMON} -l none")));
        assert_eq!(argv_with(&log(LogDriver::Passthrough), |_| {}), words(&format!("{COMMON} -l passthrough")));
        assert_eq!(
            argv_with(&log(LogDriver::Journald { tag: None }), |_| {}),
            words(&format!("{COMMON} -l journald:"))
        );
    }

    #[test]
    fn stdin_for_attach_is_opened_and_kept_open_as_asked() {
        let until_detach = MonitorStdio { stdin: AttachStdin::UntilDetach, ..MonitorStdio::default() };
        assert_eq!(
            argv_with(&until_detach, |_| {}),
            words(&format!("{COMMON} -l k8s-file:/s/containers/c1/ctr.log -i"))
        );
        let kept_open = MonitorStdio { stdin: AttachStdin::KeptOpen, ..MonitorStdio::default() };
        assert_eq!(
            argv_with(&kept_open, |_| {}),
            words(&format!("{COMMON} -l k8s-file:/s/containers/c1/ctr.log -i --leave-stdin-open"))
        );
    }

    #[test]
    fn create_options_and_a_terminal_become_conmons_flags() {
        let all = argv(|call| {
            call.no_pivot = true;
            call.no_new_keyring = true;
            call.terminal = true;
        });
        assert_eq!(
            all,
            words(&format!("{COMMON} -l k8s-file:/s/containers/c1/ctr.log --no-pivot --no-new-keyring -t"))
        );
    }

    #[test]
    fn a_restore_names_the_images_and_hands_each_restore_flag_on_as_a_runtime_opt() {
        let restore = argv(|call| {
            call.restore = Some(Restore {
                images: Path::new("/s/containers/c1/checkpoint"),
                runtime_opts: words("--work-path /s/containers/c1/checkpoint --tcp-established"),
            })
        });
        assert_eq!(
            restore,
            words(&format!(
                "{COMMON} -l k8s-file:/s/containers/c1/ctr.log --restore /s/containers/c1/checkpoint \
                 --runtime-opt --work-path --runtime-opt /s/containers/c1/checkpoint \
                 --runtime-opt --tcp-established"
            ))
        );
    }

    #[test]
    fn a_journal_logs_tag_and_conmons_log_level_become_their_flags() {
        let tagged = log(LogDriver::Journald { tag: Some("web".into()) });
        let argv = argv_with(&tagged, |call| call.log_level = Some(ConmonLogLevel::Debug));
        assert_eq!(argv, words(&format!("{COMMON} -l journald: --log-tag web --log-level debug")));
    }

    #[test]
    fn an_exit_command_is_its_path_each_argument_and_a_delay_only_when_there_is_one() {
        // Leaked: `argv` hands its closure an invocation of any lifetime.
        let delayed: &'static ExitCommand = Box::leak(Box::new(ExitCommand {
            path: "/usr/bin/podman".into(),
            args: words("container cleanup c1"),
            delay_secs: 300,
        }));
        assert_eq!(
            argv(|call| call.exit_command = Some(delayed)),
            words(&format!(
                "{COMMON} -l k8s-file:/s/containers/c1/ctr.log --exit-command /usr/bin/podman \
                 --exit-command-arg container --exit-command-arg cleanup --exit-command-arg c1 --exit-delay 300"
            ))
        );
        let at_once: &'static ExitCommand =
            Box::leak(Box::new(ExitCommand { path: "/bin/true".into(), args: Vec::new(), delay_secs: 0 }));
        assert_eq!(
            argv(|call| call.exit_command = Some(at_once)),
            words(&format!("{COMMON} -l k8s-file:/s/containers/c1/ctr.log --exit-command /bin/true"))
        );
    }

    #[test]
    fn the_sd_notify_relay_and_the_listen_pid_become_their_flags() {
        let systemd: &'static SystemdPassthrough = Box::leak(Box::new(SystemdPassthrough {
            sdnotify_socket: Some("/run/systemd/notify".into()),
            replace_listen_pid: true,
            ..SystemdPassthrough::default()
        }));
        assert_eq!(
            argv(|call| call.systemd = systemd),
            words(&format!(
                "{COMMON} -l k8s-file:/s/containers/c1/ctr.log --sdnotify-socket /run/systemd/notify \
                 --replace-listen-pid"
            ))
        );
    }

    #[test]
    fn preserved_fds_are_counted_to_the_runtime_as_a_runtime_opt() {
        assert_eq!(
            argv(|call| call.preserved_fds = 2),
            words(&format!(
                "{COMMON} -l k8s-file:/s/containers/c1/ctr.log --runtime-opt --preserve-fds --runtime-opt 2"
            ))
        );
    }

    #[test]
    fn a_runtime_on_the_systemd_cgroup_manager_gets_conmons_s_and_others_do_not() {
        let version = RuntimeVersion::parse("runc version 1.1.5\ncommit: v1.1.5\nspec: 1.0.2-dev\n").unwrap();
        let backend = |manager| {
            let config = RuntimeConfig { cgroup_manager: Some(manager), ..RuntimeConfig::default() }
                .binary("/usr/sbin/runc")
                .root("/run/test-root");
            CliBackend::with_version(Arc::new(Runc), config, "/usr/sbin/runc".into(), version.clone()).unwrap()
        };
        // runc's own flag for the manager stays among the runtime's args; conmon gets `-s`.
        let systemd_common = COMMON
            .replace("--runtime-arg /run/test-root", "--runtime-arg /run/test-root --runtime-arg --systemd-cgroup");
        assert_eq!(
            argv_of(&backend(CgroupManager::Systemd), &MonitorStdio::default(), |_| {}),
            words(&format!("{systemd_common} -l k8s-file:/s/containers/c1/ctr.log -s"))
        );
        assert_eq!(
            argv_of(&backend(CgroupManager::Cgroupfs), &MonitorStdio::default(), |_| {}),
            words(&format!("{COMMON} -l k8s-file:/s/containers/c1/ctr.log"))
        );
    }

    fn set(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, OsString)> {
        pairs.iter().map(|(name, value)| (*name, OsString::from(value))).collect()
    }

    fn embedder() -> EmbedderEnv {
        EmbedderEnv {
            rootless_uid: None,
            home: Some("/root".into()),
            xdg_runtime_dir: Some("/run/user/0".into()),
            userns_configured: None,
            containers_rootless_uid: None,
            notify_socket: Some("/run/systemd/notify".into()),
            listen_fds: Some("2".into()),
            listen_pid: Some("4242".into()),
            pid: 4242,
        }
    }

    #[test]
    fn listening_descriptors_are_the_embedding_processes_only_when_listen_pid_names_it() {
        assert_eq!(embedder().listening_fds(), 2);
        for (listen_pid, listen_fds) in [(Some("1"), Some("2")), (None, Some("2")), (Some("4242"), Some("two"))] {
            let other = EmbedderEnv {
                listen_pid: listen_pid.map(Into::into),
                listen_fds: listen_fds.map(Into::into),
                ..embedder()
            };
            assert_eq!(other.listening_fds(), 0, "{listen_pid:?} {listen_fds:?}");
        }
        let theirs = EmbedderEnv { listen_pid: Some("1".into()), ..embedder() };
        let env = conmon_env(&theirs, SystemdPassthrough { listen_fds: true, ..SystemdPassthrough::default() });
        assert!(env.set.iter().all(|(name, _)| *name != "LISTEN_FDS"), "{env:?}");
        assert!(env.remove.contains(&"LISTEN_FDS"), "{env:?}");
    }

    #[test]
    fn as_root_conmon_gets_an_empty_runtime_dir_and_home_and_no_systemd_variables_unasked() {
        let env = conmon_env(&embedder(), SystemdPassthrough::default());
        let unset = [("_CONTAINERS_USERNS_CONFIGURED", ""), ("_CONTAINERS_ROOTLESS_UID", "")];
        assert_eq!(env.set, set(&[&[("XDG_RUNTIME_DIR", "")][..], &unset, &[("HOME", "/root")]].concat()));
        assert_eq!(env.remove, ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID"]);
    }

    #[test]
    fn rootless_conmon_gets_the_users_runtime_dir_or_run_user_uid() {
        let rootless = EmbedderEnv { rootless_uid: Some(1000), xdg_runtime_dir: Some("/tmp/xdg".into()), ..embedder() };
        let env = conmon_env(&rootless, SystemdPassthrough::default());
        assert_eq!(env.set[0], ("XDG_RUNTIME_DIR", "/tmp/xdg".into()));
        let unset = EmbedderEnv { xdg_runtime_dir: None, home: None, ..rootless };
        let env = conmon_env(&unset, SystemdPassthrough::default());
        assert_eq!(
            env.set,
            set(&[
                ("XDG_RUNTIME_DIR", "/run/user/1000"),
                ("_CONTAINERS_USERNS_CONFIGURED", ""),
                ("_CONTAINERS_ROOTLESS_UID", ""),
                ("HOME", "")
            ])
        );
    }

    #[test]
    fn conmon_gets_podmans_user_namespace_variables_as_the_embedder_has_them() {
        let in_userns = EmbedderEnv {
            rootless_uid: Some(1000),
            userns_configured: Some("done".into()),
            containers_rootless_uid: Some("1000".into()),
            ..embedder()
        };
        let env = conmon_env(&in_userns, SystemdPassthrough::default());
        assert_eq!(
            env.set[..3],
            set(&[
                ("XDG_RUNTIME_DIR", "/run/user/0"),
                ("_CONTAINERS_USERNS_CONFIGURED", "done"),
                ("_CONTAINERS_ROOTLESS_UID", "1000")
            ])
        );
    }

    #[test]
    fn asked_for_systemd_variables_are_passed_on_with_listen_pid_1() {
        let both = SystemdPassthrough { notify_socket: true, listen_fds: true, ..SystemdPassthrough::default() };
        let env = conmon_env(&embedder(), both.clone());
        assert_eq!(
            env.set,
            set(&[
                ("XDG_RUNTIME_DIR", ""),
                ("_CONTAINERS_USERNS_CONFIGURED", ""),
                ("_CONTAINERS_ROOTLESS_UID", ""),
                ("HOME", "/root"),
                ("NOTIFY_SOCKET", "/run/systemd/notify"),
                ("LISTEN_FDS", "2"),
                ("LISTEN_PID", "1"),
            ])
        );
        assert!(env.remove.is_empty());
        let without = EmbedderEnv { notify_socket: None, listen_fds: None, ..embedder() };
        assert_eq!(conmon_env(&without, both).remove, ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID"]);
    }

    const EXEC: &str = "/usr/bin/conmon --api-version 1 -c c1 -u e7 -r /usr/sbin/runc \
        --runtime-arg --root --runtime-arg /run/test-root -p /s/containers/c1/execs/e7/pidfile \
        -P /s/containers/c1/execs/e7/conmon.pid --exit-dir /s/containers/c1/execs/e7/exits \
        --persist-dir /s/containers/c1/execs/e7 -l k8s-file:/s/containers/c1/execs/e7/exec.log \
        -e --exec-process-spec /s/containers/c1/execs/e7/process.json";

    fn exec(timeout_secs: Option<u64>, terminal: bool) -> Vec<OsString> {
        let paths = ExecPaths::in_dir(Path::new("/s/containers/c1/execs/e7"));
        let id = ContainerId::new("c1").unwrap();
        exec_argv(Path::new("/usr/bin/conmon"), &runc(), &id, "e7", &paths, timeout_secs, terminal)
    }

    #[test]
    fn a_background_exec_is_conmons_exec_of_a_process_spec_with_its_files_in_the_execs_directory() {
        assert_eq!(exec(None, false), words(EXEC));
    }

    #[test]
    fn an_exec_timeout_is_conmons_in_whole_seconds() {
        assert_eq!(exec(Some(3), false), words(&format!("{EXEC} -T 3")));
    }

    #[test]
    fn an_exec_with_a_terminal_has_its_attach_socket_and_ctl_fifo_in_its_own_directory() {
        assert_eq!(exec(None, true), words(&format!("{EXEC} -b /s/containers/c1/execs/e7 --full-attach -t")));
        assert_eq!(exec(Some(2), true), words(&format!("{EXEC} -T 2 -b /s/containers/c1/execs/e7 --full-attach -t")));
    }
}
