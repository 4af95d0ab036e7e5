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
use crate::{install, public};

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
    /// The `artifacts` binary, for `$ARTIFACTS` and shipped backends.
    pub self_exe: Option<PathBuf>,
    /// More variables for backend scripts (e.g. `ARTIFACTS_IDENTITY`).
    pub extra_env: Vec<(String, std::ffi::OsString)>,
}

/// Where a unit stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "kebab-case")]
pub enum Status {
    /// Stored and generated from the current declaration.
    Ok,
    /// The backend stores nothing by design (generated at activation).
    Passthrough,
    /// Not stored: needs generation.
    Missing,
    /// Stored, but from another declaration (or unknown to the lock).
    Stale(String),
    /// Stored and current, but encrypted to another recipient set: `rekey` fixes it.
    RecipientsChanged,
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
            Status::Stale(_) | Status::RecipientsChanged => "stale",
            Status::Error(_) => "error",
        }
    }

    /// Why, for statuses that have a reason.
    pub fn reason(&self) -> Option<String> {
        match self {
            Status::Stale(reason) | Status::Error(reason) => Some(reason.clone()),
            Status::RecipientsChanged => Some(
                "recipients changed: run `artifacts rekey` to re-encrypt without regenerating"
                    .into(),
            ),
            Status::Passthrough => Some("not stored by design".into()),
            Status::Ok | Status::Missing => None,
        }
    }

    /// The word and the reason, for people.
    pub fn describe(&self) -> String {
        match self.reason() {
            Some(reason) => format!("{}: {reason}", self.word()),
            None => self.word().into(),
        }
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
    /// A file could not be installed.
    #[error(transparent)]
    Install(#[from] install::InstallError),
    /// A stored artifact cannot be read back.
    #[error("{artifact} cannot be read back: {reason}")]
    Unavailable {
        /// The unit's label.
        artifact: String,
        /// Why.
        reason: String,
    },
}

pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
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

/// What activation did to each file of a unit: its destination and the outcome.
pub type Activated = Vec<(PathBuf, install::Installed)>;

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
    pub(crate) registry: &'a BackendRegistry,
    pub(crate) settings: Settings,
    pub(crate) script_env: ScriptEnv,
}

/// How one unit is stored.
pub(crate) enum Storage<'b> {
    Passthrough,
    Scripts(&'b Backend, &'b Scripts),
}

impl<'a> Engine<'a> {
    /// An engine using `registry`.
    pub fn new(registry: &'a BackendRegistry, settings: Settings) -> Self {
        let script_env = ScriptEnv {
            root: settings.root.clone(),
            log_level: settings.log_level.clone(),
            timeout: settings.timeouts.script,
            self_exe: settings.self_exe.clone(),
            extra_env: settings.extra_env.clone(),
            prompt_variables: script::prompt_variables(),
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

    pub(crate) fn storage(&self, unit: &Unit<'_>) -> Result<Storage<'a>, EngineError> {
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
            Some(scripts) => Storage::Scripts(backend, scripts),
        })
    }

    /// Before asking anything or running any generator: which of the units
    /// at `indexes` could not be stored with the identities at hand, and why
    /// (e.g. adding to an existing SOPS file needs its data key). Only shipped
    /// backends can be asked; the others are assumed writable.
    pub fn unwritable(&self, plan: &Plan<'_>, indexes: &[usize]) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for &index in indexes {
            let unit = &plan.units[index];
            let Ok(Storage::Scripts(backend, scripts)) = self.storage(unit) else {
                continue;
            };
            match script::writable(unit, backend, scripts, &self.script_env) {
                Ok(None) => {}
                Ok(Some(why)) => out.push((index, why)),
                Err(error) => out.push((index, error_chain(&error))),
            }
        }
        out
    }

    /// Whether [`Engine::unwritable`] can tell for this unit: nothing to
    /// store, or a shipped backend.
    pub fn tells_writable(&self, unit: &Unit<'_>) -> bool {
        match self.storage(unit) {
            Ok(Storage::Scripts(_, scripts)) => {
                matches!(scripts.serialize, crate::backend::Script::Shipped { .. })
            }
            Ok(Storage::Passthrough) | Err(_) => true,
        }
    }

    /// Checks one unit.
    pub fn status(&self, plan: &Plan<'_>, index: usize, lock: &Lock) -> Status {
        let unit = &plan.units[index];
        let (backend, scripts) = match self.storage(unit) {
            Ok(Storage::Passthrough) => return Status::Passthrough,
            Ok(Storage::Scripts(backend, scripts)) => (backend, scripts),
            Err(error) => return Status::Error(error_chain(&error)),
        };
        let outcome = script::check(unit, backend, scripts, &self.script_env);
        if matches!(
            outcome,
            Ok(CheckOutcome::Stored | CheckOutcome::RecipientsChanged)
        ) && !public::missing(&self.settings.root, unit).is_empty()
        {
            return Status::Missing;
        }
        match outcome {
            Ok(CheckOutcome::NeedsGeneration) => Status::Missing,
            // A changed declaration wins over changed recipients: a target dropped
            // from a shared artifact knew the secret, so it must be regenerated,
            // not merely re-encrypted.
            Ok(stored @ (CheckOutcome::Stored | CheckOutcome::RecipientsChanged)) => {
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
                    Some(entry) if entry.fingerprint == fingerprint => {
                        if stored == CheckOutcome::RecipientsChanged {
                            Status::RecipientsChanged
                        } else {
                            Status::Ok
                        }
                    }
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
        let (backend, scripts) = match self.storage(unit)? {
            Storage::Passthrough => return Ok(()),
            Storage::Scripts(backend, scripts) => (backend, scripts),
        };
        let (_scratch, dirs) = self.produce(plan, index, answers, sandbox, outputs, observer)?;
        observer.step(unit, "serializing");
        script::store(
            unit,
            backend,
            scripts,
            ScriptKind::Serialize,
            &self.script_env,
            &dirs.out,
        )?;
        public::store(&self.settings.root, unit, &dirs.out).map_err(io(format!(
            "write the public files of {} to `{}`",
            unit.label(),
            public::artifact_dir(&self.settings.root, unit).display()
        )))?;
        // The dependency entries are current now, so the fingerprint is too.
        let fingerprint = unit
            .fingerprint(plan, lock)
            .map_err(io(format!("read the generator of `{}`", unit.name())))?;
        lock.set(&unit.scope(), unit.name(), LockEntry::now(fingerprint));
        lock.save()?;
        Ok(())
    }

    /// Runs a unit's generator in a fresh scratch directory, with its prompt
    /// answers and its dependencies' files (from this run's `outputs`, else
    /// read back through their backends), and keeps its output in `outputs`
    /// when another unit depends on it. The scratch directory lives as long as
    /// the returned [`Scratch`].
    fn produce(
        &self,
        plan: &Plan<'_>,
        index: usize,
        answers: &Answers,
        sandbox: &Sandbox,
        outputs: &mut BTreeMap<usize, ArtifactFiles>,
        observer: &dyn Observer,
    ) -> Result<(Scratch, GeneratorDirs), EngineError> {
        let unit = &plan.units[index];
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
        Ok((scratch, dirs))
    }

    /// Generates the passthrough (`dummy`) units in `selected` and installs
    /// their files at their declared paths under `root`, with their owner,
    /// group and mode. A unit whose files are all in place is left alone
    /// (owner/group/mode corrected if needed); a failing generator leaves the
    /// previous files untouched. `system` chooses root-owned `0755` parent
    /// directories (NixOS) over user `0700` ones (Home Manager).
    #[allow(clippy::too_many_arguments)]
    pub fn activate(
        &self,
        plan: &Plan<'_>,
        selected: &[usize],
        answers: &Answers,
        sandbox: &Sandbox,
        root: &std::path::Path,
        env: &dyn Fn(&str) -> Option<String>,
        observer: &dyn Observer,
    ) -> Vec<(usize, Result<Activated, EngineError>)> {
        let mut outputs = BTreeMap::new();
        let mut failed: Vec<usize> = Vec::new();
        let mut results = Vec::new();
        for &index in selected {
            let unit = &plan.units[index];
            let result = match unit.dependencies.iter().find(|d| failed.contains(d)) {
                Some(&dependency) => Err(EngineError::DependencyFailed {
                    dependency: plan.units[dependency].name().to_owned(),
                }),
                None => self.activate_one(
                    plan,
                    index,
                    answers,
                    sandbox,
                    root,
                    env,
                    &mut outputs,
                    observer,
                ),
            };
            if result.is_err() {
                failed.push(index);
            }
            results.push((index, result));
        }
        results
    }

    #[allow(clippy::too_many_arguments)]
    fn activate_one(
        &self,
        plan: &Plan<'_>,
        index: usize,
        answers: &Answers,
        sandbox: &Sandbox,
        root: &std::path::Path,
        env: &dyn Fn(&str) -> Option<String>,
        outputs: &mut BTreeMap<usize, ArtifactFiles>,
        observer: &dyn Observer,
    ) -> Result<Activated, EngineError> {
        let unit = &plan.units[index];
        let system = unit.targets[0].id.kind == artifacts_model::TargetKind::Nixos;
        let files: Vec<(PathBuf, &artifacts_model::FileSpec)> = unit
            .artifact
            .files
            .values()
            .map(|spec| install::destination(&spec.path, root, env).map(|path| (path, spec)))
            .collect::<Result<_, _>>()?;
        let produced = if install::all_in_place(&files)? {
            // Dependents read what is installed, not a fresh (different) generation.
            if plan.units.iter().any(|u| u.dependencies.contains(&index)) {
                let installed = files
                    .iter()
                    .zip(unit.artifact.files.keys())
                    .map(|((path, _), name)| {
                        std::fs::read(path)
                            .map(|bytes| (name.clone(), zeroize::Zeroizing::new(bytes)))
                            .map_err(io(format!("read `{}`", path.display())))
                    })
                    .collect::<Result<ArtifactFiles, _>>()?;
                outputs.insert(index, installed);
            }
            None
        } else {
            Some(self.produce(plan, index, answers, sandbox, outputs, observer)?)
        };
        let mut done = Vec::new();
        for ((destination, spec), name) in files.iter().zip(unit.artifact.files.keys()) {
            let read = || match &produced {
                Some((_, dirs)) => std::fs::read(dirs.out.join(name)),
                None => Err(std::io::Error::other("no generated file")),
            };
            let outcome = install::install(destination, spec, &read, system)?;
            done.push((destination.clone(), outcome));
        }
        Ok(done)
    }

    /// Restores a unit's files: secret ones through the backend's
    /// `deserialize`, public ones from the public store.
    pub fn deserialize(&self, plan: &Plan<'_>, index: usize) -> Result<ArtifactFiles, EngineError> {
        let unit = &plan.units[index];
        let scratch = Scratch::new("deserialize").map_err(io("create a scratch directory"))?;
        let out = scratch.subdir("out").map_err(io("create $out"))?;
        self.deserialize_into(unit, &out)?;
        Ok(generator::read_output(unit, &out)?)
    }

    pub(crate) fn deserialize_into(
        &self,
        unit: &Unit<'_>,
        out: &std::path::Path,
    ) -> Result<(), EngineError> {
        let unavailable = |reason: String| EngineError::Unavailable {
            artifact: unit.label(),
            reason,
        };
        let (backend, scripts) = match self.storage(unit)? {
            Storage::Passthrough => {
                return Err(unavailable(format!(
                    "backend `{}` stores nothing (it is generated at activation)",
                    unit.backend.name
                )));
            }
            Storage::Scripts(backend, scripts) => (backend, scripts),
        };
        if scripts.deserialize.is_none() {
            return Err(unavailable(format!(
                "backend `{}` has no deserialize script",
                unit.backend.name
            )));
        }
        script::store(
            unit,
            backend,
            scripts,
            ScriptKind::Deserialize,
            &self.script_env,
            out,
        )?;
        public::restore(&self.settings.root, unit, out).map_err(io(format!(
            "read the public files of {} from `{}`",
            unit.label(),
            public::artifact_dir(&self.settings.root, unit).display()
        )))?;
        generator::validate_output(unit, out)?;
        Ok(())
    }

    /// Re-encrypts a stored unit to its backend's current recipients without
    /// regenerating: deserialize, then serialize the same files. The lock entry
    /// (fingerprint, generation time) stays as it is.
    pub fn rekey(&self, plan: &Plan<'_>, index: usize) -> Result<(), EngineError> {
        let unit = &plan.units[index];
        let (backend, scripts) = match self.storage(unit)? {
            Storage::Passthrough => return Ok(()),
            Storage::Scripts(backend, scripts) => (backend, scripts),
        };
        let scratch = Scratch::new("rekey").map_err(io("create a scratch directory"))?;
        let out = scratch.subdir("out").map_err(io("create $out"))?;
        self.deserialize_into(unit, &out)?;
        script::store(
            unit,
            backend,
            scripts,
            ScriptKind::Serialize,
            &self.script_env,
            &out,
        )?;
        Ok(())
    }
}
