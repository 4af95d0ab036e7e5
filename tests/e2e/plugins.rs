//! age plugins through the real binary, with a real plugin program
//! (`age-plugin-xwing`, see `artifacts_testkit::age_plugin_xwing`): plugin
//! recipients as host and user keys of agenix and sops-nix targets, read back
//! by the real `age` and `sops` with the plugin identity; a plugin identity in
//! the operator's identity file for `show` and `rekey`; `artifacts age` and
//! `artifacts sops` with plugin keys; and a missing plugin named with what
//! needs it, never an identity's text.
//!
//! See: issue 15, item 5.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::Path;

use crate::tools::{Key, age_decrypt, artifacts_keygen, ok, sops};
use crate::util::{Project, Run};

/// A new plugin identity file (`AGE-PLUGIN-XWING-1…`, as the plugin writes
/// it) under `$HOME`, and its recipient (`age1xwing1…`).
fn xwing_key(p: &Project, name: &str) -> Key {
    let (text, public) = artifacts_testkit::xwing_key();
    let path = p.home.join(name);
    fs::write(&path, text).unwrap();
    Key { path, public }
}

/// The identity line of a plugin key file (secret: must never be printed).
fn identity_line(key: &Key) -> String {
    fs::read_to_string(&key.path)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-PLUGIN-"))
        .unwrap()
        .to_owned()
}

/// `PATH` without the directory that holds `age-plugin-xwing`.
fn path_without_plugin() -> OsString {
    let plugin = artifacts_testkit::age_plugin_xwing();
    let dirs = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .filter(|d| d != plugin.parent().unwrap())
        .collect::<Vec<_>>();
    std::env::join_paths(dirs).unwrap()
}

fn run_env(p: &Project, args: &[&OsStr], env: &[(&str, &OsStr)]) -> Run {
    let mut command = p.command(args);
    for (key, value) in env {
        command.env(key, value);
    }
    p.finish(&mut command)
}

const GENERATOR: &str = r#"printf 'plugin-s3cret' > "$out/password""#;

/// Machine `m1` stores `db` with agenix, machine `m2` stores `api` with
/// sops-nix; both encrypt to `host` and the admin `user`.
fn manifest(host: &str, user: &str) -> String {
    format!(
        r#"
[nixos.m1]
config.agenix.publicHostKey = "{host}"
config.agenix.publicUserKeys = ["{user}"]
[nixos.m1.artifacts.db]
backend = "agenix"
generator = "generators/secret.sh"
files.password = {{}}

[nixos.m2]
config.sops-nix.publicHostKey = "{host}"
config.sops-nix.publicUserKeys = ["{user}"]
[nixos.m2.artifacts.api]
backend = "sops-nix"
generator = "generators/secret.sh"
files.password = {{}}
"#
    )
}

#[test]
fn shipped_backends_store_for_plugin_recipients_and_read_back_with_plugin_identities() {
    artifacts_testkit::age_plugin_xwing();
    let p = Project::new("shipped_backends_store_for_plugin_recipients");
    let host = xwing_key(&p, "host.key");
    let admin = artifacts_keygen(&p, "admin.key");
    p.generator("secret.sh", GENERATOR);
    p.manifest(&manifest(&host.public, &admin.public));
    p.run(["generate"]).success();
    p.run(["check"]).success();

    // agenix: the real age reads the file with the plugin identity, and
    // `.recipients` keeps the plugin recipient as it is.
    let dir = p.root.join("secrets/per-machine/m1/db");
    let plain = ok("age -d", age_decrypt(&host.path, &dir.join("password.age")));
    assert_eq!(plain, b"plugin-s3cret");
    let recipients = fs::read_to_string(dir.join(".recipients")).unwrap();
    assert!(recipients.lines().any(|l| l == host.public), "{recipients}");
    // sops-nix: the real sops reads it with the plugin identity (sops 3.11
    // runs plugins too; sops-nix does with `sops.age.plugins`).
    let file = p.root.join("secrets/per-machine/m2.sops.yaml");
    let plain = ok(
        "sops -d",
        sops(
            &p.root,
            &[
                "-d",
                "--extract",
                r#"["api"]["password"]"#,
                file.to_str().unwrap(),
            ],
            &[("SOPS_AGE_KEY_FILE", host.path.as_os_str())],
        ),
    );
    assert_eq!(plain, b"plugin-s3cret");

    // `show` with the plugin identity: with -i, and as the operator's
    // identity file (ARTIFACTS_IDENTITY) holding a native key besides.
    for (artifact, machine) in [("db", "m1"), ("api", "m2")] {
        let shown = run_env(
            &p,
            &[
                OsStr::new("show"),
                OsStr::new(artifact),
                OsStr::new("--target"),
                OsStr::new(machine),
                OsStr::new("--file"),
                OsStr::new("password"),
                OsStr::new("-i"),
                host.path.as_os_str(),
            ],
            &[],
        );
        shown.success();
        assert_eq!(shown.stdout, "plugin-s3cret");
    }
    let other = artifacts_keygen(&p, "other.key");
    let operator = p.home.join("operator.key");
    fs::write(
        &operator,
        format!(
            "{}\n{}",
            fs::read_to_string(&other.path).unwrap(),
            fs::read_to_string(&host.path).unwrap()
        ),
    )
    .unwrap();
    let shown = run_env(
        &p,
        &[
            OsStr::new("show"),
            OsStr::new("db"),
            OsStr::new("--file"),
            OsStr::new("password"),
        ],
        &[("ARTIFACTS_IDENTITY", operator.as_os_str())],
    );
    shown.success();
    assert_eq!(shown.stdout, "plugin-s3cret");

    // Rekeying to another admin decrypts with the operator's plugin identity.
    p.manifest(&manifest(&host.public, &other.public));
    p.run(["check"]).code(1).stdout_has("recipients changed");
    run_env(
        &p,
        &[OsStr::new("rekey")],
        &[("ARTIFACTS_IDENTITY", operator.as_os_str())],
    )
    .success();
    p.run(["check"]).success();
    let plain = ok(
        "age -d",
        age_decrypt(&other.path, &dir.join("password.age")),
    );
    assert_eq!(plain, b"plugin-s3cret");
    // The SOPS file's data key went to the new admin and again to the plugin
    // recipient: the real sops reads it with either.
    for key in [&other.path, &host.path] {
        let plain = ok(
            "sops -d",
            sops(
                &p.root,
                &[
                    "-d",
                    "--extract",
                    r#"["api"]["password"]"#,
                    file.to_str().unwrap(),
                ],
                &[("SOPS_AGE_KEY_FILE", key.as_os_str())],
            ),
        );
        assert_eq!(plain, b"plugin-s3cret");
    }
}

#[test]
fn a_missing_plugin_is_named_with_what_needs_it() {
    artifacts_testkit::age_plugin_xwing();
    let p = Project::new("a_missing_plugin_is_named_with_what_needs_it");
    let host = xwing_key(&p, "host.key");
    let admin = artifacts_keygen(&p, "admin.key");
    p.generator("secret.sh", GENERATOR);
    p.manifest(&manifest(&host.public, &admin.public));
    let without = path_without_plugin();
    let env = [("PATH", without.as_os_str())];

    // Encrypting to its recipient: refused before anything is stored.
    let run = run_env(&p, &[OsStr::new("generate"), OsStr::new("db")], &env);
    run.code(1)
        .stderr_has("`age-plugin-xwing` is not on PATH; it is needed for recipient `age1xwing1")
        .stderr_has("add the directory that holds it to PATH");
    assert!(!p.root.join("secrets/per-machine/m1/db").exists());

    // Decrypting with its identity: the identity file and line are named,
    // the identity never.
    p.run(["generate"]).success();
    let shown = run_env(
        &p,
        &[
            OsStr::new("show"),
            OsStr::new("db"),
            OsStr::new("--file"),
            OsStr::new("password"),
            OsStr::new("-i"),
            host.path.as_os_str(),
        ],
        &env,
    );
    shown.code(1).stderr_has(&format!(
        "`age-plugin-xwing` is not on PATH; it is needed for the age plugin identity in `{}` line 3",
        host.path.display()
    ));
    let secret = identity_line(&host);
    shown.stderr_lacks(&secret).stdout_lacks("plugin-s3cret");
    shown.stderr_lacks(&secret[11..40]);
}

#[test]
fn age_and_sops_tools_take_plugin_keys_both_ways() {
    artifacts_testkit::age_plugin_xwing();
    let p = Project::new("age_and_sops_tools_take_plugin_keys_both_ways");
    let key = xwing_key(&p, "xwing.key");
    let plain = p.file("plain.txt", "tool-s3cret\n");

    // `artifacts age encrypt -r age1xwing1…`: the real age decrypts it, and
    // `artifacts age decrypt -i` reads it back.
    let encrypted = p.root.join("plain.txt.age");
    p.run([
        OsStr::new("age"),
        OsStr::new("encrypt"),
        OsStr::new("-r"),
        OsStr::new(&key.public),
        OsStr::new("-o"),
        encrypted.as_os_str(),
        plain.as_os_str(),
    ])
    .success();
    assert_eq!(
        ok("age -d", age_decrypt(&key.path, &encrypted)),
        b"tool-s3cret\n"
    );
    let back = p.run([
        OsStr::new("age"),
        OsStr::new("decrypt"),
        OsStr::new("-i"),
        key.path.as_os_str(),
        encrypted.as_os_str(),
    ]);
    back.success();
    assert_eq!(back.stdout, "tool-s3cret\n");
    // A plugin identity's recipient is the plugin's to tell.
    p.run([
        OsStr::new("age"),
        OsStr::new("recipients"),
        key.path.as_os_str(),
    ])
    .code(1)
    .stderr_has("known only to its plugin (`age-plugin-xwing`");

    // `artifacts sops encrypt --age age1xwing1…`: the real sops decrypts it
    // with the plugin identity, and so does `artifacts sops decrypt`.
    p.file("s.yaml", "token: abc\n");
    let encrypted = p.run(["sops", "encrypt", "--age", &key.public, "s.yaml"]);
    encrypted.success();
    p.file("s.enc.yaml", &encrypted.stdout);
    let theirs = ok(
        "sops -d",
        sops(
            &p.root,
            &["-d", "s.enc.yaml"],
            &[("SOPS_AGE_KEY_FILE", key.path.as_os_str())],
        ),
    );
    assert_eq!(theirs, b"token: abc\n");
    let ours = run_env(
        &p,
        &[
            OsStr::new("sops"),
            OsStr::new("decrypt"),
            OsStr::new("s.enc.yaml"),
        ],
        &[("SOPS_AGE_KEY_FILE", key.path.as_os_str())],
    );
    ours.success();
    assert_eq!(ours.stdout, "token: abc\n");
}

/// FIDO security-key SSH keys, which age cannot encrypt to, are refused by
/// name where keys are configured.
#[test]
fn security_key_ssh_host_keys_are_refused_by_name() {
    let p = Project::new("security_key_ssh_host_keys_are_refused_by_name");
    let admin = artifacts_keygen(&p, "admin.key");
    p.generator("secret.sh", GENERATOR);
    let sk =
        "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIHdT root@host";
    p.manifest(&manifest(sk, &admin.public));
    p.run(["generate", "db"])
        .code(1)
        .stderr_has("artifacts.config.agenix.publicHostKey")
        .stderr_has("sk-ssh-ed25519@openssh.com")
        .stderr_has("not supported by age");
    assert!(!Path::new(&p.root.join("secrets/per-machine/m1/db")).exists());
}

/// A test fixture plugin, `age-plugin-pin`, that asks like hardware plugins
/// do (no software plugin on crates.io asks anything): speaking the real
/// plugin protocol, it shows a message, asks to confirm and asks for a PIN
/// (`1234`) before it hands over the file key. NOT encryption: its stanza
/// holds the file key in the clear. Recipient and identity are fixed
/// (bech32 of "fixture-key-0001").
const PIN_PLUGIN: &str = r#"#!/bin/bash
set -eu
b64d() { local s=$1; while (( ${#s} % 4 )); do s+="="; done; printf '%s' "$s" | base64 -d; }
b64e() { base64 -w0 | tr -d '='; }
# One stanza from the client: TAG, ARGS, BODY (base64, lines joined).
read_stanza() {
  IFS= read -r head || exit 1
  read -r -a words <<< "${head#-> }"
  TAG=${words[0]}; ARGS=("${words[@]:1}"); BODY=""
  while IFS= read -r line; do BODY+=$line; (( ${#line} < 64 )) && break; done
  return 0
}
# send TAG ARGS… with base64 body $OUT (empty by default).
send() {
  printf -- '-> %s\n' "$*"
  local b=${OUT:-}
  while (( ${#b} >= 64 )); do printf '%s\n' "${b:0:64}"; b=${b:64}; done
  printf '%s\n' "$b"
  OUT=""
}
case "${1:-}" in
--age-plugin=recipient-v1)
  KEY=""
  while read_stanza; do
    case $TAG in wrap-file-key) KEY=$BODY ;; done) break ;; esac
  done
  OUT=$KEY send recipient-stanza 0 pin-fixture; read_stanza
  send done
  ;;
--age-plugin=identity-v1)
  KEY=""
  while read_stanza; do
    case $TAG in
      recipient-stanza) [ "${ARGS[1]}" = pin-fixture ] && KEY=$BODY ;;
      done) break ;;
    esac
  done
  if [ -n "$KEY" ]; then
    OUT=$(printf 'touch the fixture key' | b64e) send msg; read_stanza
    OUT=$(printf 'use the fixture key?' | b64e) send confirm "$(printf Use | b64e)" "$(printf Skip | b64e)"
    read_stanza
    if [ "$TAG ${ARGS[*]:-}" = "ok yes" ]; then
      OUT=$(printf 'Enter the PIN of the fixture key:' | b64e) send request-secret; read_stanza
      if [ "$TAG" = ok ] && [ "$(b64d "$BODY")" = 1234 ]; then
        OUT=$KEY send file-key 0; read_stanza
      elif [ "$TAG" = ok ]; then
        OUT=$(printf 'wrong PIN' | b64e) send error identity 0; read_stanza
      fi
    fi
  fi
  send done
  ;;
esac
"#;
const PIN_RECIPIENT: &str = "age1pin1ve5hsar4wfjj66m90yknqvpsxysnzcta";
const PIN_IDENTITY: &str = "AGE-PLUGIN-PIN-1VE5HSAR4WFJJ66M90YKNQVPSXYF5ZKMZ";

/// `script` as the program `age-plugin-pin` in a directory of `p`'s home;
/// returns `PATH` with that directory first.
fn with_pin_plugin(p: &Project, script: &str) -> OsString {
    use std::os::unix::fs::PermissionsExt;
    let plugin_dir = p.home.join("plugins");
    fs::create_dir_all(&plugin_dir).unwrap();
    let plugin = plugin_dir.join("age-plugin-pin");
    fs::write(&plugin, script).unwrap();
    fs::set_permissions(&plugin, fs::Permissions::from_mode(0o755)).unwrap();
    let mut dirs = vec![plugin_dir];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

/// A project whose artifact `db` (agenix, machine `m1`) is stored for the
/// fixture plugin's recipient; returns the identity file and the `PATH`
/// holding the plugin.
fn pin_project(test: &str) -> (Project, std::path::PathBuf, OsString) {
    let p = Project::new(test);
    let path = with_pin_plugin(&p, PIN_PLUGIN);
    let identity = p.home.join("pin.key");
    fs::write(&identity, format!("# the fixture token\n{PIN_IDENTITY}\n")).unwrap();
    let admin = artifacts_keygen(&p, "admin.key");
    p.generator("secret.sh", GENERATOR);
    p.manifest(&manifest(PIN_RECIPIENT, &admin.public));
    run_env(
        &p,
        &[OsStr::new("generate"), OsStr::new("db")],
        &[("PATH", path.as_os_str())],
    )
    .success();
    (p, identity, path)
}

#[test]
fn a_plugin_asks_in_the_terminal_for_confirmation_and_a_hidden_pin() {
    let (p, identity, path) = pin_project("a_plugin_asks_in_the_terminal");
    let show = |pin: &str| {
        let args = [
            "show",
            "db",
            "--file",
            "password",
            "-i",
            identity.to_str().unwrap(),
        ];
        let env = [("PATH", path.to_str().unwrap())];
        let mut session = crate::terminal::Session::start(&p, &args, &env);
        session.expect("age-plugin-pin: touch the fixture key");
        session.expect("age-plugin-pin: use the fixture key? [y: Use / n: Skip] ");
        session.send(b"y\r");
        session.expect("age-plugin-pin: Enter the PIN of the fixture key: ");
        session.send(format!("{pin}\r").as_bytes());
        session.finish()
    };
    let (code, transcript) = show("1234");
    assert_eq!(code, Some(0), "{transcript}");
    assert!(transcript.contains("plugin-s3cret"), "{transcript}");
    assert!(!transcript.contains("1234"), "PIN echoed: {transcript}");
    // The plugin's own refusal is reported with what it was for.
    let (code, transcript) = show("0000");
    assert_eq!(code, Some(1), "{transcript}");
    assert!(
        transcript.contains(&format!(
            "`age-plugin-pin` failed for the age plugin identity in `{}` line 2: wrong PIN",
            identity.display()
        )),
        "{transcript}"
    );
    assert!(!transcript.contains("plugin-s3cret"), "{transcript}");
}

#[test]
fn a_plugin_question_without_a_terminal_is_a_clear_error() {
    let (p, identity, path) = pin_project("a_plugin_question_without_a_terminal");
    let mut command = p.command([
        OsStr::new("show"),
        OsStr::new("db"),
        OsStr::new("--file"),
        OsStr::new("password"),
        OsStr::new("-i"),
        identity.as_os_str(),
    ]);
    command.env("PATH", &path);
    // No controlling terminal at all: a new session.
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure only calls setsid, which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let run = p.finish(&mut command);
    run.code(1)
        .stderr_has(&format!(
            "`age-plugin-pin` (for the age plugin identity in `{}` line 2) asked for \"use the fixture key?\" and got no answer",
            identity.display()
        ))
        .stderr_has("run in a terminal so that the plugin can ask")
        // Its message still reached the person.
        .stderr_has("age-plugin-pin: touch the fixture key")
        .stdout_lacks("plugin-s3cret");
}

/// A plugin asking while `generate` draws its progress bar: adding a second
/// artifact to a SOPS file whose only key at hand is the plugin identity.
/// The pre-flight check and the write both need the data key; it is
/// unwrapped once per run, so the plugin asks once.
#[test]
fn a_plugin_asks_during_generate_with_the_progress_bar_on_screen() {
    let (p, identity, path) = pin_project("a_plugin_asks_during_generate");
    let admin = artifacts_keygen(&p, "admin2.key");
    p.manifest(&format!(
        r#"
[nixos.m2]
config.sops-nix.publicHostKey = "{PIN_RECIPIENT}"
config.sops-nix.publicUserKeys = ["{}"]
[nixos.m2.artifacts.api]
backend = "sops-nix"
generator = "generators/secret.sh"
files.password = {{}}
[nixos.m2.artifacts.web]
backend = "sops-nix"
generator = "generators/secret.sh"
files.password = {{}}
"#,
        admin.public
    ));
    run_env(
        &p,
        &[OsStr::new("generate"), OsStr::new("api")],
        &[("PATH", path.as_os_str())],
    )
    .success();
    let args = ["generate", "web", "-i", identity.to_str().unwrap()];
    let env = [("PATH", path.to_str().unwrap())];
    let mut session = crate::terminal::Session::start(&p, &args, &env);
    session.expect("age-plugin-pin: use the fixture key? [y: Use / n: Skip] ");
    session.send(b"y\r");
    session.expect("age-plugin-pin: Enter the PIN of the fixture key: ");
    session.send(b"1234\r");
    session.expect("generated nixos/m2 web");
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(0), "{transcript}");
    assert_eq!(
        transcript.matches("use the fixture key?").count(),
        1,
        "{transcript}"
    );
    assert!(!transcript.contains("1234"), "PIN echoed: {transcript}");
    let shown = run_env(
        &p,
        &[
            OsStr::new("show"),
            OsStr::new("web"),
            OsStr::new("--file"),
            OsStr::new("password"),
            OsStr::new("-i"),
            admin.path.as_os_str(),
        ],
        &[],
    );
    shown.success();
    assert_eq!(shown.stdout, "plugin-s3cret");
}

/// Age plugins are started by the age crate with our whole environment, so
/// a prompt's answer given as `ARTIFACTS_PROMPT_*` must be gone from it by
/// then: the fixture plugin records the environment it got while wrapping
/// the file key, and the answer still reaches the generator.
#[test]
fn age_plugins_never_see_prompt_answers_given_in_the_environment() {
    let p = Project::new("plugins_never_see_prompt_answers");
    let tapped = PIN_PLUGIN.replacen("set -eu\n", "set -eu\nenv >> \"$PLUGIN_ENV_TAP\"\n", 1);
    let path = with_pin_plugin(&p, &tapped);
    let tap = p.home.join("plugin-env");
    let admin = artifacts_keygen(&p, "admin.key");
    p.generator(
        "from-prompt.sh",
        r#"cat "$prompts/password" > "$out/password""#,
    );
    p.manifest(&format!(
        r#"
[nixos.m1]
config.agenix.publicHostKey = "{PIN_RECIPIENT}"
config.agenix.publicUserKeys = ["{}"]
[nixos.m1.artifacts.db]
backend = "agenix"
generator = "generators/from-prompt.sh"
prompts.password = {{ type = "line" }}
files.password = {{}}
"#,
        admin.public
    ));
    run_env(
        &p,
        &[OsStr::new("generate"), OsStr::new("db")],
        &[
            ("PATH", path.as_os_str()),
            ("PLUGIN_ENV_TAP", tap.as_os_str()),
            (
                "ARTIFACTS_PROMPT_DB_PASSWORD",
                OsStr::new("answer-0f-the-prompt"),
            ),
        ],
    )
    .success();
    let seen = fs::read_to_string(&tap).expect("the plugin ran and recorded its environment");
    assert!(seen.contains("PLUGIN_ENV_TAP="), "{seen}");
    assert!(!seen.contains("ARTIFACTS_PROMPT_"), "{seen}");
    assert!(!seen.contains("answer-0f-the-prompt"), "{seen}");
    let shown = run_env(
        &p,
        &[
            OsStr::new("show"),
            OsStr::new("db"),
            OsStr::new("--file"),
            OsStr::new("password"),
        ],
        &[("ARTIFACTS_IDENTITY", admin.path.as_os_str())],
    );
    shown.success();
    assert_eq!(shown.stdout, "answer-0f-the-prompt");
}
