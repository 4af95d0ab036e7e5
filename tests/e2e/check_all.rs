//! `check-all`, the optional batch entry point of the backend contract: one
//! run per target answering for all its artifacts as JSON lines, used when
//! declared, its answer validated strictly (see BACKEND_GUIDE.md).

use crate::util::Project;

/// A backend `batch` storing `store/<machine>-<artifact>`: `check` logs each
/// run to `calls/check`, `check-all` each run to `calls/check-all`, and
/// answers as `check-all-mode` says (`ok` by default).
fn batch_project(name: &str) -> Project {
    let p = Project::new(name);
    p.script(
        "b/check",
        r#"#!/bin/sh
echo "$machine $artifact" >> calls/check
[ -f "store/$machine-$artifact" ] && exit 0
exit 1
"#,
    );
    p.script(
        "b/serialize",
        "#!/bin/sh\nset -eu\nmkdir -p store\ncp \"$out/f\" \"store/$machine-$artifact\"\n",
    );
    p.script(
        "b/check-all",
        r#"#!/bin/sh
set -eu
echo "$machine" >> calls/check-all
mode=$(cat check-all-mode 2>/dev/null || echo ok)
for name in $(jq -r '.artifacts | keys[]' "$artifacts"); do
  # Each artifact arrives with its declared files, as $inputs has them.
  [ "$(jq -r --arg a "$name" '.artifacts[$a].files.f.secret' "$artifacts")" = true ] || exit 9
  status=missing
  [ -f "store/$machine-$name" ] && status=stored
  echo "{\"artifact\": \"$name\", \"status\": \"$status\"}"
  case $mode in
    twice) echo "{\"artifact\": \"$name\", \"status\": \"$status\"}" ;;
    extra) echo '{"artifact": "a1", "status": "stored", "note": "x"}'; exit 0 ;;
    unknown) echo '{"artifact": "zz", "status": "stored"}' ;;
    short) exit 0 ;;
    fail) echo "store unreachable" >&2; exit 2 ;;
  esac
done
"#,
    );
    p.file(
        "backend.toml",
        "[batch.nixos]\ncheck = \"./b/check\"\nserialize = \"./b/serialize\"\ncheck-all = \"./b/check-all\"\n",
    );
    p.generator("f.sh", r#"echo x > "$out/f""#);
    let mut manifest = String::from("default.backend = \"batch\"\n");
    for artifact in ["a1", "a2", "a3"] {
        manifest.push_str(&format!(
            "[artifacts.{artifact}]\ntargets = [\"m1\", \"m2\"]\ngenerator = \"generators/f.sh\"\nfiles.f = {{}}\n"
        ));
    }
    p.manifest(&manifest);
    std::fs::create_dir(p.root.join("calls")).unwrap();
    p
}

fn calls(p: &Project, script: &str) -> Vec<String> {
    std::fs::read_to_string(p.root.join("calls").join(script))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The `target artifact` of each artifact of a `--json` report with `status`.
fn statuses(report: &serde_json::Value, status: &str) -> Vec<String> {
    report["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .filter(|a| a["status"] == status)
        .map(|a| {
            format!(
                "{} {}",
                a["targets"][0].as_str().unwrap_or_default(),
                a["artifact"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

fn reset_calls(p: &Project) {
    for script in ["check", "check-all"] {
        let _ = std::fs::remove_file(p.root.join("calls").join(script));
    }
}

/// One `check-all` run per target answers for all its artifacts: `check`
/// never runs, and each answer lands on its own artifact.
#[test]
fn check_all_answers_for_every_artifact_of_a_target_in_one_run() {
    let p = batch_project("check_all_answers_for_every_artifact_of_a_target_in_one_run");
    p.run(["generate"]).success();
    reset_calls(&p);
    p.run(["check"]).success();
    let mut batched = calls(&p, "check-all");
    batched.sort();
    assert_eq!(batched, ["m1", "m2"]);
    assert!(calls(&p, "check").is_empty(), "{:?}", calls(&p, "check"));

    std::fs::remove_file(p.root.join("store/m2-a2")).unwrap();
    reset_calls(&p);
    let report = p.run(["check", "--json"]).code(1).json();
    assert_eq!(statuses(&report, "ok").len(), 5, "{report:#}");
    assert_eq!(statuses(&report, "missing"), ["nixos/m2 a2"], "{report:#}");
    assert_eq!(calls(&p, "check-all").len(), 2);
}

/// An answer that breaks the contract is an error for every artifact of
/// that target (here both targets' answers break it), naming the script and
/// the line, never "missing".
#[test]
fn check_all_answers_are_validated_strictly() {
    let p = batch_project("check_all_answers_are_validated_strictly");
    p.run(["generate"]).success();
    let cases = [
        ("twice", "line 2 answers for `a1` a second time"),
        (
            "extra",
            "line 2 needs exactly the string fields `artifact` and `status`",
        ),
        (
            "unknown",
            "line 2 answers for an artifact that was not asked about",
        ),
        ("short", "no answer for `a2`, `a3`"),
        ("fail", "store unreachable"),
    ];
    for (mode, reason) in cases {
        p.file("check-all-mode", mode);
        let run = p.run(["check", "--json"]);
        let report = run.code(2).json();
        assert_eq!(statuses(&report, "error").len(), 6, "{mode}: {report:#}");
        let text = report.to_string();
        assert!(
            text.contains("b/check-all") && text.contains(reason),
            "{mode}: {report:#}"
        );
    }
}
