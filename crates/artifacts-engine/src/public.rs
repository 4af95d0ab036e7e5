//! The public store: files declared `secret = false`, in plaintext in the repository.
//!
//! ```text
//! public/per-machine/<machine>/<artifact>/<file>
//! public/per-user/<user>/<artifact>/<file>
//! public/shared/<artifact>/<file>
//! public/tanka/<environment>/<artifact>/<file>
//! ```
//!
//! A tanka environment may be nested (`prod/eu`), so `public/tanka/prod/eu/`
//! is both a directory of `prod` and the store of `prod/eu`: an artifact's
//! directory holds only files, an environment's holds directories
//! ([`is_artifact_dir`]), and validation refuses an artifact named like a
//! nested environment's next component.
//!
//! Written after the backend stored the secret files. Each artifact's
//! directory switches generations in one step: the new files are written to
//! a hidden directory next to it (`.artifacts-public-<artifact>.<tag>`),
//! which is then swapped with the current one (`renameat2(RENAME_EXCHANGE)`),
//! so a reader or a killed run sees the old set or the new set; leftovers of
//! killed runs are removed by the next store. The engine marks the lock entry
//! pending while the secret and public halves are out of step (see
//! `Engine::generate`). Nothing is read, written or removed through a
//! symbolic link ([`artifacts_os::fs::Dir`]). The Nix modules read
//! the files as `files.<f>.value`; `artifacts show` prints them without any
//! key. Keep this layout in sync with nix-modules/lib (public-file lookup).

use std::path::{Path, PathBuf};

use artifacts_model::{TargetId, TargetKind};
use artifacts_os::fs::Dir;

use crate::plan::{Targets, Unit};

/// The public store's directory under the project root.
pub(crate) const PUBLIC_DIR: &str = "public";

/// A target's public directory relative to the project root: `public/per-machine/<m>` etc.
pub(crate) fn target_relative(target: &TargetId) -> PathBuf {
    let kind = match target.kind {
        TargetKind::Nixos => "per-machine",
        TargetKind::Home => "per-user",
        TargetKind::Tanka => "tanka",
    };
    Path::new(PUBLIC_DIR).join(kind).join(&target.name)
}

/// Whether `name` in a target's public directory can be one of its
/// artifacts: a directory holding no directory. A directory holding
/// directories is the store of a nested tanka environment (or not ours),
/// never an artifact to collect.
pub(crate) fn is_artifact_dir(scope: &Dir, name: &std::ffi::OsStr) -> std::io::Result<bool> {
    if scope.kind(name)? != Some(artifacts_os::fs::FileType::Directory) {
        return Ok(false);
    }
    let Some(dir) = scope.open(name)? else {
        return Ok(false);
    };
    Ok(dir
        .entries()?
        .iter()
        .all(|(_, kind)| *kind != artifacts_os::fs::FileType::Directory))
}

/// The directory holding a unit's artifact directories, relative to the root.
fn scope_relative(unit: &Unit<'_>) -> PathBuf {
    match &unit.targets {
        Targets::Shared(_) => Path::new(PUBLIC_DIR).join("shared"),
        Targets::One(target) => target_relative(&target.id),
    }
}

/// The directory holding a unit's public files.
pub(crate) fn artifact_dir(root: &Path, unit: &Unit<'_>) -> PathBuf {
    root.join(scope_relative(unit)).join(unit.name())
}

/// Names of the unit's public files.
pub(crate) fn public_files<'u>(unit: &'u Unit<'_>) -> impl Iterator<Item = &'u String> {
    unit.artifact
        .files
        .iter()
        .filter(|(_, spec)| !spec.secret)
        .map(|(name, _)| name)
}

/// The unit's stored directory, if it exists (links refused).
fn open_artifact(root: &Path, unit: &Unit<'_>) -> std::io::Result<Option<Dir>> {
    Dir::open_root(root)?.open(scope_relative(unit).join(unit.name()))
}

/// Copies the public files of a generated `$out` into the store as one new
/// generation of the artifact's directory.
pub(crate) fn store(root: &Path, unit: &Unit<'_>, out: &Path) -> std::io::Result<()> {
    if public_files(unit).next().is_none() {
        return Ok(());
    }
    let scope = Dir::open_root(root)?.create_dirs(scope_relative(unit), 0o755)?;
    // A directory holding directories is a nested environment's store (one
    // no longer declared: validation refuses the name while it is): never
    // replaced, so never removed, by an artifact's new generation.
    if scope.kind(unit.name())? == Some(artifacts_os::fs::FileType::Directory)
        && !is_artifact_dir(&scope, unit.name().as_ref())?
    {
        return Err(std::io::Error::other(format!(
            "`{}` holds directories, as a nested tanka environment's store does; move it away or rename the artifact",
            scope.path().join(unit.name()).display()
        )));
    }
    let files = public_files(unit)
        .map(|name| Ok((name, std::fs::read(out.join(name))?)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let prefix = format!(".artifacts-public-{}.", unit.name());
    scope.replace_dir_with(&prefix, unit.name(), files, 0o644)
}

/// Public files of the unit missing from the store.
pub(crate) fn missing(root: &Path, unit: &Unit<'_>) -> std::io::Result<Vec<String>> {
    if public_files(unit).next().is_none() {
        return Ok(Vec::new());
    }
    let Some(dir) = open_artifact(root, unit)? else {
        return Ok(public_files(unit).cloned().collect());
    };
    let mut missing = Vec::new();
    for name in public_files(unit) {
        if dir.kind(name)? != Some(artifacts_os::fs::FileType::RegularFile) {
            missing.push(name.clone());
        }
    }
    Ok(missing)
}

/// One stored public file of the unit; `None` when it is not stored.
pub(crate) fn read(root: &Path, unit: &Unit<'_>, name: &str) -> std::io::Result<Option<Vec<u8>>> {
    match open_artifact(root, unit)? {
        Some(dir) => dir.read(name),
        None => Ok(None),
    }
}

/// Copies stored public files into `out` where the backend did not put them.
pub(crate) fn restore(root: &Path, unit: &Unit<'_>, out: &Path) -> std::io::Result<()> {
    if public_files(unit).next().is_none() {
        return Ok(());
    }
    let dir = open_artifact(root, unit)?;
    for name in public_files(unit) {
        let target = out.join(name);
        if target.exists() {
            continue;
        }
        let content = match &dir {
            Some(dir) => dir.read(name)?,
            None => None,
        };
        let content = content.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("`{name}` is not stored"),
            )
        })?;
        artifacts_os::scratch::write_private(&target, &content)?;
    }
    Ok(())
}
