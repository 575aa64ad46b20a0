//! GraphQL over HTTP: the same resources and rules as REST.

use crate::common::{Backend, TestApp, send};
use crate::on_both_backends;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    graphql_creates_updates_and_deletes_extensions_with_rest_semantics,
    graphql_errors_carry_the_rest_codes,
);

const FIELDS: &str = "id number name type status callerIdName callerIdNumber voicemailEnabled \
    forwardingNumber forwardingEnabled forwardingRingTimeout registeredDevices createdAt updatedAt";

async fn graphql_creates_updates_and_deletes_extensions_with_rest_semantics(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .graphql(
            &format!("mutation($in: CreateExtensionInput!) {{ createExtension(input: $in) {{ extension {{ {FIELDS} }} sipCredentials {{ username password domain }} }} }}"),
            json!({"in": {"number": "101", "name": "Alice", "forwardingNumber": "102"}}),
        )
        .await;
    assert!(created["errors"].is_null(), "{created}");
    let payload = &created["data"]["createExtension"];
    let id = payload["extension"]["id"].as_str().unwrap().to_owned();
    assert_eq!(payload["extension"]["type"], "USER");
    assert_eq!(payload["extension"]["status"], "OFFLINE");
    assert_eq!(payload["extension"]["forwardingEnabled"], true);
    assert!(
        payload["sipCredentials"]["username"]
            .as_str()
            .unwrap()
            .starts_with("101_")
    );
    assert!(
        payload["sipCredentials"]["password"]
            .as_str()
            .unwrap()
            .len()
            >= 20
    );

    // REST sees the same extension with the same field values.
    let (_, rest) = app.get(&format!("/v1/pbx/extensions/{id}")).await;
    for field in [
        "id",
        "number",
        "name",
        "forwardingNumber",
        "forwardingRingTimeout",
        "createdAt",
    ] {
        assert_eq!(
            rest["extension"][field], payload["extension"][field],
            "{field}"
        );
    }

    // Partial update: absent untouched, null clears.
    let updated = app
        .graphql(
            "mutation($id: ID!) { updateExtension(id: $id, input: {name: \"Alice B\", forwardingNumber: null}) { name forwardingNumber forwardingEnabled forwardingRingTimeout } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        updated["data"]["updateExtension"],
        json!({"name": "Alice B", "forwardingNumber": null, "forwardingEnabled": false, "forwardingRingTimeout": 20})
    );

    let dnd = app
        .graphql(
            "mutation($id: ID!) { setPresence(id: $id, status: DND) { status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(dnd["data"]["setPresence"]["status"], "DND");

    let q = app
        .graphql(
            "query { extensions(status: DND) { number } byNumber: extension(number: \"101\") { name } extensionStats { total byType { user } byStatus { dnd offline } registeredDevices } }",
            json!({}),
        )
        .await;
    assert_eq!(
        q["data"],
        json!({
            "extensions": [{"number": "101"}],
            "byNumber": {"name": "Alice B"},
            "extensionStats": {"total": 1, "byType": {"user": 1}, "byStatus": {"dnd": 1, "offline": 0}, "registeredDevices": 0}
        })
    );

    let reset = app
        .graphql("mutation($id: ID!) { resetSipCredentials(id: $id) { sipCredentials { username password } } }", json!({"id": id}))
        .await;
    assert_ne!(
        reset["data"]["resetSipCredentials"]["sipCredentials"]["password"],
        payload["sipCredentials"]["password"]
    );

    let deleted = app
        .graphql(
            "mutation($id: ID!) { deleteExtension(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(deleted["data"]["deleteExtension"], id);
    let (status, _) = app.get(&format!("/v1/pbx/extensions/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn first_error(v: &Value) -> &Value {
    &v["errors"][0]
}

async fn graphql_errors_carry_the_rest_codes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_extension("101", "Alice").await;
    let create =
        "mutation($in: CreateExtensionInput!) { createExtension(input: $in) { extension { id } } }";

    let v = app
        .graphql(create, json!({"in": {"number": "12a", "name": "X"}}))
        .await;
    assert_eq!(first_error(&v)["extensions"]["code"], "validation_error");
    assert_eq!(first_error(&v)["extensions"]["field"], "number");

    let v = app
        .graphql(create, json!({"in": {"number": "101", "name": "X"}}))
        .await;
    assert_eq!(first_error(&v)["extensions"]["code"], "conflict");

    let v = app
        .graphql(
            "mutation { updateExtension(id: \"ext_nope\", input: {name: \"X\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(first_error(&v)["extensions"]["code"], "not_found");

    let v = app
        .graphql(
            "mutation { updateExtension(id: \"ext_nope\", input: {name: null}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(first_error(&v)["extensions"]["code"], "validation_error");

    let reader = app.api_key("default", Some("pbx:extensions:read"));
    let v = app
        .graphql_as(
            &reader,
            create,
            json!({"in": {"number": "150", "name": "X"}}),
        )
        .await;
    assert_eq!(first_error(&v)["extensions"]["code"], "forbidden");
    assert_eq!(
        first_error(&v)["message"],
        "Insufficient scope. Required: pbx:extensions:write"
    );

    // No credential: only introspection answers.
    let (_, v) = send(
        app.client
            .post(app.url("/graphql"))
            .json(&json!({"query": "{ extensions { id } }"})),
    )
    .await;
    assert_eq!(first_error(&v)["extensions"]["code"], "unauthorized");
    let (_, v) = send(
        app.client
            .post(app.url("/graphql"))
            .json(&json!({"query": "{ __schema { queryType { name } } }"})),
    )
    .await;
    assert_eq!(v["data"]["__schema"]["queryType"]["name"], "QueryRoot");

    // A bad credential is refused before anything runs.
    let (status, v) = send(
        app.request_as("do_live_nope", Method::POST, "/graphql")
            .json(&json!({"query": "{ __typename }"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(first_error(&v)["extensions"]["code"], "unauthorized");

    // Depth limit.
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(12),
        "}".repeat(12)
    );
    let v = app.graphql(&deep, json!({})).await;
    assert!(
        first_error(&v)["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{v}"
    );

    // Malformed request bodies.
    let (status, _) = send(
        app.request(Method::POST, "/graphql")
            .header("content-type", "application/json")
            .body("{"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, list) = app.get("/v1/pbx/extensions").await;
    assert_eq!(
        list["extensions"].as_array().unwrap().len(),
        1,
        "nothing half-written"
    );
}

#[tokio::test]
async fn playground_is_served_with_its_assets_and_no_cdn() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let resp = app.client.get(app.url("/playground")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(html.contains("/graphql/ws") && html.contains("'/graphql'"));
    assert!(!html.contains("https://"), "no external CDN");
    for src in html
        .split("src=\"")
        .skip(1)
        .chain(html.split("href=\"").skip(1))
    {
        let path = src.split('"').next().unwrap();
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
}
