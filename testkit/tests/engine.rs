//! The engine's cases through a backend plugin (the example plugin, which drives the fake runc
//! and has no `run` command, so `Engine::run` takes its create-and-start path).

use std::process::ExitCode;
use std::sync::Arc;

use runtime_core::OciBackend;
use runtime_core::plugin::BackendPlugin;
use testkit::conformance::{Connector, Setup, Subject, register_engine};
use testkit::fake::Flavour;

fn main() -> ExitCode {
    let connect: Connector = Arc::new(|config| {
        Box::pin(async move {
            let plugin = BackendPlugin::open(&testkit::plugins::example_library("fake_plugin"))?;
            let backend: Box<dyn OciBackend> = plugin.connect(config).await?;
            Ok(backend)
        })
    });
    testkit::harness::main(|suite| {
        register_engine(suite, &Subject::custom("plugin-fake", Setup::Fake(Flavour::Runc), connect));
    })
}
