//! The Nix files: every `.nix` file of the repository parses, and the pure
//! helpers of nix-modules/lib (what the backends' module.nix files turn the
//! artifacts store into) give the expected attrsets on a fixture store. The
//! helpers use only builtins so that `nix-instantiate --eval` checks them
//! without nixpkgs; the modules themselves are evaluated inside real NixOS
//! and Home Manager configurations by ./nixos.rs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::json;

use crate::tools::tool;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn nix_instantiate(args: &[&str]) -> Output {
    Command::new(tool("nix-instantiate", "nix-bin"))
        .args(args)
        .current_dir(repo())
        .env("NIX_PATH", "")
        .stdin(Stdio::null())
        .output()
        .expect("nix-instantiate runs")
}

/// Every `.nix` file under `dir`, skipping build output, `.git`, `.tools`.
fn nix_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy();
        if name.starts_with('.') || name.starts_with("target") {
            continue;
        }
        if path.is_dir() {
            nix_files(&path, found);
        } else if name.ends_with(".nix") {
            found.push(path);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    let mut files = Vec::new();
    nix_files(&repo(), &mut files);
    for expected in [
        "backends/agenix/module.nix",
        "backends/sops-nix/module.nix",
        "backends/dummy/module.nix",
        "nix-modules/lib/agenix.nix",
        "nix-modules/lib/sops-nix.nix",
        "nix-modules/lib/dummy.nix",
        "nix-modules/lib/public.nix",
        "backends/agenix/home-manager.nix",
        "backends/sops-nix/home-manager.nix",
        "backends/openbao/home-manager.nix",
        "nix-modules/lib/openbao.nix",
        "nix-modules/openbao-options.nix",
    ] {
        assert!(
            files.contains(&repo().join(expected)),
            "{expected} was not found among {files:?}"
        );
    }
    let mut failures = Vec::new();
    for file in &files {
        let output = nix_instantiate(&["--parse", file.to_str().unwrap()]);
        if !output.status.success() {
            failures.push(format!(
                "{}:\n{}",
                file.strip_prefix(repo()).unwrap().display(),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "nix-instantiate --parse failed on:\n{}",
        failures.join("\n")
    );
}

/// A store with an artifact of every kind the helpers distinguish.
const FIXTURE: &str = r#"
let
  lib = ./nix-modules/lib;
  store = {
    # agenix, by the target default below; one public file; a name with a space.
    "api token" = {
      files.token = { owner = "nginx"; group = "nginx"; mode = "0440"; };
      files.cert = { secret = false; };
    };
    # shared, declared path, null owner (= default)
    psk = { shared = true; files.key = { path = "/run/secrets/psk"; owner = null; }; };
    db = { backend = "sops-nix"; files.password = { owner = "postgres"; }; };
    legacy = { serialization = "sops"; files.t = { }; };
    boot = { backend = "dummy"; generator = "/nix/store/0-gen"; files.k = { }; extra = 1; };
    "x.y z" = { backend = "dummy"; generator = "/nix/store/0-gen"; files.k = { }; dependencies = [ "boot" ]; };
    shared-sops = { backend = "sops-nix"; shared = true; files.v = { mode = "0444"; }; };
  };
  args = { inherit store; name = "web1"; defaultBackend = "agenix"; projectRoot = "/repo"; };
  dummy = import (lib + "/dummy.nix");
in
{
  agenix = import (lib + "/agenix.nix") (args // { config.agenix.storeDir = "vault"; });
  agenixHome = import (lib + "/agenix.nix") (args // { kind = "homemanager"; name = "alice"; store = { k = { backend = "agenix"; files.f = { }; }; }; });
  # sops-nix falls back to config.agenix, as the CLI does.
  sops = import (lib + "/sops-nix.nix") (args // { config.agenix.storeDir = "vault"; });
  services = dummy.services { inherit store; machine = "web1"; defaultBackend = "agenix";
    artifacts = "/nix/store/1-artifacts/bin/artifacts"; manifest = "/nix/store/2-m.json";
    before = [ "early.service" ]; };
  manifest = dummy.manifest { inherit store; machine = "web1"; };
  escape = dummy.unitEscape ".a b%c\\d";
  execArg = dummy.execArg "it's 50% \"$x\"\\";
}
"#;

fn eval(expression: &str) -> Output {
    nix_instantiate(&["--eval", "--strict", "--json", "--expr", expression])
}

/// The files the fixture's entries point at, as the CLI would have written them.
const FIXTURE_FILES: [&str; 5] = [
    "vault/per-machine/web1/api token/token.age",
    "vault/shared/psk/key.age",
    "secrets/per-user/alice/k/f.age",
    "vault/per-machine/web1.sops.yaml",
    "vault/shared/shared-sops.sops.yaml",
];

#[test]
fn nix_lib_helpers_on_a_fixture_store() {
    // The helpers refuse to point at a file that is not there (see
    // nix_lib_helpers_reject_what_cannot_work), so the project exists.
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nix-lib-fixture-root");
    let _ = fs::remove_dir_all(&root);
    for file in FIXTURE_FILES {
        fs::create_dir_all(root.join(file).parent().unwrap()).unwrap();
        fs::write(root.join(file), file).unwrap();
    }
    let root = root.to_str().unwrap();
    let output = eval(&FIXTURE.replace("\"/repo\"", &format!("\"{root}\"")));
    assert!(
        output.status.success(),
        "nix-instantiate --eval failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let expected = json!({
        "agenix": {
            "api token-token": {
                "file": "/repo/vault/per-machine/web1/api token/token.age",
                "path": "/run/artifacts/api token/token",
                "owner": "nginx", "group": "nginx", "mode": "0440"
            },
            "psk-key": {
                "file": "/repo/vault/shared/psk/key.age",
                "path": "/run/secrets/psk",
                "owner": "root", "group": "root", "mode": "0400"
            }
        },
        "agenixHome": {
            "k-f": {
                "file": "/repo/secrets/per-user/alice/k/f.age",
                "path": "$XDG_RUNTIME_DIR/artifacts/k/f",
                "mode": "0400"
            }
        },
        "sops": {
            "db/password": {
                "sopsFile": "/repo/vault/per-machine/web1.sops.yaml",
                "format": "yaml", "key": "db/password",
                "path": "/run/artifacts/db/password",
                "owner": "postgres", "group": "root", "mode": "0400"
            },
            "legacy/t": {
                "sopsFile": "/repo/vault/per-machine/web1.sops.yaml",
                "format": "yaml", "key": "legacy/t",
                "path": "/run/artifacts/legacy/t",
                "owner": "root", "group": "root", "mode": "0400"
            },
            "shared-sops/v": {
                "sopsFile": "/repo/vault/shared/shared-sops.sops.yaml",
                "format": "yaml", "key": "shared-sops/v",
                "path": "/run/artifacts/shared-sops/v",
                "owner": "root", "group": "root", "mode": "0444"
            }
        },
        "services": {
            "artifacts-boot": {
                "description": "Generate the artifact boot (dummy backend)",
                "wantedBy": ["sysinit.target"],
                "before": ["sysinit.target", "early.service"],
                "requires": [],
                "after": ["local-fs.target"],
                "unitConfig": { "DefaultDependencies": false },
                "serviceConfig": {
                    "Type": "oneshot", "RemainAfterExit": true,
                    "ExecStart": "\"/nix/store/1-artifacts/bin/artifacts\" \"--manifest\" \"/nix/store/2-m.json\" \"activate\" \"--target\" \"nixos/web1\" \"boot\""
                }
            },
            "artifacts-x.y\\x20z": {
                "description": "Generate the artifact x.y z (dummy backend)",
                "wantedBy": ["sysinit.target"],
                "before": ["sysinit.target", "early.service"],
                "requires": ["artifacts-boot.service"],
                "after": ["local-fs.target", "artifacts-boot.service"],
                "unitConfig": { "DefaultDependencies": false },
                "serviceConfig": {
                    "Type": "oneshot", "RemainAfterExit": true,
                    "ExecStart": "\"/nix/store/1-artifacts/bin/artifacts\" \"--manifest\" \"/nix/store/2-m.json\" \"activate\" \"--target\" \"nixos/web1\" \"x.y z\""
                }
            }
        },
        "manifest": {
            "nixos": [{
                "machine": "web1",
                "config": {},
                "artifacts": {
                    "boot": { "backend": "dummy", "generator": "/nix/store/0-gen", "files": { "k": {} } },
                    "x.y z": {
                        "backend": "dummy", "generator": "/nix/store/0-gen",
                        "files": { "k": {} }, "dependencies": ["boot"]
                    }
                }
            }]
        },
        "escape": "\\x2ea\\x20b\\x25c\\x5cd",
        "execArg": "\"it's 50%% \\\"$$x\\\"\\\\\""
    });
    let expected: serde_json::Value = serde_json::from_str(
        &expected
            .to_string()
            .replace("\"/repo/", &format!("\"{root}/")),
    )
    .unwrap();
    if got != expected {
        panic!(
            "nix-modules/lib gave\n{}\nexpected\n{}",
            serde_json::to_string_pretty(&got).unwrap(),
            serde_json::to_string_pretty(&expected).unwrap()
        );
    }
}

#[test]
fn nix_lib_helpers_reject_what_cannot_work() {
    let cases = [
        (
            // `a-b` + `c` and `a` + `b-c` would both be age.secrets."a-b-c".
            r#"import ./nix-modules/lib/agenix.nix { name = "m"; projectRoot = "/r";
                store = { a-b = { backend = "agenix"; files.c = { }; }; a = { backend = "agenix"; files.b-c = { }; }; }; }"#,
            "age.secrets entry `a-b-c` would be defined twice",
        ),
        (
            r#"(import ./nix-modules/lib/dummy.nix).manifest { machine = "m";
                store = { d = { backend = "dummy"; dependencies = [ "s" ]; }; s = { backend = "agenix"; }; }; }"#,
            "dummy artifact `d` depends on `s`, which is not generated at activation",
        ),
        (
            r#"(import ./nix-modules/lib/files.nix).publicValue { projectRoot = ./.; kind = "nixos";
                target = "m"; artifact = "wg"; file = "pub"; secret = false; }"#,
            "public file `public/per-machine/m/wg/pub` of artifact `wg` is missing; run `artifacts generate wg`",
        ),
        (
            // A secret file that `artifacts generate` has not written yet.
            r#"import ./nix-modules/lib/agenix.nix { name = "m"; projectRoot = ./.;
                store = { wg = { backend = "agenix"; files.key = { }; }; }; }"#,
            "`secrets/per-machine/m/wg/key.age` of artifact `wg` is missing; run `artifacts generate wg`",
        ),
        (
            r#"import ./nix-modules/lib/sops-nix.nix { name = "m"; kind = "homemanager"; projectRoot = ./.;
                store = { db = { backend = "sops-nix"; files.pw = { }; }; }; }"#,
            "`secrets/per-user/m.sops.yaml` of artifact `db` is missing; run `artifacts generate db`",
        ),
        (
            r#"import ./nix-modules/lib/sops-nix.nix { name = "t"; kind = "tanka"; projectRoot = "/r";
                store = { a = { backend = "sops"; files.f = { }; }; }; }"#,
            "target kind `tanka` is not `nixos` or `homemanager`",
        ),
    ];
    for (expression, message) in cases {
        let output = eval(expression);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(message),
            "expected an evaluation error containing {message:?} from\n{expression}\nstatus {}, stderr:\n{stderr}",
            output.status
        );
    }
}

#[test]
fn module_helpers_for_paths_public_files_and_targets() {
    // A public file as `artifacts generate` writes it, read back as `files.<f>.value`.
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nix-public-root");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("public/per-machine/peer1/wireguard")).unwrap();
    fs::write(
        root.join("public/per-machine/peer1/wireguard/public"),
        "pubkey-of-peer1\n",
    )
    .unwrap();
    let expression = format!(
        r#"let
  files = import ./nix-modules/lib/files.nix;
  targets = import ./nix-modules/lib/targets.nix;
in {{
  defaults = [ (files.defaultPath "nixos" "a" "f") (files.defaultPath "homemanager" "a" "f") ];
  sharedPublic = files.publicPath {{ kind = "nixos"; target = "m"; artifact = "ca"; file = "cert"; shared = true; }};
  value = files.publicValue {{ projectRoot = {root}; kind = "nixos"; target = "peer1";
    artifact = "wireguard"; file = "public"; secret = false; }};
  # Public files to install: not secret ones, not a dummy artifact's.
  public = map (entry: entry // {{ source = builtins.readFile entry.source; }}) (import ./nix-modules/lib/public.nix {{
    projectRoot = {root}; name = "peer1"; defaultBackend = "agenix";
    store = {{
      wireguard.files = {{ private = {{ }}; public = {{ secret = false; mode = "0444"; owner = null; }}; }};
      vm = {{ backend = "dummy"; files.pub.secret = false; }};
    }};
  }});
  inStore = files.pathsInStore {{ a.files.x.path = "/nix/store/abc-x"; a.files.y = {{ }}; b.files.z.path = "/run/z"; }};
  nixosTargets = targets {{ defaultBackend = "dummy";
    store = {{ vm-key = {{ files.key = {{ }}; }}; cert = {{ backend = "agenix"; files.pem.path = "/etc/ssl/x.pem"; }}; }}; }};
  homeTargets = targets {{ kind = "homemanager"; store = {{ tok = {{ backend = "agenix"; files.t = {{ }}; }}; }}; }};
}}"#,
        root = root.display()
    );
    let output = eval(&expression);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        got,
        json!({
            "defaults": ["/run/artifacts/a/f", "$XDG_RUNTIME_DIR/artifacts/a/f"],
            "sharedPublic": "public/shared/ca/cert",
            "value": "pubkey-of-peer1\n",
            "public": [{
                "artifact": "wireguard", "file": "public", "path": "/run/artifacts/wireguard/public",
                "owner": "root", "group": "root", "mode": "0444", "source": "pubkey-of-peer1\n"
            }],
            "inStore": ["artifacts.store.a.files.x.path = /nix/store/abc-x"],
            "nixosTargets": {
                "artifacts-cert": {
                    "after": [], "requires": [], "description": "Files of artifact cert in place",
                    "unitConfig": { "AssertPathExists": ["/etc/ssl/x.pem"] }, "wantedBy": ["multi-user.target"]
                },
                "artifacts-vm-key": {
                    "after": ["artifacts-vm-key.service"], "requires": ["artifacts-vm-key.service"],
                    "description": "Files of artifact vm-key in place",
                    "unitConfig": { "AssertPathExists": ["/run/artifacts/vm-key/key"] }, "wantedBy": ["multi-user.target"]
                }
            },
            "homeTargets": {
                "artifacts-tok": {
                    "after": [], "requires": [], "description": "Files of artifact tok in place",
                    "unitConfig": { "AssertPathExists": ["%t/artifacts/tok/t"] }, "wantedBy": ["default.target"]
                }
            }
        })
    );
}

#[test]
fn dummy_manifest_from_nix_drives_activate_and_mk_backend_toml_loads() {
    let p = crate::util::Project::new("dummy_manifest_from_nix_drives_activate");
    let generator = p.script("gen.sh", "#!/bin/sh\necho booted > \"$out/key\"\n");
    let expression = format!(
        r#"builtins.toJSON ((import ./nix-modules/lib/dummy.nix).manifest {{ machine = "vm";
  store = {{ vm-key = {{ backend = "dummy"; generator = "{}";
    files.key = {{ path = "/run/vm/key"; owner = "root"; group = "root"; mode = "0400"; secret = true;
      value = throw "value must not be forced"; }}; }}; }}; }})"#,
        generator.display()
    );
    let output = nix_instantiate(&["--eval", "--strict", "--expr", &expression]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: String = serde_json::from_slice(&output.stdout).unwrap();
    p.file("dummy.json", &json);
    let root = p.root.join("sysroot");
    p.run([
        "--manifest",
        "dummy.json",
        "activate",
        "--target",
        "nixos/vm",
        "vm-key",
        "--root",
        root.to_str().unwrap(),
    ])
    .success();
    assert_eq!(
        fs::read_to_string(root.join("run/vm/key")).unwrap(),
        "booted\n"
    );

    // lib.mkBackend's backend.toml, with upstream's argument names, is read by the CLI.
    let output = nix_instantiate(&[
        "--eval",
        "--strict",
        "--expr",
        r#"import ./nix-modules/lib/backend-toml.nix { name = "vault"; nixos_check = ./x; nixos_serialize = ./y;
             shared_check = ./x; shared_serialize = ./y; shared_deserialize = ./z; home_enabled = false; }"#,
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let toml: String = serde_json::from_slice(&output.stdout).unwrap();
    let dir = p.root.join("vault");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("backend.toml"), &toml).unwrap();
    for script in [
        "nixos_check",
        "nixos_serialize",
        "shared_check",
        "shared_serialize",
        "shared_deserialize",
    ] {
        p.script(&format!("vault/{script}"), "#!/bin/sh\nexit 0\n");
    }
    let backends = p
        .run(["backends", "--json", "--backends", "vault/backend.toml"])
        .success()
        .json();
    let vault = backends["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "vault")
        .unwrap()
        .clone();
    assert_eq!(
        vault["capabilities"]["targets"],
        json!(["nixos"]),
        "{vault}"
    );
    assert_eq!(vault["capabilities"]["shared"], true);
}
