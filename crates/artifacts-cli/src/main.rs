//! The `artifacts` binary: everything is in the library's [`artifacts_cli::run`].

fn main() {
    // SAFETY: first thing in `main`, before any thread exists.
    unsafe { artifacts_cli::take_prompt_variables() };
    std::process::exit(artifacts_cli::run(std::env::args_os()));
}
