//! The per-case environment: a connected backend, bundles, and the leak check.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use runtime_core::{
    Capability, ContainerId, ContainerState, CreateOptions, DeleteMode, Engine, Error, OciBackend, RuntimeConfig,
    StateRoot, Status,
};

use super::{Case, Connector, MonitorChoice, Setup, Subject};
use crate::bundle::{Bundle, BundleBuilder, Rootfs};
use crate::fake::{FakeRuntime, Flavour};
use crate::gate::{self, Lacking, RealRuntime};
use crate::harness::{CaseResult, Ran};
use crate::procs::Tracked;

/// How long a case waits for a container to reach a status.
pub const STATUS_PATIENCE: Duration = Duration::from_secs(15);

/// Everything a case works with.
pub struct Env {
    /// The backend under test.
    pub backend: Arc<dyn OciBackend>,
    /// How the backend was connected, for another process to connect the same way.
    pub config: RuntimeConfig,
    connect: Connector,
    label: String,
    monitor: MonitorChoice,
    fake: Option<FakeRuntime>,
    real: Option<String>,
    root: PathBuf,
    _real_root: Option<tempfile::TempDir>,
    rootfs: Rootfs,
    seen: Vec<Tracked>,
    ids: Vec<ContainerId>,
    engine_root: Option<tempfile::TempDir>,
    kept: Vec<Bundle>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("label", &self.label)
            .field("monitor", &self.monitor)
            .field("root", &self.root)
            .finish()
    }
}

/// Sets up the env, runs the case, then cleans up and checks nothing was left behind.
pub(super) async fn run(subject: Subject, real: Option<RealRuntime>, monitor: MonitorChoice, case: Case) -> CaseResult {
    let mut env = Env::new(&subject, real, monitor).await?;
    let outcome = case(&mut env).await;
    let leftovers = env.finish().await;
    match (outcome, leftovers) {
        (Err(err), _) => Err(err),
        (Ok(_), Err(err)) => Err(err.context("the case left something behind")),
        (Ok(ran), Ok(())) => Ok(ran),
    }
}

/// Skipped, with the monitor's own reason, when `monitor` lacks `capability`; `None` when it
/// has it.
pub(super) fn lacking(monitor: &MonitorChoice, capability: Capability) -> Option<CaseResult> {
    match monitor.monitor().require(capability, "this case") {
        Ok(()) => None,
        Err(Error::Unsupported { reason, .. }) => Some(skipped(reason)),
        Err(other) => Some(Err(other.into())),
    }
}

impl Env {
    async fn new(subject: &Subject, real: Option<RealRuntime>, monitor: MonitorChoice) -> anyhow::Result<Self> {
        let real_name = real.as_ref().map(|real| real.name.clone());
        let (config, fake, real_root, rootfs) = match (&subject.setup, real) {
            (Setup::Fake(flavour), _) => {
                let fake = FakeRuntime::new(*flavour)?;
                (fake.config(), Some(fake), None, Rootfs::Empty)
            }
            (Setup::Real(_), Some(real)) => {
                let root =
                    tempfile::Builder::new().prefix("runtime-root-").tempdir().context("creating a state root")?;
                let config = RuntimeConfig::default().binary(&real.binary).root(root.path());
                (config, None, Some(root), Rootfs::Busybox)
            }
            (Setup::Real(name), None) => bail!("the gate gave no binary for {name}"),
        };
        let root = config.root.clone().context("every env has its own root")?;
        let backend = Arc::from((subject.connect)(config.clone()).await.context("connecting the backend")?);
        Ok(Env {
            backend,
            config,
            connect: Arc::clone(&subject.connect),
            label: subject.label.clone(),
            monitor,
            fake,
            real: real_name,
            root,
            _real_root: real_root,
            rootfs,
            seen: Vec::new(),
            ids: Vec::new(),
            engine_root: None,
            kept: Vec::new(),
        })
    }

    /// The subject's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The monitor this env's engines use.
    pub fn monitor(&self) -> &MonitorChoice {
        &self.monitor
    }

    /// Skipped, with the monitor's own reason, when the monitor lacks `capability` (the engine
    /// would refuse what the case needs); `None` when the case can go on.
    pub fn lacks(&self, capability: Capability) -> Option<CaseResult> {
        lacking(&self.monitor, capability)
    }

    /// The fake, when the subject is one.
    pub fn fake(&self) -> Option<&FakeRuntime> {
        self.fake.as_ref()
    }

    /// True against a real runtime.
    pub fn is_real(&self) -> bool {
        self.fake.is_none()
    }

    /// The runtime the subject is or imitates, whose abilities the cases pin.
    pub fn imitates(&self) -> anyhow::Result<Flavour> {
        let flavour = self.fake.as_ref().map(FakeRuntime::flavour);
        let flavour = flavour.or_else(|| self.real.as_deref().and_then(Flavour::from_name));
        flavour.with_context(|| format!("{} is none of the runtimes whose abilities are pinned", self.label))
    }

    /// The runtime's own name for its checkpoint command (youki 0.7: `checkpointt`).
    pub fn checkpoint_command(&self) -> anyhow::Result<&'static str> {
        Ok(if self.imitates()? == Flavour::Youki { "checkpointt" } else { "checkpoint" })
    }

    /// The CRIU the backend is given: the fake's, or the one in `PATH`.
    pub fn criu(&self) -> PathBuf {
        self.fake.as_ref().map_or_else(|| PathBuf::from("criu"), FakeRuntime::criu)
    }

    /// A subject that contradicts what it must do on a machine `cargo xtask setup` prepared:
    /// a failure for a fake and for a real runtime `REQUIRE_REAL_RUNTIMES` names, otherwise
    /// skipped with the reason (the machine is not prepared).
    pub fn contradiction(&self, problem: String) -> CaseResult {
        match &self.real {
            Some(name) if !gate::required().contains(name) => {
                skipped(format!("this host is not as `cargo xtask setup` leaves it: {problem}"))
            }
            _ => bail!("{problem}"),
        }
    }

    /// A subject that can `what` (checkpoint, restore) whose probe says it cannot, for `reason`.
    /// On a real runtime where CRIU is missing or fails `criu check`, the host lacks CRIU:
    /// skipped, or failed when `REQUIRE_REAL_RUNTIMES` names `criu`. Otherwise the probe
    /// contradicts a working CRIU ([`Env::contradiction`]).
    pub fn cannot_checkpoint(&self, what: &str, reason: &str) -> CaseResult {
        let name = self.real.as_deref().unwrap_or(&self.label);
        if let Some(problem) = self.real.as_ref().and_then(|_| gate::criu_problem()) {
            let reason = format!("{name} cannot {what} here ({reason}): {problem}");
            return match gate::lacking(gate::CRIU, reason, &gate::required()) {
                Lacking::Skip(reason) => skipped(reason),
                Lacking::Fail(reason) => bail!("{reason}"),
            };
        }
        self.contradiction(format!("{name} can {what}, but the probe says: {reason}"))
    }

    /// A fresh container id, unique in this env.
    pub fn id(&mut self, name: &str) -> ContainerId {
        let id = ContainerId::new(format!("{name}-{}-{}", std::process::id(), self.ids.len() + 1))
            .expect("ids of the grammar");
        self.ids.push(id.clone());
        id
    }

    /// Remembers `id`, made by the case itself, to check at the end that no process names it.
    pub fn own(&mut self, id: &ContainerId) {
        self.ids.push(id.clone());
    }

    /// A bundle running `args`, with a root filesystem fit for the subject.
    pub fn bundle<I, S>(&self, args: I) -> anyhow::Result<Bundle>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.bundle_builder(args).build()
    }

    /// A bundle builder for `args` with a root filesystem fit for the subject, for bundles
    /// that need more.
    pub fn bundle_builder<I, S>(&self, args: I) -> BundleBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        BundleBuilder::new(args).rootfs(self.rootfs)
    }

    /// An engine over the subject's backend with the env's monitor, its state root private to
    /// this env (and checked to be empty at the end). Each call gives a new engine (and a new
    /// monitor) on the same root, as a restarted program would have.
    pub fn engine(&mut self) -> anyhow::Result<Arc<Engine>> {
        let root = self.engine_state_root()?;
        Ok(Arc::new(Engine::new(Arc::clone(&self.backend), self.monitor.monitor(), root)))
    }

    /// An engine over `backend` (another connection to the subject) with a new monitor of the
    /// env's kind, on the env's state root.
    pub fn engine_over(&mut self, backend: Arc<dyn OciBackend>) -> anyhow::Result<Engine> {
        Ok(Engine::new(backend, self.monitor.monitor(), self.engine_state_root()?))
    }

    /// An engine that starts again over the env's state root with a new monitor of the env's
    /// kind, as after the embedding program restarted.
    pub async fn reconnected(&mut self) -> anyhow::Result<Engine> {
        let root = self.engine_state_root()?;
        Ok(Engine::reconnect(Arc::clone(&self.backend), self.monitor.monitor(), root).await?)
    }

    /// Another backend for the subject, connected with `config` (the env's own, changed).
    pub async fn backend_with(&self, config: RuntimeConfig) -> anyhow::Result<Arc<dyn OciBackend>> {
        Ok(Arc::from((self.connect)(config).await.context("connecting a second backend")?))
    }

    /// The engine state root of this env.
    pub fn engine_state_root(&mut self) -> anyhow::Result<StateRoot> {
        if self.engine_root.is_none() {
            self.engine_root = Some(tempfile::Builder::new().prefix("engine-root-").tempdir()?);
        }
        let path = self.engine_root.as_ref().map(|dir| dir.path().join("state")).context("an engine root")?;
        Ok(StateRoot::open(path)?)
    }

    /// Keeps `bundle` until the case ends.
    pub fn keep(&mut self, bundle: Bundle) {
        self.kept.push(bundle);
    }

    /// The root filesystem bundles need for this subject.
    pub fn rootfs(&self) -> Rootfs {
        self.rootfs
    }

    /// Remembers a process of the test, to check at the end that it is gone.
    pub fn track(&mut self, pid: u32) {
        self.seen.push(Tracked::capture(pid));
    }

    /// Creates `id` from `bundle` and tracks its init process.
    pub async fn create(&mut self, id: &ContainerId, bundle: &Path) -> anyhow::Result<ContainerState> {
        let created = self.backend.create(id, bundle, CreateOptions::default()).await.context("create")?;
        self.track(created.pid);
        self.backend.state(id).await.context("state after create")
    }

    /// Creates and starts a container running `args`; the bundle lives as long as it is kept.
    pub async fn running(
        &mut self,
        name: &str,
        args: &[&str],
    ) -> anyhow::Result<(ContainerId, Bundle, ContainerState)> {
        let id = self.id(name);
        let bundle = self.bundle(args.iter().copied())?;
        self.create(&id, bundle.path()).await?;
        self.backend.start(&id).await.context("start")?;
        let state = self.wait_for(&id, Status::Running).await?;
        Ok((id, bundle, state))
    }

    /// Polls `state` until the container has `status`.
    pub async fn wait_for(&self, id: &ContainerId, status: Status) -> anyhow::Result<ContainerState> {
        let deadline = Instant::now() + STATUS_PATIENCE;
        loop {
            let state = self.backend.state(id).await.context("state")?;
            if state.status == status {
                return Ok(state);
            }
            ensure!(Instant::now() < deadline, "{id} stayed {} instead of becoming {status}", state.status);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills and deletes a container, whatever its state.
    pub async fn remove(&self, id: &ContainerId) -> anyhow::Result<()> {
        self.backend.delete(id, DeleteMode::Force).await.with_context(|| format!("delete --force {id}"))
    }

    /// The memory limit for the container whose init is `pid`: on a real runtime the one in
    /// force in its cgroup; on a fake, which has no cgroups, the limit in the document the fake
    /// received (that the request reached the runtime intact, not that anything enforces it).
    pub fn memory_limit(&self, id: &ContainerId, pid: u32) -> anyhow::Result<u64> {
        match &self.fake {
            Some(fake) => {
                let resources = fake.received_resources(id)?;
                resources["memory"]["limit"].as_u64().context("no memory.limit in the received resources")
            }
            None => cgroup_memory_limit(pid),
        }
    }

    /// Deletes whatever a case left and fails if there was anything.
    async fn finish(self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        for err in self.backend.settle().await {
            problems.push(format!("the rollback of a dropped call left something behind: {err}"));
        }
        match self.backend.list().await {
            Ok(states) => {
                for state in states {
                    problems.push(format!("container {} left {}", state.id, state.status));
                    if let Err(err) = self.backend.delete(&state.id, DeleteMode::Force).await {
                        problems.push(format!("and it could not be deleted: {err}"));
                    }
                }
            }
            Err(err) => problems.push(format!("cannot list containers: {err}")),
        }
        let deadline = Instant::now() + STATUS_PATIENCE;
        let mut lingering: Vec<&Tracked> = self.seen.iter().filter(|process| process.alive()).collect();
        while !lingering.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            lingering.retain(|process| process.alive());
        }
        for process in lingering {
            problems.push(format!("process {} is still running", process.pid));
            process.signal(nix::sys::signal::Signal::SIGKILL);
        }
        // A monitor process (conmon names its container after `-c`) or a runtime call that
        // outlived the case.
        for (id, pids) in self.processes_naming_ids().await {
            problems.push(format!("processes naming {id} are still running: {pids:?}"));
            for pid in pids {
                Tracked::capture(pid).signal(nix::sys::signal::Signal::SIGKILL);
            }
        }
        let entries: Vec<String> = std::fs::read_dir(&self.root)
            .map(|dir| {
                dir.filter_map(|entry| entry.ok())
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let state_dirs: Vec<&String> = entries.iter().filter(|name| *name != "faults").collect();
        if !state_dirs.is_empty() {
            problems.push(format!("state left under {}: {state_dirs:?}", self.root.display()));
        }
        if let Some(engine_root) = &self.engine_root {
            for sub in ["exits", "containers", "locks"] {
                let dir = engine_root.path().join("state").join(sub);
                let left: Vec<String> = std::fs::read_dir(&dir)
                    .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                    .unwrap_or_default();
                if !left.is_empty() {
                    problems.push(format!("engine state left in {}: {left:?}", dir.display()));
                }
            }
        }
        // Under the engine every container process is reaped by its monitor. (Without one,
        // nobody reaps: once any engine made this test process a subreaper, the inits of plain
        // backend containers end up as its zombies, which is what a monitor is for.)
        for process in self.seen.iter().filter(|_| self.engine_root.is_some()) {
            if let Some(parent) = zombie_child_of_ours(process.pid) {
                problems.push(format!("process {} is a zombie nobody reaped (parent {parent})", process.pid));
            }
        }
        ensure!(problems.is_empty(), "{}", problems.join("; "));
        Ok(())
    }

    /// Live processes with one of the case's ids in their command line, once those that are
    /// ending (conmon writes the exit, then goes) had [`STATUS_PATIENCE`] to go.
    async fn processes_naming_ids(&self) -> Vec<(&ContainerId, Vec<u32>)> {
        let naming = |id: &ContainerId| {
            crate::procs::live_with_argument(std::ffi::OsStr::new(id.as_str()))
                .into_iter()
                .filter_map(|pid| u32::try_from(pid).ok())
                .collect::<Vec<u32>>()
        };
        let deadline = Instant::now() + STATUS_PATIENCE;
        while self.ids.iter().any(|id| !naming(id).is_empty()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.ids.iter().map(|id| (id, naming(id))).filter(|(_, pids)| !pids.is_empty()).collect()
    }
}

/// `Some(parent)` when `pid` is an unreaped zombie whose parent is this test process.
fn zombie_child_of_ours(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let parent: i32 = fields.get(1)?.parse().ok()?;
    (fields.first() == Some(&"Z") && parent == std::process::id() as i32).then_some(parent)
}

/// The memory limit of the cgroup `pid` is in: v1 `memory.limit_in_bytes`, else v2 `memory.max`.
fn cgroup_memory_limit(pid: u32) -> anyhow::Result<u64> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).context("reading /proc/<pid>/cgroup")?;
    let v1 = cgroups.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers.split(',').any(|c| c == "memory").then(|| path.to_owned())
    });
    let file = match v1 {
        Some(path) => PathBuf::from(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")),
        None => {
            let path = cgroups.lines().find_map(|line| line.strip_prefix("0::")).context("no cgroup of pid")?;
            PathBuf::from(format!("/sys/fs/cgroup{path}/memory.max"))
        }
    };
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    text.trim().parse().with_context(|| format!("{} holds {text:?}", file.display()))
}

/// What a tool said when a case ran it: its command line, whether it succeeded, its output.
pub(super) type Witness = (String, bool, String);

/// Runs `program` with `args`, as a case gathering its own evidence.
pub(super) fn witness(program: &Path, args: &[&str]) -> anyhow::Result<Witness> {
    let output = std::process::Command::new(program).args(args).env_remove("RUST_BACKTRACE").output()?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok((format!("{} {}", program.display(), args.join(" ")), output.status.success(), text))
}

/// Whether `reason` quotes a line of `output` (of CRIU's `Error (file:line): what` and
/// `Warn  (file:line): what` lines, the part after the location).
pub(super) fn quotes(reason: &str, output: &str) -> bool {
    output
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .any(|line| reason.contains(line.rsplit_once("): ").map_or(line, |(_, said)| said)))
}

/// Checks a refusal against the tool's own words: `program args`, run here, fails, and
/// `reason` quotes a line it printed. The probe's retelling is not the oracle.
pub(super) fn refusal_quotes(program: &Path, args: &[&str], reason: &str) -> anyhow::Result<()> {
    let (command, succeeded, output) = witness(program, args)?;
    ensure!(!succeeded, "refused with {reason:?}, yet `{command}` succeeds here: {output}");
    ensure!(quotes(reason, &output), "the refusal {reason:?} quotes nothing `{command}` printed: {output}");
    Ok(())
}

/// A case that needs something the subject lacks.
pub fn skipped(reason: impl Into<String>) -> CaseResult {
    Ok(Ran::Skipped(reason.into()))
}
