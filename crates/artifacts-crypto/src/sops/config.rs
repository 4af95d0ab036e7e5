//! `.sops.yaml`: finding it and applying its `creation_rules` (`path_regex`,
//! `age`, `hc_vault_transit_uri`, a single `key_groups` entry with `age` and
//! `hc_vault`, and the encryption-rule options). Rules for other key types
//! (pgp, kms, …) and multi-group shamir setups are refused with an error
//! naming the config.

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use super::master::TransitKey;
use super::metadata::EncryptionRules;
use crate::age::Recipient;
use crate::error::{Error, Origin, Result};

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    fn items(&self) -> Vec<String> {
        let parts: Vec<String> = match self {
            StringOrList::One(s) => s.split(',').map(str::to_string).collect(),
            StringOrList::Many(v) => v
                .iter()
                .flat_map(|s| s.split(','))
                .map(str::to_string)
                .collect(),
        };
        parts
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

#[derive(Deserialize, Default)]
struct RawGroup {
    age: Option<StringOrList>,
    pgp: Option<serde_norway::Value>,
    kms: Option<serde_norway::Value>,
    gcp_kms: Option<serde_norway::Value>,
    azure_keyvault: Option<serde_norway::Value>,
    hc_vault: Option<StringOrList>,
}

#[derive(Deserialize, Default)]
struct RawRule {
    path_regex: Option<String>,
    age: Option<StringOrList>,
    pgp: Option<serde_norway::Value>,
    kms: Option<serde_norway::Value>,
    gcp_kms: Option<serde_norway::Value>,
    azure_keyvault: Option<serde_norway::Value>,
    hc_vault_transit_uri: Option<StringOrList>,
    key_groups: Option<Vec<RawGroup>>,
    shamir_threshold: Option<i64>,
    unencrypted_suffix: Option<String>,
    encrypted_suffix: Option<String>,
    unencrypted_regex: Option<String>,
    encrypted_regex: Option<String>,
    unencrypted_comment_regex: Option<String>,
    encrypted_comment_regex: Option<String>,
    mac_only_encrypted: Option<bool>,
}

#[derive(Deserialize, Default)]
struct RawConfig {
    #[serde(default)]
    creation_rules: Vec<RawRule>,
}

/// A parsed `.sops.yaml`.
pub struct SopsConfig {
    path: PathBuf,
    rules: Vec<RawRule>,
}

impl std::fmt::Debug for SopsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SopsConfig({}, {} rules)",
            self.path.display(),
            self.rules.len()
        )
    }
}

/// What a creation rule says about a new file.
#[derive(Clone, Debug)]
pub struct CreationRule {
    /// The age recipients.
    pub recipients: Vec<Recipient>,
    /// The Vault/OpenBao transit keys.
    pub transit: Vec<TransitKey>,
    /// The encryption rules.
    pub rules: EncryptionRules,
}

fn set(v: &Option<serde_norway::Value>) -> bool {
    match v {
        None | Some(serde_norway::Value::Null) => false,
        Some(serde_norway::Value::String(s)) => !s.is_empty(),
        Some(serde_norway::Value::Sequence(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// Finds `.sops.yaml` (or `.sops.yml`) in `start` or its parents.
pub fn find_config(start: &Path) -> Option<PathBuf> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        for name in [".sops.yaml", ".sops.yml"] {
            let p = d.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
        dir = d.parent();
    }
    None
}

/// How deep a `.sops.yaml` may nest (`creation_rules[].key_groups[].age[]`
/// is four levels).
const MAX_CONFIG_DEPTH: usize = 32;

impl SopsConfig {
    /// Reads a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` is where it lives (rules match relative to it).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            // A config nests a few levels; deeper ones would cost libyaml
            // quadratic time (see `yaml::check_nesting`).
            super::yaml::check_nesting(text, MAX_CONFIG_DEPTH).map_err(|e| Error::Config {
                path: path.to_path_buf(),
                reason: e.0,
            })?;
            serde_norway::from_str(text).map_err(|e| Error::Config {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?
        };
        Ok(SopsConfig {
            path: path.to_path_buf(),
            rules: raw.creation_rules,
        })
    }

    /// The config file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The first creation rule whose `path_regex` matches `file` (relative
    /// to the config's directory when below it), resolved.
    pub fn rule_for(&self, file: &Path) -> Result<CreationRule> {
        let cfg_err = |reason: String| Error::Config {
            path: self.path.clone(),
            reason,
        };
        let dir = self.path.parent().unwrap_or(Path::new(""));
        let abs_file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let abs_dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let rel = abs_file
            .strip_prefix(&abs_dir)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| file.to_path_buf());
        let rel = rel.to_string_lossy().replace('\\', "/");
        for (n, rule) in self.rules.iter().enumerate() {
            if let Some(re) = &rule.path_regex {
                let re = Regex::new(re).map_err(|e| {
                    cfg_err(format!("creation rule {}: invalid path_regex: {e}", n + 1))
                })?;
                if !re.is_match(&rel) {
                    continue;
                }
            }
            return self.resolve(rule, n + 1);
        }
        Err(Error::NoCreationRule {
            config: self.path.clone(),
            file: file.to_path_buf(),
        })
    }

    fn resolve(&self, rule: &RawRule, n: usize) -> Result<CreationRule> {
        let origin = Origin::Described(format!("creation rule {n} of `{}`", self.path.display()));
        let unsupported = |feature: &str| Error::Unsupported {
            origin: origin.clone(),
            feature: feature.to_string(),
        };
        let mut age_list: Vec<String> = rule.age.as_ref().map(|a| a.items()).unwrap_or_default();
        let mut transit_list: Vec<String> = rule
            .hc_vault_transit_uri
            .as_ref()
            .map(|a| a.items())
            .unwrap_or_default();
        let mut other =
            set(&rule.pgp) || set(&rule.kms) || set(&rule.gcp_kms) || set(&rule.azure_keyvault);
        if let Some(groups) = &rule.key_groups {
            if groups.len() > 1 {
                return Err(unsupported("key groups with a shamir threshold"));
            }
            if let Some(g) = groups.first() {
                age_list.extend(g.age.as_ref().map(|a| a.items()).unwrap_or_default());
                transit_list.extend(g.hc_vault.as_ref().map(|a| a.items()).unwrap_or_default());
                other |= set(&g.pgp) || set(&g.kms) || set(&g.gcp_kms) || set(&g.azure_keyvault);
            }
        }
        if other {
            return Err(unsupported("pgp/kms master keys"));
        }
        let _ = rule.shamir_threshold;
        let recipients = age_list
            .iter()
            .map(|r| Recipient::parse_from(r, origin.clone()))
            .collect::<Result<Vec<_>>>()?;
        let transit = transit_list
            .iter()
            .map(|u| TransitKey::parse_uri(u, &origin))
            .collect::<Result<Vec<_>>>()?;
        let rules = EncryptionRules {
            unencrypted_suffix: rule.unencrypted_suffix.clone(),
            encrypted_suffix: rule.encrypted_suffix.clone(),
            unencrypted_regex: rule.unencrypted_regex.clone(),
            encrypted_regex: rule.encrypted_regex.clone(),
            unencrypted_comment_regex: rule.unencrypted_comment_regex.clone(),
            encrypted_comment_regex: rule.encrypted_comment_regex.clone(),
            mac_only_encrypted: rule.mac_only_encrypted.unwrap_or(false),
        };
        rules.validate(&origin)?;
        Ok(CreationRule {
            recipients,
            transit,
            rules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R1: &str = "age16ldl346h2qlpu9w32tp5yf58n2dsesfdz7dtqqfdjy8d4quucvhqjwq5zd";
    const R2: &str = "age1n2r88qcmupqlkevx5k6l93x48gaw8um2drlrjsg599ucmsgltd4swzrqq9";

    #[test]
    fn deeply_nested_configs_are_refused_before_serde_parses_them() {
        let deep = format!("creation_rules: {}\n", "[".repeat(200_000));
        let e = SopsConfig::parse(&deep, Path::new("/p/.sops.yaml")).unwrap_err();
        assert!(e.to_string().contains("deeper than 32 levels"), "{e}");
        // libyaml was stopped right after the limit.
        let pulled = crate::sops::yaml::events_pulled();
        assert!(pulled < 64, "{pulled} events pulled");
    }

    #[test]
    fn first_matching_creation_rule_wins() {
        let text = format!(
            "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: {R1},{R2}\n    encrypted_regex: ^data$\n  - age: [{R2}]\n"
        );
        let cfg = SopsConfig::parse(&text, Path::new("/repo/.sops.yaml")).unwrap();
        let r = cfg.rule_for(Path::new("/repo/secrets/a.yaml")).unwrap();
        assert_eq!(r.recipients.len(), 2);
        assert_eq!(r.rules.encrypted_regex.as_deref(), Some("^data$"));
        let r = cfg.rule_for(Path::new("/repo/other.json")).unwrap();
        assert_eq!(r.recipients.len(), 1);
        assert_eq!(r.recipients[0].as_str(), R2);
    }

    #[test]
    fn transit_uris_come_from_the_rule_and_its_key_group() {
        let text = format!(
            "creation_rules:\n  - path_regex: a$\n    age: {R1}\n    hc_vault_transit_uri: http://127.0.0.1:8200/v1/transit/keys/k1,https://v:1/v1/t2/keys/k2\n  - path_regex: b$\n    key_groups:\n      - hc_vault: [http://127.0.0.1:8200/v1/transit/keys/k3]\n  - path_regex: c$\n    hc_vault_transit_uri: vault.example.com/v1/transit/keys/k\n"
        );
        let cfg = SopsConfig::parse(&text, Path::new("/r/.sops.yaml")).unwrap();
        let r = cfg.rule_for(Path::new("/r/a")).unwrap();
        assert_eq!(r.recipients.len(), 1);
        let uris: Vec<String> = r.transit.iter().map(TransitKey::uri).collect();
        assert_eq!(
            uris,
            [
                "http://127.0.0.1:8200/v1/transit/keys/k1",
                "https://v:1/v1/t2/keys/k2"
            ]
        );
        let r = cfg.rule_for(Path::new("/r/b")).unwrap();
        assert!(r.recipients.is_empty());
        assert_eq!(r.transit[0].key_name, "k3");
        let e = cfg.rule_for(Path::new("/r/c")).unwrap_err().to_string();
        assert!(
            e.contains("creation rule 3") && e.contains("vault.example.com/v1/transit/keys/k"),
            "{e}"
        );
    }

    #[test]
    fn no_matching_rule_and_shamir_groups_are_errors() {
        let text = format!("creation_rules:\n  - path_regex: x$\n    age: {R1}\n");
        let cfg = SopsConfig::parse(&text, Path::new("/r/.sops.yaml")).unwrap();
        assert!(matches!(
            cfg.rule_for(Path::new("/r/y")),
            Err(Error::NoCreationRule { .. })
        ));
        let text = format!(
            "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [{R1}]\n      - age: [{R2}]\n"
        );
        let cfg = SopsConfig::parse(&text, Path::new("/r/.sops.yaml")).unwrap();
        assert!(matches!(
            cfg.rule_for(Path::new("/r/y")),
            Err(Error::Unsupported { .. })
        ));
    }
}
