//! The operator's identities: passphrase-protected OpenSSH keys and `age -p`
//! identity files in a terminal (one question, as the real `age` asks) and
//! without one (a clear error, never a hang), identity files named in the
//! manifest or by a relative `ARTIFACTS_IDENTITY`, and the pre-flight that
//! stops `generate` before any prompt or generator when a store cannot be
//! written with the identities at hand.
//!
//! See: issue 11, item 5.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use crate::terminal::Session;
use crate::tools::{Key, age_keygen, ok, run_tool, sops, tool};
use crate::util::Project;

const PASSPHRASE: &str = "correct horse";

/// An ed25519 key protected with [`PASSPHRASE`], made by the real `ssh-keygen`.
fn protected_ssh_key(p: &Project, name: &str) -> Key {
    let path = p.home.join(name);
    let args: Vec<&OsStr> = [
        "-q", "-t", "ed25519", "-N", PASSPHRASE, "-C", "op@test", "-f",
    ]
    .iter()
    .map(OsStr::new)
    .chain([path.as_os_str()])
    .collect();
    ok(
        "ssh-keygen",
        run_tool(&tool("ssh-keygen", "openssh-client"), &args, &[], &p.home),
    );
    let public = fs::read_to_string(path.with_extension("pub")).unwrap();
    Key {
        path,
        public: public.trim().to_owned(),
    }
}

/// `plaintext` encrypted by the real `age` to `recipient`, as `name`.
fn age_encrypt(p: &Project, recipient: &str, plaintext: &str, name: &str) -> PathBuf {
    let input = p.file(&format!("{name}.txt"), plaintext);
    let output = p.root.join(name);
    let args: Vec<&OsStr> = vec![
        OsStr::new("-r"),
        OsStr::new(recipient),
        OsStr::new("-o"),
        output.as_os_str(),
        input.as_os_str(),
    ];
    ok("age -r", run_tool(&tool("age", "age"), &args, &[], &p.root));
    fs::remove_file(input).unwrap();
    output
}

/// A run with no controlling terminal at all (a new session), stdin empty.
fn without_terminal(p: &Project, args: &[&OsStr]) -> std::process::Output {
    let mut command = p.command(args);
    // SAFETY: the closure only calls setsid, which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    command.output().unwrap()
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

// The hang of issue 11: echo went off, then the process waited forever on the
// stdin lock its own command held.
#[test]
fn age_decrypt_with_a_protected_ssh_key_asks_once_in_a_terminal() {
    let p = Project::new("age_decrypt_with_a_protected_ssh_key_asks_once");
    let key = protected_ssh_key(&p, "id_ed25519");
    let file = age_encrypt(&p, &key.public, "the plaintext 81\n", "secret.age");
    let key_arg = key.path.to_str().unwrap();
    let file_arg = file.to_str().unwrap();
    let mut session = Session::start(&p, &["age", "decrypt", "-i", key_arg, file_arg], &[]);
    session.expect("Enter passphrase for");
    session.send(format!("{PASSPHRASE}\r").as_bytes());
    session.expect("the plaintext 81");
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(0), "{transcript}");
    assert_eq!(count(&transcript, "Enter passphrase"), 1, "{transcript}");
    assert!(
        !transcript.contains(PASSPHRASE),
        "passphrase echoed: {transcript}"
    );
}

#[test]
fn a_wrong_passphrase_fails_clearly() {
    let p = Project::new("a_wrong_passphrase_fails_clearly");
    let key = protected_ssh_key(&p, "id_ed25519");
    let file = age_encrypt(&p, &key.public, "never shown\n", "secret.age");
    let mut session = Session::start(
        &p,
        &[
            "age",
            "decrypt",
            "-i",
            key.path.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        &[],
    );
    session.expect("Enter passphrase for");
    session.send(b"not the passphrase\r");
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(1), "{transcript}");
    assert!(
        transcript.contains(&format!("wrong passphrase for `{}`", key.path.display())),
        "{transcript}"
    );
    assert!(!transcript.contains("never shown"), "{transcript}");
}

#[test]
fn without_a_terminal_a_protected_key_fails_clearly_at_once() {
    let p = Project::new("without_a_terminal_a_protected_key_fails_clearly");
    let key = protected_ssh_key(&p, "id_ed25519");
    let file = age_encrypt(&p, &key.public, "never shown\n", "secret.age");
    let output = without_terminal(
        &p,
        &[
            OsStr::new("age"),
            OsStr::new("decrypt"),
            OsStr::new("-i"),
            key.path.as_os_str(),
            file.as_os_str(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is passphrase-protected and no passphrase is available"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn an_age_passphrase_encrypted_identity_file_works_like_with_age() {
    let p = Project::new("an_age_passphrase_encrypted_identity_file_works");
    let identity = age_keygen(&p, "key.txt");
    let encrypted = p.home.join("key.txt.age");
    // Protected by the real `age -p`, which asks on the terminal only.
    let mut command = std::process::Command::new(tool("age", "age"));
    command
        .args([OsStr::new("-p"), OsStr::new("-o"), encrypted.as_os_str()])
        .arg(&identity.path)
        .current_dir(&p.root)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    let mut age = Session::spawn(command, &[], b"");
    age.expect("Enter passphrase");
    age.send(b"id-pass\r");
    age.expect("Confirm passphrase");
    age.send(b"id-pass\r");
    let (code, transcript) = age.finish();
    assert_eq!(code, Some(0), "age -p: {transcript}");
    fs::remove_file(&identity.path).unwrap();
    let file = age_encrypt(&p, &identity.public, "behind two locks\n", "secret.age");
    let mut session = Session::start(
        &p,
        &[
            "age",
            "decrypt",
            "-i",
            encrypted.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        &[],
    );
    session.expect("Enter passphrase for identity file");
    session.send(b"id-pass\r");
    session.expect("behind two locks");
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(0), "{transcript}");
    assert_eq!(count(&transcript, "Enter passphrase"), 1, "{transcript}");
}

/// agenix on machine `m`, encrypted to `host_key`; artifact `app` from a prompt.
fn agenix_manifest(p: &Project, host_key: &str) {
    p.generator("pw.sh", r#"cat "$prompts/pw" > "$out/pw""#)
        .manifest(&format!(
            r#"
default.backend = "agenix"
[nixos.m]
config.agenix.publicHostKey = "{host_key}"
[nixos.m.artifacts.app]
generator = "generators/pw.sh"
prompts.pw = {{ confirm = false }}
files.pw = {{}}
"#
        ));
}

// `show -i` refused "no passphrase available … run in a terminal" in one.
#[test]
fn show_with_a_protected_ssh_key_asks_once_in_a_terminal() {
    let p = Project::new("show_with_a_protected_ssh_key_asks_once");
    let key = protected_ssh_key(&p, "id_ed25519");
    agenix_manifest(&p, &key.public);
    p.finish(
        p.command(["generate"])
            .env("ARTIFACTS_PROMPT_APP_PW", "hunter2"),
    )
    .success();
    let mut session = Session::start(&p, &["show", "app", "-i", key.path.to_str().unwrap()], &[]);
    session.expect("Enter passphrase for");
    session.send(format!("{PASSPHRASE}\r").as_bytes());
    session.expect("hunter2");
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(0), "{transcript}");
    assert_eq!(count(&transcript, "Enter passphrase"), 1, "{transcript}");
    // The unlocked copy handed to the backend is gone.
    assert!(p.tmp_leftovers().is_empty(), "{:?}", p.tmp_leftovers());

    let output = without_terminal(
        &p,
        &[
            OsStr::new("show"),
            OsStr::new("app"),
            OsStr::new("-i"),
            key.path.as_os_str(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("is passphrase-protected and no passphrase is available"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("hunter2"));
}

/// sops-nix on machines `m1` and `m2`, encrypted to `host` (and, on `m1`,
/// `extra`); two artifacts with a line prompt each (see [`sops_generators`]).
fn sops_manifest(host: &str, extra: &[&str], identities: &str) -> String {
    format!(
        r#"
{identities}
default.backend = "sops-nix"
[nixos.m1]
config.sops-nix.publicHostKey = "{host}"
config.sops-nix.publicUserKeys = {extra:?}
[nixos.m1.artifacts.first]
generator = "generators/first.sh"
prompts.v = {{ type = "line" }}
files.v = {{}}
[nixos.m1.artifacts.second]
generator = "generators/second.sh"
prompts.note = {{ type = "line", description = "Second note" }}
files.v = {{}}
[nixos.m2]
config.sops-nix.publicHostKey = "{host}"
[nixos.m2.artifacts.second]
generator = "generators/second.sh"
prompts.note = {{ type = "line", description = "Second note" }}
files.v = {{}}
[nixos.m2.artifacts.first]
generator = "generators/first.sh"
prompts.v = {{ type = "line" }}
files.v = {{}}
"#
    )
}

/// Where a generator leaves its marker: a directory anyone may write, since
/// generators started by root run as nobody, also without the sandbox.
fn marker_in(p: &Project) -> PathBuf {
    let dir = p.root.join("markers");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir.join("marker")
}

/// The generators under `dir`: `second`'s touches `marker` first.
fn sops_generators(p: &Project, dir: &str, marker: &Path) {
    p.script(
        &format!("{dir}generators/first.sh"),
        "#!/bin/sh\nset -eu\ncat \"$prompts/v\" > \"$out/v\"\n",
    );
    p.script(
        &format!("{dir}generators/second.sh"),
        &format!(
            "#!/bin/sh\nset -eu\ntouch '{}'\ncat \"$prompts/note\" > \"$out/v\"\n",
            marker.display()
        ),
    );
}

#[test]
fn generate_adds_to_a_sops_file_with_a_protected_ssh_key_in_a_terminal() {
    let p = Project::new("generate_adds_to_a_sops_file_with_a_protected_ssh_key");
    let key = protected_ssh_key(&p, "id_ed25519");
    let verify = age_keygen(&p, "verify.txt");
    let marker = marker_in(&p);
    sops_generators(&p, "", &marker);
    p.manifest(&sops_manifest(&key.public, &[&verify.public], ""));
    p.finish(
        p.command(["--target", "m1", "generate", "first"])
            .env("ARTIFACTS_PROMPT_FIRST_V", "one"),
    )
    .success();
    // Without a terminal: said at once, before the prompt and the generator.
    let output = without_terminal(
        &p,
        &[
            OsStr::new("--no-sandbox"),
            OsStr::new("--target"),
            OsStr::new("m1"),
            OsStr::new("generate"),
            OsStr::new("second"),
            OsStr::new("-i"),
            key.path.as_os_str(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot store 1 artifact(s) with the identities at hand")
            && stderr.contains("is passphrase-protected and no passphrase is available"),
        "{stderr}"
    );
    assert!(!marker.exists(), "a generator ran");
    let mut session = Session::start(
        &p,
        &[
            "--no-sandbox",
            "--target",
            "m1",
            "generate",
            "second",
            "-i",
            key.path.to_str().unwrap(),
        ],
        &[],
    );
    session.expect("Enter passphrase for");
    session.send(format!("{PASSPHRASE}\r").as_bytes());
    session.expect("second › note (Second note): ");
    session.send(b"two\r");
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(0), "{transcript}");
    assert_eq!(count(&transcript, "Enter passphrase"), 1, "{transcript}");
    let file = p.root.join("secrets/per-machine/m1.sops.yaml");
    let extract = |path: &str| {
        ok(
            &format!("sops -d --extract {path}"),
            sops(
                &p.root,
                &["-d", "--extract", path, file.to_str().unwrap()],
                &[("SOPS_AGE_KEY_FILE", verify.path.as_os_str())],
            ),
        )
    };
    assert_eq!(extract(r#"["first"]["v"]"#), b"one");
    assert_eq!(extract(r#"["second"]["v"]"#), b"two");
    assert!(p.tmp_leftovers().is_empty(), "{:?}", p.tmp_leftovers());
}

#[test]
fn generate_stops_before_any_prompt_or_generator_when_an_identity_is_missing() {
    let p = Project::new("generate_stops_before_any_prompt_or_generator");
    let host = age_keygen(&p, "host.txt");
    let marker = marker_in(&p);
    sops_generators(&p, "", &marker);
    p.manifest(&sops_manifest(&host.public, &[], ""));
    p.finish(
        p.command(["generate", "first"])
            .env("ARTIFACTS_PROMPT_FIRST_V", "one"),
    )
    .success();
    let mut session = Session::start(&p, &["--no-sandbox", "generate"], &[]);
    let (code, transcript) = {
        session.expect("cannot store 2 artifact(s) with the identities at hand");
        session.finish()
    };
    assert_eq!(code, Some(1), "{transcript}");
    for machine in ["m1", "m2"] {
        assert!(
            transcript.contains(&format!(
                "nixos/{machine} second: `secrets/per-machine/{machine}.sops.yaml` exists, and adding to it needs an identity of one of its recipients: {}",
                host.public
            )),
            "{transcript}"
        );
    }
    assert_eq!(
        count(&transcript, "cannot store"),
        1,
        "one message: {transcript}"
    );
    assert!(
        !transcript.contains("Second note"),
        "a prompt was shown: {transcript}"
    );
    assert!(!marker.exists(), "a generator ran");
    // With the identity, the same run goes through.
    p.finish(
        p.command(["--no-sandbox", "generate", "-i"])
            .arg(&host.path)
            .env("ARTIFACTS_PROMPT_SECOND_NOTE", "n"),
    )
    .success();
    assert!(marker.exists());
}

/// A project in `proj/` (manifest, generators, `keys/me.txt`) run from the
/// directory above it, so relative paths resolve differently from each.
fn nested_project(name: &str, identities: &str) -> (Project, Key) {
    let p = Project::new(name);
    let key = age_keygen(&p, "me.txt");
    fs::create_dir_all(p.root.join("proj/keys")).unwrap();
    fs::rename(&key.path, p.root.join("proj/keys/me.txt")).unwrap();
    let marker = marker_in(&p);
    sops_generators(&p, "proj/", &marker);
    p.file(
        "proj/artifacts.toml",
        &sops_manifest(&key.public, &[], identities),
    );
    p.finish(
        p.command(["--manifest", "proj/artifacts.toml", "generate", "first"])
            .env("ARTIFACTS_PROMPT_FIRST_V", "one"),
    )
    .success();
    (p, key)
}

#[test]
fn identities_named_in_the_manifest_are_relative_to_it() {
    let (p, _) = nested_project(
        "identities_named_in_the_manifest_are_relative_to_it",
        r#"identities = ["~/not-there.txt", "keys/me.txt"]"#,
    );
    p.finish(
        p.command([
            "--manifest",
            "proj/artifacts.toml",
            "--no-sandbox",
            "generate",
        ])
        .env("ARTIFACTS_PROMPT_SECOND_NOTE", "n"),
    )
    .success();
    assert!(
        fs::read_to_string(p.root.join("proj/secrets/per-machine/m2.sops.yaml"))
            .unwrap()
            .contains("second:")
    );
}

#[test]
fn a_relative_artifacts_identity_is_relative_to_the_current_directory() {
    let (p, _) = nested_project(
        "a_relative_artifacts_identity_is_relative_to_the_current_directory",
        "",
    );
    let generate = |target: &str, variable: &str| {
        p.finish(
            p.command([
                "--manifest",
                "proj/artifacts.toml",
                "--no-sandbox",
                "--target",
                target,
                "generate",
            ])
            .env("ARTIFACTS_PROMPT_SECOND_NOTE", "n")
            .env(variable, "proj/keys/me.txt"),
        )
        .success();
    };
    generate("m1", "ARTIFACTS_IDENTITY");
    // sops' own variable names a file the same way.
    generate("m2", "SOPS_AGE_KEY_FILE");
}

#[test]
fn ctrl_c_at_a_passphrase_question_exits_130_with_echo_back() {
    let p = Project::new("ctrl_c_at_a_passphrase_question_exits_130");
    let key = protected_ssh_key(&p, "id_ed25519");
    let file = age_encrypt(&p, &key.public, "never shown\n", "secret.age");
    let mut session = Session::start(
        &p,
        &[
            "age",
            "decrypt",
            "-i",
            key.path.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        &[],
    );
    session.expect("Enter passphrase for");
    session.send(b"\x03");
    let master = session.master.try_clone().unwrap();
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(130), "{transcript}");
    let flags = nix::sys::termios::tcgetattr(&master).unwrap().local_flags;
    assert!(
        flags.contains(nix::sys::termios::LocalFlags::ECHO),
        "echo left off: {flags:?}"
    );
}

// As `age` asks only for a key it needs: agenix encrypts to recipients, so
// generating asks for no passphrase, even with a protected identity at hand.
#[test]
fn a_passphrase_is_asked_only_when_an_identity_is_needed() {
    let p = Project::new("a_passphrase_is_asked_only_when_an_identity_is_needed");
    let key = protected_ssh_key(&p, "id_ed25519");
    agenix_manifest(&p, &key.public);
    let mut session = Session::start(&p, &["generate", "-i", key.path.to_str().unwrap()], &[]);
    session.expect("app › pw: ");
    session.send(b"typed\r");
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(0), "{transcript}");
    assert!(!transcript.contains("Enter passphrase"), "{transcript}");
    assert!(p.tmp_leftovers().is_empty(), "{:?}", p.tmp_leftovers());
}
