//! The conformance suite through a backend plugin: the example plugin describes the fake runc
//! as data, and the whole suite runs through it.

use std::process::ExitCode;
use std::sync::Arc;

use runtime_core::OciBackend;
use runtime_core::plugin::BackendPlugin;
use testkit::conformance::{Connector, Setup, Subject, register};
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
        register(suite, &Subject::custom("plugin-fake", Setup::Fake(Flavour::Runc), connect));
    })
}
