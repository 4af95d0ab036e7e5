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

/// Why YAML could not be read.
#[derive(Debug)]
pub(crate) struct YamlError(pub String);

/// A YAML line break: besides `\n` and `\r`, NEL, LS and PS.
fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// How many events the last parse on this thread pulled from libyaml.
#[cfg(test)]
pub(crate) fn events_pulled() -> usize {
    libyaml::PULLED.with(|n| n.get())
}
