//! `migrate` and `gc`: moving artifacts between backends, removing orphans.

use std::io::Write;

use anyhow::Result;
use artifacts_engine::error_chain;

use crate::args::{GcArgs, GlobalArgs, MigrateArgs};
use crate::ask;
use crate::context::Context;
use crate::exit::{self, UsageError};

pub fn migrate(ctx: &Context, global: &GlobalArgs, args: &MigrateArgs) -> Result<i32> {
    if ctx.registry.get(&args.to).is_none() {
        return Err(UsageError(anyhow::anyhow!(
            "unknown backend `{}` (known: {})",
            args.to,
            ctx.registry.names().join(", ")
        ))
        .into());
    }
    let plan = ctx.plan()?;
    let selected = ctx.select(&plan, &args.artifacts)?;
    let engine = ctx.engine();
    let mut lock = ctx.lock.clone();
    let mut failures = 0;
    let mut moved = Vec::new();
    for index in selected {
        let unit = &plan.units[index];
        if unit.backend.name == args.to {
            eprintln!("{} already uses `{}`", unit.label(), args.to);
            continue;
        }
        if args.dry_run {
            writeln!(
                std::io::stdout(),
                "would move {} from {} to {}",
                unit.label(),
                unit.backend.name,
                args.to
            )?;
            continue;
        }
        match engine.migrate(&plan, index, &args.to, &mut lock) {
            Ok(done) => {
                if !global.quiet {
                    eprintln!(
                        "moved {} from {} to {} (verified{})",
                        unit.label(),
                        unit.backend.name,
                        args.to,
                        if done.removed_old {
                            ", old copy removed".to_owned()
                        } else {
                            format!(
                                "; `{}` cannot remove, so the old copy is still there",
                                unit.backend.name
                            )
                        }
                    );
                }
                moved.push(unit.name().to_owned());
            }
            Err(error) => {
                failures += 1;
                eprintln!("error: {}: {}", unit.label(), error_chain(&error));
            }
        }
    }
    if !moved.is_empty() {
        moved.sort();
        moved.dedup();
        let source = ctx.model.source.display();
        eprintln!(
            "now change the declaration: set `backend = \"{}\"` on {} in `{source}`; until then `artifacts check` looks for {} in the old backend and reports {} missing",
            args.to,
            moved
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if moved.len() == 1 { "it" } else { "them" },
            if moved.len() == 1 { "it" } else { "them" },
        );
    }
    Ok(if failures == 0 {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

pub fn gc(ctx: &Context, global: &GlobalArgs, args: &GcArgs) -> Result<i32> {
    let plan = ctx.plan()?;
    let engine = ctx.engine();
    let (orphans, skipped, errors) = engine.orphans(&ctx.model, &plan);
    for skip in &skipped {
        eprintln!("skipped backend `{}`: {}", skip.backend, skip.reason);
    }
    for error in &errors {
        eprintln!("error: {}", error_chain(error));
    }
    let mut stdout = std::io::stdout().lock();
    if global.json {
        serde_json::to_writer_pretty(
            &mut stdout,
            &serde_json::json!({ "orphans": orphans, "skipped": skipped }),
        )?;
        writeln!(stdout)?;
    } else if orphans.is_empty() {
        if !global.quiet {
            eprintln!("nothing to collect: everything stored is declared");
        }
    } else {
        for orphan in &orphans {
            writeln!(stdout, "orphan {}", orphan.label())?;
        }
    }
    drop(stdout);
    let failed_listing = if errors.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILURE
    };
    if args.dry_run || orphans.is_empty() {
        return Ok(failed_listing);
    }
    if !args.yes {
        if !ask::interactive() {
            return Err(UsageError(anyhow::anyhow!(
                "refusing to remove {} orphan(s) without confirmation: pass --yes (or --dry-run to only list them)",
                orphans.len()
            ))
            .into());
        }
        if !ask::confirm(&format!(
            "Remove {} orphan(s)? This deletes stored secrets.",
            orphans.len()
        ))? {
            eprintln!("nothing removed");
            return Ok(exit::FAILURE);
        }
    }
    let mut failures = 0;
    for orphan in &orphans {
        match engine.remove_orphan(&ctx.model, orphan) {
            Ok(()) if !global.quiet => eprintln!("removed {}", orphan.label()),
            Ok(()) => {}
            Err(error) => {
                failures += 1;
                eprintln!("error: {}: {}", orphan.label(), error_chain(&error));
            }
        }
    }
    Ok(if failures == 0 {
        failed_listing
    } else {
        exit::FAILURE
    })
}
