//! Client transactions (RFC 3261 §17.1): retransmissions over UDP (Timers A and E),
//! timeouts (B and F), the ACK for a non-2xx INVITE response, and absorbing
//! retransmitted final responses (D and K). Time is tokio's, so the timers are tested
//! with paused time; the transport is a callback, so tests need no sockets.

use super::transaction::{T1, T2, T4};
use crate::sip::message::{Method, Name, Request, Response};
use crate::sync::MutexExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant, sleep_until};

const TIMER_B: Duration = T1.saturating_mul(64);
const TIMER_D: Duration = Duration::from_secs(32);

/// What a client transaction reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A provisional or final response (each final is reported once).
    Response(Response),
    /// No final response in time (Timer B or F): behave as for a 408.
    Timeout,
}

type Send = Arc<dyn Fn(Arc<[u8]>) + std::marker::Send + Sync>;

/// Responses of open client transactions, by branch and method.
#[derive(Default)]
pub struct ClientTransactions {
    open: Mutex<HashMap<(String, String), mpsc::Sender<Response>>>,
}

impl ClientTransactions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), mpsc::Sender<Response>>> {
        self.open.lock_unpoisoned()
    }

    /// Hands a response to its transaction; false when none is open (a stray or a
    /// late 2xx retransmission, for the proxy to route on its own).
    pub fn deliver(&self, branch: &str, cseq_method: &Method, response: Response) -> bool {
        let sender = self
            .lock()
            .get(&(branch.to_owned(), cseq_method.as_str().to_owned()))
            .cloned();
        match sender {
            Some(tx) => {
                let _ = tx.try_send(response);
                true
            }
            None => false,
        }
    }

    /// Starts a transaction for `request`, whose top Via carries `branch`; `send` puts
    /// bytes on the wire. Events arrive on the returned channel.
    pub fn start(
        self: &Arc<Self>,
        request: Request,
        branch: String,
        reliable: bool,
        send: Send,
    ) -> mpsc::Receiver<ClientEvent> {
        let (events, rx) = mpsc::channel(16);
        let (responses_tx, responses) = mpsc::channel(16);
        let key = (branch, request.method.as_str().to_owned());
        self.lock().insert(key.clone(), responses_tx);
        let table = self.clone();
        tokio::spawn(async move {
            run(request, reliable, send, responses, events).await;
            table.lock().remove(&key);
        });
        rx
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// The ACK for a non-2xx final response to `invite` (§17.1.1.3): same Request-URI,
/// Call-ID, From, Route and top Via; To from the response.
pub fn ack_for(invite: &Request, response: &Response) -> Request {
    let mut ack = Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        headers: Default::default(),
        body: Vec::new(),
    };
    if let Some(via) = invite.headers.get(&Name::Via) {
        ack.headers.push(Name::Via, via);
    }
    for name in [Name::From, Name::CallId] {
        if let Some(v) = invite.headers.get(&name) {
            ack.headers.push(name, v);
        }
    }
    if let Some(to) = response.headers.get(&Name::To) {
        ack.headers.push(Name::To, to);
    }
    let seq = invite
        .headers
        .get(&Name::CSeq)
        .and_then(|c| c.split_whitespace().next())
        .unwrap_or("1");
    ack.headers.push(Name::CSeq, format!("{seq} ACK"));
    for route in invite.headers.lines(&Name::Route) {
        ack.headers.push(Name::Route, route);
    }
    ack.headers.push(Name::MaxForwards, "70");
    ack
}

/// The CANCEL of a pending INVITE (§9.1): same top Via (branch), Request-URI, Call-ID,
/// From, To, Route, CSeq number.
pub fn cancel_for(invite: &Request) -> Request {
    let mut cancel = Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        headers: Default::default(),
        body: Vec::new(),
    };
    if let Some(via) = invite.headers.get(&Name::Via) {
        cancel.headers.push(Name::Via, via);
    }
    for name in [Name::From, Name::To, Name::CallId] {
        if let Some(v) = invite.headers.get(&name) {
            cancel.headers.push(name, v);
        }
    }
    let seq = invite
        .headers
        .get(&Name::CSeq)
        .and_then(|c| c.split_whitespace().next())
        .unwrap_or("1");
    cancel.headers.push(Name::CSeq, format!("{seq} CANCEL"));
    for route in invite.headers.lines(&Name::Route) {
        cancel.headers.push(Name::Route, route);
    }
    cancel.headers.push(Name::MaxForwards, "70");
    cancel
}

async fn run(
    request: Request,
    reliable: bool,
    send: Send,
    mut responses: mpsc::Receiver<Response>,
    events: mpsc::Sender<ClientEvent>,
) {
    let invite = request.method == Method::Invite;
    let bytes: Arc<[u8]> = request.to_bytes().into();
    send(bytes.clone());
    let start = Instant::now();
    let timeout_at = start + TIMER_B;
    let mut interval = T1;
    let mut next_retransmit = start + interval;
    let mut proceeding = false;
    let final_response = loop {
        let retransmitting = !(reliable || invite && proceeding);
        // An INVITE that got a provisional waits for its final without Timer B (the
        // proxy's ring timeout bounds it); everything else times out.
        let timing_out = !(invite && proceeding);
        tokio::select! {
            response = responses.recv() => {
                let Some(response) = response else { return };
                if response.status < 200 {
                    if !proceeding {
                        proceeding = true;
                        if !invite {
                            interval = T2;
                            next_retransmit = Instant::now() + interval;
                        }
                    }
                    let _ = events.send(ClientEvent::Response(response)).await;
                    continue;
                }
                break response;
            }
            () = sleep_until(next_retransmit), if retransmitting => {
                send(bytes.clone());
                interval = if invite { interval * 2 } else { (interval * 2).min(T2) };
                next_retransmit += interval;
            }
            () = sleep_until(timeout_at), if timing_out => {
                let _ = events.send(ClientEvent::Timeout).await;
                return;
            }
        }
    };
    let ack = (invite && final_response.status >= 300)
        .then(|| -> Arc<[u8]> { ack_for(&request, &final_response).to_bytes().into() });
    if let Some(ack) = &ack {
        send(ack.clone());
    }
    let two_xx_invite = invite && final_response.status < 300;
    let _ = events.send(ClientEvent::Response(final_response)).await;
    if reliable || two_xx_invite {
        return;
    }
    // Completed: retransmitted finals are absorbed (and re-ACKed) for Timer D or K.
    let linger = Instant::now() + if invite { TIMER_D } else { T4 };
    loop {
        tokio::select! {
            again = responses.recv() => match again {
                Some(r) if r.status >= 200 => {
                    if let Some(ack) = &ack {
                        send(ack.clone());
                    }
                }
                Some(_) => {}
                None => return,
            },
            () = sleep_until(linger) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::Message;

    fn request(method: &str) -> Request {
        let raw = format!(
            "{method} sip:102@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc\r\n\
             From: <sip:101@pbx>;tag=f\r\nTo: <sip:102@pbx>\r\nCall-ID: c1\r\nCSeq: 7 {method}\r\n\
             Route: <sip:edge;lr>\r\nContent-Length: 0\r\n\r\n"
        );
        match Message::parse(raw.as_bytes()) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn response(status: u16) -> Response {
        let raw = format!(
            "SIP/2.0 {status} X\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc\r\nFrom: <sip:101@pbx>;tag=f\r\n\
             To: <sip:102@pbx>;tag=t\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        match Message::parse(raw.as_bytes()) {
            Ok(Message::Response(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    /// What was sent (first line) and when.
    type SendLog = Arc<Mutex<Vec<(Instant, String)>>>;

    /// A transport that records what was sent and when.
    fn recorder() -> (Send, SendLog) {
        let log: SendLog = Arc::default();
        let l = log.clone();
        let send: Send = Arc::new(move |b: Arc<[u8]>| {
            let first = String::from_utf8_lossy(&b)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            l.lock().unwrap().push((Instant::now(), first));
        });
        (send, log)
    }

    /// When each message went out, in ms after `start`.
    fn offsets_ms(log: &SendLog, start: Instant) -> Vec<u64> {
        log.lock()
            .unwrap()
            .iter()
            .map(|(t, _)| (*t - start).as_millis() as u64)
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn invite_over_udp_retransmits_on_timer_a_and_times_out_on_timer_b() {
        let table = Arc::new(ClientTransactions::default());
        let (send, log) = recorder();
        let start = Instant::now();
        let mut events = table.start(request("INVITE"), "z9hG4bKabc".into(), false, send);
        assert_eq!(events.recv().await, Some(ClientEvent::Timeout));
        assert_eq!(start.elapsed(), TIMER_B);
        let offsets = offsets_ms(&log, start);
        // T1 doubling: 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
        assert_eq!(offsets, [0, 500, 1500, 3500, 7500, 15500, 31500]);
        assert!(table.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_provisional_stops_invite_retransmissions_and_timer_b() {
        let table = Arc::new(ClientTransactions::default());
        let (send, log) = recorder();
        let mut events = table.start(request("INVITE"), "z9hG4bKabc".into(), false, send);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(table.deliver("z9hG4bKabc", &Method::Invite, response(180)));
        assert!(matches!(events.recv().await, Some(ClientEvent::Response(r)) if r.status == 180));
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(
            log.lock().unwrap().len(),
            2,
            "the INVITE and one retransmission only"
        );
        assert!(table.deliver("z9hG4bKabc", &Method::Invite, response(200)));
        assert!(matches!(events.recv().await, Some(ClientEvent::Response(r)) if r.status == 200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_non_2xx_final_is_acked_and_its_retransmissions_reacked_until_timer_d() {
        let table = Arc::new(ClientTransactions::default());
        let (send, log) = recorder();
        let mut events = table.start(request("INVITE"), "z9hG4bKabc".into(), false, send);
        table.deliver("z9hG4bKabc", &Method::Invite, response(486));
        assert!(matches!(events.recv().await, Some(ClientEvent::Response(r)) if r.status == 486));
        tokio::task::yield_now().await;
        table.deliver("z9hG4bKabc", &Method::Invite, response(486));
        tokio::time::advance(Duration::from_millis(10)).await;
        let sent: Vec<String> = log.lock().unwrap().iter().map(|(_, l)| l.clone()).collect();
        assert_eq!(
            sent,
            [
                "INVITE sip:102@10.0.0.2 SIP/2.0",
                "ACK sip:102@10.0.0.2 SIP/2.0",
                "ACK sip:102@10.0.0.2 SIP/2.0"
            ]
        );
        assert_eq!(
            events.recv().await,
            None,
            "the retransmitted final is not reported again"
        );
        tokio::time::advance(TIMER_D).await;
        tokio::task::yield_now().await;
        assert!(table.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn non_invite_retransmits_capped_at_t2_and_times_out_on_timer_f() {
        let table = Arc::new(ClientTransactions::default());
        let (send, log) = recorder();
        let start = Instant::now();
        let mut events = table.start(request("BYE"), "z9hG4bKabc".into(), false, send);
        assert_eq!(events.recv().await, Some(ClientEvent::Timeout));
        assert_eq!(start.elapsed(), TIMER_B);
        let offsets = offsets_ms(&log, start);
        assert_eq!(&offsets[..6], [0, 500, 1500, 3500, 7500, 11500]);
        assert!(offsets.windows(2).skip(4).all(|w| w[1] - w[0] == 4000));
    }

    #[tokio::test(start_paused = true)]
    async fn reliable_transports_never_retransmit() {
        let table = Arc::new(ClientTransactions::default());
        let (send, log) = recorder();
        let mut events = table.start(request("BYE"), "z9hG4bKabc".into(), true, send);
        assert_eq!(events.recv().await, Some(ClientEvent::Timeout));
        assert_eq!(log.lock().unwrap().len(), 1);
    }

    #[test]
    fn ack_and_cancel_keep_the_dialog_identifiers() {
        let invite = request("INVITE");
        let ack = ack_for(&invite, &response(486));
        assert_eq!(ack.headers.get(&Name::To), Some("<sip:102@pbx>;tag=t"));
        assert_eq!(ack.headers.get(&Name::CSeq), Some("7 ACK"));
        assert_eq!(ack.headers.get(&Name::Route), Some("<sip:edge;lr>"));
        let cancel = cancel_for(&invite);
        assert_eq!(cancel.headers.get(&Name::To), Some("<sip:102@pbx>"));
        assert_eq!(cancel.headers.get(&Name::CSeq), Some("7 CANCEL"));
        assert_eq!(
            cancel.headers.get(&Name::Via),
            invite.headers.get(&Name::Via)
        );
    }
}
