//! Subscriptions: live feeds from the event bus, filtered to the caller's PBX.
//!
//! Each feed subscribes to the bus *before* it reads its snapshot, so nothing falls
//! between the two (see [`crate::events::Bus::subscribe`]). A subscriber that lags
//! behind the bounded bus gets a fresh snapshot (cause `RESYNC`) instead of silently
//! missing changes; the bus drops the stale backlog that snapshot covers.

use super::caller;
use super::types::{
    Call, CallEvent, ConferenceEvent, DeviceEvent, Extension, ExtensionEvent, PresenceEvent,
    VoicemailEvent,
};
use crate::api::error::gql;
use crate::auth::{Principal, Scope};
use crate::clock::{now_ms, rfc3339};
use crate::events::{
    CauseKind, ChangeKind, Delivery, DeviceChangeKind, Envelope, Event, PresenceCause,
};
use crate::service::{ServiceError, ServiceResult, Services};
use async_graphql::{Context, ID, Result, Subscription};
use futures_util::stream::BoxStream;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_stream::{Stream, StreamExt};

pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// The current status of each watched extension (all when `numbers` is omitted),
    /// then every change.
    async fn presence_changed(
        &self,
        ctx: &Context<'_>,
        numbers: Option<Vec<String>>,
    ) -> Result<impl Stream<Item = PresenceEvent> + use<>> {
        let filter = PresenceFilter {
            numbers: Watched::new(numbers),
        };
        open_feed(ctx, Scope::ExtensionsRead, filter)
    }

    /// Devices of the caller's PBX registering, unregistering, expiring or being
    /// replaced (refreshes are not events). Needs `pbx:phones:read`.
    async fn device_changed(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = DeviceEvent> + use<>> {
        open_feed(ctx, Scope::PhonesRead, DeviceFilter)
    }

    /// Calls ringing, answered and ended, of the watched extensions (all when `numbers`
    /// is omitted); the first events are the calls active right now.
    async fn call_events(
        &self,
        ctx: &Context<'_>,
        numbers: Option<Vec<String>>,
    ) -> Result<impl Stream<Item = CallEvent> + use<>> {
        let filter = CallFilter {
            numbers: Watched::new(numbers),
        };
        open_feed(ctx, Scope::ExtensionsRead, filter)
    }

    /// Voicemail deposited, heard, deleted or purged in the caller's PBX (all mailboxes
    /// when `mailboxIds` is omitted). Needs `pbx:voicemail:read`.
    async fn voicemail_events(
        &self,
        ctx: &Context<'_>,
        mailbox_ids: Option<Vec<ID>>,
    ) -> Result<impl Stream<Item = VoicemailEvent> + use<>> {
        let filter = VoicemailFilter {
            mailboxes: mailbox_ids.map(|ids| ids.into_iter().map(|id| id.0).collect()),
        };
        open_feed(ctx, Scope::VoicemailRead, filter)
    }

    /// Extensions created, updated or deleted in the caller's PBX.
    async fn extension_changed(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = ExtensionEvent> + use<>> {
        open_feed(ctx, Scope::ExtensionsRead, ExtensionFilter)
    }

    /// The watched conference rooms (all when `numbers` is omitted): first a `SNAPSHOT`
    /// of each with its participants, then who joins, leaves, is muted or unmuted, and
    /// starts or stops talking; a `RESYNC` of each room after falling behind. Needs
    /// `pbx:conferences:read`.
    async fn conference_events(
        &self,
        ctx: &Context<'_>,
        numbers: Option<Vec<String>>,
    ) -> Result<impl Stream<Item = ConferenceEvent> + use<>> {
        let filter = ConferenceFilter {
            numbers: Watched::new(numbers),
        };
        open_feed(ctx, Scope::ConferencesRead, filter)
    }
}

/// How a feed runs when the websocket layer shares one execution among many sockets
/// (see `fanout`); without it in the request data, a feed opens with its snapshot and
/// then follows the bus.
#[derive(Clone)]
pub enum FeedMode {
    /// Only a snapshot with this cause (nothing for an opening `SNAPSHOT` of a feed that
    /// opens without one), then the end. The sequence it covers is stored in `covers`;
    /// it stays `u64::MAX` when the snapshot failed.
    Snapshot {
        cause: CauseKind,
        covers: Arc<AtomicU64>,
    },
    /// No opening snapshot; before each item is yielded, `at` gets its sequence.
    /// `on_bus` turns true once the feed is subscribed to the bus (and closes, unset,
    /// if the execution ends before that, e.g. on an error).
    Live {
        at: Arc<AtomicU64>,
        on_bus: Arc<tokio::sync::watch::Sender<bool>>,
    },
}

/// The caller's feed of `kind`, once it is known to hold `scope`.
fn open_feed<K: FeedKind>(
    ctx: &Context<'_>,
    scope: Scope,
    kind: K,
) -> Result<BoxStream<'static, K::Item>> {
    let (services, principal) = caller(ctx)?;
    principal.require(scope).map_err(|e| gql(e.into()))?;
    let (services, principal) = (services.clone(), principal.clone());
    Ok(match ctx.data_opt::<FeedMode>().cloned() {
        None => Box::pin(feed(services, principal, kind, true, None)),
        Some(FeedMode::Live { at, on_bus }) => {
            // `feed` subscribes before it returns.
            let live = Box::pin(feed(services, principal, kind, false, Some(at)));
            on_bus.send_replace(true);
            live
        }
        Some(FeedMode::Snapshot { cause, covers }) => {
            Box::pin(snapshot_only(services, principal, kind, cause, covers))
        }
    })
}

/// The snapshot a feed of `kind` would send now, as a stream that then ends.
fn snapshot_only<K: FeedKind>(
    services: Arc<Services>,
    principal: Principal,
    kind: K,
    cause: CauseKind,
    covers: Arc<AtomicU64>,
) -> impl Stream<Item = K::Item> {
    covers.store(u64::MAX, Ordering::Relaxed);
    let snapshot = futures_util::stream::once(async move {
        // The snapshot is read after the sequence, so it includes every event up to it.
        let sequence = services.event_sequence(&principal.pbx_id);
        if cause == CauseKind::Snapshot && !K::OPENS_WITH_SNAPSHOT {
            covers.store(sequence, Ordering::Relaxed);
            return Vec::new();
        }
        match kind.snapshot(&services, &principal, cause, sequence).await {
            Ok(items) => {
                covers.store(sequence, Ordering::Relaxed);
                items
            }
            Err(e) => {
                log_feed_error(&e);
                Vec::new()
            }
        }
    });
    flatten(snapshot)
}

/// The items of each batch in turn (tokio-stream has no `flat_map`).
fn flatten<T>(batches: impl Stream<Item = Vec<T>>) -> impl Stream<Item = T> {
    futures_util::StreamExt::flat_map(batches, tokio_stream::iter)
}

/// The extension numbers a feed watches: every one of the PBX's when none were given.
struct Watched(Option<HashSet<String>>);

impl Watched {
    fn new(numbers: Option<Vec<String>>) -> Self {
        Self(numbers.map(|n| n.into_iter().collect()))
    }

    fn all(&self) -> bool {
        self.0.is_none()
    }

    fn has(&self, number: &str) -> bool {
        self.0.as_ref().is_none_or(|n| n.contains(number))
    }
}

struct CallFilter {
    numbers: Watched,
}

impl CallFilter {
    fn watches(&self, call: &crate::domain::Call) -> bool {
        self.numbers.all()
            || (call.caller_extension_id.is_some() && self.numbers.has(&call.caller_number))
            || (call.callee_extension_id.is_some() && self.numbers.has(&call.callee_number))
    }
}

impl FeedKind for CallFilter {
    type Item = CallEvent;
    const OPENS_WITH_SNAPSHOT: bool = true;

    fn wants(&self, event: &Event) -> bool {
        matches!(event, Event::Call(change) if self.watches(&change.call))
    }

    fn select(&self, principal: &Principal, envelope: &Envelope) -> Option<CallEvent> {
        match &envelope.event {
            Event::Call(change)
                if change.pbx_id == principal.pbx_id && self.watches(&change.call) =>
            {
                Some(CallEvent {
                    kind: change.kind,
                    call: Call(change.call.clone()),
                    at: rfc3339(change.at),
                    sequence: envelope.sequence,
                })
            }
            _ => None,
        }
    }

    /// The active calls, each as an event of its current state.
    async fn snapshot(
        &self,
        services: &Services,
        principal: &Principal,
        _cause: CauseKind,
        sequence: u64,
    ) -> ServiceResult<Vec<CallEvent>> {
        let page = services
            .list_calls(principal, true, None, 500, None)
            .await?;
        let at = rfc3339(now_ms());
        Ok(page
            .calls
            .into_iter()
            .filter(|c| self.watches(c))
            .map(|c| CallEvent {
                kind: c.state,
                call: Call(c),
                at: at.clone(),
                sequence,
            })
            .collect())
    }
}

/// Devices registering, unregistering, expiring or being replaced.
pub struct DeviceFilter;

impl FeedKind for DeviceFilter {
    type Item = DeviceEvent;
    const OPENS_WITH_SNAPSHOT: bool = false;

    fn wants(&self, event: &Event) -> bool {
        matches!(event, Event::Device(_))
    }

    fn select(&self, principal: &Principal, envelope: &Envelope) -> Option<DeviceEvent> {
        match &envelope.event {
            Event::Device(change) if change.pbx_id == principal.pbx_id => {
                Some(DeviceEvent::from_change(change, envelope.sequence))
            }
            _ => None,
        }
    }

    /// A resync re-sends every listed device: live ones as `REGISTERED`, ended ones with
    /// the kind of their ending.
    async fn snapshot(
        &self,
        services: &Services,
        principal: &Principal,
        _cause: CauseKind,
        sequence: u64,
    ) -> ServiceResult<Vec<DeviceEvent>> {
        let now = now_ms();
        Ok(services
            .list_phones(principal, None)
            .await?
            .into_iter()
            .map(|listing| {
                let kind = match listing.device.end_reason {
                    _ if listing.device.is_registered(now) => DeviceChangeKind::Registered,
                    Some(crate::domain::EndReason::Unregistered) => DeviceChangeKind::Unregistered,
                    Some(crate::domain::EndReason::Replaced) => DeviceChangeKind::Replaced,
                    _ => DeviceChangeKind::Expired,
                };
                let extension = listing.extension_ref();
                DeviceEvent::new(kind, listing.device, &extension, now, sequence)
            })
            .collect())
    }
}

struct VoicemailFilter {
    mailboxes: Option<HashSet<String>>,
}

impl VoicemailFilter {
    fn watches(&self, mailbox_id: &str) -> bool {
        self.mailboxes
            .as_ref()
            .is_none_or(|m| m.contains(mailbox_id))
    }
}

impl FeedKind for VoicemailFilter {
    type Item = VoicemailEvent;
    const OPENS_WITH_SNAPSHOT: bool = false;

    fn wants(&self, event: &Event) -> bool {
        matches!(event, Event::Voicemail(change) if self.watches(&change.mailbox_id))
    }

    fn select(&self, principal: &Principal, envelope: &Envelope) -> Option<VoicemailEvent> {
        match &envelope.event {
            Event::Voicemail(change)
                if change.pbx_id == principal.pbx_id && self.watches(&change.mailbox_id) =>
            {
                Some(VoicemailEvent::from_change(change, envelope.sequence))
            }
            _ => None,
        }
    }

    /// Events are changes, not state: after lagging there is nothing to replay (the
    /// mailboxes query has the counts).
    async fn snapshot(
        &self,
        _services: &Services,
        _principal: &Principal,
        _cause: CauseKind,
        _sequence: u64,
    ) -> ServiceResult<Vec<VoicemailEvent>> {
        Ok(Vec::new())
    }
}

/// What one kind of feed selects from the bus and how it takes a snapshot.
trait FeedKind: Send + Sync + 'static {
    type Item: Send + 'static;
    /// Whether the feed opens with a snapshot (otherwise only resyncs send one).
    const OPENS_WITH_SNAPSHOT: bool;

    /// Whether the feed takes `event` (of the caller's PBX: the bus routes by PBX).
    /// Runs on the publisher's side for every subscriber of the PBX, so it only looks.
    fn wants(&self, event: &Event) -> bool;

    /// The item for an event the feed takes; `None` for any other (a second check,
    /// the PBX included, so nothing leaks should the routing ever change).
    fn select(&self, principal: &Principal, envelope: &Envelope) -> Option<Self::Item>;

    fn snapshot(
        &self,
        services: &Services,
        principal: &Principal,
        cause: CauseKind,
        sequence: u64,
    ) -> impl Future<Output = ServiceResult<Vec<Self::Item>>> + Send;
}

struct PresenceFilter {
    numbers: Watched,
}

impl PresenceFilter {
    fn watches(&self, number: &str) -> bool {
        self.numbers.has(number)
    }
}

impl FeedKind for PresenceFilter {
    type Item = PresenceEvent;
    const OPENS_WITH_SNAPSHOT: bool = true;

    fn wants(&self, event: &Event) -> bool {
        matches!(event, Event::Presence(change) if self.watches(&change.extension.number))
    }

    fn select(&self, principal: &Principal, envelope: &Envelope) -> Option<PresenceEvent> {
        match &envelope.event {
            Event::Presence(change)
                if change.pbx_id == principal.pbx_id && self.watches(&change.extension.number) =>
            {
                Some(PresenceEvent::from_change(change, envelope.sequence))
            }
            _ => None,
        }
    }

    async fn snapshot(
        &self,
        services: &Services,
        principal: &Principal,
        cause: CauseKind,
        sequence: u64,
    ) -> ServiceResult<Vec<PresenceEvent>> {
        let views = services.list_extensions(principal, None, None).await?;
        let at = now_ms();
        Ok(views
            .into_iter()
            .filter(|v| self.watches(&v.extension.number))
            .map(|v| {
                let change = crate::events::PresenceChange {
                    pbx_id: principal.pbx_id.clone(),
                    extension: crate::domain::ExtensionRef::from(&v.extension),
                    status: v.status,
                    previous_status: None,
                    cause: PresenceCause::simple(cause, "current status"),
                    at,
                };
                PresenceEvent::from_change(&change, sequence)
            })
            .collect())
    }
}

struct ConferenceFilter {
    numbers: Watched,
}

impl ConferenceFilter {
    fn watches(&self, number: &str) -> bool {
        self.numbers.has(number)
    }
}

impl FeedKind for ConferenceFilter {
    type Item = ConferenceEvent;
    const OPENS_WITH_SNAPSHOT: bool = true;

    fn wants(&self, event: &Event) -> bool {
        matches!(event, Event::Conference(change) if self.watches(&change.room.number))
    }

    fn select(&self, principal: &Principal, envelope: &Envelope) -> Option<ConferenceEvent> {
        match &envelope.event {
            Event::Conference(change)
                if change.pbx_id == principal.pbx_id && self.watches(&change.room.number) =>
            {
                Some(ConferenceEvent::from_change(change, envelope.sequence))
            }
            _ => None,
        }
    }

    /// Each watched room (empty ones too) with who is in it.
    async fn snapshot(
        &self,
        services: &Services,
        principal: &Principal,
        cause: CauseKind,
        sequence: u64,
    ) -> ServiceResult<Vec<ConferenceEvent>> {
        let kind = if cause == CauseKind::Resync {
            crate::domain::ConferenceEventKind::Resync
        } else {
            crate::domain::ConferenceEventKind::Snapshot
        };
        let at = now_ms();
        Ok(services
            .list_conferences(principal, false)
            .await?
            .into_iter()
            .filter(|room| self.watches(&room.extension.number))
            .map(|room| ConferenceEvent::of_room(kind, room, at, sequence))
            .collect())
    }
}

struct ExtensionFilter;

impl FeedKind for ExtensionFilter {
    type Item = ExtensionEvent;
    const OPENS_WITH_SNAPSHOT: bool = false;

    fn wants(&self, event: &Event) -> bool {
        matches!(event, Event::Extension(_))
    }

    fn select(&self, principal: &Principal, envelope: &Envelope) -> Option<ExtensionEvent> {
        match &envelope.event {
            Event::Extension(change) if change.pbx_id == principal.pbx_id => {
                Some(ExtensionEvent::from_change(change, envelope.sequence))
            }
            _ => None,
        }
    }

    /// A resync re-sends every current extension as `UPDATED` (deletions missed while
    /// lagging show up as extensions absent from the resync).
    async fn snapshot(
        &self,
        services: &Services,
        principal: &Principal,
        _cause: CauseKind,
        sequence: u64,
    ) -> ServiceResult<Vec<ExtensionEvent>> {
        let at = rfc3339(now_ms());
        Ok(services
            .list_extensions(principal, None, None)
            .await?
            .into_iter()
            .map(|view| ExtensionEvent {
                kind: ChangeKind::Updated,
                extension: Extension(view),
                at: at.clone(),
                sequence,
            })
            .collect())
    }
}

/// One step of a feed: an event from the bus, or a snapshot to take (at the opening
/// and after a lag) that covers the bus up to `sequence`.
enum Step {
    Event(Arc<Envelope>),
    Snapshot { cause: CauseKind, sequence: u64 },
}

impl Step {
    fn of(delivery: Delivery, pbx_id: &str) -> Step {
        match delivery {
            Delivery::Event(envelope) => Step::Event(envelope),
            Delivery::Lagged { missed, sequence } => {
                tracing::warn!(missed, pbx.id = %pbx_id, "subscriber lagged; resending a snapshot");
                Step::Snapshot {
                    cause: CauseKind::Resync,
                    sequence,
                }
            }
        }
    }
}

/// The items one step turns into, each with the bus sequence it shows; `None` when a
/// snapshot failed, which ends the feed (the client resubscribes).
async fn resolve<K: FeedKind>(
    kind: &K,
    services: &Services,
    principal: &Principal,
    step: Step,
) -> Option<Vec<(K::Item, u64)>> {
    match step {
        Step::Event(envelope) => Some(
            kind.select(principal, &envelope)
                .map(|item| (item, envelope.sequence))
                .into_iter()
                .collect(),
        ),
        Step::Snapshot { cause, sequence } => {
            match kind.snapshot(services, principal, cause, sequence).await {
                Ok(items) => Some(items.into_iter().map(|i| (i, sequence)).collect()),
                Err(e) => {
                    log_feed_error(&e);
                    None
                }
            }
        }
    }
}

/// The live feed: subscribes to the bus, opens with a snapshot when `opening` and the
/// kind has one, then yields every event it takes; a lag (the bus drops the stale
/// backlog) sends a resync snapshot. When `at` is given, it holds the sequence of the
/// item being yielded.
fn feed<K: FeedKind>(
    services: Arc<Services>,
    principal: Principal,
    kind: K,
    opening: bool,
    at: Option<Arc<AtomicU64>>,
) -> impl Stream<Item = K::Item> {
    let kind = Arc::new(kind);
    let filter = kind.clone();
    let sub = services.subscribe_events(Some(&principal.pbx_id), move |e| filter.wants(e));
    let opening = (opening && K::OPENS_WITH_SNAPSHOT).then_some(Step::Snapshot {
        cause: CauseKind::Snapshot,
        sequence: sub.sequence,
    });
    let pbx_id = principal.pbx_id.clone();
    let deliveries = sub.receiver.map(move |d| Step::of(d, &pbx_id));
    // One clone of one `Arc` per step, not of everything the steps need.
    let context = Arc::new((kind, services, principal));
    let batches = tokio_stream::iter(opening)
        .chain(deliveries)
        .then(move |step| {
            let context = context.clone();
            async move {
                let (kind, services, principal) = &*context;
                resolve(&**kind, services, principal, step).await
            }
        })
        .map_while(|batch| batch);
    flatten(batches).map(move |(item, sequence)| {
        if let Some(at) = &at {
            at.store(sequence, Ordering::Relaxed);
        }
        item
    })
}

fn log_feed_error(e: &ServiceError) {
    tracing::warn!(error = %e, "subscription ended: snapshot failed");
}

/// Services on a fresh SQLite file with the default PBX, a principal with every scope
/// in it, and handles on the bus and the store the services run on (for the unit tests
/// here and in `fanout`).
#[cfg(test)]
pub(super) struct TestServices {
    pub services: Arc<Services>,
    pub principal: Principal,
    pub dir: std::path::PathBuf,
    pub bus: crate::events::Bus,
    pub store: crate::store::Store,
}

#[cfg(test)]
pub(super) async fn services_with_bus(capacity: usize) -> TestServices {
    use crate::auth::{ScopeSet, jwt::JwtKeys};
    use crate::events::Bus;
    use crate::store::Store;
    let dir = std::env::temp_dir().join(format!("sb-unit-{}", crate::ids::lower_alnum(12)));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(None, &dir).await.unwrap();
    let bus = Bus::new(capacity);
    let services = Services::new(
        store.clone(),
        bus.clone(),
        JwtKeys::new(&[1; 32], 60).unwrap(),
    );
    let (pbx, _) = services
        .bootstrap()
        .ensure_default("127.0.0.1")
        .await
        .unwrap()
        .unwrap();
    let principal = Principal {
        pbx_id: pbx.id,
        key_id: "key_test".into(),
        scopes: ScopeSet::all(),
    };
    TestServices {
        services,
        principal,
        dir,
        bus,
        store,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PresenceSetting;
    use crate::service::{ExtensionDraft, Field};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lagging_presence_subscriber_gets_a_resync_snapshot_not_a_gap() {
        let TestServices {
            services,
            principal,
            dir,
            ..
        } = services_with_bus(2).await;
        let draft = ExtensionDraft {
            number: Field::Value("101".into()),
            name: Field::Value("Alice".into()),
            ..Default::default()
        };
        let id = services
            .create_extension(&principal, draft)
            .await
            .unwrap()
            .extension
            .extension
            .id;

        let stream = feed(
            services.clone(),
            principal.clone(),
            PresenceFilter {
                numbers: Watched(None),
            },
            true,
            None,
        );
        futures_util::pin_mut!(stream);
        let first = stream.next().await.unwrap();
        assert_eq!(first.cause.kind, CauseKind::Snapshot);

        // Five changes while the subscriber reads nothing: more than the bus holds.
        for setting in [PresenceSetting::Dnd, PresenceSetting::Available]
            .into_iter()
            .cycle()
            .take(5)
        {
            services
                .set_presence(&principal, &id, setting)
                .await
                .unwrap();
        }
        let resync = stream.next().await.unwrap();
        assert_eq!(resync.cause.kind, CauseKind::Resync);
        assert_eq!(
            resync.status,
            crate::domain::PresenceStatus::Dnd,
            "the resync shows the latest state"
        );
        assert_eq!(resync.sequence, services.event_sequence(&principal.pbx_id));

        // Afterwards, changes flow normally again.
        services
            .set_presence(&principal, &id, PresenceSetting::Available)
            .await
            .unwrap();
        let next = stream.next().await.unwrap();
        assert_eq!(next.cause.kind, CauseKind::Manual);
        assert!(next.sequence > resync.sequence);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lagging_conference_subscriber_gets_each_room_again_as_resync() {
        use crate::domain::{ConferenceEventKind, ExtensionRef, ExtensionType, Participant};
        let TestServices {
            services,
            principal,
            dir,
            ..
        } = services_with_bus(2).await;
        let draft = ExtensionDraft {
            number: Field::Value("800".into()),
            name: Field::Value("Board".into()),
            kind: Field::Value(ExtensionType::Conference),
            ..Default::default()
        };
        let created = services.create_extension(&principal, draft).await.unwrap();
        let room = ExtensionRef::from(&created.extension.extension);
        let stream = feed(
            services.clone(),
            principal.clone(),
            ConferenceFilter {
                numbers: Watched(None),
            },
            true,
            None,
        );
        futures_util::pin_mut!(stream);
        let first = stream.next().await.unwrap();
        assert_eq!(first.kind, ConferenceEventKind::Snapshot);
        assert_eq!(first.participants.as_ref().map(Vec::len), Some(0));

        // Three joins while the subscriber reads nothing: more than the bus holds.
        for n in 0..3 {
            let participant = Participant {
                id: format!("par_{n}"),
                call_id: format!("call_{n}"),
                caller_number: format!("10{n}"),
                caller_name: None,
                joined_at: 0,
                muted: false,
                talking: false,
                codec: "PCMU".into(),
            };
            services
                .conference_joined(&principal.pbx_id, &room, participant)
                .await;
        }
        let resync = stream.next().await.unwrap();
        assert_eq!(resync.kind, ConferenceEventKind::Resync);
        assert_eq!(
            resync.participant_count, 3,
            "the resync shows the room as it is"
        );
        assert_eq!(resync.participants.as_ref().map(Vec::len), Some(3));
        assert_eq!(resync.sequence, services.event_sequence(&principal.pbx_id));

        // Afterwards, changes flow normally again.
        services
            .conference_left(&principal.pbx_id, &room, "par_0")
            .await;
        let next = stream.next().await.unwrap();
        assert_eq!(next.kind, ConferenceEventKind::Left);
        assert_eq!(next.participant_count, 2);
        let _ = std::fs::remove_dir_all(dir);
    }
}
