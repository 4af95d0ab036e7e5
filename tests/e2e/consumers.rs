//! What we write is installed by the real consumers on a (simulated) host:
//! agenix's activation snippets and sops-nix's `sops-install-secrets`, both
//! taken from evaluating the real modules (the NixOS evaluation kit) with
//! ours, run as root inside a private mount namespace (`unshare -m`) whose
//! `/run`, `/etc/ssh`, `/etc/passwd` and `/etc/group` are the test's own.
//! The installed bytes, modes and owners must equal `artifacts show` and the
//! declarations. The kit and the oracle tools are found as tools.rs says
//! (with `CI` set nothing skips).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::tools::{nixos_eval_kit, ok, oracle, skip_outside_ci, sops_bin, tool};
use crate::util::Project;

/// Whether we can act as a host's activation does (mount namespaces, ramfs,
/// chown): only as root.
fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    skip_outside_ci(
        test,
        "activation mounts a ramfs and chowns files, as on a host: run the tests as root",
    );
    false
}

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .canonicalize()
        .unwrap()
}

/// Evaluates each machine of the project's `artifacts.json` with the kit's
/// NixOS, the consumer's module (`agenix` or `sops-nix`) and ours, in one
/// `nix-instantiate` run: per machine the failed assertions, the consumer's
/// secrets and what the consumer runs at activation (agenix's snippets, the
/// sops-nix manifest). The project root is a Nix path, so the encrypted files
/// are copied into the store as on a real deployment.
const EVAL: &str = r#"
{ kit, repo, root, consumer }:
let
  fixture = builtins.fromJSON (builtins.readFile (root + "/artifacts.json"));
  evalMachine = entry: consumerModules:
    (import (kit + "/nixpkgs/nixos/lib/eval-config.nix") {
      system = "x86_64-linux";
      modules = consumerModules ++ [
        (repo + "/nix-modules/nixos.nix")
        {
          boot.loader.grub.enable = false;
          fileSystems."/" = { device = "/dev/sda1"; fsType = "ext4"; };
          system.stateVersion = "24.05";
          services.openssh.enable = true;
          # The CLI's machine name (see issue 10 item 2).
          networking.hostName = entry.machine;
          artifacts.projectRoot = /. + root;
          artifacts.config = entry.config;
          artifacts.store = builtins.mapAttrs (_: a: builtins.removeAttrs a [ "generator" ]) entry.artifacts;
        }
      ];
    }).config;
  failed = c: map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
  agenix = entry:
    let
      c = evalMachine entry [
        (kit + "/agenix/modules/age.nix")
        (repo + "/backends/agenix/module.nix")
        # The host's age: the module's own option for it.
        { age.ageBin = "age"; }
      ];
    in {
      failed = failed c;
      secrets = builtins.mapAttrs (_: s: { inherit (s) path owner group mode; }) c.age.secrets;
      snippets = map (name: { inherit name; inherit (c.system.activationScripts.${name}) text; })
        [ "agenixNewGeneration" "agenixInstall" "agenixChown" ];
    };
  sops = entry:
    let
      c = evalMachine entry [
        (kit + "/sops-nix/modules/sops")
        (repo + "/backends/sops-nix/module.nix")
        # Only the age path: the RSA host key would otherwise go to GnuPG.
        { sops.gnupg.sshKeyPaths = [ ]; }
      ];
    in {
      failed = failed c;
      secrets = builtins.mapAttrs (_: s: { inherit (s) path owner group mode key; }) c.sops.secrets;
      manifest = c.system.build.sops-nix-manifest.text;
    };
in
builtins.listToAttrs (map (entry: {
  name = entry.machine;
  value = (if consumer == "agenix" then agenix else sops) entry;
}) fixture.nixos)
"#;

fn evaluate(p: &Project, kit: &Path, consumer: &str) -> Value {
    let expr = p.file("eval.nix", EVAL);
    // Read-write: evaluating `projectRoot + "/secrets/…"` copies the files into
    // the store, which the consumers then read.
    let out = Command::new(tool("nix-instantiate", "nix-bin"))
        .args(["--eval", "--strict", "--json", "--read-write-mode"])
        .arg("--argstr")
        .arg("kit")
        .arg(kit)
        .arg("--argstr")
        .arg("repo")
        .arg(repo())
        .arg("--argstr")
        .arg("root")
        .arg(&p.root)
        .args(["--argstr", "consumer", consumer])
        .args(["--option", "substituters", ""])
        .arg(&expr)
        .env("NIX_PATH", "")
        .stdin(Stdio::null())
        .output()
        .expect("nix-instantiate runs");
    serde_json::from_slice(&ok("nix-instantiate (the NixOS evaluation)", out)).unwrap()
}

/// A simulated host: its ssh host keys (made by ssh-keygen), an empty `/run`,
/// and `/etc/passwd`/`/etc/group` with NixOS's `keys` group and a `postgres`
/// user added to this machine's.
struct Host {
    dir: PathBuf,
}

impl Host {
    fn new(p: &Project, name: &str) -> Host {
        let dir = p.root.parent().unwrap().join("hosts").join(name);
        fs::create_dir_all(dir.join("etc/ssh")).unwrap();
        fs::create_dir_all(dir.join("run")).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        for (kind, bits) in [("ed25519", None), ("rsa", Some("3072"))] {
            let key = dir.join(format!("etc/ssh/ssh_host_{kind}_key"));
            let mut command = Command::new(tool("ssh-keygen", "openssh-client"));
            command.args(["-q", "-t", kind, "-N", "", "-C", &format!("root@{name}")]);
            if let Some(bits) = bits {
                command.args(["-b", bits]);
            }
            ok(
                "ssh-keygen",
                command
                    .arg("-f")
                    .arg(&key)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap(),
            );
        }
        let passwd = fs::read_to_string("/etc/passwd").unwrap()
            + "postgres:x:71:71:PostgreSQL server user:/var/lib/postgresql:/bin/sh\n";
        let group = fs::read_to_string("/etc/group").unwrap() + "keys:x:96:\npostgres:x:71:\n";
        fs::write(dir.join("etc/passwd"), passwd).unwrap();
        fs::write(dir.join("etc/group"), group).unwrap();
        Host { dir }
    }

    fn key(&self, kind: &str) -> PathBuf {
        self.dir.join(format!("etc/ssh/ssh_host_{kind}_key"))
    }

    fn public(&self, kind: &str) -> String {
        let text = fs::read_to_string(self.key(kind).with_extension("pub")).unwrap();
        text.trim().to_owned()
    }

    /// Runs `activation` (bash) on this host, then prints for each of
    /// `paths` a line `PATH<TAB>MODE USER:GROUP<TAB>LINK<TAB>HEX` read inside
    /// the namespace (the ramfs mounts vanish with it). Fails on a non-zero
    /// exit; returns the activation's output and the inspection.
    fn activate(&self, activation: &str, env: &[(&str, &OsStr)], paths: &[&str]) -> Installed {
        let script = self.dir.join("activate.sh");
        fs::write(&script, activation).unwrap();
        let outer = r#"set -eu
host="$1"; shift
mount --bind "$host/run" /run
mount --bind "$host/etc/ssh" /etc/ssh
mount --bind "$host/etc/passwd" /etc/passwd
mount --bind "$host/etc/group" /etc/group
bash "$host/activate.sh" >&2
echo "=== installed"
for p in "$@"; do
  printf '%s\t%s\t%s\t%s\n' "$p" "$(stat -L -c '%a %U:%G' "$p")" "$(readlink "$p" || true)" \
    "$(od -An -v -tx1 "$p" | tr -d ' \n')"
done
"#;
        let mut command = Command::new(tool("unshare", "util-linux"));
        command
            .args([
                "--mount",
                "--propagation",
                "private",
                "bash",
                "-c",
                outer,
                "activate",
            ])
            .arg(&self.dir)
            .args(paths)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.join("run"))
            .stdin(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let out = command.output().expect("unshare runs");
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        let stdout =
            String::from_utf8_lossy(&ok("the activation (as root, unshare -m)", out)).into_owned();
        let mut files = Vec::new();
        for line in stdout
            .split_once("=== installed\n")
            .map(|(_, rest)| rest)
            .unwrap_or_default()
            .lines()
        {
            let fields: Vec<&str> = line.split('\t').collect();
            let [path, meta, link, hex] = fields[..] else {
                panic!("bad inspection line {line:?}\n{log}");
            };
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            files.push(InstalledFile {
                path: path.to_owned(),
                meta: meta.to_owned(),
                link: link.to_owned(),
                bytes,
            });
        }
        Installed { log, files }
    }
}

struct Installed {
    log: String,
    files: Vec<InstalledFile>,
}

#[derive(Debug)]
struct InstalledFile {
    path: String,
    /// `MODE USER:GROUP` of the target, e.g. `440 postgres:postgres`.
    meta: String,
    /// Where the path links to (empty when it is not a symlink).
    link: String,
    bytes: Vec<u8>,
}

/// `artifacts show ARTIFACT --file FILE -i KEY --target MACHINE`, as bytes.
fn show(p: &Project, machine: &str, artifact: &str, file: &str, key: &Path) -> Vec<u8> {
    let mut command = p.command([
        OsStr::new("show"),
        OsStr::new(artifact),
        OsStr::new("--file"),
        OsStr::new(file),
        OsStr::new("-i"),
        key.as_os_str(),
        OsStr::new("--target"),
        OsStr::new(machine),
    ]);
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "show {artifact}/{file} on {machine}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// NixOS runs each snippet under an ERR trap that records the failure and
/// goes on (nixos/modules/system/activation/activation-script.nix); so do we,
/// and the exit status says whether any command failed.
fn nixos_activation(snippets: &[(String, String)]) -> String {
    let mut script =
        String::from("_status=0\ntrap \"_status=1 _localstatus=\\$?\" ERR\numask 0022\n");
    for (name, text) in snippets {
        script.push_str(&format!(
            "#### Activation script snippet {name}:\n_localstatus=0\n{text}\n\
             if (( _localstatus > 0 )); then\n  printf \"Activation script snippet '%s' failed (%s)\\n\" \"{name}\" \"$_localstatus\"\nfi\n"
        ));
    }
    script.push_str("exit $_status\n");
    script
}

/// The generators: the prompt's answer, a binary file, and a public note.
fn generators(p: &Project) {
    p.generator(
        "db.sh",
        r#"cp "$prompts/password" "$out/password"
printf '\000\377binary\n' > "$out/blob"
echo "public note" > "$out/note""#,
    );
}

/// The artifact `db` of every machine: a secret for postgres (0440), a
/// binary secret at a path of its own (default owner and mode), a public file.
fn db_artifact(backend: &str) -> Value {
    json!({
        "backend": backend,
        "generator": "generators/db.sh",
        "prompts": { "password": { "type": "hidden" } },
        "files": {
            "password": { "owner": "postgres", "group": "postgres", "mode": "0440" },
            "blob": { "path": "/run/keys/db-blob" },
            "note": { "secret": false }
        }
    })
}

/// The artifact `psk`, shared by every machine declaring it: one file,
/// encrypted to all their keys.
fn psk_artifact(backend: &str) -> Value {
    json!({
        "backend": backend,
        "shared": true,
        "generator": "generators/psk.sh",
        "files": { "psk": { "path": "/run/keys/psk", "mode": "0400" } }
    })
}

fn generate(p: &Project) {
    p.generator("psk.sh", r#"printf 'shared-psk\n' > "$out/psk""#);
    let mut command = p.command(["generate"]);
    command.env("ARTIFACTS_PROMPT_DB_PASSWORD", "pw\nwith a second line");
    p.finish(&mut command).success();
    p.run(["check"]).success();
}

#[test]
fn agenix_activation_installs_what_we_wrote_for_ed25519_and_rsa_hosts() {
    let test = "agenix_activation_installs_what_we_wrote_for_ed25519_and_rsa_hosts";
    let Some(kit) = nixos_eval_kit(test) else {
        return;
    };
    if !root_or_skip(test) {
        return;
    }
    tool("age", "age");
    let p = Project::new(test);
    let hosts = [
        ("edhost", Host::new(&p, "edhost"), "ed25519"),
        ("rsahost", Host::new(&p, "rsahost"), "rsa"),
    ];
    let nixos: Vec<Value> = hosts
        .iter()
        .map(|(name, host, kind)| {
            json!({
                "machine": name,
                "config": { "agenix": { "publicHostKey": host.public(kind) } },
                "artifacts": { "db": db_artifact("agenix"), "psk": psk_artifact("agenix") }
            })
        })
        .collect();
    p.file(
        "artifacts.json",
        &serde_json::to_string_pretty(&json!({ "nixos": nixos })).unwrap(),
    );
    generators(&p);
    generate(&p);
    let evaluated = evaluate(&p, &kit, "agenix");

    for (name, host, kind) in &hosts {
        let machine = &evaluated[name];
        assert_eq!(machine["failed"], json!([]), "{name}");
        let secrets = machine["secrets"].as_object().unwrap();
        let mut names: Vec<&String> = secrets.keys().collect();
        names.sort();
        assert_eq!(
            names,
            ["db-blob", "db-password", "psk-psk"],
            "{name}: the public note gets no entry"
        );
        let snippets: Vec<(String, String)> = machine["snippets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_owned(),
                    s["text"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert!(snippets[1].1.contains("--decrypt"), "{:?}", snippets[1]);
        let installed = host.activate(
            &nixos_activation(&snippets),
            &[],
            &[
                "/run/artifacts/db/password",
                "/run/keys/db-blob",
                "/run/keys/psk",
            ],
        );
        assert!(
            !installed.log.contains("WARNING") && !installed.log.contains("failed"),
            "{name}: {}",
            installed.log
        );
        let [password, blob, psk] = &installed.files[..] else {
            panic!("{name}: {:?}\n{}", installed.files, installed.log);
        };
        assert_eq!(password.path, "/run/artifacts/db/password");
        assert_eq!(password.link, "/run/agenix/db-password");
        assert_eq!(password.meta, "440 postgres:postgres", "{name}");
        assert_eq!(blob.link, "/run/agenix/db-blob");
        assert_eq!(blob.meta, "400 root:root", "{name}");
        let key = host.key(kind);
        assert_eq!(
            password.bytes,
            show(&p, name, "db", "password", &key),
            "{name}"
        );
        assert_eq!(password.bytes, b"pw\nwith a second line");
        assert_eq!(blob.bytes, show(&p, name, "db", "blob", &key), "{name}");
        assert_eq!(blob.bytes, b"\0\xffbinary\n");
        assert_eq!(psk.link, "/run/agenix/psk-psk");
        assert_eq!(psk.meta, "400 root:root");
        assert_eq!(psk.bytes, show(&p, name, "psk", "psk", &key), "{name}");
        assert_eq!(psk.bytes, b"shared-psk\n");
    }
    // One shared file, encrypted to both hosts' keys (ed25519 and RSA).
    assert!(p.root.join("secrets/shared/psk/psk.age").is_file());
}

#[test]
fn sops_install_secrets_installs_what_we_wrote_with_the_ssh_ed25519_host_key() {
    let test = "sops_install_secrets_installs_what_we_wrote_with_the_ssh_ed25519_host_key";
    let Some(kit) = nixos_eval_kit(test) else {
        return;
    };
    if !root_or_skip(test) {
        return;
    }
    let Some(install) = oracle("sops-install-secrets", test) else {
        return;
    };
    let p = Project::new(test);
    let host = Host::new(&p, "sopshost");
    let admin = crate::tools::age_keygen(&p, "admin.key");
    let mut artifact = db_artifact("sops-nix");
    // SOPS values are text.
    artifact["files"].as_object_mut().unwrap().remove("blob");
    artifact["files"]["token"] = json!({ "path": "/run/keys/db-token", "mode": "0400" });
    p.file(
        "artifacts.json",
        &serde_json::to_string_pretty(&json!({ "nixos": [{
            "machine": "sopshost",
            "config": { "sops-nix": {
                "publicHostKey": host.public("ed25519"),
                "publicUserKeys": [admin.public]
            } },
            "artifacts": { "db": artifact, "psk": psk_artifact("sops-nix") }
        }] }))
        .unwrap(),
    );
    p.generator(
        "db.sh",
        r#"cp "$prompts/password" "$out/password"
printf 'token\n' > "$out/token"
echo "public note" > "$out/note""#,
    );
    generate(&p);
    let evaluated = evaluate(&p, &kit, "sops-nix");
    let machine = &evaluated["sopshost"];
    assert_eq!(machine["failed"], json!([]));
    let password = &machine["secrets"]["db/password"];
    assert_eq!(password["key"], "db/password");
    assert_eq!(password["owner"], "postgres");
    let manifest: Value = serde_json::from_str(machine["manifest"].as_str().unwrap()).unwrap();
    assert_eq!(
        manifest["ageSshKeyPaths"],
        json!(["/etc/ssh/ssh_host_ed25519_key"])
    );
    let secrets = manifest["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 3, "{manifest:#}");
    assert!(
        secrets
            .iter()
            .any(|s| s["sopsFile"].as_str().unwrap().ends_with("-psk.sops.yaml")),
        "the shared artifact comes from its own file: {manifest:#}"
    );
    let manifest_path = host.dir.join("manifest.json");
    fs::write(&manifest_path, machine["manifest"].as_str().unwrap()).unwrap();
    // The manifest's own check first: every key exists in its sops file.
    ok(
        "sops-install-secrets -check-mode=sopsfile",
        Command::new(&install)
            .arg("-check-mode=sopsfile")
            .arg(&manifest_path)
            .env_clear()
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    );

    let activation = format!(
        "exec {} {}\n",
        shell_quote(&install),
        shell_quote(&manifest_path)
    );
    let sops = sops_bin();
    let installed = host.activate(
        &activation,
        &[("SOPS_BIN", sops.as_os_str())],
        &[
            "/run/artifacts/db/password",
            "/run/keys/db-token",
            "/run/keys/psk",
        ],
    );
    let [password, token, psk] = &installed.files[..] else {
        panic!("{:?}\n{}", installed.files, installed.log);
    };
    assert_eq!(
        password.link, "/run/secrets/db/password",
        "{}",
        installed.log
    );
    assert_eq!(password.meta, "440 postgres:postgres");
    assert_eq!(token.link, "/run/secrets/db/token");
    assert_eq!(token.meta, "400 root:root");
    let key = host.key("ed25519");
    assert_eq!(password.bytes, show(&p, "sopshost", "db", "password", &key));
    assert_eq!(password.bytes, b"pw\nwith a second line");
    assert_eq!(token.bytes, show(&p, "sopshost", "db", "token", &key));
    assert_eq!(token.bytes, b"token\n");
    assert_eq!(psk.link, "/run/secrets/psk/psk");
    assert_eq!(psk.meta, "400 root:root");
    assert_eq!(psk.bytes, show(&p, "sopshost", "psk", "psk", &key));
    assert_eq!(psk.bytes, b"shared-psk\n");
}

/// Single-quotes a path for bash.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
