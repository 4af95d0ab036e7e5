//! The one shape of a failed file-system operation ("failed to {action}
//! `{path}`"), defined in the OS layer and re-exported here so that crates
//! reporting declarations need not name that layer.

pub use artifacts_os::IoError;
