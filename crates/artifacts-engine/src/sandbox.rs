//! Generators run in bubblewrap: no network, no host environment, a read-only
//! view of system directories, a private `/tmp`, and only `$out` writable.
//!
//! Inside the sandbox the artifact's directories sit at fixed paths
//! ([`SANDBOX_OUT`], [`SANDBOX_PROMPTS`], [`SANDBOX_IN`]). The host's home
//! directories, `/root`, `/run` (except `/run/current-system` on NixOS) and
//! most of `/etc` (SSH host keys!) are not visible at all: a generator sees
//! the programs it needs, not the keys it does not.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::process::ProcessBuilder;

/// `$out` inside the sandbox.
pub const SANDBOX_OUT: &str = "/artifact/out";
/// `$prompts` inside the sandbox.
pub const SANDBOX_PROMPTS: &str = "/artifact/prompts";
/// `$in` inside the sandbox.
pub const SANDBOX_IN: &str = "/artifact/in";

/// The PATH generators get.
pub const GENERATOR_PATH: &str =
    "/run/current-system/sw/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// System directories mounted read-only when they exist.
const SYSTEM_DIRS: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/nix/store",
    "/run/current-system",
];

/// The parts of `/etc` programs need to start and resolve users, nothing more.
const ETC_ENTRIES: &[&str] = &[
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/static",
    "/etc/pki",
];

/// How generators are isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sandbox {
    /// bubblewrap at this path.
    Bwrap(PathBuf),
    /// No isolation (`--no-sandbox` / `ARTIFACTS_SANDBOX=off`).
    Off,
}

/// The sandbox cannot be used here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// `bwrap` is not on PATH.
    #[error(
        "bubblewrap (`bwrap`) is not installed or not on PATH; generators run in it to keep them off the network and away from your keys (install it, e.g. `apt-get install bubblewrap` or `nix profile install nixpkgs#bubblewrap`, or pass --no-sandbox / set ARTIFACTS_SANDBOX=off to run generators unconfined)"
    )]
    NotInstalled,
    /// `bwrap` exists but cannot create namespaces.
    #[error(
        "bubblewrap at `{path}` cannot create a sandbox here ({stderr}); enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or user.max_user_namespaces > 0), run in a container that allows them, or pass --no-sandbox to run generators unconfined"
    )]
    Unusable {
        /// The bwrap found.
        path: PathBuf,
        /// What it said.
        stderr: String,
    },
}

impl Sandbox {
    /// Finds bwrap on PATH and proves once per process that it works here.
    pub fn detect() -> Result<Sandbox, SandboxError> {
        static PROBE: OnceLock<Result<PathBuf, (bool, PathBuf, String)>> = OnceLock::new();
        let result = PROBE.get_or_init(|| {
            let Some(path) = find_in_path("bwrap") else {
                return Err((false, PathBuf::new(), String::new()));
            };
            let mut probe = ProcessBuilder::new(&path);
            probe.args([
                "--unshare-all",
                "--die-with-parent",
                "--ro-bind",
                "/",
                "/",
                "--",
                "true",
            ]);
            match probe.run() {
                Ok(output) if output.status.success() => Ok(path),
                Ok(output) => Err((true, path, output.stderr.trim().to_owned())),
                Err(error) => Err((true, path, error.to_string())),
            }
        });
        match result {
            Ok(path) => Ok(Sandbox::Bwrap(path.clone())),
            Err((false, _, _)) => Err(SandboxError::NotInstalled),
            Err((true, path, stderr)) => Err(SandboxError::Unusable {
                path: path.clone(),
                stderr: stderr.clone(),
            }),
        }
    }

    /// The command running `generator` with `env`; `dirs` are the host's
    /// (`out`, `prompts`, `in`) directories. Returns the command and the
    /// paths the generator should be told.
    pub fn command(
        &self,
        generator: &Path,
        dirs: &GeneratorDirs,
        env: &[(String, OsString)],
    ) -> ProcessBuilder {
        match self {
            Sandbox::Off => {
                let mut builder = ProcessBuilder::new(generator);
                builder
                    .clear_env()
                    .cwd(&dirs.tmp)
                    .env("PATH", GENERATOR_PATH)
                    .env("HOME", &dirs.tmp)
                    .env("TMPDIR", &dirs.tmp)
                    .env("out", &dirs.out)
                    .env("prompts", &dirs.prompts)
                    .env("in", &dirs.input);
                for (key, value) in env {
                    builder.env(key, value);
                }
                builder
            }
            Sandbox::Bwrap(bwrap) => {
                let mut builder = ProcessBuilder::new(bwrap);
                builder.clear_env().args([
                    "--unshare-all",
                    "--die-with-parent",
                    "--new-session",
                    "--cap-drop",
                    "ALL",
                    "--clearenv",
                    "--proc",
                    "/proc",
                    "--dev",
                    "/dev",
                    "--tmpfs",
                    "/tmp",
                ]);
                for dir in SYSTEM_DIRS.iter().chain(ETC_ENTRIES) {
                    builder.args(["--ro-bind-try", dir, dir]);
                }
                builder
                    .arg("--bind")
                    .arg(&dirs.out)
                    .arg(SANDBOX_OUT)
                    .arg("--ro-bind")
                    .arg(&dirs.prompts)
                    .arg(SANDBOX_PROMPTS)
                    .arg("--ro-bind")
                    .arg(&dirs.input)
                    .arg(SANDBOX_IN);
                if !generator.starts_with("/nix/store") {
                    builder.arg("--ro-bind").arg(generator).arg(generator);
                }
                builder.args(["--chdir", "/tmp"]);
                let mut setenv = |key: &str, value: &std::ffi::OsStr| {
                    builder.arg("--setenv").arg(key).arg(value);
                };
                setenv("PATH", GENERATOR_PATH.as_ref());
                setenv("HOME", "/tmp".as_ref());
                setenv("TMPDIR", "/tmp".as_ref());
                setenv("out", SANDBOX_OUT.as_ref());
                setenv("prompts", SANDBOX_PROMPTS.as_ref());
                setenv("in", SANDBOX_IN.as_ref());
                for (key, value) in env {
                    setenv(key, value);
                }
                builder.arg("--").arg(generator);
                builder
            }
        }
    }
}

/// Host directories handed to a generator.
#[derive(Debug, Clone)]
pub struct GeneratorDirs {
    /// Where it writes its files.
    pub out: PathBuf,
    /// Prompt answers, one file each.
    pub prompts: PathBuf,
    /// Dependencies' files, `in/<artifact>/<file>`.
    pub input: PathBuf,
    /// A private scratch directory (used as `/tmp` without the sandbox).
    pub tmp: PathBuf,
}

/// Looks a program up on `$PATH`.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| crate::backend::check_script(candidate).is_ok())
}
