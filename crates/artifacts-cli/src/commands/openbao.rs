//! The openbao backend's commands: `openbao policies` (one policy and one
//! AppRole per target, reading exactly its own artifacts), the host side of
//! `activate` (read with the host's AppRole, install), and the call the
//! in-process backend gets outside the engine (`show --version`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use artifacts_engine::backend::Backend;
use artifacts_engine::error_chain;
use artifacts_engine::install::Installed;
use artifacts_engine::plan::{Plan, Unit};
use artifacts_engine::store::{Call, CallFile, CallTarget, KeySources};
use artifacts_model::Target;
use serde_json::json;

use crate::args::GlobalArgs;
use crate::context::Context;
use crate::exit;

/// The backend storing `unit`, when it is openbao (or its alias `vault`).
pub fn backend_of<'c>(ctx: &'c Context, unit: &Unit<'_>) -> Option<&'c Backend> {
    ctx.registry
        .get(&unit.backend.name)
        .filter(|backend| backend.storage == "openbao")
}

/// The call an openbao script would get for `unit`, with `targets` (the
/// unit's own when `None`) and only its secret files.
pub fn call(
    ctx: &Context,
    backend: &Backend,
    unit: &Unit<'_>,
    targets: Option<&[&Target]>,
) -> Result<Call> {
    let root = ctx
        .model
        .root
        .canonicalize()
        .with_context(|| format!("failed to resolve `{}`", ctx.model.root.display()))?;
    Ok(Call {
        backend: backend.name.clone(),
        artifact: Some(unit.artifact.name.clone()),
        context: unit.context,
        targets: targets
            .unwrap_or(&unit.targets)
            .iter()
            .map(|target| CallTarget {
                name: target.id.name.clone(),
                kind: target.id.kind,
                config: backend
                    .config_keys
                    .iter()
                    .find_map(|key| target.config.get(key))
                    .cloned()
                    .unwrap_or_else(|| json!({})),
            })
            .collect(),
        files: unit
            .artifact
            .files
            .iter()
            .filter(|(_, spec)| spec.secret)
            .map(|(name, _)| CallFile {
                name: name.clone(),
                secret: true,
            })
            .collect(),
        root,
        identities: KeySources::default(),
    })
}

/// A backend's error with its suggested fix, as the engine shows one.
pub fn with_hint(error: &artifacts_engine::store::StoreError) -> anyhow::Error {
    match error.hint() {
        Some(hint) => anyhow!("{}\n    hint: {hint}", error_chain(error)),
        None => anyhow!("{}", error_chain(error)),
    }
}

/// The policy name (and AppRole name) of a target.
fn policy_name(target: &Target) -> String {
    format!("artifacts-{}-{}", target.id.kind.as_str(), target.id.name)
}

/// `artifacts openbao policies [--apply]`.
pub fn policies(ctx: &Context, global: &GlobalArgs, apply: bool) -> Result<i32> {
    let plan = ctx.plan()?;
    // Per target: the server and the entries its host reads.
    let mut per_target: BTreeMap<String, (String, Vec<(String, String)>)> = BTreeMap::new();
    for unit in &plan.units {
        let Some(backend) = backend_of(ctx, unit) else {
            continue;
        };
        for target in &unit.targets {
            if !ctx.targets.is_empty() && !ctx.targets.contains(&target.id) {
                continue;
            }
            let call = call(ctx, backend, unit, None)?;
            let (address, mount, path) = artifacts_backends::openbao_entry(&call)
                .map_err(|e| with_hint(&e).context(unit.label()))?;
            let entry = per_target
                .entry(policy_name(target))
                .or_insert_with(|| (address.clone(), Vec::new()));
            if entry.0 != address {
                anyhow::bail!(
                    "{}: its artifacts are on two openbao servers (`{}` and `{address}`); one policy cannot cover both",
                    target.id.reference(),
                    entry.0
                );
            }
            entry.1.push((mount, path));
        }
    }
    if per_target.is_empty() {
        if !global.quiet {
            eprintln!("no artifact of the selected targets is stored in openbao");
        }
        return Ok(exit::SUCCESS);
    }
    let mut stdout = std::io::stdout().lock();
    for (name, (address, entries)) in &per_target {
        let text = artifacts_backends::openbao::policy_text(entries);
        writeln!(stdout, "# policy {name} (openbao at {address})\n{text}")?;
    }
    stdout.flush()?;
    if !apply {
        return Ok(exit::SUCCESS);
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let env = |name: &str| std::env::var(name).ok();
    for (name, (address, entries)) in &per_target {
        let mut settings = artifacts_openbao::Settings::from_env(&env, home.as_deref());
        settings.address = address.clone();
        if settings.token.is_none() {
            anyhow::bail!(
                "no openbao token for `{address}`: set BAO_TOKEN or VAULT_TOKEN, or run `bao login`"
            );
        }
        let client = artifacts_openbao::Client::new(settings)?;
        let text = artifacts_backends::openbao::policy_text(entries);
        let failed = |what: String| {
            move |e: artifacts_openbao::Error| {
                let hint = e.hint().map(|h| format!(" ({h})")).unwrap_or_default();
                anyhow!("failed to {what}: {e}{hint}")
            }
        };
        client
            .write(
                &format!("sys/policies/acl/{name}"),
                &json!({ "policy": text }),
            )
            .map_err(failed(format!("write policy `{name}`")))?;
        let auths = client
            .read("sys/auth")
            .map_err(failed("list the auth methods".to_owned()))?
            .unwrap_or_default();
        if auths["data"]["approle/"].is_null() && auths["approle/"].is_null() {
            client
                .write("sys/auth/approle", &json!({ "type": "approle" }))
                .map_err(failed("enable the approle auth method".to_owned()))?;
        }
        client
            .write(
                &format!("auth/approle/role/{name}"),
                &json!({ "token_policies": [name], "token_ttl": "10m", "token_max_ttl": "30m" }),
            )
            .map_err(failed(format!("write AppRole `{name}`")))?;
        if !global.quiet {
            eprintln!(
                "wrote policy and AppRole `{name}`; give the host its ids: `bao read -field=role_id auth/approle/role/{name}/role-id` and `bao write -f -field=secret_id auth/approle/role/{name}/secret-id`"
            );
        }
    }
    Ok(exit::SUCCESS)
}

/// The host side of `activate` for openbao artifacts: read each with the
/// target's AppRole and install its secret files with owner, group and
/// mode, atomically (public files are in the repository; the artifacts
/// NixOS module installs them). Returns the number of failed artifacts.
pub fn activate(
    ctx: &Context,
    global: &GlobalArgs,
    plan: &Plan<'_>,
    target: &artifacts_model::TargetId,
    selected: &[usize],
    root: &Path,
) -> usize {
    let env = |name: &str| std::env::var(name).ok();
    let mut failures = 0;
    for &index in selected {
        let unit = &plan.units[index];
        let result = (|| -> Result<Vec<(std::path::PathBuf, Installed)>> {
            let backend = backend_of(ctx, unit).expect("selected as openbao");
            let host: Vec<&Target> = unit
                .targets
                .iter()
                .copied()
                .filter(|t| t.id == *target)
                .collect();
            let call = call(ctx, backend, unit, Some(&host))?;
            let secret = artifacts_backends::openbao_host_read(&call).map_err(|e| with_hint(&e))?;
            let system = target.kind == artifacts_model::TargetKind::Nixos;
            let destinations = artifacts_engine::install::destinations(unit.artifact, root, &env)?;
            let mut done = Vec::new();
            for ((destination, spec), name) in destinations.iter().zip(unit.artifact.files.keys()) {
                // Public files come from the repository (the artifacts
                // module installs them, as for agenix), not from the server.
                if !spec.secret {
                    continue;
                }
                let content = secret
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, c)| c)
                    .ok_or_else(|| anyhow!("openbao returned no file `{name}`"))?;
                let outcome = artifacts_engine::install::install_exact(
                    root,
                    destination,
                    spec,
                    content,
                    system,
                )?;
                done.push((destination.clone(), outcome));
            }
            Ok(done)
        })();
        match result {
            Ok(files) => {
                for (path, outcome) in files {
                    let word = match outcome {
                        Installed::Written => "installed",
                        Installed::Fixed => "fixed owner/mode of",
                        Installed::Unchanged if global.verbose > 0 => "unchanged",
                        Installed::Unchanged => continue,
                    };
                    if !global.quiet {
                        eprintln!("{word} {} ({})", path.display(), unit.name());
                    }
                }
            }
            Err(error) => {
                failures += 1;
                eprintln!("error: {}: {error:#}", unit.label());
            }
        }
    }
    failures
}
