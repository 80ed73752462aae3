//! Exact argv vectors of crun operations, and what changes with its version.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use runtime_core::dialect::ErrorKind;
use runtime_core::{
    CgroupManager, CheckpointOptions, ContainerId, CreateOptions, ExecOptions, RestoreOptions, RuntimeConfig, Signal,
    Version,
};
use runtime_core::{DeleteMode, KillScope};

use super::dialect;

fn argv(items: &[&str]) -> Vec<OsString> {
    items.iter().map(OsString::from).collect()
}

fn id() -> ContainerId {
    ContainerId::new("c1").unwrap()
}

const DEBIAN: Version = Version::new(1, 8, 1);
const NEW: Version = Version::new(1, 22, 0);

#[test]
fn global_args_use_cgroup_manager_for_every_manager() {
    for (manager, value) in [
        (CgroupManager::Systemd, "systemd"),
        (CgroupManager::Cgroupfs, "cgroupfs"),
        (CgroupManager::Disabled, "disabled"),
    ] {
        let config = RuntimeConfig {
            root: Some(PathBuf::from("/run/x")),
            cgroup_manager: Some(manager),
            ..RuntimeConfig::default()
        };
        assert_eq!(
            dialect(DEBIAN).global_args(&config).unwrap(),
            argv(&["--root", "/run/x", "--cgroup-manager", value])
        );
    }
}

#[test]
fn never_passes_criu_and_passes_rootless_only_from_1_22() {
    let config = RuntimeConfig { criu: Some("/criu".into()), rootless: Some(true), ..RuntimeConfig::default() };
    assert_eq!(dialect(DEBIAN).global_args(&config).unwrap(), argv(&[]), "crun < 1.22 binds --rootless to --root");
    assert_eq!(dialect(Version::new(1, 21, 9)).global_args(&config).unwrap(), argv(&[]));
    assert_eq!(dialect(NEW).global_args(&config).unwrap(), argv(&["--rootless", "true"]));
}

#[test]
fn operation_argv() {
    let d = dialect(DEBIAN);
    assert_eq!(
        d.create_args(&id(), Path::new("/b"), Path::new("/pid"), &CreateOptions::default()).unwrap(),
        argv(&["create", "--bundle", "/b", "--pid-file", "/pid", "c1"])
    );
    assert_eq!(d.start_args(&id()).unwrap(), argv(&["start", "c1"]));
    assert_eq!(d.state_args(&id()).unwrap(), argv(&["state", "c1"]));
    assert_eq!(d.list_args().unwrap(), argv(&["list", "--format", "json"]));
    assert_eq!(d.kill_args(&id(), Signal::TERM, KillScope::All).unwrap(), argv(&["kill", "--all", "c1", "15"]));
    assert_eq!(d.delete_args(&id(), DeleteMode::Force).unwrap(), argv(&["delete", "--force", "c1"]));
    assert_eq!(d.pause_args(&id()).unwrap(), argv(&["pause", "c1"]));
    assert_eq!(d.resume_args(&id()).unwrap(), argv(&["resume", "c1"]));
    assert_eq!(d.ps_args(&id()).unwrap(), argv(&["ps", "--format", "json", "c1"]));
    assert_eq!(d.update_args(&id(), Some(Path::new("/ignored"))).unwrap(), argv(&["update", "-r", "-", "c1"]));
    assert_eq!(
        d.exec_args(&id(), Path::new("/p.json"), Path::new("/pid"), &ExecOptions::default()).unwrap(),
        argv(&["exec", "--process", "/p.json", "--pid-file", "/pid", "c1"])
    );
    let checkpoint =
        CheckpointOptions { image_path: "/img".into(), leave_running: true, ..CheckpointOptions::default() };
    assert_eq!(
        d.checkpoint_args(&id(), &checkpoint).unwrap(),
        argv(&["checkpoint", "--image-path", "/img", "--leave-running", "c1"])
    );
    let restore = RestoreOptions { image_path: "/img".into(), ..RestoreOptions::default() };
    assert_eq!(
        d.restore_args(&id(), Path::new("/b"), Path::new("/pid"), &restore).unwrap(),
        argv(&["restore", "--image-path", "/img", "--bundle", "/b", "--detach", "--pid-file", "/pid", "c1"])
    );
}

#[test]
fn not_found_wording_before_and_after_1_22() {
    let c1 = Some(id());
    let old = "error opening file `/run/crun/c1/status`: No such file or directory";
    let delete = "cannot open directory '/run/crun/c1': No such file or directory";
    let reworded = "container `c1` does not exist";
    assert_eq!(dialect(DEBIAN).classify(c1.as_ref(), old), ErrorKind::NotFound);
    assert_eq!(dialect(DEBIAN).classify(c1.as_ref(), delete), ErrorKind::NotFound);
    assert_eq!(dialect(DEBIAN).classify(c1.as_ref(), reworded), ErrorKind::Other);
    assert_eq!(dialect(NEW).classify(c1.as_ref(), reworded), ErrorKind::NotFound);
    assert_eq!(dialect(NEW).classify(c1.as_ref(), old), ErrorKind::NotFound);
}

#[test]
fn classifies_real_crun_wording() {
    let d = dialect(DEBIAN);
    let c1 = Some(id());
    let kind = |message: &str| d.classify(c1.as_ref(), message);
    assert_eq!(kind("container `c1` already exists"), ErrorKind::AlreadyExists);
    assert_eq!(kind("the container `c1` is not in `created` or `stopped` state"), ErrorKind::InvalidState);
    assert_eq!(kind("the container `c1` is not running"), ErrorKind::InvalidState);
    assert_eq!(kind("kill container: No such process"), ErrorKind::InvalidState);
    // crun 1.8.1's kill of a stopped container whose init was reaped already (its parent
    // reaped it at once, as in a pid namespace whose init waits for every child).
    assert_eq!(kind("open pidfd: No such process"), ErrorKind::InvalidState);
    assert_eq!(kind("cannot open `/run/crun/c1/exec.fifo`: No such file or directory"), ErrorKind::InvalidState);
    assert_eq!(kind("chdir `/nonexist` failed: No such file or directory"), ErrorKind::Other);
    assert_eq!(
        kind("error opening file `/run/crun/other/status`: No such file or directory"),
        ErrorKind::Other,
        "another container's file is not this container missing"
    );
}

#[test]
fn events_are_spelled_as_runc_spells_them_for_the_probe_to_ask() {
    let d = dialect(DEBIAN);
    assert_eq!(d.stats_args(&id()).unwrap(), argv(&["events", "--stats", "c1"]));
    let interval = std::time::Duration::from_secs(1);
    assert_eq!(d.events_args(&id(), interval).unwrap(), argv(&["events", "--interval", "1s", "c1"]));
}

#[test]
fn run_is_left_to_create_and_start_since_crun_run_leaves_an_intermediate_process() {
    let missing = dialect(DEBIAN).run_args(&id(), Path::new("/b"), Path::new("/p"), &CreateOptions::default());
    assert_eq!(missing.unwrap_err().feature, "run");
}
