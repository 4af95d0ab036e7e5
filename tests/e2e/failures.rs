//! Bad generators, bad backends, bad declarations: clear errors, nothing lost.

use crate::util::Project;

fn single(p: &Project, body: &str) {
    p.recording_backend().generator("gen.sh", body).manifest(
        r#"
default.backend = "rec"
[nixos.m.artifacts.keys]
generator = "generators/gen.sh"
files.private = {}
files.public = { secret = false, mode = "0444" }
"#,
    );
}

#[test]
fn generator_writing_too_few_files_names_the_missing_one() {
    let p = Project::new("generator_writing_too_few_files");
    single(&p, r#"echo x > "$out/private""#);
    p.run(["generate"])
        .code(1)
        .stderr_has("missing file `public`");
    assert!(
        p.record_names("serialize").is_empty(),
        "serialize ran on bad output"
    );
    assert!(
        p.tmp_leftovers().is_empty(),
        "left in TMPDIR: {:?}",
        p.tmp_leftovers()
    );
}

#[test]
fn generator_writing_an_extra_file_names_it() {
    let p = Project::new("generator_writing_an_extra_file");
    single(
        &p,
        r#"echo x > "$out/private"; echo y > "$out/public"; echo z > "$out/debug.log""#,
    );
    p.run(["generate"])
        .code(1)
        .stderr_has("unexpected file `debug.log`");
    assert!(p.record_names("serialize").is_empty());
}

#[test]
fn generator_file_names_with_bidi_characters_are_escaped_in_the_error() {
    let p = Project::new("generator_file_names_with_bidi_characters");
    // U+202E (right-to-left override) would show `exe.txt` as `txt.exe`.
    single(
        &p,
        r#"echo x > "$out/private"; echo y > "$out/public"; echo z > "$out/a$(printf '\342\200\256')exe.txt""#,
    );
    p.run(["generate"])
        .code(1)
        .stderr_has("unexpected file `a\\u{202e}exe.txt`")
        .stderr_lacks("\u{202e}");
}

#[test]
fn generator_writing_a_directory_or_symlink_instead_of_a_file_is_rejected() {
    let p = Project::new("generator_writing_a_directory_or_symlink");
    single(
        &p,
        r#"mkdir "$out/private"; ln -s /etc/passwd "$out/public""#,
    );
    p.run(["generate"])
        .code(1)
        .stderr_has("`private` is a directory, not a regular file")
        .stderr_has("`public` is a symlink, not a regular file");
    assert!(p.record_names("serialize").is_empty());
}

#[test]
fn failing_generator_shows_its_stderr_and_exit_status() {
    let p = Project::new("failing_generator_shows_its_stderr");
    single(&p, r#"echo "openssl: bad curve" >&2; exit 7"#);
    p.run(["generate"])
        .code(1)
        .stderr_has("failed (exit status 7)")
        .stderr_has("openssl: bad curve");
    assert!(
        p.tmp_leftovers().is_empty(),
        "left in TMPDIR: {:?}",
        p.tmp_leftovers()
    );
}

#[test]
fn failing_serialize_keeps_the_previous_version_and_the_lock() {
    let p = Project::new("failing_serialize_keeps_the_previous_version");
    single(
        &p,
        r#"head -c 8 /dev/urandom | od -An -tx1 > "$out/private"; echo pub > "$out/public""#,
    );
    p.run(["generate"]).success();
    let before = p.stored("nixos/m/keys/private").unwrap();
    let lock_before = std::fs::read_to_string(p.root.join("artifacts.lock")).unwrap();
    p.script(
        "backends/rec/serialize",
        "#!/bin/sh\necho 'disk full' >&2\nexit 1\n",
    );
    p.run(["regenerate", "keys", "--yes"])
        .code(1)
        .stderr_has("serialize script")
        .stderr_has("disk full");
    assert_eq!(p.stored("nixos/m/keys/private").unwrap(), before);
    assert_eq!(
        std::fs::read_to_string(p.root.join("artifacts.lock")).unwrap(),
        lock_before
    );
}

#[test]
fn backend_include_and_circular_include() {
    let p = Project::new("backend_include_and_circular_include");
    p.recording_backend();
    // Move the rec backend into an included file, relative to the including file.
    let rec = std::fs::read_to_string(p.root.join("backend.toml")).unwrap();
    p.file("conf/rec.toml", &rec.replace("./backends/", "../backends/"));
    p.file("backend.toml", "include = [\"./conf/rec.toml\"]\n");
    p.generator("token.sh", r#"echo t > "$out/token""#)
        .manifest(
            r#"
default.backend = "rec"
[nixos.m.artifacts.a]
generator = "generators/token.sh"
files.token = {}
"#,
        );
    p.run(["generate"]).success();
    let backends = p.run(["backends", "--json"]).success().json();
    assert!(
        backends["backends"][0]["defined_in"]
            .as_str()
            .unwrap()
            .ends_with("conf/rec.toml")
    );

    p.file("backend.toml", "include = [\"./conf/a.toml\"]\n");
    p.file("conf/a.toml", "include = [\"./b.toml\"]\n");
    p.file("conf/b.toml", "include = [\"./a.toml\"]\n");
    p.run(["check"])
        .code(2)
        .stderr_has("circular include in backend config");

    p.file(
        "backend.toml",
        "include = [\"./conf/rec.toml\", \"./conf/again.toml\"]\n",
    );
    p.file(
        "conf/again.toml",
        &rec.replace("./backends/", "../backends/"),
    );
    p.run(["check"])
        .code(2)
        .stderr_has("backend `rec` is defined twice");
}

#[test]
fn backend_script_missing_not_executable_or_a_directory() {
    let p = Project::new("backend_script_missing_not_executable_or_a_directory");
    p.generator("token.sh", r#"echo t > "$out/token""#)
        .manifest(
            r#"
default.backend = "b"
[nixos.m.artifacts.a]
generator = "generators/token.sh"
files.token = {}
"#,
        );
    p.script("ok", "#!/bin/sh\nexit 0\n");
    p.file(
        "backend.toml",
        "[b.nixos]\ncheck = \"./nope\"\nserialize = \"./ok\"\n",
    );
    p.run(["check"])
        .code(2)
        .stderr_has("check script")
        .stderr_has("does not exist");
    p.file("plain-file", "#!/bin/sh\n");
    p.file(
        "backend.toml",
        "[b.nixos]\ncheck = \"./plain-file\"\nserialize = \"./ok\"\n",
    );
    p.run(["check"]).code(2).stderr_has("is not executable");
    std::fs::create_dir_all(p.root.join("a-dir")).unwrap();
    p.file(
        "backend.toml",
        "[b.nixos]\ncheck = \"./a-dir\"\nserialize = \"./ok\"\n",
    );
    p.run(["check"]).code(2).stderr_has("is a directory");
    p.file("backend.toml", "[b.nixos]\ncheck = \"./ok\"\n");
    p.run(["check"])
        .code(2)
        .stderr_has("check requires serialize");
}

#[test]
fn python_backend_written_against_the_contract_works() {
    let p = Project::new("python_backend_written_against_the_contract_works");
    p.script(
        "py/backend.py",
        r#"#!/usr/bin/env python3
import json, os, shutil, sys
mode = os.path.basename(sys.argv[0])
targets = json.load(open(os.environ["targets"]))
names = [t["name"] for t in targets["targets"]]
store = os.path.join("pystore", "-".join(names), os.environ["artifact"])
inputs = sorted(os.listdir(os.environ["inputs"]))
specs = {n: json.load(open(os.path.join(os.environ["inputs"], n))) for n in inputs}
if mode == "check":
    sys.exit(0 if all(os.path.exists(os.path.join(store, n)) for n in inputs) else 1)
os.makedirs(store, exist_ok=True)
for n in inputs:
    shutil.copy(os.path.join(os.environ["out"], n), os.path.join(store, n))
    json.dump(specs[n], open(os.path.join(store, n + ".spec"), "w"))
"#,
    );
    std::os::unix::fs::symlink("backend.py", p.root.join("py/check")).unwrap();
    std::os::unix::fs::symlink("backend.py", p.root.join("py/serialize")).unwrap();
    p.file(
        "backend.toml",
        "[py.nixos]\ncheck = \"py/check\"\nserialize = \"py/serialize\"\n",
    );
    p.generator("token.sh", r#"echo hello > "$out/token""#)
        .manifest(
            r#"
default.backend = "py"
[nixos.m.artifacts.a]
generator = "generators/token.sh"
files.token = { mode = "0440", owner = "www" }
"#,
        );
    p.run(["check"]).code(1);
    p.run(["generate"]).success();
    assert_eq!(
        std::fs::read_to_string(p.root.join("pystore/m/a/token")).unwrap(),
        "hello\n"
    );
    let spec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.root.join("pystore/m/a/token.spec")).unwrap(),
    )
    .unwrap();
    assert_eq!(spec["mode"], "0440");
    assert_eq!(spec["owner"], "www");
    assert_eq!(spec["path"], "/run/artifacts/a/token");
    p.run(["check"]).success();
}

#[test]
fn upstream_style_bash_backend_with_exit_1_for_missing_runs_unchanged() {
    // Written as upstream's guide shows: bash + jq over $config and $targets,
    // $machine and $artifact, exit 1 when missing.
    let p = Project::new("upstream_style_bash_backend");
    p.script(
        "up/check",
        r#"#!/usr/bin/env bash
set -euo pipefail
STORAGE_PATH=$(jq -r '.storage_path // "store"' "$config")
[[ "$(jq -r '.targets[0].name' "$targets")" == "$machine" ]] || exit 2
if [[ -f "$STORAGE_PATH/$machine-$artifact-token" ]]; then echo "EXISTS"; exit 0; fi
exit 1
"#,
    );
    p.script(
        "up/serialize",
        r#"#!/usr/bin/env bash
set -euo pipefail
STORAGE_PATH=$(jq -r '.storage_path // "store"' "$config")
mkdir -p "$STORAGE_PATH"
for f in "$out"/*; do cp "$f" "$STORAGE_PATH/$machine-$artifact-$(basename "$f")"; done
"#,
    );
    p.file(
        "backend.toml",
        "[up.nixos]\ncheck = \"./up/check\"\nserialize = \"./up/serialize\"\n",
    );
    p.generator("token.sh", r#"echo hi > "$out/token""#)
        .manifest(
            r#"
default.backend = "up"
[nixos.server-one]
config.up.storage_path = "vault"
[nixos.server-one.artifacts.api]
generator = "generators/token.sh"
files.token = {}
"#,
        );
    p.run(["check"]).code(1);
    p.run(["generate"]).success();
    assert!(p.root.join("vault/server-one-api-token").exists());
    p.run(["check"]).success();
}

#[test]
fn check_exit_codes_are_0_ok_1_missing_2_error() {
    let p = Project::new("check_exit_codes_are_0_ok_1_missing_2_error");
    p.token_artifact();
    let missing = p.run(["check", "--json"]).code(1).json();
    assert_eq!(missing["summary"]["missing"], 1);
    assert_eq!(missing["ok"], false);
    p.run(["generate"]).success();
    let ok = p.run(["check", "--json"]).success().json();
    assert_eq!(ok["ok"], true);
    // A crashing check is an error, never "missing".
    p.script(
        "backends/rec/check",
        "#!/bin/sh\necho 'cannot reach vault' >&2\nexit 4\n",
    );
    let error = p.run(["check", "--json"]).code(2).json();
    assert_eq!(error["artifacts"][0]["status"], "error");
    assert!(
        error["artifacts"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("cannot reach vault"),
        "{error}"
    );
    p.run(["generate"])
        .code(1)
        .stderr_has("never taken for \"missing\"");
    // A check killed by a signal is an error too.
    p.script("backends/rec/check", "#!/bin/sh\nkill -9 $$\n");
    p.run(["check"]).code(2).stdout_has("signal: 9 (SIGKILL)");
    // And one that hangs is killed at the timeout and reported.
    p.script("backends/rec/check", "#!/bin/sh\nexec sleep 60\n");
    p.run(["check", "--timeout", "1"])
        .code(2)
        .stdout_has("did not finish within 1s");
}

#[test]
fn declaration_errors_name_file_target_artifact_and_field() {
    let p = Project::new("declaration_errors_name_file_target_artifact_and_field");
    p.recording_backend()
        .generator("token.sh", "true")
        .manifest(
            r#"
default.backend = "rec"
[nixos.m.artifacts.a]
generator = "generators/token.sh"
files.token = { mode = "rw-r--r--" }
files."../escape" = {}
[nixos.m.artifacts.b]
backend = "nosuch"
generator = "generators/token.sh"
files.token = { path = "/nix/store/x" }
[nixos."-rf".artifacts.c]
generator = "generators/token.sh"
files.token = {}
"#,
        );
    let run = p.run(["check"]);
    run.code(2)
        .stderr_has("nixos machine `m`, artifact `a`, field `files.token.mode`: mode `rw-r--r--` is not octal")
        .stderr_has("file name `../escape` contains `..`")
        .stderr_has("field `backend`: unknown backend `nosuch` (known: rec, agenix, sops-nix, sops, openbao, vault, dummy)")
        .stderr_has("is in /nix/store")
        .stderr_has("starts with `-`")
        .stderr_has("artifacts.toml");
    let p2 = Project::new("declaration_errors_unknown_key");
    p2.manifest("[nixos.m.artifacts.a]\ngenrator = \"x\"\n");
    p2.run(["list"])
        .code(2)
        .stderr_has("unknown key `genrator`");
}

#[test]
fn missing_prompt_without_terminal_fails_before_any_generator_runs() {
    let p = Project::new("missing_prompt_without_terminal_fails_before_any_generator_runs");
    p.recording_backend()
        .generator("token.sh", r#"echo t > "$out/token""#)
        .generator("pw.sh", r#"cp "$prompts/pw" "$out/pw""#)
        .manifest(
            r#"
default.backend = "rec"
[nixos.m.artifacts.first]
generator = "generators/token.sh"
files.token = {}
[nixos.m.artifacts.second]
generator = "generators/pw.sh"
prompts.pw = {}
files.pw = {}
"#,
        );
    p.run(["generate"])
        .code(2)
        .stderr_has("missing answers for 1 prompt(s) and no terminal to ask: second/pw (set ARTIFACTS_PROMPT_SECOND_PW)");
    assert!(
        p.record_names("serialize").is_empty(),
        "something was generated"
    );
    assert!(p.stored("nixos/m/first/token").is_none());
}

#[test]
fn deeply_nested_prompts_files_and_manifests_are_refused_before_parsing() {
    // libyaml spent minutes on 100,000 nested brackets before giving up.
    let p = Project::new("deeply_nested_prompts_files_and_manifests");
    p.recording_backend();
    p.generator("t.sh", r#"cat "$prompts/p" > "$out/t""#)
        .manifest(
            r#"
default.backend = "rec"
[nixos.m.artifacts.a]
generator = "generators/t.sh"
prompts.p = { type = "line" }
files.t = {}
"#,
        );
    let deep = format!("a: {{p: {}\n", "[".repeat(100_000));
    p.file("answers.yaml", &deep);
    p.run(["generate", "--prompts-file", "answers.yaml"])
        .code(2)
        .stderr_has("prompts file `answers.yaml` nests deeper than 128 levels");
    p.file("deep.yaml", &format!("nixos: {}\n", "[".repeat(100_000)));
    p.run(["--manifest", "deep.yaml", "list"])
        .code(2)
        .stderr_has("nests deeper than 128 levels");
}

#[test]
fn backend_includes_never_print_what_they_include_nor_hang() {
    let p = Project::new("backend_includes_never_print_what_they_include");
    p.recording_backend();
    let key = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
    // Outside the project: refused by where it is, whatever it holds.
    for outside in ["/etc/shadow", "/proc/self/environ", "/dev/zero"] {
        p.file("backend.toml", &format!("include = [{outside:?}]\n"));
        p.run(["backends"])
            .code(2)
            .stderr_has("which is outside")
            .stderr_lacks("root:")
            .stderr_lacks("PATH=");
    }
    // Inside: a key file is not TOML, and its text stays out of the error.
    p.file("keys/host.txt", &format!("# host key\n{key}\n"));
    p.file("backend.toml", "include = [\"./keys/host.txt\"]\n");
    p.run(["backends"])
        .code(2)
        .stderr_has("at line 2, column")
        .stderr_lacks("QQQQ");
    // A FIFO would block the open until something writes to it.
    let fifo = p.root.join("conf.toml");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    p.file("backend.toml", "include = [\"./conf.toml\"]\n");
    p.run(["backends"]).code(2).stderr_has("not a regular file");
}
