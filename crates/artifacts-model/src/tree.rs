//! The parsed document the reader in [`crate::load`] walks: one tree type for
//! TOML, JSON, YAML and the nix-eval JSON.
//!
//! It is `serde_json::Value` in what it accepts and in every error a parser
//! reports while building it (same visitor answers, same `expecting`
//! texts), with two differences that make a fleet's manifest cheap to read:
//! strings borrow from the text where the parser allows it (a shorthand's
//! `targets` lists thousands of names), and tables hash their keys with
//! foldhash, a fast hasher that is still seeded per process, so a hostile
//! manifest cannot make lookups collide.

use std::borrow::Cow;
use std::fmt;

use indexmap::IndexMap;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// A table: keys in document order, a key written twice keeps its first
/// place and its last value (as `serde_json::Map` with `preserve_order`).
pub(crate) type Map<'a> = IndexMap<Cow<'a, str>, Value<'a>, foldhash::fast::RandomState>;

/// A node of the tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    /// Boxed: a map is large, and a fleet's lists hold thousands of strings
    /// (a value is 32 bytes instead of 80).
    Object(Box<Map<'a>>),
}

impl Value<'_> {
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The same value as a `serde_json::Value` (target `config`, handed to
    /// backends as JSON).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_json::Value::Number(n.clone()),
            Value::String(s) => serde_json::Value::String(s.clone().into_owned()),
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Object(map) => serde_json::Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone().into_owned(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    // As serde_json's: parsers quote it in their errors.
    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_i128<E: serde::de::Error>(self, value: i128) -> Result<Self::Value, E> {
        let de = serde::de::value::I128Deserializer::<E>::new(value);
        serde::Deserialize::deserialize(de).map(Value::Number)
    }

    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u128<E: serde::de::Error>(self, value: u128) -> Result<Self::Value, E> {
        let de = serde::de::value::U128Deserializer::<E>::new(value);
        serde::Deserialize::deserialize(de).map(Value::Number)
    }

    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        // NaN and infinities have no JSON form: null, as in serde_json.
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Value::String(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Value::String(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
        Ok(Value::String(Cow::Owned(value)))
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        serde::Deserialize::deserialize(deserializer)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = Map::with_capacity_and_hasher(
            access.size_hint().unwrap_or(0).min(4096),
            Default::default(),
        );
        // serde_json reads the first key as `a string key` and the others as
        // `a string`: the same, so a parser's type error reads the same.
        let Some(first) = access.next_key_seed(Key("a string key"))? else {
            return Ok(Value::Object(Box::new(map)));
        };
        map.insert(first, access.next_value()?);
        while let Some(key) = access.next_key_seed(Key("a string"))? {
            map.insert(key, access.next_value()?);
        }
        Ok(Value::Object(Box::new(map)))
    }
}

/// A table key, borrowed where the parser allows.
struct Key(&'static str);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.0)
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree holds what serde_json's value holds, for every format.
    #[test]
    fn trees_match_serde_json_values() {
        let json =
            r#"{"b": [1, -2, 1.5, "x\n", null, true], "a": {"c": {}}, "b": 18446744073709551615}"#;
        let ours: Value<'_> = serde_json::from_str(json).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(ours.to_json(), theirs);
        let toml = "x = 1979-05-27T07:32:00Z\ny = [1, 2.5, 'z']\n[t]\nk = { a = true }\n";
        let ours: Value<'_> = toml::from_str(toml).unwrap();
        let theirs: serde_json::Value = toml::from_str(toml).unwrap();
        assert_eq!(ours.to_json(), theirs);
        let yaml = "a: ~\nb: [1, 0x10, .nan, 'q']\nc: {d: e}\n";
        let ours: Value<'_> = serde_norway::from_str(yaml).unwrap();
        let theirs: serde_json::Value = serde_norway::from_str(yaml).unwrap();
        assert_eq!(ours.to_json(), theirs);
    }

    #[test]
    fn values_stay_small() {
        assert!(size_of::<Value<'_>>() <= 32, "{}", size_of::<Value<'_>>());
    }

    /// Strings without escapes are not copied out of the text.
    #[test]
    fn strings_borrow_from_the_text() {
        let text = "targets = ['m1', \"m2\"]";
        let Value::Object(top) = toml::from_str::<Value<'_>>(text).unwrap() else {
            panic!("a table")
        };
        let Some(Value::Array(items)) = top.get("targets") else {
            panic!("a list")
        };
        assert!(
            items
                .iter()
                .all(|item| matches!(item, Value::String(Cow::Borrowed(_))))
        );
    }

    /// Parsers reject the same input with the same words, and accept the
    /// same odd keys alike.
    #[test]
    fn errors_read_as_serde_json_values_do() {
        for yaml in [
            "? [a, b]\n: c\n",
            "a: 1\n? [a, b]\n: c\n",
            "a: !tag x\n",
            "!!binary aGVsbG8=: 1\n",
            "a: 1\n!!binary aGVsbG8=: 2\n",
        ] {
            let ours = serde_norway::from_str::<Value<'_>>(yaml)
                .map(|v| v.to_json())
                .map_err(|e| e.to_string());
            let theirs =
                serde_norway::from_str::<serde_json::Value>(yaml).map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{yaml}");
        }
    }
}
