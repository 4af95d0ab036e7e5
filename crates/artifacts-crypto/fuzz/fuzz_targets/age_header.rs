//! Fuzzes the age header reader and the recipient and identity parsers:
//! each input is decrypted with the seeds' key (`age::decrypt`: header
//! limits, then the `age` crate's parser), and read as a recipients list
//! and an identity file. A file that decrypts must survive a round trip;
//! a recipient that parses must be usable. Any panic is a bug, and so is a
//! slow input (the header is measured before `age` parses it).
//! The seeds in `seeds-age/` were written by the real `age`.

#![no_main]

#[path = "../check_age.rs"]
mod check_age;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check_age::check(data));
