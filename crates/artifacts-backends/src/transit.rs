//! Vault/OpenBao transit as SOPS' data-key wrapper: the
//! [`DataKeyWrapper`] of `artifacts-crypto`, over the `artifacts-openbao`
//! client.
//!
//! The server is the one named by each key (its `vault_address`, as sops
//! does), not `BAO_ADDR`/`VAULT_ADDR`; the token comes from `BAO_TOKEN`,
//! `VAULT_TOKEN` or `~/.vault-token`, a private CA from
//! `BAO_CACERT`/`VAULT_CACERT`, a namespace from
//! `BAO_NAMESPACE`/`VAULT_NAMESPACE`. Nothing is contacted until a key is
//! used, so files an age identity opens never need a token. Errors name
//! the key path and the server, never the token.

use std::path::{Path, PathBuf};

use artifacts_crypto::sops::master::{DataKeyWrapper, TransitKey, WrapError};
use artifacts_openbao::{Client, Settings};
use zeroize::Zeroizing;

/// Transit access with one operator's (or sidecar's) credentials.
#[derive(Debug, Clone)]
pub struct Transit {
    settings: Settings,
}

impl Transit {
    /// Reads the token and TLS settings from `env` (variable lookup) and
    /// `home` (for `~/.vault-token`).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>, home: Option<&Path>) -> Transit {
        Transit {
            settings: Settings::from_env(env, home),
        }
    }

    /// [`Transit::from_env`] over a map of variables (the binary's `Io`
    /// environment); `HOME` is taken from the same map.
    pub fn from_vars(vars: &std::collections::BTreeMap<String, std::ffi::OsString>) -> Transit {
        let get = |name: &str| vars.get(name).and_then(|v| v.to_str()).map(str::to_owned);
        let home = get("HOME").map(PathBuf::from);
        Transit::from_env(&get, home.as_deref())
    }

    fn client(&self, key: &TransitKey) -> Result<Client, WrapError> {
        if self.settings.token.is_none() {
            return Err(artifacts_openbao::Error::Config(format!(
                "no vault token for `{}`: set BAO_TOKEN or VAULT_TOKEN, or log in with `bao login` (~/.vault-token)",
                key.address
            ))
            .into());
        }
        let mut settings = self.settings.clone();
        settings.address = key.address.clone();
        Ok(Client::new(settings)?)
    }
}

impl DataKeyWrapper for Transit {
    fn wrap(&self, key: &TransitKey, data_key: &[u8]) -> Result<String, WrapError> {
        Ok(self
            .client(key)?
            .transit_encrypt(&key.engine_path, &key.key_name, data_key)?)
    }

    fn unwrap(&self, key: &TransitKey, enc: &str) -> Result<Zeroizing<Vec<u8>>, WrapError> {
        Ok(self
            .client(key)?
            .transit_decrypt(&key.engine_path, &key.key_name, enc)?)
    }
}
