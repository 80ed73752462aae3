//! What the workspace's examples share, so that each one shows only what it is about.
//!
//! Every example runs as it is, with no arguments: it writes its own bundle into a temporary
//! directory with [`BundleBuilder`] (the builder the tests and `cargo xtask bundle` use), and
//! takes `--bundle DIR` to run the caller's instead and `--runtime runc|crun|youki` to pick the
//! backend at run time; nothing else in the example changes with the runtime.
//!
//! And every example leaves nothing behind, however it ends: an error or an interruption
//! (Ctrl-C, SIGTERM) ends its work ([`Interruptions::run`]), then [`clean_up`] deletes its
//! containers with everything the engine kept of them, and its temporary directories go when
//! their guards drop. Without that, a failed run leaves its container's id taken and the next
//! run fails with `AlreadyExists`.

use std::error::Error;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use backend_crun::Crun;
use backend_runc::Runc;
use backend_youki::Youki;
use runtime_core::{CliBackend, ContainerId, DeleteMode, Engine, RuntimeConfig};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::bundle::{Bundle, BundleBuilder};

/// What an example's steps give: any error, shown in words when the example ends.
pub type ExampleResult<T = ()> = Result<T, Box<dyn Error>>;

/// The runtimes `--runtime` takes.
pub const RUNTIMES: [&str; 3] = ["runc", "crun", "youki"];

/// The options every example takes, and the arguments it has of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleArgs {
    /// `--runtime NAME`, one of [`RUNTIMES`]; runc when not given.
    pub runtime: String,
    /// `--bundle DIR`: the caller's bundle, run instead of the example's own.
    pub bundle: Option<PathBuf>,
    /// The other arguments, in order.
    pub positional: Vec<String>,
}

impl ExampleArgs {
    /// The program's own arguments; `usage` names its positional ones, for the error.
    pub fn from_env(usage: &str) -> ExampleResult<Self> {
        Self::parse(std::env::args().skip(1), usage)
    }

    /// Reads `args` (the program's name left out).
    pub fn parse(args: impl IntoIterator<Item = String>, usage: &str) -> ExampleResult<Self> {
        let usage = || format!("usage: [--runtime {}] [--bundle DIR] {usage}", RUNTIMES.join("|"));
        let mut parsed = ExampleArgs { runtime: "runc".into(), bundle: None, positional: Vec::new() };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--runtime" => parsed.runtime = args.next().ok_or_else(usage)?,
                "--bundle" => parsed.bundle = Some(args.next().ok_or_else(usage)?.into()),
                "-h" | "--help" => return Err(usage().into()),
                flag if flag.starts_with('-') => return Err(format!("unknown option {flag}; {}", usage()).into()),
                _ => parsed.positional.push(arg),
            }
        }
        if !RUNTIMES.contains(&parsed.runtime.as_str()) {
            return Err(format!("unknown runtime {:?}; {}", parsed.runtime, usage()).into());
        }
        Ok(parsed)
    }

    /// The caller's bundle, or one `builder` writes into a temporary directory that goes
    /// when the returned value is dropped.
    pub fn bundle_or(&self, builder: BundleBuilder) -> ExampleResult<ExampleBundle> {
        match &self.bundle {
            Some(dir) => Ok(ExampleBundle::Given(dir.clone())),
            None => Ok(ExampleBundle::Made(builder.build()?)),
        }
    }

    /// Connects to the runtime `--runtime` names, as `config` says.
    pub async fn connect(&self, config: RuntimeConfig) -> ExampleResult<CliBackend> {
        Ok(match self.runtime.as_str() {
            "crun" => Crun::connect(config).await?,
            "youki" => Youki::connect(config).await?,
            _ => Runc::connect(config).await?,
        })
    }
}

/// The bundle an example runs.
#[derive(Debug)]
pub enum ExampleBundle {
    /// The caller's, left as it is.
    Given(PathBuf),
    /// The example's own, removed when dropped.
    Made(Bundle),
}

impl ExampleBundle {
    /// The bundle directory.
    pub fn path(&self) -> &Path {
        match self {
            ExampleBundle::Given(dir) => dir,
            ExampleBundle::Made(bundle) => bundle.path(),
        }
    }
}

/// Ctrl-C (SIGINT) and SIGTERM, turned from the end of the program into an error of the step
/// they interrupt, so that the cleanup after it runs. Listening starts when this is made; from
/// then on neither signal ends the program by itself.
#[derive(Debug)]
pub struct Interruptions {
    interrupt: Signal,
    terminate: Signal,
}

impl Interruptions {
    /// Starts listening.
    pub fn listen() -> ExampleResult<Self> {
        Ok(Interruptions { interrupt: signal(SignalKind::interrupt())?, terminate: signal(SignalKind::terminate())? })
    }

    /// Runs `work` to its end, or drops it when a signal comes first and gives an error saying
    /// which one.
    pub async fn run<T>(&mut self, work: impl Future<Output = ExampleResult<T>>) -> ExampleResult<T> {
        tokio::select! {
            outcome = work => outcome,
            _ = self.interrupt.recv() => Err("interrupted (SIGINT)".into()),
            _ = self.terminate.recv() => Err("terminated (SIGTERM)".into()),
        }
    }
}

/// Deletes the containers `ids` with everything the engine kept of them, once the rollbacks
/// of calls an interruption dropped have finished; a container already gone is no error. Gives
/// `outcome` back, or the first thing that could not be removed when `outcome` was a success
/// (after an error, what could not be removed is added to it).
pub async fn clean_up(engine: &Engine, ids: &[&ContainerId], outcome: ExampleResult) -> ExampleResult {
    let mut problems: Vec<String> = engine.settle().await.iter().map(ToString::to_string).collect();
    for id in ids {
        match engine.delete(id, DeleteMode::Force).await {
            Ok(()) | Err(runtime_core::Error::NotFound { .. }) => {}
            Err(err) => problems.push(format!("deleting {id}: {err}")),
        }
    }
    match (outcome, problems.is_empty()) {
        (outcome, true) => outcome,
        (Ok(()), false) => Err(format!("cleaning up: {}", problems.join("; ")).into()),
        (Err(err), false) => Err(format!("{err}; cleaning up: {}", problems.join("; ")).into()),
    }
}

/// The exit status of an example that ended with `outcome`, its error printed in words.
pub fn finish(outcome: ExampleResult) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> ExampleResult<ExampleArgs> {
        ExampleArgs::parse(args.iter().map(|arg| (*arg).to_owned()), "[DIR]")
    }

    #[test]
    fn no_arguments_is_runc_and_the_examples_own_bundle() {
        assert_eq!(parse(&[]).unwrap(), ExampleArgs { runtime: "runc".into(), bundle: None, positional: Vec::new() });
    }

    #[test]
    fn options_and_positional_arguments_mix_in_any_order() {
        assert_eq!(
            parse(&["/srv/dir", "--runtime", "youki", "--bundle", "/srv/b"]).unwrap(),
            ExampleArgs { runtime: "youki".into(), bundle: Some("/srv/b".into()), positional: vec!["/srv/dir".into()] }
        );
    }

    #[test]
    fn an_unknown_runtime_or_option_or_a_missing_value_is_refused_with_the_usage() {
        for args in [&["--runtime", "kata"][..], &["--bundel", "x"], &["--bundle"]] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains("usage: [--runtime runc|crun|youki] [--bundle DIR] [DIR]"), "{args:?}: {err}");
        }
    }
}
