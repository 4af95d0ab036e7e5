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
    let mut parser: Box<MaybeUninit<unsafe_yaml::yaml_parser_t>> = Box::new(MaybeUninit::uninit());
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
