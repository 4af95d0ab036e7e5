//! The `age` and `sops` command groups of the `artifacts` binary: flags,
//! exit codes, atomic in-place writes, and nothing on stdout or in errors
//! that should not be there.

#[path = "../../artifacts-crypto/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

struct Outcome {
    /// The exit code.
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Outcome {
    fn assert_ok(&self) {
        assert_eq!(self.code, 0, "{}", self.stderr);
    }
}

/// Runs the `artifacts` binary in `dir` with exactly `env` (nothing
/// inherited from the test process) and `stdin`.
fn run_cli(dir: &Path, args: &[&str], env: &[(&str, &Path)], stdin: &[u8]) -> Outcome {
    let env: BTreeMap<String, OsString> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_os_str().to_os_string()))
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_artifacts"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(&env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to run artifacts {args:?}: {e}"));
    // A command that fails before reading its input closes the pipe early.
    match child.stdin.take().unwrap().write_all(stdin) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        result => result.unwrap(),
    }
    let out = child.wait_with_output().unwrap();
    Outcome {
        code: out.status.code().expect("artifacts was killed by a signal"),
        stdout: out.stdout,
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

const PLAIN: &[u8] = b"db:\n    password: hunter2\n    port: 5432\n";

#[test]
fn sops_encrypt_with_age_flag_then_decrypt_to_stdout_and_extract() {
    let dir = TestDir::new("cli-sops");
    let a = AgeKey::new(&dir, "a.txt");
    let b = AgeKey::new(&dir, "b.txt");
    dir.write("s.yaml", PLAIN);
    let age_list = format!("{},{}", a.recipient, b.recipient);
    let out = run_cli(
        dir.path(),
        &["sops", "encrypt", "--age", &age_list, "-i", "s.yaml"],
        &[],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    let enc = std::fs::read_to_string(dir.join("s.yaml")).unwrap();
    assert!(!enc.contains("hunter2") && enc.contains("ENC[AES256_GCM"));
    // The real sops agrees.
    let real = sops_ok(
        &dir,
        &["decrypt", dir.join("s.yaml").to_str().unwrap()],
        &key_env(&b.file),
    );
    assert_eq!(real, PLAIN);

    let env = [("SOPS_AGE_KEY_FILE", b.file.as_path())];
    let out = run_cli(dir.path(), &["sops", "decrypt", "s.yaml"], &env, b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, PLAIN);
    let out = run_cli(
        dir.path(),
        &[
            "sops",
            "decrypt",
            "--extract",
            r#"["db"]["password"]"#,
            "s.yaml",
        ],
        &env,
        b"",
    );
    assert_eq!(out.stdout, b"hunter2");
    let out = run_cli(
        dir.path(),
        &["sops", "get", "s.yaml", r#"["db"]["port"]"#],
        &env,
        b"",
    );
    assert_eq!(out.stdout, b"5432\n");
    let out = run_cli(
        dir.path(),
        &["sops", "decrypt", "--output-type", "json", "s.yaml"],
        &[("ARTIFACTS_IDENTITY", a.file.as_path())],
        b"",
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\n\t\"db\": {\n\t\t\"password\": \"hunter2\",\n\t\t\"port\": 5432\n\t}\n}\n"
    );
}

#[test]
fn sops_encrypt_uses_sops_yaml_creation_rules() {
    let dir = TestDir::new("cli-config");
    let a = AgeKey::new(&dir, "a.txt");
    dir.write(
        ".sops.yaml",
        format!(
            "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: {}\n    encrypted_regex: ^password$\n",
            a.recipient
        )
        .as_bytes(),
    );
    std::fs::create_dir(dir.join("secrets")).unwrap();
    dir.write("secrets/app.yaml", PLAIN);
    let out = run_cli(
        dir.path(),
        &["sops", "encrypt", "secrets/app.yaml"],
        &[],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let enc = String::from_utf8(out.stdout).unwrap();
    assert!(
        enc.contains("port: 5432"),
        "port stays plaintext under encrypted_regex:\n{enc}"
    );
    assert!(enc.contains("encrypted_regex: ^password$"));
    dir.write("elsewhere.yaml", PLAIN);
    let out = run_cli(dir.path(), &["sops", "encrypt", "elsewhere.yaml"], &[], b"");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("no creation rule"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

#[test]
fn sops_set_reads_the_value_from_stdin_or_a_file_never_argv() {
    let dir = TestDir::new("cli-set");
    let a = AgeKey::new(&dir, "a.txt");
    dir.write("s.yaml", PLAIN);
    run_cli(
        dir.path(),
        &["sops", "encrypt", "--age", &a.recipient, "-i", "s.yaml"],
        &[],
        b"",
    )
    .assert_ok();
    let env = [("SOPS_AGE_KEY_FILE", a.file.as_path())];
    let out = run_cli(
        dir.path(),
        &["sops", "set", "s.yaml", r#"["db"]["password"]"#],
        &env,
        br#""from stdin""#,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = dir.write("v.txt", b"raw value\n");
    let out = run_cli(
        dir.path(),
        &[
            "sops",
            "set",
            "--raw",
            "--value-file",
            v.to_str().unwrap(),
            "s.yaml",
            r#"["db"]["token"]"#,
        ],
        &env,
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run_cli(
        dir.path(),
        &["sops", "unset", "s.yaml", r#"["db"]["port"]"#],
        &env,
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let real = sops_ok(
        &dir,
        &["decrypt", dir.join("s.yaml").to_str().unwrap()],
        &key_env(&a.file),
    );
    assert_eq!(
        String::from_utf8(real).unwrap(),
        "db:\n    password: from stdin\n    token: |\n        raw value\n"
    );
    // Invalid JSON is a clear error that does not echo the value.
    let out = run_cli(
        dir.path(),
        &["sops", "set", "s.yaml", r#"["x"]"#],
        &env,
        b"not json secret",
    );
    assert_ne!(out.code, 0);
    // The message and any hint are both on stderr.
    assert!(!out.stderr.contains("secret"), "{}", out.stderr);
}

#[test]
fn failed_in_place_changes_leave_the_file_byte_identical_and_keep_its_mode() {
    let dir = TestDir::new("cli-atomic");
    let a = AgeKey::new(&dir, "a.txt");
    let other = AgeKey::new(&dir, "other.txt");
    dir.write("s.yaml", PLAIN);
    run_cli(
        dir.path(),
        &["sops", "encrypt", "--age", &a.recipient, "-i", "s.yaml"],
        &[],
        b"",
    )
    .assert_ok();
    let path = dir.join("s.yaml");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let before = std::fs::read(&path).unwrap();
    // Wrong key: set fails, file unchanged.
    let out = run_cli(
        dir.path(),
        &["sops", "set", "s.yaml", r#"["db"]["password"]"#],
        &[("SOPS_AGE_KEY_FILE", other.file.as_path())],
        br#""x""#,
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Success keeps the mode.
    let out = run_cli(
        dir.path(),
        &["sops", "rotate", "-i", "s.yaml"],
        &[("SOPS_AGE_KEY_FILE", a.file.as_path())],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_ne!(std::fs::read(&path).unwrap(), before);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")),
        "{names:?}"
    );
}

#[test]
fn decrypt_failures_print_nothing_on_stdout_and_name_the_file() {
    let dir = TestDir::new("cli-fail");
    let a = AgeKey::new(&dir, "a.txt");
    dir.write("s.yaml", PLAIN);
    run_cli(
        dir.path(),
        &["sops", "encrypt", "--age", &a.recipient, "-i", "s.yaml"],
        &[],
        b"",
    )
    .assert_ok();
    let text = std::fs::read_to_string(dir.join("s.yaml")).unwrap();
    let tampered = text.replacen(
        "port: ENC[AES256_GCM,data:",
        "port: ENC[AES256_GCM,data:AAAA",
        1,
    );
    dir.write("t.yaml", tampered.as_bytes());
    let env = [("SOPS_AGE_KEY_FILE", a.file.as_path())];
    for (file, want) in [
        (
            "t.yaml",
            "failed to decrypt the value at [\"db\"][\"port\"] in `t.yaml`",
        ),
        ("missing.yaml", "failed to read `"),
    ] {
        let out = run_cli(dir.path(), &["sops", "decrypt", file], &env, b"");
        assert!(out.stdout.is_empty(), "{file}: stdout not empty");
        assert_eq!(out.code, 1, "{file}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{file}: {}", out.stderr);
        assert!(!out.stderr.contains("hunter2"));
        assert!(out.stderr.lines().next().unwrap().starts_with("error: "));
        assert!(!out.stderr.lines().next().unwrap().ends_with('.'));
    }
    // No identity at all: a usage hint, separate from the message.
    let out = run_cli(dir.path(), &["sops", "decrypt", "s.yaml"], &[], b"");
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains("no age identity available"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: "), "{}", out.stderr);
}

#[test]
fn age_commands_round_trip_and_interoperate_with_age_cli() {
    let dir = TestDir::new("cli-age");
    let out = run_cli(dir.path(), &["age", "keygen", "-o", "key.txt"], &[], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let key = dir.join("key.txt");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = run_cli(dir.path(), &["age", "keygen", "-o", "key.txt"], &[], b"");
    assert_ne!(again.code, 0, "keygen must not overwrite a key");
    let out = run_cli(dir.path(), &["age", "recipients", "key.txt"], &[], b"");
    let recipient = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(recipient.starts_with("age1"));

    let rfile = dir.write("recipients.txt", format!("# me\n{recipient}\n").as_bytes());
    let out = run_cli(
        dir.path(),
        &[
            "age",
            "encrypt",
            "-R",
            rfile.to_str().unwrap(),
            "-a",
            "-o",
            "msg.age",
        ],
        &[],
        b"hello age",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(
        &tool("age", "age"),
        &[
            "-d".as_ref(),
            "-i".as_ref(),
            key.as_os_str(),
            dir.join("msg.age").as_os_str(),
        ],
        &[],
        dir.path(),
        None,
    );
    assert_eq!(out.stdout, b"hello age");
    let out = run_cli(
        dir.path(),
        &["age", "decrypt", "-i", "key.txt", "msg.age"],
        &[],
        b"",
    );
    assert_eq!(out.stdout, b"hello age");
    // Without identities: clear error, nothing on stdout.
    let out = run_cli(dir.path(), &["age", "decrypt", "msg.age"], &[], b"");
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr
            .contains("no age identity available to decrypt `msg.age`"),
        "{}",
        out.stderr
    );
    // Without recipients.
    let out = run_cli(dir.path(), &["age", "encrypt"], &[], b"x");
    assert!(out.stderr.contains("no recipients given"), "{}", out.stderr);
}

/// The all-zero X25519 point: the `age` crate panicked encrypting to it.
const LOW_ORDER: &str = "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq5cu47z";

#[test]
fn low_order_recipients_are_refused_with_ages_message() {
    let dir = TestDir::new("cli-low-order");
    let out = run_cli(
        dir.path(),
        &["age", "encrypt", "-r", LOW_ORDER, "-o", "msg.age"],
        &[],
        b"hello",
    );
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("bad input point"), "{}", out.stderr);
    assert!(out.stdout.is_empty() && !dir.join("msg.age").exists());

    dir.write("s.yaml", PLAIN);
    let out = run_cli(
        dir.path(),
        &["sops", "encrypt", "--age", LOW_ORDER, "-i", "s.yaml"],
        &[],
        b"",
    );
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("bad input point"), "{}", out.stderr);
    assert_eq!(std::fs::read(dir.join("s.yaml")).unwrap(), PLAIN);
}

#[test]
fn usage_errors_exit_2_with_their_hint_on_a_line_of_its_own() {
    let dir = TestDir::new("cli-usage");
    let out = run_cli(
        dir.path(),
        &["sops", "encrypt", "--age", "x"],
        &[],
        b"a: b\n",
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert_eq!(
        out.stderr,
        "error: cannot tell the format of standard input\nhint: pass --input-type or --filename-override\n"
    );
}
