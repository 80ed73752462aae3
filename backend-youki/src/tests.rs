//! Exact argv vectors of youki operations.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use runtime_core::dialect::ErrorKind;
use runtime_core::{
    CgroupManager, CheckpointOptions, ContainerId, CreateOptions, ExecOptions, RuntimeConfig, Signal, Version,
};
use runtime_core::{DeleteMode, KillScope};

use super::dialect;

fn argv(items: &[&str]) -> Vec<OsString> {
    items.iter().map(OsString::from).collect()
}

fn id() -> ContainerId {
    ContainerId::new("c1").unwrap()
}

fn youki() -> runtime_core::Dialect {
    dialect(Version::new(0, 7, 0))
}

#[test]
fn global_args_have_no_rootless_criu_or_cgroup_manager() {
    let config = RuntimeConfig {
        root: Some(PathBuf::from("/run/y")),
        criu: Some("/criu".into()),
        rootless: Some(true),
        cgroup_manager: Some(CgroupManager::Systemd),
        ..RuntimeConfig::default()
    };
    assert_eq!(youki().global_args(&config).unwrap(), argv(&["--root", "/run/y", "--systemd-cgroup"]));
    let disabled = RuntimeConfig { cgroup_manager: Some(CgroupManager::Disabled), ..RuntimeConfig::default() };
    assert!(youki().global_args(&disabled).is_err());
}

#[test]
fn operation_argv() {
    let d = youki();
    assert_eq!(
        d.create_args(&id(), Path::new("/b"), Path::new("/pid"), &CreateOptions::default()).unwrap(),
        argv(&["create", "--bundle", "/b", "--pid-file", "/pid", "c1"])
    );
    assert_eq!(d.start_args(&id()).unwrap(), argv(&["start", "c1"]));
    assert_eq!(d.state_args(&id()).unwrap(), argv(&["state", "c1"]));
    assert_eq!(d.delete_args(&id(), DeleteMode::Force).unwrap(), argv(&["delete", "--force", "c1"]));
    assert_eq!(d.pause_args(&id()).unwrap(), argv(&["pause", "c1"]));
    assert_eq!(d.resume_args(&id()).unwrap(), argv(&["resume", "c1"]));
    assert_eq!(d.features_args(), Some(argv(&["features"])));
    assert_eq!(d.list_args().unwrap(), argv(&["list"]), "youki's list has no JSON");
    assert_eq!(
        d.kill_args(&id(), Signal::TERM, KillScope::Init).unwrap(),
        argv(&["kill", "c1", "15"]),
        "the signal is always given"
    );
    assert_eq!(
        d.kill_args(&id(), "SIGRTMIN+3".parse().unwrap(), KillScope::All).unwrap()[1..3],
        argv(&["--all", "c1"])
    );
    assert_eq!(d.update_args(&id(), Some(Path::new("/r.json"))).unwrap(), argv(&["update", "-r", "/r.json", "c1"]));
    assert_eq!(
        d.exec_args(&id(), Path::new("/p.json"), Path::new("/pid"), &ExecOptions::default()).unwrap(),
        argv(&["exec", "--process", "/p.json", "--pid-file", "/pid", "c1"])
    );
    assert_eq!(d.ps_args(&id()).unwrap(), argv(&["ps", "--format", "json", "c1"]));
}

#[test]
fn checkpoint_is_spelled_checkpointt_and_refuses_flags_youki_lacks() {
    let d = youki();
    let opts = CheckpointOptions { image_path: "/img".into(), leave_running: true, ..CheckpointOptions::default() };
    assert_eq!(
        d.checkpoint_args(&id(), &opts).unwrap(),
        argv(&["checkpointt", "--image-path", "/img", "--leave-running", "c1"])
    );
    for opts in [
        CheckpointOptions { pre_dump: true, ..CheckpointOptions::default() },
        CheckpointOptions { lazy_pages: true, ..CheckpointOptions::default() },
        CheckpointOptions { parent_path: Some("/p".into()), ..CheckpointOptions::default() },
    ] {
        let missing = d.checkpoint_args(&id(), &opts).unwrap_err();
        assert!(missing.feature.starts_with("checkpointt --"), "{missing:?}");
    }
}

#[test]
fn restore_is_named_so_the_probe_can_ask_youki() {
    let restore = runtime_core::RestoreOptions { image_path: "/img".into(), ..Default::default() };
    assert_eq!(
        youki().restore_args(&id(), Path::new("/b"), Path::new("/pid"), &restore).unwrap(),
        argv(&["restore", "--image-path", "/img", "--bundle", "/b", "--detach", "--pid-file", "/pid", "c1"])
    );
}

#[test]
fn classifies_real_youki_wording() {
    let d = youki();
    let c1 = Some(id());
    let kind = |message: &str| d.classify(c1.as_ref(), message);
    assert_eq!(kind("error in executing command: container c1 does not exist."), ErrorKind::NotFound);
    assert_eq!(kind("error in executing command: container state directory does not exist"), ErrorKind::NotFound);
    assert_eq!(kind("error in executing command: container already exists"), ErrorKind::AlreadyExists);
    assert_eq!(
        kind(
            "error in executing command: failed to delete container c1\n\nCaused by:\n    failed operation due to incompatible container status: `Running`"
        ),
        ErrorKind::InvalidState
    );
    assert_eq!(kind("error in executing command: container other does not exist."), ErrorKind::Other);
}

#[test]
fn events_take_whole_seconds() {
    let d = youki();
    assert_eq!(d.stats_args(&id()).unwrap(), argv(&["events", "--stats", "c1"]));
    let interval = std::time::Duration::from_secs(2);
    assert_eq!(d.events_args(&id(), interval).unwrap(), argv(&["events", "--interval", "2", "c1"]));
    let missing = d.events_args(&id(), std::time::Duration::from_millis(1500)).unwrap_err();
    assert!(missing.feature.starts_with("events --interval"), "{missing:?}");
}
