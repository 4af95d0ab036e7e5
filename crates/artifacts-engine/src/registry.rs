//! The backend registry: `backend.toml` files, read as upstream nixos-artifacts reads them.
//!
//! ```toml
//! include = ["./other.toml"]       # relative to this file; cycles and duplicate names rejected
//! [agenix.nixos]                   # also .home, .shared and (our addition) .tanka
//! enabled = true                   # optional
//! check = "./check"                # check and serialize come as a pair
//! serialize = "./serialize"
//! deserialize = "./deserialize"    # addition, optional
//! check-all = "./check-all"        # addition, optional: one run per target (not in .shared)
//! ```
//!
//! What may be included: a regular file (never a FIFO, device or
//! directory) of at most [`MAX_CONFIG_BYTES`], inside the directory tree of
//! the top-level file (the project), or another backend's own
//! `backend.toml` anywhere (`include = ["/path/to/backends/agenix/backend.toml"]`),
//! whose own includes then stay inside its directory tree. Parse errors give
//! the parser's message and a position, never the file's text: an include
//! of a key file must not print the key.
//!
//! A section without scripts is a *passthrough*: the backend stores nothing
//! (check reports "not stored by design"). Script paths are relative to the
//! file that names them and are checked at load: they must exist, be regular
//! files and be executable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use artifacts_model::Context;
use artifacts_model::names::check_name;
use indexmap::IndexMap;
use serde::Serialize;

/// Which `backend.toml` section serves a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SectionKind {
    /// `[b.nixos]`
    Nixos,
    /// `[b.home]`
    Home,
    /// `[b.shared]`
    Shared,
    /// `[b.tanka]`
    Tanka,
}

impl SectionKind {
    const ALL: [SectionKind; 4] = [
        SectionKind::Nixos,
        SectionKind::Home,
        SectionKind::Shared,
        SectionKind::Tanka,
    ];

    /// The section serving a context.
    pub(crate) fn for_context(context: Context) -> SectionKind {
        match context {
            Context::Nixos => SectionKind::Nixos,
            Context::HomeManager => SectionKind::Home,
            Context::Shared => SectionKind::Shared,
            Context::Tanka => SectionKind::Tanka,
        }
    }

    /// The TOML key.
    pub fn key(self) -> &'static str {
        match self {
            SectionKind::Nixos => "nixos",
            SectionKind::Home => "home",
            SectionKind::Shared => "shared",
            SectionKind::Tanka => "tanka",
        }
    }
}

/// One script of a backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Script {
    /// An executable file.
    File(PathBuf),
    /// A script of a backend running in this process (its
    /// [`Backend::in_process`]); for the shipped ones, the same as running
    /// `artifacts __backend NAME SCRIPT`.
    InProcess {
        /// The backend's name.
        backend: String,
        /// `check`, `serialize`, `deserialize`, `list` or `remove`.
        script: &'static str,
    },
}

impl std::fmt::Display for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Script::File(path) => write!(f, "{}", path.display()),
            Script::InProcess { backend, script } => {
                write!(f, "artifacts __backend {backend} {script}")
            }
        }
    }
}

/// The scripts of one section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scripts {
    /// Says whether the artifact is stored and current (exit 0), needs
    /// generation (exit 1) or needs re-encryption to changed recipients (exit 3).
    pub check: Script,
    /// Stores `$out`.
    pub serialize: Script,
    /// Restores into `$out` (optional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deserialize: Option<Script>,
    /// Prints the names of the artifacts stored for `$targets`, one a line (optional, for gc).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<Script>,
    /// Removes `$artifact` for `$targets` (optional, with `list`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove: Option<Script>,
    /// Says, before any prompt or generator, whether `serialize` can write
    /// with the identities at hand: exit 0 yes, 1 no with the reason on
    /// stderr (optional; without it the store is assumed writable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writable: Option<Script>,
    /// Answers for every artifact of one target in one run, as JSON lines
    /// (optional; without it `check` runs once per artifact). Never in the
    /// shared section: its artifacts have many targets.
    #[serde(rename = "check-all", skip_serializing_if = "Option::is_none")]
    pub check_all: Option<Script>,
}

/// One section of a backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    /// Whether the backend serves this context.
    pub enabled: bool,
    /// `None` for a passthrough section.
    pub scripts: Option<Scripts>,
}

/// A backend: a name and its sections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backend {
    /// The name artifacts refer to.
    pub name: String,
    /// The `backend.toml` defining it (for shipped backends: `<shipped>`).
    pub defined_in: PathBuf,
    /// Sections present in the file.
    pub sections: BTreeMap<SectionKind, Section>,
    /// Which `config.<key>` of a target its scripts receive, first present wins.
    /// Its own name, for backends from files.
    pub config_keys: Vec<String>,
    /// Where it stores: backends with the same value share their files (its
    /// own name, except for another name of the same backend, like `sops`).
    pub storage: String,
    /// The implementation of a backend running in this process (its
    /// scripts are [`Script::InProcess`]); `None` for backends from files.
    #[serde(skip)]
    pub in_process: Option<crate::in_process::InProcess>,
}

/// What a backend offers, for `artifacts backends`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Target kinds with an enabled section.
    pub targets: Vec<SectionKind>,
    /// Whether shared artifacts can be stored.
    pub shared: bool,
    /// Whether every enabled storing section can deserialize.
    pub deserialize: bool,
    /// Whether every enabled section is a passthrough (stores nothing).
    pub passthrough: bool,
    /// Whether every enabled storing section can list and remove (garbage collection).
    pub gc: bool,
}

impl Backend {
    /// Whether it ships inside the binary (not read from a `backend.toml`).
    pub fn is_shipped(&self) -> bool {
        self.defined_in == Path::new("<shipped>")
    }

    /// The section serving `context`, if present and enabled.
    pub fn section(&self, context: Context) -> Option<&Section> {
        self.sections
            .get(&SectionKind::for_context(context))
            .filter(|s| s.enabled)
    }

    /// What this backend offers.
    pub fn capabilities(&self) -> Capabilities {
        let enabled: Vec<(&SectionKind, &Section)> =
            self.sections.iter().filter(|(_, s)| s.enabled).collect();
        Capabilities {
            targets: enabled
                .iter()
                .map(|(k, _)| **k)
                .filter(|k| *k != SectionKind::Shared)
                .collect(),
            shared: enabled.iter().any(|(k, _)| **k == SectionKind::Shared),
            deserialize: enabled.iter().any(|(_, s)| s.scripts.is_some())
                && enabled
                    .iter()
                    .filter_map(|(_, s)| s.scripts.as_ref())
                    .all(|s| s.deserialize.is_some()),
            passthrough: !enabled.is_empty() && enabled.iter().all(|(_, s)| s.scripts.is_none()),
            gc: enabled.iter().any(|(_, s)| s.scripts.is_some())
                && enabled
                    .iter()
                    .filter_map(|(_, s)| s.scripts.as_ref())
                    .all(|s| s.list.is_some()),
        }
    }
}

/// All known backends.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BackendRegistry {
    backends: IndexMap<String, Backend>,
}

/// Why backends could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// A `backend.toml` could not be read.
    #[error("failed to read backend config `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A `backend.toml` is not valid TOML.
    #[error("failed to parse backend config `{path}`: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// An include names a file outside the tree it may include from.
    #[error(
        "backend config `{path}` includes `{included}`, which is outside `{root}` (an include must stay in the project, or name another backend's `backend.toml`)"
    )]
    Include {
        /// The including file.
        path: PathBuf,
        /// The included file, resolved.
        included: PathBuf,
        /// The directory includes must stay in.
        root: PathBuf,
    },
    /// A file includes itself, directly or through others.
    #[error("circular include in backend config: {}", .chain.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(" includes "))]
    CircularInclude {
        /// The files, from the first to the one included again.
        chain: Vec<PathBuf>,
    },
    /// Two files define the same backend.
    #[error("backend `{name}` is defined twice: in `{first}` and in `{second}`")]
    Duplicate {
        /// The backend name.
        name: String,
        /// Where it was first defined.
        first: PathBuf,
        /// Where it was defined again.
        second: PathBuf,
    },
    /// The content is not what a backend config may hold.
    #[error("backend config `{path}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the backend, section and key.
        message: String,
    },
    /// A script named by a backend cannot be run.
    #[error(
        "backend `{backend}` [{backend}.{section}] {key} script `{script}` {problem} (declared in `{path}`)"
    )]
    Script {
        /// The backend.
        backend: String,
        /// The section key.
        section: &'static str,
        /// `check`, `serialize` or `deserialize`.
        key: &'static str,
        /// The resolved script path.
        script: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
        /// The defining file.
        path: PathBuf,
    },
}

impl BackendRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        BackendRegistry::default()
    }

    /// Loads a `backend.toml` and everything it includes.
    pub fn load(path: &Path) -> Result<Self, BackendError> {
        let mut registry = BackendRegistry::new();
        registry.load_file(path, None, &mut Vec::new())?;
        Ok(registry)
    }

    /// Adds a backend defined elsewhere (for example, shipped with the binary).
    /// An existing backend of the same name wins.
    pub fn add_fallback(&mut self, backend: Backend) {
        self.backends.entry(backend.name.clone()).or_insert(backend);
    }

    /// Looks a backend up by name.
    pub fn get(&self, name: &str) -> Option<&Backend> {
        self.backends.get(name)
    }

    /// Backend names, in definition order.
    pub fn names(&self) -> Vec<&str> {
        self.backends.keys().map(String::as_str).collect()
    }

    /// All backends, in definition order.
    pub fn iter(&self) -> impl Iterator<Item = &Backend> {
        self.backends.values()
    }

    /// Loads one file; `tree` is the directory its includes must stay in
    /// (`None` for the top-level file, which starts its own).
    fn load_file(
        &mut self,
        path: &Path,
        tree: Option<(&Path, &Path)>,
        stack: &mut Vec<PathBuf>,
    ) -> Result<(), BackendError> {
        let canonical = path.canonicalize().map_err(|source| BackendError::Read {
            path: path.to_owned(),
            source,
        })?;
        if let Some(position) = stack.iter().position(|p| p == &canonical) {
            let mut chain = stack[position..].to_vec();
            chain.push(canonical);
            return Err(BackendError::CircularInclude { chain });
        }
        let dir = canonical.parent().unwrap_or(Path::new("/")).to_owned();
        // Includes stay in the tree they started in, unless they name
        // another backend's own `backend.toml`, which starts a tree.
        let root = match tree {
            Some((root, including)) if !canonical.starts_with(root) => {
                if canonical.file_name() != Some("backend.toml".as_ref()) {
                    return Err(BackendError::Include {
                        path: including.to_owned(),
                        included: canonical,
                        root: root.to_owned(),
                    });
                }
                dir.clone()
            }
            Some((root, _)) => root.to_owned(),
            None => dir.clone(),
        };
        let text = read_config(&canonical).map_err(|source| BackendError::Read {
            path: canonical.clone(),
            source,
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| BackendError::Parse {
            path: canonical.clone(),
            message: parse_message(&e, &text),
        })?;
        let invalid = |message: String| BackendError::Invalid {
            path: canonical.clone(),
            message,
        };
        stack.push(canonical.clone());
        if let Some(include) = table.get("include") {
            let list = include
                .as_array()
                .ok_or_else(|| invalid("`include` must be a list of paths".into()))?;
            for entry in list {
                let relative = entry
                    .as_str()
                    .ok_or_else(|| invalid("`include` entries must be strings".into()))?;
                self.load_file(&dir.join(relative), Some((&root, &canonical)), stack)?;
            }
        }
        stack.pop();
        for (name, value) in &table {
            if name == "include" {
                continue;
            }
            check_name(name).map_err(|message| invalid(format!("backend {message}")))?;
            let sections = value.as_table().ok_or_else(|| {
                invalid(format!("`{name}` must be a table with [{name}.nixos], [{name}.home], [{name}.shared] or [{name}.tanka] sections"))
            })?;
            let backend = read_backend(name, sections, &dir, &canonical)?;
            if let Some(existing) = self.backends.get(name) {
                return Err(BackendError::Duplicate {
                    name: name.clone(),
                    first: existing.defined_in.clone(),
                    second: canonical.clone(),
                });
            }
            self.backends.insert(name.clone(), backend);
        }
        Ok(())
    }
}

/// The largest `backend.toml` read (1 MiB).
pub(crate) const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads a config file that must be a regular file of at most
/// [`MAX_CONFIG_BYTES`]. Opened without blocking, so a FIFO cannot hang
/// the run, and checked on the open file, so it cannot be swapped.
fn read_config(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let invalid = |message: String| std::io::Error::new(std::io::ErrorKind::InvalidData, message);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(invalid("not a regular file".into()));
    }
    if metadata.len() > MAX_CONFIG_BYTES {
        return Err(invalid(format!("larger than {MAX_CONFIG_BYTES} bytes")));
    }
    let mut bytes = Vec::new();
    // Files in /proc report a size of 0: the cap applies to what is read.
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(invalid(format!("larger than {MAX_CONFIG_BYTES} bytes")));
    }
    String::from_utf8(bytes).map_err(|_| invalid("not UTF-8 text".into()))
}

/// The TOML parser's message and position, without the quoted source line
/// it would show and without quoted text longer than a few characters
/// (punctuation such as `=` stays): the file may not be a config at all.
fn parse_message(error: &toml::de::Error, text: &str) -> String {
    let mut message = String::new();
    for (i, part) in error.message().trim().split('`').enumerate() {
        if i % 2 == 1 {
            message.push('`');
            message.push_str(if part.chars().count() <= 3 {
                part
            } else {
                "…"
            });
            message.push('`');
        } else {
            message.push_str(part);
        }
    }
    let message = message.lines().next().unwrap_or_default().to_owned();
    match error.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            format!("{message} at line {line}, column {column}")
        }
        None => message,
    }
}

fn read_backend(
    name: &str,
    sections: &toml::Table,
    dir: &Path,
    file: &Path,
) -> Result<Backend, BackendError> {
    let invalid = |message: String| BackendError::Invalid {
        path: file.to_owned(),
        message,
    };
    let mut out = BTreeMap::new();
    for (key, value) in sections {
        let Some(kind) = SectionKind::ALL.into_iter().find(|k| k.key() == key) else {
            let hint = if key.contains("check_serialization") || key.ends_with("serialize") {
                " (this looks like the old flat format: write [NAME.nixos] with check = … and serialize = …)"
            } else {
                ""
            };
            return Err(invalid(format!(
                "unknown key `{name}.{key}`: expected sections nixos, home, shared or tanka{hint}"
            )));
        };
        let table = value
            .as_table()
            .ok_or_else(|| invalid(format!("`{name}.{key}` must be a table")))?;
        for entry in table.keys() {
            if ![
                "enabled",
                "check",
                "serialize",
                "deserialize",
                "list",
                "remove",
                "writable",
                "check-all",
            ]
            .contains(&entry.as_str())
            {
                return Err(invalid(format!(
                    "unknown key `{entry}` in [{name}.{key}] (expected enabled, check, serialize, deserialize, list, remove, writable, check-all)"
                )));
            }
        }
        let script = |field: &'static str| -> Result<Option<Script>, BackendError> {
            match table.get(field) {
                None => Ok(None),
                Some(toml::Value::String(relative)) => {
                    let path = dir.join(relative);
                    check_script(&path).map_err(|problem| BackendError::Script {
                        backend: name.to_owned(),
                        section: kind.key(),
                        key: field,
                        script: path.clone(),
                        problem,
                        path: file.to_owned(),
                    })?;
                    Ok(Some(Script::File(path)))
                }
                Some(_) => Err(invalid(format!(
                    "[{name}.{key}] {field} must be a path string"
                ))),
            }
        };
        let check = script("check")?;
        let serialize = script("serialize")?;
        let deserialize = script("deserialize")?;
        let list = script("list")?;
        let remove = script("remove")?;
        let writable = script("writable")?;
        let check_all = script("check-all")?;
        if check_all.is_some() && kind == SectionKind::Shared {
            return Err(invalid(format!(
                "[{name}.{key}] check-all answers for one target, and shared artifacts have many: declare it in the nixos, home or tanka section"
            )));
        }
        if list.is_some() != remove.is_some() {
            return Err(invalid(format!(
                "[{name}.{key}] list and remove come as a pair (garbage collection needs both)"
            )));
        }
        let enabled = match table.get("enabled") {
            None => true,
            Some(toml::Value::Boolean(b)) => *b,
            Some(_) => {
                return Err(invalid(format!(
                    "[{name}.{key}] enabled must be true or false"
                )));
            }
        };
        let scripts = match (check, serialize) {
            (Some(check), Some(serialize)) => Some(Scripts {
                check,
                serialize,
                deserialize,
                list,
                remove,
                writable,
                check_all,
            }),
            (None, None)
                if deserialize.is_none()
                    && list.is_none()
                    && writable.is_none()
                    && check_all.is_none() =>
            {
                None
            }
            (None, None) => {
                return Err(invalid(format!(
                    "[{name}.{key}] has deserialize, list, writable or check-all but no check and serialize"
                )));
            }
            (Some(_), None) => {
                return Err(invalid(format!("[{name}.{key}] check requires serialize")));
            }
            (None, Some(_)) => {
                return Err(invalid(format!("[{name}.{key}] serialize requires check")));
            }
        };
        out.insert(kind, Section { enabled, scripts });
    }
    Ok(Backend {
        name: name.to_owned(),
        defined_in: file.to_owned(),
        sections: out,
        config_keys: vec![name.to_owned()],
        storage: name.to_owned(),
        in_process: None,
    })
}

/// Checks that a script can be executed: exists, is a regular file, has an execute bit.
pub(crate) fn check_script(path: &Path) -> Result<(), &'static str> {
    artifacts_os::path::check_executable(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        dir
    }

    fn load_err(dir: &Path, include: &str) -> String {
        let top = dir.join("backend.toml");
        std::fs::write(&top, format!("include = [{include:?}]\n")).unwrap();
        let e = BackendRegistry::load(&top).unwrap_err();
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    }

    #[test]
    fn includes_outside_the_project_are_refused_unless_another_backend_toml() {
        let dir = project();
        let e = load_err(dir.path(), "/proc/self/environ");
        assert!(e.contains("which is outside"), "{e}");
        assert!(!e.contains("PATH="), "{e}");
        // Through a link inside the project: where it leads counts.
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("conf/link.toml")).unwrap();
        let e = load_err(dir.path(), "./conf/link.toml");
        assert!(e.contains("`/etc/passwd`, which is outside"), "{e}");
        assert!(!e.contains("root:"), "{e}");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.toml")).unwrap();
        assert!(load_err(dir.path(), "./zero.toml").contains("which is outside"));
        // Another backend's own backend.toml may live anywhere; its own
        // includes stay beside it.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(
            other.path().join("backend.toml"),
            "include = [\"./more.toml\"]\n",
        )
        .unwrap();
        std::fs::write(other.path().join("more.toml"), "[x.nixos]\n").unwrap();
        let top = dir.path().join("backend.toml");
        std::fs::write(
            &top,
            format!("include = [{:?}]\n", other.path().join("backend.toml")),
        )
        .unwrap();
        let registry = BackendRegistry::load(&top).unwrap();
        assert_eq!(registry.names(), ["x"]);
    }

    #[test]
    fn parse_errors_never_show_the_file_and_fifos_and_devices_are_not_read() {
        let dir = project();
        std::fs::write(dir.path().join("conf/key.txt"), format!("# key\n{KEY}\n")).unwrap();
        let e = load_err(dir.path(), "./conf/key.txt");
        assert!(e.contains("failed to parse backend config"), "{e}");
        assert!(e.contains("at line 2, column"), "{e}");
        assert!(!e.contains("QQQQ") && !e.contains("AGE-SECRET"), "{e}");
        // A key that happens to read as TOML: only short quoted text stays.
        std::fs::write(
            dir.path().join("conf/kv.toml"),
            "a = \"SECRET-VALUE-1\"\na = \"SECRET-VALUE-2\"\n",
        )
        .unwrap();
        let e = load_err(dir.path(), "./conf/kv.toml");
        assert!(!e.contains("SECRET-VALUE"), "{e}");

        // A FIFO would block the open until someone writes to it.
        let fifo = dir.path().join("conf/fifo.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = load_err(dir.path(), "./conf/fifo.toml");
        assert!(e.contains("not a regular file"), "{e}");
        assert!(read_config(Path::new("/dev/zero")).is_err());
        let big = dir.path().join("conf/big.toml");
        std::fs::write(&big, "#".repeat(MAX_CONFIG_BYTES as usize + 1)).unwrap();
        assert!(load_err(dir.path(), "./conf/big.toml").contains("larger than 1048576 bytes"));
    }
}
