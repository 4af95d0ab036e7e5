//! Finding programs on a search path.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why `path` cannot be run as a program, or `Ok` when it is an executable
/// regular file (links followed).
pub fn check_executable(path: &Path) -> Result<(), &'static str> {
    let metadata = std::fs::metadata(path).map_err(|_| "does not exist")?;
    if metadata.is_dir() {
        return Err("is a directory, not a script");
    }
    if !metadata.is_file() {
        return Err("is not a regular file");
    }
    if metadata.permissions().mode() & 0o111 == 0 {
        return Err("is not executable (chmod +x it)");
    }
    Ok(())
}

/// The first executable regular file named `program` in the directories of
/// `search_path` (a `$PATH`-style list). A `program` with more than one
/// component (`./tk`, `/usr/bin/tk`) is not searched for: it is returned as
/// it is, and running it reports whatever is wrong with it.
pub fn find_executable_in(program: &Path, search_path: Option<&OsStr>) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return Some(program.to_path_buf());
    }
    std::env::split_paths(search_path?)
        .map(|dir| dir.join(program))
        .find(|candidate| check_executable(candidate).is_ok())
}

/// [`find_executable_in`] our own `$PATH`.
pub fn find_executable(program: impl AsRef<Path>) -> Option<PathBuf> {
    find_executable_in(program.as_ref(), std::env::var_os("PATH").as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_executable_files_in_path_order() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&first, &second] {
            std::fs::create_dir(d).unwrap();
        }
        // In `a`: not executable, and a directory of the same name.
        std::fs::write(first.join("tool"), "#!/bin/sh\n").unwrap();
        std::fs::create_dir(first.join("other")).unwrap();
        let good = second.join("tool");
        std::fs::write(&good, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o755)).unwrap();
        let search = std::env::join_paths([&first, &second]).unwrap();
        assert_eq!(
            find_executable_in(Path::new("tool"), Some(&search)),
            Some(good)
        );
        assert_eq!(find_executable_in(Path::new("other"), Some(&search)), None);
        assert_eq!(find_executable_in(Path::new("tool"), None), None);
        assert_eq!(
            find_executable_in(Path::new("./tool"), None),
            Some(PathBuf::from("./tool"))
        );
    }
}
