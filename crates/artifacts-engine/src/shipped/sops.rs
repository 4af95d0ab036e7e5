//! sops-nix (also named `sops`): one SOPS file per target, values nested
//! `<artifact>: {<file>: value}`, so sops-nix reads them with
//! `key = "<artifact>/<file>"`.
//!
//! ```text
//! <storeDir>/per-machine/<machine>.sops.yaml
//! <storeDir>/per-user/<user>.sops.yaml
//! <storeDir>/shared/<artifact>.sops.yaml
//! environments/<env>/secrets.sops.yaml     (tanka; what the ArgoCD plugin reads)
//! ```
//!
//! Recipients come from `artifacts.config.sops-nix.{publicHostKey,
//! publicUserKeys}` (or the agenix keys of the same names), age or SSH. Each
//! write decrypts the file, sets this artifact's values and writes the whole
//! file atomically: other artifacts in the same file keep their ciphertext.
//! Adding to an existing file needs an identity among its recipients.

use std::path::PathBuf;

use artifacts_crypto::Origin;
use artifacts_crypto::age::Recipient;
use artifacts_crypto::sops::path::Step;
use artifacts_crypto::sops::{EncryptOptions, EncryptedFile, Entry, Format, Map, TreePath, Value};

use super::contract::{Call, ShippedError};

const BACKEND: &str = "sops-nix";

fn file_path(call: &Call) -> PathBuf {
    let target = call.target();
    let store = call.root.join(target.store_dir());
    match call.context.as_str() {
        "tanka" => call
            .root
            .join("environments")
            .join(&target.name)
            .join("secrets.sops.yaml"),
        "shared" => store
            .join("shared")
            .join(format!("{}.sops.yaml", call.artifact)),
        "homemanager" => store
            .join("per-user")
            .join(format!("{}.sops.yaml", target.name)),
        _ => store
            .join("per-machine")
            .join(format!("{}.sops.yaml", target.name)),
    }
}

fn value_path(call: &Call, file: &str) -> TreePath {
    TreePath(vec![
        Step::Key(call.artifact.clone()),
        Step::Key(file.to_owned()),
    ])
}

fn same_recipients(file: &EncryptedFile, wanted: &[Recipient]) -> bool {
    let mut have: Vec<String> = file
        .metadata()
        .age
        .iter()
        .map(|key| {
            Recipient::parse(&key.recipient)
                .map(|r| r.as_str().to_owned())
                .unwrap_or_else(|_| key.recipient.trim().to_owned())
        })
        .collect();
    have.sort();
    have.dedup();
    let want: Vec<&str> = wanted.iter().map(|r| r.as_str()).collect();
    have == want
}

/// 0 stored for the configured recipients, 1 missing, 3 recipients changed.
/// Reads only the file's structure and metadata: no key needed.
pub fn check(call: &Call) -> Result<i32, ShippedError> {
    let path = file_path(call);
    if !path.is_file() {
        return Ok(1);
    }
    let file = EncryptedFile::read(&path, Some(Format::Yaml))?;
    let stored = file
        .document()
        .branches
        .first()
        .and_then(|root| root.get(&call.artifact));
    let complete = match stored {
        Some(Value::Map(values)) => call.secret_files().all(|name| values.get(name).is_some()),
        _ => false,
    };
    if !complete {
        return Ok(1);
    }
    if !same_recipients(&file, &call.recipients(BACKEND)?) {
        eprintln!(
            "sops-nix: {} is encrypted to other recipients than configured",
            path.display()
        );
        return Ok(3);
    }
    Ok(0)
}

/// Sets this artifact's values in the target's file, re-keying it when the
/// recipients changed; creates the file when it does not exist.
pub fn serialize(call: &Call) -> Result<(), ShippedError> {
    let out = call.out()?;
    let path = file_path(call);
    let recipients = call.recipients(BACKEND)?;
    let mut values = Vec::new();
    for name in call.secret_files() {
        let source = out.join(name);
        let bytes = std::fs::read(&source).map_err(ShippedError::io("read", &source))?;
        let text = String::from_utf8(bytes).map_err(|_| {
            ShippedError::Usage(format!(
                "file `{name}` of artifact `{}` is not UTF-8 text, and SOPS values are text; store it with agenix, or base64-encode it in the generator",
                call.artifact
            ))
        })?;
        values.push((name, text));
    }
    let encrypted = if path.is_file() {
        let file = EncryptedFile::read(&path, Some(Format::Yaml))?;
        let identities = call.identities()?;
        let rekey = !same_recipients(&file, &recipients);
        let mut decrypted = file.decrypt(&identities)?;
        for (name, text) in values {
            decrypted.set(&value_path(call, name), Value::Str(text))?;
        }
        if rekey {
            // A new data key: removed recipients cannot read what comes next.
            decrypted.rotate(Some(&recipients))?
        } else {
            decrypted.encrypt()?
        }
    } else {
        let mut artifact = Map::default();
        for (name, text) in values {
            artifact.insert(name, Value::Str(text));
        }
        let mut root = Map::default();
        root.insert(&call.artifact, Value::Map(artifact));
        let document = artifacts_crypto::sops::Document {
            branches: vec![root],
        };
        let options = EncryptOptions {
            recipients,
            ..EncryptOptions::default()
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(ShippedError::io("create", parent))?;
        }
        artifacts_crypto::sops::encrypt(
            document,
            Format::Yaml,
            &options,
            &Origin::File(path.clone()),
        )?
    };
    artifacts_crypto::fsutil::write_atomic(&path, &encrypted.to_bytes())?;
    Ok(())
}

/// Whether `serialize` can write with the identities at hand, asked before
/// any prompt or generator: a new file needs no identity, adding to an
/// existing one needs its data key, so an identity among its recipients.
/// 0 yes, 1 no (stderr says which recipients would do).
pub fn writable(call: &Call) -> Result<i32, ShippedError> {
    let path = file_path(call);
    if !path.is_file() {
        return Ok(0);
    }
    let file = EncryptedFile::read(&path, Some(Format::Yaml))?;
    match file.data_key(&call.identities()?) {
        Ok(_) => Ok(0),
        Err(artifacts_crypto::Error::NoIdentities { .. })
        | Err(artifacts_crypto::Error::NoMatchingIdentity { .. }) => {
            let shown = path.strip_prefix(&call.root).unwrap_or(&path);
            let recipients: Vec<String> = file
                .metadata()
                .age
                .iter()
                .map(|key| key.recipient.trim().to_owned())
                .collect();
            eprintln!(
                "`{}` exists, and adding to it needs an identity of one of its recipients: {}",
                shown.display(),
                recipients.join(", ")
            );
            Ok(1)
        }
        Err(other) => Err(other.into()),
    }
}

/// Decrypts the file and writes this artifact's values into `$out`.
pub fn deserialize(call: &Call) -> Result<(), ShippedError> {
    let out = call.out()?;
    let path = file_path(call);
    let file = EncryptedFile::read(&path, Some(Format::Yaml))?;
    let decrypted = file.decrypt(&call.identities()?)?;
    let root = decrypted.document().branches.first();
    for name in call.secret_files() {
        let value = root
            .and_then(|root| root.get(&call.artifact))
            .and_then(|artifact| match artifact {
                Value::Map(values) => values.get(name),
                _ => None,
            });
        let bytes: Vec<u8> = match value {
            Some(Value::Str(text)) => text.as_bytes().to_vec(),
            Some(_) => {
                return Err(ShippedError::Usage(format!(
                    "`{}` in `{}` is not a string",
                    value_path(call, name),
                    path.display()
                )));
            }
            None => {
                return Err(ShippedError::Usage(format!(
                    "`{}` is missing from `{}`; run `artifacts generate`",
                    value_path(call, name),
                    path.display()
                )));
            }
        };
        let bytes = zeroize::Zeroizing::new(bytes);
        crate::scratch::write_private(&out.join(name), &bytes)
            .map_err(ShippedError::io("write", &out.join(name)))?;
    }
    Ok(())
}

/// Prints the artifacts stored for the target (top-level keys of its file) or,
/// in the shared context, one per `shared/<artifact>.sops.yaml`.
pub fn list(call: &Call) -> Result<(), ShippedError> {
    let mut names = Vec::new();
    if call.context == "shared" {
        let dir = call.root.join(call.target().store_dir()).join("shared");
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(ShippedError::io("read", &dir))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if let Some(artifact) = name.strip_suffix(".sops.yaml") {
                        names.push(artifact.to_owned());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ShippedError::io("read", &dir)(e)),
        }
    } else {
        let path = file_path(call);
        if path.is_file() {
            let file = EncryptedFile::read(&path, Some(Format::Yaml))?;
            if let Some(root) = file.document().branches.first() {
                names.extend(root.0.iter().filter_map(entry_key).map(str::to_owned));
            }
        }
    }
    names.sort();
    names.dedup();
    for name in names {
        println!("{name}");
    }
    Ok(())
}

/// Removes an artifact: its shared file, or its key from the target's file
/// (which needs an identity among the file's recipients; an emptied file is deleted).
pub fn remove(call: &Call) -> Result<(), ShippedError> {
    let path = file_path(call);
    if !path.is_file() {
        return Ok(());
    }
    if call.context == "shared" {
        std::fs::remove_file(&path).map_err(ShippedError::io("remove", &path))?;
        return Ok(());
    }
    let file = EncryptedFile::read(&path, Some(Format::Yaml))?;
    let mut decrypted = file.decrypt(&call.identities()?)?;
    decrypted.unset(&TreePath(vec![Step::Key(call.artifact.clone())]))?;
    let empty = decrypted
        .document()
        .branches
        .iter()
        .all(|b| b.0.iter().all(|e| entry_key(e).is_none()));
    if empty {
        std::fs::remove_file(&path).map_err(ShippedError::io("remove", &path))?;
    } else {
        artifacts_crypto::fsutil::write_atomic(&path, &decrypted.encrypt()?.to_bytes())?;
    }
    Ok(())
}

/// The key of a mapping entry (comments have none).
fn entry_key(entry: &Entry) -> Option<&str> {
    match entry {
        Entry::Pair(key, _) => Some(key),
        Entry::Comment(_) => None,
    }
}
