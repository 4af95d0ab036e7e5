//! SSH host keys with the sops-nix backend (issue 10, item 4): an
//! ssh-ed25519 `publicHostKey` is encrypted to the X25519 key sops-nix
//! derives from `/etc/ssh/ssh_host_ed25519_key` (checked with the oracle
//! `ssh-to-age` and the real `sops`), files written earlier with age's ssh
//! stanza are reported by `check` and fixed by `rekey`, ssh-rsa machines are
//! refused by name, and tanka environments keep ssh recipients (read by the
//! real sops with an ssh key).

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use crate::tools::{
    age_keygen, ok, oracle, sops, ssh_keygen, ssh_to_age_private, ssh_to_age_public, tool,
};
use crate::util::{Project, Run};

fn manifest(host_key: &str, user_keys: &[&str]) -> String {
    format!(
        r#"
default.backend = "sops-nix"
[nixos.m1]
config.sops-nix.publicHostKey = "{host_key}"
config.sops-nix.publicUserKeys = {user_keys:?}

[nixos.m1.artifacts.db]
generator = "generators/db.sh"
prompts.password = {{ type = "hidden" }}
files.password = {{ owner = "postgres", mode = "0440" }}
"#
    )
}

fn generate(p: &Project, args: &[&OsStr]) -> Run {
    let mut command = p.command(args);
    command.env("ARTIFACTS_PROMPT_DB_PASSWORD", "pw-for-the-host");
    p.finish(&mut command)
}

/// The `recipient:` values of a sops file's age keys.
fn stored_recipients(file: &Path) -> Vec<String> {
    let text = fs::read_to_string(file).unwrap();
    let mut found: Vec<String> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- recipient: "))
        .map(str::to_owned)
        .collect();
    found.sort();
    found
}

/// `sops -d --extract '["db"]["password"]' FILE` with one key variable.
fn sops_password(p: &Project, file: &Path, var: &str, key: &Path) -> std::process::Output {
    sops(
        &p.root,
        &[
            "-d",
            "--extract",
            r#"["db"]["password"]"#,
            file.to_str().unwrap(),
        ],
        &[(var, key.as_os_str())],
    )
}

#[test]
fn sops_nix_ssh_ed25519_host_reads_with_the_key_sops_nix_derives() {
    let test = "sops_nix_ssh_ed25519_host_reads_with_the_key_sops_nix_derives";
    let Some(ssh_to_age) = oracle("ssh-to-age", test) else {
        return;
    };
    let p = Project::new(test);
    let host = ssh_keygen(&p, "ssh_host_ed25519_key");
    let admin = ssh_keygen(&p, "id_ed25519");
    let host_age = ssh_to_age_public(&ssh_to_age, &host.public, &p.home);
    let admin_age = ssh_to_age_public(&ssh_to_age, &admin.public, &p.home);
    let host_converted = p.home.join("host-age.txt");
    ssh_to_age_private(&ssh_to_age, &host.path, &host_converted);
    p.generator("db.sh", r#"cp "$prompts/password" "$out/password""#);
    p.manifest(&manifest(&host.public, &[&admin.public]));
    let file = p.root.join("secrets/per-machine/m1.sops.yaml");

    generate(&p, &[OsStr::new("generate")]).success();
    p.run(["check"]).success();
    let mut converted = vec![host_age.clone(), admin_age.clone()];
    converted.sort();
    assert_eq!(stored_recipients(&file), converted);
    // What sops-nix does on the host: the converted key, through the real sops.
    assert_eq!(
        ok(
            "sops -d with the ssh-to-age key",
            sops_password(&p, &file, "SOPS_AGE_KEY_FILE", &host_converted)
        ),
        b"pw-for-the-host"
    );
    // Our own readers convert the ssh key themselves.
    for key in [&host.path, &admin.path] {
        let show = p.run([
            OsStr::new("show"),
            OsStr::new("db"),
            OsStr::new("--file"),
            OsStr::new("password"),
            OsStr::new("-i"),
            key.as_os_str(),
        ]);
        show.success();
        assert_eq!(show.stdout, "pw-for-the-host");
        let decrypt = p.run([
            OsStr::new("sops"),
            OsStr::new("decrypt"),
            OsStr::new("--identity"),
            key.as_os_str(),
            file.as_os_str(),
        ]);
        decrypt.success().stdout_has("password: pw-for-the-host");
    }

    // Also as sops names it, without -i.
    let mut command = p.command(["show", "db", "--file", "password"]);
    command.env("SOPS_AGE_SSH_PRIVATE_KEY_FILE", &host.path);
    let show = p.finish(&mut command);
    show.success();
    assert_eq!(show.stdout, "pw-for-the-host");

    // A file as earlier versions wrote it: age's ssh stanza, which sops-nix
    // cannot read. `check` reports it, `rekey` with the host key fixes it.
    let plain = ok(
        "sops -d",
        sops(
            &p.root,
            &["-d", file.to_str().unwrap()],
            &[("SOPS_AGE_KEY_FILE", host_converted.as_os_str())],
        ),
    );
    fs::write(&file, &plain).unwrap();
    let recipients = format!("{},{}", host.public, admin.public);
    ok(
        "sops -e --age ssh-ed25519",
        sops(
            &p.root,
            &[
                "-e",
                "-i",
                "--age",
                &recipients,
                "--input-type",
                "yaml",
                "--output-type",
                "yaml",
                file.to_str().unwrap(),
            ],
            &[],
        ),
    );
    assert!(stored_recipients(&file)[0].starts_with("ssh-ed25519 "));
    assert!(
        !sops_password(&p, &file, "SOPS_AGE_KEY_FILE", &host_converted)
            .status
            .success(),
        "the converted key reads an ssh-stanza file: the test does not reproduce the old format"
    );
    p.run(["check"]).code(1).stdout_has("recipients changed");
    p.run([OsStr::new("rekey"), OsStr::new("-i"), host.path.as_os_str()])
        .success();
    p.run(["check"]).success();
    assert_eq!(stored_recipients(&file), converted);
    // Configuring the host by its age1 form instead is the same recipient.
    p.manifest(&manifest(&host_age, &[&admin.public]));
    p.run(["check"]).success();
    assert_eq!(
        ok(
            "sops -d after rekey",
            sops_password(&p, &file, "SOPS_AGE_KEY_FILE", &host_converted)
        ),
        b"pw-for-the-host"
    );
}

#[test]
fn sops_nix_refuses_ssh_rsa_machines_and_tanka_keeps_ssh_keys() {
    let p = Project::new("sops_nix_refuses_ssh_rsa_machines_and_tanka_keeps_ssh_keys");
    let rsa = p.home.join("ssh_host_rsa_key");
    ok(
        "ssh-keygen -t rsa",
        crate::tools::run_tool(
            &tool("ssh-keygen", "openssh-client"),
            &[
                OsStr::new("-q"),
                OsStr::new("-t"),
                OsStr::new("rsa"),
                OsStr::new("-b"),
                OsStr::new("2048"),
                OsStr::new("-N"),
                OsStr::new(""),
                OsStr::new("-f"),
                rsa.as_os_str(),
            ],
            &[],
            &p.home,
        ),
    );
    let rsa_public = fs::read_to_string(rsa.with_extension("pub")).unwrap();
    let rsa_public = rsa_public.trim();
    let ed = ssh_keygen(&p, "id_ed25519");
    let argocd = age_keygen(&p, "argocd.key");
    p.generator("db.sh", r#"cp "$prompts/password" "$out/password""#);
    p.generator("grafana.sh", r#"printf 'admin-pw' > "$out/admin""#);

    // A machine: sops-nix cannot use an RSA host key; the error says what can.
    p.manifest(&manifest(rsa_public, &[]));
    generate(&p, &[OsStr::new("generate")])
        .code(1)
        .stderr_has("nixos `m1`: artifacts.config.sops-nix.publicHostKey")
        .stderr_has("sops-nix cannot decrypt for an ssh-rsa key")
        .stderr_has("age key")
        .stderr_has("agenix backend")
        .stderr_lacks("pw-for-the-host");
    assert!(!p.root.join("secrets").exists());

    // A tanka environment is read by the real sops: ssh keys stay ssh keys.
    p.manifest(&format!(
        r#"
[tanka.default]
config.sops-nix.publicUserKeys = ["{}", "{}", "{}"]

[tanka.default.artifacts.grafana]
backend = "sops"
generator = "generators/grafana.sh"
files.admin = {{}}
"#,
        rsa_public, ed.public, argocd.public
    ));
    p.run(["generate"]).success();
    p.run(["check"]).success();
    let file = p.root.join("environments/default/secrets.sops.yaml");
    let stored = stored_recipients(&file);
    assert!(
        stored.iter().any(|r| r.starts_with("ssh-rsa ")),
        "{stored:?}"
    );
    assert!(
        stored.iter().any(|r| r.starts_with("ssh-ed25519 ")),
        "{stored:?}"
    );
    for (var, key) in [
        ("SOPS_AGE_SSH_PRIVATE_KEY_FILE", rsa.as_path()),
        ("SOPS_AGE_SSH_PRIVATE_KEY_FILE", ed.path.as_path()),
        ("SOPS_AGE_KEY_FILE", argocd.path.as_path()),
    ] {
        let out = sops(
            &p.root,
            &[
                "-d",
                "--extract",
                r#"["grafana"]["admin"]"#,
                file.to_str().unwrap(),
            ],
            &[(var, key.as_os_str())],
        );
        assert_eq!(ok(&format!("sops -d with {var}"), out), b"admin-pw");
    }
}
