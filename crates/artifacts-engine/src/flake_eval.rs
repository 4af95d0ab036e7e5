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
//!
//! Evaluation takes seconds; its output is kept in the project's state
//! directory (`.artifacts/flake-eval.json` beside `flake.nix`: a `0700`
//! directory with a `.gitignore`, a `0600` file) under a key made of the
//! flake's source tree (every file, link and executable bit, `flake.lock`
//! and so the locked inputs included; `.git` and the state directory
//! excepted), the expression and this version of artifacts. A run whose key
//! matches skips `nix eval`; any change makes a new evaluation. The
//! declarations are validated on every run, cached or not. The tree is
//! hashed before and after an evaluation, and its output kept only if
//! nothing changed in between (nix may write `flake.lock` itself).

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
  outsOf = g: if builtins.isAttrs g && g ? drvPath then [ g.outPath ] else [ ];
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
    inputs = a.inputs or [ ];
  };
  target = key: option: set: name: let c = set.${name}.config.artifacts or { }; in {
    ${key} = c.${option} or name;
    attribute = name;
    artifacts = builtins.mapAttrs artifact (c.store or { });
    config = c.config or { };
    default = { backend = c.default.backend or null; };
  };
  generatorsBy = of: set: names: builtins.concatMap
    (n: builtins.concatMap (a: of (a.generator or null))
      (builtins.attrValues (set.${n}.config.artifacts.store or { })))
    names;
  generators = generatorsBy drvsOf;
  outputs = generatorsBy outsOf;
  nixos = flake.nixosConfigurations or { };
  home = flake.homeConfigurations or { };
in {
  nixos = map (target "machine" "machineName" nixos) (withArtifacts nixos);
  home = map (target "user" "userName" home) (withArtifacts home);
  derivations = generators nixos (withArtifacts nixos) ++ generators home (withArtifacts home);
  built = outputs nixos (withArtifacts nixos) ++ outputs home (withArtifacts home);
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

/// The project's state directory, relative to the flake.
const STATE_DIR: &str = ".artifacts";
/// The cached evaluation in it.
const CACHE_FILE: &str = "flake-eval.json";

/// The cache key of the flake in `dir` as it is now (see the module doc);
/// `None` when the tree cannot be read completely (then nothing is cached).
fn cache_key(dir: &Path) -> Option<String> {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(env!("CARGO_PKG_VERSION").as_bytes());
    hash.update([0]);
    hash.update(EXPRESSION.as_bytes());
    hash.update([0]);
    hash.update(dir.as_os_str().as_encoded_bytes());
    hash_tree(dir, Path::new(""), &mut hash).ok()?;
    Some(hex::encode(hash.finalize()))
}

/// Feeds every entry under `dir/relative` into `hash`, sorted, links not followed.
fn hash_tree(dir: &Path, relative: &Path, hash: &mut sha2::Sha256) -> std::io::Result<()> {
    use sha2::Digest;
    use std::os::unix::fs::PermissionsExt;
    let mut entries: Vec<_> = std::fs::read_dir(dir.join(relative))?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for name in entries {
        // nix reads neither; the state directory changes with every evaluation kept.
        if relative.as_os_str().is_empty() && (name == STATE_DIR || name == ".git") {
            continue;
        }
        let path = relative.join(&name);
        let full = dir.join(&path);
        let meta = std::fs::symlink_metadata(&full)?;
        hash.update(path.as_os_str().as_encoded_bytes());
        hash.update([0]);
        if meta.is_dir() {
            hash.update(b"d\0");
            hash_tree(dir, &path, hash)?;
        } else if meta.file_type().is_symlink() {
            hash.update(b"l\0");
            hash.update(std::fs::read_link(&full)?.as_os_str().as_encoded_bytes());
        } else {
            let executable = meta.permissions().mode() & 0o111 != 0;
            hash.update(if executable { b"x\0" } else { b"f\0" });
            hash.update(meta.len().to_le_bytes());
            hash.update(std::fs::read(&full)?);
        }
        hash.update([0]);
    }
    Ok(())
}

/// The cached output of `nix eval` for `key`, if there is one.
fn cached(dir: &Path, key: &str) -> Option<serde_json::Value> {
    let state = artifacts_os::fs::Dir::open_root(dir)
        .ok()?
        .open(STATE_DIR)
        .ok()??;
    let bytes = state.read(CACHE_FILE).ok()??;
    let mut document: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    if document.get("key")?.as_str()? != key {
        return None;
    }
    let output = document.as_object_mut()?.remove("output")?;
    alive(&output).then_some(output)
}

/// Whether every store path a cached evaluation names is still there (a
/// `nix-collect-garbage` since may have removed them): each derivation, and
/// each generator that is not one of their outputs (built when generating).
fn alive(output: &serde_json::Value) -> bool {
    let strings = |key: &str| -> Vec<&str> {
        output
            .get(key)
            .and_then(|v| v.as_array())
            .map(|list| list.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default()
    };
    let built = strings("built");
    let exists = |path: &str| Path::new(path).exists();
    if !strings("derivations").into_iter().all(exists) {
        return false;
    }
    ["nixos", "home"]
        .iter()
        .filter_map(|key| output.get(*key).and_then(|t| t.as_array()))
        .flatten()
        .filter_map(|target| target.get("artifacts").and_then(|a| a.as_object()))
        .flat_map(|artifacts| artifacts.values())
        .filter_map(|artifact| artifact.get("generator").and_then(|g| g.as_str()))
        .all(|generator| built.contains(&generator) || exists(generator))
}

/// Keeps `output` for `key`; failing to is only a missed saving.
fn keep(dir: &Path, key: &str, output: &serde_json::Value) {
    let write = || -> std::io::Result<()> {
        let state = artifacts_os::fs::Dir::open_root(dir)?.create_dirs(STATE_DIR, 0o700)?;
        if state.read(".gitignore")?.is_none() {
            state.write_atomic(".gitignore", b"*\n", 0o644)?;
        }
        let document = serde_json::json!({ "key": key, "output": output });
        state.write_atomic(
            CACHE_FILE,
            &serde_json::to_vec(&document).expect("json"),
            0o600,
        )
    };
    if let Err(error) = write() {
        tracing::debug!(
            "not keeping the flake's evaluation in `{}`: {error}",
            dir.join(STATE_DIR).display()
        );
    }
}

/// Evaluates the flake in `dir` (absolute) and loads its declarations;
/// an unchanged flake is not evaluated again (see the module doc).
pub fn load(
    dir: &Path,
    checks: &artifacts_model::load::Checks<'_>,
    timeout: Option<Duration>,
) -> Result<FlakeDeclarations, FlakeError> {
    let key = cache_key(dir);
    let value = match key.as_deref().and_then(|key| cached(dir, key)) {
        Some(value) => value,
        None => {
            let value = evaluate(dir, timeout)?;
            if let Some(key) = key
                && cache_key(dir).as_deref() == Some(key.as_str())
            {
                keep(dir, &key, &value);
            }
            value
        }
    };
    declarations(dir, value, checks)
}

/// Runs `nix eval` over the flake: its JSON output.
fn evaluate(dir: &Path, timeout: Option<Duration>) -> Result<serde_json::Value, FlakeError> {
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
    serde_json::from_slice(&output.stdout).map_err(|e| {
        FlakeError::Model(ModelError::Parse {
            path: dir.join("flake.nix"),
            message: format!("nix printed something that is not JSON: {e}"),
            line: None,
            column: None,
        })
    })
}

/// The declarations in `nix eval`'s output, validated.
fn declarations(
    dir: &Path,
    mut value: serde_json::Value,
    checks: &artifacts_model::load::Checks<'_>,
) -> Result<FlakeDeclarations, FlakeError> {
    let derivations: Vec<String> = value
        .as_object_mut()
        .and_then(|top| top.remove("derivations"))
        .and_then(|d| serde_json::from_value(d).ok())
        .unwrap_or_default();
    value.as_object_mut().and_then(|top| top.remove("built"));
    take_attributes(dir, &mut value)?;
    let model =
        artifacts_model::load::from_value_checked(&dir.join("flake.nix"), dir, &value, checks)?;
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
