//! The shipped backends called through the engine's trait, as the engine
//! calls them: real age keys and files, in a temporary project.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use artifacts_engine::Targets;
use artifacts_engine::store::{
    Asked, Call, CallFile, CallTarget, Checked, KeySources, StoreBackend, Writable,
};
use artifacts_model::TargetKind;

/// A project root, a key pair and its identity file.
struct Project {
    dir: tempfile::TempDir,
    key: artifacts_crypto::age::GeneratedKey,
    key_file: PathBuf,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        let key = artifacts_crypto::age::keygen();
        let key_file = dir.path().join("key.txt");
        std::fs::write(&key_file, key.identity_file().as_bytes()).unwrap();
        Project { dir, key, key_file }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    /// A call for artifact `api` (files `token`, secret, and `token.pub`,
    /// public) of machine `m1`, encrypting to `recipient`, whose identities
    /// are `identity` alone (nothing from our environment or home).
    fn call(&self, backend: &str, recipient: &str, identity: Option<&Path>) -> Call {
        let unset = |name: &str| (name.to_owned(), OsString::new());
        let mut overrides = vec![
            unset("SOPS_AGE_KEY"),
            unset("SOPS_AGE_KEY_FILE"),
            unset("SOPS_AGE_SSH_PRIVATE_KEY_FILE"),
            ("HOME".to_owned(), self.dir.path().join("home").into()),
            unset("XDG_CONFIG_HOME"),
        ];
        overrides.push((
            "ARTIFACTS_IDENTITY".to_owned(),
            identity
                .map(|p| p.as_os_str().to_owned())
                .unwrap_or_default(),
        ));
        Call {
            backend: backend.to_owned(),
            artifact: Some("api".to_owned()),
            targets: Targets::One(CallTarget {
                name: "m1".to_owned(),
                kind: TargetKind::Nixos,
                config: serde_json::json!({ "publicHostKey": recipient }),
            }),
            files: vec![
                CallFile {
                    name: "token".to_owned(),
                    secret: true,
                },
                CallFile {
                    name: "token.pub".to_owned(),
                    secret: false,
                },
            ],
            root: self.root(),
            identities: KeySources::new(overrides),
            stamp: None,
        }
    }

    /// A directory holding the generated files.
    fn out(&self, name: &str, token: &str) -> PathBuf {
        let out = self.dir.path().join(name);
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("token"), token).unwrap();
        std::fs::write(out.join("token.pub"), "public").unwrap();
        out
    }
}

fn backend(name: &str) -> std::sync::Arc<dyn StoreBackend> {
    crate::get(name).unwrap_or_else(|| panic!("no shipped backend {name}"))
}

/// Every answer of the trait, in one life of an artifact, for both storing
/// backends: missing, stored, read back, listed, recipients changed, removed.
#[test]
fn each_storing_backend_answers_through_the_trait() {
    for name in ["agenix", "sops-nix"] {
        let p = Project::new();
        let store = backend(name);
        let recipient = p.key.recipient();
        let call = p.call(name, &recipient, Some(&p.key_file));
        assert_eq!(store.check(&call).unwrap(), Checked::Missing, "{name}");
        assert_eq!(store.writable(&call).unwrap(), Writable::Yes, "{name}");

        store.serialize(&call, &p.out("out", "s3cret")).unwrap();
        assert_eq!(store.check(&call).unwrap(), Checked::Stored, "{name}");

        let back = p.dir.path().join("back");
        std::fs::create_dir(&back).unwrap();
        store.deserialize(&call, &back).unwrap();
        assert_eq!(
            std::fs::read_to_string(back.join("token")).unwrap(),
            "s3cret"
        );
        // Public files are the public store's business, not the backend's.
        assert!(!back.join("token.pub").exists(), "{name}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(back.join("token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");

        let mut listing = call.clone();
        listing.artifact = None;
        listing.files.clear();
        assert_eq!(
            store.list(&listing).unwrap(),
            vec!["api".to_owned()],
            "{name}"
        );

        let other = artifacts_crypto::age::keygen().recipient();
        match store.check(&p.call(name, &other, None)).unwrap() {
            Checked::RecipientsChanged { message } => assert!(
                message.contains("is encrypted to other recipients than configured")
                    && message.contains("m1"),
                "{name}: {message}"
            ),
            answer => panic!("{name}: {answer:?}"),
        }

        store.remove(&call).unwrap();
        assert_eq!(store.check(&call).unwrap(), Checked::Missing, "{name}");
        assert!(store.list(&listing).unwrap().is_empty(), "{name}");
        // Removing what is not there is fine.
        store.remove(&call).unwrap();
    }
}

/// Age plugin recipients (here `age-plugin-xwing`, a real plugin) in a
/// machine's keys: both backends encrypt to them as they are (sops-nix too:
/// it runs `sops.age.plugins`), and a plugin identity alone reads back.
#[test]
fn plugin_recipients_are_stored_and_read_back_with_a_plugin_identity() {
    artifacts_testkit::age_plugin_xwing();
    for name in ["agenix", "sops-nix"] {
        let p = Project::new();
        let (key_text, xwing) = artifacts_testkit::xwing_key();
        let xwing_file = p.dir.path().join("xwing.txt");
        std::fs::write(&xwing_file, key_text).unwrap();
        let store = backend(name);
        let mut call = p.call(name, "", Some(&xwing_file));
        let Targets::One(target) = &mut call.targets else {
            unreachable!("a machine's own artifact")
        };
        target.config = serde_json::json!({ "publicHostKey": [p.key.recipient(), xwing.clone()] });
        store.serialize(&call, &p.out("out", "s3cret")).unwrap();
        assert_eq!(store.check(&call).unwrap(), Checked::Stored, "{name}");
        let back = p.dir.path().join("back");
        std::fs::create_dir(&back).unwrap();
        store.deserialize(&call, &back).unwrap();
        assert_eq!(
            std::fs::read_to_string(back.join("token")).unwrap(),
            "s3cret",
            "{name}"
        );
        let stored = match name {
            "agenix" => "secrets/per-machine/m1/api/.recipients",
            _ => "secrets/per-machine/m1.sops.yaml",
        };
        let stored = std::fs::read_to_string(p.root().join(stored)).unwrap();
        assert!(stored.contains(&xwing), "{name}: {stored}");
    }
}

/// sops-nix's pre-flight: adding to an existing file needs an identity of
/// one of its recipients, and the answer names the file and who would do.
#[test]
fn sops_writable_names_the_file_and_the_recipients_that_would_do() {
    let p = Project::new();
    let store = backend("sops-nix");
    let recipient = p.key.recipient();
    let call = p.call("sops-nix", &recipient, Some(&p.key_file));
    store.serialize(&call, &p.out("out", "s3cret")).unwrap();

    let stranger = Project::new();
    let without = p.call("sops-nix", &recipient, Some(&stranger.key_file));
    match store.writable(&without).unwrap() {
        Writable::No { reason } => {
            assert!(
                reason.contains("secrets/per-machine/m1.sops.yaml"),
                "{reason}"
            );
            assert!(reason.contains(&recipient), "{reason}");
        }
        answer => panic!("{answer:?}"),
    }
    // And serialize itself refuses, with the fix as the hint.
    let error = store
        .serialize(&without, &p.out("again", "other"))
        .unwrap_err();
    assert!(error.hint().is_some(), "{error}");
    assert!(!error.to_string().contains("s3cret"), "{error}");
    assert_eq!(store.writable(&call).unwrap(), Writable::Yes);
}

/// A damaged store is an error, never "missing" (which would regenerate
/// over it), and the error names the file; no secret in it.
#[test]
fn a_damaged_agenix_file_is_an_error_naming_it() {
    let p = Project::new();
    let store = backend("agenix");
    let call = p.call("agenix", &p.key.recipient(), Some(&p.key_file));
    store.serialize(&call, &p.out("out", "s3cret")).unwrap();
    let file = p.root().join("secrets/per-machine/m1/api/token.age");
    std::fs::write(&file, "").unwrap();
    let error = store.check(&call).unwrap_err();
    let text = artifacts_engine::error_chain(&error);
    assert!(text.contains("is not a valid age file"), "{text}");
    assert!(text.contains(&file.display().to_string()), "{text}");
}

/// A declaration cannot make a backend write outside the project.
#[test]
fn a_store_dir_leaving_the_project_is_refused() {
    let p = Project::new();
    let store = backend("agenix");
    let mut call = p.call("agenix", &p.key.recipient(), None);
    let Targets::One(target) = &mut call.targets else {
        unreachable!("the test call is for one machine")
    };
    target.config["storeDir"] = serde_json::json!("../elsewhere");
    let error = store.serialize(&call, &p.out("out", "s3cret")).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("must be a relative path inside the project"),
        "{error}"
    );
    assert!(!p.dir.path().parent().unwrap().join("elsewhere").exists());
}

/// The registry entries: each storing backend's scripts run in-process,
/// `sops` is `sops-nix` under another name, `dummy` stores nothing.
#[test]
fn registry_entries_carry_their_implementation() {
    let backends = crate::backends();
    let get = |name: &str| backends.iter().find(|b| b.name == name).unwrap();
    for name in ["agenix", "sops-nix", "sops"] {
        assert!(get(name).in_process.is_some(), "{name}");
        assert!(get(name).is_shipped(), "{name}");
    }
    assert_eq!(get("sops").in_process, get("sops-nix").in_process);
    assert_ne!(get("agenix").in_process, get("sops-nix").in_process);
    assert_eq!(get("sops").storage, "sops-nix");
    assert!(get("dummy").in_process.is_none());
    assert!(get("dummy").capabilities().passthrough);
    assert!(crate::get("dummy").is_none());
}

/// One backend instance is one run: identities are read once and a SOPS
/// file's data key unwrapped once (the key file can go after the first
/// read), yet a file changed meanwhile (by another run) is read afresh.
#[test]
fn a_backend_reads_identities_and_sops_keys_once_per_run_and_sees_changes() {
    for name in ["agenix", "sops-nix"] {
        let p = Project::new();
        let store = backend(name);
        let recipient = p.key.recipient();
        let api = p.call(name, &recipient, Some(&p.key_file));
        let mut db = api.clone();
        db.artifact = Some("db".to_owned());
        store
            .serialize(&api, &p.out("out-api", "api-secret"))
            .unwrap();
        store.serialize(&db, &p.out("out-db", "db-secret")).unwrap();
        let back = |dir: &str, call: &Call| {
            let back = p.dir.path().join(dir);
            std::fs::create_dir(&back).unwrap();
            store.deserialize(call, &back).unwrap();
            std::fs::read_to_string(back.join("token")).unwrap()
        };
        assert_eq!(back("back-api", &api), "api-secret", "{name}");
        std::fs::remove_file(&p.key_file).unwrap();
        // Without the cache: "failed to read" the identity file.
        assert_eq!(back("back-db", &db), "db-secret", "{name}");
        assert_eq!(store.writable(&db).unwrap(), Writable::Yes, "{name}");
        // Another identity set is not taken for the one read before.
        let stranger = Project::new();
        let other = p.call(name, &recipient, Some(&stranger.key_file));
        if name == "sops-nix" {
            assert!(
                matches!(store.writable(&other).unwrap(), Writable::No { .. }),
                "{name}"
            );
        }
        // Another run (a fresh instance) removes `api`: this one sees it.
        std::fs::write(&p.key_file, p.key.identity_file().as_bytes()).unwrap();
        backend(name).remove(&api).unwrap();
        assert_eq!(store.check(&api).unwrap(), Checked::Missing, "{name}");
        assert_eq!(store.check(&db).unwrap(), Checked::Stored, "{name}");
    }
}

/// `rekey` writes units side by side: writes of one SOPS file from several
/// threads take turns, so none loses another's values.
#[test]
fn sops_writes_of_one_file_from_several_threads_keep_every_artifact() {
    let p = Project::new();
    let store = backend("sops-nix");
    let recipient = p.key.recipient();
    let names: Vec<String> = (0..16).map(|n| format!("a{n}")).collect();
    let out = p.out("out", "s3cret");
    std::thread::scope(|scope| {
        for chunk in names.chunks(4) {
            let (store, p, out, recipient) = (&store, &p, &out, &recipient);
            scope.spawn(move || {
                for name in chunk {
                    let mut call = p.call("sops-nix", recipient, Some(&p.key_file));
                    call.artifact = Some(name.clone());
                    store.serialize(&call, out).unwrap();
                }
            });
        }
    });
    let mut listing = p.call("sops-nix", &recipient, Some(&p.key_file));
    listing.artifact = None;
    listing.files.clear();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(store.list(&listing).unwrap(), expected);
}

/// The per-run cache holds data keys and our environment: a backend's
/// `Debug` (reachable through the registry's) says how much, never what.
#[test]
fn a_backends_debug_never_shows_its_cached_data_keys() {
    let p = Project::new();
    let store = backend("sops-nix");
    let call = p.call("sops-nix", &p.key.recipient(), Some(&p.key_file));
    store.serialize(&call, &p.out("out", "s3cret")).unwrap();
    let back = p.dir.path().join("back");
    std::fs::create_dir(&back).unwrap();
    store.deserialize(&call, &back).unwrap();

    let path = p.root().join("secrets/per-machine/m1.sops.yaml");
    let file = artifacts_crypto::sops::EncryptedFile::parse(
        &std::fs::read(&path).unwrap(),
        artifacts_crypto::sops::Format::Yaml,
        &artifacts_crypto::Origin::File(path.clone()),
    )
    .unwrap();
    let identities = artifacts_crypto::age::parse_identities(
        &std::fs::read_to_string(&p.key_file).unwrap(),
        artifacts_crypto::Origin::File(p.key_file.clone()),
        &artifacts_crypto::age::NoPassphrase,
    )
    .unwrap();
    let key = file.data_key(&identities).unwrap();

    let shown = format!("{store:?}");
    assert!(shown.contains("data_keys: 1"), "the key is cached: {shown}");
    let bytes = key.as_bytes();
    assert!(!shown.contains(&format!("{bytes:?}")[1..20]), "{shown}");
    assert!(
        !shown.contains(&p.key_file.display().to_string()),
        "{shown}"
    );
}

/// Store directories stay open for the run, yet a directory created,
/// removed or replaced meanwhile (by another run) is seen as it is now: a
/// missing one is never remembered, and one moved away is not read through
/// the handle kept open.
#[test]
fn store_directories_created_or_replaced_during_a_run_are_seen() {
    for name in ["agenix", "sops-nix"] {
        let p = Project::new();
        let store = backend(name);
        let recipient = p.key.recipient();
        let api = p.call(name, &recipient, Some(&p.key_file));
        let mut db = api.clone();
        db.artifact = Some("db".to_owned());
        // Nothing yet: then another run stores `api`.
        assert_eq!(store.check(&api).unwrap(), Checked::Missing, "{name}");
        backend(name)
            .serialize(&api, &p.out("out-api", "api-secret"))
            .unwrap();
        assert_eq!(store.check(&api).unwrap(), Checked::Stored, "{name}");
        // Another run moves the store away and stores only `db`.
        std::fs::rename(p.root().join("secrets"), p.root().join("moved")).unwrap();
        backend(name)
            .serialize(&db, &p.out("out-db", "db-secret"))
            .unwrap();
        assert_eq!(store.check(&api).unwrap(), Checked::Missing, "{name}");
        assert_eq!(store.check(&db).unwrap(), Checked::Stored, "{name}");
        // And removes it: nothing is stored.
        std::fs::remove_dir_all(p.root().join("secrets")).unwrap();
        assert_eq!(store.check(&db).unwrap(), Checked::Missing, "{name}");
    }
}

/// Asked together (the engine asks for a target's artifacts in one go),
/// sops-nix answers each artifact as `check` alone does, for a target whose
/// file is current, one whose recipients changed and one with no file: the
/// file read once serves every artifact of that target.
#[test]
fn sops_check_target_answers_each_artifact_as_check_does() {
    let p = Project::new();
    let store = backend("sops-nix");
    let recipient = p.key.recipient();
    let api = p.call("sops-nix", &recipient, Some(&p.key_file));
    store.serialize(&api, &p.out("out", "s3cret")).unwrap();
    let asked = |artifact: &str, files: &[(&str, bool)]| Asked {
        artifact: artifact.to_owned(),
        files: files
            .iter()
            .map(|&(name, secret)| CallFile {
                name: name.to_owned(),
                secret,
            })
            .collect(),
    };
    let artifacts = [
        asked("api", &[("token", true), ("token.pub", false)]),
        // Not stored.
        asked("db", &[("token", true)]),
        // Stored, but a secret file more is declared now.
        asked("api", &[("extra", true), ("token", true)]),
        // Public files are not in the SOPS file.
        asked("api", &[("token", true), ("other.pub", false)]),
    ];
    let rekeyed = p.call(
        "sops-nix",
        &artifacts_crypto::age::keygen().recipient(),
        None,
    );
    let mut other_machine = api.clone();
    other_machine.targets = Targets::One(CallTarget {
        name: "m2".to_owned(),
        kind: TargetKind::Nixos,
        config: serde_json::json!({ "publicHostKey": recipient }),
    });
    let mut answers = Vec::new();
    for call in [&api, &rekeyed, &other_machine] {
        let together: Vec<Checked> = store
            .check_target(call, &artifacts)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let alone: Vec<Checked> = artifacts
            .iter()
            .map(|asked| {
                let mut each = call.clone();
                each.artifact = Some(asked.artifact.clone());
                each.files.clone_from(&asked.files);
                store.check(&each).unwrap()
            })
            .collect();
        assert_eq!(together, alone);
        answers.push(together);
    }
    assert!(matches!(
        answers[0][..],
        [
            Checked::Stored,
            Checked::Missing,
            Checked::Missing,
            Checked::Stored
        ]
    ));
    assert!(matches!(
        answers[1][..],
        [
            Checked::RecipientsChanged { .. },
            Checked::Missing,
            Checked::Missing,
            Checked::RecipientsChanged { .. }
        ]
    ));
    assert!(answers[2].iter().all(|a| *a == Checked::Missing));
}
