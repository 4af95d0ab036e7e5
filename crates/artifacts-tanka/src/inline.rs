//! Inline environments, as tanka's inline loader picks one: the evaluated
//! output holds `tanka.dev/v1alpha1` `Environment` objects (anywhere, lists
//! unwrapped), the one to render is chosen by `--name`, and its `spec` is
//! applied to its `data`.
//!
//! Without a name there must be exactly one environment. With a name, the
//! evaluation already kept only environments whose `metadata.name` contains
//! it ([`crate::eval::evaluate`]); of several, one whose name equals it
//! exactly wins, else it is tanka's "multiple environments" error. No
//! environment at all is tanka's "no matching environments" error.

use serde_json::{Map, Value};

use crate::process;
use crate::project::Spec;

/// Why no single environment could be chosen (tanka's messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// The output is not made of Kubernetes objects (the extraction error).
    Extract(String),
    /// None, several, or an invalid environment.
    Select(String),
}

/// Chooses the environment in `raw` (the evaluated output of the entry
/// point `entrypoint`, named `path` in messages) and returns its parsed
/// spec and its `data`.
pub fn select(
    raw: Value,
    name: Option<&str>,
    path: &str,
    entrypoint: &str,
) -> Result<(Spec, Value), SelectError> {
    let objects = process::extract(raw).map_err(SelectError::Extract)?;
    let mut envs: Vec<Map<String, Value>> = objects
        .into_iter()
        .filter(process::is_environment)
        .collect();
    let env_name = |m: &Map<String, Value>| {
        m.get("metadata")
            .and_then(|md| md.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if envs.len() > 1 {
        match envs
            .iter()
            .position(|e| name.is_some_and(|n| env_name(e) == n))
        {
            Some(i) => envs = vec![envs.swap_remove(i)],
            None => {
                let mut names: Vec<String> = envs.iter().map(env_name).collect();
                names.sort();
                let list = names.join("\n - ");
                return Err(SelectError::Select(match name {
                    Some(n) => format!(
                        "found multiple Environments in {path:?} matching {n:?}. Provide a more specific name that matches a single one: \n - {list}"
                    ),
                    None => format!(
                        "found multiple Environments in {path:?}. Use `--name` to select a single one: \n - {list}"
                    ),
                }));
            }
        }
    }
    let Some(mut env) = envs.pop() else {
        return Err(SelectError::Select(format!(
            "found no matching environments; run 'tk env list {path}' to view available options"
        )));
    };
    let data = env.remove("data").unwrap_or(Value::Null);
    let spec = Spec::parse(&Value::Object(env), entrypoint)
        .map_err(|e| SelectError::Select(format!("invalid inline Environment: {e}")))?;
    Ok((spec, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str, ns: &str) -> Value {
        json!({"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment",
               "metadata": {"name": name}, "spec": {"namespace": ns},
               "data": {"cm": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ns}}}})
    }

    #[test]
    fn one_environment_anywhere_is_chosen() {
        let raw = json!({"deep": [{"x": env("only", "n1")}]});
        let (spec, data) =
            select(raw, None, "environments/e", "environments/e/main.jsonnet").unwrap();
        assert_eq!(spec.name, "only");
        assert_eq!(spec.namespace, "n1");
        assert_eq!(spec.entrypoint, "environments/e/main.jsonnet");
        assert_eq!(data["cm"]["metadata"]["name"], "n1");
    }

    #[test]
    fn several_need_a_name_and_an_exact_match_wins() {
        let raw = json!([env("base", "a"), env("base-and-more", "b")]);
        let e = select(raw.clone(), None, "environments/e", "m").unwrap_err();
        assert_eq!(
            e,
            SelectError::Select("found multiple Environments in \"environments/e\". Use `--name` to select a single one: \n - base\n - base-and-more".into())
        );
        let (spec, _) = select(raw.clone(), Some("base"), "environments/e", "m").unwrap();
        assert_eq!(spec.name, "base");
        let e = select(raw, Some("bas"), "environments/e", "m").unwrap_err();
        assert!(matches!(e, SelectError::Select(m) if m.contains("matching \"bas\"")));
        let e = select(json!({}), None, "environments/e", "m").unwrap_err();
        assert_eq!(
            e,
            SelectError::Select("found no matching environments; run 'tk env list environments/e' to view available options".into())
        );
    }
}
