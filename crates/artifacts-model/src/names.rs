//! Rules for names that become path components or lookup keys.
//!
//! Artifact, file, prompt, target and backend names end up in directory and
//! file names (`$out/<file>`, `secrets/per-machine/<m>/<artifact>/…`), so they
//! must not be able to leave the directory they are joined to. Spaces, dots,
//! underscores and mixed case are allowed, as upstream nixos-artifacts allows them.

/// Checks one name; returns what is wrong with it, in words.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name is empty".into());
    }
    if name == "." || name == ".." || name.contains("..") {
        return Err(format!("name `{name}` contains `..`"));
    }
    if name.contains('/') {
        return Err(format!("name `{name}` contains `/`"));
    }
    if name.contains('\0') {
        return Err("name contains a NUL byte".into());
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "name {} contains a control character",
            escape_for_message(name)
        ));
    }
    if name.starts_with('-') {
        return Err(format!(
            "name `{name}` starts with `-` (it would read as an option)"
        ));
    }
    if name.trim() != name {
        return Err(format!("name `{name}` has leading or trailing whitespace"));
    }
    Ok(())
}

/// Checks an owner or group name.
pub fn check_account(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(format!(
            "{} is not a valid user or group name",
            escape_for_message(name)
        ));
    }
    Ok(())
}

/// Shows a string in an error message with control characters escaped.
pub fn escape_for_message(text: &str) -> String {
    format!("`{}`", text.escape_debug())
}

/// The environment variable carrying a prompt's answer:
/// `ARTIFACTS_PROMPT_<ARTIFACT>_<PROMPT>`, upper-cased, every other
/// character than ASCII letters and digits replaced by `_`.
pub fn prompt_variable(artifact: &str, prompt: &str) -> String {
    let mut name = String::from("ARTIFACTS_PROMPT_");
    push_upper(&mut name, artifact);
    name.push('_');
    push_upper(&mut name, prompt);
    name
}

fn push_upper(into: &mut String, text: &str) {
    into.extend(text.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_upstream_accepts() {
        for name in [
            "ssh",
            "db.password",
            "my_key",
            "my-key",
            "camelCase",
            "with space",
            "a.b",
        ] {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_names_that_leave_their_directory_or_read_as_options() {
        for name in [
            "", ".", "..", "a/b", "../x", "a..b", "-rf", "a\0b", "a\nb", " lead",
        ] {
            assert!(check_name(name).is_err(), "{name:?} accepted");
        }
    }

    #[test]
    fn prompt_variable_upper_cases_and_replaces() {
        assert_eq!(
            prompt_variable("db.password", "admin-pass"),
            "ARTIFACTS_PROMPT_DB_PASSWORD_ADMIN_PASS"
        );
        assert_eq!(
            prompt_variable("camelCase", "x y"),
            "ARTIFACTS_PROMPT_CAMELCASE_X_Y"
        );
    }
}
