//! `artifacts activate` for the dummy backend: generated on the machine,
//! installed with exact owner, group and mode, idempotent, never half-written.
//! Runs as root (owners other than the caller need it).

use std::os::unix::fs::MetadataExt;

use crate::util::Project;

fn project(name: &str) -> Project {
    let p = Project::new(name);
    p.generator(
        "keys.sh",
        r#"head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$out/private"; echo "public" > "$out/public""#,
    )
    .manifest(
        r#"
[nixos.vm]
default.backend = "dummy"
[nixos.vm.artifacts.keys]
generator = "generators/keys.sh"
files.private = { owner = "nobody", group = "nogroup", mode = "0440" }
files.public = { path = "/etc/keys/public", mode = "0644" }
"#,
    );
    p
}

fn stat(path: &std::path::Path) -> (u32, u32, u32, u64) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.uid(), m.gid(), m.mode() & 0o7777, m.ino())
}

fn ids(user: &str, group: &str) -> (u32, u32) {
    let uid = nix::unistd::User::from_name(user)
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    let gid = nix::unistd::Group::from_name(group)
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    (uid, gid)
}

#[test]
fn activate_installs_with_exact_owner_group_and_mode_and_is_idempotent() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "activate tests run as root (CI does)"
    );
    let p = project("activate_installs_with_exact_owner_group_and_mode");
    let root = p.root.join("sysroot");
    let root_arg = root.to_str().unwrap();
    // Dummy artifacts are not stored: check is ok by design; generate only
    // checks what the generator writes, and installs nothing.
    p.run(["check", "--json"]).success();
    p.run(["generate"])
        .success()
        .stderr_has("checked nixos/vm keys: its generator wrote the declared files; backend `dummy` stores nothing");
    assert!(!root.exists(), "generate installed something");
    p.run(["activate", "--target", "vm", "--root", root_arg])
        .success()
        .stderr_has("installed");
    let private = root.join("run/artifacts/keys/private");
    let public = root.join("etc/keys/public");
    let (uid, gid) = ids("nobody", "nogroup");
    let (u, g, mode, inode) = stat(&private);
    assert_eq!((u, g, mode), (uid, gid, 0o440));
    let (u, g, mode, _) = stat(&public);
    assert_eq!((u, g, mode), (0, 0, 0o644));
    assert_eq!(
        stat(&root.join("etc/keys")).2,
        0o755,
        "parent directories are 0755"
    );
    assert_eq!(std::fs::read_to_string(&public).unwrap(), "public\n");
    let content = std::fs::read(&private).unwrap();
    assert_eq!(content.len(), 32);
    // Again: nothing changes, not even the inode; a temporary file an
    // activation killed before its rename left behind is removed.
    let leftover = root.join("run/artifacts/keys/.artifacts-install-0123456789abcdef");
    std::fs::write(&leftover, "half").unwrap();
    let again = p.run(["activate", "--target", "vm", "--root", root_arg]);
    again.success();
    assert!(
        !leftover.exists(),
        "the leftover temporary file is still there"
    );
    assert!(!again.stderr.contains("installed"), "{}", again.stderr);
    assert_eq!(stat(&private), (uid, gid, 0o440, inode));
    assert_eq!(std::fs::read(&private).unwrap(), content);
    // A wrong mode is corrected in place, without regenerating.
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    p.run(["activate", "--target", "vm", "--root", root_arg])
        .success()
        .stderr_has("fixed owner/mode of");
    assert_eq!(stat(&private), (uid, gid, 0o440, inode));
    assert_eq!(std::fs::read(&private).unwrap(), content);
    assert!(
        p.tmp_leftovers().is_empty(),
        "left in TMPDIR: {:?}",
        p.tmp_leftovers()
    );
}

#[test]
fn failing_generator_leaves_installed_files_untouched() {
    let p = project("failing_generator_leaves_installed_files_untouched");
    let root = p.root.join("sysroot");
    let root_arg = root.to_str().unwrap();
    p.run(["activate", "--target", "vm", "--root", root_arg])
        .success();
    let private = root.join("run/artifacts/keys/private");
    let public = root.join("etc/keys/public");
    let before = (std::fs::read(&private).unwrap(), stat(&private));
    // One file missing forces a generation, which fails.
    std::fs::remove_file(&public).unwrap();
    p.generator("keys.sh", r#"echo "no entropy today" >&2; exit 1"#);
    p.run(["activate", "--target", "vm", "--root", root_arg])
        .code(1)
        .stderr_has("no entropy today");
    assert_eq!((std::fs::read(&private).unwrap(), stat(&private)), before);
    assert!(!public.exists());
    let leftovers: Vec<_> = std::fs::read_dir(root.join("run/artifacts/keys"))
        .unwrap()
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "a temporary file was left next to the destination"
    );
}

#[test]
fn activate_needs_exactly_one_target_and_names_unknown_accounts() {
    let p = project("activate_needs_exactly_one_target");
    p.run(["activate"])
        .code(2)
        .stderr_has("pass exactly one --target");
    p.manifest(
        r#"
[nixos.vm]
default.backend = "dummy"
artifacts.keys = { generator = "generators/keys.sh", files.private = { owner = "no-such-user-x" }, files.public = {} }
"#,
    );
    let root = p.root.join("sysroot");
    p.run([
        "activate",
        "--target",
        "vm",
        "--root",
        root.to_str().unwrap(),
    ])
    .code(1)
    .stderr_has(
        "user `no-such-user-x` of `/run/artifacts/keys/private` does not exist on this system",
    );
}

/// A Home Manager user's files belong to whoever installs them: root
/// activating another user's would leave root-owned files that user cannot
/// read, so it is refused before anything runs, naming the user to run it
/// as; a staging `--root` and root's own configuration are allowed.
#[test]
fn root_does_not_activate_another_users_home_manager_files() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "activate tests run as root (CI does)"
    );
    let p = Project::new("root_does_not_activate_a_users_files");
    p.generator("line.sh", r#"echo value > "$out/line""#)
        .manifest(
            r#"
default.backend = "dummy"
[home.alice.artifacts.line]
generator = "generators/line.sh"
files.line = { path = "~/line" }
[home.root.artifacts.line]
generator = "generators/line.sh"
files.line = { path = "~/line" }
"#,
        );
    p.run(["activate", "--target", "homemanager/alice"])
        .code(2)
        .stderr_has("installs files that belong to whoever runs it, and this is root: run it as the user `alice`");
    assert!(!p.home.join("line").exists(), "installed as root");
    let staging = p.root.join("staging");
    let staged = p.run([
        "activate",
        "--target",
        "homemanager/alice",
        "--root",
        staging.to_str().unwrap(),
    ]);
    staged.stderr_lacks("this is root");
    p.run(["activate", "--target", "homemanager/root"])
        .success();
    assert_eq!(
        std::fs::read_to_string(p.home.join("line")).unwrap(),
        "value\n"
    );
}
