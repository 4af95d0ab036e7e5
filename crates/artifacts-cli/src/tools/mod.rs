//! `artifacts age …`, `sops …`, `tanka …` and `cmp …`: tools that work on
//! files and streams rather than on a project's declarations.
//!
//! Plaintext only travels through stdin, stdout and files, never argv.
//! Output is buffered and written only after the whole operation succeeded,
//! so a failure prints nothing on stdout. Files are replaced atomically.
//! The process environment is not read here: [`crate::run`] passes it in
//! [`Io`]. Errors go back to the one reporter in [`crate::exit`].

pub mod age;
pub mod sops;
pub mod tanka;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;
use artifacts_crypto::age::{Identity, PassphraseProvider};
use artifacts_crypto::error::{Error, Origin};
use artifacts_crypto::keys::{self, KeyEnv, Purpose};
use artifacts_os::fs::write_atomic;
use zeroize::Zeroizing;

/// The handles and environment a tool runs with.
pub struct Io<'a> {
    /// Standard input.
    pub stdin: &'a mut dyn Read,
    /// Standard output (plaintext or ciphertext results).
    pub stdout: &'a mut dyn Write,
    /// Standard error (messages, never secrets).
    pub stderr: &'a mut dyn Write,
    /// Environment variables (`ARTIFACTS_IDENTITY`, `SOPS_AGE_KEY_FILE`, …).
    pub env: &'a BTreeMap<String, OsString>,
    /// Working directory, where relative paths and `.sops.yaml` lookup start.
    pub cwd: PathBuf,
    /// Asked for the passphrase of encrypted SSH keys and identity files, on
    /// the controlling terminal as `age` does, since stdin may carry the data.
    pub passphrase: &'a dyn PassphraseProvider,
}

/// A path from the command line, relative to the working directory.
fn resolve(io: &Io<'_>, p: &Path) -> PathBuf {
    io.cwd.join(p)
}

fn is_stdin(p: &Option<PathBuf>) -> bool {
    p.as_deref().is_none_or(|p| p == Path::new("-"))
}

/// The bytes of INPUT (stdin when absent or `-`) and where they came from.
fn read_input(io: &mut Io<'_>, input: &Option<PathBuf>) -> Result<(Zeroizing<Vec<u8>>, Origin)> {
    match input.as_deref().filter(|_| !is_stdin(input)) {
        None => {
            let mut buf = Zeroizing::new(Vec::new());
            io.stdin
                .read_to_end(&mut buf)
                .map_err(|source| Error::Stream {
                    action: "read",
                    stream: "standard input",
                    source,
                })?;
            Ok((buf, Origin::Stdin))
        }
        Some(input) => {
            let p = resolve(io, input);
            let bytes = std::fs::read(&p).map_err(|e| Error::io("read", &p, e))?;
            Ok((Zeroizing::new(bytes), Origin::file(input)))
        }
    }
}

/// Writes the result to OUTPUT (atomically) or to stdout when absent or `-`.
fn write_output(io: &mut Io<'_>, output: &Option<PathBuf>, data: &[u8]) -> Result<()> {
    match output.as_deref() {
        None => write_stdout(io, data),
        Some(p) if p == Path::new("-") => write_stdout(io, data),
        Some(p) => {
            write_atomic(&resolve(io, p), data)?;
            Ok(())
        }
    }
}

fn write_stdout(io: &mut Io<'_>, data: &[u8]) -> Result<()> {
    match io.stdout.write_all(data).and_then(|()| io.stdout.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe is the reader's choice, not our failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(source) => Err(Error::Stream {
            action: "write",
            stream: "standard output",
            source,
        }
        .into()),
    }
}

/// The identities of `files` (relative to the working directory) and of the
/// environment (`ARTIFACTS_IDENTITY`, `SOPS_AGE_KEY_FILE`, …).
fn load_identities(
    io: &Io<'_>,
    files: &[PathBuf],
    purpose: Purpose,
) -> artifacts_crypto::Result<Vec<Identity>> {
    let files: Vec<PathBuf> = files.iter().map(|f| resolve(io, f)).collect();
    let key_env = KeyEnv::from_pairs(io.env.iter().map(|(k, v)| (k.as_str(), v.as_os_str())));
    keys::discover_identities(&files, &key_env, purpose, io.passphrase)
}
