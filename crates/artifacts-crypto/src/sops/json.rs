//! JSON reading and writing for SOPS documents, matching sops' output:
//! tab indentation, Go's `encoding/json` string escaping and float format,
//! and every number read as a float (as sops does).

use super::tree::{Entry, Item, Map, Value, go_json_float};

/// Parses a JSON object into a branch.
pub(crate) fn parse(src: &str) -> Result<Map, String> {
    let v: serde_json::Value = serde_json::from_str(src).map_err(|e| e.to_string())?;
    match convert(v) {
        Value::Map(m) => Ok(m),
        _ => Err("the top level must be an object".into()),
    }
}

/// Parses any JSON value.
pub(crate) fn parse_value(src: &str) -> Result<Value, String> {
    let v: serde_json::Value = serde_json::from_str(src).map_err(|e| e.to_string())?;
    Ok(convert(v))
}

fn convert(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Value::Str(s),
        serde_json::Value::Array(a) => {
            Value::Seq(a.into_iter().map(|v| Item::Value(convert(v))).collect())
        }
        serde_json::Value::Object(o) => Value::Map(Map(o
            .into_iter()
            .map(|(k, v)| Entry::Pair(k, convert(v)))
            .collect())),
    }
}

/// Writes a JSON string with Go's escaping (HTML-safe).
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0C' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn indent(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push('\t');
    }
}

fn write_value(out: &mut String, v: &Value, depth: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => {
            if f.is_finite() {
                out.push_str(&go_json_float(*f))
            } else {
                // JSON has no infinities; keep the value readable as a string.
                write_string(out, &super::tree::go_format_f(*f))
            }
        }
        Value::Str(s) | Value::Time(s) => write_string(out, s),
        Value::Bytes(b) => write_string(out, &String::from_utf8_lossy(b)),
        Value::Map(m) => write_map(out, m, depth),
        Value::Seq(items) => {
            let values: Vec<&Value> = items
                .iter()
                .filter_map(|i| match i {
                    Item::Value(v) => Some(v),
                    Item::Comment(_) => None,
                })
                .collect();
            if values.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push_str("[\n");
            for (i, v) in values.iter().enumerate() {
                indent(out, depth + 1);
                write_value(out, v, depth + 1);
                if i + 1 < values.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, depth);
            out.push(']');
        }
    }
}

fn write_map(out: &mut String, m: &Map, depth: usize) {
    let pairs: Vec<(&str, &Value)> = m.pairs().collect();
    if pairs.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push_str("{\n");
    for (i, (k, v)) in pairs.iter().enumerate() {
        indent(out, depth + 1);
        write_string(out, k);
        out.push_str(": ");
        write_value(out, v, depth + 1);
        if i + 1 < pairs.len() {
            out.push(',');
        }
        out.push('\n');
    }
    indent(out, depth);
    out.push('}');
}

/// Emits a branch as an indented JSON object with a trailing newline.
pub(crate) fn emit(m: &Map) -> String {
    let mut out = String::new();
    write_map(&mut out, m, 0);
    out.push('\n');
    out
}

/// Emits one value as JSON (no trailing newline).
pub(crate) fn emit_value(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_output_matches_go_encoding_json() {
        let m = parse(r#"{"a": 1, "u": "é\n<>&", "l": [], "m": {}, "n": [1e21, 0.1]}"#).unwrap();
        assert_eq!(
            emit(&m),
            "{\n\t\"a\": 1,\n\t\"u\": \"é\\n\\u003c\\u003e\\u0026\",\n\t\"l\": [],\n\t\"m\": {},\n\t\"n\": [\n\t\t1e+21,\n\t\t0.1\n\t]\n}\n"
        );
    }

    #[test]
    fn json_top_level_must_be_an_object() {
        assert!(parse("[1]").is_err());
    }
}
