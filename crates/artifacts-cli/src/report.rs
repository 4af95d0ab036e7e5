//! The `--json` document: exactly one per run on stdout, on success and on
//! failure alike, shaped by `docs/schema/output.schema.json`.
//!
//! ```json
//! { "command": "generate", "ok": false, "exit_code": 1,
//!   "artifacts": [{ "artifact": "a", "context": "nixos", "targets": ["nixos/m"],
//!                   "backend": "agenix", "result": "failed", "error": "…" }],
//!   "errors": [{ "kind": "failure", "message": "…", "unit": "nixos/m a",
//!                "artifact": "a", "scope": "nixos/m" }] }
//! ```
//!
//! `artifacts` holds one entry per unit (target and artifact) the command
//! looked at or acted on; a command may add its own top-level fields
//! (`summary`, `backends`, …) with [`set`]. `errors` holds every error: per
//! unit ([`unit_error`]), and the one that ended the run, which [`finish`]
//! takes from the command's `Err` (declaration errors with their file,
//! line, column, target, artifact and field). Human text goes to stderr.
//!
//! Global state: the document being collected, started by [`begin`] in
//! [`crate::run`] when `--json` is given; while none is started every
//! function here does nothing, so commands call them unconditionally.

use std::io::Write;
use std::sync::Mutex;

use artifacts_engine::Unit;
use artifacts_model::ModelError;
use serde_json::{Map, Value, json};

/// The document under construction.
struct Document {
    command: String,
    fields: Map<String, Value>,
    artifacts: Vec<Value>,
    errors: Vec<Value>,
}

static DOCUMENT: Mutex<Option<Document>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Document) -> R) -> Option<R> {
    let mut guard = DOCUMENT.lock().unwrap_or_else(|e| e.into_inner());
    guard.as_mut().map(f)
}

/// Starts collecting the document of `command` (e.g. `check`, `sops decrypt`).
pub fn begin(command: &str) {
    *DOCUMENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(Document {
        command: command.to_owned(),
        fields: Map::new(),
        artifacts: Vec::new(),
        errors: Vec::new(),
    });
}

/// The command the document is about, while one is being collected.
pub fn command() -> Option<String> {
    with(|d| d.command.clone())
}

/// Whether a document is being collected (`--json`): commands then print
/// nothing else on stdout.
pub fn enabled() -> bool {
    with(|_| ()).is_some()
}

/// Sets a command-specific top-level field.
pub fn set(key: &str, value: Value) {
    with(|d| d.fields.insert(key.to_owned(), value));
}

/// Adds one unit's entry to `artifacts`.
pub fn artifact(entry: Value) {
    with(|d| d.artifacts.push(entry));
}

/// What identifies a unit in `artifacts`: its artifact, context, targets and
/// backend, plus `result` (what the command did with it) when given.
pub fn unit(unit: &Unit<'_>, result: Option<&str>) -> Value {
    let mut value = json!({
        "artifact": unit.name(),
        "context": unit.context().as_str(),
        "targets": unit.targets.iter().map(|t| t.id.reference()).collect::<Vec<_>>(),
        "backend": unit.backend.name,
    });
    if let Some(result) = result {
        value["result"] = json!(result);
    }
    value
}

/// Adds `unit`'s entry with `result`, and `extra` fields merged in.
pub fn unit_result(unit: &Unit<'_>, result: &str, extra: Value) {
    if !enabled() {
        return;
    }
    let mut value = self::unit(unit, Some(result));
    if let (Some(value), Value::Object(extra)) = (value.as_object_mut(), extra) {
        value.extend(extra);
    }
    artifact(value);
}

/// Adds an error about one unit to `errors` (and the entry's `error`, when
/// the caller adds the entry too).
pub fn unit_error(unit: &Unit<'_>, message: &str) {
    with(|d| {
        d.errors.push(json!({
            "kind": "failure",
            "message": message,
            "unit": unit.label(),
            "artifact": unit.name(),
            "scope": unit.scope(),
        }))
    });
}

/// Adds an error not tied to one declared unit (a backend that could not
/// be listed, an orphan that could not be removed).
pub fn error(message: &str, label: Option<&str>) {
    with(|d| {
        let mut value = json!({ "kind": "failure", "message": message });
        if let Some(label) = label {
            value["unit"] = json!(label);
        }
        d.errors.push(value)
    });
}

/// Writes the document with `code` and the run's error, if any, on stdout.
/// Does nothing when no document was started.
pub fn finish(code: i32, failure: Option<&anyhow::Error>) -> std::io::Result<()> {
    let Some(document) = DOCUMENT.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return Ok(());
    };
    let mut errors = document.errors;
    if let Some(error) = failure {
        errors.extend(error_entries(error));
    }
    let mut top = Map::new();
    top.insert("command".into(), json!(document.command));
    top.insert("ok".into(), json!(code == crate::exit::SUCCESS));
    top.insert("exit_code".into(), json!(code));
    for (key, value) in document.fields {
        top.entry(key).or_insert(value);
    }
    top.insert("artifacts".into(), Value::Array(document.artifacts));
    top.insert("errors".into(), Value::Array(errors));
    let mut document = Value::Object(top);
    let mut stdout = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut stdout, &document)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(stdout))
        .and_then(|()| stdout.flush());
    // `show` puts a decrypted file in the document: wipe it after use.
    if let Some(entries) = document["artifacts"].as_array_mut() {
        for entry in entries {
            if let Some(Value::String(content)) = entry.get_mut("content") {
                zeroize::Zeroize::zeroize(content);
            }
        }
    }
    written
}

/// The entries of the error that ended a run: one per declaration problem
/// (with its location), else one for the whole chain.
fn error_entries(error: &anyhow::Error) -> Vec<Value> {
    let kind = if crate::exit::code_for(error) == crate::exit::USAGE {
        "usage"
    } else {
        "failure"
    };
    let mut entry = json!({ "kind": kind, "message": format!("{error:#}") });
    if let Some(hint) = crate::exit::hint(error) {
        entry["hint"] = json!(hint);
    }
    // Usage errors wrap theirs without making it their `source()`.
    let causes: Vec<&(dyn std::error::Error + 'static)> = error
        .chain()
        .flat_map(|cause| {
            let inner: Vec<&(dyn std::error::Error + 'static)> = cause
                .downcast_ref::<crate::exit::UsageError>()
                .map(|usage| usage.0.chain().collect())
                .unwrap_or_default();
            std::iter::once(cause).chain(inner)
        })
        .collect();
    let model = causes.iter().find_map(|c| c.downcast_ref::<ModelError>());
    if model.is_none()
        && let Some(file) = causes.iter().find_map(|c| other_file(*c))
    {
        entry["file"] = json!(file);
        return vec![entry];
    }
    match model {
        Some(ModelError::Parse {
            path, line, column, ..
        }) => {
            entry["file"] = json!(path);
            if let Some(line) = line {
                entry["line"] = json!(line);
            }
            if let Some(column) = column {
                entry["column"] = json!(column);
            }
            vec![entry]
        }
        Some(ModelError::Read { path, .. } | ModelError::UnknownFormat { path }) => {
            entry["file"] = json!(path);
            vec![entry]
        }
        Some(ModelError::Invalid(problems)) if !problems.is_empty() => problems
            .iter()
            .map(|problem| {
                let location = &problem.location;
                let mut value = json!({
                    "kind": kind,
                    "message": problem.to_string(),
                    "file": location.file,
                });
                if let Some(target) = &location.target {
                    value["target"] = json!(target.reference());
                }
                if let Some(artifact) = &location.artifact {
                    value["artifact"] = json!(artifact);
                }
                if let Some(field) = &location.field {
                    value["field"] = json!(field);
                }
                value
            })
            .collect(),
        _ => vec![entry],
    }
}

/// The file at fault in a backend config or lock error.
fn other_file<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::path::Path> {
    use artifacts_engine::error::{BackendError, LockError};
    if let Some(
        BackendError::Read { path, .. }
        | BackendError::Parse { path, .. }
        | BackendError::Include { path, .. }
        | BackendError::Invalid { path, .. },
    ) = cause.downcast_ref::<BackendError>()
    {
        return Some(path);
    }
    match cause.downcast_ref::<LockError>() {
        Some(LockError::Invalid { path, .. }) => Some(path),
        _ => None,
    }
}
