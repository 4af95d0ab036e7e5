//! The plan and the lock, through the library: which units a model gives,
//! in which order, and how a lock entry compares with the declaration
//! (until now only checked through the binary).

use artifacts_engine::error::PlanError;
use artifacts_engine::lock::{Comparison, Lock, Provenance};
use artifacts_engine::{Plan, Targets, UnitId};
use artifacts_model::Model;
use artifacts_model::load::load_manifest;

/// A project in a temp dir: the manifest, and generator scripts `gen.sh`
/// and `other.sh` (different content).
fn project(manifest: &str) -> (tempfile::TempDir, Model) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gen.sh"), "#!/bin/sh\necho one\n").unwrap();
    std::fs::write(dir.path().join("other.sh"), "#!/bin/sh\necho two\n").unwrap();
    let path = dir.path().join("artifacts.toml");
    std::fs::write(&path, manifest).unwrap();
    let model = load_manifest(&path).unwrap();
    (dir, model)
}

fn labels(plan: &Plan<'_>) -> Vec<String> {
    plan.units().map(|u| u.label()).collect()
}

const FLEET: &str = r#"
default.backend = "plain"
[nixos.web1]
[nixos.web2]

[artifacts.token]
targets = ["web1", "web2"]
generator = "gen.sh"
files.token = {}

[artifacts.psk]
shared = true
targets = ["web1", "web2"]
generator = "gen.sh"
files.key = {}
"#;

#[test]
fn a_shared_artifact_is_one_unit_for_all_its_targets_others_one_per_target() {
    let (_dir, model) = project(FLEET);
    let plan = Plan::new(&model).unwrap();
    let mut got = labels(&plan);
    got.sort();
    assert_eq!(got, ["nixos/web1 token", "nixos/web2 token", "shared psk"]);
    let shared = plan.units().find(|u| u.scope() == "shared").unwrap();
    assert!(matches!(&shared.targets, Targets::Shared(all) if all.len() == 2));
    assert!(
        plan.units()
            .filter(|u| u.name() == "token")
            .all(|u| matches!(u.targets, Targets::One(_)))
    );
}

#[test]
fn dependencies_come_first_whatever_the_declaration_order() {
    let (_dir, model) = project(
        r#"
default.backend = "plain"
[nixos.m]
[artifacts.cert]
targets = ["m"]
generator = "gen.sh"
dependencies = ["ca"]
files.cert = {}
[artifacts.bundle]
targets = ["m"]
generator = "gen.sh"
dependencies = ["cert"]
files.bundle = {}
[artifacts.ca]
targets = ["m"]
generator = "gen.sh"
files.ca = {}
"#,
    );
    let plan = Plan::new(&model).unwrap();
    assert_eq!(
        labels(&plan),
        ["nixos/m ca", "nixos/m cert", "nixos/m bundle"]
    );
    // Regenerating the CA touches everything built from it, transitively.
    let ids: Vec<UnitId> = plan.iter().map(|(id, _)| id).collect();
    let dependents: Vec<String> = plan
        .dependents_of(ids[0])
        .into_iter()
        .map(|id| plan[id].label())
        .collect();
    assert_eq!(dependents, ["nixos/m cert", "nixos/m bundle"]);
    assert!(plan.dependents_of(ids[2]).is_empty());
}

#[test]
fn a_dependency_cycle_is_refused_naming_its_units() {
    let (_dir, model) = project(
        r#"
default.backend = "plain"
[nixos.m]
[artifacts.a]
targets = ["m"]
generator = "gen.sh"
dependencies = ["b"]
files.a = {}
[artifacts.b]
targets = ["m"]
generator = "gen.sh"
dependencies = ["a"]
files.b = {}
"#,
    );
    match Plan::new(&model) {
        Err(error @ PlanError::Cycle(_)) => {
            let text = error.to_string();
            assert!(
                text.contains("nixos/m a") && text.contains("nixos/m b"),
                "{text}"
            );
        }
        other => panic!("expected a cycle, got {other:?}"),
    }
}

/// Records every unit of `recorded` in a lock (saved and read back), then
/// compares the unit `key` of `manifest` with its entry.
fn compare(recorded: &str, manifest: &str) -> Comparison {
    compare_from(recorded, manifest, None)
}

/// [`compare`] for entries recorded as `provenance` says (`None`: generated).
fn compare_from(recorded: &str, manifest: &str, provenance: Option<Provenance>) -> Comparison {
    let (dir, before) = project(recorded);
    let lock_path = dir.path().join(Lock::FILE_NAME);
    let mut lock = Lock::load(&lock_path).unwrap();
    let plan = Plan::new(&before).unwrap();
    for unit in plan.units() {
        let entry = unit.declared(&plan, &lock).unwrap().entry_from(
            "plain",
            Some("2026-01-01T00:00:00Z".into()),
            provenance,
        );
        lock.set(&unit.scope(), unit.name(), entry);
    }
    lock.save().unwrap();
    let lock = Lock::load(&lock_path).unwrap();
    std::fs::write(dir.path().join("artifacts.toml"), manifest).unwrap();
    let after = load_manifest(&dir.path().join("artifacts.toml")).unwrap();
    let plan = Plan::new(&after).unwrap();
    let unit = plan.units().find(|u| u.name() == "key").unwrap();
    let entry = lock.get(&unit.scope(), unit.name()).unwrap();
    let compared = unit.declared(&plan, &lock).unwrap().compare(entry);
    // What `check` asks, which compares with the declaration's digests in
    // place once they are known (as they are now), says the same.
    assert_eq!(
        unit.compare_declared(&plan, &lock, entry).unwrap(),
        compared
    );
    compared
}

fn single(generator: &str, file: &str) -> String {
    format!(
        "default.backend = \"plain\"\n[nixos.m]\n[artifacts.key]\ntargets = [\"m\"]\n\
         generator = \"{generator}\"\nfiles.key = {file}\n"
    )
}

#[test]
fn a_lock_entry_is_current_until_what_makes_the_secret_changes() {
    let base = single("gen.sh", "{}");
    assert_eq!(
        compare(&base, &base),
        Comparison::Current {
            placement_changed: false
        }
    );
    // Where the file goes is placed at activation: never stale.
    assert_eq!(
        compare(&base, &single("gen.sh", "{ mode = \"0440\" }")),
        Comparison::Current {
            placement_changed: true
        }
    );
    assert_eq!(
        compare(&base, &single("other.sh", "{}")),
        Comparison::Changed("the generator changed since generation".into())
    );
}

#[test]
fn a_value_put_in_by_hand_is_stale_only_when_its_files_change() {
    let base = single("gen.sh", "{}");
    let by_hand = |manifest: &str| compare_from(&base, manifest, Some(Provenance::Set));
    let current = Comparison::Current {
        placement_changed: false,
    };
    // No generator or prompt made it: changing them changes nothing.
    assert_eq!(by_hand(&single("other.sh", "{}")), current);
    let prompted = format!("{}prompts.pw = {{}}\n", single("gen.sh", "{}"));
    assert_eq!(by_hand(&prompted), current);
    // The same changes make a generated value stale.
    assert!(matches!(compare(&base, &prompted), Comparison::Changed(_)));
    // Its files are what it must consist of.
    assert_eq!(
        by_hand(&single("gen.sh", "{ secret = false }")),
        Comparison::Changed(
            "the declared files or targets changed since the value was put in by hand (set)".into()
        )
    );
}

#[test]
fn an_entry_made_before_its_dependency_was_regenerated_is_not_current() {
    let (dir, model) = project(
        r#"
default.backend = "plain"
[nixos.m]
[artifacts.ca]
targets = ["m"]
generator = "gen.sh"
files.ca = {}
[artifacts.key]
targets = ["m"]
generator = "gen.sh"
dependencies = ["ca"]
files.key = {}
"#,
    );
    let plan = Plan::new(&model).unwrap();
    let mut lock = Lock::load(&dir.path().join(Lock::FILE_NAME)).unwrap();
    for (unit, at) in plan
        .units()
        .zip(["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"])
    {
        let entry = unit
            .declared(&plan, &lock)
            .unwrap()
            .entry("plain", Some(at.into()));
        lock.set(&unit.scope(), unit.name(), entry);
    }
    let key = plan.units().nth(1).unwrap();
    let recorded = lock.get(&key.scope(), key.name()).unwrap().clone();
    assert!(matches!(
        key.declared(&plan, &lock).unwrap().compare(&recorded),
        Comparison::Current { .. }
    ));
    // The CA is regenerated: the key was made from the old one.
    let ca = plan.units().next().unwrap();
    let mut regenerated = lock.get(&ca.scope(), ca.name()).unwrap().clone();
    regenerated.generated_at = Some("2026-02-01T00:00:00Z".into());
    lock.set(&ca.scope(), ca.name(), regenerated);
    assert_eq!(
        key.declared(&plan, &lock).unwrap().compare(&recorded),
        Comparison::DependencyRegenerated("dependency `nixos/m ca` was regenerated since".into())
    );
}

#[test]
fn a_lock_from_a_newer_version_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(Lock::FILE_NAME);
    std::fs::write(&path, r#"{"version": 3, "entries": {}}"#).unwrap();
    let error = Lock::load(&path).unwrap_err().to_string();
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert!(error.contains("version 3 is not supported"), "{error}");
}

/// Without dependencies the plan is the declaration order (shared units
/// first), nothing has dependents, and every backend a unit uses is known.
#[test]
fn a_plan_without_dependencies_keeps_the_declaration_order() {
    let (_dir, model) = project(
        r#"
default.backend = "plain"
[nixos.m2]
[nixos.m1]
default.backend = "other"
[artifacts.z]
targets = ["m2", "m1"]
generator = "gen.sh"
files.z = {}
[artifacts.psk]
shared = true
targets = ["m2", "m1"]
generator = "gen.sh"
files.key = {}
[artifacts.a]
targets = ["m1", "m2"]
generator = "gen.sh"
files.a = {}
"#,
    );
    let plan = Plan::new(&model).unwrap();
    assert_eq!(
        labels(&plan),
        [
            "shared psk",
            "nixos/m2 z",
            "nixos/m2 a",
            "nixos/m1 z",
            "nixos/m1 a"
        ]
    );
    assert!(plan.iter().all(|(id, _)| plan.dependents_of(id).is_empty()));
    assert!(plan.uses_backend("plain") && plan.uses_backend("other"));
    assert!(!plan.uses_backend("gen.sh"));
}
