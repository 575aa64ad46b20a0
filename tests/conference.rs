//! Conference rooms with real peers and real audio: callers on raw RTP sockets (and
//! baresip) each send a tone of their own; what each hears is checked with Goertzel
//! energies: the others' tones are there, its own is not.

use crate::common::rtp::{Impairment, RtpPhone, tone_share};
use crate::common::sip::{Account, baresip, baresip_dir, write_wav};
use crate::common::{Backend, TestApp, eventually};
use serde_json::{Value, json};
use std::time::Duration;
use switchboard::media::codec::Codec;

/// A tone this strong a share of what a phone hears counts as heard (a lone tone among
/// two is ~0.25; a tone absent measures below 0.01).
pub(crate) const HEARD: f64 = 0.08;
pub(crate) const ABSENT: f64 = 0.02;
/// What is analysed: the last second of audio.
const WINDOW_SECS: usize = 1;

/// Creates conference extension `number` (with `extra` fields) and returns its JSON.
pub(crate) async fn conference(app: &TestApp, number: &str, extra: Value) -> Value {
    let mut body =
        json!({"number": number, "name": format!("Room {number}"), "type": "conference"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (code, ext) = app.post("/v1/pbx/extensions", body).await;
    assert_eq!(code, 201, "{ext}");
    ext["extension"].clone()
}

pub(crate) async fn accounts(app: &TestApp, numbers: &[&str]) -> Vec<Account> {
    let mut out = Vec::new();
    for n in numbers {
        out.push(app.account(n, &format!("Caller {n}")).await);
    }
    out
}

/// What share of each tone a phone heard, over the last second.
pub(crate) fn shares(phone: &RtpPhone, pcm: &[i16], tones: &[f64]) -> Vec<f64> {
    let rate = phone.codec.sample_rate();
    tones
        .iter()
        .map(|hz| tone_share(pcm, rate, *hz, rate as usize * WINDOW_SECS))
        .collect()
}

/// Three callers in one room, each sending its own tone: each hears the other two and
/// not its own; the room's extension is busy while they are in it; when they hang up,
/// the calls end as answered and the ports are free again.
async fn three_callers_each_hear_the_others_and_not_themselves(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let room = conference(&app, "800", json!({})).await;
    let callers = accounts(&app, &["101", "102", "103"]).await;
    let tones = [400.0, 700.0, 1100.0];
    let mut phones = Vec::new();
    for (i, account) in callers.iter().enumerate() {
        let phone = RtpPhone::call(&app, account, "800", &format!("conf-{i}"), Codec::Pcmu)
            .await
            .unwrap_or_else(|resp| panic!("caller {i} refused: {resp}"));
        phones.push(phone);
    }
    let (_, health) = app.get("/healthz").await;
    assert_eq!(health["sip"]["conferenceParticipants"], 3, "{health}");

    let heard =
        futures_util::future::join_all(phones.iter().zip(tones).map(|(p, hz)| {
            p.talk_and_listen(Some(hz), Duration::from_secs(3), Impairment::default())
        }))
        .await;
    for (i, (phone, pcm)) in phones.iter().zip(&heard).enumerate() {
        let s = shares(phone, pcm, &tones);
        for (j, share) in s.iter().enumerate() {
            if i == j {
                assert!(*share < ABSENT, "caller {i} hears its own tone: {s:?}");
            } else {
                assert!(*share > HEARD, "caller {i} does not hear caller {j}: {s:?}");
            }
        }
    }
    for phone in &phones {
        phone.hang_up().await;
    }
    let calls = eventually(Duration::from_secs(5), || async {
        let (_, body) = app.get("/v1/pbx/calls").await;
        let calls = body["calls"].as_array().cloned().unwrap_or_default();
        (calls.len() == 3 && calls.iter().all(|c| c["state"] == "ended")).then_some(calls)
    })
    .await;
    for call in &calls {
        assert_eq!(call["disposition"], "answered", "{call}");
        assert_eq!(call["callee"]["number"], room["number"], "{call}");
        assert_eq!(call["answeredBy"], "conference", "{call}");
    }
    let (_, health) = app.get("/healthz").await;
    assert_eq!(health["sip"]["conferenceParticipants"], 0, "{health}");
    assert_eq!(health["sip"]["rtpPortsInUse"], 0, "{health}");
}

crate::on_both_backends!(three_callers_each_hear_the_others_and_not_themselves);

/// A wideband (G.722, 16 kHz) caller and a narrowband (PCMU) caller hear each other:
/// the room mixes at 16 kHz and each gets the mix in its own codec.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_g722_caller_and_a_pcmu_caller_hear_each_other() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    conference(&app, "800", json!({})).await;
    let callers = accounts(&app, &["101", "102"]).await;
    let wide = RtpPhone::call(&app, &callers[0], "800", "wide", Codec::G722)
        .await
        .unwrap();
    assert!(wide.ok.contains("G722/8000"), "G.722 answered: {}", wide.ok);
    let narrow = RtpPhone::call(&app, &callers[1], "800", "narrow", Codec::Pcmu)
        .await
        .unwrap();
    let (wide_heard, narrow_heard) = tokio::join!(
        wide.talk_and_listen(Some(1000.0), Duration::from_secs(3), Impairment::default()),
        narrow.talk_and_listen(Some(600.0), Duration::from_secs(3), Impairment::default()),
    );
    let w = shares(&wide, &wide_heard, &[1000.0, 600.0]);
    let n = shares(&narrow, &narrow_heard, &[1000.0, 600.0]);
    assert!(
        w[1] > 2.0 * HEARD && w[0] < ABSENT,
        "the G.722 caller hears: {w:?}"
    );
    assert!(
        n[0] > 2.0 * HEARD && n[1] < ABSENT,
        "the PCMU caller hears: {n:?}"
    );
    wide.hang_up().await;
    narrow.hang_up().await;
}

/// One caller's packets arrive with 5 % loss, reordering and 60 ms of jitter: the jitter
/// buffer puts them back in order and the others still hear its tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_with_loss_reordering_and_jitter_is_still_heard() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    conference(&app, "800", json!({})).await;
    let callers = accounts(&app, &["101", "102"]).await;
    let rough = RtpPhone::call(&app, &callers[0], "800", "rough", Codec::Pcmu)
        .await
        .unwrap();
    let clean = RtpPhone::call(&app, &callers[1], "800", "clean", Codec::Pcma)
        .await
        .unwrap();
    let spoilt = Impairment {
        drop_every: 20,
        swap_every: 7,
        jitter: Duration::from_millis(60),
    };
    let (_, clean_heard) = tokio::join!(
        rough.talk_and_listen(Some(500.0), Duration::from_secs(4), spoilt),
        clean.talk_and_listen(None, Duration::from_secs(4), Impairment::default()),
    );
    let s = shares(&clean, &clean_heard, &[500.0]);
    assert!(s[0] > 2.0 * HEARD, "the rough caller's tone: {s:?}");
    rough.hang_up().await;
    clean.hang_up().await;
}

/// baresip (a real phone playing a 440 Hz tone file) joins with a raw caller: the raw
/// caller hears baresip's tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baresip_phone_in_a_room_is_heard() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    conference(&app, "800", json!({})).await;
    let callers = accounts(&app, &["101", "102"]).await;
    let wav = app.data_dir.join("tone.wav");
    write_wav(&wav, &[(12.0, true)]);
    let phone = baresip(baresip_dir(&app, &callers[0], &wav), 10, Some("800"));
    eventually(Duration::from_secs(8), || async {
        let (_, health) = app.get("/healthz").await;
        (health["sip"]["conferenceParticipants"] == 1).then_some(())
    })
    .await;
    let raw = RtpPhone::call(&app, &callers[1], "800", "with-baresip", Codec::Pcmu)
        .await
        .unwrap();
    let heard = raw
        .talk_and_listen(None, Duration::from_secs(3), Impairment::default())
        .await;
    let s = shares(&raw, &heard, &[440.0]);
    assert!(s[0] > 2.0 * HEARD, "baresip's 440 Hz: {s:?}");
    raw.hang_up().await;
    let out = phone.await.unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Call established"), "{text}");
}
