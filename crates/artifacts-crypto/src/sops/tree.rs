//! The document tree SOPS works on: ordered mappings with comments, lists,
//! and typed scalars, mirroring sops' `TreeBranch`.
//!
//! Plaintext strings live in this tree while a document is decrypted;
//! [`Document`] zeroizes them when dropped, and `Debug` shows the structure
//! and keys but never a value or comment.

use std::fmt;

use zeroize::Zeroize;

/// A value in a document. `Debug` redacts scalars.
#[derive(Clone, PartialEq)]
pub enum Value {
    /// `null` (never encrypted, not part of the MAC).
    Null,
    /// A boolean (`type:bool`, hashed as `True`/`False`).
    Bool(bool),
    /// An integer (`type:int`).
    Int(i64),
    /// A float (`type:float`).
    Float(f64),
    /// A string (`type:str`).
    Str(String),
    /// Bytes that are not UTF-8 (binary documents).
    Bytes(Vec<u8>),
    /// A YAML timestamp, kept as Go's RFC 3339 (nano) text (`type:time`).
    Time(String),
    /// A mapping with its comments, in document order.
    Map(Map),
    /// A list with its comments, in document order.
    Seq(Vec<Item>),
}

/// An entry of a mapping. `Debug` shows the key, never the value or comment.
#[derive(Clone, PartialEq)]
pub enum Entry {
    /// A comment line (text after `#`).
    Comment(String),
    /// A key and its value.
    Pair(String, Value),
}

/// An item of a list. `Debug` redacts it.
#[derive(Clone, PartialEq)]
pub enum Item {
    /// A comment line (text after `#`).
    Comment(String),
    /// A value.
    Value(Value),
}

/// An ordered mapping; keys are strings as in sops.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Map(pub Vec<Entry>);

impl Map {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find_map(|e| match e {
            Entry::Pair(k, v) if k == key => Some(v),
            _ => None,
        })
    }

    /// The mutable value of `key`, if present.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.0.iter_mut().find_map(|e| match e {
            Entry::Pair(k, v) if k == key => Some(v),
            _ => None,
        })
    }

    /// Removes `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self
            .0
            .iter()
            .position(|e| matches!(e, Entry::Pair(k, _) if k == key))?;
        match self.0.remove(i) {
            Entry::Pair(_, v) => Some(v),
            Entry::Comment(_) => None,
        }
    }

    /// Sets `key` to `value`, keeping its position when present, else appending.
    pub fn insert(&mut self, key: &str, value: Value) {
        match self.get_mut(key) {
            Some(v) => *v = value,
            None => self.0.push(Entry::Pair(key.to_string(), value)),
        }
    }

    /// Key/value pairs without comments.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().filter_map(|e| match e {
            Entry::Pair(k, v) => Some((k.as_str(), v)),
            Entry::Comment(_) => None,
        })
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Scalars may be decrypted secrets: show only their type (and size).
        match self {
            Value::Null => f.write_str("Null"),
            Value::Bool(_) => f.write_str("Bool(<redacted>)"),
            Value::Int(_) => f.write_str("Int(<redacted>)"),
            Value::Float(_) => f.write_str("Float(<redacted>)"),
            Value::Str(s) => write!(f, "Str(<redacted, {} bytes>)", s.len()),
            Value::Bytes(b) => write!(f, "Bytes(<redacted, {} bytes>)", b.len()),
            Value::Time(_) => f.write_str("Time(<redacted>)"),
            Value::Map(m) => m.fmt(f),
            Value::Seq(items) => f.debug_tuple("Seq").field(items).finish(),
        }
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Comment(_) => f.write_str("Comment(<redacted>)"),
            Entry::Pair(k, v) => f.debug_tuple("Pair").field(k).field(v).finish(),
        }
    }
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Comment(_) => f.write_str("Comment(<redacted>)"),
            Item::Value(v) => v.fmt(f),
        }
    }
}

impl Zeroize for Value {
    fn zeroize(&mut self) {
        match self {
            Value::Str(s) | Value::Time(s) => s.zeroize(),
            Value::Bytes(b) => b.zeroize(),
            Value::Int(i) => i.zeroize(),
            Value::Float(f) => f.zeroize(),
            Value::Bool(b) => b.zeroize(),
            Value::Map(m) => m.zeroize(),
            Value::Seq(items) => {
                for i in items.iter_mut() {
                    match i {
                        Item::Comment(c) => c.zeroize(),
                        Item::Value(v) => v.zeroize(),
                    }
                }
            }
            Value::Null => {}
        }
    }
}

impl Zeroize for Map {
    fn zeroize(&mut self) {
        for e in self.0.iter_mut() {
            match e {
                Entry::Comment(c) => c.zeroize(),
                Entry::Pair(k, v) => {
                    k.zeroize();
                    v.zeroize();
                }
            }
        }
    }
}

/// A whole document: one branch per YAML document (`---`), one for the
/// other formats. Zeroized on drop.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Document {
    /// The branches (top-level mappings).
    pub branches: Vec<Map>,
}

impl Drop for Document {
    fn drop(&mut self) {
        for b in self.branches.iter_mut() {
            b.zeroize();
        }
    }
}

/// Formats a float the way Go's `strconv.FormatFloat(f, 'f', -1, 64)` does;
/// sops uses it to encrypt and to hash floats.
pub(crate) fn go_format_f(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        // Rust's Display prints the shortest round-trip digits without an exponent.
        format!("{f}")
    }
}

/// Formats a float like Go's `strconv.FormatFloat(f, fmt, -1, 64)` with
/// `fmt` = `'e'`: shortest digits, exponent with a sign and two digits.
fn go_format_e(f: f64) -> String {
    let s = format!("{f:e}"); // e.g. "1.5e20", "1e-7"
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mant}e{sign}{:02}", exp.abs())
}

/// Formats a float like Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which
/// go-yaml uses for floats: exponent form when the decimal exponent is below
/// -4 or at least 6 (Go fixes `eprec` at 6 for the shortest precision).
pub(crate) fn go_format_g(f: f64) -> String {
    if f.is_nan() || f.is_infinite() || f == 0.0 {
        return go_format_f(f);
    }
    let e = format!("{:e}", f.abs());
    let exp: i32 = e
        .split_once('e')
        .and_then(|(_, x)| x.parse().ok())
        .unwrap_or(0);
    if !(-4..6).contains(&exp) {
        go_format_e(f)
    } else {
        go_format_f(f)
    }
}

/// Formats a float like Go's `encoding/json` (sops' JSON output).
pub(crate) fn go_json_float(f: f64) -> String {
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = go_format_e(f);
        // encoding/json turns e-07 into e-7.
        if let Some(i) = s.find("e-0") {
            return format!("{}e-{}", &s[..i], &s[i + 3..]);
        }
        s
    } else {
        go_format_f(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_structure_and_keys_but_no_value_or_comment() {
        let doc = Document {
            branches: vec![Map(vec![
                Entry::Comment("secret comment".into()),
                Entry::Pair("password".into(), Value::Str("hunter2".into())),
                Entry::Pair("pin".into(), Value::Int(1234)),
                Entry::Pair(
                    "list".into(),
                    Value::Seq(vec![
                        Item::Value(Value::Float(0.5)),
                        Item::Comment("c".into()),
                    ]),
                ),
            ])],
        };
        let dbg = format!("{doc:?}");
        assert!(dbg.contains("password") && dbg.contains("list"), "{dbg}");
        for secret in ["hunter2", "1234", "0.5", "secret comment"] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
    }

    #[test]
    fn floats_format_like_go_strconv_f() {
        assert_eq!(go_format_f(1e20), "100000000000000000000");
        assert_eq!(go_format_f(0.1), "0.1");
        assert_eq!(go_format_f(-0.0), "-0");
        assert_eq!(go_format_f(1.5), "1.5");
        assert_eq!(go_format_f(1e-7), "0.0000001");
        assert_eq!(go_format_f(f64::INFINITY), "+Inf");
    }

    #[test]
    fn floats_format_like_go_strconv_g() {
        assert_eq!(go_format_g(1e20), "1e+20");
        assert_eq!(go_format_g(0.1), "0.1");
        assert_eq!(go_format_g(-0.0), "-0");
        assert_eq!(go_format_g(5432.0), "5432");
        assert_eq!(go_format_g(123456.0), "123456");
        assert_eq!(go_format_g(1234567.0), "1.234567e+06");
        assert_eq!(go_format_g(0.0001), "0.0001");
        assert_eq!(go_format_g(0.00001), "1e-05");
        assert_eq!(go_format_g(1234.56789), "1234.56789");
        assert_eq!(go_format_g(100.0), "100");
        assert_eq!(go_format_g(1000000.0), "1e+06");
    }

    #[test]
    fn floats_format_like_go_encoding_json() {
        assert_eq!(go_json_float(1e20), "100000000000000000000");
        assert_eq!(go_json_float(1e21), "1e+21");
        assert_eq!(go_json_float(1e-7), "1e-7");
        assert_eq!(go_json_float(-0.0), "-0");
        assert_eq!(go_json_float(1.0), "1");
    }
}
