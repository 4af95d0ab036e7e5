//! Tanka project layout: the project root, static environments and their
//! `spec.json`, and whether the declarations give an environment secrets.
//!
//! As tanka does: the root is the nearest directory at or above the start
//! holding `tkrc.yaml`, else the nearest holding `jsonnetfile.json`; a static
//! environment is `environments/<env>/` with `main.jsonnet` and an optional
//! `spec.json`. No global state.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

/// The file holding an environment's encrypted secrets, relative to its directory.
pub const SECRETS_FILE: &str = "secrets.sops.yaml";

/// Manifest names looked for at the project root, in this order.
pub const MANIFEST_NAMES: [&str; 4] = [
    "artifacts.toml",
    "artifacts.json",
    "artifacts.yaml",
    "artifacts.yml",
];

/// A tanka project: its root directory (canonical, symlinks resolved).
#[derive(Debug, Clone)]
pub struct Project {
    root: PathBuf,
}

impl Project {
    /// Finds the project root at or above `start`.
    pub fn find(start: &Path) -> Result<Project> {
        let start = start
            .canonicalize()
            .map_err(|e| Error::io("resolve", start, e))?;
        for marker in ["tkrc.yaml", "jsonnetfile.json"] {
            if let Some(root) = start.ancestors().find(|d| d.join(marker).is_file()) {
                return Ok(Project {
                    root: root.to_path_buf(),
                });
            }
        }
        Err(Error::NoProjectRoot { start })
    }

    /// Uses `root` as the project root without searching.
    pub fn at(root: &Path) -> Result<Project> {
        let root = root
            .canonicalize()
            .map_err(|e| Error::io("resolve", root, e))?;
        Ok(Project { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Opens the static environment `name` (`environments/<name>`).
    pub fn environment(&self, name: &str) -> Result<Environment> {
        check_environment_name(name)?;
        let dir = self.root.join("environments").join(name);
        let main = dir.join("main.jsonnet");
        if !main.is_file() {
            return Err(Error::EnvironmentNotFound {
                env: name.to_string(),
                main,
            });
        }
        let spec = Spec::read(&dir.join("spec.json"), name)?;
        Ok(Environment {
            name: name.to_string(),
            dir,
            main,
            spec,
        })
    }

    /// The declarations manifest at the root, if there is one.
    pub fn manifest(&self) -> Option<PathBuf> {
        MANIFEST_NAMES
            .iter()
            .map(|n| self.root.join(n))
            .find(|p| p.is_file())
    }
}

/// Checks that an environment name is one directory name: not empty, no
/// `/`, no `..`, no control characters, no leading `-`.
pub fn check_environment_name(name: &str) -> Result<()> {
    artifacts_model::names::check_name(name).map_err(|reason| Error::InvalidEnvironment {
        name: artifacts_model::names::escape_for_message(name),
        reason,
    })
}

/// A static tanka environment.
#[derive(Debug, Clone)]
pub struct Environment {
    name: String,
    dir: PathBuf,
    main: PathBuf,
    spec: Spec,
}

impl Environment {
    /// The environment's name (its directory under `environments/`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The environment directory (tanka's "base dir").
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `main.jsonnet`.
    pub fn main(&self) -> &Path {
        &self.main
    }

    /// `secrets.sops.yaml` (which may not exist).
    pub fn secrets_file(&self) -> PathBuf {
        self.dir.join(SECRETS_FILE)
    }

    /// The parts of `spec.json` rendering uses.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }
}

/// What rendering takes from `spec.json` (defaults as tanka's when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// `metadata.name` as tanka sets it: `environments/<env>`.
    pub name: String,
    /// `metadata.namespace` as tanka sets it: `environments/<env>/main.jsonnet`.
    pub entrypoint: String,
    /// `spec.namespace`: injected into namespaced objects without one (default `default`).
    pub namespace: String,
    /// `spec.injectLabels`: add `tanka.dev/environment` to every object.
    pub inject_labels: bool,
    /// `spec.resourceDefaults.annotations`, added where absent.
    pub default_annotations: Vec<(String, String)>,
    /// `spec.resourceDefaults.labels`, added where absent.
    pub default_labels: Vec<(String, String)>,
}

impl Spec {
    /// The defaults for an environment without `spec.json`.
    pub fn default_for(env: &str) -> Spec {
        Spec {
            name: format!("environments/{env}"),
            entrypoint: format!("environments/{env}/main.jsonnet"),
            namespace: "default".into(),
            inject_labels: false,
            default_annotations: Vec::new(),
            default_labels: Vec::new(),
        }
    }

    fn read(path: &Path, env: &str) -> Result<Spec> {
        let mut spec = Spec::default_for(env);
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(spec),
            Err(e) => return Err(Error::io("read", path, e)),
        };
        let bad = |message: String| Error::Spec {
            path: path.to_path_buf(),
            message,
        };
        let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let s = value.get("spec");
        match s.and_then(|s| s.get("namespace")) {
            Some(Value::String(n)) => spec.namespace = n.clone(),
            Some(Value::Null) | None => {
                // Deprecated top-level `namespace`, as tanka still honours it.
                if let Some(n) = value.get("namespace") {
                    spec.namespace = n
                        .as_str()
                        .ok_or_else(|| bad("`namespace` must be a string".into()))?
                        .to_string();
                }
            }
            Some(_) => return Err(bad("`spec.namespace` must be a string".into())),
        }
        match s.and_then(|s| s.get("injectLabels")) {
            Some(Value::Bool(b)) => spec.inject_labels = *b,
            Some(Value::Null) | None => {}
            Some(_) => return Err(bad("`spec.injectLabels` must be a boolean".into())),
        }
        let defaults = s.and_then(|s| s.get("resourceDefaults"));
        for (key, out) in [
            ("annotations", &mut spec.default_annotations),
            ("labels", &mut spec.default_labels),
        ] {
            match defaults.and_then(|d| d.get(key)) {
                Some(Value::Object(m)) => {
                    for (k, v) in m {
                        let v = v.as_str().ok_or_else(|| {
                            bad(format!(
                                "`spec.resourceDefaults.{key}.{k}` must be a string"
                            ))
                        })?;
                        out.push((k.clone(), v.to_string()));
                    }
                }
                Some(Value::Null) | None => {}
                Some(_) => {
                    return Err(bad(format!(
                        "`spec.resourceDefaults.{key}` must be an object"
                    )));
                }
            }
        }
        Ok(spec)
    }

    /// The value of the `tanka.dev/environment` label: the first 48 hex
    /// digits of SHA-256 over `<name>:<entrypoint>`, as tanka computes it.
    pub fn name_label(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{}:{}", self.name, self.entrypoint));
        hex::encode(digest)[..48].to_string()
    }
}

/// Whether the declarations give environment `env` at least one secret file.
///
/// `manifest` is the declarations file (`None`: none found, so nothing is
/// declared). Tanka targets are `[tanka.<env>]`; an artifact counts when one
/// of its files is secret.
pub fn declares_secrets(manifest: Option<&Path>, env: &str) -> Result<bool> {
    let Some(path) = manifest else {
        return Ok(false);
    };
    let model = artifacts_model::load::load_manifest(path)
        .map_err(|source| Error::Declarations { source })?;
    let id = artifacts_model::TargetId::new(artifacts_model::TargetKind::Tanka, env);
    Ok(model.target(&id).is_some_and(|t| {
        t.artifacts
            .values()
            .any(|a| a.files.values().any(|f| f.secret))
    }))
}
