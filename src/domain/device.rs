//! Devices: what registered, from where, and until when.

use super::ExtensionRef;
use super::user_agent::DeviceInfo;
use serde::Serialize;

/// How a device reaches us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, async_graphql::Enum)]
#[serde(rename_all = "lowercase")]
pub enum SipTransport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl SipTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Udp, Self::Tcp, Self::Tls, Self::Ws, Self::Wss]
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(raw))
    }

    pub fn is_websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }

    /// Whether the transport delivers reliably (no SIP retransmissions).
    pub fn is_reliable(self) -> bool {
        self != Self::Udp
    }
}

/// Why a binding ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, async_graphql::Enum)]
#[serde(rename_all = "lowercase")]
pub enum EndReason {
    /// Not refreshed in time.
    Expired,
    /// The device sent `Expires: 0` (or `Contact: *`).
    Unregistered,
    /// Another registration took its place (same instance, or over the per-extension cap).
    Replaced,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Unregistered => "unregistered",
            Self::Replaced => "replaced",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Expired, Self::Unregistered, Self::Replaced]
            .into_iter()
            .find(|r| r.as_str() == raw)
    }
}

/// A device record: a live binding while `ended_at` is unset and `expires_at` is ahead;
/// kept (as unregistered) for 30 days after it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub pbx_id: String,
    pub extension_id: String,
    /// `+sip.instance` when the device sends one, else the contact URI.
    pub binding_key: String,
    pub instance_id: Option<String>,
    /// The Contact URI, as registered.
    pub contact: String,
    pub transport: SipTransport,
    pub source_ip: String,
    pub source_port: u16,
    pub user_agent: Option<String>,
    pub info: DeviceInfo,
    pub call_id: String,
    pub cseq: u32,
    pub first_registered: i64,
    pub last_registered: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<EndReason>,
    pub node_id: String,
}

impl Device {
    pub fn is_registered(&self, now_ms: i64) -> bool {
        self.ended_at.is_none() && self.expires_at > now_ms
    }

    /// "Yealink SIP-T54W" or the user agent or "device".
    pub fn label(&self) -> String {
        match (&self.info.manufacturer, &self.info.model) {
            (Some(m), Some(model)) => format!("{m} {model}"),
            (Some(m), None) => m.clone(),
            _ => self
                .user_agent
                .clone()
                .unwrap_or_else(|| "device".to_owned()),
        }
    }
}

/// A device with the number and name of its extension, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceListing {
    pub device: Device,
    pub extension_number: String,
    pub extension_name: String,
}

impl DeviceListing {
    /// The extension the device belongs to.
    pub fn extension_ref(&self) -> ExtensionRef {
        ExtensionRef::new(
            &self.device.extension_id,
            &self.extension_number,
            &self.extension_name,
        )
    }
}
