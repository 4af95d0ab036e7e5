fn main() {
    std::process::exit(artifacts_cli::run(std::env::args_os()));
}
