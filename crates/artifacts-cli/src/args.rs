//! Raw command-line flags: syntax only. Anything touching files, the
//! environment or `$PATH` is resolved later, in [`crate::context`], so that
//! `--help` works with a broken manifest.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum, ValueHint};
use clap_complete::engine::ArgValueCandidates;

use crate::shell::{artifact_names, backend_names, file_names, target_names};

/// After the options of `artifacts --help`, before the examples.
pub const AFTER_HELP: &str = "\
Exit codes:
  0  success (check: everything stored and current; untracked ones are noted)
  1  something is missing, stale or stored in another backend than declared
     (check; untracked too with --strict), or an operation failed
  2  usage error, declaration error, or a check that could not run

Prompt answers never go on the command line: use --prompts-file FILE (JSON or
YAML map artifact -> prompt -> value, `-` for stdin) or the variables
ARTIFACTS_PROMPT_<ARTIFACT>_<PROMPT>; in a terminal you are asked.";

/// The last lines of `artifacts --help`.
pub const HELP_FOOTER: &str = "\
`artifacts COMMAND --help` shows a command's options and examples;
`artifacts man COMMAND` its manual page.";

/// The command-line definition: flags, per-command examples, and each
/// command's unused global options hidden (see [`crate::help`]).
pub fn command() -> clap::Command {
    crate::help::decorate(Cli::command())
}

/// Declare secrets once; generate, store and check them through pluggable backends.
#[derive(Debug, Parser)]
#[command(name = "artifacts", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten, next_help_heading = "Global options")]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Run as if started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub directory: Option<PathBuf>,
    /// Read declarations from FILE (.toml, .json, .yaml).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "flake", value_hint = ValueHint::FilePath)]
    pub manifest: Option<PathBuf>,
    /// Read declarations from the flake in DIR.
    #[arg(long, global = true, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub flake: Option<PathBuf>,
    /// Read backends from FILE (default: $NIXOS_ARTIFACTS_BACKEND_CONFIG, then backend.toml beside the manifest).
    #[arg(long, global = true, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub backends: Option<PathBuf>,
    /// Only act on target NAME (kind/name or a unique name); repeatable.
    #[arg(long = "target", global = true, value_name = "NAME", add = ArgValueCandidates::new(target_names))]
    pub targets: Vec<String>,
    /// Run up to NUM backend checks or generators at once [default: number of cores].
    #[arg(short = 'j', long, global = true, value_name = "NUM")]
    pub jobs: Option<usize>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Say more (repeat for debug output).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Say only what went wrong.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Set $LOG_LEVEL for scripts and generators and our own log level.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,
    /// Run generators without the bubblewrap sandbox (also ARTIFACTS_SANDBOX=off).
    #[arg(long, global = true)]
    pub no_sandbox: bool,
    /// When to use colors.
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub color: ColorChoice,
    /// Show generators' and backend scripts' stderr without redacting secrets.
    #[arg(long, global = true)]
    pub show_stderr: bool,
    /// Fail instead of waiting when another run holds the project lock.
    #[arg(long, global = true)]
    pub no_wait: bool,
    /// Give shared artifacts whose generators differ per target the generator of TARGET (repeatable).
    #[arg(
        long,
        global = true,
        value_name = "TARGET",
        env = "ARTIFACTS_GENERATOR_FROM",
        value_delimiter = ','
    )]
    pub generator_from: Vec<String>,
    /// Kill any backend script or generator still running after SECS seconds.
    #[arg(long, global = true, value_name = "SECS")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a project: artifacts.toml, an example generator, your identity.
    Init(InitArgs),
    /// List every target and artifact with its backend and status.
    List,
    /// Check that everything is stored and current (read-only; for CI).
    Check(CheckArgs),
    /// Generate what is missing (and, after confirmation, what is stale).
    Generate(GenerateArgs),
    /// Regenerate artifacts even if they are current.
    #[command(visible_alias = "rotate")]
    Regenerate(RegenerateArgs),
    /// Show how an artifact is resolved: backend and why, targets, files, fingerprint.
    Explain(ExplainArgs),
    /// List backends and what they can do.
    Backends,
    /// Move artifacts to another backend: copy, verify, remove the old copy.
    Migrate(MigrateArgs),
    /// Record the current declaration for what is stored, without regenerating.
    Accept(AcceptArgs),
    /// Remove stored artifacts that are no longer declared.
    Gc(GcArgs),
    /// Print the dependency graph (a plain listing, or DOT with --dot).
    Graph(GraphArgs),
    /// Generate and install the files of artifacts stored nowhere (dummy) on one target.
    Activate(ActivateArgs),
    /// Print a stored artifact's file, decrypted through its backend.
    Show(ShowArgs),
    /// Re-encrypt stored artifacts to the current recipients, without regenerating.
    Rekey(RekeyArgs),
    /// Put a value you already have into an artifact (all its files, or some while the others are kept).
    ///
    /// Without --from the value is read from stdin; when stdin is a terminal
    /// it is asked for hidden, twice. The value is recorded in artifacts.lock
    /// as set by hand: `check` does not call it stale when the generator
    /// changes, and `regenerate` asks before replacing it.
    Set(SetArgs),
    /// Edit a stored file of an artifact in $VISUAL or $EDITOR; stored again only if changed.
    ///
    /// The file is decrypted into a private scratch directory (memory-backed
    /// where possible, mode 0600) and removed afterwards, whatever happens.
    /// $VISUAL or $EDITOR (default vi) may hold arguments; it is split like a
    /// shell would, but never run through one.
    Edit(EditArgs),
    /// Import existing agenix (.age) or SOPS files into declared artifacts.
    ///
    /// SOURCE is an age file (agenix), a whole SOPS file, or one value of a
    /// SOPS file as FILE#KEY (KEY as a/b or ["a"]["b"]). --dir DIR imports
    /// DIR/<artifact>/<file>.age (public files may be plain DIR/<artifact>/<file>)
    /// for every declared artifact with files there. Everything is decrypted
    /// with your identities (-i, ARTIFACTS_IDENTITY, the manifest's
    /// identities, SOPS_AGE_KEY_FILE…) and checked against the declaration
    /// before anything is stored.
    Import(ImportArgs),
    /// OpenBao (Vault) access for hosts: policies and AppRoles.
    #[command(subcommand)]
    Openbao(OpenbaoCommand),
    /// Run a shipped backend's script (what backends/<name>/check and friends call).
    #[command(name = "__backend", hide = true)]
    ShippedBackend(ShippedBackendArgs),
    /// Encrypt and decrypt age files (interoperable with `age`).
    #[command(subcommand)]
    Age(crate::tools::age::AgeCommand),
    /// Work with SOPS files (interoperable with `sops`).
    #[command(subcommand)]
    Sops(crate::tools::sops::SopsCommand),
    /// Decrypted secrets and rendered manifests of tanka environments.
    #[command(subcommand)]
    Tanka(crate::tools::tanka::TankaCommand),
    /// ArgoCD config-management-plugin entry points (discover, generate, plugin-yaml).
    #[command(subcommand)]
    Cmp(crate::tools::tanka::CmpCommand),
    /// Print shell completions.
    Completions(CompletionsArgs),
    /// Print a manual page (roff), or write them all with --dir.
    Man(ManArgs),
}

impl Command {
    /// Whether the command reports under `--json`; the others print data
    /// (a decrypted file, a script, a page), never a report.
    pub fn has_json(&self) -> bool {
        !matches!(
            self,
            Command::Age(_)
                | Command::Sops(_)
                | Command::Tanka(_)
                | Command::Cmp(_)
                | Command::Completions(_)
                | Command::Man(_)
                | Command::ShippedBackend(_)
        )
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project directory [default: the current one]; created if missing.
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Only these artifacts.
    #[arg(value_name = "ARTIFACT", add = ArgValueCandidates::new(artifact_names))]
    pub artifacts: Vec<String>,
    /// Report artifacts generated longer ago than DURATION (e.g. 90d) as stale.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_age: Option<std::time::Duration>,
    /// Fail (exit 1) on untracked artifacts too: stored, but not in artifacts.lock.
    #[arg(long)]
    pub strict: bool,
}

/// Parses `90d`, `12h`, `1w 2d`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration such as 90d or 12h ({e})"))
}

/// Identities for reading stored secrets back (dependencies, show, rekey).
#[derive(Debug, Clone, Default, Args)]
pub struct IdentityArgs {
    /// Decrypt with the age or SSH identity in FILE (repeatable; also ARTIFACTS_IDENTITY).
    #[arg(short = 'i', long = "identity", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub identities: Vec<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct PromptArgs {
    /// Read prompt answers from FILE (JSON or YAML: artifact -> prompt -> value; `-` for stdin).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub prompts_file: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Show what would be generated, and change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Do not also regenerate the artifacts that depend on the regenerated ones.
    #[arg(long)]
    pub no_cascade: bool,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Only these artifacts.
    #[arg(value_name = "ARTIFACT", conflicts_with = "all", add = ArgValueCandidates::new(artifact_names))]
    pub artifacts: Vec<String>,
    /// Every artifact (the default when no ARTIFACT is named).
    #[arg(long)]
    pub all: bool,
    /// Also generate what another backend than the declared one stores (a new secret replaces it).
    #[arg(long)]
    pub regenerate_elsewhere: bool,
    #[command(flatten)]
    pub prompts: PromptArgs,
}

#[derive(Debug, Args)]
pub struct RegenerateArgs {
    /// The artifacts to regenerate.
    #[arg(value_name = "ARTIFACT", required_unless_present_any = ["all", "older_than"], add = ArgValueCandidates::new(artifact_names))]
    pub artifacts: Vec<String>,
    /// Every artifact.
    #[arg(long, conflicts_with = "artifacts")]
    pub all: bool,
    /// Only those generated longer ago than DURATION (e.g. 90d, 12h), per artifacts.lock.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Option<std::time::Duration>,
    /// Also regenerate what another backend than the declared one stores.
    #[arg(long)]
    pub regenerate_elsewhere: bool,
    #[command(flatten)]
    pub prompts: PromptArgs,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The artifact.
    #[arg(value_name = "ARTIFACT", add = ArgValueCandidates::new(artifact_names))]
    pub artifact: String,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The artifacts to move.
    #[arg(value_name = "ARTIFACT", required = true, add = ArgValueCandidates::new(artifact_names))]
    pub artifacts: Vec<String>,
    /// The backend to move them to [default: the declared one].
    #[arg(long, value_name = "BACKEND", add = ArgValueCandidates::new(backend_names))]
    pub to: Option<String>,
    /// The backend to move them from [default: the one storing them].
    #[arg(long, value_name = "BACKEND", add = ArgValueCandidates::new(backend_names))]
    pub from: Option<String>,
    /// Show what would move, and change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

#[derive(Debug, Args)]
pub struct AcceptArgs {
    /// Only these artifacts [default: every stale or untracked one].
    #[arg(value_name = "ARTIFACT", add = ArgValueCandidates::new(artifact_names))]
    pub artifacts: Vec<String>,
    /// Show what would be recorded, and change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// List what would be removed, and remove nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Print Graphviz DOT instead of a listing.
    #[arg(long)]
    pub dot: bool,
}

#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// Only these artifacts (the dummy module runs one unit per artifact).
    #[arg(value_name = "ARTIFACT", add = ArgValueCandidates::new(artifact_names))]
    pub artifacts: Vec<String>,
    /// Install under DIR instead of / (for images and tests).
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub root: Option<PathBuf>,
    /// Read prompt answers from FILE (JSON or YAML: artifact -> prompt -> value; `-` for stdin).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub prompts_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum OpenbaoCommand {
    /// Print one policy per target reading exactly its own artifacts (and the shared ones it declares).
    Policies(PoliciesArgs),
}

#[derive(Debug, Args)]
pub struct PoliciesArgs {
    /// Also write each policy and an AppRole of the same name to the server.
    #[arg(long)]
    pub apply: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The artifact.
    #[arg(value_name = "ARTIFACT", add = ArgValueCandidates::new(artifact_names))]
    pub artifact: String,
    /// The file to print (required when the artifact has several).
    #[arg(short, long, value_name = "FILE", add = ArgValueCandidates::new(file_names))]
    pub file: Option<String>,
    /// Print stored version N instead of the current one (backends that keep versions: openbao).
    #[arg(id = "stored_version", long = "version", value_name = "N")]
    pub version: Option<u64>,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// Only these artifacts.
    #[arg(value_name = "ARTIFACT", add = ArgValueCandidates::new(artifact_names))]
    pub artifacts: Vec<String>,
    /// Show what would be re-encrypted, and change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The artifact.
    #[arg(value_name = "ARTIFACT", add = ArgValueCandidates::new(artifact_names))]
    pub artifact: String,
    /// The file to set (repeatable, paired in order with --from) [default: the only file].
    #[arg(short, long = "file", value_name = "FILE", add = ArgValueCandidates::new(file_names))]
    pub files: Vec<String>,
    /// Read the value from PATH (`-` for stdin; one per --file) [default: stdin].
    #[arg(long, value_name = "PATH")]
    pub from: Vec<String>,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// The artifact.
    #[arg(value_name = "ARTIFACT", add = ArgValueCandidates::new(artifact_names))]
    pub artifact: String,
    /// The file to edit (required when the artifact has several).
    #[arg(short, long, value_name = "FILE", add = ArgValueCandidates::new(file_names))]
    pub file: Option<String>,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The artifact to import into.
    #[arg(
        value_name = "ARTIFACT",
        required_unless_present = "dir",
        conflicts_with = "dir",
        add = ArgValueCandidates::new(artifact_names)
    )]
    pub artifact: Option<String>,
    /// The file to import (repeatable, paired in order with --from) [default: the only file].
    #[arg(short, long = "file", value_name = "FILE", add = ArgValueCandidates::new(file_names))]
    pub files: Vec<String>,
    /// Read the file from SOURCE: an age file, a SOPS file, or FILE#KEY for one SOPS value.
    #[arg(long, value_name = "SOURCE", required_unless_present = "dir")]
    pub from: Vec<String>,
    /// Import DIR/<artifact>/<file>.age for every declared artifact with files there.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["files", "from"])]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

#[derive(Debug, Args)]
pub struct ShippedBackendArgs {
    /// The shipped backend.
    #[arg(value_name = "BACKEND")]
    pub backend: String,
    /// `check`, `serialize` or `deserialize`.
    #[arg(value_name = "SCRIPT")]
    pub script: String,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The page: a command (`check`, `sops-decrypt`) or `artifacts.toml` [default: artifacts(1)].
    #[arg(value_name = "PAGE", conflicts_with = "dir")]
    pub page: Option<String>,
    /// Write every page to DIR/man1 and DIR/man5 instead.
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn every_flag_has_a_capitalized_one_line_help() {
        let command = Cli::command();
        let mut commands = vec![&command];
        commands.extend(command.get_subcommands());
        for cmd in commands {
            for arg in cmd.get_arguments() {
                if arg.is_positional() || arg.get_id() == "help" || arg.get_id() == "version" {
                    continue;
                }
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                let first = help.chars().next();
                assert!(
                    first.is_some_and(char::is_uppercase) && !help.contains('\n'),
                    "{} --{:?} needs a capitalized one-line help: {help:?}",
                    cmd.get_name(),
                    arg.get_long()
                );
            }
        }
    }

    #[test]
    fn value_flags_have_value_names() {
        let command = Cli::command();
        for arg in command.get_arguments() {
            if arg.get_action().takes_values()
                && arg.get_long().is_some()
                && arg.get_possible_values().is_empty()
            {
                assert!(
                    arg.get_value_names().is_some(),
                    "--{:?} has no value name",
                    arg.get_long()
                );
            }
        }
    }
}
