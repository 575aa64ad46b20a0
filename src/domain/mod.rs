//! Plain types and rules: what an extension is, what counts as valid, how presence is
//! derived. Nothing here touches the network or the database.

mod call;
mod device;
mod email;
mod extension;
mod presence;
mod registration;
mod routing;
pub mod text;
mod validation;

pub use call::{Call, CallDirection, CallState, Disposition, HangupSide};
pub use routing::{CallTarget, Fallback, RouteDecision, decide};

pub use device::{DeviceInfo, DeviceType, classify};
pub use email::EmailAddress;
pub use registration::{Device, EndReason, SipTransport};

pub use extension::{
    CallerIdName, CallerIdNumber, Extension, ExtensionName, ExtensionNumber, ExtensionType,
    ForwardingNumber, RingTimeout,
};
pub use presence::{ManualPresence, PresenceSetting, PresenceStatus, derive_status};
pub use validation::ValidationError;

/// An extension as the API shows it: the stored fields plus live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionView {
    pub extension: Extension,
    pub status: PresenceStatus,
    pub registered_devices: u32,
}
