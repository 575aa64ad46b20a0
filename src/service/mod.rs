//! Use cases shared by GraphQL, REST and SIP: validate, store, then publish the event.
//! Handlers stay thin and only translate to and from their wire format.

mod accounts;
mod auth;
mod bindings;
mod calls;
mod conferences;
mod extensions;
mod field;
mod live;
mod phones;
mod registrations;
mod tenants;
mod voicemail;

pub use accounts::SipAccount;
pub use bindings::Binding;
pub use calls::{CallHandle, CallPage, Party};
pub use conferences::ConferenceControl;
pub use extensions::{CreatedExtension, ExtensionDraft, ExtensionStats, SipCredentials};
pub use field::Field;
pub use live::LiveState;
pub use phones::PhoneStats;
pub use registrations::{ContactChange, RegisterAction, RegisterInput, RegisterOutcome};
pub use tenants::Bootstrap;
pub use voicemail::{AudioFileError, MailboxDraft, Mailer, SmtpUrlError};

use crate::auth::{AuthError, jwt::JwtKeys};
use crate::domain::ValidationError;
use crate::events::{Bus, Event, Subscription};
use crate::store::{Store, StoreError};
use std::sync::Arc;

/// Why a use case refused or failed. `api::error` maps each to one REST status and one
/// GraphQL `extensions.code`.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The database could not be reached (no connection, a stopped writer): worth a
    /// retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Any other database failure.
    #[error(transparent)]
    Store(StoreError),
    /// A voicemail file could not be written or read (the disk, not the database).
    #[error(transparent)]
    File(#[from] AudioFileError),
    /// Uploaded audio we cannot read (not a WAV we decode).
    #[error(transparent)]
    BadAudio(#[from] crate::media::audio::AudioError),
    /// A conference mute or kick while the SIP side does not run in this process
    /// (nothing registered a [`ConferenceControl`]).
    #[error("conference control needs the SIP server, which is not running")]
    SipUnavailable,
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(detail) => ServiceError::Unavailable(detail),
            other => ServiceError::Store(other),
        }
    }
}

/// Settings of the use cases.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Names this process in device records (several nodes can share a database).
    pub node_id: String,
    /// Live bindings per extension; past it, the least recently registered makes room.
    pub max_bindings: usize,
    /// Where voicemail audio lives (`<data dir>/voicemail`).
    pub data_dir: std::path::PathBuf,
    /// The relay voicemail emails go through; none, no email.
    pub mailer: Option<Mailer>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            node_id: "node-1".to_owned(),
            max_bindings: 10,
            data_dir: std::path::PathBuf::from("./data"),
            mailer: None,
        }
    }
}

/// Everything the use cases need; one per process, shared behind an `Arc`. The store
/// and the bus stay inside: every reader and writer goes through a use case, so none
/// can skip a rule, a lock or an event.
pub struct Services {
    store: Store,
    bus: Bus,
    live: LiveState,
    jwt: JwtKeys,
    config: ServiceConfig,
    bindings: bindings::BindingIndex,
    writer: registrations::DeviceWriter,
    call_writer: calls::CallWriter,
    accounts: accounts::AccountCache,
    locks: StripedLocks,
    audio_files: voicemail::AudioFiles,
    conferences: conferences::ConferenceRegistry,
}

impl Services {
    /// Must be called inside a tokio runtime (it starts the device writer).
    pub fn new(store: Store, bus: Bus, jwt: JwtKeys) -> Arc<Self> {
        Self::with_config(store, bus, jwt, ServiceConfig::default())
    }

    pub fn with_config(store: Store, bus: Bus, jwt: JwtKeys, config: ServiceConfig) -> Arc<Self> {
        Arc::new(Self {
            writer: registrations::DeviceWriter::spawn(store.clone()),
            call_writer: calls::CallWriter::spawn(store.clone()),
            store,
            bus,
            live: LiveState::default(),
            jwt,
            bindings: bindings::BindingIndex::default(),
            accounts: accounts::AccountCache::default(),
            locks: StripedLocks::default(),
            audio_files: voicemail::AudioFiles::new(&config.data_dir),
            conferences: Default::default(),
            config,
        })
    }

    /// Live bindings held in memory, over all extensions.
    pub fn binding_count(&self) -> usize {
        self.bindings.total()
    }

    /// A round trip to the database, for the health check.
    pub async fn ping_database(&self) -> ServiceResult<()> {
        Ok(self.store.ping().await?)
    }

    /// `sqlite` or `postgres`.
    pub fn database_backend(&self) -> &'static str {
        self.store.backend_name()
    }

    /// Events of PBX `pbx` (of every PBX when `None`) that `filter` takes, from the
    /// returned sequence on (see [`Bus::subscribe`]).
    pub fn subscribe_events(
        &self,
        pbx: Option<&str>,
        filter: impl Fn(&Event) -> bool + Send + Sync + 'static,
    ) -> Subscription {
        self.bus.subscribe(pbx, filter)
    }

    /// The last event sequence PBX `pbx` assigned: a snapshot read after this covers
    /// every event up to it.
    pub fn event_sequence(&self, pbx: &str) -> u64 {
        self.bus.sequence(pbx)
    }
}

/// Serialises changes to one extension's presence inputs, so "status before" and
/// "status after" of each event describe the same, ordered change. Striped: two
/// extensions rarely share a lock, and the table never grows.
struct StripedLocks([tokio::sync::Mutex<()>; 1024]);

impl Default for StripedLocks {
    fn default() -> Self {
        Self(std::array::from_fn(|_| tokio::sync::Mutex::new(())))
    }
}

impl StripedLocks {
    async fn lock(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
        self.0[(hash % self.0.len() as u64) as usize].lock().await
    }
}
