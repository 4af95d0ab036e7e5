//! The SOPS file format, in-process and readable by sops 3.11 (and the other
//! way round).
//!
//! Owns the file-level operations: [`encrypt`] a plaintext [`Document`],
//! parse an [`EncryptedFile`], [`EncryptedFile::decrypt`] it (the MAC is
//! always verified) into a [`Decrypted`] on which `extract`/`set`/`unset`
//! work, then encrypt it again with the same data key ([`Decrypted::encrypt`])
//! or a new one ([`Decrypted::rotate`]); [`EncryptedFile::update_keys`]
//! re-wraps the data key for a new recipient set.
//!
//! Supported: YAML (multi-document, comments, dates), JSON, dotenv and
//! binary documents; age recipients (X25519 and SSH) and Vault/OpenBao
//! transit keys (through a caller's [`master::DataKeyWrapper`], see
//! [`master::Keys`]), in one key group; every encryption-rule option sops
//! records. Refused with [`Error::Unsupported`]: key groups with a shamir
//! threshold, and re-wrapping data keys for pgp/kms keys.

pub mod config;
pub mod master;
pub mod metadata;
pub mod path;
pub mod tree;

mod cipher;
mod crypt;
mod dotenv;
mod json;
mod yaml;

use std::path::Path;

use zeroize::Zeroizing;

pub use cipher::DataKey;
pub use master::{DataKeyWrapper, Keys, TransitKey, VaultKey};
pub use metadata::{AgeKey, EncryptionRules, Metadata, SOPS_VERSION};
pub use path::TreePath;
pub use tree::{Document, Entry, Item, Map, Value};

use crate::age::{Identity, Recipient};
use crate::error::{Error, Origin, Result};
use cipher::IvStash;

/// A document format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// JSON (`.json`).
    Json,
    /// dotenv (`.env`): `KEY=value` lines.
    Dotenv,
    /// Anything else: the whole file is one value.
    Binary,
}

impl Format {
    /// The format sops picks for a file name.
    pub fn from_path(p: &Path) -> Self {
        match p
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("yaml" | "yml") => Format::Yaml,
            Some("json") => Format::Json,
            Some("env") => Format::Dotenv,
            _ => Format::Binary,
        }
    }

    /// Parses `yaml`, `json`, `dotenv` or `binary` (as in `--input-type`).
    pub fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            "dotenv" | "env" => Some(Format::Dotenv),
            "binary" => Some(Format::Binary),
            _ => None,
        }
    }

    /// The format's name.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Dotenv => "dotenv",
            Format::Binary => "binary",
        }
    }
}

fn utf8<'a>(bytes: &'a [u8], origin: &Origin, format: Format) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| Error::Parse {
        origin: origin.clone(),
        format: format.name(),
        message: format!("not UTF-8 (at byte {})", e.valid_up_to()),
    })
}

fn parse_branches(bytes: &[u8], format: Format, origin: &Origin) -> Result<Vec<Map>> {
    let perr = |message: String| Error::Parse {
        origin: origin.clone(),
        format: format.name(),
        message,
    };
    match format {
        Format::Yaml => yaml::parse(utf8(bytes, origin, format)?).map_err(|e| perr(e.0)),
        Format::Json => Ok(vec![
            json::parse(utf8(bytes, origin, format)?).map_err(perr)?,
        ]),
        Format::Dotenv => Ok(vec![
            dotenv::parse(utf8(bytes, origin, format)?).map_err(perr)?,
        ]),
        Format::Binary => {
            let v = match std::str::from_utf8(bytes) {
                Ok(s) => Value::Str(s.to_string()),
                Err(_) => Value::Bytes(bytes.to_vec()),
            };
            Ok(vec![Map(vec![Entry::Pair("data".into(), v)])])
        }
    }
}

/// For the fuzzer (`fuzz/check.rs`): checks that the fast YAML reader either
/// gives up on `text` or reads exactly what libyaml reads. Not part of the
/// API.
#[doc(hidden)]
pub fn yaml_readers_agree(text: &str) -> std::result::Result<(), String> {
    yaml::readers_agree(text).map(drop)
}

/// Parses a plaintext document.
pub fn parse_plain(bytes: &[u8], format: Format, origin: &Origin) -> Result<Document> {
    Ok(Document {
        branches: parse_branches(bytes, format, origin)?,
    })
}

/// Writes a plaintext document in a format.
pub fn emit_plain(doc: &Document, format: Format) -> Result<Zeroizing<Vec<u8>>> {
    let out = match format {
        Format::Yaml => yaml::emit(&doc.branches.iter().collect::<Vec<_>>()).into_bytes(),
        Format::Json => match doc.branches.as_slice() {
            [] => b"{}\n".to_vec(),
            [one] => json::emit(one).into_bytes(),
            _ => {
                return Err(Error::Unsupported {
                    origin: Origin::Described("the document".into()),
                    feature: "several YAML documents written as JSON".into(),
                });
            }
        },
        Format::Dotenv => {
            let b = doc.branches.first().cloned().unwrap_or_default();
            dotenv::emit(&b)
                .map_err(|reason| Error::Unsupported {
                    origin: Origin::Described("the document".into()),
                    feature: reason,
                })?
                .into_bytes()
        }
        Format::Binary => match doc.branches.first().and_then(|b| b.get("data")) {
            Some(Value::Str(s)) => s.as_bytes().to_vec(),
            Some(Value::Bytes(b)) => b.clone(),
            _ => {
                return Err(Error::Unsupported {
                    origin: Origin::Described("the document".into()),
                    feature: "binary output of a document without a single `data` string".into(),
                });
            }
        },
    };
    Ok(Zeroizing::new(out))
}

/// Writes one value (for `--extract`): strings raw, other scalars and trees
/// in the format.
pub fn emit_value(v: &Value, format: Format) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(match v {
        Value::Str(s) => s.as_bytes().to_vec(),
        Value::Bytes(b) => b.clone(),
        other => match format {
            Format::Json => json::emit_value(other).into_bytes(),
            _ => yaml::emit_value(other).into_bytes(),
        },
    })
}

/// Options for encrypting a new file.
#[derive(Clone, Debug, Default)]
pub struct EncryptOptions {
    /// The age recipients (at least one recipient or transit key in all).
    pub recipients: Vec<Recipient>,
    /// The Vault/OpenBao transit keys (need a [`DataKeyWrapper`]).
    pub transit: Vec<TransitKey>,
    /// Which values stay plaintext.
    pub rules: EncryptionRules,
}

/// An encrypted SOPS document: encrypted values plus metadata.
#[derive(Debug)]
pub struct EncryptedFile {
    doc: Document,
    metadata: Metadata,
    format: Format,
    origin: Origin,
}

impl Drop for EncryptedFile {
    fn drop(&mut self) {
        // Everything in it is what the file holds on disk (ciphertext, and
        // values left unencrypted on purpose): nothing to zeroize, which for
        // a fleet's check was most of the cost of letting its files go.
        drop(std::mem::take(&mut self.doc.branches));
    }
}

/// What [`EncryptedFile::update_keys`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyChanges {
    /// Recipients added.
    pub added: Vec<String>,
    /// Recipients removed.
    pub removed: Vec<String>,
}

fn wrap_data_key(key: &DataKey, recipients: &[Recipient], origin: &Origin) -> Result<Vec<AgeKey>> {
    recipients
        .iter()
        .map(|r| {
            let enc = crate::age::encrypt(std::slice::from_ref(r), key.as_bytes(), true).map_err(
                |e| match e {
                    Error::AgeEncrypt { reason, .. } => Error::AgeEncrypt {
                        origin: origin.clone(),
                        reason,
                    },
                    e => e,
                },
            )?;
            let mut enc =
                String::from_utf8(enc).map_err(|_| Error::Internal("armor is ASCII".into()))?;
            if !enc.ends_with('\n') {
                enc.push('\n');
            }
            Ok(AgeKey {
                recipient: r.as_str().to_string(),
                enc,
            })
        })
        .collect()
}

fn normalize_recipient(s: &str) -> String {
    Recipient::parse(s)
        .map(|r| r.as_str().to_string())
        .unwrap_or_else(|_| s.trim().to_string())
}

/// Encrypts a plaintext document with a new data key, for age recipients
/// only (see [`encrypt_with`] for transit keys).
pub fn encrypt(
    doc: Document,
    format: Format,
    opts: &EncryptOptions,
    origin: &Origin,
) -> Result<EncryptedFile> {
    encrypt_with(doc, format, opts, None, origin)
}

/// Encrypts a plaintext document with a new data key, wrapped for the age
/// recipients and, through `wrapper`, for the transit keys of `opts`.
pub fn encrypt_with(
    mut doc: Document,
    format: Format,
    opts: &EncryptOptions,
    wrapper: Option<&dyn DataKeyWrapper>,
    origin: &Origin,
) -> Result<EncryptedFile> {
    if opts.recipients.is_empty() && opts.transit.is_empty() {
        return Err(Error::NoRecipients {
            origin: origin.clone(),
        });
    }
    if doc.branches.iter().any(|b| b.get("sops").is_some()) {
        return Err(Error::AlreadyEncrypted {
            origin: origin.clone(),
        });
    }
    opts.rules.validate(origin)?;
    // sops records its default suffix, except for binary documents.
    let rules = if format == Format::Binary {
        opts.rules.clone()
    } else {
        opts.rules.clone().with_default()
    };
    let compiled = rules.compile(origin)?;
    let key = DataKey::generate();
    // Wrapped first: a transit failure stops before any value is encrypted.
    let hc_vault = master::wrap_all(key.as_bytes(), &opts.transit, wrapper, origin)?;
    let mac = crypt::encrypt_tree(&mut doc.branches, &key, &compiled, None)?;
    let lastmodified = crate::time::now_rfc3339();
    let metadata = Metadata {
        age: wrap_data_key(&key, &opts.recipients, origin)?,
        hc_vault,
        mac: cipher::encrypt(&key, mac.as_bytes(), "str", &lastmodified, None),
        lastmodified,
        rules,
        version: SOPS_VERSION.to_string(),
        ..Metadata::default()
    };
    Ok(EncryptedFile {
        doc,
        metadata,
        format,
        origin: origin.clone(),
    })
}

/// The largest SOPS file [`EncryptedFile::read`] reads (64 MiB): far above
/// any secrets file, and a bound on the memory a repository can make us use.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Reads at most [`MAX_FILE_BYTES`] of `path`; more is an error.
fn read_limited(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::io("read", path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path, e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::io(
            "read",
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("larger than {MAX_FILE_BYTES} bytes"),
            ),
        ));
    }
    Ok(bytes)
}

/// sops picks its INI format for `.ini` files, which this crate does not
/// read or write: refused by name, instead of failing later as a JSON
/// (binary) document would.
pub fn refuse_ini(path: &Path) -> Result<()> {
    let ini = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("ini"));
    if ini {
        return Err(Error::Unsupported {
            origin: Origin::file(path),
            feature: "the INI format".into(),
        });
    }
    Ok(())
}

impl EncryptedFile {
    /// Parses an encrypted document. Binary documents are stored as JSON.
    pub fn parse(bytes: &[u8], format: Format, origin: &Origin) -> Result<Self> {
        let container = if format == Format::Binary {
            Format::Json
        } else {
            format
        };
        let mut branches = parse_branches(bytes, container, origin)?;
        let mut meta_map = None;
        for b in branches.iter_mut() {
            if let Some(v) = b.remove("sops")
                && meta_map.is_none()
            {
                meta_map = Some(v);
            }
        }
        if container == Format::Dotenv {
            meta_map = dotenv::take_metadata(branches.first_mut());
        }
        let meta = match meta_map {
            Some(Value::Map(m)) => m,
            Some(_) => {
                return Err(Error::Metadata {
                    origin: origin.clone(),
                    reason: "`sops` is not a mapping".into(),
                });
            }
            None => {
                return Err(Error::MetadataMissing {
                    origin: origin.clone(),
                });
            }
        };
        let metadata = Metadata::from_map(&meta, origin)?;
        Ok(EncryptedFile {
            doc: Document { branches },
            metadata,
            format,
            origin: origin.clone(),
        })
    }

    /// Reads and parses a file, picking the format from its name unless given.
    /// Files larger than [`MAX_FILE_BYTES`] are refused.
    pub fn read(path: &Path, format: Option<Format>) -> Result<Self> {
        if format.is_none() {
            refuse_ini(path)?;
        }
        let bytes = read_limited(path)?;
        Self::parse(
            &bytes,
            format.unwrap_or_else(|| Format::from_path(path)),
            &Origin::file(path),
        )
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The document format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Where the file came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The encrypted document (values are `ENC[...]` strings).
    pub fn document(&self) -> &Document {
        &self.doc
    }

    /// Serializes the file in its format, as sops lays it out.
    pub fn to_bytes(&self) -> Vec<u8> {
        let meta = Value::Map(self.metadata.to_map());
        match self.format {
            Format::Yaml => {
                let mut branches = self.doc.branches.clone();
                if branches.is_empty() {
                    branches.push(Map::default());
                }
                for b in branches.iter_mut() {
                    b.0.push(Entry::Pair("sops".into(), meta.clone()));
                }
                let out = yaml::emit(&branches.iter().collect::<Vec<_>>()).into_bytes();
                // Drop the copies' plaintext-free data without zeroizing cost concerns.
                drop(Document { branches });
                out
            }
            Format::Json | Format::Binary => {
                let mut b = self.doc.branches.first().cloned().unwrap_or_default();
                b.0.push(Entry::Pair("sops".into(), meta));
                json::emit(&b).into_bytes()
            }
            Format::Dotenv => {
                let b = self.doc.branches.first().cloned().unwrap_or_default();
                dotenv::emit_encrypted(&b, &self.metadata.to_map()).into_bytes()
            }
        }
    }

    /// Recovers the data key with the first identity that unwraps an age stanza.
    pub fn data_key(&self, identities: &[Identity]) -> Result<DataKey> {
        self.data_key_with(&Keys::age(identities))
    }

    /// Recovers the data key: age stanzas first (local), then, with a
    /// wrapper, each transit key in turn. When nothing works, the first real
    /// failure is returned (a refused or unreachable transit key, a damaged
    /// stanza), else "no identity matches".
    pub fn data_key_with(&self, keys: &Keys<'_>) -> Result<DataKey> {
        if !self.metadata.key_groups.is_empty() {
            return Err(Error::Unsupported {
                origin: self.origin.clone(),
                feature: "key groups with a shamir threshold".into(),
            });
        }
        if self.metadata.age.is_empty() && self.metadata.hc_vault.is_empty() {
            // Nothing here for an age identity or a transit key: say what the
            // file is for instead of "no identity matches" with no recipients
            // to list.
            let kinds: Vec<&str> = self
                .metadata
                .other_keys
                .iter()
                .map(|(kind, _)| kind.as_str())
                .collect();
            return Err(Error::Unsupported {
                origin: self.origin.clone(),
                feature: if kinds.is_empty() {
                    "no master key at all".to_owned()
                } else {
                    format!(
                        "only {} master keys and no age recipient or Vault transit key (this tool decrypts with those only)",
                        kinds.join(", ")
                    )
                },
            });
        }
        let identities = keys.identities;
        let transit = keys.wrapper.filter(|_| !self.metadata.hc_vault.is_empty());
        if transit.is_none()
            && self.metadata.age.is_empty()
            && let Some(k) = self.metadata.hc_vault.first()
        {
            return Err(Error::NoTransitAccess {
                origin: self.origin.clone(),
                key: k.key.uri(),
            });
        }
        if identities.is_empty() && transit.is_none() {
            return Err(Error::NoIdentities {
                origin: self.origin.clone(),
            });
        }
        let mut first_error = None;
        let stanzas = if identities.is_empty() {
            &[][..]
        } else {
            &self.metadata.age[..]
        };
        for stanza in stanzas {
            match crate::age::decrypt(identities, stanza.enc.trim().as_bytes(), &self.origin) {
                Ok(bytes) => {
                    return DataKey::from_bytes(&bytes).ok_or_else(|| Error::Metadata {
                        origin: self.origin.clone(),
                        reason: format!(
                            "the data key for {} is not 32 bytes long",
                            stanza.recipient
                        ),
                    });
                }
                Err(Error::NoMatchingIdentity { .. }) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(wrapper) = transit {
            for k in &self.metadata.hc_vault {
                match wrapper.unwrap(&k.key, k.enc.trim()) {
                    Ok(bytes) => {
                        return DataKey::from_bytes(&bytes).ok_or_else(|| Error::Metadata {
                            origin: self.origin.clone(),
                            reason: format!("the data key for {} is not 32 bytes long", k.key),
                        });
                    }
                    Err(source) => {
                        first_error.get_or_insert(Error::Transit {
                            action: "decrypt",
                            origin: self.origin.clone(),
                            key: k.key.uri(),
                            source,
                        });
                    }
                }
            }
        }
        Err(first_error.unwrap_or_else(|| Error::NoMatchingIdentity {
            origin: self.origin.clone(),
            recipients: self.metadata.recipients(),
        }))
    }

    /// Decrypts with identities and verifies the MAC.
    pub fn decrypt(&self, identities: &[Identity]) -> Result<Decrypted> {
        self.decrypt_with(&Keys::age(identities))
    }

    /// Decrypts with identities or transit keys and verifies the MAC.
    pub fn decrypt_with(&self, keys: &Keys<'_>) -> Result<Decrypted> {
        let key = self.data_key_with(keys)?;
        self.decrypt_with_key(key)
    }

    /// Decrypts with a known data key and verifies the MAC.
    pub fn decrypt_with_key(&self, key: DataKey) -> Result<Decrypted> {
        let compiled = self.metadata.rules.compile(&self.origin)?;
        let mut doc = self.doc.clone();
        let mut stash = IvStash::default();
        let computed =
            crypt::decrypt_tree(&mut doc.branches, &key, &compiled, &mut stash, &self.origin)?;
        let mismatch = || Error::MacMismatch {
            origin: self.origin.clone(),
        };
        let stored = cipher::parse_enc(&self.metadata.mac).map_err(|_| mismatch())?;
        let stored =
            cipher::decrypt(&key, &stored, &self.metadata.lastmodified).ok_or_else(mismatch)?;
        if stored.as_slice() != computed.as_bytes() {
            return Err(mismatch());
        }
        Ok(Decrypted {
            doc,
            key,
            stash,
            metadata: self.metadata.clone(),
            format: self.format,
            origin: self.origin.clone(),
        })
    }

    /// Re-wraps the data key for exactly `recipients` (age only; transit
    /// stanzas stay as they are), keeping the stanzas of recipients that stay.
    /// Values, MAC and `lastmodified` are unchanged. The file is fully
    /// decrypted first, so a tampered file is not re-keyed.
    pub fn update_keys(
        &mut self,
        identities: &[Identity],
        recipients: &[Recipient],
    ) -> Result<KeyChanges> {
        let transit = self.metadata.transit_keys();
        self.update_keys_with(&Keys::age(identities), recipients, &transit)
    }

    /// [`EncryptedFile::update_keys`] for age recipients and transit keys:
    /// afterwards the data key is wrapped for exactly `recipients` and
    /// `transit` (new transit stanzas through `keys.wrapper`).
    pub fn update_keys_with(
        &mut self,
        keys: &Keys<'_>,
        recipients: &[Recipient],
        transit: &[TransitKey],
    ) -> Result<KeyChanges> {
        if recipients.is_empty() && transit.is_empty() {
            return Err(Error::NoRecipients {
                origin: self.origin.clone(),
            });
        }
        if !self.metadata.other_keys.is_empty() {
            return Err(Error::Unsupported {
                origin: self.origin.clone(),
                feature: "pgp/kms master keys".into(),
            });
        }
        let decrypted = self.decrypt_with(keys)?;
        let old: Vec<(String, AgeKey)> = self
            .metadata
            .age
            .iter()
            .map(|a| (normalize_recipient(&a.recipient), a.clone()))
            .collect();
        let mut changes = KeyChanges::default();
        let mut new_age = Vec::new();
        for r in recipients {
            match old.iter().find(|(n, _)| n == r.as_str()) {
                Some((_, keep)) => new_age.push(keep.clone()),
                None => {
                    new_age.extend(wrap_data_key(
                        &decrypted.key,
                        std::slice::from_ref(r),
                        &self.origin,
                    )?);
                    changes.added.push(r.as_str().to_string());
                }
            }
        }
        for (n, a) in &old {
            if !recipients.iter().any(|r| r.as_str() == n) {
                changes.removed.push(a.recipient.clone());
            }
        }
        let mut new_vault = Vec::new();
        for k in transit {
            match self.metadata.hc_vault.iter().find(|v| &v.key == k) {
                Some(keep) => new_vault.push(keep.clone()),
                None => {
                    new_vault.extend(master::wrap_all(
                        decrypted.key.as_bytes(),
                        std::slice::from_ref(k),
                        keys.wrapper,
                        &self.origin,
                    )?);
                    changes.added.push(k.uri());
                }
            }
        }
        for v in &self.metadata.hc_vault {
            if !transit.contains(&v.key) {
                changes.removed.push(v.key.uri());
            }
        }
        self.metadata.age = new_age;
        self.metadata.hc_vault = new_vault;
        Ok(changes)
    }
}

/// A decrypted SOPS document whose MAC was verified; holds the data key so
/// it can be encrypted again.
pub struct Decrypted {
    doc: Document,
    key: DataKey,
    stash: IvStash,
    metadata: Metadata,
    format: Format,
    origin: Origin,
}

impl std::fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Decrypted({}, <redacted>)", self.origin)
    }
}

impl Decrypted {
    /// The plaintext document.
    pub fn document(&self) -> &Document {
        &self.doc
    }

    /// The metadata the file had.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The plaintext, written in `format` (the file's own when `None`).
    pub fn to_plain_bytes(&self, format: Option<Format>) -> Result<Zeroizing<Vec<u8>>> {
        emit_plain(&self.doc, format.unwrap_or(self.format))
    }

    /// The value at `path` (in the first document), written for output:
    /// strings raw, everything else in `format`.
    pub fn extract(&self, path: &TreePath, format: Option<Format>) -> Result<Zeroizing<Vec<u8>>> {
        let root = self.doc.branches.first().cloned().unwrap_or_default();
        let root = Document {
            branches: vec![root],
        };
        let found = path::get(&root.branches[0], path).map_err(|p| Error::PathNotFound {
            origin: self.origin.clone(),
            path: p,
        })?;
        let fmt = format.unwrap_or(self.format);
        Ok(match found {
            Some(v) => emit_value(v, fmt),
            None => emit_plain(&root, fmt)?,
        })
    }

    /// Sets the value at `path`, creating missing mappings.
    pub fn set(&mut self, path: &TreePath, value: Value) -> Result<()> {
        if self.doc.branches.is_empty() {
            self.doc.branches.push(Map::default());
        }
        path::set(&mut self.doc.branches[0], path, value)
    }

    /// Removes the value at `path`.
    pub fn unset(&mut self, path: &TreePath) -> Result<()> {
        let Some(b) = self.doc.branches.first_mut() else {
            return Err(Error::PathNotFound {
                origin: self.origin.clone(),
                path: path.to_string(),
            });
        };
        path::unset(b, path).map_err(|p| Error::PathNotFound {
            origin: self.origin.clone(),
            path: if p.is_empty() { path.to_string() } else { p },
        })
    }

    fn seal(mut self, key: &DataKey, stash: Option<&IvStash>) -> Result<EncryptedFile> {
        let compiled = self.metadata.rules.compile(&self.origin)?;
        let mut doc = std::mem::take(&mut self.doc);
        let mac = crypt::encrypt_tree(&mut doc.branches, key, &compiled, stash)?;
        let lastmodified = crate::time::now_rfc3339();
        self.metadata.mac = cipher::encrypt(key, mac.as_bytes(), "str", &lastmodified, None);
        self.metadata.lastmodified = lastmodified;
        self.metadata.version = SOPS_VERSION.to_string();
        Ok(EncryptedFile {
            doc,
            metadata: self.metadata.clone(),
            format: self.format,
            origin: self.origin.clone(),
        })
    }

    /// Encrypts again with the same data key; unchanged values keep their
    /// ciphertext.
    pub fn encrypt(mut self) -> Result<EncryptedFile> {
        let key = DataKey::from_bytes(self.key.as_bytes()).expect("32 bytes");
        let stash = std::mem::take(&mut self.stash);
        self.seal(&key, Some(&stash))
    }

    /// Encrypts with a new data key, wrapped for `recipients` (the file's
    /// current age recipients when `None`); a file with transit keys needs
    /// [`Decrypted::rotate_with`].
    pub fn rotate(self, recipients: Option<&[Recipient]>) -> Result<EncryptedFile> {
        self.rotate_with(recipients, None, None)
    }

    /// [`Decrypted::rotate`], wrapping the new data key also for `transit`
    /// (the file's current transit keys when `None`) through `wrapper`.
    pub fn rotate_with(
        self,
        recipients: Option<&[Recipient]>,
        transit: Option<&[TransitKey]>,
        wrapper: Option<&dyn DataKeyWrapper>,
    ) -> Result<EncryptedFile> {
        if !self.metadata.other_keys.is_empty() {
            return Err(Error::Unsupported {
                origin: self.origin.clone(),
                feature: "pgp/kms master keys".into(),
            });
        }
        let recipients: Vec<Recipient> = match recipients {
            Some(r) => r.to_vec(),
            None => self
                .metadata
                .age
                .iter()
                .map(|a| Recipient::parse_from(&a.recipient, self.origin.clone()))
                .collect::<Result<_>>()?,
        };
        let transit = match transit {
            Some(t) => t.to_vec(),
            None => self.metadata.transit_keys(),
        };
        if recipients.is_empty() && transit.is_empty() {
            return Err(Error::NoRecipients {
                origin: self.origin.clone(),
            });
        }
        let key = DataKey::generate();
        let mut me = self;
        me.metadata.hc_vault = master::wrap_all(key.as_bytes(), &transit, wrapper, &me.origin)?;
        me.metadata.age = wrap_data_key(&key, &recipients, &me.origin)?;
        me.seal(&key, None)
    }
}

/// Parses a value given to `set`: JSON like sops, or a raw string.
pub fn parse_set_value(bytes: &[u8], raw: bool, origin: &Origin) -> Result<Value> {
    let invalid = |reason: &str| Error::InvalidValue {
        origin: origin.clone(),
        reason: reason.to_string(),
    };
    if raw {
        return Ok(match std::str::from_utf8(bytes) {
            Ok(s) => Value::Str(s.to_string()),
            Err(_) => Value::Bytes(bytes.to_vec()),
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("not UTF-8"))?;
    json::parse_value(text).map_err(|_| invalid("not valid JSON (quote strings, or use --raw)"))
}
