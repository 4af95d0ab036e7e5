//! The crate's error type.
//!
//! Owns [`Error`], the single `#[non_exhaustive]` enum every fallible function
//! returns, and [`Origin`], which names where an input came from. Messages are
//! lowercase, name the file or stream, never carry secret material (values,
//! identities, data keys, passphrases) and are kept apart from the suggested
//! fix, which [`Error::hint`] returns.

use std::fmt;

pub use artifacts_model::IoError;
use std::path::{Path, PathBuf};

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where an input came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// A file on disk.
    File(PathBuf),
    /// Standard input.
    Stdin,
    /// An environment variable, by name (never its value).
    Env(String),
    /// A command-line flag or some other described source.
    Described(String),
}

impl Origin {
    /// The origin of a file path.
    pub fn file(path: impl AsRef<Path>) -> Self {
        Origin::File(path.as_ref().to_path_buf())
    }

    /// The path, when this origin is a file.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Origin::File(p) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "`{}`", p.display()),
            Origin::Stdin => f.write_str("standard input"),
            Origin::Env(name) => write!(f, "environment variable `{name}`"),
            Origin::Described(d) => f.write_str(d),
        }
    }
}

/// Everything that can go wrong in this crate.
///
/// Each variant names what failed and where. None carries plaintext, keys or
/// passphrases: recipients and key paths are public, so they may appear.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Reading or writing a stream (stdin, stdout) failed.
    #[error("failed to {action} {stream}")]
    Stream {
        /// What was being done, e.g. "read", "write".
        action: &'static str,
        /// The stream, e.g. "standard input".
        stream: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A recipient string could not be parsed.
    #[error("invalid recipient {what} in {origin}: {reason}")]
    InvalidRecipient {
        /// A public, shortened description of the offending recipient.
        what: String,
        /// Where it came from (file and line, flag, variable).
        origin: Origin,
        /// Why it was rejected.
        reason: String,
    },
    /// An identity (private key) could not be parsed.
    #[error("invalid identity in {origin}: {reason}")]
    InvalidIdentity {
        /// Where it came from.
        origin: Origin,
        /// Why it was rejected (never the key itself).
        reason: String,
    },
    /// An SSH key or an identity file is passphrase-protected and no
    /// passphrase could be obtained.
    #[error("{origin} is passphrase-protected and no passphrase is available")]
    PassphraseRequired {
        /// The key file.
        origin: Origin,
    },
    /// The passphrase for an SSH key or an identity file was wrong.
    #[error("wrong passphrase for {origin}")]
    WrongPassphrase {
        /// The key file.
        origin: Origin,
    },
    /// Encryption was requested without any recipient.
    #[error("no recipients given for {origin}")]
    NoRecipients {
        /// What was to be encrypted.
        origin: Origin,
    },
    /// Decryption was requested without any identity.
    #[error("no age identity available to decrypt {origin}")]
    NoIdentities {
        /// What was to be decrypted.
        origin: Origin,
    },
    /// None of the identities can unwrap the file key.
    #[error(
        "no identity matches a recipient of {origin}{}",
        fmt_recipients(recipients)
    )]
    NoMatchingIdentity {
        /// What was to be decrypted.
        origin: Origin,
        /// The recipients the file was encrypted to, when known (public).
        recipients: Vec<String>,
    },
    /// A stored age file is damaged (checked without a key).
    #[error("{origin} is not a valid age file: {reason}")]
    AgeStructure {
        /// The file.
        origin: Origin,
        /// Why.
        reason: String,
    },
    /// age decryption failed for another reason (corrupt or truncated data).
    #[error("failed to decrypt {origin}: {reason}")]
    AgeDecrypt {
        /// What was being decrypted.
        origin: Origin,
        /// Why.
        reason: String,
    },
    /// age encryption failed.
    #[error("failed to encrypt {origin}: {reason}")]
    AgeEncrypt {
        /// What was being encrypted.
        origin: Origin,
        /// Why.
        reason: String,
    },
    /// A document could not be parsed.
    #[error("failed to parse {origin} as {format}: {message}")]
    Parse {
        /// The document.
        origin: Origin,
        /// The format it was parsed as ("yaml", "json", ...).
        format: &'static str,
        /// The parser's message (positions, never values).
        message: String,
    },
    /// A document has no `sops` metadata.
    #[error("{origin} has no sops metadata")]
    MetadataMissing {
        /// The document.
        origin: Origin,
    },
    /// The `sops` metadata is malformed.
    #[error("invalid sops metadata in {origin}: {reason}")]
    Metadata {
        /// The document.
        origin: Origin,
        /// What is wrong.
        reason: String,
    },
    /// Encryption was asked for a document that already has `sops` metadata.
    #[error("{origin} is already encrypted")]
    AlreadyEncrypted {
        /// The document.
        origin: Origin,
    },
    /// A feature of the SOPS format this crate refuses.
    #[error("{origin} uses {feature}, which is not supported")]
    Unsupported {
        /// The document or config.
        origin: Origin,
        /// The refused feature.
        feature: String,
    },
    /// A value is not in the `ENC[AES256_GCM,...]` format.
    #[error("the value at {key} in {origin} is not a valid sops encrypted value: {reason}")]
    InvalidEncryptedValue {
        /// The document.
        origin: Origin,
        /// The value's key path, e.g. `["db"]["password"]`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// AES-GCM authentication of a value failed.
    #[error("failed to decrypt the value at {key} in {origin}")]
    ValueDecrypt {
        /// The document.
        origin: Origin,
        /// The value's key path.
        key: String,
    },
    /// The recomputed MAC differs from the stored one.
    #[error("MAC mismatch in {origin}")]
    MacMismatch {
        /// The document.
        origin: Origin,
    },
    /// A path (`["a"]["b"]`) is not present in a document.
    #[error("path {path} not found in {origin}")]
    PathNotFound {
        /// The document.
        origin: Origin,
        /// The path asked for.
        path: String,
    },
    /// A path expression could not be parsed or applied.
    #[error("invalid path {path}: {reason}")]
    InvalidPath {
        /// The path expression.
        path: String,
        /// Why.
        reason: String,
    },
    /// A `.sops.yaml` is malformed.
    #[error("invalid sops config `{}`: {reason}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No creation rule of a `.sops.yaml` matches a file.
    #[error("no creation rule in `{}` matches `{}`", config.display(), file.display())]
    NoCreationRule {
        /// The config file.
        config: PathBuf,
        /// The file being created.
        file: PathBuf,
    },
    /// A value to set could not be understood.
    #[error("invalid value from {origin}: {reason}")]
    InvalidValue {
        /// Where the value came from.
        origin: Origin,
        /// Why (never the value).
        reason: String,
    },
    /// The program of an age plugin is not on `PATH`.
    #[error("`{program}` is not on PATH; it is needed for {needed_by}")]
    PluginMissing {
        /// The program, `age-plugin-<name>`.
        program: String,
        /// The recipient or identity that needs it (public: a shortened
        /// recipient, or an identity's file and line, never its text).
        needed_by: String,
    },
    /// An age plugin asked the person something and got no answer.
    #[error(
        "`{program}` (for {needed_by}) asked for {request:?} and got no answer (no terminal to ask on, or the question was cancelled)"
    )]
    PluginNeedsInput {
        /// The program, `age-plugin-<name>`.
        program: String,
        /// The recipient or identity it was working for.
        needed_by: String,
        /// The plugin's question (public by the plugin protocol).
        request: String,
    },
    /// An age plugin failed or refused a recipient or identity.
    #[error("`{program}` failed for {needed_by}: {reason}")]
    Plugin {
        /// The program, `age-plugin-<name>`.
        program: String,
        /// The recipient or identity it was working for.
        needed_by: String,
        /// What the plugin reported.
        reason: String,
    },
    /// A vault transit key URI could not be parsed.
    #[error("invalid vault transit key `{uri}` in {origin}: {reason}")]
    InvalidTransitKey {
        /// The URI (public: an address and a key name).
        uri: String,
        /// Where it came from.
        origin: Origin,
        /// Why it was rejected.
        reason: String,
    },
    /// A file needs a vault transit key but no transit access was set up.
    #[error("{origin} needs vault transit key `{key}`, and no vault transit access is configured")]
    NoTransitAccess {
        /// The document.
        origin: Origin,
        /// The key's URI.
        key: String,
    },
    /// The transit service failed to encrypt or decrypt the data key.
    #[error("failed to {action} the data key of {origin} with vault transit key `{key}`")]
    Transit {
        /// "encrypt" or "decrypt".
        action: &'static str,
        /// The document.
        origin: Origin,
        /// The key's URI.
        key: String,
        /// The service's error (never the token or the data key).
        #[source]
        source: crate::sops::master::WrapError,
    },
    /// A bug.
    #[error("internal error: {0} (this may indicate a bug in artifacts-crypto)")]
    Internal(String),
}

fn fmt_recipients(recipients: &[String]) -> String {
    if recipients.is_empty() {
        // X25519 stanzas carry no public key; whoever stored the file may
        // know them (the agenix backend's `.recipients` does).
        " (the file does not name its recipients)".into()
    } else {
        format!(" (encrypted to {})", recipients.join(", "))
    }
}

impl Error {
    /// An I/O error on a file (also for callers reading files themselves).
    pub fn io(action: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io(IoError::new(action, path.as_ref(), source))
    }

    /// A suggested fix, to print apart from the message.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::NoRecipients { .. } => {
                Some("pass recipients with -r/--recipient or -R/--recipients-file (sops: --age)")
            }
            Error::NoIdentities { .. } => Some(
                "pass -i/--identity FILE, or set ARTIFACTS_IDENTITY (sops also reads SOPS_AGE_KEY_FILE, SOPS_AGE_KEY, SOPS_AGE_SSH_PRIVATE_KEY_FILE)",
            ),
            Error::NoMatchingIdentity { .. } => {
                Some("check that the identity belongs to one of the listed recipients")
            }
            Error::PassphraseRequired { .. } => Some(
                "run in a terminal to be asked for the passphrase, or use a key without a passphrase",
            ),
            Error::PluginMissing { .. } => {
                Some("install the plugin, or add the directory that holds it to PATH")
            }
            Error::PluginNeedsInput { .. } => Some(
                "run in a terminal so that the plugin can ask (and answer it), or use a key that needs no input",
            ),
            Error::MacMismatch { .. } => Some(
                "the file was modified outside sops or is corrupted; restore it from version control",
            ),
            Error::ValueDecrypt { .. } => Some(
                "the value was modified or encrypted with another data key; restore the file from version control",
            ),
            Error::MetadataMissing { .. } => Some("encrypt the file first with `sops encrypt`"),
            Error::AlreadyEncrypted { .. } => {
                Some("decrypt it first, or use updatekeys/rotate to change its keys")
            }
            Error::Unsupported { .. } => Some("use the real `sops` for this file"),
            Error::Transit { .. } | Error::NoTransitAccess { .. } => Some(
                "set BAO_TOKEN or VAULT_TOKEN (or log in: `bao login` writes ~/.vault-token) to a token whose policy allows the transit key's encrypt/decrypt paths, and check that the server is reachable and unsealed",
            ),
            Error::NoCreationRule { .. } => {
                Some("add a matching creation rule, or pass recipients with --age")
            }
            _ => None,
        }
    }
}
