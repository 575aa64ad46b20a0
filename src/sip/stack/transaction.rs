//! Server transactions (RFC 3261 §17.2): each request reaches the application once;
//! a retransmission gets the last response again, or nothing while we are still working
//! on it. A completed non-INVITE transaction over UDP is remembered for Timer J
//! (64·T1 = 32 s); over TCP or websocket it ends with its final response. A non-2xx
//! final response to an INVITE over UDP waits for its ACK: the owner resends it on
//! Timer G (T1 doubling up to T2) while [`ServerTransactions::unacknowledged`] says so,
//! Timer H (64·T1) gives up, and after the ACK the transaction absorbs late ACKs and
//! retransmitted INVITEs until that same deadline (longer than Timer I's T4; harmless).
//!
//! Time comes from `tokio::time::Instant`, so tests drive the timers with paused time.

use crate::sip::headers::{BRANCH_COOKIE, Via};
use crate::sip::message::{Method, Name, Request};
use crate::sync::MutexExt;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, Mutex};
use tokio::time::{Duration, Instant};

/// RFC 3261 T1, the round-trip estimate.
pub const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2: the cap on retransmission intervals.
pub const T2: Duration = Duration::from_secs(4);
/// RFC 3261 T4: how long a message may stay in the network.
pub const T4: Duration = Duration::from_secs(5);
/// Timer J (64·T1), and the longest we keep any server transaction around.
pub const TIMER_J: Duration = T1.saturating_mul(64);
/// Timer H (64·T1): how long a non-2xx final response to an INVITE waits for its ACK.
pub const TIMER_H: Duration = T1.saturating_mul(64);

/// A 128-bit digest of what identifies a transaction (§17.2.3): the branch, sent-by and
/// method (ACK and CANCEL share their INVITE's branch but are their own transactions,
/// except that ACK belongs to the INVITE transaction). Pre-RFC 3261 branches fall back
/// to the fields RFC 2543 matched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxKey(u64, u64);

#[derive(Debug)]
enum State {
    /// The application has the request; retransmissions get the last provisional.
    Proceeding { provisional: Option<Arc<[u8]>> },
    /// A final response went out; retransmissions get it again. `awaiting_ack` while a
    /// non-2xx answer to an INVITE over UDP has not been acknowledged (Timer G runs).
    Completed {
        response: Arc<[u8]>,
        awaiting_ack: bool,
    },
}

#[derive(Debug)]
struct Entry {
    state: State,
    expires: Instant,
}

/// What to do with an incoming request.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// A new transaction: handle it.
    New,
    /// A retransmission: send these bytes again (if any) and stop.
    Again(Option<Arc<[u8]>>),
}

/// Sharded: at thousands of transactions a second the table holds hundreds of
/// thousands of entries, and one big map would stall every worker while it grows.
const SHARDS: usize = 64;

pub struct ServerTransactions {
    hasher: (RandomState, RandomState),
    shards: [Mutex<Inner>; SHARDS],
}

#[derive(Default)]
struct Inner {
    entries: HashMap<TxKey, Entry>,
    /// Deadlines in the order they were set; an entry is only removed when its own
    /// (possibly later) deadline has passed.
    queue: VecDeque<(Instant, TxKey)>,
}

impl Default for ServerTransactions {
    fn default() -> Self {
        Self {
            hasher: (RandomState::new(), RandomState::new()),
            shards: std::array::from_fn(|_| Mutex::new(Inner::default())),
        }
    }
}

impl ServerTransactions {
    pub fn key(&self, req: &Request, top_via: &Via) -> TxKey {
        let method = match req.method {
            Method::Ack => &Method::Invite,
            ref m => m,
        };
        let feed = |h: &mut dyn Hasher| match top_via.branch() {
            Some(branch) if branch.starts_with(BRANCH_COOKIE) => {
                branch.hash(&mut HashWrite(h));
                top_via.sent_by().hash(&mut HashWrite(h));
                method.as_str().hash(&mut HashWrite(h));
            }
            _ => {
                req.uri.to_string().hash(&mut HashWrite(h));
                for name in [Name::From, Name::To, Name::CallId] {
                    req.headers
                        .get(&name)
                        .unwrap_or_default()
                        .hash(&mut HashWrite(h));
                }
                top_via.to_string().hash(&mut HashWrite(h));
                method.as_str().hash(&mut HashWrite(h));
            }
        };
        let mut a = self.hasher.0.build_hasher();
        let mut b = self.hasher.1.build_hasher();
        feed(&mut a);
        feed(&mut b);
        TxKey(a.finish(), b.finish())
    }

    fn lock(&self, key: TxKey) -> std::sync::MutexGuard<'_, Inner> {
        self.shards[(key.0 % SHARDS as u64) as usize].lock_unpoisoned()
    }

    /// Registers a request; tells whether it is new or a retransmission.
    pub fn receive(&self, key: TxKey) -> Seen {
        let now = Instant::now();
        let mut inner = self.lock(key);
        sweep(&mut inner, now);
        if let Some(entry) = inner.entries.get(&key) {
            return Seen::Again(match &entry.state {
                State::Proceeding { provisional } => provisional.clone(),
                State::Completed { response, .. } => Some(response.clone()),
            });
        }
        let expires = now + TIMER_J;
        inner.entries.insert(
            key,
            Entry {
                state: State::Proceeding { provisional: None },
                expires,
            },
        );
        inner.queue.push_back((expires, key));
        Seen::New
    }

    /// An ACK for the INVITE transaction `key`: whether that transaction is ours (the
    /// ACK is then absorbed). The first ACK stops Timer G. The entry then stays until
    /// the Timer H deadline it already has, which covers Timer I (T4) and answers a
    /// late retransmitted INVITE with the same final response.
    pub fn acknowledge(&self, key: TxKey) -> bool {
        let mut inner = self.lock(key);
        let Some(entry) = inner.entries.get_mut(&key) else {
            return false;
        };
        if let State::Completed { awaiting_ack, .. } = &mut entry.state {
            *awaiting_ack = false;
        }
        true
    }

    /// The response to send again on Timer G: present while a non-2xx final answer to
    /// an INVITE over UDP has had no ACK and Timer H has not run out.
    pub fn unacknowledged(&self, key: TxKey) -> Option<Arc<[u8]>> {
        let now = Instant::now();
        match self.lock(key).entries.get(&key) {
            Some(Entry {
                state:
                    State::Completed {
                        response,
                        awaiting_ack: true,
                    },
                expires,
            }) if *expires > now => Some(response.clone()),
            _ => None,
        }
    }

    /// Records a provisional response to resend on retransmissions.
    pub fn provisional(&self, key: TxKey, bytes: Arc<[u8]>) {
        if let Some(entry) = self.lock(key).entries.get_mut(&key)
            && let State::Proceeding { provisional } = &mut entry.state
        {
            *provisional = Some(bytes);
        }
    }

    /// Records the final response. Over a reliable transport the transaction ends now
    /// (Timers J and I are zero); otherwise it absorbs retransmissions for Timer J, or,
    /// for a non-2xx answer to an INVITE (`awaits_ack`), until its ACK or Timer H.
    /// Returns whether the owner must run Timer G (see [`Self::unacknowledged`]).
    pub fn complete(
        &self,
        key: TxKey,
        response: Arc<[u8]>,
        awaits_ack: bool,
        reliable: bool,
    ) -> bool {
        let now = Instant::now();
        let mut inner = self.lock(key);
        if reliable {
            inner.entries.remove(&key);
            return false;
        }
        let expires = now + if awaits_ack { TIMER_H } else { TIMER_J };
        let Some(entry) = inner.entries.get_mut(&key) else {
            return false;
        };
        entry.state = State::Completed {
            response,
            awaiting_ack: awaits_ack,
        };
        entry.expires = expires;
        inner.queue.push_back((expires, key));
        awaits_ack
    }

    /// Transactions remembered right now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock_unpoisoned().entries.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops expired transactions (also done on every `receive`).
    pub fn sweep(&self) {
        let now = Instant::now();
        for shard in &self.shards {
            sweep(&mut shard.lock_unpoisoned(), now);
        }
    }
}

fn sweep(inner: &mut Inner, now: Instant) {
    while let Some(&(deadline, key)) = inner.queue.front() {
        if deadline > now {
            break;
        }
        inner.queue.pop_front();
        if inner.entries.get(&key).is_some_and(|e| e.expires <= now) {
            inner.entries.remove(&key);
        }
    }
}

/// Lets `Hash` values feed a `&mut dyn Hasher`.
struct HashWrite<'a>(&'a mut dyn Hasher);

impl Hasher for HashWrite<'_> {
    fn finish(&self) -> u64 {
        self.0.finish()
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::Message;

    fn register(branch: &str) -> (Request, Via) {
        let raw = format!(
            "REGISTER sip:h SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch={branch}\r\n\
             From: <sip:a@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
        );
        let Ok(Message::Request(req)) = Message::parse(raw.as_bytes()) else {
            panic!("parse")
        };
        let via = Via::parse(req.headers.get(&Name::Via).unwrap()).unwrap();
        (req, via)
    }

    #[tokio::test(start_paused = true)]
    async fn retransmissions_get_the_cached_final_response_until_timer_j() {
        let tx = ServerTransactions::default();
        let (req, via) = register("z9hG4bK-a");
        let key = tx.key(&req, &via);
        assert_eq!(tx.receive(key), Seen::New);
        assert_eq!(
            tx.receive(key),
            Seen::Again(None),
            "still working: absorb silently"
        );
        let resp: Arc<[u8]> = Arc::from(&b"SIP/2.0 200 OK\r\n\r\n"[..]);
        assert!(!tx.complete(key, resp.clone(), false, false));
        assert_eq!(tx.receive(key), Seen::Again(Some(resp.clone())));
        tokio::time::advance(TIMER_J - Duration::from_millis(1)).await;
        assert_eq!(tx.receive(key), Seen::Again(Some(resp)));
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!(
            tx.receive(key),
            Seen::New,
            "after Timer J it is a new transaction"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reliable_transports_end_the_transaction_at_the_final_response() {
        let tx = ServerTransactions::default();
        let (req, via) = register("z9hG4bK-b");
        let key = tx.key(&req, &via);
        assert_eq!(tx.receive(key), Seen::New);
        assert!(!tx.complete(key, Arc::from(&b"x"[..]), false, true));
        assert!(tx.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn different_branches_and_methods_are_different_transactions() {
        let tx = ServerTransactions::default();
        let (a, via_a) = register("z9hG4bK-1");
        let (b, via_b) = register("z9hG4bK-2");
        assert_ne!(tx.key(&a, &via_a), tx.key(&b, &via_b));
        let mut options = a.clone();
        options.method = Method::Options;
        assert_ne!(tx.key(&a, &via_a), tx.key(&options, &via_a));
        let mut ack = a.clone();
        ack.method = Method::Ack;
        let mut invite = a;
        invite.method = Method::Invite;
        assert_eq!(
            tx.key(&ack, &via_a),
            tx.key(&invite, &via_a),
            "ACK matches its INVITE"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unacknowledged_invite_failure_is_resent_until_its_ack_then_absorbs_for_timer_i() {
        let tx = ServerTransactions::default();
        let (mut invite, via) = register("z9hG4bK-g");
        invite.method = Method::Invite;
        let key = tx.key(&invite, &via);
        assert_eq!(tx.receive(key), Seen::New);
        let resp: Arc<[u8]> = Arc::from(&b"SIP/2.0 486 Busy Here\r\n\r\n"[..]);
        assert!(tx.complete(key, resp.clone(), true, false), "Timer G runs");
        tokio::time::advance(T1).await;
        assert_eq!(tx.unacknowledged(key), Some(resp.clone()));
        let mut ack = invite.clone();
        ack.method = Method::Ack;
        assert_eq!(tx.key(&ack, &via), key);
        assert!(tx.acknowledge(key), "the ACK is ours");
        assert_eq!(tx.unacknowledged(key), None, "Timer G stops at the ACK");
        tokio::time::advance(T4).await;
        assert!(
            tx.acknowledge(key),
            "late ACKs are absorbed after Timer I too"
        );
        assert_eq!(
            tx.receive(key),
            Seen::Again(Some(resp)),
            "a late INVITE copy"
        );
        tokio::time::advance(TIMER_H).await;
        tx.sweep();
        assert!(tx.is_empty(), "gone once Timer H's deadline passed");
    }

    #[tokio::test(start_paused = true)]
    async fn timer_h_gives_up_on_a_missing_ack() {
        let tx = ServerTransactions::default();
        let (mut invite, via) = register("z9hG4bK-h");
        invite.method = Method::Invite;
        let key = tx.key(&invite, &via);
        tx.receive(key);
        assert!(tx.complete(key, Arc::from(&b"x"[..]), true, false));
        tokio::time::advance(TIMER_H - Duration::from_millis(1)).await;
        assert!(tx.unacknowledged(key).is_some());
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!(tx.unacknowledged(key), None);
        tx.sweep();
        assert!(tx.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_transactions_are_swept() {
        let tx = ServerTransactions::default();
        let (req, via) = register("z9hG4bK-c");
        tx.receive(tx.key(&req, &via));
        tokio::time::advance(TIMER_J + Duration::from_millis(1)).await;
        tx.sweep();
        assert!(tx.is_empty());
    }
}
