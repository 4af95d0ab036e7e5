//! Declarations from a flake, evaluated by the real nix (Debian nix-bin 2.8, as
//! root, no daemon). Fixture flakes have no inputs: their configurations are
//! attribute sets shaped like evaluated systems (`options.artifacts`,
//! `config.artifacts.{store, config, default}`), their generators real store
//! paths: a file of the flake, and a derivation built with `/bin/sh`.

use std::process::Command;

use crate::util::Project;

fn require_nix() {
    let found = Command::new("nix")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "nix is not installed: install Debian's nix-bin (scripts/ensure-tools does)"
    );
}

fn system() -> String {
    format!("{}-linux", std::env::consts::ARCH)
}

/// A flake in a git repository, with `gen.sh` tracked and `gen-home.sh` not.
fn flake_project(name: &str) -> Project {
    require_nix();
    let p = Project::new(name);
    p.recording_backend();
    p.script(
        "gen.sh",
        "#!/bin/sh\necho \"from a file, for $machine\" > \"$out/token\"\n",
    );
    p.script(
        "gen-home.sh",
        "#!/bin/sh\necho \"untracked, for $username\" > \"$out/key\"\n",
    );
    p.file(
        "flake.nix",
        &r#"{
  outputs = { self }: let
    built = derivation {
      name = "built-generator"; system = "SYSTEM"; builder = "/bin/sh";
      args = [ "-c" "printf '#!/bin/sh\\necho built by nix > $out/token\\n' > $out && /bin/chmod +x $out" ];
    };
  in {
    nixosConfigurations.web1 = {
      options.artifacts = { };
      config.artifacts = {
        default.backend = "rec";
        config."rec".note = "web1's config";
        store.api = { generator = ./gen.sh; files.token = { path = "/run/secrets/api"; owner = "nginx"; group = "nginx"; mode = "0440"; secret = true; }; };
        store.built = { generator = built; files.token = { }; };
      };
    };
    nixosConfigurations.plain = { options = { }; config = { }; };
    homeConfigurations."alice@laptop" = {
      options.artifacts = { };
      config.artifacts.store.backup = { backend = "rec"; generator = ./gen-home.sh; files.key = { }; };
    };
  };
}
"#
        .replace("SYSTEM", &system()),
    );
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(args)
            .current_dir(&p.root)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    };
    git(&["init", "-q", "."]);
    git(&["add", "flake.nix", "gen.sh", "backend.toml", "backends"]);
    p
}

#[test]
fn flake_declarations_are_evaluated_generated_and_checked() {
    let p = flake_project("flake_declarations_are_evaluated_generated_and_checked");
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
    // Attribute names are the identities; configurations without options.artifacts are skipped.
    assert_eq!(
        units,
        [
            "home/alice@laptop backup",
            "nixos/web1 api",
            "nixos/web1 built"
        ]
    );
    p.run(["check"]).code(1);
    p.run(["generate"]).success();
    assert_eq!(
        p.stored("nixos/web1/api/token").as_deref(),
        Some("from a file, for web1\n")
    );
    assert_eq!(
        p.stored("nixos/web1/built/token").as_deref(),
        Some("built by nix\n"),
        "the derivation was realised"
    );
    assert_eq!(
        p.stored("home/alice@laptop/backup/key").as_deref(),
        Some("untracked, for alice@laptop\n")
    );
    let records = p.records();
    assert!(
        records.contains(r#""owner": "nginx""#),
        "file specs come from the flake: {records}"
    );
    assert!(
        records.contains("web1's config"),
        "config.rec reaches $targets: {records}"
    );
    p.run(["check"]).success();
    // The generator is identified by its store path: editing it makes the artifact stale.
    p.script("gen.sh", "#!/bin/sh\necho changed > \"$out/token\"\n");
    let status = p.run(["check", "--json"]).code(1).json();
    let api = status["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["artifact"] == "api")
        .unwrap()
        .clone();
    assert_eq!(api["status"], "stale", "{status}");
}

#[test]
fn flake_is_chosen_over_nothing_and_can_be_named_with_flake() {
    let p = flake_project("flake_is_chosen_and_can_be_named_with_flake");
    let elsewhere = p.root.parent().unwrap().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let mut command = p.command(["--flake", p.root.to_str().unwrap(), "list"]);
    command.current_dir(&elsewhere);
    p.finish(&mut command).success().stdout_has("nixos/web1");
}

#[test]
fn flake_evaluation_errors_show_nix_stderr() {
    let p = flake_project("flake_evaluation_errors_show_nix_stderr");
    p.file(
        "flake.nix",
        "{ outputs = { self }: { nixosConfigurations.m = { options.artifacts = { }; config.artifacts.store = throw \"broken store for m\"; }; }; }\n",
    );
    p.run(["list"])
        .code(1)
        .stderr_has("evaluating the artifacts of the flake")
        .stderr_has("broken store for m");
}

#[test]
fn missing_nix_is_explained() {
    let p = flake_project("missing_nix_is_explained");
    let bin = p.root.join("no-nix-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for entry in std::fs::read_dir("/usr/bin").unwrap().flatten() {
        if !entry.file_name().to_string_lossy().starts_with("nix") {
            let _ = std::os::unix::fs::symlink(entry.path(), bin.join(entry.file_name()));
        }
    }
    let mut command = p.command(["list"]);
    command.env("PATH", &bin);
    p.finish(&mut command)
        .code(1)
        .stderr_has("`nix` is not installed or not on PATH")
        .stderr_has("--manifest");
}

#[test]
fn flake_targets_are_named_by_machine_name_and_user_name() {
    let p = flake_project("flake_targets_are_named_by_machine_name_and_user_name");
    // As the modules evaluate: `artifacts.machineName` (default host name)
    // and `artifacts.userName` (default home.username) name the targets,
    // whatever the attribute.
    p.file(
        "flake.nix",
        r#"{ outputs = { self }: {
  nixosConfigurations.alpha = { options.artifacts = { };
    config.artifacts = { machineName = "web-alpha"; store.api = { backend = "rec"; generator = ./gen.sh; files.token = { }; }; }; };
  homeConfigurations."alice@laptop" = { options.artifacts = { };
    config.artifacts = { userName = "alice"; store.backup = { backend = "rec"; generator = ./gen-home.sh; files.key = { }; }; }; };
}; }
"#,
    );
    p.run(["generate"]).success();
    assert_eq!(
        p.stored("nixos/web-alpha/api/token").as_deref(),
        Some("from a file, for web-alpha\n"),
        "the generator sees the machine's one name"
    );
    assert_eq!(
        p.stored("home/alice/backup/key").as_deref(),
        Some("untracked, for alice\n")
    );
    p.run(["check", "--target", "nixos/web-alpha"]).success();

    // Two attributes, one name: an error naming both and the option.
    p.file(
        "flake.nix",
        r#"{ outputs = { self }: {
  nixosConfigurations.a = { options.artifacts = { }; config.artifacts = { machineName = "nixos"; store = { }; }; };
  nixosConfigurations.b = { options.artifacts = { }; config.artifacts = { machineName = "nixos"; store = { }; }; };
}; }
"#,
    );
    p.run(["list"])
        .code(2)
        .stderr_has("`nixosConfigurations.a` and `nixosConfigurations.b` of the flake")
        .stderr_has("are both named `nixos`; give each its own `artifacts.machineName`");
}

#[test]
fn flake_generators_read_declared_inputs_from_the_project_root() {
    require_nix();
    let p = Project::new("flake_generators_read_declared_inputs");
    p.recording_backend();
    p.file("lib/common.sh", "word=first\n");
    // The generator is a store path: it finds its input from its working
    // directory, the project root.
    p.script(
        "gen.sh",
        "#!/bin/sh\n. ./lib/common.sh\necho \"$word\" > \"$out/token\"\n",
    );
    p.file(
        "flake.nix",
        r#"{
  outputs = { self }: {
    nixosConfigurations.web1 = {
      options.artifacts = { };
      config.artifacts = {
        default.backend = "rec";
        store.api = { generator = ./gen.sh; inputs = [ "lib/common.sh" ]; files.token = { }; };
      };
    };
  };
}
"#,
    );
    p.run(["generate"]).success();
    assert_eq!(p.stored("nixos/web1/api/token").as_deref(), Some("first\n"));
    p.run(["check"]).success();
    p.file("lib/common.sh", "word=second\n");
    p.run(["check"])
        .code(1)
        .stdout_has("the generator or one of its inputs changed");
}

/// A second run with nothing changed takes the declarations from the
/// project's state directory (nix is not even on PATH for it); any change
/// to the flake's tree makes a new evaluation.
#[test]
fn an_unchanged_flake_is_not_evaluated_again() {
    use std::os::unix::fs::PermissionsExt;
    let p = flake_project("an_unchanged_flake_is_not_evaluated_again");
    // A check that writes nothing into the flake (the recording one does).
    p.script("backends/rec/check", "#!/bin/sh\nexit 1\n");
    let first = p.run(["list"]).success().stdout.clone();
    let state = p.root.join(".artifacts");
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("flake-eval.json")), 0o600);
    // Outside the flake: creating it must not change the tree.
    let bin = p.root.parent().unwrap().join("no-nix-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for entry in std::fs::read_dir("/usr/bin").unwrap().flatten() {
        if !entry.file_name().to_string_lossy().starts_with("nix") {
            let _ = std::os::unix::fs::symlink(entry.path(), bin.join(entry.file_name()));
        }
    }
    let without_nix = |p: &Project| {
        let mut command = p.command(["list"]);
        command.env("PATH", &bin);
        p.finish(&mut command)
    };
    let second = without_nix(&p);
    second.success();
    assert_eq!(second.stdout, first);
    p.file("notes.txt", "a new file in the flake");
    without_nix(&p)
        .code(1)
        .stderr_has("`nix` is not installed or not on PATH");
}
