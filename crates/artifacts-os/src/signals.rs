//! The signal entry point the binary installs once at start ([`install`]).
//!
//! Global state: a flag set once a signal arrived, and the handler thread.
//!
//! On SIGINT, SIGTERM, SIGHUP or SIGQUIT, give the terminal back its
//! settings (echo, if a hidden prompt was running), stop every child (their
//! process groups get SIGTERM, SIGKILL after 5 s) and wait for them, remove
//! every scratch directory (prompt answers and generated files included), and
//! exit with 128 + the signal number.
//!
//! Children run in their own process groups, so a terminal's Ctrl-C reaches
//! them only through this forwarding.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;

/// How long children get between SIGTERM and SIGKILL.
const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Stops every running child and removes every scratch directory, for a
/// process about to exit outside `main`'s normal return (a signal, a broken
/// pipe). Nothing can start a child or a scratch directory afterwards.
pub fn stop_children_and_remove_scratch() {
    crate::process::terminate_all(GRACE);
    crate::scratch::remove_all();
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Called by the main thread before it exits: once a signal arrived, the
/// handler owns the exit (code 128 + signal), so the main thread, which may
/// just have seen its child die, must not race it with its own exit code.
pub fn yield_to_handler() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
}

/// Starts the signal-handling thread (see the module doc). Call once, early
/// in `main`, after [`crate::process::harden_current_process`].
pub fn install() {
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT]) else {
        tracing::warn!(
            "could not install signal handlers; an interrupted run may leave temporary files"
        );
        return;
    };
    // The terminal as it was before any prompt turned echo off, to give it
    // back if a signal ends the run in the middle of a hidden prompt: the
    // controlling terminal (passphrases are read there even when stdin is a
    // pipe), else stdin.
    let terminal: Option<(std::os::fd::OwnedFd, nix::sys::termios::Termios)> =
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .map(std::os::fd::OwnedFd::from)
            .or_else(|_| std::io::stdin().as_fd().try_clone_to_owned())
            .ok()
            .and_then(|fd| {
                let saved = nix::sys::termios::tcgetattr(&fd).ok()?;
                Some((fd, saved))
            });
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            INTERRUPTED.store(true, Ordering::SeqCst);
            if let Some((fd, saved)) = &terminal {
                let _ = nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, saved);
            }
            stop_children_and_remove_scratch();
            eprintln!("interrupted: stopped running scripts and removed temporary files");
            std::process::exit(128 + signal);
        }
    });
}
