//! The `artifacts` binary: everything is in the library's [`artifacts_cli::main`].

fn main() {
    // SAFETY: first thing in `main`, before any thread exists.
    unsafe { artifacts_cli::main() }
}
