//! The `openbao` backend against a real OpenBao dev server (started per
//! test by the testkit, killed after): the whole lifecycle for every kind of
//! target, migration to and from the file backends, and faults.

use std::ffi::OsStr;

use artifacts_testkit::BaoServer;

use crate::util::{Project, Run};

/// `artifacts ARGS` in `p` with the root token in `BAO_TOKEN`.
pub(crate) fn run<const N: usize>(p: &Project, server: &BaoServer, args: [&str; N]) -> Run {
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

/// Writes `content` as a 0600 file of the project (an AppRole id file).
fn id_file(p: &Project, relative: &str, content: &[u8]) -> String {
    let path = p.root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_owned()
}

fn hosts_manifest(address: &str, b_uses_a_role: bool) -> String {
    let role = |host: &str| {
        format!(
            "config.openbao.roleIdFile = \"hosts/{host}/role-id\"\nconfig.openbao.secretIdFile = \"hosts/{host}/secret-id\""
        )
    };
    format!(
        r#"
default.backend = "openbao"
[nixos.a]
config.openbao.address = "{address}"
{}
[nixos.b]
config.openbao.address = "{address}"
{}
[artifacts.api]
targets = ["nixos/a"]
generator = "generators/token.sh"
files.token = {{ owner = "nobody", group = "nogroup", mode = "0440" }}
files.id = {{ secret = false, path = "/etc/api/id", mode = "0644" }}
[artifacts.web]
targets = ["nixos/b"]
generator = "generators/token.sh"
files.token = {{}}
[artifacts.ca]
shared = true
targets = ["nixos/a", "nixos/b"]
generator = "generators/token.sh"
files.token = {{ mode = "0400" }}
"#,
        role("a"),
        role(if b_uses_a_role { "a" } else { "b" })
    )
}

#[test]
fn hosts_read_only_their_own_artifacts_through_their_approle() {
    use std::os::unix::fs::MetadataExt;
    let server = BaoServer::dev();
    let p = Project::new("openbao_hosts");
    p.generator(
        "token.sh",
        r#"head -c 24 /dev/urandom | base64 > "$out/token"
case "$artifact" in api) echo "pub $artifact" > "$out/id" ;; esac"#,
    );
    p.manifest(&hosts_manifest(&server.address, false));
    run(&p, &server, ["generate"]).success();

    let printed = p.run(["openbao", "policies"]).success().stdout.clone();
    let policy_a = printed
        .split("# policy ")
        .find(|block| block.starts_with("artifacts-nixos-a "))
        .unwrap_or_else(|| panic!("{printed}"));
    assert!(
        policy_a.contains("path \"secret/data/artifacts/per-machine/a/api\""),
        "{policy_a}"
    );
    assert!(
        policy_a.contains("path \"secret/data/artifacts/shared/ca\""),
        "{policy_a}"
    );
    assert!(!policy_a.contains("per-machine/b"), "{policy_a}");
    assert_eq!(policy_a.matches("path \"").count(), 2, "{policy_a}");
    // Printing needs no server; writing needs the operator's token.
    p.run(["openbao", "policies", "--apply"])
        .code(1)
        .stderr_has("no openbao token");
    run(&p, &server, ["openbao", "policies", "--apply"])
        .success()
        .stderr_has("wrote policy and AppRole `artifacts-nixos-a`");
    for host in ["a", "b"] {
        let role = format!("auth/approle/role/artifacts-nixos-{host}");
        let role_id = server.bao(
            &["read", "-field=role_id", &format!("{role}/role-id")],
            None,
        );
        let secret_id = server.bao(
            &[
                "write",
                "-f",
                "-field=secret_id",
                &format!("{role}/secret-id"),
            ],
            None,
        );
        id_file(&p, &format!("hosts/{host}/role-id"), &role_id);
        id_file(&p, &format!("hosts/{host}/secret-id"), &secret_id);
    }

    // Host a, with no operator token: its own and the shared artifact.
    let sysroot = p.root.join("sysroot");
    let root_arg = sysroot.to_str().unwrap();
    p.run(["activate", "--target", "a", "--root", root_arg])
        .success()
        .stderr_has("installed");
    let token = sysroot.join("run/artifacts/api/token");
    assert_eq!(
        std::fs::read_to_string(&token).unwrap(),
        kv_field(&server, "per-machine/a/api", "token", None)
    );
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    let meta = std::fs::metadata(&token).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (nobody, nogroup, 0o440)
    );
    // Public files are the repository's (the NixOS module installs them).
    assert!(!sysroot.join("etc/api/id").exists());
    let ca = sysroot.join("run/artifacts/ca/token");
    assert_eq!(
        std::fs::read_to_string(&ca).unwrap(),
        kv_field(&server, "shared/ca", "token", None)
    );
    assert_eq!(std::fs::metadata(&ca).unwrap().mode() & 0o7777, 0o400);

    // A rotation reaches the host at its next activation.
    run(&p, &server, ["regenerate", "api", "--yes"]).success();
    p.run(["activate", "--target", "a", "--root", root_arg])
        .success();
    assert_eq!(
        std::fs::read_to_string(&token).unwrap(),
        kv_field(&server, "per-machine/a/api", "token", None)
    );
    assert_eq!(std::fs::metadata(&token).unwrap().mode() & 0o7777, 0o440);

    // Host a's AppRole used for host b's artifact: refused, naming the path and the fix.
    p.manifest(&hosts_manifest(&server.address, true));
    let other = p.root.join("sysroot-b");
    p.run([
        "activate",
        "--target",
        "b",
        "--root",
        other.to_str().unwrap(),
        "web",
    ])
    .code(1)
    .stderr_has("permission denied on `secret/data/artifacts/per-machine/b/web`")
    .stderr_has("artifacts openbao policies");
    assert!(!other.join("run/artifacts/web").exists());
}

#[test]
fn migrate_agenix_to_openbao_to_sops_nix_keeps_the_bytes() {
    let server = BaoServer::dev();
    let p = Project::new("openbao_migrate");
    let key = p.root.join("admin.key");
    let key = key.to_str().unwrap();
    p.run(["age", "keygen", "-o", key]).success();
    let recipient = std::fs::read_to_string(key)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .unwrap();
    // Text sops keeps as it is (no final newline, CR, tab, non-ASCII);
    // binary content (artifact `bin`) goes to openbao as base64 and back.
    p.generator(
        "token.sh",
        r#"case "$artifact" in
  api) head -c 24 /dev/urandom | base64 > "$out/token"
       printf 'line\r\n  spaced  \n\t\303\274' > "$out/blob" ;;
  bin) printf '\377\000bin' > "$out/blob" ;;
esac"#,
    );
    let manifest = |backend: &str, bin_backend: &str| {
        format!(
            r#"
[nixos.m1]
config.agenix.publicUserKeys = ["{recipient}"]
config.sops-nix.publicUserKeys = ["{recipient}"]
config.openbao.address = "{}"
[artifacts.api]
targets = ["nixos/m1"]
backend = "{backend}"
generator = "generators/token.sh"
files.token = {{}}
files.blob = {{}}
[artifacts.bin]
targets = ["nixos/m1"]
backend = "{bin_backend}"
generator = "generators/token.sh"
files.blob = {{}}
"#,
            server.address
        )
    };
    let show = |file: &str| {
        run(
            &p,
            &server,
            ["show", "api", "--target", "m1", "--file", file, "-i", key],
        )
        .success()
        .stdout
        .clone()
    };
    let show_bytes = |artifact: &str| {
        let mut command = p.command([
            "show", artifact, "--target", "m1", "--file", "blob", "-i", key,
        ]);
        command.env("BAO_TOKEN", &server.root_token);
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    p.manifest(&manifest("agenix", "agenix"));
    run(&p, &server, ["generate", "-i", key]).success();
    let token = show("token");
    let text = show_bytes("api");
    assert_eq!(text, "line\r\n  spaced  \n\tü".as_bytes());
    let binary = show_bytes("bin");
    assert_eq!(binary, b"\xff\x00bin");

    run(
        &p,
        &server,
        ["migrate", "api", "bin", "--to", "openbao", "-i", key],
    )
    .success()
    .stderr_has("old copy removed");
    assert!(!p.root.join("secrets/per-machine/m1/api").exists());
    assert_eq!(
        kv_field(&server, "per-machine/m1/api", "token", None),
        token
    );
    p.manifest(&manifest("openbao", "openbao"));
    run(&p, &server, ["check"]).success();
    assert_eq!(show("token"), token);
    assert_eq!(show_bytes("api"), text);
    assert_eq!(show_bytes("bin"), binary);

    run(
        &p,
        &server,
        ["migrate", "api", "--to", "sops-nix", "-i", key],
    )
    .success()
    .stderr_has("old copy removed");
    p.manifest(&manifest("sops-nix", "openbao"));
    run(&p, &server, ["check"]).success();
    assert_eq!(show("token"), token);
    assert_eq!(show_bytes("api"), text);
    // The openbao entry is gone with every version.
    let gone = artifacts_testkit::run(
        &artifacts_testkit::bao_bin(),
        &[
            "kv",
            "metadata",
            "get",
            "secret/artifacts/per-machine/m1/api",
        ]
        .map(OsStr::new),
        &[
            ("VAULT_ADDR", OsStr::new(&server.address)),
            ("VAULT_TOKEN", OsStr::new(&server.root_token)),
        ],
        &server.dir,
        None,
    );
    assert!(!gone.status.success());
}

/// A production server (TLS from an openssl CA, file storage, initialised
/// and unsealed): TLS is verified, a server killed while a regeneration
/// runs leaves a clear error and the previous version intact, and a
/// restarted (sealed) server is named as sealed.
#[test]
fn production_server_tls_kill_mid_generate_and_sealed_restart() {
    use std::io::Write;
    let mut server = BaoServer::production();
    let ca = server.ca_cert.clone().unwrap();
    let p = Project::new("openbao_production");
    let fifo = p.root.join("go");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits(0o600).unwrap()).unwrap();
    // Generators run as an unprivileged user, even unsandboxed.
    std::fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    // First generation straight through; later ones wait for the test on a FIFO.
    p.generator(
        "token.sh",
        &format!(
            r#"if [ -e "{marker}" ]; then read line < "{fifo}"; fi
head -c 24 /dev/urandom | base64 > "$out/token""#,
            marker = p.root.join("wait").display(),
            fifo = fifo.display()
        ),
    );
    let manifest = |ca: Option<&std::path::Path>| {
        let ca = ca
            .map(|ca| format!("config.openbao.caCert = \"{}\"\n", ca.display()))
            .unwrap_or_default();
        format!(
            r#"
default.backend = "openbao"
[nixos.m1]
config.openbao.address = "{}"
{ca}
[artifacts.api]
targets = ["nixos/m1"]
generator = "generators/token.sh"
files.token = {{}}
"#,
            server.address
        )
    };
    // TLS verification is on: without the CA the server is not trusted.
    p.manifest(&manifest(None));
    let untrusted = run(&p, &server, ["check"]);
    untrusted.stdout_has("UnknownIssuer");
    assert_ne!(untrusted.code, Some(0));
    p.manifest(&manifest(Some(&ca)));
    run(&p, &server, ["--no-sandbox", "generate"]).success();
    let first = kv_prod(&server, "token", None);
    let lock = std::fs::read(p.root.join("artifacts.lock")).unwrap();

    std::fs::write(p.root.join("wait"), "").unwrap();
    let mut command = p.command(["--no-sandbox", "regenerate", "api", "--yes"]);
    command
        .env("BAO_TOKEN", &server.root_token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut go = open_when_read(&fifo, &mut child);
    server.kill();
    writeln!(go, "go").unwrap();
    drop(go);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("openbao at `{}` is unreachable", server.address)),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: check artifacts.config.openbao.address"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(p.root.join("artifacts.lock")).unwrap(),
        lock,
        "lock changed"
    );

    // Back up, sealed: said so, nothing else.
    server.restart();
    let sealed = run(&p, &server, ["check"]);
    sealed.stdout_has("is sealed");
    assert_ne!(sealed.code, Some(0));
    server.unseal();
    // The previous version is intact, and still the only one.
    assert_eq!(kv_prod(&server, "token", None), first);
    let metadata = String::from_utf8(server.bao(
        &[
            "kv",
            "metadata",
            "get",
            "-format=json",
            "secret/artifacts/per-machine/m1/api",
        ],
        None,
    ))
    .unwrap();
    let metadata: serde_json::Value = serde_json::from_str(&metadata).unwrap();
    assert_eq!(metadata["data"]["current_version"], 1, "{metadata}");
    run(&p, &server, ["check"]).success();
}

/// Opens `fifo` for writing once a reader (the generator) has it open:
/// non-blocking opens fail until then. Bounded, and fails with the
/// program's output if it exits first.
fn open_when_read(fifo: &std::path::Path, child: &mut std::process::Child) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    for _ in 0..600 {
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(fifo);
        if let Ok(file) = opened {
            return file;
        }
        if child.try_wait().unwrap().is_some() {
            let output = child.stderr.take().map(std::io::read_to_string);
            panic!("exited before its generator ran: {output:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the generator did not open {} in 30 s", fifo.display());
}

fn kv_prod(server: &BaoServer, file: &str, version: Option<u32>) -> String {
    kv_field(server, "per-machine/m1/api", file, version)
}

/// A machine and two Home Manager users on one server; `ca` is shared by
/// the machine and alice, who declare it at different paths. The machine
/// is configured with alice's AppRole files (`alice_ids`), to prove her
/// AppRole cannot read a machine's entry.
fn users_manifest(address: &str, alice_ids: &str) -> String {
    format!(
        r#"
default.backend = "openbao"
[nixos.m1]
config.openbao.address = "{address}"
config.openbao.roleIdFile = "{alice_ids}/role-id"
config.openbao.secretIdFile = "{alice_ids}/secret-id"
[home.alice]
config.openbao.address = "{address}"
[home.bob]
config.openbao.address = "{address}"
config.openbao.roleIdFile = "~/.config/artifacts/openbao/role-id"
config.openbao.secretIdFile = "~/.config/artifacts/openbao/secret-id"

[artifacts.api]
targets = ["nixos/m1"]
generator = "generators/user.sh"
files.token = {{}}
[artifacts.ca]
shared = true
targets = ["nixos/m1", "home/alice"]
generator = "generators/user.sh"
files.cert = {{ mode = "0440" }}
[artifacts.ssh]
targets = ["home/alice"]
generator = "generators/user.sh"
files.key = {{ path = "~/.ssh/id_artifacts", mode = "0600" }}
files.token = {{}}
files.pub = {{ secret = false, path = "~/.ssh/id_artifacts.pub" }}
[artifacts.mail]
targets = ["home/bob"]
generator = "generators/user.sh"
files.password = {{}}
"#
    )
}

/// `nobody`'s uid and gid.
fn nobody() -> (u32, u32) {
    let user = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    (user.uid.as_raw(), user.gid.as_raw())
}

/// `artifacts ARGS` as `nobody`, with no operator token, `HOME` and
/// `XDG_RUNTIME_DIR` the user's (what a systemd user service has).
fn run_as_user<const N: usize>(
    p: &Project,
    runtime: &std::path::Path,
    env: &[(&str, &str)],
    args: [&str; N],
) -> Run {
    use std::os::unix::process::CommandExt;
    let (uid, gid) = nobody();
    let mut command = p.command(args);
    command
        .env("XDG_RUNTIME_DIR", runtime)
        .envs(env.iter().copied())
        .uid(uid)
        .gid(gid);
    p.finish(&mut command)
}

/// A Home Manager user fetches their own artifacts (and the shared one
/// they declare) with their own AppRole, as a non-root user: exact bytes,
/// exact modes, owned by them, at their declared paths (`~/`,
/// `$XDG_RUNTIME_DIR`), a link in the way replaced rather than followed.
/// Their AppRole cannot read another user's or a machine's entry.
#[test]
fn home_manager_users_fetch_their_own_artifacts_as_themselves() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let server = BaoServer::dev();
    let p = Project::new("openbao_home_manager_users");
    p.generator(
        "user.sh",
        r#"case "$artifact" in
  ssh) head -c 32 /dev/urandom > "$out/key"
       printf '\377\000tail' >> "$out/key"
       head -c 24 /dev/urandom | base64 > "$out/token"
       echo "ssh-ed25519 AAAA alice" > "$out/pub" ;;
  ca) head -c 24 /dev/urandom | base64 > "$out/cert" ;;
  api) head -c 24 /dev/urandom | base64 > "$out/token" ;;
  mail) head -c 24 /dev/urandom | base64 > "$out/password" ;;
esac"#,
    );
    // Alice's AppRole ids where a Home Manager user keeps them by default.
    let ids = p.home.join(".config/artifacts/openbao");
    p.manifest(&users_manifest(&server.address, ids.to_str().unwrap()));
    run(&p, &server, ["generate"])
        .success()
        .stderr_has("generated 4 artifact(s)");

    // Her policy: exactly her entry and the shared one she declares.
    let printed = p.run(["openbao", "policies"]).success().stdout.clone();
    let policy = printed
        .split("# policy ")
        .find(|block| block.starts_with("artifacts-homemanager-alice "))
        .unwrap_or_else(|| panic!("{printed}"));
    assert!(
        policy.contains("path \"secret/data/artifacts/per-user/alice/ssh\""),
        "{policy}"
    );
    assert!(
        policy.contains("path \"secret/data/artifacts/shared/ca\""),
        "{policy}"
    );
    assert_eq!(policy.matches("path \"").count(), 2, "{policy}");
    run(&p, &server, ["openbao", "policies", "--apply"])
        .success()
        .stderr_has("wrote policy and AppRole `artifacts-homemanager-alice`")
        .stderr_has("wrote policy and AppRole `artifacts-homemanager-bob`");
    let role = "auth/approle/role/artifacts-homemanager-alice";
    let role_id = server.bao(
        &["read", "-field=role_id", &format!("{role}/role-id")],
        None,
    );
    let secret_id = server.bao(
        &[
            "write",
            "-f",
            "-field=secret_id",
            &format!("{role}/secret-id"),
        ],
        None,
    );
    std::fs::create_dir_all(&ids).unwrap();
    for (name, content) in [("role-id", &role_id), ("secret-id", &secret_id)] {
        std::fs::write(ids.join(name), content).unwrap();
        std::fs::set_permissions(ids.join(name), std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    // Her session: a runtime directory, and a link where her key goes,
    // pointing at a file she must not change.
    let base = p.root.parent().unwrap();
    let runtime = base.join("run-user");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir_all(p.home.join(".ssh")).unwrap();
    let outside = base.join("outside");
    std::fs::write(&outside, "not hers").unwrap();
    std::os::unix::fs::symlink(&outside, p.home.join(".ssh/id_artifacts")).unwrap();
    let (uid, gid) = nobody();
    for dir in [&p.root, &p.tmp, &p.home, &runtime] {
        let status = std::process::Command::new("chown")
            .args(["-R", &format!("{uid}:{gid}")])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "chown {}", dir.display());
    }

    run_as_user(
        &p,
        &runtime,
        &[],
        ["activate", "--target", "homemanager/alice"],
    )
    .success()
    .stderr_has("installed");
    let show = |artifact: &str, file: &str| {
        let mut command = p.command(["show", artifact, "--target", "home/alice", "--file", file]);
        command.env("BAO_TOKEN", &server.root_token);
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let expect = |path: &std::path::Path, content: Vec<u8>, mode: u32| {
        let meta =
            std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(meta.is_file(), "{} is not a regular file", path.display());
        assert_eq!(std::fs::read(path).unwrap(), content, "{}", path.display());
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (uid, gid, mode),
            "{}",
            path.display()
        );
    };
    let key = p.home.join(".ssh/id_artifacts");
    let key_bytes = show("ssh", "key");
    assert!(key_bytes.ends_with(b"\xff\x00tail"));
    expect(&key, key_bytes, 0o600);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "not hers");
    expect(
        &runtime.join("artifacts/ssh/token"),
        show("ssh", "token"),
        0o400,
    );
    // The shared artifact at her path, not the machine's /run/artifacts/….
    expect(
        &runtime.join("artifacts/ca/cert"),
        show("ca", "cert"),
        0o440,
    );
    let dir = std::fs::metadata(runtime.join("artifacts/ssh")).unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o7777), (uid, 0o700));
    // The public file comes from the repository (the artifacts module).
    assert!(!p.home.join(".ssh/id_artifacts.pub").exists());

    // A rotation reaches her at the next fetch.
    run(&p, &server, ["regenerate", "ssh", "--yes"]).success();
    run_as_user(
        &p,
        &runtime,
        &[],
        ["activate", "--target", "homemanager/alice"],
    )
    .success();
    let rotated = show("ssh", "token");
    expect(&runtime.join("artifacts/ssh/token"), rotated, 0o400);

    // `$XDG_CONFIG_HOME`, when set, is where the ids are by default.
    run_as_user(
        &p,
        &runtime,
        &[("XDG_CONFIG_HOME", "/nonexistent-config")],
        ["activate", "--target", "homemanager/alice"],
    )
    .code(1)
    .stderr_has("failed to read the AppRole file `/nonexistent-config/artifacts/openbao/role-id`");

    // Her AppRole on bob's entry (his target names her id files, as
    // `~/…`) and on the machine's: refused, naming the path.
    run_as_user(
        &p,
        &runtime,
        &[],
        ["activate", "--target", "homemanager/bob"],
    )
    .code(1)
    .stderr_has("permission denied on `secret/data/artifacts/per-user/bob/mail`")
    .stderr_has("artifacts openbao policies");
    assert!(!runtime.join("artifacts/mail").exists());
    let sysroot = base.join("sysroot");
    run_as_user(
        &p,
        &runtime,
        &[],
        [
            "activate",
            "--target",
            "nixos/m1",
            "--root",
            sysroot.to_str().unwrap(),
            "api",
        ],
    )
    .code(1)
    .stderr_has("permission denied on `secret/data/artifacts/per-machine/m1/api`")
    .stderr_has("artifacts openbao policies");
    assert!(!sysroot.join("run/artifacts/api").exists());
}

/// HashiCorp Vault (the `vault` alias) has no `detailed-metadata` listing:
/// its KV v2 engine answers it as any path it does not know (404, no
/// errors, a warning). Through a proxy that gives the real engine's answer
/// for that path, `check` falls back to one plain LIST and one metadata
/// read per entry, and finds what is stored, and what is not: before, the
/// warning-only 404 read as "nothing stored", so every artifact looked
/// missing and `generate` would have replaced them all.
#[test]
fn vault_without_detailed_metadata_is_listed_entry_by_entry() {
    let server = BaoServer::dev();
    let vault = artifacts_testkit::WithoutDetailedMetadata::start(&server.address);
    let p = Project::new("vault_without_detailed_metadata");
    token_generator(&p);
    p.manifest(&format!(
        r#"
default.backend = "vault"
[nixos.m1]
config.vault.address = "{}"
[nixos.m1.artifacts.a]
generator = "generators/token.sh"
files.token = {{}}
[nixos.m1.artifacts.b]
generator = "generators/token.sh"
files.token = {{}}
[nixos.m1.artifacts.c]
generator = "generators/token.sh"
files.token = {{}}
"#,
        vault.address
    ));
    run(&p, &server, ["generate"])
        .success()
        .stderr_has("generated 3 artifact(s)");
    let stored = kv_field(&server, "per-machine/m1/b", "token", None);

    vault.take_requests();
    run(&p, &server, ["check"]).success();
    let requests = vault.take_requests();
    let count = |part: &str| requests.iter().filter(|r| r.contains(part)).count();
    assert_eq!(
        count("/detailed-metadata/artifacts/per-machine/m1/"),
        1,
        "{requests:#?}"
    );
    assert_eq!(
        count("GET /v1/secret/metadata/artifacts/per-machine/m1/?list=true"),
        1,
        "{requests:#?}"
    );
    for entry in ["a", "b", "c"] {
        assert_eq!(
            count(&format!(
                "GET /v1/secret/metadata/artifacts/per-machine/m1/{entry} "
            )),
            1,
            "{requests:#?}"
        );
    }

    // An entry removed on the server is missing, the others are not.
    server.bao(
        &[
            "kv",
            "metadata",
            "delete",
            "secret/artifacts/per-machine/m1/c",
        ],
        None,
    );
    run(&p, &server, ["check", "--json"])
        .code(1)
        .stdout_has(r#""missing": 1"#);
    run(&p, &server, ["generate"])
        .success()
        .stderr_has("generated 1 artifact(s)");
    assert_eq!(kv_field(&server, "per-machine/m1/b", "token", None), stored);
    run(&p, &server, ["check"]).success();
}
