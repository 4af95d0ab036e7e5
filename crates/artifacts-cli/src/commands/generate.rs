//! `generate` and `regenerate`: ask, run generators in the sandbox, serialize.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Result;
use artifacts_engine::engine::Observer;
use artifacts_engine::plan::{Plan, Unit};
use artifacts_engine::prompts::Answers;
use artifacts_engine::{EngineError, Status, error_chain};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{GlobalArgs, PromptArgs};
use crate::ask::{self, TerminalAsker};
use crate::context::{self, Context};
use crate::exit::{self, UsageError};

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
    let selected = ctx.select(&plan, request.artifacts)?;
    let engine = ctx.engine();
    let storing: Vec<usize> = selected
        .iter()
        .copied()
        .filter(|&i| !engine.is_passthrough(&plan.units[i]))
        .collect();
    let mut check_errors = 0;
    // Statuses already checked, so the backend-switch guard below checks each unit once.
    let mut known: std::collections::BTreeMap<usize, Status> = Default::default();
    let mut chosen = Vec::new();
    let mut reasons = Vec::new();
    let mut left_stale = 0;
    if request.force {
        for &index in &storing {
            let unit = &plan.units[index];
            let Some(limit) = request.older_than else {
                chosen.push(index);
                reasons.push("forced".to_owned());
                continue;
            };
            match crate::commands::status::age(ctx, unit) {
                Some(age) if age > limit => {
                    chosen.push(index);
                    reasons.push(format!(
                        "generated {} ago",
                        humantime::format_duration(round_to_hours(age))
                    ));
                }
                Some(_) => {}
                None => eprintln!(
                    "note: {} has no generation time in artifacts.lock; not rotating it by age",
                    unit.label()
                ),
            }
        }
    } else {
        let statuses = engine.statuses(&plan, &storing, &ctx.lock, ctx.jobs);
        let mut stale = Vec::new();
        for (&index, status) in storing.iter().zip(statuses) {
            known.insert(index, status.clone());
            match status {
                Status::Missing => {
                    chosen.push(index);
                    reasons.push("missing".to_owned());
                }
                // Left to the guard below, which explains why.
                Status::Elsewhere { .. } => {
                    chosen.push(index);
                    reasons.push(String::new());
                }
                Status::Untracked { .. } => eprintln!(
                    "note: {} is stored but not in artifacts.lock: left as it is (`{}` records it)",
                    plan.units[index].label(),
                    artifacts_engine::suggestion("accept", &[&plan.units[index].artifact.name])
                ),
                Status::Stale { reason, .. } => stale.push((index, reason)),
                Status::RecipientsChanged => eprintln!(
                    "note: {} is stored for other recipients; `artifacts rekey` re-encrypts it without regenerating",
                    plan.units[index].label()
                ),
                Status::Error { reason } => {
                    check_errors += 1;
                    eprintln!(
                        "error: cannot check {}: {reason}\n  (not generating it: a failing check is never taken for \"missing\")",
                        plan.units[index].label()
                    );
                }
                Status::Ok | Status::Passthrough => {}
            }
        }
        if !stale.is_empty() {
            let list: Vec<String> = stale
                .iter()
                .map(|(i, reason)| format!("  {} ({reason})", plan.units[*i].label()))
                .collect();
            let accept = request.prompts.yes
                || request.prompts.dry_run
                || (!global.quiet && {
                    eprintln!(
                        "stale (stored, but no longer matching the declaration):\n{}",
                        list.join("\n")
                    );
                    ask::confirm(&format!("Regenerate {} stale artifact(s)?", stale.len()))?
                });
            if accept {
                for (index, reason) in stale {
                    chosen.push(index);
                    reasons.push(format!("stale: {reason}"));
                }
            } else {
                left_stale = stale.len();
            }
            if !accept && !ask::interactive() {
                eprintln!(
                    "warning: {} stale artifact(s) left as they are; pass --yes to regenerate them, or resolve each as its reason says:\n{}",
                    list.len(),
                    list.join("\n")
                );
            }
        }
    }
    let mut order: Vec<(usize, String)> = chosen.into_iter().zip(reasons).collect();
    // Regenerating an artifact makes its dependents stale: regenerate them too,
    // on every target (a new shared CA invalidates every machine's certificate).
    if !request.prompts.no_cascade {
        let mut index = 0;
        while index < order.len() {
            let (unit, _) = order[index];
            for dependent in plan.dependents_of(unit) {
                if !order.iter().any(|(i, _)| *i == dependent)
                    && !engine.is_passthrough(&plan.units[dependent])
                {
                    order.push((
                        dependent,
                        format!("depends on {}", plan.units[unit].label()),
                    ));
                }
            }
            index += 1;
        }
    }
    // Plan order is dependency order.
    order.sort_by_key(|(i, _)| *i);
    let held_back = guard_elsewhere(
        ctx,
        &plan,
        &mut order,
        &mut known,
        request.regenerate_elsewhere,
    );
    check_errors += held_back;

    if request.prompts.dry_run {
        print_dry_run(&plan, &order)?;
        return Ok(if check_errors > 0 {
            exit::FAILURE
        } else {
            exit::SUCCESS
        });
    }
    if order.is_empty() {
        if !global.quiet && left_stale > 0 {
            eprintln!("nothing generated: {left_stale} stale artifact(s) left as they are");
        } else if !global.quiet && held_back == 0 {
            eprintln!("nothing to generate: everything selected is stored and current");
        }
        return Ok(if check_errors > 0 {
            exit::FAILURE
        } else {
            exit::SUCCESS
        });
    }
    let indexes: Vec<usize> = order.iter().map(|(i, _)| *i).collect();
    crate::commands::preflight::require_writable(ctx, &plan, &indexes)?;
    if request.force && !request.prompts.yes {
        let labels: Vec<String> = order
            .iter()
            .map(|(i, _)| format!("  {}", plan.units[*i].label()))
            .collect();
        if !ask::interactive() {
            return Err(UsageError(anyhow::anyhow!(
                "refusing to regenerate {} artifact(s) without confirmation: pass --yes (no terminal to ask)",
                order.len()
            ))
            .into());
        }
        eprintln!(
            "will regenerate, replacing the stored versions:\n{}",
            labels.join("\n")
        );
        if !ask::confirm("Continue?")? {
            eprintln!("nothing changed");
            return Ok(exit::FAILURE);
        }
    }
    let prompts_file = match &request.prompts.prompts_file {
        Some(path) => Some(ask::read_prompts_file(path)?),
        None => None,
    };
    let env_lookup = |name: &str| std::env::var(name).ok();
    let mut asker = TerminalAsker;
    let asker: Option<&mut dyn artifacts_engine::prompts::Asker> = if ask::interactive() {
        Some(&mut asker)
    } else {
        None
    };
    let answers = Answers::collect(&plan, &indexes, prompts_file.as_ref(), &env_lookup, asker)
        .map_err(|e| UsageError(anyhow::Error::new(e)))?;
    drop(prompts_file);
    ctx.realise_generators()?;
    let sandbox = context::sandbox(global)?;

    let progress = Progress::new(indexes.len() as u64, global.quiet);
    let mut lock = ctx.lock.clone();
    let results = engine.generate(&plan, &indexes, &answers, &sandbox, &mut lock, &progress);
    progress.finish();
    drop(answers);

    let failures: Vec<&(usize, Result<(), EngineError>)> =
        results.iter().filter(|(_, r)| r.is_err()).collect();
    let generated = results.len() - failures.len();
    for (index, result) in &failures {
        if let Err(error) = result {
            eprintln!(
                "error: {}: {}",
                plan.units[*index].label(),
                error_chain(error)
            );
        }
    }
    if !global.quiet {
        eprintln!(
            "generated {generated} artifact(s){}",
            if failures.is_empty() {
                String::new()
            } else {
                format!(", {} failed", failures.len())
            }
        );
    }
    Ok(if failures.is_empty() && check_errors == 0 {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

/// Takes out of `order` what another backend than the declared one stores
/// (a switched backend: generating would replace a working secret with a new
/// one), unless `replace` says so, and what depends only on such a unit.
/// Returns how many units were held back.
fn guard_elsewhere(
    ctx: &Context,
    plan: &Plan<'_>,
    order: &mut Vec<(usize, String)>,
    known: &mut std::collections::BTreeMap<usize, Status>,
    replace: bool,
) -> usize {
    let unknown: Vec<usize> = order
        .iter()
        .map(|(i, _)| *i)
        .filter(|i| !known.contains_key(i))
        .collect();
    let statuses = ctx.engine().statuses(plan, &unknown, &ctx.lock, ctx.jobs);
    known.extend(unknown.into_iter().zip(statuses));
    let mut held: Vec<usize> = Vec::new();
    let mut kept = Vec::new();
    for (index, reason) in order.drain(..) {
        let unit = &plan.units[index];
        if let Some(status @ Status::Elsewhere { stored_in, .. }) = known.get(&index) {
            if replace {
                kept.push((
                    index,
                    format!("stored in {stored_in}; replaced by a new secret"),
                ));
            } else {
                eprintln!(
                    "error: {} is {}\n  (not generating a new one; pass --regenerate-elsewhere to replace it)",
                    unit.label(),
                    status.reason().unwrap_or_default()
                );
                held.push(index);
            }
            continue;
        }
        // A dependent regenerated only because of a held-back unit waits too.
        if let Some(dependency) = reason.strip_prefix("depends on ")
            && held.iter().any(|&h| plan.units[h].label() == dependency)
        {
            eprintln!(
                "note: {} not regenerated: it would follow {dependency}, which is held back",
                unit.label()
            );
            held.push(index);
            continue;
        }
        kept.push((index, reason));
    }
    *order = kept;
    held.iter()
        .filter(|&&i| matches!(known.get(&i), Some(Status::Elsewhere { .. })))
        .count()
}

fn print_dry_run(plan: &Plan<'_>, order: &[(usize, String)]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    if order.is_empty() {
        writeln!(stdout, "nothing to generate")?;
    }
    for (index, reason) in order {
        let unit = &plan.units[*index];
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
        Progress { bar, quiet }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
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

/// Durations in messages: whole hours are precise enough.
fn round_to_hours(age: Duration) -> Duration {
    Duration::from_secs(age.as_secs() / 3600 * 3600)
}
