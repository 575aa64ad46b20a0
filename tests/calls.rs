//! Calls through the proxy with SIPp callers and callees: forking, cancel, busy,
//! forwarding to a gateway, DND and offline decisions, caller ID, call records and busy
//! presence, over UDP and TCP, on both databases.

use crate::common::sip::{
    Account, Sipp, baresip, baresip_dir, free_port, header, status, write_wav,
};
use crate::common::ws::{GqlWs, Incoming};
use crate::common::{Backend, TestApp, eventually};
use crate::on_both_backends;
use serde_json::{Value, json};
use std::time::Duration;

on_both_backends!(
    a_call_rings_is_answered_and_recorded_and_both_sides_are_busy_meanwhile,
    a_call_forks_to_every_device_and_the_losers_are_cancelled,
);

const WAIT: Duration = Duration::from_secs(10);

/// Registers `account` with a contact at `port`, where a SIPp UAS will answer.
async fn register_at(app: &TestApp, account: &Account, port: u16, tcp: bool) {
    let mut sipp = Sipp::new(app, "register_to.xml").user(
        account,
        &account.number,
        &["600", &format!("{}@127.0.0.1:{port}", account.number)],
    );
    if tcp {
        sipp = sipp.tcp();
    }
    sipp.run().await.assert_ok();
}

fn caller_run<'a>(app: &'a TestApp, scenario: &str, caller: &Account, dialled: &str) -> Sipp<'a> {
    Sipp::new(app, scenario)
        .user(caller, &caller.number, &[dialled])
        .auth_uri(&format!("{dialled}@127.0.0.1"))
}

async fn calls(app: &TestApp, query: &str) -> Vec<Value> {
    let (s, body) = app.get(&format!("/v1/pbx/calls{query}")).await;
    assert_eq!(s, 200, "{body}");
    body["calls"].as_array().unwrap().clone()
}

/// The last call record once it has ended.
async fn ended_call(app: &TestApp) -> Value {
    eventually(WAIT, || async {
        calls(app, "")
            .await
            .into_iter()
            .next()
            .filter(|c| c["state"] == "ended")
    })
    .await
}

async fn status_of(app: &TestApp, id: &str) -> String {
    app.get(&format!("/v1/pbx/extensions/{id}")).await.1["extension"]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn a_call_rings_is_answered_and_recorded_and_both_sides_are_busy_meanwhile(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.account("101", "Alice").await;
    let bob = app.account("102", "Bob").await;
    let alice_port = free_port();
    let bob_port = free_port();
    register_at(&app, &alice, alice_port, false).await;
    register_at(&app, &bob, bob_port, false).await;

    let mut ws = GqlWs::connect(&app.base, "graphql-transport-ws", json!({"token": app.key})).await;
    ws.subscribe(
        "p",
        "subscription { presenceChanged(numbers: [\"101\", \"102\"]) { extension { number } status previousStatus cause { kind callId } } }",
        json!({}),
    )
    .await;
    for _ in 0..2 {
        ws.next_data("p", WAIT).await;
    }
    ws.subscribe("c", "subscription { callEvents { kind call { id state caller { number name } callee { number } disposition } } }", json!({}))
        .await;

    let callee = Sipp::uas(&app, "uas_answer.xml", bob_port).spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let caller = caller_run(&app, "call.xml", &alice, "102")
        .port(alice_port)
        .run()
        .await;
    caller.assert_ok();
    let callee = callee.await.unwrap();
    callee.assert_ok();

    // Caller ID at the callee: the extension's name and number, never what the phone sent.
    let invite = callee
        .messages
        .split("INVITE sip:")
        .nth(1)
        .expect("an INVITE reached the callee");
    let from = header(invite, "From").unwrap();
    assert!(from.starts_with("\"Alice\" <sip:101@127.0.0.1>"), "{from}");
    assert_eq!(
        header(invite, "P-Asserted-Identity"),
        Some("\"Alice\" <sip:101@127.0.0.1>")
    );
    assert!(!invite.contains("Spoofed"));
    assert!(
        header(invite, "Record-Route")
            .unwrap()
            .contains(&app.sip_addr().to_string())
    );
    assert_eq!(header(invite, "Max-Forwards"), Some("69"));

    // Events: ringing, answered (both busy), ended (both available again).
    let mut kinds = Vec::new();
    let mut presence: Vec<(String, String)> = Vec::new();
    while kinds.len() < 3 || presence.len() < 4 {
        match ws.next(WAIT).await {
            Incoming::Json(v) if v["id"] == "c" && v["type"] == "next" => {
                kinds.push(
                    v["payload"]["data"]["callEvents"]["kind"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
            Incoming::Json(v) if v["id"] == "p" && v["type"] == "next" => {
                let p = &v["payload"]["data"]["presenceChanged"];
                assert_eq!(p["cause"]["kind"], "CALL");
                assert!(p["cause"]["callId"].as_str().unwrap().starts_with("call_"));
                presence.push((
                    p["extension"]["number"].as_str().unwrap().into(),
                    p["status"].as_str().unwrap().into(),
                ));
            }
            Incoming::Json(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(kinds, ["RINGING", "ANSWERED", "ENDED"]);
    for number in ["101", "102"] {
        let seen: Vec<&str> = presence
            .iter()
            .filter(|(n, _)| n == number)
            .map(|(_, s)| s.as_str())
            .collect();
        assert_eq!(seen, ["BUSY", "AVAILABLE"], "{number}");
    }
    assert_eq!(status_of(&app, &alice.id).await, "available");

    let call = ended_call(&app).await;
    assert_eq!(call["direction"], "internal");
    assert_eq!(
        call["caller"],
        json!({"extensionId": alice.id, "number": "101", "name": "Alice"})
    );
    assert_eq!(call["callee"]["number"], "102");
    assert_eq!(call["disposition"], "answered");
    assert_eq!(call["hangupSide"], "caller");
    assert!(call["answeredAt"].as_str().unwrap() >= call["startedAt"].as_str().unwrap());
    assert!(call["endedAt"].as_str().unwrap() >= call["answeredAt"].as_str().unwrap());
    let (_, phones) = app.get("/v1/pbx/phones").await;
    let bob_device = phones["phones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["extensionNumber"] == "102")
        .unwrap()["id"]
        .clone();
    assert_eq!(call["answeredBy"], bob_device);
    assert!(calls(&app, "?active=true").await.is_empty());

    let gql = app
        .graphql("{ calls(extension: \"102\", first: 5) { nodes { state disposition callee { number } } pageInfo { hasNextPage } } extension(number: \"102\") { activeCalls { id } } }", json!({}))
        .await;
    assert_eq!(gql["data"]["calls"]["nodes"][0]["disposition"], "ANSWERED");
    assert_eq!(gql["data"]["calls"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(gql["data"]["extension"]["activeCalls"], json!([]));
}

async fn a_call_forks_to_every_device_and_the_losers_are_cancelled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.account("101", "Alice").await;
    let bob = app.account("102", "Bob").await;
    let (desk, soft) = (free_port(), free_port());
    register_at(&app, &bob, desk, false).await;
    register_at(&app, &bob, soft, false).await;
    assert_eq!(
        app.get(&format!("/v1/pbx/extensions/{}", bob.id)).await.1["extension"]["registeredDevices"],
        2
    );

    let answers = Sipp::uas(&app, "uas_answer.xml", desk).spawn();
    let rings = Sipp::uas(&app, "uas_ring.xml", soft).spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    caller_run(&app, "call.xml", &alice, "102")
        .run()
        .await
        .assert_ok();
    answers.await.unwrap().assert_ok();
    let rang = rings.await.unwrap();
    rang.assert_ok();
    assert!(
        rang.messages.contains("CANCEL sip:"),
        "the other device got a CANCEL"
    );
    let call = ended_call(&app).await;
    assert_eq!(call["disposition"], "answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_can_cancel_while_it_rings() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.account("101", "Alice").await;
    let bob = app.account("102", "Bob").await;
    let port = free_port();
    register_at(&app, &bob, port, false).await;
    let rings = Sipp::uas(&app, "uas_ring.xml", port).spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    caller_run(&app, "call_cancel.xml", &alice, "102")
        .run()
        .await
        .assert_ok();
    rings.await.unwrap().assert_ok();
    let call = ended_call(&app).await;
    assert_eq!(
        (call["disposition"].as_str(), call["hangupSide"].as_str()),
        (Some("cancelled"), Some("caller"))
    );
    assert_eq!(call["answeredAt"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_device_is_busy_the_caller_gets_486() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.account("101", "Alice").await;
    let bob = app.account("102", "Bob").await;
    let (a, b) = (free_port(), free_port());
    register_at(&app, &bob, a, false).await;
    register_at(&app, &bob, b, false).await;
    let one = Sipp::uas(&app, "uas_busy.xml", a).spawn();
    let two = Sipp::uas(&app, "uas_busy.xml", b).spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    caller_run(&app, "call_busy.xml", &alice, "102")
        .run()
        .await
        .assert_ok();
    one.await.unwrap().assert_ok();
    two.await.unwrap().assert_ok();
    assert_eq!(ended_call(&app).await["disposition"], "busy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_call_is_forwarded_to_the_gateway_with_history_info() {
    let gateway = free_port();
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &["--sip-gateway", &format!("sip:127.0.0.1:{gateway}")],
    )
    .await;
    let alice = app.account("101", "Alice").await;
    app.patch(
        &format!("/v1/pbx/extensions/{}", alice.id),
        json!({"callerIdNumber": "5550001111"}),
    )
    .await;
    let bob = app.account("102", "Bob").await;
    app.patch(
        &format!("/v1/pbx/extensions/{}", bob.id),
        json!({"forwardingNumber": "5559998888", "forwardingRingTimeout": 5}),
    )
    .await;
    let port = free_port();
    register_at(&app, &bob, port, false).await;
    let rings = Sipp::uas(&app, "uas_ring.xml", port).spawn();
    let gw = Sipp::uas(&app, "uas_gateway.xml", gateway).spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    caller_run(&app, "call.xml", &alice, "102")
        .run()
        .await
        .assert_ok();
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "rang for the ring timeout first"
    );
    rings.await.unwrap().assert_ok();
    let gw = gw.await.unwrap();
    gw.assert_ok();
    let invite = gw.messages.split("INVITE sip:").nth(1).unwrap();
    assert!(invite.starts_with("5559998888@127.0.0.1"), "{invite}");
    let history = header(invite, "History-Info").unwrap();
    assert!(
        history.contains("sip:102@127.0.0.1") && history.contains("cause%3D408"),
        "{history}"
    );
    let call = ended_call(&app).await;
    assert_eq!(call["disposition"], "forwarded");
    assert_eq!(call["forwardedTo"], "5559998888");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_calls_carry_the_extension_caller_id_to_the_gateway() {
    let gateway = free_port();
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &["--sip-gateway", &format!("sip:127.0.0.1:{gateway}")],
    )
    .await;
    let alice = app.account("101", "Alice").await;
    app.patch(
        &format!("/v1/pbx/extensions/{}", alice.id),
        json!({"callerIdName": "Acme Sales", "callerIdNumber": "5550001111"}),
    )
    .await;
    let gw = Sipp::uas(&app, "uas_gateway_direct.xml", gateway).spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    caller_run(&app, "call.xml", &alice, "5557770000")
        .run()
        .await
        .assert_ok();
    gw.await.unwrap().assert_ok();
    let call = ended_call(&app).await;
    assert_eq!(
        (call["direction"].as_str(), call["disposition"].as_str()),
        (Some("outbound"), Some("answered"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnd_and_offline_extensions_go_to_voicemail_or_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.account("101", "Alice").await;
    let bob = app.account("102", "Bob").await;
    let port = free_port();
    register_at(&app, &bob, port, false).await;

    // DND with voicemail: voicemail answers (the device does not ring).
    app.patch(
        &format!("/v1/pbx/extensions/{}", bob.id),
        json!({"presence": "dnd"}),
    )
    .await;
    let run = caller_run(&app, "call.xml", &alice, "102").run().await;
    run.assert_ok();
    let ok = run.messages.rsplit("SIP/2.0 200 OK").nth(1).unwrap();
    assert!(
        header(ok, "Contact").unwrap().contains("voicemail@"),
        "{ok}"
    );
    let call = ended_call(&app).await;
    assert_eq!(
        (call["disposition"].as_str(), call["answeredBy"].as_str()),
        (Some("voicemail"), Some("voicemail"))
    );

    // DND without voicemail: busy.
    app.patch(
        &format!("/v1/pbx/extensions/{}", bob.id),
        json!({"voicemailEnabled": false}),
    )
    .await;
    caller_run(&app, "call_busy.xml", &alice, "102")
        .run()
        .await
        .assert_ok();
    assert_eq!(ended_call(&app).await["disposition"], "busy");

    // Offline (no device) without voicemail or forwarding: 480.
    let carol = app.account("103", "Carol").await;
    app.patch(
        &format!("/v1/pbx/extensions/{}", carol.id),
        json!({"voicemailEnabled": false}),
    )
    .await;
    caller_run(&app, "call_unavailable.xml", &alice, "103")
        .run()
        .await
        .assert_ok();
    assert_eq!(ended_call(&app).await["disposition"], "no-answer");
    // Offline with voicemail: voicemail answers.
    app.account("104", "Dave").await;
    caller_run(&app, "call.xml", &alice, "104")
        .run()
        .await
        .assert_ok();
    assert_eq!(ended_call(&app).await["disposition"], "voicemail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_nobody_hangs_up_is_ended_at_its_maximum_duration() {
    let app = TestApp::spawn_with(Backend::Sqlite, &["--call-max-duration", "2"]).await;
    let alice = app.account("101", "Alice").await;
    let bob = app.account("102", "Bob").await;
    let port = free_port();
    register_at(&app, &bob, port, false).await;
    let callee = Sipp::uas(&app, "uas_answer_held.xml", port).spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    caller_run(&app, "call_held.xml", &alice, "102")
        .run()
        .await
        .assert_ok();
    callee.await.unwrap().assert_ok();
    let call = ended_call(&app).await;
    assert_eq!(
        (call["hangupSide"].as_str(), call["endReason"].as_str()),
        (Some("system"), Some("max-duration"))
    );
    assert_eq!(call["disposition"], "answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_work_over_tcp() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.account("101", "Alice").await;
    let bob = app.account("102", "Bob").await;
    let port = free_port();
    register_at(&app, &bob, port, true).await;
    let callee = Sipp::uas(&app, "uas_answer.xml", port).tcp().spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    caller_run(&app, "call.xml", &alice, "102")
        .tcp()
        .run()
        .await
        .assert_ok();
    callee.await.unwrap().assert_ok();
    assert_eq!(ended_call(&app).await["disposition"], "answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_numbers_and_other_pbxes_are_not_found() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.account("101", "Alice").await;
    let (_, acme_key) = app.tenant("Acme");
    let (s, _) = crate::common::send(
        app.request_as(&acme_key, reqwest::Method::POST, "/v1/pbx/extensions")
            .json(&json!({"number": "555", "name": "Acme 555"})),
    )
    .await;
    assert_eq!(s, 201);
    for dialled in ["555", "999"] {
        let run = caller_run(&app, "call_unavailable.xml", &alice, dialled)
            .run()
            .await;
        assert!(!run.ok);
        assert!(run.messages.contains("SIP/2.0 404 Not Found"), "{dialled}");
    }
    // Outside numbers need a gateway.
    let run = caller_run(&app, "call_unavailable.xml", &alice, "5557770000")
        .run()
        .await;
    assert!(run.messages.contains("SIP/2.0 403 Forbidden"));
    let _ = status;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baresip_call_carries_real_rtp_both_ways() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.account("101", "Alice").await;
    let bob = app.account("102", "Bob").await;
    let wav = app.data_dir.join("tone.wav");
    write_wav(&wav, &[(10.0, true)]);
    let callee = baresip(baresip_dir(&app, &bob, &wav), 12, None);
    eventually(WAIT, || async {
        let (_, ext) = app.get(&format!("/v1/pbx/extensions/{}", bob.id)).await;
        (ext["extension"]["registeredDevices"] == 1).then_some(())
    })
    .await;
    let caller = baresip(baresip_dir(&app, &alice, &wav), 8, Some("102"))
        .await
        .unwrap();
    let callee = callee.await.unwrap();
    let callee_out = String::from_utf8_lossy(&callee.stdout).into_owned()
        + &String::from_utf8_lossy(&callee.stderr);
    let caller_out = String::from_utf8_lossy(&caller.stdout).into_owned()
        + &String::from_utf8_lossy(&caller.stderr);
    assert!(caller_out.contains("Call established"), "{caller_out}");
    // rtcpsummary: packets received (PR) and sent (PS) by the callee.
    let summary = callee_out
        .lines()
        .find(|l| l.starts_with("EX=BareSip"))
        .unwrap_or_else(|| panic!("{callee_out}"));
    let count = |key: &str| -> u32 {
        summary
            .split(';')
            .find_map(|kv| kv.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(count("PR=") > 100 && count("PS=") > 100, "{summary}");
    let call = ended_call(&app).await;
    assert_eq!(
        (call["disposition"].as_str(), call["hangupSide"].as_str()),
        (Some("answered"), Some("caller"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_invites_get_precise_errors() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.account("101", "Alice").await;
    app.account("102", "Bob").await;
    let raw = crate::common::sip::RawSip::bind("127.0.0.1", app.sip_addr()).await;
    // No credentials: a 407 challenge for this PBX's realm.
    let r = raw.transact(&raw.invite("101", "102", "h-1", "")).await;
    assert_eq!(status(&r), 407);
    assert!(
        header(&r, "Proxy-Authenticate")
            .unwrap()
            .contains("realm=\"127.0.0.1\"")
    );
    raw.send(&crate::common::sip::ack_of(&r, "102")).await;
    for (extra, expected) in [
        ("Max-Forwards: 0\r\n", 483),
        ("Content-Type: text/plain\r\n", 415),
        ("Require: 100rel, timer-banana\r\n", 420),
    ] {
        let r = raw
            .invite_with_auth(&alice, "102", &format!("h-{expected}"), extra)
            .await;
        assert_eq!(status(&r), expected, "{extra}: {r}");
        raw.send(&crate::common::sip::ack_of(&r, "102")).await;
    }
    let r = raw
        .invite_with_auth(&alice, "102", "h-420b", "Require: timer-banana\r\n")
        .await;
    assert_eq!(header(&r, "Unsupported"), Some("timer-banana"));
    // Another extension's credentials cannot place a call as someone they are not:
    // the caller ID the callee would see is the authenticated one (checked in the
    // answered-call test); a wrong password is a 407 again, and is logged.
    let wrong = Account {
        password: "nope".into(),
        ..alice.clone()
    };
    let r = raw.invite_with_auth(&wrong, "102", "h-bad", "").await;
    assert_eq!(status(&r), 407);
    assert!(app.server_log().contains("reason=\"wrong_password\""));
    // None of this left a call up.
    assert!(calls(&app, "?active=true").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_is_trusted_without_credentials_for_calls_to_extensions() {
    let gateway_port = free_port();
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &["--sip-gateway", &format!("sip:127.0.0.1:{gateway_port}")],
    )
    .await;
    let bob = app.account("102", "Bob").await;
    let port = free_port();
    register_at(&app, &bob, port, false).await;
    let callee = Sipp::uas(&app, "uas_answer.xml", port).spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let gw = crate::common::sip::RawSip::bind(&format!("127.0.0.1:{gateway_port}"), app.sip_addr())
        .await;
    let ok = gw
        .transact(&gw.invite("5551234567", "102", "gw-1", ""))
        .await;
    assert_eq!(status(&ok), 200, "{ok}");
    // ACK and BYE straight to the callee's dialog through us.
    let to = header(&ok, "To").unwrap().to_owned();
    let local = gw.local();
    let ack = format!(
        "ACK sip:102@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-gwack\r\nFrom: <sip:5551234567@127.0.0.1>;tag=inv1\r\n\
         To: {to}\r\nCall-ID: gw-1\r\nCSeq: 1 ACK\r\nRoute: <sip:{};lr>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        app.sip_addr()
    );
    gw.send(&ack).await;
    // UDP does not keep order, and each datagram is handled on its own task: a BYE sent
    // on the heels of the ACK may overtake it (a real gateway talks for a while first).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bye = ack
        .replace("ACK sip:", "BYE sip:")
        .replace("CSeq: 1 ACK", "CSeq: 2 BYE")
        .replace("z9hG4bK-gwack", "z9hG4bK-gwbye");
    let bye_ok = gw.transact(&bye).await;
    assert_eq!(status(&bye_ok), 200, "{bye_ok}");
    callee.await.unwrap().assert_ok();
    let call = ended_call(&app).await;
    assert_eq!(call["direction"], "inbound");
    assert_eq!(call["caller"]["number"], "5551234567");
    assert_eq!(call["caller"]["extensionId"], Value::Null);
    assert_eq!(call["hangupSide"], "caller");
    let _ = Incoming::Closed(None);
}
