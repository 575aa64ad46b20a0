//! SIP interop found by outside testing: final responses to INVITE retransmitted over
//! UDP until their ACK (RFC 3261 §17.2.1), `Require` on proxied requests, and which SIP
//! domains reach which PBX.

use crate::common::sip::{Account, DialogView, RawSip, ack_of, header, reply, status};
use crate::common::{Backend, TestApp, eventually};
use std::time::{Duration, Instant};

/// Final responses to `invite` that arrive within `limit`, with when they came.
async fn finals_within(raw: &RawSip, limit: Duration) -> Vec<(Duration, String)> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while let Some(left) = limit.checked_sub(start.elapsed()) {
        match raw.recv(left).await {
            Some(msg) if status(&msg) >= 200 => seen.push((start.elapsed(), msg)),
            Some(_) => {}
            None => break,
        }
    }
    seen
}

/// A 407 to an INVITE over UDP comes again on Timer G (T1 = 0.5 s, doubling) while the
/// caller does not acknowledge it, and stops once the ACK arrives.
#[tokio::test]
async fn an_unacknowledged_invite_failure_over_udp_is_sent_again_until_its_ack() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let caller = app.account("201", "Caller").await;
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    raw.send(&raw.invite(&caller.number, "202", "timer-g", ""))
        .await;
    // Sent at 0, 0.5 and 1.5 s; the next would come at 3.5 s.
    let copies = finals_within(&raw, Duration::from_millis(2_300)).await;
    assert_eq!(
        copies.len(),
        3,
        "the 407 and two retransmissions: {:?}",
        copies.iter().map(|(t, _)| t).collect::<Vec<_>>()
    );
    assert!(copies.iter().all(|(_, m)| status(m) == 407));
    assert!(
        copies.windows(2).all(|w| w[0].1 == w[1].1),
        "the same response each time"
    );
    let (first_gap, second_gap) = (copies[1].0 - copies[0].0, copies[2].0 - copies[1].0);
    assert!(
        second_gap > first_gap + Duration::from_millis(200),
        "the interval doubles: {first_gap:?} then {second_gap:?}"
    );
    raw.send(&ack_of(&copies[0].1, "202")).await;
    let after_ack = finals_within(&raw, Duration::from_millis(2_500)).await;
    assert!(after_ack.is_empty(), "sent again after its ACK");
}

/// A phone registered for `account` on its own UDP socket; returns it and its Contact.
async fn phone(app: &TestApp, account: &Account) -> (RawSip, String) {
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let contact = format!("<sip:{}@{}>", account.number, raw.local());
    let ok = raw
        .register_with_auth(
            account,
            &account.number,
            &format!("reg-{}", account.number),
            &contact,
            "",
        )
        .await;
    assert_eq!(status(&ok), 200, "{ok}");
    (raw, contact)
}

fn cseq_number(msg: &str) -> u32 {
    header(msg, "CSeq")
        .and_then(|c| c.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A phone that answers `incoming` (an INVITE it received) with 200 and our SDP, and
/// takes the caller's ACK.
async fn answer(callee: &RawSip, incoming: &str, tag: &str, contact: &str) {
    let ok = reply(
        incoming,
        200,
        "OK",
        tag,
        &format!("Contact: {contact}\r\n"),
        &callee.pcmu_offer(),
    );
    callee.send(&ok).await;
}

/// `Require: 100rel` is the callee's business: the INVITE reaches it with the header,
/// its reliable 183 reaches the caller with `Require` and `RSeq`, and the caller's PRACK
/// within the early dialog is relayed to it and answered end to end (RFC 3262).
#[tokio::test]
async fn a_reliable_provisional_and_its_prack_are_relayed_end_to_end() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.account("201", "Alice").await;
    let bob = app.account("202", "Bob").await;
    let (callee, contact) = phone(&app, &bob).await;
    let caller = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let invite = caller
        .send_invite_with_auth(
            &alice,
            "202",
            "prack-1",
            "Require: 100rel\r\nSupported: 100rel\r\n",
            &caller.pcmu_offer(),
        )
        .await;
    let incoming = callee.expect_request("INVITE").await;
    assert_eq!(header(&incoming, "Require"), Some("100rel"), "{incoming}");

    let reliable = reply(
        &incoming,
        183,
        "Session Progress",
        "bob-1",
        &format!("Contact: {contact}\r\nRequire: 100rel\r\nRSeq: 1\r\n"),
        "",
    );
    callee.send(&reliable).await;
    let early = caller.expect_response(183, "INVITE").await;
    assert_eq!(header(&early, "Require"), Some("100rel"), "{early}");
    assert_eq!(header(&early, "RSeq"), Some("1"));

    let caller_dialog = DialogView::of_caller(&invite, &early);
    assert!(!caller_dialog.route.is_empty(), "the proxy record-routes");
    let invite_cseq = cseq_number(&invite);
    let prack = caller_dialog.request(
        "PRACK",
        invite_cseq + 1,
        caller.local(),
        &format!("RAck: 1 {invite_cseq} INVITE\r\n"),
    );
    caller.send(&prack).await;
    let relayed = callee.expect_request("PRACK").await;
    assert_eq!(
        header(&relayed, "RAck"),
        Some(format!("1 {invite_cseq} INVITE").as_str())
    );
    callee
        .send(&reply(&relayed, 200, "OK", "bob-1", "", ""))
        .await;
    caller.expect_response(200, "PRACK").await;

    answer(&callee, &incoming, "bob-1", &contact).await;
    let answered = caller.expect_response(200, "INVITE").await;
    let caller_dialog = DialogView::of_caller(&invite, &answered);
    caller
        .send(&caller_dialog.request("ACK", invite_cseq, caller.local(), ""))
        .await;
    callee.expect_request("ACK").await;
    caller
        .send(&caller_dialog.request("BYE", invite_cseq + 2, caller.local(), ""))
        .await;
    let bye = callee.expect_request("BYE").await;
    callee.send(&reply(&bye, 200, "OK", "", "", "")).await;
    caller.expect_response(200, "BYE").await;
}

/// An attended transfer through the proxy: A talks to C, then to B, and refers B to C
/// with `Replaces`; B's INVITE to C carries `Replaces` and `Require: replaces`, which
/// reach C untouched; C answers B and hangs up on A.
#[tokio::test]
async fn an_attended_transfer_with_replaces_reaches_the_transfer_target() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let a = app.account("301", "Ann").await;
    let b = app.account("302", "Ben").await;
    let c = app.account("303", "Cat").await;
    let (phone_a, _) = phone(&app, &a).await;
    let (phone_b, contact_b) = phone(&app, &b).await;
    let (phone_c, contact_c) = phone(&app, &c).await;

    // A calls C; C answers.
    let invite_ac = phone_a
        .send_invite_with_auth(&a, "303", "xfer-ac", "", &phone_a.pcmu_offer())
        .await;
    let at_c = phone_c.expect_request("INVITE").await;
    answer(&phone_c, &at_c, "cat-1", &contact_c).await;
    let ok_ac = phone_a.expect_response(200, "INVITE").await;
    let a_to_c = DialogView::of_caller(&invite_ac, &ok_ac);
    phone_a
        .send(&a_to_c.request("ACK", cseq_number(&invite_ac), phone_a.local(), ""))
        .await;
    phone_c.expect_request("ACK").await;

    // A calls B; B answers.
    let invite_ab = phone_a
        .send_invite_with_auth(&a, "302", "xfer-ab", "", &phone_a.pcmu_offer())
        .await;
    let at_b = phone_b.expect_request("INVITE").await;
    answer(&phone_b, &at_b, "ben-1", &contact_b).await;
    let ok_ab = phone_a.expect_response(200, "INVITE").await;
    let a_to_b = DialogView::of_caller(&invite_ab, &ok_ab);
    let ab_cseq = cseq_number(&invite_ab);
    phone_a
        .send(&a_to_b.request("ACK", ab_cseq, phone_a.local(), ""))
        .await;
    phone_b.expect_request("ACK").await;

    // A refers B to C, replacing A's call with C.
    let a_tag = invite_ac
        .split("tag=")
        .nth(1)
        .and_then(|t| t.split(['\r', ';']).next())
        .unwrap();
    let replaces = format!("xfer-ac;to-tag=cat-1;from-tag={a_tag}");
    let refer = a_to_b.request(
        "REFER",
        ab_cseq + 1,
        phone_a.local(),
        &format!(
            "Refer-To: <sip:303@127.0.0.1?Replaces={}>\r\nReferred-By: <sip:301@127.0.0.1>\r\n",
            replaces.replace(';', "%3B").replace('=', "%3D")
        ),
    );
    phone_a.send(&refer).await;
    let refer_at_b = phone_b.expect_request("REFER").await;
    assert!(
        header(&refer_at_b, "Refer-To")
            .unwrap()
            .contains("Replaces=xfer-ac")
    );
    phone_b
        .send(&reply(&refer_at_b, 202, "Accepted", "ben-1", "", ""))
        .await;
    phone_a.expect_response(202, "REFER").await;

    // B calls C with Replaces; C gets it intact and answers.
    let invite_bc = phone_b
        .send_invite_with_auth(
            &b,
            "303",
            "xfer-bc",
            &format!(
                "Replaces: {replaces}\r\nRequire: replaces\r\nReferred-By: <sip:301@127.0.0.1>\r\n"
            ),
            &phone_b.pcmu_offer(),
        )
        .await;
    let replacing = phone_c.expect_request("INVITE").await;
    assert_eq!(header(&replacing, "Call-ID"), Some("xfer-bc"));
    assert_eq!(header(&replacing, "Replaces"), Some(replaces.as_str()));
    assert_eq!(header(&replacing, "Require"), Some("replaces"));
    answer(&phone_c, &replacing, "cat-2", &contact_c).await;
    let ok_bc = phone_b.expect_response(200, "INVITE").await;
    let b_to_c = DialogView::of_caller(&invite_bc, &ok_bc);
    phone_b
        .send(&b_to_c.request("ACK", cseq_number(&invite_bc), phone_b.local(), ""))
        .await;
    phone_c.expect_request("ACK").await;

    // C ends the replaced call with A; A ends its call with B.
    let c_to_a = DialogView::of_callee(&at_c, "cat-1");
    phone_c
        .send(&c_to_a.request("BYE", 1, phone_c.local(), ""))
        .await;
    let bye_at_a = phone_a.expect_request("BYE").await;
    assert_eq!(header(&bye_at_a, "Call-ID"), Some("xfer-ac"));
    phone_a.send(&reply(&bye_at_a, 200, "OK", "", "", "")).await;
    phone_c.expect_response(200, "BYE").await;
    phone_a
        .send(&a_to_b.request("BYE", ab_cseq + 2, phone_a.local(), ""))
        .await;
    let bye_at_b = phone_b.expect_request("BYE").await;
    phone_b.send(&reply(&bye_at_b, 200, "OK", "", "", "")).await;
    phone_a.expect_response(200, "BYE").await;

    // The transferred call B–C is the one still up (the ended calls' records are
    // written just after their BYEs are relayed).
    let active = eventually(Duration::from_secs(5), || async {
        let (_, calls) = app.get("/v1/pbx/calls?active=true").await;
        let active: Vec<String> = calls["calls"]
            .as_array()?
            .iter()
            .filter_map(|c| c["sipCallId"].as_str().map(str::to_owned))
            .collect();
        (active.len() == 1).then_some(active)
    })
    .await;
    assert_eq!(active, ["xfer-bc"]);
}

/// Requests the server answers itself still refuse what they cannot do: 420 with
/// `Unsupported` for REGISTER and SUBSCRIBE, and for a call that voicemail takes.
#[tokio::test]
async fn requests_answered_here_still_get_420_for_require() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let dora = app.account("204", "Dora").await;
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let register = raw.register("204", "req-1", "<sip:204@127.0.0.1:9>", "Require: gruu\r\n");
    let resp = raw.transact(&register).await;
    assert_eq!(status(&resp), 420, "{resp}");
    assert_eq!(header(&resp, "Unsupported"), Some("gruu"));
    // DND sends the call to voicemail, which is the UAS: 100rel is refused there.
    let (code, _) = app
        .patch(
            &format!("/v1/pbx/extensions/{}", dora.id),
            serde_json::json!({"presence": "dnd"}),
        )
        .await;
    assert_eq!(code, 200);
    let caller = app.account("205", "Eve").await;
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let resp = raw
        .invite_with_auth(&caller, "204", "req-2", "Require: 100rel\r\n")
        .await;
    assert_eq!(status(&resp), 420, "{resp}");
    assert_eq!(header(&resp, "Unsupported"), Some("100rel"));
    // A proxy extension we do not have is refused whoever answers.
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let resp = raw
        .transact(&raw.invite(&caller.number, "204", "req-3", "Proxy-Require: foo\r\n"))
        .await;
    assert_eq!(status(&resp), 420, "{resp}");
    assert_eq!(header(&resp, "Unsupported"), Some("foo"));
}

/// A REGISTER for `account` at `domain` (Request-URI, From and To), answering the
/// challenge when there is one; returns the final response.
async fn register_at(raw: &RawSip, account: &Account, domain: &str, call_id: &str) -> String {
    let at = |msg: String| {
        msg.replace(
            "REGISTER sip:127.0.0.1 ",
            &format!("REGISTER sip:{domain} "),
        )
        .replace(
            &format!("<sip:{}@127.0.0.1>", account.number),
            &format!("<sip:{}@{domain}>", account.number),
        )
    };
    let contact = format!("<sip:{}@{}>", account.number, raw.local());
    let first = raw
        .transact(&at(raw.register(&account.number, call_id, &contact, "")))
        .await;
    if status(&first) != 401 {
        return first;
    }
    let challenge = header(&first, "WWW-Authenticate").unwrap().to_owned();
    let auth = crate::common::sip::authorization(
        &challenge,
        &account.username,
        &account.password,
        "REGISTER",
        &format!("sip:{domain}"),
        1,
    );
    raw.transact(&at(raw.register(
        &account.number,
        call_id,
        &contact,
        &format!("Authorization: {auth}\r\n"),
    )))
    .await
}

/// A PBX's own domain reaches it, this server's own names reach the default PBX, and a
/// domain no PBX hosts is refused: 404 for REGISTER and SUBSCRIBE, 403 for INVITE.
#[tokio::test]
async fn requests_for_a_domain_no_pbx_hosts_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.account("101", "Alice").await;
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;

    let foreign = register_at(&raw, &alice, "elsewhere.example", "dom-1").await;
    assert_eq!(status(&foreign), 404, "{foreign}");
    let local = raw.local();
    let subscribe = format!(
        "SUBSCRIBE sip:101@elsewhere.example SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-dom-2\r\n\
         From: <sip:101@elsewhere.example>;tag=s1\r\nTo: <sip:101@elsewhere.example>\r\nCall-ID: dom-2\r\n\
         CSeq: 1 SUBSCRIBE\r\nContact: <sip:101@{local}>\r\nEvent: message-summary\r\nExpires: 600\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let resp = raw.transact(&subscribe).await;
    assert_eq!(status(&resp), 404, "{resp}");
    let invite = raw.invite(&alice.number, "102", "dom-3", "").replace(
        "From: <sip:101@127.0.0.1>",
        "From: <sip:101@elsewhere.example>",
    );
    let resp = raw.transact(&invite).await;
    assert_eq!(status(&resp), 403, "{resp}");

    // `localhost` is this server: the default PBX (realm 127.0.0.1) takes it.
    let own = register_at(&raw, &alice, "localhost", "dom-4").await;
    assert_eq!(status(&own), 200, "{own}");

    // Another tenant's domain reaches that tenant, and only its extensions.
    let (ok, acme, err) = app.cli(&["pbx", "create", "acme", "--domain", "acme.example"]);
    assert!(ok, "{err}");
    let acme_key = app.api_key(acme.trim(), None);
    let (code, ext) = crate::common::send(
        app.request_as(&acme_key, reqwest::Method::POST, "/v1/pbx/extensions")
            .json(&serde_json::json!({"number": "201", "name": "Ada"})),
    )
    .await;
    assert_eq!(code, 201, "{ext}");
    let ada = crate::common::sip::account_of(&ext["extension"]);
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let at_acme = register_at(&raw, &ada, "acme.example", "dom-5").await;
    assert_eq!(status(&at_acme), 200, "{at_acme}");
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let alice_at_acme = register_at(&raw, &alice, "acme.example", "dom-6").await;
    assert_eq!(
        status(&alice_at_acme),
        401,
        "another tenant's user is not known there"
    );
}
