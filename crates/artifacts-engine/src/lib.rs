//! Everything that runs: backends, generators, the plan and `artifacts.lock`.
//!
//! Which part do you need?
//!
//! * Loading backends: [`BackendRegistry::load`] reads `backend.toml` (with
//!   includes) and checks every script; the entries are in [`backend`].
//! * The plan: [`Plan::new`] turns a validated model into [`Unit`]s in
//!   dependency order, addressed by [`UnitId`]: one per target and artifact,
//!   one for all the targets of a shared artifact ([`Targets`]).
//! * Answers: [`Answers::collect`] gathers every prompt answer from a file,
//!   the environment or an [`Asker`] before anything runs.
//! * The engine: an [`Engine`] (from a [`backend`] registry and [`Settings`])
//!   checks units ([`Engine::statuses`]: a [`Status`] each), chooses what to
//!   generate ([`Engine::candidates`], then [`Engine::select`]; see
//!   [`selection`]) and generates it ([`Engine::generate`] with a
//!   [`GenerateRequest`]: sandboxed generator, output validation, serialize,
//!   [`lock`] update). Failures are [`EngineError`]s; the other errors are
//!   in [`error`].
//! * Lifecycle: [`Engine::accept`], [`Engine::migrate`], [`Engine::rekey`]
//!   and garbage collection ([`Engine::orphans`]); outcomes in [`lifecycle`].
//! * Install: [`Engine::activate`] generates what its backend stores nothing
//!   of and installs it under an [`InstallRoot`] ([`Installed`] per file).
//! * Storing in this process: [`store::StoreBackend`] is the one trait an
//!   in-process backend (the shipped ones, in `artifacts-backends`)
//!   implements.
//! * Declarations from a flake: [`flake`].
//! * Processes, scratch directories, files and signals: the `artifacts-os` crate.
//!
//! This crate knows no terminal.
//!
//! ```
//! use std::path::Path;
//!
//! use artifacts_engine::{Answers, Plan, UnitId};
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
//! let labels: Vec<String> = plan.units().map(|u| u.label()).collect();
//! assert_eq!(labels, ["nixos/web1 ca", "nixos/web1 cert"]);
//! // Every answer is collected before anything runs.
//! let env = |name: &str| (name == "ARTIFACTS_PROMPT_CERT_NAME").then(|| "web1.example".to_owned());
//! let all: Vec<UnitId> = plan.iter().map(|(id, _)| id).collect();
//! let answers = Answers::collect(&plan, &all, None, &env, None)?;
//! assert!(answers.get("cert", "name").is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod engine;
mod flake_eval;
mod generator;
mod in_process;
mod inputs;
mod install;
mod lockfile;
mod maintenance;
mod plan;
mod prompts;
mod public;
mod registry;
mod sandbox;
mod script;
mod seccomp;
mod select;

// Loading backends.
pub use registry::BackendRegistry;
// The plan.
pub use plan::{Plan, Targets, Unit, UnitId};
// Answers.
pub use prompts::{Answers, Asker, PromptsFile};
// The engine.
pub use engine::{
    Engine, EngineError, GenerateRequest, Observer, Settings, Silent, StaleCause, Status, Timeouts,
    error_chain, suggestion,
};
pub use generator::ArtifactFiles;
pub use sandbox::Sandbox;
// Install.
pub use engine::{Activated, InstallRoot};
pub use install::Installed;

/// Backends as the registry holds them: their sections, per target kind
/// and shared, and the scripts each one runs.
pub mod backend {
    pub use crate::registry::{Backend, Capabilities, Script, Scripts, Section, SectionKind};
}

/// `artifacts.lock`: what was generated, from which declaration, and when;
/// how a recorded entry compares with the current declaration.
pub mod lock {
    pub use crate::lockfile::{Lock, LockEntry, Provenance};
    pub use crate::plan::{Comparison, Declared};
}

/// What [`Engine::candidates`](crate::Engine::candidates) and
/// [`Engine::select`](crate::Engine::select) work with: the request, the
/// two steps' results, why each unit is chosen, and what to tell.
pub mod selection {
    pub use crate::select::{Candidates, Finding, Reason, Selection, SelectionRequest, age};
}

/// What accepting, migrating and garbage collection report
/// ([`Engine::accept`](crate::Engine::accept),
/// [`Engine::migrate`](crate::Engine::migrate),
/// [`Engine::orphans`](crate::Engine::orphans)).
pub mod lifecycle {
    pub use crate::maintenance::{Accepted, Kept, Migrated, Orphan, Skipped};
}

/// The one trait an in-process backend implements, and what it is called
/// with: what a backend script would find in its environment, typed.
pub mod store {
    /// Runs a batch's work on up to `jobs` threads (for [`StoreBackend::rekey_all`]).
    pub use crate::engine::parallel;
    pub use crate::in_process::{
        Asked, Call, CallFile, CallTarget, Checked, InProcess, KeySources, Stamp, StoreBackend,
        StoreError, Writable,
    };
    pub use crate::script::{STAMP_FINGERPRINT, STAMP_GENERATED_AT};
}

/// Declarations from a flake (one `nix eval`), and realising the generators
/// that are derivations (one `nix build`).
pub mod flake {
    pub use crate::flake_eval::{FlakeDeclarations, FlakeError, load, realise};
}

/// The errors besides [`EngineError`]: loading backends, planning, prompts,
/// the lock and the sandbox, and what an [`EngineError`] wraps.
pub mod error {
    pub use crate::generator::GeneratorError;
    pub use crate::inputs::InputError;
    pub use crate::install::InstallError;
    pub use crate::lockfile::LockError;
    pub use crate::plan::PlanError;
    pub use crate::prompts::PromptError;
    pub use crate::registry::BackendError;
    pub use crate::sandbox::SandboxError;
    pub use crate::script::ScriptError;
}
