//! `artifacts tanka secrets ENV` against the real sops: same data as
//! `sops -d`, for files the real sops wrote and files we wrote, with the key
//! from every supported source; and every failure closed.

mod common;

use std::process::Command;

use common::{Fixture, yaml_docs};

const PLAIN: &str = "\
db:
  password: hunter2-Ünïcödé-pässwörd
  port: 5432
  enabled: true
tls:
  cert: |
    -----BEGIN CERT-----
    MIIBszCCAVmgAwIBAgIU
    -----END CERT-----
tokens:
  - first-token-abc
  - second-token-def
empty: \"\"
";

fn secrets(
    fx: &Fixture,
    env: &std::collections::BTreeMap<String, std::ffi::OsString>,
    extra: &[&str],
) -> common::Outcome {
    let mut args = vec!["tanka", "secrets"];
    args.extend_from_slice(extra);
    args.push("default");
    fx.run(env, &args)
}

#[test]
fn secrets_of_a_file_written_by_sops_equal_sops_decrypt() {
    let fx = Fixture::new("sops-written");
    fx.write("environments/default/main.jsonnet", "{}");
    let file = fx.sops_encrypt("default", PLAIN);
    let out = secrets(&fx, &fx.with_key_file(), &[]);
    out.assert_ok();
    let expected = fx.sops_decrypt(&file);
    assert_eq!(yaml_docs(&out.stdout), yaml_docs(&expected));
    assert_eq!(yaml_docs(&out.stdout), yaml_docs(PLAIN));
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn secrets_of_a_file_we_wrote_equal_sops_decrypt() {
    let fx = Fixture::new("we-wrote");
    fx.write("environments/default/main.jsonnet", "{}");
    let plain = fx.write("plain.yaml", PLAIN);
    let target = fx.root().join("environments/default/secrets.sops.yaml");
    let out = fx.run(
        &fx.env,
        &[
            "sops",
            "encrypt",
            "--age",
            &fx.recipient,
            "--output",
            target.to_str().unwrap(),
            plain.to_str().unwrap(),
        ],
    );
    out.assert_ok();
    let ours = secrets(&fx, &fx.with_key_file(), &[]);
    ours.assert_ok();
    assert_eq!(
        yaml_docs(&ours.stdout),
        yaml_docs(&fx.sops_decrypt(&target))
    );
}

#[test]
fn every_key_source_decrypts() {
    let fx = Fixture::new("key-sources");
    fx.write("environments/default/main.jsonnet", "{}");
    // An ssh-ed25519 recipient next to the age one.
    let ssh_key = fx.dir.path().join("keys/id_ed25519");
    let keygen = Command::new(common::tool("ssh-keygen", "openssh-client"))
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(&ssh_key)
        .status()
        .unwrap();
    assert!(keygen.success());
    let ssh_pub = std::fs::read_to_string(ssh_key.with_extension("pub")).unwrap();
    let src = fx.dir.path().join("plain.yaml");
    std::fs::write(&src, PLAIN).unwrap();
    let enc = Command::new(common::sops_bin())
        .args(["--disable-version-check", "encrypt", "--age"])
        .arg(format!("{},{}", fx.recipient, ssh_pub.trim()))
        .args(["--input-type", "yaml", "--output-type", "yaml"])
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        enc.status.success(),
        "{}",
        String::from_utf8_lossy(&enc.stderr)
    );
    fx.write(
        "environments/default/secrets.sops.yaml",
        std::str::from_utf8(&enc.stdout).unwrap(),
    );
    let expected = yaml_docs(PLAIN);
    let key_text = std::fs::read_to_string(&fx.key_file).unwrap();
    let key = fx.key_file.to_str().unwrap();

    // --identity
    let out = secrets(&fx, &fx.env, &["--identity", key]);
    assert_eq!(yaml_docs(&out.assert_ok().stdout), expected);
    // each variable
    for (name, value) in [
        ("ARTIFACTS_IDENTITY", key.to_string()),
        ("SOPS_AGE_KEY_FILE", key.to_string()),
        ("SOPS_AGE_KEY", key_text.clone()),
        (
            "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
            ssh_key.to_str().unwrap().to_string(),
        ),
    ] {
        let mut env = fx.env.clone();
        env.insert(name.into(), value.into());
        let out = secrets(&fx, &env, &[]);
        assert_eq!(yaml_docs(&out.assert_ok().stdout), expected, "{name}");
    }
    // none at all
    let out = secrets(&fx, &fx.env, &[]);
    out.assert_failed_closed();
    assert!(out.stderr.contains("no age identity"), "{}", out.stderr);
}

#[test]
fn wrong_key_tampered_file_and_missing_file_fail_closed() {
    let fx = Fixture::new("secrets-fail");
    fx.write("environments/default/main.jsonnet", "{}");
    // missing file
    let out = secrets(&fx, &fx.with_key_file(), &[]);
    out.assert_failed_closed();
    assert!(out.stderr.contains("secrets.sops.yaml"), "{}", out.stderr);

    let file = fx.sops_encrypt("default", PLAIN);
    // wrong key
    let other = artifacts_crypto::age::keygen();
    let other_file = fx.dir.path().join("keys/other.txt");
    std::fs::write(&other_file, other.identity_file().as_bytes()).unwrap();
    let out = secrets(&fx, &fx.env, &["--identity", other_file.to_str().unwrap()]);
    out.assert_failed_closed();
    assert!(out.stderr.contains("no identity matches"), "{}", out.stderr);

    // tampered: swap two encrypted values (each still well-formed)
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let a = lines
        .iter()
        .position(|l| l.contains("password: ENC["))
        .unwrap();
    let b = lines.iter().position(|l| l.contains("port: ENC[")).unwrap();
    let value = |l: &str| l.split_once(": ").unwrap().1.to_string();
    let mut tampered: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    tampered[a] = format!(
        "{}: {}",
        lines[a].split_once(": ").unwrap().0,
        value(lines[b])
    );
    tampered[b] = format!(
        "{}: {}",
        lines[b].split_once(": ").unwrap().0,
        value(lines[a])
    );
    std::fs::write(&file, tampered.join("\n") + "\n").unwrap();
    let out = secrets(&fx, &fx.with_key_file(), &[]);
    out.assert_failed_closed();
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
}

#[test]
fn environment_paths_that_leave_environments_are_usage_errors() {
    let fx = Fixture::new("bad-env");
    for bad in [
        "../x",
        "a/../../x",
        "environments/../x",
        "/etc",
        "a//b",
        "-x",
        "a/-x",
        "",
    ] {
        let out = fx.run(&fx.with_key_file(), &["tanka", "secrets", "--", bad]);
        out.assert_failed_closed();
        assert_eq!(out.code, 2, "{bad}: {out:?}");
    }
}

#[test]
fn outside_a_project_the_error_comes_with_its_hint_on_a_line_of_its_own() {
    let fx = Fixture::new("no-project");
    // The fixture's temporary directory, above the project: no jsonnetfile.json.
    let out = fx.run_in(
        fx.dir.path(),
        &fx.with_key_file(),
        &["tanka", "secrets", "default"],
    );
    out.assert_failed_closed();
    assert_eq!(out.code, 1, "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(lines[0].starts_with("error: "), "{out:?}");
    assert_eq!(
        lines[1], "hint: run from inside a tanka project, or create `jsonnetfile.json` at its root",
        "{out:?}"
    );
}

#[test]
fn nested_environments_are_named_by_their_path() {
    let fx = Fixture::new("nested-secrets");
    fx.write("environments/prom-grafana/dev/main.jsonnet", "{}");
    let file = fx.sops_encrypt("prom-grafana/dev", PLAIN);
    let expected = yaml_docs(&fx.sops_decrypt(&file));
    // as a path below environments/, as tanka names it, and with a trailing /
    for name in [
        "prom-grafana/dev",
        "environments/prom-grafana/dev",
        "environments/prom-grafana/dev/",
    ] {
        let out = fx.run(&fx.with_key_file(), &["tanka", "secrets", name]);
        assert_eq!(yaml_docs(&out.assert_ok().stdout), expected, "{name}");
    }
    // the parent directory is no environment
    let out = fx.run(&fx.with_key_file(), &["tanka", "secrets", "prom-grafana"]);
    out.assert_failed_closed();
    assert!(out.stderr.contains("not found"), "{}", out.stderr);
}
