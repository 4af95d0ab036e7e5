//! The backends shipped with `artifacts`: `agenix`, `sops-nix` (also named
//! `sops`), `openbao` (also named `vault`) and `dummy`, implementing the engine's one in-process backend
//! trait, [`artifacts_engine::store::StoreBackend`].
//!
//! Which part do you need?
//!
//! * Registering them: [`backends`] gives the registry entries (a
//!   `backend.toml` entry of the same name overrides them); the binary adds
//!   them with [`artifacts_engine::BackendRegistry::add_fallback`].
//! * An earlier version of an openbao artifact: [`openbao_read_version`].
//! * SOPS files whose data key is wrapped by Vault/OpenBao transit
//!   (`hc_vault`): [`transit::Transit`], the data-key wrapper to hand to
//!   `artifacts_crypto::sops`.
//! * Calling one by name, as `artifacts __backend NAME SCRIPT` does for the
//!   wrapper scripts in `backends/<name>/`: [`get`], then the trait's methods.
//!
//! They need no jq, age or sops: encryption comes from `artifacts-crypto`.
//! Stores are written without following links ([`artifacts_os::fs::Dir`]);
//! errors never contain secret values. `dummy` stores nothing (its sections
//! have no scripts), so it has no implementation.

#![deny(missing_docs)]

mod agenix;
mod cache;
mod call;
pub mod openbao;
mod sops;
pub mod transit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use artifacts_engine::backend::{Backend, Script, Scripts, Section, SectionKind};
use artifacts_engine::store::{self, Checked, InProcess, StoreBackend, StoreError, Writable};

use cache::Cache;
use call::Call;
pub use call::Error;

/// The shipped backends, as registry entries.
pub fn backends() -> Vec<Backend> {
    use SectionKind::{Home, Nixos, Shared, Tanka};
    // One cache per backend instance, so per run: the binary builds them once.
    let agenix = InProcess(Arc::new(Agenix::default()));
    let sops = InProcess(Arc::new(SopsNix::default()));
    // One object for both names: its listings and clients serve both.
    let bao = InProcess(Arc::new(Openbao::default()));
    vec![
        storing(
            "agenix",
            "agenix",
            &[Nixos, Home, Shared],
            &["agenix", "sops-nix"],
            agenix,
        ),
        storing(
            "sops-nix",
            "sops-nix",
            &[Nixos, Home, Shared, Tanka],
            &["sops-nix", "agenix"],
            sops.clone(),
        ),
        // Another name of `sops-nix`: same storage, its own config key first.
        storing(
            "sops",
            "sops-nix",
            &[Nixos, Home, Shared, Tanka],
            &["sops", "sops-nix", "agenix"],
            sops,
        ),
        storing(
            "openbao",
            "openbao",
            &[Nixos, Home, Shared, Tanka],
            &["openbao", "vault"],
            bao.clone(),
        ),
        // Another name of `openbao`: same storage, its own config key first.
        storing(
            "vault",
            "openbao",
            &[Nixos, Home, Shared, Tanka],
            &["vault", "openbao"],
            bao,
        ),
        Backend {
            name: "dummy".to_owned(),
            storage: "dummy".to_owned(),
            defined_in: PathBuf::from("<shipped>"),
            sections: [Nixos, Home]
                .into_iter()
                .map(|kind| {
                    let passthrough = Section {
                        enabled: true,
                        scripts: None,
                    };
                    (kind, passthrough)
                })
                .collect::<BTreeMap<_, _>>(),
            config_keys: vec!["dummy".to_owned()],
            in_process: None,
        },
    ]
}

/// A backend storing in every section of `kinds` through `implementation`.
fn storing(
    name: &str,
    storage: &str,
    kinds: &[SectionKind],
    config_keys: &[&str],
    implementation: InProcess,
) -> Backend {
    let script = |script: &'static str| Script::InProcess {
        backend: name.to_owned(),
        script,
    };
    let scripts = Scripts {
        check: script("check"),
        serialize: script("serialize"),
        deserialize: Some(script("deserialize")),
        list: Some(script("list")),
        remove: Some(script("remove")),
        writable: Some(script("writable")),
        // In this process a check costs no start-up: nothing to batch.
        check_all: None,
    };
    Backend {
        name: name.to_owned(),
        storage: storage.to_owned(),
        defined_in: PathBuf::from("<shipped>"),
        sections: kinds
            .iter()
            .map(|&kind| {
                let section = Section {
                    enabled: true,
                    scripts: Some(scripts.clone()),
                };
                (kind, section)
            })
            .collect(),
        config_keys: config_keys.iter().map(|k| k.to_string()).collect(),
        in_process: Some(implementation),
    }
}

/// The shipped backend called `name` that stores something (`dummy` does not).
pub fn get(name: &str) -> Option<Arc<dyn StoreBackend>> {
    backends()
        .into_iter()
        .find(|backend| backend.name == name)
        .and_then(|backend| backend.in_process)
        .map(|implementation| implementation.0)
}

/// Reads version `version` of an artifact stored by the `openbao` backend
/// (`show --version N`) into `out`: its secret files, mode 0600.
pub fn openbao_read_version(
    call: &store::Call,
    out: &Path,
    version: u64,
) -> Result<(), StoreError> {
    with(&Arc::default(), call, |call| {
        openbao::Openbao::default().deserialize_version(call, out, Some(version))
    })
}

/// Reads an openbao artifact's secret files as the host (its AppRole), for
/// `artifacts activate`.
pub fn openbao_host_read(call: &store::Call) -> Result<openbao::SecretFiles, StoreError> {
    with(&Arc::default(), call, |call| {
        openbao::Openbao::default().host_read(call)
    })
}

/// The server address, KV mount and entry path of an openbao artifact,
/// for `artifacts openbao policies`.
pub fn openbao_entry(call: &store::Call) -> Result<(String, String, String), StoreError> {
    with(&Arc::default(), call, openbao::entry_of)
}

/// Runs `f` on the backend's view of `call`; an error as the engine takes
/// it, with its suggested fix.
fn with<T>(
    cache: &Arc<Cache>,
    call: &store::Call,
    f: impl FnOnce(&Call) -> Result<T, Error>,
) -> Result<T, StoreError> {
    Call::new(call, cache)
        .and_then(|call| f(&call))
        .map_err(store_error)
}

/// [`with`] for a batch: each call as the shipped backends see it, with its `$out`.
fn with_all<T>(
    cache: &Arc<Cache>,
    calls: &[(&store::Call, &Path)],
    f: impl FnOnce(&[(&Call, &Path)]) -> Result<T, Error>,
) -> Result<T, StoreError> {
    let views = calls
        .iter()
        .map(|(call, _)| Call::new(call, cache))
        .collect::<Result<Vec<Call>, Error>>()
        .map_err(store_error)?;
    let pairs: Vec<(&Call, &Path)> = views
        .iter()
        .zip(calls)
        .map(|(view, (_, out))| (view, *out))
        .collect();
    f(&pairs).map_err(store_error)
}

/// A shipped backend's error as the engine takes it, with its suggested fix.
fn store_error(error: Error) -> StoreError {
    let hint = error.hint();
    StoreError::new(error).with_hint(hint)
}

/// agenix: one age file per secret file (see the `agenix` module).
#[derive(Debug, Default)]
struct Agenix {
    cache: Arc<Cache>,
}

impl StoreBackend for Agenix {
    fn check(&self, call: &store::Call) -> Result<Checked, StoreError> {
        with(&self.cache, call, agenix::check)
    }

    fn serialize(&self, call: &store::Call, out: &Path) -> Result<(), StoreError> {
        with(&self.cache, call, |call| agenix::serialize(call, out))
    }

    fn deserialize(&self, call: &store::Call, out: &Path) -> Result<(), StoreError> {
        with(&self.cache, call, |call| agenix::deserialize(call, out))
    }

    fn list(&self, call: &store::Call) -> Result<Vec<String>, StoreError> {
        with(&self.cache, call, agenix::list)
    }

    fn remove(&self, call: &store::Call) -> Result<(), StoreError> {
        with(&self.cache, call, agenix::remove)
    }

    /// The context directory (per target, or shared): the artifacts
    /// generated together for it are stored as one batch.
    fn store_file(&self, call: &store::Call) -> Option<PathBuf> {
        with(&self.cache, call, agenix::store_dir).ok()
    }

    fn serialize_all(&self, calls: &[(&store::Call, &Path)]) -> Result<(), StoreError> {
        with_all(&self.cache, calls, agenix::serialize_all)
    }

    fn rekey_all(
        &self,
        calls: &[store::Call],
        current: &[store::Call],
        jobs: usize,
    ) -> Option<Vec<Result<bool, StoreError>>> {
        let mut results: Vec<Option<Result<bool, StoreError>>> = Vec::new();
        let mut ready = Vec::new();
        for call in calls {
            match Call::new(call, &self.cache) {
                Ok(view) => {
                    ready.push(view);
                    results.push(None);
                }
                Err(error) => results.push(Some(Err(store_error(error)))),
            }
        }
        let current: Vec<Call> = current
            .iter()
            .filter_map(|call| Call::new(call, &self.cache).ok())
            .collect();
        let mut done = agenix::rekey_all(&ready, &current, jobs).into_iter();
        Some(
            results
                .into_iter()
                .map(|slot| {
                    slot.unwrap_or_else(|| {
                        done.next()
                            .expect("one result per call")
                            .map_err(store_error)
                    })
                })
                .collect(),
        )
    }

    /// Encrypting to recipients needs no identity.
    fn writable(&self, _call: &store::Call) -> Result<Writable, StoreError> {
        Ok(Writable::Yes)
    }
}

/// sops-nix: one SOPS file per target (see the `sops` module).
#[derive(Debug, Default)]
struct SopsNix {
    cache: Arc<Cache>,
}

impl StoreBackend for SopsNix {
    fn check(&self, call: &store::Call) -> Result<Checked, StoreError> {
        with(&self.cache, call, sops::check)
    }

    /// The artifacts of one target share its file: read once for all.
    fn check_target(
        &self,
        call: &store::Call,
        artifacts: &[store::Asked],
    ) -> Vec<Result<Checked, StoreError>> {
        match Call::new(call, &self.cache) {
            Ok(view) => sops::check_target(view, artifacts)
                .into_iter()
                .map(|answer| answer.map_err(store_error))
                .collect(),
            // The target's configuration is wrong: each artifact says so.
            Err(error) => {
                let (message, hint) = (error.to_string(), error.hint());
                artifacts
                    .iter()
                    .map(|_| Err(StoreError::new(message.clone()).with_hint(hint.clone())))
                    .collect()
            }
        }
    }

    fn serialize(&self, call: &store::Call, out: &Path) -> Result<(), StoreError> {
        with(&self.cache, call, |call| {
            sops::writing(call, || sops::serialize(call, out))
        })
    }

    fn deserialize(&self, call: &store::Call, out: &Path) -> Result<(), StoreError> {
        with(&self.cache, call, |call| sops::deserialize(call, out))
    }

    fn list(&self, call: &store::Call) -> Result<Vec<String>, StoreError> {
        with(&self.cache, call, sops::list)
    }

    fn remove(&self, call: &store::Call) -> Result<(), StoreError> {
        with(&self.cache, call, |call| {
            sops::writing(call, || sops::remove(call))
        })
    }

    fn writable(&self, call: &store::Call) -> Result<Writable, StoreError> {
        with(&self.cache, call, sops::writable)
    }

    /// The target's file (a shared artifact's own file, for shared ones).
    fn store_file(&self, call: &store::Call) -> Option<PathBuf> {
        with(&self.cache, call, sops::store_file).ok()
    }

    fn serialize_all(&self, calls: &[(&store::Call, &Path)]) -> Result<(), StoreError> {
        with_all(&self.cache, calls, |pairs| {
            let Some(&(first, _)) = pairs.first() else {
                return Ok(());
            };
            sops::writing(first, || sops::serialize_all(pairs))
        })
    }
}

/// openbao: one KV v2 entry per artifact (see the `openbao` module).
#[derive(Debug, Default)]
struct Openbao {
    store: openbao::Openbao,
    cache: Arc<Cache>,
}

impl StoreBackend for Openbao {
    fn check(&self, call: &store::Call) -> Result<Checked, StoreError> {
        with(&self.cache, call, |call| self.store.check(call))
    }

    fn serialize(&self, call: &store::Call, out: &Path) -> Result<(), StoreError> {
        with(&self.cache, call, |call| self.store.serialize(call, out))
    }

    fn deserialize(&self, call: &store::Call, out: &Path) -> Result<(), StoreError> {
        with(&self.cache, call, |call| self.store.deserialize(call, out))
    }

    fn list(&self, call: &store::Call) -> Result<Vec<String>, StoreError> {
        with(&self.cache, call, |call| self.store.list(call))
    }

    fn remove(&self, call: &store::Call) -> Result<(), StoreError> {
        with(&self.cache, call, |call| self.store.remove(call))
    }

    fn writable(&self, call: &store::Call) -> Result<Writable, StoreError> {
        with(&self.cache, call, |call| self.store.writable(call))
    }
}

#[cfg(test)]
mod tests;
