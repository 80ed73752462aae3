//! The conformance suite's rootless cells: the real runc, crun and youki under the direct monitor
//! and conmon, each case run as the unprivileged user `cargo xtask setup` makes
//! (`testkit::conformance::register_rootless`).

use std::process::ExitCode;
use std::sync::Arc;

use backend_crun::Crun;
use backend_runc::Runc;
use backend_youki::Youki;
use runtime_core::RuntimeFamily;
use testkit::conformance::register_rootless;

fn main() -> ExitCode {
    testkit::harness::main(|suite| {
        let families: [Arc<dyn RuntimeFamily>; 3] = [Arc::new(Runc), Arc::new(Crun::default()), Arc::new(Youki)];
        for family in &families {
            register_rootless(suite, family);
        }
    })
}
