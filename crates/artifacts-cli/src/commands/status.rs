//! `list` and `check`: what is declared, and where it stands.

use std::io::Write;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use artifacts_engine::{Plan, Unit, UnitId};
use artifacts_engine::{StaleCause, Status, selection, suggestion};
use serde_json::json;

use crate::args::CheckArgs;
use crate::context::Context;
use crate::exit;
use crate::output::{Table, paint_status};
use crate::report;

/// One row of status: the unit and its status.
pub struct Row<'p, 'm> {
    pub unit: &'p Unit<'m>,
    pub status: Status,
}

pub fn rows<'p, 'm>(ctx: &Context, plan: &'p Plan<'m>, selected: &[UnitId]) -> Vec<Row<'p, 'm>> {
    let statuses = ctx.engine().statuses(plan, selected, &ctx.lock, ctx.jobs);
    selected
        .iter()
        .zip(statuses)
        .map(|(&i, status)| Row {
            unit: &plan[i],
            status,
        })
        .collect()
}

pub fn targets_label(unit: &Unit<'_>) -> String {
    unit.targets
        .iter()
        .map(|t| t.id.reference())
        .collect::<Vec<_>>()
        .join(", ")
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
    let mut value = json!({
        "artifact": unit.name(),
        "context": unit.context().as_str(),
        "targets": unit.targets.iter().map(|t| t.id.reference()).collect::<Vec<_>>(),
        "backend": unit.backend.name,
        "files": unit.artifact.files.keys().collect::<Vec<_>>(),
        "status": row.status.word(),
        "reason": reason,
    });
    match &row.status {
        Status::Elsewhere { stored_in, .. } => value["stored_in"] = json!(stored_in),
        Status::Stale { cause, .. } => value["cause"] = json!(cause),
        Status::RecipientsChanged => value["cause"] = json!("recipients"),
        _ => {}
    }
    value
}
/// Prints the status table (or JSON) of `rows`.
pub fn print_table(rows: &[Row<'_, '_>], json_output: bool) -> Result<()> {
    if json_output {
        rows.iter().map(unit_json).for_each(report::artifact);
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    let mut table = Table::new(&[
        "TARGET", "ARTIFACT", "CONTEXT", "BACKEND", "FILES", "STATUS",
    ]);
    for row in rows {
        let unit = row.unit;
        table.row(vec![
            targets_label(unit),
            unit.name().to_owned(),
            unit.context().as_str().to_owned(),
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
    let selected = ctx.select(plan, &[])?;
    let rows = rows(ctx, plan, &selected);
    print_table(&rows, json_output)?;
    Ok(exit::SUCCESS)
}

pub struct Summary {
    pub ok: usize,
    pub missing: usize,
    pub stale: usize,
    pub elsewhere: usize,
    pub untracked: usize,
    pub errors: usize,
}

impl Summary {
    /// The counts line `check` ends with.
    fn counts(&self) -> String {
        let mut counts = format!(
            "{} ok, {} missing, {} stale",
            self.ok, self.missing, self.stale
        );
        if self.elsewhere > 0 {
            counts.push_str(&format!(", {} stored elsewhere", self.elsewhere));
        }
        if self.untracked > 0 {
            counts.push_str(&format!(", {} untracked", self.untracked));
        }
        let plural = if self.errors == 1 { "" } else { "s" };
        format!("{counts}, {} error{plural}", self.errors)
    }

    /// Whether something needs doing before the declaration holds (untracked ones are fine).
    pub fn needs_work(&self) -> bool {
        self.missing + self.stale + self.elsewhere > 0
    }
}

pub fn summarize(rows: &[Row<'_, '_>]) -> Summary {
    let count = |f: fn(&Status) -> bool| rows.iter().filter(|r| f(&r.status)).count();
    Summary {
        ok: count(|s| matches!(s, Status::Ok | Status::Passthrough)),
        missing: count(|s| matches!(s, Status::Missing)),
        stale: count(|s| matches!(s, Status::Stale { .. } | Status::RecipientsChanged)),
        elsewhere: count(|s| matches!(s, Status::Elsewhere { .. })),
        untracked: count(|s| matches!(s, Status::Untracked { .. })),
        errors: count(|s| matches!(s, Status::Error { .. })),
    }
}

pub fn check(ctx: &Context, args: &CheckArgs, json_output: bool, quiet: bool) -> Result<i32> {
    let plan = ctx.plan()?;
    let selected = ctx.select(plan, &args.artifacts)?;
    let mut rows = rows(ctx, plan, &selected);
    if let Some(limit) = args.max_age {
        mark_older_than(ctx, &mut rows, limit);
    }
    let summary = summarize(&rows);
    let code = if summary.errors > 0 {
        exit::USAGE
    } else if summary.needs_work() || (args.strict && summary.untracked > 0) {
        exit::FAILURE
    } else {
        exit::SUCCESS
    };
    if json_output {
        // `ok` is the document's own: exit code 0.
        report::set(
            "summary",
            json!({
                "ok": summary.ok,
                "missing": summary.missing,
                "stale": summary.stale,
                "elsewhere": summary.elsewhere,
                "untracked": summary.untracked,
                "error": summary.errors,
            }),
        );
        rows.iter().map(unit_json).for_each(report::artifact);
    }
    // The same text for people: on stdout, or on stderr beside the document.
    let mut out: Box<dyn Write> = if json_output {
        Box::new(std::io::stderr().lock())
    } else {
        Box::new(std::io::stdout().lock())
    };
    print_problems(&mut out, &rows)?;
    if !quiet {
        writeln!(out, "{}", summary.counts())?;
        for line in advice(plan, &rows, args.strict) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(code)
}

/// `check --max-age`: what is current but generated longer ago than `limit` is stale.
fn mark_older_than(ctx: &Context, rows: &mut [Row<'_, '_>], limit: Duration) {
    for row in rows {
        if row.status == Status::Ok
            && let Some(age) = selection::age(row.unit, &ctx.lock, SystemTime::now())
            && age > limit
        {
            row.status = Status::Stale {
                cause: StaleCause::Age,
                reason: format!(
                    "{}, longer than --max-age {}",
                    selection::Reason::Older(age),
                    humantime::format_duration(limit)
                ),
            };
        }
    }
}

/// Each unit that is not fine, with its reason indented below.
fn print_problems(out: &mut dyn Write, rows: &[Row<'_, '_>]) -> Result<()> {
    for row in rows {
        if matches!(row.status, Status::Ok | Status::Passthrough) {
            continue;
        }
        writeln!(
            out,
            "{:<8} {} {}",
            paint_status(&row.status, row.status.word()),
            row.unit.scope(),
            row.unit.name()
        )?;
        if let Some(reason) = row.status.reason() {
            for line in reason.lines() {
                writeln!(out, "         {line}")?;
            }
        }
    }
    Ok(())
}

/// What to run next, one line per kind of finding: exactly the commands
/// that resolve what `rows` show (the same text `check` and the guided mode print).
pub fn advice(plan: &Plan<'_>, rows: &[Row<'_, '_>], strict: bool) -> Vec<String> {
    let of = |f: &dyn Fn(&Status) -> bool| -> Vec<&Unit<'_>> {
        rows.iter()
            .filter(|r| f(&r.status))
            .map(|r| r.unit)
            .collect()
    };
    let mut lines = Vec::new();
    let missing = of(&|s| matches!(s, Status::Missing));
    if !missing.is_empty() {
        lines.push(format!(
            "run {} to generate what is missing",
            commands(plan, "generate", &missing)
        ));
    }
    let elsewhere = of(&|s| matches!(s, Status::Elsewhere { .. }));
    if !elsewhere.is_empty() {
        lines.push(format!(
            "run {} to move what another backend stores to the declared one (or declare that backend again)",
            commands(plan, "migrate", &elsewhere)
        ));
    }
    let changed = of(&|s| {
        matches!(
            s,
            Status::Stale {
                cause: StaleCause::Declaration,
                ..
            }
        )
    });
    if !changed.is_empty() {
        lines.push(format!(
            "run {} to keep what is stored for the changed declaration, or {} to replace it",
            commands(plan, "accept", &changed),
            commands(plan, "regenerate", &changed)
        ));
    }
    let outdated = of(&|s| {
        matches!(
            s,
            Status::Stale {
                cause: StaleCause::Dependency | StaleCause::Age,
                ..
            }
        )
    });
    if !outdated.is_empty() {
        lines.push(format!(
            "run {} to regenerate what is outdated",
            commands(plan, "regenerate", &outdated)
        ));
    }
    let rekey = of(&|s| *s == Status::RecipientsChanged);
    if !rekey.is_empty() {
        lines.push(format!(
            "run `artifacts rekey` to re-encrypt {} artifact(s) for the current recipients",
            rekey.len()
        ));
    }
    let untracked = of(&|s| matches!(s, Status::Untracked { .. }));
    if !untracked.is_empty() {
        lines.push(format!(
            "{}{} untracked artifact(s) are stored but not in artifacts.lock and are left as they are; run {} to record them",
            if strict { "" } else { "note: " },
            untracked.len(),
            commands(plan, "accept", &untracked)
        ));
    }
    lines
}

/// `artifacts COMMAND NAME…` for `units`; when other units of the same names
/// must not be touched, one command per target, narrowed with `--target`.
fn commands(plan: &Plan<'_>, command: &str, units: &[&Unit<'_>]) -> String {
    fn names<'m>(units: &[&Unit<'m>]) -> Vec<&'m String> {
        let mut names: Vec<&String> = units.iter().map(|u| &u.artifact.name).collect();
        names.sort();
        names.dedup();
        names
    }
    let all = names(units);
    let covered = plan
        .units()
        .filter(|u| all.contains(&&u.artifact.name))
        .count()
        == units.len();
    if covered {
        return format!("`{}`", suggestion(command, &all));
    }
    let mut scopes: Vec<String> = units.iter().map(|u| u.scope()).collect();
    scopes.sort();
    scopes.dedup();
    scopes
        .iter()
        .map(|scope| {
            let here: Vec<&Unit<'_>> = units
                .iter()
                .copied()
                .filter(|u| &u.scope() == scope)
                .collect();
            let line = suggestion(command, &names(&here));
            if scope == "shared" {
                format!("`{line}`")
            } else {
                format!("`{line} --target {scope}`")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
