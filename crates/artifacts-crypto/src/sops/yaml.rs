//! YAML reading and writing for SOPS documents.
//!
//! Reading uses libyaml's event stream (`unsafe-libyaml-norway`, the parser
//! behind `serde_norway`) so that scalar styles (plain or quoted) and source
//! positions survive: positions let us recover comments, which sops keeps and
//! encrypts. Scalars are typed the way go-yaml v3 (inside sops) types them.
//! Writing is our own emitter that follows go-yaml v3's layout with sops'
//! indent of 4, so files we write look like files sops writes.
//!
//! The only `unsafe` code of the crate lives in [`events`].

use std::collections::HashMap;

use zeroize::Zeroize;

use super::tree::{Entry, Item, Map, Value, go_format_g};
use crate::time::parse_yaml_timestamp;

mod events {
    //! A safe wrapper over libyaml's pull parser: the whole input becomes a
    //! vector of owned events with byte offsets.
    use std::ffi::CStr;
    use std::mem::MaybeUninit;
    use unsafe_libyaml_norway as unsafe_yaml;

    pub(super) enum Kind {
        StreamStart,
        StreamEnd,
        DocStart,
        DocEnd,
        Alias(String),
        Scalar {
            anchor: Option<String>,
            tag: Option<String>,
            value: String,
            plain: bool,
        },
        SeqStart {
            anchor: Option<String>,
        },
        SeqEnd,
        MapStart {
            anchor: Option<String>,
        },
        MapEnd,
    }

    pub(super) struct Event {
        pub kind: Kind,
        pub start: usize,
        pub end: usize,
        pub start_col: usize,
    }

    struct ParserGuard(*mut unsafe_yaml::yaml_parser_t);

    impl Drop for ParserGuard {
        fn drop(&mut self) {
            // SAFETY: the parser was initialized by `yaml_parser_initialize`
            // and is deleted exactly once, here.
            unsafe { unsafe_yaml::yaml_parser_delete(self.0) }
        }
    }

    /// # Safety
    /// `ptr` is null or a NUL-terminated string owned by a live event.
    unsafe fn opt_string(ptr: *const u8) -> Option<String> {
        if ptr.is_null() {
            None
        } else {
            // SAFETY: guaranteed by the caller.
            let c = unsafe { CStr::from_ptr(ptr.cast()) };
            Some(String::from_utf8_lossy(c.to_bytes()).into_owned())
        }
    }

    /// Why [`parse`] stopped.
    #[derive(Debug, PartialEq)]
    pub(super) enum Stop {
        /// A syntax error (the caller asks `serde_norway` for a readable
        /// message).
        Syntax,
        /// Collections nest deeper than the limit given.
        TooDeep,
    }

    #[cfg(test)]
    thread_local! {
        /// How many events the last [`parse`] pulled from libyaml.
        pub(super) static PULLED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// Parses `input` into events, stopping as soon as collections nest
    /// deeper than `max_depth`.
    ///
    /// libyaml's scanner checks every pending simple key on every token, and
    /// each open flow collection (`[`, `{`) keeps one pending: 200 KB of `[`
    /// took 30 s and more. Stopping at the depth limit, while the scanner is
    /// at most its look-ahead (1,024 characters) further, bounds that work.
    pub(super) fn parse(input: &[u8], max_depth: usize) -> Result<Vec<Event>, Stop> {
        let mut parser: Box<MaybeUninit<unsafe_yaml::yaml_parser_t>> =
            Box::new(MaybeUninit::uninit());
        let p = parser.as_mut_ptr();
        // SAFETY: `p` points to writable memory for a parser; initialize
        // fills it. The input outlives the parser (both end in this function,
        // the guard is dropped before `input`'s borrow ends).
        unsafe {
            if unsafe_yaml::yaml_parser_initialize(p).fail {
                return Err(Stop::Syntax);
            }
        }
        let _guard = ParserGuard(p);
        // SAFETY: the parser is initialized and has no input yet.
        unsafe {
            unsafe_yaml::yaml_parser_set_encoding(p, unsafe_yaml::YAML_UTF8_ENCODING);
            unsafe_yaml::yaml_parser_set_input_string(p, input.as_ptr(), input.len() as u64);
        }
        let mut out = Vec::new();
        let mut depth = 0usize;
        #[cfg(test)]
        PULLED.with(|n| n.set(0));
        loop {
            let mut ev = MaybeUninit::<unsafe_yaml::yaml_event_t>::uninit();
            let evp = ev.as_mut_ptr();
            #[cfg(test)]
            PULLED.with(|n| n.set(n.get() + 1));
            // SAFETY: the parser is initialized; `evp` is writable event memory.
            if unsafe { unsafe_yaml::yaml_parser_parse(p, evp).fail } {
                return Err(Stop::Syntax);
            }
            // SAFETY: parse succeeded, so the event is initialized; its
            // strings are valid until `yaml_event_delete`.
            let converted = unsafe {
                let e = &*evp;
                let kind = match e.type_ {
                    unsafe_yaml::YAML_STREAM_START_EVENT => Kind::StreamStart,
                    unsafe_yaml::YAML_STREAM_END_EVENT => Kind::StreamEnd,
                    unsafe_yaml::YAML_DOCUMENT_START_EVENT => Kind::DocStart,
                    unsafe_yaml::YAML_DOCUMENT_END_EVENT => Kind::DocEnd,
                    unsafe_yaml::YAML_ALIAS_EVENT => {
                        Kind::Alias(opt_string(e.data.alias.anchor).unwrap_or_default())
                    }
                    unsafe_yaml::YAML_SCALAR_EVENT => {
                        let s = e.data.scalar;
                        let bytes = if s.value.is_null() {
                            &[][..]
                        } else {
                            std::slice::from_raw_parts(s.value, s.length as usize)
                        };
                        Kind::Scalar {
                            anchor: opt_string(s.anchor),
                            tag: opt_string(s.tag),
                            value: String::from_utf8_lossy(bytes).into_owned(),
                            plain: s.style == unsafe_yaml::YAML_PLAIN_SCALAR_STYLE,
                        }
                    }
                    unsafe_yaml::YAML_SEQUENCE_START_EVENT => Kind::SeqStart {
                        anchor: opt_string(e.data.sequence_start.anchor),
                    },
                    unsafe_yaml::YAML_SEQUENCE_END_EVENT => Kind::SeqEnd,
                    unsafe_yaml::YAML_MAPPING_START_EVENT => Kind::MapStart {
                        anchor: opt_string(e.data.mapping_start.anchor),
                    },
                    unsafe_yaml::YAML_MAPPING_END_EVENT => Kind::MapEnd,
                    _ => {
                        unsafe_yaml::yaml_event_delete(evp);
                        return Err(Stop::Syntax);
                    }
                };
                let ev = Event {
                    kind,
                    start: e.start_mark.index as usize,
                    end: e.end_mark.index as usize,
                    start_col: e.start_mark.column as usize,
                };
                unsafe_yaml::yaml_event_delete(evp);
                ev
            };
            match converted.kind {
                Kind::SeqStart { .. } | Kind::MapStart { .. } => {
                    depth += 1;
                    if depth > max_depth {
                        return Err(Stop::TooDeep);
                    }
                }
                Kind::SeqEnd | Kind::MapEnd => depth = depth.saturating_sub(1),
                _ => {}
            }
            let done = matches!(converted.kind, Kind::StreamEnd);
            out.push(converted);
            if done {
                return Ok(out);
            }
        }
    }
}

/// How go-yaml v3 types a plain (unquoted, untagged) scalar.
#[derive(Debug, PartialEq)]
pub(crate) enum Plain {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Time(String),
    Merge,
    Str,
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
fn go_parse_int(s: &str) -> Option<i64> {
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

/// go-yaml's `yamlStyleFloat`:
/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_style_float(s: &str) -> bool {
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

/// Types a plain scalar like go-yaml v3's `resolve`.
pub(crate) fn resolve_plain(s: &str) -> Plain {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "true" | "True" | "TRUE" => return Plain::Bool(true),
        "false" | "False" | "FALSE" => return Plain::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Plain::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Plain::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Plain::Float(f64::NAN),
        "<<" => return Plain::Merge,
        _ => {}
    }
    let first = s.as_bytes()[0];
    match first {
        b'.' => match s.parse::<f64>() {
            Ok(f) if f.is_finite() && yaml_style_float(s) => Plain::Float(f),
            _ => Plain::Str,
        },
        b'0'..=b'9' | b'+' | b'-' => {
            if first.is_ascii_digit()
                && let Some(t) = parse_yaml_timestamp(s)
            {
                return Plain::Time(t);
            }
            let plain = s.replace('_', "");
            if let Some(i) = go_parse_int(&plain) {
                return Plain::Int(i);
            }
            if yaml_style_float(&plain)
                && let Ok(f) = plain.parse::<f64>()
                && f.is_finite()
            {
                return Plain::Float(f);
            }
            Plain::Str
        }
        _ => Plain::Str,
    }
}

/// YAML 1.1 booleans go-yaml still quotes on output.
fn is_old_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "on"
            | "On"
            | "ON"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "off"
            | "Off"
            | "OFF"
    )
}

/// go-yaml's `isBase60Float` (`1:20`), quoted on output for YAML 1.1 readers.
fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    if i >= b.len() || !b[i].is_ascii_digit() {
        return false;
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while i < b.len() && b[i] == b':' {
        i += 1;
        let st = i;
        if i < b.len() && (b'0'..=b'5').contains(&b[i]) {
            i += 1;
        }
        if i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == st || (i - st == 1 && !b[st].is_ascii_digit()) {
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// Why YAML could not be read.
#[derive(Debug)]
pub(crate) struct YamlError(pub String);

fn scalar_value(value: String, plain: bool, tag: Option<&str>) -> Value {
    let tag = tag.map(|t| t.strip_prefix("tag:yaml.org,2002:").unwrap_or(t));
    match tag {
        Some("str") => return Value::Str(value),
        Some("null") => return Value::Null,
        Some("bool" | "int" | "float" | "timestamp") => {
            return match resolve_plain(&value) {
                Plain::Null => Value::Null,
                Plain::Bool(b) => Value::Bool(b),
                Plain::Int(i) => Value::Int(i),
                Plain::Float(f) => Value::Float(f),
                Plain::Time(t) => Value::Time(t),
                Plain::Merge | Plain::Str => Value::Str(value),
            };
        }
        _ => {}
    }
    if !plain {
        return Value::Str(value);
    }
    match resolve_plain(&value) {
        Plain::Null => Value::Null,
        Plain::Bool(b) => Value::Bool(b),
        Plain::Int(i) => Value::Int(i),
        Plain::Float(f) => Value::Float(f),
        Plain::Time(t) => Value::Time(t),
        Plain::Merge | Plain::Str => Value::Str(value),
    }
}

/// Text form of a scalar used as a mapping key.
fn key_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => go_format_g(*f),
        Value::Str(s) | Value::Time(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Map(_) | Value::Seq(_) => return None,
    })
}

struct Comment {
    text: String,
    col: usize,
    same_line: bool,
}

/// Finds `#` comments in text between two events. Nothing but indicators,
/// whitespace and comments can sit there, so every `#` starts a comment. A
/// comment ends at the first line break, which for YAML (and libyaml) is any
/// of `\n`, `\r`, NEL, LS and PS, not only `\n`.
fn gap_comments(src: &str, from: usize, to: usize) -> Vec<Comment> {
    let mut out = Vec::new();
    // libyaml's marks are byte offsets into `src` and fall on character
    // boundaries; anything else would be a bug, and finding no comment is
    // better than a panic.
    if from >= to || to > src.len() || !src.is_char_boundary(from) || !src.is_char_boundary(to) {
        return out;
    }
    let gap = &src[from..to];
    // A block scalar (`|`, `>`) ends after its last line break, so a gap
    // that starts a line is never on the line of the token before it.
    let mut breaks = usize::from(src[..from].ends_with(is_break));
    let mut chars = gap.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if is_break(c) {
            if c == '\r' && matches!(chars.peek(), Some((_, '\n'))) {
                chars.next();
            }
            breaks += 1;
        } else if c == '#' {
            let abs = from + i;
            let line_start = src[..abs]
                .char_indices()
                .rev()
                .find(|&(_, c)| is_break(c))
                .map(|(p, c)| p + c.len_utf8())
                .unwrap_or(0);
            let col = src[line_start..abs].chars().count();
            let end = gap[i..].find(is_break).map(|p| i + p).unwrap_or(gap.len());
            out.push(Comment {
                text: gap[i + 1..end].to_string(),
                col,
                same_line: breaks == 0,
            });
            while chars.next_if(|&(j, _)| j < end).is_some() {}
        }
    }
    out
}

enum Frame {
    Map {
        entries: Vec<Entry>,
        key: Option<String>,
        col: usize,
        anchor: Option<String>,
    },
    Seq {
        items: Vec<Item>,
        col: usize,
        anchor: Option<String>,
    },
}

impl Frame {
    fn col(&self) -> usize {
        match self {
            Frame::Map { col, .. } | Frame::Seq { col, .. } => *col,
        }
    }
    /// Adds a comment at the end, or, for a comment on the same line as
    /// the previous entry (`key: value # c`), before that entry, as sops does.
    fn push_comment(&mut self, c: String, before_last: bool) {
        match self {
            Frame::Map { entries, key, .. } => {
                // With a key pending, the comment trails that key: it goes
                // before its (not yet added) entry, i.e. at the end.
                let before_last = before_last && key.is_none();
                let pos = entries.iter().rposition(|e| matches!(e, Entry::Pair(..)));
                match pos.filter(|_| before_last) {
                    Some(p) => entries.insert(p, Entry::Comment(c)),
                    None => entries.push(Entry::Comment(c)),
                }
            }
            Frame::Seq { items, .. } => {
                let pos = items.iter().rposition(|e| matches!(e, Item::Value(_)));
                match pos.filter(|_| before_last) {
                    Some(p) => items.insert(p, Item::Comment(c)),
                    None => items.push(Item::Comment(c)),
                }
            }
        }
    }
}

/// How deep mappings and lists may nest. Deeper documents are refused:
/// walking, writing and dropping them recurses, and secrets files never come
/// close (JSON stops at 128 in `serde_json`).
const MAX_DEPTH: usize = 512;

/// What alias expansion may copy in one document, in [`copy_cost`] units
/// (about bytes): 64 MiB.
const ALIAS_BUDGET: usize = 64 << 20;

/// Refuses a collection that would nest `depth` levels deep.
fn check_depth(depth: usize) -> Result<(), YamlError> {
    if depth > MAX_DEPTH {
        return Err(depth_error());
    }
    Ok(())
}

fn depth_error() -> YamlError {
    YamlError(format!("the document nests deeper than {MAX_DEPTH} levels"))
}

/// Roughly the bytes one copy of a value takes: a fixed cost per node plus
/// the text it holds.
fn copy_cost(v: &Value) -> usize {
    const NODE: usize = 64;
    NODE + match v {
        Value::Str(s) | Value::Time(s) => s.len(),
        Value::Bytes(b) => b.len(),
        Value::Map(m) => {
            m.0.iter()
                .map(|e| match e {
                    Entry::Comment(c) => NODE + c.len(),
                    Entry::Pair(k, v) => k.len() + copy_cost(v),
                })
                .fold(0, usize::saturating_add)
        }
        Value::Seq(items) => items
            .iter()
            .map(|i| match i {
                Item::Comment(c) => NODE + c.len(),
                Item::Value(v) => copy_cost(v),
            })
            .fold(0, usize::saturating_add),
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => 0,
    }
}

/// Anchored values by name, with their copy cost and nesting. They are
/// copies of (possibly secret) plaintext, so they are zeroized when parsing
/// ends.
#[derive(Default)]
struct Anchors(HashMap<String, (Value, usize, usize)>);

impl Drop for Anchors {
    fn drop(&mut self) {
        for (v, ..) in self.0.values_mut() {
            v.zeroize();
        }
    }
}

/// Refuses a mapping that defines a key twice, as sops (go-yaml) does: which
/// value counts would be ambiguous, and a second `sops` key could pass for
/// the metadata.
fn check_unique_keys(entries: &[Entry]) -> Result<(), YamlError> {
    let mut keys: Vec<&str> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Pair(k, _) => Some(k.as_str()),
            Entry::Comment(_) => None,
        })
        .collect();
    keys.sort_unstable();
    match keys.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(YamlError(format!(
            "mapping key `{}` is defined twice",
            w[0].escape_debug()
        ))),
        None => Ok(()),
    }
}

/// How many mappings and lists nest in a value (0 for a scalar).
fn nesting(v: &Value) -> usize {
    match v {
        Value::Map(m) => 1 + m.pairs().map(|(_, v)| nesting(v)).max().unwrap_or(0),
        Value::Seq(items) => {
            1 + items
                .iter()
                .filter_map(|i| match i {
                    Item::Value(v) => Some(nesting(v)),
                    Item::Comment(_) => None,
                })
                .max()
                .unwrap_or(0)
        }
        _ => 0,
    }
}

/// How many events the last parse on this thread pulled from libyaml.
#[cfg(test)]
pub(crate) fn events_pulled() -> usize {
    events::PULLED.with(|n| n.get())
}

/// Checks, in time linear in its size, that `src` is YAML whose collections
/// nest at most `max_depth` levels, so that handing it to `serde_norway`
/// (the same libyaml) afterwards takes linear time too. Syntax errors are
/// left to the caller's parser, which reports them with a position.
pub(crate) fn check_nesting(src: &str, max_depth: usize) -> Result<(), YamlError> {
    match events::parse(src.as_bytes(), max_depth) {
        Err(events::Stop::TooDeep) => Err(YamlError(format!(
            "the document nests deeper than {max_depth} levels"
        ))),
        Ok(_) | Err(events::Stop::Syntax) => Ok(()),
    }
}

/// Parses YAML into branches (one per document). Comments are kept as
/// entries; anchors/aliases are expanded; only mapping documents are allowed
/// (like sops).
pub(crate) fn parse(src: &str) -> Result<Vec<Map>, YamlError> {
    // libyaml skips a byte order mark without counting it in its marks,
    // which would shift every position we map back into `src`.
    let src = src.strip_prefix('\u{FEFF}').unwrap_or(src);
    let events = events::parse(src.as_bytes(), MAX_DEPTH).map_err(|stop| match stop {
        events::Stop::TooDeep => depth_error(),
        events::Stop::Syntax => {
            // libyaml's error text sits in private fields; serde_norway
            // reports the same parser's error with a position (parsing
            // again costs no more than the first parse, which got this far).
            let msg = serde_norway::from_str::<serde_norway::Value>(src)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "invalid YAML".to_string());
            YamlError(msg)
        }
    })?;
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    // Each anchor's value, what one copy of it costs (see `copy_cost`) and
    // how deep it nests.
    let mut anchors = Anchors::default();
    let mut alias_budget = ALIAS_BUDGET;
    let mut doc_head: Vec<String> = Vec::new();
    let mut root: Option<Map> = None;
    let mut carry: Vec<Comment> = Vec::new();
    let mut child_head: Vec<String> = Vec::new();
    let mut prev_end = 0usize;

    for ev in events {
        let comments = gap_comments(src, prev_end, ev.start);
        prev_end = prev_end.max(ev.end);
        let is_end = matches!(ev.kind, events::Kind::MapEnd | events::Kind::SeqEnd);
        match stack.last_mut() {
            None => match root.as_mut() {
                Some(r) => {
                    r.0.extend(comments.into_iter().map(|c| Entry::Comment(c.text)))
                }
                None => doc_head.extend(comments.into_iter().map(|c| c.text)),
            },
            Some(top) if is_end => {
                let col = top.col();
                for c in comments {
                    if c.col >= col || c.same_line {
                        top.push_comment(c.text, c.same_line);
                    } else {
                        carry.push(c);
                    }
                }
            }
            Some(top) => {
                let opens = matches!(
                    ev.kind,
                    events::Kind::MapStart { .. } | events::Kind::SeqStart { .. }
                );
                for c in comments {
                    if opens && !c.same_line {
                        // Between `key:` and a nested block: the comment heads
                        // the nested collection's first entry.
                        child_head.push(c.text);
                    } else {
                        top.push_comment(c.text, c.same_line);
                    }
                }
            }
        }

        let node: Option<(Value, Option<String>)> = match ev.kind {
            events::Kind::StreamStart | events::Kind::StreamEnd => None,
            events::Kind::DocStart => {
                root = None;
                None
            }
            events::Kind::DocEnd => {
                let mut r = root.take().unwrap_or_default();
                let mut head: Vec<Entry> = doc_head.drain(..).map(Entry::Comment).collect();
                head.append(&mut r.0);
                r.0 = head;
                r.0.extend(carry.drain(..).map(|c| Entry::Comment(c.text)));
                docs.push(r);
                None
            }
            events::Kind::Alias(name) => {
                let (v, cost, depth) = anchors.0.get(&name).ok_or_else(|| {
                    YamlError(format!("unknown anchor `{}`", name.escape_debug()))
                })?;
                check_depth(stack.len() + depth)?;
                // Aliases of aliases grow exponentially ("billion laughs"):
                // refuse a document whose copies would exceed the budget.
                alias_budget = alias_budget
                    .checked_sub(*cost)
                    .ok_or_else(|| YamlError("the document expands too many aliases".into()))?;
                Some((v.clone(), None))
            }
            events::Kind::Scalar {
                anchor,
                tag,
                value,
                plain,
            } => Some((scalar_value(value, plain, tag.as_deref()), anchor)),
            events::Kind::MapStart { anchor } => {
                check_depth(stack.len() + 1)?;
                stack.push(Frame::Map {
                    entries: child_head.drain(..).map(Entry::Comment).collect(),
                    key: None,
                    col: ev.start_col,
                    anchor,
                });
                None
            }
            events::Kind::SeqStart { anchor } => {
                check_depth(stack.len() + 1)?;
                stack.push(Frame::Seq {
                    items: child_head.drain(..).map(Item::Comment).collect(),
                    col: ev.start_col,
                    anchor,
                });
                None
            }
            events::Kind::MapEnd | events::Kind::SeqEnd => match stack.pop() {
                Some(Frame::Map {
                    entries, anchor, ..
                }) => {
                    check_unique_keys(&entries)?;
                    Some((Value::Map(Map(entries)), anchor))
                }
                Some(Frame::Seq { items, anchor, .. }) => Some((Value::Seq(items), anchor)),
                None => return Err(YamlError("unbalanced YAML events".into())),
            },
        };
        let Some((value, anchor)) = node else {
            continue;
        };
        if let Some(a) = anchor {
            let (cost, depth) = (copy_cost(&value), nesting(&value));
            if let Some((mut old, ..)) = anchors.0.insert(a, (value.clone(), cost, depth)) {
                old.zeroize();
            }
        }
        match stack.last_mut() {
            None => {
                match value {
                    Value::Map(m) => {
                        let mut m = m;
                        let mut head: Vec<Entry> = doc_head.drain(..).map(Entry::Comment).collect();
                        head.append(&mut m.0);
                        m.0 = head;
                        root = Some(m);
                    }
                    Value::Null => root = Some(Map::default()),
                    Value::Seq(_) => {
                        return Err(YamlError(
                            "YAML documents that are sequences are not supported".into(),
                        ));
                    }
                    _ => {
                        return Err(YamlError(
                            "YAML documents that are values are not supported".into(),
                        ));
                    }
                }
                if let Some(r) = root.as_mut() {
                    r.0.extend(carry.drain(..).map(|c| Entry::Comment(c.text)));
                }
            }
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    let k = key_text(&value)
                        .ok_or_else(|| YamlError("mapping keys must be scalars".into()))?;
                    *key = Some(k);
                }
                Some(k) => {
                    entries.push(Entry::Pair(k, value));
                }
            },
            Some(Frame::Seq { items, .. }) => items.push(Item::Value(value)),
        }
        // Comments carried out of a closed child land after it, in the first
        // enclosing container whose items are not indented deeper than them.
        if !carry.is_empty()
            && let Some(top) = stack.last_mut()
        {
            let col = top.col();
            let keep: Vec<Comment> = std::mem::take(&mut carry);
            for c in keep {
                if c.col >= col {
                    top.push_comment(c.text, false);
                } else {
                    carry.push(c);
                }
            }
        }
    }
    Ok(docs)
}

// ---------------------------------------------------------------------------
// Emitter
// ---------------------------------------------------------------------------

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

fn is_printable(c: char) -> bool {
    let u = c as u32;
    // libyaml's IS_PRINTABLE: NEL (U+0085) is not, so go-yaml escapes it.
    u == 0x0A
        || (0x20..=0x7E).contains(&u)
        || ((0xA0..=0xD7FF).contains(&u))
        || ((0xE000..=0xFFFD).contains(&u) && u != 0xFEFF)
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blankz(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => c == ' ' || c == '\t' || is_break(c) || c == '\0',
    }
}

struct Analysis {
    flow_plain: bool,
    block_plain: bool,
    single: bool,
    block: bool,
}

/// libyaml's `yaml_emitter_analyze_scalar`, as in go-yaml v3.
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            flow_plain: false,
            block_plain: true,
            single: true,
            block: false,
        };
    }
    let (mut block_ind, mut flow_ind) = (false, false);
    if s.starts_with("---") || s.starts_with("...") {
        block_ind = true;
        flow_ind = true;
    }
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let mut preceded_ws = true;
    let mut followed_ws = is_blankz(chars.get(1).copied());
    let (mut line_breaks, mut special, mut tabs) = (false, false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut prev_space, mut prev_break) = (false, false);
    for i in 0..n {
        let c = chars[i];
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => {
                    flow_ind = true;
                    block_ind = true;
                }
                '?' | ':' => {
                    flow_ind = true;
                    if followed_ws {
                        block_ind = true;
                    }
                }
                '-' if followed_ws => {
                    flow_ind = true;
                    block_ind = true;
                }
                _ => {}
            }
        } else {
            match c {
                ',' | '?' | '[' | ']' | '{' | '}' => flow_ind = true,
                ':' => {
                    flow_ind = true;
                    if followed_ws {
                        block_ind = true;
                    }
                }
                '#' if preceded_ws => {
                    flow_ind = true;
                    block_ind = true;
                }
                _ => {}
            }
        }
        if c == '\t' {
            tabs = true;
        } else if !is_printable(c) {
            special = true;
        }
        if is_break(c) {
            line_breaks = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i == n - 1 {
                trailing_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break(c) {
            if i == 0 {
                leading_break = true;
            }
            if i == n - 1 {
                trailing_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_break = true;
            prev_space = false;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_ws = is_blankz(Some(c));
        followed_ws = is_blankz(chars.get(i + 2).copied());
    }
    let mut a = Analysis {
        flow_plain: true,
        block_plain: true,
        single: true,
        block: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.flow_plain = false;
        a.block_plain = false;
    }
    if trailing_space {
        a.block = false;
    }
    if break_space {
        a.flow_plain = false;
        a.block_plain = false;
        a.single = false;
    }
    if space_break || tabs || special {
        a.flow_plain = false;
        a.block_plain = false;
        a.single = false;
    }
    if space_break || special {
        a.block = false;
    }
    if line_breaks {
        a.flow_plain = false;
        a.block_plain = false;
    }
    if flow_ind {
        a.flow_plain = false;
    }
    if block_ind {
        a.block_plain = false;
    }
    a
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
    let a = analyze(s);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_resolve_like_go_yaml_v3() {
        assert_eq!(resolve_plain("123"), Plain::Int(123));
        assert_eq!(resolve_plain("0x1F"), Plain::Int(31));
        assert_eq!(resolve_plain("0o17"), Plain::Int(15));
        assert_eq!(resolve_plain("1_000"), Plain::Int(1000));
        assert_eq!(resolve_plain("1e20"), Plain::Float(1e20));
        assert_eq!(resolve_plain("-0.0"), Plain::Float(-0.0));
        assert_eq!(resolve_plain(".5"), Plain::Float(0.5));
        assert_eq!(resolve_plain("yes"), Plain::Str);
        assert_eq!(resolve_plain("True"), Plain::Bool(true));
        assert_eq!(resolve_plain("~"), Plain::Null);
        assert_eq!(
            resolve_plain("2024-01-02"),
            Plain::Time("2024-01-02T00:00:00Z".into())
        );
        assert_eq!(resolve_plain("1.2.3"), Plain::Str);
        assert_eq!(resolve_plain("3.11.0"), Plain::Str);
        assert_eq!(resolve_plain("1e400"), Plain::Str);
    }

    #[test]
    fn strings_get_the_quoting_go_yaml_gives_them() {
        let cases = [
            ("plain", "plain\n"),
            ("123", "\"123\"\n"),
            ("yes", "\"yes\"\n"),
            (" lead", "' lead'\n"),
            ("a: b", "'a: b'\n"),
            ("a\tb", "\"a\\tb\"\n"),
            ("smile \u{1F600}", "\"smile \\U0001F600\"\n"),
            ("a\nb", "|-\n    a\n    b\n"),
            ("a\n", "|\n    a\n"),
            ("a\n\n", "|+\n    a\n\n"),
            ("line one \nline two\n", "\"line one \\nline two\\n\"\n"),
            ("", "\"\"\n"),
            ("it's", "it's\n"),
            ("1:20", "\"1:20\"\n"),
            ("2024-01-01", "\"2024-01-01\"\n"),
        ];
        for (s, want) in cases {
            assert_eq!(emit_value(&Value::Str(s.into())), want, "{s:?}");
        }
    }

    #[test]
    fn comments_attach_before_the_entry_they_precede() {
        let src = "# top\na:\n  # inner\n  b: 1 # line\n  c: 2\n# foot\n";
        let docs = parse(src).unwrap();
        let out = emit(&[&docs[0]]);
        assert_eq!(
            out,
            "# top\na:\n    # inner\n    # line\n    b: 1\n    c: 2\n# foot\n"
        );
    }

    #[test]
    fn nested_layout_matches_go_yaml_v3() {
        let src = "nested:\n- - a\n  - b\n- {x: 1, y: [1, 2], z: {q: r}}\n- []\n";
        let docs = parse(src).unwrap();
        let out = emit(&[&docs[0]]);
        assert_eq!(
            out,
            "nested:\n    - - a\n      - b\n    - x: 1\n      \"y\":\n        - 1\n        - 2\n      z:\n        q: r\n    - []\n"
        );
    }

    #[test]
    fn long_and_multi_line_keys_use_the_complex_key_form() {
        // The fuzzer found that a key over 1024 characters written as
        // `key: value` cannot be read back; go-yaml switches at 128 bytes.
        let long = "k".repeat(129);
        let src = format!(
            "\"{long}\": v\n\"{long}2\":\n  a: 1\n  \"{long}3\": [1, 2]\n\"a\\nb\": 3\nlist:\n  - \"{long}\": x\n    y: 2\n"
        );
        let docs = parse(&src).unwrap();
        let out = emit(&[&docs[0]]);
        assert_eq!(
            out,
            format!(
                "? {long}\n: v\n? {long}2\n:   a: 1\n    ? {long}3\n    :   - 1\n        - 2\n? |-\n    a\n    b\n: 3\nlist:\n    - ? {long}\n      : x\n      \"y\": 2\n"
            )
        );
        assert_eq!(parse(&out).unwrap(), docs);
        let k128 = "k".repeat(128);
        assert_eq!(
            emit_value(&Value::Map(Map(vec![Entry::Pair(
                k128.clone(),
                Value::Int(1)
            )]))),
            format!("{k128}: 1\n")
        );
    }

    #[test]
    fn comments_end_at_any_line_break() {
        // The fuzzer found a comment that ran past a `\r` and swallowed the
        // YAML after it.
        let docs = parse("a: 1 # one\r? b\r: 2\r# two\u{2028}c: 3\n").unwrap();
        let m = &docs[0];
        assert_eq!(m.get("b"), Some(&Value::Int(2)));
        assert_eq!(m.get("c"), Some(&Value::Int(3)));
        let out = emit(&[m]);
        assert_eq!(out, "# one\na: 1\nb: 2\n# two\nc: 3\n");
        // A decrypted comment with line breaks stays comment lines.
        let m = Map(vec![Entry::Comment("x\ny: 1\r\nz".into())]);
        assert_eq!(emit(&[&m]), "#x\n#y: 1\n#z\n");
    }

    #[test]
    fn a_comment_after_a_block_scalar_is_not_on_its_line() {
        // The fuzzer found it moving before the entry above on each write.
        let src = "a: |-\n    x\n    y\n# c\nb: 2\n";
        let out = emit(&[&parse(src).unwrap()[0]]);
        assert_eq!(out, src);
    }

    #[test]
    fn a_byte_order_mark_does_not_shift_comments() {
        let docs = parse("\u{FEFF}# é\na: é # ü\nb: 2\n").unwrap();
        assert_eq!(emit(&[&docs[0]]), "# é\n# ü\na: é\nb: 2\n");
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&bomb).unwrap_err();
        assert!(e.0.contains("aliases"), "{}", e.0);
        // A few aliases are fine.
        let docs = parse("a: &x {k: v}\nb: *x\nc: *x\n").unwrap();
        assert_eq!(docs[0].get("c"), docs[0].get("a"));

        let deep = |n: usize| format!("a: {}{}\n", "[".repeat(n), "]".repeat(n));
        assert!(parse(&deep(MAX_DEPTH - 1)).is_ok());
        let e = parse(&deep(MAX_DEPTH)).unwrap_err();
        assert!(e.0.contains("deeper"), "{}", e.0);
        // Aliases cannot stack nesting past the limit either.
        let half = MAX_DEPTH / 2 + 1;
        let src = format!(
            "a: &d {}{}\nb: {}*d{}\n",
            "[".repeat(half),
            "]".repeat(half),
            "[".repeat(half),
            "]".repeat(half)
        );
        assert!(parse(&src).unwrap_err().0.contains("deeper"));
    }

    #[test]
    fn deep_flow_nesting_stops_at_the_limit_without_parsing_the_rest() {
        // libyaml's work grows with the square of the open flow collections;
        // the parser must stop pulling events once the limit is passed.
        for src in [
            format!("a: {}{}\n", "[".repeat(20_000), "]".repeat(20_000)),
            format!("a: {}\n", "{x: ".repeat(50_000)),
            "[".repeat(200_000),
        ] {
            let e = parse(&src).unwrap_err();
            assert!(e.0.contains("deeper than 512"), "{}", e.0);
            let pulled = events::PULLED.with(|n| n.get());
            assert!(pulled <= 2 * MAX_DEPTH + 8, "{pulled} events pulled");
        }
    }

    #[test]
    fn duplicate_keys_are_refused_like_sops_does() {
        // The fuzzer found a document with two `sops` keys: the second one
        // stayed in the data and came back as metadata on the next read.
        let e = parse("a: 1\nb: {x: 1, x: 2}\n").unwrap_err();
        assert!(e.0.contains("`x` is defined twice"), "{}", e.0);
        assert!(parse("a: 1\nsops: {}\nsops: {}\n").is_err());
        assert!(parse("a: {x: 1}\nb: {x: 2}\n---\na: 2\n").is_ok());
        // Keys come from the file: a right-to-left override is escaped.
        let e = parse("\"k\u{202E}\": 1\n\"k\u{202E}\": 2\n").unwrap_err();
        assert!(e.0.contains("`k\\u{202e}` is defined twice"), "{}", e.0);
    }

    #[test]
    fn sequences_and_scalars_at_document_level_are_refused() {
        assert!(parse("- a\n").is_err());
        assert!(parse("just text\n").is_err());
        assert_eq!(parse("").unwrap().len(), 0);
    }
}
