//! GraphQL over HTTP: the same resources and rules as REST.

use crate::common::ws::{GqlWs, Incoming};
use crate::common::{Backend, TestApp, send};
use crate::on_both_backends;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

on_both_backends!(
    graphql_creates_updates_and_deletes_extensions_with_rest_semantics,
    graphql_errors_carry_the_rest_codes,
    graphql_without_a_valid_credential_is_refused_before_its_body_is_parsed,
    the_most_expensive_documents_the_limits_allow_still_run,
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

    // Depth limit: 12, and 15 for introspection alone (GraphiQL's query nests 15 deep).
    let introspection_14_deep = format!(
        "__schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }}",
        "ofType { ".repeat(9),
        "}".repeat(9)
    );
    let v = app
        .graphql(&format!("{{ {introspection_14_deep} }}"), json!({}))
        .await;
    assert!(v["errors"].is_null(), "{v}");
    let v = app
        .graphql(
            &format!("{{ extensions {{ id }} {introspection_14_deep} }}"),
            json!({}),
        )
        .await;
    assert_eq!(
        first_error(&v)["message"],
        "Query is nested too deep.",
        "{v}"
    );
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

async fn graphql_without_a_valid_credential_is_refused_before_its_body_is_parsed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let anonymous = || app.client.post(app.url("/graphql"));
    let refused = |(status, v): (StatusCode, Value)| {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
        assert_eq!(first_error(&v)["extensions"]["code"], "unauthorized", "{v}");
        assert_eq!(v["data"], Value::Null, "{v}");
    };
    // Introspection too: only callers with a credential see the schema.
    refused(send(anonymous().json(&json!({"query": "{ __schema { queryType { name } } }"}))).await);
    refused(send(anonymous().json(&json!({"query": fragment_bomb(25)}))).await);
    // Not even read: a malformed body is not the answer.
    refused(
        send(
            anonymous()
                .header("content-type", "application/json")
                .body("{"),
        )
        .await,
    );
    refused(
        send(
            app.request_as("do_live_nope", Method::POST, "/graphql")
                .json(&json!({"query": "{ __typename }"})),
        )
        .await,
    );

    // With one, the whole introspection query GraphiQL sends answers.
    let v = app.graphql(INTROSPECTION, json!({})).await;
    assert!(v["errors"].is_null(), "{v}");
    assert_eq!(v["data"]["__schema"]["queryType"]["name"], "QueryRoot");
    assert!(v["data"]["__schema"]["types"].as_array().unwrap().len() > 20);
}

/// `fragment G1 { ...G0 ...G0 }` … `{ ...G25 }`: 1.3 KB that expand to 2^25 fields.
fn fragment_bomb(levels: usize) -> String {
    let mut doc = format!("query {{ ...G{levels} }}\nfragment G0 on QueryRoot {{ __typename }}\n");
    for level in 1..=levels {
        let below = level - 1;
        doc.push_str(&format!(
            "fragment G{level} on QueryRoot {{ ...G{below} ...G{below} }}\n"
        ));
    }
    doc
}

#[tokio::test]
async fn a_fragment_bomb_is_refused_over_http_and_websocket_and_the_server_keeps_answering() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let bomb = fragment_bomb(25);
    assert!(bomb.len() < 1500);
    let too_large = |v: &Value| {
        assert_eq!(
            first_error(v)["locations"],
            Value::Null,
            "the whole document: {v}"
        );
        assert_eq!(
            first_error(v)["extensions"]["code"],
            "query_too_large",
            "{v}"
        );
        assert!(
            first_error(v)["message"]
                .as_str()
                .unwrap()
                .contains("more than 5000 selections"),
            "{v}"
        );
    };

    // Before the fix this ran for minutes; the guard only keeps a failure short.
    let (status, v) = send(
        app.request(Method::POST, "/graphql")
            .json(&json!({"query": bomb}))
            .timeout(Duration::from_secs(60)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["data"], Value::Null);
    too_large(&v);

    let mut ws = GqlWs::connect(&app.base, "graphql-transport-ws", json!({"token": app.key})).await;
    ws.subscribe("bomb", &bomb, json!({})).await;
    match ws.next(Duration::from_secs(60)).await {
        Incoming::Json(v) => {
            assert_eq!(
                (v["id"].as_str(), v["type"].as_str()),
                (Some("bomb"), Some("next")),
                "{v}"
            );
            too_large(&v["payload"]);
        }
        other => panic!("expected the error, got {other:?}"),
    }
    match ws.next(Duration::from_secs(5)).await {
        Incoming::Json(v) => assert_eq!(v, json!({"id": "bomb", "type": "complete"})),
        other => panic!("expected complete, got {other:?}"),
    }

    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    // The socket and the rest of the API carry on.
    ws.subscribe("ok", "{ extensions { number } }", json!({}))
        .await;
    assert_eq!(
        ws.next_data("ok", Duration::from_secs(5)).await["extensions"],
        json!([])
    );
}

/// The most expensive document the depth (12) and complexity (1000) limits let through
/// for this schema: each alias lists every extension and, per extension, reads its
/// active calls and its devices (`__typename` adds no complexity), 333 times.
fn most_expensive_document(aliases: usize) -> String {
    let mut doc = String::from("query Heaviest {");
    for i in 0..aliases {
        doc.push_str(&format!(" a{i}: extensions {{ ...Heavy }}"));
    }
    doc.push_str(
        " }\nfragment Heavy on Extension { activeCalls { __typename } devices { __typename } }",
    );
    doc
}

async fn the_most_expensive_documents_the_limits_allow_still_run(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_extension("101", "Alice").await;
    let v = app.graphql(&most_expensive_document(333), json!({})).await;
    assert!(v["errors"].is_null(), "{v}");
    assert_eq!(v["data"]["a332"][0]["activeCalls"], json!([]));
    assert_eq!(v["data"]["a332"][0]["devices"], json!([]));

    // One alias more is over the complexity limit.
    let v = app.graphql(&most_expensive_document(334), json!({})).await;
    assert_eq!(first_error(&v)["message"], "Query is too complex.", "{v}");
}

/// graphql-js 16 `getIntrospectionQuery()`, as GraphiQL 3.8 sends it on load: 15 levels
/// deep, past the depth limit of 12.
const INTROSPECTION: &str = r"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description args { ...InputValue } type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description type { ...TypeRef } defaultValue
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name } } } } } } } } }
}";
