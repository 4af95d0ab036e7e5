//! Fuzzes the manifest loader: each input is read as a TOML, JSON and YAML
//! manifest (`load_manifest_text`: size and nesting limits, then the
//! parsers and the reader) and validated. What validates must hold only
//! valid names; no message may print an invisible or bidirectional
//! character raw. Any panic is a bug, and so is a slow input (nesting is
//! measured before a parser runs). The seeds in `seeds/` are the examples'
//! manifests and the nix-eval JSON shape.

#![no_main]

#[path = "../check.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check::check(data));
