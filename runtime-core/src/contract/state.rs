//! Container state as runtimes report it, parsed tolerantly.
//!
//! The three runtimes disagree on details the OCI spec leaves open: youki writes `owner` as an
//! integer and keeps `pid` after the container stopped, crun writes `rootfs` as given in the
//! config and adds `systemd-scope`, runc writes `created` with nanoseconds. This module accepts
//! all of them and normalises what callers rely on: `pid` is only present while there is a
//! process, and `created` is a real timestamp (containerd's `runc` crate parses it as an integer
//! and fails on every real runc).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::contract::error::{Error, Result};
use crate::contract::id::ContainerId;

/// The lifecycle status of a container, as in the OCI runtime spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The runtime is still creating it.
    Creating,
    /// Created; the user process has not started.
    Created,
    /// The user process is running.
    Running,
    /// Frozen by `pause`.
    Paused,
    /// The process has exited.
    Stopped,
}

impl Status {
    fn parse(raw: &str) -> Option<Status> {
        match raw.to_ascii_lowercase().as_str() {
            "creating" => Some(Status::Creating),
            "created" => Some(Status::Created),
            "running" => Some(Status::Running),
            "paused" => Some(Status::Paused),
            "stopped" => Some(Status::Stopped),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// The state of one container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerState {
    /// The OCI spec version the runtime reports.
    pub oci_version: String,
    /// The container's id.
    pub id: ContainerId,
    /// Its status.
    pub status: Status,
    /// The init process, while there is one: `None` once stopped, whatever the runtime says.
    pub pid: Option<u32>,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The root filesystem, as the runtime reports it (crun: as written in the config).
    pub rootfs: Option<PathBuf>,
    /// When it was created.
    pub created: Option<DateTime<FixedOffset>>,
    /// Who owns it (a user name, or a uid as text).
    pub owner: Option<String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawState {
    #[serde(default)]
    oci_version: String,
    id: String,
    status: String,
    #[serde(default)]
    pid: Option<i64>,
    #[serde(default)]
    bundle: PathBuf,
    #[serde(default)]
    rootfs: Option<PathBuf>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    owner: Option<Owner>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Owner {
    Name(String),
    Uid(u64),
}

impl ContainerState {
    /// Parses one state document (`state` output, or one element of `list --format json`).
    pub fn from_json(json: &[u8]) -> Result<Self> {
        let raw: RawState =
            serde_json::from_slice(json).map_err(|err| Error::parse_failed("container state", err, json))?;
        Self::from_raw(raw)
    }

    /// Parses a JSON array of states; `null` (runc with no containers) is an empty list.
    pub fn list_from_json(json: &[u8]) -> Result<Vec<Self>> {
        let raw: Option<Vec<RawState>> =
            serde_json::from_slice(json).map_err(|err| Error::parse_failed("container list", err, json))?;
        raw.unwrap_or_default().into_iter().map(Self::from_raw).collect()
    }

    fn from_raw(raw: RawState) -> Result<Self> {
        let status = Status::parse(&raw.status)
            .ok_or_else(|| Error::parse("container state", format!("unknown status {:?}", raw.status)))?;
        let created = match raw.created.as_deref() {
            None | Some("") => None,
            Some(text) => Some(
                DateTime::parse_from_rfc3339(text)
                    .map_err(|err| Error::parse_failed("the created time (RFC 3339)", err, text.as_bytes()))?,
            ),
        };
        let pid = match (status, raw.pid) {
            (Status::Stopped, _) => None,
            (_, Some(pid)) if pid > 0 => u32::try_from(pid).ok(),
            _ => None,
        };
        let owner = match raw.owner {
            Some(Owner::Name(name)) if name.is_empty() => None,
            Some(Owner::Name(name)) => Some(name),
            Some(Owner::Uid(uid)) => Some(uid.to_string()),
            None => None,
        };
        Ok(ContainerState {
            oci_version: raw.oci_version,
            id: ContainerId::new(raw.id)?,
            status,
            pid,
            bundle: raw.bundle,
            rootfs: raw.rootfs,
            created,
            owner,
            annotations: raw.annotations.unwrap_or_default(),
        })
    }
}

/// The first bytes of some output, for error messages.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    const SHOWN: usize = 200;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(SHOWN)]);
    if bytes.len() > SHOWN { format!("{text}…") } else { text.into_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNC_CREATED: &str = include_str!("../../tests/fixtures/runc-state-created.json");
    const RUNC_STOPPED: &str = include_str!("../../tests/fixtures/runc-state-stopped.json");
    const CRUN_RUNNING: &str = include_str!("../../tests/fixtures/crun-state-running.json");
    const YOUKI_RUNNING: &str = include_str!("../../tests/fixtures/youki-state-running.json");
    const YOUKI_STOPPED: &str = include_str!("../../tests/fixtures/youki-state-stopped.json");
    const RUNC_LIST: &str = include_str!("../../tests/fixtures/runc-list.json");
    const CRUN_LIST: &str = include_str!("../../tests/fixtures/crun-list.json");

    #[test]
    fn parses_real_runc_state_with_rfc3339_nanosecond_created() {
        let state = ContainerState::from_json(RUNC_CREATED.as_bytes()).unwrap();
        assert_eq!(state.status, Status::Created);
        assert!(state.pid.unwrap() > 0);
        assert_eq!(state.owner, None, "runc writes an empty owner");
        let created = state.created.unwrap();
        let written = created.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        assert!(RUNC_CREATED.contains(&written), "nanoseconds kept: {written}");
        assert_eq!(state.rootfs.as_deref(), Some(std::path::Path::new("/tmp/b1/rootfs")));
    }

    #[test]
    fn stopped_runc_state_has_no_pid() {
        let state = ContainerState::from_json(RUNC_STOPPED.as_bytes()).unwrap();
        assert_eq!((state.status, state.pid), (Status::Stopped, None));
    }

    #[test]
    fn parses_real_crun_state_with_relative_rootfs_and_extra_keys() {
        let state = ContainerState::from_json(CRUN_RUNNING.as_bytes()).unwrap();
        assert_eq!(state.status, Status::Running);
        assert_eq!(state.rootfs.as_deref(), Some(std::path::Path::new("rootfs")));
        assert_eq!(state.owner.as_deref(), Some("root"));
    }

    #[test]
    fn parses_real_youki_state_with_integer_owner() {
        let state = ContainerState::from_json(YOUKI_RUNNING.as_bytes()).unwrap();
        assert_eq!(state.status, Status::Running);
        assert_eq!(state.owner.as_deref(), Some("0"));
        assert!(state.pid.is_some());
    }

    #[test]
    fn youki_pid_that_survives_the_stop_is_dropped() {
        assert!(YOUKI_STOPPED.contains("\"pid\": "), "fixture keeps the stale pid");
        let state = ContainerState::from_json(YOUKI_STOPPED.as_bytes()).unwrap();
        assert_eq!((state.status, state.pid), (Status::Stopped, None));
    }

    #[test]
    fn parses_real_lists_and_runc_null_for_no_containers() {
        assert_eq!(ContainerState::list_from_json(RUNC_LIST.as_bytes()).unwrap().len(), 1);
        assert_eq!(ContainerState::list_from_json(CRUN_LIST.as_bytes()).unwrap().len(), 1);
        assert!(ContainerState::list_from_json(b"null").unwrap().is_empty());
    }

    #[test]
    fn rejects_unknown_status_and_bad_timestamps_with_parse_errors() {
        let bad_status = r#"{"id":"a","status":"exploded","pid":1}"#;
        assert!(matches!(ContainerState::from_json(bad_status.as_bytes()), Err(Error::Parse { .. })));
        let bad_time = r#"{"id":"a","status":"running","pid":1,"created":1700000000}"#;
        assert!(matches!(ContainerState::from_json(bad_time.as_bytes()), Err(Error::Parse { .. })));
        let text_time = r#"{"id":"a","status":"running","pid":1,"created":"yesterday"}"#;
        assert!(matches!(ContainerState::from_json(text_time.as_bytes()), Err(Error::Parse { .. })));
    }

    #[test]
    fn ignores_unknown_keys() {
        let state = r#"{"id":"a","status":"running","pid":3,"shiny":{"x":1}}"#;
        assert_eq!(ContainerState::from_json(state.as_bytes()).unwrap().pid, Some(3));
    }
}
