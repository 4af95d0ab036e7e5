//! Declarations from a flake: one `nix eval --json` over every
//! `nixosConfigurations.<machine>` and `homeConfigurations.<user>` that has
//! `options.artifacts`, producing the JSON shape the model reads (see
//! `artifacts_model::load`). A machine is named by its
//! `config.artifacts.machineName` and a user by `config.artifacts.userName`
//! (the options the Nix modules use for `per-machine/<m>/` and
//! `per-user/<u>/`, so CLI and machine agree), falling back to the
//! `nixosConfigurations` / `homeConfigurations` attribute name for
//! configurations without those options. Two attributes with one name are
//! an error naming both.
//!
//! Not `nix build`, not tied to a system or to an input called `nixpkgs`: the
//! expression only reads `config.artifacts` of configurations the flake
//! already defines. The flake is addressed as `path:DIR`, so a flake inside a
//! git repository sees untracked files too. Generators that are derivations
//! are realised with one `nix build --no-link` before any of them runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use artifacts_model::{Model, ModelError};

use crate::script::stderr_suffix;
use artifacts_os::path::find_executable;
use artifacts_os::process::{ProcessBuilder, ProcessError, describe_status};

/// Keep in sync with the option tree of nix-modules/ (artifacts.store, .config, .default).
const EXPRESSION: &str = r#"
let
  flake = builtins.getFlake (builtins.getEnv "ARTIFACTS_FLAKE");
  withArtifacts = set: builtins.filter
    (name: let c = set.${name}; in builtins.isAttrs c && c ? options && c.options ? artifacts)
    (builtins.attrNames set);
  generatorOf = g: if g == null then null else if builtins.isAttrs g && g ? outPath then g.outPath else "${g}";
  drvsOf = g: if builtins.isAttrs g && g ? drvPath then [ g.drvPath ] else [ ];
  pick = names: attrs: builtins.listToAttrs (builtins.concatMap
    (n: if attrs ? ${n} then [ { name = n; value = attrs.${n}; } ] else [ ]) names);
  artifact = name: a: {
    inherit name;
    description = a.description or null;
    shared = a.shared or false;
    backend = a.backend or (a.serialization or null);
    generator = generatorOf (a.generator or null);
    prompts = builtins.mapAttrs (_: pick [ "description" "type" ]) (a.prompts or { });
    files = builtins.mapAttrs (_: pick [ "path" "owner" "group" "mode" "secret" ]) (a.files or { });
    dependencies = a.dependencies or [ ];
  };
  target = key: option: set: name: let c = set.${name}.config.artifacts or { }; in {
    ${key} = c.${option} or name;
    attribute = name;
    artifacts = builtins.mapAttrs artifact (c.store or { });
    config = c.config or { };
    default = { backend = c.default.backend or null; };
  };
  generators = set: names: builtins.concatMap
    (n: builtins.concatMap (a: drvsOf (a.generator or null))
      (builtins.attrValues (set.${n}.config.artifacts.store or { })))
    names;
  nixos = flake.nixosConfigurations or { };
  home = flake.homeConfigurations or { };
in {
  nixos = map (target "machine" "machineName" nixos) (withArtifacts nixos);
  home = map (target "user" "userName" home) (withArtifacts home);
  derivations = generators nixos (withArtifacts nixos) ++ generators home (withArtifacts home);
}
"#;

/// Why a flake could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlakeError {
    /// `nix` is not on PATH.
    #[error(
        "`nix` is not installed or not on PATH, and declarations come from the flake `{dir}` (install Nix, or declare artifacts in an artifacts.toml and pass --manifest)"
    )]
    NixMissing {
        /// The flake directory.
        dir: PathBuf,
    },
    /// nix could not be run or timed out.
    #[error("running nix for the flake `{dir}` failed")]
    Process {
        /// The flake directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: ProcessError,
    },
    /// Evaluation failed.
    #[error("evaluating the artifacts of the flake `{dir}` failed ({status}){}", stderr_suffix(.stderr))]
    Eval {
        /// The flake directory.
        dir: PathBuf,
        /// How nix ended.
        status: String,
        /// nix's stderr.
        stderr: String,
    },
    /// Building generator derivations failed.
    #[error("building the generators of the flake `{dir}` failed ({status}){}", stderr_suffix(.stderr))]
    Build {
        /// The flake directory.
        dir: PathBuf,
        /// How nix ended.
        status: String,
        /// nix's stderr.
        stderr: String,
    },
    /// Two configurations give the same machine or user name.
    #[error(
        "`{collection}.{first}` and `{collection}.{second}` of the flake `{dir}` are both named `{name}`; give each its own `artifacts.{option}`",
        dir = .dir.display(),
        collection = if *.home { "homeConfigurations" } else { "nixosConfigurations" },
        option = if *.home { "userName" } else { "machineName" },
    )]
    SameName {
        /// The flake directory.
        dir: PathBuf,
        /// Home Manager users (else NixOS machines).
        home: bool,
        /// The shared name.
        name: String,
        /// One attribute.
        first: String,
        /// The other.
        second: String,
    },
    /// The declarations are not acceptable.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Declarations of a flake, and the generator derivations to realise before generating.
#[derive(Debug)]
pub struct FlakeDeclarations {
    /// The model (validated against the known backends).
    pub model: Model,
    /// `.drv` paths of generators that are derivations.
    pub derivations: Vec<String>,
}

fn nix(dir: &Path, timeout: Option<Duration>) -> Result<ProcessBuilder, FlakeError> {
    let nix = find_executable("nix").ok_or_else(|| FlakeError::NixMissing {
        dir: dir.to_owned(),
    })?;
    let mut builder = ProcessBuilder::new(nix);
    builder
        .cwd(dir)
        .timeout(timeout)
        .args(["--extra-experimental-features", "nix-command flakes"])
        // No network is a normal state for secret generation; don't wait on caches.
        .args(["--option", "substituters", ""]);
    Ok(builder)
}

/// Evaluates the flake in `dir` (absolute) and loads its declarations.
pub fn load(
    dir: &Path,
    known_backends: &[&str],
    timeout: Option<Duration>,
) -> Result<FlakeDeclarations, FlakeError> {
    let mut eval = nix(dir, timeout)?;
    eval.args(["eval", "--json", "--impure", "--expr", EXPRESSION])
        .env("ARTIFACTS_FLAKE", format!("path:{}", dir.display()));
    let output = eval.run().map_err(|source| FlakeError::Process {
        dir: dir.to_owned(),
        source,
    })?;
    if !output.status.success() {
        return Err(FlakeError::Eval {
            dir: dir.to_owned(),
            status: describe_status(&output.status),
            stderr: output.stderr,
        });
    }
    let mut value: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        FlakeError::Model(ModelError::Parse {
            path: dir.join("flake.nix"),
            message: format!("nix printed something that is not JSON: {e}"),
            line: None,
            column: None,
        })
    })?;
    let derivations: Vec<String> = value
        .as_object_mut()
        .and_then(|top| top.remove("derivations"))
        .and_then(|d| serde_json::from_value(d).ok())
        .unwrap_or_default();
    take_attributes(dir, &mut value)?;
    let model = artifacts_model::load::from_value_validated(
        &dir.join("flake.nix"),
        dir,
        &value,
        known_backends,
    )?;
    Ok(FlakeDeclarations { model, derivations })
}

/// Removes the `attribute` the expression adds to every target, after
/// checking that no two attributes of a collection share a name.
fn take_attributes(dir: &Path, value: &mut serde_json::Value) -> Result<(), FlakeError> {
    for (key, name_key, home) in [("nixos", "machine", false), ("home", "user", true)] {
        let Some(targets) = value.get_mut(key).and_then(|t| t.as_array_mut()) else {
            continue;
        };
        let mut seen: Vec<(String, String)> = Vec::new();
        for target in targets {
            let Some(map) = target.as_object_mut() else {
                continue;
            };
            let attribute = match map.remove("attribute") {
                Some(serde_json::Value::String(attribute)) => attribute,
                _ => continue,
            };
            let Some(name) = map.get(name_key).and_then(|n| n.as_str()) else {
                continue;
            };
            if let Some((_, first)) = seen.iter().find(|(seen, _)| seen == name) {
                return Err(FlakeError::SameName {
                    dir: dir.to_owned(),
                    home,
                    name: name.to_owned(),
                    first: first.clone(),
                    second: attribute,
                });
            }
            seen.push((name.to_owned(), attribute));
        }
    }
    Ok(())
}

/// Realises generator derivations, all in one `nix build --no-link`.
pub fn realise(
    dir: &Path,
    derivations: &[String],
    timeout: Option<Duration>,
) -> Result<(), FlakeError> {
    if derivations.is_empty() {
        return Ok(());
    }
    let mut build = nix(dir, timeout)?;
    build
        .args(["build", "--no-link", "--json"])
        .args(derivations);
    let output = build.run().map_err(|source| FlakeError::Process {
        dir: dir.to_owned(),
        source,
    })?;
    if !output.status.success() {
        return Err(FlakeError::Build {
            dir: dir.to_owned(),
            status: describe_status(&output.status),
            stderr: output.stderr,
        });
    }
    Ok(())
}
