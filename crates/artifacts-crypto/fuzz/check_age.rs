//! The checks the `age_header` fuzz target runs on each input, shared with
//! `tests/fuzz_age.rs` (a bounded, fixed-seed run on stable Rust that CI
//! runs). See `fuzz_targets/age_header.rs`.

use artifacts_crypto::Origin;
use artifacts_crypto::age::{self, Identity, NoPassphrase, Recipient};
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

/// Reads `data` as an age file, a recipients list and an identity file;
/// panics on a bug.
pub fn check(data: &[u8]) {
    let origin = Origin::Described("fuzz input".into());
    // Decryption never panics; what decrypts survives a round trip.
    if let Ok(plain) = age::decrypt(identities(), data, &origin) {
        let recipients = [identities()[0].to_recipient().expect("a public key")];
        let again = age::encrypt(&recipients, &plain, age::is_armored(data))
            .expect("encrypting to the seed key");
        let back = age::decrypt(identities(), &again, &origin).expect("our own file decrypts");
        assert_eq!(
            &back[..],
            &plain[..],
            "the plaintext changed in a round trip"
        );
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Every recipient that parses can be encrypted to (a low-order key made
    // the `age` crate panic here); plugin recipients would start a program
    // (`age-plugin-<name>` from PATH), which a fuzz input must not do.
    if let Ok(recipients) = age::parse_recipients(text, &origin) {
        for r in recipients.into_iter().filter(|r| r.plugin().is_none()) {
            age::encrypt(std::slice::from_ref(&r), b"x", false)
                .unwrap_or_else(|e| panic!("{r} parsed but cannot be encrypted to: {e}"));
        }
    }
    if let Ok(r) = Recipient::parse(text)
        && r.plugin().is_none()
    {
        assert!(age::encrypt(&[r], b"x", false).is_ok());
    }
    let _ = age::parse_identities(text, origin, &NoPassphrase);
}
