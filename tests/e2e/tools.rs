//! The real tools the shipped-backend tests check against (`age`,
//! `age-keygen`, `sops`, `ssh-keygen`, `chattr`, `nix-instantiate`), keys
//! made for a test, and a directory made unwritable even for root. A missing
//! tool fails the test naming the package that provides it: these tests never
//! skip.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::util::Project;

pub use artifacts_testkit::{ok, sops_bin, tool};

/// Runs a tool in `cwd` with only `PATH`, `HOME` and `env` set, stdin null.
pub fn run_tool(program: &Path, args: &[&OsStr], env: &[(&str, &OsStr)], cwd: &Path) -> Output {
    artifacts_testkit::run(program, args, env, cwd, None)
}

/// An identity made for a test, and its public key (recipient).
pub struct Key {
    pub path: PathBuf,
    pub public: String,
}

/// An age key made by `artifacts age keygen -o`, whose public key it prints on stderr.
pub fn artifacts_keygen(p: &Project, name: &str) -> Key {
    let path = p.home.join(name);
    let run = p.run([
        OsStr::new("age"),
        OsStr::new("keygen"),
        OsStr::new("-o"),
        path.as_os_str(),
    ]);
    run.success();
    let public = run
        .stderr
        .split_whitespace()
        .find(|word| word.starts_with("age1"))
        .unwrap_or_else(|| run.fail("no age1… public key on stderr"))
        .to_owned();
    Key { path, public }
}

/// An age key made by the real `age-keygen`.
pub fn age_keygen(p: &Project, name: &str) -> Key {
    let path = p.home.join(name);
    let keygen = tool("age-keygen", "age");
    ok(
        "age-keygen",
        run_tool(&keygen, &[OsStr::new("-o"), path.as_os_str()], &[], &p.home),
    );
    let public = ok(
        "age-keygen -y",
        run_tool(&keygen, &[OsStr::new("-y"), path.as_os_str()], &[], &p.home),
    );
    Key {
        path,
        public: String::from_utf8(public).unwrap().trim().to_owned(),
    }
}

/// An ssh-ed25519 key pair made by the real `ssh-keygen` (no passphrase); the
/// public key is the `.pub` file's content, as a host's would be.
pub fn ssh_keygen(p: &Project, name: &str) -> Key {
    let path = p.home.join(name);
    ok(
        "ssh-keygen",
        run_tool(
            &tool("ssh-keygen", "openssh-client"),
            &[
                OsStr::new("-q"),
                OsStr::new("-t"),
                OsStr::new("ed25519"),
                OsStr::new("-N"),
                OsStr::new(""),
                OsStr::new("-C"),
                OsStr::new("root@test"),
                OsStr::new("-f"),
                path.as_os_str(),
            ],
            &[],
            &p.home,
        ),
    );
    let public = fs::read_to_string(path.with_extension("pub")).unwrap();
    Key {
        path,
        public: public.trim().to_owned(),
    }
}

/// `age -d -i KEY FILE` with the real age: the plaintext, or the failure.
pub fn age_decrypt(key: &Path, file: &Path) -> Output {
    run_tool(
        &tool("age", "age"),
        &[
            OsStr::new("-d"),
            OsStr::new("-i"),
            key.as_os_str(),
            file.as_os_str(),
        ],
        &[],
        file.parent().unwrap(),
    )
}

/// The real sops with `--disable-version-check`, in `cwd`, with `env`.
pub fn sops(cwd: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> Output {
    let mut all: Vec<&OsStr> = vec![OsStr::new("--disable-version-check")];
    all.extend(args.iter().map(OsStr::new));
    run_tool(&sops_bin(), &all, env, cwd)
}

/// [`Project::new`] for tests that use [`ReadOnlyDir`]: first clears an
/// immutable attribute a killed earlier run may have left behind (the
/// project could not be deleted otherwise).
pub fn project_with_read_only_dirs(test: &str) -> Project {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("e2e")
        .join(test);
    if base.exists() {
        let _ = Command::new("chattr")
            .arg("-R")
            .arg("-i")
            .arg(&base)
            .stderr(Stdio::null())
            .status();
    }
    Project::new(test)
}

/// A directory nobody can create, rename or delete entries in, root
/// included: mode 0555, plus the immutable attribute (`chattr +i`) when the
/// mode alone does not stop us (root bypasses permission bits). Undone on
/// drop, also when the test panics, so the next run can delete the project.
pub struct ReadOnlyDir {
    path: PathBuf,
    immutable: bool,
}

impl ReadOnlyDir {
    pub fn new(path: &Path) -> ReadOnlyDir {
        fs::set_permissions(path, fs::Permissions::from_mode(0o555)).unwrap();
        let mut guard = ReadOnlyDir {
            path: path.to_owned(),
            immutable: false,
        };
        if guard.writable() {
            let chattr = tool("chattr", "e2fsprogs");
            ok(
                "chattr +i",
                run_tool(&chattr, &[OsStr::new("+i"), path.as_os_str()], &[], path),
            );
            guard.immutable = true;
            assert!(
                !guard.writable(),
                "`{}` is still writable after chmod 0555 and chattr +i",
                path.display()
            );
        }
        guard
    }

    /// Whether an entry can be created in the directory (and removes it).
    fn writable(&self) -> bool {
        let probe = self.path.join(".probe");
        match fs::write(&probe, b"") {
            Ok(()) => {
                fs::remove_file(&probe).unwrap();
                true
            }
            Err(_) => false,
        }
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        if self.immutable {
            let _ = Command::new("chattr").arg("-i").arg(&self.path).status();
        }
        let _ = fs::set_permissions(&self.path, fs::Permissions::from_mode(0o755));
    }
}

/// Where a test finds something that lives outside the repository: `$var`
/// (else `default`, relative to the repository root) joined with `entry`.
/// Missing: see [`skip_outside_ci`].
fn outside_repo(var: &str, default: &str, entry: &str, test: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os(var) {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(default),
    };
    let path = dir.join(entry);
    if path.exists() {
        return Some(path);
    }
    skip_outside_ci(
        test,
        &format!("`{}` does not exist (set {var})", path.display()),
    );
    None
}

/// A test cannot run here: with `CI` set it fails, otherwise it says so
/// loudly, past the harness's output capture (the caller then returns).
pub fn skip_outside_ci(test: &str, why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {why}");
    }
    // One write, so parallel tests do not interleave it.
    use std::io::Write;
    let line = format!("\n*** SKIPPED {test}: {why} ***\n\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// An oracle program (`ssh-to-age`, `sops-install-secrets`): from
/// `$ARTIFACTS_ORACLE_TOOLS`, default `../shared/tools/bin`.
pub fn oracle(name: &str, test: &str) -> Option<PathBuf> {
    outside_repo("ARTIFACTS_ORACLE_TOOLS", "../shared/tools/bin", name, test)
}

/// The NixOS evaluation kit: `$ARTIFACTS_NIXOS_EVAL_KIT`, default `../shared/nixos-eval-kit`.
pub fn nixos_eval_kit(test: &str) -> Option<PathBuf> {
    let kit = outside_repo(
        "ARTIFACTS_NIXOS_EVAL_KIT",
        "../shared/nixos-eval-kit",
        "nixpkgs/nixos/lib/eval-config.nix",
        test,
    )?;
    Some(kit.ancestors().nth(4).unwrap().canonicalize().unwrap())
}

/// `ssh-to-age` (the oracle) on a public key: its `age1…` recipient.
pub fn ssh_to_age_public(oracle: &Path, public: &str, cwd: &Path) -> String {
    let mut child = Command::new(oracle)
        .current_dir(cwd)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", oracle.display()));
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), public.as_bytes()).unwrap();
    let out = ok("ssh-to-age", child.wait_with_output().unwrap());
    String::from_utf8(out).unwrap().trim().to_owned()
}

/// `ssh-to-age -private-key` (the oracle) on a private key, written as an
/// age key file (0600) at `out`.
pub fn ssh_to_age_private(oracle: &Path, key: &Path, out: &Path) {
    let secret = ok(
        "ssh-to-age -private-key",
        run_tool(
            oracle,
            &[
                OsStr::new("-private-key"),
                OsStr::new("-i"),
                key.as_os_str(),
                OsStr::new("-o"),
                out.as_os_str(),
            ],
            &[],
            out.parent().unwrap(),
        ),
    );
    assert!(secret.is_empty());
    fs::set_permissions(out, fs::Permissions::from_mode(0o600)).unwrap();
}
