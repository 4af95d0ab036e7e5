//! age plugins with a real plugin program, `age-plugin-xwing` (see
//! `artifacts_testkit::age_plugin_xwing`), cross-checked with the real `age`
//! (Debian 1.1, which runs plugins too) and the real `sops` 3.11 (which also
//! does): plugin recipients and identities both ways, identity files mixing
//! plugin and native keys, a missing plugin, a plugin refusing a recipient,
//! and FIDO security-key SSH keys, which age does not support.

mod common;

use std::ffi::OsStr;

use artifacts_crypto::age::{self, NoPassphrase, Recipient};
use artifacts_crypto::sops::{self, EncryptOptions, EncryptedFile, Format, TreePath};
use artifacts_crypto::{Error, Origin};
use artifacts_testkit::{ok, xwing_key};
use common::*;

const MESSAGE: &[u8] = b"plugin secret\n\x00\xff\n";

fn age_cli(dir: &TestDir, args: &[&OsStr], stdin: Option<&[u8]>) -> Vec<u8> {
    ok(
        "age",
        run(&tool("age", "age"), args, &[], dir.path(), stdin),
    )
}

/// A plugin recipient/identity of a plugin that is nowhere: `age1<name>1…`
/// and `AGE-PLUGIN-<NAME>-1…` with 32 bytes of data.
fn absent_plugin_keys(name: &str) -> (String, String) {
    let data = [7u8; 32];
    let hrp = bech32::Hrp::parse(&format!("age1{name}")).unwrap();
    let recipient = bech32::encode::<bech32::Bech32>(hrp, &data).unwrap();
    let hrp = bech32::Hrp::parse(&format!("AGE-PLUGIN-{}-", name.to_uppercase())).unwrap();
    let identity = bech32::encode_upper::<bech32::Bech32>(hrp, &data).unwrap();
    (recipient, identity)
}

#[test]
fn plugin_recipients_and_identities_interoperate_with_age_both_ways() {
    artifacts_testkit::age_plugin_xwing();
    let dir = TestDir::new("plugin-age");
    let (key_text, xwing) = xwing_key();
    let key = dir.write("xwing.txt", key_text.as_bytes());
    let x = AgeKey::new(&dir, "x.txt");
    let plugin = Recipient::parse(&xwing).unwrap();
    assert_eq!(plugin.plugin(), Some("xwing"));
    assert_eq!(plugin.as_str(), xwing);
    assert!(plugin.to_x25519().is_none());
    let ids = age::read_identity_file(&key, &NoPassphrase).unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].plugin(), Some("xwing"));
    for armor in [false, true] {
        // Ours to the plugin recipient (and an X25519 one): the age CLI
        // decrypts with the plugin identity, we decrypt with either key.
        let ct = age::encrypt(&[x.recipient(), plugin.clone()], MESSAGE, armor).unwrap();
        if !armor {
            assert!(String::from_utf8_lossy(&ct).contains("\n-> xwing "));
        }
        let args = [OsStr::new("-d"), OsStr::new("-i"), key.as_os_str()];
        assert_eq!(age_cli(&dir, &args, Some(&ct)), MESSAGE);
        assert_eq!(
            &age::decrypt(&ids, &ct, &Origin::Stdin).unwrap()[..],
            MESSAGE
        );
        assert_eq!(
            &age::decrypt(&x.identities(), &ct, &Origin::Stdin).unwrap()[..],
            MESSAGE
        );
        // The age CLI's to the plugin recipient: ours decrypts.
        let mut args = vec![OsStr::new("-r"), OsStr::new(&xwing)];
        if armor {
            args.push(OsStr::new("-a"));
        }
        let ct = age_cli(&dir, &args, Some(MESSAGE));
        assert_eq!(
            &age::decrypt(&ids, &ct, &Origin::Stdin).unwrap()[..],
            MESSAGE
        );
        // Another key does not open it: no match, not a plugin error.
        let e = age::decrypt(&x.identities(), &ct, &Origin::Stdin).unwrap_err();
        assert!(matches!(e, Error::NoMatchingIdentity { .. }), "{e}");
    }
    // A plugin identity cannot tell its recipient by itself.
    let e = ids[0].to_recipient().unwrap_err().to_string();
    assert!(e.contains("age-plugin-xwing"), "{e}");
    // Recipients files keep plugin recipients.
    let list = dir.write("recipients", format!("# xwing\n{xwing}\n").as_bytes());
    assert_eq!(age::read_recipients_file(&list).unwrap(), vec![plugin]);
}

#[test]
fn identity_files_mix_plugin_and_native_keys_and_natives_are_tried_first() {
    artifacts_testkit::age_plugin_xwing();
    let dir = TestDir::new("plugin-mixed");
    let (key_text, xwing) = xwing_key();
    let x = AgeKey::new(&dir, "x.txt");
    let x_text = std::fs::read_to_string(&x.file).unwrap();
    let (_, absent) = absent_plugin_keys("nosuchplugin");
    // An absent plugin's identity first, then the xwing key, then X25519.
    let mixed = dir.write(
        "mixed.txt",
        format!("{absent}\n{key_text}\n{x_text}").as_bytes(),
    );
    let ids = age::read_identity_file(&mixed, &NoPassphrase).unwrap();
    assert_eq!(ids.len(), 3);
    // For X25519: the native key opens it and no plugin runs (the absent one
    // would fail).
    let ct = age::encrypt(&[x.recipient()], MESSAGE, false).unwrap();
    assert_eq!(
        &age::decrypt(&ids, &ct, &Origin::Stdin).unwrap()[..],
        MESSAGE
    );
    // For xwing: the absent plugin is passed over, xwing opens it.
    let ct = age::encrypt(&[Recipient::parse(&xwing).unwrap()], MESSAGE, false).unwrap();
    assert_eq!(
        &age::decrypt(&ids, &ct, &Origin::Stdin).unwrap()[..],
        MESSAGE
    );
    // An xwing-only file with only the absent plugin's identity: that plugin
    // is what is missing.
    let only_absent = dir.write("absent.txt", format!("{absent}\n").as_bytes());
    let ids = age::read_identity_file(&only_absent, &NoPassphrase).unwrap();
    let e = age::decrypt(&ids, &ct, &Origin::Stdin).unwrap_err();
    assert!(matches!(e, Error::PluginMissing { .. }), "{e}");
}

#[test]
fn a_missing_plugin_names_the_program_and_who_needs_it_never_the_identity() {
    let dir = TestDir::new("plugin-missing");
    let (recipient, identity) = absent_plugin_keys("nosuchplugin");
    let r = Recipient::parse(&recipient).unwrap();
    let e = age::encrypt(&[r], MESSAGE, false).unwrap_err();
    assert!(matches!(e, Error::PluginMissing { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.starts_with("`age-plugin-nosuchplugin` is not on PATH; it is needed for recipient `age1nosuchplugin1"),
        "{msg}"
    );
    assert!(e.hint().unwrap().contains("PATH"));
    // Decrypting with only that plugin's identity: the file and line are named.
    let x = AgeKey::new(&dir, "x.txt");
    let ct = age::encrypt(&[x.recipient()], MESSAGE, false).unwrap();
    let file = dir.write("plugin.txt", format!("# a token\n{identity}\n").as_bytes());
    let ids = age::read_identity_file(&file, &NoPassphrase).unwrap();
    let e = age::decrypt(&ids, &ct, &Origin::Stdin).unwrap_err();
    let msg = e.to_string();
    assert_eq!(
        msg,
        format!(
            "`age-plugin-nosuchplugin` is not on PATH; it is needed for the age plugin identity in `{}` line 2",
            file.display()
        )
    );
    assert!(!msg.contains(&identity) && !format!("{ids:?}").contains(&identity));
    // A malformed plugin identity is refused by line, without echoing it.
    let broken = format!("{}x", &identity[..identity.len() - 1]);
    let e = age::parse_identities(&broken, Origin::Stdin, &NoPassphrase)
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1: not a valid age plugin identity"), "{e}");
    assert!(!e.contains(&broken[12..]), "{e}");
}

#[test]
fn plugin_names_that_are_paths_are_refused_before_anything_runs() {
    // Bech32 allows `/` and `.` in the prefix; age's plugin names do not.
    let hrp = bech32::Hrp::parse("age1../../../../bin/sh").unwrap();
    let recipient = bech32::encode::<bech32::Bech32>(hrp, &[1u8; 32]).unwrap();
    let e = Recipient::parse(&recipient).unwrap_err().to_string();
    assert!(
        e.contains("not a valid age plugin recipient (invalid plugin name)"),
        "{e}"
    );
    let hrp = bech32::Hrp::parse("AGE-PLUGIN-../../../BIN/SH-").unwrap();
    let identity = bech32::encode_upper::<bech32::Bech32>(hrp, &[1u8; 32]).unwrap();
    let e = age::parse_identities(&identity, Origin::Stdin, &NoPassphrase)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a valid age plugin identity"), "{e}");
}

#[test]
fn a_recipient_the_plugin_refuses_fails_with_its_reason() {
    artifacts_testkit::age_plugin_xwing();
    // Valid bech32 for the xwing plugin, but not an X-Wing key (32 bytes).
    let (recipient, _) = absent_plugin_keys("xwing");
    let r = Recipient::parse(&recipient).unwrap();
    let e = age::encrypt(&[r], MESSAGE, false).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Plugin { .. }), "{msg}");
    assert!(
        msg.starts_with("`age-plugin-xwing` failed for recipient `age1xwing1"),
        "{msg}"
    );
    assert!(msg.contains("Invalid recipient"), "{msg}");
}

#[test]
fn security_key_ssh_keys_are_refused_naming_the_key_type() {
    for key in [
        "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t user@host",
        "sk-ecdsa-sha2-nistp256@openssh.com AAAAInNrLWVjZHNh",
    ] {
        let e = Recipient::parse(key).unwrap_err().to_string();
        assert!(e.contains("sk-ssh-ed25519@openssh.com"), "{e}");
        assert!(e.contains("not supported by age"), "{e}");
        assert!(e.contains("age-plugin-fido2-hmac"), "{e}");
    }
    // The private side, as `ssh-keygen -t ed25519-sk` writes it (a handle
    // to the token, no key): refused by name too.
    use base64::Engine;
    let string = |b: &[u8]| [&(b.len() as u32).to_be_bytes()[..], b].concat();
    let kind = b"sk-ssh-ed25519@openssh.com";
    let public = [string(kind), string(&[1u8; 32]), string(b"ssh:")].concat();
    let private = [&[7u8; 8][..], &string(kind), &string(&[1u8; 32])].concat();
    let blob = [
        &b"openssh-key-v1\0"[..],
        &string(b"none"),
        &string(b"none"),
        &string(b""),
        &1u32.to_be_bytes(),
        &string(&public),
        &string(&private),
    ]
    .concat();
    let pem = format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(blob)
    );
    let e = age::parse_identities(&pem, Origin::Stdin, &NoPassphrase)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sk-ssh-ed25519@openssh.com"), "{e}");
    assert!(e.contains("not supported by age"), "{e}");
}

#[test]
fn sops_files_with_a_plugin_recipient_work_both_ways_with_the_real_sops() {
    artifacts_testkit::age_plugin_xwing();
    let dir = TestDir::new("plugin-sops");
    let (key_text, xwing) = xwing_key();
    let key = dir.write("xwing.txt", key_text.as_bytes());
    let ids = age::read_identity_file(&key, &NoPassphrase).unwrap();
    let origin = Origin::file(dir.join("s.yaml"));
    // Ours: the real sops decrypts it with the plugin identity.
    let plain = sops::parse_plain(b"db:\n    password: hunter2\n", Format::Yaml, &origin).unwrap();
    let options = EncryptOptions {
        recipients: vec![Recipient::parse(&xwing).unwrap()],
        ..EncryptOptions::default()
    };
    let ours = sops::encrypt(plain, Format::Yaml, &options, &origin)
        .unwrap()
        .to_bytes();
    dir.write("ours.yaml", &ours);
    let out = sops_ok(&dir, &["decrypt", "ours.yaml"], &key_env(&key));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "db:\n    password: hunter2\n"
    );
    // The real sops's: ours decrypts it.
    dir.write("plain.yaml", b"token: abc\n");
    let theirs = sops_ok(&dir, &["encrypt", "--age", &xwing, "plain.yaml"], &[]);
    let file = EncryptedFile::parse(&theirs, Format::Yaml, &origin).unwrap();
    let decrypted = file.decrypt(&ids).unwrap();
    let token = decrypted
        .extract(&TreePath::parse(r#"["token"]"#).unwrap(), None)
        .unwrap();
    assert_eq!(&token[..], b"abc");
    // A `.sops.yaml` rule lists it like any age recipient.
    let x = AgeKey::new(&dir, "x.txt");
    let text = format!(
        "creation_rules:\n  - age: >-\n      {xwing},\n      {}\n",
        x.recipient
    );
    let config = sops::config::SopsConfig::parse(&text, &dir.join(".sops.yaml")).unwrap();
    let rule = config.rule_for(&dir.join("s.yaml")).unwrap();
    let listed: Vec<&str> = rule.recipients.iter().map(|r| r.as_str()).collect();
    assert_eq!(listed, [xwing.as_str(), x.recipient.as_str()]);
}
