//! Installing generated files at their declared paths (`artifacts activate`,
//! for backends that store nothing, such as `dummy`).
//!
//! Each file is written to a temporary file in the destination directory,
//! given its owner, group and mode, fsynced, and renamed over the destination:
//! a reader sees the old file or the new one, never half of one, and never a
//! moment with the wrong owner or mode. Missing parent directories are created
//! `0755` and owned by root (NixOS) or `0700` (Home Manager paths, created by
//! the user running the activation). Temporary files an activation killed
//! before its rename left next to a destination are removed by the next one.
//!
//! Everything is resolved inside the root (`activate --root R`) as if it
//! were `/`: links in R are followed, but an absolute one starts again at R
//! and `..` stops at R ([`Dir::open_in_root`]), so a link inside R never
//! leads to a host file; the destination itself is never followed (a link
//! there is replaced), and owner and mode are changed through an open file
//! descriptor of the regular file found, never by path.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use artifacts_model::{Artifact, FileSpec, IoError};
use artifacts_os::fs::{Dir, Temp};
use nix::unistd::{Gid, Group, Uid, User, fchown};

/// Temporary files next to a destination: this, then 16 hex digits.
const INSTALL_PREFIX: &str = ".artifacts-install-";

/// Why a file could not be installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// A path uses a variable that is not set.
    #[error("path `{path}` uses ${variable}, which is not set")]
    Unset {
        /// The declared path.
        path: String,
        /// The variable.
        variable: String,
    },
    /// The owner or group does not exist here.
    #[error("{kind} `{name}` of `{path}` does not exist on this system")]
    NoSuchAccount {
        /// `user` or `group`.
        kind: &'static str,
        /// The name.
        name: String,
        /// The declared path.
        path: String,
    },
    /// File system work failed.
    #[error(transparent)]
    Io(#[from] IoError),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> InstallError {
    let io = IoError::with(action, path);
    move |source| InstallError::Io(io(source))
}

/// What installing a file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// Written (it was missing).
    Written,
    /// Already there; owner, group or mode corrected.
    Fixed,
    /// Already there and right: nothing changed.
    Unchanged,
}

/// Expands `$VAR`, `${VAR}` and a leading `~/` of a declared path with `env`,
/// then places it under `root` (`/` for the real system).
pub(crate) fn destination(
    declared: &str,
    root: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, InstallError> {
    let mut expanded = String::new();
    let mut rest = declared;
    if let Some(tail) = rest.strip_prefix("~/") {
        let home = env("HOME").ok_or_else(|| InstallError::Unset {
            path: declared.to_owned(),
            variable: "HOME".into(),
        })?;
        expanded.push_str(&home);
        expanded.push('/');
        rest = tail;
    }
    while let Some(start) = rest.find('$') {
        expanded.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => (braced, ""),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        let value = env(name).ok_or_else(|| InstallError::Unset {
            path: declared.to_owned(),
            variable: name.to_owned(),
        })?;
        expanded.push_str(&value);
        rest = tail;
    }
    expanded.push_str(rest);
    let relative = expanded.trim_start_matches('/');
    Ok(root.join(relative))
}

fn ids(spec: &FileSpec) -> Result<(Option<Uid>, Option<Gid>), InstallError> {
    let user = match &spec.owner {
        Some(name) => Some(
            User::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| InstallError::NoSuchAccount {
                    kind: "user",
                    name: name.clone(),
                    path: spec.path.clone(),
                })?
                .uid,
        ),
        None => None,
    };
    let group = match &spec.group {
        Some(name) => Some(
            Group::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| InstallError::NoSuchAccount {
                    kind: "group",
                    name: name.clone(),
                    path: spec.path.clone(),
                })?
                .gid,
        ),
        None => None,
    };
    Ok((user, group))
}

/// Whether `path` exists with the declared owner, group and mode.
fn matches(
    metadata: &std::fs::Metadata,
    spec: &FileSpec,
    uid: Option<Uid>,
    gid: Option<Gid>,
) -> bool {
    metadata.is_file()
        && metadata.mode() & 0o7777 == spec.mode.0
        && uid.is_none_or(|u| metadata.uid() == u.as_raw())
        && gid.is_none_or(|g| metadata.gid() == g.as_raw())
}

/// The destination's directory, resolved inside `root` (created with
/// `create` when given), and the file's name.
fn parent_in_root<'d>(
    root: &Path,
    destination: &'d Path,
    create: Option<u32>,
) -> Result<(Option<Dir>, &'d OsStr), InstallError> {
    let relative = destination.strip_prefix(root).unwrap_or(destination);
    let name = relative.file_name().ok_or_else(|| {
        InstallError::Io(IoError::new(
            "install",
            destination,
            std::io::Error::other("the path names no file"),
        ))
    })?;
    let parent = relative.parent().unwrap_or(Path::new(""));
    // The root itself is the caller's choice: created like `mkdir -p`, if need be.
    match (root.is_dir(), create) {
        (true, _) => {}
        (false, None) => return Ok((None, name)),
        (false, Some(mode)) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(root)
            .map_err(io("create", root))?,
    }
    let dir = Dir::open_root(root)
        .and_then(|dir| dir.open_in_root(parent, create))
        .map_err(io(
            if create.is_some() { "create" } else { "open" },
            destination.parent().unwrap_or(root),
        ))?;
    Ok((dir, name))
}

/// Removes temporary files an activation killed before its rename left in
/// `dir` (ours by name: [`INSTALL_PREFIX`] and 16 hex digits).
fn remove_leftovers(dir: &Dir) -> std::io::Result<()> {
    for (entry, kind) in dir.entries()? {
        let ours = entry
            .to_str()
            .and_then(|name| name.strip_prefix(INSTALL_PREFIX))
            .is_some_and(artifacts_os::fs::is_tag);
        if ours && kind == artifacts_os::fs::FileType::RegularFile {
            dir.remove(&entry)?;
        }
    }
    Ok(())
}

/// The regular file at `destination` (inside `root`), open, if there is one.
fn existing(root: &Path, destination: &Path) -> Result<Option<std::fs::File>, InstallError> {
    let (Some(dir), name) = parent_in_root(root, destination, None)? else {
        return Ok(None);
    };
    existing_in(&dir, name, destination)
}

fn existing_in(
    dir: &Dir,
    name: &OsStr,
    destination: &Path,
) -> Result<Option<std::fs::File>, InstallError> {
    match dir.kind(name).map_err(io("inspect", destination))? {
        Some(artifacts_os::fs::FileType::RegularFile) => {
            dir.open_file(name).map_err(io("open", destination))
        }
        _ => Ok(None),
    }
}

/// Reads an installed file (inside `root`).
pub(crate) fn read_installed(root: &Path, destination: &Path) -> Result<Vec<u8>, InstallError> {
    let mut file = existing(root, destination)?.ok_or_else(|| {
        InstallError::Io(IoError::new(
            "read",
            destination,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not installed"),
        ))
    })?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .map_err(io("read", destination))?;
    Ok(data)
}

/// Installs one file unless an identical-metadata file is already there.
/// `destination` lies under `root` (see [`destination`]) and is resolved
/// inside it. `content` is only read when the file is missing.
pub(crate) fn install(
    root: &Path,
    destination: &Path,
    spec: &FileSpec,
    content: &dyn Fn() -> std::io::Result<Vec<u8>>,
    system: bool,
) -> Result<Installed, InstallError> {
    let (uid, gid) = ids(spec)?;
    let (dir, name) = parent_in_root(root, destination, None)?;
    let found = match &dir {
        Some(dir) => {
            remove_leftovers(dir).map_err(io(
                "remove leftovers of an interrupted activation next to",
                destination,
            ))?;
            existing_in(dir, name, destination)?
        }
        None => None,
    };
    if let Some(file) = found {
        let metadata = file.metadata().map_err(io("inspect", destination))?;
        if matches(&metadata, spec, uid, gid) {
            return Ok(Installed::Unchanged);
        }
        // Through the descriptor of the file just checked: a path could lead elsewhere.
        fchown(&file, uid, gid).map_err(|e| {
            InstallError::Io(IoError::new("change the owner of", destination, e.into()))
        })?;
        file.set_permissions(std::fs::Permissions::from_mode(spec.mode.0))
            .map_err(io("change the mode of", destination))?;
        return Ok(Installed::Fixed);
    }
    let data =
        zeroize::Zeroizing::new(content().map_err(io("read the generated file for", destination))?);
    write_atomically(root, destination, spec, &data, system)
}

/// Installs one file with exactly `data`: like [`install`], but a file whose
/// content differs is replaced too (what a backend that stores the content,
/// such as openbao, installs after a rotation).
pub(crate) fn install_exact(
    root: &Path,
    destination: &Path,
    spec: &FileSpec,
    data: &[u8],
    system: bool,
) -> Result<Installed, InstallError> {
    let same = match existing(root, destination)? {
        Some(mut file) => {
            let mut installed = zeroize::Zeroizing::new(Vec::new());
            file.read_to_end(&mut installed)
                .map_err(io("read", destination))?;
            installed.as_slice() == data
        }
        None => false,
    };
    if same {
        return install(root, destination, spec, &|| Ok(data.to_vec()), system);
    }
    write_atomically(root, destination, spec, data, system)
}

/// Writes `data` next to `destination` with its owner, group and mode,
/// then renames it into place: a reader sees the old file or the new one.
fn write_atomically(
    root: &Path,
    destination: &Path,
    spec: &FileSpec,
    data: &[u8],
    system: bool,
) -> Result<Installed, InstallError> {
    let (uid, gid) = ids(spec)?;
    let (dir, name) = parent_in_root(root, destination, Some(if system { 0o755 } else { 0o700 }))?;
    let dir = dir.expect("created when missing");
    let temp = Temp::random(&dir, INSTALL_PREFIX, "");
    let mut file = dir
        .create_file(temp.name(), 0o600)
        .map_err(io("create a temporary file next to", destination))?;
    file.write_all(data).map_err(io("write", destination))?;
    fchown(&file, uid, gid)
        .map_err(|e| InstallError::Io(IoError::new("set the owner of", destination, e.into())))?;
    file.set_permissions(std::fs::Permissions::from_mode(spec.mode.0))
        .map_err(io("set the mode of", destination))?;
    file.sync_all().map_err(io("sync", destination))?;
    dir.rename(temp.name(), name)
        .map_err(io("replace", destination))?;
    temp.keep();
    dir.sync();
    Ok(Installed::Written)
}

/// Where an artifact's files go under `root`, with their declarations, in
/// declaration order.
pub(crate) fn destinations<'a>(
    artifact: &'a Artifact,
    root: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(PathBuf, &'a FileSpec)>, InstallError> {
    artifact
        .files
        .values()
        .map(|spec| destination(&spec.path, root, env).map(|path| (path, spec)))
        .collect()
}

/// Whether every file is in place with the right metadata (nothing to generate).
pub(crate) fn all_in_place(
    root: &Path,
    files: &[(PathBuf, &FileSpec)],
) -> Result<bool, InstallError> {
    for (destination, spec) in files {
        let (uid, gid) = ids(spec)?;
        let Some(file) = existing(root, destination)? else {
            return Ok(false);
        };
        let metadata = file.metadata().map_err(io("inspect", destination))?;
        if !matches(&metadata, spec, uid, gid) {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "XDG_RUNTIME_DIR" => Some("/run/user/1000".into()),
            "HOME" => Some("/home/alice".into()),
            _ => None,
        }
    }

    #[test]
    fn destinations_expand_variables_and_sit_under_the_root() {
        let root = Path::new("/mnt");
        assert_eq!(
            destination("/run/artifacts/a/b", root, &env).unwrap(),
            Path::new("/mnt/run/artifacts/a/b")
        );
        assert_eq!(
            destination("$XDG_RUNTIME_DIR/artifacts/a/b", Path::new("/"), &env).unwrap(),
            Path::new("/run/user/1000/artifacts/a/b")
        );
        assert_eq!(
            destination("${HOME}/x", Path::new("/"), &env).unwrap(),
            Path::new("/home/alice/x")
        );
        assert_eq!(
            destination("~/y", Path::new("/"), &env).unwrap(),
            Path::new("/home/alice/y")
        );
        let error = destination("$NOPE/x", root, &env).unwrap_err();
        assert_eq!(
            error.to_string(),
            "path `$NOPE/x` uses $NOPE, which is not set"
        );
    }
}
