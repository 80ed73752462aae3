//! The example plugins: where they are built, and the conformance subject made of one.

use std::path::PathBuf;

/// The path of the cdylib example `name` in this build's target directory: the test binary runs
/// from `<target>/<profile>/deps`, examples land in `<target>/<profile>/examples`.
pub fn example_library(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("test binaries live in <profile>/deps");
    profile_dir.join("examples").join(format!("lib{name}.so"))
}

/// The subject `plugin-fake`: the example plugin, which describes the fake runc as data.
pub fn fake_plugin_subject() -> crate::conformance::Subject {
    plugin_subject("plugin-fake", example_library("fake_plugin"))
}

/// The subject `label`: the backend plugin `library`, held to the suite against the fake runc
/// (it is handed the fake's binary and state root, as any backend is).
pub fn plugin_subject(label: impl Into<String>, library: PathBuf) -> crate::conformance::Subject {
    use crate::conformance::{Connector, Setup, Subject};
    let connect: Connector = std::sync::Arc::new(move |config| {
        let library = library.clone();
        Box::pin(async move { connect(&library, config).await })
    });
    Subject::custom(label, Setup::Fake(crate::fake::Flavour::Runc), connect)
}

/// The backend of the plugin `library`, connected with `config`.
pub async fn connect(
    library: &std::path::Path,
    config: runtime_core::RuntimeConfig,
) -> runtime_core::Result<Box<dyn runtime_core::OciBackend>> {
    runtime_core::plugin::BackendPlugin::open(library)?.connect(config).await
}
