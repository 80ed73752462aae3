//! A fake runtime set up for one test: a private directory with `runc`, `crun` or `youki` and
//! `criu` links to the fake program, and a private state root.
//!
//! Everything a test wants to arrange for the fake goes through files in that directory, never
//! through the test process's environment (tests run in parallel threads): faults in
//! `<root>/faults`, CRIU's answers in `criu-check-error` and `criu-version` next to the `criu`
//! link.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use runtime_core::{ContainerId, RuntimeConfig};

/// Which real runtime the fake imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// runc 1.1.
    Runc,
    /// crun 1.8.
    Crun,
    /// youki 0.7.
    Youki,
}

impl Flavour {
    /// The runtime's name, which is also the name the fake program is linked under.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Runc => "runc",
            Flavour::Crun => "crun",
            Flavour::Youki => "youki",
        }
    }
}

/// One fake runtime with its own directory.
#[derive(Debug)]
pub struct FakeRuntime {
    dir: tempfile::TempDir,
    flavour: Flavour,
}

impl FakeRuntime {
    /// A fake of `flavour` made of this test binary (see [`crate::harness::fake_program`]).
    pub fn new(flavour: Flavour) -> anyhow::Result<Self> {
        Self::with_program(flavour, &crate::harness::fake_program())
    }

    /// A fake of `flavour` made of `program` (the `fake-oci` binary, or a harness test binary).
    pub fn with_program(flavour: Flavour, program: &Path) -> anyhow::Result<Self> {
        let dir =
            tempfile::Builder::new().prefix("fake-runtime-").tempdir().context("creating the fake's directory")?;
        for name in [flavour.name(), "criu"] {
            std::os::unix::fs::symlink(program, dir.path().join(name)).with_context(|| format!("linking {name}"))?;
        }
        std::fs::create_dir(dir.path().join("root")).context("creating the state root")?;
        Ok(FakeRuntime { dir, flavour })
    }

    /// Which runtime it imitates.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// The runtime binary (a link named after the flavour).
    pub fn binary(&self) -> PathBuf {
        self.dir.path().join(self.flavour.name())
    }

    /// The fake CRIU.
    pub fn criu(&self) -> PathBuf {
        self.dir.path().join("criu")
    }

    /// The state root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// A config that drives this fake: its binary, root and CRIU.
    pub fn config(&self) -> RuntimeConfig {
        RuntimeConfig::default().binary(self.binary()).root(self.root()).criu(self.criu())
    }

    /// Makes `command` (or `*`) misbehave from now on; see `fake_oci` for the faults.
    pub fn inject(&self, command: &str, fault: &str) -> anyhow::Result<()> {
        let mut faults = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root().join("faults"))
            .context("opening the faults file")?;
        writeln!(faults, "{command}={fault}").context("writing a fault")
    }

    /// Makes `criu check` fail with `message`, as CRIU does on a host it cannot work on.
    pub fn break_criu(&self, message: &str) -> anyhow::Result<()> {
        std::fs::write(self.dir.path().join("criu-check-error"), message).context("breaking the fake CRIU")
    }

    /// Makes `criu --version` report `version`.
    pub fn set_criu_version(&self, version: &str) -> anyhow::Result<()> {
        std::fs::write(self.dir.path().join("criu-version"), version).context("setting the fake CRIU's version")
    }

    /// The resources document the last `update` stored for `id`.
    pub fn resources(&self, id: &ContainerId) -> anyhow::Result<serde_json::Value> {
        let path = self.root().join(id.as_str()).join("resources.json");
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
    }
}
