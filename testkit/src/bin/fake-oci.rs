//! The fake OCI runtime as a standalone binary (see `testkit::fake_oci`).

fn main() -> std::process::ExitCode {
    testkit::fake_oci::main()
}
