//! conmon's command line, as a pure function of the backend and what is asked.
//!
//! The runtime conmon runs is the backend's: its binary (`-r`) and the flags every call of it
//! needs (`--runtime-arg`, one per word), so a backend configured with its own `--root` or
//! cgroup manager is driven by conmon exactly as the library would drive it. Nothing here names
//! a runtime flag of its own.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use runtime_core::{ContainerId, OciBackend};

/// Where conmon keeps a container's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogDriver {
    /// `-l k8s-file:PATH`: every line with its time and stream, in the container's directory
    /// (`ctr.log`), at most [`crate::ConmonMonitor::log_size_max`] bytes when set.
    #[default]
    K8sFile,
    /// `-l none`: output is dropped.
    None,
    /// `-l passthrough`: the container writes to conmon's own stdio (here `/dev/null` and
    /// conmon's error file), without a log.
    Passthrough,
}

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
    /// The k8s-file log.
    pub log_file: PathBuf,
}

/// Everything one conmon invocation is made of, besides the backend.
#[derive(Debug)]
pub(crate) struct Invocation<'a> {
    pub id: &'a ContainerId,
    pub bundle: &'a Path,
    pub paths: &'a ConmonPaths,
    pub log: LogDriver,
    pub log_size_max: Option<u64>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// The spec asks for a terminal: conmon makes the console socket and holds the pty.
    pub terminal: bool,
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
    match call.log {
        LogDriver::K8sFile => {
            let mut log = OsString::from("k8s-file:");
            log.push(&paths.log_file);
            argv.extend(["-l".into(), log]);
            if let Some(max) = call.log_size_max {
                argv.extend(["--log-size-max".into(), max.to_string().into()]);
            }
        }
        LogDriver::None => argv.extend(["-l".into(), "none".into()]),
        LogDriver::Passthrough => argv.extend(["-l".into(), "passthrough".into()]),
    }
    for (set, flag) in [(call.no_pivot, "--no-pivot"), (call.no_new_keyring, "--no-new-keyring"), (call.terminal, "-t")]
    {
        if set {
            argv.push(flag.into());
        }
    }
    argv
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
/// everything in its process group after `timeout_secs` (`-T`) when given.
pub(crate) fn exec_argv(
    conmon: &Path,
    backend: &dyn OciBackend,
    id: &ContainerId,
    exec_id: &str,
    paths: &ExecPaths,
    timeout_secs: Option<u64>,
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
    let mut log = OsString::from("k8s-file:");
    log.push(&paths.log_file);
    argv.extend(["-l".into(), log, "-e".into(), "--exec-process-spec".into(), paths.process_spec.clone().into()]);
    if let Some(seconds) = timeout_secs {
        argv.extend(["-T".into(), seconds.to_string().into()]);
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
        let (id, paths) = (ContainerId::new("c1").unwrap(), paths());
        let mut call = Invocation {
            id: &id,
            bundle: Path::new("/bundles/c1"),
            paths: &paths,
            log: LogDriver::K8sFile,
            log_size_max: None,
            no_pivot: false,
            no_new_keyring: false,
            terminal: false,
        };
        change(&mut call);
        create_argv(Path::new("/usr/bin/conmon"), &runc(), &call)
    }

    #[test]
    fn a_plain_create_logs_to_a_k8s_file_and_drives_the_backends_runtime_with_its_root() {
        assert_eq!(argv(|_| {}), words(&format!("{COMMON} -l k8s-file:/s/containers/c1/ctr.log")));
    }

    #[test]
    fn a_bounded_log_carries_its_size() {
        assert_eq!(
            argv(|call| call.log_size_max = Some(1048576)),
            words(&format!("{COMMON} -l k8s-file:/s/containers/c1/ctr.log --log-size-max 1048576"))
        );
    }

    #[test]
    fn other_log_drivers_name_no_file() {
        assert_eq!(argv(|call| call.log = LogDriver::None), words(&format!("{COMMON} -l none")));
        let passthrough = argv(|call| {
            call.log = LogDriver::Passthrough;
            call.log_size_max = Some(10);
        });
        assert_eq!(passthrough, words(&format!("{COMMON} -l passthrough")), "no size for a log that is not kept");
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

    const EXEC: &str = "/usr/bin/conmon --api-version 1 -c c1 -u e7 -r /usr/sbin/runc \
        --runtime-arg --root --runtime-arg /run/test-root -p /s/containers/c1/execs/e7/pidfile \
        -P /s/containers/c1/execs/e7/conmon.pid --exit-dir /s/containers/c1/execs/e7/exits \
        --persist-dir /s/containers/c1/execs/e7 -l k8s-file:/s/containers/c1/execs/e7/exec.log \
        -e --exec-process-spec /s/containers/c1/execs/e7/process.json";

    fn exec(timeout_secs: Option<u64>) -> Vec<OsString> {
        let paths = ExecPaths::in_dir(Path::new("/s/containers/c1/execs/e7"));
        let id = ContainerId::new("c1").unwrap();
        exec_argv(Path::new("/usr/bin/conmon"), &runc(), &id, "e7", &paths, timeout_secs)
    }

    #[test]
    fn a_background_exec_is_conmons_exec_of_a_process_spec_with_its_files_in_the_execs_directory() {
        assert_eq!(exec(None), words(EXEC));
    }

    #[test]
    fn an_exec_timeout_is_conmons_in_whole_seconds() {
        assert_eq!(exec(Some(3)), words(&format!("{EXEC} -T 3")));
    }
}
