//! The backends shipped inside the binary: `agenix`, `sops-nix` (also named
//! `sops`) and `dummy`.
//!
//! They follow the same contract as any backend (see BACKEND_GUIDE.md): the
//! engine runs them as `$ARTIFACTS __backend NAME SCRIPT` with the contract's
//! environment, and the wrapper scripts in `backends/<name>/` do the same, so
//! a copied `backend.toml` behaves exactly like the built-in entry. They need
//! no jq, age or sops: encryption comes from `artifacts-crypto`.
//!
//! Exit codes: `check` 0 stored, 1 missing, 3 recipients changed, 2 error;
//! `writable` (asked before generating) 0 yes, 1 no identity for the store, 2 error;
//! `serialize`/`deserialize` 0 success, 1 failure. Errors go to stderr and
//! never contain secret values.

mod agenix;
mod contract;
mod sops;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::backend::{Backend, Script, Scripts, Section, SectionKind};

pub use contract::{Call, ShippedError};

/// The shipped backends, as registry entries; a `backend.toml` entry of the
/// same name overrides them.
pub fn backends() -> Vec<Backend> {
    // `storage`: where the files are; `sops` is another name of `sops-nix`.
    let storing =
        |name: &'static str, storage: &str, kinds: &[SectionKind], config_keys: &[&str]| Backend {
            name: name.to_owned(),
            storage: storage.to_owned(),
            defined_in: PathBuf::from("<shipped>"),
            sections: kinds
                .iter()
                .map(|&kind| {
                    let scripts = Scripts {
                        check: Script::Shipped {
                            backend: name,
                            script: "check",
                        },
                        serialize: Script::Shipped {
                            backend: name,
                            script: "serialize",
                        },
                        deserialize: Some(Script::Shipped {
                            backend: name,
                            script: "deserialize",
                        }),
                        list: Some(Script::Shipped {
                            backend: name,
                            script: "list",
                        }),
                        remove: Some(Script::Shipped {
                            backend: name,
                            script: "remove",
                        }),
                    };
                    (
                        kind,
                        Section {
                            enabled: true,
                            scripts: Some(scripts),
                        },
                    )
                })
                .collect(),
            config_keys: config_keys.iter().map(|k| k.to_string()).collect(),
        };
    use SectionKind::{Home, Nixos, Shared, Tanka};
    vec![
        storing(
            "agenix",
            "agenix",
            &[Nixos, Home, Shared],
            &["agenix", "sops-nix"],
        ),
        storing(
            "sops-nix",
            "sops-nix",
            &[Nixos, Home, Shared, Tanka],
            &["sops-nix", "agenix"],
        ),
        storing(
            "sops",
            "sops-nix",
            &[Nixos, Home, Shared, Tanka],
            &["sops", "sops-nix", "agenix"],
        ),
        Backend {
            name: "dummy".to_owned(),
            storage: "dummy".to_owned(),
            defined_in: PathBuf::from("<shipped>"),
            sections: BTreeMap::from([
                (
                    Nixos,
                    Section {
                        enabled: true,
                        scripts: None,
                    },
                ),
                (
                    Home,
                    Section {
                        enabled: true,
                        scripts: None,
                    },
                ),
            ]),
            config_keys: vec!["dummy".to_owned()],
        },
    ]
}

/// Runs a shipped backend's script in this process, reading the contract's
/// environment; returns the exit code.
pub fn run(backend: &str, script: &str) -> i32 {
    // Their exit codes carry an answer: a failure is 2, not 1.
    let is_check = script == "check" || script == "writable";
    let result = Call::from_env().and_then(|call| match (backend, script) {
        ("agenix", "check") => agenix::check(&call),
        ("agenix", "serialize") => agenix::serialize(&call).map(|()| 0),
        ("agenix", "deserialize") => agenix::deserialize(&call).map(|()| 0),
        ("agenix", "list") => agenix::list(&call).map(|()| 0),
        ("agenix", "remove") => agenix::remove(&call).map(|()| 0),
        // Encrypting to recipients needs no identity.
        ("agenix", "writable") => Ok(0),
        ("sops-nix" | "sops", "check") => sops::check(&call),
        ("sops-nix" | "sops", "serialize") => sops::serialize(&call).map(|()| 0),
        ("sops-nix" | "sops", "deserialize") => sops::deserialize(&call).map(|()| 0),
        ("sops-nix" | "sops", "list") => sops::list(&call).map(|()| 0),
        ("sops-nix" | "sops", "remove") => sops::remove(&call).map(|()| 0),
        ("sops-nix" | "sops", "writable") => sops::writable(&call),
        _ => Err(ShippedError::Usage(format!(
            "no shipped backend script `{backend} {script}` (backends: agenix, sops-nix, sops; scripts: check, serialize, deserialize)"
        ))),
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("{backend} {script}: {}", crate::error_chain(&error));
            if let Some(hint) = error.hint() {
                eprintln!("hint: {hint}");
            }
            if is_check { 2 } else { 1 }
        }
    }
}
