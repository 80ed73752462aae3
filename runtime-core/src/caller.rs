//! Who the library runs as, detected once per process.
//!
//! An unprivileged caller (not root, or root only inside a user namespace) cannot write
//! `/run`, cannot make cgroups of its own on a cgroup v1 host and cannot signal a cgroup it does
//! not own. So, as libpod does, everything the library would otherwise put in root's places goes
//! under the caller's runtime directory (`$XDG_RUNTIME_DIR`): the engine's state root and each
//! runtime's `--root`. The cgroup manager defaults to cgroupfs (which runtimes skip quietly when
//! the cgroup is not writable), runtimes that take `--rootless` get it, and conmon gets the
//! environment libpod gives it. The code a caller writes is the same either way.
//!
//! Rootless is libpod's test (`euid != 0`, or `_CONTAINERS_USERNS_CONFIGURED` set by a parent
//! that made the user namespace), widened to a user namespace entered any other way: a
//! `/proc/self/uid_map` other than the initial namespace's identity map. The runtime directory
//! is checked when it is needed, and an unusable one is [`Error::RuntimeDir`], never a silent
//! fallback to a directory that may belong to someone else.

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::contract::error::{Error, Result};

/// The initial user namespace's `uid_map`: every uid is itself.
const IDENTITY_UID_MAP: &str = "0 0 4294967295";

/// The process the library runs in, as far as privileges shape its defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    rootless: bool,
    euid: u32,
    /// The user's uid as the host knows it: `_CONTAINERS_ROOTLESS_UID` when a parent that made
    /// the user namespace set it, else the effective uid.
    uid: u32,
}

impl Caller {
    /// This process, detected on first use and the same for the rest of its life.
    pub fn current() -> &'static Caller {
        static CALLER: OnceLock<Caller> = OnceLock::new();
        CALLER.get_or_init(|| {
            Caller::detect(
                nix::unistd::geteuid().as_raw(),
                std::env::var_os("_CONTAINERS_USERNS_CONFIGURED").as_deref(),
                std::env::var_os("_CONTAINERS_ROOTLESS_UID").as_deref(),
                std::fs::read_to_string("/proc/self/uid_map").ok().as_deref(),
            )
        })
    }

    /// The caller described by its effective uid, libpod's two variables and its `uid_map`
    /// (`None` when unreadable: no user namespace is assumed).
    pub fn detect(
        euid: u32,
        userns_configured: Option<&OsStr>,
        rootless_uid: Option<&OsStr>,
        uid_map: Option<&str>,
    ) -> Caller {
        let in_user_namespace =
            uid_map.is_some_and(|map| map.split_whitespace().collect::<Vec<_>>().join(" ") != IDENTITY_UID_MAP);
        let configured = userns_configured.is_some_and(|value| !value.is_empty());
        let rootless = euid != 0 || configured || in_user_namespace;
        let uid = rootless_uid.and_then(|value| value.to_str()?.parse().ok()).unwrap_or(euid);
        Caller { rootless, euid, uid }
    }

    /// Whether the defaults are the unprivileged ones.
    pub fn is_rootless(&self) -> bool {
        self.rootless
    }

    /// The user's uid as the host knows it.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// `$XDG_RUNTIME_DIR`, checked: set, an existing directory, owned by this process's
    /// effective user. Otherwise [`Error::RuntimeDir`] says which and how to fix it.
    pub fn runtime_dir(&self) -> Result<PathBuf> {
        self.runtime_dir_from(std::env::var_os("XDG_RUNTIME_DIR").as_deref())
    }

    /// [`Caller::runtime_dir`] with the variable's value given.
    pub fn runtime_dir_from(&self, value: Option<&OsStr>) -> Result<PathBuf> {
        let unusable = |path: Option<PathBuf>, problem: String| Error::RuntimeDir { path, problem, uid: self.uid };
        let path = match value {
            Some(value) if !value.is_empty() => PathBuf::from(value),
            _ => return Err(unusable(None, "XDG_RUNTIME_DIR is not set".into())),
        };
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(err) => return Err(unusable(Some(path), format!("it cannot be read: {err}"))),
        };
        if !metadata.is_dir() {
            return Err(unusable(Some(path), "it is not a directory".into()));
        }
        if metadata.uid() != self.euid {
            let problem = format!("it is owned by uid {}, not by uid {}", metadata.uid(), self.euid);
            return Err(unusable(Some(path), problem));
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDENTITY: &str = "         0          0 4294967295\n";

    #[test]
    fn root_in_the_initial_namespace_is_not_rootless() {
        let caller = Caller::detect(0, None, None, Some(IDENTITY));
        assert!(!caller.is_rootless());
        assert_eq!(caller.uid(), 0);
    }

    #[test]
    fn a_non_root_effective_uid_is_rootless() {
        let caller = Caller::detect(1000, None, None, Some(IDENTITY));
        assert!(caller.is_rootless());
        assert_eq!(caller.uid(), 1000);
    }

    #[test]
    fn root_of_a_user_namespace_is_rootless_with_the_hosts_uid() {
        // As inside `podman unshare`: uid 0 is host uid 1000, and podman's variables say so.
        let map = "         0       1000          1\n         1     100000      65536\n";
        let caller = Caller::detect(0, None, None, Some(map));
        assert!(caller.is_rootless(), "a user namespace's root is rootless");
        let told = Caller::detect(0, Some(OsStr::new("done")), Some(OsStr::new("1000")), Some(IDENTITY));
        assert!(told.is_rootless(), "_CONTAINERS_USERNS_CONFIGURED makes it rootless, as in libpod");
        assert_eq!(told.uid(), 1000);
        let empty = Caller::detect(0, Some(OsStr::new("")), None, Some(IDENTITY));
        assert!(!empty.is_rootless(), "an empty _CONTAINERS_USERNS_CONFIGURED is unset, as in libpod");
    }

    #[test]
    fn the_runtime_dir_must_be_set_exist_and_be_the_users() {
        let caller = Caller::detect(nix::unistd::geteuid().as_raw(), None, None, None);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(caller.runtime_dir_from(Some(dir.path().as_os_str())).unwrap(), dir.path());
        let problem = |value: Option<&OsStr>| match caller.runtime_dir_from(value) {
            Err(Error::RuntimeDir { problem, .. }) => problem,
            other => panic!("expected RuntimeDir, got {other:?}"),
        };
        assert_eq!(problem(None), "XDG_RUNTIME_DIR is not set");
        assert_eq!(problem(Some(OsStr::new(""))), "XDG_RUNTIME_DIR is not set");
        let missing = dir.path().join("missing");
        assert!(problem(Some(missing.as_os_str())).starts_with("it cannot be read"));
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert_eq!(problem(Some(file.as_os_str())), "it is not a directory");
        let someone_else = Caller::detect(caller.euid + 1, None, None, None);
        let Err(Error::RuntimeDir { problem, .. }) = someone_else.runtime_dir_from(Some(dir.path().as_os_str())) else {
            panic!("a directory of another user is refused");
        };
        assert_eq!(problem, format!("it is owned by uid {}, not by uid {}", caller.euid, caller.euid + 1));
    }
}
