//! The `age` and `sops` command groups run in-process through clap, the way
//! the `artifacts` binary embeds them: flags, exit codes, atomic in-place
//! writes, and nothing on stdout or in errors that should not be there.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use artifacts_crypto::age::NoPassphrase;
use artifacts_crypto::cli::{AgeCommand, CliError, Io, SopsCommand};
use clap::Parser;
use common::*;

#[derive(Parser)]
struct TestCli {
    #[command(subcommand)]
    top: Top,
}

#[derive(clap::Subcommand)]
enum Top {
    #[command(subcommand)]
    Age(AgeCommand),
    #[command(subcommand)]
    Sops(SopsCommand),
}

struct Outcome {
    result: Result<(), CliError>,
    stdout: Vec<u8>,
    stderr: String,
}

fn run_cli(dir: &Path, args: &[&str], env: &[(&str, &Path)], stdin: &[u8]) -> Outcome {
    let mut argv = vec!["artifacts"];
    argv.extend_from_slice(args);
    let cli = TestCli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let env: BTreeMap<String, OsString> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_os_str().to_os_string()))
        .collect();
    let mut stdin = stdin;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let result = {
        let mut io = Io {
            stdin: &mut stdin,
            stdout: &mut stdout,
            stderr: &mut stderr,
            env: &env,
            cwd: dir.to_path_buf(),
            passphrase: &NoPassphrase,
        };
        match &cli.top {
            Top::Age(c) => c.run(&mut io),
            Top::Sops(c) => c.run(&mut io),
        }
    };
    if let Err(e) = &result {
        e.report(&mut stderr);
    }
    Outcome {
        result,
        stdout,
        stderr: String::from_utf8(stderr).unwrap(),
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
    assert!(out.result.is_ok(), "{}", out.stderr);
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
    assert!(out.result.is_ok(), "{}", out.stderr);
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
    assert!(out.result.is_ok(), "{}", out.stderr);
    let enc = String::from_utf8(out.stdout).unwrap();
    assert!(
        enc.contains("port: 5432"),
        "port stays plaintext under encrypted_regex:\n{enc}"
    );
    assert!(enc.contains("encrypted_regex: ^password$"));
    dir.write("elsewhere.yaml", PLAIN);
    let out = run_cli(dir.path(), &["sops", "encrypt", "elsewhere.yaml"], &[], b"");
    let e = out.result.unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert!(e.to_string().contains("no creation rule"), "{e}");
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
    .result
    .unwrap();
    let env = [("SOPS_AGE_KEY_FILE", a.file.as_path())];
    let out = run_cli(
        dir.path(),
        &["sops", "set", "s.yaml", r#"["db"]["password"]"#],
        &env,
        br#""from stdin""#,
    );
    assert!(out.result.is_ok(), "{}", out.stderr);
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
    assert!(out.result.is_ok(), "{}", out.stderr);
    let out = run_cli(
        dir.path(),
        &["sops", "unset", "s.yaml", r#"["db"]["port"]"#],
        &env,
        b"",
    );
    assert!(out.result.is_ok(), "{}", out.stderr);
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
    let e = out.result.unwrap_err();
    assert!(!out.stderr.contains("secret"), "{}", out.stderr);
    assert!(e.hint().is_none() || !e.hint().unwrap().contains("secret"));
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
    .result
    .unwrap();
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
    assert_eq!(out.result.unwrap_err().exit_code(), 1);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Success keeps the mode.
    let out = run_cli(
        dir.path(),
        &["sops", "rotate", "-i", "s.yaml"],
        &[("SOPS_AGE_KEY_FILE", a.file.as_path())],
        b"",
    );
    assert!(out.result.is_ok(), "{}", out.stderr);
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
    .result
    .unwrap();
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
        let e = out.result.unwrap_err();
        assert_eq!(e.exit_code(), 1);
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
    assert!(out.result.is_ok(), "{}", out.stderr);
    let key = dir.join("key.txt");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = run_cli(dir.path(), &["age", "keygen", "-o", "key.txt"], &[], b"");
    assert!(again.result.is_err(), "keygen must not overwrite a key");
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
    assert!(out.result.is_ok(), "{}", out.stderr);
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
    assert!(out.result.is_err());
    assert!(out.stderr.contains("bad input point"), "{}", out.stderr);
    assert!(out.stdout.is_empty() && !dir.join("msg.age").exists());

    dir.write("s.yaml", PLAIN);
    let out = run_cli(
        dir.path(),
        &["sops", "encrypt", "--age", LOW_ORDER, "-i", "s.yaml"],
        &[],
        b"",
    );
    assert!(out.result.is_err());
    assert!(out.stderr.contains("bad input point"), "{}", out.stderr);
    assert_eq!(std::fs::read(dir.join("s.yaml")).unwrap(), PLAIN);
}
