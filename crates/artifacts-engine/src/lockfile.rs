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
//!       "generator": "sha256:…",     // the generator alone (its content or store path,
//!                                    // with its inputs' content when it declares any)
//!       "placement": "sha256:…",     // paths, owners, groups, modes: never stale
//!       "backend": "agenix",         // where it was stored
//!       "dependencies": { "shared ca": "2026-…Z" },  // their generations it was made from
//!       "generated_at": "2026-…Z" } },               // absent for adopted artifacts
//!                "shared":   { "ca":  { … } } } }
//! ```
//!
//! A value put in by hand (`artifacts set`, `edit`, `import`) says so:
//! `"provenance": "set"` (or `edited`, `imported`), and its `fingerprint`
//! covers only what a hand-made value must match (the declared files and the
//! targets of a shared artifact), not the generator or prompts, so changing
//! those does not make it stale. Entries without the field were generated;
//! the version stays 2, and older readers ignore the field.
//!
//! Version 1 files (one fingerprint over the whole declaration, backend and
//! placement included) are still read: [`crate::plan::Plan::upgrade_lock`]
//! turns every entry whose version-1 fingerprint matches the current
//! declaration into a version-2 entry, and the file is written as version 2
//! the next time anything records in it. A version-1 entry that does not match
//! keeps its old fingerprint, which matches nothing: it stays stale.
//!
//! `generate` writes the lock once, at the end of the run. Until then each
//! change is appended to `artifacts.lock.journal` beside it (one JSON line
//! per change, after a first line naming the SHA-256 of the lock file it
//! extends), so a run killed half-way loses no record of what it stored:
//! [`Lock::load`] replays a journal that extends the lock file as it is, and
//! [`Lock::save`] removes the journal once the lock holds everything. A
//! journal that does not match the lock file (the lock was written after it,
//! or replaced by hand) is ignored: its artifacts read as untracked, never
//! as current.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use artifacts_model::IoError;

use crate::in_process::Stamp;
use artifacts_os::fs::Dir;

/// The lock file's name.
const LOCK_FILE: &str = "artifacts.lock";

/// What the journal's name adds to the lock file's.
const JOURNAL_SUFFIX: &str = ".journal";

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
    /// How the stored value was made when not by its generator; `None` when generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// How a stored value came in when not by its generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provenance {
    /// Put in with `artifacts set`.
    Set,
    /// Changed with `artifacts edit`.
    Edited,
    /// Brought over from existing files with `artifacts import`.
    Imported,
}

impl Provenance {
    /// The word the lock uses, for people too.
    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::Set => "set",
            Provenance::Edited => "edited",
            Provenance::Imported => "imported",
        }
    }
}

impl LockEntry {
    /// Whether the stored value was put in by hand (set, edited or imported).
    pub fn by_hand(&self) -> bool {
        self.provenance.is_some()
    }

    /// The stamp a backend stores with this generation (see [`Stamp`]).
    pub fn stamp(&self) -> Stamp {
        Stamp {
            fingerprint: self.fingerprint.clone(),
            generated_at: self.generated_at.clone(),
        }
    }

    /// The generation time, if known and it parses.
    pub fn generated_at(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(self.generated_at.as_deref()?).ok()
    }
}

/// The current time as the lock writes it.
pub(crate) fn now() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

type Entries = BTreeMap<String, BTreeMap<String, LockEntry>>;

#[derive(Debug, Deserialize)]
struct LockData {
    version: u32,
    #[serde(default)]
    entries: Entries,
}

/// What [`Lock::save`] writes: the entries borrowed, never cloned.
#[derive(Serialize)]
struct LockDataRef<'a> {
    version: u32,
    entries: &'a Entries,
}

/// The journal's first line: which lock file its changes extend.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct JournalHeader {
    journal: u32,
    /// `sha256:…` of the lock file's bytes, `None` when there was none.
    base: Option<String>,
}

/// One change in the journal: an entry recorded, or removed (`entry: null`).
#[derive(Debug, Serialize, Deserialize)]
struct JournalLine {
    scope: String,
    artifact: String,
    entry: Option<LockEntry>,
}

/// The lock file in memory.
#[derive(Debug, Clone)]
pub struct Lock {
    path: PathBuf,
    /// Whether the entries come from a version-1 file and were not upgraded yet.
    legacy: bool,
    /// Whether a journal was replayed into the entries (so the file lacks them).
    replayed: bool,
    entries: Entries,
}

/// An open `artifacts.lock.journal` (see the module doc), from
/// [`Lock::start_journal`].
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: std::fs::File,
    /// Whether any change was appended after the header.
    changed: bool,
}

fn sha256_of(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn journal_path(lock: &Path) -> PathBuf {
    let mut name = lock.as_os_str().to_owned();
    name.push(JOURNAL_SUFFIX);
    PathBuf::from(name)
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
        let (legacy, mut entries, base) = match std::fs::read_to_string(path) {
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
                (data.version == LEGACY_VERSION, data.entries, Some(text))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (false, BTreeMap::new(), None),
            Err(source) => {
                return Err(IoError::new("read", path, source).into());
            }
        };
        // Hashed only when a journal is there to compare with: a fleet's lock is megabytes.
        let base = || base.map(|text| sha256_of(text.as_bytes()));
        let replayed = replay(&journal_path(path), base, &mut entries)?;
        Ok(Lock {
            path: path.to_owned(),
            legacy,
            replayed,
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

    /// Writes the lock atomically (temp file, fsync, rename), always as the
    /// current version, then removes the journal it now holds.
    pub fn save(&self) -> Result<(), LockError> {
        let data = LockDataRef {
            version: VERSION,
            entries: &self.entries,
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
            .map_err(|source| IoError::new("write", &self.path, source))?;
        // The journal's base is the old file now: it would be ignored anyway.
        let journal = journal_path(&self.path);
        match std::fs::remove_file(&journal) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(IoError::new("remove", &journal, e).into())
            }
            _ => Ok(()),
        }
    }

    /// Starts a journal for the changes [`Lock::record`] makes until the
    /// next [`Lock::save`]: writes the lock first when it holds a replayed
    /// journal, then a fresh journal extending the lock file as it is.
    pub(crate) fn start_journal(&mut self) -> Result<Journal, LockError> {
        if self.replayed {
            self.save()?;
            self.replayed = false;
        }
        let base = match std::fs::read(&self.path) {
            Ok(bytes) => Some(sha256_of(&bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(IoError::new("read", &self.path, e).into()),
        };
        let path = journal_path(&self.path);
        let write = |e| LockError::from(IoError::new("write", &path, e));
        let mut line =
            serde_json::to_vec(&JournalHeader { journal: 1, base }).expect("header serializes");
        line.push(b'\n');
        // Not through a link: the journal is replaced like the lock.
        let _ = std::fs::remove_file(&path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(write)?;
        file.write_all(&line).map_err(write)?;
        Ok(Journal {
            path,
            file,
            changed: false,
        })
    }

    /// Ends a journal: writes the lock when anything was recorded (which
    /// removes the journal), else just removes the journal.
    pub(crate) fn finish_journal(&self, journal: Journal) -> Result<(), LockError> {
        if journal.changed {
            return self.save();
        }
        drop(journal.file);
        std::fs::remove_file(&journal.path)
            .map_err(|e| IoError::new("remove", &journal.path, e).into())
    }

    /// Applies `changes` (an entry to record, or `None` to remove it) and
    /// appends them to `journal` in one write; with `sync`, waits until the
    /// journal is on disk (for marks that must precede a store).
    pub(crate) fn record(
        &mut self,
        journal: &mut Journal,
        changes: Vec<(String, String, Option<LockEntry>)>,
        sync: bool,
    ) -> Result<(), LockError> {
        let mut text = Vec::new();
        for (scope, artifact, entry) in changes {
            let line = JournalLine {
                scope,
                artifact,
                entry,
            };
            serde_json::to_writer(&mut text, &line).expect("journal lines serialize");
            text.push(b'\n');
            match line.entry {
                Some(entry) => self.set(&line.scope, &line.artifact, entry),
                None => self.remove(&line.scope, &line.artifact),
            }
        }
        if text.is_empty() {
            return Ok(());
        }
        journal.changed = true;
        let write = |e| LockError::from(IoError::new("write", &journal.path, e));
        journal.file.write_all(&text).map_err(write)?;
        if sync {
            journal.file.sync_data().map_err(write)?;
        }
        Ok(())
    }
}

/// Replays the journal at `path` into `entries` when it extends the lock
/// file whose hash is `base`; whether it did. A torn last line (a kill in
/// the middle of a write) is left out.
fn replay(
    path: &Path,
    base: impl FnOnce() -> Option<String>,
    entries: &mut Entries,
) -> Result<bool, LockError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(IoError::new("read", path, e).into()),
    };
    let invalid = |message: String| LockError::Invalid {
        path: path.to_owned(),
        message,
    };
    let mut lines = text.split_inclusive(|&b| b == b'\n');
    let header = lines.next().filter(|line| line.ends_with(b"\n"));
    let Some(Ok(header)) = header.map(serde_json::from_slice::<JournalHeader>) else {
        return Ok(false);
    };
    if header.base != base() {
        tracing::debug!(
            "ignoring `{}`: it extends another version of the lock file",
            path.display()
        );
        return Ok(false);
    }
    for (number, line) in lines.enumerate() {
        if !line.ends_with(b"\n") {
            break;
        }
        let line: JournalLine = serde_json::from_slice(line)
            .map_err(|e| invalid(format!("line {}: {e}", number + 2)))?;
        let scope = entries.entry(line.scope).or_default();
        match line.entry {
            Some(entry) => {
                scope.insert(line.artifact, entry);
            }
            None => {
                scope.remove(&line.artifact);
            }
        }
    }
    entries.retain(|_, artifacts| !artifacts.is_empty());
    Ok(true)
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
    fn provenance_is_read_written_and_optional() {
        let (_dir, lock) = load(
            r#"{"version": 2, "entries": {"shared": {"ca": {"fingerprint": "sha256:1", "provenance": "imported"}, "old": {"fingerprint": "sha256:2"}}}}"#,
        );
        let lock = lock.unwrap();
        assert_eq!(
            lock.get("shared", "ca").unwrap().provenance,
            Some(Provenance::Imported)
        );
        assert!(!lock.get("shared", "old").unwrap().by_hand());
        lock.save().unwrap();
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(lock.path()).unwrap()).unwrap();
        assert_eq!(written["entries"]["shared"]["ca"]["provenance"], "imported");
        assert!(
            written["entries"]["shared"]["old"]
                .get("provenance")
                .is_none()
        );
    }

    #[test]
    fn newer_versions_are_refused_naming_the_version() {
        let (_dir, lock) = load(r#"{"version": 3, "entries": {}}"#);
        let message = lock.unwrap_err().to_string();
        assert!(message.contains("version 3 is not supported"), "{message}");
    }

    fn entry(fingerprint: &str) -> LockEntry {
        LockEntry {
            fingerprint: fingerprint.into(),
            generator: None,
            placement: None,
            backend: Some("agenix".into()),
            dependencies: BTreeMap::new(),
            generated_at: Some("2026-01-01T00:00:00Z".into()),
            extra: BTreeMap::new(),
            incomplete: false,
            provenance: None,
        }
    }

    /// Changes recorded in the journal survive a process that never saves
    /// (a kill): the next load replays them, a torn last line left out;
    /// saving folds them into the lock and removes the journal.
    #[test]
    fn the_journal_is_replayed_until_the_lock_is_saved() {
        let (_dir, lock) =
            load(r#"{"version": 2, "entries": {"nixos/m": {"old": {"fingerprint": "sha256:0"}}}}"#);
        let mut lock = lock.unwrap();
        let mut journal = lock.start_journal().unwrap();
        let key = |a: &str| ("nixos/m".to_owned(), a.to_owned());
        lock.record(
            &mut journal,
            vec![(key("a").0, key("a").1, Some(entry("sha256:1")))],
            false,
        )
        .unwrap();
        lock.record(&mut journal, vec![(key("old").0, key("old").1, None)], true)
            .unwrap();
        // A kill in the middle of the next write.
        journal
            .file
            .write_all(br#"{"scope":"nixos/m","artifact":"b","#)
            .unwrap();
        drop(journal);

        let replayed = Lock::load(lock.path()).unwrap();
        assert_eq!(replayed.get("nixos/m", "a"), Some(&entry("sha256:1")));
        assert_eq!(replayed.get("nixos/m", "old"), None);
        assert_eq!(replayed.get("nixos/m", "b"), None);
        // The file itself is untouched until saved.
        let on_disk: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(lock.path()).unwrap()).unwrap();
        assert!(on_disk["entries"]["nixos/m"]["a"].is_null());

        replayed.save().unwrap();
        assert!(!journal_path(lock.path()).exists());
        let saved = Lock::load(lock.path()).unwrap();
        assert_eq!(saved.get("nixos/m", "a"), Some(&entry("sha256:1")));
        assert_eq!(saved.get("nixos/m", "old"), None);
    }

    /// A journal extending another version of the lock file (written after
    /// it, or replaced by hand) is ignored, never applied on top.
    #[test]
    fn a_journal_of_another_lock_file_is_ignored() {
        let (_dir, lock) = load(r#"{"version": 2, "entries": {}}"#);
        let mut lock = lock.unwrap();
        let mut journal = lock.start_journal().unwrap();
        lock.record(
            &mut journal,
            vec![("nixos/m".into(), "a".into(), Some(entry("sha256:1")))],
            false,
        )
        .unwrap();
        std::fs::write(lock.path(), r#"{"version": 2, "entries": {} }"#).unwrap();
        let reloaded = Lock::load(lock.path()).unwrap();
        assert_eq!(reloaded.get("nixos/m", "a"), None);
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
