//! The `artifacts` binary: everything is in the library's [`artifacts_cli::run`].

use std::io::Write;

/// A fleet's declarations, lock and SOPS files are hundreds of thousands of
/// small allocations, where glibc's allocator took a third of a `check`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // SAFETY: first thing in `main`, before any thread exists.
    unsafe { artifacts_cli::take_prompt_variables() };
    let code = artifacts_cli::run(std::env::args_os());
    // Everything of ours is cleaned up by now (scratch directories are
    // removed when `run` returns); what the C library's exit handlers would
    // add is the allocator handing every page back to the system one by
    // one, a few milliseconds of a fleet's `check`.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` only ends the process.
    unsafe { libc::_exit(code) }
}
