//! The `age_header` fuzz target's checks (`fuzz/check_age.rs`) on stable
//! Rust, bounded: every seed in `fuzz/seeds-age/`, then a fixed number of
//! mutations of them (byte edits, repeated slices that grow headers and
//! stanzas, low-order keys), so CI exercises the same entry points for a
//! bounded time. `scripts/fuzz age_header` explores far more.

#[path = "../fuzz/check_age.rs"]
mod check_age;

use proptest::prelude::*;
use std::path::Path;

fn seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds-age");
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    assert!(out.len() >= 4, "seeds missing in {}", dir.display());
    out
}

#[test]
fn every_seed_passes_the_checks() {
    for seed in seeds() {
        check_age::check(&seed);
    }
    // And the inputs the review broke the binary with.
    check_age::check(b"age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq5cu47z\n");
    let mut grease = b"age-encryption.org/v1\n-> grease\n".to_vec();
    for _ in 0..30_000 {
        grease.extend_from_slice(&[b'A'; 64]);
        grease.push(b'\n');
    }
    grease.extend_from_slice(b"AA\n--- AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
    check_age::check(&grease);
}

/// One edit of an input.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    /// Repeats `len` bytes at `at` `times` times (more stanzas, longer lines).
    Repeat(usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let fragment = prop_oneof![
        Just(b"\n-> X25519 AAAA\n".to_vec()),
        Just(b"\n-> grease\n".to_vec()),
        Just(b"\n--- ".to_vec()),
        Just(b"-----BEGIN AGE ENCRYPTED FILE-----\n".to_vec()),
        Just(b"age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq5cu47z".to_vec()),
        proptest::collection::vec(any::<u8>(), 1..8),
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::Flip(a, b)),
        (any::<usize>(), fragment).prop_map(|(a, f)| Edit::Insert(a, f)),
        (any::<usize>(), 1usize..64).prop_map(|(a, n)| Edit::Remove(a, n)),
        (any::<usize>(), 1usize..128, 1usize..400).prop_map(|(a, n, t)| Edit::Repeat(a, n, t)),
    ]
}

fn apply(mut data: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let at = |a: usize, len: usize| if len == 0 { 0 } else { a % (len + 1) };
        match e {
            Edit::Flip(a, b) if !data.is_empty() => {
                let i = a % data.len();
                data[i] ^= b | 1;
            }
            Edit::Flip(..) => {}
            Edit::Insert(a, f) => {
                let i = at(*a, data.len());
                data.splice(i..i, f.iter().copied());
            }
            Edit::Remove(a, n) => {
                let i = at(*a, data.len());
                let end = (i + n).min(data.len());
                data.drain(i..end);
            }
            Edit::Repeat(a, n, times) => {
                let i = at(*a, data.len());
                let end = (i + n).min(data.len());
                let slice = data[i..end].to_vec();
                let copies: Vec<u8> = slice.repeat(*times);
                data.splice(end..end, copies);
            }
        }
    }
    data
}

proptest! {
    // Bounded for CI; `scripts/test` fixes PROPTEST_RNG_SEED.
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_seeds_pass_the_checks(
        seed in any::<prop::sample::Index>(),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let seeds = seeds();
        let data = apply(seeds[seed.index(seeds.len())].clone(), &edits);
        check_age::check(&data);
    }
}
