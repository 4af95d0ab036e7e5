//! Running one generator and checking what it wrote.
//!
//! The generator must write exactly the declared files into `$out`, each a
//! regular file no larger than [`MAX_FILE_SIZE`]. Anything else (a missing
//! file, an extra one, a directory, symlink or fifo) is named in the error.
//! Its stdout is discarded (it may hold secrets); its stderr is shown when it
//! fails, with every known secret value redacted ([`artifacts_os::redact`]).

use std::ffi::OsString;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::plan::Unit;
use crate::sandbox::{GeneratorDirs, Sandbox};
use crate::script::stderr_suffix;
use artifacts_os::process::{ProcessError, Stdout, describe_status};

/// An artifact's files in memory: (file name, content), zeroized on drop.
pub type ArtifactFiles = Vec<(String, Zeroizing<Vec<u8>>)>;

/// Largest file a generator may produce.
pub(crate) const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// A generator failed or wrote the wrong things.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GeneratorError {
    /// The artifact declares no generator.
    #[error("artifact `{artifact}` has no generator")]
    Missing {
        /// The artifact.
        artifact: String,
    },
    /// The generator file cannot be executed.
    #[error("generator `{path}` of artifact `{artifact}` {problem}")]
    NotRunnable {
        /// The artifact.
        artifact: String,
        /// The generator.
        path: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// Its directories or the copy of it could not be prepared.
    #[error("failed to prepare the sandbox for the generator of artifact `{artifact}`")]
    Prepare {
        /// The artifact.
        artifact: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Its inputs cannot be used.
    #[error(transparent)]
    Inputs(#[from] crate::inputs::InputError),
    /// It could not start or timed out. Named by its script: the process
    /// error's own command line is the long bubblewrap call around it.
    #[error("generator `{path}` of artifact `{artifact}` {}", process_problem(.error))]
    Process {
        /// The artifact.
        artifact: String,
        /// The generator.
        path: String,
        /// Why (not a `source`: its message is the bubblewrap command line).
        error: ProcessError,
    },
    /// It exited unsuccessfully.
    #[error("generator `{path}` of artifact `{artifact}` failed ({status}){}", stderr_suffix(.stderr))]
    Failed {
        /// The artifact.
        artifact: String,
        /// The generator.
        path: String,
        /// How it ended.
        status: String,
        /// Its stderr.
        stderr: String,
    },
    /// Its output does not match the declared files.
    #[error("generator of artifact `{artifact}` wrote the wrong output: {}", .problems.join("; "))]
    Output {
        /// The artifact.
        artifact: String,
        /// Each problem, naming the file.
        problems: Vec<String>,
    },
    /// Reading its output failed.
    #[error("failed to read the output of artifact `{artifact}`'s generator")]
    Read {
        /// The artifact.
        artifact: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn process_problem(error: &ProcessError) -> String {
    match error {
        ProcessError::Timeout {
            timeout, stderr, ..
        } => format!(
            // Seconds, as --timeout takes them and as every other timeout says.
            "did not finish within {}s and was killed{}",
            timeout.as_secs(),
            stderr_suffix(stderr)
        ),
        ProcessError::Spawn { source, .. } => format!("could not be started: {source}"),
        other => other.to_string(),
    }
}

/// Runs the unit's generator in `sandbox` with `dirs`, then validates `$out`.
pub(crate) fn run(
    unit: &Unit<'_>,
    sandbox: &Sandbox,
    dirs: &GeneratorDirs,
    log_level: &str,
    timeout: Option<Duration>,
) -> Result<(), GeneratorError> {
    let artifact = unit.name().to_owned();
    let generator = unit
        .artifact
        .generator
        .as_ref()
        .ok_or_else(|| GeneratorError::Missing {
            artifact: artifact.clone(),
        })?;
    crate::registry::check_script(generator).map_err(|problem| GeneratorError::NotRunnable {
        artifact: artifact.clone(),
        path: generator.display().to_string(),
        problem,
    })?;
    let mut env: Vec<(String, OsString)> = vec![
        ("artifact".into(), artifact.clone().into()),
        ("artifact_context".into(), unit.context().as_str().into()),
        ("LOG_LEVEL".into(), log_level.into()),
    ];
    // Shared generators make one artifact for many targets: no target identity.
    if let Some(target) = unit.targets.one() {
        env.push(("target".into(), target.id.name.clone().into()));
        env.push((
            target.id.kind.identity_variable().into(),
            target.id.name.clone().into(),
        ));
    }
    let prepare = |source| GeneratorError::Prepare {
        artifact: artifact.clone(),
        source,
    };
    if !unit.artifact.inputs.is_empty() && dirs.project_view().is_none() {
        return Err(prepare(std::io::Error::other(format!(
            "its inputs cannot be shown at the project root `{}`, a system directory the sandbox mounts; move the project",
            dirs.project_root.display()
        ))));
    }
    // The inputs are read (and checked) before anything runs.
    let entries = crate::inputs::read(&dirs.project_root, &artifact, &unit.artifact.inputs)?;
    // An input may be a program the generator runs: like the generator's
    // own copy, never open for writing in a child about to exec.
    artifacts_os::process::while_no_child_starts(|| crate::inputs::write(&entries, &dirs.project))
        .map_err(prepare)?;
    let mut read_only: Vec<std::path::PathBuf> = unit
        .artifact
        .inputs
        .iter()
        .filter_map(|input| artifacts_model::validate::input_path(input).ok())
        .collect();
    read_only.extend(dirs.relative_generator(generator));
    dirs.hand_over(generator).map_err(prepare)?;
    let mut command = sandbox
        .command(generator, dirs, &read_only, &env)
        .map_err(prepare)?;
    command.stdout(Stdout::Discard).timeout(timeout);
    let output = command.run();
    // What it left in `$out` is secret (unless declared public), finished or
    // not: a `set -x` generator prints the values it computes on stderr.
    artifacts_os::redact::register_dir(&dirs.out, crate::generator::MAX_FILE_SIZE, &|name| {
        unit.artifact.files.get(name).is_some_and(|f| !f.secret)
    });
    let output = output.map_err(|error| GeneratorError::Process {
        artifact: artifact.clone(),
        path: generator.display().to_string(),
        error: error.redacted(),
    })?;
    if !output.status.success() {
        return Err(GeneratorError::Failed {
            artifact,
            path: generator.display().to_string(),
            status: describe_status(&output.status),
            stderr: artifacts_os::redact::redact(&output.stderr),
        });
    }
    validate_output(unit, &dirs.out)
}

/// Checks that `out` holds exactly the declared files, as regular files of bounded size.
pub(crate) fn validate_output(unit: &Unit<'_>, out: &Path) -> Result<(), GeneratorError> {
    let artifact = unit.name();
    let read_error = |source| GeneratorError::Read {
        artifact: artifact.to_owned(),
        source,
    };
    let mut problems = Vec::new();
    let mut present = Vec::new();
    for entry in std::fs::read_dir(out).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let metadata = std::fs::symlink_metadata(entry.path()).map_err(read_error)?;
        let kind = metadata.file_type();
        let declared = unit.artifact.files.contains_key(&name);
        if !declared {
            // The generator chose this name: never print it raw.
            problems.push(format!(
                "unexpected {} `{}` (declared files: {})",
                describe_type(&kind),
                artifacts_model::names::escape(&name),
                declared_list(unit)
            ));
            continue;
        }
        if !kind.is_file() {
            problems.push(format!(
                "`{name}` is a {}, not a regular file",
                describe_type(&kind)
            ));
            continue;
        }
        if metadata.len() > MAX_FILE_SIZE {
            problems.push(format!(
                "`{name}` is {} bytes, over the limit of {MAX_FILE_SIZE} bytes",
                metadata.len()
            ));
            continue;
        }
        present.push(name);
    }
    for name in unit.artifact.files.keys() {
        let exists = std::fs::symlink_metadata(out.join(name)).is_ok();
        if !exists {
            problems.push(format!("missing file `{name}`"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        problems.sort();
        Err(GeneratorError::Output {
            artifact: artifact.to_owned(),
            problems,
        })
    }
}

fn declared_list(unit: &Unit<'_>) -> String {
    unit.artifact
        .files
        .keys()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_type(kind: &std::fs::FileType) -> &'static str {
    if kind.is_symlink() {
        "symlink"
    } else if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "fifo"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "device"
    } else {
        "file"
    }
}

/// Reads a validated output directory into memory (for dependents' `$in`).
pub(crate) fn read_output(unit: &Unit<'_>, out: &Path) -> Result<ArtifactFiles, GeneratorError> {
    unit.artifact
        .files
        .keys()
        .map(|name| {
            std::fs::read(out.join(name))
                .map(|bytes| (name.clone(), Zeroizing::new(bytes)))
                .map_err(|source| GeneratorError::Read {
                    artifact: unit.name().to_owned(),
                    source,
                })
        })
        .collect()
}
