//! `std.native('kustomizeBuild')(path, opts)`: a kustomization built by the
//! real kustomize, as tanka does it (`pkg/kustomize`, reimplemented from its
//! behaviour).
//!
//! - `path` is relative to the directory of `opts.calledFrom`
//!   (`std.thisFile`), confined to the project ([`crate::external`]).
//! - The program: `$TANKA_KUSTOMIZE_PATH build DIR` or `kustomize build DIR`
//!   as tanka runs it, else `kubectl kustomize DIR` (the same kustomize,
//!   built into kubectl; Debian's `kubernetes-client`).
//! - Confinement beyond the directory itself: kustomize reads the files a
//!   kustomization names only from inside its own directory (its default
//!   load restrictor, which resolves symlinks), but it follows
//!   `resources`, `bases`, `components`, `generators`, `transformers` and
//!   `validators` into other directories and fetches remote ones. So before
//!   running it, every such entry, in every kustomization reached, must be
//!   a file or directory inside the project (checked with the import rule;
//!   a remote URL is no such thing), and every directory reached must hold
//!   no symlink pointing out. Plugins and helm charts stay off (kustomize's
//!   defaults: no `--enable-alpha-plugins`, no `--enable-helm`).
//! - The output's objects are keyed by `opts.nameFormat` ([`crate::listmap`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use artifacts_os::process::ProcessBuilder;
use serde_json::{Map, Value};

use crate::external::{Tools, objects, read_opts};
use crate::import::{Confined, resolve_inside};

const NATIVE: &str = "kustomizeBuild";

/// The file names kustomize looks for in a directory.
const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fields of a kustomization that name other files or directories to load.
const REFERENCE_FIELDS: [&str; 6] = [
    "resources",
    "bases",
    "components",
    "generators",
    "transformers",
    "validators",
];

/// At most this many kustomizations are followed from one call.
const MAX_KUSTOMIZATIONS: usize = 1000;

/// `kustomizeBuild(path, opts)`: the kustomization's objects keyed by the
/// name format.
pub fn build(tools: &Tools, path: &str, opts: &Value) -> Result<Map<String, Value>, String> {
    let mut called_from = String::new();
    let mut name_format = String::new();
    read_opts(NATIVE, opts, &["calledFrom", "nameFormat"], |field, v| {
        let Some(s) = v.as_str() else { return false };
        match field {
            "calledFrom" => called_from = s.to_string(),
            _ => name_format = s.to_string(),
        }
        true
    })?;
    if called_from.is_empty() {
        return Err(format!(
            "{NATIVE}: `opts.calledFrom` is unset or empty; tanka needs it to find the kustomization (tanka-util: `kustomize.new(std.thisFile)`)"
        ));
    }
    let dir = tools.resolve(NATIVE, "kustomization", &called_from, path)?;
    check_references(tools, &dir)?;

    let (program, mut args) = kustomize_program(tools)?;
    args.push(dir.into_os_string());
    let mut builder = ProcessBuilder::new(&program);
    builder.args(&args);
    let shown = builder.to_string();
    let stdout = tools.run(NATIVE, &mut builder, &program)?;
    let list = objects(NATIVE, &shown, &stdout, false)?;
    crate::listmap::list_as_map(list, &name_format).map_err(|e| format!("{NATIVE}: {e}"))
}

/// The program and its arguments before the directory.
fn kustomize_program(tools: &Tools) -> Result<(PathBuf, Vec<std::ffi::OsString>), String> {
    if let Some(p) = tools
        .named_by("TANKA_KUSTOMIZE_PATH")
        .or_else(|| tools.on_path("kustomize"))
    {
        return Ok((p, vec!["build".into()]));
    }
    if let Some(p) = tools.on_path("kubectl") {
        return Ok((p, vec!["kustomize".into()]));
    }
    Err(format!(
        "{NATIVE}: neither `kustomize` nor `kubectl` was found in PATH; install kubectl (Debian package `kubernetes-client`) or kustomize, or set TANKA_KUSTOMIZE_PATH"
    ))
}

/// Follows the kustomizations reachable from `start` (see the module doc).
pub(crate) fn check_references(tools: &Tools, start: &Path) -> Result<(), String> {
    let root = tools.root();
    let mut seen = BTreeSet::new();
    let mut pending = vec![start.to_path_buf()];
    while let Some(dir) = pending.pop() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        if seen.len() > MAX_KUSTOMIZATIONS {
            return Err(format!(
                "{NATIVE}: more than {MAX_KUSTOMIZATIONS} kustomizations are reachable from `{}`",
                shown(root, start)
            ));
        }
        if dir != start {
            tools.check_tree(NATIVE, "kustomization", &dir)?;
        }
        let Some(file) = KUSTOMIZATION_FILES
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
        else {
            // Not a kustomization (a plain resource directory is not
            // allowed either): kustomize says so itself.
            continue;
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("{NATIVE}: reading `{}`: {e}", shown(root, &file)))?;
        let docs = crate::natives::yaml_documents(&text)
            .map_err(|e| format!("{NATIVE}: parsing `{}`: {e}", shown(root, &file)))?;
        let Some(Value::Object(k)) = docs.first() else {
            continue;
        };
        for field in REFERENCE_FIELDS {
            let Some(Value::Array(entries)) = k.get(field) else {
                continue;
            };
            // Inline objects (generator/transformer configs) name no path.
            for entry in entries.iter().filter_map(Value::as_str) {
                let refused = |why: &str| {
                    format!(
                        "{NATIVE}: `{entry}` in `{}` ({field}) refused: {why} (kustomizations must stay inside the project root)",
                        shown(root, &file)
                    )
                };
                match resolve_inside(root, &dir, Path::new(entry)) {
                    Ok(Some(real)) if real.is_dir() => pending.push(real),
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Err(refused(
                            "it is no file or directory in the project (remote resources are not allowed)",
                        ));
                    }
                    Err(Confined::Refused(why)) => return Err(refused(why)),
                    Err(Confined::Io(e)) => return Err(refused(&e.to_string())),
                }
            }
        }
    }
    Ok(())
}

fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::symlink;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn references_must_stay_in_the_project() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("p");
        std::fs::create_dir_all(&root).unwrap();
        let root = root.canonicalize().unwrap();
        let tools = Tools::new(root.clone(), BTreeMap::new());
        write(
            &dir.path().join("outside/base/kustomization.yaml"),
            "resources: []\n",
        );
        write(
            &root.join("base/kustomization.yaml"),
            "resources: [cm.yaml]\n",
        );
        write(&root.join("base/cm.yaml"), "{}\n");
        let overlay = root.join("overlay");
        let set = |text: &str| write(&overlay.join("kustomization.yaml"), text);

        set("resources:\n- ../base\ntransformers:\n- {apiVersion: x}\n");
        check_references(&tools, &overlay).unwrap();

        set("resources:\n- ../../outside/base\n");
        let e = check_references(&tools, &overlay).unwrap_err();
        assert!(
            e.contains("`../../outside/base`") && e.contains("points outside"),
            "{e}"
        );

        set("resources:\n- https://github.com/org/repo//base?ref=v1\n");
        let e = check_references(&tools, &overlay).unwrap_err();
        assert!(e.contains("remote resources are not allowed"), "{e}");

        // Reached through a base inside the project: still checked.
        symlink(dir.path().join("outside/base"), root.join("base/escape")).unwrap();
        set("components:\n- ../base\n");
        let e = check_references(&tools, &overlay).unwrap_err();
        assert!(
            e.contains("base/escape") && e.contains("symlink pointing outside"),
            "{e}"
        );
    }
}
