//! What the natives that run programs (`helmTemplate` in [`crate::helm`],
//! `kustomizeBuild` in [`crate::kustomize`]) share: finding the program,
//! resolving the caller's path inside the project, running the program, and
//! reading the YAML stream it prints.
//!
//! - **Paths**: as tanka, relative to the directory of `opts.calledFrom`
//!   (what `std.thisFile` gives: relative to the project root in the builtin
//!   engine, absolute in tanka). Confined by the import rule
//!   (`import::resolve_inside`): nothing outside the project root,
//!   no `..` escape, no symlink escape, absolute paths refused; and every
//!   symlink inside the handed-over directory must resolve inside the root
//!   too (`import::check_tree`), since the programs follow them.
//! - **Running**: through the crate's one way of running programs
//!   (`tk::confine`, `tk::finish`): our environment minus
//!   the key variables, cwd the project root, stdin `/dev/null`, own process
//!   group, a time limit, killed if we die; never through a shell.
//!
//! Global state: none (the environment is read once per evaluation).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use artifacts_os::process::ProcessBuilder;
use jrsonnet_gcmodule::Acyclic;
use serde_json::{Map, Value};

use crate::import::{Confined, check_tree, resolve_inside};
use crate::redact::Redactor;

/// The project and environment the external programs run with.
#[derive(Debug, Clone, Acyclic)]
pub struct Tools {
    root: PathBuf,
    env: BTreeMap<String, OsString>,
}

impl Tools {
    /// Programs for the project at `root` (canonical), started with `env`
    /// (minus [`crate::tk::KEY_VARIABLES`]); `PATH` in `env` finds them.
    pub fn new(root: PathBuf, env: BTreeMap<String, OsString>) -> Tools {
        Tools { root, env }
    }

    /// [`Tools::new`] with our own environment (variables whose names are
    /// not UTF-8 are left out).
    pub fn from_process(root: PathBuf) -> Tools {
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
            .collect();
        Tools::new(root, env)
    }

    /// The project root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The program named by the variable `var` (tanka's `TANKA_HELM_PATH`,
    /// `TANKA_KUSTOMIZE_PATH`), when set and not empty.
    pub(crate) fn named_by(&self, var: &str) -> Option<PathBuf> {
        let v = self.env.get(var).filter(|v| !v.is_empty())?;
        let found = artifacts_os::path::find_executable_in(
            Path::new(v),
            self.env.get("PATH").map(OsString::as_os_str),
        )
        .unwrap_or_else(|| PathBuf::from(v));
        // Relative to our directory, as for tanka: the program runs in the root.
        Some(std::path::absolute(&found).unwrap_or(found))
    }

    /// `name` in `PATH`.
    pub(crate) fn on_path(&self, name: &str) -> Option<PathBuf> {
        artifacts_os::path::find_executable_in(
            Path::new(name),
            self.env.get("PATH").map(OsString::as_os_str),
        )
    }

    /// The real path of `rel`, relative to the directory of `called_from`,
    /// inside the project; `what` names it in errors ("chart").
    pub(crate) fn resolve(
        &self,
        native: &str,
        what: &str,
        called_from: &str,
        rel: &str,
    ) -> Result<PathBuf, String> {
        if called_from.is_empty() {
            return Err(format!(
                "{native}: `opts.calledFrom` is unset or empty; pass `std.thisFile` (tanka-util: `.new(std.thisFile)`) so the {what} is found next to the calling file"
            ));
        }
        let refused = |why: &str| {
            format!(
                "{native}: {what} `{rel}` (from `{called_from}`) refused: {why} ({what}s must stay inside the project root)"
            )
        };
        if Path::new(rel).is_absolute() {
            return Err(refused("absolute paths are not allowed"));
        }
        // std.thisFile is relative to the root here, absolute under tanka.
        let caller = self.root.join(called_from);
        let dir = caller.parent().unwrap_or(&self.root);
        let real = match resolve_inside(&self.root, dir, Path::new(rel)) {
            Ok(Some(real)) => real,
            Ok(None) => {
                return Err(format!(
                    "{native}: failed to find a {what} at `{rel}` relative to `{called_from}`: no such file or directory"
                ));
            }
            Err(Confined::Refused(why)) => return Err(refused(why)),
            Err(Confined::Io(e)) => {
                return Err(format!(
                    "{native}: {what} `{rel}` (from `{called_from}`): {e}"
                ));
            }
        };
        if real.is_dir() {
            self.check_tree(native, what, &real)?;
        }
        Ok(real)
    }

    /// Every symlink below `dir` resolves inside the project.
    pub(crate) fn check_tree(&self, native: &str, what: &str, dir: &Path) -> Result<(), String> {
        check_tree(&self.root, dir).map_err(|(path, why)| {
            let shown = path.strip_prefix(&self.root).unwrap_or(&path).display();
            match why {
                Confined::Refused(why) => format!(
                    "{native}: `{shown}` in the {what} refused: {why} ({what}s must stay inside the project root)"
                ),
                Confined::Io(e) => format!("{native}: `{shown}` in the {what}: {e}"),
            }
        })
    }

    /// Runs `builder` (program and arguments set) in the project root and
    /// returns its stdout. Errors name the command line (`shown`), how it
    /// ended and its stderr.
    pub(crate) fn run(
        &self,
        native: &str,
        builder: &mut ProcessBuilder,
        program: &Path,
    ) -> Result<Vec<u8>, String> {
        let shown = builder.to_string();
        builder.cwd(&self.root);
        crate::tk::confine(builder, &self.env);
        // Secrets in the stderr are redacted by the evaluation's error path.
        crate::tk::finish(builder.run(), &shown, program, &Redactor::none())
            .map(|output| output.stdout)
            .map_err(|e| format!("{native}: {}", chain(&e)))
    }
}

/// An error and its sources, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The objects of a YAML stream a program printed. `skip_empty`: leave out
/// documents that are empty or `null` (helm prints comment-only ones).
pub(crate) fn objects(
    native: &str,
    program: &str,
    stdout: &[u8],
    skip_empty: bool,
) -> Result<Vec<Map<String, Value>>, String> {
    let text = std::str::from_utf8(stdout)
        .map_err(|_| format!("{native}: `{program}` printed output that is not UTF-8"))?;
    let docs = crate::natives::yaml_documents(text)
        .map_err(|e| format!("{native}: parsing the output of `{program}`: {e}"))?;
    let mut out = Vec::with_capacity(docs.len());
    for (i, doc) in docs.into_iter().enumerate() {
        match doc {
            Value::Object(m) if skip_empty && m.is_empty() => {}
            Value::Null if skip_empty => {}
            Value::Object(m) => out.push(m),
            _ => {
                return Err(format!(
                    "{native}: document {} printed by `{program}` is not an object",
                    i + 1
                ));
            }
        }
    }
    Ok(out)
}

/// Reads an options object as Go's `encoding/json` fills a struct: keys
/// matched case-insensitively (in sorted order, so the last spelling wins),
/// `null` leaves the default, unknown keys are ignored. `set` gets the
/// canonical field name and the value, and says whether the type is right.
pub(crate) fn read_opts(
    native: &str,
    opts: &Value,
    fields: &[&str],
    mut set: impl FnMut(&str, &Value) -> bool,
) -> Result<(), String> {
    let map = match opts {
        Value::Null => return Ok(()),
        Value::Object(m) => m,
        _ => return Err(format!("{native}: `opts` must be an object")),
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let value = &map[key];
        let Some(field) = fields.iter().find(|f| f.eq_ignore_ascii_case(key)) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        if !set(field, value) {
            return Err(format!(
                "{native}: `opts.{key}` has the wrong type ({})",
                type_name(value)
            ));
        }
    }
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn project() -> (tempfile::TempDir, Tools) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("project");
        std::fs::create_dir_all(root.join("environments/default/charts/app/templates")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/secret"), "x").unwrap();
        let root = root.canonicalize().unwrap();
        (dir, Tools::new(root, BTreeMap::new()))
    }

    const FROM: &str = "environments/default/main.jsonnet";

    #[test]
    fn paths_resolve_next_to_the_caller_and_stay_inside() {
        let (dir, tools) = project();
        let root = tools.root().to_path_buf();
        let found = tools
            .resolve("helmTemplate", "chart", FROM, "./charts/app")
            .unwrap();
        assert_eq!(found, root.join("environments/default/charts/app"));
        // Absolute calledFrom (tanka's std.thisFile) inside the root works too.
        let abs = root.join(FROM).display().to_string();
        assert_eq!(
            tools
                .resolve("helmTemplate", "chart", &abs, "charts/app")
                .unwrap(),
            found
        );

        let refused = |called_from: &str, rel: &str| {
            let e = tools
                .resolve("helmTemplate", "chart", called_from, rel)
                .unwrap_err();
            assert!(
                e.contains("refused") && e.contains("inside the project root"),
                "{e}"
            );
            e
        };
        assert!(refused(FROM, "../../../outside").contains("points outside"));
        let outside = dir.path().join("outside").display().to_string();
        assert!(refused(FROM, &outside).contains("absolute"));
        assert!(refused(&format!("{outside}/x.jsonnet"), ".").contains("points outside"));
        symlink(
            dir.path().join("outside"),
            root.join("environments/default/charts/link"),
        )
        .unwrap();
        assert!(refused(FROM, "charts/link").contains("symlink pointing outside"));
        symlink(
            dir.path().join("outside/secret"),
            root.join("environments/default/charts/app/templates/secret.yaml"),
        )
        .unwrap();
        let e = refused(FROM, "charts/app");
        assert!(
            e.contains("`environments/default/charts/app/templates/secret.yaml`"),
            "{e}"
        );

        let e = tools
            .resolve("helmTemplate", "chart", FROM, "charts/nope")
            .unwrap_err();
        assert!(e.contains("failed to find a chart at `charts/nope`"), "{e}");
        let e = tools
            .resolve("helmTemplate", "chart", "", "charts/app")
            .unwrap_err();
        assert!(e.contains("calledFrom"), "{e}");
    }

    #[test]
    fn links_inside_the_project_are_followed_and_checked() {
        let (dir, tools) = project();
        let root = tools.root().to_path_buf();
        std::fs::create_dir_all(root.join("lib/shared")).unwrap();
        symlink(
            root.join("lib/shared"),
            root.join("environments/default/charts/app/shared"),
        )
        .unwrap();
        tools
            .resolve("helmTemplate", "chart", FROM, "charts/app")
            .unwrap();
        // A link out, reached only through the followed link, is still found.
        symlink(
            dir.path().join("outside/secret"),
            root.join("lib/shared/leak"),
        )
        .unwrap();
        let e = tools
            .resolve("helmTemplate", "chart", FROM, "charts/app")
            .unwrap_err();
        assert!(e.contains("lib/shared/leak"), "{e}");
    }

    #[test]
    fn options_are_read_as_go_json_reads_them() {
        let mut seen = Vec::new();
        let opts = serde_json::json!({"calledfrom": "a", "calledFrom": "b", "other": 1, "NameFormat": null});
        read_opts("x", &opts, &["calledFrom", "nameFormat"], |f, v| {
            seen.push((f.to_string(), v.clone()));
            true
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                ("calledFrom".to_string(), serde_json::json!("b")),
                ("calledFrom".to_string(), serde_json::json!("a"))
            ]
        );
        let e = read_opts(
            "x",
            &serde_json::json!({"calledFrom": 1}),
            &["calledFrom"],
            |_, v| v.is_string(),
        )
        .unwrap_err();
        assert!(
            e.contains("`opts.calledFrom`") && e.contains("number"),
            "{e}"
        );
        assert!(read_opts("x", &serde_json::json!("s"), &[], |_, _| true).is_err());
    }
}
