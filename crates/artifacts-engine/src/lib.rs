//! Everything that runs: backends, generators, the plan and `artifacts.lock`.
//!
//! Which part do you need?
//!
//! * Finding backends: [`backend::BackendRegistry::load`] reads `backend.toml`
//!   (with includes) and checks every script.
//! * Ordering work: [`plan::Plan::new`] turns a validated model into units
//!   (one per target and artifact, one per shared artifact) in dependency order.
//! * Asking: [`prompts::Answers::collect`] gathers prompt answers from a file,
//!   the environment or an [`prompts::Asker`], before anything runs.
//! * Choosing what to generate: [`engine::Engine::candidates`], then
//!   [`engine::Engine::select`] (missing, stale, forced, older than; cascade;
//!   the guard for secrets another backend stores), see [`selection`].
//! * Doing: [`engine::Engine`] checks units in parallel and generates them
//!   (sandboxed generator, output validation, serialize, lock update).
//! * Storing in this process: [`store::StoreBackend`] is the one trait an
//!   in-process backend (the shipped ones, in `artifacts-backends`) implements.
//! * Processes, scratch directories, files and signals: the `artifacts-os` crate.
//!
//! This crate knows no terminal.

#![deny(missing_docs)]

pub mod backend;
pub mod engine;
pub mod flake;
pub mod generator;
pub mod install;
pub mod lifecycle;
pub mod lock;
pub mod plan;
pub mod prompts;
pub mod public;
pub mod sandbox;
pub mod script;
pub mod seccomp;
pub mod selection;
pub mod store;

pub use engine::{
    Engine, EngineError, Observer, Settings, Silent, StaleCause, Status, Timeouts, error_chain,
    suggestion,
};
