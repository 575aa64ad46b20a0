//! Typed events and the bus that carries them to subscribers.
//!
//! A change is published only after it is stored. Each event gets the next value of one
//! sequence, and sequence assignment and broadcast happen under one lock, so every
//! subscriber sees events in sequence order. The channel is bounded: a subscriber that
//! falls more than `capacity` events behind gets `Lagged` from tokio and must resync
//! from a snapshot (the GraphQL subscriptions do exactly that).

use crate::domain::{Call, CallState, Device, ExtensionView, PresenceStatus};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// `id`, `number` and `name` of the extension an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionRef {
    pub id: String,
    pub number: String,
    pub name: String,
}

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

/// Everything a person could watch happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Presence(PresenceChange),
    Extension(ExtensionChange),
    /// Boxed: a device record is large, and most events are small.
    Device(Box<DeviceChange>),
    Call(Box<CallChange>),
    Voicemail(Box<crate::service::VoicemailChange>),
}

impl Event {
    pub fn pbx_id(&self) -> &str {
        match self {
            Event::Presence(e) => &e.pbx_id,
            Event::Extension(e) => &e.pbx_id,
            Event::Device(e) => &e.pbx_id,
            Event::Call(e) => &e.pbx_id,
            Event::Voicemail(e) => &e.pbx_id,
        }
    }
}

/// An event with its place in the global order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub sequence: u64,
    pub event: Event,
}

/// The in-process event bus: a cheap handle, clone it freely.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Mutex<BusInner>>,
}

struct BusInner {
    sequence: u64,
    sender: broadcast::Sender<Arc<Envelope>>,
}

/// A subscription: events after `sequence`, in order.
pub struct Subscription {
    pub sequence: u64,
    pub receiver: broadcast::Receiver<Arc<Envelope>>,
}

impl Bus {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self {
            inner: Arc::new(Mutex::new(BusInner {
                sequence: 0,
                sender,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BusInner> {
        // A panic while holding this lock cannot leave the counter half-updated.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes `event` and returns its sequence number. Call only after the change
    /// is stored. Having no subscriber is not an error.
    pub fn publish(&self, event: Event) -> u64 {
        let mut inner = self.lock();
        inner.sequence += 1;
        let sequence = inner.sequence;
        let _ = inner.sender.send(Arc::new(Envelope { sequence, event }));
        sequence
    }

    /// A receiver for every event after the returned sequence. Whatever a snapshot
    /// read after this call shows includes every event up to `sequence`.
    pub fn subscribe(&self) -> Subscription {
        let inner = self.lock();
        Subscription {
            sequence: inner.sequence,
            receiver: inner.sender.subscribe(),
        }
    }

    pub fn sequence(&self) -> u64 {
        self.lock().sequence
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence(number: &str) -> Event {
        Event::Presence(PresenceChange {
            pbx_id: "pbx_1".into(),
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
        let mut sub = bus.subscribe();
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
        let mut sub = bus.subscribe();
        for n in 10..15 {
            bus.publish(presence(&n.to_string()));
        }
        assert!(matches!(
            sub.receiver.recv().await,
            Err(broadcast::error::RecvError::Lagged(3))
        ));
    }

    #[test]
    fn publishing_without_subscribers_still_advances_the_sequence() {
        let bus = Bus::new(4);
        bus.publish(presence("10"));
        bus.publish(presence("10"));
        assert_eq!(bus.sequence(), 2);
    }
}
