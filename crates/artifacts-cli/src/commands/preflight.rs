//! Before `generate` asks anything or runs any generator: can every store it
//! will write be written with the identities at hand? Typed answers and
//! generated secrets are never thrown away because a key turns up missing
//! only at the end.

use anyhow::Result;
use artifacts_engine::plan::Plan;

use crate::context::Context;

/// Fails with one message listing every unit that could not be stored.
pub fn require_writable(ctx: &Context, plan: &Plan<'_>, indexes: &[usize]) -> Result<()> {
    let missing = ctx.engine().unwritable(plan, indexes);
    if missing.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = missing
        .iter()
        .map(|(index, why)| {
            let why = why.replace('\n', "\n    ");
            format!("  {}: {why}", plan.units[*index].label())
        })
        .collect();
    anyhow::bail!(
        "cannot store {} artifact(s) with the identities at hand; nothing was asked or generated:\n{}\nhint: pass -i FILE, set ARTIFACTS_IDENTITY, or name your identity files in the manifest (`identities = [\"~/.config/sops/age/keys.txt\"]`)",
        missing.len(),
        lines.join("\n")
    )
}
