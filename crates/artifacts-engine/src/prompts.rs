//! Prompt answers: where they come from and how they reach generators.
//!
//! Sources, first match wins: a prompts file (`--prompts-file`, a JSON or
//! YAML map artifact → prompt → value), then `ARTIFACTS_PROMPT_<ARTIFACT>_<PROMPT>`
//! variables, then an interactive [`Asker`]. Never the command line.
//! All answers are collected before any generator runs, so a missing answer
//! in CI fails before anything changed. Values stay in [`SecretString`]s and
//! reach generators only as `0600` files in a `0700` scratch directory.

use std::collections::BTreeMap;
use std::path::Path;

use artifacts_model::Prompt;
use artifacts_model::names::prompt_variable;
use secrecy::{ExposeSecret, SecretString};

use crate::plan::{Plan, UnitId};
use artifacts_os::scratch::write_private;

/// Answers keyed by (artifact, prompt).
#[derive(Default)]
pub struct Answers {
    values: BTreeMap<(String, String), SecretString>,
}

impl std::fmt::Debug for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

/// Asks a person for a prompt's value.
pub trait Asker {
    /// Asks; `Err` carries a message (e.g. the terminal went away).
    fn ask(&mut self, artifact: &str, name: &str, prompt: &Prompt) -> Result<SecretString, String>;
}

/// Answers from a prompts file, parsed.
pub type PromptsFile = BTreeMap<String, BTreeMap<String, SecretString>>;

/// Why answers could not be collected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// Answers are missing and nobody can be asked.
    #[error("missing answers for {} prompt(s) and no terminal to ask: {}", .missing.len(), .missing.join(", "))]
    Missing {
        /// `artifact/prompt (set VAR)` for each.
        missing: Vec<String>,
    },
    /// Two prompts share one environment variable name and it is set.
    #[error(
        "environment variable `{variable}` is ambiguous: it answers both {first} and {second}; use --prompts-file instead"
    )]
    Ambiguous {
        /// The variable.
        variable: String,
        /// One `artifact/prompt`.
        first: String,
        /// The other.
        second: String,
    },
    /// The asker failed.
    #[error("failed to ask for prompt `{prompt}` of artifact `{artifact}`: {message}")]
    Ask {
        /// The artifact.
        artifact: String,
        /// The prompt.
        prompt: String,
        /// Why.
        message: String,
    },
    /// An answer is empty and the prompt does not declare `allowEmpty`.
    #[error(
        "the answer to prompt `{prompt}` of artifact `{artifact}` from {source_name} is empty, and the prompt does not allow an empty answer (declare `allowEmpty = true` on it to accept one)"
    )]
    Empty {
        /// The artifact.
        artifact: String,
        /// The prompt.
        prompt: String,
        /// Where the answer came from: the prompts file, or a variable.
        source_name: String,
    },
    /// A prompts file names an artifact or prompt that the plan does not have.
    #[error(
        "prompts file answers `{artifact}/{prompt}`, which is not a declared prompt of any artifact"
    )]
    Unknown {
        /// The artifact.
        artifact: String,
        /// The prompt.
        prompt: String,
    },
}

impl Answers {
    /// The answer to a prompt.
    pub fn get(&self, artifact: &str, prompt: &str) -> Option<&SecretString> {
        self.values.get(&(artifact.to_owned(), prompt.to_owned()))
    }

    /// Collects answers for the units in `selected` (indexes into `plan`).
    /// `env` looks up environment variables.
    pub fn collect(
        plan: &Plan<'_>,
        selected: &[UnitId],
        file: Option<&PromptsFile>,
        env: &dyn Fn(&str) -> Option<String>,
        asker: Option<&mut dyn Asker>,
    ) -> Result<Answers, PromptError> {
        if let Some(file) = file {
            for (artifact, prompts) in file {
                for prompt in prompts.keys() {
                    let declared = plan
                        .units()
                        .any(|u| u.name() == artifact && u.artifact.prompts.contains_key(prompt));
                    if !declared {
                        return Err(PromptError::Unknown {
                            artifact: artifact.clone(),
                            prompt: prompt.clone(),
                        });
                    }
                }
            }
        }
        // Variable name -> every (artifact, prompt) it could answer, across the whole plan.
        let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for unit in plan.units() {
            for name in unit.artifact.prompts.keys() {
                let entry = owners
                    .entry(prompt_variable(unit.name(), name))
                    .or_default();
                let label = format!("{}/{name}", unit.name());
                if !entry.contains(&label) {
                    entry.push(label);
                }
            }
        }
        let mut answers = Answers::default();
        let mut missing = Vec::new();
        for &index in selected {
            let unit = &plan[index];
            for (name, prompt) in &unit.artifact.prompts {
                let key = (unit.name().to_owned(), name.clone());
                if answers.values.contains_key(&key) {
                    continue;
                }
                let refuse_empty = |value: &SecretString, source_name: String| {
                    if value.expose_secret().is_empty() && !prompt.allow_empty {
                        Err(PromptError::Empty {
                            artifact: unit.name().to_owned(),
                            prompt: name.clone(),
                            source_name,
                        })
                    } else {
                        Ok(())
                    }
                };
                if let Some(value) = file
                    .and_then(|f| f.get(unit.name()))
                    .and_then(|p| p.get(name))
                {
                    refuse_empty(value, "the prompts file".to_owned())?;
                    answers.values.insert(key, value.clone());
                    continue;
                }
                let variable = prompt_variable(unit.name(), name);
                if let Some(value) = env(&variable) {
                    let claimants = &owners[&variable];
                    if claimants.len() > 1 {
                        return Err(PromptError::Ambiguous {
                            variable,
                            first: claimants[0].clone(),
                            second: claimants[1].clone(),
                        });
                    }
                    let value = SecretString::from(value);
                    refuse_empty(&value, format!("`{variable}`"))?;
                    answers.values.insert(key, value);
                    continue;
                }
                // With an asker, ask later: only once nothing else can fail.
                if asker.is_none() {
                    missing.push(format!("{}/{name} (set {variable})", unit.name()));
                }
            }
        }
        if !missing.is_empty() {
            return Err(PromptError::Missing { missing });
        }
        if let Some(asker) = asker {
            for &index in selected {
                let unit = &plan[index];
                for (name, prompt) in &unit.artifact.prompts {
                    let key = (unit.name().to_owned(), name.clone());
                    if answers.values.contains_key(&key) {
                        continue;
                    }
                    let value = asker.ask(unit.name(), name, prompt).map_err(|message| {
                        PromptError::Ask {
                            artifact: unit.name().to_owned(),
                            prompt: name.clone(),
                            message,
                        }
                    })?;
                    answers.values.insert(key, value);
                }
            }
        }
        for value in answers.values.values() {
            artifacts_os::redact::register(value.expose_secret().as_bytes());
        }
        Ok(answers)
    }

    /// Writes an artifact's answers into `dir`, one `0600` file per prompt.
    pub fn write(&self, artifact: &str, prompts: &[&String], dir: &Path) -> std::io::Result<()> {
        for name in prompts {
            if let Some(value) = self.get(artifact, name) {
                write_private(&dir.join(name), value.expose_secret().as_bytes())?;
            }
        }
        Ok(())
    }
}
