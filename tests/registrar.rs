//! The registrar against real SIP peers (SIPp, baresip) and raw sockets, on both
//! databases, with presence and device events watched over a real GraphQL websocket.

use crate::common::sip::{Account, RawSip, Sipp, header, headers, status};
use crate::common::ws::GqlWs;
use crate::common::{Backend, TestApp, eventually};
use crate::on_both_backends;
use serde_json::{Value, json};
use std::time::Duration;

on_both_backends!(
    sipp_registers_over_udp_and_presence_and_devices_follow,
    sipp_registers_over_tcp_and_unregisters_with_a_wildcard,
    several_devices_refresh_and_unregister_one,
    registrations_survive_a_restart,
    short_registrations_expire_and_the_extension_goes_offline,
    a_user_extension_turned_conference_loses_its_phones_and_its_password,
    the_migration_takes_credentials_and_phones_from_existing_non_user_extensions,
);

const WAIT: Duration = Duration::from_secs(5);
const PRESENCE: &str = "subscription($n: [String!]) { presenceChanged(numbers: $n) { extension { number } status previousStatus cause { kind description reason deviceId } sequence } }";
const DEVICES: &str = "subscription { deviceChanged { kind device { id extensionNumber deviceType manufacturer transport registered } } }";

async fn watch(app: &TestApp, number: &str) -> GqlWs {
    let mut ws = GqlWs::connect(&app.base, "graphql-transport-ws", json!({"token": app.key})).await;
    // deviceChanged sends nothing until a device changes: subscribed first, it is live
    // by the time the presence snapshot (which waits for the database) arrives.
    ws.subscribe("d", DEVICES, json!({})).await;
    ws.subscribe("p", PRESENCE, json!({"n": [number]})).await;
    let snap = ws.next_data("p", WAIT).await;
    assert_eq!(snap["presenceChanged"]["cause"]["kind"], "SNAPSHOT");
    ws
}

async fn next_device(ws: &mut GqlWs) -> Value {
    ws.next_data("d", WAIT).await["deviceChanged"].clone()
}

async fn phones(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get("/v1/pbx/phones").await;
    assert_eq!(status, 200, "{body}");
    body["phones"].as_array().unwrap().clone()
}

async fn extension(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/pbx/extensions/{id}")).await.1["extension"].clone()
}

/// Next presence and device events, whichever order they arrive in.
async fn presence_and_device(ws: &mut GqlWs) -> (Value, Value) {
    let (mut presence, mut device) = (None, None);
    while presence.is_none() || device.is_none() {
        match ws.next(WAIT).await {
            crate::common::ws::Incoming::Json(v) if v["id"] == "p" && v["type"] == "next" => {
                presence = Some(v["payload"]["data"]["presenceChanged"].clone())
            }
            crate::common::ws::Incoming::Json(v) if v["id"] == "d" && v["type"] == "next" => {
                device = Some(v["payload"]["data"]["deviceChanged"].clone())
            }
            crate::common::ws::Incoming::Json(_) => {}
            other => panic!("socket closed: {other:?}"),
        }
    }
    (presence.unwrap(), device.unwrap())
}

async fn sipp_registers_over_udp_and_presence_and_devices_follow(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.account("101", "Alice").await;
    let mut ws = watch(&app, "101").await;

    let run = Sipp::new(&app, "register.xml")
        .user(&alice, "101", &["300", "101-desk"])
        .run()
        .await;
    run.assert_ok();
    assert!(
        run.messages.contains("algorithm=MD5") && !run.messages.contains("algorithm=SHA-256"),
        "the default offers MD5 only: phones that see SHA-256 named may give up"
    );

    let (presence, device) = presence_and_device(&mut ws).await;
    assert_eq!(presence["status"], "AVAILABLE");
    assert_eq!(presence["previousStatus"], "OFFLINE");
    assert_eq!(presence["cause"]["kind"], "DEVICE");
    assert_eq!(presence["cause"]["reason"], "registered");
    assert_eq!(device["kind"], "REGISTERED");
    assert_eq!(device["device"]["manufacturer"], "SIPp");
    assert_eq!(device["device"]["transport"], "UDP");
    assert_eq!(presence["cause"]["deviceId"], device["device"]["id"]);

    let ext = extension(&app, &alice.id).await;
    assert_eq!(
        (ext["status"].as_str(), ext["registeredDevices"].as_u64()),
        (Some("available"), Some(1))
    );
    let list = phones(&app).await;
    assert_eq!(list.len(), 1);
    let p = &list[0];
    assert_eq!(p["extensionNumber"], "101");
    assert_eq!(p["extensionName"], "Alice");
    assert_eq!(p["deviceType"], "softphone");
    assert_eq!(p["ipAddress"], "127.0.0.1");
    assert_eq!(p["registered"], true);
    assert_eq!(p["transport"], "udp");
    assert_eq!(p["userAgent"], "SIPp/Linux");
    let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "extensionNumber",
            "extensionName",
            "deviceType",
            "manufacturer",
            "model",
            "macAddress",
            "ipAddress",
            "registered",
            "lastRegistered",
            "userAgent",
            "transport",
            "expiresAt"
        ]
    );
    let (_, stats) = app.get("/v1/pbx/phones/stats").await;
    assert_eq!(
        stats,
        json!({"stats": {"totalPhones": 1, "registered": 1, "unregistered": 0,
                         "byType": {"hardware": 0, "softphone": 1, "webrtc": 0, "mobile": 0}}})
    );
    let gql = app
        .graphql("{ extension(number: \"101\") { registeredDevices devices { deviceType registered contact } } phones { id } }", json!({}))
        .await;
    assert_eq!(gql["data"]["extension"]["registeredDevices"], 1);
    assert_eq!(gql["data"]["extension"]["devices"][0]["registered"], true);
    assert!(
        gql["data"]["extension"]["devices"][0]["contact"]
            .as_str()
            .unwrap()
            .starts_with("sip:101-desk@127.0.0.1:")
    );

    // The user part of the AOR may also be the SIP username.
    let run = Sipp::new(&app, "register.xml")
        .user(&alice, &alice.username, &["300", "101-soft"])
        .run()
        .await;
    run.assert_ok();
    assert_eq!(next_device(&mut ws).await["kind"], "REGISTERED");
    assert_eq!(extension(&app, &alice.id).await["registeredDevices"], 2);
}

async fn sipp_registers_over_tcp_and_unregisters_with_a_wildcard(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bob = app.account("102", "Bob").await;
    let mut ws = watch(&app, "102").await;
    let port = crate::common::sip::free_port();
    Sipp::new(&app, "register.xml")
        .tcp()
        .port(port)
        .user(&bob, "102", &["300", "102-a"])
        .run()
        .await
        .assert_ok();
    let (presence, device) = presence_and_device(&mut ws).await;
    assert_eq!(presence["status"], "AVAILABLE");
    assert_eq!(device["device"]["transport"], "TCP");
    assert_eq!(phones(&app).await[0]["transport"], "tcp");

    Sipp::new(&app, "unregister_all.xml")
        .tcp()
        .port(port)
        .user(&bob, "102", &["0", "102-a"])
        .run()
        .await
        .assert_ok();
    let (presence, device) = presence_and_device(&mut ws).await;
    assert_eq!(
        (
            presence["previousStatus"].as_str(),
            presence["status"].as_str()
        ),
        (Some("AVAILABLE"), Some("OFFLINE"))
    );
    assert_eq!(presence["cause"]["reason"], "unregistered");
    assert_eq!(device["kind"], "UNREGISTERED");
    let list = phones(&app).await;
    assert_eq!(list.len(), 1, "an unregistered device stays listed");
    assert_eq!(list[0]["registered"], false);
    assert_eq!(extension(&app, &bob.id).await["registeredDevices"], 0);
}

async fn several_devices_refresh_and_unregister_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let carol = app.account("103", "Carol").await;
    let port = crate::common::sip::free_port();
    let run = Sipp::new(&app, "register.xml")
        .port(port)
        .user(&carol, "103", &["300", "103-desk"])
        .user(&carol, "103", &["300", "103-soft"])
        .user(&carol, "103", &["300", "103-mobile"])
        .run()
        .await;
    run.assert_ok();
    assert_eq!(extension(&app, &carol.id).await["registeredDevices"], 3);
    // The 200 OK lists every current binding with its expiry.
    let last_ok = run.messages.rsplit("SIP/2.0 200 OK").next().unwrap();
    let contacts: Vec<&str> = headers(last_ok, "Contact").collect();
    assert_eq!(contacts.len(), 3, "{last_ok}");
    assert!(contacts.iter().all(|c| c.contains(";expires=")));

    let before: Vec<Value> = phones(&app).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    Sipp::new(&app, "refresh.xml")
        .port(port)
        .user(&carol, "103", &["600", "103-desk"])
        .run()
        .await
        .assert_ok();
    let after = phones(&app).await;
    assert_eq!(after.len(), 3, "a refresh does not add a device");
    // Exactly one device (the desk phone) was refreshed; the others kept their time.
    let advanced: Vec<&Value> = after
        .iter()
        .filter(|a| {
            let b = before.iter().find(|b| b["id"] == a["id"]).unwrap();
            a["lastRegistered"].as_str() > b["lastRegistered"].as_str()
        })
        .collect();
    assert_eq!(advanced.len(), 1, "before {before:?}\nafter {after:?}");
    assert!(advanced[0]["expiresAt"].as_str() > before[0]["expiresAt"].as_str());

    Sipp::new(&app, "unregister.xml")
        .port(port)
        .user(&carol, "103", &["0", "103-soft"])
        .run()
        .await
        .assert_ok();
    assert_eq!(extension(&app, &carol.id).await["registeredDevices"], 2);
    let registered = phones(&app)
        .await
        .iter()
        .filter(|p| p["registered"] == true)
        .count();
    assert_eq!(registered, 2);
    assert_eq!(extension(&app, &carol.id).await["status"], "available");
    // The stats count what the listing shows: the unregistered device is still listed.
    let (_, stats) = app.get("/v1/pbx/phones/stats").await;
    assert_eq!(
        (
            stats["stats"]["totalPhones"].as_u64(),
            stats["stats"]["registered"].as_u64(),
            stats["stats"]["unregistered"].as_u64()
        ),
        (Some(3), Some(2), Some(1)),
        "{stats}"
    );
}

async fn registrations_survive_a_restart(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let dave = app.account("104", "Dave").await;
    Sipp::new(&app, "register.xml")
        .user(&dave, "104", &["600", "104-desk"])
        .run()
        .await
        .assert_ok();
    assert_eq!(extension(&app, &dave.id).await["registeredDevices"], 1);
    app.restart().await;
    let ext = extension(&app, &dave.id).await;
    assert_eq!(
        (ext["registeredDevices"].as_u64(), ext["status"].as_str()),
        (Some(1), Some("available"))
    );
    assert_eq!(phones(&app).await[0]["registered"], true);
}

async fn short_registrations_expire_and_the_extension_goes_offline(backend: Backend) {
    let app = TestApp::spawn_with(backend, &["--sip-min-expires", "1"]).await;
    let erin = app.account("105", "Erin").await;
    let mut ws = watch(&app, "105").await;
    Sipp::new(&app, "register.xml")
        .user(&erin, "105", &["2", "105-desk"])
        .run()
        .await
        .assert_ok();
    let (presence, _) = presence_and_device(&mut ws).await;
    assert_eq!(presence["status"], "AVAILABLE");
    // Expired within a second of its two seconds.
    let (presence, device) = presence_and_device(&mut ws).await;
    assert_eq!(presence["status"], "OFFLINE");
    assert_eq!(presence["cause"]["reason"], "expired");
    assert_eq!(device["kind"], "EXPIRED");
    assert_eq!(phones(&app).await[0]["registered"], false);
}

#[tokio::test]
async fn a_wrong_password_gets_401_and_one_fail2ban_line() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut frank = app.account("106", "Frank").await;
    frank.password = "not-the-password".into();
    Sipp::new(&app, "register_wrong.xml")
        .user(&frank, "106", &["300", "106-desk"])
        .run()
        .await
        .assert_ok();
    let log = app.server_log();
    let line = log
        .lines()
        .find(|l| l.contains("SIP authentication failed"))
        .expect("a log line");
    for part in [
        "source.ip=127.0.0.1",
        "source.port=",
        "pbx.id=pbx_",
        &format!("sip.user={}", frank.username),
        "reason=\"wrong_password\"",
    ] {
        assert!(line.contains(part), "{part} in {line}");
    }
    assert!(phones(&app).await.is_empty());

    // An unknown user is answered exactly the same way.
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let ghost = Account {
        id: String::new(),
        number: "106".into(),
        username: "999_nobody".into(),
        password: "x".into(),
    };
    let resp = raw
        .register_with_auth(&ghost, "106", "ghost-1", "<sip:106@127.0.0.1:9>", "")
        .await;
    assert_eq!(status(&resp), 401);
    assert_eq!(
        headers(&resp, "WWW-Authenticate").count(),
        1,
        "the default MD5 challenge"
    );
    assert!(app.server_log().contains("reason=\"unknown_user\""));
}

#[tokio::test]
async fn an_expired_nonce_gets_stale_true_and_then_works() {
    let app = TestApp::spawn_with(Backend::Sqlite, &["--sip-nonce-ttl", "1"]).await;
    let gina = app.account("107", "Gina").await;
    Sipp::new(&app, "register_stale.xml")
        .user(&gina, "107", &["300", "107-desk"])
        .run()
        .await
        .assert_ok();
    assert_eq!(phones(&app).await.len(), 1);
    assert!(
        !app.server_log().contains("SIP authentication failed"),
        "stale is not a failure"
    );
}

#[tokio::test]
async fn too_short_an_expiry_gets_423_with_min_expires() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let hank = app.account("108", "Hank").await;
    Sipp::new(&app, "register_brief.xml")
        .user(&hank, "108", &["30", "108-desk"])
        .run()
        .await
        .assert_ok();
    assert!(phones(&app).await.is_empty());
}

#[tokio::test]
async fn a_replayed_nonce_count_is_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ivy = app.account("109", "Ivy").await;
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let contact = format!("<sip:109@{}>", raw.local());
    let first = raw
        .transact(&raw.register("109", "replay-1", &contact, ""))
        .await;
    let challenge = header(&first, "WWW-Authenticate").unwrap().to_owned();
    let auth = crate::common::sip::authorization(
        &challenge,
        &ivy.username,
        &ivy.password,
        "REGISTER",
        "sip:127.0.0.1",
        1,
    );
    let ok = raw
        .transact(&raw.register(
            "109",
            "replay-1",
            &contact,
            &format!("Authorization: {auth}\r\n"),
        ))
        .await;
    assert_eq!(status(&ok), 200, "{ok}");
    // The same credentials (nonce-count 1) on a new request: a replay.
    let replay = raw
        .transact(&raw.register(
            "109",
            "replay-1",
            &contact,
            &format!("Authorization: {auth}\r\n"),
        ))
        .await;
    assert_eq!(status(&replay), 401, "{replay}");
    assert!(app.server_log().contains("reason=\"replayed_nonce\""));
    // A higher count on the same nonce is fine.
    let next = crate::common::sip::authorization(
        &challenge,
        &ivy.username,
        &ivy.password,
        "REGISTER",
        "sip:127.0.0.1",
        2,
    );
    let ok = raw
        .transact(&raw.register(
            "109",
            "replay-1",
            &contact,
            &format!("Authorization: {next}\r\n"),
        ))
        .await;
    assert_eq!(status(&ok), 200);
}

#[tokio::test]
async fn a_retransmitted_register_gets_the_same_answer_once_processed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let jack = app.account("110", "Jack").await;
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let contact = format!("<sip:110@{}>", raw.local());
    let first = raw
        .transact(&raw.register("110", "rtx-1", &contact, ""))
        .await;
    let challenge = header(&first, "WWW-Authenticate").unwrap().to_owned();
    let auth = crate::common::sip::authorization(
        &challenge,
        &jack.username,
        &jack.password,
        "REGISTER",
        "sip:127.0.0.1",
        1,
    );
    let request = raw.register(
        "110",
        "rtx-1",
        &contact,
        &format!("Authorization: {auth}\r\n"),
    );
    let a = raw.transact(&request).await;
    let b = raw.transact(&request).await;
    assert_eq!(status(&a), 200);
    assert_eq!(
        a, b,
        "the cached response, byte for byte (not a replay failure)"
    );
    assert!(!app.server_log().contains("SIP authentication failed"));
}

#[tokio::test]
async fn sha256_digest_is_accepted_when_preferred() {
    let app = TestApp::spawn_with(Backend::Sqlite, &["--sip-digest", "SHA-256,MD5"]).await;
    let kim = app.account("111", "Kim").await;
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let first = raw
        .transact(&raw.register("111", "sha-1", "<sip:111@127.0.0.1:9>", ""))
        .await;
    let challenges: Vec<&str> = headers(&first, "WWW-Authenticate").collect();
    assert!(challenges[0].contains("algorithm=SHA-256") && challenges[1].contains("algorithm=MD5"));
    let auth = crate::common::sip::authorization(
        challenges[0],
        &kim.username,
        &kim.password,
        "REGISTER",
        "sip:127.0.0.1",
        1,
    );
    assert!(auth.contains("algorithm=SHA-256"));
    let ok = raw
        .transact(&raw.register(
            "111",
            "sha-1",
            "<sip:111@127.0.0.1:9>",
            &format!("Authorization: {auth}\r\n"),
        ))
        .await;
    assert_eq!(status(&ok), 200, "{ok}");
}

/// SHA-256 is not offered by default, but a phone that answers the (algorithm-free)
/// nonce with a SHA-256 digest is accepted.
#[tokio::test]
async fn a_sha256_answer_is_accepted_on_the_default_md5_challenge() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let kim = app.account("111", "Kim").await;
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let first = raw
        .transact(&raw.register("111", "sha-2", "<sip:111@127.0.0.1:9>", ""))
        .await;
    let challenges: Vec<&str> = headers(&first, "WWW-Authenticate").collect();
    assert_eq!(challenges.len(), 1, "{first}");
    assert!(challenges[0].contains("algorithm=MD5"));
    let as_sha256 = challenges[0].replace("algorithm=MD5", "algorithm=SHA-256");
    let auth = crate::common::sip::authorization(
        &as_sha256,
        &kim.username,
        &kim.password,
        "REGISTER",
        "sip:127.0.0.1",
        1,
    );
    assert!(auth.contains("algorithm=SHA-256"));
    let ok = raw
        .transact(&raw.register(
            "111",
            "sha-2",
            "<sip:111@127.0.0.1:9>",
            &format!("Authorization: {auth}\r\n"),
        ))
        .await;
    assert_eq!(status(&ok), 200, "{ok}");
}

#[tokio::test]
async fn registering_someone_elses_number_is_forbidden() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let liam = app.account("112", "Liam").await;
    app.account("113", "Mia").await;
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let resp = raw
        .register_with_auth(&liam, "113", "steal-1", "<sip:113@127.0.0.1:9>", "")
        .await;
    assert_eq!(status(&resp), 403, "{resp}");
    assert!(phones(&app).await.is_empty());
    assert!(app.server_log().contains("reason=\"wrong_extension\""));
}

#[tokio::test]
async fn out_of_order_cseq_is_ignored() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let noa = app.account("114", "Noa").await;
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let contact = "<sip:114@127.0.0.1:9>";
    let ok = raw
        .register_with_auth(&noa, "114", "order-1", contact, "Expires: 600\r\n")
        .await;
    assert_eq!(status(&ok), 200);
    // Rewind the CSeq: an older request than the binding holds.
    let old = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let resp = old
        .register_with_auth(&noa, "114", "order-1", contact, "Expires: 0\r\n")
        .await;
    assert_eq!(status(&resp), 500, "{resp}");
    assert_eq!(phones(&app).await[0]["registered"], true, "nothing changed");
}

#[tokio::test]
async fn baresip_registers_and_is_recognised() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let olga = app.account("150", "Olga").await;
    let dir = app.data_dir.join("baresip");
    std::fs::create_dir_all(&dir).unwrap();
    let sip_port = crate::common::sip::free_port();
    std::fs::write(
        dir.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\naudio_player aubridge,nil\naudio_source aubridge,nil\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aubridge.so\n\
             module_app account.so\nmodule_app contact.so\nmodule_app menu.so\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:{u}@127.0.0.1;transport=udp>;auth_user={u};auth_pass={p};outbound=\"sip:{server};transport=udp\";regint=600;mwi=no\n",
            u = olga.username,
            p = olga.password,
            server = app.sip_addr()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new("baresip")
        .args(["-f", dir.to_str().unwrap(), "-t", "20"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("baresip runs (apt-get install baresip-core)");
    let phone = eventually(Duration::from_secs(10), || async {
        phones(&app)
            .await
            .into_iter()
            .find(|p| p["registered"] == true)
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(phone["manufacturer"], "baresip");
    assert_eq!(phone["deviceType"], "softphone");
    assert!(phone["userAgent"].as_str().unwrap().starts_with("baresip"));
    assert_eq!(extension(&app, &olga.id).await["status"], "available");
}

/// REGISTERs as `account` from a fresh socket; the final status and the response.
async fn register_as(app: &TestApp, account: &Account, call_id: &str) -> (u16, String) {
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let contact = format!("<sip:{}@{}>", account.number, raw.local());
    let resp = raw
        .register_with_auth(account, &account.number, call_id, &contact, "")
        .await;
    (status(&resp), resp)
}

/// Lines of the server log that report an authentication failure of `user`.
fn auth_failures(app: &TestApp, user: &str) -> Vec<String> {
    app.server_log()
        .lines()
        .filter(|l| {
            l.contains("SIP authentication failed") && l.contains(&format!("sip.user={user} "))
        })
        .map(str::to_owned)
        .collect()
}

async fn a_user_extension_turned_conference_loses_its_phones_and_its_password(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let olga = app.account("301", "Olga").await;
    let path = format!("/v1/pbx/extensions/{}", olga.id);
    let mut ws = watch(&app, "301").await;
    let (code, resp) = register_as(&app, &olga, "olga-1").await;
    assert_eq!(code, 200, "{resp}");
    let (presence, device) = presence_and_device(&mut ws).await;
    assert_eq!(
        (presence["status"].as_str(), device["kind"].as_str()),
        (Some("AVAILABLE"), Some("REGISTERED"))
    );

    let (s, body) = app.patch(&path, json!({"type": "conference"})).await;
    assert_eq!(s, 200, "{body}");
    let ext = &body["extension"];
    assert_eq!(
        (
            ext["type"].as_str(),
            ext["registeredDevices"].as_u64(),
            ext["status"].as_str()
        ),
        (Some("conference"), Some(0), Some("available")),
        "a conference's status follows its room (empty: available), not its phones"
    );
    // Consoles hear the phone go; the status stays available, so no presence event.
    let device = loop {
        match ws.next(WAIT).await {
            crate::common::ws::Incoming::Json(v) if v["id"] == "p" && v["type"] == "next" => {
                panic!("no presence change expected: {v}")
            }
            crate::common::ws::Incoming::Json(v) if v["id"] == "d" && v["type"] == "next" => {
                break v["payload"]["data"]["deviceChanged"].clone();
            }
            crate::common::ws::Incoming::Json(_) => {}
            other => panic!("socket closed: {other:?}"),
        }
    };
    assert_eq!(device["kind"], "UNREGISTERED");
    assert_eq!(device["device"]["registered"], false);
    assert!(
        ws.is_quiet(Duration::from_millis(300)).await,
        "no presence event follows"
    );
    let list = phones(&app).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["registered"], false);

    // The former password is as good as an unknown user's: the same 401, logged as such.
    let (code, resp) = register_as(&app, &olga, "olga-2").await;
    assert_eq!(code, 401, "{resp}");
    assert_eq!(
        headers(&resp, "WWW-Authenticate").count(),
        1,
        "the default MD5 challenge"
    );
    let ghost = Account {
        username: "301_nobody".into(),
        ..olga.clone()
    };
    let (ghost_code, ghost_resp) = register_as(&app, &ghost, "ghost-1").await;
    assert_eq!(ghost_code, code);
    assert_eq!(
        headers(&ghost_resp, "WWW-Authenticate").count(),
        headers(&resp, "WWW-Authenticate").count()
    );
    let failures = auth_failures(&app, &olga.username);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("reason=\"unknown_user\""),
        "{}",
        failures[0]
    );
    assert_eq!(extension(&app, &olga.id).await["registeredDevices"], 0);

    // Back to user: still no password until one is issued; then phones register again.
    let (s, body) = app.patch(&path, json!({"type": "user"})).await;
    assert_eq!(s, 200, "{body}");
    let (code, _) = register_as(&app, &olga, "olga-3").await;
    assert_eq!(code, 401, "the old password did not come back");
    let (s, body) = app
        .post(&format!("{path}/sip-credentials"), json!({}))
        .await;
    assert_eq!(s, 200, "{body}");
    let fresh = Account {
        password: body["extension"]["sipCredentials"]["password"]
            .as_str()
            .unwrap()
            .to_owned(),
        ..olga.clone()
    };
    let (code, resp) = register_as(&app, &fresh, "olga-4").await;
    assert_eq!(code, 200, "{resp}");
}

async fn the_migration_takes_credentials_and_phones_from_existing_non_user_extensions(
    backend: Backend,
) {
    let mut app = TestApp::spawn(backend).await;
    let pia = app.account("302", "Pia").await;
    let (code, resp) = register_as(&app, &pia, "pia-1").await;
    assert_eq!(code, 200, "{resp}");
    assert_eq!(extension(&app, &pia.id).await["registeredDevices"], 1);

    // As an older version left it: a paging extension with credentials and a live
    // phone, and the migration not yet applied.
    app.stop();
    app.sql(&format!(
        "UPDATE extension SET kind = 'paging' WHERE id = '{}';
         DELETE FROM __diesel_schema_migrations WHERE version = '20261201000001';",
        pia.id
    ))
    .await;
    app.start().await;

    let ext = extension(&app, &pia.id).await;
    assert_eq!(
        (ext["type"].as_str(), ext["registeredDevices"].as_u64()),
        (Some("paging"), Some(0)),
        "the phone's binding ended with the migration"
    );
    let list = phones(&app).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["registered"], false);
    let (code, _) = register_as(&app, &pia, "pia-2").await;
    assert_eq!(code, 401);

    // The credentials themselves are gone, not only refused for the type: made a user
    // extension again, the old password still fails.
    let (s, body) = app
        .patch(
            &format!("/v1/pbx/extensions/{}", pia.id),
            json!({"type": "user"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (code, resp) = register_as(&app, &pia, "pia-3").await;
    assert_eq!(code, 401, "{resp}");
    let failures = auth_failures(&app, &pia.username);
    assert!(
        failures
            .iter()
            .all(|l| l.contains("reason=\"unknown_user\"")),
        "{failures:?}"
    );
}
