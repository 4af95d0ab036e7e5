//! Interop with the real `age`/`age-keygen` (Debian 1.1), both directions:
//! X25519, ssh-ed25519 and ssh-rsa recipients, several recipients, binary
//! and armored; key files from age-keygen; passphrase-protected SSH keys.

mod common;

use std::ffi::OsStr;

use artifacts_crypto::Error;
use artifacts_crypto::Origin;
use artifacts_crypto::age::{self, NoPassphrase, Recipient};
use common::*;
use secrecy::SecretString;

const MESSAGE: &[u8] = b"top secret\nwith \x00 binary \xff bytes\n";

fn age_cli(dir: &TestDir, args: &[&OsStr], stdin: Option<&[u8]>) -> Vec<u8> {
    let out = run(&tool("age", "age"), args, &[], dir.path(), stdin);
    assert!(
        out.status.success(),
        "age {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn files_from_age_cli_decrypt_with_ours_for_every_key_type() {
    let dir = TestDir::new("age-to-ours");
    let x = AgeKey::new(&dir, "x.txt");
    let x2 = AgeKey::new(&dir, "x2.txt");
    let ed = SshKey::new(&dir, "id_ed25519", "ed25519", "");
    let rsa = SshKey::new(&dir, "id_rsa", "rsa", "");
    for armor in [false, true] {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("-r"),
            OsStr::new(&x.recipient),
            OsStr::new("-r"),
            OsStr::new(&x2.recipient),
            OsStr::new("-r"),
            OsStr::new(&ed.public),
            OsStr::new("-r"),
            OsStr::new(&rsa.public),
        ];
        if armor {
            args.push(OsStr::new("-a"));
        }
        let ct = age_cli(&dir, &args, Some(MESSAGE));
        assert_eq!(age::is_armored(&ct), armor);
        for ids in [
            x.identities(),
            x2.identities(),
            ed.identities(),
            rsa.identities(),
        ] {
            let pt = age::decrypt(&ids, &ct, &Origin::Stdin).unwrap();
            assert_eq!(&pt[..], MESSAGE);
        }
    }
}

#[test]
fn files_from_ours_decrypt_with_age_cli_for_every_key_type() {
    let dir = TestDir::new("ours-to-age");
    let x = AgeKey::new(&dir, "x.txt");
    let x2 = AgeKey::new(&dir, "x2.txt");
    let ed = SshKey::new(&dir, "id_ed25519", "ed25519", "");
    let rsa = SshKey::new(&dir, "id_rsa", "rsa", "");
    let recipients = vec![
        x.recipient(),
        x2.recipient(),
        Recipient::parse(&ed.public).unwrap(),
        Recipient::parse(&rsa.public).unwrap(),
    ];
    for armor in [false, true] {
        let ct = age::encrypt(&recipients, MESSAGE, armor).unwrap();
        let ct_path = dir.write("ct.age", &ct);
        for key in [&x.file, &x2.file, &ed.private, &rsa.private] {
            let pt = age_cli(
                &dir,
                &[
                    OsStr::new("-d"),
                    OsStr::new("-i"),
                    key.as_os_str(),
                    ct_path.as_os_str(),
                ],
                None,
            );
            assert_eq!(pt, MESSAGE);
        }
    }
}

/// `reencrypt` (what `agenix -r` does) on files the age CLI wrote, binary
/// and armored: the new recipients (X25519 and ssh-ed25519) decrypt with the
/// age CLI, the removed one no longer can, and the format is kept.
#[test]
fn reencrypt_moves_age_cli_files_to_new_recipients() {
    let dir = TestDir::new("reencrypt");
    let old = AgeKey::new(&dir, "old.txt");
    let x = AgeKey::new(&dir, "x.txt");
    let ed = SshKey::new(&dir, "id_ed25519", "ed25519", "");
    let new = [x.recipient(), Recipient::parse(&ed.public).unwrap()];
    for armor in [false, true] {
        let mut args = vec![OsStr::new("-r"), OsStr::new(&old.recipient)];
        if armor {
            args.push(OsStr::new("-a"));
        }
        let ct = age_cli(&dir, &args, Some(MESSAGE));
        let moved = age::reencrypt(&old.identities(), &new, &ct, armor, &Origin::Stdin).unwrap();
        assert_eq!(age::is_armored(&moved), armor);
        let path = dir.write("moved.age", &moved);
        for key in [&x.file, &ed.private] {
            let pt = age_cli(
                &dir,
                &[
                    OsStr::new("-d"),
                    OsStr::new("-i"),
                    key.as_os_str(),
                    path.as_os_str(),
                ],
                None,
            );
            assert_eq!(pt, MESSAGE);
        }
        let out = run(
            &tool("age", "age"),
            &[
                OsStr::new("-d"),
                OsStr::new("-i"),
                old.file.as_os_str(),
                path.as_os_str(),
            ],
            &[],
            dir.path(),
            None,
        );
        assert!(!out.status.success(), "the old key still decrypts");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn age_keygen_files_load_and_match_their_public_key_comment() {
    let dir = TestDir::new("keygen");
    let key = dir.join("k.txt");
    let out = run(
        &tool("age-keygen", "age"),
        &[OsStr::new("-o"), key.as_os_str()],
        &[],
        dir.path(),
        None,
    );
    assert!(out.status.success());
    let text = std::fs::read_to_string(&key).unwrap();
    let public = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap();
    let ids = age::read_identity_file(&key, &NoPassphrase).unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].to_recipient().unwrap().as_str(), public);
    // Our key files are readable by age-keygen -y.
    let ours = AgeKey::new(&dir, "ours.txt");
    let out = run(
        &tool("age-keygen", "age"),
        &[OsStr::new("-y"), ours.file.as_os_str()],
        &[],
        dir.path(),
        None,
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        ours.recipient
    );
}

#[test]
fn passphrase_protected_ssh_keys_use_the_callback_or_fail_clearly() {
    let dir = TestDir::new("ssh-pass");
    let ed = SshKey::new(&dir, "id_ed25519", "ed25519", "correct horse");
    let ct = age::encrypt(&[Recipient::parse(&ed.public).unwrap()], MESSAGE, false).unwrap();

    let e = age::read_identity_file(&ed.private, &NoPassphrase).unwrap_err();
    assert!(matches!(e, Error::PassphraseRequired { .. }), "{e}");
    assert!(e.to_string().contains("id_ed25519"));

    let wrong = |_: &str| Some(SecretString::from("nope".to_string()));
    let e = age::read_identity_file(&ed.private, &wrong).unwrap_err();
    assert!(matches!(e, Error::WrongPassphrase { .. }), "{e}");
    assert!(!e.to_string().contains("nope"));

    let asked = std::cell::Cell::new(0);
    let right = |d: &str| {
        assert!(
            d.contains("id_ed25519"),
            "the prompt names the key file: {d}"
        );
        asked.set(asked.get() + 1);
        Some(SecretString::from("correct horse".to_string()))
    };
    let ids = age::read_identity_file(&ed.private, &right).unwrap();
    assert_eq!(asked.get(), 1);
    assert_eq!(
        &age::decrypt(&ids, &ct, &Origin::Stdin).unwrap()[..],
        MESSAGE
    );
}

#[test]
fn recipients_parse_from_strings_files_and_pub_files() {
    let dir = TestDir::new("recipients");
    let x = AgeKey::new(&dir, "x.txt");
    let ed = SshKey::new(&dir, "id_ed25519", "ed25519", "");
    // Whitespace and a trailing newline are trimmed.
    let r = Recipient::parse(&format!("  {}\n", x.recipient)).unwrap();
    assert_eq!(r.as_str(), x.recipient);
    // A recipients file with comments and blank lines.
    let f = dir.write(
        "recipients.txt",
        format!("# team\n{}\n\n{}  \n", x.recipient, ed.public).as_bytes(),
    );
    let rs = age::read_recipients_file(&f).unwrap();
    assert_eq!(rs.len(), 2);
    assert!(rs[1].is_ssh());
    // The .pub file ssh-keygen wrote, comment included.
    let rs = age::read_recipients_file(&ed.private.with_extension("pub")).unwrap();
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].to_string(), ed.public.rsplit_once(' ').unwrap().0);
    // Errors name the line and never echo an identity.
    let secret = std::fs::read_to_string(&x.file).unwrap();
    let secret_line = secret.lines().last().unwrap();
    let bad = dir.write(
        "bad.txt",
        format!("{}\n{secret_line}\n", x.recipient).as_bytes(),
    );
    let e = age::read_recipients_file(&bad).unwrap_err().to_string();
    assert!(e.contains("line 2"), "{e}");
    assert!(!e.contains(secret_line), "{e}");
    assert!(Recipient::parse("ecdsa-sha2-nistp256 AAAA").is_err());
    assert!(Recipient::parse("age1yubikey1qwerty").is_err());
}

#[test]
fn damaged_age_files_fail_without_returning_plaintext() {
    let dir = TestDir::new("age-damage");
    let x = AgeKey::new(&dir, "x.txt");
    let other = AgeKey::new(&dir, "other.txt");
    let big = vec![7u8; 200_000];
    let ct = age::encrypt(&[x.recipient()], &big, false).unwrap();
    let origin = Origin::file("f.age");
    let e = age::decrypt(&other.identities(), &ct, &origin).unwrap_err();
    assert!(matches!(e, Error::NoMatchingIdentity { .. }), "{e}");
    let e = age::decrypt(&x.identities(), &ct[..ct.len() - 100], &origin).unwrap_err();
    assert!(matches!(e, Error::AgeDecrypt { .. }), "{e}");
    let mut flipped = ct.clone();
    let n = flipped.len() - 10;
    flipped[n] ^= 1;
    let e = age::decrypt(&x.identities(), &flipped, &origin).unwrap_err();
    assert!(matches!(e, Error::AgeDecrypt { .. }), "{e}");
    let e = age::decrypt(&x.identities(), b"not age at all", &origin).unwrap_err();
    assert!(e.to_string().contains("f.age"), "{e}");
}

#[test]
fn unlocked_ssh_keys_are_the_same_keys_for_ssh_keygen_and_age() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = TestDir::new("ssh-unlock");
    let right = |_: &str| Some(SecretString::from("correct horse".to_string()));
    for (name, kind, cipher) in [
        ("ed_ctr", "ed25519", None),
        ("ed_gcm", "ed25519", Some("aes256-gcm@openssh.com")),
        ("rsa_ctr", "rsa", None),
    ] {
        let key = SshKey::new(&dir, name, kind, "correct horse");
        if let Some(cipher) = cipher {
            let flags = [
                "-q",
                "-p",
                "-P",
                "correct horse",
                "-N",
                "correct horse",
                "-Z",
                cipher,
                "-f",
            ];
            let args: Vec<&OsStr> = flags
                .iter()
                .map(OsStr::new)
                .chain([key.private.as_os_str()])
                .collect();
            let out = run(
                &tool("ssh-keygen", "openssh-client"),
                &args,
                &[],
                dir.path(),
                None,
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let e = age::unlock_identity_file(&key.private, &NoPassphrase).unwrap_err();
        assert!(matches!(e, Error::PassphraseRequired { .. }), "{name}: {e}");
        let wrong = |_: &str| Some(SecretString::from("nope".to_string()));
        let e = age::unlock_identity_file(&key.private, &wrong).unwrap_err();
        assert!(matches!(e, Error::WrongPassphrase { .. }), "{name}: {e}");

        let text = age::unlock_identity_file(&key.private, &right)
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: a protected key came back as unprotected"));
        let unlocked = dir.join(&format!("{name}.unlocked"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&unlocked)
            .unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        // The real ssh-keygen reads it without a passphrase, as the same key.
        let out = run(
            &tool("ssh-keygen", "openssh-client"),
            &[
                OsStr::new("-y"),
                OsStr::new("-P"),
                OsStr::new(""),
                OsStr::new("-f"),
                unlocked.as_os_str(),
            ],
            &[],
            dir.path(),
            None,
        );
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let derived = String::from_utf8(out.stdout).unwrap();
        let first_two = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        assert_eq!(first_two(&derived), first_two(&key.public), "{name}");
        // And age decrypts with it, asking nothing.
        let ct = age::encrypt(&[Recipient::parse(&key.public).unwrap()], MESSAGE, false).unwrap();
        let ids = age::read_identity_file(&unlocked, &NoPassphrase).unwrap();
        assert_eq!(
            &age::decrypt(&ids, &ct, &Origin::Stdin).unwrap()[..],
            MESSAGE,
            "{name}"
        );
        // An unprotected key needs no unlocking.
        assert!(
            age::unlock_identity_file(&unlocked, &right)
                .unwrap()
                .is_none()
        );
    }
}
