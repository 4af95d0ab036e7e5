//! Printing Kubernetes objects as a YAML stream, byte for byte as `tk show`
//! does: one document per object, `---` between documents, written by
//! [`crate::goyaml`] in the manner of Go's yaml.v2 encoder.

use serde_json::{Map, Value};

/// The objects as a YAML stream: documents separated by `---` lines.
pub fn stream(objects: Vec<Map<String, Value>>) -> Result<String, String> {
    let docs: Vec<Value> = objects.into_iter().map(Value::Object).collect();
    crate::goyaml::stream(&docs)
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
        // Go-yaml's key order, tk's separators.
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
