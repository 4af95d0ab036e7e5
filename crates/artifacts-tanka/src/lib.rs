//! The tanka stage: an environment's decrypted secrets reach its jsonnet as
//! the top-level argument `secrets_yaml`, rendered to Kubernetes objects
//! in-process or by the real `tk`, and the ArgoCD config-management-plugin
//! entry points around that.
//!
//! # Which part do I need?
//!
//! - **Find the project and an environment**: [`project::Project::find`]
//!   (root = nearest `tkrc.yaml`, else `jsonnetfile.json`), then
//!   [`project::Project::environment`] (`environments/<path>/main.jsonnet`,
//!   nested paths included; static with `spec.json`, else inline), or
//!   [`project::Project::environments`] for all of them.
//! - **The decrypted secrets** (what `sops -d` prints):
//!   [`secrets::decrypt`]; for rendering, [`secrets::for_render`], which
//!   also decides whether a missing file is an error (the declarations give
//!   the environment secrets) or means "no `secrets_yaml`".
//! - **Render**: [`render::show`] with [`render::Engine::Builtin`]
//!   (jrsonnet, [`eval`]) or [`render::Engine::Tk`] ([`tk`]); it returns
//!   the YAML stream only when at least one object came out.
//!   - `std.native('helmTemplate')` / `('kustomizeBuild')` run the real
//!     programs on charts and kustomizations inside the project ([`helm`],
//!     [`kustomize`], [`external`], keyed by [`listmap`]).
//!   - The pieces: [`eval::evaluate`] (jsonnet → JSON), [`inline::select`]
//!     (an inline environment's spec and data), [`process::process`]
//!     (tanka's extraction, namespace/labels, ordering), [`output::stream`].
//! - **ArgoCD**: [`cmp`] (environment name, allow-list, discovery, the
//!   ConfigManagementPlugin manifest).
//! - **Offer `artifacts tanka …` / `artifacts cmp …` in a binary**: the
//!   functions above; the command line itself lives in the `artifacts` binary.
//!
//! # Guarantees
//!
//! - Fail closed: a decrypt or MAC failure, a missing secrets file for an
//!   environment that declares secrets, a jsonnet error, output that is not
//!   Kubernetes objects, or no object at all is an error; nothing is
//!   returned for stdout.
//! - jsonnet reads only files inside the project root ([`import`]).
//! - Secret values never appear in argv, errors or diagnostics (they pass a
//!   [`redact::Redactor`]); the `tk` engine hands them over in a `0600` file
//!   inside a `0700` directory, removed afterwards.

//!
//! ```
//! use artifacts_tanka::project::Project;
//! use artifacts_tanka::render::{self, Engine};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("jsonnetfile.json"), "{}")?;
//! std::fs::create_dir_all(dir.path().join("environments/default"))?;
//! std::fs::write(
//!     dir.path().join("environments/default/spec.json"),
//!     r#"{"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment", "spec": {"namespace": "apps"}}"#,
//! )?;
//! std::fs::write(
//!     dir.path().join("environments/default/main.jsonnet"),
//!     "{ cm: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings' } } }",
//! )?;
//! let project = Project::find(dir.path())?;
//! let env = project.environment("default")?;
//! let rendered = render::show(&project, &env, None, &Default::default(), None, &Engine::Builtin)?;
//! assert_eq!(rendered.objects, 1);
//! assert!(rendered.yaml.contains("name: settings"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod cmp;
pub mod error;
pub mod eval;
pub mod external;
pub mod goyaml;
pub mod helm;
pub mod import;
pub mod inline;
pub mod kustomize;
pub mod limits;
pub mod listmap;
pub mod natives;
pub mod output;
pub mod process;
pub mod project;
pub mod redact;
pub mod render;
pub mod secrets;
pub mod tk;

pub use error::{Error, Result};
