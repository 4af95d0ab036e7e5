//! One process builder for every child we start: backend scripts and generators.
//!
//! Global state: the set of running children's process groups, so a signal
//! handler can forward SIGTERM to all of them ([`terminate_all`]).
//!
//! Each child gets its own process group, so a timeout can kill the whole
//! tree (a script's own children included) and Ctrl-C reaches children only
//! through us. stdin is `/dev/null`; stdout and stderr are read on their own
//! threads so neither pipe can fill up and stall the child.
//!
//! Where we differ from cargo's process builder: a generator's stdout may be
//! secret, so only stderr ever goes into errors, and environment variables are
//! never displayed.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// At most this much of a child's stderr is kept (the end of it).
const STDERR_LIMIT: usize = 64 * 1024;

static RUNNING: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
static FINISHED: Condvar = Condvar::new();

/// Stops every running child: SIGTERM to each process group, then, for
/// groups whose leader has not been reaped within `grace`, SIGKILL.
/// Returns once all were reaped or after twice `grace`. For the signal handler thread.
pub fn terminate_all(grace: Duration) {
    let signal_all = |signal: Signal| {
        if let Ok(running) = RUNNING.lock() {
            for group in running.iter() {
                let _ = killpg(Pid::from_raw(*group), signal);
            }
        }
    };
    signal_all(Signal::SIGTERM);
    if !wait_until_none_running(grace) {
        signal_all(Signal::SIGKILL);
        wait_until_none_running(grace);
    }
}

/// Waits (on a condition variable, not by polling) until no child is running.
fn wait_until_none_running(limit: Duration) -> bool {
    let Ok(running) = RUNNING.lock() else {
        return false;
    };
    match FINISHED.wait_timeout_while(running, limit, |running| !running.is_empty()) {
        Ok((_, result)) => !result.timed_out(),
        Err(_) => false,
    }
}

/// What to do with a child's stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdout {
    /// Keep it (in memory) for the caller.
    Capture,
    /// Throw it away: generators' stdout may hold secrets.
    Discard,
}

/// A command to run: program, arguments, directory, environment and time limit.
#[derive(Clone)]
pub struct ProcessBuilder {
    program: OsString,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    clear_env: bool,
    env: BTreeMap<OsString, Option<OsString>>,
    timeout: Option<Duration>,
    stdout: Stdout,
}

/// What a finished child left.
#[derive(Debug)]
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// Its stdout, when captured.
    pub stdout: Vec<u8>,
    /// The end of its stderr, lossily decoded.
    pub stderr: String,
}

/// A child could not run to completion.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The program could not be started.
    #[error("could not execute `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The child ran longer than allowed; its process group was killed.
    #[error("`{command}` did not finish within {}s and was killed", .timeout.as_secs())]
    Timeout {
        /// The command line.
        command: String,
        /// The limit.
        timeout: Duration,
        /// What it printed on stderr before it was killed.
        stderr: String,
    },
}

impl ProcessBuilder {
    /// A builder for `program` with no arguments, inheriting our environment.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        ProcessBuilder {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            cwd: None,
            clear_env: false,
            env: BTreeMap::new(),
            timeout: None,
            stdout: Stdout::Capture,
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets the working directory.
    pub fn cwd(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Starts from an empty environment instead of ours.
    pub fn clear_env(&mut self) -> &mut Self {
        self.clear_env = true;
        self
    }

    /// Sets a variable.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.env
            .insert(key.as_ref().to_owned(), Some(value.as_ref().to_owned()));
        self
    }

    /// Removes a variable we would otherwise pass on.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        self.env.insert(key.as_ref().to_owned(), None);
        self
    }

    /// Kills the child's process group after this long.
    pub fn timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// Chooses what happens to stdout.
    pub fn stdout(&mut self, stdout: Stdout) -> &mut Self {
        self.stdout = stdout;
        self
    }

    /// The program.
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// Runs the child to completion. A non-zero exit is not an error here:
    /// callers give exit codes their own meaning (see [`describe_status`]).
    pub fn run(&self) -> Result<Output, ProcessError> {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(match self.stdout {
                Stdout::Capture => Stdio::piped(),
                Stdout::Discard => Stdio::null(),
            })
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        if self.clear_env {
            command.env_clear();
        }
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        let mut child = command.spawn().map_err(|source| ProcessError::Spawn {
            command: self.to_string(),
            source,
        })?;
        let group = child.id() as i32;
        if let Ok(mut running) = RUNNING.lock() {
            running.insert(group);
        }
        let stdout_reader = child.stdout.take().map(|mut pipe| {
            std::thread::spawn(move || {
                let mut buffer = Vec::new();
                let _ = pipe.read_to_end(&mut buffer);
                buffer
            })
        });
        let stderr_reader = child.stderr.take().map(|mut pipe| {
            std::thread::spawn(move || {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    if buffer.len() > 2 * STDERR_LIMIT {
                        buffer.drain(..buffer.len() - STDERR_LIMIT);
                    }
                }
                buffer
            })
        });

        let (status, timed_out) = match self.timeout {
            None => (child.wait(), false),
            Some(timeout) => {
                let (sender, receiver) = mpsc::channel();
                let waiter = std::thread::spawn(move || {
                    let _ = sender.send(child.wait());
                });
                match receiver.recv_timeout(timeout) {
                    Ok(status) => {
                        let _ = waiter.join();
                        (status, false)
                    }
                    Err(_) => {
                        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
                        let status = receiver.recv().expect("waiter thread sends once");
                        let _ = waiter.join();
                        (status, true)
                    }
                }
            }
        };
        // Whatever the child left behind in its group goes with it, so no
        // straggler keeps our pipes open or outlives the run.
        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        if let Ok(mut running) = RUNNING.lock() {
            running.remove(&group);
            FINISHED.notify_all();
        }
        let stdout = stdout_reader
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        let stderr_bytes = stderr_reader
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        let start = stderr_bytes.len().saturating_sub(STDERR_LIMIT);
        let stderr = String::from_utf8_lossy(&stderr_bytes[start..]).into_owned();
        let status = status.map_err(|source| ProcessError::Spawn {
            command: self.to_string(),
            source,
        })?;
        if timed_out {
            return Err(ProcessError::Timeout {
                command: self.to_string(),
                timeout: self.timeout.unwrap_or_default(),
                stderr,
            });
        }
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

/// Prints the shell-escaped command line. Environment variables are never shown.
impl fmt::Display for ProcessBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            shell_escape::escape(self.program.to_string_lossy())
        )?;
        for arg in &self.args {
            write!(f, " {}", shell_escape::escape(arg.to_string_lossy()))?;
        }
        Ok(())
    }
}

impl fmt::Debug for ProcessBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessBuilder")
            .field("command", &self.to_string())
            .field("cwd", &self.cwd)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Describes how a child ended: `exit status 3` or `signal: 9 (SIGKILL)`.
pub fn describe_status(status: &ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exit status {code}")
    } else if let Some(signal) = status.signal() {
        match Signal::try_from(signal) {
            Ok(named) => format!("signal: {signal} ({})", named.as_str()),
            Err(_) => format!("signal: {signal}"),
        }
    } else {
        "an unknown status".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_escapes_arguments_and_hides_environment() {
        let mut builder = ProcessBuilder::new("/bin/echo");
        builder.arg("two words").env("SECRET_VALUE", "hunter2");
        let shown = builder.to_string();
        assert_eq!(shown, "/bin/echo 'two words'");
        assert!(!format!("{builder:?}").contains("hunter2"));
    }

    #[test]
    fn captures_stdout_and_stderr_separately() {
        let mut builder = ProcessBuilder::new("/bin/sh");
        builder.args(["-c", "echo out; echo err >&2; exit 3"]);
        let output = builder.run().unwrap();
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, "err\n");
        assert_eq!(output.status.code(), Some(3));
    }

    #[test]
    fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        let mut builder = ProcessBuilder::new("/bin/sh");
        builder
            .args([
                "-c",
                &format!("sleep 30 & echo $! > {}; wait", pid_file.display()),
            ])
            .timeout(Some(Duration::from_millis(300)));
        let error = builder.run().unwrap_err();
        assert!(matches!(error, ProcessError::Timeout { .. }), "{error}");
        // run() returns only once every holder of the stderr pipe closed it,
        // the grandchild included: it is gone or a zombie now.
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim()));
        if let Ok(status) = status {
            assert!(
                status.contains("State:\tZ"),
                "grandchild still alive: {status}"
            );
        }
    }

    #[test]
    fn missing_program_is_a_spawn_error_naming_it() {
        let error = ProcessBuilder::new("/nonexistent/program")
            .run()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "could not execute `/nonexistent/program`"
        );
    }

    #[test]
    fn describes_signals_by_name() {
        let output = ProcessBuilder::new("/bin/sh")
            .args(["-c", "kill -9 $$"])
            .run()
            .unwrap();
        assert_eq!(describe_status(&output.status), "signal: 9 (SIGKILL)");
    }
}
