//! Tanka's cheap native functions, reachable as `std.native('<name>')`.
//!
//! Reimplemented from tanka's documented behaviour (`pkg/jsonnet/native`):
//!
//! | name | parameters | result |
//! |---|---|---|
//! | `parseJson` | `json` | the value |
//! | `parseYaml` | `yaml` | array of the documents (`[]` for empty text); what yaml.v3 reads otherwise (`017`, `<<`) is refused |
//! | `manifestJsonFromJson` | `json, indent` | re-indented JSON plus a newline (Go's `json.Indent`: order and spelling kept) |
//! | `manifestYamlFromJson` | `json` | YAML as Go's yaml.v3 writes it ([`crate::goyaml`]) |
//! | `escapeStringRegex` | `str` | `str` with RE2 metacharacters escaped |
//! | `regexMatch` | `regex, string` | whether the regex matches anywhere |
//! | `regexSubst` | `regex, src, repl` | every match replaced (`$1`, `${name}` expand) |
//! | `sha256` | `str` | lowercase hex digest |
//! | `helmTemplate` | `name, chart, opts` | the chart's objects by name ([`crate::helm`]) |
//! | `kustomizeBuild` | `path, opts` | the kustomization's objects by name ([`crate::kustomize`]) |
//!
//! The last two run programs; [`register_tools`] adds them. Not provided:
//! `promQLRemoveByLabels`; calling it is a jsonnet error.

use jrsonnet_evaluator::{IStr, Result, Val, error::ErrorKind, function::builtin};
use serde::Deserialize;
use std::rc::Rc;

use crate::external::Tools;

fn fail(message: String) -> jrsonnet_evaluator::Error {
    ErrorKind::RuntimeError(message.into()).into()
}

fn json_to_val(v: serde_json::Value) -> Result<Val> {
    Val::deserialize(v).map_err(|e| fail(format!("converting to jsonnet: {e}")))
}

/// Parses a YAML stream into its documents, as JSON values.
pub(crate) fn yaml_documents(text: &str) -> std::result::Result<Vec<serde_json::Value>, String> {
    // Measured first: libyaml's time grows with the square of the nesting.
    artifacts_model::limits::check_nesting(text)?;
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let v = serde_json::Value::deserialize(doc).map_err(|e| e.to_string())?;
        out.push(v);
    }
    // An empty or comment-only stream is no document at all (tanka: `[]`).
    if out.len() == 1 && out[0].is_null() && !has_content(text) {
        out.clear();
    }
    Ok(out)
}

fn has_content(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim();
        !l.is_empty() && !l.starts_with('#') && l != "---" && l != "..."
    })
}

#[builtin]
fn native_parse_json(json: IStr) -> Result<Val> {
    let v: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| fail(format!("parseJson: {e}")))?;
    json_to_val(v)
}

#[builtin]
fn native_parse_yaml(yaml: IStr) -> Result<Val> {
    let docs = yaml_documents(&yaml).map_err(|e| fail(format!("parsing yaml: {e}")))?;
    crate::goyaml::check_v3_plain_scalars(&yaml, &docs).map_err(fail)?;
    json_to_val(serde_json::Value::Array(docs))
}

#[builtin]
fn native_manifest_json_from_json(json: IStr, indent: f64) -> Result<String> {
    if !(0.0..65.0).contains(&indent) {
        return Err(fail(
            "manifestJsonFromJson: indent must be within 0..64".into(),
        ));
    }
    // Go's json.Indent: the text's key order and number spellings are kept.
    crate::goyaml::json_indent(&json, &" ".repeat(indent as usize))
        .map_err(|e| fail(format!("manifestJsonFromJson: {e}")))
}

#[builtin]
fn native_manifest_yaml_from_json(json: IStr) -> Result<String> {
    let v: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| fail(format!("manifestYamlFromJson: {e}")))?;
    crate::goyaml::marshal(&v, crate::goyaml::Flavor::V3).map_err(fail)
}

/// Escapes RE2 metacharacters as Go's `regexp.QuoteMeta` does.
pub fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[builtin]
fn native_escape_string_regex(str: IStr) -> Result<String> {
    Ok(quote_meta(&str))
}

fn compile(re: &str) -> Result<regex::Regex> {
    regex::Regex::new(re).map_err(|e| fail(format!("invalid regex: {e}")))
}

#[builtin]
fn native_regex_match(regex: IStr, string: IStr) -> Result<bool> {
    Ok(compile(&regex)?.is_match(&string))
}

#[builtin]
fn native_regex_subst(regex: IStr, src: IStr, repl: IStr) -> Result<String> {
    Ok(compile(&regex)?
        .replace_all(&src, repl.as_str())
        .into_owned())
}

#[builtin]
fn native_sha256(str: IStr) -> Result<String> {
    use sha2::Digest;
    Ok(hex::encode(sha2::Sha256::digest(str.as_bytes())))
}

#[builtin(fields(tools: Rc<Tools>))]
fn native_helm_template(
    this: &native_helm_template,
    name: IStr,
    chart: IStr,
    opts: Val,
) -> Result<Val> {
    let opts = crate::eval::to_json(opts)?;
    json_to_val(serde_json::Value::Object(
        crate::helm::template(&this.tools, &name, &chart, &opts).map_err(fail)?,
    ))
}

#[builtin(fields(tools: Rc<Tools>))]
fn native_kustomize_build(this: &native_kustomize_build, path: IStr, opts: Val) -> Result<Val> {
    let opts = crate::eval::to_json(opts)?;
    json_to_val(serde_json::Value::Object(
        crate::kustomize::build(&this.tools, &path, &opts).map_err(fail)?,
    ))
}

/// Registers `helmTemplate` and `kustomizeBuild`, which run programs with `tools`.
pub fn register_tools(ctx: &jrsonnet_stdlib::ContextInitializer, tools: Tools) {
    let tools = Rc::new(tools);
    ctx.add_native(
        "helmTemplate",
        native_helm_template {
            tools: tools.clone(),
        },
    );
    ctx.add_native("kustomizeBuild", native_kustomize_build { tools });
}

/// Registers every native on a stdlib context.
pub fn register(ctx: &jrsonnet_stdlib::ContextInitializer) {
    ctx.add_native("parseJson", native_parse_json {});
    ctx.add_native("parseYaml", native_parse_yaml {});
    ctx.add_native("manifestJsonFromJson", native_manifest_json_from_json {});
    ctx.add_native("manifestYamlFromJson", native_manifest_yaml_from_json {});
    ctx.add_native("escapeStringRegex", native_escape_string_regex {});
    ctx.add_native("regexMatch", native_regex_match {});
    ctx.add_native("regexSubst", native_regex_subst {});
    ctx.add_native("sha256", native_sha256 {});
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_documents_follow_tanka() {
        assert_eq!(yaml_documents("").unwrap(), Vec::<serde_json::Value>::new());
        assert_eq!(yaml_documents("# only\n").unwrap().len(), 0);
        assert_eq!(
            yaml_documents("a: 1\n---\nb: [x]\n").unwrap(),
            vec![serde_json::json!({"a": 1}), serde_json::json!({"b": ["x"]})]
        );
        assert_eq!(
            yaml_documents("[1, 2]\n").unwrap(),
            vec![serde_json::json!([1, 2])]
        );
        assert!(yaml_documents("a: [\n").is_err());
        // Refused before libyaml spends quadratic time on it.
        let deep = yaml_documents(&"[".repeat(200_000)).unwrap_err();
        assert!(deep.contains("deeper than 128"), "{deep}");
    }

    #[test]
    fn quote_meta_matches_go() {
        assert_eq!(quote_meta("a.b*c[d]-e"), r"a\.b\*c\[d\]-e");
    }
}
