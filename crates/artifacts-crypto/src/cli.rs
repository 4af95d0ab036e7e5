//! `artifacts age …` and `artifacts sops …`: clap argument types and `run`
//! functions, for embedding in a binary (feature `cli`).
//!
//! Plaintext only travels through stdin, stdout and files, never argv.
//! Output is buffered and written only after the whole operation succeeded,
//! so a failure prints nothing on stdout. Files are replaced atomically.
//! The process environment is not read here: callers pass it in [`Io`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::age::{self, Identity, PassphraseProvider, Recipient};
use crate::error::{Error, Origin};
use crate::keys::{self, KeyEnv, Purpose};
use crate::sops::config::{SopsConfig, find_config};
use crate::sops::{self, EncryptOptions, EncryptedFile, EncryptionRules, Format, TreePath};
use artifacts_os::fs::write_atomic;

/// The handles and environment a command runs with.
pub struct Io<'a> {
    /// Standard input.
    pub stdin: &'a mut dyn Read,
    /// Standard output (plaintext or ciphertext results).
    pub stdout: &'a mut dyn Write,
    /// Standard error (messages, never secrets).
    pub stderr: &'a mut dyn Write,
    /// Environment variables (`ARTIFACTS_IDENTITY`, `SOPS_AGE_KEY_FILE`, …).
    pub env: &'a BTreeMap<String, OsString>,
    /// Working directory, where `.sops.yaml` lookup starts.
    pub cwd: PathBuf,
    /// Asked for the passphrase of encrypted SSH keys and identity files.
    /// A binary asks on its controlling terminal (`/dev/tty`, as `age` does,
    /// since stdin may carry the data), and must not hold the stdin lock
    /// while it asks through stdin.
    pub passphrase: &'a dyn PassphraseProvider,
}

/// A failed command: the error, its exit code and an optional fix.
#[derive(Debug)]
pub struct CliError {
    message: String,
    hint: Option<String>,
    code: i32,
    source: Option<Box<Error>>,
}

impl CliError {
    /// An error with its message, optional hint and exit code, for other
    /// tools built on this one (the tanka subcommands).
    pub fn new(message: impl Into<String>, hint: Option<String>, code: i32) -> Self {
        CliError {
            message: message.into(),
            hint,
            code,
            source: None,
        }
    }

    /// A usage error (exit code 2).
    pub fn usage(message: impl Into<String>, hint: Option<&str>) -> Self {
        CliError {
            message: message.into(),
            hint: hint.map(str::to_string),
            code: 2,
            source: None,
        }
    }

    /// The exit code: 1 for failures, 2 for usage errors.
    pub fn exit_code(&self) -> i32 {
        self.code
    }

    /// A suggested fix, to print apart from the message.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// The library error behind this one, if any.
    pub fn error(&self) -> Option<&Error> {
        self.source.as_deref()
    }

    /// Prints `error: …` and the hint to `stderr`.
    pub fn report(&self, stderr: &mut dyn Write) {
        let _ = writeln!(stderr, "error: {self}");
        if let Some(h) = &self.hint {
            let _ = writeln!(stderr, "hint: {h}");
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        let mut message = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            message.push_str(": ");
            message.push_str(&s.to_string());
            src = s.source();
        }
        CliError {
            message,
            hint: e.hint().map(str::to_string),
            code: 1,
            source: Some(Box::new(e)),
        }
    }
}

type CliResult<T = ()> = std::result::Result<T, CliError>;

fn key_env(io: &Io<'_>) -> KeyEnv {
    KeyEnv::from_pairs(io.env.iter().map(|(k, v)| (k.as_str(), v.as_os_str())))
}

fn resolve(io: &Io<'_>, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        io.cwd.join(p)
    }
}

fn is_stdin(p: &Option<PathBuf>) -> bool {
    p.as_deref().is_none_or(|p| p == Path::new("-"))
}

fn read_input(io: &mut Io<'_>, input: &Option<PathBuf>) -> CliResult<(Zeroizing<Vec<u8>>, Origin)> {
    if is_stdin(input) {
        let mut buf = Zeroizing::new(Vec::new());
        io.stdin.read_to_end(&mut buf).map_err(|source| {
            CliError::from(Error::Stream {
                action: "read",
                stream: "standard input",
                source,
            })
        })?;
        Ok((buf, Origin::Stdin))
    } else {
        let p = resolve(io, input.as_deref().expect("checked"));
        let bytes = std::fs::read(&p).map_err(|e| Error::io("read", &p, e))?;
        Ok((
            Zeroizing::new(bytes),
            Origin::file(input.as_deref().expect("checked")),
        ))
    }
}

fn write_output(io: &mut Io<'_>, output: &Option<PathBuf>, data: &[u8]) -> CliResult {
    match output.as_deref() {
        None => write_stdout(io, data),
        Some(p) if p == Path::new("-") => write_stdout(io, data),
        Some(p) => {
            write_atomic(&resolve(io, p), data).map_err(Error::from)?;
            Ok(())
        }
    }
}

fn write_stdout(io: &mut Io<'_>, data: &[u8]) -> CliResult {
    match io.stdout.write_all(data).and_then(|()| io.stdout.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe is the reader's choice, not our failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(source) => Err(Error::Stream {
            action: "write",
            stream: "standard output",
            source,
        }
        .into()),
    }
}

fn load_identities(io: &Io<'_>, files: &[PathBuf], purpose: Purpose) -> CliResult<Vec<Identity>> {
    let files: Vec<PathBuf> = files.iter().map(|f| resolve(io, f)).collect();
    Ok(keys::discover_identities(
        &files,
        &key_env(io),
        purpose,
        io.passphrase,
    )?)
}

// ---------------------------------------------------------------------------
// age
// ---------------------------------------------------------------------------

/// `artifacts age …`: encrypt and decrypt files like the `age` tool.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AgeCommand {
    /// Encrypt a file (or stdin) to recipients.
    Encrypt(AgeEncryptArgs),
    /// Decrypt a file (or stdin) with identities.
    Decrypt(AgeDecryptArgs),
    /// Generate a new X25519 identity.
    Keygen(AgeKeygenArgs),
    /// Print the recipients (public keys) of identity files.
    Recipients(AgeRecipientsArgs),
}

/// Arguments of `age encrypt`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgeEncryptArgs {
    /// Encrypt to RECIPIENT (age1…, ssh-ed25519 …, ssh-rsa …). Repeatable.
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
    /// Encrypt to the recipients listed in PATH (one per line, # comments). Repeatable.
    #[arg(short = 'R', long = "recipients-file", value_name = "PATH")]
    pub recipients_files: Vec<PathBuf>,
    /// Write ASCII-armored (PEM) output.
    #[arg(short = 'a', long)]
    pub armor: bool,
    /// Write the result to OUTPUT instead of stdout.
    #[arg(short = 'o', long, value_name = "OUTPUT")]
    pub output: Option<PathBuf>,
    /// The file to encrypt (stdin when absent or `-`).
    #[arg(value_name = "INPUT")]
    pub input: Option<PathBuf>,
}

/// Arguments of `age decrypt`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgeDecryptArgs {
    /// Decrypt with the identity file PATH (age key file or OpenSSH key). Repeatable; ARTIFACTS_IDENTITY adds more.
    #[arg(short = 'i', long = "identity", value_name = "PATH")]
    pub identities: Vec<PathBuf>,
    /// Write the plaintext to OUTPUT (created 0600) instead of stdout.
    #[arg(short = 'o', long, value_name = "OUTPUT")]
    pub output: Option<PathBuf>,
    /// The file to decrypt, binary or armored (stdin when absent or `-`).
    #[arg(value_name = "INPUT")]
    pub input: Option<PathBuf>,
}

/// Arguments of `age keygen`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgeKeygenArgs {
    /// Write the identity to OUTPUT (created 0600, never overwritten) instead of stdout.
    #[arg(short = 'o', long, value_name = "OUTPUT")]
    pub output: Option<PathBuf>,
}

/// Arguments of `age recipients`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgeRecipientsArgs {
    /// Identity files to convert (stdin when none).
    #[arg(value_name = "IDENTITY_FILE")]
    pub identities: Vec<PathBuf>,
}

impl AgeCommand {
    /// Runs the command. `Ok` means exit code 0.
    pub fn run(&self, io: &mut Io<'_>) -> Result<(), CliError> {
        match self {
            AgeCommand::Encrypt(a) => age_encrypt(a, io),
            AgeCommand::Decrypt(a) => age_decrypt(a, io),
            AgeCommand::Keygen(a) => age_keygen(a, io),
            AgeCommand::Recipients(a) => age_recipients(a, io),
        }
    }
}

fn age_encrypt(a: &AgeEncryptArgs, io: &mut Io<'_>) -> CliResult {
    let files: Vec<PathBuf> = a.recipients_files.iter().map(|f| resolve(io, f)).collect();
    let recipients = keys::collect_recipients(&a.recipients, &files)?;
    let (input, origin) = read_input(io, &a.input)?;
    if recipients.is_empty() {
        return Err(Error::NoRecipients { origin }.into());
    }
    let mut out = Vec::with_capacity(input.len() + 512);
    age::encrypt_stream(&recipients, &input[..], &mut out, a.armor, &origin)?;
    write_output(io, &a.output, &out)
}

fn age_decrypt(a: &AgeDecryptArgs, io: &mut Io<'_>) -> CliResult {
    let identities = load_identities(io, &a.identities, Purpose::Age)?;
    let (input, origin) = read_input(io, &a.input)?;
    let plain = age::decrypt(&identities, &input, &origin)?;
    write_output(io, &a.output, &plain)
}

fn age_keygen(a: &AgeKeygenArgs, io: &mut Io<'_>) -> CliResult {
    let key = age::keygen();
    let text = key.identity_file();
    match &a.output {
        None => write_stdout(io, text.as_bytes()),
        Some(p) => {
            use std::os::unix::fs::OpenOptionsExt;
            let path = resolve(io, p);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| Error::io("create", p, e))?;
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| Error::io("write", p, e))?;
            let _ = writeln!(io.stderr, "Public key: {}", key.recipient());
            Ok(())
        }
    }
}

fn age_recipients(a: &AgeRecipientsArgs, io: &mut Io<'_>) -> CliResult {
    let mut ids = Vec::new();
    if a.identities.is_empty() {
        let (input, origin) = read_input(io, &None)?;
        let text = std::str::from_utf8(&input).map_err(|_| Error::InvalidIdentity {
            origin: origin.clone(),
            reason: "not UTF-8 text".into(),
        })?;
        ids.extend(age::parse_identities(text, origin, io.passphrase)?);
    } else {
        for f in &a.identities {
            ids.extend(age::read_identity_file(&resolve(io, f), io.passphrase)?);
        }
    }
    let mut out = String::new();
    for i in &ids {
        out.push_str(i.to_recipient()?.as_str());
        out.push('\n');
    }
    write_stdout(io, out.as_bytes())
}

// ---------------------------------------------------------------------------
// sops
// ---------------------------------------------------------------------------

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
    pub fn run(&self, io: &mut Io<'_>) -> Result<(), CliError> {
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

fn format_arg(name: &Option<String>) -> CliResult<Option<Format>> {
    name.as_deref()
        .map(|n| {
            Format::from_name(n).ok_or_else(|| {
                CliError::usage(
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
) -> CliResult<Format> {
    if let Some(f) = explicit {
        return Ok(f);
    }
    if let Some(n) = name_override {
        return Ok(Format::from_path(n));
    }
    match file {
        Some(p) if p != Path::new("-") => Ok(Format::from_path(p)),
        _ => Err(CliError::usage(
            "cannot tell the format of standard input",
            Some("pass --input-type or --filename-override"),
        )),
    }
}

fn in_place_target(
    in_place: bool,
    file: &Option<PathBuf>,
    output: &Option<PathBuf>,
) -> CliResult<Option<PathBuf>> {
    if !in_place {
        return Ok(output.clone());
    }
    if output.is_some() {
        return Err(CliError::usage(
            "--in-place and --output cannot be combined",
            None,
        ));
    }
    match file {
        Some(p) if p != Path::new("-") => Ok(Some(p.clone())),
        _ => Err(CliError::usage(
            "--in-place needs a file, not standard input",
            None,
        )),
    }
}

fn parse_recipients(list: &[String]) -> CliResult<Vec<Recipient>> {
    Ok(list
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| Recipient::parse_from(s, Origin::Described("--age".into())))
        .collect::<crate::Result<Vec<_>>>()?)
}

fn load_config(io: &Io<'_>, explicit: &Option<PathBuf>) -> CliResult<Option<SopsConfig>> {
    let path = match explicit {
        Some(p) => Some(resolve(io, p)),
        None => find_config(&io.cwd),
    };
    Ok(path.map(|p| SopsConfig::load(&p)).transpose()?)
}

fn sops_encrypt(a: &SopsEncryptArgs, io: &mut Io<'_>) -> CliResult {
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
    if recipients.is_empty()
        && let Some(cfg) = load_config(io, &a.config)?
    {
        let file = name_for_rules
            .clone()
            .unwrap_or_else(|| io.cwd.join("stdin"));
        let rule = cfg.rule_for(&file)?;
        recipients = rule.recipients;
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
    if recipients.is_empty() {
        return Err(Error::NoRecipients { origin }.into());
    }
    let doc = sops::parse_plain(&input, in_format, &origin)?;
    let file = sops::encrypt(
        doc,
        out_format,
        &EncryptOptions { recipients, rules },
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
) -> CliResult<EncryptedFile> {
    let format = pick_format(format_arg(input_type)?, file, name_override)?;
    let (bytes, origin) = read_input(io, file)?;
    Ok(EncryptedFile::parse(&bytes, format, &origin)?)
}

fn sops_decrypt(a: &SopsDecryptArgs, io: &mut Io<'_>) -> CliResult {
    let target = in_place_target(a.in_place, &a.file, &a.output)?;
    let out_format = format_arg(&a.output_type)?;
    let path = a.extract.as_deref().map(TreePath::parse).transpose()?;
    let identities = load_identities(io, &a.keys.identities, Purpose::Sops)?;
    let file = read_encrypted(io, &a.file, &a.keys.input_type, &a.filename_override)?;
    let dec = file.decrypt(&identities)?;
    let out = match &path {
        Some(p) => dec.extract(p, out_format)?,
        None => dec.to_plain_bytes(out_format)?,
    };
    write_output(io, &target, &out)
}

fn sops_get(a: &SopsGetArgs, io: &mut Io<'_>) -> CliResult {
    let path = TreePath::parse(&a.path)?;
    let identities = load_identities(io, &a.keys.identities, Purpose::Sops)?;
    let file = read_encrypted(io, &Some(a.file.clone()), &a.keys.input_type, &None)?;
    let dec = file.decrypt(&identities)?;
    let out = dec.extract(&path, format_arg(&a.output_type)?)?;
    write_stdout(io, &out)
}

fn sops_set(a: &SopsSetArgs, io: &mut Io<'_>) -> CliResult {
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
    let mut dec = file.decrypt(&identities)?;
    dec.set(&path, value)?;
    let bytes = dec.encrypt()?.to_bytes();
    write_atomic(&resolve(io, &a.file), &bytes).map_err(Error::from)?;
    Ok(())
}

fn sops_unset(a: &SopsUnsetArgs, io: &mut Io<'_>) -> CliResult {
    let path = TreePath::parse(&a.path)?;
    let identities = load_identities(io, &a.keys.identities, Purpose::Sops)?;
    let file = read_encrypted(io, &Some(a.file.clone()), &a.keys.input_type, &None)?;
    let mut dec = file.decrypt(&identities)?;
    dec.unset(&path)?;
    let bytes = dec.encrypt()?.to_bytes();
    write_atomic(&resolve(io, &a.file), &bytes).map_err(Error::from)?;
    Ok(())
}

fn sops_updatekeys(a: &SopsUpdatekeysArgs, io: &mut Io<'_>) -> CliResult {
    let identities = load_identities(io, &a.keys.identities, Purpose::Sops)?;
    let explicit = parse_recipients(&a.age)?;
    let config = if explicit.is_empty() {
        Some(load_config(io, &a.config)?.ok_or_else(|| {
            CliError::usage(
                "no recipients given and no .sops.yaml found",
                Some("pass --age R1,R2 or add a .sops.yaml with creation_rules"),
            )
        })?)
    } else {
        None
    };
    for f in &a.files {
        let path = resolve(io, f);
        let recipients = match &config {
            Some(cfg) => cfg.rule_for(&path)?.recipients,
            None => explicit.clone(),
        };
        let mut file = read_encrypted(io, &Some(f.clone()), &a.keys.input_type, &None)?;
        let changes = file.update_keys(&identities, &recipients)?;
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

fn sops_rotate(a: &SopsRotateArgs, io: &mut Io<'_>) -> CliResult {
    let file_opt = Some(a.file.clone());
    let target = in_place_target(a.in_place, &file_opt, &a.output)?;
    let identities = load_identities(io, &a.keys.identities, Purpose::Sops)?;
    let add = parse_recipients(&a.add_age)?;
    let rm = parse_recipients(&a.rm_age)?;
    let file = read_encrypted(io, &file_opt, &a.keys.input_type, &None)?;
    let mut recipients: Vec<Recipient> = file
        .metadata()
        .age
        .iter()
        .map(|k| Recipient::parse_from(&k.recipient, file.origin().clone()))
        .collect::<crate::Result<_>>()?;
    recipients.retain(|r| !rm.contains(r));
    for r in add {
        if !recipients.contains(&r) {
            recipients.push(r);
        }
    }
    let dec = file.decrypt(&identities)?;
    let bytes = dec.rotate(Some(&recipients))?.to_bytes();
    write_output(io, &target, &bytes)
}

fn sops_verify(a: &SopsVerifyArgs, io: &mut Io<'_>) -> CliResult {
    let identities = load_identities(io, &a.keys.identities, Purpose::Sops)?;
    for f in &a.files {
        let file = read_encrypted(io, &Some(f.clone()), &a.keys.input_type, &None)?;
        file.decrypt(&identities)?;
        let _ = writeln!(io.stderr, "{}: ok", f.display());
    }
    Ok(())
}
