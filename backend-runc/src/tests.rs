//! Exact argv vectors of every runc operation and option.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use runtime_core::dialect::ErrorKind;
use runtime_core::{
    CgroupManager, CheckpointOptions, ContainerId, CreateOptions, ExecOptions, ManageCgroupsMode, RestoreOptions,
    RuntimeConfig, Signal, Version,
};
use runtime_core::{DeleteMode, KillScope};

use super::dialect;

fn argv(items: &[&str]) -> Vec<OsString> {
    items.iter().map(OsString::from).collect()
}

fn null_fd() -> std::os::fd::OwnedFd {
    std::fs::File::open("/dev/null").unwrap().into()
}

fn runc() -> runtime_core::Dialect {
    dialect(Version::new(1, 1, 5))
}

fn id() -> ContainerId {
    ContainerId::new("c1").unwrap()
}

#[test]
fn global_args_carry_root_criu_systemd_and_rootless() {
    let config = RuntimeConfig {
        root: Some(PathBuf::from("/run/x")),
        criu: Some(PathBuf::from("/usr/sbin/criu")),
        cgroup_manager: Some(CgroupManager::Systemd),
        rootless: Some(false),
        ..RuntimeConfig::default()
    };
    assert_eq!(
        runc().global_args(&config).unwrap(),
        argv(&["--root", "/run/x", "--criu", "/usr/sbin/criu", "--systemd-cgroup", "--rootless", "false"])
    );
    assert_eq!(runc().global_args(&RuntimeConfig::default()).unwrap(), argv(&[]));
    let cgroupfs = RuntimeConfig { cgroup_manager: Some(CgroupManager::Cgroupfs), ..RuntimeConfig::default() };
    assert_eq!(runc().global_args(&cgroupfs).unwrap(), argv(&[]), "cgroupfs is runc's default and has no flag");
}

#[test]
fn disabled_cgroup_manager_is_refused() {
    let config = RuntimeConfig { cgroup_manager: Some(CgroupManager::Disabled), ..RuntimeConfig::default() };
    let missing = runc().global_args(&config).unwrap_err();
    assert_eq!(missing.feature, "cgroup manager disabled");
}

#[test]
fn log_args_ask_for_json() {
    assert_eq!(runc().log_args(Path::new("/tmp/l")), argv(&["--log", "/tmp/l", "--log-format", "json"]));
}

#[test]
fn create_argv_by_option() {
    let bundle = Path::new("/b");
    assert_eq!(
        runc().create_args(&id(), bundle, Path::new("/pid"), &CreateOptions::default()).unwrap(),
        argv(&["create", "--bundle", "/b", "--pid-file", "/pid", "c1"])
    );
    let opts = CreateOptions {
        console_socket: Some("/s".into()),
        no_pivot: true,
        no_new_keyring: true,
        preserve_fds: vec![null_fd(), null_fd()],
        ..CreateOptions::default()
    };
    assert_eq!(
        runc().create_args(&id(), bundle, Path::new("/p"), &opts).unwrap(),
        argv(&[
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "--console-socket",
            "/s",
            "--no-pivot",
            "--no-new-keyring",
            "--preserve-fds",
            "2",
            "c1"
        ])
    );
}

#[test]
fn lifecycle_argv() {
    let d = runc();
    assert_eq!(d.start_args(&id()).unwrap(), argv(&["start", "c1"]));
    assert_eq!(d.state_args(&id()).unwrap(), argv(&["state", "c1"]));
    assert_eq!(d.list_args().unwrap(), argv(&["list", "--format", "json"]));
    assert_eq!(d.kill_args(&id(), Signal::TERM, KillScope::Init).unwrap(), argv(&["kill", "c1", "15"]));
    assert_eq!(d.kill_args(&id(), Signal::KILL, KillScope::All).unwrap(), argv(&["kill", "--all", "c1", "9"]));
    assert_eq!(d.delete_args(&id(), DeleteMode::IfStopped).unwrap(), argv(&["delete", "c1"]));
    assert_eq!(d.delete_args(&id(), DeleteMode::Force).unwrap(), argv(&["delete", "--force", "c1"]));
    assert_eq!(d.pause_args(&id()).unwrap(), argv(&["pause", "c1"]));
    assert_eq!(d.resume_args(&id()).unwrap(), argv(&["resume", "c1"]));
    assert_eq!(d.ps_args(&id()).unwrap(), argv(&["ps", "--format", "json", "c1"]));
    assert_eq!(d.update_args(&id(), None).unwrap(), argv(&["update", "-r", "-", "c1"]));
    assert_eq!(d.features_args(), Some(argv(&["features"])));
}

#[test]
fn exec_argv_by_option() {
    let d = runc();
    let mut opts = ExecOptions::default();
    assert_eq!(
        d.exec_args(&id(), Path::new("/proc.json"), Path::new("/pid"), &opts).unwrap(),
        argv(&["exec", "--process", "/proc.json", "--pid-file", "/pid", "c1"])
    );
    opts.detach = true;
    opts.console_socket = Some("/s".into());
    opts.preserve_fds = vec![null_fd()];
    assert_eq!(
        d.exec_args(&id(), Path::new("/proc.json"), Path::new("/pid"), &opts).unwrap(),
        argv(&[
            "exec",
            "--process",
            "/proc.json",
            "--detach",
            "--pid-file",
            "/pid",
            "--console-socket",
            "/s",
            "--preserve-fds",
            "1",
            "c1"
        ])
    );
}

#[test]
fn checkpoint_argv_by_option() {
    let d = runc();
    let plain = CheckpointOptions { image_path: "/img".into(), ..CheckpointOptions::default() };
    assert_eq!(d.checkpoint_args(&id(), &plain).unwrap(), argv(&["checkpoint", "--image-path", "/img", "c1"]));
    let all = CheckpointOptions {
        image_path: "/img".into(),
        work_path: Some("/work".into()),
        parent_path: Some("../parent".into()),
        leave_running: true,
        tcp_established: true,
        ext_unix_sk: true,
        shell_job: true,
        file_locks: true,
        pre_dump: true,
        manage_cgroups_mode: Some(ManageCgroupsMode::Full),
        lazy_pages: true,
        timeout: None,
    };
    assert_eq!(
        d.checkpoint_args(&id(), &all).unwrap(),
        argv(&[
            "checkpoint",
            "--image-path",
            "/img",
            "--work-path",
            "/work",
            "--parent-path",
            "../parent",
            "--leave-running",
            "--tcp-established",
            "--ext-unix-sk",
            "--shell-job",
            "--file-locks",
            "--pre-dump",
            "--manage-cgroups-mode",
            "full",
            "--lazy-pages",
            "c1"
        ])
    );
}

#[test]
fn restore_argv_by_option() {
    let d = runc();
    let plain = RestoreOptions { image_path: "/img".into(), ..RestoreOptions::default() };
    assert_eq!(
        d.restore_args(&id(), Path::new("/b"), Path::new("/pid"), &plain).unwrap(),
        argv(&["restore", "--image-path", "/img", "--bundle", "/b", "--detach", "--pid-file", "/pid", "c1"]),
        "detached unless asked to stay attached"
    );
    let attached = RestoreOptions { image_path: "/img".into(), attached: true, ..RestoreOptions::default() };
    assert_eq!(
        d.restore_args(&id(), Path::new("/b"), Path::new("/pid"), &attached).unwrap(),
        argv(&["restore", "--image-path", "/img", "--bundle", "/b", "--pid-file", "/pid", "c1"])
    );
    let all = RestoreOptions {
        image_path: "/img".into(),
        work_path: Some("/work".into()),
        console_socket: Some("/s".into()),
        no_subreaper: true,
        no_pivot: true,
        tcp_established: true,
        ext_unix_sk: true,
        shell_job: true,
        file_locks: true,
        manage_cgroups_mode: Some(ManageCgroupsMode::Ignore),
        lazy_pages: true,
        ..RestoreOptions::default()
    };
    assert_eq!(
        d.restore_args(&id(), Path::new("/b"), Path::new("/p"), &all).unwrap(),
        argv(&[
            "restore",
            "--image-path",
            "/img",
            "--work-path",
            "/work",
            "--bundle",
            "/b",
            "--detach",
            "--pid-file",
            "/p",
            "--console-socket",
            "/s",
            "--no-subreaper",
            "--no-pivot",
            "--tcp-established",
            "--ext-unix-sk",
            "--shell-job",
            "--file-locks",
            "--manage-cgroups-mode",
            "ignore",
            "--lazy-pages",
            "c1"
        ])
    );
}

#[test]
fn features_command_only_from_1_1() {
    assert_eq!(dialect(Version::new(1, 0, 3)).features_args(), None);
    assert!(dialect(Version::new(1, 1, 0)).features_args().is_some());
}

#[test]
fn classifies_real_runc_wording() {
    let d = runc();
    let c1 = Some(id());
    let kind = |message: &str| d.classify(c1.as_ref(), message);
    assert_eq!(kind("container does not exist"), ErrorKind::NotFound);
    assert_eq!(kind("runc create failed: container with given ID already exists"), ErrorKind::AlreadyExists);
    assert_eq!(kind("cannot delete container c1 that is not stopped: running"), ErrorKind::InvalidState);
    assert_eq!(kind("cannot start an already running container"), ErrorKind::InvalidState);
    assert_eq!(kind("container not running"), ErrorKind::InvalidState);
    assert_eq!(kind("exec failed: cannot exec in a stopped container"), ErrorKind::InvalidState);
    assert_eq!(kind("runc create failed: chdir /nonexist: no such file or directory"), ErrorKind::Other);
}

#[test]
fn events_take_a_go_duration() {
    let d = runc();
    assert_eq!(d.stats_args(&id()).unwrap(), argv(&["events", "--stats", "c1"]));
    let every = |interval| d.events_args(&id(), interval).unwrap();
    assert_eq!(every(std::time::Duration::from_secs(1)), argv(&["events", "--interval", "1s", "c1"]));
    assert_eq!(every(std::time::Duration::from_millis(250)), argv(&["events", "--interval", "250ms", "c1"]));
    assert!(d.events_args(&id(), std::time::Duration::ZERO).is_err(), "runc refuses a zero interval");
}
