//! `artifacts.lock`: what was generated, from which declaration, and when.
//!
//! A JSON file next to the manifest, meant to be committed. It never holds a
//! secret: only fingerprints (SHA-256 over the declaration, see
//! [`crate::plan::Unit::fingerprint`]) and RFC 3339 generation times.
//!
//! ```json
//! { "version": 1,
//!   "entries": { "nixos/m1": { "ssh": { "fingerprint": "sha256:…", "generated_at": "2026-…Z" } },
//!                "shared":   { "ca":  { … } } } }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use artifacts_crypto::fsutil::Dir;

/// The lock file's name.
pub const LOCK_FILE: &str = "artifacts.lock";

const VERSION: u32 = 1;

/// One generated artifact's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEntry {
    /// The declaration fingerprint at generation time.
    pub fingerprint: String,
    /// When it was generated (RFC 3339, UTC).
    pub generated_at: String,
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
    /// A record generated now.
    pub fn now(fingerprint: String) -> Self {
        LockEntry {
            fingerprint,
            generated_at: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            extra: BTreeMap::new(),
            incomplete: false,
        }
    }

    /// The generation time, if it parses.
    pub fn generated_at(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(&self.generated_at).ok()
    }
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
    entries: BTreeMap<String, BTreeMap<String, LockEntry>>,
}

/// Why the lock file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Reading or writing failed.
    #[error("failed to {action} `{path}`")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The content is not a lock file we understand.
    #[error(
        "`{path}` is not a valid artifacts.lock: {message} (fix it, or delete it to treat every stored artifact as stale)"
    )]
    Invalid {
        /// The lock file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

impl Lock {
    /// Reads the lock at `path`; a missing file is an empty lock.
    pub fn load(path: &Path) -> Result<Lock, LockError> {
        let entries = match std::fs::read_to_string(path) {
            Ok(text) => {
                let data: LockData =
                    serde_json::from_str(&text).map_err(|e| LockError::Invalid {
                        path: path.to_owned(),
                        message: e.to_string(),
                    })?;
                if data.version != VERSION {
                    return Err(LockError::Invalid {
                        path: path.to_owned(),
                        message: format!(
                            "version {} is not supported (expected {VERSION})",
                            data.version
                        ),
                    });
                }
                data.entries
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(LockError::Io {
                    action: "read",
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Ok(Lock {
            path: path.to_owned(),
            entries,
        })
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        &self.path
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

    /// Writes the lock atomically (temp file, fsync, rename).
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
            .map_err(|source| LockError::Io {
                action: "write",
                path: self.path.clone(),
                source,
            })
    }
}
