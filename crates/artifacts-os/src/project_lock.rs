//! The project lock: one mutating run (`generate`, `regenerate`, `rekey`,
//! `migrate`, `gc`) per project at a time.
//!
//! Two runs at once would each read `artifacts.lock` and a shared sops file,
//! change them, and write them back: the later write loses the earlier
//! run's entries, and both exit 0. So every mutating run holds an exclusive
//! `flock` on [`FLOCK_FILE`] beside `artifacts.lock`, from before it reads
//! `artifacts.lock` until it exits; the kernel releases it however the run
//! ends (`kill -9` included). The file holds the holder's pid, for the
//! message of whoever waits; it is never removed (removing a lock file
//! races with the next run opening it) and never committed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::io::IoError;
use nix::fcntl::{Flock, FlockArg};

/// The lock file's name, beside `artifacts.lock`.
pub const FLOCK_FILE: &str = ".artifacts.lock.flock";

/// Completes "failed to …" in the error naming the lock file.
const LOCK_ACTION: &str = "lock the project with";

/// The lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectLockError {
    /// The lock file cannot be opened or locked: "failed to lock the
    /// project with `{path}`".
    #[error(transparent)]
    Io(#[from] IoError),
}

/// A held project lock, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct ProjectLock {
    _lock: Flock<File>,
}

/// What [`ProjectLock::try_acquire`] found.
#[derive(Debug)]
pub enum Attempt {
    /// Ours now.
    Acquired(ProjectLock),
    /// Another run holds it: its pid, when it wrote one.
    Held(Option<u32>),
}

impl ProjectLock {
    /// The lock file of the project whose `artifacts.lock` is in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FLOCK_FILE)
    }

    /// Takes the lock if nobody holds it.
    pub fn try_acquire(dir: &Path) -> Result<Attempt, ProjectLockError> {
        Self::lock(dir, FlockArg::LockExclusiveNonblock)
    }

    /// Takes the lock, waiting as long as another run holds it.
    pub fn acquire(dir: &Path) -> Result<ProjectLock, ProjectLockError> {
        match Self::lock(dir, FlockArg::LockExclusive)? {
            Attempt::Acquired(lock) => Ok(lock),
            // A blocking flock returns with the lock or an error, never "held".
            Attempt::Held(_) => Err(IoError::new(
                LOCK_ACTION,
                Self::path(dir),
                std::io::ErrorKind::WouldBlock.into(),
            )
            .into()),
        }
    }

    fn lock(dir: &Path, how: FlockArg) -> Result<Attempt, ProjectLockError> {
        let path = Self::path(dir);
        let fail = |source: std::io::Error| IoError::new(LOCK_ACTION, path.clone(), source).into();
        // Never through a link planted at that name.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(fail)?;
        let mut lock = match Flock::lock(file, how) {
            Ok(lock) => lock,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Ok(Attempt::Held(text.trim().parse().ok()));
            }
            Err((_, errno)) => return Err(fail(errno.into())),
        };
        let pid = std::process::id().to_string();
        lock.set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| lock.write_all(pid.as_bytes()))
            .map_err(fail)?;
        Ok(Attempt::Acquired(ProjectLock { _lock: lock }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_attempt_sees_the_holder_until_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let Attempt::Acquired(lock) = ProjectLock::try_acquire(dir.path()).unwrap() else {
            panic!("a fresh project is not locked");
        };
        match ProjectLock::try_acquire(dir.path()).unwrap() {
            Attempt::Held(pid) => assert_eq!(pid, Some(std::process::id())),
            Attempt::Acquired(_) => panic!("locked twice"),
        }
        drop(lock);
        assert!(matches!(
            ProjectLock::try_acquire(dir.path()).unwrap(),
            Attempt::Acquired(_)
        ));
    }
}
