//! Asking a person: prompts in the terminal, confirmations, and the prompts file.

use std::io::{BufRead, IsTerminal, Read};
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use artifacts_engine::prompts::{Asker, PromptsFile};
use artifacts_model::{Prompt, PromptKind};
use console::Term;
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::exit::UsageError;

/// Whether a person is at the keyboard: stdin and stderr are terminals.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks in the terminal with dialoguer, in declaration order.
pub struct TerminalAsker;

impl Asker for TerminalAsker {
    fn ask(&mut self, artifact: &str, name: &str, prompt: &Prompt) -> Result<SecretString, String> {
        let label = match &prompt.description {
            Some(description) => format!("{artifact} › {name} ({description})"),
            None => format!("{artifact} › {name}"),
        };
        let term = Term::stderr();
        match prompt.kind {
            PromptKind::Line => dialoguer::Input::<String>::new()
                .with_prompt(label)
                .allow_empty(true)
                .interact_text_on(&term)
                .map(SecretString::from)
                .map_err(|e| e.to_string()),
            PromptKind::Hidden => {
                read_hidden(&format!("{label}: "), false).map_err(|e| e.to_string())
            }
            PromptKind::Multiline | PromptKind::MultilineHidden => {
                let hidden = prompt.kind.is_hidden();
                let header = format!(
                    "{label}\n  (several lines{}; finish with Ctrl-D on an empty line)\n",
                    if hidden { ", not shown" } else { "" }
                );
                if hidden {
                    read_hidden(&header, true).map_err(|e| e.to_string())
                } else {
                    let _ = term.write_str(&header);
                    read_lines(true).map_err(|e| e.to_string())
                }
            }
        }
    }
}

/// Shows `prompt` and reads one line (or, with `until_eof`, lines up to
/// end-of-file) with echo off. Echo goes off *before* the prompt appears, so
/// answers typed or pasted right away are neither shown nor discarded.
fn read_hidden(prompt: &str, until_eof: bool) -> std::io::Result<SecretString> {
    let echo = EchoOff::new();
    eprint!("{prompt}");
    let value = read_lines(until_eof);
    drop(echo);
    eprintln!();
    value
}

/// Reads one line without its newline, or everything up to end-of-file.
fn read_lines(until_eof: bool) -> std::io::Result<SecretString> {
    let mut text = Zeroizing::new(String::new());
    let stdin = std::io::stdin();
    let mut lock = stdin.lock();
    let mut line = Zeroizing::new(String::new());
    loop {
        line.clear();
        if lock.read_line(&mut line)? == 0 {
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

/// Asks yes/no in the terminal; `false` when nobody can answer.
pub fn confirm(question: &str) -> Result<bool> {
    if !interactive() {
        return Ok(false);
    }
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact_on(&Term::stderr())
        .context("failed to read the answer")
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
