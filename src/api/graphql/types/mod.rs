//! GraphQL object types: the same field names as the REST JSON. Each Rust type is named
//! as the schema names it; the domain types they wrap are written `domain::…`.

mod call;
mod conference;
mod device;
mod extension;
mod presence;
mod voicemail;

pub use call::{Call, CallConnection, CallEvent, PageInfo};
pub use conference::{Conference, ConferenceEvent, ConferenceParticipant};
pub use device::{Device, DeviceEvent, PhoneStats};
pub use extension::{Extension, ExtensionCredentialsPayload, ExtensionEvent, ExtensionStats};
pub use presence::{ExtensionRef, PresenceEvent};
pub use voicemail::{Mailbox, VoicemailEvent, VoicemailMessage};
