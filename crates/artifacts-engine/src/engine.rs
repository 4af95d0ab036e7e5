//! The engine: status of every unit, and generation in dependency order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, MutexGuard};
use std::time::{Duration, Instant};

use artifacts_model::{Context, TargetId};
use indexmap::IndexMap;
use serde::Serialize;

use crate::generator::{self, ArtifactFiles, GeneratorError};
use crate::in_process::Stamp;
use crate::lockfile::{Journal, Lock, LockEntry, LockError, Provenance};
use crate::plan::{Comparison, Plan, Unit, UnitId};
use crate::prompts::Answers;
use crate::registry::{Backend, BackendRegistry, Script, Scripts};
use crate::sandbox::{EtcView, GeneratorDirs, Sandbox};
use crate::script::{self, CheckOutcome, ScriptEnv, ScriptError, ScriptKind};
use crate::{install, public};
use artifacts_os::scratch::{Scratch, write_private};

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
    /// More variables for backend scripts (e.g. `ARTIFACTS_IDENTITY`).
    pub extra_env: Vec<(String, std::ffi::OsString)>,
}

/// Where a unit stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Status {
    /// Stored and generated from the current declaration.
    Ok,
    /// The backend stores nothing by design (generated at activation).
    Passthrough,
    /// Not stored anywhere: needs generation.
    Missing,
    /// Not stored by the declared backend, but by another one: `migrate` moves
    /// it; generating would replace a working secret.
    Elsewhere {
        /// The artifact name.
        artifact: String,
        /// The backend that stores it.
        stored_in: String,
        /// The declared backend.
        declared: String,
    },
    /// Stored, but not recorded in the lock (adopted from another tool, or
    /// stored by hand): left alone; `accept` records it.
    Untracked {
        /// The artifact name.
        artifact: String,
    },
    /// Stored, but no longer matching the declaration.
    Stale {
        /// What resolves it.
        cause: StaleCause,
        /// What changed, and the command that resolves it.
        reason: String,
    },
    /// Stored and current, but encrypted to another recipient set: `rekey` fixes it.
    RecipientsChanged,
    /// The check itself failed.
    Error {
        /// Why.
        reason: String,
    },
}

/// Why a stored artifact is stale, which decides what resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StaleCause {
    /// What makes the secret was declared differently: `accept` keeps what
    /// is stored (e.g. after a comment-only generator edit), regenerating
    /// replaces it.
    Declaration,
    /// A dependency was regenerated since: only regenerating helps.
    Dependency,
    /// Older than a limit (`check --max-age`): only regenerating helps.
    Age,
}

impl Status {
    /// A check failure.
    pub fn error(reason: impl Into<String>) -> Status {
        Status::Error {
            reason: reason.into(),
        }
    }

    /// The short word for tables and JSON.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Passthrough => "ok",
            Status::Missing => "missing",
            Status::Elsewhere { .. } => "elsewhere",
            Status::Untracked { .. } => "untracked",
            Status::Stale { .. } | Status::RecipientsChanged => "stale",
            Status::Error { .. } => "error",
        }
    }

    /// Why, for statuses that have a reason.
    pub fn reason(&self) -> Option<String> {
        match self {
            Status::Stale { reason, .. } | Status::Error { reason } => Some(reason.clone()),
            Status::Elsewhere {
                artifact,
                stored_in,
                declared,
            } => Some(format!(
                "stored in {stored_in}, declared {declared}: run `{}` (or declare `backend = \"{stored_in}\"` again)",
                suggestion("migrate", &[artifact])
            )),
            Status::Untracked { artifact } => Some(format!(
                "stored, but not recorded in artifacts.lock (adopted, or stored outside artifacts): left as it is; `{}` records it",
                suggestion("accept", &[artifact])
            )),
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

/// The command line `artifacts COMMAND ARTIFACT…`, names shell-quoted where needed.
pub fn suggestion(command: &str, artifacts: &[&String]) -> String {
    let mut line = format!("artifacts {command}");
    for artifact in artifacts {
        line.push(' ');
        line.push_str(&shell_escape::escape(artifact.as_str().into()));
    }
    line
}

/// Why the generation a backend reports storing (its [`Stamp`]) is not the
/// one the lock `entry` records, if it is not: the generation time tells
/// generations apart (a fingerprint alone changes with `accept`, which
/// writes nothing to the store). A stamp without a time (an adopted
/// artifact, or one stored before stamps) tells nothing.
fn other_generation(unit: &Unit<'_>, entry: &LockEntry, stored: &Stamp) -> Option<String> {
    let made = stored.generated_at.as_deref()?;
    if entry.generated_at.as_deref() == Some(made) {
        return None;
    }
    let recorded = match &entry.generated_at {
        Some(at) => format!("it records one made at {at}"),
        None => "it records no generation time".to_owned(),
    };
    Some(format!(
        "backend `{}` holds a generation of `{}` made at {made} that artifacts.lock does not record ({recorded}): another operator regenerated it; pull their artifacts.lock, or run `{}`",
        unit.backend.name,
        unit.name(),
        suggestion("regenerate", &[&unit.artifact.name])
    ))
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
    /// A value was to be stored where its backend stores nothing.
    #[error(
        "{artifact} cannot be stored: backend `{backend}` stores nothing (its files are generated at activation)"
    )]
    StoresNothing {
        /// The unit's label.
        artifact: String,
        /// The backend.
        backend: String,
    },
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

/// What [`Engine::generate`] and [`Engine::activate`] run: which units of
/// which plan, with which prompt answers, in which sandbox, and who hears
/// about progress.
#[derive(Clone, Copy)]
pub struct GenerateRequest<'r, 'm> {
    /// The plan the units belong to.
    pub plan: &'r Plan<'m>,
    /// The units to generate.
    pub units: &'r [UnitId],
    /// Every answer their prompts need ([`Answers::collect`]).
    pub answers: &'r Answers,
    /// Where generators run.
    pub sandbox: &'r Sandbox,
    /// Hears about each step.
    pub observer: &'r dyn Observer,
    /// How many generators may run at once (at least one).
    pub jobs: usize,
}

/// How long generated units of a shared store file wait for more of the
/// same file before they are stored anyway while a generator still runs:
/// a kill loses no more generator work than this.
pub(crate) const CHECKPOINT: Duration = Duration::from_secs(2);

/// A generated unit waiting to be stored: `$out` in its scratch directory,
/// which lives as long as this.
struct Generated {
    _scratch: Scratch,
    dirs: GeneratorDirs,
}

/// The units whose generators may start, lowest id (plan order) first.
#[derive(Default)]
struct Queue {
    state: Mutex<(BTreeSet<UnitId>, bool)>,
    ready: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, (BTreeSet<UnitId>, bool)> {
        self.state.lock().expect("no panics while holding")
    }

    fn push(&self, id: UnitId) {
        self.lock().0.insert(id);
        self.ready.notify_one();
    }

    fn is_empty(&self) -> bool {
        self.lock().0.is_empty()
    }

    /// The next unit, and whether taking it emptied the queue, waiting for
    /// one; `None` once closed.
    fn pop(&self) -> Option<(UnitId, bool)> {
        let mut state = self.lock();
        loop {
            if let Some(id) = state.0.pop_first() {
                return Some((id, state.0.is_empty()));
            }
            if state.1 {
                return None;
            }
            state = self.ready.wait(state).expect("no panics while holding");
        }
    }

    fn close(&self) {
        self.lock().1 = true;
        self.ready.notify_all();
    }
}

/// A store file units are stored in together: backend name and path.
type BatchKey = (String, PathBuf);

/// A group of units ready to be stored ([`Engine::prepare_group`]).
struct Prepared<'g, 'b> {
    /// Each unit, its generated files, and the lock entry to record.
    members: Vec<(UnitId, &'g GeneratorDirs, LockEntry)>,
    storage: (&'b Backend, &'b Scripts),
    /// What the lock held before the marks of units with public files.
    previous: Vec<(String, String, Option<LockEntry>)>,
}

/// What writing a [`Prepared`] group did: the serialize's error, or each
/// member's public files' result.
type Written = Result<Vec<Result<(), EngineError>>, ScriptError>;

/// Where a generate run stands, kept by the thread that stores.
struct RunState {
    results: BTreeMap<UnitId, Result<(), EngineError>>,
    /// Units queued or generating.
    outstanding: usize,
    /// The units of the run depending on each unit of the run.
    dependents: BTreeMap<UnitId, Vec<UnitId>>,
    /// How many of its dependencies in the run each unit still waits for.
    waiting: BTreeMap<UnitId, usize>,
    /// The store file of each unit of the run stored with others.
    batch_of: BTreeMap<UnitId, BatchKey>,
    /// How many units of each store file are neither generated nor failed yet.
    unsettled: BTreeMap<BatchKey, usize>,
    /// Store files whose every unit is generated or failed: due now.
    settled: Vec<BatchKey>,
}

impl RunState {
    /// Notes that unit `id` is generated or failed: the last one of a store
    /// file makes that file's batch due, so it is written while other
    /// generators still run, yet once per run.
    fn settle(&mut self, id: UnitId) {
        let Some(key) = self.batch_of.get(&id) else {
            return;
        };
        let left = self.unsettled.get_mut(key).expect("every batch counted");
        *left -= 1;
        if *left == 0 {
            self.settled.push(key.clone());
        }
    }

    /// Records a unit's result: a success may let dependents start, a
    /// failure skips them (and theirs), naming it.
    fn complete(
        &mut self,
        request: &GenerateRequest<'_, '_>,
        queue: &Queue,
        id: UnitId,
        result: Result<(), EngineError>,
    ) {
        let plan = request.plan;
        request.observer.finished(&plan[id], &result);
        let ok = result.is_ok();
        self.results.insert(id, result);
        for dependent in self.dependents.get(&id).cloned().unwrap_or_default() {
            if self.results.contains_key(&dependent) {
                continue;
            }
            if ok {
                let waiting = self
                    .waiting
                    .get_mut(&dependent)
                    .expect("every unit counted");
                *waiting -= 1;
                if *waiting == 0 {
                    self.outstanding += 1;
                    queue.push(dependent);
                }
            } else {
                let skipped = Err(EngineError::DependencyFailed {
                    dependency: plan[id].name().to_owned(),
                });
                self.settle(dependent);
                self.complete(request, queue, dependent, skipped);
            }
        }
    }
}

/// Where [`Engine::activate`] installs files: declared paths, with `$VAR`
/// and `~/` expanded through `env`, placed under `root` (`/` for the real
/// system).
#[derive(Clone, Copy)]
pub struct InstallRoot<'r> {
    /// The target being activated: its declarations say where files go
    /// (see [`Unit::declared_by`]), and its kind whether parent directories
    /// are a system's (NixOS: root-owned `0755`) or a user's (`0700`).
    pub target: &'r TargetId,
    /// The directory declared paths are placed under.
    pub root: &'r Path,
    /// Looks up the variables declared paths use.
    pub env: &'r dyn Fn(&str) -> Option<String>,
}

impl InstallRoot<'_> {
    /// Whether parent directories are a system's rather than a user's.
    fn system(&self) -> bool {
        self.target.kind == artifacts_model::TargetKind::Nixos
    }
}

/// Checks, selects, generates and activates the units of a plan, with the
/// backends of a registry.
pub struct Engine<'a> {
    pub(crate) registry: &'a BackendRegistry,
    pub(crate) settings: Settings,
    pub(crate) script_env: ScriptEnv,
}

/// A backend's answer to `check` given before [`Engine::status_with`] runs
/// (by `check-all`, or an in-process batch): the outcome and, when the
/// backend reports one, the stored generation's stamp; or why it failed.
type Answer = Result<(CheckOutcome, Option<Stamp>), String>;

/// How one unit is stored.
pub(crate) enum Storage<'b> {
    Passthrough,
    Scripts(&'b Backend, &'b Scripts),
}

/// `f` of `0..count`, on up to `jobs` threads; the results in order.
pub fn parallel<T: Send>(count: usize, jobs: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    // One slot each: one lock for all would be taken by every worker for
    // every item (10,000 in a fleet's check).
    let results: Vec<Mutex<Option<T>>> = (0..count).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = jobs.clamp(1, count.max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let at = next.fetch_add(1, Ordering::Relaxed);
                    if at >= count {
                        break;
                    }
                    let result = f(at);
                    *results[at].lock().expect("no panics while holding") = Some(result);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .expect("no panics while holding")
                .expect("every slot filled")
        })
        .collect()
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
            scratch: script::RunScratch::default(),
            canonical_root: Default::default(),
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
            .section(unit.context())
            .ok_or_else(|| EngineError::Unsupported {
                backend: backend.name.clone(),
                context: unit.context(),
                section: crate::registry::SectionKind::for_context(unit.context()).key(),
            })?;
        Ok(match &section.scripts {
            None => Storage::Passthrough,
            Some(scripts) => Storage::Scripts(backend, scripts),
        })
    }

    /// Before asking anything or running any generator: which of the units
    /// at `indexes` could not be stored with the identities at hand, and why
    /// (e.g. adding to an existing SOPS file needs its data key). Only
    /// backends with a `writable` script (the shipped ones, and third-party
    /// backends that declare one) can be asked; the others are assumed writable.
    pub fn unwritable(&self, plan: &Plan<'_>, indexes: &[UnitId]) -> Vec<(UnitId, String)> {
        let mut out = Vec::new();
        for &index in indexes {
            let unit = &plan[index];
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
    /// store, or a backend with a `writable` script.
    pub fn tells_writable(&self, unit: &Unit<'_>) -> bool {
        match self.storage(unit) {
            Ok(Storage::Scripts(_, scripts)) => scripts.writable.is_some(),
            Ok(Storage::Passthrough) | Err(_) => true,
        }
    }

    /// Checks one unit: asks its declared backend, and when that stores
    /// nothing, every other backend that could (see [`Engine::stored_elsewhere`]).
    pub fn status(&self, plan: &Plan<'_>, index: UnitId, lock: &Lock) -> Status {
        self.status_with(plan, index, lock, None)
    }

    /// [`Engine::status`], with the backend's answer when `check-all` gave it already.
    fn status_with(
        &self,
        plan: &Plan<'_>,
        index: UnitId,
        lock: &Lock,
        answered: Option<Answer>,
    ) -> Status {
        self.status_in(plan, index, &plan[index].scope(), lock, answered)
    }

    /// [`Engine::status_with`] of a unit whose lock scope is `scope`.
    fn status_in(
        &self,
        plan: &Plan<'_>,
        index: UnitId,
        scope: &str,
        lock: &Lock,
        answered: Option<Answer>,
    ) -> Status {
        let unit = &plan[index];
        // An answer came from a batch, which only stored units join.
        let answer = match answered {
            Some(answer) => answer,
            None => match self.storage(unit) {
                Ok(Storage::Passthrough) => return Status::Passthrough,
                Ok(Storage::Scripts(backend, scripts)) => {
                    script::check_stamped(unit, backend, scripts, &self.script_env)
                        .map_err(|e| error_chain(&e))
                }
                Err(error) => return Status::error(error_chain(&error)),
            },
        };
        let mut stored_stamp = None;
        let outcome = answer.map(|(outcome, stamp)| {
            stored_stamp = stamp;
            outcome
        });
        let recorded = lock.get(scope, unit.name());
        if matches!(
            outcome,
            Ok(CheckOutcome::Stored | CheckOutcome::RecipientsChanged)
        ) {
            if recorded.is_some_and(|entry| entry.incomplete) {
                return Status::Error {
                    reason: format!(
                        "an earlier run stopped between storing the secret files of {} and its public files, so they may not match; run `artifacts regenerate {}`",
                        unit.label(),
                        unit.name()
                    ),
                };
            }
            match public::missing(&self.settings.root, unit) {
                Ok(missing) if missing.is_empty() => {}
                Ok(_) => return Status::Missing,
                Err(error) => {
                    return Status::Error {
                        reason: format!(
                            "cannot read the public files of {} in `{}`: {error}",
                            unit.label(),
                            public::artifact_dir(&self.settings.root, unit).display()
                        ),
                    };
                }
            }
        }
        match outcome {
            Ok(CheckOutcome::NeedsGeneration) => match self.stored_elsewhere(plan, unit, lock) {
                Ok(Some(stored_in)) => Status::Elsewhere {
                    artifact: unit.name().to_owned(),
                    stored_in,
                    declared: unit.backend.name.clone(),
                },
                Ok(None) => Status::Missing,
                Err(reason) => Status::Error { reason },
            },
            // A changed declaration wins over changed recipients: a target dropped
            // from a shared artifact knew the secret, so it must be regenerated,
            // not merely re-encrypted.
            Ok(stored @ (CheckOutcome::Stored | CheckOutcome::RecipientsChanged)) => {
                let unreadable = |error: std::io::Error| {
                    Status::error(format!(
                        "cannot read generator of `{}`: {error}",
                        unit.name()
                    ))
                };
                let Some(entry) = recorded else {
                    return match unit.declared(plan, lock) {
                        Ok(_) => Status::Untracked {
                            artifact: unit.name().to_owned(),
                        },
                        Err(error) => unreadable(error),
                    };
                };
                let comparison = match unit.compare_declared(plan, lock, entry) {
                    Ok(comparison) => comparison,
                    Err(error) => return unreadable(error),
                };
                // What the lock says of the declaration is moot for another generation.
                if let Some(reason) = stored_stamp
                    .as_ref()
                    .and_then(|stamp| other_generation(unit, entry, stamp))
                {
                    return Status::Error { reason };
                }
                let name = &unit.artifact.name;
                match comparison {
                    Comparison::Changed(what) if entry.by_hand() => Status::Stale {
                        cause: StaleCause::Declaration,
                        reason: format!(
                            "{what}: `{}` puts in a new value, `{}` keeps what is stored",
                            suggestion("set", &[name]),
                            suggestion("accept", &[name])
                        ),
                    },
                    Comparison::Changed(what) => Status::Stale {
                        cause: StaleCause::Declaration,
                        reason: format!(
                            "{what}: `{}` keeps what is stored, `{}` replaces it",
                            suggestion("accept", &[name]),
                            suggestion("regenerate", &[name])
                        ),
                    },
                    Comparison::DependencyRegenerated(what) => Status::Stale {
                        cause: StaleCause::Dependency,
                        reason: format!("{what}: run `{}`", suggestion("regenerate", &[name])),
                    },
                    Comparison::Current { .. } if stored == CheckOutcome::RecipientsChanged => {
                        Status::RecipientsChanged
                    }
                    Comparison::Current { .. } => Status::Ok,
                }
            }
            Err(reason) => Status::error(reason),
        }
    }

    /// The backend (other than the declared one) storing a unit, if any. Asks
    /// the backend the lock recorded first, then every backend that could
    /// store the unit's context and that the project uses or that ships with
    /// artifacts, once per storage. A failing check counts as "not there"
    /// (that backend may not even be configured for this target), except for
    /// the backend the lock recorded: then the failure is the answer, since a
    /// failing check is never taken for "missing".
    pub fn stored_elsewhere(
        &self,
        plan: &Plan<'_>,
        unit: &Unit<'_>,
        lock: &Lock,
    ) -> Result<Option<String>, String> {
        let Some(declared) = self.registry.get(&unit.backend.name) else {
            return Ok(None);
        };
        let recorded = lock
            .get(&unit.scope(), unit.name())
            .and_then(|entry| entry.backend.clone());
        let relevant = |backend: &Backend| {
            backend.is_shipped()
                || recorded.as_deref() == Some(backend.name.as_str())
                || plan.uses_backend(&backend.name)
        };
        let mut seen = std::collections::BTreeSet::from([declared.storage.clone()]);
        let candidates = recorded
            .iter()
            .filter_map(|name| self.registry.get(name))
            .chain(self.registry.iter().filter(|b| relevant(b)));
        for backend in candidates {
            if !seen.insert(backend.storage.clone()) {
                continue;
            }
            let Some(scripts) = backend
                .section(unit.context())
                .and_then(|section| section.scripts.as_ref())
            else {
                continue;
            };
            let moved = unit.with_backend(&backend.name);
            match script::check(&moved, backend, scripts, &self.script_env) {
                Ok(CheckOutcome::Stored | CheckOutcome::RecipientsChanged) => {
                    return Ok(Some(backend.name.clone()));
                }
                Ok(CheckOutcome::NeedsGeneration) => {}
                Err(error) if recorded.as_deref() == Some(backend.name.as_str()) => {
                    return Err(format!(
                        "declared backend `{}` does not store it, and backend `{}`, which artifacts.lock says stored it, cannot tell: {}",
                        unit.backend.name,
                        backend.name,
                        error_chain(&error)
                    ));
                }
                Err(error) => tracing::debug!(
                    "{}: backend `{}` cannot tell whether it stores it: {}",
                    unit.label(),
                    backend.name,
                    error_chain(&error)
                ),
            }
        }
        Ok(None)
    }

    /// Checks the units in `selected` on up to `jobs` threads; results in the same order.
    pub fn statuses(
        &self,
        plan: &Plan<'_>,
        selected: &[UnitId],
        lock: &Lock,
        jobs: usize,
    ) -> Vec<Status> {
        // Every script of this batch prepares its inputs in one scratch directory.
        let _scratch = self.script_env.scratch.hold();
        // Backends with `check-all` answer for all of a target's units in one
        // run, in-process ones in one call (a SOPS file is read once).
        // By the backend's and the target's address: both outlive the run,
        // and comparing names would cost more than the batch saves.
        let mut batches: IndexMap<(usize, usize), Vec<usize>> = IndexMap::new();
        for (slot, &index) in selected.iter().enumerate() {
            let unit = &plan[index];
            if let Ok(Storage::Scripts(backend, scripts)) = self.storage(unit)
                && (scripts.check_all.is_some()
                    || matches!(scripts.check, Script::InProcess { .. }))
                && let Some(target) = unit.targets.one()
            {
                let key = (
                    std::ptr::from_ref(backend) as usize,
                    std::ptr::from_ref(*target) as usize,
                );
                batches.entry(key).or_default().push(slot);
            }
        }
        let batches: Vec<Vec<usize>> = batches.into_values().collect();
        // A batch's statuses are made by the worker that checked it, while
        // the others still check theirs.
        let batch_statuses = parallel(batches.len(), jobs, |at| {
            let units: Vec<&Unit<'_>> = batches[at].iter().map(|&s| &plan[selected[s]]).collect();
            let Ok(Storage::Scripts(backend, scripts)) = self.storage(units[0]) else {
                unreachable!("batched units have scripts")
            };
            let scope = units[0].scope();
            let answers: Vec<Answer> = match scripts.check_all.as_ref() {
                None => script::check_in_process(&units, backend, scripts, &self.script_env)
                    .into_iter()
                    .map(|answer| answer.map_err(|error| error_chain(&error)))
                    .collect(),
                Some(script) => {
                    match script::check_all(&units, backend, script, &self.script_env) {
                        Ok(outcomes) => outcomes.into_iter().map(|o| Ok((o, None))).collect(),
                        Err(error) => vec![Err(error_chain(&error)); units.len()],
                    }
                }
            };
            batches[at]
                .iter()
                .zip(answers)
                .map(|(&slot, answer)| {
                    self.status_in(plan, selected[slot], &scope, lock, Some(answer))
                })
                .collect::<Vec<_>>()
        });
        let mut statuses: Vec<Option<Status>> = (0..selected.len()).map(|_| None).collect();
        for (slots, made) in batches.iter().zip(batch_statuses) {
            for (&slot, status) in slots.iter().zip(made) {
                statuses[slot] = Some(status);
            }
        }
        let rest: Vec<usize> = (0..selected.len())
            .filter(|&slot| statuses[slot].is_none())
            .collect();
        let made = parallel(rest.len(), jobs, |at| {
            self.status_with(plan, selected[rest[at]], lock, None)
        });
        for (slot, status) in rest.into_iter().zip(made) {
            statuses[slot] = Some(status);
        }
        statuses
            .into_iter()
            .map(|status| status.expect("every unit has a status"))
            .collect()
    }

    /// Where a unit's public file `name` is kept in the public store (it may not be stored yet).
    pub fn public_file_path(&self, unit: &Unit<'_>, name: &str) -> PathBuf {
        public::artifact_dir(&self.settings.root, unit).join(name)
    }

    /// A unit's public file `name` as stored (no key needed); `None` when it is not stored.
    pub fn read_public_file(
        &self,
        unit: &Unit<'_>,
        name: &str,
    ) -> std::io::Result<Option<Vec<u8>>> {
        public::read(&self.settings.root, unit, name)
    }

    /// Whether a unit's backend stores nothing (so there is nothing to generate ahead of time).
    pub fn is_passthrough(&self, unit: &Unit<'_>) -> bool {
        matches!(self.storage(unit), Ok(Storage::Passthrough))
    }

    /// Generates and serializes the request's units: up to
    /// [`GenerateRequest::jobs`] generators at once, each unit once all its
    /// dependencies in the request are stored (dependents of a failure are
    /// skipped, naming it). Units an in-process backend keeps in one store
    /// file (sops-nix: a target's file) are stored together as soon as the
    /// last of them is generated or failed, while other generators run (the
    /// plan's order is target by target, so files complete one after the
    /// other); earlier only once no generator waits to start and a
    /// dependent waits for one of them or two seconds passed (a slow
    /// generator does not hold them back). Others are stored as soon as
    /// they are generated; what is ready when the storing thread is free is
    /// stored in one round, the stores of different targets at once. Every
    /// change to the lock goes to its journal as it is made, and the lock is
    /// written once, at the end. Returns per-unit results in plan order.
    pub fn generate(
        &self,
        request: &GenerateRequest<'_, '_>,
        lock: &mut Lock,
    ) -> Vec<(UnitId, Result<(), EngineError>)> {
        let plan = request.plan;
        let mut order = request.units.to_vec();
        order.sort_unstable();
        order.dedup();
        let mut journal = match lock.start_journal() {
            Ok(journal) => journal,
            Err(error) => {
                let message = error_chain(&error);
                return order
                    .into_iter()
                    .map(|id| {
                        let result = Err(EngineError::Io {
                            action: "record in artifacts.lock".into(),
                            source: std::io::Error::other(message.clone()),
                        });
                        request.observer.finished(&plan[id], &result);
                        (id, result)
                    })
                    .collect();
            }
        };
        let results = self.schedule(request, &order, lock, &mut journal);
        if let Err(error) = lock.finish_journal(journal) {
            // Everything stored is in the journal, which the next run reads.
            tracing::warn!("{}", error_chain(&error));
        }
        results.into_iter().collect()
    }

    /// Runs the generators of `order` on worker threads and stores what
    /// they make on this one (see [`Engine::generate`]).
    fn schedule(
        &self,
        request: &GenerateRequest<'_, '_>,
        order: &[UnitId],
        lock: &mut Lock,
        journal: &mut Journal,
    ) -> BTreeMap<UnitId, Result<(), EngineError>> {
        let plan = request.plan;
        let in_run: BTreeSet<UnitId> = order.iter().copied().collect();
        let mut dependents: BTreeMap<UnitId, Vec<UnitId>> = BTreeMap::new();
        let mut waiting: BTreeMap<UnitId, usize> = BTreeMap::new();
        for &id in order {
            let deps: BTreeSet<UnitId> = plan[id]
                .dependencies
                .iter()
                .copied()
                .filter(|d| in_run.contains(d))
                .collect();
            for &dependency in &deps {
                dependents.entry(dependency).or_default().push(id);
            }
            waiting.insert(id, deps.len());
        }
        let mut batch_of = BTreeMap::new();
        let mut unsettled: BTreeMap<BatchKey, usize> = BTreeMap::new();
        for &id in order {
            if let Some(key) = self.batch_key(&plan[id]) {
                *unsettled.entry(key.clone()).or_default() += 1;
                batch_of.insert(id, key);
            }
        }
        let queue = Queue::default();
        let outputs: Mutex<BTreeMap<UnitId, ArtifactFiles>> = Mutex::new(BTreeMap::new());
        let mut state = RunState {
            results: BTreeMap::new(),
            outstanding: 0,
            dependents,
            waiting,
            batch_of,
            unsettled,
            settled: Vec::new(),
        };
        for &id in order {
            if state.waiting[&id] == 0 {
                state.outstanding += 1;
                queue.push(id);
            }
        }
        let workers = request.jobs.clamp(1, order.len().max(1));
        // One `/etc` for every sandbox of the run; without it, one bind per entry.
        let etc = match request.sandbox {
            Sandbox::Bwrap(_) => EtcView::create()
                .inspect_err(|error| tracing::debug!("no /etc view for the sandbox: {error}"))
                .ok(),
            Sandbox::Off => None,
        };
        std::thread::scope(|scope| {
            let (sender, receiver) = std::sync::mpsc::channel();
            for _ in 0..workers {
                let sender = sender.clone();
                let (queue, outputs, etc) = (&queue, &outputs, etc.as_ref());
                scope.spawn(move || {
                    while let Some((id, emptied)) = queue.pop() {
                        // The storing thread may be waiting for this to
                        // start its checkpoint clock (batched units wait
                        // only while generators are yet to start).
                        if emptied && sender.send(None).is_err() {
                            return;
                        }
                        let generated = match self.storage(&plan[id]) {
                            Err(error) => Err(error),
                            // A backend that stores nothing: the output is checked, and that is all.
                            Ok(Storage::Passthrough) => {
                                self.produce(request, id, outputs, etc).map(|_| None)
                            }
                            Ok(Storage::Scripts(..)) => self
                                .produce(request, id, outputs, etc)
                                .map(|(scratch, dirs)| {
                                    Some(Generated {
                                        _scratch: scratch,
                                        dirs,
                                    })
                                }),
                        };
                        if sender.send(Some((id, generated))).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(sender);
            let mut batches: BTreeMap<BatchKey, Vec<(UnitId, Generated)>> = BTreeMap::new();
            // Since when batched units wait with no generator left to start.
            let mut since: Option<Instant> = None;
            // Batched units whose dependents wait for them to be stored.
            let mut blocking = 0usize;
            loop {
                let idle = queue.is_empty();
                if batches.is_empty() || !idle {
                    since = None;
                } else {
                    since.get_or_insert_with(Instant::now);
                }
                let due = !batches.is_empty()
                    && idle
                    && (state.outstanding == 0
                        || blocking > 0
                        || since.is_some_and(|t| t.elapsed() >= CHECKPOINT));
                if due {
                    let groups = std::mem::take(&mut batches).into_values().collect();
                    self.store_round(request, lock, journal, &mut state, &queue, groups);
                    since = None;
                    blocking = 0;
                    continue;
                }
                if state.outstanding == 0 {
                    break;
                }
                let message = match since {
                    None => receiver.recv().map_err(|_| ()),
                    Some(t) => {
                        match receiver.recv_timeout(CHECKPOINT.saturating_sub(t.elapsed())) {
                            Ok(message) => Ok(message),
                            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(()),
                        }
                    }
                };
                let Ok(first) = message else {
                    break;
                };
                // Whatever else is generated by now is stored in the same
                // round: stores of different targets overlap (store_groups).
                // `None` says the queue emptied: the loop looks again.
                let mut messages: Vec<_> = first.into_iter().collect();
                messages.extend(receiver.try_iter().flatten());
                let mut groups = Vec::new();
                for (id, generated) in messages {
                    state.outstanding -= 1;
                    state.settle(id);
                    match generated {
                        Err(error) => state.complete(request, &queue, id, Err(error)),
                        Ok(None) => state.complete(request, &queue, id, Ok(())),
                        Ok(Some(generated)) => match state.batch_of.get(&id) {
                            Some(key) => {
                                if state.dependents.contains_key(&id) {
                                    blocking += 1;
                                }
                                batches
                                    .entry(key.clone())
                                    .or_default()
                                    .push((id, generated));
                            }
                            None => groups.push(vec![(id, generated)]),
                        },
                    }
                }
                // A store file whose units are all generated is written now,
                // while the other generators run, not after the last one.
                loop {
                    while let Some(key) = state.settled.pop() {
                        let Some(group) = batches.remove(&key) else {
                            continue;
                        };
                        blocking -= group
                            .iter()
                            .filter(|(id, _)| state.dependents.contains_key(id))
                            .count();
                        groups.push(group);
                    }
                    if groups.is_empty() {
                        break;
                    }
                    let round = std::mem::take(&mut groups);
                    self.store_round(request, lock, journal, &mut state, &queue, round);
                }
            }
            queue.close();
        });
        state.results
    }

    /// Stores generated groups (one unit each, or the units of one store
    /// file) in one round ([`Engine::store_groups`]) and completes them;
    /// their scratch directories go afterwards.
    fn store_round(
        &self,
        request: &GenerateRequest<'_, '_>,
        lock: &mut Lock,
        journal: &mut Journal,
        state: &mut RunState,
        queue: &Queue,
        groups: Vec<Vec<(UnitId, Generated)>>,
    ) {
        let refs: Vec<Vec<(UnitId, &GeneratorDirs)>> = groups
            .iter()
            .map(|group| group.iter().map(|(id, g)| (*id, &g.dirs)).collect())
            .collect();
        for (id, result) in self.store_groups(request, lock, journal, &refs) {
            state.complete(request, queue, id, result);
        }
    }

    /// The backend and store file a unit is stored in together with others,
    /// or `None` when it is stored on its own.
    fn batch_key(&self, unit: &Unit<'_>) -> Option<BatchKey> {
        match self.storage(unit).ok()? {
            Storage::Passthrough => None,
            Storage::Scripts(backend, scripts) => {
                script::store_file(unit, backend, scripts, &self.script_env)
                    .map(|file| (backend.name.clone(), file))
            }
        }
    }

    /// Stores `group` (one unit, or units sharing a store file) and records
    /// each in the lock. Secret and public files are stored one after the
    /// other: until both are, a unit's lock entry says so (a kill in
    /// between must not read as ok). A group that fails as a whole is
    /// stored unit by unit, so one bad artifact does not fail its neighbours.
    fn store_group(
        &self,
        request: &GenerateRequest<'_, '_>,
        lock: &mut Lock,
        journal: &mut Journal,
        group: &[(UnitId, &GeneratorDirs)],
    ) -> Vec<(UnitId, Result<(), EngineError>)> {
        let mut done = Vec::new();
        if let Some(prepared) = self.prepare_group(request, lock, journal, group, &mut done) {
            let written = self.write_group(request, &prepared);
            self.finish_group(request, lock, journal, &prepared, written, &mut done);
        }
        done
    }

    /// Stores several groups ([`Engine::store_group`]) at once: those of
    /// different scopes (targets, or shared) whose backend runs in this
    /// process write at the same time, on threads, so one store's waits for
    /// the disk (fsyncs) overlap another's; the groups of one scope, and
    /// backend scripts (the contract runs them one at a time), one after
    /// the other. The lock is only touched here, before and after.
    fn store_groups(
        &self,
        request: &GenerateRequest<'_, '_>,
        lock: &mut Lock,
        journal: &mut Journal,
        groups: &[Vec<(UnitId, &GeneratorDirs)>],
    ) -> Vec<(UnitId, Result<(), EngineError>)> {
        let mut done = Vec::new();
        let prepared: Vec<Prepared<'_, '_>> = groups
            .iter()
            .filter_map(|group| self.prepare_group(request, lock, journal, group, &mut done))
            .collect();
        // Each lane is written in order by one thread; scripts share one lane.
        let mut lanes: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
        for (at, group) in prepared.iter().enumerate() {
            let (backend, scripts) = group.storage;
            let first = &request.plan[group.members[0].0];
            let lane = matches!(scripts.serialize, Script::InProcess { .. })
                .then(|| first.scope())
                .filter(|_| backend.in_process.is_some());
            lanes.entry(lane).or_default().push(at);
        }
        if lanes.len() <= 1 {
            for group in &prepared {
                let written = self.write_group(request, group);
                self.finish_group(request, lock, journal, group, written, &mut done);
            }
            return done;
        }
        // Each group is recorded as soon as it is written, as one at a time
        // would be: a kill loses no more records than before.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            for lane in lanes.values() {
                let (sender, prepared) = (sender.clone(), &prepared);
                scope.spawn(move || {
                    for &at in lane {
                        let written = self.write_group(request, &prepared[at]);
                        if sender.send((at, written)).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(sender);
            for (at, written) in receiver {
                self.finish_group(request, lock, journal, &prepared[at], written, &mut done);
            }
        });
        done
    }

    /// The first part of [`Engine::store_group`]: the lock entry of each
    /// member (those whose declaration cannot be read fail into `done`), and
    /// the marks of members with public files recorded (and synced) in the
    /// journal. `None` when nothing is left to store.
    fn prepare_group<'g>(
        &self,
        request: &GenerateRequest<'_, '_>,
        lock: &mut Lock,
        journal: &mut Journal,
        group: &[(UnitId, &'g GeneratorDirs)],
        done: &mut Vec<(UnitId, Result<(), EngineError>)>,
    ) -> Option<Prepared<'g, 'a>> {
        let plan = request.plan;
        let mut members = Vec::new();
        for &(id, dirs) in group {
            let unit = &plan[id];
            request.observer.step(unit, "serializing");
            // The dependency entries are current now, so the declaration is
            // too. The entry is made once: the backend stores its stamp.
            match unit.declared(plan, lock) {
                Ok(declared) => members.push((
                    id,
                    dirs,
                    declared.entry(&unit.backend.name, Some(crate::lockfile::now())),
                )),
                Err(error) => done.push((
                    id,
                    Err(io(format!("read the generator of `{}`", unit.name()))(
                        error,
                    )),
                )),
            }
        }
        let &(first, _, _) = members.first()?;
        let storage =
            match self.storage(&plan[first]) {
                Ok(Storage::Scripts(backend, scripts)) => (backend, scripts),
                Ok(Storage::Passthrough) => {
                    done.extend(members.iter().map(|(id, _, _)| (*id, Ok(()))));
                    return None;
                }
                Err(error) => {
                    let message = error.to_string();
                    done.extend(members.iter().map(|(id, _, _)| {
                        (*id, Err(EngineError::UnknownBackend(message.clone())))
                    }));
                    return None;
                }
            };
        let has_public = |id: UnitId| public::public_files(&plan[id]).next().is_some();
        let mut previous = Vec::new();
        let mut marks = Vec::new();
        for (id, _, entry) in &members {
            if !has_public(*id) {
                continue;
            }
            let unit = &plan[*id];
            let before = lock.get(&unit.scope(), unit.name()).cloned();
            let mut marked = before.clone().unwrap_or_else(|| entry.clone());
            marked.incomplete = true;
            marks.push((unit.scope(), unit.name().to_owned(), Some(marked)));
            previous.push((unit.scope(), unit.name().to_owned(), before));
        }
        if !marks.is_empty()
            && let Err(error) = lock.record(journal, marks, true)
        {
            let message = error_chain(&error);
            done.extend(members.iter().map(|(id, _, _)| {
                (
                    *id,
                    Err(io("record in artifacts.lock")(std::io::Error::other(
                        message.clone(),
                    ))),
                )
            }));
            return None;
        }
        Some(Prepared {
            members,
            storage,
            previous,
        })
    }

    /// The middle part of [`Engine::store_group`], which touches no lock:
    /// serializes the group, then writes each member's public files.
    fn write_group(&self, request: &GenerateRequest<'_, '_>, group: &Prepared<'_, '_>) -> Written {
        let plan = request.plan;
        let (backend, scripts) = group.storage;
        let members = &group.members;
        let stamps: Vec<Stamp> = members.iter().map(|(_, _, e)| e.stamp()).collect();
        let stored = if let [(id, dirs, _)] = members.as_slice() {
            script::store(
                &plan[*id],
                backend,
                scripts,
                ScriptKind::Serialize,
                &self.script_env,
                &dirs.out,
                stamps.first(),
            )
        } else {
            let units: Vec<(&Unit<'_>, &Path, Option<&Stamp>)> = members
                .iter()
                .zip(&stamps)
                .map(|((id, dirs, _), stamp)| (&plan[*id], dirs.out.as_path(), Some(stamp)))
                .collect();
            script::serialize_all(&units, backend, scripts, &self.script_env)
        };
        stored.map(|()| {
            members
                .iter()
                .map(|(id, dirs, _)| {
                    let unit = &plan[*id];
                    public::store(&self.settings.root, unit, &dirs.out).map_err(io(format!(
                        "write the public files of {} to `{}` (the secret files are stored; `check` reports the pair as an error until `artifacts regenerate {}` succeeds)",
                        unit.label(),
                        public::artifact_dir(&self.settings.root, unit).display(),
                        unit.name()
                    )))
                })
                .collect()
        })
    }

    /// The last part of [`Engine::store_group`]: records what was stored in
    /// the lock, or undoes the marks of a group that stored nothing; a group
    /// of several that failed is stored again unit by unit.
    fn finish_group(
        &self,
        request: &GenerateRequest<'_, '_>,
        lock: &mut Lock,
        journal: &mut Journal,
        group: &Prepared<'_, '_>,
        written: Written,
        done: &mut Vec<(UnitId, Result<(), EngineError>)>,
    ) {
        let plan = request.plan;
        let Prepared {
            members, previous, ..
        } = group;
        let public = match written {
            Ok(public) => public,
            Err(error) => {
                // A serialize that failed by itself kept the previous version
                // (the backend contract), which still matches the previous
                // public files; one killed half-way may have stored the new one.
                if !previous.is_empty() && !error.may_be_half_done() {
                    let _ = lock.record(journal, previous.clone(), false);
                }
                if members.len() > 1 {
                    for &(id, dirs, _) in members {
                        done.extend(self.store_group(request, lock, journal, &[(id, dirs)]));
                    }
                    return;
                }
                done.push((members[0].0, Err(error.into())));
                return;
            }
        };
        let mut entries = Vec::new();
        let start = done.len();
        for (&(id, _, ref entry), public) in members.iter().zip(public) {
            let unit = &plan[id];
            if let Err(error) = public {
                done.push((id, Err(error)));
                continue;
            }
            entries.push((unit.scope(), unit.name().to_owned(), Some(entry.clone())));
            done.push((id, Ok(())));
        }
        if let Err(error) = lock.record(journal, entries, false) {
            let message = error_chain(&error);
            for (_, result) in &mut done[start..] {
                if result.is_ok() {
                    *result = Err(io("record in artifacts.lock")(std::io::Error::other(
                        message.clone(),
                    )));
                }
            }
        }
    }

    /// Stores files that come from a person instead of a generator
    /// (`artifacts set`, `edit`, `import`): `out` holds every declared file of
    /// the unit. They are checked like a generator's output, stored together
    /// by one serialize (the all-files-together guarantee of generation), and
    /// recorded in the lock as put in by hand (`provenance`), with the
    /// current time as generation time so that dependents become stale.
    pub fn store_by_hand(
        &self,
        plan: &Plan<'_>,
        index: UnitId,
        out: &Path,
        lock: &mut Lock,
        provenance: Provenance,
    ) -> Result<(), EngineError> {
        let unit = &plan[index];
        let storage = match self.storage(unit)? {
            Storage::Passthrough => {
                return Err(EngineError::StoresNothing {
                    artifact: unit.label(),
                    backend: unit.backend.name.clone(),
                });
            }
            Storage::Scripts(backend, scripts) => (backend, scripts),
        };
        generator::validate_output(unit, out)?;
        // Known secrets from now on: a backend script echoing one is redacted.
        artifacts_os::redact::register_dir(out, generator::MAX_FILE_SIZE, &|name| {
            unit.artifact.files.get(name).is_some_and(|f| !f.secret)
        });
        self.store_output(plan, index, storage, out, lock, Some(provenance))
    }

    /// Serializes the complete output `out` of a unit, writes its public
    /// files, and records it in the lock.
    fn store_output(
        &self,
        plan: &Plan<'_>,
        index: UnitId,
        (backend, scripts): (&Backend, &Scripts),
        out: &Path,
        lock: &mut Lock,
        provenance: Option<Provenance>,
    ) -> Result<(), EngineError> {
        let unit = &plan[index];
        // The dependency entries are current now, so the declaration is too.
        // The entry is made once: the backend stores its stamp.
        let entry = unit
            .declared(plan, lock)
            .map_err(io(format!("read the generator of `{}`", unit.name())))?
            .entry_from(&unit.backend.name, Some(crate::lockfile::now()), provenance);
        // Secret and public files are stored one after the other: until both
        // are, the lock entry says so (a kill in between must not read as ok).
        let previous = lock.get(&unit.scope(), unit.name()).cloned();
        let has_public = public::public_files(unit).next().is_some();
        if has_public {
            let mut marked = previous.clone().unwrap_or_else(|| entry.clone());
            marked.incomplete = true;
            lock.set(&unit.scope(), unit.name(), marked);
            lock.save()?;
        }
        if let Err(error) = script::store(
            unit,
            backend,
            scripts,
            ScriptKind::Serialize,
            &self.script_env,
            out,
            Some(&entry.stamp()),
        ) {
            // A serialize that failed by itself kept the previous version
            // (the backend contract), which still matches the previous public
            // files; one killed half-way may have stored the new one.
            if has_public && !error.may_be_half_done() {
                match previous {
                    Some(entry) => lock.set(&unit.scope(), unit.name(), entry),
                    None => lock.remove(&unit.scope(), unit.name()),
                }
                lock.save()?;
            }
            return Err(error.into());
        }
        public::store(&self.settings.root, unit, out).map_err(io(format!(
            "write the public files of {} to `{}` (the secret files are stored; `check` reports the pair as an error until `artifacts regenerate {}` succeeds)",
            unit.label(),
            public::artifact_dir(&self.settings.root, unit).display(),
            unit.name()
        )))?;
        lock.set(&unit.scope(), unit.name(), entry);
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
        request: &GenerateRequest<'_, '_>,
        index: UnitId,
        outputs: &Mutex<BTreeMap<UnitId, ArtifactFiles>>,
        etc: Option<&EtcView>,
    ) -> Result<(Scratch, GeneratorDirs), EngineError> {
        let plan = request.plan;
        let unit = &plan[index];
        let (scratch, dirs) = GeneratorDirs::create(&self.settings.root, etc)
            .map_err(io("create the generator's scratch directory"))?;
        let prompt_names: Vec<&String> = unit.artifact.prompts.keys().collect();
        request
            .answers
            .write(unit.name(), &prompt_names, &dirs.prompts)
            .map_err(io("write prompt answers"))?;
        for &dependency in &unit.dependencies {
            let kept = outputs
                .lock()
                .expect("no panics while holding")
                .get(&dependency)
                .cloned();
            let files = match kept {
                Some(files) => files,
                None => self.deserialize(plan, dependency)?,
            };
            let dir = dirs.input.join(plan[dependency].name());
            std::fs::create_dir(&dir).map_err(io("create $in directory"))?;
            for (name, content) in &files {
                write_private(&dir.join(name), content).map_err(io("write $in files"))?;
            }
        }
        request.observer.step(unit, "generating");
        generator::run(
            unit,
            request.sandbox,
            &dirs,
            &self.settings.log_level,
            self.settings.timeouts.generator,
        )?;
        if plan.has_dependents(index) {
            let files = generator::read_output(unit, &dirs.out)?;
            outputs
                .lock()
                .expect("no panics while holding")
                .insert(index, files);
        }
        Ok((scratch, dirs))
    }

    /// Installs the secret files a backend fetched on the machine itself
    /// (openbao: read with the host's own credentials) at their declared
    /// paths under `into`, with owner, group and mode; a file whose content
    /// differs is replaced atomically, one in place is left alone. Public
    /// files are the repository's (the Nix module installs them): skipped.
    pub fn install_fetched(
        &self,
        unit: &Unit<'_>,
        secret: &ArtifactFiles,
        into: &InstallRoot<'_>,
    ) -> Result<Activated, EngineError> {
        let unit = &unit.declared_by(into.target);
        let system = into.system();
        let files = install::destinations(unit.artifact, into.root, into.env)?;
        let mut done = Vec::new();
        for ((destination, spec), name) in files.iter().zip(unit.artifact.files.keys()) {
            if !spec.secret {
                continue;
            }
            let content = secret
                .iter()
                .find(|(fetched, _)| fetched == name)
                .map(|(_, content)| content)
                .ok_or_else(|| EngineError::Unavailable {
                    artifact: unit.label(),
                    reason: format!("the backend returned no file `{name}`"),
                })?;
            let outcome = install::install_exact(into.root, destination, spec, content, system)?;
            done.push((destination.clone(), outcome));
        }
        Ok(done)
    }

    /// Generates the request's passthrough (`dummy`) units and installs
    /// their files at their declared paths under `into`, with their owner,
    /// group and mode. A unit whose files are all in place is left alone
    /// (owner/group/mode corrected if needed); a failing generator leaves the
    /// previous files untouched. NixOS units get root-owned `0755` parent
    /// directories, Home Manager ones user `0700` ones.
    pub fn activate(
        &self,
        request: &GenerateRequest<'_, '_>,
        into: &InstallRoot<'_>,
    ) -> Vec<(UnitId, Result<Activated, EngineError>)> {
        let plan = request.plan;
        let outputs = Mutex::new(BTreeMap::new());
        let mut failed: BTreeSet<UnitId> = BTreeSet::new();
        let mut results = Vec::new();
        for &index in request.units {
            let unit = &plan[index];
            let result = match unit.dependencies.iter().find(|d| failed.contains(d)) {
                Some(&dependency) => Err(EngineError::DependencyFailed {
                    dependency: plan[dependency].name().to_owned(),
                }),
                None => self.activate_one(request, into, index, &outputs),
            };
            if result.is_err() {
                failed.insert(index);
            }
            results.push((index, result));
        }
        results
    }

    /// The units of `selected` whose files are not all in place under
    /// `into`: those [`Engine::activate`] generates, so whose prompts need
    /// answers.
    pub fn pending_activation(
        &self,
        plan: &Plan<'_>,
        selected: &[UnitId],
        into: &InstallRoot<'_>,
    ) -> Result<Vec<UnitId>, EngineError> {
        let mut pending = Vec::new();
        for &index in selected {
            let unit = plan[index].declared_by(into.target);
            let files = install::destinations(unit.artifact, into.root, into.env)?;
            if !install::all_in_place(into.root, &files)? {
                pending.push(index);
            }
        }
        Ok(pending)
    }

    fn activate_one(
        &self,
        request: &GenerateRequest<'_, '_>,
        into: &InstallRoot<'_>,
        index: UnitId,
        outputs: &Mutex<BTreeMap<UnitId, ArtifactFiles>>,
    ) -> Result<Activated, EngineError> {
        let plan = request.plan;
        let root = into.root;
        let unit = &plan[index].declared_by(into.target);
        let system = into.system();
        let files = install::destinations(unit.artifact, root, into.env)?;
        let produced = if install::all_in_place(root, &files)? {
            // Dependents read what is installed, not a fresh (different) generation.
            if plan.has_dependents(index) {
                let installed = files
                    .iter()
                    .zip(unit.artifact.files.keys())
                    .map(|((path, _), name)| {
                        install::read_installed(root, path)
                            .map(|bytes| (name.clone(), zeroize::Zeroizing::new(bytes)))
                    })
                    .collect::<Result<ArtifactFiles, _>>()?;
                outputs
                    .lock()
                    .expect("no panics while holding")
                    .insert(index, installed);
            }
            None
        } else {
            Some(self.produce(request, index, outputs, None)?)
        };
        let mut done = Vec::new();
        for ((destination, spec), name) in files.iter().zip(unit.artifact.files.keys()) {
            let read = || match &produced {
                Some((_, dirs)) => std::fs::read(dirs.out.join(name)),
                None => Err(std::io::Error::other("no generated file")),
            };
            let outcome = install::install(root, destination, spec, &read, system)?;
            done.push((destination.clone(), outcome));
        }
        Ok(done)
    }

    /// Restores a unit's files: secret ones through the backend's
    /// `deserialize`, public ones from the public store.
    pub fn deserialize(
        &self,
        plan: &Plan<'_>,
        index: UnitId,
    ) -> Result<ArtifactFiles, EngineError> {
        let unit = &plan[index];
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
            None,
        )?;
        public::restore(&self.settings.root, unit, out).map_err(io(format!(
            "read the public files of {} from `{}`",
            unit.label(),
            public::artifact_dir(&self.settings.root, unit).display()
        )))?;
        generator::validate_output(unit, out)?;
        Ok(())
    }

    /// [`Engine::rekey`] for each of `units` whose recipients changed (looked
    /// at again right before, since units sharing a store file may have been
    /// re-encrypted with an earlier one): `Ok(true)` re-encrypted, `Ok(false)`
    /// nothing to do, in the order given. In-process backends with a batch
    /// ([`crate::store::StoreBackend::rekey_all`]) get all their units at
    /// once and spread them over `jobs` threads themselves; units of other
    /// in-process backends run on up to `jobs` threads, one target per
    /// thread at a time; those of script backends, whose stores we cannot
    /// see into, one after another. `current` are the other selected
    /// units, stored for their configured recipients: a batch may clean up
    /// after a killed run in their stores.
    pub fn rekey_units(
        &self,
        plan: &Plan<'_>,
        units: &[UnitId],
        current: &[UnitId],
        lock: &Lock,
        jobs: usize,
    ) -> Vec<Result<bool, EngineError>> {
        let mut results: Vec<Option<Result<bool, EngineError>>> =
            (0..units.len()).map(|_| None).collect();
        // Per backend with an in-process batch: its units' slots, its current units.
        type Batch<'u, 'p> = (Vec<usize>, Vec<&'u Unit<'p>>);
        let mut batches: BTreeMap<&str, Batch<'_, '_>> = BTreeMap::new();
        let in_process = |index: UnitId| match self.storage(&plan[index]) {
            Ok(Storage::Scripts(backend, _)) if backend.in_process.is_some() => {
                Some(backend.name.as_str())
            }
            _ => None,
        };
        for (at, &index) in units.iter().enumerate() {
            if let Some(name) = in_process(index) {
                batches.entry(name).or_default().0.push(at);
            }
        }
        for &index in current {
            if let Some(name) = in_process(index) {
                batches.entry(name).or_default().1.push(&plan[index]);
            }
        }
        for (slots, current) in batches.values() {
            let members: Vec<&Unit<'_>> = slots.iter().map(|&at| &plan[units[at]]).collect();
            let Some(first) = members.first().or(current.first()) else {
                continue;
            };
            let Ok(Storage::Scripts(backend, scripts)) = self.storage(first) else {
                continue;
            };
            if let Some(done) =
                script::rekey_all(&members, current, backend, scripts, &self.script_env, jobs)
            {
                for (&at, result) in slots.iter().zip(done) {
                    results[at] = Some(result.map_err(EngineError::from));
                }
            }
        }
        let rest: Vec<usize> = (0..units.len())
            .filter(|&at| results[at].is_none())
            .collect();
        let rest_units: Vec<UnitId> = rest.iter().map(|&at| units[at]).collect();
        for (at, result) in
            rest.into_iter()
                .zip(self.rekey_one_by_one(plan, &rest_units, lock, jobs))
        {
            results[at] = Some(result);
        }
        results
            .into_iter()
            .map(|r| r.expect("every unit done"))
            .collect()
    }

    /// [`Engine::rekey_units`] for backends without a batch: each unit
    /// checked again, then deserialized and serialized.
    fn rekey_one_by_one(
        &self,
        plan: &Plan<'_>,
        units: &[UnitId],
        lock: &Lock,
        jobs: usize,
    ) -> Vec<Result<bool, EngineError>> {
        let one = |index: UnitId| {
            if self.status(plan, index, lock) != Status::RecipientsChanged {
                return Ok(false);
            }
            self.rekey(plan, index, lock).map(|()| true)
        };
        let in_process = |index: UnitId| {
            matches!(
                self.storage(&plan[index]),
                Ok(Storage::Scripts(backend, _)) if backend.in_process.is_some()
            )
        };
        // The shipped stores keep a target's artifacts in one file (sops) or
        // each in its own directory (agenix), and a shared artifact apart:
        // a target's units go one after another (rekeying one re-encrypts
        // the file the others are in), different targets side by side.
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut sequential = Vec::new();
        for (at, &index) in units.iter().enumerate() {
            if !in_process(index) {
                sequential.push(at);
                continue;
            }
            let unit = &plan[index];
            let key = match unit.targets.one() {
                Some(_) => unit.scope(),
                None => format!("shared {}", unit.name()),
            };
            groups.entry(key).or_default().push(at);
        }
        let groups: Vec<Vec<usize>> = groups.into_values().collect();
        let mut results: Vec<Option<Result<bool, EngineError>>> =
            (0..units.len()).map(|_| None).collect();
        let done = parallel(groups.len(), jobs, |group| {
            groups[group]
                .iter()
                .map(|&at| one(units[at]))
                .collect::<Vec<_>>()
        });
        for (group, group_results) in groups.iter().zip(done) {
            for (&at, result) in group.iter().zip(group_results) {
                results[at] = Some(result);
            }
        }
        for at in sequential {
            results[at] = Some(one(units[at]));
        }
        results
            .into_iter()
            .map(|r| r.expect("every unit done"))
            .collect()
    }

    /// Re-encrypts a stored unit to its backend's current recipients without
    /// regenerating: deserialize, then serialize the same files. The lock entry
    /// (fingerprint, generation time) stays as it is, and is the stamp stored.
    pub fn rekey(&self, plan: &Plan<'_>, index: UnitId, lock: &Lock) -> Result<(), EngineError> {
        let unit = &plan[index];
        let (backend, scripts) = match self.storage(unit)? {
            Storage::Passthrough => return Ok(()),
            Storage::Scripts(backend, scripts) => (backend, scripts),
        };
        let scratch = Scratch::new("rekey").map_err(io("create a scratch directory"))?;
        let out = scratch.subdir("out").map_err(io("create $out"))?;
        self.deserialize_into(unit, &out)?;
        let stamp = lock.get(&unit.scope(), unit.name()).map(LockEntry::stamp);
        script::store(
            unit,
            backend,
            scripts,
            ScriptKind::Serialize,
            &self.script_env,
            &out,
            stamp.as_ref(),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::in_process::{Call, Checked, InProcess, StoreBackend, StoreError, Writable};
    use crate::registry::{Section, SectionKind};

    /// An in-process backend whose serialize waits (up to `wait`) for a
    /// second serialize to start, and counts how many ran at once.
    #[derive(Debug)]
    struct Meeting {
        /// Started, running now, most running at once.
        counts: Mutex<(usize, usize, usize)>,
        started: Condvar,
        wait: Duration,
    }

    impl StoreBackend for Meeting {
        fn check(&self, _call: &Call) -> Result<Checked, StoreError> {
            Ok(Checked::Missing)
        }
        fn serialize(&self, _call: &Call, _out: &Path) -> Result<(), StoreError> {
            let mut counts = self.counts.lock().unwrap();
            counts.0 += 1;
            counts.1 += 1;
            counts.2 = counts.2.max(counts.1);
            self.started.notify_all();
            let (mut counts, _) = self
                .started
                .wait_timeout_while(counts, self.wait, |c| c.0 < 2)
                .unwrap();
            counts.1 -= 1;
            Ok(())
        }
        fn deserialize(&self, _call: &Call, _out: &Path) -> Result<(), StoreError> {
            Ok(())
        }
        fn list(&self, _call: &Call) -> Result<Vec<String>, StoreError> {
            Ok(Vec::new())
        }
        fn remove(&self, _call: &Call) -> Result<(), StoreError> {
            Ok(())
        }
        fn writable(&self, _call: &Call) -> Result<Writable, StoreError> {
            Ok(Writable::Yes)
        }
    }

    /// Stores one generated unit per plan unit of `manifest` in one round
    /// (`store_groups`), each in its own group, with a [`Meeting`] backend;
    /// returns the results and how many serializes ran at once.
    fn store_round_of(manifest: &str, wait: Duration) -> (Vec<Result<(), String>>, usize) {
        let dir = tempfile::tempdir().unwrap();
        // Read for the lock entries' fingerprints.
        std::fs::write(dir.path().join("gen.sh"), "#!/bin/sh\n").unwrap();
        let model =
            artifacts_model::load::load_manifest_text(&dir.path().join("artifacts.toml"), manifest)
                .unwrap();
        let plan = Plan::new(&model).unwrap();
        let meeting = Arc::new(Meeting {
            counts: Mutex::new((0, 0, 0)),
            started: Condvar::new(),
            wait,
        });
        let script = |script| Script::InProcess {
            backend: "meet".into(),
            script,
        };
        let scripts = Scripts {
            check: script("check"),
            serialize: script("serialize"),
            deserialize: Some(script("deserialize")),
            list: None,
            remove: None,
            writable: None,
            check_all: None,
        };
        let mut registry = BackendRegistry::new();
        registry.add_fallback(Backend {
            name: "meet".into(),
            defined_in: PathBuf::from("<test>"),
            sections: [(
                SectionKind::Nixos,
                Section {
                    enabled: true,
                    scripts: Some(scripts),
                },
            )]
            .into(),
            config_keys: vec!["meet".into()],
            storage: "meet".into(),
            in_process: Some(InProcess(meeting.clone())),
        });
        let engine = Engine::new(
            &registry,
            Settings {
                root: dir.path().to_owned(),
                log_level: "error".into(),
                timeouts: Timeouts {
                    script: None,
                    generator: None,
                },
                self_exe: None,
                extra_env: Vec::new(),
            },
        );
        let mut lock = Lock::load(&dir.path().join("artifacts.lock")).unwrap();
        let mut journal = lock.start_journal().unwrap();
        let units: Vec<UnitId> = plan.iter().map(|(id, _)| id).collect();
        let answers = Answers::default();
        let request = GenerateRequest {
            plan: &plan,
            units: &units,
            answers: &answers,
            sandbox: &Sandbox::Off,
            observer: &Silent,
            jobs: 2,
        };
        let generated: Vec<(Scratch, GeneratorDirs)> = units
            .iter()
            .map(|_| {
                let (scratch, dirs) = GeneratorDirs::create(dir.path(), None).unwrap();
                std::fs::write(dirs.out.join("token"), "t").unwrap();
                (scratch, dirs)
            })
            .collect();
        let groups: Vec<Vec<(UnitId, &GeneratorDirs)>> = units
            .iter()
            .zip(&generated)
            .map(|(id, (_, dirs))| vec![(*id, dirs)])
            .collect();
        let done = engine.store_groups(&request, &mut lock, &mut journal, &groups);
        lock.finish_journal(journal).unwrap();
        let results = done
            .iter()
            .map(|(_, result)| result.as_ref().map(|_| ()).map_err(|e| error_chain(e)))
            .collect();
        let most = meeting.counts.lock().unwrap().2;
        (results, most)
    }

    /// Stores of different targets in one round run at once: the first
    /// waits for the second to start, which it would wait for in vain (a
    /// minute) if they ran one after the other.
    #[test]
    fn stores_of_different_targets_overlap() {
        let (results, most) = store_round_of(
            r#"
default.backend = "meet"
[nixos.m1]
[nixos.m2]
[artifacts.api]
targets = ["m1", "m2"]
generator = "gen.sh"
files.token = {}
"#,
            Duration::from_secs(60),
        );
        assert_eq!(results, [Ok(()), Ok(())]);
        assert_eq!(most, 2);
    }

    /// Stores of one target (one directory, one file) never overlap.
    #[test]
    fn stores_of_one_target_run_one_after_the_other() {
        let (results, most) = store_round_of(
            r#"
default.backend = "meet"
[nixos.m1]
[nixos.m1.artifacts.api]
generator = "gen.sh"
files.token = {}
[nixos.m1.artifacts.web]
generator = "gen.sh"
files.token = {}
"#,
            Duration::from_millis(300),
        );
        assert_eq!(results, [Ok(()), Ok(())]);
        assert_eq!(most, 1);
    }
}
