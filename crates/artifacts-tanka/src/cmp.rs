//! ArgoCD config-management-plugin (CMP) glue: which environment, whether
//! the repository may use the plugin, discovery, and the plugin manifest.
//!
//! The CMP server runs `discover` and `generate` in the application's source
//! directory with the Application's `plugin.env` entries as
//! `ARGOCD_ENV_<NAME>`. The environment is `ARGOCD_ENV_TK_ENV`, else
//! `TK_ENV`, else `default` (empty values count as unset): its path below
//! `environments/`, nested ones included (`prom-grafana/dev`); among inline
//! environments, `ARGOCD_ENV_TK_NAME` (else `TK_NAME`) selects one as
//! tanka's `--name` does. The optional
//! allow-list (a file named by `--allow-list` or `ARTIFACTS_CMP_ALLOWLIST`)
//! holds repository URLs, one per line (`#` comments and blank lines
//! ignored); `ARGOCD_APP_SOURCE_REPO_URL` must equal one line exactly. It is
//! checked by `generate` too, since an Application naming the plugin
//! explicitly skips discovery.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The Application's `plugin.env` entry naming the environment.
pub const ENV_TK_ENV_ARGOCD: &str = "ARGOCD_ENV_TK_ENV";
/// The plain fallback.
pub const ENV_TK_ENV: &str = "TK_ENV";
/// The Application's `plugin.env` entry naming the inline environment.
pub const ENV_TK_NAME_ARGOCD: &str = "ARGOCD_ENV_TK_NAME";
/// The plain fallback.
pub const ENV_TK_NAME: &str = "TK_NAME";
/// Names the allow-list file.
pub const ENV_ALLOWLIST: &str = "ARTIFACTS_CMP_ALLOWLIST";
/// The repository URL ArgoCD sets.
pub const ENV_REPO_URL: &str = "ARGOCD_APP_SOURCE_REPO_URL";
/// The revision ArgoCD sets; becomes the `commit_hash` ext var.
pub const ENV_REVISION: &str = "ARGOCD_APP_REVISION";
/// The ext var carrying the revision.
pub const COMMIT_HASH_EXT: &str = "commit_hash";

/// The ConfigManagementPlugin for the sidecar
/// (`/home/argocd/cmp-server/config/plugin.yaml`).
pub const PLUGIN_YAML: &str = include_str!("plugin.yaml");

fn var<'a>(env: &'a BTreeMap<String, OsString>, name: &str) -> Option<&'a OsString> {
    env.get(name).filter(|v| !v.is_empty())
}

/// The inline environment to select (tanka's `--name`): `ARGOCD_ENV_TK_NAME`
/// → `TK_NAME`, else none.
pub fn inline_name(env: &BTreeMap<String, OsString>) -> Option<String> {
    var(env, ENV_TK_NAME_ARGOCD)
        .or_else(|| var(env, ENV_TK_NAME))
        .map(|v| v.to_string_lossy().into_owned())
}

/// The environment to render: `ARGOCD_ENV_TK_ENV` → `TK_ENV` → `default`.
pub fn environment_name(env: &BTreeMap<String, OsString>) -> String {
    var(env, ENV_TK_ENV_ARGOCD)
        .or_else(|| var(env, ENV_TK_ENV))
        .map_or_else(
            || "default".to_string(),
            |v| v.to_string_lossy().into_owned(),
        )
}

/// The `commit_hash` ext var: `ARGOCD_APP_REVISION` when set.
pub fn commit_hash(env: &BTreeMap<String, OsString>) -> Option<String> {
    var(env, ENV_REVISION).map(|v| v.to_string_lossy().into_owned())
}

/// The allow-list file: `flag`, else `ARTIFACTS_CMP_ALLOWLIST`.
pub fn allowlist_path(
    flag: Option<&Path>,
    env: &BTreeMap<String, OsString>,
    cwd: &Path,
) -> Option<PathBuf> {
    flag.map(Path::to_path_buf)
        .or_else(|| var(env, ENV_ALLOWLIST).map(PathBuf::from))
        .map(|p| cwd.join(p))
}

/// Checks `ARGOCD_APP_SOURCE_REPO_URL` against the allow-list, when one is
/// configured. An unreadable list is an error, never "allowed".
pub fn check_allowed(list: Option<&Path>, env: &BTreeMap<String, OsString>) -> Result<()> {
    let Some(list) = list else {
        return Ok(());
    };
    let text = std::fs::read_to_string(list).map_err(|e| Error::io("read", list, e))?;
    let repo = var(env, ENV_REPO_URL)
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default();
    let allowed = !repo.is_empty()
        && text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .any(|l| l == repo);
    if allowed {
        Ok(())
    } else {
        Err(Error::NotAllowed {
            repo,
            list: list.to_path_buf(),
        })
    }
}

/// Discovery, for an allowed repository: the environment's path when
/// `environments/<env>/main.jsonnet` exists under `dir` (at any depth).
/// When the Application names no environment and there is no `default`,
/// every environment below `environments/` (one path per line): the plugin
/// applies, and `generate` then fails naming the missing environment
/// instead of ArgoCD rendering the directory some other way. `None`: the
/// plugin does not apply. Errors only for an unreadable allow-list.
pub fn discover(
    dir: &Path,
    env: &BTreeMap<String, OsString>,
    allowlist: Option<&Path>,
) -> Result<Option<String>> {
    let Ok(name) = crate::project::environment_name(&environment_name(env)) else {
        return Ok(None);
    };
    let exists = |name: &str| {
        dir.join("environments")
            .join(name)
            .join("main.jsonnet")
            .is_file()
    };
    let named = var(env, ENV_TK_ENV_ARGOCD).is_some() || var(env, ENV_TK_ENV).is_some();
    let found = if exists(&name) {
        name
    } else if named {
        return Ok(None);
    } else {
        let all = crate::project::Project::at(dir)
            .and_then(|p| p.environments())
            .unwrap_or_default();
        if all.is_empty() {
            return Ok(None);
        }
        all.join("\n")
    };
    match check_allowed(allowlist, env) {
        Ok(()) => Ok(Some(found)),
        Err(Error::NotAllowed { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, OsString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect()
    }

    #[test]
    fn environment_name_falls_back_in_order() {
        assert_eq!(environment_name(&env(&[])), "default");
        assert_eq!(environment_name(&env(&[("TK_ENV", "b")])), "b");
        assert_eq!(
            environment_name(&env(&[("TK_ENV", "b"), ("ARGOCD_ENV_TK_ENV", "a")])),
            "a"
        );
        assert_eq!(
            environment_name(&env(&[("TK_ENV", "b"), ("ARGOCD_ENV_TK_ENV", "")])),
            "b"
        );
    }

    #[test]
    fn allowlist_is_exact_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("allow");
        std::fs::write(
            &list,
            "# repos\nhttps://git.example/a.git\n  https://git.example/b.git  \n",
        )
        .unwrap();
        let check = |url: &str| check_allowed(Some(&list), &env(&[(ENV_REPO_URL, url)])).is_ok();
        assert!(check("https://git.example/a.git"));
        assert!(check("https://git.example/b.git"));
        assert!(!check("https://git.example/a.git.evil"));
        assert!(!check("https://git.example/a"));
        assert!(!check("git.example/a.git"));
        assert!(!check(""));
        assert!(!check("# repos"));
        assert!(check_allowed(None, &env(&[])).is_ok());
        assert!(matches!(
            check_allowed(Some(&dir.path().join("missing")), &env(&[])),
            Err(Error::Io(_))
        ));
    }
}
