//! Generators run in bubblewrap: no network, no host environment, a read-only
//! view of system directories, a private `/tmp`, and only `$out` writable.
//!
//! Inside the sandbox the artifact's directories sit at fixed paths
//! ([`SANDBOX_OUT`], [`SANDBOX_PROMPTS`], [`SANDBOX_IN`]). The host's home
//! directories, `/root`, `/run` (except `/run/current-system` on NixOS),
//! `/sys` and most of `/etc` (SSH host keys, `/etc/ssl/private`!) are not
//! visible at all: a generator sees the programs it needs, not the keys it
//! does not. `/proc/sys`, `/proc/sysrq-trigger`, `/proc/irq` and `/proc/bus`
//! are read-only; a seccomp filter ([`crate::seccomp`]) denies new user
//! namespaces, mounts, keyrings, ptrace and the like; bwrap sets
//! `no_new_privs` and drops every capability.
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
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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
            probe.args(["--ro-bind", "/", "/", "--", "true"]);
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
    pub(crate) fn command(
        &self,
        generator: &Path,
        dirs: &GeneratorDirs,
        env: &[(String, OsString)],
    ) -> std::io::Result<ProcessBuilder> {
        let user = generator_user();
        let program = dirs.generator_program(generator);
        match self {
            Sandbox::Off => {
                let mut builder = ProcessBuilder::new(&program);
                builder
                    .clear_env()
                    .no_new_privs()
                    .cwd(&dirs.tmp)
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
                builder.clear_env().cwd(&dirs.tmp).args(BWRAP_BASE);
                if let Some((uid, gid)) = user {
                    builder.user(uid, gid);
                }
                add_seccomp(&mut builder)?;
                builder.args(["--clearenv", "--proc", "/proc"]);
                for dir in PROC_READ_ONLY {
                    builder.args(["--ro-bind-try", dir, dir]);
                }
                builder.args(["--dev", "/dev", "--tmpfs", "/tmp"]);
                for dir in SYSTEM_DIRS.iter().chain(ETC_ENTRIES) {
                    builder.args(["--ro-bind-try", dir, dir]);
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
                // The copy appears where the generator is on the host, so `$0` is unchanged.
                if program != generator {
                    builder.arg("--ro-bind").arg(&program).arg(generator);
                }
                builder.args(["--chdir", "/tmp"]);
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
                builder.arg("--").arg(generator);
                Ok(builder)
            }
        }
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
}

impl GeneratorDirs {
    /// A fresh scratch directory with `out`, `prompts`, `in` and `tmp`, each
    /// `0700`. When the generator will run as another user, the scratch
    /// directory goes where that user can reach it: the usual place
    /// ([`artifacts_os::scratch::base_dir`]) if every directory above it lets
    /// others through, else `/dev/shm`, else `/tmp` (root's
    /// `XDG_RUNTIME_DIR`, `/run/user/0`, is `0700`).
    pub(crate) fn create() -> std::io::Result<(Scratch, GeneratorDirs)> {
        let base = artifacts_os::scratch::base_dir();
        let scratch = if generator_user().is_none() || reachable_by_others(&base) {
            Scratch::new_in("generate", &base)?
        } else {
            let fallback = [Path::new("/dev/shm"), Path::new("/tmp")]
                .into_iter()
                .find(|dir| reachable_by_others(dir))
                .unwrap_or(&base);
            Scratch::new_in("generate", fallback)?
        };
        let dirs = GeneratorDirs {
            root: scratch.path().to_owned(),
            out: scratch.subdir("out")?,
            prompts: scratch.subdir("prompts")?,
            input: scratch.subdir("in")?,
            tmp: scratch.subdir("tmp")?,
        };
        Ok((scratch, dirs))
    }

    /// What runs: a generator in `/nix/store` as it is (readable by
    /// everyone, immutable), any other through its copy in the scratch
    /// directory (made by [`GeneratorDirs::hand_over`]), which the
    /// generator's user can read wherever the original lives (`/root/…`).
    fn generator_program(&self, generator: &Path) -> PathBuf {
        if generator.starts_with("/nix/store") {
            generator.to_owned()
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
            let mut source = std::fs::File::open(generator)?;
            let mut copy = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o700)
                .open(&program)?;
            std::io::copy(&mut source, &mut copy)?;
            // Explicitly, whatever our umask: the generator's user reads and runs it.
            copy.set_permissions(std::fs::Permissions::from_mode(0o555))?;
        }
        let Some((uid, gid)) = generator_user() else {
            return Ok(());
        };
        for dir in [&self.out, &self.tmp, &self.prompts, &self.input] {
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
