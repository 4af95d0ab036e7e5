//! Rules for names that become path components or lookup keys.
//!
//! Artifact, file, prompt, target and backend names end up in directory and
//! file names (`$out/<file>`, `secrets/per-machine/<m>/<artifact>/…`), so they
//! must not be able to leave the directory they are joined to. Spaces, dots,
//! underscores and mixed case are allowed, as upstream nixos-artifacts allows them.

/// The longest name, in bytes. Names become file names (with suffixes such
/// as `.age`, at most 255 bytes on Linux), SOPS keys and environment
/// variable names; no declaration needs more.
pub const MAX_NAME_LEN: usize = 128;

/// The suffix that makes sops leave a key, and everything under it, in
/// plaintext (sops' default `unencrypted_suffix`).
pub const SOPS_UNENCRYPTED_SUFFIX: &str = "_unencrypted";

/// Characters that are invisible or reorder text when printed: format
/// characters (bidirectional overrides and isolates, zero-width ones, the
/// byte order mark, tags) and line and paragraph separators.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{AD}' | '\u{61C}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E007F}')
}

/// Checks one name; returns what is wrong with it, in words.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name is empty".into());
    }
    if name.contains('\0') {
        return Err("name contains a NUL byte".into());
    }
    if name.chars().any(|c| c.is_control() || is_invisible(c)) {
        return Err(format!(
            "name {} contains a control, invisible or bidirectional character",
            escape_for_message(name)
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "name {} is {} bytes long (at most {MAX_NAME_LEN})",
            escape_for_message(&shorten(name)),
            name.len()
        ));
    }
    // Escaped on error only: every declared name is checked on every run.
    let shown = || escape_for_message(name);
    if name == "." || name == ".." || name.contains("..") {
        return Err(format!("name {} contains `..`", shown()));
    }
    if name.contains('/') {
        return Err(format!("name {} contains `/`", shown()));
    }
    if name.starts_with('-') {
        return Err(format!(
            "name {} starts with `-` (it would read as an option)",
            shown()
        ));
    }
    if name.trim() != name {
        return Err(format!(
            "name {} has leading or trailing whitespace",
            shown()
        ));
    }
    Ok(())
}

/// The longest tanka environment path (`a/b/c`), in bytes: it becomes a
/// directory below `environments/` and `public/tanka/`, a lock scope and a
/// label, and no layout needs more.
pub const MAX_ENVIRONMENT_LEN: usize = 255;

/// Checks a tanka environment's name: its path below `environments/`, as
/// tanka finds it (`default`, `prod/eu`). Each `/`-separated component is a
/// name by [`check_name`]; no empty component (`a//b`, a leading or trailing
/// `/`), and no leading `environments/`, which would name a second,
/// different environment (`environments/environments/…`) than the one meant.
pub fn check_environment_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name is empty".into());
    }
    let shown = || escape_for_message(&shorten(name));
    if name.len() > MAX_ENVIRONMENT_LEN {
        return Err(format!(
            "name {} is {} bytes long (at most {MAX_ENVIRONMENT_LEN})",
            shown(),
            name.len()
        ));
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err(format!(
            "name {} has an empty path component (a leading, trailing or doubled `/`)",
            shown()
        ));
    }
    if name.split('/').next() == Some("environments") && name.contains('/') {
        return Err(format!(
            "name {} starts with `environments/`; name the environment by its path below `environments/` ({})",
            shown(),
            escape_for_message(&name["environments/".len()..])
        ));
    }
    for component in name.split('/') {
        if component == "." {
            return Err(format!("name {} contains the component `.`", shown()));
        }
        // The parent environment's store file is `<parent>/secrets.sops.yaml`.
        if component == "secrets.sops.yaml" {
            return Err(format!(
                "name {} has the component `secrets.sops.yaml`, the name of an environment's store file",
                shown()
            ));
        }
        check_name(component).map_err(|message| {
            if name.contains('/') {
                let what = message.strip_prefix("name ").unwrap_or(&message);
                format!("name {}: component {what}", shown())
            } else {
                message
            }
        })?;
    }
    Ok(())
}

/// Checks a target's name: a tanka environment's by
/// [`check_environment_name`], a NixOS machine's or Home Manager user's by
/// [`check_name`].
pub fn check_target_name(kind: crate::TargetKind, name: &str) -> Result<(), String> {
    match kind {
        crate::TargetKind::Tanka => check_environment_name(name),
        crate::TargetKind::Nixos | crate::TargetKind::Home => check_name(name),
    }
}

/// Checks the name of an artifact or of one of its files: [`check_name`],
/// and no clash with what SOPS files give meaning to, since the SOPS-based
/// backends store `<artifact>: {<file>: value}`.
pub fn check_stored_name(name: &str) -> Result<(), String> {
    check_name(name)?;
    if name == "sops" {
        return Err(
            "name `sops` is reserved: SOPS files keep their metadata under the key `sops`".into(),
        );
    }
    if name.ends_with(SOPS_UNENCRYPTED_SUFFIX) {
        return Err(format!(
            "name {} ends in `{SOPS_UNENCRYPTED_SUFFIX}`, which makes sops store the value in plaintext",
            escape_for_message(name)
        ));
    }
    Ok(())
}

/// The first 40 characters of a long text, with `…` when cut.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
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

/// Shows a string in an error message, in backticks, with control,
/// invisible and bidirectional characters escaped (`\u{202e}`).
pub fn escape_for_message(text: &str) -> String {
    format!("`{}`", escape(text))
}

/// `text` with control, invisible and bidirectional characters escaped, so
/// that printing it cannot hide or reorder anything.
pub fn escape(text: &str) -> String {
    escape_but(text, None)
}

/// [`escape`], except for line breaks: for multi-line messages (a parser's
/// message quoting a source line).
pub fn escape_multiline(text: &str) -> String {
    escape_but(text, Some('\n'))
}

fn escape_but(text: &str, keep: Option<char>) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if Some(c) == keep {
            out.push(c);
        } else if is_invisible(c) {
            out.extend(c.escape_unicode());
        } else if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
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
    fn rejects_long_names_and_invisible_characters_and_escapes_them() {
        assert_eq!(check_name(&"a".repeat(MAX_NAME_LEN)), Ok(()));
        let e = check_name(&"a".repeat(300)).unwrap_err();
        assert!(e.contains("300 bytes long (at most 128)"), "{e}");
        assert!(e.len() < 120, "{e}");
        for name in [
            "pay\u{202E}gpj.exe",
            "a\u{200B}b",
            "x\u{2066}y",
            "\u{FEFF}bom",
        ] {
            let e = check_name(name).unwrap_err();
            assert!(e.contains("bidirectional"), "{e}");
            assert!(!e.chars().any(is_invisible), "{e:?} prints it raw");
        }
        assert_eq!(escape("a\u{202E}b\n'"), "a\\u{202e}b\\n'");
    }

    #[test]
    fn environment_names_are_paths_of_names() {
        for name in [
            "default",
            "prod/eu",
            "a/b/c",
            "prom-grafana/dev",
            "environments",
        ] {
            assert_eq!(check_environment_name(name), Ok(()), "{name}");
        }
        for (name, expected) in [
            ("", "empty"),
            ("../x", "`..`"),
            ("a/../x", "`..`"),
            ("a//b", "empty path component"),
            ("/a", "empty path component"),
            ("a/", "empty path component"),
            ("a/./b", "component `.`"),
            ("./a", "component `.`"),
            ("a/-rf", "starts with `-`"),
            ("a/b\u{202E}c", "bidirectional"),
            ("environments/prod", "below `environments/` (`prod`)"),
            ("prod/secrets.sops.yaml", "store file"),
        ] {
            let e = check_environment_name(name).unwrap_err();
            assert!(e.contains(expected), "{name:?}: {e}");
        }
        let long = ["a".repeat(100), "b".repeat(100), "c".repeat(100)].join("/");
        let e = check_environment_name(&long).unwrap_err();
        assert!(e.contains("302 bytes long (at most 255)"), "{e}");
        // Machines and users stay single names.
        assert!(check_target_name(crate::TargetKind::Nixos, "a/b").is_err());
        assert!(check_target_name(crate::TargetKind::Home, "a/b").is_err());
        assert_eq!(check_target_name(crate::TargetKind::Tanka, "a/b"), Ok(()));
    }

    #[test]
    fn stored_names_must_not_clash_with_sops() {
        assert_eq!(check_stored_name("db"), Ok(()));
        assert_eq!(check_stored_name("sops-key"), Ok(()));
        assert!(check_stored_name("sops").unwrap_err().contains("reserved"));
        let e = check_stored_name("token_unencrypted").unwrap_err();
        assert!(e.contains("plaintext"), "{e}");
        assert!(check_stored_name("a/b").is_err());
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
