//! dotenv documents (`KEY=value` lines, `#` comments) as sops reads and
//! writes them, including its flattened `sops_…` metadata keys
//! (`sops_age__list_0__map_enc`, sorted, newlines escaped as `\n`).

use super::tree::{Entry, Item, Map, Value, go_format_f};

const PREFIX: &str = "sops_";

/// Parses dotenv text like sops: empty lines dropped, `\n` in values unescaped.
pub(crate) fn parse(src: &str) -> Result<Map, String> {
    let mut m = Map::default();
    for (n, line) in src.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            m.0.push(Entry::Comment(c.to_string()));
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected KEY=value", n + 1))?;
        m.0.push(Entry::Pair(
            k.to_string(),
            Value::Str(v.replace("\\n", "\n")),
        ));
    }
    Ok(m)
}

fn scalar_string(v: &Value) -> Result<String, String> {
    Ok(match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => go_format_f(*f),
        Value::Str(s) | Value::Time(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Map(_) | Value::Seq(_) => {
            return Err("nested values in a dotenv document".into());
        }
    })
}

/// Writes dotenv text; nested values are an error (as in sops).
pub(crate) fn emit(m: &Map) -> Result<String, String> {
    let mut out = String::new();
    for e in &m.0 {
        match e {
            Entry::Comment(c) => {
                out.push('#');
                out.push_str(c);
                out.push('\n');
            }
            Entry::Pair(k, v) => {
                out.push_str(k);
                out.push('=');
                out.push_str(&scalar_string(v)?.replace('\n', "\\n"));
                out.push('\n');
            }
        }
    }
    Ok(out)
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Map(m) => {
            for (k, v) in m.pairs() {
                let key = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}__map_{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Seq(items) => {
            for (i, v) in items
                .iter()
                .filter_map(|i| match i {
                    Item::Value(v) => Some(v),
                    Item::Comment(_) => None,
                })
                .enumerate()
            {
                flatten(&format!("{prefix}__list_{i}"), v, out);
            }
        }
        Value::Null => {}
        other => out.push((prefix.to_string(), scalar_string(other).unwrap_or_default())),
    }
}

/// Writes an encrypted dotenv document: data lines, then sorted metadata.
pub(crate) fn emit_encrypted(data: &Map, meta: &Map) -> String {
    let mut out = emit(data).unwrap_or_default();
    let mut flat = Vec::new();
    flatten("", &Value::Map(meta.clone()), &mut flat);
    flat.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in flat {
        out.push_str(PREFIX);
        out.push_str(&k);
        out.push('=');
        out.push_str(&v.replace('\n', "\\n"));
        out.push('\n');
    }
    out
}

enum Seg {
    Key(String),
    Index(usize),
}

fn split_flat(key: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut rest = key;
    // The first segment is a plain key.
    let next = |s: &str| {
        let a = s.find("__map_");
        let b = s.find("__list_");
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (x, y) => x.or(y),
        }
    };
    let first_end = next(rest).unwrap_or(rest.len());
    segs.push(Seg::Key(rest[..first_end].to_string()));
    rest = &rest[first_end..];
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("__map_") {
            let end = next(r).unwrap_or(r.len());
            segs.push(Seg::Key(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("__list_") {
            let end = next(r).unwrap_or(r.len());
            segs.push(Seg::Index(r[..end].parse().unwrap_or(0)));
            rest = &r[end..];
        } else {
            break;
        }
    }
    segs
}

fn insert(target: &mut Value, segs: &[Seg], leaf: String) {
    let Some((first, rest)) = segs.split_first() else {
        *target = Value::Str(leaf);
        return;
    };
    match first {
        Seg::Key(k) => {
            if !matches!(target, Value::Map(_)) {
                *target = Value::Map(Map::default());
            }
            if let Value::Map(m) = target {
                if m.get(k).is_none() {
                    m.0.push(Entry::Pair(k.clone(), Value::Null));
                }
                if let Some(v) = m.get_mut(k) {
                    insert(v, rest, leaf);
                }
            }
        }
        Seg::Index(i) => {
            if !matches!(target, Value::Seq(_)) {
                *target = Value::Seq(Vec::new());
            }
            if let Value::Seq(items) = target {
                while items.len() <= *i {
                    items.push(Item::Value(Value::Null));
                }
                if let Item::Value(v) = &mut items[*i] {
                    insert(v, rest, leaf);
                }
            }
        }
    }
}

/// Removes the `sops_…` keys from a parsed dotenv branch and rebuilds the
/// metadata mapping.
pub(crate) fn take_metadata(branch: Option<&mut Map>) -> Option<Value> {
    let branch = branch?;
    let mut meta = Value::Map(Map::default());
    let mut found = false;
    branch.0.retain(|e| match e {
        Entry::Pair(k, v) if k.starts_with(PREFIX) => {
            if let Value::Str(s) = v {
                insert(&mut meta, &split_flat(&k[PREFIX.len()..]), s.clone());
                found = true;
            }
            false
        }
        _ => true,
    });
    found.then_some(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattened_metadata_round_trips() {
        let meta = Map(vec![
            Entry::Pair(
                "age".into(),
                Value::Seq(vec![Item::Value(Value::Map(Map(vec![
                    Entry::Pair("recipient".into(), Value::Str("age1x".into())),
                    Entry::Pair("enc".into(), Value::Str("a\nb\n".into())),
                ])))]),
            ),
            Entry::Pair("version".into(), Value::Str("3.11.0".into())),
        ]);
        let data = Map(vec![Entry::Pair("A".into(), Value::Str("1".into()))]);
        let text = emit_encrypted(&data, &meta);
        assert_eq!(
            text,
            "A=1\nsops_age__list_0__map_enc=a\\nb\\n\nsops_age__list_0__map_recipient=age1x\nsops_version=3.11.0\n"
        );
        let mut parsed = parse(&text).unwrap();
        let Some(Value::Map(m)) = take_metadata(Some(&mut parsed)) else {
            panic!("metadata")
        };
        assert_eq!(parsed.0.len(), 1);
        let Some(Value::Seq(age)) = m.get("age") else {
            panic!("age")
        };
        let Item::Value(Value::Map(a)) = &age[0] else {
            panic!("entry")
        };
        assert_eq!(a.get("enc"), Some(&Value::Str("a\nb\n".into())));
    }
}
