//! The checks the `sops_parse` fuzz target runs on each input, shared with
//! `tests/fuzz_regressions.rs` (which runs them on every crash the fuzzer
//! found, so fixed bugs stay fixed). See `fuzz_targets/sops_parse.rs`.

use artifacts_crypto::Origin;
use artifacts_crypto::age::{self, Identity, NoPassphrase};
use artifacts_crypto::sops::{self, EncryptedFile, Format};
use std::sync::OnceLock;

/// Test-only key the seed files are encrypted to; not a secret.
const SEED_KEY: &str = include_str!("seed-key.txt");

fn identities() -> &'static [Identity] {
    static IDS: OnceLock<Vec<Identity>> = OnceLock::new();
    IDS.get_or_init(|| {
        age::parse_identities(
            SEED_KEY,
            Origin::Described("the seed key".into()),
            &NoPassphrase,
        )
        .expect("the seed key parses")
    })
}

fn encrypted(data: &[u8], format: Format) {
    let origin = Origin::Described("fuzz input".into());
    let Ok(file) = EncryptedFile::parse(data, format, &origin) else {
        return;
    };
    let written = file.to_bytes();
    let again = match EncryptedFile::parse(&written, format, &origin) {
        Ok(f) => f,
        Err(e) => panic!(
            "our own {} output does not parse: {e}\n{}",
            format.name(),
            String::from_utf8_lossy(&written)
        ),
    };
    drop(again);
    let Ok(key) = file.data_key(identities()) else {
        return;
    };
    let key_bytes = *key.as_bytes();
    let Ok(dec) = file.decrypt_with_key(key) else {
        return;
    };
    let Ok(plain) = dec.to_plain_bytes(None) else {
        return;
    };
    let resealed = dec.encrypt().expect("re-encrypting a decrypted file");
    let bytes = resealed.to_bytes();
    let reparsed = EncryptedFile::parse(&bytes, format, &origin).unwrap_or_else(|e| {
        panic!(
            "re-encrypted output does not parse: {e}\n{}",
            String::from_utf8_lossy(&bytes)
        )
    });
    let key = sops::DataKey::from_bytes(&key_bytes).expect("32 bytes");
    let back = reparsed.decrypt_with_key(key).unwrap_or_else(|e| {
        panic!(
            "re-encrypted output does not decrypt: {e}\n{}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(
        &back.to_plain_bytes(None).expect("emits once, emits twice")[..],
        &plain[..],
        "the plaintext changed in a round trip"
    );
}

fn plain(data: &[u8], format: Format) {
    let origin = Origin::Described("fuzz input".into());
    let Ok(doc) = sops::parse_plain(data, format, &origin) else {
        return;
    };
    let Ok(first) = sops::emit_plain(&doc, format) else {
        return;
    };
    // Like sops (go-yaml), we write some values in a form that reads back
    // as another type (the float -0.0 as `-0`, an int), so the first
    // emission only has to parse; from then on the text must be stable.
    let reparse = |text: &[u8]| {
        sops::parse_plain(text, format, &origin).unwrap_or_else(|e| {
            panic!(
                "our own {} output does not parse: {e}\n{}",
                format.name(),
                String::from_utf8_lossy(text)
            )
        })
    };
    let second = sops::emit_plain(&reparse(&first), format).expect("emits once, emits twice");
    let third = sops::emit_plain(&reparse(&second), format).expect("emits once, emits twice");
    assert_eq!(
        String::from_utf8_lossy(&second),
        String::from_utf8_lossy(&third),
        "emit → parse → emit is not stable"
    );
}

/// Reads `data` every way a file can be read; panics on a bug.
pub fn check(data: &[u8]) {
    // The fast YAML reader reads what libyaml reads, or leaves it to it.
    if let Ok(text) = std::str::from_utf8(data)
        && let Err(e) = sops::yaml_readers_agree(text)
    {
        panic!("{e}");
    }
    for format in [Format::Yaml, Format::Json, Format::Dotenv] {
        encrypted(data, format);
        plain(data, format);
    }
}
