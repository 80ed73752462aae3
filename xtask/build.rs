//! Records the profile and optimisation level this build of xtask uses, so `bench` can tell
//! whether the code it would time is optimised, and say so in its report.

fn main() {
    for variable in ["PROFILE", "OPT_LEVEL"] {
        let value = std::env::var(variable).unwrap_or_else(|_| "unknown".to_owned());
        println!("cargo:rustc-env=XTASK_BUILD_{variable}={value}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
