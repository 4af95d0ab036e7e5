//! The ArgoCD CMP entry points, simulated: the example project copied
//! without `.git`, file modes reset to 0644, ArgoCD's variables set, and
//! `cmp discover` / `cmp generate` run in the application directory.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Fixture, yaml_docs};

const CANARY: &str = "cmp-canary-password-9f8e7d";

fn example_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tanka-argocd")
}

/// Copies a tree as ArgoCD's repo tarball would arrive: no `.git`, every
/// file 0644.
fn copy_as_tarball(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_as_tarball(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

/// The example in a fresh project, with secrets for `default` (and a
/// `staging` copy) encrypted by the real sops to the fixture key.
fn setup(name: &str) -> Fixture {
    let fx = Fixture::new(name);
    std::fs::remove_dir_all(fx.root()).unwrap();
    copy_as_tarball(&example_dir(), &fx.root());
    copy_as_tarball(
        &fx.root().join("environments/default"),
        &fx.root().join("environments/staging"),
    );
    let plain = format!("db-password:\n  password: {CANARY}\n");
    fx.sops_encrypt("default", &plain);
    fx.sops_encrypt("staging", &plain);
    fx
}

fn argocd_env(fx: &Fixture, tk_env: Option<&str>) -> BTreeMap<String, OsString> {
    let mut env = fx.with_key_file();
    for (k, v) in [
        ("ARGOCD_APP_NAME", "demo"),
        ("ARGOCD_APP_NAMESPACE", "demo"),
        ("ARGOCD_APP_REVISION", "3f2a9c0d"),
        (
            "ARGOCD_APP_SOURCE_REPO_URL",
            "https://git.example/infra.git",
        ),
        ("ARGOCD_APP_SOURCE_PATH", "."),
        ("PARAM_REPLICAS", "2"),
    ] {
        env.insert(k.into(), v.into());
    }
    if let Some(e) = tk_env {
        env.insert("ARGOCD_ENV_TK_ENV".into(), e.into());
    }
    env
}

#[test]
fn discover_prints_the_environment_including_default() {
    let fx = setup("discover");
    let out = fx.run(&argocd_env(&fx, None), &["cmp", "discover"]);
    assert_eq!(out.assert_ok().stdout, "default\n");
    let out = fx.run(&argocd_env(&fx, Some("staging")), &["cmp", "discover"]);
    assert_eq!(out.assert_ok().stdout, "staging\n");
    // TK_ENV is the fallback
    let mut env = argocd_env(&fx, None);
    env.insert("TK_ENV".into(), "staging".into());
    assert_eq!(
        fx.run(&env, &["cmp", "discover"]).assert_ok().stdout,
        "staging\n"
    );
    // no such environment, or a path: no match (nothing printed)
    for e in ["prod", "../default"] {
        let out = fx.run(&argocd_env(&fx, Some(e)), &["cmp", "discover"]);
        assert_eq!(out.assert_ok().stdout, "", "{e}");
    }
    // not a tanka directory
    let out = fx.run_in(fx.dir.path(), &argocd_env(&fx, None), &["cmp", "discover"]);
    assert_eq!(out.assert_ok().stdout, "");
}

#[test]
fn the_allow_list_matches_whole_lines_only() {
    let fx = setup("allowlist");
    let list = fx.dir.path().join("allow.txt");
    std::fs::write(
        &list,
        "# allowed repositories\nhttps://git.example/infra.git\n",
    )
    .unwrap();
    let mut env = argocd_env(&fx, None);
    env.insert(
        "ARTIFACTS_CMP_ALLOWLIST".into(),
        list.clone().into_os_string(),
    );
    assert_eq!(
        fx.run(&env, &["cmp", "discover"]).assert_ok().stdout,
        "default\n"
    );
    fx.run(&env, &["cmp", "generate"]).assert_ok();
    for repo in [
        "https://git.example/infra.git.evil",
        "https://git.example/infra",
        "git.example/infra.git",
        "",
    ] {
        env.insert("ARGOCD_APP_SOURCE_REPO_URL".into(), repo.into());
        assert_eq!(
            fx.run(&env, &["cmp", "discover"]).assert_ok().stdout,
            "",
            "{repo}"
        );
        // generate refuses too: naming the plugin explicitly skips discovery
        let out = fx.run(&env, &["cmp", "generate"]);
        out.assert_failed_closed();
        assert!(out.stderr.contains("allow-list"), "{}", out.stderr);
    }
    // --allow-list works like the variable; an unreadable list is an error
    env.insert(
        "ARGOCD_APP_SOURCE_REPO_URL".into(),
        "https://git.example/infra.git".into(),
    );
    env.remove("ARTIFACTS_CMP_ALLOWLIST");
    let flag = list.to_str().unwrap();
    assert_eq!(
        fx.run(&env, &["cmp", "discover", "--allow-list", flag])
            .assert_ok()
            .stdout,
        "default\n"
    );
    let out = fx.run(
        &env,
        &["cmp", "discover", "--allow-list", "/nonexistent/list"],
    );
    out.assert_failed_closed();
}

#[test]
fn generate_prints_only_objects_and_nothing_on_stderr() {
    let fx = setup("generate");
    for tk_env in [None, Some("staging")] {
        let out = fx.run(&argocd_env(&fx, tk_env), &["cmp", "generate"]);
        out.assert_ok();
        assert!(out.stderr.is_empty(), "stderr: {}", out.stderr);
        let docs = yaml_docs(&out.stdout);
        assert_eq!(docs.len(), 2);
        for d in &docs {
            assert!(d["apiVersion"].is_string() && d["kind"].is_string(), "{d}");
            assert!(d["metadata"]["name"].is_string(), "{d}");
            assert_eq!(d["metadata"]["namespace"], "demo");
        }
        assert_eq!(docs[0]["kind"], "Secret");
        assert_eq!(docs[0]["stringData"]["DB_PASSWORD"], CANARY);
        assert_eq!(
            docs[1]["metadata"]["annotations"]["example.com/commit"],
            "3f2a9c0d"
        );
    }
}

#[test]
fn generate_fails_closed_and_keeps_the_canary_off_stderr() {
    let fx = setup("generate-fail");
    let main = fx.root().join("environments/default/main.jsonnet");
    let good = std::fs::read_to_string(&main).unwrap();

    // no key in the sidecar
    let mut env = argocd_env(&fx, None);
    env.remove("SOPS_AGE_KEY_FILE");
    fx.run(&env, &["cmp", "generate"]).assert_failed_closed();
    // jsonnet error quoting the secret
    std::fs::write(
        &main,
        "function(secrets_yaml) error std.native('parseYaml')(secrets_yaml)[0]['db-password'].password",
    )
    .unwrap();
    let out = fx.run(&argocd_env(&fx, None), &["cmp", "generate"]);
    out.assert_failed_closed();
    assert!(!out.stderr.contains(CANARY), "{}", out.stderr);
    // empty render: ArgoCD would prune everything
    std::fs::write(&main, "function(secrets_yaml) {}").unwrap();
    fx.run(&argocd_env(&fx, None), &["cmp", "generate"])
        .assert_failed_closed();
    // reading the sidecar's key from jsonnet
    let key = fx.key_file.display().to_string();
    std::fs::write(
        &main,
        format!("function(secrets_yaml) {{ k: importstr '{key}' }}"),
    )
    .unwrap();
    let out = fx.run(&argocd_env(&fx, None), &["cmp", "generate"]);
    out.assert_failed_closed();
    assert!(
        out.stderr.contains("refused") && !out.stderr.contains("AGE-SECRET-KEY"),
        "{}",
        out.stderr
    );
    // missing secrets file: artifacts.toml declares secrets for default
    std::fs::write(&main, good).unwrap();
    std::fs::remove_file(fx.root().join("environments/default/secrets.sops.yaml")).unwrap();
    let out = fx.run(&argocd_env(&fx, None), &["cmp", "generate"]);
    out.assert_failed_closed();
    assert!(out.stderr.contains("declares secrets"), "{}", out.stderr);
}

#[test]
fn plugin_yaml_is_the_example_file() {
    let fx = Fixture::new("plugin-yaml");
    let out = fx.run(&fx.env, &["cmp", "plugin-yaml"]);
    let example = std::fs::read_to_string(example_dir().join("plugin.yaml")).unwrap();
    assert_eq!(out.assert_ok().stdout, example);
    let doc = &yaml_docs(&out.stdout)[0];
    assert_eq!(doc["kind"], "ConfigManagementPlugin");
    assert_eq!(
        doc["spec"]["generate"]["command"],
        serde_json::json!(["artifacts", "cmp", "generate"])
    );
}
