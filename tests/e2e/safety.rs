//! The sandbox, secrets never leaking, and cleanup on every exit path.

use std::net::TcpListener;

use crate::util::Project;

#[test]
fn generator_reaching_the_network_fails_because_of_the_sandbox() {
    let p = Project::new("generator_reaching_the_network_fails_because_of_the_sandbox");
    // A listener on the host's loopback: reachable from an unconfined process.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accept = std::thread::spawn(move || {
        let _ = listener.accept();
    });
    p.recording_backend();
    p.script(
        "generators/net.py",
        &format!(
            r#"#!/usr/bin/env python3
import os, socket, sys
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
except OSError as error:
    print("network unreachable:", error, file=sys.stderr)
    sys.exit(1)
open(os.path.join(os.environ["out"], "token"), "w").write("reached the network")
"#
        ),
    );
    p.manifest(
        r#"
default.backend = "rec"
[nixos.m.artifacts.net]
generator = "generators/net.py"
files.token = {}
"#,
    );
    // In the sandbox: python runs (so the tool is there) but the host is unreachable.
    p.run(["generate"])
        .code(1)
        .stderr_has("network unreachable");
    assert!(p.stored("nixos/m/net/token").is_none());
    // The very same generator without the sandbox reaches the listener.
    p.run(["generate", "--no-sandbox"])
        .success()
        .stderr_has("WITHOUT the sandbox");
    assert_eq!(
        p.stored("nixos/m/net/token").as_deref(),
        Some("reached the network")
    );
    accept.join().unwrap();
}

#[test]
fn sandbox_hides_host_secrets_and_environment() {
    let p = Project::new("sandbox_hides_host_secrets_and_environment");
    std::fs::write(p.home.join(".secret-key"), "host key").unwrap();
    p.recording_backend().generator(
        "probe.sh",
        &format!(
            r#"{{
  test -e {home}/.secret-key && echo "home:visible" || echo "home:hidden"
  test -e {root}/PROJECT_ROOT_MARKER && echo "project:visible" || echo "project:hidden"
  test -e /etc/hostname && echo "etc-hostname:visible" || echo "etc-hostname:hidden"
  echo "leak:${{LEAK_ME:-unset}}"
  touch /usr/should-fail 2>/dev/null && echo "usr:writable" || echo "usr:read-only"
}} > "$out/report""#,
            home = p.home.display(),
            root = p.root.display()
        ),
    );
    p.manifest(
        r#"
default.backend = "rec"
[nixos.m.artifacts.probe]
generator = "generators/probe.sh"
files.report = {}
"#,
    );
    let probe_marker = p.root.join("PROJECT_ROOT_MARKER");
    std::fs::write(&probe_marker, "x").unwrap();
    let mut command = p.command(["generate"]);
    command.env("LEAK_ME", "host-environment");
    p.finish(&mut command).success();
    let report = p.stored("nixos/m/probe/report").unwrap();
    for expected in [
        "home:hidden",
        "etc-hostname:hidden",
        "leak:unset",
        "usr:read-only",
        "project:hidden",
    ] {
        assert!(
            report.contains(expected),
            "{expected} not in sandbox report:\n{report}"
        );
    }
}

#[test]
fn canary_prompt_value_never_leaks() {
    let canary = "CANARY-7f3a9c-DO-NOT-LEAK";
    let p = Project::new("canary_prompt_value_never_leaks");
    p.recording_backend()
        .generator("pw.sh", r#"cp "$prompts/pw" "$out/pw"; env > "$out/genenv"; tr '\0' ' ' < /proc/$$/cmdline > "$out/gencmd""#)
        .manifest(
            r#"
default.backend = "rec"
[nixos.m.artifacts.db]
generator = "generators/pw.sh"
prompts.pw = { type = "hidden" }
files.pw = {}
files.genenv = {}
files.gencmd = {}
"#,
        );
    let mut command = p.command(["-vv", "--log-level", "debug", "generate"]);
    command.env("ARTIFACTS_PROMPT_DB_PW", canary);
    let run = p.finish(&mut command);
    run.success();
    // It reached the one place it belongs.
    assert_eq!(p.stored("nixos/m/db/pw").as_deref(), Some(canary));
    // And nowhere else: our output, logs, backend env/argv (ours included, via /proc/$PPID), $targets, $inputs, the lock.
    assert!(!run.stdout.contains(canary), "canary on stdout");
    run.stderr_lacks(canary);
    let records = p.records();
    assert!(
        records.contains("== parent cmdline"),
        "records missing: {records}"
    );
    assert!(
        !records.contains(canary),
        "canary in a backend record:\n{records}"
    );
    assert!(
        !records.contains("ARTIFACTS_PROMPT_"),
        "prompt variable reached a backend:\n{records}"
    );
    for file in ["genenv", "gencmd"] {
        let text = p.stored(&format!("nixos/m/db/{file}")).unwrap();
        assert!(!text.contains(canary), "canary in generator {file}: {text}");
    }
    let lock = std::fs::read_to_string(p.root.join("artifacts.lock")).unwrap();
    assert!(!lock.contains(canary));
    assert!(
        p.tmp_leftovers().is_empty(),
        "left in TMPDIR: {:?}",
        p.tmp_leftovers()
    );
}

#[test]
fn temporary_directories_are_removed_after_success_and_failure() {
    let p = Project::new("temporary_directories_are_removed_after_success_and_failure");
    p.recording_backend()
        .generator("pw.sh", r#"cp "$prompts/pw" "$out/pw""#)
        .manifest(
            r#"
default.backend = "rec"
[nixos.m.artifacts.db]
generator = "generators/pw.sh"
prompts.pw = {}
files.pw = {}
"#,
        );
    let mut command = p.command(["generate"]);
    command.env("ARTIFACTS_PROMPT_DB_PW", "x");
    p.finish(&mut command).success();
    assert!(
        p.tmp_leftovers().is_empty(),
        "after success: {:?}",
        p.tmp_leftovers()
    );
    p.generator(
        "pw.sh",
        r#"cp "$prompts/pw" "$out/pw"; chmod 0500 "$out"; exit 1"#,
    );
    let mut command = p.command(["regenerate", "--yes", "db"]);
    command.env("ARTIFACTS_PROMPT_DB_PW", "x");
    p.finish(&mut command).code(1);
    assert!(
        p.tmp_leftovers().is_empty(),
        "after failure: {:?}",
        p.tmp_leftovers()
    );
}

#[test]
fn sigint_during_generation_stops_the_generator_and_removes_temporary_files() {
    interrupt_generation(
        "sigint_during_generation",
        nix::sys::signal::Signal::SIGINT,
        "600.3141",
    );
}

#[test]
fn sigterm_during_generation_stops_the_generator_and_removes_temporary_files() {
    interrupt_generation(
        "sigterm_during_generation",
        nix::sys::signal::Signal::SIGTERM,
        "600.2718",
    );
}

/// `token` makes the generator's sleep recognisable among all processes.
fn interrupt_generation(name: &str, signal: nix::sys::signal::Signal, token: &str) {
    let p = Project::new(name);
    p.slow_artifact(token);
    let mut command = p.command(["-v", "generate"]);
    command.env("ARTIFACTS_PROMPT_SLOW_PW", "x");
    // Until the generator is about to run: the progress line says so.
    let (mut child, mut stderr, seen) =
        crate::util::spawn_until_stderr(&mut command, "generating nixos/m slow");
    // The scratch directory with the prompt answer exists now.
    assert!(
        !p.tmp_leftovers().is_empty(),
        "no scratch directory while generating"
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(
        status.code(),
        Some(128 + signal as i32),
        "stderr: {seen}{rest}"
    );
    assert!(rest.contains("interrupted"), "{rest}");
    assert!(
        p.tmp_leftovers().is_empty(),
        "after {signal}: {:?}",
        p.tmp_leftovers()
    );
    // No process of the generator survived (zombies waiting for their reaper aside).
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(token) {
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            assert!(
                status.is_empty() || status.contains("State:\tZ"),
                "generator survived: {status}"
            );
        }
    }
    assert!(p.stored("nixos/m/slow/pw").is_none());
}
