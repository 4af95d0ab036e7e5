//! Interactive use through a real pseudo-terminal: prompts in declaration
//! order (line, hidden, multi-line), confirmations, the guided mode.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::util::Project;

/// A child on the slave side of a pty, read through the master.
pub(crate) struct Session {
    child: Child,
    pub(crate) master: std::fs::File,
    pub(crate) transcript: String,
    /// Where the next [`Session::expect`] starts looking.
    cursor: usize,
    bytes: mpsc::Receiver<Vec<u8>>,
}

impl Session {
    pub(crate) fn start(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Session {
        Session::start_typed_ahead(p, args, env, b"")
    }

    /// Like [`Session::start`], with `typed` already waiting in the terminal's
    /// input queue before the program starts, as if typed while it loaded.
    pub(crate) fn start_typed_ahead(
        p: &Project,
        args: &[&str],
        env: &[(&str, &str)],
        typed: &[u8],
    ) -> Session {
        Session::spawn(p.command(args), env, typed)
    }

    pub(crate) fn spawn(
        mut command: std::process::Command,
        env: &[(&str, &str)],
        typed: &[u8],
    ) -> Session {
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave: OwnedFd = pty.slave;
        for (key, value) in env {
            command.env(key, value);
        }
        command
            .env("TERM", "xterm")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        let slave_fd = slave.as_raw_fd();
        // Make the pty the child's controlling terminal, as a login shell would.
        // SAFETY: the closure only calls setsid and ioctl, both async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if nix::libc::ioctl(slave_fd, nix::libc::TIOCSCTTY as _, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut master = std::fs::File::from(pty.master);
        master.write_all(typed).unwrap();
        let child = command.spawn().unwrap();
        drop(slave);
        let mut reader = master.try_clone().unwrap();
        let (sender, bytes) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buffer) {
                if n == 0 || sender.send(buffer[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Session {
            child,
            master,
            transcript: String::new(),
            cursor: 0,
            bytes,
        }
    }

    /// Reads until `text` has appeared after the previous match, and moves past it.
    pub(crate) fn expect(&mut self, text: &str) {
        loop {
            if let Some(found) = self.transcript[self.cursor..].find(text) {
                self.cursor += found + text.len();
                return;
            }
            // A generous bound so a broken build fails instead of hanging CI.
            match self.bytes.recv_timeout(Duration::from_secs(60)) {
                Ok(chunk) => self.transcript.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => panic!("never saw {text:?}; transcript:\n{}", self.transcript),
            }
        }
    }

    /// What arrived so far, without waiting.
    pub(crate) fn arrived(&mut self) -> &str {
        while let Ok(chunk) = self.bytes.try_recv() {
            self.transcript.push_str(&String::from_utf8_lossy(&chunk));
        }
        &self.transcript[self.cursor..]
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    pub(crate) fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        // Drain until the reader thread sees end-of-file (every slave end closed)
        // and drops its sender; the bound only guards against a hang.
        while let Ok(chunk) = self.bytes.recv_timeout(Duration::from_secs(60)) {
            self.transcript.push_str(&String::from_utf8_lossy(&chunk));
        }
        (status.code(), self.transcript)
    }
}

fn project(name: &str) -> Project {
    let p = Project::new(name);
    p.recording_backend()
        .generator(
            "all.sh",
            r#"{ cat "$prompts/zeta"; echo "|"; cat "$prompts/alpha"; echo "|"; cat "$prompts/notes"; } > "$out/all""#,
        )
        .manifest(
            r#"
default.backend = "rec"
[nixos.m.artifacts.app]
generator = "generators/all.sh"
prompts.zeta = { description = "Asked first", type = "line" }
prompts.alpha = { description = "Asked second", type = "hidden" }
prompts.notes = { type = "multiline-hidden" }
files.all = {}
"#,
        );
    p
}

#[test]
fn prompts_are_asked_in_declaration_order_hidden_ones_not_echoed() {
    let p = project("prompts_are_asked_in_declaration_order");
    let mut session = Session::start(&p, &["generate"], &[]);
    session.expect("zeta (Asked first)");
    session.send(b"visible answer\r");
    session.expect("alpha (Asked second)");
    session.send(b"hidden-answer-51\r");
    session.expect("alpha (Asked second) (again)");
    session.send(b"hidden-answer-51\r");
    session.expect("finish with Ctrl-D");
    session.send(b"line one\rline two\r\x04");
    session.expect("notes (again)");
    session.send(b"line one\rline two\r\x04");
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(0), "{transcript}");
    let stored = p.stored("nixos/m/app/all").unwrap();
    assert_eq!(
        stored,
        "visible answer|\nhidden-answer-51|\nline one\nline two\n"
    );
    assert!(
        transcript.contains("visible answer"),
        "line prompts echo: {transcript}"
    );
    assert!(
        !transcript.contains("hidden-answer-51"),
        "hidden answer echoed: {transcript}"
    );
    assert!(
        !transcript.contains("line two"),
        "multiline-hidden answer echoed: {transcript}"
    );
}

#[test]
fn guided_mode_shows_the_table_and_offers_to_generate() {
    let p = project("guided_mode_shows_the_table_and_offers_to_generate");
    let mut session = Session::start(&p, &[], &[]);
    session.expect("STATUS");
    session.expect("Generate 1 missing artifact(s)?");
    session.send(b"y\r");
    session.expect("zeta");
    session.send(b"z\r");
    session.expect("alpha");
    session.send(b"a\r");
    session.expect("again");
    session.send(b"a\r");
    session.expect("Ctrl-D");
    session.send(b"n\r\x04");
    session.expect("Ctrl-D");
    session.send(b"n\r\x04");
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(0), "{transcript}");
    assert!(p.stored("nixos/m/app/all").is_some());
}

#[test]
fn regenerate_in_a_terminal_asks_before_replacing() {
    let p = project("regenerate_in_a_terminal_asks_before_replacing");
    let answers = [
        ("ARTIFACTS_PROMPT_APP_ZETA", "1"),
        ("ARTIFACTS_PROMPT_APP_ALPHA", "2"),
        ("ARTIFACTS_PROMPT_APP_NOTES", "3"),
    ];
    p.finish(p.command(["generate"]).envs(answers)).success();
    let before = p.stored("nixos/m/app/all").unwrap();
    let mut session = Session::start(&p, &["regenerate", "app"], &answers);
    session.expect("Continue?");
    session.send(b"n\r");
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(1), "{transcript}");
    assert!(transcript.contains("nothing changed"), "{transcript}");
    assert_eq!(p.stored("nixos/m/app/all").unwrap(), before);
}

#[test]
fn ctrl_c_in_a_hidden_prompt_gives_the_terminal_its_echo_back() {
    let p = project("ctrl_c_in_a_hidden_prompt_gives_the_terminal_its_echo_back");
    let mut session = Session::start(&p, &["generate"], &[("ARTIFACTS_PROMPT_APP_ZETA", "z")]);
    session.expect("alpha (Asked second)");
    // Echo is off while the hidden prompt waits (termios is shared by both pty ends).
    let during = nix::sys::termios::tcgetattr(&session.master).unwrap();
    assert!(
        !during
            .local_flags
            .contains(nix::sys::termios::LocalFlags::ECHO)
    );
    session.send(b"\x03");
    let master = session.master.try_clone().unwrap();
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(130), "{transcript}");
    let after = nix::sys::termios::tcgetattr(&master).unwrap();
    assert!(
        after
            .local_flags
            .contains(nix::sys::termios::LocalFlags::ECHO),
        "echo left off after Ctrl-C"
    );
    assert!(p.tmp_leftovers().is_empty(), "{:?}", p.tmp_leftovers());
}

/// One hidden prompt `pw`, stored as the file `pw`; `extra` adds prompt keys.
fn password_project(name: &str, extra: &str) -> Project {
    let p = Project::new(name);
    p.recording_backend()
        .generator("pw.sh", r#"cat "$prompts/pw" > "$out/pw""#)
        .manifest(&format!(
            r#"
default.backend = "rec"
[nixos.m.artifacts.app]
generator = "generators/pw.sh"
prompts.pw = {{ description = "Password"{extra} }}
files.pw = {{}}
"#
        ));
    p
}

// See: issue 11 (a confirmation ate the next answer and stored an empty password).
#[test]
fn yes_and_enter_then_a_hidden_prompt_gets_exactly_what_was_typed() {
    let p = password_project("yes_and_enter_then_a_hidden_prompt", "");
    let mut session = Session::start(&p, &[], &[]);
    session.expect("Generate 1 missing artifact(s)?");
    session.send(b"y\r");
    session.expect("pw (Password): ");
    session.send(b"s3cret\r");
    session.expect("pw (Password) (again): ");
    session.send(b"s3cret\r");
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(0), "{transcript}");
    assert_eq!(p.stored("nixos/m/app/pw").as_deref(), Some("s3cret"));
}

#[test]
fn a_confirmation_waits_for_enter_after_y() {
    let p = password_project("a_confirmation_waits_for_enter_after_y", "");
    let mut session = Session::start(&p, &[], &[]);
    session.expect("Generate 1 missing artifact(s)? [y/N] ");
    session.send(b"y");
    // The terminal echoes the `y` once it has taken it in; the question is
    // still open: the next prompt has not appeared.
    session.expect("y");
    assert!(
        !session.arrived().contains("pw (Password)"),
        "the next prompt appeared before Enter: {}",
        session.transcript
    );
    session.send(b"\r");
    session.expect("pw (Password): ");
    session.send(b"typed\r");
    session.expect("(again): ");
    session.send(b"typed\r");
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(0), "{transcript}");
    assert_eq!(p.stored("nixos/m/app/pw").as_deref(), Some("typed"));
}

#[test]
fn an_empty_answer_is_refused_and_asked_again() {
    let p = password_project("an_empty_answer_is_refused_and_asked_again", "");
    let mut session = Session::start(&p, &["generate"], &[]);
    session.expect("pw (Password): ");
    session.send(b"\r");
    session.expect("an answer is required");
    session.expect("pw (Password): ");
    session.send(b"filled\r");
    session.expect("(again): ");
    session.send(b"filled\r");
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(0), "{transcript}");
    assert_eq!(p.stored("nixos/m/app/pw").as_deref(), Some("filled"));
}

#[test]
fn an_empty_answer_is_taken_when_the_prompt_allows_it() {
    let p = password_project(
        "an_empty_answer_is_taken_when_the_prompt_allows_it",
        ", allowEmpty = true, confirm = false",
    );
    let mut session = Session::start(&p, &["generate"], &[]);
    session.expect("pw (Password): ");
    session.send(b"\r");
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(0), "{transcript}");
    assert_eq!(p.stored("nixos/m/app/pw").as_deref(), Some(""));
    assert!(!transcript.contains("(again)"), "{transcript}");
}

#[test]
fn a_mismatched_second_entry_asks_again() {
    let p = password_project("a_mismatched_second_entry_asks_again", "");
    let mut session = Session::start(&p, &["generate"], &[]);
    session.expect("pw (Password): ");
    session.send(b"first\r");
    session.expect("(again): ");
    session.send(b"firts\r");
    session.expect("the two answers differ");
    session.expect("pw (Password): ");
    session.send(b"second\r");
    session.expect("(again): ");
    session.send(b"second\r");
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(0), "{transcript}");
    assert_eq!(p.stored("nixos/m/app/pw").as_deref(), Some("second"));
}

#[test]
fn input_typed_before_a_hidden_prompt_is_discarded() {
    let p = password_project("input_typed_before_a_hidden_prompt_is_discarded", "");
    // In the terminal's queue before the program even starts.
    let mut session = Session::start_typed_ahead(&p, &["generate"], &[], b"typed-ahead\r");
    session.expect("pw (Password): ");
    session.send(b"meant\r");
    session.expect("(again): ");
    session.send(b"meant\r");
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(0), "{transcript}");
    assert_eq!(p.stored("nixos/m/app/pw").as_deref(), Some("meant"));
}

#[test]
fn ctrl_c_at_a_confirmation_exits_130_with_the_terminal_intact() {
    let p = password_project("ctrl_c_at_a_confirmation_exits_130", "");
    let mut session = Session::start(&p, &[], &[]);
    session.expect("Generate 1 missing artifact(s)? [y/N] ");
    session.send(b"\x03");
    let master = session.master.try_clone().unwrap();
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(130), "{transcript}");
    let after = nix::sys::termios::tcgetattr(&master).unwrap();
    let flags = after.local_flags;
    use nix::sys::termios::LocalFlags;
    assert!(
        flags.contains(LocalFlags::ECHO) && flags.contains(LocalFlags::ICANON),
        "terminal left without echo or line mode after Ctrl-C: {flags:?}"
    );
    assert!(p.stored("nixos/m/app/pw").is_none());
}

#[test]
fn ctrl_c_at_a_line_prompt_exits_130_with_the_terminal_intact() {
    let p = project("ctrl_c_at_a_line_prompt_exits_130");
    let mut session = Session::start(&p, &["generate"], &[]);
    session.expect("zeta (Asked first): ");
    session.send(b"half an ans\x03");
    let master = session.master.try_clone().unwrap();
    let (code, transcript) = session.finish();
    assert_eq!(code, Some(130), "{transcript}");
    use nix::sys::termios::LocalFlags;
    let flags = nix::sys::termios::tcgetattr(&master).unwrap().local_flags;
    assert!(
        flags.contains(LocalFlags::ECHO) && flags.contains(LocalFlags::ICANON),
        "terminal left without echo or line mode after Ctrl-C: {flags:?}"
    );
    assert!(p.stored("nixos/m/app/all").is_none());
}
