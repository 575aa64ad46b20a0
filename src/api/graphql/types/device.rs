//! Devices (what the REST API calls phones): the registration record, counts, and the
//! event of one registering, unregistering, expiring or being replaced.

use crate::clock::{now_ms, rfc3339};
use crate::domain::{self, DeviceListing, DeviceType, EndReason, SipTransport};
use crate::events::{DeviceChange, DeviceChangeKind};
use crate::service;
use async_graphql::{ID, Object, SimpleObject};

/// A device that registered: a desk phone, softphone, browser or mobile app.
pub struct Device(pub DeviceListing);

#[Object]
impl Device {
    async fn id(&self) -> ID {
        ID(self.0.device.id.clone())
    }
    async fn extension_number(&self) -> &str {
        &self.0.extension_number
    }
    async fn extension_name(&self) -> &str {
        &self.0.extension_name
    }
    async fn device_type(&self) -> DeviceType {
        self.0.device.info.device_type
    }
    async fn manufacturer(&self) -> Option<&str> {
        self.0.device.info.manufacturer.as_deref()
    }
    async fn model(&self) -> Option<&str> {
        self.0.device.info.model.as_deref()
    }
    async fn mac_address(&self) -> Option<&str> {
        self.0.device.info.mac_address.as_deref()
    }
    /// The address its registration came from.
    async fn ip_address(&self) -> &str {
        &self.0.device.source_ip
    }
    async fn port(&self) -> u16 {
        self.0.device.source_port
    }
    async fn registered(&self) -> bool {
        self.0.device.is_registered(now_ms())
    }
    async fn first_registered(&self) -> String {
        rfc3339(self.0.device.first_registered)
    }
    async fn last_registered(&self) -> String {
        rfc3339(self.0.device.last_registered)
    }
    async fn user_agent(&self) -> Option<&str> {
        self.0.device.user_agent.as_deref()
    }
    async fn transport(&self) -> SipTransport {
        self.0.device.transport
    }
    async fn contact(&self) -> &str {
        &self.0.device.contact
    }
    async fn instance_id(&self) -> Option<&str> {
        self.0.device.instance_id.as_deref()
    }
    async fn expires_at(&self) -> String {
        let d = &self.0.device;
        rfc3339(
            d.ended_at
                .map_or(d.expires_at, |ended| ended.min(d.expires_at)),
        )
    }
    /// Why the binding ended, once it has.
    async fn end_reason(&self) -> Option<EndReason> {
        self.0.device.end_reason
    }
}

#[derive(SimpleObject)]
pub struct DeviceTypeCounts {
    pub hardware: u32,
    pub softphone: u32,
    pub webrtc: u32,
    pub mobile: u32,
}

#[derive(SimpleObject)]
pub struct PhoneStats {
    pub total_phones: u32,
    pub registered: u32,
    pub unregistered: u32,
    pub by_type: DeviceTypeCounts,
}

impl From<service::PhoneStats> for PhoneStats {
    fn from(s: service::PhoneStats) -> Self {
        let n = |k: DeviceType| {
            s.by_type
                .iter()
                .find(|(t, _)| *t == k)
                .map_or(0, |(_, n)| *n)
        };
        Self {
            total_phones: s.total,
            registered: s.registered,
            unregistered: s.unregistered,
            by_type: DeviceTypeCounts {
                hardware: n(DeviceType::Hardware),
                softphone: n(DeviceType::Softphone),
                webrtc: n(DeviceType::Webrtc),
                mobile: n(DeviceType::Mobile),
            },
        }
    }
}

/// A device registered, unregistered, expired or was replaced.
#[derive(SimpleObject)]
pub struct DeviceEvent {
    pub kind: DeviceChangeKind,
    pub device: Device,
    pub at: String,
    pub sequence: u64,
}

impl DeviceEvent {
    pub fn new(
        kind: DeviceChangeKind,
        device: domain::Device,
        extension: &domain::ExtensionRef,
        at: i64,
        sequence: u64,
    ) -> Self {
        Self {
            kind,
            device: Device(DeviceListing {
                device,
                extension_number: extension.number.clone(),
                extension_name: extension.name.clone(),
            }),
            at: rfc3339(at),
            sequence,
        }
    }

    pub fn from_change(change: &DeviceChange, sequence: u64) -> Self {
        Self::new(
            change.kind,
            change.device.clone(),
            &change.extension,
            change.at,
            sequence,
        )
    }
}
