//! Reads the Ed25519 seed out of an OpenSSH private key (`-----BEGIN
//! OPENSSH PRIVATE KEY-----`, format `openssh-key-v1`, see OpenSSH's
//! PROTOCOL.key), for the X25519 conversion in [`crate::age`].
//!
//! The `age` crate parses these keys too but keeps the key material in a
//! type it does not export, so the seed is read here: unencrypted keys, and
//! passphrase-protected ones in `ssh-keygen`'s format (bcrypt KDF,
//! `aes256-ctr`). Other ciphers give no seed; `age` still reads those keys
//! (ssh stanzas only).

use aes::cipher::{KeyIvInit, StreamCipher};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END: &str = "-----END OPENSSH PRIVATE KEY-----";
const MAGIC: &[u8] = b"openssh-key-v1\0";

/// OpenSSH's `aes256-ctr`: a 128-bit big-endian counter.
type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// A cursor over the key's binary encoding (RFC 4251 `string` and `uint32`).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*head))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        if self.0.len() < len {
            return None;
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(head)
    }
}

/// The private section decrypted with `passphrase` (bcrypt KDF, aes256-ctr).
fn decrypt_private(
    cipher: &[u8],
    kdf: &[u8],
    kdf_options: &[u8],
    encrypted: &[u8],
    passphrase: Option<&SecretString>,
) -> Option<Zeroizing<Vec<u8>>> {
    if cipher != b"aes256-ctr" || kdf != b"bcrypt" {
        return None;
    }
    let mut options = Reader(kdf_options);
    let (salt, rounds) = (options.string()?, options.u32()?);
    let mut key_iv = Zeroizing::new([0u8; 48]);
    bcrypt_pbkdf::bcrypt_pbkdf(
        passphrase?.expose_secret().as_bytes(),
        salt,
        rounds,
        &mut key_iv[..],
    )
    .ok()?;
    let mut plain = Zeroizing::new(encrypted.to_vec());
    Aes256Ctr::new_from_slices(&key_iv[..32], &key_iv[32..])
        .ok()?
        .apply_keystream(&mut plain);
    Some(plain)
}

/// The 32-byte seed of the only key of an OpenSSH ssh-ed25519 private key,
/// decrypted with `passphrase` when it is protected; `None` for anything
/// else (other key types, a wrong or missing passphrase, an unsupported
/// cipher, several keys, malformed data).
pub(crate) fn ed25519_seed(
    text: &str,
    passphrase: Option<&SecretString>,
) -> Option<Zeroizing<[u8; 32]>> {
    let body = text
        .trim()
        .strip_prefix(BEGIN)?
        .trim_end()
        .strip_suffix(END)?;
    let compact: Zeroizing<String> =
        Zeroizing::new(body.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .ok()?,
    );
    let mut r = Reader(bytes.strip_prefix(MAGIC)?);
    let (cipher, kdf, kdf_options) = (r.string()?, r.string()?, r.string()?);
    if r.u32()? != 1 {
        return None;
    }
    let _public = r.string()?;
    let section = r.string()?;
    let section = if cipher == b"none" && kdf == b"none" {
        Zeroizing::new(section.to_vec())
    } else {
        decrypt_private(cipher, kdf, kdf_options, section, passphrase)?
    };
    let mut private = Reader(&section);
    // Two equal check words: a wrong passphrase gives different ones.
    if private.u32()? != private.u32()? || private.string()? != b"ssh-ed25519" {
        return None;
    }
    let public = private.string()?;
    // The private key is seed || public key.
    let pair = private.string()?;
    if public.len() != 32 || pair.len() != 64 || &pair[32..] != public {
        return None;
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&pair[..32]);
    Some(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data);
    }

    /// An `openssh-key-v1` file holding one key, as `ssh-keygen` lays it out.
    fn key_file(cipher: &str, key_type: &str, public: &[u8], pair: &[u8]) -> String {
        let mut public_blob = Vec::new();
        string(&mut public_blob, key_type.as_bytes());
        string(&mut public_blob, public);
        let mut private = Vec::new();
        private.extend_from_slice(&[7, 7, 7, 7, 7, 7, 7, 7]);
        string(&mut private, key_type.as_bytes());
        string(&mut private, public);
        string(&mut private, pair);
        string(&mut private, b"test@example");
        private.extend_from_slice(&[1, 2, 3]);
        let mut all = MAGIC.to_vec();
        string(&mut all, cipher.as_bytes());
        string(&mut all, b"none");
        string(&mut all, b"");
        all.extend_from_slice(&1u32.to_be_bytes());
        string(&mut all, &public_blob);
        string(&mut all, &private);
        let body = base64::engine::general_purpose::STANDARD.encode(all);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(70)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!("{BEGIN}\n{}\n{END}\n", lines.join("\n"))
    }

    #[test]
    fn reads_the_seed_and_rejects_everything_else() {
        let seed: Vec<u8> = (0u8..32).collect();
        let public = [9u8; 32];
        let pair = [seed.as_slice(), &public].concat();
        let good = key_file("none", "ssh-ed25519", &public, &pair);
        assert_eq!(&ed25519_seed(&good, None).expect("seed")[..], &seed[..]);

        assert!(ed25519_seed("", None).is_none());
        assert!(
            ed25519_seed(&key_file("aes256-ctr", "ssh-ed25519", &public, &pair), None).is_none()
        );
        assert!(ed25519_seed(&key_file("none", "ssh-rsa", &public, &pair), None).is_none());
        // The private half must carry the same public key.
        let other = [seed.as_slice(), &[8u8; 32]].concat();
        assert!(ed25519_seed(&key_file("none", "ssh-ed25519", &public, &other), None).is_none());
        // A truncated body.
        let cut: String = good.lines().take(3).collect::<Vec<_>>().join("\n") + "\n" + END;
        assert!(ed25519_seed(&cut, None).is_none());
    }

    proptest::proptest! {
        /// Damaged keys give no seed and never panic: every byte string, and
        /// every truncation and bit flip of a good key.
        #[test]
        fn damaged_keys_never_panic(
            junk in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            cut in 0usize..300,
            flip in 0usize..300,
        ) {
            let wrap = |bytes: &[u8]| {
                format!("{BEGIN}\n{}\n{END}\n", base64::engine::general_purpose::STANDARD.encode(bytes))
            };
            let _ = ed25519_seed(&wrap(&junk), None);
            let seed = [5u8; 32];
            let public = [6u8; 32];
            let good = key_file("none", "ssh-ed25519", &public, &[seed, public].concat());
            let body: String = good.lines().filter(|l| !l.starts_with("-----")).collect();
            let mut bytes = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
            let n = bytes.len();
            bytes[flip % n] ^= 0x10;
            let _ = ed25519_seed(&wrap(&bytes), None);
            let _ = ed25519_seed(&wrap(&bytes[..cut % n]), None);
        }
    }
}
