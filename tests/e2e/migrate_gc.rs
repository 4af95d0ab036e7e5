//! Moving artifacts between the shipped backends, and garbage collection.

use crate::util::Project;

/// A project with an admin age key whose public key is every target's recipient.
fn keyed_project(name: &str) -> (Project, String) {
    let p = Project::new(name);
    let key = p.root.join("admin.key");
    p.run(["age", "keygen", "-o", key.to_str().unwrap()])
        .success();
    let recipient = std::fs::read_to_string(&key)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .unwrap();
    p.generator(
        "token.sh",
        r#"head -c 24 /dev/urandom | base64 > "$out/token"; echo "pub $artifact" > "$out/id""#,
    );
    (p, recipient)
}

fn manifest(recipient: &str, artifacts: &[(&str, &str)]) -> String {
    let mut text = format!(
        "[nixos.m1]\nconfig.agenix.publicUserKeys = [\"{recipient}\"]\n[nixos.m2]\nconfig.agenix.publicUserKeys = [\"{recipient}\"]\n"
    );
    for (name, backend) in artifacts {
        text.push_str(&format!(
            "[artifacts.{name}]\ntargets = [\"m1\", \"m2\"]\nbackend = \"{backend}\"\ngenerator = \"generators/token.sh\"\nfiles.token = {{}}\nfiles.id = {{ secret = false }}\n"
        ));
    }
    text
}

#[test]
fn migrate_agenix_to_sops_nix_keeps_bytes_removes_old_files_and_updates_the_lock() {
    let (p, recipient) = keyed_project("migrate_agenix_to_sops_nix");
    let key = p.root.join("admin.key");
    let key = key.to_str().unwrap();
    p.manifest(&manifest(
        &recipient,
        &[("api", "agenix"), ("other", "agenix")],
    ));
    p.run(["generate"]).success();
    let before = p
        .run([
            "show", "api", "--target", "m1", "--file", "token", "-i", key,
        ])
        .success()
        .stdout
        .clone();
    let lock_before = p.lock();
    let generated_at = lock_before["entries"]["nixos/m1"]["api"]["generated_at"].clone();
    assert!(p.root.join("secrets/per-machine/m1/api/token.age").exists());

    p.run(["migrate", "api", "--to", "sops-nix", "--dry-run"])
        .success()
        .stdout_has("would move nixos/m1 api from agenix to sops-nix");
    assert!(
        p.root.join("secrets/per-machine/m1/api/token.age").exists(),
        "dry run changed something"
    );

    p.run(["migrate", "api", "--to", "sops-nix", "-i", key])
        .success()
        .stderr_has("old copy removed")
        .stderr_has("set `backend = \"sops-nix\"` on `api`");
    assert!(
        !p.root.join("secrets/per-machine/m1/api").exists(),
        "old agenix files are gone"
    );
    assert!(!p.root.join("secrets/per-machine/m2/api").exists());
    assert!(
        p.root
            .join("secrets/per-machine/m1/other/token.age")
            .exists(),
        "other artifacts stay"
    );
    // Until the declaration changes, check says where it is.
    p.run(["check"])
        .code(1)
        .stdout_has("stored in sops-nix, declared agenix");
    p.manifest(&manifest(
        &recipient,
        &[("api", "sops-nix"), ("other", "agenix")],
    ));
    p.run(["check"]).success();
    let after = p
        .run([
            "show", "api", "--target", "m1", "--file", "token", "-i", key,
        ])
        .success()
        .stdout
        .clone();
    assert_eq!(after, before, "content is byte-identical");
    let lock = p.lock();
    assert_eq!(
        lock["entries"]["nixos/m1"]["api"]["generated_at"], generated_at,
        "generation time kept"
    );
    assert_eq!(
        lock["entries"]["nixos/m1"]["api"]["fingerprint"],
        lock_before["entries"]["nixos/m1"]["api"]["fingerprint"],
        "the secret's declaration did not change"
    );
    assert_eq!(lock["entries"]["nixos/m1"]["api"]["backend"], "sops-nix");
    // The real sops reads what the migration wrote.
    let file = p.root.join("secrets/per-machine/m1.sops.yaml");
    let output = crate::tools::sops(
        &p.root,
        &["-d", file.to_str().unwrap()],
        &[("SOPS_AGE_KEY_FILE", std::ffi::OsStr::new(key))],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains(before.trim()));
}

#[test]
fn gc_lists_exactly_the_orphans_and_removes_them_and_nothing_else() {
    let (p, recipient) = keyed_project("gc_lists_exactly_the_orphans");
    let key = p.root.join("admin.key");
    let key = key.to_str().unwrap();
    p.manifest(&manifest(
        &recipient,
        &[
            ("keep-a", "agenix"),
            ("drop-a", "agenix"),
            ("keep-s", "sops-nix"),
            ("drop-s", "sops-nix"),
        ],
    ));
    // The second sops artifact of a machine goes into an existing file: that needs its key.
    p.run(["generate", "-i", key]).success();
    p.run(["gc", "--dry-run"])
        .success()
        .stderr_has("nothing to collect");
    // Stop declaring two of them.
    p.manifest(&manifest(
        &recipient,
        &[("keep-a", "agenix"), ("keep-s", "sops-nix")],
    ));
    let listed = p.run(["gc", "--dry-run"]).success().stdout.clone();
    let mut lines: Vec<&str> = listed.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "orphan agenix nixos/m1 drop-a",
            "orphan agenix nixos/m2 drop-a",
            "orphan public-store nixos/m1 drop-a",
            "orphan public-store nixos/m1 drop-s",
            "orphan public-store nixos/m2 drop-a",
            "orphan public-store nixos/m2 drop-s",
            "orphan sops-nix nixos/m1 drop-s",
            "orphan sops-nix nixos/m2 drop-s",
        ]
    );
    // Removing without a terminal needs --yes.
    p.run(["gc"]).code(2).stderr_has("pass --yes");
    assert!(p.root.join("secrets/per-machine/m1/drop-a").exists());
    p.run(["gc", "--yes", "-i", key]).success();
    assert!(!p.root.join("secrets/per-machine/m1/drop-a").exists());
    assert!(!p.root.join("public/per-machine/m2/drop-s").exists());
    // The lock forgets what was removed, and only that.
    let lock = p.lock();
    for machine in ["nixos/m1", "nixos/m2"] {
        let entries = lock["entries"][machine].as_object().unwrap();
        let mut names: Vec<&str> = entries.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["keep-a", "keep-s"], "{machine}: {lock}");
    }
    p.run(["gc", "--dry-run"])
        .success()
        .stderr_has("nothing to collect");
    // What is still declared is untouched and still reads back.
    p.run(["check"]).success();
    p.run([
        "show", "keep-s", "--target", "m2", "--file", "token", "-i", key,
    ])
    .success();
    p.run([
        "show", "keep-a", "--target", "m1", "--file", "token", "-i", key,
    ])
    .success();
}

#[test]
fn gc_refuses_to_guess_for_backends_that_cannot_list() {
    let p = Project::new("gc_refuses_to_guess_for_backends_that_cannot_list");
    p.token_artifact();
    p.run(["generate"]).success();
    p.run(["gc", "--dry-run"])
        .success()
        .stderr_has("skipped backend `rec`: it has no `list` and `remove` scripts");
}
