//! Shared harness: a fresh project per test, real tools found or the test
//! fails naming the package, and the commands run in-process with an
//! explicit environment (nothing inherited from the test process).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use artifacts_crypto::age::NoPassphrase;
use artifacts_tanka::cli::{CmpCommand, Io, TankaCommand};
use clap::Parser;

#[derive(Parser)]
struct TestCli {
    #[command(subcommand)]
    command: Top,
}

#[derive(clap::Subcommand)]
enum Top {
    #[command(subcommand)]
    Tanka(TankaCommand),
    #[command(subcommand)]
    Cmp(CmpCommand),
    #[command(subcommand)]
    Sops(artifacts_crypto::cli::SopsCommand),
}

/// What a command did.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        self
    }

    /// Failed closed: non-zero exit and nothing at all on stdout.
    pub fn assert_failed_closed(&self) -> &Self {
        assert_ne!(self.code, 0, "command unexpectedly succeeded: {self:#?}");
        assert!(
            self.stdout.is_empty(),
            "stdout not empty on failure: {self:#?}"
        );
        self
    }
}

pub use artifacts_testkit::{sops_bin, tool};

/// The C++ `jsonnet` (Debian), the reference the builtin engine is checked against.
pub fn jsonnet() -> PathBuf {
    tool("jsonnet", "jsonnet")
}

/// A temp project with an age key.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub key_file: PathBuf,
    pub recipient: String,
    pub env: BTreeMap<String, OsString>,
}

impl Fixture {
    pub fn new(name: &str) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tanka-{name}-"))
            .tempdir()
            .unwrap();
        let key = artifacts_crypto::age::keygen();
        let keys = dir.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        let key_file = keys.join("age.txt");
        std::fs::write(&key_file, key.identity_file().as_bytes()).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let project = dir.path().join("project");
        std::fs::create_dir(&project).unwrap();
        std::fs::write(project.join("jsonnetfile.json"), "{\"version\": 1}\n").unwrap();
        let mut env = BTreeMap::new();
        env.insert(
            "PATH".to_string(),
            std::env::var_os("PATH").unwrap_or_default(),
        );
        env.insert("HOME".to_string(), dir.path().join("home").into_os_string());
        env.insert("TMPDIR".to_string(), std::env::temp_dir().into_os_string());
        Fixture {
            dir,
            key_file,
            recipient: key.recipient(),
            env,
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn with_key_file(&self) -> BTreeMap<String, OsString> {
        let mut env = self.env.clone();
        env.insert(
            "SOPS_AGE_KEY_FILE".into(),
            self.key_file.clone().into_os_string(),
        );
        env
    }

    /// Encrypts `plain` with the real sops into `environments/<env>/secrets.sops.yaml`.
    pub fn sops_encrypt(&self, env: &str, plain: &str) -> PathBuf {
        let src = self.dir.path().join(format!("{env}.plain.yaml"));
        std::fs::write(&src, plain).unwrap();
        let out = Command::new(sops_bin())
            .args(["--disable-version-check", "encrypt", "--age"])
            .arg(&self.recipient)
            .args(["--input-type", "yaml", "--output-type", "yaml"])
            .arg(&src)
            .env_remove("SOPS_AGE_KEY_FILE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sops encrypt: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_file(&src).unwrap();
        self.write(
            &format!("environments/{env}/secrets.sops.yaml"),
            std::str::from_utf8(&out.stdout).unwrap(),
        )
    }

    /// `sops -d` of a file, with the fixture's key.
    pub fn sops_decrypt(&self, path: &Path) -> String {
        let out = Command::new(sops_bin())
            .args(["--disable-version-check", "decrypt"])
            .arg(path)
            .env("SOPS_AGE_KEY_FILE", &self.key_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sops -d: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `artifacts <args…>` in-process in `cwd` with exactly `env`.
    pub fn run_in(&self, cwd: &Path, env: &BTreeMap<String, OsString>, args: &[&str]) -> Outcome {
        let cli = TestCli::try_parse_from(std::iter::once("artifacts").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("bad test arguments {args:?}: {e}"));
        let mut stdin: &[u8] = b"";
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let result = {
            let mut io = Io {
                stdin: &mut stdin,
                stdout: &mut stdout,
                stderr: &mut stderr,
                env,
                cwd: cwd.to_path_buf(),
                passphrase: &NoPassphrase,
            };
            match &cli.command {
                Top::Tanka(c) => c.run(&mut io).map_err(|e| {
                    e.report(io.stderr);
                    e.exit_code()
                }),
                Top::Cmp(c) => c.run(&mut io).map_err(|e| {
                    e.report(io.stderr);
                    e.exit_code()
                }),
                Top::Sops(c) => c.run(&mut io).map_err(|e| {
                    e.report(io.stderr);
                    e.exit_code()
                }),
            }
        };
        Outcome {
            code: result.err().unwrap_or(0),
            stdout: String::from_utf8(stdout).unwrap(),
            stderr: String::from_utf8(stderr).unwrap(),
        }
    }

    pub fn run(&self, env: &BTreeMap<String, OsString>, args: &[&str]) -> Outcome {
        self.run_in(&self.root(), env, args)
    }
}

/// Parses YAML (one document or a stream) into JSON values.
pub fn yaml_docs(text: &str) -> Vec<serde_json::Value> {
    artifacts_tanka::output::parse_stream(text).unwrap()
}
