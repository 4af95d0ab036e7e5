//! `generate` stores a target's agenix artifacts as one batch (issue 17):
//! their new generations are staged, one `syncfs` makes them all durable,
//! each is swapped in, and the directory is fsynced once, before the lock
//! records any of them. Killed at any step, every artifact is its old
//! generation or its new one, whole; the lock records only generations
//! that are stored; the next run finishes the job and removes what the
//! killed one left. A batch syncs once per directory, not once per file.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use crate::tools::{Key, artifacts_keygen, tool};
use crate::util::{Project, Run, copy_tree};

const MACHINES: [&str; 2] = ["m1", "m2"];

/// The artifacts of every machine and their secret files: several files
/// (a generation is all of them together) and one.
const ARTIFACTS: [(&str, &[&str]); 4] = [
    ("multi", &["a", "b", "c"]),
    ("one", &["t"]),
    ("two", &["x", "y"]),
    ("three", &["t"]),
];

/// Two machines storing every artifact with agenix, for `key`.
fn manifest(key: &str) -> String {
    crate::util::agenix_manifest(key, &MACHINES, &ARTIFACTS)
}

/// Writes the generators: one random value per generation, written to
/// each file of the artifact; `version` changes the declaration, so a
/// stored generation of another version is stale.
fn generators(p: &Project, version: u32) {
    for (artifact, files) in ARTIFACTS {
        let mut body = format!(
            "# version {version}\nt=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \\n')\n"
        );
        for file in files {
            body.push_str(&format!("echo \"$t\" > \"$out/{file}\"\n"));
        }
        p.generator(&format!("{artifact}.sh"), &body);
    }
}

/// Each artifact of each machine (`m/artifact`) and the value of its
/// files; panics unless every file of the artifact decrypts to one value.
fn values(p: &Project, key: &Key, step: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in MACHINES {
        for (artifact, files) in ARTIFACTS {
            let dir = p.root.join(format!("secrets/per-machine/{m}/{artifact}"));
            let label = format!("{step}: {m}/{artifact}");
            out.push((
                format!("{m}/{artifact}"),
                crate::util::agenix_value(&dir, files, key, &label),
            ));
        }
    }
    out
}

/// Hidden entries left in the machines' store directories.
fn leftovers(p: &Project) -> Vec<String> {
    crate::util::agenix_leftovers(p, &MACHINES)
}

/// `artifacts ARGS` under strace with `strace_args` first; unsandboxed,
/// since bubblewrap cannot set up its namespaces under ptrace (the sandbox
/// is not what is tested here).
fn traced(p: &Project, strace_args: &[&OsStr], args: &[&str]) -> Run {
    let mut command = p.command_under(tool("strace", "strace"), strace_args);
    command.arg("--no-sandbox").args(args);
    p.finish(&mut command)
}

/// A project whose every artifact was generated with version 1 of the
/// generators, which are now at version 2 (so every artifact is stale);
/// returns the key and copies of the store and the lock as generated.
fn stale_project(name: &str) -> (Project, Key, PathBuf, Vec<u8>) {
    let p = Project::new(name);
    let key = artifacts_keygen(&p, "admin.key");
    p.manifest(&manifest(&key.public));
    generators(&p, 1);
    p.run(["generate"]).success();
    generators(&p, 2);
    p.run(["check"]).code(1).stdout_has("stale");
    let pristine = p.home.join("pristine-secrets");
    copy_tree(&p.root.join("secrets"), &pristine);
    let lock = fs::read(p.root.join("artifacts.lock")).unwrap();
    (p, key, pristine, lock)
}

/// Puts the store and the lock back as `stale_project` left them.
fn reset(p: &Project, pristine: &Path, lock: &[u8]) {
    fs::remove_dir_all(p.root.join("secrets")).unwrap();
    copy_tree(pristine, &p.root.join("secrets"));
    fs::write(p.root.join("artifacts.lock"), lock).unwrap();
    let _ = fs::remove_file(p.root.join("artifacts.lock.journal"));
}

/// The run `generate --yes` under strace, as the kill loop runs it, with
/// `extra` strace options.
fn traced_generate(p: &Project, extra: &[&str]) -> Run {
    let mut options = vec!["-f", "-qq"];
    options.extend(extra);
    let options: Vec<&OsStr> = options.into_iter().map(OsStr::new).collect();
    traced(p, &options, &["-j", "1", "generate", "--yes"])
}

/// The steps of a run that touch the store or the lock: `(call, k)` when
/// some thread's k-th call of that kind of [`STEPS`](crate::util::STEPS) names a path of
/// either (strace counts per thread and call). Killing at the other steps
/// (the generators' scratch directories) tests nothing more.
fn store_steps(p: &Project) -> Vec<(String, usize)> {
    let trace = p.home.join("steps.trace");
    let steps = format!("trace={}", crate::util::STEPS);
    traced_generate(p, &["-y", "-e", &steps, "-o", trace.to_str().unwrap()]).success();
    let trace = fs::read_to_string(&trace).unwrap();
    let root = p.root.display().to_string();
    let touched = [
        format!("{root}/secrets"),
        "artifacts.lock".to_owned(),
        format!("{root}>"),
    ];
    let mut counts = std::collections::BTreeMap::new();
    let mut found = std::collections::BTreeSet::new();
    for (tid, call, rest) in trace.lines().filter_map(|line| {
        // strace pads the pid to the widest one seen so far ("5636  write").
        let (tid, rest) = line.split_once(' ')?;
        let rest = rest.trim_start();
        let (call, _) = rest.split_once('(')?;
        (!rest.starts_with('<') && !rest.starts_with('-') && !rest.starts_with('+'))
            .then_some((tid, call, rest))
    }) {
        let k = counts.entry((tid, call)).or_insert(0usize);
        *k += 1;
        if touched.iter().any(|path| rest.contains(path.as_str())) {
            found.insert((call.to_owned(), *k));
        }
    }
    found.into_iter().collect()
}

#[test]
fn killed_agenix_generates_leave_each_artifact_old_or_new_and_the_lock_records_only_what_is_stored()
{
    let (p, key, pristine, lock) = stale_project("killed_agenix_generates");
    let before = values(&p, &key, "before");
    let generation = |m: &str, artifact: &str, root: &Path| {
        fs::read(root.join(format!("{m}/{artifact}/.generation"))).unwrap()
    };
    let steps = store_steps(&p);
    for call in ["renameat2", "mkdirat", "syncfs", "fsync", "unlinkat"] {
        assert!(
            steps.iter().any(|(c, _)| c == call),
            "no {call} on the store: {steps:?}"
        );
    }
    let (mut partly, mut staged) = (0, 0);
    for (call, step) in &steps {
        reset(&p, &pristine, &lock);
        let label = format!("{call} {step}");
        let trace = format!("trace={call}");
        let inject = format!("inject={call}:signal=KILL:when={step}");
        let run = traced_generate(&p, &["-o", "/dev/null", "-e", &trace, "-e", &inject]);
        assert_eq!(run.code, None, "{label}: not killed: {}", run.stderr);
        // Every artifact whole (one value in all its files, each file
        // decrypting), of the old generation or the new one.
        let now = values(&p, &key, &label);
        // What the lock (with its journal) records as current is stored:
        // `ok` only for an artifact whose new generation is in place; never
        // an error (a mix, a damaged directory).
        let check = p.run(["--json", "check"]);
        assert!(
            matches!(check.code, Some(0 | 1)),
            "{label}: check says {:?}: {}",
            check.code,
            check.stdout
        );
        let document = check.json();
        let mut statuses = std::collections::BTreeMap::new();
        for entry in document["artifacts"].as_array().unwrap() {
            let target = entry["targets"][0].as_str().unwrap();
            let m = target.strip_prefix("nixos/").unwrap();
            let name = format!("{m}/{}", entry["artifact"].as_str().unwrap());
            statuses.insert(name, entry["status"].as_str().unwrap().to_owned());
        }
        let mut new_ones = 0;
        for ((name, value), (_, old)) in now.iter().zip(&before) {
            let new = value != old;
            new_ones += usize::from(new);
            match statuses[name].as_str() {
                "ok" => assert!(
                    new,
                    "{label}: the lock records the new generation of {name}, the store holds the old one"
                ),
                "stale" => {}
                other => panic!("{label}: {name} is {other}: {}", check.stdout),
            }
        }
        if new_ones > 0 && new_ones < now.len() {
            partly += 1;
        }
        if !leftovers(&p).is_empty() {
            staged += 1;
        }
        // The next run finishes the job and removes every leftover.
        p.run(["--no-sandbox", "generate", "--yes"]).success();
        assert_eq!(leftovers(&p), Vec::<String>::new(), "{label}: leftovers");
        p.run(["check"]).success();
        for m in MACHINES {
            for (artifact, _) in ARTIFACTS {
                assert_ne!(
                    generation(m, artifact, &p.root.join("secrets/per-machine")),
                    generation(m, artifact, &pristine.join("per-machine")),
                    "{label}: the next run left {m}/{artifact} old"
                );
            }
        }
    }
    assert!(partly > 0, "no killed run had switched only some artifacts");
    assert!(staged > 0, "no killed run had left a staged generation");
}

/// The calls in an `strace -y` trace (one line each; a call another
/// thread interrupted is counted at its start): the call's name and the
/// rest of its line.
fn calls(trace: &str) -> Vec<(&str, &str)> {
    trace
        .lines()
        // strace pads the pid to the widest one seen so far ("5636  write").
        .filter_map(|line| line.split_once(' ').map(|(_, call)| call.trim_start()))
        .filter(|call| !call.starts_with("<...") && !call.starts_with("---"))
        .filter_map(|call| call.split_once('('))
        .collect()
}

#[test]
fn agenix_generate_syncs_once_per_batch_and_directory_not_once_per_file() {
    let (p, key, _, _) = stale_project("agenix_generate_syncs_once_per_batch");
    let before = values(&p, &key, "before");
    let trace = p.home.join("trace");
    traced(
        &p,
        &[
            OsStr::new("-f"),
            OsStr::new("-qq"),
            OsStr::new("-y"),
            OsStr::new("-s"),
            OsStr::new("40"),
            OsStr::new("-e"),
            OsStr::new("trace=fsync,fdatasync,syncfs,sync,renameat2,write"),
            OsStr::new("-o"),
            trace.as_os_str(),
        ],
        &["-j", "2", "generate", "--yes"],
    )
    .success();
    let after = values(&p, &key, "after");
    assert!(
        after.iter().zip(&before).all(|(a, b)| a.1 != b.1),
        "not every artifact was regenerated: {before:?} {after:?}"
    );
    let trace = fs::read_to_string(&trace).unwrap();
    let store = p.root.join("secrets/per-machine");
    let dir_of = |m: &str| format!("{}>", store.join(m).display());
    let mut syncfs = 0;
    for m in MACHINES {
        let dir = dir_of(m);
        // Per batch, one syncfs and one fsync of the directory; one at a
        // time, each artifact fsynced each of its files, its directory,
        // and the machine's directory twice or more.
        let of = |name: &str| {
            calls(&trace)
                .iter()
                .filter(|(call, rest)| *call == name && rest.contains(&dir))
                .count()
        };
        let (synced, fsynced) = (of("syncfs"), of("fsync") + of("fdatasync"));
        assert!(synced >= 1, "{m}: no syncfs:\n{trace}");
        assert_eq!(fsynced, synced, "{m}: fsyncs and syncfs differ:\n{trace}");
        syncfs += synced;
    }
    // Fewer batches than artifacts (one per machine unless a checkpoint split one).
    assert!(
        syncfs < MACHINES.len() * ARTIFACTS.len(),
        "{syncfs} syncfs for {} artifacts:\n{trace}",
        MACHINES.len() * ARTIFACTS.len()
    );
    // Nothing below the machines' directories is fsynced: no file, no
    // staged directory.
    let below = format!("{}/", store.display());
    let deep: Vec<(&str, &str)> = calls(&trace)
        .into_iter()
        .filter(|(call, rest)| matches!(*call, "fsync" | "fdatasync") && rest.contains(&below))
        .filter(|(_, rest)| !MACHINES.iter().any(|m| rest.contains(&dir_of(m))))
        .collect();
    assert!(deep.is_empty(), "fsynced one by one: {deep:?}");
    // A batch swaps only after a syncfs made what it staged durable; the
    // journal records an artifact of a machine only after that machine's
    // directory was fsynced after its last swap.
    let journal = format!("{}>", p.root.join("artifacts.lock.journal").display());
    let mut swapped_since_sync = [false; MACHINES.len()];
    let mut durable_staged = [false; MACHINES.len()];
    let mut recorded = 0;
    for (call, rest) in calls(&trace) {
        for (at, m) in MACHINES.iter().enumerate() {
            let dir = dir_of(m);
            if call == "syncfs" && rest.contains(&dir) {
                durable_staged[at] = true;
            }
            if call == "renameat2" && rest.contains(&dir) {
                assert!(
                    durable_staged[at],
                    "{m}: swapped before a syncfs: {rest}\n{trace}"
                );
                swapped_since_sync[at] = true;
            }
            if call == "fsync" && rest.contains(&dir) {
                swapped_since_sync[at] = false;
                durable_staged[at] = false;
            }
            let scope = format!("\\\"scope\\\":\\\"nixos/{m}\\\"");
            if call == "write" && rest.contains(&journal) && rest.contains(&scope) {
                recorded += 1;
                assert!(
                    !swapped_since_sync[at],
                    "{m}: recorded before its swaps were durable:\n{trace}"
                );
            }
        }
    }
    assert!(
        recorded >= MACHINES.len(),
        "no journal records seen:\n{trace}"
    );
}
