//! Reading declarations from manifests and from the Nix modules' JSON.
//!
//! Both inputs go through one reader over a JSON value tree, so the
//! hand-written manifest and the nix-eval output share every default and every
//! error message. Accepted shapes:
//!
//! ```text
//! default.backend = "…"                         manifest default
//! identities = ["~/.ssh/id_ed25519", "keys.txt"]  operator identity files
//! nixos  = [{machine, artifacts, config, default}]   nix-eval shape, or
//! [nixos.<machine>]   artifacts, config, default     table shape
//! home   = [{user, …}]       / [home.<user>]
//! tanka  = [{environment, …}] / [tanka.<env>]
//! [artifacts.<name>]  targets = ["nixos/m1", "m2"]   shorthand: one declaration, many targets
//! ```
//!
//! Defaults are those of upstream nixos-artifacts: path
//! `/run/artifacts/<artifact>/<file>` (NixOS), `$XDG_RUNTIME_DIR/artifacts/<artifact>/<file>`
//! (Home Manager, kept literal), `<artifact>/<file>` (tanka: the key in
//! `secrets_yaml`), owner and group `root` (NixOS only), mode `0400`, `secret = true`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::tree::{Map, Value};
use indexmap::IndexMap;

use crate::error::{Location, ModelError, Problem};
use crate::model::{
    Artifact, FileSpec, Mode, Model, Prompt, PromptKind, Target, TargetId, TargetKind,
};

/// Loads a hand-written manifest (`.toml`, `.json`, `.yaml`/`.yml`).
///
/// Relative generator paths are taken from the manifest's directory, which is
/// also the project root.
pub fn load_manifest(path: &Path) -> Result<Model, ModelError> {
    let text = crate::limits::read_document(path).map_err(|source| ModelError::Read {
        path: path.to_owned(),
        source,
    })?;
    load_manifest_text(path, &text)
}

/// [`load_manifest`] of text already read; `path` names the format (by its
/// extension) and the project root (its directory).
pub fn load_manifest_text(path: &Path, text: &str) -> Result<Model, ModelError> {
    let value = parse_text(path, text)?;
    from_tree(path, &manifest_root(path), &value)
}

/// Loads the JSON produced by evaluating the Nix modules, read from memory.
///
/// `source` names where it came from (the flake) in error messages, `root` is
/// the project directory.
pub fn load_nix_json(source: &Path, root: &Path, json: &str) -> Result<Model, ModelError> {
    let value: Value<'_> = serde_json::from_str(json).map_err(|err| ModelError::Parse {
        path: source.to_owned(),
        message: err.to_string(),
        line: Some(err.line()),
        column: Some(err.column()),
    })?;
    from_tree(source, root, &value)
}

fn parse_text<'t>(path: &Path, text: &'t str) -> Result<Value<'t>, ModelError> {
    let parse_error = |message: String, position: Option<(usize, usize)>| ModelError::Parse {
        path: path.to_owned(),
        // Parsers quote the source: nothing in it may print raw.
        message: crate::names::escape_multiline(&message),
        line: position.map(|(line, _)| line),
        column: position.map(|(_, column)| column),
    };
    // Before any parser: libyaml's time grows with the square of the nesting.
    crate::limits::check_nesting(text).map_err(|message| parse_error(message, None))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => toml::from_str::<Value<'_>>(text).map_err(|e| {
            let position = e.span().map(|span| line_column(text, span.start));
            parse_error(e.to_string(), position)
        }),
        Some("json") => serde_json::from_str::<Value<'_>>(text)
            .map_err(|e| parse_error(e.to_string(), Some((e.line(), e.column())))),
        Some("yaml" | "yml") => serde_norway::from_str::<Value<'_>>(text).map_err(|e| {
            let position = e.location().map(|l| (l.line(), l.column()));
            parse_error(e.to_string(), position)
        }),
        _ => Err(ModelError::UnknownFormat {
            path: path.to_owned(),
        }),
    }
}

/// Builds a model from an already parsed value tree.
pub fn from_value(
    source: &Path,
    root: &Path,
    value: &serde_json::Value,
) -> Result<Model, ModelError> {
    from_tree(source, root, &tree_of(source, value)?)
}

/// The reader's tree of a `serde_json::Value` (its strings borrowed).
fn tree_of<'v>(source: &Path, value: &'v serde_json::Value) -> Result<Value<'v>, ModelError> {
    // Every JSON value has a tree: this cannot fail, but is not unwrapped.
    serde::Deserialize::deserialize(value).map_err(|err: serde_json::Error| ModelError::Parse {
        path: source.to_owned(),
        message: err.to_string(),
        line: None,
        column: None,
    })
}

fn from_tree(source: &Path, root: &Path, value: &Value<'_>) -> Result<Model, ModelError> {
    let (model, problems) = read_value(source, root, value);
    if problems.is_empty() {
        Ok(model)
    } else {
        Err(ModelError::Invalid(problems))
    }
}

/// Loads a manifest and validates it against `known_backends`, reporting the
/// problems of both stages together (a bad mode does not hide a bad backend).
pub fn load_manifest_validated(path: &Path, known_backends: &[&str]) -> Result<Model, ModelError> {
    load_manifest_checked(
        path,
        &Checks {
            known_backends,
            generator_from: &[],
        },
    )
}

/// What declarations are validated against, besides themselves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Checks<'a> {
    /// The backends that exist.
    pub known_backends: &'a [&'a str],
    /// Targets (`kind/name` or a unique name) whose generator a shared
    /// artifact declared with different generators uses everywhere
    /// (`--generator-from`, see [`crate::validate::take_shared_generators`]).
    pub generator_from: &'a [String],
}

/// [`load_manifest_validated`] with every check of `checks`.
pub fn load_manifest_checked(path: &Path, checks: &Checks<'_>) -> Result<Model, ModelError> {
    let text = crate::limits::read_document(path).map_err(|source| ModelError::Read {
        path: path.to_owned(),
        source,
    })?;
    let value = parse_text(path, &text)?;
    checked_tree(path, &manifest_root(path), &value, checks)
}

/// [`from_value`] and validation, reporting the problems of both stages together.
pub fn from_value_validated(
    source: &Path,
    root: &Path,
    value: &serde_json::Value,
    known_backends: &[&str],
) -> Result<Model, ModelError> {
    from_value_checked(
        source,
        root,
        value,
        &Checks {
            known_backends,
            generator_from: &[],
        },
    )
}

/// [`from_value_validated`] with every check of `checks`.
pub fn from_value_checked(
    source: &Path,
    root: &Path,
    value: &serde_json::Value,
    checks: &Checks<'_>,
) -> Result<Model, ModelError> {
    checked_tree(source, root, &tree_of(source, value)?, checks)
}

fn checked_tree(
    source: &Path,
    root: &Path,
    value: &Value<'_>,
    checks: &Checks<'_>,
) -> Result<Model, ModelError> {
    let (mut model, mut problems) = read_value(source, root, value);
    problems.extend(crate::validate::take_shared_generators(
        &mut model,
        checks.generator_from,
    ));
    if let Err(ModelError::Invalid(more)) = crate::validate::validate(&model, checks.known_backends)
    {
        problems.extend(more);
    }
    if problems.is_empty() {
        Ok(model)
    } else {
        Err(ModelError::Invalid(problems))
    }
}

/// The project root of a manifest: its directory.
pub fn manifest_root(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned()
}

/// Reads what can be read, collecting problems instead of stopping at the first.
fn read_value(source: &Path, root: &Path, value: &Value<'_>) -> (Model, Vec<Problem>) {
    let mut reader = Reader {
        base: Location::file(source),
        root: root.to_owned(),
        problems: Vec::new(),
        declared: Default::default(),
    };
    let model = reader.model(value);
    (
        Model {
            source: source.to_owned(),
            root: root.to_owned(),
            ..model
        },
        reader.problems,
    )
}

struct Reader {
    base: Location,
    root: PathBuf,
    problems: Vec<Problem>,
    /// The targets declared so far (a fleet declares hundreds).
    declared: std::collections::HashSet<TargetId, foldhash::fast::RandomState>,
}

impl Reader {
    fn problem(&mut self, location: Location, message: impl Into<String>) {
        self.problems.push(Problem {
            location,
            message: message.into(),
        });
    }

    fn object<'v, 't>(&mut self, value: &'v Value<'t>, location: &Location) -> Option<&'v Map<'t>> {
        match value {
            Value::Object(map) => Some(&**map),
            other => {
                self.problem(
                    location.clone(),
                    format!("expected a table/object, found {}", kind_of(other)),
                );
                None
            }
        }
    }

    /// Reports keys outside `allowed` as problems.
    fn known_keys(&mut self, map: &Map<'_>, allowed: &[&str], location: &Location, prefix: &str) {
        for key in map.keys() {
            if !allowed.contains(&key.as_ref()) {
                self.problem(
                    location.field(format!("{prefix}{key}")),
                    format!(
                        "unknown key `{key}` (expected one of: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn string(&mut self, value: &Value<'_>, location: Location) -> Option<String> {
        match value {
            Value::String(text) => Some(text.as_ref().to_owned()),
            other => {
                self.problem(
                    location,
                    format!("expected a string, found {}", kind_of(other)),
                );
                None
            }
        }
    }

    fn optional_string(
        &mut self,
        map: &Map<'_>,
        key: &str,
        location: &Location,
        prefix: &str,
    ) -> Option<String> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(value) => self.string(value, location.field(format!("{prefix}{key}"))),
        }
    }

    fn bool(
        &mut self,
        map: &Map<'_>,
        key: &str,
        default: bool,
        location: &Location,
        prefix: &str,
    ) -> bool {
        match map.get(key) {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.problem(
                    location.field(format!("{prefix}{key}")),
                    format!("expected true or false, found {}", kind_of(other)),
                );
                default
            }
        }
    }

    fn default_backend(&mut self, map: &Map<'_>, location: &Location) -> Option<String> {
        let default = map.get("default")?;
        let default = self.object(default, &location.field("default"))?;
        self.known_keys(default, &["backend"], location, "default.");
        self.optional_string(default, "backend", location, "default.")
    }

    /// `identities = ["~/.config/…", "keys/me.txt"]`: the operator's identity files.
    fn identities(&mut self, map: &Map<'_>, location: &Location) -> Vec<String> {
        let Some(value) = map.get("identities").filter(|v| !v.is_null()) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            self.problem(
                location.field("identities"),
                format!("expected a list of file names, found {}", kind_of(value)),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (n, item) in items.iter().enumerate() {
            if let Some(text) = self.string(item, location.field(format!("identities[{n}]"))) {
                if text.is_empty() {
                    self.problem(
                        location.field(format!("identities[{n}]")),
                        "an identity file name cannot be empty",
                    );
                } else {
                    out.push(text);
                }
            }
        }
        out
    }

    fn model(&mut self, value: &Value<'_>) -> Model {
        let base = self.base.clone();
        let mut model = Model {
            source: PathBuf::new(),
            root: PathBuf::new(),
            default_backend: None,
            identities: Vec::new(),
            targets: Vec::new(),
        };
        let Some(top) = self.object(value, &base) else {
            return model;
        };
        self.known_keys(
            top,
            &[
                "default",
                "identities",
                "nixos",
                "home",
                "tanka",
                "artifacts",
            ],
            &base,
            "",
        );
        model.default_backend = self.default_backend(top, &base);
        model.identities = self.identities(top, &base);
        for kind in TargetKind::ALL {
            if let Some(section) = top.get(kind.manifest_key()) {
                self.targets(kind, section, &mut model.targets);
            }
        }
        if let Some(shorthand) = top.get("artifacts") {
            self.shorthand(shorthand, &mut model.targets);
        }
        model
    }

    /// Reads `nixos = [{machine, …}]` (nix-eval shape) or `[nixos.<name>]` (table shape).
    fn targets(&mut self, kind: TargetKind, section: &Value<'_>, targets: &mut Vec<Target>) {
        let key = kind.manifest_key();
        let name_key = match kind {
            TargetKind::Nixos => "machine",
            TargetKind::Home => "user",
            TargetKind::Tanka => "environment",
        };
        match section {
            Value::Array(entries) => {
                for (index, entry) in entries.iter().enumerate() {
                    let location = self.base.field(format!("{key}[{index}]"));
                    let Some(map) = self.object(entry, &location) else {
                        continue;
                    };
                    let Some(name) = map.get(name_key).and_then(|v| {
                        self.string(v, location.field(format!("{key}[{index}].{name_key}")))
                    }) else {
                        if !map.contains_key(name_key) {
                            self.problem(location, format!("missing `{name_key}`"));
                        }
                        continue;
                    };
                    self.target(TargetId::new(kind, name), map, Some(name_key), targets);
                }
            }
            Value::Object(entries) => {
                for (name, entry) in entries.iter() {
                    let id = TargetId::new(kind, name.as_ref());
                    let location = self.base.target(&id);
                    if let Some(map) = self.object(entry, &location) {
                        self.target(id, map, None, targets);
                    }
                }
            }
            other => {
                self.problem(
                    self.base.field(key),
                    format!(
                        "expected a list or a table of targets, found {}",
                        kind_of(other)
                    ),
                );
            }
        }
    }

    fn target(
        &mut self,
        id: TargetId,
        map: &Map<'_>,
        name_key: Option<&str>,
        targets: &mut Vec<Target>,
    ) {
        let location = self.base.target(&id);
        if !self.declared.insert(id.clone()) {
            self.problem(location, "target declared twice");
            return;
        }
        let mut allowed = vec!["artifacts", "config", "default"];
        allowed.extend(name_key);
        self.known_keys(map, &allowed, &location, "");
        let default_backend = self.default_backend(map, &location);
        let mut config = IndexMap::new();
        if let Some(value) = map.get("config").filter(|v| !v.is_null())
            && let Some(entries) = self.object(value, &location.field("config"))
        {
            for (backend, settings) in entries {
                config.insert(backend.as_ref().to_owned(), settings.to_json());
            }
        }
        let mut artifacts = IndexMap::default();
        if let Some(value) = map.get("artifacts").filter(|v| !v.is_null())
            && let Some(entries) = self.object(value, &location.field("artifacts"))
        {
            for (name, entry) in entries {
                let artifact_location = location.artifact(name);
                if let Some(artifact) =
                    self.artifact(id.kind, name, entry, &artifact_location, false)
                {
                    artifacts.insert(name.as_ref().to_owned(), Arc::new(artifact));
                }
            }
        }
        targets.push(Target {
            id,
            default_backend,
            config,
            artifacts,
        });
    }

    /// Reads `[artifacts.<name>]` with `targets = [...]` and adds it to each target.
    fn shorthand(&mut self, value: &Value<'_>, targets: &mut Vec<Target>) {
        let location = self.base.field("artifacts");
        let Some(entries) = self.object(value, &location) else {
            return;
        };
        let mut index = TargetIndex::new(targets);
        for (name, entry) in entries {
            let location = self.base.artifact(name);
            let Some(map) = self.object(entry, &location) else {
                continue;
            };
            let references = match map.get("targets") {
                // Borrowed: a fleet's shorthand lists hundreds of targets.
                Some(Value::Array(list)) => list
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| match v {
                        Value::String(reference) => Some(reference.as_ref()),
                        other => {
                            let field = location.field(format!("targets[{i}]"));
                            self.string(other, field);
                            None
                        }
                    })
                    .collect::<Vec<_>>(),
                Some(other) => {
                    self.problem(
                        location.field("targets"),
                        format!(
                            "expected a list of target references, found {}",
                            kind_of(other)
                        ),
                    );
                    continue;
                }
                None => {
                    self.problem(
                        location.field("targets"),
                        "missing `targets` (which machines, users or environments declare this artifact?)",
                    );
                    continue;
                }
            };
            // One declaration for every target of a kind: read once per kind
            // (a fleet lists hundreds of targets), unless reading found
            // problems, which each target then reports at its own location.
            let mut read: Vec<(TargetKind, Arc<Artifact>)> = Vec::new();
            for reference in references {
                let Some(index) = self.resolve_reference(reference, targets, &mut index, &location)
                else {
                    continue;
                };
                let kind = targets[index].id.kind;
                let artifact = match read.iter().find(|(k, _)| *k == kind) {
                    Some((_, artifact)) => artifact.clone(),
                    None => {
                        // Built here only: a location is several allocations,
                        // and a fleet's shorthand has thousands of references.
                        let artifact_location = location.target(&targets[index].id);
                        let problems = self.problems.len();
                        let Some(artifact) =
                            self.artifact(kind, name, entry, &artifact_location, true)
                        else {
                            continue;
                        };
                        let artifact = Arc::new(artifact);
                        if self.problems.len() == problems {
                            read.push((kind, artifact.clone()));
                        }
                        artifact
                    }
                };
                let target = &mut targets[index];
                match target.artifacts.entry(name.as_ref().to_owned()) {
                    indexmap::map::Entry::Occupied(_) => self.problem(
                        location.target(&target.id),
                        "declared twice: on the target and in the top-level `[artifacts]` shorthand",
                    ),
                    indexmap::map::Entry::Vacant(slot) => {
                        slot.insert(artifact);
                    }
                }
            }
        }
    }

    /// Finds (or creates) the target a shorthand reference names: `kind/name`, or a
    /// bare name that is unique among declared targets (a new NixOS machine otherwise).
    fn resolve_reference(
        &mut self,
        reference: &str,
        targets: &mut Vec<Target>,
        index: &mut TargetIndex,
        location: &Location,
    ) -> Option<usize> {
        // A bare nested environment (`prod/eu`) names a declared `tanka/prod/eu`.
        let (bare, several) = match index.named(reference) {
            [] => (None, false),
            [one] => (Some(*one), false),
            _ => (None, true),
        };
        let (kind, name) = match reference.split_once('/') {
            Some((kind, _)) if TargetKind::parse(kind).is_none() && bare.is_some() => {
                return bare;
            }
            Some((kind, name)) => match TargetKind::parse(kind) {
                Some(kind) => (kind, name),
                None => {
                    self.problem(
                        location.field("targets"),
                        format!("unknown target kind `{kind}` in `{reference}` (use nixos/, home/ or tanka/)"),
                    );
                    return None;
                }
            },
            None if bare.is_some() => return bare,
            None if several => {
                self.problem(
                    location.field("targets"),
                    format!("`{reference}` names several targets; write it as nixos/{reference}, home/{reference} or tanka/{reference}"),
                );
                return None;
            }
            None => (TargetKind::Nixos, reference),
        };
        if let Some(found) = index.find(kind, name) {
            return Some(found);
        }
        let id = TargetId::new(kind, name);
        index.add(&id, targets.len());
        targets.push(Target {
            id,
            default_backend: None,
            config: IndexMap::new(),
            artifacts: IndexMap::default(),
        });
        Some(targets.len() - 1)
    }

    fn artifact(
        &mut self,
        kind: TargetKind,
        name: &str,
        value: &Value<'_>,
        location: &Location,
        shorthand: bool,
    ) -> Option<Artifact> {
        let map = self.object(value, location)?;
        let mut allowed = vec![
            "name",
            "description",
            "shared",
            "backend",
            "serialization",
            "generator",
            "prompts",
            "files",
            "dependencies",
            "inputs",
        ];
        if shorthand {
            allowed.push("targets");
        }
        self.known_keys(map, &allowed, location, "");
        if let Some(declared) = self.optional_string(map, "name", location, "")
            && declared != name
        {
            self.problem(
                location.field("name"),
                format!(
                    "`name = \"{declared}\"` differs from the key `{name}` it is declared under"
                ),
            );
        }
        let backend = match (
            self.optional_string(map, "backend", location, ""),
            self.optional_string(map, "serialization", location, ""),
        ) {
            (Some(backend), Some(legacy)) if backend != legacy => {
                self.problem(
                    location.field("serialization"),
                    format!("`backend = \"{backend}\"` and the legacy `serialization = \"{legacy}\"` disagree; keep only `backend`"),
                );
                Some(backend)
            }
            (backend, legacy) => backend.or(legacy),
        };
        let generator = self
            .optional_string(map, "generator", location, "")
            .map(|g| self.resolve_path(&g));
        let mut prompts = IndexMap::new();
        if let Some(value) = map.get("prompts").filter(|v| !v.is_null())
            && let Some(entries) = self.object(value, &location.field("prompts"))
        {
            for (prompt_name, entry) in entries {
                if let Some(prompt) = self.prompt(prompt_name, entry, location) {
                    prompts.insert(prompt_name.as_ref().to_owned(), prompt);
                }
            }
        }
        let mut files = IndexMap::new();
        if let Some(value) = map.get("files").filter(|v| !v.is_null())
            && let Some(entries) = self.object(value, &location.field("files"))
        {
            for (file_name, entry) in entries {
                if let Some(file) = self.file(kind, name, file_name, entry, location) {
                    files.insert(file_name.as_ref().to_owned(), file);
                }
            }
        }
        let dependencies = match map.get("dependencies") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .filter_map(|(i, v)| self.string(v, location.field(format!("dependencies[{i}]"))))
                .collect(),
            Some(other) => {
                self.problem(
                    location.field("dependencies"),
                    format!(
                        "expected a list of artifact names, found {}",
                        kind_of(other)
                    ),
                );
                Vec::new()
            }
        };
        let inputs = match map.get("inputs") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .filter_map(|(i, v)| self.string(v, location.field(format!("inputs[{i}]"))))
                .collect(),
            Some(other) => {
                self.problem(
                    location.field("inputs"),
                    format!(
                        "expected a list of paths relative to the project root, found {}",
                        kind_of(other)
                    ),
                );
                Vec::new()
            }
        };
        Some(Artifact {
            inputs,
            name: name.to_owned(),
            description: self.optional_string(map, "description", location, ""),
            shared: self.bool(map, "shared", false, location, ""),
            backend,
            generator,
            prompts,
            files,
            dependencies,
        })
    }

    fn prompt(&mut self, name: &str, value: &Value<'_>, location: &Location) -> Option<Prompt> {
        let prefix = format!("prompts.{name}.");
        let map = self.object(value, &location.field(format!("prompts.{name}")))?;
        self.known_keys(
            map,
            &["name", "description", "type", "allowEmpty", "confirm"],
            location,
            &prefix,
        );
        let kind = match self.optional_string(map, "type", location, &prefix) {
            None => PromptKind::Hidden,
            Some(text) => match PromptKind::parse(&text) {
                Some(kind) => kind,
                None => {
                    self.problem(
                        location.field(format!("{prefix}type")),
                        format!("unknown prompt type `{text}` (expected line, hidden, multiline or multiline-hidden)"),
                    );
                    PromptKind::Hidden
                }
            },
        };
        Some(Prompt {
            description: self.optional_string(map, "description", location, &prefix),
            kind,
            allow_empty: self.bool(map, "allowEmpty", false, location, &prefix),
            confirm: self.bool(map, "confirm", true, location, &prefix),
        })
    }

    fn file(
        &mut self,
        kind: TargetKind,
        artifact: &str,
        name: &str,
        value: &Value<'_>,
        location: &Location,
    ) -> Option<FileSpec> {
        let prefix = format!("files.{name}.");
        let map = self.object(value, &location.field(format!("files.{name}")))?;
        // `value` is what the Nix module reads back from the public store: an output, ignored here.
        self.known_keys(
            map,
            &["name", "path", "owner", "group", "mode", "secret", "value"],
            location,
            &prefix,
        );
        let path = self
            .optional_string(map, "path", location, &prefix)
            .unwrap_or_else(|| match kind {
                TargetKind::Nixos => format!("/run/artifacts/{artifact}/{name}"),
                TargetKind::Home => format!("$XDG_RUNTIME_DIR/artifacts/{artifact}/{name}"),
                TargetKind::Tanka => format!("{artifact}/{name}"),
            });
        let (owner, group) = match kind {
            TargetKind::Nixos => (
                Some(
                    self.optional_string(map, "owner", location, &prefix)
                        .unwrap_or_else(|| "root".into()),
                ),
                Some(
                    self.optional_string(map, "group", location, &prefix)
                        .unwrap_or_else(|| "root".into()),
                ),
            ),
            TargetKind::Home | TargetKind::Tanka => {
                for key in ["owner", "group"] {
                    if map.get(key).is_some_and(|v| !v.is_null()) {
                        self.problem(
                            location.field(format!("{prefix}{key}")),
                            format!("`{key}` is not supported on a {} (files belong to the user); remove it", kind.noun()),
                        );
                    }
                }
                (None, None)
            }
        };
        let mode = match map.get("mode") {
            None | Some(Value::Null) => Mode::DEFAULT,
            Some(Value::String(text)) => match parse_mode(text) {
                Ok(mode) => mode,
                Err(message) => {
                    self.problem(location.field(format!("{prefix}mode")), message);
                    Mode::DEFAULT
                }
            },
            Some(other) => {
                self.problem(
                    location.field(format!("{prefix}mode")),
                    format!(
                        "mode must be an octal string such as \"0400\", found {}",
                        kind_of(other)
                    ),
                );
                Mode::DEFAULT
            }
        };
        Some(FileSpec {
            path,
            owner,
            group,
            mode,
            secret: self.bool(map, "secret", true, location, &prefix),
        })
    }

    fn resolve_path(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.root.join(path)
        }
    }
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// Parses an octal mode string: three or four octal digits, at most `0777`.
pub fn parse_mode(text: &str) -> Result<Mode, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if !(3..=4).contains(&digits.len()) || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!(
            "mode `{}` is not octal: write three or four octal digits such as \"0400\" or \"0640\"",
            text.escape_debug()
        ));
    }
    let mode = u32::from_str_radix(digits, 8).expect("checked octal digits");
    if mode > 0o777 {
        return Err(format!(
            "mode `{text}` sets setuid, setgid or sticky bits, which artifact files may not carry"
        ));
    }
    Ok(Mode(mode))
}

fn kind_of(value: &Value<'_>) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// Targets by id and by bare name, so that resolving each of the shorthand's
/// references is a lookup, not a scan (fleets have thousands of targets),
/// and one that allocates nothing.
struct TargetIndex {
    /// Per kind ([`TargetKind`] as an index), by name.
    by_id: [FastMap<String, usize>; 3],
    by_name: FastMap<String, Vec<usize>>,
}

/// A hash map with foldhash: fast, and seeded per process, so names chosen
/// to collide cannot make lookups slow.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

impl TargetIndex {
    fn new(targets: &[Target]) -> TargetIndex {
        let map = || FastMap::with_capacity_and_hasher(targets.len(), Default::default());
        let mut index = TargetIndex {
            by_id: [map(), map(), map()],
            by_name: FastMap::with_capacity_and_hasher(targets.len(), Default::default()),
        };
        for (i, target) in targets.iter().enumerate() {
            index.add(&target.id, i);
        }
        index
    }

    fn add(&mut self, id: &TargetId, position: usize) {
        self.by_id[id.kind as usize].insert(id.name.clone(), position);
        self.by_name
            .entry(id.name.clone())
            .or_default()
            .push(position);
    }

    /// The position of the target `kind/name`, if declared.
    fn find(&self, kind: TargetKind, name: &str) -> Option<usize> {
        self.by_id[kind as usize].get(name).copied()
    }

    /// Positions of the targets with this bare name, in declaration order.
    fn named(&self, name: &str) -> &[usize] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }
}
