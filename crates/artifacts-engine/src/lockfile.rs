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
//!
//! In memory, a fleet's lock is tens of thousands of entries read by every
//! command: the text [`Lock::save`] writes is read line by line without
//! serde_json (see [`canonical`]), the strings that repeat across targets
//! (digests, backends, times, artifact names) are shared ([`Arc<str>`]), and
//! each scope's entries are one sorted vector. Any other text (written by
//! hand, an older version, or invalid) is read by serde_json as before, its
//! errors included.

mod canonical;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    pub fingerprint: Arc<str>,
    /// The generator's identity alone, to say what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<Arc<str>>,
    /// The fingerprint of where the files go (paths, owners, groups, modes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Arc<str>>,
    /// The backend that stored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Arc<str>>,
    /// The generation (`generated_at`, `None` when unknown) of each dependency
    /// it was generated from, by dependency label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dependencies: BTreeMap<String, Option<String>>,
    /// When it was generated (RFC 3339, UTC); absent for adopted artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_at: Option<Arc<str>>,
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
            fingerprint: self.fingerprint.to_string(),
            generated_at: self.generated_at.as_deref().map(str::to_owned),
        }
    }

    /// The generation time, if known and it parses.
    pub fn generated_at(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(self.generated_at.as_deref()?).ok()
    }
}

/// The current time as the lock writes it.
pub(crate) fn now() -> Arc<str> {
    humantime::format_rfc3339_micros(SystemTime::now())
        .to_string()
        .into()
}

/// Entries sorted by key, each key once: a scope's entries cost what they
/// hold (a B-tree node has room for 11 whatever the count), and a look-up is
/// a binary search on borrowed text. Recording is linear in the scope's
/// entries, which are one target's.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sorted<V>(Vec<(Arc<str>, V)>);

impl<V> Sorted<V> {
    fn new() -> Self {
        Sorted(Vec::new())
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(key))
    }

    fn get(&self, key: &str) -> Option<&V> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.find(key).ok().map(|i| &mut self.0[i].1)
    }

    /// The value of `key`, inserted with `make` when missing.
    fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(key) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (key.into(), make()));
                i
            }
        };
        &mut self.0[i].1
    }

    fn insert(&mut self, key: &str, value: V) {
        match self.find(key) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (key.into(), value)),
        }
    }

    fn remove(&mut self, key: &str) -> Option<V> {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Keys come out sorted, so a saved lock is the same bytes as from a `BTreeMap`.
impl<V: Serialize> Serialize for Sorted<V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
    }
}

impl<V> From<BTreeMap<String, V>> for Sorted<V> {
    fn from(map: BTreeMap<String, V>) -> Self {
        Sorted(map.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

/// Scope (`nixos/m1`, `shared`) to artifact to entry.
type Entries = Sorted<Sorted<LockEntry>>;

/// What serde_json reads when the text is not [`canonical`].
#[derive(Debug, Deserialize)]
struct LockData {
    version: u32,
    #[serde(default)]
    entries: BTreeMap<String, BTreeMap<String, LockEntry>>,
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
        let read = |source| LockError::from(IoError::new("read", path, source));
        let (legacy, mut entries, file) = match File::open(path) {
            Ok(file) => {
                let (legacy, entries) = parse(path, &file)?;
                (legacy, entries, Some(file))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (false, Sorted::new(), None),
            Err(source) => return Err(read(source)),
        };
        // Hashed only when a journal is there to compare with: a fleet's lock
        // is megabytes. Read again through the same handle, so these are the
        // bytes parsed: the lock is replaced by a rename, never written in place.
        let base = || match file {
            Some(mut file) => {
                let mut bytes = Vec::new();
                file.rewind()
                    .and_then(|()| file.read_to_end(&mut bytes))
                    .map_err(read)?;
                Ok(Some(sha256_of(&bytes)))
            }
            None => Ok(None),
        };
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
            .get_or_insert_with(scope, Sorted::new)
            .insert(artifact, entry);
    }

    /// Writes the lock atomically (temp file, fsync, rename), always as the
    /// current version, then removes the journal it now holds.
    pub fn save(&self) -> Result<(), LockError> {
        let text = self.text();
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

    /// What [`Lock::save`] writes.
    fn text(&self) -> String {
        let data = LockDataRef {
            version: VERSION,
            entries: &self.entries,
        };
        let mut text = serde_json::to_string_pretty(&data).expect("lock data serializes");
        text.push('\n');
        text
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

/// Reads the lock file open as `file`: whether it is version 1, and its entries.
fn parse(path: &Path, mut file: &File) -> Result<(bool, Entries), LockError> {
    let read = |source| LockError::from(IoError::new("read", path, source));
    if let Some(entries) = canonical::read(file).map_err(read)? {
        return Ok((false, entries));
    }
    file.rewind().map_err(read)?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read)?;
    parse_json(path, &text)
}

/// Reads any lock text with serde_json: whether it is version 1, and its entries.
fn parse_json(path: &Path, text: &str) -> Result<(bool, Entries), LockError> {
    let data: LockData = serde_json::from_str(text).map_err(|e| LockError::Invalid {
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
    let entries = data
        .entries
        .into_iter()
        .map(|(scope, artifacts)| (scope.into(), Sorted::from(artifacts)))
        .collect();
    Ok((data.version == LEGACY_VERSION, Sorted(entries)))
}

/// Replays the journal at `path` into `entries` when it extends the lock
/// file whose hash is `base`; whether it did. A torn last line (a kill in
/// the middle of a write) is left out.
fn replay(
    path: &Path,
    base: impl FnOnce() -> Result<Option<String>, LockError>,
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
    if header.base != base()? {
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
        let scope = entries.get_or_insert_with(&line.scope, Sorted::new);
        match line.entry {
            Some(entry) => scope.insert(&line.artifact, entry),
            None => {
                scope.remove(&line.artifact);
            }
        }
    }
    entries.0.retain(|(_, artifacts)| !artifacts.is_empty());
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

    /// A small deterministic generator (PROPTEST_RNG_SEED picks the seed).
    struct Rng(u64);

    impl Rng {
        fn new() -> Rng {
            let seed = std::env::var("PROPTEST_RNG_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(20261122u64);
            Rng(seed | 1)
        }
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len())]
        }
        fn maybe<'a>(&mut self, from: &[&'a str]) -> Option<&'a str> {
            (self.below(3) != 0).then(|| self.pick(from))
        }
    }

    const PLAIN: &[&str] = &[
        "sha256:12980add9cb5fdd14837e4bea9e224710911f6b719a67b5e7cc6f92460277c6e",
        "sha256:9a0afb2a545906313fc7b831fb82817bd4494768ef0cdc21a5be4fb39beda584",
        "2026-11-30T13:39:38.703516Z",
        "sops-nix",
        "ünïcødé ✓ /",
        "",
        "null",
        "a\u{7f}b",
    ];
    const ODD: &[&str] = &[
        "with \"quotes\"",
        "back\\slash",
        "new\nline",
        "tab\t",
        "\u{1}",
    ];
    const SCOPES: &[&str] = &["nixos/m1", "nixos/m10", "nixos/m2", "shared", "home/u"];
    const ARTIFACTS: &[&str] = &["a1", "a10", "a2", "ca", "ssh host", "ü"];

    fn random_entry(rng: &mut Rng, strings: &[&str]) -> LockEntry {
        let text = |rng: &mut Rng| rng.maybe(strings).map(Arc::from);
        let labels = |rng: &mut Rng| {
            (0..rng.below(3))
                .map(|_| (rng.pick(ARTIFACTS).to_owned(), rng.pick(strings).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        LockEntry {
            fingerprint: rng.pick(strings).into(),
            generator: text(rng),
            placement: text(rng),
            backend: text(rng),
            dependencies: labels(rng)
                .into_iter()
                .map(|(k, v)| (k, (!v.is_empty()).then_some(v)))
                .collect(),
            generated_at: text(rng),
            extra: labels(rng),
            incomplete: rng.below(4) == 0,
            provenance: [None, Some(Provenance::Set), Some(Provenance::Imported)][rng.below(3)],
        }
    }

    fn random_lock(rng: &mut Rng, strings: &[&str]) -> Lock {
        let mut lock = Lock {
            path: PathBuf::from(LOCK_FILE),
            legacy: false,
            replayed: false,
            entries: Sorted::new(),
        };
        for _ in 0..rng.below(12) {
            let entry = random_entry(rng, strings);
            lock.set(rng.pick(SCOPES), rng.pick(ARTIFACTS), entry);
        }
        lock
    }

    /// What the canonical reader makes of `text`, checked against
    /// serde_json's reading: the same entries, or nothing.
    fn read_both(text: &str) -> Option<Entries> {
        let fast = canonical::read(text.as_bytes()).unwrap();
        match (&fast, parse_json(Path::new(LOCK_FILE), text)) {
            (Some(fast), Ok((legacy, slow))) => {
                assert!(!legacy);
                assert_eq!(*fast, slow, "read differently:\n{text}");
            }
            (Some(_), Err(e)) => panic!("read text serde_json refuses ({e}):\n{text}"),
            (None, _) => {}
        }
        fast
    }

    /// What `save` writes is read without serde_json, to the same entries,
    /// and saved again to the same bytes; escapes are left to serde_json,
    /// which reads them as before.
    #[test]
    fn saved_text_is_read_back_the_same_and_saved_byte_for_byte() {
        let mut rng = Rng::new();
        for round in 0..300 {
            let odd = round % 3 == 0;
            let strings: Vec<&str> = PLAIN
                .iter()
                .chain(if odd { ODD } else { &[] })
                .copied()
                .collect();
            let lock = random_lock(&mut rng, &strings);
            let text = lock.text();
            let escaped = text.contains('\\');
            let fast = read_both(&text);
            assert_eq!(fast.is_some(), !escaped, "{text}");
            let (_dir, loaded) = load(&text);
            let loaded = loaded.unwrap();
            assert_eq!(loaded.entries, lock.entries);
            assert_eq!(loaded.text(), text);
        }
    }

    /// Text `save` would not write (lines lost, repeated, swapped, a byte
    /// more) is read by serde_json alone, or to what serde_json reads.
    #[test]
    fn altered_text_is_read_as_serde_json_reads_it_or_left_to_it() {
        let mut rng = Rng::new();
        let mut taken = 0;
        for _ in 0..2000 {
            let text = random_lock(&mut rng, PLAIN).text();
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            let at = rng.below(lines.len());
            match rng.below(5) {
                0 => drop(lines.remove(at)),
                1 => lines.insert(at, lines[at].clone()),
                2 if at + 1 < lines.len() => lines.swap(at, at + 1),
                3 => lines[at].push(['\t', ' ', ',', '}', '"'][rng.below(5)]),
                _ => lines[at] = lines[at].replacen(' ', "", 1),
            }
            let altered = lines.join("\n") + "\n";
            if read_both(&altered).is_some() && altered != text {
                taken += 1;
            }
        }
        // Swapped items of one map are still a lock `save` could sort.
        assert!(taken > 0);
    }

    /// Recording and removing behave as the nested B-tree maps did.
    #[test]
    fn get_set_remove_match_nested_maps() {
        let mut rng = Rng::new();
        let mut lock = random_lock(&mut rng, PLAIN);
        let mut model: BTreeMap<String, BTreeMap<String, LockEntry>> =
            serde_json::from_str::<LockData>(&lock.text())
                .unwrap()
                .entries;
        for _ in 0..3000 {
            let (scope, artifact) = (rng.pick(SCOPES), rng.pick(ARTIFACTS));
            if rng.below(3) == 0 {
                lock.remove(scope, artifact);
                if let Some(entries) = model.get_mut(scope) {
                    entries.remove(artifact);
                    if entries.is_empty() {
                        model.remove(scope);
                    }
                }
            } else {
                let entry = random_entry(&mut rng, PLAIN);
                lock.set(scope, artifact, entry.clone());
                model
                    .entry(scope.to_owned())
                    .or_default()
                    .insert(artifact.to_owned(), entry);
            }
            for scope in SCOPES {
                for artifact in ARTIFACTS {
                    let expected = model.get(*scope).and_then(|e| e.get(*artifact));
                    assert_eq!(lock.get(scope, artifact), expected);
                }
            }
        }
        let expected = serde_json::to_string_pretty(&serde_json::json!({
            "version": VERSION,
            "entries": model,
        }))
        .unwrap();
        assert_eq!(lock.text(), expected + "\n");
    }

    /// Keys out of order (a script's lock) are read, sorted; a key twice
    /// is serde_json's, which keeps the last, as before.
    #[test]
    fn unsorted_and_repeated_keys_read_as_before() {
        let entry = |f: &str| format!("{{\n        \"fingerprint\": \"{f}\"\n      }}");
        let text = format!(
            "{{\n  \"version\": 2,\n  \"entries\": {{\n    \"nixos/m2\": {{\n      \"b\": {},\n      \"a\": {}\n    }},\n    \"nixos/m10\": {{\n      \"a\": {}\n    }}\n  }}\n}}\n",
            entry("sha256:1"),
            entry("sha256:2"),
            entry("sha256:3")
        );
        assert!(read_both(&text).is_some());
        let (_dir, lock) = load(&text);
        let lock = lock.unwrap();
        assert_eq!(&*lock.get("nixos/m2", "a").unwrap().fingerprint, "sha256:2");
        assert_eq!(
            &*lock.get("nixos/m10", "a").unwrap().fingerprint,
            "sha256:3"
        );

        let twice = text.replace("\"b\":", "\"a\":");
        assert!(read_both(&twice).is_none());
        let (_dir, lock) = load(&twice);
        assert_eq!(
            &*lock.unwrap().get("nixos/m2", "a").unwrap().fingerprint,
            "sha256:2"
        );
        let field_twice = text.replace(
            "\"fingerprint\": \"sha256:1\"",
            "\"fingerprint\": \"sha256:1\",\n        \"fingerprint\": \"sha256:1\"",
        );
        assert!(read_both(&field_twice).is_none());
        let message = load(&field_twice).1.unwrap_err().to_string();
        assert!(
            message.contains("duplicate field `fingerprint`"),
            "{message}"
        );
    }

    /// Hostile text gets serde_json's reading and errors, as before; a huge
    /// string is read whole.
    #[test]
    fn hostile_text_gets_the_errors_it_got() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let deep = format!(
            "{{\"version\": 2, \"entries\": {{\"s\": {{\"a\": {{\"fingerprint\": \"f\", \"x\": {deep}}}}}}}}}"
        );
        // serde_json skips an unknown field however deep, as it did.
        let (_dir, lock) = load(&deep);
        assert_eq!(&*lock.unwrap().get("s", "a").unwrap().fingerprint, "f");
        let wrong = "{\n  \"version\": 2,\n  \"entries\": {\n    \"s\": {\n      \"a\": {\n        \"fingerprint\": 5\n      }\n    }\n  }\n}\n";
        let message = load(wrong).1.unwrap_err().to_string();
        assert!(
            message.contains("invalid type: integer `5`, expected a string at line 6 column 24"),
            "{message}"
        );
        let (_dir, lock) = load("{\"version\": 2, \"entries\": {\"s\": []}}");
        assert!(
            lock.unwrap_err()
                .to_string()
                .contains("invalid type: sequence")
        );
        let (_dir, lock) = load("{\n  \"version\": 2,\n  \"entries\": {}\n}");
        assert!(lock.unwrap().entries.is_empty());
        let (_dir, lock) = load("\u{feff}{\"version\": 2}");
        assert!(lock.is_err());

        let huge = "f".repeat(3 << 20);
        let mut lock = random_lock(&mut Rng::new(), PLAIN);
        lock.set("shared", "huge", entry(&huge));
        let text = lock.text();
        let (_dir, loaded) = load(&text);
        let loaded = loaded.unwrap();
        assert_eq!(&*loaded.get("shared", "huge").unwrap().fingerprint, huge);
        assert_eq!(loaded.text(), text);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        std::fs::write(&path, b"{\"version\": 2, \"entries\": {\"\xff\": {}}}").unwrap();
        // As before: read_to_string's error, not serde_json's.
        let error = Lock::load(&path).unwrap_err();
        let mut chain = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(inner) = source {
            chain += &format!(": {inner}");
            source = inner.source();
        }
        assert!(matches!(error, LockError::Io(_)), "{chain}");
        assert!(chain.contains("valid UTF-8"), "{chain}");
    }

    /// A fleet's lock (the bench fleet's shape: one artifact has the same
    /// digests on every machine) is read without serde_json, each repeated
    /// string once, and saved back byte for byte.
    #[test]
    fn a_fleet_lock_is_read_sharing_its_strings_and_saved_as_it_was() {
        let digest = |what: &str, n: usize| format!("sha256:{what}{n:0>60}");
        let (_dir, lock) = load(r#"{"version": 2}"#);
        let mut lock = lock.unwrap();
        for machine in 1..=100 {
            for artifact in 1..=20 {
                let mut entry = entry(&digest("f", artifact));
                entry.generator = Some(digest("g", artifact).into());
                entry.placement = Some(digest("p", artifact * machine).into());
                entry.backend = Some("sops-nix".into());
                lock.set(&format!("nixos/m{machine}"), &format!("a{artifact}"), entry);
            }
        }
        let text = lock.text();
        assert!(read_both(&text).is_some());
        let (_dir, loaded) = load(&text);
        let loaded = loaded.unwrap();
        assert_eq!(loaded.text(), text);
        let (one, other) = (
            loaded.get("nixos/m1", "a7").unwrap(),
            loaded.get("nixos/m99", "a7").unwrap(),
        );
        assert_ne!(one.placement, other.placement);
        assert!(Arc::ptr_eq(&one.fingerprint, &other.fingerprint));
        assert!(Arc::ptr_eq(
            one.generator.as_ref().unwrap(),
            other.generator.as_ref().unwrap()
        ));
        assert!(Arc::ptr_eq(
            one.generated_at.as_ref().unwrap(),
            other.generated_at.as_ref().unwrap()
        ));
    }
}
