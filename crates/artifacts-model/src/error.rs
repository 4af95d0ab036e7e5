//! Errors of loading and validating declarations.
//!
//! Every problem carries a [`Location`]: the declaration file, the target, the
//! artifact and the field, so a person with fifty machines can find it.

use std::fmt;
use std::path::PathBuf;

use crate::model::TargetId;

/// Where in the declarations a problem sits. Parts that do not apply are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// The manifest file or flake the declarations came from.
    pub file: PathBuf,
    /// The target holding the declaration, if any.
    pub target: Option<TargetId>,
    /// The artifact name, if any.
    pub artifact: Option<String>,
    /// A dotted field path inside the artifact or target, e.g. `files.key.mode`.
    pub field: Option<String>,
}

impl Location {
    /// A location naming only the declaration file.
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Location {
            file: file.into(),
            ..Location::default()
        }
    }

    /// The same location, narrowed to a target.
    pub fn target(&self, target: &TargetId) -> Self {
        Location {
            target: Some(target.clone()),
            ..self.clone()
        }
    }

    /// The same location, narrowed to an artifact.
    pub fn artifact(&self, artifact: &str) -> Self {
        Location {
            artifact: Some(artifact.to_owned()),
            ..self.clone()
        }
    }

    /// The same location, narrowed to a field.
    pub fn field(&self, field: impl Into<String>) -> Self {
        Location {
            field: Some(field.into()),
            ..self.clone()
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.file.display())?;
        if let Some(target) = &self.target {
            write!(f, ", {target}")?;
        }
        // Names come from the declarations: never print them raw.
        if let Some(artifact) = &self.artifact {
            write!(f, ", artifact `{}`", crate::names::escape(artifact))?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field `{}`", crate::names::escape(field))?;
        }
        Ok(())
    }
}

/// One thing wrong with the declarations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where it is.
    pub location: Location,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Messages quote names and keys from the declarations.
        write!(
            f,
            "{}: {}",
            self.location,
            crate::names::escape(&self.message)
        )
    }
}

/// Why declarations could not be loaded or are not acceptable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The declaration file could not be read.
    #[error("failed to read `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The declaration file is not valid TOML, JSON or YAML.
    #[error("failed to parse `{path}`: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (never contains secret values: declarations hold none).
        message: String,
        /// The line of the problem (1-based), when the parser tells it.
        line: Option<usize>,
        /// The column of the problem (1-based), when the parser tells it.
        column: Option<usize>,
    },
    /// The file extension tells no known format.
    #[error("unknown manifest format `{path}`: use .toml, .json, .yaml or .yml")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// One or more declarations are wrong; all of them are listed.
    #[error("{}", display_problems(.0))]
    Invalid(Vec<Problem>),
}

fn display_problems(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut text = format!("{} problems in the declarations:", many.len());
            for problem in many {
                text.push_str("\n  - ");
                text.push_str(&problem.to_string());
            }
            text
        }
    }
}

impl ModelError {
    /// The problems, when this is a validation error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ModelError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}
