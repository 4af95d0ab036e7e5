//! The value cipher: AES-256-GCM with sops' 32-byte IVs and the
//! `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` text form, plus the data key.
//!
//! Owns [`DataKey`] (zeroized on drop, no `Debug` output of its bytes) and
//! the IV stash that lets unchanged values keep their ciphertext when a file
//! is re-encrypted with the same key (sops does the same, so diffs stay small).

use std::collections::HashMap;

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

type Aes256Gcm32 = AesGcm<Aes256, U32>;

/// A sops data key: 32 random bytes.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut k[..]);
        DataKey(k)
    }

    /// A key from bytes (must be 32 long).
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = b.try_into().ok()?;
        Some(DataKey(Zeroizing::new(arr)))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A parsed `ENC[...]` value.
pub(crate) struct EncValue {
    pub data: Vec<u8>,
    pub iv: Vec<u8>,
    pub tag: Vec<u8>,
    pub ty: String,
}

/// Whether a string looks like a sops encrypted value.
pub(crate) fn is_enc(s: &str) -> bool {
    s.starts_with("ENC[AES256_GCM,")
}

/// Parses `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`.
pub(crate) fn parse_enc(s: &str) -> Result<EncValue, String> {
    let body = s
        .strip_prefix("ENC[AES256_GCM,data:")
        .and_then(|r| r.strip_suffix(']'))
        .ok_or("expected ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]")?;
    let (data, rest) = body.split_once(",iv:").ok_or("missing iv")?;
    let (iv, rest) = rest.split_once(",tag:").ok_or("missing tag")?;
    let (tag, ty) = rest.split_once(",type:").ok_or("missing type")?;
    let dec = |what: &str, v: &str| {
        B64.decode(v)
            .map_err(|_| format!("invalid base64 in {what}"))
    };
    let v = EncValue {
        data: dec("data", data)?,
        iv: dec("iv", iv)?,
        tag: dec("tag", tag)?,
        ty: ty.to_string(),
    };
    if v.tag.len() != 16 {
        return Err("the tag must be 16 bytes".into());
    }
    if v.iv.len() != 32 {
        return Err("the iv must be 32 bytes".into());
    }
    Ok(v)
}

/// Remembers the IV each (additional data, type, plaintext) had when it was
/// decrypted, keyed by a hash so no plaintext is stored.
#[derive(Default)]
pub(crate) struct IvStash(HashMap<[u8; 32], [u8; 32]>);

fn stash_key(ad: &str, ty: &str, plain: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((ad.len() as u64).to_be_bytes());
    h.update(ad.as_bytes());
    h.update((ty.len() as u64).to_be_bytes());
    h.update(ty.as_bytes());
    h.update(plain);
    h.finalize().into()
}

impl IvStash {
    pub(crate) fn remember(&mut self, ad: &str, ty: &str, plain: &[u8], iv: &[u8]) {
        if let Ok(iv) = <[u8; 32]>::try_from(iv) {
            self.0.insert(stash_key(ad, ty, plain), iv);
        }
    }
    fn recall(&self, ad: &str, ty: &str, plain: &[u8]) -> Option<[u8; 32]> {
        self.0.get(&stash_key(ad, ty, plain)).copied()
    }
}

/// Encrypts one plaintext into the `ENC[...]` form.
pub(crate) fn encrypt(
    key: &DataKey,
    plain: &[u8],
    ty: &str,
    ad: &str,
    stash: Option<&IvStash>,
) -> String {
    let iv = stash
        .and_then(|s| s.recall(ad, ty, plain))
        .unwrap_or_else(|| {
            let mut iv = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut iv);
            iv
        });
    let cipher = Aes256Gcm32::new_from_slice(key.as_bytes()).expect("32-byte key");
    let out = cipher
        .encrypt(
            Nonce::<U32>::from_slice(&iv),
            Payload {
                msg: plain,
                aad: ad.as_bytes(),
            },
        )
        .expect("AES-GCM encryption of in-memory data cannot fail");
    let (data, tag) = out.split_at(out.len() - 16);
    format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{ty}]",
        B64.encode(data),
        B64.encode(iv),
        B64.encode(tag)
    )
}

/// Decrypts a parsed value; `None` when authentication fails.
pub(crate) fn decrypt(key: &DataKey, v: &EncValue, ad: &str) -> Option<Zeroizing<Vec<u8>>> {
    let cipher = Aes256Gcm32::new_from_slice(key.as_bytes()).ok()?;
    let mut ct = Vec::with_capacity(v.data.len() + 16);
    ct.extend_from_slice(&v.data);
    ct.extend_from_slice(&v.tag);
    cipher
        .decrypt(
            Nonce::<U32>::from_slice(&v.iv),
            Payload {
                msg: &ct,
                aad: ad.as_bytes(),
            },
        )
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_bind_their_additional_data() {
        let k = DataKey::generate();
        let enc = encrypt(&k, b"hunter2", "str", "db:password:", None);
        let v = parse_enc(&enc).unwrap();
        assert_eq!(v.ty, "str");
        assert_eq!(&decrypt(&k, &v, "db:password:").unwrap()[..], b"hunter2");
        assert!(decrypt(&k, &v, "db:other:").is_none());
        assert!(decrypt(&DataKey::generate(), &v, "db:password:").is_none());
    }

    #[test]
    fn stashed_iv_gives_identical_ciphertext() {
        let k = DataKey::generate();
        let enc = encrypt(&k, b"x", "str", "a:", None);
        let v = parse_enc(&enc).unwrap();
        let mut stash = IvStash::default();
        stash.remember("a:", "str", b"x", &v.iv);
        assert_eq!(encrypt(&k, b"x", "str", "a:", Some(&stash)), enc);
        assert_ne!(encrypt(&k, b"y", "str", "a:", Some(&stash)), enc);
    }

    #[test]
    fn malformed_values_are_rejected() {
        assert!(parse_enc("ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]").is_err());
        assert!(parse_enc("plain").is_err());
        assert!(parse_enc("ENC[AES256_GCM,data:!!,iv:,tag:,type:str]").is_err());
    }
}
