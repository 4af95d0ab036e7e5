//! The plan: which (targets, artifact) units exist, in dependency order.
//!
//! A non-shared artifact gives one unit per declaring target. A shared
//! artifact gives one unit for all its targets (context `shared`): it is
//! generated once and serialized for all of them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use artifacts_model::{Artifact, BackendChoice, Context, Model, Target, TargetId};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::lock::Lock;

/// One thing to check or generate.
#[derive(Debug, Clone)]
pub struct Unit<'m> {
    /// The artifact's declaration (the first target's, for shared artifacts).
    pub artifact: &'m Artifact,
    /// The context scripts see.
    pub context: Context,
    /// The declaring targets: one, or every target of a shared artifact.
    pub targets: Vec<&'m Target>,
    /// The backend and the rule that chose it.
    pub backend: BackendChoice,
    /// Indexes (into the plan) of the units this one depends on.
    pub dependencies: Vec<usize>,
}

impl Unit<'_> {
    /// The artifact name.
    pub fn name(&self) -> &str {
        &self.artifact.name
    }

    /// The lock scope: `kind/name` of the target, or `shared`.
    pub fn scope(&self) -> String {
        if self.context == Context::Shared {
            "shared".into()
        } else {
            self.targets[0].id.reference()
        }
    }

    /// A short label for people: `nixos/m1 ssh` or `shared ca`.
    pub fn label(&self) -> String {
        format!("{} {}", self.scope(), self.artifact.name)
    }

    /// Whether the unit involves one of `targets` (all units when empty).
    pub fn involves_any(&self, targets: &[TargetId]) -> bool {
        targets.is_empty() || self.targets.iter().any(|t| targets.contains(&t.id))
    }

    /// The declaration fingerprint: SHA-256 over the generator (content, or its
    /// store path), the files, prompt names and types, backend name, the set of
    /// targets of a shared artifact, and the lock entries of dependencies (so
    /// regenerating a dependency makes its dependents stale).
    pub fn fingerprint(&self, plan: &Plan<'_>, lock: &Lock) -> Result<String, std::io::Error> {
        #[derive(Serialize)]
        struct Declaration<'a> {
            version: u32,
            generator: String,
            files: BTreeMap<&'a str, &'a artifacts_model::FileSpec>,
            prompts: Vec<(&'a str, &'static str)>,
            backend: &'a str,
            targets: Vec<String>,
            dependencies: BTreeMap<String, Option<(String, String)>>,
        }
        let generator = match &self.artifact.generator {
            Some(path) => plan.generator_identity(path)?,
            None => String::new(),
        };
        let declaration = Declaration {
            version: 1,
            generator,
            files: self
                .artifact
                .files
                .iter()
                .map(|(k, v)| (k.as_str(), v))
                .collect(),
            prompts: self
                .artifact
                .prompts
                .iter()
                .map(|(k, p)| (k.as_str(), p.kind.as_str()))
                .collect(),
            backend: &self.backend.name,
            targets: if self.context == Context::Shared {
                let mut refs: Vec<String> = self.targets.iter().map(|t| t.id.reference()).collect();
                refs.sort();
                refs
            } else {
                Vec::new()
            },
            dependencies: self
                .dependencies
                .iter()
                .map(|&index| {
                    let dependency = &plan.units[index];
                    let entry = lock
                        .get(&dependency.scope(), dependency.name())
                        .map(|e| (e.fingerprint.clone(), e.generated_at.clone()));
                    (dependency.label(), entry)
                })
                .collect(),
        };
        let json = serde_json::to_vec(&declaration).expect("declaration serializes");
        Ok(format!("sha256:{}", hex::encode(Sha256::digest(&json))))
    }
}

/// Every unit of a model, dependencies before dependents.
#[derive(Debug)]
pub struct Plan<'m> {
    /// Units in topological order.
    pub units: Vec<Unit<'m>>,
    /// Generator identities already computed: one generator often serves
    /// hundreds of units, and checks run on several threads.
    generator_ids: Mutex<HashMap<PathBuf, String>>,
}

/// The model could not be planned (validation should have caught this).
#[derive(Debug, thiserror::Error)]
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
    /// Builds the plan of a validated model.
    pub fn new(model: &'m Model) -> Result<Plan<'m>, PlanError> {
        let mut units: Vec<Unit<'m>> = Vec::new();
        // (scope, name) -> unit index
        let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
        for group in model.shared_groups() {
            let (first_target, first) = group.members[0];
            let backend =
                model
                    .resolve_backend(first_target, first)
                    .ok_or_else(|| PlanError::NoBackend {
                        target: first_target.id.clone(),
                        artifact: first.name.clone(),
                    })?;
            index.insert(("shared".into(), first.name.clone()), units.len());
            units.push(Unit {
                artifact: first,
                context: Context::Shared,
                targets: group.members.iter().map(|(t, _)| *t).collect(),
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
                index.insert((target.id.reference(), artifact.name.clone()), units.len());
                units.push(Unit {
                    artifact,
                    context: target.id.kind.context(),
                    targets: vec![target],
                    backend,
                    dependencies: Vec::new(),
                });
            }
        }
        for unit in &mut units {
            let scope = unit.scope();
            unit.dependencies = unit
                .artifact
                .dependencies
                .iter()
                .filter_map(|name| {
                    index
                        .get(&(scope.clone(), name.clone()))
                        .or_else(|| index.get(&("shared".to_owned(), name.clone())))
                        .copied()
                })
                .collect();
        }
        let order = topological_order(&units)?;
        // Re-index dependencies into the new order.
        let mut position = vec![0; units.len()];
        for (new, &old) in order.iter().enumerate() {
            position[old] = new;
        }
        let mut slots: Vec<Option<Unit<'m>>> = units.into_iter().map(Some).collect();
        let units = order
            .iter()
            .map(|&old| {
                let mut unit = slots[old].take().expect("each unit placed once");
                unit.dependencies = unit.dependencies.iter().map(|&d| position[d]).collect();
                unit
            })
            .collect();
        Ok(Plan {
            units,
            generator_ids: Mutex::new(HashMap::new()),
        })
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

    /// Indexes of units that depend, directly or not, on unit `index`.
    pub fn dependents_of(&self, index: usize) -> Vec<usize> {
        let mut found = vec![false; self.units.len()];
        let mut stack = vec![index];
        while let Some(current) = stack.pop() {
            for (i, unit) in self.units.iter().enumerate() {
                if !found[i] && unit.dependencies.contains(&current) {
                    found[i] = true;
                    stack.push(i);
                }
            }
        }
        (0..self.units.len()).filter(|&i| found[i]).collect()
    }
}

/// Kahn's algorithm, stable: among ready units, declaration order wins.
fn topological_order(units: &[Unit<'_>]) -> Result<Vec<usize>, PlanError> {
    let mut remaining: Vec<usize> = units.iter().map(|u| u.dependencies.len()).collect();
    let mut done = vec![false; units.len()];
    let mut order = Vec::with_capacity(units.len());
    while order.len() < units.len() {
        let Some(next) = (0..units.len()).find(|&i| !done[i] && remaining[i] == 0) else {
            let stuck = (0..units.len())
                .filter(|&i| !done[i])
                .map(|i| units[i].label())
                .collect();
            return Err(PlanError::Cycle(stuck));
        };
        done[next] = true;
        order.push(next);
        for (i, unit) in units.iter().enumerate() {
            if !done[i] {
                remaining[i] -= unit.dependencies.iter().filter(|&&d| d == next).count();
            }
        }
    }
    Ok(order)
}
