//! `activate`: generate and install, on the machine itself, the artifacts whose
//! backend stores nothing (`dummy`), and fetch and install those stored in
//! openbao (with the host's AppRole, see [`super::openbao::activate`]). What
//! the dummy and openbao modules' systemd units run.

use std::path::PathBuf;

use anyhow::Result;
use artifacts_engine::{
    Activated, GenerateRequest, InstallRoot, Installed, Plan, Silent, UnitId, error_chain,
};

use artifacts_model::{TargetId, TargetKind};

use crate::args::{ActivateArgs, GlobalArgs};
use crate::ask;
use crate::context::{self, Context};
use crate::exit::{self, UsageError};
use crate::report;

pub fn run(ctx: &Context, global: &GlobalArgs, args: &ActivateArgs) -> Result<i32> {
    let [target] = ctx.targets.as_slice() else {
        return Err(UsageError(anyhow::anyhow!(
            "activate works on one target: pass exactly one --target (the machine or user being activated)"
        ))
        .into());
    };
    refuse_root_for_a_user(target, args.root.is_some())?;
    let plan = ctx.plan()?;
    let engine = ctx.engine();
    let all = ctx.select(plan, &args.artifacts)?;
    let fetched: Vec<UnitId> = all
        .iter()
        .copied()
        .filter(|&i| super::openbao::backend_of(ctx, &plan[i]).is_some())
        .collect();
    let selected: Vec<UnitId> = all
        .into_iter()
        .filter(|&i| engine.is_passthrough(&plan[i]))
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
    let fetched = super::openbao::activate(ctx, plan, target, &fetched, &root);
    let mut failures = report(plan, fetched, global);
    if selected.is_empty() {
        return Ok(if failures == 0 {
            exit::SUCCESS
        } else {
            exit::FAILURE
        });
    }
    let env = |name: &str| std::env::var(name).ok();
    // Prompts are asked only for artifacts that will be generated.
    let into = InstallRoot {
        target,
        root: &root,
        env: &env,
    };
    let to_generate = engine.pending_activation(plan, &selected, &into)?;
    let answers = ask::collect_answers(plan, &to_generate, args.prompts_file.as_deref())?;
    let sandbox = if to_generate.is_empty() {
        artifacts_engine::Sandbox::Off
    } else {
        ctx.realise_generators()?;
        context::sandbox(global)?
    };
    let request = GenerateRequest {
        plan,
        units: &selected,
        answers: &answers,
        sandbox: &sandbox,
        observer: &Silent,
        jobs: 1,
    };
    let results = engine
        .activate(&request, &into)
        .into_iter()
        .map(|(unit, result)| (unit, result.map_err(|error| error_chain(&error))))
        .collect();
    failures += report(plan, results, global);
    Ok(if failures == 0 {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

/// A Home Manager user's files belong to whoever installs them (they
/// declare no owner): as root, another user's would end up root's, which
/// that user cannot read. Installing under `--root` (a staging tree) is
/// allowed, and so is root's own Home Manager configuration.
fn refuse_root_for_a_user(target: &TargetId, staged: bool) -> Result<()> {
    if target.kind != TargetKind::Home
        || target.name == "root"
        || staged
        || !nix::unistd::geteuid().is_root()
    {
        return Ok(());
    }
    Err(UsageError(anyhow::anyhow!(
        "activate --target {} installs files that belong to whoever runs it, and this is root: run it as the user `{}` (the Home Manager module's user service does), or pass --root to install into a staging tree",
        target.reference(),
        target.name
    ))
    .into())
}

/// Prints what was done to each file and each failure (its message);
/// returns how many failed.
fn report(
    plan: &Plan<'_>,
    results: Vec<(UnitId, Result<Activated, String>)>,
    global: &GlobalArgs,
) -> usize {
    let mut failures = 0;
    for (index, result) in results {
        let unit = &plan[index];
        match result {
            Ok(files) => {
                let installed: Vec<serde_json::Value> = files
                    .iter()
                    .map(|(path, outcome)| {
                        let word = match outcome {
                            Installed::Written => "written",
                            Installed::Fixed => "fixed",
                            Installed::Unchanged => "unchanged",
                        };
                        serde_json::json!({ "path": path, "outcome": word })
                    })
                    .collect();
                report::unit_result(
                    unit,
                    "activated",
                    serde_json::json!({ "installed": installed }),
                );
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
            Err(message) => {
                failures += 1;
                eprintln!("error: {}: {message}", unit.label());
                report::unit_result(unit, "failed", serde_json::json!({ "error": message }));
                report::unit_error(unit, &message);
            }
        }
    }
    failures
}
