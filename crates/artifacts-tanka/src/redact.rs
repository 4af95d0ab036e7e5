//! Redaction of secret values from text that goes into error messages and
//! stderr (jsonnet errors and traces, `tk`'s stderr, parser messages).
//!
//! A [`Redactor`] knows every string leaf of the decrypted secrets, each line
//! of multi-line values, and their JSON-escaped forms (how jsonnet quotes
//! strings in errors), and replaces each occurrence with `<redacted>`.
//! Values shorter than [`MIN_LEN`] bytes are not redacted: replacing `on` or
//! `1` everywhere would make messages unreadable, and such values are not
//! secrets worth the name.

use zeroize::Zeroizing;

/// Shortest value (in bytes, after trimming) that is redacted.
pub const MIN_LEN: usize = 4;

/// What replaces a secret value.
pub const REPLACEMENT: &str = "<redacted>";

/// Replaces known secret values in text.
#[derive(Default)]
pub struct Redactor {
    // Longest first, so a value containing another is replaced whole.
    needles: Vec<Zeroizing<String>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.needles.len())
    }
}

impl Redactor {
    /// A redactor that knows no values.
    pub fn none() -> Self {
        Redactor::default()
    }

    /// Collects the scalar values of every document of a YAML stream.
    /// Unparseable text still yields its lines as values.
    pub fn from_yaml(text: &str) -> Self {
        let mut r = Redactor::default();
        let mut parsed_any = false;
        for doc in serde_norway::Deserializer::from_str(text) {
            match <serde_json::Value as serde::Deserialize>::deserialize(doc) {
                Ok(v) => {
                    parsed_any = true;
                    r.add_value(&v);
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

    fn add_value(&mut self, v: &serde_json::Value) {
        match v {
            serde_json::Value::String(s) => self.add(s),
            serde_json::Value::Array(a) => a.iter().for_each(|v| self.add_value(v)),
            serde_json::Value::Object(m) => m.values().for_each(|v| self.add_value(v)),
            // Numbers and booleans are not secret-shaped enough to redact
            // everywhere they might appear (ports, replica counts).
            _ => {}
        }
    }

    /// Adds a value (and its lines and JSON-escaped forms).
    pub fn add(&mut self, value: &str) {
        let mut push = |s: &str| {
            let s = s.trim();
            if s.len() >= MIN_LEN && !self.needles.iter().any(|n| n.as_str() == s) {
                self.needles.push(Zeroizing::new(s.to_string()));
            }
        };
        push(value);
        push(&json_inner(value));
        if value.contains('\n') {
            for line in value.lines() {
                push(line);
                push(&json_inner(line));
            }
        }
    }

    /// Sorts the values longest first; call after the last [`Redactor::add`].
    pub fn finish(&mut self) {
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    /// Returns `text` with every known value replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), REPLACEMENT);
            }
        }
        out
    }

    /// Whether `text` contains a known value.
    pub fn leaks(&self, text: &str) -> bool {
        self.needles.iter().any(|n| text.contains(n.as_str()))
    }
}

/// `s` as a JSON string literal without the quotes.
fn json_inner(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_values_lines_and_escaped_forms_but_not_short_ones() {
        let r = Redactor::from_yaml(
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
        let r = Redactor::from_yaml("key: [unclosed\n  secret-line-1\n");
        assert_eq!(r.redact("... secret-line-1 ..."), "... <redacted> ...");
    }
}
