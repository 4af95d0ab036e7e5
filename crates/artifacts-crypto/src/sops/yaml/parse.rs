//! The comment-keeping parser: libyaml's events become sops' tree
//! ([`Map`] per document), with comments recovered from the source text
//! between events, anchors expanded within a budget, nesting and duplicate
//! keys refused.

use std::collections::HashMap;

use zeroize::Zeroize;

use super::super::tree::{Entry, Item, Map, Value, go_format_g};
use super::scalar::scalar_value;
use super::{YamlError, is_break};
use super::{fast, libyaml};

/// Text form of a scalar used as a mapping key.
pub(super) fn key_text(v: &Value) -> Option<String> {
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
pub(super) const MAX_DEPTH: usize = 512;

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

/// Checks, in time linear in its size, that `src` is YAML whose collections
/// nest at most `max_depth` levels, so that handing it to `serde_norway`
/// (the same libyaml) afterwards takes linear time too. Syntax errors are
/// left to the caller's parser, which reports them with a position.
pub(crate) fn check_nesting(src: &str, max_depth: usize) -> Result<(), YamlError> {
    match libyaml::parse(src.as_bytes(), max_depth) {
        Err(libyaml::Stop::TooDeep) => Err(YamlError(format!(
            "the document nests deeper than {max_depth} levels"
        ))),
        Ok(_) | Err(libyaml::Stop::Syntax) => Ok(()),
    }
}

/// Parses YAML into branches (one per document). Comments are kept as
/// entries; anchors/aliases are expanded; only mapping documents are allowed
/// (like sops).
///
/// The files sops and we write are read by the fast reader ([`fast`]); what
/// it gives up on, libyaml reads, with the same result for what both read.
pub(crate) fn parse(src: &str) -> Result<Vec<Map>, YamlError> {
    match fast::parse(src) {
        Some(docs) => Ok(docs),
        None => parse_libyaml(src),
    }
}

/// [`parse`] through libyaml only.
pub(super) fn parse_libyaml(src: &str) -> Result<Vec<Map>, YamlError> {
    // libyaml skips a byte order mark without counting it in its marks,
    // which would shift every position we map back into `src`.
    let src = src.strip_prefix('\u{FEFF}').unwrap_or(src);
    let events = libyaml::parse(src.as_bytes(), MAX_DEPTH).map_err(|stop| match stop {
        libyaml::Stop::TooDeep => depth_error(),
        libyaml::Stop::Syntax => {
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
        let is_end = matches!(ev.kind, libyaml::Kind::MapEnd | libyaml::Kind::SeqEnd);
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
                    libyaml::Kind::MapStart { .. } | libyaml::Kind::SeqStart { .. }
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
            libyaml::Kind::StreamStart | libyaml::Kind::StreamEnd => None,
            libyaml::Kind::DocStart => {
                root = None;
                None
            }
            libyaml::Kind::DocEnd => {
                let mut r = root.take().unwrap_or_default();
                let mut head: Vec<Entry> = doc_head.drain(..).map(Entry::Comment).collect();
                head.append(&mut r.0);
                r.0 = head;
                r.0.extend(carry.drain(..).map(|c| Entry::Comment(c.text)));
                docs.push(r);
                None
            }
            libyaml::Kind::Alias(name) => {
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
            libyaml::Kind::Scalar {
                anchor,
                tag,
                value,
                plain,
            } => Some((scalar_value(value, plain, tag.as_deref()), anchor)),
            libyaml::Kind::MapStart { anchor } => {
                check_depth(stack.len() + 1)?;
                stack.push(Frame::Map {
                    entries: child_head.drain(..).map(Entry::Comment).collect(),
                    key: None,
                    col: ev.start_col,
                    anchor,
                });
                None
            }
            libyaml::Kind::SeqStart { anchor } => {
                check_depth(stack.len() + 1)?;
                stack.push(Frame::Seq {
                    items: child_head.drain(..).map(Item::Comment).collect(),
                    col: ev.start_col,
                    anchor,
                });
                None
            }
            libyaml::Kind::MapEnd | libyaml::Kind::SeqEnd => match stack.pop() {
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
