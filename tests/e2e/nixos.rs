//! The Nix modules inside real NixOS and Home Manager evaluations: the
//! offline kit (`ARTIFACTS_NIXOS_EVAL_KIT`, default `../shared/nixos-eval-kit`
//! next to the repository) holds nixpkgs' `lib/` and `nixos/`, the real
//! agenix, sops-nix and home-manager modules, and stub packages. Without the
//! kit these tests say loudly what they skip; with `CI` set they fail.
//!
//! One NixOS evaluation costs seconds and hundreds of MB, so each test forces
//! everything it checks in one `nix-instantiate` (tests/nixos/modules.nix
//! returns an attrset of results), and the suite runs few of them.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::tools::{artifacts_keygen, tool};
use crate::util::Project;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The kit's absolute path; `None` (after saying so on stderr) when it is
/// missing outside CI. In CI (`CI` set) a missing kit fails the test.
fn kit(test: &str) -> Option<PathBuf> {
    let configured = std::env::var_os("ARTIFACTS_NIXOS_EVAL_KIT")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/nixos-eval-kit"));
    if configured
        .join("nixpkgs/nixos/lib/eval-config.nix")
        .is_file()
    {
        return Some(configured.canonicalize().unwrap());
    }
    let why = format!(
        "the NixOS evaluation kit is not at `{}` (set ARTIFACTS_NIXOS_EVAL_KIT to its directory)",
        configured.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {why}; CI runs every test");
    }
    // Straight to stderr, not `eprintln!`: the test harness would swallow it.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: {why}; no NixOS or Home Manager evaluation was checked ***\n"
    );
    None
}

/// `nix-instantiate --eval --strict --json tests/nixos/modules.nix -A attr`.
fn eval_modules(kit: &Path, project: &Path, attr: &str) -> Output {
    Command::new(tool("nix-instantiate", "nix-bin"))
        // Read-write: the public files' store paths must exist to be read back.
        .args(["--eval", "--strict", "--json", "--read-write-mode"])
        .arg("--argstr")
        .arg("kit")
        .arg(kit)
        .arg("--argstr")
        .arg("repo")
        .arg(repo())
        .arg("--argstr")
        .arg("project")
        .arg(project)
        .arg(repo().join("tests/nixos/modules.nix"))
        .args(["-A", attr])
        .env("NIX_PATH", "")
        .stdin(Stdio::null())
        .output()
        .expect("nix-instantiate runs")
}

#[track_caller]
fn json_of(what: &str, output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Writes each file with its own relative path as content, so an evaluation
/// that reads it tells which file it read.
fn write_named(root: &Path, files: &[&str]) {
    for file in files {
        let path = root.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, format!("{file}\n")).unwrap();
    }
}

/// The `(source, destination, mode, owner, group)` of each line of a public
/// files activation snippet (`install -D -T -m M [-o O -g G] SRC TMP && mv …`).
fn installs(text: &str) -> Vec<(String, String, String, String, String)> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let words: Vec<String> = line
                .split_whitespace()
                .map(|w| w.trim_matches('\'').to_owned())
                .collect();
            let after = |flag: &str| {
                words
                    .iter()
                    .position(|w| w == flag)
                    .map(|i| words[i + 1].clone())
                    .unwrap_or_default()
            };
            let source = words
                .iter()
                .find(|w| w.starts_with("/nix/store/"))
                .unwrap_or_else(|| panic!("no store path in {line:?}"))
                .clone();
            let destination = words.last().unwrap().clone();
            (source, destination, after("-m"), after("-o"), after("-g"))
        })
        .collect()
}

/// Secret and public files of the evaluations in tests/nixos/modules.nix, at
/// the paths the CLI writes them to.
const PROJECT_FILES: &[&str] = &[
    "secrets/per-machine/agenix-box/api/token.age",
    "secrets/per-machine/sops-box.sops.yaml",
    "public/per-machine/sops-box/db/ca",
    "secrets/per-machine/web-alpha/wg/private.age",
    "public/per-machine/web-alpha/wg/public",
    "secrets/per-machine/web-alpha.sops.yaml",
    "secrets/shared/psk.sops.yaml",
    "public/shared/ca/cert",
    "secrets/per-user/alice/backup/key.age",
    "public/per-user/alice/backup/pub",
    "secrets/per-user/alice-work.sops.yaml",
    "public/per-user/alice-work/mail/fingerprint",
];

#[test]
fn modules_in_real_nixos_and_home_manager_evaluations() {
    let Some(kit) = kit("modules_in_real_nixos_and_home_manager_evaluations") else {
        return;
    };
    let p = Project::new("modules_in_real_nixos_and_home_manager_evaluations");
    write_named(&p.root, PROJECT_FILES);
    let got = json_of(
        "the NixOS evaluations",
        &eval_modules(&kit, &p.root, "main"),
    );
    let dump = |v: &Value| serde_json::to_string_pretty(v).unwrap();

    // Every configuration's own assertions (NixOS's, agenix's, sops-nix's, ours) hold.
    for name in [
        "agenix", "sops-nix", "dummy", "openbao", "mixed", "upstream",
    ] {
        assert_eq!(
            got[name]["failed"],
            json!([]),
            "{name}: {}",
            dump(&got[name])
        );
    }

    // agenix: named by `artifacts.machineName`, not the host name.
    let agenix = &got["agenix"];
    assert_eq!(
        agenix["age"],
        json!({ "api-token": {
            "content": "secrets/per-machine/agenix-box/api/token.age\n",
            "path": "/var/lib/api/token", "owner": "nginx", "group": "nginx", "mode": "0440"
        }}),
        "{}",
        dump(agenix)
    );
    assert_eq!(
        agenix["targets"]["artifacts-api"],
        json!({ "wantedBy": ["multi-user.target"], "after": [], "requires": [],
                "assertPathExists": ["/var/lib/api/token"] })
    );
    let store: Value = serde_json::from_str(agenix["store"].as_str().unwrap()).unwrap();
    assert_eq!(store["machineName"], "agenix-box");
    assert_eq!(
        store["store"]["api"]["prompts"]["password"],
        json!({ "name": "password", "description": "API password", "type": "hidden",
                "allowEmpty": false, "confirm": true })
    );
    // `inputs` is an option of the module, handed to the CLI as declared.
    assert_eq!(
        store["store"]["api"]["inputs"],
        json!(["generators/lib.sh"])
    );
    let sops_store: Value =
        serde_json::from_str(got["sops-nix"]["store"].as_str().unwrap()).unwrap();
    assert_eq!(
        sops_store["store"]["db"]["inputs"],
        json!([]),
        "the default"
    );
    assert_eq!(
        store["store"]["api"]["files"]["token"]["value"],
        Value::Null,
        "a secret file's value is null, so the tree dumps as JSON"
    );

    // sops-nix: the machine's sops file and key, and a public file installed.
    let sops = &got["sops-nix"];
    assert_eq!(
        sops["sops"],
        json!({ "db/password": {
            "content": "secrets/per-machine/sops-box.sops.yaml\n", "key": "db/password", "format": "yaml",
            "path": "/run/artifacts/db/password", "owner": "postgres", "group": "root", "mode": "0400"
        }})
    );
    let sops_installs = installs(sops["public"]["text"].as_str().unwrap());
    assert_eq!(sops_installs.len(), 1, "{}", dump(sops));
    let (source, destination, mode, owner, group) = &sops_installs[0];
    assert_eq!(
        (
            destination.as_str(),
            mode.as_str(),
            owner.as_str(),
            group.as_str()
        ),
        ("/run/artifacts/db/ca", "0444", "root", "root")
    );
    assert_eq!(
        fs::read_to_string(source).unwrap(),
        "public/per-machine/sops-box/db/ca\n"
    );
    assert_eq!(
        sops["public"]["deps"],
        json!(["specialfs", "users", "groups"])
    );
    assert_eq!(
        sops["targets"]["artifacts-db"]["assertPathExists"],
        json!(["/run/artifacts/db/ca", "/run/artifacts/db/password"])
    );

    // dummy: a oneshot per artifact that the target requires; nothing read from the project.
    let dummy = &got["dummy"];
    let exec = dummy["services"]["artifacts-vm-key"]["execStart"]
        .as_str()
        .unwrap();
    assert!(
        exec.ends_with(r#""activate" "--target" "nixos/dummy-box" "vm-key""#),
        "{exec}"
    );
    assert_eq!(
        dummy["targets"]["artifacts-vm-key"]["requires"],
        json!(["artifacts-vm-key.service"])
    );
    assert_eq!(
        dummy["public"],
        Value::Null,
        "a dummy artifact's public file is made on the machine"
    );

    // openbao: one fetch service for both names of the backend, after the
    // network, before what uses the files; each artifact's target after it;
    // a separate refresh service for the timer; the manifest carries the
    // configuration and the AppRole files, no secret.
    let bao = &got["openbao"];
    let fetch = &bao["fetch"];
    let exec = fetch["execStart"].as_str().unwrap();
    assert!(
        exec.ends_with(r#""activate" "--target" "nixos/bao-box" "db" "tls""#),
        "{exec}"
    );
    assert_eq!(fetch["wantedBy"], json!(["multi-user.target"]));
    assert_eq!(fetch["before"], json!(["nginx.service"]));
    assert_eq!(fetch["after"], json!(["network-online.target"]));
    assert_eq!(fetch["remain"], json!(true));
    assert_eq!(bao["refresh"]["execStart"], fetch["execStart"]);
    assert_eq!(bao["refresh"]["remain"], json!(false));
    assert_eq!(bao["refresh"]["timer"], "hourly");
    for artifact in ["tls", "db"] {
        assert_eq!(
            bao["targets"][format!("artifacts-{artifact}")]["requires"],
            json!(["artifacts-openbao.service"]),
            "{}",
            dump(bao)
        );
    }
    assert_eq!(
        bao["targets"]["artifacts-local"]["requires"],
        json!(["artifacts-local.service"]),
        "the dummy artifact keeps its own service"
    );
    let machine = &bao["manifest"]["nixos"][0];
    assert_eq!(machine["machine"], "bao-box");
    assert_eq!(
        machine["config"]["openbao"],
        json!({ "address": "https://bao.example:8200", "mount": "kv",
                "roleIdFile": "/var/lib/artifacts/openbao/role-id",
                "secretIdFile": "/var/lib/artifacts/openbao/secret-id" })
    );
    let names: Vec<&String> = machine["artifacts"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["db", "tls"]);
    assert_eq!(machine["artifacts"]["db"]["backend"], "vault");
    assert_eq!(
        machine["artifacts"]["tls"]["files"]["key"]["owner"],
        "nginx"
    );

    // All three backends: every path a target asserts is installed by
    // agenix, sops-nix, the public-files snippet or a dummy service.
    let mixed = &got["mixed"];
    let mut provided: BTreeMap<String, String> = BTreeMap::new();
    for (name, secret) in mixed["age"].as_object().unwrap() {
        provided.insert(
            secret["path"].as_str().unwrap().into(),
            format!("age.secrets.{name}"),
        );
    }
    for (name, secret) in mixed["sops"].as_object().unwrap() {
        provided.insert(
            secret["path"].as_str().unwrap().into(),
            format!("sops.secrets.{name}"),
        );
    }
    let mixed_installs = installs(mixed["public"]["text"].as_str().unwrap());
    for (source, destination, ..) in &mixed_installs {
        provided.insert(destination.clone(), format!("public {source}"));
    }
    let mut asserted = BTreeSet::new();
    for (target, unit) in mixed["targets"].as_object().unwrap() {
        let by_service = !unit["requires"].as_array().unwrap().is_empty();
        for path in unit["assertPathExists"].as_array().unwrap() {
            let path = path.as_str().unwrap();
            asserted.insert(path.to_owned());
            assert!(
                provided.contains_key(path) || by_service,
                "{target} asserts {path}, which nothing installs: {provided:?}"
            );
        }
    }
    assert_eq!(
        asserted,
        BTreeSet::from(
            [
                "/run/artifacts/wg/private",
                "/run/artifacts/wg/public",
                "/run/artifacts/db/password",
                "/etc/psk/key",
                "/etc/ssl/artifacts-ca.pem",
                "/run/artifacts/boot/k"
            ]
            .map(String::from)
        )
    );
    assert_eq!(
        mixed["age"]["wg-private"]["content"],
        "secrets/per-machine/web-alpha/wg/private.age\n"
    );
    assert_eq!(
        mixed["sops"]["psk/key"],
        json!({ "content": "secrets/shared/psk.sops.yaml\n", "key": "psk/key", "format": "yaml",
                "path": "/etc/psk/key", "owner": "root", "group": "root", "mode": "0400" })
    );
    assert_eq!(
        mixed["sops"]["db/password"]["content"],
        "secrets/per-machine/web-alpha.sops.yaml\n"
    );
    assert_eq!(
        mixed["wgPublic"],
        "public/per-machine/web-alpha/wg/public\n"
    );
    let wg_public = mixed_installs
        .iter()
        .find(|i| i.1 == "/run/artifacts/wg/public")
        .unwrap();
    assert_eq!(
        (
            wg_public.2.as_str(),
            wg_public.3.as_str(),
            wg_public.4.as_str()
        ),
        ("0444", "systemd-network", "root")
    );
    assert_eq!(
        fs::read_to_string(&wg_public.0).unwrap(),
        "public/per-machine/web-alpha/wg/public\n"
    );
    let ca = mixed_installs
        .iter()
        .find(|i| i.1 == "/etc/ssl/artifacts-ca.pem")
        .unwrap();
    assert_eq!(
        fs::read_to_string(&ca.0).unwrap(),
        "public/shared/ca/cert\n"
    );

    // Each mistake our assertions catch, worded as the fix.
    let mut negative: Vec<String> = got["negative"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    negative.sort();
    let mut expected = [
        "artifacts: this machine has no name (`networking.hostName` is empty); set `artifacts.machineName`",
        "artifacts: artifacts.store.in-store.files.f.path = /nix/store/leak is in /nix/store, which every user can read; use a path such as /run/artifacts/…",
        "artifacts: artifact `no-backend` has no backend: set `artifacts.store.no-backend.backend` or `artifacts.default.backend`",
        "artifacts: set artifacts.projectRoot (e.g. `./.` in your flake) so the sops files under `secrets/` can be found",
        "artifacts: set artifacts.projectRoot (e.g. `./.` in your flake) so the agenix files under `secrets/` can be found",
        "artifacts: set artifacts.projectRoot (e.g. `./.` in your flake) so the public files under `public/` can be installed",
        // `public-no-root` uses vault (openbao): where is the server?
        "artifacts: set artifacts.openbao.address (or artifacts.config.openbao.address) so the machine can fetch its openbao artifacts",
    ];
    expected.sort();
    assert_eq!(negative, expected);

    // Home Manager with agenix: the user's files, a public one installed at activation.
    let home = &got["home-agenix"];
    assert_eq!(
        home["age"],
        json!({ "backup-key": {
            "content": "secrets/per-user/alice/backup/key.age\n",
            "path": "$XDG_RUNTIME_DIR/artifacts/backup/key", "mode": "0400"
        }})
    );
    assert_eq!(
        home["identityPaths"],
        json!(["/home/alice/.ssh/id_ed25519"])
    );
    let home_installs = installs(home["public"].as_str().unwrap());
    assert_eq!(home_installs.len(), 1, "{}", dump(home));
    assert_eq!(home_installs[0].1, "/home/alice/.backup.pub");
    assert_eq!(home_installs[0].2, "0444");
    assert_eq!(
        fs::read_to_string(&home_installs[0].0).unwrap(),
        "public/per-user/alice/backup/pub\n"
    );
    assert_eq!(
        home["targets"]["artifacts-backup"]["Unit"]["AssertPathExists"],
        json!(["%t/artifacts/backup/key", "/home/alice/.backup.pub"])
    );
    // agenix decrypts in a user unit: the target waits for it.
    assert_eq!(
        home["targets"]["artifacts-backup"]["Unit"]["After"],
        json!(["agenix.service"])
    );
    assert_eq!(
        home["targets"]["artifacts-backup"]["Unit"]["Requires"],
        json!(["agenix.service"])
    );
    let home_store: Value = serde_json::from_str(home["store"].as_str().unwrap()).unwrap();
    assert_eq!(home_store["userName"], "alice");
    assert_eq!(
        home_store["store"]["backup"]["prompts"]["passphrase"]["type"],
        "multiline-hidden"
    );

    // Home Manager with sops-nix: named by `artifacts.userName`; `%r` for $XDG_RUNTIME_DIR.
    let home_sops = &got["home-sops"];
    assert_eq!(
        home_sops["sops"],
        json!({
            "mail/password": { "content": "secrets/per-user/alice-work.sops.yaml\n", "key": "mail/password",
                "format": "yaml", "path": "%r/artifacts/mail/password", "mode": "0400" },
            "mail/config": { "content": "secrets/per-user/alice-work.sops.yaml\n", "key": "mail/config",
                "format": "yaml", "path": "/home/alice/.mail/password", "mode": "0600" }
        })
    );
    assert_eq!(
        home_sops["targets"]["artifacts-mail"]["Install"]["WantedBy"],
        json!(["default.target"])
    );
    assert_eq!(
        home_sops["targets"]["artifacts-mail"]["Unit"]["AssertPathExists"],
        json!([
            "/home/alice/.mail/password",
            "%t/artifacts/mail/fingerprint",
            "%t/artifacts/mail/password"
        ])
    );
    assert_eq!(
        home_sops["targets"]["artifacts-mail"]["Unit"]["After"],
        json!(["sops-nix.service"])
    );
    assert_eq!(
        home_sops["targets"]["artifacts-mail"]["Unit"]["Requires"],
        json!(["sops-nix.service"])
    );
    run_home_public_snippet(&p, home_sops["public"].as_str().unwrap());

    // openbao for a Home Manager user: one user oneshot at login for both
    // names of the backend, fetching as `homemanager/<user>`; the
    // artifacts' targets after it; a separate refresh service on the timer.
    let hm_bao = &got["home-openbao"];
    assert_eq!(hm_bao["failed"], json!([]), "{}", dump(hm_bao));
    let fetch = &hm_bao["fetch"];
    let exec = fetch["Service"]["ExecStart"].as_str().unwrap();
    assert!(
        exec.ends_with(r#""activate" "--target" "homemanager/alice" "mail" "ssh""#)
            && exec.contains(r#"/bin/artifacts" "--manifest" ""#),
        "{exec}"
    );
    assert_eq!(fetch["Install"]["WantedBy"], json!(["default.target"]));
    assert_eq!(fetch["Service"]["Type"], "oneshot");
    assert_eq!(fetch["Service"]["RemainAfterExit"], json!(true));
    assert_eq!(hm_bao["refresh"]["Service"]["ExecStart"], json!(exec));
    assert_eq!(hm_bao["refresh"]["Service"]["RemainAfterExit"], Value::Null);
    assert_eq!(hm_bao["refresh"]["Install"], Value::Null);
    assert_eq!(hm_bao["timer"]["Timer"]["OnCalendar"], "daily");
    assert_eq!(
        hm_bao["timer"]["Install"]["WantedBy"],
        json!(["timers.target"])
    );
    assert_eq!(
        hm_bao["otherServices"],
        json!(["artifacts-openbao", "artifacts-openbao-refresh"])
    );
    for artifact in ["ssh", "mail"] {
        let unit = &hm_bao["targets"][format!("artifacts-{artifact}")]["Unit"];
        assert_eq!(
            unit["Requires"],
            json!(["artifacts-openbao.service"]),
            "{}",
            dump(unit)
        );
        assert_eq!(
            unit["After"],
            json!(["artifacts-openbao.service"]),
            "{}",
            dump(unit)
        );
    }
    assert_eq!(
        hm_bao["targets"]["artifacts-backup"]["Unit"]["Requires"],
        json!(["agenix.service"]),
        "the agenix artifact keeps its own service"
    );
    let user = &hm_bao["manifest"]["home"][0];
    assert_eq!(user["user"], "alice");
    assert_eq!(
        user["config"]["openbao"],
        json!({ "address": "https://bao.example:8200", "mount": "kv",
                "roleIdFile": "/home/alice/.config/artifacts/openbao/role-id",
                "secretIdFile": "/home/alice/.config/artifacts/openbao/secret-id" })
    );
    let names: Vec<&String> = user["artifacts"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["mail", "ssh"]);
    assert_eq!(
        user["artifacts"]["ssh"]["files"]["key"],
        json!({ "path": "/home/alice/.ssh/id_artifacts", "mode": "0600", "secret": true })
    );
    // The CLI reads that manifest as the user's: the fetch gets as far as
    // the AppRole files the module named (no server is needed for that).
    // As root, into a staging tree (root does not install a user's files).
    let manifest = p.root.join("home-openbao.json");
    fs::write(&manifest, serde_json::to_vec(&hm_bao["manifest"]).unwrap()).unwrap();
    let staging = p.root.join("staging");
    p.run([
        OsStr::new("--manifest"),
        manifest.as_os_str(),
        OsStr::new("activate"),
        OsStr::new("--target"),
        OsStr::new("homemanager/alice"),
        OsStr::new("--root"),
        staging.as_os_str(),
        OsStr::new("ssh"),
    ])
    .code(1)
    .stderr_has("homemanager `alice`: failed to read the AppRole file `/home/alice/.config/artifacts/openbao/role-id`");
    // Without an address: the assertion says what to set; no timer unless asked.
    let no_address = &got["home-openbao-no-address"];
    assert_eq!(
        no_address["failed"],
        json!([
            "artifacts: set artifacts.openbao.address (or artifacts.config.openbao.address) so user alice-work can fetch their openbao artifacts"
        ])
    );
    assert_eq!(no_address["services"], json!(["artifacts-openbao"]));
    assert_eq!(no_address["timers"], json!([]));
    assert_eq!(no_address["manifest"]["home"][0]["user"], "alice-work");

    // Upstream's declarations and a backend declaring options under artifacts.config.
    let upstream = &got["upstream"];
    assert_eq!(
        upstream["config"]["agenix"]["machineName"],
        "upstream-box",
        "{}",
        dump(upstream)
    );
    assert_eq!(upstream["config"]["agenix"]["storeDir"], "secrets");
    assert_eq!(upstream["config"]["other"], json!({ "note": "free-form" }));
    assert_eq!(
        upstream["environmentFile"],
        "/var/lib/vaultwarden/secrets.env"
    );
    assert_eq!(
        upstream["age"]["vaultwarden-env"],
        json!({ "path": "/var/lib/vaultwarden/secrets.env", "owner": "vaultwarden", "group": "vaultwarden" })
    );
    let upstream_store: Value = serde_json::from_str(upstream["store"].as_str().unwrap()).unwrap();
    assert_eq!(upstream_store["cluster-token"]["shared"], true);
    assert_eq!(
        upstream_store["smtp"]["prompts"]["password"]["description"],
        "SMTP relay password"
    );
    let upstream_home = &got["upstream-home"];
    assert_eq!(upstream_home["userName"], "some-user");
    assert_eq!(
        upstream_home["identityPaths"],
        json!(["/home/some-user/.ssh/id_ed25519"])
    );
    let upstream_home_store: Value =
        serde_json::from_str(upstream_home["store"].as_str().unwrap()).unwrap();
    assert_eq!(
        upstream_home_store["passage"]["files"]["identities"]["path"],
        "/home/some-user/.passage/identities"
    );

    run_public_snippet(&p, sops["public"]["text"].as_str().unwrap());
}

/// Runs a public-files activation snippet as NixOS would, in a private mount
/// namespace with a fresh /run, and checks the installed file. Then the
/// target's assertion fails when the file is really missing (here: a /run
/// without it).
fn run_public_snippet(p: &Project, snippet: &str) {
    let script = format!(
        "set -eu\nmount -t tmpfs -o mode=0755 artifacts-test /run\ntest ! -e /run/artifacts/db/ca\n{snippet}\nstat -c '%a %U %G' /run/artifacts/db/ca\ncat /run/artifacts/db/ca\nls -A /run/artifacts/db\n"
    );
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .current_dir(&p.root)
        .stdin(Stdio::null())
        .output()
        .expect("unshare runs");
    assert!(
        output.status.success(),
        "the public-files snippet failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "444 root root\npublic/per-machine/sops-box/db/ca\nca\n",
        "installed with its mode and owner, no temporary file left"
    );
}

/// Runs a Home Manager public-files activation step (`run` is Home
/// Manager's command runner) with `$XDG_RUNTIME_DIR` under the project: the
/// file lands where `%t/…` in the target's assertion points.
fn run_home_public_snippet(p: &Project, snippet: &str) {
    let runtime = p.tmp.join("runtime dir");
    fs::create_dir_all(&runtime).unwrap();
    let script = format!("set -eu\nrun() {{ \"$@\"; }}\n{snippet}");
    let output = Command::new("bash")
        .args(["-c", &script])
        .env("XDG_RUNTIME_DIR", &runtime)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "the Home Manager public-files step failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let installed = runtime.join("artifacts/mail/fingerprint");
    assert_eq!(
        fs::read_to_string(&installed).unwrap(),
        "public/per-user/alice-work/mail/fingerprint\n"
    );
    let mode = fs::metadata(&installed).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o440);
    assert_eq!(
        fs::read_dir(installed.parent().unwrap()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

#[test]
fn missing_files_and_home_manager_mistakes_name_the_fix() {
    let Some(kit) = kit("missing_files_and_home_manager_mistakes_name_the_fix") else {
        return;
    };
    let p = Project::new("missing_files_and_home_manager_mistakes_name_the_fix");
    for (attr, message) in [
        (
            "missing-age",
            "artifacts: `secrets/per-machine/nowhere/wg/private.age` of artifact `wg` is missing; run `artifacts generate wg`",
        ),
        (
            "missing-sops",
            "artifacts: `secrets/per-machine/nowhere.sops.yaml` of artifact `db` is missing; run `artifacts generate db`",
        ),
        (
            "missing-public",
            "artifacts: public file `public/per-machine/nowhere/ca/cert` of artifact `ca` is missing; run `artifacts generate ca`",
        ),
        (
            "home-negative",
            "artifacts: set artifacts.projectRoot (e.g. `./.` in your flake) so the sops files under `secrets/` can be found",
        ),
    ] {
        let output = eval_modules(&kit, &p.root, attr);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(message),
            "{attr}: expected an error containing {message:?}, got {}:\n{stderr}",
            output.status
        );
    }
}

/// A copy of what the repository's flake needs (not `target/`), to be a
/// `path:` input.
fn artifacts_source(dir: &Path) -> PathBuf {
    let source = dir.join("artifacts-src");
    fs::create_dir_all(&source).unwrap();
    for item in [
        "flake.nix",
        "Cargo.toml",
        "Cargo.lock",
        "nix-modules",
        "backends",
    ] {
        let status = Command::new("cp")
            .arg("-r")
            .arg(repo().join(item))
            .arg(&source)
            .status()
            .unwrap();
        assert!(status.success(), "copying {item}");
    }
    source
}

fn nix_eval(cwd: &Path, args: &[&OsStr]) -> Output {
    Command::new(tool("nix", "nix-bin"))
        .args(["--extra-experimental-features", "nix-command flakes"])
        .args(["--option", "substituters", ""])
        .arg("eval")
        .arg("--json")
        .args(args)
        .current_dir(cwd)
        .env("NIX_PATH", "")
        .stdin(Stdio::null())
        .output()
        .expect("nix runs")
}

/// The fixture flake: machine `alpha` with host name `web-alpha`, user
/// `alice@laptop` with user name `alice`, the kit and this repository as
/// `path:` inputs.
const FIXTURE_FLAKE: &str = r#"{
  inputs.nixpkgs.url = "path:KIT/nixpkgs";
  inputs.agenix.url = "path:KIT/agenix";
  inputs.sops-nix.url = "path:KIT/sops-nix";
  inputs.home-manager.url = "path:KIT/home-manager";
  inputs.artifacts.url = "path:SOURCE";
  inputs.artifacts.inputs.nixpkgs.follows = "nixpkgs";

  outputs = { self, nixpkgs, agenix, sops-nix, home-manager, artifacts }: {
    nixosConfigurations.alpha = nixpkgs.lib.nixosSystem {
      system = "x86_64-linux";
      modules = [
        agenix.nixosModules.default
        sops-nix.nixosModules.sops
        artifacts.nixosModules.artifacts
        artifacts.nixosModules.agenix
        artifacts.nixosModules.sops-nix
        {
          boot.loader.grub.enable = false;
          fileSystems."/" = { device = "/dev/sda1"; fsType = "ext4"; };
          system.stateVersion = "24.05";
          networking.hostName = "web-alpha";
          services.openssh.enable = true;
          sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
          artifacts.projectRoot = ./.;
          artifacts.default.backend = "agenix";
          artifacts.config.agenix = { publicHostKey = "HOSTKEY"; publicUserKeys = [ "ADMINKEY" ]; };
          artifacts.store.wg = {
            generator = ./gen-wg.sh;
            files.private = { owner = "systemd-network"; };
            files.public = { secret = false; mode = "0444"; };
          };
          artifacts.store.db = {
            backend = "sops-nix";
            generator = ./gen-db.sh;
            prompts.password.description = "database password";
            files.password = { owner = "postgres"; mode = "0440"; };
          };
        }
      ];
    };
    homeConfigurations."alice@laptop" = home-manager.lib.homeManagerConfiguration {
      pkgs = nixpkgs.legacyPackages.x86_64-linux;
      modules = [
        agenix.homeManagerModules.default
        artifacts.homeModules.default
        artifacts.homeModules.agenix
        {
          home.username = "alice";
          home.homeDirectory = "/home/alice";
          home.stateVersion = "24.05";
          age.identityPaths = [ "/home/alice/.ssh/id_ed25519" ];
          artifacts.projectRoot = ./.;
          artifacts.default.backend = "agenix";
          artifacts.config.agenix.publicUserKeys = [ "ADMINKEY" ];
          artifacts.store.backup = {
            generator = ./gen-backup.sh;
            files.key = { };
            files.pub = { secret = false; };
          };
        }
      ];
    };
  };
}
"#;

/// What evaluating the machine and the user reads: each file's hash and the
/// public values.
const READ_BACK: &str = r#"flake: let
  machine = flake.nixosConfigurations.alpha.config;
  user = flake.homeConfigurations."alice@laptop".config;
  hash = file: builtins.hashFile "sha256" file;
in {
  age = builtins.mapAttrs (_: s: hash s.file) machine.age.secrets;
  sops = builtins.mapAttrs (_: s: { file = hash s.sopsFile; inherit (s) key; }) machine.sops.secrets;
  public = machine.artifacts.store.wg.files.public.value;
  publicInstalled = machine.system.activationScripts.artifacts-public.text;
  homeAge = builtins.mapAttrs (_: s: hash s.file) user.age.secrets;
  homePublic = user.artifacts.store.backup.files.pub.value;
}"#;

fn sha256(path: &Path) -> String {
    let output = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()[..64].to_owned()
}

/// Every file under `dir`, relative to it, `.recipients` bookkeeping excluded.
fn files_under(dir: &Path, prefix: &Path, found: &mut BTreeSet<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, prefix, found);
        } else if path.file_name().unwrap() != ".recipients" {
            found.insert(path.strip_prefix(prefix).unwrap().to_owned());
        }
    }
}

#[test]
fn flake_generate_then_the_machine_reads_exactly_those_files() {
    let Some(kit) = kit("flake_generate_then_the_machine_reads_exactly_those_files") else {
        return;
    };
    let p = Project::new("flake_generate_then_the_machine_reads_exactly_those_files");
    let source = artifacts_source(&p.tmp.parent().unwrap().join("inputs"));
    let host = artifacts_keygen(&p, "host.key");
    let admin = artifacts_keygen(&p, "admin.key");
    p.file(
        "flake.nix",
        &FIXTURE_FLAKE
            .replace("KIT", kit.to_str().unwrap())
            .replace("SOURCE", source.to_str().unwrap())
            .replace("HOSTKEY", &host.public)
            .replace("ADMINKEY", &admin.public),
    );
    p.script(
        "gen-wg.sh",
        "#!/bin/sh\necho \"private of $machine\" > \"$out/private\"\necho \"public of $machine\" > \"$out/public\"\n",
    );
    p.script(
        "gen-db.sh",
        "#!/bin/sh\ncp \"$prompts/password\" \"$out/password\"\n",
    );
    p.script(
        "gen-backup.sh",
        "#!/bin/sh\necho \"key of $username\" > \"$out/key\"\necho \"pub of $username\" > \"$out/pub\"\n",
    );

    // A flake with inputs has a lock file (the CLI does not write one).
    let lock = Command::new(tool("nix", "nix-bin"))
        .args(["--extra-experimental-features", "nix-command flakes"])
        .args(["flake", "lock"])
        .arg(format!("path:{}", p.root.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        lock.status.success(),
        "nix flake lock: {}",
        String::from_utf8_lossy(&lock.stderr)
    );

    // The CLI names targets as the modules do: host name, user name.
    let list = p.run(["list", "--json"]).success().json();
    let mut units: Vec<String> = list["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["targets"][0].as_str().unwrap(),
                a["artifact"].as_str().unwrap()
            )
        })
        .collect();
    units.sort();
    assert_eq!(
        units,
        [
            "home/alice backup",
            "nixos/web-alpha db",
            "nixos/web-alpha wg"
        ]
    );
    let mut generate = p.command(["generate"]);
    generate.env("ARTIFACTS_PROMPT_DB_PASSWORD", "hunter2");
    p.finish(&mut generate).success();

    let mut written = BTreeSet::new();
    files_under(&p.root.join("secrets"), &p.root, &mut written);
    assert_eq!(
        written,
        BTreeSet::from(
            [
                "secrets/per-machine/web-alpha/wg/.generation",
                "secrets/per-machine/web-alpha/wg/private.age",
                "secrets/per-machine/web-alpha.sops.yaml",
                "secrets/per-user/alice/backup/.generation",
                "secrets/per-user/alice/backup/key.age",
            ]
            .map(PathBuf::from)
        )
    );
    let flake = format!("path:{}", p.root.display());
    let output = nix_eval(
        &p.root,
        &[
            OsStr::new("--impure"),
            OsStr::new("--expr"),
            OsStr::new(&format!("({READ_BACK}) (builtins.getFlake \"{flake}\")")),
        ],
    );
    let read = json_of("evaluating the fixture flake", &output);
    let hash = |relative: &str| sha256(&p.root.join(relative));
    assert_eq!(
        read["age"],
        json!({ "wg-private": hash("secrets/per-machine/web-alpha/wg/private.age") })
    );
    assert_eq!(
        read["sops"],
        json!({ "db/password": { "file": hash("secrets/per-machine/web-alpha.sops.yaml"), "key": "db/password" } })
    );
    assert_eq!(
        read["homeAge"],
        json!({ "backup-key": hash("secrets/per-user/alice/backup/key.age") })
    );
    assert_eq!(
        read["public"],
        fs::read_to_string(p.root.join("public/per-machine/web-alpha/wg/public")).unwrap()
    );
    assert_eq!(read["public"], "public of web-alpha\n");
    assert_eq!(read["homePublic"], "pub of alice\n");
    assert!(
        read["publicInstalled"]
            .as_str()
            .unwrap()
            .contains("'/run/artifacts/wg/public'"),
        "{read}"
    );
    p.run(["check"]).success();
}

#[test]
fn nixos_fleet_example_evaluates_with_wg0_dependencies_in_place() {
    let Some(kit) = kit("nixos_fleet_example_evaluates_with_wg0_dependencies_in_place") else {
        return;
    };
    let p = Project::new("nixos_fleet_example_evaluates_with_wg0_dependencies_in_place");
    let source = artifacts_source(&p.tmp.parent().unwrap().join("inputs"));
    let example = p.root.join("nixos-fleet");
    let status = Command::new("cp")
        .arg("-r")
        .arg(repo().join("examples/nixos-fleet"))
        .arg(&p.root)
        .status()
        .unwrap();
    assert!(status.success());
    // What `artifacts generate` would have written (wg cannot run here).
    for peer in ["peer1", "peer2"] {
        let public = example.join(format!("public/per-machine/{peer}/wireguard/public"));
        fs::create_dir_all(public.parent().unwrap()).unwrap();
        fs::write(&public, format!("{peer}-public-key=\n")).unwrap();
        let private = example.join(format!("secrets/per-machine/{peer}/wireguard/private.age"));
        fs::create_dir_all(private.parent().unwrap()).unwrap();
        fs::write(&private, format!("encrypted private key of {peer}\n")).unwrap();
    }
    let apply = r#"machines: builtins.mapAttrs (name: system: let c = system.config; in {
  failed = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
  identityPaths = c.age.identityPaths;
  agePaths = map (s: s.path) (builtins.attrValues c.age.secrets);
  public = c.system.activationScripts.artifacts-public.text;
  asserted = c.systemd.targets.artifacts-wireguard.unitConfig.AssertPathExists;
  bindsTo = c.systemd.services.wireguard-wg0.bindsTo;
  privateKeyFile = c.networking.wireguard.interfaces.wg0.privateKeyFile;
  peerKeys = map (peer: peer.publicKey) c.networking.wireguard.interfaces.wg0.peers;
}) machines"#;
    let mut args: Vec<String> = Vec::new();
    for (input, path) in [
        ("nixpkgs", kit.join("nixpkgs")),
        ("agenix", kit.join("agenix")),
        ("artifacts", source.clone()),
    ] {
        args.push("--override-input".into());
        args.push(input.into());
        args.push(format!("path:{}", path.display()));
    }
    args.push(format!("path:{}#nixosConfigurations", example.display()));
    args.push("--apply".into());
    args.push(apply.into());
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let got = json_of("evaluating examples/nixos-fleet", &nix_eval(&p.root, &args));
    for (peer, other) in [("peer1", "peer2"), ("peer2", "peer1")] {
        let m = &got[peer];
        assert_eq!(m["failed"], json!([]), "{peer}: {m}");
        assert_eq!(m["identityPaths"], json!(["/etc/ssh/ssh_host_ed25519_key"]));
        assert_eq!(m["bindsTo"], json!(["artifacts-wireguard.target"]));
        assert_eq!(m["privateKeyFile"], "/run/artifacts/wireguard/private");
        assert_eq!(m["peerKeys"], json!([format!("{other}-public-key=")]));
        let public = installs(m["public"].as_str().unwrap());
        let mut installed: BTreeSet<String> = public.iter().map(|i| i.1.clone()).collect();
        installed.extend(
            m["agePaths"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_owned()),
        );
        for path in m["asserted"].as_array().unwrap() {
            assert!(
                installed.contains(path.as_str().unwrap()),
                "{peer}: artifacts-wireguard.target asserts {path}, installed: {installed:?}"
            );
        }
        assert_eq!(
            fs::read_to_string(&public[0].0).unwrap(),
            format!("{peer}-public-key=\n")
        );
    }
}
