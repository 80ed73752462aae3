//! OCI bundles in temp directories: a `config.json` built with oci-spec and, for real runtimes,
//! a root filesystem made from the host's static busybox.

use std::path::{Path, PathBuf};

use anyhow::Context;
use runtime_core::oci_spec::runtime::{
    LinuxIdMapping, LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespaceType, RootBuilder, Spec,
};

use crate::gate::static_busybox;
use crate::rootless::SubidRange;

/// The busybox applets linked into the rootfs.
const APPLETS: &[&str] = &["sh", "echo", "sleep", "cat", "true", "false", "ls", "ps", "kill", "id", "env", "wc", "mv"];

/// A bundle that is removed when dropped.
#[derive(Debug)]
pub struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    /// The bundle directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Its root filesystem.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

/// What the root filesystem holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rootfs {
    /// Nothing: for fake runtimes, which run the process on the host.
    Empty,
    /// A static busybox and its applets in `/bin`.
    Busybox,
}

/// Builds a [`Bundle`].
#[derive(Debug, Clone)]
pub struct BundleBuilder {
    args: Vec<String>,
    env: Vec<String>,
    rootless: bool,
    /// Subordinate uids and gids mapped past the caller's own id.
    subordinate: Option<(SubidRange, SubidRange)>,
    rootfs: Rootfs,
    host_pid_namespace: bool,
    annotations: Vec<(String, String)>,
    terminal: bool,
    memory_limit: Option<i64>,
}

impl BundleBuilder {
    /// A bundle whose process runs `args`.
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        BundleBuilder {
            args: args.into_iter().map(Into::into).collect(),
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            rootless: false,
            subordinate: None,
            rootfs: Rootfs::Busybox,
            host_pid_namespace: false,
            annotations: Vec::new(),
            terminal: false,
            memory_limit: None,
        }
    }

    /// Adds `KEY=value` to the process environment.
    pub fn env(mut self, entry: impl Into<String>) -> Self {
        self.env.push(entry.into());
        self
    }

    /// A config for rootless containers (user namespace mapping the current user to root).
    pub fn rootless(mut self) -> Self {
        self.rootless = true;
        self
    }

    /// A rootless config whose user namespace also maps the caller's subordinate ranges
    /// (`/etc/subuid`, `/etc/subgid`) to the ids from 1 on, as podman's rootless containers do:
    /// the runtime sets such mappings up with `newuidmap` and `newgidmap`.
    pub fn subordinate_ids(mut self, uids: SubidRange, gids: SubidRange) -> Self {
        self.rootless = true;
        self.subordinate = Some((uids, gids));
        self
    }

    /// Shares the host's pid namespace: the process is then not a namespace's init, which
    /// ignores signals it has no handler for, so SIGTERM kills it as it would on the host.
    pub fn host_pid_namespace(mut self) -> Self {
        self.host_pid_namespace = true;
        self
    }

    /// Adds an annotation to the spec.
    pub fn annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.push((key.into(), value.into()));
        self
    }

    /// Gives the process a terminal (`process.terminal`); create it with a console socket.
    pub fn terminal(mut self) -> Self {
        self.terminal = true;
        self
    }

    /// Limits the container's memory to `bytes`, swap included (`swap` is memory plus swap in
    /// the spec, so equal to the limit means no swap): past it the kernel's OOM killer acts.
    pub fn memory_limit(mut self, bytes: i64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Chooses the root filesystem.
    pub fn rootfs(mut self, rootfs: Rootfs) -> Self {
        self.rootfs = rootfs;
        self
    }

    /// The config document this builder writes.
    pub fn spec(&self) -> anyhow::Result<Spec> {
        let mut spec = if self.rootless {
            Spec::rootless(nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw())
        } else {
            Spec::default()
        };
        if let (Some((uids, gids)), Some(linux)) = (self.subordinate, spec.linux_mut()) {
            let mut uid_mappings = linux.uid_mappings().clone().unwrap_or_default();
            uid_mappings.push(past_root(uids)?);
            linux.set_uid_mappings(Some(uid_mappings));
            let mut gid_mappings = linux.gid_mappings().clone().unwrap_or_default();
            gid_mappings.push(past_root(gids)?);
            linux.set_gid_mappings(Some(gid_mappings));
        }
        // Keep the defaults (capabilities, rlimits, user) and set what the test asks for.
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_terminal(Some(self.terminal));
        process.set_args(Some(self.args.clone()));
        process.set_env(Some(self.env.clone()));
        process.set_cwd("/".into());
        spec.set_process(Some(process));
        spec.set_root(Some(
            RootBuilder::default().path("rootfs").readonly(false).build().context("building the root")?,
        ));
        spec.set_hostname(Some("testkit".into()));
        if self.host_pid_namespace
            && let Some(linux) = spec.linux_mut()
            && let Some(namespaces) = linux.namespaces_mut()
        {
            namespaces.retain(|namespace| namespace.typ() != LinuxNamespaceType::Pid);
        }
        if let Some(bytes) = self.memory_limit
            && let Some(linux) = spec.linux_mut()
        {
            let memory = LinuxMemoryBuilder::default().limit(bytes).swap(bytes).build()?;
            let mut resources = linux.resources().clone().unwrap_or_default();
            resources.set_memory(Some(memory));
            linux.set_resources(Some(resources));
        }
        if !self.annotations.is_empty() {
            spec.set_annotations(Some(self.annotations.iter().cloned().collect()));
        }
        Ok(spec)
    }

    /// Writes the bundle into a temporary directory, removed with the [`Bundle`].
    pub fn build(&self) -> anyhow::Result<Bundle> {
        let dir = tempfile::Builder::new().prefix("bundle-").tempdir().context("creating the bundle directory")?;
        self.write(dir.path())?;
        Ok(Bundle { dir })
    }

    /// Writes the bundle into `dir`, which is created if missing and kept afterwards. An
    /// existing `dir` with anything in it is refused before anything is written: a bundle
    /// mixed into other files would not be what this builder describes.
    pub fn write_to(&self, dir: &Path) -> anyhow::Result<()> {
        match std::fs::read_dir(dir) {
            Ok(mut entries) => {
                anyhow::ensure!(entries.next().is_none(), "{} exists and is not empty", dir.display());
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            Err(err) => return Err(err).with_context(|| format!("reading {}", dir.display())),
        }
        self.write(dir)
    }

    fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let rootfs = dir.join("rootfs");
        std::fs::create_dir(&rootfs).context("creating rootfs")?;
        if self.rootfs == Rootfs::Busybox {
            let busybox = static_busybox().context("no static busybox on this host (install busybox-static)")?;
            populate_busybox(&rootfs, &busybox)?;
        }
        self.spec()?.save(dir.join("config.json")).context("writing config.json")
    }
}

/// `range` as the ids from 1 on.
fn past_root(range: SubidRange) -> anyhow::Result<LinuxIdMapping> {
    let start = u32::try_from(range.start).context("a subordinate id past u32")?;
    let size = u32::try_from(range.count).context("a subordinate range past u32")?;
    Ok(LinuxIdMappingBuilder::default().container_id(1u32).host_id(start).size(size).build()?)
}

fn populate_busybox(rootfs: &Path, busybox: &Path) -> anyhow::Result<()> {
    for dir in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(dir)).with_context(|| format!("creating {dir}"))?;
    }
    let target = rootfs.join("bin/busybox");
    if std::fs::hard_link(busybox, &target).is_err() {
        std::fs::copy(busybox, &target).with_context(|| format!("copying {}", busybox.display()))?;
    }
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
            .with_context(|| format!("linking {applet}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_config_without_terminal_and_with_the_args() {
        let bundle = BundleBuilder::new(["sleep", "5"]).env("A=b").rootfs(Rootfs::Empty).build().unwrap();
        let spec = Spec::load(bundle.path().join("config.json")).unwrap();
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.terminal(), Some(false));
        assert_eq!(process.args().as_deref(), Some(&["sleep".to_owned(), "5".to_owned()][..]));
        assert!(process.env().as_ref().unwrap().contains(&"A=b".to_owned()));
        assert_eq!(spec.root().as_ref().unwrap().path(), Path::new("rootfs"));
        assert!(bundle.rootfs().is_dir());
    }

    #[test]
    fn a_memory_limit_leaves_no_swap_above_it() {
        let spec = BundleBuilder::new(["sh"]).memory_limit(32 << 20).spec().unwrap();
        let config = serde_json::to_value(&spec).unwrap();
        let memory = &config["linux"]["resources"]["memory"];
        assert_eq!((memory["limit"].as_i64(), memory["swap"].as_i64()), (Some(33_554_432), Some(33_554_432)));
    }

    #[test]
    fn writes_into_a_missing_or_empty_directory_and_refuses_a_non_empty_one() {
        let parent = tempfile::tempdir().unwrap();
        let missing = parent.path().join("a/b");
        BundleBuilder::new(["true"]).rootfs(Rootfs::Empty).write_to(&missing).unwrap();
        assert!(missing.join("config.json").is_file() && missing.join("rootfs").is_dir());

        let empty = parent.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        BundleBuilder::new(["true"]).rootfs(Rootfs::Empty).write_to(&empty).unwrap();
        assert!(empty.join("config.json").is_file());

        let taken = parent.path().join("taken");
        std::fs::create_dir(&taken).unwrap();
        std::fs::write(taken.join("notes.txt"), "mine").unwrap();
        let refused = BundleBuilder::new(["true"]).rootfs(Rootfs::Empty).write_to(&taken);
        assert!(refused.unwrap_err().to_string().contains("is not empty"));
        let left: Vec<_> = std::fs::read_dir(&taken).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(left, ["notes.txt"], "nothing is written beside what was there");
    }

    #[test]
    fn terminal_variant_asks_for_a_terminal() {
        let spec = BundleBuilder::new(["sh"]).terminal().spec().unwrap();
        assert_eq!(spec.process().as_ref().unwrap().terminal(), Some(true));
    }

    #[test]
    fn rootless_variant_maps_the_current_user() {
        let spec = BundleBuilder::new(["true"]).rootless().spec().unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let uid = nix::unistd::geteuid().as_raw();
        assert_eq!(linux.uid_mappings().as_ref().unwrap()[0].host_id(), uid);
    }

    #[test]
    fn subordinate_ids_are_mapped_from_1_after_the_caller() {
        let uids = SubidRange { start: 100000, count: 65536 };
        let gids = SubidRange { start: 200000, count: 1000 };
        let spec = BundleBuilder::new(["true"]).subordinate_ids(uids, gids).spec().unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let triples = |mappings: &Option<Vec<LinuxIdMapping>>| {
            let mappings = mappings.as_ref().unwrap();
            mappings.iter().map(|m| (m.container_id(), m.host_id(), m.size())).collect::<Vec<_>>()
        };
        let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        assert_eq!(triples(linux.uid_mappings()), [(0, uid, 1), (1, 100000, 65536)]);
        assert_eq!(triples(linux.gid_mappings()), [(0, gid, 1), (1, 200000, 1000)]);
    }
}
