//! Live presence over a real GraphQL websocket client.

use crate::common::ws::{GqlWs, Incoming};
use crate::common::{Backend, TestApp, send};
use crate::on_both_backends;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

on_both_backends!(
    presence_subscription_sends_a_snapshot_then_each_change_in_order,
    extension_changes_are_streamed,
    a_tenants_sequence_is_not_moved_by_another_tenants_activity,
);

const PRESENCE: &str = "subscription($n: [String!]) { presenceChanged(numbers: $n) { extension { id number name } status previousStatus cause { kind description } at sequence } }";
const WAIT: Duration = Duration::from_secs(5);

async fn presence_subscription_sends_a_snapshot_then_each_change_in_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.create_extension("101", "Alice").await;
    app.create_extension("102", "Bob").await;
    let id = a["id"].as_str().unwrap();

    let mut ws = GqlWs::connect(
        &app.base,
        "graphql-transport-ws",
        json!({"authorization": format!("Bearer {}", app.key)}),
    )
    .await;
    ws.subscribe("1", PRESENCE, json!({"n": ["101"]})).await;
    let snap = ws.next_data("1", WAIT).await["presenceChanged"].clone();
    assert_eq!(snap["extension"]["number"], "101");
    assert_eq!(snap["extension"]["name"], "Alice");
    assert_eq!(snap["status"], "OFFLINE");
    assert_eq!(snap["previousStatus"], serde_json::Value::Null);
    assert_eq!(snap["cause"]["kind"], "SNAPSHOT");
    let snap_seq = snap["sequence"].as_u64().unwrap();

    // A change to an unwatched extension is not sent; a watched one is.
    let b_id = app.get("/v1/pbx/extensions").await.1["extensions"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.patch(
        &format!("/v1/pbx/extensions/{b_id}"),
        json!({"presence": "dnd"}),
    )
    .await;
    app.patch(
        &format!("/v1/pbx/extensions/{id}"),
        json!({"presence": "dnd"}),
    )
    .await;
    let ev = ws.next_data("1", WAIT).await["presenceChanged"].clone();
    assert_eq!(ev["extension"]["id"], id);
    assert_eq!(ev["status"], "DND");
    assert_eq!(ev["previousStatus"], "OFFLINE");
    assert_eq!(ev["cause"]["kind"], "MANUAL");
    assert_eq!(ev["cause"]["description"], "presence set to dnd");
    let seq1 = ev["sequence"].as_u64().unwrap();
    assert!(seq1 > snap_seq);

    let gql = app
        .graphql(
            "mutation($id: ID!) { setPresence(id: $id, status: AVAILABLE) { status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(gql["data"]["setPresence"]["status"], "OFFLINE");
    let ev = ws.next_data("1", WAIT).await["presenceChanged"].clone();
    assert_eq!(
        (ev["previousStatus"].as_str(), ev["status"].as_str()),
        (Some("DND"), Some("OFFLINE"))
    );
    assert!(ev["sequence"].as_u64().unwrap() > seq1);

    // A change that leaves the derived status alone sends nothing.
    app.patch(
        &format!("/v1/pbx/extensions/{id}"),
        json!({"presence": "away"}),
    )
    .await;
    assert!(ws.is_quiet(Duration::from_millis(400)).await);
}

async fn extension_changes_are_streamed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut ws = GqlWs::connect(&app.base, "graphql-transport-ws", json!({"token": app.key})).await;
    ws.subscribe(
        "e",
        "subscription { extensionChanged { kind extension { number name } sequence } }",
        json!({}),
    )
    .await;
    // Give the subscription a moment to attach before the change.
    assert!(ws.is_quiet(Duration::from_millis(200)).await);
    let ext = app.create_extension("101", "Alice").await;
    let ev = ws.next_data("e", WAIT).await["extensionChanged"].clone();
    assert_eq!(ev["kind"], "CREATED");
    assert_eq!(ev["extension"]["number"], "101");
    app.patch(
        &format!("/v1/pbx/extensions/{}", ext["id"].as_str().unwrap()),
        json!({"name": "Alice B"}),
    )
    .await;
    let ev = ws.next_data("e", WAIT).await["extensionChanged"].clone();
    assert_eq!(
        (ev["kind"].as_str(), ev["extension"]["name"].as_str()),
        (Some("UPDATED"), Some("Alice B"))
    );
    app.delete(&format!(
        "/v1/pbx/extensions/{}",
        ext["id"].as_str().unwrap()
    ))
    .await;
    let ev = ws.next_data("e", WAIT).await["extensionChanged"].clone();
    assert_eq!(ev["kind"], "DELETED");

    // Another tenant's changes never arrive.
    let (_, acme) = app.tenant("Acme");
    crate::common::send(
        app.request_as(&acme, reqwest::Method::POST, "/v1/pbx/extensions")
            .json(&json!({"number": "555", "name": "Other"})),
    )
    .await;
    assert!(ws.is_quiet(Duration::from_millis(400)).await);
}

async fn a_tenants_sequence_is_not_moved_by_another_tenants_activity(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, quiet_key) = app.tenant("Quiet");
    let quiet_ext = send(
        app.request_as(&quiet_key, Method::POST, "/v1/pbx/extensions")
            .json(&json!({"number": "201", "name": "Quiet"})),
    )
    .await
    .1["extension"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let busy = app.create_extension("101", "Busy").await;
    let busy_path = format!("/v1/pbx/extensions/{}", busy["id"].as_str().unwrap());
    let quiet_path = format!("/v1/pbx/extensions/{quiet_ext}");
    let set_quiet = |presence: &'static str| {
        send(
            app.request_as(&quiet_key, Method::PATCH, &quiet_path)
                .json(&json!({"presence": presence})),
        )
    };

    let mut ws = GqlWs::connect(
        &app.base,
        "graphql-transport-ws",
        json!({"token": quiet_key}),
    )
    .await;
    ws.subscribe("q", PRESENCE, json!({"n": null})).await;
    let snap = ws.next_data("q", WAIT).await["presenceChanged"].clone();
    assert_eq!(snap["cause"]["kind"], "SNAPSHOT");
    set_quiet("dnd").await;
    let first = ws.next_data("q", WAIT).await["presenceChanged"]["sequence"]
        .as_u64()
        .unwrap();

    // The default tenant is busy: forty presence changes and a new extension.
    for i in 0..40 {
        let presence = if i % 2 == 0 { "dnd" } else { "available" };
        let (status, _) = app.patch(&busy_path, json!({"presence": presence})).await;
        assert_eq!(status, StatusCode::OK);
    }
    app.create_extension("102", "Also busy").await;

    set_quiet("available").await;
    let second = ws.next_data("q", WAIT).await["presenceChanged"].clone();
    assert_eq!(second["status"], "OFFLINE");
    assert_eq!(
        second["sequence"].as_u64().unwrap(),
        first + 1,
        "nothing happened in this PBX between its two changes"
    );

    // A new subscription of the quiet tenant starts from the quiet tenant's position.
    let mut again = GqlWs::connect(
        &app.base,
        "graphql-transport-ws",
        json!({"token": quiet_key}),
    )
    .await;
    again.subscribe("a", PRESENCE, json!({"n": null})).await;
    let snap = again.next_data("a", WAIT).await["presenceChanged"].clone();
    assert_eq!(snap["sequence"].as_u64().unwrap(), first + 1);
}

#[tokio::test]
async fn legacy_graphql_ws_protocol_and_jwt_in_init_payload_work() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let a = app.create_extension("101", "Alice").await;
    let (_, tok) = app.post("/v1/auth/token", json!({})).await;
    let token = tok["token"].as_str().unwrap();
    let mut ws = GqlWs::connect(
        &app.base,
        "graphql-ws",
        json!({"authorization": format!("Bearer {token}")}),
    )
    .await;
    ws.subscribe("7", PRESENCE, json!({"n": null})).await;
    let snap = ws.next_data("7", WAIT).await;
    assert_eq!(snap["presenceChanged"]["cause"]["kind"], "SNAPSHOT");
    app.patch(
        &format!("/v1/pbx/extensions/{}", a["id"].as_str().unwrap()),
        json!({"presence": "dnd"}),
    )
    .await;
    let ev = ws.next_data("7", WAIT).await;
    assert_eq!(ev["presenceChanged"]["status"], "DND");
}

#[tokio::test]
async fn websocket_without_init_is_closed_within_five_seconds() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut ws = GqlWs::open(&app.base, "graphql-transport-ws").await;
    let started = std::time::Instant::now();
    match ws.next(Duration::from_secs(7)).await {
        Incoming::Closed(Some((code, _))) => assert_eq!(code, 4408),
        other => panic!("expected close 4408, got {other:?}"),
    }
    assert!(started.elapsed() <= Duration::from_millis(5500));
}

#[tokio::test]
async fn websocket_with_a_bad_token_is_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for payload in [json!({"authorization": "Bearer do_live_nope"}), json!({})] {
        let mut ws = GqlWs::open(&app.base, "graphql-transport-ws").await;
        ws.send(json!({"type": "connection_init", "payload": payload}))
            .await;
        match ws.next(Duration::from_secs(5)).await {
            Incoming::Closed(Some((code, reason))) => {
                assert_ne!(code, 1000);
                assert!(reason.contains("unauthorized"), "{reason}");
            }
            other => panic!("expected a close, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn subscriptions_need_the_read_scope() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let phones = app.api_key("default", Some("pbx:phones:read"));
    let mut ws = GqlWs::connect(&app.base, "graphql-transport-ws", json!({"token": phones})).await;
    ws.subscribe("1", PRESENCE, json!({})).await;
    match ws.next(WAIT).await {
        // async-graphql reports resolver errors as a `next` carrying `errors`.
        Incoming::Json(v) => {
            assert_eq!(v["type"], "next", "{v}");
            assert_eq!(v["payload"]["data"], serde_json::Value::Null);
            assert_eq!(v["payload"]["errors"][0]["extensions"]["code"], "forbidden");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn websocket_messages_over_64_kib_close_the_socket_and_smaller_ones_work() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.account("101", "Alice").await;
    let query = |padding: usize| {
        format!(
            "# {}\nsubscription {{ presenceChanged(numbers: [\"101\"]) {{ extension {{ number }} status }} }}",
            "x".repeat(padding)
        )
    };

    // Just under the cap: an ordinary subscription.
    let mut ws = GqlWs::connect(&app.base, "graphql-transport-ws", json!({"token": app.key})).await;
    ws.subscribe("small", &query(60 * 1024), json!({})).await;
    let data = ws.next_data("small", Duration::from_secs(5)).await;
    assert_eq!(data["presenceChanged"]["extension"]["number"], "101");

    // Over it: the socket is closed, the server carries on.
    let mut big =
        GqlWs::connect(&app.base, "graphql-transport-ws", json!({"token": app.key})).await;
    big.subscribe("big", &query(70 * 1024), json!({})).await;
    match big.next(Duration::from_secs(5)).await {
        Incoming::Closed(_) => {}
        other => panic!("expected the socket closed, got {other:?}"),
    }
    let (code, _) = app.get("/healthz").await;
    assert_eq!(code, 200);
    let mut again =
        GqlWs::connect(&app.base, "graphql-transport-ws", json!({"token": app.key})).await;
    again.subscribe("again", &query(0), json!({})).await;
    let data = again.next_data("again", Duration::from_secs(5)).await;
    assert_eq!(data["presenceChanged"]["status"], "OFFLINE");
}

/// graphql-transport-ws (graphql-ws's PROTOCOL.md) names a close code for each way a
/// client can get the protocol wrong; the reference client acts on them.
#[tokio::test]
async fn graphql_transport_ws_closes_with_the_protocol_codes() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.create_extension("101", "Alice").await;
    let open = || GqlWs::open(&app.base, "graphql-transport-ws");
    let init = |payload: serde_json::Value| json!({"type": "connection_init", "payload": payload});

    // 4403 Forbidden: a refused or a missing credential.
    for payload in [json!({"authorization": "Bearer do_live_nope"}), json!({})] {
        let mut ws = open().await;
        ws.send(init(payload)).await;
        let (code, reason) = ws.closed_with(WAIT).await;
        assert_eq!(code, 4403, "{reason}");
        assert!(reason.contains("unauthorized"), "{reason}");
    }

    // 4401 Unauthorized: subscribe before the connection is acknowledged.
    let mut ws = open().await;
    ws.subscribe("1", PRESENCE, json!({})).await;
    assert_eq!(ws.closed_with(WAIT).await.0, 4401);

    // 4400 Bad request: not JSON, an unknown type, a message of the other protocol, a
    // subscribe without an id, an init payload that is not an object.
    for bad in [
        "{not json".to_owned(),
        json!({"type": "hello"}).to_string(),
        json!({"id": "1", "type": "start", "payload": {"query": "{ __typename }"}}).to_string(),
        json!({"type": "subscribe", "payload": {"query": "{ __typename }"}}).to_string(),
        json!({"type": "connection_init", "payload": "token"}).to_string(),
    ] {
        let mut ws = open().await;
        ws.send_text(&bad).await;
        let (code, reason) = ws.closed_with(WAIT).await;
        assert_eq!(code, 4400, "{bad}: {reason}");
    }
    // The same after the acknowledgement.
    let mut ws = GqlWs::connect(&app.base, "graphql-transport-ws", json!({"token": app.key})).await;
    ws.send_text("[]").await;
    assert_eq!(ws.closed_with(WAIT).await.0, 4400);

    // 4429 Too many initialisation requests.
    let mut ws = GqlWs::connect(&app.base, "graphql-transport-ws", json!({"token": app.key})).await;
    ws.send(init(json!({"token": app.key}))).await;
    assert_eq!(ws.closed_with(WAIT).await.0, 4429);

    // 4409 Subscriber for <id> already exists: the running one is not replaced.
    let mut ws = GqlWs::connect(&app.base, "graphql-transport-ws", json!({"token": app.key})).await;
    ws.subscribe("1", PRESENCE, json!({"n": ["101"]})).await;
    ws.next_data("1", WAIT).await;
    ws.subscribe("1", PRESENCE, json!({"n": ["101"]})).await;
    assert_eq!(
        ws.closed_with(WAIT).await,
        (4409, "Subscriber for 1 already exists".to_owned())
    );

    // Pings are answered before and after the acknowledgement.
    let mut ws = open().await;
    ws.send(json!({"type": "ping"})).await;
    match ws.next(WAIT).await {
        Incoming::Json(v) => assert_eq!(v["type"], "pong", "{v}"),
        other => panic!("expected a pong, got {other:?}"),
    }
}

/// The legacy protocol names no codes: a refused init gets `connection_error`, then the
/// same close as graphql-transport-ws.
#[tokio::test]
async fn legacy_graphql_ws_refuses_a_bad_credential_with_connection_error() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut ws = GqlWs::open(&app.base, "graphql-ws").await;
    ws.send(json!({"type": "connection_init", "payload": {"token": "do_live_nope"}}))
        .await;
    match ws.next(WAIT).await {
        Incoming::Json(v) => {
            assert_eq!(v["type"], "connection_error", "{v}");
            assert!(
                v["payload"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("unauthorized")
            );
        }
        other => panic!("expected connection_error, got {other:?}"),
    }
    assert_eq!(ws.closed_with(WAIT).await.0, 4403);
}

/// `complete` from the client stops that operation (and frees its id); an operation
/// that finishes by itself ends with `complete` from the server.
#[tokio::test]
async fn complete_stops_an_operation_and_a_finished_one_sends_complete() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.create_extension("101", "Alice").await;
    let mut ws = GqlWs::connect(&app.base, "graphql-transport-ws", json!({"token": app.key})).await;
    ws.subscribe("1", PRESENCE, json!({"n": ["101"]})).await;
    assert_eq!(
        ws.next_data("1", WAIT).await["presenceChanged"]["cause"]["kind"],
        "SNAPSHOT"
    );
    ws.send(json!({"id": "1", "type": "complete"})).await;
    // The id is free again (a running one would close the socket with 4409), and the
    // server does not answer the client's complete: the next message is the snapshot.
    ws.subscribe("1", PRESENCE, json!({"n": ["101"]})).await;
    match ws.next(WAIT).await {
        Incoming::Json(v) => {
            assert_eq!(
                (v["id"].as_str(), v["type"].as_str()),
                (Some("1"), Some("next")),
                "{v}"
            );
            assert_eq!(
                v["payload"]["data"]["presenceChanged"]["cause"]["kind"],
                "SNAPSHOT"
            );
        }
        other => panic!("expected the new subscription's snapshot, got {other:?}"),
    }
    // One change: one event, for the one live subscription.
    app.patch(
        &format!("/v1/pbx/extensions/{}", alice["id"].as_str().unwrap()),
        json!({"presence": "dnd"}),
    )
    .await;
    assert_eq!(
        ws.next_data("1", WAIT).await["presenceChanged"]["status"],
        "DND"
    );
    assert!(
        ws.is_quiet(Duration::from_millis(300)).await,
        "the stopped one is silent"
    );

    // A query over the socket: its result, then complete.
    ws.subscribe("q", "{ extensions { number } }", json!({}))
        .await;
    let data = ws.next_data("q", WAIT).await;
    assert_eq!(data["extensions"][0]["number"], "101");
    match ws.next(WAIT).await {
        Incoming::Json(v) => assert_eq!(v, json!({"id": "q", "type": "complete"})),
        other => panic!("expected complete, got {other:?}"),
    }
}
