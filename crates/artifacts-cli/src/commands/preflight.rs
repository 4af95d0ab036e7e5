//! Before `generate` asks anything or runs any generator: can every store it
//! will write be written with the identities at hand? Typed answers and
//! generated secrets are never thrown away because a key turns up missing
//! only at the end.

use anyhow::Result;
use artifacts_engine::{Plan, UnitId};

use crate::context::Context;

/// Fails with one message listing every unit that could not be stored.
/// Protected identity files are unlocked (their passphrases asked) only when
/// something needs them: a store that cannot be written without, stored
/// dependencies to read back, or a backend that cannot be asked.
pub fn require_writable(ctx: &Context, plan: &Plan<'_>, indexes: &[UnitId]) -> Result<()> {
    let engine = ctx.engine();
    let reads_or_unknown = indexes.iter().any(|&i| {
        let unit = &plan[i];
        !unit.artifact.dependencies.is_empty() || !engine.tells_writable(unit)
    });
    if reads_or_unknown {
        ctx.unlock_identities()?;
    }
    let mut missing = engine.unwritable(plan, indexes);
    if !missing.is_empty() && ctx.unlock_identities()? {
        missing = engine.unwritable(plan, indexes);
    }
    if missing.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = missing
        .iter()
        .map(|(index, why)| {
            let why = why.replace('\n', "\n    ");
            format!("  {}: {why}", plan[*index].label())
        })
        .collect();
    anyhow::bail!(
        "cannot store {} artifact(s) with the identities at hand; nothing was asked or generated:\n{}\nhint: pass -i FILE, set ARTIFACTS_IDENTITY, or name your identity files in the manifest (`identities = [\"~/.config/sops/age/keys.txt\"]`)",
        missing.len(),
        lines.join("\n")
    )
}
