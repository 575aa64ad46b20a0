//! Voicemail with real callers and real audio: baresip with a WAV microphone and a raw
//! RTP sender reach extensions in DND, without devices and not answering; the stored
//! WAV, the REST API and the events agree; MWI reaches a SIPp phone; on both databases.

use crate::common::sip::{
    Account, RawSip, Sipp, baresip, baresip_dir, free_port, header, status, write_wav,
};
use crate::common::ws::GqlWs;
use crate::common::{Backend, TestApp, eventually};
use crate::on_both_backends;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

on_both_backends!(
    a_caller_in_dnd_leaves_a_message_the_api_serves_and_manages,
    notify_email_is_exactly_one_address,
);

async fn notify_email_is_exactly_one_address(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_extension("102", "Bob").await;
    let path = "/v1/pbx/voicemail/mailboxes/vm_102";
    let (s, body) = app
        .patch(path, json!({"notifyEmail": "bob@example.com"}))
        .await;
    assert_eq!(s, 200, "{body}");
    for two in [
        "a@b.c;x@evil.com",
        "a@evil.com@b.c",
        "a@b.c,x@evil.com",
        "Bob <bob@example.com>",
        "bob@example.com\r\nBcc: x@evil.com",
    ] {
        let (s, err) = app.patch(path, json!({"notifyEmail": two})).await;
        assert_eq!(
            (s.as_u16(), err["error"].as_str(), err["field"].as_str()),
            (422, Some("validation_error"), Some("notifyEmail")),
            "{two:?}: {err}"
        );
        let out = app
            .graphql(
                "mutation($e: String) { updateMailbox(id: \"vm_102\", input: {notifyEmail: $e}) { notifyEmail } }",
                json!({"e": two}),
            )
            .await;
        let ext = &out["errors"][0]["extensions"];
        assert_eq!(
            (ext["code"].as_str(), ext["field"].as_str()),
            (Some("validation_error"), Some("notifyEmail")),
            "{two:?}: {out}"
        );
    }
    let (_, m) = app.get(path).await;
    assert_eq!(
        m["mailbox"]["notifyEmail"], "bob@example.com",
        "refusals changed nothing"
    );
}

const WAIT: Duration = Duration::from_secs(15);

/// Seconds of voice (20 ms frames louder than a whisper) in a stored message.
fn voiced_seconds(wav: &[u8]) -> f64 {
    let mut reader = hound::WavReader::new(std::io::Cursor::new(wav)).unwrap();
    let spec = reader.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (1, 8000, 16),
        "8 kHz 16-bit mono"
    );
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let voiced = samples
        .chunks(160)
        .filter(|f| {
            let energy: f64 = f.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / f.len() as f64;
            energy.sqrt() > 1000.0
        })
        .count();
    voiced as f64 * 0.02
}

async fn messages(app: &TestApp, mailbox: &str) -> Vec<Value> {
    let (s, body) = app
        .get(&format!("/v1/pbx/voicemail/mailboxes/{mailbox}/messages"))
        .await;
    assert_eq!(s, 200, "{body}");
    body["messages"].as_array().unwrap().clone()
}

async fn one_message(app: &TestApp, mailbox: &str) -> Value {
    one_message_within(app, mailbox, WAIT).await
}

async fn audio(app: &TestApp, message: &Value, range: Option<&str>) -> reqwest::Response {
    let mut req = app.request(Method::GET, message["audioUrl"].as_str().unwrap());
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    req.send().await.unwrap()
}

/// The last ended call, once there is one.
async fn ended_call(app: &TestApp) -> Value {
    eventually(WAIT, || async {
        let (_, body) = app.get("/v1/pbx/calls").await;
        body["calls"]
            .as_array()
            .and_then(|c| c.first().cloned())
            .filter(|c| c["state"] == "ended")
    })
    .await
}

async fn put_greeting(
    app: &TestApp,
    mailbox: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let resp = app
        .request(
            Method::PUT,
            &format!("/v1/pbx/voicemail/mailboxes/{mailbox}/greeting"),
        )
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn a_caller_in_dnd_leaves_a_message_the_api_serves_and_manages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.account("101", "Alice").await;
    let bob = app.account("102", "Bob").await;
    let (s, _) = app
        .patch(
            &format!("/v1/pbx/extensions/{}", bob.id),
            json!({"presence": "dnd"}),
        )
        .await;
    assert_eq!(s, 200);

    // A short custom greeting (16 kHz stereo, converted on upload) keeps the test quick.
    let greeting = app.data_dir.join("greeting.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&greeting, spec).unwrap();
    for i in 0..16000 {
        let v = (3000.0 * (i as f64 / 10.0).sin()) as i16;
        w.write_sample(v).unwrap();
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
    let (s, body) = put_greeting(
        &app,
        "vm_102",
        "audio/wav",
        std::fs::read(&greeting).unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["mailbox"]["greetingType"], "custom");

    let mut ws = GqlWs::connect(&app.base, "graphql-transport-ws", json!({"token": app.key})).await;
    ws.subscribe(
        "vm",
        "subscription { voicemailEvents { kind mailboxId extension { number } newMessages oldMessages \
         message { id callerNumber callerName durationMs heard audioUrl } } }",
        json!({}),
    )
    .await;
    // The caller: 2.5 s of quiet (greeting and beep take 1.6 s), 3 s of tone, quiet;
    // it hangs up after 8 s.
    let wav = app.data_dir.join("caller.wav");
    write_wav(&wav, &[(2.5, false), (3.0, true), (10.0, false)]);
    let caller = baresip(baresip_dir(&app, &alice, &wav), 8, Some("102"))
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&caller.stdout).into_owned()
        + &String::from_utf8_lossy(&caller.stderr);
    assert!(out.contains("Call established"), "{out}");

    let message = one_message(&app, "vm_102").await;
    assert_eq!(message["callerNumber"], "101");
    assert_eq!(message["callerName"], "Alice");
    assert_eq!(message["heard"], false);
    // The event, the REST listing and the GraphQL query tell the same story.
    let event = ws.next_data("vm", WAIT).await["voicemailEvents"].clone();
    assert_eq!(event["kind"], "DEPOSITED");
    assert_eq!(event["mailboxId"], "vm_102");
    assert_eq!(
        (event["newMessages"].as_u64(), event["oldMessages"].as_u64()),
        (Some(1), Some(0))
    );
    for key in [
        "id",
        "callerNumber",
        "callerName",
        "durationMs",
        "heard",
        "audioUrl",
    ] {
        assert_eq!(event["message"][key], message[key], "{key}");
    }
    let listed = app
        .graphql(
            "query { mailboxes { id newMessages messageCount greetingType } \
             voicemailMessages(mailboxId: \"vm_102\") { id durationMs callerNumber } }",
            json!({}),
        )
        .await;
    let mailbox = &listed["data"]["mailboxes"][1];
    assert_eq!(
        (
            mailbox["id"].as_str(),
            mailbox["newMessages"].as_u64(),
            mailbox["greetingType"].as_str()
        ),
        (Some("vm_102"), Some(1), Some("CUSTOM"))
    );
    assert_eq!(listed["data"]["voicemailMessages"][0]["id"], message["id"]);
    assert_eq!(
        listed["data"]["voicemailMessages"][0]["durationMs"],
        message["durationMs"]
    );
    let resp = audio(&app, &message, None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/wav");
    assert_eq!(resp.headers()["accept-ranges"], "bytes");
    let wav = resp.bytes().await.unwrap();
    let voiced = voiced_seconds(&wav);
    assert!(
        (2.7..=3.3).contains(&voiced),
        "3 s of tone sent, {voiced} s stored"
    );
    let stored_ms = (wav.len() as i64 - 44) * 1000 / 16000;
    assert!(
        (message["durationMs"].as_i64().unwrap() - stored_ms).abs() <= 20,
        "listing and file agree: {message} vs {stored_ms} ms"
    );

    // Range requests: a prefix, a suffix, and one past the end.
    let part = audio(&app, &message, Some("bytes=0-3")).await;
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 0-3/{}", wav.len()).as_str()
    );
    assert_eq!(&part.bytes().await.unwrap()[..], b"RIFF");
    let tail = audio(&app, &message, Some("bytes=-10")).await;
    assert_eq!(tail.status(), 206);
    assert_eq!(&tail.bytes().await.unwrap()[..], &wav[wav.len() - 10..]);
    let past = audio(&app, &message, Some(&format!("bytes={}-", wav.len()))).await;
    assert_eq!(past.status(), 416);
    assert_eq!(
        past.headers()["content-range"],
        format!("bytes */{}", wav.len()).as_str()
    );

    let call = ended_call(&app).await;
    assert_eq!(call["disposition"], "voicemail");
    assert_eq!(call["hangupSide"], "caller");

    // The mailbox counts it; heard, then deleted (file and all).
    let (_, list) = app.get("/v1/pbx/voicemail/mailboxes").await;
    let mailbox = list["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "vm_102")
        .unwrap()
        .clone();
    assert_eq!(
        (
            mailbox["messageCount"].as_u64(),
            mailbox["newMessages"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let url = format!(
        "/v1/pbx/voicemail/mailboxes/vm_102/messages/{}",
        message["id"].as_str().unwrap()
    );
    let (s, body) = app.patch(&url, json!({"heard": true})).await;
    assert_eq!((s.as_u16(), &body["message"]["heard"]), (200, &json!(true)));
    let event = ws.next_data("vm", WAIT).await["voicemailEvents"].clone();
    assert_eq!(
        (
            event["kind"].as_str(),
            event["newMessages"].as_u64(),
            event["oldMessages"].as_u64()
        ),
        (Some("HEARD"), Some(0), Some(1))
    );
    let (_, mailbox) = app.get("/v1/pbx/voicemail/mailboxes/vm_102").await;
    assert_eq!(mailbox["mailbox"]["newMessages"], 0);
    let (s, _) = app.delete(&url).await;
    assert_eq!(s, 204);
    let event = ws.next_data("vm", WAIT).await["voicemailEvents"].clone();
    assert_eq!(event["kind"], "DELETED");
    assert!(messages(&app, "vm_102").await.is_empty());
    assert_eq!(audio(&app, &message, None).await.status(), 404);
    let files = walk(&app.data_dir.join("voicemail"));
    assert!(
        files
            .iter()
            .all(|f| !f.contains(message["id"].as_str().unwrap())),
        "{files:?}"
    );
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

/// An RTP packet of PCMU samples.
fn rtp(ssrc: u32, seq: u16, ts: u32, samples: &[i16]) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend(
        samples
            .iter()
            .map(|s| switchboard::media::g711::ulaw_encode(*s)),
    );
    p
}

fn tone_frame(n: usize) -> Vec<i16> {
    (0..160)
        .map(|i| {
            (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * (n * 160 + i) as f64 / 8000.0).sin())
                as i16
        })
        .collect()
}

/// The SDP port of a message body.
fn sdp_port(msg: &str) -> u16 {
    msg.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio in {msg}"))
}

/// The ACK or BYE of a raw caller within the dialog a 200 set up.
fn in_dialog(method: &str, ok: &str, raw: &RawSip, cseq: u32) -> String {
    let contact = header(ok, "Contact").unwrap();
    let target = contact.trim_start_matches('<').split('>').next().unwrap();
    format!(
        "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-{}-{cseq}\r\nFrom: {}\r\nTo: {}\r\n\
         Call-ID: {}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        raw.local(),
        method.to_lowercase(),
        header(ok, "From").unwrap(),
        header(ok, "To").unwrap(),
        header(ok, "Call-ID").unwrap()
    )
}

/// Gives a mailbox a half-second greeting, so that callers reach the beep quickly.
async fn short_greeting(app: &TestApp, mailbox: &str) {
    let greeting = app.data_dir.join(format!("greeting-{mailbox}.wav"));
    write_wav(&greeting, &[(0.5, false)]);
    let (s, body) = put_greeting(
        app,
        mailbox,
        "audio/x-wav",
        std::fs::read(&greeting).unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{body}");
}

/// A raw SIP caller in voicemail, past the greeting and the beep.
struct RawCall {
    raw: RawSip,
    ok: String,
    media: tokio::net::UdpSocket,
    server_rtp: std::net::SocketAddr,
    greeting_packets: usize,
}

impl RawCall {
    /// Calls `dialled` (which goes to voicemail), checks the answer and waits out the
    /// greeting, which must come from the port the SDP named.
    async fn reach_voicemail(
        app: &TestApp,
        caller: &Account,
        dialled: &str,
        call_id: &str,
    ) -> RawCall {
        let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
        let media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = media.local_addr().unwrap().port();
        let offer = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 18 0 101\r\n\
             a=rtpmap:101 telephone-event/8000\r\n"
        );
        let ok = raw
            .invite_with_auth_body(caller, dialled, call_id, "", &offer)
            .await;
        assert_eq!(status(&ok), 200, "{ok}");
        assert_eq!(header(&ok, "Content-Type"), Some("application/sdp"));
        assert!(
            ok.contains("RTP/AVP 0 101\r\n"),
            "PCMU and telephone-event: {ok}"
        );
        let server_rtp = std::net::SocketAddr::from(([127, 0, 0, 1], sdp_port(&ok)));
        raw.send(&in_dialog("ACK", &ok, &raw, 1)).await;
        let mut buf = [0u8; 2048];
        let mut greeting_packets = 0;
        let mut gap = Duration::from_secs(5); // for the first packet
        while let Ok(Ok((n, from))) = tokio::time::timeout(gap, media.recv_from(&mut buf)).await {
            assert_eq!(from, server_rtp, "RTP comes from the port the SDP named");
            assert!(n == 12 + 160 && buf[1] & 0x7f == 0, "20 ms PCMU packets");
            greeting_packets += 1;
            gap = Duration::from_millis(300);
        }
        RawCall {
            raw,
            ok,
            media,
            server_rtp,
            greeting_packets,
        }
    }

    /// Sends RTP packets 20 ms apart.
    async fn speak(&self, packets: impl IntoIterator<Item = Vec<u8>>) {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for packet in packets {
            tick.tick().await;
            self.media.send_to(&packet, self.server_rtp).await.unwrap();
        }
    }

    async fn hang_up(&self) {
        let bye = self
            .raw
            .transact(&in_dialog("BYE", &self.ok, &self.raw, 2))
            .await;
        assert_eq!(status(&bye), 200);
    }
}

/// `seconds` of tone as RTP, in order.
fn tone_packets(seconds: f64) -> Vec<Vec<u8>> {
    (0..(seconds * 50.0) as usize)
        .map(|n| rtp(0x1234, n as u16, (n * 160) as u32, &tone_frame(n)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_rtp_with_loss_reordering_and_a_new_ssrc_is_recorded_on_its_timeline() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.account("101", "Alice").await;
    app.account("102", "Bob").await; // no device: straight to voicemail
    short_greeting(&app, "vm_102").await;

    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    // G.729 only: nothing voicemail can play.
    let g729 = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    let r = raw
        .invite_with_auth_body(&alice, "102", "vm-g729", "", g729)
        .await;
    assert_eq!(status(&r), 488, "{r}");
    assert!(header(&r, "Warning").unwrap().starts_with("305 "));
    raw.send(&crate::common::sip::ack_of(&r, "102")).await;
    let r = raw
        .invite_with_auth_body(&alice, "102", "vm-nosdp", "", "")
        .await;
    assert_eq!(status(&r), 488, "{r}");
    raw.send(&crate::common::sip::ack_of(&r, "102")).await;

    let call = RawCall::reach_voicemail(&app, &alice, "102", "vm-raw").await;
    assert!(
        (50..=70).contains(&call.greeting_packets),
        "0.5 s + 0.2 s + 0.4 s, {} packets",
        call.greeting_packets
    );
    // 2 s of tone in 100 packets: 51 and 50 swapped, 70 lost, 30 sent twice; then the
    // phone restarts its stream (new SSRC, new numbering) for 1 s more.
    let mut order: Vec<usize> = (0..100).filter(|&n| n != 70).collect();
    order.swap(50, 51);
    order.insert(31, 30);
    let first = order.into_iter().map(|n| {
        rtp(
            0xAAAA,
            1000 + n as u16,
            50_000 + (n * 160) as u32,
            &tone_frame(n),
        )
    });
    let second = (0..50usize).map(|n| {
        rtp(
            0xBBBB,
            60_000u16.wrapping_add(n as u16),
            9_000 + (n * 160) as u32,
            &tone_frame(n),
        )
    });
    call.speak(first.chain(second)).await;
    call.hang_up().await;

    let message = one_message(&app, "vm_102").await;
    let wav = audio(&app, &message, None).await.bytes().await.unwrap();
    let duration = message["durationMs"].as_i64().unwrap();
    assert!(
        (2700..=3300).contains(&duration),
        "3 s sent, {duration} ms stored"
    );
    let voiced = voiced_seconds(&wav);
    assert!(
        (2.8..=3.1).contains(&voiced),
        "one lost packet of 150: {voiced} s voiced"
    );
    let record = ended_call(&app).await;
    assert_eq!(
        (
            record["disposition"].as_str(),
            record["hangupSide"].as_str()
        ),
        (Some("voicemail"), Some("caller"))
    );
    let (_, health) = app.get("/healthz").await;
    assert_eq!(health["sip"]["rtpPortsInUse"], 0, "{health}");
    assert_eq!(health["sip"]["voicemailCalls"], 0);
}

on_both_backends!(message_waiting_lamps_follow_the_mailbox);

async fn message_waiting_lamps_follow_the_mailbox(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.account("101", "Alice").await;
    let bob = app.account("102", "Bob").await;
    short_greeting(&app, "vm_102").await;
    // Bob's desk phone (registered, never subscribes) and his softphone (subscribes).
    let desk = free_port();
    let register_desk = || async {
        Sipp::new(&app, "register_to.xml")
            .user(
                &bob,
                &bob.number,
                &["600", &format!("102@127.0.0.1:{desk}")],
            )
            .run()
            .await
            .assert_ok();
    };
    register_desk().await;
    let lamp = Sipp::uas(&app, "mwi_device.xml", desk).calls(3).spawn();
    let subscriber = Sipp::new(&app, "mwi_subscribe.xml")
        .user(&bob, &bob.number, &[])
        .auth_uri(&format!("102@{}", app.sip_addr().ip()))
        .spawn();
    eventually(WAIT, || async {
        let (_, health) = app.get("/healthz").await;
        (health["sip"]["mwiSubscriptions"] == 1).then_some(())
    })
    .await;

    // Someone to a phone that is registered but busy elsewhere: DND sends Alice to
    // voicemail without ringing the desk phone (which only takes NOTIFYs here).
    let (s, _) = app
        .patch(
            &format!("/v1/pbx/extensions/{}", bob.id),
            json!({"presence": "dnd"}),
        )
        .await;
    assert_eq!(s, 200);
    let call = RawCall::reach_voicemail(&app, &alice, "102", "vm-mwi").await;
    call.speak(tone_packets(1.5)).await;
    call.hang_up().await;
    let message = one_message(&app, "vm_102").await;
    // Heard through the API: both phones are told.
    let url = format!(
        "/v1/pbx/voicemail/mailboxes/vm_102/messages/{}",
        message["id"].as_str().unwrap()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, _) = app.patch(&url, json!({"heard": true})).await;
    assert_eq!(s, 200);
    subscriber.await.unwrap().assert_ok();
    // The desk phone registers again and hears the current state once more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    register_desk().await;
    let lamp = lamp.await.unwrap();
    lamp.assert_ok();
    let states: Vec<&str> = lamp
        .messages
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Voice-Message: "))
        .collect();
    let waiting: Vec<&str> = lamp
        .messages
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Messages-Waiting: "))
        .collect();
    assert_eq!(
        states,
        ["1/0 (0/0)", "0/1 (0/0)", "0/1 (0/0)"],
        "{}",
        lamp.messages
    );
    assert_eq!(waiting, ["yes", "no", "no"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_sends_no_rtp_is_hung_up_on_and_the_port_is_released() {
    let app = TestApp::spawn_with(Backend::Sqlite, &["--rtp-timeout", "2"]).await;
    let alice = app.account("101", "Alice").await;
    app.account("102", "Bob").await;
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let ok = raw.invite_with_auth(&alice, "102", "vm-silent", "").await;
    assert_eq!(status(&ok), 200, "{ok}");
    raw.send(&in_dialog("ACK", &ok, &raw, 1)).await;
    let (_, health) = app.get("/healthz").await;
    assert_eq!(health["sip"]["voicemailCalls"], 1, "{health}");
    assert_eq!(health["sip"]["rtpPortsInUse"], 1);
    // The default greeting plays (about 6 s) to nobody; then the BYE comes from us.
    let bye = eventually(Duration::from_secs(20), || async {
        raw.recv(Duration::from_millis(500))
            .await
            .filter(|m| m.starts_with("BYE "))
    })
    .await;
    let mut reply = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        header(&bye, "Via").unwrap(),
        header(&bye, "From").unwrap(),
        header(&bye, "To").unwrap(),
        header(&bye, "Call-ID").unwrap(),
        header(&bye, "CSeq").unwrap()
    );
    raw.send(&reply).await;
    reply.clear();
    let call = ended_call(&app).await;
    assert_eq!(
        (call["disposition"].as_str(), call["hangupSide"].as_str()),
        (Some("voicemail"), Some("system"))
    );
    let (_, health) = app.get("/healthz").await;
    assert_eq!(health["sip"]["rtpPortsInUse"], 0, "{health}");
    assert!(
        messages(&app, "vm_102").await.is_empty(),
        "nothing was said"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_call_reaches_voicemail_which_ends_it_after_silence() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let alice = app.account("101", "Alice").await;
    let bob = app.account("102", "Bob").await;
    let (s, _) = app
        .patch(
            &format!("/v1/pbx/extensions/{}", bob.id),
            json!({"forwardingRingTimeout": 5}),
        )
        .await;
    assert_eq!(s, 200);
    let port = free_port();
    Sipp::new(&app, "register_to.xml")
        .user(
            &bob,
            &bob.number,
            &["600", &format!("102@127.0.0.1:{port}")],
        )
        .run()
        .await
        .assert_ok();
    let rings = Sipp::uas(&app, "uas_ring.xml", port).spawn();
    // Rings 5 s, then the default greeting (about 6 s); speak 2 s after it, then quiet.
    let wav = app.data_dir.join("caller.wav");
    write_wav(&wav, &[(12.5, false), (2.0, true), (20.0, false)]);
    let caller = baresip(baresip_dir(&app, &alice, &wav), 32, Some("102"));
    rings.await.unwrap().assert_ok();
    let message = one_message_within(&app, "vm_102", Duration::from_secs(40)).await;
    let wav = audio(&app, &message, None).await.bytes().await.unwrap();
    let voiced = voiced_seconds(&wav);
    assert!(
        (1.8..=2.2).contains(&voiced),
        "2 s of tone, {voiced} s stored"
    );
    let call = ended_call(&app).await;
    assert_eq!(call["disposition"], "voicemail");
    assert_eq!(call["hangupSide"], "system");
    let out = caller.await.unwrap();
    let out =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.contains("Call established"), "{out}");
}

async fn one_message_within(app: &TestApp, mailbox: &str, limit: Duration) -> Value {
    eventually(limit, || async {
        let list = messages(app, mailbox).await;
        (list.len() == 1).then(|| list[0].clone())
    })
    .await
}

/// A one-shot SMTP sink on a free port: takes one message and returns its DATA.
async fn smtp_sink() -> (u16, tokio::task::JoinHandle<(String, String)>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
        let (mut envelope, mut data) = (String::new(), String::new());
        while let Some(line) = lines.next_line().await.unwrap() {
            let verb = line
                .split([' ', ':'])
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match verb.as_str() {
                "EHLO" | "HELO" => write.write_all(b"250 sink\r\n").await.unwrap(),
                "MAIL" | "RCPT" => {
                    envelope.push_str(&line);
                    envelope.push('\n');
                    write.write_all(b"250 OK\r\n").await.unwrap();
                }
                "DATA" => {
                    write.write_all(b"354 go on\r\n").await.unwrap();
                    while let Some(l) = lines.next_line().await.unwrap() {
                        if l == "." {
                            break;
                        }
                        data.push_str(&l);
                        data.push('\n');
                    }
                    write.write_all(b"250 queued\r\n").await.unwrap();
                }
                "QUIT" => {
                    write.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                }
                _ => write.write_all(b"250 OK\r\n").await.unwrap(),
            }
        }
        (envelope, data)
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_message_is_emailed_with_its_recording() {
    let (port, sink) = smtp_sink().await;
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            "--smtp-url",
            &format!("smtp://127.0.0.1:{port}"),
            "--smtp-from",
            "pbx@example.com",
        ],
    )
    .await;
    let alice = app.account("101", "Alice").await;
    app.account("102", "Bob").await;
    short_greeting(&app, "vm_102").await;
    let (s, body) = app
        .patch(
            "/v1/pbx/voicemail/mailboxes/vm_102",
            json!({"notifyEmail": "bob@example.com"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), &body["mailbox"]["notifyEmail"]),
        (200, &json!("bob@example.com"))
    );
    let call = RawCall::reach_voicemail(&app, &alice, "102", "vm-mail").await;
    call.speak(tone_packets(2.0)).await;
    call.hang_up().await;
    let message = one_message(&app, "vm_102").await;
    let (envelope, data) = tokio::time::timeout(WAIT, sink).await.unwrap().unwrap();
    assert!(
        envelope.contains("<pbx@example.com>") && envelope.contains("<bob@example.com>"),
        "{envelope}"
    );
    assert!(
        data.contains("Subject: New voicemail for 102 from Alice <101> (2 s)"),
        "{data}"
    );
    assert!(data.contains("Duration: 2 s"));
    let attachment = format!("filename=\"{}.wav\"", message["id"].as_str().unwrap());
    assert!(data.contains(&attachment), "{data}");
    // The attachment is the stored recording.
    let stored = audio(&app, &message, None).await.bytes().await.unwrap();
    let b64: String = data
        .split(&attachment)
        .nth(1)
        .unwrap()
        .split("\n\n")
        .nth(1)
        .unwrap()
        .split("\n--")
        .next()
        .unwrap()
        .lines()
        .collect();
    use base64::Engine as _;
    let attached = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    assert_eq!(attached, stored.to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailbox_requests_are_checked_and_scoped() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let bob = app.create_extension("102", "Bob").await;
    let carol = app.create_extension("103", "Carol").await;
    let (s, _) = app
        .patch(
            &format!("/v1/pbx/extensions/{}", carol["id"].as_str().unwrap()),
            json!({"voicemailEnabled": false}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, list) = app.get("/v1/pbx/voicemail/mailboxes").await;
    let ids: Vec<&str> = list["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["vm_102"],
        "only extensions with voicemail have a mailbox"
    );
    assert_eq!(list["mailboxes"][0]["extensionId"], bob["id"]);
    assert_eq!(list["mailboxes"][0]["retentionDays"], 90);
    assert_eq!(list["mailboxes"][0]["maxMessageSeconds"], 120);
    assert_eq!(list["mailboxes"][0]["pinSet"], false);
    assert_eq!(app.get("/v1/pbx/voicemail/mailboxes/vm_103").await.0, 404);
    assert_eq!(app.get("/v1/pbx/voicemail/mailboxes/nonsense").await.0, 404);

    // Settings: bad values are refused by field and change nothing.
    for (body, field) in [
        (json!({"pin": "12a4"}), "pin"),
        (json!({"pin": "123"}), "pin"),
        (json!({"pin": 1234}), "pin"),
        (json!({"maxMessageSeconds": 5}), "maxMessageSeconds"),
        (json!({"retentionDays": 0}), "retentionDays"),
        (json!({"notifyEmail": "bob"}), "notifyEmail"),
        (json!({"greetingType": "custom"}), "greetingType"),
        (json!({"messageCount": 3}), "body"),
        (json!({"colour": "red"}), "body"),
    ] {
        let (s, err) = app
            .patch("/v1/pbx/voicemail/mailboxes/vm_102", body.clone())
            .await;
        assert_eq!(
            (s.as_u16(), err["field"].as_str()),
            (422, Some(field)),
            "{body}: {err}"
        );
    }
    let (s, body) = app
        .patch(
            "/v1/pbx/voicemail/mailboxes/vm_102",
            json!({"pin": "0042", "maxMessageSeconds": 60, "retentionDays": 7}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let m = &body["mailbox"];
    assert_eq!(
        (
            m["pinSet"].as_bool(),
            m["maxMessageSeconds"].as_u64(),
            m["retentionDays"].as_u64()
        ),
        (Some(true), Some(60), Some(7))
    );
    assert!(
        !body.to_string().contains("0042"),
        "the PIN never comes back"
    );

    // Greetings: only WAV.
    let (s, err) = put_greeting(&app, "vm_102", "audio/mpeg", b"ID3\x04fake mp3".to_vec()).await;
    assert_eq!(
        (s, err["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    assert!(err["message"].as_str().unwrap().contains("WAV"), "{err}");
    let (s, err) = put_greeting(&app, "vm_102", "audio/wav", b"RIFF not really".to_vec()).await;
    assert_eq!(s, 415, "{err}");
    let (_, m) = app.get("/v1/pbx/voicemail/mailboxes/vm_102").await;
    assert_eq!(
        m["mailbox"]["greetingType"], "default",
        "a refused upload changes nothing"
    );

    // Messages that do not exist, in mailboxes that do and do not.
    assert_eq!(
        app.get("/v1/pbx/voicemail/mailboxes/vm_102/messages/msg_nope")
            .await
            .0,
        404
    );
    assert_eq!(
        app.delete("/v1/pbx/voicemail/mailboxes/vm_102/messages/msg_nope")
            .await
            .0,
        404
    );
    let (s, err) = app
        .patch(
            "/v1/pbx/voicemail/mailboxes/vm_102/messages/msg_nope",
            json!({"heard": "yes"}),
        )
        .await;
    assert_eq!((s.as_u16(), err["field"].as_str()), (422, Some("heard")));

    // Scopes and tenants.
    let reader = app.api_key("default", Some("pbx:extensions:read"));
    let resp = app
        .request_as(&reader, Method::GET, "/v1/pbx/voicemail/mailboxes")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let vm_reader = app.api_key("default", Some("pbx:voicemail:read"));
    let resp = app
        .request_as(
            &vm_reader,
            Method::PATCH,
            "/v1/pbx/voicemail/mailboxes/vm_102",
        )
        .json(&json!({"retentionDays": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let (_, other_key) = app.tenant("other");
    let resp = app
        .request_as(
            &other_key,
            Method::GET,
            "/v1/pbx/voicemail/mailboxes/vm_102",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        404,
        "another PBX's mailbox does not exist for it"
    );
    let resp = app
        .request_as(&other_key, Method::GET, "/v1/pbx/voicemail/mailboxes")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["mailboxes"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_past_their_retention_are_purged_with_their_audio() {
    let mut app = TestApp::spawn(Backend::Postgres).await;
    let alice = app.account("101", "Alice").await;
    app.account("102", "Bob").await;
    short_greeting(&app, "vm_102").await;
    let (s, _) = app
        .patch(
            "/v1/pbx/voicemail/mailboxes/vm_102",
            json!({"retentionDays": 2}),
        )
        .await;
    assert_eq!(s, 200);
    for id in ["vm-old", "vm-new"] {
        let call = RawCall::reach_voicemail(&app, &alice, "102", id).await;
        call.speak(tone_packets(1.2)).await;
        call.hang_up().await;
    }
    let both = eventually(WAIT, || async {
        let list = messages(&app, "vm_102").await;
        (list.len() == 2).then_some(list)
    })
    .await;
    // Three days pass for one of them.
    let old = both[1]["id"].as_str().unwrap().to_owned();
    let db = app.database_url.clone().unwrap();
    crate::common::pg_rows(
        &db,
        &format!(
            "UPDATE voicemail_message SET created_at = created_at - 3 * 86400000 WHERE id = '{old}'"
        ),
    )
    .await;
    let before = walk(&app.data_dir.join("voicemail"));
    assert!(before.iter().any(|f| f.contains(&old)));
    // The purge runs at start and hourly.
    app.restart().await;
    let left = eventually(WAIT, || async {
        let list = messages(&app, "vm_102").await;
        (list.len() == 1).then_some(list)
    })
    .await;
    assert_ne!(left[0]["id"], json!(old));
    assert!(
        walk(&app.data_dir.join("voicemail"))
            .iter()
            .all(|f| !f.contains(&old))
    );
    // The log line follows the deletion it reports.
    eventually(WAIT, || async {
        app.server_log()
            .contains("voicemail past its retention purged")
            .then_some(())
    })
    .await;
}
