//! The ssh-ed25519 → X25519 conversion (what sops-nix does with a host's
//! `/etc/ssh/ssh_host_ed25519_key`) against the oracle `ssh-to-age`, for
//! public and private keys of several fresh keys, and files that cross
//! between the converted keys and the real `age`.

mod common;

use std::ffi::OsStr;

use artifacts_crypto::Origin;
use artifacts_crypto::age::{self, Recipient};
use common::*;
use secrecy::{ExposeSecret, SecretString};

const MESSAGE: &[u8] = b"for the host\n\x00\xff";

/// `ssh-to-age` with `args`, stdin from `input`; its trimmed stdout.
fn ssh_to_age(oracle: &std::path::Path, dir: &TestDir, args: &[&OsStr], input: &[u8]) -> String {
    let out = run(oracle, args, &[], dir.path(), Some(input));
    assert!(
        out.status.success(),
        "ssh-to-age {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn ssh_ed25519_keys_convert_exactly_as_ssh_to_age_does() {
    let Some(oracle) = oracle(
        "ssh-to-age",
        "ssh_ed25519_keys_convert_exactly_as_ssh_to_age_does",
    ) else {
        return;
    };
    let dir = TestDir::new("ssh-to-age");
    for n in 0..6 {
        // Two of them passphrase-protected (ssh-keygen's bcrypt + aes256-ctr).
        let passphrase = if n % 3 == 2 { "a pass phrase" } else { "" };
        let key = SshKey::new(&dir, &format!("host{n}"), "ed25519", passphrase);
        let public = ssh_to_age(&oracle, &dir, &[], key.public.as_bytes());
        let converted = Recipient::parse(&key.public).unwrap().to_x25519().unwrap();
        assert_eq!(converted.as_str(), public, "public key {n}");
        assert!(public.starts_with("age1"), "{public}");

        let mut args = vec![
            OsStr::new("-private-key"),
            OsStr::new("-i"),
            key.private.as_os_str(),
        ];
        if !passphrase.is_empty() {
            args.push(OsStr::new("-stdinpass"));
        }
        let private = ssh_to_age(&oracle, &dir, &args, passphrase.as_bytes());
        let ids = age::read_identity_file(&key.private, &|_: &str| {
            Some(SecretString::from(passphrase))
        })
        .unwrap();
        let secret = ids[0].x25519_secret_key().expect("an X25519 form");
        assert_eq!(secret.expose_secret(), private, "private key {n}");
        // The converted identity belongs to the converted recipient.
        let x = ids[0].to_x25519().unwrap();
        assert_eq!(x.to_recipient().unwrap(), converted);
        // An age key is its own X25519 form.
        let age_key = AgeKey::new(&dir, &format!("age{n}.txt"));
        assert_eq!(
            age_key.recipient().to_x25519().unwrap(),
            age_key.recipient()
        );
    }
}

#[test]
fn converted_keys_interoperate_with_the_real_age() {
    let Some(oracle) = oracle(
        "ssh-to-age",
        "converted_keys_interoperate_with_the_real_age",
    ) else {
        return;
    };
    let dir = TestDir::new("ssh-to-age-age");
    let key = SshKey::new(&dir, "ssh_host_ed25519_key", "ed25519", "");
    let converted_public = ssh_to_age(&oracle, &dir, &[], key.public.as_bytes());
    let converted_private = ssh_to_age(
        &oracle,
        &dir,
        &[
            OsStr::new("-private-key"),
            OsStr::new("-i"),
            key.private.as_os_str(),
        ],
        b"",
    );
    let key_file = dir.write("converted.txt", format!("{converted_private}\n").as_bytes());

    // The real age encrypts to the converted recipient: the ssh key reads it.
    let out = run(
        &tool("age", "age"),
        &[OsStr::new("-r"), OsStr::new(&converted_public)],
        &[],
        dir.path(),
        Some(MESSAGE),
    );
    assert!(out.status.success());
    let plain = age::decrypt(&key.identities(), &out.stdout, &Origin::Stdin).unwrap();
    assert_eq!(&plain[..], MESSAGE);

    // We encrypt to the X25519 form: the real age reads it with ssh-to-age's key.
    let recipient = Recipient::parse(&key.public).unwrap().to_x25519().unwrap();
    let ct = dir.write(
        "ct.age",
        &age::encrypt(&[recipient], MESSAGE, true).unwrap(),
    );
    let out = run(
        &tool("age", "age"),
        &[
            OsStr::new("-d"),
            OsStr::new("-i"),
            key_file.as_os_str(),
            ct.as_os_str(),
        ],
        &[],
        dir.path(),
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, MESSAGE);
    // The same ssh key still reads age's ssh stanzas.
    let ssh = Recipient::parse(&key.public).unwrap();
    let ct = age::encrypt(&[ssh], MESSAGE, false).unwrap();
    let plain = age::decrypt(&key.identities(), &ct, &Origin::Stdin).unwrap();
    assert_eq!(&plain[..], MESSAGE);
}

#[test]
fn ssh_rsa_has_no_x25519_form_and_gcm_protected_keys_have_one() {
    let dir = TestDir::new("ssh-to-age-rsa");
    let rsa = SshKey::new(&dir, "id_rsa", "rsa", "");
    let recipient = Recipient::parse(&rsa.public).unwrap();
    assert_eq!(recipient.key_type(), "ssh-rsa");
    assert!(recipient.to_x25519().is_none());
    let ids = rsa.identities();
    assert!(ids[0].to_x25519().is_none());
    assert!(ids[0].x25519_secret_key().is_none());

    // A key protected with another cipher than ssh-keygen's default
    // (aes256-gcm) has its X25519 form too, and its ssh stanzas still decrypt.
    let private = dir.join("id_gcm");
    let out = run(
        &tool("ssh-keygen", "openssh-client"),
        &[
            OsStr::new("-q"),
            OsStr::new("-t"),
            OsStr::new("ed25519"),
            OsStr::new("-Z"),
            OsStr::new("aes256-gcm@openssh.com"),
            OsStr::new("-N"),
            OsStr::new("pass phrase"),
            OsStr::new("-f"),
            private.as_os_str(),
        ],
        &[],
        dir.path(),
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids = age::read_identity_file(&private, &|_: &str| Some(SecretString::from("pass phrase")))
        .unwrap();
    let public = std::fs::read_to_string(private.with_extension("pub")).unwrap();
    let ssh = Recipient::parse(&public).unwrap();
    assert_eq!(ssh.key_type(), "ssh-ed25519");
    let converted = ssh.to_x25519().unwrap();
    let x25519 = ids[0].to_x25519().expect("an X25519 form");
    let ct = age::encrypt(&[converted], MESSAGE, false).unwrap();
    assert_eq!(
        &age::decrypt(&[x25519], &ct, &Origin::Stdin).unwrap()[..],
        MESSAGE
    );
    let ct = age::encrypt(&[ssh], MESSAGE, false).unwrap();
    assert_eq!(
        &age::decrypt(&ids, &ct, &Origin::Stdin).unwrap()[..],
        MESSAGE
    );
    // A wrong passphrase is still an error, not a silently missing form.
    let wrong = age::read_identity_file(&private, &|_: &str| Some(SecretString::from("nope")));
    assert!(wrong.is_err());
}
