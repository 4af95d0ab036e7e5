//! Limits on hand-written documents read from the repository (manifests,
//! prompts files): their size, and how deep they nest, checked in one linear
//! pass *before* a parser sees them.
//!
//! The YAML parser (libyaml, under `serde_norway`) spends time quadratic in
//! the number of open flow collections: 100,000 nested `[` took over 30 s,
//! although `serde_norway` refuses more than 128 levels once it has parsed
//! them all. So the text is measured first. The measure counts every `[`
//! and `{` that is not yet closed, inside strings and comments too: it can
//! only overestimate, and no declaration comes close to the limit.

use std::io::Read;
use std::path::Path;

/// The largest document read, in bytes (16 MiB).
pub const MAX_DOCUMENT_BYTES: u64 = 16 << 20;

/// The most `inputs` one artifact may declare.
pub const MAX_INPUTS: usize = 64;

/// The most files the `inputs` of one artifact may hold, directories
/// counted with everything below them.
pub const MAX_INPUT_FILES: usize = 1024;

/// The most bytes the `inputs` of one artifact may hold together (16 MiB).
pub const MAX_INPUT_BYTES: u64 = 16 << 20;

/// The deepest nesting of `[` and `{` accepted (as `serde_json`'s own limit).
pub const MAX_NESTING: usize = 128;

/// Refuses text whose `[`/`{` nesting exceeds [`MAX_NESTING`]; says where.
pub fn check_nesting(text: &str) -> Result<(), String> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let (mut line, mut line_start) = (1usize, 0usize);
    // Bytes, not characters: the brackets and `\n` are ASCII, which never
    // occurs inside a multi-byte UTF-8 character, and a manifest is read
    // on every run: eight bytes at a time are skipped when none of them
    // matters. Columns are counted in characters, on error only.
    let mut at = 0;
    while at < bytes.len() {
        if let Some(word) = bytes.get(at..at + 8)
            && !matters(u64::from_le_bytes(word.try_into().expect("eight bytes")))
        {
            at += 8;
            continue;
        }
        match bytes[at] {
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    let column = text[line_start..=at].chars().count();
                    return Err(format!(
                        "nests deeper than {MAX_NESTING} levels of `[` and `{{` at line {line}, column {column} (brackets inside strings count too)"
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'\n' => (line, line_start) = (line + 1, at + 1),
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

/// Whether one of the eight bytes of `word` is a bracket or a newline.
fn matters(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Some byte of `v` is zero (the classic bit trick, exact for "any").
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    // `[` and `{`, `]` and `}` differ only in bit 0x20.
    let folded = word | (ONES * 0x20);
    has_zero(folded ^ (ONES * b'{' as u64))
        || has_zero(folded ^ (ONES * b'}' as u64))
        || has_zero(word ^ (ONES * b'\n' as u64))
}

/// Reads a UTF-8 document of at most [`MAX_DOCUMENT_BYTES`].
pub fn read_document(path: &Path) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_DOCUMENT_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_DOCUMENT_BYTES} bytes"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_before_parsing() {
        assert_eq!(
            check_nesting(&format!("x = {}{}", "[".repeat(128), "]".repeat(128))),
            Ok(())
        );
        // Closed brackets do not add up.
        assert_eq!(check_nesting(&"[]{}".repeat(10_000)), Ok(()));
        let e = check_nesting(&format!("a: 1\nx: {}", "[".repeat(100_000))).unwrap_err();
        assert!(
            e.contains("deeper than 128 levels") && e.contains("line 2, column 132"),
            "{e}"
        );
        // Columns count characters, not bytes.
        let e = check_nesting(&format!("a: 1\n\"é✓\": {}", "{".repeat(129))).unwrap_err();
        assert!(e.contains("line 2, column 135"), "{e}");
    }

    /// The measure as first written, a character at a time.
    fn nesting_by_characters(text: &str) -> Result<(), String> {
        let mut depth = 0usize;
        let (mut line, mut column) = (1usize, 0usize);
        for c in text.chars() {
            column += 1;
            match c {
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Err(format!(
                            "nests deeper than {MAX_NESTING} levels of `[` and `{{` at line {line}, column {column} (brackets inside strings count too)"
                        ));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                '\n' => (line, column) = (line + 1, 0),
                _ => {}
            }
        }
        Ok(())
    }

    proptest::proptest! {
        /// Skipping eight bytes at a time finds what a character at a time
        /// finds, at the same line and column, whatever surrounds it.
        #[test]
        fn nesting_by_words_is_nesting_by_characters(
            parts in proptest::collection::vec(
                proptest::sample::select(vec!["[", "{", "]", "}", "\n", "a", "é", "✓", "{{{{{{{{", "[[[[[[[[", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", " ; ", "\u{7b}\u{5b}\u{fb}\u{db}"]),
                0..400,
            )
        ) {
            let text = parts.concat();
            proptest::prop_assert_eq!(check_nesting(&text), nesting_by_characters(&text));
        }
    }

    #[test]
    fn documents_larger_than_the_cap_are_not_read_whole() {
        // /dev/zero never ends: only the cap stops the read.
        let e = read_document(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }
}
