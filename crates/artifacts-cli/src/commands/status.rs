//! `list` and `check`: what is declared, and where it stands.

use std::io::Write;

use anyhow::Result;
use artifacts_engine::Status;
use artifacts_engine::plan::{Plan, Unit};
use serde_json::json;

use crate::args::CheckArgs;
use crate::context::Context;
use crate::exit;
use crate::output::{Table, paint_status};

/// One row of status: the unit and its status.
pub struct Row<'p, 'm> {
    pub unit: &'p Unit<'m>,
    pub status: Status,
}

pub fn rows<'p, 'm>(ctx: &Context, plan: &'p Plan<'m>, selected: &[usize]) -> Vec<Row<'p, 'm>> {
    let statuses = ctx.engine().statuses(plan, selected, &ctx.lock, ctx.jobs);
    selected
        .iter()
        .zip(statuses)
        .map(|(&i, status)| Row {
            unit: &plan.units[i],
            status,
        })
        .collect()
}

pub fn targets_label(unit: &Unit<'_>) -> String {
    if unit.context == artifacts_model::Context::Shared {
        unit.targets
            .iter()
            .map(|t| t.id.reference())
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        unit.targets[0].id.reference()
    }
}

fn status_text(status: &Status) -> String {
    match status {
        Status::Passthrough => "ok (not stored by design)".into(),
        other => other.describe(),
    }
}

pub fn unit_json(row: &Row<'_, '_>) -> serde_json::Value {
    let unit = row.unit;
    let reason = row.status.reason();
    json!({
        "artifact": unit.name(),
        "context": unit.context.as_str(),
        "targets": unit.targets.iter().map(|t| t.id.reference()).collect::<Vec<_>>(),
        "backend": unit.backend.name,
        "files": unit.artifact.files.keys().collect::<Vec<_>>(),
        "status": row.status.word(),
        "reason": reason,
    })
}

/// Prints the status table (or JSON) of `rows`.
pub fn print_table(rows: &[Row<'_, '_>], json_output: bool) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    if json_output {
        let list: Vec<_> = rows.iter().map(unit_json).collect();
        serde_json::to_writer_pretty(&mut stdout, &json!({ "artifacts": list }))?;
        writeln!(stdout)?;
        return Ok(());
    }
    let mut table = Table::new(&[
        "TARGET", "ARTIFACT", "CONTEXT", "BACKEND", "FILES", "STATUS",
    ]);
    for row in rows {
        let unit = row.unit;
        table.row(vec![
            targets_label(unit),
            unit.name().to_owned(),
            unit.context.as_str().to_owned(),
            unit.backend.name.clone(),
            unit.artifact
                .files
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(","),
            paint_status(&row.status, &status_text(&row.status)),
        ]);
    }
    table.print(&mut stdout)?;
    Ok(())
}

pub fn list(ctx: &Context, json_output: bool) -> Result<i32> {
    let plan = ctx.plan()?;
    let selected = ctx.select(&plan, &[])?;
    let rows = rows(ctx, &plan, &selected);
    print_table(&rows, json_output)?;
    Ok(exit::SUCCESS)
}

pub struct Summary {
    pub ok: usize,
    pub missing: usize,
    pub stale: usize,
    pub errors: usize,
}

pub fn summarize(rows: &[Row<'_, '_>]) -> Summary {
    let count = |f: fn(&Status) -> bool| rows.iter().filter(|r| f(&r.status)).count();
    Summary {
        ok: count(|s| matches!(s, Status::Ok | Status::Passthrough)),
        missing: count(|s| matches!(s, Status::Missing)),
        stale: count(|s| matches!(s, Status::Stale(_) | Status::RecipientsChanged)),
        errors: count(|s| matches!(s, Status::Error(_))),
    }
}

pub fn check(ctx: &Context, args: &CheckArgs, json_output: bool, quiet: bool) -> Result<i32> {
    let plan = ctx.plan()?;
    let selected = ctx.select(&plan, &args.artifacts)?;
    let mut rows = rows(ctx, &plan, &selected);
    if let Some(limit) = args.max_age {
        for row in &mut rows {
            if row.status == Status::Ok
                && let Some(age) = age(ctx, row.unit)
                && age > limit
            {
                row.status = Status::Stale(format!(
                    "generated {} ago, longer than --max-age {}",
                    humantime::format_duration(std::time::Duration::from_secs(
                        age.as_secs() / 3600 * 3600
                    )),
                    humantime::format_duration(limit)
                ));
            }
        }
    }
    let summary = summarize(&rows);
    let code = if summary.errors > 0 {
        exit::USAGE
    } else if summary.missing + summary.stale > 0 {
        exit::FAILURE
    } else {
        exit::SUCCESS
    };
    if json_output {
        let list: Vec<_> = rows.iter().map(unit_json).collect();
        let document = json!({
            "ok": code == exit::SUCCESS,
            "summary": {
                "ok": summary.ok,
                "missing": summary.missing,
                "stale": summary.stale,
                "error": summary.errors,
            },
            "artifacts": list,
        });
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, &document)?;
        writeln!(stdout)?;
        return Ok(code);
    }
    let mut stdout = std::io::stdout().lock();
    for row in &rows {
        if matches!(row.status, Status::Ok | Status::Passthrough) {
            continue;
        }
        writeln!(
            stdout,
            "{:<8} {} {}",
            paint_status(&row.status, row.status.word()),
            row.unit.scope(),
            row.unit.name()
        )?;
        if let Some(reason) = row.status.reason() {
            for line in reason.lines() {
                writeln!(stdout, "         {line}")?;
            }
        }
    }
    if !quiet {
        writeln!(
            stdout,
            "{} ok, {} missing, {} stale, {} error{}",
            summary.ok,
            summary.missing,
            summary.stale,
            summary.errors,
            if summary.errors == 1 { "" } else { "s" }
        )?;
        let rekey = rows
            .iter()
            .filter(|r| r.status == Status::RecipientsChanged)
            .count();
        if summary.missing + summary.stale > rekey && summary.errors == 0 {
            writeln!(
                stdout,
                "run `artifacts generate` to generate what is missing"
            )?;
        }
        if rekey > 0 {
            writeln!(
                stdout,
                "run `artifacts rekey` to re-encrypt {rekey} artifact(s) for the current recipients"
            )?;
        }
    }
    Ok(code)
}

/// How long ago a unit was generated, per artifacts.lock.
pub fn age(ctx: &Context, unit: &Unit<'_>) -> Option<std::time::Duration> {
    let generated = ctx.lock.get(&unit.scope(), unit.name())?.generated_at()?;
    std::time::SystemTime::now().duration_since(generated).ok()
}
