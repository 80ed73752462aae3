//! Loading backend plugins: every way a plugin can be wrong gives a typed error, and a good one
//! stays loaded as long as its backend lives. The plugins are this package's cdylib examples,
//! which `cargo test` builds before running tests.

use std::path::{Path, PathBuf};

use runtime_core::plugin::{BackendPlugin, PLUGIN_ABI_VERSION, PLUGIN_DESCRIPTOR_SYMBOL};
use runtime_core::{Error, PluginProblem, RuntimeConfig};
use testkit::fake::{FakeRuntime, Flavour};

fn example(name: &str) -> PathBuf {
    let path = testkit::plugins::example_library(name);
    assert!(path.is_file(), "{} is missing: build it with `cargo build -p testkit --examples`", path.display());
    path
}

fn problem(result: Result<BackendPlugin, Error>) -> PluginProblem {
    match result {
        Err(Error::Plugin { problem, .. }) => problem,
        other => panic!("expected a plugin error, got {other:?}"),
    }
}

fn mapped(path: &Path) -> bool {
    let canonical = path.canonicalize().unwrap();
    std::fs::read_to_string("/proc/self/maps").unwrap().contains(canonical.to_str().unwrap())
}

fn open_failure(path: &Path) -> String {
    match problem(BackendPlugin::open(path)) {
        PluginProblem::Open(reason) => reason,
        other => panic!("{}: {other:?}", path.display()),
    }
}

#[test]
fn a_missing_file_cannot_be_opened_and_the_loader_says_why() {
    let reason = open_failure(Path::new("/nonexistent/libnothing.so"));
    // glibc's dlerror() for a path that does not exist.
    assert!(reason.contains("/nonexistent/libnothing.so"), "{reason}");
    assert!(reason.contains("No such file or directory"), "{reason}");
}

#[test]
fn a_file_that_is_not_a_library_cannot_be_opened_and_the_loader_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libnoise.so");
    std::fs::write(&path, vec![0x5a; 4096]).unwrap();
    let reason = open_failure(&path);
    // glibc's dlerror() for a file without an ELF header.
    assert!(reason.contains("invalid ELF header"), "{reason}");
    assert_ne!(reason, open_failure(Path::new("/nonexistent/libnothing.so")), "two failures, two reasons");
    let said = BackendPlugin::open(&path).unwrap_err().to_string();
    assert!(said.contains("invalid ELF header") && !said.contains("dlopen failed"), "{said}");
}

#[test]
fn a_library_without_the_descriptor_symbol_is_refused() {
    // libc is a shared library every test process has mapped, and it exports no descriptor.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let libc =
        maps.lines().filter_map(|line| line.split_whitespace().nth(5)).find(|path| path.contains("libc.so")).unwrap();
    match problem(BackendPlugin::open(Path::new(libc))) {
        PluginProblem::MissingSymbol { symbol, .. } => assert_eq!(symbol, PLUGIN_DESCRIPTOR_SYMBOL),
        other => panic!("{other:?}"),
    }
}

#[test]
fn another_abi_version_is_refused_before_reading_the_descriptor() {
    match problem(BackendPlugin::open(&example("future_abi_plugin"))) {
        PluginProblem::AbiVersion { found, expected } => assert_eq!((found, expected), (2, PLUGIN_ABI_VERSION)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_descriptor_whose_dialect_is_not_a_dialect_is_malformed() {
    match problem(BackendPlugin::open(&example("malformed_plugin"))) {
        PluginProblem::Malformed(message) => assert!(message.contains("dialect_json"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_good_plugin_declares_its_dialect() {
    let plugin = BackendPlugin::open(&example("fake_plugin")).unwrap();
    let dialect = plugin.declared_dialect();
    assert_eq!(dialect.checkpoint_command.as_deref(), Some("checkpoint"));
    assert!(dialect.errors.not_found.contains(&"container does not exist".to_owned()));
}

#[tokio::test]
async fn the_library_stays_loaded_while_its_backend_lives() {
    let path = example("fake_plugin");
    let fake = FakeRuntime::with_program(Flavour::Runc, Path::new(env!("CARGO_BIN_EXE_fake-oci"))).unwrap();
    let backend = BackendPlugin::open(&path).unwrap().connect(RuntimeConfig { ..fake.config() }).await.unwrap();
    assert_eq!(backend.name(), "fake-plugin");
    assert!(mapped(&path), "the plugin is mapped while its backend lives");
    assert!(backend.list().await.unwrap().is_empty(), "and the backend works");
    drop(backend);
}
