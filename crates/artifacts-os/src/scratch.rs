//! Private scratch directories and secret file writes.
//!
//! Global state: the set of live scratch directories, so that a signal
//! handler can remove them all before the process exits ([`remove_all`]),
//! and the base directories already swept for leftovers this run.
//! Every directory is created `0700`, every file in it `0600` with
//! `create_new` (no racing an existing file); each directory is removed when
//! its [`Scratch`] is dropped, on success and failure alike.
//!
//! A run killed outright (SIGKILL, a power cut with a disk-backed `$TMPDIR`)
//! cannot clean up, so each directory holds an exclusive `flock` on itself
//! for its whole life and, once locked, a [`MARKER`] file. The first scratch
//! directory a run creates in a base directory sweeps it: every
//! `artifacts-*` directory there owned by us, with the marker, whose lock
//! can be taken is a dead run's and is removed, after any process still
//! working in it is killed. One still being set up has no marker yet; one
//! in use is locked.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use nix::fcntl::{Flock, FlockArg};

static LIVE: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Base directories swept for leftovers of killed runs in this process.
static SWEPT: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Written into each scratch directory once it is locked: "a run owns this".
pub const MARKER: &str = ".artifacts-scratch";

/// Every scratch directory's name starts with this.
const PREFIX: &str = "artifacts-";

/// Creating or removing a scratch directory holds this for reading;
/// [`remove_all`] takes it for writing and never gives it back.
static CLEANUP: RwLock<()> = RwLock::new(());

/// Removes every live scratch directory, then blocks any further scratch
/// creation for the rest of the process. For signal handlers, right before exiting:
/// a directory being created or removed concurrently is waited for, never missed.
pub fn remove_all() {
    let guard = CLEANUP
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dirs: Vec<PathBuf> = LIVE
        .lock()
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default();
    for dir in dirs {
        // A thread still writing into it (no child can start any more, see
        // `process::terminate_all`) can make one pass fail with ENOTEMPTY.
        for _ in 0..3 {
            let _ = make_writable(&dir);
            if std::fs::remove_dir_all(&dir).is_ok() || !dir.exists() {
                break;
            }
        }
    }
    std::mem::forget(guard);
}

/// Where scratch directories go, first that applies: `$ARTIFACTS_TMPDIR`,
/// `$XDG_RUNTIME_DIR` (a per-user tmpfs), `$TMPDIR`, `/dev/shm`, `/tmp`.
/// Memory-backed places come first so that prompt answers and generated
/// secrets never reach a disk, and scratch work costs no disk I/O.
/// Computed once per process, from our environment.
pub fn base_dir() -> PathBuf {
    static BASE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BASE.get_or_init(|| base_dir_from(&|name| std::env::var_os(name)))
        .clone()
}

/// [`base_dir`]'s choice for an environment given as a lookup (a child's
/// environment, a test's).
pub fn base_dir_from(env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    let from_env = |name: &str| {
        env(name)
            .map(PathBuf::from)
            .filter(|p| !p.as_os_str().is_empty() && p.is_dir())
    };
    from_env("ARTIFACTS_TMPDIR")
        .or_else(|| from_env("XDG_RUNTIME_DIR"))
        .or_else(|| from_env("TMPDIR"))
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// A `0700` temporary directory, removed on drop.
#[derive(Debug)]
pub struct Scratch {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    /// Held until after the directory is gone (fields drop after `Drop::drop`).
    _lock: Flock<File>,
}

impl Scratch {
    /// Creates one under [`base_dir`].
    pub fn new(purpose: &str) -> std::io::Result<Scratch> {
        Scratch::new_in(purpose, &base_dir())
    }

    /// Creates one under `base`.
    pub fn new_in(purpose: &str, base: &Path) -> std::io::Result<Scratch> {
        sweep_once(base);
        let _creating = CLEANUP
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{purpose}-"))
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(base)?;
        let path = dir.path().to_owned();
        if let Ok(mut live) = LIVE.lock() {
            live.insert(path.clone());
        }
        // Blocking: only a sweeper looking at it can hold it, and only briefly.
        let lock = Flock::lock(open_dir(&path)?, FlockArg::LockExclusive)
            .map_err(|(_, errno)| std::io::Error::from(errno))?;
        write_private(
            &path.join(MARKER),
            std::process::id().to_string().as_bytes(),
        )?;
        Ok(Scratch {
            dir: Some(dir),
            path,
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a `0700` subdirectory.
    pub fn subdir(&self, name: &str) -> std::io::Result<PathBuf> {
        let path = self.path.join(name);
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _removing = CLEANUP
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(dir) = self.dir.take() {
            // Make read-only leftovers (a generator's `chmod 0500 $out`) removable.
            let _ = make_writable(dir.path());
            let _ = dir.close();
        }
        if let Ok(mut live) = LIVE.lock() {
            live.remove(&self.path);
        }
    }
}

/// Opens a directory (never through a link) for `flock`.
fn open_dir(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
        .open(path)
}

/// Sweeps `base` unless this process already did.
fn sweep_once(base: &Path) {
    let first = SWEPT
        .lock()
        .map(|mut swept| swept.insert(base.to_owned()))
        .unwrap_or(false);
    if first {
        sweep(base);
    }
}

/// Removes the scratch directories in `base` that killed runs left behind:
/// ours by name, owner and marker, and unlocked (see the module doc).
pub fn sweep(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let me = nix::unistd::geteuid().as_raw();
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = entry.file_name().to_string_lossy().starts_with(PREFIX)
            && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == me)
            && std::fs::symlink_metadata(path.join(MARKER)).is_ok();
        if !ours {
            continue;
        }
        let Ok(dir) = open_dir(&path) else {
            continue;
        };
        let Ok(_lock) = Flock::lock(dir, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        kill_leftovers_in(&path);
        let _ = make_writable(&path);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => tracing::info!(
                "removed `{}`, left behind by an interrupted run",
                path.display()
            ),
            Err(error) => tracing::warn!(
                "could not remove `{}`, left behind by an interrupted run: {error}",
                path.display()
            ),
        }
    }
}

/// Kills every process whose working directory is inside `dir`, a dead
/// run's scratch directory (only our runs' processes can enter it): a
/// bubblewrap namespace process whose outer process was killed with us
/// between bwrap's clone and its go-ahead waits for that go-ahead for good,
/// still in the directory we started bwrap in, running nothing.
fn kill_leftovers_in(dir: &Path) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // Unreadable for other users' processes: those are not ours.
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        if cwd.starts_with(dir) {
            let killed = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            if killed.is_ok() {
                tracing::info!(
                    "killed process {pid}, left behind in `{}` by an interrupted run",
                    dir.display()
                );
            }
        }
    }
}

fn make_writable(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o700));
            let _ = make_writable(&entry.path());
        }
    }
    Ok(())
}

/// Writes a new `0600` file, failing if it exists. Not fsynced: these are
/// scratch files, removed when the run ends; stored files go through
/// [`crate::fs::Dir`] or a backend.
pub fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_is_private_and_removed_on_drop() {
        let scratch = Scratch::new("test").unwrap();
        let path = scratch.path().to_owned();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o700);
        let file = path.join("secret");
        write_private(&file, b"x").unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        drop(scratch);
        assert!(!path.exists());
    }

    #[test]
    fn base_dir_prefers_the_first_existing_directory_in_policy_order() {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, tmp) = (dir.path().join("runtime"), dir.path().join("tmp"));
        std::fs::create_dir(&runtime).unwrap();
        std::fs::create_dir(&tmp).unwrap();
        let missing = dir.path().join("missing");
        let env = |vars: Vec<(&'static str, PathBuf)>| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone().into_os_string())
            }
        };
        let both = env(vec![
            ("ARTIFACTS_TMPDIR", missing.clone()),
            ("XDG_RUNTIME_DIR", runtime.clone()),
            ("TMPDIR", tmp.clone()),
        ]);
        assert_eq!(base_dir_from(&both), runtime);
        let empty = env(vec![
            ("XDG_RUNTIME_DIR", PathBuf::new()),
            ("TMPDIR", tmp.clone()),
        ]);
        assert_eq!(base_dir_from(&empty), tmp);
    }

    #[test]
    fn write_private_refuses_to_clobber() {
        let scratch = Scratch::new("test").unwrap();
        let file = scratch.path().join("f");
        write_private(&file, b"one").unwrap();
        assert!(write_private(&file, b"two").is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"one");
    }

    #[test]
    fn sweep_removes_dead_runs_dirs_and_keeps_live_and_unmarked_ones() {
        let base = tempfile::tempdir().unwrap();
        let live = Scratch::new_in("live", base.path()).unwrap();
        // A killed run's: marked, nobody holds its lock.
        let dead = base.path().join("artifacts-generate-dead");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(MARKER), "1").unwrap();
        std::fs::create_dir(dead.join("out")).unwrap();
        std::fs::write(dead.join("out/secret"), "left behind").unwrap();
        // Being set up by another run (no marker yet), and not ours by name.
        let fresh = base.path().join("artifacts-generate-fresh");
        std::fs::create_dir(&fresh).unwrap();
        let other = base.path().join("other-tool");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join(MARKER), "1").unwrap();
        sweep(base.path());
        assert!(!dead.exists());
        assert!(live.path().join(MARKER).exists());
        assert!(fresh.exists());
        assert!(other.exists());
    }
}
