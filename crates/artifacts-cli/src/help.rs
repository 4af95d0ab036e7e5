//! Per-command help beyond the flag definitions: the examples every
//! `--help` and man page shows, and which global options each command uses
//! (the others are hidden from its help, man page and completions; they
//! are still accepted, so a command line that sets them for every command
//! keeps working).
//!
//! [`PAGES`] has one entry per command, nested ones as `sops decrypt`; the
//! test `every_command_has_a_page` fails for a command without one.

use clap::{Arg, Command};

/// Help text of one command.
pub struct Page {
    /// The subcommand path, e.g. `check` or `sops decrypt`.
    pub name: &'static str,
    /// The global options (clap ids) the command uses.
    pub globals: &'static [&'static str],
    /// Two or three `(command line, what it does)` pairs.
    pub examples: &'static [(&'static str, &'static str)],
}

/// Commands that read the declarations and run backend checks.
const READ: &[&str] = &[
    "directory",
    "manifest",
    "flake",
    "backends",
    "targets",
    "generator_from",
    "jobs",
    "json",
    "verbose",
    "quiet",
    "log_level",
    "color",
    "show_stderr",
    "timeout",
];

/// Commands that change stores or `artifacts.lock`: [`READ`] and the project lock.
const WRITE: &[&str] = &[
    "directory",
    "manifest",
    "flake",
    "backends",
    "targets",
    "generator_from",
    "jobs",
    "json",
    "verbose",
    "quiet",
    "log_level",
    "color",
    "show_stderr",
    "timeout",
    "no_wait",
];

/// Commands that run generators: everything.
const GENERATE: &[&str] = &[
    "directory",
    "manifest",
    "flake",
    "backends",
    "targets",
    "generator_from",
    "jobs",
    "json",
    "verbose",
    "quiet",
    "log_level",
    "color",
    "show_stderr",
    "timeout",
    "no_wait",
    "no_sandbox",
];

/// `age`, `sops`, `tanka`, `cmp`: files and streams, no declarations.
const TOOL: &[&str] = &["directory", "verbose", "quiet", "log_level", "color"];

/// `init`: writes a new project; reads no declarations.
const INIT: &[&str] = &[
    "directory",
    "json",
    "verbose",
    "quiet",
    "log_level",
    "color",
];

/// The help pages: `artifacts` itself (name `""`), then its commands.
pub const PAGES: &[Page] = &[
    Page {
        name: "",
        globals: GENERATE,
        examples: &[
            (
                "artifacts",
                "In a terminal: the status table, then an offer to generate what is missing.",
            ),
            (
                "artifacts check --json",
                "Where everything stands, as one JSON document (for CI).",
            ),
            (
                "artifacts generate --target nixos/web1",
                "Generate what machine web1 is missing.",
            ),
        ],
    },
    Page {
        name: "init",
        globals: INIT,
        examples: &[
            (
                "artifacts init",
                "Start here: artifacts.toml, an example generator and your identity.",
            ),
            (
                "artifacts init my-secrets && cd my-secrets && artifacts generate",
                "A new project directory, then its first secret.",
            ),
        ],
    },
    Page {
        name: "list",
        globals: READ,
        examples: &[
            (
                "artifacts list",
                "Every target and artifact, its backend and status.",
            ),
            (
                "artifacts list --target nixos/web1",
                "Only what machine web1 declares.",
            ),
            (
                "artifacts list --json | jq -r '.artifacts[] | select(.status != \"ok\") | .artifact'",
                "The names of what needs attention.",
            ),
        ],
    },
    Page {
        name: "check",
        globals: READ,
        examples: &[
            (
                "artifacts check",
                "Exit 0 only when everything is stored and current (for CI).",
            ),
            (
                "artifacts check --max-age 90d",
                "Also call stale what was generated over 90 days ago.",
            ),
            (
                "artifacts check --json > status.json",
                "The same as one JSON document.",
            ),
        ],
    },
    Page {
        name: "generate",
        globals: GENERATE,
        examples: &[
            (
                "artifacts generate",
                "Generate what is missing; prompts are asked in the terminal.",
            ),
            (
                "artifacts generate ssh-host --target nixos/web1",
                "One artifact of one machine.",
            ),
            (
                "artifacts generate --yes --prompts-file answers.yaml",
                "Unattended: answers from a file, stale artifacts regenerated.",
            ),
        ],
    },
    Page {
        name: "regenerate",
        globals: GENERATE,
        examples: &[
            (
                "artifacts regenerate db-password --yes",
                "Replace one secret (and what depends on it).",
            ),
            (
                "artifacts rotate --older-than 90d --yes",
                "Rotate everything older than 90 days.",
            ),
            (
                "artifacts regenerate --all --dry-run",
                "Show what a full rotation would do.",
            ),
        ],
    },
    Page {
        name: "explain",
        globals: READ,
        examples: &[
            (
                "artifacts explain db-password",
                "Backend and why, targets, files, fingerprint, status.",
            ),
            (
                "artifacts explain db-password --json | jq '.artifacts[0].backend_rule'",
                "Which rule chose the backend.",
            ),
        ],
    },
    Page {
        name: "backends",
        globals: &[
            "directory",
            "manifest",
            "flake",
            "backends",
            "json",
            "verbose",
            "quiet",
            "color",
        ],
        examples: &[
            (
                "artifacts backends",
                "The backends the project can use and what each can do.",
            ),
            (
                "artifacts backends --backends ./vault/backend.toml",
                "The backends of another backend.toml.",
            ),
        ],
    },
    Page {
        name: "migrate",
        globals: WRITE,
        examples: &[
            (
                "artifacts migrate db-password --to sops-nix --dry-run",
                "Show what would move to sops-nix.",
            ),
            (
                "artifacts migrate db-password --from agenix --to sops-nix",
                "Copy, verify, then remove the agenix copy.",
            ),
        ],
    },
    Page {
        name: "accept",
        globals: WRITE,
        examples: &[
            (
                "artifacts accept",
                "Record every stale or untracked artifact as it is stored.",
            ),
            (
                "artifacts accept db-password --dry-run",
                "Show what would be recorded for one.",
            ),
        ],
    },
    Page {
        name: "gc",
        globals: WRITE,
        examples: &[
            (
                "artifacts gc --dry-run",
                "List stored artifacts no longer declared.",
            ),
            (
                "artifacts gc --yes -i ~/.config/age/keys.txt",
                "Remove them without asking.",
            ),
        ],
    },
    Page {
        name: "graph",
        globals: &[
            "directory",
            "manifest",
            "flake",
            "backends",
            "targets",
            "json",
            "verbose",
            "quiet",
            "color",
            "timeout",
        ],
        examples: &[
            (
                "artifacts graph",
                "Each artifact with what it is made from.",
            ),
            (
                "artifacts graph --dot | dot -Tsvg > graph.svg",
                "A picture, with Graphviz.",
            ),
        ],
    },
    Page {
        name: "activate",
        globals: &[
            "directory",
            "manifest",
            "flake",
            "backends",
            "targets",
            "json",
            "verbose",
            "quiet",
            "log_level",
            "color",
            "show_stderr",
            "timeout",
            "no_sandbox",
        ],
        examples: &[
            (
                "artifacts activate --target nixos/web1",
                "Generate and install web1's dummy artifacts.",
            ),
            (
                "artifacts activate --target nixos/web1 --root /mnt wifi",
                "One artifact, into an image mounted at /mnt.",
            ),
            (
                "artifacts activate --target homemanager/alice",
                "As alice: fetch her openbao artifacts into her home.",
            ),
        ],
    },
    Page {
        name: "set",
        globals: WRITE,
        examples: &[
            (
                "artifacts set api-key < key.txt",
                "Store the vendor's key as the artifact's only file.",
            ),
            (
                "artifacts set tls --file cert --from cert.pem --file key --from key.pem",
                "Store both files of an artifact together.",
            ),
            (
                "artifacts set tls --target nixos/web1 --file cert --from renewed.pem",
                "Replace one file; the others are kept as stored.",
            ),
        ],
    },
    Page {
        name: "edit",
        globals: WRITE,
        examples: &[
            (
                "artifacts edit api-key",
                "Change the stored value in $VISUAL or $EDITOR.",
            ),
            (
                "EDITOR='code --wait' artifacts edit tls --file cert",
                "An editor command with arguments.",
            ),
        ],
    },
    Page {
        name: "import",
        globals: WRITE,
        examples: &[
            (
                "artifacts import api-key --from secrets/api-key.age",
                "Bring over an agenix file.",
            ),
            (
                "artifacts import db --file password --from secrets.yaml#db/password",
                "Bring over one value of a SOPS file.",
            ),
            (
                "artifacts import --dir old-secrets --target nixos/web1",
                "Every declared artifact with files in old-secrets/<artifact>/.",
            ),
        ],
    },
    Page {
        name: "show",
        globals: &[
            "directory",
            "manifest",
            "flake",
            "backends",
            "targets",
            "json",
            "verbose",
            "quiet",
            "log_level",
            "color",
            "show_stderr",
            "timeout",
        ],
        examples: &[
            (
                "artifacts show db-password -i ~/.config/age/keys.txt",
                "Print the decrypted secret.",
            ),
            (
                "artifacts show tls --file cert --target nixos/web1",
                "One file of web1's artifact.",
            ),
            (
                "artifacts show db-password --version 2",
                "An earlier generation (openbao keeps them).",
            ),
        ],
    },
    Page {
        name: "rekey",
        globals: WRITE,
        examples: &[
            (
                "artifacts rekey --dry-run",
                "Show what is stored for other recipients than declared.",
            ),
            (
                "artifacts rekey -i ~/.config/age/keys.txt",
                "Re-encrypt it for the declared ones.",
            ),
        ],
    },
    Page {
        name: "openbao",
        globals: READ,
        examples: &[
            (
                "artifacts openbao policies",
                "Print one read policy per target.",
            ),
            (
                "BAO_TOKEN=… artifacts openbao policies --apply",
                "Write them, with an AppRole each.",
            ),
        ],
    },
    Page {
        name: "openbao policies",
        globals: READ,
        examples: &[
            (
                "artifacts openbao policies --target nixos/web1",
                "web1's policy: its artifacts and its shared ones.",
            ),
            (
                "BAO_TOKEN=… artifacts openbao policies --apply",
                "Write every policy and AppRole to the server.",
            ),
        ],
    },
    Page {
        name: "age",
        globals: TOOL,
        examples: &[
            (
                "artifacts age keygen -o key.txt",
                "A new identity (its recipient goes to stderr).",
            ),
            (
                "artifacts age encrypt -r age1… -o secret.age secret.txt",
                "Encrypt a file.",
            ),
        ],
    },
    Page {
        name: "age encrypt",
        globals: TOOL,
        examples: &[
            (
                "artifacts age encrypt -r age1… -o secret.age secret.txt",
                "Encrypt to one recipient.",
            ),
            (
                "artifacts age encrypt -R recipients.txt -a < secret.txt",
                "Armored, to a list of recipients.",
            ),
        ],
    },
    Page {
        name: "age decrypt",
        globals: TOOL,
        examples: &[
            (
                "artifacts age decrypt -i key.txt secret.age",
                "Print the plaintext.",
            ),
            (
                "artifacts age decrypt -i ~/.ssh/id_ed25519 -o secret.txt secret.age",
                "To a 0600 file.",
            ),
        ],
    },
    Page {
        name: "age keygen",
        globals: TOOL,
        examples: &[
            (
                "artifacts age keygen -o key.txt",
                "Write a new identity to key.txt (0600).",
            ),
            (
                "artifacts age keygen | artifacts age recipients",
                "Print only a new recipient.",
            ),
        ],
    },
    Page {
        name: "age recipients",
        globals: TOOL,
        examples: &[
            (
                "artifacts age recipients key.txt",
                "The recipient of an identity file.",
            ),
            (
                "artifacts age recipients ~/.ssh/id_ed25519",
                "The age recipient of an SSH key.",
            ),
        ],
    },
    Page {
        name: "sops",
        globals: TOOL,
        examples: &[
            (
                "artifacts sops decrypt secrets.yaml",
                "Print a SOPS file decrypted.",
            ),
            (
                "artifacts sops updatekeys -y secrets.yaml",
                "Re-wrap it for the .sops.yaml recipients.",
            ),
        ],
    },
    Page {
        name: "sops encrypt",
        globals: TOOL,
        examples: &[
            (
                "artifacts sops encrypt --age age1… plain.yaml > secrets.yaml",
                "Encrypt to a recipient.",
            ),
            (
                "artifacts sops encrypt -i secrets.yaml",
                "In place, recipients from .sops.yaml.",
            ),
        ],
    },
    Page {
        name: "sops decrypt",
        globals: TOOL,
        examples: &[
            (
                "artifacts sops decrypt secrets.yaml",
                "Print the plaintext (MAC verified).",
            ),
            (
                "artifacts sops decrypt --extract '[\"db\"][\"password\"]' secrets.yaml",
                "Print one value.",
            ),
        ],
    },
    Page {
        name: "sops get",
        globals: TOOL,
        examples: &[
            (
                "artifacts sops get secrets.yaml '[\"db\"][\"password\"]'",
                "Print one value.",
            ),
            (
                "artifacts sops get --output-type json secrets.yaml '[\"db\"]'",
                "A subtree as JSON.",
            ),
        ],
    },
    Page {
        name: "sops set",
        globals: TOOL,
        examples: &[
            (
                "printf '%s' \"$TOKEN\" | artifacts sops set --raw secrets.yaml '[\"api\"][\"token\"]'",
                "Set a string from stdin.",
            ),
            (
                "artifacts sops set --value-file value.json secrets.yaml '[\"db\"]'",
                "Set a JSON value from a file.",
            ),
        ],
    },
    Page {
        name: "sops unset",
        globals: TOOL,
        examples: &[
            (
                "artifacts sops unset secrets.yaml '[\"old\"]'",
                "Remove a key.",
            ),
            (
                "artifacts sops unset secrets.yaml '[\"db\"][\"user\"]'",
                "Remove a nested key.",
            ),
        ],
    },
    Page {
        name: "sops updatekeys",
        globals: TOOL,
        examples: &[
            (
                "artifacts sops updatekeys -y secrets.yaml",
                "Recipients from the .sops.yaml rule.",
            ),
            (
                "artifacts sops updatekeys -y --age age1…,age1… secrets.yaml",
                "Recipients given.",
            ),
        ],
    },
    Page {
        name: "sops rotate",
        globals: TOOL,
        examples: &[
            (
                "artifacts sops rotate -i secrets.yaml",
                "A new data key, in place.",
            ),
            (
                "artifacts sops rotate -i --add-age age1… secrets.yaml",
                "And add a recipient.",
            ),
        ],
    },
    Page {
        name: "sops verify",
        globals: TOOL,
        examples: &[
            (
                "artifacts sops verify secrets.yaml",
                "Exit 0 when it decrypts and its MAC matches.",
            ),
            (
                "artifacts sops verify --identity key.txt a.yaml b.yaml",
                "Several files, one key.",
            ),
        ],
    },
    Page {
        name: "tanka",
        globals: TOOL,
        examples: &[
            (
                "artifacts tanka secrets default",
                "The default environment's secrets as YAML.",
            ),
            (
                "artifacts tanka show default",
                "Its Kubernetes objects, secrets bound.",
            ),
        ],
    },
    Page {
        name: "tanka secrets",
        globals: TOOL,
        examples: &[
            (
                "artifacts tanka secrets default",
                "Decrypted secrets of environments/default.",
            ),
            (
                "artifacts tanka secrets prod -i key.txt",
                "With an identity file.",
            ),
        ],
    },
    Page {
        name: "tanka show",
        globals: TOOL,
        examples: &[
            (
                "artifacts tanka show default",
                "Render with the built-in jsonnet.",
            ),
            (
                "artifacts tanka show prod --engine tk",
                "Render with Grafana Tanka's tk.",
            ),
        ],
    },
    Page {
        name: "cmp",
        globals: TOOL,
        examples: &[
            (
                "artifacts cmp plugin-yaml > plugin.yaml",
                "The sidecar's plugin manifest.",
            ),
            (
                "ARGOCD_ENV_TK_ENV=prod artifacts cmp generate",
                "What ArgoCD runs to render.",
            ),
        ],
    },
    Page {
        name: "cmp discover",
        globals: TOOL,
        examples: &[
            (
                "artifacts cmp discover",
                "Print the environment when this is a tanka project.",
            ),
            (
                "artifacts cmp discover --allow-list repos.txt",
                "Only for listed repositories.",
            ),
        ],
    },
    Page {
        name: "cmp generate",
        globals: TOOL,
        examples: &[
            (
                "ARGOCD_ENV_TK_ENV=prod artifacts cmp generate",
                "Render environment prod.",
            ),
            (
                "TK_ENV=default artifacts cmp generate --engine tk",
                "Render with tk.",
            ),
        ],
    },
    Page {
        name: "cmp plugin-yaml",
        globals: TOOL,
        examples: &[
            (
                "artifacts cmp plugin-yaml",
                "Print the ConfigManagementPlugin manifest.",
            ),
            (
                "artifacts cmp plugin-yaml > cmp-plugin.yaml",
                "Save it for a ConfigMap.",
            ),
        ],
    },
    Page {
        name: "completions",
        globals: &[],
        examples: &[
            (
                "source <(artifacts completions bash)",
                "Bash: put this line in ~/.bashrc.",
            ),
            (
                "artifacts completions fish > ~/.config/fish/completions/artifacts.fish",
                "Fish.",
            ),
            (
                "source <(artifacts completions zsh)",
                "Zsh: put this line in ~/.zshrc.",
            ),
        ],
    },
    Page {
        name: "man",
        globals: &[],
        examples: &[
            ("artifacts man check | man -l -", "Read artifacts-check(1)."),
            (
                "artifacts man artifacts.toml | man -l -",
                "Read artifacts.toml(5), the manifest format.",
            ),
            (
                "artifacts man --dir ~/.local/share/man",
                "Install every page (then `man artifacts-check`).",
            ),
        ],
    },
];

/// The page of a subcommand path.
pub fn page(name: &str) -> Option<&'static Page> {
    PAGES.iter().find(|p| p.name == name)
}

/// `Examples:` and an indented list, for `--help`.
pub fn examples_text(page: &Page) -> String {
    let mut text = String::from("Examples:");
    for (line, what) in page.examples {
        text.push_str(&format!("\n  {line}\n      {what}"));
    }
    text
}

/// The command with each page's examples after its help, and the global
/// options it does not use hidden: a hidden copy of such an option is
/// declared on the command itself, which clap's propagation of the global
/// one then leaves alone (the copy parses the same, under the same id).
pub fn decorate(mut command: Command) -> Command {
    let globals: Vec<Arg> = command
        .get_arguments()
        .filter(|a| a.is_global_set())
        .cloned()
        .collect();
    for page in PAGES {
        if page.name.is_empty() {
            command = command.after_help(format!(
                "{}\n\n{}\n\n{}",
                crate::args::AFTER_HELP,
                examples_text(page),
                crate::args::HELP_FOOTER
            ));
            continue;
        }
        let path: Vec<&str> = page.name.split(' ').collect();
        command = mutate(command, &path, &|sub: Command| {
            let mut sub = sub.after_help(examples_text(page));
            for global in &globals {
                let id = global.get_id();
                // A command's own option of the same name (tanka's --manifest) wins anyway.
                if page.globals.contains(&id.as_str())
                    || sub.get_arguments().any(|a| a.get_id() == id)
                {
                    continue;
                }
                sub = sub.arg(global.clone().hide(true));
            }
            sub
        });
    }
    command
}

/// Applies `f` to the subcommand at `path` (if there is one).
fn mutate(command: Command, path: &[&str], f: &dyn Fn(Command) -> Command) -> Command {
    match path {
        [] => f(command),
        [first, rest @ ..] => {
            if command.find_subcommand(first).is_none() {
                return command;
            }
            command.mut_subcommand(*first, |sub| mutate(sub, rest, f))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every visible command, nested ones too, by path.
    fn paths(command: &Command, prefix: &str, out: &mut Vec<String>) {
        for sub in command.get_subcommands() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            let path = format!("{prefix}{}", sub.get_name());
            out.push(path.clone());
            paths(sub, &format!("{path} "), out);
        }
    }

    #[test]
    fn every_command_has_a_page() {
        let mut all = Vec::new();
        paths(&crate::args::command(), "", &mut all);
        for path in &all {
            let page = page(path).unwrap_or_else(|| {
                panic!("`{path}` has no entry in help::PAGES: add its examples and global options")
            });
            assert!(
                (2..=3).contains(&page.examples.len()),
                "`{path}` needs two or three examples"
            );
        }
        for page in PAGES.iter().filter(|p| !p.name.is_empty()) {
            assert!(
                all.iter().any(|p| p == page.name),
                "page `{}` names no command",
                page.name
            );
        }
    }

    #[test]
    fn page_globals_are_global_options() {
        let command = crate::args::command();
        let globals: Vec<&str> = command
            .get_arguments()
            .filter(|a| a.is_global_set())
            .map(|a| a.get_id().as_str())
            .collect();
        for page in PAGES {
            for id in page.globals {
                assert!(
                    globals.contains(id),
                    "page `{}`: `{id}` is no global option",
                    page.name
                );
            }
        }
    }
}
