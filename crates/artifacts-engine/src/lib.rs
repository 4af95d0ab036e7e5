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
//!
//! ```
//! use std::path::Path;
//!
//! use artifacts_engine::plan::Plan;
//! use artifacts_engine::prompts::Answers;
//!
//! let model = artifacts_model::load::load_manifest_text(
//!     Path::new("/project/artifacts.toml"),
//!     r#"
//! default.backend = "agenix"
//! [nixos.web1]
//! [artifacts.ca]
//! targets = ["web1"]
//! generator = "/nix/store/0000-ca"
//! files.ca = {}
//! [artifacts.cert]
//! targets = ["web1"]
//! generator = "/nix/store/0000-cert"
//! dependencies = ["ca"]
//! prompts.name = { type = "line" }
//! files.cert = {}
//! "#,
//! )?;
//! // Dependencies first, whatever the declaration order.
//! let plan = Plan::new(&model)?;
//! let labels: Vec<String> = plan.units.iter().map(|u| u.label()).collect();
//! assert_eq!(labels, ["nixos/web1 ca", "nixos/web1 cert"]);
//! // Every answer is collected before anything runs.
//! let env = |name: &str| (name == "ARTIFACTS_PROMPT_CERT_NAME").then(|| "web1.example".to_owned());
//! let answers = Answers::collect(&plan, &[0, 1], None, &env, None)?;
//! assert!(answers.get("cert", "name").is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod backend;
pub mod engine;
pub mod flake;
pub mod generator;
mod inputs;
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
pub use inputs::InputError;
