//! From evaluated jsonnet to the list of Kubernetes objects, as tanka's
//! `process` stage does it (reimplemented from its behaviour):
//!
//! 1. **Extract**: walk objects and arrays; an object with non-empty string
//!    `apiVersion` and `kind` is a Kubernetes object (its `__ksonnet` field
//!    dropped) and is not walked further; `null` object fields are skipped
//!    (a false `if` in jsonnet); any other primitive is an error naming its
//!    path. Each object must have an object `metadata` with a string `name`
//!    (and string-valued `labels`/`annotations`), except lists.
//! 2. **Unwrap** lists (objects with an `items` array) into their items.
//! 3. **Namespace**: `spec.namespace` goes into namespaced objects without
//!    one (cluster-wide kinds skipped; the `tanka.dev/namespaced` annotation
//!    overrides); empty `metadata.annotations` is removed.
//! 4. **Labels**: `tanka.dev/environment` when `spec.injectLabels`.
//! 5. **Resource defaults**: `spec.resourceDefaults` labels and annotations
//!    where absent.
//! 6. **Sort**: by tanka's kind order (Namespace, NetworkPolicy, … APIService;
//!    other kinds after them, alphabetically), then namespace, name and
//!    generateName. Two different objects that tie are refused (tanka's
//!    order between them is random).
//! 7. An `Environment` among the results is tanka's error (a `spec.json`
//!    and inline environments at once).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::project::Spec;

/// Installation order of kinds, after helm's and tanka's kind sorter.
pub const KIND_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "Ingress",
    "APIService",
];

/// Kinds that are not namespaced (kubectl api-resources --namespaced=false),
/// exactly as tanka lists them.
pub const CLUSTER_WIDE_KINDS: &[&str] = &[
    "APIService",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "ComponentStatus",
    "CSIDriver",
    "CSINode",
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "NodeMetrics",
    "PersistentVolume",
    "PodSecurityPolicy",
    "PriorityClass",
    "RuntimeClass",
    "SelfSubjectAccessReview",
    "SelfSubjectRulesReview",
    "StorageClass",
    "SubjectAccessReview",
    "TokenReview",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
];

const ANNOTATION_NAMESPACED: &str = "tanka.dev/namespaced";
const LABEL_ENVIRONMENT: &str = "tanka.dev/environment";

/// Turns an evaluated environment into its ordered Kubernetes objects.
/// Errors name paths and types, never values.
pub fn process(raw: Value, spec: &Spec) -> Result<Vec<Map<String, Value>>, String> {
    let mut list = extract(raw)?;
    let label = if spec.inject_labels {
        Some(spec.name_label().map_err(unsupported)?)
    } else {
        None
    };
    for m in &mut list {
        namespace(m, &spec.namespace);
        if let Some(label) = &label {
            string_map(m, "labels").insert(LABEL_ENVIRONMENT.into(), label.clone().into());
        }
        for (field, defaults) in [
            ("annotations", &spec.default_annotations),
            ("labels", &spec.default_labels),
        ] {
            if defaults.is_empty() {
                continue;
            }
            let map = string_map(m, field);
            for (k, v) in defaults {
                map.entry(k.clone()).or_insert_with(|| v.clone().into());
            }
        }
    }
    list.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    // tanka sorts a map's values, so objects with equal keys come out in a
    // random order: refuse instead of picking one.
    for pair in list.windows(2) {
        if sort_key(&pair[0]) == sort_key(&pair[1]) && pair[0] != pair[1] {
            let (k, _, ns, name, generate) = sort_key(&pair[0]);
            let _ = k;
            return Err(unsupported(format!(
                "two different objects `{}/{}` in namespace `{ns}`{} (tanka prints them in a random order)",
                kind(&pair[0]),
                name,
                if generate.is_empty() {
                    String::new()
                } else {
                    format!(" with generateName `{generate}`")
                }
            )));
        }
    }
    if list.iter().any(is_environment) {
        return Err("found a tanka Environment resource. Check that you aren't using a spec.json and inline environments simultaneously".into());
    }
    Ok(list)
}

/// Marks a message as naming a feature the builtin engine does not render
/// exactly as tanka does (see [`crate::Error::Unsupported`]).
pub const UNSUPPORTED: &str = "not supported by the builtin engine: ";

fn unsupported(what: String) -> String {
    format!("{UNSUPPORTED}{what}")
}

/// Steps 1 and 2: every Kubernetes object in the tree, lists unwrapped,
/// ordered by path.
pub fn extract(raw: Value) -> Result<Vec<Map<String, Value>>, String> {
    let mut found = BTreeMap::new();
    walk(raw, &mut Vec::new(), &mut found)?;
    unwrap_lists(found)
}

/// Whether tanka takes the object for an inline environment: its
/// `<kind>/<name>` matches `(?i)^Environment/.*$`.
pub fn is_environment(m: &Map<String, Value>) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new("(?i)^Environment/.*$").expect("valid regex"));
    re.is_match(&format!("{}/{}", kind(m), meta_str(m, "name")))
}

fn kind(m: &Map<String, Value>) -> &str {
    m.get("kind").and_then(Value::as_str).unwrap_or("")
}

fn meta_str<'a>(m: &'a Map<String, Value>, key: &str) -> &'a str {
    m.get("metadata")
        .and_then(|md| md.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn sort_key(m: &Map<String, Value>) -> (usize, &str, &str, &str, &str) {
    let k = kind(m);
    let rank = KIND_ORDER
        .iter()
        .position(|o| *o == k)
        .unwrap_or(KIND_ORDER.len());
    // Kinds outside the list share one rank and sort by name among themselves.
    let kind_key = if rank == KIND_ORDER.len() { k } else { "" };
    (
        rank,
        kind_key,
        meta_str(m, "namespace"),
        meta_str(m, "name"),
        meta_str(m, "generateName"),
    )
}

fn is_object(m: &Map<String, Value>) -> bool {
    let nonempty = |k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    nonempty("apiVersion") && nonempty("kind")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn full(path: &[String]) -> String {
    format!(".{}", path.join("."))
}

fn is_list(m: &Map<String, Value>) -> bool {
    m.get("items").is_some_and(Value::is_array)
}

fn verify(m: &Map<String, Value>, path: &str) -> Result<(), String> {
    let mut missing = Vec::new();
    if !m.get("kind").is_some_and(Value::is_string) {
        missing.push("kind");
    }
    if !m.get("apiVersion").is_some_and(Value::is_string) {
        missing.push("apiVersion");
    }
    // Lists (objects with an `items` array) need no metadata.
    if !is_list(m) {
        match m.get("metadata") {
            Some(Value::Object(md)) => {
                if !md.get("name").is_some_and(Value::is_string)
                    && !md.get("generateName").is_some_and(Value::is_string)
                {
                    missing.push("metadata.name");
                }
                for field in ["labels", "annotations"] {
                    match md.get(field) {
                        None | Some(Value::Null) => {}
                        Some(Value::Object(map)) if map.values().all(Value::is_string) => {}
                        Some(_) => missing.push(if field == "labels" {
                            "metadata.labels"
                        } else {
                            "metadata.annotations"
                        }),
                    }
                }
            }
            _ => missing.push("metadata"),
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the Kubernetes object at `{path}` lacks {} (or it has the wrong type)",
            missing.join(", ")
        ))
    }
}

fn walk(
    v: Value,
    path: &mut Vec<String>,
    found: &mut BTreeMap<String, Map<String, Value>>,
) -> Result<(), String> {
    match v {
        Value::Object(mut m) => {
            m.remove("__ksonnet");
            if is_object(&m) {
                let p = full(path);
                verify(&m, &p)?;
                found.insert(p, m);
                return Ok(());
            }
            for (key, value) in m {
                if value.is_null() {
                    continue;
                }
                path.push(key);
                walk(value, path, found)?;
                path.pop();
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, value) in items.into_iter().enumerate() {
                path.push(format!("[{i}]"));
                walk(value, path, found)?;
                path.pop();
            }
            Ok(())
        }
        other => {
            let (base, key) = match path.split_last() {
                Some((last, rest)) => (full(rest), last.clone()),
                None => (".".to_string(), String::new()),
            };
            Err(format!(
                "recursion did not resolve in a valid Kubernetes object: in path `{base}` found key `{key}` of type {} instead",
                type_name(&other)
            ))
        }
    }
}

fn unwrap_lists(
    found: BTreeMap<String, Map<String, Value>>,
) -> Result<Vec<Map<String, Value>>, String> {
    let mut out = Vec::with_capacity(found.len());
    for (path, mut m) in found {
        if !is_list(&m) {
            out.push(m);
            continue;
        }
        let Some(Value::Array(items)) = m.remove("items") else {
            unreachable!("checked above")
        };
        for (i, item) in items.into_iter().enumerate() {
            let name = format!("{path}.items[{i}]");
            let Value::Object(item) = item else {
                return Err(format!(
                    "the list item at `{name}` is a {}, not a Kubernetes object",
                    type_name(&item)
                ));
            };
            verify(&item, &name)?;
            if is_list(&item) {
                // tanka adds the items to the map it is iterating over, so
                // whether it unwraps this one too is up to Go's map order.
                return Err(unsupported(format!("a List inside a List (at `{name}`)")));
            }
            out.push(item);
        }
    }
    Ok(out)
}

fn metadata(m: &mut Map<String, Value>) -> &mut Map<String, Value> {
    // verify() guaranteed an object, except for a list nested in a list.
    if !m.get("metadata").is_some_and(Value::is_object) {
        m.insert("metadata".into(), Value::Object(Map::new()));
    }
    match m.get_mut("metadata") {
        Some(Value::Object(md)) => md,
        _ => unreachable!("just inserted"),
    }
}

/// `metadata.<field>` as a map, created (or replaced, when not an object) as needed.
fn string_map<'a>(m: &'a mut Map<String, Value>, field: &str) -> &'a mut Map<String, Value> {
    let md = metadata(m);
    if !md.get(field).is_some_and(Value::is_object) {
        md.insert(field.into(), Value::Object(Map::new()));
    }
    match md.get_mut(field) {
        Some(Value::Object(map)) => map,
        _ => unreachable!("just inserted"),
    }
}

fn namespace(m: &mut Map<String, Value>, default: &str) {
    if default.is_empty() {
        return;
    }
    let mut namespaced = !CLUSTER_WIDE_KINDS.contains(&kind(m));
    let md = metadata(m);
    if let Some(s) = md
        .get("annotations")
        .and_then(|a| a.get(ANNOTATION_NAMESPACED))
        .and_then(Value::as_str)
    {
        namespaced = s == "true";
    }
    if namespaced && !md.get("namespace").is_some_and(Value::is_string) {
        md.insert("namespace".into(), default.into());
    }
    // tanka reads the annotations through an accessor that replaces
    // anything but an object by `{}`, then drops them when empty.
    if md
        .get("annotations")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty)
    {
        md.remove("annotations");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Spec {
        Spec::new("environments/default", "environments/default/main.jsonnet")
    }

    fn names(list: &[Map<String, Value>]) -> Vec<String> {
        list.iter()
            .map(|m| format!("{}/{}", kind(m), meta_str(m, "name")))
            .collect()
    }

    #[test]
    fn extracts_nested_objects_and_lists_in_tanka_order() {
        let raw = json!({
            "app": {
                "deploy": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}},
                "svc": [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}],
                "off": null,
            },
            "ns": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}},
            "crd": {"apiVersion": "example.com/v1", "kind": "Zeta", "metadata": {"name": "a"}},
            "crd2": {"apiVersion": "example.com/v1", "kind": "Alpha", "metadata": {"name": "b"}},
            "list": {"apiVersion": "v1", "kind": "ConfigMapList", "items": [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "z"}},
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "y", "namespace": "other"}},
            ]},
        });
        let list = process(raw, &spec()).unwrap();
        assert_eq!(
            names(&list),
            [
                "Namespace/prod",
                "ConfigMap/z",
                "ConfigMap/y",
                "Service/web",
                "Deployment/web",
                "Alpha/b",
                "Zeta/a"
            ]
        );
        // default namespace injected, not into the Namespace itself
        assert_eq!(meta_str(&list[1], "namespace"), "default");
        assert_eq!(meta_str(&list[2], "namespace"), "other");
        assert_eq!(meta_str(&list[0], "namespace"), "");
    }

    #[test]
    fn primitives_and_missing_names_are_errors_naming_the_path() {
        let e = process(json!({"a": {"b": "secret-value"}}), &spec()).unwrap_err();
        assert!(
            e.contains("`.a`") && e.contains("`b`") && e.contains("string"),
            "{e}"
        );
        assert!(!e.contains("secret-value"));
        let e = process(
            json!({"x": {"apiVersion": "v1", "kind": "Secret", "metadata": {}}}),
            &spec(),
        )
        .unwrap_err();
        assert!(e.contains("metadata.name") && e.contains(".x"), "{e}");
    }

    #[test]
    fn a_list_inside_a_list_is_refused() {
        let inner = json!({"apiVersion": "v1", "kind": "List", "items": []});
        let e = process(
            json!({"l": {"apiVersion": "v1", "kind": "List", "items": [inner]}}),
            &spec(),
        )
        .unwrap_err();
        assert!(
            e.starts_with(UNSUPPORTED) && e.contains(".l.items[0]"),
            "{e}"
        );
    }

    #[test]
    fn labels_defaults_and_namespaced_annotation() {
        let mut s = spec();
        s.inject_labels = true;
        s.namespace = "apps".into();
        s.default_labels = [("team".to_string(), "infra".to_string())].into();
        let raw = json!({"a": {"apiVersion": "v1", "kind": "ClusterRole", "metadata": {
            "name": "r", "labels": {"team": "mine"},
            "annotations": {"tanka.dev/namespaced": "true"}}}});
        let list = process(raw, &s).unwrap();
        let md = &list[0]["metadata"];
        assert_eq!(md["namespace"], "apps");
        assert_eq!(md["labels"]["team"], "mine");
        assert_eq!(md["labels"][LABEL_ENVIRONMENT].as_str().unwrap().len(), 48);
    }
}
