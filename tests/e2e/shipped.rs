//! The shipped backends (agenix, sops-nix/sops, dummy), their copies under
//! `backends/`, and the example backend `examples/backends/plain`, end to
//! end: generate, check, show, recipients changing, rekey, and faults, with
//! the real `age`, `sops` and `ssh-keygen` reading and writing the same files.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use crate::tools::{
    ReadOnlyDir, age_decrypt, age_keygen, artifacts_keygen, ok, project_with_read_only_dirs, sops,
    ssh_keygen,
};
use crate::util::{Project, Run};

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Runs the binary and returns its stdout as bytes (show prints raw files).
#[track_caller]
fn stdout_bytes(p: &Project, args: &[&OsStr], env: &[(&str, &OsStr)]) -> Vec<u8> {
    let mut command = p.command(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("binary runs");
    if !output.status.success() {
        Run::new(format!("{command:?}"), &p.root, output).fail("expected success");
    }
    output.stdout
}

/// `artifacts show ARTIFACT --file FILE -i KEY`, as bytes.
#[track_caller]
fn show(p: &Project, artifact: &str, file: &str, key: &Path) -> Vec<u8> {
    stdout_bytes(
        p,
        &[
            OsStr::new("show"),
            OsStr::new(artifact),
            OsStr::new("--file"),
            OsStr::new(file),
            OsStr::new("-i"),
            key.as_os_str(),
        ],
        &[],
    )
}

/// Runs with extra environment variables.
fn run_env(p: &Project, args: &[&str], env: &[(&str, &OsStr)]) -> Run {
    let mut command = p.command(args);
    for (key, value) in env {
        command.env(key, value);
    }
    p.finish(&mut command)
}

/// `generate` answering the prompt `password` of artifact `db`.
fn generate_db(p: &Project, password: &str, args: &[&str]) -> Run {
    let mut all = vec!["generate"];
    all.extend(args);
    run_env(
        p,
        &all,
        &[("ARTIFACTS_PROMPT_DB_PASSWORD", OsStr::new(password))],
    )
}

#[track_caller]
fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("failed to read `{}`: {e}", path.display()))
}

/// The generator of `db`: the prompt's answer, a binary file and a public note.
const DB_GENERATOR: &str = r#"cp "$prompts/password" "$out/password"
printf '\000\377binary\n' > "$out/blob"
echo "public note" > "$out/note""#;

const BLOB: &[u8] = b"\0\xffbinary\n";

fn agenix_manifest(host_key: &str, user_keys: &[&str]) -> String {
    format!(
        r#"
[nixos.m1]
config.agenix.publicHostKey = "{host_key}"
config.agenix.publicUserKeys = {user_keys:?}

[nixos.m1.artifacts.db]
backend = "agenix"
generator = "generators/db.sh"
prompts.password = {{ type = "hidden" }}
files.password = {{ owner = "postgres", mode = "0440" }}
files.blob = {{}}
files.note = {{ secret = false }}
"#
    )
}

#[test]
fn agenix_round_trip_recipients_change_and_rekey() {
    let p = Project::new("agenix_round_trip_recipients_change_and_rekey");
    let old = artifacts_keygen(&p, "old.key");
    let new = age_keygen(&p, "new.key");
    p.generator("db.sh", DB_GENERATOR);
    p.manifest(&agenix_manifest(&old.public, &[]));

    p.run(["check"]).code(1).stdout_has("missing");
    generate_db(&p, "s3cret-agenix", &[]).success();
    p.run(["check"]).success();

    let dir = p.root.join("secrets/per-machine/m1/db");
    for file in ["password", "blob"] {
        let armored = read(&dir.join(format!("{file}.age")));
        assert!(
            armored.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"),
            "{file}.age is not armored age"
        );
    }
    assert!(
        !dir.join("note.age").exists(),
        "public files are not the backend's"
    );
    assert_eq!(
        read(&p.root.join("public/per-machine/m1/db/note")),
        b"public note\n"
    );
    assert_eq!(
        fs::read_to_string(dir.join(".recipients")).unwrap(),
        format!("{}\n", old.public)
    );

    // The real age reads what we wrote; show prints the same bytes.
    let password = ok("age -d", age_decrypt(&old.path, &dir.join("password.age")));
    assert_eq!(password, b"s3cret-agenix");
    assert_eq!(
        ok("age -d", age_decrypt(&old.path, &dir.join("blob.age"))),
        BLOB
    );
    assert_eq!(show(&p, "db", "password", &old.path), password);
    assert_eq!(show(&p, "db", "blob", &old.path), BLOB);
    assert_eq!(show(&p, "db", "note", &new.path), b"public note\n");
    assert!(
        !age_decrypt(&new.path, &dir.join("password.age"))
            .status
            .success(),
        "a key that is no recipient decrypted the file"
    );

    // Another key configured: stale, "recipients changed", and not missing.
    let before = read(&dir.join("password.age"));
    p.manifest(&agenix_manifest(&new.public, &[]));
    p.run(["check"])
        .code(1)
        .stdout_has("stale")
        .stdout_has("recipients changed");
    p.run(["rekey", "--dry-run"])
        .success()
        .stdout_has("would re-encrypt nixos/m1 db");
    assert_eq!(read(&dir.join("password.age")), before, "--dry-run wrote");
    // Rekeying needs a key among the old recipients.
    p.run(["rekey"]).code(1).stderr_has("no age identity");
    p.run([OsStr::new("rekey"), OsStr::new("-i"), new.path.as_os_str()])
        .code(1);
    assert_eq!(
        read(&dir.join("password.age")),
        before,
        "a failed rekey wrote"
    );
    p.run([OsStr::new("rekey"), OsStr::new("-i"), old.path.as_os_str()])
        .success()
        .stderr_has("re-encrypted nixos/m1 db");
    p.run(["check"]).success();
    assert_eq!(
        fs::read_to_string(dir.join(".recipients")).unwrap(),
        format!("{}\n", new.public)
    );

    // Same plaintext, now for the new key only.
    assert_eq!(
        ok("age -d", age_decrypt(&new.path, &dir.join("password.age"))),
        b"s3cret-agenix"
    );
    assert_eq!(
        ok("age -d", age_decrypt(&new.path, &dir.join("blob.age"))),
        BLOB
    );
    assert!(
        !age_decrypt(&old.path, &dir.join("password.age"))
            .status
            .success(),
        "the removed key still decrypts the rekeyed file"
    );
    assert_eq!(show(&p, "db", "password", &new.path), b"s3cret-agenix");
}

#[test]
fn agenix_shared_artifact_is_encrypted_to_every_target() {
    let p = Project::new("agenix_shared_artifact_is_encrypted_to_every_target");
    let k1 = artifacts_keygen(&p, "m1.key");
    let k2 = artifacts_keygen(&p, "m2.key");
    let ssh = ssh_keygen(&p, "m3_host");
    let outsider = artifacts_keygen(&p, "outsider.key");
    p.generator("psk.sh", r#"printf 'shared-psk' > "$out/key""#);
    p.manifest(&format!(
        r#"
default.backend = "agenix"
[nixos.m1]
config.agenix.publicHostKey = "{}"
[nixos.m2]
config.agenix.publicHostKey = "{}"
[nixos.m3]
config.agenix.publicHostKey = "{}"

[artifacts.psk]
shared = true
targets = ["m1", "m2", "m3"]
generator = "generators/psk.sh"
files.key = {{}}
"#,
        k1.public, k2.public, ssh.public
    ));
    p.run(["generate"]).success();
    p.run(["check"]).success();

    let file = p.root.join("secrets/shared/psk/key.age");
    for key in [&k1, &k2, &ssh] {
        assert_eq!(
            ok("age -d", age_decrypt(&key.path, &file)),
            b"shared-psk",
            "{} cannot decrypt the shared file",
            key.path.display()
        );
    }
    assert!(!age_decrypt(&outsider.path, &file).status.success());
    assert!(!p.root.join("secrets/per-machine").exists());
    let recipients = fs::read_to_string(p.root.join("secrets/shared/psk/.recipients")).unwrap();
    for key in [&k1, &k2, &ssh] {
        // Recorded without the ssh key's comment.
        let bare: Vec<&str> = key.public.split_whitespace().take(2).collect();
        assert!(recipients.contains(&bare.join(" ")), "{recipients}");
    }
    assert_eq!(recipients.lines().count(), 3, "{recipients}");

    // Dropping a target makes the shared artifact stale (m3 knew the secret).
    p.manifest(
        &fs::read_to_string(p.root.join("artifacts.toml"))
            .unwrap()
            .replace(
                r#"targets = ["m1", "m2", "m3"]"#,
                r#"targets = ["m1", "m2"]"#,
            ),
    );
    p.run(["check"]).code(1).stdout_has("stale    shared psk");
}

#[test]
fn agenix_failed_serialize_keeps_the_stored_secret() {
    let p = project_with_read_only_dirs("agenix_failed_serialize_keeps_the_stored_secret");
    let key = artifacts_keygen(&p, "m1.key");
    p.generator("db.sh", DB_GENERATOR);
    p.manifest(&agenix_manifest(&key.public, &[]));
    generate_db(&p, "first", &[]).success();
    let dir = p.root.join("secrets/per-machine/m1/db");
    let stored = read(&dir.join("password.age"));
    let recipients = read(&dir.join(".recipients"));

    // An invalid recipient: fails before anything is written, naming target and key.
    p.manifest(&agenix_manifest("age1invalid", &[&key.public]));
    let run = run_env(
        &p,
        &["regenerate", "db", "--yes"],
        &[("ARTIFACTS_PROMPT_DB_PASSWORD", OsStr::new("second"))],
    );
    run.code(1)
        .stderr_has("nixos `m1`")
        .stderr_has("artifacts.config.agenix.publicHostKey")
        .stderr_lacks("second");
    assert_eq!(read(&dir.join("password.age")), stored);
    assert_eq!(read(&dir.join(".recipients")), recipients);
    assert_eq!(
        ok("age -d", age_decrypt(&key.path, &dir.join("password.age"))),
        b"first"
    );

    // A read-only artifact directory: the error names it; nothing changed.
    p.manifest(&agenix_manifest(&key.public, &[]));
    let guard = ReadOnlyDir::new(&dir);
    let run = run_env(
        &p,
        &["regenerate", "db", "--yes"],
        &[("ARTIFACTS_PROMPT_DB_PASSWORD", OsStr::new("second"))],
    );
    run.code(1).stderr_has(&dir.display().to_string());
    drop(guard);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".generation", ".recipients", "blob.age", "password.age"]
    );
    assert_eq!(read(&dir.join("password.age")), stored);
    assert_eq!(show(&p, "db", "password", &key.path), b"first");
    p.run(["check"]).success();
}

fn sops_manifest(host_key: &str, user_keys: &[&str]) -> String {
    format!(
        r#"
default.backend = "sops-nix"
[nixos.m1]
config.sops-nix.publicHostKey = "{host_key}"
config.sops-nix.publicUserKeys = {user_keys:?}

[nixos.m1.artifacts.db]
generator = "generators/db.sh"
prompts.password = {{ type = "hidden" }}
files.password = {{ owner = "postgres" }}

[nixos.m1.artifacts.api]
generator = "generators/api.sh"
files.token = {{}}
files.cert = {{ secret = false }}
"#
    )
}

/// The generator of `db` for sops: text only.
const SOPS_DB_GENERATOR: &str = r#"cp "$prompts/password" "$out/password""#;
const API_GENERATOR: &str = r#"printf 'api-token\n' > "$out/token"
echo cert > "$out/cert""#;

/// The line of `file` holding the encrypted value of `key` (`password: ENC[…]`).
fn enc_line(file: &Path, key: &str) -> String {
    let text = fs::read_to_string(file).unwrap();
    text.lines()
        .find(|line| line.trim_start().starts_with(&format!("{key}: ENC[")))
        .unwrap_or_else(|| panic!("no encrypted `{key}` in `{}`:\n{text}", file.display()))
        .to_owned()
}

/// `sops -d --extract PATH FILE` with the given key variable.
fn sops_extract(p: &Project, file: &Path, path: &str, var: &str, key: &Path) -> Vec<u8> {
    ok(
        &format!("sops -d --extract {path} with {var}"),
        sops(
            &p.root,
            &["-d", "--extract", path, file.to_str().unwrap()],
            &[(var, key.as_os_str())],
        ),
    )
}

#[test]
fn sops_nix_round_trip_ssh_host_key_sops_edits_and_rekey() {
    let p = Project::new("sops_nix_round_trip_ssh_host_key_sops_edits_and_rekey");
    let host = ssh_keygen(&p, "ssh_host_ed25519_key");
    let admin = artifacts_keygen(&p, "admin.key");
    let new_admin = age_keygen(&p, "new-admin.key");
    p.generator("db.sh", SOPS_DB_GENERATOR);
    p.generator("api.sh", API_GENERATOR);
    p.manifest(&sops_manifest(&host.public, &[&admin.public]));
    let file = p.root.join("secrets/per-machine/m1.sops.yaml");

    // The first artifact of a file needs no key.
    generate_db(&p, "s3cret-sops", &["db"]).success();
    p.run(["check", "db"]).success();
    p.run(["check", "api"]).code(1).stdout_has("missing");
    let db_line = enc_line(&file, "password");
    assert_eq!(
        sops_extract(
            &p,
            &file,
            r#"["db"]["password"]"#,
            "SOPS_AGE_KEY_FILE",
            &admin.path
        ),
        b"s3cret-sops"
    );
    // The host key is stored in its X25519 form, as sops-nix reads it
    // (tests/e2e/host_keys.rs checks that with ssh-to-age); we convert too.
    assert_eq!(show(&p, "db", "password", &host.path), b"s3cret-sops");

    // A second artifact in the same file: adding needs a key among its
    // recipients, which `generate` finds out before generating anything.
    p.run(["generate", "api"]).code(1).stderr_has(
        "`secrets/per-machine/m1.sops.yaml` exists, and adding to it needs an identity",
    );
    assert_eq!(enc_line(&file, "password"), db_line);
    p.run([
        OsStr::new("generate"),
        OsStr::new("api"),
        OsStr::new("-i"),
        admin.path.as_os_str(),
    ])
    .success();
    p.run(["check"]).success();
    assert_eq!(
        enc_line(&file, "password"),
        db_line,
        "storing api re-encrypted db"
    );
    assert_eq!(
        sops_extract(
            &p,
            &file,
            r#"["db"]["password"]"#,
            "SOPS_AGE_KEY_FILE",
            &admin.path
        ),
        b"s3cret-sops"
    );
    assert_eq!(
        sops_extract(
            &p,
            &file,
            r#"["api"]["token"]"#,
            "SOPS_AGE_KEY_FILE",
            &admin.path
        ),
        b"api-token\n"
    );
    assert!(!fs::read_to_string(&file).unwrap().contains("cert"));
    assert_eq!(show(&p, "api", "cert", &admin.path), b"cert\n");

    // The real sops edits the file: we read its edits and keep its extra keys.
    let key_env = [("SOPS_AGE_KEY_FILE", admin.path.as_os_str())];
    let path = file.to_str().unwrap();
    ok(
        "sops set",
        sops(
            &p.root,
            &["set", path, r#"["api"]["token"]"#, r#""edited by sops""#],
            &key_env,
        ),
    );
    ok(
        "sops set",
        sops(
            &p.root,
            &["set", path, r#"["unrelated"]["note"]"#, r#""keep me""#],
            &key_env,
        ),
    );
    assert_eq!(show(&p, "api", "token", &admin.path), b"edited by sops");
    assert_eq!(show(&p, "db", "password", &host.path), b"s3cret-sops");
    p.run(["check"]).success();

    // Other recipients configured: both artifacts of the file are stale.
    p.manifest(&sops_manifest(&host.public, &[&new_admin.public]));
    let run = p.run(["check"]);
    run.code(1).stdout_has("recipients changed");
    assert_eq!(
        run.stdout.matches("recipients changed").count(),
        2,
        "{}",
        run.stdout
    );
    // The host key stays a recipient, so it can read the file before and after.
    p.run([OsStr::new("rekey"), OsStr::new("-i"), host.path.as_os_str()])
        .success();
    p.run(["check"]).success();
    let new_env = [("SOPS_AGE_KEY_FILE", new_admin.path.as_os_str())];
    let decrypted =
        String::from_utf8(ok("sops -d", sops(&p.root, &["-d", path], &new_env))).unwrap();
    assert!(decrypted.contains("password: s3cret-sops"), "{decrypted}");
    assert!(decrypted.contains("token: edited by sops"), "{decrypted}");
    assert!(decrypted.contains("note: keep me"), "{decrypted}");
    assert!(
        !sops(&p.root, &["-d", path], &key_env).status.success(),
        "the removed key still decrypts the rekeyed file"
    );
    assert_eq!(show(&p, "db", "password", &new_admin.path), b"s3cret-sops");
}

#[test]
fn low_order_host_keys_are_refused_by_both_serializers() {
    // The all-zero X25519 point: the `age` crate panicked encrypting to it.
    let low = "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq5cu47z";
    let p = Project::new("low_order_host_keys_are_refused_by_both_serializers");
    p.generator("db.sh", DB_GENERATOR);
    p.manifest(&agenix_manifest(low, &[]));
    let run = generate_db(&p, "pw", &[]);
    run.code(1)
        .stderr_has("bad input point")
        .stderr_lacks("panicked");
    assert!(!p.root.join("secrets").exists());

    p.generator("db.sh", SOPS_DB_GENERATOR);
    p.generator("api.sh", API_GENERATOR);
    p.manifest(&sops_manifest(low, &[]));
    let run = generate_db(&p, "pw", &[]);
    run.code(1)
        .stderr_has("bad input point")
        .stderr_lacks("panicked");
    assert!(!p.root.join("secrets/per-machine/m1.sops.yaml").exists());
}

#[test]
fn sops_nix_failed_serialize_keeps_the_stored_file() {
    let p = project_with_read_only_dirs("sops_nix_failed_serialize_keeps_the_stored_file");
    let key = age_keygen(&p, "admin.key");
    p.generator("db.sh", SOPS_DB_GENERATOR);
    p.generator("api.sh", API_GENERATOR);
    p.manifest(&sops_manifest(&key.public, &[]));
    generate_db(&p, "first", &["db"]).success();
    let file = p.root.join("secrets/per-machine/m1.sops.yaml");
    let stored = read(&file);
    let key_env = [
        ("ARTIFACTS_PROMPT_DB_PASSWORD", OsStr::new("second")),
        ("SOPS_AGE_KEY_FILE", key.path.as_os_str()),
    ];

    // An invalid recipient names target and key, and writes nothing.
    p.manifest(&sops_manifest("age1invalid", &[&key.public]));
    run_env(&p, &["regenerate", "db", "--yes"], &key_env)
        .code(1)
        .stderr_has("nixos `m1`")
        .stderr_has("artifacts.config.sops-nix.publicHostKey")
        .stderr_lacks("second");
    assert_eq!(read(&file), stored);

    // A read-only secrets directory: the error names it; nothing changed.
    p.manifest(&sops_manifest(&key.public, &[]));
    let dir = file.parent().unwrap();
    let guard = ReadOnlyDir::new(dir);
    run_env(&p, &["regenerate", "db", "--yes"], &key_env)
        .code(1)
        .stderr_has(&dir.display().to_string());
    drop(guard);
    assert_eq!(read(&file), stored);
    let names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["m1.sops.yaml"], "temporary files left behind");
    assert_eq!(
        sops_extract(
            &p,
            &file,
            r#"["db"]["password"]"#,
            "SOPS_AGE_KEY_FILE",
            &key.path
        ),
        b"first"
    );
    assert_eq!(show(&p, "db", "password", &key.path), b"first");

    // A value that is not UTF-8 is refused by name; the file stays.
    p.generator(
        "api.sh",
        r#"printf '\377' > "$out/token"; echo c > "$out/cert""#,
    );
    run_env(&p, &["generate", "api"], &key_env)
        .code(1)
        .stderr_has("file `token` of artifact `api` is not UTF-8 text");
    assert_eq!(read(&file), stored);
    p.run(["check", "db"]).success();
}

#[test]
fn sops_tanka_environment_is_read_by_the_real_sops() {
    let p = Project::new("sops_tanka_environment_is_read_by_the_real_sops");
    let me = artifacts_keygen(&p, "me.key");
    let argocd = age_keygen(&p, "argocd.key");
    p.generator("grafana.sh", r#"printf 'admin-pw\n' > "$out/admin""#);
    p.manifest(&format!(
        r#"
[tanka.default]
config.sops-nix.publicUserKeys = ["{}", "{}"]

[tanka.default.artifacts.grafana]
backend = "sops"
generator = "generators/grafana.sh"
files.admin = {{}}
"#,
        me.public, argocd.public
    ));
    p.run(["check"]).code(1);
    p.run(["generate"]).success();
    p.run(["check"]).success();
    let file = p.root.join("environments/default/secrets.sops.yaml");
    for key in [&me, &argocd] {
        assert_eq!(
            sops_extract(
                &p,
                &file,
                r#"["grafana"]["admin"]"#,
                "SOPS_AGE_KEY_FILE",
                &key.path
            ),
            b"admin-pw\n"
        );
    }
    let plain = String::from_utf8(ok(
        "sops -d",
        sops(
            &p.root,
            &["-d", file.to_str().unwrap()],
            &[("SOPS_AGE_KEY_FILE", argocd.path.as_os_str())],
        ),
    ))
    .unwrap();
    assert!(plain.starts_with("grafana:\n"), "{plain}");
    assert_eq!(show(&p, "grafana", "admin", &me.path), b"admin-pw\n");
    assert!(!p.root.join("secrets").exists());
}

/// The capabilities `artifacts backends --json` reports for `name`, from the
/// entry defined in `defined_in`.
fn capabilities(run: &Run, name: &str, defined_in: &str) -> serde_json::Value {
    run.json()["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name && b["defined_in"] == defined_in)
        .unwrap_or_else(|| run.fail(&format!("no backend {name} defined in {defined_in}")))
        ["capabilities"]
        .clone()
}

#[test]
fn repo_backend_tomls_mirror_the_shipped_backends() {
    let p = Project::new("repo_backend_tomls_mirror_the_shipped_backends");
    let shipped = p.run(["backends", "--json"]);
    shipped.success();
    for name in ["agenix", "sops-nix", "dummy"] {
        let toml = repo().join("backends").join(name).join("backend.toml");
        let copy = p.run([
            OsStr::new("--backends"),
            toml.as_os_str(),
            OsStr::new("backends"),
            OsStr::new("--json"),
        ]);
        copy.success();
        assert_eq!(
            capabilities(&copy, name, toml.to_str().unwrap()),
            capabilities(&shipped, name, "<shipped>"),
            "backends/{name}/backend.toml differs from the shipped {name}"
        );
    }
}

#[test]
fn repo_backend_wrappers_store_and_read_back() {
    let p = Project::new("repo_backend_wrappers_store_and_read_back");
    let key = artifacts_keygen(&p, "k.key");
    p.generator("t.sh", r#"printf 'via-wrapper' > "$out/t""#);
    p.file(
        "backend.toml",
        &format!(
            "include = [{:?}, {:?}, {:?}]\n",
            repo()
                .join("backends/agenix/backend.toml")
                .display()
                .to_string(),
            repo()
                .join("backends/sops-nix/backend.toml")
                .display()
                .to_string(),
            repo()
                .join("backends/dummy/backend.toml")
                .display()
                .to_string(),
        ),
    );
    p.manifest(&format!(
        r#"
[nixos.m1]
config.agenix.publicHostKey = "{0}"
config.sops-nix.publicHostKey = "{0}"
[nixos.m1.artifacts.a]
backend = "agenix"
generator = "generators/t.sh"
files.t = {{}}
[nixos.m1.artifacts.s]
backend = "sops-nix"
generator = "generators/t.sh"
files.t = {{}}
[nixos.m1.artifacts.d]
backend = "dummy"
generator = "generators/t.sh"
files.t = {{}}
"#,
        key.public
    ));
    let backends = p.run(["backends"]);
    backends.success();
    for name in ["agenix", "sops-nix", "dummy"] {
        let line = backends
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| backends.fail(name));
        assert!(
            line.contains("/backends/"),
            "{name} is not the repo's: {line}"
        );
    }
    p.run(["generate"]).success();
    p.run(["check"]).success();
    p.run(["list"])
        .success()
        .stdout_has("dummy     t      ok (not stored by design)");
    assert_eq!(
        ok(
            "age -d",
            age_decrypt(&key.path, &p.root.join("secrets/per-machine/m1/a/t.age"))
        ),
        b"via-wrapper"
    );
    assert_eq!(show(&p, "a", "t", &key.path), b"via-wrapper");
    assert_eq!(show(&p, "s", "t", &key.path), b"via-wrapper");
    assert!(!p.root.join("secrets/per-machine/m1/d").exists());
}

#[test]
fn sops_rekey_with_only_a_removed_key_covers_every_artifact_of_the_file() {
    // Several artifacts share one sops file; the only key at hand is the one
    // being replaced. Rekeying the first artifact re-encrypts the whole file
    // for the new recipients; the others must not then fail to decrypt.
    let p = Project::new("sops_rekey_with_only_a_removed_key_covers_every_artifact_of_the_file");
    let old = artifacts_keygen(&p, "old.key");
    let new = artifacts_keygen(&p, "new.key");
    p.generator("db.sh", SOPS_DB_GENERATOR);
    p.generator("api.sh", API_GENERATOR);
    p.manifest(&sops_manifest(&old.public, &[]));
    run_env(
        &p,
        &["generate"],
        &[
            ("ARTIFACTS_PROMPT_DB_PASSWORD", OsStr::new("pw")),
            ("SOPS_AGE_KEY_FILE", old.path.as_os_str()),
        ],
    )
    .success();
    p.manifest(&sops_manifest(&new.public, &[]));
    p.run(["check"]).code(1).stdout_has("recipients changed");
    p.run([OsStr::new("rekey"), OsStr::new("-i"), old.path.as_os_str()])
        .success();
    p.run(["check"]).success();
    assert_eq!(show(&p, "api", "token", &new.path), b"api-token\n");
}

#[test]
fn plain_example_backend() {
    let p = Project::new("plain_example_backend");
    let example = repo().join("examples/backends/plain/backend.toml");
    p.file(
        "backend.toml",
        &format!("include = [{:?}]\n", example.display().to_string()),
    );
    p.generator(
        "token.sh",
        r#"printf 'plain-%s\n' "${target:-shared}" > "$out/token"; echo pub > "$out/cert""#,
    );
    p.manifest(
        r#"
default.backend = "plain"
[nixos.m1]
[home.alice]
[artifacts.tok]
targets = ["m1", "home/alice"]
generator = "generators/token.sh"
files.token = {}
files.cert = { secret = false, mode = "0444" }
[artifacts.psk]
shared = true
targets = ["m1", "home/alice"]
generator = "generators/token.sh"
files.token = {}
files.cert = { secret = false }
"#,
    );
    p.run(["check"]).code(1).stdout_has("missing");
    p.run(["generate"]).success();
    p.run(["check"]).success();
    let stored = p.root.join("store/per-machine/m1/tok/token");
    assert_eq!(read(&stored), b"plain-m1\n");
    assert!(p.root.join("store/per-user/alice/tok/token").is_file());
    assert!(p.root.join("store/shared/psk/token").is_file());
    // show goes through the example's deserialize.
    let shown = stdout_bytes(
        &p,
        &[
            OsStr::new("show"),
            OsStr::new("tok"),
            OsStr::new("--target"),
            OsStr::new("m1"),
            OsStr::new("--file"),
            OsStr::new("token"),
        ],
        &[],
    );
    assert_eq!(shown, b"plain-m1\n");
    // Losing a stored file makes it missing again.
    fs::remove_file(&stored).unwrap();
    p.run(["check"]).code(1).stdout_has("missing");
    p.run([
        OsStr::new("show"),
        OsStr::new("tok"),
        OsStr::new("--target"),
        OsStr::new("m1"),
        OsStr::new("--file"),
        OsStr::new("token"),
    ])
    .code(1);
}

/// `artifacts __backend NAME SCRIPT`, as the wrapper scripts run it: the
/// contract's environment in, the contract's exit codes and messages out
/// (check 0/1/3/2, writable 0/1, list on stdout), for the same code the
/// engine calls in-process.
#[test]
fn backend_entry_point_speaks_the_script_contract() {
    let p = Project::new("backend_entry_point_speaks_the_script_contract");
    let key = artifacts_keygen(&p, "k.key");
    let other = artifacts_keygen(&p, "other.key");
    let targets = |recipient: &str| {
        p.file(
            &format!("contract/targets-{}.json", &recipient[..12]),
            &format!(
                r#"{{"context": "nixos", "targets": [{{"name": "m1", "type": "nixos", "config": {{"publicHostKey": "{recipient}"}}}}]}}"#
            ),
        )
    };
    p.file("contract/inputs/token", r#"{"secret": true}"#);
    p.file("contract/out/token", "from-the-entry-point");
    let mine = targets(&key.public);
    let theirs = targets(&other.public);
    let backend = |name: &str, script: &str, targets: &Path, identity: &Path| {
        let mut command = p.command(["__backend", name, script]);
        command
            .env("artifact", "api")
            .env("artifact_context", "nixos")
            .env("targets", targets)
            .env("inputs", p.root.join("contract/inputs"))
            .env("out", p.root.join("contract/out"))
            .env("ARTIFACTS_IDENTITY", identity);
        p.finish(&mut command)
    };

    p.run(["__backend", "agenix", "check"])
        .code(2)
        .stderr_has("agenix check: $artifact_context is not set");
    backend("agenix", "frobnicate", &mine, &key.path)
        .code(1)
        .stderr_has("no shipped backend script `agenix frobnicate`");
    for name in ["agenix", "sops-nix"] {
        backend(name, "check", &mine, &key.path).code(1);
        backend(name, "serialize", &mine, &key.path).success();
        backend(name, "check", &mine, &key.path).success();
        backend(name, "list", &mine, &key.path)
            .success()
            .stdout_has("api\n");
        backend(name, "check", &theirs, &key.path)
            .code(3)
            .stderr_has("is encrypted to other recipients than configured");
    }
    // Adding to the SOPS file needs one of its recipients' identities.
    backend("sops-nix", "writable", &mine, &other.path)
        .code(1)
        .stderr_has("secrets/per-machine/m1.sops.yaml` exists")
        .stderr_has(&key.public);
    backend("sops-nix", "writable", &mine, &key.path).success();
    backend("sops-nix", "serialize", &mine, &other.path)
        .code(1)
        .stderr_has("sops-nix serialize: ")
        .stderr_has("hint: ")
        .stderr_lacks("from-the-entry-point");
    // A damaged store: check fails with 2, never "missing" (1).
    fs::write(p.root.join("secrets/per-machine/m1/api/token.age"), "").unwrap();
    backend("agenix", "check", &mine, &key.path)
        .code(2)
        .stderr_has("token.age` is not a valid age file");
}

/// `artifacts __backend NAME SCRIPT` is answered before the command line
/// tree is built: the environment the full command line reacts to (here
/// clap's completion request, `COMPLETE`) does not reach it, and it answers
/// the contract.
#[test]
fn backend_entry_point_is_answered_before_the_command_line_tree() {
    let p = Project::new("backend_entry_point_is_answered_before_the_command_line_tree");
    let key = artifacts_keygen(&p, "k.key");
    let targets = p.file(
        "contract/targets.json",
        &format!(
            r#"{{"context": "nixos", "targets": [{{"name": "m1", "type": "nixos", "config": {{"publicHostKey": "{}"}}}}]}}"#,
            key.public
        ),
    );
    p.file("contract/inputs/token", r#"{"secret": true}"#);
    let mut command = p.command(["__backend", "agenix", "check"]);
    command
        .env("COMPLETE", "bash")
        .env("artifact", "api")
        .env("artifact_context", "nixos")
        .env("targets", &targets)
        .env("inputs", p.root.join("contract/inputs"));
    // Through the full command line this would print completions and exit 0.
    p.finish(&mut command).code(1).stdout_lacks("__backend");
}

/// `$targets` must fit `$artifact_context`: outside the shared context it
/// names exactly one target, of that context's kind (the engine never sends
/// anything else; a wrapper run by hand could).
#[test]
fn backend_entry_point_refuses_targets_that_do_not_fit_the_context() {
    let p = Project::new("backend_entry_point_refuses_targets_that_do_not_fit_the_context");
    let key = artifacts_keygen(&p, "k.key");
    let target = |name: &str, kind: &str| {
        format!(
            r#"{{"name": "{name}", "type": "{kind}", "config": {{"publicHostKey": "{}"}}}}"#,
            key.public
        )
    };
    let two = p.file(
        "contract/two.json",
        &format!(
            r#"{{"context": "nixos", "targets": [{}, {}]}}"#,
            target("m1", "nixos"),
            target("m2", "nixos")
        ),
    );
    let user = p.file(
        "contract/user.json",
        &format!(
            r#"{{"context": "nixos", "targets": [{}]}}"#,
            target("alice", "home")
        ),
    );
    p.file("contract/inputs/token", r#"{"secret": true}"#);
    let check = |targets: &Path| {
        let mut command = p.command(["__backend", "agenix", "check"]);
        command
            .env("artifact", "api")
            .env("artifact_context", "nixos")
            .env("targets", targets)
            .env("inputs", p.root.join("contract/inputs"))
            .env("ARTIFACTS_IDENTITY", &key.path);
        p.finish(&mut command)
    };
    check(&two)
        .code(2)
        .stderr_has("two.json` is not valid: the nixos context needs exactly one target, not 2");
    check(&user)
        .code(2)
        .stderr_has("target `alice` is of type `homemanager`, not one of the nixos context");
}

/// `rekey` re-encrypts targets side by side (`--jobs 2`): every artifact of
/// every machine, in both shipped stores, ends up readable with the new key
/// only, and the one key at hand (the old one) is enough for all of them,
/// though each machine's SOPS file is re-encrypted by its first artifact
/// (so 8 agenix artifacts and 4 SOPS files are re-encrypted).
#[test]
fn rekey_of_many_machines_in_parallel_covers_every_artifact() {
    let p = Project::new("rekey_of_many_machines_in_parallel_covers_every_artifact");
    let old = artifacts_keygen(&p, "old.key");
    let new = artifacts_keygen(&p, "new.key");
    p.generator("api.sh", API_GENERATOR);
    let manifest = |key: &str| {
        let mut text = String::new();
        for m in 1..=4 {
            text.push_str(&format!(
                "[nixos.m{m}]\nconfig.agenix.publicHostKey = \"{key}\"\nconfig.sops-nix.publicHostKey = \"{key}\"\n"
            ));
        }
        for (name, backend) in [
            ("a1", "agenix"),
            ("a2", "agenix"),
            ("s1", "sops-nix"),
            ("s2", "sops-nix"),
        ] {
            text.push_str(&format!(
                "[artifacts.{name}]\ntargets = [\"m1\", \"m2\", \"m3\", \"m4\"]\nbackend = \"{backend}\"\ngenerator = \"generators/api.sh\"\nfiles.token = {{}}\nfiles.cert = {{ secret = false }}\n"
            ));
        }
        text
    };
    p.manifest(&manifest(&old.public));
    run_env(
        &p,
        &["generate"],
        &[("ARTIFACTS_IDENTITY", old.path.as_os_str())],
    )
    .success();
    p.manifest(&manifest(&new.public));
    p.run(["check"]).code(1).stdout_has("recipients changed");
    p.run([
        OsStr::new("rekey"),
        OsStr::new("--jobs"),
        OsStr::new("2"),
        OsStr::new("-i"),
        old.path.as_os_str(),
    ])
    .success()
    .stderr_has("re-encrypted 12 artifact(s)");
    p.run(["check"]).success();
    for m in 1..=4 {
        for artifact in ["a1", "a2", "s1", "s2"] {
            let run = p.run([
                OsStr::new("show"),
                OsStr::new(artifact),
                OsStr::new("--target"),
                OsStr::new(&format!("m{m}")),
                OsStr::new("--file"),
                OsStr::new("token"),
                OsStr::new("-i"),
                new.path.as_os_str(),
            ]);
            run.success().stdout_has("api-token");
        }
    }
}
