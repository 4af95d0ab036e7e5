//! Redaction of secret values from text that goes into error messages and
//! stderr (jsonnet errors and traces, `tk`'s stderr, parser messages).
//!
//! A [`Redactor`] knows every string leaf of the decrypted secrets, each line
//! of multi-line values, and the forms a value commonly takes on its way
//! into a message: JSON-escaped (how jsonnet quotes strings in errors),
//! reversed, and base64 (standard and URL-safe, at any alignment inside a
//! longer base64 text). Matching ignores ASCII case, and a value of at least
//! [`PREFIX_LEN`] bytes is also found by any prefix of that length or more
//! (a truncated value, `std.substr`). Each occurrence becomes `<redacted>`.
//! Values shorter than [`MIN_LEN`] bytes are not redacted: replacing `on` or
//! `1` everywhere would make messages unreadable, and such values are not
//! secrets worth the name.

use zeroize::Zeroizing;

/// Shortest value (in bytes, after trimming) that is redacted.
pub const MIN_LEN: usize = 4;

/// The shortest prefix of a value that is redacted on its own, in bytes.
pub const PREFIX_LEN: usize = 10;

/// What replaces a secret value.
pub const REPLACEMENT: &str = "<redacted>";

/// Replaces known secret values in text.
#[derive(Default)]
pub struct Redactor {
    // ASCII-lowercased forms of the values, longest first.
    needles: Vec<Zeroizing<Vec<u8>>>,
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

    /// Adds a value (and its lines, and their escaped, reversed and
    /// base64 forms).
    pub fn add(&mut self, value: &str) {
        let mut push = |raw: &str| {
            let s = raw.trim();
            if s.len() < MIN_LEN {
                return;
            }
            let mut forms = vec![
                Zeroizing::new(s.to_string()),
                json_inner(raw),
                Zeroizing::new(s.chars().rev().collect::<String>()),
            ];
            forms.extend(base64_forms(s.as_bytes()));
            if raw != s {
                // `base64 file` encodes the final newline too.
                forms.extend(base64_forms(raw.as_bytes()));
            }
            for form in &forms {
                let lower = Zeroizing::new(form.trim().to_ascii_lowercase().into_bytes());
                if lower.len() >= MIN_LEN && !self.needles.iter().any(|n| **n == *lower) {
                    self.needles.push(lower);
                }
            }
        };
        push(value);
        if value.contains('\n') {
            for line in value.lines() {
                push(line);
            }
        }
    }

    /// Sorts the values longest first; call after the last [`Redactor::add`].
    pub fn finish(&mut self) {
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    /// The byte ranges of `text` that show a known value, merged, in order.
    fn matches(&self, text: &str) -> Vec<(usize, usize)> {
        // ASCII lowercasing keeps every byte offset.
        let lower = text.to_ascii_lowercase();
        let hay = lower.as_bytes();
        let mut found: Vec<(usize, usize)> = Vec::new();
        for needle in &self.needles {
            // A long value is found by any prefix of PREFIX_LEN bytes or
            // more; a shorter one only whole.
            let least = if needle.len() >= PREFIX_LEN {
                PREFIX_LEN
            } else {
                needle.len()
            };
            let mut at = 0;
            while at + least <= hay.len() {
                let Some(offset) = hay[at..].windows(least).position(|w| w == &needle[..least])
                else {
                    break;
                };
                let start = at + offset;
                let mut end = start + least;
                while end < hay.len()
                    && end - start < needle.len()
                    && hay[end] == needle[end - start]
                {
                    end += 1;
                }
                // Whole characters only: a match may stop inside one.
                let mut cut = end;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                if cut > start {
                    found.push((start, cut));
                }
                at = start + 1;
            }
        }
        found.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (start, end) in found {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// Returns `text` with every known value replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut from = 0;
        for (start, end) in self.matches(text) {
            out.push_str(&text[from..start]);
            out.push_str(REPLACEMENT);
            from = end;
        }
        out.push_str(&text[from..]);
        out
    }

    /// Whether `text` contains a known value.
    pub fn leaks(&self, text: &str) -> bool {
        !self.matches(text).is_empty()
    }
}

/// The base64 text a value shows inside longer base64 text, at each of the
/// three byte alignments, standard and URL-safe: only the characters that
/// depend on the value's bytes alone.
fn base64_forms(value: &[u8]) -> Vec<Zeroizing<String>> {
    use base64::Engine;
    let mut out = Vec::new();
    for pad in 0..3 {
        let mut bytes = Zeroizing::new(vec![0u8; pad]);
        bytes.extend_from_slice(value);
        let encoded =
            Zeroizing::new(base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes[..]));
        let first = (8 * pad).div_ceil(6);
        let last = (8 * bytes.len()) / 6;
        if last > first {
            let standard = Zeroizing::new(encoded[first..last].to_string());
            out.push(Zeroizing::new(standard.replace('+', "-").replace('/', "_")));
            out.push(standard);
        }
    }
    out
}

/// `s` as a JSON string literal without the quotes.
fn json_inner(s: &str) -> Zeroizing<String> {
    let quoted = Zeroizing::new(serde_json::Value::String(s.to_string()).to_string());
    Zeroizing::new(quoted[1..quoted.len() - 1].to_string())
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
    fn redacts_prefixes_case_variants_reversed_and_base64_forms() {
        use base64::Engine;
        let secret = "s3cr3t-Token-0123456789";
        let r = Redactor::from_yaml(&format!("api:\n  token: {secret}\n"));
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let url = |s: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let reversed: String = secret.chars().rev().collect();
        for shown in [
            secret.to_string(),
            secret.to_uppercase(),
            secret[..PREFIX_LEN].to_string(),
            secret[..15].to_lowercase(),
            reversed,
            b64(secret.as_bytes()),
            url(secret.as_bytes()),
            // Inside a longer base64 text, at every alignment.
            b64(format!("user:{secret}").as_bytes()),
            b64(format!("ab{secret}cd").as_bytes()),
            b64(format!("a{secret}").as_bytes()),
        ] {
            let text = format!("error near {shown} here");
            assert!(r.leaks(&text), "{shown} not found");
            let out = r.redact(&text);
            assert!(
                out.starts_with("error near ") && out.ends_with(" here"),
                "{out}"
            );
            assert!(out.contains(REPLACEMENT), "{out}");
            assert!(
                !out.to_lowercase()
                    .contains(&secret[..PREFIX_LEN].to_lowercase()),
                "{out}"
            );
        }
        // Short prefixes and unrelated text stay.
        assert_eq!(
            r.redact("s3cr3t-To and other words"),
            "s3cr3t-To and other words"
        );
        // Multi-byte text around a match is cut on character boundaries.
        let r = Redactor::from_yaml("k: päss-wörd-ünicode-value\n");
        assert_eq!(r.redact("«päss-wörd-üx»"), "«<redacted>x»");
    }

    #[test]
    fn unparseable_text_redacts_its_lines() {
        let r = Redactor::from_yaml("key: [unclosed\n  secret-line-1\n");
        assert_eq!(r.redact("... secret-line-1 ..."), "... <redacted> ...");
    }
}
