//! Exit codes and the error kinds that choose them.
//!
//! 0 success; 1 something missing/stale or an operation failed; 2 usage or
//! declaration errors (and checks that could not run). A closed stdout is
//! success, as in ripgrep: the reader has seen what it wanted.
//!
//! Global state: a panic hook ([`install_broken_pipe_hook`]) for the
//! `println!`/`eprintln!` in code we do not own that panic on a closed pipe.

use std::fmt;

use artifacts_model::ModelError;

pub const SUCCESS: i32 = 0;
pub const FAILURE: i32 = 1;
pub const USAGE: i32 = 2;

/// An error caused by how we were called or what was declared: exit code 2.
pub struct UsageError(pub anyhow::Error);

impl UsageError {
    pub fn from_model(error: ModelError) -> Self {
        UsageError(anyhow::Error::new(error))
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl fmt::Debug for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for UsageError {}

/// A message with a suggested fix, printed on its own `hint:` line.
#[derive(Debug)]
pub struct Hinted {
    pub message: String,
    pub hint: Option<&'static str>,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// A usage error (exit code 2) with an optional fix.
pub fn usage(message: impl Into<String>, hint: Option<&'static str>) -> anyhow::Error {
    UsageError(anyhow::Error::new(Hinted {
        message: message.into(),
        hint,
    }))
    .into()
}

/// The fix suggested by the outermost error in the chain that knows one.
pub fn hint(error: &anyhow::Error) -> Option<&'static str> {
    error.chain().find_map(|cause| {
        if let Some(usage) = cause.downcast_ref::<UsageError>() {
            Some(hint(&usage.0))
        } else if let Some(e) = cause.downcast_ref::<Hinted>() {
            Some(e.hint)
        } else if let Some(e) = cause.downcast_ref::<artifacts_crypto::Error>() {
            Some(e.hint())
        } else {
            cause
                .downcast_ref::<artifacts_tanka::Error>()
                .map(artifacts_tanka::Error::hint)
        }
    })?
}

/// Prints `error: …` (the whole chain) and the hint on stderr, and returns
/// the exit code: the one place every command's failure goes through.
pub fn report(error: &anyhow::Error) -> i32 {
    let style = console::Style::new().red().bold().for_stderr();
    eprintln!("{} {:#}", style.apply_to("error:"), error);
    if let Some(hint) = hint(error) {
        eprintln!("hint: {hint}");
    }
    code_for(error)
}

/// The exit code for an error.
pub fn code_for(error: &anyhow::Error) -> i32 {
    if error.downcast_ref::<UsageError>().is_some() {
        USAGE
    } else {
        FAILURE
    }
}

/// Whether an error is a closed stdout (`artifacts list | head`), which is not a failure.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let io = cause.downcast_ref::<std::io::Error>().map(|e| e.kind());
        // serde_json's error does not give its io error as `source()`.
        let json = cause
            .downcast_ref::<serde_json::Error>()
            .and_then(|e| e.io_error_kind());
        io.or(json) == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// Turns the panic `println!` and `eprintln!` raise on a closed pipe (in our
/// code or a library's) into a quiet exit: stop children, remove scratch
/// directories, exit 0 for stdout (the reader is done) or 1 for stderr (the
/// run was cut short). Any other panic goes to the default hook.
pub fn install_broken_pipe_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        let code = if !message.contains("Broken pipe") {
            None
        } else if message.starts_with("failed printing to stdout") {
            Some(SUCCESS)
        } else if message.starts_with("failed printing to stderr") {
            Some(FAILURE)
        } else {
            None
        };
        match code {
            Some(code) => {
                artifacts_os::signals::stop_children_and_remove_scratch();
                std::process::exit(code);
            }
            None => default(info),
        }
    }));
}
