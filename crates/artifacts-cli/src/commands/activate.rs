//! `activate`: generate and install, on the machine itself, the artifacts whose
//! backend stores nothing (`dummy`). What the dummy module's systemd units run at boot.

use std::path::PathBuf;

use anyhow::Result;
use artifacts_engine::install::{self, Installed};
use artifacts_engine::prompts::Answers;
use artifacts_engine::{Silent, error_chain};

use crate::args::{ActivateArgs, GlobalArgs};
use crate::ask;
use crate::context::{self, Context};
use crate::exit::{self, UsageError};

pub fn run(ctx: &Context, global: &GlobalArgs, args: &ActivateArgs) -> Result<i32> {
    let [target] = ctx.targets.as_slice() else {
        return Err(UsageError(anyhow::anyhow!(
            "activate works on one target: pass exactly one --target (the machine or user being activated)"
        ))
        .into());
    };
    let plan = ctx.plan()?;
    let engine = ctx.engine();
    let selected: Vec<usize> = ctx
        .select(&plan, &args.artifacts)?
        .into_iter()
        .filter(|&i| engine.is_passthrough(&plan.units[i]))
        .collect();
    if selected.is_empty() {
        if !global.quiet {
            eprintln!(
                "nothing to activate: no artifact of {target} uses a backend that generates at activation (such as dummy)"
            );
        }
        return Ok(exit::SUCCESS);
    }
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let env = |name: &str| std::env::var(name).ok();
    // Prompts are asked only for artifacts that will be generated.
    let mut to_generate = Vec::new();
    for &index in &selected {
        let unit = &plan.units[index];
        let files: Vec<(PathBuf, &artifacts_model::FileSpec)> = unit
            .artifact
            .files
            .values()
            .map(|spec| install::destination(&spec.path, &root, &env).map(|path| (path, spec)))
            .collect::<Result<_, _>>()?;
        if !install::all_in_place(&root, &files)? {
            to_generate.push(index);
        }
    }
    let prompts_file = match &args.prompts_file {
        Some(path) => Some(ask::read_prompts_file(path)?),
        None => None,
    };
    let mut asker = ask::TerminalAsker;
    let asker: Option<&mut dyn artifacts_engine::prompts::Asker> = if ask::interactive() {
        Some(&mut asker)
    } else {
        None
    };
    let answers = Answers::collect(&plan, &to_generate, prompts_file.as_ref(), &env, asker)
        .map_err(|e| UsageError(anyhow::Error::new(e)))?;
    let sandbox = if to_generate.is_empty() {
        artifacts_engine::sandbox::Sandbox::Off
    } else {
        ctx.realise_generators()?;
        context::sandbox(global)?
    };
    let results = engine.activate(&plan, &selected, &answers, &sandbox, &root, &env, &Silent);
    let mut failures = 0;
    for (index, result) in results {
        let unit = &plan.units[index];
        match result {
            Ok(files) => {
                for (path, outcome) in files {
                    let word = match outcome {
                        Installed::Written => "installed",
                        Installed::Fixed => "fixed owner/mode of",
                        Installed::Unchanged if global.verbose > 0 => "unchanged",
                        Installed::Unchanged => continue,
                    };
                    if !global.quiet {
                        eprintln!("{word} {} ({})", path.display(), unit.name());
                    }
                }
            }
            Err(error) => {
                failures += 1;
                eprintln!("error: {}: {}", unit.label(), error_chain(&error));
            }
        }
    }
    Ok(if failures == 0 {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}
