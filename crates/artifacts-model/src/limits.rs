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
    }

    #[test]
    fn documents_larger_than_the_cap_are_not_read_whole() {
        // /dev/zero never ends: only the cap stops the read.
        let e = read_document(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }
}
