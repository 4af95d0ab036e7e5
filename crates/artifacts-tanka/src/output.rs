//! Printing Kubernetes objects as a YAML stream, the way `tk show` does:
//! one document per object, keys sorted, documents separated by `---`.

use serde_json::{Map, Value};

/// `v` with the keys of every object sorted (Go's map order).
pub fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// One YAML document (no `---` marker), ending in a newline.
pub fn to_yaml(v: &Value) -> Result<String, String> {
    serde_norway::to_string(v).map_err(|e| format!("failed to write YAML: {e}"))
}

/// The objects as a YAML stream: documents separated by `---` lines.
pub fn stream(objects: Vec<Map<String, Value>>) -> Result<String, String> {
    let mut out = String::new();
    for (i, m) in objects.into_iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml(&sorted(Value::Object(m)))?);
    }
    Ok(out)
}

/// Parses a YAML stream of objects back (for checking `tk`'s output and in tests).
pub fn parse_stream(text: &str) -> Result<Vec<Value>, String> {
    let docs = crate::natives::yaml_documents(text)?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stream_sorts_keys_and_separates_documents() {
        let a = json!({"kind": "A", "apiVersion": "v1", "metadata": {"name": "x", "labels": {"b": "1", "a": "ü"}}});
        let b = json!({"kind": "B", "apiVersion": "v1", "metadata": {"name": "y"}});
        let text = stream(vec![
            a.as_object().unwrap().clone(),
            b.as_object().unwrap().clone(),
        ])
        .unwrap();
        assert!(text.starts_with("apiVersion: v1\nkind: A\n"), "{text}");
        assert_eq!(text.matches("---\n").count(), 1);
        assert_eq!(parse_stream(&text).unwrap(), vec![a, b]);
    }
}
