//! Phones: the devices of a PBX as the API lists and counts them, and the purge of
//! records past their retention.

use super::{ServiceResult, Services};
use crate::auth::{Principal, Scope};
use crate::clock::now_ms;
use crate::domain::{Device, DeviceListing, DeviceType};

/// Devices stay listed this long after their binding ends.
pub const DEVICE_RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;

impl Services {
    /// Deletes device records that ended more than 30 days ago.
    pub async fn purge_old_devices(&self) -> ServiceResult<usize> {
        Ok(self
            .store
            .purge_devices(now_ms() - DEVICE_RETENTION_MS)
            .await?)
    }

    /// Devices of the caller's PBX (optionally of one extension): live ones and those
    /// that ended within 30 days.
    pub async fn list_phones(
        &self,
        principal: &Principal,
        extension_id: Option<&str>,
    ) -> ServiceResult<Vec<DeviceListing>> {
        principal.require(Scope::PhonesRead)?;
        let mut listed = self
            .store
            .list_devices(
                &principal.pbx_id,
                extension_id,
                now_ms() - DEVICE_RETENTION_MS,
            )
            .await?;
        // Live devices: the in-memory record is the fresher one (refreshes are stored
        // at most every 30 s).
        for listing in &mut listed {
            if listing.device.ended_at.is_none()
                && let Some(live) = self
                    .bindings
                    .of(&listing.device.extension_id)
                    .into_iter()
                    .find(|b| b.device.id == listing.device.id)
            {
                listing.device = Device::clone(&live.device);
            }
        }
        Ok(listed)
    }

    /// Counts from the database by type (nothing is loaded) and, for "registered", the
    /// live index.
    pub async fn phone_stats(&self, principal: &Principal) -> ServiceResult<PhoneStats> {
        principal.require(Scope::PhonesRead)?;
        let now = now_ms();
        let counts = self
            .store
            .device_type_counts(&principal.pbx_id, now - DEVICE_RETENTION_MS)
            .await?;
        let count_of = |t: DeviceType| -> u32 {
            counts
                .iter()
                .filter(|(name, _)| name == t.as_str())
                .map(|(_, n)| *n as u32)
                .sum()
        };
        let total: u32 = counts.iter().map(|(_, n)| *n as u32).sum();
        let registered = self.bindings.live_in_pbx(&principal.pbx_id, now).min(total);
        Ok(PhoneStats {
            total,
            registered,
            unregistered: total - registered,
            by_type: DeviceType::ALL
                .into_iter()
                .map(|t| (t, count_of(t)))
                .collect(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneStats {
    pub total: u32,
    pub registered: u32,
    pub unregistered: u32,
    pub by_type: Vec<(DeviceType, u32)>,
}
