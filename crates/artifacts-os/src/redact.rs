//! Keeping secret values out of what we echo from children: generator and
//! backend stderr, `tk`'s stderr, jsonnet errors and traces.
//!
//! A [`Redactor`] knows a set of values and replaces every occurrence of one
//! by `<redacted>`. It finds a value in the forms it commonly takes on its
//! way into a message: plain, each line of a multi-line value (PEM keys),
//! JSON-escaped (how jsonnet quotes strings in errors), reversed, lower- and
//! upper-case hex, and base64 (standard and URL-safe, whole or at any
//! alignment inside a longer base64 text). Matching ignores ASCII case (and
//! the Unicode upper- and lower-case forms are known too), and a value of at
//! least [`PREFIX_LEN`] bytes is also found by any prefix of that length or
//! more (a truncated value, `std.substr`). Values shorter than [`MIN_LEN`]
//! bytes are not redacted: replacing `on` or `1` everywhere would make
//! messages unreadable, and such values are not secrets worth the name.
//!
//! Global state: one process-wide redactor ([`register`], [`redact`]) that
//! learns every prompt answer once collected, every file a generator left in
//! `$out` (failed or not) and every file a backend's `deserialize` wrote; and
//! a switch ([`show_unredacted`], `--show-stderr`) for people debugging their
//! own generator on their own terminal.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
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
    // ASCII-lowercased forms of the values; sorted and deduplicated by `finish`.
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

    /// Adds a text value (see [`Redactor::add_bytes`]).
    pub fn add(&mut self, value: &str) {
        self.add_bytes(value.as_bytes());
    }

    /// Adds a value, its lines, and their usual forms (see the module doc).
    /// Bytes that are not UTF-8 are still found by their hex and base64 forms.
    pub fn add_bytes(&mut self, value: &[u8]) {
        self.add_one(value);
        if value.contains(&b'\n') {
            for line in value.split(|b| *b == b'\n') {
                self.add_one(line);
            }
        }
    }

    fn add_one(&mut self, raw: &[u8]) {
        let trimmed = raw.trim_ascii();
        if trimmed.len() < MIN_LEN {
            return;
        }
        let mut forms: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut text = |form: String| forms.push(Zeroizing::new(form.into_bytes()));
        for bytes in [trimmed, raw] {
            // `base64 file` encodes the final newline too.
            text(base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes));
            text(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
            text(hex::encode(bytes));
            for form in base64_forms(bytes) {
                text(form.to_string());
            }
        }
        if let Ok(s) = std::str::from_utf8(trimmed) {
            text(s.to_uppercase());
            text(s.to_lowercase());
            text(s.chars().rev().collect());
            text(json_inner(s).to_string());
        }
        if raw != trimmed
            && let Ok(s) = std::str::from_utf8(raw)
        {
            // A quoted multi-line value keeps its escaped final newline.
            text(json_inner(s).to_string());
        }
        forms.push(Zeroizing::new(trimmed.to_vec()));
        for form in &forms {
            let lower = Zeroizing::new(form.trim_ascii().to_ascii_lowercase());
            if lower.len() >= MIN_LEN {
                self.needles.push(lower);
            }
        }
    }

    /// Drops duplicate values; call after the last [`Redactor::add`]
    /// (redacting works without it, only slower).
    pub fn finish(&mut self) {
        self.needles
            .sort_unstable_by(|a, b| b.len().cmp(&a.len()).then_with(|| a[..].cmp(&b[..])));
        self.needles.dedup_by(|a, b| a[..] == b[..]);
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
            let least = needle.len().min(PREFIX_LEN);
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

/// The process-wide redactor, and whether values were added since it was
/// last finished.
static KNOWN: Mutex<(Redactor, bool)> = Mutex::new((
    Redactor {
        needles: Vec::new(),
    },
    false,
));
static UNREDACTED: AtomicBool = AtomicBool::new(false);

/// Shows children's stderr as it is (`--show-stderr`).
pub fn show_unredacted(yes: bool) {
    UNREDACTED.store(yes, Ordering::SeqCst);
}

/// Teaches the process-wide redactor a secret value.
pub fn register(value: &[u8]) {
    if let Ok(mut known) = KNOWN.lock() {
        known.0.add_bytes(value);
        known.1 = true;
    }
}

/// Registers every regular file up to `max_size` bytes below `dir` (`$out`,
/// `$in/<artifact>/<file>`), except the names `public` says are not secret
/// (asked of `dir`'s own entries only).
pub fn register_dir(dir: &Path, max_size: u64, public: &dyn Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        if kind.is_dir() {
            register_dir(&entry.path(), max_size, &|_| false);
        } else if kind.is_file()
            && !public(&name)
            && entry.metadata().is_ok_and(|m| m.len() <= max_size)
            && let Ok(bytes) = std::fs::read(entry.path())
        {
            register(&Zeroizing::new(bytes));
        }
    }
}

/// `text` with every registered value replaced (unless [`show_unredacted`]).
pub fn redact(text: &str) -> String {
    if UNREDACTED.load(Ordering::SeqCst) {
        return text.to_owned();
    }
    let Ok(mut known) = KNOWN.lock() else {
        return String::from("<stderr withheld>");
    };
    if known.1 {
        known.0.finish();
        known.1 = false;
    }
    known.0.redact(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_values_and_their_encodings() {
        let secret = "Hunter2-Redact-Me";
        register(format!("{secret}\n").as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        let text = format!(
            "+ pw={secret}\nupper {}\nlower {}\nb64 {b64}\nhex {}\nHEX {}\nkeep this",
            secret.to_uppercase(),
            secret.to_lowercase(),
            hex::encode(secret),
            hex::encode(secret).to_uppercase(),
        );
        let shown = redact(&text);
        assert!(!shown.contains("Redact-Me"), "{shown}");
        assert!(!shown.to_lowercase().contains("redact-me"), "{shown}");
        assert!(!shown.contains(b64.trim_end_matches('=')), "{shown}");
        assert!(!shown.contains(&hex::encode(secret)), "{shown}");
        assert!(
            !shown.contains(&hex::encode(secret).to_uppercase()),
            "{shown}"
        );
        assert!(shown.contains("+ pw=<redacted>"), "{shown}");
        assert!(shown.contains("keep this"), "{shown}");
    }

    #[test]
    fn multi_line_values_are_redacted_line_by_line_and_short_ones_not_at_all() {
        register(b"-----BEGIN KEY-----\nline-one-secret\nline-two-secret\n-----END KEY-----\n");
        register(b"on");
        let shown = redact("got line-two-secret here; turned on");
        assert_eq!(shown, "got <redacted> here; turned on");
    }

    #[test]
    fn non_utf8_values_are_found_by_their_encodings() {
        let value = [0xff, 0xfe, 0x00, 0x81, 0x42, 0x99, 0xaa];
        let mut r = Redactor::none();
        r.add_bytes(&value);
        r.finish();
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(value);
        assert_eq!(r.redact(&format!("x {b64} y")), "x <redacted> y");
        assert_eq!(
            r.redact(&format!("x {} y", hex::encode_upper(value))),
            "x <redacted> y"
        );
    }

    #[test]
    fn unicode_case_forms_are_redacted() {
        let mut r = Redactor::none();
        r.add("grüße-geheim");
        r.finish();
        assert_eq!(r.redact("a GRÜSSE-GEHEIM b"), "a <redacted> b");
        assert!(!format!("{r:?}").contains("geheim"));
    }

    #[test]
    fn redacts_prefixes_case_variants_reversed_and_base64_forms() {
        let secret = "s3cr3t-Token-0123456789";
        let mut r = Redactor::none();
        r.add(secret);
        r.finish();
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
        let mut r = Redactor::none();
        r.add("päss-wörd-ünicode-value");
        r.finish();
        assert_eq!(r.redact("«päss-wörd-üx»"), "«<redacted>x»");
    }
}
