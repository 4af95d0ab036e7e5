//! Property tests against the real sops: random trees (nested maps, lists,
//! ints, floats, bools, null, empty, multi-line and unicode strings,
//! `_unencrypted` keys) encrypted by one side decrypt on the other side to
//! exactly the same plaintext; and a file of ours that the real sops
//! changes (`sops set` of a random value, `sops rotate`) still decrypts on
//! our side exactly like `sops -d`.

mod common;

use artifacts_crypto::Origin;
use artifacts_crypto::sops::{
    self, Document, EncryptOptions, EncryptedFile, Entry, Format, Item, Map, Value,
};
use common::*;
use proptest::prelude::*;

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1_000_000_000_000i64..1_000_000_000_000).prop_map(Value::Int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float),
        prop_oneof![
            Just(1e20),
            Just(0.1),
            Just(-0.0),
            Just(1e-7),
            Just(123456789.0)
        ]
        .prop_map(Value::Float),
        // A multi-line string that starts with a space or newline gets a block
        // indentation indicator; go-yaml always writes `4` there, which is
        // wrong inside lists, so sops and we print those differently (ours
        // is the valid one). Such strings are left out of the comparison.
        "[a-zA-Z0-9 :#'\"é✓日\\-\\n]{0,14}"
            .prop_filter("go-yaml indentation-indicator quirk", |s: &String| {
                !(s.contains('\n') && s.starts_with([' ', '\n']))
            })
            .prop_map(Value::Str),
        Just(Value::Str(String::new())),
    ]
}

fn key() -> impl Strategy<Value = String> {
    ("[a-z][a-z0-9]{0,5}", any::<bool>())
        .prop_map(|(k, unenc)| if unenc { format!("{k}_unencrypted") } else { k })
}

fn map_of(inner: impl Strategy<Value = Value>, max: usize) -> impl Strategy<Value = Map> {
    prop::collection::vec((key(), inner), 1..max).prop_map(|pairs| {
        let mut m = Map::default();
        for (k, v) in pairs {
            if m.get(&k).is_none() {
                m.0.push(Entry::Pair(k, v));
            }
        }
        m
    })
}

fn value() -> impl Strategy<Value = Value> + Clone {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            map_of(inner.clone(), 4).prop_map(Value::Map),
            prop::collection::vec(inner, 0..4)
                .prop_map(|v| Value::Seq(v.into_iter().map(Item::Value).collect())),
        ]
    })
}

fn document() -> impl Strategy<Value = Map> {
    map_of(value(), 6)
}

fn plaintext(root: &Map, format: Format) -> Vec<u8> {
    let doc = Document {
        branches: vec![root.clone()],
    };
    sops::emit_plain(&doc, format).unwrap().to_vec()
}

fn check(root: Map, format: Format, dir: &TestDir, key: &AgeKey) {
    let ext = format.name();
    let plain = plaintext(&root, format);
    let input = dir.write(&format!("in.{ext}"), &plain);
    // Normalize once through sops so both sides start from what sops prints.
    let enc = sops_ok(
        dir,
        &["encrypt", "--age", &key.recipient, input.to_str().unwrap()],
        &[],
    );
    let sops_enc = dir.write(&format!("sops.{ext}"), &enc);
    let expected = sops_ok(
        dir,
        &["decrypt", sops_enc.to_str().unwrap()],
        &key_env(&key.file),
    );

    // sops → ours
    let ours = EncryptedFile::parse(&enc, format, &Origin::file(&sops_enc))
        .unwrap()
        .decrypt(&key.identities())
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ours.to_plain_bytes(None).unwrap()),
        String::from_utf8_lossy(&expected),
        "sops→ours differs for\n{}",
        String::from_utf8_lossy(&plain)
    );
    // ours → sops
    let doc = sops::parse_plain(&plain, format, &Origin::file(&input)).unwrap();
    let opts = EncryptOptions {
        recipients: vec![key.recipient()],
        ..Default::default()
    };
    let our_enc = sops::encrypt(doc, format, &opts, &Origin::file(&input)).unwrap();
    let our_path = dir.write(&format!("ours.{ext}"), &our_enc.to_bytes());
    let out = sops(
        dir,
        &["decrypt", our_path.to_str().unwrap()],
        &key_env(&key.file),
        None,
    );
    assert!(
        out.status.success(),
        "sops rejected our file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&expected),
        "ours→sops differs for\n{}",
        String::from_utf8_lossy(&plain)
    );
}

/// A scalar as the JSON `sops set` takes.
fn json_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Str(s) => serde_json::to_string(s).unwrap(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn check_sops_changes(
    root: Map,
    value: Value,
    at: prop::sample::Index,
    dir: &TestDir,
    key: &AgeKey,
) {
    let plain = plaintext(&root, Format::Yaml);
    let origin = Origin::file("in.yaml");
    let doc = sops::parse_plain(&plain, Format::Yaml, &origin).unwrap();
    let opts = EncryptOptions {
        recipients: vec![key.recipient()],
        ..Default::default()
    };
    let ours = sops::encrypt(doc, Format::Yaml, &opts, &origin).unwrap();
    let path = dir.write("ours.yaml", &ours.to_bytes());
    // An existing top-level key or a new one.
    let keys: Vec<&str> = root.pairs().map(|(k, _)| k).collect();
    let k = if at.index(keys.len() + 1) < keys.len() {
        keys[at.index(keys.len())].to_string()
    } else {
        "added".to_string()
    };
    let value_file = dir.write("value.json", json_value(&value).as_bytes());
    let p = path.to_str().unwrap();
    let index = format!("[{}]", serde_json::to_string(&k).unwrap());
    let steps: [&[&str]; 2] = [
        &[
            "set",
            "--value-file",
            p,
            &index,
            value_file.to_str().unwrap(),
        ],
        &["rotate", "-i", p],
    ];
    for step in steps {
        sops_ok(dir, step, &key_env(&key.file));
        let expected = sops_ok(dir, &["decrypt", p], &key_env(&key.file));
        let got = EncryptedFile::read(&path, None)
            .unwrap()
            .decrypt(&key.identities())
            .unwrap_or_else(|e| panic!("after sops {step:?}: {e}"));
        assert_eq!(
            String::from_utf8_lossy(&got.to_plain_bytes(None).unwrap()),
            String::from_utf8_lossy(&expected),
            "after sops {step:?} on\n{}",
            String::from_utf8_lossy(&plain)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_yaml_trees_round_trip_between_sops_and_ours(root in document()) {
        let dir = TestDir::new("prop-yaml");
        let key = AgeKey::new(&dir, "k.txt");
        check(root, Format::Yaml, &dir, &key);
    }

    #[test]
    fn random_json_trees_round_trip_between_sops_and_ours(root in document()) {
        let dir = TestDir::new("prop-json");
        let key = AgeKey::new(&dir, "k.txt");
        check(root, Format::Json, &dir, &key);
    }

    #[test]
    fn random_trees_changed_by_sops_set_and_rotate_read_back_like_sops_d(
        root in document(),
        value in scalar(),
        at in any::<prop::sample::Index>(),
    ) {
        // sops 3.11's own bug, reproduced with sops alone: `sops set` of -0.0
        // under an `_unencrypted` key writes `-0`, which it then reads back as
        // the integer 0, and its own decrypt fails with "MAC mismatch". Not a
        // difference between us and sops, so not generated here.
        prop_assume!(!matches!(value, Value::Float(f) if f == 0.0 && f.is_sign_negative()));
        let dir = TestDir::new("prop-sops-set");
        let key = AgeKey::new(&dir, "k.txt");
        check_sops_changes(root, value, at, &dir, &key);
    }
}
