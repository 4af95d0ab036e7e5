//! Tests of the fast reader against libyaml: on every YAML input of the
//! repository, on files the real sops 3.11 writes, and on documents our
//! emitter writes (mutated or not), the fast reader either gives up or gives
//! exactly libyaml's tree; and it does not give up on what sops and we write.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::emit::emit;
use super::fast;
use super::parse::parse_libyaml;
use crate::sops::tree::{Item, Map, Value};

/// Checks that the fast reader gives up on `src` or agrees with libyaml;
/// whether it read it.
fn agrees(src: &str) -> Result<bool, String> {
    super::readers_agree(src).map_err(|e| {
        let fast = fast::parse(src);
        let slow = parse_libyaml(src);
        format!("{e}: {src:?}\nfast: {fast:?}\nlibyaml: {slow:?}")
    })
}

fn assert_agrees(src: &str) -> bool {
    agrees(src).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_reads(src: &str) {
    assert!(assert_agrees(src), "the fast reader gives up on {src:?}");
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every YAML file of the repository (tests, fixtures, fuzz seeds, examples).
fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if !matches!(
                &*name,
                "target" | ".git" | ".tools" | "node_modules" | "corpus"
            ) {
                yaml_files(&path, out);
            }
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(path);
        }
    }
}

#[test]
fn every_yaml_file_of_the_repository_reads_the_same_or_is_left_to_libyaml() {
    let mut files = Vec::new();
    yaml_files(&repository_root(), &mut files);
    assert!(files.len() >= 40, "only {} YAML files found", files.len());
    let mut read = 0;
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        // Each file, and each file with its comment lines dropped (most
        // fixtures carry a comment, which alone makes the reader give up).
        let uncommented: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        for src in [&text, &uncommented] {
            match agrees(src) {
                Ok(r) => read += usize::from(r),
                Err(e) => panic!("{}: {e}", f.display()),
            }
        }
    }
    // The sops-written vectors and seeds at least are read.
    assert!(read >= 20, "the fast reader read only {read} files");
}

#[test]
fn the_shapes_sops_writes_are_read() {
    // A file of the bench fleet (scripts/bench-fleet): what `check` reads.
    let mut fleet = String::new();
    for i in 1..=20 {
        fleet.push_str(&format!(
            "a{i}:\n    f: ENC[AES256_GCM,data:z74p8TCjchRt+KxE,iv:sWYsWs6ARTnStnHZGTfKX9GtDyOPO/MrdEJyW0oDCvc=,tag:LRmdwcM1MzrnuhJnNdIceA==,type:str]\n"
        ));
    }
    fleet.push_str(concat!(
        "sops:\n",
        "    age:\n",
        "        - recipient: age1guc5m9svfvuz7yq437neruvgllstaf7umkel8ljdgd7nc2uwkf8s7cqxa3\n",
        "          enc: |\n",
        "            -----BEGIN AGE ENCRYPTED FILE-----\n",
        "            YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBTdUxhUEFVeC9VNzR2Q21h\n",
        "            /aRFE2hxr4R48PNCjIOFKIo=\n",
        "            -----END AGE ENCRYPTED FILE-----\n",
        "    lastmodified: \"2026-11-30T13:39:38Z\"\n",
        "    mac: ENC[AES256_GCM,data:geX1,iv:YADS,tag:MLz/,type:str]\n",
        "    unencrypted_suffix: _unencrypted\n",
        "    version: 3.11.0\n",
    ));
    assert_reads(&fleet);
    let docs = fast::parse(&fleet).unwrap();
    let sops = docs[0].get("sops").unwrap();
    let Value::Map(sops) = sops else { panic!() };
    let Some(Value::Seq(age)) = sops.get("age") else {
        panic!()
    };
    let Item::Value(Value::Map(stanza)) = &age[0] else {
        panic!()
    };
    assert_eq!(
        stanza.get("enc"),
        Some(&Value::Str(
            "-----BEGIN AGE ENCRYPTED FILE-----\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBTdUxhUEFVeC9VNzR2Q21h\n/aRFE2hxr4R48PNCjIOFKIo=\n-----END AGE ENCRYPTED FILE-----\n".into()
        ))
    );
    for src in [
        "{}\n",
        "a: {}\nb: []\nc:\n    - {}\n    - []\n",
        "a: 1\nb: -2.5\nc: true\nd: null\ne: ~\nf:\ng: .nan\nh: 0x1F\ni: 2024-01-02\n",
        "'single': 'it''s'\n\"double\": \"tab\\there \\u00e9 \\U0001F600 \\x41\\\\ \\\"q\\\" \\/ \\N\\_\\L\\P\\0\"\n",
        "list:\n    - - a\n      - b\n    - x: 1\n      \"y\": 2\n    - |\n      text\n",
        "a: |-\n    x\n\n    y\nb: |+\n    z\n\n\nc: |4-\n     lead\n    next\nd: |2\n   x\n",
        "keep: |+\n    end\n",
        "ünï: cödé\nurl: http://x/y#frag\nk: a#b\nsp: a  b   \n",
        "a:\n    b:\n        c:\n            - 1\n            - 2\n    d: e\n",
        "blank:\n\n    inner: 1\n\nnext: 2\n",
        "a: |\nb: |+\n\nc: |-\nd: 1\n",
        "x:\n    a: |\n    b: |+\n\n    c: 1\nl:\n    - |\n    - |-\n\n    - x\n",
        "l:\n    -   a: 1\n        b: 2\n    -  - x\n       - y\n",
        "a: |\n\n\n    x\n\n\nb: 1\n",
        &format!("{}: 1\n", "k".repeat(1000)),
    ] {
        assert_reads(src);
    }
}

#[test]
fn what_libyaml_reads_otherwise_or_refuses_is_left_to_it() {
    for src in [
        "",
        "a: 1",
        "# c\na: 1\n",
        "a: 1 # c\n",
        "a: 'x' # c\n",
        "a: |  # c\n  x\n",
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "a: {b: 1}\n",
        "a: [1]\n",
        "---\na: 1\n",
        "a: 1\n---\nb: 2\n",
        "a: 1\n...\n",
        "\ta: 1\n",
        "a:\t1\n",
        "a: 1\r\n",
        "\u{FEFF}a: 1\n",
        "a: x\u{85}y\n",
        "a: x\u{2028}y\n",
        "a: \x07\n",
        "a: b\n  c\n",
        "a: 'b\n  c'\n",
        "a: \"b\\\n  c\"\n",
        "a: >\n  b\n",
        "? a\n: b\n",
        "a: 1\na: 2\n",
        "a:\n- 1\n",
        "  a: 1\n",
        "a:\n    b: 1\n   c: 2\n",
        "a: b: c\n",
        "a: -\n",
        "- a\n",
        "a: |\n  x\n  \n  y\n",
        "a: |0\n  x\n",
        "a: \"\\q\"\n",
        "a: \"\\uD800\"\n",
        "a : 1\n",
        "a: %x\n",
        "a: @x\n",
        "a: `x\n",
        "a:\n    -\n        b: 1\n",
        "x: |\n  a\n b: 1\n",
        "a #b: 1\n",
        "l:\n    - a #b: 1\n",
        "l:\n    - x #c\n",
        "l:\n    - 'x' #c\n",
        &format!("{}: 1\n", "k".repeat(1100)),
        &format!("\"{}\": 1\n", "k".repeat(1100)),
        "--- a: 1\n",
        "... a: 1\n",
        "a: |-0\n  x\n",
        "a: |0-\n  x\n",
    ] {
        assert!(
            fast::parse(src).is_none(),
            "{src:?} read by the fast reader"
        );
        let _ = assert_agrees(src);
    }
}

#[test]
fn a_duplicate_key_among_many_is_left_to_libyaml() {
    let mut src: String = (0..100).map(|i| format!("k{i}: {i}\n")).collect();
    assert_reads(&src);
    src.push_str("k42: again\n");
    assert!(fast::parse(&src).is_none());
    assert!(parse_libyaml(&src).is_err());
}

/// Runs the real sops: `sops encrypt` on each plaintext, and `sops decrypt`
/// back, both writing YAML; the fast reader reads both exactly as libyaml.
#[test]
fn files_the_real_sops_writes_are_read_like_libyaml_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let key = crate::age::keygen();
    let key_file = dir.path().join("key.txt");
    std::fs::write(&key_file, key.identity_file()).unwrap();
    let long = "word ".repeat(40);
    let plaintexts = [
        "a1:\n    f: s3cret\na2:\n    f: other\n".to_string(),
        "nested:\n  deeper:\n    deepest: value\n  sibling: 2\nlist:\n  - one\n  - 2\n  - true\n  - null\nmaps:\n  - name: a\n    value: 1\n  - name: b\n    nested:\n      x: y\n".into(),
        "multi: |\n  line one\n  line two\nstrip: |-\n  no newline\nkeep: |+\n  kept\n\nlead: \"  leading spaces\\nnext\"\n".into(),
        "quote: \"it's: here # not a comment\"\nsingle: 'x'\nnum: \"123\"\nyes: \"yes\"\nempty: \"\"\nnothing:\nfloat: 1.5\nint: -7\nbool: false\nnul: null\ntime: 2024-01-02T03:04:05Z\n".into(),
        format!("unicode: \"héllo wörld ✓ 😀\"\nkey ü: v\nlong: {long}\nurl: https://example.com/a?b=c#d\n"),
        "emptymap: {}\nemptylist: []\nlistoflists:\n  - - a\n    - b\n  - - c\n".into(),
    ];
    let run = |args: &[&str]| -> String {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        let out = artifacts_testkit::run(
            &artifacts_testkit::sops_bin(),
            &args,
            &[("SOPS_AGE_KEY_FILE", key_file.as_os_str())],
            dir.path(),
            None,
        );
        assert!(
            out.status.success(),
            "sops {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let recipient = key.recipient();
    for (i, plain) in plaintexts.iter().enumerate() {
        let input = dir.path().join(format!("p{i}.yaml"));
        std::fs::write(&input, plain).unwrap();
        let input = input.to_str().unwrap();
        let enc = run(&[
            "--disable-version-check",
            "encrypt",
            "--age",
            &recipient,
            input,
        ]);
        assert_reads(&enc);
        let enc_path = dir.path().join(format!("e{i}.yaml"));
        std::fs::write(&enc_path, &enc).unwrap();
        let dec = run(&[
            "--disable-version-check",
            "decrypt",
            enc_path.to_str().unwrap(),
        ]);
        assert_reads(&dec);
    }
}

/// Linear time: the reader's work (bytes it looked at, counted in tests)
/// stays within a small multiple of the input, for inputs built to make a
/// careless reader quadratic; and it gives up at the depth limit.
#[test]
fn pathological_inputs_take_linear_work() {
    let deep = |n: usize| -> String {
        (0..n)
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect::<String>()
            + &" ".repeat(n)
            + "v: 1\n"
    };
    let sawtooth = |n: usize| -> String {
        let mut s = String::new();
        for j in 0..n {
            for i in 0..50 {
                s.push_str(&format!("{}k{j}:\n", " ".repeat(i)));
            }
            s.push_str(&format!("{}v: 1\n", " ".repeat(50)));
        }
        s
    };
    let inputs = [
        deep(400),
        deep(5_000),
        sawtooth(200),
        format!("a: {}\n", "x".repeat(1 << 20)),
        format!("a: {}\n", "x #".repeat(1 << 18)),
        format!("a: \"{}\"\n", "\\u00e9x".repeat(1 << 17)),
        format!("a: '{}'\n", "''x".repeat(1 << 18)),
        format!("a: |\n{}", "    line\n".repeat(1 << 16)),
        (0..50_000).map(|i| format!("k{i}: {i}\n")).collect(),
        format!("a:\n{}", "    - x\n".repeat(1 << 16)),
        format!("a: {}x\n", "- ".repeat(10_000)),
        format!("l:\n{}x\n", "- ".repeat(10_000)),
        format!("a:\n{}", "\n".repeat(1 << 18)),
    ];
    for src in &inputs {
        fast::STEPS.with(|s| s.set(0));
        let _ = assert_agrees(src);
        let steps = fast::STEPS.with(|s| s.get());
        assert!(
            steps <= 8 * src.len() + 64,
            "{steps} steps for {} bytes starting {:?}",
            src.len(),
            &src[..40.min(src.len())]
        );
    }
    assert!(fast::parse(&deep(400)).is_some());
    assert!(fast::parse(&deep(5_000)).is_none());
}

/// A string our emitter may have to write: plain words, numbers, quotes,
/// indicators, line breaks, leading and trailing spaces, unicode.
fn text(breaks: bool) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z]{1,8}",
        "[0-9]{1,4}",
        Just(" ".to_string()),
        Just(": ".to_string()),
        Just(" #".to_string()),
        Just("#".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just("- ".to_string()),
        Just("|".to_string()),
        Just("{}".to_string()),
        Just("[".to_string()),
        Just("&*!%@`".to_string()),
        Just("\t".to_string()),
        Just("é✓😀".to_string()),
        Just("\u{1}\u{7f}".to_string()),
        Just("true".to_string()),
        Just("null".to_string()),
        Just(".5".to_string()),
        Just("2024-01-02".to_string()),
        Just("---".to_string()),
    ];
    let piece = if breaks {
        prop_oneof![
            4 => piece,
            1 => Just("\n".to_string()),
            1 => Just("\n\n".to_string()),
            1 => Just("\r".to_string()),
            1 => Just("\u{2028}".to_string()),
            1 => Just("\u{85}".to_string()),
        ]
        .boxed()
    } else {
        piece.boxed()
    };
    prop::collection::vec(piece, 0..6).prop_map(|v| v.concat())
}

fn scalar(breaks: bool) -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.0)
        ]
        .prop_map(Value::Float),
        text(breaks).prop_map(Value::Str),
    ]
}

/// A document tree; `sops_like` keeps to what sops writes (keys on one
/// line, of at most 128 bytes; no CR, NEL, LS or PS).
fn tree(sops_like: bool) -> impl Strategy<Value = Map> {
    let key = if sops_like {
        text(false)
            .prop_filter("simple key", |k| k.len() <= 128)
            .boxed()
    } else {
        prop_oneof![text(true), "k{130}"].boxed()
    };
    let breaks = !sops_like;
    let leaf = scalar(breaks);
    let value = leaf.prop_recursive(4, 40, 5, move |inner| {
        let key = key.clone();
        prop_oneof![
            prop::collection::vec(
                prop_oneof![4 => inner.clone().prop_map(Item::Value), 1 => Just(Item::Comment(" c".into()))],
                0..4
            )
            .prop_map(move |items| {
                Value::Seq(if sops_like {
                    items.into_iter().filter(|i| matches!(i, Item::Value(_))).collect()
                } else {
                    items
                })
            }),
            prop::collection::vec((key, inner), 0..4).prop_map(|pairs| {
                let mut m = Map::default();
                for (k, v) in pairs {
                    m.insert(&k, v);
                }
                Value::Map(m)
            }),
        ]
    });
    prop::collection::vec(("[a-z]{1,6}", value), 0..6).prop_map(|pairs| {
        let mut m = Map::default();
        for (k, v) in pairs {
            m.insert(&k, v);
        }
        m
    })
}

/// An edit of emitted YAML: the kinds of change a person or a tool makes.
#[derive(Clone, Debug)]
enum Mutation {
    Comment(usize),
    TrailingComment(usize),
    Indent(usize, bool),
    Tab(usize),
    Crlf,
    Byte(usize, char),
    Document(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        1 => at.prop_map(Mutation::Comment),
        1 => at.prop_map(Mutation::TrailingComment),
        3 => (at, any::<bool>()).prop_map(|(i, more)| Mutation::Indent(i, more)),
        1 => at.prop_map(Mutation::Tab),
        1 => Just(Mutation::Crlf),
        6 => (
            at,
            prop::sample::select(vec![
                ':', '-', ' ', '#', '\'', '"', '|', '>', '\n', 'x', '{', '[', '&', '*', '!', '\\',
                '?', '0', '\t', '\r', 'é'
            ])
        )
            .prop_map(|(i, c)| Mutation::Byte(i, c)),
        1 => at.prop_map(Mutation::Document),
    ]
}

fn mutate(src: &str, m: &Mutation) -> String {
    let lines: Vec<&str> = src.split_inclusive('\n').collect();
    let pick = |i: usize| i % lines.len().max(1);
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    if out.is_empty() {
        return src.to_string();
    }
    match *m {
        Mutation::Comment(i) => out.insert(pick(i), "# note\n".into()),
        Mutation::TrailingComment(i) => {
            let l = &mut out[pick(i)];
            l.pop();
            l.push_str(" # note\n");
        }
        Mutation::Indent(i, more) => {
            let l = &mut out[pick(i)];
            if more {
                l.insert(0, ' ');
            } else if l.starts_with(' ') {
                l.remove(0);
            }
        }
        Mutation::Tab(i) => {
            let l = &mut out[pick(i)];
            if let Some(p) = l.find(' ') {
                l.replace_range(p..=p, "\t");
            }
        }
        Mutation::Crlf => return src.replace('\n', "\r\n"),
        Mutation::Byte(i, c) => {
            let mut s = src.to_string();
            let mut p = i % s.len();
            while !s.is_char_boundary(p) {
                p -= 1;
            }
            let end = p + s[p..].chars().next().map_or(0, char::len_utf8);
            s.replace_range(p..end, c.encode_utf8(&mut [0; 4]));
            return s;
        }
        Mutation::Document(i) => out.insert(pick(i), "---\n".into()),
    }
    out.concat()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// What our emitter writes for sops-like trees the fast reader reads,
    /// exactly as libyaml does.
    #[test]
    fn what_we_emit_is_read_like_libyaml_reads_it(m in tree(true)) {
        let src = emit(&[&m]);
        prop_assert!(agrees(&src).map_err(TestCaseError::fail)?, "gave up on {:?}", src);
    }

    /// On any tree (comments, breaks, long keys) and any edit of its text,
    /// the fast reader gives up or agrees with libyaml.
    #[test]
    fn edited_yaml_is_read_like_libyaml_or_left_to_it(
        m in prop_oneof![3 => tree(true), 1 => tree(false)],
        edits in prop::collection::vec(mutation(), 0..3),
    ) {
        let mut src = emit(&[&m]);
        agrees(&src).map_err(TestCaseError::fail)?;
        for e in &edits {
            src = mutate(&src, e);
            agrees(&src).map_err(TestCaseError::fail)?;
        }
    }
}

#[test]
fn parse_tries_the_fast_reader_first_and_libyaml_only_when_it_gives_up() {
    let pulled = |src: &str| {
        super::libyaml::PULLED.with(|n| n.set(usize::MAX));
        super::parse(src).unwrap();
        super::libyaml::PULLED.with(|n| n.get())
    };
    assert_eq!(
        pulled("a:\n    f: ENC[AES256_GCM,data:x,type:str]\n"),
        usize::MAX
    );
    assert!(pulled("a: 1 # comment\n") < usize::MAX);
}
