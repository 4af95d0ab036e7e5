//! Generating: prompts, several artifacts, machines, users, shared artifacts, names.

use std::os::unix::fs::PermissionsExt;

use crate::util::Project;

const TOKEN: &str = r#"head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$out/token""#;

#[test]
fn one_artifact_with_prompts_is_generated_and_stored() {
    let p = Project::new("one_artifact_with_prompts_is_generated_and_stored");
    p.recording_backend()
        .generator(
            "db.sh",
            r#"printf '%s:%s' "$(cat "$prompts/user")" "$(cat "$prompts/password")" > "$out/credentials""#,
        )
        .manifest(
            r#"
default.backend = "rec"
[nixos.db1.artifacts.db]
generator = "generators/db.sh"
prompts.user = { description = "Database user", type = "line" }
prompts.password = { type = "hidden" }
files.credentials = { owner = "postgres", mode = "0440" }
"#,
        );
    p.file(
        "answers.yaml",
        "db:\n  user: admin\n  password: \"pa ss\"\n",
    );
    p.run(["generate", "--prompts-file", "answers.yaml"])
        .success();
    assert_eq!(
        p.stored("nixos/db1/db/credentials").as_deref(),
        Some("admin:pa ss")
    );
    let lock = p.lock();
    let entry = &lock["entries"]["nixos/db1"]["db"];
    assert!(
        entry["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{lock}"
    );
    assert!(entry["generated_at"].as_str().unwrap().ends_with('Z'));
    // $inputs carries mode and secret, as upstream plus our additions.
    let records = p.records();
    assert!(records.contains(r#""mode": "0440""#), "{records}");
    assert!(records.contains(r#""secret": true"#), "{records}");
    p.run(["check"]).success().stdout_has("1 ok, 0 missing");
}

#[test]
fn prompts_from_stdin_and_environment() {
    let p = Project::new("prompts_from_stdin_and_environment");
    p.recording_backend()
        .generator("copy.sh", r#"cat "$prompts/a" "$prompts/b" > "$out/both""#)
        .manifest(
            r#"
default.backend = "rec"
[nixos.m.artifacts."my.secret"]
generator = "generators/copy.sh"
prompts.a = {}
prompts.b = { type = "multiline" }
files.both = {}
"#,
        );
    let mut command = p.command(["generate", "--prompts-file", "-"]);
    command
        .env("ARTIFACTS_PROMPT_MY_SECRET_B", "from-env\n")
        .stdin(std::process::Stdio::piped());
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"my.secret": {"a": "from-file\n"}}"#)
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let run = crate::util::Run::new("generate --prompts-file -".into(), &p.root, output);
    run.success();
    assert_eq!(
        p.stored("nixos/m/my.secret/both").as_deref(),
        Some("from-file\nfrom-env\n")
    );
}

#[test]
fn two_artifacts_on_several_machines_each_get_their_own() {
    let p = Project::new("two_artifacts_on_several_machines_each_get_their_own");
    p.recording_backend().generator("token.sh", TOKEN).manifest(
        r#"
default.backend = "rec"
[artifacts.api]
targets = ["m1", "m2", "m3"]
generator = "generators/token.sh"
files.token = {}
[artifacts.other]
targets = ["m1", "m2", "m3"]
generator = "generators/token.sh"
files.token = {}
"#,
    );
    p.run(["check"]).code(1).stdout_has("0 ok, 6 missing");
    p.run(["generate"])
        .success()
        .stderr_has("generated 6 artifact(s)");
    let tokens: Vec<String> = ["m1", "m2", "m3"]
        .iter()
        .flat_map(|m| ["api", "other"].map(|a| p.stored(&format!("nixos/{m}/{a}/token")).unwrap()))
        .collect();
    let mut unique = tokens.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 6, "tokens repeat: {tokens:?}");
    // Each machine's backend call saw its own name and context.
    let records = p.records();
    assert!(records.contains("machine=m2"), "{records}");
    assert!(records.contains("artifact_context=nixos"));
    p.run(["check"]).success();
    p.run(["generate"])
        .success()
        .stderr_has("nothing to generate");
}

#[test]
fn home_manager_only_declarations_work() {
    let p = Project::new("home_manager_only_declarations_work");
    p.recording_backend().generator("token.sh", TOKEN).manifest(
        r#"
[home.alice]
default.backend = "rec"
artifacts.backup = { generator = "generators/token.sh", files.token = {} }
"#,
    );
    p.run(["generate"]).success();
    assert!(p.stored("home/alice/backup/token").is_some());
    let records = p.records();
    assert!(records.contains("username=alice"), "{records}");
    assert!(records.contains("artifact_context=homemanager"));
    // Home Manager paths default to a literal $XDG_RUNTIME_DIR and carry no owner.
    assert!(
        records.contains(r#""path": "$XDG_RUNTIME_DIR/artifacts/backup/token""#),
        "{records}"
    );
    assert!(!records.contains(r#""owner""#), "{records}");
    let list = p.run(["list", "--json"]).success().json();
    assert_eq!(list["artifacts"][0]["targets"][0], "home/alice");
}

#[test]
fn shared_artifact_is_generated_once_for_all_targets() {
    let p = Project::new("shared_artifact_is_generated_once_for_all_targets");
    p.recording_backend()
        .generator(
            "ident.sh",
            r#"echo "${machine:-none} ${target:-none} $artifact_context" > "$out/token""#,
        )
        .manifest(
            r#"
default.backend = "rec"
[home.alice]
[artifacts.psk]
shared = true
targets = ["nixos/a", "nixos/b", "home/alice"]
generator = "generators/ident.sh"
files.token = {}
"#,
        );
    p.run(["generate"])
        .success()
        .stderr_has("generated 1 artifact(s)");
    // A shared generator gets no target identity.
    assert_eq!(
        p.stored("shared/psk/token").as_deref(),
        Some("none none shared\n")
    );
    let record =
        std::fs::read_to_string(p.root.join("records/serialize-shared-shared-psk")).unwrap();
    for name in [
        r#""name": "a""#,
        r#""name": "b""#,
        r#""name": "alice""#,
        r#""context": "shared""#,
    ] {
        assert!(
            record.contains(name),
            "{name} missing from $targets: {record}"
        );
    }
    let lock = p.lock();
    assert!(lock["entries"]["shared"]["psk"].is_object(), "{lock}");
}

#[test]
fn shared_artifact_declared_differently_is_rejected_naming_the_difference() {
    let p = Project::new("shared_artifact_declared_differently_is_rejected");
    p.recording_backend().generator("token.sh", TOKEN).manifest(
        r#"
default.backend = "rec"
[nixos.a.artifacts.psk]
shared = true
generator = "generators/token.sh"
files.token = { mode = "0400" }
[nixos.b.artifacts.psk]
shared = true
generator = "generators/token.sh"
files.token = { mode = "0440", owner = "nginx" }
"#,
    );
    let run = p.run(["generate"]);
    run.code(2)
        .stderr_has(
            "shared artifact is declared differently by nixos machine `a` and nixos machine `b`",
        )
        .stderr_has("files.token.owner `root` vs `nginx`")
        .stderr_has("files.token.mode 0400 vs 0440");
    assert!(
        p.records().is_empty(),
        "a backend ran despite the declaration error"
    );
}

#[test]
fn artifact_names_with_dots_underscores_dashes_camel_case_and_spaces() {
    let p = Project::new("artifact_names_with_dots_underscores_dashes_camel_case_and_spaces");
    p.recording_backend().generator("token.sh", TOKEN);
    let names = [
        "with.dots",
        "with_underscore",
        "with-dash",
        "camelCase",
        "with space",
    ];
    let mut manifest = String::from("default.backend = \"rec\"\n");
    for name in names {
        manifest.push_str(&format!(
            "[nixos.m.artifacts.\"{name}\"]\ngenerator = \"generators/token.sh\"\nfiles.token = {{}}\n"
        ));
    }
    p.manifest(&manifest);
    p.run(["generate"]).success();
    for name in names {
        assert!(
            p.stored(&format!("nixos/m/{name}/token")).is_some(),
            "{name} not stored"
        );
    }
    p.run(["check"]).success();
    p.run(["explain", "with space"])
        .success()
        .stdout_has("artifact   with space");
}

#[test]
fn regenerate_requires_confirmation_and_replaces_the_stored_version() {
    let p = Project::new("regenerate_requires_confirmation_and_replaces");
    p.recording_backend().generator("token.sh", TOKEN).manifest(
        r#"
default.backend = "rec"
[nixos.m.artifacts.api]
generator = "generators/token.sh"
files.token = {}
"#,
    );
    p.run(["generate"]).success();
    let before = p.stored("nixos/m/api/token").unwrap();
    p.run(["regenerate", "api"])
        .code(2)
        .stderr_has("pass --yes");
    assert_eq!(p.stored("nixos/m/api/token").unwrap(), before);
    p.run(["rotate", "api", "--yes"]).success();
    assert_ne!(p.stored("nixos/m/api/token").unwrap(), before);
}

#[test]
fn changed_generator_makes_the_artifact_stale_until_regenerated() {
    let p = Project::new("changed_generator_makes_the_artifact_stale");
    p.recording_backend().generator("token.sh", TOKEN).manifest(
        r#"
default.backend = "rec"
[nixos.m.artifacts.api]
generator = "generators/token.sh"
files.token = {}
"#,
    );
    p.run(["generate"]).success();
    let before = p.stored("nixos/m/api/token").unwrap();
    p.generator("token.sh", &format!("{TOKEN}\necho changed >&2"));
    p.run(["check"])
        .code(1)
        .stdout_has("stale    nixos/m api")
        .stdout_has("the generator changed since generation")
        .stdout_has("run `artifacts accept api` to keep what is stored for the changed declaration, or `artifacts regenerate api` to replace it");
    // Without a terminal and without --yes, stale artifacts are left alone.
    p.run(["generate"])
        .success()
        .stderr_has("pass --yes to regenerate them")
        .stderr_has("nothing generated: 1 stale artifact(s) left as they are")
        .stderr_lacks("everything selected is stored and current");
    assert_eq!(p.stored("nixos/m/api/token").unwrap(), before);
    p.run(["check"]).code(1);
    p.run(["generate", "--yes"]).success();
    assert_ne!(p.stored("nixos/m/api/token").unwrap(), before);
    p.run(["check"]).success();
}

#[test]
fn dry_run_changes_nothing_and_lists_the_plan() {
    let p = Project::new("dry_run_changes_nothing");
    p.recording_backend().generator("token.sh", TOKEN).manifest(
        r#"
default.backend = "rec"
[nixos.m.artifacts.api]
generator = "generators/token.sh"
prompts.seed = {}
files.token = {}
"#,
    );
    p.run(["generate", "--dry-run"])
        .success()
        .stdout_has("would generate nixos/m api (missing) with backend rec, asking seed");
    assert!(p.stored("nixos/m/api/token").is_none());
    assert!(!p.root.join("artifacts.lock").exists());
}

#[test]
fn dependencies_are_generated_first_and_feed_in() {
    let p = Project::new("dependencies_are_generated_first_and_feed_in");
    p.recording_backend()
        .generator(
            "ca.sh",
            r#"echo "ca-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$out/cert""#,
        )
        .generator(
            "leaf.sh",
            r#"echo "signed by $(cat "$in/ca/cert")" > "$out/cert""#,
        )
        .manifest(
            r#"
default.backend = "rec"
[nixos.m.artifacts.leaf]
generator = "generators/leaf.sh"
dependencies = ["ca"]
files.cert = {}
[nixos.m.artifacts.ca]
generator = "generators/ca.sh"
files.cert = {}
"#,
        );
    p.run(["generate"]).success();
    let ca = p.stored("nixos/m/ca/cert").unwrap();
    assert_eq!(
        p.stored("nixos/m/leaf/cert").unwrap(),
        format!("signed by {ca}")
    );
    // Regenerating the CA alone makes the leaf stale: its fingerprint includes the CA's generation.
    p.run(["regenerate", "ca", "--yes", "--no-cascade"])
        .success();
    let status = p.run(["check", "--json"]).code(1).json();
    let leaf = status["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["artifact"] == "leaf")
        .unwrap()
        .clone();
    assert_eq!(leaf["status"], "stale", "{status}");
    // Regenerating the leaf alone reads the CA back through deserialize.
    p.run(["regenerate", "leaf", "--yes"]).success();
    let ca = p.stored("nixos/m/ca/cert").unwrap();
    assert_eq!(
        p.stored("nixos/m/leaf/cert").unwrap(),
        format!("signed by {ca}")
    );
    p.run(["check"]).success();
}

#[test]
fn dependency_cycles_are_rejected_naming_the_cycle() {
    let p = Project::new("dependency_cycles_are_rejected");
    p.recording_backend().generator("token.sh", TOKEN).manifest(
        r#"
default.backend = "rec"
[nixos.m.artifacts.a]
generator = "generators/token.sh"
dependencies = ["b"]
files.token = {}
[nixos.m.artifacts.b]
generator = "generators/token.sh"
dependencies = ["a"]
files.token = {}
[nixos.m.artifacts.c]
generator = "generators/token.sh"
dependencies = ["nope"]
files.token = {}
"#,
    );
    p.run(["check"])
        .code(2)
        .stderr_has("dependency cycle: a -> b -> a")
        .stderr_has("depends on `nope`, which nixos machine `m` does not declare");
}

// See: issue 11 (empty answers were stored from variables and prompts files).
#[test]
fn empty_answers_from_variables_and_prompts_files_are_refused_unless_allowed() {
    let p = Project::new("empty_answers_from_variables_and_prompts_files_are_refused");
    p.recording_backend()
        .generator(
            "copy.sh",
            r#"cat "$prompts/pw" "$prompts/note" > "$out/both""#,
        )
        .manifest(
            r#"
default.backend = "rec"
[nixos.m.artifacts.app]
generator = "generators/copy.sh"
prompts.pw = {}
prompts.note = { type = "line", allowEmpty = true }
files.both = {}
"#,
        );
    p.finish(
        p.command(["generate"])
            .env("ARTIFACTS_PROMPT_APP_PW", "")
            .env("ARTIFACTS_PROMPT_APP_NOTE", ""),
    )
    .code(2)
    .stderr_has("prompt `pw` of artifact `app` from `ARTIFACTS_PROMPT_APP_PW` is empty")
    .stderr_has("allowEmpty = true");
    assert!(p.stored("nixos/m/app/both").is_none());
    p.file("answers.yaml", "app:\n  pw: \"\"\n  note: \"\"\n");
    p.run(["generate", "--prompts-file", "answers.yaml"])
        .code(2)
        .stderr_has("prompt `pw` of artifact `app` from the prompts file is empty");
    assert!(p.stored("nixos/m/app/both").is_none());
    // `note` may be empty; `pw` is not.
    p.file("answers.yaml", "app:\n  pw: \"x\"\n  note: \"\"\n");
    p.run(["generate", "--prompts-file", "answers.yaml"])
        .success();
    assert_eq!(p.stored("nixos/m/app/both").as_deref(), Some("x"));
}

/// A third-party backend's `writable` script is asked before any prompt or
/// generator, like the shipped ones: its "no" stops the run with its reason,
/// nothing asked, nothing generated; its "yes" lets the run go on.
#[test]
fn third_party_writable_script_is_asked_before_prompts_and_generators() {
    let p = Project::new("third_party_writable_script");
    p.recording_backend();
    // The reason names the key the store needs; only a key file makes it writable.
    p.script(
        "backends/rec/writable",
        "#!/bin/sh\n[ -n \"${ARTIFACTS_IDENTITY:-}\" ] && exit 0\necho \"store of $artifact on $machine needs the vault key\" >&2\nexit 1\n",
    );
    let toml = std::fs::read_to_string(p.root.join("backend.toml")).unwrap();
    p.file(
        "backend.toml",
        &toml.replace(
            "deserialize = \"./backends/rec/deserialize\"",
            "deserialize = \"./backends/rec/deserialize\"\nwritable = \"./backends/rec/writable\"",
        ),
    );
    let markers = p.root.join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    std::fs::set_permissions(&markers, std::fs::Permissions::from_mode(0o777)).unwrap();
    p.generator(
        "token.sh",
        &format!(
            "touch {}/ran\necho \"$(cat \"$prompts/word\")\" > \"$out/token\"",
            markers.display()
        ),
    )
    .manifest(
        r#"
default.backend = "rec"
[nixos.m.artifacts.a]
generator = "generators/token.sh"
prompts.word = { description = "A word" }
files.token = {}
"#,
    );
    p.finish(
        p.command(["--no-sandbox", "generate"])
            .env("ARTIFACTS_PROMPT_A_WORD", "hello"),
    )
    .code(1)
    .stderr_has("store of a on m needs the vault key");
    assert!(!markers.join("ran").exists(), "the generator ran");
    assert_eq!(p.stored("nixos/m/a/token"), None);

    let key = p.file("vault.key", "not a secret\n");
    p.finish(
        p.command(["--no-sandbox", "generate"])
            .env("ARTIFACTS_PROMPT_A_WORD", "hello")
            .env("ARTIFACTS_IDENTITY", &key),
    )
    .success();
    assert!(markers.join("ran").exists());
    assert_eq!(p.stored("nixos/m/a/token").as_deref(), Some("hello\n"));
}
