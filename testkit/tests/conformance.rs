//! The conformance suite through a backend plugin: the example plugin describes the fake runc
//! as data, and the whole suite runs through it.

use std::process::ExitCode;

use testkit::conformance::register;
use testkit::plugins::fake_plugin_subject;

fn main() -> ExitCode {
    testkit::harness::main(|suite| register(suite, &fake_plugin_subject()))
}
