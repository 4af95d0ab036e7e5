//! `backend.toml` validation, through the library: what a valid file gives,
//! and every kind of mistake refused naming the file, backend, section and
//! key (until now mostly checked through the binary).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use artifacts_engine::BackendRegistry;
use artifacts_engine::error::BackendError;
use artifacts_model::Context;

/// A project with executable scripts `check`, `serialize`, `deserialize`,
/// a non-executable `plain.txt`, and `backend.toml` = `config`.
fn project(config: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for script in ["check", "serialize", "deserialize"] {
        let path = dir.path().join(script);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(dir.path().join("plain.txt"), "").unwrap();
    let path = dir.path().join("backend.toml");
    std::fs::write(&path, config).unwrap();
    (dir, path)
}

fn error(config: &str) -> String {
    let (dir, path) = project(config);
    let text = BackendRegistry::load(&path).unwrap_err().to_string();
    text.replace(&dir.path().display().to_string(), "/p")
}

#[test]
fn a_valid_file_gives_its_backends_sections_and_capabilities() {
    let (_dir, path) = project(
        r#"
[store.nixos]
check = "./check"
serialize = "./serialize"
deserialize = "./deserialize"
[store.home]
enabled = false
check = "./check"
serialize = "./serialize"
[pass.shared]
"#,
    );
    let registry = BackendRegistry::load(&path).unwrap();
    assert_eq!(registry.names(), ["store", "pass"]);
    let store = registry.get("store").unwrap();
    assert!(!store.is_shipped());
    assert!(store.section(Context::Nixos).unwrap().scripts.is_some());
    // A disabled section serves nothing, like an absent one.
    assert!(store.section(Context::HomeManager).is_none());
    assert!(store.section(Context::Shared).is_none());
    let pass = registry.get("pass").unwrap();
    // A section without scripts is a passthrough: nothing is stored.
    assert!(pass.section(Context::Shared).unwrap().scripts.is_none());
}

#[test]
fn scripts_come_as_a_pair_and_must_be_executable_files() {
    assert_eq!(
        error("[b.nixos]\ncheck = \"./check\"\n"),
        "backend config `/p/backend.toml`: [b.nixos] check requires serialize"
    );
    assert_eq!(
        error("[b.nixos]\nserialize = \"./serialize\"\n"),
        "backend config `/p/backend.toml`: [b.nixos] serialize requires check"
    );
    assert_eq!(
        error("[b.nixos]\ndeserialize = \"./deserialize\"\n"),
        "backend config `/p/backend.toml`: [b.nixos] has deserialize, list, writable or check-all but no check and serialize"
    );
    // check-all answers for one target: not for shared artifacts.
    assert_eq!(
        error(
            "[b.shared]\ncheck = \"./check\"\nserialize = \"./serialize\"\ncheck-all = \"./check\"\n"
        ),
        "backend config `/p/backend.toml`: [b.shared] check-all answers for one target, and shared artifacts have many: declare it in the nixos, home or tanka section"
    );
    let (dir, path) = project("[b.nixos]\ncheck = \"./plain.txt\"\nserialize = \"./missing\"\n");
    match BackendRegistry::load(&path).unwrap_err() {
        BackendError::Script {
            backend,
            section,
            key,
            script,
            ..
        } => {
            assert_eq!((backend.as_str(), section, key), ("b", "nixos", "check"));
            assert_eq!(script, dir.path().join("./plain.txt"));
        }
        other => panic!("expected a script error, got {other}"),
    }
    let text = error("[b.nixos]\ncheck = \"./check\"\nserialize = \"./missing\"\n");
    assert!(
        text.contains("[b.nixos] serialize script `/p/./missing` does not exist"),
        "{text}"
    );
}

#[test]
fn unknown_sections_keys_and_wrong_types_are_named() {
    let text = error("[b.darwin]\n");
    assert!(
        text.contains("unknown key `b.darwin`: expected sections nixos, home, shared or tanka"),
        "{text}"
    );
    // The flat format of old upstream versions gets a hint.
    let text = error("[b]\ncheck_serialization = \"./check\"\n");
    assert!(text.contains("old flat format"), "{text}");
    let text = error("[b.nixos]\nchek = \"./check\"\n");
    assert!(text.contains("unknown key `chek` in [b.nixos]"), "{text}");
    let text = error("[b.nixos]\nenabled = \"yes\"\n");
    assert!(
        text.contains("[b.nixos] enabled must be true or false"),
        "{text}"
    );
    let text = error("[b.nixos]\ncheck = 1\nserialize = \"./serialize\"\n");
    assert!(
        text.contains("[b.nixos] check must be a path string"),
        "{text}"
    );
}

#[test]
fn a_backend_defined_twice_or_a_circular_include_is_refused() {
    let (dir, path) = project("include = [\"./other.toml\"]\n[b.nixos]\n");
    std::fs::write(dir.path().join("other.toml"), "[b.home]\n").unwrap();
    let text = BackendRegistry::load(&path).unwrap_err().to_string();
    assert!(text.starts_with("backend `b` is defined twice"), "{text}");

    let (dir, path) = project("include = [\"./other.toml\"]\n");
    std::fs::write(
        dir.path().join("other.toml"),
        "include = [\"./backend.toml\"]\n",
    )
    .unwrap();
    let error = BackendRegistry::load(&path).unwrap_err();
    assert!(
        matches!(&error, BackendError::CircularInclude { chain } if chain.len() >= 2),
        "{error}"
    );
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backend.toml");
    let error = BackendRegistry::load(Path::new(&path)).unwrap_err();
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}
