//! Running backend scripts per the contract.
//!
//! | variable | check | serialize | deserialize |
//! |---|---|---|---|
//! | `artifact`, `artifact_context`, `targets`, `inputs`, `LOG_LEVEL` | ✓ | ✓ | ✓ |
//! | `out` | | ✓ (read) | ✓ (write) |
//!
//! `$targets` is a JSON file `{context, targets:[{name, type, config}]}`;
//! `$inputs` a directory with one JSON file per declared file, named exactly as
//! the file: `{path, owner, group, mode, secret}`. For backends written against
//! upstream's older guide we also set `$machine`/`$username`/`$environment` and
//! `$config` (that target's config as a JSON file) outside the shared context.
//!
//! Scripts are executed directly (shebang honoured), with the project root as
//! working directory, our environment minus prompt answers
//! (`ARTIFACTS_PROMPT_*`), and `ARTIFACTS` set to this binary so scripts can
//! call `$ARTIFACTS age …`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use artifacts_model::{Context, TargetKind};
use serde_json::json;

use crate::backend::{Backend, Script, Scripts};
use crate::plan::Unit;
use artifacts_os::process::{Output, ProcessBuilder, ProcessError, describe_status};
use artifacts_os::scratch::{Scratch, write_private};

/// Settings every script run shares.
#[derive(Debug, Clone)]
pub struct ScriptEnv {
    /// The project root: scripts' working directory.
    pub root: PathBuf,
    /// `$LOG_LEVEL`.
    pub log_level: String,
    /// Time limit per script.
    pub timeout: Option<Duration>,
    /// The `artifacts` binary, exported as `$ARTIFACTS` and running shipped backends.
    pub self_exe: Option<PathBuf>,
    /// More variables for every script (e.g. `ARTIFACTS_IDENTITY` from `--identity`).
    pub extra_env: Vec<(String, std::ffi::OsString)>,
    /// Our `ARTIFACTS_PROMPT_*` variables, removed from every script's environment
    /// (see [`prompt_variables`]; read once, not per script).
    pub prompt_variables: Vec<std::ffi::OsString>,
}

/// The names of our `ARTIFACTS_PROMPT_*` variables.
pub fn prompt_variables() -> Vec<std::ffi::OsString> {
    std::env::vars_os()
        .map(|(key, _)| key)
        .filter(|key| key.to_string_lossy().starts_with("ARTIFACTS_PROMPT_"))
        .collect()
}

/// Which script to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptKind {
    /// `check`
    Check,
    /// `serialize`
    Serialize,
    /// `deserialize`
    Deserialize,
    /// `list`
    List,
    /// `remove`
    Remove,
    /// `writable`: shipped backends only, asked before generating.
    Writable,
}

impl ScriptKind {
    /// The script's key in `backend.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScriptKind::Check => "check",
            ScriptKind::Serialize => "serialize",
            ScriptKind::Deserialize => "deserialize",
            ScriptKind::List => "list",
            ScriptKind::Remove => "remove",
            ScriptKind::Writable => "writable",
        }
    }
}

/// A backend script failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScriptError {
    /// The backend's section has no such script.
    #[error("backend `{backend}` has no {script} script for context {context}")]
    Missing {
        /// Backend name.
        backend: String,
        /// Which script.
        script: &'static str,
        /// The context.
        context: Context,
    },
    /// Preparing `$targets`/`$inputs` failed.
    #[error("failed to prepare the {script} script's inputs")]
    Prepare {
        /// Which script.
        script: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The process could not start or timed out.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The script exited in a way that means failure.
    #[error("{script} script `{command}` failed ({status}){}", stderr_suffix(.stderr))]
    Failed {
        /// Which script.
        script: &'static str,
        /// The command line.
        command: String,
        /// How it ended.
        status: String,
        /// Its stderr.
        stderr: String,
    },
}

impl ScriptError {
    /// Whether the script may have stopped half-way (killed by a signal or
    /// at its timeout). One that never ran, or exited with a failure code,
    /// kept the previously stored version, as the backend contract asks.
    pub fn may_be_half_done(&self) -> bool {
        match self {
            ScriptError::Missing { .. } | ScriptError::Prepare { .. } => false,
            ScriptError::Process(error) => !matches!(error, ProcessError::Spawn { .. }),
            // `describe_status` words a normal exit this way.
            ScriptError::Failed { status, .. } => !status.starts_with("exit status"),
        }
    }
}

/// Formats a child's stderr for the end of an error message.
pub fn stderr_suffix(stderr: &str) -> String {
    let trimmed = stderr.trim_end();
    if trimmed.is_empty() {
        String::new()
    } else {
        let indented: Vec<String> = trimmed.lines().map(|l| format!("    {l}")).collect();
        format!("; its stderr:\n{}", indented.join("\n"))
    }
}

/// What `check` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Exit 0: stored and current as far as the backend knows.
    Stored,
    /// Exit 1: needs generation.
    NeedsGeneration,
    /// Exit 3 (our addition): stored, but encrypted to another recipient set;
    /// `artifacts rekey` re-encrypts it without regenerating.
    RecipientsChanged,
}

/// Scratch space for one script run: `$targets`, `$inputs`, maybe `$config`.
struct Prepared {
    scratch: Scratch,
    targets: PathBuf,
    inputs: PathBuf,
    config: Option<PathBuf>,
}

/// What a script runs for: an artifact (check, serialize, deserialize,
/// remove) or only a context and its targets (list).
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    /// `$artifact`, when there is one.
    pub artifact: Option<&'a str>,
    /// `$artifact_context`.
    pub context: Context,
    /// The targets in `$targets`.
    pub targets: &'a [&'a artifacts_model::Target],
    /// The declared files for `$inputs` (none for orphans and `list`).
    pub files: Option<&'a indexmap::IndexMap<String, artifacts_model::FileSpec>>,
}

impl<'a> Scope<'a> {
    /// The scope of a unit.
    pub fn of(unit: &'a Unit<'a>) -> Scope<'a> {
        Scope {
            artifact: Some(unit.name()),
            context: unit.context,
            targets: &unit.targets,
            files: Some(&unit.artifact.files),
        }
    }

    /// The target whose identity scripts get outside the shared context.
    fn single_target(&self) -> Option<&'a artifacts_model::Target> {
        (self.context != Context::Shared).then(|| self.targets[0])
    }
}

fn prepare(scope: &Scope<'_>, backend: &Backend) -> std::io::Result<Prepared> {
    let scratch = Scratch::new("script")?;
    let targets = scratch.path().join("targets.json");
    let config_of = |target: &artifacts_model::Target| {
        backend
            .config_keys
            .iter()
            .find_map(|key| target.config.get(key))
            .cloned()
            .unwrap_or_else(|| json!({}))
    };
    let document = json!({
        "context": scope.context.as_str(),
        "targets": scope.targets.iter().map(|t| json!({
            "name": t.id.name,
            "type": t.id.kind.as_str(),
            "config": config_of(t),
        })).collect::<Vec<_>>(),
    });
    write_private(
        &targets,
        &serde_json::to_vec_pretty(&document).expect("json"),
    )?;
    let inputs = scratch.subdir("inputs")?;
    for (name, file) in scope.files.into_iter().flatten() {
        let spec = serde_json::to_vec_pretty(file).expect("json");
        write_private(&inputs.join(name), &spec)?;
    }
    let config = match scope.single_target() {
        None => None,
        Some(target) => {
            let path = scratch.path().join("config.json");
            write_private(
                &path,
                &serde_json::to_vec_pretty(&config_of(target)).expect("json"),
            )?;
            Some(path)
        }
    };
    Ok(Prepared {
        scratch,
        targets,
        inputs,
        config,
    })
}

/// Builds the command for a script with the contract's environment.
fn command(
    scope: &Scope<'_>,
    script: &Script,
    env: &ScriptEnv,
    prepared: &Prepared,
    out: Option<&Path>,
) -> ProcessBuilder {
    let mut builder = match script {
        Script::File(path) => ProcessBuilder::new(path),
        Script::Shipped { backend, script } => {
            let exe = env
                .self_exe
                .clone()
                .unwrap_or_else(|| PathBuf::from("artifacts"));
            let mut builder = ProcessBuilder::new(exe);
            builder.args(["__backend", backend, script]);
            builder
        }
    };
    for (key, value) in &env.extra_env {
        builder.env(key, value);
    }
    builder
        .cwd(&env.root)
        .timeout(env.timeout)
        .env("artifact_context", scope.context.as_str())
        .env("targets", &prepared.targets)
        .env("inputs", &prepared.inputs)
        .env("LOG_LEVEL", &env.log_level);
    match scope.artifact {
        Some(artifact) => builder.env("artifact", artifact),
        None => builder.env_remove("artifact"),
    };
    match out {
        Some(out) => builder.env("out", out),
        None => builder.env_remove("out"),
    };
    let single = scope.single_target();
    if let (Some(config), Some(target)) = (&prepared.config, single) {
        builder
            .env("config", config)
            .env(target.id.kind.identity_variable(), &target.id.name);
    }
    if let Some(exe) = &env.self_exe {
        builder.env("ARTIFACTS", exe);
    }
    // Prompt answers may sit in our environment; no script needs them.
    for key in &env.prompt_variables {
        builder.env_remove(key);
    }
    for kind in [TargetKind::Nixos, TargetKind::Home, TargetKind::Tanka] {
        if single.is_none_or(|t| t.id.kind != kind) {
            builder.env_remove(kind.identity_variable());
        }
    }
    builder
}

/// The script of `kind`, or an error when the section has none.
fn script_of<'s>(
    unit: &Unit<'_>,
    scripts: &'s Scripts,
    kind: ScriptKind,
) -> Result<&'s Script, ScriptError> {
    match kind {
        ScriptKind::Check => Ok(&scripts.check),
        ScriptKind::Serialize => Ok(&scripts.serialize),
        ScriptKind::Deserialize => scripts.deserialize.as_ref().ok_or(ScriptError::Missing {
            backend: unit.backend.name.clone(),
            script: "deserialize",
            context: unit.context,
        }),
        ScriptKind::List | ScriptKind::Remove | ScriptKind::Writable => {
            unreachable!("list, remove and writable run through their own functions")
        }
    }
}

fn run(
    scope: &Scope<'_>,
    backend: &Backend,
    script: &Script,
    kind: ScriptKind,
    env: &ScriptEnv,
    out: Option<&Path>,
) -> Result<Output, ScriptError> {
    let prepared = prepare(scope, backend).map_err(|source| ScriptError::Prepare {
        script: kind.as_str(),
        source,
    })?;
    let mut builder = command(scope, script, env, &prepared, out);
    // Only `list` has something to say on stdout (upstream's check prints EXISTS
    // there, which nobody reads); otherwise only stderr is shown.
    if kind != ScriptKind::List {
        builder.stdout(artifacts_os::process::Stdout::Discard);
    }
    let output = builder.run().map_err(ProcessError::redacted);
    drop(prepared.scratch);
    // `deserialize` just wrote secrets there (serialize's were registered
    // when generated): its stderr, or a later script's, may print them.
    if let Some(out) = out {
        artifacts_os::redact::register_dir(out, crate::generator::MAX_FILE_SIZE, &|name| {
            scope
                .files
                .and_then(|files| files.get(name))
                .is_some_and(|f| !f.secret)
        });
    }
    let mut output = output?;
    output.stderr = artifacts_os::redact::redact(&output.stderr);
    Ok(output)
}

/// Runs `check`: exit 0 stored, 1 needs generation, 3 recipients changed,
/// anything else (a signal, a timeout) an error.
pub fn check(
    unit: &Unit<'_>,
    backend: &Backend,
    scripts: &Scripts,
    env: &ScriptEnv,
) -> Result<CheckOutcome, ScriptError> {
    let output = run(
        &Scope::of(unit),
        backend,
        &scripts.check,
        ScriptKind::Check,
        env,
        None,
    )?;
    match output.status.code() {
        Some(0) => Ok(CheckOutcome::Stored),
        Some(1) => Ok(CheckOutcome::NeedsGeneration),
        Some(3) => Ok(CheckOutcome::RecipientsChanged),
        _ => Err(ScriptError::Failed {
            script: "check",
            command: scripts.check.to_string(),
            status: describe_status(&output.status),
            stderr: output.stderr,
        }),
    }
}

/// Runs `serialize` with `$out` holding the generated files, or `deserialize`
/// with `$out` an empty directory to fill.
pub fn store(
    unit: &Unit<'_>,
    backend: &Backend,
    scripts: &Scripts,
    kind: ScriptKind,
    env: &ScriptEnv,
    out: &Path,
) -> Result<(), ScriptError> {
    let script = script_of(unit, scripts, kind)?;
    let output = run(&Scope::of(unit), backend, script, kind, env, Some(out))?;
    succeeded(output, kind, script).map(drop)
}

/// The output of a script that exited 0, else the failure with its stderr.
fn succeeded(output: Output, kind: ScriptKind, script: &Script) -> Result<Output, ScriptError> {
    if output.status.success() {
        Ok(output)
    } else {
        Err(ScriptError::Failed {
            script: kind.as_str(),
            command: script.to_string(),
            status: describe_status(&output.status),
            stderr: output.stderr,
        })
    }
}

/// Runs `list`: the names of the artifacts stored for the scope's targets, one a line.
pub fn list(
    scope: &Scope<'_>,
    backend: &Backend,
    script: &Script,
    env: &ScriptEnv,
) -> Result<Vec<String>, ScriptError> {
    let output = run(scope, backend, script, ScriptKind::List, env, None)?;
    let output = succeeded(output, ScriptKind::List, script)?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Runs `remove` for the scope's artifact.
pub fn remove(
    scope: &Scope<'_>,
    backend: &Backend,
    script: &Script,
    env: &ScriptEnv,
) -> Result<(), ScriptError> {
    let output = run(scope, backend, script, ScriptKind::Remove, env, None)?;
    succeeded(output, ScriptKind::Remove, script).map(drop)
}

/// Asks a shipped backend whether the unit's `serialize` can write with the
/// identities at hand (`writable`): `None` yes, else why not. Backends from
/// files cannot be asked (the contract has no such script): `None`.
pub fn writable(
    unit: &Unit<'_>,
    backend: &Backend,
    scripts: &Scripts,
    env: &ScriptEnv,
) -> Result<Option<String>, ScriptError> {
    let Script::Shipped { backend: name, .. } = &scripts.serialize else {
        return Ok(None);
    };
    let script = Script::Shipped {
        backend: name,
        script: "writable",
    };
    let output = run(
        &Scope::of(unit),
        backend,
        &script,
        ScriptKind::Writable,
        env,
        None,
    )?;
    Ok(match output.status.code() {
        Some(0) => None,
        _ => Some(match output.stderr.trim() {
            "" => format!("`{script}` failed ({})", describe_status(&output.status)),
            stderr => stderr.to_owned(),
        }),
    })
}
