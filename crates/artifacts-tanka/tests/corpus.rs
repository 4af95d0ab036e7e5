//! A corpus of 25 tanka environments (`tests/corpus/environments`: static
//! and inline, nested paths, lists, kind ordering, namespaces, labels,
//! resource defaults, strings and numbers YAML treats specially, natives,
//! TLAs and external variables), each checked three ways:
//!
//! 1. the builtin engine's `tk show` bytes equal `tests/corpus/expected/`;
//! 2. the C++ `jsonnet` evaluating the same files (tanka's evaluation
//!    script for `--name`, tanka's `tk` library and ext var), then tanka's
//!    processing, gives the same objects as data and the same bytes;
//! 3. the real go-yaml v2 inside `kubectl` (`annotate --local -o yaml`, its
//!    printer being `sigs.k8s.io/yaml` on go-yaml v2.4.0) prints the
//!    expected objects byte for byte as our emitter does.
//!
//! `ARTIFACTS_BLESS_CORPUS=1` rewrites the expected files (then check the
//! diff: the other two checks still have to pass).

use std::path::{Path, PathBuf};
use std::process::Command;

use artifacts_tanka::eval::{VarFlag, VarValue, Vars};
use artifacts_tanka::project::{Kind, Project};
use artifacts_tanka::render::{self, Engine};
use artifacts_tanka::{goyaml, inline, process};
use serde_json::Value;

struct Case {
    env: &'static str,
    name: Option<&'static str>,
    vars: &'static [(VarFlag, &'static str)],
    /// The C++ jsonnet can evaluate it (no tanka natives).
    jsonnet: bool,
    /// kubectl reads the objects back unchanged (no integers of 1e6 and
    /// more, which it keeps as integers while tanka has floats; names present).
    kubectl: bool,
}

const fn case(env: &'static str) -> Case {
    Case {
        env,
        name: None,
        vars: &[],
        jsonnet: true,
        kubectl: true,
    }
}

const CASES: &[Case] = &[
    case("static-basic"),
    case("static-lists"),
    case("static-order"),
    case("static-cluster-wide"),
    case("static-inject-labels"),
    case("static-resource-defaults"),
    case("static-label-fields"),
    case("static-strings"),
    case("static-multiline"),
    case("static-long"),
    Case {
        kubectl: false,
        ..case("static-numbers")
    },
    case("static-keys"),
    case("static-empty"),
    Case {
        kubectl: false,
        ..case("static-generate-name")
    },
    Case {
        vars: &[
            (VarFlag::TlaCode, "replicas=3"),
            (VarFlag::TlaStr, "image=registry.example/app:1.0"),
            (VarFlag::TlaCode, "tags=['a', 'b']"),
        ],
        ..case("static-tla")
    },
    Case {
        vars: &[
            (VarFlag::ExtStr, "commit_hash=0123abcd"),
            (
                VarFlag::ExtCode,
                "config={ region: 'eu', zones: ['a', 'b'] }",
            ),
            // a string wins over code of the same name, whatever the order
            (VarFlag::ExtStr, "both=string"),
            (VarFlag::ExtCode, "both={ code: true }"),
        ],
        ..case("static-ext")
    },
    case("static-tk-env"),
    Case {
        jsonnet: false,
        ..case("static-natives")
    },
    case("static-deep"),
    case("nested/team/app"),
    case("inline-single"),
    Case {
        name: Some("prod"),
        ..case("inline-array")
    },
    Case {
        name: Some("us-"),
        ..case("inline-partial")
    },
    case("inline-list-data"),
    Case {
        vars: &[
            (VarFlag::TlaStr, "region=us"),
            (VarFlag::TlaCode, "replicas=2"),
        ],
        ..case("inline-function")
    },
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn expected_file(env: &str) -> PathBuf {
    corpus()
        .join("expected")
        .join(format!("{}.yaml", env.replace('/', "_")))
}

fn vars(case: &Case) -> Vars {
    let mut vars = Vars::default();
    // tanka's precedence: every code first, then every string
    for code in [true, false] {
        for (flag, arg) in case.vars {
            if matches!(flag, VarFlag::ExtCode | VarFlag::TlaCode) == code {
                vars.set(*flag, arg).unwrap();
            }
        }
    }
    vars
}

fn builtin(case: &Case) -> String {
    let project = Project::at(&corpus()).unwrap();
    let env = project.environment(case.env).unwrap();
    render::show(
        &project,
        &env,
        None,
        &vars(case),
        case.name,
        &Engine::Builtin,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", case.env))
    .yaml
}

#[test]
fn the_corpus_has_at_least_20_environments_and_every_one_is_checked() {
    let project = Project::at(&corpus()).unwrap();
    let all = project.environments().unwrap();
    assert!(all.len() >= 20, "{all:?}");
    let cases: Vec<&str> = CASES.iter().map(|c| c.env).collect();
    assert_eq!(all, {
        let mut c = cases.clone();
        c.sort();
        c
    });
}

#[test]
fn builtin_engine_prints_the_expected_bytes() {
    let bless = std::env::var_os("ARTIFACTS_BLESS_CORPUS").is_some();
    for case in CASES {
        let out = builtin(case);
        let file = expected_file(case.env);
        if bless {
            std::fs::write(&file, &out).unwrap();
            continue;
        }
        let expected =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(out, expected, "environment {}", case.env);
    }
}

/// tanka's `--name` evaluation script, written for the C++ jsonnet: every
/// `Environment` whose name contains `name` is kept, everything else
/// becomes `{}`. Function entry points get the command line's TLAs.
fn select_script(main: &str, name: &str, tlas: &[&str]) -> String {
    let call = if tlas.is_empty() {
        format!("local main = (import '{main}');")
    } else {
        let args: Vec<String> = tlas.iter().map(|t| format!("{t}={t}")).collect();
        format!(
            "function({}) local main = (import '{main}')({});",
            tlas.join(", "),
            args.join(", ")
        )
    };
    format!(
        "{call}
local singleEnv(object) =
  if std.isObject(object) then
    if std.objectHas(object, 'apiVersion') && std.objectHas(object, 'kind') then
      if object.kind == 'Environment' && std.length(std.findSubstr('{name}', object.metadata.name)) > 0
      then object else {{}}
    else std.mapWithKey(function(key, obj) singleEnv(obj), object)
  else if std.isArray(object) then std.map(singleEnv, object)
  else {{}};
singleEnv(main)
"
    )
}

/// The C++ jsonnet's output for `case`, processed as tanka processes it.
fn reference(case: &Case) -> Vec<Value> {
    let root = corpus();
    let project = Project::at(&root).unwrap();
    let env = project.environment(case.env).unwrap();
    let environment_code = match env.kind() {
        Kind::Static(spec) => spec.to_json().to_string(),
        Kind::Inline => "error 'inline'".to_string(),
    };
    let mut cmd = Command::new(artifacts_testkit::tool("jsonnet", "jsonnet"));
    // C++ jsonnet: the right-most -J wins; tanka: env dir, lib, vendor.
    cmd.current_dir(&root)
        .args(["-J", "lib", "-J"])
        .arg(env.dir())
        .args(["-J", "shim"])
        .arg("--ext-code")
        .arg(format!("tanka.dev/environment={environment_code}"));
    // One value per name, after tanka's precedence.
    let vars = vars(case);
    for (kind, map) in [("ext", &vars.ext), ("tla", &vars.tla)] {
        for (k, v) in map {
            let (flag, value) = match v {
                VarValue::Str(s) => ("str", s),
                VarValue::Code(c) => ("code", c),
            };
            cmd.arg(format!("--{kind}-{flag}"))
                .arg(format!("{k}={value}"));
        }
    }
    let tla_names: Vec<&str> = vars.tla.keys().map(String::as_str).collect();
    match case.name {
        Some(name) => {
            cmd.arg("-e")
                .arg(select_script(&env.entrypoint(), name, &tla_names));
        }
        None => {
            cmd.arg(env.entrypoint());
        }
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "jsonnet for {}: {}",
        case.env,
        String::from_utf8_lossy(&out.stderr)
    );
    let raw: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (spec, data) = match env.kind() {
        Kind::Static(spec) => ((**spec).clone(), raw),
        Kind::Inline => inline::select(raw, case.name, &env.path(), &env.entrypoint()).unwrap(),
    };
    process::process(data, &spec)
        .unwrap()
        .into_iter()
        .map(Value::Object)
        .collect()
}

#[test]
fn builtin_engine_equals_cpp_jsonnet_as_data_and_bytes() {
    let mut checked = 0;
    for case in CASES.iter().filter(|c| c.jsonnet) {
        let expected = reference(case);
        let out = builtin(case);
        let docs = artifacts_tanka::output::parse_stream(&out).unwrap();
        assert_eq!(
            numbers_as_floats(Value::Array(docs)),
            numbers_as_floats(Value::Array(expected.clone())),
            "environment {} as data",
            case.env
        );
        assert_eq!(
            out,
            goyaml::stream(&expected).unwrap(),
            "environment {} as bytes",
            case.env
        );
        checked += 1;
    }
    assert!(checked >= 20, "{checked}");
}

/// JSON with every character beyond ASCII escaped: go-yaml's reader (which
/// kubectl reads files with) refuses some characters written raw.
fn ascii_json(v: &Value) -> String {
    let mut out = String::new();
    for c in v.to_string().chars() {
        if c.is_ascii() && c != '\u{7f}' {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Numbers compared by value (YAML reads `1.23456789e+08` as a float,
/// jsonnet's JSON as an integer).
fn numbers_as_floats(v: Value) -> Value {
    match v {
        Value::Number(n) => {
            serde_json::Number::from_f64(n.as_f64().unwrap()).map_or(Value::Null, Value::Number)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(numbers_as_floats).collect()),
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, numbers_as_floats(v)))
                .collect(),
        ),
        other => other,
    }
}

/// `kubectl annotate --local` adds `metadata.annotations: {}` where there
/// is none; everything else it prints as it read it.
fn with_annotations(mut v: Value) -> Value {
    if let Some(md) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        md.entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
    }
    v
}

#[test]
fn our_yaml_equals_go_yaml_v2_in_kubectl() {
    let kubectl = artifacts_testkit::tool("kubectl", "kubernetes-client");
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for case in CASES.iter().filter(|c| c.kubectl) {
        let expected = std::fs::read_to_string(expected_file(case.env)).unwrap();
        let docs: Vec<Value> = artifacts_tanka::output::parse_stream(&expected)
            .unwrap()
            .into_iter()
            .map(with_annotations)
            .collect();
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": docs});
        let file = dir.path().join("list.json");
        std::fs::write(&file, ascii_json(&list)).unwrap();
        let out = Command::new(&kubectl)
            .args(["annotate", "--local", "-o", "yaml", "-f"])
            .arg(&file)
            .arg("corpus.invalid/absent-")
            .env("KUBECONFIG", dir.path().join("none"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl for {}: {}",
            case.env,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            goyaml::stream(&docs).unwrap(),
            "environment {}",
            case.env
        );
        checked += 1;
    }
    assert!(checked >= 20, "{checked}");
}

/// tanka holds every number as a float64 and prints it with
/// `strconv.FormatFloat(f, 'g', -1, 64)`; kubectl prints fractional numbers
/// the same way (integers it keeps as integers, so only fractions here).
#[test]
fn fractional_numbers_equal_go_formatfloat_in_kubectl() {
    let kubectl = artifacts_testkit::tool("kubectl", "kubernetes-client");
    let values = [
        0.5,
        -2.25,
        0.0001,
        0.00001,
        1.5e-7,
        0.1 + 0.2,
        1.0 / 3.0,
        123456.789,
        1234567.5,
        6.02e23,
        1.7976931348623157e308,
        5e-324,
    ];
    let data: serde_json::Map<String, Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("v{i:02}"), serde_json::json!(v)))
        .collect();
    let doc = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "floats", "annotations": {}},
        "values": data,
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("floats.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = Command::new(kubectl)
        .args(["annotate", "--local", "-o", "yaml", "-f"])
        .arg(&file)
        .arg("corpus.invalid/absent-")
        .env("KUBECONFIG", dir.path().join("none"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = goyaml::marshal(&doc, goyaml::Flavor::V2).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), ours);
    assert!(
        ours.contains("1.2345675e+06") && ours.contains("1e-05"),
        "{ours}"
    );
}
