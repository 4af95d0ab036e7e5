//! `migrate`, `accept` and `gc`: moving artifacts between backends, recording
//! what is stored without regenerating, removing orphans.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::Result;
use artifacts_engine::lifecycle::{Accepted, Orphan};
use artifacts_engine::{Plan, Unit, UnitId};
use artifacts_engine::{StaleCause, Status, error_chain};

use crate::args::{AcceptArgs, GcArgs, GlobalArgs, MigrateArgs};
use crate::ask;
use crate::context::Context;
use crate::exit::{self, UsageError};
use crate::report;
use serde_json::json;

pub fn migrate(ctx: &Context, global: &GlobalArgs, args: &MigrateArgs) -> Result<i32> {
    if let Some(name) = args
        .to
        .iter()
        .chain(&args.from)
        .find(|n| ctx.registry.get(n).is_none())
    {
        return Err(UsageError(anyhow::anyhow!(
            "unknown backend `{name}` (known: {})",
            ctx.registry.names().join(", ")
        ))
        .into());
    }
    let plan = ctx.plan()?;
    let selected = ctx.select(plan, &args.artifacts)?;
    let engine = ctx.engine();
    let mut lock = ctx.lock.clone();
    let mut failures = 0;
    // Moved away from the declared backend: the declaration has to follow.
    let mut undeclared = Vec::new();
    for index in selected {
        let unit = &plan[index];
        let to = args.to.as_deref().unwrap_or(&unit.backend.name);
        let from = match source(&engine, plan, index, &lock, args.from.as_deref(), to) {
            Ok(Source::From(from)) => from,
            Ok(Source::AlreadyThere) => {
                eprintln!("{} is already stored in `{to}`", unit.label());
                report::unit_result(unit, "already-there", json!({ "to": to }));
                if !engine.same_storage(to, &unit.backend.name) {
                    undeclared.push(unit.name().to_owned());
                }
                continue;
            }
            Err(error) => {
                failures += 1;
                failed(unit, &format!("{error:#}"));
                continue;
            }
        };
        if args.dry_run {
            report::unit_result(unit, "would-move", json!({ "from": from, "to": to }));
            if !report::enabled() {
                writeln!(
                    std::io::stdout(),
                    "would move {} from {from} to {to}",
                    unit.label()
                )?;
            }
            continue;
        }
        match engine.migrate(plan, index, &from, to, &mut lock) {
            Ok(done) => {
                report_moved(unit, &from, to, done.removed_old, global.quiet);
                if !engine.same_storage(to, &unit.backend.name) {
                    undeclared.push(unit.name().to_owned());
                }
            }
            Err(error) => {
                failures += 1;
                failed(unit, &error_chain(&error));
            }
        }
    }
    if let Some(to) = &args.to {
        tell_undeclared(ctx, to, undeclared);
    }
    Ok(if failures == 0 {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

/// A unit the command failed on: on stderr, and in the `--json` document.
/// A unit moved (and verified) from one backend to another.
fn report_moved(unit: &Unit<'_>, from: &str, to: &str, removed_old: bool, quiet: bool) {
    report::unit_result(
        unit,
        "moved",
        json!({ "from": from, "to": to, "removed_old": removed_old }),
    );
    if !quiet {
        let old = if removed_old {
            ", old copy removed".to_owned()
        } else {
            format!("; `{from}` cannot remove, so the old copy is still there")
        };
        eprintln!("moved {} from {from} to {to} (verified{old})", unit.label());
    }
}

fn failed(unit: &Unit<'_>, message: &str) {
    eprintln!("error: {}: {message}", unit.label());
    report::unit_result(unit, "failed", json!({ "error": message }));
    report::unit_error(unit, message);
}

/// After moving artifacts away from their declared backend: the declaration
/// has to follow.
fn tell_undeclared(ctx: &Context, to: &str, mut undeclared: Vec<String>) {
    if undeclared.is_empty() {
        return;
    }
    undeclared.sort();
    undeclared.dedup();
    let source = ctx.model.source.display();
    let them = if undeclared.len() == 1 { "it" } else { "them" };
    eprintln!(
        "now change the declaration: set `backend = \"{to}\"` on {} in `{source}`; until then `artifacts check` reports {them} stored elsewhere",
        undeclared
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", "),
    );
}

/// Where a migration starts.
enum Source {
    /// From this backend.
    From(String),
    /// The destination already stores it and nothing else does.
    AlreadyThere,
}

/// The backend to move a unit from: `--from` (which must store it), else
/// nothing when the destination stores it already (another copy elsewhere
/// may be an older secret), else the declared backend when it stores the
/// unit and is not the destination, else the one other backend that stores it.
fn source(
    engine: &artifacts_engine::Engine<'_>,
    plan: &artifacts_engine::Plan<'_>,
    index: UnitId,
    lock: &artifacts_engine::lock::Lock,
    from: Option<&str>,
    to: &str,
) -> Result<Source> {
    let unit = &plan[index];
    if let Some(from) = from {
        if !engine.stores(unit, from)? {
            anyhow::bail!("backend `{from}` does not store it");
        }
        if engine.same_storage(from, to) {
            return Ok(Source::AlreadyThere);
        }
        return Ok(Source::From(from.to_owned()));
    }
    if engine.stores(unit, to)? {
        return Ok(Source::AlreadyThere);
    }
    let declared = &unit.backend.name;
    if !engine.same_storage(declared, to) && engine.stores(unit, declared)? {
        return Ok(Source::From(declared.clone()));
    }
    // Look past the destination: the unit as if declared there.
    let moved = unit.with_backend(to);
    if let Some(found) = engine
        .stored_elsewhere(plan, &moved, lock)
        .map_err(anyhow::Error::msg)?
    {
        return Ok(Source::From(found));
    }
    anyhow::bail!(
        "no backend stores it (run `{}` to generate it)",
        artifacts_engine::suggestion("generate", &[&unit.artifact.name])
    )
}

/// `accept`: records the current declaration for what is stored, without regenerating.
pub fn accept(ctx: &Context, global: &GlobalArgs, args: &AcceptArgs) -> Result<i32> {
    let plan = ctx.plan()?;
    let selected = ctx.select(plan, &args.artifacts)?;
    let engine = ctx.engine();
    let statuses = engine.statuses(plan, &selected, &ctx.lock, ctx.jobs);
    let named = !args.artifacts.is_empty();
    let mut lock = ctx.lock.clone();
    let mut failures = 0;
    let mut recorded = 0;
    for (&index, status) in selected.iter().zip(statuses) {
        let unit = &plan[index];
        let what = match decide(unit, &status, named, global.quiet) {
            Decision::Accept(what) => what,
            Decision::Skip => continue,
            Decision::Refuse => {
                failures += 1;
                continue;
            }
        };
        if args.dry_run {
            if !matches!(status, Status::Ok | Status::RecipientsChanged) {
                report::unit_result(unit, "would-accept", json!({ "reason": what }));
                if !report::enabled() {
                    println!("would accept {} ({what})", unit.label());
                }
            }
            continue;
        }
        match engine.accept(plan, index, &mut lock) {
            Ok(Accepted::Unchanged) => report::unit_result(unit, "unchanged", json!({})),
            Ok(outcome) => {
                recorded += 1;
                let result = if outcome == Accepted::Adopted {
                    "adopted"
                } else {
                    "accepted"
                };
                report::unit_result(unit, result, json!({ "reason": what }));
                if !global.quiet {
                    let verb = if outcome == Accepted::Adopted {
                        "adopted"
                    } else {
                        "accepted"
                    };
                    eprintln!("{verb} {} ({what})", unit.label());
                }
            }
            Err(error) => {
                failures += 1;
                failed(unit, &error_chain(&error));
            }
        }
    }
    if !global.quiet && !args.dry_run {
        eprintln!(
            "recorded {recorded} artifact(s) in artifacts.lock{}",
            if failures > 0 {
                format!(", {failures} could not be")
            } else {
                String::new()
            }
        );
    }
    Ok(if failures == 0 {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

/// What `accept` does with one unit.
enum Decision {
    /// Records it; what changed.
    Accept(String),
    /// Leaves it (already said why, if anything).
    Skip,
    /// Leaves it and fails the run (already said why).
    Refuse,
}

/// Whether to accept a unit, from its status; says why not. `named`: the
/// artifacts were named on the command line, which accepts what was made
/// from an older dependency and makes a missing one an error.
fn decide(unit: &Unit<'_>, status: &Status, named: bool, quiet: bool) -> Decision {
    let what = match status {
        Status::Untracked { .. } => "adopted: stored, not in artifacts.lock".to_owned(),
        Status::Stale {
            cause: StaleCause::Declaration,
            reason,
        } => reason.split(':').next().unwrap_or_default().to_owned(),
        // Made from an older dependency: accepting it is a deliberate choice.
        Status::Stale {
            cause: StaleCause::Dependency,
            reason,
        } => {
            let what = reason.split(':').next().unwrap_or_default().to_owned();
            if !named {
                eprintln!(
                    "note: {} not accepted: {what}, so it was made from an older version of it; regenerate it, or name it to accept it anyway",
                    unit.label()
                );
                return Decision::Skip;
            }
            what
        }
        Status::Ok | Status::RecipientsChanged | Status::Stale { .. } => {
            "the recorded placement or backend changed".to_owned()
        }
        Status::Passthrough => return Decision::Skip,
        Status::Missing | Status::Elsewhere { .. } | Status::Error { .. } => {
            let why = match status {
                Status::Missing => format!(
                    "not stored, so there is nothing to accept (run `{}`)",
                    artifacts_engine::suggestion("generate", &[&unit.artifact.name])
                ),
                other => other.describe(),
            };
            if named || matches!(status, Status::Error { .. }) {
                failed(unit, &why);
                return Decision::Refuse;
            } else if !quiet {
                eprintln!("note: {}: {why}", unit.label());
            }
            return Decision::Skip;
        }
    };
    Decision::Accept(what)
}

pub fn gc(ctx: &Context, global: &GlobalArgs, args: &GcArgs) -> Result<i32> {
    let plan = ctx.plan()?;
    let engine = ctx.engine();
    let (orphans, skipped, errors) = engine.orphans(ctx.model, plan, &ctx.lock);
    let (orphans, kept) = engine.keep_last_copies(plan, orphans);
    for skip in &skipped {
        eprintln!("skipped backend `{}`: {}", skip.backend, skip.reason);
    }
    for keep in &kept {
        eprintln!("kept {}: {}", keep.orphan.label(), keep.reason);
    }
    for error in &errors {
        let message = error_chain(error);
        eprintln!("error: {message}");
        report::error(&message, None);
    }
    report::set("orphans", json!(orphans));
    report::set("kept", json!(kept));
    report::set("skipped", json!(skipped));
    print_orphans(&orphans, global.quiet)?;
    let failed_listing = if errors.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILURE
    };
    if args.dry_run || orphans.is_empty() {
        return Ok(failed_listing);
    }
    if !args.yes && !confirm_removal(orphans.len())? {
        eprintln!("nothing removed");
        return Ok(exit::FAILURE);
    }
    let failed = remove_orphans(ctx, &orphans, global.quiet);
    forget_removed(ctx, plan, &orphans, &failed)?;
    Ok(if failed.is_empty() {
        failed_listing
    } else {
        exit::FAILURE
    })
}

/// The orphans on stdout, one per line (under `--json` they are in the document).
fn print_orphans(orphans: &[Orphan], quiet: bool) -> Result<()> {
    if orphans.is_empty() {
        if !quiet {
            eprintln!("nothing to collect: everything stored is declared");
        }
    } else if !report::enabled() {
        let mut stdout = std::io::stdout().lock();
        for orphan in orphans {
            writeln!(stdout, "orphan {}", orphan.label())?;
        }
    }
    Ok(())
}

/// Asks before deleting stored secrets; without a terminal, refuses.
fn confirm_removal(count: usize) -> Result<bool> {
    if !ask::interactive() {
        return Err(UsageError(anyhow::anyhow!(
            "refusing to remove {count} orphan(s) without confirmation: pass --yes (or --dry-run to only list them)"
        ))
        .into());
    }
    ask::confirm(&format!(
        "Remove {count} orphan(s)? This deletes stored secrets."
    ))
}

/// Removes each orphan; returns the (scope, artifact) pairs that failed.
fn remove_orphans<'o>(
    ctx: &Context,
    orphans: &'o [Orphan],
    quiet: bool,
) -> BTreeSet<(&'o str, &'o str)> {
    let engine = ctx.engine();
    let mut removed = Vec::new();
    let mut failed = BTreeSet::new();
    for orphan in orphans {
        match engine.remove_orphan(ctx.model, orphan) {
            Ok(()) => {
                removed.push(orphan.label());
                if !quiet {
                    eprintln!("removed {}", orphan.label());
                }
            }
            Err(error) => {
                failed.insert(orphan_key(orphan));
                let message = error_chain(&error);
                eprintln!("error: {}: {message}", orphan.label());
                report::error(&message, Some(&orphan.label()));
            }
        }
    }
    report::set("removed", json!(removed));
    failed
}

/// Drops the lock entries of what is gone: only once every copy of it was
/// removed (what the lock does not record is never collected), and never of
/// what is still declared there (an old copy left behind by a migration).
fn forget_removed(
    ctx: &Context,
    plan: &Plan<'_>,
    orphans: &[Orphan],
    failed: &BTreeSet<(&str, &str)>,
) -> Result<()> {
    let mut lock = ctx.lock.clone();
    let mut forgotten = 0;
    for orphan in orphans {
        let (scope, artifact) = orphan_key(orphan);
        let declared = plan
            .units()
            .any(|u| u.scope() == scope && u.name() == artifact);
        if !declared && !failed.contains(&(scope, artifact)) && lock.get(scope, artifact).is_some()
        {
            lock.remove(scope, artifact);
            forgotten += 1;
        }
    }
    if forgotten > 0 {
        lock.save()?;
    }
    Ok(())
}

/// The lock scope and artifact name of an orphan.
fn orphan_key(orphan: &Orphan) -> (&str, &str) {
    (
        orphan.target.as_deref().unwrap_or("shared"),
        orphan.artifact.as_str(),
    )
}
