//! One process builder for every child we start: backend scripts and generators.
//!
//! Global state: the set of running children's process groups, so a signal
//! handler can forward SIGTERM to all of them ([`terminate_all`]).
//!
//! Each child gets its own process group, so a timeout can kill the whole
//! tree (a script's own children included) and Ctrl-C reaches children only
//! through us. stdin is `/dev/null`; stdout and stderr are read on their own
//! threads so neither pipe can fill up and stall the child. No other
//! descriptor of ours reaches a child: everything from 3 up is
//! close-on-exec (`artifacts generate 7<key` must not hand the key to a
//! generator), except descriptors a builder passes on purpose (bwrap's
//! seccomp program and the sandbox's lifeline). Children that need nothing
//! set between fork and exec (backend scripts) are started with
//! `posix_spawn`; the others are forked with a hook that sets what they need.
//!
//! [`harden_current_process`] is for the binary's start: no core dumps, no
//! ptrace or `/proc/<pid>/mem` reads by other processes of the same user,
//! and every inherited descriptor close-on-exec.
//!
//! Where we differ from cargo's process builder: a generator's stdout may be
//! secret, so only stderr ever goes into errors, and environment variables are
//! never displayed.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// At most this much of a child's stderr is kept (the end of it).
const STDERR_LIMIT: usize = 64 * 1024;

static RUNNING: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
static FINISHED: Condvar = Condvar::new();
/// Set (under the `RUNNING` lock) once [`terminate_all`] started: no child
/// may start after it, or it would write into scratch directories being removed.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Runs `write` while none of our children can be between fork and exec
/// (every spawn holds the same lock): a file we write in order to run it
/// (a generator's copy) is then never open for writing in a forked child,
/// which would make running it fail with "Text file busy" until that child
/// reached its exec.
pub fn while_no_child_starts<T>(write: impl FnOnce() -> T) -> T {
    let _spawns = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    write()
}

/// Stops every running child: SIGTERM to each process group, then, for
/// groups whose leader has not been reaped within `grace`, SIGKILL.
/// Returns once all were reaped or after twice `grace`. For the signal handler thread.
pub fn terminate_all(grace: Duration) {
    let signal_all = |signal: Signal| {
        if let Ok(running) = RUNNING.lock() {
            STOPPING.store(true, Ordering::SeqCst);
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
    user: Option<(u32, u32)>,
    no_new_privs: bool,
    parent_death: bool,
    pass_fds: Vec<Arc<OwnedFd>>,
    /// Passed like `pass_fds`, but our copy is closed once the child started.
    hand_over: Option<Arc<Mutex<Option<OwnedFd>>>>,
    stdin: Option<Arc<OwnedFd>>,
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

impl ProcessError {
    /// The same error with known secrets taken out of the stderr it carries
    /// ([`crate::redact`]).
    pub fn redacted(self) -> ProcessError {
        match self {
            ProcessError::Timeout {
                command,
                timeout,
                stderr,
            } => ProcessError::Timeout {
                command,
                timeout,
                stderr: crate::redact::redact(&stderr),
            },
            other => other,
        }
    }
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
            user: None,
            no_new_privs: false,
            parent_death: false,
            pass_fds: Vec::new(),
            hand_over: None,
            stdin: None,
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

    /// Runs the child as `uid`/`gid` with no supplementary groups (we must be root).
    pub fn user(&mut self, uid: u32, gid: u32) -> &mut Self {
        self.user = Some((uid, gid));
        self
    }

    /// Sets `no_new_privs` in the child: no setuid binary or file
    /// capability can give it back what it does not have.
    pub fn no_new_privs(&mut self) -> &mut Self {
        self.no_new_privs = true;
        self
    }

    /// Has the kernel SIGKILL the child when the thread that started it
    /// ends, even when we are killed outright (`kill -9`, an ArgoCD
    /// timeout): a child reading a secrets file must not outlive us.
    pub fn kill_on_parent_death(&mut self) -> &mut Self {
        self.parent_death = true;
        self
    }

    /// Passes `fd` to the child under its own number (every other one from 3 up is closed).
    pub fn pass_fd(&mut self, fd: Arc<OwnedFd>) -> &mut Self {
        self.pass_fds.push(fd);
        self
    }

    /// Passes `fd` to the child under its own number and closes our copy
    /// as soon as the child has started, while no other child of ours can
    /// be between fork and exec: from then on only the child (and what it
    /// starts) holds it, so its peer can tell when the child is gone. A
    /// builder that handed a descriptor over runs once.
    pub fn hand_over_fd(&mut self, fd: OwnedFd) -> &mut Self {
        self.hand_over = Some(Arc::new(Mutex::new(Some(fd))));
        self
    }

    /// Gives the child `fd` as stdin instead of `/dev/null`.
    pub fn stdin_fd(&mut self, fd: Arc<OwnedFd>) -> &mut Self {
        self.stdin = Some(fd);
        self
    }

    /// Runs the child to completion. A non-zero exit is not an error here:
    /// callers give exit codes their own meaning (see [`describe_status`]).
    pub fn run(&self) -> Result<Output, ProcessError> {
        let spawn_error = |source| ProcessError::Spawn {
            command: self.to_string(),
            source,
        };
        let stdin = match &self.stdin {
            Some(fd) => Stdio::from(fd.try_clone().map_err(spawn_error)?),
            None => Stdio::null(),
        };
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(stdin)
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
        if let Some((uid, gid)) = self.user {
            // std drops the supplementary groups too when we are root.
            command.uid(uid).gid(gid);
        }
        let mut pass: Vec<RawFd> = self.pass_fds.iter().map(|fd| fd.as_raw_fd()).collect();
        if let Some(handed) = &self.hand_over {
            let handed = handed.lock().unwrap_or_else(|e| e.into_inner());
            let Some(fd) = handed.as_ref() else {
                return Err(spawn_error(std::io::Error::other(
                    "its descriptor was handed over to an earlier run",
                )));
            };
            pass.push(fd.as_raw_fd());
        }
        let no_new_privs = self.no_new_privs;
        // Our pid, for the child to see whether we died before it asked
        // for the signal.
        let parent_death = self.parent_death.then(std::process::id);
        // A child that needs nothing done between fork and exec is started
        // without a `pre_exec` hook, so std can use `posix_spawn` (a vfork,
        // no copy of our page tables): backend scripts run thousands of
        // times per `check`, and a fork of a large process costs far more
        // than the script.
        let plain = pass.is_empty() && !no_new_privs && parent_death.is_none();
        if !plain {
            // SAFETY: between fork and exec the closure only makes raw system
            // calls (fcntl, close_range, getrlimit, prctl), which are
            // async-signal-safe; it allocates nothing and takes no locks.
            unsafe {
                command.pre_exec(move || prepare_child(&pass, no_new_privs, parent_death));
            }
        }
        // Spawning under the lock: a signal handler's `terminate_all` sees
        // this child, or this sees that it ran and starts nothing.
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        if STOPPING.load(Ordering::SeqCst) {
            return Err(ProcessError::Spawn {
                command: self.to_string(),
                source: std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted"),
            });
        }
        if plain {
            // Without the hook the child keeps every descriptor of ours that
            // is not close-on-exec. std opens all of its own close-on-exec and
            // `harden_current_process` marked the inherited ones; this one
            // system call, here in the parent, also catches a descriptor a
            // library opened without the flag. Every spawn holds `RUNNING`,
            // so no other child of ours starts in between; the descriptor a
            // builder passes on purpose is close-on-exec here and opened
            // only in its own child (`prepare_child`).
            cloexec_from(3);
        }
        let spawned = command.spawn();
        // std returns once the child has exec'd (or failed to), and no other
        // child can fork before we let go of the lock: now is when our copy goes.
        if let Some(handed) = &self.hand_over {
            drop(handed.lock().unwrap_or_else(|e| e.into_inner()).take());
        }
        let mut child = spawned.map_err(spawn_error)?;
        let group = child.id() as i32;
        running.insert(group);
        drop(running);
        let collected = collect(&mut child, group, self.timeout);
        // Whatever the child left behind in its group goes with it, so no
        // straggler keeps our pipes open or outlives the run.
        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        if let Ok(mut running) = RUNNING.lock() {
            running.remove(&group);
            FINISHED.notify_all();
        }
        let Collected {
            status,
            stdout,
            stderr: stderr_bytes,
            timed_out,
        } = collected;
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

/// Runs in the child between fork and exec: every descriptor from 3 up
/// becomes close-on-exec except those in `pass`, and `no_new_privs` and the
/// parent-death signal are set if asked.
/// (Close-on-exec rather than closed: std reports a failed exec to the
/// parent through a close-on-exec pipe of its own.)
fn prepare_child(
    pass: &[RawFd],
    no_new_privs: bool,
    parent_death: Option<u32>,
) -> std::io::Result<()> {
    use nix::libc;
    if let Some(parent) = parent_death {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Killed between fork and prctl, the parent sent no signal: the
        // child was adopted by another process by now, and stops here.
        // SAFETY: getppid takes no arguments.
        if unsafe { libc::getppid() } as u32 != parent {
            return Err(std::io::Error::other("the parent died"));
        }
    }
    cloexec_from(3);
    for &fd in pass {
        // SAFETY: fcntl on a descriptor we own; clears FD_CLOEXEC only.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    if no_new_privs {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec: one `close_range`
/// (Linux 5.11), else one `fcntl` per possible descriptor below the soft
/// `RLIMIT_NOFILE`. Async-signal-safe.
fn cloexec_from(first: u32) {
    use nix::libc;
    // SAFETY: close_range takes two descriptor numbers and flags.
    let done = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    } == 0;
    if done {
        return;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur.min(1 << 20) as i32
    } else {
        65536
    };
    for fd in first as i32..max {
        // SAFETY: fcntl on a descriptor number; EBADF for unused ones is fine.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// For the start of the binary, before any thread or child exists: makes
/// every inherited descriptor from 3 up close-on-exec, disables core dumps
/// (`RLIMIT_CORE` 0, inherited by every child) and marks the process
/// non-dumpable, so a crash, SIGQUIT or another process of the same user
/// (ptrace, `/proc/<pid>/mem`) cannot get at prompt answers or keys in memory.
pub fn harden_current_process() {
    use nix::libc;
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<i32> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > 2)
            .collect();
        for fd in fds {
            // SAFETY: fcntl on a descriptor number; failure (the directory's own, closed by now) is harmless.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags >= 0 {
                    libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
                }
            }
        }
    }
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct we pass; prctl takes integers.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// What [`collect`] gathered from a child.
struct Collected {
    status: std::io::Result<ExitStatus>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    timed_out: bool,
}

/// Reads the child's pipes and waits for it, killing its group at the
/// deadline. One `poll` loop over the pipes and a pidfd, on this thread: no
/// helper threads per child, which matters when checking thousands of
/// artifacts. Kernels without `pidfd_open` (before 5.3) get a waiter thread.
fn collect(child: &mut Child, group: i32, timeout: Option<Duration>) -> Collected {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut stdout_pipe = child.stdout.take();
    let mut stderr_pipe = child.stderr.take();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let pidfd = pidfd_open(child.id());
    let mut status: Option<std::io::Result<ExitStatus>> = None;
    let mut timed_out = false;
    let mut chunk = [0u8; 8192];
    loop {
        let watch_exit = status.is_none() && pidfd.is_some();
        if stdout_pipe.is_none() && stderr_pipe.is_none() && !watch_exit {
            break;
        }
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(3);
        let events = PollFlags::POLLIN;
        if let Some(pipe) = &stdout_pipe {
            fds.push(PollFd::new(pipe.as_fd(), events));
        }
        if let Some(pipe) = &stderr_pipe {
            fds.push(PollFd::new(pipe.as_fd(), events));
        }
        if watch_exit && let Some(fd) = &pidfd {
            fds.push(PollFd::new(fd.as_fd(), events));
        }
        let wait = match deadline {
            Some(deadline) if !timed_out => {
                let left = deadline.saturating_duration_since(Instant::now());
                PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
            }
            _ => PollTimeout::NONE,
        };
        match poll(&mut fds, wait) {
            Ok(0) => {
                let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
                timed_out = true;
                continue;
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut index = 0;
        if stdout_pipe.is_some() {
            if ready[index] && !read_some(&mut stdout_pipe, &mut stdout, &mut chunk, usize::MAX) {
                stdout_pipe = None;
            }
            index += 1;
        }
        if stderr_pipe.is_some() {
            if ready[index] && !read_some(&mut stderr_pipe, &mut stderr, &mut chunk, STDERR_LIMIT) {
                stderr_pipe = None;
            }
            index += 1;
        }
        if watch_exit && ready[index] {
            status = Some(child.wait());
            // Grandchildren holding the pipes open go now, so the reads end.
            let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        }
    }
    let status = match status {
        Some(status) => status,
        None => wait_with_deadline(child, group, deadline, &mut timed_out),
    };
    Collected {
        status,
        stdout,
        stderr,
        timed_out,
    }
}

/// Reads what is available; `false` at end of file. Keeps at most about `limit` bytes (the end).
fn read_some<R: Read>(
    pipe: &mut Option<R>,
    into: &mut Vec<u8>,
    chunk: &mut [u8],
    limit: usize,
) -> bool {
    let Some(reader) = pipe.as_mut() else {
        return false;
    };
    match reader.read(chunk) {
        Ok(0) => false,
        Ok(n) => {
            into.extend_from_slice(&chunk[..n]);
            if into.len() > limit.saturating_mul(2) {
                into.drain(..into.len() - limit);
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => true,
        Err(_) => false,
    }
}

/// Waits for a child whose exit we could not watch with a pidfd.
fn wait_with_deadline(
    child: &mut Child,
    group: i32,
    deadline: Option<Instant>,
    timed_out: &mut bool,
) -> std::io::Result<ExitStatus> {
    let Some(deadline) = deadline.filter(|_| !*timed_out) else {
        return child.wait();
    };
    // A timer thread kills the group at the deadline unless told the child is done.
    let (done, finished) = mpsc::channel::<()>();
    let left = deadline.saturating_duration_since(Instant::now());
    let timer = std::thread::spawn(move || {
        if finished.recv_timeout(left).is_err() {
            let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
            return true;
        }
        false
    });
    let status = child.wait();
    let _ = done.send(());
    if timer.join().unwrap_or(false) {
        *timed_out = true;
    }
    status
}

/// A pidfd for `pid`, readable once the process exits (Linux 5.3 and later).
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new file descriptor or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid as nix::libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
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
        // The grandchild was killed with its group: wait for its exit on a
        // pidfd (no polling); gone already is fine too.
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        if let Some(pidfd) = pidfd_open(pid) {
            let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            let ready = poll(&mut fds, PollTimeout::from(10_000u16)).unwrap();
            assert_eq!(
                ready, 1,
                "grandchild {pid} still alive 10 s after the timeout"
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
    fn children_get_no_descriptor_beyond_stdio_except_the_one_passed() {
        use nix::libc;
        let inherited = std::fs::File::open("/dev/null").unwrap();
        // As if a caller had handed it to us: not close-on-exec.
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(inherited.as_raw_fd(), libc::F_SETFD, 0) };
        let (passed, _writer) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let script = format!(
            "test -e /proc/self/fd/{} && echo inherited; test -e /proc/self/fd/{} && echo passed; true",
            inherited.as_raw_fd(),
            passed.as_raw_fd()
        );
        let output = ProcessBuilder::new("/bin/sh")
            .args(["-c", &script])
            .pass_fd(Arc::new(passed))
            .run()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "passed\n");
    }

    #[test]
    fn a_handed_over_descriptor_is_ours_no_longer_once_the_child_runs() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let number = theirs.as_raw_fd();
        let mut builder = ProcessBuilder::new("/bin/sh");
        builder
            .args([
                "-c",
                &format!("test -e /proc/self/fd/{number} && echo passed"),
            ])
            .hand_over_fd(OwnedFd::from(theirs));
        let output = builder.run().unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "passed\n");
        // The child is gone and our copy was closed: the peer sees the hang-up.
        let mut fds = [PollFd::new(ours.as_fd(), PollFlags::POLLIN)];
        assert_eq!(poll(&mut fds, PollTimeout::ZERO).unwrap(), 1);
        assert!(fds[0].revents().unwrap().contains(PollFlags::POLLHUP));
        // It went to the first run; a second one says so instead of passing
        // whatever now has that number.
        let error = builder.run().unwrap_err();
        assert!(
            format!("{:?}", error).contains("handed over to an earlier run"),
            "{error:?}"
        );
    }

    #[test]
    fn a_descriptor_given_as_stdin_is_the_childs_stdin() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        std::io::Write::write_all(&mut &ours, b"from the socket\n").unwrap();
        let output = ProcessBuilder::new("/bin/sh")
            .args(["-c", "read line; echo \"$line\""])
            .stdin_fd(Arc::new(OwnedFd::from(theirs)))
            .run()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "from the socket\n");
    }

    #[test]
    fn children_started_without_a_hook_get_no_descriptor_beyond_stdio() {
        use nix::libc;
        let inherited = std::fs::File::open("/dev/null").unwrap();
        // As if a library had opened it without O_CLOEXEC.
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(inherited.as_raw_fd(), libc::F_SETFD, 0) };
        let script = format!(
            "test -e /proc/self/fd/{} && echo inherited; true",
            inherited.as_raw_fd()
        );
        // No descriptor to pass, no privileges or parent-death signal to
        // set: the builder starts it without a hook between fork and exec.
        let output = ProcessBuilder::new("/bin/sh")
            .args(["-c", &script])
            .run()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "");
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
