//! Validation of a loaded [`Model`]: every problem at once, each located.
//!
//! Checked here: names (see [`crate::names`]), file paths (absolute, no `..`,
//! not in `/nix/store`), owners and groups, the presence of a generator and
//! files, backend resolution against the known backends, shared artifacts
//! declared identically everywhere, and dependencies (declared, acyclic).

use std::collections::BTreeMap;
use std::path::Component;
use std::sync::Arc;

use crate::error::{Location, ModelError, Problem};
use crate::model::{Artifact, Model, Target, TargetKind};
use crate::names::{
    check_account, check_name, check_stored_name, check_target_name, escape_for_message,
};

/// Validates declarations against the set of known backend names.
pub fn validate(model: &Model, known_backends: &[&str]) -> Result<(), ModelError> {
    let mut problems = Vec::new();
    let base = Location::file(&model.source);
    if let Some(name) = &model.default_backend {
        check_backend(
            name,
            known_backends,
            base.field("default.backend"),
            &mut problems,
        );
    }
    // A shorthand declaration is one value on every target of a kind: what
    // depends on it alone is checked once per kind when it passes (a
    // failing one is reported at each target's location).
    let mut passed: std::collections::HashSet<(usize, TargetKind), foldhash::fast::RandomState> =
        Default::default();
    for target in &model.targets {
        let location = base.target(&target.id);
        if let Err(message) = check_target_name(target.id.kind, &target.id.name) {
            problems.push(problem(location.clone(), format!("target {message}")));
        }
        if let Some(name) = &target.default_backend {
            check_backend(
                name,
                known_backends,
                location.field("default.backend"),
                &mut problems,
            );
        }
        for artifact in target.artifacts.values() {
            // Built only where needed: a location is several allocations,
            // and a fleet declares thousands of artifacts.
            let at = || location.artifact(&artifact.name);
            let key = (Arc::as_ptr(artifact) as usize, target.id.kind);
            if !passed.contains(&key) {
                let location = at();
                let before = problems.len();
                check_declaration(
                    target.id.kind,
                    artifact,
                    known_backends,
                    &location,
                    &mut problems,
                );
                if problems.len() == before {
                    passed.insert(key);
                }
            }
            check_on_target(model, target, artifact, &at, &mut problems);
        }
    }
    check_nested_environments(model, &base, &mut problems);
    check_shared(model, &base, &mut problems);
    check_cycles(model, &base, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ModelError::Invalid(problems))
    }
}

/// A tanka environment nested in another (`prod` and `prod/eu`) shares its
/// parent's directories: `public/tanka/prod/eu/` would be both `prod`'s
/// artifact `eu` and `prod/eu`'s store, so that artifact name is refused.
fn check_nested_environments(model: &Model, base: &Location, problems: &mut Vec<Problem>) {
    let tanka = || {
        model
            .targets
            .iter()
            .filter(|t| t.id.kind == TargetKind::Tanka)
    };
    for parent in tanka() {
        for nested in tanka() {
            let Some(rest) = nested
                .id
                .name
                .strip_prefix(parent.id.name.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
            else {
                continue;
            };
            let next = rest.split('/').next().unwrap_or(rest);
            if parent.artifacts.contains_key(next) {
                problems.push(problem(
                    base.target(&parent.id).artifact(next),
                    format!(
                        "artifact {} has the name of a directory of the nested tanka environment {}: both would be stored in `public/tanka/{}/{next}`; rename the artifact",
                        escape_for_message(next),
                        escape_for_message(&nested.id.name),
                        parent.id.name
                    ),
                ));
            }
        }
    }
}

fn problem(location: Location, message: impl Into<String>) -> Problem {
    Problem {
        location,
        message: message.into(),
    }
}

fn check_backend(name: &str, known: &[&str], location: Location, problems: &mut Vec<Problem>) {
    if let Err(message) = check_name(name) {
        problems.push(problem(location, format!("backend {message}")));
    } else if !known.contains(&name) {
        let known = if known.is_empty() {
            "none are configured".to_owned()
        } else {
            format!("known: {}", known.join(", "))
        };
        problems.push(problem(
            location,
            format!("unknown backend `{name}` ({known})"),
        ));
    }
}

/// What an artifact's declaration alone decides, on a target of `kind`.
fn check_declaration(
    kind: TargetKind,
    artifact: &Artifact,
    known: &[&str],
    location: &Location,
    problems: &mut Vec<Problem>,
) {
    if let Err(message) = check_stored_name(&artifact.name) {
        problems.push(problem(location.clone(), format!("artifact {message}")));
    }
    if let Some(name) = &artifact.backend {
        check_backend(name, known, location.field("backend"), problems);
    }
    if artifact.generator.is_none() {
        problems.push(problem(
            location.field("generator"),
            "no generator: every artifact needs a script that writes its files to $out",
        ));
    }
    check_inputs(artifact, location, problems);
    for name in artifact.prompts.keys() {
        if let Err(message) = check_name(name) {
            problems.push(problem(
                location.field(format!("prompts.{name}")),
                format!("prompt {message}"),
            ));
        }
    }
    for (name, file) in &artifact.files {
        let field = |key: &str| location.field(format!("files.{name}.{key}"));
        if let Err(message) = check_stored_name(name) {
            problems.push(problem(
                location.field(format!("files.{name}")),
                format!("file {message}"),
            ));
        }
        if let Err(message) = check_file_path(kind, &file.path) {
            problems.push(problem(field("path"), message));
        }
        for (key, account) in [("owner", &file.owner), ("group", &file.group)] {
            if let Some(account) = account
                && let Err(message) = check_account(account)
            {
                problems.push(problem(field(key), format!("{key} {message}")));
            }
        }
    }
}

/// What depends on the target an artifact is declared on: its backend and
/// its dependencies.
fn check_on_target(
    model: &Model,
    target: &Target,
    artifact: &Artifact,
    location: &dyn Fn() -> Location,
    problems: &mut Vec<Problem>,
) {
    if model.backend_name(target, artifact).is_none() {
        problems.push(problem(
            location(),
            "no backend chosen: set `backend` on the artifact, `default.backend` on the target, or `default.backend` at the top of the manifest",
        ));
    }
    for (index, dependency) in artifact.dependencies.iter().enumerate() {
        let field = || location().field(format!("dependencies[{index}]"));
        if let Err(message) = check_name(dependency) {
            problems.push(problem(field(), format!("dependency {message}")));
            continue;
        }
        match target.artifacts.get(dependency) {
            None => problems.push(problem(
                field(),
                format!("depends on `{dependency}`, which {} does not declare", target.id),
            )),
            Some(depended) if artifact.shared && !depended.shared => problems.push(problem(
                field(),
                format!("a shared artifact can only depend on shared artifacts, and `{dependency}` is not shared"),
            )),
            Some(_) => {}
        }
    }
}

/// Checks `inputs`: at most [`crate::limits::MAX_INPUTS`] plain relative
/// paths, each once, that stay inside the project. Whether they exist, and
/// are not links, is checked where they are read (the engine).
fn check_inputs(artifact: &Artifact, location: &Location, problems: &mut Vec<Problem>) {
    let limit = crate::limits::MAX_INPUTS;
    if artifact.inputs.len() > limit {
        problems.push(problem(
            location.field("inputs"),
            format!(
                "declares {} inputs, more than {limit}: name a directory instead of its files",
                artifact.inputs.len()
            ),
        ));
    }
    let mut seen: Vec<std::path::PathBuf> = Vec::new();
    for (index, input) in artifact.inputs.iter().enumerate() {
        let field = location.field(format!("inputs[{index}]"));
        match input_path(input) {
            Ok(normal) => {
                if seen.contains(&normal) {
                    problems.push(problem(field, format!("input `{input}` is named twice")));
                } else {
                    seen.push(normal);
                }
            }
            Err(message) => problems.push(problem(field, message)),
        }
    }
}

/// A declared input as a plain relative path (`.` parts dropped), or why it
/// is not one.
pub fn input_path(input: &str) -> Result<std::path::PathBuf, String> {
    if input.is_empty() {
        return Err("an input cannot be empty".into());
    }
    if input.chars().any(char::is_control) {
        return Err(format!(
            "input {} contains a control character",
            escape_for_message(input)
        ));
    }
    let path = std::path::Path::new(input);
    let mut normal = std::path::PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => normal.push(part),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "input `{input}` is absolute; inputs are relative to the project root (e.g. \"generators/lib.sh\")"
                ));
            }
            Component::ParentDir => {
                return Err(format!(
                    "input `{input}` contains `..`; inputs stay inside the project"
                ));
            }
        }
    }
    if normal.as_os_str().is_empty() {
        return Err(format!(
            "input `{input}` names the project root itself; name the files or directories the generator reads"
        ));
    }
    Ok(normal)
}

/// What is accepted but probably not meant: artifacts that declare no files
/// (upstream accepts them; their generator must write nothing, and nothing
/// is stored).
pub fn warnings(model: &Model) -> Vec<Problem> {
    let base = Location::file(&model.source);
    let mut out = Vec::new();
    for target in &model.targets {
        for artifact in target.artifacts.values() {
            if artifact.files.is_empty() {
                out.push(problem(
                    base.target(&target.id)
                        .artifact(&artifact.name)
                        .field("files"),
                    "declares no files (accepted, as upstream does): its generator must write nothing",
                ));
            }
        }
    }
    out
}

/// `--generator-from TARGET`: every shared artifact that `references` (in
/// order, `kind/name` or a unique name) declares takes its generator and
/// inputs from the first of them declaring it, on every target, so
/// declarations that differ only there are accepted. Returns the problems
/// of references that name no target.
pub fn take_shared_generators(model: &mut Model, references: &[String]) -> Vec<Problem> {
    let base = Location::file(&model.source);
    let mut problems = Vec::new();
    let mut sources = Vec::new();
    for reference in references {
        let found: Vec<usize> = (0..model.targets.len())
            .filter(|&i| {
                let id = &model.targets[i].id;
                match reference.split_once('/') {
                    Some((kind, name)) => {
                        crate::TargetKind::parse(kind) == Some(id.kind) && id.name == name
                    }
                    None => id.name == *reference,
                }
            })
            .collect();
        match found.as_slice() {
            [one] => sources.push(*one),
            [] => problems.push(problem(
                base.clone(),
                format!(
                    "--generator-from {}: no such target is declared",
                    escape_for_message(reference)
                ),
            )),
            _ => problems.push(problem(
                base.clone(),
                format!(
                    "--generator-from {} names several targets: write it as kind/name",
                    escape_for_message(reference)
                ),
            )),
        }
    }
    let mut chosen: BTreeMap<String, (Option<std::path::PathBuf>, Vec<String>)> = BTreeMap::new();
    for &source in &sources {
        for artifact in model.targets[source].artifacts.values() {
            if artifact.shared {
                chosen
                    .entry(artifact.name.clone())
                    .or_insert_with(|| (artifact.generator.clone(), artifact.inputs.clone()));
            }
        }
    }
    for target in &mut model.targets {
        for artifact in target.artifacts.values_mut() {
            if let Some((generator, inputs)) = chosen.get(&artifact.name)
                && artifact.shared
                && (artifact.generator != *generator || artifact.inputs != *inputs)
            {
                let artifact = Arc::make_mut(artifact);
                artifact.generator = generator.clone();
                artifact.inputs = inputs.clone();
            }
        }
    }
    problems
}

/// Checks a declared target path.
fn check_file_path(kind: TargetKind, path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("path is empty".into());
    }
    if path.chars().any(char::is_control) {
        return Err(format!(
            "path {} contains a control character",
            escape_for_message(path)
        ));
    }
    let relative_start = path.starts_with("$") || path.starts_with("~/");
    let std_path = std::path::Path::new(path);
    if std_path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("path `{path}` contains `..`"));
    }
    match kind {
        TargetKind::Nixos if !std_path.is_absolute() => {
            Err(format!("path `{path}` is not absolute"))
        }
        TargetKind::Home if !std_path.is_absolute() && !relative_start => Err(format!(
            "path `{path}` is neither absolute nor starts with a variable such as $XDG_RUNTIME_DIR or ~/"
        )),
        TargetKind::Tanka if std_path.is_absolute() => Err(format!(
            "path `{path}` of a tanka file is a key inside secrets_yaml and must be relative"
        )),
        _ if path.starts_with("/nix/store") => Err(format!(
            "path `{path}` is in /nix/store, which is world-readable; use a path such as /run/artifacts/…"
        )),
        _ => Ok(()),
    }
}

/// A shared artifact must be declared the same way by every target.
fn check_shared(model: &Model, base: &Location, problems: &mut Vec<Problem>) {
    for group in model.shared_groups() {
        let Some(((first_target, first), rest)) = group.members.split_first() else {
            continue;
        };
        for (target, artifact) in rest {
            let differences = differences(model, (first_target, first), (target, artifact));
            if !differences.is_empty() {
                // Generators often differ only by store path between machines.
                let hint =
                    if first.generator != artifact.generator || first.inputs != artifact.inputs {
                        format!(
                            " (to use one target's generator for all, pass --generator-from {})",
                            first_target.id.reference()
                        )
                    } else {
                        String::new()
                    };
                problems.push(problem(
                    base.artifact(group.name),
                    format!(
                        "shared artifact is declared differently by {} and {}: {}{hint}",
                        first_target.id,
                        target.id,
                        differences.join("; ")
                    ),
                ));
            }
        }
        // Every declaration of the name must be shared, or none.
        for target in &model.targets {
            if let Some(artifact) = target.artifacts.get(group.name)
                && !artifact.shared
            {
                problems.push(problem(
                    base.target(&target.id).artifact(group.name).field("shared"),
                    format!("is not shared here but shared on {}", first_target.id),
                ));
            }
        }
    }
}

/// What differs between two declarations of a shared artifact, in words.
fn differences(
    model: &Model,
    (ta, a): (&Target, &Artifact),
    (tb, b): (&Target, &Artifact),
) -> Vec<String> {
    let mut out = Vec::new();
    let backend_a = model.resolve_backend(ta, a).map(|c| c.name);
    let backend_b = model.resolve_backend(tb, b).map(|c| c.name);
    if backend_a != backend_b {
        out.push(format!(
            "backend {} vs {}",
            show(&backend_a),
            show(&backend_b)
        ));
    }
    if a.generator != b.generator {
        out.push(format!(
            "generator {} vs {}",
            show(&a.generator.as_ref().map(|p| p.display().to_string())),
            show(&b.generator.as_ref().map(|p| p.display().to_string()))
        ));
    }
    if a.inputs != b.inputs {
        out.push(format!("inputs {:?} vs {:?}", a.inputs, b.inputs));
    }
    let names_a: Vec<_> = a.files.keys().collect();
    let names_b: Vec<_> = b.files.keys().collect();
    let mut sorted_a = names_a.clone();
    let mut sorted_b = names_b.clone();
    sorted_a.sort();
    sorted_b.sort();
    if sorted_a != sorted_b {
        out.push(format!("files {sorted_a:?} vs {sorted_b:?}"));
    } else {
        for (name, fa) in &a.files {
            let fb = &b.files[name];
            // Paths differ legitimately between kinds (/run/… vs $XDG_RUNTIME_DIR/…).
            if ta.id.kind == tb.id.kind && fa.path != fb.path {
                out.push(format!("files.{name}.path `{}` vs `{}`", fa.path, fb.path));
            }
            if let (Some(oa), Some(ob)) = (&fa.owner, &fb.owner)
                && oa != ob
            {
                out.push(format!("files.{name}.owner `{oa}` vs `{ob}`"));
            }
            if let (Some(ga), Some(gb)) = (&fa.group, &fb.group)
                && ga != gb
            {
                out.push(format!("files.{name}.group `{ga}` vs `{gb}`"));
            }
            if fa.mode != fb.mode {
                out.push(format!("files.{name}.mode {} vs {}", fa.mode, fb.mode));
            }
            if fa.secret != fb.secret {
                out.push(format!(
                    "files.{name}.secret {} vs {}",
                    fa.secret, fb.secret
                ));
            }
        }
    }
    let prompts_a: BTreeMap<_, _> = a.prompts.iter().map(|(n, p)| (n, p.kind)).collect();
    let prompts_b: BTreeMap<_, _> = b.prompts.iter().map(|(n, p)| (n, p.kind)).collect();
    if prompts_a != prompts_b {
        let list = |m: &BTreeMap<&String, crate::PromptKind>| {
            m.iter()
                .map(|(n, k)| format!("{n}:{}", k.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!(
            "prompts [{}] vs [{}]",
            list(&prompts_a),
            list(&prompts_b)
        ));
    }
    let mut deps_a = a.dependencies.clone();
    let mut deps_b = b.dependencies.clone();
    deps_a.sort();
    deps_b.sort();
    if deps_a != deps_b {
        out.push(format!("dependencies {deps_a:?} vs {deps_b:?}"));
    }
    out
}

fn show(value: &Option<String>) -> String {
    match value {
        Some(text) => format!("`{text}`"),
        None => "(none)".into(),
    }
}

/// Rejects dependency cycles within each target, naming the cycle.
fn check_cycles(model: &Model, base: &Location, problems: &mut Vec<Problem>) {
    let mut reported = std::collections::BTreeSet::new();
    for target in &model.targets {
        for (start, artifact) in &target.artifacts {
            // No cycle starts at an artifact that depends on nothing.
            if artifact.dependencies.is_empty() {
                continue;
            }
            let mut path = vec![start.as_str()];
            if let Some(cycle) = find_cycle(target, &mut path)
                && reported.insert(normalize_cycle(&cycle))
            {
                problems.push(problem(
                    base.target(&target.id)
                        .artifact(start)
                        .field("dependencies"),
                    format!("dependency cycle: {}", cycle.join(" -> ")),
                ));
            }
        }
    }
}

fn find_cycle<'a>(target: &'a Target, path: &mut Vec<&'a str>) -> Option<Vec<String>> {
    let current = *path.last().expect("path starts non-empty");
    let artifact = target.artifacts.get(current)?;
    for dependency in &artifact.dependencies {
        if let Some(position) = path.iter().position(|p| p == dependency) {
            let mut cycle: Vec<String> = path[position..].iter().map(|s| s.to_string()).collect();
            cycle.push(dependency.clone());
            return Some(cycle);
        }
        if target.artifacts.contains_key(dependency) {
            path.push(dependency);
            if let Some(cycle) = find_cycle(target, path) {
                return Some(cycle);
            }
            path.pop();
        }
    }
    None
}

/// The same cycle found from different starts is reported once.
fn normalize_cycle(cycle: &[String]) -> Vec<String> {
    let mut members: Vec<String> = cycle[..cycle.len() - 1].to_vec();
    members.sort();
    members
}
