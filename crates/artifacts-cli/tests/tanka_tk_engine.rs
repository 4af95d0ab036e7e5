//! `--engine tk` with a stand-in `tk` (the real one cannot be installed
//! here): it records its argv, environment, and the file behind
//! `--tla-str-file`, with that file's and its directory's modes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{Fixture, yaml_docs};

const SECRET: &str = "tk-engine-SECRET-value-77";

/// Writes the fake `tk` into `<fixture>/bin`; `mode` picks its behaviour.
fn fake_tk(fx: &Fixture, mode: &str) -> PathBuf {
    let bin = fx.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = fx.dir.path().join("record");
    std::fs::create_dir_all(&record).unwrap();
    let script = format!(
        r#"#!/bin/sh
rec={record}
printf '%s\n' "$@" > "$rec/argv"
env > "$rec/env"
pwd > "$rec/cwd"
prev=
for a in "$@"; do
  if [ "$prev" = "--tla-str-file" ]; then
    f="${{a#secrets_yaml=}}"
    echo "$f" > "$rec/file"
    stat -c %a "$f" > "$rec/file_mode"
    stat -c %a "$(dirname "$f")" > "$rec/dir_mode"
    cat "$f" > "$rec/content"
  fi
  prev="$a"
done
case "{mode}" in
  ok)
    echo "warning from tk" >&2
    printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-tk\n'
    ;;
  fail)
    echo "evaluation failed near: $(cat "$f")" >&2
    exit 1
    ;;
  empty)
    ;;
  garbage)
    echo "just: [a, scalar]"
    ;;
esac
"#,
        record = record.display(),
    );
    let tk = bin.join("tk");
    std::fs::write(&tk, script).unwrap();
    std::fs::set_permissions(&tk, std::fs::Permissions::from_mode(0o755)).unwrap();
    record
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn setup(name: &str) -> Fixture {
    let fx = Fixture::new(name);
    fx.write(
        "environments/default/main.jsonnet",
        "function(secrets_yaml) {}",
    );
    fx.sops_encrypt("default", &format!("app:\n  token: {SECRET}\n"));
    fx
}

fn env_with_fake(fx: &Fixture) -> std::collections::BTreeMap<String, std::ffi::OsString> {
    let mut env = fx.with_key_file();
    let mut path = std::ffi::OsString::from(fx.dir.path().join("bin"));
    path.push(":");
    path.push(&fx.env["PATH"]);
    env.insert("PATH".into(), path);
    env.insert("ARGOCD_APP_REVISION".into(), "feedbeef".into());
    env
}

#[test]
fn secrets_reach_tk_in_a_private_file_never_in_argv() {
    let fx = setup("tk-ok");
    let record = fake_tk(&fx, "ok");
    let env = env_with_fake(&fx);
    let out = fx.run(
        &env,
        &[
            "tanka",
            "show",
            "--engine",
            "tk",
            "--ext-str",
            "x=1",
            "default",
        ],
    );
    out.assert_ok();
    assert_eq!(yaml_docs(&out.stdout)[0]["metadata"]["name"], "from-tk");
    assert!(out.stderr.contains("warning from tk"), "{}", out.stderr);

    let argv: Vec<String> = read(&record.join("argv"))
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        &argv[..3],
        ["show", "--dangerous-allow-redirect", "environments/default"]
    );
    assert!(
        argv.windows(2)
            .any(|w| w == ["--ext-str", "commit_hash=feedbeef"]),
        "{argv:?}"
    );
    assert!(
        argv.windows(2).any(|w| w == ["--ext-str", "x=1"]),
        "{argv:?}"
    );
    assert!(
        argv.iter().any(|a| a.starts_with("secrets_yaml=/")),
        "{argv:?}"
    );
    assert!(
        !argv.iter().any(|a| a.contains(SECRET)),
        "secret in argv: {argv:?}"
    );

    let child_env = read(&record.join("env"));
    assert!(!child_env.contains(SECRET));
    assert!(
        !child_env.contains("SOPS_AGE_KEY_FILE"),
        "key variable leaked to tk"
    );
    assert_eq!(
        read(&record.join("cwd")).trim(),
        fx.root().canonicalize().unwrap().to_str().unwrap()
    );

    assert_eq!(read(&record.join("file_mode")).trim(), "600");
    assert_eq!(read(&record.join("dir_mode")).trim(), "700");
    assert!(read(&record.join("content")).contains(SECRET));
    let file = PathBuf::from(read(&record.join("file")).trim());
    assert!(!file.exists(), "secrets file left behind");
    assert!(
        !file.parent().unwrap().exists(),
        "private directory left behind"
    );
}

#[test]
fn tk_failures_fail_closed_with_redacted_stderr_and_no_leftovers() {
    for (mode, expect) in [
        ("fail", "failed"),
        ("empty", "rendered no Kubernetes objects"),
        ("garbage", "not a Kubernetes object"),
    ] {
        let fx = setup(&format!("tk-{mode}"));
        let record = fake_tk(&fx, mode);
        let out = fx.run(
            &env_with_fake(&fx),
            &["tanka", "show", "--engine", "tk", "default"],
        );
        out.assert_failed_closed();
        assert!(out.stderr.contains(expect), "{mode}: {}", out.stderr);
        assert!(
            !out.stderr.contains(SECRET),
            "{mode}: secret in stderr: {}",
            out.stderr
        );
        let file = PathBuf::from(read(&record.join("file")).trim());
        assert!(
            !file.parent().unwrap().exists(),
            "{mode}: private directory left behind"
        );
    }
}

#[test]
fn a_missing_tk_is_an_error_naming_it() {
    let fx = setup("tk-missing");
    let mut env = fx.with_key_file();
    env.insert(
        "PATH".into(),
        fx.dir.path().join("nothing-here").into_os_string(),
    );
    let out = fx.run(&env, &["tanka", "show", "--engine", "tk", "default"]);
    out.assert_failed_closed();
    assert!(
        out.stderr.contains("could not execute `tk`"),
        "{}",
        out.stderr
    );
}
