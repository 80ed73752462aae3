//! youki 0.7 sometimes fails before doing anything, when sealing its own memfd copy meets EBUSY
//! ("failed to seal /proc/self/exe") or when the container's state file it loads is being
//! rewritten by another youki call ("could not load state for container"): such a call is run
//! once more, and only such a call.
//! A script stands in for youki, failing each command's first run in youki's own words.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use backend_youki::Youki;
use runtime_core::{ContainerId, CreateOptions, Error, Exit, Failure, OciBackend, RuntimeConfig};

/// A youki whose every command fails its first run with `first_failure`, then answers as youki
/// 0.7 does; each run is counted in `runs`.
fn flaky_youki(dir: &Path, first_failure: &str) -> std::path::PathBuf {
    let binary = dir.join("youki");
    let script = format!(
        r#"#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in --root|--log|--log-format) shift 2 ;; *) break ;; esac; done
cmd="$1"
echo "$cmd" >> {dir}/runs
if [ ! -e "{dir}/failed-$cmd" ]; then
  touch "{dir}/failed-$cmd"
  printf 'Error: {first_failure}\n\nCaused by:\n    Device or resource busy (os error 16)\n' >&2
  exit 1
fi
case "$cmd" in
  --version) printf 'youki version: 0.7.0\ncommit: 0.7.0\nspec: 1.1.0\n' ;;
  state) echo "container $2 does not exist" >&2; exit 1 ;;
  create) while [ $# -gt 0 ]; do [ "$1" = --pid-file ] && echo $$ > "$2"; shift; done ;;
esac
"#,
        dir = dir.display()
    );
    std::fs::write(&binary, script).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    binary
}

fn runs(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("runs")).unwrap().lines().map(str::to_owned).collect()
}

/// youki 0.7.0's words (`src/main.rs`: `pentacle::ensure_sealed().context("failed to seal
/// /proc/self/exe")`), printed before the cause as above.
const YOUKI_SEAL_FAILURE: &str = "failed to seal /proc/self/exe";

/// youki 0.7.0's words when a container's directory exists but its `state.json` does not load
/// (`src/commands/mod.rs`, `load_container`: "could not load state for container {id}").
const YOUKI_STATE_LOAD_FAILURE: &str = "could not load state for container c1";

#[tokio::test]
async fn a_call_that_fails_to_seal_youkis_copy_is_run_once_more() {
    let dir = tempfile::tempdir().unwrap();
    let binary = flaky_youki(dir.path(), YOUKI_SEAL_FAILURE);
    let config = RuntimeConfig::default().binary(&binary).root(dir.path().join("root"));
    let youki = Youki::connect(config).await.expect("the second --version answers");
    let state = youki.state(&ContainerId::new("c1").unwrap()).await;
    assert!(matches!(state, Err(Error::NotFound { .. })), "the second state answers: {state:?}");
    assert_eq!(runs(dir.path()), ["--version", "--version", "state", "state"]);
}

#[tokio::test]
async fn a_create_whose_failure_to_seal_went_to_the_container_s_stderr_is_run_once_more() {
    let dir = tempfile::tempdir().unwrap();
    let binary = flaky_youki(dir.path(), YOUKI_SEAL_FAILURE);
    let config = RuntimeConfig::default().binary(&binary).root(dir.path().join("root"));
    let youki = Youki::connect(config).await.expect("the second --version answers");
    let bundle = tempfile::tempdir().unwrap();
    std::fs::write(bundle.path().join("config.json"), "{}").unwrap();
    // The container's stdio is /dev/null (the default): youki's stderr, where it says why the
    // first create failed, is the container's, so the library sees an exit 1 without a word.
    let created = youki.create(&ContainerId::new("c1").unwrap(), bundle.path(), CreateOptions::default()).await;
    assert!(created.is_ok(), "the second create answers: {created:?}");
    assert_eq!(runs(dir.path()), ["--version", "--version", "create", "create"]);
}

#[tokio::test]
async fn another_failure_is_not_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let binary = flaky_youki(dir.path(), "permission denied");
    let config = RuntimeConfig::default().binary(&binary).root(dir.path().join("root"));
    let connected = Youki::connect(config).await;
    assert!(matches!(connected, Err(Error::RuntimeFailed(_))), "{connected:?}");
    assert_eq!(runs(dir.path()), ["--version"]);
}

#[tokio::test]
async fn a_state_file_met_half_written_is_read_once_more() {
    let dir = tempfile::tempdir().unwrap();
    let binary = flaky_youki(dir.path(), YOUKI_STATE_LOAD_FAILURE);
    let config = RuntimeConfig::default().binary(&binary).root(dir.path().join("root"));
    let youki = Youki::connect(config).await.expect("the second --version answers");
    let state = youki.state(&ContainerId::new("c1").unwrap()).await;
    assert!(matches!(state, Err(Error::NotFound { .. })), "the second state answers: {state:?}");
    assert_eq!(runs(dir.path()), ["--version", "--version", "state", "state"]);
}

#[tokio::test]
async fn only_youkis_transient_failures_are_transient_when_another_program_relays_them() {
    let dir = tempfile::tempdir().unwrap();
    let binary = flaky_youki(dir.path(), YOUKI_SEAL_FAILURE);
    let config = RuntimeConfig::default().binary(&binary).root(dir.path().join("root"));
    let youki = Youki::connect(config).await.expect("the second --version answers");
    // As conmon relays youki's error output on its sync pipe.
    let relayed =
        |message: &str| Failure { argv: vec!["conmon".into()], status: Exit::Unknown, message: message.into() };
    let sealed = format!("Error: {YOUKI_SEAL_FAILURE}\n\nCaused by:\n    Device or resource busy (os error 16)\n");
    assert!(youki.is_transient(&relayed(&sealed)));
    let half_written = format!("Error: {YOUKI_STATE_LOAD_FAILURE}\n\nCaused by:\n    EOF while parsing a value\n");
    assert!(youki.is_transient(&relayed(&half_written)));
    assert!(!youki.is_transient(&relayed("Error: container c1 does not exist\n")));
    let wordless = |status| Failure { argv: vec!["youki".into()], status, message: String::new() };
    assert!(youki.is_transient(&wordless(Exit::Exited(1))), "an exit 1 before youki's log is open");
    assert!(!youki.is_transient(&wordless(Exit::Exited(2))), "clap's usage error");
    assert!(!youki.is_transient(&wordless(Exit::Signaled(runtime_core::Signal::KILL))));
}
