//! A small blocking client for the parts of the OpenBao (Vault) HTTP API
//! that `artifacts` uses: KV version 2, transit, AppRole login, policies.
//!
//! Which part do you need?
//!
//! * Connecting: [`Settings`] (address, token, namespace, CA certificate),
//!   usually from [`Settings::from_env`] plus a target's configuration;
//!   then [`Client::new`]. One `ureq` agent with rustls; TLS verification is
//!   always on (a private CA comes in through `ca_cert`).
//! * Secrets: [`Client::kv_read`], [`Client::kv_write`],
//!   [`Client::kv_list`] (one request for a whole directory, with each
//!   entry's metadata), [`Client::kv_set_custom_metadata`],
//!   [`Client::kv_delete_all`].
//! * Wrapping keys: [`Client::transit_encrypt`], [`Client::transit_decrypt`].
//! * Hosts: [`Client::approle_login`]; operators: [`Client::write`] and
//!   [`Client::read`] for policies and roles.
//!
//! Failures are typed ([`Error`]): sealed, forbidden (naming the path),
//! invalid or expired token, not a KV v2 mount, unreachable. Connection
//! errors and 5xx answers (except "sealed") are retried a bounded number of
//! times with exponential backoff.
//!
//! Tokens live in [`Token`], which never prints its value; no error carries
//! a token or a secret value.
//!
//! Global state: none. [`Client::requests`] counts the requests one client sent.

#![deny(missing_docs)]

mod error;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use zeroize::Zeroizing;

pub use error::Error;

/// A Vault token; its value is never displayed.
#[derive(Clone)]
pub struct Token(Zeroizing<String>);

impl Token {
    /// Wraps a token (surrounding whitespace, as in `~/.vault-token`, removed).
    pub fn new(value: &str) -> Token {
        Token(Zeroizing::new(value.trim().to_owned()))
    }

    /// The value, for the request header only.
    fn expose(&self) -> &str {
        &self.0
    }

    /// An operator's token: `BAO_TOKEN`, else `VAULT_TOKEN`, else the file
    /// `~/.vault-token` (what `bao login` writes), from `env` and `home`.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>, home: Option<&Path>) -> Option<Token> {
        for name in ["BAO_TOKEN", "VAULT_TOKEN"] {
            if let Some(value) = env(name).filter(|v| !v.trim().is_empty()) {
                return Some(Token::new(&value));
            }
        }
        let file = home?.join(".vault-token");
        let value = Zeroizing::new(std::fs::read_to_string(file).ok()?);
        (!value.trim().is_empty()).then(|| Token::new(&value))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Where the server is and how to talk to it.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `http(s)://host:port`, without `/v1`.
    pub address: String,
    /// The token sent with every request (none for health and login).
    pub token: Option<Token>,
    /// The namespace (`X-Vault-Namespace`), if any.
    pub namespace: Option<String>,
    /// A PEM file with the CA certificate(s) to trust instead of the
    /// built-in web roots.
    pub ca_cert: Option<PathBuf>,
    /// How many times a request is tried at most (default 4).
    pub attempts: Option<u32>,
}

impl Settings {
    /// The settings the `bao`/`vault` CLIs read: `BAO_ADDR`/`VAULT_ADDR`,
    /// `BAO_NAMESPACE`/`VAULT_NAMESPACE`, `BAO_CACERT`/`VAULT_CACERT`, and
    /// the token of [`Token::from_env`]. The address may be empty (unset).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>, home: Option<&Path>) -> Settings {
        let first = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|name| env(name).filter(|v| !v.is_empty()))
        };
        Settings {
            address: first(["BAO_ADDR", "VAULT_ADDR"]).unwrap_or_default(),
            token: Token::from_env(env, home),
            namespace: first(["BAO_NAMESPACE", "VAULT_NAMESPACE"]),
            ca_cert: first(["BAO_CACERT", "VAULT_CACERT"]).map(PathBuf::from),
            attempts: None,
        }
    }
}

/// One version of a KV v2 entry.
#[derive(Debug)]
pub struct KvVersion {
    /// The entry's keys and values.
    pub data: serde_json::Map<String, Value>,
    /// Its version number.
    pub version: u64,
}

/// What a KV v2 directory listing tells about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The current version (0: none).
    pub current_version: u64,
    /// Whether the current version is deleted or destroyed.
    pub current_deleted: bool,
    /// The entry's custom metadata.
    pub custom_metadata: BTreeMap<String, String>,
}

/// Attempts when [`Settings::attempts`] is unset; with the backoff below the
/// whole wait is under two seconds.
const DEFAULT_ATTEMPTS: u32 = 4;
/// The first retry waits this long; each next one twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Largest response body read (KV entries are small).
const MAX_BODY: u64 = 32 * 1024 * 1024;

/// A connection to one OpenBao server.
pub struct Client {
    agent: ureq::Agent,
    address: String,
    token: Option<Token>,
    namespace: Option<String>,
    attempts: u32,
    requests: AtomicU64,
    kv2_mounts: Mutex<HashSet<String>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// A request's method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    List,
    Post,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::List => "LIST",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// A non-success answer.
struct Failure {
    status: u16,
    errors: Vec<String>,
}

impl Client {
    /// A client for `settings`; fails on an empty or malformed address or an
    /// unreadable CA file.
    pub fn new(settings: Settings) -> Result<Client, Error> {
        let address = settings.address.trim().trim_end_matches('/').to_owned();
        if address.is_empty() {
            return Err(Error::Config(
                "no openbao address: set artifacts.config.openbao.address, or BAO_ADDR/VAULT_ADDR"
                    .to_owned(),
            ));
        }
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            return Err(Error::Config(format!(
                "openbao address `{address}` must start with http:// or https://"
            )));
        }
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &settings.ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                Error::Config(format!(
                    "failed to read the openbao CA certificate `{}`: {e}",
                    path.display()
                ))
            })?;
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(Ok(cert)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    Error::Config(format!(
                        "openbao CA certificate `{}` is not valid PEM: {e}",
                        path.display()
                    ))
                })?;
            if certs.is_empty() {
                return Err(Error::Config(format!(
                    "openbao CA certificate `{}` holds no certificate",
                    path.display()
                )));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls.build())
            // Never send the token to another host.
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(60)))
            .user_agent("artifacts")
            .build();
        Ok(Client {
            agent: config.new_agent(),
            address,
            token: settings.token,
            namespace: settings.namespace.filter(|n| !n.is_empty()),
            attempts: settings.attempts.unwrap_or(DEFAULT_ATTEMPTS).max(1),
            requests: AtomicU64::new(0),
            kv2_mounts: Mutex::new(HashSet::new()),
        })
    }

    /// The same server with another token (e.g. one from [`Client::approle_login`]).
    pub fn with_token(&self, token: Token) -> Client {
        Client {
            agent: self.agent.clone(),
            address: self.address.clone(),
            token: Some(token),
            namespace: self.namespace.clone(),
            attempts: self.attempts,
            requests: AtomicU64::new(0),
            kv2_mounts: Mutex::new(HashSet::new()),
        }
    }

    /// The server address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// How many HTTP requests this client sent (retries included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Whether the server is initialised and unsealed (`sys/health`, no
    /// token needed); `Err` when it cannot be reached.
    pub fn health(&self) -> Result<Health, Error> {
        // sys/health answers 503 when sealed, 501 when not initialised: ask
        // for 200 in every state and read the body.
        let path = "sys/health?standbyok=true&sealedcode=200&uninitcode=200&perfstandbyok=true";
        let body = self
            .request(Method::Get, path, None, false)?
            .ok_or_else(|| self.protocol("sys/health", "no answer".to_owned()))?;
        Ok(Health {
            initialized: body["initialized"].as_bool().unwrap_or(false),
            sealed: body["sealed"].as_bool().unwrap_or(true),
        })
    }

    /// Reads `path` in the KV v2 `mount`: the current version, or `version`.
    /// `None` when there is no such entry or version (or it was deleted).
    pub fn kv_read(
        &self,
        mount: &str,
        path: &str,
        version: Option<u64>,
    ) -> Result<Option<KvVersion>, Error> {
        self.require_kv2(mount)?;
        let mut api = format!("{}/data/{}", trim(mount), trim(path));
        if let Some(version) = version {
            api.push_str(&format!("?version={version}"));
        }
        let Some(body) = self.request(Method::Get, &api, None, true)? else {
            return Ok(None);
        };
        let data = match body["data"]["data"].clone() {
            Value::Object(map) => map,
            // A deleted version reads as `data: null`.
            Value::Null => return Ok(None),
            other => {
                return Err(self.protocol(&api, format!("`data` is {}", kind(&other))));
            }
        };
        let version = body["data"]["metadata"]["version"]
            .as_u64()
            .ok_or_else(|| self.protocol(&api, "no metadata.version".to_owned()))?;
        Ok(Some(KvVersion { data, version }))
    }

    /// Writes a new version of `path` in the KV v2 `mount` (all keys at
    /// once: a reader sees the old version or the new one); with `cas`,
    /// only if the current version is still that one (0: no entry yet).
    /// Returns the new version.
    pub fn kv_write(
        &self,
        mount: &str,
        path: &str,
        data: &serde_json::Map<String, Value>,
        cas: Option<u64>,
    ) -> Result<u64, Error> {
        self.require_kv2(mount)?;
        let api = format!("{}/data/{}", trim(mount), trim(path));
        let mut body = json!({ "data": data });
        if let Some(cas) = cas {
            body["options"] = json!({ "cas": cas });
        }
        let body = Zeroizing::new(serde_json::to_vec(&body).expect("JSON values serialize"));
        let answer = match self.request_raw(Method::Post, &api, Some(&body), true) {
            Err(Failure {
                status: 400,
                errors,
            }) if errors.iter().any(|e| e.contains("check-and-set")) => {
                return Err(Error::Conflict {
                    address: self.address.clone(),
                    path: api,
                });
            }
            other => self.classify(Method::Post, &api, other)?,
        };
        answer
            .as_ref()
            .and_then(|body| body["data"]["version"].as_u64())
            .ok_or_else(|| self.protocol(&api, "no version in the answer".to_owned()))
    }

    /// Sets the custom metadata of `path` (replacing what was there).
    pub fn kv_set_custom_metadata(
        &self,
        mount: &str,
        path: &str,
        custom: &BTreeMap<String, String>,
    ) -> Result<(), Error> {
        self.require_kv2(mount)?;
        let api = format!("{}/metadata/{}", trim(mount), trim(path));
        let body = serde_json::to_vec(&json!({ "custom_metadata": custom })).expect("JSON");
        self.request(Method::Post, &api, Some(&body), false)?;
        Ok(())
    }

    /// Deletes every version and the metadata of `path`; nothing there is
    /// not an error.
    pub fn kv_delete_all(&self, mount: &str, path: &str) -> Result<(), Error> {
        self.require_kv2(mount)?;
        let api = format!("{}/metadata/{}", trim(mount), trim(path));
        self.request(Method::Delete, &api, None, true)?;
        Ok(())
    }

    /// The entries directly under `dir` in the KV v2 `mount`, each with its
    /// metadata, in ONE request (OpenBao's `detailed-metadata` listing);
    /// sub-directories are left out. An absent directory is empty.
    pub fn kv_list(&self, mount: &str, dir: &str) -> Result<BTreeMap<String, KvEntry>, Error> {
        self.require_kv2(mount)?;
        let api = format!("{}/detailed-metadata/{}/", trim(mount), trim(dir));
        let body = match self.request(Method::List, &api, None, true) {
            Ok(Some(body)) => body,
            Ok(None) => return Ok(BTreeMap::new()),
            // HashiCorp Vault has no `detailed-metadata`: one listing, then
            // one metadata read per entry.
            Err(Error::Status {
                status: 404 | 405,
                message,
                ..
            }) if message.contains("unsupported") || message.contains(INVALID_KV_PATH) => {
                return self.kv_list_per_entry(mount, dir);
            }
            Err(error) => return Err(error),
        };
        let infos = body["data"]["key_info"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let keys: Vec<String> = body["data"]["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|key| key.as_str().map(str::to_owned))
            .collect();
        Ok(entries(&keys, &|key| {
            infos.get(key).cloned().unwrap_or(Value::Null)
        }))
    }

    /// [`Client::kv_list`] the way a server without `detailed-metadata`
    /// allows: a `LIST` of `metadata/<dir>/`, then each entry's metadata
    /// (one request per entry).
    pub fn kv_list_per_entry(
        &self,
        mount: &str,
        dir: &str,
    ) -> Result<BTreeMap<String, KvEntry>, Error> {
        self.require_kv2(mount)?;
        let api = format!("{}/metadata/{}/", trim(mount), trim(dir));
        let Some(body) = self.request(Method::List, &api, None, true)? else {
            return Ok(BTreeMap::new());
        };
        let keys: Vec<String> = body["data"]["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|key| key.as_str().map(str::to_owned))
            .collect();
        let mut infos = BTreeMap::new();
        for key in keys.iter().filter(|key| !key.ends_with('/')) {
            let path = format!("{}/metadata/{}/{key}", trim(mount), trim(dir));
            // Deleted in between: absent.
            if let Some(body) = self.request(Method::Get, &path, None, true)? {
                infos.insert(key.clone(), body["data"].clone());
            }
        }
        let keys: Vec<String> = infos.keys().cloned().collect();
        Ok(entries(&keys, &|key| infos[key].clone()))
    }

    /// Encrypts `plaintext` with the transit key `key` of the transit engine
    /// at `mount`; returns the ciphertext (`vault:v1:…`).
    pub fn transit_encrypt(
        &self,
        mount: &str,
        key: &str,
        plaintext: &[u8],
    ) -> Result<String, Error> {
        let api = format!("{}/encrypt/{}", trim(mount), trim(key));
        let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(plaintext));
        let body = Zeroizing::new(
            serde_json::to_vec(&json!({ "plaintext": encoded.as_str() })).expect("JSON"),
        );
        let answer = self.request(Method::Post, &api, Some(&body), false)?;
        answer
            .as_ref()
            .and_then(|body| body["data"]["ciphertext"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| self.protocol(&api, "no ciphertext in the answer".to_owned()))
    }

    /// Decrypts a transit `ciphertext` (`vault:v1:…`) with `key` at `mount`.
    pub fn transit_decrypt(
        &self,
        mount: &str,
        key: &str,
        ciphertext: &str,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let api = format!("{}/decrypt/{}", trim(mount), trim(key));
        let body = serde_json::to_vec(&json!({ "ciphertext": ciphertext })).expect("JSON");
        let answer = self.request(Method::Post, &api, Some(&body), false)?;
        let encoded = answer
            .as_ref()
            .and_then(|body| body["data"]["plaintext"].as_str())
            .ok_or_else(|| self.protocol(&api, "no plaintext in the answer".to_owned()))?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map(Zeroizing::new)
            .map_err(|_| self.protocol(&api, "plaintext is not base64".to_owned()))
    }

    /// Logs in with an AppRole (auth method at `mount`, usually `approle`)
    /// and returns the client token.
    pub fn approle_login(
        &self,
        mount: &str,
        role_id: &str,
        secret_id: &str,
    ) -> Result<Token, Error> {
        let api = format!("auth/{}/login", trim(mount));
        let body = Zeroizing::new(
            serde_json::to_vec(
                &json!({ "role_id": role_id.trim(), "secret_id": secret_id.trim() }),
            )
            .expect("JSON"),
        );
        let answer = match self.request_raw(Method::Post, &api, Some(&body), false) {
            // A wrong role or secret id is a 400 ("invalid role or secret ID").
            Err(Failure { status: 400, .. }) => {
                return Err(Error::BadToken {
                    address: self.address.clone(),
                });
            }
            other => self.classify(Method::Post, &api, other)?,
        };
        answer
            .as_ref()
            .and_then(|body| body["auth"]["client_token"].as_str())
            .map(Token::new)
            .ok_or_else(|| self.protocol(&api, "no client_token in the answer".to_owned()))
    }

    /// `POST /v1/<path>` with a JSON `body`; the answer's JSON, if any.
    pub fn write(&self, path: &str, body: &Value) -> Result<Option<Value>, Error> {
        let body = Zeroizing::new(serde_json::to_vec(body).expect("JSON"));
        self.request(Method::Post, trim(path), Some(&body), false)
    }

    /// `GET /v1/<path>`; `None` when there is nothing there.
    pub fn read(&self, path: &str) -> Result<Option<Value>, Error> {
        self.request(Method::Get, trim(path), None, true)
    }

    /// Fails unless `mount` is a KV version 2 mount (asked once per client):
    /// writing `data/…` paths into a KV v1 mount would silently create
    /// entries named `data/…`.
    fn require_kv2(&self, mount: &str) -> Result<(), Error> {
        let mount = trim(mount);
        if self
            .kv2_mounts
            .lock()
            .expect("not poisoned")
            .contains(mount)
        {
            return Ok(());
        }
        let api = format!("sys/internal/ui/mounts/{mount}");
        let wrong = |found: String| Error::WrongMount {
            address: self.address.clone(),
            mount: mount.to_owned(),
            found,
        };
        let answer = match self.request_raw(Method::Get, &api, None, false) {
            // Asked about a path that is no mount the token can see.
            Err(Failure {
                status: 400 | 403 | 404,
                errors,
            }) if errors
                .iter()
                .any(|e| e.contains("preflight") || e.contains("no handler")) =>
            {
                return Err(wrong("no such mount".to_owned()));
            }
            other => self.classify(Method::Get, &api, other)?,
        };
        let data = answer
            .map(|body| body["data"].clone())
            .unwrap_or(Value::Null);
        let kind = data["type"].as_str().unwrap_or("nothing");
        let path = data["path"].as_str().unwrap_or("");
        let version = data["options"]["version"].as_str().unwrap_or("1");
        if path.trim_end_matches('/') != mount {
            return Err(wrong(format!("it is inside the mount `{path}`")));
        }
        if kind != "kv" || version != "2" {
            return Err(wrong(if kind == "kv" {
                format!("it is KV version {version}")
            } else {
                format!("it is a `{kind}` mount")
            }));
        }
        self.kv2_mounts
            .lock()
            .expect("not poisoned")
            .insert(mount.to_owned());
        Ok(())
    }

    /// Sends a request; `Ok(None)` for 204, and for 404 when `absent_ok`.
    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        absent_ok: bool,
    ) -> Result<Option<Value>, Error> {
        let result = self.request_raw(method, path, body, absent_ok);
        self.classify(method, path, result)
    }

    /// Turns a failure into the error an operator acts on.
    fn classify(
        &self,
        method: Method,
        path: &str,
        result: Result<Option<Value>, Failure>,
    ) -> Result<Option<Value>, Error> {
        let Failure { status, errors } = match result {
            Ok(answer) => return Ok(answer),
            Err(failure) => failure,
        };
        let address = self.address.clone();
        let path = path.split('?').next().unwrap_or(path).to_owned();
        if status == 0 {
            return Err(Error::Unreachable {
                address,
                attempts: self.attempts,
                reason: errors.join("; "),
            });
        }
        if errors
            .iter()
            .any(|e| e.contains("Vault is sealed") || e.contains("sealed"))
        {
            return Err(Error::Sealed { address });
        }
        if status == 403 {
            // A revoked or expired token is also "permission denied": ask
            // the server whether the token itself is valid.
            if self.token.is_none() || !self.token_valid() {
                return Err(Error::BadToken { address });
            }
            return Err(Error::Forbidden { address, path });
        }
        if status == 404 && errors.iter().any(|e| e.contains("no handler for route")) {
            let mount = path.split('/').next().unwrap_or("").to_owned();
            return Err(Error::WrongMount {
                address,
                mount,
                found: "no such mount".to_owned(),
            });
        }
        Err(Error::Status {
            address,
            method: method.as_str(),
            path,
            status,
            message: if errors.is_empty() {
                "no error text".to_owned()
            } else {
                errors.join("; ")
            },
        })
    }

    /// Whether `auth/token/lookup-self` accepts our token (every valid
    /// token may look itself up).
    fn token_valid(&self) -> bool {
        matches!(
            self.request_raw(Method::Get, "auth/token/lookup-self", None, false),
            Ok(Some(_))
        )
    }

    fn protocol(&self, path: &str, reason: String) -> Error {
        Error::Protocol {
            address: self.address.clone(),
            path: path.to_owned(),
            reason,
        }
    }

    /// One request with retries: connection errors and 5xx answers (except
    /// "sealed", which waiting does not fix) are tried again, up to
    /// `attempts` times, waiting 200 ms, 400 ms, 800 ms … in between.
    /// A connection failure is `Failure { status: 0, errors: [reason] }`.
    fn request_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        absent_ok: bool,
    ) -> Result<Option<Value>, Failure> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let result = self.once(method, path, body, absent_ok);
            let retry = match &result {
                Err(Failure { status: 0, .. }) => true,
                Err(Failure { status, errors }) => {
                    *status >= 500 && !errors.iter().any(|e| e.contains("sealed"))
                }
                Ok(_) => false,
            };
            if !retry || attempt >= self.attempts {
                return result;
            }
            std::thread::sleep(backoff);
            backoff *= 2;
            attempt += 1;
        }
    }

    fn once(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        absent_ok: bool,
    ) -> Result<Option<Value>, Failure> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut url = format!("{}/v1/{path}", self.address);
        // LIST as `GET ?list=true`: the same on every server and proxy.
        if method == Method::List {
            url.push_str(if path.contains('?') {
                "&list=true"
            } else {
                "?list=true"
            });
        }
        let http_method = match method {
            Method::Get | Method::List => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        };
        let mut request = ureq::http::Request::builder().method(http_method).uri(&url);
        if let Some(token) = &self.token {
            request = request.header("X-Vault-Token", token.expose());
        }
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace.as_str());
        }
        request = request.header("X-Vault-Request", "true");
        let connection = |reason: String| Failure {
            status: 0,
            errors: vec![reason],
        };
        let sent = match body {
            Some(body) => {
                let request = request
                    .header("Content-Type", "application/json")
                    .body(body)
                    .map_err(|e| connection(format!("bad request: {e}")))?;
                self.agent.run(request)
            }
            None => {
                let request = request
                    .body(())
                    .map_err(|e| connection(format!("bad request: {e}")))?;
                self.agent.run(request)
            }
        };
        let mut response = sent.map_err(|e| connection(describe(&e)))?;
        let status = response.status().as_u16();
        let bytes = Zeroizing::new(
            response
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_vec()
                .map_err(|e| connection(describe(&e)))?,
        );
        let json: Option<Value> = if bytes.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        if (200..300).contains(&status) {
            return Ok(json);
        }
        if status == 404 && absent_ok {
            // Absence is a 404 without error text; one with text ("no handler
            // for route", "unsupported path") is a mistake, never "missing".
            let errors = errors_of(json.as_ref());
            if errors.is_empty() {
                return Ok(None);
            }
            return Err(Failure { status, errors });
        }
        Err(Failure {
            status,
            errors: errors_of(json.as_ref()),
        })
    }
}

/// Whether the server is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// `bao operator init` has run.
    pub initialized: bool,
    /// It is sealed.
    pub sealed: bool,
}

/// The entries among `keys` (sub-directories left out), from each one's
/// metadata as `info` gives it.
fn entries(keys: &[String], info: &dyn Fn(&str) -> Value) -> BTreeMap<String, KvEntry> {
    let mut out = BTreeMap::new();
    for key in keys.iter().filter(|key| !key.ends_with('/')) {
        let info = info(key);
        let current_version = info["current_version"].as_u64().unwrap_or(0);
        let current = &info["versions"][current_version.to_string()];
        let current_deleted = current_version == 0
            || current["destroyed"].as_bool().unwrap_or(false)
            || current["deletion_time"]
                .as_str()
                .is_some_and(|t| !t.is_empty());
        let custom_metadata = info["custom_metadata"]
            .as_object()
            .map(|map| {
                map.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            key.to_owned(),
            KvEntry {
                current_version,
                current_deleted,
                custom_metadata,
            },
        );
    }
    out
}

/// The `errors` strings of an error answer.
fn errors_of(body: Option<&Value>) -> Vec<String> {
    let listed = |key: &str| -> Vec<String> {
        body.and_then(|b| b[key].as_array())
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str())
            .map(|e| {
                e.trim()
                    .replace("\n\t* ", " ")
                    .replace('\n', " ")
                    .trim()
                    .to_owned()
            })
            .filter(|e| !e.is_empty())
            .collect()
    };
    let errors = listed("errors");
    if !errors.is_empty() {
        return errors;
    }
    // A KV v2 engine answers a path it has no endpoint for (on HashiCorp
    // Vault: `detailed-metadata`) with a 404, no errors and the warning
    // "Invalid path for a versioned K/V secrets engine": a mistake, never
    // "absent". A deleted version's 404 carries data and no warnings.
    listed("warnings")
        .into_iter()
        .filter(|w| w.contains(INVALID_KV_PATH))
        .collect()
}

/// What a KV v2 engine warns about a path it has no endpoint for.
const INVALID_KV_PATH: &str = "Invalid path for a versioned K/V secrets engine";

/// A transport error, without the URL (it names nothing secret, but the
/// address is in our message already).
fn describe(error: &ureq::Error) -> String {
    match error {
        ureq::Error::Io(e) => e.to_string(),
        other => other.to_string(),
    }
}

fn trim(path: &str) -> &str {
    path.trim_matches('/')
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
