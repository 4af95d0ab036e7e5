//! The prompt contract, through the library: a prompts file wins over
//! `ARTIFACTS_PROMPT_*` variables, which win over asking; a person is asked
//! only once nothing else can fail; missing, empty, unknown and ambiguous
//! answers are refused naming the prompt (until now only checked through
//! the binary).

use artifacts_engine::error::PromptError;
use artifacts_engine::{Answers, Asker, PromptsFile};
use artifacts_engine::{Plan, UnitId};
use artifacts_model::load::load_manifest;
use artifacts_model::{Model, Prompt};
use secrecy::{ExposeSecret, SecretString};

fn model(manifest: &str) -> (tempfile::TempDir, Model) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gen.sh"), "#!/bin/sh\n").unwrap();
    let path = dir.path().join("artifacts.toml");
    std::fs::write(&path, manifest).unwrap();
    let model = load_manifest(&path).unwrap();
    (dir, model)
}

/// One artifact per name, each with one hidden prompt `p`.
fn manifest(artifacts: &[(&str, &str)]) -> String {
    let mut text = String::from("default.backend = \"plain\"\n[nixos.m]\n");
    for (name, extra) in artifacts {
        text.push_str(&format!(
            "[artifacts.{name}]\ntargets = [\"m\"]\ngenerator = \"gen.sh\"\nfiles.f = {{}}\n\
             prompts.p = {{ type = \"hidden\"{extra} }}\n"
        ));
    }
    text
}

/// Records what it was asked; answers `asked-<artifact>`.
#[derive(Default)]
struct Recorder(Vec<String>);

impl Asker for Recorder {
    fn ask(&mut self, artifact: &str, name: &str, _: &Prompt) -> Result<SecretString, String> {
        self.0.push(format!("{artifact}/{name}"));
        Ok(SecretString::from(format!("asked-{artifact}")))
    }
}

fn file(entries: &[(&str, &str)]) -> PromptsFile {
    let mut file = PromptsFile::new();
    for (artifact, value) in entries {
        file.entry((*artifact).to_owned())
            .or_default()
            .insert("p".to_owned(), SecretString::from((*value).to_owned()));
    }
    file
}

fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

fn all(plan: &Plan<'_>) -> Vec<UnitId> {
    plan.iter().map(|(id, _)| id).collect()
}

#[test]
fn the_file_wins_then_the_environment_then_a_person_is_asked() {
    let (_dir, model) = model(&manifest(&[("a", ""), ("b", ""), ("c", "")]));
    let plan = Plan::new(&model).unwrap();
    let file = file(&[("a", "from-file")]);
    let env = env(&[
        ("ARTIFACTS_PROMPT_A_P", "env-a"),
        ("ARTIFACTS_PROMPT_B_P", "env-b"),
    ]);
    let mut asker = Recorder::default();
    let answers =
        Answers::collect(&plan, &all(&plan), Some(&file), &env, Some(&mut asker)).unwrap();
    let get = |a: &str| answers.get(a, "p").unwrap().expose_secret().to_owned();
    assert_eq!(get("a"), "from-file");
    assert_eq!(get("b"), "env-b");
    assert_eq!(get("c"), "asked-c");
    assert_eq!(asker.0, ["c/p"]);
    // Debug names the prompts, never the values.
    let debug = format!("{answers:?}");
    assert!(
        !debug.contains("from-file") && !debug.contains("env-b"),
        "{debug}"
    );
}

#[test]
fn without_a_person_every_missing_answer_is_named_with_its_variable() {
    let (_dir, model) = model(&manifest(&[("a", ""), ("b", "")]));
    let plan = Plan::new(&model).unwrap();
    let error = Answers::collect(&plan, &all(&plan), None, &env(&[]), None).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, PromptError::Missing { .. }), "{text}");
    assert!(text.contains("a/p (set ARTIFACTS_PROMPT_A_P)"), "{text}");
    assert!(text.contains("b/p (set ARTIFACTS_PROMPT_B_P)"), "{text}");
}

#[test]
fn only_the_selected_units_need_answers() {
    let (_dir, model) = model(&manifest(&[("a", ""), ("b", "")]));
    let plan = Plan::new(&model).unwrap();
    let a = plan.iter().find(|(_, u)| u.name() == "a").unwrap().0;
    let env = env(&[("ARTIFACTS_PROMPT_A_P", "x")]);
    let answers = Answers::collect(&plan, &[a], None, &env, None).unwrap();
    assert!(answers.get("b", "p").is_none());
}

#[test]
fn an_empty_answer_is_refused_unless_the_prompt_allows_it() {
    let (_dir, model) = model(&manifest(&[("a", ""), ("b", ", allowEmpty = true")]));
    let plan = Plan::new(&model).unwrap();
    let env = env(&[("ARTIFACTS_PROMPT_A_P", ""), ("ARTIFACTS_PROMPT_B_P", "")]);
    let error = Answers::collect(&plan, &all(&plan), None, &env, None).unwrap_err();
    assert!(
        matches!(&error, PromptError::Empty { artifact, source_name, .. }
            if artifact == "a" && source_name == "`ARTIFACTS_PROMPT_A_P`"),
        "{error}"
    );
    let b = plan.iter().find(|(_, u)| u.name() == "b").unwrap().0;
    let answers = Answers::collect(&plan, &[b], None, &env, None).unwrap();
    assert_eq!(answers.get("b", "p").unwrap().expose_secret(), "");
}

#[test]
fn a_prompts_file_answering_nothing_declared_is_refused() {
    let (_dir, model) = model(&manifest(&[("a", "")]));
    let plan = Plan::new(&model).unwrap();
    let file = file(&[("typo", "x")]);
    let mut asker = Recorder::default();
    let error =
        Answers::collect(&plan, &all(&plan), Some(&file), &env(&[]), Some(&mut asker)).unwrap_err();
    assert!(
        matches!(&error, PromptError::Unknown { artifact, .. } if artifact == "typo"),
        "{error}"
    );
    assert!(asker.0.is_empty(), "asked before failing: {:?}", asker.0);
}

#[test]
fn a_variable_two_prompts_share_is_refused_before_anyone_is_asked() {
    // `a-b`/`p` and `a`/`b-p` both map to ARTIFACTS_PROMPT_A_B_P.
    let (_dir, model) = model(&format!(
        "{}[artifacts.a]\ntargets = [\"m\"]\ngenerator = \"gen.sh\"\nfiles.f = {{}}\n\
         prompts.b-p = {{ type = \"hidden\" }}\n[artifacts.c]\ntargets = [\"m\"]\n\
         generator = \"gen.sh\"\nfiles.f = {{}}\nprompts.p = {{ type = \"hidden\" }}\n",
        manifest(&[("a-b", "")])
    ));
    let plan = Plan::new(&model).unwrap();
    let env = env(&[("ARTIFACTS_PROMPT_A_B_P", "x")]);
    let mut asker = Recorder::default();
    let error = Answers::collect(&plan, &all(&plan), None, &env, Some(&mut asker)).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, PromptError::Ambiguous { .. }), "{text}");
    assert!(text.contains("a-b/p") && text.contains("a/b-p"), "{text}");
    assert!(asker.0.is_empty(), "asked before failing: {:?}", asker.0);
}
