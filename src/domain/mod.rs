//! Plain types and rules: what an extension is, what counts as valid, how presence is
//! derived. Nothing here touches the network or the database.

mod call;
mod conference;
mod device;
mod email;
mod extension;
mod pbx;
mod presence;
mod routing;
pub mod text;
mod user_agent;
mod validation;
mod voicemail;

pub use call::{Call, CallDirection, CallState, Disposition, HangupSide};
pub use conference::{ConferenceEventKind, Participant, Room};
pub use routing::{CallTarget, Fallback, RouteDecision, decide};

pub use device::{Device, DeviceListing, EndReason, SipTransport};
pub use email::EmailAddress;
pub use user_agent::{DeviceInfo, DeviceType, classify};

pub use extension::{
    CallerIdName, CallerIdNumber, ConferencePin, DEFAULT_MAX_PARTICIPANTS, Extension,
    ExtensionName, ExtensionNumber, ExtensionRef, ExtensionType, ForwardingNumber, MaxParticipants,
    RingTimeout,
};
pub use pbx::Pbx;
pub use presence::{ManualPresence, PresenceSetting, PresenceStatus, derive_status, room_status};
pub use validation::ValidationError;
pub use voicemail::{
    DEFAULT_MAX_MESSAGE_SECONDS, DEFAULT_RETENTION_DAYS, GreetingType, MAX_GREETING_SECONDS,
    Mailbox, MaxMessageSeconds, Pin, RetentionDays, VoicemailMessage, mailbox_id, mailbox_number,
    pin_matches,
};

/// An extension as the API shows it: the stored fields plus live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionView {
    pub extension: Extension,
    pub status: PresenceStatus,
    pub registered_devices: u32,
}
