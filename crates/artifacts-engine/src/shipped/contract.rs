//! The contract as a shipped backend sees it: the environment read into a [`Call`].

use std::path::{Path, PathBuf};

use artifacts_crypto::age::{NoPassphrase, Recipient};
use artifacts_crypto::keys::{KeyEnv, Purpose, discover_identities};
use artifacts_model::{IoError, TargetKind};
use serde::Deserialize;

/// Why a shipped backend failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShippedError {
    /// A contract variable is missing or unreadable.
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
}

impl ShippedError {
    /// A suggested fix, where one is known.
    pub fn hint(&self) -> Option<String> {
        match self {
            ShippedError::Crypto(error) => error.hint().map(|h| h.to_string()),
            _ => None,
        }
    }

    pub(super) fn io(
        action: &'static str,
        path: &Path,
    ) -> impl FnOnce(std::io::Error) -> ShippedError {
        let io = IoError::with(action, path);
        move |source| ShippedError::Io(io(source))
    }
}

/// Turns a configured recipient into the one a target's consumer decrypts
/// (see [`TargetEntry::recipients_for`]), or says why it cannot.
pub type ReaderForm = dyn Fn(&TargetEntry, Recipient) -> Result<Recipient, String>;

/// One target of `$targets`.
#[derive(Debug, Clone, Deserialize)]
pub struct TargetEntry {
    /// Machine, user or environment name.
    pub name: String,
    /// `nixos`, `homemanager` or `tanka`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `config.<backend>` of the target.
    #[serde(default)]
    pub config: serde_json::Value,
}

impl TargetEntry {
    /// The target kind.
    pub fn kind(&self) -> Option<TargetKind> {
        TargetKind::parse(&self.kind)
    }

    /// `publicHostKey` and `publicUserKeys`, each a string or a list of strings.
    pub fn recipients(&self, backend: &str) -> Result<Vec<Recipient>, ShippedError> {
        self.recipients_for(backend, &|_, recipient| Ok(recipient))
    }

    /// [`TargetEntry::recipients`], each passed through `reader`: the form in
    /// which the target's consumer can decrypt it, or why it cannot (the
    /// error is prefixed with the target and the configuration key).
    pub fn recipients_for(
        &self,
        backend: &str,
        reader: &ReaderForm,
    ) -> Result<Vec<Recipient>, ShippedError> {
        let mut out = Vec::new();
        for key in ["publicHostKey", "publicUserKeys"] {
            let values: Vec<&str> = match self.config.get(key) {
                None | Some(serde_json::Value::Null) => Vec::new(),
                Some(serde_json::Value::String(one)) => vec![one.as_str()],
                Some(serde_json::Value::Array(list)) => {
                    list.iter().filter_map(|v| v.as_str()).collect()
                }
                Some(_) => {
                    return Err(ShippedError::Config(format!(
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
                    .map_err(|error| ShippedError::Config(format!("{}: {error}", at())))?;
                let recipient = reader(self, recipient)
                    .map_err(|reason| ShippedError::Config(format!("{}: {reason}", at())))?;
                out.push(recipient);
            }
        }
        Ok(out)
    }

    /// `storeDir`, default `secrets`: a relative path that stays inside the
    /// project (no leading `/`, no `..`), so that a declaration cannot make
    /// `generate` or `gc` write or delete elsewhere, and so that the Nix side
    /// (`projectRoot + "/${storeDir}"`) finds the same files.
    pub fn store_dir(&self, backend: &str) -> Result<PathBuf, ShippedError> {
        let value = match self.config.get("storeDir") {
            None | Some(serde_json::Value::Null) => return Ok(PathBuf::from("secrets")),
            Some(serde_json::Value::String(value)) => value,
            Some(_) => {
                return Err(ShippedError::Config(format!(
                    "{} `{}`: artifacts.config.{backend}.storeDir must be a string",
                    self.kind, self.name
                )));
            }
        };
        let path = PathBuf::from(value);
        let plain = artifacts_crypto::fsutil::plain_components(&path, Path::new("."))
            .is_ok_and(|parts| !parts.is_empty());
        if !plain {
            return Err(ShippedError::Config(format!(
                "{} `{}`: artifacts.config.{backend}.storeDir `{value}` must be a relative path inside the project (no leading `/`, no `..`)",
                self.kind, self.name
            )));
        }
        Ok(path)
    }
}

/// One declared file, from `$inputs`.
#[derive(Debug, Clone, Deserialize)]
pub struct FileEntry {
    /// Whether it is secret (public files are kept in the public store, not by us).
    #[serde(default = "yes")]
    pub secret: bool,
}

fn yes() -> bool {
    true
}

/// A shipped backend's view of one invocation.
#[derive(Debug)]
pub struct Call {
    /// `$artifact`.
    pub artifact: String,
    /// `$artifact_context`.
    pub context: String,
    /// `$targets`' entries.
    pub targets: Vec<TargetEntry>,
    /// `$inputs`, sorted by file name.
    pub files: Vec<(String, FileEntry)>,
    /// `$out`, for serialize and deserialize.
    pub out: Option<PathBuf>,
    /// The project root (the working directory).
    pub root: PathBuf,
}

fn var(name: &str) -> Result<String, ShippedError> {
    std::env::var(name).map_err(|_| {
        ShippedError::Contract(format!(
            "${name} is not set: shipped backends run under `artifacts`, which sets the contract's variables"
        ))
    })
}

impl Call {
    /// Reads the contract's environment.
    pub fn from_env() -> Result<Call, ShippedError> {
        // `list` runs for a target, not an artifact.
        let artifact = std::env::var("artifact").unwrap_or_default();
        let context = var("artifact_context")?;
        let targets_path = PathBuf::from(var("targets")?);
        #[derive(Deserialize)]
        struct TargetsFile {
            targets: Vec<TargetEntry>,
        }
        let text = std::fs::read_to_string(&targets_path)
            .map_err(ShippedError::io("read", &targets_path))?;
        let targets: TargetsFile = serde_json::from_str(&text).map_err(|e| {
            ShippedError::Contract(format!(
                "$targets `{}` is not valid: {e}",
                targets_path.display()
            ))
        })?;
        let inputs = PathBuf::from(var("inputs")?);
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&inputs).map_err(ShippedError::io("read", &inputs))? {
            let entry = entry.map_err(ShippedError::io("read", &inputs))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(entry.path())
                .map_err(ShippedError::io("read", &entry.path()))?;
            let spec: FileEntry = serde_json::from_str(&text)
                .map_err(|e| ShippedError::Contract(format!("$inputs/{name} is not valid: {e}")))?;
            files.push((name, spec));
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        if targets.targets.is_empty() {
            return Err(ShippedError::Contract("$targets lists no target".into()));
        }
        Ok(Call {
            artifact,
            context,
            targets: targets.targets,
            files,
            out: std::env::var_os("out").map(PathBuf::from),
            root: std::env::current_dir().map_err(ShippedError::io("read", Path::new(".")))?,
        })
    }

    /// The secret files' names.
    pub fn secret_files(&self) -> impl Iterator<Item = &str> {
        self.files
            .iter()
            .filter(|(_, f)| f.secret)
            .map(|(n, _)| n.as_str())
    }

    /// The project root, opened so that nothing below it is reached through a link.
    pub fn root_dir(&self) -> Result<artifacts_crypto::fsutil::Dir, ShippedError> {
        artifacts_crypto::fsutil::Dir::open_root(&self.root)
            .map_err(ShippedError::io("open the project root", &self.root))
    }

    /// The first (for non-shared contexts: the only) target.
    pub fn target(&self) -> &TargetEntry {
        &self.targets[0]
    }

    /// `$out`, which serialize and deserialize receive.
    pub fn out(&self) -> Result<&Path, ShippedError> {
        self.out
            .as_deref()
            .ok_or_else(|| ShippedError::Contract("$out is not set".into()))
    }

    /// The union of every target's recipients, sorted and without duplicates.
    pub fn recipients(&self, backend: &str) -> Result<Vec<Recipient>, ShippedError> {
        self.recipients_for(backend, &|_, recipient| Ok(recipient))
    }

    /// [`Call::recipients`] in the form each target's consumer decrypts
    /// (see [`TargetEntry::recipients_for`]).
    pub fn recipients_for(
        &self,
        backend: &str,
        reader: &ReaderForm,
    ) -> Result<Vec<Recipient>, ShippedError> {
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
            return Err(ShippedError::Config(format!(
                "no recipients for {}: set artifacts.config.{backend}.publicHostKey (machines) or publicUserKeys",
                names.join(", ")
            )));
        }
        Ok(all)
    }

    /// Identities from `ARTIFACTS_IDENTITY` and the sops variables and defaults.
    pub fn identities(&self) -> Result<Vec<artifacts_crypto::age::Identity>, ShippedError> {
        let env = KeyEnv::from_process();
        Ok(discover_identities(
            &[],
            &env,
            Purpose::Sops,
            &NoPassphrase,
        )?)
    }
}
