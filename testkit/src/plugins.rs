//! Where the example plugins are built.

use std::path::PathBuf;

/// The path of the cdylib example `name` in this build's target directory: the test binary runs
/// from `<target>/<profile>/deps`, examples land in `<target>/<profile>/examples`.
pub fn example_library(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("test binaries live in <profile>/deps");
    profile_dir.join("examples").join(format!("lib{name}.so"))
}
