//! Exit codes and the error kinds that choose them.
//!
//! 0 success; 1 something missing/stale or an operation failed; 2 usage or
//! declaration errors (and checks that could not run).

use std::fmt;

use artifacts_model::ModelError;

pub const SUCCESS: i32 = 0;
pub const FAILURE: i32 = 1;
pub const USAGE: i32 = 2;

/// An error caused by how we were called or what was declared: exit code 2.
pub struct UsageError(pub anyhow::Error);

impl UsageError {
    pub fn from_model(error: ModelError) -> Self {
        UsageError(anyhow::Error::new(error))
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl fmt::Debug for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit code for an error.
pub fn code_for(error: &anyhow::Error) -> i32 {
    if error.downcast_ref::<UsageError>().is_some() {
        USAGE
    } else {
        FAILURE
    }
}

/// Whether an error is a closed stdout (`artifacts list | head`), which is not a failure.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
