//! Subscriptions executed once per event for every socket that asked the same thing.
//!
//! A reception board is one subscription on many screens. Resolving the selection for
//! each socket costs more than writing it, so sockets whose subscriptions agree in PBX,
//! scopes, document, operation and variables share a *group*: one live execution whose
//! responses every member sends on. Each member still takes its own opening snapshot (and
//! its own resync if it falls behind the group), and skips group responses that its
//! snapshot already covers: the group's feed notes the bus sequence of every response.
//!
//! This is the [`Executor`] every operation runs through, from `POST /graphql` and the
//! websocket alike: its document is admitted by [`super::limits`] first, queries and
//! mutations run once within their time budget, and subscriptions without a caller go
//! straight to the schema.

use super::AppSchema;
use super::limits::{Admitted, admit, within_budget};
use super::subscription::FeedMode;
use crate::auth::{Principal, ScopeSet};
use crate::events::{CauseKind, LossyReceiver, LossySender, RecvError, lossy_queue};
use crate::sync::MutexExt;
use async_graphql::parser::types::OperationType;
use async_graphql::{Data, Executor, Request, Response, Variables};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::any::TypeId;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::task::AbortHandle;

/// Runs every GraphQL operation, from `POST /graphql` and the websocket alike, within
/// the limits of [`super::limits`]; shares one execution among identical subscriptions.
#[derive(Clone)]
pub struct SubscriptionExecutor {
    schema: AppSchema,
    /// Answers introspection-only queries (see [`super::build_introspection_schema`]).
    introspection: AppSchema,
    groups: Registry,
    /// Group responses a member may fall behind before it resyncs from its own snapshot.
    buffer: usize,
}

type Registry = Arc<Mutex<HashMap<GroupKey, Weak<Group>>>>;

impl SubscriptionExecutor {
    /// `buffer`: as `--event-buffer`, per member.
    pub fn new(schema: AppSchema, buffer: usize) -> Self {
        Self {
            schema,
            introspection: super::build_introspection_schema(),
            groups: Registry::default(),
            buffer,
        }
    }

    /// The schema that runs an admitted request: introspection-only queries go to the
    /// one with the deeper limit GraphiQL needs.
    fn schema_for(&self, admitted: Admitted, request: Request) -> (&AppSchema, Request) {
        if admitted.introspection {
            (&self.introspection, request.only_introspection())
        } else {
            (&self.schema, request)
        }
    }

    /// Live groups (for tests and diagnostics).
    pub fn groups(&self) -> usize {
        self.groups
            .lock_unpoisoned()
            .values()
            .filter(|g| g.strong_count() > 0)
            .count()
    }

    /// The running group for `key`, started if there is none.
    fn join(&self, key: &GroupKey, parts: &Parts, session: &Arc<Data>) -> Arc<Group> {
        let mut groups = self.groups.lock_unpoisoned();
        let existing = groups.get(key).and_then(Weak::upgrade);
        if let Some(group) = &existing
            && !group.task.is_finished()
        {
            return group.clone();
        }
        let group = self.start(key, parts, session);
        groups.insert(key.clone(), Arc::downgrade(&group));
        drop(groups);
        // A finished group may be dropped here, and its Drop takes the registry lock.
        drop(existing);
        group
    }

    fn start(&self, key: &GroupKey, parts: &Parts, session: &Arc<Data>) -> Arc<Group> {
        let members: Members = Arc::default();
        let at = Arc::new(AtomicU64::new(0));
        let (on_bus, on_bus_rx) = tokio::sync::watch::channel(false);
        let request = parts.request(FeedMode::Live {
            at: at.clone(),
            on_bus: Arc::new(on_bus),
        });
        let mut responses = self
            .schema
            .execute_stream_with_session_data(request, session.clone());
        let to = members.clone();
        let task = tokio::spawn(async move {
            while let Some(response) = responses.next().await {
                let sequence = at.load(Ordering::Relaxed);
                let rendered = Arc::new(Rendered { sequence, response });
                let mut members = to.lock_unpoisoned();
                members.retain(|m| !m.is_closed());
                members.iter().for_each(|m| m.offer(rendered.clone()));
            }
            // The feed ended: so do the members' streams.
            to.lock_unpoisoned().clear();
        });
        Arc::new(Group {
            members,
            on_bus: on_bus_rx,
            buffer: self.buffer,
            task: task.abort_handle(),
            key: key.clone(),
            registry: self.groups.clone(),
        })
    }
}

impl Executor for SubscriptionExecutor {
    /// A query or a mutation (`POST /graphql`), admitted and within its time budget.
    async fn execute(&self, mut request: Request) -> Response {
        let admitted = match admit(&mut request) {
            Ok(admitted) => admitted,
            Err(refused) => return Response::from_errors(vec![refused]),
        };
        let (schema, request) = self.schema_for(admitted, request);
        within_budget(schema.execute(request)).await
    }

    /// Every operation of a websocket: admitted first; queries and mutations run
    /// within their time budget.
    fn execute_stream(
        &self,
        mut request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let session = session_data.unwrap_or_default();
        let admitted = match admit(&mut request) {
            Ok(admitted) => admitted,
            Err(refused) => {
                return futures_util::stream::once(async { Response::from_errors(vec![refused]) })
                    .boxed();
            }
        };
        if admitted.operation != Some(OperationType::Subscription) {
            let (schema, request) = self.schema_for(admitted, request);
            let mut responses = schema.execute_stream_with_session_data(request, session);
            let once = within_budget(async move {
                // A query or mutation answers once.
                responses.next().await.unwrap_or_default()
            });
            return futures_util::stream::once(once).boxed();
        }
        match GroupKey::of(&request, &session) {
            Some(key) => member(self.clone(), key, Parts::of(&request), session).boxed(),
            None => self
                .schema
                .execute_stream_with_session_data(request, session),
        }
    }
}

/// What makes two subscriptions render the same bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    pbx_id: String,
    scopes: ScopeSet,
    query: String,
    operation_name: Option<String>,
    /// The variables as JSON.
    variables: String,
}

impl GroupKey {
    /// The key of a subscription (admitted already) with a caller; `None` without one.
    fn of(request: &Request, session: &Data) -> Option<GroupKey> {
        let principal = session
            .get(&TypeId::of::<Principal>())?
            .downcast_ref::<Principal>()?;
        Some(GroupKey {
            pbx_id: principal.pbx_id.clone(),
            scopes: principal.scopes,
            query: request.query.clone(),
            operation_name: request.operation_name.clone(),
            variables: serde_json::to_string(&request.variables).unwrap_or_default(),
        })
    }
}

/// What a request is made of, to run it again with a feed mode.
struct Parts {
    query: String,
    operation_name: Option<String>,
    variables: Variables,
}

impl Parts {
    fn of(request: &Request) -> Parts {
        Parts {
            query: request.query.clone(),
            operation_name: request.operation_name.clone(),
            variables: request.variables.clone(),
        }
    }

    fn request(&self, mode: FeedMode) -> Request {
        let mut request = Request::new(self.query.clone())
            .variables(self.variables.clone())
            .data(mode);
        if let Some(name) = &self.operation_name {
            request = request.operation_name(name.clone());
        }
        request
    }
}

/// One response of a group's execution, with the bus sequence it shows.
struct Rendered {
    sequence: u64,
    response: Response,
}

type Members = Arc<Mutex<Vec<LossySender<Arc<Rendered>>>>>;

struct Group {
    members: Members,
    /// True once the group's feed is subscribed to the bus.
    on_bus: tokio::sync::watch::Receiver<bool>,
    buffer: usize,
    task: AbortHandle,
    key: GroupKey,
    registry: Registry,
}

impl Group {
    fn subscribe(&self) -> LossyReceiver<Arc<Rendered>> {
        let (sender, receiver) = lossy_queue(self.buffer);
        self.members.lock_unpoisoned().push(sender);
        receiver
    }

    /// Returns once the group's feed is on the bus (at once for a running group), or
    /// once its execution ended without getting there.
    async fn on_bus(&self) {
        let _ = self.on_bus.clone().wait_for(|on| *on).await;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.task.abort();
        let mut groups = self.registry.lock_unpoisoned();
        // Only our own entry: a newer group may have taken the key.
        if groups.get(&self.key).is_some_and(|g| g.strong_count() == 0) {
            groups.remove(&self.key);
        }
    }
}

/// A socket's subscription inside a group.
struct Member {
    executor: SubscriptionExecutor,
    key: GroupKey,
    parts: Parts,
    session: Arc<Data>,
    /// Held so the group lives as long as its members.
    group: Option<Arc<Group>>,
    receiver: Option<LossyReceiver<Arc<Rendered>>>,
    /// Group responses up to this sequence are covered by our last snapshot.
    covered: u64,
    queue: VecDeque<Response>,
    ended: bool,
}

impl Member {
    /// Queues this member's own snapshot (with `cause`), executed alone; an error or a
    /// failed snapshot ends the subscription, as it would without sharing.
    async fn snapshot(&mut self, cause: CauseKind) {
        let covers = Arc::new(AtomicU64::new(u64::MAX));
        let request = self.parts.request(FeedMode::Snapshot {
            cause,
            covers: covers.clone(),
        });
        let mut responses = self
            .executor
            .schema
            .execute_stream_with_session_data(request, self.session.clone());
        while let Some(response) = responses.next().await {
            self.ended |= response.is_err();
            self.queue.push_back(response);
        }
        match covers.load(Ordering::Relaxed) {
            u64::MAX => self.ended = true,
            sequence => self.covered = sequence,
        }
    }
}

/// A member's responses: its own snapshot, then the group's responses it has not
/// covered, and its own resync when it falls behind the group.
///
/// Written as one `unfold` over [`Member`] rather than as stream combinators (as the
/// feeds in `subscription` are): joining happens lazily on the first poll, and each
/// snapshot feeds back into what is relayed next (`covered`) or ends the stream
/// (`ended`), which combinators would have to thread through shared cells.
fn member(
    executor: SubscriptionExecutor,
    key: GroupKey,
    parts: Parts,
    session: Arc<Data>,
) -> impl futures_util::Stream<Item = Response> {
    let state = Member {
        executor,
        key,
        parts,
        session,
        group: None,
        receiver: None,
        covered: 0,
        queue: VecDeque::new(),
        ended: false,
    };
    futures_util::stream::unfold(state, |mut m| async move {
        loop {
            if let Some(response) = m.queue.pop_front() {
                return Some((response, m));
            }
            if m.ended {
                return None;
            }
            let Some(receiver) = m.receiver.as_mut() else {
                // Join, and wait until the group's feed is on the bus, before reading
                // the snapshot: nothing falls between the two.
                let group = m.executor.join(&m.key, &m.parts, &m.session);
                m.receiver = Some(group.subscribe());
                group.on_bus().await;
                m.group = Some(group);
                m.snapshot(CauseKind::Snapshot).await;
                continue;
            };
            match receiver.recv().await {
                Ok(rendered) if rendered.sequence > m.covered => {
                    return Some((copy(&rendered.response), m));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "subscriber fell behind its group; resending a snapshot"
                    );
                    // The snapshot covers the stale backlog too.
                    receiver.drain();
                    m.snapshot(CauseKind::Resync).await;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

/// `Response` is not `Clone`; members each send their own.
fn copy(response: &Response) -> Response {
    let mut out = Response::new(response.data.clone());
    out.errors = response.errors.clone();
    out.extensions = response.extensions.clone();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::graphql::build_schema;
    use crate::api::graphql::subscription::{TestServices, services_with_bus};
    use crate::auth::Scope;
    use crate::domain::PresenceSetting;
    use crate::service::{ExtensionDraft, Field, Services};
    use serde_json::{Value, json};
    use std::time::Duration;

    const GROUP_BUFFER: usize = 64;

    const QUERY: &str = "subscription($n: [String!]) { presenceChanged(numbers: $n) \
                         { extension { number } status cause { kind } } }";

    struct Fixture {
        executor: SubscriptionExecutor,
        services: Arc<Services>,
        principal: Principal,
        ids: HashMap<&'static str, String>,
        dir: std::path::PathBuf,
        bus: crate::events::Bus,
        store: crate::store::Store,
    }

    async fn fixture() -> Fixture {
        fixture_with_bus(64).await
    }

    async fn fixture_with_bus(capacity: usize) -> Fixture {
        let TestServices {
            services,
            principal,
            dir,
            bus,
            store,
        } = services_with_bus(capacity).await;
        let mut ids = HashMap::new();
        for number in ["101", "102"] {
            let draft = ExtensionDraft {
                number: Field::Value(number.into()),
                name: Field::Value(format!("Ext {number}")),
                ..Default::default()
            };
            let created = services.create_extension(&principal, draft).await.unwrap();
            ids.insert(number, created.extension.extension.id);
        }
        let executor =
            SubscriptionExecutor::new(build_schema(Some(services.clone())), GROUP_BUFFER);
        Fixture {
            executor,
            services,
            principal,
            ids,
            dir,
            bus,
            store,
        }
    }

    impl Fixture {
        fn subscribe_as(
            &self,
            principal: &Principal,
            query: &str,
            numbers: &[&str],
        ) -> BoxStream<'static, Response> {
            let mut session = Data::default();
            session.insert(principal.clone());
            let request =
                Request::new(query).variables(Variables::from_json(json!({ "n": numbers })));
            self.executor
                .execute_stream(request, Some(Arc::new(session)))
        }

        fn subscribe(&self, numbers: &[&str]) -> BoxStream<'static, Response> {
            self.subscribe_as(&self.principal, QUERY, numbers)
        }

        async fn set(&self, number: &str, setting: PresenceSetting) {
            self.services
                .set_presence(&self.principal, &self.ids[number], setting)
                .await
                .unwrap();
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// `(number, status, cause)` of the next presence event, or the errors as JSON.
    async fn next(stream: &mut BoxStream<'static, Response>) -> (String, String, String) {
        let response = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an event within 5 s")
            .expect("the stream goes on");
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        let data = response.data.into_json().unwrap();
        let p = &data["presenceChanged"];
        let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        (
            s(&p["extension"]["number"]),
            s(&p["status"]),
            s(&p["cause"]["kind"]),
        )
    }

    async fn quiet(stream: &mut BoxStream<'static, Response>) -> bool {
        tokio::time::timeout(Duration::from_millis(100), stream.next())
            .await
            .is_err()
    }

    fn event(number: &str, status: &str, cause: &str) -> (String, String, String) {
        (number.into(), status.into(), cause.into())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn identical_subscriptions_share_one_execution_and_each_gets_its_own_snapshot() {
        let f = fixture().await;
        let mut a = f.subscribe(&["101"]);
        assert_eq!(next(&mut a).await, event("101", "OFFLINE", "SNAPSHOT"));
        let mut b = f.subscribe(&["101"]);
        assert_eq!(next(&mut b).await, event("101", "OFFLINE", "SNAPSHOT"));
        assert_eq!(
            f.executor.groups(),
            1,
            "one group for the same subscription"
        );

        f.set("101", PresenceSetting::Dnd).await;
        assert_eq!(next(&mut a).await, event("101", "DND", "MANUAL"));
        assert_eq!(next(&mut b).await, event("101", "DND", "MANUAL"));

        // A late joiner sees the state now, and not the change before it a second time.
        let mut c = f.subscribe(&["101"]);
        assert_eq!(next(&mut c).await, event("101", "DND", "SNAPSHOT"));
        assert!(quiet(&mut c).await);
        // Away without a registered device shows as offline.
        f.set("101", PresenceSetting::Away).await;
        for s in [&mut a, &mut b, &mut c] {
            assert_eq!(next(s).await, event("101", "OFFLINE", "MANUAL"));
            assert!(quiet(s).await, "each change once");
        }
        assert_eq!(f.executor.groups(), 1);

        drop((a, b));
        assert_eq!(
            f.executor.groups(),
            1,
            "the group lives while a member does"
        );
        drop(c);
        assert_eq!(
            f.executor.groups(),
            0,
            "the last member takes the group with it"
        );
        assert!(
            f.executor.groups.lock_unpoisoned().is_empty(),
            "no entry left behind"
        );
        // The aborted group task drops its bus subscription when the runtime gets to it.
        for _ in 0..100 {
            if f.bus.subscribers() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(f.bus.subscribers(), 0, "and its bus subscription");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_member_that_falls_behind_its_group_resyncs_from_its_own_snapshot() {
        let f = fixture().await;
        let mut slow = f.subscribe(&["101"]);
        next(&mut slow).await;
        let changes = GROUP_BUFFER + 10;
        for i in 0..changes {
            let setting = if i % 2 == 0 {
                PresenceSetting::Dnd
            } else {
                PresenceSetting::Available
            };
            f.set("101", setting).await;
        }
        // The group kept up with the bus; this member did not keep up with the group.
        let last = if changes % 2 == 1 { "DND" } else { "OFFLINE" };
        assert_eq!(next(&mut slow).await, event("101", last, "RESYNC"));
        assert!(quiet(&mut slow).await, "the stale backlog is skipped");
        f.set("101", PresenceSetting::Dnd).await;
        assert_eq!(next(&mut slow).await, event("101", "DND", "MANUAL"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn different_variables_pbx_or_scopes_never_share() {
        let f = fixture().await;
        let mut only_101 = f.subscribe(&["101"]);
        let mut only_102 = f.subscribe(&["102"]);
        next(&mut only_101).await;
        next(&mut only_102).await;

        let other_pbx = f
            .services
            .bootstrap()
            .create_pbx("other", None)
            .await
            .unwrap();
        let stranger = Principal {
            pbx_id: other_pbx.id,
            ..f.principal.clone()
        };
        let mut theirs = f.subscribe_as(&stranger, QUERY, &["101"]);
        assert!(quiet(&mut theirs).await, "the other PBX has no 101");

        let reader = Principal {
            scopes: ScopeSet::from_iter([Scope::ExtensionsRead]),
            ..f.principal.clone()
        };
        let mut read_only = f.subscribe_as(&reader, QUERY, &["101"]);
        next(&mut read_only).await;
        assert_eq!(f.executor.groups(), 4);

        f.set("101", PresenceSetting::Dnd).await;
        assert_eq!(next(&mut only_101).await, event("101", "DND", "MANUAL"));
        assert_eq!(next(&mut read_only).await, event("101", "DND", "MANUAL"));
        assert!(quiet(&mut only_102).await, "102 did not change");
        assert!(
            quiet(&mut theirs).await,
            "another PBX's change never arrives"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn errors_end_the_subscription_without_a_group_and_queries_run_as_before() {
        let f = fixture().await;
        let no_scope = Principal {
            scopes: ScopeSet::from_iter([Scope::VoicemailRead]),
            ..f.principal.clone()
        };
        let mut refused = f.subscribe_as(&no_scope, QUERY, &["101"]);
        let response = refused.next().await.unwrap();
        assert!(
            response.errors[0].message.contains("extensions:read"),
            "{:?}",
            response.errors
        );
        assert!(refused.next().await.is_none(), "the subscription ends");
        drop(refused);
        assert_eq!(f.executor.groups(), 0);

        let mut bad = f.subscribe_as(&f.principal, "subscription { nope }", &[]);
        assert!(!bad.next().await.unwrap().errors.is_empty());
        assert!(bad.next().await.is_none());

        let mut session = Data::default();
        session.insert(f.principal.clone());
        let mut query = f.executor.execute_stream(
            Request::new("{ extensions { number } }"),
            Some(Arc::new(session)),
        );
        let data = query.next().await.unwrap().data.into_json().unwrap();
        assert_eq!(data["extensions"].as_array().map(Vec::len), Some(2));
        assert!(query.next().await.is_none());
        assert_eq!(f.executor.groups(), 0, "a query is not a subscription");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn when_the_group_feed_ends_its_members_end_and_the_next_subscriber_starts_afresh() {
        use crate::domain::ExtensionRef;
        use crate::events::{Event, PresenceCause, PresenceChange};
        use diesel_async::RunQueryDsl;
        let f = fixture_with_bus(2).await;
        let mut a = f.subscribe(&["101"]);
        next(&mut a).await;

        // The group's feed falls behind the bus and must resync, but its snapshot fails:
        // the table it reads is gone (a real failure of the real SQLite file).
        let crate::store::Store::Sqlite(pool) = &f.store else {
            unreachable!("the fixture runs on SQLite")
        };
        let rename = |sql: &'static str| async move {
            diesel::sql_query(sql)
                .execute(&mut pool.lane().get().await.unwrap())
                .await
                .unwrap();
        };
        rename("ALTER TABLE extension RENAME TO extension_away").await;
        // Far more than the group can take in while this loop runs without yielding.
        for _ in 0..100 {
            f.bus.publish(Event::Presence(PresenceChange {
                pbx_id: f.principal.pbx_id.clone(),
                extension: ExtensionRef {
                    id: f.ids["101"].clone(),
                    number: "101".into(),
                    name: "Ext 101".into(),
                },
                status: crate::domain::PresenceStatus::Dnd,
                previous_status: None,
                cause: PresenceCause::simple(CauseKind::Manual, "test"),
                at: 0,
            }));
        }
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            while a.next().await.is_some() {}
        })
        .await;
        assert!(
            ended.is_ok(),
            "the member's stream ends with its group's feed"
        );

        rename("ALTER TABLE extension_away RENAME TO extension").await;
        let mut b = f.subscribe(&["101"]);
        assert_eq!(next(&mut b).await, event("101", "OFFLINE", "SNAPSHOT"));
        f.set("101", PresenceSetting::Dnd).await;
        assert_eq!(next(&mut b).await, event("101", "DND", "MANUAL"));
        assert_eq!(
            f.executor.groups(),
            1,
            "a fresh group, not the finished one"
        );
        drop(a);
    }
}
