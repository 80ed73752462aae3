//! The lifecycle ways that go through conmon, and what conmon costs in memory.
//!
//! The Engine with `ConmonMonitor` is judged against conmon driven by hand, as a script or
//! libpod drives it, so that the ratio is what the library adds around the same conmon:
//!
//! - **raw conmon**: conmon given what the monitor gives it (the sync and start pipes as fds 3
//!   and 4, the runtime with its `--root`, a k8s-file log, exit, persist and socket directories),
//!   the start pipe written, conmon's answer read from the sync pipe, then `<rt> start`, conmon's
//!   exit file looked for every 2 ms, `<rt> delete`, and conmon's own end looked for in `/proc`
//!   (the engine's delete waits for conmon to end too, so that nothing writes into files it
//!   removed); the files conmon made (its directory, `attach`, `ctl` and `winsz` in the bundle)
//!   are removed, as the monitor removes them;
//! - **podman run**: `podman run --rm` of the same root filesystem and runtime, the tool people
//!   use for this job (it drives conmon too), where podman is installed. Its storage and state
//!   are private to the bench (`--root`, `--runroot`, `--tmpdir` in the work directory, the vfs
//!   driver, which mounts nothing), so it touches none of the host's containers; only its lock
//!   segment, `/dev/shm/libpod_lock`, is the host's (podman makes it once and keeps it).
//!
//! Memory: the resident size (`VmRSS`) of a live conmon, read from `/proc` while the container
//! it holds runs, found by its command line (`-c ID`) rather than by anything the library says.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use command_fds::{CommandFdExt, FdMapping};
use runtime_core::{ContainerId, CreateOptions, DeleteMode, Engine, KillScope, Signal};
use tokio::io::AsyncBufReadExt;

use super::ways::{DEADLINE, Leftover, POLL, Raw, exited_per_stat};

/// The fds conmon reads its sync and start pipes from (the numbers libpod gives them).
const SYNC_FD: i32 = 3;
const START_FD: i32 = 4;

/// What conmon makes in the bundle directory.
const BUNDLE_NODES: [&str; 3] = ["attach", "ctl", "winsz"];

/// conmon driven by hand over the runtime `raw` drives; each container's files in a directory of
/// its own under `scratch`.
pub(super) struct RawConmon<'a> {
    pub(super) conmon: PathBuf,
    pub(super) raw: &'a Raw,
    pub(super) scratch: &'a Path,
}

impl RawConmon<'_> {
    /// create through conmon, start, the exit file, delete, conmon's end; checks that the exit
    /// file says `0` (`/bin/true`).
    pub(super) fn lifecycle(&self, tokio: &tokio::runtime::Runtime, id: &str, bundle: &Path) -> anyhow::Result<()> {
        let leftover = Leftover::new(self.raw, id);
        let dir = self.scratch.join(format!("{id}.conmon"));
        let (exits, sockets) = (dir.join("exits"), dir.join("sockets"));
        for path in [&dir, &exits, &sockets] {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(path)
                .with_context(|| format!("creating {}", path.display()))?;
        }
        let (sync_read, sync_write) = std::io::pipe().context("making the sync pipe")?;
        let (start_read, start_write) = std::io::pipe().context("making the start pipe")?;
        let stderr_path = dir.join("conmon.stderr");
        let stderr = File::create(&stderr_path).context("creating conmon's stderr file")?;
        let mut log = std::ffi::OsString::from("k8s-file:");
        log.push(dir.join("ctr.log"));
        let mut command = Command::new(&self.conmon);
        command
            .args(["--api-version", "1", "-c", id, "-u", id, "-n", id, "-r"])
            .arg(&self.raw.binary)
            .args(["--runtime-arg", "--root", "--runtime-arg"])
            .arg(&self.raw.root)
            .arg("-b")
            .arg(bundle)
            .arg("-p")
            .arg(dir.join("pidfile"))
            .arg("-P")
            .arg(dir.join("conmon.pid"))
            .arg("--exit-dir")
            .arg(&exits)
            .arg("--persist-dir")
            .arg(&dir)
            .arg("--socket-dir-path")
            .arg(&sockets)
            .arg("-l")
            .arg(log)
            // conmon also writes an `oom` file into its working directory on an OOM kill.
            .current_dir(&dir)
            .env("_OCI_SYNCPIPE", SYNC_FD.to_string())
            .env("_OCI_STARTPIPE", START_FD.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .fd_mappings(vec![
                FdMapping { parent_fd: sync_write.into(), child_fd: SYNC_FD },
                FdMapping { parent_fd: start_read.into(), child_fd: START_FD },
            ])
            .context("passing conmon its pipes")?;
        let spawned = command.spawn();
        // The child's ends close here, so that the sync pipe ends when conmon's copies do.
        drop(command);
        let mut first = spawned.with_context(|| format!("starting {}", self.conmon.display()))?;
        (&start_write).write_all(&[0]).context("writing conmon's start pipe")?;
        drop(start_write);
        let said = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let status = first.wait().context("waiting for conmon's first process")?;
        if !status.success() {
            bail!("conmon exited with {status}: {}", said().trim());
        }
        let answer = tokio.block_on(read_line_within_deadline(sync_read))?;
        let answer: serde_json::Value =
            serde_json::from_str(&answer).with_context(|| format!("conmon's answer {answer:?}"))?;
        if answer["data"].as_i64().is_none_or(|pid| pid <= 0) {
            bail!("conmon's create failed: {answer} {}", said().trim());
        }
        self.raw.call(&["start", id])?;
        let exit_file = exits.join(id);
        let deadline = Instant::now() + DEADLINE;
        let code = loop {
            if let Ok(code) = std::fs::read_to_string(&exit_file)
                && !code.is_empty()
            {
                break code;
            }
            if Instant::now() > deadline {
                bail!("conmon wrote no exit file for {id} within {DEADLINE:?}");
            }
            std::thread::sleep(POLL);
        };
        if code != "0" {
            bail!("conmon recorded exit {code:?} for /bin/true");
        }
        self.raw.call(&["delete", id])?;
        let conmon_pid = std::fs::read_to_string(dir.join("conmon.pid")).context("reading conmon's pid file")?;
        let stat = PathBuf::from(format!("/proc/{}/stat", conmon_pid.trim()));
        while !exited_per_stat(std::fs::read_to_string(&stat).ok().as_deref()) {
            if Instant::now() > deadline {
                bail!("conmon {} still there {DEADLINE:?} after its container started", conmon_pid.trim());
            }
            std::thread::sleep(POLL);
        }
        leftover.disarm();
        remove_conmon_files(&dir, bundle)
    }
}

/// One line from the read end of a pipe, within [`DEADLINE`].
async fn read_line_within_deadline(pipe: std::io::PipeReader) -> anyhow::Result<String> {
    let receiver = tokio::net::unix::pipe::Receiver::from_owned_fd(pipe.into()).context("registering the pipe")?;
    let (mut reader, mut line) = (tokio::io::BufReader::new(receiver), String::new());
    tokio::time::timeout(DEADLINE, reader.read_line(&mut line))
        .await
        .with_context(|| format!("conmon did not answer within {DEADLINE:?}"))?
        .context("reading conmon's sync pipe")?;
    Ok(line)
}

/// Removes a raw conmon's directory and what it made in the bundle.
fn remove_conmon_files(dir: &Path, bundle: &Path) -> anyhow::Result<()> {
    for node in BUNDLE_NODES {
        let path = bundle.join(node);
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(err).with_context(|| format!("removing {}", path.display()));
            }
            _ => {}
        }
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
}

/// `podman run --rm` with a private storage, over the runtime the bench measures.
pub(super) struct Podman {
    pub(super) binary: PathBuf,
    pub(super) runtime: PathBuf,
    /// Holds podman's `--root` and `--runroot`.
    pub(super) storage: PathBuf,
}

impl Podman {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--root")
            .arg(self.storage.join("root"))
            .arg("--runroot")
            .arg(self.storage.join("runroot"))
            .arg("--tmpdir")
            .arg(self.storage.join("tmp"))
            // `--rootfs` needs no image; vfs mounts nothing, so the storage is a plain directory.
            .args(["--storage-driver", "vfs"])
            .arg("--runtime")
            .arg(&self.runtime)
            .stdin(Stdio::null());
        command
    }

    /// `podman run --rm --network none --ulimit ... --rootfs ROOTFS /bin/true`, named `id`.
    pub(super) fn lifecycle(&self, id: &str, rootfs: &Path) -> anyhow::Result<()> {
        let mut run = self.command();
        run.args(["run", "--rm", "--name", id, "--network", "none"])
            .args(["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"])
            .arg("--rootfs")
            .arg(rootfs)
            .arg("/bin/true");
        let output = run.output().with_context(|| format!("cannot run {run:?}"))?;
        if !output.status.success() {
            let mut remove = self.command();
            remove.args(["rm", "--force", id]).stdout(Stdio::null()).stderr(Stdio::null());
            // The container may never have been made; its failure is the run's, reported below.
            let _ = remove.status();
            bail!("{run:?}: {}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(())
    }

    /// Removes podman's private storage (with vfs and `--rootfs`, nothing is mounted there once
    /// its containers are removed).
    pub(super) fn remove_storage(&self) -> anyhow::Result<()> {
        std::fs::remove_dir_all(&self.storage).with_context(|| format!("removing {}", self.storage.display()))
    }
}

/// The resident size of the conmon of a container `engine` runs: one made from `bundle` (whose
/// process stays until killed), started, its conmon's `VmRSS` read, then killed and deleted.
pub(super) fn conmon_rss_kib(
    tokio: &tokio::runtime::Runtime,
    engine: &Engine,
    id: &str,
    bundle: &Path,
) -> anyhow::Result<u64> {
    let container = ContainerId::new(id)?;
    tokio.block_on(async {
        engine.create(&container, bundle, CreateOptions::default()).await?;
        let measured = async {
            engine.start(&container).await?;
            let conmons: Vec<i32> = testkit::procs::live_with_argument(id.as_ref())
                .into_iter()
                .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "conmon"))
                .collect();
            let [conmon] = conmons[..] else { bail!("expected one conmon naming {id}, found {conmons:?}") };
            status_kib(&format!("/proc/{conmon}/status"), "VmRSS")
        }
        .await;
        engine.kill(&container, Signal::KILL, KillScope::Init).await?;
        engine.wait(&container).await?;
        engine.delete(&container, DeleteMode::IfStopped).await?;
        measured
    })
}

/// The field `key` (`VmRSS`, `VmHWM`: "kB" per proc(5), which means KiB) of a `/proc/*/status`.
pub(super) fn status_kib(path: &str, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    parse_status_kib(&status, key).with_context(|| format!("no {key} in {path}"))
}

pub(super) fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?.trim();
        value.strip_suffix("kB")?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_field_is_read_in_kib_and_only_under_its_own_name() {
        // proc(5): "VmHWM  Peak resident set size", "VmRSS  Resident set size", in kB.
        let status = "Name:\tconmon\nVmHWM:\t    2048 kB\nVmRSS:\t    1536 kB\nRssAnon:\t     256 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(1536));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(2048));
        assert_eq!(parse_status_kib(status, "Rss"), None, "a prefix of another field is not that field");
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn this_process_has_a_resident_size_no_larger_than_its_peak() {
        let rss = status_kib("/proc/self/status", "VmRSS").unwrap();
        let peak = status_kib("/proc/self/status", "VmHWM").unwrap();
        assert!(rss > 0 && rss <= peak, "VmRSS {rss} kB, VmHWM {peak} kB");
    }
}
