//! Shared harness: a fresh project per test, real tools found or the test
//! fails naming the package, and the `artifacts` binary run with an
//! explicit environment (nothing inherited from the test process).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

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

    /// Makes `environments/<env>` a static environment: a `spec.json`
    /// with namespace `default` (without one, tanka loads it as inline).
    pub fn static_env(&self, env: &str) -> PathBuf {
        self.write(
            &format!("environments/{env}/spec.json"),
            &format!(
                "{{\"apiVersion\": \"tanka.dev/v1alpha1\", \"kind\": \"Environment\", \"metadata\": {{\"name\": \"{env}\"}}, \"spec\": {{\"namespace\": \"default\"}}}}\n"
            ),
        )
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
        let src = self
            .dir
            .path()
            .join(format!("{}.plain.yaml", env.replace('/', "_")));
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

    /// Runs the `artifacts` binary with `args` in `cwd` with exactly `env`
    /// (nothing inherited from the test process) and an empty stdin.
    pub fn run_in(&self, cwd: &Path, env: &BTreeMap<String, OsString>, args: &[&str]) -> Outcome {
        let out = Command::new(env!("CARGO_BIN_EXE_artifacts"))
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .envs(env)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("failed to run artifacts {args:?}: {e}"));
        Outcome {
            code: out.status.code().expect("artifacts was killed by a signal"),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
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
