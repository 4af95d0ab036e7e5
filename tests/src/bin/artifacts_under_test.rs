//! The `artifacts` binary, built inside the test crate so Cargo hands its path
//! to the end-to-end tests (`CARGO_BIN_EXE_artifacts-under-test`).
fn main() {
    // SAFETY: first thing in `main`, before any thread exists.
    unsafe { artifacts_cli::take_prompt_variables() };
    std::process::exit(artifacts_cli::run(std::env::args_os()));
}
