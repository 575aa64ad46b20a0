//! Registrations: the use cases REGISTER and expiry run on, over the in-memory binding
//! index ([`super::bindings`]) and the batched device writer.
//!
//! Order of work for every change: compute the new bindings under the extension's lock,
//! store them (group-committed with other registrations), then update the index and
//! live state, then publish events. Subscribers never hear of a binding that is not
//! stored.

use super::accounts::SipAccount;
use super::bindings::Binding;
use super::{ServiceResult, Services};
use crate::clock::now_ms;
use crate::domain::{Device, EndReason, ExtensionRef, SipTransport, classify, derive_status};
use crate::events::{
    CauseKind, DeviceChange, DeviceChangeKind, Event, PresenceCause, PresenceChange,
};
use crate::store::batch::BatchWriter;
use crate::store::devices::DeviceRow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// A refresh that changes nothing but the expiry is stored at most this often per
/// device: a phone refreshing every second must not turn into a database write every
/// second. Real phones refresh far less often, so every real refresh is stored; in
/// between, listings read the live record from memory.
const REFRESH_STORE_INTERVAL_MS: i64 = 30_000;

/// Device rows are written in batches (see [`crate::store::batch`]).
pub type DeviceWriter = BatchWriter<DeviceRow>;

/// One Contact of a REGISTER, already validated by the SIP layer.
#[derive(Debug, Clone)]
pub struct ContactChange {
    /// The contact URI as it will be stored and echoed.
    pub contact: String,
    pub instance_id: Option<String>,
    /// Seconds; 0 removes the binding.
    pub expires: u32,
}

#[derive(Debug, Clone)]
pub enum RegisterAction {
    /// No Contact: report the current bindings.
    Fetch,
    /// `Contact: *` with `Expires: 0`.
    RemoveAll,
    Apply(Vec<ContactChange>),
}

#[derive(Debug, Clone)]
pub struct RegisterInput {
    pub account: Arc<SipAccount>,
    pub call_id: String,
    pub cseq: u32,
    pub transport: SipTransport,
    pub source: SocketAddr,
    pub flow: Option<u64>,
    pub user_agent: Option<String>,
    pub action: RegisterAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// Every live binding after the change: contact URI and seconds left.
    Current(Vec<(String, u32)>),
    /// RFC 3261 §10.3 step 7: same Call-ID with a CSeq not above the stored one;
    /// nothing was changed.
    OutOfOrder,
}

fn current(bindings: &[Binding], now: i64) -> Vec<(String, u32)> {
    bindings
        .iter()
        .filter(|b| b.device.is_registered(now))
        .map(|b| {
            let secs = ((b.device.expires_at - now + 999) / 1000).clamp(0, i64::from(u32::MAX));
            (b.device.contact.clone(), secs as u32)
        })
        .collect()
}

impl Services {
    /// Applies a REGISTER for an authenticated account.
    pub async fn register(&self, input: RegisterInput) -> ServiceResult<RegisterOutcome> {
        let ext_id = input.account.extension_id.clone();
        let _guard = self.locks.lock(&ext_id).await;
        let now = now_ms();
        let before = self.bindings.of(&ext_id);
        let live_before = before
            .iter()
            .filter(|b| b.device.is_registered(now))
            .count();
        let mut after: Vec<Binding> = before
            .iter()
            .filter(|b| b.device.is_registered(now))
            .cloned()
            .collect();
        let mut ended: Vec<(Device, DeviceChangeKind)> = Vec::new();
        let mut written: Vec<DeviceRow> = Vec::new();
        let mut added: Vec<Device> = Vec::new();

        let stale = |b: &Binding| b.device.call_id == input.call_id && b.device.cseq >= input.cseq;
        match &input.action {
            RegisterAction::Fetch => return Ok(RegisterOutcome::Current(current(&after, now))),
            RegisterAction::RemoveAll => {
                if after.iter().any(stale) {
                    return Ok(RegisterOutcome::OutOfOrder);
                }
                for b in after.drain(..) {
                    ended.push((Device::clone(&b.device), DeviceChangeKind::Unregistered));
                }
            }
            RegisterAction::Apply(changes) => {
                if changes.iter().any(|c| {
                    let key = c.instance_id.as_deref().unwrap_or(&c.contact);
                    after
                        .iter()
                        .any(|b| b.device.binding_key == key && stale(b))
                }) {
                    return Ok(RegisterOutcome::OutOfOrder);
                }
                for change in changes {
                    let key = change
                        .instance_id
                        .clone()
                        .unwrap_or_else(|| change.contact.clone());
                    let position = after.iter().position(|b| b.device.binding_key == key);
                    let expires_at = now + i64::from(change.expires) * 1000;
                    match (position, change.expires) {
                        (Some(i), 0) => ended.push((
                            Device::clone(&after.remove(i).device),
                            DeviceChangeKind::Unregistered,
                        )),
                        (None, 0) => {}
                        (Some(i), _) => {
                            let b = &mut after[i];
                            let source_ip = input.source.ip().to_string();
                            let material = b.device.contact != change.contact
                                || b.device.transport != input.transport
                                || b.device.source_ip != source_ip
                                || b.device.source_port != input.source.port()
                                || b.device.user_agent != input.user_agent
                                || expires_at < b.device.expires_at;
                            let d = Arc::make_mut(&mut b.device);
                            d.contact = change.contact.clone();
                            d.transport = input.transport;
                            d.source_ip = source_ip;
                            d.source_port = input.source.port();
                            if d.user_agent != input.user_agent {
                                d.user_agent = input.user_agent.clone();
                                d.info = classify(
                                    input.user_agent.as_deref().unwrap_or(""),
                                    input.transport.is_websocket(),
                                );
                            }
                            d.call_id = input.call_id.clone();
                            d.cseq = input.cseq;
                            d.last_registered = now;
                            d.expires_at = expires_at;
                            d.node_id = self.config.node_id.clone();
                            b.flow = input.flow;
                            if material || now - b.stored_at >= REFRESH_STORE_INTERVAL_MS {
                                b.stored_at = now;
                                written.push(DeviceRow::from(&*d));
                            }
                        }
                        (None, _) => {
                            let (id, first_registered) =
                                match self.store.device_identity(&ext_id, &key).await? {
                                    Some(known) => known,
                                    None => (crate::ids::resource_id("dev"), now),
                                };
                            let ua = input.user_agent.as_deref().unwrap_or("");
                            let device = Device {
                                id,
                                pbx_id: input.account.pbx_id.clone(),
                                extension_id: ext_id.clone(),
                                binding_key: key,
                                instance_id: change.instance_id.clone(),
                                contact: change.contact.clone(),
                                transport: input.transport,
                                source_ip: input.source.ip().to_string(),
                                source_port: input.source.port(),
                                user_agent: input.user_agent.clone(),
                                info: classify(ua, input.transport.is_websocket()),
                                call_id: input.call_id.clone(),
                                cseq: input.cseq,
                                first_registered,
                                last_registered: now,
                                expires_at,
                                ended_at: None,
                                end_reason: None,
                                node_id: self.config.node_id.clone(),
                            };
                            written.push(DeviceRow::from(&device));
                            added.push(device.clone());
                            after.push(Binding {
                                device: Arc::new(device),
                                flow: input.flow,
                                stored_at: now,
                            });
                        }
                    }
                }
                // Over the cap, the least recently registered binding makes room: a new
                // phone is never refused.
                while after.len() > self.config.max_bindings {
                    let oldest = after
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, b)| (b.device.last_registered, b.device.first_registered))
                        .map(|(i, _)| i)
                        .unwrap_or(0);
                    ended.push((
                        Device::clone(&after.remove(oldest).device),
                        DeviceChangeKind::Replaced,
                    ));
                }
            }
        }

        for (device, kind) in &mut ended {
            device.ended_at = Some(now);
            device.end_reason = Some(match kind {
                DeviceChangeKind::Replaced => EndReason::Replaced,
                _ => EndReason::Unregistered,
            });
            written.retain(|r| r.id != device.id);
            written.push(DeviceRow::from(&*device));
        }
        // A binding added and pushed out by the cap in the same request is not news.
        added.retain(|d| !ended.iter().any(|(e, _)| e.id == d.id));

        // Only a pure refresh may be written behind: anything that starts or ends a
        // binding is stored before it is answered and announced.
        if added.is_empty() && ended.is_empty() {
            self.writer.write_behind(written);
        } else {
            self.writer.write(written).await?;
        }
        let live_after = after.len();
        self.bindings.replace(&ext_id, after.clone());
        self.live.set_devices(&ext_id, live_after as u32);

        let extension = input.account.extension_ref();
        let events: Vec<(Device, DeviceChangeKind)> = added
            .into_iter()
            .map(|d| (d, DeviceChangeKind::Registered))
            .chain(ended)
            .collect();
        self.publish_device_changes(
            &input.account.pbx_id,
            &extension,
            &events,
            live_before,
            live_after,
            now,
        )
        .await?;
        Ok(RegisterOutcome::Current(current(&after, now)))
    }

    /// Device events, then a presence event when the extension went from no live device
    /// to some, or back. Call with the extension's lock held.
    async fn publish_device_changes(
        &self,
        pbx_id: &str,
        extension: &ExtensionRef,
        events: &[(Device, DeviceChangeKind)],
        live_before: usize,
        live_after: usize,
        now: i64,
    ) -> ServiceResult<()> {
        for (device, kind) in events {
            self.bus.publish(Event::Device(Box::new(DeviceChange {
                pbx_id: pbx_id.to_owned(),
                extension: extension.clone(),
                kind: *kind,
                device: device.clone(),
                at: now,
            })));
        }
        if (live_before == 0) == (live_after == 0) {
            return Ok(());
        }
        let Some(ext) = self.store.extension_by_id(pbx_id, &extension.id).await? else {
            return Ok(());
        };
        if ext.kind == crate::domain::ExtensionType::Conference {
            // A user extension just turned conference: its phones go, but its status
            // now follows its room, which no device moves.
            return Ok(());
        }
        let calls = self.live.calls(&ext.id);
        let old = derive_status(ext.manual_presence, calls, live_before as u32);
        let new = derive_status(ext.manual_presence, calls, live_after as u32);
        if old == new {
            return Ok(());
        }
        let (device, kind) = match events.last() {
            Some((d, k)) => (Some(d), *k),
            None => (None, DeviceChangeKind::Registered),
        };
        let reason = match kind {
            DeviceChangeKind::Registered => "registered",
            DeviceChangeKind::Unregistered => "unregistered",
            DeviceChangeKind::Expired => "expired",
            DeviceChangeKind::Replaced => "replaced",
        };
        let label = device.map_or_else(|| "device".to_owned(), Device::label);
        self.bus.publish(Event::Presence(PresenceChange {
            pbx_id: pbx_id.to_owned(),
            extension: ExtensionRef::from(&ext),
            status: new,
            previous_status: Some(old),
            cause: PresenceCause {
                kind: CauseKind::Device,
                description: format!("{label} {reason}"),
                reason: Some(reason.to_owned()),
                device_id: device.map(|d| d.id.clone()),
                call_id: None,
            },
            at: now,
        }));
        Ok(())
    }

    /// Ends every binding of `ext` as unregistered (stored, dropped from the index,
    /// announced as device events) and returns how many were live: what happens to the
    /// phones of an extension whose type no longer has any. Call with the extension's
    /// lock held; the caller publishes the presence change.
    pub(super) async fn end_bindings(
        &self,
        ext: &crate::domain::Extension,
    ) -> ServiceResult<usize> {
        let bindings = self.bindings.of(&ext.id);
        if bindings.is_empty() {
            return Ok(0);
        }
        let now = now_ms();
        let ended: Vec<Device> = bindings
            .iter()
            .filter(|b| b.device.is_registered(now))
            .map(|b| Device {
                ended_at: Some(now),
                end_reason: Some(EndReason::Unregistered),
                ..Device::clone(&b.device)
            })
            .collect();
        // Lapsed ones not yet swept end as the sweeper would have ended them.
        let rows = bindings
            .iter()
            .filter(|b| !b.device.is_registered(now))
            .map(|b| Device {
                ended_at: Some(b.device.expires_at),
                end_reason: Some(EndReason::Expired),
                ..Device::clone(&b.device)
            })
            .chain(ended.iter().cloned())
            .map(|d| DeviceRow::from(&d))
            .collect();
        self.writer.write(rows).await?;
        self.bindings.remove_extension(&ext.id);
        self.live.set_devices(&ext.id, 0);
        let extension = ExtensionRef::from(ext);
        for device in &ended {
            self.bus.publish(Event::Device(Box::new(DeviceChange {
                pbx_id: ext.pbx_id.clone(),
                extension: extension.clone(),
                kind: DeviceChangeKind::Unregistered,
                device: device.clone(),
                at: now,
            })));
        }
        tracing::info!(extension.id = %ext.id, devices = ended.len(), "bindings ended: the extension's type has no phones");
        Ok(ended.len())
    }

    /// Ends bindings whose time is up. Run every second by the maintenance task.
    pub async fn expire_bindings(&self) -> ServiceResult<usize> {
        let mut count = 0;
        for ext_id in self.bindings.with_expired(now_ms()) {
            let _guard = self.locks.lock(&ext_id).await;
            let now = now_ms();
            let before = self.bindings.of(&ext_id);
            let (mut gone, live): (Vec<Binding>, Vec<Binding>) = before
                .iter()
                .cloned()
                .partition(|b| b.device.expires_at <= now);
            if gone.is_empty() {
                continue;
            }
            for b in &mut gone {
                let d = Arc::make_mut(&mut b.device);
                d.ended_at = Some(d.expires_at);
                d.end_reason = Some(EndReason::Expired);
            }
            self.writer
                .write(gone.iter().map(|b| DeviceRow::from(&*b.device)).collect())
                .await?;
            self.bindings.replace(&ext_id, live.clone());
            self.live.set_devices(&ext_id, live.len() as u32);
            count += gone.len();
            let first = &gone[0].device;
            let Some(ext) = self.store.extension_by_id(&first.pbx_id, &ext_id).await? else {
                continue;
            };
            let extension = ExtensionRef::from(&ext);
            let events: Vec<(Device, DeviceChangeKind)> = gone
                .into_iter()
                .map(|b| (Device::clone(&b.device), DeviceChangeKind::Expired))
                .collect();
            let pbx_id = events[0].0.pbx_id.clone();
            self.publish_device_changes(
                &pbx_id,
                &extension,
                &events,
                before.len(),
                live.len(),
                now,
            )
            .await?;
        }
        Ok(count)
    }

    /// Rebuilds the binding index from the store (at start): bindings that lapsed while
    /// the server was down are ended as expired.
    pub async fn restore_bindings(&self) -> ServiceResult<usize> {
        let now = now_ms();
        self.store.end_lapsed_devices(now).await?;
        let mut by_ext: HashMap<String, Vec<Binding>> = HashMap::new();
        for device in self.store.live_devices(now).await? {
            by_ext
                .entry(device.extension_id.clone())
                .or_default()
                .push(Binding {
                    stored_at: device.last_registered,
                    device: Arc::new(device),
                    flow: None,
                });
        }
        let total = by_ext.values().map(Vec::len).sum();
        for (ext_id, bindings) in by_ext {
            self.live.set_devices(&ext_id, bindings.len() as u32);
            self.bindings.replace(&ext_id, bindings);
        }
        Ok(total)
    }

    /// Live bindings of an extension, for routing calls.
    pub fn live_bindings(&self, extension_id: &str) -> Vec<Binding> {
        let now = now_ms();
        self.bindings
            .of(extension_id)
            .into_iter()
            .filter(|b| b.device.is_registered(now))
            .collect()
    }
}
