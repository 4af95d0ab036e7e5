//! The openbao backend's commands: `openbao policies` (one policy and one
//! AppRole per target, reading exactly its own artifacts), the host side of
//! `activate` (read with the host's AppRole, install), and the call the
//! in-process backend gets outside the engine (`show --version`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use artifacts_engine::backend::Backend;
use artifacts_engine::store::{Call, CallFile, CallTarget, KeySources};
use artifacts_engine::{Activated, InstallRoot, Plan, Targets, Unit, UnitId, error_chain};
use artifacts_model::{Target, TargetId};
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

/// The call an openbao script would get for `unit` (for a shared one on
/// behalf of `host` only, when given), with only its secret files.
pub fn call(
    ctx: &Context,
    backend: &Backend,
    unit: &Unit<'_>,
    host: Option<&TargetId>,
) -> Result<Call> {
    let root = ctx
        .model
        .root
        .canonicalize()
        .with_context(|| format!("failed to resolve `{}`", ctx.model.root.display()))?;
    let describe = |target: &Target| CallTarget {
        name: target.id.name.clone(),
        kind: target.id.kind,
        config: backend
            .config_keys
            .iter()
            .find_map(|key| target.config.get(key))
            .cloned()
            .unwrap_or_else(|| json!({})),
    };
    let targets = match &unit.targets {
        Targets::One(target) => Targets::One(describe(target)),
        Targets::Shared(all) => Targets::Shared(
            all.iter()
                .filter(|target| host.is_none_or(|host| target.id == *host))
                .map(|target| describe(target))
                .collect(),
        ),
    };
    Ok(Call {
        backend: backend.name.clone(),
        artifact: Some(unit.artifact.name.clone()),
        targets,
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
        stamp: None,
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
    let per_target = entries_per_target(ctx)?;
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
    if apply {
        for (name, (address, entries)) in &per_target {
            apply_policy(name, address, entries, global.quiet)?;
        }
    }
    Ok(exit::SUCCESS)
}

/// Policy name -> (server address, the (mount, path) entries its host reads),
/// for the selected targets.
type PerTarget = BTreeMap<String, (String, Vec<(String, String)>)>;

fn entries_per_target(ctx: &Context) -> Result<PerTarget> {
    let plan = ctx.plan()?;
    let mut per_target = PerTarget::new();
    for unit in plan.units() {
        let Some(backend) = backend_of(ctx, unit) else {
            continue;
        };
        for target in unit.targets.iter() {
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
    Ok(per_target)
}

/// Writes policy `name` and an AppRole of the same name (enabling approle if needed).
fn apply_policy(
    name: &str,
    address: &str,
    entries: &[(String, String)],
    quiet: bool,
) -> Result<()> {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let env = |name: &str| std::env::var(name).ok();
    let mut settings = artifacts_openbao::Settings::from_env(&env, home.as_deref());
    settings.address = address.to_owned();
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
    if !quiet {
        eprintln!(
            "wrote policy and AppRole `{name}`; give the host its ids: `bao read -field=role_id auth/approle/role/{name}/role-id` and `bao write -f -field=secret_id auth/approle/role/{name}/secret-id`"
        );
    }
    Ok(())
}

/// The host side of `activate` for openbao artifacts: read each with the
/// target's AppRole and install its secret files with owner, group and
/// mode, atomically (public files are in the repository; the artifacts
/// modules install them). A shared artifact is installed as the target
/// itself declares it: a Home Manager user's paths are not a machine's.
/// Each unit's files, or why it failed.
pub fn activate(
    ctx: &Context,
    plan: &Plan<'_>,
    target: &TargetId,
    selected: &[UnitId],
    root: &Path,
) -> Vec<(UnitId, Result<Activated, String>)> {
    let env = |name: &str| std::env::var(name).ok();
    let into = InstallRoot {
        target,
        root,
        env: &env,
    };
    let engine = ctx.engine();
    selected
        .iter()
        .map(|&id| {
            let unit = &plan[id];
            let result = (|| -> Result<Activated> {
                let backend = backend_of(ctx, unit).expect("selected as openbao");
                let call = call(ctx, backend, unit, Some(target))?;
                let secret =
                    artifacts_backends::openbao_host_read(&call).map_err(|e| with_hint(&e))?;
                Ok(engine.install_fetched(unit, &secret, &into)?)
            })();
            (id, result.map_err(|error| format!("{error:#}")))
        })
        .collect()
}
