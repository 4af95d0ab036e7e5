//! `kill -9` while bubblewrap is still setting up a generator's sandbox: no
//! generator of ours runs afterwards, for root and for other users.
//!
//! The window: bwrap's namespace process asks for its parent-death signal
//! only at the end of its set-up, so a kill before that used to leave it,
//! adopted by init, to run the generator. A stand-in `bwrap` on `PATH` (the
//! real one, with two options added) hits that window every time, by events,
//! not by timing: `--info-fd` tells us the namespace process exists (bwrap
//! writes it after clone), and `--file` makes that process read a FIFO we
//! filled and hold open while it builds the new root: room in the FIFO says
//! it got there, and it waits there until we let go, after artifacts and
//! the outer bwrap are dead.
//!
//! Killed earlier, between bwrap's clone and its go-ahead to the
//! namespace process (`--userns-block-fd` holds the outer bwrap there),
//! that process waits for good, running nothing, until the next run
//! sweeps the dead run's scratch directory and kills it.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::Project;

/// In the generator's command line: recognisable among all processes.
const TOKEN: &str = "600.3779";
/// Tries per user: each hits the window (the hold makes it deterministic).
const TRIES: usize = 3;

/// A process we wait for on a pidfd (no polling), at most `limit_ms`.
fn exits_within(pidfd: &OwnedFd, limit_ms: u16) -> bool {
    let mut fds = [nix::poll::PollFd::new(
        pidfd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(limit_ms)).unwrap() == 1
}

fn pidfd_open(pid: i32) -> OwnedFd {
    // SAFETY: pidfd_open returns a new descriptor or -1; we own it.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    assert!(
        fd >= 0,
        "pidfd_open {pid}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` was just returned by pidfd_open (checked above), owned by nothing else.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// The parent of `pid`, from `/proc/<pid>/stat` (the field after the
/// parenthesised command name).
fn parent_of(pid: i32) -> i32 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Kills the sandbox's namespace process (and with it the namespace) if a
/// try left it running, whatever the test's outcome.
struct Reaper(Option<OwnedFd>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(fd) = &self.0 {
            // SAFETY: pidfd_send_signal on a pidfd we own; no siginfo.
            unsafe {
                nix::libc::syscall(
                    nix::libc::SYS_pidfd_send_signal,
                    std::os::fd::AsRawFd::as_raw_fd(fd),
                    nix::libc::SIGKILL,
                    std::ptr::null::<u8>(),
                    0,
                )
            };
        }
    }
}

/// Two FIFOs for the stand-in bwrap, open read-write here (so neither its
/// opens nor ours wait): `info` receives bwrap's `--info-fd` report,
/// `hold` is what the namespace process reads to its end in set-up.
struct Fifos {
    info: fs::File,
    hold: Option<fs::File>,
}

fn fifos(dir: &Path, fill: bool) -> Fifos {
    let open = |name: &str| {
        let path = dir.join(name);
        let _ = fs::remove_file(&path);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // The stand-in runs as nobody (root's generators do too).
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&path)
            .unwrap()
    };
    let info = open("info");
    let mut hold = open("hold");
    // Full: once there is room again, the namespace process is reading it.
    // (Empty, it blocks whoever reads it until we let go.)
    let chunk = [b'h'; 4096];
    if fill {
        loop {
            match hold.write(&chunk) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("filling the hold FIFO: {e}"),
            }
        }
    }
    Fifos {
        info,
        hold: Some(hold),
    }
}

/// Waits (at most 10 s) until the namespace process reads the hold FIFO:
/// it is then past bwrap's go-ahead and the uid map, building the new root.
fn wait_until_held(hold: &fs::File) {
    let mut fds = [nix::poll::PollFd::new(
        hold.as_fd(),
        nix::poll::PollFlags::POLLOUT,
    )];
    let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16)).unwrap();
    assert_eq!(ready, 1, "the namespace process never read the hold FIFO");
}

/// Writes `bin/bwrap` under `dir`: the real bwrap, and for a generator's
/// sandbox (the start-up probe has no `--chdir`) `--info-fd` and `hold`
/// (options reading descriptor 9, the hold FIFO).
fn stand_in_bwrap(dir: &Path, hold: &str) -> PathBuf {
    let real = ["/usr/bin/bwrap", "/bin/bwrap"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("bubblewrap is installed");
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\ncase \" $* \" in\n*\" --chdir \"*) exec {real} --info-fd 8 {options} \"$@\" 8>{info} 9<{hold} ;;\nesac\nexec {real} \"$@\"\n",
        options = hold,
        info = dir.join("info").display(),
        hold = dir.join("hold").display(),
    );
    fs::write(bin.join("bwrap"), script).unwrap();
    fs::set_permissions(bin.join("bwrap"), fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// Reads the namespace process's pid (as seen here) from bwrap's
/// `--info-fd` report: `{"child-pid": N, …}`. At most 10 s.
fn child_pid(info: &mut fs::File) -> i32 {
    let mut report = String::new();
    while !report.contains('}') {
        let mut fds = [nix::poll::PollFd::new(
            info.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16)).unwrap();
        assert_eq!(ready, 1, "bwrap reported no namespace process: {report}");
        let mut buffer = [0u8; 512];
        let n = info.read(&mut buffer).unwrap();
        report.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    let at = report.find("\"child-pid\":").unwrap() + "\"child-pid\":".len();
    report[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The test's project: backend `rec`, one artifact whose generator blocks
/// in `sleep TOKEN`, and a stand-in bwrap adding `hold`; `user` (if any)
/// owns it. Returns the project and the stand-in's directory.
fn project(test: &str, user: Option<(u32, u32)>, hold: &str) -> (Project, PathBuf, String) {
    let p = Project::new(test);
    p.recording_backend()
        .generator("slow.sh", &format!("exec sleep {TOKEN}"))
        .manifest(
            r#"
default.backend = "rec"
[nixos.m.artifacts.slow]
generator = "generators/slow.sh"
files.f = {}
"#,
        );
    let stand_in = p.home.join("stand-in");
    fs::create_dir_all(&stand_in).unwrap();
    fs::set_permissions(&stand_in, fs::Permissions::from_mode(0o755)).unwrap();
    let bin = stand_in_bwrap(&stand_in, hold);
    if let Some((uid, gid)) = user {
        for dir in [&p.root, &p.tmp, &p.home] {
            let status = Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown {}", dir.display());
        }
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (p, stand_in, path)
}

/// Starts `artifacts generate` through the stand-in (as `user`, if any).
fn start(p: &Project, path: &str, user: Option<(u32, u32)>) -> std::process::Child {
    let mut command = p.command(["generate"]);
    command
        .env("PATH", path)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    command.spawn().unwrap()
}

/// Kills `artifacts generate` (as `user`, or as whoever runs the tests)
/// while bwrap's namespace process is held in set-up, then lets that
/// process go on; returns how many of [`TRIES`] left it (or a generator)
/// running. Each leak was waited for 10 s.
fn leaks(test: &str, user: Option<(u32, u32)>) -> usize {
    let (p, stand_in, path) = project(test, user, "--file 9 /.hold");
    let mut leaked = 0;
    for _ in 0..TRIES {
        let mut fifos = fifos(&stand_in, true);
        let mut artifacts = start(&p, &path, user);
        let inner = child_pid(&mut fifos.info);
        wait_until_held(fifos.hold.as_ref().unwrap());
        let inner_fd = pidfd_open(inner);
        let reaper = Reaper(Some(pidfd_open(inner)));
        let outer = parent_of(inner);
        let outer_fd = pidfd_open(outer);
        assert_eq!(
            parent_of(outer),
            artifacts.id() as i32,
            "the outer bwrap is a child of artifacts"
        );

        artifacts.kill().unwrap();
        artifacts.wait().unwrap();
        // Our parent-death signal on the outer bwrap (set before it ran).
        assert!(
            exits_within(&outer_fd, 10_000),
            "the outer bwrap (pid {outer}) outlived artifacts"
        );
        // Set-up goes on: the namespace process is past the kill.
        drop(fifos.hold.take());
        if !exits_within(&inner_fd, 10_000) {
            leaked += 1;
        }
        // A leaked namespace goes now, with its generator; none may be left.
        drop(reaper);
        crate::util::assert_all_exit(TOKEN, "the generator");
    }
    leaked
}

#[test]
fn a_kill_during_sandbox_setup_leaves_no_generator_running_as_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "run as root: root's generators run as nobody"
    );
    let leaked = leaks(
        "a_kill_during_sandbox_setup_leaves_no_generator_running_as_root",
        None,
    );
    assert_eq!(
        leaked, 0,
        "{leaked} of {TRIES} sandboxes outlived artifacts"
    );
}

#[test]
fn a_kill_during_sandbox_setup_leaves_no_generator_running_as_a_user() {
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let leaked = leaks(
        "a_kill_during_sandbox_setup_leaves_no_generator_running_as_a_user",
        Some((nobody.uid.as_raw(), nobody.gid.as_raw())),
    );
    assert_eq!(
        leaked, 0,
        "{leaked} of {TRIES} sandboxes outlived artifacts"
    );
}

/// Kills `artifacts generate` between bwrap's clone and its go-ahead to
/// the namespace process (`--userns-block-fd` holds the outer bwrap
/// there): that process then waits for good, running nothing, and the next
/// run kills it when it sweeps the dead run's scratch directory.
fn next_run_kills_a_process_waiting_for_the_go_ahead(test: &str, user: Option<(u32, u32)>) {
    let (p, stand_in, path) = project(test, user, "--userns-block-fd 9");
    let mut fifos = fifos(&stand_in, false);
    let mut artifacts = start(&p, &path, user);
    let inner = child_pid(&mut fifos.info);
    let inner_fd = pidfd_open(inner);
    let _reaper = Reaper(Some(pidfd_open(inner)));
    let outer = parent_of(inner);
    let outer_fd = pidfd_open(outer);
    artifacts.kill().unwrap();
    artifacts.wait().unwrap();
    assert!(
        exits_within(&outer_fd, 10_000),
        "the outer bwrap (pid {outer}) outlived artifacts"
    );
    drop(fifos);
    assert!(
        !exits_within(&inner_fd, 0),
        "the namespace process (pid {inner}) no longer waits for the go-ahead: this test needs another way in"
    );

    let mut check = p.command(["check"]);
    if let Some((uid, gid)) = user {
        check.uid(uid).gid(gid);
    }
    p.finish(&mut check).code(1);
    assert!(
        exits_within(&inner_fd, 10_000),
        "the namespace process (pid {inner}) outlived the next run"
    );
    crate::util::assert_all_exit(TOKEN, "the generator");
}

#[test]
fn a_namespace_process_left_waiting_is_killed_by_the_next_run_as_root() {
    next_run_kills_a_process_waiting_for_the_go_ahead(
        "a_namespace_process_left_waiting_is_killed_by_the_next_run_as_root",
        None,
    );
}

#[test]
fn a_namespace_process_left_waiting_is_killed_by_the_next_run_as_a_user() {
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    next_run_kills_a_process_waiting_for_the_go_ahead(
        "a_namespace_process_left_waiting_is_killed_by_the_next_run_as_a_user",
        Some((nobody.uid.as_raw(), nobody.gid.as_raw())),
    );
}
