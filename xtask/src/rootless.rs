//! The matrix's rootless columns: each real runtime the matrix found, under the direct monitor
//! and conmon, as the unprivileged user `cargo xtask setup` makes (testkit's rootless cells).
//!
//! A rootless cell runs in a copy of this program executed as the user, the way the test
//! binaries run theirs, so this program must be that copy too: [`serve_as_user_copy`] is the
//! first thing `main` does after serving as a fake, before any argument is read (the copy gets
//! none). The copy registers the same cells the matrix does, runs the one it was started for and
//! reports its outcome to the matrix as data.
//!
//! Whether a runtime can run rootless here is a host verdict the library reaches for the caller
//! it runs as, so the matrix's "rootless" feature verdict is reached by a copy of this program
//! run as the user ([`serve_host_verdicts`]), not by root, for whom every runtime is fine.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use runtime_core::{RuntimeFamily, Support, host_support};
use testkit::conformance::{register_rootless, run_as_user_copy};
use testkit::harness::Suite;
use testkit::rootless::{RootlessUser, USER, case_of_this_copy};

/// Set in the user's copy that reports host verdicts: the runtimes, separated by spaces.
const VERDICTS_ENV: &str = "XTASK_MATRIX_ROOTLESS_VERDICTS";

/// What starts the line of that copy's standard output that holds its verdicts.
const VERDICTS_PREFIX: &str = "xtask matrix rootless verdicts: ";

/// A runtime's host verdict as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootlessVerdict {
    /// The first check that refuses the runtime, in its words (problem; fix); `None`: none does.
    pub refusal: Option<String>,
    /// Each check that ran, as the user: what it checks and what it saw.
    pub evidence: Vec<String>,
}

impl RootlessVerdict {
    fn of(support: &Support) -> Self {
        let evidence =
            support.evidence().iter().map(|probe| format!("{}: {}", probe.argv.join(" "), probe.output)).collect();
        RootlessVerdict { refusal: support.reason().map(str::to_owned), evidence }
    }

    /// As the matrix's JSON has it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "user": USER, "refusal": self.refusal, "evidence": self.evidence })
    }

    fn from_json(value: &serde_json::Value) -> anyhow::Result<Self> {
        let strings = |value: &serde_json::Value| {
            value.as_array().map(|items| items.iter().filter_map(|item| item.as_str().map(str::to_owned)).collect())
        };
        Ok(RootlessVerdict {
            refusal: value["refusal"].as_str().map(str::to_owned),
            evidence: strings(&value["evidence"]).with_context(|| format!("no evidence in {value}"))?,
        })
    }
}

/// The host verdicts of `families` as the user sees them, by runtime, reached by a copy of this
/// program run as the user; for each, why not when the user is not ready.
pub fn host_verdicts(families: &[Arc<dyn RuntimeFamily>]) -> BTreeMap<String, Result<RootlessVerdict, String>> {
    let names: Vec<&str> = families.iter().map(|family| family.name()).collect();
    let verdicts = RootlessUser::find()
        .map_err(|reason| format!("{reason} (`cargo xtask setup` makes it)"))
        .and_then(|user| verdicts_as(&user, &names).map_err(|err| format!("as {USER}: {err:#}")));
    names
        .iter()
        .map(|name| {
            let verdict = match &verdicts {
                Ok(verdicts) => verdicts.get(*name).cloned().ok_or_else(|| format!("the copy as {USER} gave none")),
                Err(why) => Err(why.clone()),
            };
            ((*name).to_owned(), verdict)
        })
        .collect()
}

fn verdicts_as(user: &RootlessUser, names: &[&str]) -> anyhow::Result<BTreeMap<String, RootlessVerdict>> {
    let output =
        user.copy_of_this_program(|copy| copy.env(VERDICTS_ENV, names.join(" ")).output().context("running setpriv"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(line) = stdout.lines().find_map(|line| line.strip_prefix(VERDICTS_PREFIX)) else {
        bail!("no verdicts ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    };
    let verdicts: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(line).context("reading the copy's verdicts")?;
    verdicts.iter().map(|(name, verdict)| Ok((name.clone(), RootlessVerdict::from_json(verdict)?))).collect()
}

/// When this process is the user's copy asked for host verdicts, prints those of the runtimes
/// it was asked for (the library's host checks, run as this user) and gives the exit code;
/// `None` otherwise.
pub fn serve_host_verdicts() -> Option<ExitCode> {
    let asked = std::env::var(VERDICTS_ENV).ok()?;
    let verdicts: serde_json::Map<String, serde_json::Value> = crate::matrix::real_families()
        .into_iter()
        .filter(|family| asked.split_whitespace().any(|name| name == family.name()))
        .map(|family| (family.name().to_owned(), RootlessVerdict::of(&host_support(&family.host_checks())).json()))
        .collect();
    println!("{VERDICTS_PREFIX}{}", serde_json::Value::Object(verdicts));
    Some(ExitCode::SUCCESS)
}

/// Adds the rootless cells of each of `families` to `suite`.
pub fn register(suite: &mut Suite, families: &[Arc<dyn RuntimeFamily>]) {
    for family in families {
        register_rootless(suite, family);
    }
}

/// When this process is the user's copy of the program, runs its one rootless cell and gives the
/// exit code; `None` otherwise.
pub fn serve_as_user_copy() -> Option<ExitCode> {
    case_of_this_copy()?;
    let mut suite = Suite::default();
    register(&mut suite, &crate::matrix::real_families());
    run_as_user_copy(&mut suite)
}

/// The line the matrix prints when the user is not ready, saying why and what makes it; its
/// cells then skip with that reason (or fail, when `REQUIRE_REAL_RUNTIMES` names `rootless`).
pub fn missing_user_line() -> Option<String> {
    RootlessUser::find().err().map(|reason| missing_line(&reason))
}

fn missing_line(reason: &str) -> String {
    format!("rootless columns: {reason}; `cargo xtask setup` creates {USER}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_missing_user_line_says_why_and_that_setup_creates_the_user() {
        assert_eq!(
            missing_line("there is no user ocirt-rootless"),
            "rootless columns: there is no user ocirt-rootless; `cargo xtask setup` creates ocirt-rootless"
        );
    }
}
