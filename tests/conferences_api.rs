//! The conference API against the real server: settings (PIN, room size) and their
//! validation, rooms listed and read per tenant and scope, mutes and kicks carried out
//! on real callers (raw SIP + RTP, what they hear checked with Goertzel energies), the
//! `conferenceEvents` feed over a real websocket, and the room's extension status.

use crate::common::rtp::{Impairment, RtpPhone, tone_share};
use crate::common::sip_raw::status;
use crate::common::ws::GqlWs;
use crate::common::{Backend, TestApp, eventually, send};
use crate::conference::{ABSENT, HEARD, accounts, conference, shares};
use crate::on_both_backends;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use switchboard::media::codec::Codec;

on_both_backends!(
    conference_settings_are_validated_and_the_pin_is_never_shown,
    rooms_are_tenant_scoped_and_mutes_need_the_write_scope,
    conference_events_and_room_status_follow_callers_over_a_websocket,
    the_migration_gives_rooms_their_settings_and_clears_their_manual_presence,
);

const WAIT: Duration = Duration::from_secs(5);
/// A tone this strong a share of one 20 ms packet counts as in it (a tone alone measures
/// about 0.5, one of two about 0.25, an absent one under 0.01).
const FRAME_HEARD: f64 = 0.1;
/// How soon after the API answers a mute the muted caller must be gone from the mix:
/// the room applies it on its next 20 ms tick; this leaves room for a loaded machine.
const MUTE_WITHIN: Duration = Duration::from_millis(100);

/// The room `key` (number or id) as REST shows it, once `ready` holds for it.
async fn room_when(app: &TestApp, key: &str, ready: impl Fn(&Value) -> bool) -> Value {
    eventually(WAIT, || async {
        let (code, body) = app.get(&format!("/v1/pbx/conferences/{key}")).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let room = body["conference"].clone();
        ready(&room).then_some(room)
    })
    .await
}

fn count_is(n: u64) -> impl Fn(&Value) -> bool {
    move |room| room["participantCount"].as_u64() == Some(n)
}

/// A caller dials the room and enters `pin` (then `#`).
async fn call_with_pin(
    app: &TestApp,
    account: &crate::common::sip::Account,
    pin: &str,
    tag: &str,
) -> RtpPhone {
    let phone = RtpPhone::call(app, account, "800", tag, Codec::Pcmu)
        .await
        .unwrap_or_else(|resp| panic!("{tag} refused: {resp}"));
    phone.send_digits(&format!("{pin}#"), 1000).await;
    phone
}

async fn conference_settings_are_validated_and_the_pin_is_never_shown(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_extension("101", "Alice").await;
    let user_path = format!("/v1/pbx/extensions/{}", user["id"].as_str().unwrap());
    let cases = [
        (json!({"conferencePin": "1234"}), "conferencePin"),
        (
            json!({"type": "user", "maxParticipants": 10}),
            "maxParticipants",
        ),
        (
            json!({"type": "conference", "conferencePin": "12"}),
            "conferencePin",
        ),
        (
            json!({"type": "conference", "conferencePin": "123456789"}),
            "conferencePin",
        ),
        (
            json!({"type": "conference", "conferencePin": "12a4"}),
            "conferencePin",
        ),
        (
            json!({"type": "conference", "conferencePin": 1234}),
            "conferencePin",
        ),
        (
            json!({"type": "conference", "maxParticipants": 0}),
            "maxParticipants",
        ),
        (
            json!({"type": "conference", "maxParticipants": 501}),
            "maxParticipants",
        ),
        (
            json!({"type": "conference", "maxParticipants": 2.5}),
            "maxParticipants",
        ),
        (json!({"type": "conference", "presence": "dnd"}), "presence"),
        (
            json!({"type": "conference", "conferencePinSet": true}),
            "conferencePinSet",
        ),
    ];
    for (extra, field) in cases {
        let mut body = json!({"number": "150", "name": "Room"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (code, err) = app.post("/v1/pbx/extensions", body.clone()).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        assert_eq!(
            (err["error"].as_str(), err["field"].as_str()),
            (Some("validation_error"), Some(field)),
            "{body}: {err}"
        );
        assert!(
            err["message"].as_str().unwrap().starts_with(field),
            "the message names the field: {err}"
        );
    }
    let (_, list) = app.get("/v1/pbx/extensions").await;
    assert_eq!(list["extensions"].as_array().unwrap().len(), 1, "{list}");

    // A conference with a PIN: the PIN is stored, never shown.
    let (code, body) = app
        .post(
            "/v1/pbx/extensions",
            json!({"number": "800", "name": "Board", "type": "conference",
                   "conferencePin": "0815", "maxParticipants": 10}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let room = body["extension"].clone();
    let room_path = format!("/v1/pbx/extensions/{}", room["id"].as_str().unwrap());
    assert!(!body.to_string().contains("0815"), "{body}");
    assert!(room.get("conferencePin").is_none(), "{room}");
    assert_eq!(
        (
            room["conferencePinSet"].as_bool(),
            room["maxParticipants"].as_u64(),
            room["status"].as_str()
        ),
        (Some(true), Some(10), Some("available"))
    );
    let (_, read) = app.get(&room_path).await;
    assert_eq!(read["extension"]["conferencePinSet"], true, "{read}");
    assert_eq!(read["extension"]["maxParticipants"], 10, "{read}");
    assert!(!read.to_string().contains("0815"), "{read}");
    let (_, listed) = app.get("/v1/pbx/extensions").await;
    assert!(!listed.to_string().contains("0815"), "{listed}");
    let (_, alice) = app.get(&user_path).await;
    assert_eq!(
        (
            &alice["extension"]["conferencePinSet"],
            &alice["extension"]["maxParticipants"]
        ),
        (&Value::Null, &Value::Null),
        "a user extension has no conference settings: {alice}"
    );

    // Updates follow the same rules, against the stored type.
    for (path, body, field) in [
        (
            &user_path,
            json!({"conferencePin": "1234"}),
            "conferencePin",
        ),
        (&user_path, json!({"maxParticipants": 5}), "maxParticipants"),
        (&room_path, json!({"presence": "away"}), "presence"),
        (&room_path, json!({"conferencePin": "1"}), "conferencePin"),
        (
            &room_path,
            json!({"maxParticipants": -1}),
            "maxParticipants",
        ),
    ] {
        let (code, err) = app.patch(path, body.clone()).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        assert_eq!(err["field"], field, "{body}: {err}");
    }
    let (code, body) = app
        .patch(&user_path, json!({"maxParticipants": null}))
        .await;
    assert_eq!(code, StatusCode::OK, "null is no value: {body}");
    let (_, body) = app
        .patch(
            &room_path,
            json!({"maxParticipants": 2, "conferencePin": null}),
        )
        .await;
    assert_eq!(
        (
            body["extension"]["maxParticipants"].as_u64(),
            body["extension"]["conferencePinSet"].as_bool()
        ),
        (Some(2), Some(false)),
        "{body}"
    );
    let (_, body) = app
        .patch(&room_path, json!({"maxParticipants": null}))
        .await;
    assert_eq!(body["extension"]["maxParticipants"], 50, "null restores 50");

    // GraphQL: the same fields, the same rules.
    let q = app
        .graphql(
            r#"{ extension(number: "800") { conferencePinSet maxParticipants status } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        q["data"]["extension"],
        json!({"conferencePinSet": false, "maxParticipants": 50, "status": "AVAILABLE"}),
        "{q}"
    );
    let created = app
        .graphql(
            r#"mutation { createExtension(input: {number: "801", name: "Huddle", type: CONFERENCE,
                 conferencePin: "4321", maxParticipants: 3}) {
                 extension { id conferencePinSet maxParticipants } sipCredentials { password } } }"#,
            json!({}),
        )
        .await;
    let huddle = &created["data"]["createExtension"];
    assert_eq!(huddle["extension"]["conferencePinSet"], true, "{created}");
    assert_eq!(huddle["extension"]["maxParticipants"], 3, "{created}");
    assert_eq!(huddle["sipCredentials"], Value::Null);
    let huddle_id = huddle["extension"]["id"].as_str().unwrap().to_owned();
    for (query, field) in [
        (
            r#"mutation($id: ID!) { updateExtension(id: $id, input: {conferencePin: "12"}) { id } }"#,
            "conferencePin",
        ),
        (
            r#"mutation($id: ID!) { updateExtension(id: $id, input: {maxParticipants: 501}) { id } }"#,
            "maxParticipants",
        ),
        (
            r#"mutation($id: ID!) { setPresence(id: $id, status: DND) { id } }"#,
            "presence",
        ),
    ] {
        let r = app.graphql(query, json!({"id": huddle_id})).await;
        let ext = &r["errors"][0]["extensions"];
        assert_eq!(
            (ext["code"].as_str(), ext["field"].as_str()),
            (Some("validation_error"), Some(field)),
            "{query}: {r}"
        );
    }

    // Made a user extension, a room loses its PIN and size: made a conference again,
    // it has no PIN and the default size.
    let huddle_path = format!("/v1/pbx/extensions/{huddle_id}");
    let (_, body) = app.patch(&huddle_path, json!({"type": "user"})).await;
    assert_eq!(body["extension"]["conferencePinSet"], Value::Null, "{body}");
    let (_, body) = app.patch(&huddle_path, json!({"type": "conference"})).await;
    assert_eq!(
        (
            body["extension"]["conferencePinSet"].as_bool(),
            body["extension"]["maxParticipants"].as_u64()
        ),
        (Some(false), Some(50)),
        "{body}"
    );
}

async fn rooms_are_tenant_scoped_and_mutes_need_the_write_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    conference(&app, "800", json!({})).await;
    let callers = accounts(&app, &["101"]).await;
    let phone = RtpPhone::call(&app, &callers[0], "800", "tenant-a", Codec::Pcmu)
        .await
        .unwrap_or_else(|resp| panic!("refused: {resp}"));
    let room = room_when(&app, "800", count_is(1)).await;
    let participant = room["participants"][0].clone();
    assert_eq!(participant["callerIdNumber"], "101", "{room}");
    assert_eq!(participant["callerIdName"], "Caller 101", "{room}");
    assert_eq!(participant["muted"], false, "{room}");
    assert!(participant["joinedAt"].as_str().unwrap().ends_with('Z'));
    let pid = participant["id"].as_str().unwrap().to_owned();
    let room_id = room["extensionId"].as_str().unwrap().to_owned();
    let (_, by_id) = app.get(&format!("/v1/pbx/conferences/{room_id}")).await;
    assert_eq!(by_id["conference"]["participants"][0]["id"], pid.as_str());
    let (_, all) = app.get("/v1/pbx/conferences").await;
    assert_eq!(all["conferences"].as_array().unwrap().len(), 1, "{all}");

    let mine = app
        .graphql(
            r#"{ conferences(occupied: true) { extension { number } maxParticipants participantCount
                   participants { id callerIdNumber muted } }
                 conference(number: "800") { participantCount } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        mine["data"],
        json!({
            "conferences": [{"extension": {"number": "800"}, "maxParticipants": 50, "participantCount": 1,
                             "participants": [{"id": pid, "callerIdNumber": "101", "muted": false}]}],
            "conference": {"participantCount": 1}
        }),
        "{mine}"
    );

    // Another PBX sees none of it, by number or by id, and cannot touch it.
    let (_, other) = app.tenant("Other PBX");
    let as_other = |method: Method, path: String| app.request_as(&other, method, &path);
    let (code, list) = send(as_other(Method::GET, "/v1/pbx/conferences".into())).await;
    assert_eq!((code, &list["conferences"]), (StatusCode::OK, &json!([])));
    for key in ["800", room_id.as_str()] {
        let (code, body) = send(as_other(Method::GET, format!("/v1/pbx/conferences/{key}"))).await;
        assert_eq!(
            (code, body["error"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found"))
        );
        let path = format!("/v1/pbx/conferences/{key}/participants/{pid}");
        let (code, _) =
            send(as_other(Method::PATCH, path.clone()).json(&json!({"muted": true}))).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "mute {path}");
        let (code, _) = send(as_other(Method::DELETE, path.clone())).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "kick {path}");
    }
    let gql = app
        .graphql_as(
            &other,
            r#"{ conferences { extension { number } } conference(number: "800") { participantCount } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        gql["data"],
        json!({"conferences": [], "conference": null}),
        "{gql}"
    );
    let gql = app
        .graphql_as(
            &other,
            "mutation($c: String!, $p: ID!) { kickParticipant(conference: $c, participant: $p) }",
            json!({"c": room_id, "p": pid}),
        )
        .await;
    assert_eq!(gql["errors"][0]["extensions"]["code"], "not_found", "{gql}");
    // Its own room 800 is another room, empty.
    let (code, _) = send(
        as_other(Method::POST, "/v1/pbx/extensions".into())
            .json(&json!({"number": "800", "name": "Theirs", "type": "conference"})),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    let (_, theirs) = send(as_other(Method::GET, "/v1/pbx/conferences/800".into())).await;
    assert_eq!(theirs["conference"]["participantCount"], 0, "{theirs}");

    // Scopes: reading needs pbx:conferences:read, muting pbx:conferences:write; a token
    // minted from a key carries its scopes.
    let reader = app.api_key("default", Some("pbx:conferences:read"));
    let (_, token) = send(app.request_as(&reader, Method::POST, "/v1/auth/token")).await;
    let token = token["token"].as_str().unwrap().to_owned();
    let mute_path = format!("/v1/pbx/conferences/800/participants/{pid}");
    for key in [&reader, &token] {
        let (code, body) = send(app.request_as(key, Method::GET, "/v1/pbx/conferences/800")).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let (code, body) = send(
            app.request_as(key, Method::PATCH, &mute_path)
                .json(&json!({"muted": true})),
        )
        .await;
        assert_eq!(
            (code, &body),
            (
                StatusCode::FORBIDDEN,
                &json!({"error": "forbidden", "message": "Insufficient scope. Required: pbx:conferences:write"})
            )
        );
        let (code, _) = send(app.request_as(key, Method::DELETE, &mute_path)).await;
        assert_eq!(code, StatusCode::FORBIDDEN);
    }
    let extensions_only = app.api_key("default", Some("pbx:extensions:read"));
    let (code, body) =
        send(app.request_as(&extensions_only, Method::GET, "/v1/pbx/conferences")).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        "Insufficient scope. Required: pbx:conferences:read"
    );
    let writer = app.api_key("default", Some("pbx:conferences:write"));
    let (code, _) = send(app.request_as(&writer, Method::GET, "/v1/pbx/conferences")).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "write does not imply read");

    // Unknown participants and rooms, and bodies that are not a mute.
    let (code, body) = app
        .patch(
            "/v1/pbx/conferences/800/participants/par_nobody",
            json!({"muted": true}),
        )
        .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    assert_eq!(body["message"], "Participant not found");
    let (code, _) = app
        .delete("/v1/pbx/conferences/800/participants/par_nobody")
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, body) = app.get("/v1/pbx/conferences/801").await;
    assert_eq!(
        (code, body["message"].as_str()),
        (StatusCode::NOT_FOUND, Some("Conference not found"))
    );
    let (code, _) = app.get("/v1/pbx/conferences/101").await;
    assert_eq!(
        code,
        StatusCode::NOT_FOUND,
        "a user extension is no conference"
    );
    for bad in [
        json!({}),
        json!({"muted": "yes"}),
        json!({"talking": false}),
    ] {
        let (code, body) = app.patch(&mute_path, bad.clone()).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }

    // Nothing of that touched the caller.
    let room = room_when(&app, "800", count_is(1)).await;
    assert_eq!(room["participants"][0]["muted"], false, "{room}");
    phone.hang_up().await;
    room_when(&app, "800", count_is(0)).await;
}

const CONFERENCE_EVENTS: &str = "subscription($n: [String!]) { conferenceEvents(numbers: $n) { kind conference { number } participant { id callerIdNumber muted } participants { id } participantCount sequence } }";
const PRESENCE: &str = "subscription($n: [String!]) { presenceChanged(numbers: $n) { status previousStatus cause { kind reason } } }";
const EXTENSIONS: &str = "subscription { extensionChanged { kind extension { number status } } }";

async fn socket(app: &TestApp, id: &str, query: &str, variables: Value) -> GqlWs {
    let mut ws = GqlWs::connect(
        &app.base,
        "graphql-transport-ws",
        json!({"authorization": format!("Bearer {}", app.key)}),
    )
    .await;
    ws.subscribe(id, query, variables).await;
    ws
}

async fn conference_events_and_room_status_follow_callers_over_a_websocket(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    conference(&app, "800", json!({})).await;
    conference(&app, "801", json!({})).await;
    let callers = accounts(&app, &["101"]).await;

    let mut events = socket(&app, "c", CONFERENCE_EVENTS, json!({"n": ["800"]})).await;
    let snap = events.next_data("c", WAIT).await["conferenceEvents"].clone();
    assert_eq!(
        (
            snap["kind"].as_str(),
            snap["conference"]["number"].as_str(),
            snap["participantCount"].as_u64()
        ),
        (Some("SNAPSHOT"), Some("800"), Some(0)),
        "{snap}"
    );
    assert_eq!(snap["participants"], json!([]));
    assert_eq!(snap["participant"], Value::Null);
    let mut presence = socket(&app, "p", PRESENCE, json!({"n": ["800"]})).await;
    let p = presence.next_data("p", WAIT).await["presenceChanged"].clone();
    assert_eq!(
        (p["status"].as_str(), p["cause"]["kind"].as_str()),
        (Some("AVAILABLE"), Some("SNAPSHOT")),
        "an empty room is available, not offline: {p}"
    );
    let mut extensions = socket(&app, "e", EXTENSIONS, json!({})).await;

    // A caller in 801 is not an event of 800's feed.
    let other = RtpPhone::call(&app, &callers[0], "801", "elsewhere", Codec::Pcmu)
        .await
        .unwrap();
    room_when(&app, "801", count_is(1)).await;
    other.hang_up().await;
    room_when(&app, "801", count_is(0)).await;
    // Two extensionChanged for 801 (busy, then available) went by.
    for want in ["busy", "available"] {
        let e = extensions.next_data("e", WAIT).await["extensionChanged"].clone();
        assert_eq!(
            (
                e["kind"].as_str(),
                e["extension"]["number"].as_str(),
                e["extension"]["status"].as_str()
            ),
            (
                Some("UPDATED"),
                Some("801"),
                Some(want.to_uppercase().as_str())
            ),
            "{e}"
        );
    }

    let phone = RtpPhone::call(&app, &callers[0], "800", "watched", Codec::Pcmu)
        .await
        .unwrap();
    let joined = events.next_data("c", WAIT).await["conferenceEvents"].clone();
    assert_eq!(
        (
            joined["kind"].as_str(),
            joined["participant"]["callerIdNumber"].as_str(),
            joined["participantCount"].as_u64()
        ),
        (Some("JOINED"), Some("101"), Some(1)),
        "{joined}"
    );
    assert!(joined["sequence"].as_u64() > snap["sequence"].as_u64());
    let pid = joined["participant"]["id"].as_str().unwrap().to_owned();
    let p = presence.next_data("p", WAIT).await["presenceChanged"].clone();
    assert_eq!(
        (
            p["status"].as_str(),
            p["previousStatus"].as_str(),
            p["cause"]["kind"].as_str(),
            p["cause"]["reason"].as_str()
        ),
        (
            Some("BUSY"),
            Some("AVAILABLE"),
            Some("CONFERENCE"),
            Some("joined")
        ),
        "{p}"
    );
    let e = extensions.next_data("e", WAIT).await["extensionChanged"].clone();
    assert_eq!(
        (
            e["extension"]["number"].as_str(),
            e["extension"]["status"].as_str()
        ),
        (Some("800"), Some("BUSY")),
        "{e}"
    );
    let (_, ext) = app
        .get("/v1/pbx/extensions?type=conference&status=busy")
        .await;
    let busy: Vec<&str> = ext["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["number"].as_str())
        .collect();
    assert_eq!(busy, ["800"], "{ext}");
    let q = app
        .graphql(
            r#"{ extension(number: "800") { status registeredDevices } }"#,
            json!({}),
        )
        .await;
    assert_eq!(q["data"]["extension"]["status"], "BUSY", "{q}");

    // A mute through GraphQL shows on the feed.
    let m = app
        .graphql(
            "mutation($p: ID!) { muteParticipant(conference: \"800\", participant: $p, muted: true) { id muted } }",
            json!({"p": pid}),
        )
        .await;
    assert_eq!(
        m["data"]["muteParticipant"],
        json!({"id": pid, "muted": true}),
        "{m}"
    );
    let muted = events.next_data("c", WAIT).await["conferenceEvents"].clone();
    assert_eq!(
        (
            muted["kind"].as_str(),
            muted["participant"]["muted"].as_bool()
        ),
        (Some("MUTED"), Some(true)),
        "{muted}"
    );

    // A second subscriber opens on the room as it is now.
    let mut late = socket(&app, "c2", CONFERENCE_EVENTS, json!({})).await;
    let mut snapshot: Vec<Value> = Vec::new();
    for _ in 0..2 {
        snapshot.push(late.next_data("c2", WAIT).await["conferenceEvents"].clone());
    }
    snapshot.sort_by_key(|s| s["conference"]["number"].as_str().map(str::to_owned));
    assert_eq!(
        snapshot
            .iter()
            .map(|s| (s["kind"].as_str(), s["participantCount"].as_u64()))
            .collect::<Vec<_>>(),
        [(Some("SNAPSHOT"), Some(1)), (Some("SNAPSHOT"), Some(0))]
    );
    assert_eq!(snapshot[0]["participants"], json!([{"id": pid}]));

    phone.hang_up().await;
    let left = events.next_data("c", WAIT).await["conferenceEvents"].clone();
    assert_eq!(
        (
            left["kind"].as_str(),
            left["participant"]["id"].as_str(),
            left["participantCount"].as_u64()
        ),
        (Some("LEFT"), Some(pid.as_str()), Some(0)),
        "{left}"
    );
    let p = presence.next_data("p", WAIT).await["presenceChanged"].clone();
    assert_eq!(
        (p["status"].as_str(), p["cause"]["reason"].as_str()),
        (Some("AVAILABLE"), Some("left")),
        "{p}"
    );
    let (_, ext) = app.get("/v1/pbx/extensions?type=conference").await;
    assert!(
        ext["extensions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["status"] == "available"),
        "{ext}"
    );
}

/// A room with a PIN: callers who enter it join and hear each other; one who gets it
/// wrong three times is hung up on (a BYE) and never counted in the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_pin_joins_and_three_wrong_pins_hang_up() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    conference(&app, "800", json!({"conferencePin": "4711"})).await;
    let callers = accounts(&app, &["101", "102", "103"]).await;
    let first = call_with_pin(&app, &callers[0], "4711", "pin-1").await;
    let second = call_with_pin(&app, &callers[1], "4711", "pin-2").await;
    room_when(&app, "800", count_is(2)).await;
    let (first_heard, second_heard) = tokio::join!(
        first.talk_and_listen(Some(500.0), Duration::from_secs(3), Impairment::default()),
        second.talk_and_listen(Some(900.0), Duration::from_secs(3), Impairment::default()),
    );
    let a = shares(&first, &first_heard, &[500.0, 900.0]);
    let b = shares(&second, &second_heard, &[500.0, 900.0]);
    assert!(
        a[1] > HEARD && a[0] < ABSENT,
        "the first caller hears: {a:?}"
    );
    assert!(
        b[0] > HEARD && b[1] < ABSENT,
        "the second caller hears: {b:?}"
    );

    let wrong = RtpPhone::call(&app, &callers[2], "800", "pin-wrong", Codec::Pcmu)
        .await
        .unwrap();
    wrong.send_digits("1111#2222#3333#", 1000).await;
    let bye = wrong.expect_request("BYE").await;
    wrong.reply_ok(&bye).await;
    let room = room_when(&app, "800", count_is(2)).await;
    assert!(
        room["participants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["callerIdNumber"] != "103"),
        "{room}"
    );
    let call = eventually(WAIT, || async {
        let (_, body) = app.get("/v1/pbx/calls?extension=103").await;
        let call = body["calls"][0].clone();
        (call["state"] == "ended").then_some(call)
    })
    .await;
    assert_eq!(call["endReason"], "pin-failed", "{call}");
    first.hang_up().await;
    second.hang_up().await;
}

/// A room of two answers a third caller 486.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_room_answers_the_next_caller_486() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    conference(&app, "800", json!({"maxParticipants": 2})).await;
    let callers = accounts(&app, &["101", "102", "103"]).await;
    let mut phones = Vec::new();
    for (i, account) in callers[..2].iter().enumerate() {
        phones.push(
            RtpPhone::call(&app, account, "800", &format!("full-{i}"), Codec::Pcmu)
                .await
                .unwrap(),
        );
    }
    room_when(&app, "800", count_is(2)).await;
    let refused = match RtpPhone::call(&app, &callers[2], "800", "full-2", Codec::Pcmu).await {
        Ok(_) => panic!("a third caller got into a room of two"),
        Err(resp) => resp,
    };
    assert_eq!(status(&refused), 486, "{refused}");
    // Room for one more once someone leaves.
    phones.pop().unwrap().hang_up().await;
    room_when(&app, "800", count_is(1)).await;
    let again = RtpPhone::call(&app, &callers[2], "800", "full-3", Codec::Pcmu)
        .await
        .unwrap_or_else(|resp| panic!("refused after a caller left: {resp}"));
    room_when(&app, "800", count_is(2)).await;
    again.hang_up().await;
    phones.pop().unwrap().hang_up().await;
}

/// Muting a caller through the API takes its tone out of what the others hear;
/// unmuting brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_muted_caller_is_not_heard_by_the_others() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    conference(&app, "800", json!({})).await;
    let callers = accounts(&app, &["101", "102", "103"]).await;
    let mut phones = Vec::new();
    for (i, account) in callers.iter().enumerate() {
        phones.push(
            RtpPhone::call(&app, account, "800", &format!("mute-{i}"), Codec::Pcmu)
                .await
                .unwrap(),
        );
    }
    let room = room_when(&app, "800", count_is(3)).await;
    let loud = room["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["callerIdNumber"] == "101")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tones = [450.0, 800.0];
    let round = || async {
        let (_, _, heard) = tokio::join!(
            phones[0].talk_and_listen(
                Some(tones[0]),
                Duration::from_secs(3),
                Impairment::default()
            ),
            phones[1].talk_and_listen(
                Some(tones[1]),
                Duration::from_secs(3),
                Impairment::default()
            ),
            phones[2].talk_and_listen(None, Duration::from_secs(3), Impairment::default()),
        );
        shares(&phones[2], &heard, &tones)
    };
    let before = round().await;
    assert!(
        before[0] > HEARD && before[1] > HEARD,
        "both heard: {before:?}"
    );

    // Muted in the middle of a round: the listener's packets, each with its arrival
    // time, carry the muted tone until just after the API answers, and never later than
    // MUTE_WITHIN after that (the room applies it on its next 20 ms tick).
    const TALKERS_GO_ON: Duration = Duration::from_millis(900);
    let path = format!("/v1/pbx/conferences/800/participants/{loud}");
    let (_, _, timed, (asked, answered)) = tokio::join!(
        phones[0].talk_and_listen(
            Some(tones[0]),
            Duration::from_secs(2),
            Impairment::default()
        ),
        phones[1].talk_and_listen(
            Some(tones[1]),
            Duration::from_secs(2),
            Impairment::default()
        ),
        phones[2].talk_and_listen_timed(None, Duration::from_secs(2)),
        async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let asked = tokio::time::Instant::now();
            let (code, body) = app.patch(&path, json!({"muted": true})).await;
            assert_eq!(code, StatusCode::OK, "{body}");
            assert_eq!(body["participant"]["muted"], true);
            (asked, tokio::time::Instant::now())
        },
    );
    let rate = phones[2].codec.sample_rate();
    let carries = |pcm: &[i16], hz: f64| tone_share(pcm, rate, hz, pcm.len()) > FRAME_HEARD;
    let last_tone = timed
        .iter()
        .filter(|(_, pcm)| carries(pcm, tones[0]))
        .map(|(at, _)| *at)
        .max()
        .expect("the caller was heard before the mute");
    assert!(
        last_tone > asked - Duration::from_millis(200),
        "heard until the mute"
    );
    // Milliseconds from `b` to `a` (negative when `a` came first).
    let ms = |a: tokio::time::Instant, b: tokio::time::Instant| match a.checked_duration_since(b) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -(b - a).as_secs_f64() * 1000.0,
    };
    println!(
        "mute: the API answered {:.1} ms after the request; the last packet with the muted \
         tone arrived {:.1} ms after the request",
        ms(answered, asked),
        ms(last_tone, asked)
    );
    assert!(
        last_tone <= answered + MUTE_WITHIN,
        "the muted tone was still heard {:?} after the API answered",
        last_tone - answered
    );
    let after_mute: Vec<_> = timed
        .iter()
        .filter(|(at, _)| *at > answered + MUTE_WITHIN && *at < asked + TALKERS_GO_ON)
        .collect();
    assert!(
        after_mute.len() > 20,
        "the room kept sending: {}",
        after_mute.len()
    );
    assert!(
        after_mute.iter().all(|(_, pcm)| carries(pcm, tones[1])),
        "the other caller is still heard in every packet"
    );
    room_when(&app, "800", |r| {
        r["participants"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["id"] == loud.as_str() && p["muted"] == true)
        })
    })
    .await;
    let muted = round().await;
    assert!(
        muted[0] < ABSENT,
        "the muted caller is not heard: {muted:?}"
    );
    assert!(muted[1] > HEARD, "the other still is: {muted:?}");

    let (code, _) = app.patch(&path, json!({"muted": false})).await;
    assert_eq!(code, StatusCode::OK);
    room_when(&app, "800", |r| {
        r["participants"]
            .as_array()
            .is_some_and(|ps| ps.iter().all(|p| p["muted"] == false))
    })
    .await;
    let after = round().await;
    assert!(after[0] > HEARD, "unmuted, heard again: {after:?}");
    for phone in &phones {
        phone.hang_up().await;
    }
}

/// Kicking a caller through the API: it gets a BYE, the room lists one fewer, and its
/// call ends as kicked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kicked_caller_gets_a_bye_and_leaves_the_room() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    conference(&app, "800", json!({})).await;
    let callers = accounts(&app, &["101", "102"]).await;
    let stays = RtpPhone::call(&app, &callers[0], "800", "kick-stays", Codec::Pcmu)
        .await
        .unwrap();
    let goes = RtpPhone::call(&app, &callers[1], "800", "kick-goes", Codec::Pcmu)
        .await
        .unwrap();
    let room = room_when(&app, "800", count_is(2)).await;
    let id_of = |number: &str| {
        room["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["callerIdNumber"] == number)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (kicked, kept) = (id_of("102"), id_of("101"));
    // The one who stays listens across the kick: it hears the leave tone (falling:
    // 900 Hz, then 600 Hz; the join tone rises).
    let (heard, (code, body)) = tokio::join!(
        stays.talk_and_listen(None, Duration::from_millis(1500), Impairment::default()),
        async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            app.delete(&format!("/v1/pbx/conferences/800/participants/{kicked}"))
                .await
        },
    );
    assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
    let rate = stays.codec.sample_rate();
    let frame = stays.codec.frame_samples();
    let frames: Vec<&[i16]> = heard.chunks(frame).collect();
    let has = |i: usize, hz: f64| tone_share(frames[i], rate, hz, frame) > FRAME_HEARD;
    // A 900 Hz frame with a 600 Hz one 3 to 10 frames later (80 ms beep, 40 ms gap);
    // the join tone, still queued from the second caller's arrival, goes the other way.
    let leave_tone = (0..frames.len())
        .find(|&i| has(i, 900.0) && (i + 3..(i + 11).min(frames.len())).any(|j| has(j, 600.0)));
    assert!(
        leave_tone.is_some(),
        "the one who stays hears the leave tone"
    );
    let bye = goes.expect_request("BYE").await;
    goes.reply_ok(&bye).await;
    let room = room_when(&app, "800", count_is(1)).await;
    assert_eq!(room["participants"][0]["id"], kept.as_str(), "{room}");
    let (_, list) = app.get("/v1/pbx/conferences?occupied=true").await;
    assert_eq!(list["conferences"][0]["participantCount"], 1, "{list}");
    let call = eventually(WAIT, || async {
        let (_, body) = app.get("/v1/pbx/calls?extension=102").await;
        let call = body["calls"][0].clone();
        (call["state"] == "ended").then_some(call)
    })
    .await;
    assert_eq!(call["endReason"], "kicked", "{call}");
    // Kicked twice: it is gone.
    let (code, _) = app
        .delete(&format!("/v1/pbx/conferences/800/participants/{kicked}"))
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    stays.hang_up().await;
    room_when(&app, "800", count_is(0)).await;
    let (_, list) = app.get("/v1/pbx/conferences?occupied=true").await;
    assert_eq!(list["conferences"], json!([]), "{list}");
}

async fn the_migration_gives_rooms_their_settings_and_clears_their_manual_presence(
    backend: Backend,
) {
    let mut app = TestApp::spawn(backend).await;
    let room = conference(&app, "800", json!({})).await;
    let user = app.create_extension("101", "Alice").await;
    // As an older version left them: no conference columns yet, and a conference that
    // someone set to dnd back when that was allowed.
    app.stop();
    app.sql(&format!(
        "UPDATE extension SET manual_presence = 'dnd' WHERE id IN ('{}', '{}');
         ALTER TABLE extension DROP COLUMN max_participants;
         ALTER TABLE extension DROP COLUMN conference_pin;
         DELETE FROM __diesel_schema_migrations WHERE version = '20261202000001';",
        room["id"].as_str().unwrap(),
        user["id"].as_str().unwrap()
    ))
    .await;
    app.start().await;
    let (_, body) = app
        .get(&format!(
            "/v1/pbx/extensions/{}",
            room["id"].as_str().unwrap()
        ))
        .await;
    let ext = &body["extension"];
    assert_eq!(
        (
            ext["status"].as_str(),
            ext["conferencePinSet"].as_bool(),
            ext["maxParticipants"].as_u64()
        ),
        (Some("available"), Some(false), Some(50)),
        "{body}"
    );
    let (_, body) = app
        .get(&format!(
            "/v1/pbx/extensions/{}",
            user["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        body["extension"]["status"], "dnd",
        "a user keeps its dnd: {body}"
    );
    // The room takes a PIN now.
    let (code, body) = app
        .patch(
            &format!("/v1/pbx/extensions/{}", room["id"].as_str().unwrap()),
            json!({"conferencePin": "2468"}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["extension"]["conferencePinSet"], true);
    // Its old dnd is gone, not merely hidden: made a user extension, it is offline.
    let (_, body) = app
        .patch(
            &format!("/v1/pbx/extensions/{}", room["id"].as_str().unwrap()),
            json!({"type": "user"}),
        )
        .await;
    assert_eq!(body["extension"]["status"], "offline", "{body}");
}
