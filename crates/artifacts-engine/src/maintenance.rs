//! Moving artifacts between backends, recording what is stored, and
//! collecting what is stored but no longer declared.
//!
//! Migration is copy, verify, then delete: the files are read back through
//! the backend that stores them, stored by the new one, read back again
//! through the new one and compared byte for byte; only then does the old
//! backend remove its copy (when it has a `remove` script). Accepting records
//! the current declaration for what is stored, without regenerating.
//! Garbage collection asks each backend with `list` and `remove` scripts what
//! it stores for each declared target and removes what no declaration names
//! and `artifacts.lock` records as generated here (a key added by hand to a
//! SOPS file is not ours), except the only copy of an artifact declared in
//! another backend; a backend without those scripts is reported, never
//! guessed at. The public store is collected here directly, never through a
//! symbolic link.

use std::collections::BTreeSet;
use std::path::Path;

use artifacts_os::fs::{Dir, FileType};

use artifacts_model::{Context, Model, Target, TargetKind};
use serde::Serialize;

use crate::engine::{Engine, EngineError, Storage, io};
use crate::lockfile::Lock;
use crate::plan::{Plan, Targets, Unit, UnitId};
use crate::registry::{Backend, SectionKind};
use crate::script::{self, Scope, ScriptKind};
use artifacts_os::scratch::Scratch;

/// The name orphans of the public store are reported under.
pub(crate) const PUBLIC_STORE: &str = "public-store";

/// What a migration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// Whether the old backend removed its copy (`false`: it cannot remove).
    pub removed_old: bool,
}

/// Something stored that no declaration names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Orphan {
    /// The backend storing it.
    pub backend: String,
    /// Its context.
    pub context: Context,
    /// The target it is stored for (`None` for shared artifacts).
    pub target: Option<String>,
    /// The artifact name.
    pub artifact: String,
}

impl Orphan {
    /// `backend nixos/m1 name` or `backend shared name`, for people.
    pub fn label(&self) -> String {
        match &self.target {
            Some(target) => format!("{} {} {}", self.backend, target, self.artifact),
            None => format!("{} shared {}", self.backend, self.artifact),
        }
    }
}

/// What garbage collection could not look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The backend.
    pub backend: String,
    /// Why.
    pub reason: String,
}

/// An orphan garbage collection keeps: the only stored copy of an artifact
/// still declared (for the same target), in another backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// What is stored.
    pub orphan: Orphan,
    /// Why it is kept, and what to do instead.
    pub reason: String,
}

/// What `accept` did to a unit's lock entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Recorded for the first time (an adopted artifact).
    Adopted,
    /// The entry now records the current declaration.
    Updated,
    /// The entry already recorded it.
    Unchanged,
}

impl Engine<'_> {
    /// Copies a stored unit from backend `from` to backend `to`, verifies the
    /// copy, removes the old one, and records `to` in the unit's lock entry
    /// (if it has one; fingerprints and the generation time stay: the secret
    /// is the same). Either may be the declared backend: the declaration may
    /// change before or after the move.
    pub fn migrate(
        &self,
        plan: &Plan<'_>,
        index: UnitId,
        from: &str,
        to: &str,
        lock: &mut Lock,
    ) -> Result<Migrated, EngineError> {
        let unit = &plan[index];
        // Moving within one storage would remove the only copy after "copying" it.
        if self.same_storage(from, to) {
            return Err(EngineError::Unavailable {
                artifact: unit.label(),
                reason: format!("`{from}` and `{to}` store in the same place; nothing to move"),
            });
        }
        let source_unit = unit.with_backend(from);
        let target_unit = unit.with_backend(to);
        // A copy already there may be another secret (regenerated since): keep it.
        if self.stores(unit, to)? {
            return Err(EngineError::Unavailable {
                artifact: unit.label(),
                reason: format!(
                    "backend `{to}` already stores it; moving the copy in `{from}` there would replace that one"
                ),
            });
        }
        let (new_backend, new_scripts) = match self.storage(&target_unit)? {
            Storage::Scripts(backend, scripts) => (backend, scripts),
            Storage::Passthrough => {
                return Err(EngineError::Unavailable {
                    artifact: unit.label(),
                    reason: format!(
                        "backend `{to}` stores nothing; there is nothing to migrate to"
                    ),
                });
            }
        };
        let scratch = Scratch::new("migrate").map_err(io("create a scratch directory"))?;
        let out = scratch.subdir("out").map_err(io("create $out"))?;
        self.deserialize_into(&source_unit, &out)?;
        let original = crate::generator::read_output(unit, &out)?;
        // The same generation: it keeps the lock entry, so the stamp too.
        let stamp = lock
            .get(&unit.scope(), unit.name())
            .map(crate::lockfile::LockEntry::stamp);
        script::store(
            &target_unit,
            new_backend,
            new_scripts,
            ScriptKind::Serialize,
            &self.script_env,
            &out,
            stamp.as_ref(),
        )?;
        // Read back through the new backend and compare before touching the old copy.
        let check = scratch
            .subdir("verify")
            .map_err(io("create a scratch directory"))?;
        self.deserialize_into(&target_unit, &check)?;
        let copy = crate::generator::read_output(&target_unit, &check)?;
        if copy != original {
            let differing: Vec<&str> = original
                .iter()
                .zip(&copy)
                .filter(|(a, b)| a.1 != b.1)
                .map(|(a, _)| a.0.as_str())
                .collect();
            return Err(EngineError::Unavailable {
                artifact: unit.label(),
                reason: format!(
                    "backend `{to}` gives back different content for {}; the old copy in `{from}` is kept",
                    differing.join(", "),
                ),
            });
        }
        let removed_old = self.remove_unit(&source_unit)?;
        if let Some(mut entry) = lock.get(&unit.scope(), unit.name()).cloned() {
            entry.backend = Some(to.into());
            lock.set(&unit.scope(), unit.name(), entry);
            lock.save()?;
        }
        Ok(Migrated { removed_old })
    }

    /// Whether backends `a` and `b` store in the same place (`sops` and
    /// `sops-nix`, or one name twice).
    pub fn same_storage(&self, a: &str, b: &str) -> bool {
        match (self.registry.get(a), self.registry.get(b)) {
            (Some(a), Some(b)) => a.storage == b.storage,
            _ => a == b,
        }
    }

    /// The stamp the declared backend reports for what it stores, if any
    /// (only in-process backends report one: scripts are not run again).
    fn stored_stamp(
        &self,
        unit: &Unit<'_>,
    ) -> Result<Option<crate::in_process::Stamp>, EngineError> {
        match self.storage(unit)? {
            Storage::Scripts(backend, scripts) if backend.in_process.is_some() => {
                Ok(script::check_stamped(unit, backend, scripts, &self.script_env)?.1)
            }
            _ => Ok(None),
        }
    }

    /// Whether backend `name` stores the unit (its check exits 0 or 3).
    pub fn stores(&self, unit: &Unit<'_>, name: &str) -> Result<bool, EngineError> {
        let moved = unit.with_backend(name);
        match self.storage(&moved)? {
            Storage::Passthrough => Ok(false),
            Storage::Scripts(backend, scripts) => Ok(matches!(
                script::check(&moved, backend, scripts, &self.script_env)?,
                script::CheckOutcome::Stored | script::CheckOutcome::RecipientsChanged
            )),
        }
    }

    /// Records the current declaration in the lock for what is stored,
    /// without regenerating: the generation time stays (unknown for an
    /// adopted artifact), the backend becomes the declared one. The caller
    /// checked that the declared backend stores it.
    pub fn accept(
        &self,
        plan: &Plan<'_>,
        index: UnitId,
        lock: &mut Lock,
    ) -> Result<Accepted, EngineError> {
        let unit = &plan[index];
        let declared = unit
            .declared(plan, lock)
            .map_err(io(format!("read the generator of `{}`", unit.name())))?;
        let old = lock.get(&unit.scope(), unit.name()).cloned();
        // An adopted generation the store stamped keeps its time, so that
        // the lock and the store agree (see `Engine::status`).
        let generated_at = match &old {
            Some(old) => old.generated_at.clone(),
            None => self
                .stored_stamp(unit)?
                .and_then(|s| s.generated_at)
                .map(Into::into),
        };
        // A value put in by hand stays one.
        let mut entry = declared.entry_from(
            &unit.backend.name,
            generated_at,
            old.as_ref().and_then(|e| e.provenance),
        );
        if let Some(old) = &old {
            entry.extra = old.extra.clone();
        }
        let outcome = match &old {
            None => Accepted::Adopted,
            Some(old) if *old == entry => return Ok(Accepted::Unchanged),
            Some(_) => Accepted::Updated,
        };
        lock.set(&unit.scope(), unit.name(), entry);
        lock.save()?;
        Ok(outcome)
    }

    /// Splits `orphans` into those garbage collection may remove and those it
    /// keeps: a copy of an artifact still declared for the same target (or
    /// shared) in another backend is kept unless the declared backend stores
    /// it too, so the last copy of a declared secret is never removed.
    pub fn keep_last_copies(
        &self,
        plan: &Plan<'_>,
        orphans: Vec<Orphan>,
    ) -> (Vec<Orphan>, Vec<Kept>) {
        let mut removable = Vec::new();
        let mut kept = Vec::new();
        for orphan in orphans {
            let declared = (orphan.backend != PUBLIC_STORE)
                .then(|| {
                    plan.units().find(|u| {
                        u.name() == orphan.artifact
                            && match (&orphan.target, &u.targets) {
                                (None, Targets::Shared(_)) => true,
                                (Some(reference), Targets::One(target)) => {
                                    &target.id.reference() == reference
                                }
                                _ => false,
                            }
                    })
                })
                .flatten();
            let Some(unit) = declared else {
                removable.push(orphan);
                continue;
            };
            let migrate = crate::engine::suggestion("migrate", &[&unit.artifact.name]);
            let reason = match self.stores(unit, &unit.backend.name) {
                Ok(true) => {
                    removable.push(orphan);
                    continue;
                }
                Ok(false) if self.is_passthrough(unit) => format!(
                    "the only stored copy of `{}`, declared with backend `{}`, which stores nothing; declare `backend = \"{}\"` again to keep using it",
                    unit.name(),
                    unit.backend.name,
                    orphan.backend
                ),
                Ok(false) => format!(
                    "the only stored copy of `{}`, declared with backend `{}`: run `{migrate}` to move it there",
                    unit.name(),
                    unit.backend.name
                ),
                Err(error) => format!(
                    "`{}` is declared with backend `{}`, which cannot tell whether it stores it ({}); keeping this copy",
                    unit.name(),
                    unit.backend.name,
                    crate::engine::error_chain(&error)
                ),
            };
            kept.push(Kept { orphan, reason });
        }
        (removable, kept)
    }

    /// Removes a declared unit from its backend; `false` when the backend cannot remove.
    fn remove_unit(&self, unit: &Unit<'_>) -> Result<bool, EngineError> {
        let (backend, scripts) = match self.storage(unit)? {
            Storage::Scripts(backend, scripts) => (backend, scripts),
            Storage::Passthrough => return Ok(false),
        };
        let Some(remove) = &scripts.remove else {
            return Ok(false);
        };
        script::remove(&Scope::of(unit), backend, remove, &self.script_env)?;
        Ok(true)
    }

    /// Finds what backends store but no declaration names, per declared target.
    ///
    /// Only what `lock` records as generated by artifacts (for that target,
    /// or shared) can be an orphan: anything else in a store, such as a key
    /// added to a SOPS file with `sops set`, is not ours to remove.
    pub fn orphans(
        &self,
        model: &Model,
        plan: &Plan<'_>,
        lock: &Lock,
    ) -> (Vec<Orphan>, Vec<Skipped>, Vec<EngineError>) {
        let mut orphans = Vec::new();
        let mut skipped = Vec::new();
        let mut errors = Vec::new();
        let mut seen = BTreeSet::new();
        for backend in self.registry.iter() {
            // Two names of one storage (`sops`, `sops-nix`) are looked at once.
            if !seen.insert(backend.storage.as_str()) {
                continue;
            }
            let storing: Vec<(&SectionKind, &crate::registry::Scripts)> = backend
                .sections
                .iter()
                .filter(|(_, s)| s.enabled)
                .filter_map(|(k, s)| s.scripts.as_ref().map(|scripts| (k, scripts)))
                .collect();
            if storing.is_empty() {
                continue;
            }
            let used = plan
                .units()
                .any(|u| self.stores_in(&u.backend.name, backend));
            if storing.iter().any(|(_, s)| s.list.is_none()) {
                if used {
                    skipped.push(Skipped {
                        backend: backend.name.clone(),
                        reason: "it has no `list` and `remove` scripts, so what it stores cannot be enumerated".into(),
                    });
                }
                continue;
            }
            for (kind, scripts) in storing {
                let list = scripts.list.as_ref().expect("checked above");
                let result = match kind {
                    SectionKind::Shared => self.orphans_shared(model, plan, backend, list),
                    _ => self.orphans_per_target(model, plan, backend, *kind, list),
                };
                match result {
                    Ok(found) => orphans.extend(found),
                    Err(error) => errors.push(error),
                }
            }
        }
        match self.public_orphans(model, plan) {
            Ok(found) => orphans.extend(found),
            Err(error) => errors.push(error),
        }
        orphans.retain(|orphan| {
            let scope = orphan.target.as_deref().unwrap_or("shared");
            lock.get(scope, &orphan.artifact).is_some()
        });
        (orphans, skipped, errors)
    }

    /// Directories of the public store that no declared public file needs.
    /// Links and hidden entries (leftovers of killed runs) are never orphans.
    fn public_orphans(&self, model: &Model, plan: &Plan<'_>) -> Result<Vec<Orphan>, EngineError> {
        let root = &self.settings.root;
        let root_dir = Dir::open_root(root).map_err(io(format!("open `{}`", root.display())))?;
        let mut found = Vec::new();
        let mut scan = |context: Context, target: Option<&Target>| -> Result<(), EngineError> {
            let relative = match target {
                Some(target) => crate::public::target_relative(&target.id),
                None => Path::new(crate::public::PUBLIC_DIR).join("shared"),
            };
            let path = root.join(&relative);
            let Some(dir) = root_dir
                .open(&relative)
                .map_err(io(format!("open `{}`", path.display())))?
            else {
                return Ok(());
            };
            let entries = dir
                .entries()
                .map_err(io(format!("read `{}`", path.display())))?;
            for (name, kind) in entries {
                // A nested environment's store (`public/tanka/prod/eu`) is not `prod`'s.
                if kind != FileType::Directory
                    || !crate::public::is_artifact_dir(&dir, &name)
                        .map_err(io(format!("read `{}`", path.join(&name).display())))?
                {
                    continue;
                }
                let name = name.to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let needed = plan.units().any(|u| {
                    u.name() == name
                        && crate::public::public_files(u).next().is_some()
                        && match (target, &u.targets) {
                            (Some(target), Targets::One(declared)) => declared.id == target.id,
                            (None, Targets::Shared(_)) => true,
                            _ => false,
                        }
                });
                if !needed {
                    found.push(Orphan {
                        backend: PUBLIC_STORE.to_owned(),
                        context,
                        target: target.map(|t| t.id.reference()),
                        artifact: name,
                    });
                }
            }
            Ok(())
        };
        for target in &model.targets {
            scan(target.id.kind.context(), Some(target))?;
        }
        scan(Context::Shared, None)?;
        Ok(found)
    }

    fn orphans_per_target(
        &self,
        model: &Model,
        plan: &Plan<'_>,
        backend: &Backend,
        kind: SectionKind,
        list: &crate::registry::Script,
    ) -> Result<Vec<Orphan>, EngineError> {
        let target_kind = match kind {
            SectionKind::Nixos => TargetKind::Nixos,
            SectionKind::Home => TargetKind::Home,
            SectionKind::Tanka => TargetKind::Tanka,
            SectionKind::Shared => unreachable!("handled by orphans_shared"),
        };
        let mut found = Vec::new();
        for target in model.targets.iter().filter(|t| t.id.kind == target_kind) {
            let declared = |u: &Unit<'_>| u.targets.one().is_some_and(|t| t.id == target.id);
            for artifact in self.undeclared(plan, backend, list, &Targets::One(target), declared)? {
                found.push(Orphan {
                    backend: backend.name.clone(),
                    context: target_kind.context(),
                    target: Some(target.id.reference()),
                    artifact,
                });
            }
        }
        Ok(found)
    }

    fn orphans_shared(
        &self,
        model: &Model,
        plan: &Plan<'_>,
        backend: &Backend,
        list: &crate::registry::Script,
    ) -> Result<Vec<Orphan>, EngineError> {
        // Every declared target, for their configuration (where the store is).
        if model.targets.is_empty() {
            return Ok(Vec::new());
        }
        let targets = Targets::Shared(model.targets.iter().collect());
        let declared = |u: &Unit<'_>| matches!(u.targets, Targets::Shared(_));
        Ok(self
            .undeclared(plan, backend, list, &targets, declared)?
            .into_iter()
            .map(|artifact| Orphan {
                backend: backend.name.clone(),
                context: Context::Shared,
                target: None,
                artifact,
            })
            .collect())
    }

    /// What `list` reports for `targets` that no unit (of this storage, matching `scoped`) declares.
    fn undeclared(
        &self,
        plan: &Plan<'_>,
        backend: &Backend,
        list: &crate::registry::Script,
        targets: &Targets<&Target>,
        scoped: impl Fn(&Unit<'_>) -> bool,
    ) -> Result<Vec<String>, EngineError> {
        let scope = Scope {
            artifact: None,
            targets,
            files: None,
        };
        let stored = script::list(&scope, backend, list, &self.script_env)?;
        let declared: BTreeSet<&str> = plan
            .units()
            .filter(|u| scoped(u) && self.stores_in(&u.backend.name, backend))
            .map(|u| u.name())
            .collect();
        Ok(stored
            .into_iter()
            .filter(|name| !declared.contains(name.as_str()))
            .collect())
    }

    /// Whether the backend named `name` stores where `backend` does.
    fn stores_in(&self, name: &str, backend: &Backend) -> bool {
        self.registry
            .get(name)
            .is_some_and(|b| b.storage == backend.storage)
    }

    /// Removes an orphan through its backend's `remove` script.
    pub fn remove_orphan(&self, model: &Model, orphan: &Orphan) -> Result<(), EngineError> {
        if orphan.backend == PUBLIC_STORE {
            let relative = match &orphan.target {
                Some(reference) => match model
                    .targets
                    .iter()
                    .find(|t| &t.id.reference() == reference)
                {
                    Some(target) => crate::public::target_relative(&target.id),
                    None => return Ok(()),
                },
                None => Path::new(crate::public::PUBLIC_DIR).join("shared"),
            };
            let root = &self.settings.root;
            let path = root.join(&relative).join(&orphan.artifact);
            let remove = || -> std::io::Result<()> {
                let Some(dir) = Dir::open_root(root)?.open(&relative)? else {
                    return Ok(());
                };
                // Only a real directory of the store is ours; a link is never followed.
                match dir.kind(&orphan.artifact)? {
                    None => Ok(()),
                    Some(FileType::Directory)
                        if crate::public::is_artifact_dir(&dir, orphan.artifact.as_ref())? =>
                    {
                        dir.remove(&orphan.artifact)
                    }
                    Some(FileType::Directory) => Err(std::io::Error::other(
                        "it holds directories (a nested environment's store), not an artifact's files",
                    )),
                    Some(_) => Err(std::io::Error::other("not a directory of the public store")),
                }
            };
            return remove().map_err(io(format!("remove `{}`", path.display())));
        }
        let backend = self
            .registry
            .get(&orphan.backend)
            .ok_or_else(|| EngineError::UnknownBackend(orphan.backend.clone()))?;
        let scripts = backend
            .section(orphan.context)
            .and_then(|s| s.scripts.as_ref())
            .ok_or_else(|| EngineError::Unsupported {
                backend: backend.name.clone(),
                context: orphan.context,
                section: SectionKind::for_context(orphan.context).key(),
            })?;
        let remove = scripts
            .remove
            .as_ref()
            .ok_or_else(|| EngineError::Unavailable {
                artifact: orphan.label(),
                reason: format!("backend `{}` has no remove script", backend.name),
            })?;
        let targets = match &orphan.target {
            Some(reference) => Targets::One(
                model
                    .targets
                    .iter()
                    .find(|t| &t.id.reference() == reference)
                    .ok_or_else(|| EngineError::Unavailable {
                        artifact: orphan.label(),
                        reason: format!("target `{reference}` is not declared"),
                    })?,
            ),
            None => Targets::Shared(model.targets.iter().collect()),
        };
        let scope = Scope {
            artifact: Some(&orphan.artifact),
            targets: &targets,
            files: None,
        };
        script::remove(&scope, backend, remove, &self.script_env)?;
        Ok(())
    }
}
