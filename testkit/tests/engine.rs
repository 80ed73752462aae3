//! The engine's cases through a backend plugin (the example plugin, which drives the fake runc
//! and has no `run` command, so `Engine::run` takes its create-and-start path).

use std::process::ExitCode;

use testkit::conformance::register_engine;
use testkit::plugins::fake_plugin_subject;

fn main() -> ExitCode {
    testkit::harness::main(|suite| register_engine(suite, &fake_plugin_subject()))
}
