//! agenix: one age file per secret file.
//!
//! ```text
//! <storeDir>/per-machine/<machine>/<artifact>/<file>.age
//! <storeDir>/per-user/<user>/<artifact>/<file>.age
//! <storeDir>/shared/<artifact>/<file>.age        (encrypted to every target's keys)
//! <storeDir>/…/<artifact>/.recipients             (who can decrypt: public keys, one a line)
//! ```
//!
//! `storeDir` (default `secrets`, relative to the project root) and the keys
//! come from `artifacts.config.agenix.{storeDir, publicHostKey, publicUserKeys}`.
//! age files do not reveal X25519 recipients, so `.recipients` records them;
//! `check` exits 3 when the configured set differs. Files are ASCII-armored
//! (readable diffs) and written atomically: every new file is complete on
//! disk before the first one replaces its predecessor.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use artifacts_crypto::Origin;

use super::contract::{Call, ShippedError};

const BACKEND: &str = "agenix";
const RECIPIENTS_FILE: &str = ".recipients";

fn artifact_dir(call: &Call) -> Result<PathBuf, ShippedError> {
    let target = call.target();
    let store = call.root.join(target.store_dir());
    Ok(match call.context.as_str() {
        "shared" => store.join("shared").join(&call.artifact),
        "nixos" => store
            .join("per-machine")
            .join(&target.name)
            .join(&call.artifact),
        "homemanager" => store
            .join("per-user")
            .join(&target.name)
            .join(&call.artifact),
        other => {
            return Err(ShippedError::Usage(format!(
                "agenix does not store {other} artifacts (use sops-nix for tanka environments)"
            )));
        }
    })
}

fn recipients_text(
    call: &Call,
) -> Result<(Vec<artifacts_crypto::age::Recipient>, String), ShippedError> {
    let recipients = call.recipients(BACKEND)?;
    let mut text = String::new();
    for recipient in &recipients {
        text.push_str(recipient.as_str());
        text.push('\n');
    }
    Ok((recipients, text))
}

/// 0 stored for the configured recipients, 1 missing, 3 recipients changed.
pub fn check(call: &Call) -> Result<i32, ShippedError> {
    let dir = artifact_dir(call)?;
    if call
        .secret_files()
        .any(|name| !dir.join(format!("{name}.age")).is_file())
    {
        return Ok(1);
    }
    let (_, expected) = recipients_text(call)?;
    let recorded = std::fs::read_to_string(dir.join(RECIPIENTS_FILE)).unwrap_or_default();
    if recorded != expected {
        eprintln!(
            "agenix: {} is encrypted to other recipients than configured",
            dir.display()
        );
        return Ok(3);
    }
    Ok(0)
}

/// Encrypts every secret file of `$out`; all or nothing.
pub fn serialize(call: &Call) -> Result<(), ShippedError> {
    let out = call.out()?;
    let dir = artifact_dir(call)?;
    let (recipients, recipients_text) = recipients_text(call)?;
    // Encrypt everything in memory first: a bad recipient fails before any write.
    let mut encrypted = Vec::new();
    for name in call.secret_files() {
        let source = out.join(name);
        let plaintext = zeroize::Zeroizing::new(
            std::fs::read(&source).map_err(ShippedError::io("read", &source))?,
        );
        let ciphertext = artifacts_crypto::age::encrypt(&recipients, &plaintext, true)?;
        encrypted.push((dir.join(format!("{name}.age")), ciphertext));
    }
    encrypted.push((dir.join(RECIPIENTS_FILE), recipients_text.into_bytes()));
    std::fs::create_dir_all(&dir).map_err(ShippedError::io("create", &dir))?;
    // Then every temporary file; only when all exist, the renames.
    let mut staged = Vec::new();
    for (path, content) in &encrypted {
        let mut temp = tempfile::Builder::new()
            .prefix(".agenix-")
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(&dir)
            .map_err(ShippedError::io("create a temporary file in", &dir))?;
        temp.write_all(content)
            .map_err(ShippedError::io("write", path))?;
        temp.as_file()
            .sync_all()
            .map_err(ShippedError::io("sync", path))?;
        staged.push((temp, path));
    }
    for (temp, path) in staged {
        temp.persist(path).map_err(|e| ShippedError::Io {
            action: "replace",
            path: path.clone(),
            source: e.error,
        })?;
    }
    if let Ok(handle) = std::fs::File::open(&dir) {
        let _ = handle.sync_all();
    }
    Ok(())
}

/// Decrypts every secret file into `$out`.
pub fn deserialize(call: &Call) -> Result<(), ShippedError> {
    let out = call.out()?;
    let dir = artifact_dir(call)?;
    let identities = call.identities()?;
    for name in call.secret_files() {
        let path = dir.join(format!("{name}.age"));
        let ciphertext = std::fs::read(&path).map_err(ShippedError::io("read", &path))?;
        let plaintext =
            artifacts_crypto::age::decrypt(&identities, &ciphertext, &Origin::File(path.clone()))?;
        crate::scratch::write_private(&out.join(name), &plaintext)
            .map_err(ShippedError::io("write", &out.join(name)))?;
    }
    Ok(())
}

/// The directory holding every artifact of the context (per target, or shared).
fn context_dir(call: &Call) -> Result<PathBuf, ShippedError> {
    let target = call.target();
    let store = call.root.join(target.store_dir());
    Ok(match call.context.as_str() {
        "shared" => store.join("shared"),
        "nixos" => store.join("per-machine").join(&target.name),
        "homemanager" => store.join("per-user").join(&target.name),
        other => {
            return Err(ShippedError::Usage(format!(
                "agenix does not store {other} artifacts"
            )));
        }
    })
}

/// Prints the artifacts stored for the target (or shared): one directory each.
pub fn list(call: &Call) -> Result<(), ShippedError> {
    let dir = context_dir(call)?;
    let mut names = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(ShippedError::io("read", &dir))?;
                let hidden = entry.file_name().to_string_lossy().starts_with('.');
                if !hidden
                    && entry
                        .file_type()
                        .map_err(ShippedError::io("read", &dir))?
                        .is_dir()
                {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ShippedError::io("read", &dir)(e)),
    }
    names.sort();
    for name in names {
        println!("{name}");
    }
    Ok(())
}

/// Removes an artifact's directory: renamed away first, so it disappears at once.
pub fn remove(call: &Call) -> Result<(), ShippedError> {
    if call.artifact.is_empty() || call.artifact.contains('/') || call.artifact.contains("..") {
        return Err(ShippedError::Usage(format!(
            "refusing to remove artifact `{}`",
            call.artifact
        )));
    }
    let dir = artifact_dir(call)?;
    if !dir.exists() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(&call.root);
    let doomed = parent.join(format!(".removing-{}", call.artifact));
    std::fs::rename(&dir, &doomed).map_err(ShippedError::io("remove", &dir))?;
    std::fs::remove_dir_all(&doomed).map_err(ShippedError::io("remove", &doomed))?;
    Ok(())
}
