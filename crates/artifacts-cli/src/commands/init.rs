//! `artifacts init [DIR]`: a new project that `generate` and `check` accept
//! as it is.
//!
//! Writes `artifacts.toml` (one machine, one artifact stored with agenix for
//! the operator's key) and the artifact's generator, and makes sure the
//! operator has an identity: an age key file, `0600`, at
//! `$XDG_CONFIG_HOME/artifacts/identity.txt` (else
//! `~/.config/artifacts/identity.txt`), outside the project so it is never
//! committed; the manifest names it in `identities`, where every command
//! looks for the operator's keys. An identity file that exists already is
//! used as it is (one operator, one key, as with `~/.ssh/id_ed25519`).
//!
//! Nothing that exists is overwritten: every project file is checked before
//! the first is written, each is created with `create_new`, and when one
//! cannot be written the ones written before it are removed again.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};

use crate::args::{GlobalArgs, InitArgs};
use crate::exit::{self, UsageError};

/// The example artifact's generator, relative to the project.
const GENERATOR: &str = "generators/api-token.sh";

/// Manifest names a project may already have (see `context::MANIFEST_NAMES`).
const MANIFESTS: &[&str] = &[
    "artifacts.toml",
    "artifacts.json",
    "artifacts.yaml",
    "artifacts.yml",
];

const GENERATOR_SCRIPT: &str = r#"#!/bin/sh
# Generator of the artifact `api-token`: writes each declared file into $out.
# It runs in a sandbox: no network, none of your files; $prompts holds the
# answers to declared prompts, $in/<artifact>/<file> the files of declared
# dependencies. Its stdout is discarded; never print a secret.
set -eu
head -c 32 /dev/urandom | base64 > "$out/token"
"#;

pub fn run(global: &GlobalArgs, args: &InitArgs) -> Result<i32> {
    let cwd = std::env::current_dir().context("failed to read the current directory")?;
    let base = match &global.directory {
        Some(dir) => cwd.join(dir),
        None => cwd.clone(),
    };
    let dir = match &args.dir {
        Some(dir) => base.join(dir),
        None => base,
    };
    for name in MANIFESTS.iter().copied().chain([GENERATOR]) {
        let path = dir.join(name);
        if path.symlink_metadata().is_ok() {
            return Err(UsageError(anyhow!(
                "`{}` already exists; init writes only new files (remove it, or run init in another directory)",
                path.display()
            ))
            .into());
        }
    }
    let identity = Identity::ensure()?;
    let manifest = manifest_text(&identity);
    let mut written = Written(Vec::new());
    written.create_dirs(&dir.join("generators"))?;
    written.create(&dir.join("artifacts.toml"), manifest.as_bytes(), 0o644)?;
    written.create(&dir.join(GENERATOR), GENERATOR_SCRIPT.as_bytes(), 0o755)?;
    written.0.clear();

    let mut err = std::io::stderr().lock();
    writeln!(err, "created {}", dir.join("artifacts.toml").display())?;
    writeln!(err, "created {}", dir.join(GENERATOR).display())?;
    if identity.created {
        writeln!(
            err,
            "created your identity {} (age key, 0600; back it up, never commit it)",
            identity.path.display()
        )?;
    } else {
        writeln!(
            err,
            "using your existing identity {}",
            identity.path.display()
        )?;
    }
    let here = if dir == cwd {
        String::new()
    } else {
        format!(
            " -C {}",
            shell_escape::escape(dir.display().to_string().into())
        )
    };
    writeln!(err, "next:")?;
    let steps = [
        (
            "generate",
            "make the example token, encrypted under secrets/",
        ),
        ("check", "what CI runs: everything stored and current"),
        ("show api-token", "decrypt it with your identity"),
    ];
    let lines: Vec<String> = steps
        .iter()
        .map(|(command, _)| format!("artifacts{here} {command}"))
        .collect();
    let width = lines.iter().map(String::len).max().unwrap_or(0);
    for (line, (_, why)) in lines.iter().zip(steps) {
        writeln!(err, "  {line:<width$}  # {why}")?;
    }
    Ok(exit::SUCCESS)
}

/// The operator's identity file and its public key.
struct Identity {
    path: PathBuf,
    /// How the manifest names it: `~/…` under the home directory, else absolute.
    manifest_name: String,
    recipient: String,
    created: bool,
}

impl Identity {
    /// The existing identity file, or a new one.
    fn ensure() -> Result<Identity> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|x| Path::new(x).is_absolute())
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".config")))
            .ok_or_else(|| {
                UsageError(anyhow!(
                    "neither HOME nor XDG_CONFIG_HOME is set: init keeps your identity in $XDG_CONFIG_HOME/artifacts/identity.txt"
                ))
            })?;
        let path = config.join("artifacts").join("identity.txt");
        let manifest_name = match home.as_ref().and_then(|h| path.strip_prefix(h).ok()) {
            Some(rest) => format!("~/{}", rest.display()),
            None => path.display().to_string(),
        };
        let (recipient, created) = if path.symlink_metadata().is_ok() {
            (existing_recipient(&path)?, false)
        } else {
            let key = artifacts_crypto::age::keygen();
            let parent = path.parent().expect("a file in a directory");
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .with_context(|| format!("failed to create `{}`", parent.display()))?;
            let mut written = Written(Vec::new());
            written.create(&path, key.identity_file().as_bytes(), 0o600)?;
            written.0.clear();
            (key.recipient(), true)
        };
        Ok(Identity {
            path,
            manifest_name,
            recipient,
            created,
        })
    }
}

/// The public key of an existing identity file (the first identity in it).
fn existing_recipient(path: &Path) -> Result<String> {
    use artifacts_crypto::age::{NoPassphrase, unlock_identity_file};
    let unusable = |why: String| {
        UsageError(anyhow!(
            "your identity file `{}` exists but {why}; move it away to let init create a new one",
            path.display()
        ))
    };
    let identities =
        artifacts_crypto::age::read_identity_file(path, &NoPassphrase).map_err(|e| {
            match unlock_identity_file(path, &NoPassphrase) {
                Err(artifacts_crypto::Error::PassphraseRequired { .. }) => {
                    unusable("is passphrase-protected, so init cannot read its public key".into())
                }
                _ => unusable(format!(
                    "cannot be read as an age identity ({})",
                    artifacts_engine::error_chain(&e)
                )),
            }
        })?;
    let first = identities
        .first()
        .ok_or_else(|| unusable("holds no identity".into()))?;
    let recipient = first
        .to_recipient()
        .map_err(|e| unusable(artifacts_engine::error_chain(&e)))?;
    Ok(recipient.as_str().to_owned())
}

fn manifest_text(identity: &Identity) -> String {
    format!(
        r#"# Declarations for `artifacts` (`artifacts man` describes every key).
# Backends store what generators make; agenix writes one age file per secret
# file under secrets/. Commit this file, secrets/, public/ and artifacts.lock.
default.backend = "agenix"
# Your keys, for reading secrets back (show, rekey): ~/ is your home.
identities = [{name}]

[nixos.example]
# Who can decrypt: the machine's host key (`ssh-keyscan -t ed25519 HOST`) and you.
# config.agenix.publicHostKey = "ssh-ed25519 AAAA..."
config.agenix.publicUserKeys = [{recipient}]

[artifacts.api-token]
targets = ["nixos/example"]
description = "An example token; rename or remove it"
generator = "{GENERATOR}"
files.token = {{ mode = "0400" }}
"#,
        name = toml_string(&identity.manifest_name),
        recipient = toml_string(&identity.recipient),
    )
}

/// A TOML basic string: a JSON string is one (same escapes).
fn toml_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// Files and directories created so far, removed again (newest first)
/// unless the list is cleared.
struct Written(Vec<PathBuf>);

impl Written {
    /// Creates `dir` and the directories above it that are missing.
    fn create_dirs(&mut self, dir: &Path) -> Result<()> {
        let missing: Vec<&Path> = dir
            .ancestors()
            .take_while(|d| d.symlink_metadata().is_err())
            .collect();
        for created in missing.into_iter().rev() {
            std::fs::create_dir(created)
                .with_context(|| format!("failed to create `{}`", created.display()))?;
            self.0.push(created.to_owned());
        }
        Ok(())
    }

    /// Creates `path` (never replacing anything) with `content` and `mode`.
    fn create(&mut self, path: &Path, content: &[u8], mode: u32) -> Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| {
                let error = anyhow::Error::new(e).context(format!(
                    "failed to create `{}` (init writes only new files)",
                    path.display()
                ));
                UsageError(error)
            })?;
        self.0.push(path.to_owned());
        file.write_all(content)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("failed to write `{}`", path.display()))?;
        // The umask may have taken bits the generator needs; set on the open
        // file, so nothing swapped in at `path` meanwhile is re-moded.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
            .with_context(|| format!("failed to set the mode of `{}`", path.display()))?;
        Ok(())
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        for path in self.0.iter().rev() {
            // A directory is removed only if it is still empty.
            let _ = std::fs::remove_file(path).or_else(|_| std::fs::remove_dir(path));
        }
    }
}
