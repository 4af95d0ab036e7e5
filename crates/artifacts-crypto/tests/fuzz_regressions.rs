//! Inputs the `sops_parse` fuzz target (`fuzz/`, run by `scripts/fuzz-sops`)
//! once failed on, in `tests/vectors/fuzz/`, run through the same checks so
//! the bugs stay fixed. Each file is named after the bug it found.

#[path = "../fuzz/check.rs"]
mod check;

use std::path::Path;

#[test]
fn inputs_the_fuzzer_broke_once_pass_its_checks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/fuzz");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Err(e) = std::panic::catch_unwind(|| check::check(&data)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{name}: {msg}");
        }
        n += 1;
    }
    assert!(n > 0, "no vectors in {}", dir.display());
}

/// The parser refuses documents nesting deeper than 512 levels because every
/// later step recurses; the deepest allowed one must get through all of them
/// on a test thread's small stack, in a debug build.
#[test]
fn the_deepest_allowed_document_survives_every_operation() {
    use artifacts_crypto::Origin;
    use artifacts_crypto::age;
    use artifacts_crypto::sops::{self, EncryptOptions, EncryptedFile, Format};

    let n = 510; // + the top-level map + one nested map = 512
    let yaml = format!("a:\n  b: {}x{}\n", "[".repeat(n), "]".repeat(n));
    let origin = Origin::Described("deep".into());
    let doc = sops::parse_plain(yaml.as_bytes(), Format::Yaml, &origin).unwrap();
    let key = age::keygen();
    let opts = EncryptOptions {
        recipients: vec![age::Recipient::parse(&key.recipient()).unwrap()],
        ..Default::default()
    };
    let enc = sops::encrypt(doc, Format::Yaml, &opts, &origin).unwrap();
    let dec = EncryptedFile::parse(&enc.to_bytes(), Format::Yaml, &origin)
        .unwrap()
        .decrypt(&[key.to_identity()])
        .unwrap();
    let plain = dec.to_plain_bytes(None).unwrap();
    assert_eq!(
        sops::parse_plain(&plain, Format::Yaml, &origin).unwrap(),
        sops::parse_plain(yaml.as_bytes(), Format::Yaml, &origin).unwrap()
    );
    // JSON can be written that deep, but serde_json reads only 128 levels.
    let json = dec.to_plain_bytes(Some(Format::Json)).unwrap();
    assert!(sops::parse_plain(&json, Format::Json, &origin).is_err());
    let too_deep = format!("a:\n  b: {}x{}\n", "[".repeat(n + 1), "]".repeat(n + 1));
    assert!(sops::parse_plain(too_deep.as_bytes(), Format::Yaml, &origin).is_err());
}
