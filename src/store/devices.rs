//! Device rows: written in batches (one multi-row upsert per batch), read for listings
//! and to rebuild the binding index at start.

use super::schema::{device, extension};
use super::{Store, StoreError, StoreResult, with_conn};
use crate::domain::{Device, DeviceInfo, DeviceListing, DeviceType, EndReason, SipTransport};
use diesel::upsert::excluded;
use diesel::{
    BoolExpressionMethods, ExpressionMethods, Insertable, JoinOnDsl, NullableExpressionMethods,
    OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper,
};
use diesel_async::RunQueryDsl;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = device, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct DeviceRow {
    pub id: String,
    pub pbx_id: String,
    pub extension_id: String,
    pub binding_key: String,
    pub instance_id: Option<String>,
    pub contact: String,
    pub transport: String,
    pub source_ip: String,
    pub source_port: i32,
    pub user_agent: Option<String>,
    pub device_type: String,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub mac_address: Option<String>,
    pub call_id: String,
    pub cseq: i64,
    pub first_registered: i64,
    pub last_registered: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    pub node_id: String,
}

impl From<&Device> for DeviceRow {
    fn from(d: &Device) -> Self {
        Self {
            id: d.id.clone(),
            pbx_id: d.pbx_id.clone(),
            extension_id: d.extension_id.clone(),
            binding_key: d.binding_key.clone(),
            instance_id: d.instance_id.clone(),
            contact: d.contact.clone(),
            transport: d.transport.as_str().to_owned(),
            source_ip: d.source_ip.clone(),
            source_port: i32::from(d.source_port),
            user_agent: d.user_agent.clone(),
            device_type: d.info.device_type.as_str().to_owned(),
            manufacturer: d.info.manufacturer.clone(),
            model: d.info.model.clone(),
            mac_address: d.info.mac_address.clone(),
            call_id: d.call_id.clone(),
            cseq: i64::from(d.cseq),
            first_registered: d.first_registered,
            last_registered: d.last_registered,
            expires_at: d.expires_at,
            ended_at: d.ended_at,
            end_reason: d.end_reason.map(|r| r.as_str().to_owned()),
            node_id: d.node_id.clone(),
        }
    }
}

impl TryFrom<DeviceRow> for Device {
    type Error = StoreError;

    fn try_from(r: DeviceRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| {
            StoreError::Query(diesel::result::Error::DeserializationError(
                format!("device {}: bad {what}", r.id).into(),
            ))
        };
        let transport = SipTransport::parse(&r.transport).ok_or_else(|| corrupt("transport"))?;
        let device_type =
            DeviceType::parse(&r.device_type).ok_or_else(|| corrupt("device type"))?;
        let end_reason = match r.end_reason.as_deref() {
            None => None,
            Some(raw) => Some(EndReason::parse(raw).ok_or_else(|| corrupt("end reason"))?),
        };
        Ok(Device {
            transport,
            source_port: u16::try_from(r.source_port).map_err(|_| corrupt("port"))?,
            cseq: u32::try_from(r.cseq).map_err(|_| corrupt("cseq"))?,
            info: DeviceInfo {
                device_type,
                manufacturer: r.manufacturer,
                model: r.model,
                mac_address: r.mac_address,
            },
            end_reason,
            id: r.id,
            pbx_id: r.pbx_id,
            extension_id: r.extension_id,
            binding_key: r.binding_key,
            instance_id: r.instance_id,
            contact: r.contact,
            source_ip: r.source_ip,
            user_agent: r.user_agent,
            call_id: r.call_id,
            first_registered: r.first_registered,
            last_registered: r.last_registered,
            expires_at: r.expires_at,
            ended_at: r.ended_at,
            node_id: r.node_id,
        })
    }
}

/// The columns an upsert overwrites on a known device.
macro_rules! device_upsert_set {
    () => {
        (
            device::binding_key.eq(excluded(device::binding_key)),
            device::instance_id.eq(excluded(device::instance_id)),
            device::contact.eq(excluded(device::contact)),
            device::transport.eq(excluded(device::transport)),
            device::source_ip.eq(excluded(device::source_ip)),
            device::source_port.eq(excluded(device::source_port)),
            device::user_agent.eq(excluded(device::user_agent)),
            device::device_type.eq(excluded(device::device_type)),
            device::manufacturer.eq(excluded(device::manufacturer)),
            device::model.eq(excluded(device::model)),
            device::mac_address.eq(excluded(device::mac_address)),
            device::call_id.eq(excluded(device::call_id)),
            device::cseq.eq(excluded(device::cseq)),
            device::last_registered.eq(excluded(device::last_registered)),
            device::expires_at.eq(excluded(device::expires_at)),
            device::ended_at.eq(excluded(device::ended_at)),
            device::end_reason.eq(excluded(device::end_reason)),
            device::node_id.eq(excluded(device::node_id)),
        )
    };
}

impl super::batch::BatchRow for DeviceRow {
    fn key(&self) -> &str {
        &self.id
    }

    fn upsert(store: &Store, rows: &[Self]) -> impl Future<Output = StoreResult<()>> + Send {
        store.upsert_devices(rows)
    }
}

impl Store {
    /// Writes a batch: inserts new devices, overwrites known ones (all but their identity
    /// and first registration); see [`super::batch_upsert`].
    pub async fn upsert_devices(&self, rows: &[DeviceRow]) -> StoreResult<()> {
        super::batch_upsert!(self, rows, device::table, device::id, device_upsert_set!())
    }

    /// Id and first registration of a known device, live or not.
    pub async fn device_identity(
        &self,
        extension_id: &str,
        binding_key: &str,
    ) -> StoreResult<Option<(String, i64)>> {
        with_conn!(self, conn => Ok(device::table
            .filter(device::extension_id.eq(extension_id))
            .filter(device::binding_key.eq(binding_key))
            .select((device::id, device::first_registered))
            .first(conn)
            .await
            .optional()?))
    }

    /// Bindings still live at `now` (to rebuild the in-memory index at start).
    pub async fn live_devices(&self, now: i64) -> StoreResult<Vec<Device>> {
        let rows: Vec<DeviceRow> = with_conn!(self, conn => device::table
            .filter(device::ended_at.is_null())
            .filter(device::expires_at.gt(now))
            .select(DeviceRow::as_select())
            .load(conn)
            .await)?;
        rows.into_iter().map(Device::try_from).collect()
    }

    /// Marks bindings that expired while nobody watched (for example while stopped).
    pub async fn end_lapsed_devices(&self, now: i64) -> StoreResult<usize> {
        with_conn!(self, conn => Ok(diesel::update(
            device::table
                .filter(device::ended_at.is_null())
                .filter(device::expires_at.le(now)),
        )
        .set((
            device::ended_at.eq(device::expires_at.nullable()),
            device::end_reason.eq(EndReason::Expired.as_str()),
        ))
        .execute(conn)
        .await?))
    }

    /// Devices of a PBX (optionally one extension) seen since `since`, live ones included
    /// whatever their age; ordered by extension number, then first registration.
    pub async fn list_devices(
        &self,
        pbx_id: &str,
        extension_id: Option<&str>,
        since: i64,
    ) -> StoreResult<Vec<DeviceListing>> {
        let rows: Vec<(DeviceRow, String, String)> = with_conn!(self, conn => {
            let mut q = device::table
                .inner_join(extension::table.on(extension::id.eq(device::extension_id)))
                .filter(device::pbx_id.eq(pbx_id))
                .filter(device::ended_at.is_null().or(device::last_registered.ge(since)))
                .select((DeviceRow::as_select(), extension::number, extension::name))
                .order((extension::number.asc(), device::first_registered.asc()))
                .into_boxed();
            if let Some(ext) = extension_id {
                q = q.filter(device::extension_id.eq(ext.to_owned()));
            }
            q.load(conn).await
        })?;
        rows.into_iter()
            .map(|(row, number, name)| {
                Ok(DeviceListing {
                    device: Device::try_from(row)?,
                    extension_number: number,
                    extension_name: name,
                })
            })
            .collect()
    }

    /// Devices listed for a PBX (live, or seen since `since`), counted by type, without
    /// loading them.
    pub async fn device_type_counts(
        &self,
        pbx_id: &str,
        since: i64,
    ) -> StoreResult<Vec<(String, i64)>> {
        with_conn!(self, conn => Ok(device::table
            .filter(device::pbx_id.eq(pbx_id))
            .filter(device::ended_at.is_null().or(device::last_registered.ge(since)))
            .group_by(device::device_type)
            .select((device::device_type, diesel::dsl::count_star()))
            .load::<(String, i64)>(conn)
            .await?))
    }

    /// Deletes device records that ended before `before`.
    pub async fn purge_devices(&self, before: i64) -> StoreResult<usize> {
        with_conn!(self, conn => Ok(diesel::delete(
            device::table
                .filter(device::ended_at.is_not_null())
                .filter(device::last_registered.lt(before)),
        )
        .execute(conn)
        .await?))
    }
}
