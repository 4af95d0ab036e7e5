//! `artifacts sops …`: SOPS files, flags as in the real `sops`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use artifacts_backends::transit::Transit;
use artifacts_crypto::age::Recipient;
use artifacts_crypto::error::{Error, Origin};
use artifacts_crypto::keys::Purpose;
use artifacts_crypto::sops::config::{SopsConfig, find_config};
use artifacts_crypto::sops::{
    self, EncryptOptions, EncryptedFile, EncryptionRules, Format, Keys, TransitKey, TreePath,
};
use artifacts_os::fs::write_atomic;
use zeroize::Zeroizing;

use super::{Io, load_identities, read_input, resolve, write_output, write_stdout};
use crate::exit::usage;

/// `artifacts sops …`: SOPS files, flags as in the real `sops`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SopsCommand {
    /// Encrypt a plaintext file; the result goes to stdout unless -i/--output.
    Encrypt(SopsEncryptArgs),
    /// Decrypt a file (MAC verified); the plaintext goes to stdout unless -i/--output.
    Decrypt(SopsDecryptArgs),
    /// Print one value: `get FILE '["a"]["b"]'` (same as decrypt --extract).
    Get(SopsGetArgs),
    /// Set one value in place; the value is read from stdin or --value-file.
    Set(SopsSetArgs),
    /// Remove one value in place.
    Unset(SopsUnsetArgs),
    /// Re-wrap the data key for the recipients of --age or .sops.yaml.
    Updatekeys(SopsUpdatekeysArgs),
    /// Re-encrypt everything with a new data key.
    Rotate(SopsRotateArgs),
    /// Check that a file decrypts and its MAC matches; prints nothing on stdout.
    Verify(SopsVerifyArgs),
}

/// Identity and format flags shared by the sops commands.
#[derive(Debug, Clone, clap::Args)]
pub struct SopsKeyArgs {
    /// Also try the identity file PATH (age key file or OpenSSH key). Repeatable.
    #[arg(long = "identity", value_name = "PATH")]
    pub identities: Vec<PathBuf>,
    /// The input format: yaml, json, dotenv or binary (default: from the file name).
    #[arg(long, value_name = "TYPE")]
    pub input_type: Option<String>,
}

/// Arguments of `sops encrypt`.
#[derive(Debug, Clone, clap::Args)]
pub struct SopsEncryptArgs {
    /// Comma-separated age recipients (default: the matching .sops.yaml creation rule).
    #[arg(long, short = 'a', value_name = "RECIPIENTS", value_delimiter = ',')]
    pub age: Vec<String>,
    /// Comma-separated Vault/OpenBao transit key URIs (https://HOST:PORT/v1/ENGINE/keys/NAME); the token comes from BAO_TOKEN, VAULT_TOKEN or ~/.vault-token.
    #[arg(long = "hc-vault-transit", value_name = "URIS", value_delimiter = ',')]
    pub hc_vault_transit: Vec<String>,
    /// The .sops.yaml to use (default: searched from the working directory up).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Write back to FILE instead of stdout.
    #[arg(short = 'i', long)]
    pub in_place: bool,
    /// Write the result to PATH instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// The input format: yaml, json, dotenv or binary (default: from the file name).
    #[arg(long, value_name = "TYPE")]
    pub input_type: Option<String>,
    /// The output format (default: the input format).
    #[arg(long, value_name = "TYPE")]
    pub output_type: Option<String>,
    /// Leave keys with this suffix unencrypted (default _unencrypted).
    #[arg(long, value_name = "SUFFIX")]
    pub unencrypted_suffix: Option<String>,
    /// Encrypt only keys with this suffix.
    #[arg(long, value_name = "SUFFIX")]
    pub encrypted_suffix: Option<String>,
    /// Leave keys matching REGEX unencrypted.
    #[arg(long, value_name = "REGEX")]
    pub unencrypted_regex: Option<String>,
    /// Encrypt only keys matching REGEX.
    #[arg(long, value_name = "REGEX")]
    pub encrypted_regex: Option<String>,
    /// Use this name for .sops.yaml rules and the format when reading stdin.
    #[arg(long, value_name = "PATH")]
    pub filename_override: Option<PathBuf>,
    /// The plaintext file (stdin when absent or `-`).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// Arguments of `sops decrypt`.
#[derive(Debug, Clone, clap::Args)]
pub struct SopsDecryptArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: SopsKeyArgs,
    /// Write the plaintext back to FILE.
    #[arg(short = 'i', long)]
    pub in_place: bool,
    /// Write the plaintext to PATH (created 0600) instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Print only the value at PATH, e.g. `["db"]["password"]`.
    #[arg(long, value_name = "PATH")]
    pub extract: Option<String>,
    /// The plaintext format (default: the input format).
    #[arg(long, value_name = "TYPE")]
    pub output_type: Option<String>,
    /// Use this name to pick the format when reading stdin.
    #[arg(long, value_name = "PATH")]
    pub filename_override: Option<PathBuf>,
    /// The encrypted file (stdin when absent or `-`).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// Arguments of `sops get`.
#[derive(Debug, Clone, clap::Args)]
pub struct SopsGetArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: SopsKeyArgs,
    /// The output format for trees and non-string values (default: the file's).
    #[arg(long, value_name = "TYPE")]
    pub output_type: Option<String>,
    /// The encrypted file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The path, e.g. `["db"]["password"]`.
    #[arg(value_name = "PATH")]
    pub path: String,
}

/// Arguments of `sops set`.
#[derive(Debug, Clone, clap::Args)]
pub struct SopsSetArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: SopsKeyArgs,
    /// Read the value from PATH instead of stdin.
    #[arg(long, value_name = "PATH", conflicts_with = "value_stdin")]
    pub value_file: Option<PathBuf>,
    /// Read the value from stdin (the default).
    #[arg(long)]
    pub value_stdin: bool,
    /// Take the value as a plain string instead of JSON.
    #[arg(long)]
    pub raw: bool,
    /// The encrypted file, changed in place.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The path, e.g. `["db"]["password"]`.
    #[arg(value_name = "PATH")]
    pub path: String,
}

/// Arguments of `sops unset`.
#[derive(Debug, Clone, clap::Args)]
pub struct SopsUnsetArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: SopsKeyArgs,
    /// The encrypted file, changed in place.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The path, e.g. `["db"]["password"]`.
    #[arg(value_name = "PATH")]
    pub path: String,
}

/// Arguments of `sops updatekeys`.
#[derive(Debug, Clone, clap::Args)]
pub struct SopsUpdatekeysArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: SopsKeyArgs,
    /// The new comma-separated age recipients (default: the matching .sops.yaml rule).
    #[arg(long, short = 'a', value_name = "RECIPIENTS", value_delimiter = ',')]
    pub age: Vec<String>,
    /// The .sops.yaml to use (default: searched from the working directory up).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Accepted for compatibility; this command never prompts.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// The encrypted files, changed in place.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// Arguments of `sops rotate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SopsRotateArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: SopsKeyArgs,
    /// Write back to FILE instead of stdout.
    #[arg(short = 'i', long)]
    pub in_place: bool,
    /// Write the result to PATH instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Also wrap the new data key for these comma-separated age recipients.
    #[arg(long, value_name = "RECIPIENTS", value_delimiter = ',')]
    pub add_age: Vec<String>,
    /// Stop wrapping the data key for these comma-separated age recipients.
    #[arg(long, value_name = "RECIPIENTS", value_delimiter = ',')]
    pub rm_age: Vec<String>,
    /// Also wrap the new data key with these comma-separated Vault/OpenBao transit key URIs.
    #[arg(
        long = "add-hc-vault-transit",
        value_name = "URIS",
        value_delimiter = ','
    )]
    pub add_hc_vault_transit: Vec<String>,
    /// Stop wrapping the data key with these comma-separated transit key URIs.
    #[arg(
        long = "rm-hc-vault-transit",
        value_name = "URIS",
        value_delimiter = ','
    )]
    pub rm_hc_vault_transit: Vec<String>,
    /// The encrypted file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Arguments of `sops verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct SopsVerifyArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: SopsKeyArgs,
    /// The encrypted files.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

impl SopsCommand {
    /// Runs the command. `Ok` means exit code 0.
    pub fn run(&self, io: &mut Io<'_>) -> Result<()> {
        match self {
            SopsCommand::Encrypt(a) => sops_encrypt(a, io),
            SopsCommand::Decrypt(a) => sops_decrypt(a, io),
            SopsCommand::Get(a) => sops_get(a, io),
            SopsCommand::Set(a) => sops_set(a, io),
            SopsCommand::Unset(a) => sops_unset(a, io),
            SopsCommand::Updatekeys(a) => sops_updatekeys(a, io),
            SopsCommand::Rotate(a) => sops_rotate(a, io),
            SopsCommand::Verify(a) => sops_verify(a, io),
        }
    }
}

fn format_arg(name: &Option<String>) -> Result<Option<Format>> {
    name.as_deref()
        .map(|n| {
            Format::from_name(n).ok_or_else(|| {
                usage(
                    format!("unknown format `{n}`"),
                    Some("use yaml, json, dotenv or binary"),
                )
            })
        })
        .transpose()
}

fn pick_format(
    explicit: Option<Format>,
    file: &Option<PathBuf>,
    name_override: &Option<PathBuf>,
) -> Result<Format> {
    if let Some(f) = explicit {
        return Ok(f);
    }
    if let Some(n) = name_override {
        artifacts_crypto::sops::refuse_ini(n)?;
        return Ok(Format::from_path(n));
    }
    match file {
        Some(p) if p != Path::new("-") => {
            artifacts_crypto::sops::refuse_ini(p)?;
            Ok(Format::from_path(p))
        }
        _ => Err(usage(
            "cannot tell the format of standard input",
            Some("pass --input-type or --filename-override"),
        )),
    }
}

fn in_place_target(
    in_place: bool,
    file: &Option<PathBuf>,
    output: &Option<PathBuf>,
) -> Result<Option<PathBuf>> {
    if !in_place {
        return Ok(output.clone());
    }
    if output.is_some() {
        return Err(usage("--in-place and --output cannot be combined", None));
    }
    match file {
        Some(p) if p != Path::new("-") => Ok(Some(p.clone())),
        _ => Err(usage("--in-place needs a file, not standard input", None)),
    }
}

fn parse_recipients(list: &[String]) -> Result<Vec<Recipient>> {
    Ok(list
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| Recipient::parse_from(s, Origin::Described("--age".into())))
        .collect::<artifacts_crypto::Result<Vec<_>>>()?)
}

fn parse_transit(list: &[String]) -> Result<Vec<TransitKey>> {
    Ok(TransitKey::parse_list(
        &list.join(","),
        &Origin::Described("--hc-vault-transit".into()),
    )?)
}

/// Transit access for files with `hc_vault` keys (contacted only when used).
fn transit(io: &Io<'_>) -> Transit {
    Transit::from_vars(io.env)
}

fn load_config(io: &Io<'_>, explicit: &Option<PathBuf>) -> Result<Option<SopsConfig>> {
    let path = match explicit {
        Some(p) => Some(resolve(io, p)),
        None => find_config(&io.cwd),
    };
    Ok(path.map(|p| SopsConfig::load(&p)).transpose()?)
}

fn sops_encrypt(a: &SopsEncryptArgs, io: &mut Io<'_>) -> Result<()> {
    let target = in_place_target(a.in_place, &a.file, &a.output)?;
    let in_format = pick_format(format_arg(&a.input_type)?, &a.file, &a.filename_override)?;
    let out_format = format_arg(&a.output_type)?.unwrap_or(in_format);
    let name_for_rules = a
        .filename_override
        .clone()
        .or_else(|| a.file.clone().filter(|p| p != Path::new("-")))
        .map(|p| resolve(io, &p));
    let mut rules = EncryptionRules::default();
    let mut recipients = parse_recipients(&a.age)?;
    let mut transit_keys = parse_transit(&a.hc_vault_transit)?;
    // As in sops: any key flag replaces the config's keys.
    if recipients.is_empty()
        && transit_keys.is_empty()
        && let Some(cfg) = load_config(io, &a.config)?
    {
        let file = name_for_rules
            .clone()
            .unwrap_or_else(|| io.cwd.join("stdin"));
        let rule = cfg.rule_for(&file)?;
        recipients = rule.recipients;
        transit_keys = rule.transit;
        rules = rule.rules;
    }
    // Flags replace the rule's key selection as a whole (sops allows one).
    let any_flag = a.unencrypted_suffix.is_some()
        || a.encrypted_suffix.is_some()
        || a.unencrypted_regex.is_some()
        || a.encrypted_regex.is_some();
    if any_flag {
        rules.unencrypted_suffix = a.unencrypted_suffix.clone();
        rules.encrypted_suffix = a.encrypted_suffix.clone();
        rules.unencrypted_regex = a.unencrypted_regex.clone();
        rules.encrypted_regex = a.encrypted_regex.clone();
    }
    let (input, origin) = read_input(io, &a.file)?;
    if recipients.is_empty() && transit_keys.is_empty() {
        return Err(Error::NoRecipients { origin }.into());
    }
    let doc = sops::parse_plain(&input, in_format, &origin)?;
    let file = sops::encrypt_with(
        doc,
        out_format,
        &EncryptOptions {
            recipients,
            transit: transit_keys,
            rules,
        },
        Some(&transit(io)),
        &origin,
    )?;
    let bytes = file.to_bytes();
    write_output(io, &target, &bytes)
}

fn read_encrypted(
    io: &mut Io<'_>,
    file: &Option<PathBuf>,
    input_type: &Option<String>,
    name_override: &Option<PathBuf>,
) -> Result<EncryptedFile> {
    let format = pick_format(format_arg(input_type)?, file, name_override)?;
    let (bytes, origin) = read_input(io, file)?;
    Ok(EncryptedFile::parse(&bytes, format, &origin)?)
}

fn sops_decrypt(a: &SopsDecryptArgs, io: &mut Io<'_>) -> Result<()> {
    let target = in_place_target(a.in_place, &a.file, &a.output)?;
    let out_format = format_arg(&a.output_type)?;
    let path = a.extract.as_deref().map(TreePath::parse).transpose()?;
    let identities = load_identities(io, &a.keys.identities, Purpose::Sops)?;
    let file = read_encrypted(io, &a.file, &a.keys.input_type, &a.filename_override)?;
    let dec = file.decrypt_with(&Keys::with_wrapper(&identities, &transit(io)))?;
    let out = match &path {
        Some(p) => dec.extract(p, out_format)?,
        None => dec.to_plain_bytes(out_format)?,
    };
    write_output(io, &target, &out)
}

fn sops_get(a: &SopsGetArgs, io: &mut Io<'_>) -> Result<()> {
    let path = TreePath::parse(&a.path)?;
    let identities = load_identities(io, &a.keys.identities, Purpose::Sops)?;
    let file = read_encrypted(io, &Some(a.file.clone()), &a.keys.input_type, &None)?;
    let dec = file.decrypt_with(&Keys::with_wrapper(&identities, &transit(io)))?;
    let out = dec.extract(&path, format_arg(&a.output_type)?)?;
    write_stdout(io, &out)
}

fn sops_set(a: &SopsSetArgs, io: &mut Io<'_>) -> Result<()> {
    let path = TreePath::parse(&a.path)?;
    let identities = load_identities(io, &a.keys.identities, Purpose::Sops)?;
    let file = read_encrypted(io, &Some(a.file.clone()), &a.keys.input_type, &None)?;
    let (raw, origin) = match &a.value_file {
        Some(f) => {
            let p = resolve(io, f);
            let b = std::fs::read(&p).map_err(|e| Error::io("read", f, e))?;
            (Zeroizing::new(b), Origin::file(f))
        }
        None => read_input(io, &None)?,
    };
    let value = sops::parse_set_value(&raw, a.raw, &origin)?;
    let mut dec = file.decrypt_with(&Keys::with_wrapper(&identities, &transit(io)))?;
    dec.set(&path, value)?;
    let bytes = dec.encrypt()?.to_bytes();
    write_atomic(&resolve(io, &a.file), &bytes).map_err(Error::from)?;
    Ok(())
}

fn sops_unset(a: &SopsUnsetArgs, io: &mut Io<'_>) -> Result<()> {
    let path = TreePath::parse(&a.path)?;
    let identities = load_identities(io, &a.keys.identities, Purpose::Sops)?;
    let file = read_encrypted(io, &Some(a.file.clone()), &a.keys.input_type, &None)?;
    let mut dec = file.decrypt_with(&Keys::with_wrapper(&identities, &transit(io)))?;
    dec.unset(&path)?;
    let bytes = dec.encrypt()?.to_bytes();
    write_atomic(&resolve(io, &a.file), &bytes).map_err(Error::from)?;
    Ok(())
}

fn sops_updatekeys(a: &SopsUpdatekeysArgs, io: &mut Io<'_>) -> Result<()> {
    let identities = load_identities(io, &a.keys.identities, Purpose::Sops)?;
    let explicit = parse_recipients(&a.age)?;
    let config = if explicit.is_empty() {
        Some(load_config(io, &a.config)?.ok_or_else(|| {
            usage(
                "no recipients given and no .sops.yaml found",
                Some("pass --age R1,R2 or add a .sops.yaml with creation_rules"),
            )
        })?)
    } else {
        None
    };
    for f in &a.files {
        let path = resolve(io, f);
        let mut file = read_encrypted(io, &Some(f.clone()), &a.keys.input_type, &None)?;
        let (recipients, transit_keys) = match &config {
            Some(cfg) => {
                let rule = cfg.rule_for(&path)?;
                (rule.recipients, rule.transit)
            }
            // --age changes the age recipients only.
            None => (explicit.clone(), file.metadata().transit_keys()),
        };
        let wrapper = transit(io);
        let changes = file.update_keys_with(
            &Keys::with_wrapper(&identities, &wrapper),
            &recipients,
            &transit_keys,
        )?;
        if changes.added.is_empty() && changes.removed.is_empty() {
            let _ = writeln!(io.stderr, "{}: already up to date", f.display());
            continue;
        }
        write_atomic(&path, &file.to_bytes()).map_err(Error::from)?;
        for r in &changes.added {
            let _ = writeln!(io.stderr, "{}: added {r}", f.display());
        }
        for r in &changes.removed {
            let _ = writeln!(io.stderr, "{}: removed {r}", f.display());
        }
    }
    Ok(())
}

fn sops_rotate(a: &SopsRotateArgs, io: &mut Io<'_>) -> Result<()> {
    let file_opt = Some(a.file.clone());
    let target = in_place_target(a.in_place, &file_opt, &a.output)?;
    let identities = load_identities(io, &a.keys.identities, Purpose::Sops)?;
    let add = parse_recipients(&a.add_age)?;
    let rm = parse_recipients(&a.rm_age)?;
    let add_transit = parse_transit(&a.add_hc_vault_transit)?;
    let rm_transit = parse_transit(&a.rm_hc_vault_transit)?;
    let file = read_encrypted(io, &file_opt, &a.keys.input_type, &None)?;
    let mut recipients: Vec<Recipient> = file
        .metadata()
        .age
        .iter()
        .map(|k| Recipient::parse_from(&k.recipient, file.origin().clone()))
        .collect::<artifacts_crypto::Result<_>>()?;
    recipients.retain(|r| !rm.contains(r));
    for r in add {
        if !recipients.contains(&r) {
            recipients.push(r);
        }
    }
    let mut transit_keys = file.metadata().transit_keys();
    transit_keys.retain(|k| !rm_transit.contains(k));
    for k in add_transit {
        if !transit_keys.contains(&k) {
            transit_keys.push(k);
        }
    }
    let dec = file.decrypt_with(&Keys::with_wrapper(&identities, &transit(io)))?;
    let bytes = dec
        .rotate_with(Some(&recipients), Some(&transit_keys), Some(&transit(io)))?
        .to_bytes();
    write_output(io, &target, &bytes)
}

fn sops_verify(a: &SopsVerifyArgs, io: &mut Io<'_>) -> Result<()> {
    let identities = load_identities(io, &a.keys.identities, Purpose::Sops)?;
    for f in &a.files {
        let file = read_encrypted(io, &Some(f.clone()), &a.keys.input_type, &None)?;
        file.decrypt_with(&Keys::with_wrapper(&identities, &transit(io)))?;
        let _ = writeln!(io.stderr, "{}: ok", f.display());
    }
    Ok(())
}
