//! Runtime hardening (issue 12): generators never run as root, the sandbox
//! keeps them away from the kernel's knobs and the host's keys, no
//! descriptor of ours reaches any child, the binary itself is not dumpable,
//! and a closed stdout is a clean exit.
//!
//! These tests run as root, as `activate` does at boot, and where the user
//! matters also as `nobody` (the project handed to it with `chown`).

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::{Project, Run};

/// `nobody` and `nogroup`.
const NOBODY: (u32, u32) = (65534, 65534);

#[track_caller]
fn assert_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the hardening tests run as root: they prove that generators started by root do not run as root"
    );
}

/// Opens `file` as descriptor 7 of the child, not close-on-exec, as a
/// shell's `7<file` does.
fn with_fd7(command: &mut Command, file: &fs::File) {
    let fd = file.as_raw_fd();
    // SAFETY: dup2 is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if nix::libc::dup2(fd, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Runs `command` with umask 077, as a careful root shell has it: what we
/// hand to the generator's user must not depend on a permissive umask.
fn with_strict_umask(command: &mut Command) {
    // SAFETY: umask is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            nix::libc::umask(0o077);
            Ok(())
        });
    }
}

/// Hands the project, its `$TMPDIR` and `$HOME` to `nobody` and makes
/// `command` run as it.
fn as_nobody(p: &Project, command: &mut Command) {
    for dir in [&p.root, &p.tmp, &p.home] {
        let status = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "chown {}", dir.display());
    }
    command.uid(NOBODY.0).gid(NOBODY.1);
}

/// A secret only root can read, outside the project: what a caller might
/// have open when it starts us (`artifacts generate 7<key`).
fn secret_file(p: &Project, text: &str) -> fs::File {
    let path = p.home.join("caller-secret");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    fs::File::open(&path).unwrap()
}

/// A generator that reports what it can do, one `key:value` a line.
const PROBE: &str = r#"exec > "$out/report" 2>&1
echo "uid:$(id -u)"
echo "gid:$(id -g)"
echo "nnp:$(awk '/^NoNewPrivs/ {print $2}' /proc/self/status)"
echo "capeff:$(awk '/^CapEff/ {print $2}' /proc/self/status)"
echo "seccomp:$(awk '/^Seccomp:/ {print $2}' /proc/self/status)"
# The same value back: harmless where it works, and it must not work.
if (cat /proc/sys/vm/overcommit_memory > /proc/sys/vm/overcommit_memory) 2>/dev/null; then
  echo "procsys:writable"
else
  echo "procsys:refused"
fi
grep -q ' /proc/sys ro,' /proc/self/mountinfo && echo "procsys-mount:ro" || echo "procsys-mount:rw"
test -e /etc/ssl/private && echo "ssl-private:visible" || echo "ssl-private:hidden"
test -e /etc/ssl/certs && echo "ssl-certs:visible" || echo "ssl-certs:hidden"
test -e /etc/shadow && echo "shadow:visible" || echo "shadow:hidden"
test -e /sys/kernel && echo "sys:visible" || echo "sys:hidden"
unshare -U true 2>&1 | sed 's/^/userns:/'
cat /proc/self/fd/7 >/dev/null 2>&1 && echo "fd7:open" || echo "fd7:closed"
# ls's own descriptors: 0-2 and the one reading the directory.
echo "fds:$(ls /proc/self/fd | tr '\n' ' ')"
"#;

fn probe_project(test: &str) -> Project {
    let p = Project::new(test);
    p.recording_backend().generator("probe.sh", PROBE).manifest(
        r#"
default.backend = "rec"
[nixos.m.artifacts.probe]
generator = "generators/probe.sh"
files.report = {}
"#,
    );
    p
}

#[track_caller]
fn report_has(report: &str, expected: &[&str]) {
    for line in expected {
        assert!(
            report.lines().any(|l| l == *line),
            "`{line}` not in the generator's report:\n{report}"
        );
    }
}

/// What every sandboxed generator reports, whoever started us.
const CONFINED: &[&str] = &[
    "uid:65534",
    "gid:65534",
    "nnp:1",
    "capeff:0000000000000000",
    "seccomp:2",
    "procsys:refused",
    "procsys-mount:ro",
    "ssl-private:hidden",
    "ssl-certs:visible",
    "shadow:hidden",
    "sys:hidden",
    // The seccomp filter, not a missing permission, refuses a user namespace.
    "userns:unshare: unshare failed: Function not implemented",
    "fd7:closed",
    "fds:0 1 2 3 ",
];

#[test]
fn sandboxed_generator_started_by_root_runs_as_nobody_and_cannot_touch_the_kernel() {
    assert_root();
    let p = probe_project(
        "sandboxed_generator_started_by_root_runs_as_nobody_and_cannot_touch_the_kernel",
    );
    let secret = secret_file(&p, "caller-secret-1f9e");
    let mut command = p.command(["generate"]);
    with_fd7(&mut command, &secret);
    with_strict_umask(&mut command);
    p.finish(&mut command).success();
    let report = p.stored("nixos/m/probe/report").unwrap();
    report_has(&report, CONFINED);
    assert!(!report.contains("caller-secret"), "{report}");
    // Its output still reached the backend, run as root.
    assert!(p.tmp_leftovers().is_empty(), "{:?}", p.tmp_leftovers());
}

#[test]
fn sandboxed_generator_started_by_a_user_is_confined_the_same_way() {
    assert_root();
    let p = probe_project("sandboxed_generator_started_by_a_user_is_confined_the_same_way");
    let secret = secret_file(&p, "caller-secret-2c4d");
    let mut command = p.command(["generate"]);
    with_fd7(&mut command, &secret);
    as_nobody(&p, &mut command);
    p.finish(&mut command).success();
    let report = p.stored("nixos/m/probe/report").unwrap();
    report_has(&report, CONFINED);
    assert!(p.tmp_leftovers().is_empty(), "{:?}", p.tmp_leftovers());
}

#[test]
fn unsandboxed_generator_started_by_root_still_runs_as_nobody() {
    assert_root();
    let p = Project::new("unsandboxed_generator_started_by_root_still_runs_as_nobody");
    let secret = secret_file(&p, "caller-secret-3b7a");
    // Root's own file in the project, beside the generator: out of nobody's reach.
    p.file("private.key", "project-secret-8d2e");
    fs::set_permissions(
        p.root.join("private.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    p.recording_backend()
        .generator(
            "probe.sh",
            &format!(
                r#"exec > "$out/report" 2>&1
echo "uid:$(id -u)"
echo "nnp:$(awk '/^NoNewPrivs/ {{print $2}}' /proc/self/status)"
cat {key} >/dev/null 2>&1 && echo "project-key:readable" || echo "project-key:unreadable"
cat /proc/self/fd/7 >/dev/null 2>&1 && echo "fd7:open" || echo "fd7:closed"
touch "$TMPDIR/scratch" && echo "tmp:writable" || echo "tmp:read-only""#,
                key = p.root.join("private.key").display()
            ),
        )
        .manifest(
            r#"
default.backend = "rec"
[nixos.m.artifacts.probe]
generator = "generators/probe.sh"
files.report = {}
"#,
        );
    let mut command = p.command(["generate", "--no-sandbox"]);
    with_fd7(&mut command, &secret);
    with_strict_umask(&mut command);
    p.finish(&mut command).success();
    let report = p.stored("nixos/m/probe/report").unwrap();
    report_has(
        &report,
        &[
            "uid:65534",
            "nnp:1",
            "project-key:unreadable",
            "fd7:closed",
            "tmp:writable",
        ],
    );
    assert!(p.tmp_leftovers().is_empty(), "{:?}", p.tmp_leftovers());
}

#[test]
fn backend_scripts_get_no_inherited_descriptors() {
    let p = Project::new("backend_scripts_get_no_inherited_descriptors");
    let secret = secret_file(&p, "caller-secret-4e1b");
    p.file(
        "backend.toml",
        "[fd.nixos]\ncheck = \"./check\"\nserialize = \"./check\"\n",
    );
    p.script(
        "check",
        r#"#!/bin/sh
{ cat /proc/self/fd/7 2>&1 || true; ls /proc/$$/fd | tr '\n' ' '; } > "$(dirname "$0")/check-report" 2>&1
exit 1
"#,
    );
    p.generator("token.sh", r#"echo t > "$out/token""#)
        .manifest(
            r#"
default.backend = "fd"
[nixos.m.artifacts.a]
generator = "generators/token.sh"
files.token = {}
"#,
        );
    let mut command = p.command(["check"]);
    with_fd7(&mut command, &secret);
    p.finish(&mut command).code(1);
    let report = fs::read_to_string(p.root.join("check-report")).unwrap();
    assert!(!report.contains("caller-secret"), "{report}");
    // The shell's own: stdin, stdout, stderr and the one its redirection keeps.
    assert!(report.contains("No such file"), "{report}");
    assert!(!report.split_whitespace().any(|fd| fd == "7"), "{report}");
}

#[test]
fn tk_gets_no_inherited_descriptors() {
    let p = Project::new("tk_gets_no_inherited_descriptors");
    let secret = secret_file(&p, "caller-secret-5a3c");
    let key = p.tanka_with_sops_secret("tk-pw-7731");
    let report = p.root.join("tk-report");
    let tk = p.script(
        "fake-bin/tk",
        &format!(
            "#!/bin/sh\n{{ cat /proc/self/fd/7 2>&1 || true; }} > {report} 2>&1\nexit 3\n",
            report = report.display()
        ),
    );
    let mut command = p.command([
        "tanka",
        "show",
        "default",
        "--engine",
        "tk",
        "--tk",
        tk.to_str().unwrap(),
    ]);
    command.env("SOPS_AGE_KEY_FILE", &key);
    with_fd7(&mut command, &secret);
    p.finish(&mut command).code(1);
    let report = fs::read_to_string(report).unwrap();
    assert!(!report.contains("caller-secret"), "{report}");
    assert!(report.contains("No such file"), "{report}");
}

/// The binary, run as `nobody`, while its generator runs: not dumpable (its
/// `/proc/<pid>` files belong to root, so no other process of the same user
/// can read its memory or environment), core dumps off; SIGQUIT cleans up
/// like SIGTERM and leaves no core file.
#[test]
fn running_binary_is_not_dumpable_and_sigquit_leaves_no_core_and_no_scratch() {
    assert_root();
    let p =
        Project::new("running_binary_is_not_dumpable_and_sigquit_leaves_no_core_and_no_scratch");
    p.slow_artifact("600.5813");
    let mut command = p.command(["-v", "generate"]);
    command.env("ARTIFACTS_PROMPT_SLOW_PW", "quit-canary-6e0f");
    as_nobody(&p, &mut command);
    // Until the generator is about to run: the progress line says so.
    let (mut child, mut stderr, seen) =
        crate::util::spawn_until_stderr(&mut command, "generating nixos/m slow");
    let proc_dir = Path::new("/proc").join(child.id().to_string());
    let status = fs::read_to_string(proc_dir.join("status")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t65534")),
        "{status}"
    );
    assert_eq!(
        fs::metadata(proc_dir.join("environ")).unwrap().uid(),
        0,
        "a dumpable process's /proc files belong to its own user"
    );
    let limits = fs::read_to_string(proc_dir.join("limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().collect::<Vec<_>>()[4..6],
        ["0", "0"],
        "{core}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGQUIT,
    )
    .unwrap();
    let code = child.wait().unwrap().code();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(code, Some(128 + 3), "{seen}{rest}");
    assert!(rest.contains("interrupted"), "{rest}");
    assert!(p.tmp_leftovers().is_empty(), "{:?}", p.tmp_leftovers());
    let cores: Vec<_> = fs::read_dir(&p.root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("core"))
        .collect();
    assert!(cores.is_empty(), "core files: {cores:?}");
}

/// Runs the binary with a stdout whose reader is gone: every write fails with EPIPE.
fn with_closed_stdout(p: &Project, args: &[&str]) -> Run {
    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    let mut command = p.command(args);
    command.stdout(Stdio::from(writer));
    let output = command.output().unwrap();
    Run::new(format!("{command:?}"), &p.root, output)
}

#[test]
fn closed_stdout_ends_printing_commands_with_success() {
    let p = Project::new("closed_stdout_ends_printing_commands_with_success");
    p.token_artifact();
    for args in [
        &["completions", "bash"][..],
        &["man"],
        &["list"],
        &["--json", "list"],
        &["age", "keygen"],
    ] {
        let run = with_closed_stdout(&p, args);
        run.success()
            .stderr_lacks("panicked")
            .stderr_lacks("Broken pipe");
    }
}

/// `base64 -w0` of `text`, as a generator might print it.
fn base64_of(text: &str) -> String {
    let output = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn failing_generator_stderr_never_shows_prompt_answers_or_generated_secrets() {
    let p =
        Project::new("failing_generator_stderr_never_shows_prompt_answers_or_generated_secrets");
    let answer = "Prompt-Canary-90ab";
    p.recording_backend()
        .generator(
            "xtrace.sh",
            r#"set -x
pw=$(cat "$prompts/pw")
token="generated-$pw-token"
printf '%s' "$token" > "$out/token"
echo "$pw" | tr a-z A-Z >&2
printf '%s' "$pw" | base64 >&2
exit 4"#,
        )
        .manifest(
            r#"
default.backend = "rec"
[nixos.m.artifacts.db]
generator = "generators/xtrace.sh"
prompts.pw = {}
files.token = {}
"#,
        );
    let mut command = p.command(["generate"]);
    command.env("ARTIFACTS_PROMPT_DB_PW", answer);
    let run = p.finish(&mut command);
    run.code(1)
        .stderr_has("exit status 4")
        .stderr_has("+ pw=<redacted>")
        .stderr_lacks(answer)
        .stderr_lacks(&answer.to_uppercase())
        .stderr_lacks(base64_of(answer).trim_end_matches('='))
        .stderr_lacks("generated-");
    // Asked for, the raw stderr is there (this is how the test knows the values were printed).
    let mut command = p.command(["generate", "--show-stderr"]);
    command.env("ARTIFACTS_PROMPT_DB_PW", answer);
    p.finish(&mut command)
        .code(1)
        .stderr_has(&format!("+ pw={answer}"))
        .stderr_has(&answer.to_uppercase());
}

#[test]
fn failing_serialize_stderr_never_shows_the_values_it_was_given() {
    let p = Project::new("failing_serialize_stderr_never_shows_the_values_it_was_given");
    p.file(
        "backend.toml",
        "[leaky.nixos]\ncheck = \"./check\"\nserialize = \"./serialize\"\n",
    );
    p.script("check", "#!/bin/sh\nexit 1\n");
    p.script(
        "serialize",
        r#"#!/bin/sh
for f in "$out"/*; do echo "input $(basename "$f"): $(cat "$f")" >&2; od -An -tx1 "$f" | tr -d ' \n' >&2; echo >&2; done
exit 5
"#,
    );
    p.generator(
        "two.sh",
        r#"cp "$prompts/pw" "$out/pw"; head -c 24 /dev/urandom | base64 > "$out/key"; echo "not-a-secret-pubkey" > "$out/pub""#,
    )
    .manifest(
        r#"
default.backend = "leaky"
[nixos.m.artifacts.db]
generator = "generators/two.sh"
prompts.pw = {}
files.pw = {}
files.key = {}
files.pub = { secret = false }
"#,
    );
    let answer = "Serialize-Canary-3c1d";
    let mut command = p.command(["generate"]);
    command.env("ARTIFACTS_PROMPT_DB_PW", answer);
    let run = p.finish(&mut command);
    run.code(1)
        .stderr_has("exit status 5")
        .stderr_has("input pw: <redacted>")
        .stderr_has("input key: <redacted>")
        // Public files are not secrets.
        .stderr_has("input pub: not-a-secret-pubkey")
        .stderr_lacks(answer);
    // The hex dump of the prompt answer is caught too.
    let hex: String = answer.bytes().map(|b| format!("{b:02x}")).collect();
    run.stderr_lacks(&hex);
}

/// Two `generate` runs at once on one sops-nix file: the second waits for
/// the first (saying so, with its pid), or fails at once with `--no-wait`;
/// afterwards every entry is in the shared file and in `artifacts.lock`.
/// The first run's generator blocks on a fifo the test holds: no sleeps.
#[test]
fn concurrent_runs_wait_for_the_project_lock_and_lose_nothing() {
    use crate::tools::{artifacts_keygen, ok, sops};
    assert_root();
    let p = Project::new("concurrent_runs_wait_for_the_project_lock_and_lose_nothing");
    let admin = artifacts_keygen(&p, "admin.key");
    let fifo = p.root.join("release-a");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // The generator runs as nobody (we are root, and it is not sandboxed, to reach the fifo).
    nix::unistd::chown(&fifo, Some(NOBODY.0.into()), Some(NOBODY.1.into())).unwrap();
    p.generator(
        "a.sh",
        &format!(r#"cat {} > /dev/null; echo a > "$out/v""#, fifo.display()),
    );
    p.generator("b.sh", r#"echo b > "$out/v""#);
    p.generator("c.sh", r#"echo c > "$out/v""#);
    p.manifest(&format!(
        r#"
default.backend = "sops-nix"
[nixos.m1]
config.sops-nix.publicUserKeys = ["{}"]
[nixos.m1.artifacts.a]
generator = "generators/a.sh"
files.v = {{}}
[nixos.m1.artifacts.b]
generator = "generators/b.sh"
files.v = {{}}
[nixos.m1.artifacts.c]
generator = "generators/c.sh"
files.v = {{}}
"#,
        admin.public
    ));
    let command = |args: &[&str]| {
        let mut command = p.command(args);
        command.env("SOPS_AGE_KEY_FILE", &admin.path);
        command
    };
    let mut first = command(&["generate", "--no-sandbox", "a"]);
    first.stdout(Stdio::null()).stderr(Stdio::piped());
    let first = first.spawn().unwrap();
    // Opening the fifo returns once a's generator has it open: the first run
    // holds the project lock from before it ran any script until it exits.
    let release = fs::OpenOptions::new().write(true).open(&fifo).unwrap();

    let holder = format!("(pid {})", first.id());
    let run = p.finish(&mut command(&["generate", "--no-wait", "b"]));
    run.code(1)
        .stderr_has("another artifacts run holds the lock on this project")
        .stderr_has(&holder);

    let mut second = command(&["generate", "b", "c"]);
    second.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut second = second.spawn().unwrap();
    let mut second_err = BufReader::new(second.stderr.take().unwrap());
    let mut seen = String::new();
    let waited = loop {
        let mut line = String::new();
        if second_err.read_line(&mut line).unwrap() == 0 {
            break false;
        }
        seen.push_str(&line);
        if line.contains("waiting for another artifacts run on this project") {
            break true;
        }
    };
    // Let the first run finish whatever happened, then judge.
    drop(release);
    let first = first.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut second_err, &mut rest).unwrap();
    let second_status = second.wait().unwrap();
    assert!(
        waited,
        "the second run did not wait for the first:\n{seen}{rest}"
    );
    assert!(seen.contains(&holder), "{seen}");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(second_status.success(), "{seen}{rest}");

    p.run(["check"]).success();
    let lock = p.lock();
    for name in ["a", "b", "c"] {
        assert!(
            lock.to_string().contains(&format!("\"{name}\"")),
            "`{name}` missing from artifacts.lock: {lock}"
        );
    }
    let file = p.root.join("secrets/per-machine/m1.sops.yaml");
    let plain = ok(
        "sops -d",
        sops(
            &p.root,
            &["-d", file.to_str().unwrap()],
            &[("SOPS_AGE_KEY_FILE", admin.path.as_os_str())],
        ),
    );
    let plain = String::from_utf8(plain).unwrap();
    for name in ["a", "b", "c"] {
        assert!(
            plain.contains(&format!("{name}:\n    v: |\n        {name}")),
            "`{name}` missing from the sops file:\n{plain}"
        );
    }
}

/// Starts `generate` with a generator that blocks, and returns once it runs.
fn start_blocked_generation(
    p: &Project,
) -> (std::process::Child, BufReader<std::process::ChildStderr>) {
    let mut command = p.command(["-v", "generate"]);
    command.env("ARTIFACTS_PROMPT_SLOW_PW", "kill-canary-77aa");
    // Until the generator is about to run: the progress line says so.
    let (child, stderr, _) =
        crate::util::spawn_until_stderr(&mut command, "generating nixos/m slow");
    (child, stderr)
}

#[test]
fn scratch_left_by_a_killed_run_is_removed_by_the_next_run_but_not_while_in_use() {
    let p = Project::new(
        "scratch_left_by_a_killed_run_is_removed_by_the_next_run_but_not_while_in_use",
    );
    p.slow_artifact("600.7071");
    // Killed outright: no chance to clean up, the prompt answer stays behind.
    let (mut killed, _) = start_blocked_generation(&p);
    killed.kill().unwrap();
    killed.wait().unwrap();
    // The generator's directory, and the run's `/etc` view for the sandbox.
    let left = p.tmp_leftovers();
    assert_eq!(left.len(), 2, "{left:?}");

    // The next run removes them before it starts its own work.
    let (mut running, mut stderr) = start_blocked_generation(&p);
    let now = p.tmp_leftovers();
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(
        now.iter().all(|dir| !left.contains(dir)),
        "the killed run's directories are still there: {now:?}"
    );

    // A read-only run at the same time leaves the live one alone.
    p.run(["check"]).code(1);
    assert_eq!(p.tmp_leftovers(), now);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(running.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(running.wait().unwrap().code(), Some(128 + 15));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(
        p.tmp_leftovers().is_empty(),
        "{:?}\n{rest}",
        p.tmp_leftovers()
    );
}
