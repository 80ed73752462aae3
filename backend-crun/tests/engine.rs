//! The engine's cases over crun with each monitor: against the fake on every run, against the
//! real crun when the gate lets it run. A binary of its own: see
//! `testkit::conformance::register_engine`.

use std::process::ExitCode;
use std::sync::Arc;

use backend_crun::Crun;
use testkit::conformance::{Subject, register_engine};
use testkit::fake::Flavour;

fn main() -> ExitCode {
    testkit::harness::main(|suite| {
        // The fake runs on any host: no mount table to refuse.
        register_engine(suite, &Subject::fake(Flavour::Crun, Arc::new(Crun::with_mountinfo("/dev/null"))));
        register_engine(suite, &Subject::real(Arc::new(Crun::default())));
    })
}
