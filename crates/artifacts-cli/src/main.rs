//! The `artifacts` binary: everything is in the library's [`artifacts_cli::run`].

/// A fleet's declarations, lock and SOPS files are hundreds of thousands of
/// small allocations, where glibc's allocator took a third of a `check`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // SAFETY: first thing in `main`, before any thread exists.
    unsafe { artifacts_cli::take_prompt_variables() };
    std::process::exit(artifacts_cli::run(std::env::args_os()));
}
