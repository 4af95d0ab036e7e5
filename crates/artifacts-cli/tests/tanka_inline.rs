//! Inline environments, nested environment paths, `--tla-code`/`--ext-code`
//! and the cases the builtin engine refuses, through `artifacts tanka show`
//! and `artifacts cmp …`.
//!
//! Fixtures copy tanka's own test cases (`pkg/tanka/testdata/cases`) and its
//! expected errors (`pkg/tanka/load_test.go`); expected outputs are written
//! by hand from tanka's documented processing, and the jsonnet side is
//! cross-checked with the C++ `jsonnet` evaluating the same files.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::Command;

use common::{Fixture, Outcome, yaml_docs};

/// An inline environment in tanka's fixture shape.
fn env_object(name: &str, namespace: &str, data: &str, extra_spec: &str) -> String {
    format!(
        "{{ apiVersion: 'tanka.dev/v1alpha1', kind: 'Environment', metadata: {{ name: '{name}' }},
           spec: {{ apiServer: 'https://localhost', namespace: '{namespace}'{extra_spec} }},
           data: {data} }}"
    )
}

const CONFIG: &str = "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'config' } }";

fn show(fx: &Fixture, args: &[&str]) -> Outcome {
    let mut all = vec!["tanka", "show"];
    all.extend_from_slice(args);
    fx.run(&fx.env, &all)
}

/// A refusal: non-zero exit, nothing on stdout, `needle` on stderr.
fn refused(out: &Outcome, needle: &str) {
    out.assert_failed_closed();
    assert!(
        out.stderr.contains(needle),
        "{needle:?} not in {}",
        out.stderr
    );
}

/// The first 48 hex digits of SHA-256, by the coreutils `sha256sum`.
fn sha256_48(text: &str) -> String {
    let sum = common::tool("sha256sum", "coreutils");
    let mut child = Command::new(sum)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..48].to_string()
}

/// The C++ jsonnet's output for `main` (run in the project root).
fn cpp_jsonnet(fx: &Fixture, args: &[&str]) -> serde_json::Value {
    let out = Command::new(common::jsonnet())
        .current_dir(fx.root())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "jsonnet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_single_inline_environment_renders_its_data_with_its_spec_and_secrets() {
    let fx = Fixture::new("inline-single");
    fx.write(
        "lib/yaml.libsonnet",
        "{ parse(s):: std.native('parseYaml')(s) }\n",
    );
    fx.write("shim/yaml.libsonnet", "{ parse(s):: [std.parseYaml(s)] }\n");
    let data = "{ secret: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db' },
                  stringData: { password: (import 'yaml.libsonnet').parse(secrets_yaml)[0].db.password } },
                cm: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', annotations: {} },
                  data: { mode: 'yes', port: '8080' } },
                ns: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'withenv' } } }";
    fx.write(
        "environments/default/main.jsonnet",
        &format!(
            "function(secrets_yaml)\n{}\n",
            env_object("withenv", "withenv", data, ", injectLabels: true")
        ),
    );
    fx.sops_encrypt("default", "db:\n  password: hunter2-pässwörd\n");
    let out = fx.run(&fx.with_key_file(), &["tanka", "show", "default"]);
    out.assert_ok();
    // tanka: `data` extracted, `spec.namespace` injected (not into the
    // Namespace), empty annotations dropped, the environment label is the
    // hash of `<metadata.name>:<entry point>`, objects in kind order.
    let label = sha256_48("withenv:environments/default/main.jsonnet");
    let expected = format!(
        "apiVersion: v1
kind: Namespace
metadata:
  labels:
    tanka.dev/environment: {label}
  name: withenv
---
apiVersion: v1
kind: Secret
metadata:
  labels:
    tanka.dev/environment: {label}
  name: db
  namespace: withenv
stringData:
  password: hunter2-pässwörd
---
apiVersion: v1
data:
  mode: \"yes\"
  port: \"8080\"
kind: ConfigMap
metadata:
  labels:
    tanka.dev/environment: {label}
  name: settings
  namespace: withenv
"
    );
    assert_eq!(out.stdout, expected);

    // The C++ jsonnet evaluates the same file to the same environment.
    let plain = fx.dir.path().join("plain.yaml");
    std::fs::write(
        &plain,
        fx.run(&fx.with_key_file(), &["tanka", "secrets", "default"])
            .assert_ok()
            .stdout
            .as_bytes(),
    )
    .unwrap();
    let raw = cpp_jsonnet(
        &fx,
        &[
            "-J",
            "lib",
            "-J",
            "shim",
            "--tla-str-file",
            &format!("secrets_yaml={}", plain.display()),
            "environments/default/main.jsonnet",
        ],
    );
    assert_eq!(raw["spec"]["namespace"], "withenv");
    let docs = yaml_docs(&out.stdout);
    for (key, doc) in [("ns", &docs[0]), ("secret", &docs[1]), ("cm", &docs[2])] {
        let mut from_jsonnet = raw["data"][key].clone();
        let md = from_jsonnet["metadata"].as_object_mut().unwrap();
        md.remove("annotations");
        md.insert(
            "labels".into(),
            serde_json::json!({"tanka.dev/environment": label}),
        );
        if key != "ns" {
            md.insert("namespace".into(), "withenv".into());
        }
        assert_eq!(&from_jsonnet, doc, "{key}");
    }
}

/// tanka's `multiple-inline-envs` fixture.
fn multiple(fx: &Fixture) {
    let envs: Vec<String> = ["project1-env1", "project1-env2", "project2-env1"]
        .iter()
        .map(|n| env_object(n, n, CONFIG, ""))
        .collect();
    fx.write(
        "environments/default/main.jsonnet",
        &format!(
            "{{ project1_env1: {}, project1_env2: {}, project2_env1: {} }}",
            envs[0], envs[1], envs[2]
        ),
    );
}

#[test]
fn several_inline_environments_need_a_name_as_in_tanka() {
    let fx = Fixture::new("inline-multiple");
    multiple(&fx);
    // tanka's messages, from its load_test.go
    refused(
        &show(&fx, &["default"]),
        "found multiple Environments in \"environments/default\". Use `--name` to select a single one: \n - project1-env1\n - project1-env2\n - project2-env1",
    );
    refused(
        &show(&fx, &["--name", "env1", "default"]),
        "found multiple Environments in \"environments/default\" matching \"env1\". Provide a more specific name that matches a single one: \n - project1-env1\n - project2-env1",
    );
    refused(
        &show(&fx, &["--name", "no match", "default"]),
        "found no matching environments; run 'tk env list environments/default' to view available options",
    );
    // a partial match that is unique, and a full match
    for (name, ns) in [
        ("project2", "project2-env1"),
        ("project1-env1", "project1-env1"),
    ] {
        let out = show(&fx, &["--name", name, "default"]);
        assert_eq!(
            out.assert_ok().stdout,
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config\n  namespace: {ns}\n"
            ),
            "{name}"
        );
    }
}

#[test]
fn an_exact_name_wins_over_partial_matches() {
    let fx = Fixture::new("inline-conflict");
    // tanka's `inline-name-conflict` fixture
    fx.write(
        "environments/default/main.jsonnet",
        &format!(
            "{{ base_env: {}, other_env: {} }}",
            env_object("base", "base", CONFIG, ""),
            env_object("base-and-more", "base-and-more", CONFIG, "")
        ),
    );
    let out = show(&fx, &["--name", "base", "default"]);
    assert_eq!(
        out.assert_ok().stdout,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config\n  namespace: base\n"
    );
}

#[test]
fn a_name_selection_leaves_other_environments_unevaluated() {
    let fx = Fixture::new("inline-lazy");
    fx.write(
        "environments/default/main.jsonnet",
        &format!(
            "[{}, {}, {{ stray: 42 }}]",
            env_object("good", "good", CONFIG, ""),
            env_object("broken", "broken", "error 'never evaluated'", "")
        ),
    );
    let out = show(&fx, &["--name", "good", "default"]);
    assert_eq!(
        yaml_docs(&out.assert_ok().stdout)[0]["metadata"]["namespace"],
        "good"
    );
    // without a name everything is evaluated, as in tanka
    refused(&show(&fx, &["default"]), "never evaluated");
}

#[test]
fn static_and_inline_at_once_is_tankas_error() {
    let fx = Fixture::new("static-and-inline");
    // tanka's `static-and-inline` fixture
    fx.write(
        "environments/default/main.jsonnet",
        &env_object("inline", "inline", CONFIG, ""),
    );
    fx.write(
        "environments/default/spec.json",
        r#"{"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "static"},
            "spec": {"apiServer": "https://localhost", "namespace": "static"}}"#,
    );
    refused(
        &show(&fx, &["--name", "inline", "default"]),
        "found a tanka Environment resource. Check that you aren't using a spec.json and inline environments simultaneously",
    );
    // an Environment inside an inline environment's data is the same error
    std::fs::remove_file(fx.root().join("environments/default/spec.json")).unwrap();
    fx.write(
        "environments/default/main.jsonnet",
        &env_object("outer", "outer", &env_object("inner", "x", CONFIG, ""), ""),
    );
    refused(
        &show(&fx, &["default"]),
        "found a tanka Environment resource",
    );
}

#[test]
fn without_spec_json_plain_objects_are_no_environment() {
    let fx = Fixture::new("no-spec");
    fx.write(
        "environments/default/main.jsonnet",
        &format!("{{ c: {CONFIG} }}"),
    );
    refused(
        &show(&fx, &["default"]),
        "found no matching environments; run 'tk env list environments/default'",
    );
    // tk.env is only for static environments, as in tanka
    fx.write(
        "environments/default/main.jsonnet",
        &env_object(
            "e",
            "e",
            &format!("{CONFIG} {{ data: {{ ns: (import 'tk').env.spec.namespace }} }}"),
            "",
        ),
    );
    refused(
        &show(&fx, &["default"]),
        "only supported for static environments",
    );
}

#[test]
fn inline_function_environments_take_tlas_and_spec_defaults() {
    let fx = Fixture::new("inline-tla");
    // tanka's `with-optional-tlas` fixture, plus resource defaults
    fx.write(
        "environments/default/main.jsonnet",
        &format!(
            "function(bar='bar', baz='baz') {}",
            env_object(
                "' + bar + '-' + baz + '",
                "inline",
                CONFIG,
                ", resourceDefaults: { labels: { team: 'a' }, annotations: { note: 'b' } }"
            )
        ),
    );
    let out = show(
        &fx,
        &[
            "--tla-str",
            "bar=x",
            "--tla-code",
            "baz='y'",
            "--name",
            "x-y",
            "default",
        ],
    );
    assert_eq!(
        out.assert_ok().stdout,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  annotations:\n    note: b\n  labels:\n    team: a\n  name: config\n  namespace: inline\n"
    );
}

#[test]
fn nested_environments_by_path_in_show_and_cmp() {
    let fx = Fixture::new("nested");
    fx.static_env("prom-grafana/dev");
    fx.write(
        "environments/prom-grafana/dev/main.jsonnet",
        &format!("{{ c: {CONFIG} }}"),
    );
    fx.static_env("default");
    fx.write(
        "environments/default/main.jsonnet",
        &format!("{{ c: {CONFIG} }}"),
    );
    let expected =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config\n  namespace: default\n";
    for name in [
        "prom-grafana/dev",
        "environments/prom-grafana/dev",
        "environments/prom-grafana/dev/",
    ] {
        assert_eq!(show(&fx, &[name]).assert_ok().stdout, expected, "{name}");
    }
    for bad in [
        "prom-grafana/../../x",
        "../prom-grafana/dev",
        "/prom-grafana/dev",
    ] {
        let out = show(&fx, &[bad]);
        out.assert_failed_closed();
        assert_eq!(out.code, 2, "{bad}: {out:?}");
    }

    // a static environment's label hashes its path and entry point (tanka's
    // `metadata.name` is the path from the root)
    fx.write(
        "environments/a/b/spec.json",
        r#"{"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "ignored"},
            "spec": {"namespace": "ab", "injectLabels": true}}"#,
    );
    fx.write(
        "environments/a/b/main.jsonnet",
        &format!("{{ c: {CONFIG} }}"),
    );
    let out = show(&fx, &["a/b"]);
    assert_eq!(
        out.assert_ok().stdout,
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels:\n    tanka.dev/environment: {}\n  name: config\n  namespace: ab\n",
            sha256_48("environments/a/b:environments/a/b/main.jsonnet")
        )
    );

    let argocd = |tk_env: Option<&str>| {
        let mut env: BTreeMap<String, OsString> = fx.env.clone();
        env.insert("ARGOCD_APP_REVISION".into(), "abc".into());
        if let Some(e) = tk_env {
            env.insert("ARGOCD_ENV_TK_ENV".into(), e.into());
        }
        env
    };
    for name in ["prom-grafana/dev", "environments/prom-grafana/dev"] {
        let out = fx.run(&argocd(Some(name)), &["cmp", "discover"]);
        assert_eq!(out.assert_ok().stdout, "prom-grafana/dev\n");
        let out = fx.run(&argocd(Some(name)), &["cmp", "generate"]);
        assert_eq!(out.assert_ok().stdout, expected);
        assert_eq!(out.stderr, "");
    }
    // no environment named and no `default`: every environment, so the
    // plugin applies and generate fails naming `default`
    std::fs::remove_dir_all(fx.root().join("environments/default")).unwrap();
    let out = fx.run(&argocd(None), &["cmp", "discover"]);
    assert_eq!(out.assert_ok().stdout, "a/b\nprom-grafana/dev\n");
    refused(
        &fx.run(&argocd(None), &["cmp", "generate"]),
        "environment `default` not found",
    );
    // no such environment, the parent directory, a traversal: no match
    for name in [
        "prom-grafana",
        "prom-grafana/prod",
        "prom-grafana/../default",
        "../x",
    ] {
        let out = fx.run(&argocd(Some(name)), &["cmp", "discover"]);
        assert_eq!(out.assert_ok().stdout, "", "{name}");
        fx.run(&argocd(Some(name)), &["cmp", "generate"])
            .assert_failed_closed();
    }
}

#[test]
fn cmp_generate_selects_the_inline_environment_the_application_names() {
    let fx = Fixture::new("cmp-inline");
    multiple(&fx);
    let mut env = fx.env.clone();
    env.insert("ARGOCD_ENV_TK_ENV".into(), "default".into());
    // several environments and no name: refused, nothing on stdout
    refused(
        &fx.run(&env, &["cmp", "generate"]),
        "Use `--name` to select a single one",
    );
    env.insert("ARGOCD_ENV_TK_NAME".into(), "project2".into());
    let out = fx.run(&env, &["cmp", "generate"]);
    assert_eq!(
        yaml_docs(&out.assert_ok().stdout)[0]["metadata"]["namespace"],
        "project2-env1"
    );
}

#[test]
fn tla_and_ext_code_with_tankas_precedence() {
    let fx = Fixture::new("vars-code");
    fx.static_env("default");
    fx.write(
        "environments/default/main.jsonnet",
        "function(n, s='none') { c: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' },
           data: { n: std.toString(n + 1), s: s, e: std.toString(std.extVar('e')), both: std.toString(std.extVar('both')) } } }",
    );
    let data = |args: &[&str]| {
        let mut all = args.to_vec();
        all.push("default");
        let out = show(&fx, &all);
        yaml_docs(&out.assert_ok().stdout)[0]["data"].clone()
    };
    let d = data(&[
        "--tla-code",
        "n=41",
        "--ext-code",
        "e={ a: [1, 2] }",
        // a string beats code of the same name whatever the order (tanka)
        "--ext-str",
        "both=string",
        "--ext-code",
        "both=42",
    ]);
    assert_eq!(d["n"], "42");
    assert_eq!(d["s"], "none");
    assert_eq!(d["e"], "{\"a\": [1, 2]}");
    assert_eq!(d["both"], "string");
    // among one kind, the last wins
    let d = data(&[
        "--tla-code",
        "n=1",
        "--tla-code",
        "n=2",
        "--ext-str",
        "e=1",
        "--ext-str",
        "both=x",
        "--ext-str",
        "both=y",
    ]);
    assert_eq!(d["n"], "3");
    assert_eq!(d["both"], "y");
    // code is code: a string given as code must be quoted
    let out = show(
        &fx,
        &[
            "--tla-code",
            "n=oops",
            "--ext-str",
            "e=1",
            "--ext-str",
            "both=1",
            "default",
        ],
    );
    out.assert_failed_closed();
    // secrets_yaml can never come from the command line
    for flag in ["--tla-code", "--tla-str"] {
        let out = show(
            &fx,
            &[flag, "secrets_yaml=importstr '/dev/stdin'", "default"],
        );
        out.assert_failed_closed();
        assert_eq!(out.code, 2);
        assert!(
            out.stderr.contains("secrets_yaml")
                && out.stderr.contains("cannot be set on the command line"),
            "{}",
            out.stderr
        );
    }
}

/// An environment whose single object is `obj`, in a static environment
/// with `spec` (JSON) as its `spec`.
fn unsupported_case(fx: &Fixture, spec: &str, main: &str) -> Outcome {
    fx.write(
        "environments/default/spec.json",
        &format!(
            r#"{{"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment", "spec": {spec}}}"#
        ),
    );
    fx.write("environments/default/main.jsonnet", main);
    let mut env = fx.env.clone();
    env.insert("ARGOCD_ENV_TK_ENV".into(), "default".into());
    fx.run(&env, &["cmp", "generate"])
}

#[test]
fn what_the_builtin_engine_cannot_render_exactly_is_refused_by_cmp_generate() {
    let fx = Fixture::new("unsupported");
    let cm = |extra: &str| {
        format!("{{ apiVersion: 'v1', kind: 'ConfigMap', metadata: {{ name: 'c' }}{extra} }}")
    };
    for (spec, main, feature) in [
        // tanka compares its own version with this
        (
            r#"{"namespace": "x", "expectVersions": {"tanka": ">= 0.20"}}"#,
            format!("{{ c: {} }}", cm("")),
            "`spec.expectVersions.tanka`",
        ),
        // two different objects with one kind/namespace/name: tanka's order is random
        (
            r#"{"namespace": "x"}"#,
            format!(
                "{{ a: {}, b: {} }}",
                cm(", data: { v: '1' }"),
                cm(", data: { v: '2' }")
            ),
            "two different objects `ConfigMap/c`",
        ),
        // key order by Unicode letter classes tanka takes from Go's tables
        (
            r#"{"namespace": "x"}"#,
            format!("{{ c: {} }}", cm(", data: { '日本': 'a', 'ab': 'b' }")),
            "the order of the map keys",
        ),
        // a List in a List: whether tanka unwraps it depends on Go's map order
        (
            r#"{"namespace": "x"}"#,
            "{ l: { apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'List', items: [] }] } }".to_string(),
            "a List inside a List (at `.l.items[0]`)",
        ),
        // yaml.v3 reads the plain `017` as a number, our parser as a string
        (
            r#"{"namespace": "x"}"#,
            format!("{{ c: {} }}", cm(", data: { v: std.toString(std.native('parseYaml')('pin: 017')) }")),
            "parseYaml of a plain scalar that tanka's yaml.v3 reads as a number",
        ),
        // tanka reads "the" value of a map with two entries: random
        (
            r#"{"namespace": "x", "injectLabels": true, "tankaEnvLabelFromFields": [".metadata.labels.a"]}"#,
            format!("{{ c: {} }}", cm("")),
            "`spec.tankaEnvLabelFromFields` entry `.metadata.labels.a`",
        ),
    ] {
        let out = unsupported_case(&fx, spec, &main);
        refused(&out, feature);
        assert!(
            out.stderr.contains("does not render exactly as tanka does"),
            "{}",
            out.stderr
        );
    }
    // an identical duplicate renders: its order does not matter
    let out = unsupported_case(
        &fx,
        r#"{"namespace": "x"}"#,
        &format!("{{ a: {}, b: {} }}", cm(""), cm("")),
    );
    assert_eq!(yaml_docs(&out.assert_ok().stdout).len(), 2);
}

#[test]
fn natives_give_tankas_own_expected_values() {
    // pkg/jsonnet/native/funcs_test.go in tanka
    let fx = Fixture::new("natives-tanka");
    fx.static_env("default");
    fx.write(
        "environments/default/main.jsonnet",
        r#"local n(name) = std.native(name);
{ c: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: {
  j1: n('manifestJsonFromJson')('{}', 4),
  j2: n('manifestJsonFromJson')('{ "a": 47}', 4),
  y1: n('manifestYamlFromJson')('{}'),
  y2: n('manifestYamlFromJson')('{ "a": 47}'),
  y3: n('manifestYamlFromJson')('{ "list": ["a", "b", "c"]}'),
  e1: n('escapeStringRegex')('([0-9]+).*\\s'),
} } }"#,
    );
    let out = show(&fx, &["default"]);
    let d = &yaml_docs(&out.assert_ok().stdout)[0]["data"];
    assert_eq!(d["j1"], "{}\n");
    assert_eq!(d["j2"], "{\n    \"a\": 47\n}\n");
    assert_eq!(d["y1"], "{}\n");
    assert_eq!(d["y2"], "a: 47\n");
    assert_eq!(d["y3"], "list:\n    - a\n    - b\n    - c\n");
    assert_eq!(d["e1"], "\\(\\[0-9\\]\\+\\)\\.\\*\\\\s");
    // invalid input is an error, as in tanka
    for call in [
        "n('manifestJsonFromJson')('', 4)",
        "n('manifestYamlFromJson')('')",
    ] {
        fx.write(
            "environments/default/main.jsonnet",
            &format!("local n(name) = std.native(name); {{ c: {{ apiVersion: 'v1', kind: 'ConfigMap', metadata: {{ name: 'c' }}, data: {{ v: {call} }} }} }}"),
        );
        show(&fx, &["default"]).assert_failed_closed();
    }
}
