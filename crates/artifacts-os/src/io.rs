//! The one shape of a failed file-system operation that every crate of the
//! workspace reports: what was being done, to which path, and why.
//!
//! It lives here, in the OS layer, because every crate reports file operations
//! and this crate depends on no other; each crate's error enum wraps it in
//! an `Io` variant (`artifacts_model` re-exports it).

use std::io;
use std::path::{Path, PathBuf};

/// A file-system operation that failed: "failed to {action} `{path}`", with
/// the [`io::Error`] as its source.
///
/// ```
/// use artifacts_os::IoError;
///
/// let source = std::io::Error::from(std::io::ErrorKind::NotFound);
/// let error = IoError::new("read", "/etc/artifacts.lock", source);
/// assert_eq!(error.to_string(), "failed to read `/etc/artifacts.lock`");
/// assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
/// ```
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} `{}`", path.display())]
pub struct IoError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: io::Error,
}

impl IoError {
    /// `action` is a verb phrase such as "read", "write" or "rename"; it is
    /// put after "failed to" in the message.
    pub fn new(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        IoError {
            action,
            path: path.into(),
            source,
        }
    }

    /// The same, for `map_err`: `.map_err(IoError::with("read", &path))`.
    pub fn with(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| IoError::new(action, path, source)
    }

    /// What was being done, e.g. "read".
    pub fn action(&self) -> &'static str {
        self.action
    }

    /// The path involved.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kind of the underlying error.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}
