//! The `artifacts` command: parse, run, turn errors into exit codes.
//!
//! [`run`] takes argv as a parameter so tests can call it in-process. Global
//! state: the signal-handling thread installed by [`artifacts_os::signals::install`], which
//! removes scratch directories and stops children on SIGINT/SIGTERM/SIGHUP/SIGQUIT,
//! and the process hardening done first thing
//! ([`artifacts_os::process::harden_current_process`]: no core dumps,
//! not dumpable, inherited descriptors close-on-exec). A closed stdout
//! (`artifacts … | head`) ends any command with exit code 0.
//!
//! # Adding a command
//!
//! 1. A variant of [`args::Command`] with a one-line doc comment (its help
//!    and man page title) and its own flags; artifact, target, backend and
//!    file arguments get `add = ArgValueCandidates::new(shell::artifact_names)`
//!    (or `target_names`, `backend_names`, `file_names`) to complete from the
//!    project, path arguments a `value_hint`.
//! 2. An entry in [`help::PAGES`]: two or three examples and the global
//!    options it uses (the others are hidden from its help, man page and
//!    completions). The test `every_command_has_a_page` fails without it;
//!    `artifacts-<command>(1)` is generated from both.
//! 3. A function in [`commands`] returning the exit code, and its arm in
//!    `dispatch`. Under `--json` ([`report::enabled`]) it prints nothing on
//!    stdout: it reports each unit with [`report::unit_result`] (and
//!    [`report::unit_error`] for a unit that failed) and its own top-level
//!    fields with [`report::set`]; the document, with the command's name,
//!    exit code and the error it returned (located, for declaration
//!    errors), is printed by [`run`]. People's text goes to stderr. New
//!    `result` words or top-level fields go into
//!    `docs/schema/output.schema.json`, which the e2e tests validate every
//!    document against. A command whose stdout is data (a file, a script)
//!    answers `--json` with a usage error instead: list it in
//!    [`args::Command::has_json`].
//!
//! ```
//! // What `main` does, with any argv: the exit code comes back.
//! assert_eq!(artifacts_cli::run(["artifacts", "--version"]), 0);
//! assert_eq!(artifacts_cli::run(["artifacts", "--no-such-flag"]), 2);
//! ```

mod args;
mod ask;
mod commands;
mod context;
mod exit;
mod help;
mod man;
mod output;
mod report;
mod shell;
mod tools;

use std::ffi::OsString;
use std::io::Write;

use anyhow::Result;
use clap::FromArgMatches;

use args::{Cli, ColorChoice, Command, GlobalArgs};
use commands::generate::Request;
use context::Context;

pub use ask::take_prompt_variables;

/// A fleet's declarations, lock and SOPS files are hundreds of thousands of
/// small allocations, where glibc's allocator took a third of a `check`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The whole program, for the `artifacts` binary (and the one the tests
/// run): [`take_prompt_variables`], [`run`] with our arguments, and the exit.
///
/// # Safety
///
/// As [`take_prompt_variables`]: call it first thing in `main`, before any
/// other thread exists.
pub unsafe fn main() -> ! {
    // SAFETY: the caller's promise.
    unsafe { take_prompt_variables() };
    let code = run(std::env::args_os());
    // Everything of ours is cleaned up by now (scratch directories are
    // removed when `run` returns); what the C library's exit handlers would
    // add is the allocator handing every page back to the system one by
    // one, a few milliseconds of a fleet's `check`.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` only ends the process.
    unsafe { libc::_exit(code) }
}

/// Runs the command line `argv` (program name first) and returns the exit code.
pub fn run<I, T>(argv: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    artifacts_os::process::harden_current_process();
    exit::install_broken_pipe_hook();
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    // A wrapper script's call, once per (target, artifact): answered before
    // the command tree, logging and the signal thread are built, which cost
    // more than the answer.
    if let [_, hidden, backend, script] = argv.as_slice()
        && hidden == "__backend"
        && let (Some(backend), Some(script)) = (backend.to_str(), script.to_str())
    {
        return commands::backend::run(backend, script);
    }
    if shell::complete(&argv) {
        return exit::SUCCESS;
    }
    let matches = match args::command().try_get_matches_from(&argv) {
        Ok(matches) => matches,
        Err(error) => return parse_error(&argv, &error),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => return parse_error(&argv, &error),
    };
    if cli.global.json {
        report::begin(&command_name(&matches));
    }
    setup_output(&cli.global);
    artifacts_os::redact::show_unredacted(cli.global.show_stderr);
    artifacts_os::signals::install();
    // Age plugins (hardware keys) may ask for a PIN or a touch wherever a key is used.
    artifacts_crypto::plugin::set_ui(std::sync::Arc::new(ask::TtyPluginUi));
    let result = dispatch(&cli);
    artifacts_os::signals::yield_to_handler();
    let (code, failure) = match &result {
        Ok(code) => (*code, None),
        Err(error) if exit::is_broken_pipe(error) => return exit::SUCCESS,
        Err(error) => (exit::report(error), Some(error)),
    };
    // A reader that went away has seen what it wanted.
    let _ = report::finish(code, failure);
    code
}

/// A command line clap rejects (or `--help`/`--version`): clap's text, and
/// under `--json` the error document too.
fn parse_error(argv: &[OsString], error: &clap::Error) -> i32 {
    let _ = error.print();
    if !error.use_stderr() {
        return exit::SUCCESS;
    }
    // Not parsed, so `--json` is looked for by hand (before any `--`).
    if argv
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
    {
        let known: Vec<String> = args::command()
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        let command = argv
            .iter()
            .skip(1)
            .filter_map(|a| a.to_str())
            .find(|a| known.iter().any(|k| k == a))
            .unwrap_or("artifacts");
        report::begin(command);
        let rendered = error.render().to_string();
        let message = rendered
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ");
        let failure = exit::usage(message, None);
        let _ = report::finish(exit::USAGE, Some(&failure));
    }
    exit::USAGE
}

/// The subcommand path of a parsed command line (`check`, `sops decrypt`);
/// bare `artifacts` under `--json` is `list`.
fn command_name(matches: &clap::ArgMatches) -> String {
    let mut names = Vec::new();
    let mut current = matches;
    while let Some((name, sub)) = current.subcommand() {
        names.push(name.to_owned());
        current = sub;
    }
    if names.is_empty() {
        "list".to_owned()
    } else {
        names.join(" ")
    }
}

fn setup_output(global: &GlobalArgs) {
    match global.color {
        ColorChoice::Always => console::set_colors_enabled_stderr(true),
        ColorChoice::Never => {
            console::set_colors_enabled(false);
            console::set_colors_enabled_stderr(false);
        }
        ColorChoice::Auto => {}
    }
    if global.color == ColorChoice::Always {
        console::set_colors_enabled(true);
    }
    let level = match (global.log_level, global.quiet, global.verbose) {
        (Some(level), _, _) => level.as_str(),
        (None, true, _) => "error",
        (None, false, 0) => "warn",
        (None, false, 1) => "info",
        (None, false, _) => "debug",
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(console::colors_enabled_stderr())
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .try_init();
}

fn dispatch(cli: &Cli) -> Result<i32> {
    let global = &cli.global;
    if let Some(name) = report::command()
        && let Some(command) = &cli.command
        && !command.has_json()
    {
        return Err(exit::usage(
            format!(
                "--json does not apply to `artifacts {name}`: it prints the data itself (or a script or page), never a report"
            ),
            Some("leave out --json; the project commands (list, check, generate, …) take it"),
        ));
    }
    match &cli.command {
        Some(Command::Completions(args)) => completions(args.shell),
        Some(Command::Man(args)) => man::run(args),
        Some(Command::Init(args)) => commands::init::run(global, args),
        Some(Command::Age(command)) => tool(global, |io| command.run(io)),
        Some(Command::Sops(command)) => tool(global, |io| command.run(io)),
        Some(Command::Tanka(command)) => tool(global, |io| command.run(io)),
        Some(Command::Cmp(command)) => tool(global, |io| command.run(io)),
        Some(Command::ShippedBackend(args)) => {
            Ok(commands::backend::run(&args.backend, &args.script))
        }
        Some(command) => project(command, global),
        None => guided(global),
    }
}

/// The project, locked for changes, with the operator's identities unlocked.
fn exclusive_with_keys(global: &GlobalArgs, identity: &args::IdentityArgs) -> Result<Context> {
    Context::load_exclusive(global)?.with_unlocked_identities(&identity.identities)
}

/// The commands that work on the project's declarations.
fn project(command: &Command, global: &GlobalArgs) -> Result<i32> {
    match command {
        Command::List => commands::status::list(&Context::load(global)?, global.json),
        Command::Check(args) => {
            commands::status::check(&Context::load(global)?, args, global.json, global.quiet)
        }
        Command::Generate(args) => generate(
            global,
            &args.artifacts,
            &args.prompts,
            (false, None),
            args.regenerate_elsewhere,
        ),
        Command::Regenerate(args) => generate(
            global,
            &args.artifacts,
            &args.prompts,
            (true, args.older_than),
            args.regenerate_elsewhere,
        ),
        Command::Explain(args) => {
            commands::explain::explain(&Context::load(global)?, &args.artifact, global.json)
        }
        Command::Accept(args) => {
            commands::lifecycle::accept(&Context::load_exclusive(global)?, global, args)
        }
        Command::Migrate(args) => commands::lifecycle::migrate(
            &exclusive_with_keys(global, &args.identity)?,
            global,
            args,
        ),
        Command::Gc(args) => {
            commands::lifecycle::gc(&exclusive_with_keys(global, &args.identity)?, global, args)
        }
        Command::Graph(args) => {
            commands::explain::graph(&Context::load(global)?, args.dot, global.json)
        }
        Command::Activate(args) => commands::activate::run(&Context::load(global)?, global, args),
        Command::Show(args) => commands::stored::show(
            &Context::load(global)?.with_unlocked_identities(&args.identity.identities)?,
            args,
        ),
        Command::Rekey(args) => {
            commands::stored::rekey(&exclusive_with_keys(global, &args.identity)?, global, args)
        }
        Command::Set(args) => commands::manual::set(
            &Context::load_exclusive(global)?.with_identities(&args.identity.identities)?,
            global,
            args,
        ),
        Command::Edit(args) => {
            commands::manual::edit(&exclusive_with_keys(global, &args.identity)?, global, args)
        }
        Command::Import(args) => {
            commands::manual::import(&exclusive_with_keys(global, &args.identity)?, global, args)
        }
        Command::Openbao(args::OpenbaoCommand::Policies(args)) => {
            commands::openbao::policies(&Context::load(global)?, global, args.apply)
        }
        Command::Backends => {
            commands::explain::backends(&context::registry_only(global)?, global.json)
        }
        Command::Completions(_)
        | Command::Man(_)
        | Command::Init(_)
        | Command::Age(_)
        | Command::Sops(_)
        | Command::Tanka(_)
        | Command::Cmp(_)
        | Command::ShippedBackend(_) => unreachable!("dispatched before"),
    }
}

fn completions(shell: clap_complete::Shell) -> Result<i32> {
    let script = shell::registration(shell)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(exit::SUCCESS)
}

fn generate(
    global: &GlobalArgs,
    artifacts: &[String],
    prompts: &args::PromptArgs,
    (force, older_than): (bool, Option<std::time::Duration>),
    regenerate_elsewhere: bool,
) -> Result<i32> {
    let ctx = Context::load_exclusive(global)?.with_identities(&prompts.identity.identities)?;
    let request = Request {
        artifacts,
        prompts,
        force,
        older_than,
        regenerate_elsewhere,
    };
    commands::generate::run(&ctx, global, request)
}

/// Runs an `age`, `sops`, `tanka` or `cmp` subcommand: plaintext only through stdin, stdout and files.
fn tool(global: &GlobalArgs, run: impl FnOnce(&mut tools::Io<'_>) -> Result<()>) -> Result<i32> {
    let env: std::collections::BTreeMap<String, OsString> = std::env::vars_os()
        .filter_map(|(key, value)| key.into_string().ok().map(|key| (key, value)))
        .collect();
    let cwd = std::env::current_dir()?;
    let cwd = match &global.directory {
        Some(dir) => cwd.join(dir),
        None => cwd,
    };
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    let mut io = tools::Io {
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
        env: &env,
        cwd,
        passphrase: &ask::TtyPassphrase,
    };
    run(&mut io)?;
    stdout.flush()?;
    Ok(exit::SUCCESS)
}

/// Bare `artifacts`: in a terminal, the status table and an offer to generate
/// what is missing; otherwise the same as `list`.
fn guided(global: &GlobalArgs) -> Result<i32> {
    let interactive = ask::interactive() && !global.json;
    // Only the interactive mode may go on to generate: only it takes the project lock.
    let ctx = if interactive {
        Context::load_exclusive(global)?
    } else {
        Context::load(global)?
    };
    if !interactive {
        return commands::status::list(&ctx, global.json);
    }
    let plan = ctx.plan()?;
    let selected = ctx.select(plan, &[])?;
    let rows = commands::status::rows(&ctx, plan, &selected);
    commands::status::print_table(&rows, false)?;
    let summary = commands::status::summarize(&rows);
    if !summary.needs_work() {
        eprintln!("everything is stored and current");
        for line in commands::status::advice(plan, &rows, false) {
            eprintln!("{line}");
        }
        return Ok(if summary.errors > 0 {
            exit::FAILURE
        } else {
            exit::SUCCESS
        });
    }
    let question = format!("Generate {} missing artifact(s)?", summary.missing);
    if summary.missing == 0 {
        for line in commands::status::advice(plan, &rows, false) {
            eprintln!("{line}");
        }
    }
    if summary.missing > 0 && ask::confirm(&question)? {
        let ctx = ctx.with_identities(&[])?;
        let prompts = args::PromptArgs {
            prompts_file: None,
            yes: false,
            dry_run: false,
            identity: args::IdentityArgs::default(),
            no_cascade: false,
        };
        return commands::generate::run(
            &ctx,
            global,
            Request {
                artifacts: &[],
                prompts: &prompts,
                force: false,
                older_than: None,
                regenerate_elsewhere: false,
            },
        );
    }
    Ok(exit::FAILURE)
}
