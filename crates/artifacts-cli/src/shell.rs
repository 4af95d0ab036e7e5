//! Shell completions: clap's dynamic completion protocol.
//!
//! `artifacts completions SHELL` prints a small script that, on each Tab,
//! runs `COMPLETE=SHELL artifacts -- WORDS…`; [`complete`] answers that call
//! first thing in [`crate::run`]. Artifact names, targets, backends and the
//! files of an artifact come from the project the command line names (its
//! `-C`, `--manifest`, `--flake`, `--backends`), paths from the file
//! system. Hidden commands (`__backend`) and the global options a command
//! does not use are not offered (clap offers hidden ones only when nothing
//! visible starts with what was typed, such as `__`). A project that
//! cannot be loaded offers nothing, silently: completion must not print.

use std::ffi::OsString;

use anyhow::Result;
use clap::FromArgMatches;
use clap_complete::CompleteEnv;
use clap_complete::engine::CompletionCandidate;
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};

use crate::args::{Cli, Command, GlobalArgs};
use crate::context::Context;

/// The variable that switches the binary into completion mode.
const VAR: &str = "COMPLETE";

/// Answers a completion request (`COMPLETE=bash artifacts -- …`); whether
/// this was one (then the run is over).
pub fn complete(argv: &[OsString]) -> bool {
    let cwd = std::env::current_dir().ok();
    match CompleteEnv::with_factory(crate::args::command)
        .var(VAR)
        .bin("artifacts")
        .try_complete(argv.iter().cloned(), cwd.as_deref())
    {
        Ok(done) => done,
        Err(error) => {
            let _ = error.print();
            true
        }
    }
}

/// The registration script for `shell`: it calls this binary as it was
/// started (`artifacts` through `$PATH`, or the path given) on each Tab.
pub fn registration(shell: clap_complete::Shell) -> Result<Vec<u8>> {
    let completer: &dyn EnvCompleter = match shell {
        clap_complete::Shell::Bash => &Bash,
        clap_complete::Shell::Elvish => &Elvish,
        clap_complete::Shell::Fish => &Fish,
        clap_complete::Shell::PowerShell => &Powershell,
        clap_complete::Shell::Zsh => &Zsh,
        other => anyhow::bail!("no completions for shell `{other}`"),
    };
    let program = std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "artifacts".into());
    // A relative path with a directory only works from here: make it absolute.
    let program = if program.components().count() > 1 && program.is_relative() {
        std::env::current_dir()?.join(program)
    } else {
        program
    };
    let mut script = Vec::new();
    completer.write_registration(
        VAR,
        "artifacts",
        "artifacts",
        &program.to_string_lossy(),
        &mut script,
    )?;
    Ok(script)
}

/// The command line being completed, parsed as far as it goes: the words
/// after `--` in this process's arguments.
fn words() -> Option<Cli> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let start = args.iter().position(|a| a == "--")? + 1;
    let matches = crate::args::command()
        .ignore_errors(true)
        .try_get_matches_from(&args[start..])
        .ok()?;
    Cli::from_arg_matches(&matches).ok()
}

/// The project of the command line being completed, read-only.
fn project() -> Option<(Context, Option<Cli>)> {
    let cli = words();
    let global = match &cli {
        Some(cli) => cli.global.clone(),
        None => GlobalArgs::from_arg_matches(
            &crate::args::command()
                .ignore_errors(true)
                .try_get_matches_from(["artifacts"])
                .ok()?,
        )
        .ok()?,
    };
    // No targets: a wrong `--target` on the line must not hide the rest.
    let global = GlobalArgs {
        targets: Vec::new(),
        ..global
    };
    let ctx = Context::load(&global).ok()?;
    Some((ctx, cli))
}

/// Declared artifact names, each with its description.
pub fn artifact_names() -> Vec<CompletionCandidate> {
    let Some((ctx, _)) = project() else {
        return Vec::new();
    };
    let mut seen = std::collections::BTreeMap::new();
    for target in &ctx.model.targets {
        for (name, artifact) in &target.artifacts {
            seen.entry(name.clone())
                .or_insert_with(|| artifact.description.clone());
        }
    }
    seen.into_iter()
        .map(|(name, about)| CompletionCandidate::new(name).help(about.map(Into::into)))
        .collect()
}

/// Declared targets as `kind/name`, and bare names that are unique.
pub fn target_names() -> Vec<CompletionCandidate> {
    let Some((ctx, _)) = project() else {
        return Vec::new();
    };
    let ids: Vec<_> = ctx.model.targets.iter().map(|t| &t.id).collect();
    let mut out: Vec<CompletionCandidate> = ids
        .iter()
        .map(|id| CompletionCandidate::new(id.reference()))
        .collect();
    for id in &ids {
        if ids.iter().filter(|other| other.name == id.name).count() == 1 {
            out.push(CompletionCandidate::new(id.name.clone()));
        }
    }
    out
}

/// The backends the project can use.
pub fn backend_names() -> Vec<CompletionCandidate> {
    let Some((ctx, _)) = project() else {
        return Vec::new();
    };
    ctx.registry
        .names()
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

/// The declared files of the artifact on the command line (`show ARTIFACT
/// --file …`), else of every artifact.
pub fn file_names() -> Vec<CompletionCandidate> {
    let Some((ctx, cli)) = project() else {
        return Vec::new();
    };
    let artifact = match cli.and_then(|c| c.command) {
        Some(Command::Show(args)) => Some(args.artifact),
        _ => None,
    };
    let mut names = std::collections::BTreeSet::new();
    for target in &ctx.model.targets {
        for (name, declared) in &target.artifacts {
            if artifact.as_ref().is_none_or(|a| a == name) {
                names.extend(declared.files.keys().cloned());
            }
        }
    }
    names.into_iter().map(CompletionCandidate::new).collect()
}
