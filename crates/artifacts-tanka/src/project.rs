//! Tanka project layout: the project root, environments and their
//! `spec.json` ([`Spec`], tanka's `v1alpha1.Environment`), and whether the
//! declarations give an environment secrets.
//!
//! As tanka does: the root is the nearest directory at or above the start
//! holding `tkrc.yaml`, else the nearest holding `jsonnetfile.json`; an
//! environment is a directory below `environments/` (at any depth, named by
//! its path) with `main.jsonnet`: static when `spec.json` is beside it,
//! inline otherwise. No global state.

use std::collections::BTreeMap;
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

    /// Opens the environment at `path`: its directory below `environments/`
    /// (`default`, `prom-grafana/dev`), optionally written as tanka names it
    /// (`environments/prom-grafana/dev`, a trailing `/` or `/main.jsonnet`).
    /// Every component is checked: no `..`, no absolute path, no control
    /// characters. With `spec.json` it is static, without it inline (tanka's
    /// rule).
    pub fn environment(&self, path: &str) -> Result<Environment> {
        let name = environment_name(path)?;
        let dir = self.root.join("environments").join(&name);
        let main = dir.join("main.jsonnet");
        if !main.is_file() {
            return Err(Error::EnvironmentNotFound { env: name, main });
        }
        let spec_file = dir.join("spec.json");
        let kind = match std::fs::read_to_string(&spec_file) {
            Ok(text) => {
                let bad = |message: String| Error::Spec {
                    path: spec_file.clone(),
                    message,
                };
                let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
                let mut spec = Spec::parse(&value, &format!("environments/{name}/main.jsonnet"))
                    .map_err(bad)?;
                // tanka names a static environment by its path, whatever spec.json says.
                spec.name = format!("environments/{name}");
                Kind::Static(Box::new(spec))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Kind::Inline,
            Err(e) => return Err(Error::io("read", &spec_file, e)),
        };
        Ok(Environment {
            name,
            dir,
            main,
            kind,
        })
    }

    /// Every environment of the project: each directory below
    /// `environments/` holding `main.jsonnet`, nested ones included, as
    /// [`Project::environment`] names them, sorted. Symlinked directories
    /// are not followed.
    pub fn environments(&self) -> Result<Vec<String>> {
        let mut found = Vec::new();
        let base = self.root.join("environments");
        if base.is_dir() {
            walk_environments(&base, "", &mut found)?;
        }
        found.sort();
        Ok(found)
    }

    /// The declarations manifest at the root, if there is one.
    pub fn manifest(&self) -> Option<PathBuf> {
        MANIFEST_NAMES
            .iter()
            .map(|n| self.root.join(n))
            .find(|p| p.is_file())
    }
}

fn walk_environments(dir: &Path, prefix: &str, found: &mut Vec<String>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read", dir, e))?;
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let Some(component) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !file_type.is_dir() || check_component(&component).is_err() {
            continue;
        }
        let name = if prefix.is_empty() {
            component
        } else {
            format!("{prefix}/{component}")
        };
        if entry.path().join("main.jsonnet").is_file() {
            found.push(name.clone());
        }
        walk_environments(&entry.path(), &name, found)?;
    }
    Ok(())
}

fn check_component(component: &str) -> std::result::Result<(), String> {
    artifacts_model::names::check_name(component)
}

/// Normalises an environment path (see [`Project::environment`]) to its
/// directory below `environments/`, checking every component.
pub fn environment_name(path: &str) -> Result<String> {
    let invalid = |reason: String| Error::InvalidEnvironment {
        name: artifacts_model::names::escape_for_message(path),
        reason,
    };
    if path.starts_with('/') {
        return Err(invalid("an absolute path is not an environment".into()));
    }
    let mut rest = path.trim_end_matches('/');
    rest = rest.strip_suffix("/main.jsonnet").unwrap_or(rest);
    rest = rest.strip_prefix("environments/").unwrap_or(rest);
    if rest.is_empty() {
        return Err(invalid("name is empty".into()));
    }
    for component in rest.split('/') {
        check_component(component).map_err(invalid)?;
    }
    Ok(rest.to_string())
}

/// Checks an environment path (see [`Project::environment`]).
pub fn check_environment_name(name: &str) -> Result<()> {
    environment_name(name).map(|_| ())
}

/// How tanka loads an environment.
#[derive(Debug, Clone)]
pub enum Kind {
    /// `spec.json` next to `main.jsonnet`: the output is the environment's data.
    Static(Box<Spec>),
    /// No `spec.json`: the output holds `tanka.dev/v1alpha1` `Environment`
    /// objects whose `data` are the resources.
    Inline,
}

/// A tanka environment: a directory below `environments/` with `main.jsonnet`.
#[derive(Debug, Clone)]
pub struct Environment {
    name: String,
    dir: PathBuf,
    main: PathBuf,
    kind: Kind,
}

impl Environment {
    /// The environment's path below `environments/` (`default`, `a/b`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its path from the project root, as tanka names it (`environments/a/b`).
    pub fn path(&self) -> String {
        format!("environments/{}", self.name)
    }

    /// The entry point from the project root (`environments/a/b/main.jsonnet`).
    pub fn entrypoint(&self) -> String {
        format!("environments/{}/main.jsonnet", self.name)
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

    /// Static or inline.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// The static environment's `spec.json`, `None` for an inline one.
    pub fn spec(&self) -> Option<&Spec> {
        match &self.kind {
            Kind::Static(spec) => Some(spec),
            Kind::Inline => None,
        }
    }
}

/// A `tanka.dev/v1alpha1` `Environment` as tanka reads it (from `spec.json`
/// or an inline object): every field tanka knows, with tanka's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// `metadata.name`: `environments/<env>` for a static environment, the
    /// object's own name for an inline one.
    pub name: String,
    /// `metadata.namespace` as tanka sets it: the entry point from the root.
    pub entrypoint: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `spec.apiServer` (`https://` added when it has no scheme).
    pub api_server: String,
    /// `spec.contextNames`.
    pub context_names: Vec<String>,
    /// `spec.namespace`: injected into namespaced objects without one (default `default`).
    pub namespace: String,
    /// `spec.diffStrategy`.
    pub diff_strategy: String,
    /// `spec.applyStrategy`.
    pub apply_strategy: String,
    /// `spec.injectLabels`: add `tanka.dev/environment` to every object.
    pub inject_labels: bool,
    /// `spec.tankaEnvLabelFromFields`: what the label value hashes.
    pub label_from_fields: Vec<String>,
    /// `spec.resourceDefaults.annotations`, added where absent.
    pub default_annotations: BTreeMap<String, String>,
    /// `spec.resourceDefaults.labels`, added where absent.
    pub default_labels: BTreeMap<String, String>,
    /// `spec.expectVersions.tanka`.
    pub expect_tanka: String,
    /// `spec.exportJsonnetImplementation`.
    pub export_jsonnet_implementation: String,
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Reads fields the way Go's `encoding/json` fills tanka's structs: absent
/// and `null` keep the default, a wrong type is an error naming the field.
struct Fields<'a>(&'a Value);

impl Fields<'_> {
    fn get(&self, path: &str) -> Option<&Value> {
        let mut v = self.0;
        for part in path.split('.') {
            v = v.get(part)?;
            if v.is_null() {
                return None;
            }
        }
        Some(v)
    }

    fn string(&self, path: &str, out: &mut String) -> std::result::Result<(), String> {
        match self.get(path) {
            None => Ok(()),
            Some(Value::String(s)) => {
                *out = s.clone();
                Ok(())
            }
            Some(v) => Err(format!(
                "`{path}` is a {} but should be a string",
                type_of(v)
            )),
        }
    }

    fn bool(&self, path: &str, out: &mut bool) -> std::result::Result<(), String> {
        match self.get(path) {
            None => Ok(()),
            Some(Value::Bool(b)) => {
                *out = *b;
                Ok(())
            }
            Some(v) => Err(format!(
                "`{path}` is a {} but should be a boolean",
                type_of(v)
            )),
        }
    }

    fn strings(&self, path: &str, out: &mut Vec<String>) -> std::result::Result<(), String> {
        match self.get(path) {
            None => Ok(()),
            Some(Value::Array(items)) => {
                *out = items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => Ok(s.clone()),
                        // Go decodes null into an empty string.
                        Value::Null => Ok(String::new()),
                        v => Err(format!(
                            "`{path}` holds a {} but should hold strings",
                            type_of(v)
                        )),
                    })
                    .collect::<std::result::Result<_, _>>()?;
                Ok(())
            }
            Some(v) => Err(format!(
                "`{path}` is a {} but should be an array",
                type_of(v)
            )),
        }
    }

    fn map(
        &self,
        path: &str,
        out: &mut BTreeMap<String, String>,
    ) -> std::result::Result<(), String> {
        match self.get(path) {
            None => Ok(()),
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    match v {
                        Value::String(s) => {
                            out.insert(k.clone(), s.clone());
                        }
                        Value::Null => {
                            out.insert(k.clone(), String::new());
                        }
                        v => {
                            return Err(format!(
                                "`{path}.{k}` is a {} but should be a string",
                                type_of(v)
                            ));
                        }
                    }
                }
                Ok(())
            }
            Some(v) => Err(format!(
                "`{path}` is a {} but should be an object",
                type_of(v)
            )),
        }
    }
}

impl Spec {
    /// Tanka's defaults: namespace `default`, nothing else set.
    pub fn new(name: &str, entrypoint: &str) -> Spec {
        Spec {
            name: name.to_string(),
            entrypoint: entrypoint.to_string(),
            labels: BTreeMap::new(),
            api_server: String::new(),
            context_names: Vec::new(),
            namespace: "default".into(),
            diff_strategy: String::new(),
            apply_strategy: String::new(),
            inject_labels: false,
            label_from_fields: Vec::new(),
            default_annotations: BTreeMap::new(),
            default_labels: BTreeMap::new(),
            expect_tanka: String::new(),
            export_jsonnet_implementation: String::new(),
        }
    }

    /// Parses an `Environment` object as tanka does (`spec.Parse`):
    /// `entrypoint` becomes `metadata.namespace`, deprecated top-level
    /// `namespace`, `server` and `team` are honoured where tanka honours them.
    pub fn parse(value: &Value, entrypoint: &str) -> std::result::Result<Spec, String> {
        if !value.is_object() {
            return Err(format!(
                "the environment is a {}, not an object",
                type_of(value)
            ));
        }
        let f = Fields(value);
        let mut s = Spec::new("", entrypoint);
        f.string("metadata.name", &mut s.name)?;
        f.map("metadata.labels", &mut s.labels)?;
        f.string("spec.apiServer", &mut s.api_server)?;
        f.strings("spec.contextNames", &mut s.context_names)?;
        f.string("spec.namespace", &mut s.namespace)?;
        f.string("spec.diffStrategy", &mut s.diff_strategy)?;
        f.string("spec.applyStrategy", &mut s.apply_strategy)?;
        f.bool("spec.injectLabels", &mut s.inject_labels)?;
        f.strings("spec.tankaEnvLabelFromFields", &mut s.label_from_fields)?;
        f.map(
            "spec.resourceDefaults.annotations",
            &mut s.default_annotations,
        )?;
        f.map("spec.resourceDefaults.labels", &mut s.default_labels)?;
        f.string("spec.expectVersions.tanka", &mut s.expect_tanka)?;
        f.string(
            "spec.exportJsonnetImplementation",
            &mut s.export_jsonnet_implementation,
        )?;
        // Deprecated fields, only where the new one is empty (tanka's rule).
        let top = |key: &str| match value.get(key) {
            None => Ok(None),
            Some(Value::String(v)) => Ok(Some(v.clone())),
            Some(v) => Err(format!(
                "`{key}` is a {} but should be a string",
                type_of(v)
            )),
        };
        if s.namespace.is_empty()
            && let Some(n) = top("namespace")?
        {
            s.namespace = n;
        }
        if s.api_server.is_empty()
            && let Some(n) = top("server")?
        {
            s.api_server = n;
        }
        if !s.labels.contains_key("team")
            && let Some(t) = top("team")?
        {
            s.labels.insert("team".into(), t);
        }
        if !s.api_server.is_empty() && !has_scheme(&s.api_server) {
            s.api_server = format!("https://{}", s.api_server);
        }
        Ok(s)
    }

    /// The environment as tanka hands it to jsonnet (`tk.env`, the ext var
    /// `tanka.dev/environment`): the object without `data`, empty optional
    /// fields left out as Go's `omitempty` leaves them out.
    pub fn to_json(&self) -> Value {
        use serde_json::json;
        let mut metadata = serde_json::Map::new();
        if !self.name.is_empty() {
            metadata.insert("name".into(), self.name.clone().into());
        }
        if !self.entrypoint.is_empty() {
            metadata.insert("namespace".into(), self.entrypoint.clone().into());
        }
        if !self.labels.is_empty() {
            metadata.insert("labels".into(), json!(self.labels));
        }
        let mut spec = serde_json::Map::new();
        let mut opt = |k: &str, v: &str| {
            if !v.is_empty() {
                spec.insert(k.into(), v.into());
            }
        };
        opt("apiServer", &self.api_server);
        opt("diffStrategy", &self.diff_strategy);
        opt("applyStrategy", &self.apply_strategy);
        opt(
            "exportJsonnetImplementation",
            &self.export_jsonnet_implementation,
        );
        if !self.context_names.is_empty() {
            spec.insert("contextNames".into(), json!(self.context_names));
        }
        spec.insert("namespace".into(), self.namespace.clone().into());
        if self.inject_labels {
            spec.insert("injectLabels".into(), true.into());
        }
        if !self.label_from_fields.is_empty() {
            spec.insert(
                "tankaEnvLabelFromFields".into(),
                json!(self.label_from_fields),
            );
        }
        let mut defaults = serde_json::Map::new();
        if !self.default_annotations.is_empty() {
            defaults.insert("annotations".into(), json!(self.default_annotations));
        }
        if !self.default_labels.is_empty() {
            defaults.insert("labels".into(), json!(self.default_labels));
        }
        spec.insert("resourceDefaults".into(), Value::Object(defaults));
        let mut expect = serde_json::Map::new();
        if !self.expect_tanka.is_empty() {
            expect.insert("tanka".into(), self.expect_tanka.clone().into());
        }
        spec.insert("expectVersions".into(), Value::Object(expect));
        json!({
            "apiVersion": "tanka.dev/v1alpha1",
            "kind": "Environment",
            "metadata": metadata,
            "spec": spec,
        })
    }

    /// The value of the `tanka.dev/environment` label: the first 48 hex
    /// digits of SHA-256 over the `spec.tankaEnvLabelFromFields` values
    /// joined by `:` (default `.metadata.name` and `.metadata.namespace`),
    /// as tanka computes it. A field tanka would read from a map with other
    /// than one entry (its result is then undefined or a crash) is refused.
    pub fn name_label(&self) -> std::result::Result<String, String> {
        use sha2::Digest;
        let defaults = [
            ".metadata.name".to_string(),
            ".metadata.namespace".to_string(),
        ];
        let fields = if self.label_from_fields.is_empty() {
            &defaults[..]
        } else {
            &self.label_from_fields[..]
        };
        let values = fields
            .iter()
            .map(|f| self.label_field(f))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let digest = sha2::Sha256::digest(values.join(":"));
        Ok(hex::encode(digest)[..48].to_string())
    }

    fn label_field(&self, field: &str) -> std::result::Result<String, String> {
        let unsupported = || format!("`spec.tankaEnvLabelFromFields` entry `{field}`");
        let single = |m: &BTreeMap<String, String>| match m.len() {
            1 => m.values().next().cloned().ok_or_else(unsupported),
            _ => Err(unsupported()),
        };
        Ok(match field.trim_start_matches('.') {
            "apiVersion" => "tanka.dev/v1alpha1".into(),
            "kind" => "Environment".into(),
            "metadata.name" => self.name.clone(),
            "metadata.namespace" => self.entrypoint.clone(),
            "spec.apiServer" => self.api_server.clone(),
            "spec.namespace" => self.namespace.clone(),
            "spec.diffStrategy" => self.diff_strategy.clone(),
            "spec.applyStrategy" => self.apply_strategy.clone(),
            "spec.injectLabels" => self.inject_labels.to_string(),
            "spec.expectVersions.tanka" => self.expect_tanka.clone(),
            "spec.exportJsonnetImplementation" => self.export_jsonnet_implementation.clone(),
            // tanka reads "the" value of a map whatever the key: only
            // defined when there is exactly one.
            other => match other.split_once('.') {
                Some(("metadata", rest)) if rest.starts_with("labels.") => single(&self.labels)?,
                Some(("spec", "resourceDefaults.labels" | "resourceDefaults.annotations")) => {
                    return Err(unsupported());
                }
                Some(("spec", rest)) if rest.starts_with("resourceDefaults.labels.") => {
                    single(&self.default_labels)?
                }
                Some(("spec", rest)) if rest.starts_with("resourceDefaults.annotations.") => {
                    single(&self.default_annotations)?
                }
                _ => return Err(unsupported()),
            },
        })
    }
}

fn has_scheme(url: &str) -> bool {
    // tanka: `^.+://`
    url.find("://").is_some_and(|i| i > 0)
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
