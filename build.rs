//! Links the `faultline` executable as a position-dependent (non-PIE)
//! binary.
//!
//! Why: the binary carries DataFusion and Arrow, and as a PIE its 5 MB of
//! relocation records were read, and its 4 MB of relocated tables written,
//! at every start, whatever the command: about 9 MiB of the idle
//! collector's RSS. Linked at a fixed address, the tables are final in the
//! file and only the pages used are read. The code is still compiled
//! position-independent (Rust's default), so only the final link changes;
//! the library and proc-macros are untouched.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
