//! The command line itself: help, completions, man, backends, passthrough,
//! sandbox detection, limits and timeouts.

use std::os::unix::fs::symlink;

use crate::util::Project;

#[test]
fn help_works_with_a_broken_manifest_and_documents_exit_codes() {
    let p = Project::new("help_works_with_a_broken_manifest");
    p.manifest("this is [not toml");
    p.run(["--help"])
        .success()
        .stdout_has("Exit codes:")
        .stdout_has("ARTIFACTS_PROMPT_");
    p.run(["generate", "--help"])
        .success()
        .stdout_has("--prompts-file <FILE>");
    p.run(["list"]).code(2).stderr_has("failed to parse");
    p.run(["--no-such-flag"]).code(2);
}

#[test]
fn completions_and_man_page_are_generated() {
    let p = Project::new("completions_and_man_page_are_generated");
    // Dynamic completion: the script calls the binary back on each Tab.
    p.run(["completions", "bash"])
        .success()
        .stdout_has("_clap_complete_artifacts()");
    p.run(["completions", "zsh"])
        .success()
        .stdout_has("#compdef artifacts");
    p.run(["man"]).success().stdout_has(".TH ARTIFACTS 1");
}

#[test]
fn passthrough_and_disabled_sections() {
    let p = Project::new("passthrough_and_disabled_sections");
    p.generator("token.sh", r#"echo t > "$out/token""#);
    p.file(
        "backend.toml",
        "[dummy.nixos]\n[dummy.home]\nenabled = false\n",
    );
    p.manifest(
        r#"
default.backend = "dummy"
[nixos.m.artifacts.a]
generator = "generators/token.sh"
files.token = {}
[home.u.artifacts.b]
generator = "generators/token.sh"
files.token = {}
"#,
    );
    let status = p
        .run(["check", "--json", "--target", "nixos/m"])
        .success()
        .json();
    assert_eq!(status["artifacts"][0]["status"], "ok");
    assert_eq!(status["artifacts"][0]["reason"], "not stored by design");
    p.run(["generate", "--target", "m"])
        .success()
        .stderr_has("nothing to generate");
    p.run(["check", "--target", "home/u"])
        .code(2)
        .stdout_has("backend `dummy` does not serve homemanager artifacts: its [dummy.home] section is missing or disabled");
    let backends = p.run(["backends", "--json"]).success().json();
    let caps = &backends["backends"][0]["capabilities"];
    assert_eq!(caps["passthrough"], true);
    assert_eq!(caps["targets"], serde_json::json!(["nixos"]));
}

#[test]
fn missing_bubblewrap_fails_naming_the_fix_and_no_sandbox_warns() {
    let p = Project::new("missing_bubblewrap_fails_naming_the_fix");
    // A PATH with every program of /usr/bin except bwrap.
    let bin = p.root.join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for entry in std::fs::read_dir("/usr/bin").unwrap().flatten() {
        if entry.file_name() != "bwrap" {
            let _ = symlink(entry.path(), bin.join(entry.file_name()));
        }
    }
    p.token_artifact();
    let mut command = p.command(["generate"]);
    command.env("PATH", &bin);
    p.finish(&mut command)
        .code(1)
        .stderr_has("bubblewrap (`bwrap`) is not installed")
        .stderr_has("--no-sandbox");
    assert!(p.stored("nixos/m/a/token").is_none());
    let mut command = p.command(["generate"]);
    command.env("PATH", &bin).env("ARTIFACTS_SANDBOX", "off");
    p.finish(&mut command)
        .success()
        .stderr_has("WITHOUT the sandbox");
    assert!(p.stored("nixos/m/a/token").is_some());
}

#[test]
fn bubblewrap_without_user_namespaces_is_explained() {
    let p = Project::new("bubblewrap_without_user_namespaces_is_explained");
    // A stand-in for a bwrap that cannot create namespaces, as in some containers.
    p.script(
        "fake-bin/bwrap",
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces' >&2\nexit 1\n",
    );
    p.token_artifact();
    let path = format!(
        "{}:{}",
        p.root.join("fake-bin").display(),
        std::env::var("PATH").unwrap()
    );
    let mut command = p.command(["generate"]);
    command.env("PATH", path);
    p.finish(&mut command)
        .code(1)
        .stderr_has("cannot create a sandbox here")
        .stderr_has("kernel.unprivileged_userns_clone=1");
}

#[test]
fn oversized_generator_output_is_rejected() {
    let p = Project::new("oversized_generator_output_is_rejected");
    p.recording_backend()
        .generator("big.sh", r#"head -c 17000000 /dev/zero > "$out/blob""#)
        .manifest(
            r#"
default.backend = "rec"
[nixos.m.artifacts.a]
generator = "generators/big.sh"
files.blob = {}
"#,
        );
    p.run(["generate"])
        .code(1)
        .stderr_has("`blob` is 17000000 bytes, over the limit of 16777216 bytes");
    assert!(p.record_names("serialize").is_empty());
}

#[test]
fn generator_timeout_kills_it_and_says_so() {
    let p = Project::new("generator_timeout_kills_it_and_says_so");
    p.recording_backend()
        .generator(
            "hang.sh",
            r#"echo "starting" >&2; sleep 60; echo t > "$out/token""#,
        )
        .manifest(
            r#"
default.backend = "rec"
[nixos.m.artifacts.a]
generator = "generators/hang.sh"
files.token = {}
"#,
        );
    p.run(["generate", "--timeout", "1"])
        .code(1)
        .stderr_has("did not finish within 1s and was killed")
        .stderr_has("starting");
    assert!(p.tmp_leftovers().is_empty());
}

#[test]
fn target_selection_limits_what_is_checked_and_generated() {
    let p = Project::new("target_selection_limits_what_is_checked_and_generated");
    p.recording_backend()
        .generator("token.sh", r#"echo t > "$out/token""#)
        .manifest(
            r#"
default.backend = "rec"
[artifacts.a]
targets = ["m1", "m2"]
generator = "generators/token.sh"
files.token = {}
"#,
        );
    p.run(["generate", "--target", "m1"]).success();
    assert!(p.stored("nixos/m1/a/token").is_some());
    assert!(p.stored("nixos/m2/a/token").is_none());
    p.run(["check", "--target", "nixos/m1"]).success();
    p.run(["check"]).code(1);
    p.run(["check", "--target", "nope"])
        .code(2)
        .stderr_has("no such target is declared");
    p.run(["generate", "zzz"])
        .code(2)
        .stderr_has("no artifact named `zzz` is declared");
}

#[test]
fn explain_says_which_rule_chose_the_backend() {
    let p = Project::new("explain_says_which_rule_chose_the_backend");
    p.recording_backend().generator("token.sh", r#"echo t > "$out/token""#).manifest(
        r#"
[nixos.m]
default.backend = "rec"
artifacts.a = { generator = "generators/token.sh", files.token = { owner = "nginx", mode = "0440" } }
"#,
    );
    p.run(["explain", "a"])
        .success()
        .stdout_has("backend    rec (the target's `default.backend`)")
        .stdout_has("token  /run/artifacts/a/token  nginx  root   0440  true")
        .stdout_has("lock       no entry")
        .stdout_has("status     missing");
    let json = p.run(["explain", "a", "--json"]).success().json();
    assert_eq!(json["artifacts"][0]["backend_rule"], "target-default");
}
