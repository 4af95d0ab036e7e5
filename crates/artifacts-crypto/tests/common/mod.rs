//! Shared helpers for the interop tests: locating the real `sops`, `age`,
//! `age-keygen` and `ssh-keygen` (a missing tool fails the test with the
//! command that installs it), private temp dirs, and key fixtures.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use artifacts_crypto::age::{self, Identity, NoPassphrase, Recipient};

pub use artifacts_testkit::{run, sops_bin, tool};

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
        let out = run(
            &tool("ssh-keygen", "openssh-client"),
            &args,
            &[],
            dir.path(),
            None,
        );
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
