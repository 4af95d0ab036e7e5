//! Never lose or silently replace a stored secret (issue 11): a backend
//! switch in either order, placement and generator edits, adopting stores
//! without a lock, and lock files written by version 1.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;

use crate::tools;
use crate::util::Project;

/// Every file under `dir` (recursively) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name() != Some(".artifacts.lock.flock".as_ref()) {
                // The project lock's file holds the last holder's pid: not content.
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// What the stores hold: the secret stores and the public store.
fn stores(p: &Project) -> BTreeMap<String, Vec<u8>> {
    let mut all = snapshot(&p.root.join("secrets"));
    for (name, bytes) in snapshot(&p.root.join("public")) {
        all.insert(format!("public/{name}"), bytes);
    }
    all
}

/// Fails naming the files that differ (not their bytes: they are secrets' ciphertexts).
#[track_caller]
fn assert_same(now: &BTreeMap<String, Vec<u8>>, before: &BTreeMap<String, Vec<u8>>, what: &str) {
    let names: std::collections::BTreeSet<&String> = now.keys().chain(before.keys()).collect();
    let differing: Vec<&&String> = names
        .iter()
        .filter(|name| now.get(**name) != before.get(**name))
        .collect();
    assert!(
        differing.is_empty(),
        "{what}: these files differ: {differing:?}"
    );
}

/// A project with an admin age key (made by the real `age-keygen`) whose
/// public key is every target's recipient, and a random-token generator.
fn keyed_project(name: &str) -> (Project, String, String) {
    let p = Project::new(name);
    let key = tools::age_keygen(&p, "admin.key");
    p.generator(
        "token.sh",
        r#"head -c 24 /dev/urandom | base64 > "$out/token"; echo "pub $artifact" > "$out/id""#,
    );
    let path = key.path.to_str().unwrap().to_owned();
    (p, path, key.public)
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

/// The stored `token` of `artifact` on `machine`, decrypted with `key`.
fn show(p: &Project, key: &str, artifact: &str, machine: &str) -> String {
    let run = p.run([
        "show", artifact, "--target", machine, "--file", "token", "-i", key,
    ]);
    run.success();
    assert!(!run.stdout.trim().is_empty());
    run.stdout.clone()
}

/// `check --json` rows of `artifact`.
fn rows(p: &Project, args: &[&str], code: i32, artifact: &str) -> Vec<serde_json::Value> {
    let mut all = vec!["check", "--json"];
    all.extend(args);
    let status = p.run(all).code(code).json();
    status["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["artifact"] == artifact)
        .cloned()
        .collect()
}

/// The declaration changes first (`backend = to`), then `migrate` follows it.
fn declaration_changed_first(test: &str, from: &str, to: &str) {
    let (p, key, recipient) = keyed_project(test);
    let key = key.as_str();
    p.manifest(&manifest(&recipient, &[("api", from), ("other", from)]));
    p.run(["generate", "-i", key]).success();
    let before = [show(&p, key, "api", "m1"), show(&p, key, "api", "m2")];
    let other = show(&p, key, "other", "m1");
    let stored = stores(&p);
    let lock = std::fs::read(p.root.join("artifacts.lock")).unwrap();

    p.manifest(&manifest(&recipient, &[("api", to), ("other", from)]));
    p.run(["check"])
        .code(1)
        .stdout_has(&format!(
            "elsewhere nixos/m1 api\n         stored in {from}, declared {to}: run `artifacts migrate api`"
        ))
        .stdout_has("2 stored elsewhere")
        .stdout_has("run `artifacts migrate api` to move what another backend stores");
    let api = rows(&p, &[], 1, "api");
    assert_eq!(api.len(), 2);
    for row in &api {
        assert_eq!(row["status"], "elsewhere", "{row}");
        assert_eq!(row["stored_in"], from, "{row}");
        assert_eq!(row["backend"], to, "{row}");
    }
    // Neither generate nor gc replaces or removes the only copies.
    p.run(["generate", "--yes", "-i", key])
        .code(1)
        .stderr_has(&format!("nixos/m1 api is stored in {from}, declared {to}"))
        .stderr_has("pass --regenerate-elsewhere to replace it");
    p.run(["generate", "--dry-run"])
        .code(1)
        .stdout_has("nothing to generate");
    p.run(["gc", "--yes", "-i", key])
        .success()
        .stderr_has(&format!(
            "kept {from} nixos/m1 api: the only stored copy of `api`, declared with backend `{to}`: run `artifacts migrate api`"
        ))
        .stderr_has(&format!("kept {from} nixos/m2 api"));
    assert_same(&stores(&p), &stored, "nothing stored changed");
    assert_eq!(
        std::fs::read(p.root.join("artifacts.lock")).unwrap(),
        lock,
        "the lock did not change"
    );

    p.run(["migrate", "api", "--dry-run"])
        .success()
        .stdout_has(&format!("would move nixos/m1 api from {from} to {to}"));
    p.run(["migrate", "api", "-i", key])
        .success()
        .stderr_has(&format!(
            "moved nixos/m1 api from {from} to {to} (verified, old copy removed)"
        ))
        .stderr_lacks("now change the declaration");
    p.run(["check"]).success();
    assert_eq!(
        [show(&p, key, "api", "m1"), show(&p, key, "api", "m2")],
        before,
        "the secret's bytes did not change"
    );
    assert_eq!(show(&p, key, "other", "m1"), other);
    p.run(["gc", "--dry-run"])
        .success()
        .stderr_has("nothing to collect");
}

/// `migrate --to` first, then the declaration follows.
fn migrated_first(test: &str, from: &str, to: &str) {
    let (p, key, recipient) = keyed_project(test);
    let key = key.as_str();
    p.manifest(&manifest(&recipient, &[("api", from), ("other", from)]));
    p.run(["generate", "-i", key]).success();
    let before = [show(&p, key, "api", "m1"), show(&p, key, "api", "m2")];

    p.run(["migrate", "api", "--to", to, "-i", key])
        .success()
        .stderr_has(&format!("moved nixos/m2 api from {from} to {to}"))
        .stderr_has(&format!("set `backend = \"{to}\"` on `api`"));
    assert_eq!(p.lock()["entries"]["nixos/m1"]["api"]["backend"], to);
    p.run(["check"]).code(1).stdout_has(&format!(
        "stored in {to}, declared {from}: run `artifacts migrate api` (or declare `backend = \"{to}\"` again)"
    ));
    for row in rows(&p, &[], 1, "api") {
        assert_eq!(row["status"], "elsewhere", "{row}");
        assert_eq!(row["stored_in"], to, "{row}");
    }
    let stored = stores(&p);
    p.run(["generate", "--yes", "-i", key])
        .code(1)
        .stderr_has("pass --regenerate-elsewhere");
    p.run(["gc", "--yes", "-i", key])
        .success()
        .stderr_has(&format!("kept {to} nixos/m1 api: the only stored copy"));
    assert_same(&stores(&p), &stored, "nothing stored changed");
    // Asking again is not an error, and says what is left to do.
    p.run(["migrate", "api", "--to", to, "-i", key])
        .success()
        .stderr_has(&format!("nixos/m1 api is already stored in `{to}`"))
        .stderr_has(&format!("set `backend = \"{to}\"` on `api`"));
    assert_same(&stores(&p), &stored, "stores");

    p.manifest(&manifest(&recipient, &[("api", to), ("other", from)]));
    p.run(["check"]).success();
    assert_eq!(
        [show(&p, key, "api", "m1"), show(&p, key, "api", "m2")],
        before,
        "the secret's bytes did not change"
    );
}

#[test]
fn switch_agenix_to_sops_nix_declaration_first() {
    declaration_changed_first(
        "switch_agenix_to_sops_nix_declaration_first",
        "agenix",
        "sops-nix",
    );
}

#[test]
fn switch_sops_nix_to_agenix_declaration_first() {
    declaration_changed_first(
        "switch_sops_nix_to_agenix_declaration_first",
        "sops-nix",
        "agenix",
    );
}

#[test]
fn switch_agenix_to_sops_nix_migrate_first() {
    migrated_first(
        "switch_agenix_to_sops_nix_migrate_first",
        "agenix",
        "sops-nix",
    );
}

#[test]
fn switch_sops_nix_to_agenix_migrate_first() {
    migrated_first(
        "switch_sops_nix_to_agenix_migrate_first",
        "sops-nix",
        "agenix",
    );
}

#[test]
fn migrate_from_names_the_source_and_regenerate_elsewhere_replaces_on_request() {
    let (p, key, recipient) = keyed_project("migrate_from_names_the_source");
    let key = key.as_str();
    p.manifest(&manifest(&recipient, &[("api", "agenix")]));
    p.run(["generate", "-i", key]).success();
    let before = show(&p, key, "api", "m1");
    let m2 = show(&p, key, "api", "m2");
    // Moving within one storage would copy onto itself, then remove the copy.
    let stored = stores(&p);
    p.run(["migrate", "api", "--from", "agenix", "-i", key])
        .success()
        .stderr_has("nixos/m1 api is already stored in `agenix`");
    assert_same(&stores(&p), &stored, "stores");
    p.manifest(&manifest(&recipient, &[("api", "sops-nix")]));
    p.run(["migrate", "api", "--from", "sops-nix"])
        .code(1)
        .stderr_has("nixos/m1 api: backend `sops-nix` does not store it");
    p.run(["migrate", "api", "--from", "nope"])
        .code(2)
        .stderr_has("unknown backend `nope`");
    p.run([
        "migrate", "api", "--from", "agenix", "--target", "m1", "-i", key,
    ])
    .success()
    .stderr_has("moved nixos/m1 api from agenix to sops-nix");
    assert_eq!(show(&p, key, "api", "m1"), before);
    // m2 still has it in agenix only; the explicit flag replaces it with a new secret.
    p.run(["generate", "--regenerate-elsewhere", "-i", key])
        .success()
        .stderr_has("generated 1 artifact(s)");
    p.run(["check"]).success();
    assert_ne!(show(&p, key, "api", "m2"), m2);
    assert_eq!(show(&p, key, "api", "m1"), before);
    // `sops` is another name of `sops-nix`: already there, nothing removed;
    // nor does the old copy m2 still has in agenix replace the new one.
    let stored = stores(&p);
    p.run(["migrate", "api", "--to", "sops", "-i", key])
        .success()
        .stderr_has("nixos/m1 api is already stored in `sops`")
        .stderr_has("nixos/m2 api is already stored in `sops`");
    p.run(["migrate", "api", "--from", "agenix", "--target", "m2", "-i", key])
        .code(1)
        .stderr_has("backend `sops-nix` already stores it; moving the copy in `agenix` there would replace that one");
    assert_same(&stores(&p), &stored, "stores");
    assert_ne!(show(&p, key, "api", "m2"), m2);
    // That old copy is not the last one: gc may remove it.
    p.run(["gc", "--dry-run"])
        .success()
        .stdout_has("orphan agenix nixos/m2 api");
    assert_eq!(show(&p, key, "api", "m1"), before);
}

#[test]
fn placement_edits_keep_check_green_and_accept_records_them() {
    let (p, key, recipient) = keyed_project("placement_edits_keep_check_green");
    let key = key.as_str();
    let declare = |file: &str| {
        p.manifest(&format!(
            "[nixos.m1]\nconfig.agenix.publicUserKeys = [\"{recipient}\"]\n[artifacts.api]\ntargets = [\"m1\"]\nbackend = \"agenix\"\ngenerator = \"generators/token.sh\"\nfiles.token = {file}\nfiles.id = {{ secret = false }}\n"
        ));
    };
    declare("{}");
    p.run(["generate"]).success();
    let before = show(&p, key, "api", "m1");
    let stored = stores(&p);
    for file in [
        r#"{ mode = "0440" }"#,
        r#"{ mode = "0440", owner = "nginx" }"#,
        r#"{ mode = "0440", owner = "nginx", group = "www" }"#,
        r#"{ mode = "0440", owner = "nginx", group = "www", path = "/run/keys/api-token" }"#,
    ] {
        declare(file);
        p.run(["check"])
            .success()
            .stdout_has("1 ok, 0 missing, 0 stale");
        assert_eq!(rows(&p, &[], 0, "api")[0]["status"], "ok");
        p.run(["explain", "api"])
            .success()
            .stdout_has("placement changed since: nothing to do");
    }
    p.run(["generate", "--yes"])
        .success()
        .stderr_has("nothing to generate");
    p.run(["accept"]).success();
    p.run(["explain", "api"])
        .success()
        .stdout_has("/run/keys/api-token")
        .stdout_lacks("placement changed");
    assert_same(&stores(&p), &stored, "nothing was regenerated");
    assert_eq!(show(&p, key, "api", "m1"), before);
}

#[test]
fn generator_edit_is_stale_until_accepted_and_the_bytes_stay() {
    let (p, key, recipient) = keyed_project("generator_edit_is_stale_until_accepted");
    let key = key.as_str();
    p.manifest(&manifest(&recipient, &[("api", "agenix")]));
    p.run(["generate"]).success();
    let before = [show(&p, key, "api", "m1"), show(&p, key, "api", "m2")];
    let stored = stores(&p);
    let generated_at = p.lock()["entries"]["nixos/m1"]["api"]["generated_at"].clone();

    // A comment changes the generator's content, so it is stale: accept resolves it.
    p.generator(
        "token.sh",
        "# tokens for the api\nhead -c 24 /dev/urandom | base64 > \"$out/token\"; echo \"pub $artifact\" > \"$out/id\"",
    );
    p.run(["check"])
        .code(1)
        .stdout_has("the generator changed since generation: `artifacts accept api` keeps what is stored")
        .stdout_has("run `artifacts accept api` to keep what is stored for the changed declaration, or `artifacts regenerate api` to replace it")
        .stdout_lacks("artifacts generate");
    for row in rows(&p, &[], 1, "api") {
        assert_eq!(row["status"], "stale", "{row}");
        assert_eq!(row["cause"], "declaration", "{row}");
    }
    p.run(["generate"])
        .success()
        .stderr_has("pass --yes to regenerate them");
    p.run(["accept", "--dry-run"])
        .success()
        .stdout_has("would accept nixos/m1 api (the generator changed since generation)");
    assert_same(&stores(&p), &stored, "stores");
    p.run(["accept"])
        .success()
        .stderr_has("accepted nixos/m1 api (the generator changed since generation)")
        .stderr_has("recorded 2 artifact(s) in artifacts.lock");
    p.run(["check"]).success();
    assert_same(&stores(&p), &stored, "accept regenerates nothing");
    assert_eq!(
        [show(&p, key, "api", "m1"), show(&p, key, "api", "m2")],
        before
    );
    assert_eq!(
        p.lock()["entries"]["nixos/m1"]["api"]["generated_at"],
        generated_at,
        "the generation time stays"
    );
    // Naming something that is not stored is an error, not a silent no-op.
    p.manifest(&manifest(
        &recipient,
        &[("api", "agenix"), ("new", "agenix")],
    ));
    p.run(["accept", "new"]).code(1).stderr_has(
        "nixos/m1 new: not stored, so there is nothing to accept (run `artifacts generate new`)",
    );
}

#[test]
fn upstream_store_without_a_lock_is_untracked_and_generate_changes_nothing() {
    let p = Project::new("upstream_store_without_a_lock_is_untracked");
    let key = tools::age_keygen(&p, "admin.key");
    let recipient = key.public.clone();
    p.generator(
        "token.sh",
        r#"head -c 24 /dev/urandom | base64 > "$out/token""#,
    )
    .generator(
        "password.sh",
        r#"head -c 24 /dev/urandom | base64 > "$out/password""#,
    )
    .manifest(&format!(
        r#"
[nixos.m1]
config.agenix.publicUserKeys = ["{recipient}"]
[nixos.m1.artifacts.api]
backend = "agenix"
generator = "generators/token.sh"
files.token = {{}}
[nixos.m1.artifacts.db]
backend = "sops-nix"
generator = "generators/password.sh"
files.password = {{}}
"#
    ));
    // Stored by hand with the real age and sops, no artifacts.lock.
    let dir = p.root.join("secrets/per-machine/m1/api");
    std::fs::create_dir_all(&dir).unwrap();
    p.file("plain-token", "hand-made-token\n");
    tools::ok(
        "age -e",
        tools::run_tool(
            &tools::tool("age", "age"),
            &[
                OsStr::new("-e"),
                OsStr::new("-a"),
                OsStr::new("-r"),
                OsStr::new(&recipient),
                OsStr::new("-o"),
                dir.join("token.age").as_os_str(),
                p.root.join("plain-token").as_os_str(),
            ],
            &[],
            &p.root,
        ),
    );
    std::fs::remove_file(p.root.join("plain-token")).unwrap();
    std::fs::write(dir.join(".recipients"), format!("{recipient}\n")).unwrap();
    let sops_file = p.file(
        "secrets/per-machine/m1.sops.yaml",
        "db:\n    password: hand-made-password\n",
    );
    tools::ok(
        "sops -e",
        tools::sops(
            &p.root,
            &[
                "--encrypt",
                "--in-place",
                "--age",
                &recipient,
                sops_file.to_str().unwrap(),
            ],
            &[],
        ),
    );
    let before = snapshot(&p.root);

    p.run(["check"])
        .success()
        .stdout_has("untracked nixos/m1 api")
        .stdout_has("0 ok, 0 missing, 0 stale, 2 untracked, 0 errors")
        .stdout_has("note: 2 untracked artifact(s) are stored but not in artifacts.lock and are left as they are; run `artifacts accept api db` to record them");
    let status = p.run(["check", "--json"]).success().json();
    assert_eq!(status["summary"]["untracked"], 2, "{status}");
    for row in status["artifacts"].as_array().unwrap() {
        assert_eq!(row["status"], "untracked", "{row}");
    }
    p.run(["check", "--strict"]).code(1);
    p.run(["generate", "--yes"])
        .success()
        .stderr_has("note: nixos/m1 api is stored but not in artifacts.lock: left as it is")
        .stderr_has("nothing to generate");
    assert_same(
        &snapshot(&p.root),
        &before,
        "generate --yes changed nothing",
    );

    p.run(["accept"])
        .success()
        .stderr_has("adopted nixos/m1 api")
        .stderr_has("adopted nixos/m1 db");
    p.run(["check", "--strict"]).success();
    let entry = &p.lock()["entries"]["nixos/m1"]["db"];
    assert_eq!(entry["backend"], "sops-nix", "{entry}");
    assert!(
        entry.get("generated_at").is_none(),
        "unknown generation time: {entry}"
    );
    let key = key.path.to_str().unwrap();
    p.run(["show", "api", "-i", key])
        .success()
        .stdout_has("hand-made-token");
    p.run(["show", "db", "-i", key])
        .success()
        .stdout_has("hand-made-password");
    // An adopted artifact has no age, so rotation by age leaves it alone.
    p.run(["regenerate", "--older-than", "1s", "--yes"])
        .success()
        .stderr_has("has no generation time in artifacts.lock");
    p.run(["show", "api", "-i", key])
        .success()
        .stdout_has("hand-made-token");
}

/// The rec backend's store and a version-1 lock written by the previous
/// release for it (ca, leaf depending on ca, old), generators as
/// [`Project::generator`] writes them.
const V1_MANIFEST: &str = r#"
default.backend = "rec"
[nixos.m.artifacts.ca]
generator = "generators/ca.sh"
files.cert = {}
[nixos.m.artifacts.leaf]
generator = "generators/leaf.sh"
dependencies = ["ca"]
files.cert = { mode = "0440" }
[nixos.m.artifacts.old]
generator = "generators/ca.sh"
files.cert = {}
"#;

const V1_LOCK: &str = r#"{
  "version": 1,
  "entries": {
    "nixos/m": {
      "ca": {
        "fingerprint": "sha256:5c2634b461095fd66b5d939d2546e726311fbc990b7ae6f0c5b35c0162360f54",
        "generated_at": "2026-11-30T08:43:38.893604Z"
      },
      "leaf": {
        "fingerprint": "sha256:40822f4994b9abd6fce28e4b2efc91b9070ba7b04228dc69ba9c23be997962c8",
        "generated_at": "2026-11-30T08:43:38.927894Z"
      },
      "old": {
        "fingerprint": "sha256:4e023ac27b828eecba297d5b702b81005eac39e24b896b77939b1caff05d6d98",
        "generated_at": "2026-11-30T08:43:38.981286Z"
      }
    }
  }
}
"#;

fn v1_project(name: &str) -> Project {
    let p = Project::new(name);
    p.recording_backend()
        .generator(
            "ca.sh",
            r#"echo "ca-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$out/cert""#,
        )
        .generator(
            "leaf.sh",
            r#"echo "signed by $(cat "$in/ca/cert")" > "$out/cert""#,
        )
        .manifest(V1_MANIFEST);
    p.file("store/nixos/m/ca/cert", "ca-4b29961e\n");
    p.file("store/nixos/m/leaf/cert", "signed by ca-4b29961e\n");
    p.file("store/nixos/m/old/cert", "ca-400ee7d2\n");
    p.file("artifacts.lock", V1_LOCK);
    p
}

#[test]
fn version_1_lock_entries_that_match_stay_ok_and_are_upgraded_on_write() {
    let p = v1_project("version_1_lock_entries_that_match_stay_ok");
    p.run(["check"])
        .success()
        .stdout_has("3 ok, 0 missing, 0 stale");
    p.run(["generate", "--yes"])
        .success()
        .stderr_has("nothing to generate");
    assert_eq!(p.lock()["version"], 1, "reading does not rewrite the lock");

    // Writing anything writes version 2, keeping every generation time.
    p.run(["regenerate", "old", "--yes"]).success();
    let lock = p.lock();
    assert_eq!(lock["version"], 2, "{lock}");
    let leaf = &lock["entries"]["nixos/m"]["leaf"];
    assert_eq!(
        leaf["generated_at"], "2026-11-30T08:43:38.927894Z",
        "{lock}"
    );
    assert_eq!(leaf["backend"], "rec", "{lock}");
    assert!(
        leaf["placement"].as_str().unwrap().starts_with("sha256:"),
        "{lock}"
    );
    assert_eq!(
        leaf["dependencies"]["nixos/m ca"], "2026-11-30T08:43:38.893604Z",
        "{lock}"
    );
    p.run(["check"]).success();
    assert_eq!(
        p.stored("nixos/m/leaf/cert").unwrap(),
        "signed by ca-4b29961e\n"
    );

    // Dependencies are tracked by generation: a regenerated CA makes the leaf
    // stale, and `accept` does not paper over it unless the leaf is named.
    p.run(["regenerate", "ca", "--yes", "--no-cascade"])
        .success();
    p.run(["check"])
        .code(1)
        .stdout_has(
            "dependency `nixos/m ca` was regenerated since: run `artifacts regenerate leaf`",
        )
        .stdout_has("run `artifacts regenerate leaf` to regenerate what is outdated");
    assert_eq!(rows(&p, &[], 1, "leaf")[0]["cause"], "dependency");
    p.run(["accept"])
        .success()
        .stderr_has("nixos/m leaf not accepted: dependency `nixos/m ca` was regenerated since");
    p.run(["check"]).code(1);
    p.run(["accept", "leaf"])
        .success()
        .stderr_has("accepted nixos/m leaf");
    p.run(["check"]).success();
}

#[test]
fn version_1_lock_entries_that_do_not_match_stay_stale() {
    let p = v1_project("version_1_lock_entries_that_do_not_match_stay_stale");
    p.generator(
        "other.sh",
        r#"echo "other-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$out/cert""#,
    );
    p.manifest(&V1_MANIFEST.replace(
        "[nixos.m.artifacts.old]\ngenerator = \"generators/ca.sh\"",
        "[nixos.m.artifacts.old]\ngenerator = \"generators/other.sh\"",
    ));
    let old = rows(&p, &[], 1, "old");
    assert_eq!(old[0]["status"], "stale", "{old:?}");
    assert_eq!(rows(&p, &[], 1, "ca")[0]["status"], "ok");
    // Written as version 2, the entry is still stale.
    p.run(["regenerate", "leaf", "--yes"]).success();
    assert_eq!(p.lock()["version"], 2);
    assert_eq!(rows(&p, &[], 1, "old")[0]["status"], "stale");
    p.run(["accept", "old"]).success();
    p.run(["check"]).success();
    assert_eq!(p.stored("nixos/m/old/cert").unwrap(), "ca-400ee7d2\n");
}

/// A second recording backend, `rec2`, storing under `store2/`.
fn add_rec2(p: &Project) {
    for script in ["common.sh", "check", "serialize", "deserialize"] {
        let text = std::fs::read_to_string(p.root.join("backends/rec").join(script)).unwrap();
        let copy = p.script(
            &format!("backends/rec2/{script}"),
            &text.replace("store/", "store2/"),
        );
        assert!(copy.exists());
    }
    p.file(
        "backend.toml",
        &format!(
            "{}\n[rec2.nixos]\ncheck = \"./backends/rec2/check\"\nserialize = \"./backends/rec2/serialize\"\ndeserialize = \"./backends/rec2/deserialize\"\n",
            std::fs::read_to_string(p.root.join("backend.toml")).unwrap()
        ),
    );
}

#[test]
fn a_failing_check_of_the_backend_the_lock_recorded_is_an_error_not_missing() {
    let p = Project::new("a_failing_check_of_the_recorded_backend");
    p.token_artifact();
    add_rec2(&p);
    p.run(["generate"]).success();
    p.manifest(&crate::util::TOKEN_MANIFEST.replace("\"rec\"", "\"rec2\""));
    p.run(["check"])
        .code(1)
        .stdout_has("stored in rec, declared rec2");
    // The old backend's storage is unreachable: that is no reason to make a new secret.
    p.script(
        "backends/rec/check",
        "#!/bin/sh\necho 'rec: store unreachable' >&2\nexit 2\n",
    );
    p.run(["check"])
        .code(2)
        .stdout_has("backend `rec`, which artifacts.lock says stored it, cannot tell")
        .stdout_has("rec: store unreachable");
    p.run(["generate", "--yes"])
        .code(1)
        .stderr_has("a failing check is never taken for \"missing\"");
    assert!(!p.root.join("store2").exists(), "nothing was generated");
}

#[test]
fn version_1_lock_of_a_backend_switched_before_the_upgrade_is_found_where_it_was() {
    let p = v1_project("version_1_lock_of_a_backend_switched");
    // The declaration switched to another backend before this version ever read the lock.
    add_rec2(&p);
    p.manifest(&V1_MANIFEST.replace("default.backend = \"rec\"", "default.backend = \"rec2\""));
    p.run(["check"])
        .code(1)
        .stdout_has("stored in rec, declared rec2: run `artifacts migrate ca`");
    p.run(["migrate", "ca", "leaf", "old"]).success();
    p.run(["check"]).success();
    assert_eq!(
        std::fs::read_to_string(p.root.join("store2/nixos/m/leaf/cert")).unwrap(),
        "signed by ca-4b29961e\n"
    );
    assert_eq!(p.lock()["entries"]["nixos/m"]["leaf"]["backend"], "rec2");
}

#[test]
fn shared_artifact_switch_keeps_its_only_copy_and_migrates() {
    let (p, key, recipient) = keyed_project("shared_artifact_switch_keeps_its_only_copy");
    let key = key.as_str();
    let declare = |backend: &str| {
        p.manifest(&format!(
            "[nixos.m1]\nconfig.agenix.publicUserKeys = [\"{recipient}\"]\n[nixos.m2]\nconfig.agenix.publicUserKeys = [\"{recipient}\"]\n[artifacts.psk]\nshared = true\ntargets = [\"m1\", \"m2\"]\nbackend = \"{backend}\"\ngenerator = \"generators/token.sh\"\nfiles.token = {{}}\nfiles.id = {{ secret = false }}\n"
        ));
    };
    declare("agenix");
    p.run(["generate"]).success();
    let before = show(&p, key, "psk", "m1");
    let stored = stores(&p);
    declare("sops-nix");
    p.run(["check"])
        .code(1)
        .stdout_has("elsewhere shared psk\n         stored in agenix, declared sops-nix");
    p.run(["gc", "--yes", "-i", key])
        .success()
        .stderr_has("kept agenix shared psk: the only stored copy of `psk`");
    p.run(["generate", "--yes"]).code(1);
    assert_same(&stores(&p), &stored, "nothing stored changed");
    p.run(["migrate", "psk", "-i", key])
        .success()
        .stderr_has("moved shared psk from agenix to sops-nix");
    p.run(["check"]).success();
    assert_eq!(show(&p, key, "psk", "m2"), before);
    assert!(!p.root.join("secrets/shared/psk").exists());
}

#[test]
fn check_suggests_commands_narrowed_to_the_targets_that_need_them() {
    let p = Project::new("check_suggests_commands_narrowed_to_the_targets");
    let token = r#"head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$out/token""#;
    p.recording_backend()
        .generator("a.sh", token)
        .generator("b.sh", &format!("{token}\n# another generator"));
    let declare = |m1_generator: &str| {
        p.manifest(&format!(
            "default.backend = \"rec\"\n[nixos.m1.artifacts.api]\ngenerator = \"generators/{m1_generator}\"\nfiles.token = {{}}\n[nixos.m2.artifacts.api]\ngenerator = \"generators/a.sh\"\nfiles.token = {{}}\n"
        ));
    };
    declare("a.sh");
    p.run(["generate"]).success();
    let m2 = p.stored("nixos/m2/api/token").unwrap();
    declare("b.sh");
    // Regenerating `api` everywhere would replace m2's current secret too.
    p.run(["check"]).code(1).stdout_has(
        "run `artifacts accept api --target nixos/m1` to keep what is stored for the changed declaration, or `artifacts regenerate api --target nixos/m1` to replace it",
    );
    p.run(["regenerate", "api", "--target", "nixos/m1", "--yes"])
        .success()
        .stderr_has("generated 1 artifact(s)");
    p.run(["check"]).success();
    assert_eq!(p.stored("nixos/m2/api/token").unwrap(), m2);
}
