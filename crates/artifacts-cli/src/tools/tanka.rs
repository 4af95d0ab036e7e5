//! `artifacts tanka …` and `artifacts cmp …`: a tanka environment's secrets
//! and manifests, and the ArgoCD config-management-plugin entry points.
//!
//! Error messages never contain secret values.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Result;
use artifacts_backends::transit::Transit;
use artifacts_crypto::age::Identity;
use artifacts_crypto::keys::Purpose;
use artifacts_crypto::sops::Keys;
use artifacts_tanka::cmp;
use artifacts_tanka::error::Error;
use artifacts_tanka::eval::{VarValue, Vars};
use artifacts_tanka::limits;
use artifacts_tanka::project::{Environment, Project};
use artifacts_tanka::render::{self, Engine};
use artifacts_tanka::secrets;
use artifacts_tanka::tk::TkConfig;

use super::{Io, load_identities, resolve, write_stdout};
use crate::exit::UsageError;

/// A failed tanka command, as a usage error (exit code 2) when the command
/// line or the environment's declaration is at fault.
fn classify(error: anyhow::Error) -> anyhow::Error {
    match error.downcast_ref::<Error>() {
        Some(Error::InvalidEnvironment { .. } | Error::Argument { .. }) => UsageError(error).into(),
        _ => error,
    }
}

// ---------------------------------------------------------------------------
// shared flags
// ---------------------------------------------------------------------------

/// Which identities decrypt the secrets.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyArgs {
    /// Decrypt with the identity file PATH (age key file or OpenSSH key). Repeatable; ARTIFACTS_IDENTITY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY and SOPS_AGE_SSH_PRIVATE_KEY_FILE add more.
    #[arg(short = 'i', long = "identity", value_name = "PATH")]
    pub identities: Vec<PathBuf>,
}

/// The jsonnet implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineArg {
    /// jrsonnet, in-process.
    Builtin,
    /// The real Grafana Tanka `tk show`.
    Tk,
}

/// How to render.
#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    /// Render with ENGINE: builtin (in-process) or tk (Grafana Tanka).
    #[arg(long, value_enum, value_name = "ENGINE", default_value = "builtin")]
    pub engine: EngineArg,
    /// Run PATH as `tk` (with --engine tk).
    #[arg(long = "tk", value_name = "PATH", default_value = "tk")]
    pub tk: PathBuf,
    /// Read the declarations from PATH (default: artifacts.toml/.json/.yaml at the project root).
    #[arg(long, value_name = "PATH")]
    pub manifest: Option<PathBuf>,
}

// ---------------------------------------------------------------------------
// tanka
// ---------------------------------------------------------------------------

/// `artifacts tanka …`: a tanka environment's secrets and manifests.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TankaCommand {
    /// Print an environment's decrypted secrets as one YAML document (like `sops -d`).
    Secrets(SecretsArgs),
    /// Render an environment's Kubernetes objects as a YAML stream, secrets bound to `secrets_yaml`.
    Show(ShowArgs),
}

/// Arguments of `tanka secrets`.
#[derive(Debug, Clone, clap::Args)]
pub struct SecretsArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: KeyArgs,
    /// The environment: its directory under environments/ (`default`, `a/b`, or `environments/a/b`).
    #[arg(value_name = "ENV")]
    pub env: String,
}

/// Arguments of `tanka show`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: KeyArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub render: RenderArgs,
    /// Set the external variable NAME to the string VALUE. Repeatable.
    #[arg(long = "ext-str", value_name = "NAME=VALUE")]
    pub ext_str: Vec<String>,
    /// Set the external variable NAME to the jsonnet CODE (a string of the same name wins). Repeatable.
    #[arg(long = "ext-code", value_name = "NAME=CODE")]
    pub ext_code: Vec<String>,
    /// Set the top-level argument NAME to the string VALUE (not secrets_yaml). Repeatable.
    #[arg(long = "tla-str", value_name = "NAME=VALUE")]
    pub tla_str: Vec<String>,
    /// Set the top-level argument NAME to the jsonnet CODE (not secrets_yaml; a string of the same name wins). Repeatable.
    #[arg(long = "tla-code", value_name = "NAME=CODE")]
    pub tla_code: Vec<String>,
    /// Select the inline environment whose name contains NAME (an exact match wins).
    #[arg(long = "name", value_name = "NAME")]
    pub name: Option<String>,
    /// The environment: its directory under environments/ (`default`, `a/b`, or `environments/a/b`).
    #[arg(value_name = "ENV")]
    pub env: String,
}

impl TankaCommand {
    /// Runs the command. `Ok` means exit code 0.
    pub fn run(&self, io: &mut Io<'_>) -> Result<()> {
        match self {
            TankaCommand::Secrets(a) => tanka_secrets(a, io),
            TankaCommand::Show(a) => tanka_show(a, io),
        }
        .map_err(classify)
    }
}

/// The identities for `env`'s secrets.
fn identities(io: &Io<'_>, keys: &KeyArgs, env: &str) -> artifacts_tanka::Result<Vec<Identity>> {
    load_identities(io, &keys.identities, Purpose::Sops).map_err(|source| Error::Decrypt {
        env: env.to_string(),
        source,
    })
}

fn tanka_secrets(a: &SecretsArgs, io: &mut Io<'_>) -> Result<()> {
    let project = Project::find(&io.cwd)?;
    let env = project.environment(&a.env)?;
    if !env.secrets_file().exists() {
        return Err(Error::SecretsMissing {
            env: env.name().to_string(),
            path: env.secrets_file(),
        }
        .into());
    }
    let identities = identities(io, &a.keys, env.name())?;
    let transit = Transit::from_vars(io.env);
    let secrets = secrets::decrypt(&env, &Keys::with_wrapper(&identities, &transit))?;
    write_stdout(io, secrets.yaml().as_bytes())
}

/// Everything `show` and `cmp generate` share.
struct RenderRequest<'r> {
    project: Project,
    env: Environment,
    keys: &'r KeyArgs,
    render: &'r RenderArgs,
    vars: Vars,
    name: Option<String>,
}

fn render(req: RenderRequest<'_>, io: &Io<'_>) -> artifacts_tanka::Result<render::Rendered> {
    let manifest = match &req.render.manifest {
        Some(p) => Some(resolve(io, p)),
        None => req.project.manifest(),
    };
    let env_name = req.env.name().to_string();
    let transit = Transit::from_vars(io.env);
    let secrets = secrets::for_render(
        &req.env,
        manifest.as_deref(),
        &|| identities(io, req.keys, &env_name),
        Some(&transit),
    )?;
    let engine = match req.render.engine {
        EngineArg::Builtin => Engine::Builtin,
        EngineArg::Tk => Engine::Tk(TkConfig {
            program: req.render.tk.clone(),
            env: io.env.clone(),
            // Memory-backed first, as for every scratch directory.
            temp_parent: artifacts_os::scratch::base_dir_from(&|name| io.env.get(name).cloned()),
        }),
    };
    render::show(
        &req.project,
        &req.env,
        secrets.as_ref(),
        &req.vars,
        req.name.as_deref(),
        &engine,
    )
}

/// `commit_hash` from `ARGOCD_APP_REVISION`, unless given explicitly.
fn with_commit_hash(mut vars: Vars, env: &BTreeMap<String, OsString>) -> Vars {
    if !vars.ext.contains_key(cmp::COMMIT_HASH_EXT)
        && let Some(rev) = cmp::commit_hash(env)
    {
        vars.ext
            .insert(cmp::COMMIT_HASH_EXT.to_string(), VarValue::Str(rev));
    }
    vars
}

fn tanka_show(a: &ShowArgs, io: &mut Io<'_>) -> Result<()> {
    let vars = Vars::from_flags(&a.ext_str, &a.ext_code, &a.tla_str, &a.tla_code)?;
    let vars = with_commit_hash(vars, io.env);
    let project = Project::find(&io.cwd)?;
    let env = project.environment(&a.env)?;
    let rendered = render(
        RenderRequest {
            project,
            env,
            keys: &a.keys,
            render: &a.render,
            vars,
            name: a.name.clone(),
        },
        io,
    )?;
    for line in &rendered.diagnostics {
        let _ = writeln!(io.stderr, "{line}");
    }
    write_stdout(io, rendered.yaml.as_bytes())
}

// ---------------------------------------------------------------------------
// cmp
// ---------------------------------------------------------------------------

/// `artifacts cmp …`: the ArgoCD config-management-plugin entry points.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CmpCommand {
    /// Print the environment name if this directory is a tanka project the plugin may render.
    Discover(DiscoverArgs),
    /// Render the environment (ARGOCD_ENV_TK_ENV, TK_ENV, else default; inline name ARGOCD_ENV_TK_NAME or TK_NAME): only Kubernetes objects on stdout.
    Generate(GenerateArgs),
    /// Print the ConfigManagementPlugin manifest for the sidecar.
    PluginYaml,
}

/// Arguments of `cmp discover`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiscoverArgs {
    /// Only match repositories whose URL is a line of PATH (default: ARTIFACTS_CMP_ALLOWLIST).
    #[arg(long = "allow-list", value_name = "PATH")]
    pub allow_list: Option<PathBuf>,
}

/// Arguments of `cmp generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: KeyArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub render: RenderArgs,
    /// Refuse repositories whose URL is not a line of PATH (default: ARTIFACTS_CMP_ALLOWLIST).
    #[arg(long = "allow-list", value_name = "PATH")]
    pub allow_list: Option<PathBuf>,
    /// Stop the builtin engine's evaluation when the process uses more than MIB MiB of memory.
    #[arg(
        long = "max-memory",
        value_name = "MIB",
        env = "ARTIFACTS_CMP_MAX_MEMORY",
        default_value_t = limits::DEFAULT_MAX_MEMORY_MIB
    )]
    pub max_memory: u64,
    /// Stop the builtin engine's evaluation after SECS seconds.
    #[arg(
        long = "eval-timeout",
        value_name = "SECS",
        env = "ARTIFACTS_CMP_EVAL_TIMEOUT",
        default_value_t = limits::DEFAULT_TIMEOUT_SECS
    )]
    pub eval_timeout: u64,
}

impl CmpCommand {
    /// Runs the command. `Ok` means exit code 0.
    pub fn run(&self, io: &mut Io<'_>) -> Result<()> {
        match self {
            CmpCommand::Discover(a) => cmp_discover(a, io),
            CmpCommand::Generate(a) => cmp_generate(a, io),
            CmpCommand::PluginYaml => write_stdout(io, cmp::PLUGIN_YAML.as_bytes()),
        }
        .map_err(classify)
    }
}

fn cmp_discover(a: &DiscoverArgs, io: &mut Io<'_>) -> Result<()> {
    let list = cmp::allowlist_path(a.allow_list.as_deref(), io.env, &io.cwd);
    match cmp::discover(&io.cwd, io.env, list.as_deref())? {
        Some(name) => write_stdout(io, format!("{name}\n").as_bytes()),
        None => Ok(()),
    }
}

fn cmp_generate(a: &GenerateArgs, io: &mut Io<'_>) -> Result<()> {
    let list = cmp::allowlist_path(a.allow_list.as_deref(), io.env, &io.cwd);
    cmp::check_allowed(list.as_deref(), io.env)?;
    let name = cmp::environment_name(io.env);
    let project = Project::find(&io.cwd)?;
    let env = project.environment(&name)?;
    let vars = with_commit_hash(Vars::default(), io.env);
    // jsonnet from the repository may allocate or loop without end.
    let _watchdog = (a.render.engine == EngineArg::Builtin).then(|| {
        limits::Watchdog::start(
            &name,
            limits::EvalLimits {
                max_memory_mib: a.max_memory,
                timeout: std::time::Duration::from_secs(a.eval_timeout),
            },
        )
    });
    // Diagnostics (std.trace, tk warnings) are dropped: ArgoCD shows stderr
    // in its UI, and a clean run prints nothing there.
    let rendered = render(
        RenderRequest {
            project,
            env,
            keys: &a.keys,
            render: &a.render,
            vars,
            name: cmp::inline_name(io.env),
        },
        io,
    )?;
    write_stdout(io, rendered.yaml.as_bytes())
}
