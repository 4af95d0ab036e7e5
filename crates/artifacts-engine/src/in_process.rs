//! Backends that run inside this process: one trait, [`StoreBackend`], that
//! the engine calls where it would run a backend's scripts.
//!
//! The shipped backends (agenix, sops-nix, dummy) implement it in the
//! `artifacts-backends` crate, and the binary registers them
//! ([`crate::BackendRegistry::add_fallback`] with a
//! [`Backend`](crate::backend::Backend) whose scripts are
//! [`Script::InProcess`](crate::backend::Script::InProcess)). A call carries
//! what a script would find in its environment, typed: the artifact, the
//! context, the targets with their backend configuration, the declared files,
//! the project root and where identities come from. The engine treats the
//! answers as it treats a script's exit codes, and shows a failure's message
//! redacted, as it shows a script's stderr.
//!
//! A `serialize` also gets the generation's [`Stamp`]: the fingerprint and
//! generation time the engine records in `artifacts.lock` for what it
//! stores. A backend whose store is shared beyond one checkout (openbao)
//! keeps it and reports it from `check` ([`Checked::StoredWith`]), so the
//! engine can tell when the store holds a generation this checkout's lock
//! does not record (another operator regenerated it).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use artifacts_model::{Context, TargetKind};

use crate::plan::Targets;

/// A backend implemented in Rust and called in this process.
///
/// Every method gets the [`Call`] a script of the same name would get in
/// its environment; `serialize` reads the generated files from `out`,
/// `deserialize` writes them there (mode 0600). Writes must be all or
/// nothing: a failed `serialize` leaves what was stored before.
pub trait StoreBackend: Send + Sync + fmt::Debug {
    /// Whether the call's artifact is stored and current.
    fn check(&self, call: &Call) -> Result<Checked, StoreError>;
    /// [`StoreBackend::check`] of several artifacts of `call`'s one target,
    /// one answer each, in their order: `call` is the first one's call, the
    /// others differ only in their artifact and files. The engine asks for a
    /// target's artifacts together, so a backend keeping them in one file
    /// reads it once and builds its view of the target once (a fleet's check
    /// asks 10,000 of them); the default asks one at a time.
    fn check_target(&self, call: &Call, artifacts: &[Asked]) -> Vec<Result<Checked, StoreError>> {
        let mut each = call.clone();
        artifacts
            .iter()
            .map(|asked| {
                each.artifact = Some(asked.artifact.clone());
                each.files.clone_from(&asked.files);
                self.check(&each)
            })
            .collect()
    }
    /// Stores the files in `out`.
    fn serialize(&self, call: &Call, out: &Path) -> Result<(), StoreError>;
    /// Writes the stored files into `out`.
    fn deserialize(&self, call: &Call, out: &Path) -> Result<(), StoreError>;
    /// The names of the artifacts stored for the call's targets (or shared).
    fn list(&self, call: &Call) -> Result<Vec<String>, StoreError>;
    /// Removes the call's artifact; nothing to remove is not an error.
    fn remove(&self, call: &Call) -> Result<(), StoreError>;
    /// Whether `serialize` could write with the identities at hand, asked
    /// before any prompt or generator runs.
    fn writable(&self, call: &Call) -> Result<Writable, StoreError>;

    /// The one store file a `serialize` of `call` rewrites as a whole when
    /// other artifacts live in it too (sops-nix: the target's file), or the
    /// directory whose artifacts a batch makes durable together (agenix:
    /// the target's directory), so the engine may store several artifacts
    /// with one [`StoreBackend::serialize_all`]; `None` (the default) when
    /// each artifact is stored on its own.
    fn store_file(&self, _call: &Call) -> Option<PathBuf> {
        None
    }

    /// Stores several artifacts whose [`StoreBackend::store_file`] is the
    /// same, each `(call, out)` as `serialize` would, in one write: all or
    /// nothing. The engine calls it only for backends that name a store
    /// file; the default stores them one after the other.
    fn serialize_all(&self, calls: &[(&Call, &Path)]) -> Result<(), StoreError> {
        calls
            .iter()
            .try_for_each(|(call, out)| self.serialize(call, out))
    }

    /// Re-encrypts the stored artifacts of `calls` to their current
    /// recipients in one batch, the plaintext never leaving this process,
    /// on up to `jobs` threads: per call `Ok(true)` re-encrypted,
    /// `Ok(false)` nothing to do (already current, or not stored). Each
    /// artifact is all or nothing, as with `serialize`. `current` are the
    /// run's other artifacts of this backend, stored for their configured
    /// recipients: nothing to re-encrypt, but the backend may remove what
    /// a killed run left in their stores. `None` (the default): the backend
    /// has no batch, and the engine rekeys each unit with `deserialize`
    /// then `serialize`.
    fn rekey_all(
        &self,
        _calls: &[Call],
        _current: &[Call],
        _jobs: usize,
    ) -> Option<Vec<Result<bool, StoreError>>> {
        None
    }
}

/// A registered [`StoreBackend`]; backends compare equal when they are the same object.
#[derive(Clone)]
pub struct InProcess(pub Arc<dyn StoreBackend>);

impl fmt::Debug for InProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for InProcess {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for InProcess {}

/// What `check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Checked {
    /// Stored for the configured recipients.
    Stored,
    /// Stored, with the [`Stamp`] its `serialize` was given (backends whose
    /// store other checkouts share); the engine compares it with the lock.
    StoredWith {
        /// The stored generation's stamp.
        stamp: Stamp,
    },
    /// Not stored, or incomplete: needs generation.
    Missing,
    /// Stored, but encrypted to other recipients than configured.
    RecipientsChanged {
        /// Which store, as a person reads it (`… is encrypted to other recipients than configured`).
        message: String,
    },
}

/// Which generation a `serialize` stores: exactly the fingerprint and
/// generation time the engine records for it in `artifacts.lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The lock entry's `fingerprint`.
    pub fingerprint: String,
    /// The lock entry's `generated_at` (RFC 3339, UTC); `None` for an
    /// adopted artifact, whose generation time is unknown.
    pub generated_at: Option<String>,
}

/// Whether `serialize` could write.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Writable {
    /// Yes.
    Yes,
    /// No, and why (which identity would do).
    No {
        /// The reason, naming the store.
        reason: String,
    },
}

/// One artifact of a [`StoreBackend::check_target`]: its name and declared
/// files, as its own call would carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// The artifact.
    pub artifact: String,
    /// The declared files, sorted by name.
    pub files: Vec<CallFile>,
}

/// One target of a call: what `$targets` lists.
#[derive(Debug, Clone, PartialEq)]
pub struct CallTarget {
    /// Machine, user or environment name.
    pub name: String,
    /// Its kind.
    pub kind: TargetKind,
    /// `artifacts.config.<backend>` of the target (`{}` when unset).
    pub config: serde_json::Value,
}

/// One declared file of a call: what `$inputs` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFile {
    /// The file's name.
    pub name: String,
    /// Whether it is secret (public files are kept in the public store).
    pub secret: bool,
}

/// Where identities come from: our environment, with the variables the
/// engine adds for every backend (`ARTIFACTS_IDENTITY` from `--identity`,
/// the sops variables pointing at unlocked copies) in place of ours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySources {
    overrides: Vec<(String, OsString)>,
}

impl KeySources {
    /// Our environment with `overrides` set.
    pub fn new(overrides: Vec<(String, OsString)>) -> KeySources {
        KeySources { overrides }
    }

    /// The variables a backend reads identities from, later entries winning.
    pub fn vars(&self) -> Vec<(String, OsString)> {
        let mut vars: Vec<(String, OsString)> = std::env::vars_os()
            .filter_map(|(k, v)| k.into_string().ok().map(|k| (k, v)))
            .filter(|(k, _)| !self.overrides.iter().any(|(o, _)| o == k))
            .collect();
        vars.extend(self.overrides.iter().cloned());
        vars
    }
}

/// One call of an in-process backend: what a script reads from its environment.
#[derive(Debug, Clone)]
pub struct Call {
    /// The name the backend is called by (`sops` and `sops-nix` are one backend).
    pub backend: String,
    /// The artifact; `None` for `list`, which runs for targets.
    pub artifact: Option<String>,
    /// The targets: all of a shared artifact's (or, for `list` and
    /// `remove` in the shared context, every declared target), or exactly one.
    pub targets: Targets<CallTarget>,
    /// The declared files, sorted by name (none for `list`).
    pub files: Vec<CallFile>,
    /// The project root.
    pub root: PathBuf,
    /// Where identities come from.
    pub identities: KeySources,
    /// For `serialize`: the generation being stored, as the lock records
    /// it; `None` for other scripts, and when the lock records nothing.
    pub stamp: Option<Stamp>,
}

impl Call {
    /// `$artifact_context`: `shared`, or the one target's kind.
    pub fn context(&self) -> Context {
        match &self.targets {
            Targets::Shared(_) => Context::Shared,
            Targets::One(target) => target.kind.context(),
        }
    }
}

/// Why an in-process backend failed: its own error (the message says what
/// and names the object; secrets never), and a suggested fix when it knows one.
#[derive(Debug)]
pub struct StoreError {
    error: Box<dyn std::error::Error + Send + Sync>,
    hint: Option<String>,
}

impl StoreError {
    /// Wraps a backend's error.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
        StoreError {
            error: error.into(),
            hint: None,
        }
    }

    /// Adds a suggested fix.
    pub fn with_hint(mut self, hint: Option<String>) -> StoreError {
        self.hint = hint;
        self
    }

    /// The suggested fix, if any.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}
