//! The artifact graph and lifecycle: dependency cascades with a real openssl
//! CA chain, the graph listing, rotation by age, public parts.

use crate::util::Project;

const CA: &str = r#"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$out/key" -out "$out/cert" -days 30 -subj "/CN=test-ca" 2>/dev/null"#;

const SERVER: &str = r#"openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$out/key" -out /tmp/req.csr -subj "/CN=$machine" 2>/dev/null
openssl x509 -req -in /tmp/req.csr -CA "$in/ca/cert" -CAkey "$in/ca/key" \
  -CAserial /tmp/ca.srl -CAcreateserial -out "$out/cert" -days 30 2>/dev/null"#;

fn ca_project(name: &str) -> Project {
    let p = Project::new(name);
    p.recording_backend()
        .generator("ca.sh", CA)
        .generator("server.sh", SERVER)
        .manifest(
            r#"
default.backend = "rec"
[artifacts.ca]
shared = true
targets = ["web1", "web2"]
generator = "generators/ca.sh"
files.key = {}
files.cert = { secret = false, mode = "0444" }
[artifacts.server-cert]
targets = ["web1", "web2"]
generator = "generators/server.sh"
dependencies = ["ca"]
files.key = {}
files.cert = { secret = false, mode = "0444" }
"#,
        );
    p
}

/// `openssl verify` of a stored server certificate against the stored CA.
fn verifies(p: &Project, machine: &str) -> bool {
    let ca = p.root.join("public/shared/ca/cert");
    let cert = p
        .root
        .join(format!("public/per-machine/{machine}/server-cert/cert"));
    let output = std::process::Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&ca)
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    output.status.success()
}

#[test]
fn rotating_the_ca_regenerates_every_certificate_it_signed() {
    let p = ca_project("rotating_the_ca_regenerates_every_certificate_it_signed");
    p.run(["generate"])
        .success()
        .stderr_has("generated 3 artifact(s)");
    assert!(verifies(&p, "web1") && verifies(&p, "web2"));
    let old_ca = std::fs::read(p.root.join("public/shared/ca/cert")).unwrap();
    let old_cert = std::fs::read(p.root.join("public/per-machine/web1/server-cert/cert")).unwrap();

    // The plan shows the cascade before anything changes.
    p.run(["rotate", "ca", "--dry-run"])
        .success()
        .stdout_has("would generate shared ca (forced)")
        .stdout_has("would generate nixos/web1 server-cert (depends on shared ca)")
        .stdout_has("would generate nixos/web2 server-cert (depends on shared ca)");
    p.run(["rotate", "ca", "--yes"])
        .success()
        .stderr_has("generated 3 artifact(s)");
    assert_ne!(
        std::fs::read(p.root.join("public/shared/ca/cert")).unwrap(),
        old_ca
    );
    assert_ne!(
        std::fs::read(p.root.join("public/per-machine/web1/server-cert/cert")).unwrap(),
        old_cert
    );
    assert!(
        verifies(&p, "web1") && verifies(&p, "web2"),
        "new certificates verify against the new CA"
    );
    p.run(["check"]).success();

    // --no-cascade leaves dependents alone, and check then says they are stale.
    p.run(["rotate", "ca", "--yes", "--no-cascade"])
        .success()
        .stderr_has("generated 1 artifact(s)");
    assert!(!verifies(&p, "web1"));
    let status = p.run(["check", "--json"]).code(1).json();
    assert_eq!(status["summary"]["stale"], 2, "{status}");
    p.run(["generate", "--yes"]).success();
    assert!(verifies(&p, "web1") && verifies(&p, "web2"));
}

#[test]
fn graph_lists_dependencies_plain_and_as_dot() {
    let p = ca_project("graph_lists_dependencies_plain_and_as_dot");
    p.run(["graph"])
        .success()
        .stdout_has("shared ca\n")
        .stdout_has("nixos/web1 server-cert <- shared ca");
    p.run(["graph", "--dot"])
        .success()
        .stdout_has("digraph artifacts {")
        .stdout_has(r#""shared ca" -> "nixos/web2 server-cert";"#);
}

#[test]
fn public_parts_are_readable_without_any_key() {
    let p = Project::new("public_parts_are_readable_without_any_key");
    let key = p.root.join("admin.key");
    p.run(["age", "keygen", "-o", key.to_str().unwrap()])
        .success();
    let recipient = std::fs::read_to_string(&key)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .unwrap();
    p.generator("wg.sh", r#"head -c 32 /dev/urandom | base64 > "$out/private"; echo "pub-of-$machine" > "$out/public""#)
        .manifest(&format!(
            r#"
[artifacts.wireguard]
targets = ["peer1", "peer2"]
backend = "agenix"
generator = "generators/wg.sh"
files.private = {{}}
files.public = {{ secret = false, mode = "0444" }}
[nixos.peer1]
config.agenix.publicUserKeys = ["{recipient}"]
[nixos.peer2]
config.agenix.publicUserKeys = ["{recipient}"]
"#
        ));
    p.run(["generate"]).success();
    assert_eq!(
        std::fs::read_to_string(p.root.join("public/per-machine/peer2/wireguard/public")).unwrap(),
        "pub-of-peer2\n"
    );
    // No identity anywhere (HOME is empty): the public file still shows.
    p.run(["show", "wireguard", "--target", "peer1", "--file", "public"])
        .success()
        .stdout_has("pub-of-peer1");
    p.run([
        "show",
        "wireguard",
        "--target",
        "peer1",
        "--file",
        "private",
    ])
    .code(1)
    .stderr_has("identit");
    let private = p
        .run([
            "show",
            "wireguard",
            "--target",
            "peer1",
            "--file",
            "private",
            "-i",
            key.to_str().unwrap(),
        ])
        .success()
        .stdout
        .clone();
    assert_eq!(private.trim().len(), 44, "32 bytes, base64: {private:?}");
    // The private key is not in the public store or the lock.
    assert!(
        !p.root
            .join("public/per-machine/peer1/wireguard/private")
            .exists()
    );
    let lock = std::fs::read_to_string(p.root.join("artifacts.lock")).unwrap();
    assert!(!lock.contains(private.trim()));
}

#[test]
fn rotation_by_age_uses_generation_times_from_the_lock() {
    let p = Project::new("rotation_by_age_uses_generation_times_from_the_lock");
    p.recording_backend()
        .generator(
            "token.sh",
            r#"head -c 8 /dev/urandom | od -An -tx1 > "$out/token""#,
        )
        .manifest(
            r#"
default.backend = "rec"
[artifacts.old]
targets = ["m"]
generator = "generators/token.sh"
files.token = {}
[artifacts.fresh]
targets = ["m"]
generator = "generators/token.sh"
files.token = {}
"#,
        );
    p.run(["generate"]).success();
    // Pretend `old` was generated long ago.
    let lock_path = p.root.join("artifacts.lock");
    let mut lock = p.lock();
    lock["entries"]["nixos/m"]["old"]["generated_at"] = "2025-01-01T00:00:00Z".into();
    std::fs::write(&lock_path, serde_json::to_string_pretty(&lock).unwrap()).unwrap();

    p.run(["check"]).success();
    let status = p
        .run(["check", "--max-age", "90d", "--json"])
        .code(1)
        .json();
    let reasons: Vec<(String, String)> = status["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["artifact"].as_str().unwrap().to_owned(),
                a["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        reasons.contains(&("old".into(), "stale".into())),
        "{status}"
    );
    assert!(reasons.contains(&("fresh".into(), "ok".into())), "{status}");

    let old_before = p.stored("nixos/m/old/token").unwrap();
    let fresh_before = p.stored("nixos/m/fresh/token").unwrap();
    p.run(["rotate", "--older-than", "90d", "--dry-run"])
        .success()
        .stdout_has("would generate nixos/m old (generated ");
    p.run(["rotate", "--older-than", "90d", "--yes"])
        .success()
        .stderr_has("generated 1 artifact(s)");
    assert_ne!(p.stored("nixos/m/old/token").unwrap(), old_before);
    assert_eq!(p.stored("nixos/m/fresh/token").unwrap(), fresh_before);
    p.run(["check", "--max-age", "90d"]).success();

    // Short ages keep their minutes: a 10-minute-old artifact once read
    // "generated 0s ago".
    let ten_minutes_ago = std::process::Command::new("date")
        .args(["-u", "-d", "10 minutes ago", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    let mut lock = p.lock();
    lock["entries"]["nixos/m"]["fresh"]["generated_at"] = String::from_utf8(ten_minutes_ago.stdout)
        .unwrap()
        .trim()
        .into();
    std::fs::write(&lock_path, serde_json::to_string_pretty(&lock).unwrap()).unwrap();
    p.run(["check", "--max-age", "5m"])
        .code(1)
        .stdout_has("generated 10m ago, longer than --max-age 5m");
}
