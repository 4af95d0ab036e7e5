//! OpenSSH private keys (`-----BEGIN OPENSSH PRIVATE KEY-----`, format
//! `openssh-key-v1`, see OpenSSH's PROTOCOL.key): one parser and one
//! decryption (bcrypt KDF with `aes256-ctr`, `ssh-keygen`'s default, or
//! `aes256-gcm@openssh.com`) for two uses:
//!
//! - [`ed25519_seed`]: the Ed25519 seed, for the X25519 conversion in
//!   [`crate::age`] (the `age` crate parses these keys too but keeps the key
//!   material in a type it does not export);
//! - [`unlock`]: the equivalent unprotected file (what `ssh-keygen -p -N ''`
//!   writes), to hand to programs that cannot ask for the passphrase. Any key
//!   type: the private section is decrypted and wrapped again, never
//!   interpreted.
//!
//! No global state; every buffer holding key material is zeroized.

use aes::cipher::{KeyIvInit, StreamCipher};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END: &str = "-----END OPENSSH PRIVATE KEY-----";
const MAGIC: &[u8] = b"openssh-key-v1\0";

/// What unlocking found.
pub(crate) enum Unlocked {
    /// The key has no passphrase.
    NotEncrypted,
    /// The passphrase does not decrypt it.
    WrongPassphrase,
    /// Valid, but protected in a way we do not implement (cipher or KDF named).
    Unsupported(String),
    /// Not an OpenSSH private key we can read.
    Invalid,
    /// The unprotected key file.
    Key(Zeroizing<String>),
}

/// Reads SSH wire-format fields (RFC 4251 `string` and `uint32`).
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

/// Appends an SSH `string`: a big-endian `u32` length, then the bytes.
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The binary body of the armored key.
fn decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let body = text
        .trim()
        .strip_prefix(BEGIN)?
        .trim_end()
        .strip_suffix(END)?;
    let compact: Zeroizing<String> =
        Zeroizing::new(body.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()
        .map(Zeroizing::new)
}

/// The fields of a key file holding exactly one key.
struct KeyFile<'a> {
    cipher: &'a [u8],
    kdf: &'a [u8],
    kdf_options: &'a [u8],
    public: &'a [u8],
    private: &'a [u8],
    /// What follows the private section (the GCM tag, outside its length).
    trailer: &'a [u8],
}

impl<'a> KeyFile<'a> {
    fn parse(blob: &'a [u8]) -> Option<KeyFile<'a>> {
        let mut r = Reader(blob.strip_prefix(MAGIC)?);
        let (cipher, kdf, kdf_options) = (r.string()?, r.string()?, r.string()?);
        if r.u32()? != 1 {
            return None;
        }
        let (public, private) = (r.string()?, r.string()?);
        Some(KeyFile {
            cipher,
            kdf,
            kdf_options,
            public,
            private,
            trailer: r.0,
        })
    }

    fn encrypted(&self) -> bool {
        self.cipher != b"none"
    }

    /// The private section in plaintext, decrypted with `passphrase` when the
    /// key is protected; its two check words are verified (a wrong passphrase
    /// gives different ones).
    fn private_section(&self, passphrase: Option<&[u8]>) -> Result<Zeroizing<Vec<u8>>, Unlocked> {
        let mut section = Zeroizing::new(self.private.to_vec());
        if self.encrypted() {
            if self.kdf != b"bcrypt" {
                return Err(Unlocked::Unsupported(format!(
                    "key derivation {}",
                    String::from_utf8_lossy(self.kdf)
                )));
            }
            let passphrase = passphrase.ok_or(Unlocked::WrongPassphrase)?;
            let mut options = Reader(self.kdf_options);
            let (Some(salt), Some(rounds)) = (options.string(), options.u32()) else {
                return Err(Unlocked::Invalid);
            };
            let mut material = Zeroizing::new([0u8; 48]);
            match self.cipher {
                b"aes256-ctr" => {
                    bcrypt_pbkdf::bcrypt_pbkdf(passphrase, salt, rounds, &mut material[..])
                        .map_err(|_| Unlocked::WrongPassphrase)?;
                    ctr::Ctr128BE::<aes::Aes256>::new_from_slices(
                        &material[..32],
                        &material[32..48],
                    )
                    .map_err(|_| Unlocked::Invalid)?
                    .apply_keystream(&mut section);
                }
                b"aes256-gcm@openssh.com" => {
                    let tag = self.trailer.get(..16).ok_or(Unlocked::Invalid)?;
                    bcrypt_pbkdf::bcrypt_pbkdf(passphrase, salt, rounds, &mut material[..44])
                        .map_err(|_| Unlocked::WrongPassphrase)?;
                    let aead = aes_gcm::Aes256Gcm::new_from_slice(&material[..32])
                        .map_err(|_| Unlocked::Invalid)?;
                    let nonce = aes_gcm::Nonce::from_slice(&material[32..44]);
                    aead.decrypt_in_place_detached(
                        nonce,
                        b"",
                        &mut section,
                        aes_gcm::Tag::from_slice(tag),
                    )
                    .map_err(|_| Unlocked::WrongPassphrase)?;
                }
                other => {
                    return Err(Unlocked::Unsupported(format!(
                        "cipher {}",
                        String::from_utf8_lossy(other)
                    )));
                }
            }
        }
        let mut check = Reader(&section);
        match (check.u32(), check.u32()) {
            (Some(a), Some(b)) if a == b => Ok(section),
            _ if self.encrypted() => Err(Unlocked::WrongPassphrase),
            _ => Err(Unlocked::Invalid),
        }
    }
}

/// Decrypts the OpenSSH key in `text` with `passphrase` into an unprotected
/// key file.
pub(crate) fn unlock(text: &str, passphrase: &[u8]) -> Unlocked {
    let Some(blob) = decode(text) else {
        return Unlocked::Invalid;
    };
    let Some(key) = KeyFile::parse(&blob) else {
        return Unlocked::Invalid;
    };
    if !key.encrypted() {
        return Unlocked::NotEncrypted;
    }
    let section = match key.private_section(Some(passphrase)) {
        Ok(section) => section,
        Err(outcome) => return outcome,
    };
    // The section is padded to the cipher's block size (16), which is also a
    // multiple of the block size without a cipher (8): it can go back as it is.
    let mut out = Zeroizing::new(Vec::with_capacity(section.len() + key.public.len() + 64));
    out.extend_from_slice(MAGIC);
    put_string(&mut out, b"none");
    put_string(&mut out, b"none");
    put_string(&mut out, b"");
    out.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut out, key.public);
    put_string(&mut out, &section);
    let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*out));
    let mut text = Zeroizing::new(String::with_capacity(encoded.len() + 100));
    text.push_str(BEGIN);
    text.push('\n');
    for line in encoded.as_bytes().chunks(70) {
        // Base64 is ASCII.
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str(END);
    text.push('\n');
    Unlocked::Key(text)
}

/// The 32-byte seed of the only key of an OpenSSH ssh-ed25519 private key,
/// decrypted with `passphrase` when it is protected; `None` for anything
/// else (other key types, a wrong or missing passphrase, an unsupported
/// cipher, several keys, malformed data).
pub(crate) fn ed25519_seed(
    text: &str,
    passphrase: Option<&SecretString>,
) -> Option<Zeroizing<[u8; 32]>> {
    let blob = decode(text)?;
    let key = KeyFile::parse(&blob)?;
    let section = key
        .private_section(passphrase.map(|p| p.expose_secret().as_bytes()))
        .ok()?;
    let mut private = Reader(&section[8..]);
    if private.string()? != b"ssh-ed25519" {
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
