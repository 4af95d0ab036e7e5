//! The emitter: sops' tree written the way go-yaml v3 lays it out, with
//! sops' indent of 4, so files we write look like files sops writes.

use super::super::tree::{Entry, Item, Map, Value, go_format_g};
use artifacts_goyaml::{Tabs, analyze, is_printable};

use super::is_break;
use super::scalar::{Plain, is_base60_float, is_old_bool, resolve_plain};

const BEST_INDENT: usize = 4;

/// go-yaml v3 aligns nested block nodes to the next multiple of the indent.
fn next_indent(indent: usize) -> usize {
    BEST_INDENT * ((indent + BEST_INDENT) / BEST_INDENT)
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

/// Whether go-yaml would quote this string to keep it a string.
fn needs_type_quotes(s: &str) -> bool {
    resolve_plain(s) != Plain::Str || is_old_bool(s) || is_base60_float(s)
}

fn choose_style(s: &str, key: bool) -> Style {
    let requested = if needs_type_quotes(s) {
        Style::Double
    } else if s.contains('\n') {
        Style::Literal
    } else {
        Style::Plain
    };
    let a = analyze(s, Tabs::Allowed);
    let mut style = requested;
    if style == Style::Plain && (!a.block_plain || (s.is_empty() && key)) {
        style = Style::Single;
    }
    if style == Style::Single && !a.single {
        style = Style::Double;
    }
    if style == Style::Literal && (!a.block || key) {
        style = Style::Double;
    }
    style
}

fn write_double(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\0' => out.push_str("\\0"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\x0B' => out.push_str("\\v"),
            '\x0C' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\x1B' => out.push_str("\\e"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{85}' => out.push_str("\\N"),
            '\u{A0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if is_printable(c) => out.push(c),
            c => {
                let u = c as u32;
                if u <= 0xFF {
                    out.push_str(&format!("\\x{u:02X}"));
                } else if u <= 0xFFFF {
                    out.push_str(&format!("\\u{u:04X}"));
                } else {
                    out.push_str(&format!("\\U{u:08X}"));
                }
            }
        }
    }
    out.push('"');
}

/// Writes a single-quoted scalar. Only LS and PS line breaks can reach
/// here (a `\n` selects another style); like go-yaml, the text after one
/// continues at `content_indent` (readers drop that indentation).
fn write_single(out: &mut String, s: &str, content_indent: usize) {
    out.push('\'');
    let mut after_break = false;
    for c in s.chars() {
        if after_break && !is_break(c) {
            out.push_str(&" ".repeat(content_indent));
        }
        after_break = is_break(c);
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
}

/// Writes a literal block scalar (`|`, `|-`, `|+`, with an indentation
/// indicator when the text starts with a space or a break).
fn write_literal(out: &mut String, s: &str, content_indent: usize, parent_indent: usize) {
    out.push('|');
    let mut rev = s.chars().rev();
    if s.starts_with(|c| c == ' ' || is_break(c)) {
        out.push_str(&(content_indent - parent_indent).to_string());
    }
    // Chomping as libyaml decides it: any line break counts, not only `\n`.
    match (rev.next(), rev.next()) {
        (Some(last), _) if !is_break(last) => out.push('-'),
        (Some(_), None) => out.push('+'),
        (Some(_), Some(prev)) if is_break(prev) => out.push('+'),
        _ => {}
    }
    out.push('\n');
    // Every line break (LS and PS too) starts a line that gets indented;
    // `\n` is written as a newline, the others as themselves.
    let mut at_line_start = true;
    for c in s.chars() {
        if is_break(c) {
            out.push(c);
            at_line_start = true;
        } else {
            if at_line_start {
                out.push_str(&" ".repeat(content_indent));
                at_line_start = false;
            }
            out.push(c);
        }
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
}

fn scalar_text(v: &Value) -> Option<(String, bool)> {
    // (text, is_string)
    Some(match v {
        Value::Null => ("null".into(), false),
        Value::Bool(b) => (b.to_string(), false),
        Value::Int(i) => (i.to_string(), false),
        Value::Float(f) => {
            let s = go_format_g(*f);
            let s = match s.as_str() {
                "+Inf" => ".inf".into(),
                "-Inf" => "-.inf".into(),
                "NaN" => ".nan".into(),
                _ => s,
            };
            (s, false)
        }
        Value::Time(t) => (t.clone(), false),
        Value::Str(s) => (s.clone(), true),
        Value::Bytes(b) => (String::from_utf8_lossy(b).into_owned(), true),
        Value::Map(_) | Value::Seq(_) => return None,
    })
}

/// Writes a scalar value that follows `key:` or `- ` (a space is already
/// there). `indent` is where nested content would go for block scalars.
fn write_scalar(out: &mut String, v: &Value, content_indent: usize, parent_indent: usize) {
    let Some((text, is_str)) = scalar_text(v) else {
        return;
    };
    if !is_str {
        out.push_str(&text);
        out.push('\n');
        return;
    }
    match choose_style(&text, false) {
        Style::Plain => out.push_str(&text),
        Style::Single => write_single(out, &text, content_indent),
        Style::Double => write_double(out, &text),
        Style::Literal => {
            write_literal(out, &text, content_indent, parent_indent);
            return;
        }
    }
    out.push('\n');
}

fn write_key(out: &mut String, k: &str) {
    match choose_style(k, true) {
        Style::Plain => out.push_str(k),
        Style::Single => write_single(out, k, 0),
        _ => write_double(out, k),
    }
}

/// Writes a comment line. Comments read from YAML never hold a line break,
/// but a decrypted one can; each of its lines becomes a comment of its own so
/// its text cannot turn into YAML content.
fn write_comment(out: &mut String, indent: usize, c: &str) {
    for line in c.replace("\r\n", "\n").split(is_break) {
        out.push_str(&" ".repeat(indent));
        out.push('#');
        out.push_str(line);
        out.push('\n');
    }
}

/// Writes mapping entries whose keys sit at column `indent`. When `inline`,
/// the cursor is already at that column (after `- `) for the first entry.
fn write_map(out: &mut String, m: &Map, indent: usize, mut inline: bool) {
    for e in &m.0 {
        match e {
            Entry::Comment(c) => {
                if inline {
                    // A comment cannot follow `- ` on the same line.
                    out.push('\n');
                    inline = false;
                }
                write_comment(out, indent, c);
            }
            Entry::Pair(k, v) => {
                if !inline {
                    out.push_str(&" ".repeat(indent));
                }
                inline = false;
                if is_simple_key(k) {
                    write_key(out, k);
                    out.push(':');
                    write_value_after_key(out, v, indent);
                } else {
                    write_complex_pair(out, k, v, indent);
                }
            }
        }
    }
}

/// Whether go-yaml writes a key as a simple `key: value`: at most 128 bytes
/// and on one line. YAML parsers (libyaml, go-yaml) refuse simple keys longer
/// than 1024 characters, so longer keys need the `? key` form.
fn is_simple_key(k: &str) -> bool {
    k.len() <= 128 && !k.chars().any(is_break)
}

/// Writes `? key` and `: value` lines, as go-yaml does for long or
/// multi-line keys. The cursor is at column `indent`.
fn write_complex_pair(out: &mut String, k: &str, v: &Value, indent: usize) {
    out.push_str("? ");
    write_scalar(out, &Value::Str(k.to_string()), next_indent(indent), indent);
    out.push_str(&" ".repeat(indent));
    out.push(':');
    let nested = next_indent(indent);
    match v {
        Value::Map(m) if !m.0.is_empty() => {
            out.push_str(&" ".repeat(nested - indent - 1));
            write_map(out, m, nested, true);
        }
        Value::Seq(s) if !s.is_empty() => {
            out.push_str(&" ".repeat(nested - indent - 1));
            write_seq(out, s, nested, true);
        }
        _ => write_value_after_key(out, v, indent),
    }
}

fn write_value_after_key(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Map(m) if m.0.is_empty() => out.push_str(" {}\n"),
        Value::Seq(s) if s.is_empty() => out.push_str(" []\n"),
        Value::Map(m) => {
            out.push('\n');
            write_map(out, m, next_indent(indent), false);
        }
        Value::Seq(s) => {
            out.push('\n');
            write_seq(out, s, next_indent(indent), false);
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar, next_indent(indent), indent);
        }
    }
}

/// Writes list items whose `-` sits at column `indent`.
fn write_seq(out: &mut String, items: &[Item], indent: usize, mut inline: bool) {
    for it in items {
        match it {
            Item::Comment(c) => {
                if inline {
                    out.push('\n');
                    inline = false;
                }
                write_comment(out, indent, c);
            }
            Item::Value(v) => {
                if !inline {
                    out.push_str(&" ".repeat(indent));
                }
                inline = false;
                out.push_str("- ");
                match v {
                    Value::Map(m) if m.0.is_empty() => out.push_str("{}\n"),
                    Value::Seq(s) if s.is_empty() => out.push_str("[]\n"),
                    Value::Map(m) => write_map(out, m, indent + 2, true),
                    Value::Seq(s) => write_seq(out, s, indent + 2, true),
                    scalar => write_scalar(out, scalar, indent + 2, indent),
                }
            }
        }
    }
    // A list that held only comments after an inline start.
    if inline {
        out.push('\n');
    }
}

/// Emits branches as YAML documents separated by `---`, in sops' style.
pub(crate) fn emit(branches: &[&Map]) -> String {
    let mut out = String::new();
    for (i, b) in branches.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        if b.0.is_empty() {
            out.push_str("{}\n");
        } else {
            write_map(&mut out, b, 0, false);
        }
    }
    out
}

/// Emits one value: scalars as their YAML text, collections as a block.
pub(crate) fn emit_value(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Map(m) if !m.0.is_empty() => write_map(&mut out, m, 0, false),
        Value::Seq(s) if !s.is_empty() => write_seq(&mut out, s, 0, false),
        Value::Map(_) => out.push_str("{}\n"),
        Value::Seq(_) => out.push_str("[]\n"),
        scalar => write_scalar(&mut out, scalar, BEST_INDENT, 0),
    }
    out
}
