//! `generate` and `regenerate`: show and confirm what the engine selects,
//! ask the prompts, run the generators in the sandbox, serialize.

use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

use anyhow::Result;
use artifacts_engine::Observer;
use artifacts_engine::selection::{Finding, Reason, SelectionRequest};
use artifacts_engine::{EngineError, GenerateRequest, error_chain};
use artifacts_engine::{Plan, Unit, UnitId};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{GlobalArgs, PromptArgs};
use crate::ask;
use crate::context::{self, Context};
use crate::exit::{self, UsageError};
use crate::report;

/// What the user asked for.
pub struct Request<'a> {
    pub artifacts: &'a [String],
    pub prompts: &'a PromptArgs,
    /// Regenerate even what is current.
    pub force: bool,
    /// With `force`: only what was generated longer ago than this.
    pub older_than: Option<Duration>,
    /// Also replace what another backend than the declared one stores.
    pub regenerate_elsewhere: bool,
}

pub fn run(ctx: &Context, global: &GlobalArgs, request: Request<'_>) -> Result<i32> {
    let plan = ctx.plan()?;
    let named = ctx.select(plan, request.artifacts)?;
    let engine = ctx.engine();
    let candidates = engine.candidates(
        plan,
        &ctx.lock,
        &SelectionRequest {
            units: &named,
            force: request.force,
            older_than: request.older_than,
            cascade: !request.prompts.no_cascade,
            replace_elsewhere: request.regenerate_elsewhere,
            now: SystemTime::now(),
            jobs: ctx.jobs,
        },
    );
    tell(plan, &candidates.findings);
    let accept_stale = accept_stale(plan, &candidates.stale, request.prompts, global.quiet)?;
    let selection = engine.select(plan, &ctx.lock, candidates, accept_stale);
    tell(plan, &selection.findings);
    let checked = if selection.check_errors > 0 {
        exit::FAILURE
    } else {
        exit::SUCCESS
    };
    if request.prompts.dry_run {
        print_dry_run(plan, &selection.units)?;
        return Ok(checked);
    }
    if selection.units.is_empty() {
        if !global.quiet && selection.check_errors > 0 {
            // Their errors are above: "everything is current" would be a lie.
            let errors = selection.check_errors;
            eprintln!(
                "nothing generated: {errors} artifact(s) could not be checked (see the errors above)"
            );
        } else if !global.quiet && selection.left_stale > 0 {
            let left = selection.left_stale;
            eprintln!("nothing generated: {left} stale artifact(s) left as they are");
        } else if !global.quiet && selection.held_back == 0 {
            eprintln!("nothing to generate: everything selected is stored and current");
        }
        return Ok(checked);
    }
    let indexes = selection.indexes();
    crate::commands::preflight::require_writable(ctx, plan, &indexes)?;
    if !request.prompts.yes && !confirm_replacing_by_hand(ctx, plan, &selection.units)? {
        eprintln!("nothing changed");
        return Ok(exit::FAILURE);
    }
    if request.force && !request.prompts.yes && !confirm_replacing(plan, &selection.units)? {
        eprintln!("nothing changed");
        return Ok(exit::FAILURE);
    }
    let answers = ask::collect_answers(plan, &indexes, request.prompts.prompts_file.as_deref())?;
    ctx.realise_generators()?;
    let sandbox = context::sandbox(global)?;

    let checked_only: std::collections::BTreeSet<UnitId> = selection
        .units
        .iter()
        .filter(|(_, reason)| *reason == Reason::Passthrough)
        .map(|(i, _)| *i)
        .collect();
    let mut progress = Progress::new(indexes.len() as u64, global.quiet);
    progress.checked_only = checked_only.iter().map(|&i| plan[i].label()).collect();
    let mut lock = ctx.lock.clone();
    let request = GenerateRequest {
        plan,
        units: &indexes,
        answers: &answers,
        sandbox: &sandbox,
        observer: &progress,
        jobs: ctx.jobs,
    };
    let results = engine.generate(&request, &mut lock);
    progress.finish();
    drop(answers);
    let failed = report(plan, &results, &checked_only, global.quiet);
    Ok(if failed == 0 && selection.check_errors == 0 {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

/// Prints what the selection found, in the order found.
fn tell(plan: &Plan<'_>, findings: &[Finding]) {
    let label = |unit: &UnitId| plan[*unit].label();
    for finding in findings {
        match finding {
            Finding::NoGenerationTime(unit) => eprintln!(
                "note: {} has no generation time in artifacts.lock; not rotating it by age",
                label(unit)
            ),
            Finding::Untracked(unit) => eprintln!(
                "note: {} is stored but not in artifacts.lock: left as it is (`{}` records it)",
                label(unit),
                artifacts_engine::suggestion("accept", &[&plan[*unit].artifact.name])
            ),
            Finding::RecipientsChanged(unit) => eprintln!(
                "note: {} is stored for other recipients; `artifacts rekey` re-encrypts it without regenerating",
                label(unit)
            ),
            Finding::CheckFailed { unit, reason } => {
                eprintln!(
                    "error: cannot check {}: {reason}\n  (not generating it: a failing check is never taken for \"missing\")",
                    label(unit)
                );
                held(&plan[*unit], &format!("cannot check it: {reason}"));
            }
            Finding::HeldElsewhere { unit, reason } => {
                eprintln!(
                    "error: {} is {reason}\n  (not generating a new one; pass --regenerate-elsewhere to replace it)",
                    label(unit)
                );
                held(&plan[*unit], &format!("it is {reason}"));
            }
            Finding::HeldDependent { unit, dependency } => eprintln!(
                "note: {} not regenerated: it would follow {dependency}, which is held back",
                label(unit)
            ),
        }
    }
}

/// A unit not generated because of an error, in the `--json` document.
fn held(unit: &Unit<'_>, why: &str) {
    report::unit_result(unit, "held", serde_json::json!({ "error": why }));
    report::unit_error(unit, why);
}

/// Whether to regenerate the stale units: yes with --yes or --dry-run,
/// otherwise asked (unless quiet); left as they are, they are listed.
fn accept_stale(
    plan: &Plan<'_>,
    stale: &[(UnitId, String)],
    prompts: &PromptArgs,
    quiet: bool,
) -> Result<bool> {
    if stale.is_empty() {
        return Ok(false);
    }
    let list: Vec<String> = stale
        .iter()
        .map(|(i, reason)| format!("  {} ({reason})", plan[*i].label()))
        .collect();
    let accept = prompts.yes
        || prompts.dry_run
        || (!quiet && {
            eprintln!(
                "stale (stored, but no longer matching the declaration):\n{}",
                list.join("\n")
            );
            ask::confirm(&format!("Regenerate {} stale artifact(s)?", stale.len()))?
        });
    if !accept {
        for (i, reason) in stale {
            report::unit_result(
                &plan[*i],
                "left-stale",
                serde_json::json!({ "reason": reason }),
            );
        }
    }
    if !accept && !ask::interactive() {
        eprintln!(
            "warning: {} stale artifact(s) left as they are; pass --yes to regenerate them, or resolve each as its reason says:\n{}",
            list.len(),
            list.join("\n")
        );
    }
    Ok(accept)
}

/// `regenerate` replaces what is stored: only with --yes or a person's yes.
fn confirm_replacing(plan: &Plan<'_>, units: &[(UnitId, Reason)]) -> Result<bool> {
    if !ask::interactive() {
        return Err(UsageError(anyhow::anyhow!(
            "refusing to regenerate {} artifact(s) without confirmation: pass --yes (no terminal to ask)",
            units.len()
        ))
        .into());
    }
    let labels: Vec<String> = units
        .iter()
        .map(|(i, _)| format!("  {}", plan[*i].label()))
        .collect();
    eprintln!(
        "will regenerate, replacing the stored versions:\n{}",
        labels.join("\n")
    );
    ask::confirm("Continue?")
}

/// Values put in by hand (`set`, `edit`, `import`) are replaced by a
/// generated one only with --yes or a person's yes: no generator can make
/// them again.
fn confirm_replacing_by_hand(
    ctx: &Context,
    plan: &Plan<'_>,
    units: &[(UnitId, Reason)],
) -> Result<bool> {
    let labels: Vec<String> = units
        .iter()
        .filter(|(_, reason)| !matches!(reason, Reason::Missing))
        .filter_map(|(i, _)| {
            let unit = &plan[*i];
            let entry = ctx.lock.get(&unit.scope(), unit.name())?;
            let how = entry.provenance?.as_str();
            Some(format!("  {} ({how} by hand)", unit.label()))
        })
        .collect();
    if labels.is_empty() {
        return Ok(true);
    }
    if !ask::interactive() {
        return Err(UsageError(anyhow::anyhow!(
            "refusing to replace {} value(s) put in by hand with generated ones without confirmation: pass --yes (no terminal to ask):\n{}",
            labels.len(),
            labels.join("\n")
        ))
        .into());
    }
    eprintln!(
        "put in by hand, would be replaced by generated values:\n{}",
        labels.join("\n")
    );
    ask::confirm("Replace them?")
}

/// Prints each failure and the summary; returns how many failed.
/// `checked_only` are the units whose backend stores nothing.
fn report(
    plan: &Plan<'_>,
    results: &[(UnitId, Result<(), EngineError>)],
    checked_only: &std::collections::BTreeSet<UnitId>,
    quiet: bool,
) -> usize {
    let mut failed = 0;
    let mut checked = 0;
    for (index, result) in results {
        let unit = &plan[*index];
        match result {
            // A backend that stores nothing: the output was checked, that is all.
            Ok(()) if checked_only.contains(index) => {
                checked += 1;
                report::unit_result(unit, "checked", serde_json::json!({}));
            }
            Ok(()) => report::unit_result(unit, "generated", serde_json::json!({})),
            Err(error) => {
                failed += 1;
                let message = error_chain(error);
                eprintln!("error: {}: {message}", unit.label());
                report::unit_result(unit, "failed", serde_json::json!({ "error": message }));
                report::unit_error(unit, &message);
            }
        }
    }
    if !quiet {
        eprintln!(
            "generated {} artifact(s){}{}",
            results.len() - failed - checked,
            if checked == 0 {
                String::new()
            } else {
                format!(
                    ", checked the output of {checked} whose backend stores nothing (nothing stored)"
                )
            },
            if failed == 0 {
                String::new()
            } else {
                format!(", {failed} failed")
            }
        );
    }
    failed
}

fn print_dry_run(plan: &Plan<'_>, order: &[(UnitId, Reason)]) -> Result<()> {
    if report::enabled() {
        for (index, reason) in order {
            let unit = &plan[*index];
            let prompts: Vec<&String> = unit.artifact.prompts.keys().collect();
            report::unit_result(
                unit,
                "would-generate",
                serde_json::json!({ "reason": reason.to_string(), "asks": prompts }),
            );
        }
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    if order.is_empty() {
        writeln!(stdout, "nothing to generate")?;
    }
    for (index, reason) in order {
        let unit = &plan[*index];
        let prompts: Vec<&str> = unit.artifact.prompts.keys().map(String::as_str).collect();
        write!(
            stdout,
            "would generate {} ({reason}) with backend {}",
            unit.label(),
            unit.backend.name
        )?;
        if !prompts.is_empty() {
            write!(stdout, ", asking {}", prompts.join(", "))?;
        }
        writeln!(stdout)?;
    }
    Ok(())
}

/// Progress on stderr: a bar in a terminal, one line per artifact otherwise (unless quiet).
struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    /// Labels of the units whose backend stores nothing.
    checked_only: std::collections::BTreeSet<String>,
}

impl Progress {
    fn new(total: u64, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        // Age plugins' questions hide it (see ask::progress_bar).
        crate::ask::progress_bar(bar.clone());
        Progress {
            bar,
            quiet,
            checked_only: Default::default(),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        crate::ask::progress_bar(None);
    }
}

impl Observer for Progress {
    fn step(&self, unit: &Unit<'_>, step: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("{step} {}", unit.label())),
            None => tracing::info!("{step} {}", unit.label()),
        }
    }

    fn finished(&self, unit: &Unit<'_>, result: &Result<(), EngineError>) {
        let line = match result {
            Ok(()) if self.checked_only.contains(&unit.label()) => format!(
                "checked {}: its generator wrote the declared files; backend `{}` stores nothing",
                unit.label(),
                unit.backend.name
            ),
            Ok(()) => format!("generated {}", unit.label()),
            Err(_) => format!("failed {}", unit.label()),
        };
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.println(line);
            }
            None if !self.quiet => eprintln!("{line}"),
            None => {}
        }
    }
}
