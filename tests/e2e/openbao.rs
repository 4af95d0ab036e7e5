//! The `openbao` backend against a real OpenBao dev server (started per
//! test by the testkit, killed after): the whole lifecycle for every kind of
//! target, migration to and from the file backends, and faults.

use std::ffi::OsStr;

use artifacts_testkit::BaoServer;

use crate::util::{Project, Run};

/// `artifacts ARGS` in `p` with the root token in `BAO_TOKEN`.
fn run<const N: usize>(p: &Project, server: &BaoServer, args: [&str; N]) -> Run {
    let mut command = p.command(args);
    command.env("BAO_TOKEN", &server.root_token);
    p.finish(&mut command)
}

/// `bao kv get -field=FILE [-version=N] secret/artifacts/PATH` with the real CLI.
fn kv_field(server: &BaoServer, path: &str, file: &str, version: Option<u32>) -> String {
    let mut args = vec!["kv".to_owned(), "get".to_owned(), format!("-field={file}")];
    if let Some(version) = version {
        args.push(format!("-version={version}"));
    }
    args.push(format!("secret/artifacts/{path}"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    String::from_utf8(server.bao(&args, None)).unwrap()
}

/// The paths of the audited requests with `operation` (e.g. `list`).
fn audited(server: &BaoServer, operation: &str) -> Vec<String> {
    let log = std::fs::read_to_string(server.audit_log()).unwrap();
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["type"] == "request" && entry["request"]["operation"] == operation)
        .filter_map(|entry| entry["request"]["path"].as_str().map(str::to_owned))
        .collect()
}

fn manifest(address: &str, with_db: bool) -> String {
    let config = format!("config.openbao.address = \"{address}\"");
    let mut text = format!(
        r#"
default.backend = "openbao"
[nixos.m1]
{config}
[nixos.m2]
{config}
[home.alice]
{config}
[tanka.prod]
config.vault.address = "{address}"

[artifacts.api]
targets = ["nixos/m1"]
generator = "generators/token.sh"
files.token = {{}}
files.id = {{ secret = false }}
[artifacts.tls]
targets = ["nixos/m1"]
generator = "generators/token.sh"
files.token = {{}}
files.id = {{}}
[artifacts.ssh]
targets = ["home/alice"]
generator = "generators/token.sh"
files.token = {{}}
[artifacts.ca]
shared = true
targets = ["nixos/m1", "nixos/m2"]
generator = "generators/token.sh"
files.token = {{}}
"#
    );
    if with_db {
        text.push_str(
            r#"[artifacts.db]
targets = ["tanka/prod"]
backend = "vault"
generator = "generators/token.sh"
files.token = {}
"#,
        );
    }
    text
}

fn token_generator(p: &Project) {
    p.generator(
        "token.sh",
        r#"head -c 24 /dev/urandom | base64 > "$out/token"
case "$artifact" in api|tls) echo "pub $artifact" > "$out/id" ;; esac"#,
    );
}

#[test]
fn openbao_lifecycle_for_machines_users_shared_and_tanka() {
    let server = BaoServer::dev_audited();
    let audit = server.audit_log();
    let p = Project::new("openbao_lifecycle");
    token_generator(&p);
    p.manifest(&manifest(&server.address, true));

    run(&p, &server, ["generate"])
        .success()
        .stderr_has("generated 5 artifact(s)");
    // Stored where the layout says, one entry per artifact, files as keys.
    let api = kv_field(&server, "per-machine/m1/api", "token", None);
    assert_eq!(api.trim().len(), 32, "{api:?}");
    kv_field(&server, "per-machine/m1/tls", "id", None);
    kv_field(&server, "per-user/alice/ssh", "token", None);
    kv_field(&server, "shared/ca", "token", None);
    kv_field(&server, "tanka/prod/db", "token", None);
    // The public file stays in the repository, not on the server.
    assert!(p.root.join("public/per-machine/m1/api/id").exists());
    let metadata: serde_json::Value = serde_json::from_slice(&server.bao(
        &[
            "kv",
            "metadata",
            "get",
            "-format=json",
            "secret/artifacts/per-machine/m1/tls",
        ],
        None,
    ))
    .unwrap();
    let custom = &metadata["data"]["custom_metadata"];
    assert_eq!(custom["artifacts-files"], "id,token", "{metadata}");
    assert_eq!(custom["artifacts-version"], "1", "{metadata}");
    assert!(
        custom["artifacts-generated-at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    // check: one LIST per directory, whatever the number of artifacts in it.
    std::fs::write(&audit, "").unwrap();
    run(&p, &server, ["check"]).success();
    let mut lists = audited(&server, "list");
    lists.sort();
    assert_eq!(
        lists,
        [
            "secret/detailed-metadata/artifacts/per-machine/m1/",
            "secret/detailed-metadata/artifacts/per-user/alice/",
            "secret/detailed-metadata/artifacts/shared/",
            "secret/detailed-metadata/artifacts/tanka/prod/",
        ]
    );
    assert!(
        audited(&server, "read")
            .iter()
            .all(|path| !path.contains("/data/")),
        "check read secret data: {:?}",
        audited(&server, "read")
    );

    let shown = run(
        &p,
        &server,
        ["show", "api", "--target", "m1", "--file", "token"],
    )
    .success()
    .stdout
    .clone();
    assert_eq!(shown, api);

    // Regenerating writes version 2; version 1 stays readable.
    run(&p, &server, ["regenerate", "api", "--yes"]).success();
    let new = kv_field(&server, "per-machine/m1/api", "token", None);
    assert_ne!(new, api);
    assert_eq!(
        kv_field(&server, "per-machine/m1/api", "token", Some(1)),
        api
    );
    let old = run(
        &p,
        &server,
        [
            "show",
            "api",
            "--target",
            "m1",
            "--file",
            "token",
            "--version",
            "1",
        ],
    )
    .success()
    .stdout
    .clone();
    assert_eq!(old, api);
    run(
        &p,
        &server,
        [
            "show",
            "api",
            "--target",
            "m1",
            "--file",
            "token",
            "--version",
            "9",
        ],
    )
    .code(1)
    .stderr_has("has no version 9");
    run(&p, &server, ["check"]).success();

    // gc: stop declaring the tanka artifact; its entry goes, every version.
    p.manifest(&manifest(&server.address, false));
    let listed = run(&p, &server, ["gc", "--dry-run"])
        .success()
        .stdout
        .clone();
    assert_eq!(listed.trim(), "orphan openbao tanka/prod db");
    run(&p, &server, ["gc", "--yes"]).success();
    let gone = artifacts_testkit::run(
        &artifacts_testkit::bao_bin(),
        &["kv", "metadata", "get", "secret/artifacts/tanka/prod/db"].map(OsStr::new),
        &[
            ("VAULT_ADDR", OsStr::new(&server.address)),
            ("VAULT_TOKEN", OsStr::new(&server.root_token)),
        ],
        &server.dir,
        None,
    );
    assert!(!gone.status.success(), "db is still on the server");
    run(&p, &server, ["gc", "--dry-run"])
        .success()
        .stderr_has("nothing to collect");
    run(&p, &server, ["check"]).success();
}

#[test]
fn openbao_errors_are_clear_and_leave_the_lock_alone() {
    let server = BaoServer::dev();
    let p = Project::new("openbao_errors");
    token_generator(&p);
    p.manifest(&manifest(&server.address, false));
    // No token: refused before any generator runs.
    p.run(["generate"]).code(1).stderr_has("no openbao token");
    assert!(!p.root.join("artifacts.lock").exists());
    // A wrong token is named as such, and never printed.
    let mut command = p.command(["generate"]);
    command.env("VAULT_TOKEN", "s.not-a-real-token");
    p.finish(&mut command)
        .code(1)
        .stderr_has("token is invalid or expired")
        .stderr_lacks("not-a-real-token");
    assert!(!p.root.join("artifacts.lock").exists());
    // A KV version 1 mount is refused before anything is written there.
    server.bao(
        &["secrets", "enable", "-path=kv1", "-version=1", "kv"],
        None,
    );
    p.manifest(&manifest(&server.address, false).replace(
        "config.openbao.address",
        "config.openbao.mount = \"kv1\"\nconfig.openbao.address",
    ));
    run(&p, &server, ["generate"])
        .code(1)
        .stderr_has("`kv1` on openbao at")
        .stderr_has("is not a KV version 2 mount");
    p.manifest(&manifest(&server.address, false));
    run(&p, &server, ["generate"]).success();
    let lock = std::fs::read(p.root.join("artifacts.lock")).unwrap();
    // Sealed: check says so, and nothing changes.
    server.bao(&["operator", "seal"], None);
    let check = run(&p, &server, ["check"]);
    check.stdout_has("is sealed").stdout_has("unseal it");
    assert_ne!(check.code, Some(0));
    run(&p, &server, ["regenerate", "api", "--yes"])
        .code(1)
        .stderr_has("is sealed");
    assert_eq!(std::fs::read(p.root.join("artifacts.lock")).unwrap(), lock);
}
