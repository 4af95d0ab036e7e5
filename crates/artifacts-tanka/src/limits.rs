//! Memory and time limits for the builtin engine's evaluation.
//!
//! jsonnet from the repository can allocate without bound (11 GB of RSS in
//! 40 s) or loop forever, and jrsonnet has no way to interrupt an
//! evaluation. So while a [`Watchdog`] lives, a thread samples the process's
//! resident memory and the elapsed time; past a limit it prints one line to
//! stderr and ends the process with exit code 1 (the only way to stop
//! jrsonnet; the builtin engine leaves no files behind). An address-space
//! limit (`RLIMIT_AS`, twice the memory limit plus 1 GiB) stops allocations
//! that grow faster than the sampling; Rust aborts on such a failed
//! allocation, so a `SIGABRT` handler names the limit before the process
//! ends. Global state: the process's `RLIMIT_AS` and `SIGABRT` disposition,
//! restored when the watchdog is dropped, and the handler's message.

use std::io::Write;
use std::sync::{OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

/// Default memory limit, in MiB.
pub const DEFAULT_MAX_MEMORY_MIB: u64 = 2048;
/// Default time limit, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;

/// How often memory and time are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// Limits for one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalLimits {
    /// Resident memory the process may reach, in MiB.
    pub max_memory_mib: u64,
    /// Wall-clock time the evaluation may take.
    pub timeout: Duration,
}

impl Default for EvalLimits {
    fn default() -> Self {
        EvalLimits {
            max_memory_mib: DEFAULT_MAX_MEMORY_MIB,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        }
    }
}

/// Enforces [`EvalLimits`] until dropped.
#[derive(Debug)]
pub struct Watchdog {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    old_as: Option<(u64, u64)>,
    old_abort: Option<SigAction>,
}

/// What the `SIGABRT` handler prints, written once before it is installed.
static ABORT_MESSAGE: OnceLock<Vec<u8>> = OnceLock::new();

extern "C" fn on_abort(_: nix::libc::c_int) {
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the message is
    // never freed, and reading an initialized OnceLock is an atomic load.
    unsafe {
        if let Some(message) = ABORT_MESSAGE.get() {
            nix::libc::write(2, message.as_ptr().cast(), message.len());
        }
        nix::libc::_exit(1);
    }
}

impl Watchdog {
    /// Starts watching; `env` names the environment in the message.
    pub fn start(env: &str, limits: EvalLimits) -> Watchdog {
        let max_bytes = limits.max_memory_mib.saturating_mul(1 << 20);
        let old_as = getrlimit(Resource::RLIMIT_AS).ok();
        if let Some((soft, hard)) = old_as {
            let backstop = max_bytes.saturating_mul(2).saturating_add(1 << 30);
            if backstop < soft && backstop <= hard {
                // Best effort: the sampling below still applies without it.
                let _ = setrlimit(Resource::RLIMIT_AS, backstop, hard);
            }
        }
        // The handler is only installed when its message is the one set.
        let message = format!(
            "error: evaluating environment `{env}` was aborted, most likely by the memory limit of {} MiB (--max-memory)\n",
            limits.max_memory_mib
        );
        let old_abort = (ABORT_MESSAGE.get_or_init(|| message.clone().into_bytes())
            == message.as_bytes())
        .then(|| {
            let action = SigAction::new(
                SigHandler::Handler(on_abort),
                SaFlags::empty(),
                SigSet::empty(),
            );
            // SAFETY: the handler only calls async-signal-safe functions.
            unsafe { sigaction(Signal::SIGABRT, &action) }.ok()
        })
        .flatten();
        let (stop, stopped) = mpsc::channel::<()>();
        let env = env.to_owned();
        let started = Instant::now();
        let thread = std::thread::Builder::new()
            .name("eval-watchdog".into())
            .spawn(move || {
                loop {
                    match stopped.recv_timeout(SAMPLE_EVERY) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    if started.elapsed() > limits.timeout {
                        die(&format!(
                            "evaluating environment `{env}` took longer than the time limit of {} s (--eval-timeout)",
                            limits.timeout.as_secs()
                        ));
                    }
                    if resident_bytes().is_some_and(|rss| rss > max_bytes) {
                        die(&format!(
                            "evaluating environment `{env}` used more than the memory limit of {} MiB (--max-memory)",
                            limits.max_memory_mib
                        ));
                    }
                }
            })
            .ok();
        Watchdog {
            stop: Some(stop),
            thread,
            old_as,
            old_abort,
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some((soft, hard)) = self.old_as {
            let _ = setrlimit(Resource::RLIMIT_AS, soft, hard);
        }
        if let Some(old) = self.old_abort.take() {
            // SAFETY: restores the disposition that was in place before.
            let _ = unsafe { sigaction(Signal::SIGABRT, &old) };
        }
    }
}

/// The process's resident memory, from `/proc/self/statm`.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096);
    Some(pages.saturating_mul(page as u64))
}

/// Prints `message` as the binary prints errors and ends the process.
fn die(message: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "error: {message}");
    std::process::exit(1)
}
