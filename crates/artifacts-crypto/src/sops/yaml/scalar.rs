//! How go-yaml v3 (inside sops) types scalars: a plain scalar may be a
//! null, bool, int, float or timestamp; a quoted or `!!str` one is a string.
//! The emitter asks the same questions to decide what needs quotes.

use artifacts_goyaml::{go_parse_int, yaml_style_float};

use super::super::tree::Value;
use crate::time::parse_yaml_timestamp;

/// How go-yaml v3 types a plain (unquoted, untagged) scalar.
#[derive(Debug, PartialEq)]
pub(super) enum Plain {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Time(String),
    Merge,
    Str,
}

/// Types a plain scalar like go-yaml v3's `resolve`.
pub(super) fn resolve_plain(s: &str) -> Plain {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "true" | "True" | "TRUE" => return Plain::Bool(true),
        "false" | "False" | "FALSE" => return Plain::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Plain::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Plain::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Plain::Float(f64::NAN),
        "<<" => return Plain::Merge,
        _ => {}
    }
    let first = s.as_bytes()[0];
    match first {
        b'.' => match s.parse::<f64>() {
            Ok(f) if f.is_finite() && yaml_style_float(s) => Plain::Float(f),
            _ => Plain::Str,
        },
        b'0'..=b'9' | b'+' | b'-' => {
            if first.is_ascii_digit()
                && let Some(t) = parse_yaml_timestamp(s)
            {
                return Plain::Time(t);
            }
            let plain = s.replace('_', "");
            if let Some(i) = go_parse_int(&plain) {
                return Plain::Int(i);
            }
            if yaml_style_float(&plain)
                && let Ok(f) = plain.parse::<f64>()
                && f.is_finite()
            {
                return Plain::Float(f);
            }
            Plain::Str
        }
        _ => Plain::Str,
    }
}

/// YAML 1.1 booleans go-yaml still quotes on output.
pub(super) fn is_old_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "on"
            | "On"
            | "ON"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "off"
            | "Off"
            | "OFF"
    )
}

/// go-yaml's `isBase60Float` (`1:20`), quoted on output for YAML 1.1 readers.
pub(super) fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    if i >= b.len() || !b[i].is_ascii_digit() {
        return false;
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while i < b.len() && b[i] == b':' {
        i += 1;
        let st = i;
        if i < b.len() && (b'0'..=b'5').contains(&b[i]) {
            i += 1;
        }
        if i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == st || (i - st == 1 && !b[st].is_ascii_digit()) {
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

pub(super) fn scalar_value(value: String, plain: bool, tag: Option<&str>) -> Value {
    let tag = tag.map(|t| t.strip_prefix("tag:yaml.org,2002:").unwrap_or(t));
    match tag {
        Some("str") => return Value::Str(value),
        Some("null") => return Value::Null,
        Some("bool" | "int" | "float" | "timestamp") => {
            return match resolve_plain(&value) {
                Plain::Null => Value::Null,
                Plain::Bool(b) => Value::Bool(b),
                Plain::Int(i) => Value::Int(i),
                Plain::Float(f) => Value::Float(f),
                Plain::Time(t) => Value::Time(t),
                Plain::Merge | Plain::Str => Value::Str(value),
            };
        }
        _ => {}
    }
    if !plain {
        return Value::Str(value);
    }
    match resolve_plain(&value) {
        Plain::Null => Value::Null,
        Plain::Bool(b) => Value::Bool(b),
        Plain::Int(i) => Value::Int(i),
        Plain::Float(f) => Value::Float(f),
        Plain::Time(t) => Value::Time(t),
        Plain::Merge | Plain::Str => Value::Str(value),
    }
}
