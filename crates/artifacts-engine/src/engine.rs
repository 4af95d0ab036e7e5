//! The engine: status of every unit, and generation in dependency order.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use artifacts_model::Context;
use serde::Serialize;

use crate::backend::{Backend, BackendRegistry, Scripts};
use crate::generator::{self, ArtifactFiles, GeneratorError};
use crate::lock::{Lock, LockEntry, LockError};
use crate::plan::{Plan, Unit};
use crate::prompts::Answers;
use crate::sandbox::{GeneratorDirs, Sandbox};
use crate::scratch::{Scratch, write_private};
use crate::script::{self, CheckOutcome, ScriptEnv, ScriptError, ScriptKind};

/// Time limits.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Per backend script.
    pub script: Option<Duration>,
    /// Per generator.
    pub generator: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            script: Some(Duration::from_secs(300)),
            generator: Some(Duration::from_secs(600)),
        }
    }
}

/// What the engine needs besides the model.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The project root (scripts' working directory).
    pub root: PathBuf,
    /// `$LOG_LEVEL` for scripts and generators.
    pub log_level: String,
    /// Time limits.
    pub timeouts: Timeouts,
    /// The `artifacts` binary, for `$ARTIFACTS`.
    pub self_exe: Option<PathBuf>,
}

/// Where a unit stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "lowercase")]
pub enum Status {
    /// Stored and generated from the current declaration.
    Ok,
    /// The backend stores nothing by design (generated at activation).
    Passthrough,
    /// Not stored: needs generation.
    Missing,
    /// Stored, but from another declaration (or unknown to the lock).
    Stale(String),
    /// The check itself failed.
    Error(String),
}

impl Status {
    /// The short word for tables and JSON.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Passthrough => "ok",
            Status::Missing => "missing",
            Status::Stale(_) => "stale",
            Status::Error(_) => "error",
        }
    }

    /// Whether generation would change something.
    pub fn needs_generation(&self) -> bool {
        matches!(self, Status::Missing | Status::Stale(_))
    }
}

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The artifact's backend is not in the registry.
    #[error("unknown backend `{0}`")]
    UnknownBackend(String),
    /// The backend has no enabled section for the context.
    #[error(
        "backend `{backend}` does not serve {context} artifacts: its [{backend}.{section}] section is missing or disabled"
    )]
    Unsupported {
        /// The backend.
        backend: String,
        /// The context.
        context: Context,
        /// The section key.
        section: &'static str,
    },
    /// A backend script failed.
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// A generator failed.
    #[error(transparent)]
    Generator(#[from] GeneratorError),
    /// The lock file failed.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Local file work failed.
    #[error("failed to {action}")]
    Io {
        /// What we were doing.
        action: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A dependency failed earlier in this run.
    #[error("skipped: dependency `{dependency}` failed")]
    DependencyFailed {
        /// The dependency.
        dependency: String,
    },
    /// A dependency's files cannot be obtained.
    #[error("dependency `{dependency}` is not available: {reason}")]
    DependencyUnavailable {
        /// The dependency.
        dependency: String,
        /// Why.
        reason: String,
    },
}

fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
    let action = action.into();
    move |source| EngineError::Io { action, source }
}

/// Formats an error with its whole source chain on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

/// Hears about generation progress.
pub trait Observer: Sync {
    /// A unit starts a step (`generating`, `serializing`).
    fn step(&self, _unit: &Unit<'_>, _step: &str) {}
    /// A unit is done.
    fn finished(&self, _unit: &Unit<'_>, _result: &Result<(), EngineError>) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// The engine over one plan.
pub struct Engine<'a> {
    registry: &'a BackendRegistry,
    settings: Settings,
    script_env: ScriptEnv,
}

/// How one unit is stored.
enum Storage<'b> {
    Passthrough,
    Scripts(&'b Scripts),
}

impl<'a> Engine<'a> {
    /// An engine using `registry`.
    pub fn new(registry: &'a BackendRegistry, settings: Settings) -> Self {
        let script_env = ScriptEnv {
            root: settings.root.clone(),
            log_level: settings.log_level.clone(),
            timeout: settings.timeouts.script,
            self_exe: settings.self_exe.clone(),
        };
        Engine {
            registry,
            settings,
            script_env,
        }
    }

    fn backend(&self, unit: &Unit<'_>) -> Result<&'a Backend, EngineError> {
        self.registry
            .get(&unit.backend.name)
            .ok_or_else(|| EngineError::UnknownBackend(unit.backend.name.clone()))
    }

    fn storage(&self, unit: &Unit<'_>) -> Result<Storage<'a>, EngineError> {
        let backend = self.backend(unit)?;
        let section = backend
            .section(unit.context)
            .ok_or_else(|| EngineError::Unsupported {
                backend: backend.name.clone(),
                context: unit.context,
                section: crate::backend::SectionKind::for_context(unit.context).key(),
            })?;
        Ok(match &section.scripts {
            None => Storage::Passthrough,
            Some(scripts) => Storage::Scripts(scripts),
        })
    }

    /// Checks one unit.
    pub fn status(&self, plan: &Plan<'_>, index: usize, lock: &Lock) -> Status {
        let unit = &plan.units[index];
        let scripts = match self.storage(unit) {
            Ok(Storage::Passthrough) => return Status::Passthrough,
            Ok(Storage::Scripts(scripts)) => scripts,
            Err(error) => return Status::Error(error_chain(&error)),
        };
        match script::check(unit, scripts, &self.script_env) {
            Ok(CheckOutcome::NeedsGeneration) => Status::Missing,
            Ok(CheckOutcome::Stored) => {
                let fingerprint = match unit.fingerprint(plan, lock) {
                    Ok(f) => f,
                    Err(error) => {
                        return Status::Error(format!(
                            "cannot read generator of `{}`: {error}",
                            unit.name()
                        ));
                    }
                };
                match lock.get(&unit.scope(), unit.name()) {
                    Some(entry) if entry.fingerprint == fingerprint => Status::Ok,
                    Some(_) => Status::Stale("declaration changed since generation".into()),
                    None => Status::Stale(
                        "stored, but not recorded in artifacts.lock (generated outside artifacts?)"
                            .into(),
                    ),
                }
            }
            Err(error) => Status::Error(error_chain(&error)),
        }
    }

    /// Checks the units in `selected` on up to `jobs` threads; results in the same order.
    pub fn statuses(
        &self,
        plan: &Plan<'_>,
        selected: &[usize],
        lock: &Lock,
        jobs: usize,
    ) -> Vec<Status> {
        let results: Mutex<Vec<Option<Status>>> = Mutex::new(vec![None; selected.len()]);
        let next = AtomicUsize::new(0);
        let workers = jobs.clamp(1, selected.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let slot = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&index) = selected.get(slot) else {
                            break;
                        };
                        let status = self.status(plan, index, lock);
                        results.lock().expect("no panics while holding")[slot] = Some(status);
                    }
                });
            }
        });
        results
            .into_inner()
            .expect("no panics while holding")
            .into_iter()
            .map(|s| s.expect("every slot filled"))
            .collect()
    }

    /// Whether a unit's backend stores nothing (so there is nothing to generate ahead of time).
    pub fn is_passthrough(&self, unit: &Unit<'_>) -> bool {
        matches!(self.storage(unit), Ok(Storage::Passthrough))
    }

    /// Generates and serializes `selected` (indexes into `plan`, in plan order),
    /// recording each success in the lock right away. Returns per-unit results.
    pub fn generate(
        &self,
        plan: &Plan<'_>,
        selected: &[usize],
        answers: &Answers,
        sandbox: &Sandbox,
        lock: &mut Lock,
        observer: &dyn Observer,
    ) -> Vec<(usize, Result<(), EngineError>)> {
        let mut outputs: BTreeMap<usize, ArtifactFiles> = BTreeMap::new();
        let mut failed: BTreeMap<usize, ()> = BTreeMap::new();
        let mut results = Vec::new();
        let mut order = selected.to_vec();
        order.sort_unstable();
        for index in order {
            let unit = &plan.units[index];
            let result = match unit.dependencies.iter().find(|d| failed.contains_key(d)) {
                Some(&dependency) => Err(EngineError::DependencyFailed {
                    dependency: plan.units[dependency].name().to_owned(),
                }),
                None => {
                    self.generate_one(plan, index, answers, sandbox, lock, &mut outputs, observer)
                }
            };
            if result.is_err() {
                failed.insert(index, ());
            }
            observer.finished(unit, &result);
            results.push((index, result));
        }
        results
    }

    #[allow(clippy::too_many_arguments)]
    fn generate_one(
        &self,
        plan: &Plan<'_>,
        index: usize,
        answers: &Answers,
        sandbox: &Sandbox,
        lock: &mut Lock,
        outputs: &mut BTreeMap<usize, ArtifactFiles>,
        observer: &dyn Observer,
    ) -> Result<(), EngineError> {
        let unit = &plan.units[index];
        let scripts = match self.storage(unit)? {
            Storage::Passthrough => return Ok(()),
            Storage::Scripts(scripts) => scripts,
        };
        let scratch = Scratch::new("generate").map_err(io("create a scratch directory"))?;
        let dirs = GeneratorDirs {
            out: scratch.subdir("out").map_err(io("create $out"))?,
            prompts: scratch.subdir("prompts").map_err(io("create $prompts"))?,
            input: scratch.subdir("in").map_err(io("create $in"))?,
            tmp: scratch.subdir("tmp").map_err(io("create a private tmp"))?,
        };
        let prompt_names: Vec<&String> = unit.artifact.prompts.keys().collect();
        answers
            .write(unit.name(), &prompt_names, &dirs.prompts)
            .map_err(io("write prompt answers"))?;
        for &dependency in &unit.dependencies {
            let files = match outputs.get(&dependency) {
                Some(files) => files.clone(),
                None => self.deserialize(plan, dependency)?,
            };
            let dir = dirs.input.join(plan.units[dependency].name());
            std::fs::create_dir(&dir).map_err(io("create $in directory"))?;
            for (name, content) in &files {
                write_private(&dir.join(name), content).map_err(io("write $in files"))?;
            }
        }
        observer.step(unit, "generating");
        generator::run(
            unit,
            sandbox,
            &dirs,
            &self.settings.log_level,
            self.settings.timeouts.generator,
        )?;
        if plan.units.iter().any(|u| u.dependencies.contains(&index)) {
            outputs.insert(index, generator::read_output(unit, &dirs.out)?);
        }
        observer.step(unit, "serializing");
        script::store(
            unit,
            scripts,
            ScriptKind::Serialize,
            &self.script_env,
            &dirs.out,
        )?;
        // The dependency entries are current now, so the fingerprint is too.
        let fingerprint = unit
            .fingerprint(plan, lock)
            .map_err(io(format!("read the generator of `{}`", unit.name())))?;
        lock.set(&unit.scope(), unit.name(), LockEntry::now(fingerprint));
        lock.save()?;
        Ok(())
    }

    /// Restores a unit's files through its backend's `deserialize`.
    pub fn deserialize(&self, plan: &Plan<'_>, index: usize) -> Result<ArtifactFiles, EngineError> {
        let unit = &plan.units[index];
        let unavailable = |reason: String| EngineError::DependencyUnavailable {
            dependency: unit.name().to_owned(),
            reason,
        };
        let scripts = match self.storage(unit)? {
            Storage::Passthrough => {
                return Err(unavailable(format!(
                    "backend `{}` stores nothing (it is generated at activation)",
                    unit.backend.name
                )));
            }
            Storage::Scripts(scripts) => scripts,
        };
        if scripts.deserialize.is_none() {
            return Err(unavailable(format!(
                "backend `{}` has no deserialize script; generate it in the same run",
                unit.backend.name
            )));
        }
        let scratch = Scratch::new("deserialize").map_err(io("create a scratch directory"))?;
        let out = scratch.subdir("out").map_err(io("create $out"))?;
        script::store(
            unit,
            scripts,
            ScriptKind::Deserialize,
            &self.script_env,
            &out,
        )?;
        generator::validate_output(unit, &out)?;
        Ok(generator::read_output(unit, &out)?)
    }
}
