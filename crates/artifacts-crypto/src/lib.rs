//! age and the SOPS file format (work in progress).
