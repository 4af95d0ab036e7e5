//! Declarations of artifacts, independent of how they are stored.
//!
//! An *artifact* is a named bundle of files (secret or public) made by a
//! generator script, possibly from prompted values. Artifacts are declared on
//! *targets*: NixOS machines, Home Manager users and tanka environments.
//!
//! Which part do you need?
//!
//! * Reading declarations: [`load::load_manifest`] for `artifacts.toml`,
//!   `.json` or `.yaml` files, [`load::load_nix_json`] for the JSON the Nix
//!   modules produce. Both return a [`Model`] whose defaults are filled in.
//! * Checking them: [`validate::validate`] reports every problem at once, each
//!   naming the file, target, artifact and field.
//! * Deciding where an artifact goes: [`Model::resolve_backend`] says which
//!   backend stores it and which rule chose it.
//!
//! This crate knows no processes and no terminal.
//!
//! ```
//! use std::path::Path;
//!
//! let model = artifacts_model::load::load_manifest_text(
//!     Path::new("/project/artifacts.toml"),
//!     r#"
//! default.backend = "agenix"
//! [nixos.web1]
//! [artifacts.token]
//! targets = ["web1"]
//! generator = "/nix/store/0000-gen"
//! files.token = { mode = "0400" }
//! "#,
//! )?;
//! artifacts_model::validate::validate(&model, &["agenix"])?;
//! let web1 = &model.targets[0];
//! let choice = model.resolve_backend(web1, &web1.artifacts["token"]).unwrap();
//! assert_eq!(choice.name, "agenix");
//! # Ok::<(), artifacts_model::ModelError>(())
//! ```

#![deny(missing_docs)]

mod error;
mod io;
pub mod limits;
pub mod load;
mod model;
pub mod names;
mod tree;
pub mod validate;

pub use error::{Location, ModelError, Problem};
pub use io::IoError;
pub use model::{
    Artifact, BackendChoice, BackendRule, Context, FileSpec, Mode, Model, Prompt, PromptKind,
    SharedGroup, Target, TargetId, TargetKind,
};
