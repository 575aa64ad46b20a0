//! The command line, first start, the health check and the schema file.

use crate::common::{Backend, TestApp, send};
use crate::on_both_backends;
use reqwest::{Method, StatusCode};

on_both_backends!(
    first_start_prints_an_admin_key_once_and_restart_keeps_it_working,
    healthz_answers_200_when_the_store_is_reachable,
    apikey_create_prints_only_the_key_with_the_requested_scopes,
);

async fn first_start_prints_an_admin_key_once_and_restart_keeps_it_working(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    assert!(app.key.starts_with("do_live_"));
    let (status, _) = app.get("/v1/pbx/extensions").await;
    assert_eq!(status, StatusCode::OK);

    let ready = app.restart().await;
    assert_eq!(
        ready.admin_key, None,
        "the key is printed only on first start: {:?}",
        ready.stdout
    );
    let (status, _) = app.get("/v1/pbx/extensions").await;
    assert_eq!(status, StatusCode::OK);
}

async fn healthz_answers_200_when_the_store_is_reachable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = send(app.client.request(Method::GET, app.url("/healthz"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(body["database"], expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_503_when_the_database_goes_away() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let name = app.db_name.clone().unwrap();
    let (status, _) = send(app.client.get(app.url("/healthz"))).await;
    assert_eq!(status, StatusCode::OK);
    crate::common::pg_rows(
        &crate::common::pg_admin_url(),
        &format!("DROP DATABASE {name} WITH (FORCE)"),
    )
    .await;
    let (status, body) = send(app.client.get(app.url("/healthz"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "unavailable");
}

async fn apikey_create_prints_only_the_key_with_the_requested_scopes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ok, out, _) = app.cli(&[
        "apikey",
        "create",
        "--pbx",
        "default",
        "--scopes",
        "pbx:extensions:read",
    ]);
    assert!(ok);
    let key = out.trim();
    assert_eq!(out.lines().count(), 1, "only the key on stdout: {out:?}");
    assert!(key.starts_with("do_live_") && key.len() == 8 + 44, "{key}");

    let (status, _) = send(app.request_as(key, Method::GET, "/v1/pbx/extensions")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(
        app.request_as(key, Method::POST, "/v1/pbx/extensions")
            .json(&serde_json::json!({"number": "200", "name": "X"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        serde_json::json!({"error": "forbidden", "message": "Insufficient scope. Required: pbx:extensions:write"})
    );

    let (ok, out, _) = app.cli(&["apikey", "create", "--pbx", "default", "--test"]);
    assert!(ok);
    assert!(out.trim().starts_with("do_test_"));

    let (ok, out, err) = app.cli(&[
        "apikey", "create", "--pbx", "default", "--scopes", "pbx:root",
    ]);
    assert!(!ok, "unknown scope must fail");
    assert!(out.is_empty());
    assert!(err.contains("pbx:root"), "{err}");

    let (ok, _, err) = app.cli(&["apikey", "create", "--pbx", "nope"]);
    assert!(!ok);
    assert!(err.contains("nope"), "{err}");
}

#[tokio::test]
async fn pbx_create_prints_the_new_id_and_refuses_duplicates() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (ok, out, _) = app.cli(&["pbx", "create", "Acme Corp"]);
    assert!(ok);
    assert!(
        out.trim().starts_with("pbx_") && out.lines().count() == 1,
        "{out}"
    );
    let (ok, _, err) = app.cli(&["pbx", "create", "Acme Corp"]);
    assert!(!ok);
    assert!(err.contains("already exists"), "{err}");
}

#[tokio::test]
async fn pbx_create_refuses_names_that_spoof_or_show_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (name, why) in [
        ("\u{202E}proC emcA", "bidirectional"),
        ("\u{200B}\u{200D}", "visible"),
        ("Acme\u{2028}Corp", "separators"),
    ] {
        let (ok, out, err) = app.cli(&["pbx", "create", name]);
        assert!(!ok, "{name:?} was accepted: {out}");
        assert!(err.contains(why), "{name:?}: {err}");
    }
}

#[test]
fn schema_file_matches_the_generated_schema() {
    let out = std::process::Command::new(crate::common::BIN)
        .arg("schema")
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
            .expect("schema.graphql at the repository root");
    assert!(
        generated == checked_in,
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql`"
    );
}

#[tokio::test]
async fn migrate_applies_migrations_and_exits() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (ok, _, err) = app.cli(&["migrate"]);
    assert!(ok, "{err}");
    assert!(err.contains("migrations applied"), "{err}");
}
