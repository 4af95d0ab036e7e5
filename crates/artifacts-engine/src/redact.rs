//! Secret values known to this run, kept out of the generator and backend
//! stderr we show in error messages.
//!
//! Global state: the set of known values ([`register`]): every prompt
//! answer once collected, every file a generator left in `$out` (failed or
//! not) and every file a backend's `deserialize` wrote, and a switch
//! ([`show_unredacted`], `--show-stderr`) for people debugging their own
//! generator on their own terminal.
//!
//! A `set -x` generator or a serialize script that prints its inputs would
//! otherwise put a secret into our error text. Each known value is replaced
//! by `<redacted>` in its plain form, upper- and lower-cased, line by line
//! (multi-line values such as PEM keys), and as standard and URL-safe
//! base64 and lower- and upper-case hex. Values shorter than [`MIN_LEN`]
//! bytes are not redacted: replacing `on` or `1` everywhere would make
//! messages unreadable, and they are not secrets worth the name.
//! Other transformations (a reversed value, a prefix of one) are not
//! caught: `--show-stderr` is off by default for that reason too.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use zeroize::Zeroizing;

/// Shortest value (in bytes, after trimming) that is redacted.
pub const MIN_LEN: usize = 4;

/// What replaces a secret value.
pub const REPLACEMENT: &str = "<redacted>";

/// Files larger than this are not read for redaction (generators' limit).
const MAX_FILE: u64 = crate::generator::MAX_FILE_SIZE;

static KNOWN: Mutex<Vec<Zeroizing<String>>> = Mutex::new(Vec::new());
static UNREDACTED: AtomicBool = AtomicBool::new(false);

/// Shows stderr as it is (`--show-stderr`).
pub fn show_unredacted(yes: bool) {
    UNREDACTED.store(yes, Ordering::SeqCst);
}

/// Remembers a secret value and its usual encodings.
pub fn register(value: &[u8]) {
    let mut forms: Vec<Zeroizing<String>> = Vec::new();
    let trimmed = value.trim_ascii();
    for bytes in [value, trimmed] {
        let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(bytes));
        forms.push(Zeroizing::new(b64.trim_end_matches('=').to_owned()));
        forms.push(Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        ));
        let hex = Zeroizing::new(hex::encode(bytes));
        forms.push(Zeroizing::new(hex.to_uppercase()));
        forms.push(hex);
    }
    if let Ok(text) = std::str::from_utf8(trimmed) {
        forms.push(Zeroizing::new(text.to_owned()));
        forms.push(Zeroizing::new(text.to_uppercase()));
        forms.push(Zeroizing::new(text.to_lowercase()));
        forms.extend(text.lines().map(|l| Zeroizing::new(l.trim().to_owned())));
    }
    let Ok(mut known) = KNOWN.lock() else {
        return;
    };
    // Duplicates are dropped when redacting: errors are rare, registrations many.
    known.extend(forms.into_iter().filter(|form| form.len() >= MIN_LEN));
}

/// Registers every regular file up to two levels below `dir` (`$out`,
/// `$in/<artifact>/<file>`), except the names `public` says are not secret.
pub fn register_dir(dir: &Path, public: &dyn Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        if kind.is_dir() {
            register_dir(&entry.path(), &|_| false);
        } else if kind.is_file()
            && !public(&name)
            && entry.metadata().is_ok_and(|m| m.len() <= MAX_FILE)
            && let Ok(bytes) = std::fs::read(entry.path())
        {
            register(&Zeroizing::new(bytes));
        }
    }
}

/// `text` with every known value replaced (unless [`show_unredacted`]).
pub fn redact(text: &str) -> String {
    if UNREDACTED.load(Ordering::SeqCst) {
        return text.to_owned();
    }
    let Ok(known) = KNOWN.lock() else {
        return String::from("<stderr withheld>");
    };
    let mut needles: Vec<&str> = known.iter().map(|n| n.as_str()).collect();
    // Longest first, so a value containing another is replaced whole.
    needles.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    needles.dedup();
    let mut text = text.to_owned();
    for needle in needles {
        if text.contains(needle) {
            text = text.replace(needle, REPLACEMENT);
        }
    }
    text
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
}
