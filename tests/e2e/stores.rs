//! Stores under attack and under faults (issue 12): links committed in a
//! store never lead `gc`, `generate` or `activate --root` outside; `storeDir`
//! stays inside the project; a multi-file artifact killed at every step of a
//! regeneration is the old set or the new set, and `check` calls anything
//! else an error; hand-made SOPS keys survive `gc`; damaged `.age` files are
//! errors. Runs as root (CI does); the activate case also as `nobody`.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use crate::tools::{
    Key, ReadOnlyDir, age_decrypt, artifacts_keygen, ok, project_with_read_only_dirs, sops, tool,
};
use crate::util::{Project, Run};

/// The directory holding the test's project, home and tmp: "outside the project".
fn base(p: &Project) -> PathBuf {
    p.root.parent().unwrap().to_owned()
}

/// An outside directory with `Documents/precious` in it.
fn outside(p: &Project, name: &str) -> PathBuf {
    let dir = base(p).join(name);
    fs::create_dir_all(dir.join("Documents")).unwrap();
    fs::write(dir.join("Documents/precious"), "keep me").unwrap();
    dir
}

#[track_caller]
fn assert_intact(dir: &Path) {
    assert_eq!(
        fs::read_to_string(dir.join("Documents/precious"))
            .ok()
            .as_deref(),
        Some("keep me"),
        "`{}` was touched",
        dir.display()
    );
}

/// Replaces the directory `relative` of the project with a link to `target`.
fn link_in_place(p: &Project, relative: &str, target: &str) {
    let path = p.root.join(relative);
    if path.exists() {
        fs::remove_dir_all(&path).unwrap();
    }
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    symlink(target, &path).unwrap();
}

/// A project whose artifacts (agenix unless said otherwise) each have a
/// secret `token` and a public `id`, on machine `m1`, and the key to read them.
fn keyed(name: &str, artifacts: &[(&str, &str)]) -> (Project, Key) {
    let p = project_with_read_only_dirs(name);
    let key = artifacts_keygen(&p, "admin.key");
    p.generator(
        "token.sh",
        r#"head -c 24 /dev/urandom | base64 > "$out/token"; echo "pub $artifact" > "$out/id""#,
    );
    p.manifest(&manifest(&key.public, artifacts, ""));
    (p, key)
}

fn manifest(recipient: &str, artifacts: &[(&str, &str)], config: &str) -> String {
    let mut text =
        format!("[nixos.m1]\nconfig.agenix.publicUserKeys = [\"{recipient}\"]\n{config}\n");
    for (name, backend) in artifacts {
        text.push_str(&format!(
            "[nixos.m1.artifacts.{name}]\nbackend = \"{backend}\"\ngenerator = \"generators/token.sh\"\nfiles.token = {{}}\nfiles.id = {{ secret = false }}\n"
        ));
    }
    text
}

/// Adds a lock entry for `artifact` on `nixos/m1`, as a hostile commit could.
fn forge_lock_entry(p: &Project, artifact: &str) {
    let mut lock = p.lock();
    let entry = lock["entries"]["nixos/m1"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    lock["entries"]["nixos/m1"][artifact] = entry;
    fs::write(
        p.root.join("artifacts.lock"),
        serde_json::to_string_pretty(&lock).unwrap(),
    )
    .unwrap();
}

#[test]
fn gc_never_deletes_outside_the_project_through_committed_links() {
    let (p, key) = keyed(
        "gc_never_deletes_outside_through_links",
        &[("api", "agenix")],
    );
    let key = key.path.to_str().unwrap().to_owned();
    p.run(["generate"]).success();
    // The public store of m1 is a committed link to a directory outside, and
    // the lock names its subdirectory as an artifact of ours.
    let public_victim = outside(&p, "outside-public");
    link_in_place(&p, "public/per-machine/m1", "../../../outside-public");
    forge_lock_entry(&p, "Documents");
    p.run(["gc", "--yes", "-i", &key])
        .code(1)
        .stderr_has("is a symbolic link")
        .stderr_has("public/per-machine/m1`");
    assert_intact(&public_victim);

    // Same through the agenix store of m1.
    fs::remove_file(p.root.join("public/per-machine/m1")).unwrap();
    let agenix_victim = outside(&p, "outside-agenix");
    link_in_place(&p, "secrets/per-machine/m1", "../../../outside-agenix");
    p.run(["gc", "--yes", "-i", &key])
        .code(1)
        .stderr_has("is a symbolic link")
        .stderr_has("secrets/per-machine/m1`");
    assert_intact(&agenix_victim);

    // And through the whole store directory.
    fs::remove_file(p.root.join("secrets/per-machine/m1")).unwrap();
    let store_victim = base(&p).join("outside-store");
    outside(&p, "outside-store/per-machine/m1");
    link_in_place(&p, "secrets", "../outside-store");
    p.run(["gc", "--yes", "-i", &key])
        .code(1)
        .stderr_has("is a symbolic link");
    assert_intact(&store_victim.join("per-machine/m1"));
}

#[test]
fn generate_refuses_symlinked_store_dirs_naming_them() {
    let (p, _key) = keyed(
        "generate_refuses_symlinked_store_dirs",
        &[("api", "agenix"), ("db", "sops-nix")],
    );
    let outside_secrets = base(&p).join("outside-secrets");
    fs::create_dir_all(&outside_secrets).unwrap();
    link_in_place(&p, "secrets", "../outside-secrets");
    let run = p.run(["generate"]);
    run.code(1)
        .stderr_has("is a symbolic link")
        .stderr_has(&format!("`{}`", p.root.join("secrets").display()));
    assert_eq!(fs::read_dir(&outside_secrets).unwrap().count(), 0);

    // A link deeper down: the sops-nix per-machine directory.
    fs::remove_file(p.root.join("secrets")).unwrap();
    link_in_place(&p, "secrets/per-machine", "../../outside-secrets");
    p.run(["generate"]).code(1).stderr_has(&format!(
        "`{}` is a symbolic link",
        p.root.join("secrets/per-machine").display()
    ));
    assert_eq!(fs::read_dir(&outside_secrets).unwrap().count(), 0);

    // The public store: the secret is stored, the public file is not, and
    // check says so instead of "ok".
    fs::remove_file(p.root.join("secrets/per-machine")).unwrap();
    let outside_public = base(&p).join("outside-public");
    fs::create_dir_all(&outside_public).unwrap();
    link_in_place(&p, "public", "../outside-public");
    p.run(["generate"]).code(1).stderr_has(&format!(
        "`{}` is a symbolic link",
        p.root.join("public").display()
    ));
    assert_eq!(fs::read_dir(&outside_public).unwrap().count(), 0);
    p.run(["check"])
        .code(2)
        .stdout_has("stopped between storing the secret files of nixos/m1 api");
}

#[test]
fn store_dir_must_be_relative_and_inside_the_project() {
    let (p, key) = keyed(
        "store_dir_must_stay_inside",
        &[("api", "agenix"), ("db", "sops-nix")],
    );
    let absolute = base(&p).join("absolute-store");
    for (store_dir, escaped) in [
        (absolute.to_str().unwrap().to_owned(), absolute.clone()),
        (
            "../escaped-store".to_owned(),
            base(&p).join("escaped-store"),
        ),
        (
            "secrets/../../escaped-store".to_owned(),
            base(&p).join("escaped-store"),
        ),
    ] {
        p.manifest(&manifest(
            &key.public,
            &[("api", "agenix"), ("db", "sops-nix")],
            &format!("config.agenix.storeDir = {store_dir:?}"),
        ));
        let run = p.run(["generate"]);
        run.code(1).stderr_has(&format!(
            "artifacts.config.agenix.storeDir `{store_dir}` must be a relative path inside the project"
        ));
        assert!(!escaped.exists(), "{} was created", escaped.display());
        p.run(["check"])
            .code(2)
            .stdout_has("must be a relative path inside the project");
    }
    // A plain relative one works.
    p.manifest(&manifest(
        &key.public,
        &[("api", "agenix")],
        "config.agenix.storeDir = \"vault/agenix\"",
    ));
    p.run(["generate"]).success();
    assert!(
        p.root
            .join("vault/agenix/per-machine/m1/api/token.age")
            .is_file()
    );
}

/// The dummy project of the activate tests, installing `/srv/keys/private`.
fn activate_project(name: &str, file: &str) -> Project {
    let p = Project::new(name);
    p.generator("keys.sh", r#"echo "generated" > "$out/private""#)
        .manifest(&format!(
            "[nixos.vm]\ndefault.backend = \"dummy\"\n[nixos.vm.artifacts.keys]\ngenerator = \"generators/keys.sh\"\nfiles.private = {file}\n"
        ));
    p
}

/// `<root>/srv` is an absolute link to a host directory holding
/// `keys/private`; returns the host file and where the file belongs inside
/// the root.
fn host_link(p: &Project, sysroot: &Path, mode: u32) -> (PathBuf, PathBuf) {
    let host = base(p).join("host");
    fs::create_dir_all(host.join("keys")).unwrap();
    let host_file = host.join("keys/private");
    fs::write(&host_file, "host secret").unwrap();
    fs::set_permissions(&host_file, fs::Permissions::from_mode(mode)).unwrap();
    fs::create_dir_all(sysroot).unwrap();
    symlink(&host, sysroot.join("srv")).unwrap();
    let inside = sysroot
        .join(host.strip_prefix("/").unwrap())
        .join("keys/private");
    (host_file, inside)
}

#[test]
fn activate_root_resolves_absolute_links_inside_the_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "activate tests run as root (CI does)"
    );
    let p = activate_project(
        "activate_root_resolves_absolute_links_inside",
        r#"{ path = "/srv/keys/private", owner = "nobody", mode = "0440" }"#,
    );
    let sysroot = p.root.join("sysroot");
    let (host_file, inside) = host_link(&p, &sysroot, 0o600);
    let before = fs::metadata(&host_file).unwrap();
    p.run([
        "activate",
        "--target",
        "vm",
        "--root",
        sysroot.to_str().unwrap(),
    ])
    .success();
    let after = fs::metadata(&host_file).unwrap();
    assert_eq!(fs::read_to_string(&host_file).unwrap(), "host secret");
    assert_eq!(
        (after.uid(), after.gid(), after.mode(), after.ino()),
        (before.uid(), before.gid(), before.mode(), before.ino()),
        "the host file was re-owned, re-moded or replaced"
    );
    let installed = fs::metadata(&inside).unwrap();
    assert_eq!(fs::read_to_string(&inside).unwrap(), "generated\n");
    assert_eq!(installed.mode() & 0o7777, 0o440);
    assert_eq!(installed.uid(), nobody().0);
}

/// The uid and gid of `nobody`.
fn nobody() -> (u32, u32) {
    let user = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    (user.uid.as_raw(), user.gid.as_raw())
}

#[test]
fn activate_root_resolves_absolute_links_inside_the_root_as_nobody() {
    let p = activate_project(
        "activate_root_resolves_links_as_nobody",
        r#"{ path = "/srv/keys/private", owner = "nobody", group = "nogroup", mode = "0400" }"#,
    );
    let sysroot = p.root.join("sysroot");
    let (host_file, inside) = host_link(&p, &sysroot, 0o644);
    let (uid, gid) = nobody();
    ok(
        "chown -R nobody",
        std::process::Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(base(&p))
            .output()
            .unwrap(),
    );
    let before = fs::metadata(&host_file).unwrap();
    let mut command = p.command([
        OsStr::new("activate"),
        OsStr::new("--target"),
        OsStr::new("vm"),
        OsStr::new("--root"),
        sysroot.as_os_str(),
    ]);
    command.uid(uid).gid(gid);
    let run = p.finish(&mut command);
    run.success();
    let after = fs::metadata(&host_file).unwrap();
    assert_eq!(fs::read_to_string(&host_file).unwrap(), "host secret");
    assert_eq!(
        (after.mode(), after.ino()),
        (before.mode(), before.ino()),
        "the host file was re-moded or replaced"
    );
    let installed = fs::metadata(&inside).unwrap();
    assert_eq!(installed.mode() & 0o7777, 0o400);
    assert_eq!(installed.uid(), uid);
}

/// The files of the multi-file artifact: three secret, two public.
const SECRET: [&str; 3] = ["a", "b", "c"];
const PUBLIC: [&str; 2] = ["p", "q"];

/// What the killed-regeneration test sees in the stores.
#[derive(Debug, PartialEq)]
struct Seen {
    secret: String,
    public: String,
}

/// Reads every file of `multi`; panics unless each store holds one complete generation.
fn seen(p: &Project, key: &Path, step: usize) -> Seen {
    let agenix = p.root.join("secrets/per-machine/m1/multi");
    let secret: Vec<String> = SECRET
        .iter()
        .map(|f| {
            let path = agenix.join(format!("{f}.age"));
            String::from_utf8(ok(
                &format!("age -d {f}.age (step {step})"),
                age_decrypt(key, &path),
            ))
            .unwrap()
        })
        .collect();
    let public_dir = p.root.join("public/per-machine/m1/multi");
    let public: Vec<String> = PUBLIC
        .iter()
        .map(|f| {
            fs::read_to_string(public_dir.join(f))
                .unwrap_or_else(|e| panic!("step {step}: public file {f}: {e}"))
        })
        .collect();
    assert!(
        secret.iter().all(|t| *t == secret[0]),
        "step {step}: the agenix files mix generations: {secret:?}"
    );
    assert!(
        public.iter().all(|t| *t == public[0]),
        "step {step}: the public files mix generations: {public:?}"
    );
    Seen {
        secret: secret[0].clone(),
        public: public[0].clone(),
    }
}

/// Hidden leftovers of killed runs in the artifact's store directories.
fn leftovers(p: &Project) -> Vec<String> {
    let mut found = Vec::new();
    for dir in ["secrets/per-machine/m1", "public/per-machine/m1"] {
        for entry in fs::read_dir(p.root.join(dir)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                found.push(format!("{dir}/{name}"));
            }
        }
    }
    found
}

/// The system calls that change a store: a run is killed at each in turn.
const STEPS: &str = "rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,fsync,fdatasync";

/// What a kill loop went through.
#[derive(Debug, Default)]
struct Loop {
    /// Steps after which the secret and the public files differed (and `check` said error).
    mixed: usize,
    /// Killed runs after which the secret files were of a newer generation than before the loop.
    switched: usize,
    /// Steps that left a hidden temporary entry for the next run to remove.
    leftovers: usize,
}

/// Runs `regenerate multi` with a kill at step k = 1, 2, … until a run gets
/// through; after every step, checks that each store holds one complete
/// generation and that `check` calls a secret/public mismatch an error.
fn kill_loop(p: &Project, key: &Path, command: impl Fn(usize) -> std::process::Command) -> Loop {
    let before = seen(p, key, 0);
    let mut counts = Loop::default();
    for step in 1.. {
        assert!(step < 400, "a run was still being killed at step {step}");
        let run = p.finish(&mut command(step));
        let now = seen(p, key, step);
        serde_json::from_str::<serde_json::Value>(
            &fs::read_to_string(p.root.join("artifacts.lock")).unwrap(),
        )
        .unwrap_or_else(|e| panic!("step {step}: artifacts.lock is not JSON: {e}"));
        if !leftovers(p).is_empty() {
            counts.leftovers += 1;
        }
        if now.secret != now.public {
            counts.mixed += 1;
            p.run(["check"])
                .code(2)
                .stdout_has("run `artifacts regenerate multi`");
        }
        if now.secret != before.secret && run.code != Some(0) {
            counts.switched += 1;
        }
        if run.code == Some(0) {
            assert_eq!(
                now.secret, now.public,
                "step {step}: a successful run left a mix"
            );
            break;
        }
    }
    // The run that got through removed every leftover, and everything is ok.
    assert_eq!(leftovers(p), Vec::<String>::new());
    p.run(["check"]).success();
    counts
}

#[test]
fn killed_regenerations_leave_the_old_or_the_new_set_never_a_mix() {
    let p = Project::new("killed_regenerations_leave_old_or_new");
    let key = artifacts_keygen(&p, "admin.key");
    p.generator(
        "multi.sh",
        r#"t=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
for f in a b c p q; do echo "$t" > "$out/$f"; done"#,
    );
    p.manifest(&format!(
        "[nixos.m1]\nconfig.agenix.publicUserKeys = [\"{}\"]\n[nixos.m1.artifacts.multi]\nbackend = \"agenix\"\ngenerator = \"generators/multi.sh\"\nfiles.a = {{}}\nfiles.b = {{}}\nfiles.c = {{}}\nfiles.p = {{ secret = false }}\nfiles.q = {{ secret = false }}\n",
        key.public
    ));
    p.run(["generate"]).success();
    let strace = tool("strace", "strace");

    // 1. Every process of the run is killed at its k-th call changing a
    // store (strace counts per process). strace exits only when every
    // traced process has, so each step is inspected at rest. This reaches
    // each step of `artifacts` itself and the later steps of its backend.
    let whole = kill_loop(&p, &key.path, |step| {
        let trace = format!("trace={STEPS}");
        let inject = format!("inject={STEPS}:signal=KILL:when={step}");
        let strace_args = ["-f", "-qq", "-o", "/dev/null", "-e", &trace, "-e", &inject];
        let mut command = p.command_under(&strace, strace_args);
        // Unsandboxed: bubblewrap cannot set up its namespaces under
        // ptrace, and the sandbox is not what is tested here.
        command.args(["--no-sandbox", "regenerate", "multi", "--yes"]);
        command
    });
    assert!(
        whole.mixed > 0,
        "no step fell between the secret and the public files: {whole:?}"
    );
    assert!(
        whole.switched > 0,
        "no killed run had switched the secret files: {whole:?}"
    );

    // 2. Only the backend's serialize is killed, at each of its steps: the
    // same agenix backend, run through a `backend.toml` whose serialize
    // wrapper runs it under strace with the step read from `kill-step`.
    let wrapper =
        |script: &str| format!("#!/bin/sh\nexec \"$ARTIFACTS\" __backend agenix {script}\n");
    p.script("kill-backend/check", &wrapper("check"));
    p.script("kill-backend/deserialize", &wrapper("deserialize"));
    p.script(
        "kill-backend/serialize",
        &format!(
            "#!/bin/sh\nexec {} -f -qq -o /dev/null -e trace={STEPS} -e inject={STEPS}:signal=KILL:when=$(cat kill-step) \"$ARTIFACTS\" __backend agenix serialize\n",
            strace.display()
        ),
    );
    p.file(
        "backend.toml",
        "[agenix.nixos]\ncheck = \"./kill-backend/check\"\nserialize = \"./kill-backend/serialize\"\ndeserialize = \"./kill-backend/deserialize\"\n",
    );
    let backend = kill_loop(&p, &key.path, |step| {
        p.file("kill-step", &step.to_string());
        p.command(["regenerate", "multi", "--yes"])
    });
    assert!(
        backend.switched > 0,
        "no killed serialize had switched generations: {backend:?}"
    );
    assert!(
        backend.mixed > 0,
        "no killed serialize left the public files behind: {backend:?}"
    );
    assert!(
        backend.leftovers > 0,
        "no killed serialize left its staged generation: {backend:?}"
    );
}

#[test]
fn public_store_failure_after_the_secret_was_stored_is_an_error_until_regenerated() {
    let (p, _key) = keyed("public_store_failure_is_an_error", &[("api", "agenix")]);
    p.run(["generate"]).success();
    // Neither the artifact's public directory nor its parent takes new entries.
    let public = p.root.join("public/per-machine/m1");
    let inner = ReadOnlyDir::new(&public.join("api"));
    let guard = ReadOnlyDir::new(&public);
    p.run(["regenerate", "api", "--yes"])
        .code(1)
        .stderr_has("write the public files of nixos/m1 api");
    drop(guard);
    drop(inner);
    p.run(["check"]).code(2).stdout_has(
        "stopped between storing the secret files of nixos/m1 api and its public files",
    );
    // `generate` does not take the error for "missing"; `regenerate` repairs it.
    p.run(["generate"]).code(1);
    p.run(["regenerate", "api", "--yes"]).success();
    p.run(["check"]).success();
}

#[test]
fn gc_keeps_keys_added_by_hand_with_sops_set() {
    let (p, key) = keyed(
        "gc_keeps_keys_added_with_sops_set",
        &[("keep", "sops-nix"), ("drop", "sops-nix")],
    );
    let key_env = [("SOPS_AGE_KEY_FILE", key.path.as_os_str())];
    p.run(["generate", "-i", key.path.to_str().unwrap()])
        .success();
    let file = p.root.join("secrets/per-machine/m1.sops.yaml");
    let file = file.to_str().unwrap();
    ok(
        "sops set",
        sops(
            &p.root,
            &["set", file, r#"["handmade"]["note"]"#, r#""by hand""#],
            &key_env,
        ),
    );
    p.manifest(&manifest(&key.public, &[("keep", "sops-nix")], ""));
    let listed = p.run(["gc", "--dry-run"]).success().stdout.clone();
    assert!(listed.contains("orphan sops-nix nixos/m1 drop"), "{listed}");
    assert!(!listed.contains("handmade"), "{listed}");
    p.run(["gc", "--yes", "-i", key.path.to_str().unwrap()])
        .success();
    let plain = String::from_utf8(ok("sops -d", sops(&p.root, &["-d", file], &key_env))).unwrap();
    assert!(
        plain.contains("handmade:") && plain.contains("by hand"),
        "{plain}"
    );
    assert!(
        plain.contains("keep:") && !plain.contains("drop:"),
        "{plain}"
    );
    p.run(["check"]).success();
    // A temporary file a killed run left beside the file goes with the next write.
    let leftover = p
        .root
        .join("secrets/per-machine/.artifacts-tmp-0123456789abcdef");
    fs::write(&leftover, "half").unwrap();
    p.run([
        "regenerate",
        "keep",
        "--yes",
        "-i",
        key.path.to_str().unwrap(),
    ])
    .success();
    assert!(!leftover.exists());
}

/// `check`'s verdict on `multi` after `damage` was done to its agenix directory.
fn check_after(p: &Project, damage: impl FnOnce(&Path)) -> Run {
    let dir = p.root.join("secrets/per-machine/m1/api");
    let saved: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let bytes = fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    damage(&dir);
    let run = p.run(["check"]);
    for (path, bytes) in saved {
        fs::write(path, bytes).unwrap();
    }
    run
}

#[test]
fn check_refuses_empty_conflicted_and_mixed_age_files() {
    let (p, key) = keyed("check_refuses_damaged_age_files", &[("api", "agenix")]);
    p.manifest(&format!(
        "[nixos.m1]\nconfig.agenix.publicUserKeys = [\"{}\"]\n[nixos.m1.artifacts.api]\nbackend = \"agenix\"\ngenerator = \"generators/token.sh\"\nfiles.token = {{}}\nfiles.other = {{}}\nfiles.id = {{ secret = false }}\n",
        key.public
    ));
    p.generator(
        "token.sh",
        r#"head -c 24 /dev/urandom | base64 | tee "$out/token" > "$out/other"; echo "pub" > "$out/id""#,
    );
    p.run(["generate"]).success();
    let first = fs::read(p.root.join("secrets/per-machine/m1/api/token.age")).unwrap();
    p.run(["regenerate", "api", "--yes"]).success();
    p.run(["check"]).success();

    check_after(&p, |dir| fs::write(dir.join("token.age"), "").unwrap())
        .code(2)
        .stdout_has("token.age` is not a valid age file: the file is empty");

    check_after(&p, |dir| {
        let ours = fs::read_to_string(dir.join("token.age")).unwrap();
        let theirs = String::from_utf8(first.clone()).unwrap();
        let (head, ours_rest) = ours.split_once('\n').unwrap();
        let (_, theirs_rest) = theirs.split_once('\n').unwrap();
        // What git leaves when two branches regenerated the same file.
        let conflicted =
            format!("{head}\n<<<<<<< HEAD\n{ours_rest}=======\n{theirs_rest}>>>>>>> other\n");
        fs::write(dir.join("token.age"), conflicted).unwrap();
    })
    .code(2)
    .stdout_has("token.age` is not a valid age file");

    // A whole, valid file of the previous generation next to this one's.
    check_after(&p, |dir| fs::write(dir.join("token.age"), &first).unwrap())
        .code(2)
        .stdout_has("mixes two generations: `token.age`");
    // A conflicted record is an error too; a lost `.recipients` is for `rekey`.
    check_after(&p, |dir| {
        let record = fs::read_to_string(dir.join(".generation")).unwrap();
        fs::write(
            dir.join(".generation"),
            format!("<<<<<<< HEAD\n{record}=======\n{record}>>>>>>> other\n"),
        )
        .unwrap();
    })
    .code(2)
    .stdout_has("has an unreadable .generation line `<<<<<<< HEAD`");
    check_after(&p, |dir| fs::remove_file(dir.join(".recipients")).unwrap())
        .code(1)
        .stdout_has("recipients changed");
    p.run(["check"]).success();
}
