//! `activate`: generate and install, on the machine itself, the artifacts whose
//! backend stores nothing (`dummy`), and fetch and install those stored in
//! openbao (with the host's AppRole, see [`super::openbao::activate`]). What
//! the dummy and openbao modules' systemd units run.

use std::path::PathBuf;

use anyhow::Result;
use artifacts_engine::install::Installed;
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
    let all = ctx.select(&plan, &args.artifacts)?;
    let fetched: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| super::openbao::backend_of(ctx, &plan.units[i]).is_some())
        .collect();
    let selected: Vec<usize> = all
        .into_iter()
        .filter(|&i| engine.is_passthrough(&plan.units[i]))
        .collect();
    if selected.is_empty() && fetched.is_empty() {
        if !global.quiet {
            eprintln!(
                "nothing to activate: no artifact of {target} uses a backend that generates or fetches at activation (dummy, openbao)"
            );
        }
        return Ok(exit::SUCCESS);
    }
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let mut failures = super::openbao::activate(ctx, global, &plan, target, &fetched, &root);
    if selected.is_empty() {
        return Ok(if failures == 0 {
            exit::SUCCESS
        } else {
            exit::FAILURE
        });
    }
    let env = |name: &str| std::env::var(name).ok();
    // Prompts are asked only for artifacts that will be generated.
    let to_generate = engine.pending_activation(&plan, &selected, &root, &env)?;
    let answers = ask::collect_answers(&plan, &to_generate, args.prompts_file.as_deref())?;
    let sandbox = if to_generate.is_empty() {
        artifacts_engine::sandbox::Sandbox::Off
    } else {
        ctx.realise_generators()?;
        context::sandbox(global)?
    };
    let results = engine.activate(&plan, &selected, &answers, &sandbox, &root, &env, &Silent);
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
