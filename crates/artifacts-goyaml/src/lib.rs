//! What Go's YAML packages decide about a string before writing it: which
//! styles can show it unchanged (libyaml's `yaml_emitter_analyze_scalar`,
//! which go-yaml v2 and v3 both port). The SOPS emitter (go-yaml v3, as sops
//! writes) and `tanka show` (v2 and v3, as tk writes) both need exactly this,
//! so it lives once, here.
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
