//! `artifacts tanka show`: the builtin engine against the real C++ jsonnet,
//! the import confinement, and every fail-closed case.

mod common;

use std::process::Command;

use artifacts_tanka::project::Project;
use common::{Fixture, yaml_docs};

/// The library every test environment parses its secrets with. Under the
/// builtin engine it is tanka's native; the C++ jsonnet gets a shim with
/// the same result from `std.parseYaml` per document (Debian's jsonnet 0.18
/// aborts on a multi-document stream, and unwraps a single document).
const YAML_LIB: &str = "{ parse(s):: std.native('parseYaml')(s) }\n";
const YAML_SHIM: &str = "{ parse(s):: [std.parseYaml(d) for d in std.split(std.strReplace(s, '\\n---\\n', '\\u0001'), '\\u0001')] }\n";

const MULTI_DOC_SECRETS: &str = "\
app:
  password: pässwörd-ünïcode-✓
  nested:
    list: [a, b, c]
---
second:
  token: token-from-second-doc
";

const APP_LIB: &str = r#"
{
  secret(name, data):: {
    apiVersion: 'v1', kind: 'Secret', metadata: { name: name },
    stringData: data,
  },
  deployment(name, replicas):: {
    apiVersion: 'apps/v1', kind: 'Deployment',
    metadata: { name: name, labels: { app: name } },
    spec: { replicas: replicas, template: { spec: { containers: [{ name: name, image: 'nginx:1.25' }] } } },
  },
}
"#;

fn write_common(fx: &Fixture) {
    fx.write("lib/yaml.libsonnet", YAML_LIB);
    fx.write("lib/app.libsonnet", APP_LIB);
    fx.write("shim/yaml.libsonnet", YAML_SHIM);
}

/// The C++ jsonnet's output for an environment, run through our extraction.
fn reference(
    fx: &Fixture,
    env: &str,
    secrets_file: &std::path::Path,
    ext: &[(&str, &str)],
) -> Vec<serde_json::Value> {
    let root = fx.root();
    let mut cmd = Command::new(common::jsonnet());
    cmd.current_dir(&root)
        .args([
            "-J",
            &format!("environments/{env}"),
            "-J",
            "lib",
            "-J",
            "vendor",
            "-J",
            "shim",
        ])
        .arg("--tla-str-file")
        .arg(format!("secrets_yaml={}", secrets_file.display()));
    for (k, v) in ext {
        cmd.args(["--ext-str", &format!("{k}={v}")]);
    }
    cmd.arg(format!("environments/{env}/main.jsonnet"));
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "jsonnet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let project = Project::at(&root).unwrap();
    let e = project.environment(env).unwrap();
    artifacts_tanka::process::process(raw, e.spec().expect("a static environment"))
        .unwrap()
        .into_iter()
        .map(serde_json::Value::Object)
        .collect()
}

#[test]
fn builtin_engine_equals_real_jsonnet_for_several_environments() {
    let fx = Fixture::new("vs-jsonnet");
    write_common(&fx);
    // nested objects and lists, several secret documents, unicode, natives
    fx.write(
        "environments/nested/main.jsonnet",
        r#"
local app = import 'app.libsonnet';
local yaml = import 'yaml.libsonnet';
function(secrets_yaml)
  local docs = yaml.parse(secrets_yaml);
  {
    frontend: {
      deployment: app.deployment('frontend', 2),
      extra: [app.secret('frontend-tls', { 'tls.key': docs[0].app.password })],
      disabled: null,
    },
    backend: [
      [app.deployment('backend', 3)],
      { secret: app.secret('backend', { token: docs[1].second.token, items: std.join(',', docs[0].app.nested.list) }) },
    ],
    config: {
      apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg-ünï', namespace: 'other' },
      data: { commit: std.extVar('commit_hash'), greeting: 'grüße ✓', count: std.toString(std.length(docs)) },
    },
    ns: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'apps' } },
  }
"#,
    );
    fx.write(
        "environments/nested/spec.json",
        r#"{"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "nested"},
            "spec": {"namespace": "apps", "injectLabels": true, "resourceDefaults": {"labels": {"team": "infra"}}}}"#,
    );
    fx.sops_encrypt("nested", MULTI_DOC_SECRETS);
    // a plain object environment with a list kind and a single secret document
    fx.write(
        "environments/flat/main.jsonnet",
        r#"
local yaml = import 'yaml.libsonnet';
function(secrets_yaml) {
  list: {
    apiVersion: 'v1', kind: 'List',
    items: [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'sa-' + std.asciiLower(yaml.parse(secrets_yaml)[0].name) } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc' }, spec: { ports: [{ port: 80.0 }, { port: 8443 }] } },
    ],
  },
}
"#,
    );
    fx.sops_encrypt("flat", "name: Ünïcode-NAME\n");
    fx.static_env("flat");

    for (env, ext) in [
        ("nested", vec![("commit_hash", "abc123")]),
        ("flat", vec![]),
    ] {
        let plain = fx.dir.path().join(format!("{env}.yaml"));
        let dec = fx.run(&fx.with_key_file(), &["tanka", "secrets", env]);
        std::fs::write(&plain, &dec.assert_ok().stdout).unwrap();
        let expected = reference(&fx, env, &plain, &ext);
        let mut args = vec!["tanka", "show"];
        let pairs: Vec<String> = ext.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for p in &pairs {
            args.extend(["--ext-str", p.as_str()]);
        }
        args.push(env);
        let out = fx.run(&fx.with_key_file(), &args);
        out.assert_ok();
        assert_eq!(yaml_docs(&out.stdout), expected, "environment {env}");
        assert!(out.stderr.is_empty(), "{}", out.stderr);
    }

    // The order is tanka's: Namespace, Secret, ConfigMap, Deployment.
    let out = fx.run(
        &fx.with_key_file(),
        &["tanka", "show", "--ext-str", "commit_hash=x", "nested"],
    );
    let kinds: Vec<String> = yaml_docs(&out.stdout)
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace/apps",
            "Secret/backend",
            "Secret/frontend-tls",
            "ConfigMap/cfg-ünï",
            "Deployment/backend",
            "Deployment/frontend"
        ]
    );
}

#[test]
fn argocd_revision_becomes_commit_hash_and_tla_str_passes_through() {
    let fx = Fixture::new("vars");
    fx.static_env("default");
    fx.write(
        "environments/default/main.jsonnet",
        r#"function(extra='none') { c: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' },
             data: { commit: std.extVar('commit_hash'), extra: extra, other: std.extVar('other') } } }"#,
    );
    let mut env = fx.env.clone();
    env.insert("ARGOCD_APP_REVISION".into(), "0123abcd".into());
    let out = fx.run(
        &env,
        &[
            "tanka",
            "show",
            "--tla-str",
            "extra=yes",
            "--ext-str",
            "other=o",
            "default",
        ],
    );
    let docs = yaml_docs(&out.assert_ok().stdout);
    assert_eq!(docs[0]["data"]["commit"], "0123abcd");
    assert_eq!(docs[0]["data"]["extra"], "yes");
    // an explicit --ext-str wins over ARGOCD_APP_REVISION
    let out = fx.run(
        &env,
        &[
            "tanka",
            "show",
            "--ext-str",
            "commit_hash=mine",
            "--ext-str",
            "other=o",
            "default",
        ],
    );
    assert_eq!(
        yaml_docs(&out.assert_ok().stdout)[0]["data"]["commit"],
        "mine"
    );
    // secrets_yaml cannot be overridden from the command line
    let out = fx.run(
        &env,
        &["tanka", "show", "--tla-str", "secrets_yaml=x", "default"],
    );
    out.assert_failed_closed();
    assert_eq!(out.code, 2);
}

#[test]
fn natives_behave_like_tankas() {
    let fx = Fixture::new("natives");
    fx.static_env("default");
    fx.write(
        "environments/default/main.jsonnet",
        r#"
local n(name) = std.native(name);
{ c: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'natives' }, data: {
  yaml0: std.toString(n('parseYaml')('')),
  yaml2: std.toString(n('parseYaml')('a: 1\n---\nb: 2\n')),
  json: std.toString(n('parseJson')('{"x": [1, 2]}')),
  mj: n('manifestJsonFromJson')('{"a":1}', 2),
  my: n('manifestYamlFromJson')('{"b":1,"a":[1,2]}'),
  esc: n('escapeStringRegex')('a.b*c'),
  match: std.toString(n('regexMatch')('^a.c$', 'abc')),
  subst: n('regexSubst')('(\\w+)@(\\w+)', 'me@host you@there', '${2}:${1}'),
  sha: n('sha256')('hello'),
} } }
"#,
    );
    let out = fx.run(&fx.env, &["tanka", "show", "default"]);
    let d = &yaml_docs(&out.assert_ok().stdout)[0]["data"];
    assert_eq!(d["yaml0"], "[ ]");
    assert_eq!(d["yaml2"], r#"[{"a": 1}, {"b": 2}]"#);
    assert_eq!(d["json"], r#"{"x": [1, 2]}"#);
    assert_eq!(d["mj"], "{\n  \"a\": 1\n}\n");
    assert_eq!(
        yaml_docs(d["my"].as_str().unwrap())[0],
        serde_json::json!({"a": [1, 2], "b": 1})
    );
    assert!(d["my"].as_str().unwrap().starts_with("a:"));
    assert_eq!(d["esc"], r"a\.b\*c");
    assert_eq!(d["match"], "true");
    assert_eq!(d["subst"], "host:me there:you");
    assert_eq!(
        d["sha"],
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
}

#[test]
fn imports_outside_the_project_root_are_refused() {
    let fx = Fixture::new("escape");
    fx.static_env("default");
    let outside = fx.dir.path().join("outside.txt");
    std::fs::write(&outside, "OUTSIDE-CONTENT").unwrap();
    fx.write("lib/ok.libsonnet", "{ v: 'inside' }");
    std::os::unix::fs::symlink(&outside, fx.root().join("lib/link.txt")).unwrap();
    std::os::unix::fs::symlink(fx.dir.path(), fx.root().join("lib/dirlink")).unwrap();
    let cm = |expr: &str| {
        format!(
            "{{ c: {{ apiVersion: 'v1', kind: 'ConfigMap', metadata: {{ name: 'c' }}, data: {{ v: {expr} }} }} }}"
        )
    };
    // inside the root, `..` is fine
    fx.write(
        "environments/default/main.jsonnet",
        &cm("(import '../../lib/ok.libsonnet').v"),
    );
    let out = fx.run(&fx.env, &["tanka", "show", "default"]);
    assert_eq!(yaml_docs(&out.assert_ok().stdout)[0]["data"]["v"], "inside");

    for expr in [
        format!("importstr '{}'", outside.display()),
        "importstr '/dev/stdin'".to_string(),
        "importstr '/etc/passwd'".to_string(),
        "importstr '../../../outside.txt'".to_string(),
        "importstr '../../../../../../../../etc/passwd'".to_string(),
        "importstr 'link.txt'".to_string(),
        "importstr 'dirlink/outside.txt'".to_string(),
        "(import '../../../outside.txt')".to_string(),
    ] {
        fx.write("environments/default/main.jsonnet", &cm(&expr));
        let out = fx.run(&fx.env, &["tanka", "show", "default"]);
        out.assert_failed_closed();
        assert!(out.stderr.contains("refused"), "{expr}: {}", out.stderr);
        assert!(
            !out.stderr.contains("OUTSIDE-CONTENT") && !out.stderr.contains("root:"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn failures_are_closed_and_never_show_secrets() {
    let fx = Fixture::new("fail-closed");
    fx.static_env("default");
    write_common(&fx);
    const CANARY: &str = "canary-SECRET-value-42";
    let with_secret = |body: &str| {
        format!(
            "local yaml = import 'yaml.libsonnet';\nfunction(secrets_yaml) local s = yaml.parse(secrets_yaml)[0];\n{body}\n"
        )
    };
    fx.write(
        "environments/default/main.jsonnet",
        &with_secret("{ s: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, stringData: { v: s.canary } } }"),
    );
    let file = fx.sops_encrypt("default", &format!("canary: {CANARY}\n"));
    let env = fx.with_key_file();
    fx.run(&env, &["tanka", "show", "default"]).assert_ok();

    let check = |out: common::Outcome, what: &str| {
        out.assert_failed_closed();
        assert!(
            !out.stderr.contains(CANARY),
            "{what} leaked: {}",
            out.stderr
        );
        out
    };

    // jsonnet errors quoting the secret
    fx.write(
        "environments/default/main.jsonnet",
        &with_secret("error 'bad value: ' + s.canary"),
    );
    let out = check(fx.run(&env, &["tanka", "show", "default"]), "error");
    assert!(out.stderr.contains("<redacted>"), "{}", out.stderr);
    fx.write(
        "environments/default/main.jsonnet",
        &with_secret("assert s.canary == 'x' : 'got %s' % s.canary; {}"),
    );
    check(fx.run(&env, &["tanka", "show", "default"]), "assert");
    // a secret as a primitive where objects belong
    fx.write(
        "environments/default/main.jsonnet",
        &with_secret("{ oops: s.canary }"),
    );
    check(fx.run(&env, &["tanka", "show", "default"]), "primitive");
    // std.trace goes to stderr redacted
    fx.write(
        "environments/default/main.jsonnet",
        &with_secret("std.trace('tracing ' + s.canary, { c: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } } })"),
    );
    let out = fx.run(&env, &["tanka", "show", "default"]);
    out.assert_ok();
    assert!(
        out.stderr.contains("TRACE:") && !out.stderr.contains(CANARY),
        "{}",
        out.stderr
    );
    // empty output
    for empty in ["{}", "[]", "{ a: { b: [] }, c: null }"] {
        fx.write(
            "environments/default/main.jsonnet",
            &format!("function(secrets_yaml) {empty}"),
        );
        let out = check(fx.run(&env, &["tanka", "show", "default"]), "empty");
        assert!(
            out.stderr.contains("rendered no Kubernetes objects"),
            "{}",
            out.stderr
        );
    }
    // syntax error
    fx.write(
        "environments/default/main.jsonnet",
        "function(secrets_yaml) { a: ",
    );
    check(fx.run(&env, &["tanka", "show", "default"]), "syntax");

    // wrong key
    fx.write(
        "environments/default/main.jsonnet",
        &with_secret("{ s: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, stringData: { v: s.canary } } }"),
    );
    let other = artifacts_crypto::age::keygen();
    let mut wrong = fx.env.clone();
    wrong.insert(
        "SOPS_AGE_KEY".into(),
        other.identity_file().to_string().into(),
    );
    check(fx.run(&wrong, &["tanka", "show", "default"]), "wrong key");
    // no key at all
    check(fx.run(&fx.env, &["tanka", "show", "default"]), "no key");
    // tampered: the MAC no longer matches
    let text = std::fs::read_to_string(&file).unwrap();
    let mac_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("mac:"))
        .unwrap();
    let tampered = text.replace(mac_line, &mac_line.replacen("data:", "data:A", 1));
    std::fs::write(&file, &tampered).unwrap();
    check(fx.run(&env, &["tanka", "show", "default"]), "tampered");
    // missing file, environment declares secrets in artifacts.toml
    std::fs::remove_file(&file).unwrap();
    fx.write(
        "artifacts.toml",
        "[tanka.default.artifacts.app]\nbackend = \"sops-nix\"\ngenerator = \"gen.sh\"\nfiles.canary = {}\n",
    );
    let out = check(fx.run(&env, &["tanka", "show", "default"]), "missing");
    assert!(out.stderr.contains("declares secrets"), "{}", out.stderr);
    // missing file, nothing declared: secrets_yaml is not bound, so a
    // function needing it fails instead of rendering without secrets
    std::fs::remove_file(fx.root().join("artifacts.toml")).unwrap();
    let out = check(fx.run(&env, &["tanka", "show", "default"]), "unbound");
    assert!(out.stderr.contains("secrets_yaml"), "{}", out.stderr);
}

#[test]
fn environments_without_secrets_render_without_a_key() {
    let fx = Fixture::new("no-secrets");
    fx.static_env("default");
    fx.write(
        "environments/default/main.jsonnet",
        "{ c: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } } }",
    );
    let out = fx.run(&fx.env, &["tanka", "show", "default"]);
    assert_eq!(
        yaml_docs(&out.assert_ok().stdout)[0]["metadata"]["namespace"],
        "default"
    );
    // from a subdirectory, the root is found through jsonnetfile.json
    let sub = fx.root().join("environments/default");
    fx.run_in(&sub, &fx.env, &["tanka", "show", "default"])
        .assert_ok();
    // outside any project
    let out = fx.run_in(fx.dir.path(), &fx.env, &["tanka", "show", "default"]);
    out.assert_failed_closed();
    assert!(out.stderr.contains("jsonnetfile.json"), "{}", out.stderr);
}
