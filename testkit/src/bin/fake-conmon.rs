//! The fake conmon as a standalone binary (see `testkit::fake_conmon`).

fn main() -> std::process::ExitCode {
    testkit::fake_conmon::main()
}
