//! The end-to-end harness: a fresh project directory per test, named after
//! the test, the real `artifacts` binary with a scrubbed environment, and a
//! failure dump (command, directory, listing, stdout, stderr) on every failed
//! assertion.

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};

/// The binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_artifacts-under-test"))
}

/// The calls that change a store or make it durable (what the kill tests
/// under strace stop at).
pub const STEPS: &str =
    "rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,fsync,fdatasync,syncfs";

/// A project directory for one test.
pub struct Project {
    /// The project root: manifest, backend.toml, store, lock.
    pub root: PathBuf,
    /// `$TMPDIR` of every run, to prove temporary files are cleaned up.
    pub tmp: PathBuf,
    /// `$HOME` of every run.
    pub home: PathBuf,
}

impl Project {
    /// A fresh, empty project named after the test.
    pub fn new(test: &str) -> Project {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("e2e")
            .join(test);
        if base.exists() {
            // A previous run may have left read-only directories behind.
            let _ = Command::new("chmod")
                .arg("-R")
                .arg("u+rwx")
                .arg(&base)
                .status();
            fs::remove_dir_all(&base).unwrap();
        }
        let project = Project {
            root: base.join("project"),
            tmp: base.join("tmp"),
            home: base.join("home"),
        };
        for dir in [&project.root, &project.tmp, &project.home] {
            fs::create_dir_all(dir).unwrap();
        }
        project
    }

    /// Writes a file under the root, creating parent directories.
    pub fn file(&self, relative: &str, content: &str) -> PathBuf {
        let path = self.root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }

    /// Writes an executable script under the root.
    pub fn script(&self, relative: &str, content: &str) -> PathBuf {
        let path = self.file(relative, content);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Writes `artifacts.toml`.
    pub fn manifest(&self, content: &str) -> &Self {
        self.file("artifacts.toml", content);
        self
    }

    /// Installs the recording backend `rec` (see [`REC_COMMON`]) as `backend.toml`.
    pub fn recording_backend(&self) -> &Self {
        self.file("backends/rec/common.sh", REC_COMMON);
        self.script("backends/rec/check", REC_CHECK);
        self.script("backends/rec/serialize", REC_SERIALIZE);
        self.script("backends/rec/deserialize", REC_DESERIALIZE);
        self.file("backend.toml", REC_BACKEND_TOML);
        self
    }

    /// The smallest useful project: backend `rec`, artifact `a` on machine `m`
    /// with one file `token` written by `generators/token.sh`.
    pub fn token_artifact(&self) -> &Self {
        self.recording_backend()
            .generator("token.sh", r#"echo t > "$out/token""#)
            .manifest(TOKEN_MANIFEST)
    }

    /// Backend `rec` and artifact `slow` on machine `m`: a generator that
    /// copies prompt `pw` to file `pw`, then blocks in `sleep TOKEN` (the
    /// token makes it recognisable among all processes) until killed.
    pub fn slow_artifact(&self, token: &str) -> &Self {
        self.recording_backend()
            .generator(
                "slow.sh",
                &format!(r#"cp "$prompts/pw" "$out/pw"; exec sleep {token}"#),
            )
            .manifest(
                r#"
default.backend = "rec"
[nixos.m.artifacts.slow]
generator = "generators/slow.sh"
prompts.pw = {}
files.pw = {}
"#,
            )
    }

    /// A generator script under `generators/`.
    pub fn generator(&self, name: &str, body: &str) -> &Self {
        self.script(
            &format!("generators/{name}"),
            &format!("#!/bin/sh\nset -eu\n{body}\n"),
        );
        self
    }

    /// A command running the binary in the project root with a scrubbed environment.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(binary());
        command.args(args);
        self.scrubbed(command)
    }

    /// A command running the binary under `program` (strace, with its
    /// options `program_args`), with the environment of [`Project::command`];
    /// the binary's own arguments follow.
    pub fn command_under<I, S>(&self, program: impl AsRef<OsStr>, program_args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(program);
        command.args(program_args).arg(binary());
        self.scrubbed(command)
    }

    /// `command` in the project root with a scrubbed environment.
    fn scrubbed(&self, mut command: Command) -> Command {
        command
            .current_dir(&self.root)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("TMPDIR", &self.tmp)
            .stdin(Stdio::null());
        command
    }

    /// Runs the binary and returns what happened.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(args);
        self.finish(&mut command)
    }

    /// Runs a prepared command.
    pub fn finish(&self, command: &mut Command) -> Run {
        let output = command.output().expect("binary runs");
        Run::new(format!("{command:?}"), &self.root, output)
    }

    /// Everything written under `records/` by the recording backend, concatenated.
    pub fn records(&self) -> String {
        let mut text = String::new();
        if let Ok(entries) = fs::read_dir(self.root.join("records")) {
            let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
            paths.sort();
            for path in paths {
                text.push_str(&format!("== {}\n", path.display()));
                text.push_str(&String::from_utf8_lossy(&fs::read(&path).unwrap()));
            }
        }
        text
    }

    /// Names of the files the recording backend wrote under `records/` starting with `prefix`.
    pub fn record_names(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.root.join("records"))
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(prefix))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// A stored file of the recording backend.
    pub fn stored(&self, relative: &str) -> Option<String> {
        fs::read_to_string(self.root.join("store").join(relative)).ok()
    }

    /// A tanka project (environment `default`, a jsonnet that ignores its
    /// secrets) whose sops artifact `db` holds `password` = `canary`,
    /// generated; returns the age key file that decrypts it.
    pub fn tanka_with_sops_secret(&self, canary: &str) -> PathBuf {
        let key = self.root.join("key.txt");
        self.run(["age", "keygen", "-o", key.to_str().unwrap()])
            .success();
        let recipient = fs::read_to_string(&key)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
            .unwrap();
        self.generator("pw.sh", &format!(r#"echo "{canary}" > "$out/password""#));
        self.manifest(&format!(
            "[tanka.default]\nconfig.sops-nix.publicUserKeys = [\"{recipient}\"]\n[tanka.default.artifacts.db]\nbackend = \"sops\"\ngenerator = \"generators/pw.sh\"\nfiles.password = {{}}\n"
        ));
        self.file("jsonnetfile.json", "{}\n");
        self.file(
            "environments/default/main.jsonnet",
            "function(secrets_yaml) {}\n",
        );
        // A static environment (with spec.json), as tanka tells them apart.
        self.file(
            "environments/default/spec.json",
            "{\"apiVersion\": \"tanka.dev/v1alpha1\", \"kind\": \"Environment\", \"spec\": {\"namespace\": \"default\"}}\n",
        );
        self.run(["generate"]).success();
        key
    }

    /// Whatever is left in `$TMPDIR`.
    pub fn tmp_leftovers(&self) -> Vec<String> {
        fs::read_dir(&self.tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// The lock file, parsed.
    pub fn lock(&self) -> serde_json::Value {
        let text =
            fs::read_to_string(self.root.join("artifacts.lock")).expect("artifacts.lock exists");
        serde_json::from_str(&text).unwrap()
    }
}

/// A finished run.
pub struct Run {
    pub command: String,
    pub cwd: PathBuf,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn new(command: String, cwd: &Path, output: Output) -> Run {
        Run {
            command,
            cwd: cwd.to_owned(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with a full dump.
    #[track_caller]
    pub fn fail(&self, why: &str) -> ! {
        let listing = Command::new("find")
            .arg(&self.cwd)
            .arg("-maxdepth")
            .arg("4")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        panic!(
            "\n{why}\n\ncommand: {}\ncwd: {}\nexit code: {:?}\n\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- files ---\n{}",
            self.command,
            self.cwd.display(),
            self.code,
            self.stdout,
            self.stderr,
            listing
        );
    }

    #[track_caller]
    pub fn code(&self, expected: i32) -> &Run {
        if self.code != Some(expected) {
            self.fail(&format!("expected exit code {expected}"));
        }
        self
    }

    #[track_caller]
    pub fn success(&self) -> &Run {
        self.code(0)
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Run {
        if !self.stderr.contains(needle) {
            self.fail(&format!("stderr lacks {needle:?}"));
        }
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Run {
        if !self.stdout.contains(needle) {
            self.fail(&format!("stdout lacks {needle:?}"));
        }
        self
    }

    #[track_caller]
    pub fn stderr_lacks(&self, needle: &str) -> &Run {
        if self.stderr.contains(needle) {
            self.fail(&format!("stderr contains {needle:?}"));
        }
        self
    }

    #[track_caller]
    pub fn stdout_lacks(&self, needle: &str) -> &Run {
        if self.stdout.contains(needle) {
            self.fail(&format!("stdout contains {needle:?}"));
        }
        self
    }

    /// stdout parsed as JSON: exactly one document, valid against the
    /// shipped schema (`docs/schema/output.schema.json`), whose `exit_code`
    /// is the process's.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        let document: serde_json::Value = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| self.fail(&format!("stdout is not one JSON document: {e}")));
        let problems: Vec<String> = output_schema()
            .iter_errors(&document)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if !problems.is_empty() {
            self.fail(&format!(
                "stdout does not match docs/schema/output.schema.json:\n{}",
                problems.join("\n")
            ));
        }
        if document["exit_code"] != serde_json::json!(self.code) {
            self.fail("the document's exit_code is not the process's exit code");
        }
        document
    }
}

/// The `--json` schema shipped in the repository, compiled once.
pub fn output_schema() -> &'static jsonschema::Validator {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schema/output.schema.json");
        let text = fs::read_to_string(&path).unwrap();
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        jsonschema::draft202012::new(&schema).expect("the output schema is a valid JSON Schema")
    })
}

/// The manifest of [`Project::token_artifact`].
pub const TOKEN_MANIFEST: &str = r#"
default.backend = "rec"
[nixos.m.artifacts.a]
generator = "generators/token.sh"
files.token = {}
"#;

/// Sourced by the recording backend: where an artifact is stored, and a record of each call.
pub const REC_COMMON: &str = r#"
case "$artifact_context" in
  shared) who=shared; dir="store/shared/$artifact" ;;
  nixos) who="$machine"; dir="store/nixos/$machine/$artifact" ;;
  homemanager) who="$username"; dir="store/home/$username/$artifact" ;;
  tanka) who="$environment"; dir="store/tanka/$environment/$artifact" ;;
  *) echo "rec: unknown context $artifact_context" >&2; exit 2 ;;
esac
mkdir -p records
record="records/$(basename "$0")-$artifact_context-$(printf %s "$who" | tr / _)-$artifact"
{
  echo "== env"; env | sort
  echo "== cmdline"; tr '\0' ' ' < /proc/$$/cmdline; echo
  echo "== parent cmdline"; tr '\0' ' ' < /proc/$PPID/cmdline; echo
  echo "== targets"; cat "$targets"; echo
  echo "== inputs"; for f in "$inputs"/*; do echo "- $(basename "$f")"; cat "$f"; echo; done
} > "$record"
"#;

const REC_CHECK: &str = r#"#!/bin/sh
set -eu
. "$(dirname "$0")/common.sh"
for spec in "$inputs"/*; do
  [ -f "$dir/$(basename "$spec")" ] || exit 1
done
exit 0
"#;

const REC_SERIALIZE: &str = r#"#!/bin/sh
set -eu
. "$(dirname "$0")/common.sh"
mkdir -p "$dir"
for file in "$out"/*; do
  cp "$file" "$dir/$(basename "$file")"
done
"#;

const REC_DESERIALIZE: &str = r#"#!/bin/sh
set -eu
. "$(dirname "$0")/common.sh"
for spec in "$inputs"/*; do
  cp "$dir/$(basename "$spec")" "$out/"
done
"#;

const REC_BACKEND_TOML: &str = r#"
[rec.nixos]
check = "./backends/rec/check"
serialize = "./backends/rec/serialize"
deserialize = "./backends/rec/deserialize"

[rec.home]
check = "./backends/rec/check"
serialize = "./backends/rec/serialize"
deserialize = "./backends/rec/deserialize"

[rec.shared]
check = "./backends/rec/check"
serialize = "./backends/rec/serialize"
deserialize = "./backends/rec/deserialize"

[rec.tanka]
check = "./backends/rec/check"
serialize = "./backends/rec/serialize"
deserialize = "./backends/rec/deserialize"
"#;

/// Spawns `command` with stdout discarded and stderr piped, and reads its
/// stderr up to the first line containing `needle` (a progress line saying a
/// step has begun): synchronisation on the program's own output, no sleeps.
/// Returns the child, the rest of its stderr, and what was read so far.
pub fn spawn_until_stderr(
    command: &mut Command,
    needle: &str,
) -> (Child, BufReader<ChildStderr>, String) {
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.lines().any(|line| line.contains(needle)) {
        let before = seen.len();
        stderr.read_line(&mut seen).unwrap();
        assert_ne!(seen.len(), before, "exited early:\n{seen}");
    }
    (child, stderr, seen)
}

/// Waits (on a pidfd each, not by polling; at most 10 s) for every process
/// whose command line holds `token` to exit, and fails naming `what` if one
/// does not: children that must die with us (parent-death signal).
pub fn assert_all_exit(token: &str, what: &str) {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if !String::from_utf8_lossy(&cmdline).contains(token) {
            continue;
        }
        // SAFETY: pidfd_open returns a new descriptor or -1; we own it.
        let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            continue; // already gone
        }
        // SAFETY: `fd` is the descriptor just opened above, owned by nothing else.
        let fd =
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&fd),
            nix::poll::PollFlags::POLLIN,
        )];
        let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16)).unwrap();
        assert_eq!(ready, 1, "{what} (pid {pid}) outlived artifacts");
    }
}

/// Kills every process whose command line mentions `path` (a test's own
/// directory): what a test leaves running on purpose must not reach others.
pub fn kill_all_with(path: &std::path::Path) {
    let needle = path.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// An agenix project: each of `machines` encrypted to `key`, and each of
/// `artifacts` (name and secret files) declared on all of them, made by
/// `generators/<name>.sh`.
pub fn agenix_manifest(key: &str, machines: &[&str], artifacts: &[(&str, &[&str])]) -> String {
    let mut text = String::from("default.backend = \"agenix\"\n");
    for m in machines {
        text.push_str(&format!(
            "[nixos.{m}]\nconfig.agenix.publicUserKeys = [\"{key}\"]\n"
        ));
    }
    let targets = machines
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect::<Vec<_>>()
        .join(", ");
    for (name, files) in artifacts {
        text.push_str(&format!(
            "[artifacts.{name}]\ntargets = [{targets}]\ngenerator = \"generators/{name}.sh\"\n"
        ));
        for file in *files {
            text.push_str(&format!("files.{file} = {{}}\n"));
        }
    }
    text
}

/// Hidden entries (a killed run's leftovers) in the agenix store
/// directories of `machines`, as `machine/name`.
pub fn agenix_leftovers(p: &Project, machines: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for m in machines {
        let dir = p.root.join(format!("secrets/per-machine/{m}"));
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                found.push(format!("{m}/{name}"));
            }
        }
    }
    found
}

/// `cp -a FROM TO`: a tree copied with its modes.
pub fn copy_tree(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a {from:?} {to:?}");
}

/// The value of an agenix artifact stored in `dir`: every one of its
/// `files` decrypted with `key`; panics (naming `label`) unless they all
/// hold one value, so a mix of two generations never passes.
pub fn agenix_value(dir: &Path, files: &[&str], key: &crate::tools::Key, label: &str) -> String {
    let values: Vec<String> = files
        .iter()
        .map(|f| {
            let what = format!("{label}: age -d {f}.age");
            let plain = crate::tools::age_decrypt(&key.path, &dir.join(format!("{f}.age")));
            String::from_utf8(crate::tools::ok(&what, plain)).unwrap()
        })
        .collect();
    assert!(
        values.iter().all(|v| *v == values[0]),
        "{label} mixes generations: {values:?}"
    );
    values[0].clone()
}
