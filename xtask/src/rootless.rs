//! The matrix's rootless columns: each real runtime the matrix found, under the direct monitor
//! and conmon, as the unprivileged user `cargo xtask setup` makes (testkit's rootless cells).
//!
//! A rootless cell runs in a copy of this program executed as the user, the way the test
//! binaries run theirs, so this program must be that copy too: [`serve_as_user_copy`] is the
//! first thing `main` does after serving as a fake, before any argument is read (the copy gets
//! none). The copy registers the same cells the matrix does, runs the one it was started for and
//! reports its outcome to the matrix as data.

use std::process::ExitCode;
use std::sync::Arc;

use runtime_core::RuntimeFamily;
use testkit::conformance::{register_rootless, run_as_user_copy};
use testkit::harness::Suite;
use testkit::rootless::{RootlessUser, USER, case_of_this_copy};

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
