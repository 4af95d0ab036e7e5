//! Walking a document the way sops walks it, encrypting or decrypting each
//! leaf and hashing the plaintext into the MAC.
//!
//! The walk order, the comment stacks, the additional data (`a:b:`, list
//! items use their list's path) and the MAC bytes of each type all follow
//! sops' `walkBranch`/`walkSlice`/`ToBytes`; the MAC is the upper-case hex
//! SHA-512, seeded with a fixed prefix when `mac_only_encrypted` is set.

use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use super::cipher::{self, DataKey, IvStash};
use super::metadata::CompiledRules;
use super::tree::{Entry, Item, Map, Value, go_format_f};
use crate::error::{Error, Origin, Result};
use crate::time::parse_yaml_timestamp;

/// sops' `MACOnlyEncryptedInitialization` (sha256 of "sops").
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// A leaf the walk hands to the visitor.
enum Leaf<'a> {
    Value(&'a mut Value),
    Comment(&'a mut String),
}

struct Ctx {
    path: Vec<String>,
    /// Human-readable path with list indices, for errors.
    display: Vec<String>,
    stack: Vec<Vec<String>>,
}

/// A visitor returns `Some(text)` when a value turned out to be an
/// encrypted comment (sops writes comments inside lists as list items).
type Visit<'v> = dyn FnMut(Leaf<'_>, &Ctx) -> Result<Option<String>> + 'v;

impl Ctx {
    fn ad(&self) -> String {
        let mut s = self.path.join(":");
        s.push(':');
        s
    }
    fn display_path(&self) -> String {
        if self.display.is_empty() {
            "the top level".into()
        } else {
            self.display.concat()
        }
    }
}

fn walk_value(v: &mut Value, ctx: &mut Ctx, visit: &mut Visit<'_>) -> Result<Option<String>> {
    match v {
        Value::Map(m) => walk_map(m, ctx, visit).map(|()| None),
        Value::Seq(items) => walk_seq(items, ctx, visit).map(|()| None),
        Value::Null => Ok(None),
        leaf => visit(Leaf::Value(leaf), ctx),
    }
}

fn walk_map(m: &mut Map, ctx: &mut Ctx, visit: &mut Visit<'_>) -> Result<()> {
    ctx.stack.push(Vec::new());
    for e in m.0.iter_mut() {
        match e {
            Entry::Comment(c) => {
                ctx.stack.last_mut().expect("pushed").push(c.clone());
                visit(Leaf::Comment(c), ctx)?;
            }
            Entry::Pair(k, v) => {
                ctx.path.push(k.clone());
                ctx.display.push(format!("[{}]", quote_key(k)));
                if let Some(c) = walk_value(v, ctx, visit)? {
                    *v = Value::Str(c);
                }
                ctx.path.pop();
                ctx.display.pop();
                ctx.stack.last_mut().expect("pushed").clear();
            }
        }
    }
    ctx.stack.pop();
    Ok(())
}

fn walk_seq(items: &mut [Item], ctx: &mut Ctx, visit: &mut Visit<'_>) -> Result<()> {
    ctx.stack.push(Vec::new());
    let mut index = 0usize;
    for it in items.iter_mut() {
        match it {
            Item::Comment(c) => {
                ctx.stack.last_mut().expect("pushed").push(c.clone());
                visit(Leaf::Comment(c), ctx)?;
            }
            Item::Value(v) => {
                ctx.display.push(format!("[{index}]"));
                let became = walk_value(v, ctx, visit)?;
                ctx.display.pop();
                index += 1;
                if let Some(c) = became {
                    *it = Item::Comment(c);
                }
                ctx.stack.last_mut().expect("pushed").clear();
            }
        }
    }
    ctx.stack.pop();
    Ok(())
}

fn quote_key(k: &str) -> String {
    let mut s = String::from("\"");
    for c in k.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

fn walk(branches: &mut [Map], visit: &mut Visit<'_>) -> Result<()> {
    for b in branches.iter_mut() {
        let mut ctx = Ctx {
            path: Vec::new(),
            display: Vec::new(),
            stack: Vec::new(),
        };
        walk_map(b, &mut ctx, visit)?;
    }
    Ok(())
}

/// The bytes sops hashes (and encrypts) for a scalar, with its type name.
fn to_bytes(v: &Value) -> Option<(Zeroizing<Vec<u8>>, &'static str)> {
    Some(match v {
        Value::Str(s) => (Zeroizing::new(s.as_bytes().to_vec()), "str"),
        Value::Bytes(b) => (Zeroizing::new(b.clone()), "str"),
        Value::Int(i) => (Zeroizing::new(i.to_string().into_bytes()), "int"),
        Value::Float(f) => (Zeroizing::new(go_format_f(*f).into_bytes()), "float"),
        Value::Bool(b) => (
            Zeroizing::new(if *b {
                b"True".to_vec()
            } else {
                b"False".to_vec()
            }),
            "bool",
        ),
        Value::Time(t) => (Zeroizing::new(t.as_bytes().to_vec()), "time"),
        Value::Null | Value::Map(_) | Value::Seq(_) => return None,
    })
}

fn new_hasher(rules: &CompiledRules) -> Sha512 {
    let mut h = Sha512::new();
    if rules.mac_only_encrypted {
        h.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    h
}

fn hex_upper(d: &[u8]) -> String {
    hex::encode_upper(d)
}

/// Encrypts every leaf the rules select and returns the MAC (hex) of the
/// plaintext. With a stash, unchanged values keep their IV and ciphertext.
pub(crate) fn encrypt_tree(
    branches: &mut [Map],
    key: &DataKey,
    rules: &CompiledRules,
    stash: Option<&IvStash>,
) -> Result<String> {
    let mut hasher = new_hasher(rules);
    let mut visit = |leaf: Leaf<'_>, ctx: &Ctx| -> Result<Option<String>> {
        let is_comment = matches!(leaf, Leaf::Comment(_));
        let encrypted = rules.should_encrypt(&ctx.path, &ctx.stack, is_comment);
        match leaf {
            Leaf::Comment(c) => {
                if encrypted && !c.is_empty() {
                    *c = cipher::encrypt(key, c.as_bytes(), "comment", &ctx.ad(), stash);
                }
            }
            Leaf::Value(v) => {
                let Some((bytes, ty)) = to_bytes(v) else {
                    return Ok(None);
                };
                if !rules.mac_only_encrypted || encrypted {
                    hasher.update(&bytes[..]);
                }
                if encrypted && !bytes.is_empty() {
                    *v = Value::Str(cipher::encrypt(key, &bytes, ty, &ctx.ad(), stash));
                } else if encrypted && matches!(v, Value::Bytes(_)) {
                    *v = Value::Str(String::new());
                }
            }
        }
        Ok(None)
    };
    walk(branches, &mut visit)?;
    Ok(hex_upper(&hasher.finalize()))
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Decrypts every leaf the rules select, in place, filling the IV stash, and
/// returns the MAC (hex) of the plaintext. Fails on the first value that
/// does not authenticate.
pub(crate) fn decrypt_tree(
    branches: &mut [Map],
    key: &DataKey,
    rules: &CompiledRules,
    stash: &mut IvStash,
    origin: &Origin,
) -> Result<String> {
    let mut hasher = new_hasher(rules);
    let mut visit = |leaf: Leaf<'_>, ctx: &Ctx| -> Result<Option<String>> {
        let is_comment = matches!(leaf, Leaf::Comment(_));
        let encrypted = rules.should_encrypt(&ctx.path, &ctx.stack, is_comment);
        let invalid = |reason: &str| Error::InvalidEncryptedValue {
            origin: origin.clone(),
            key: ctx.display_path(),
            reason: reason.to_string(),
        };
        match leaf {
            Leaf::Comment(c) => {
                if encrypted && cipher::is_enc(c) {
                    // Like sops: a comment that does not decrypt is kept as is
                    // (files from old sops versions have plaintext comments).
                    if let Ok(ev) = cipher::parse_enc(c) {
                        let ad = ctx.ad();
                        if let Some(p) = cipher::decrypt(key, &ev, &ad)
                            && let Ok(text) = std::str::from_utf8(&p)
                        {
                            stash.remember(&ad, "comment", &p, &ev.iv);
                            *c = text.to_string();
                        }
                    }
                }
            }
            Leaf::Value(v) => {
                if encrypted {
                    let Value::Str(s) = &*v else {
                        return Err(invalid("expected an encrypted string"));
                    };
                    if !s.is_empty() {
                        let ev = cipher::parse_enc(s).map_err(|r| invalid(&r))?;
                        let ad = ctx.ad();
                        let plain =
                            cipher::decrypt(key, &ev, &ad).ok_or_else(|| Error::ValueDecrypt {
                                origin: origin.clone(),
                                key: ctx.display_path(),
                            })?;
                        let text = || {
                            std::str::from_utf8(&plain)
                                .map_err(|_| invalid("the plaintext is not UTF-8"))
                        };
                        if ev.ty == "comment" {
                            // A comment sops stored as a list item: not hashed.
                            let text = String::from_utf8_lossy(&plain).into_owned();
                            stash.remember(&ad, "comment", &plain, &ev.iv);
                            return Ok(Some(text));
                        }
                        let typed = match ev.ty.as_str() {
                            "str" | "bytes" => match std::str::from_utf8(&plain) {
                                Ok(t) => Value::Str(t.to_string()),
                                Err(_) => Value::Bytes(plain.to_vec()),
                            },
                            "int" | "int64" => Value::Int(
                                text()?
                                    .parse()
                                    .map_err(|_| invalid("the plaintext is not an integer"))?,
                            ),
                            "float" => Value::Float(
                                text()?
                                    .parse()
                                    .map_err(|_| invalid("the plaintext is not a float"))?,
                            ),
                            "bool" => Value::Bool(
                                go_parse_bool(text()?)
                                    .ok_or_else(|| invalid("the plaintext is not a boolean"))?,
                            ),
                            "time" => Value::Time(
                                parse_yaml_timestamp(text()?)
                                    .ok_or_else(|| invalid("the plaintext is not a timestamp"))?,
                            ),
                            other => {
                                return Err(invalid(&format!(
                                    "unknown type `{}`",
                                    other.escape_debug()
                                )));
                            }
                        };
                        stash.remember(&ad, &ev.ty, &plain, &ev.iv);
                        *v = typed;
                    }
                }
                if (!rules.mac_only_encrypted || encrypted)
                    && let Some((bytes, _)) = to_bytes(v)
                {
                    hasher.update(&bytes[..]);
                }
            }
        }
        Ok(None)
    };
    walk(branches, &mut visit)?;
    Ok(hex_upper(&hasher.finalize()))
}
