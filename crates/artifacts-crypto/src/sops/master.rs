//! Master keys held by a service rather than by age: HashiCorp Vault /
//! OpenBao transit keys (`hc_vault` in the metadata, `hc_vault_transit_uri`
//! in `.sops.yaml`, `--hc-vault-transit` on the command line).
//!
//! This crate speaks no HTTP: it parses and writes the key references and
//! asks a [`DataKeyWrapper`], supplied by the caller, to encrypt or decrypt
//! the data key. [`Keys`] bundles what decryption may use: age identities
//! and, optionally, such a wrapper.

use std::fmt;

use regex::Regex;
use zeroize::Zeroizing;

use crate::age::Identity;
use crate::error::{Error, Origin, Result};

/// A transit key: `<address>/v1/<engine_path>/keys/<key_name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitKey {
    /// `scheme://host[:port]`, as sops records it in `vault_address`.
    pub address: String,
    /// The transit engine's mount path (e.g. `transit`).
    pub engine_path: String,
    /// The key's name in that engine.
    pub key_name: String,
}

impl TransitKey {
    /// Parses a key URI the way sops 3.11 does
    /// (`https://vault.example.com:8200/v1/transit/keys/name`): the address is
    /// everything before the path, the key the last path segment, the engine
    /// the segments between `v1` and the one before the key.
    pub fn parse_uri(uri: &str, origin: &Origin) -> Result<TransitKey> {
        let uri = uri.trim();
        let bad = |reason: &str| Error::InvalidTransitKey {
            uri: uri.to_string(),
            origin: origin.clone(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = uri
            .split_once("://")
            .filter(|(s, _)| !s.is_empty())
            .ok_or_else(|| bad("no scheme (it should look like https://vault.example.com:8200/v1/transit/keys/NAME)"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if path.contains(['?', '#']) {
            return Err(bad("a query or fragment is not part of a key URI"));
        }
        // The same two checks as sops, so both accept the same URIs.
        let prefixed = Regex::new(r"/[^/]+/v\d+/[^/]+/[^/]+/[^/]+").expect("valid regex");
        let shaped = Regex::new(r"/v\d+/[^/]+/[^/]+/[^/]+").expect("valid regex");
        if prefixed.is_match(path) {
            return Err(bad(
                "a prefixed URL is not supported (it should look like https://vault.example.com:8200/v1/transit/keys/NAME)",
            ));
        }
        if !shaped.is_match(path) {
            return Err(bad(
                "the path should look like /v1/ENGINE/keys/NAME (e.g. https://vault.example.com:8200/v1/transit/keys/NAME)",
            ));
        }
        let dirs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let key_name = dirs[dirs.len() - 1];
        let engine: Vec<&str> = dirs[1..dirs.len() - 2]
            .iter()
            .copied()
            .filter(|d| !d.is_empty())
            .collect();
        if key_name.is_empty() || engine.is_empty() {
            return Err(bad("no engine path or no key name"));
        }
        Ok(TransitKey {
            address: format!("{scheme}://{host}"),
            engine_path: engine.join("/"),
            key_name: key_name.to_string(),
        })
    }

    /// Parses a comma-separated list of key URIs (empty items skipped).
    pub fn parse_list(uris: &str, origin: &Origin) -> Result<Vec<TransitKey>> {
        uris.split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| TransitKey::parse_uri(u, origin))
            .collect()
    }

    /// The key's URI, as sops prints it.
    pub fn uri(&self) -> String {
        format!(
            "{}/v1/{}/keys/{}",
            self.address, self.engine_path, self.key_name
        )
    }
}

impl fmt::Display for TransitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

/// One `hc_vault` entry of a file's metadata: the data key wrapped by a
/// transit key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultKey {
    /// The transit key.
    pub key: TransitKey,
    /// When the data key was wrapped (RFC 3339, UTC).
    pub created_at: String,
    /// The wrapped data key (`vault:v1:…`); not secret without the server.
    pub enc: String,
}

/// What a [`DataKeyWrapper`] failure carries: the service's own error.
pub type WrapError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Encrypts and decrypts a data key with a transit key held by a service.
///
/// Implementations talk to the server; they must not put the token or the
/// data key into their errors.
pub trait DataKeyWrapper {
    /// Encrypts `data_key` with `key`; returns the ciphertext as stored in
    /// `enc` (`vault:v1:…`).
    fn wrap(&self, key: &TransitKey, data_key: &[u8]) -> std::result::Result<String, WrapError>;

    /// Decrypts `enc` with `key`; returns the data key.
    fn unwrap(
        &self,
        key: &TransitKey,
        enc: &str,
    ) -> std::result::Result<Zeroizing<Vec<u8>>, WrapError>;
}

/// What may recover a data key: age identities (tried first, no network)
/// and, when given, a transit [`DataKeyWrapper`].
#[derive(Clone, Copy, Default)]
pub struct Keys<'a> {
    /// The age identities.
    pub identities: &'a [Identity],
    /// The transit service, if any.
    pub wrapper: Option<&'a dyn DataKeyWrapper>,
}

impl fmt::Debug for Keys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Keys({} identities, transit: {})",
            self.identities.len(),
            self.wrapper.is_some()
        )
    }
}

impl<'a> Keys<'a> {
    /// Age identities only.
    pub fn age(identities: &'a [Identity]) -> Self {
        Keys {
            identities,
            wrapper: None,
        }
    }

    /// Age identities and a transit service.
    pub fn with_wrapper(identities: &'a [Identity], wrapper: &'a dyn DataKeyWrapper) -> Self {
        Keys {
            identities,
            wrapper: Some(wrapper),
        }
    }
}

/// Wraps `data_key` for each of `keys` with `wrapper` (an error without one).
pub(crate) fn wrap_all(
    data_key: &[u8],
    keys: &[TransitKey],
    wrapper: Option<&dyn DataKeyWrapper>,
    origin: &Origin,
) -> Result<Vec<VaultKey>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let Some(wrapper) = wrapper else {
        return Err(Error::NoTransitAccess {
            origin: origin.clone(),
            key: keys[0].uri(),
        });
    };
    let created_at = crate::time::now_rfc3339();
    keys.iter()
        .map(|k| {
            let enc = wrapper.wrap(k, data_key).map_err(|source| Error::Transit {
                action: "encrypt",
                origin: origin.clone(),
                key: k.uri(),
                source,
            })?;
            Ok(VaultKey {
                key: k.clone(),
                created_at: created_at.clone(),
                enc,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(uri: &str) -> Result<TransitKey> {
        TransitKey::parse_uri(uri, &Origin::Described("test".into()))
    }

    #[test]
    fn key_uris_split_as_sops_splits_them() {
        let k = parse("https://vault.example.com:8200/v1/transit/keys/sops").unwrap();
        assert_eq!(k.address, "https://vault.example.com:8200");
        assert_eq!(k.engine_path, "transit");
        assert_eq!(k.key_name, "sops");
        assert_eq!(
            k.uri(),
            "https://vault.example.com:8200/v1/transit/keys/sops"
        );
        // A nested engine path keeps its slashes.
        let k = parse("http://127.0.0.1:8200/v1/team/a/transit/keys/k1/").unwrap();
        assert_eq!(k.engine_path, "team/a/transit");
        assert_eq!(k.key_name, "k1");
        let list = TransitKey::parse_list(
            " http://a:1/v1/t/keys/x ,, http://b:2/v1/t/keys/y",
            &Origin::Described("test".into()),
        )
        .unwrap();
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn malformed_key_uris_are_refused_with_the_uri_named() {
        for (uri, why) in [
            ("vault.example.com/v1/transit/keys/k", "no scheme"),
            (
                "https://vault.example.com:8200/transit/keys/k",
                "should look like",
            ),
            ("https://v.example.com/proxy/v1/transit/keys/k", "prefixed"),
            ("https://v.example.com/v1/transit/keys", "should look like"),
            ("https://v.example.com/v1/transit/keys/k?x=1", "query"),
        ] {
            let e = parse(uri).unwrap_err().to_string();
            assert!(e.contains(uri) && e.contains(why), "{uri}: {e}");
        }
    }
}
