//! Getting started and finding the project: `artifacts init` (with and
//! without a terminal, then `generate` and `check` on what it wrote), the
//! manifest found from subdirectories (symbolic links, repository roots,
//! mount points), and generators' declared inputs, all through the real
//! binary and real bubblewrap.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use crate::terminal::Session;
use crate::util::{Project, Run, binary};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn identity_file(p: &Project) -> std::path::PathBuf {
    p.home.join(".config/artifacts/identity.txt")
}

#[test]
fn init_then_generate_then_check_with_the_real_sandbox() {
    let p = Project::new("init_then_generate_then_check_with_the_real_sandbox");
    // Into a directory that does not exist yet, named relative to the current one.
    let run = p.run(["init", "new-project"]);
    run.success()
        .stderr_has("created your identity")
        .stderr_has("next:")
        .stderr_has("generate")
        .stderr_has("check")
        .stderr_has("show api-token");
    let next: Vec<&str> = run
        .stderr
        .lines()
        .skip_while(|l| *l != "next:")
        .skip(1)
        .collect();
    assert_eq!(next.len(), 3, "three next commands: {}", run.stderr);
    let dir = p.root.join("new-project");
    assert_eq!(mode(&identity_file(&p)), 0o600);
    assert_eq!(mode(identity_file(&p).parent().unwrap()), 0o700);
    assert!(
        fs::read_to_string(identity_file(&p))
            .unwrap()
            .contains("AGE-SECRET-KEY-1")
    );
    assert_eq!(mode(&dir.join("generators/api-token.sh")) & 0o111, 0o111);
    let manifest = fs::read_to_string(dir.join("artifacts.toml")).unwrap();
    assert!(
        manifest.contains(r#"identities = ["~/.config/artifacts/identity.txt"]"#),
        "{manifest}"
    );
    assert!(
        !p.root.join("artifacts.toml").exists(),
        "written into DIR only"
    );

    // The scaffold works as it is: real bwrap, the shipped agenix backend.
    let mut generate = p.command(["generate"]);
    generate.current_dir(&dir);
    p.finish(&mut generate)
        .success()
        .stderr_has("generated 1 artifact(s)");
    assert!(
        dir.join("secrets/per-machine/example/api-token/token.age")
            .is_file()
    );
    let mut check = p.command(["check"]);
    check.current_dir(&dir);
    p.finish(&mut check).success().stdout_has("1 ok");
    // The operator's identity decrypts it, found through the manifest.
    let mut show = p.command(["-C", "new-project", "show", "api-token"]);
    let shown = p.finish(&mut show);
    shown.success();
    assert_eq!(shown.stdout.trim().len(), 44, "32 random bytes, base64");

    // --json: one valid document on stdout, people's text on stderr.
    let run = p.run(["init", "--json", "second"]);
    let document = run.success().json();
    assert_eq!(document["command"], "init", "{document}");
    assert_eq!(document["ok"], true);
    run.stderr_has("next:");
}

#[test]
fn init_refuses_to_overwrite_and_leaves_nothing_half_written() {
    let p = Project::new("init_refuses_to_overwrite_and_leaves_nothing_half_written");
    p.file("generators/api-token.sh", "mine\n");
    p.run(["init"])
        .code(2)
        .stderr_has("generators/api-token.sh` already exists");
    assert!(!p.root.join("artifacts.toml").exists());
    assert_eq!(
        fs::read_to_string(p.root.join("generators/api-token.sh")).unwrap(),
        "mine\n"
    );
    assert!(!identity_file(&p).exists(), "nothing written at all");

    // Any manifest format counts, since the search would find it.
    fs::remove_file(p.root.join("generators/api-token.sh")).unwrap();
    p.file("artifacts.yaml", "{}\n");
    p.run(["init"])
        .code(2)
        .stderr_has("artifacts.yaml` already exists");
    assert!(!p.root.join("generators/api-token.sh").exists());

    // A failure half-way removes what this run wrote: `generators` is a file.
    fs::remove_file(p.root.join("artifacts.yaml")).unwrap();
    p.file("half/generators", "a file\n");
    p.run(["init", "half"])
        .code(2)
        .stderr_has("failed to create")
        .stderr_has("generators/api-token.sh");
    assert!(!p.root.join("half/artifacts.toml").exists(), "rolled back");

    // An operator identity that exists is used, never replaced.
    p.run(["init", "one"]).success();
    let key = fs::read_to_string(identity_file(&p)).unwrap();
    p.run(["init", "two"])
        .success()
        .stderr_has("using your existing identity");
    assert_eq!(fs::read_to_string(identity_file(&p)).unwrap(), key);
    let recipient = |dir: &str| {
        fs::read_to_string(p.root.join(dir).join("artifacts.toml"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("config.agenix.publicUserKeys"))
            .unwrap()
            .to_owned()
    };
    assert_eq!(recipient("one"), recipient("two"));
}

#[test]
fn init_works_in_a_terminal() {
    let p = Project::new("init_works_in_a_terminal");
    let mut session = Session::spawn(p.command(["init"]), &[], b"");
    session.expect("created");
    session.expect("next:");
    session.expect("show api-token");
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(0), "{transcript}");
    assert!(p.root.join("artifacts.toml").is_file());
    p.run(["generate"]).success();
    p.run(["check"]).success();
}

/// Backend `rec` (its scripts write `store/` relative to their working
/// directory) and artifact `a`, plus `sub/deeper/` to run from.
fn nested_project(name: &str) -> Project {
    let p = Project::new(name);
    p.token_artifact();
    fs::create_dir_all(p.root.join("sub/deeper")).unwrap();
    p
}

#[test]
fn the_manifest_is_found_from_subdirectories_and_paths_resolve_against_the_root() {
    let p = nested_project("the_manifest_is_found_from_subdirectories");
    let deeper = p.root.join("sub/deeper");
    let mut generate = p.command(["generate"]);
    generate.current_dir(&deeper);
    p.finish(&mut generate).success();
    // Stores, generators, backend.toml and the lock: all at the project root.
    assert_eq!(p.stored("nixos/m/a/token").as_deref(), Some("t\n"));
    assert!(p.root.join("artifacts.lock").is_file());
    for stray in ["store", "artifacts.lock", "records"] {
        assert!(!deeper.join(stray).exists(), "{stray} written in the cwd");
    }

    // A symlinked working directory: the real parents are searched.
    let link = p.root.parent().unwrap().join("link-to-deeper");
    symlink(&deeper, &link).unwrap();
    let mut check = p.command(["check"]);
    check.current_dir(&link);
    p.finish(&mut check).success();
    // -C names where to start, too; one that does not exist starts nothing.
    p.run(["-C", "sub/deeper", "check"]).success();
    p.run(["-C", "sub/typo", "check"])
        .code(2)
        .stderr_has("cannot use -C `")
        .stderr_has("sub/typo`: No such file or directory");

    // The nearest manifest wins; --manifest still overrides the search.
    p.file(
        "sub/artifacts.toml",
        "default.backend = \"dummy\"\n[nixos.m.artifacts.other]\ngenerator = \"gen.sh\"\nfiles.f = {}\n",
    );
    let mut list = p.command(["list"]);
    list.current_dir(&deeper);
    p.finish(&mut list).success().stdout_has("other");
    let mut list = p.command(["--manifest", "../../artifacts.toml", "list"]);
    list.current_dir(&deeper);
    p.finish(&mut list)
        .success()
        .stdout_has(" a ")
        .stdout_lacks("other");
}

#[test]
fn the_manifest_search_stops_at_a_repository_root_and_a_mount_point() {
    let p = nested_project("the_manifest_search_stops_at_a_repository_root");
    // `sub` is a repository of its own: the manifest above it is not its.
    fs::create_dir(p.root.join("sub/.git")).unwrap();
    let mut list = p.command(["list"]);
    list.current_dir(p.root.join("sub/deeper"));
    p.finish(&mut list)
        .code(2)
        .stderr_has("up to the repository root")
        .stderr_has("artifacts init");
    fs::remove_dir(p.root.join("sub/.git")).unwrap();

    // A file system mounted at sub/deeper (a tmpfs, in a mount namespace of
    // bwrap's): the search does not climb out of it.
    let run = Run::new(
        "bwrap … artifacts list".into(),
        &p.root,
        Command::new("bwrap")
            .args(["--dev-bind", "/", "/", "--tmpfs"])
            .arg(p.root.join("sub/deeper"))
            .arg("--chdir")
            .arg(p.root.join("sub/deeper"))
            .arg("--")
            .arg(binary())
            .arg("list")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &p.home)
            .output()
            .unwrap(),
    );
    run.code(2)
        .stderr_has("does not cross into another file system");
    // Without the mount, the same directory finds the project.
    let mut list = p.command(["list"]);
    list.current_dir(p.root.join("sub/deeper"));
    p.finish(&mut list).success();
}

/// Generator `gen.sh` for artifacts `a` and `b` sources `lib.sh` both ways
/// and reports what it sees; `c` declares no inputs.
fn inputs_project(name: &str) -> Project {
    let p = Project::new(name);
    p.recording_backend();
    p.file("generators/lib.sh", "value() { echo \"from lib v1\"; }\n");
    p.file("data/words.txt", "alpha\n");
    p.generator(
        "gen.sh",
        r#". "$(dirname "$0")/lib.sh"
. ./generators/lib.sh
value > "$out/token"
{
  echo "cwd:$(pwd)"
  cat ./data/words.txt
  if echo x >> ./generators/lib.sh 2>/dev/null; then echo "lib:writable"; else echo "lib:read-only"; fi
  if [ -e ./artifacts.toml ]; then echo "manifest:visible"; else echo "manifest:hidden"; fi
  echo scratch > ./scratch && echo "cwd:writable"
} > "$out/probe""#,
    );
    p.generator(
        "plain.sh",
        r#"echo c > "$out/token"; echo c > "$out/probe""#,
    );
    p.manifest(
        r#"
default.backend = "rec"
[artifacts.a]
targets = ["m"]
generator = "generators/gen.sh"
inputs = ["generators/lib.sh", "data"]
files.token = {}
files.probe = {}
[artifacts.b]
targets = ["m"]
generator = "generators/gen.sh"
inputs = ["./generators/lib.sh", "data/"]
files.token = {}
files.probe = {}
[artifacts.d]
targets = ["m"]
generator = "generators/gen.sh"
inputs = ["generators", "data"]
files.token = {}
files.probe = {}
[artifacts.c]
targets = ["m"]
generator = "generators/plain.sh"
files.token = {}
files.probe = {}
"#,
    );
    p
}

#[test]
fn generator_inputs_are_shown_read_only_in_place_and_make_dependents_stale() {
    let p = inputs_project("generator_inputs_are_shown_read_only_in_place");
    p.run(["generate"]).success();
    assert_eq!(
        p.stored("nixos/m/a/token").as_deref(),
        Some("from lib v1\n")
    );
    // A directory input that holds the generator itself works too.
    assert_eq!(
        p.stored("nixos/m/d/token").as_deref(),
        Some("from lib v1\n")
    );
    let probe = p.stored("nixos/m/a/probe").unwrap();
    assert_eq!(
        probe,
        format!(
            "cwd:{}\nalpha\nlib:read-only\nmanifest:hidden\ncwd:writable\n",
            p.root.display()
        )
    );
    assert_eq!(
        fs::read_to_string(p.root.join("generators/lib.sh")).unwrap(),
        "value() { echo \"from lib v1\"; }\n",
        "the project's file is untouched"
    );
    assert!(
        !p.root.join("scratch").exists(),
        "the cwd is a private copy"
    );
    p.run(["check"]).success();
    p.run(["explain", "a"])
        .success()
        .stdout_has("inputs     generators/lib.sh, data");
    let explained = p.run(["explain", "b", "--json"]).success().json();
    assert_eq!(
        explained["artifacts"][0]["inputs"],
        serde_json::json!(["./generators/lib.sh", "data/"]),
        "{explained}"
    );

    // Editing the shared file makes exactly the artifacts that read it stale.
    p.file("generators/lib.sh", "value() { echo \"from lib v2\"; }\n");
    let status = p.run(["check", "--json"]).code(1).json();
    let by_name = |name: &str| {
        status["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["artifact"] == name)
            .unwrap()
            .clone()
    };
    for name in ["a", "b", "d"] {
        assert_eq!(by_name(name)["status"], "stale", "{status}");
        assert!(
            by_name(name)["reason"]
                .as_str()
                .unwrap()
                .contains("the generator or one of its inputs changed"),
            "{status}"
        );
    }
    assert_eq!(by_name("c")["status"], "ok", "{status}");
    // So does a file added to an input directory.
    p.file("generators/lib.sh", "value() { echo \"from lib v1\"; }\n");
    p.run(["check"]).success();
    p.file("data/more.txt", "beta\n");
    p.run(["check"]).code(1);
    p.run(["generate", "--yes"]).success();
    p.run(["check"]).success();

    // Unconfined, the same two ways to reach lib.sh work.
    p.file("generators/lib.sh", "value() { echo \"from lib v3\"; }\n");
    p.run(["--no-sandbox", "regenerate", "--yes", "a"])
        .success();
    assert_eq!(
        p.stored("nixos/m/a/token").as_deref(),
        Some("from lib v3\n")
    );
}

#[test]
fn generator_inputs_are_validated_naming_the_input() {
    let p = Project::new("generator_inputs_are_validated_naming_the_input");
    p.recording_backend();
    p.generator("gen.sh", r#"echo t > "$out/token""#);
    let declare = |inputs: &str| {
        p.manifest(&format!(
            "default.backend = \"rec\"\n[nixos.m.artifacts.a]\ngenerator = \"generators/gen.sh\"\ninputs = {inputs}\nfiles.token = {{}}\n"
        ));
    };
    declare(r#"["../outside.sh", "/etc/passwd", "", ".", "x", "./x"]"#);
    p.run(["check"])
        .code(2)
        .stderr_has("field `inputs[0]`: input `../outside.sh` contains `..`")
        .stderr_has("field `inputs[1]`: input `/etc/passwd` is absolute")
        .stderr_has("field `inputs[2]`: an input cannot be empty")
        .stderr_has("field `inputs[3]`: input `.` names the project root itself")
        .stderr_has("field `inputs[5]`: input `./x` is named twice");
    let many: Vec<String> = (0..65).map(|i| format!("\"f{i}\"")).collect();
    declare(&format!("[{}]", many.join(", ")));
    p.run(["check"])
        .code(2)
        .stderr_has("declares 65 inputs, more than 64");

    // What the file system holds is checked before the generator runs.
    let generate_fails_with = |inputs: &str, message: &str| {
        declare(inputs);
        p.run(["generate"]).code(1).stderr_has(message);
        assert!(p.stored("nixos/m/a/token").is_none());
    };
    generate_fails_with(
        r#"["generators/missing.sh"]"#,
        "input `generators/missing.sh` of artifact `a` does not exist",
    );
    symlink("/etc/passwd", p.root.join("generators/link.sh")).unwrap();
    generate_fails_with(
        r#"["generators/link.sh"]"#,
        "link.sh` is a symbolic link; inputs are never read through links",
    );
    symlink("/etc", p.root.join("etc-link")).unwrap();
    generate_fails_with(r#"["etc-link/passwd"]"#, "etc-link` is a symbolic link");
    fs::create_dir(p.root.join("tree")).unwrap();
    symlink("/etc/shadow", p.root.join("tree/inner")).unwrap();
    generate_fails_with(r#"["tree"]"#, "tree/inner` is a symbolic link");
    fs::remove_file(p.root.join("tree/inner")).unwrap();
    nix::unistd::mkfifo(&p.root.join("tree/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    generate_fails_with(
        r#"["tree"]"#,
        "tree/fifo` is a fifo, not a regular file or directory",
    );
    generate_fails_with(
        r#"["generators/gen.sh/x"]"#,
        "generators/gen.sh` is a regular file, not a directory",
    );
    fs::remove_file(p.root.join("tree/fifo")).unwrap();
    let big = fs::File::create(p.root.join("tree/big")).unwrap();
    big.set_len((16 << 20) + 1).unwrap();
    generate_fails_with(
        r#"["tree"]"#,
        "the inputs of artifact `a` hold more than 1024 files or 16777216 bytes",
    );
    fs::remove_file(p.root.join("tree/big")).unwrap();
    declare(r#"["tree"]"#);
    p.run(["generate"]).success();
}
