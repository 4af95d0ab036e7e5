//! A fast reader for the plain YAML that sops 3.x and our emitter write:
//! block mappings and block lists, one-line plain and quoted scalars,
//! literal block scalars (`|`, `|-`, `|+`, with an indentation indicator)
//! and the empty flow collections `{}` and `[]`.
//!
//! libyaml reads about 50 MB/s, which made parsing the largest part of a
//! fleet `check` (issue 17). This reader gives up (returns `None`) on
//! anything outside that subset (comments, anchors, aliases, tags, flow
//! collections with content, `---`, tabs, CR, BOM, NEL/LS/PS, control
//! characters, multi-line plain or quoted scalars, folded scalars, `? `
//! keys, duplicate keys, unusual indentation) and [`super::parse()`] then
//! reads the file with libyaml as before, so errors, limits and comments
//! all stay libyaml's. What it accepts it types with the same
//! [`scalar_value`] and [`key_text`], so both paths give the same tree.
//!
//! It never errors and never copies a scalar more than once: partial
//! results are zeroized when it gives up halfway, as they may be plaintext.

use zeroize::{Zeroize, Zeroizing};

use super::super::tree::{Entry, Item, Map, Value};
use super::parse::{MAX_DEPTH, key_text};
use super::scalar::scalar_value;

/// Deepest nesting accepted (a root mapping is 1); kept under libyaml's
/// limit so that what would be refused there is left to it.
const DEPTH: usize = MAX_DEPTH - 2;

/// Longest simple key, from its first character to its `:`. libyaml refuses
/// a simple key that spans more than 1,024 characters.
const MAX_KEY: usize = 1000;

#[cfg(test)]
thread_local! {
    /// How many bytes the reader looked at since reset (for the linear-time
    /// test).
    pub(super) static STEPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts `n` bytes looked at (in tests only).
#[inline(always)]
fn step(_n: usize) {
    #[cfg(test)]
    STEPS.with(|s| s.set(s.get() + _n));
}

/// Reads `src` if it lies in the subset this reader knows; `None` otherwise.
pub(super) fn parse(src: &str) -> Option<Vec<Map>> {
    // Every line, the last one included, ends with `\n`: no line needs a
    // bounds check before its break.
    step(src.len());
    if !src.ends_with('\n') || !plain_text(src) {
        return None;
    }
    let mut r = Reader {
        s: src,
        b: src.as_bytes(),
        pos: 0,
        peeked: None,
    };
    if r.next_line()? != 0 {
        return None;
    }
    let map = if r.b[r.pos] == b'{' {
        // `{}` is how sops and we write an empty document.
        r.pos = r.rest_of_line(r.pos, b"{}")?;
        Map::default()
    } else {
        r.map(0, None, 1)?
    };
    match r.next_line() {
        None => Some(vec![map]),
        Some(_) => {
            drop(Partial(Value::Map(map)));
            None
        }
    }
}

/// Whether `src` holds only characters whose meaning here is plain: printable
/// ASCII, `\n`, and the non-ASCII characters libyaml reads as text (so no
/// control character, NEL, LS, PS or BOM).
fn plain_text(src: &str) -> bool {
    let ascii_ok = |b: u8| (b' '..=b'~').contains(&b) || b == b'\n';
    // Whole chunks without an early exit, so that the compiler checks many
    // bytes at once: this looks at every byte of every file.
    if src
        .as_bytes()
        .chunks(64)
        .all(|chunk| chunk.iter().fold(true, |ok, &b| ok & ascii_ok(b)))
    {
        return true;
    }
    src.chars().all(|c| {
        if c.is_ascii() {
            ascii_ok(c as u8)
        } else {
            matches!(c, '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
                && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}')
        }
    })
}

/// A collection being built, zeroized if the reader gives up before it is
/// complete (its scalars may be plaintext).
struct Partial(Value);

impl Partial {
    fn take(mut self) -> Value {
        std::mem::replace(&mut self.0, Value::Null)
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[derive(Clone, Copy)]
enum Chomp {
    Strip,
    Clip,
    Keep,
}

struct Reader<'a> {
    s: &'a str,
    b: &'a [u8],
    /// The start of the line to read next.
    pos: usize,
    /// The indentation [`Reader::next_line`] found at `pos`.
    peeked: Option<(usize, usize)>,
}

fn is_space_or_break(b: u8) -> bool {
    b == b' ' || b == b'\n'
}

impl Reader<'_> {
    /// Skips blank lines; the indentation of the next line with content, or
    /// `None` at the end of the input.
    fn next_line(&mut self) -> Option<usize> {
        if let Some((pos, indent)) = self.peeked
            && pos == self.pos
        {
            return Some(indent);
        }
        while self.pos < self.b.len() {
            let mut i = self.pos;
            while self.b[i] == b' ' {
                i += 1;
            }
            step(i + 1 - self.pos);
            if self.b[i] == b'\n' {
                self.pos = i + 1;
                continue;
            }
            let indent = i - self.pos;
            self.peeked = Some((self.pos, indent));
            return Some(indent);
        }
        None
    }

    /// The position of the `\n` ending the line that holds `p`.
    fn line_end(&self, p: usize) -> usize {
        // The input ends with `\n`, so there is one.
        let end = memchr::memchr(b'\n', &self.b[p..]).map_or(self.b.len() - 1, |i| p + i);
        step(end - p);
        end
    }

    /// Checks that `p` starts `token` followed by nothing but spaces on its
    /// line; the start of the next line.
    fn rest_of_line(&self, p: usize, token: &[u8]) -> Option<usize> {
        if !self.b[p..].starts_with(token) {
            return None;
        }
        self.blank_to_eol(p + token.len())
    }

    /// Checks that only spaces follow `p` on its line; the next line's start.
    fn blank_to_eol(&self, mut p: usize) -> Option<usize> {
        while self.b[p] == b' ' {
            p += 1;
        }
        (self.b[p] == b'\n').then_some(p + 1)
    }

    /// Reads a block mapping whose keys sit at column `col`. `first` is
    /// where its first key starts when that follows `- ` on a list's line.
    fn map(&mut self, col: usize, mut first: Option<usize>, depth: usize) -> Option<Map> {
        if depth > DEPTH {
            return None;
        }
        let mut out = Partial(Value::Map(Map::default()));
        loop {
            let p = match first.take() {
                Some(p) => p,
                None => match self.next_line() {
                    Some(i) if i == col => self.pos + i,
                    Some(i) if i > col => return None,
                    _ => break,
                },
            };
            let (key, after) = self.key(p)?;
            // Zeroized should the value below make the reader give up.
            let mut key = Zeroizing::new(key);
            let value = self.value_after_key(after, col, depth)?;
            if let Value::Map(m) = &mut out.0 {
                m.0.push(Entry::Pair(std::mem::take(&mut *key), value));
            }
        }
        match out.take() {
            Value::Map(m) if !has_duplicates(&m) => Some(m),
            v => {
                drop(Partial(v));
                None
            }
        }
    }

    /// Reads a block list whose `-` sit at column `col`. `first` is where its
    /// first `-` is when it follows `- ` on an enclosing list's line.
    fn seq(&mut self, col: usize, mut first: Option<usize>, depth: usize) -> Option<Vec<Item>> {
        if depth > DEPTH {
            return None;
        }
        let mut out = Partial(Value::Seq(Vec::new()));
        loop {
            let dash = match first.take() {
                Some(p) => p,
                None => match self.next_line() {
                    Some(i) if i == col => self.pos + i,
                    Some(i) if i > col => return None,
                    _ => break,
                },
            };
            // `-` alone on its line (a null or a block below) is left to
            // libyaml.
            if self.b[dash] != b'-' || self.b[dash + 1] != b' ' {
                return None;
            }
            let mut p = dash + 1;
            while self.b[p] == b' ' {
                p += 1;
            }
            let item_col = col + (p - dash);
            let item = match self.b[p] {
                b'\n' => return None,
                b'-' if is_space_or_break(self.b[p + 1]) => {
                    Value::Seq(self.seq(item_col, Some(p), depth + 1)?)
                }
                _ if self.starts_key(p)? => Value::Map(self.map(item_col, Some(p), depth + 1)?),
                _ => self.inline_value(p, col, depth)?,
            };
            if let Value::Seq(items) = &mut out.0 {
                items.push(Item::Value(item));
            }
        }
        match out.take() {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// Whether the scalar at `p` is a mapping key (followed by `: ` or `:`
    /// at the end of the line); `None` when it is neither a key nor a value
    /// this reader reads.
    fn starts_key(&self, p: usize) -> Option<bool> {
        let end = match self.b[p] {
            b'\'' => self.single_end(p)?,
            b'"' => self.double_end(p)?,
            b'|' | b'{' | b'[' => return Some(false),
            _ => return Some(self.plain_colon(p)?.is_some()),
        };
        Some(self.b[end] == b':' && is_space_or_break(self.b[end + 1]))
    }

    /// Reads a key at `p`; its text and the position after its `:`.
    fn key(&self, p: usize) -> Option<(String, usize)> {
        let (value, colon) = match self.b[p] {
            b'\'' => {
                let end = self.single_end(p)?;
                (Value::Str(self.single(p, end)), end)
            }
            b'"' => {
                let end = self.double_end(p)?;
                (Value::Str(self.double(p, end)?), end)
            }
            // `---` and `...` start and end documents at column 0.
            c if plain_start(c, self.b[p + 1])
                && !self.b[p..].starts_with(b"---")
                && !self.b[p..].starts_with(b"...") =>
            {
                let colon = self.plain_colon(p)??;
                if self.b[colon - 1] == b' ' {
                    return None;
                }
                (
                    scalar_value(self.s[p..colon].to_string(), true, None),
                    colon,
                )
            }
            _ => return None,
        };
        let mut value = value;
        if self.b[colon] != b':' || !is_space_or_break(self.b[colon + 1]) || colon - p > MAX_KEY {
            value.zeroize();
            return None;
        }
        let key = match value {
            Value::Str(s) => s,
            mut other => {
                let k = key_text(&other);
                other.zeroize();
                k?
            }
        };
        Some((key, colon + 1))
    }

    /// For a plain scalar at `p`: where its `: ` (or final `:`) is, if on
    /// this line. `None` when a ` #` (a comment) comes first.
    fn plain_colon(&self, p: usize) -> Option<Option<usize>> {
        let end = self.line_end(p);
        let line = &self.b[p..end];
        step(line.len());
        Some(colon_or_comment(line)?.map(|i| p + i))
    }

    /// Reads what follows `key:` (at `after`) for a mapping at column `col`.
    fn value_after_key(&mut self, after: usize, col: usize, depth: usize) -> Option<Value> {
        let mut p = after;
        while self.b[p] == b' ' {
            p += 1;
        }
        if self.b[p] != b'\n' {
            return self.inline_value(p, col, depth);
        }
        self.pos = p + 1;
        match self.next_line() {
            Some(i) if i > col => {
                let q = self.pos + i;
                if self.b[q] == b'-' && is_space_or_break(self.b[q + 1]) {
                    Some(Value::Seq(self.seq(i, None, depth + 1)?))
                } else {
                    Some(Value::Map(self.map(i, None, depth + 1)?))
                }
            }
            // `key:` with nothing below: null, as libyaml reads it.
            _ => Some(scalar_value(String::new(), true, None)),
        }
    }

    /// Reads a scalar or empty collection starting at `p` and ending its
    /// line (a block scalar goes on below); `indent` is the enclosing
    /// collection's column. Leaves `pos` at the line after it.
    fn inline_value(&mut self, p: usize, indent: usize, depth: usize) -> Option<Value> {
        let b = self.b;
        let (value, next) = match b[p] {
            b'|' => return self.literal(p, indent),
            b'\'' => {
                let end = self.single_end(p)?;
                let next = self.blank_to_eol(end)?;
                (Value::Str(self.single(p, end)), next)
            }
            b'"' => {
                let end = self.double_end(p)?;
                let next = self.blank_to_eol(end)?;
                (Value::Str(self.double(p, end)?), next)
            }
            b'{' | b'[' => {
                if depth + 1 > DEPTH {
                    return None;
                }
                if b[p] == b'{' {
                    (Value::Map(Map::default()), self.rest_of_line(p, b"{}")?)
                } else {
                    (Value::Seq(Vec::new()), self.rest_of_line(p, b"[]")?)
                }
            }
            c if plain_start(c, b[p + 1]) => {
                let eol = self.line_end(p);
                let mut end = eol;
                while b[end - 1] == b' ' {
                    end -= 1;
                }
                // A `: ` would make a mapping here (an error in libyaml), a
                // ` #` a comment.
                let text = &b[p..end];
                step(text.len());
                if colon_or_comment(text) != Some(None) {
                    return None;
                }
                (
                    scalar_value(self.s[p..end].to_string(), true, None),
                    eol + 1,
                )
            }
            _ => return None,
        };
        self.pos = next;
        Some(value)
    }

    /// The position after the closing quote of the one-line single-quoted
    /// scalar at `p`.
    fn single_end(&self, p: usize) -> Option<usize> {
        let b = self.b;
        let mut i = p + 1;
        loop {
            match b[i] {
                b'\n' => return None,
                b'\'' if b[i + 1] == b'\'' => i += 2,
                b'\'' => {
                    step(i - p);
                    return Some(i + 1);
                }
                _ => i += 1,
            }
        }
    }

    /// The text of the single-quoted scalar `p..end`.
    fn single(&self, p: usize, end: usize) -> String {
        let raw = &self.s[p + 1..end - 1];
        step(raw.len());
        // Sized up front: no reallocation leaves a copy behind.
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(i) = rest.find("''") {
            out.push_str(&rest[..=i]);
            rest = &rest[i + 2..];
        }
        out.push_str(rest);
        out
    }

    /// The position after the closing quote of the one-line double-quoted
    /// scalar at `p`.
    fn double_end(&self, p: usize) -> Option<usize> {
        let b = self.b;
        let mut i = p + 1;
        loop {
            match b[i] {
                b'\n' => return None,
                b'\\' if b[i + 1] == b'\n' => return None,
                b'\\' => i += 2,
                b'"' => {
                    step(i - p);
                    return Some(i + 1);
                }
                _ => i += 1,
            }
        }
    }

    /// The text of the double-quoted scalar `p..end`, escapes decoded as
    /// libyaml decodes them; `None` for an escape it refuses.
    fn double(&self, p: usize, end: usize) -> Option<String> {
        let raw = &self.s[p + 1..end - 1];
        step(raw.len());
        // An escape of n >= 2 bytes decodes to at most 3n/2 bytes (`\L` is
        // three): sized up front, the string never reallocates.
        let mut out = Zeroizing::new(String::with_capacity(raw.len() * 3 / 2 + 4));
        let capacity = out.capacity();
        let mut rest = raw;
        while let Some(i) = rest.find('\\') {
            out.push_str(&rest[..i]);
            let esc = rest.as_bytes()[i + 1];
            let mut len = 2;
            let c = match esc {
                b'0' => '\0',
                b'a' => '\x07',
                b'b' => '\x08',
                b't' => '\t',
                b'n' => '\n',
                b'v' => '\x0B',
                b'f' => '\x0C',
                b'r' => '\r',
                b'e' => '\x1B',
                b' ' => ' ',
                b'"' => '"',
                b'/' => '/',
                b'\\' => '\\',
                b'N' => '\u{85}',
                b'_' => '\u{A0}',
                b'L' => '\u{2028}',
                b'P' => '\u{2029}',
                b'x' | b'u' | b'U' => {
                    let digits = match esc {
                        b'x' => 2,
                        b'u' => 4,
                        _ => 8,
                    };
                    let hex = rest.get(i + 2..i + 2 + digits)?;
                    if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                        return None;
                    }
                    len += digits;
                    // Surrogates and values past U+10FFFF are libyaml errors.
                    char::from_u32(u32::from_str_radix(hex, 16).ok()?)?
                }
                _ => return None,
            };
            out.push(c);
            rest = &rest[i + len..];
        }
        out.push_str(rest);
        debug_assert_eq!(out.capacity(), capacity, "the string grew");
        Some(std::mem::take(&mut *out))
    }

    /// Reads a literal block scalar whose `|` is at `p`, in a collection at
    /// column `parent`, the way libyaml's `scan_block_scalar` does. Lines of
    /// spaces only are left to libyaml (neither sops nor we write them).
    fn literal(&mut self, p: usize, parent: usize) -> Option<Value> {
        let b = self.b;
        let mut q = p + 1;
        let mut chomp = Chomp::Clip;
        let mut increment = 0;
        let chomp_of = |c: u8| match c {
            b'+' => Some(Chomp::Keep),
            b'-' => Some(Chomp::Strip),
            _ => None,
        };
        // An indentation indicator is 1 to 9 (`0` is an error in libyaml).
        let digit = |c: u8| (b'1'..=b'9').contains(&c).then(|| usize::from(c - b'0'));
        if let Some(c) = chomp_of(b[q]) {
            chomp = c;
            q += 1;
            if let Some(d) = digit(b[q]) {
                increment = d;
                q += 1;
            }
        } else if let Some(d) = digit(b[q]) {
            increment = d;
            q += 1;
            if let Some(c) = chomp_of(b[q]) {
                chomp = c;
                q += 1;
            }
        }
        let body = self.blank_to_eol(q)?;
        let indent = (increment > 0).then_some(parent + increment);
        // Measure first, then fill a string of exactly that size.
        let (len, next) = self.literal_body(body, parent, indent, chomp, None)?;
        let mut out = String::with_capacity(len);
        self.literal_body(body, parent, indent, chomp, Some(&mut out))?;
        debug_assert_eq!(out.len(), len);
        self.pos = next;
        Some(scalar_value(out, false, None))
    }

    /// The body of a literal block scalar from line start `pos`: its length
    /// and where the next line starts; the text goes to `out` if given.
    fn literal_body(
        &self,
        mut pos: usize,
        parent: usize,
        mut indent: Option<usize>,
        chomp: Chomp,
        mut out: Option<&mut String>,
    ) -> Option<(usize, usize)> {
        let mut len = 0;
        let mut emit = |s: &str| {
            len += s.len();
            if let Some(o) = out.as_deref_mut() {
                o.push_str(s);
            }
        };
        let mut trailing = 0;
        let (mut col, next) = self.literal_breaks(pos, &mut indent, parent, &mut trailing)?;
        pos = next;
        let indent = indent.unwrap_or_default();
        let mut leading = false;
        while col == indent && pos < self.b.len() {
            if leading {
                emit("\n");
            }
            for _ in 0..trailing {
                emit("\n");
            }
            trailing = 0;
            let eol = self.line_end(pos);
            emit(&self.s[pos + indent..eol]);
            leading = true;
            let mut known = Some(indent);
            (col, pos) = self.literal_breaks(eol + 1, &mut known, parent, &mut trailing)?;
        }
        match chomp {
            Chomp::Strip => {}
            Chomp::Clip | Chomp::Keep => {
                if leading {
                    emit("\n");
                }
                if matches!(chomp, Chomp::Keep) {
                    for _ in 0..trailing {
                        emit("\n");
                    }
                }
            }
        }
        Some((len, pos))
    }

    /// libyaml's `scan_block_scalar_breaks`: counts empty lines from line
    /// start `pos` into `trailing`, settles an undetected `indent`, and
    /// returns the column and start of the first line with content.
    fn literal_breaks(
        &self,
        mut pos: usize,
        indent: &mut Option<usize>,
        parent: usize,
        trailing: &mut usize,
    ) -> Option<(usize, usize)> {
        let b = self.b;
        let mut max = 0;
        let mut col = 0;
        while pos < b.len() {
            let mut i = pos;
            while b[i] == b' ' {
                i += 1;
            }
            step(i + 1 - pos);
            if b[i] == b'\n' {
                if i > pos {
                    return None;
                }
                *trailing += 1;
                pos = i + 1;
                continue;
            }
            col = match *indent {
                Some(n) => (i - pos).min(n),
                None => i - pos,
            };
            max = max.max(col);
            break;
        }
        if indent.is_none() {
            *indent = Some(max.max(parent + 1).max(1));
        }
        Some((col, pos))
    }
}

/// In the plain scalar text of a line (`line`, its break excluded): where
/// its first `: ` or final `:` (a mapping key's end) is, `Some(None)` when
/// it has neither, `None` when a ` #` (a comment) comes first.
fn colon_or_comment(line: &[u8]) -> Option<Option<usize>> {
    // A sops value has a few `:` (`data:…,iv:…`) and rarely a `#`: jump
    // between them instead of looking at every byte.
    for i in memchr::memchr2_iter(b':', b'#', line) {
        match line[i] {
            b':' if i + 1 == line.len() || line[i + 1] == b' ' => return Some(Some(i)),
            b'#' if i > 0 && line[i - 1] == b' ' => return None,
            _ => {}
        }
    }
    Some(None)
}

/// Whether `c` (followed by `next`) can start a plain scalar this reader
/// reads: no indicator, except `-` before a non-space (`-1`).
fn plain_start(c: u8, next: u8) -> bool {
    match c {
        b'-' => !is_space_or_break(next),
        b' ' | b'\n' | b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*'
        | b'!' | b'|' | b'>' | b'\'' | b'"' | b'%' | b'@' | b'`' => false,
        _ => true,
    }
}

/// Whether a mapping defines a key twice (libyaml's path refuses it).
fn has_duplicates(m: &Map) -> bool {
    let keys = || {
        m.0.iter().filter_map(|e| match e {
            Entry::Pair(k, _) => Some(k.as_str()),
            Entry::Comment(_) => None,
        })
    };
    if m.0.len() <= 16 {
        return keys()
            .enumerate()
            .any(|(i, k)| keys().take(i).any(|other| other == k));
    }
    let mut sorted: Vec<&str> = keys().collect();
    sorted.sort_unstable();
    sorted.windows(2).any(|w| w[0] == w[1])
}
