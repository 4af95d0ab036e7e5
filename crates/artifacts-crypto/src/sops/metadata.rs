//! The `sops:` metadata block: key stanzas, MAC, `lastmodified`, encryption
//! rules, version. Reading accepts what sops 3.x writes; writing follows
//! sops 3.11's field order so diffs against sops-written files stay small.

use regex::Regex;

use super::master::{TransitKey, VaultKey};
use super::tree::{Entry, Item, Map, Value};
use crate::error::{Error, Origin, Result};

/// The version we write (the sops format version we match).
pub const SOPS_VERSION: &str = "3.11.0";

/// One age recipient and the data key encrypted to it (armored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgeKey {
    /// The recipient (`age1…` or an SSH public key).
    pub recipient: String,
    /// The age-encrypted, ASCII-armored data key.
    pub enc: String,
}

/// Which values stay in plaintext (sops' `*_suffix`/`*_regex` options).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncryptionRules {
    /// Keys ending with this suffix (and everything under them) stay plaintext.
    pub unencrypted_suffix: Option<String>,
    /// Only keys ending with this suffix are encrypted.
    pub encrypted_suffix: Option<String>,
    /// Keys matching this regex stay plaintext.
    pub unencrypted_regex: Option<String>,
    /// Only keys matching this regex are encrypted.
    pub encrypted_regex: Option<String>,
    /// Values after a comment matching this regex stay plaintext.
    pub unencrypted_comment_regex: Option<String>,
    /// Only values after a comment matching this regex are encrypted.
    pub encrypted_comment_regex: Option<String>,
    /// The MAC covers only encrypted values.
    pub mac_only_encrypted: bool,
}

impl EncryptionRules {
    /// Rejects combinations sops rejects.
    pub fn validate(&self, origin: &Origin) -> Result<()> {
        let n = [
            &self.unencrypted_suffix,
            &self.encrypted_suffix,
            &self.unencrypted_regex,
            &self.encrypted_regex,
        ]
        .iter()
        .filter(|o| o.is_some())
        .count();
        if n > 1 {
            return Err(Error::Metadata {
                origin: origin.clone(),
                reason: "only one of encrypted_suffix, unencrypted_suffix, encrypted_regex and unencrypted_regex may be used".into(),
            });
        }
        if self.unencrypted_comment_regex.is_some() && self.encrypted_comment_regex.is_some() {
            return Err(Error::Metadata {
                origin: origin.clone(),
                reason:
                    "only one of encrypted_comment_regex and unencrypted_comment_regex may be used"
                        .into(),
            });
        }
        Ok(())
    }

    /// The rules with sops' default applied: `_unencrypted` when no key rule is set.
    pub fn with_default(mut self) -> Self {
        if self.unencrypted_suffix.is_none()
            && self.encrypted_suffix.is_none()
            && self.unencrypted_regex.is_none()
            && self.encrypted_regex.is_none()
        {
            self.unencrypted_suffix = Some("_unencrypted".into());
        }
        self
    }

    pub(crate) fn compile(&self, origin: &Origin) -> Result<CompiledRules> {
        let re = |r: &Option<String>| -> Result<Option<Regex>> {
            r.as_deref()
                .map(|r| {
                    Regex::new(r).map_err(|e| Error::Metadata {
                        origin: origin.clone(),
                        reason: format!("invalid regex `{r}`: {e}"),
                    })
                })
                .transpose()
        };
        let rules = self.clone().with_default();
        Ok(CompiledRules {
            unencrypted_suffix: rules.unencrypted_suffix.clone().filter(|s| !s.is_empty()),
            encrypted_suffix: rules.encrypted_suffix.clone().filter(|s| !s.is_empty()),
            unencrypted_regex: re(&rules.unencrypted_regex)?,
            encrypted_regex: re(&rules.encrypted_regex)?,
            unencrypted_comment_regex: re(&rules.unencrypted_comment_regex)?,
            encrypted_comment_regex: re(&rules.encrypted_comment_regex)?,
            mac_only_encrypted: rules.mac_only_encrypted,
        })
    }
}

/// Rules ready to apply.
pub(crate) struct CompiledRules {
    unencrypted_suffix: Option<String>,
    encrypted_suffix: Option<String>,
    unencrypted_regex: Option<Regex>,
    encrypted_regex: Option<Regex>,
    unencrypted_comment_regex: Option<Regex>,
    encrypted_comment_regex: Option<Regex>,
    pub(crate) mac_only_encrypted: bool,
}

impl CompiledRules {
    /// sops' `shouldBeEncrypted`, decision for decision.
    pub(crate) fn should_encrypt(
        &self,
        path: &[String],
        comments: &[Vec<String>],
        is_comment: bool,
    ) -> bool {
        let mut encrypted = true;
        if let Some(s) = &self.unencrypted_suffix
            && path.iter().any(|p| p.ends_with(s.as_str()))
        {
            encrypted = false;
        }
        if let Some(s) = &self.encrypted_suffix {
            encrypted = path.iter().any(|p| p.ends_with(s.as_str()));
        }
        if let Some(r) = &self.unencrypted_regex
            && path.iter().any(|p| r.is_match(p))
        {
            encrypted = false;
        }
        if let Some(r) = &self.encrypted_regex {
            encrypted = path.iter().any(|p| r.is_match(p));
        }
        if let Some(r) = &self.unencrypted_comment_regex
            && comments.iter().flatten().any(|c| r.is_match(c))
        {
            encrypted = false;
        }
        if let Some(r) = &self.encrypted_comment_regex {
            encrypted = false;
            let last = comments.len().saturating_sub(1);
            let last_len = comments.last().map(Vec::len).unwrap_or(0);
            'outer: for (i, cs) in comments.iter().enumerate() {
                for (j, c) in cs.iter().enumerate() {
                    // The matching comment line itself stays plaintext.
                    if is_comment && i == last && j + 1 == last_len {
                        continue;
                    }
                    if r.is_match(c) {
                        encrypted = true;
                        break 'outer;
                    }
                }
            }
        }
        encrypted
    }
}

/// Everything in the `sops:` block.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    /// age stanzas (a single key group).
    pub age: Vec<AgeKey>,
    /// Vault/OpenBao transit stanzas (`hc_vault`, same single key group).
    pub hc_vault: Vec<VaultKey>,
    /// Key groups (shamir); present only when the file has more than one.
    pub key_groups: Vec<Map>,
    /// The shamir threshold, when set.
    pub shamir_threshold: Option<i64>,
    /// Non-age master keys (`kms`, `pgp`, …) kept verbatim.
    pub other_keys: Vec<(String, Value)>,
    /// RFC 3339 time of the last change; the MAC's additional data.
    pub lastmodified: String,
    /// The encrypted MAC.
    pub mac: String,
    /// Plaintext rules.
    pub rules: EncryptionRules,
    /// The sops version that wrote the file.
    pub version: String,
}

const OTHER_KEY_FIELDS: [&str; 5] = ["kms", "gcp_kms", "hckms", "azure_kv", "pgp"];

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) | Value::Time(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(super::tree::go_format_f(*f)),
        _ => None,
    }
}

/// The most age recipients a SOPS file may list (per key group).
pub const MAX_AGE_KEYS: usize = 4096;

fn age_keys(v: &Value, origin: &Origin) -> Result<Vec<AgeKey>> {
    let bad = |reason: &str| Error::Metadata {
        origin: origin.clone(),
        reason: reason.into(),
    };
    let Value::Seq(items) = v else {
        return match v {
            Value::Null => Ok(Vec::new()),
            _ => Err(bad("`age` must be a list")),
        };
    };
    // Decryption tries each entry in turn: a file may not make that unbounded.
    if items.len() > MAX_AGE_KEYS {
        return Err(bad(&format!(
            "`age` lists more than {MAX_AGE_KEYS} recipients"
        )));
    }
    let mut out = Vec::new();
    for it in items {
        let Item::Value(Value::Map(m)) = it else {
            continue;
        };
        let recipient = m
            .get("recipient")
            .and_then(text_of)
            .ok_or_else(|| bad("an `age` entry has no recipient"))?;
        let enc = m
            .get("enc")
            .and_then(text_of)
            .ok_or_else(|| bad("an `age` entry has no enc"))?;
        out.push(AgeKey { recipient, enc });
    }
    Ok(out)
}

fn vault_keys(v: &Value, origin: &Origin) -> Result<Vec<VaultKey>> {
    let bad = |reason: &str| Error::Metadata {
        origin: origin.clone(),
        reason: reason.into(),
    };
    let Value::Seq(items) = v else {
        return match v {
            Value::Null => Ok(Vec::new()),
            _ => Err(bad("`hc_vault` must be a list")),
        };
    };
    // Each entry may cost a request to a server: bounded like `age`.
    if items.len() > MAX_AGE_KEYS {
        return Err(bad(&format!(
            "`hc_vault` lists more than {MAX_AGE_KEYS} keys"
        )));
    }
    let mut out = Vec::new();
    for it in items {
        let Item::Value(Value::Map(m)) = it else {
            continue;
        };
        let field = |k: &str| {
            m.get(k)
                .and_then(text_of)
                .ok_or_else(|| bad(&format!("an `hc_vault` entry has no {k}")))
        };
        out.push(VaultKey {
            key: TransitKey {
                address: field("vault_address")?,
                engine_path: field("engine_path")?,
                key_name: field("key_name")?,
            },
            created_at: field("created_at")?,
            enc: field("enc")?,
        });
    }
    Ok(out)
}

fn vault_keys_value(keys: &[VaultKey]) -> Value {
    let s = |v: &str| Value::Str(v.to_string());
    Value::Seq(
        keys.iter()
            .map(|k| {
                // sops 3.11's field order.
                Item::Value(Value::Map(Map(vec![
                    Entry::Pair("vault_address".into(), s(&k.key.address)),
                    Entry::Pair("engine_path".into(), s(&k.key.engine_path)),
                    Entry::Pair("key_name".into(), s(&k.key.key_name)),
                    Entry::Pair("created_at".into(), s(&k.created_at)),
                    Entry::Pair("enc".into(), s(&k.enc)),
                ])))
            })
            .collect(),
    )
}

fn non_empty(v: &Value) -> bool {
    match v {
        Value::Seq(s) => s.iter().any(|i| matches!(i, Item::Value(_))),
        Value::Null => false,
        Value::Map(m) => !m.0.is_empty(),
        _ => true,
    }
}

impl Metadata {
    /// Reads the `sops:` mapping.
    pub fn from_map(m: &Map, origin: &Origin) -> Result<Self> {
        let bad = |reason: String| Error::Metadata {
            origin: origin.clone(),
            reason,
        };
        let mut md = Metadata::default();
        let string = |k: &str| m.get(k).and_then(text_of).filter(|s| !s.is_empty());
        md.lastmodified =
            string("lastmodified").ok_or_else(|| bad("`lastmodified` is missing".into()))?;
        md.mac = string("mac").unwrap_or_default();
        md.version = string("version").ok_or_else(|| bad("`version` is missing".into()))?;
        md.rules = EncryptionRules {
            unencrypted_suffix: string("unencrypted_suffix"),
            encrypted_suffix: string("encrypted_suffix"),
            unencrypted_regex: string("unencrypted_regex"),
            encrypted_regex: string("encrypted_regex"),
            unencrypted_comment_regex: string("unencrypted_comment_regex"),
            encrypted_comment_regex: string("encrypted_comment_regex"),
            mac_only_encrypted: matches!(m.get("mac_only_encrypted"), Some(Value::Bool(true)))
                || matches!(m.get("mac_only_encrypted"), Some(Value::Str(s)) if s == "true"),
        };
        md.rules.validate(origin)?;
        if let Some(a) = m.get("age") {
            md.age = age_keys(a, origin)?;
        }
        if let Some(v) = m.get("hc_vault") {
            md.hc_vault = vault_keys(v, origin)?;
        }
        for f in OTHER_KEY_FIELDS {
            if let Some(v) = m.get(f).filter(|v| non_empty(v)) {
                md.other_keys.push((f.to_string(), v.clone()));
            }
        }
        md.shamir_threshold = match m.get("shamir_threshold") {
            Some(Value::Int(i)) => Some(*i),
            Some(Value::Float(f)) => Some(*f as i64),
            Some(Value::Str(s)) => s.parse().ok(),
            _ => None,
        };
        if let Some(Value::Seq(groups)) = m.get("key_groups") {
            let groups: Vec<Map> = groups
                .iter()
                .filter_map(|i| match i {
                    Item::Value(Value::Map(g)) => Some(g.clone()),
                    _ => None,
                })
                .collect();
            let has_flat =
                !md.age.is_empty() || !md.hc_vault.is_empty() || !md.other_keys.is_empty();
            if groups.len() == 1 && !has_flat {
                // One group is the same as the flat form (sops writes it flat).
                let g = &groups[0];
                if let Some(a) = g.get("age") {
                    md.age = age_keys(a, origin)?;
                }
                if let Some(v) = g.get("hc_vault") {
                    md.hc_vault = vault_keys(v, origin)?;
                }
                for f in OTHER_KEY_FIELDS {
                    if let Some(v) = g.get(f).filter(|v| non_empty(v)) {
                        md.other_keys.push((f.to_string(), v.clone()));
                    }
                }
            } else if groups.len() > 1 {
                md.key_groups = groups;
            }
        }
        if md.age.is_empty()
            && md.hc_vault.is_empty()
            && md.other_keys.is_empty()
            && md.key_groups.is_empty()
        {
            return Err(bad("no keys found in the file".into()));
        }
        Ok(md)
    }

    /// Writes the `sops:` mapping in sops 3.11's order.
    pub fn to_map(&self) -> Map {
        let mut m = Map::default();
        let s = |v: &str| Value::Str(v.to_string());
        if let Some(t) = self.shamir_threshold
            && t != 0
        {
            m.0.push(Entry::Pair("shamir_threshold".into(), Value::Int(t)));
        }
        if !self.key_groups.is_empty() {
            m.0.push(Entry::Pair(
                "key_groups".into(),
                Value::Seq(
                    self.key_groups
                        .iter()
                        .map(|g| Item::Value(Value::Map(g.clone())))
                        .collect(),
                ),
            ));
        }
        for (k, v) in &self.other_keys {
            if k != "pgp" {
                m.0.push(Entry::Pair(k.clone(), v.clone()));
            }
        }
        if !self.hc_vault.is_empty() {
            m.0.push(Entry::Pair(
                "hc_vault".into(),
                vault_keys_value(&self.hc_vault),
            ));
        }
        if !self.age.is_empty() {
            m.0.push(Entry::Pair(
                "age".into(),
                Value::Seq(
                    self.age
                        .iter()
                        .map(|a| {
                            Item::Value(Value::Map(Map(vec![
                                Entry::Pair("recipient".into(), s(&a.recipient)),
                                Entry::Pair("enc".into(), s(&a.enc)),
                            ])))
                        })
                        .collect(),
                ),
            ));
        }
        m.0.push(Entry::Pair("lastmodified".into(), s(&self.lastmodified)));
        m.0.push(Entry::Pair("mac".into(), s(&self.mac)));
        for (k, v) in &self.other_keys {
            if k == "pgp" {
                m.0.push(Entry::Pair(k.clone(), v.clone()));
            }
        }
        let r = &self.rules;
        for (k, v) in [
            ("unencrypted_suffix", &r.unencrypted_suffix),
            ("encrypted_suffix", &r.encrypted_suffix),
            ("unencrypted_regex", &r.unencrypted_regex),
            ("encrypted_regex", &r.encrypted_regex),
            ("unencrypted_comment_regex", &r.unencrypted_comment_regex),
            ("encrypted_comment_regex", &r.encrypted_comment_regex),
        ] {
            if let Some(v) = v {
                m.0.push(Entry::Pair(k.into(), s(v)));
            }
        }
        if r.mac_only_encrypted {
            m.0.push(Entry::Pair("mac_only_encrypted".into(), Value::Bool(true)));
        }
        m.0.push(Entry::Pair("version".into(), s(&self.version)));
        m
    }

    /// The age recipients the data key is wrapped to.
    pub fn age_recipients(&self) -> Vec<String> {
        self.age.iter().map(|a| a.recipient.clone()).collect()
    }

    /// The transit keys the data key is wrapped with.
    pub fn transit_keys(&self) -> Vec<TransitKey> {
        self.hc_vault.iter().map(|k| k.key.clone()).collect()
    }

    /// Every master key, public forms only: age recipients, then transit key URIs.
    pub fn recipients(&self) -> Vec<String> {
        let mut out = self.age_recipients();
        out.extend(self.hc_vault.iter().map(|k| k.key.uri()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sops::{Format, parse_plain};

    fn sops_map(yaml: &str) -> Map {
        let origin = Origin::Described("test".into());
        let doc = parse_plain(yaml.as_bytes(), Format::Yaml, &origin).unwrap();
        match doc.branches[0].get("sops") {
            Some(Value::Map(m)) => m.clone(),
            _ => panic!("no sops map"),
        }
    }

    const GROUPED: &str = "sops:\n    key_groups:\n        - hc_vault:\n            - vault_address: http://127.0.0.1:8200\n              engine_path: team/transit\n              key_name: k\n              created_at: \"2026-01-01T00:00:00Z\"\n              enc: vault:v1:abc\n          age:\n            - recipient: age1x\n              enc: x\n    lastmodified: \"2026-01-01T00:00:00Z\"\n    mac: m\n    version: 3.11.0\n";

    #[test]
    fn a_single_key_group_with_hc_vault_is_read_and_written_flat_in_sops_order() {
        let origin = Origin::Described("test".into());
        let md = Metadata::from_map(&sops_map(GROUPED), &origin).unwrap();
        assert_eq!(md.hc_vault.len(), 1);
        assert_eq!(md.hc_vault[0].key.engine_path, "team/transit");
        assert_eq!(
            md.recipients(),
            ["age1x", "http://127.0.0.1:8200/v1/team/transit/keys/k"]
        );
        let written = md.to_map();
        let keys: Vec<&str> = written.pairs().map(|(k, _)| k).collect();
        assert_eq!(keys, ["hc_vault", "age", "lastmodified", "mac", "version"]);
        let Some(Value::Seq(items)) = written.get("hc_vault") else {
            panic!("hc_vault")
        };
        let Item::Value(Value::Map(entry)) = &items[0] else {
            panic!("entry")
        };
        let fields: Vec<&str> = entry.pairs().map(|(k, _)| k).collect();
        assert_eq!(
            fields,
            [
                "vault_address",
                "engine_path",
                "key_name",
                "created_at",
                "enc"
            ]
        );
    }

    #[test]
    fn an_hc_vault_entry_without_its_ciphertext_is_refused() {
        let origin = Origin::Described("test".into());
        let broken = GROUPED.replace("              enc: vault:v1:abc\n", "");
        let e = Metadata::from_map(&sops_map(&broken), &origin).unwrap_err();
        assert!(
            e.to_string().contains("an `hc_vault` entry has no enc"),
            "{e}"
        );
    }
}
