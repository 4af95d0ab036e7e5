//! Interop with the real sops 3.11, both directions, driven by the plaintext
//! vectors in `tests/vectors/sops/`. A YAML vector may carry a
//! `# args: …` line with sops encryption flags (`--encrypted-regex` …).
//!
//! For every vector: sops encrypts it and we decrypt it to exactly what
//! `sops -d` prints; we encrypt it and `sops -d` prints exactly the same as
//! for its own file; and our own round trip agrees too.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use artifacts_crypto::Origin;
use artifacts_crypto::sops::{self, EncryptOptions, EncryptedFile, EncryptionRules, Format};
use common::*;

fn vectors() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/sops");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    assert!(v.len() >= 8, "vectors missing in {}", dir.display());
    v
}

fn vector_args(content: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(content);
    text.lines()
        .find_map(|l| l.strip_prefix("# args:"))
        .map(|a| a.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

fn rules_from_args(args: &[String]) -> EncryptionRules {
    let mut rules = EncryptionRules::default();
    for pair in args.chunks(2) {
        let v = Some(pair[1].clone());
        match pair[0].as_str() {
            "--encrypted-regex" => rules.encrypted_regex = v,
            "--unencrypted-regex" => rules.unencrypted_regex = v,
            "--encrypted-suffix" => rules.encrypted_suffix = v,
            "--unencrypted-suffix" => rules.unencrypted_suffix = v,
            other => panic!("unknown vector arg {other}"),
        }
    }
    rules
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn sops_written_vectors_decrypt_with_ours_exactly_like_sops_d() {
    let dir = TestDir::new("sops-to-ours");
    let a = AgeKey::new(&dir, "a.txt");
    let b = AgeKey::new(&dir, "b.txt");
    for v in vectors() {
        let name = v.file_name().unwrap().to_str().unwrap();
        let content = std::fs::read(&v).unwrap();
        let input = dir.write(name, &content);
        let mut args: Vec<String> = vec![
            "encrypt".into(),
            "--age".into(),
            format!("{},{}", a.recipient, b.recipient),
        ];
        args.extend(vector_args(&content));
        args.push(input.to_str().unwrap().into());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let encrypted = sops_ok(&dir, &argv, &[]);
        let enc_path = dir.write(&format!("enc.{name}"), &encrypted);
        let expected = sops_ok(
            &dir,
            &["decrypt", enc_path.to_str().unwrap()],
            &key_env(&a.file),
        );

        let format = Format::from_path(&v);
        let file = EncryptedFile::parse(&encrypted, format, &Origin::file(&enc_path))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // Decrypt with the second recipient's key to cover several stanzas.
        let ours = file
            .decrypt(&b.identities())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let plain = ours.to_plain_bytes(None).unwrap();
        assert_eq!(
            show(&plain),
            show(&expected),
            "{name}: our decryption differs from sops -d"
        );
    }
}

#[test]
fn our_vectors_decrypt_with_sops_d_exactly_like_its_own_files() {
    let dir = TestDir::new("ours-to-sops");
    let a = AgeKey::new(&dir, "a.txt");
    let b = AgeKey::new(&dir, "b.txt");
    for v in vectors() {
        let name = v.file_name().unwrap().to_str().unwrap();
        let content = std::fs::read(&v).unwrap();
        let input = dir.write(name, &content);
        let args = vector_args(&content);
        // What sops prints for a file it encrypted itself.
        let mut sargs: Vec<String> = vec!["encrypt".into(), "--age".into(), a.recipient.clone()];
        sargs.extend(args.iter().cloned());
        sargs.push(input.to_str().unwrap().into());
        let argv: Vec<&str> = sargs.iter().map(String::as_str).collect();
        let sops_enc = dir.write(&format!("sops.{name}"), &sops_ok(&dir, &argv, &[]));
        let expected = sops_ok(
            &dir,
            &["decrypt", sops_enc.to_str().unwrap()],
            &key_env(&a.file),
        );

        let format = Format::from_path(&v);
        let doc = sops::parse_plain(&content, format, &Origin::file(&input)).unwrap();
        let opts = EncryptOptions {
            recipients: vec![a.recipient(), b.recipient()],
            rules: rules_from_args(&args),
            ..EncryptOptions::default()
        };
        let ours = sops::encrypt(doc, format, &opts, &Origin::file(&input))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let our_enc = dir.write(&format!("ours.{name}"), &ours.to_bytes());
        for key in [&a, &b] {
            let out = sops(
                &dir,
                &["decrypt", our_enc.to_str().unwrap()],
                &key_env(&key.file),
                None,
            );
            assert!(
                out.status.success(),
                "{name}: sops -d rejected our file:\n{}\n--- file ---\n{}",
                show(&out.stderr),
                show(&std::fs::read(&our_enc).unwrap())
            );
            assert_eq!(
                show(&out.stdout),
                show(&expected),
                "{name}: sops -d of our file differs"
            );
        }
        // And our own round trip agrees.
        let back = EncryptedFile::read(&our_enc, None)
            .unwrap()
            .decrypt(&b.identities())
            .unwrap();
        assert_eq!(
            show(&back.to_plain_bytes(None).unwrap()),
            show(&expected),
            "{name}: round trip"
        );
    }
}

#[allow(dead_code)]
fn env_pair<'a>(k: &'a str, v: &'a Path) -> (&'a str, &'a OsStr) {
    (k, v.as_os_str())
}
