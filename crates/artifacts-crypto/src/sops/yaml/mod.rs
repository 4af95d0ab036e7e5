//! YAML reading and writing for SOPS documents.
//!
//! Reading uses libyaml's event stream (`unsafe-libyaml-norway`, the parser
//! behind `serde_norway`) so that scalar styles (plain or quoted) and source
//! positions survive: positions let us recover comments, which sops keeps and
//! encrypts. Scalars are typed the way go-yaml v3 (inside sops) types them.
//! Writing is our own emitter that follows go-yaml v3's layout with sops'
//! indent of 4, so files we write look like files sops writes.
//!
//! The parts:
//! - [`libyaml`]: a safe wrapper over libyaml's pull parser (the only `unsafe`
//!   code of the crate);
//! - [`scalar`]: go-yaml v3's typing of scalars;
//! - [`fast`]: a reader for the plain subset sops and we write, about ten
//!   times faster than libyaml, that leaves everything else to it;
//! - [`parse`]: events to sops' tree, comments kept;
//! - [`emit`]: sops' tree to YAML text.

mod emit;
mod fast;
#[cfg(test)]
mod fast_tests;
mod libyaml;
mod parse;
mod scalar;
#[cfg(test)]
mod tests;

pub(crate) use emit::{emit, emit_value};
pub(crate) use parse::{check_nesting, parse};

use super::tree::{Entry, Item, Map, Value};

/// Why YAML could not be read.
#[derive(Debug)]
pub(crate) struct YamlError(pub String);

/// Whether the fast reader gives up on `src` or reads exactly what libyaml
/// reads (a NaN equal to a NaN); whether it read it. For tests and the
/// fuzzer; the error names no content of the document.
pub(crate) fn readers_agree(src: &str) -> Result<bool, String> {
    let Some(fast) = fast::parse(src) else {
        return Ok(false);
    };
    match parse::parse_libyaml(src) {
        Ok(slow)
            if fast.len() == slow.len() && fast.iter().zip(&slow).all(|(a, b)| same_map(a, b)) =>
        {
            Ok(true)
        }
        Ok(_) => Err("the fast YAML reader and libyaml read the document differently".into()),
        Err(_) => Err("the fast YAML reader read a document libyaml refuses".into()),
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits() || x == y,
        (Value::Map(x), Value::Map(y)) => same_map(x, y),
        (Value::Seq(x), Value::Seq(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|p| match p {
                    (Item::Value(v), Item::Value(w)) => same_value(v, w),
                    (Item::Comment(c), Item::Comment(d)) => c == d,
                    _ => false,
                })
        }
        _ => a == b,
    }
}

fn same_map(a: &Map, b: &Map) -> bool {
    a.0.len() == b.0.len()
        && a.0.iter().zip(&b.0).all(|p| match p {
            (Entry::Pair(k, v), Entry::Pair(l, w)) => k == l && same_value(v, w),
            (Entry::Comment(c), Entry::Comment(d)) => c == d,
            _ => false,
        })
}

/// A YAML line break: besides `\n` and `\r`, NEL, LS and PS.
fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// How many events the last parse on this thread pulled from libyaml.
#[cfg(test)]
pub(crate) fn events_pulled() -> usize {
    libyaml::PULLED.with(|n| n.get())
}
