//! Generators run in bubblewrap: no network, no host environment, a read-only
//! view of system directories, a private `/tmp`, and only `$out` writable.
//!
//! Inside the sandbox the artifact's directories sit at fixed paths
//! ([`SANDBOX_OUT`], [`SANDBOX_PROMPTS`], [`SANDBOX_IN`]). The working
//! directory is the project root's path, showing a private writable copy
//! ([`GeneratorDirs::project`]) in which only the generator and its declared
//! inputs ([`crate::inputs`]) appear, each bound read-only at its place in
//! the project, so `. ./generators/lib.sh` and `. "$(dirname "$0")/lib.sh"`
//! both work. The host's home
//! directories, `/root`, `/run` (except `/run/current-system` on NixOS),
//! `/sys` and most of `/etc` (SSH host keys, `/etc/ssl/private`!) are not
//! visible at all: a generator sees the programs it needs, not the keys it
//! does not. `/proc/sys`, `/proc/sysrq-trigger`, `/proc/irq` and `/proc/bus`
//! are read-only; a seccomp filter ([`crate::seccomp`]) denies new user
//! namespaces, mounts, keyrings, ptrace and the like; bwrap sets
//! `no_new_privs` and drops every capability. A lifeline (`add_lifeline`)
//! keeps a generator from starting once we are gone, even when we are
//! killed while bwrap is still setting the sandbox up.
//!
//! Generators never run as root. Started as root (as `activate` is at boot),
//! we start bwrap, or the generator itself with `--no-sandbox`, as
//! [`UNPRIVILEGED`] (`nobody`/`nogroup`): bwrap's user namespace then maps
//! to that uid, not to host root, so kernel checks that trust uid 0 (such
//! as `/proc/sys` writes) and root-owned files stay out of reach.
//! (`bwrap --uid 65534` alone would not do: bwrap maps the sandbox's uid to
//! the uid that started it, so the generator would still be host root.)
//! [`GeneratorDirs::hand_over`] gives that user `$out` and the private
//! `/tmp` and lets it read `$prompts`, `$in` and a copy of the generator;
//! everything else of ours stays `0700` root. Not started as root, the
//! generator runs as the invoking user, as before.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use artifacts_os::process::ProcessBuilder;
use artifacts_os::scratch::Scratch;

/// The uid and gid generators run as when we are root: `nobody` and
/// `nogroup` on Debian, NixOS and most distributions.
pub(crate) const UNPRIVILEGED: (u32, u32) = (65534, 65534);

/// Who generators run as instead of us: [`UNPRIVILEGED`] when we are root,
/// else nobody else (they run as the invoking user).
pub(crate) fn generator_user() -> Option<(u32, u32)> {
    nix::unistd::geteuid().is_root().then_some(UNPRIVILEGED)
}

/// `$out` inside the sandbox.
pub(crate) const SANDBOX_OUT: &str = "/artifact/out";
/// `$prompts` inside the sandbox.
pub(crate) const SANDBOX_PROMPTS: &str = "/artifact/prompts";
/// `$in` inside the sandbox.
pub(crate) const SANDBOX_IN: &str = "/artifact/in";

/// The PATH generators get.
pub(crate) const GENERATOR_PATH: &str =
    "/run/current-system/sw/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// System directories mounted read-only when they exist.
const SYSTEM_DIRS: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/nix/store",
    "/run/current-system",
];

/// The parts of `/etc` programs need to start, resolve users and find CA
/// certificates and OpenSSL's configuration, nothing more: no `shadow`, no
/// `ssh`, no `/etc/ssl/private` or `/etc/pki/tls/private`. (`/etc/static`
/// is NixOS's link into the world-readable store.)
const ETC_ENTRIES: &[&str] = &[
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/static",
    "/etc/pki/ca-trust",
    "/etc/pki/tls/certs",
    "/etc/pki/tls/openssl.cnf",
];

/// Parts of the sandbox's own `/proc` made read-only: kernel settings and
/// triggers that a process trusted by the kernel could change.
const PROC_READ_ONLY: &[&str] = &["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"];

/// bwrap options every sandbox gets, the probe included: all namespaces,
/// a user namespace for sure (so the seccomp filter, not privilege,
/// decides), the process tree dies with us.
const BWRAP_BASE: &[&str] = &[
    "--unshare-all",
    "--unshare-user",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
];

/// How generators are isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sandbox {
    /// bubblewrap at this path.
    Bwrap(PathBuf),
    /// No isolation (`--no-sandbox` / `ARTIFACTS_SANDBOX=off`).
    Off,
}

/// The sandbox cannot be used here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// `bwrap` is not on PATH.
    #[error(
        "bubblewrap (`bwrap`) is not installed or not on PATH; generators run in it to keep them off the network and away from your keys (install it, e.g. `apt-get install bubblewrap` or `nix profile install nixpkgs#bubblewrap`, or pass --no-sandbox / set ARTIFACTS_SANDBOX=off to run generators unconfined)"
    )]
    NotInstalled,
    /// `bwrap` exists but cannot create namespaces.
    #[error(
        "bubblewrap at `{path}` cannot create a sandbox here ({stderr}); enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or user.max_user_namespaces > 0; also when running as root, since generators then run as nobody), run in a container that allows them, or pass --no-sandbox to run generators unconfined"
    )]
    Unusable {
        /// The bwrap found.
        path: PathBuf,
        /// What it said.
        stderr: String,
    },
}

impl Sandbox {
    /// Finds bwrap on PATH and proves once per process that it works here.
    pub fn detect() -> Result<Sandbox, SandboxError> {
        static PROBE: OnceLock<Result<PathBuf, (bool, PathBuf, String)>> = OnceLock::new();
        let result = PROBE.get_or_init(|| {
            let Some(path) = artifacts_os::path::find_executable("bwrap") else {
                return Err((false, PathBuf::new(), String::new()));
            };
            // The probe runs as generators will: same user, same options.
            let mut probe = ProcessBuilder::new(&path);
            probe.args(BWRAP_BASE).cwd("/");
            if let Err(error) = add_seccomp(&mut probe) {
                return Err((
                    true,
                    path,
                    format!("cannot pass the seccomp filter: {error}"),
                ));
            }
            // The lifeline too: a bwrap that no longer keeps its status
            // descriptor open would fail every generator; say so here.
            if let Err(error) = add_lifeline(&mut probe) {
                return Err((true, path, format!("cannot make the lifeline: {error}")));
            }
            // `/dev` for the prelude's `/dev/null`.
            probe.args(["--ro-bind", "/", "/", "--dev", "/dev"]);
            probe.args(lifeline_command(Path::new("true")));
            if let Some((uid, gid)) = generator_user() {
                probe.user(uid, gid);
            }
            match probe.run() {
                Ok(output) if output.status.success() => Ok(path),
                Ok(output) => Err((true, path, output.stderr.trim().to_owned())),
                Err(error) => Err((true, path, error.to_string())),
            }
        });
        match result {
            Ok(path) => Ok(Sandbox::Bwrap(path.clone())),
            Err((false, _, _)) => Err(SandboxError::NotInstalled),
            Err((true, path, stderr)) => Err(SandboxError::Unusable {
                path: path.clone(),
                stderr: stderr.clone(),
            }),
        }
    }

    /// The command running `generator` with `env`; `dirs` are the host's
    /// (`out`, `prompts`, `in`) directories, already handed over
    /// ([`GeneratorDirs::hand_over`]) to the user the generator runs as.
    /// `read_only` are paths relative to the project root (the generator's
    /// inputs) that [`GeneratorDirs::project`] holds and the generator sees
    /// read-only at the same place below its working directory.
    pub(crate) fn command(
        &self,
        generator: &Path,
        dirs: &GeneratorDirs,
        read_only: &[PathBuf],
        env: &[(String, OsString)],
    ) -> std::io::Result<ProcessBuilder> {
        let user = generator_user();
        let program = dirs.generator_program(generator);
        match self {
            Sandbox::Off => {
                let mut builder = ProcessBuilder::new(&program);
                // No mounts here: the working directory is the copy itself.
                let cwd = match dirs.project_view() {
                    Some(_) => &dirs.project,
                    None => &dirs.tmp,
                };
                builder
                    .clear_env()
                    .no_new_privs()
                    .kill_on_parent_death()
                    .cwd(cwd)
                    .env("PATH", GENERATOR_PATH)
                    .env("HOME", &dirs.tmp)
                    .env("TMPDIR", &dirs.tmp)
                    .env("out", &dirs.out)
                    .env("prompts", &dirs.prompts)
                    .env("in", &dirs.input);
                if let Some((uid, gid)) = user {
                    builder.user(uid, gid);
                }
                for (key, value) in env {
                    builder.env(key, value);
                }
                Ok(builder)
            }
            Sandbox::Bwrap(bwrap) => {
                let mut builder = ProcessBuilder::new(bwrap);
                // bwrap's own --die-with-parent comes too late for a kill
                // during its start-up: the kernel is told before it runs.
                // Its namespace process asks later still: the lifeline
                // covers that.
                builder
                    .clear_env()
                    .kill_on_parent_death()
                    .cwd(&dirs.tmp)
                    .args(BWRAP_BASE);
                if let Some((uid, gid)) = user {
                    builder.user(uid, gid);
                }
                add_seccomp(&mut builder)?;
                add_lifeline(&mut builder)?;
                builder.args(["--clearenv", "--proc", "/proc"]);
                for dir in PROC_READ_ONLY {
                    builder.args(["--ro-bind-try", dir, dir]);
                }
                builder.args(["--dev", "/dev", "--tmpfs", "/tmp"]);
                builder.args(view_args(SYSTEM_DIRS));
                match &dirs.etc {
                    Some(etc) => {
                        builder.arg("--ro-bind").arg(&etc.dir).arg("/etc");
                        for dir in &etc.binds {
                            builder.arg("--ro-bind").arg(dir).arg(dir);
                        }
                    }
                    None => {
                        builder.args(view_args(ETC_ENTRIES));
                    }
                }
                builder
                    .arg("--bind")
                    .arg(&dirs.out)
                    .arg(SANDBOX_OUT)
                    .arg("--ro-bind")
                    .arg(&dirs.prompts)
                    .arg(SANDBOX_PROMPTS)
                    .arg("--ro-bind")
                    .arg(&dirs.input)
                    .arg(SANDBOX_IN);
                // The working directory is the project root, showing only the
                // generator and its inputs, read-only; the rest is a private
                // scratch directory the generator may write to.
                let cwd = match dirs.project_view() {
                    Some(root) => {
                        builder.arg("--bind").arg(&dirs.project).arg(root);
                        // The generator itself is bound below, from its copy:
                        // one mount, not two.
                        let itself = dirs.relative_generator(generator);
                        for relative in read_only {
                            if itself.as_ref() == Some(relative) {
                                continue;
                            }
                            builder
                                .arg("--ro-bind")
                                .arg(dirs.project.join(relative))
                                .arg(root.join(relative));
                        }
                        root.as_os_str()
                    }
                    None => "/tmp".as_ref(),
                };
                // The copy appears where the generator is on the host, so `$0` is unchanged.
                if program != generator {
                    builder.arg("--ro-bind").arg(&program).arg(generator);
                }
                builder.arg("--chdir").arg(cwd);
                let mut setenv = |key: &str, value: &std::ffi::OsStr| {
                    builder.arg("--setenv").arg(key).arg(value);
                };
                setenv("PATH", GENERATOR_PATH.as_ref());
                setenv("HOME", "/tmp".as_ref());
                setenv("TMPDIR", "/tmp".as_ref());
                setenv("out", SANDBOX_OUT.as_ref());
                setenv("prompts", SANDBOX_PROMPTS.as_ref());
                setenv("in", SANDBOX_IN.as_ref());
                for (key, value) in env {
                    setenv(key, value);
                }
                builder.args(lifeline_command(generator));
                Ok(builder)
            }
        }
    }
}

/// The directories of [`SYSTEM_DIRS`] that exist and are not links: bound whole.
fn whole_dirs() -> &'static [&'static Path] {
    static WHOLE: OnceLock<Vec<&'static Path>> = OnceLock::new();
    WHOLE.get_or_init(|| {
        SYSTEM_DIRS
            .iter()
            .map(Path::new)
            .filter(|dir| std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()))
            .collect()
    })
}

/// What a link at `entry` reads, when every step of it resolves inside a
/// directory bound whole ([`whole_dirs`]): then the same link in the
/// sandbox shows the same file.
fn link_inside_view(entry: &Path) -> Option<PathBuf> {
    let target = std::fs::read_link(entry).ok()?;
    let resolved = entry.canonicalize().ok()?;
    whole_dirs()
        .iter()
        .any(|dir| resolved.starts_with(dir))
        .then_some(target)
}

/// The bwrap options showing `entries` (one of the lists above), worked out
/// once per process: each is bound read-only, except a link whose target is
/// inside a directory bound whole (`/bin` → `usr/bin` on merged-`/usr`
/// systems, `/etc/localtime` → `/usr/share/zoneinfo/…`), which is made the
/// same link in the sandbox. That shows the same files, and saves a bind
/// mount, each of which costs bwrap a read of the whole mount table.
fn view_args(entries: &'static [&'static str]) -> &'static [OsString] {
    static SYSTEM: OnceLock<Vec<OsString>> = OnceLock::new();
    static ETC: OnceLock<Vec<OsString>> = OnceLock::new();
    let cell = if std::ptr::eq(entries, SYSTEM_DIRS) {
        &SYSTEM
    } else {
        &ETC
    };
    cell.get_or_init(|| {
        let mut args: Vec<OsString> = Vec::new();
        for entry in entries.iter().map(Path::new) {
            match link_inside_view(entry) {
                Some(target) => {
                    args.extend(["--symlink".into(), target.into_os_string(), entry.into()]);
                }
                None => args.extend(["--ro-bind-try".into(), entry.into(), entry.into()]),
            }
        }
        args
    })
}

/// The sandbox's `/etc`, made once per generate run and bound whole
/// (read-only) instead of one bind mount per entry of [`ETC_ENTRIES`]:
/// copies of the regular files (mode kept; a snapshot as of the run's
/// start), the links that resolve inside the view ([`link_inside_view`]),
/// and copies of the directories ([`copy_tree`]: what a bind of each showed,
/// without the bind, each of which costs every sandbox a mount and bwrap a
/// read of the mount table); a directory larger than [`COPY_LIMIT`] is
/// still bound. It holds nothing else, so a generator sees exactly what it
/// saw before.
#[derive(Debug)]
pub(crate) struct EtcView {
    _scratch: Scratch,
    paths: EtcPaths,
}

/// Where an [`EtcView`] is, and the directories bound over it.
#[derive(Debug, Clone)]
pub(crate) struct EtcPaths {
    dir: PathBuf,
    binds: Vec<PathBuf>,
}

impl EtcView {
    /// Builds the view in a scratch directory the generators' user can read.
    pub(crate) fn create() -> std::io::Result<EtcView> {
        let scratch = scratch_for_generators("etc")?;
        let dir = scratch.subdir("etc")?;
        // Bound by bwrap as the generator's user, which must get through.
        std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o711))?;
        let mut binds = Vec::new();
        let mut copied = Vec::new();
        for entry in ETC_ENTRIES.iter().map(Path::new) {
            let Ok(relative) = entry.strip_prefix("/etc") else {
                continue;
            };
            let Ok(metadata) = std::fs::symlink_metadata(entry) else {
                continue;
            };
            let place = dir.join(relative);
            let parent = place.parent().unwrap_or(&dir);
            std::fs::create_dir_all(parent)?;
            if let Some(target) = link_inside_view(entry) {
                std::os::unix::fs::symlink(target, &place)?;
                continue;
            }
            // A link elsewhere shows what it points to, as a bind mount did.
            let Ok(metadata) = (if metadata.file_type().is_symlink() {
                std::fs::metadata(entry)
            } else {
                Ok(metadata)
            }) else {
                continue;
            };
            if metadata.is_dir() {
                if tree_size(entry)? <= COPY_LIMIT {
                    copied.push((entry, place));
                } else {
                    std::fs::create_dir(&place)?;
                    binds.push(entry.to_owned());
                }
            } else if metadata.is_file() {
                std::fs::copy(entry, &place)?;
                let mode = metadata.permissions().mode() & 0o7777 & !0o6000;
                std::fs::set_permissions(&place, std::fs::Permissions::from_mode(mode))?;
            }
        }
        // Directories the generator's user passes through, as on the host.
        for parent in walk_dirs(&dir)? {
            std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755))?;
        }
        // After the walk: copied directories keep their own modes.
        for (from, to) in copied {
            copy_tree(from, &to)?;
        }
        Ok(EtcView {
            _scratch: scratch,
            paths: EtcPaths { dir, binds },
        })
    }
}

/// The most entries a directory of [`ETC_ENTRIES`] may hold (all levels)
/// to be copied into the [`EtcView`] rather than bound: `/etc/ssl/certs`
/// and `/etc/alternatives` hold a few hundred.
const COPY_LIMIT: usize = 4096;

/// How many entries `dir` holds, at every level (links not followed),
/// counting stops past [`COPY_LIMIT`].
fn tree_size(dir: &Path) -> std::io::Result<usize> {
    let mut count = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next)? {
            let entry = entry?;
            count += 1;
            if count > COPY_LIMIT {
                return Ok(count);
            }
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(count)
}

/// Copies directory `from` to `to` (not existing yet) as a read-only bind
/// of it would show it to the generator: regular files with their content,
/// links as they read, directories with their entries; each with its mode
/// (setuid and setgid bits dropped, as bwrap's `nosuid` would) and, as
/// root, its owner, so the generator's user may read exactly what it could
/// read before. Not being root, the generator runs as us: a file we cannot
/// read is left out, as it could not read it either. Sockets, fifos and
/// devices are left out.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    // Followed: an entry of ETC_ENTRIES may be a link to the directory.
    let metadata = std::fs::metadata(from)?;
    let root = nix::unistd::geteuid().is_root();
    let keep = |path: &Path, metadata: &std::fs::Metadata| -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let mode = metadata.mode() & 0o7777 & !0o6000;
        if root {
            std::os::unix::fs::lchown(path, Some(metadata.uid()), Some(metadata.gid()))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    };
    std::fs::DirBuilder::new().mode(0o700).create(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (source, place) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&source)?, &place)?;
            if root {
                let metadata = entry.metadata()?;
                use std::os::unix::fs::MetadataExt;
                std::os::unix::fs::lchown(&place, Some(metadata.uid()), Some(metadata.gid()))?;
            }
        } else if kind.is_dir() {
            copy_tree(&source, &place)?;
        } else if kind.is_file() {
            let mut input = match std::fs::File::open(&source) {
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && !root => continue,
                other => other?,
            };
            let mut output = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&place)?;
            std::io::copy(&mut input, &mut output)?;
            keep(&place, &entry.metadata()?)?;
        }
    }
    // Last: a directory without write permission for us is filled first.
    keep(to, &metadata)
}

/// `dir` and every directory below it (links not followed).
fn walk_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = vec![dir.to_owned()];
    let mut index = 0;
    while let Some(next) = found.get(index).cloned() {
        index += 1;
        for entry in std::fs::read_dir(&next)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                found.push(entry.path());
            }
        }
    }
    Ok(found)
}

/// A scratch directory for what the generator's user reads: the usual
/// place ([`artifacts_os::scratch::base_dir`]) if every directory above it
/// lets others through (or generators run as us), else `/dev/shm`, else
/// `/tmp` (root's `XDG_RUNTIME_DIR`, `/run/user/0`, is `0700`).
fn scratch_for_generators(prefix: &str) -> std::io::Result<Scratch> {
    let base = artifacts_os::scratch::base_dir();
    if generator_user().is_none() || reachable_by_others(&base) {
        Scratch::new_in(prefix, &base)
    } else {
        let fallback = [Path::new("/dev/shm"), Path::new("/tmp")]
            .into_iter()
            .find(|dir| reachable_by_others(dir))
            .unwrap_or(&base);
        Scratch::new_in(prefix, fallback)
    }
}

/// Hands bwrap the seccomp program on a pipe.
fn add_seccomp(builder: &mut ProcessBuilder) -> std::io::Result<()> {
    let Some(program) = crate::seccomp::program() else {
        return Ok(());
    };
    let (reader, writer) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // A few KiB: fits the pipe's buffer, so this write never waits for bwrap.
    std::fs::File::from(writer).write_all(program)?;
    let number = reader.as_raw_fd().to_string();
    builder
        .pass_fd(Arc::new(reader))
        .args(["--seccomp", &number]);
    Ok(())
}

/// What the sandbox runs first: it writes one byte into its end of the
/// lifeline (stdin) and only then becomes the generator, with stdin
/// `/dev/null` again. The write fails (EPIPE; as pid 1 of its namespace the
/// shell ignores SIGPIPE) once nobody holds the other end.
const LIFELINE_PRELUDE: &str = "echo >&0 2>/dev/null || { echo 'artifacts: the lifeline to the outer bwrap is closed (artifacts is gone, or this bwrap closes its --json-status-fd), not starting the generator' >&2; exit 125; }; exec \"$0\" \"$@\" </dev/null";

/// Closes the `kill -9` window of bubblewrap's start-up. bwrap's namespace
/// process asks for its parent-death signal only after clone and set-up
/// (`--die-with-parent`), so a kill of ours (and with it of the outer
/// bwrap) before that orphaned it, and it went on to run the generator.
/// Its parent cannot be seen from inside the sandbox, so the sandbox asks
/// whether the outer bwrap is still alive *after* that point:
///
/// * `--as-pid-1`: no reaper is forked; the namespace process sets the
///   signal and then execs our prelude itself (with a reaper, pid 2 could
///   start the generator before pid 1 asked for the signal).
/// * One end of a socket pair is bwrap's `--json-status-fd`, the only
///   descriptor of ours its outer process keeps (it closes all others
///   once running, and the namespace process closes this one right after
///   clone). We close our copy right after the spawn, under the spawn
///   lock ([`ProcessBuilder::hand_over_fd`]): then the outer bwrap alone
///   holds it.
/// * The other end is the sandbox's stdin; the prelude
///   ([`LIFELINE_PRELUDE`]) writes to it. That succeeds only while the
///   outer bwrap lives, so it lived when the namespace process asked for
///   the signal, which was therefore armed against it: the namespace (the
///   generator with it) dies with the outer bwrap, which dies with us. If
///   the outer was gone, the write fails and the generator never starts.
///
/// The cost is one `sh` start per generator (bwrap's reaper fork is saved).
fn add_lifeline(builder: &mut ProcessBuilder) -> std::io::Result<()> {
    let (outer, inner) = std::os::unix::net::UnixStream::pair()?;
    let outer = std::os::fd::OwnedFd::from(outer);
    let number = outer.as_raw_fd().to_string();
    builder
        .args(["--as-pid-1", "--json-status-fd", &number])
        .hand_over_fd(outer)
        .stdin_fd(Arc::new(std::os::fd::OwnedFd::from(inner)));
    Ok(())
}

/// The end of a bwrap command line running `program` behind the lifeline's prelude.
fn lifeline_command(program: &Path) -> [&std::ffi::OsStr; 5] {
    [
        "--".as_ref(),
        "/bin/sh".as_ref(),
        "-c".as_ref(),
        LIFELINE_PRELUDE.as_ref(),
        program.as_os_str(),
    ]
}

/// Host directories handed to a generator, all inside one scratch directory.
#[derive(Debug, Clone)]
pub(crate) struct GeneratorDirs {
    /// The scratch directory holding the others (and the generator's copy).
    pub root: PathBuf,
    /// Where it writes its files.
    pub out: PathBuf,
    /// Prompt answers, one file each.
    pub prompts: PathBuf,
    /// Dependencies' files, `in/<artifact>/<file>`.
    pub input: PathBuf,
    /// A private scratch directory (used as `/tmp` without the sandbox).
    pub tmp: PathBuf,
    /// The generator's working directory: the copy of its inputs (and of
    /// the generator, when it lives in the project) at their places
    /// relative to the project root, where the sandbox shows it.
    pub project: PathBuf,
    /// The project root on the host.
    pub project_root: PathBuf,
    /// The run's `/etc` view, when it has one.
    pub etc: Option<EtcPaths>,
}

impl GeneratorDirs {
    /// A fresh scratch directory with `out`, `prompts`, `in` and `tmp`, each
    /// `0700`, where the generator's user can reach it
    /// ([`scratch_for_generators`]); `etc` is the run's `/etc` view, if any.
    pub(crate) fn create(
        project_root: &Path,
        etc: Option<&EtcView>,
    ) -> std::io::Result<(Scratch, GeneratorDirs)> {
        let scratch = scratch_for_generators("generate")?;
        let dirs = GeneratorDirs {
            root: scratch.path().to_owned(),
            out: scratch.subdir("out")?,
            prompts: scratch.subdir("prompts")?,
            input: scratch.subdir("in")?,
            tmp: scratch.subdir("tmp")?,
            project: scratch.subdir("project")?,
            project_root: project_root.to_owned(),
            etc: etc.map(|view| view.paths.clone()),
        };
        Ok((scratch, dirs))
    }

    /// Where the sandbox shows [`GeneratorDirs::project`]: the project root,
    /// unless it is, holds or lies inside a directory the sandbox mounts
    /// from the system (`/`, or `/nix/store`, where the manifest of a
    /// machine's `activate` lives): then the working directory is `/tmp`
    /// and inputs cannot be shown.
    pub(crate) fn project_view(&self) -> Option<&Path> {
        let root = self.project_root.as_path();
        let clashes = |dir: &str| root.starts_with(dir) || Path::new(dir).starts_with(root);
        let system = SYSTEM_DIRS
            .iter()
            .chain(ETC_ENTRIES)
            .chain(&["/etc", "/proc", "/dev", "/artifact"])
            .any(|dir| clashes(dir));
        (root.is_absolute() && !system).then_some(root)
    }

    /// Where a generator inside the project sits relative to its root.
    pub(crate) fn relative_generator(&self, generator: &Path) -> Option<PathBuf> {
        self.project_view()?;
        let relative = generator.strip_prefix(&self.project_root).ok()?;
        relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
            .then(|| relative.to_owned())
    }

    /// What runs: a generator in `/nix/store` as it is (readable by
    /// everyone, immutable), any other through its copy in the scratch
    /// directory (made by [`GeneratorDirs::hand_over`]), which the
    /// generator's user can read wherever the original lives (`/root/…`).
    fn generator_program(&self, generator: &Path) -> PathBuf {
        if generator.starts_with("/nix/store") {
            generator.to_owned()
        } else if let Some(relative) = self.relative_generator(generator) {
            // Beside its inputs, so `$(dirname "$0")/lib.sh` works unconfined too.
            self.project.join(relative)
        } else {
            self.root.join("generator")
        }
    }

    /// Gets the directories ready for the generator, once the prompt
    /// answers and dependencies are written: copies the generator (see
    /// [`GeneratorDirs::generator_program`]) and, when the generator runs
    /// as another user ([`generator_user`]), gives that user `out` and
    /// `tmp`, and `prompts` and `in` with everything in them, and lets its
    /// group (alone) enter the scratch directory.
    pub(crate) fn hand_over(&self, generator: &Path) -> std::io::Result<()> {
        let program = self.generator_program(generator);
        if program != generator {
            if let Some(parent) = program.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)?;
            }
            // Inputs may hold the generator already (`inputs = ["generators"]`):
            // the copy made for running it replaces that one.
            match std::fs::remove_file(&program) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let mut source = std::fs::File::open(generator)?;
            // Not open for writing in another generator's child while it
            // starts: this one's exec would fail ("Text file busy").
            artifacts_os::process::while_no_child_starts(|| {
                let mut copy = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o700)
                    .open(&program)?;
                std::io::copy(&mut source, &mut copy)?;
                // Explicitly, whatever our umask: the generator's user reads and runs it.
                copy.set_permissions(std::fs::Permissions::from_mode(0o555))
            })?;
        }
        let Some((uid, gid)) = generator_user() else {
            return Ok(());
        };
        for dir in [
            &self.out,
            &self.tmp,
            &self.prompts,
            &self.input,
            &self.project,
        ] {
            chown_tree(dir, uid, gid)?;
        }
        std::os::unix::fs::lchown(&self.root, None, Some(gid))?;
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o710))
    }
}

/// Whether a user other than the owner can pass through `dir` and every
/// directory above it.
fn reachable_by_others(dir: &Path) -> bool {
    dir.is_dir()
        && dir
            .ancestors()
            .all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// `lchown`s `dir` and everything below it (all made by us, links not followed).
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            chown_tree(&entry.path(), uid, gid)?;
        } else {
            std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_is_shown_at_its_root_unless_that_clashes_with_system_mounts() {
        let view = |root: &str| {
            let dirs = GeneratorDirs {
                root: PathBuf::from("/scratch"),
                out: PathBuf::from("/scratch/out"),
                prompts: PathBuf::from("/scratch/prompts"),
                input: PathBuf::from("/scratch/in"),
                tmp: PathBuf::from("/scratch/tmp"),
                project: PathBuf::from("/scratch/project"),
                project_root: PathBuf::from(root),
                etc: None,
            };
            dirs.project_view().map(Path::to_owned)
        };
        for shown in ["/home/alice/secrets", "/tmp/x", "/srv/project", "/root/p"] {
            assert_eq!(view(shown).as_deref(), Some(Path::new(shown)), "{shown}");
        }
        // `activate` on a machine reads its manifest from the store: binding
        // a copy over /nix/store would hide every generator.
        for hidden in [
            "/",
            "/nix/store",
            "/nix",
            "/usr/share/x",
            "/etc",
            "/run",
            "relative",
        ] {
            assert_eq!(view(hidden), None, "{hidden}");
        }
    }

    /// The places a bwrap command line mounts something at, in order.
    fn destinations(command: &ProcessBuilder) -> Vec<String> {
        let line = command.to_string();
        let words: Vec<&str> = line.split(' ').collect();
        words
            .iter()
            .enumerate()
            .filter(|(_, w)| {
                [
                    "--bind",
                    "--ro-bind",
                    "--ro-bind-try",
                    "--symlink",
                    "--tmpfs",
                ]
                .contains(w)
            })
            .map(|(i, w)| {
                let at = if *w == "--tmpfs" { i + 1 } else { i + 2 };
                words[at].to_owned()
            })
            .collect()
    }

    #[test]
    fn nothing_is_mounted_twice_at_the_same_place() {
        let dirs = GeneratorDirs {
            root: PathBuf::from("/scratch"),
            out: PathBuf::from("/scratch/out"),
            prompts: PathBuf::from("/scratch/prompts"),
            input: PathBuf::from("/scratch/in"),
            tmp: PathBuf::from("/scratch/tmp"),
            project: PathBuf::from("/scratch/project"),
            project_root: PathBuf::from("/srv/project"),
            etc: None,
        };
        let generator = Path::new("/srv/project/generators/gen.sh");
        // What generator::run passes: the inputs, then the generator itself.
        let read_only = [
            PathBuf::from("generators/lib.sh"),
            PathBuf::from("generators/gen.sh"),
        ];
        let sandbox = Sandbox::Bwrap(PathBuf::from("/usr/bin/bwrap"));
        let command = sandbox.command(generator, &dirs, &read_only, &[]).unwrap();
        let places = destinations(&command);
        let mut seen = std::collections::BTreeSet::new();
        for place in &places {
            assert!(seen.insert(place), "`{place}` mounted twice: {command}");
        }
        for shown in [
            "/srv/project/generators/lib.sh",
            "/srv/project/generators/gen.sh",
        ] {
            assert!(
                places.iter().any(|p| p == shown),
                "{shown} not in {command}"
            );
        }
    }

    #[test]
    fn a_copied_tree_shows_what_a_bind_showed() {
        use std::os::unix::fs::MetadataExt;
        let temp = tempfile::tempdir().unwrap();
        let from = temp.path().join("from");
        std::fs::create_dir_all(from.join("sub/deeper")).unwrap();
        std::fs::write(from.join("cert.pem"), "cert").unwrap();
        std::fs::write(from.join("sub/deeper/private"), "private").unwrap();
        std::fs::set_permissions(
            from.join("sub/deeper/private"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::set_permissions(from.join("sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
        std::os::unix::fs::symlink("/usr/share/ca-certificates/x.crt", from.join("link")).unwrap();
        std::os::unix::fs::symlink("cert.pem", from.join("relative")).unwrap();
        let to = temp.path().join("to");
        copy_tree(&from, &to).unwrap();
        assert_eq!(
            std::fs::read_to_string(to.join("cert.pem")).unwrap(),
            "cert"
        );
        assert_eq!(
            std::fs::read_to_string(to.join("sub/deeper/private")).unwrap(),
            "private"
        );
        for path in ["cert.pem", "sub/deeper/private", "sub", "sub/deeper"] {
            let copied = std::fs::metadata(to.join(path)).unwrap();
            let original = std::fs::metadata(from.join(path)).unwrap();
            assert_eq!(copied.mode() & 0o7777, original.mode() & 0o7777, "{path}");
            assert_eq!(copied.uid(), original.uid(), "{path}");
        }
        let mode = |path: &str| std::fs::metadata(to.join(path)).unwrap().mode() & 0o7777;
        assert_eq!(mode("sub/deeper/private"), 0o600);
        assert_eq!(mode("sub"), 0o750);
        assert_eq!(
            std::fs::read_link(to.join("link")).unwrap(),
            Path::new("/usr/share/ca-certificates/x.crt")
        );
        assert_eq!(
            std::fs::read_link(to.join("relative")).unwrap(),
            Path::new("cert.pem")
        );
        // An entry that is a link to a directory elsewhere is copied as the
        // directory it shows, with that directory's mode.
        std::fs::set_permissions(&from, std::fs::Permissions::from_mode(0o750)).unwrap();
        let linked = temp.path().join("linked");
        std::os::unix::fs::symlink(&from, &linked).unwrap();
        let through = temp.path().join("through");
        copy_tree(&linked, &through).unwrap();
        assert_eq!(std::fs::metadata(&through).unwrap().mode() & 0o7777, 0o750);
        assert!(through.join("sub/deeper/private").is_file());
    }

    #[test]
    fn the_etc_view_binds_only_directories_too_large_to_copy() {
        let view = EtcView::create().unwrap();
        for entry in ETC_ENTRIES.iter().map(Path::new) {
            let Ok(relative) = entry.strip_prefix("/etc") else {
                continue;
            };
            let is_dir = std::fs::symlink_metadata(entry).is_ok_and(|m| m.is_dir());
            if !is_dir || link_inside_view(entry).is_some() {
                continue;
            }
            let bound = view.paths.binds.iter().any(|b| b == entry);
            assert_eq!(
                bound,
                tree_size(entry).unwrap() > COPY_LIMIT,
                "{}",
                entry.display()
            );
            if !bound {
                let names = |dir: &Path| -> std::collections::BTreeSet<OsString> {
                    std::fs::read_dir(dir)
                        .unwrap()
                        .map(|e| e.unwrap().file_name())
                        .collect()
                };
                assert_eq!(
                    names(&view.paths.dir.join(relative)),
                    names(entry),
                    "{}",
                    entry.display()
                );
            }
        }
    }
}
