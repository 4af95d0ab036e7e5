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
//! removed by the next `serialize` of the artifact. `.generation`, written
//! into each generation, lets `check` tell a mix of two generations (say,
//! from a git merge) from a stored artifact. Nothing is read, written or
//! removed through a symbolic link ([`artifacts_os::fs::Dir`]).

use std::path::{Path, PathBuf};

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

fn recipients_text(call: &Call) -> Result<(Vec<artifacts_crypto::age::Recipient>, String), Error> {
    let recipients = call.recipients(BACKEND)?;
    let mut text = String::new();
    for recipient in &recipients {
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

/// Stored for the configured recipients, missing, or recipients changed.
/// A damaged `.age` file (empty, merge-conflicted, not age) or a directory
/// mixing two generations is an error, never "stored".
pub fn check(call: &Call) -> Result<Checked, Error> {
    let Some(dir) = open_artifact_dir(call)? else {
        return Ok(Checked::Missing);
    };
    let mut present = Vec::new();
    for name in call.secret_files() {
        let file = format!("{name}.age");
        let Some(content) = read(&dir, &file)? else {
            return Ok(Checked::Missing);
        };
        artifacts_crypto::age::check_structure(&content, &Origin::File(dir.path().join(&file)))?;
        present.push((file, content));
    }
    let recorded = read(&dir, RECIPIENTS_FILE)?;
    if let Some(recipients) = &recorded {
        // A lost `.recipients` reads as "recipients changed" below: rekey writes it.
        present.push((RECIPIENTS_FILE.to_owned(), recipients.clone()));
    }
    let recorded = recorded.unwrap_or_default();
    // Stores written before generation records existed have none: nothing to compare.
    if let Some(record) = read(&dir, GENERATION_FILE)? {
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
        for (name, content) in &present {
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

/// Encrypts every secret file of `$out` into a new generation and switches
/// to it in one step; all or nothing.
pub fn serialize(call: &Call, out: &Path) -> Result<(), Error> {
    let artifact = component(&call.artifact, "artifact")?;
    let relative = context_dir(call)?;
    let (recipients, recipients_text) = recipients_text(call)?;
    // Encrypt everything in memory first: a bad recipient fails before any write.
    let mut files = Vec::new();
    for name in call.secret_files() {
        let source = out.join(name);
        let plaintext =
            zeroize::Zeroizing::new(std::fs::read(&source).map_err(Error::io("read", &source))?);
        let ciphertext = artifacts_crypto::age::encrypt(&recipients, &plaintext, true)?;
        files.push((format!("{name}.age"), ciphertext));
    }
    files.push((RECIPIENTS_FILE.to_owned(), recipients_text.into_bytes()));
    let record = generation_record(&files);
    files.push((GENERATION_FILE.to_owned(), record.into_bytes()));

    let root = call.root_dir()?;
    let context_path = call.root.join(&relative);
    let context = root
        .create_dirs(&relative, 0o755)
        .map_err(Error::io("create", &context_path))?;
    // The new generation, complete and fsynced, under a hidden name, then
    // swapped with the current one in one step.
    context
        .replace_dir_with(&format!(".agenix-{artifact}."), artifact, files, 0o644)
        .map_err(Error::io(
            "store a new generation of",
            &context_path.join(artifact),
        ))
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
    let identities = call.identities()?;
    for name in call.secret_files() {
        let file = format!("{name}.age");
        let path = dir.path().join(&file);
        let ciphertext = read(&dir, &file)?.ok_or_else(|| {
            Error::Usage(format!(
                "`{}` does not exist; run `artifacts generate`",
                path.display()
            ))
        })?;
        let plaintext =
            match artifacts_crypto::age::decrypt(&identities, &ciphertext, &Origin::File(path)) {
                // age files do not name their X25519 recipients; `.recipients`
                // does, so the message lists them as sops's does.
                Err(artifacts_crypto::Error::NoMatchingIdentity { origin, recipients })
                    if recipients.is_empty() =>
                {
                    let recorded = read(&dir, RECIPIENTS_FILE)?.unwrap_or_default();
                    return Err(artifacts_crypto::Error::NoMatchingIdentity {
                        origin,
                        recipients: String::from_utf8_lossy(&recorded)
                            .lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty() && !l.starts_with('#'))
                            .map(str::to_owned)
                            .collect(),
                    }
                    .into());
                }
                other => other?,
            };
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
