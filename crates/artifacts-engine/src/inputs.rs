//! A generator's declared inputs (`inputs = ["generators/lib.sh"]`): files
//! and directories of the project it reads, such as shell code shared
//! between generators.
//!
//! They are read from the project root without following symbolic links (a
//! link anywhere in an input, or on the way to it, is refused: nothing
//! outside the project is reached through one), must exist and be regular
//! files or directories, and are bounded by
//! [`artifacts_model::limits::MAX_INPUT_FILES`] and
//! [`artifacts_model::limits::MAX_INPUT_BYTES`]. Their content is part of the
//! generator's identity in the lock ([`identity`]), so editing `lib.sh`
//! makes every artifact reading it stale. For a run they are copied into the
//! generator's scratch directory ([`write`]) and shown to it read-only at
//! the same place below its working directory, the project root
//! ([`crate::sandbox`]).

use std::path::{Path, PathBuf};

use artifacts_model::limits::{MAX_INPUT_BYTES, MAX_INPUT_FILES};
use artifacts_os::fs::{Dir, FileType};
use sha2::{Digest, Sha256};

/// One entry of the inputs, by its path relative to the project root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A directory (listed before what it holds).
    Dir,
    /// A regular file: its content, and whether it is executable.
    File(Vec<u8>, bool),
}

/// The inputs of an artifact cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// An input does not exist.
    #[error("input `{input}` of artifact `{artifact}` does not exist (`{}`)", .path.display())]
    Missing {
        /// The artifact.
        artifact: String,
        /// The input as declared.
        input: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A symbolic link in or on the way to an input.
    #[error(
        "input `{input}` of artifact `{artifact}`: `{}` is a symbolic link; inputs are never read through links (name the real file, inside the project)",
        .path.display()
    )]
    Link {
        /// The artifact.
        artifact: String,
        /// The input as declared.
        input: String,
        /// The link.
        path: PathBuf,
    },
    /// Something that is not what it has to be: a regular file or a
    /// directory, or a directory on the way to the input.
    #[error(
        "input `{input}` of artifact `{artifact}`: `{}` is a {what}, not a {expected}",
        .path.display()
    )]
    Kind {
        /// The artifact.
        artifact: String,
        /// The input as declared.
        input: String,
        /// The entry.
        path: PathBuf,
        /// What it is.
        what: &'static str,
        /// What it has to be.
        expected: &'static str,
    },
    /// The inputs are larger than the limits.
    #[error(
        "the inputs of artifact `{artifact}` hold more than {MAX_INPUT_FILES} files or {MAX_INPUT_BYTES} bytes; name only what the generator reads"
    )]
    TooLarge {
        /// The artifact.
        artifact: String,
    },
    /// An input is not a valid path (validation should have caught this).
    #[error("input `{input}` of artifact `{artifact}`: {message}")]
    Invalid {
        /// The artifact.
        artifact: String,
        /// The input as declared.
        input: String,
        /// Why.
        message: String,
    },
    /// Reading failed.
    #[error("failed to read input `{input}` of artifact `{artifact}`")]
    Io {
        /// The artifact.
        artifact: String,
        /// The input as declared.
        input: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Reads every input of `artifact` below `root`: each entry by its relative
/// path, directories before their content, in a stable order.
pub(crate) fn read(
    root: &Path,
    artifact: &str,
    inputs: &[String],
) -> Result<Vec<(PathBuf, Entry)>, InputError> {
    let mut out: Vec<(PathBuf, Entry)> = Vec::new();
    let mut budget = Budget { files: 0, bytes: 0 };
    for input in inputs {
        let fail_io = |source| InputError::Io {
            artifact: artifact.to_owned(),
            input: input.clone(),
            source,
        };
        let relative = artifact_model_path(artifact, input)?;
        let mut dir = Dir::open_root(root).map_err(fail_io)?;
        let parts: Vec<_> = relative.iter().collect();
        let (last, parents) = parts.split_last().expect("an input is not empty");
        let mut so_far = PathBuf::new();
        for part in parents {
            so_far.push(part);
            match kind(&dir, part, artifact, input, root, &so_far)? {
                FileType::Directory => {}
                other => {
                    return Err(InputError::Kind {
                        artifact: artifact.to_owned(),
                        input: input.clone(),
                        path: root.join(&so_far),
                        what: describe(other),
                        expected: "directory",
                    });
                }
            }
            dir = dir
                .open(Path::new(part))
                .map_err(fail_io)?
                .ok_or_else(|| missing(artifact, input, root, &so_far))?;
            // Directories on the way are created when copying, not listed.
        }
        so_far.push(last);
        let walk = Walk {
            root,
            artifact,
            input,
        };
        walk.entry(&dir, last, &so_far, &mut out, &mut budget)?;
    }
    // One entry per path, parents first, whatever the declaration order.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

/// The plain relative path of a declared input.
fn artifact_model_path(artifact: &str, input: &str) -> Result<PathBuf, InputError> {
    artifacts_model::validate::input_path(input).map_err(|message| InputError::Invalid {
        artifact: artifact.to_owned(),
        input: input.to_owned(),
        message,
    })
}

fn missing(artifact: &str, input: &str, root: &Path, relative: &Path) -> InputError {
    InputError::Missing {
        artifact: artifact.to_owned(),
        input: input.to_owned(),
        path: root.join(relative),
    }
}

/// What `name` in `dir` is; links and missing entries are errors.
fn kind(
    dir: &Dir,
    name: &std::ffi::OsStr,
    artifact: &str,
    input: &str,
    root: &Path,
    relative: &Path,
) -> Result<FileType, InputError> {
    match dir.kind(name) {
        Ok(Some(FileType::Symlink)) => Err(InputError::Link {
            artifact: artifact.to_owned(),
            input: input.to_owned(),
            path: root.join(relative),
        }),
        Ok(Some(kind)) => Ok(kind),
        Ok(None) => Err(missing(artifact, input, root, relative)),
        Err(source) => Err(InputError::Io {
            artifact: artifact.to_owned(),
            input: input.to_owned(),
            source,
        }),
    }
}

struct Budget {
    files: usize,
    bytes: u64,
}

struct Walk<'a> {
    root: &'a Path,
    artifact: &'a str,
    input: &'a str,
}

impl Walk<'_> {
    fn fail_io(&self) -> impl Fn(std::io::Error) -> InputError + '_ {
        move |source| InputError::Io {
            artifact: self.artifact.to_owned(),
            input: self.input.to_owned(),
            source,
        }
    }

    fn too_large(&self) -> InputError {
        InputError::TooLarge {
            artifact: self.artifact.to_owned(),
        }
    }

    /// Adds `name` of `dir` (at `relative`) and, for a directory, what it holds.
    fn entry(
        &self,
        dir: &Dir,
        name: &std::ffi::OsStr,
        relative: &Path,
        out: &mut Vec<(PathBuf, Entry)>,
        budget: &mut Budget,
    ) -> Result<(), InputError> {
        budget.files += 1;
        if budget.files > MAX_INPUT_FILES {
            return Err(self.too_large());
        }
        match kind(dir, name, self.artifact, self.input, self.root, relative)? {
            FileType::RegularFile => {
                let mut file = dir
                    .open_file(name)
                    .map_err(self.fail_io())?
                    .ok_or_else(|| missing(self.artifact, self.input, self.root, relative))?;
                let mut content = Vec::new();
                let left = MAX_INPUT_BYTES - budget.bytes;
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(&mut file, left + 1),
                    &mut content,
                )
                .map_err(self.fail_io())?;
                budget.bytes += content.len() as u64;
                if budget.bytes > MAX_INPUT_BYTES {
                    return Err(self.too_large());
                }
                let mode = dir.file_mode(name).map_err(self.fail_io())?.unwrap_or(0);
                out.push((relative.to_owned(), Entry::File(content, mode & 0o111 != 0)));
            }
            FileType::Directory => {
                out.push((relative.to_owned(), Entry::Dir));
                let child = dir
                    .open(Path::new(name))
                    .map_err(self.fail_io())?
                    .ok_or_else(|| missing(self.artifact, self.input, self.root, relative))?;
                for (entry, _) in child.entries().map_err(self.fail_io())? {
                    self.entry(&child, &entry, &relative.join(&entry), out, budget)?;
                }
            }
            other => {
                return Err(InputError::Kind {
                    artifact: self.artifact.to_owned(),
                    input: self.input.to_owned(),
                    path: self.root.join(relative),
                    what: describe(other),
                    expected: "regular file or directory",
                });
            }
        }
        Ok(())
    }
}

fn describe(kind: FileType) -> &'static str {
    match kind {
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice | FileType::BlockDevice => "device",
        FileType::Symlink => "symbolic link",
        FileType::Directory => "directory",
        FileType::RegularFile => "regular file",
        _ => "special file",
    }
}

/// What the lock records of the inputs: SHA-256 over every entry's path,
/// kind, executable bit and content.
pub(crate) fn identity(entries: &[(PathBuf, Entry)]) -> String {
    let mut hasher = Sha256::new();
    for (path, entry) in entries {
        let path = path.as_os_str().as_encoded_bytes();
        hasher.update((path.len() as u64).to_le_bytes());
        hasher.update(path);
        match entry {
            Entry::Dir => hasher.update(b"d"),
            Entry::File(content, executable) => {
                hasher.update(if *executable { b"x" } else { b"f" });
                hasher.update((content.len() as u64).to_le_bytes());
                hasher.update(content);
            }
        }
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Writes `entries` below `dest` (which exists): directories `0755`, files
/// `0444`, or `0555` when executable; never through a link, never over
/// anything (`dest` is fresh).
pub(crate) fn write(entries: &[(PathBuf, Entry)], dest: &Path) -> std::io::Result<()> {
    let dest = Dir::open_root(dest)?;
    for (path, entry) in entries {
        let parent = path.parent().unwrap_or(Path::new(""));
        let dir = dest.create_dirs(parent, 0o755)?;
        let name = path.file_name().expect("input entries have names");
        match entry {
            Entry::Dir => {
                dest.create_dirs(path, 0o755)?;
            }
            Entry::File(content, executable) => {
                let mode = if *executable { 0o555 } else { 0o444 };
                dir.write_new(name, content, mode)?;
            }
        }
    }
    Ok(())
}
