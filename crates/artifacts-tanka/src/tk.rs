//! The `tk` engine: runs the real Grafana Tanka,
//! `tk show --dangerous-allow-redirect environments/<env> [--name NAME]`, in the project
//! root, through the workspace's one process builder
//! ([`artifacts_os::process::ProcessBuilder`]).
//!
//! The secrets reach it as `--tla-str-file secrets_yaml=<file>`: the file is
//! created `0600` (`create_new`) inside a scratch directory
//! ([`artifacts_os::scratch::Scratch`], `0700`) that is removed afterwards on
//! success and failure alike, by the signal handler when we are interrupted,
//! and by the next run's sweep when we were killed outright. The value never
//! travels in argv or the environment, and the child does not inherit the
//! key variables (`SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`,
//! `SOPS_AGE_SSH_PRIVATE_KEY_FILE`, `ARTIFACTS_IDENTITY`), nor any of our
//! descriptors beyond 0-2. stdin is `/dev/null`. `tk` runs in its own process
//! group, is stopped (with whatever it started) after [`TIMEOUT`] or when a
//! signal ends our run, and is killed by the kernel if we die first.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use artifacts_os::process::{Output, ProcessBuilder, ProcessError, describe_status};
use artifacts_os::scratch::{Scratch, write_private};

use crate::error::{Error, Result};
use crate::eval::{SECRETS_TLA, VarValue, Vars};
use crate::project::{Environment, Project};
use crate::redact::Redactor;

/// How long `tk show` may run: the built-in evaluator's default budget.
pub const TIMEOUT: Duration = Duration::from_secs(crate::limits::DEFAULT_TIMEOUT_SECS);

/// Variables never handed to `tk`: they locate or hold the age key.
pub const KEY_VARIABLES: &[&str] = &[
    "SOPS_AGE_KEY",
    "SOPS_AGE_KEY_FILE",
    "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
    "ARTIFACTS_IDENTITY",
];

/// How to run `tk`.
#[derive(Debug, Clone)]
pub struct TkConfig {
    /// `tk`, or a path (looked up in `PATH` of `env` when it has no `/`).
    pub program: PathBuf,
    /// The environment the child gets (minus [`KEY_VARIABLES`]).
    pub env: BTreeMap<String, OsString>,
    /// Where the private directory for the secrets file is created.
    pub temp_parent: PathBuf,
}

/// What `tk` printed.
#[derive(Debug)]
pub struct TkOutput {
    /// stdout, unchanged.
    pub stdout: String,
    /// stderr, redacted.
    pub stderr: String,
}

/// At most this much of `tk`'s stderr goes into an error message.
const STDERR_IN_ERROR: usize = 4000;

/// Runs `tk show` for `env`. Its stdout is returned unchanged; checking it
/// is the caller's job.
pub fn show(
    project: &Project,
    env: &Environment,
    secrets_yaml: Option<&str>,
    vars: &Vars,
    name: Option<&str>,
    config: &TkConfig,
    redactor: &Redactor,
) -> Result<TkOutput> {
    let program = artifacts_os::path::find_executable_in(
        &config.program,
        config.env.get("PATH").map(OsString::as_os_str),
    )
    .ok_or_else(|| Error::Spawn {
        program: config.program.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found in PATH"),
    })?;
    let mut builder = ProcessBuilder::new(&program);
    builder.args([
        "show".into(),
        "--dangerous-allow-redirect".into(),
        env.path(),
    ]);
    if let Some(name) = name {
        builder.arg("--name").arg(name);
    }
    // Only these three go into messages: the rest may carry values.
    let shown = builder.to_string();
    for (kind, map) in [("ext", &vars.ext), ("tla", &vars.tla)] {
        for (k, v) in map {
            let (flag, value) = match v {
                VarValue::Str(s) => ("str", s),
                VarValue::Code(c) => ("code", c),
            };
            builder
                .arg(format!("--{kind}-{flag}"))
                .arg(format!("{k}={value}"));
        }
    }

    // Kept alive until tk has exited; removed on drop, on signals, or by the
    // next run's sweep.
    let private = match secrets_yaml {
        Some(text) => {
            let dir = Scratch::new_in("tk", &config.temp_parent)
                .map_err(|e| Error::io("create a private directory in", &config.temp_parent, e))?;
            let file = dir.path().join("secrets.yaml");
            write_private(&file, text.as_bytes()).map_err(|e| Error::io("write", &file, e))?;
            let mut arg = OsString::from(format!("{SECRETS_TLA}="));
            arg.push(file.as_os_str());
            builder.arg("--tla-str-file").arg(arg);
            Some(dir)
        }
        None => None,
    };

    builder.cwd(project.root());
    confine(&mut builder, &config.env);
    let output = builder.run();
    // Remove the secrets before anything else can fail.
    drop(private);
    let output = finish(output, &shown, &program, redactor)?;
    let stderr = redactor.redact(&output.stderr);
    let stdout = String::from_utf8(output.stdout).map_err(|_| Error::Extract {
        env: env.name().to_string(),
        message: "`tk show` printed output that is not UTF-8".into(),
    })?;
    Ok(TkOutput { stdout, stderr })
}

/// Sets up `builder` the way this crate runs every external program (`tk`,
/// `helm`, `kustomize`): only `env` (minus [`KEY_VARIABLES`]) as its
/// environment, stopped after [`TIMEOUT`], and killed by the kernel if we
/// die first (an ArgoCD timeout): it must not keep reading a secrets file,
/// or render for nobody. Process group, `/dev/null` stdin and closed
/// descriptors come with [`ProcessBuilder`].
pub(crate) fn confine(builder: &mut ProcessBuilder, env: &BTreeMap<String, OsString>) {
    builder
        .clear_env()
        .timeout(Some(TIMEOUT))
        .kill_on_parent_death();
    for (k, v) in env {
        if !KEY_VARIABLES.contains(&k.as_str()) {
            builder.env(k, v);
        }
    }
}

/// The output of a program run after [`confine`], or the error naming it:
/// `shown` (its command line without anything secret), how it ended and
/// its stderr, redacted and shortened.
pub(crate) fn finish(
    result: std::result::Result<Output, ProcessError>,
    shown: &str,
    program: &Path,
    redactor: &Redactor,
) -> Result<Output> {
    let output = result.map_err(|error| match error {
        ProcessError::Timeout {
            timeout, stderr, ..
        } => Error::ToolFailed {
            program: shown.to_string(),
            status: format!(
                "did not finish within {}s and was killed",
                timeout.as_secs()
            ),
            stderr: shorten(&redactor.redact(&stderr)),
        },
        ProcessError::Spawn { source, .. } => Error::Spawn {
            program: program.display().to_string(),
            source,
        },
        other => Error::Spawn {
            program: program.display().to_string(),
            source: std::io::Error::other(other),
        },
    })?;
    if !output.status.success() {
        return Err(Error::ToolFailed {
            program: shown.to_string(),
            status: describe_status(&output.status),
            stderr: shorten(&redactor.redact(&output.stderr)),
        });
    }
    Ok(output)
}

/// The start of `stderr`, at most [`STDERR_IN_ERROR`] characters.
fn shorten(stderr: &str) -> String {
    let mut short: String = stderr.chars().take(STDERR_IN_ERROR).collect();
    if short.len() < stderr.len() {
        short.push('…');
    }
    short
}
