//! The crate's error type.
//!
//! Owns [`Error`]. Messages are lowercase, name the environment or file, and
//! never carry a secret value: text that can quote secrets (jsonnet errors,
//! `tk`'s stderr) is passed through a [`crate::redact::Redactor`] before it is
//! stored in an error.

use std::path::PathBuf;

use artifacts_model::IoError;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while rendering a tanka environment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No `tkrc.yaml` or `jsonnetfile.json` above the starting directory.
    #[error("no tanka project root (a directory with `tkrc.yaml` or `jsonnetfile.json`) at or above `{}`", start.display())]
    NoProjectRoot {
        /// Where the search started.
        start: PathBuf,
    },
    /// An environment name that is not a plain directory name.
    #[error("invalid environment name `{name}`: {reason}")]
    InvalidEnvironment {
        /// The name as given (control characters escaped).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `environments/<env>/main.jsonnet` does not exist.
    #[error("environment `{env}` not found: `{}` does not exist", main.display())]
    EnvironmentNotFound {
        /// The environment.
        env: String,
        /// The entry point that was looked for.
        main: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// `spec.json` is not valid.
    #[error("invalid `{}`: {message}", path.display())]
    Spec {
        /// The spec file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The declarations (artifacts manifest) could not be read.
    #[error("failed to read the declarations")]
    Declarations {
        /// The model's error.
        #[source]
        source: artifacts_model::ModelError,
    },
    /// The environment declares secrets but has no secrets file.
    #[error("environment `{env}` declares secrets but `{}` does not exist", path.display())]
    SecretsMissing {
        /// The environment.
        env: String,
        /// The secrets file that was expected.
        path: PathBuf,
    },
    /// The secrets file could not be read or decrypted (MAC included).
    #[error("failed to decrypt the secrets of environment `{env}`")]
    Decrypt {
        /// The environment.
        env: String,
        /// The crypto error (never a value).
        #[source]
        source: artifacts_crypto::Error,
    },
    /// The decrypted secrets are not valid YAML.
    #[error("the decrypted secrets of environment `{env}` are not valid YAML: {message}")]
    SecretsYaml {
        /// The environment.
        env: String,
        /// The parser's message (redacted).
        message: String,
    },
    /// Jsonnet evaluation failed.
    #[error("jsonnet evaluation of environment `{env}` failed: {message}")]
    Jsonnet {
        /// The environment.
        env: String,
        /// jsonnet's message and trace, redacted.
        message: String,
    },
    /// The evaluated output does not consist of Kubernetes objects.
    #[error("environment `{env}`: {message}")]
    Extract {
        /// The environment.
        env: String,
        /// What was found instead (never a value).
        message: String,
    },
    /// Selecting the inline environment failed (none, several, or an
    /// invalid one), with tanka's message.
    #[error("environment `{env}`: {message}")]
    Inline {
        /// The environment path.
        env: String,
        /// What went wrong.
        message: String,
    },
    /// The builtin engine cannot render this exactly as tanka does.
    #[error(
        "environment `{env}` uses {feature}, which the builtin engine does not render exactly as tanka does"
    )]
    Unsupported {
        /// The environment path.
        env: String,
        /// The feature.
        feature: String,
    },
    /// The environment rendered to no Kubernetes object at all.
    #[error("environment `{env}` rendered no Kubernetes objects")]
    Empty {
        /// The environment.
        env: String,
    },
    /// A `--ext-str`/`--tla-str` argument is malformed or not allowed.
    #[error("invalid {flag} `{value}`: {reason}")]
    Argument {
        /// The flag (`--ext-str`, `--tla-str`).
        flag: &'static str,
        /// The argument up to `=` (never the value).
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// An external program could not be started.
    #[error("could not execute `{program}`")]
    Spawn {
        /// The program.
        program: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An external program failed.
    #[error("`{program}` failed ({status}){}", fmt_stderr(stderr))]
    ToolFailed {
        /// The program and arguments (no secrets travel in argv).
        program: String,
        /// How it exited.
        status: String,
        /// Its stderr, redacted and shortened.
        stderr: String,
    },
    /// The ArgoCD repository allow-list does not contain the repository.
    #[error("repository `{repo}` is not on the allow-list `{}`", list.display())]
    NotAllowed {
        /// `ARGOCD_APP_SOURCE_REPO_URL` (empty when unset).
        repo: String,
        /// The allow-list file.
        list: PathBuf,
    },
    /// Writing the result failed.
    #[error("failed to write {stream}")]
    Stream {
        /// The stream.
        stream: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn fmt_stderr(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io(IoError::new(action, path, source))
    }

    /// A suggested fix, to print apart from the message.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::NoProjectRoot { .. } => {
                Some("run from inside a tanka project, or create `jsonnetfile.json` at its root")
            }
            Error::SecretsMissing { .. } => {
                Some("run `artifacts generate` to create the secrets file, then commit it")
            }
            Error::Decrypt { source, .. } => source.hint().or(Some(
                "pass --identity FILE, or set SOPS_AGE_KEY_FILE (or ARTIFACTS_IDENTITY, SOPS_AGE_KEY, SOPS_AGE_SSH_PRIVATE_KEY_FILE)",
            )),
            Error::Empty { .. } => Some(
                "an empty render would make ArgoCD prune every resource; check that main.jsonnet returns Kubernetes objects",
            ),
            Error::Spawn { .. } => Some("install Grafana Tanka (`tk`), or use --engine builtin"),
            Error::Unsupported { .. } => Some("render it with the real tanka: --engine tk"),
            Error::Inline { .. } => Some(
                "select an inline environment by its metadata.name with --name NAME (plugin.env TK_NAME under ArgoCD)",
            ),
            Error::NotAllowed { .. } => {
                Some("add the repository URL as a whole line to the allow-list")
            }
            _ => None,
        }
    }
}
