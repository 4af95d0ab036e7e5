//! The generation stamp: what artifacts.lock records for a generation
//! (`fingerprint`, `generated_at`) is what the `openbao` backend writes to
//! the entry's custom metadata, and `check` compares the two, so that an
//! operator whose checkout's lock lags behind the shared server (another
//! operator regenerated and has not pushed the lock yet) is told so instead
//! of "ok". Against a real OpenBao dev server; script backends get the same
//! stamp as `$artifact_fingerprint` and `$artifact_generated_at`.

use std::process::{Command, Stdio};

use artifacts_testkit::BaoServer;
use serde_json::{Value, json};

use crate::openbao::run;
use crate::util::Project;

/// The custom metadata of `secret/artifacts/PATH`, read with the real `bao` CLI.
fn custom_metadata(server: &BaoServer, path: &str) -> Value {
    let metadata: Value = serde_json::from_slice(&server.bao(
        &[
            "kv",
            "metadata",
            "get",
            "-format=json",
            &format!("secret/artifacts/{path}"),
        ],
        None,
    ))
    .unwrap();
    metadata["data"]["custom_metadata"].clone()
}

/// The lock entry of `artifact` under `scope` (`nixos/m1`, `shared`).
fn entry(p: &Project, scope: &str, artifact: &str) -> Value {
    p.lock()["entries"][scope][artifact].clone()
}

/// The `generated_at` the lock records for `artifact` under `scope`.
fn generated_at(p: &Project, scope: &str, artifact: &str) -> String {
    entry(p, scope, artifact)["generated_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no generated_at for {scope} {artifact}: {}", p.lock()))
        .to_owned()
}

/// The custom metadata exactly as serialize writes it for the lock's
/// entry: version, secret files, and the entry's stamp.
fn expected_metadata(p: &Project, scope: &str, artifact: &str, version: u32, files: &str) -> Value {
    let entry = entry(p, scope, artifact);
    json!({
        "artifacts-version": version.to_string(),
        "artifacts-files": files,
        "artifacts-fingerprint": entry["fingerprint"],
        "artifacts-generated-at": entry["generated_at"],
    })
}

fn manifest(address: &str) -> String {
    format!(
        r#"
default.backend = "openbao"
[nixos.m1]
config.openbao.address = "{address}"
[nixos.m2]
config.openbao.address = "{address}"

[artifacts.api]
targets = ["nixos/m1"]
generator = "generators/token.sh"
files.token = {{}}
files.id = {{ secret = false }}
[artifacts.web]
targets = ["nixos/m1"]
generator = "generators/token.sh"
files.token = {{}}
[artifacts.ca]
shared = true
targets = ["nixos/m1", "nixos/m2"]
generator = "generators/token.sh"
files.token = {{}}
"#
    )
}

fn project(name: &str, server: &BaoServer) -> Project {
    let p = Project::new(name);
    p.generator(
        "token.sh",
        r#"head -c 24 /dev/urandom | base64 > "$out/token"
case "$artifact" in api) echo "pub $artifact" > "$out/id" ;; esac"#,
    );
    p.manifest(&manifest(&server.address));
    p
}

/// A second operator's checkout: a copy of `p`'s project directory
/// (manifest, generators, public files, artifacts.lock).
fn checkout(p: &Project, name: &str) -> Project {
    let other = Project::new(name);
    let status = Command::new("cp")
        .arg("-a")
        .arg(p.root.join("."))
        .arg(&other.root)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a {}", p.root.display());
    other
}

/// The JSON row of `label` (`nixos/m1 api`) in a `check --json` report.
fn row<'r>(report: &'r Value, label: &str) -> &'r Value {
    report["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .find(|a| {
            format!(
                "{} {}",
                a["targets"][0].as_str().unwrap(),
                a["artifact"].as_str().unwrap()
            ) == label
        })
        .unwrap_or_else(|| panic!("no row {label} in {report:#}"))
}

/// (a) After generate and regenerate, the KV metadata holds exactly the
/// lock's fingerprint and generation time (per machine and shared).
#[test]
fn openbao_metadata_holds_the_lock_stamp() {
    let server = BaoServer::dev();
    let p = project("openbao_metadata_holds_the_lock_stamp", &server);
    run(&p, &server, ["generate"]).success();
    assert_eq!(
        custom_metadata(&server, "per-machine/m1/api"),
        expected_metadata(&p, "nixos/m1", "api", 1, "token"),
    );
    assert_eq!(
        custom_metadata(&server, "shared/ca"),
        expected_metadata(&p, "shared", "ca", 1, "token"),
    );
    let first = generated_at(&p, "nixos/m1", "api");

    run(&p, &server, ["regenerate", "api", "--yes"]).success();
    assert_ne!(generated_at(&p, "nixos/m1", "api"), first);
    assert_eq!(
        custom_metadata(&server, "per-machine/m1/api"),
        expected_metadata(&p, "nixos/m1", "api", 2, "token"),
    );
    run(&p, &server, ["check"]).success();
}

/// (b) Two checkouts share one server. B regenerates `api` and has not
/// pushed its lock: A's check is not ok, names the artifact, both
/// generation times and what to do, and A's `generate` leaves B's
/// generation alone; with B's lock, A's check is ok again.
#[test]
fn a_generation_the_lock_does_not_record_is_an_error_until_the_lock_is_pulled() {
    let server = BaoServer::dev();
    let a = project("stamp_two_checkouts_a", &server);
    run(&a, &server, ["generate"]).success();
    let b = checkout(&a, "stamp_two_checkouts_b");
    run(&b, &server, ["check"]).success();
    let recorded = generated_at(&a, "nixos/m1", "api");

    run(&b, &server, ["regenerate", "api", "--yes"]).success();
    let made = generated_at(&b, "nixos/m1", "api");
    assert_ne!(made, recorded);
    let reason = format!(
        "backend `openbao` holds a generation of `api` made at {made} that artifacts.lock does not record (it records one made at {recorded}): another operator regenerated it; pull their artifacts.lock, or run `artifacts regenerate api`"
    );

    // A check error (exit 2), not ok; the other artifacts are unaffected.
    run(&a, &server, ["check"]).code(2).stdout_has(&reason);
    let report = run(&a, &server, ["check", "--json"]).code(2).json();
    let api = row(&report, "nixos/m1 api");
    assert_eq!(api["status"], "error", "{report:#}");
    assert_eq!(api["reason"], reason.as_str(), "{report:#}");
    assert_eq!(row(&report, "nixos/m1 web")["status"], "ok", "{report:#}");
    assert_eq!(row(&report, "nixos/m1 ca")["status"], "ok", "{report:#}");
    // A's `generate` does not take it for something to replace.
    run(&a, &server, ["generate"])
        .code(1)
        .stderr_has("nixos/m1 api")
        .stderr_has("nothing generated: 1 artifact(s) could not be checked")
        .stderr_lacks("everything selected is stored and current");
    assert_eq!(
        custom_metadata(&server, "per-machine/m1/api"),
        expected_metadata(&b, "nixos/m1", "api", 2, "token"),
    );

    // Pulling B's lock (and the public file B regenerated with it) agrees.
    for file in ["artifacts.lock", "public/per-machine/m1/api/id"] {
        std::fs::copy(b.root.join(file), a.root.join(file)).unwrap();
    }
    run(&a, &server, ["check"]).success();
    run(&b, &server, ["check"]).success();
}

/// (c) Values put in by hand (`set`, `import`) and a migration into
/// openbao are stamped with what the lock records for them.
#[test]
fn set_import_and_migrate_into_openbao_stamp_the_lock_entry() {
    let server = BaoServer::dev();
    let p = project("stamp_set_import_migrate", &server);
    run(&p, &server, ["generate"]).success();

    let value = p.home.join("value");
    std::fs::write(&value, "put-in-by-hand\n").unwrap();
    let id = p.home.join("id");
    std::fs::write(&id, "pub id\n").unwrap();
    let (value, id) = (value.to_str().unwrap(), id.to_str().unwrap());
    run(
        &p,
        &server,
        [
            "set", "api", "--file", "token", "--from", value, "--file", "id", "--from", id,
        ],
    )
    .success();
    assert_eq!(entry(&p, "nixos/m1", "api")["provenance"], "set");
    assert_eq!(
        custom_metadata(&server, "per-machine/m1/api"),
        expected_metadata(&p, "nixos/m1", "api", 2, "token"),
    );

    // import: an agenix file made by the real age.
    let key = p.root.join("admin.key");
    let key = key.to_str().unwrap();
    p.run(["age", "keygen", "-o", key]).success();
    let recipient = std::fs::read_to_string(key)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .unwrap();
    let encrypted = p.root.join("old-web.age");
    let mut age = Command::new(artifacts_testkit::tool("age", "age"))
        .args(["-r", &recipient, "-o"])
        .arg(&encrypted)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut age.stdin.take().unwrap(), b"legacy-web-token").unwrap();
    assert!(age.wait().unwrap().success());
    run(
        &p,
        &server,
        [
            "import",
            "web",
            "--file",
            "token",
            "--from",
            encrypted.to_str().unwrap(),
            "-i",
            key,
        ],
    )
    .success();
    assert_eq!(entry(&p, "nixos/m1", "web")["provenance"], "imported");
    assert_eq!(
        custom_metadata(&server, "per-machine/m1/web"),
        expected_metadata(&p, "nixos/m1", "web", 2, "token"),
    );

    // migrate agenix → openbao keeps the generation, so its stamp.
    let text = manifest(&server.address).replace(
        "[artifacts.ca]",
        r#"[artifacts.db]
targets = ["nixos/m2"]
backend = "agenix"
generator = "generators/token.sh"
files.token = {}
[artifacts.ca]"#,
    );
    p.manifest(&text.replace(
        "[nixos.m2]\n",
        &format!("[nixos.m2]\nconfig.agenix.publicUserKeys = [\"{recipient}\"]\n"),
    ));
    run(&p, &server, ["generate", "db"]).success();
    run(&p, &server, ["migrate", "db", "--to", "openbao", "-i", key]).success();
    assert_eq!(
        custom_metadata(&server, "per-machine/m2/db"),
        expected_metadata(&p, "nixos/m2", "db", 1, "token"),
    );
    run(&p, &server, ["check", "api", "web"]).success();
}

/// (d) An entry whose metadata has no `artifacts-fingerprint` (written
/// before the stamp) is not flagged, whatever generation time it records;
/// with a fingerprint, a time the lock does not record is.
#[test]
fn entries_without_the_stamp_are_not_flagged() {
    let server = BaoServer::dev();
    let p = project("stamp_entries_without_the_stamp", &server);
    run(&p, &server, ["generate"]).success();
    let path = "secret/artifacts/per-machine/m1/web";
    let put = |pairs: &[(&str, &str)]| {
        let mut args = vec!["kv".to_owned(), "metadata".to_owned(), "put".to_owned()];
        args.extend(
            pairs
                .iter()
                .map(|(k, v)| format!("-custom-metadata={k}={v}")),
        );
        args.push(path.to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        server.bao(&args, None);
    };
    let fingerprint = entry(&p, "nixos/m1", "web")["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let old = "2020-01-01T00:00:00.000000Z";
    put(&[
        ("artifacts-version", "1"),
        ("artifacts-files", "token"),
        ("artifacts-fingerprint", &fingerprint),
        ("artifacts-generated-at", old),
    ]);
    run(&p, &server, ["check", "web"])
        .code(2)
        .stdout_has(&format!(
            "holds a generation of `web` made at {old} that artifacts.lock does not record"
        ));

    // What serialize wrote before the stamp: its own clock, no fingerprint.
    put(&[
        ("artifacts-version", "1"),
        ("artifacts-files", "token"),
        ("artifacts-generated-at", old),
    ]);
    let custom = custom_metadata(&server, "per-machine/m1/web");
    assert!(custom.get("artifacts-fingerprint").is_none(), "{custom}");
    run(&p, &server, ["check"]).success();
}

/// An artifact stored (and stamped) by another checkout but not in this
/// one's lock is untracked; `accept` records the stored generation's time,
/// so the lock and the server agree afterwards.
#[test]
fn accepting_an_untracked_stamped_generation_records_its_time() {
    let server = BaoServer::dev();
    let p = project("stamp_accept_untracked", &server);
    run(&p, &server, ["generate"]).success();
    let made = generated_at(&p, "nixos/m1", "web");
    let mut lock = p.lock();
    lock["entries"]["nixos/m1"]
        .as_object_mut()
        .unwrap()
        .remove("web");
    std::fs::write(p.root.join("artifacts.lock"), lock.to_string()).unwrap();

    run(&p, &server, ["check", "web"]).stdout_has("untracked");
    run(&p, &server, ["accept", "web"]).success();
    assert_eq!(generated_at(&p, "nixos/m1", "web"), made);
    run(&p, &server, ["check"]).success();
}

/// Script backends get the stamp at serialize (and only there) as
/// `$artifact_fingerprint` and `$artifact_generated_at`; `rekey` passes the
/// lock entry it keeps.
#[test]
fn script_backends_get_the_stamp_at_serialize() {
    let p = Project::new("stamp_script_backends");
    p.token_artifact();
    let mut command = p.command(["generate"]);
    // Ours must not leak into scripts that get no stamp.
    command.env("artifact_fingerprint", "sha256:not-ours");
    p.finish(&mut command).success();
    let lock_entry = entry(&p, "nixos/m", "a");
    let fingerprint = lock_entry["fingerprint"].as_str().unwrap().to_owned();
    let generated = lock_entry["generated_at"].as_str().unwrap().to_owned();
    let stamped = |record: &str| {
        let text = std::fs::read_to_string(p.root.join("records").join(record)).unwrap();
        assert!(
            text.contains(&format!("\nartifact_fingerprint={fingerprint}\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("\nartifact_generated_at={generated}\n")),
            "{text}"
        );
    };
    stamped("serialize-nixos-m-a");
    let check = std::fs::read_to_string(p.root.join("records/check-nixos-m-a")).unwrap();
    assert!(!check.contains("artifact_fingerprint"), "{check}");
    assert!(!check.contains("artifact_generated_at"), "{check}");

    // Recipients changed (check exits 3 while `rekey-me` exists): rekey
    // stores the same generation again, with the stamp the lock keeps.
    p.script(
        "backends/rec/check",
        &format!(
            "#!/bin/sh\nset -eu\n[ -e rekey-me ] && exit 3\n{}",
            std::fs::read_to_string(p.root.join("backends/rec/check"))
                .unwrap()
                .trim_start_matches("#!/bin/sh\nset -eu\n")
        ),
    );
    std::fs::remove_file(p.root.join("records/serialize-nixos-m-a")).unwrap();
    p.file("rekey-me", "");
    p.run(["rekey"])
        .success()
        .stderr_has("re-encrypted nixos/m a");
    assert_eq!(entry(&p, "nixos/m", "a"), lock_entry);
    stamped("serialize-nixos-m-a");
}

/// openbao run as a script backend (`artifacts __backend openbao …`, as a
/// copied `backend.toml` would): serialize reads the stamp from the
/// environment, and check answers a stamped entry with exit 0.
#[test]
fn openbao_through_backend_scripts_is_stamped_too() {
    let server = BaoServer::dev();
    let p = project("stamp_openbao_scripts", &server);
    let mut toml = String::new();
    for section in ["nixos", "shared"] {
        toml.push_str(&format!("[openbao.{section}]\n"));
        for script in ["check", "serialize", "deserialize"] {
            p.script(
                &format!("wrappers/{script}"),
                &format!(
                    "#!/bin/sh\necho {script} >> wrappers.log\nexec \"$ARTIFACTS\" __backend openbao {script}\n"
                ),
            );
            toml.push_str(&format!("{script} = \"./wrappers/{script}\"\n"));
        }
    }
    p.file("backend.toml", &toml);
    run(&p, &server, ["generate"]).success();
    assert_eq!(
        custom_metadata(&server, "per-machine/m1/api"),
        expected_metadata(&p, "nixos/m1", "api", 1, "token"),
    );
    assert_eq!(
        custom_metadata(&server, "shared/ca"),
        expected_metadata(&p, "shared", "ca", 1, "token"),
    );
    run(&p, &server, ["check"]).success();
    // The wrappers ran, not the built-in backend.
    let ran = std::fs::read_to_string(p.root.join("wrappers.log")).unwrap();
    assert!(ran.lines().any(|l| l == "serialize"), "{ran}");
    assert!(ran.lines().any(|l| l == "check"), "{ran}");
}
