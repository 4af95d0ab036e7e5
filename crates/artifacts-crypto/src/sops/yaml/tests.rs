//! Tests of the YAML reader and writer, across its parts.

use super::emit::*;
use super::parse::*;
use super::scalar::*;
use super::*;
use crate::sops::tree::{Entry, Map, Value};

#[test]
fn plain_scalars_resolve_like_go_yaml_v3() {
    assert_eq!(resolve_plain("123"), Plain::Int(123));
    assert_eq!(resolve_plain("0x1F"), Plain::Int(31));
    assert_eq!(resolve_plain("0o17"), Plain::Int(15));
    assert_eq!(resolve_plain("1_000"), Plain::Int(1000));
    assert_eq!(resolve_plain("1e20"), Plain::Float(1e20));
    assert_eq!(resolve_plain("-0.0"), Plain::Float(-0.0));
    assert_eq!(resolve_plain(".5"), Plain::Float(0.5));
    assert_eq!(resolve_plain("yes"), Plain::Str);
    assert_eq!(resolve_plain("True"), Plain::Bool(true));
    assert_eq!(resolve_plain("~"), Plain::Null);
    assert_eq!(
        resolve_plain("2024-01-02"),
        Plain::Time("2024-01-02T00:00:00Z".into())
    );
    assert_eq!(resolve_plain("1.2.3"), Plain::Str);
    assert_eq!(resolve_plain("3.11.0"), Plain::Str);
    assert_eq!(resolve_plain("1e400"), Plain::Str);
}

#[test]
fn strings_get_the_quoting_go_yaml_gives_them() {
    let cases = [
        ("plain", "plain\n"),
        ("123", "\"123\"\n"),
        ("yes", "\"yes\"\n"),
        (" lead", "' lead'\n"),
        ("a: b", "'a: b'\n"),
        ("a\tb", "\"a\\tb\"\n"),
        ("smile \u{1F600}", "\"smile \\U0001F600\"\n"),
        ("a\nb", "|-\n    a\n    b\n"),
        ("a\n", "|\n    a\n"),
        ("a\n\n", "|+\n    a\n\n"),
        ("line one \nline two\n", "\"line one \\nline two\\n\"\n"),
        ("", "\"\"\n"),
        ("it's", "it's\n"),
        ("1:20", "\"1:20\"\n"),
        ("2024-01-01", "\"2024-01-01\"\n"),
    ];
    for (s, want) in cases {
        assert_eq!(emit_value(&Value::Str(s.into())), want, "{s:?}");
    }
}

#[test]
fn comments_attach_before_the_entry_they_precede() {
    let src = "# top\na:\n  # inner\n  b: 1 # line\n  c: 2\n# foot\n";
    let docs = parse(src).unwrap();
    let out = emit(&[&docs[0]]);
    assert_eq!(
        out,
        "# top\na:\n    # inner\n    # line\n    b: 1\n    c: 2\n# foot\n"
    );
}

#[test]
fn nested_layout_matches_go_yaml_v3() {
    let src = "nested:\n- - a\n  - b\n- {x: 1, y: [1, 2], z: {q: r}}\n- []\n";
    let docs = parse(src).unwrap();
    let out = emit(&[&docs[0]]);
    assert_eq!(
        out,
        "nested:\n    - - a\n      - b\n    - x: 1\n      \"y\":\n        - 1\n        - 2\n      z:\n        q: r\n    - []\n"
    );
}

#[test]
fn long_and_multi_line_keys_use_the_complex_key_form() {
    // The fuzzer found that a key over 1024 characters written as
    // `key: value` cannot be read back; go-yaml switches at 128 bytes.
    let long = "k".repeat(129);
    let src = format!(
        "\"{long}\": v\n\"{long}2\":\n  a: 1\n  \"{long}3\": [1, 2]\n\"a\\nb\": 3\nlist:\n  - \"{long}\": x\n    y: 2\n"
    );
    let docs = parse(&src).unwrap();
    let out = emit(&[&docs[0]]);
    assert_eq!(
        out,
        format!(
            "? {long}\n: v\n? {long}2\n:   a: 1\n    ? {long}3\n    :   - 1\n        - 2\n? |-\n    a\n    b\n: 3\nlist:\n    - ? {long}\n      : x\n      \"y\": 2\n"
        )
    );
    assert_eq!(parse(&out).unwrap(), docs);
    let k128 = "k".repeat(128);
    assert_eq!(
        emit_value(&Value::Map(Map(vec![Entry::Pair(
            k128.clone(),
            Value::Int(1)
        )]))),
        format!("{k128}: 1\n")
    );
}

#[test]
fn comments_end_at_any_line_break() {
    // The fuzzer found a comment that ran past a `\r` and swallowed the
    // YAML after it.
    let docs = parse("a: 1 # one\r? b\r: 2\r# two\u{2028}c: 3\n").unwrap();
    let m = &docs[0];
    assert_eq!(m.get("b"), Some(&Value::Int(2)));
    assert_eq!(m.get("c"), Some(&Value::Int(3)));
    let out = emit(&[m]);
    assert_eq!(out, "# one\na: 1\nb: 2\n# two\nc: 3\n");
    // A decrypted comment with line breaks stays comment lines.
    let m = Map(vec![Entry::Comment("x\ny: 1\r\nz".into())]);
    assert_eq!(emit(&[&m]), "#x\n#y: 1\n#z\n");
}

#[test]
fn a_comment_after_a_block_scalar_is_not_on_its_line() {
    // The fuzzer found it moving before the entry above on each write.
    let src = "a: |-\n    x\n    y\n# c\nb: 2\n";
    let out = emit(&[&parse(src).unwrap()[0]]);
    assert_eq!(out, src);
}

#[test]
fn a_byte_order_mark_does_not_shift_comments() {
    let docs = parse("\u{FEFF}# é\na: é # ü\nb: 2\n").unwrap();
    assert_eq!(emit(&[&docs[0]]), "# é\n# ü\na: é\nb: 2\n");
}

#[test]
fn alias_bombs_and_deep_nesting_are_refused() {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let e = parse(&bomb).unwrap_err();
    assert!(e.0.contains("aliases"), "{}", e.0);
    // A few aliases are fine.
    let docs = parse("a: &x {k: v}\nb: *x\nc: *x\n").unwrap();
    assert_eq!(docs[0].get("c"), docs[0].get("a"));

    let deep = |n: usize| format!("a: {}{}\n", "[".repeat(n), "]".repeat(n));
    assert!(parse(&deep(MAX_DEPTH - 1)).is_ok());
    let e = parse(&deep(MAX_DEPTH)).unwrap_err();
    assert!(e.0.contains("deeper"), "{}", e.0);
    // Aliases cannot stack nesting past the limit either.
    let half = MAX_DEPTH / 2 + 1;
    let src = format!(
        "a: &d {}{}\nb: {}*d{}\n",
        "[".repeat(half),
        "]".repeat(half),
        "[".repeat(half),
        "]".repeat(half)
    );
    assert!(parse(&src).unwrap_err().0.contains("deeper"));
}

#[test]
fn deep_flow_nesting_stops_at_the_limit_without_parsing_the_rest() {
    // libyaml's work grows with the square of the open flow collections;
    // the parser must stop pulling events once the limit is passed.
    for src in [
        format!("a: {}{}\n", "[".repeat(20_000), "]".repeat(20_000)),
        format!("a: {}\n", "{x: ".repeat(50_000)),
        "[".repeat(200_000),
    ] {
        let e = parse(&src).unwrap_err();
        assert!(e.0.contains("deeper than 512"), "{}", e.0);
        let pulled = libyaml::PULLED.with(|n| n.get());
        assert!(pulled <= 2 * MAX_DEPTH + 8, "{pulled} events pulled");
    }
}

#[test]
fn duplicate_keys_are_refused_like_sops_does() {
    // The fuzzer found a document with two `sops` keys: the second one
    // stayed in the data and came back as metadata on the next read.
    let e = parse("a: 1\nb: {x: 1, x: 2}\n").unwrap_err();
    assert!(e.0.contains("`x` is defined twice"), "{}", e.0);
    assert!(parse("a: 1\nsops: {}\nsops: {}\n").is_err());
    assert!(parse("a: {x: 1}\nb: {x: 2}\n---\na: 2\n").is_ok());
    // Keys come from the file: a right-to-left override is escaped.
    let e = parse("\"k\u{202E}\": 1\n\"k\u{202E}\": 2\n").unwrap_err();
    assert!(e.0.contains("`k\\u{202e}` is defined twice"), "{}", e.0);
}

#[test]
fn sequences_and_scalars_at_document_level_are_refused() {
    assert!(parse("- a\n").is_err());
    assert!(parse("just text\n").is_err());
    assert_eq!(parse("").unwrap().len(), 0);
}
