//! The ArgoCD config-management-plugin sidecar, simulated with the real
//! binary: `examples/tanka` with secrets generated for fresh keys, copied as
//! ArgoCD's repository tarball arrives (no `.git`, files 0644, directories
//! 0755), ArgoCD's variables set, and `artifacts cmp discover` /
//! `artifacts cmp generate` run as `nobody` (the sidecar runs as uid 999,
//! never root) with the sidecar's age key readable by that user only.
//! Also `examples/argocd`: its plugin.yaml, the jsonnet library (real
//! `jsonnet`) and the kustomize overlay (real `kubectl kustomize`).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::tools::{artifacts_keygen, ok, run_tool, tool};
use crate::util::{Project, Run, binary};

const SIDECAR_PLACEHOLDER: &str = "age1replace-with-the-argocd-sidecar-recipient";
const YOUR_PLACEHOLDER: &str = "age1replace-with-your-recipient";
/// The repository the sidecar's allow-list names.
const REPO_URL: &str = "https://git.example.com/platform/shop-deploy.git";
const REVISION: &str = "9c1e5f0a7d3b2c4e6f8a0b1c2d3e4f5a6b7c8d9e";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Copies a tree, skipping `.git`. `tarball`: as ArgoCD's repository
/// tarball arrives (files 0644, directories 0755); else modes are kept.
/// Symlinks are copied as symlinks.
fn copy_tree(from: &Path, to: &Path, tarball: bool) {
    fs::create_dir_all(to).unwrap();
    if tarball {
        chmod(to, 0o755);
    }
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == ".git" {
            continue;
        }
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            symlink(fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target, tarball);
        } else {
            fs::copy(entry.path(), &target).unwrap();
            if tarball {
                chmod(&target, 0o644);
            }
        }
    }
}

/// The uid and gid of `nobody`.
fn nobody() -> (u32, u32) {
    let user = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("the user `nobody` exists (Debian package `base-passwd`)");
    let ids = (user.uid.as_raw(), user.gid.as_raw());
    assert!(ids.0 != 0 && ids.1 != 0, "nobody is not root: {ids:?}");
    ids
}

/// `examples/tanka` in a fresh project, its placeholder recipients replaced
/// by two fresh keys, and `artifacts generate` run: the state of a
/// repository after its owner generated the secrets.
struct Example {
    p: Project,
    /// The sidecar's age identity file (text).
    sidecar_key: String,
    /// The owner's key, for `artifacts tanka secrets`.
    admin_key: PathBuf,
}

impl Example {
    fn new(test: &str) -> Example {
        let p = Project::new(test);
        copy_tree(&repo().join("examples/tanka"), &p.root, false);
        let admin = artifacts_keygen(&p, "admin.key");
        let sidecar = artifacts_keygen(&p, "sidecar.key");
        let manifest = p.root.join("artifacts.toml");
        let text = fs::read_to_string(&manifest).unwrap();
        assert!(
            text.contains(SIDECAR_PLACEHOLDER) && text.contains(YOUR_PLACEHOLDER),
            "examples/tanka/artifacts.toml lost its placeholders"
        );
        fs::write(
            &manifest,
            text.replace(SIDECAR_PLACEHOLDER, &sidecar.public)
                .replace(YOUR_PLACEHOLDER, &admin.public),
        )
        .unwrap();
        let mut generate = p.command(["generate"]);
        generate.env("SOPS_AGE_KEY_FILE", &admin.path);
        p.finish(&mut generate).success();
        for env in ["default", "staging"] {
            assert!(
                p.root
                    .join(format!("environments/{env}/secrets.sops.yaml"))
                    .is_file(),
                "generate wrote no secrets for {env}"
            );
        }
        Example {
            sidecar_key: fs::read_to_string(&sidecar.path).unwrap(),
            admin_key: admin.path,
            p,
        }
    }

    /// The decrypted secrets of `env` (`artifacts tanka secrets`), as data.
    fn secrets(&self, env: &str) -> Value {
        let mut command = self.p.command(["tanka", "secrets", env]);
        command.env("SOPS_AGE_KEY_FILE", &self.admin_key);
        let run = self.p.finish(&mut command);
        run.success();
        serde_norway::from_str(&run.stdout).unwrap_or_else(|e| run.fail(&format!("not YAML: {e}")))
    }

    /// Every secret value of both environments: none may reach stderr.
    fn canaries(&self) -> Vec<String> {
        let mut values = Vec::new();
        for env in ["default", "staging"] {
            for (_, files) in self.secrets(env).as_object().unwrap() {
                for (_, value) in files.as_object().unwrap() {
                    let value = value.as_str().unwrap().to_owned();
                    assert!(value.len() >= 12, "a generated value is short: {value}");
                    values.push(value);
                }
            }
        }
        assert_eq!(values.len(), 6, "2 + 4 generated values: {values:?}");
        values
    }

    /// A sidecar checkout of the repository (see [`Sidecar`]).
    fn sidecar(&self) -> Sidecar {
        Sidecar::new(&self.p.root, &self.sidecar_key)
    }
}

/// A sidecar's view, in a fresh 0755 directory under /tmp (so `nobody` can
/// reach it), removed on drop:
/// `app/` the repository as ArgoCD's tarball (owned by root, read-only for
/// nobody), `plugin-secret/age.txt` the key (nobody's, 0400, directory
/// 0500), `plugin-config/allowed-repos` the allow-list, `home/` nobody's
/// `$HOME` and `$TMPDIR`, and the binary (used in place when nobody can
/// reach it, else copied).
struct Sidecar {
    dir: tempfile::TempDir,
    app: PathBuf,
    key: PathBuf,
    allowlist: PathBuf,
    home: PathBuf,
    binary: PathBuf,
    uid: u32,
    gid: u32,
}

/// Whether `nobody` can run `path`: every directory above it searchable by
/// others, the file readable and executable by others.
fn reachable_by_others(path: &Path) -> bool {
    let mode = |p: &Path| fs::metadata(p).map(|m| m.permissions().mode()).unwrap_or(0);
    mode(path) & 0o005 == 0o005 && path.ancestors().skip(1).all(|dir| mode(dir) & 0o001 != 0)
}

impl Sidecar {
    fn new(source: &Path, key_text: &str) -> Sidecar {
        let (uid, gid) = nobody();
        let dir = tempfile::Builder::new()
            .prefix("artifacts-cmp-")
            .tempdir_in("/tmp")
            .unwrap();
        chmod(dir.path(), 0o755);
        let app = dir.path().join("app");
        copy_tree(source, &app, true);

        let secret_dir = dir.path().join("plugin-secret");
        fs::create_dir(&secret_dir).unwrap();
        let key = secret_dir.join("age.txt");
        fs::write(&key, key_text).unwrap();
        chmod(&key, 0o400);
        chown(&key, Some(uid), Some(gid)).unwrap();
        chmod(&secret_dir, 0o500);
        chown(&secret_dir, Some(uid), Some(gid)).unwrap();

        let config = dir.path().join("plugin-config");
        fs::create_dir(&config).unwrap();
        chmod(&config, 0o755);
        let allowlist = config.join("allowed-repos");
        fs::write(
            &allowlist,
            format!("# repositories the plugin may render\n{REPO_URL}\n"),
        )
        .unwrap();
        chmod(&allowlist, 0o644);

        let home = dir.path().join("home");
        fs::create_dir(&home).unwrap();
        chmod(&home, 0o700);
        chown(&home, Some(uid), Some(gid)).unwrap();

        let binary = if reachable_by_others(&binary()) {
            binary()
        } else {
            let bin = dir.path().join("bin");
            fs::create_dir(&bin).unwrap();
            chmod(&bin, 0o755);
            let copy = bin.join("artifacts");
            fs::copy(binary(), &copy).unwrap();
            chmod(&copy, 0o755);
            copy
        };
        Sidecar {
            dir,
            app,
            key,
            allowlist,
            home,
            binary,
            uid,
            gid,
        }
    }

    /// A file of the checkout.
    fn path(&self, relative: &str) -> PathBuf {
        self.app.join(relative)
    }

    /// Replaces a file of the checkout (0644, as the tarball has it).
    fn write(&self, relative: &str, content: &str) {
        let path = self.path(relative);
        fs::write(&path, content).unwrap();
        chmod(&path, 0o644);
    }

    /// A key file only nobody can read, beside the sidecar's.
    fn other_key(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, text).unwrap();
        chmod(&path, 0o400);
        chown(&path, Some(self.uid), Some(self.gid)).unwrap();
        path
    }

    /// `program args…` as nobody in the checkout, with what the CMP server
    /// passes: ArgoCD's variables, a `PARAM_*`, the key and the allow-list.
    fn command_of(&self, program: &Path, args: &[&str], tk_env: Option<&str>) -> Command {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&self.app)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("TMPDIR", &self.home)
            .env("ARGOCD_APP_NAME", "shop")
            .env("ARGOCD_APP_NAMESPACE", "argocd")
            .env("ARGOCD_APP_PROJECT_NAME", "default")
            .env("ARGOCD_APP_REVISION", REVISION)
            .env("ARGOCD_APP_REVISION_SHORT", &REVISION[..7])
            .env("ARGOCD_APP_SOURCE_PATH", ".")
            .env("ARGOCD_APP_SOURCE_REPO_URL", REPO_URL)
            .env("ARGOCD_APP_SOURCE_TARGET_REVISION", "HEAD")
            .env(
                "ARGOCD_APP_PARAMETERS",
                r#"[{"name":"replicas","string":"2"}]"#,
            )
            .env("PARAM_REPLICAS", "2")
            .env("SOPS_AGE_KEY_FILE", &self.key)
            .env("ARTIFACTS_CMP_ALLOWLIST", &self.allowlist)
            .uid(self.uid)
            .gid(self.gid)
            .stdin(Stdio::null());
        if let Some(env) = tk_env {
            command.env("ARGOCD_ENV_TK_ENV", env);
        }
        command
    }

    /// `artifacts cmp …` as nobody.
    fn cmp(&self, args: &[&str], tk_env: Option<&str>) -> Command {
        let mut all = vec!["cmp"];
        all.extend(args);
        self.command_of(&self.binary, &all, tk_env)
    }

    fn run(&self, command: &mut Command) -> Run {
        let output = command.output().expect("the binary runs as nobody");
        Run::new(format!("{command:?}"), &self.app, output)
    }

    fn discover(&self, tk_env: Option<&str>) -> Run {
        self.run(&mut self.cmp(&["discover"], tk_env))
    }

    fn generate(&self, tk_env: Option<&str>) -> Run {
        self.run(&mut self.cmp(&["generate"], tk_env))
    }
}

/// stdout of a successful `generate`: a YAML stream of Kubernetes objects
/// only, each with `apiVersion`, `kind` and `metadata.name`; stderr empty.
#[track_caller]
fn objects(run: &Run) -> Vec<Value> {
    run.success();
    if !run.stderr.is_empty() {
        run.fail("stderr is not empty after a successful generate");
    }
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&run.stdout) {
        let value: Value = serde::Deserialize::deserialize(doc)
            .unwrap_or_else(|e| run.fail(&format!("stdout is not a YAML stream: {e}")));
        for field in ["/apiVersion", "/kind", "/metadata/name"] {
            if value
                .pointer(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                run.fail(&format!("a document lacks {field}: {value}"));
            }
        }
        docs.push(value);
    }
    if docs.is_empty() {
        run.fail("no objects on stdout");
    }
    docs
}

/// `kind/name` of each object.
fn names(objects: &[Value]) -> BTreeSet<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} among {:?}", names(objects)))
}

/// A fail-closed refusal: non-zero exit (not a signal), nothing on stdout,
/// an error on stderr that carries none of `canaries`.
#[track_caller]
fn refused(run: &Run, canaries: &[String], why: &str) {
    if run.code.is_none() || run.code == Some(0) {
        run.fail(&format!("{why}: expected a non-zero exit"));
    }
    if !run.stdout.is_empty() {
        run.fail(&format!("{why}: stdout must be empty"));
    }
    if run.stderr.trim().is_empty() {
        run.fail(&format!("{why}: no error message on stderr"));
    }
    for canary in canaries {
        run.stderr_lacks(canary);
    }
}

#[test]
fn cmp_renders_default_and_staging_as_nobody() {
    let ex = Example::new("cmp_renders_default_and_staging_as_nobody");
    let sc = ex.sidecar();

    // The commands really run as nobody.
    let id = sc.run(&mut sc.command_of(Path::new("/usr/bin/id"), &["-u"], None));
    id.success();
    assert_eq!(id.stdout.trim(), sc.uid.to_string());
    // ...and nobody cannot write the checkout.
    let touch = sc.run(&mut sc.command_of(Path::new("/usr/bin/touch"), &["x"], None));
    assert_ne!(touch.code, Some(0), "nobody can write the checkout");

    // Discover prints the environment, `default` included when unset.
    for (tk_env, name) in [
        (None, "default"),
        (Some("default"), "default"),
        (Some("staging"), "staging"),
    ] {
        let run = sc.discover(tk_env);
        run.success();
        assert_eq!(run.stdout, format!("{name}\n"), "discover for {tk_env:?}");
        assert_eq!(run.stderr, "");
    }
    // An environment the repository lacks does not match.
    let run = sc.discover(Some("production"));
    run.success();
    assert_eq!(run.stdout, "");

    let default = ex.secrets("default");
    let staging = ex.secrets("staging");
    assert_ne!(
        default["db"]["password"], staging["db"]["password"],
        "each environment has its own values"
    );

    for tk_env in [None, Some("default")] {
        let objs = objects(&sc.generate(tk_env));
        assert_eq!(
            names(&objs),
            [
                "ConfigMap/shop-config",
                "Deployment/shop-web",
                "Deployment/shop-worker-mail",
                "Deployment/shop-worker-orders",
                "Secret/shop-api",
                "Secret/shop-db",
                "Service/shop-web",
            ]
            .into_iter()
            .map(String::from)
            .collect::<BTreeSet<_>>()
        );
        let db = object(&objs, "Secret", "shop-db");
        assert_eq!(db["stringData"]["password"], default["db"]["password"]);
        assert_eq!(
            object(&objs, "Secret", "shop-api")["stringData"]["token"],
            default["api-token"]["token"]
        );
        let web = object(&objs, "Deployment", "shop-web");
        assert_eq!(web["spec"]["replicas"], 3);
        assert_eq!(
            web["spec"]["template"]["metadata"]["annotations"]["example.com/commit"], REVISION,
            "commit_hash is ARGOCD_APP_REVISION"
        );
        assert!(objs.iter().all(|o| o["metadata"]["namespace"] == "shop"));
    }

    let objs = objects(&sc.generate(Some("staging")));
    assert_eq!(
        names(&objs),
        [
            "ConfigMap/shop-config",
            "Deployment/shop-web",
            "Deployment/shop-worker-orders",
            "Ingress/shop-web",
            "Secret/shop-api",
            "Secret/shop-db",
            "Secret/shop-gate",
            "Service/shop-web",
        ]
        .into_iter()
        .map(String::from)
        .collect::<BTreeSet<_>>()
    );
    let gate = object(&objs, "Secret", "shop-gate");
    assert_eq!(gate["type"], "kubernetes.io/basic-auth");
    assert_eq!(
        gate["stringData"]["username"],
        staging["basic-auth"]["username"]
    );
    assert_eq!(
        gate["stringData"]["password"],
        staging["basic-auth"]["password"]
    );
    assert_eq!(
        object(&objs, "Secret", "shop-db")["stringData"]["password"],
        staging["db"]["password"]
    );
    assert!(
        objs.iter()
            .all(|o| o["metadata"]["namespace"] == "shop-staging")
    );
}

#[test]
fn cmp_renders_a_nested_environment_by_its_path_as_nobody() {
    let ex = Example::new("cmp_renders_a_nested_environment_by_its_path_as_nobody");
    // `environments/team/default`: a copy of `default`, its secrets included.
    copy_tree(
        &ex.p.root.join("environments/default"),
        &ex.p.root.join("environments/team/default"),
        false,
    );
    let sc = ex.sidecar();
    for tk_env in ["team/default", "environments/team/default"] {
        let run = sc.discover(Some(tk_env));
        run.success();
        assert_eq!(run.stdout, "team/default\n", "discover for {tk_env}");
    }
    let nested = objects(&sc.generate(Some("team/default")));
    let flat = objects(&sc.generate(Some("default")));
    assert_eq!(names(&nested), names(&flat));
    let default = ex.secrets("default");
    assert_eq!(
        object(&nested, "Secret", "shop-db")["stringData"]["password"],
        default["db"]["password"]
    );
    // the parent directory is no environment, and paths cannot leave environments/
    for tk_env in ["team", "team/../default", "../environments/default"] {
        let run = sc.discover(Some(tk_env));
        run.success();
        assert_eq!(run.stdout, "", "discover for {tk_env}");
        let run = sc.generate(Some(tk_env));
        assert_ne!(run.code, Some(0), "generate for {tk_env}");
        assert_eq!(run.stdout, "", "generate for {tk_env}");
    }
}

#[test]
fn cmp_fails_closed_with_nothing_on_stdout() {
    let ex = Example::new("cmp_fails_closed_with_nothing_on_stdout");
    let canaries = ex.canaries();

    // Wrong key: another fresh identity, readable by nobody.
    let sc = ex.sidecar();
    let stranger = artifacts_keygen(&ex.p, "stranger.key");
    let stranger = sc.other_key("stranger.txt", &fs::read_to_string(stranger.path).unwrap());
    for tk_env in [None, Some("staging")] {
        let mut command = sc.cmp(&["generate"], tk_env);
        command.env("SOPS_AGE_KEY_FILE", &stranger);
        refused(&sc.run(&mut command), &canaries, "wrong key");
    }
    // No key at all.
    let mut command = sc.cmp(&["generate"], None);
    command.env_remove("SOPS_AGE_KEY_FILE");
    refused(&sc.run(&mut command), &canaries, "no key");
    // The control: the same checkout renders with the right key.
    objects(&sc.generate(None));

    // Tampered: one character of an encrypted value changed.
    let sc = ex.sidecar();
    let file = "environments/default/secrets.sops.yaml";
    let text = fs::read_to_string(sc.path(file)).unwrap();
    let at = text
        .find("ENC[AES256_GCM,data:")
        .expect("an encrypted value")
        + 20;
    let old = text.as_bytes()[at] as char;
    let new = if old == 'A' { 'B' } else { 'A' };
    let mut tampered = text.clone();
    tampered.replace_range(at..at + 1, &new.to_string());
    sc.write(file, &tampered);
    refused(&sc.generate(None), &canaries, "tampered secrets file");
    // The other environment is unaffected.
    objects(&sc.generate(Some("staging")));

    // A jsonnet error whose message carries a secret: redacted.
    let sc = ex.sidecar();
    sc.write(
        "environments/default/environment.libsonnet",
        "function(secrets) error 'cannot render with ' + secrets.db.password\n",
    );
    let run = sc.generate(None);
    refused(&run, &canaries, "jsonnet error");
    run.stderr_has("cannot render with <redacted>");

    // std.trace of a secret, then an error: nothing of it on stderr.
    let sc = ex.sidecar();
    sc.write(
        "environments/default/environment.libsonnet",
        "function(secrets) std.trace(secrets['api-token'].token, error 'traced')\n",
    );
    refused(&sc.generate(None), &canaries, "std.trace then error");

    // An empty manifest set (it would make ArgoCD prune everything).
    let sc = ex.sidecar();
    sc.write(
        "environments/default/environment.libsonnet",
        "function(secrets) { web: { config:: secrets.db.password }, workers: [] }\n",
    );
    let run = sc.generate(None);
    refused(&run, &canaries, "empty manifest set");
    run.stderr_has("no Kubernetes objects");

    // A leaf that is not a Kubernetes object (tanka refuses it too).
    let sc = ex.sidecar();
    sc.write(
        "environments/default/environment.libsonnet",
        "function(secrets) { token: secrets['api-token'].token }\n",
    );
    refused(&sc.generate(None), &canaries, "a string instead of objects");

    // The secrets file of an environment that declares secrets is missing.
    let sc = ex.sidecar();
    fs::remove_file(sc.path("environments/staging/secrets.sops.yaml")).unwrap();
    refused(
        &sc.generate(Some("staging")),
        &canaries,
        "missing secrets file",
    );
    objects(&sc.generate(Some("default")));
}

#[test]
fn cmp_errors_redact_transformed_secrets() {
    let ex = Example::new("cmp_errors_redact_transformed_secrets");
    let canaries = ex.canaries();
    let password = ex.secrets("default")["db"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let sc = ex.sidecar();
    // Each form a jsonnet error could print a secret in.
    sc.write(
        "environments/default/environment.libsonnet",
        "function(secrets) local p = secrets.db.password; error std.join(' | ', [std.asciiUpper(p), std.substr(p, 0, 11), std.join('', std.reverse(std.stringChars(p))), std.base64(p), std.base64('user:' + p)])\n",
    );
    let run = sc.generate(None);
    refused(&run, &canaries, "transformed secrets");
    let upper = password.to_uppercase();
    let reversed: String = password.chars().rev().collect();
    for shown in [&upper, &password[..11], &reversed] {
        run.stderr_lacks(shown);
    }
    // The five forms, base64 ones included (only the few characters that
    // mix in the neighbouring bytes may remain, like `A=`).
    let redacted = run.stderr.matches("<redacted>").count();
    assert_eq!(redacted, 5, "{}", run.stderr);
}

/// `cmp generate` under caps of 4 GiB of address space and 120 s of CPU, so
/// that a run without the evaluation limits fails this test instead of
/// taking the machine's memory or running forever.
fn capped(mut command: Command) -> Command {
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        command.pre_exec(|| {
            for (resource, cap) in [
                (nix::libc::RLIMIT_AS, 4 << 30),
                (nix::libc::RLIMIT_CPU, 120),
            ] {
                let cap = nix::libc::rlimit {
                    rlim_cur: cap,
                    rlim_max: cap,
                };
                if nix::libc::setrlimit(resource, &cap) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    command
}

#[test]
fn cmp_evaluation_is_limited_in_memory_and_time() {
    let ex = Example::new("cmp_evaluation_is_limited_in_memory_and_time");
    let canaries = ex.canaries();

    // Memory that grows without end (11 GB of RSS in 40 s before the limit).
    let sc = ex.sidecar();
    sc.write(
        "environments/default/environment.libsonnet",
        "function(secrets) { n: std.length(std.foldl(function(acc, i) acc + [std.makeArray(100, function(j) i * j)], std.range(1, 100000000), [])) }\n",
    );
    let mut command = capped(sc.cmp(&["generate"], None));
    command.env("ARTIFACTS_CMP_MAX_MEMORY", "256");
    let run = sc.run(&mut command);
    refused(&run, &canaries, "unbounded memory");
    run.stderr_has(
        "evaluating environment `default` used more than the memory limit of 256 MiB (--max-memory)",
    );

    // One allocation far past the limit: the address-space limit fails it
    // before any sampling could see it, and the abort names the limit.
    sc.write(
        "environments/default/environment.libsonnet",
        "function(secrets) { n: std.length(std.makeArray(200000000, function(i) i)) }\n",
    );
    let mut command = capped(sc.cmp(&["generate", "--max-memory", "256"], None));
    let run = sc.run(&mut command);
    refused(&run, &canaries, "one huge allocation");
    run.code(1).stderr_has(
        "evaluating environment `default` was aborted, most likely by the memory limit of 256 MiB (--max-memory)",
    );

    // A loop without end.
    sc.write(
        "environments/default/environment.libsonnet",
        "function(secrets) { n: std.foldl(function(a, i) a + i, std.range(1, 2000000000), 0) }\n",
    );
    let mut command = capped(sc.cmp(&["generate", "--eval-timeout", "2"], None));
    let run = sc.run(&mut command);
    refused(&run, &canaries, "endless loop");
    run.stderr_has("evaluating environment `default` took longer than the time limit of 2 s");

    // The limits leave ordinary environments alone.
    objects(&sc.generate(Some("staging")));
}

#[test]
fn cmp_jsonnet_cannot_read_outside_the_repository() {
    let ex = Example::new("cmp_jsonnet_cannot_read_outside_the_repository");
    let canaries = ex.canaries();
    let secret_key_line = ex
        .sidecar_key
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_owned();
    let leak = |expr: &str| {
        format!(
            "local k = import 'k.libsonnet';\n\
             function(secrets) {{ leak: k.configMap('leak', {{ key: {expr} }}) }}\n"
        )
    };
    let env_file = "environments/default/environment.libsonnet";

    // The control: importstr of a file inside the repository renders (so the
    // refusals below are about the path, not importstr itself).
    let sc = ex.sidecar();
    sc.write(env_file, &leak("importstr '../../jsonnetfile.json'"));
    let objs = objects(&sc.generate(None));
    assert!(
        object(&objs, "ConfigMap", "leak")["data"]["key"]
            .as_str()
            .unwrap()
            .contains("legacyImports")
    );

    let key = sc.key.to_str().unwrap().to_owned();
    // nobody can read the key: only the confinement stops jsonnet.
    let cat = sc.run(&mut sc.command_of(Path::new("/bin/cat"), &[&key], None));
    cat.success();
    assert!(cat.stdout.contains(&secret_key_line));

    fs::create_dir(sc.path("environments/default/link")).unwrap();
    symlink(&key, sc.path("environments/default/link/age.txt")).unwrap();
    for (why, expr) in [
        ("absolute importstr", format!("importstr '{key}'")),
        (
            "relative escape",
            "importstr '../../../plugin-secret/age.txt'".to_owned(),
        ),
        (
            "symlink out of the repository",
            "importstr 'link/age.txt'".to_owned(),
        ),
        (
            "import of an absolute path",
            format!("std.toString(import '{key}')"),
        ),
        (
            "/proc of the process",
            "importstr '/proc/self/environ'".to_owned(),
        ),
    ] {
        sc.write(env_file, &leak(&expr));
        let run = sc.generate(None);
        refused(&run, &canaries, why);
        run.stderr_has("refused");
        run.stderr_lacks("AGE-SECRET-KEY-");
        run.stderr_lacks(&secret_key_line);
    }
}

#[test]
fn cmp_allow_list_is_exact_whole_lines() {
    let ex = Example::new("cmp_allow_list_is_exact_whole_lines");
    let canaries = ex.canaries();
    let sc = ex.sidecar();
    objects(&sc.generate(None));
    for near_miss in [
        format!("{REPO_URL}.evil"),
        REPO_URL.trim_end_matches(".git").to_owned(),
        format!("{REPO_URL}/"),
        REPO_URL.replace("git.example.com", "GIT.example.com"),
        REPO_URL.replace("https://", "http://"),
        format!("https://evil.example/?{REPO_URL}"),
        "# repositories the plugin may render".to_owned(),
        String::new(),
    ] {
        let mut discover = sc.cmp(&["discover"], None);
        discover.env("ARGOCD_APP_SOURCE_REPO_URL", &near_miss);
        let run = sc.run(&mut discover);
        run.success();
        if !run.stdout.is_empty() {
            run.fail(&format!("discover matched {near_miss:?}"));
        }
        let mut generate = sc.cmp(&["generate"], None);
        generate.env("ARGOCD_APP_SOURCE_REPO_URL", &near_miss);
        refused(
            &sc.run(&mut generate),
            &canaries,
            &format!("repository {near_miss:?}"),
        );
    }
    // Unset URL: refused too.
    let mut generate = sc.cmp(&["generate"], None);
    generate.env_remove("ARGOCD_APP_SOURCE_REPO_URL");
    refused(&sc.run(&mut generate), &canaries, "no repository URL");
    // An unreadable allow-list is an error, never "allowed".
    let mut discover = sc.cmp(&["discover"], None);
    discover.env("ARTIFACTS_CMP_ALLOWLIST", sc.dir.path().join("missing"));
    let run = sc.run(&mut discover);
    assert_ne!(run.code, Some(0), "discover with a missing allow-list");
    assert_eq!(run.stdout, "");
}

// ---------------------------------------------------------------------------
// examples/argocd
// ---------------------------------------------------------------------------

fn argocd() -> PathBuf {
    repo().join("examples/argocd")
}

fn yaml_file(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap();
    serde_norway::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

#[test]
fn argocd_plugin_yaml_is_what_the_binary_prints() {
    let p = Project::new("argocd_plugin_yaml_is_what_the_binary_prints");
    let run = p.run(["cmp", "plugin-yaml"]);
    run.success();
    assert_eq!(
        fs::read_to_string(argocd().join("plugin.yaml")).unwrap(),
        run.stdout,
        "examples/argocd/plugin.yaml differs from `artifacts cmp plugin-yaml`"
    );
    let plugin = yaml_file(&argocd().join("plugin.yaml"));
    assert_eq!(plugin["kind"], "ConfigManagementPlugin");
    assert_eq!(
        plugin["spec"]["generate"]["command"],
        serde_json::json!(["artifacts", "cmp", "generate"])
    );
}

/// `jsonnet -e CODE` in the repository root with the real C++ jsonnet.
fn jsonnet(code: &str) -> std::process::Output {
    run_tool(
        &tool("jsonnet", "jsonnet"),
        &[OsStr::new("-e"), OsStr::new(code)],
        &[],
        &repo(),
    )
}

fn plugin_new(args: &str) -> String {
    format!("local p = import 'examples/argocd/sops_tanka_plugin.libsonnet'; p.new({args})")
}

#[test]
fn argocd_jsonnet_library_matches_the_kustomize_overlay() {
    let args = format!(
        "image='artifacts', keySecretName='artifacts-tanka-age-key', allowList=['{REPO_URL}']"
    );
    let out = ok(
        "jsonnet sops_tanka_plugin.objects",
        jsonnet(&format!("{}.objects", plugin_new(&args))),
    );
    let objects: Vec<Value> = serde_json::from_slice(&out).unwrap();
    assert_eq!(objects.len(), 3);
    let (plugin, allow, patch) = (&objects[0], &objects[1], &objects[2]);

    // The same pod spec as repo-server-patch.yaml.
    let yaml_patch = yaml_file(&argocd().join("repo-server-patch.yaml"));
    assert_eq!(patch["spec"], yaml_patch["spec"]);
    assert_eq!(patch["metadata"]["name"], yaml_patch["metadata"]["name"]);
    assert_eq!(patch["metadata"]["namespace"], "argocd");

    // The plugin ConfigMap holds `artifacts cmp plugin-yaml`.
    assert_eq!(plugin["kind"], "ConfigMap");
    assert_eq!(
        plugin["data"]["plugin.yaml"].as_str().unwrap(),
        fs::read_to_string(argocd().join("plugin.yaml")).unwrap()
    );
    // The allow-list: one exact line per URL.
    assert_eq!(allow["data"]["allowed-repos"], format!("{REPO_URL}\n"));
    let example_list = fs::read_to_string(argocd().join("allowed-repos")).unwrap();
    assert!(example_list.lines().any(|l| l == REPO_URL));

    // The key is mounted in the sidecar only, read-only, from the Secret.
    let containers = patch["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    let sidecar = &containers[0];
    assert_eq!(
        sidecar["command"],
        serde_json::json!(["/var/run/argocd/argocd-cmp-server"])
    );
    assert_eq!(sidecar["securityContext"]["runAsUser"], 999);
    assert_eq!(sidecar["securityContext"]["runAsNonRoot"], true);
    let env: Vec<(String, String)> = sidecar["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(env.contains(&("SOPS_AGE_KEY_FILE".into(), "/plugin-secret/age.txt".into())));
    assert!(env.contains(&(
        "ARTIFACTS_CMP_ALLOWLIST".into(),
        "/plugin-config/allowed-repos".into()
    )));
    let key_mount = sidecar["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/plugin-secret")
        .expect("the key is mounted at /plugin-secret");
    assert_eq!(key_mount["readOnly"], true);
    let volumes = patch["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let key_volume = volumes
        .iter()
        .find(|v| v["name"] == key_mount["name"])
        .unwrap();
    assert_eq!(
        key_volume["secret"]["secretName"],
        "artifacts-tanka-age-key"
    );
    assert_eq!(key_volume["secret"]["defaultMode"], 0o440);

    // The mixin adds the same container to an existing Deployment.
    let mixed = ok(
        "jsonnet repoServerMixin",
        jsonnet(&format!(
            "local d = {{ spec: {{ template: {{ spec: {{ containers: [{{ name: 'argocd-repo-server' }}], \
             volumes: [{{ name: 'var-files', emptyDir: {{}} }}] }} }} }} }}; d + {}.repoServerMixin",
            plugin_new(&args)
        )),
    );
    let mixed: Value = serde_json::from_slice(&mixed).unwrap();
    let spec = &mixed["spec"]["template"]["spec"];
    assert_eq!(spec["containers"][0]["name"], "argocd-repo-server");
    assert_eq!(&spec["containers"][1], sidecar);
    assert_eq!(spec["volumes"].as_array().unwrap().len(), 1 + volumes.len());
    assert_eq!(spec["securityContext"]["fsGroup"], 999);

    // Unsafe arguments are refused at evaluation.
    let url = "allowList=['https://a.example/x.git']";
    for (bad, message) in [
        ("image='i', keySecretName='k', allowList=[]".to_owned(), "at least one repository URL"),
        (
            "image='i', keySecretName='k', allowList=['https://a.example/x.git\\nhttps://b.example/y.git']".to_owned(),
            "one URL",
        ),
        ("image='i', keySecretName='k', allowList=[' https://a.example/x.git']".to_owned(), "one URL"),
        ("image='i', keySecretName='k', allowList=['# https://a.example/x.git']".to_owned(), "one URL"),
        (format!("image='i', keySecretName='k', {url}, uid=0"), "not run as root"),
        (format!("image='', keySecretName='k', {url}"), "image"),
        (format!("image='i', keySecretName='', {url}"), "keySecretName"),
    ] {
        let output = jsonnet(&format!("{}.objects", plugin_new(&bad)));
        assert!(!output.status.success(), "jsonnet accepted {bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{bad}: {stderr}");
    }
}

#[test]
fn argocd_kustomize_overlay_builds_with_the_key_only_in_the_sidecar() {
    let p = Project::new("argocd_kustomize_overlay_builds_with_the_key_only_in_the_sidecar");
    copy_tree(&argocd(), &p.root, false);
    // The overlay's base is ArgoCD's install.yaml (remote, no network here):
    // a stand-in with the parts of argocd-repo-server the patch relies on.
    let kustomization = fs::read_to_string(p.root.join("kustomization.yaml")).unwrap();
    let remote = kustomization
        .lines()
        .find(|l| l.trim_start().starts_with("- https://"))
        .expect("the overlay names ArgoCD's install.yaml")
        .to_owned();
    assert!(remote.contains("argoproj/argo-cd/") && remote.ends_with("/manifests/install.yaml"));
    p.file(
        "kustomization.yaml",
        &kustomization.replace(&remote, "  - install.yaml"),
    );
    p.file(
        "install.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: argocd-repo-server
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: argocd-repo-server}
  template:
    metadata:
      labels: {app.kubernetes.io/name: argocd-repo-server}
    spec:
      containers:
        - name: argocd-repo-server
          image: quay.io/argoproj/argocd:v2.13.0
          volumeMounts:
            - {name: var-files, mountPath: /var/run/argocd}
            - {name: plugins, mountPath: /home/argocd/cmp-server/plugins}
      volumes:
        - {name: var-files, emptyDir: {}}
        - {name: plugins, emptyDir: {}}
"#,
    );
    let kubectl = tool(
        "kubectl",
        "kubernetes-client (Debian's kubectl; scripts/ensure-tools installs it)",
    );
    let out = ok(
        "kubectl kustomize",
        run_tool(
            &kubectl,
            &[OsStr::new("kustomize"), p.root.as_os_str()],
            &[],
            &p.root,
        ),
    );
    let text = String::from_utf8(out).unwrap();
    let docs: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert!(
        docs.iter().all(|d| d["metadata"]["namespace"] == "argocd"),
        "{text}"
    );
    let config_maps: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "ConfigMap")
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "argocd-repo-server")
        .expect("the repo-server Deployment");
    let spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(spec["securityContext"]["fsGroup"], 999);
    let containers = spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2, "{text}");
    let sidecar = containers
        .iter()
        .find(|c| c["name"] == "artifacts-tanka")
        .unwrap();
    assert_eq!(sidecar["image"], "registry.example.com/artifacts:0.1.0");
    let volumes = spec["volumes"].as_array().unwrap();
    // Every ConfigMap volume names a generated ConfigMap of the output.
    for volume in volumes.iter().filter(|v| v.get("configMap").is_some()) {
        let name = volume["configMap"]["name"].as_str().unwrap();
        assert!(
            config_maps.contains(name),
            "volume names {name}, output has {config_maps:?}"
        );
    }
    let plugin = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["data"].get("plugin.yaml").is_some())
        .unwrap();
    assert_eq!(
        plugin["data"]["plugin.yaml"].as_str().unwrap(),
        fs::read_to_string(argocd().join("plugin.yaml")).unwrap()
    );
    // The key volume: mounted read-only by the sidecar, by no other container.
    let key_volume = volumes
        .iter()
        .find(|v| v["secret"]["secretName"] == "artifacts-tanka-age-key")
        .expect("the key volume")["name"]
        .clone();
    for container in containers {
        let mounts = container["volumeMounts"].as_array().unwrap();
        let mount = mounts.iter().find(|m| m["name"] == key_volume);
        if container["name"] == "artifacts-tanka" {
            let mount = mount.expect("the sidecar mounts the key");
            assert_eq!(mount["readOnly"], true);
            assert_eq!(mount["mountPath"], "/plugin-secret");
        } else {
            assert!(mount.is_none(), "{} mounts the key", container["name"]);
        }
    }
}

/// `artifacts tanka show default --engine tk --tk <tk>`, stderr piped.
fn tk_show(p: &Project, tk: &Path, key: &Path) -> Command {
    let mut command = p.command([
        "tanka",
        "show",
        "default",
        "--engine",
        "tk",
        "--tk",
        tk.to_str().unwrap(),
    ]);
    command
        .env("SOPS_AGE_KEY_FILE", key)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

#[test]
fn interrupting_the_tk_engine_removes_its_private_secrets_file() {
    use std::io::BufRead;
    let p =
        crate::util::Project::new("interrupting_the_tk_engine_removes_its_private_secrets_file");
    let key = p.tanka_with_sops_secret("tk-canary-5521");
    // A stand-in tk that says it is running (through a fifo: no polling) and waits.
    let fifo = p.root.join("tk-running");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let tk = p.script(
        "fake-bin/tk",
        &format!(
            "#!/bin/sh\necho running > {}\nexec sleep 600.4242\n",
            fifo.display()
        ),
    );
    let child = tk_show(&p, &tk, &key).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(fs::File::open(&fifo).unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "running\n");
    let private: Vec<_> = fs::read_dir(&p.tmp).unwrap().flatten().collect();
    assert_eq!(
        private.len(),
        1,
        "the private directory exists while tk runs"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    assert!(
        p.tmp_leftovers().is_empty(),
        "left behind: {:?}",
        p.tmp_leftovers()
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("tk-canary-5521"));
    // The stand-in dies with us (parent-death signal), even though we exited
    // on our own.
    crate::util::assert_all_exit("600.4242", "the stand-in tk");
}

#[test]
fn killing_artifacts_during_tk_stops_tk_and_the_next_run_sweeps_its_private_dir() {
    use std::io::BufRead;
    let p = crate::util::Project::new(
        "killing_artifacts_during_tk_stops_tk_and_the_next_run_sweeps_its_private_dir",
    );
    let key = p.tanka_with_sops_secret("tk-canary-7713");
    // A stand-in tk that reports its pid (through a fifo: no polling) and waits.
    let fifo = p.root.join("tk-running");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let tk = p.script(
        "fake-bin/tk",
        &format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 600.7713\n",
            fifo.display()
        ),
    );
    let mut child = tk_show(&p, &tk, &key).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(fs::File::open(&fifo).unwrap())
        .read_line(&mut line)
        .unwrap();
    let tk_pid: i32 = line.trim().parse().unwrap();
    // SAFETY: pidfd_open returns a new descriptor or -1; we own it.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, tk_pid, 0) };
    assert!(fd >= 0, "the stand-in tk is running");
    // SAFETY: `fd` was just returned by pidfd_open (checked above) and
    // nothing else owns it.
    let tk_exit =
        unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    // No signal handler runs: nothing of ours can clean up.
    child.kill().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&child.wait().unwrap()),
        Some(9)
    );
    // The kernel kills tk with us (parent-death signal).
    let mut fds = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&tk_exit),
        nix::poll::PollFlags::POLLIN,
    )];
    let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16)).unwrap();
    assert_eq!(
        ready, 1,
        "the stand-in tk (pid {tk_pid}) outlived artifacts"
    );
    let left = p.tmp_leftovers();
    assert_eq!(
        left.len(),
        1,
        "the killed run's private directory: {left:?}"
    );
    let secrets_left = p.tmp.join(&left[0]).join("secrets.yaml");
    assert!(secrets_left.exists(), "{}", secrets_left.display());
    // The next run (its tk fails at once) sweeps the killed run's directory.
    let failing = p.script("fake-bin/tk-fails", "#!/bin/sh\nexit 3\n");
    let output = tk_show(&p, &failing, &key).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("exit status 3"), "{stderr}");
    assert!(!stderr.contains("tk-canary-7713"), "{stderr}");
    assert!(
        p.tmp_leftovers().is_empty(),
        "left behind: {:?}",
        p.tmp_leftovers()
    );
}
