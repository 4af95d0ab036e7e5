//! agenix: one age file per secret file.
//!
//! ```text
//! <storeDir>/per-machine/<machine>/<artifact>/<file>.age
//! <storeDir>/per-user/<user>/<artifact>/<file>.age
//! <storeDir>/shared/<artifact>/<file>.age        (encrypted to every target's keys)
//! <storeDir>/…/<artifact>/.recipients             (who can decrypt: public keys, one a line)
//! <storeDir>/…/<artifact>/.generation             (SHA-256 of every file above)
//! ```
//!
//! `storeDir` (default `secrets`, relative to the project root, never
//! leaving it) and the keys come from
//! `artifacts.config.agenix.{storeDir, publicHostKey, publicUserKeys}`.
//! age files do not reveal X25519 recipients, so `.recipients` records them;
//! `check` exits 3 when the configured set differs. Files are ASCII-armored
//! (readable diffs).
//!
//! Generations switch atomically: `serialize` writes a complete new
//! `<artifact>` directory under a hidden name (`.agenix-<artifact>.<tag>`)
//! next to the current one and swaps the two with one
//! `renameat2(RENAME_EXCHANGE)`; a reader, or a run killed at any point,
//! sees the old set or the new set. Hidden leftovers of killed runs are
//! removed by the next `serialize` of the artifact, the next batch stored
//! in its directory (`generate` stores the artifacts of a target together,
//! [`serialize_all`]), or the next `rekey` of its directory, which
//! re-encrypts many artifacts as one batch ([`rekey_all`]). `.generation`, written
//! into each generation, lets `check` tell a mix of two generations (say,
//! from a git merge) from a stored artifact. Nothing is read, written or
//! removed through a symbolic link ([`artifacts_os::fs::Dir`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};

use artifacts_crypto::Origin;
use artifacts_engine::store::Checked;
use artifacts_os::fs::Dir;
use sha2::{Digest, Sha256};

use crate::call::{Call, Error};

const BACKEND: &str = "agenix";
const RECIPIENTS_FILE: &str = ".recipients";
const GENERATION_FILE: &str = ".generation";
const GENERATION_HEADER: &str =
    "# artifacts agenix generation: the SHA-256 of each file of this generation";

/// A name used as one path component: not empty, no `/`, not `.`/`..`, not hidden.
fn component<'n>(name: &'n str, what: &str) -> Result<&'n str, Error> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') || name.contains('\0') {
        return Err(Error::Usage(format!(
            "{what} `{name}` cannot be a directory name in the agenix store"
        )));
    }
    Ok(name)
}

/// The directory holding every artifact of the context (per target, or
/// shared), relative to the project root.
fn context_dir(call: &Call) -> Result<PathBuf, Error> {
    let (kind, target) = context_parts(call)?;
    Ok(kind.join(target))
}

/// [`context_dir`] in two parts: the directory of the context's kind
/// (`<storeDir>/per-machine`, `<storeDir>/per-user`, `<storeDir>/shared`)
/// and the target's directory below it (empty when shared).
fn context_parts(call: &Call) -> Result<(PathBuf, PathBuf), Error> {
    let target = call.target();
    let store = target.store_dir(BACKEND)?;
    Ok(match call.context.as_str() {
        "shared" => (store.join("shared"), PathBuf::new()),
        "nixos" => (
            store.join("per-machine"),
            PathBuf::from(component(&target.name, "machine")?),
        ),
        "homemanager" => (
            store.join("per-user"),
            PathBuf::from(component(&target.name, "user")?),
        ),
        other => {
            return Err(Error::Usage(format!(
                "agenix does not store {other} artifacts (use sops-nix for tanka environments)"
            )));
        }
    })
}

/// The artifact's directory, `None` when it does not exist. The directory
/// of the context's kind stays open for the run (see [`crate::cache::Cache`]):
/// every artifact of every target of a fleet's `check` is below it.
fn open_artifact_dir(call: &Call) -> Result<Option<Dir>, Error> {
    let (kind, target) = context_parts(call)?;
    let below = target.join(component(&call.artifact, "artifact")?);
    let kind_path = call.root.join(&kind);
    let Some(base) = call.cache.dir(&kind_path, || {
        call.root_dir()?
            .open(&kind)
            .map_err(Error::io("open", &kind_path))
    })?
    else {
        return Ok(None);
    };
    base.open(&below)
        .map_err(Error::io("open", &kind_path.join(&below)))
}

/// The artifact's directory, relative to the project root.
fn artifact_dir(call: &Call) -> Result<PathBuf, Error> {
    Ok(context_dir(call)?.join(component(&call.artifact, "artifact")?))
}

fn recipients_text(
    call: &Call,
) -> Result<(Arc<Vec<artifacts_crypto::age::Recipient>>, String), Error> {
    let recipients = call.recipients(BACKEND)?;
    let mut text = String::new();
    for recipient in recipients.iter() {
        text.push_str(recipient.as_str());
        text.push('\n');
    }
    Ok((recipients, text))
}

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The `.generation` record of a set of files.
fn generation_record(files: &[(String, Vec<u8>)]) -> String {
    let mut text = format!("{GENERATION_HEADER}\n");
    for (name, content) in files {
        text.push_str(&format!("{}  {name}\n", digest(content)));
    }
    text
}

/// Reads a file of the artifact's directory, refusing links and non-files.
fn read(dir: &Dir, name: &str) -> Result<Option<Vec<u8>>, Error> {
    dir.read(name)
        .map_err(Error::io("read", &dir.path().join(name)))
}

/// What an artifact's directory holds, its generation record verified.
enum Inspected {
    /// A declared secret file is missing.
    Missing,
    /// Every `.age` file (name, content), and `.recipients` as recorded
    /// (empty when lost).
    Stored {
        ciphertexts: Vec<(String, Vec<u8>)>,
        recorded: Vec<u8>,
    },
}

/// Reads the artifact's files in `dir` once: `.age` files checked for
/// structure, and against `.generation` together with `.recipients`. A
/// damaged `.age` file (empty, merge-conflicted, not age) or a directory
/// mixing two generations is an error, never "stored".
fn inspect(call: &Call, dir: &Dir) -> Result<Inspected, Error> {
    let mut ciphertexts = Vec::new();
    for name in call.secret_files() {
        let file = format!("{name}.age");
        let Some(content) = read(dir, &file)? else {
            return Ok(Inspected::Missing);
        };
        artifacts_crypto::age::check_structure(&content, &Origin::File(dir.path().join(&file)))?;
        ciphertexts.push((file, content));
    }
    let recorded = read(dir, RECIPIENTS_FILE)?;
    // Stores written before generation records existed have none: nothing to compare.
    if let Some(record) = read(dir, GENERATION_FILE)? {
        let record = String::from_utf8_lossy(&record);
        let damaged = |reason: String| {
            Error::Damaged(format!(
                "`{}` {reason}; regenerate it (`artifacts regenerate {}`)",
                dir.path().display(),
                call.artifact
            ))
        };
        let mut listed = std::collections::BTreeMap::new();
        for line in record.lines().filter(|l| !l.starts_with('#')) {
            let (hash, name) = line.split_once("  ").ok_or_else(|| {
                let shown: String = line.chars().take(60).collect();
                damaged(format!(
                    "has an unreadable {GENERATION_FILE} line `{}`",
                    shown.escape_debug()
                ))
            })?;
            listed.insert(name.to_owned(), hash.to_owned());
        }
        // A lost `.recipients` reads as "recipients changed": rekey writes it.
        let recipients = recorded
            .as_ref()
            .map(|content| (RECIPIENTS_FILE.to_owned(), content.clone()));
        for (name, content) in ciphertexts.iter().chain(&recipients) {
            match listed.get(name) {
                Some(hash) if *hash == digest(content) => {}
                Some(_) => {
                    return Err(damaged(format!(
                        "mixes two generations: `{name}` is not the one its {GENERATION_FILE} records (a merge, or a file replaced by hand)"
                    )));
                }
                None => {
                    return Err(damaged(format!(
                        "mixes two generations: `{name}` is not in its {GENERATION_FILE}"
                    )));
                }
            }
        }
    }
    Ok(Inspected::Stored {
        ciphertexts,
        recorded: recorded.unwrap_or_default(),
    })
}

/// Stored for the configured recipients, missing, or recipients changed
/// (see [`inspect`] for what is an error).
pub fn check(call: &Call) -> Result<Checked, Error> {
    let Some(dir) = open_artifact_dir(call)? else {
        return Ok(Checked::Missing);
    };
    let Inspected::Stored { recorded, .. } = inspect(call, &dir)? else {
        return Ok(Checked::Missing);
    };
    let (_, expected) = recipients_text(call)?;
    if recorded != expected.as_bytes() {
        return Ok(Checked::RecipientsChanged {
            message: format!(
                "agenix: {} is encrypted to other recipients than configured",
                dir.path().display()
            ),
        });
    }
    Ok(Checked::Stored)
}

/// The files of a new generation holding `plaintexts` (secret file name,
/// content): each encrypted to the configured recipients, then
/// `.recipients` and `.generation`. All in memory: a bad recipient fails
/// before any write.
fn new_generation<'p>(
    call: &Call,
    plaintexts: impl IntoIterator<Item = (&'p str, &'p [u8])>,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let (recipients, recipients_text) = recipients_text(call)?;
    let mut files = Vec::new();
    for (name, plaintext) in plaintexts {
        let ciphertext = artifacts_crypto::age::encrypt(&recipients, plaintext, true)?;
        files.push((format!("{name}.age"), ciphertext));
    }
    files.push((RECIPIENTS_FILE.to_owned(), recipients_text.into_bytes()));
    let record = generation_record(&files);
    files.push((GENERATION_FILE.to_owned(), record.into_bytes()));
    Ok(files)
}

/// The hidden name prefix of the artifact's staged (or replaced) generations.
fn staged_prefix(artifact: &str) -> String {
    format!(".agenix-{artifact}.")
}

/// Whether `name` is a staged or replaced generation of any artifact
/// (`.agenix-<artifact>.<tag>`), as a killed run leaves them.
fn is_staged(name: &str) -> bool {
    name.strip_prefix(".agenix-")
        .and_then(|rest| rest.rsplit_once('.'))
        .is_some_and(|(artifact, tag)| !artifact.is_empty() && artifacts_os::fs::is_tag(tag))
}

/// The new generation of the call's artifact from the secret files of
/// `$out`, encrypted in memory ([`new_generation`]).
fn generation_from(call: &Call, out: &Path) -> Result<Generation, Error> {
    let mut plaintexts = Vec::new();
    for name in call.secret_files() {
        let source = out.join(name);
        let plaintext =
            zeroize::Zeroizing::new(std::fs::read(&source).map_err(Error::io("read", &source))?);
        plaintexts.push((name, plaintext));
    }
    new_generation(
        call,
        plaintexts
            .iter()
            .map(|(name, text)| (*name, text.as_slice())),
    )
}

/// Encrypts every secret file of `$out` into a new generation and switches
/// to it in one step; all or nothing.
pub fn serialize(call: &Call, out: &Path) -> Result<(), Error> {
    let artifact = component(&call.artifact, "artifact")?;
    let relative = context_dir(call)?;
    let files = generation_from(call, out)?;

    let root = call.root_dir()?;
    let context_path = call.root.join(&relative);
    let context = root
        .create_dirs(&relative, 0o755)
        .map_err(Error::io("create", &context_path))?;
    // The new generation, complete and fsynced, under a hidden name, then
    // swapped with the current one in one step.
    context
        .replace_dir_with(&staged_prefix(artifact), artifact, files, 0o644)
        .map_err(Error::io(
            "store a new generation of",
            &context_path.join(artifact),
        ))
}

/// The directory a batch of `serialize`s shares ([`serialize_all`]): the
/// call's context directory (`<storeDir>/per-machine/<m>`, …), absolute.
pub fn store_dir(call: &Call) -> Result<PathBuf, Error> {
    component(&call.artifact, "artifact")?;
    Ok(call.root.join(context_dir(call)?))
}

/// [`serialize`] for several artifacts of one context directory
/// ([`store_dir`]), with one `syncfs(2)` and one fsync of the directory for
/// the whole batch in place of an fsync of each file and directory (six
/// for an artifact of one file), as [`rekey_all`] does:
///
/// 1. every new generation is encrypted in memory (a bad recipient or an
///    unreadable file fails the batch before any write);
/// 2. what a killed run left in the directory is removed; each new
///    generation is staged under a hidden name, not fsynced; one `syncfs`
///    makes all of them durable;
/// 3. each is swapped in (`renameat2(RENAME_EXCHANGE)`), then the directory
///    is fsynced once: only then does this return, and only then does the
///    engine record the batch in `artifacts.lock`;
/// 4. the previous generations are removed (not fsynced: a crash leaves
///    hidden leftovers that the next store in the directory removes).
///
/// No artifact's directory is touched before its new generation is
/// durable, so after a kill or a crash at any point each artifact is its
/// old generation or its new one, whole. A failure before the first swap
/// leaves everything as it was; one after it swaps back what was swapped
/// (best effort), so an error means nothing was stored, as the engine
/// expects of a batch.
pub fn serialize_all(calls: &[(&Call, &Path)]) -> Result<(), Error> {
    let Some(&(first, _)) = calls.first() else {
        return Ok(());
    };
    let relative = context_dir(first)?;
    let mut generations = Vec::with_capacity(calls.len());
    for &(call, out) in calls {
        let artifact = component(&call.artifact, "artifact")?;
        if context_dir(call)? != relative {
            return Err(Error::Usage(format!(
                "artifact `{artifact}` is not stored in `{}` with artifact `{}` (this is a bug in artifacts)",
                relative.display(),
                first.artifact
            )));
        }
        generations.push((artifact, generation_from(call, out)?));
    }
    let root = first.root_dir()?;
    let context_path = first.root.join(&relative);
    let context = root
        .create_dirs(&relative, 0o755)
        .map_err(Error::io("create", &context_path))?;
    context
        .remove_leftovers(is_staged)
        .map_err(Error::io("remove what a killed run left in", &context_path))?;
    let failed = |artifact: &str, error| {
        Error::io("store a new generation of", &context_path.join(artifact))(error)
    };

    // 2. Staged, then made durable together.
    let mut staged: Vec<(&str, OsString)> = Vec::with_capacity(generations.len());
    let mut staging = Ok(());
    for (artifact, files) in &generations {
        let contents = files.iter().map(|(name, content)| (name, content));
        match context.stage_dir(&staged_prefix(artifact), contents, 0o644) {
            Ok(name) => staged.push((*artifact, name)),
            Err(error) => {
                staging = Err(failed(artifact, error));
                break;
            }
        }
    }
    drop(generations);
    let staging = staging.and_then(|()| {
        context.sync_filesystem().map_err(Error::io(
            "make durable the new generations in",
            &context_path,
        ))
    });
    if let Err(error) = staging {
        for (_, name) in &staged {
            let _ = context.remove_leftover(name);
        }
        return Err(error);
    }

    // 3. Swapped in, then the swaps made durable.
    let mut swapped: Vec<(&str, &OsString, Option<OsString>)> = Vec::with_capacity(staged.len());
    let mut swapping = Ok(());
    for (artifact, name) in &staged {
        match context.exchange(name, artifact) {
            Ok(previous) => swapped.push((*artifact, name, previous)),
            Err(error) => {
                swapping = Err(failed(artifact, error));
                break;
            }
        }
    }
    let swapping = swapping.and_then(|()| {
        context.sync_checked().map_err(Error::io(
            "make durable the new generations in",
            &context_path,
        ))
    });
    if let Err(error) = swapping {
        undo_swaps(&context, &swapped);
        for (_, name) in &staged {
            let _ = context.remove_leftover(name);
        }
        return Err(error);
    }

    // 4. The previous generations removed.
    for (_, _, previous) in swapped {
        if let Some(previous) = previous {
            let _ = context.remove_leftover(previous);
        }
    }
    Ok(())
}

/// Puts back the previous generations of a failed [`serialize_all`] batch
/// (each `(artifact, staged name, previous generation's name)` as
/// [`Dir::exchange`] left it), best effort, and fsyncs the directory; the
/// new generations end up under their staged names.
fn undo_swaps(context: &Dir, swapped: &[(&str, &OsString, Option<OsString>)]) {
    for (artifact, staged, previous) in swapped.iter().rev() {
        let _ = match previous {
            // Exchanged: exchanging again puts each back.
            Some(previous) if previous == *staged => context.exchange(staged, artifact).map(drop),
            // Moved aside (no RENAME_EXCHANGE): moved back.
            Some(previous) => context
                .rename(artifact, staged)
                .and_then(|()| context.rename(previous, artifact)),
            // Nothing was there: nothing is again.
            None => context.rename(artifact, staged),
        };
    }
    context.sync();
}

/// Decrypts `ciphertext` (the file `path`) with the call's identities.
/// age files do not name their X25519 recipients; `.recipients` (`recorded`)
/// does, so a failure lists them as sops's does.
fn decrypt(
    call: &Call,
    ciphertext: &[u8],
    path: PathBuf,
    recorded: impl FnOnce() -> Result<Vec<u8>, Error>,
) -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
    let identities = call.identities()?;
    match artifacts_crypto::age::decrypt(&identities, ciphertext, &Origin::File(path)) {
        Err(artifacts_crypto::Error::NoMatchingIdentity { origin, recipients })
            if recipients.is_empty() =>
        {
            let recorded = recorded()?;
            Err(artifacts_crypto::Error::NoMatchingIdentity {
                origin,
                recipients: String::from_utf8_lossy(&recorded)
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned)
                    .collect(),
            }
            .into())
        }
        other => Ok(other?),
    }
}

/// Decrypts every secret file into `$out`.
pub fn deserialize(call: &Call, out: &Path) -> Result<(), Error> {
    let relative = artifact_dir(call)?;
    let path = call.root.join(&relative);
    let dir = call
        .root_dir()?
        .open(&relative)
        .map_err(Error::io("open", &path))?
        .ok_or_else(|| {
            Error::Usage(format!(
                "`{}` does not exist; run `artifacts generate`",
                path.display()
            ))
        })?;
    for name in call.secret_files() {
        let file = format!("{name}.age");
        let path = dir.path().join(&file);
        let ciphertext = read(&dir, &file)?.ok_or_else(|| {
            Error::Usage(format!(
                "`{}` does not exist; run `artifacts generate`",
                path.display()
            ))
        })?;
        let plaintext = decrypt(call, &ciphertext, path, || {
            Ok(read(&dir, RECIPIENTS_FILE)?.unwrap_or_default())
        })?;
        artifacts_os::scratch::write_private(&out.join(name), &plaintext)
            .map_err(Error::io("write", &out.join(name)))?;
    }
    Ok(())
}

/// The artifacts stored for the target (or shared): one directory each;
/// links and hidden entries are not artifacts.
pub fn list(call: &Call) -> Result<Vec<String>, Error> {
    let relative = context_dir(call)?;
    let path = call.root.join(&relative);
    let Some(dir) = call
        .root_dir()?
        .open(&relative)
        .map_err(Error::io("open", &path))?
    else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    for (name, kind) in dir.entries().map_err(Error::io("read", &path))? {
        let name = name.to_string_lossy();
        if !name.starts_with('.') && kind == artifacts_os::fs::FileType::Directory {
            names.push(name.into_owned());
        }
    }
    Ok(names)
}

/// Removes an artifact's directory: renamed away first, so it disappears at
/// once, then removed without following any link.
pub fn remove(call: &Call) -> Result<(), Error> {
    let artifact = component(&call.artifact, "artifact")
        .map_err(|_| Error::Usage(format!("refusing to remove artifact `{}`", call.artifact)))?;
    let relative = context_dir(call)?;
    let path = call.root.join(&relative);
    let Some(dir) = call
        .root_dir()?
        .open(&relative)
        .map_err(Error::io("open", &path))?
    else {
        return Ok(());
    };
    match dir.kind(artifact).map_err(Error::io("read", &path))? {
        None => Ok(()),
        Some(artifacts_os::fs::FileType::Directory) => dir
            .remove(artifact)
            .map_err(Error::io("remove", &path.join(artifact))),
        Some(_) => Err(Error::Usage(format!(
            "refusing to remove `{}`: not a directory of the agenix store",
            path.join(artifact).display()
        ))),
    }
}

/// A shared failure (the root, a context directory, a sync) as each call's error.
fn shared_io(action: &'static str, path: &Path, error: &std::io::Error) -> Error {
    Error::io(action, path)(std::io::Error::new(error.kind(), error.to_string()))
}

/// Re-encrypts the artifacts of `calls` whose recipients changed, in
/// batches (see the module doc for the one-artifact path):
///
/// 1. each context directory (`per-machine/<m>`, …) is opened once, without
///    following links, and a killed run's hidden leftovers in it are
///    removed once; so are those of the `current` calls' directories (the
///    run's artifacts that need nothing), where a killed run may have
///    swapped everything before it could remove the previous generations;
/// 2. each artifact is read once (checked as `check` does: unchanged
///    recipients, or nothing stored, is nothing to do), decrypted and
///    re-encrypted in memory;
/// 3. in rounds, each taking a share of the artifacts ([`round_shares`]):
///    their new generations are staged next to them under
///    hidden names, not fsynced; one `syncfs(2)` per file system makes all
///    of them durable at once (in place of an fsync of each file and
///    directory); each is swapped in (`renameat2(RENAME_EXCHANGE)`); each
///    directory is fsynced once. The first round writes new directories;
///    the later ones rewrite, in place, the previous generations the round
///    before swapped out (once those swaps are known durable; moved to the
///    directory where they are needed, still under hidden names), so most of
///    a batch allocates no new inodes, which is what creating thousands of
///    small files costs most on some file systems (ext4 without a journal
///    scans past every recently deleted inode for each new one);
/// 4. the previous generations left are removed.
///
/// Crash guarantee, as for `serialize`: no artifact's directory is touched
/// before its round's swap, and by then its new generation is on disk; a
/// directory rewritten for a later round is one that no name of an
/// artifact can come back to. So after a kill or a crash at any point
/// each artifact is its old generation or its new one, whole; what a
/// killed run leaves are hidden directories that step 1 of the next run
/// removes. Steps 1–4 run on up to `jobs` threads; identities and
/// recipients are loaded once (see [`Cache`]).
///
/// [`Cache`]: crate::cache::Cache
pub fn rekey_all(calls: &[Call], current: &[Call], jobs: usize) -> Vec<Result<bool, Error>> {
    let Some(first) = calls.first().or(current.first()) else {
        return Vec::new();
    };
    // The context directory of each call, by index into `dirs`.
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut index = std::collections::BTreeMap::new();
    let mut placed: Vec<Result<usize, Error>> = Vec::with_capacity(calls.len());
    for call in calls {
        placed.push(context_dir(call).and_then(|relative| {
            component(&call.artifact, "artifact")?;
            Ok(*index.entry(relative.clone()).or_insert_with(|| {
                dirs.push(relative);
                dirs.len() - 1
            }))
        }));
    }
    // Directories of current calls only: cleaned up when they can be, never an error.
    let rekeyed = dirs.len();
    for relative in current.iter().filter_map(|call| context_dir(call).ok()) {
        index.entry(relative.clone()).or_insert_with(|| {
            dirs.push(relative);
            dirs.len() - 1
        });
    }
    let root = match first.root_dir() {
        Ok(root) => root,
        Err(error) => {
            let error = std::io::Error::other(error.to_string());
            return calls
                .iter()
                .map(|call| Err(shared_io("open the project root", &call.root, &error)))
                .collect();
        }
    };
    // 1. Each context directory once: opened, leftovers removed.
    let opened = artifacts_engine::store::parallel(dirs.len(), jobs, |at| {
        let dir = root.open(&dirs[at]);
        if let Ok(Some(dir)) = &dir {
            let swept = dir.remove_leftovers(is_staged);
            if at < rekeyed {
                swept?;
            }
        }
        dir
    });
    // 2. Each artifact read and re-encrypted, in memory.
    let generations = artifacts_engine::store::parallel(calls.len(), jobs, |at| {
        let call = &calls[at];
        let d = match &placed[at] {
            Ok(d) => *d,
            Err(_) => return Ok(None),
        };
        match &opened[d] {
            Err(error) => Err(shared_io("open", &first.root.join(&dirs[d]), error)),
            // Nothing stored for this target: nothing to re-encrypt.
            Ok(None) => Ok(None),
            Ok(Some(dir)) => reencrypt(call, dir),
        }
    });
    let mut results: Vec<Result<bool, Error>> = Vec::with_capacity(calls.len());
    let mut pending: Vec<Vec<(usize, Generation)>> = (0..dirs.len()).map(|_| Vec::new()).collect();
    for (at, (place, generation)) in placed.into_iter().zip(generations).enumerate() {
        results.push(match (place, generation) {
            (Err(error), _) | (_, Err(error)) => Err(error),
            (Ok(_), Ok(None)) => Ok(false),
            (Ok(d), Ok(Some(files))) => {
                pending[d].push((at, files));
                Ok(true)
            }
        });
    }
    // 3. In rounds: stage a share of the artifacts, make them durable,
    // swap them in. The generations a round swaps out are, once that swap
    // is durable, rewritten as the next rounds' staged ones (moved to the
    // directory that needs them).
    let order: Vec<(usize, usize)> = pending
        .iter()
        .enumerate()
        .flat_map(|(d, members)| (0..members.len()).map(move |i| (d, i)))
        .collect();
    let spare: Spare = std::sync::Mutex::new(Vec::new());
    for share in round_shares(order.len()) {
        let mut members: Vec<Vec<usize>> = (0..dirs.len()).map(|_| Vec::new()).collect();
        for &(d, i) in &order[share] {
            members[d].push(i);
        }
        let staged = artifacts_engine::store::parallel(dirs.len(), jobs, |d| {
            let Ok(Some(dir)) = &opened[d] else {
                return Vec::new();
            };
            members[d]
                .iter()
                .map(|&i| {
                    let (at, files) = &pending[d][i];
                    let artifact = &calls[*at].artifact;
                    (*at, stage(&opened, d, dir, artifact, files, &spare))
                })
                .collect::<Vec<_>>()
        });
        let mut swaps: Vec<Vec<(usize, OsString)>> = (0..dirs.len()).map(|_| Vec::new()).collect();
        for (d, members) in staged.into_iter().enumerate() {
            for (at, name) in members {
                match name {
                    Ok(name) => swaps[d].push((at, name)),
                    Err(error) => {
                        let path = first.root.join(&dirs[d]).join(&calls[at].artifact);
                        results[at] = Err(Error::io("store a new generation of", &path)(error));
                    }
                }
            }
        }
        durable(&opened, &mut swaps, |d, at, error| {
            let path = first.root.join(&dirs[d]).join(&calls[at].artifact);
            results[at] = Err(shared_io(
                "make durable the new generation of",
                &path,
                error,
            ));
        });
        let swapped = artifacts_engine::store::parallel(dirs.len(), jobs, |d| {
            let Ok(Some(dir)) = &opened[d] else {
                return Vec::new();
            };
            if swaps[d].is_empty() {
                return Vec::new();
            }
            let mut failed = Vec::new();
            let mut previous = Vec::new();
            for (at, name) in &swaps[d] {
                match dir.exchange(name, &calls[*at].artifact) {
                    // The staged name now holds the previous generation.
                    Ok(Some(old)) => previous.push(old),
                    Ok(None) => {}
                    Err(error) => {
                        let _ = dir.remove_leftover(name);
                        failed.push((*at, error));
                    }
                }
            }
            // Only swaps known to be durable free what they replaced: a
            // crash could otherwise undo one after its previous generation
            // was rewritten. Otherwise the next run removes them.
            if dir.sync_checked().is_ok() {
                spare
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(previous.into_iter().map(|old| (d, old)));
            }
            failed
        });
        for (d, failed) in swapped.into_iter().enumerate() {
            for (at, error) in failed {
                let path = first.root.join(&dirs[d]).join(&calls[at].artifact);
                results[at] = Err(Error::io("store a new generation of", &path)(error));
            }
        }
    }
    // 4. What is left of the previous generations removed (a failure
    // leaves hidden leftovers that step 1 of the next run removes).
    let spare = spare.into_inner().unwrap_or_else(PoisonError::into_inner);
    artifacts_engine::store::parallel(dirs.len(), jobs, |d| {
        if let Ok(Some(dir)) = &opened[d] {
            for (_, old) in spare.iter().filter(|(at, _)| *at == d) {
                let _ = dir.remove_leftover(old);
            }
        }
    });
    results
}

/// Previous generations swapped out by durable swaps: the directory (an
/// index into the opened context directories) and the hidden name.
type Spare = std::sync::Mutex<Vec<(usize, OsString)>>;

/// A new generation's files (name, content), ciphertext only.
type Generation = Vec<(String, Vec<u8>)>;

/// The rounds a rekey batch takes at most (see [`rekey_all`]).
const MAX_ROUNDS: usize = 8;

/// The artifacts a round of a rekey batch takes at least.
const MIN_ROUND: usize = 8;

/// The rounds of a batch of `count` artifacts to re-encrypt, all of one
/// size: the first round's artifacts are staged in new directories, each
/// later round's in the previous generations the round before swapped out
/// (one for each). So about `count / MAX_ROUNDS` artifacts cost new inodes,
/// and each round a `syncfs` and an fsync of each directory it swaps in.
fn round_shares(count: usize) -> Vec<std::ops::Range<usize>> {
    let size = count.div_ceil(MAX_ROUNDS).max(MIN_ROUND);
    (0..count)
        .step_by(size)
        .map(|start| start..count.min(start + size))
        .collect()
}

/// Step 3 of [`rekey_all`]: stages `files` in `dir` (context directory
/// `d` of `opened`), in a previous generation from `spare` when there is
/// one (one of `dir` first, else one moved over from another directory),
/// else in a new directory; returns the staged directory's name.
fn stage(
    opened: &[std::io::Result<Option<Dir>>],
    d: usize,
    dir: &Dir,
    artifact: &str,
    files: &Generation,
    spare: &Spare,
) -> std::io::Result<OsString> {
    let contents = files.iter().map(|(name, content)| (name, content));
    let reused = {
        let mut pool = spare.lock().unwrap_or_else(PoisonError::into_inner);
        let at = pool
            .iter()
            .rposition(|(from, _)| *from == d)
            .or(pool.len().checked_sub(1));
        at.map(|at| pool.swap_remove(at))
    };
    if let Some((from, old)) = reused {
        let moved = match &opened[from] {
            _ if from == d => Ok(()),
            Ok(Some(source)) => source.move_into(&old, dir),
            _ => Err(std::io::Error::other("not open")),
        };
        match moved.and_then(|()| dir.restage_dir(&old, contents.clone(), 0o644)) {
            Ok(()) => return Ok(old),
            // A new directory instead; what failed is left for the next
            // run's sweep unless it can go now.
            Err(_) => {
                let _ = dir.remove_leftover(&old);
            }
        }
    }
    dir.stage_dir(&staged_prefix(artifact), contents, 0o644)
}

/// Makes what each directory in `swaps` staged durable: one
/// `syncfs` per file system. Where that fails, the staged directories are
/// removed, their swaps dropped and `failed(dir, call, error)` told.
fn durable(
    opened: &[std::io::Result<Option<Dir>>],
    swaps: &mut [Vec<(usize, OsString)>],
    mut failed: impl FnMut(usize, usize, &std::io::Error),
) {
    let mut synced: std::collections::BTreeMap<u64, Option<std::io::Error>> =
        std::collections::BTreeMap::new();
    for (d, members) in swaps.iter_mut().enumerate() {
        let (Ok(Some(dir)), false) = (&opened[d], members.is_empty()) else {
            continue;
        };
        let error = match dir.device() {
            Ok(device) => synced
                .entry(device)
                .or_insert_with(|| dir.sync_filesystem().err())
                .as_ref()
                .map(|e| std::io::Error::new(e.kind(), e.to_string())),
            Err(error) => Some(error),
        };
        if let Some(error) = error {
            for (at, name) in members.drain(..) {
                let _ = dir.remove_leftover(&name);
                failed(d, at, &error);
            }
        }
    }
}

/// Step 2 of [`rekey_all`] for one call: the files of the artifact's new
/// generation, or `None` when there is nothing to re-encrypt.
fn reencrypt(call: &Call, dir: &Dir) -> Result<Option<Generation>, Error> {
    let artifact = component(&call.artifact, "artifact")?;
    let path = dir.path().join(artifact);
    let Some(stored) = dir.open(artifact).map_err(Error::io("open", &path))? else {
        return Ok(None);
    };
    let Inspected::Stored {
        ciphertexts,
        recorded,
    } = inspect(call, &stored)?
    else {
        return Ok(None);
    };
    let (_, expected) = recipients_text(call)?;
    if recorded == expected.as_bytes() {
        return Ok(None);
    }
    let mut plaintexts = Vec::with_capacity(ciphertexts.len());
    for ((file, ciphertext), name) in ciphertexts.iter().zip(call.secret_files()) {
        let plaintext = decrypt(call, ciphertext, stored.path().join(file), || {
            Ok(recorded.clone())
        })?;
        plaintexts.push((name, plaintext));
    }
    new_generation(
        call,
        plaintexts
            .iter()
            .map(|(name, text)| (*name, text.as_slice())),
    )
    .map(Some)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rounds_cover_every_artifact_once_and_later_ones_fit_the_one_before() {
        let ranges = |count| super::round_shares(count);
        assert!(ranges(0).is_empty());
        assert_eq!((ranges(5).len(), ranges(5)[0].clone()), (1, 0..5));
        assert_eq!(ranges(20), [0..8, 8..16, 16..20]);
        for count in [200, 10_000, 10_007] {
            let rounds = ranges(count);
            assert!(rounds.len() <= super::MAX_ROUNDS, "{count}: {rounds:?}");
            // Each round reuses what the one before swapped out: no bigger.
            assert!(
                rounds
                    .windows(2)
                    .all(|w| w[0].end == w[1].start && w[1].len() <= w[0].len()),
                "{count}: {rounds:?}"
            );
            assert_eq!((rounds[0].start, rounds.last().unwrap().end), (0, count));
        }
    }
}
