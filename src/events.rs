//! Typed events and the bus that carries them to subscribers.
//!
//! A change is published only after it is stored. Each event gets the next value of its
//! PBX's sequence (PBXes are numbered apart, so a tenant's sequence never jumps because
//! another tenant is busy), and sequence assignment and delivery happen under one lock,
//! so every subscriber sees each PBX's events in sequence order. Each subscriber's queue
//! is bounded: one that falls more than `capacity` events behind gets
//! [`RecvError::Lagged`] and must resync from a snapshot (the GraphQL subscriptions do
//! exactly that).

use crate::domain::{
    Call, CallState, Device, ExtensionRef, ExtensionView, PresenceStatus, VoicemailMessage,
};
use crate::sync::MutexExt;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

/// Why presence changed (or was reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum CauseKind {
    /// The first report of a subscription.
    Snapshot,
    /// A fresh report after the subscriber fell behind.
    Resync,
    /// Someone set away/dnd/available.
    Manual,
    /// A device registered, refreshed, unregistered or expired.
    Device,
    /// A call was answered or ended.
    Call,
    /// Someone joined an empty conference room, or the last one left.
    Conference,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceCause {
    pub kind: CauseKind,
    /// Human-readable, e.g. `presence set to dnd` or `Yealink T54W registered`.
    pub description: String,
    /// Machine-readable reason within the kind, e.g. `expired`, `unregistered`.
    pub reason: Option<String>,
    pub device_id: Option<String>,
    pub call_id: Option<String>,
}

impl PresenceCause {
    pub fn simple(kind: CauseKind, description: impl Into<String>) -> Self {
        Self {
            kind,
            description: description.into(),
            reason: None,
            device_id: None,
            call_id: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    pub pbx_id: String,
    pub extension: ExtensionRef,
    pub status: PresenceStatus,
    pub previous_status: Option<PresenceStatus>,
    pub cause: PresenceCause,
    pub at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionChange {
    pub pbx_id: String,
    pub kind: ChangeKind,
    pub extension: ExtensionView,
    pub at: i64,
}

/// What happened to a device's registration. Refreshes are not events: they would
/// flood every subscriber at registration rates, and change nothing anyone watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum DeviceChangeKind {
    Registered,
    Unregistered,
    Expired,
    Replaced,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceChange {
    pub pbx_id: String,
    pub extension: ExtensionRef,
    pub kind: DeviceChangeKind,
    pub device: Device,
    pub at: i64,
}

/// A call started ringing, was answered or ended (`kind` is the new state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallChange {
    pub pbx_id: String,
    pub kind: CallState,
    pub call: Call,
    pub at: i64,
}

/// What changed in a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum VoicemailChangeKind {
    Deposited,
    Heard,
    Unheard,
    Deleted,
    Purged,
}

/// A message was deposited, heard, marked unheard, deleted or purged; the counts are
/// the mailbox's after the change (what message-waiting lamps show).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicemailChange {
    pub pbx_id: String,
    pub extension: ExtensionRef,
    pub mailbox_id: String,
    pub kind: VoicemailChangeKind,
    pub message: Option<VoicemailMessage>,
    pub new_messages: u32,
    pub old_messages: u32,
    pub at: i64,
}

/// Someone joined or left a conference room, was muted or unmuted, or started or
/// stopped talking; `participant` as it is after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceChange {
    pub pbx_id: String,
    /// The conference extension (its room).
    pub room: ExtensionRef,
    pub kind: crate::domain::ConferenceEventKind,
    pub participant: crate::domain::Participant,
    /// How many are in the room after the change.
    pub participants: u32,
    pub at: i64,
}

/// Everything a person could watch happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Presence(PresenceChange),
    Extension(ExtensionChange),
    /// Boxed: a device record is large, and most events are small.
    Device(Box<DeviceChange>),
    Call(Box<CallChange>),
    Voicemail(Box<VoicemailChange>),
    Conference(Box<ConferenceChange>),
}

impl Event {
    pub fn pbx_id(&self) -> &str {
        match self {
            Event::Presence(e) => &e.pbx_id,
            Event::Extension(e) => &e.pbx_id,
            Event::Device(e) => &e.pbx_id,
            Event::Call(e) => &e.pbx_id,
            Event::Voicemail(e) => &e.pbx_id,
            Event::Conference(e) => &e.pbx_id,
        }
    }
}

/// An event with its place in its PBX's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// 1, 2, 3… per PBX: compare it only with sequences of the same PBX.
    pub sequence: u64,
    pub event: Event,
}

/// Which events a subscriber takes; runs on the publisher's side, so keep it cheap.
pub type Filter = Box<dyn Fn(&Event) -> bool + Send + Sync>;

/// The in-process event bus: a cheap handle, clone it freely.
///
/// Events are routed, not broadcast: each subscriber names its PBX (or every PBX) and a
/// filter, and `publish` hands an event only to the subscribers that take it. A console
/// watching one extension is not woken for the other 999, and a PBX's events never reach
/// another PBX's subscribers at all.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Mutex<BusInner>>,
}

struct BusInner {
    /// The last sequence assigned, per PBX id (absent: none yet, 0). One entry per PBX
    /// that ever published, a few dozen bytes each.
    sequences: HashMap<String, u64>,
    capacity: usize,
    next_id: u64,
    /// Subscribers of one PBX, by PBX id.
    by_pbx: HashMap<String, Vec<Slot>>,
    /// Subscribers of every PBX.
    everywhere: Vec<Slot>,
}

impl BusInner {
    fn sequence_of(&self, pbx: &str) -> u64 {
        self.sequences.get(pbx).copied().unwrap_or(0)
    }

    fn next_sequence(&mut self, pbx: &str) -> u64 {
        // Looked up before inserting: the key is allocated once per PBX, not per event.
        match self.sequences.get_mut(pbx) {
            Some(last) => {
                *last += 1;
                *last
            }
            None => {
                self.sequences.insert(pbx.to_owned(), 1);
                1
            }
        }
    }
}

/// A bounded queue whose sender never waits: an item that finds it full is dropped and
/// counted, and the receiver is told it lagged before it gets anything else. Memory is
/// taken as items queue up, not up front.
pub fn lossy_queue<T>(capacity: usize) -> (LossySender<T>, LossyReceiver<T>) {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    let missed = Arc::new(AtomicU64::new(0));
    (
        LossySender {
            queue: sender,
            missed: missed.clone(),
        },
        LossyReceiver {
            queue: ReceiverStream::new(receiver),
            missed,
        },
    )
}

pub struct LossySender<T> {
    queue: mpsc::Sender<T>,
    /// Items dropped because the queue was full, not yet reported.
    missed: Arc<AtomicU64>,
}

impl<T> LossySender<T> {
    pub fn offer(&self, item: T) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.queue.try_send(item) {
            self.missed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }
}

/// The receiving end of a [`lossy_queue`].
pub struct LossyReceiver<T> {
    queue: ReceiverStream<T>,
    missed: Arc<AtomicU64>,
}

impl<T> LossyReceiver<T> {
    /// The next item; [`RecvError::Lagged`] first if any were dropped since the last
    /// call (those still queued are older than the gap); `Closed` once every sender is
    /// gone and the queue is empty.
    pub async fn recv(&mut self) -> Result<T, RecvError> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, RecvError>> {
        let missed = self.missed.swap(0, Ordering::Relaxed);
        if missed > 0 {
            return Poll::Ready(Err(RecvError::Lagged(missed)));
        }
        let next = ready!(Pin::new(&mut self.queue).poll_next(cx));
        Poll::Ready(next.ok_or(RecvError::Closed))
    }

    /// Drops everything queued (and any pending lag report).
    pub fn drain(&mut self) {
        while self.queue.as_mut().try_recv().is_ok() {}
        self.missed.store(0, Ordering::Relaxed);
    }
}

struct Slot {
    id: u64,
    filter: Filter,
    queue: LossySender<Arc<Envelope>>,
}

impl Slot {
    fn offer(&self, envelope: &Arc<Envelope>) {
        // A closed queue's slot is removed when its receiver drops.
        if (self.filter)(&envelope.event) {
            self.queue.offer(envelope.clone());
        }
    }
}

/// A subscription: the events it takes after `sequence`, in order.
pub struct Subscription {
    /// The subscribed PBX's sequence when the subscription started; 0 for a subscription
    /// of every PBX, which has no single position (each PBX counts on its own).
    pub sequence: u64,
    pub receiver: Receiver,
}

/// The receiving end of a subscription; dropping it unsubscribes.
pub struct Receiver {
    queue: LossyReceiver<Arc<Envelope>>,
    bus: Bus,
    pbx: Option<String>,
    id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// This many items were dropped because the receiver fell `capacity` behind; it
    /// must resync from a snapshot. Items still queued are older than the gap.
    Lagged(u64),
    Closed,
}

/// What a subscription's stream yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Event(Arc<Envelope>),
    /// The subscriber fell `missed` events behind. Its stale backlog is already
    /// dropped (see [`Receiver::clear`]): a snapshot read now covers every event up to
    /// `sequence`, and what follows is newer.
    Lagged {
        missed: u64,
        sequence: u64,
    },
}

/// A subscription as a stream: a lag is reported once, with the backlog dropped and
/// the position a snapshot must start from; the stream ends with the bus.
impl Stream for Receiver {
    type Item = Delivery;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let this = self.get_mut();
        Poll::Ready(match ready!(this.queue.poll_recv(cx)) {
            Ok(envelope) => Some(Delivery::Event(envelope)),
            Err(RecvError::Lagged(missed)) => Some(Delivery::Lagged {
                missed,
                sequence: this.clear(),
            }),
            Err(RecvError::Closed) => None,
        })
    }
}

impl Receiver {
    pub async fn recv(&mut self) -> Result<Arc<Envelope>, RecvError> {
        self.queue.recv().await
    }

    /// Drops everything queued and returns the sequence its PBX reached (0 for a
    /// receiver of every PBX): a snapshot read after this covers every dropped event.
    /// What to do on [`RecvError::Lagged`]; with the stale backlog gone, the queue has
    /// room again at once.
    pub fn clear(&mut self) -> u64 {
        let inner = self.bus.lock();
        self.queue.drain();
        self.pbx.as_deref().map_or(0, |pbx| inner.sequence_of(pbx))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut inner = self.bus.lock();
        let slots = match &self.pbx {
            Some(pbx) => inner.by_pbx.get_mut(pbx),
            None => Some(&mut inner.everywhere),
        };
        if let Some(slots) = slots {
            slots.retain(|s| s.id != self.id);
            if slots.is_empty()
                && let Some(pbx) = &self.pbx
            {
                inner.by_pbx.remove(pbx);
            }
        }
    }
}

impl Bus {
    /// `capacity`: how many events a subscriber may fall behind before it lags.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(BusInner {
                sequences: HashMap::new(),
                capacity,
                next_id: 0,
                by_pbx: HashMap::new(),
                everywhere: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BusInner> {
        // A panic while holding this lock cannot leave the counter half-updated.
        self.inner.lock_unpoisoned()
    }

    /// Publishes `event` and returns its sequence number within its PBX. Call only
    /// after the change is stored. Having no subscriber is not an error.
    pub fn publish(&self, event: Event) -> u64 {
        let mut inner = self.lock();
        let sequence = inner.next_sequence(event.pbx_id());
        let envelope = Arc::new(Envelope { sequence, event });
        if let Some(slots) = inner.by_pbx.get(envelope.event.pbx_id()) {
            slots.iter().for_each(|s| s.offer(&envelope));
        }
        inner.everywhere.iter().for_each(|s| s.offer(&envelope));
        sequence
    }

    /// Events of PBX `pbx` (of every PBX when `None`) that `filter` takes, from the
    /// returned sequence on. Whatever a snapshot read after this call shows includes
    /// every event up to `sequence`.
    pub fn subscribe(
        &self,
        pbx: Option<&str>,
        filter: impl Fn(&Event) -> bool + Send + Sync + 'static,
    ) -> Subscription {
        let mut inner = self.lock();
        let (queue, receiver) = lossy_queue(inner.capacity);
        inner.next_id += 1;
        let id = inner.next_id;
        let slot = Slot {
            id,
            filter: Box::new(filter),
            queue,
        };
        match pbx {
            Some(pbx) => inner.by_pbx.entry(pbx.to_owned()).or_default().push(slot),
            None => inner.everywhere.push(slot),
        }
        Subscription {
            sequence: pbx.map_or(0, |pbx| inner.sequence_of(pbx)),
            receiver: Receiver {
                queue: receiver,
                bus: self.clone(),
                pbx: pbx.map(str::to_owned),
                id,
            },
        }
    }

    /// The last sequence PBX `pbx` assigned (0 before its first event).
    pub fn sequence(&self, pbx: &str) -> u64 {
        self.lock().sequence_of(pbx)
    }

    /// Live subscriptions (for tests and diagnostics).
    pub fn subscribers(&self) -> usize {
        let inner = self.lock();
        inner.everywhere.len() + inner.by_pbx.values().map(Vec::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence(number: &str) -> Event {
        presence_in("pbx_1", number)
    }

    fn presence_in(pbx: &str, number: &str) -> Event {
        Event::Presence(PresenceChange {
            pbx_id: pbx.into(),
            extension: ExtensionRef {
                id: format!("ext_{number}"),
                number: number.into(),
                name: "N".into(),
            },
            status: PresenceStatus::Dnd,
            previous_status: Some(PresenceStatus::Offline),
            cause: PresenceCause::simple(CauseKind::Manual, "test"),
            at: 0,
        })
    }

    #[tokio::test]
    async fn subscribers_see_only_later_events_in_sequence_order() {
        let bus = Bus::new(16);
        assert_eq!(bus.publish(presence("10")), 1);
        let mut sub = bus.subscribe(Some("pbx_1"), |_| true);
        assert_eq!(sub.sequence, 1);
        bus.publish(presence("11"));
        bus.publish(presence("12"));
        let a = sub.receiver.recv().await.unwrap();
        let b = sub.receiver.recv().await.unwrap();
        assert_eq!((a.sequence, b.sequence), (2, 3));
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_it_lagged() {
        let bus = Bus::new(2);
        let mut sub = bus.subscribe(Some("pbx_1"), |_| true);
        for n in 10..15 {
            bus.publish(presence(&n.to_string()));
        }
        assert_eq!(sub.receiver.recv().await, Err(RecvError::Lagged(3)));
        // Clearing drops the stale backlog and says where a snapshot must start; the
        // queue has room for later events at once.
        assert_eq!(sub.receiver.clear(), 5);
        bus.publish(presence("16"));
        bus.publish(presence("17"));
        assert_eq!(sub.receiver.recv().await.unwrap().sequence, 6);
        assert_eq!(sub.receiver.recv().await.unwrap().sequence, 7);
    }

    fn number_of(e: &Envelope) -> &str {
        match &e.event {
            Event::Presence(p) => &p.extension.number,
            _ => "",
        }
    }

    #[tokio::test]
    async fn events_reach_only_their_pbx_and_the_subscribers_whose_filter_takes_them() {
        let bus = Bus::new(16);
        let mut watches_11 = bus.subscribe(
            Some("pbx_1"),
            |e| matches!(e, Event::Presence(p) if p.extension.number == "11"),
        );
        let mut all_of_pbx_1 = bus.subscribe(Some("pbx_1"), |_| true);
        let mut pbx_2 = bus.subscribe(Some("pbx_2"), |_| true);
        let mut everywhere = bus.subscribe(None, |_| true);
        bus.publish(presence_in("pbx_1", "10"));
        bus.publish(presence_in("pbx_2", "11"));
        bus.publish(presence_in("pbx_1", "11"));

        let next = async |r: &mut Receiver| {
            let e = r.recv().await.unwrap();
            (e.sequence, number_of(&e).to_owned())
        };
        assert_eq!(next(&mut watches_11.receiver).await, (2, "11".into()));
        assert_eq!(next(&mut all_of_pbx_1.receiver).await, (1, "10".into()));
        assert_eq!(next(&mut all_of_pbx_1.receiver).await, (2, "11".into()));
        assert_eq!(next(&mut pbx_2.receiver).await, (1, "11".into()));
        for want in [1, 1, 2] {
            assert_eq!(next(&mut everywhere.receiver).await.0, want);
        }
        let quiet = std::time::Duration::from_millis(20);
        for r in [
            &mut watches_11,
            &mut all_of_pbx_1,
            &mut pbx_2,
            &mut everywhere,
        ] {
            assert!(
                tokio::time::timeout(quiet, r.receiver.recv())
                    .await
                    .is_err(),
                "nothing else was delivered"
            );
        }
    }

    #[tokio::test]
    async fn as_a_stream_a_subscription_reports_a_lag_once_with_its_backlog_dropped() {
        use tokio_stream::StreamExt;
        let bus = Bus::new(2);
        let sub = bus.subscribe(Some("pbx_1"), |_| true);
        let mut deliveries = sub.receiver;
        for n in 10..15 {
            bus.publish(presence(&n.to_string()));
        }
        assert_eq!(
            deliveries.next().await,
            Some(Delivery::Lagged {
                missed: 3,
                sequence: 5
            })
        );
        bus.publish(presence("16"));
        match deliveries.next().await {
            Some(Delivery::Event(e)) => assert_eq!(e.sequence, 6, "the backlog is gone"),
            other => panic!("{other:?}"),
        }
        drop(bus);
        let quiet = std::time::Duration::from_millis(20);
        assert!(
            tokio::time::timeout(quiet, deliveries.next())
                .await
                .is_err(),
            "the receiver's own handle keeps the bus alive: no end, no item"
        );
    }

    #[test]
    fn dropping_a_receiver_unsubscribes_it() {
        let bus = Bus::new(4);
        let a = bus.subscribe(Some("pbx_1"), |_| true);
        let b = bus.subscribe(None, |_| true);
        let c = bus.subscribe(Some("pbx_1"), |_| true);
        assert_eq!(bus.subscribers(), 3);
        drop(a);
        assert_eq!(bus.subscribers(), 2);
        drop((b, c));
        assert_eq!(bus.subscribers(), 0);
        assert!(
            bus.lock().by_pbx.is_empty(),
            "no empty PBX entry left behind"
        );
        bus.publish(presence("10"));
    }

    #[test]
    fn publishing_without_subscribers_still_advances_the_sequence() {
        let bus = Bus::new(4);
        bus.publish(presence("10"));
        bus.publish(presence("10"));
        assert_eq!(bus.sequence("pbx_1"), 2);
    }

    #[tokio::test]
    async fn each_pbx_numbers_its_events_on_its_own() {
        let bus = Bus::new(64);
        let mut quiet = bus.subscribe(Some("pbx_2"), |_| true);
        assert_eq!(bus.publish(presence_in("pbx_2", "20")), 1);
        // A busy neighbour: none of this moves pbx_2's numbers.
        for want in 1..=10 {
            assert_eq!(bus.publish(presence_in("pbx_1", "10")), want);
        }
        assert_eq!(bus.publish(presence_in("pbx_2", "21")), 2);
        assert_eq!((bus.sequence("pbx_1"), bus.sequence("pbx_2")), (10, 2));
        assert_eq!(bus.sequence("pbx_never_published"), 0);
        assert_eq!(quiet.sequence, 0);
        assert_eq!(quiet.receiver.recv().await.unwrap().sequence, 1);
        assert_eq!(quiet.receiver.recv().await.unwrap().sequence, 2);
        // A late subscriber starts from its own PBX's position, not the busiest one's.
        assert_eq!(bus.subscribe(Some("pbx_2"), |_| true).sequence, 2);
        assert_eq!(bus.subscribe(Some("pbx_1"), |_| true).sequence, 10);
    }

    #[tokio::test]
    async fn clearing_a_lagged_receiver_returns_its_own_pbx_position() {
        let bus = Bus::new(2);
        let mut sub = bus.subscribe(Some("pbx_2"), |_| true);
        for _ in 0..5 {
            bus.publish(presence_in("pbx_2", "20"));
        }
        for _ in 0..7 {
            bus.publish(presence_in("pbx_1", "10"));
        }
        assert_eq!(sub.receiver.recv().await, Err(RecvError::Lagged(3)));
        assert_eq!(
            sub.receiver.clear(),
            5,
            "pbx_2's five events, not all twelve"
        );
        bus.publish(presence_in("pbx_2", "20"));
        assert_eq!(sub.receiver.recv().await.unwrap().sequence, 6);
    }

    #[tokio::test]
    async fn a_subscriber_of_every_pbx_sees_each_pbx_in_its_own_order() {
        let bus = Bus::new(64);
        bus.publish(presence_in("pbx_1", "10"));
        let mut everywhere = bus.subscribe(None, |_| true);
        assert_eq!(everywhere.sequence, 0, "no single position across PBXes");
        let order = ["pbx_1", "pbx_2", "pbx_1", "pbx_3", "pbx_2", "pbx_1"];
        for pbx in order {
            bus.publish(presence_in(pbx, "10"));
        }
        let mut seen: Vec<(String, u64)> = Vec::new();
        for _ in order {
            let e = everywhere.receiver.recv().await.unwrap();
            seen.push((e.event.pbx_id().to_owned(), e.sequence));
        }
        let want = [
            ("pbx_1", 2),
            ("pbx_2", 1),
            ("pbx_1", 3),
            ("pbx_3", 1),
            ("pbx_2", 2),
            ("pbx_1", 4),
        ];
        let want: Vec<(String, u64)> = want.iter().map(|(p, n)| (p.to_string(), *n)).collect();
        assert_eq!(seen, want);
        assert_eq!(everywhere.receiver.clear(), 0);
    }
}
