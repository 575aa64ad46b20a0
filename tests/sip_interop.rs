//! SIP interop found by outside testing: final responses to INVITE retransmitted over
//! UDP until their ACK (RFC 3261 §17.2.1), `Require` on proxied requests, and which SIP
//! domains reach which PBX.

use crate::common::sip::{RawSip, ack_of, status};
use crate::common::{Backend, TestApp};
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
