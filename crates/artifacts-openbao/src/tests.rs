//! The client against a real OpenBao dev server (started per test).

use artifacts_testkit::BaoServer;

use super::*;

fn client(server: &BaoServer, token: Option<&str>) -> Client {
    Client::new(Settings {
        address: server.address.clone(),
        token: token.map(Token::new),
        attempts: Some(2),
        ..Settings::default()
    })
    .unwrap()
}

fn data(pairs: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect()
}

#[test]
fn kv_versions_metadata_and_one_request_listing() {
    let server = BaoServer::dev();
    let bao = client(&server, Some(&server.root_token));
    assert_eq!(
        bao.kv_read("secret", "a/x", None)
            .unwrap()
            .map(|v| v.version),
        None
    );
    assert_eq!(
        bao.kv_write("secret", "a/x", &data(&[("k", "one")]), Some(0))
            .unwrap(),
        1
    );
    assert_eq!(
        bao.kv_write("secret", "a/x", &data(&[("k", "two")]), None)
            .unwrap(),
        2
    );
    // A stale check-and-set is a conflict, not an overwrite.
    let stale = bao.kv_write("secret", "a/x", &data(&[("k", "three")]), Some(1));
    assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
    let custom = BTreeMap::from([("artifacts-files".to_owned(), "k".to_owned())]);
    bao.kv_set_custom_metadata("secret", "a/x", &custom)
        .unwrap();
    bao.kv_write("secret", "a/y", &data(&[("k", "y")]), None)
        .unwrap();
    bao.kv_write("secret", "a/sub/z", &data(&[("k", "z")]), None)
        .unwrap();

    assert_eq!(
        bao.kv_read("secret", "a/x", None).unwrap().unwrap().data["k"],
        "two"
    );
    assert_eq!(
        bao.kv_read("secret", "a/x", Some(1)).unwrap().unwrap().data["k"],
        "one"
    );

    let before = bao.requests();
    let listed = bao.kv_list("secret", "a").unwrap();
    assert_eq!(bao.requests() - before, 1, "a listing is one request");
    assert_eq!(listed.keys().collect::<Vec<_>>(), ["x", "y"]);
    assert_eq!(listed["x"].current_version, 2);
    assert_eq!(listed["x"].custom_metadata, custom);
    assert!(!listed["x"].current_deleted);
    assert!(bao.kv_list("secret", "nothing/here").unwrap().is_empty());
    // What a server without detailed-metadata (Vault) gets: the same, in 1 + N requests.
    let before = bao.requests();
    assert_eq!(bao.kv_list_per_entry("secret", "a").unwrap(), listed);
    assert_eq!(bao.requests() - before, 3);
    assert!(
        bao.kv_list_per_entry("secret", "nothing/here")
            .unwrap()
            .is_empty()
    );

    bao.kv_delete_all("secret", "a/x").unwrap();
    assert!(bao.kv_read("secret", "a/x", Some(1)).unwrap().is_none());
    bao.kv_delete_all("secret", "a/x").unwrap();
}

#[test]
fn transit_round_trip_and_the_real_cli_agrees() {
    let server = BaoServer::dev();
    server.bao(&["secrets", "enable", "transit"], None);
    server.bao(&["write", "-f", "transit/keys/sops"], None);
    let bao = client(&server, Some(&server.root_token));
    let plain = b"\x00\xffdata key bytes";
    let ciphertext = bao.transit_encrypt("transit", "sops", plain).unwrap();
    assert!(ciphertext.starts_with("vault:v1:"), "{ciphertext}");
    assert_eq!(
        bao.transit_decrypt("transit", "sops", &ciphertext)
            .unwrap()
            .as_slice(),
        plain
    );
    // What the bao CLI encrypts, we decrypt.
    let theirs = server.bao(
        &[
            "write",
            "-field=ciphertext",
            "transit/encrypt/sops",
            "plaintext=aGVsbG8=",
        ],
        None,
    );
    let theirs = String::from_utf8(theirs).unwrap();
    assert_eq!(
        bao.transit_decrypt("transit", "sops", theirs.trim())
            .unwrap()
            .as_slice(),
        b"hello"
    );
}

#[test]
fn errors_say_what_is_wrong() {
    let server = BaoServer::dev();
    server.bao(
        &["secrets", "enable", "-path=kv1", "-version=1", "kv"],
        None,
    );
    server.bao(
        &["policy", "write", "only-a", "-"],
        Some(b"path \"secret/data/a\" { capabilities = [\"read\"] }\n"),
    );
    let limited = server.bao(&["token", "create", "-policy=only-a", "-field=token"], None);
    let limited = String::from_utf8(limited).unwrap();
    let root = client(&server, Some(&server.root_token));
    root.kv_write("secret", "b", &data(&[("k", "v")]), None)
        .unwrap();

    let denied = client(&server, Some(limited.trim()))
        .kv_read("secret", "b", None)
        .unwrap_err();
    assert!(
        matches!(&denied, Error::Forbidden { path, .. } if path == "secret/data/b"),
        "{denied:?}"
    );
    assert!(denied.to_string().contains("`secret/data/b`"), "{denied}");
    assert!(
        denied
            .hint()
            .unwrap()
            .contains("artifacts openbao policies")
    );

    let bad = client(&server, Some("not-a-token"))
        .kv_read("secret", "b", None)
        .unwrap_err();
    assert!(matches!(bad, Error::BadToken { .. }), "{bad:?}");
    assert!(!format!("{bad} {bad:?}").contains("not-a-token"));

    let v1 = root.kv_read("kv1", "b", None).unwrap_err();
    assert!(
        matches!(&v1, Error::WrongMount { found, .. } if found.contains("version 1")),
        "{v1:?}"
    );
    let none = root.kv_list("nope", "b").unwrap_err();
    assert!(matches!(none, Error::WrongMount { .. }), "{none:?}");

    server.bao(&["operator", "seal"], None);
    let sealed = client(&server, Some(&server.root_token))
        .kv_read("secret", "b", None)
        .unwrap_err();
    assert!(matches!(sealed, Error::Sealed { .. }), "{sealed:?}");
    assert!(client(&server, None).health().unwrap().sealed);
}

#[test]
fn an_unreachable_server_is_retried_then_named() {
    let mut server = BaoServer::dev();
    let bao = client(&server, Some(&server.root_token));
    assert!(!bao.health().unwrap().sealed);
    server.kill();
    let before = bao.requests();
    let error = bao.kv_read("secret", "x", None).unwrap_err();
    assert!(
        matches!(error, Error::Unreachable { attempts: 2, .. }),
        "{error:?}"
    );
    assert_eq!(bao.requests() - before, 2, "tried exactly `attempts` times");
    assert!(error.to_string().contains(&server.address), "{error}");
}

#[test]
fn approle_login_gives_a_token_limited_to_its_policy() {
    let server = BaoServer::dev();
    server.bao(&["auth", "enable", "approle"], None);
    server.bao(
        &["policy", "write", "host-a", "-"],
        Some(b"path \"secret/data/a/*\" { capabilities = [\"read\"] }\n"),
    );
    server.bao(
        &["write", "auth/approle/role/host-a", "token_policies=host-a"],
        None,
    );
    let root = client(&server, Some(&server.root_token));
    root.kv_write("secret", "a/one", &data(&[("k", "a")]), None)
        .unwrap();
    root.kv_write("secret", "b/one", &data(&[("k", "b")]), None)
        .unwrap();
    let role_id = root
        .read("auth/approle/role/host-a/role-id")
        .unwrap()
        .unwrap();
    let role_id = role_id["data"]["role_id"].as_str().unwrap().to_owned();
    let secret_id = root
        .write("auth/approle/role/host-a/secret-id", &json!({}))
        .unwrap()
        .unwrap();
    let secret_id = secret_id["data"]["secret_id"].as_str().unwrap().to_owned();

    let anonymous = client(&server, None);
    let token = anonymous
        .approle_login("approle", &role_id, &secret_id)
        .unwrap();
    let host = anonymous.with_token(token);
    // The mount check needs the token's view of the mount only.
    assert_eq!(
        host.kv_read("secret", "a/one", None).unwrap().unwrap().data["k"],
        "a"
    );
    let other = host.kv_read("secret", "b/one", None).unwrap_err();
    assert!(matches!(other, Error::Forbidden { .. }), "{other:?}");
    let wrong = anonymous
        .approle_login("approle", &role_id, "wrong")
        .unwrap_err();
    assert!(matches!(wrong, Error::BadToken { .. }), "{wrong:?}");
}
