//! `rekey` of the agenix store in batches (issue 17): a round's new
//! generations are staged, one sync makes them all durable, then each is
//! swapped in; the next round rewrites the generations swapped out.
//! Killed at any step, every artifact is its old generation or its new
//! one, whole, the secret values never change, and the next run finishes
//! the job and removes what the killed one left. A round syncs once per
//! file system and once per directory, not once per file.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use crate::tools::{Key, artifacts_keygen, tool};
use crate::util::{Project, Run, copy_tree};

const MACHINES: [&str; 2] = ["m1", "m2"];

/// The artifacts of every machine and their secret files: several files
/// (a generation is all of them together) and one. Five a machine: more
/// than one round, so later rounds reuse the previous generations of
/// others, with other files.
const ARTIFACTS: [(&str, &[&str]); 5] = [
    ("multi", &["a", "b", "c"]),
    ("one", &["t"]),
    ("two", &["t"]),
    ("three", &["t"]),
    ("four", &["x", "y"]),
];

/// Two machines whose agenix files are encrypted to `key`.
fn manifest(key: &str) -> String {
    crate::util::agenix_manifest(key, &MACHINES, &ARTIFACTS)
}

/// A project stored for `old` and then declared for `new`; returns the
/// keys and a copy of the store as generated.
fn project(name: &str) -> (Project, Key, Key, PathBuf) {
    let p = Project::new(name);
    let old = artifacts_keygen(&p, "old.key");
    let new = artifacts_keygen(&p, "new.key");
    for (artifact, files) in ARTIFACTS {
        // One random value per generation, written to each of its files.
        let mut body = String::from("t=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \\n')\n");
        for file in files {
            body.push_str(&format!("echo \"$t\" > \"$out/{file}\"\n"));
        }
        p.generator(&format!("{artifact}.sh"), &body);
    }
    p.manifest(&manifest(&old.public));
    p.run(["generate"]).success();
    p.manifest(&manifest(&new.public));
    p.run(["check"]).code(1).stdout_has("recipients changed");
    let pristine = p.home.join("pristine-secrets");
    copy_tree(&p.root.join("secrets"), &pristine);
    (p, old, new, pristine)
}

/// Puts the store back as generated (every artifact encrypted to the old key).
fn reset(p: &Project, pristine: &Path) {
    fs::remove_dir_all(p.root.join("secrets")).unwrap();
    copy_tree(pristine, &p.root.join("secrets"));
}

/// Each artifact of each machine: which key its `.recipients` names
/// (`"old"` or `"new"`) and the value of its files, decrypted with that
/// key; panics unless every file of the artifact decrypts to one value.
fn seen(p: &Project, old: &Key, new: &Key, step: &str) -> Vec<(String, &'static str, String)> {
    let mut out = Vec::new();
    for m in MACHINES {
        for (artifact, files) in ARTIFACTS {
            let dir = p.root.join(format!("secrets/per-machine/{m}/{artifact}"));
            let recipients = fs::read_to_string(dir.join(".recipients"))
                .unwrap_or_else(|e| panic!("{step}: {m}/{artifact}/.recipients: {e}"));
            let (which, key) = if recipients.trim() == old.public {
                ("old", old)
            } else if recipients.trim() == new.public {
                ("new", new)
            } else {
                panic!("{step}: {m}/{artifact} is encrypted to {recipients:?}")
            };
            let label = format!("{step}: {m}/{artifact} ({which} key)");
            let value = crate::util::agenix_value(&dir, files, key, &label);
            out.push((format!("{m}/{artifact}"), which, value));
        }
    }
    out
}

/// Hidden entries the runs leave in the machines' store directories.
fn leftovers(p: &Project) -> Vec<String> {
    crate::util::agenix_leftovers(p, &MACHINES)
}

/// `rekey -i OLD` on one worker thread under strace, killed at the
/// `step`-th call of each of `calls` (strace counts per thread and call).
fn killed_rekey(p: &Project, old: &Key, calls: &str, step: usize) -> Run {
    let trace = format!("trace={calls}");
    let inject = format!("inject={calls}:signal=KILL:when={step}");
    let strace_args = ["-f", "-qq", "-o", "/dev/null", "-e", &trace, "-e", &inject];
    let mut command = p.command_under(tool("strace", "strace"), strace_args);
    command
        .args([OsStr::new("rekey"), OsStr::new("--jobs"), OsStr::new("1")])
        .args([OsStr::new("-i"), old.path.as_os_str()]);
    p.finish(&mut command)
}

#[test]
fn killed_rekeys_leave_each_artifact_old_or_new_and_the_next_run_cleans_up() {
    let (p, old, new, pristine) = project("killed_rekeys_leave_old_or_new");
    let lock = fs::read(p.root.join("artifacts.lock")).unwrap();
    let before = seen(&p, &old, &new, "before");
    let values = |seen: &[(String, &str, String)]| -> Vec<String> {
        seen.iter().map(|(_, _, v)| v.clone()).collect()
    };
    let artifacts = before.len();

    // Killed at the first swap: the first round's artifacts were all
    // staged first (and made durable), none is switched yet.
    let run = killed_rekey(&p, &old, "renameat2", 1);
    assert_eq!(run.code, None, "the run was not killed: {}", run.stderr);
    let now = seen(&p, &old, &new, "first swap");
    assert!(now.iter().all(|(_, which, _)| *which == "old"), "{now:?}");
    assert!(
        leftovers(&p).len() > 1,
        "not a batch staged before the first swap: {:?}",
        leftovers(&p)
    );

    // Killed at every step in turn, each time from the store as generated:
    // at the k-th call of one kind (counted per thread, so one worker thread).
    let mut partly = 0;
    for call in crate::util::STEPS.split(',') {
        for step in 1.. {
            assert!(step < 100, "a run was still being killed at {call} {step}");
            reset(&p, &pristine);
            let label = format!("{call} {step}");
            let run = killed_rekey(&p, &old, call, step);
            let now = seen(&p, &old, &new, &label);
            assert_eq!(values(&now), values(&before), "{label}: a value changed");
            assert_eq!(
                fs::read(p.root.join("artifacts.lock")).unwrap(),
                lock,
                "{label}: rekey wrote the lock"
            );
            // Never damaged or mixed: 1 while some have the old key, or ok.
            let check = p.run(["check"]);
            assert!(
                matches!(check.code, Some(0 | 1)),
                "{label}: check says {:?}: {}",
                check.code,
                check.stdout
            );
            let new_ones = now.iter().filter(|(_, which, _)| *which == "new").count();
            if new_ones > 0 && new_ones < artifacts {
                partly += 1;
            }
            // The next run finishes the job and removes every leftover.
            p.run([OsStr::new("rekey"), OsStr::new("-i"), old.path.as_os_str()])
                .success();
            let after = seen(&p, &old, &new, &format!("{label}, next run"));
            assert!(
                after.iter().all(|(_, which, _)| *which == "new"),
                "{label}: the next run left {after:?}"
            );
            assert_eq!(values(&after), values(&before), "{label}: a value changed");
            assert_eq!(leftovers(&p), Vec::<String>::new(), "{label}: leftovers");
            p.run(["check"]).success();
            if run.code == Some(0) {
                break;
            }
            assert_eq!(run.code, None, "{label}: {}", run.stderr);
        }
    }
    assert!(partly > 0, "no killed run had switched only some artifacts");
}

/// Counts the calls in an `strace -o` file that are `name(`.
fn calls(trace: &str, name: &str) -> usize {
    trace
        .lines()
        .filter(|line| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|call| call.starts_with(&format!("{name}(")))
        })
        .count()
}

#[test]
fn rekey_syncs_once_per_round_and_directory_not_once_per_file() {
    let (p, old, new, _) = project("rekey_syncs_once_per_directory");
    let inode = |path: PathBuf| std::os::unix::fs::MetadataExt::ino(&fs::metadata(path).unwrap());
    let dirs = |p: &Project| -> Vec<u64> {
        MACHINES
            .iter()
            .flat_map(|m| ARTIFACTS.iter().map(move |(a, _)| (m, a)))
            .map(|(m, a)| inode(p.root.join(format!("secrets/per-machine/{m}/{a}"))))
            .collect()
    };
    let before = dirs(&p);
    let trace = p.home.join("trace");
    let strace_args = [
        OsStr::new("-f"),
        OsStr::new("-qq"),
        OsStr::new("-e"),
        OsStr::new("trace=fsync,fdatasync,syncfs,sync"),
        OsStr::new("-o"),
        trace.as_os_str(),
    ];
    let mut command = p.command_under(tool("strace", "strace"), strace_args);
    command.args([OsStr::new("rekey"), OsStr::new("-i"), old.path.as_os_str()]);
    p.finish(&mut command)
        .success()
        .stderr_has("re-encrypted 10 artifact(s)");
    assert!(
        seen(&p, &old, &new, "after")
            .iter()
            .all(|(_, which, _)| *which == "new")
    );
    let trace = fs::read_to_string(&trace).unwrap();
    // 10 artifacts of 16 files (+ `.recipients` and `.generation` each) in
    // 2 directories, in 2 rounds (8 and 2 artifacts): a syncfs per round
    // and an fsync of each directory a round swaps in. An fsync per file and
    // directory, and of the directory after each swap (as one artifact's
    // generation is stored), would be 86.
    // The later rounds stage into generations the earlier ones swapped out.
    let after = dirs(&p);
    assert!(
        after.iter().any(|ino| before.contains(ino)),
        "no previous generation was reused: {before:?} {after:?}"
    );
    let fsyncs = calls(&trace, "fsync") + calls(&trace, "fdatasync");
    let syncfs = calls(&trace, "syncfs");
    assert!((1..=2).contains(&syncfs), "{syncfs} syncfs: {trace}");
    assert!(
        fsyncs <= syncfs * MACHINES.len(),
        "{fsyncs} fsyncs: {trace}"
    );
}
