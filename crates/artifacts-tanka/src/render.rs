//! `show`: one environment rendered to a YAML stream of Kubernetes objects,
//! by either engine, failing closed.
//!
//! The result is only returned when everything succeeded and at least one
//! object came out: an empty render is an error, because ArgoCD with
//! `prune: true` deletes every resource when a plugin prints nothing.

use crate::error::{Error, Result};
use crate::eval::{self, Vars};
use crate::inline;
use crate::output;
use crate::process;
use crate::project::{Environment, Kind, Project};
use crate::redact::Redactor;
use crate::secrets::Secrets;
use crate::tk::{self, TkConfig};

/// Which jsonnet implementation renders.
#[derive(Debug, Clone)]
pub enum Engine {
    /// jrsonnet, in-process ([`crate::eval`]).
    Builtin,
    /// The real `tk show` ([`crate::tk`]).
    Tk(TkConfig),
}

/// A successful render.
#[derive(Debug)]
pub struct Rendered {
    /// The YAML stream, for stdout.
    pub yaml: String,
    /// How many objects it holds.
    pub objects: usize,
    /// `std.trace` lines or `tk`'s stderr, redacted (for stderr, if wanted).
    pub diagnostics: Vec<String>,
}

/// Renders `env` with `secrets` bound to `secrets_yaml` (not bound at all
/// when `None`). `name` selects among inline environments (tanka's
/// `--name`; static environments ignore it, as tanka does).
pub fn show(
    project: &Project,
    env: &Environment,
    secrets: Option<&Secrets>,
    vars: &Vars,
    name: Option<&str>,
    engine: &Engine,
) -> Result<Rendered> {
    let none = Redactor::none();
    let redactor = secrets.map_or(&none, Secrets::redactor);
    let secrets_yaml = secrets.map(Secrets::yaml);
    let extract_error = |message: String| match message.strip_prefix(process::UNSUPPORTED) {
        Some(feature) => Error::Unsupported {
            env: env.name().to_string(),
            feature: redactor.redact(feature),
        },
        None => Error::Extract {
            env: env.name().to_string(),
            message: redactor.redact(&message),
        },
    };
    match engine {
        Engine::Builtin => {
            let mut diagnostics = Vec::new();
            let select = match env.kind() {
                Kind::Inline => name,
                Kind::Static(_) => None,
            };
            let value = eval::evaluate(
                project,
                env,
                secrets_yaml,
                vars,
                select,
                redactor,
                &mut diagnostics,
            )?;
            let (spec, data) = match env.kind() {
                Kind::Static(spec) => ((**spec).clone(), value),
                Kind::Inline => inline::select(value, select, &env.path(), &env.entrypoint())
                    .map_err(|e| match e {
                        inline::SelectError::Extract(m) => extract_error(m),
                        inline::SelectError::Select(m) => Error::Inline {
                            env: env.name().to_string(),
                            message: redactor.redact(&m),
                        },
                    })?,
            };
            if !spec.expect_tanka.is_empty() {
                // tanka checks its own version against this; we are not tanka.
                return Err(Error::Unsupported {
                    env: env.name().to_string(),
                    feature: "`spec.expectVersions.tanka`".into(),
                });
            }
            let objects = process::process(data, &spec).map_err(extract_error)?;
            if objects.is_empty() {
                return Err(Error::Empty {
                    env: env.name().to_string(),
                });
            }
            let count = objects.len();
            let yaml = output::stream(objects).map_err(extract_error)?;
            Ok(Rendered {
                yaml,
                objects: count,
                diagnostics,
            })
        }
        Engine::Tk(config) => {
            let out = tk::show(project, env, secrets_yaml, vars, name, config, redactor)?;
            let docs = output::parse_stream(&out.stdout)
                .map_err(|e| extract_error(format!("`tk show` printed invalid YAML: {e}")))?;
            for (i, d) in docs.iter().enumerate() {
                let ok = d
                    .get("apiVersion")
                    .is_some_and(serde_json::Value::is_string)
                    && d.get("kind").is_some_and(serde_json::Value::is_string);
                if !ok {
                    return Err(extract_error(format!(
                        "document {} printed by `tk show` is not a Kubernetes object",
                        i + 1
                    )));
                }
            }
            if docs.is_empty() {
                return Err(Error::Empty {
                    env: env.name().to_string(),
                });
            }
            let diagnostics = out
                .stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect();
            Ok(Rendered {
                yaml: out.stdout,
                objects: docs.len(),
                diagnostics,
            })
        }
    }
}
