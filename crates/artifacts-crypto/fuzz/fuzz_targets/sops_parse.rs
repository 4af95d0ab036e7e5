//! Fuzzes the SOPS parsers with one input read every way a file can be read:
//!
//! - as an encrypted YAML, JSON and dotenv file (`EncryptedFile::parse`,
//!   metadata included); what parses must serialize to bytes that parse
//!   again, and with the seeds' age key the data key is unwrapped and the
//!   tree decrypted (MAC verified); a file that decrypts must survive
//!   encrypt → serialize → parse → decrypt with the same plaintext;
//! - as a plaintext YAML, JSON and dotenv document (`sops::parse_plain`):
//!   what parses must emit text that parses again, and after that one
//!   normalization, emit → parse → emit must give the same text;
//! - as YAML text, read by the fast YAML reader and by libyaml: the fast
//!   reader either gives up or reads exactly the same tree.
//!
//! Any panic is a bug: parsers return errors. The seeds in `seeds/` were
//! written by the real sops for the test-only key `seed-key.txt`.

#![no_main]

#[path = "../check.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check::check(data));
