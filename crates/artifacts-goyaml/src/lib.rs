//! What Go's YAML packages decide about a string before writing it: which
//! styles can show it unchanged (libyaml's `yaml_emitter_analyze_scalar`,
//! which go-yaml v2 and v3 both port), and which plain strings read back as
//! numbers (Go's `strconv` integer syntax, go-yaml's float pattern). The SOPS
//! emitter (go-yaml v3, as sops writes) and `tanka show` (v2 and v3, as tk
//! writes) both need exactly this, so it lives once, here.
//!
//! ```
//! use artifacts_goyaml::{Tabs, analyze};
//!
//! assert!(analyze("plain words", Tabs::Allowed).block_plain);
//! // A leading `- ` reads as a sequence item: not plain.
//! assert!(!analyze("- item", Tabs::Allowed).block_plain);
//! // go-yaml v2 escapes tabs (double quotes); v3 may single-quote them.
//! assert!(!analyze("a\tb", Tabs::Special).single);
//! assert!(analyze("a\tb", Tabs::Allowed).block);
//! ```

/// How tabs count: go-yaml v2 treats a tab like any unprintable character,
/// v3 as a tab (still not plain, but fine in a literal block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tabs {
    /// go-yaml v2.
    Special,
    /// go-yaml v3.
    Allowed,
}

/// Which styles can show a string unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Analysis {
    /// It has a line break.
    pub multiline: bool,
    /// Plain in flow context.
    pub flow_plain: bool,
    /// Plain in block context.
    pub block_plain: bool,
    /// Single-quoted.
    pub single: bool,
    /// A literal or folded block.
    pub block: bool,
}

/// libyaml's line breaks.
pub fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// libyaml's printable set: what it writes unescaped (NEL and the BOM are not).
pub fn is_printable(c: char) -> bool {
    let u = c as u32;
    u == 0x0A
        || (0x20..=0x7E).contains(&u)
        || (0xA0..=0xD7FF).contains(&u)
        || ((0xE000..=0xFFFD).contains(&u) && u != 0xFEFF)
}

/// Blank, a break, NUL, or past the end (libyaml's `IS_BLANKZ`).
fn is_blankz(c: Option<char>) -> bool {
    c.is_none_or(|c| c == ' ' || c == '\t' || is_break(c) || c == '\0')
}

/// Indicators a character sets where it stands.
struct Indicators {
    flow: bool,
    block: bool,
}

fn indicators(c: char, first: bool, preceded_ws: bool, followed_ws: bool) -> Indicators {
    let (flow, block) = if first {
        match c {
            '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%'
            | '@' | '`' => (true, true),
            '?' | ':' => (true, followed_ws),
            '-' if followed_ws => (true, true),
            _ => (false, false),
        }
    } else {
        match c {
            ',' | '?' | '[' | ']' | '{' | '}' => (true, false),
            ':' => (true, followed_ws),
            '#' if preceded_ws => (true, true),
            _ => (false, false),
        }
    };
    Indicators { flow, block }
}

/// The styles that can show `value` unchanged.
pub fn analyze(value: &str, tabs: Tabs) -> Analysis {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    if n == 0 {
        return Analysis {
            multiline: false,
            flow_plain: false,
            block_plain: true,
            single: true,
            block: false,
        };
    }
    let document_marker = value.starts_with("---") || value.starts_with("...");
    let (mut flow_indicators, mut block_indicators) = (document_marker, document_marker);
    let (mut line_breaks, mut special, mut has_tabs) = (false, false, false);
    let (mut leading_space, mut leading_break) = (false, false);
    let (mut trailing_space, mut trailing_break) = (false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_ws = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_ws = is_blankz(chars.get(i + 1).copied());
        let found = indicators(c, i == 0, preceded_ws, followed_ws);
        flow_indicators |= found.flow;
        block_indicators |= found.block;
        if tabs == Tabs::Allowed && c == '\t' {
            has_tabs = true;
        } else if !is_printable(c) {
            special = true;
        }
        let (first, last) = (i == 0, i + 1 == n);
        if c == ' ' {
            leading_space |= first;
            trailing_space |= last;
            break_space |= previous_break;
            (previous_space, previous_break) = (true, false);
        } else if is_break(c) {
            line_breaks = true;
            leading_break |= first;
            trailing_break |= last;
            space_break |= previous_space;
            (previous_space, previous_break) = (false, true);
        } else {
            (previous_space, previous_break) = (false, false);
        }
        preceded_ws = is_blankz(Some(c));
    }
    let edges = leading_space || leading_break || trailing_space || trailing_break;
    let unsafe_single = break_space || space_break || has_tabs || special;
    let plain_ok = !edges && !unsafe_single && !line_breaks;
    Analysis {
        multiline: line_breaks,
        flow_plain: plain_ok && !flow_indicators,
        block_plain: plain_ok && !block_indicators,
        single: !unsafe_single,
        block: !trailing_space && !space_break && !special,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
pub fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(r) = lower.strip_prefix("0x") {
        (16, r)
    } else if let Some(r) = lower.strip_prefix("0o") {
        (8, r)
    } else if let Some(r) = lower.strip_prefix("0b") {
        (2, r)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mag = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        if mag <= (i64::MAX as u64) + 1 {
            Some((mag as i128).wrapping_neg() as i64)
        } else {
            None
        }
    } else {
        i64::try_from(mag).ok()
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)` (no sign; underscores already removed).
pub fn go_parse_uint(s: &str) -> Option<u64> {
    if s.starts_with(['+', '-']) {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let (radix, digits) = if let Some(r) = lower.strip_prefix("0x") {
        (16, r)
    } else if let Some(r) = lower.strip_prefix("0o") {
        (8, r)
    } else if let Some(r) = lower.strip_prefix("0b") {
        (2, r)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// go-yaml's `yamlStyleFloat`:
/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
pub fn yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let st = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - st
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_as_go_strconv_parses_them() {
        assert_eq!(go_parse_int("0x1F"), Some(31));
        assert_eq!(go_parse_int("017"), Some(15));
        assert_eq!(go_parse_int("-0b101"), Some(-5));
        assert_eq!(go_parse_int("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(go_parse_int("9223372036854775808"), None);
        assert_eq!(go_parse_uint("18446744073709551615"), Some(u64::MAX));
        assert_eq!(go_parse_uint("+1"), None);
        for bad in ["", "+", "0x", "08", "1e3", "0x+5", "١"] {
            assert_eq!(go_parse_int(bad), None, "{bad:?}");
            assert_eq!(go_parse_uint(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn floats_follow_go_yamls_pattern() {
        for good in ["1.5", ".5", "-1.", "+2e10", "3E-2", "7"] {
            assert!(yaml_style_float(good), "{good:?}");
        }
        for bad in ["", ".", "e5", "1.5e", "1.2.3", "0x1p3", "1_0.0", ".e1"] {
            assert!(!yaml_style_float(bad), "{bad:?}");
        }
    }

    #[test]
    fn styles_follow_libyaml() {
        let a = analyze("", Tabs::Allowed);
        assert!(a.block_plain && !a.flow_plain && a.single && !a.block);
        assert!(!analyze("a: b", Tabs::Allowed).block_plain);
        assert!(analyze("a:b", Tabs::Allowed).block_plain);
        assert!(!analyze("a:b", Tabs::Allowed).flow_plain);
        assert!(!analyze("trailing ", Tabs::Allowed).block);
        assert!(analyze("two\nlines", Tabs::Allowed).multiline);
        assert!(!analyze("nel\u{85}", Tabs::Special).single);
    }
}
