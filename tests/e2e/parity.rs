//! What upstream nixos-artifacts accepts and we did not: generators of
//! backends that store nothing (passthrough) checked on `generate`,
//! artifacts without files, and a shared artifact whose generator differs
//! per machine (`--generator-from`).

use crate::util::Project;

#[test]
fn passthrough_generators_run_on_generate_and_their_output_is_checked() {
    let p = Project::new("passthrough_generators_run_on_generate");
    // A backend with only `enabled = true`: it stores nothing.
    p.file("backend.toml", "[pass.nixos]\nenabled = true\n");
    p.generator("good.sh", r#"echo t > "$out/token""#);
    p.generator(
        "extra.sh",
        r#"echo t > "$out/token"; echo x > "$out/extra""#,
    );
    p.generator("none.sh", "true");
    p.manifest(
        r#"
default.backend = "pass"
[nixos.m.artifacts.good]
generator = "generators/good.sh"
files.token = {}
[nixos.m.artifacts.extra]
generator = "generators/extra.sh"
files.token = {}
[nixos.m.artifacts.none]
generator = "generators/none.sh"
files.token = {}
"#,
    );
    p.run(["generate", "--dry-run"])
        .success()
        .stdout_has("would generate nixos/m good (only checked: the backend stores nothing)");
    p.run(["generate"])
        .code(1)
        .stderr_has("checked nixos/m good: its generator wrote the declared files; backend `pass` stores nothing")
        .stderr_has("error: nixos/m extra: generator of artifact `extra` wrote the wrong output: unexpected file `extra`")
        .stderr_has("error: nixos/m none: generator of artifact `none` wrote the wrong output: missing file `token`")
        .stderr_has("generated 0 artifact(s), checked the output of 1 whose backend stores nothing (nothing stored), 2 failed");
    assert!(
        !p.root.join("artifacts.lock").exists(),
        "nothing is recorded for what is stored nowhere"
    );
    p.run(["generate", "good"])
        .success()
        .stderr_has("checked the output of 1 whose backend stores nothing");
    // Nothing to store, so nothing is missing.
    p.run(["check"]).success();
}

#[test]
fn artifacts_without_files_are_accepted_with_a_warning() {
    let p = Project::new("artifacts_without_files_are_accepted_with_a_warning");
    let key = p.root.join("key.txt");
    p.run(["age", "keygen", "-o", key.to_str().unwrap()])
        .success();
    let recipient = std::fs::read_to_string(&key)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .unwrap();
    p.generator("none.sh", "true");
    p.manifest(&format!(
        "default.backend = \"agenix\"\n[nixos.m]\nconfig.agenix.publicUserKeys = [\"{recipient}\"]\n[nixos.m.artifacts.empty]\ngenerator = \"generators/none.sh\"\nfiles = {{}}\n"
    ));
    let warning = "artifact `empty`, field `files`: declares no files (accepted, as upstream does)";
    p.run(["check"]).code(1).stderr_has(warning);
    p.run(["generate"])
        .success()
        .stderr_has(warning)
        .stderr_has("generated 1 artifact(s)");
    p.run(["check"]).success();
    // Its generator must then write nothing.
    p.generator("none.sh", r#"echo x > "$out/stray""#);
    p.run(["regenerate", "--yes", "empty"])
        .code(1)
        .stderr_has("unexpected file `stray` (declared files: )");
}

fn differing_shared(name: &str) -> Project {
    let p = Project::new(name);
    p.recording_backend()
        .generator("gen-a.sh", r#"echo "made by a" > "$out/key""#)
        .generator("gen-b.sh", r#"echo "made by b" > "$out/key""#)
        .manifest(
            r#"
default.backend = "rec"
[nixos.a.artifacts.psk]
shared = true
generator = "generators/gen-a.sh"
files.key = {}
[nixos.b.artifacts.psk]
shared = true
generator = "generators/gen-b.sh"
files.key = {}
"#,
        );
    p
}

#[test]
fn a_shared_artifact_with_generators_differing_per_machine_takes_the_one_picked() {
    let p = differing_shared("shared_generators_differing_take_the_one_picked");
    p.run(["generate"])
        .code(2)
        .stderr_has("shared artifact is declared differently by nixos machine `a` and nixos machine `b`: generator")
        .stderr_has("pass --generator-from nixos/a");
    assert!(p.records().is_empty());
    p.run(["--generator-from", "zz", "check"])
        .code(2)
        .stderr_has("--generator-from `zz`: no such target is declared");
    p.run(["--generator-from", "b", "generate"]).success();
    assert_eq!(p.stored("shared/psk/key").as_deref(), Some("made by b\n"));
    // The choice is part of the declaration: the same choice is current,
    // the other one makes the artifact stale.
    let mut check = p.command(["check"]);
    check.env("ARTIFACTS_GENERATOR_FROM", "nixos/b");
    p.finish(&mut check).success();
    p.run(["--generator-from", "a", "check"])
        .code(1)
        .stdout_has("the generator changed since generation");
}
