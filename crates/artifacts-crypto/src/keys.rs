//! Identity discovery: which private keys to try, from explicit files and
//! from environment variables handed in as a [`KeyEnv`].
//!
//! The library never reads the process environment on its own; callers build
//! a [`KeyEnv`] (for example with [`KeyEnv::from_process`] in a binary, or
//! [`KeyEnv::from_pairs`] in tests) and pass it in.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use crate::age::{Identity, PassphraseProvider, parse_identities, read_identity_file};
use crate::error::{Origin, Result};

/// `ARTIFACTS_IDENTITY`: identity files, separated like `PATH`.
pub const ENV_ARTIFACTS_IDENTITY: &str = "ARTIFACTS_IDENTITY";
/// `SOPS_AGE_KEY`: age identities inline (sops).
pub const ENV_SOPS_AGE_KEY: &str = "SOPS_AGE_KEY";
/// `SOPS_AGE_KEY_FILE`: an age key file (sops).
pub const ENV_SOPS_AGE_KEY_FILE: &str = "SOPS_AGE_KEY_FILE";
/// `SOPS_AGE_SSH_PRIVATE_KEY_FILE`: an OpenSSH private key (sops).
pub const ENV_SOPS_AGE_SSH_PRIVATE_KEY_FILE: &str = "SOPS_AGE_SSH_PRIVATE_KEY_FILE";

/// The environment variables identity discovery looks at.
///
/// `Debug` never shows `SOPS_AGE_KEY`.
#[derive(Clone, Default)]
pub struct KeyEnv {
    /// `ARTIFACTS_IDENTITY`.
    pub artifacts_identity: Option<OsString>,
    /// `SOPS_AGE_KEY` (secret).
    pub sops_age_key: Option<SecretString>,
    /// `SOPS_AGE_KEY_FILE`.
    pub sops_age_key_file: Option<PathBuf>,
    /// `SOPS_AGE_SSH_PRIVATE_KEY_FILE`.
    pub sops_age_ssh_private_key_file: Option<PathBuf>,
    /// `XDG_CONFIG_HOME`, for sops' default `sops/age/keys.txt`.
    pub xdg_config_home: Option<PathBuf>,
    /// `HOME`, for `~/.config/sops/age/keys.txt` and `~/.ssh/id_ed25519`/`id_rsa`.
    pub home: Option<PathBuf>,
}

impl fmt::Debug for KeyEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEnv")
            .field("artifacts_identity", &self.artifacts_identity)
            .field(
                "sops_age_key",
                &self.sops_age_key.as_ref().map(|_| "<redacted>"),
            )
            .field("sops_age_key_file", &self.sops_age_key_file)
            .field(
                "sops_age_ssh_private_key_file",
                &self.sops_age_ssh_private_key_file,
            )
            .field("xdg_config_home", &self.xdg_config_home)
            .field("home", &self.home)
            .finish()
    }
}

impl KeyEnv {
    /// Builds a `KeyEnv` from name/value pairs (an env map). Empty values
    /// count as unset.
    pub fn from_pairs<'a, I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (&'a K, &'a V)>,
        K: AsRef<str> + ?Sized + 'a,
        V: AsRef<std::ffi::OsStr> + ?Sized + 'a,
    {
        let mut env = KeyEnv::default();
        for (k, v) in pairs {
            let v = v.as_ref();
            if v.is_empty() {
                continue;
            }
            match k.as_ref() {
                ENV_ARTIFACTS_IDENTITY => env.artifacts_identity = Some(v.to_os_string()),
                ENV_SOPS_AGE_KEY => {
                    env.sops_age_key = Some(SecretString::from(v.to_string_lossy().into_owned()))
                }
                ENV_SOPS_AGE_KEY_FILE => env.sops_age_key_file = Some(PathBuf::from(v)),
                ENV_SOPS_AGE_SSH_PRIVATE_KEY_FILE => {
                    env.sops_age_ssh_private_key_file = Some(PathBuf::from(v))
                }
                "XDG_CONFIG_HOME" => env.xdg_config_home = Some(PathBuf::from(v)),
                "HOME" => env.home = Some(PathBuf::from(v)),
                _ => {}
            }
        }
        env
    }

    /// Reads the variables from the process environment (for binaries).
    pub fn from_process() -> Self {
        let vars: Vec<(String, OsString)> = std::env::vars_os()
            .filter_map(|(k, v)| k.into_string().ok().map(|k| (k, v)))
            .collect();
        Self::from_pairs(vars.iter().map(|(k, v)| (k.as_str(), v.as_os_str())))
    }

    /// sops' default key file: `$XDG_CONFIG_HOME/sops/age/keys.txt`, else
    /// `$HOME/.config/sops/age/keys.txt`.
    pub fn default_sops_key_file(&self) -> Option<PathBuf> {
        if let Some(x) = &self.xdg_config_home {
            return Some(x.join("sops/age/keys.txt"));
        }
        self.home
            .as_ref()
            .map(|h| h.join(".config/sops/age/keys.txt"))
    }
}

/// What the identities are for; SOPS adds the sops variables and defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Purpose {
    /// Plain age files: explicit files and `ARTIFACTS_IDENTITY`.
    Age,
    /// SOPS files: additionally `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`,
    /// `SOPS_AGE_SSH_PRIVATE_KEY_FILE`, then sops' default key file and
    /// `~/.ssh/id_ed25519`/`id_rsa` when they exist.
    Sops,
}

/// Collects identities, in this order: `files`, `ARTIFACTS_IDENTITY`, and for
/// [`Purpose::Sops`] `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE` (else sops' default
/// key file if present), `SOPS_AGE_SSH_PRIVATE_KEY_FILE` (else
/// `~/.ssh/id_ed25519` and `~/.ssh/id_rsa` if present).
///
/// Every explicitly named source must load; the implicit defaults are
/// skipped when missing, and a passphrase-protected default SSH key is
/// skipped when no passphrase is available. An empty result is not an error
/// here: decryption reports it with the file it was meant for.
pub fn discover_identities(
    files: &[PathBuf],
    env: &KeyEnv,
    purpose: Purpose,
    passphrase: &dyn PassphraseProvider,
) -> Result<Vec<Identity>> {
    let mut out = Vec::new();
    for f in files {
        out.extend(read_identity_file(f, passphrase)?);
    }
    if let Some(list) = &env.artifacts_identity {
        for f in std::env::split_paths(list) {
            if !f.as_os_str().is_empty() {
                out.extend(read_identity_file(&f, passphrase)?);
            }
        }
    }
    if purpose == Purpose::Sops {
        if let Some(key) = &env.sops_age_key {
            out.extend(parse_identities(
                key.expose_secret(),
                Origin::Env(ENV_SOPS_AGE_KEY.into()),
                passphrase,
            )?);
        }
        match &env.sops_age_key_file {
            Some(f) => out.extend(read_identity_file(f, passphrase)?),
            None => {
                if let Some(f) = env.default_sops_key_file().filter(|f| f.is_file()) {
                    out.extend(read_identity_file(&f, passphrase)?);
                }
            }
        }
        match &env.sops_age_ssh_private_key_file {
            Some(f) => out.extend(read_identity_file(f, passphrase)?),
            None => {
                if let Some(home) = &env.home {
                    for name in ["id_ed25519", "id_rsa"] {
                        let f = home.join(".ssh").join(name);
                        if f.is_file()
                            && let Ok(ids) = read_identity_file(&f, passphrase)
                        {
                            out.extend(ids);
                            break;
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Reads recipients from `-r` values and `-R` files, in that order.
pub fn collect_recipients(
    recipients: &[String],
    recipient_files: &[impl AsRef<Path>],
) -> Result<Vec<crate::age::Recipient>> {
    let mut out = Vec::new();
    for r in recipients {
        out.push(crate::age::Recipient::parse_from(
            r,
            Origin::Described("-r/--recipient".into()),
        )?);
    }
    for f in recipient_files {
        out.extend(crate::age::read_recipients_file(f.as_ref())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::age::{NoPassphrase, keygen};
    use std::os::unix::fs::PermissionsExt;

    fn write_key(dir: &Path, name: &str) -> (PathBuf, String) {
        let k = keygen();
        let p = dir.join(name);
        std::fs::write(&p, k.identity_file().as_bytes()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        (p, k.recipient())
    }

    #[test]
    fn sources_are_collected_in_order_and_sops_ones_only_for_sops() {
        let dir = tempfile::tempdir().unwrap();
        let (explicit, r1) = write_key(dir.path(), "explicit.txt");
        let (from_env, r2) = write_key(dir.path(), "env.txt");
        let (sops_file, r3) = write_key(dir.path(), "sops.txt");
        let inline = keygen();
        let inline_text = inline.identity_file();
        let vars = [
            (ENV_ARTIFACTS_IDENTITY, from_env.as_os_str().to_os_string()),
            (ENV_SOPS_AGE_KEY_FILE, sops_file.as_os_str().to_os_string()),
            (ENV_SOPS_AGE_KEY, inline_text.as_str().into()),
            ("HOME", dir.path().as_os_str().to_os_string()),
        ];
        let env = KeyEnv::from_pairs(vars.iter().map(|(k, v)| (*k, v.as_os_str())));
        let recipients = |p| {
            discover_identities(std::slice::from_ref(&explicit), &env, p, &NoPassphrase)
                .unwrap()
                .iter()
                .map(|i| i.to_recipient().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(recipients(Purpose::Age), vec![r1.clone(), r2.clone()]);
        assert_eq!(
            recipients(Purpose::Sops),
            vec![r1, r2, inline.recipient(), r3]
        );
    }

    #[test]
    fn named_sources_must_exist_and_debug_hides_the_inline_key() {
        let env = KeyEnv::from_pairs([
            (
                ENV_SOPS_AGE_KEY_FILE,
                std::ffi::OsStr::new("/nonexistent/keys.txt"),
            ),
            (
                ENV_SOPS_AGE_KEY,
                std::ffi::OsStr::new("AGE-SECRET-KEY-1SECRETSECRET"),
            ),
        ]);
        let dbg = format!("{env:?}");
        assert!(!dbg.contains("SECRETSECRET"), "{dbg}");
        let e = discover_identities(&[], &env, Purpose::Sops, &NoPassphrase).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("SOPS_AGE_KEY"), "{msg}");
        assert!(!msg.contains("SECRETSECRET"), "{msg}");
    }
}
