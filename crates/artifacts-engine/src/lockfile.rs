//! `artifacts.lock`: what was generated, from which declaration, and when.
//!
//! A JSON file next to the manifest, meant to be committed. It never holds a
//! secret: only fingerprints (SHA-256 over parts of the declaration, see
//! [`crate::plan::Declared`]), backend names and RFC 3339 times.
//!
//! ```json
//! { "version": 2,
//!   "entries": { "nixos/m1": { "ssh": {
//!       "fingerprint": "sha256:…",   // what makes the secret: generator, file names
//!                                    // and `secret`, prompts, shared targets
//!       "generator": "sha256:…",     // the generator alone (its content or store path)
//!       "placement": "sha256:…",     // paths, owners, groups, modes: never stale
//!       "backend": "agenix",         // where it was stored
//!       "dependencies": { "shared ca": "2026-…Z" },  // their generations it was made from
//!       "generated_at": "2026-…Z" } },               // absent for adopted artifacts
//!                "shared":   { "ca":  { … } } } }
//! ```
//!
//! Version 1 files (one fingerprint over the whole declaration, backend and
//! placement included) are still read: [`crate::plan::Plan::upgrade_lock`]
//! turns every entry whose version-1 fingerprint matches the current
//! declaration into a version-2 entry, and the file is written as version 2
//! the next time anything records in it. A version-1 entry that does not match
//! keeps its old fingerprint, which matches nothing: it stays stale.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use artifacts_model::IoError;
use artifacts_os::fs::Dir;

/// The lock file's name.
const LOCK_FILE: &str = "artifacts.lock";

/// The version written.
const VERSION: u32 = 2;
/// The oldest version still read.
const LEGACY_VERSION: u32 = 1;

/// One stored artifact's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEntry {
    /// The fingerprint of what makes the secret, at generation (or acceptance) time.
    pub fingerprint: String,
    /// The generator's identity alone, to say what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
    /// The fingerprint of where the files go (paths, owners, groups, modes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    /// The backend that stored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The generation (`generated_at`, `None` when unknown) of each dependency
    /// it was generated from, by dependency label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dependencies: BTreeMap<String, Option<String>>,
    /// When it was generated (RFC 3339, UTC); absent for adopted artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_at: Option<String>,
    /// Backend-specific facts that are not secret (e.g. a recipient-set fingerprint).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
    /// Set while a regeneration writes the secret files and then the public
    /// ones; a run that fails or dies in between leaves it set, so `check`
    /// reports the mismatched pair as an error instead of "ok".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
}

impl LockEntry {
    /// The generation time, if known and it parses.
    pub fn generated_at(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(self.generated_at.as_deref()?).ok()
    }
}

/// The current time as the lock writes it.
pub(crate) fn now() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

#[derive(Debug, Serialize, Deserialize)]
struct LockData {
    version: u32,
    #[serde(default)]
    entries: BTreeMap<String, BTreeMap<String, LockEntry>>,
}

/// The lock file in memory.
#[derive(Debug, Clone)]
pub struct Lock {
    path: PathBuf,
    /// Whether the entries come from a version-1 file and were not upgraded yet.
    legacy: bool,
    entries: BTreeMap<String, BTreeMap<String, LockEntry>>,
}

/// Why the lock file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Reading or writing the lock file failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The content is not a lock file we understand.
    #[error(
        "`{path}` is not a valid artifacts.lock: {message} (fix it, or delete it and run `artifacts accept` to record what is stored)"
    )]
    Invalid {
        /// The lock file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

impl Lock {
    /// The lock file's name, beside the manifest: `artifacts.lock`.
    pub const FILE_NAME: &'static str = LOCK_FILE;

    /// Reads the lock at `path`; a missing file is an empty lock.
    pub fn load(path: &Path) -> Result<Lock, LockError> {
        let (legacy, entries) = match std::fs::read_to_string(path) {
            Ok(text) => {
                let data: LockData =
                    serde_json::from_str(&text).map_err(|e| LockError::Invalid {
                        path: path.to_owned(),
                        message: e.to_string(),
                    })?;
                if !(LEGACY_VERSION..=VERSION).contains(&data.version) {
                    return Err(LockError::Invalid {
                        path: path.to_owned(),
                        message: format!(
                            "version {} is not supported (this artifacts reads versions {LEGACY_VERSION} to {VERSION}; a newer one wrote it?)",
                            data.version
                        ),
                    });
                }
                (data.version == LEGACY_VERSION, data.entries)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (false, BTreeMap::new()),
            Err(source) => {
                return Err(IoError::new("read", path, source).into());
            }
        };
        Ok(Lock {
            path: path.to_owned(),
            legacy,
            entries,
        })
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the entries were read from a version-1 file and not upgraded yet.
    pub fn is_legacy(&self) -> bool {
        self.legacy
    }

    /// Marks the entries as upgraded (see [`crate::plan::Plan::upgrade_lock`]).
    pub(crate) fn set_upgraded(&mut self) {
        self.legacy = false;
    }

    /// The entry of `artifact` under `scope` (`nixos/m1` or `shared`).
    pub fn get(&self, scope: &str, artifact: &str) -> Option<&LockEntry> {
        self.entries.get(scope)?.get(artifact)
    }

    /// Removes an entry (and its scope when that was the last one).
    pub fn remove(&mut self, scope: &str, artifact: &str) {
        if let Some(entries) = self.entries.get_mut(scope) {
            entries.remove(artifact);
            if entries.is_empty() {
                self.entries.remove(scope);
            }
        }
    }

    /// Records an entry.
    pub fn set(&mut self, scope: &str, artifact: &str, entry: LockEntry) {
        self.entries
            .entry(scope.to_owned())
            .or_default()
            .insert(artifact.to_owned(), entry);
    }

    /// Writes the lock atomically (temp file, fsync, rename), always as the current version.
    pub fn save(&self) -> Result<(), LockError> {
        let data = LockData {
            version: VERSION,
            entries: self.entries.clone(),
        };
        let mut text = serde_json::to_string_pretty(&data).expect("lock data serializes");
        text.push('\n');
        let dir = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let name = self.path.file_name().unwrap_or(LOCK_FILE.as_ref());
        // Through a directory handle: a link named `artifacts.lock` is
        // replaced, never written through.
        Dir::open_root(dir)
            .and_then(|dir| dir.write_atomic(name, text.as_bytes(), 0o644))
            .map_err(|source| IoError::new("write", &self.path, source).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (tempfile::TempDir, Result<Lock, LockError>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        std::fs::write(&path, text).unwrap();
        let lock = Lock::load(&path);
        (dir, lock)
    }

    #[test]
    fn version_1_is_read_as_legacy_and_written_as_version_2() {
        let (_dir, lock) = load(
            r#"{"version": 1, "entries": {"nixos/m": {"a": {"fingerprint": "sha256:1", "generated_at": "2026-01-01T00:00:00Z"}}}}"#,
        );
        let lock = lock.unwrap();
        assert!(lock.is_legacy());
        let entry = lock.get("nixos/m", "a").unwrap();
        assert_eq!(entry.generated_at.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert!(entry.placement.is_none() && entry.backend.is_none());
        lock.save().unwrap();
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(lock.path()).unwrap()).unwrap();
        assert_eq!(written["version"], 2);
        assert_eq!(
            written["entries"]["nixos/m"]["a"]["fingerprint"],
            "sha256:1"
        );
        assert!(!Lock::load(lock.path()).unwrap().is_legacy());
    }

    #[test]
    fn newer_versions_are_refused_naming_the_version() {
        let (_dir, lock) = load(r#"{"version": 3, "entries": {}}"#);
        let message = lock.unwrap_err().to_string();
        assert!(message.contains("version 3 is not supported"), "{message}");
    }

    #[test]
    fn adopted_entries_have_no_generation_time() {
        let (_dir, lock) = load(
            r#"{"version": 2, "entries": {"shared": {"ca": {"fingerprint": "sha256:1", "backend": "agenix"}}}}"#,
        );
        let lock = lock.unwrap();
        let entry = lock.get("shared", "ca").unwrap();
        assert_eq!(entry.generated_at(), None);
        assert_eq!(entry.backend.as_deref(), Some("agenix"));
    }
}
