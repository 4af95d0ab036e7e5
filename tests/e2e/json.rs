//! `--json`: every command prints exactly one document on stdout, valid
//! against `docs/schema/output.schema.json` ([`Run::json`] checks both and
//! the exit code), on success and on failure, with errors located.

use serde_json::json;

use crate::util::{Project, Run, output_schema};

/// A project with `a` (backend `rec`) and `d` (backend `dummy`) on machine `m`.
fn project(name: &str) -> Project {
    let p = Project::new(name);
    p.recording_backend()
        .generator("token.sh", r#"echo t > "$out/token""#)
        .manifest(
            r#"
default.backend = "rec"
[nixos.m.artifacts.a]
generator = "generators/token.sh"
files.token = {}
[nixos.m.artifacts.d]
backend = "dummy"
generator = "generators/token.sh"
files.token = { mode = "0444" }
"#,
        );
    p
}

/// Runs `args` with `--json`, expects `code` and the document of `command`.
#[track_caller]
fn document(p: &Project, args: &[&str], command: &str, code: i32) -> (serde_json::Value, Run) {
    let mut all = args.to_vec();
    all.push("--json");
    let run = p.run(&all);
    run.code(code);
    let document = run.json();
    assert_eq!(document["command"], command, "{document}");
    assert_eq!(document["ok"], code == 0, "{document}");
    (document, run)
}

/// The `result` of each entry of `artifacts`, as `artifact=result`.
fn results(document: &serde_json::Value) -> Vec<String> {
    document["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}={}",
                a["artifact"].as_str().unwrap(),
                a["result"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

#[test]
fn json_every_project_command_prints_one_valid_document() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "activate installs as root (CI runs the tests as root)"
    );
    let p = project("json_every_project_command");

    let (list, _) = document(&p, &["list"], "list", 0);
    assert_eq!(list["artifacts"].as_array().unwrap().len(), 2, "{list}");
    let (bare, _) = document(&p, &[], "list", 0);
    assert_eq!(bare["artifacts"], list["artifacts"]);

    let (missing, run) = document(&p, &["check"], "check", 1);
    assert_eq!(missing["summary"]["missing"], 1);
    // People's text goes to stderr.
    run.stderr_has("1 missing")
        .stderr_has("artifacts generate a");

    let (dry, run) = document(&p, &["generate", "--dry-run"], "generate", 0);
    assert_eq!(results(&dry), ["a=would-generate"]);
    assert_eq!(dry["artifacts"][0]["asks"], json!([]));
    run.stdout_lacks("would generate");

    let (generated, run) = document(&p, &["generate"], "generate", 0);
    assert_eq!(results(&generated), ["a=generated"]);
    // Human text goes to stderr.
    run.stderr_has("generated 1 artifact(s)");

    // A changed generator: stale, and without --yes (or a terminal) left as it is.
    p.generator("token.sh", r#"echo u > "$out/token""#);
    let (left, _) = document(&p, &["generate"], "generate", 0);
    assert_eq!(results(&left), ["a=left-stale"]);
    document(&p, &["accept", "a"], "accept", 0);

    let (ok, _) = document(&p, &["check"], "check", 0);
    assert_eq!(ok["errors"], json!([]));
    let (explained, _) = document(&p, &["explain", "a"], "explain", 0);
    assert_eq!(
        explained["artifacts"][0]["backend_rule"],
        "manifest-default"
    );
    let (graph, _) = document(&p, &["graph"], "graph", 0);
    assert_eq!(graph["graph"].as_array().unwrap().len(), 2);
    let (backends, _) = document(&p, &["backends"], "backends", 0);
    assert!(
        backends["backends"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "rec")
    );

    let (shown, _) = document(&p, &["show", "a"], "show", 0);
    assert_eq!(shown["artifacts"][0]["result"], "shown");
    assert_eq!(shown["artifacts"][0]["content"], "t\n");

    let (accepted, _) = document(&p, &["accept", "--dry-run"], "accept", 0);
    assert_eq!(results(&accepted), Vec::<String>::new());
    document(&p, &["rekey", "--dry-run"], "rekey", 0);
    let (migrated, _) = document(&p, &["migrate", "a", "--to", "rec"], "migrate", 0);
    assert_eq!(results(&migrated), ["a=already-there"]);
    let (regenerated, _) = document(&p, &["regenerate", "a", "--yes"], "regenerate", 0);
    assert_eq!(results(&regenerated), ["a=generated"]);
    let (gc, run) = document(&p, &["gc", "--dry-run"], "gc", 0);
    assert_eq!(gc["orphans"], json!([]));
    run.stdout_lacks("orphan ");

    let root = p.root.join("sysroot");
    let (activated, _) = document(
        &p,
        &[
            "activate",
            "--target",
            "m",
            "--root",
            root.to_str().unwrap(),
        ],
        "activate",
        0,
    );
    assert_eq!(results(&activated), ["d=activated"]);
    assert_eq!(
        activated["artifacts"][0]["installed"][0]["outcome"],
        "written"
    );
}

#[test]
fn json_failed_units_are_results_and_located_errors() {
    let p = project("json_failed_units");
    p.generator("token.sh", "echo broken >&2; exit 3");
    let (failed, _) = document(&p, &["generate"], "generate", 1);
    assert_eq!(results(&failed), ["a=failed"]);
    assert!(
        failed["artifacts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("broken")
    );
    let error = &failed["errors"][0];
    assert_eq!(error["unit"], "nixos/m a", "{failed}");
    assert_eq!(error["artifact"], "a");
    assert_eq!(error["scope"], "nixos/m");
}

#[test]
fn json_declaration_errors_carry_file_line_and_column() {
    let p = Project::new("json_declaration_errors");
    p.recording_backend()
        .manifest("default.backend = \"rec\"\n[nixos.m.artifacts.a\n");
    // Before: a declaration error under --json printed nothing on stdout.
    let (broken, _) = document(&p, &["check"], "check", 2);
    let error = &broken["errors"][0];
    assert_eq!(error["kind"], "usage");
    assert!(
        error["file"].as_str().unwrap().ends_with("artifacts.toml"),
        "{broken}"
    );
    assert_eq!(error["line"], 2, "{broken}");
    assert!(error["column"].as_u64().unwrap() >= 1);

    p.manifest(
        r#"
[nixos.m.artifacts.a]
backend = "nosuch"
generator = "generators/token.sh"
files.token = {}
"#,
    );
    let (invalid, _) = document(&p, &["generate"], "generate", 2);
    let error = &invalid["errors"][0];
    assert_eq!(error["target"], "nixos/m", "{invalid}");
    assert_eq!(error["artifact"], "a");
    assert_eq!(error["field"], "backend");
    assert!(error["message"].as_str().unwrap().contains("nosuch"));

    // The other files a run reads: backend.toml and artifacts.lock.
    p.recording_backend().token_artifact();
    p.file("backend.toml", "[rec.nixos\n");
    let (backends, _) = document(&p, &["list"], "list", 2);
    assert!(
        backends["errors"][0]["file"]
            .as_str()
            .unwrap()
            .ends_with("/backend.toml"),
        "{backends}"
    );
    p.recording_backend();
    p.file("artifacts.lock", "{ not json");
    let (lock, _) = document(&p, &["check"], "check", 2);
    assert!(
        lock["errors"][0]["file"]
            .as_str()
            .unwrap()
            .ends_with("/artifacts.lock"),
        "{lock}"
    );
}

#[test]
fn json_usage_errors_are_documents_too() {
    let p = project("json_usage_errors");
    let (unknown, _) = document(&p, &["check", "--no-such-flag"], "check", 2);
    assert!(
        unknown["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("--no-such-flag"),
        "{unknown}"
    );
    let (refused, _) = document(&p, &["regenerate", "a"], "regenerate", 2);
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("--yes"),
        "{refused}"
    );
    let (backend, _) = document(&p, &["migrate", "a", "--to", "nosuch"], "migrate", 2);
    assert!(
        backend["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nosuch")
    );
}

#[test]
fn json_is_refused_by_commands_that_print_data() {
    let p = Project::new("json_refused_by_data_commands");
    for (args, command) in [
        (&["age", "keygen"][..], "age keygen"),
        (&["completions", "bash"], "completions"),
        (&["man"], "man"),
        (&["sops", "verify", "x.yaml"], "sops verify"),
    ] {
        let (refused, run) = document(&p, args, command, 2);
        assert_eq!(refused["errors"][0]["kind"], "usage");
        let message = refused["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("`artifacts {command}`")),
            "{message}"
        );
        run.stdout_lacks("AGE-SECRET-KEY")
            .stdout_lacks("_clap_complete");
    }
    assert!(!p.root.join("x.yaml").exists());
}

#[test]
fn json_schema_rejects_documents_that_break_the_contract() {
    let good = json!({
        "command": "generate", "ok": false, "exit_code": 1,
        "artifacts": [{ "artifact": "a", "context": "nixos", "targets": ["nixos/m"],
                        "backend": "rec", "result": "failed", "error": "boom" }],
        "errors": [{ "kind": "failure", "message": "boom", "unit": "nixos/m a" }],
    });
    let schema = output_schema();
    assert!(schema.is_valid(&good));
    let broken = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut document = good.clone();
        f(&mut document);
        schema.is_valid(&document)
    };
    assert!(!broken(&|d| {
        d.as_object_mut().unwrap().remove("errors");
    }));
    assert!(!broken(&|d| d["ok"] = json!(true)), "ok with exit code 1");
    assert!(
        !broken(&|d| {
            d["artifacts"][0].as_object_mut().unwrap().remove("error");
        }),
        "a failed unit without its error"
    );
    assert!(
        !broken(&|d| d["artifacts"][0]["targets"] = json!(["m"])),
        "a target without its kind"
    );
    assert!(
        !broken(&|d| d["surprise"] = json!(1)),
        "an undocumented field"
    );
}

/// A new age identity in `name` under the project; its recipient.
fn age_key(p: &Project, name: &str) -> String {
    let key = p.root.join(name);
    p.run(["age", "keygen", "-o", key.to_str().unwrap()])
        .success();
    std::fs::read_to_string(&key)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .unwrap()
}

/// Artifacts `api` and `other` on machines m1 and m2, stored by agenix for `recipients`.
fn agenix_manifest(recipients: &[&str], artifacts: &[&str]) -> String {
    let keys = recipients
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = format!(
        "[nixos.m1]\nconfig.agenix.publicUserKeys = [{keys}]\n[nixos.m2]\nconfig.agenix.publicUserKeys = [{keys}]\n"
    );
    for name in artifacts {
        text.push_str(&format!(
            "[artifacts.{name}]\ntargets = [\"m1\", \"m2\"]\nbackend = \"agenix\"\ngenerator = \"generators/token.sh\"\nfiles.token = {{}}\n"
        ));
    }
    text
}

#[test]
fn json_changing_commands_report_what_they_did_with_real_backends() {
    let p = Project::new("json_changing_commands");
    let admin = age_key(&p, "admin.key");
    let key = p.root.join("admin.key");
    let key = key.to_str().unwrap();
    p.generator(
        "token.sh",
        r#"head -c 24 /dev/urandom | base64 > "$out/token""#,
    );
    p.manifest(&agenix_manifest(&[&admin], &["api", "other"]));
    document(&p, &["generate"], "generate", 0);

    let (moved, _) = document(
        &p,
        &["migrate", "api", "--to", "sops-nix", "-i", key],
        "migrate",
        0,
    );
    assert_eq!(results(&moved), ["api=moved", "api=moved"]);
    assert_eq!(moved["artifacts"][0]["from"], "agenix");
    assert_eq!(moved["artifacts"][0]["removed_old"], true);

    // A changed generator: `other` is stale until accepted.
    p.generator(
        "token.sh",
        r#"head -c 32 /dev/urandom | base64 > "$out/token""#,
    );
    let (accepted, _) = document(&p, &["accept", "other"], "accept", 0);
    assert_eq!(results(&accepted), ["other=accepted", "other=accepted"]);

    // A second recipient: what agenix stores is re-encrypted for both.
    let second = age_key(&p, "second.key");
    p.manifest(&agenix_manifest(&[&admin, &second], &["api", "other"]));
    let (rekeyed, _) = document(&p, &["rekey", "other", "-i", key], "rekey", 0);
    assert_eq!(
        results(&rekeyed),
        ["other=re-encrypted", "other=re-encrypted"]
    );

    // No longer declared: collected.
    p.manifest(&agenix_manifest(&[&admin, &second], &["api"]));
    let (collected, _) = document(&p, &["gc", "--yes", "-i", key], "gc", 0);
    let removed: Vec<&str> = collected["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(removed.contains(&"agenix nixos/m1 other"), "{collected}");
    assert!(!p.root.join("secrets/per-machine/m1/other").exists());
}
