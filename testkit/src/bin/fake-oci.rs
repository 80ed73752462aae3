//! The fake OCI runtime as a standalone binary (see `testkit::fake_oci`), run through a link
//! named `runc`, `crun`, `youki` or `criu` as `testkit::fake::FakeRuntime` makes them.

fn main() -> std::process::ExitCode {
    testkit::fake_oci::main()
}
