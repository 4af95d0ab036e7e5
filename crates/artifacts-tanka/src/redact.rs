//! Redaction of secret values from text that goes into error messages and
//! stderr (jsonnet errors and traces, `tk`'s stderr, parser messages).
//!
//! The matching itself (prefixes, case, reversed, JSON-escaped, hex, base64
//! at every alignment) is the workspace's one implementation,
//! [`artifacts_os::redact::Redactor`]; this module only teaches it the values
//! of a decrypted secrets document ([`from_yaml`]).

pub use artifacts_os::redact::{MIN_LEN, PREFIX_LEN, REPLACEMENT, Redactor};

/// A redactor knowing every string leaf of every document of a YAML stream,
/// and each line of multi-line values. Unparseable text still yields its
/// lines as values.
pub fn from_yaml(text: &str) -> Redactor {
    let mut r = Redactor::default();
    let mut parsed_any = false;
    for doc in serde_norway::Deserializer::from_str(text) {
        match <serde_json::Value as serde::Deserialize>::deserialize(doc) {
            Ok(v) => {
                parsed_any = true;
                add_value(&mut r, &v);
            }
            Err(_) => break,
        }
    }
    if !parsed_any {
        for line in text.lines() {
            r.add(line);
        }
    }
    r.finish();
    r
}

fn add_value(r: &mut Redactor, v: &serde_json::Value) {
    match v {
        serde_json::Value::String(s) => r.add(s),
        serde_json::Value::Array(a) => a.iter().for_each(|v| add_value(r, v)),
        serde_json::Value::Object(m) => m.values().for_each(|v| add_value(r, v)),
        // Numbers and booleans are not secret-shaped enough to redact
        // everywhere they might appear (ports, replica counts).
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_values_lines_and_escaped_forms_but_not_short_ones() {
        let r = from_yaml(
            "db:\n  password: hunter2-xyz\n  port: 5432\n  on: yes\ncert: |\n  LINE-ONE-abc\n  LINE-TWO-def\nshort: ab\n",
        );
        assert_eq!(r.redact("pw hunter2-xyz!"), "pw <redacted>!");
        assert_eq!(
            r.redact(r#"got "LINE-ONE-abc\nLINE-TWO-def\n""#),
            r#"got "<redacted>""#
        );
        assert_eq!(r.redact("only LINE-TWO-def here"), "only <redacted> here");
        assert_eq!(r.redact("ab 5432"), "ab 5432");
        assert!(r.leaks("x hunter2-xyz"));
        assert!(!format!("{r:?}").contains("hunter2"));
    }

    #[test]
    fn unparseable_text_redacts_its_lines() {
        let r = from_yaml("key: [unclosed\n  secret-line-1\n");
        assert_eq!(r.redact("... secret-line-1 ..."), "... <redacted> ...");
    }
}
