//! The `artifacts` binary: everything is in the library's [`artifacts_cli::run`].

fn main() {
    std::process::exit(artifacts_cli::run(std::env::args_os()));
}
