//! The `tk` engine: runs the real Grafana Tanka,
//! `tk show --dangerous-allow-redirect environments/<env>`, in the project
//! root.
//!
//! The secrets reach it as `--tla-str-file secrets_yaml=<file>`: the file is
//! created `0600` (`create_new`) inside a fresh `0700` directory and removed
//! with it afterwards, on success and failure alike (not when this process
//! is killed). The value never travels in argv or the environment, and the
//! child does not inherit the key variables (`SOPS_AGE_KEY`,
//! `SOPS_AGE_KEY_FILE`, `SOPS_AGE_SSH_PRIVATE_KEY_FILE`,
//! `ARTIFACTS_IDENTITY`), nor any of our descriptors beyond 0-2. stdin is
//! `/dev/null`; stdout and stderr are read together (`Command::output`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::eval::{SECRETS_TLA, Vars};
use crate::project::{Environment, Project};
use crate::redact::Redactor;

/// Private directories holding secrets for a running `tk`, so a signal
/// handler can remove them before the process exits ([`remove_private_dirs`]).
static PRIVATE_DIRS: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Removes the private directories of `tk` runs still in progress. For signal
/// handlers, right before exiting.
pub fn remove_private_dirs() {
    if let Ok(live) = PRIVATE_DIRS.lock() {
        for dir in live.iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

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

fn find_program(program: &Path, env: &BTreeMap<String, OsString>) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return Some(program.to_path_buf());
    }
    let path = env.get("PATH")?;
    std::env::split_paths(path)
        .map(|d| d.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn describe(program: &Path, args: &[OsString]) -> String {
    let mut s = program.display().to_string();
    for a in args {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `tk show` for `env`. Its stdout is returned unchanged; checking it
/// is the caller's job.
pub fn show(
    project: &Project,
    env: &Environment,
    secrets_yaml: Option<&str>,
    vars: &Vars,
    config: &TkConfig,
    redactor: &Redactor,
) -> Result<TkOutput> {
    let program = find_program(&config.program, &config.env).ok_or_else(|| Error::Spawn {
        program: config.program.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found in PATH"),
    })?;
    let mut args: Vec<OsString> = vec![
        "show".into(),
        "--dangerous-allow-redirect".into(),
        format!("environments/{}", env.name()).into(),
    ];
    for (k, v) in &vars.ext_str {
        args.push("--ext-str".into());
        args.push(format!("{k}={v}").into());
    }
    for (k, v) in &vars.tla_str {
        args.push("--tla-str".into());
        args.push(format!("{k}={v}").into());
    }

    // Keep the directory alive until tk has exited.
    let private = match secrets_yaml {
        Some(text) => {
            let dir = tempfile::Builder::new()
                .prefix("artifacts-tk-")
                .tempdir_in(&config.temp_parent)
                .map_err(|e| Error::io("create a private directory in", &config.temp_parent, e))?;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io("restrict", dir.path(), e))?;
            if let Ok(mut live) = PRIVATE_DIRS.lock() {
                live.push(dir.path().to_path_buf());
            }
            let file = dir.path().join("secrets.yaml");
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file)
                .map_err(|e| Error::io("create", &file, e))?;
            f.write_all(text.as_bytes())
                .and_then(|()| f.flush())
                .map_err(|e| Error::io("write", &file, e))?;
            drop(f);
            args.push("--tla-str-file".into());
            let mut arg = OsString::from(format!("{SECRETS_TLA}="));
            arg.push(file.as_os_str());
            args.push(arg);
            Some(dir)
        }
        None => None,
    };

    let mut cmd = Command::new(&program);
    cmd.args(&args)
        .current_dir(project.root())
        .env_clear()
        .stdin(Stdio::null());
    // tk dies with us, even when we are killed outright (an ArgoCD timeout):
    // it must not keep reading the secrets file, or render for nobody. And it
    // gets no descriptor of ours beyond 0-2 (a key file opened by the caller).
    // SAFETY: prctl and close_range are async-signal-safe system calls, and
    // nothing else runs between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)?;
            // Close-on-exec, not closed: std reports a failed exec through a
            // pipe of its own. Failing (kernels before 5.11) is fine: everything
            // we open is close-on-exec, and the binary marks inherited
            // descriptors so at start.
            let _ = nix::libc::syscall(
                nix::libc::SYS_close_range,
                3u32,
                u32::MAX,
                nix::libc::CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    for (k, v) in &config.env {
        if !KEY_VARIABLES.contains(&k.as_str()) {
            cmd.env(k, v);
        }
    }
    let output = cmd.output();
    // Remove the secrets before anything else can fail.
    if let Some(dir) = private {
        let path = dir.path().to_path_buf();
        if let Ok(mut live) = PRIVATE_DIRS.lock() {
            live.retain(|p| p != &path);
        }
        dir.close().map_err(|e| Error::io("remove", path, e))?;
    }
    let output = output.map_err(|source| Error::Spawn {
        program: program.display().to_string(),
        source,
    })?;
    let stderr = redactor.redact(&String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        let mut short: String = stderr.chars().take(4000).collect();
        if short.len() < stderr.len() {
            short.push('…');
        }
        return Err(Error::ToolFailed {
            program: describe(&program, &args[..3]),
            status: output.status.to_string(),
            stderr: short,
        });
    }
    let stdout = String::from_utf8(output.stdout).map_err(|_| Error::Extract {
        env: env.name().to_string(),
        message: "`tk show` printed output that is not UTF-8".into(),
    })?;
    Ok(TkOutput { stdout, stderr })
}
