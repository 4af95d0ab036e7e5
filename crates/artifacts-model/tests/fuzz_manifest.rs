//! The `manifest_parse` fuzz target's checks (`fuzz/check.rs`) on stable
//! Rust, bounded: every seed in `fuzz/seeds/`, then a fixed number of
//! mutations of them (edits with brackets, quotes, invisible characters,
//! repeated slices that deepen nesting), so CI exercises the same entry
//! points for a bounded time. `scripts/fuzz manifest_parse` explores far more.

#[path = "../fuzz/check.rs"]
mod check;

use proptest::prelude::*;
use std::path::Path;

fn seeds() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    assert!(out.len() >= 4, "seeds missing in {}", dir.display());
    out
}

#[test]
fn every_seed_passes_the_checks() {
    for seed in seeds() {
        check::check(seed.as_bytes());
    }
    // The review's inputs: deep nesting in each format, a right-to-left
    // override in a key the reader does not know.
    let n = 100_000;
    check::check(format!("x = {}{}", "[".repeat(n), "]".repeat(n)).as_bytes());
    check::check(format!("x: {}", "{a: ".repeat(n)).as_bytes());
    check::check("[nixos.m]\n\"evil\u{202E}key\" = 1\n".as_bytes());
}

/// One edit of a seed.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, &'static str),
    Remove(usize, usize),
    /// Repeats `len` characters at `at` `times` times.
    Repeat(usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let fragment = prop::sample::select(vec![
        "[",
        "]",
        "{",
        "}",
        "\"",
        "'",
        "\n",
        "=",
        ".",
        ":",
        ",",
        "- ",
        "#",
        "&a ",
        "*a",
        "\u{202E}",
        "\u{200B}",
        "\u{1b}",
        "sops",
        "_unencrypted",
        "..",
        "/",
        "\\",
    ]);
    prop_oneof![
        (any::<usize>(), fragment).prop_map(|(a, f)| Edit::Insert(a, f)),
        (any::<usize>(), 1usize..32).prop_map(|(a, n)| Edit::Remove(a, n)),
        (any::<usize>(), 1usize..16, 1usize..300).prop_map(|(a, n, t)| Edit::Repeat(a, n, t)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let at = |a: usize, len: usize| a % (len + 1);
        match e {
            Edit::Insert(a, f) => {
                let i = at(*a, chars.len());
                chars.splice(i..i, f.chars());
            }
            Edit::Remove(a, n) => {
                let i = at(*a, chars.len());
                let end = (i + n).min(chars.len());
                chars.drain(i..end);
            }
            Edit::Repeat(a, n, times) => {
                let i = at(*a, chars.len());
                let end = (i + n).min(chars.len());
                let copies = chars[i..end].repeat(*times);
                chars.splice(end..end, copies);
            }
        }
    }
    chars.into_iter().collect()
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
        let text = apply(&seeds[seed.index(seeds.len())], &edits);
        check::check(text.as_bytes());
    }
}
