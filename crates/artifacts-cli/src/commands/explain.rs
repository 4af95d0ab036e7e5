//! `explain` and `backends`: how things resolve, and what backends offer.

use std::io::Write;

use anyhow::Result;
use artifacts_engine::BackendRegistry;
use artifacts_engine::backend::SectionKind;
use artifacts_engine::lock::Comparison;
use artifacts_engine::{Plan, Unit};
use serde_json::json;

use crate::commands::status::{Row, rows, unit_json};
use crate::context::Context;
use crate::exit::{self, UsageError};
use crate::output::Table;
use crate::report;

pub fn explain(ctx: &Context, artifact: &str, json_output: bool) -> Result<i32> {
    let plan = ctx.plan()?;
    let selected = ctx.select(plan, &[artifact.to_owned()])?;
    if selected.is_empty() {
        return Err(UsageError(anyhow::anyhow!(
            "artifact `{artifact}` is not declared on the selected targets"
        ))
        .into());
    }
    let rows = rows(ctx, plan, &selected);
    if json_output {
        for row in &rows {
            report::artifact(row_json(ctx, plan, row));
        }
        return Ok(exit::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    for (n, row) in rows.iter().enumerate() {
        if n > 0 {
            writeln!(out)?;
        }
        write_declaration(&mut out, ctx, row.unit)?;
        write_state(&mut out, ctx, plan, row)?;
    }
    Ok(exit::SUCCESS)
}

/// Everything `explain --json` says about one unit.
fn row_json(ctx: &Context, plan: &Plan<'_>, row: &Row<'_, '_>) -> serde_json::Value {
    let unit = row.unit;
    let mut value = unit_json(row);
    value["backend_rule"] = json!(unit.backend.rule);
    value["generator"] = json!(unit.artifact.generator);
    let declared = unit.declared(plan, &ctx.lock).ok();
    value["fingerprint"] = json!(declared.as_ref().map(|d| &d.fingerprint));
    value["placement"] = json!(declared.as_ref().map(|d| &d.placement));
    value["lock"] = json!(ctx.lock.get(&unit.scope(), unit.name()));
    value["file_specs"] = json!(unit.artifact.files);
    value["prompts"] = json!(unit.artifact.prompts);
    value["dependencies"] = json!(unit.artifact.dependencies);
    value["inputs"] = json!(unit.artifact.inputs);
    value
}

/// What is declared: the artifact, its backend, generator, prompts,
/// dependencies and files.
fn write_declaration(out: &mut dyn Write, ctx: &Context, unit: &Unit<'_>) -> Result<()> {
    writeln!(out, "artifact   {}", unit.name())?;
    if let Some(description) = &unit.artifact.description {
        writeln!(out, "about      {description}")?;
    }
    writeln!(out, "context    {}", unit.context())?;
    let targets: Vec<String> = unit.targets.iter().map(|t| t.id.reference()).collect();
    writeln!(out, "targets    {}", targets.join(", "))?;
    writeln!(
        out,
        "backend    {} ({})",
        unit.backend.name, unit.backend.rule
    )?;
    if let Some(backend) = ctx.registry.get(&unit.backend.name) {
        writeln!(
            out,
            "           defined in {}",
            backend.defined_in.display()
        )?;
    }
    match &unit.artifact.generator {
        Some(generator) => writeln!(out, "generator  {}", generator.display())?,
        None => writeln!(out, "generator  (none)")?,
    }
    if !unit.artifact.inputs.is_empty() {
        writeln!(out, "inputs     {}", unit.artifact.inputs.join(", "))?;
    }
    if !unit.artifact.prompts.is_empty() {
        let prompts: Vec<String> = unit
            .artifact
            .prompts
            .iter()
            .map(|(name, p)| format!("{name} ({})", p.kind.as_str()))
            .collect();
        writeln!(out, "prompts    {}", prompts.join(", "))?;
    }
    if !unit.artifact.dependencies.is_empty() {
        writeln!(out, "depends on {}", unit.artifact.dependencies.join(", "))?;
    }
    let mut table = Table::new(&["FILE", "PATH", "OWNER", "GROUP", "MODE", "SECRET"]);
    for (name, file) in &unit.artifact.files {
        table.row(vec![
            name.clone(),
            file.path.clone(),
            file.owner.clone().unwrap_or_else(|| "-".into()),
            file.group.clone().unwrap_or_else(|| "-".into()),
            file.mode.to_string(),
            file.secret.to_string(),
        ]);
    }
    table.print(out)?;
    Ok(())
}

/// Where it stands: the declared fingerprint, the lock entry, the status.
fn write_state(
    out: &mut dyn Write,
    ctx: &Context,
    plan: &Plan<'_>,
    row: &Row<'_, '_>,
) -> Result<()> {
    let unit = row.unit;
    let declared = unit.declared(plan, &ctx.lock);
    let entry = ctx.lock.get(&unit.scope(), unit.name());
    match &declared {
        Ok(declared) => {
            // A value put in by hand is compared by its own fingerprint.
            let fingerprint = match entry.and_then(|e| e.provenance) {
                Some(_) => &declared.by_hand,
                None => &declared.fingerprint,
            };
            writeln!(out, "fingerprint {fingerprint}")?;
            writeln!(out, "placement  {}", declared.placement)?;
        }
        Err(error) => writeln!(out, "fingerprint unavailable: {error}")?,
    }
    match entry {
        Some(entry) => {
            writeln!(
                out,
                "lock       {} {} {}{}",
                entry.fingerprint,
                match entry.provenance {
                    Some(provenance) => format!("{} by hand", provenance.as_str()),
                    None => "generated".to_owned(),
                },
                entry
                    .generated_at
                    .as_deref()
                    .unwrap_or("at an unknown time (adopted)"),
                entry
                    .backend
                    .as_ref()
                    .map(|b| format!(", stored by {b}"))
                    .unwrap_or_default()
            )?;
            if let Ok(declared) = &declared
                && declared.compare(entry)
                    == (Comparison::Current {
                        placement_changed: true,
                    })
            {
                writeln!(
                    out,
                    "           placement changed since: nothing to do, files are placed at activation"
                )?;
            }
        }
        None => writeln!(out, "lock       no entry")?,
    }
    writeln!(out, "status     {}", row.status.describe())?;
    Ok(())
}

pub fn backends(registry: &BackendRegistry, json_output: bool) -> Result<i32> {
    if json_output {
        let list: Vec<_> = registry
            .iter()
            .map(|b| {
                json!({
                    "name": b.name,
                    "defined_in": b.defined_in,
                    "capabilities": b.capabilities(),
                    "sections": b.sections,
                })
            })
            .collect();
        report::set("backends", json!(list));
        return Ok(exit::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    if registry.iter().next().is_none() {
        writeln!(
            out,
            "no backends configured (add a backend.toml beside the manifest, or pass --backends FILE)"
        )?;
        return Ok(exit::SUCCESS);
    }
    let mut table = Table::new(&[
        "BACKEND",
        "TARGETS",
        "SHARED",
        "DESERIALIZE",
        "PASSTHROUGH",
        "GC",
        "DEFINED IN",
    ]);
    for backend in registry.iter() {
        let caps = backend.capabilities();
        let targets: Vec<&str> = caps.targets.iter().map(|k: &SectionKind| k.key()).collect();
        table.row(vec![
            backend.name.clone(),
            if targets.is_empty() {
                "-".into()
            } else {
                targets.join(",")
            },
            yes_no(caps.shared),
            yes_no(caps.deserialize),
            yes_no(caps.passthrough),
            yes_no(caps.gc),
            backend.defined_in.display().to_string(),
        ]);
    }
    table.print(&mut out)?;
    Ok(exit::SUCCESS)
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.into()
}

/// `graph`: which artifact feeds which, dependencies before dependents.
pub fn graph(ctx: &Context, dot: bool, json_output: bool) -> Result<i32> {
    let plan = ctx.plan()?;
    let selected = ctx.select(plan, &[])?;
    if json_output {
        let nodes: Vec<_> = selected
            .iter()
            .map(|&i| {
                let unit = &plan[i];
                json!({
                    "unit": unit.label(),
                    "depends_on": unit.dependencies.iter().map(|&d| plan[d].label()).collect::<Vec<_>>(),
                })
            })
            .collect();
        report::set("graph", json!(nodes));
        return Ok(exit::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    if dot {
        writeln!(out, "digraph artifacts {{")?;
        writeln!(out, "  rankdir=LR;")?;
        for &i in &selected {
            let unit = &plan[i];
            writeln!(out, "  {};", dot_id(&unit.label()))?;
            for &d in &unit.dependencies {
                writeln!(
                    out,
                    "  {} -> {};",
                    dot_id(&plan[d].label()),
                    dot_id(&unit.label())
                )?;
            }
        }
        writeln!(out, "}}")?;
    } else {
        for &i in &selected {
            let unit = &plan[i];
            let deps: Vec<String> = unit.dependencies.iter().map(|&d| plan[d].label()).collect();
            if deps.is_empty() {
                writeln!(out, "{}", unit.label())?;
            } else {
                writeln!(out, "{} <- {}", unit.label(), deps.join(", "))?;
            }
        }
    }
    Ok(exit::SUCCESS)
}

/// A DOT identifier: quoted, with quotes and backslashes escaped.
fn dot_id(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
