//! age plugins: `age1<name>1…` recipients and `AGE-PLUGIN-<NAME>-1…`
//! identities (YubiKeys, FIDO2 tokens, TPMs, post-quantum keys …), served by
//! a program `age-plugin-<name>` found on `PATH`, through the `age` crate's
//! plugin protocol.
//!
//! Owns the one piece of process-wide state of this crate: the [`PluginUi`]
//! a binary installs with [`set_ui`], through which plugins talk to the
//! person (touch the key, type the PIN, confirm). Without one, a plugin's
//! question gets no answer and the operation fails with
//! [`Error::PluginNeedsInput`] naming the question. It is global because a
//! plugin may ask wherever a key is used, deep inside backends and SOPS
//! files, where no caller could hand an asker down.
//!
//! The program is looked up with `artifacts_os::path`'s rules (the first
//! executable regular file of that name on `PATH`) before the `age` crate
//! starts it, so a missing plugin is reported as [`Error::PluginMissing`],
//! naming the program and the recipient or identity that needs it (never an
//! identity's text: for many plugins it holds the secret key).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use age_core::format::{FileKey, Stanza};
use secrecy::SecretString;

use crate::error::Error;

/// How plugins reach the person at the keyboard; installed once per process
/// with [`set_ui`]. `plugin` is the program's name (`age-plugin-yubikey`);
/// every text comes from the plugin and is public by the protocol.
pub trait PluginUi: Send + Sync {
    /// Shows a message (for example "touch your YubiKey").
    fn message(&self, plugin: &str, message: &str);
    /// Asks to choose `yes` or, when given, `no`; `None` when nobody can answer.
    fn confirm(&self, plugin: &str, message: &str, yes: &str, no: Option<&str>) -> Option<bool>;
    /// Asks for a value that may be shown while typed; `None` when nobody can answer.
    fn request_public(&self, plugin: &str, description: &str) -> Option<String>;
    /// Asks for a secret (a PIN, a passphrase), not shown while typed; `None`
    /// when nobody can answer.
    fn request_secret(&self, plugin: &str, description: &str) -> Option<SecretString>;
}

static UI: RwLock<Option<Arc<dyn PluginUi>>> = RwLock::new(None);

/// Installs the [`PluginUi`] every later plugin call uses (replacing an
/// earlier one).
pub fn set_ui(ui: Arc<dyn PluginUi>) {
    *UI.write().unwrap_or_else(PoisonError::into_inner) = Some(ui);
}

fn current_ui() -> Option<Arc<dyn PluginUi>> {
    UI.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// The program that serves plugin `name`: `age-plugin-<name>`.
pub fn program_name(name: &str) -> String {
    format!("age-plugin-{name}")
}

/// Where the program of plugin `name` is on `PATH`, if anywhere; `None` for
/// a name that is not a plugin name (age's rule: letters, digits, `+-._`),
/// so that no name can become a path.
pub fn find(name: &str) -> Option<PathBuf> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.' | b'_'));
    if !valid {
        return None;
    }
    artifacts_os::path::find_executable(program_name(name))
}

/// A shortened, public rendering of a plugin recipient for messages (some
/// are thousands of characters long).
pub(crate) fn short(text: &str) -> String {
    let head: String = text.chars().take(24).collect();
    if head.len() < text.len() {
        format!("`{head}…`")
    } else {
        format!("`{head}`")
    }
}

/// The `age` crate's callbacks for one plugin call: forwards to the installed
/// [`PluginUi`] and remembers the first question nobody answered, so the
/// failure can say what the plugin needed.
#[derive(Clone)]
struct Callbacks {
    program: String,
    ui: Option<Arc<dyn PluginUi>>,
    unanswered: Arc<Mutex<Option<String>>>,
}

impl Callbacks {
    fn new(name: &str) -> Self {
        Callbacks {
            program: program_name(name),
            ui: current_ui(),
            unanswered: Arc::default(),
        }
    }

    fn refused<T>(&self, question: &str) -> Option<T> {
        self.unanswered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| question.trim().to_owned());
        None
    }

    fn unanswered(&self) -> Option<String> {
        self.unanswered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl age::Callbacks for Callbacks {
    fn display_message(&self, message: &str) {
        if let Some(ui) = &self.ui {
            ui.message(&self.program, message);
        }
    }

    fn confirm(&self, message: &str, yes: &str, no: Option<&str>) -> Option<bool> {
        match &self.ui {
            Some(ui) => ui.confirm(&self.program, message, yes, no),
            None => None,
        }
        .or_else(|| self.refused(message))
    }

    fn request_public_string(&self, description: &str) -> Option<String> {
        match &self.ui {
            Some(ui) => ui.request_public(&self.program, description),
            None => None,
        }
        .or_else(|| self.refused(description))
    }

    fn request_passphrase(&self, description: &str) -> Option<SecretString> {
        match &self.ui {
            Some(ui) => ui.request_secret(&self.program, description),
            None => None,
        }
        .or_else(|| self.refused(description))
    }
}

/// Our error for a failed plugin call: a question nobody answered first (the
/// likely cause of whatever the plugin then reported), else the plugin's own
/// report.
fn failure(callbacks: &Callbacks, needed_by: &str, reason: String) -> Error {
    match callbacks.unanswered() {
        Some(request) => Error::PluginNeedsInput {
            program: callbacks.program.clone(),
            needed_by: needed_by.to_owned(),
            request,
        },
        None => Error::Plugin {
            program: callbacks.program.clone(),
            needed_by: needed_by.to_owned(),
            reason,
        },
    }
}

/// The plugin's reports, one line each: `age` words them as
/// "'age-plugin-x' couldn't use …: MESSAGE" (with Unicode isolation marks
/// around the names); the program and what it was for are in our message
/// already, so only MESSAGE is kept.
fn describe_plugin_errors<E: std::fmt::Display>(errors: &[E]) -> String {
    let texts: Vec<String> = errors
        .iter()
        .map(|e| {
            let text: String = e
                .to_string()
                .chars()
                .filter(|c| !matches!(c, '\u{2068}' | '\u{2069}'))
                .collect();
            match text.split_once(": ") {
                Some((head, message)) if head.starts_with("'age-plugin-") => message.to_owned(),
                _ => text,
            }
        })
        .map(|text| text.trim().to_owned())
        .collect();
    texts.join("; ")
}

fn describe_io(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::ConnectionAborted {
        "it exited unexpectedly".to_owned()
    } else {
        format!("talking to it failed: {e}")
    }
}

/// The plugin recipients of one plugin, wrapped together into one plugin
/// call, as an `age` recipient.
pub(crate) struct RecipientGroup {
    name: String,
    recipients: Vec<age::plugin::Recipient>,
    needed_by: String,
    callbacks: Callbacks,
    failure: Mutex<Option<Error>>,
}

impl RecipientGroup {
    /// Groups `recipients` by plugin, in order of first appearance; fails
    /// when a plugin's program is not on `PATH`.
    pub(crate) fn group<'a>(
        recipients: impl Iterator<Item = &'a age::plugin::Recipient>,
    ) -> Result<Vec<RecipientGroup>, Error> {
        let mut groups: Vec<RecipientGroup> = Vec::new();
        for r in recipients {
            match groups.iter_mut().find(|g| g.name == r.plugin()) {
                Some(group) => group.recipients.push(r.clone()),
                None => {
                    let needed_by = format!("recipient {}", short(&r.to_string()));
                    if find(r.plugin()).is_none() {
                        return Err(Error::PluginMissing {
                            program: program_name(r.plugin()),
                            needed_by,
                        });
                    }
                    groups.push(RecipientGroup {
                        name: r.plugin().to_owned(),
                        recipients: vec![r.clone()],
                        needed_by,
                        callbacks: Callbacks::new(r.plugin()),
                        failure: Mutex::new(None),
                    });
                }
            }
        }
        Ok(groups)
    }

    /// Why this group failed, when it did.
    pub(crate) fn take_failure(&self) -> Option<Error> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn fail(&self, error: Error) {
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
    }
}

impl age::Recipient for RecipientGroup {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        let plugin = age::plugin::RecipientPluginV1::new(
            &self.name,
            &self.recipients,
            &[],
            self.callbacks.clone(),
        )
        .inspect_err(|_| {
            // Found a moment ago; gone now.
            self.fail(Error::PluginMissing {
                program: program_name(&self.name),
                needed_by: self.needed_by.clone(),
            })
        })
        .map_err(age::EncryptError::PluginResolve)?;
        age::Recipient::wrap_file_key(&plugin, file_key).inspect_err(|e| {
            let reason = match e {
                age::EncryptError::Plugin(errors) => describe_plugin_errors(errors),
                age::EncryptError::Io(io) => describe_io(io),
                other => other.to_string().to_lowercase(),
            };
            self.fail(failure(&self.callbacks, &self.needed_by, reason));
        })
    }
}

/// One plugin identity tried on one file, as an `age` identity. A missing
/// program or a plugin's refusal is remembered instead of ending the search
/// ([`IdentityAttempt::take_failure`]), so that the other identities are
/// still tried: a plugin that holds no key for the file may say so as an
/// error.
pub(crate) struct IdentityAttempt<'a> {
    identity: &'a age::plugin::Identity,
    needed_by: String,
    failure: Mutex<Option<Error>>,
}

impl<'a> IdentityAttempt<'a> {
    /// `needed_by` names the identity for messages (its file and line).
    pub(crate) fn new(identity: &'a age::plugin::Identity, needed_by: String) -> Self {
        IdentityAttempt {
            identity,
            needed_by,
            failure: Mutex::new(None),
        }
    }

    /// Why this identity could not be used, when it could not.
    pub(crate) fn take_failure(&self) -> Option<Error> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn fail(&self, error: Error) {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(error);
    }
}

impl age::Identity for IdentityAttempt<'_> {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, age::DecryptError>> {
        let name = self.identity.plugin();
        let missing = || Error::PluginMissing {
            program: program_name(name),
            needed_by: self.needed_by.clone(),
        };
        if find(name).is_none() {
            self.fail(missing());
            return None;
        }
        let callbacks = Callbacks::new(name);
        let Ok(plugin) = age::plugin::IdentityPluginV1::new(
            name,
            std::slice::from_ref(self.identity),
            callbacks.clone(),
        ) else {
            self.fail(missing());
            return None;
        };
        match age::Identity::unwrap_stanzas(&plugin, stanzas) {
            Some(Ok(key)) => Some(Ok(key)),
            Some(Err(e)) => {
                let reason = match &e {
                    age::DecryptError::Plugin(errors) => describe_plugin_errors(errors),
                    age::DecryptError::Io(io) => describe_io(io),
                    other => other.to_string().to_lowercase(),
                };
                self.fail(failure(&callbacks, &self.needed_by, reason));
                None
            }
            None => {
                if let Some(request) = callbacks.unanswered() {
                    self.fail(Error::PluginNeedsInput {
                        program: program_name(name),
                        needed_by: self.needed_by.clone(),
                        request,
                    });
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::Callbacks as _;

    #[test]
    fn a_question_without_a_ui_is_refused_and_remembered() {
        // No `set_ui` in this test binary's unit tests: nobody can answer.
        let callbacks = Callbacks {
            program: program_name("test"),
            ui: None,
            unanswered: Arc::default(),
        };
        assert!(callbacks.request_passphrase("PIN for key 1").is_none());
        assert!(callbacks.confirm("touch it", "ok", None).is_none());
        // The first question is the one reported.
        let e = failure(&callbacks, "recipient `age1test1…`", "error".into()).to_string();
        assert_eq!(
            e,
            "`age-plugin-test` (for recipient `age1test1…`) asked for \"PIN for key 1\" and got no answer (no terminal to ask on, or the question was cancelled)"
        );
    }

    #[test]
    fn a_name_that_is_a_path_is_never_looked_up() {
        // `age-plugin-../../../bin/sh` would be taken as a path as it is.
        assert_eq!(find("../../../bin/sh"), None);
        assert_eq!(find(""), None);
    }

    struct Scripted;
    impl PluginUi for Scripted {
        fn message(&self, _: &str, _: &str) {}
        fn confirm(&self, plugin: &str, _: &str, _: &str, _: Option<&str>) -> Option<bool> {
            Some(plugin == "age-plugin-test")
        }
        fn request_public(&self, plugin: &str, description: &str) -> Option<String> {
            Some(format!("{plugin}:{description}"))
        }
        fn request_secret(&self, _: &str, _: &str) -> Option<SecretString> {
            Some(SecretString::from("1234"))
        }
    }

    #[test]
    fn questions_reach_the_ui_with_the_program_name() {
        use secrecy::ExposeSecret;
        let callbacks = Callbacks {
            program: program_name("test"),
            ui: Some(Arc::new(Scripted)),
            unanswered: Arc::default(),
        };
        assert_eq!(
            callbacks.request_public_string("serial").as_deref(),
            Some("age-plugin-test:serial")
        );
        assert_eq!(callbacks.confirm("sure?", "yes", Some("no")), Some(true));
        assert_eq!(
            callbacks.request_passphrase("PIN").unwrap().expose_secret(),
            "1234"
        );
        assert!(callbacks.unanswered().is_none());
        let e = failure(&callbacks, "x", "bad PIN".into()).to_string();
        assert_eq!(e, "`age-plugin-test` failed for x: bad PIN");
    }
}
