//! `set`, `edit` and `import`: values a person puts into an artifact instead
//! of its generator (an API key from a vendor, a certificate bought
//! elsewhere, secrets kept by agenix or sops before).
//!
//! Each gathers the new files in memory, completes them with the stored files
//! the person did not give (read back through the backend), writes all of
//! them into a private scratch directory (memory-backed, `0700`, files
//! `0600`, removed on every exit path, signals included) and stores them
//! together through the engine: one serialize, as after generation, recorded
//! in `artifacts.lock` as put in by hand, so `check` compares only the
//! declared files and `regenerate` asks before replacing the value.
//!
//! Values never reach argv, logs or messages: they come from files, stdin,
//! a hidden prompt, or an editor working on a scratch file.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use artifacts_engine::lock::Provenance;
use artifacts_engine::{ArtifactFiles, Plan, Unit, UnitId};
use artifacts_os::scratch::{Scratch, write_private};
use zeroize::Zeroizing;

use crate::args::{EditArgs, GlobalArgs, ImportArgs, SetArgs};
use crate::commands::stored::{one_unit, pick_file, quoted};
use crate::context::Context;
use crate::exit;
use crate::report;

/// What to import into one unit: (declared file, source) pairs.
type ImportJob = (UnitId, Vec<(String, String)>);

/// Largest value read from a file or stdin: the engine refuses larger files
/// anyway (as it does a generator's); this only stops reading early.
const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// `artifacts set`: the named files from `--from` paths or stdin (a hidden
/// prompt when stdin is a terminal), the others kept as stored.
pub fn set(ctx: &Context, global: &GlobalArgs, args: &SetArgs) -> Result<i32> {
    let plan = ctx.plan()?;
    let index = one_unit(ctx, plan, &args.artifact)?;
    let unit = &plan[index];
    let pairs = pair_sources(unit, &args.files, &args.from, "--from")?;
    can_store(ctx, plan, index)?;
    let mut given = Vec::new();
    let mut stdin_used = false;
    for (file, source) in pairs {
        let content = match source {
            Some(path) if path != "-" => read_limited_file(Path::new(&path))?,
            _ if std::mem::replace(&mut stdin_used, true) => {
                return Err(exit::usage(
                    "only one file can come from stdin; pass --from PATH for the others",
                    None,
                ));
            }
            _ => read_stdin(unit.name(), &file)?,
        };
        given.push((file, content));
    }
    store(ctx, plan, index, given, Provenance::Set)?;
    report(global, plan, &[index], Provenance::Set)
}

/// Says what was stored: a line each on stderr, and with --json one entry
/// each in the document, its `result` `set`, `edited` or `imported` (or
/// `unchanged`, for an edit that changed nothing).
fn report(
    global: &GlobalArgs,
    plan: &Plan<'_>,
    stored: &[UnitId],
    provenance: Provenance,
) -> Result<i32> {
    let how = match provenance {
        Provenance::Imported => "imported".to_owned(),
        other => format!("{} by hand", other.as_str()),
    };
    for &i in stored {
        report::unit_result(&plan[i], provenance.as_str(), serde_json::json!({}));
        if !global.quiet {
            eprintln!("stored {} ({how})", plan[i].label());
        }
    }
    Ok(exit::SUCCESS)
}

/// `artifacts edit`: the stored file in a scratch file, `$VISUAL` or
/// `$EDITOR` on it, stored again only if it changed.
pub fn edit(ctx: &Context, global: &GlobalArgs, args: &EditArgs) -> Result<i32> {
    let plan = ctx.plan()?;
    let index = one_unit(ctx, plan, &args.artifact)?;
    let unit = &plan[index];
    let file = pick_file(unit, args.file.as_deref())?;
    let editor = editor_command()?;
    can_store(ctx, plan, index)?;
    let stored = ctx.engine().deserialize(plan, index)?;
    let before = stored
        .iter()
        .find(|(name, _)| *name == file)
        .map(|(_, content)| content.clone())
        .expect("deserialize validated every declared file");
    let scratch = Scratch::new("edit").context("failed to create a private scratch directory")?;
    // The file keeps its declared name (editors pick a syntax from it), alone
    // in a directory of its own so the editor's swap and backup files land
    // in the scratch directory too.
    let dir = scratch
        .subdir("edit")
        .context("failed to create a private scratch directory")?;
    let path = dir.join(&file);
    write_private(&path, &before)
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    run_editor(&editor, &path)?;
    let after = read_limited_file(&path)?;
    drop(scratch);
    if after == before {
        report::unit_result(unit, "unchanged", serde_json::json!({}));
        if !global.quiet {
            eprintln!("`{file}` of {} unchanged: nothing stored", unit.label());
        }
        return Ok(exit::SUCCESS);
    }
    // Every file at hand already: nothing is read back a second time.
    let files = stored
        .into_iter()
        .map(|(name, content)| {
            if name == file {
                (name, after.clone())
            } else {
                (name, content)
            }
        })
        .collect();
    store(ctx, plan, index, files, Provenance::Edited)?;
    report(global, plan, &[index], Provenance::Edited)
}

/// `artifacts import`: existing agenix `.age` files or SOPS files (whole, or
/// one value) into a declared artifact, or a directory of
/// `<artifact>/<file>.age` into every declared artifact it has files for.
pub fn import(ctx: &Context, global: &GlobalArgs, args: &ImportArgs) -> Result<i32> {
    let plan = ctx.plan()?;
    let decrypter = Decrypter::new(ctx)?;
    let jobs: Vec<ImportJob> = match (&args.dir, &args.artifact) {
        (Some(dir), _) => directory_jobs(ctx, plan, dir)?,
        (None, Some(artifact)) => {
            let index = one_unit(ctx, plan, artifact)?;
            let pairs = pair_sources(&plan[index], &args.files, &args.from, "--from")?;
            let pairs = pairs
                .into_iter()
                .map(|(file, source)| {
                    source.map(|source| (file.clone(), source)).ok_or_else(|| {
                        exit::usage(format!("pass --from SOURCE for file `{file}`"), None)
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            vec![(index, pairs)]
        }
        (None, None) => {
            return Err(exit::usage(
                "name an ARTIFACT with --from SOURCE, or pass --dir DIR",
                None,
            ));
        }
    };
    if jobs.is_empty() {
        if !global.quiet {
            eprintln!("nothing to import: no `<artifact>/<file>.age` matches a declared artifact");
        }
        return report(global, plan, &[], Provenance::Imported);
    }
    for (index, _) in &jobs {
        can_store(ctx, plan, *index)?;
    }
    // Everything is decrypted and checked before anything is stored.
    let mut decrypted = Vec::new();
    for (index, pairs) in jobs {
        let mut given = Vec::new();
        for (file, source) in pairs {
            let public = !plan[index].artifact.files[&file].secret;
            let content = decrypter.read(&source, public).with_context(|| {
                format!(
                    "cannot import `{source}` as file `{file}` of {}",
                    plan[index].label()
                )
            })?;
            given.push((file, content));
        }
        decrypted.push((index, given));
    }
    let mut stored = Vec::new();
    for (index, given) in decrypted {
        store(ctx, plan, index, given, Provenance::Imported)?;
        stored.push(index);
    }
    report(global, plan, &stored, Provenance::Imported)
}

/// `--file F --from S` pairs, in order; `--file` may be left out for an
/// artifact with one file, and (for `set`) `--from` for one file read from stdin.
fn pair_sources(
    unit: &Unit<'_>,
    files: &[String],
    sources: &[String],
    flag: &str,
) -> Result<Vec<(String, Option<String>)>> {
    let files: Vec<String> = if files.is_empty() {
        vec![pick_file(unit, None)?]
    } else {
        files
            .iter()
            .map(|f| pick_file(unit, Some(f)))
            .collect::<Result<_>>()?
    };
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = files.iter().find(|f| !seen.insert(f.as_str())) {
        return Err(exit::usage(format!("file `{twice}` is given twice"), None));
    }
    match sources.len() {
        0 if files.len() == 1 => Ok(vec![(files[0].clone(), None)]),
        n if n == files.len() => Ok(files
            .into_iter()
            .zip(sources.iter().cloned().map(Some))
            .collect()),
        n => Err(exit::usage(
            format!(
                "give one {flag} per --file, in the same order ({} --file, {n} {flag})",
                files.len()
            ),
            None,
        )),
    }
}

/// Reads a file of at most [`MAX_FILE_SIZE`] bytes.
fn read_limited_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("failed to open `{}`", path.display()))?;
    read_limited(file, &format!("`{}`", path.display()))
}

fn read_limited(reader: impl Read, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    let mut content = Zeroizing::new(Vec::new());
    reader
        .take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut content)
        .with_context(|| format!("failed to read {what}"))?;
    if content.len() as u64 > MAX_FILE_SIZE {
        return Err(exit::usage(
            format!("{what} is larger than the limit of {MAX_FILE_SIZE} bytes"),
            None,
        ));
    }
    Ok(content)
}

/// The value of `file` from stdin: piped as it is; from a terminal, asked
/// hidden and twice (never echoed, as `sops` would with a file editor), stored
/// without the line end.
fn read_stdin(artifact: &str, file: &str) -> Result<Zeroizing<Vec<u8>>> {
    if !std::io::stdin().is_terminal() {
        let value = read_limited(std::io::stdin().lock(), "stdin")?;
        // A script run with stdin closed must not store an empty secret.
        if value.is_empty() {
            return Err(exit::usage(
                format!(
                    "stdin is empty: refusing to store an empty value for `{file}` (pass --from /dev/null if that is what you want)"
                ),
                None,
            ));
        }
        return Ok(value);
    }
    use artifacts_engine::Asker;
    use secrecy::ExposeSecret;
    let prompt = artifacts_model::Prompt {
        description: Some(format!(
            "file `{file}`, not shown; multi-line values: --from PATH or a pipe"
        )),
        kind: artifacts_model::PromptKind::Hidden,
        allow_empty: false,
        confirm: true,
    };
    let answer = crate::ask::TerminalAsker
        .ask(artifact, file, &prompt)
        .map_err(|e| anyhow::anyhow!("failed to read the value of `{file}`: {e}"))?;
    Ok(Zeroizing::new(answer.expose_secret().as_bytes().to_vec()))
}

/// Before a value is read, typed or decrypted: can the unit take one?
fn can_store(ctx: &Context, plan: &Plan<'_>, index: UnitId) -> Result<()> {
    let unit = &plan[index];
    if ctx.engine().is_passthrough(unit) {
        return Err(exit::usage(
            format!(
                "{} cannot be stored: backend `{}` stores nothing (its files are generated at activation)",
                unit.label(),
                unit.backend.name
            ),
            None,
        ));
    }
    crate::commands::preflight::require_writable(ctx, plan, &[index])
}

/// Stores `given` files (the others as stored now) as put in by hand; the
/// caller checked [`can_store`].
fn store(
    ctx: &Context,
    plan: &Plan<'_>,
    index: UnitId,
    given: Vec<(String, Zeroizing<Vec<u8>>)>,
    provenance: Provenance,
) -> Result<()> {
    let unit = &plan[index];
    let engine = ctx.engine();
    let mut files: BTreeMap<String, Zeroizing<Vec<u8>>> = given.into_iter().collect();
    let missing: Vec<&String> = unit
        .artifact
        .files
        .keys()
        .filter(|name| !files.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        // Keep the others: read back what is stored, replace the given ones.
        let kept: ArtifactFiles = engine.deserialize(plan, index).map_err(|error| {
            exit::usage(format!(
                "the other files of {} ({}) must be read back to keep them, and cannot be: {}; give every file with --file F --from PATH",
                unit.label(),
                quoted(&missing),
                artifacts_engine::error_chain(&error)
            ), None)
        })?;
        for (name, content) in kept {
            files.entry(name).or_insert(content);
        }
    }
    let scratch = Scratch::new("set").context("failed to create a private scratch directory")?;
    let out = scratch
        .subdir("out")
        .context("failed to create a private scratch directory")?;
    for (name, content) in &files {
        write_private(&out.join(name), content)
            .with_context(|| format!("failed to write `{name}` into the scratch directory"))?;
    }
    let mut lock = ctx.lock.clone();
    engine.store_by_hand(plan, index, &out, &mut lock, provenance)?;
    Ok(())
}

/// `$VISUAL`, else `$EDITOR`, else `vi`, split into words as a shell would
/// (quotes, backslashes) but never run through one, as `sops` does.
fn editor_command() -> Result<Vec<String>> {
    let (variable, value) = ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|name| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| (*name, v))
        })
        .unwrap_or(("default", "vi".to_owned()));
    match shlex::split(&value) {
        Some(words) if !words.is_empty() => Ok(words),
        _ => Err(exit::usage(
            format!("${variable} `{value}` cannot be split into a command (unbalanced quotes?)"),
            None,
        )),
    }
}

/// Runs the editor on `path` in our terminal. It dies with us: a signal
/// that ends this run (which removes the scratch directory) ends the editor
/// too, instead of leaving it editing a deleted file.
fn run_editor(editor: &[String], path: &Path) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(&editor[0]);
    command.args(&editor[1..]).arg(path);
    // SAFETY: prctl is async-signal-safe; nothing is allocated.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
    let status = command
        .status()
        .with_context(|| format!("could not start the editor `{}`", editor[0]))?;
    if !status.success() {
        anyhow::bail!(
            "the editor `{}` failed ({}): nothing stored",
            editor[0],
            artifacts_os::process::describe_status(&status)
        );
    }
    Ok(())
}

/// For `import --dir DIR`: every selected unit with files under
/// `DIR/<artifact>/`, each declared file as `<file>.age` (a public one may
/// also be `<file>`, in plaintext).
fn directory_jobs(ctx: &Context, plan: &Plan<'_>, dir: &Path) -> Result<Vec<ImportJob>> {
    if !dir.is_dir() {
        return Err(exit::usage(
            format!("`{}` is not a directory", dir.display()),
            None,
        ));
    }
    let selected = ctx.select(plan, &[])?;
    let mut jobs: Vec<ImportJob> = Vec::new();
    let mut by_name: BTreeMap<&str, UnitId> = BTreeMap::new();
    for index in selected {
        let unit = &plan[index];
        let base = dir.join(unit.name());
        let found: Vec<(String, PathBuf)> = unit
            .artifact
            .files
            .iter()
            .filter_map(|(file, spec)| {
                let encrypted = base.join(format!("{file}.age"));
                let plain = base.join(file);
                if encrypted.is_file() {
                    Some((file.clone(), encrypted))
                } else if !spec.secret && plain.is_file() {
                    Some((file.clone(), plain))
                } else {
                    None
                }
            })
            .collect();
        if found.is_empty() {
            continue;
        }
        if found.len() != unit.artifact.files.len() {
            let missing: Vec<String> = unit
                .artifact
                .files
                .keys()
                .filter(|f| !found.iter().any(|(name, _)| name == *f))
                .map(|f| format!("`{}`", base.join(format!("{f}.age")).display()))
                .collect();
            return Err(exit::usage(
                format!(
                    "{} has some of its files in `{}` but not {}; import needs all of them",
                    unit.label(),
                    base.display(),
                    missing.join(", ")
                ),
                None,
            ));
        }
        if let Some(&other) = by_name.get(unit.name()) {
            return Err(exit::usage(
                format!(
                    "`{}` would be imported into both {} and {}; pass --target with one of them",
                    base.display(),
                    plan[other].scope(),
                    unit.scope()
                ),
                None,
            ));
        }
        by_name.insert(unit.name(), index);
        let pairs = found
            .into_iter()
            .map(|(file, path)| (file, path.display().to_string()))
            .collect();
        jobs.push((index, pairs));
    }
    Ok(jobs)
}

/// Reads import sources with the operator's identities: `-i`,
/// `ARTIFACTS_IDENTITY` and the manifest's `identities`, then what `sops`
/// itself reads (`SOPS_AGE_KEY_FILE`, …).
struct Decrypter {
    identities: Vec<artifacts_crypto::age::Identity>,
}

impl Decrypter {
    fn new(ctx: &Context) -> Result<Decrypter> {
        let mut env: BTreeMap<String, std::ffi::OsString> = std::env::vars_os()
            .filter_map(|(key, value)| key.into_string().ok().map(|key| (key, value)))
            .collect();
        // The context resolved these (absolute, unlocked copies of protected files).
        for (key, value) in &ctx.settings.extra_env {
            env.insert(key.clone(), value.clone());
        }
        let env = artifacts_crypto::keys::KeyEnv::from_pairs(&env);
        let identities = artifacts_crypto::keys::discover_identities(
            &[],
            &env,
            artifacts_crypto::keys::Purpose::Sops,
            &crate::ask::TtyPassphrase,
        )
        .map_err(|error| crate::exit::usage(artifacts_engine::error_chain(&error), error.hint()))?;
        Ok(Decrypter { identities })
    }

    /// `PATH` (an age file, or a whole SOPS file) or `PATH#KEY` (one value of
    /// a SOPS file; `KEY` as `a/b` or sops' `["a"]["b"]`). For a `public`
    /// file, a `PATH` that is neither is taken as it is.
    fn read(&self, source: &str, public: bool) -> Result<Zeroizing<Vec<u8>>> {
        use artifacts_crypto::sops::{EncryptedFile, TreePath};
        let (path, key) = match source.rsplit_once('#') {
            Some((path, key)) if !Path::new(source).exists() => (Path::new(path), Some(key)),
            _ => (Path::new(source), None),
        };
        let bytes = read_limited_file(path)?;
        let origin = artifacts_crypto::Origin::file(path);
        if is_age(&bytes) {
            if key.is_some() {
                return Err(exit::usage(
                    format!(
                        "`{}` is an age file: it has no keys to pick with `#`",
                        path.display()
                    ),
                    None,
                ));
            }
            return Ok(artifacts_crypto::age::decrypt(
                &self.identities,
                &bytes,
                &origin,
            )?);
        }
        let file = match EncryptedFile::read(path, None) {
            Ok(file) => file,
            Err(_) if public && key.is_none() => return Ok(bytes),
            Err(error) => return Err(error.into()),
        };
        let decrypted = file.decrypt(&self.identities)?;
        Ok(match key {
            None if file.format() == artifacts_crypto::sops::Format::Binary => {
                decrypted.extract(&TreePath::parse(r#"["data"]"#)?, None)?
            }
            None => decrypted.to_plain_bytes(None)?,
            Some(key) if key.starts_with('[') => decrypted.extract(&TreePath::parse(key)?, None)?,
            Some(key) => {
                let steps = key
                    .split('/')
                    .map(|part| artifacts_crypto::sops::path::Step::Key(part.to_owned()))
                    .collect();
                decrypted.extract(&TreePath(steps), None)?
            }
        })
    }
}

/// Whether `bytes` start like an age file, binary or armored.
fn is_age(bytes: &[u8]) -> bool {
    bytes.starts_with(b"age-encryption.org/") || artifacts_crypto::age::is_armored(bytes)
}
