//! Asking a person: prompts in the terminal, confirmations, passphrases of
//! identity files, questions of age plugins (PIN, touch, confirm), and the
//! prompts file.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Read};
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};

use anyhow::{Context as _, Result, bail};
use artifacts_crypto::age::PassphraseProvider;
use artifacts_engine::{Answers, Asker, PromptsFile};
use artifacts_engine::{Plan, UnitId};
use artifacts_model::Prompt;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::exit::UsageError;

/// Whether a person is at the keyboard: stdin and stderr are terminals.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// `ARTIFACTS_PROMPT_*` answers, moved out of the environment at start by
/// [`take_prompt_variables`].
static PROMPT_VARIABLES: OnceLock<BTreeMap<String, SecretString>> = OnceLock::new();

/// Moves every `ARTIFACTS_PROMPT_*` variable out of our environment into
/// memory. Children that get our whole environment from code we do not
/// control (age plugins, which the age crate starts) then never see a
/// prompt's answer; our own children never got them.
///
/// # Safety
///
/// No other thread may exist yet (call it first thing in `main`): changing
/// the environment races with any thread reading it.
pub unsafe fn take_prompt_variables() {
    let names: Vec<std::ffi::OsString> = std::env::vars_os()
        .map(|(key, _)| key)
        .filter(|key| key.as_encoded_bytes().starts_with(b"ARTIFACTS_PROMPT_"))
        .collect();
    let mut taken = BTreeMap::new();
    for name in names {
        if let (Some(key), Some(value)) = (name.to_str(), std::env::var_os(&name)) {
            // A value that is not UTF-8 stays unusable, as before: `prompt answers` reads text.
            if let Ok(value) = value.into_string() {
                taken.insert(key.to_owned(), SecretString::from(value));
            }
        }
        // SAFETY: the caller guarantees that no other thread exists.
        unsafe { std::env::remove_var(&name) };
    }
    let _ = PROMPT_VARIABLES.set(taken);
}

/// A prompt's answer from the environment: the taken copy, or (when
/// [`take_prompt_variables`] did not run, as in a library caller) the variable.
fn prompt_answer_variable(name: &str) -> Option<String> {
    match PROMPT_VARIABLES.get() {
        Some(taken) => taken
            .get(name)
            .map(|value| value.expose_secret().to_owned()),
        None => std::env::var(name).ok(),
    }
}

/// How many refused answers (empty, or a mismatched second entry) in a row
/// end the run: a terminal that hung up answers with end-of-file forever.
const ATTEMPTS: usize = 3;

/// Asks in the terminal, in declaration order. Every answer is a whole line
/// read in the terminal's own line mode (so Ctrl-C is a SIGINT, handled by
/// [`crate::signals`]: exit 130, terminal restored). Hidden answers are read
/// with echo off after discarding typed-ahead input, and typed twice unless
/// the prompt says `confirm = false`; empty answers are refused unless it says
/// `allowEmpty = true`.
pub struct TerminalAsker;

impl Asker for TerminalAsker {
    fn ask(&mut self, artifact: &str, name: &str, prompt: &Prompt) -> Result<SecretString, String> {
        let label = match &prompt.description {
            Some(description) => format!("{artifact} › {name} ({description})"),
            None => format!("{artifact} › {name}"),
        };
        ask_until_accepted(&label, prompt).map_err(|e| e.to_string())
    }
}

fn ask_until_accepted(label: &str, prompt: &Prompt) -> std::io::Result<SecretString> {
    let hidden = prompt.kind.is_hidden();
    let multiline = prompt.kind.is_multiline();
    let header = |again: bool| {
        let again = if again { " (again)" } else { "" };
        if multiline {
            format!(
                "{label}{again}\n  (several lines{}; finish with Ctrl-D on an empty line)\n",
                if hidden { ", not shown" } else { "" }
            )
        } else {
            format!("{label}{again}: ")
        }
    };
    let read = |again: bool| -> std::io::Result<SecretString> {
        if hidden {
            read_hidden(&header(again), multiline, !again)
        } else {
            eprint!("{}", header(again));
            read_lines(multiline)
        }
    };
    for _ in 0..ATTEMPTS {
        let value = read(false)?;
        if value.expose_secret().is_empty() && !prompt.allow_empty {
            eprintln!("  an answer is required (this prompt does not allow an empty one)");
            continue;
        }
        if hidden && prompt.confirm {
            let again = read(true)?;
            if again.expose_secret() != value.expose_secret() {
                eprintln!("  the two answers differ; asking again");
                continue;
            }
        }
        return Ok(value);
    }
    Err(std::io::Error::other(format!(
        "no acceptable answer after {ATTEMPTS} attempts"
    )))
}

/// Shows `prompt` and reads one line (or, with `until_eof`, lines up to
/// end-of-file) with echo off. With `flush`, input typed before the prompt
/// appeared is discarded first: it was meant for something else (an `Enter`
/// after a confirmation must never become a password).
fn read_hidden(prompt: &str, until_eof: bool, flush: bool) -> std::io::Result<SecretString> {
    let echo = EchoOff::new();
    if flush {
        discard_typed_ahead();
    }
    eprint!("{prompt}");
    let value = read_lines(until_eof);
    drop(echo);
    eprintln!();
    value
}

/// Drops whatever the terminal received but nobody has read yet.
fn discard_typed_ahead() {
    let _ = nix::sys::termios::tcflush(std::io::stdin(), nix::sys::termios::FlushArg::TCIFLUSH);
}

/// Reads one line without its newline, or everything up to end-of-file.
/// One line that ends in end-of-file without any text is an error: the
/// terminal is gone (or Ctrl-D was typed), and nothing was answered.
fn read_lines(until_eof: bool) -> std::io::Result<SecretString> {
    let mut text = Zeroizing::new(String::new());
    let stdin = std::io::stdin();
    let mut lock = stdin.lock();
    let mut line = Zeroizing::new(String::new());
    loop {
        line.clear();
        if lock.read_line(&mut line)? == 0 {
            if !until_eof && text.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the input ended before an answer",
                ));
            }
            break;
        }
        if !until_eof {
            let trimmed = line.trim_end_matches(['\n', '\r']);
            text.push_str(trimmed);
            break;
        }
        text.push_str(&line);
    }
    Ok(SecretString::from(text.as_str()))
}

/// Turns terminal echo off for its lifetime.
struct EchoOff {
    saved: nix::sys::termios::Termios,
}

impl EchoOff {
    fn new() -> Option<EchoOff> {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet).ok()?;
        Some(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

/// Asks for passphrases of identity files on the controlling terminal
/// (`/dev/tty`), as `age` does: stdin may be the data being decrypted, and
/// whoever runs may hold its lock. One question per file, answer hidden,
/// typed-ahead input discarded; `None` without a terminal, so the caller
/// fails with "no passphrase is available" instead of waiting.
pub struct TtyPassphrase;

impl TtyPassphrase {
    /// Whether there is a terminal to ask on.
    pub fn available() -> bool {
        open_tty().is_some()
    }
}

impl PassphraseProvider for TtyPassphrase {
    fn passphrase(&self, description: &str) -> Option<SecretString> {
        let line = ask_tty(&format!("Enter {description}: "), true)?;
        Some(SecretString::from(line.as_str()))
    }
}

fn open_tty() -> Option<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()
}

/// Shows `question` on the controlling terminal and reads one line (without
/// its newline), with echo off when `hidden`; typed-ahead input is discarded
/// first. `None` without a terminal or at end of input.
fn ask_tty(question: &str, hidden: bool) -> Option<Zeroizing<String>> {
    use nix::sys::termios::{FlushArg, LocalFlags, SetArg, tcflush, tcgetattr, tcsetattr};
    use std::io::Write;
    let tty = open_tty()?;
    let saved = tcgetattr(&tty).ok()?;
    if hidden {
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&tty, SetArg::TCSANOW, &quiet).ok()?;
    }
    let _ = tcflush(&tty, FlushArg::TCIFLUSH);
    let mut writer = &tty;
    let _ = write!(writer, "{question}");
    // The terminal's line mode hands over one line per read: no buffering
    // past it, so a byte at a time is not needed.
    let mut line = Zeroizing::new(String::new());
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    if hidden {
        let _ = tcsetattr(&tty, SetArg::TCSANOW, &saved);
        let _ = writeln!(writer);
    }
    match read {
        Ok(n) if n > 0 => {
            let end = line.trim_end_matches(['\n', '\r']).len();
            line.truncate(end);
            Some(line)
        }
        _ => None,
    }
}

/// The progress bar on the terminal while one is drawn (`generate`): hidden
/// while a plugin talks to the person, or its next tick would overwrite the
/// message or the question.
static PROGRESS: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// Registers the progress bar drawn on the terminal, or with `None` forgets it.
pub fn progress_bar(bar: Option<indicatif::ProgressBar>) {
    *PROGRESS.lock().unwrap_or_else(PoisonError::into_inner) = bar;
}

/// Runs `f` with the progress bar hidden, one plugin at a time (parallel
/// units may each start one).
fn on_screen<T>(f: impl FnOnce() -> T) -> T {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let bar = PROGRESS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    match bar {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}

/// Lets age plugins talk to the person on the controlling terminal (touch
/// the key, type the PIN, confirm), each line prefixed with the plugin's
/// program name. Without a terminal, messages go to stderr and questions get
/// no answer, which `artifacts_crypto` reports as the plugin's unanswered
/// question (`Error::PluginNeedsInput`).
pub struct TtyPluginUi;

impl artifacts_crypto::plugin::PluginUi for TtyPluginUi {
    fn message(&self, plugin: &str, message: &str) {
        use std::io::Write;
        let line = format!("{plugin}: {}\n", message.trim_end());
        on_screen(|| match open_tty() {
            Some(mut tty) => {
                let _ = tty.write_all(line.as_bytes());
            }
            None => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
        })
    }

    fn confirm(&self, plugin: &str, message: &str, yes: &str, no: Option<&str>) -> Option<bool> {
        let message = message.trim_end();
        let Some(no) = no else {
            // Only one way on: Enter takes it.
            let question = format!("{plugin}: {message} (Enter: {yes}) ");
            on_screen(|| ask_tty(&question, false))?;
            return Some(true);
        };
        let question = format!("{plugin}: {message} [y: {yes} / n: {no}] ");
        let answer = on_screen(|| ask_tty(&question, false))?;
        let answer = answer.trim().to_lowercase();
        Some(answer == "y" || answer == "yes" || answer == yes.to_lowercase())
    }

    fn request_public(&self, plugin: &str, description: &str) -> Option<String> {
        let question = format!("{plugin}: {} ", description.trim_end());
        let answer = on_screen(|| ask_tty(&question, false))?;
        Some(answer.to_string())
    }

    fn request_secret(&self, plugin: &str, description: &str) -> Option<SecretString> {
        let question = format!("{plugin}: {} ", description.trim_end());
        let answer = on_screen(|| ask_tty(&question, true))?;
        Some(SecretString::from(answer.as_str()))
    }
}

/// Asks yes/no in the terminal; `false` when nobody can answer. The answer is
/// a whole line (`y` or `yes`, then Enter; anything else is no), so a
/// keystroke meant for the next question is never taken as the answer, and
/// the Enter after `y` is never left over for the next question. Input typed
/// before the question appeared is discarded.
pub fn confirm(question: &str) -> Result<bool> {
    if !interactive() {
        return Ok(false);
    }
    discard_typed_ahead();
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    let read = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("failed to read the answer")?;
    if read == 0 {
        // Ctrl-D: no, on a line of its own.
        eprintln!();
        return Ok(false);
    }
    let answer = line.trim().to_ascii_lowercase();
    Ok(answer == "y" || answer == "yes")
}

/// The answers to the prompts of `units`, before anything runs: from the
/// prompts file, the environment, or (in a terminal) asked.
pub fn collect_answers(
    plan: &Plan<'_>,
    units: &[UnitId],
    prompts_file: Option<&Path>,
) -> Result<Answers> {
    let file = prompts_file.map(read_prompts_file).transpose()?;
    let env = prompt_answer_variable;
    let mut asker = TerminalAsker;
    let asker: Option<&mut dyn Asker> = if interactive() {
        Some(&mut asker)
    } else {
        None
    };
    Answers::collect(plan, units, file.as_ref(), &env, asker)
        .map_err(|e| UsageError(anyhow::Error::new(e)).into())
}

/// Reads a prompts file: a JSON or YAML map artifact -> prompt -> string; `-` is stdin.
pub fn read_prompts_file(path: &Path) -> Result<PromptsFile> {
    let text = Zeroizing::new(if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("failed to read prompt answers from stdin")?;
        text
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("failed to read prompts file `{}`", path.display()))?
    });
    let shown = path.display();
    // Measured before parsing: libyaml's time grows with the square of the nesting.
    artifacts_model::limits::check_nesting(&text)
        .map_err(|e| UsageError(anyhow::anyhow!("prompts file `{shown}` {e}")))?;
    // Parse errors of serde would quote the offending text, which may be a secret: report only where.
    let value: serde_json::Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(&text).map_err(|e| {
            UsageError(anyhow::anyhow!(
                "prompts file `{shown}` is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?
    } else {
        serde_norway::from_str(&text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
                .unwrap_or_default();
            UsageError(anyhow::anyhow!(
                "prompts file `{shown}` is not valid YAML or JSON{at}"
            ))
        })?
    };
    let Some(artifacts) = value.as_object() else {
        bail!(UsageError(anyhow::anyhow!(
            "prompts file `{shown}` must be a map of artifact -> prompt -> value"
        )));
    };
    let mut answers = PromptsFile::new();
    for (artifact, prompts) in artifacts {
        let Some(prompts) = prompts.as_object() else {
            bail!(UsageError(anyhow::anyhow!(
                "prompts file `{shown}`: `{artifact}` must map prompt names to values"
            )));
        };
        for (prompt, value) in prompts {
            let Some(text) = value.as_str() else {
                bail!(UsageError(anyhow::anyhow!(
                    "prompts file `{shown}`: `{artifact}/{prompt}` must be a string (quote it)"
                )));
            };
            answers
                .entry(artifact.clone())
                .or_default()
                .insert(prompt.clone(), SecretString::from(text));
        }
    }
    Ok(answers)
}
