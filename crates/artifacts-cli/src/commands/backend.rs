//! `artifacts __backend NAME SCRIPT`: a shipped backend run as a backend
//! script, for the wrapper scripts in `backends/<name>/` and copies of
//! their `backend.toml`. The contract's environment is read into the same
//! [`Call`] the engine passes in-process, and the answer becomes the
//! script's exit code.
//!
//! Exit codes: `check` 0 stored, 1 missing, 3 recipients changed, 2 error;
//! `writable` 0 yes, 1 no identity for the store, 2 error;
//! `serialize`/`deserialize`/`list`/`remove` 0 success, 1 failure. `list`
//! prints one name a line; errors and answers needing words go to stderr,
//! never with secret values.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};
use artifacts_engine::Targets;
use artifacts_engine::store::{Call, CallFile, CallTarget, Checked, KeySources, Stamp, Writable};
use artifacts_model::{Context, TargetKind};

/// Runs `script` of the shipped backend `backend`; returns the exit code.
pub fn run(backend: &str, script: &str) -> i32 {
    // Their exit codes carry an answer: a failure is 2, not 1.
    let failure = if script == "check" || script == "writable" {
        2
    } else {
        1
    };
    match answer(backend, script) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("{backend} {script}: {error:#}");
            failure
        }
    }
}

fn answer(name: &str, script: &str) -> Result<i32> {
    let call = call_from_env(name)?;
    let unknown = || {
        anyhow!(
            "no shipped backend script `{name} {script}` (backends: agenix, sops-nix, sops; scripts: check, serialize, deserialize)"
        )
    };
    let backend = artifacts_backends::get(name).ok_or_else(unknown)?;
    let out = || {
        std::env::var_os("out")
            .map(PathBuf::from)
            .ok_or_else(|| anyhow!("$out is not set"))
    };
    let failed = |error: artifacts_engine::store::StoreError| {
        let hint = error
            .hint()
            .map(|hint| format!("\nhint: {hint}"))
            .unwrap_or_default();
        anyhow!("{}{hint}", artifacts_engine::error_chain(&error))
    };
    match script {
        "check" => Ok(match backend.check(&call).map_err(failed)? {
            Checked::Stored | Checked::StoredWith { .. } => 0,
            Checked::Missing => 1,
            Checked::RecipientsChanged { message } => {
                eprintln!("{message}");
                3
            }
            other => return Err(anyhow!("unexpected check answer {other:?}")),
        }),
        "serialize" => backend
            .serialize(&call, &out()?)
            .map_err(failed)
            .map(|()| 0),
        "deserialize" => backend
            .deserialize(&call, &out()?)
            .map_err(failed)
            .map(|()| 0),
        "list" => {
            for artifact in backend.list(&call).map_err(failed)? {
                println!("{artifact}");
            }
            Ok(0)
        }
        "remove" => backend.remove(&call).map_err(failed).map(|()| 0),
        "writable" => Ok(match backend.writable(&call).map_err(failed)? {
            Writable::Yes => 0,
            Writable::No { reason } => {
                eprintln!("{reason}");
                1
            }
            other => return Err(anyhow!("unexpected writable answer {other:?}")),
        }),
        _ => Err(unknown()),
    }
}

fn var(name: &str) -> Result<String> {
    std::env::var(name).map_err(|_| {
        anyhow!(
            "${name} is not set: shipped backends run under `artifacts`, which sets the contract's variables"
        )
    })
}

/// The contract's environment (`$artifact`, `$artifact_context`,
/// `$targets`, `$inputs`; the working directory is the project root).
fn call_from_env(backend: &str) -> Result<Call> {
    // `list` runs for a target, not an artifact.
    let artifact = std::env::var("artifact").ok().filter(|a| !a.is_empty());
    let context = var("artifact_context")?;
    let context = match context.as_str() {
        "nixos" => Context::Nixos,
        "homemanager" => Context::HomeManager,
        "tanka" => Context::Tanka,
        "shared" => Context::Shared,
        other => {
            return Err(anyhow!(
                "$artifact_context `{other}` is not one of nixos, homemanager, tanka, shared"
            ));
        }
    };
    let targets = read_targets(Path::new(&var("targets")?), context)?;
    let inputs = PathBuf::from(var("inputs")?);
    let mut files = Vec::new();
    let read = |path: &Path| format!("failed to read `{}`", path.display());
    for entry in std::fs::read_dir(&inputs).with_context(|| read(&inputs))? {
        let entry = entry.with_context(|| read(&inputs))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(entry.path()).with_context(|| read(&entry.path()))?;
        let spec: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| anyhow!("$inputs/{name} is not valid: {e}"))?;
        let secret = match spec.get("secret") {
            None | Some(serde_json::Value::Null) => true,
            Some(serde_json::Value::Bool(secret)) => *secret,
            Some(_) => {
                return Err(anyhow!(
                    "$inputs/{name} is not valid: `secret` is not a boolean"
                ));
            }
        };
        files.push(CallFile { name, secret });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Call {
        backend: backend.to_owned(),
        artifact,
        targets,
        files,
        root: std::env::current_dir().with_context(|| read(Path::new(".")))?,
        identities: KeySources::default(),
        stamp: stamp_from_env(),
    })
}

/// serialize's generation stamp, as the engine exports it to scripts.
fn stamp_from_env() -> Option<Stamp> {
    let fingerprint = std::env::var(artifacts_engine::store::STAMP_FINGERPRINT)
        .ok()
        .filter(|f| !f.is_empty())?;
    Some(Stamp {
        fingerprint,
        generated_at: std::env::var(artifacts_engine::store::STAMP_GENERATED_AT)
            .ok()
            .filter(|g| !g.is_empty()),
    })
}

/// `$targets`: `{context, targets: [{name, type, config}]}`; outside the
/// shared context exactly one target, of the context's kind.
fn read_targets(path: &Path, context: Context) -> Result<Targets<CallTarget>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    let invalid = |reason: String| anyhow!("$targets `{}` is not valid: {reason}", path.display());
    let document: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let entries = document
        .get("targets")
        .and_then(|t| t.as_array())
        .ok_or_else(|| invalid("missing field `targets`".into()))?;
    let mut targets = Vec::new();
    for entry in entries {
        let field = |key: &str| {
            entry
                .get(key)
                .and_then(|v| v.as_str())
                .ok_or_else(|| invalid(format!("a target has no string `{key}`")))
        };
        let name = field("name")?.to_owned();
        let kind = field("type")?;
        let kind = TargetKind::parse(kind)
            .ok_or_else(|| invalid(format!("unknown target type `{kind}`")))?;
        let config = match entry.get("config") {
            None | Some(serde_json::Value::Null) => serde_json::json!({}),
            Some(config) => config.clone(),
        };
        targets.push(CallTarget { name, kind, config });
    }
    if context == Context::Shared {
        return Ok(Targets::Shared(targets));
    }
    match <[CallTarget; 1]>::try_from(targets) {
        Ok([target]) if target.kind.context() == context => Ok(Targets::One(target)),
        Ok([target]) => Err(invalid(format!(
            "target `{}` is of type `{}`, not one of the {context} context",
            target.name,
            target.kind.as_str()
        ))),
        Err(targets) => Err(invalid(format!(
            "the {context} context needs exactly one target, not {}",
            targets.len()
        ))),
    }
}
