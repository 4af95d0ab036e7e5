//! Writing files that hold secrets, and reaching them without following links.
//!
//! [`write_atomic`] replaces a file named by the user (temporary file in the
//! same directory, fsync, rename, fsync of the directory), keeping the mode
//! of a file being replaced and using 0600 for new ones. A failure before the
//! rename leaves the original untouched.
//!
//! [`Dir`] is for the stores inside a project (issue 12): a directory handle
//! from which every path is opened one component at a time with
//! `O_NOFOLLOW`, so a symbolic link committed anywhere in a store (say
//! `public/per-machine/m1 -> ../../../home`) is refused with an error naming
//! it instead of being written, renamed or deleted through. Paths given to it
//! are relative and plain (no `..`, no leading `/`). [`Dir::replace_dir`]
//! swaps a freshly written directory with the current one in one step
//! (`renameat2(RENAME_EXCHANGE)`), which is how multi-file artifacts switch
//! generations atomically.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

/// What a directory entry is (links are reported as links, never followed).
pub use rustix::fs::FileType;

pub use crate::io::IoError;

/// Replaces (or creates) `path` with `data` atomically.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), IoError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mode = match fs::metadata(path) {
        Ok(m) => m.permissions().mode() & 0o7777,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0o600,
        Err(e) => return Err(IoError::new("inspect", path, e)),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| IoError::new("create a temporary file next to", path, e))?;
    tmp.write_all(data)
        .map_err(|e| IoError::new("write a temporary file next to", path, e))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| IoError::new("set permissions on a temporary file next to", path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| IoError::new("sync a temporary file next to", path, e))?;
    tmp.persist(path)
        .map_err(|e| IoError::new("replace", path, e.error))?;
    if let Ok(d) = fs::File::open(dir) {
        // Best effort: make the rename itself durable.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Why a path inside a [`Dir`] was refused. Wrapped in a [`std::io::Error`]
/// (kind `Other`), so it travels through any I/O error path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// A component is a symbolic link.
    #[error(
        "`{}` is a symbolic link: stores are never read or written through links (replace it with a real directory or file)",
        .0.display()
    )]
    Link(PathBuf),
    /// A component exists but is not a directory (or the file is not a regular file).
    #[error("`{}` is not a {}", .0.display(), .1)]
    Kind(PathBuf, &'static str),
    /// The relative path is absolute or climbs out with `..`.
    #[error(
        "`{}` must be a relative path that stays inside `{}` (no leading `/`, no `..`)",
        .0.display(), .1.display()
    )]
    Outside(PathBuf, PathBuf),
}

fn refused(reason: Refused) -> std::io::Error {
    std::io::Error::other(reason)
}

/// Adds the path to an error from a system call that does not name it.
fn at(path: &Path) -> impl FnOnce(Errno) -> std::io::Error + '_ {
    move |errno| {
        let error = std::io::Error::from(errno);
        std::io::Error::new(error.kind(), format!("`{}`: {error}", path.display()))
    }
}

/// Checks that `relative` is plain: only normal components (`.` is skipped).
pub fn plain_components<'p>(relative: &'p Path, base: &Path) -> std::io::Result<Vec<&'p OsStr>> {
    let mut parts = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(refused(Refused::Outside(
                    relative.to_owned(),
                    base.to_owned(),
                )));
            }
        }
    }
    Ok(parts)
}

/// A random suffix for temporary names.
fn random_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Whether `text` is a random suffix of the temporary names made here.
pub fn is_tag(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A directory opened without following links; see the module documentation.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Dir {
    /// Opens `path` itself (following links: it is the caller's choice of
    /// directory, e.g. the project root). Everything below it is reached
    /// without following links.
    pub fn open_root(path: &Path) -> std::io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(at(path))?;
        Ok(Dir {
            fd,
            path: path.to_owned(),
        })
    }

    /// The path this directory was reached by (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's device and inode: with a `stat` of its path, whether
    /// a handle kept open still stands for that path.
    // The stat fields' types differ between platforms: some casts are no-ops here.
    #[allow(clippy::unnecessary_cast)]
    pub fn identity(&self) -> std::io::Result<(u64, u64)> {
        let stat = rustix::fs::fstat(&self.fd).map_err(at(&self.path))?;
        Ok((stat.st_dev as u64, stat.st_ino as u64))
    }

    /// The directory's file descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// What `name` is, without following a link; `None` when it does not exist.
    pub fn kind(&self, name: impl AsRef<OsStr>) -> std::io::Result<Option<FileType>> {
        let name = name.as_ref();
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(FileType::from_raw_mode(stat.st_mode))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(at(&self.path.join(name))(e)),
        }
    }

    /// Another handle on this directory.
    fn dup(&self) -> std::io::Result<Dir> {
        let fd =
            rustix::fs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty()).map_err(at(&self.path))?;
        Ok(Dir {
            fd,
            path: self.path.clone(),
        })
    }

    /// Opens the subdirectory `name` (one component); `None` when missing.
    fn child(&self, name: &OsStr) -> std::io::Result<Option<Dir>> {
        let path = self.path.join(name);
        match rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(Dir { fd, path })),
            Err(Errno::NOENT) => Ok(None),
            Err(e @ (Errno::LOOP | Errno::NOTDIR)) => match self.kind(name)? {
                Some(FileType::Symlink) => Err(refused(Refused::Link(path))),
                Some(_) => Err(refused(Refused::Kind(path, "directory"))),
                None => Err(at(&path)(e)),
            },
            Err(e) => Err(at(&path)(e)),
        }
    }

    /// Opens `relative` below this directory, refusing links in every
    /// component; `None` when some component does not exist.
    pub fn open(&self, relative: impl AsRef<Path>) -> std::io::Result<Option<Dir>> {
        let relative = relative.as_ref();
        // One `openat` per component: the first is opened from this handle.
        let mut current: Option<Dir> = None;
        for part in plain_components(relative, &self.path)? {
            let parent = current.as_ref().unwrap_or(self);
            match parent.child(part)? {
                Some(next) => current = Some(next),
                None => return Ok(None),
            }
        }
        match current {
            Some(dir) => Ok(Some(dir)),
            None => self.dup().map(Some),
        }
    }

    /// Opens `relative`, creating missing directories with `mode`.
    pub fn create_dirs(&self, relative: impl AsRef<Path>, mode: u32) -> std::io::Result<Dir> {
        let relative = relative.as_ref();
        let mut current = self.dup()?;
        for part in plain_components(relative, &self.path)? {
            current = match current.child(part)? {
                Some(next) => next,
                None => {
                    match rustix::fs::mkdirat(&current.fd, part, Mode::from_raw_mode(mode)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(at(&current.path.join(part))(e)),
                    }
                    current.child(part)?.ok_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            format!("`{}` vanished", current.path.join(part).display()),
                        )
                    })?
                }
            };
        }
        Ok(current)
    }

    /// Resolves `path` as if this directory were `/` (what
    /// `openat2(RESOLVE_IN_ROOT)` does): links are followed, but an absolute
    /// link target starts again at this directory and `..` never climbs
    /// above it, so nothing outside is reached. Missing directories are
    /// created with `create` when given, else the result is `None`. For
    /// `activate --root`, where the root holds a system whose own links
    /// (`/var/run -> /run`, or absolute ones) must resolve inside it.
    pub fn open_in_root(&self, path: &Path, create: Option<u32>) -> std::io::Result<Option<Dir>> {
        const MAX_LINKS: usize = 40;
        let mut stack = vec![self.dup()?];
        let mut queue: std::collections::VecDeque<OsString> =
            path.iter().map(OsStr::to_owned).collect();
        let mut links = 0;
        while let Some(part) = queue.pop_front() {
            if part == "/" || part == "." || part.is_empty() {
                continue;
            }
            if part == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let current = stack.last().expect("the root stays");
            match current.kind(&part)? {
                Some(FileType::Symlink) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(at(&current.path.join(&part))(Errno::LOOP));
                    }
                    let target = rustix::fs::readlinkat(&current.fd, part.as_os_str(), Vec::new())
                        .map_err(at(&current.path.join(&part)))?;
                    let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                    if target.is_absolute() {
                        stack.truncate(1);
                    }
                    for component in target.iter().rev() {
                        queue.push_front(component.to_owned());
                    }
                }
                Some(_) => {
                    let next = current.child(&part)?.ok_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            format!("`{}` vanished", current.path.join(&part).display()),
                        )
                    })?;
                    stack.push(next);
                }
                None => {
                    let Some(mode) = create else { return Ok(None) };
                    match rustix::fs::mkdirat(
                        &current.fd,
                        part.as_os_str(),
                        Mode::from_raw_mode(mode),
                    ) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(at(&current.path.join(&part))(e)),
                    }
                    // Looked at again: what is there now may be a link.
                    queue.push_front(part);
                }
            }
        }
        Ok(stack.pop())
    }

    /// Opens the regular file `name` for reading without following a link;
    /// `None` when it does not exist, an error when it is not a regular file.
    pub fn open_file(&self, name: impl AsRef<OsStr>) -> std::io::Result<Option<fs::File>> {
        let name = name.as_ref();
        // For messages only: a fleet's check reads thousands of files.
        let path = || self.path.join(name);
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err(refused(Refused::Link(path()))),
            Err(e) => return Err(at(&path())(e)),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| at(&path())(e))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(refused(Refused::Kind(path(), "regular file")));
        }
        Ok(Some(fs::File::from(fd)))
    }

    /// Creates the new file `name` (never replacing anything, never through
    /// a link) with exactly `mode`, open for writing.
    pub fn create_file(&self, name: impl AsRef<OsStr>, mode: u32) -> std::io::Result<fs::File> {
        let name = name.as_ref();
        let path = self.path.join(name);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(0o600))
            .map_err(at(&path))?;
        // Exactly `mode`, whatever the umask.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(at(&path))?;
        Ok(fs::File::from(fd))
    }

    /// Renames the entry `from` to `to` within this directory (replacing a
    /// file or link named `to`, never following it).
    pub fn rename(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>) -> std::io::Result<()> {
        let to = to.as_ref();
        rustix::fs::renameat(&self.fd, from.as_ref(), &self.fd, to).map_err(at(&self.path.join(to)))
    }

    /// Reads the regular file `name`; `None` when it does not exist. A link,
    /// a directory or a FIFO is refused (a FIFO would block).
    pub fn read(&self, name: impl AsRef<OsStr>) -> std::io::Result<Option<Vec<u8>>> {
        let name = name.as_ref();
        // For messages only: a fleet's check reads thousands of files.
        let path = || self.path.join(name);
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err(refused(Refused::Link(path()))),
            Err(e) => return Err(at(&path())(e)),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| at(&path())(e))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(refused(Refused::Kind(path(), "regular file")));
        }
        // Sized from the `fstat` above and read by hand: `read_to_end` would
        // ask the size again (`statx`, `lseek`) for every file of a store.
        let size = usize::try_from(stat.st_size).unwrap_or(0);
        let mut data = vec![0; size + 1];
        let mut file = fs::File::from(fd);
        let mut filled = 0;
        loop {
            if filled == data.len() {
                data.resize(filled * 2, 0);
            }
            match file.read(&mut data[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("`{}`: {e}", path().display()),
                    ));
                }
            }
        }
        data.truncate(filled);
        Ok(Some(data))
    }

    /// The entries (name and type, links not followed), without `.` and `..`.
    pub fn entries(&self) -> std::io::Result<Vec<(OsString, FileType)>> {
        let mut out = Vec::new();
        let reader = rustix::fs::Dir::read_from(&self.fd).map_err(at(&self.path))?;
        for entry in reader {
            let entry = entry.map_err(at(&self.path))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let kind = match entry.file_type() {
                FileType::Unknown => match self.kind(name)? {
                    Some(kind) => kind,
                    None => continue,
                },
                kind => kind,
            };
            out.push((name.to_owned(), kind));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Creates the new file `name` (never replacing anything) with exactly
    /// `mode`, writes `data` and fsyncs it.
    pub fn write_new(
        &self,
        name: impl AsRef<OsStr>,
        data: &[u8],
        mode: u32,
    ) -> std::io::Result<()> {
        let mut file = self.create_file(name, mode)?;
        file.write_all(data)?;
        file.sync_all()?;
        Ok(())
    }

    /// [`Dir::write_new`] without the fsync: for files that a later
    /// [`Dir::sync_filesystem`] makes durable together.
    pub fn write_new_unsynced(
        &self,
        name: impl AsRef<OsStr>,
        data: &[u8],
        mode: u32,
    ) -> std::io::Result<()> {
        self.create_file(name, mode)?.write_all(data)
    }

    /// Replaces (or creates) the file `name` atomically: a temporary file in
    /// this directory with `mode`, fsynced, renamed over `name` (a link named
    /// `name` is replaced, never followed), then the directory fsynced.
    pub fn write_atomic(
        &self,
        name: impl AsRef<OsStr>,
        data: &[u8],
        mode: u32,
    ) -> std::io::Result<()> {
        let name = name.as_ref();
        let temp = Temp::new(self, &format!(".artifacts-tmp-{}", random_tag()));
        self.write_new(&temp.name, data, mode)?;
        rustix::fs::renameat(&self.fd, &temp.name, &self.fd, name)
            .map_err(at(&self.path.join(name)))?;
        temp.keep();
        self.sync();
        Ok(())
    }

    /// The mode of the regular file `name`, if it is one.
    pub fn file_mode(&self, name: impl AsRef<OsStr>) -> std::io::Result<Option<u32>> {
        let name = name.as_ref();
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => {
                Ok(Some(stat.st_mode & 0o7777))
            }
            Ok(_) => Ok(None),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(at(&self.path.join(name))(e)),
        }
    }

    /// What identifies the current content of the regular file `name`
    /// (device, inode, size, modification and change times in nanoseconds):
    /// any write or replacement changes it. `None` when it is not a regular file.
    // The stat fields' types differ between platforms: some casts are no-ops here.
    #[allow(clippy::unnecessary_cast)]
    pub fn file_stamp(&self, name: impl AsRef<OsStr>) -> std::io::Result<Option<[u64; 7]>> {
        let name = name.as_ref();
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => {
                Ok(Some([
                    stat.st_dev,
                    stat.st_ino,
                    stat.st_size as u64,
                    stat.st_mtime as u64,
                    stat.st_mtime_nsec as u64,
                    stat.st_ctime as u64,
                    stat.st_ctime_nsec as u64,
                ]))
            }
            Ok(_) => Ok(None),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(at(&self.path.join(name))(e)),
        }
    }

    /// Creates a fresh subdirectory named `name` (`mode`), failing if it exists.
    pub fn create_dir(&self, name: impl AsRef<OsStr>, mode: u32) -> std::io::Result<Dir> {
        let name = name.as_ref();
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o700))
            .map_err(at(&self.path.join(name)))?;
        let dir = self.child(name)?.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("`{}` vanished", self.path.join(name).display()),
            )
        })?;
        rustix::fs::fchmod(&dir.fd, Mode::from_raw_mode(mode)).map_err(at(&dir.path))?;
        Ok(dir)
    }

    /// Puts the directory `staged` (an entry of this directory) in place of
    /// `name` in one step: `renameat2(RENAME_EXCHANGE)` when `name` exists,
    /// so a reader sees the old directory or the new one, never a mix or
    /// nothing. Returns the name the previous directory now has (the
    /// caller removes it), or `None` when there was none. A link named
    /// `name` is refused. On file systems without `RENAME_EXCHANGE` it falls
    /// back to two renames, between which `name` is briefly missing.
    pub fn replace_dir(
        &self,
        staged: impl AsRef<OsStr>,
        name: impl AsRef<OsStr>,
    ) -> std::io::Result<Option<OsString>> {
        let previous = self.exchange(staged, name)?;
        self.sync();
        Ok(previous)
    }

    /// [`Dir::replace_dir`] without the fsync of this directory: for a
    /// batch of swaps made durable by one [`Dir::sync`] afterwards. Until
    /// then a crash may undo the swap, which leaves the previous directory
    /// whole (the staged one must have been made durable before).
    pub fn exchange(
        &self,
        staged: impl AsRef<OsStr>,
        name: impl AsRef<OsStr>,
    ) -> std::io::Result<Option<OsString>> {
        let (staged, name) = (staged.as_ref(), name.as_ref());
        let path = self.path.join(name);
        match self.kind(name)? {
            None => {
                match rustix::fs::renameat_with(
                    &self.fd,
                    staged,
                    &self.fd,
                    name,
                    RenameFlags::NOREPLACE,
                ) {
                    Ok(()) => return Ok(None),
                    Err(Errno::INVAL | Errno::NOSYS) => {
                        rustix::fs::renameat(&self.fd, staged, &self.fd, name)
                            .map_err(at(&path))?;
                        return Ok(None);
                    }
                    Err(e) => return Err(at(&path)(e)),
                }
            }
            Some(FileType::Directory) => {}
            Some(FileType::Symlink) => return Err(refused(Refused::Link(path))),
            Some(_) => return Err(refused(Refused::Kind(path, "directory"))),
        }
        match rustix::fs::renameat_with(&self.fd, staged, &self.fd, name, RenameFlags::EXCHANGE) {
            Ok(()) => Ok(Some(staged.to_owned())),
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                let old = OsString::from(format!(".artifacts-old-{}", random_tag()));
                rustix::fs::renameat(&self.fd, name, &self.fd, &old).map_err(at(&path))?;
                rustix::fs::renameat(&self.fd, staged, &self.fd, name).map_err(at(&path))?;
                Ok(Some(old))
            }
            Err(e) => Err(at(&path)(e)),
        }
    }

    /// Removes `name`: a file or link is unlinked (a link is never followed),
    /// a directory is first renamed to a hidden name (so it disappears at
    /// once) and then removed with everything in it, also without following
    /// links. A missing `name` is no error.
    pub fn remove(&self, name: impl AsRef<OsStr>) -> std::io::Result<()> {
        let name = name.as_ref();
        match self.kind(name)? {
            None => Ok(()),
            Some(FileType::Directory) => {
                let doomed = OsString::from(format!(".artifacts-removing-{}", random_tag()));
                rustix::fs::renameat(&self.fd, name, &self.fd, &doomed)
                    .map_err(at(&self.path.join(name)))?;
                self.sync();
                self.remove_tree(&doomed)
            }
            Some(_) => rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())
                .map_err(at(&self.path.join(name))),
        }
    }

    /// Removes the directory `name` (with everything in it, never following
    /// a link) without first renaming it away: for a directory that already
    /// has a hidden name [`Dir::remove_leftovers`] recognises, so a kill
    /// half-way leaves a leftover the next run removes. Nothing is fsynced.
    pub fn remove_leftover(&self, name: impl AsRef<OsStr>) -> std::io::Result<()> {
        self.remove_tree(name.as_ref())
    }

    fn remove_tree(&self, name: &OsStr) -> std::io::Result<()> {
        if let Some(dir) = self.child(name)? {
            for (entry, kind) in dir.entries()? {
                if kind == FileType::Directory {
                    dir.remove_tree(&entry)?;
                } else {
                    rustix::fs::unlinkat(&dir.fd, &entry, AtFlags::empty())
                        .map_err(at(&dir.path.join(&entry)))?;
                }
            }
            rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR)
                .map_err(at(&self.path.join(name)))?;
        }
        Ok(())
    }
    /// Stores `files` as a new generation of the directory `name`: written
    /// under a hidden `<prefix><tag>` name (files `file_mode`, directory
    /// 0755), fsynced, then swapped in with [`Dir::replace_dir`]; the previous
    /// generation is removed. Leftovers of an interrupted run under `prefix`
    /// go first. Until the swap, `name` is untouched, so a failure (or a
    /// kill) leaves the previous generation whole.
    pub fn replace_dir_with<N, C>(
        &self,
        prefix: &str,
        name: impl AsRef<OsStr>,
        files: impl IntoIterator<Item = (N, C)>,
        file_mode: u32,
    ) -> std::io::Result<()>
    where
        N: AsRef<OsStr>,
        C: AsRef<[u8]>,
    {
        self.remove_leftovers(|entry| entry.strip_prefix(prefix).is_some_and(is_tag))?;
        let staged = Temp::random(self, prefix, "");
        let staged_dir = self.create_dir(staged.name(), 0o755)?;
        for (file, content) in files {
            staged_dir.write_new(file, content.as_ref(), file_mode)?;
        }
        staged_dir.sync();
        match self.replace_dir(staged.name(), name)? {
            // The staged name now holds the previous generation: dropping `staged` removes it.
            Some(old) if old == staged.name() => drop(staged),
            Some(old) => {
                staged.keep();
                let _ = self.remove(&old);
            }
            None => staged.keep(),
        }
        self.sync();
        Ok(())
    }

    /// Writes `files` into a new hidden directory `<prefix><tag>` of this
    /// one (files `file_mode`, directory 0755) and returns its name, for
    /// [`Dir::exchange`] to swap in later. Nothing is fsynced: the caller
    /// makes every staged directory durable at once ([`Dir::sync_filesystem`])
    /// before the first swap. On failure nothing is left behind.
    pub fn stage_dir<N, C>(
        &self,
        prefix: &str,
        files: impl IntoIterator<Item = (N, C)>,
        file_mode: u32,
    ) -> std::io::Result<OsString>
    where
        N: AsRef<OsStr>,
        C: AsRef<[u8]>,
    {
        let staged = Temp::random(self, prefix, "");
        let staged_dir = self.create_dir(staged.name(), 0o755)?;
        for (file, content) in files {
            staged_dir.write_new_unsynced(file, content.as_ref(), file_mode)?;
        }
        let name = staged.name().to_owned();
        staged.keep();
        Ok(name)
    }

    /// Makes the hidden directory `name` hold exactly `files` (mode
    /// `file_mode`), reusing what is in it: a regular file with one link is
    /// truncated and rewritten in place, anything else of a wanted name is
    /// removed and created anew, entries not wanted are removed. For a
    /// previous generation that was swapped out (and the swap made durable),
    /// which nothing reads any more: its inodes serve the next staged
    /// generation instead of new ones being allocated. Nothing is fsynced
    /// (see [`Dir::stage_dir`]); links are never followed.
    pub fn restage_dir<N, C>(
        &self,
        name: impl AsRef<OsStr>,
        files: impl IntoIterator<Item = (N, C)>,
        file_mode: u32,
    ) -> std::io::Result<()>
    where
        N: AsRef<OsStr>,
        C: AsRef<[u8]>,
    {
        let name = name.as_ref();
        let staged = self.child(name)?.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("`{}` vanished", self.path.join(name).display()),
            )
        })?;
        let mut wanted = std::collections::BTreeSet::new();
        for (file, content) in files {
            let file = file.as_ref();
            staged.rewrite(file, content.as_ref(), file_mode)?;
            wanted.insert(file.to_owned());
        }
        for (entry, kind) in staged.entries()? {
            if wanted.contains(&entry) {
                continue;
            }
            if kind == FileType::Directory {
                staged.remove_tree(&entry)?;
            } else {
                rustix::fs::unlinkat(&staged.fd, &entry, AtFlags::empty())
                    .map_err(at(&staged.path.join(&entry)))?;
            }
        }
        Ok(())
    }

    /// Writes `data` into `name` in place when it is a regular file with a
    /// single link (no new inode), else replaces whatever is there with a
    /// new file; mode exactly `mode`. Not fsynced.
    fn rewrite(&self, name: &OsStr, data: &[u8], mode: u32) -> std::io::Result<()> {
        let path = self.path.join(name);
        let reusable = match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => {
                if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
                    && stat.st_nlink == 1
                {
                    true
                } else {
                    if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
                        self.remove_tree(name)?;
                    } else {
                        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())
                            .map_err(at(&path))?;
                    }
                    false
                }
            }
            Err(Errno::NOENT) => false,
            Err(e) => return Err(at(&path)(e)),
        };
        if !reusable {
            return self.write_new_unsynced(name, data, mode);
        }
        let flags = OFlags::WRONLY | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::empty()).map_err(at(&path))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(at(&path))?;
        fs::File::from(fd).write_all(data)
    }

    /// Moves the entry `name` of this directory to the directory `to`
    /// under the same name, never replacing anything there.
    pub fn move_into(&self, name: impl AsRef<OsStr>, to: &Dir) -> std::io::Result<()> {
        let name = name.as_ref();
        let path = to.path.join(name);
        match rustix::fs::renameat_with(&self.fd, name, &to.fd, name, RenameFlags::NOREPLACE) {
            Err(Errno::INVAL | Errno::NOSYS) => {
                if to.kind(name)?.is_some() {
                    return Err(at(&path)(Errno::EXIST));
                }
                rustix::fs::renameat(&self.fd, name, &to.fd, name).map_err(at(&path))
            }
            other => other.map_err(at(&path)),
        }
    }

    /// Like [`Dir::sync`], but a failure is an error: for callers that may
    /// rely on what was renamed here being durable.
    pub fn sync_checked(&self) -> std::io::Result<()> {
        rustix::fs::fsync(&self.fd).map_err(at(&self.path))
    }

    /// Makes everything written to this directory's file system durable
    /// (`syncfs(2)`; `sync(2)` where the kernel lacks it): one call for a
    /// whole batch of staged files and directories, in place of an fsync
    /// of each. Unlike [`Dir::sync`], a failure is an error: what was
    /// staged may not be on disk.
    pub fn sync_filesystem(&self) -> std::io::Result<()> {
        match rustix::fs::syncfs(&self.fd) {
            Err(Errno::NOSYS) => {
                rustix::fs::sync();
                Ok(())
            }
            other => other.map_err(at(&self.path)),
        }
    }

    /// The device this directory is on (directories of one device share a
    /// [`Dir::sync_filesystem`]).
    pub fn device(&self) -> std::io::Result<u64> {
        let stat = rustix::fs::fstat(&self.fd).map_err(at(&self.path))?;
        #[allow(clippy::unnecessary_cast)]
        Ok(stat.st_dev as u64)
    }

    /// Removes every entry `ours` recognises as a leftover of a killed run
    /// (temporary files, staged or replaced directories), plus the
    /// directories this type itself leaves while replacing or removing.
    pub fn remove_leftovers(&self, ours: impl Fn(&str) -> bool) -> std::io::Result<()> {
        for (name, _) in self.entries()? {
            let Some(text) = name.to_str() else { continue };
            let generic = [".artifacts-old-", ".artifacts-removing-", ".artifacts-tmp-"]
                .iter()
                .any(|prefix| text.strip_prefix(prefix).is_some_and(is_tag));
            if generic || ours(text) {
                self.remove(&name)?;
            }
        }
        Ok(())
    }

    /// Makes renames and new entries in this directory durable (best effort).
    pub fn sync(&self) {
        let _ = rustix::fs::fsync(&self.fd);
    }
}

/// A temporary entry of a [`Dir`], removed on drop unless kept.
#[derive(Debug)]
pub struct Temp<'d> {
    dir: &'d Dir,
    name: OsString,
    keep: bool,
}

impl<'d> Temp<'d> {
    /// Names a temporary entry `name` of `dir` (the caller creates it).
    pub fn new(dir: &'d Dir, name: &str) -> Temp<'d> {
        Temp {
            dir,
            name: OsString::from(name),
            keep: false,
        }
    }

    /// A fresh name `<prefix><16 hex digits><suffix>`.
    pub fn random(dir: &'d Dir, prefix: &str, suffix: &str) -> Temp<'d> {
        Temp::new(dir, &format!("{prefix}{}{suffix}", random_tag()))
    }

    /// The entry's name.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// Keeps the entry (it was renamed into place, or is wanted).
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if !self.keep {
            let _ = self.dir.remove(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_keeps_mode_and_new_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let leftovers = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }

    #[test]
    fn atomic_write_into_missing_directory_fails_without_creating_anything() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing/f");
        assert!(write_atomic(&p, b"x").is_err());
        assert!(!p.exists());
    }

    /// A root with `inside/` and a link `escape -> <outside>`, and an outside
    /// directory holding `victim/file`.
    fn trap() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        let outside = base.path().join("outside");
        fs::create_dir_all(root.join("inside")).unwrap();
        fs::create_dir_all(outside.join("victim")).unwrap();
        fs::write(outside.join("victim/file"), b"precious").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../outside", root.join("inside/up")).unwrap();
        (base, root, outside)
    }

    fn is_link_refusal(error: &std::io::Error, name: &str) -> bool {
        error.to_string().contains("is a symbolic link") && error.to_string().contains(name)
    }

    #[test]
    fn dir_refuses_links_in_every_operation() {
        let (_base, root, outside) = trap();
        let dir = Dir::open_root(&root).unwrap();
        for relative in ["escape", "escape/victim", "inside/up/victim"] {
            let error = dir.open(relative).unwrap_err();
            assert!(
                is_link_refusal(&error, "escape") || is_link_refusal(&error, "up"),
                "{error}"
            );
            let error = dir
                .create_dirs(format!("{relative}/new"), 0o755)
                .unwrap_err();
            assert!(error.to_string().contains("symbolic link"), "{error}");
        }
        let inside = dir.open("inside").unwrap().unwrap();
        assert!(is_link_refusal(&inside.read("up").unwrap_err(), "up"));
        assert!(inside.replace_dir("x", "up").is_err());
        // Removing a link removes the link, never what it points to.
        dir.remove("escape").unwrap();
        inside.remove("up").unwrap();
        assert_eq!(fs::read(outside.join("victim/file")).unwrap(), b"precious");
        assert!(!root.join("escape").exists() && !root.join("inside/up").exists());
    }

    #[test]
    fn dir_refuses_absolute_and_parent_paths() {
        let (_base, root, _outside) = trap();
        let dir = Dir::open_root(&root).unwrap();
        for relative in ["/etc", "../outside", "inside/../../outside"] {
            let error = dir.create_dirs(relative, 0o755).unwrap_err();
            assert!(
                error.to_string().contains("must be a relative path"),
                "{error}"
            );
        }
    }

    #[test]
    fn remove_of_a_tree_never_follows_links_inside_it() {
        let (_base, root, outside) = trap();
        let dir = Dir::open_root(&root).unwrap();
        std::os::unix::fs::symlink(outside.join("victim"), root.join("inside/victim")).unwrap();
        dir.remove("inside").unwrap();
        assert!(!root.join("inside").exists());
        assert_eq!(fs::read(outside.join("victim/file")).unwrap(), b"precious");
    }

    #[test]
    fn replace_dir_swaps_whole_directories() {
        let (_base, root, _outside) = trap();
        let dir = Dir::open_root(&root).unwrap();
        let staged = dir.create_dir(".stage", 0o755).unwrap();
        staged.write_new("a", b"new", 0o644).unwrap();
        assert_eq!(dir.replace_dir(".stage", "gen").unwrap(), None);
        let staged = dir.create_dir(".stage", 0o755).unwrap();
        staged.write_new("b", b"newer", 0o644).unwrap();
        let old = dir.replace_dir(".stage", "gen").unwrap().unwrap();
        assert_eq!(fs::read(root.join("gen/b")).unwrap(), b"newer");
        assert!(!root.join("gen/a").exists());
        assert_eq!(fs::read(root.join(&old).join("a")).unwrap(), b"new");
        dir.remove(&old).unwrap();
        dir.write_atomic("f", b"1", 0o640).unwrap();
        assert_eq!(dir.file_mode("f").unwrap(), Some(0o640));
        assert_eq!(dir.read("f").unwrap().unwrap(), b"1");
        assert_eq!(dir.read("missing").unwrap(), None);
    }

    #[test]
    fn staged_generations_swap_in_and_the_previous_one_keeps_the_hidden_name() {
        let (_base, root, outside) = trap();
        let dir = Dir::open_root(&root).unwrap();
        let first = dir.stage_dir(".st-", [("a", b"one")], 0o640).unwrap();
        assert!(
            first
                .to_str()
                .unwrap()
                .strip_prefix(".st-")
                .is_some_and(is_tag)
        );
        assert_eq!(dir.exchange(&first, "gen").unwrap(), None);
        let second = dir.stage_dir(".st-", [("b", b"two")], 0o640).unwrap();
        dir.sync_filesystem().unwrap();
        // The staged name now holds the previous generation, whole.
        assert_eq!(dir.exchange(&second, "gen").unwrap(), Some(second.clone()));
        assert_eq!(fs::read(root.join("gen/b")).unwrap(), b"two");
        assert!(!root.join("gen/a").exists());
        let current = dir.open("gen").unwrap().unwrap();
        assert_eq!(current.file_mode("b").unwrap(), Some(0o640));
        assert_eq!(fs::read(root.join(&second).join("a")).unwrap(), b"one");
        dir.remove_leftover(&second).unwrap();
        assert!(!root.join(&second).exists());
        // Never swapped with a link, nor removed through one.
        let third = dir.stage_dir(".st-", [("c", b"three")], 0o640).unwrap();
        assert!(dir.exchange(&third, "escape").is_err());
        assert!(dir.remove_leftover("escape").is_err());
        assert_eq!(fs::read(outside.join("victim/file")).unwrap(), b"precious");
    }

    #[test]
    fn restaging_reuses_single_link_files_and_never_writes_through_links() {
        use std::os::unix::fs::MetadataExt;
        let (_base, root, outside) = trap();
        let dir = Dir::open_root(&root).unwrap();
        let old = dir
            .stage_dir(
                ".st-",
                [("keep", b"old".as_slice()), ("extra", b"x".as_slice())],
                0o600,
            )
            .unwrap();
        let staged = root.join(&old);
        let kept = fs::metadata(staged.join("keep")).unwrap().ino();
        fs::create_dir(staged.join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.join("victim/file"), staged.join("linked")).unwrap();
        fs::hard_link(outside.join("victim/file"), staged.join("shared")).unwrap();
        let files: [(&str, &[u8]); 3] = [("keep", b"new"), ("linked", b"l"), ("shared", b"s")];
        dir.restage_dir(&old, files, 0o644).unwrap();
        let mut names: Vec<String> = fs::read_dir(&staged)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["keep", "linked", "shared"]);
        // Rewritten in place, with the new mode.
        let meta = fs::symlink_metadata(staged.join("keep")).unwrap();
        assert_eq!((meta.ino(), meta.mode() & 0o777), (kept, 0o644));
        assert_eq!(fs::read(staged.join("keep")).unwrap(), b"new");
        // A link and a file with another name elsewhere are replaced, not written through.
        assert!(
            fs::symlink_metadata(staged.join("linked"))
                .unwrap()
                .is_file()
        );
        assert_eq!(fs::read(staged.join("shared")).unwrap(), b"s");
        assert_eq!(fs::read(outside.join("victim/file")).unwrap(), b"precious");
        // Moved to another directory whole, never over something there.
        let inside = dir.open("inside").unwrap().unwrap();
        dir.move_into(&old, &inside).unwrap();
        assert_eq!(
            fs::read(root.join("inside").join(&old).join("keep")).unwrap(),
            b"new"
        );
        fs::create_dir(root.join(&old)).unwrap();
        assert!(inside.move_into(&old, &dir).is_err());
    }

    #[test]
    fn in_root_resolution_keeps_absolute_links_and_dotdot_inside() {
        let (_base, root, outside) = trap();
        // An absolute link to the host's `outside` resolves to `<root>/<outside>`.
        std::os::unix::fs::symlink(&outside, root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../../..", root.join("inside/climb")).unwrap();
        let dir = Dir::open_root(&root).unwrap();
        let rel_outside = outside.strip_prefix("/").unwrap();
        assert!(
            dir.open_in_root(Path::new("abs/victim"), None)
                .unwrap()
                .is_none()
        );
        let made = dir
            .open_in_root(Path::new("abs/victim"), Some(0o755))
            .unwrap()
            .unwrap();
        made.write_new("file", b"inside", 0o600).unwrap();
        assert_eq!(fs::read(outside.join("victim/file")).unwrap(), b"precious");
        assert_eq!(
            fs::read(root.join(rel_outside).join("victim/file")).unwrap(),
            b"inside"
        );
        let top = dir
            .open_in_root(Path::new("/inside/climb/inside"), None)
            .unwrap()
            .unwrap();
        assert_eq!(top.kind("climb").unwrap(), Some(FileType::Symlink));
    }
}
