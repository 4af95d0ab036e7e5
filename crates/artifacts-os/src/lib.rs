//! The operating-system layer every other crate of `artifacts` uses, in the
//! spirit of cargo's `cargo-util`: one implementation of each thing that is
//! easy to get subtly wrong.
//!
//! Which part do you need?
//!
//! * Running a child (a backend script, a generator, `nix`, `tk`):
//!   [`process::ProcessBuilder`] (own process group, time limit, no inherited
//!   descriptors, stopped on signals, optionally killed with us).
//! * Finding a program on `$PATH`: [`path::find_executable`].
//! * A private temporary directory, removed on every exit path, signals and
//!   killed runs included: [`scratch::Scratch`].
//! * Replacing a file safely: [`fs::write_atomic`]; inside a store, without
//!   following links: [`fs::Dir`].
//! * One mutating run per project: [`project_lock::ProjectLock`].
//! * Keeping secrets out of what we echo from children: [`redact`].
//! * The binary's start: [`process::harden_current_process`] and
//!   [`signals::install`], which stops every child and removes every scratch
//!   directory when a signal ends the run.
//!
//! Global state lives here and only here: running children
//! ([`process`]), live scratch directories ([`scratch`]), known secret values
//! ([`redact`]) and the signal thread ([`signals`]).
//!
//! This crate depends on no other crate of the workspace.

#![deny(missing_docs)]

pub mod fs;
mod io;
pub mod path;
pub mod process;
pub mod project_lock;
pub mod redact;
pub mod scratch;
pub mod signals;

pub use io::IoError;
