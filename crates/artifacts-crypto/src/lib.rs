//! age and the SOPS file format, in-process and byte-compatible with the
//! real `age` (1.x) and `sops` (3.11) tools.
//!
//! # Which part do I need?
//!
//! - **Encrypt or decrypt a whole file for one or more people/machines**
//!   (agenix-style `.age` files): [`age`].
//!   - Parse who to encrypt to: [`age::Recipient::parse`],
//!     [`age::read_recipients_file`] (also `.pub` files).
//!   - Load private keys: [`age::read_identity_file`] (age key files and
//!     OpenSSH keys, either one passphrase-protected; a
//!     [`age::PassphraseProvider`] answers passphrase prompts), or let [`keys::discover_identities`] collect them from
//!     explicit files and the environment you pass in as a [`keys::KeyEnv`].
//!   - For readers that only know X25519 (sops-nix with a host's ssh key):
//!     [`age::Recipient::to_x25519`], [`age::Identity::to_x25519`] (as
//!     `ssh-to-age` converts ssh-ed25519 keys); an ssh-ed25519 identity
//!     decrypts both its ssh stanzas and its X25519 form's.
//!   - Then [`age::encrypt`] / [`age::decrypt`] (binary or armored),
//!     [`age::reencrypt`] to change recipients, [`age::keygen`] for new keys.
//!   - Age plugins (`age1yubikey1…`, `AGE-PLUGIN-…` lines) need nothing
//!     extra but their program on `PATH`; a binary lets them ask the person
//!     (PIN, touch) by installing a [`plugin::PluginUi`] with [`plugin::set_ui`].
//! - **Keep a structured secrets file with readable keys and encrypted
//!   values** (sops-nix, tanka `secrets.sops.yaml`): [`sops`].
//!   - New file: [`sops::parse_plain`] then [`sops::encrypt`] with
//!     [`sops::EncryptOptions`] (recipients from `--age` or a `.sops.yaml`
//!     rule via [`sops::config::SopsConfig`]).
//!   - Existing file: [`sops::EncryptedFile::read`], then
//!     [`sops::EncryptedFile::decrypt`] (the MAC is always verified) to get a
//!     [`sops::Decrypted`] you can `extract`, `set`, `unset`, and encrypt
//!     again ([`sops::Decrypted::encrypt`]) or [`sops::Decrypted::rotate`];
//!     [`sops::EncryptedFile::update_keys`] changes recipients only.
//!   - Data keys also wrapped by Vault/OpenBao transit: the `_with` forms
//!     ([`sops::encrypt_with`], [`sops::EncryptedFile::decrypt_with`] with a
//!     [`sops::Keys`], [`sops::Decrypted::rotate_with`],
//!     [`sops::EncryptedFile::update_keys_with`]) and a
//!     [`sops::DataKeyWrapper`] that talks to the server.
//! - **Write the result back safely**: `artifacts_os::fs::write_atomic`;
//!   inside a project's stores, where no symbolic link may be followed,
//!   `artifacts_os::fs::Dir` (also swaps whole directories atomically).
//! - **Offer `artifacts age …` / `artifacts sops …` in a binary**: the
//!   functions above; the command line itself (flags, exit codes, the
//!   passphrase prompt) lives in the `artifacts` binary.
//!
//! ```
//! use artifacts_crypto::sops::{self, EncryptOptions, EncryptedFile, Format, TreePath};
//! use artifacts_crypto::{Origin, age};
//!
//! let key = age::keygen();
//! let recipients = vec![age::Recipient::parse(&key.recipient())?];
//! let origin = Origin::file("secrets.yaml");
//!
//! // A whole file, as agenix stores it.
//! let file = age::encrypt(&recipients, b"hunter2", true)?;
//! assert_eq!(&age::decrypt(&[key.to_identity()], &file, &origin)?[..], b"hunter2");
//!
//! // A sops file: readable keys, encrypted values.
//! let plain = sops::parse_plain(b"db:\n    password: hunter2\n", Format::Yaml, &origin)?;
//! let options = EncryptOptions { recipients, ..EncryptOptions::default() };
//! let bytes = sops::encrypt(plain, Format::Yaml, &options, &origin)?.to_bytes();
//! assert!(!String::from_utf8_lossy(&bytes).contains("hunter2"));
//! let decrypted = EncryptedFile::parse(&bytes, Format::Yaml, &origin)?.decrypt(&[key.to_identity()])?;
//! let password = decrypted.extract(&TreePath::parse(r#"["db"]["password"]"#)?, None)?;
//! assert_eq!(&password[..], b"hunter2");
//! # Ok::<(), artifacts_crypto::Error>(())
//! ```
//!
//! # Supported and refused
//!
//! Supported: age X25519, `ssh-ed25519` and `ssh-rsa` recipients and
//! identities (passphrase-protected OpenSSH keys and `age -p` identity files
//! through a callback; [`age::unlock_identity_file`] hands either over,
//! unlocked, to a program that cannot ask); age plugin recipients
//! (`age1yubikey1…`, `age1fido2-hmac1…`, `age1tpm1…`, …) and identities
//! (`AGE-PLUGIN-…` lines in identity files), run as `age-plugin-<name>` from
//! `PATH`, talking to the person through a [`plugin::PluginUi`] the binary
//! installs (see [`plugin`]); SOPS
//! YAML (several documents, comments, dates), JSON, dotenv and binary files;
//! every type sops writes (`str`, `int`, `float`, `bool`, `time`, `comment`);
//! `unencrypted_suffix`, `encrypted_suffix`, `unencrypted_regex`,
//! `encrypted_regex`, `unencrypted_comment_regex`, `encrypted_comment_regex`,
//! `mac_only_encrypted`; `.sops.yaml` creation rules with `path_regex`,
//! `age` and `hc_vault_transit_uri` (or one key group); Vault/OpenBao
//! transit keys (`hc_vault`) through a caller's
//! [`sops::master::DataKeyWrapper`] (this crate speaks no HTTP).
//!
//! Refused with an error, never mis-decrypted: key groups with a shamir
//! threshold (more than one key group), pgp/kms master keys when the
//! data key would have to be re-wrapped (files that also carry age keys still
//! decrypt), FIDO security-key SSH keys (`sk-ssh-ed25519@openssh.com`,
//! which age does not support either), passphrase-encrypted age files
//! (other than identity files), INI documents.
//!
//! # Secrets
//!
//! Data keys and plaintext buffers are zeroized on drop ([`zeroize`]); no
//! `Debug` or `Display` implementation and no error message contains a
//! secret value, identity or passphrase.

#![deny(missing_docs)]

pub mod age;
pub mod error;
pub mod keys;
mod openssh;
pub mod plugin;
pub mod sops;
pub mod time;

pub use error::{Error, Origin, Result};
