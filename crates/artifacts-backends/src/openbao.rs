//! openbao (alias `vault`): one KV version 2 entry per artifact on an
//! OpenBao or Vault server, its keys the artifact's secret file names.
//!
//! ```text
//! <mount>/data/<prefix>/per-machine/<machine>/<artifact>   {<file>: <content>, …}
//! <mount>/data/<prefix>/per-user/<user>/<artifact>
//! <mount>/data/<prefix>/shared/<artifact>
//! <mount>/data/<prefix>/tanka/<environment>/<artifact>
//! ```
//!
//! Configured per target in `artifacts.config.openbao` (or `.vault`):
//! `address` (else `BAO_ADDR`/`VAULT_ADDR`), `mount` (default `secret`),
//! `prefix` (default `artifacts`), `caCert`, `namespace`. The operator's
//! token comes from `BAO_TOKEN`/`VAULT_TOKEN` or `~/.vault-token`, never
//! from argv or the declarations.
//!
//! A generation is one KV version: all files change together, and earlier
//! versions stay readable ([`read_version`], `show --version N`). A file
//! that is valid UTF-8 is stored as a string (what `bao kv get` shows);
//! anything else as `{"base64": "…"}`. After the data, one write of the
//! entry's custom metadata records:
//!
//! | key | value |
//! |---|---|
//! | `artifacts-version` | the KV version artifacts wrote |
//! | `artifacts-files` | its secret file names, sorted, comma-separated |
//! | `artifacts-fingerprint` | the generation's `fingerprint` in artifacts.lock |
//! | `artifacts-generated-at` | its `generated_at` there (absent when unknown) |
//!
//! so `check` can tell a complete generation from a write that was
//! interrupted or done by hand, and report the stored generation's stamp:
//! the engine compares it with this checkout's artifacts.lock, which
//! another operator sharing the server may not have pulled yet. Entries
//! written before the stamp (no `artifacts-fingerprint`) report none.
//!
//! `check` asks the server once per target directory (one `LIST` of
//! OpenBao's `detailed-metadata`, which carries every entry's metadata) and
//! answers every artifact of that target from it: the listing is kept in
//! this backend object for the run, and dropped for a directory when
//! `serialize` or `remove` changes it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use artifacts_engine::store::{Checked, Stamp, Writable};
use artifacts_openbao::{Client, KvEntry, Settings, Token};
use base64::Engine as _;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::call::{Call, Error, TargetEntry};

/// Custom metadata: the KV version artifacts wrote last.
const META_VERSION: &str = "artifacts-version";
/// Custom metadata: the secret file names of that version, comma-separated.
const META_FILES: &str = "artifacts-files";
/// Custom metadata: the lock's `fingerprint` of the generation.
const META_FINGERPRINT: &str = "artifacts-fingerprint";
/// Custom metadata: the lock's `generated_at` of the generation (RFC 3339, UTC).
const META_GENERATED: &str = "artifacts-generated-at";

/// Where one target's (or the shared) artifacts live on one server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// Server address, without `/v1`.
    pub address: String,
    /// Namespace, if any.
    pub namespace: Option<String>,
    /// CA certificate file, if any.
    pub ca_cert: Option<PathBuf>,
    /// The KV v2 mount.
    pub mount: String,
    /// The directory below the mount: `<prefix>/per-machine/<m>` etc.
    pub dir: String,
}

impl Location {
    /// The entry path of `artifact` below the mount.
    pub fn entry(&self, artifact: &str) -> String {
        format!("{}/{artifact}", self.dir)
    }
}

/// The backend object: clients and directory listings kept for the run.
#[derive(Debug, Default)]
pub struct Openbao {
    clients: Mutex<HashMap<Server, Arc<Client>>>,
    listings: Mutex<HashMap<Location, Arc<Mutex<Option<Listing>>>>>,
    /// Servers found unreachable, sealed or refusing the token: every later
    /// listing on them fails at once instead of retrying again.
    down: Mutex<HashMap<Server, Arc<artifacts_openbao::Error>>>,
}

/// The server a location is on.
fn server_of(location: &Location) -> Server {
    (
        location.address.clone(),
        location.namespace.clone(),
        location.ca_cert.clone(),
    )
}

/// Secret files by name, as read from the server.
pub type SecretFiles = Vec<(String, Zeroizing<Vec<u8>>)>;

/// A server as a client connects to it: address, namespace, CA file.
type Server = (String, Option<String>, Option<PathBuf>);

/// One directory's listing, or why it failed (kept too: every artifact of
/// an unreachable server fails at once, not after its own retries).
type Listing = Result<Arc<BTreeMap<String, KvEntry>>, Arc<artifacts_openbao::Error>>;

/// A name used as one path component below the prefix.
fn component<'n>(name: &'n str, what: &str) -> Result<&'n str, Error> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." || name.contains('\0') {
        return Err(Error::Usage(format!(
            "{what} `{name}` cannot be a path component in openbao"
        )));
    }
    Ok(name)
}

/// A string setting of `config.<backend>`, if set.
fn setting(target: &TargetEntry, backend: &str, key: &str) -> Result<Option<String>, Error> {
    match target.config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) if !value.trim().is_empty() => Ok(Some(value.trim().to_owned())),
        Some(_) => Err(Error::Config(format!(
            "{} `{}`: artifacts.config.{backend}.{key} must be a non-empty string",
            target.kind, target.name
        ))),
    }
}

/// The location of the call's context, from the target's configuration and
/// the environment; a shared artifact's targets must agree on the server.
pub fn location(call: &Call, backend: &str) -> Result<Location, Error> {
    let mut found: Option<(Location, &TargetEntry)> = None;
    for target in &call.targets {
        let here = target_location(call, target, backend)?;
        match &found {
            Some((location, first)) if *location != here => {
                return Err(Error::Config(format!(
                    "shared artifact `{}`: its targets configure different openbao servers, mounts or prefixes ({} `{}` and {} `{}`); a shared artifact is stored once",
                    call.artifact, first.kind, first.name, target.kind, target.name
                )));
            }
            Some(_) => {}
            None => found = Some((here, target)),
        }
    }
    found
        .map(|(location, _)| location)
        .ok_or_else(|| Error::Contract("$targets lists no target".into()))
}

/// Whether any server is configured for the call: an `address` on one of
/// its targets, or `BAO_ADDR`/`VAULT_ADDR`. Without one nothing can be
/// stored for it, so probing (`gc` listing every backend, `check` asking
/// where else an artifact lives) finds nothing instead of failing; using
/// it (`serialize`, `writable`) still says what to set.
fn configured(call: &Call, backend: &str) -> bool {
    call.targets
        .iter()
        .any(|target| matches!(setting(target, backend, "address"), Ok(Some(_))))
        || ["BAO_ADDR", "VAULT_ADDR"]
            .iter()
            .any(|name| call.var(name).is_some_and(|v| !v.is_empty()))
}

fn target_location(call: &Call, target: &TargetEntry, backend: &str) -> Result<Location, Error> {
    let env = |name: &str| call.var(name);
    let address = match setting(target, backend, "address")? {
        Some(address) => address,
        None => env("BAO_ADDR")
            .or_else(|| env("VAULT_ADDR"))
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                Error::Config(format!(
                    "{} `{}`: no openbao address: set artifacts.config.{backend}.address, or BAO_ADDR/VAULT_ADDR",
                    target.kind, target.name
                ))
            })?,
    };
    let namespace = setting(target, backend, "namespace")?
        .or_else(|| env("BAO_NAMESPACE"))
        .or_else(|| env("VAULT_NAMESPACE"))
        .filter(|n| !n.is_empty());
    let ca_cert = setting(target, backend, "caCert")?
        .or_else(|| env("BAO_CACERT"))
        .or_else(|| env("VAULT_CACERT"))
        .filter(|c| !c.is_empty())
        .map(|c| call.root.join(c));
    let mount = setting(target, backend, "mount")?.unwrap_or_else(|| "secret".to_owned());
    let prefix = setting(target, backend, "prefix")?.unwrap_or_else(|| "artifacts".to_owned());
    let mount = mount.trim_matches('/').to_owned();
    let prefix = prefix.trim_matches('/').to_owned();
    for part in mount.split('/').chain(prefix.split('/')) {
        component(part, "mount or prefix part")?;
    }
    let dir = match call.context.as_str() {
        "shared" => format!("{prefix}/shared"),
        "nixos" => format!(
            "{prefix}/per-machine/{}",
            component(&target.name, "machine")?
        ),
        "homemanager" => format!("{prefix}/per-user/{}", component(&target.name, "user")?),
        "tanka" => format!("{prefix}/tanka/{}", component(&target.name, "environment")?),
        other => {
            return Err(Error::Usage(format!(
                "openbao does not store {other} artifacts"
            )));
        }
    };
    Ok(Location {
        address: address.trim_end_matches('/').to_owned(),
        namespace,
        ca_cert,
        mount,
        dir,
    })
}

impl Openbao {
    /// The client for `location`'s server (one per server and run), with
    /// the operator's token.
    fn client(&self, call: &Call, location: &Location) -> Result<Arc<Client>, Error> {
        let key = server_of(location);
        let mut clients = self.clients.lock().expect("not poisoned");
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let token = operator_token(call).ok_or_else(|| no_token(location))?;
        let client = Arc::new(Client::new(Settings {
            address: location.address.clone(),
            token: Some(token),
            namespace: location.namespace.clone(),
            ca_cert: location.ca_cert.clone(),
            attempts: None,
        })?);
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// The listing of `location`'s directory: asked once, then kept.
    fn listing(&self, client: &Client, location: &Location) -> Listing {
        let slot = self
            .listings
            .lock()
            .expect("not poisoned")
            .entry(location.clone())
            .or_default()
            .clone();
        // Checks of one target wait here for the first one's LIST.
        let mut slot = slot.lock().expect("not poisoned");
        if let Some(listing) = &*slot {
            return listing.clone();
        }
        let server = server_of(location);
        if let Some(error) = self.down.lock().expect("not poisoned").get(&server) {
            return Err(error.clone());
        }
        let listing = client
            .kv_list(&location.mount, &location.dir)
            .map(Arc::new)
            .map_err(Arc::new);
        if let Err(error) = &listing
            && matches!(
                **error,
                artifacts_openbao::Error::Unreachable { .. }
                    | artifacts_openbao::Error::Sealed { .. }
                    | artifacts_openbao::Error::BadToken { .. }
            )
        {
            self.down
                .lock()
                .expect("not poisoned")
                .insert(server, error.clone());
        }
        *slot = Some(listing.clone());
        listing
    }

    fn forget(&self, location: &Location) {
        self.listings.lock().expect("not poisoned").remove(location);
    }

    /// Stored (a complete generation written by artifacts, with its stamp
    /// when it has one), or missing.
    pub fn check(&self, call: &Call) -> Result<Checked, Error> {
        let artifact = component(&call.artifact, "artifact")?;
        if !configured(call, &call_backend(call)) {
            return Ok(Checked::Missing);
        }
        let location = location(call, &call_backend(call))?;
        let client = self.client(call, &location)?;
        let listing = self.listing(&client, &location)?;
        let Some(entry) = listing.get(artifact) else {
            return Ok(Checked::Missing);
        };
        if entry.current_deleted {
            return Ok(Checked::Missing);
        }
        let path = format!("{}/{}", location.mount, location.entry(artifact));
        match entry.custom_metadata.get(META_VERSION) {
            Some(version) if *version == entry.current_version.to_string() => {}
            recorded => {
                return Err(Error::Damaged(format!(
                    "openbao entry `{path}` is at version {}, which artifacts did not write ({}); regenerate it (`artifacts regenerate {artifact}`)",
                    entry.current_version,
                    match recorded {
                        Some(v) => format!("it wrote version {v}"),
                        None => "it has no record of artifacts".to_owned(),
                    }
                )));
            }
        }
        let declared: Vec<&str> = call.secret_files().collect();
        if entry.custom_metadata.get(META_FILES).map(String::as_str) != Some(&declared.join(",")) {
            return Ok(Checked::Missing);
        }
        Ok(match entry.custom_metadata.get(META_FINGERPRINT) {
            Some(fingerprint) => Checked::StoredWith {
                stamp: Stamp {
                    fingerprint: fingerprint.clone(),
                    generated_at: entry.custom_metadata.get(META_GENERATED).cloned(),
                },
            },
            None => Checked::Stored,
        })
    }

    /// Writes every secret file of `$out` as one new version, then records
    /// it with the call's stamp (see the module doc).
    pub fn serialize(&self, call: &Call, out: &Path) -> Result<(), Error> {
        let artifact = component(&call.artifact, "artifact")?;
        let location = location(call, &call_backend(call))?;
        let client = self.client(call, &location)?;
        let mut data = serde_json::Map::new();
        let mut names = Vec::new();
        for name in call.secret_files() {
            let source = out.join(name);
            let content =
                Zeroizing::new(std::fs::read(&source).map_err(Error::io("read", &source))?);
            let value = match std::str::from_utf8(&content) {
                Ok(text) => Value::String(text.to_owned()),
                Err(_) => serde_json::json!({
                    "base64": base64::engine::general_purpose::STANDARD.encode(&content)
                }),
            };
            data.insert(name.to_owned(), value);
            names.push(name);
        }
        let path = location.entry(artifact);
        self.forget(&location);
        let version = client.kv_write(&location.mount, &path, &data, None)?;
        let mut custom = BTreeMap::from([
            (META_VERSION.to_owned(), version.to_string()),
            (META_FILES.to_owned(), names.join(",")),
        ]);
        if let Some(stamp) = &call.stamp {
            custom.insert(META_FINGERPRINT.to_owned(), stamp.fingerprint.clone());
            if let Some(at) = &stamp.generated_at {
                custom.insert(META_GENERATED.to_owned(), at.clone());
            }
        }
        client.kv_set_custom_metadata(&location.mount, &path, &custom)?;
        self.forget(&location);
        Ok(())
    }

    /// Writes the current version's secret files into `$out`.
    pub fn deserialize(&self, call: &Call, out: &Path) -> Result<(), Error> {
        self.deserialize_version(call, out, None)
    }

    /// Writes version `version` (the current one when `None`) into `$out`.
    pub fn deserialize_version(
        &self,
        call: &Call,
        out: &Path,
        version: Option<u64>,
    ) -> Result<(), Error> {
        let artifact = component(&call.artifact, "artifact")?;
        let location = location(call, &call_backend(call))?;
        let client = self.client(call, &location)?;
        let path = location.entry(artifact);
        let shown = format!("{}/{path}", location.mount);
        let stored = client
            .kv_read(&location.mount, &path, version)?
            .ok_or_else(|| {
                Error::Usage(match version {
                    Some(v) => format!("openbao entry `{shown}` has no version {v}"),
                    None => {
                        format!("openbao entry `{shown}` does not exist; run `artifacts generate`")
                    }
                })
            })?;
        for name in call.secret_files() {
            let value = stored.data.get(name).ok_or_else(|| {
                Error::Damaged(format!(
                    "openbao entry `{shown}` (version {}) has no file `{name}`; regenerate it",
                    stored.version
                ))
            })?;
            let content = decode(value).ok_or_else(|| {
                Error::Damaged(format!(
                    "openbao entry `{shown}` (version {}): `{name}` is neither a string nor {{\"base64\": …}}",
                    stored.version
                ))
            })?;
            artifacts_os::scratch::write_private(&out.join(name), &content)
                .map_err(Error::io("write", &out.join(name)))?;
        }
        Ok(())
    }

    /// The artifacts stored in the target's (or the shared) directory.
    pub fn list(&self, call: &Call) -> Result<Vec<String>, Error> {
        if !configured(call, &call_backend(call)) {
            return Ok(Vec::new());
        }
        let location = location(call, &call_backend(call))?;
        let client = self.client(call, &location)?;
        let listing = self.listing(&client, &location)?;
        Ok(listing
            .iter()
            .filter(|(_, entry)| !entry.current_deleted)
            .map(|(name, _)| name.clone())
            .collect())
    }

    /// Deletes the artifact's entry with every version.
    pub fn remove(&self, call: &Call) -> Result<(), Error> {
        let artifact = component(&call.artifact, "artifact").map_err(|_| {
            Error::Usage(format!("refusing to remove artifact `{}`", call.artifact))
        })?;
        if !configured(call, &call_backend(call)) {
            return Ok(());
        }
        let location = location(call, &call_backend(call))?;
        let client = self.client(call, &location)?;
        self.forget(&location);
        client.kv_delete_all(&location.mount, &location.entry(artifact))?;
        self.forget(&location);
        Ok(())
    }

    /// Writable when there is an operator token (the server decides the rest).
    pub fn writable(&self, call: &Call) -> Result<Writable, Error> {
        let location = location(call, &call_backend(call))?;
        Ok(match operator_token(call) {
            Some(_) => Writable::Yes,
            None => Writable::No {
                reason: no_token(&location).to_string(),
            },
        })
    }
}

/// Where a host reads its AppRole's role_id and secret_id when
/// `roleIdFile`/`secretIdFile` are not configured (the NixOS module's defaults;
/// keep in sync with backends/openbao/module.nix).
pub const DEFAULT_ROLE_ID_FILE: &str = "/var/lib/artifacts/openbao/role-id";
/// See [`DEFAULT_ROLE_ID_FILE`].
pub const DEFAULT_SECRET_ID_FILE: &str = "/var/lib/artifacts/openbao/secret-id";
/// A Home Manager user's AppRole files, below `$XDG_CONFIG_HOME` (else
/// `~/.config`): the Home Manager module's defaults; keep in sync with
/// backends/openbao/home-manager.nix.
pub const USER_ROLE_ID_FILE: &str = "artifacts/openbao/role-id";
/// See [`USER_ROLE_ID_FILE`].
pub const USER_SECRET_ID_FILE: &str = "artifacts/openbao/secret-id";

/// The AppRole file `key` (`roleIdFile` or `secretIdFile`) of the host
/// target: as configured (a leading `~/` is the running user's home), else
/// the machine's default, or for a Home Manager user the one under their
/// configuration directory, since they cannot write `/var/lib`.
fn approle_file(call: &Call, backend: &str, key: &str) -> Result<PathBuf, Error> {
    let target = call.target();
    let home = || {
        call.var("HOME").filter(|h| !h.is_empty()).ok_or_else(|| {
            Error::Config(format!(
                "{} `{}`: HOME is not set, so the AppRole file (artifacts.config.{backend}.{key}) cannot be found",
                target.kind, target.name
            ))
        })
    };
    if let Some(path) = setting(target, backend, key)? {
        return Ok(match path.strip_prefix("~/") {
            Some(rest) => Path::new(&home()?).join(rest),
            None => PathBuf::from(path),
        });
    }
    let (system, user) = if key == "roleIdFile" {
        (DEFAULT_ROLE_ID_FILE, USER_ROLE_ID_FILE)
    } else {
        (DEFAULT_SECRET_ID_FILE, USER_SECRET_ID_FILE)
    };
    if target.target_kind != artifacts_model::TargetKind::Home {
        return Ok(PathBuf::from(system));
    }
    let config = match call.var("XDG_CONFIG_HOME").filter(|d| d.starts_with('/')) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(&home()?).join(".config"),
    };
    Ok(config.join(user))
}

impl Openbao {
    /// The current version's secret files, read by the host itself: it logs
    /// in with its AppRole (`roleIdFile`, `secretIdFile`, auth mount
    /// `authMount`, default `approle`, from the target's configuration), so
    /// the server lets it read its own paths only.
    pub fn host_read(&self, call: &Call) -> Result<SecretFiles, Error> {
        let artifact = component(&call.artifact, "artifact")?;
        let backend = call_backend(call);
        let location = location(call, &backend)?;
        let target = call.target();
        let read_id = |key: &str| -> Result<Zeroizing<String>, Error> {
            let path = approle_file(call, &backend, key)?;
            std::fs::read_to_string(&path)
                .map(Zeroizing::new)
                .map_err(|e| {
                    Error::Config(format!(
                        "{} `{}`: failed to read the AppRole file `{}` (artifacts.config.{backend}.{key}): {e}",
                        target.kind,
                        target.name,
                        path.display()
                    ))
                })
        };
        let role_id = read_id("roleIdFile")?;
        let secret_id = read_id("secretIdFile")?;
        let auth = setting(target, &backend, "authMount")?.unwrap_or_else(|| "approle".to_owned());
        let anonymous = Client::new(Settings {
            address: location.address.clone(),
            token: None,
            namespace: location.namespace.clone(),
            ca_cert: location.ca_cert.clone(),
            attempts: None,
        })?;
        let client = anonymous.with_token(anonymous.approle_login(&auth, &role_id, &secret_id)?);
        let path = location.entry(artifact);
        let shown = format!("{}/{path}", location.mount);
        let stored = client
            .kv_read(&location.mount, &path, None)?
            .ok_or_else(|| {
                Error::Usage(format!(
                    "openbao entry `{shown}` does not exist; run `artifacts generate` first"
                ))
            })?;
        let mut files = Vec::new();
        for name in call.secret_files() {
            let content = stored.data.get(name).and_then(decode).ok_or_else(|| {
                Error::Damaged(format!(
                    "openbao entry `{shown}` (version {}) has no readable file `{name}`; regenerate it",
                    stored.version
                ))
            })?;
            files.push((name.to_owned(), content));
        }
        Ok(files)
    }
}

/// The KV v2 mount and the entry path (below it) of the call's artifact,
/// and the server address: what a host's policy must allow.
pub fn entry_of(call: &Call) -> Result<(String, String, String), Error> {
    let artifact = component(&call.artifact, "artifact")?;
    let location = location(call, &call_backend(call))?;
    Ok((
        location.address.clone(),
        location.mount.clone(),
        location.entry(artifact),
    ))
}

/// The policy text letting a token read exactly `entries` (mount, path).
pub fn policy_text(entries: &[(String, String)]) -> String {
    let mut text = String::from(
        "# Written by `artifacts openbao policies`: read access to exactly these artifacts.\n",
    );
    for (mount, path) in entries {
        text.push_str(&format!(
            "path \"{mount}/data/{path}\" {{\n  capabilities = [\"read\"]\n}}\n"
        ));
    }
    text
}

/// The operator's token: `BAO_TOKEN`, `VAULT_TOKEN` or `~/.vault-token`.
fn operator_token(call: &Call) -> Option<Token> {
    let home = call.var("HOME").map(PathBuf::from);
    Token::from_env(&|name| call.var(name), home.as_deref())
}

fn no_token(location: &Location) -> Error {
    Error::Config(format!(
        "no openbao token for `{}`: set BAO_TOKEN or VAULT_TOKEN, or run `bao login`",
        location.address
    ))
}

/// The configuration key the call's backend reads (`openbao` or `vault`).
fn call_backend(call: &Call) -> String {
    call.backend.clone()
}

/// A stored value: a string, or `{"base64": "…"}`.
fn decode(value: &Value) -> Option<Zeroizing<Vec<u8>>> {
    match value {
        Value::String(text) => Some(Zeroizing::new(text.as_bytes().to_vec())),
        Value::Object(map) if map.len() == 1 => {
            let encoded = map.get("base64")?.as_str()?;
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
                .map(Zeroizing::new)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use artifacts_engine::Targets;
    use artifacts_engine::store::{self, CallFile, CallTarget, KeySources};
    use artifacts_model::{Context, TargetKind};
    use serde_json::json;

    use super::*;

    fn call(context: Context, targets: &[(&str, TargetKind, Value)]) -> Call {
        let unset = |name: &str| (name.to_owned(), std::ffi::OsString::new());
        Call::new(
            &store::Call {
                backend: "openbao".to_owned(),
                artifact: Some("api".to_owned()),
                targets: {
                    let all: Vec<CallTarget> = targets
                        .iter()
                        .map(|(name, kind, config)| CallTarget {
                            name: name.to_string(),
                            kind: *kind,
                            config: config.clone(),
                        })
                        .collect();
                    if context == Context::Shared {
                        Targets::Shared(all)
                    } else {
                        Targets::One(all.into_iter().next().unwrap())
                    }
                },
                files: vec![CallFile {
                    name: "token".to_owned(),
                    secret: true,
                }],
                root: PathBuf::from("/project"),
                identities: KeySources::new(
                    [
                        "BAO_ADDR",
                        "VAULT_ADDR",
                        "BAO_NAMESPACE",
                        "VAULT_NAMESPACE",
                        "BAO_CACERT",
                        "VAULT_CACERT",
                    ]
                    .map(unset)
                    .to_vec(),
                ),
                stamp: None,
            },
            &Default::default(),
        )
        .unwrap()
    }

    #[test]
    fn the_layout_and_the_defaults() {
        let config = json!({ "address": "https://bao:8200/" });
        let cases = [
            (
                Context::Nixos,
                TargetKind::Nixos,
                "artifacts/per-machine/m1",
            ),
            (
                Context::HomeManager,
                TargetKind::Home,
                "artifacts/per-user/m1",
            ),
            (Context::Tanka, TargetKind::Tanka, "artifacts/tanka/m1"),
            (Context::Shared, TargetKind::Nixos, "artifacts/shared"),
        ];
        for (context, kind, dir) in cases {
            let found =
                location(&call(context, &[("m1", kind, config.clone())]), "openbao").unwrap();
            assert_eq!(found.dir, dir);
            assert_eq!(found.mount, "secret");
            assert_eq!(found.address, "https://bao:8200");
            assert_eq!(found.entry("api"), format!("{dir}/api"));
        }
        let custom = json!({ "address": "http://b", "mount": "/kv/", "prefix": "team/x", "caCert": "ca.pem" });
        let found = location(
            &call(Context::Nixos, &[("m1", TargetKind::Nixos, custom)]),
            "openbao",
        )
        .unwrap();
        assert_eq!(
            (found.mount.as_str(), found.dir.as_str()),
            ("kv", "team/x/per-machine/m1")
        );
        assert_eq!(found.ca_cert, Some(PathBuf::from("/project/ca.pem")));
    }

    #[test]
    fn bad_configurations_are_named() {
        let error = |context, targets: &[(&str, TargetKind, Value)]| {
            location(&call(context, targets), "openbao")
                .unwrap_err()
                .to_string()
        };
        let no_address = error(Context::Nixos, &[("m1", TargetKind::Nixos, json!({}))]);
        assert!(
            no_address.contains("nixos `m1`: no openbao address"),
            "{no_address}"
        );
        let bad_mount = error(
            Context::Nixos,
            &[(
                "m1",
                TargetKind::Nixos,
                json!({ "address": "http://b", "mount": "a/../b" }),
            )],
        );
        assert!(
            bad_mount.contains("`..` cannot be a path component"),
            "{bad_mount}"
        );
        let not_string = error(
            Context::Nixos,
            &[(
                "m1",
                TargetKind::Nixos,
                json!({ "address": "http://b", "prefix": 3 }),
            )],
        );
        assert!(
            not_string.contains("artifacts.config.openbao.prefix must be a non-empty string"),
            "{not_string}"
        );
        let apart = error(
            Context::Shared,
            &[
                ("m1", TargetKind::Nixos, json!({ "address": "http://a" })),
                ("m2", TargetKind::Nixos, json!({ "address": "http://b" })),
            ],
        );
        assert!(
            apart.contains("configure different openbao servers"),
            "{apart}"
        );
    }

    #[test]
    fn a_target_without_a_server_stores_nothing_here() {
        // What `gc` and the "stored elsewhere" probe see for targets that
        // do not use openbao: nothing, not an error.
        let bao = Openbao::default();
        let unconfigured = call(Context::Nixos, &[("m1", TargetKind::Nixos, json!({}))]);
        assert_eq!(bao.list(&unconfigured).unwrap(), Vec::<String>::new());
        assert_eq!(bao.check(&unconfigured).unwrap(), Checked::Missing);
        bao.remove(&unconfigured).unwrap();
        // Storing there still says what to set.
        let error = bao
            .serialize(&unconfigured, Path::new("/nonexistent"))
            .unwrap_err();
        assert!(error.to_string().contains("no openbao address"), "{error}");
    }

    #[test]
    fn stored_values_decode_as_text_or_base64_only() {
        assert_eq!(decode(&json!("a\nb")).unwrap().as_slice(), b"a\nb");
        assert_eq!(
            decode(&json!({ "base64": "/wA=" })).unwrap().as_slice(),
            b"\xff\x00"
        );
        assert!(decode(&json!({ "base64": "!" })).is_none());
        assert!(decode(&json!({ "base64": "/wA=", "x": 1 })).is_none());
        assert!(decode(&json!(3)).is_none());
    }
}
