//! `std.native('helmTemplate')(name, chart, opts)`: a Helm chart rendered by
//! the real `helm template`, as tanka does it (`pkg/helm`, reimplemented from
//! its behaviour).
//!
//! - The chart is a path relative to the directory of `opts.calledFrom`
//!   (`std.thisFile`), confined to the project ([`crate::external`]).
//! - `helm` is `$TANKA_HELM_PATH`, else `helm` in `PATH`; run as
//!   `helm template <name> <chart> --values <file> [flags]` with tanka's
//!   mapping of `opts`: `apiVersions` → `--api-versions=V` each,
//!   `includeCrds` (default true) → `--include-crds`, `skipTests` →
//!   `--skip-tests`, `kubeVersion` → `--kube-version=V`, `noHooks` →
//!   `--no-hooks`, `namespace` → `--namespace=NS`.
//! - `opts.values` may hold secrets (from `secrets_yaml`), so they never go
//!   into argv: tanka pipes them to `--values -`; here they are written to a
//!   `0600` file in a `0700` scratch directory, removed when helm has exited
//!   (also on failure, on signals, or by the next run's sweep).
//! - A release name starting with `-` is refused: helm would take it for a
//!   flag (`--post-renderer=…` runs a program).
//! - The output's objects (empty documents skipped) are keyed by
//!   `opts.nameFormat` ([`crate::listmap`]).
//!
//! Not done: tanka's in-process cache of rendered charts (an optimisation;
//! the output is the same).

use std::path::PathBuf;

use artifacts_os::process::ProcessBuilder;
use artifacts_os::scratch::{Scratch, write_private};
use serde_json::{Map, Value};

use crate::external::{Tools, objects, read_opts};

const NATIVE: &str = "helmTemplate";

/// `opts` of `helmTemplate`, with tanka's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct HelmOpts {
    /// `values`: handed to helm as a values file.
    pub values: Map<String, Value>,
    /// `apiVersions`.
    pub api_versions: Vec<String>,
    /// `includeCrds` (default true, as `helm install`).
    pub include_crds: bool,
    /// `skipTests`.
    pub skip_tests: bool,
    /// `kubeVersion`.
    pub kube_version: String,
    /// `namespace`.
    pub namespace: String,
    /// `noHooks`.
    pub no_hooks: bool,
    /// `calledFrom`: the calling file.
    pub called_from: String,
    /// `nameFormat`: how the objects are keyed.
    pub name_format: String,
}

impl Default for HelmOpts {
    fn default() -> Self {
        HelmOpts {
            values: Map::new(),
            api_versions: Vec::new(),
            include_crds: true,
            skip_tests: false,
            kube_version: String::new(),
            namespace: String::new(),
            no_hooks: false,
            called_from: String::new(),
            name_format: String::new(),
        }
    }
}

const FIELDS: &[&str] = &[
    "values",
    "apiVersions",
    "includeCrds",
    "skipTests",
    "kubeVersion",
    "namespace",
    "noHooks",
    "calledFrom",
    "nameFormat",
];

impl HelmOpts {
    /// Reads `opts` as tanka does (Go's JSON rules: keys in any case, `null` keeps the default).
    pub fn parse(opts: &Value) -> Result<HelmOpts, String> {
        let mut o = HelmOpts::default();
        read_opts(NATIVE, opts, FIELDS, |field, v| {
            let string = |out: &mut String| v.as_str().map(|s| *out = s.to_string()).is_some();
            let boolean = |out: &mut bool| v.as_bool().map(|b| *out = b).is_some();
            match field {
                "values" => v.as_object().map(|m| o.values = m.clone()).is_some(),
                "apiVersions" => match v.as_array() {
                    Some(items) => {
                        let mut versions = Vec::with_capacity(items.len());
                        for item in items {
                            match item {
                                Value::String(s) => versions.push(s.clone()),
                                // Go leaves a null element at its zero value.
                                Value::Null => versions.push(String::new()),
                                _ => return false,
                            }
                        }
                        o.api_versions = versions;
                        true
                    }
                    None => false,
                },
                "includeCrds" => boolean(&mut o.include_crds),
                "skipTests" => boolean(&mut o.skip_tests),
                "kubeVersion" => string(&mut o.kube_version),
                "namespace" => string(&mut o.namespace),
                "noHooks" => boolean(&mut o.no_hooks),
                "calledFrom" => string(&mut o.called_from),
                "nameFormat" => string(&mut o.name_format),
                _ => unreachable!("only FIELDS are passed"),
            }
        })?;
        if o.called_from.is_empty() {
            return Err(format!(
                "{NATIVE}: `opts.calledFrom` is unset or empty; tanka needs it to find the chart (tanka-util: `helm.new(std.thisFile)`)"
            ));
        }
        Ok(o)
    }

    /// The flags tanka passes for these options, in its order.
    pub fn flags(&self) -> Vec<String> {
        let mut flags: Vec<String> = self
            .api_versions
            .iter()
            .map(|v| format!("--api-versions={v}"))
            .collect();
        if self.include_crds {
            flags.push("--include-crds".into());
        }
        if self.skip_tests {
            flags.push("--skip-tests".into());
        }
        if !self.kube_version.is_empty() {
            flags.push(format!("--kube-version={}", self.kube_version));
        }
        if self.no_hooks {
            flags.push("--no-hooks".into());
        }
        if !self.namespace.is_empty() {
            flags.push(format!("--namespace={}", self.namespace));
        }
        flags
    }
}

/// The arguments of `helm` for one call: `template NAME CHART --values
/// FILE FLAGS…`.
pub fn template_args(
    name: &str,
    chart: &std::path::Path,
    values: &std::path::Path,
    opts: &HelmOpts,
) -> Result<Vec<std::ffi::OsString>, String> {
    if name.starts_with('-') {
        return Err(format!(
            "{NATIVE}: release name `{name}` refused: it starts with `-` and helm would read it as a flag"
        ));
    }
    let mut args: Vec<std::ffi::OsString> = vec![
        "template".into(),
        name.into(),
        chart.into(),
        "--values".into(),
        values.into(),
    ];
    args.extend(opts.flags().into_iter().map(Into::into));
    Ok(args)
}

/// `helmTemplate(name, chart, opts)`: the chart's objects keyed by the name format.
pub fn template(
    tools: &Tools,
    name: &str,
    chart: &str,
    opts: &Value,
) -> Result<Map<String, Value>, String> {
    let opts = HelmOpts::parse(opts)?;
    let chart_path = tools.resolve(NATIVE, "chart", &opts.called_from, chart)?;
    let program = helm_program(tools)?;

    // Values may carry secrets: a private file, never argv.
    let scratch = Scratch::new("helm")
        .map_err(|e| format!("{NATIVE}: creating a private directory for the values: {e}"))?;
    let values_file = scratch.path().join("values.json");
    let text = serde_json::to_vec(&Value::Object(opts.values.clone()))
        .map_err(|e| format!("{NATIVE}: serializing the values: {e}"))?;
    write_private(&values_file, &text)
        .map_err(|e| format!("{NATIVE}: writing `{}`: {e}", values_file.display()))?;

    let mut builder = ProcessBuilder::new(&program);
    builder.args(template_args(name, &chart_path, &values_file, &opts)?);
    let stdout = tools.run(NATIVE, &mut builder, &program);
    drop(scratch);
    let list = objects(NATIVE, "helm template", &stdout?, true)?;
    crate::listmap::list_as_map(list, &opts.name_format).map_err(|e| format!("{NATIVE}: {e}"))
}

fn helm_program(tools: &Tools) -> Result<PathBuf, String> {
    tools
        .named_by("TANKA_HELM_PATH")
        .or_else(|| tools.on_path("helm"))
        .ok_or_else(|| {
            format!(
                "{NATIVE}: `helm` was not found in PATH; install Helm 3 (the `helm` binary from https://helm.sh, not packaged by Debian) or set TANKA_HELM_PATH"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_map_to_tankas_flags() {
        let o = HelmOpts::parse(&json!({"calledFrom": "f", "kubeVersion": "1.29"})).unwrap();
        assert_eq!(o.flags(), ["--include-crds", "--kube-version=1.29"]);
        let o = HelmOpts::parse(&json!({
            "calledFrom": "f",
            "values": {"a": {"b": 1}},
            "apiVersions": ["v1", "apps/v1"],
            "includeCrds": false,
            "skipTests": true,
            "kubeVersion": "v1.20.0",
            "namespace": "monitoring",
            "noHooks": true,
            "nameFormat": "{{ .kind }}",
        }))
        .unwrap();
        assert_eq!(
            o.flags(),
            [
                "--api-versions=v1",
                "--api-versions=apps/v1",
                "--skip-tests",
                "--kube-version=v1.20.0",
                "--no-hooks",
                "--namespace=monitoring"
            ]
        );
        assert_eq!(o.values, *json!({"a": {"b": 1}}).as_object().unwrap());
        assert_eq!(o.name_format, "{{ .kind }}");
        // Go's JSON: null keeps the default, keys match in any case.
        let o = HelmOpts::parse(&json!({"CALLEDFROM": "f", "includeCrds": null, "NoHooks": true}))
            .unwrap();
        assert_eq!(o.flags(), ["--include-crds", "--no-hooks"]);
    }

    #[test]
    fn bad_options_are_errors_naming_the_option() {
        let e = HelmOpts::parse(&json!({"kubeVersion": "1"})).unwrap_err();
        assert!(e.contains("calledFrom"), "{e}");
        let e = HelmOpts::parse(&json!({"calledFrom": "f", "values": [1]})).unwrap_err();
        assert!(e.contains("`opts.values`") && e.contains("array"), "{e}");
        let e = HelmOpts::parse(&json!({"calledFrom": "f", "includeCrds": "yes"})).unwrap_err();
        assert!(e.contains("`opts.includeCrds`"), "{e}");
    }

    #[test]
    fn argv_is_tankas_and_refuses_flag_like_names() {
        let o = HelmOpts::parse(&json!({"calledFrom": "f", "namespace": "ns"})).unwrap();
        let args =
            template_args("app", "/p/chart".as_ref(), "/t/values.json".as_ref(), &o).unwrap();
        assert_eq!(
            args,
            [
                "template",
                "app",
                "/p/chart",
                "--values",
                "/t/values.json",
                "--include-crds",
                "--namespace=ns"
            ]
            .map(std::ffi::OsString::from)
        );
        let e =
            template_args("--post-renderer=sh", "/p/c".as_ref(), "/v".as_ref(), &o).unwrap_err();
        assert!(e.contains("release name") && e.contains("flag"), "{e}");
    }
}
