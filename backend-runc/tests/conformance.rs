//! The conformance suite for runc: against the fake on every run, against the real runc when
//! the gate lets it run.

use std::process::ExitCode;
use std::sync::Arc;

use backend_runc::Runc;
use testkit::conformance::{Subject, register};
use testkit::fake::Flavour;

fn main() -> ExitCode {
    testkit::harness::main(|suite| {
        register(suite, &Subject::fake(Flavour::Runc, Arc::new(Runc)));
        register(suite, &Subject::real(Arc::new(Runc)));
    })
}
