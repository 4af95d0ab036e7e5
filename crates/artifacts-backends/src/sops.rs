//! sops-nix (also named `sops`): one SOPS file per target, values nested
//! `<artifact>: {<file>: value}`, so sops-nix reads them with
//! `key = "<artifact>/<file>"`.
//!
//! ```text
//! <storeDir>/per-machine/<machine>.sops.yaml
//! <storeDir>/per-user/<user>.sops.yaml
//! <storeDir>/shared/<artifact>.sops.yaml
//! environments/<env>/secrets.sops.yaml     (tanka, `<env>` may be nested: `prod/eu`; what the ArgoCD plugin reads)
//! ```
//!
//! Recipients come from `artifacts.config.sops-nix.{publicHostKey,
//! publicUserKeys}` (or the agenix keys of the same names), age or SSH. On
//! machines and Home Manager users, sops-nix decrypts with X25519 identities
//! only (`sops.age.keyFile`, or `sops.age.sshKeyPaths` converted as
//! `ssh-to-age` does), so ssh-ed25519 keys are encrypted to their X25519 form
//! and ssh-rsa keys are refused (see [`sops_nix_form`]); age plugin
//! recipients (`age1tpm1…`) are kept, for `sops.age.plugins`. Each
//! write decrypts the file, sets this artifact's values and writes the whole
//! file atomically: other artifacts in the same file keep their ciphertext.
//! Adding to an existing file needs an identity among its recipients.
//!
//! Vault/OpenBao transit: when the project's `.sops.yaml` (at its root) has
//! a creation rule matching a file with `hc_vault_transit_uri` (or a key
//! group's `hc_vault`), the data key is also wrapped by those transit keys
//! (see [`crate::transit`]); age recipients still come from the
//! declarations. Such files decrypt with a token as well as with an age key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use artifacts_crypto::Origin;
use artifacts_crypto::age::Recipient;
use artifacts_crypto::sops::config::SopsConfig;
use artifacts_crypto::sops::path::Step;
use artifacts_crypto::sops::{
    DataKey, Decrypted, EncryptOptions, EncryptedFile, Entry, Format, Keys, Map, TransitKey,
    TreePath, Value,
};
use artifacts_os::fs::Dir;

use artifacts_engine::store::{Asked, Checked, Writable};
use artifacts_model::TargetKind;

use crate::call::{Call, Error, TargetEntry};

const BACKEND: &str = "sops-nix";

/// The recipient a target's reader decrypts with.
///
/// sops-nix (NixOS and Home Manager) turns `sops.age.sshKeyPaths` into X25519
/// identities and never reads age's ssh stanzas: an ssh-ed25519 key becomes
/// its X25519 form (what `ssh-to-age` prints), and ssh-rsa, which has none,
/// is refused. Tanka environments are read by the real `sops` (the ArgoCD
/// plugin with an age key file, people with `SOPS_AGE_KEY_FILE` or
/// `SOPS_AGE_SSH_PRIVATE_KEY_FILE`), which reads ssh stanzas with an ssh key
/// and would not convert one: their keys stay as configured.
fn sops_nix_form(target: &TargetEntry, recipient: Recipient) -> Result<Recipient, String> {
    // sops-nix runs the age plugins listed in `sops.age.plugins` (a TPM or
    // YubiKey host key): plugin recipients stay as they are too.
    if target.target_kind == TargetKind::Tanka || recipient.plugin().is_some() {
        return Ok(recipient);
    }
    recipient.to_x25519().ok_or_else(|| {
        format!(
            "sops-nix cannot decrypt for an {} key (it reads age X25519 keys, and ssh-ed25519 host keys converted to them); use an age key (`artifacts age keygen`) or an ssh-ed25519 key, or store the artifact with the agenix backend, which reads ssh-rsa keys",
            recipient.key_type()
        )
    })
}

fn recipients(call: &Call) -> Result<Arc<Vec<Recipient>>, Error> {
    call.recipients_for(BACKEND, &sops_nix_form)
}

/// The transit keys the project's `.sops.yaml` asks for the target's file
/// (none without a config or a matching rule).
/// Read once per run and store file (see [`crate::cache::Cache`]).
fn transit_keys(call: &Call) -> Result<Vec<TransitKey>, Error> {
    let (relative, name) = file_path(call)?;
    transit_keys_of(call, &call.root.join(relative).join(name))
}

/// [`transit_keys`] for the target's file at `file`.
fn transit_keys_of(call: &Call, file: &Path) -> Result<Vec<TransitKey>, Error> {
    call.cache.transit_keys(file, || {
        let config = call.cache.sops_config(&call.root, || {
            [".sops.yaml", ".sops.yml"]
                .iter()
                .map(|name| call.root.join(name))
                .find(|p| p.is_file())
                .map(|config| SopsConfig::load(&config))
                .transpose()
        })?;
        let Some(config) = config else {
            return Ok(Vec::new());
        };
        match config.rule_for(file) {
            Ok(rule) => Ok(rule.transit),
            Err(artifacts_crypto::Error::NoCreationRule { .. }) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    })
}

/// Transit access with the operator's token (contacted only when used).
fn transit(call: &Call) -> crate::transit::Transit {
    let home = call.var("HOME").map(PathBuf::from);
    crate::transit::Transit::from_env(&|name| call.var(name), home.as_deref())
}

/// Where the target's file is, relative to the project root: its directory
/// and its name. Nothing on the way is a link ([`Dir`] refuses them).
fn file_path(call: &Call) -> Result<(PathBuf, String), Error> {
    let target = call.target();
    let plain = |name: &str, what: &str| {
        if name.is_empty() || name.contains('/') || name.starts_with('.') || name.contains('\0') {
            Err(Error::Usage(format!(
                "{what} `{name}` cannot be part of a file name in the sops-nix store"
            )))
        } else {
            Ok(())
        }
    };
    if call.context == "tanka" {
        // A tanka environment is a path below `environments/` (`prod/eu`):
        // every component is checked; [`Dir`] creates and opens each one
        // without following a link.
        artifacts_model::names::check_environment_name(&target.name).map_err(|message| {
            Error::Usage(format!(
                "tanka environment {message}: it cannot be a directory of the sops-nix store"
            ))
        })?;
        let dir = PathBuf::from("environments").join(&target.name);
        return Ok((dir, "secrets.sops.yaml".to_owned()));
    }
    let store = target.store_dir(BACKEND)?;
    Ok(match call.context.as_str() {
        // The file is named after the artifact: the target (which may be a
        // nested tanka environment) only lends its configuration.
        "shared" => {
            plain(&call.artifact, "artifact")?;
            (store.join("shared"), format!("{}.sops.yaml", call.artifact))
        }
        "homemanager" => {
            plain(&target.name, "target")?;
            (store.join("per-user"), format!("{}.sops.yaml", target.name))
        }
        _ => {
            plain(&target.name, "target")?;
            (
                store.join("per-machine"),
                format!("{}.sops.yaml", target.name),
            )
        }
    })
}

/// The target's file: its directory (when it exists; kept open for the
/// run, since every artifact of the target asks; see [`crate::cache::Cache::dir_to_read`]
/// for `to_read`) and its full path, for messages.
fn open_file_dir(call: &Call, to_read: bool) -> Result<(Option<Arc<Dir>>, String, PathBuf), Error> {
    let (relative, name) = file_path(call)?;
    let dir_path = call.root.join(&relative);
    let path = dir_path.join(&name);
    let open = || {
        call.root_dir()?
            .open(&relative)
            .map_err(Error::io("open", &dir_path))
    };
    let dir = if to_read {
        call.cache.dir_to_read(&dir_path, open)?
    } else {
        call.cache.dir(&dir_path, open)?
    };
    Ok((dir, name, path))
}

/// Holds the run's lock on the target's file while `f` reads and rewrites it.
pub fn writing<T>(call: &Call, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    let (relative, name) = file_path(call)?;
    let writer = call.cache.writer(call.root.join(relative).join(name));
    let _turn = writer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f()
}

/// Reads and parses the target's file (parsed once per run while its
/// bytes stay the same); `None` when it does not exist.
#[allow(clippy::type_complexity)]
fn read_file(call: &Call) -> Result<Option<(Arc<Dir>, String, Arc<EncryptedFile>)>, Error> {
    Ok(read_file_at(call, true)?.map(|(dir, name, _, file)| (dir, name, file)))
}

/// The target's file as [`read_file_at`] gives it: its directory, name,
/// full path and content.
type Read = (Arc<Dir>, String, PathBuf, Arc<EncryptedFile>);

/// [`read_file`], with the file's full path; a file parsed now is kept for
/// the run only if `remember` (a check reads each target's file once, and a
/// fleet's parsed files would be tens of megabytes that nothing reads again).
fn read_file_at(call: &Call, remember: bool) -> Result<Option<Read>, Error> {
    let (dir, name, path) = open_file_dir(call, !remember)?;
    let Some(dir) = dir else { return Ok(None) };
    if !remember {
        let Some(bytes) = dir.read(&name).map_err(Error::io("read", &path))? else {
            return Ok(None);
        };
        let file = parse_file(&bytes, &path)?;
        return Ok(Some((dir, name, path, Arc::new(file))));
    }
    // Taken before reading: a write in between changes it, and the next call reads again.
    let stamp = dir.file_stamp(&name).map_err(Error::io("read", &path))?;
    let unchanged = || stamp.and_then(|stamp| call.cache.sops_file_unchanged(&path, stamp));
    if let Some(file) = unchanged() {
        return Ok(Some((dir, name, path, file)));
    }
    // The artifacts of one target are checked side by side: one thread
    // parses, the others wait for its result.
    let parsing = call.cache.parsing(&path);
    let _turn = parsing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(file) = unchanged() {
        return Ok(Some((dir, name, path, file)));
    }
    let Some(bytes) = dir.read(&name).map_err(Error::io("read", &path))? else {
        return Ok(None);
    };
    // Not a regular file: `read` refused it above.
    let stamp = stamp.unwrap_or_default();
    let file = call
        .cache
        .sops_file(&path, stamp, bytes, |bytes| parse_file(bytes, &path))?;
    Ok(Some((dir, name, path, file)))
}

/// The SOPS file at `path` whose content is `bytes`.
fn parse_file(bytes: &[u8], path: &Path) -> Result<EncryptedFile, artifacts_crypto::Error> {
    EncryptedFile::parse(bytes, Format::Yaml, &Origin::File(path.to_owned()))
}

/// The file's data key, unwrapped with our identities once per run.
fn data_key(call: &Call, file: &EncryptedFile) -> Result<DataKey, Error> {
    call.cache.data_key(&call.key_vars(), file, || {
        let identities = call.identities()?;
        Ok(file.data_key_with(&Keys::with_wrapper(&identities, &transit(call)))?)
    })
}

/// Decrypts the file with its data key (see [`data_key`]); the MAC is checked every time.
fn decrypt(call: &Call, file: &EncryptedFile) -> Result<Decrypted, Error> {
    Ok(file.decrypt_with_key(data_key(call, file)?)?)
}

/// Replaces the target's file atomically, keeping its mode (0600 for a new
/// one), after removing temporary files a killed run left beside it (once
/// per directory and run: later, a temporary file there is another
/// thread's, writing another target's file).
fn write_file(call: &Call, dir: &Dir, name: &str, data: &[u8]) -> Result<(), Error> {
    let path = dir.path().join(name);
    call.cache.sweep_once(dir.path(), || {
        dir.remove_leftovers(|_| false).map_err(Error::io(
            "remove leftovers of an interrupted run in",
            dir.path(),
        ))
    })?;
    let mode = dir
        .file_mode(name)
        .map_err(Error::io("read", &path))?
        .unwrap_or(0o600);
    dir.write_atomic(name, data, mode)
        .map_err(Error::io("write", &path))
}

fn value_path(call: &Call, file: &str) -> TreePath {
    TreePath(vec![
        Step::Key(call.artifact.clone()),
        Step::Key(file.to_owned()),
    ])
}

fn same_recipients(file: &EncryptedFile, wanted: &[Recipient], transit: &[TransitKey]) -> bool {
    let mut have_transit: Vec<String> = file
        .metadata()
        .hc_vault
        .iter()
        .map(|k| k.key.uri())
        .collect();
    have_transit.sort();
    have_transit.dedup();
    let mut want_transit: Vec<String> = transit.iter().map(TransitKey::uri).collect();
    want_transit.sort();
    want_transit.dedup();
    if have_transit != want_transit {
        return false;
    }
    let mut have: Vec<std::borrow::Cow<'_, str>> = file
        .metadata()
        .age
        .iter()
        .map(|key| {
            let text = key.recipient.trim();
            // A wanted recipient's text is canonical: parsing it gives it
            // back. Only other texts (a comment, another spelling) are
            // parsed, to compare their canonical form.
            if wanted.iter().any(|r| r.as_str() == text) {
                return text.into();
            }
            Recipient::parse(text)
                .map(|r| r.as_str().to_owned())
                .unwrap_or_else(|_| text.to_owned())
                .into()
        })
        .collect();
    have.sort();
    have.dedup();
    have.iter()
        .map(|h| h.as_ref())
        .eq(wanted.iter().map(|r| r.as_str()))
}

/// Stored for the configured recipients, missing, or recipients changed.
/// Reads only the file's structure and metadata: no key needed.
pub fn check(call: &Call) -> Result<Checked, Error> {
    let read = read_file_at(call, true)?;
    check_read(
        &call.artifact,
        call.secret_files(),
        read.as_ref(),
        |file, path| {
            Ok(same_recipients(
                file,
                &recipients(call)?,
                &transit_keys_of(call, path)?,
            ))
        },
    )
}

/// [`check`] of several artifacts of `call`'s target (see
/// `StoreBackend::check_target`): the target's file is read, and its
/// recipients compared with the configured ones, once for all of them.
pub fn check_target(mut call: Call, artifacts: &[Asked]) -> Vec<Result<Checked, Error>> {
    if call.context == "shared" {
        // Each shared artifact has a file of its own.
        return artifacts
            .iter()
            .map(|asked| {
                call.artifact.clone_from(&asked.artifact);
                call.files = Call::files_of(&asked.files);
                check(&call)
            })
            .collect();
    }
    let mut read: Option<Option<Read>> = None;
    // Whether the file is encrypted to the configured recipients.
    let mut verdict: Option<bool> = None;
    artifacts
        .iter()
        .map(|asked| {
            // A failed read is tried again for the next artifact: each says
            // why it could not be checked.
            if read.is_none() {
                read = Some(read_file_at(&call, false)?);
            }
            let file = read.as_ref().and_then(Option::as_ref);
            let secret = asked.files.iter().filter(|f| f.secret).map(|f| &*f.name);
            check_read(&asked.artifact, secret, file, |file, path| {
                if let Some(same) = verdict {
                    return Ok(same);
                }
                let same =
                    same_recipients(file, &recipients(&call)?, &transit_keys_of(&call, path)?);
                verdict = Some(same);
                Ok(same)
            })
        })
        .collect()
}

/// [`check`] of `artifact` (whose secret files are `secret`) with the
/// target's file as read and the configured recipients (asked only when the
/// artifact is stored).
fn check_read<'f>(
    artifact: &str,
    mut secret: impl Iterator<Item = &'f str>,
    read: Option<&Read>,
    same_recipients: impl FnOnce(&EncryptedFile, &Path) -> Result<bool, Error>,
) -> Result<Checked, Error> {
    let Some((_, _, path, file)) = read else {
        return Ok(Checked::Missing);
    };
    let stored = file
        .document()
        .branches
        .first()
        .and_then(|root| root.get(artifact));
    let complete = match stored {
        Some(Value::Map(values)) => secret.all(|name| values.get(name).is_some()),
        _ => false,
    };
    if !complete {
        return Ok(Checked::Missing);
    }
    if !same_recipients(file, path)? {
        return Ok(Checked::RecipientsChanged {
            message: format!(
                "{BACKEND}: {} is encrypted to other recipients than configured",
                file.origin()
            ),
        });
    }
    Ok(Checked::Stored)
}

/// Sets this artifact's values in the target's file, re-keying it when the
/// recipients changed; creates the file when it does not exist.
pub fn serialize(call: &Call, out: &Path) -> Result<(), Error> {
    serialize_all(&[(call, out)])
}

/// The file a `serialize` of `call` rewrites: every artifact of a machine,
/// user or environment shares one.
pub fn store_file(call: &Call) -> Result<PathBuf, Error> {
    let (relative, name) = file_path(call)?;
    Ok(call.root.join(relative).join(name))
}

/// [`serialize`] for several artifacts of the same file, in one write: the
/// file is decrypted and encrypted once, and written once, with all of
/// them or (on any failure) none.
pub fn serialize_all(calls: &[(&Call, &Path)]) -> Result<(), Error> {
    let Some(&(first, _)) = calls.first() else {
        return Ok(());
    };
    let recipients = recipients(first)?;
    let transit_keys = transit_keys(first)?;
    let wrapper = transit(first);
    let (relative, name) = file_path(first)?;
    let mut artifacts: Vec<(&str, Vec<(&str, String)>)> = Vec::new();
    for &(call, out) in calls {
        let same_recipients = || -> Result<bool, Error> {
            let theirs = self::recipients(call)?;
            Ok(theirs
                .iter()
                .map(|r| r.as_str())
                .eq(recipients.iter().map(|r| r.as_str())))
        };
        if file_path(call)? != (relative.clone(), name.clone()) || !same_recipients()? {
            return Err(Error::Usage(format!(
                "artifact `{}` does not belong in `{}` with artifact `{}` (this is a bug in artifacts)",
                call.artifact,
                relative.join(&name).display(),
                first.artifact
            )));
        }
        let mut values = Vec::new();
        for file in call.secret_files() {
            let source = out.join(file);
            let bytes = std::fs::read(&source).map_err(Error::io("read", &source))?;
            let text = String::from_utf8(bytes).map_err(|_| {
                Error::Usage(format!(
                    "file `{file}` of artifact `{}` is not UTF-8 text, and SOPS values are text; store it with agenix, or base64-encode it in the generator",
                    call.artifact
                ))
            })?;
            values.push((file, text));
        }
        artifacts.push((&call.artifact, values));
    }
    let (dir, name, encrypted) = match read_file(first)? {
        Some((dir, name, file)) => {
            let rekey = !same_recipients(&file, &recipients, &transit_keys);
            let mut decrypted = decrypt(first, &file)?;
            for (artifact, values) in artifacts {
                for (file, text) in values {
                    let path = TreePath(vec![
                        Step::Key(artifact.to_owned()),
                        Step::Key(file.to_owned()),
                    ]);
                    decrypted.set(&path, Value::Str(text))?;
                }
            }
            let encrypted = if rekey {
                // A new data key: removed recipients cannot read what comes next.
                decrypted.rotate_with(Some(&recipients), Some(&transit_keys), Some(&wrapper))?
            } else {
                decrypted.encrypt()?
            };
            (dir, name, encrypted)
        }
        None => {
            let mut root = Map::default();
            for (artifact, values) in artifacts {
                let mut files = Map::default();
                for (file, text) in values {
                    files.insert(file, Value::Str(text));
                }
                root.insert(artifact, Value::Map(files));
            }
            let document = artifacts_crypto::sops::Document {
                branches: vec![root],
            };
            let options = EncryptOptions {
                recipients: recipients.to_vec(),
                transit: transit_keys,
                ..EncryptOptions::default()
            };
            let path = first.root.join(&relative).join(&name);
            let encrypted = artifacts_crypto::sops::encrypt_with(
                document,
                Format::Yaml,
                &options,
                Some(&wrapper),
                &Origin::File(path),
            )?;
            let dir = first
                .root_dir()?
                .create_dirs(&relative, 0o755)
                .map_err(Error::io("create", &first.root.join(&relative)))?;
            (Arc::new(dir), name, encrypted)
        }
    };
    write_file(first, &dir, &name, &encrypted.to_bytes())
}

/// Whether `serialize` can write with the identities at hand, asked before
/// any prompt or generator: a new file needs no identity, adding to an
/// existing one needs its data key, so an identity among its recipients.
/// When it cannot, the reason says which recipients would do.
pub fn writable(call: &Call) -> Result<Writable, Error> {
    let Some((dir, name, file)) = read_file(call)? else {
        return Ok(Writable::Yes);
    };
    match data_key(call, &file) {
        Ok(_) => Ok(Writable::Yes),
        Err(Error::Crypto(
            e @ (artifacts_crypto::Error::NoIdentities { .. }
            | artifacts_crypto::Error::NoMatchingIdentity { .. }
            | artifacts_crypto::Error::NoTransitAccess { .. }
            | artifacts_crypto::Error::Transit { .. }),
        )) => {
            let path = dir.path().join(name);
            let shown = path.strip_prefix(&call.root).unwrap_or(&path);
            let recipients: Vec<String> = file
                .metadata()
                .recipients()
                .iter()
                .map(|key| key.trim().to_owned())
                .collect();
            // A transit failure says why the token did not do (never the token).
            let (or_transit, why) = match &e {
                artifacts_crypto::Error::Transit { source, .. } => {
                    (" or access to its transit key", format!(" ({source})"))
                }
                _ if !file.metadata().hc_vault.is_empty() => {
                    (" or access to its transit key", String::new())
                }
                _ => ("", String::new()),
            };
            Ok(Writable::No {
                reason: format!(
                    "`{}` exists, and adding to it needs an identity of one of its recipients{or_transit}: {}{why}",
                    shown.display(),
                    recipients.join(", ")
                ),
            })
        }
        Err(other) => Err(other),
    }
}

/// Decrypts the file and writes this artifact's values into `$out`.
pub fn deserialize(call: &Call, out: &Path) -> Result<(), Error> {
    let Some((_, _, file)) = read_file(call)? else {
        let (relative, name) = file_path(call)?;
        return Err(Error::Usage(format!(
            "`{}` does not exist; run `artifacts generate`",
            call.root.join(relative).join(name).display()
        )));
    };
    let path = file.origin().to_string();
    let decrypted = decrypt(call, &file)?;
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
                return Err(Error::Usage(format!(
                    "`{}` in {path} is not a string",
                    value_path(call, name),
                )));
            }
            None => {
                return Err(Error::Usage(format!(
                    "`{}` is missing from {path}; run `artifacts generate`",
                    value_path(call, name),
                )));
            }
        };
        let bytes = zeroize::Zeroizing::new(bytes);
        artifacts_os::scratch::write_private(&out.join(name), &bytes)
            .map_err(Error::io("write", &out.join(name)))?;
    }
    Ok(())
}

/// The artifacts stored for the target (top-level keys of its file) or,
/// in the shared context, one per `shared/<artifact>.sops.yaml`.
pub fn list(call: &Call) -> Result<Vec<String>, Error> {
    let mut names = Vec::new();
    if call.context == "shared" {
        let relative = call.target().store_dir(BACKEND)?.join("shared");
        let path = call.root.join(&relative);
        if let Some(dir) = call
            .root_dir()?
            .open(&relative)
            .map_err(Error::io("open", &path))?
        {
            for (name, kind) in dir.entries().map_err(Error::io("read", &path))? {
                let name = name.to_string_lossy();
                if let Some(artifact) = name.strip_suffix(".sops.yaml")
                    && kind == artifacts_os::fs::FileType::RegularFile
                    && !artifact.starts_with('.')
                {
                    names.push(artifact.to_owned());
                }
            }
        }
    } else if let Some((_, _, file)) = read_file(call)?
        && let Some(root) = file.document().branches.first()
    {
        names.extend(root.0.iter().filter_map(entry_key).map(str::to_owned));
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Removes an artifact: its shared file, or its key from the target's file
/// (which needs an identity among the file's recipients; an emptied file is deleted).
pub fn remove(call: &Call) -> Result<(), Error> {
    let Some((dir, name, file)) = read_file(call)? else {
        return Ok(());
    };
    let path = dir.path().join(&name);
    if call.context == "shared" {
        dir.remove(&name).map_err(Error::io("remove", &path))?;
        return Ok(());
    }
    let mut decrypted = decrypt(call, &file)?;
    decrypted.unset(&TreePath(vec![Step::Key(call.artifact.clone())]))?;
    let empty = decrypted
        .document()
        .branches
        .iter()
        .all(|b| b.0.iter().all(|e| entry_key(e).is_none()));
    if empty {
        dir.remove(&name).map_err(Error::io("remove", &path))?;
    } else {
        write_file(call, &dir, &name, &decrypted.encrypt()?.to_bytes())?;
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
