//! Manual pages: `artifacts(1)`, `artifacts-COMMAND(1)` for every visible
//! command (nested ones as `artifacts-sops-decrypt(1)`) and
//! `artifacts.toml(5)`, the manifest format.
//!
//! Name, synopsis, description and options come from the clap definition
//! (clap_mangen); EXAMPLES from [`crate::help::PAGES`]; EXIT STATUS,
//! ENVIRONMENT, FILES and SEE ALSO are written here, once for every page.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::args::ManArgs;
use crate::exit::{self, UsageError};
use crate::help;

const MANUAL: &str = "artifacts manual";

/// `artifacts man`: one page on stdout, or every page under `--dir`.
pub fn run(args: &ManArgs) -> Result<i32> {
    let mut root = crate::args::command();
    // Built: global options propagated, names like `artifacts check` set.
    root.build();
    if let Some(dir) = &args.dir {
        let written = write_all(&root, dir)?;
        eprintln!(
            "wrote {} manual pages under `{}`",
            written.len(),
            dir.display()
        );
        return Ok(exit::SUCCESS);
    }
    let mut page = Vec::new();
    match args.page.as_deref() {
        None | Some("artifacts") => render_command(&root, "", &mut page)?,
        Some("artifacts.toml" | "artifacts.toml.5") => render_manifest(&mut page)?,
        Some(name) => {
            let path = name.trim_start_matches("artifacts-").replace('-', " ");
            let path = if help::page(&path).is_some() {
                path
            } else {
                // Commands with a dash in their own name (`plugin-yaml`).
                pages(&root)
                    .into_iter()
                    .find(|p| p.replace(' ', "-") == name.trim_start_matches("artifacts-"))
                    .ok_or_else(|| {
                        UsageError(anyhow::anyhow!(
                            "no manual page `{name}` (pages: artifacts, artifacts.toml, {})",
                            pages(&root)
                                .iter()
                                .map(|p| p.replace(' ', "-"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?
            };
            render_command(&root, &path, &mut page)?;
        }
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&page)?;
    out.flush()?;
    Ok(exit::SUCCESS)
}

/// Every visible command path, nested ones too (`sops decrypt`).
fn pages(root: &clap::Command) -> Vec<String> {
    fn walk(command: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        for sub in command.get_subcommands() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            let path = format!("{prefix}{}", sub.get_name());
            out.push(path.clone());
            walk(sub, &format!("{path} "), out);
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out
}

/// Writes every page to `dir/man1` and `dir/man5`; the files written.
fn write_all(root: &clap::Command, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut write = |section: &str, name: String, render: &dyn Fn(&mut Vec<u8>) -> Result<()>| {
        let sub = dir.join(format!("man{section}"));
        std::fs::create_dir_all(&sub)
            .with_context(|| format!("failed to create `{}`", sub.display()))?;
        let mut page = Vec::new();
        render(&mut page)?;
        let path = sub.join(format!("{name}.{section}"));
        std::fs::write(&path, page)
            .with_context(|| format!("failed to write `{}`", path.display()))?;
        written.push(path);
        anyhow::Ok(())
    };
    write("1", "artifacts".into(), &|w| render_command(root, "", w))?;
    for path in pages(root) {
        let name = format!("artifacts-{}", path.replace(' ', "-"));
        write("1", name, &|w| render_command(root, &path, w))?;
    }
    write("5", "artifacts.toml".into(), &|w| render_manifest(w))?;
    Ok(written)
}

/// The page of the command at `path` (`""` is `artifacts` itself).
fn render_command(root: &clap::Command, path: &str, w: &mut Vec<u8>) -> Result<()> {
    let mut command = root.clone();
    for part in path.split(' ').filter(|p| !p.is_empty()) {
        command = command
            .find_subcommand(part)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no command `{path}`; this is a bug"))?;
    }
    let title = if path.is_empty() {
        "artifacts".to_owned()
    } else {
        format!("artifacts-{}", path.replace(' ', "-"))
    };
    let has_options = command
        .get_arguments()
        .any(|a| !a.is_hide_set() && a.get_id() != "help" && a.get_id() != "version");
    let has_subcommands = command
        .get_subcommands()
        .any(|s| !s.is_hide_set() && s.get_name() != "help");
    let man = Man::new(command.clone())
        .title(title.to_uppercase())
        .section("1")
        .manual(MANUAL)
        .source(format!("artifacts {}", env!("CARGO_PKG_VERSION")));
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    if has_options {
        man.render_options_section(w)?;
    }
    if has_subcommands {
        man.render_subcommands_section(w)?;
    }
    let mut roff = Roff::new();
    if let Some(page) = help::page(path) {
        examples(&mut roff, page);
    }
    let commands = if path.is_empty() {
        pages(root)
    } else {
        Vec::new()
    };
    common_sections(&mut roff, path, &commands);
    roff.to_writer(w)?;
    Ok(())
}

fn examples(roff: &mut Roff, page: &help::Page) {
    roff.control("SH", ["EXAMPLES"]);
    list(roff, page.examples);
}

/// A `.TP` list: a bold tag, then its text.
fn list(roff: &mut Roff, items: &[(&str, &str)]) {
    for (tag, text) in items {
        roff.control("TP", []);
        roff.text([bold(*tag)]);
        roff.text([roman(*text)]);
    }
}

/// EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO (with the page of each
/// of `commands`).
fn common_sections(roff: &mut Roff, path: &str, commands: &[String]) {
    let tool = ["age", "sops", "tanka", "cmp"]
        .iter()
        .any(|t| path == *t || path.starts_with(&format!("{t} ")));
    roff.control("SH", ["EXIT STATUS"]);
    if path == "check" {
        list(
            roff,
            &[
                (
                    "0",
                    "Everything is stored and current (untracked artifacts are noted).",
                ),
                (
                    "1",
                    "Something is missing, stale or stored in another backend than declared; with --strict, also untracked.",
                ),
                (
                    "2",
                    "A usage or declaration error, or a check that could not run.",
                ),
            ],
        );
    } else {
        list(
            roff,
            &[
                (
                    "0",
                    "Success. A closed standard output (a pipe into head) also ends with 0.",
                ),
                ("1", "An operation failed, or was declined."),
                ("2", "A usage or declaration error."),
            ],
        );
    }
    roff.control("SH", ["ENVIRONMENT"]);
    if tool {
        list(
            roff,
            &[
                (
                    "ARTIFACTS_IDENTITY",
                    "Identity files to decrypt with, separated by colons.",
                ),
                (
                    "SOPS_AGE_KEY_FILE, SOPS_AGE_KEY",
                    "An age identity file, or identities themselves, as sops reads them.",
                ),
                (
                    "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
                    "An OpenSSH private key to decrypt with.",
                ),
            ],
        );
    } else {
        list(
            roff,
            &[
                (
                    "ARTIFACTS_IDENTITY",
                    "Identity files for reading stored secrets back, separated by colons (like -i FILE).",
                ),
                (
                    "ARTIFACTS_PROMPT_<ARTIFACT>_<PROMPT>",
                    "The answer to a prompt, upper-cased, other characters as _ (without a terminal).",
                ),
                (
                    "ARTIFACTS_SANDBOX",
                    "off runs generators without the bubblewrap sandbox, as --no-sandbox does.",
                ),
                (
                    "ARTIFACTS_TMPDIR",
                    "Where scratch directories go (else XDG_RUNTIME_DIR, TMPDIR, /dev/shm, /tmp).",
                ),
                (
                    "NIXOS_ARTIFACTS_BACKEND_CONFIG",
                    "The backend.toml to use when --backends is not given.",
                ),
                (
                    "SOPS_AGE_KEY_FILE, SOPS_AGE_SSH_PRIVATE_KEY_FILE",
                    "Identity files, made absolute and handed to backend scripts.",
                ),
                (
                    "COMPLETE",
                    "Set by the completion scripts of artifacts completions; not for people.",
                ),
            ],
        );
    }
    roff.control("SH", ["FILES"]);
    if tool {
        list(
            roff,
            &[(
                ".sops.yaml",
                "Creation rules: which recipients a SOPS file gets, searched from the working directory up.",
            )],
        );
    } else {
        list(
            roff,
            &[
                (
                    "artifacts.toml (.json, .yaml)",
                    "The declarations, in the working directory or -C DIR; see artifacts.toml(5). Without one, flake.nix.",
                ),
                (
                    "backend.toml",
                    "The backends, beside the manifest (or --backends FILE).",
                ),
                (
                    "artifacts.lock",
                    "Per target and artifact the declaration fingerprint and generation time; committed, never secret.",
                ),
                (
                    "secrets/, public/",
                    "Where the shipped backends store encrypted and public files.",
                ),
            ],
        );
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut also = vec![
        bold("artifacts"),
        roman("(1), "),
        bold("artifacts.toml"),
        roman("(5)"),
    ];
    for command in commands {
        also.push(roman(", "));
        also.push(bold(format!("artifacts-{}", command.replace(' ', "-"))));
        also.push(roman("(1)"));
    }
    if !path.is_empty() {
        also.push(roman(", "));
        also.push(italic("artifacts COMMAND --help"));
    }
    roff.text(also);
}

/// `artifacts.toml(5)`: the manifest format.
fn render_manifest(w: &mut Vec<u8>) -> Result<()> {
    let mut roff = Roff::new();
    roff.control(
        "TH",
        [
            "ARTIFACTS.TOML",
            "5",
            "",
            &format!("artifacts {}", env!("CARGO_PKG_VERSION")),
            MANUAL,
        ],
    );
    roff.control("SH", ["NAME"]);
    roff.text([roman(
        "artifacts.toml - declarations of secrets and generated files",
    )]);
    roff.control("SH", ["DESCRIPTION"]);
    roff.text([roman(
        "The manifest declares targets (NixOS machines, Home Manager users, tanka environments), \
         the artifacts each needs, how an artifact is made (prompts, a generator) and which backend stores it. \
         It is artifacts.toml, artifacts.json (also exactly the JSON the Nix modules produce) or artifacts.yaml \
         in the project directory; backend.toml and artifacts.lock live beside it. Relative paths are relative to the manifest.",
    )]);
    roff.control("SH", ["TOP-LEVEL KEYS"]);
    list(
        &mut roff,
        &[
            (
                "default.backend",
                "The backend of artifacts that name none and whose target names none.",
            ),
            (
                "identities",
                "Your identity files (age or OpenSSH), to read stored secrets back; ~/ is the home directory.",
            ),
            ("nixos.NAME", "A NixOS machine."),
            ("home.NAME", "A Home Manager user."),
            (
                "tanka.NAME",
                "A tanka environment (a directory under environments/).",
            ),
            (
                "artifacts.NAME",
                "Shorthand: one declaration for the targets listed in its targets key (kind/name, or a unique name).",
            ),
        ],
    );
    roff.control("SH", ["TARGET KEYS"]);
    list(
        &mut roff,
        &[
            (
                "default.backend",
                "The backend of this target's artifacts that name none (beats the manifest's).",
            ),
            (
                "config.BACKEND.KEY",
                "Settings handed to that backend's scripts, e.g. config.agenix.publicHostKey.",
            ),
            ("artifacts.NAME", "An artifact of this target."),
        ],
    );
    roff.control("SH", ["ARTIFACT KEYS"]);
    list(
        &mut roff,
        &[
            (
                "generator",
                "The executable that writes the files into $out, run in a sandbox; relative to the manifest.",
            ),
            (
                "backend",
                "The backend that stores it (beats every default).",
            ),
            ("description", "What it is, for people."),
            (
                "shared",
                "true: generated once and stored for every target that declares it.",
            ),
            (
                "files.NAME",
                "A file the generator writes: path, owner, group, mode (an octal string such as \"0400\"), secret (default true).",
            ),
            (
                "prompts.NAME",
                "A question asked before generating: description, type (line, hidden, multiline, multiline-hidden; default hidden), allowEmpty, confirm.",
            ),
            (
                "dependencies",
                "Artifacts whose files the generator reads as $in/ARTIFACT/FILE.",
            ),
        ],
    );
    roff.control("SH", ["DEFAULTS"]);
    roff.text([roman(
        "path /run/artifacts/ARTIFACT/FILE (NixOS), $XDG_RUNTIME_DIR/artifacts/ARTIFACT/FILE (Home Manager), \
         ARTIFACT/FILE (tanka); owner and group root (NixOS only); mode 0400; secret true.",
    )]);
    roff.control("SH", ["BACKEND RESOLUTION"]);
    roff.text([roman(
        "The artifact's backend, else the target's default.backend, else the manifest's default.backend, \
         else an error. artifacts explain ARTIFACT says which rule chose it.",
    )]);
    roff.control("SH", ["EXAMPLES"]);
    roff.control("nf", []);
    for line in [
        "default.backend = \"agenix\"",
        "identities = [\"~/.ssh/id_ed25519\"]",
        "",
        "[nixos.web1]",
        "config.agenix.publicHostKey = \"ssh-ed25519 AAAA...\"",
        "",
        "[nixos.web1.artifacts.nginx-cert]",
        "generator = \"generators/cert.sh\"",
        "files.key = { owner = \"nginx\", group = \"nginx\", mode = \"0400\" }",
        "files.cert = { secret = false, mode = \"0444\" }",
        "",
        "[artifacts.api-token]",
        "targets = [\"web1\", \"home/alice\"]",
        "generator = \"generators/token.sh\"",
        "prompts.seed = { description = \"Seed\", type = \"hidden\" }",
        "files.token = {}",
    ] {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([
        bold("artifacts"),
        roman("(1), "),
        bold("artifacts-explain"),
        roman("(1)"),
    ]);
    roff.to_writer(w)?;
    Ok(())
}
