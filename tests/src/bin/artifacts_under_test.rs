//! The `artifacts` binary, built inside the test crate so Cargo hands its path
//! to the end-to-end tests (`CARGO_BIN_EXE_artifacts-under-test`): the same
//! entry point, allocator and exit as the shipped one.
fn main() {
    // SAFETY: first thing in `main`, before any thread exists.
    unsafe { artifacts_cli::main() }
}
