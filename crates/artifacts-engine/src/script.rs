//! Running backend scripts per the contract.
//!
//! | variable | check | serialize | deserialize |
//! |---|---|---|---|
//! | `artifact`, `artifact_context`, `targets`, `inputs`, `LOG_LEVEL` | ✓ | ✓ | ✓ |
//! | `out` | | ✓ (read) | ✓ (write) |
//! | `artifact_fingerprint`, `artifact_generated_at` | | ✓ | |
//!
//! `serialize` gets the generation's stamp: the `fingerprint` and
//! `generated_at` the engine records for it in `artifacts.lock` (unset when
//! the lock records none, e.g. an adopted artifact has no generation time).
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
//!
//! A backend running in this process ([`Script::InProcess`]) gets the same
//! inputs as a typed [`Call`] instead, and its answers and failures are
//! treated as a script's exit codes and stderr.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use artifacts_model::{Context, TargetKind};
use serde_json::json;

use crate::in_process::{
    Asked, Call, CallFile, CallTarget, Checked, KeySources, Stamp, StoreBackend, StoreError,
};
use crate::plan::{Targets, Unit};
use crate::registry::{Backend, Script, Scripts};
use artifacts_os::process::{Output, ProcessBuilder, ProcessError, describe_status};
use artifacts_os::scratch::{Scratch, write_private};

/// Settings every script run shares.
#[derive(Debug, Clone)]
pub(crate) struct ScriptEnv {
    /// The project root: scripts' working directory.
    pub root: PathBuf,
    /// `$LOG_LEVEL`.
    pub log_level: String,
    /// Time limit per script.
    pub timeout: Option<Duration>,
    /// The `artifacts` binary, exported as `$ARTIFACTS`.
    pub self_exe: Option<PathBuf>,
    /// More variables for every script (e.g. `ARTIFACTS_IDENTITY` from
    /// `--identity`); in-process backends read identities with them.
    pub extra_env: Vec<(String, std::ffi::OsString)>,
    /// Our `ARTIFACTS_PROMPT_*` variables, removed from every script's environment
    /// (see [`prompt_variables`]; read once, not per script).
    pub prompt_variables: Vec<std::ffi::OsString>,
    /// Where script runs prepare their inputs (one subdirectory each).
    pub scratch: RunScratch,
    /// [`ScriptEnv::root`] canonicalized, once per run (not once per
    /// in-process call: a fleet's `check` makes thousands).
    pub canonical_root: std::sync::OnceLock<PathBuf>,
}

impl ScriptEnv {
    /// The project root's physical path (see [`ScriptEnv::canonical_root`]);
    /// a failure is not remembered.
    fn canonical_root(&self) -> std::io::Result<PathBuf> {
        if let Some(root) = self.canonical_root.get() {
            return Ok(root.clone());
        }
        let root = self.root.canonicalize()?;
        Ok(self.canonical_root.get_or_init(|| root).clone())
    }
}

/// One [`Scratch`] directory shared by the script runs of a batch (a
/// `check` of thousands of pairs), created on first use: the scratch
/// directory's lock and marker are then taken and written once, not once
/// per script (see `artifacts_os::scratch`). It lives while a script uses
/// it or while a [`RunScratch::hold`] guard lives, so nothing of it is left
/// while, say, a generator runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunScratch(Arc<Mutex<Shared>>);

#[derive(Debug, Default)]
struct Shared {
    current: Weak<Scratch>,
    /// Kept alive while `holds` is not zero.
    held: Option<Arc<Scratch>>,
    holds: usize,
}

/// Keeps the [`RunScratch`] directory of a batch for its scripts; released on drop.
pub(crate) struct Hold(RunScratch);

impl Drop for Hold {
    fn drop(&mut self) {
        let mut shared = self.0.lock();
        shared.holds -= 1;
        if shared.holds == 0 {
            shared.held = None;
        }
    }
}

impl RunScratch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps the directory the scripts of a batch share until the guard drops.
    pub(crate) fn hold(&self) -> Hold {
        self.lock().holds += 1;
        Hold(self.clone())
    }

    /// A fresh `0700` directory for one script run, inside the shared one.
    fn subdir(&self) -> std::io::Result<(Arc<Scratch>, tempfile::TempDir)> {
        let run = {
            let mut shared = self.lock();
            let run = match shared.current.upgrade() {
                Some(run) => run,
                None => {
                    let run = Arc::new(Scratch::new("script")?);
                    shared.current = Arc::downgrade(&run);
                    run
                }
            };
            if shared.holds > 0 {
                shared.held = Some(run.clone());
            }
            run
        };
        let dir = tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(run.path())?;
        Ok((run, dir))
    }
}

/// The names of our `ARTIFACTS_PROMPT_*` variables.
pub(crate) fn prompt_variables() -> Vec<std::ffi::OsString> {
    std::env::vars_os()
        .map(|(key, _)| key)
        .filter(|key| key.to_string_lossy().starts_with("ARTIFACTS_PROMPT_"))
        .collect()
}

/// Which script to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScriptKind {
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
    /// `writable`: in-process backends only, asked before generating.
    Writable,
    /// `check-all`: every artifact of one target at once.
    CheckAll,
}

impl ScriptKind {
    /// The script's key in `backend.toml`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ScriptKind::Check => "check",
            ScriptKind::Serialize => "serialize",
            ScriptKind::Deserialize => "deserialize",
            ScriptKind::List => "list",
            ScriptKind::Remove => "remove",
            ScriptKind::Writable => "writable",
            ScriptKind::CheckAll => "check-all",
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
    /// An in-process backend failed.
    #[error("{script} of backend `{backend}` failed: {message}")]
    InProcess {
        /// Which script.
        script: &'static str,
        /// Backend name.
        backend: String,
        /// Its error (redacted), with the suggested fix when there is one.
        message: String,
    },
    /// `check-all` exited 0 but its answer breaks the contract.
    #[error("check-all script `{command}` answered wrongly: {reason}")]
    Answer {
        /// The command line.
        command: String,
        /// What is wrong, by line number (the script's output is not repeated).
        reason: String,
    },
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
    pub(crate) fn may_be_half_done(&self) -> bool {
        match self {
            // In-process backends write all or nothing.
            ScriptError::Missing { .. }
            | ScriptError::Prepare { .. }
            | ScriptError::InProcess { .. }
            | ScriptError::Answer { .. } => false,
            ScriptError::Process(error) => !matches!(error, ProcessError::Spawn { .. }),
            // `describe_status` words a normal exit this way.
            ScriptError::Failed { status, .. } => !status.starts_with("exit status"),
        }
    }
}

/// Formats a child's stderr for the end of an error message.
pub(crate) fn stderr_suffix(stderr: &str) -> String {
    let trimmed = stderr.trim_end();
    if trimmed.is_empty() {
        String::new()
    } else {
        let indented: Vec<String> = trimmed.lines().map(|l| format!("    {l}")).collect();
        format!("; its stderr:\n{}", indented.join("\n"))
    }
}

/// serialize's `$artifact_fingerprint`: the lock entry's `fingerprint`.
pub const STAMP_FINGERPRINT: &str = "artifact_fingerprint";
/// serialize's `$artifact_generated_at`: the lock entry's `generated_at`.
pub const STAMP_GENERATED_AT: &str = "artifact_generated_at";

/// What `check` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CheckOutcome {
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
    /// Removed on drop, before the run's directory it is in.
    _dir: tempfile::TempDir,
    _run: Arc<Scratch>,
    targets: PathBuf,
    inputs: PathBuf,
    config: Option<PathBuf>,
}

/// What a script runs for: an artifact (check, serialize, deserialize,
/// remove) or only a context and its targets (list).
#[derive(Clone, Copy)]
pub(crate) struct Scope<'a> {
    /// `$artifact`, when there is one.
    pub artifact: Option<&'a str>,
    /// The targets in `$targets`; they give `$artifact_context`.
    pub targets: &'a Targets<&'a artifacts_model::Target>,
    /// The declared files for `$inputs` (none for orphans and `list`).
    pub files: Option<&'a indexmap::IndexMap<String, artifacts_model::FileSpec>>,
}

impl<'a> Scope<'a> {
    /// The scope of a unit.
    pub(crate) fn of(unit: &'a Unit<'a>) -> Scope<'a> {
        Scope {
            artifact: Some(unit.name()),
            targets: &unit.targets,
            files: Some(&unit.artifact.files),
        }
    }

    /// `$artifact_context`.
    fn context(&self) -> Context {
        self.targets.context()
    }

    /// The target whose identity scripts get outside the shared context.
    fn single_target(&self) -> Option<&'a artifacts_model::Target> {
        self.targets.one().copied()
    }
}

/// `artifacts.config.<key>` of a target for the backend's first present key, else `{}`.
fn config_of(backend: &Backend, target: &artifacts_model::Target) -> serde_json::Value {
    backend
        .config_keys
        .iter()
        .find_map(|key| target.config.get(key))
        .cloned()
        .unwrap_or_else(|| json!({}))
}

fn prepare(scope: &Scope<'_>, backend: &Backend, env: &ScriptEnv) -> std::io::Result<Prepared> {
    let (run, dir) = env.scratch.subdir()?;
    let targets = dir.path().join("targets.json");
    let config_of = |target: &artifacts_model::Target| config_of(backend, target);
    let document = json!({
        "context": scope.context().as_str(),
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
    let inputs = dir.path().join("inputs");
    std::fs::DirBuilder::new().mode(0o700).create(&inputs)?;
    for (name, file) in scope.files.into_iter().flatten() {
        let spec = serde_json::to_vec_pretty(file).expect("json");
        write_private(&inputs.join(name), &spec)?;
    }
    let config = match scope.single_target() {
        None => None,
        Some(target) => {
            let path = dir.path().join("config.json");
            write_private(
                &path,
                &serde_json::to_vec_pretty(&config_of(target)).expect("json"),
            )?;
            Some(path)
        }
    };
    Ok(Prepared {
        _dir: dir,
        _run: run,
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
        // Routed to `in_process` before anything is prepared; running the
        // equivalent command keeps the contract should one get here.
        Script::InProcess { backend, script } => {
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
        .env("artifact_context", scope.context().as_str())
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
            context: unit.context(),
        }),
        ScriptKind::List | ScriptKind::Remove | ScriptKind::Writable | ScriptKind::CheckAll => {
            unreachable!("list, remove, writable and check-all run through their own functions")
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
    run_with(scope, backend, script, kind, env, out, None, None)
}

/// [`run`], with `$artifacts` (check-all's list of artifacts) and
/// serialize's `$artifact_fingerprint`/`$artifact_generated_at` when given.
#[allow(clippy::too_many_arguments)]
fn run_with(
    scope: &Scope<'_>,
    backend: &Backend,
    script: &Script,
    kind: ScriptKind,
    env: &ScriptEnv,
    out: Option<&Path>,
    artifacts: Option<&serde_json::Value>,
    stamp: Option<&Stamp>,
) -> Result<Output, ScriptError> {
    let failed = |source| ScriptError::Prepare {
        script: kind.as_str(),
        source,
    };
    let prepared = prepare(scope, backend, env).map_err(failed)?;
    let mut builder = command(scope, script, env, &prepared, out);
    if let Some(artifacts) = artifacts {
        let path = prepared._dir.path().join("artifacts.json");
        write_private(&path, &serde_json::to_vec_pretty(artifacts).expect("json"))
            .map_err(failed)?;
        builder.env("artifacts", path);
    }
    // Ours may be set (a script calling `artifacts`): only serialize's count.
    let fingerprint = stamp.map(|stamp| stamp.fingerprint.as_str());
    let generated_at = stamp.and_then(|stamp| stamp.generated_at.as_deref());
    for (key, value) in [
        (STAMP_FINGERPRINT, fingerprint),
        (STAMP_GENERATED_AT, generated_at),
    ] {
        match value {
            Some(value) => builder.env(key, value),
            None => builder.env_remove(key),
        };
    }
    // Only `list` and `check-all` have something to say on stdout (upstream's
    // check prints EXISTS there, which nobody reads); otherwise only stderr is shown.
    if kind != ScriptKind::List && kind != ScriptKind::CheckAll {
        builder.stdout(artifacts_os::process::Stdout::Discard);
    }
    let output = builder.run().map_err(ProcessError::redacted);
    drop(prepared);
    // Its stderr, or a later script's, may print what `deserialize` wrote.
    if let Some(out) = out {
        register_secrets(scope, out);
    }
    let mut output = output?;
    output.stderr = artifacts_os::redact::redact(&output.stderr);
    // With -v, what a script said goes to the log; a failure shows it in
    // its error instead (check's 1 and 3 are answers, not failures).
    let answered = match output.status.code() {
        Some(0) => true,
        Some(1 | 3) => kind == ScriptKind::Check,
        _ => false,
    };
    if answered && !output.stderr.trim().is_empty() {
        let what = match (scope.artifact, scope.targets.one()) {
            (Some(artifact), Some(target)) => format!("{} {artifact}", target.id.reference()),
            (Some(artifact), None) => format!("shared {artifact}"),
            (None, _) => scope.context().as_str().to_owned(),
        };
        tracing::info!(
            "{what}: {} script of backend `{}` said:\n{}",
            kind.as_str(),
            backend.name,
            output.stderr.trim_end()
        );
    }
    Ok(output)
}

/// Runs `check`: exit 0 stored, 1 needs generation, 3 recipients changed,
/// anything else (a signal, a timeout) an error.
pub(crate) fn check(
    unit: &Unit<'_>,
    backend: &Backend,
    scripts: &Scripts,
    env: &ScriptEnv,
) -> Result<CheckOutcome, ScriptError> {
    check_stamped(unit, backend, scripts, env).map(|(outcome, _)| outcome)
}

/// [`check`], with the stored generation's stamp when the backend reports
/// one ([`Checked::StoredWith`]; scripts never do).
pub(crate) fn check_stamped(
    unit: &Unit<'_>,
    backend: &Backend,
    scripts: &Scripts,
    env: &ScriptEnv,
) -> Result<(CheckOutcome, Option<Stamp>), ScriptError> {
    if let Some((store, call)) = in_process(&Scope::of(unit), backend, &scripts.check, env)? {
        return stamped(store.check(&call), backend);
    }
    let output = run(
        &Scope::of(unit),
        backend,
        &scripts.check,
        ScriptKind::Check,
        env,
        None,
    )?;
    match output.status.code() {
        Some(0) => Ok((CheckOutcome::Stored, None)),
        Some(1) => Ok((CheckOutcome::NeedsGeneration, None)),
        Some(3) => Ok((CheckOutcome::RecipientsChanged, None)),
        _ => Err(ScriptError::Failed {
            script: "check",
            command: scripts.check.to_string(),
            status: describe_status(&output.status),
            stderr: output.stderr,
        }),
    }
}

/// A check's outcome, with the stored generation's stamp when the backend reports one.
pub(crate) type Stamped = (CheckOutcome, Option<Stamp>);

/// `check` of `units` (of one target and one in-process backend) in one
/// [`StoreBackend::check_target`]: one answer per unit, in their order, as
/// [`check_stamped`] gives it. The call is built once, for the first unit;
/// the others add only their artifact and files.
pub(crate) fn check_in_process(
    units: &[&Unit<'_>],
    backend: &Backend,
    scripts: &Scripts,
    env: &ScriptEnv,
) -> Vec<Result<Stamped, ScriptError>> {
    let Some(first) = units.first() else {
        return Vec::new();
    };
    let (store, call) = match in_process(&Scope::of(first), backend, &scripts.check, env) {
        Ok(Some(found)) => found,
        // Not in-process after all, or no implementation or root: each unit
        // as alone.
        _ => {
            return units
                .iter()
                .map(|unit| check_stamped(unit, backend, scripts, env))
                .collect();
        }
    };
    let asked: Vec<Asked> = units
        .iter()
        .map(|unit| Asked {
            artifact: unit.name().to_owned(),
            files: call_files(Some(&unit.artifact.files)),
        })
        .collect();
    let mut checked = store.check_target(&call, &asked).into_iter();
    units
        .iter()
        .map(|_| {
            let answer = checked.next().unwrap_or_else(|| {
                Err(StoreError::new(
                    "the backend gave fewer answers than it was asked (this is a bug in artifacts)",
                ))
            });
            stamped(answer, backend)
        })
        .collect()
}

/// An in-process `check`'s answer as a script's exit code would say it.
fn stamped(answer: Result<Checked, StoreError>, backend: &Backend) -> Result<Stamped, ScriptError> {
    match answer {
        Ok(Checked::Stored) => Ok((CheckOutcome::Stored, None)),
        Ok(Checked::StoredWith { stamp }) => Ok((CheckOutcome::Stored, Some(stamp))),
        Ok(Checked::Missing) => Ok((CheckOutcome::NeedsGeneration, None)),
        Ok(Checked::RecipientsChanged { .. }) => Ok((CheckOutcome::RecipientsChanged, None)),
        Err(error) => Err(in_process_failed(ScriptKind::Check, backend, &error)),
    }
}

/// Runs `check-all` once for `units`, every one of the same target and
/// backend: one answer per unit, in their order. The answer is one JSON
/// object a line, `{"artifact": NAME, "status": "stored" | "missing" |
/// "recipients-changed"}`, exactly one for each artifact asked about (listed
/// in `$artifacts`), and exit 0; anything else is an error for all of them,
/// never taken for "missing".
pub(crate) fn check_all(
    units: &[&Unit<'_>],
    backend: &Backend,
    script: &Script,
    env: &ScriptEnv,
) -> Result<Vec<CheckOutcome>, ScriptError> {
    let Some(first) = units.first() else {
        return Ok(Vec::new());
    };
    let mut asked = serde_json::Map::new();
    for unit in units {
        asked.insert(
            unit.name().to_owned(),
            json!({ "files": &unit.artifact.files }),
        );
    }
    let scope = Scope {
        artifact: None,
        targets: &first.targets,
        files: None,
    };
    let document = json!({ "artifacts": asked });
    let output = run_with(
        &scope,
        backend,
        script,
        ScriptKind::CheckAll,
        env,
        None,
        Some(&document),
        None,
    )?;
    let output = succeeded(output, ScriptKind::CheckAll, script)?;
    let names: Vec<&str> = units.iter().map(|unit| unit.name()).collect();
    parse_check_all(&output.stdout, &names).map_err(|reason| ScriptError::Answer {
        command: script.to_string(),
        reason,
    })
}

/// One line of `check-all`'s answer.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckAllLine {
    artifact: String,
    status: String,
}

/// Reads `check-all`'s answer for the artifacts `asked` (see [`check_all`]).
/// Reasons name the line and the artifact, never repeat what else the
/// script printed.
fn parse_check_all(stdout: &[u8], asked: &[&str]) -> Result<Vec<CheckOutcome>, String> {
    let text = std::str::from_utf8(stdout).map_err(|_| "its output is not UTF-8".to_owned())?;
    let position: BTreeMap<&str, usize> = asked
        .iter()
        .enumerate()
        .map(|(at, name)| (*name, at))
        .collect();
    let mut answers: Vec<Option<CheckOutcome>> = vec![None; asked.len()];
    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        if line.trim().is_empty() {
            continue;
        }
        let line: CheckAllLine = serde_json::from_str(line).map_err(|error| {
            let why = if error.is_data() {
                "needs exactly the string fields `artifact` and `status`"
            } else {
                "is not a JSON object"
            };
            format!("line {number} {why}")
        })?;
        let Some(&at) = position.get(line.artifact.as_str()) else {
            return Err(format!(
                "line {number} answers for an artifact that was not asked about (see $artifacts)"
            ));
        };
        let outcome = match line.status.as_str() {
            "stored" => CheckOutcome::Stored,
            "missing" => CheckOutcome::NeedsGeneration,
            "recipients-changed" => CheckOutcome::RecipientsChanged,
            _ => {
                return Err(format!(
                    "line {number}: the status of `{}` is not one of stored, missing, recipients-changed",
                    line.artifact
                ));
            }
        };
        if answers[at].replace(outcome).is_some() {
            return Err(format!(
                "line {number} answers for `{}` a second time",
                line.artifact
            ));
        }
    }
    let unanswered: Vec<String> = asked
        .iter()
        .zip(&answers)
        .filter(|(_, answer)| answer.is_none())
        .map(|(name, _)| format!("`{name}`"))
        .collect();
    if !unanswered.is_empty() {
        let shown = unanswered.len().min(5);
        let more = if unanswered.len() > shown {
            format!(" and {} more", unanswered.len() - shown)
        } else {
            String::new()
        };
        return Err(format!(
            "no answer for {}{more}",
            unanswered[..shown].join(", ")
        ));
    }
    Ok(answers
        .into_iter()
        .map(|a| a.expect("all answered"))
        .collect())
}

/// Runs `serialize` with `$out` holding the generated files and `stamp`
/// the generation the lock records for them, or `deserialize` with `$out`
/// an empty directory to fill (no stamp).
pub(crate) fn store(
    unit: &Unit<'_>,
    backend: &Backend,
    scripts: &Scripts,
    kind: ScriptKind,
    env: &ScriptEnv,
    out: &Path,
    stamp: Option<&Stamp>,
) -> Result<(), ScriptError> {
    let script = script_of(unit, scripts, kind)?;
    let scope = Scope::of(unit);
    let stamp = stamp.filter(|_| kind == ScriptKind::Serialize);
    if let Some((store, mut call)) = in_process(&scope, backend, script, env)? {
        call.stamp = stamp.cloned();
        let result = match kind {
            ScriptKind::Serialize => store.serialize(&call, out),
            _ => store.deserialize(&call, out),
        };
        register_secrets(&scope, out);
        return result.map_err(|error| in_process_failed(kind, backend, &error));
    }
    let output = run_with(&scope, backend, script, kind, env, Some(out), None, stamp)?;
    succeeded(output, kind, script).map(drop)
}

/// The store file an in-process `serialize` of the unit rewrites together
/// with other artifacts ([`StoreBackend::store_file`]); `None` for scripts,
/// which are called once per unit as the contract says.
pub(crate) fn store_file(
    unit: &Unit<'_>,
    backend: &Backend,
    scripts: &Scripts,
    env: &ScriptEnv,
) -> Option<PathBuf> {
    let (store, call) = in_process(&Scope::of(unit), backend, &scripts.serialize, env).ok()??;
    store.store_file(&call)
}

/// Stores several units of one in-process backend that share a store file
/// ([`store_file`]) in one write, all or nothing; each with its stamp (see [`store`]).
pub(crate) fn serialize_all(
    units: &[(&Unit<'_>, &Path, Option<&Stamp>)],
    backend: &Backend,
    scripts: &Scripts,
    env: &ScriptEnv,
) -> Result<(), ScriptError> {
    let mut store = None;
    let mut calls = Vec::with_capacity(units.len());
    for (unit, out, stamp) in units {
        let scope = Scope::of(unit);
        let Some((found, mut call)) = in_process(&scope, backend, &scripts.serialize, env)? else {
            return Err(ScriptError::Prepare {
                script: "serialize",
                source: std::io::Error::other(format!(
                    "backend `{}` does not run in this process, so it stores one artifact at a time (this is a bug in artifacts)",
                    backend.name
                )),
            });
        };
        call.stamp = stamp.cloned();
        store = Some(found);
        calls.push((call, *out));
    }
    let Some(store) = store else { return Ok(()) };
    let pairs: Vec<(&Call, &Path)> = calls.iter().map(|(call, out)| (call, *out)).collect();
    let result = store.serialize_all(&pairs);
    for (unit, out, _) in units {
        register_secrets(&Scope::of(unit), out);
    }
    result.map_err(|error| in_process_failed(ScriptKind::Serialize, backend, &error))
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
pub(crate) fn list(
    scope: &Scope<'_>,
    backend: &Backend,
    script: &Script,
    env: &ScriptEnv,
) -> Result<Vec<String>, ScriptError> {
    if let Some((store, call)) = in_process(scope, backend, script, env)? {
        return store
            .list(&call)
            .map_err(|error| in_process_failed(ScriptKind::List, backend, &error));
    }
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
pub(crate) fn remove(
    scope: &Scope<'_>,
    backend: &Backend,
    script: &Script,
    env: &ScriptEnv,
) -> Result<(), ScriptError> {
    if let Some((store, call)) = in_process(scope, backend, script, env)? {
        return store
            .remove(&call)
            .map_err(|error| in_process_failed(ScriptKind::Remove, backend, &error));
    }
    let output = run(scope, backend, script, ScriptKind::Remove, env, None)?;
    succeeded(output, ScriptKind::Remove, script).map(drop)
}

/// Asks the backend's `writable` script (in-process, or a file: exit 0 yes,
/// 1 no with the reason on stderr) whether the unit's `serialize` can write
/// with the identities at hand: `None` yes, else why not (a failure to tell
/// is a reason too). A backend without one is assumed writable: `None`.
pub(crate) fn writable(
    unit: &Unit<'_>,
    backend: &Backend,
    scripts: &Scripts,
    env: &ScriptEnv,
) -> Result<Option<String>, ScriptError> {
    let Some(script) = &scripts.writable else {
        return Ok(None);
    };
    if let Some((store, call)) = in_process(&Scope::of(unit), backend, script, env)? {
        return Ok(match store.writable(&call) {
            Ok(crate::in_process::Writable::Yes) => None,
            Ok(crate::in_process::Writable::No { reason }) => {
                Some(artifacts_os::redact::redact(&reason))
            }
            Err(error) => Some(format!(
                "{} writable: {}",
                backend.name,
                failure_text(&error)
            )),
        });
    }
    let output = run(
        &Scope::of(unit),
        backend,
        script,
        ScriptKind::Writable,
        env,
        None,
    )?;
    let stderr = output.stderr.trim();
    Ok(match output.status.code() {
        Some(0) => None,
        Some(1) if !stderr.is_empty() => Some(stderr.to_owned()),
        _ => Some(format!(
            "`{script}` failed ({}){}",
            describe_status(&output.status),
            stderr_suffix(&output.stderr)
        )),
    })
}

/// The in-process backend behind `script` and the call it gets, or `None`
/// when `script` is a file.
fn in_process<'b>(
    scope: &Scope<'_>,
    backend: &'b Backend,
    script: &Script,
    env: &ScriptEnv,
) -> Result<Option<(&'b dyn StoreBackend, Call)>, ScriptError> {
    let Script::InProcess { script: name, .. } = script else {
        return Ok(None);
    };
    let root = canonical_root(env, name)?;
    in_process_at(scope, backend, name, env, root).map(Some)
}

/// A call's files: the declared ones, sorted by name.
fn call_files(
    files: Option<&indexmap::IndexMap<String, artifacts_model::FileSpec>>,
) -> Vec<CallFile> {
    let mut files: Vec<CallFile> = files
        .into_iter()
        .flatten()
        .map(|(name, file)| CallFile {
            name: name.clone(),
            secret: file.secret,
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

/// The project root as a script's working directory would be: the
/// physical path, so that no link on the way is followed below it.
fn canonical_root(env: &ScriptEnv, script: &'static str) -> Result<PathBuf, ScriptError> {
    env.canonical_root()
        .map_err(|source| ScriptError::Prepare { script, source })
}

/// [`in_process`] with the project root already resolved (once for a batch).
fn in_process_at<'b>(
    scope: &Scope<'_>,
    backend: &'b Backend,
    name: &'static str,
    env: &ScriptEnv,
    root: PathBuf,
) -> Result<(&'b dyn StoreBackend, Call), ScriptError> {
    let store = backend.in_process.as_ref().ok_or_else(|| ScriptError::Prepare {
        script: name,
        source: std::io::Error::other(format!(
            "backend `{}` runs in this process but has no implementation registered (this is a bug in artifacts)",
            backend.name
        )),
    })?;
    let files = call_files(scope.files);
    let call = Call {
        backend: backend.name.clone(),
        artifact: scope.artifact.map(str::to_owned),
        targets: scope.targets.map(|t| CallTarget {
            name: t.id.name.clone(),
            kind: t.id.kind,
            config: config_of(backend, t),
        }),
        files,
        root,
        identities: KeySources::new(env.extra_env.clone()),
        stamp: None,
    };
    Ok((store.0.as_ref(), call))
}

/// Re-encrypts `units` (all of one in-process backend; `current` are its
/// units that need nothing) with the backend's batch
/// ([`StoreBackend::rekey_all`]) on up to `jobs` threads; `None` when the
/// backend has none (or runs scripts), so the caller rekeys one unit at a
/// time.
pub(crate) fn rekey_all(
    units: &[&Unit<'_>],
    current: &[&Unit<'_>],
    backend: &Backend,
    scripts: &Scripts,
    env: &ScriptEnv,
    jobs: usize,
) -> Option<Vec<Result<bool, ScriptError>>> {
    let Script::InProcess { script: name, .. } = &scripts.serialize else {
        return None;
    };
    let store = backend.in_process.as_ref()?;
    let failed = |error: &ScriptError| {
        let message = error.to_string();
        Some(
            units
                .iter()
                .map(|_| {
                    Err(ScriptError::Prepare {
                        script: name,
                        source: std::io::Error::other(message.clone()),
                    })
                })
                .collect(),
        )
    };
    let root = match canonical_root(env, name) {
        Ok(root) => root,
        Err(error) => return failed(&error),
    };
    let mut calls = Vec::with_capacity(units.len());
    for unit in units {
        match in_process_at(&Scope::of(unit), backend, name, env, root.clone()) {
            Ok((_, call)) => calls.push(call),
            Err(error) => return failed(&error),
        }
    }
    let current: Vec<Call> = current
        .iter()
        .filter_map(|unit| in_process_at(&Scope::of(unit), backend, name, env, root.clone()).ok())
        .map(|(_, call)| call)
        .collect();
    let results = store.0.rekey_all(&calls, &current, jobs)?;
    Some(
        results
            .into_iter()
            .map(|result| {
                result.map_err(|error| in_process_failed(ScriptKind::Serialize, backend, &error))
            })
            .collect(),
    )
}

/// An in-process failure's text as a person reads it: the chain, then the
/// suggested fix; redacted like a script's stderr.
fn failure_text(error: &StoreError) -> String {
    let mut text = crate::engine::error_chain(error);
    if let Some(hint) = error.hint() {
        text.push_str("\n    hint: ");
        text.push_str(hint);
    }
    artifacts_os::redact::redact(&text)
}

fn in_process_failed(kind: ScriptKind, backend: &Backend, error: &StoreError) -> ScriptError {
    ScriptError::InProcess {
        script: kind.as_str(),
        backend: backend.name.clone(),
        message: failure_text(error),
    }
}

/// Registers the files in `out` for redaction: `deserialize` just wrote
/// secrets there (serialize's were registered when generated), and a later
/// message may print them.
fn register_secrets(scope: &Scope<'_>, out: &Path) {
    artifacts_os::redact::register_dir(out, crate::generator::MAX_FILE_SIZE, &|name| {
        scope
            .files
            .and_then(|files| files.get(name))
            .is_some_and(|f| !f.secret)
    });
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::in_process::{InProcess, StoreError, Writable};
    use crate::registry::Section;

    /// Records the calls it gets and answers what it is told to.
    #[derive(Debug, Default)]
    struct Recorder {
        calls: Mutex<Vec<(String, Call)>>,
        fail_with: Option<String>,
    }

    impl Recorder {
        fn answer<T>(&self, script: &str, call: &Call, ok: T) -> Result<T, StoreError> {
            self.calls
                .lock()
                .unwrap()
                .push((script.to_owned(), call.clone()));
            match &self.fail_with {
                Some(message) => Err(StoreError::new(message.clone())
                    .with_hint(Some("restore it from version control".into()))),
                None => Ok(ok),
            }
        }
    }

    impl StoreBackend for Recorder {
        fn check(&self, call: &Call) -> Result<Checked, StoreError> {
            self.answer("check", call, Checked::Stored)
        }
        fn serialize(&self, call: &Call, _out: &Path) -> Result<(), StoreError> {
            self.answer("serialize", call, ())
        }
        fn deserialize(&self, call: &Call, _out: &Path) -> Result<(), StoreError> {
            self.answer("deserialize", call, ())
        }
        fn list(&self, call: &Call) -> Result<Vec<String>, StoreError> {
            self.answer("list", call, vec!["a".into()])
        }
        fn remove(&self, call: &Call) -> Result<(), StoreError> {
            self.answer("remove", call, ())
        }
        fn writable(&self, call: &Call) -> Result<Writable, StoreError> {
            self.answer("writable", call, Writable::Yes)
        }
    }

    fn backend(recorder: Arc<Recorder>) -> (Backend, Scripts) {
        let script = |script| Script::InProcess {
            backend: "rec".into(),
            script,
        };
        let scripts = Scripts {
            check: script("check"),
            serialize: script("serialize"),
            deserialize: Some(script("deserialize")),
            list: None,
            remove: None,
            writable: Some(script("writable")),
            check_all: None,
        };
        let backend = Backend {
            name: "rec".into(),
            defined_in: PathBuf::from("<test>"),
            sections: [(
                crate::registry::SectionKind::Nixos,
                Section {
                    enabled: true,
                    scripts: Some(scripts.clone()),
                },
            )]
            .into(),
            // The engine hands over the first present config key.
            config_keys: vec!["rec".into(), "fallback".into()],
            storage: "rec".into(),
            in_process: Some(InProcess(recorder)),
        };
        (backend, scripts)
    }

    fn env(root: &Path) -> ScriptEnv {
        ScriptEnv {
            root: root.join("."),
            log_level: "info".into(),
            timeout: None,
            // A binary that does not exist: nothing may be spawned.
            self_exe: Some(root.join("no-such-artifacts")),
            extra_env: vec![("ARTIFACTS_IDENTITY".into(), "/keys/k.txt".into())],
            prompt_variables: Vec::new(),
            scratch: RunScratch::default(),
            canonical_root: Default::default(),
        }
    }

    const MANIFEST: &str = r#"
default.backend = "rec"
[nixos.m1]
config.fallback.publicHostKey = "age1fallback"
[artifacts.api]
targets = ["m1"]
generator = "gen.sh"
files.token = {}
files.cert = { secret = false }
"#;

    /// The engine calls an in-process backend with the typed contract (the
    /// target's config by the backend's keys, files sorted with their
    /// secrecy, the physical root, the identity variables) and spawns nothing.
    #[test]
    fn in_process_scripts_get_the_contract_as_a_call() {
        let dir = tempfile::tempdir().unwrap();
        let model =
            artifacts_model::load::load_manifest_text(&dir.path().join("artifacts.toml"), MANIFEST)
                .unwrap();
        let plan = crate::plan::Plan::new(&model).unwrap();
        let recorder = Arc::new(Recorder::default());
        let (backend, scripts) = backend(recorder.clone());
        let env = env(dir.path());
        let unit = plan.unit(crate::plan::UnitId(0));

        assert_eq!(
            check(unit, &backend, &scripts, &env).unwrap(),
            CheckOutcome::Stored
        );
        let stamp = Stamp {
            fingerprint: "sha256:f1".into(),
            generated_at: Some("2026-11-30T12:00:00.000000Z".into()),
        };
        store(
            unit,
            &backend,
            &scripts,
            ScriptKind::Serialize,
            &env,
            dir.path(),
            Some(&stamp),
        )
        .unwrap();
        assert_eq!(writable(unit, &backend, &scripts, &env).unwrap(), None);
        let batched = Stamp {
            generated_at: None,
            ..stamp.clone()
        };
        serialize_all(
            &[(unit, dir.path(), Some(&batched))],
            &backend,
            &scripts,
            &env,
        )
        .unwrap();

        let calls = recorder.calls.lock().unwrap();
        let scripts: Vec<&str> = calls.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(scripts, ["check", "serialize", "writable", "serialize"]);
        // Only serialize gets the generation's stamp, batched or not.
        let stamps: Vec<Option<&Stamp>> = calls.iter().map(|(_, c)| c.stamp.as_ref()).collect();
        assert_eq!(stamps, [None, Some(&stamp), None, Some(&batched)]);
        let call = &calls[0].1;
        assert_eq!(call.backend, "rec");
        assert_eq!(call.artifact.as_deref(), Some("api"));
        assert_eq!(call.context(), Context::Nixos);
        let Targets::One(target) = &call.targets else {
            panic!("a machine's artifact is called for that one machine");
        };
        assert_eq!(target.name, "m1");
        assert_eq!(target.kind, TargetKind::Nixos);
        assert_eq!(
            target.config,
            serde_json::json!({ "publicHostKey": "age1fallback" })
        );
        let files: Vec<(&str, bool)> = call
            .files
            .iter()
            .map(|f| (f.name.as_str(), f.secret))
            .collect();
        assert_eq!(files, [("cert", false), ("token", true)]);
        assert_eq!(call.root, dir.path().canonicalize().unwrap());
        let vars = call.identities.vars();
        let identity = vars.iter().rev().find(|(k, _)| k == "ARTIFACTS_IDENTITY");
        assert_eq!(
            identity.map(|(_, v)| v.as_os_str()),
            Some("/keys/k.txt".as_ref())
        );
    }

    /// A failing in-process `check` is an error (never "needs generation"),
    /// named after the backend and script, with the hint, redacted like a
    /// script's stderr; `writable` turns a failure into a reason.
    #[test]
    fn in_process_failures_are_errors_with_hint_and_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let model =
            artifacts_model::load::load_manifest_text(&dir.path().join("artifacts.toml"), MANIFEST)
                .unwrap();
        let plan = crate::plan::Plan::new(&model).unwrap();
        let secret = "in-process-canary-3b1f9a";
        artifacts_os::redact::register(secret.as_bytes());
        let recorder = Arc::new(Recorder {
            fail_with: Some(format!("`store.age` is damaged near {secret}")),
            ..Recorder::default()
        });
        let (backend, scripts) = backend(recorder);
        let env = env(dir.path());
        let unit = plan.unit(crate::plan::UnitId(0));

        let error = check(unit, &backend, &scripts, &env).unwrap_err();
        let text = crate::engine::error_chain(&error);
        assert!(
            text.starts_with("check of backend `rec` failed: `store.age` is damaged near "),
            "{text}"
        );
        assert!(
            text.contains("hint: restore it from version control"),
            "{text}"
        );
        assert!(!text.contains(secret), "{text}");
        assert!(!error.may_be_half_done());

        let reason = writable(unit, &backend, &scripts, &env).unwrap().unwrap();
        assert!(
            reason.starts_with("rec writable: `store.age` is damaged"),
            "{reason}"
        );
        assert!(!reason.contains(secret), "{reason}");
    }
}
