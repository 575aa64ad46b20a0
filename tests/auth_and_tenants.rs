//! API keys, JWTs, scopes and tenant isolation.

use crate::common::{Backend, TestApp, send};
use crate::on_both_backends;
use reqwest::{Method, StatusCode};
use serde_json::json;

on_both_backends!(
    requests_without_a_valid_key_get_401_with_the_documented_body,
    both_header_forms_and_jwts_are_accepted,
    read_only_keys_get_403_naming_the_missing_scope,
    no_tenant_sees_or_changes_another_tenants_extensions,
);

async fn requests_without_a_valid_key_get_401_with_the_documented_body(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let expected = json!({"error": "unauthorized", "message": "Invalid or missing API key"});
    let bad_keys = [
        "do_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        format!("{}x", &app.key[..app.key.len() - 1]),
        "do_live_short".to_owned(),
        "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl".to_owned(),
    ];
    let (status, body) = send(app.client.get(app.url("/v1/pbx/extensions"))).await;
    assert_eq!((status, &body), (StatusCode::UNAUTHORIZED, &expected));
    for key in bad_keys {
        let (status, body) = send(app.request_as(&key, Method::GET, "/v1/pbx/extensions")).await;
        assert_eq!(
            (status, &body),
            (StatusCode::UNAUTHORIZED, &expected),
            "{key}"
        );
    }
    let (status, _) = send(
        app.client
            .get(app.url("/v1/pbx/extensions"))
            .header("Authorization", format!("Basic {}", app.key)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        !app.server_log().contains(&app.key),
        "keys never appear in logs"
    );
}

async fn both_header_forms_and_jwts_are_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, _) = send(
        app.client
            .get(app.url("/v1/pbx/extensions"))
            .header("X-API-Key", &app.key),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = app.post("/v1/auth/token", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(token.split('.').count(), 3);
    let expires = body["expiresAt"].as_str().unwrap();
    assert!(expires.ends_with('Z'));

    let (status, _) = send(app.request_as(&token, Method::GET, "/v1/pbx/extensions")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(
        app.request_as(&token, Method::POST, "/v1/pbx/extensions")
            .json(&json!({"number": "101", "name": "A"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // A token renews itself while its key lives.
    let (status, renewed) = send(app.request_as(&token, Method::POST, "/v1/auth/token")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(renewed["token"].is_string());

    // A tampered token is refused.
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let (status, _) = send(app.request_as(&tampered, Method::GET, "/v1/pbx/extensions")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn read_only_keys_get_403_naming_the_missing_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ext = app.create_extension("101", "Alice").await;
    let id = ext["id"].as_str().unwrap();
    let reader = app.api_key("default", Some("pbx:extensions:read"));
    let phones_only = app.api_key("default", Some("pbx:phones:read"));
    let forbidden = json!({"error": "forbidden", "message": "Insufficient scope. Required: pbx:extensions:write"});
    for (method, path) in [
        (Method::POST, "/v1/pbx/extensions".to_owned()),
        (Method::PATCH, format!("/v1/pbx/extensions/{id}")),
        (Method::DELETE, format!("/v1/pbx/extensions/{id}")),
        (
            Method::POST,
            format!("/v1/pbx/extensions/{id}/sip-credentials"),
        ),
    ] {
        let (status, body) = send(
            app.request_as(&reader, method.clone(), &path)
                .json(&json!({"name": "Z", "number": "109"})),
        )
        .await;
        assert_eq!(
            (status, &body),
            (StatusCode::FORBIDDEN, &forbidden),
            "{method} {path}"
        );
    }
    let (status, body) =
        send(app.request_as(&phones_only, Method::GET, "/v1/pbx/extensions")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        "Insufficient scope. Required: pbx:extensions:read"
    );
    // A token carries the key's scopes, no more.
    let (_, tok) = send(app.request_as(&reader, Method::POST, "/v1/auth/token")).await;
    let token = tok["token"].as_str().unwrap();
    let (status, _) =
        send(app.request_as(token, Method::DELETE, &format!("/v1/pbx/extensions/{id}"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, list) = app.get("/v1/pbx/extensions").await;
    assert_eq!(list["extensions"][0]["name"], "Alice", "nothing changed");
}

async fn no_tenant_sees_or_changes_another_tenants_extensions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mine = app.create_extension("101", "Alice").await;
    let id = mine["id"].as_str().unwrap();
    let (_, acme) = app.tenant("Acme");

    let (_, list) = send(app.request_as(&acme, Method::GET, "/v1/pbx/extensions")).await;
    assert_eq!(list, json!({"extensions": []}));
    let (_, stats) = send(app.request_as(&acme, Method::GET, "/v1/pbx/extensions/stats")).await;
    assert_eq!(stats["stats"]["total"], 0);
    let path = format!("/v1/pbx/extensions/{id}");
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let (status, body) = send(
            app.request_as(&acme, method.clone(), &path)
                .json(&json!({"name": "Hacked"})),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}: {body}");
    }
    let (status, _) =
        send(app.request_as(&acme, Method::POST, &format!("{path}/sip-credentials"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let gql = app
        .graphql_as(
            &acme,
            "query($id: ID!) { extension(id: $id) { name } extensions { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(gql["data"], json!({"extension": null, "extensions": []}));
    let gql = app
        .graphql_as(
            &acme,
            "mutation($id: ID!) { setPresence(id: $id, status: DND) { status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(gql["errors"][0]["extensions"]["code"], "not_found");

    let (_, after) = app.get(&path).await;
    assert_eq!(after["extension"]["name"], "Alice");
    assert_eq!(after["extension"]["status"], "offline");
}
