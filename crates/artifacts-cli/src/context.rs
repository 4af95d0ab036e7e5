//! The resolved configuration: where declarations, backends and the lock live,
//! loaded and validated. The second parsing stage, after [`crate::args`].

use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use artifacts_engine::BackendRegistry;
use artifacts_engine::Sandbox;
use artifacts_engine::lock::Lock;
use artifacts_engine::{Engine, Settings, Timeouts};
use artifacts_engine::{Plan, UnitId};
use artifacts_model::{Model, TargetId, TargetKind};
use artifacts_os::project_lock::{Attempt, ProjectLock};

use crate::args::GlobalArgs;
use crate::exit::UsageError;

/// Manifest names looked for, in order.
const MANIFEST_NAMES: &[&str] = &[
    "artifacts.toml",
    "artifacts.json",
    "artifacts.yaml",
    "artifacts.yml",
];

/// Everything a command needs.
pub struct Context {
    /// Generator derivations of a flake, realised before generating.
    pub derivations: Vec<String>,
    /// Never freed, like `lock`: a fleet's declarations and lock are tens of
    /// thousands of small allocations, and freeing them one by one cost more
    /// than the checks of a run that ends right after. Neither holds a secret.
    pub model: &'static Model,
    /// Planned while artifacts.lock is still being read. Never freed either:
    /// a unit per (target, artifact) pair.
    plan: ManuallyDrop<std::result::Result<Plan<'static>, artifacts_engine::error::PlanError>>,
    pub registry: BackendRegistry,
    pub lock: ManuallyDrop<Lock>,
    pub settings: Settings,
    pub targets: Vec<TargetId>,
    pub jobs: usize,
    /// Held by mutating commands ([`Context::load_exclusive`]) until the
    /// context is dropped; never read.
    _project_lock: Option<ProjectLock>,
    /// Where unlocked copies of passphrase-protected identity files go.
    unlocked: Option<artifacts_os::scratch::Scratch>,
    /// Protected identity files not unlocked yet: the file, and the copy's
    /// path, which backend scripts were already told.
    locked: std::sync::Mutex<Vec<(PathBuf, PathBuf)>>,
}

impl Context {
    /// Loads for reading: no project lock.
    pub fn load(global: &GlobalArgs) -> Result<Context> {
        Context::load_with(global, false)
    }

    /// Loads for a command that changes stores or `artifacts.lock`: takes the
    /// project lock first (waiting for another run, or failing with
    /// `--no-wait`), so `artifacts.lock` is read only once it is ours.
    pub fn load_exclusive(global: &GlobalArgs) -> Result<Context> {
        Context::load_with(global, true)
    }

    fn load_with(global: &GlobalArgs, exclusive: bool) -> Result<Context> {
        let dir = working_dir(global)?;
        let source = find_source(&dir, global)?;
        let root = source.root();
        let registry = load_registry(global, &dir, &root)?;
        // A command that only reads reads artifacts.lock (megabytes in a
        // fleet) while the declarations load; one that writes takes the
        // project lock first.
        let (model, early_lock) = std::thread::scope(|scope| {
            let early = (!exclusive).then(|| {
                let path = root.join(Lock::FILE_NAME);
                scope.spawn(move || {
                    let lock = Lock::load(&path);
                    (path, lock)
                })
            });
            let model = load_model(&source, &registry, global).map(|(model, derivations)| {
                let model: &'static Model = Box::leak(Box::new(model));
                (model, Plan::new(model), derivations)
            });
            (model, early.and_then(|read| read.join().ok()))
        });
        let (model, plan, derivations) = model?;
        let project_lock = if exclusive {
            Some(lock_project(&model.root, global.no_wait)?)
        } else {
            None
        };
        let lock_path = model.root.join(Lock::FILE_NAME);
        let lock = match early_lock {
            Some((path, lock)) if path == lock_path => lock,
            _ => Lock::load(&lock_path),
        };
        let mut lock = lock.map_err(|e| UsageError(anyhow::Error::new(e)))?;
        // A version-1 lock is upgraded in memory (written on the next change);
        // a model that cannot be planned fails later, in the command.
        if lock.is_legacy()
            && let Ok(plan) = &plan
        {
            let names: Vec<String> = registry.names().into_iter().map(str::to_owned).collect();
            plan.upgrade_lock(&mut lock, &names);
        }
        let targets = resolve_targets(model, &global.targets)?;
        let settings = settings(global, &model.root);
        let jobs = global
            .jobs
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            })
            .max(1);
        Ok(Context {
            derivations,
            model,
            plan: ManuallyDrop::new(plan),
            registry,
            lock: ManuallyDrop::new(lock),
            settings,
            targets,
            jobs,
            _project_lock: project_lock,
            unlocked: None,
            locked: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The identity files backend scripts may use, handed to them as
    /// `ARTIFACTS_IDENTITY` (paths joined like `PATH`: file names, never
    /// keys): `-i FILE` and `$ARTIFACTS_IDENTITY`, relative to the current
    /// directory, then the manifest's `identities`, relative to the manifest
    /// (`~/` is the home directory; a missing one is skipped);
    /// `SOPS_AGE_KEY_FILE` and `SOPS_AGE_SSH_PRIVATE_KEY_FILE` are made
    /// absolute the same way. A passphrase-protected file, when a terminal can
    /// ask, is handed over as the path of an unlocked copy in a private
    /// scratch directory (removed when the run ends, signals included), which
    /// [`Context::unlock_identities`] writes once something needs it, as
    /// `age` asks only when a key is needed. Without a terminal it is handed
    /// over as it is, and whatever needs it says it has no passphrase.
    pub fn with_identities(mut self, identities: &[PathBuf]) -> Result<Context> {
        let cwd = std::env::current_dir().context("failed to read the current directory")?;
        let mut files: Vec<PathBuf> = identities.iter().map(|p| cwd.join(p)).collect();
        if let Some(existing) = std::env::var_os("ARTIFACTS_IDENTITY") {
            files.extend(
                std::env::split_paths(&existing)
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(|p| cwd.join(p)),
            );
        }
        for name in &self.model.identities {
            let path = match name.strip_prefix("~/") {
                Some(rest) => match std::env::var_os("HOME") {
                    Some(home) => PathBuf::from(home).join(rest),
                    None => {
                        return Err(UsageError(anyhow::anyhow!(
                            "identity file `{name}` in the manifest starts with `~/`, and HOME is not set"
                        ))
                        .into());
                    }
                },
                None => self.model.root.join(name),
            };
            if path.exists() {
                files.push(path);
            } else {
                tracing::info!(
                    "identity file `{name}` named in the manifest does not exist; skipped"
                );
            }
        }
        if !files.is_empty() {
            let mut handed = Vec::with_capacity(files.len());
            for file in files {
                handed.push(self.hand_over(file)?);
            }
            let joined = std::env::join_paths(handed)
                .map_err(|e| UsageError(anyhow::anyhow!("identity files: {e}")))?;
            self.settings
                .extra_env
                .push(("ARTIFACTS_IDENTITY".to_owned(), joined));
        }
        // The sops variables name files too: the same for them.
        for variable in [
            artifacts_crypto::keys::ENV_SOPS_AGE_KEY_FILE,
            artifacts_crypto::keys::ENV_SOPS_AGE_SSH_PRIVATE_KEY_FILE,
        ] {
            if let Some(value) = std::env::var_os(variable).filter(|v| !v.is_empty()) {
                let handed = self.hand_over(cwd.join(value))?;
                self.settings
                    .extra_env
                    .push((variable.to_owned(), handed.into_os_string()));
            }
        }
        Ok(self)
    }

    /// The identity file a backend script gets for `file`: itself, or the
    /// path its unlocked copy will have when it is passphrase-protected and a
    /// terminal can ask.
    fn hand_over(&mut self, file: PathBuf) -> Result<PathBuf> {
        use artifacts_crypto::age::{NoPassphrase, unlock_identity_file};
        match unlock_identity_file(&file, &NoPassphrase) {
            Ok(_) => Ok(file),
            Err(artifacts_crypto::Error::PassphraseRequired { .. })
                if crate::ask::TtyPassphrase::available() =>
            {
                let scratch = match self.unlocked.take() {
                    Some(scratch) => scratch,
                    None => artifacts_os::scratch::Scratch::new("identities")
                        .context("failed to create a private directory for unlocked identities")?,
                };
                let locked = self.locked.get_mut().unwrap_or_else(|e| e.into_inner());
                let copy = scratch.path().join(format!("identity-{}", locked.len()));
                locked.push((file, copy.clone()));
                self.unlocked = Some(scratch);
                Ok(copy)
            }
            // No terminal: the backend that needs it says so.
            Err(artifacts_crypto::Error::PassphraseRequired { .. }) => Ok(file),
            Err(error) => Err(identity_error(&error)),
        }
    }

    /// Asks for the passphrase of each protected identity file not unlocked
    /// yet (once each) and writes the unlocked copies backend scripts were
    /// told about. Whether there was anything to unlock.
    pub fn unlock_identities(&self) -> Result<bool> {
        let pending: Vec<(PathBuf, PathBuf)> = {
            let mut locked = self.locked.lock().unwrap_or_else(|e| e.into_inner());
            locked.drain(..).collect()
        };
        for (file, copy) in &pending {
            let unlocked =
                artifacts_crypto::age::unlock_identity_file(file, &crate::ask::TtyPassphrase)
                    .map_err(|error| identity_error(&error))?
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "identity file `{}` lost its passphrase while running",
                            file.display()
                        )
                    })?;
            artifacts_os::scratch::write_private(copy, unlocked.as_bytes())
                .with_context(|| format!("failed to write `{}`", copy.display()))?;
        }
        Ok(!pending.is_empty())
    }

    /// [`Context::with_identities`], unlocked at once: for commands that read
    /// stored secrets.
    pub fn with_unlocked_identities(self, identities: &[PathBuf]) -> Result<Context> {
        let ctx = self.with_identities(identities)?;
        ctx.unlock_identities()?;
        Ok(ctx)
    }

    /// Builds the flake's generator derivations (one `nix build`), if any.
    pub fn realise_generators(&self) -> Result<()> {
        artifacts_engine::flake::realise(
            &self.model.root,
            &self.derivations,
            self.settings.timeouts.generator,
        )?;
        Ok(())
    }

    pub fn plan(&self) -> Result<&Plan<'static>> {
        self.plan
            .as_ref()
            .map_err(|e| UsageError(anyhow::Error::new(e.clone())).into())
    }

    pub fn engine(&self) -> Engine<'_> {
        Engine::new(&self.registry, self.settings.clone())
    }

    /// The plan units selected by `--target` and an artifact name list (empty = all).
    pub fn select(&self, plan: &Plan<'_>, artifacts: &[String]) -> Result<Vec<UnitId>> {
        for name in artifacts {
            if !plan.units().any(|u| u.name() == name) {
                let known: Vec<&str> = {
                    let mut names: Vec<&str> = plan.units().map(|u| u.name()).collect();
                    names.sort();
                    names.dedup();
                    names
                };
                return Err(UsageError(anyhow::anyhow!(
                    "no artifact named `{name}` is declared (declared: {})",
                    known.join(", ")
                ))
                .into());
            }
        }
        Ok(plan
            .iter()
            .filter(|(_, unit)| {
                unit.involves_any(&self.targets)
                    && (artifacts.is_empty() || artifacts.iter().any(|a| a == unit.name()))
            })
            .map(|(id, _)| id)
            .collect())
    }
}

/// The declarations of a manifest or a flake, and the flake's generator
/// derivations; declaration errors are usage errors.
fn load_model(
    source: &Source,
    registry: &BackendRegistry,
    global: &GlobalArgs,
) -> Result<(Model, Vec<String>)> {
    let timeout = global.timeout.map(std::time::Duration::from_secs);
    let names = registry.names();
    let checks = artifacts_model::load::Checks {
        known_backends: &names,
        generator_from: &global.generator_from,
    };
    let (model, derivations) = match source {
        Source::Manifest(manifest) => (
            artifacts_model::load::load_manifest_checked(manifest, &checks)
                .map_err(UsageError::from_model)?,
            Vec::new(),
        ),
        Source::Flake(flake) => {
            let loaded = artifacts_engine::flake::load(flake, &checks, timeout).map_err(|e| {
                match e {
                    artifacts_engine::flake::FlakeError::Model(model) => {
                        anyhow::Error::new(UsageError::from_model(model))
                    }
                    // A declaration error, like a target declared twice.
                    same @ artifacts_engine::flake::FlakeError::SameName { .. } => {
                        anyhow::Error::new(UsageError(anyhow::Error::new(same)))
                    }
                    other => anyhow::Error::new(other),
                }
            })?;
            (loaded.model, loaded.derivations)
        }
    };
    for warning in artifacts_model::validate::warnings(&model) {
        tracing::warn!("{warning}");
    }
    Ok((model, derivations))
}

/// The engine's settings from the global flags.
fn settings(global: &GlobalArgs, root: &Path) -> Settings {
    let log_level =
        global
            .log_level
            .map(|l| l.as_str())
            .unwrap_or(match (global.quiet, global.verbose) {
                (true, _) => "error",
                (false, 0) => "info",
                (false, _) => "debug",
            });
    let timeouts = match global.timeout {
        Some(secs) => {
            let limit = Some(std::time::Duration::from_secs(secs));
            Timeouts {
                script: limit,
                generator: limit,
            }
        }
        None => Timeouts::default(),
    };
    Settings {
        root: root.to_path_buf(),
        log_level: log_level.to_owned(),
        timeouts,
        self_exe: std::env::current_exe().ok(),
        extra_env: Vec::new(),
    }
}

/// An identity file that cannot be used: the cause, then the fix.
fn identity_error(error: &artifacts_crypto::Error) -> anyhow::Error {
    crate::exit::usage(artifacts_engine::error_chain(error), error.hint())
}

/// `-C DIR`, relative to the current directory, with its symbolic links
/// resolved as `cd DIR` and `getcwd` would (so the search for a manifest
/// climbs real parents); else the current directory.
fn working_dir(global: &GlobalArgs) -> Result<PathBuf> {
    let cwd = std::env::current_dir().context("failed to read the current directory")?;
    Ok(match &global.directory {
        // As `git -C`: a directory that is not there is an error, not a
        // start for the search of a manifest above it.
        Some(dir) => {
            let dir = cwd.join(dir);
            dir.canonicalize().map_err(|e| {
                UsageError(anyhow::anyhow!("cannot use -C `{}`: {e}", dir.display()))
            })?
        }
        None => cwd,
    })
}

/// Backends from `--backends FILE`, else `$NIXOS_ARTIFACTS_BACKEND_CONFIG`, else
/// `backend.toml` in `root` (beside the manifest); none is an empty registry.
fn load_registry(global: &GlobalArgs, dir: &Path, root: &Path) -> Result<BackendRegistry> {
    let file = global
        .backends
        .as_ref()
        .map(|p| dir.join(p))
        .or_else(|| std::env::var_os("NIXOS_ARTIFACTS_BACKEND_CONFIG").map(|p| dir.join(p)))
        .or_else(|| Some(root.join("backend.toml")).filter(|p| p.exists()));
    let mut registry = match &file {
        Some(path) => BackendRegistry::load(path).map_err(|e| UsageError(anyhow::Error::new(e)))?,
        None => BackendRegistry::new(),
    };
    // Shipped backends work by name; a backend.toml entry of the same name wins.
    for backend in artifacts_backends::backends() {
        registry.add_fallback(backend);
    }
    Ok(registry)
}

/// The backends alone, for `artifacts backends`: works without a manifest.
pub fn registry_only(global: &GlobalArgs) -> Result<BackendRegistry> {
    let dir = working_dir(global)?;
    let root = match find_source(&dir, global) {
        Ok(source) => source.root(),
        Err(_) => dir.clone(),
    };
    load_registry(global, &dir, &root)
}

/// Where declarations come from.
enum Source {
    /// A manifest file.
    Manifest(PathBuf),
    /// A flake directory.
    Flake(PathBuf),
}

impl Source {
    /// The project root: the manifest's directory, or the flake's.
    fn root(&self) -> PathBuf {
        match self {
            Source::Manifest(path) => artifacts_model::load::manifest_root(path),
            Source::Flake(dir) => dir.clone(),
        }
    }
}

/// `--manifest`, `--flake`, else the nearest manifest at or above DIR (see
/// [`find_manifest_upwards`]), else flake.nix in DIR itself.
fn find_source(dir: &Path, global: &GlobalArgs) -> Result<Source> {
    if let Some(manifest) = &global.manifest {
        let path = dir.join(manifest);
        if !path.is_file() {
            return Err(UsageError(anyhow::anyhow!(
                "manifest `{}` does not exist",
                path.display()
            ))
            .into());
        }
        return Ok(Source::Manifest(path));
    }
    if let Some(flake) = &global.flake {
        let path = dir.join(flake);
        if !path.join("flake.nix").is_file() {
            return Err(UsageError(anyhow::anyhow!(
                "--flake `{}`: no flake.nix there",
                path.display()
            ))
            .into());
        }
        return Ok(Source::Flake(path.canonicalize().unwrap_or(path)));
    }
    let found = find_manifest_upwards(dir);
    // A flake.nix counts only in DIR itself: most Nix projects have one, and
    // one above a project is rarely the project's.
    match found.manifest {
        Some(path) if path.parent() == Some(dir) => return Ok(Source::Manifest(path)),
        _ if dir.join("flake.nix").is_file() => {
            return Ok(Source::Flake(
                dir.canonicalize().unwrap_or_else(|_| dir.to_owned()),
            ));
        }
        Some(path) => return Ok(Source::Manifest(path)),
        None => {}
    }
    let stop = match found.stopped_at {
        Some(Stop::Repository(root)) => {
            format!(
                " or above it up to the repository root `{}`",
                root.display()
            )
        }
        Some(Stop::MountPoint(top)) => format!(
            " or above it up to `{}` (the search does not cross into another file system)",
            top.display()
        ),
        None => " or above it".to_owned(),
    };
    bail!(UsageError(anyhow::anyhow!(
        "no artifacts.toml (or .json, .yaml) in `{}`{stop}, and no flake.nix in `{}`; create one (`artifacts init`), or pass --manifest FILE, --flake DIR or -C DIR",
        dir.display(),
        dir.display()
    )))
}

/// Where the search for a manifest ended without reaching `/`.
#[derive(Debug, PartialEq)]
enum Stop {
    /// At a directory holding `.git`, which was searched.
    Repository(PathBuf),
    /// At the top directory of the file system the search started in.
    MountPoint(PathBuf),
}

/// What [`find_manifest_upwards`] found.
#[derive(Debug)]
struct Found {
    manifest: Option<PathBuf>,
    stopped_at: Option<Stop>,
}

/// The first manifest (artifacts.toml, .json, .yaml, .yml, in that order)
/// in `start` or a directory above it, as cargo finds Cargo.toml. `start` is
/// absolute and physical (the current directory has its symbolic links
/// resolved, as `getcwd` returns it), so `..` means the real parent. Like
/// git, the search stops at a repository root (a directory holding `.git`:
/// one project's manifest is never another repository's) and does not
/// cross into another file system (mount point), so a manifest in an
/// unrelated parent such as `$HOME` is not picked up by accident.
fn find_manifest_upwards(start: &Path) -> Found {
    use std::os::unix::fs::MetadataExt;
    let device = std::fs::metadata(start).map(|m| m.dev()).ok();
    let mut last = start;
    for dir in start.ancestors() {
        if let (Some(device), Ok(metadata)) = (device, std::fs::metadata(dir))
            && metadata.dev() != device
        {
            return Found {
                manifest: None,
                stopped_at: Some(Stop::MountPoint(last.to_owned())),
            };
        }
        for name in MANIFEST_NAMES {
            let path = dir.join(name);
            if path.is_file() {
                return Found {
                    manifest: Some(path),
                    stopped_at: None,
                };
            }
        }
        if dir.join(".git").exists() {
            return Found {
                manifest: None,
                stopped_at: Some(Stop::Repository(dir.to_owned())),
            };
        }
        last = dir;
    }
    Found {
        manifest: None,
        stopped_at: None,
    }
}

/// Resolves `--target` values: `kind/name`, or a name unique among targets
/// (a nested tanka environment's too: `prod/eu` for `tanka/prod/eu`).
fn resolve_targets(model: &Model, references: &[String]) -> Result<Vec<TargetId>> {
    let mut out = Vec::new();
    for reference in references {
        let named = |id: &TargetId| id.name == *reference;
        let id = match reference.split_once('/') {
            Some((kind, name))
                if TargetKind::parse(kind).is_some()
                    || !model.targets.iter().any(|t| named(&t.id)) =>
            {
                let kind = TargetKind::parse(kind).ok_or_else(|| {
                    UsageError(anyhow::anyhow!("--target `{reference}`: unknown kind `{kind}` (use nixos/, home/ or tanka/)"))
                })?;
                let id = TargetId::new(kind, name);
                if model.target(&id).is_none() {
                    return Err(UsageError(anyhow::anyhow!(
                        "--target `{reference}`: no such target is declared"
                    ))
                    .into());
                }
                id
            }
            _ => {
                let matches: Vec<&TargetId> = model
                    .targets
                    .iter()
                    .map(|t| &t.id)
                    .filter(|id| named(id))
                    .collect();
                match matches.as_slice() {
                    [one] => (*one).clone(),
                    [] => {
                        let known: Vec<String> =
                            model.targets.iter().map(|t| t.id.reference()).collect();
                        return Err(UsageError(anyhow::anyhow!(
                            "--target `{reference}`: no such target is declared (declared: {})",
                            known.join(", ")
                        ))
                        .into());
                    }
                    _ => {
                        return Err(UsageError(anyhow::anyhow!(
                            "--target `{reference}` is ambiguous: write it as kind/name"
                        ))
                        .into());
                    }
                }
            }
        };
        out.push(id);
    }
    Ok(out)
}

/// Takes the project lock of `root`, saying so while another run holds it.
fn lock_project(root: &Path, no_wait: bool) -> Result<ProjectLock> {
    let path = ProjectLock::path(root);
    let holder = match ProjectLock::try_acquire(root)? {
        Attempt::Acquired(lock) => return Ok(lock),
        Attempt::Held(pid) => pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default(),
    };
    if no_wait {
        bail!(
            "another artifacts run holds the lock on this project{holder} (`{}`); rerun when it is done, or without --no-wait to wait for it",
            path.display()
        );
    }
    eprintln!("waiting for another artifacts run on this project{holder} to finish");
    Ok(ProjectLock::acquire(root)?)
}

/// Decides the sandbox: off when asked (with a warning), else bwrap, which must work.
pub fn sandbox(global: &GlobalArgs) -> Result<Sandbox> {
    let off_by_env = std::env::var("ARTIFACTS_SANDBOX").is_ok_and(|v| v == "off");
    if global.no_sandbox || off_by_env {
        tracing::warn!(
            "running generators WITHOUT the sandbox: they can reach the network and read your files"
        );
        return Ok(Sandbox::Off);
    }
    Sandbox::detect().map_err(anyhow::Error::new)
}
