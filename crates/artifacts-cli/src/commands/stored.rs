//! `show` and `rekey`: reading stored artifacts back, and re-encrypting them.

use std::io::Write;

use anyhow::Result;
use artifacts_engine::{Plan, Status, Unit, UnitId, error_chain};

use crate::args::{GlobalArgs, RekeyArgs, ShowArgs};
use crate::context::Context;
use crate::exit;
use crate::report;

pub fn show(ctx: &Context, args: &ShowArgs) -> Result<i32> {
    let plan = ctx.plan()?;
    let index = one_unit(ctx, plan, &args.artifact)?;
    let unit = &plan[index];
    let file = pick_file(unit, args.file.as_deref())?;
    let content = if let Some(version) = args.version {
        read_version(ctx, unit, &file, version)?
    } else if unit.artifact.files[&file].secret {
        let files = ctx.engine().deserialize(plan, index)?;
        files
            .into_iter()
            .find(|(name, _)| *name == file)
            .map(|(_, content)| content)
            .expect("deserialize validated every declared file")
    } else {
        // Public files need no key: read them straight from the public store.
        let engine = ctx.engine();
        let path = engine.public_file_path(unit, &file);
        let stored = engine
            .read_public_file(unit, &file)
            .map_err(|e| anyhow::anyhow!("failed to read public file `{}`: {e}", path.display()))?;
        zeroize::Zeroizing::new(stored.ok_or_else(|| {
            anyhow::anyhow!(
                "public file `{}` is not stored yet; run `artifacts generate`",
                path.display()
            )
        })?)
    };
    if report::enabled() {
        // The document carries text only; bytes go to stdout as they are.
        let text = std::str::from_utf8(&content).map_err(|_| {
            exit::usage(format!(
                "file `{file}` of artifact `{}` is not UTF-8 text, so it cannot go into a JSON document; leave out --json to print it as it is",
                args.artifact
            ), None)
        })?;
        report::unit_result(
            unit,
            "shown",
            serde_json::json!({ "file": file, "content": text }),
        );
        return Ok(exit::SUCCESS);
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&content)?;
    stdout.flush()?;
    Ok(exit::SUCCESS)
}

/// `show --version N`: version N of a secret file kept by a versioning
/// backend (openbao; the others keep one generation).
fn read_version(
    ctx: &Context,
    unit: &artifacts_engine::Unit<'_>,
    file: &str,
    version: u64,
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let backend = super::openbao::backend_of(ctx, unit).ok_or_else(|| {
        exit::usage(format!(
            "--version reads earlier versions from openbao; `{}` is stored by `{}`, which keeps only the current one",
            unit.artifact.name, unit.backend.name
        ), None)
    })?;
    if !unit.artifact.files[file].secret {
        return Err(exit::usage(
            format!(
                "`{file}` of `{}` is public: the public store keeps only the current version (see its git history)",
                unit.artifact.name
            ),
            None,
        ));
    }
    let call = super::openbao::call(ctx, backend, unit, None)?;
    let scratch = artifacts_os::scratch::Scratch::new("show")?;
    let out = scratch.subdir("out")?;
    artifacts_backends::openbao_read_version(&call, &out, version)
        .map_err(|error| super::openbao::with_hint(&error).context(unit.label()))?;
    Ok(zeroize::Zeroizing::new(std::fs::read(out.join(file))?))
}

/// The one unit of `artifact` on the selected targets: a shared artifact's,
/// or the only target's; several need `--target`.
pub(crate) fn one_unit(ctx: &Context, plan: &Plan<'_>, artifact: &str) -> Result<UnitId> {
    let selected = ctx.select(plan, &[artifact.to_owned()])?;
    match selected.as_slice() {
        [one] => Ok(*one),
        [] => Err(exit::usage(
            format!("artifact `{artifact}` is not declared on the selected targets"),
            None,
        )),
        many => {
            let targets: Vec<String> = many.iter().map(|&i| plan[i].scope()).collect();
            Err(exit::usage(
                format!(
                    "artifact `{artifact}` is declared on {} targets; pass --target with one of: {}",
                    many.len(),
                    targets.join(", ")
                ),
                None,
            ))
        }
    }
}

/// The declared file `file`, or the only one.
pub(crate) fn pick_file(unit: &Unit<'_>, file: Option<&str>) -> Result<String> {
    let files: Vec<&String> = unit.artifact.files.keys().collect();
    match file {
        Some(file) if unit.artifact.files.contains_key(file) => Ok(file.to_owned()),
        Some(file) => Err(exit::usage(
            format!(
                "artifact `{}` has no file `{file}` (files: {})",
                unit.name(),
                quoted(&files)
            ),
            None,
        )),
        None if files.len() == 1 => Ok(files[0].clone()),
        None => Err(exit::usage(
            format!(
                "artifact `{}` has several files; pass --file with one of: {}",
                unit.name(),
                quoted(&files)
            ),
            None,
        )),
    }
}

/// Names in backquotes, separated by commas.
pub(crate) fn quoted(names: &[&String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn rekey(ctx: &Context, global: &GlobalArgs, args: &RekeyArgs) -> Result<i32> {
    let plan = ctx.plan()?;
    let selected = ctx.select(plan, &args.artifacts)?;
    let engine = ctx.engine();
    let statuses = engine.statuses(plan, &selected, &ctx.lock, ctx.jobs);
    let mut failures = 0;
    let mut changed = 0;
    let mut todo = Vec::new();
    // Stored for their recipients: nothing to do, but the backend may clean
    // up after a killed rekey in their stores.
    let mut current = Vec::new();
    for (&index, status) in selected.iter().zip(statuses) {
        let unit = &plan[index];
        match status {
            Status::RecipientsChanged => {}
            Status::Ok | Status::Stale { .. } | Status::Untracked { .. } => {
                current.push(index);
                continue;
            }
            Status::Error { reason } => {
                failures += 1;
                eprintln!("error: cannot check {}: {reason}", unit.label());
                let message = format!("cannot check it: {reason}");
                report::unit_result(unit, "failed", serde_json::json!({ "error": message }));
                report::unit_error(unit, &message);
                continue;
            }
            _ => continue,
        }
        if args.dry_run {
            report::unit_result(unit, "would-re-encrypt", serde_json::json!({}));
            if !report::enabled() {
                writeln!(std::io::stdout(), "would re-encrypt {}", unit.label())?;
            }
            continue;
        }
        todo.push(index);
    }
    // One decrypt and one encrypt per file, side by side across files.
    if args.dry_run {
        current.clear();
    }
    let results = engine.rekey_units(plan, &todo, &current, &ctx.lock, ctx.jobs);
    for (&index, result) in todo.iter().zip(results) {
        let unit = &plan[index];
        match result {
            Ok(false) => {}
            Ok(true) => {
                changed += 1;
                report::unit_result(unit, "re-encrypted", serde_json::json!({}));
                if !global.quiet {
                    eprintln!("re-encrypted {}", unit.label());
                }
            }
            Err(error) => {
                failures += 1;
                let message = error_chain(&error);
                eprintln!("error: {}: {message}", unit.label());
                report::unit_result(unit, "failed", serde_json::json!({ "error": message }));
                report::unit_error(unit, &message);
            }
        }
    }
    if !global.quiet && !args.dry_run {
        eprintln!(
            "re-encrypted {changed} artifact(s){}",
            if failures > 0 {
                format!(", {failures} failed")
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
