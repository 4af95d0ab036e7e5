//! Why a request to OpenBao failed, in the words an operator acts on.
//!
//! No variant holds a token, a secret value or a response body that could
//! carry one: only addresses, paths, status codes and the server's error
//! strings for failed requests (which never echo request data).

/// A failed OpenBao request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable (no address, unreadable CA file, …).
    #[error("{0}")]
    Config(String),
    /// No connection after every retry.
    #[error("openbao at `{address}` is unreachable after {attempts} attempt(s): {reason}")]
    Unreachable {
        /// The server address.
        address: String,
        /// How many times it was tried.
        attempts: u32,
        /// The last connection error.
        reason: String,
    },
    /// The server is sealed.
    #[error("openbao at `{address}` is sealed")]
    Sealed {
        /// The server address.
        address: String,
    },
    /// The token may not do this on `path`.
    #[error("permission denied on `{path}` (openbao at `{address}`)")]
    Forbidden {
        /// The server address.
        address: String,
        /// The API path, without `/v1/`.
        path: String,
    },
    /// The token is missing, expired or revoked.
    #[error("the openbao token is invalid or expired (openbao at `{address}`)")]
    BadToken {
        /// The server address.
        address: String,
    },
    /// `mount` is not a KV version 2 secrets engine.
    #[error("`{mount}` on openbao at `{address}` is not a KV version 2 mount: {found}")]
    WrongMount {
        /// The server address.
        address: String,
        /// The mount path.
        mount: String,
        /// What is there instead.
        found: String,
    },
    /// A write was rejected because the entry changed since it was read.
    #[error("`{path}` changed on openbao at `{address}` while it was being written")]
    Conflict {
        /// The server address.
        address: String,
        /// The API path.
        path: String,
    },
    /// Any other error status.
    #[error("openbao at `{address}` answered {status} to {method} `{path}`: {message}")]
    Status {
        /// The server address.
        address: String,
        /// The HTTP method.
        method: &'static str,
        /// The API path.
        path: String,
        /// The status code.
        status: u16,
        /// The server's error strings, joined.
        message: String,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer from openbao at `{address}` to `{path}`: {reason}")]
    Protocol {
        /// The server address.
        address: String,
        /// The API path.
        path: String,
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// A suggested fix, where one is known.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Forbidden { .. } => Some(
                "grant it with the policies `artifacts openbao policies` prints (or writes, with --apply)"
                    .to_owned(),
            ),
            Error::BadToken { .. } => Some(
                "log in again (`bao login`), or set BAO_TOKEN/VAULT_TOKEN to a valid token".to_owned(),
            ),
            Error::Sealed { .. } => Some("unseal it (`bao operator unseal`)".to_owned()),
            Error::Unreachable { .. } => Some(
                "check artifacts.config.openbao.address (or BAO_ADDR/VAULT_ADDR) and that the server runs"
                    .to_owned(),
            ),
            Error::WrongMount { .. } => Some(
                "set artifacts.config.openbao.mount to a KV v2 mount, or enable one: `bao secrets enable -version=2 -path=MOUNT kv`"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}
