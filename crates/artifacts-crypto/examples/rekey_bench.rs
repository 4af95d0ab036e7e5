//! Re-encrypts age files to a new recipient set in one process, as
//! `agenix -r` does with one `age -d | age -r …` pair of processes per file.
//! `scripts/bench-crypto` times it against that shell loop.
//!
//! Usage: `rekey_bench IDENTITY RECIPIENTS_FILE FILE...`: writes `FILE.new`
//! next to each file (binary stays binary, armored stays armored) and prints
//! the time spent to stderr.

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use artifacts_crypto::Origin;
use artifacts_crypto::age::{self, NoPassphrase};

fn run(args: &[PathBuf]) -> Result<usize, Box<dyn Error>> {
    let [identity, recipients, files @ ..] = args else {
        return Err("usage: rekey_bench IDENTITY RECIPIENTS_FILE FILE...".into());
    };
    let identities = age::read_identity_file(identity, &NoPassphrase)?;
    let recipients = age::read_recipients_file(recipients)?;
    for file in files {
        let ciphertext = std::fs::read(file)?;
        let armor = age::is_armored(&ciphertext);
        let out = age::reencrypt(
            &identities,
            &recipients,
            &ciphertext,
            armor,
            &Origin::file(file),
        )?;
        let mut target = file.clone().into_os_string();
        target.push(".new");
        std::fs::write(&target, out)?;
    }
    Ok(files.len())
}

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let start = Instant::now();
    match run(&args) {
        Ok(n) => {
            eprintln!(
                "re-encrypted {n} files in {:.1} ms",
                start.elapsed().as_secs_f64() * 1000.0
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
