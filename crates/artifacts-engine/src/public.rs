//! The public store: files declared `secret = false`, in plaintext in the repository.
//!
//! ```text
//! public/per-machine/<machine>/<artifact>/<file>
//! public/per-user/<user>/<artifact>/<file>
//! public/shared/<artifact>/<file>
//! public/tanka/<environment>/<artifact>/<file>
//! ```
//!
//! Written after the backend stored the secret files, so a failure leaves the
//! previous public files matching the previous secrets. The Nix modules read
//! them as `files.<f>.value`; `artifacts show` prints them without any key.
//! Keep this layout in sync with nix-modules/lib (public-file lookup).

use std::path::{Path, PathBuf};

use artifacts_model::{Context, TargetId, TargetKind};

use crate::plan::Unit;
use crate::scratch::write_atomic;

/// The public store's directory under the project root.
pub const PUBLIC_DIR: &str = "public";

/// The directory holding a target's public files: `public/per-machine/<m>` etc.
pub fn target_dir(root: &Path, target: &TargetId) -> PathBuf {
    let kind = match target.kind {
        TargetKind::Nixos => "per-machine",
        TargetKind::Home => "per-user",
        TargetKind::Tanka => "tanka",
    };
    root.join(PUBLIC_DIR).join(kind).join(&target.name)
}

/// The directory holding a unit's public files.
pub fn artifact_dir(root: &Path, unit: &Unit<'_>) -> PathBuf {
    let scoped = if unit.context == Context::Shared {
        root.join(PUBLIC_DIR).join("shared")
    } else {
        target_dir(root, &unit.targets[0].id)
    };
    scoped.join(unit.name())
}

/// Names of the unit's public files.
pub fn public_files<'u>(unit: &'u Unit<'_>) -> impl Iterator<Item = &'u String> {
    unit.artifact
        .files
        .iter()
        .filter(|(_, spec)| !spec.secret)
        .map(|(name, _)| name)
}

/// Copies the public files of a generated `$out` into the store, each atomically.
pub fn store(root: &Path, unit: &Unit<'_>, out: &Path) -> std::io::Result<()> {
    let dir = artifact_dir(root, unit);
    for name in public_files(unit) {
        std::fs::create_dir_all(&dir)?;
        let content = std::fs::read(out.join(name))?;
        write_atomic(&dir.join(name), &content, 0o644)?;
    }
    Ok(())
}

/// Public files of the unit missing from the store.
pub fn missing(root: &Path, unit: &Unit<'_>) -> Vec<String> {
    let dir = artifact_dir(root, unit);
    public_files(unit)
        .filter(|name| !dir.join(name).is_file())
        .cloned()
        .collect()
}

/// Copies stored public files into `out` where the backend did not put them.
pub fn restore(root: &Path, unit: &Unit<'_>, out: &Path) -> std::io::Result<()> {
    let dir = artifact_dir(root, unit);
    for name in public_files(unit) {
        let target = out.join(name);
        if !target.exists() {
            std::fs::copy(dir.join(name), target)?;
        }
    }
    Ok(())
}
