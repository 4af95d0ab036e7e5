//! The resolved declaration model: targets, artifacts, files, prompts.
//!
//! Values here have their defaults filled in and their paths resolved, but may
//! still be invalid until [`crate::validate::validate`] accepted them.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;
use serde::Serialize;

/// The kind of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// A NixOS machine (`nixosConfigurations.<name>`).
    Nixos,
    /// A Home Manager user (`homeConfigurations.<name>`).
    #[serde(rename = "homemanager")]
    Home,
    /// A tanka environment (`environments/<name>`).
    Tanka,
}

impl TargetKind {
    /// All kinds, in the order they are listed.
    pub const ALL: [TargetKind; 3] = [TargetKind::Nixos, TargetKind::Home, TargetKind::Tanka];

    /// The context scripts see for a non-shared artifact of this kind.
    pub fn context(self) -> Context {
        match self {
            TargetKind::Nixos => Context::Nixos,
            TargetKind::Home => Context::HomeManager,
            TargetKind::Tanka => Context::Tanka,
        }
    }

    /// The short name used in `$targets` (`type`), target references and the lock.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Nixos => "nixos",
            TargetKind::Home => "homemanager",
            TargetKind::Tanka => "tanka",
        }
    }

    /// The key of this kind in manifests and the nix-eval JSON.
    pub fn manifest_key(self) -> &'static str {
        match self {
            TargetKind::Nixos => "nixos",
            TargetKind::Home => "home",
            TargetKind::Tanka => "tanka",
        }
    }

    /// Parses a kind from a target reference prefix (`nixos`, `home`, `homemanager`, `tanka`).
    pub fn parse(text: &str) -> Option<TargetKind> {
        match text {
            "nixos" => Some(TargetKind::Nixos),
            "home" | "homemanager" => Some(TargetKind::Home),
            "tanka" => Some(TargetKind::Tanka),
            _ => None,
        }
    }

    /// What a person calls one of these.
    pub fn noun(self) -> &'static str {
        match self {
            TargetKind::Nixos => "nixos machine",
            TargetKind::Home => "home-manager user",
            TargetKind::Tanka => "tanka environment",
        }
    }

    /// The generator variable carrying the target's name.
    pub fn identity_variable(self) -> &'static str {
        match self {
            TargetKind::Nixos => "machine",
            TargetKind::Home => "username",
            TargetKind::Tanka => "environment",
        }
    }
}

/// The context a backend script or generator runs in (`$artifact_context`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Context {
    /// A NixOS machine's own artifact.
    #[serde(rename = "nixos")]
    Nixos,
    /// A Home Manager user's own artifact.
    #[serde(rename = "homemanager")]
    HomeManager,
    /// A tanka environment's own artifact.
    #[serde(rename = "tanka")]
    Tanka,
    /// An artifact generated once for every target declaring it.
    #[serde(rename = "shared")]
    Shared,
}

impl Context {
    /// The value of `$artifact_context`.
    pub fn as_str(self) -> &'static str {
        match self {
            Context::Nixos => "nixos",
            Context::HomeManager => "homemanager",
            Context::Tanka => "tanka",
            Context::Shared => "shared",
        }
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A target's identity: its kind and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TargetId {
    /// The kind.
    #[serde(rename = "type")]
    pub kind: TargetKind,
    /// The name: machine, user or environment.
    pub name: String,
}

impl TargetId {
    /// A target id.
    pub fn new(kind: TargetKind, name: impl Into<String>) -> Self {
        TargetId {
            kind,
            name: name.into(),
        }
    }

    /// The reference form `kind/name` accepted by `--target` and `targets = [...]`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind.manifest_key(), self.name)
    }
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} `{}`",
            self.kind.noun(),
            crate::names::escape(&self.name)
        )
    }
}

/// A file mode, always written and read as octal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mode(pub u32);

impl Mode {
    /// The default mode of declared files.
    pub const DEFAULT: Mode = Mode(0o400);
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One file an artifact consists of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSpec {
    /// Where the file goes on the target (literal for Home Manager: `$XDG_RUNTIME_DIR/…`).
    pub path: String,
    /// Owner on the target; `None` where the target kind has no owners (Home Manager).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Group on the target; `None` where the target kind has no groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Permission bits.
    pub mode: Mode,
    /// Whether the content is secret (encrypted by backends) or public.
    pub secret: bool,
}

/// How a prompt is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptKind {
    /// One visible line.
    Line,
    /// One line, not echoed.
    Hidden,
    /// Several visible lines, ended by end-of-file (Ctrl-D).
    Multiline,
    /// Several lines, not echoed, ended by end-of-file (Ctrl-D).
    MultilineHidden,
}

impl PromptKind {
    /// Parses the declaration's `type` value.
    pub fn parse(text: &str) -> Option<PromptKind> {
        match text {
            "line" => Some(PromptKind::Line),
            "hidden" => Some(PromptKind::Hidden),
            "multiline" => Some(PromptKind::Multiline),
            "multiline-hidden" => Some(PromptKind::MultilineHidden),
            _ => None,
        }
    }

    /// The declaration's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PromptKind::Line => "line",
            PromptKind::Hidden => "hidden",
            PromptKind::Multiline => "multiline",
            PromptKind::MultilineHidden => "multiline-hidden",
        }
    }

    /// Whether the answer is echoed while typed.
    pub fn is_hidden(self) -> bool {
        matches!(self, PromptKind::Hidden | PromptKind::MultilineHidden)
    }

    /// Whether the answer spans several lines.
    pub fn is_multiline(self) -> bool {
        matches!(self, PromptKind::Multiline | PromptKind::MultilineHidden)
    }
}

/// A value asked from a person before the generator runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prompt {
    /// What to show when asking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How to ask.
    #[serde(rename = "type")]
    pub kind: PromptKind,
    /// An empty answer is accepted (`allowEmpty`); otherwise it is refused
    /// (re-asked in a terminal, an error from a variable or prompts file).
    #[serde(rename = "allowEmpty")]
    pub allow_empty: bool,
    /// A hidden answer is typed twice and must match (`confirm`, default
    /// true); `false` for long pasted values.
    pub confirm: bool,
}

/// An artifact as declared on one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifact {
    /// The artifact's name (the key it is declared under).
    pub name: String,
    /// Free text for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Generated once and serialized for every target declaring it.
    pub shared: bool,
    /// The backend named on the artifact itself, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The generator script: a store path or a path made absolute from the manifest's directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator: Option<PathBuf>,
    /// Prompts in declaration order.
    pub prompts: IndexMap<String, Prompt>,
    /// Files in declaration order.
    pub files: IndexMap<String, FileSpec>,
    /// Names of artifacts this one's generator reads from `$in`.
    pub dependencies: Vec<String>,
    /// Files and directories of the project the generator reads (`inputs`),
    /// relative to the project root as declared (`generators/lib.sh`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
}

/// A NixOS machine, Home Manager user or tanka environment with its artifacts.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Kind and name.
    pub id: TargetId,
    /// The target's default backend (`artifacts.default.backend`).
    pub default_backend: Option<String>,
    /// Per-backend configuration (`artifacts.config.<backend>`), handed to backend scripts.
    pub config: IndexMap<String, serde_json::Value>,
    /// Artifacts declared on this target, in declaration order. Shared
    /// pointers: a shorthand declaration is one value for every target of a
    /// kind (a fleet lists hundreds), not a copy per target. Names hash
    /// with foldhash (fast, seeded per process): a fleet has thousands.
    pub artifacts: IndexMap<String, Arc<Artifact>, foldhash::fast::RandomState>,
}

/// All declarations.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The manifest file or flake directory the declarations came from.
    pub source: PathBuf,
    /// The project directory: relative paths, `artifacts.lock` and stores live here.
    pub root: PathBuf,
    /// The manifest-wide default backend.
    pub default_backend: Option<String>,
    /// Identity files of the operator (`identities = [...]`), as written:
    /// relative to [`Model::root`], or starting with `~/` for the home directory.
    pub identities: Vec<String>,
    /// Targets in declaration order.
    pub targets: Vec<Target>,
}

/// Which rule chose an artifact's backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendRule {
    /// The artifact names its backend.
    Artifact,
    /// The target's `default.backend`.
    TargetDefault,
    /// The manifest's `default.backend`.
    ManifestDefault,
}

impl fmt::Display for BackendRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendRule::Artifact => "named by the artifact's `backend`",
            BackendRule::TargetDefault => "the target's `default.backend`",
            BackendRule::ManifestDefault => "the manifest's `default.backend`",
        })
    }
}

/// A resolved backend and the rule that chose it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendChoice {
    /// The backend name.
    pub name: String,
    /// The rule.
    pub rule: BackendRule,
}

/// A shared artifact: its name and every target declaring it.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedGroup<'a> {
    /// The artifact name.
    pub name: &'a str,
    /// Targets declaring it, in declaration order, with their declaration.
    pub members: Vec<(&'a Target, &'a Artifact)>,
}

impl Model {
    /// Finds a target.
    pub fn target(&self, id: &TargetId) -> Option<&Target> {
        self.targets.iter().find(|target| &target.id == id)
    }

    /// The name of the backend [`Model::resolve_backend`] chooses, borrowed.
    pub fn backend_name<'a>(
        &'a self,
        target: &'a Target,
        artifact: &'a Artifact,
    ) -> Option<&'a str> {
        artifact
            .backend
            .as_deref()
            .or(target.default_backend.as_deref())
            .or(self.default_backend.as_deref())
    }

    /// Resolves the backend of an artifact on a target:
    /// the artifact's `backend`, else the target default, else the manifest default.
    pub fn resolve_backend(&self, target: &Target, artifact: &Artifact) -> Option<BackendChoice> {
        let (name, rule) = if let Some(name) = &artifact.backend {
            (name, BackendRule::Artifact)
        } else if let Some(name) = &target.default_backend {
            (name, BackendRule::TargetDefault)
        } else if let Some(name) = &self.default_backend {
            (name, BackendRule::ManifestDefault)
        } else {
            return None;
        };
        Some(BackendChoice {
            name: name.clone(),
            rule,
        })
    }

    /// Shared artifacts grouped by name, in first-declaration order.
    pub fn shared_groups(&self) -> Vec<SharedGroup<'_>> {
        let mut groups: IndexMap<&str, Vec<(&Target, &Artifact)>> = IndexMap::new();
        for target in &self.targets {
            for artifact in target.artifacts.values().filter(|a| a.shared) {
                groups
                    .entry(artifact.name.as_str())
                    .or_default()
                    .push((target, artifact));
            }
        }
        groups
            .into_iter()
            .map(|(name, members)| SharedGroup { name, members })
            .collect()
    }
}
