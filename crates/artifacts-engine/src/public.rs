//! The public store: files declared `secret = false`, in plaintext in the repository.
//!
//! ```text
//! public/per-machine/<machine>/<artifact>/<file>
//! public/per-user/<user>/<artifact>/<file>
//! public/shared/<artifact>/<file>
//! public/tanka/<environment>/<artifact>/<file>
//! ```
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
use artifacts_os::fs::{Dir, Temp};

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
    let prefix = format!(".artifacts-public-{}.", unit.name());
    scope.remove_leftovers(|name| {
        name.strip_prefix(&prefix)
            .is_some_and(artifacts_os::fs::is_tag)
    })?;
    let staged = Temp::random(&scope, &prefix, "");
    let staged_dir = scope.create_dir(staged.name(), 0o755)?;
    for name in public_files(unit) {
        let content = std::fs::read(out.join(name))?;
        staged_dir.write_new(name, &content, 0o644)?;
    }
    staged_dir.sync();
    match scope.replace_dir(staged.name(), unit.name())? {
        // The staged name now holds the previous generation: dropping `staged` removes it.
        Some(old) if old == staged.name() => drop(staged),
        Some(old) => {
            staged.keep();
            let _ = scope.remove(&old);
        }
        None => staged.keep(),
    }
    scope.sync();
    Ok(())
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
