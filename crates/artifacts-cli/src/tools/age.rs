//! `artifacts age …`: encrypt and decrypt files like the `age` tool.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use artifacts_crypto::age;
use artifacts_crypto::error::Error;
use artifacts_crypto::keys::{self, Purpose};

use super::{Io, load_identities, read_input, resolve, write_output, write_stdout};

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
    /// Encrypt to RECIPIENT (age1…, an age plugin's age1<name>1…, ssh-ed25519 …, ssh-rsa …). Repeatable.
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
    /// Decrypt with the identity file PATH (age key file, AGE-PLUGIN-… lines included, or OpenSSH key). Repeatable; ARTIFACTS_IDENTITY adds more.
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
    pub fn run(&self, io: &mut Io<'_>) -> Result<()> {
        match self {
            AgeCommand::Encrypt(a) => age_encrypt(a, io),
            AgeCommand::Decrypt(a) => age_decrypt(a, io),
            AgeCommand::Keygen(a) => age_keygen(a, io),
            AgeCommand::Recipients(a) => age_recipients(a, io),
        }
    }
}

fn age_encrypt(a: &AgeEncryptArgs, io: &mut Io<'_>) -> Result<()> {
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

fn age_decrypt(a: &AgeDecryptArgs, io: &mut Io<'_>) -> Result<()> {
    let identities = load_identities(io, &a.identities, Purpose::Age)?;
    let (input, origin) = read_input(io, &a.input)?;
    let plain = age::decrypt(&identities, &input, &origin)?;
    write_output(io, &a.output, &plain)
}

fn age_keygen(a: &AgeKeygenArgs, io: &mut Io<'_>) -> Result<()> {
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

fn age_recipients(a: &AgeRecipientsArgs, io: &mut Io<'_>) -> Result<()> {
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
