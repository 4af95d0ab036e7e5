//! age recipients, identities, encryption and decryption, key generation.
//!
//! Owns the [`Recipient`] and [`Identity`] wrappers around the `age` crate
//! (X25519 `age1…` keys, `ssh-ed25519` and `ssh-rsa`, and age plugins'
//! `age1<name>1…` recipients and `AGE-PLUGIN-<NAME>-1…` identities, run
//! through [`crate::plugin`]), their parsers (strings,
//! recipient files, `.pub` files, age key files, OpenSSH private keys), and
//! one-shot [`encrypt`]/[`decrypt`] helpers that buffer the plaintext so a
//! failure never leaves half a plaintext behind. No global state.
//!
//! ssh-ed25519 keys also have an X25519 form: the standard Ed25519→X25519
//! birational map, as `ssh-to-age` and sops-nix compute it (sops-nix turns a
//! host's `/etc/ssh/ssh_host_ed25519_key` into an age identity that way and
//! only matches X25519 stanzas). [`Recipient::to_x25519`] gives it for
//! recipients, and an ssh-ed25519 [`Identity`] decrypts both stanza kinds.

use std::fmt;
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use secrecy::SecretString;
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Origin, Result};

/// The bech32 prefixes of age's X25519 keys (its own format, not re-exported).
const PUBLIC_KEY_HRP: bech32::Hrp = bech32::Hrp::parse_unchecked("age");
const SECRET_KEY_HRP: bech32::Hrp = bech32::Hrp::parse_unchecked("AGE-SECRET-KEY-");

/// An age recipient: who a file is encrypted to. Public; safe to print.
#[derive(Clone)]
pub struct Recipient {
    text: String,
    kind: RecipientKind,
}

#[derive(Clone)]
enum RecipientKind {
    X25519(age::x25519::Recipient),
    Ssh(age::ssh::Recipient),
    /// Wrapped by `age-plugin-<name>` at encryption time.
    Plugin(age::plugin::Recipient),
}

/// Why a FIDO security-key SSH key is refused: neither the `age` crate nor
/// age (Go) encrypts to one.
const SECURITY_KEY_SSH: &str = "FIDO security-key SSH keys (sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com) are not supported by age; use an age plugin for the security key instead (for example age-plugin-fido2-hmac, whose recipients are age1fido2-hmac1…)";

/// A shortened, public rendering of untrusted recipient text for errors.
///
/// Text that looks like a secret key is never echoed.
fn describe_untrusted(s: &str) -> String {
    let t = s.trim();
    if t.to_ascii_uppercase().starts_with("AGE-SECRET-KEY") || t.contains("PRIVATE KEY") {
        return "(an identity, not a recipient)".to_string();
    }
    let short: String = t.chars().take(24).collect();
    if short.len() < t.len() {
        format!("`{short}…`")
    } else {
        format!("`{short}`")
    }
}

impl Recipient {
    /// Parses one recipient; surrounding whitespace is ignored.
    ///
    /// `origin` names where the text came from, for the error message.
    pub fn parse_from(s: &str, origin: Origin) -> Result<Self> {
        let t = s.trim();
        let err = |reason: &str| Error::InvalidRecipient {
            what: describe_untrusted(t),
            origin: origin.clone(),
            reason: reason.to_string(),
        };
        if t.to_ascii_uppercase().starts_with("AGE-SECRET-KEY") {
            return Err(err(
                "this is an identity (private key); pass its public key instead",
            ));
        }
        if let Some(rest) = t.strip_prefix("age1") {
            // Bech32 data never contains `1`, so one after the prefix marks a
            // plugin recipient (`age1yubikey1…`), served by `age-plugin-yubikey`.
            if rest.contains('1') {
                let r = age::plugin::Recipient::from_str(t)
                    .map_err(|e| err(&format!("not a valid age plugin recipient ({e})")))?;
                return Ok(Recipient {
                    text: t.to_owned(),
                    kind: RecipientKind::Plugin(r),
                });
            }
            let r = age::x25519::Recipient::from_str(t).map_err(err)?;
            if x25519_is_low_order(t) {
                return Err(err(LOW_ORDER));
            }
            return Ok(Recipient {
                text: r.to_string(),
                kind: RecipientKind::X25519(r),
            });
        }
        if t.starts_with("ssh-ed25519 ") || t.starts_with("ssh-rsa ") {
            // Keep the key type and the key; drop a trailing comment.
            let mut parts = t.split_whitespace();
            let key = format!(
                "{} {}",
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default()
            );
            let r = age::ssh::Recipient::from_str(&key).map_err(|e| {
                err(match e {
                    age::ssh::ParseRecipientKeyError::RsaModulusTooLarge => {
                        "the RSA modulus is too large"
                    }
                    age::ssh::ParseRecipientKeyError::RsaModulusTooSmall => {
                        "the RSA modulus is smaller than 2048 bits"
                    }
                    age::ssh::ParseRecipientKeyError::Unsupported(_) => "unsupported SSH key type",
                    _ => "invalid SSH public key",
                })
            })?;
            if key.starts_with("ssh-ed25519 ") && ed25519_is_low_order(&key) {
                return Err(err(LOW_ORDER));
            }
            return Ok(Recipient {
                text: r.to_string(),
                kind: RecipientKind::Ssh(r),
            });
        }
        if t.starts_with("sk-ssh-") || t.starts_with("sk-ecdsa-") {
            return Err(err(SECURITY_KEY_SSH));
        }
        if t.starts_with("ssh-") || t.starts_with("ecdsa-") || t.starts_with("sk-") {
            return Err(err("unsupported SSH key type (use ssh-ed25519 or ssh-rsa)"));
        }
        Err(err(
            "expected an age1… X25519 key, an age plugin recipient (age1<plugin>1…), or an ssh-ed25519 or ssh-rsa public key",
        ))
    }

    /// Parses one recipient given on the command line or in code.
    pub fn parse(s: &str) -> Result<Self> {
        Self::parse_from(s, Origin::Described("the arguments".into()))
    }

    /// The canonical text form (`age1…`, or `ssh-… BASE64` without comment).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is an SSH recipient.
    pub fn is_ssh(&self) -> bool {
        matches!(self.kind, RecipientKind::Ssh(_))
    }

    /// The key type: `X25519`, `ssh-ed25519`, `ssh-rsa` or `age plugin`.
    pub fn key_type(&self) -> &'static str {
        match &self.kind {
            RecipientKind::X25519(_) => "X25519",
            RecipientKind::Ssh(age::ssh::Recipient::SshEd25519(..)) => "ssh-ed25519",
            RecipientKind::Ssh(age::ssh::Recipient::SshRsa(..)) => "ssh-rsa",
            RecipientKind::Plugin(_) => "age plugin",
        }
    }

    /// The plugin name of a plugin recipient (`yubikey` for `age1yubikey1…`;
    /// its program is `age-plugin-yubikey`), `None` for the others.
    pub fn plugin(&self) -> Option<&str> {
        match &self.kind {
            RecipientKind::Plugin(r) => Some(r.plugin()),
            _ => None,
        }
    }

    /// The X25519 recipient (`age1…`) that reaches the same private key: the
    /// recipient itself, or for ssh-ed25519 the Montgomery form of its
    /// Edwards point (what `ssh-to-age < key.pub` prints). `None` for ssh-rsa
    /// and plugin recipients, which have no X25519 form.
    pub fn to_x25519(&self) -> Option<Recipient> {
        let point = match &self.kind {
            RecipientKind::X25519(_) => return Some(self.clone()),
            RecipientKind::Ssh(age::ssh::Recipient::SshEd25519(_, point)) => point,
            RecipientKind::Ssh(age::ssh::Recipient::SshRsa(..)) | RecipientKind::Plugin(_) => {
                return None;
            }
        };
        let bytes = point.to_montgomery().to_bytes();
        let text = bech32::encode::<bech32::Bech32>(PUBLIC_KEY_HRP, &bytes)
            .expect("32 bytes fit a bech32 string");
        let recipient =
            age::x25519::Recipient::from_str(&text).expect("a freshly encoded X25519 key parses");
        Some(Recipient {
            text: recipient.to_string(),
            kind: RecipientKind::X25519(recipient),
        })
    }

    /// The `age` recipient; `None` for plugin recipients, which are wrapped
    /// together per plugin ([`crate::plugin`]).
    fn as_age(&self) -> Option<&dyn age::Recipient> {
        match &self.kind {
            RecipientKind::X25519(r) => Some(r),
            RecipientKind::Ssh(r) => Some(r),
            RecipientKind::Plugin(_) => None,
        }
    }
}

/// Why a low-order public key is refused, in the words of the age tools.
const LOW_ORDER: &str =
    "bad input point: low order point (anyone could read what is encrypted to it)";

/// The u-coordinates (little-endian, top bit clear) of X25519's points of
/// small order, on the curve and on its twist: 0 (order 2), 1 and p − 1
/// (order 4, one on each), the two of order 8, and p and p + 1, the
/// non-canonical encodings of 0 and 1. The curve's group is 8·ℓ and the
/// twist's 4·ℓ′ (ℓ, ℓ′ prime), so these are all of them; the test
/// `small_order_table_matches_the_scalar_multiplication` checks the table
/// against the definition.
const SMALL_ORDER: [[u8; 32]; 7] = {
    const fn le(hex: &[u8; 64]) -> [u8; 32] {
        const fn nibble(c: u8) -> u8 {
            match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => panic!("not hex"),
            }
        }
        let mut out = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            out[i] = nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]);
            i += 1;
        }
        out
    }
    [
        le(b"0000000000000000000000000000000000000000000000000000000000000000"),
        le(b"0100000000000000000000000000000000000000000000000000000000000000"),
        le(b"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        le(b"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
        le(b"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        le(b"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        le(b"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ]
};

/// Whether an `age1…` key (already validated by the `age` crate) is a point
/// of small order: every shared secret with it is all zeroes. The `age` crate
/// panics on encryption to such a key; age (Go) refuses it.
///
/// A table lookup: the scalar multiplication that defines it (see
/// [`is_small_order_by_multiplication`]) costs ~50 µs, and `check` parses
/// every stored recipient of a fleet.
fn x25519_is_low_order(text: &str) -> bool {
    let Ok((_, data)) = bech32::decode(text) else {
        return false;
    };
    let Ok(point) = <[u8; 32]>::try_from(data) else {
        return false;
    };
    is_small_order(point)
}

/// Whether the u-coordinate `point` is of small order (see [`SMALL_ORDER`]).
fn is_small_order(mut point: [u8; 32]) -> bool {
    // X25519 ignores the top bit (RFC 7748 §5).
    point[31] &= 0x7f;
    SMALL_ORDER.contains(&point)
}

/// The definition [`is_small_order`] implements: a clamped scalar is a
/// multiple of the cofactor 8, so the product is the identity exactly for
/// points of order 1, 2, 4 or 8 (curve or twist).
#[cfg(test)]
fn is_small_order_by_multiplication(point: [u8; 32]) -> bool {
    let product = curve25519_dalek::montgomery::MontgomeryPoint(point).mul_clamped([0x42; 32]);
    product.to_bytes() == [0u8; 32]
}

/// Whether an `ssh-ed25519 BASE64` key is a point of small order, which
/// would make age's shared secret all zeroes (age refuses it).
fn ed25519_is_low_order(key: &str) -> bool {
    use base64::Engine;
    let Some(blob) = key
        .split_whitespace()
        .nth(1)
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
    else {
        return false;
    };
    // The SSH wire format: string "ssh-ed25519", string key (32 bytes).
    if blob.len() != 4 + 11 + 4 + 32 {
        return false;
    }
    let point = &blob[blob.len() - 32..];
    let Ok(point) = <[u8; 32]>::try_from(point) else {
        return false;
    };
    curve25519_dalek::edwards::CompressedEdwardsY(point)
        .decompress()
        .is_none_or(|p| p.is_small_order())
}

impl FromStr for Recipient {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Recipient::parse(s)
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({})", self.text)
    }
}

impl PartialEq for Recipient {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for Recipient {}

/// Parses recipients from text in the recipients-file format: one per line,
/// blank lines and `#` comments ignored. `.pub` files are a special case of it.
pub fn parse_recipients(text: &str, origin: &Origin) -> Result<Vec<Recipient>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = match origin {
            Origin::File(p) => Origin::Described(format!("`{}` line {}", p.display(), n + 1)),
            o => Origin::Described(format!("{o} line {}", n + 1)),
        };
        out.push(Recipient::parse_from(line, at)?);
    }
    Ok(out)
}

/// Reads a recipients file (or an SSH `.pub` file).
pub fn read_recipients_file(path: &Path) -> Result<Vec<Recipient>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    let recipients = parse_recipients(&text, &Origin::file(path))?;
    if recipients.is_empty() {
        return Err(Error::InvalidRecipient {
            what: "list".into(),
            origin: Origin::file(path),
            reason: "the file holds no recipient".into(),
        });
    }
    Ok(recipients)
}

/// Something that can supply the passphrase of an encrypted SSH key.
///
/// The CLI asks in a terminal; libraries and tests pass [`NoPassphrase`] or a
/// closure.
pub trait PassphraseProvider {
    /// Returns the passphrase for the key described by `description`, or
    /// `None` when none can be obtained (no terminal, cancelled).
    fn passphrase(&self, description: &str) -> Option<SecretString>;
}

/// A [`PassphraseProvider`] that never has a passphrase.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPassphrase;

impl PassphraseProvider for NoPassphrase {
    fn passphrase(&self, _: &str) -> Option<SecretString> {
        None
    }
}

impl<F: Fn(&str) -> Option<SecretString>> PassphraseProvider for F {
    fn passphrase(&self, description: &str) -> Option<SecretString> {
        self(description)
    }
}

/// An age identity (private key). Its `Debug` shows only its kind and origin.
pub struct Identity {
    origin: Origin,
    kind: IdentityKind,
}

enum IdentityKind {
    X25519(age::x25519::Identity),
    /// An SSH key, with its X25519 form when it is an ssh-ed25519 key whose
    /// seed we can read (unencrypted, or ssh-keygen's aes256-ctr; see openssh.rs).
    Ssh(age::ssh::Identity, Option<age::x25519::Identity>),
    /// An age plugin identity and its line in the identity file, run by
    /// `age-plugin-<name>` at decryption time ([`crate::plugin`]).
    Plugin(age::plugin::Identity, usize),
}

/// The X25519 identity of an ssh-ed25519 key: the first half of SHA-512 of
/// its seed, as Ed25519 derives its scalar (what `ssh-to-age -private-key`
/// prints, and what sops-nix decrypts with). `text` is the OpenSSH key,
/// protected by `passphrase` or not.
fn ssh_ed25519_to_x25519(
    text: &str,
    passphrase: Option<&SecretString>,
) -> Option<age::x25519::Identity> {
    let seed = crate::openssh::ed25519_seed(text, passphrase)?;
    let mut digest = Sha512::digest(&seed[..]);
    let mut encoded = Zeroizing::new(String::with_capacity(80));
    let written = bech32::encode_upper_to_fmt::<bech32::Bech32, String>(
        &mut encoded,
        SECRET_KEY_HRP,
        &digest[..32],
    );
    digest.as_mut_slice().zeroize();
    written.ok()?;
    age::x25519::Identity::from_str(&encoded).ok()
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            IdentityKind::X25519(_) => "x25519",
            IdentityKind::Ssh(..) => "ssh",
            IdentityKind::Plugin(..) => "age plugin",
        };
        write!(f, "Identity({kind} from {})", self.origin)
    }
}

impl Identity {
    /// Where this identity was loaded from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The public recipient of this identity.
    pub fn to_recipient(&self) -> Result<Recipient> {
        match &self.kind {
            IdentityKind::X25519(i) => {
                let r = i.to_public();
                Ok(Recipient {
                    text: r.to_string(),
                    kind: RecipientKind::X25519(r),
                })
            }
            IdentityKind::Ssh(i, _) => {
                let r = age::ssh::Recipient::try_from(i.clone()).map_err(|_| {
                    Error::InvalidIdentity {
                        origin: self.origin.clone(),
                        reason: "cannot derive the public key of this SSH key".into(),
                    }
                })?;
                Ok(Recipient {
                    text: r.to_string(),
                    kind: RecipientKind::Ssh(r),
                })
            }
            IdentityKind::Plugin(i, _) => Err(Error::InvalidIdentity {
                origin: self.origin.clone(),
                reason: format!(
                    "the recipient of an age plugin identity is known only to its plugin (`{}` printed it when the identity was made)",
                    crate::plugin::program_name(i.plugin())
                ),
            }),
        }
    }

    /// The plugin name of a plugin identity (`yubikey` for
    /// `AGE-PLUGIN-YUBIKEY-1…`), `None` for the others.
    pub fn plugin(&self) -> Option<&str> {
        match &self.kind {
            IdentityKind::Plugin(i, _) => Some(i.plugin()),
            _ => None,
        }
    }

    /// The X25519 identity that decrypts what [`Recipient::to_x25519`] of
    /// this identity's recipient can read: the identity itself, or the
    /// conversion of an ssh-ed25519 key. `None` for ssh-rsa and plugin identities.
    pub fn to_x25519(&self) -> Option<Identity> {
        let identity = match &self.kind {
            IdentityKind::X25519(i) => i.clone(),
            IdentityKind::Ssh(_, converted) => converted.clone()?,
            IdentityKind::Plugin(..) => return None,
        };
        Some(Identity {
            origin: self.origin.clone(),
            kind: IdentityKind::X25519(identity),
        })
    }

    /// The `AGE-SECRET-KEY-1…` text of [`Identity::to_x25519`] (for an
    /// ssh-ed25519 key, what `ssh-to-age -private-key` prints). Secret.
    pub fn x25519_secret_key(&self) -> Option<SecretString> {
        match &self.kind {
            IdentityKind::X25519(i) => Some(i.to_string()),
            IdentityKind::Ssh(_, converted) => converted.as_ref().map(|i| i.to_string()),
            IdentityKind::Plugin(..) => None,
        }
    }

    /// The native age identities this one decrypts with: an ssh-ed25519 key
    /// reads both its SSH stanzas and the X25519 stanzas of its converted
    /// form; none for a plugin identity (see [`plugin_attempts`]).
    fn age_identities(&self) -> impl Iterator<Item = &dyn age::Identity> {
        let (first, second): (Option<&dyn age::Identity>, Option<&dyn age::Identity>) =
            match &self.kind {
                IdentityKind::X25519(i) => (Some(i), None),
                IdentityKind::Ssh(i, converted) => {
                    (Some(i), converted.as_ref().map(|c| c as &dyn age::Identity))
                }
                IdentityKind::Plugin(..) => (None, None),
            };
        first.into_iter().chain(second)
    }
}

/// One attempt per plugin identity, for one decryption: tried after every
/// native identity, so that a file one of those opens never starts a plugin
/// (nor asks to touch a key).
fn plugin_attempts(identities: &[Identity]) -> Vec<crate::plugin::IdentityAttempt<'_>> {
    identities
        .iter()
        .filter_map(|i| match &i.kind {
            IdentityKind::Plugin(plugin, line) => Some(crate::plugin::IdentityAttempt::new(
                plugin,
                format!("the age plugin identity in {} line {line}", i.origin),
            )),
            _ => None,
        })
        .collect()
}

/// Parses identities from text: an age key file (as `age-keygen` writes it,
/// comments allowed, several keys allowed) or an OpenSSH private key
/// (ed25519 or rsa, optionally passphrase-protected).
pub fn parse_identities(
    text: &str,
    origin: Origin,
    passphrase: &dyn PassphraseProvider,
) -> Result<Vec<Identity>> {
    let invalid = |reason: &str| Error::InvalidIdentity {
        origin: origin.clone(),
        reason: reason.to_string(),
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
        || trimmed.starts_with("-----BEGIN RSA PRIVATE KEY-----")
    {
        let filename = origin.path().map(|p| p.display().to_string());
        let parsed = age::ssh::Identity::from_buffer(BufReader::new(trimmed.as_bytes()), filename)
            .map_err(|_| invalid("not a valid OpenSSH private key"))?;
        let (ssh, converted) = match parsed {
            age::ssh::Identity::Unencrypted(_) => (parsed, ssh_ed25519_to_x25519(trimmed, None)),
            age::ssh::Identity::Encrypted(enc) => {
                let description = format!("passphrase for {origin}");
                let Some(pass) = passphrase.passphrase(&description) else {
                    return Err(Error::PassphraseRequired { origin });
                };
                let converted = ssh_ed25519_to_x25519(trimmed, Some(&pass));
                let key = enc.decrypt(pass).map_err(|_| Error::WrongPassphrase {
                    origin: origin.clone(),
                })?;
                (age::ssh::Identity::Unencrypted(key), converted)
            }
            age::ssh::Identity::Unsupported(u) => {
                let reason = match u {
                    age::ssh::UnsupportedKey::EncryptedPem => {
                        "encrypted PEM keys are not supported (convert with `ssh-keygen -o -p`)"
                            .to_string()
                    }
                    age::ssh::UnsupportedKey::EncryptedSsh(c) => {
                        format!("unsupported SSH key encryption cipher {c}")
                    }
                    age::ssh::UnsupportedKey::Hardware(_) => SECURITY_KEY_SSH.to_string(),
                    age::ssh::UnsupportedKey::Type(t) => format!("unsupported SSH key type {t}"),
                };
                return Err(invalid(&reason));
            }
        };
        return Ok(vec![Identity {
            origin,
            kind: IdentityKind::Ssh(ssh, converted),
        }]);
    }
    if trimmed.starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
        || trimmed.starts_with("age-encryption.org/")
    {
        let plain = decrypt_identity_file(text.as_bytes(), &origin, passphrase)?;
        return parse_plain_identities(&plain, &origin);
    }
    if trimmed.starts_with("-----BEGIN") {
        return Err(invalid("unsupported private key format"));
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.to_ascii_uppercase().starts_with("AGE-PLUGIN-") {
            // Never echoed: for many plugins the identity is the secret key.
            let id = age::plugin::Identity::from_str(line).map_err(|_| {
                invalid(&format!(
                    "line {}: not a valid age plugin identity (AGE-PLUGIN-<NAME>-1…)",
                    n + 1
                ))
            })?;
            out.push(Identity {
                origin: origin.clone(),
                kind: IdentityKind::Plugin(id, n + 1),
            });
            continue;
        }
        let id = age::x25519::Identity::from_str(line).map_err(|_| {
            invalid(&format!(
                "line {}: expected an AGE-SECRET-KEY-1… line or a comment",
                n + 1
            ))
        })?;
        out.push(Identity {
            origin: origin.clone(),
            kind: IdentityKind::X25519(id),
        });
    }
    if out.is_empty() {
        return Err(invalid("no identity found"));
    }
    Ok(out)
}

/// Whether bytes are an age file, binary or armored (an `age -p` identity file).
fn is_age_file(bytes: &[u8]) -> bool {
    bytes.starts_with(b"age-encryption.org/") || is_armored(bytes)
}

/// Decrypts an identity file that `age -p` encrypted with a passphrase, as the
/// `age` CLI does: one passphrase prompt, naming the file. Only the native
/// X25519 identities may be inside (as with `age`), never another encrypted file.
fn decrypt_identity_file(
    bytes: &[u8],
    origin: &Origin,
    passphrase: &dyn PassphraseProvider,
) -> Result<Zeroizing<String>> {
    let invalid = |reason: &str| Error::InvalidIdentity {
        origin: origin.clone(),
        reason: reason.to_string(),
    };
    // Measured like every age file we read: a hostile header cannot make
    // `age` parse for minutes.
    let (binary, header_end) = dearmor_and_measure(bytes).map_err(|reason| invalid(&reason))?;
    let input = HeaderAtOnce {
        data: &binary,
        pos: 0,
        header_end,
    };
    let decryptor = age::Decryptor::new_buffered(input)
        .map_err(|_| invalid("not a valid age-encrypted identity file"))?;
    if !decryptor.is_scrypt() {
        return Err(invalid(
            "an age file encrypted to recipients, not with a passphrase (`age -p`), cannot be an identity file",
        ));
    }
    let Some(pass) = passphrase.passphrase(&format!("passphrase for identity file {origin}"))
    else {
        return Err(Error::PassphraseRequired {
            origin: origin.clone(),
        });
    };
    let mut identity = age::scrypt::Identity::new(pass);
    // The limit of the `age` CLI (its files use 18), instead of a guess from
    // this machine's speed that refuses what `age` decrypts.
    identity.set_max_work_factor(22);
    let mut reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::DecryptionFailed
            | age::DecryptError::KeyDecryptionFailed
            | age::DecryptError::NoMatchingKeys => Error::WrongPassphrase {
                origin: origin.clone(),
            },
            other => invalid(&map_decrypt_error(&other)),
        })?;
    let mut plain = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut plain)
        .map_err(|_| invalid("the file is truncated or was modified"))?;
    let text =
        std::str::from_utf8(&plain).map_err(|_| invalid("its contents are not UTF-8 text"))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// Parses the decrypted contents of an encrypted identity file: no second
/// passphrase, no nesting.
fn parse_plain_identities(text: &str, origin: &Origin) -> Result<Vec<Identity>> {
    if is_age_file(text.trim_start().as_bytes()) {
        return Err(Error::InvalidIdentity {
            origin: origin.clone(),
            reason: "an encrypted identity file inside an encrypted identity file".into(),
        });
    }
    parse_identities(text, origin.clone(), &NoPassphrase)
}

/// An identity file's contents once its passphrase is applied, for programs
/// that cannot ask (backend scripts without a terminal): `None` when the file
/// is not passphrase-protected (use it as it is), else the equivalent
/// unprotected file, an age key file or an OpenSSH key. Asks `passphrase` at
/// most once. The result is secret: keep it in `0600` files only.
pub fn unlock_identity_file(
    path: &Path,
    passphrase: &dyn PassphraseProvider,
) -> Result<Option<Zeroizing<String>>> {
    let origin = Origin::file(path);
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| Error::io("read", path, e))?);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    if is_age_file(&bytes[start..]) {
        let plain = decrypt_identity_file(&bytes, &origin, passphrase)?;
        parse_plain_identities(&plain, &origin)?;
        return Ok(Some(plain));
    }
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Ok(None);
    };
    let trimmed = text.trim_start();
    if !trimmed.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
        return Ok(None);
    }
    let filename = Some(path.display().to_string());
    let Ok(age::ssh::Identity::Encrypted(_)) =
        age::ssh::Identity::from_buffer(BufReader::new(trimmed.as_bytes()), filename)
    else {
        return Ok(None);
    };
    let Some(pass) = passphrase.passphrase(&format!("passphrase for {origin}")) else {
        return Err(Error::PassphraseRequired { origin });
    };
    let invalid = |reason: String| Error::InvalidIdentity {
        origin: origin.clone(),
        reason,
    };
    match crate::openssh::unlock(trimmed, pass.expose_secret().as_bytes()) {
        crate::openssh::Unlocked::Key(text) => {
            // What we hand over must be what the key was.
            parse_identities(&text, origin.clone(), &NoPassphrase)?;
            Ok(Some(text))
        }
        crate::openssh::Unlocked::WrongPassphrase => Err(Error::WrongPassphrase { origin }),
        crate::openssh::Unlocked::NotEncrypted => Ok(None),
        crate::openssh::Unlocked::Unsupported(what) => Err(invalid(format!(
            "cannot unlock an OpenSSH key protected with {what} (re-protect it with `ssh-keygen -p`)"
        ))),
        crate::openssh::Unlocked::Invalid => {
            Err(invalid("not a valid OpenSSH private key".to_owned()))
        }
    }
}

/// Reads an identity file (age key file, OpenSSH private key, or either
/// encrypted with a passphrase).
pub fn read_identity_file(
    path: &Path,
    passphrase: &dyn PassphraseProvider,
) -> Result<Vec<Identity>> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| Error::io("read", path, e))?);
    if bytes.starts_with(b"age-encryption.org/") {
        // Binary `age -p` output is not UTF-8.
        let origin = Origin::file(path);
        let plain = decrypt_identity_file(&bytes, &origin, passphrase)?;
        return parse_plain_identities(&plain, &origin);
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::InvalidIdentity {
        origin: Origin::file(path),
        reason: "the file is not UTF-8 text".into(),
    })?;
    parse_identities(text, Origin::file(path), passphrase)
}

/// Encrypts `plaintext` to `recipients`, binary or ASCII-armored.
pub fn encrypt(recipients: &[Recipient], plaintext: &[u8], armor: bool) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(plaintext.len() + 256);
    encrypt_stream(
        recipients,
        plaintext,
        &mut out,
        armor,
        &Origin::Described("the input".into()),
    )?;
    Ok(out)
}

/// Encrypts a stream to `recipients`. `origin` names the input for errors.
pub fn encrypt_stream(
    recipients: &[Recipient],
    mut input: impl Read,
    output: impl Write,
    armor: bool,
    origin: &Origin,
) -> Result<()> {
    if recipients.is_empty() {
        return Err(Error::NoRecipients {
            origin: origin.clone(),
        });
    }
    let enc_err = |reason: String| Error::AgeEncrypt {
        origin: origin.clone(),
        reason,
    };
    let plugins =
        crate::plugin::RecipientGroup::group(recipients.iter().filter_map(|r| match &r.kind {
            RecipientKind::Plugin(p) => Some(p),
            _ => None,
        }))?;
    let natives = recipients.iter().filter_map(|r| r.as_age());
    let all = natives.chain(plugins.iter().map(|p| p as &dyn age::Recipient));
    let encryptor = age::Encryptor::with_recipients(all).map_err(|e| {
        plugins
            .iter()
            .find_map(|p| p.take_failure())
            .unwrap_or_else(|| enc_err(e.to_string().to_lowercase()))
    })?;
    let format = if armor {
        age::armor::Format::AsciiArmor
    } else {
        age::armor::Format::Binary
    };
    let io_err = |e: std::io::Error| enc_err(format!("write failed: {e}"));
    let armored = age::armor::ArmoredWriter::wrap_output(output, format).map_err(io_err)?;
    let mut writer = encryptor.wrap_output(armored).map_err(io_err)?;
    let mut buf = Zeroizing::new(vec![0u8; 64 * 1024]);
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(enc_err(format!("read failed: {e}"))),
        };
        writer.write_all(&buf[..n]).map_err(io_err)?;
    }
    writer.finish().and_then(|a| a.finish()).map_err(io_err)?;
    Ok(())
}

/// Decrypts an age file (binary or armored) with the first identity that
/// matches. The whole plaintext is returned only when it authenticated.
pub fn decrypt(
    identities: &[Identity],
    ciphertext: &[u8],
    origin: &Origin,
) -> Result<Zeroizing<Vec<u8>>> {
    if identities.is_empty() {
        return Err(Error::NoIdentities {
            origin: origin.clone(),
        });
    }
    let fail = |reason: &str| Error::AgeDecrypt {
        origin: origin.clone(),
        reason: reason.to_string(),
    };
    let (binary, header_end) = dearmor_and_measure(ciphertext).map_err(|reason| fail(&reason))?;
    let input = HeaderAtOnce {
        data: &binary,
        pos: 0,
        header_end,
    };
    let decryptor = age::Decryptor::new_buffered(input).map_err(|e| match e {
        age::DecryptError::UnknownFormat => fail("not an age file (or a newer age format)"),
        age::DecryptError::Io(_) | age::DecryptError::InvalidHeader => {
            fail("not an age file, or its header is truncated or corrupted")
        }
        _ => fail(&map_decrypt_error(&e)),
    })?;
    if decryptor.is_scrypt() {
        return Err(fail("passphrase-encrypted age files are not supported"));
    }
    let plugins = plugin_attempts(identities);
    let natives = identities.iter().flat_map(|i| i.age_identities());
    let all = natives.chain(plugins.iter().map(|p| p as &dyn age::Identity));
    let mut reader = decryptor.decrypt(all).map_err(|e| match e {
        // A plugin that could not run or refused may have held the key.
        age::DecryptError::NoMatchingKeys => plugins
            .iter()
            .find_map(|p| p.take_failure())
            .unwrap_or_else(|| Error::NoMatchingIdentity {
                origin: origin.clone(),
                recipients: Vec::new(),
            }),
        other => fail(&map_decrypt_error(&other)),
    })?;
    let mut out = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    reader
        .read_to_end(&mut out)
        .map_err(|_| fail("the payload is truncated or was modified"))?;
    Ok(out)
}

/// An age file without its ASCII armor, and where its header ends (see
/// [`header_end`]): armor is removed first, so the header is measured before
/// `age` parses it.
fn dearmor_and_measure(
    ciphertext: &[u8],
) -> std::result::Result<(std::borrow::Cow<'_, [u8]>, usize), String> {
    let binary = if is_armored(ciphertext) {
        let mut reader = age::armor::ArmoredReader::new(ciphertext);
        let mut out = Vec::with_capacity(ciphertext.len());
        reader
            .read_to_end(&mut out)
            .map_err(|_| "the ASCII armor is malformed or truncated".to_owned())?;
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(ciphertext)
    };
    let end = header_end(&binary)?;
    Ok((binary, end))
}

/// The largest age header [`decrypt`] reads: far above what a file
/// encrypted to hundreds of recipients carries (an X25519 stanza takes about
/// 110 bytes, an ssh-rsa one about 750).
pub const MAX_HEADER_BYTES: usize = 1 << 20;

/// The most recipient stanzas [`decrypt`] accepts in a header; each is tried
/// against each identity.
pub const MAX_STANZAS: usize = 4096;

/// Where the header of an age v1 file ends (after its `---` MAC line), or
/// the end of the input when it has none; refuses a header beyond
/// [`MAX_HEADER_BYTES`] or [`MAX_STANZAS`]. One pass over the header.
fn header_end(data: &[u8]) -> std::result::Result<usize, String> {
    const MAGIC: &[u8] = b"age-encryption.org/";
    if !data.starts_with(MAGIC) {
        // Not ours to measure: `age` refuses it after the first line.
        return Ok(data.len().min(MAGIC.len()));
    }
    let too_large = || format!("the age header is larger than {MAX_HEADER_BYTES} bytes");
    let mut stanzas = 0usize;
    let mut line_start = 0usize;
    while line_start < data.len() {
        if line_start > MAX_HEADER_BYTES {
            return Err(too_large());
        }
        let line_end = data[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |p| line_start + p + 1);
        let line = &data[line_start..line_end];
        if line.starts_with(b"-> ") {
            stanzas += 1;
            if stanzas > MAX_STANZAS {
                return Err(format!(
                    "the age header has more than {MAX_STANZAS} recipient stanzas"
                ));
            }
        } else if line.starts_with(b"---") {
            return if line_end > MAX_HEADER_BYTES {
                Err(too_large())
            } else {
                Ok(line_end)
            };
        }
        line_start = line_end;
    }
    if data.len() > MAX_HEADER_BYTES {
        return Err(too_large());
    }
    Ok(data.len())
}

/// The input of [`decrypt`], read by `age` as a [`std::io::BufRead`].
///
/// `age` reads a header line by line and parses the whole header again after
/// each line, which takes time quadratic in the header's size (a 1.3 MB
/// stanza took 40 s). This reader hands over the whole header, measured by
/// [`header_end`], at the first `read_until`, so `age` parses it once.
struct HeaderAtOnce<'a> {
    data: &'a [u8],
    pos: usize,
    header_end: usize,
}

#[cfg(test)]
thread_local! {
    /// How often `age` asked [`HeaderAtOnce`] for header lines.
    static HEADER_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Read for HeaderAtOnce<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (&self.data[self.pos..]).read(buf)?;
        self.pos += n;
        Ok(n)
    }
}

impl std::io::BufRead for HeaderAtOnce<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        Ok(&self.data[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.data.len());
    }

    fn read_until(&mut self, _byte: u8, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        #[cfg(test)]
        HEADER_READS.with(|n| n.set(n.get() + 1));
        // The whole header at once; past it (a header `age` still finds
        // incomplete), everything that is left, so `age` never asks again.
        let end = if self.pos < self.header_end {
            self.header_end
        } else {
            self.data.len()
        };
        buf.extend_from_slice(&self.data[self.pos..end]);
        let n = end - self.pos;
        self.pos = end;
        Ok(n)
    }
}

fn map_decrypt_error(e: &age::DecryptError) -> String {
    match e {
        age::DecryptError::DecryptionFailed => "the payload is truncated or was modified".into(),
        age::DecryptError::InvalidMac => "the header MAC is invalid (the file was modified)".into(),
        age::DecryptError::InvalidHeader => "the header is invalid".into(),
        age::DecryptError::KeyDecryptionFailed => "failed to decrypt an encrypted key".into(),
        age::DecryptError::NoMatchingKeys => "no identity matches".into(),
        age::DecryptError::UnknownFormat => "unknown age format".into(),
        age::DecryptError::Io(e) => format!("read failed: {e}"),
        other => other.to_string().to_lowercase(),
    }
}

/// Decrypts `ciphertext` and encrypts the plaintext again to `recipients`
/// (what `agenix -r` does), without the plaintext leaving memory.
pub fn reencrypt(
    identities: &[Identity],
    recipients: &[Recipient],
    ciphertext: &[u8],
    armor: bool,
    origin: &Origin,
) -> Result<Vec<u8>> {
    let plain = decrypt(identities, ciphertext, origin)?;
    let mut out = Vec::with_capacity(ciphertext.len() + 256);
    encrypt_stream(recipients, &plain[..], &mut out, armor, origin)?;
    Ok(out)
}

/// Checks, without any key, that `data` is a whole age file: for an armored
/// file the armor from its first to its last line (so an empty file or one
/// with merge-conflict markers is refused), then the age header.
pub fn check_structure(data: &[u8], origin: &Origin) -> Result<()> {
    let fail = |reason: &str| Error::AgeStructure {
        origin: origin.clone(),
        reason: reason.to_string(),
    };
    if data.is_empty() {
        return Err(fail("the file is empty"));
    }
    let mut decoded = Vec::new();
    let bytes: &[u8] = if is_armored(data) {
        age::armor::ArmoredReader::new(data)
            .read_to_end(&mut decoded)
            .map_err(|_| {
                fail("its ASCII armor is damaged (merge-conflict markers, truncation or edits)")
            })?;
        &decoded
    } else {
        data
    };
    age::Decryptor::new_buffered(bytes).map_err(|e| match e {
        age::DecryptError::UnknownFormat => fail("not an age file (or a newer age format)"),
        _ => fail("not an age file, or its header is truncated or corrupted"),
    })?;
    Ok(())
}

/// Whether bytes look like an ASCII-armored age file.
pub fn is_armored(data: &[u8]) -> bool {
    let start = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(data.len());
    data[start..].starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
}

/// A freshly generated X25519 key pair.
pub struct GeneratedKey {
    identity: age::x25519::Identity,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GeneratedKey({})", self.recipient())
    }
}

impl GeneratedKey {
    /// The public key (`age1…`).
    pub fn recipient(&self) -> String {
        self.identity.to_public().to_string()
    }

    /// The identity file contents in `age-keygen`'s format, with `# created:`
    /// and `# public key:` comment lines.
    pub fn identity_file(&self) -> Zeroizing<String> {
        let secret = self.identity.to_string();
        Zeroizing::new(format!(
            "# created: {}\n# public key: {}\n{}\n",
            crate::time::now_rfc3339(),
            self.recipient(),
            secret.expose_secret()
        ))
    }

    /// The key as an [`Identity`].
    pub fn to_identity(&self) -> Identity {
        Identity {
            origin: Origin::Described("a generated key".into()),
            kind: IdentityKind::X25519(self.identity.clone()),
        }
    }
}

/// Generates a new X25519 key pair.
pub fn keygen() -> GeneratedKey {
    GeneratedKey {
        identity: age::x25519::Identity::generate(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The all-zero X25519 point, from the review that found the panic.
    const ZERO_POINT: &str = "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq5cu47z";

    fn ssh_ed25519(point: [u8; 32]) -> String {
        use base64::Engine;
        let mut blob = Vec::new();
        for part in [&b"ssh-ed25519"[..], &point[..]] {
            blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
            blob.extend_from_slice(part);
        }
        format!(
            "ssh-ed25519 {}",
            base64::engine::general_purpose::STANDARD.encode(blob)
        )
    }

    /// The table of small-order points is exactly what the scalar
    /// multiplication that defines them says: every entry (with the top bit
    /// set or not) multiplies to zero, every point of Ed25519's 8-torsion is
    /// in it, and its neighbours and random points are neither.
    #[test]
    fn small_order_table_matches_the_scalar_multiplication() {
        use rand::RngCore;
        for entry in SMALL_ORDER {
            for top in [0u8, 0x80] {
                let mut point = entry;
                point[31] |= top;
                assert!(is_small_order(point), "{}", hex::encode(point));
                assert!(
                    is_small_order_by_multiplication(point),
                    "{}",
                    hex::encode(point)
                );
            }
        }
        for torsion in curve25519_dalek::constants::EIGHT_TORSION {
            let point = torsion.to_montgomery().to_bytes();
            assert!(SMALL_ORDER.contains(&point), "{}", hex::encode(point));
        }
        let mut candidates: Vec<[u8; 32]> = Vec::new();
        for entry in SMALL_ORDER {
            for delta in [1u8, 2, 3] {
                let mut up = entry;
                up[0] = up[0].wrapping_add(delta);
                let mut down = entry;
                down[0] = down[0].wrapping_sub(delta);
                candidates.extend([up, down]);
            }
        }
        let mut rng = rand::thread_rng();
        for _ in 0..200 {
            let mut point = [0u8; 32];
            rng.fill_bytes(&mut point);
            candidates.push(point);
        }
        for point in candidates {
            assert_eq!(
                is_small_order(point),
                is_small_order_by_multiplication(point),
                "{}",
                hex::encode(point)
            );
        }
    }

    #[test]
    fn low_order_recipients_are_refused_like_age_does() {
        let hrp = bech32::Hrp::parse("age").unwrap();
        // 0, 1, and a point of order 8 (from the list of X25519's small-order points).
        let order8 = "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800";
        let mut points = vec![[0u8; 32], {
            let mut p = [0u8; 32];
            p[0] = 1;
            p
        }];
        points.push(hex::decode(order8).unwrap().try_into().unwrap());
        let mut texts: Vec<String> = points
            .iter()
            .map(|p| bech32::encode::<bech32::Bech32>(hrp, p).unwrap())
            .collect();
        assert_eq!(texts[0], ZERO_POINT);
        // The Ed25519 identity point (y = 1), as an SSH key.
        let mut one = [0u8; 32];
        one[0] = 1;
        texts.push(ssh_ed25519(one));
        for text in &texts {
            let e = Recipient::parse(text)
                .err()
                .unwrap_or_else(|| panic!("{text} accepted"));
            assert!(e.to_string().contains("bad input point"), "{e}");
        }
        // Ordinary keys still parse and encrypt.
        let key = keygen();
        let r = Recipient::parse(&key.recipient()).unwrap();
        let ct = encrypt(&[r], b"x", false).unwrap();
        assert_eq!(
            &decrypt(&[key.to_identity()], &ct, &Origin::Stdin).unwrap()[..],
            b"x"
        );
        // An RSA key is no curve point at all.
        let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC1Cqw6C64+OP6Ah4Gb05SckGVOs/AkFAZFERWe+KovDggF3bt9dXffwKVuASxOZuIE9cDLnsz0x/dqSCGINJYrdtuDswVX+FQCDDHIMUXQqIbTp0edPTDtwyUWYaqr6jF5dDU/WN4rVSE/JD/hjwVJjdkpOlABOWmJsoxY0tM1RUF5hrVl36KzNqEXovGeALENBpkSXv8X6EYos6ohk3PHXbyODSa+8r47hJ1P2oXx9XtV0CM0y2g8kkl7IlFoKscymZLitzBUvmyDl8vDJFE543lBaePM+VCLmfFeEY8Ejs3T81P/03xrOcc0Ij+xxoV4BvgtV0rPl4YisIzhNq7P";
        assert!(Recipient::parse(rsa).is_ok());
        // The Ed25519 base point is a fine key.
        let base = hex::decode("5866666666666666666666666666666666666666666666666666666666666666");
        assert!(Recipient::parse(&ssh_ed25519(base.unwrap().try_into().unwrap())).is_ok());
    }

    fn header(stanzas: &[String]) -> Vec<u8> {
        let mut h = b"age-encryption.org/v1\n".to_vec();
        for s in stanzas {
            h.extend_from_slice(s.as_bytes());
        }
        h.extend_from_slice(b"--- AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
        h.extend_from_slice(&[0u8; 32]);
        h
    }

    fn grease(body_bytes: usize) -> String {
        // Body lines hold 48 bytes (64 base64 characters); the last is shorter.
        let mut s = String::from("-> grease\n");
        let full = body_bytes / 48;
        for _ in 0..full {
            s.push_str(&"A".repeat(64));
            s.push('\n');
        }
        s.push_str("AAAA\n");
        s
    }

    #[test]
    fn oversized_headers_and_too_many_stanzas_are_refused_before_age_parses_them() {
        let ids = [keygen().to_identity()];
        let origin = Origin::Described("test".into());
        let big = header(&[grease(1_300_000)]);
        HEADER_READS.with(|n| n.set(0));
        let e = decrypt(&ids, &big, &origin).unwrap_err().to_string();
        assert!(e.contains("larger than 1048576 bytes"), "{e}");
        let many = header(&vec![grease(0); MAX_STANZAS + 1]);
        let e = decrypt(&ids, &many, &origin).unwrap_err().to_string();
        assert!(e.contains("more than 4096 recipient stanzas"), "{e}");
        // Refused before `age` read a single line.
        assert_eq!(HEADER_READS.with(|n| n.get()), 0);
    }

    #[test]
    fn identity_files_are_measured_like_every_age_file() {
        // An `age -p` identity file is an age file too: the same limits hold
        // before `age` parses its header (found by the fuzz check hanging).
        let origin = Origin::Described("test".into());
        let many = header(&vec![grease(0); MAX_STANZAS + 1]);
        HEADER_READS.with(|n| n.set(0));
        let e = parse_identities(&String::from_utf8_lossy(&many), origin, &NoPassphrase)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 4096 recipient stanzas"), "{e}");
        assert_eq!(HEADER_READS.with(|n| n.get()), 0);
    }

    #[test]
    fn age_parses_a_large_header_once() {
        // 2,000 lines of header: `age` alone would parse the header 2,000
        // times; through `HeaderAtOnce` it gets it in one piece.
        let ids = [keygen().to_identity()];
        let origin = Origin::Described("test".into());
        let file = header(&vec![grease(48 * 19); 100]);
        HEADER_READS.with(|n| n.set(0));
        let e = decrypt(&ids, &file, &origin).unwrap_err();
        // The header parsed (the MAC is only checked after a stanza matched).
        assert!(matches!(e, Error::NoMatchingIdentity { .. }), "{e}");
        assert_eq!(HEADER_READS.with(|n| n.get()), 1);
        // The same for a real file with many recipients, armored.
        let recipients: Vec<Recipient> = (0..300)
            .map(|_| Recipient::parse(&keygen().recipient()).unwrap())
            .collect();
        let key = keygen();
        let mut all = recipients.clone();
        all.push(Recipient::parse(&key.recipient()).unwrap());
        let ct = encrypt(&all, b"payload", true).unwrap();
        HEADER_READS.with(|n| n.set(0));
        let plain = decrypt(&[key.to_identity()], &ct, &origin).unwrap();
        assert_eq!(&plain[..], b"payload");
        assert_eq!(HEADER_READS.with(|n| n.get()), 1);
    }
}
