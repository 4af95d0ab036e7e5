//! Loading and validating declarations: shapes, defaults, every kind of problem.

use std::path::Path;

use artifacts_model::load::{from_value, load_manifest, load_manifest_validated, load_nix_json};
use artifacts_model::validate::validate;
use artifacts_model::{BackendRule, Mode, Model, PromptKind, TargetId, TargetKind};

fn toml_model(text: &str) -> Result<Model, artifacts_model::ModelError> {
    let value: serde_json::Value = toml::from_str(text).unwrap();
    from_value(Path::new("/p/artifacts.toml"), Path::new("/p"), &value)
}

/// Every problem of a TOML manifest, load and validation stages together.
fn problems(text: &str, backends: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("artifacts.toml");
    std::fs::write(&path, text).unwrap();
    match load_manifest_validated(&path, backends) {
        Ok(_) => Vec::new(),
        Err(error) => {
            let text = error.to_string();
            let dir = dir.path().display().to_string();
            // Paths in messages are the temp dir's; tests speak of /p.
            text.replace(&dir, "/p")
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }
}

fn has(problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "no problem contains {needle:?}:\n{}",
        problems.join("\n")
    );
}

#[test]
fn nix_eval_json_shape_loads_with_upstream_defaults() {
    let json = r#"{
      "nixos": [{"machine": "m1", "config": {"agenix": {"publicHostKey": "age1x"}},
                 "artifacts": {"ssh": {"name": "ssh", "shared": false, "serialization": "agenix",
                   "generator": "/nix/store/abc-gen", "description": null,
                   "prompts": {"comment": {"name": "comment", "description": "Key comment", "type": "line"}},
                   "files": {"key": {"name": "key", "path": null, "owner": null, "group": null, "mode": null}}}}}],
      "home": [{"user": "alice", "artifacts": {"token": {"generator": "/nix/store/def-gen", "backend": "agenix",
                 "files": {"t": {}}}}, "config": {}}],
      "tanka": [{"environment": "default", "artifacts": {"db": {"generator": "/nix/store/g", "backend": "agenix",
                 "files": {"password": {}}}}}]
    }"#;
    let model = load_nix_json(Path::new("/flake"), Path::new("/flake"), json).unwrap();
    assert_eq!(model.targets.len(), 3);
    let m1 = model
        .target(&TargetId::new(TargetKind::Nixos, "m1"))
        .unwrap();
    let ssh = &m1.artifacts["ssh"];
    assert_eq!(
        ssh.backend.as_deref(),
        Some("agenix"),
        "legacy `serialization` is the backend"
    );
    let key = &ssh.files["key"];
    assert_eq!(key.path, "/run/artifacts/ssh/key");
    assert_eq!(key.owner.as_deref(), Some("root"));
    assert_eq!(key.group.as_deref(), Some("root"));
    assert_eq!(key.mode, Mode(0o400));
    assert!(key.secret);
    assert_eq!(ssh.prompts["comment"].kind, PromptKind::Line);
    assert_eq!(m1.config["agenix"]["publicHostKey"], "age1x");
    let alice = model
        .target(&TargetId::new(TargetKind::Home, "alice"))
        .unwrap();
    let file = &alice.artifacts["token"].files["t"];
    assert_eq!(file.path, "$XDG_RUNTIME_DIR/artifacts/token/t");
    assert_eq!(file.owner, None);
    let env = model
        .target(&TargetId::new(TargetKind::Tanka, "default"))
        .unwrap();
    assert_eq!(env.artifacts["db"].files["password"].path, "db/password");
    validate(&model, &["agenix"]).unwrap();
}

#[test]
fn yaml_and_json_manifests_load_like_toml() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("artifacts.yaml");
    std::fs::write(
        &yaml,
        "default: {backend: b}\nnixos:\n  m:\n    artifacts:\n      x:\n        generator: gen.sh\n        files: {f: {mode: \"0640\"}}\n",
    )
    .unwrap();
    let model = load_manifest(&yaml).unwrap();
    let x = &model.targets[0].artifacts["x"];
    assert_eq!(
        x.generator.as_deref(),
        Some(dir.path().join("gen.sh").as_path()),
        "relative to the manifest"
    );
    assert_eq!(x.files["f"].mode, Mode(0o640));
    let json = dir.path().join("artifacts.json");
    std::fs::write(&json, r#"{"nixos": [{"machine": "m", "artifacts": {"x": {"generator": "g", "backend": "b", "files": {"f": {}}}}}]}"#).unwrap();
    let model = load_manifest(&json).unwrap();
    assert_eq!(model.targets[0].id, TargetId::new(TargetKind::Nixos, "m"));
    let unknown = dir.path().join("artifacts.ini");
    std::fs::write(&unknown, "").unwrap();
    assert!(
        load_manifest(&unknown)
            .unwrap_err()
            .to_string()
            .contains("unknown manifest format")
    );
}

#[test]
fn shorthand_declares_one_artifact_on_many_targets() {
    let model = toml_model(
        r#"
[home.alice]
[artifacts.token]
targets = ["web1", "nixos/web2", "alice", "tanka/prod"]
generator = "g.sh"
files.t = {}
"#,
    )
    .unwrap();
    let ids: Vec<String> = model.targets.iter().map(|t| t.id.reference()).collect();
    assert_eq!(
        ids,
        ["home/alice", "nixos/web1", "nixos/web2", "tanka/prod"]
    );
    assert!(
        model
            .targets
            .iter()
            .all(|t| t.artifacts.contains_key("token"))
    );
}

#[test]
fn shorthand_reference_problems() {
    let found = problems(
        r#"
[nixos.x]
[home.x]
[artifacts.a]
targets = ["x", "mars/y"]
generator = "g"
files.f = {}
[artifacts.b]
generator = "g"
files.f = {}
"#,
        &["b"],
    );
    has(&found, "`x` names several targets");
    has(&found, "unknown target kind `mars`");
    has(&found, "missing `targets`");
}

/// A shorthand declaration is read once for its targets, yet a problem in
/// it is reported for each target, at that target.
#[test]
fn shorthand_problems_are_reported_for_every_target() {
    let found = problems(
        r#"
[artifacts.a]
targets = ["m1", "m2", "alice"]
generator = "g"
files.f = { mode = "not-a-mode" }
[home.alice]
"#,
        &[],
    );
    let modes: Vec<&String> = found.iter().filter(|p| p.contains("not-a-mode")).collect();
    assert_eq!(modes.len(), 3, "{found:#?}");
    for target in ["m1", "m2", "alice"] {
        assert!(
            modes.iter().any(|p| p.contains(target)),
            "no problem at {target}: {found:#?}"
        );
    }
}

#[test]
fn nested_tanka_environments_are_paths_in_every_spelling() {
    let model = toml_model(
        r#"
[tanka."prod/eu"]
[tanka.prod]
[artifacts.a]
targets = ["tanka/prod/eu", "prod", "tanka/prod/us"]
generator = "g"
files.f = {}
[artifacts.b]
targets = ["prod/eu"]
generator = "g"
files.f = {}
"#,
    )
    .unwrap();
    let names: Vec<String> = model.targets.iter().map(|t| t.id.reference()).collect();
    assert_eq!(names, ["tanka/prod/eu", "tanka/prod", "tanka/prod/us"]);
    let eu = model
        .target(&TargetId::new(TargetKind::Tanka, "prod/eu"))
        .unwrap();
    assert_eq!(eu.artifacts.keys().collect::<Vec<_>>(), ["a", "b"]);
    // Machines stay single names; a hostile path is named with its field.
    let found = problems(
        "[nixos.\"a/b\"]\n[tanka.\"a/../b\"]\n[artifacts.x]\ntargets = [\"tanka/a//b\"]\ngenerator = \"g\"\nfiles.f = {}\n",
        &[],
    );
    has(
        &found,
        "nixos machine `a/b`: target name `a/b` contains `/`",
    );
    has(
        &found,
        "tanka environment `a/../b`: target name `a/../b`: component `..` contains `..`",
    );
    has(
        &found,
        "tanka environment `a//b`: target name `a//b` has an empty path component",
    );
}

#[test]
fn backend_resolution_prefers_artifact_then_target_then_manifest() {
    let model = toml_model(
        r#"
default.backend = "global"
[nixos.a]
default.backend = "machine"
artifacts.own = { backend = "mine", generator = "g", files.f = {} }
artifacts.inherit = { generator = "g", files.f = {} }
[nixos.b]
artifacts.top = { generator = "g", files.f = {} }
"#,
    )
    .unwrap();
    let a = &model.targets[0];
    let b = &model.targets[1];
    let choice = |t, name: &str| model.resolve_backend(t, &t.artifacts[name]).unwrap();
    assert_eq!(choice(a, "own").rule, BackendRule::Artifact);
    assert_eq!(choice(a, "own").name, "mine");
    assert_eq!(choice(a, "inherit").rule, BackendRule::TargetDefault);
    assert_eq!(choice(b, "top").rule, BackendRule::ManifestDefault);
    assert_eq!(choice(b, "top").name, "global");
}

#[test]
fn no_backend_at_all_is_an_error_saying_where_to_set_one() {
    let found = problems(
        "[nixos.m.artifacts.a]\ngenerator = \"g\"\nfiles.f = {}\n",
        &[],
    );
    has(&found, "no backend chosen: set `backend` on the artifact");
}

#[test]
fn modes_must_be_octal_strings() {
    for (mode, needle) in [
        ("\"rw\"", "is not octal"),
        ("\"0999\"", "is not octal"),
        ("\"4755\"", "setuid"),
        ("420", "octal string such as \"0400\", found a number"),
    ] {
        let found = problems(
            &format!(
                "default.backend = \"b\"\n[nixos.m.artifacts.a]\ngenerator = \"g\"\nfiles.f = {{ mode = {mode} }}\n"
            ),
            &["b"],
        );
        has(&found, needle);
        has(&found, "field `files.f.mode`");
    }
}

#[test]
fn names_that_could_escape_or_read_as_options_are_rejected_everywhere() {
    let found = problems(
        r#"
default.backend = "b"
[nixos."a/b"]
[nixos.m.artifacts."-x"]
generator = "g"
files."../f" = {}
prompts."p\n" = {}
"#,
        &["b"],
    );
    has(&found, "target name `a/b` contains `/`");
    has(&found, "artifact name `-x` starts with `-`");
    has(&found, "file name `../f` contains `..`");
    has(&found, "prompt name");
}

#[test]
fn names_clashing_with_sops_too_long_or_with_bidi_characters_are_rejected_and_escaped() {
    let long = "n".repeat(300);
    let found = problems(
        &format!(
            r#"
default.backend = "b"
[nixos.m.artifacts.sops]
generator = "g"
files.f = {{}}
[nixos.m.artifacts.{long}]
generator = "g"
files.f = {{}}
[nixos.m.artifacts."evil\u202Etxt.exe"]
generator = "g"
files.key_unencrypted = {{}}
"#
        ),
        &["b"],
    );
    has(&found, "artifact name `sops` is reserved");
    has(&found, "is 300 bytes long (at most 128)");
    has(&found, "artifact `evil\\u{202e}txt.exe`");
    has(
        &found,
        "contains a control, invisible or bidirectional character",
    );
    has(&found, "file name `key_unencrypted` ends in `_unencrypted`");
    let all = found.join("\n");
    assert!(!all.contains('\u{202E}'), "printed raw:\n{all}");
}

#[test]
fn deeply_nested_manifests_are_refused_before_they_are_parsed() {
    // libyaml took over 30 s for this before the nesting was measured first;
    // the other formats must give the same clear message.
    let dir = tempfile::tempdir().unwrap();
    let n = 100_000;
    for (name, text) in [
        ("a.yaml", format!("x: {}{}\n", "[".repeat(n), "]".repeat(n))),
        (
            "a.json",
            format!("{{\"x\": {}{}}}", "[".repeat(n), "]".repeat(n)),
        ),
        (
            "a.toml",
            format!("x = {}{}\n", "[".repeat(n), "]".repeat(n)),
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let e = load_manifest(&path).unwrap_err().to_string();
        assert!(e.contains("nests deeper than 128 levels"), "{name}: {e}");
    }
}

#[test]
fn file_paths_must_be_absolute_outside_the_store_and_without_parent_references() {
    let found = problems(
        r#"
default.backend = "b"
[nixos.m.artifacts.a]
generator = "g"
files.rel = { path = "etc/x" }
files.store = { path = "/nix/store/abc" }
files.up = { path = "/run/../etc/shadow" }
[home.u.artifacts.h]
generator = "g"
files.f = { path = "/home/u/x", owner = "u" }
[tanka.t.artifacts.k]
generator = "g"
files.f = { path = "/abs" }
"#,
        &["b"],
    );
    has(&found, "path `etc/x` is not absolute");
    has(&found, "is in /nix/store");
    has(&found, "contains `..`");
    has(&found, "`owner` is not supported on a home-manager user");
    has(&found, "must be relative");
}

#[test]
fn shared_mismatch_lists_every_difference() {
    let found = problems(
        r#"
default.backend = "b"
[nixos.a.artifacts.s]
shared = true
generator = "g1"
prompts.p = { type = "line" }
files.f = { path = "/run/x" }
[nixos.b.artifacts.s]
shared = true
backend = "c"
generator = "g2"
prompts.p = { type = "hidden" }
files.f = { path = "/run/y" }
[nixos.c.artifacts.s]
generator = "g1"
files.f = {}
"#,
        &["b", "c"],
    );
    has(&found, "backend `b` vs `c`");
    has(&found, "generator `/p/g1` vs `/p/g2`");
    has(&found, "files.f.path `/run/x` vs `/run/y`");
    has(&found, "prompts [p:line] vs [p:hidden]");
    has(&found, "is not shared here but shared on nixos machine `a`");
}

#[test]
fn shared_between_nixos_and_home_ignores_kind_specific_path_defaults() {
    let found = problems(
        r#"
default.backend = "b"
[home.u]
[artifacts.s]
shared = true
targets = ["nixos/m", "home/u"]
generator = "g"
files.f = {}
"#,
        &["b"],
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn every_problem_is_reported_at_once_with_load_and_validation_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("artifacts.toml");
    std::fs::write(
        &path,
        "[nixos.m.artifacts.a]\nbackend = \"nope\"\ngenerator = \"g\"\nfiles.f = { mode = \"x\" }\n",
    )
    .unwrap();
    let error = load_manifest_validated(&path, &["b"]).unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("2 problems in the declarations:"),
        "{text}"
    );
    assert!(text.contains("unknown backend `nope` (known: b)"), "{text}");
    assert!(text.contains("mode `x` is not octal"), "{text}");
}

#[test]
fn unknown_keys_and_wrong_types_are_named() {
    let found = problems(
        r#"
[nixos.m.artifacts.a]
generatr = "g"
shared = "yes"
files.f = { secrett = true }
"#,
        &[],
    );
    has(&found, "unknown key `generatr`");
    has(
        &found,
        "field `shared`: expected true or false, found a string",
    );
    has(&found, "unknown key `secrett`");
}

#[test]
fn name_field_must_match_its_key() {
    let found = problems(
        "default.backend = \"b\"\n[nixos.m.artifacts.a]\nname = \"b\"\ngenerator = \"g\"\nfiles.f = {}\n",
        &["b"],
    );
    has(&found, "`name = \"b\"` differs from the key `a`");
}

#[test]
fn prompts_declare_whether_empty_answers_and_a_single_entry_are_accepted() {
    let model = toml_model(
        r#"
identities = ["~/.config/sops/age/keys.txt", "keys/me.txt"]
default.backend = "b"
[nixos.m.artifacts.a]
generator = "g"
prompts.plain = {}
prompts.open = { type = "line", allowEmpty = true }
prompts.pasted = { type = "multiline-hidden", confirm = false }
files.f = {}
"#,
    )
    .unwrap();
    assert_eq!(
        model.identities,
        ["~/.config/sops/age/keys.txt", "keys/me.txt"]
    );
    let prompts = &model.targets[0].artifacts["a"].prompts;
    assert!(!prompts["plain"].allow_empty && prompts["plain"].confirm);
    assert!(prompts["open"].allow_empty && prompts["open"].confirm);
    assert!(!prompts["pasted"].allow_empty && !prompts["pasted"].confirm);

    let found = problems(
        r#"
identities = "keys/me.txt"
default.backend = "b"
[nixos.m.artifacts.a]
generator = "g"
prompts.p = { allowEmpty = "yes", confirm = 1 }
files.f = {}
"#,
        &["b"],
    );
    has(
        &found,
        "field `identities`: expected a list of file names, found a string",
    );
    has(
        &found,
        "field `prompts.p.allowEmpty`: expected true or false",
    );
    has(&found, "field `prompts.p.confirm`: expected true or false");
}

#[test]
fn inputs_load_from_both_shapes_and_take_part_in_shared_comparisons() {
    let json = r#"{"nixos":[{"machine":"m","artifacts":{"a":{"generator":"/nix/store/0-gen",
        "inputs":["generators/lib.sh","./data/"],"files":{"f":{}}}}}]}"#;
    let model = load_nix_json(Path::new("/p/flake.nix"), Path::new("/p"), json).unwrap();
    assert_eq!(
        model.targets[0].artifacts["a"].inputs,
        ["generators/lib.sh", "./data/"]
    );
    assert_eq!(
        artifacts_model::validate::input_path("./data/").unwrap(),
        Path::new("data")
    );
    let found = problems(
        r#"
default.backend = "b"
[artifacts.s]
targets = ["m1", "m2"]
shared = true
generator = "/nix/store/0-gen"
files.f = {}
[nixos.m1.artifacts.x]
generator = "/nix/store/0-gen"
inputs = "lib.sh"
files.f = {}
"#,
        &["b"],
    );
    has(
        &found,
        "field `inputs`: expected a list of paths relative to the project root, found a string",
    );
    let differing = problems(
        r#"
default.backend = "b"
[nixos.m1.artifacts.s]
shared = true
generator = "/nix/store/0-gen"
inputs = ["lib.sh"]
files.f = {}
[nixos.m2.artifacts.s]
shared = true
generator = "/nix/store/0-gen"
files.f = {}
"#,
        &["b"],
    );
    has(&differing, r#"inputs ["lib.sh"] vs []"#);
    has(&differing, "pass --generator-from nixos/m1");
}

#[test]
fn generator_from_gives_every_target_the_chosen_generator_and_inputs() {
    let text = r#"
default.backend = "b"
[nixos.m1.artifacts.s]
shared = true
generator = "/nix/store/1-gen"
inputs = ["one.sh"]
files.f = {}
[nixos.m2.artifacts.s]
shared = true
generator = "/nix/store/2-gen"
files.f = {}
[nixos.m2.artifacts.own]
generator = "/nix/store/3-gen"
files.f = {}
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("artifacts.toml");
    std::fs::write(&path, text).unwrap();
    let load = |from: &[String]| {
        artifacts_model::load::load_manifest_checked(
            &path,
            &artifacts_model::load::Checks {
                known_backends: &["b"],
                generator_from: from,
            },
        )
    };
    assert!(load(&[]).is_err());
    let model = load(&["m2".to_owned()]).unwrap();
    for target in &model.targets {
        let s = &target.artifacts["s"];
        assert_eq!(s.generator.as_deref(), Some(Path::new("/nix/store/2-gen")));
        assert!(s.inputs.is_empty());
    }
    // Artifacts that are not shared keep their own generator.
    assert_eq!(
        model.targets[1].artifacts["own"].generator.as_deref(),
        Some(Path::new("/nix/store/3-gen"))
    );
    let model = load(&["nixos/m1".to_owned()]).unwrap();
    assert_eq!(model.targets[1].artifacts["s"].inputs, ["one.sh"]);
    let error = load(&["nixos/nope".to_owned()]).unwrap_err().to_string();
    assert!(
        error.contains("--generator-from `nixos/nope`: no such target is declared"),
        "{error}"
    );
}

#[test]
fn parse_errors_tell_line_and_column_in_every_format() {
    use artifacts_model::load::load_manifest_text;
    // The bad spot is on line 3 in each; the column is the one the parser's
    // own message names (1-based).
    for (name, text, column) in [
        ("artifacts.toml", "a = 1\n\n[nixos.m\n", 9),
        ("artifacts.json", "{\n  \"a\": 1,\n  \"b\": }\n", 8),
        ("artifacts.yaml", "a: 1\nb: [\n  c: d: e\n", 7),
    ] {
        let error = load_manifest_text(Path::new(name), text).unwrap_err();
        let message = error.to_string();
        match error {
            artifacts_model::ModelError::Parse {
                line, column: col, ..
            } => {
                assert_eq!((line, col), (Some(3), Some(column)), "{name}: {message}");
                assert!(
                    message.contains(&format!("column {column}")),
                    "{name}: {message}"
                );
            }
            other => panic!("{name}: expected a parse error, got {other}"),
        }
    }
}

/// A fleet's manifest: `machines` machines, each with a default backend
/// unless `without_backend`, and one shorthand artifact on all of them.
fn fleet(machines: usize, without_backend: usize, artifact: &str) -> String {
    let mut text = String::new();
    for m in 0..machines {
        text.push_str(&format!("[nixos.m{m}]\n"));
        if m != without_backend {
            text.push_str("default.backend = \"b\"\n");
        }
    }
    let targets: Vec<String> = (0..machines).map(|m| format!("\"m{m}\"")).collect();
    text.push_str(&format!(
        "[artifacts.a]\ntargets = [{}]\ngenerator = \"g\"\nfiles.f = {{}}\n{artifact}",
        targets.join(", ")
    ));
    text
}

/// Problems found deep in a 500-target shorthand name the one target (or
/// list entry) they are about, though the declaration is read once and
/// locations are only built for problems.
#[test]
fn fleet_problems_name_the_right_target() {
    // m317 alone has no backend; a target that is not a string sits at 250.
    let text = fleet(500, 317, "").replace("\"m250\"", "250");
    let found = problems(&text, &["b"]);
    assert_eq!(found.len(), 3, "{found:#?}");
    has(
        &found,
        "`/p/artifacts.toml`, artifact `a`, field `targets[250]`: expected a string, found a number",
    );
    has(
        &found,
        "`/p/artifacts.toml`, nixos machine `m317`, artifact `a`: no backend chosen",
    );
    // A dependency that no target declares: each target says so, at itself.
    let found = problems(&fleet(500, 500, "dependencies = [\"gone\"]\n"), &["b"]);
    assert_eq!(found.len(), 501, "{}", found[..3].join("\n"));
    for m in [0, 1, 250, 499] {
        has(
            &found,
            &format!(
                "`/p/artifacts.toml`, nixos machine `m{m}`, artifact `a`, field `dependencies[0]`: depends on `gone`, which nixos machine `m{m}` does not declare"
            ),
        );
    }
    // Declared on a target and in the shorthand: named at that target.
    let text = fleet(500, 500, "").replace(
        "[nixos.m42]\n",
        "[nixos.m42]\nartifacts.a = { generator = \"g\", files.f = {} }\n",
    );
    let found = problems(&text, &["b"]);
    assert_eq!(found.len(), 1, "{found:#?}");
    has(
        &found,
        "`/p/artifacts.toml`, nixos machine `m42`, artifact `a`: declared twice",
    );
}

/// The targets of a shorthand share one declaration per kind (one value,
/// not a copy per target), in every manifest format.
#[test]
fn shorthand_targets_of_a_kind_share_one_declaration() {
    let dir = tempfile::tempdir().unwrap();
    let toml = fleet(50, 50, "");
    let value: serde_json::Value = toml::from_str(&toml).unwrap();
    let json = serde_json::to_string(&value).unwrap();
    let yaml = serde_norway::to_string(&value).unwrap();
    for (name, text) in [("a.toml", toml), ("a.json", json), ("a.yaml", yaml)] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let model = load_manifest_validated(&path, &["b"]).unwrap();
        assert_eq!(model.targets.len(), 50, "{name}");
        let first = &model.targets[0].artifacts["a"];
        assert!(
            model
                .targets
                .iter()
                .all(|t| std::sync::Arc::ptr_eq(&t.artifacts["a"], first)),
            "{name}"
        );
    }
}

/// Target `config` reaches backends as the JSON value it was written as,
/// numbers, nesting and key order included.
#[test]
fn target_config_keeps_its_values() {
    let model = toml_model(
        r#"
[nixos.m]
config.sops-nix = { publicHostKey = "age1x", zeta = 1, alpha = [1.5, true, { deep = "x" }] }
"#,
    )
    .unwrap();
    let config = &model.targets[0].config["sops-nix"];
    assert_eq!(
        serde_json::to_string(config).unwrap(),
        r#"{"publicHostKey":"age1x","zeta":1,"alpha":[1.5,true,{"deep":"x"}]}"#
    );
}
