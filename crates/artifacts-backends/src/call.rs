//! The engine's [`store::Call`] as a shipped backend works with it, and
//! the shipped backends' [`Error`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use artifacts_crypto::age::{NoPassphrase, Recipient};
use artifacts_crypto::keys::{KeyEnv, Purpose, discover_identities};
use artifacts_engine::Targets;
use artifacts_engine::store::{self, KeySources};
use artifacts_model::{IoError, TargetKind};

use crate::cache::Cache;

/// Why a shipped backend failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The call lacks something the contract promises (for `__backend`: a
    /// variable is missing or unreadable).
    #[error("{0}")]
    Contract(String),
    /// Called wrongly.
    #[error("{0}")]
    Usage(String),
    /// The target configuration is not usable.
    #[error("{0}")]
    Config(String),
    /// What is stored is damaged or inconsistent.
    #[error("{0}")]
    Damaged(String),
    /// Encryption, decryption or a SOPS file failed.
    #[error(transparent)]
    Crypto(#[from] artifacts_crypto::Error),
    /// Local file work failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// An OpenBao request failed (shared: one listing answers many checks).
    #[error(transparent)]
    Openbao(std::sync::Arc<artifacts_openbao::Error>),
}

impl From<artifacts_openbao::Error> for Error {
    fn from(error: artifacts_openbao::Error) -> Error {
        Error::Openbao(std::sync::Arc::new(error))
    }
}

impl From<std::sync::Arc<artifacts_openbao::Error>> for Error {
    fn from(error: std::sync::Arc<artifacts_openbao::Error>) -> Error {
        Error::Openbao(error)
    }
}

impl Error {
    /// A suggested fix, where one is known.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Crypto(error) => error.hint().map(|h| h.to_string()),
            Error::Openbao(error) => error.hint(),
            _ => None,
        }
    }

    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
        let io = IoError::with(action, path);
        move |source| Error::Io(io(source))
    }
}

/// Turns a configured recipient into the one a target's consumer decrypts
/// (see [`TargetEntry::recipients_for`]), or says why it cannot.
pub type ReaderForm = dyn Fn(&TargetEntry, Recipient) -> Result<Recipient, String>;

/// One target of the call.
#[derive(Debug, Clone)]
pub struct TargetEntry {
    /// Machine, user or environment name.
    pub name: String,
    /// `nixos`, `homemanager` or `tanka`, as messages name it.
    pub kind: &'static str,
    /// Its kind.
    pub target_kind: TargetKind,
    /// `config.<backend>` of the target.
    pub config: serde_json::Value,
}

impl TargetEntry {
    /// `publicHostKey` and `publicUserKeys` (each a string or a list of
    /// strings), each passed through `reader`: the form in
    /// which the target's consumer can decrypt it, or why it cannot (the
    /// error is prefixed with the target and the configuration key).
    pub fn recipients_for(
        &self,
        backend: &str,
        reader: &ReaderForm,
    ) -> Result<Vec<Recipient>, Error> {
        let mut out = Vec::new();
        for key in ["publicHostKey", "publicUserKeys"] {
            let values: Vec<&str> = match self.config.get(key) {
                None | Some(serde_json::Value::Null) => Vec::new(),
                Some(serde_json::Value::String(one)) => vec![one.as_str()],
                Some(serde_json::Value::Array(list)) => {
                    list.iter().filter_map(|v| v.as_str()).collect()
                }
                Some(_) => {
                    return Err(Error::Config(format!(
                        "{} `{}`: artifacts.config.{backend}.{key} must be a string or a list of strings",
                        self.kind, self.name
                    )));
                }
            };
            for value in values {
                let at = || {
                    format!(
                        "{} `{}`: artifacts.config.{backend}.{key}",
                        self.kind, self.name
                    )
                };
                let recipient = Recipient::parse(value)
                    .map_err(|error| Error::Config(format!("{}: {error}", at())))?;
                let recipient = reader(self, recipient)
                    .map_err(|reason| Error::Config(format!("{}: {reason}", at())))?;
                out.push(recipient);
            }
        }
        Ok(out)
    }

    /// `storeDir`, default `secrets`: a relative path that stays inside the
    /// project (no leading `/`, no `..`), so that a declaration cannot make
    /// `generate` or `gc` write or delete elsewhere, and so that the Nix side
    /// (`projectRoot + "/${storeDir}"`) finds the same files.
    pub fn store_dir(&self, backend: &str) -> Result<PathBuf, Error> {
        let value = match self.config.get("storeDir") {
            None | Some(serde_json::Value::Null) => return Ok(PathBuf::from("secrets")),
            Some(serde_json::Value::String(value)) => value,
            Some(_) => {
                return Err(Error::Config(format!(
                    "{} `{}`: artifacts.config.{backend}.storeDir must be a string",
                    self.kind, self.name
                )));
            }
        };
        let path = PathBuf::from(value);
        let plain = artifacts_os::fs::plain_components(&path, Path::new("."))
            .is_ok_and(|parts| !parts.is_empty());
        if !plain {
            return Err(Error::Config(format!(
                "{} `{}`: artifacts.config.{backend}.storeDir `{value}` must be a relative path inside the project (no leading `/`, no `..`)",
                self.kind, self.name
            )));
        }
        Ok(path)
    }
}

/// A shipped backend's view of one call.
#[derive(Debug)]
pub struct Call {
    /// The name the backend is called by (`vault` and `openbao` are one).
    pub backend: String,
    /// The artifact (empty for `list`, which runs for targets).
    pub artifact: String,
    /// The context: `nixos`, `homemanager`, `tanka` or `shared`.
    pub context: String,
    /// The targets: one, or a shared artifact's (never none).
    pub targets: Targets<TargetEntry>,
    /// The declared files, sorted by name: name and whether it is secret.
    pub files: Vec<(String, bool)>,
    /// The project root.
    pub root: PathBuf,
    /// Where identities come from.
    identities: KeySources,
    /// For `serialize`: the generation stored, as artifacts.lock records it.
    pub stamp: Option<store::Stamp>,
    /// What the backend remembers for this run.
    pub(crate) cache: Arc<Cache>,
}

impl Call {
    /// The engine's call, as the shipped backends use it.
    pub(crate) fn new(call: &store::Call, cache: &Arc<Cache>) -> Result<Call, Error> {
        if call.targets.as_slice().is_empty() {
            return Err(Error::Contract("$targets lists no target".into()));
        }
        let files = Call::files_of(&call.files);
        Ok(Call {
            backend: call.backend.clone(),
            artifact: call.artifact.clone().unwrap_or_default(),
            context: call.context().as_str().to_owned(),
            targets: call.targets.map(|target| TargetEntry {
                name: target.name.clone(),
                kind: target.kind.as_str(),
                target_kind: target.kind,
                config: target.config.clone(),
            }),
            files,
            root: call.root.clone(),
            identities: call.identities.clone(),
            stamp: call.stamp.clone(),
            cache: cache.clone(),
        })
    }

    /// The engine's files as [`Call::files`] holds them, sorted by name.
    pub(crate) fn files_of(files: &[store::CallFile]) -> Vec<(String, bool)> {
        let mut files: Vec<(String, bool)> = files
            .iter()
            .map(|file| (file.name.clone(), file.secret))
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        files
    }

    /// The secret files' names.
    pub fn secret_files(&self) -> impl Iterator<Item = &str> {
        self.files
            .iter()
            .filter(|(_, secret)| *secret)
            .map(|(n, _)| n.as_str())
    }

    /// The project root, opened so that nothing below it is reached
    /// through a link (once per run, see [`Cache`]).
    pub fn root_dir(&self) -> Result<Arc<artifacts_os::fs::Dir>, Error> {
        let dir = self.cache.dir(&self.root, || {
            artifacts_os::fs::Dir::open_root(&self.root)
                .map(Some)
                .map_err(Error::io("open the project root", &self.root))
        })?;
        Ok(dir.expect("opening the root gives a directory or an error"))
    }

    /// The target whose configuration places the store: the one target,
    /// or for a shared artifact the first one declared (a shared store is
    /// one place, found through that target's configuration).
    pub fn target(&self) -> &TargetEntry {
        match &self.targets {
            Targets::One(target) => target,
            Targets::Shared(all) => all.first().expect("Call::new refuses no targets"),
        }
    }

    /// The union of every target's recipients, sorted and without duplicates.
    pub fn recipients(&self, backend: &str) -> Result<Arc<Vec<Recipient>>, Error> {
        self.recipients_for(backend, &|_, recipient| Ok(recipient))
    }

    /// [`Call::recipients`] in the form each target's consumer decrypts
    /// (see [`TargetEntry::recipients_for`]).
    pub fn recipients_for(
        &self,
        backend: &str,
        reader: &ReaderForm,
    ) -> Result<Arc<Vec<Recipient>>, Error> {
        // Every artifact of a target asks again: parsed once per run.
        let mut key = backend.to_owned();
        for target in &self.targets {
            key.push('\0');
            key.push_str(&target.name);
            key.push('\0');
            key.push_str(&target.config.to_string());
        }
        self.cache
            .clone()
            .recipients(key, || self.configured_recipients(backend, reader))
    }

    fn configured_recipients(
        &self,
        backend: &str,
        reader: &ReaderForm,
    ) -> Result<Vec<Recipient>, Error> {
        let mut all: Vec<Recipient> = Vec::new();
        for target in &self.targets {
            for recipient in target.recipients_for(backend, reader)? {
                if !all.iter().any(|r| r.as_str() == recipient.as_str()) {
                    all.push(recipient);
                }
            }
        }
        all.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        if all.is_empty() {
            let names: Vec<String> = self
                .targets
                .iter()
                .map(|t| format!("{} `{}`", t.kind, t.name))
                .collect();
            return Err(Error::Config(format!(
                "no recipients for {}: set artifacts.config.{backend}.publicHostKey (machines) or publicUserKeys",
                names.join(", ")
            )));
        }
        Ok(all)
    }

    /// A variable of our environment as backends see it (the engine's
    /// overrides applied); `None` when unset or not UTF-8.
    pub fn var(&self, name: &str) -> Option<String> {
        self.identities
            .vars()
            .into_iter()
            .rev()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| value.into_string().ok())
    }

    /// The variables identities are read with.
    pub(crate) fn key_vars(&self) -> Vec<(String, std::ffi::OsString)> {
        self.identities.vars()
    }

    /// Identities from `ARTIFACTS_IDENTITY` and the sops variables and defaults.
    /// Loaded once per run (see [`Cache`]).
    pub fn identities(&self) -> Result<Arc<Vec<artifacts_crypto::age::Identity>>, Error> {
        let vars = self.key_vars();
        self.cache.identities(vars.clone(), || {
            let env = KeyEnv::from_pairs(vars.iter().map(|(k, v)| (k.as_str(), v.as_os_str())));
            discover_identities(&[], &env, Purpose::Sops, &NoPassphrase).map_err(Error::from)
        })
    }
}
