//! Shell integration: completions exercised in a real bash (the script
//! `artifacts completions bash` prints, its function called as bash calls
//! it on Tab), man pages rendered by the real `man`, and every `--help`.

use std::path::Path;
use std::process::Command;

use crate::util::{Project, binary};

fn project(name: &str) -> Project {
    let p = Project::new(name);
    p.recording_backend()
        .generator("token.sh", r#"echo t > "$out/token""#)
        .manifest(
            r#"
default.backend = "rec"
[nixos.web1.artifacts.alpha]
description = "The alpha token"
generator = "generators/token.sh"
files.token = {}
files.alpha-cert = { secret = false }
[home.alice.artifacts.beta]
generator = "generators/token.sh"
files.beta-key = {}
"#,
        );
    p
}

/// What bash offers on Tab after `line` (the word being completed is the
/// text after the last space), run in `dir` with the registered function.
fn complete(p: &Project, dir: &Path, line: &str) -> Vec<String> {
    // Options are offered too when the word is empty: only values are compared.
    complete_raw(p, dir, line)
        .into_iter()
        .filter(|c| !c.starts_with('-'))
        .collect()
}

/// Everything bash offers, options included.
fn complete_raw(p: &Project, dir: &Path, line: &str) -> Vec<String> {
    let script = p.run(["completions", "bash"]).success().stdout.clone();
    let words: Vec<String> = {
        let mut w: Vec<String> = line.split(' ').map(str::to_owned).collect();
        if w.is_empty() {
            w.push(String::new());
        }
        w
    };
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "{script}\n\
         COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; COMP_TYPE=9\n\
         _clap_complete_artifacts artifacts '{current}' '{previous}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        words = quoted.join(" "),
        cword = words.len() - 1,
        current = words.last().unwrap(),
        previous = if words.len() > 1 {
            words[words.len() - 2].as_str()
        } else {
            ""
        },
    );
    let output = Command::new("bash")
        .arg("--norc")
        .arg("-c")
        .arg(&program)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &p.home)
        .env("TMPDIR", &p.tmp)
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut offered: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.trim_end().to_owned())
        .collect();
    offered.sort();
    offered
}

#[test]
fn completions_offer_the_projects_names_in_a_real_bash() {
    let p = project("completions_offer_project_names");
    let root = p.root.clone();
    assert_eq!(complete(&p, &root, "artifacts show "), ["alpha", "beta"]);
    assert_eq!(complete(&p, &root, "artifacts generate al"), ["alpha"]);
    assert_eq!(
        complete(&p, &root, "artifacts check --target "),
        ["alice", "home/alice", "nixos/web1", "web1"]
    );
    // Only the files of the artifact on the line.
    assert_eq!(
        complete(&p, &root, "artifacts show alpha --file "),
        ["alpha-cert", "token"]
    );
    let backends = complete(&p, &root, "artifacts migrate alpha --to ");
    for name in ["rec", "agenix", "sops-nix", "dummy"] {
        assert!(backends.iter().any(|b| b == name), "{name} in {backends:?}");
    }
    // Paths from the file system; the project named by -C from elsewhere.
    assert_eq!(
        complete(&p, &root, "artifacts --manifest artifacts.t"),
        ["artifacts.toml"]
    );
    assert_eq!(
        complete(
            &p,
            &p.home,
            &format!("artifacts -C {} explain ", root.display())
        ),
        ["alpha", "beta"]
    );
    // Only the options that apply: `show` reads, so no --no-sandbox.
    let options = complete_raw(&p, &root, "artifacts show alpha --");
    assert!(options.iter().any(|o| o == "--file"), "{options:?}");
    assert!(!options.iter().any(|o| o == "--no-sandbox"), "{options:?}");
    // Commands, without the internal ones.
    let commands = complete(&p, &root, "artifacts ");
    assert!(commands.iter().any(|c| c == "generate"), "{commands:?}");
    assert!(
        !commands.iter().any(|c| c.starts_with("__")),
        "{commands:?}"
    );
    // Outside any project: no names, and nothing printed but candidates.
    assert_eq!(
        complete(&p, &p.home, "artifacts show "),
        Vec::<String>::new()
    );
}

/// Every visible command path, read from `--help` recursively.
fn command_paths(p: &Project, prefix: &[&str], out: &mut Vec<Vec<String>>) {
    let mut args: Vec<&str> = prefix.to_vec();
    args.push("--help");
    let help = p.run(&args).success().stdout.clone();
    let Some(start) = help.find("\nCommands:\n") else {
        return;
    };
    for line in help[start + 11..].lines().take_while(|l| !l.is_empty()) {
        let name = line.split_whitespace().next().unwrap();
        if name == "help" || !line.starts_with("  ") || line.starts_with("   ") {
            continue;
        }
        let mut path: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        path.push(name.to_owned());
        out.push(path.clone());
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        command_paths(p, &refs, out);
    }
}

#[test]
fn every_help_shows_examples_and_only_the_options_that_apply() {
    let p = Project::new("every_help_shows_examples");
    p.run(["--help"])
        .success()
        .stdout_has("\nExamples:\n  artifacts\n")
        .stdout_has("Exit codes:");
    let mut paths = Vec::new();
    command_paths(&p, &[], &mut paths);
    assert!(paths.len() > 30, "{paths:?}");
    assert!(!paths.iter().any(|p| p[0] == "__backend"));
    for path in &paths {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let run = p.run(&args);
        run.success();
        let examples = run
            .stdout
            .split("\nExamples:\n")
            .nth(1)
            .unwrap_or_else(|| run.fail("no examples"));
        let commands = examples
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
            .count();
        if !(2..=3).contains(&commands) {
            run.fail("expected two or three examples");
        }
        let tool =
            ["age", "sops", "tanka", "cmp", "completions", "man"].contains(&path[0].as_str());
        if tool {
            // Project options mean nothing to a command on files and streams.
            run.stdout_lacks("--target")
                .stdout_lacks("--no-sandbox")
                .stdout_lacks("--json");
            if path.join(" ") != "tanka show" {
                run.stdout_lacks("--backends");
            }
        } else if path[0] == "backends" {
            run.stdout_has("--json").stdout_lacks("--target");
        } else {
            run.stdout_has("--json").stdout_has("--target");
        }
    }
    // Options that only some project commands use.
    p.run(["generate", "--help"])
        .stdout_has("--no-sandbox")
        .stdout_has("--no-wait");
    p.run(["check", "--help"])
        .stdout_lacks("--no-sandbox")
        .stdout_lacks("--no-wait");
    p.run(["show", "--help"]).stdout_lacks("--jobs");
    // Hidden, still accepted: one command line for every command keeps working.
    p.run(["age", "keygen", "--no-sandbox", "-o", "key.txt"])
        .success();
}

#[test]
fn man_pages_are_generated_for_every_command_and_render() {
    let p = Project::new("man_pages_render");
    let dir = p.root.join("man");
    p.run(["man", "--dir", dir.to_str().unwrap()])
        .success()
        .stderr_has("manual pages");
    let mut pages: Vec<String> = std::fs::read_dir(dir.join("man1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for expected in [
        "artifacts.1",
        "artifacts-check.1",
        "artifacts-show.1",
        "artifacts-sops-decrypt.1",
        "artifacts-cmp-plugin-yaml.1",
    ] {
        assert!(
            pages.iter().any(|p| p == expected),
            "{expected} in {pages:?}"
        );
    }
    assert!(!pages.iter().any(|p| p.contains("__backend")), "{pages:?}");
    let mut help_paths = Vec::new();
    command_paths(&p, &[], &mut help_paths);
    assert_eq!(
        pages.len(),
        help_paths.len() + 1,
        "one page per command, and artifacts(1)"
    );
    let mut all: Vec<std::path::PathBuf> = pages.iter().map(|n| dir.join("man1").join(n)).collect();
    all.push(dir.join("man5/artifacts.toml.5"));
    for page in &all {
        let output = Command::new("man")
            .args(["--warnings", "-l", "-Tutf8"])
            .arg(page)
            .env("MANWIDTH", "100")
            .env("MAN_KEEP_FORMATTING", "0")
            .output()
            .expect("man runs");
        let text = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{}: {stderr}", page.display());
        assert!(
            stderr.trim().is_empty(),
            "{}: groff warns: {stderr}",
            page.display()
        );
        let text = strip_overstrike(&text);
        let sections: &[&str] = if page.ends_with("artifacts.toml.5") {
            &["NAME", "DESCRIPTION", "ARTIFACT KEYS", "EXAMPLES"]
        } else {
            &[
                "NAME",
                "SYNOPSIS",
                "EXAMPLES",
                "EXIT STATUS",
                "ENVIRONMENT",
                "FILES",
            ]
        };
        for section in sections {
            assert!(
                text.lines().any(|l| l.trim() == *section),
                "{}: no {section} section in:\n{text}",
                page.display()
            );
        }
    }
    // One page on stdout, by command name.
    p.run(["man", "check"])
        .success()
        .stdout_has("artifacts\\-check");
    p.run(["man", "artifacts.toml"])
        .success()
        .stdout_has(".TH ARTIFACTS.TOML 5");
    p.run(["man", "nosuch"])
        .code(2)
        .stderr_has("no manual page `nosuch`");
}

/// Text without the `x\bx` bold and `_\bx` underline of terminal output.
fn strip_overstrike(text: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out.into_iter().collect()
}

#[test]
fn completions_script_calls_the_binary_it_came_from() {
    let p = Project::new("completions_script_calls_the_binary");
    let script = p.run(["completions", "bash"]).success().stdout.clone();
    assert!(script.contains(binary().to_str().unwrap()), "{script}");
    assert!(script.contains("complete "), "{script}");
}
