//! Tree paths in sops' syntax: `["a"]["b"][0]`, for `--extract`, `set` and
//! `unset`.

use super::tree::{Entry, Item, Map, Value};
use crate::error::{Error, Result};

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A mapping key.
    Key(String),
    /// A list index (comments not counted).
    Index(usize),
}

/// A parsed path; empty means the whole document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreePath(pub Vec<Step>);

impl std::fmt::Display for TreePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for s in &self.0 {
            match s {
                Step::Key(k) => write!(f, "[{}]", serde_json::Value::String(k.clone()))?,
                Step::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for TreePath {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        TreePath::parse(s)
    }
}

impl TreePath {
    /// Parses `["a"]["b"][0]` (single quotes allowed, `\"` escapes in keys).
    pub fn parse(s: &str) -> Result<Self> {
        let err = |reason: &str| Error::InvalidPath {
            path: s.to_string(),
            reason: reason.to_string(),
        };
        let mut steps = Vec::new();
        let chars: Vec<char> = s.trim().chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] != '[' {
                return Err(err("expected `[`"));
            }
            i += 1;
            match chars.get(i) {
                Some(&q @ ('"' | '\'')) => {
                    i += 1;
                    let mut key = String::new();
                    loop {
                        match chars.get(i) {
                            None => return Err(err("unterminated key")),
                            Some('\\') if q == '"' => {
                                key.push(*chars.get(i + 1).ok_or_else(|| err("dangling escape"))?);
                                i += 2;
                            }
                            Some(&c) if c == q => {
                                i += 1;
                                break;
                            }
                            Some(&c) => {
                                key.push(c);
                                i += 1;
                            }
                        }
                    }
                    steps.push(Step::Key(key));
                }
                Some(c) if c.is_ascii_digit() => {
                    let st = i;
                    while chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
                        i += 1;
                    }
                    let n: String = chars[st..i].iter().collect();
                    steps.push(Step::Index(n.parse().map_err(|_| err("index too large"))?));
                }
                _ => return Err(err("expected a quoted key or an index after `[`")),
            }
            if chars.get(i) != Some(&']') {
                return Err(err("expected `]`"));
            }
            i += 1;
        }
        Ok(TreePath(steps))
    }
}

fn seq_value(items: &[Item], i: usize) -> Option<&Value> {
    items
        .iter()
        .filter_map(|it| match it {
            Item::Value(v) => Some(v),
            Item::Comment(_) => None,
        })
        .nth(i)
}

fn seq_value_mut(items: &mut [Item], i: usize) -> Option<&mut Value> {
    items
        .iter_mut()
        .filter_map(|it| match it {
            Item::Value(v) => Some(v),
            Item::Comment(_) => None,
        })
        .nth(i)
}

/// Looks a path up in a branch; `None` for the whole branch means "not found".
pub(crate) fn get<'a>(
    root: &'a Map,
    path: &TreePath,
) -> std::result::Result<Option<&'a Value>, String> {
    let mut cur: Option<&Value> = None;
    for (n, step) in path.0.iter().enumerate() {
        let here = TreePath(path.0[..=n].to_vec());
        cur = Some(match (cur, step) {
            (None, Step::Key(k)) => root.get(k).ok_or_else(|| here.to_string())?,
            (Some(Value::Map(m)), Step::Key(k)) => m.get(k).ok_or_else(|| here.to_string())?,
            (Some(Value::Seq(items)), Step::Index(i)) => {
                seq_value(items, *i).ok_or_else(|| here.to_string())?
            }
            _ => return Err(here.to_string()),
        });
    }
    Ok(cur)
}

fn value_from_path(steps: &[Step], leaf: Value) -> Value {
    match steps.split_first() {
        None => leaf,
        Some((Step::Key(k), rest)) => Value::Map(Map(vec![Entry::Pair(
            k.clone(),
            value_from_path(rest, leaf),
        )])),
        Some((Step::Index(_), rest)) => Value::Seq(vec![Item::Value(value_from_path(rest, leaf))]),
    }
}

fn set_in(cur: &mut Value, steps: &[Step], leaf: Value) {
    let Some((first, rest)) = steps.split_first() else {
        *cur = leaf;
        return;
    };
    match (cur, first) {
        (Value::Map(m), Step::Key(_)) => set_in_map(m, steps, leaf),
        (Value::Seq(items), Step::Index(i)) => {
            let len = items.iter().filter(|i| matches!(i, Item::Value(_))).count();
            if *i >= len {
                items.push(Item::Value(value_from_path(rest, leaf)));
            } else if let Some(v) = seq_value_mut(items, *i) {
                set_in(v, rest, leaf);
            }
        }
        (cur, _) => *cur = value_from_path(steps, leaf),
    }
}

fn set_in_map(m: &mut Map, steps: &[Step], leaf: Value) {
    let Some((Step::Key(k), rest)) = steps.split_first() else {
        return;
    };
    match m.get_mut(k) {
        Some(v) => set_in(v, rest, leaf),
        None => {
            m.0.push(Entry::Pair(k.clone(), value_from_path(rest, leaf)))
        }
    }
}

/// Sets a value, creating missing mappings (sops' `set`). The first step
/// must be a key.
pub(crate) fn set(root: &mut Map, path: &TreePath, leaf: Value) -> Result<()> {
    match path.0.first() {
        Some(Step::Key(_)) => {
            set_in_map(root, &path.0, leaf);
            Ok(())
        }
        _ => Err(Error::InvalidPath {
            path: path.to_string(),
            reason: "the path must start with a key".into(),
        }),
    }
}

/// Removes the value at a path; `Err(prefix)` names the missing part.
pub(crate) fn unset(root: &mut Map, path: &TreePath) -> std::result::Result<(), String> {
    let Some((last, parents)) = path.0.split_last() else {
        return Err(String::new());
    };
    let mut cur: Option<&mut Value> = None;
    for (n, step) in parents.iter().enumerate() {
        let here = TreePath(path.0[..=n].to_vec()).to_string();
        cur = Some(match (cur, step) {
            (None, Step::Key(k)) => root.get_mut(k).ok_or(here)?,
            (Some(Value::Map(m)), Step::Key(k)) => m.get_mut(k).ok_or(here)?,
            (Some(Value::Seq(items)), Step::Index(i)) => seq_value_mut(items, *i).ok_or(here)?,
            _ => return Err(here),
        });
    }
    let whole = path.to_string();
    match (cur, last) {
        (None, Step::Key(k)) => root.remove(k).map(|_| ()).ok_or(whole),
        (Some(Value::Map(m)), Step::Key(k)) => m.remove(k).map(|_| ()).ok_or(whole),
        (Some(Value::Seq(items)), Step::Index(i)) => {
            let pos = items
                .iter()
                .enumerate()
                .filter(|(_, it)| matches!(it, Item::Value(_)))
                .nth(*i)
                .map(|(p, _)| p)
                .ok_or(whole)?;
            items.remove(pos);
            Ok(())
        }
        _ => Err(whole),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_keys_and_indices() {
        let p = TreePath::parse(r#"["a"]['b'][3]["q\"x"]"#).unwrap();
        assert_eq!(
            p.0,
            vec![
                Step::Key("a".into()),
                Step::Key("b".into()),
                Step::Index(3),
                Step::Key("q\"x".into())
            ]
        );
        assert_eq!(TreePath::parse("").unwrap().0, vec![]);
        assert!(TreePath::parse("a.b").is_err());
        assert!(TreePath::parse("[\"a\"").is_err());
    }

    #[test]
    fn set_creates_and_replaces_and_unset_removes() {
        let mut m = Map::default();
        set(
            &mut m,
            &TreePath::parse(r#"["a"]["b"]"#).unwrap(),
            Value::Int(1),
        )
        .unwrap();
        set(
            &mut m,
            &TreePath::parse(r#"["a"]["c"][0]"#).unwrap(),
            Value::Bool(true),
        )
        .unwrap();
        set(
            &mut m,
            &TreePath::parse(r#"["a"]["b"]"#).unwrap(),
            Value::Int(2),
        )
        .unwrap();
        let got = get(&m, &TreePath::parse(r#"["a"]["b"]"#).unwrap()).unwrap();
        assert_eq!(got, Some(&Value::Int(2)));
        assert_eq!(
            get(&m, &TreePath::parse(r#"["a"]["c"][0]"#).unwrap()).unwrap(),
            Some(&Value::Bool(true))
        );
        unset(&mut m, &TreePath::parse(r#"["a"]["b"]"#).unwrap()).unwrap();
        assert!(get(&m, &TreePath::parse(r#"["a"]["b"]"#).unwrap()).is_err());
        assert_eq!(
            unset(&mut m, &TreePath::parse(r#"["zz"]["y"]"#).unwrap()),
            Err(r#"["zz"]"#.to_string())
        );
    }
}
