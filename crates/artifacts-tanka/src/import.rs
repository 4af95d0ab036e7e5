//! The jsonnet import resolver: tanka's search order, confined to the
//! project root.
//!
//! `import`, `importstr` and `importbin` look in the importing file's
//! directory, then the environment directory, `lib/`, `<env>/vendor/` and
//! `vendor/` (tanka's precedence). Every candidate must stay inside the
//! project root: absolute paths are refused outright, a `..` that climbs out
//! is refused before touching the file system, and a candidate whose real
//! path (symlinks resolved) is outside is refused. So a repository's jsonnet
//! cannot read the age key mounted in the ArgoCD sidecar, `/dev/stdin`, or
//! `/proc/self/environ`. Only regular files are read, opened with
//! `O_NOFOLLOW` on their resolved path. `import 'tk'` is tanka's in-memory
//! library (`{ env: std.extVar('tanka.dev/environment') }`), as in tanka.
//!
//! The same rule confines the charts and kustomizations `helmTemplate` and
//! `kustomizeBuild` hand to programs (`resolve_inside`, and
//! `check_tree` for the symlinks inside them): one implementation for all.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use jrsonnet_evaluator::{AsPathLike, ImportResolver, SourcePath, SourceVirtual, error::ErrorKind};
use jrsonnet_gcmodule::Acyclic;
use jrsonnet_ir::{SourceFifo, SourceFile};

/// The name of tanka's in-memory `tk` library.
const TK_SOURCE: &str = "<internal>/tk.libsonnet";

/// Resolves imports inside one directory tree.
#[derive(Acyclic)]
pub struct RootedResolver {
    root: PathBuf,
    jpath: Vec<PathBuf>,
}

impl RootedResolver {
    /// `root` must be canonical; `jpath` is searched in order after the
    /// importing file's directory.
    pub fn new(root: PathBuf, jpath: Vec<PathBuf>) -> Self {
        RootedResolver { root, jpath }
    }

    fn refuse(&self, path: &Path, why: &str) -> jrsonnet_evaluator::Error {
        ErrorKind::RuntimeError(
            format!(
                "import of `{}` refused: {why} (imports must stay inside the project root)",
                path.display()
            )
            .into(),
        )
        .into()
    }

    /// `Ok(None)`: no such file here, try the next place.
    fn candidate(&self, dir: &Path, rel: &Path) -> jrsonnet_evaluator::Result<Option<PathBuf>> {
        let real = match resolve_inside(&self.root, dir, rel) {
            Ok(Some(real)) => real,
            Ok(None) => return Ok(None),
            Err(Confined::Refused(why)) => return Err(self.refuse(rel, why)),
            Err(Confined::Io(e)) => {
                return Err(ErrorKind::ImportIo(format!("`{}`: {e}", rel.display())).into());
            }
        };
        let meta = std::fs::metadata(&real)
            .map_err(|e| ErrorKind::ImportIo(format!("`{}`: {e}", rel.display())))?;
        if meta.is_dir() {
            return Ok(None);
        }
        if !meta.is_file() {
            return Err(self.refuse(rel, "it is not a regular file"));
        }
        Ok(Some(real))
    }
}

/// Why a path was not resolved inside the project root.
#[derive(Debug)]
pub(crate) enum Confined {
    /// It leaves the root; says how (for "… refused: {why}").
    Refused(&'static str),
    /// The file system could not answer.
    Io(std::io::Error),
}

/// Resolves `rel` against `dir` and returns its real path (symlinks
/// resolved), or `None` when nothing is there. Refused: a `..` climbing
/// above `/` or out of `root` (checked before touching the file system), and
/// a real path outside `root` (a symlink pointing out). `root` must be
/// canonical. The one confinement rule for imports, charts and kustomizations.
pub(crate) fn resolve_inside(
    root: &Path,
    dir: &Path,
    rel: &Path,
) -> Result<Option<PathBuf>, Confined> {
    let Some(joined) = normalize(&dir.join(rel)) else {
        return Err(Confined::Refused("it climbs above `/`"));
    };
    if !joined.starts_with(root) {
        return Err(Confined::Refused("it points outside"));
    }
    let real = match joined.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Confined::Io(e)),
    };
    if !real.starts_with(root) {
        return Err(Confined::Refused("it is a symlink pointing outside"));
    }
    Ok(Some(real))
}

/// At most this many entries are looked at by [`check_tree`].
const TREE_LIMIT: usize = 50_000;

/// Checks that every symlink below the directory `dir` (already resolved
/// inside `root`) resolves inside `root`, following links to directories
/// (each visited once). For trees handed to external programs that follow
/// symlinks (helm loads a chart's files through them). On refusal: the
/// offending path and why.
pub(crate) fn check_tree(root: &Path, dir: &Path) -> Result<(), (PathBuf, Confined)> {
    let mut visited = std::collections::BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(current) = pending.pop() {
        if !visited.insert(current.clone()) {
            continue;
        }
        let entries =
            std::fs::read_dir(&current).map_err(|e| (current.clone(), Confined::Io(e)))?;
        for entry in entries {
            let entry = entry.map_err(|e| (current.clone(), Confined::Io(e)))?;
            seen += 1;
            if seen > TREE_LIMIT {
                return Err((
                    dir.to_path_buf(),
                    Confined::Refused("it holds more than 50000 files"),
                ));
            }
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| (path.clone(), Confined::Io(e)))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_symlink() {
                let real = match path.canonicalize() {
                    Ok(real) => real,
                    // Dangling or unreadable: what it would be later is unknown.
                    Err(_) => {
                        return Err((
                            path,
                            Confined::Refused("it is a symlink that does not resolve"),
                        ));
                    }
                };
                if !real.starts_with(root) {
                    return Err((path, Confined::Refused("it is a symlink pointing outside")));
                }
                if real.is_dir() {
                    pending.push(real);
                }
            }
        }
    }
    Ok(())
}

/// Resolves `.` and `..` lexically; `None` when `..` climbs above `/`.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => out.push(c.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Some(out)
}

impl ImportResolver for RootedResolver {
    fn resolve_from(
        &self,
        from: &SourcePath,
        path: &dyn AsPathLike,
    ) -> jrsonnet_evaluator::Result<SourcePath> {
        let resolve_path = path.as_path();
        let rel: &Path = resolve_path.as_ref();
        // tanka serves `import 'tk'` from memory, before any file.
        if rel == Path::new("tk") {
            return Ok(SourcePath::new(SourceVirtual(TK_SOURCE.into())));
        }
        if rel.is_absolute() {
            return Err(self.refuse(rel, "absolute paths are not allowed"));
        }
        let base = match from.downcast_ref::<SourceFile>() {
            Some(f) => f.path().parent().unwrap_or(&self.root).to_path_buf(),
            None => self.root.clone(),
        };
        for dir in std::iter::once(&base).chain(self.jpath.iter()) {
            if let Some(found) = self.candidate(dir, rel)? {
                return Ok(SourcePath::new(SourceFile::new(found)));
            }
        }
        Err(ErrorKind::ImportFileNotFound(from.clone(), resolve_path.to_owned()).into())
    }

    fn load_file_contents(&self, resolved: &SourcePath) -> jrsonnet_evaluator::Result<Vec<u8>> {
        if let Some(v) = resolved.downcast_ref::<SourceVirtual>()
            && v.0.as_str() == TK_SOURCE
        {
            return Ok(crate::eval::TK_LIBSONNET.as_bytes().to_vec());
        }
        // `--ext-code` / `--tla-code` values: the evaluator wraps them
        // itself; imports inside them still come through `resolve_from`.
        if let Some(code) = resolved.downcast_ref::<SourceFifo>() {
            return Ok(code.1.to_vec());
        }
        let Some(f) = resolved.downcast_ref::<SourceFile>() else {
            return Err(
                ErrorKind::RuntimeError("only project files can be imported".into()).into(),
            );
        };
        let path = f.path();
        if !path.starts_with(&self.root) {
            return Err(self.refuse(path, "it points outside"));
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)
            .map_err(|e| ErrorKind::ImportIo(format!("`{}`: {e}", path.display())))?;
        let mut out = Vec::new();
        file.read_to_end(&mut out)
            .map_err(|e| ErrorKind::ImportIo(format!("`{}`: {e}", path.display())))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_dots_and_detects_climbing_out() {
        assert_eq!(
            normalize(Path::new("/a/b/../c/./d")),
            Some(PathBuf::from("/a/c/d"))
        );
        assert_eq!(normalize(Path::new("/a/../..")), None);
    }
}
