//! The conformance suite for youki: against the fake on every run, against the real youki when
//! the gate lets it run.

use std::process::ExitCode;
use std::sync::Arc;

use backend_youki::Youki;
use testkit::conformance::{Subject, register};
use testkit::fake::Flavour;

fn main() -> ExitCode {
    testkit::harness::main(|suite| {
        register(suite, &Subject::fake(Flavour::Youki, Arc::new(Youki)));
        register(suite, &Subject::real(Arc::new(Youki)));
    })
}
