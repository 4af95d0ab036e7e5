//! Inputs the `sops_parse` fuzz target (`fuzz/`, run by `scripts/fuzz-sops`)
//! once failed on, in `tests/vectors/fuzz/`, run through the same checks so
//! the bugs stay fixed. Each file is named after the bug it found.

#[path = "../fuzz/check.rs"]
mod check;

use std::path::Path;

#[test]
fn inputs_the_fuzzer_broke_once_pass_its_checks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/fuzz");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Err(e) = std::panic::catch_unwind(|| check::check(&data)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{name}: {msg}");
        }
        n += 1;
    }
    assert!(n > 0, "no vectors in {}", dir.display());
}
