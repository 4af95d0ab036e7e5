//! The checks the `manifest_parse` fuzz target runs on each input, shared
//! with `tests/fuzz_manifest.rs` (a bounded, fixed-seed run on stable Rust
//! that CI runs). See `fuzz_targets/manifest_parse.rs`.

use std::path::Path;

use artifacts_model::load::load_manifest_text;
use artifacts_model::names::{check_name, check_target_name, is_invisible};
use artifacts_model::validate::validate;

/// Reads `data` as a TOML, JSON and YAML manifest and validates what loads;
/// panics on a bug.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for name in ["artifacts.toml", "artifacts.json", "artifacts.yaml"] {
        let path = Path::new("/fuzz").join(name);
        let message = match load_manifest_text(&path, text) {
            Err(e) => e.to_string(),
            Ok(model) => match validate(&model, &["agenix", "sops-nix", "dummy"]) {
                Err(e) => e.to_string(),
                Ok(()) => {
                    // What validates has only names every store can hold.
                    for target in &model.targets {
                        assert_eq!(check_target_name(target.id.kind, &target.id.name), Ok(()));
                        for (artifact_name, artifact) in &target.artifacts {
                            assert_eq!(check_name(artifact_name), Ok(()));
                            for file in artifact.files.keys() {
                                assert_eq!(check_name(file), Ok(()));
                            }
                            for prompt in artifact.prompts.keys() {
                                assert_eq!(check_name(prompt), Ok(()));
                            }
                        }
                    }
                    continue;
                }
            },
        };
        // Messages quote names and source text: nothing may print raw that
        // hides or reorders what is shown.
        assert!(
            !message.chars().any(is_invisible),
            "{name}: a message prints an invisible character raw: {message:?}"
        );
    }
}
