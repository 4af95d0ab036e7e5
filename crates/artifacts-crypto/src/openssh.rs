//! Unlocking a passphrase-protected OpenSSH private key (`openssh-key-v1`)
//! into the equivalent unprotected file (what `ssh-keygen -p -N ''` writes),
//! to hand it to programs that cannot ask for the passphrase. Any key type:
//! the private section is decrypted and wrapped again, never interpreted.
//! No global state.

use aes::cipher::{KeyIvInit, StreamCipher};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use base64::Engine as _;
use zeroize::Zeroizing;

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

const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END: &str = "-----END OPENSSH PRIVATE KEY-----";
const MAGIC: &[u8] = b"openssh-key-v1\0";

/// Reads SSH wire-format fields from a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*head))
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.bytes(n)
    }
}

/// Appends an SSH `string`: a big-endian `u32` length, then the bytes.
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Decrypts the OpenSSH key in `text` with `passphrase`.
pub(crate) fn unlock(text: &str, passphrase: &[u8]) -> Unlocked {
    let Some(body) = text
        .trim()
        .strip_prefix(BEGIN)
        .and_then(|rest| rest.trim_end().strip_suffix(END))
    else {
        return Unlocked::Invalid;
    };
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(compact) else {
        return Unlocked::Invalid;
    };
    let blob = Zeroizing::new(blob);
    let Some(rest) = blob.strip_prefix(MAGIC) else {
        return Unlocked::Invalid;
    };
    let mut reader = Reader(rest);
    let parsed = (|| {
        let cipher = reader.string()?;
        let kdf = reader.string()?;
        let kdf_options = reader.string()?;
        if reader.u32()? != 1 {
            return None;
        }
        let public = reader.string()?;
        let encrypted = reader.string()?;
        Some((cipher, kdf, kdf_options, public, encrypted, reader.0))
    })();
    let Some((cipher, kdf, kdf_options, public, encrypted, trailer)) = parsed else {
        return Unlocked::Invalid;
    };
    if cipher == b"none" {
        return Unlocked::NotEncrypted;
    }
    if kdf != b"bcrypt" {
        return Unlocked::Unsupported(format!("key derivation {}", String::from_utf8_lossy(kdf)));
    }
    let mut options = Reader(kdf_options);
    let (Some(salt), Some(rounds)) = (options.string(), options.u32()) else {
        return Unlocked::Invalid;
    };
    let mut section = Zeroizing::new(encrypted.to_vec());
    let mut material = Zeroizing::new([0u8; 48]);
    let decrypted = match cipher {
        b"aes256-ctr" => {
            if bcrypt_pbkdf::bcrypt_pbkdf(passphrase, salt, rounds, &mut material[..48]).is_err() {
                return Unlocked::WrongPassphrase;
            }
            let Ok(mut ctr) =
                ctr::Ctr128BE::<aes::Aes256>::new_from_slices(&material[..32], &material[32..48])
            else {
                return Unlocked::Invalid;
            };
            ctr.apply_keystream(&mut section);
            true
        }
        b"aes256-gcm@openssh.com" => {
            // The tag follows the string, outside its length.
            let Some(tag) = trailer.get(..16) else {
                return Unlocked::Invalid;
            };
            if bcrypt_pbkdf::bcrypt_pbkdf(passphrase, salt, rounds, &mut material[..44]).is_err() {
                return Unlocked::WrongPassphrase;
            }
            let Ok(aead) = aes_gcm::Aes256Gcm::new_from_slice(&material[..32]) else {
                return Unlocked::Invalid;
            };
            let nonce = aes_gcm::Nonce::from_slice(&material[32..44]);
            aead.decrypt_in_place_detached(nonce, b"", &mut section, aes_gcm::Tag::from_slice(tag))
                .is_ok()
        }
        other => {
            return Unlocked::Unsupported(format!("cipher {}", String::from_utf8_lossy(other)));
        }
    };
    // Two equal check integers: how OpenSSH tells a wrong passphrase.
    let mut check = Reader(&section);
    if !decrypted || check.u32().is_none() || check.u32() != Reader(&section).u32() {
        return Unlocked::WrongPassphrase;
    }
    // The section is padded to the cipher's block size (16), which is also a
    // multiple of the block size without a cipher (8): it can go back as it is.
    let mut out = Zeroizing::new(Vec::with_capacity(section.len() + public.len() + 64));
    out.extend_from_slice(MAGIC);
    put_string(&mut out, b"none");
    put_string(&mut out, b"none");
    put_string(&mut out, b"");
    out.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut out, public);
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
