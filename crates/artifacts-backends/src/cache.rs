//! What a shipped backend remembers for one run: the identities, each SOPS
//! file parsed, each SOPS data key unwrapped, each target's recipients; and
//! one lock per SOPS file, so writes of the same file from several threads
//! take turns, and which directories were swept for a killed run's
//! temporary files.
//!
//! A run asks the same backend about many (target, artifact) pairs, and
//! the pairs of one target share its SOPS file: without these, each pair
//! would read the key files, parse the whole file and unwrap its data key
//! again, and open the same directories again. (A `check` asks about a
//! target's artifacts in one call, which reads the file once for all of
//! them and keeps nothing of it: nothing reads it again.) One
//! [`Cache`] belongs to one backend instance,
//! which the binary builds once per run; it is shared by the engine's
//! worker threads. Nothing in it is ever stale: a parsed file is reused
//! only while the file's stamp (device, inode, size, modification and
//! change times) or else its bytes are the same, a data key only for the very
//! wrapped keys it was unwrapped from (a file re-encrypted with the same
//! data key keeps them), and recipients only for the same configuration.
//! The project's `.sops.yaml` is read once per run, as the declarations
//! are. Directories stay open for the run (a few: those holding SOPS files
//! or agenix targets, and the project root) while their path leads to them
//! (checked on each use, except by a check reading a SOPS file, which
//! takes the directory as it is): files in them
//! are looked up again on every call, and a directory is never remembered
//! as missing. The data keys are zeroed
//! when dropped.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use artifacts_crypto::age::{Identity, Recipient};
use artifacts_crypto::sops::config::SopsConfig;
use artifacts_crypto::sops::{DataKey, EncryptedFile, TransitKey};
use artifacts_os::fs::Dir;
use zeroize::Zeroizing;

/// A SOPS file as parsed, with the stamp of the file it was read from
/// (see `Dir::file_stamp`) and the bytes.
#[derive(Debug)]
struct Parsed {
    stamp: [u64; 7],
    bytes: Vec<u8>,
    file: Arc<EncryptedFile>,
}

/// The variables identities are read with (see `KeySources::vars`).
type Vars = Vec<(String, OsString)>;

/// The wrapped data key stanzas of a SOPS file: `(recipient, enc)` each.
type Stanzas = Vec<(String, String)>;

/// Data keys by the stanzas they were unwrapped from.
type DataKeys = HashMap<Stanzas, Zeroizing<[u8; 32]>>;

/// A directory kept open, with its device and inode (see [`Cache::dir`]).
type OpenDir = (Arc<Dir>, (u64, u64));

/// One run's memory of a backend (see the module doc). It holds data keys
/// and our environment (which may hold `SOPS_AGE_KEY` or prompt answers),
/// so its `Debug` says only how much it holds.
#[derive(Default)]
pub(crate) struct Cache {
    identities: Mutex<Option<(Vars, Arc<Vec<Identity>>)>>,
    files: Mutex<HashMap<PathBuf, Parsed>>,
    /// The data keys unwrapped with the identities of these variables.
    keys: Mutex<Option<(Vars, DataKeys)>>,
    recipients: Mutex<HashMap<String, Arc<Vec<Recipient>>>>,
    /// One lock per store file written in this run.
    writers: Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
    /// One lock per SOPS file read in this run, held while it is parsed.
    parsing: Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
    /// The directories swept for a killed run's temporary files.
    swept: Mutex<std::collections::HashSet<PathBuf>>,
    /// The transit keys `.sops.yaml` asks for, by store file.
    transit: Mutex<HashMap<PathBuf, Vec<TransitKey>>>,
    /// Each project root's `.sops.yaml`, `None` when it has none.
    sops_configs: Mutex<HashMap<PathBuf, Option<Arc<SopsConfig>>>>,
    /// Directories opened before, by path (at most [`MAX_OPEN_DIRS`]), with
    /// their device and inode.
    dirs: Mutex<HashMap<PathBuf, OpenDir>>,
}

/// How many directories a run keeps open: a fleet's SOPS files live in a
/// few, but every tanka environment has its own, and file descriptors are
/// limited. Past this, directories are opened for each call.
const MAX_OPEN_DIRS: usize = 64;

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = lock(&self.keys).as_ref().map_or(0, |(_, keys)| keys.len());
        f.debug_struct("Cache")
            .field("files", &lock(&self.files).len())
            .field("data_keys", &keys)
            .finish_non_exhaustive()
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        // A cache is dropped when its run ends. The parsed files are
        // ciphertext and metadata (nothing to zero), and freeing a fleet's
        // thousands of tree nodes one by one took longer than
        // checking them; the data keys are still zeroed.
        let files = self.files.get_mut().unwrap_or_else(PoisonError::into_inner);
        std::mem::forget(std::mem::take(files));
        // So are each target's recipients and transit keys: public keys.
        let recipients = self
            .recipients
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::forget(std::mem::take(recipients));
        let transit = self
            .transit
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::forget(std::mem::take(transit));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere leaves a cache that is still consistent: every
    // entry is inserted whole.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What `map` holds for `key`, else what `compute` gives, remembered
/// (computed outside the lock: other threads go on meanwhile; a failure is
/// not remembered).
fn remembered<K, Q, V, E>(
    map: &Mutex<HashMap<K, V>>,
    key: &Q,
    compute: impl FnOnce() -> Result<V, E>,
) -> Result<V, E>
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: ToOwned<Owned = K> + std::hash::Hash + Eq + ?Sized,
    V: Clone,
{
    if let Some(value) = lock(map).get(key) {
        return Ok(value.clone());
    }
    let value = compute()?;
    lock(map).insert(key.to_owned(), value.clone());
    Ok(value)
}

impl Cache {
    /// The identities for `vars`, loaded by `load` the first time (and
    /// again only if the variables differ).
    pub(crate) fn identities<E>(
        &self,
        vars: Vars,
        load: impl FnOnce() -> Result<Vec<Identity>, E>,
    ) -> Result<Arc<Vec<Identity>>, E> {
        let mut slot = lock(&self.identities);
        if let Some((seen, identities)) = slot.as_ref()
            && *seen == vars
        {
            return Ok(identities.clone());
        }
        let identities = Arc::new(load()?);
        *slot = Some((vars, identities.clone()));
        Ok(identities)
    }

    /// The SOPS file at `path` as parsed before, if its stamp (see
    /// `Dir::file_stamp`) is still `stamp`: then nothing needs reading.
    pub(crate) fn sops_file_unchanged(
        &self,
        path: &Path,
        stamp: [u64; 7],
    ) -> Option<Arc<EncryptedFile>> {
        lock(&self.files)
            .get(path)
            .filter(|parsed| parsed.stamp == stamp)
            .map(|parsed| parsed.file.clone())
    }

    /// The SOPS file at `path` whose content is `bytes` (read when its stamp
    /// was `stamp`), parsed by `parse` unless these very bytes were parsed before.
    pub(crate) fn sops_file<E>(
        &self,
        path: &Path,
        stamp: [u64; 7],
        bytes: Vec<u8>,
        parse: impl FnOnce(&[u8]) -> Result<EncryptedFile, E>,
    ) -> Result<Arc<EncryptedFile>, E> {
        if let Some(parsed) = lock(&self.files).get_mut(path)
            && parsed.bytes == bytes
        {
            parsed.stamp = stamp;
            return Ok(parsed.file.clone());
        }
        // Parsed outside the lock: other threads check other targets' files meanwhile.
        let file = Arc::new(parse(&bytes)?);
        lock(&self.files).insert(
            path.to_owned(),
            Parsed {
                stamp,
                bytes,
                file: file.clone(),
            },
        );
        Ok(file)
    }

    /// The data key of `file`, unwrapped by `unwrap` (with the identities
    /// of `vars`) unless a key was unwrapped from the same stanzas with them
    /// before: other identities may not open the file at all.
    pub(crate) fn data_key<E>(
        &self,
        vars: &Vars,
        file: &EncryptedFile,
        unwrap: impl FnOnce() -> Result<DataKey, E>,
    ) -> Result<DataKey, E> {
        let metadata = file.metadata();
        // Key groups need more than one stanza: never taken from the cache.
        if !metadata.key_groups.is_empty() || metadata.age.is_empty() {
            return unwrap();
        }
        let stanzas: Stanzas = metadata
            .age
            .iter()
            .map(|key| (key.recipient.clone(), key.enc.clone()))
            .collect();
        if let Some((seen, keys)) = lock(&self.keys).as_ref()
            && seen == vars
            && let Some(bytes) = keys.get(&stanzas)
        {
            return Ok(DataKey::from_bytes(&bytes[..]).expect("32 bytes"));
        }
        let key = unwrap()?;
        let mut slot = lock(&self.keys);
        if slot.as_ref().is_none_or(|(seen, _)| seen != vars) {
            *slot = Some((vars.clone(), HashMap::new()));
        }
        if let Some((_, keys)) = slot.as_mut() {
            keys.insert(stanzas, Zeroizing::new(*key.as_bytes()));
        }
        Ok(key)
    }

    /// The recipients configured as `key` (the targets' names and
    /// configurations, as text), computed by `compute` the first time.
    pub(crate) fn recipients<E>(
        &self,
        key: String,
        compute: impl FnOnce() -> Result<Vec<Recipient>, E>,
    ) -> Result<Arc<Vec<Recipient>>, E> {
        remembered(&self.recipients, key.as_str(), || compute().map(Arc::new))
    }

    /// The transit keys for the store file `file`, computed by `compute`
    /// the first time (from `.sops.yaml`, read once per run).
    pub(crate) fn transit_keys<E>(
        &self,
        file: &Path,
        compute: impl FnOnce() -> Result<Vec<TransitKey>, E>,
    ) -> Result<Vec<TransitKey>, E> {
        remembered(&self.transit, file, compute)
    }

    /// The `.sops.yaml` of the project at `root`, read by `load` the first
    /// time (a fleet's check asks once per target file).
    pub(crate) fn sops_config<E>(
        &self,
        root: &Path,
        load: impl FnOnce() -> Result<Option<SopsConfig>, E>,
    ) -> Result<Option<Arc<SopsConfig>>, E> {
        remembered(&self.sops_configs, root, || Ok(load()?.map(Arc::new)))
    }

    /// The directory at `path`, opened by `open` unless it is open already
    /// and `path` still leads to it (one `stat`: a directory removed or
    /// replaced meanwhile is opened again); `None` (never remembered) when
    /// it does not exist.
    pub(crate) fn dir<E>(
        &self,
        path: &Path,
        open: impl FnOnce() -> Result<Option<Dir>, E>,
    ) -> Result<Option<Arc<Dir>>, E> {
        self.dir_checked(path, true, open)
    }

    /// [`Cache::dir`] for a read only, which takes a directory open already
    /// as it is, without the `stat`: a fleet's check reads its 500 files
    /// from one directory, and what it reports is only as current as the
    /// moment it read them anyway.
    pub(crate) fn dir_to_read<E>(
        &self,
        path: &Path,
        open: impl FnOnce() -> Result<Option<Dir>, E>,
    ) -> Result<Option<Arc<Dir>>, E> {
        self.dir_checked(path, false, open)
    }

    fn dir_checked<E>(
        &self,
        path: &Path,
        recheck: bool,
        open: impl FnOnce() -> Result<Option<Dir>, E>,
    ) -> Result<Option<Arc<Dir>>, E> {
        let known = lock(&self.dirs).get(path).cloned();
        if let Some((dir, _)) = &known
            && !recheck
        {
            return Ok(Some(dir.clone()));
        }
        if let Some((dir, identity)) = known {
            use std::os::unix::fs::MetadataExt;
            // Links followed: `open` refused them on the way, and a path
            // reaching the same directory through one reaches what we hold.
            if std::fs::metadata(path).is_ok_and(|now| (now.dev(), now.ino()) == identity) {
                return Ok(Some(dir));
            }
            lock(&self.dirs).remove(path);
        }
        let Some(dir) = open()? else {
            return Ok(None);
        };
        let dir = Arc::new(dir);
        let mut dirs = lock(&self.dirs);
        if dirs.len() < MAX_OPEN_DIRS
            && let Ok(identity) = dir.identity()
        {
            dirs.insert(path.to_owned(), (dir.clone(), identity));
        }
        Ok(Some(dir))
    }

    /// The lock writers of the file at `path` take: a SOPS file holds many
    /// artifacts, and two read-modify-writes side by side (`rekey` runs in
    /// parallel) would lose one's values.
    pub(crate) fn writer(&self, path: PathBuf) -> Arc<Mutex<()>> {
        lock(&self.writers).entry(path).or_default().clone()
    }

    /// The lock a thread holds while it reads and parses the SOPS file at
    /// `path`, so that threads asking about the same file parse it once.
    /// (Not the writers' lock: a writer reads the file while holding that one.)
    pub(crate) fn parsing(&self, path: &Path) -> Arc<Mutex<()>> {
        let mut parsing = lock(&self.parsing);
        if let Some(turn) = parsing.get(path) {
            return turn.clone();
        }
        parsing.entry(path.to_owned()).or_default().clone()
    }

    /// Runs `sweep` for `dir` once per run, before any other write there:
    /// the lock is held while it runs, so a thread writing into `dir` next
    /// waits for it, and no sweep comes after its temporary file exists.
    pub(crate) fn sweep_once<E>(
        &self,
        dir: &Path,
        sweep: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), E> {
        let mut swept = lock(&self.swept);
        if !swept.contains(dir) {
            sweep()?;
            swept.insert(dir.to_owned());
        }
        Ok(())
    }
}
