//! Decrypting an environment's `secrets.sops.yaml` into the `secrets_yaml`
//! text jsonnet receives, with the MAC verified (through `artifacts-crypto`).
//!
//! The plaintext lives in a zeroized buffer; the [`Secrets`] value also
//! carries the [`Redactor`] built from it, so every later error can be
//! scrubbed of its values.

use std::path::Path;

use artifacts_crypto::age::Identity;
use artifacts_crypto::sops::{DataKeyWrapper, EncryptedFile, Format, Keys};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::project::{Environment, declares_secrets};
use crate::redact::Redactor;

/// The decrypted secrets of one environment.
pub struct Secrets {
    plain: Zeroizing<String>,
    redactor: Redactor,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}

impl Secrets {
    /// Wraps already decrypted YAML (for callers that decrypt elsewhere, and tests).
    pub fn from_plain(plain: Zeroizing<String>) -> Self {
        let redactor = crate::redact::from_yaml(&plain);
        Secrets { plain, redactor }
    }

    /// The YAML text, as `sops -d` prints it: what `secrets_yaml` is bound to.
    pub fn yaml(&self) -> &str {
        &self.plain
    }

    /// Knows the values, to scrub them from messages.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }
}

/// Decrypts `environments/<env>/secrets.sops.yaml` (MAC verified) with age
/// identities or, for `hc_vault` keys, the transit wrapper in `keys`. A
/// missing file is [`Error::SecretsMissing`].
pub fn decrypt(env: &Environment, keys: &Keys<'_>) -> Result<Secrets> {
    let path = env.secrets_file();
    if !path.exists() {
        return Err(Error::SecretsMissing {
            env: env.name().to_string(),
            path,
        });
    }
    decrypt_file(env.name(), &path, keys)
}

/// Decrypts one SOPS YAML file for environment `env_name` (named in errors).
pub fn decrypt_file(env_name: &str, path: &Path, keys: &Keys<'_>) -> Result<Secrets> {
    let wrap = |source| Error::Decrypt {
        env: env_name.to_string(),
        source,
    };
    let file = EncryptedFile::read(path, Some(Format::Yaml)).map_err(wrap)?;
    let decrypted = file.decrypt_with(keys).map_err(wrap)?;
    let bytes = decrypted.to_plain_bytes(None).map_err(wrap)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::SecretsYaml {
        env: env_name.to_string(),
        message: "not UTF-8".into(),
    })?;
    Ok(Secrets::from_plain(Zeroizing::new(text.to_string())))
}

/// The secrets to render environment `env` with.
///
/// The file exists: decrypted with the identities `identities` returns (only
/// called then; any failure is an error, never "no secrets") or through
/// `transit`.
/// The file is missing: an error when the declarations (`manifest`) give the
/// environment secret files, else `None`, and `secrets_yaml` is not passed at
/// all, so an entry point that requires it fails instead of rendering
/// without secrets.
pub fn for_render(
    env: &Environment,
    manifest: Option<&Path>,
    identities: &dyn Fn() -> Result<Vec<Identity>>,
    transit: Option<&dyn DataKeyWrapper>,
) -> Result<Option<Secrets>> {
    let path = env.secrets_file();
    if path.exists() {
        let identities = identities()?;
        let keys = Keys {
            identities: &identities,
            wrapper: transit,
        };
        return decrypt(env, &keys).map(Some);
    }
    if declares_secrets(manifest, env.name())? {
        return Err(Error::SecretsMissing {
            env: env.name().to_string(),
            path,
        });
    }
    Ok(None)
}
