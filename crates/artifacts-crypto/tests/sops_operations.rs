//! set / unset / updatekeys / rotate / SSH recipients, checked against the
//! real sops in both directions, and tampering that must be detected.

mod common;

use std::ffi::OsStr;

use artifacts_crypto::Error;
use artifacts_crypto::Origin;
use artifacts_crypto::age::Recipient;
use artifacts_crypto::sops::{self, EncryptOptions, EncryptedFile, Format, TreePath, Value};
use common::*;

const PLAIN: &str = "db:\n  user: admin\n  password: hunter2\n  port: 5432\nlist:\n  - a\n  - b\n";

fn ours_encrypt(
    dir: &TestDir,
    name: &str,
    plain: &str,
    recipients: Vec<Recipient>,
) -> std::path::PathBuf {
    let origin = Origin::file(name);
    let doc = sops::parse_plain(plain.as_bytes(), Format::Yaml, &origin).unwrap();
    let opts = EncryptOptions {
        recipients,
        ..Default::default()
    };
    let f = sops::encrypt(doc, Format::Yaml, &opts, &origin).unwrap();
    dir.write(name, &f.to_bytes())
}

fn sops_d(dir: &TestDir, file: &std::path::Path, key: &std::path::Path) -> String {
    String::from_utf8(sops_ok(
        dir,
        &["decrypt", file.to_str().unwrap()],
        &key_env(key),
    ))
    .unwrap()
}

#[test]
fn our_set_and_unset_are_read_by_sops_and_keep_unchanged_ciphertexts() {
    let dir = TestDir::new("set");
    let a = AgeKey::new(&dir, "a.txt");
    let path = ours_encrypt(&dir, "s.yaml", PLAIN, vec![a.recipient()]);
    let before = std::fs::read_to_string(&path).unwrap();
    let file = EncryptedFile::read(&path, None).unwrap();
    let mut dec = file.decrypt(&a.identities()).unwrap();
    dec.set(
        &TreePath::parse(r#"["db"]["password"]"#).unwrap(),
        Value::Str("new secret".into()),
    )
    .unwrap();
    dec.set(
        &TreePath::parse(r#"["extra"]["nested"]"#).unwrap(),
        Value::Int(7),
    )
    .unwrap();
    dec.unset(&TreePath::parse(r#"["db"]["port"]"#).unwrap())
        .unwrap();
    std::fs::write(&path, dec.encrypt().unwrap().to_bytes()).unwrap();
    let after = std::fs::read_to_string(&path).unwrap();
    // The untouched user value keeps its exact ciphertext (same IV as before).
    let user_line = |s: &str| s.lines().find(|l| l.contains("user:")).unwrap().to_string();
    assert_eq!(user_line(&before), user_line(&after));
    assert_eq!(
        sops_d(&dir, &path, &a.file),
        "db:\n    user: admin\n    password: new secret\nlist:\n    - a\n    - b\nextra:\n    nested: 7\n"
    );
}

/// The real sops changes a file (`set` of an existing nested value and of a
/// new key, then `rotate`) that we or sops wrote; after each step our
/// decryption must equal `sops -d`, in YAML and JSON.
#[test]
fn files_changed_by_sops_set_and_rotate_decrypt_like_sops_d() {
    let dir = TestDir::new("sops-set");
    let a = AgeKey::new(&dir, "a.txt");
    let b = AgeKey::new(&dir, "b.txt");
    let json_plain =
        r#"{"db": {"user": "admin", "password": "hunter2", "port": 5432}, "list": ["a", "b"]}"#;
    for (format, plain) in [(Format::Yaml, PLAIN), (Format::Json, json_plain)] {
        let ext = format.name();
        for writer in ["ours", "sops"] {
            let name = format!("{writer}.{ext}");
            let path = if writer == "ours" {
                let origin = Origin::file(&name);
                let doc = sops::parse_plain(plain.as_bytes(), format, &origin).unwrap();
                let opts = EncryptOptions {
                    recipients: vec![a.recipient(), b.recipient()],
                    ..Default::default()
                };
                dir.write(
                    &name,
                    &sops::encrypt(doc, format, &opts, &origin)
                        .unwrap()
                        .to_bytes(),
                )
            } else {
                let input = dir.write(&format!("plain.{ext}"), plain.as_bytes());
                let recipients = format!("{},{}", a.recipient, b.recipient);
                let enc = sops_ok(
                    &dir,
                    &["encrypt", "--age", &recipients, input.to_str().unwrap()],
                    &[],
                );
                dir.write(&name, &enc)
            };
            let p = path.to_str().unwrap();
            let value = dir.write("value.json", br#""from sops \u00e9\nline 2""#);
            let number = dir.write("number.json", b"42");
            let steps: [&[&str]; 3] = [
                &[
                    "set",
                    "--value-file",
                    p,
                    r#"["db"]["password"]"#,
                    value.to_str().unwrap(),
                ],
                &[
                    "set",
                    "--value-file",
                    p,
                    r#"["added"]"#,
                    number.to_str().unwrap(),
                ],
                &["rotate", "-i", p],
            ];
            for step in steps {
                sops_ok(&dir, step, &key_env(&a.file));
                let expected = sops_d(&dir, &path, &b.file);
                let file = EncryptedFile::read(&path, None).unwrap();
                let ours = file
                    .decrypt(&b.identities())
                    .unwrap_or_else(|e| panic!("{name} after sops {step:?}: {e}"));
                assert_eq!(
                    String::from_utf8_lossy(&ours.to_plain_bytes(None).unwrap()),
                    expected,
                    "{name} after sops {step:?}"
                );
            }
            assert!(sops_d(&dir, &path, &a.file).contains("from sops"));
        }
    }
}

#[test]
fn updatekeys_adds_and_removes_recipients_for_sops() {
    let dir = TestDir::new("updatekeys");
    let a = AgeKey::new(&dir, "a.txt");
    let b = AgeKey::new(&dir, "b.txt");
    let c = AgeKey::new(&dir, "c.txt");
    let path = ours_encrypt(&dir, "u.yaml", PLAIN, vec![a.recipient(), b.recipient()]);
    let mut file = EncryptedFile::read(&path, None).unwrap();
    let changes = file
        .update_keys(&b.identities(), &[b.recipient(), c.recipient()])
        .unwrap();
    assert_eq!(changes.added, vec![c.recipient.clone()]);
    assert_eq!(changes.removed, vec![a.recipient.clone()]);
    std::fs::write(&path, file.to_bytes()).unwrap();
    assert!(sops_d(&dir, &path, &c.file).contains("password: hunter2"));
    let out = sops(
        &dir,
        &["decrypt", path.to_str().unwrap()],
        &key_env(&a.file),
        None,
    );
    assert!(
        !out.status.success(),
        "the removed recipient can still decrypt"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn our_rotate_changes_the_data_key_and_sops_reads_it() {
    let dir = TestDir::new("rotate");
    let a = AgeKey::new(&dir, "a.txt");
    let b = AgeKey::new(&dir, "b.txt");
    let path = ours_encrypt(&dir, "r.yaml", PLAIN, vec![a.recipient()]);
    let file = EncryptedFile::read(&path, None).unwrap();
    let old_key = *file.data_key(&a.identities()).unwrap().as_bytes();
    let rotated = file
        .decrypt(&a.identities())
        .unwrap()
        .rotate(Some(&[a.recipient(), b.recipient()]))
        .unwrap();
    std::fs::write(&path, rotated.to_bytes()).unwrap();
    let file = EncryptedFile::read(&path, None).unwrap();
    assert_ne!(*file.data_key(&b.identities()).unwrap().as_bytes(), old_key);
    assert!(sops_d(&dir, &path, &b.file).contains("password: hunter2"));
}

/// Several X25519 and SSH (ed25519, rsa) recipients in one file: each key
/// decrypts what the other side wrote.
#[test]
fn mixed_x25519_and_ssh_recipients_interoperate_with_sops_both_ways() {
    let dir = TestDir::new("ssh");
    let x1 = AgeKey::new(&dir, "x1.txt");
    let x2 = AgeKey::new(&dir, "x2.txt");
    let ed = SshKey::new(&dir, "id_ed25519", "ed25519", "");
    let rsa = SshKey::new(&dir, "id_rsa", "rsa", "");
    let all = [
        x1.recipient.as_str(),
        x2.recipient.as_str(),
        ed.public.as_str(),
        rsa.public.as_str(),
    ];
    // sops encrypts to all four; we decrypt with each.
    let input = dir.write("in.yaml", PLAIN.as_bytes());
    let enc = sops_ok(
        &dir,
        &["encrypt", "--age", &all.join(","), input.to_str().unwrap()],
        &[],
    );
    let file = EncryptedFile::parse(&enc, Format::Yaml, &Origin::Stdin).unwrap();
    assert_eq!(file.metadata().age.len(), 4);
    for ids in [
        x1.identities(),
        x2.identities(),
        ed.identities(),
        rsa.identities(),
    ] {
        let dec = file.decrypt(&ids).unwrap();
        let v = dec
            .extract(&TreePath::parse(r#"["db"]["password"]"#).unwrap(), None)
            .unwrap();
        assert_eq!(&v[..], b"hunter2");
    }
    // We encrypt to all four; sops decrypts with each.
    let recipients = all.iter().map(|r| Recipient::parse(r).unwrap()).collect();
    let path = ours_encrypt(&dir, "ours.yaml", PLAIN, recipients);
    let envs: [(&str, &OsStr); 4] = [
        ("SOPS_AGE_KEY_FILE", x1.file.as_os_str()),
        ("SOPS_AGE_KEY_FILE", x2.file.as_os_str()),
        ("SOPS_AGE_SSH_PRIVATE_KEY_FILE", ed.private.as_os_str()),
        ("SOPS_AGE_SSH_PRIVATE_KEY_FILE", rsa.private.as_os_str()),
    ];
    for env in envs {
        let out = sops_ok(
            &dir,
            &[
                "decrypt",
                "--extract",
                r#"["db"]["password"]"#,
                path.to_str().unwrap(),
            ],
            &[env],
        );
        assert_eq!(out, b"hunter2", "{env:?}");
    }
}

fn tamper(dir: &TestDir, a: &AgeKey, f: impl Fn(&str) -> String) -> Error {
    let path = ours_encrypt(dir, "t.yaml", PLAIN, vec![a.recipient()]);
    let text = std::fs::read_to_string(&path).unwrap();
    let changed = f(&text);
    assert_ne!(changed, text, "the tamper function changed nothing");
    EncryptedFile::parse(changed.as_bytes(), Format::Yaml, &Origin::file("t.yaml"))
        .and_then(|file| file.decrypt(&a.identities()))
        .expect_err("tampering went unnoticed")
}

fn enc_field<'a>(text: &'a str, key: &str) -> &'a str {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(key))
        .unwrap();
    line.split_once(": ").unwrap().1
}

#[test]
fn tampering_is_detected_with_an_error_naming_the_file() {
    let dir = TestDir::new("tamper");
    let a = AgeKey::new(&dir, "a.txt");
    // A changed ciphertext byte fails AES-GCM authentication of that value.
    let e = tamper(&dir, &a, |t| {
        // Change the password's own value: another value's `data:` may start alike.
        let v = enc_field(t, "password:");
        let data = v.split("data:").nth(1).unwrap();
        let first = data.chars().next().unwrap();
        let repl = if first == 'A' { 'B' } else { 'A' };
        let changed = v.replacen(&format!("data:{first}"), &format!("data:{repl}"), 1);
        t.replacen(v, &changed, 1)
    });
    assert!(
        matches!(&e, Error::ValueDecrypt { key, .. } if key == r#"["db"]["password"]"#),
        "{e}"
    );
    assert!(e.to_string().contains("t.yaml"));
    // Values swapped between keys fail because the key path is authenticated.
    let e = tamper(&dir, &a, |t| {
        let user = enc_field(t, "user:").to_string();
        let pass = enc_field(t, "password:").to_string();
        t.replace(&user, "@@U@@")
            .replace(&pass, &user)
            .replace("@@U@@", &pass)
    });
    assert!(matches!(e, Error::ValueDecrypt { .. }), "{e}");
    // A changed lastmodified breaks the MAC's additional data.
    let e = tamper(&dir, &a, |t| {
        let lm = enc_field(t, "lastmodified:");
        t.replace(lm, "\"2001-01-01T00:00:00Z\"")
    });
    assert!(matches!(e, Error::MacMismatch { .. }), "{e}");
    // A removed value changes the MAC.
    let e = tamper(&dir, &a, |t| {
        let line = t.lines().find(|l| l.contains("port:")).unwrap();
        t.replace(&format!("{line}\n"), "")
    });
    assert!(matches!(e, Error::MacMismatch { .. }), "{e}");
    // A removed list item changes the MAC.
    let e = tamper(&dir, &a, |t| {
        let line = t
            .lines()
            .find(|l| l.trim_start().starts_with("- ENC"))
            .unwrap();
        t.replacen(&format!("{line}\n"), "", 1)
    });
    assert!(matches!(e, Error::MacMismatch { .. }), "{e}");
    // A replaced MAC.
    let e = tamper(&dir, &a, |t| {
        let mac = enc_field(t, "mac:");
        let pass = enc_field(t, "password:");
        t.replace(mac, pass)
    });
    assert!(matches!(e, Error::MacMismatch { .. }), "{e}");
    // A truncated file loses its metadata.
    let e = tamper(&dir, &a, |t| t[..t.len() / 3].to_string());
    assert!(
        matches!(e, Error::MetadataMissing { .. } | Error::Parse { .. }),
        "{e}"
    );
}

#[test]
fn wrong_or_missing_identities_are_clear_errors() {
    let dir = TestDir::new("wrong-key");
    let a = AgeKey::new(&dir, "a.txt");
    let other = AgeKey::new(&dir, "other.txt");
    let path = ours_encrypt(&dir, "w.yaml", PLAIN, vec![a.recipient()]);
    let file = EncryptedFile::read(&path, None).unwrap();
    let e = file.decrypt(&other.identities()).unwrap_err();
    match &e {
        Error::NoMatchingIdentity { recipients, .. } => {
            assert_eq!(recipients, &vec![a.recipient.clone()])
        }
        other => panic!("unexpected {other}"),
    }
    assert!(e.to_string().contains("w.yaml"), "{e}");
    assert!(e.hint().is_some());
    let e = file.decrypt(&[]).unwrap_err();
    assert!(matches!(e, Error::NoIdentities { .. }), "{e}");
}

#[test]
fn shamir_key_groups_written_by_sops_are_refused_not_misread() {
    let dir = TestDir::new("shamir");
    let a = AgeKey::new(&dir, "a.txt");
    let b = AgeKey::new(&dir, "b.txt");
    dir.write(
        ".sops.yaml",
        format!(
            "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [{}]\n      - age: [{}]\n",
            a.recipient, b.recipient
        )
        .as_bytes(),
    );
    let input = dir.write("kg.yaml", PLAIN.as_bytes());
    let enc = sops_ok(&dir, &["encrypt", input.to_str().unwrap()], &[]);
    let file = EncryptedFile::parse(&enc, Format::Yaml, &Origin::file("kg.yaml")).unwrap();
    let e = file.decrypt(&a.identities()).unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported { feature, .. } if feature.contains("shamir")),
        "{e}"
    );
}

#[test]
fn sops_comment_regex_and_mac_only_encrypted_files_decrypt_with_ours() {
    let dir = TestDir::new("comment-regex");
    let a = AgeKey::new(&dir, "a.txt");
    dir.write(
        ".sops.yaml",
        format!(
            "creation_rules:\n  - age: {}\n    mac_only_encrypted: true\n    unencrypted_comment_regex: pub\n",
            a.recipient
        )
        .as_bytes(),
    );
    let input = dir.write("m.yaml", b"# pub\na: 1\n# hidden\nb: 2\nc: [x]\n");
    let enc = sops_ok(&dir, &["encrypt", input.to_str().unwrap()], &[]);
    let enc_path = dir.write("m.enc.yaml", &enc);
    let expected = sops_d(&dir, &enc_path, &a.file);
    let file = EncryptedFile::parse(&enc, Format::Yaml, &Origin::file(&enc_path)).unwrap();
    let dec = file.decrypt(&a.identities()).unwrap();
    assert_eq!(
        String::from_utf8(dec.to_plain_bytes(None).unwrap().to_vec()).unwrap(),
        expected
    );
    // And sops reads it back after we re-encrypt with the same rules.
    let again = dir.write("again.yaml", &dec.encrypt().unwrap().to_bytes());
    assert_eq!(sops_d(&dir, &again, &a.file), expected);
}

#[allow(dead_code)]
fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[test]
fn files_larger_than_the_cap_are_not_read_whole() {
    // /dev/zero never ends: only the cap stops the read.
    let e = EncryptedFile::read(std::path::Path::new("/dev/zero"), Some(Format::Yaml)).unwrap_err();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert!(text.contains("larger than 67108864 bytes"), "{text}");
}

#[test]
fn files_listing_too_many_age_recipients_are_refused_before_decryption() {
    let key = artifacts_crypto::age::keygen();
    let origin = Origin::Described("many".into());
    let doc = sops::parse_plain(br#"{"a": "b"}"#, Format::Json, &origin).unwrap();
    let opts = EncryptOptions {
        recipients: vec![Recipient::parse(&key.recipient()).unwrap()],
        ..Default::default()
    };
    let enc = sops::encrypt(doc, Format::Json, &opts, &origin).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&enc.to_bytes()).unwrap();
    let entry = v["sops"]["age"][0].clone();
    v["sops"]["age"] = serde_json::Value::Array(vec![entry; sops::metadata::MAX_AGE_KEYS + 1]);
    let text = serde_json::to_vec(&v).unwrap();
    let e = EncryptedFile::parse(&text, Format::Json, &origin).unwrap_err();
    assert!(e.to_string().contains("more than 4096 recipients"), "{e}");
}
