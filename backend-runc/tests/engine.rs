//! The engine's cases over runc with each monitor: against the fake on every run, against the
//! real runc when the gate lets it run. A binary of its own: see
//! `testkit::conformance::register_engine`.

use std::process::ExitCode;
use std::sync::Arc;

use backend_runc::Runc;
use testkit::conformance::{Subject, register_engine};
use testkit::fake::Flavour;

fn main() -> ExitCode {
    testkit::harness::main(|suite| {
        register_engine(suite, &Subject::fake(Flavour::Runc, Arc::new(Runc)));
        register_engine(suite, &Subject::real(Arc::new(Runc)));
    })
}
