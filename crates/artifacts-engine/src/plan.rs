//! The plan: which (targets, artifact) units exist, in dependency order.
//!
//! A non-shared artifact gives one unit per declaring target. A shared
//! artifact gives one unit for all its targets (context `shared`): it is
//! generated once and serialized for all of them.
//!
//! It also says what the lock records for a unit ([`Unit::declared`]), how a
//! recorded entry compares with it ([`Declared::compare`]), and upgrades the
//! entries of a version-1 lock ([`Plan::upgrade_lock`]).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use artifacts_model::{Artifact, BackendChoice, Context, Model, Target, TargetId};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::lockfile::{Lock, LockEntry, Provenance};

/// A unit of a [`Plan`]: its place in dependency order, so a unit's
/// dependencies always have smaller ids. Only meaningful for the plan it
/// came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitId(pub(crate) usize);

/// Whom something is for: every target of a shared artifact, or exactly
/// one target. Nothing else can be expressed, so the context follows from
/// it: `shared`, or the one target's kind. A unit holds the model's targets
/// ([`Unit::targets`]); an in-process backend's call holds their
/// descriptions ([`crate::store::Call::targets`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Targets<T> {
    /// A shared artifact: all its targets (for listing and removing in the
    /// shared context, every declared target).
    Shared(Vec<T>),
    /// One target's own artifact.
    One(T),
}

impl<T> Targets<T> {
    /// Every target, in declaration order.
    pub fn as_slice(&self) -> &[T] {
        match self {
            Targets::Shared(targets) => targets,
            Targets::One(target) => std::slice::from_ref(target),
        }
    }

    /// Every target, in declaration order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.as_slice().iter()
    }

    /// The target, outside the shared context.
    pub fn one(&self) -> Option<&T> {
        match self {
            Targets::Shared(_) => None,
            Targets::One(target) => Some(target),
        }
    }

    /// The same shape with each target mapped.
    pub fn map<U>(&self, mut f: impl FnMut(&T) -> U) -> Targets<U> {
        match self {
            Targets::Shared(targets) => Targets::Shared(targets.iter().map(f).collect()),
            Targets::One(target) => Targets::One(f(target)),
        }
    }
}

impl<'a, T> IntoIterator for &'a Targets<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Targets<&Target> {
    /// `shared`, or the one target's kind.
    pub fn context(&self) -> Context {
        match self {
            Targets::Shared(_) => Context::Shared,
            Targets::One(target) => target.id.kind.context(),
        }
    }
}

/// One thing to check or generate.
#[derive(Debug, Clone)]
pub struct Unit<'m> {
    /// The artifact's declaration (the first target's, for shared artifacts).
    pub artifact: &'m Artifact,
    /// The declaring targets: every target of a shared artifact, or one.
    pub targets: Targets<&'m Target>,
    /// The backend and the rule that chose it.
    pub backend: BackendChoice,
    /// The units this one depends on.
    pub dependencies: Vec<UnitId>,
}

impl<'m> Unit<'m> {
    /// The artifact name.
    pub fn name(&self) -> &str {
        &self.artifact.name
    }

    /// The context scripts see (`shared` for shared artifacts).
    pub fn context(&self) -> Context {
        self.targets.context()
    }

    /// The lock scope: `kind/name` of the target, or `shared`.
    pub fn scope(&self) -> String {
        match &self.targets {
            Targets::Shared(_) => "shared".into(),
            Targets::One(target) => target.id.reference(),
        }
    }

    /// A short label for people: `nixos/m1 ssh` or `shared ca`.
    pub fn label(&self) -> String {
        format!("{} {}", self.scope(), self.artifact.name)
    }

    /// The same unit, stored by backend `name` instead of the declared one.
    pub fn with_backend(&self, name: &str) -> Unit<'m> {
        let mut unit = self.clone();
        unit.backend = BackendChoice {
            name: name.to_owned(),
            rule: artifacts_model::BackendRule::Artifact,
        };
        unit
    }

    /// The same unit with `target`'s own declaration of the artifact, which
    /// says where its files go there: the targets of a shared artifact
    /// declare its paths, owners and modes each for itself (a Home Manager
    /// user's are not a machine's). Unchanged when `target` does not declare it.
    pub fn declared_by(&self, target: &TargetId) -> Unit<'m> {
        let artifact = self
            .targets
            .iter()
            .find(|declaring| declaring.id == *target)
            .and_then(|declaring| declaring.artifacts.get(self.name()))
            .map_or(self.artifact, |artifact| &**artifact);
        Unit {
            artifact,
            ..self.clone()
        }
    }

    /// Whether the unit involves one of `targets` (all units when empty).
    pub fn involves_any(&self, targets: &[TargetId]) -> bool {
        targets.is_empty() || self.targets.iter().any(|t| targets.contains(&t.id))
    }

    /// What the lock records for the current declaration: the fingerprint
    /// of what makes the secret (generator content or store path, the files'
    /// names and `secret`, prompt names and types, the targets of a shared
    /// artifact), the placement (paths, owners, groups, modes: changing it
    /// never makes an artifact stale), and the generation of each dependency.
    /// The backend is not part of it: moving an artifact does not change it.
    pub fn declared(&self, plan: &Plan<'_>, lock: &Lock) -> Result<Declared, std::io::Error> {
        // A one-target unit's digests depend on its declaration alone, which
        // the targets of a shorthand share (one value, see `Target::artifacts`):
        // computed once per declaration, not once per target.
        let digests = match &self.targets {
            Targets::One(_) => {
                let key = std::ptr::from_ref(self.artifact) as usize;
                let known = plan.digests.read().ok().and_then(|d| d.get(&key).cloned());
                match known {
                    Some(digests) => digests,
                    None => {
                        let digests = self.digests(plan)?;
                        if let Ok(mut known) = plan.digests.write() {
                            known.insert(key, digests.clone());
                        }
                        digests
                    }
                }
            }
            Targets::Shared(_) => self.digests(plan)?,
        };
        Ok(Declared {
            by_hand: digests.by_hand,
            has_inputs: !self.artifact.inputs.is_empty(),
            fingerprint: digests.fingerprint,
            generator: digests.generator,
            placement: digests.placement,
            dependencies: self
                .dependencies
                .iter()
                .map(|&id| {
                    let dependency = plan.unit(id);
                    let generation = lock
                        .get(&dependency.scope(), dependency.name())
                        .and_then(|e| e.generated_at.as_deref().map(str::to_owned));
                    (dependency.label(), generation)
                })
                .collect(),
        })
    }

    /// How `entry` compares with the current declaration: as
    /// [`Declared::compare`] of [`Unit::declared`] says, without copying
    /// the digests a one-target unit's declaration shares (a fleet's check
    /// asks for every unit).
    pub fn compare_declared(
        &self,
        plan: &Plan<'_>,
        lock: &Lock,
        entry: &LockEntry,
    ) -> Result<Comparison, std::io::Error> {
        static NO_DEPENDENCIES: BTreeMap<String, Option<String>> = BTreeMap::new();
        if let Targets::One(_) = &self.targets
            && self.dependencies.is_empty()
            && let Ok(known) = plan.digests.read()
            && let Some(digests) = known.get(&(std::ptr::from_ref(self.artifact) as usize))
        {
            return Ok(DeclaredRef {
                fingerprint: &digests.fingerprint,
                by_hand: &digests.by_hand,
                generator: digests.generator.as_deref(),
                has_inputs: !self.artifact.inputs.is_empty(),
                placement: &digests.placement,
                dependencies: &NO_DEPENDENCIES,
            }
            .compare(entry));
        }
        Ok(self.declared(plan, lock)?.compare(entry))
    }

    /// The digests of [`Unit::declared`]: what the declaration alone decides.
    fn digests(&self, plan: &Plan<'_>) -> Result<Digests, std::io::Error> {
        #[derive(Serialize)]
        struct Secret<'a> {
            version: u32,
            generator: &'a str,
            files: BTreeMap<&'a str, bool>,
            prompts: Vec<(&'a str, &'static str)>,
            targets: Vec<String>,
        }
        #[derive(Serialize)]
        struct Placement<'a> {
            path: &'a str,
            owner: Option<&'a str>,
            group: Option<&'a str>,
            mode: String,
        }
        let generator = match &self.artifact.generator {
            Some(path) => Some(plan.generator_identity(path)?),
            None => None,
        };
        // Inputs are part of the generator: editing lib.sh changes what it makes.
        let generator = match (&generator, self.artifact.inputs.is_empty()) {
            (_, true) => generator,
            (generator, false) => {
                let inputs = plan.inputs_identity(self)?;
                let both = format!("{}\n{inputs}", generator.as_deref().unwrap_or(""));
                Some(format!("sha256:{}", hex::encode(Sha256::digest(both))))
            }
        };
        let secret = Secret {
            version: 2,
            generator: generator.as_deref().unwrap_or(""),
            files: self
                .artifact
                .files
                .iter()
                .map(|(name, spec)| (name.as_str(), spec.secret))
                .collect(),
            prompts: self.prompt_kinds(),
            targets: self.shared_targets(),
        };
        let placement: BTreeMap<&str, Placement<'_>> = self
            .artifact
            .files
            .iter()
            .map(|(name, spec)| {
                let placement = Placement {
                    path: &spec.path,
                    owner: spec.owner.as_deref(),
                    group: spec.group.as_deref(),
                    mode: spec.mode.to_string(),
                };
                (name.as_str(), placement)
            })
            .collect();
        // A value put in by hand was made by no generator from no prompts:
        // only the files it must consist of and who knew it count.
        #[derive(Serialize)]
        struct ByHand<'a> {
            version: u32,
            by_hand: bool,
            files: &'a BTreeMap<&'a str, bool>,
            targets: &'a [String],
        }
        let by_hand = digest(&ByHand {
            version: 2,
            by_hand: true,
            files: &secret.files,
            targets: &secret.targets,
        });
        Ok(Digests {
            by_hand,
            fingerprint: digest(&secret),
            generator,
            placement: digest(&placement),
        })
    }

    fn prompt_kinds(&self) -> Vec<(&str, &'static str)> {
        self.artifact
            .prompts
            .iter()
            .map(|(k, p)| (k.as_str(), p.kind.as_str()))
            .collect()
    }

    fn shared_targets(&self) -> Vec<String> {
        match &self.targets {
            Targets::Shared(targets) => {
                let mut refs: Vec<String> = targets.iter().map(|t| t.id.reference()).collect();
                refs.sort();
                refs
            }
            Targets::One(_) => Vec::new(),
        }
    }

    /// The fingerprint version 1 of the lock recorded: one hash over the whole
    /// declaration, placement and `backend` included, and the dependencies'
    /// version-1 entries. Only for reading old lock files: keep it exactly as
    /// it was.
    fn fingerprint_v1(
        &self,
        plan: &Plan<'_>,
        lock: &Lock,
        backend: &str,
    ) -> Result<String, std::io::Error> {
        // The file specification as version 1 serialized it (field order matters).
        #[derive(Serialize)]
        struct FileV1<'a> {
            path: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            owner: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            group: Option<&'a str>,
            mode: String,
            secret: bool,
        }
        #[derive(Serialize)]
        struct DeclarationV1<'a> {
            version: u32,
            generator: String,
            files: BTreeMap<&'a str, FileV1<'a>>,
            prompts: Vec<(&'a str, &'static str)>,
            backend: &'a str,
            targets: Vec<String>,
            dependencies: BTreeMap<String, Option<(String, String)>>,
        }
        let generator = match &self.artifact.generator {
            Some(path) => plan.generator_identity(path)?,
            None => String::new(),
        };
        let declaration = DeclarationV1 {
            version: 1,
            generator,
            files: self
                .artifact
                .files
                .iter()
                .map(|(name, spec)| {
                    let file = FileV1 {
                        path: &spec.path,
                        owner: spec.owner.as_deref(),
                        group: spec.group.as_deref(),
                        mode: spec.mode.to_string(),
                        secret: spec.secret,
                    };
                    (name.as_str(), file)
                })
                .collect(),
            prompts: self.prompt_kinds(),
            backend,
            targets: self.shared_targets(),
            dependencies: self
                .dependencies
                .iter()
                .map(|&id| {
                    let dependency = plan.unit(id);
                    let entry = lock.get(&dependency.scope(), dependency.name()).map(|e| {
                        (
                            e.fingerprint.to_string(),
                            e.generated_at.as_deref().unwrap_or_default().to_owned(),
                        )
                    });
                    (dependency.label(), entry)
                })
                .collect(),
        };
        Ok(digest(&declaration))
    }
}

/// SHA-256 over the JSON form of `value`, as `sha256:<hex>`.
fn digest(value: &impl Serialize) -> String {
    /// Hashes what is written to it: the JSON is never held whole.
    struct Hashing(Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut hashing = Hashing(Sha256::new());
    serde_json::to_writer(&mut hashing, value).expect("declaration serializes");
    sha256_text(&hashing.0.finalize())
}

/// `sha256:<hex>` of a digest (what `hex::encode` gives, without its
/// per-character iterator: `check` makes three per unit).
fn sha256_text(digest: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(7 + 2 * digest.len());
    text.push_str("sha256:");
    for byte in digest {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    text
}

/// The part of [`Declared`] a declaration alone decides.
#[derive(Debug, Clone)]
struct Digests {
    fingerprint: String,
    by_hand: String,
    generator: Option<String>,
    placement: String,
}

/// What the lock would record for a unit's current declaration (see [`Unit::declared`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// What makes the secret.
    pub fingerprint: String,
    /// What a value put in by hand must match: the files and the targets of a shared artifact.
    pub by_hand: String,
    /// The generator's identity, if it has one (its inputs included).
    pub generator: Option<String>,
    /// Whether the generator declares inputs (which its identity covers).
    pub has_inputs: bool,
    /// Where the files go.
    pub placement: String,
    /// Each dependency's generation, by label.
    pub dependencies: BTreeMap<String, Option<String>>,
}

/// How a lock entry compares with the current declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// What makes the secret is unchanged (the placement may have changed).
    Current {
        /// Whether paths, owners, groups or modes changed (never stale: the
        /// files are placed at activation).
        placement_changed: bool,
    },
    /// The declaration of the secret changed: `accept` keeps what is
    /// stored, regenerating replaces it.
    Changed(String),
    /// A dependency was regenerated since: only regenerating helps.
    DependencyRegenerated(String),
}

impl Declared {
    /// The lock entry recording this declaration for something stored by `backend`.
    pub fn entry(self, backend: &str, generated_at: Option<Arc<str>>) -> LockEntry {
        self.entry_from(backend, generated_at, None)
    }

    /// The lock entry for a value that came in as `provenance` says (`None`:
    /// generated), fingerprinted accordingly.
    pub fn entry_from(
        self,
        backend: &str,
        generated_at: Option<Arc<str>>,
        provenance: Option<Provenance>,
    ) -> LockEntry {
        LockEntry {
            fingerprint: match provenance {
                Some(_) => self.by_hand.into(),
                None => self.fingerprint.into(),
            },
            // A value put in by hand was made by no generator.
            generator: self
                .generator
                .filter(|_| provenance.is_none())
                .map(Into::into),
            provenance,
            placement: Some(self.placement.into()),
            backend: Some(backend.into()),
            dependencies: self.dependencies,
            generated_at,
            extra: BTreeMap::new(),
            incomplete: false,
        }
    }

    /// Compares with what the lock recorded. A value put in by hand is
    /// compared by its files and shared targets alone: no generator, prompt or
    /// dependency made it, so none of their changes makes it stale.
    pub fn compare(&self, entry: &LockEntry) -> Comparison {
        DeclaredRef {
            fingerprint: &self.fingerprint,
            by_hand: &self.by_hand,
            generator: self.generator.as_deref(),
            has_inputs: self.has_inputs,
            placement: &self.placement,
            dependencies: &self.dependencies,
        }
        .compare(entry)
    }
}

/// A [`Declared`], borrowed: what comparing it reads.
struct DeclaredRef<'a> {
    fingerprint: &'a str,
    by_hand: &'a str,
    generator: Option<&'a str>,
    has_inputs: bool,
    placement: &'a str,
    dependencies: &'a BTreeMap<String, Option<String>>,
}

impl DeclaredRef<'_> {
    /// See [`Declared::compare`].
    fn compare(&self, entry: &LockEntry) -> Comparison {
        let placement_changed = entry
            .placement
            .as_ref()
            .is_some_and(|p| **p != *self.placement);
        if let Some(provenance) = entry.provenance {
            if *entry.fingerprint != *self.by_hand {
                return Comparison::Changed(format!(
                    "the declared files or targets changed since the value was put in by hand ({})",
                    provenance.as_str()
                ));
            }
            return Comparison::Current { placement_changed };
        }
        if *entry.fingerprint != *self.fingerprint {
            let what = match &entry.generator {
                Some(recorded) if Some(&**recorded) != self.generator => {
                    if self.has_inputs {
                        "the generator or one of its inputs changed since generation"
                    } else {
                        "the generator changed since generation"
                    }
                }
                Some(_) => "the declared files, prompts or targets changed since generation",
                None => "the declaration changed since generation",
            };
            return Comparison::Changed(what.to_owned());
        }
        let recorded: Vec<&String> = entry.dependencies.keys().collect();
        let current: Vec<&String> = self.dependencies.keys().collect();
        if recorded != current {
            return Comparison::Changed(
                "the declared dependencies changed since generation".into(),
            );
        }
        if let Some((label, _)) = self
            .dependencies
            .iter()
            .find(|(label, generation)| entry.dependencies.get(*label) != Some(generation))
        {
            return Comparison::DependencyRegenerated(format!(
                "dependency `{label}` was regenerated since"
            ));
        }
        Comparison::Current { placement_changed }
    }
}

/// Every unit of a model, dependencies before dependents.
#[derive(Debug)]
pub struct Plan<'m> {
    /// Units in topological order ([`UnitId`] is the position).
    units: Vec<Unit<'m>>,
    /// Generator identities already computed: one generator often serves
    /// hundreds of units, and checks run on several threads.
    generator_ids: Mutex<HashMap<PathBuf, String>>,
    /// Reverse dependency edges (indexes into `units`), for cascades; empty
    /// when no unit has dependencies.
    dependents: Vec<Vec<usize>>,
    /// [`Unit::declared`]'s digests of one-target units, by the address of
    /// the declaration (the model outlives the plan, so addresses are unique).
    /// Read by every checking thread for every unit: a read lock, not a mutex.
    digests: RwLock<HashMap<usize, Digests>>,
    /// Input identities already computed, by the declared list.
    input_ids: Mutex<HashMap<Vec<String>, String>>,
    /// The project root, which inputs are relative to.
    root: PathBuf,
    /// The names of the backends some unit is declared with.
    backends: std::collections::BTreeSet<String>,
}

/// The model could not be planned (validation should have caught this).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// No backend resolves for an artifact.
    #[error("{target}, artifact `{artifact}`: no backend chosen")]
    NoBackend {
        /// The target.
        target: TargetId,
        /// The artifact.
        artifact: String,
    },
    /// The dependency graph has a cycle.
    #[error("dependency cycle among: {}", .0.join(", "))]
    Cycle(Vec<String>),
}

impl<'m> Plan<'m> {
    /// The unit `id` stands for.
    ///
    /// # Panics
    ///
    /// If `id` comes from another plan with more units.
    pub fn unit(&self, id: UnitId) -> &Unit<'m> {
        &self.units[id.0]
    }

    /// Every unit and its id, dependencies before dependents.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (UnitId, &Unit<'m>)> + '_ {
        self.units.iter().enumerate().map(|(i, u)| (UnitId(i), u))
    }

    /// Every unit, dependencies before dependents.
    pub fn units(&self) -> impl ExactSizeIterator<Item = &Unit<'m>> + '_ {
        self.units.iter()
    }

    /// Whether some unit is declared with the backend called `name`.
    pub fn uses_backend(&self, name: &str) -> bool {
        self.backends.contains(name)
    }

    /// Builds the plan of a validated model.
    pub fn new(model: &'m Model) -> Result<Plan<'m>, PlanError> {
        let declared = model.targets.iter().map(|t| t.artifacts.len()).sum();
        let mut units: Vec<Unit<'m>> = Vec::with_capacity(declared);
        for group in model.shared_groups() {
            let (first_target, first) = group.members[0];
            let backend =
                model
                    .resolve_backend(first_target, first)
                    .ok_or_else(|| PlanError::NoBackend {
                        target: first_target.id.clone(),
                        artifact: first.name.clone(),
                    })?;
            units.push(Unit {
                artifact: first,
                targets: Targets::Shared(group.members.iter().map(|(t, _)| *t).collect()),
                backend,
                dependencies: Vec::new(),
            });
        }
        for target in &model.targets {
            for artifact in target.artifacts.values().filter(|a| !a.shared) {
                let backend = model.resolve_backend(target, artifact).ok_or_else(|| {
                    PlanError::NoBackend {
                        target: target.id.clone(),
                        artifact: artifact.name.clone(),
                    }
                })?;
                units.push(Unit {
                    artifact,
                    targets: Targets::One(target),
                    backend,
                    dependencies: Vec::new(),
                });
            }
        }
        // Without dependencies (most fleets) declaration order is the order:
        // no index, no sorting, no reverse edges to allocate.
        let dependents = if units.iter().any(|u| !u.artifact.dependencies.is_empty()) {
            order_by_dependencies(&mut units)?
        } else {
            Vec::new()
        };
        // One name per backend, copied once (not once per unit); inserted
        // one by one, as a collected set would first sort all the units'.
        let mut backends = std::collections::BTreeSet::new();
        for unit in &units {
            if !backends.contains(unit.backend.name.as_str()) {
                backends.insert(unit.backend.name.clone());
            }
        }
        Ok(Plan {
            backends,
            dependents,
            units,
            generator_ids: Mutex::new(HashMap::new()),
            digests: RwLock::new(HashMap::new()),
            input_ids: Mutex::new(HashMap::new()),
            root: model.root.clone(),
        })
    }

    /// The identity of a unit's inputs, once per plan and list.
    fn inputs_identity(&self, unit: &Unit<'_>) -> Result<String, std::io::Error> {
        let inputs = &unit.artifact.inputs;
        if let Some(known) = self
            .input_ids
            .lock()
            .ok()
            .and_then(|ids| ids.get(inputs).cloned())
        {
            return Ok(known);
        }
        let entries =
            crate::inputs::read(&self.root, unit.name(), inputs).map_err(std::io::Error::other)?;
        let id = crate::inputs::identity(&entries);
        if let Ok(mut ids) = self.input_ids.lock() {
            ids.insert(inputs.clone(), id.clone());
        }
        Ok(id)
    }

    /// A store path identifies its content; anything else is hashed, once per plan.
    fn generator_identity(&self, path: &Path) -> Result<String, std::io::Error> {
        if path.starts_with("/nix/store") {
            return Ok(path.display().to_string());
        }
        if let Some(known) = self
            .generator_ids
            .lock()
            .ok()
            .and_then(|ids| ids.get(path).cloned())
        {
            return Ok(known);
        }
        let content = std::fs::read(path)?;
        let id = format!("sha256:{}", hex::encode(Sha256::digest(&content)));
        if let Ok(mut ids) = self.generator_ids.lock() {
            ids.insert(path.to_owned(), id.clone());
        }
        Ok(id)
    }

    /// Upgrades the entries of a version-1 lock: an entry whose version-1
    /// fingerprint matches the current declaration with one of `backends`
    /// (the declared one first: a backend switch may already be declared)
    /// becomes a version-2 entry recording that backend, keeping its
    /// generation time. Other entries keep their old fingerprint (stale).
    pub fn upgrade_lock(&self, lock: &mut Lock, backends: &[String]) {
        if !lock.is_legacy() {
            return;
        }
        let original = lock.clone();
        // Plan order is dependency order: a dependency's upgraded entry keeps
        // its generation time, which is all a dependent's entry records of it.
        for unit in &self.units {
            let Some(old) = original.get(&unit.scope(), unit.name()) else {
                continue;
            };
            let candidates = std::iter::once(unit.backend.name.as_str())
                .chain(backends.iter().map(String::as_str));
            let matching = candidates
                .into_iter()
                .find(|backend| {
                    unit.fingerprint_v1(self, &original, backend)
                        .is_ok_and(|f| *f == *old.fingerprint)
                })
                .map(str::to_owned);
            let (Some(backend), Ok(declared)) = (matching, unit.declared(self, lock)) else {
                continue;
            };
            let mut entry: LockEntry = declared.entry(&backend, old.generated_at.clone());
            entry.extra = old.extra.clone();
            lock.set(&unit.scope(), unit.name(), entry);
        }
        lock.set_upgraded();
    }

    /// The units that depend, directly or not, on unit `id`, in plan order.
    pub fn dependents_of(&self, id: UnitId) -> Vec<UnitId> {
        let mut found = vec![false; self.units.len()];
        let mut stack = vec![id];
        while let Some(current) = stack.pop() {
            for &dependent in self.dependents(current) {
                if !found[dependent] {
                    found[dependent] = true;
                    stack.push(UnitId(dependent));
                }
            }
        }
        (0..self.units.len())
            .filter(|&i| found[i])
            .map(UnitId)
            .collect()
    }

    /// The units depending directly on unit `id` (indexes into `units`).
    fn dependents(&self, id: UnitId) -> &[usize] {
        self.dependents.get(id.0).map_or(&[], Vec::as_slice)
    }

    /// Whether any unit depends directly on unit `id`.
    pub(crate) fn has_dependents(&self, id: UnitId) -> bool {
        !self.dependents(id).is_empty()
    }
}

impl<'m> std::ops::Index<UnitId> for Plan<'m> {
    type Output = Unit<'m>;

    fn index(&self, id: UnitId) -> &Unit<'m> {
        self.unit(id)
    }
}

/// Resolves each unit's dependencies to units and puts `units` in
/// dependency order (by declaration among the ready ones); returns the
/// reverse edges of the new order.
fn order_by_dependencies(units: &mut [Unit<'_>]) -> Result<Vec<Vec<usize>>, PlanError> {
    // (declaring target, or `None` for shared; name) -> unit index
    let index: HashMap<(Option<&TargetId>, &str), usize> = units
        .iter()
        .enumerate()
        .map(|(i, unit)| {
            let scope = match &unit.targets {
                Targets::Shared(_) => None,
                Targets::One(target) => Some(&target.id),
            };
            ((scope, unit.name()), i)
        })
        .collect();
    let resolved: Vec<Vec<UnitId>> = units
        .iter()
        .map(|unit| {
            let scope = match &unit.targets {
                Targets::Shared(_) => None,
                Targets::One(target) => Some(&target.id),
            };
            unit.artifact
                .dependencies
                .iter()
                .filter_map(|name| {
                    index
                        .get(&(scope, name.as_str()))
                        .or_else(|| index.get(&(None, name.as_str())))
                        .map(|&i| UnitId(i))
                })
                .collect()
        })
        .collect();
    drop(index);
    for (unit, dependencies) in units.iter_mut().zip(resolved) {
        unit.dependencies = dependencies;
    }
    let order = topological_order(units)?;
    // Re-index dependencies into the new order.
    let mut position = vec![0; units.len()];
    for (new, &old) in order.iter().enumerate() {
        position[old] = new;
    }
    for unit in units.iter_mut() {
        for dependency in &mut unit.dependencies {
            *dependency = UnitId(position[dependency.0]);
        }
    }
    // Moved in place, each straight to its position: a fleet's units
    // are megabytes, and every copy of them is fresh memory.
    let mut destination = position;
    for at in 0..units.len() {
        while destination[at] != at {
            let to = destination[at];
            units.swap(at, to);
            destination.swap(at, to);
        }
    }
    Ok(reverse_edges(units))
}

/// Kahn's algorithm, stable: among ready units, declaration order wins.
/// O((N + E) log N): reverse edges, and a min-heap of the ready units.
fn topological_order(units: &[Unit<'_>]) -> Result<Vec<usize>, PlanError> {
    let dependents = reverse_edges(units);
    let mut remaining: Vec<usize> = units.iter().map(|u| u.dependencies.len()).collect();
    let mut ready: BinaryHeap<Reverse<usize>> = (0..units.len())
        .filter(|&i| remaining[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(units.len());
    while let Some(Reverse(next)) = ready.pop() {
        order.push(next);
        // One entry per dependency edge, so a repeated dependency counts twice
        // here as it does in `remaining`.
        for &dependent in &dependents[next] {
            remaining[dependent] -= 1;
            if remaining[dependent] == 0 {
                ready.push(Reverse(dependent));
            }
        }
    }
    if order.len() < units.len() {
        let stuck = (0..units.len())
            .filter(|&i| remaining[i] > 0)
            .map(|i| units[i].label())
            .collect();
        return Err(PlanError::Cycle(stuck));
    }
    Ok(order)
}

/// For each unit, the units that list it as a dependency (once per listing).
fn reverse_edges(units: &[Unit<'_>]) -> Vec<Vec<usize>> {
    let mut dependents = vec![Vec::new(); units.len()];
    for (i, unit) in units.iter().enumerate() {
        for &dependency in &unit.dependencies {
            dependents[dependency.0].push(i);
        }
    }
    dependents
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed digest is the SHA-256 of the JSON, as the lock recorded it before.
    #[test]
    fn digest_is_sha256_of_the_json() {
        let value = serde_json::json!({"version": 2, "files": {"a": true}, "x": "é\""});
        let json = serde_json::to_vec(&value).unwrap();
        assert_eq!(
            digest(&value),
            format!("sha256:{}", hex::encode(Sha256::digest(&json)))
        );
    }
}
