//! Extensions and their SIP digest credentials.

use super::schema::extension;
use super::{Store, StoreError, StoreResult, with_conn, with_tx};
use crate::domain::{Extension, ExtensionType, ManualPresence};
use diesel::{
    AsChangeset, ExpressionMethods, Insertable, OptionalExtension, QueryDsl, Queryable, Selectable,
    SelectableHelper,
};
use diesel_async::RunQueryDsl;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = extension, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct ExtensionRow {
    pub id: String,
    pub pbx_id: String,
    pub number: String,
    pub name: String,
    pub kind: String,
    pub caller_id_name: Option<String>,
    pub caller_id_number: Option<String>,
    pub voicemail_enabled: bool,
    pub forwarding_number: Option<String>,
    pub forwarding_ring_timeout: i32,
    pub manual_presence: Option<String>,
    pub sip_username: String,
    /// Digest HA1s; both empty for an extension without SIP credentials (conference,
    /// parking and paging extensions), which therefore cannot authenticate.
    pub ha1_md5: String,
    pub ha1_sha256: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Conference extensions: the digits callers enter before joining.
    pub conference_pin: Option<String>,
    /// Conference extensions: callers in the room at once (50 by default).
    pub max_participants: i32,
}

/// A partial update: `None` leaves a column alone, `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = extension)]
pub struct ExtensionChangeset {
    pub number: Option<String>,
    pub name: Option<String>,
    pub kind: Option<String>,
    pub caller_id_name: Option<Option<String>>,
    pub caller_id_number: Option<Option<String>>,
    pub voicemail_enabled: Option<bool>,
    pub forwarding_number: Option<Option<String>>,
    pub forwarding_ring_timeout: Option<i32>,
    pub manual_presence: Option<Option<String>>,
    /// Set to empty strings when an extension stops being a `user` one: it keeps its
    /// username (unique, so never reused) but loses its password.
    pub ha1_md5: Option<String>,
    pub ha1_sha256: Option<String>,
    pub updated_at: Option<i64>,
    pub conference_pin: Option<Option<String>>,
    pub max_participants: Option<i32>,
}

/// The SIP digest secrets of one extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipSecrets {
    pub extension: Extension,
    pub ha1_md5: String,
    pub ha1_sha256: String,
}

impl TryFrom<ExtensionRow> for Extension {
    type Error = StoreError;

    fn try_from(row: ExtensionRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| {
            StoreError::Query(diesel::result::Error::DeserializationError(
                format!("extension {}: bad {what}", row.id).into(),
            ))
        };
        let kind = ExtensionType::parse(&row.kind).map_err(|_| corrupt("kind"))?;
        let manual_presence = match row.manual_presence.as_deref() {
            None => None,
            Some(raw) => Some(ManualPresence::parse(raw).ok_or_else(|| corrupt("presence"))?),
        };
        let forwarding_ring_timeout =
            u8::try_from(row.forwarding_ring_timeout).map_err(|_| corrupt("ring timeout"))?;
        let max_participants =
            u16::try_from(row.max_participants).map_err(|_| corrupt("max participants"))?;
        Ok(Extension {
            id: row.id,
            pbx_id: row.pbx_id,
            number: row.number,
            name: row.name,
            kind,
            caller_id_name: row.caller_id_name,
            caller_id_number: row.caller_id_number,
            voicemail_enabled: row.voicemail_enabled,
            forwarding_number: row.forwarding_number,
            forwarding_ring_timeout,
            manual_presence,
            sip_username: row.sip_username,
            conference_pin: row.conference_pin,
            max_participants,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

impl Store {
    pub async fn insert_extension(&self, row: &ExtensionRow) -> StoreResult<Extension> {
        with_conn!(self, conn => {
            diesel::insert_into(extension::table).values(row).execute(conn).await?;
            Ok::<_, StoreError>(())
        })?;
        Extension::try_from(row.clone())
    }

    /// Every extension of a PBX, ordered by number.
    pub async fn list_extensions(&self, pbx_id: &str) -> StoreResult<Vec<Extension>> {
        let rows: Vec<ExtensionRow> = with_conn!(self, conn => extension::table
            .filter(extension::pbx_id.eq(pbx_id))
            .order(extension::number)
            .select(ExtensionRow::as_select())
            .load(conn)
            .await)?;
        rows.into_iter().map(Extension::try_from).collect()
    }

    pub async fn extension_by_id(&self, pbx_id: &str, id: &str) -> StoreResult<Option<Extension>> {
        let row: Option<ExtensionRow> = with_conn!(self, conn => extension::table
            .filter(extension::pbx_id.eq(pbx_id))
            .filter(extension::id.eq(id))
            .select(ExtensionRow::as_select())
            .first(conn)
            .await
            .optional())?;
        row.map(Extension::try_from).transpose()
    }

    pub async fn extension_by_number(
        &self,
        pbx_id: &str,
        number: &str,
    ) -> StoreResult<Option<Extension>> {
        let row: Option<ExtensionRow> = with_conn!(self, conn => extension::table
            .filter(extension::pbx_id.eq(pbx_id))
            .filter(extension::number.eq(number))
            .select(ExtensionRow::as_select())
            .first(conn)
            .await
            .optional())?;
        row.map(Extension::try_from).transpose()
    }

    /// The extension a SIP username belongs to, with its digest secrets. Usernames are
    /// unique across PBXes, so this needs no tenant.
    pub async fn sip_secrets(&self, sip_username: &str) -> StoreResult<Option<SipSecrets>> {
        let row: Option<ExtensionRow> = with_conn!(self, conn => extension::table
            .filter(extension::sip_username.eq(sip_username))
            .select(ExtensionRow::as_select())
            .first(conn)
            .await
            .optional())?;
        row.map(|row| {
            let (ha1_md5, ha1_sha256) = (row.ha1_md5.clone(), row.ha1_sha256.clone());
            Extension::try_from(row).map(|extension| SipSecrets {
                extension,
                ha1_md5,
                ha1_sha256,
            })
        })
        .transpose()
    }

    /// Applies `changes` and returns the extension before and after, or `None` when no
    /// extension of this PBX has that id. One transaction: nothing is half-written.
    pub async fn update_extension(
        &self,
        pbx_id: &str,
        id: &str,
        changes: &ExtensionChangeset,
    ) -> StoreResult<Option<(Extension, Extension)>> {
        let rows: Option<(ExtensionRow, ExtensionRow)> = with_tx!(self, conn => {
            let target = extension::table
                .filter(extension::pbx_id.eq(pbx_id))
                .filter(extension::id.eq(id));
            let Some(before) = target
                .select(ExtensionRow::as_select())
                .first(conn)
                .await
                .optional()?
            else {
                return Ok(None);
            };
            diesel::update(target).set(changes).execute(conn).await?;
            let after = target.select(ExtensionRow::as_select()).first(conn).await?;
            Ok::<_, StoreError>(Some((before, after)))
        })?;
        rows.map(|(before, after)| Ok((Extension::try_from(before)?, Extension::try_from(after)?)))
            .transpose()
    }

    /// Replaces the digest secrets; `None` when no such extension.
    pub async fn set_sip_secrets(
        &self,
        pbx_id: &str,
        id: &str,
        ha1_md5: &str,
        ha1_sha256: &str,
        updated_at: i64,
    ) -> StoreResult<Option<Extension>> {
        let row: Option<ExtensionRow> = with_conn!(self, conn => {
            let target = extension::table
                .filter(extension::pbx_id.eq(pbx_id))
                .filter(extension::id.eq(id));
            let n = diesel::update(target)
                .set((
                    extension::ha1_md5.eq(ha1_md5),
                    extension::ha1_sha256.eq(ha1_sha256),
                    extension::updated_at.eq(updated_at),
                ))
                .execute(conn)
                .await?;
            if n == 0 {
                Ok::<_, StoreError>(None)
            } else {
                Ok(Some(target.select(ExtensionRow::as_select()).first(conn).await?))
            }
        })?;
        row.map(Extension::try_from).transpose()
    }

    /// Deletes and returns the extension, or `None` when there was none.
    pub async fn delete_extension(&self, pbx_id: &str, id: &str) -> StoreResult<Option<Extension>> {
        let row: Option<ExtensionRow> = with_tx!(self, conn => {
            let target = extension::table
                .filter(extension::pbx_id.eq(pbx_id))
                .filter(extension::id.eq(id));
            let Some(row) = target
                .select(ExtensionRow::as_select())
                .first(conn)
                .await
                .optional()?
            else {
                return Ok(None);
            };
            diesel::delete(target).execute(conn).await?;
            Ok::<_, StoreError>(Some(row))
        })?;
        row.map(Extension::try_from).transpose()
    }
}
