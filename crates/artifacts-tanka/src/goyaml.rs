//! YAML exactly as tanka writes it, for JSON values: `tk show` prints
//! objects with Go's `gopkg.in/yaml.v2` (2.4.0) encoder, and the native
//! `manifestYamlFromJson` uses `gopkg.in/yaml.v3` (3.0.1). Both are ports of
//! libyaml's emitter; this module reimplements, from their behaviour, the
//! part JSON data reaches:
//!
//! - map keys in Go-yaml's "natural" order (digit runs compared as numbers,
//!   letters before other characters);
//! - numbers as Go's `strconv.FormatFloat(f, 'g', -1, 64)` (`1e+06`), since
//!   tanka decodes JSON numbers into `float64`;
//! - strings plain when they would read back as strings, double-quoted when
//!   they would read as something else (`"true"`, `"8080"`, `"2024-01-02"`,
//!   `"y"`), `|`-literal blocks when they hold a newline; libyaml's own
//!   analysis then picks single or double quotes where plain or literal
//!   text is impossible, escapes what is not printable, and wraps long
//!   lines at 80 columns;
//! - v2: indent 2, sequences in mappings not indented; v3: indent 4,
//!   sequences indented, the first level inside `- ` at 2.
//!
//! What cannot be reproduced with certainty (ordering keys by non-ASCII
//! letters or digits, which depends on Unicode tables) is refused with a
//! message starting with [`crate::process::UNSUPPORTED`].

use artifacts_goyaml::{Tabs, analyze, is_break, is_printable, yaml_style_float};
use serde_json::{Map, Value};

use crate::process::UNSUPPORTED;

/// Which Go encoder to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `gopkg.in/yaml.v2`: `tk show`.
    V2,
    /// `gopkg.in/yaml.v3`: `std.native('manifestYamlFromJson')`.
    V3,
}

/// One document as `yaml.Marshal` writes it.
pub fn marshal(v: &Value, flavor: Flavor) -> Result<String, String> {
    let mut e = Emitter::new(flavor);
    e.document(v, true)?;
    Ok(e.out)
}

/// Several documents as a yaml.v2 `Encoder` writes them one after another
/// (`---` between documents), which is what `tk show` prints.
pub fn stream<'a>(docs: impl IntoIterator<Item = &'a Value>) -> Result<String, String> {
    let mut e = Emitter::new(Flavor::V2);
    for (i, d) in docs.into_iter().enumerate() {
        e.document(d, i == 0)?;
    }
    Ok(e.out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

/// The state the parent pushed before emitting a node (only the sequence
/// item state changes yaml.v3's indentation).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parent {
    SeqItem,
    Other,
}

/// How go-yaml `flavor` counts tabs when choosing a style.
fn tabs(flavor: Flavor) -> Tabs {
    match flavor {
        Flavor::V2 => Tabs::Special,
        Flavor::V3 => Tabs::Allowed,
    }
}

struct Emitter {
    out: String,
    flavor: Flavor,
    best_indent: i32,
    best_width: i32,
    column: i32,
    indent: i32,
    indents: Vec<i32>,
    whitespace: bool,
    indention: bool,
    flow_level: i32,
    mapping_context: bool,
    simple_key_context: bool,
}

impl Emitter {
    fn new(flavor: Flavor) -> Emitter {
        Emitter {
            out: String::new(),
            flavor,
            best_indent: if flavor == Flavor::V3 { 4 } else { 2 },
            best_width: 80,
            column: 0,
            indent: -1,
            indents: Vec::new(),
            whitespace: true,
            indention: true,
            flow_level: 0,
            mapping_context: false,
            simple_key_context: false,
        }
    }

    fn v3(&self) -> bool {
        self.flavor == Flavor::V3
    }

    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
        if self.v3() {
            self.indention = true;
        }
    }

    fn write(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn write_break(&mut self, c: char) {
        if c == '\n' {
            self.put_break();
        } else {
            self.write(c);
            self.column = 0;
            if self.v3() {
                self.indention = true;
            }
        }
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0);
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        if !self.v3() {
            self.indention = true;
        }
    }

    fn write_indicator(
        &mut self,
        indicator: &str,
        need_whitespace: bool,
        is_whitespace: bool,
        is_indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        for c in indicator.chars() {
            self.write(c);
        }
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool, parent: Parent) {
        self.indents.push(self.indent);
        if self.indent < 0 {
            self.indent = if flow { self.best_indent } else { 0 };
        } else if !indentless {
            if !self.v3() {
                self.indent += self.best_indent;
            } else if parent == Parent::SeqItem {
                self.indent += 2;
            } else {
                self.indent =
                    self.best_indent * ((self.indent + self.best_indent) / self.best_indent);
            }
        }
    }

    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().unwrap_or(-1);
    }

    fn document(&mut self, v: &Value, first: bool) -> Result<(), String> {
        if !first {
            self.write_indent();
            self.write_indicator("---", true, false, false);
            if self.v3() {
                self.write_indent();
            }
        }
        self.node(v, false, false, Parent::Other)?;
        self.write_indent();
        Ok(())
    }

    fn node(
        &mut self,
        v: &Value,
        mapping: bool,
        simple_key: bool,
        parent: Parent,
    ) -> Result<(), String> {
        self.mapping_context = mapping;
        self.simple_key_context = simple_key;
        match v {
            Value::Null => self.scalar("null", Style::Plain, parent),
            Value::Bool(b) => self.scalar(if *b { "true" } else { "false" }, Style::Plain, parent),
            Value::Number(n) => {
                let f = n.as_f64().ok_or("a number that is not a float64")?;
                self.scalar(&go_float(f), Style::Plain, parent)
            }
            Value::String(s) => {
                let style = if s.contains('\n') {
                    Style::Literal
                } else if resolves_to_string(s) {
                    Style::Plain
                } else {
                    Style::Double
                };
                self.scalar(s, style, parent)
            }
            Value::Array(items) if items.is_empty() => {
                self.flow_empty("[", "]", parent);
                Ok(())
            }
            Value::Object(m) if m.is_empty() => {
                self.flow_empty("{", "}", parent);
                Ok(())
            }
            Value::Array(items) => {
                let indentless = !self.v3() && self.mapping_context && !self.indention;
                self.increase_indent(false, indentless, parent);
                for item in items {
                    self.write_indent();
                    self.write_indicator("-", true, false, true);
                    self.node(item, false, false, Parent::SeqItem)?;
                }
                self.pop_indent();
                Ok(())
            }
            Value::Object(m) => {
                let keys = sorted_keys(m, self.flavor)?;
                self.increase_indent(false, false, parent);
                for k in keys {
                    self.write_indent();
                    let key = Value::String(k.clone());
                    // libyaml's simple key: one line, at most 128 bytes.
                    let a = analyze(k, tabs(self.flavor));
                    if !a.multiline && k.len() <= 128 {
                        self.node(&key, true, true, Parent::Other)?;
                        self.write_indicator(":", false, false, false);
                    } else {
                        self.write_indicator("?", true, false, true);
                        self.node(&key, true, false, Parent::Other)?;
                        self.write_indent();
                        self.write_indicator(":", true, false, true);
                    }
                    self.node(&m[k], true, false, Parent::Other)?;
                }
                self.pop_indent();
                Ok(())
            }
        }
    }

    fn flow_empty(&mut self, open: &str, close: &str, parent: Parent) {
        self.write_indicator(open, true, true, false);
        self.increase_indent(true, false, parent);
        self.pop_indent();
        self.write_indicator(close, false, false, false);
    }

    fn scalar(&mut self, value: &str, style: Style, parent: Parent) -> Result<(), String> {
        let a = analyze(value, tabs(self.flavor));
        let mut style = style;
        if self.simple_key_context && a.multiline {
            style = Style::Double;
        }
        if style == Style::Plain {
            if (self.flow_level > 0 && !a.flow_plain) || (self.flow_level == 0 && !a.block_plain) {
                style = Style::Single;
            }
            if value.is_empty() && (self.flow_level > 0 || self.simple_key_context) {
                style = Style::Single;
            }
        }
        if style == Style::Single && !a.single {
            style = Style::Double;
        }
        if style == Style::Literal && (!a.block || self.flow_level > 0 || self.simple_key_context) {
            style = Style::Double;
        }
        self.increase_indent(true, false, parent);
        let allow_breaks = !self.simple_key_context;
        match style {
            Style::Plain => self.write_plain(value, allow_breaks),
            Style::Single => self.write_single(value, allow_breaks),
            Style::Double => self.write_double(value, allow_breaks),
            Style::Literal => self.write_literal(value),
        }
        self.pop_indent();
        Ok(())
    }

    fn write_plain(&mut self, value: &str, allow_breaks: bool) {
        if !self.whitespace && (!self.v3() || !value.is_empty()) {
            self.put(' ');
        }
        let chars: Vec<char> = value.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let next_space = chars.get(i + 1) == Some(&' ');
                if allow_breaks && !spaces && self.column > self.best_width && !next_space {
                    self.write_indent();
                } else {
                    self.write(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.write(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn write_single(&mut self, value: &str, allow_breaks: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = value.chars().collect();
        let n = chars.len();
        let (mut spaces, mut breaks) = (false, false);
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let next_space = chars.get(i + 1) == Some(&' ');
                if allow_breaks
                    && !spaces
                    && self.column > self.best_width
                    && i > 0
                    && i + 1 < n
                    && !next_space
                {
                    self.write_indent();
                } else {
                    self.write(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                if c == '\'' {
                    self.put('\'');
                }
                self.write(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.write_indicator("'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_double(&mut self, value: &str, allow_breaks: bool) {
        // libyaml tests for a byte order mark at the start of the value,
        // whatever the position: then every character is escaped.
        let bom = value.starts_with('\u{FEFF}');
        let mut spaces = false;
        self.write_indicator("\"", true, false, false);
        let chars: Vec<char> = value.chars().collect();
        let n = chars.len();
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || bom || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                match c {
                    '\0' => self.put('0'),
                    '\u{7}' => self.put('a'),
                    '\u{8}' => self.put('b'),
                    '\t' => self.put('t'),
                    '\n' => self.put('n'),
                    '\u{b}' => self.put('v'),
                    '\u{c}' => self.put('f'),
                    '\r' => self.put('r'),
                    '\u{1b}' => self.put('e'),
                    '"' => self.put('"'),
                    '\\' => self.put('\\'),
                    '\u{85}' => self.put('N'),
                    '\u{a0}' => self.put('_'),
                    '\u{2028}' => self.put('L'),
                    '\u{2029}' => self.put('P'),
                    _ => {
                        let v = c as u32;
                        let (letter, width) = if v <= 0xFF {
                            ('x', 2)
                        } else if v <= 0xFFFF {
                            ('u', 4)
                        } else {
                            ('U', 8)
                        };
                        self.put(letter);
                        for k in (0..width).rev() {
                            let digit = (v >> (k * 4)) & 0xF;
                            self.put(
                                char::from_digit(digit, 16).map_or('0', |d| d.to_ascii_uppercase()),
                            );
                        }
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks && !spaces && self.column > self.best_width && i > 0 && i + 1 < n {
                    self.write_indent();
                    if chars.get(i + 1) == Some(&' ') {
                        self.put('\\');
                    }
                } else {
                    self.write(c);
                }
                spaces = true;
            } else {
                self.write(c);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_literal(&mut self, value: &str) {
        self.write_indicator("|", true, false, false);
        let chars: Vec<char> = value.chars().collect();
        if chars.first().is_some_and(|&c| c == ' ' || is_break(c)) {
            let hint = char::from_digit(self.best_indent as u32, 10).unwrap_or('2');
            self.write_indicator(&hint.to_string(), false, false, false);
        }
        let chomp = match chars.as_slice() {
            [] => Some("-"),
            [.., last] if !is_break(*last) => Some("-"),
            [_] => Some("+"),
            [.., before, _] if is_break(*before) => Some("+"),
            _ => None,
        };
        if let Some(chomp) = chomp {
            self.write_indicator(chomp, false, false, false);
        }
        if !self.v3() {
            self.put_break();
            self.indention = true;
        }
        self.whitespace = true;
        let mut breaks = true;
        for &c in &chars {
            if is_break(c) {
                self.write_break(c);
                if !self.v3() {
                    self.indention = true;
                }
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.write(c);
                self.indention = false;
                breaks = false;
            }
        }
    }
}

/// The keys of `m` in Go-yaml's order.
fn sorted_keys(m: &Map<String, Value>, flavor: Flavor) -> Result<Vec<&String>, String> {
    let mut keys: Vec<&String> = m.keys().collect();
    let mut problem = None;
    keys.sort_by(|a, b| {
        let ab = key_less(a, b, flavor);
        let ba = key_less(b, a, flavor);
        match (ab, ba) {
            (Some(true), _) => std::cmp::Ordering::Less,
            (_, Some(true)) => std::cmp::Ordering::Greater,
            _ => {
                if a != b {
                    problem = Some(format!(
                        "{UNSUPPORTED}the order of the map keys `{a}` and `{b}`"
                    ));
                }
                std::cmp::Ordering::Equal
            }
        }
    });
    match problem {
        Some(p) => Err(p),
        None => Ok(keys),
    }
}

/// Go's `unicode.IsLetter` and `unicode.IsDigit`, where they can be told
/// without Unicode tables (`None` otherwise): ASCII, the Latin letters of
/// U+00C0..U+024F (every alphabetic character there is a letter), and
/// characters that are neither alphabetic nor numeric.
fn classify(c: char) -> Option<(bool, bool)> {
    if c.is_ascii() {
        Some((c.is_ascii_alphabetic(), c.is_ascii_digit()))
    } else if !c.is_alphabetic() && !c.is_numeric() {
        Some((false, false))
    } else if ('\u{C0}'..='\u{24F}').contains(&c) {
        Some((true, false))
    } else {
        None
    }
}

/// go-yaml's `keyList.Less` for two string keys; `None` when it depends on
/// Unicode classes we cannot reproduce exactly.
fn key_less(a: &str, b: &str, flavor: Flavor) -> Option<bool> {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let digit = |c: char| classify(c).map(|(_, d)| d);
    let mut digits = false;
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            if flavor == Flavor::V3 {
                digits = digit(ar[i])?;
            }
            i += 1;
            continue;
        }
        let (al, _) = classify(ar[i])?;
        let (bl, _) = classify(br[i])?;
        if al && bl {
            return Some(ar[i] < br[i]);
        }
        if al || bl {
            return Some(if flavor == Flavor::V3 && digits {
                al
            } else {
                bl
            });
        }
        let (mut an, mut bn): (i64, i64) = (0, 0);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && digit(ar[j - 1])? {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && digit(ar[ai])? {
            an = an
                .wrapping_mul(10)
                .wrapping_add(i64::from(ar[ai] as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && digit(br[bi])? {
            bn = bn
                .wrapping_mul(10)
                .wrapping_add(i64::from(br[bi] as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return Some(an < bn);
        }
        if ai != bi {
            return Some(ai < bi);
        }
        return Some(ar[i] < br[i]);
    }
    Some(ar.len() < br.len())
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`, with go-yaml's spellings
/// of infinity and NaN.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's shortest round-trip digits, as Go's shortest formatting picks them.
    let e = format!("{:e}", f.abs());
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}e{esign}{:02}", exp.abs());
    }
    let dp = exp + 1;
    let nd = digits.len() as i32;
    let body = if dp <= 0 {
        format!("0.{}{digits}", "0".repeat((-dp) as usize))
    } else if dp >= nd {
        format!("{digits}{}", "0".repeat((dp - nd) as usize))
    } else {
        format!("{}.{}", &digits[..dp as usize], &digits[dp as usize..])
    };
    format!("{sign}{body}")
}

/// Whether go-yaml's resolver reads `s`, written plain, back as a string
/// (YAML 1.1 booleans and nulls, numbers in Go's syntaxes, timestamps and
/// base-60 floats do not).
pub fn resolves_to_string(s: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "n", "N", "no",
        "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "", "~", "null", "Null",
        "NULL", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    // The first character picks what the resolver tries at all: a string
    // starting elsewhere (`<<` included) is a string.
    let hint = match s.as_bytes().first() {
        None => b'N',
        Some(b'+' | b'-') => b'S',
        Some(b'0'..=b'9') => b'D',
        Some(b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~') => b'M',
        Some(b'.') => b'.',
        Some(_) => return true,
    };
    if SPECIAL.contains(&s) || is_base60_float(s) {
        return false;
    }
    match hint {
        b'.' => !go_parse_float(s),
        b'S' | b'D' => {
            if parse_timestamp(s) {
                return false;
            }
            let plain: String = s.chars().filter(|&c| c != '_').collect();
            !(go_parse_int(&plain) || (yaml_style_float(&plain) && go_parse_float(&plain)))
        }
        _ => true,
    }
}

/// Whether yaml.v3's decoder reads the plain scalar `s` as something other
/// than a string (its resolver without the output-only rules: YAML 1.1
/// booleans, timestamps and base-60 numbers decode as strings).
fn v3_decodes_as_non_string(s: &str) -> bool {
    const V3_MAP: &[&str] = &[
        "true", "True", "TRUE", "false", "False", "FALSE", "", "~", "null", "Null", "NULL", ".nan",
        ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf",
        "-.INF",
    ];
    match s.as_bytes().first() {
        Some(b'.') => V3_MAP.contains(&s) || go_parse_float(s),
        Some(b'+' | b'-' | b'0'..=b'9') => {
            if parse_timestamp(s) {
                return false;
            }
            let plain: String = s.chars().filter(|&c| c != '_').collect();
            go_parse_int(&plain) || (yaml_style_float(&plain) && go_parse_float(&plain))
        }
        _ => V3_MAP.contains(&s),
    }
}

/// `std.native('parseYaml')` parses with a YAML 1.2 resolver; tanka's
/// yaml.v3 also reads `017` (octal), `1_000` or `0X1F` as numbers.
/// A string of the result that yaml.v3 would have read as a number, and
/// that the text holds unquoted, is refused (the value is not named: it
/// may be a secret).
pub fn check_v3_plain_scalars(text: &str, docs: &[Value]) -> Result<(), String> {
    fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            Value::Object(m) => {
                for (k, v) in m {
                    out.push(k);
                    strings(v, out);
                }
            }
            _ => {}
        }
    }
    let mut all = Vec::new();
    docs.iter().for_each(|d| strings(d, &mut all));
    let unquoted = |s: &str| {
        text.match_indices(s).any(|(i, _)| {
            let before = text[..i].chars().next_back();
            let after = text[i + s.len()..].chars().next();
            before.is_none_or(|c| c.is_whitespace() || matches!(c, ':' | '-' | '[' | '{' | ','))
                && after
                    .is_none_or(|c| c.is_whitespace() || matches!(c, ':' | ',' | ']' | '}' | '#'))
        })
    };
    if all
        .into_iter()
        .any(|s| v3_decodes_as_non_string(s) && unquoted(s))
    {
        return Err(format!(
            "{UNSUPPORTED}parseYaml of a plain scalar that tanka's yaml.v3 reads as a number (leading zeros, `_`, or an upper-case base prefix); quote it"
        ));
    }
    Ok(())
}

/// `strconv.ParseInt(s, 0, 64)` or `strconv.ParseUint(s, 0, 64)` succeeds
/// (underscores already removed).
fn go_parse_int(s: &str) -> bool {
    artifacts_goyaml::go_parse_int(s).is_some() || artifacts_goyaml::go_parse_uint(s).is_some()
}

/// `strconv.ParseFloat(s, 64)` succeeds, for the strings that reach it
/// here (decimal syntax; no hexadecimal float starts with `.` or passes
/// [`yaml_style_float`]). Overflow is an error in Go.
fn go_parse_float(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return true;
    }
    if !underscores_ok(body) {
        return false;
    }
    let plain: String = body.chars().filter(|&c| c != '_').collect();
    if !yaml_style_float(&plain) {
        return false;
    }
    plain.parse::<f64>().is_ok_and(f64::is_finite)
}

/// Go's rule: underscores only between digits.
fn underscores_ok(s: &str) -> bool {
    let mut saw = '^';
    for c in s.chars() {
        if c.is_ascii_digit() {
            saw = '0';
        } else if c == '_' {
            if saw != '0' {
                return false;
            }
            saw = '_';
        } else {
            if saw == '_' {
                return false;
            }
            saw = '!';
        }
    }
    saw != '_'
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`
fn is_base60_float(s: &str) -> bool {
    let b = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !b.starts_with(|c: char| c.is_ascii_digit()) || !b.contains(':') {
        return false;
    }
    let (main, frac) = match b.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (b, None),
    };
    if frac.is_some_and(|f| !f.chars().all(|c| c.is_ascii_digit() || c == '_')) {
        return false;
    }
    let mut parts = main.split(':');
    let first = parts.next().unwrap_or("");
    if !first.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return false;
    }
    let mut any = false;
    for p in parts {
        any = true;
        let ok = match p.as_bytes() {
            [d] => d.is_ascii_digit(),
            [a, d] => (b'0'..=b'5').contains(a) && d.is_ascii_digit(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    any
}

/// go-yaml's `parseTimestamp`: four digits and `-`, then one of Go's
/// layouts `2006-1-2T15:4:5.999999999Z07:00` (also with `t`),
/// `2006-1-2 15:4:5.999999999` or `2006-1-2`, with Go's range checks.
pub fn parse_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let year: i32 = s[..4].parse().unwrap_or(0);
    let mut p = Parser { b, i: 5 };
    let Some(month) = p.num() else { return false };
    if !p.eat(b'-') {
        return false;
    }
    let Some(day) = p.num() else { return false };
    if !(1..=12).contains(&month) || day < 1 || day > days_in(month, year) {
        return false;
    }
    if p.done() {
        return true;
    }
    let zoned = match b[p.i] {
        b'T' | b't' => true,
        b' ' => false,
        _ => return false,
    };
    p.i += 1;
    let Some(hour) = p.num() else { return false };
    if !p.eat(b':') {
        return false;
    }
    let Some(minute) = p.num() else { return false };
    if !p.eat(b':') {
        return false;
    }
    let Some(second) = p.num() else { return false };
    if hour >= 24 || minute >= 60 || second >= 60 {
        return false;
    }
    // An optional fraction: `.` or `,` and digits.
    if p.i + 1 < b.len() && matches!(b[p.i], b'.' | b',') && b[p.i + 1].is_ascii_digit() {
        p.i += 1;
        while p.i < b.len() && b[p.i].is_ascii_digit() {
            p.i += 1;
        }
    }
    if !zoned {
        return p.done();
    }
    match &b[p.i..] {
        [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit())
                && (h1 - b'0') * 10 + (h2 - b'0') <= 24
                && (m1 - b'0') * 10 + (m2 - b'0') <= 60
        }
        _ => false,
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    /// Go's non-fixed `getnum`: one or two digits.
    fn num(&mut self) -> Option<u32> {
        let d1 = *self.b.get(self.i).filter(|c| c.is_ascii_digit())?;
        self.i += 1;
        match self.b.get(self.i).filter(|c| c.is_ascii_digit()) {
            Some(d2) => {
                self.i += 1;
                Some(u32::from(d1 - b'0') * 10 + u32::from(d2 - b'0'))
            }
            None => Some(u32::from(d1 - b'0')),
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn done(&self) -> bool {
        self.i == self.b.len()
    }
}

fn days_in(month: u32, year: i32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Go's `json.Indent(dst, bytes.TrimSpace(src), "", indent)` plus a
/// newline, as tanka's `manifestJsonFromJson` does: the text's own key
/// order, number spellings and escapes are kept; only whitespace changes.
pub fn json_indent(src: &str, indent: &str) -> Result<String, String> {
    // Validate first: json.Indent fails on anything that is not one value.
    serde_json::from_str::<serde::de::IgnoredAny>(
        src.trim_matches(|c: char| c.is_ascii_whitespace()),
    )
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    let mut depth = 0usize;
    let mut need_indent = false;
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(indent);
        }
    };
    for c in src.trim_matches(|c: char| c.is_ascii_whitespace()).chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        if need_indent && c != ']' && c != '}' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                need_indent = true;
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => {
                out.push(c);
                out.push(' ');
            }
            '}' | ']' => {
                if need_indent {
                    // An empty object or array stays `{}` / `[]`.
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_as_go_formats_them() {
        for (f, s) in [
            (1.0, "1"),
            (80.0, "80"),
            (100000.0, "100000"),
            (1000000.0, "1e+06"),
            (123456789.0, "1.23456789e+08"),
            (0.5, "0.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (1e21, "1e+21"),
            (1.5e300, "1.5e+300"),
        ] {
            assert_eq!(go_float(f), s, "{f}");
        }
    }

    #[test]
    fn strings_that_read_as_other_types_are_quoted() {
        for s in [
            "true",
            "yes",
            "y",
            "N",
            "off",
            "null",
            "~",
            "",
            "8080",
            "0x1F",
            "0o17",
            "017",
            "1_000",
            "1_",
            "1.5",
            ".5",
            "1e3",
            "-1",
            "+1",
            "2024-01-02",
            "2024-1-2T10:00:00Z",
            "2001-12-14 21:59:43.10",
            "1:20",
            "-.inf",
            "18446744073709551615",
            // too big for an integer, still a float
            "18446744073709551616",
            "+18446744073709551615",
        ] {
            assert!(!resolves_to_string(s), "{s}");
        }
        for s in [
            "hello",
            "1.2.3",
            "v1",
            "2024-13-01",
            "2023-02-29",
            "1e999",
            "0x",
            "-",
            "._5",
            "1:60",
            "2024-01-02x",
            // no resolver hint for `<`: the merge key stays plain
            "<<",
        ] {
            assert!(resolves_to_string(s), "{s}");
        }
    }

    #[test]
    fn v2_block_layout() {
        let v = json!({
            "b": [1, {"x": "y", "z": []}, [2, 3]],
            "a": {"k": "multi\nline\n", "e": {}, "s": "yes", "q": "it's: here"},
            "a10": 1, "a9": 2,
        });
        assert_eq!(
            marshal(&v, Flavor::V2).unwrap(),
            "a:\n  e: {}\n  k: |\n    multi\n    line\n  q: 'it''s: here'\n  s: \"yes\"\na9: 2\na10: 1\nb:\n- 1\n- x: \"y\"\n  z: []\n- - 2\n  - 3\n"
        );
    }

    #[test]
    fn v3_indents_sequences_by_four() {
        let v = json!({"a": [{"b": 1, "c": [1, 2]}], "d": {"e": "f"}});
        assert_eq!(
            marshal(&v, Flavor::V3).unwrap(),
            "a:\n    - b: 1\n      c:\n        - 1\n        - 2\nd:\n    e: f\n"
        );
    }

    #[test]
    fn long_lines_wrap_at_80_columns() {
        let words = "word ".repeat(30);
        let v = json!({"k": words.trim_end()});
        let out = marshal(&v, Flavor::V2).unwrap();
        assert!(out.lines().count() > 1, "{out}");
        assert!(
            out.lines().skip(1).all(|l| l.starts_with("  word")),
            "{out}"
        );
    }

    #[test]
    fn double_quotes_escape_what_is_not_printable() {
        let v = json!({"k": "tab\there 😀 ü"});
        assert_eq!(
            marshal(&v, Flavor::V2).unwrap(),
            "k: \"tab\\there \\U0001F600 ü\"\n"
        );
    }

    #[test]
    fn plain_scalars_yaml_v3_reads_as_numbers_are_refused() {
        let check = |text: &str| {
            let docs = crate::natives::yaml_documents(text).unwrap();
            check_v3_plain_scalars(text, &docs)
        };
        for text in ["a: 017\n", "a: 1_000\n", "- 0X1F\n", "017: a\n"] {
            let e = check(text).unwrap_err();
            assert!(
                e.starts_with(UNSUPPORTED) && !e.contains("017"),
                "{text}: {e}"
            );
        }
        for text in [
            "a: '017'\n",
            "a: \"1_000\"\n",
            "a: 17\n",
            "a: yes\n",
            "a: 2024-01-02\n",
            "a: x017\n",
        ] {
            assert!(check(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn json_indent_keeps_order_and_spelling() {
        assert_eq!(
            json_indent(" {\"b\":1.0,\"a\":[],\"c\":{\"d\":[1,\"\\u00e9\"]}} ", "  ").unwrap(),
            "{\n  \"b\": 1.0,\n  \"a\": [],\n  \"c\": {\n    \"d\": [\n      1,\n      \"\\u00e9\"\n    ]\n  }\n}\n"
        );
        assert_eq!(json_indent("[1,2]", "").unwrap(), "[\n1,\n2\n]\n");
        assert!(json_indent("{", "  ").is_err());
    }
}
