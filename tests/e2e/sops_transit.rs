//! SOPS files whose data key is wrapped by Vault/OpenBao transit
//! (`hc_vault`), against a real OpenBao dev server with the transit engine
//! (started per test, killed after) and the real sops 3.11 (`VAULT_ADDR`,
//! `VAULT_TOKEN`): interop both ways, mixed age + transit, the MAC, the
//! failures an operator meets (wrong token, missing policy, sealed,
//! unreachable), and tanka rendering from such a file.

use std::ffi::OsStr;

use artifacts_testkit::BaoServer;

use crate::tools::sops;
use crate::util::{Project, Run};

/// A dev server with `transit/` enabled and the key `sops` created.
fn transit_server() -> (BaoServer, String) {
    let server = BaoServer::dev();
    server.bao(&["secrets", "enable", "transit"], None);
    server.bao(&["write", "-f", "transit/keys/sops"], None);
    let uri = format!("{}/v1/transit/keys/sops", server.address);
    (server, uri)
}

/// An age key pair made by our own `age keygen`: (key file, recipient).
fn age_key(p: &Project, name: &str) -> (std::path::PathBuf, String) {
    let key = p.home.join(name);
    p.run(["age", "keygen", "-o", key.to_str().unwrap()])
        .success();
    let recipient = std::fs::read_to_string(&key)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .unwrap();
    (key, recipient)
}

/// `artifacts ARGS` in `p` with `env` added to the scrubbed environment.
fn ours(p: &Project, args: &[&str], env: &[(&str, &OsStr)]) -> Run {
    let mut command = p.command(args);
    command.envs(env.iter().copied());
    p.finish(&mut command)
}

/// The real sops in `p`'s root; its stdout, or a panic with its stderr.
#[track_caller]
fn real_sops_ok(p: &Project, args: &[&str], env: &[(&str, &OsStr)]) -> String {
    let out = sops(&p.root, args, env);
    assert!(
        out.status.success(),
        "sops {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn vault_env(server: &BaoServer) -> [(&'static str, &OsStr); 2] {
    [
        ("VAULT_ADDR", OsStr::new(&server.address)),
        ("VAULT_TOKEN", OsStr::new(&server.root_token)),
    ]
}

const PLAIN: [(&str, &str, &str); 4] = [
    (
        "yaml",
        "p.yaml",
        "db:\n    password: hunter2-yaml\n    port: 5432\nlist:\n    - a\n    - true\n",
    ),
    (
        "json",
        "p.json",
        "{\n\t\"db\": {\n\t\t\"password\": \"hunter2-json\"\n\t},\n\t\"n\": 1.5\n}\n",
    ),
    ("dotenv", "p.env", "PASSWORD=hunter2-env\nUSER=app\n"),
    ("binary", "p.bin", "hunter2-binary\n"),
];

#[test]
fn sops_transit_files_of_the_real_sops_decrypt_with_ours_and_ours_with_it() {
    let (server, uri) = transit_server();
    let p = Project::new("sops_transit_interop");
    let env = vault_env(&server);
    // Ours gets the token only through BAO_TOKEN, and no age key at all.
    let token = [("BAO_TOKEN", OsStr::new(&server.root_token))];
    for (kind, name, plain) in PLAIN {
        p.file(name, plain);
        // real sops -> ours
        let theirs = real_sops_ok(
            &p,
            &[
                "encrypt",
                "--hc-vault-transit",
                &uri,
                "--input-type",
                kind,
                "--output-type",
                kind,
                name,
            ],
            &env,
        );
        let theirs_path = p.file(&format!("theirs.{name}"), &theirs);
        let run = ours(
            &p,
            &[
                "sops",
                "decrypt",
                "--input-type",
                kind,
                theirs_path.to_str().unwrap(),
            ],
            &token,
        );
        run.success();
        assert_eq!(
            run.stdout, plain,
            "{kind}: ours decrypting the real sops' file"
        );

        // ours -> real sops
        let run = ours(
            &p,
            &[
                "sops",
                "encrypt",
                "--hc-vault-transit",
                &uri,
                "--input-type",
                kind,
                name,
            ],
            &token,
        );
        run.success();
        assert!(!run.stdout.contains("hunter2"), "{kind}: {}", run.stdout);
        let ours_path = p.file(&format!("ours.{name}"), &run.stdout);
        let back = real_sops_ok(
            &p,
            &[
                "decrypt",
                "--input-type",
                kind,
                "--output-type",
                kind,
                ours_path.to_str().unwrap(),
            ],
            &env,
        );
        assert_eq!(back, plain, "{kind}: the real sops decrypting our file");
    }
    // Our metadata block is laid out as sops lays it out: same keys, same order.
    let field_order = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim_start)
            .map(|l| l.trim_start_matches("- "))
            .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_owned()))
            .filter(|k| {
                [
                    "vault_address",
                    "engine_path",
                    "key_name",
                    "created_at",
                    "enc",
                ]
                .contains(&k.as_str())
            })
            .collect()
    };
    let ours_yaml = std::fs::read_to_string(p.root.join("ours.p.yaml")).unwrap();
    let theirs_yaml = std::fs::read_to_string(p.root.join("theirs.p.yaml")).unwrap();
    assert_eq!(field_order(&ours_yaml), field_order(&theirs_yaml));
    assert!(
        ours_yaml.contains(&format!("vault_address: {}", server.address)),
        "{ours_yaml}"
    );
    assert!(ours_yaml.contains("engine_path: transit\n"), "{ours_yaml}");
    assert!(ours_yaml.contains("key_name: sops\n"), "{ours_yaml}");
    assert!(ours_yaml.contains("enc: vault:v1:"), "{ours_yaml}");
}

#[test]
fn sops_yaml_rule_with_age_and_transit_lets_each_key_decrypt_alone() {
    let (server, uri) = transit_server();
    let p = Project::new("sops_transit_mixed");
    let (key, recipient) = age_key(&p, "age.txt");
    p.file(
        ".sops.yaml",
        &format!(
            "creation_rules:\n  - path_regex: \\.yaml$\n    age: {recipient}\n    hc_vault_transit_uri: {uri}\n"
        ),
    );
    p.file("s.yaml", "api: hunter2-mixed\n");
    let token = [("BAO_TOKEN", OsStr::new(&server.root_token))];
    let age_only = [("SOPS_AGE_KEY_FILE", key.as_os_str())];
    // Encrypted from the rule alone (no key flags), as sops would.
    let run = ours(&p, &["sops", "encrypt", "-i", "s.yaml"], &token);
    run.success();
    let ours_text = std::fs::read_to_string(p.root.join("s.yaml")).unwrap();
    assert!(
        ours_text.contains("hc_vault:") && ours_text.contains(&recipient),
        "{ours_text}"
    );

    // The real sops wraps for both too; every file opens with either key alone.
    p.file("t.yaml", "api: hunter2-mixed\n");
    real_sops_ok(&p, &["encrypt", "-i", "t.yaml"], &vault_env(&server));
    for file in ["s.yaml", "t.yaml"] {
        for (what, env) in [("age only", &age_only[..]), ("token only", &token[..])] {
            let run = ours(&p, &["sops", "decrypt", file], env);
            run.success();
            assert_eq!(run.stdout, "api: hunter2-mixed\n", "{file} with {what}");
        }
        // Neither: the message lists both kinds of key.
        let run = ours(&p, &["sops", "decrypt", file], &[]);
        run.code(1)
            .stderr_has("no vault token")
            .stderr_has(&server.address);
        // The real sops with the age key only (no token) reads ours as well.
        let out = sops(
            &p.root,
            &["decrypt", file],
            &[("SOPS_AGE_KEY_FILE", key.as_os_str())],
        );
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn sops_transit_file_with_a_removed_value_fails_its_mac() {
    let (server, uri) = transit_server();
    let p = Project::new("sops_transit_mac");
    p.file("p.yaml", "a: one\nb: two\n");
    let theirs = real_sops_ok(
        &p,
        &["encrypt", "--hc-vault-transit", &uri, "p.yaml"],
        &vault_env(&server),
    );
    // Dropping a value keeps every remaining value decryptable: only the MAC
    // notices.
    let tampered: String = theirs
        .lines()
        .filter(|l| !l.starts_with("b: "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(tampered, theirs);
    p.file("t.yaml", &tampered);
    let token = [("BAO_TOKEN", OsStr::new(&server.root_token))];
    ours(&p, &["sops", "decrypt", "t.yaml"], &token)
        .code(1)
        .stderr_has("MAC mismatch in `t.yaml`")
        .stdout_lacks("one");
}

#[test]
fn sops_transit_failures_name_the_key_and_never_the_token() {
    let (mut server, uri) = transit_server();
    let p = Project::new("sops_transit_failures");
    p.file("p.yaml", "a: hunter2-fail\n");
    p.file(
        "e.yaml",
        &real_sops_ok(
            &p,
            &["encrypt", "--hc-vault-transit", &uri, "p.yaml"],
            &vault_env(&server),
        ),
    );

    // A wrong token: refused, named as such, and its value nowhere.
    let wrong = "s.WrongTokenValue123";
    let run = ours(
        &p,
        &["sops", "decrypt", "e.yaml"],
        &[("VAULT_TOKEN", OsStr::new(wrong))],
    );
    run.code(1)
        .stderr_has(&format!("vault transit key `{uri}`"))
        .stderr_has("token is invalid or expired")
        .stderr_lacks(wrong)
        .stdout_lacks("hunter2");

    // A valid token whose policy may encrypt but not decrypt: 403 on the
    // decrypt path, named.
    server.bao(
        &["policy", "write", "encrypt-only", "-"],
        Some(b"path \"transit/encrypt/sops\" { capabilities = [\"update\"] }\n"),
    );
    let created: serde_json::Value = serde_json::from_slice(&server.bao(
        &["token", "create", "-policy=encrypt-only", "-format=json"],
        None,
    ))
    .unwrap();
    let limited = created["auth"]["client_token"].as_str().unwrap().to_owned();
    // ~/.vault-token is read as `bao login` leaves it.
    std::fs::write(p.home.join(".vault-token"), format!("{limited}\n")).unwrap();
    let run = ours(&p, &["sops", "decrypt", "e.yaml"], &[]);
    run.code(1)
        .stderr_has("permission denied on `transit/decrypt/sops`")
        .stderr_lacks(&limited);
    // The same token may encrypt a new file.
    ours(
        &p,
        &["sops", "encrypt", "--hc-vault-transit", &uri, "p.yaml"],
        &[],
    )
    .success();

    // Sealed, then gone.
    server.bao(&["operator", "seal"], None);
    let root = server.root_token.clone();
    let token = [("BAO_TOKEN", OsStr::new(&root))];
    ours(&p, &["sops", "decrypt", "e.yaml"], &token)
        .code(1)
        .stderr_has("is sealed")
        .stderr_lacks(&root);
    server.kill();
    ours(&p, &["sops", "decrypt", "e.yaml"], &token)
        .code(1)
        .stderr_has("is unreachable")
        .stderr_has(&format!("vault transit key `{uri}`"));
}

#[test]
fn tanka_secrets_and_cmp_generate_read_a_transit_secrets_file() {
    let (server, uri) = transit_server();
    let p = Project::new("sops_transit_tanka");
    p.file("jsonnetfile.json", "{}\n");
    p.file(
        "environments/default/main.jsonnet",
        "function(secrets_yaml) {\n  cm: {\n    apiVersion: 'v1',\n    kind: 'ConfigMap',\n    metadata: { name: 'app' },\n    data: { password: std.parseYaml(secrets_yaml).db.password },\n  },\n}\n",
    );
    // A static environment: tanka tells them from inline ones by spec.json.
    p.file(
        "environments/default/spec.json",
        "{\"apiVersion\": \"tanka.dev/v1alpha1\", \"kind\": \"Environment\", \"spec\": {\"namespace\": \"default\"}}\n",
    );
    p.file(
        "environments/default/plain.yaml",
        "db:\n    password: hunter2-tanka\n",
    );
    let encrypted = real_sops_ok(
        &p,
        &[
            "encrypt",
            "--hc-vault-transit",
            &uri,
            "environments/default/plain.yaml",
        ],
        &vault_env(&server),
    );
    std::fs::remove_file(p.root.join("environments/default/plain.yaml")).unwrap();
    p.file("environments/default/secrets.sops.yaml", &encrypted);
    let token = [("BAO_TOKEN", OsStr::new(&server.root_token))];

    let run = ours(&p, &["tanka", "secrets", "default"], &token);
    run.success();
    assert_eq!(run.stdout, "db:\n    password: hunter2-tanka\n");

    // The ArgoCD sidecar's entry point: a token, no age key.
    let run = ours(
        &p,
        &["cmp", "generate"],
        &[token[0], ("ARGOCD_ENV_TK_ENV", OsStr::new("default"))],
    );
    run.success()
        .stdout_has("kind: ConfigMap")
        .stdout_has("hunter2-tanka");
    // Without a token it fails and says what is missing.
    ours(
        &p,
        &["cmp", "generate"],
        &[("ARGOCD_ENV_TK_ENV", OsStr::new("default"))],
    )
    .code(1)
    .stderr_has("no vault token")
    .stdout_lacks("hunter2");
}

#[test]
fn sops_backend_wraps_for_the_transit_keys_sops_yaml_asks_for() {
    let (server, uri) = transit_server();
    let p = Project::new("sops_transit_backend");
    let (key, recipient) = age_key(&p, "admin.txt");
    p.file(
        ".sops.yaml",
        &format!(
            "creation_rules:\n  - path_regex: ^environments/\n    hc_vault_transit_uri: {uri}\n"
        ),
    );
    p.generator("pw.sh", r#"echo "hunter2-backend" > "$out/password""#);
    p.manifest(&format!(
        "[tanka.default]\nconfig.sops-nix.publicUserKeys = [\"{recipient}\"]\n[tanka.default.artifacts.db]\nbackend = \"sops\"\ngenerator = \"generators/pw.sh\"\nfiles.password = {{}}\n"
    ));
    p.file("jsonnetfile.json", "{}\n");
    p.file(
        "environments/default/main.jsonnet",
        "function(secrets_yaml) {}\n",
    );
    let token = [("BAO_TOKEN", OsStr::new(&server.root_token))];
    let age_only = [("SOPS_AGE_KEY_FILE", key.as_os_str())];
    ours(&p, &["generate"], &token).success();
    let file = p.root.join("environments/default/secrets.sops.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("hc_vault:") && text.contains(&recipient),
        "{text}"
    );

    // Either key alone reads it: ours with a token or the age key, the real
    // sops with a token only.
    for env in [&token[..], &age_only[..]] {
        let run = ours(&p, &["tanka", "secrets", "default"], env);
        run.success().stdout_has("hunter2-backend");
    }
    let plain = real_sops_ok(
        &p,
        &["decrypt", file.to_str().unwrap()],
        &vault_env(&server),
    );
    assert!(plain.contains("hunter2-backend"), "{plain}");
    ours(&p, &["check"], &token).success();

    // The rule drops transit: check sees other keys, rekey re-wraps with
    // the age key (no token needed), and the file no longer names the transit key.
    p.file(
        ".sops.yaml",
        "creation_rules:\n  - path_regex: ^nothing-here/\n    hc_vault_transit_uri: http://127.0.0.1:1/v1/transit/keys/none\n",
    );
    ours(&p, &["check"], &age_only)
        .code(1)
        .stdout_has("recipients changed");
    ours(&p, &["rekey"], &age_only).success();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("hc_vault"), "{text}");
    ours(&p, &["check"], &age_only).success();
}

#[test]
fn sops_updatekeys_adds_a_transit_key_and_rotate_keeps_it() {
    let (server, uri) = transit_server();
    let p = Project::new("sops_transit_updatekeys");
    let (key, recipient) = age_key(&p, "age.txt");
    p.file("s.yaml", "api: hunter2-update\n");
    let age_only = [("SOPS_AGE_KEY_FILE", key.as_os_str())];
    let token = [("BAO_TOKEN", OsStr::new(&server.root_token))];
    ours(
        &p,
        &["sops", "encrypt", "-i", "--age", &recipient, "s.yaml"],
        &[],
    )
    .success();
    ours(&p, &["sops", "decrypt", "s.yaml"], &token)
        .code(1)
        .stderr_has("no age identity available");

    // The rule now adds a transit key: updatekeys wraps the same data key for it.
    p.file(
        ".sops.yaml",
        &format!("creation_rules:\n  - age: {recipient}\n    hc_vault_transit_uri: {uri}\n"),
    );
    let both = [age_only[0], token[0]];
    ours(&p, &["sops", "updatekeys", "-y", "s.yaml"], &both)
        .success()
        .stderr_has(&format!("added {uri}"));
    ours(&p, &["sops", "decrypt", "s.yaml"], &token)
        .success()
        .stdout_has("hunter2-update");

    // rotate: a new data key, wrapped again for both; the real sops reads it
    // with the token alone.
    ours(&p, &["sops", "rotate", "-i", "s.yaml"], &both).success();
    let plain = real_sops_ok(&p, &["decrypt", "s.yaml"], &vault_env(&server));
    assert_eq!(plain, "api: hunter2-update\n");
    ours(&p, &["sops", "decrypt", "s.yaml"], &age_only)
        .success()
        .stdout_has("hunter2-update");

    // rotate --rm-hc-vault-transit drops it (the token no longer opens the
    // file), --add-hc-vault-transit brings it back.
    ours(
        &p,
        &[
            "sops",
            "rotate",
            "-i",
            "--rm-hc-vault-transit",
            &uri,
            "s.yaml",
        ],
        &both,
    )
    .success();
    assert!(
        !std::fs::read_to_string(p.root.join("s.yaml"))
            .unwrap()
            .contains("hc_vault")
    );
    ours(&p, &["sops", "decrypt", "s.yaml"], &token).code(1);
    ours(
        &p,
        &[
            "sops",
            "rotate",
            "-i",
            "--add-hc-vault-transit",
            &uri,
            "s.yaml",
        ],
        &both,
    )
    .success();
    ours(&p, &["sops", "decrypt", "s.yaml"], &token)
        .success()
        .stdout_has("hunter2-update");
}

#[test]
fn sops_backend_without_identity_or_token_says_which_keys_would_do() {
    let (server, uri) = transit_server();
    let p = Project::new("sops_transit_writable");
    let (_, recipient) = age_key(&p, "admin.txt");
    p.file(
        ".sops.yaml",
        &format!("creation_rules:\n  - hc_vault_transit_uri: {uri}\n"),
    );
    p.generator("pw.sh", r#"echo "hunter2-writable" > "$out/password""#);
    p.file("jsonnetfile.json", "{}\n");
    p.file(
        "environments/default/main.jsonnet",
        "function(secrets_yaml) {}\n",
    );
    let manifest = |artifacts: &[&str]| {
        let mut text =
            format!("[tanka.default]\nconfig.sops-nix.publicUserKeys = [\"{recipient}\"]\n");
        for a in artifacts {
            text.push_str(&format!(
                "[tanka.default.artifacts.{a}]\nbackend = \"sops\"\ngenerator = \"generators/pw.sh\"\nfiles.password = {{}}\n"
            ));
        }
        text
    };
    p.manifest(&manifest(&["db"]));
    let token = [("BAO_TOKEN", OsStr::new(&server.root_token))];
    ours(&p, &["generate"], &token).success();
    // Adding a second artifact needs the data key: neither an age identity
    // nor a token is at hand, and the message names both kinds of key.
    p.manifest(&manifest(&["db", "api"]));
    ours(&p, &["generate"], &[])
        .code(1)
        .stderr_has("needs an identity of one of its recipients or access to its transit key")
        .stderr_has(&recipient)
        .stderr_has(&uri)
        .stderr_has("no vault token");
    // The token alone is enough.
    ours(&p, &["generate"], &token).success();
    ours(&p, &["tanka", "secrets", "default"], &token)
        .success()
        .stdout_has("api:");
}
