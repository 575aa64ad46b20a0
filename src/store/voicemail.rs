//! Mailbox settings and voicemail message rows.

use super::schema::{mailbox, voicemail_message};
use super::{Store, StoreResult, with_conn};
use diesel::upsert::excluded;
use diesel::{
    ExpressionMethods, Insertable, OptionalExtension, QueryDsl, Queryable, Selectable,
    SelectableHelper,
};
use diesel_async::RunQueryDsl;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = mailbox, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct MailboxRow {
    pub extension_id: String,
    pub pbx_id: String,
    pub greeting_file: Option<String>,
    pub notify_email: Option<String>,
    pub pin_hash: Option<String>,
    pub max_message_seconds: i32,
    pub retention_days: i32,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = voicemail_message, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct MessageRow {
    pub id: String,
    pub pbx_id: String,
    pub extension_id: String,
    pub caller_number: String,
    pub caller_name: Option<String>,
    pub duration_ms: i64,
    pub created_at: i64,
    pub heard_at: Option<i64>,
    pub audio_file: String,
}

impl Store {
    pub async fn mailboxes(&self, pbx_id: &str) -> StoreResult<Vec<MailboxRow>> {
        with_conn!(self, conn => Ok(mailbox::table
            .filter(mailbox::pbx_id.eq(pbx_id))
            .select(MailboxRow::as_select())
            .load(conn)
            .await?))
    }

    pub async fn mailbox(&self, extension_id: &str) -> StoreResult<Option<MailboxRow>> {
        with_conn!(self, conn => Ok(mailbox::table
            .find(extension_id)
            .select(MailboxRow::as_select())
            .first(conn)
            .await
            .optional()?))
    }

    pub async fn save_mailbox(&self, row: &MailboxRow) -> StoreResult<()> {
        with_conn!(self, conn => {
            diesel::insert_into(mailbox::table)
                .values(row)
                .on_conflict(mailbox::extension_id)
                .do_update()
                .set((
                    mailbox::greeting_file.eq(excluded(mailbox::greeting_file)),
                    mailbox::notify_email.eq(excluded(mailbox::notify_email)),
                    mailbox::pin_hash.eq(excluded(mailbox::pin_hash)),
                    mailbox::max_message_seconds.eq(excluded(mailbox::max_message_seconds)),
                    mailbox::retention_days.eq(excluded(mailbox::retention_days)),
                    mailbox::updated_at.eq(excluded(mailbox::updated_at)),
                ))
                .execute(conn)
                .await?;
            Ok(())
        })
    }

    /// Messages of a PBX (optionally one extension), newest first.
    pub async fn messages(
        &self,
        pbx_id: &str,
        extension_id: Option<&str>,
    ) -> StoreResult<Vec<MessageRow>> {
        with_conn!(self, conn => {
            let mut q = voicemail_message::table
                .filter(voicemail_message::pbx_id.eq(pbx_id))
                .select(MessageRow::as_select())
                .order((voicemail_message::created_at.desc(), voicemail_message::id.desc()))
                .into_boxed();
            if let Some(ext) = extension_id {
                q = q.filter(voicemail_message::extension_id.eq(ext.to_owned()));
            }
            Ok(q.load(conn).await?)
        })
    }

    pub async fn message(&self, pbx_id: &str, id: &str) -> StoreResult<Option<MessageRow>> {
        with_conn!(self, conn => Ok(voicemail_message::table
            .filter(voicemail_message::pbx_id.eq(pbx_id))
            .filter(voicemail_message::id.eq(id))
            .select(MessageRow::as_select())
            .first(conn)
            .await
            .optional()?))
    }

    pub async fn insert_message(&self, row: &MessageRow) -> StoreResult<()> {
        with_conn!(self, conn => {
            diesel::insert_into(voicemail_message::table).values(row).execute(conn).await?;
            Ok(())
        })
    }

    pub async fn set_message_heard(&self, id: &str, heard_at: Option<i64>) -> StoreResult<()> {
        with_conn!(self, conn => {
            diesel::update(voicemail_message::table.find(id))
                .set(voicemail_message::heard_at.eq(heard_at))
                .execute(conn)
                .await?;
            Ok(())
        })
    }

    pub async fn delete_message_row(&self, id: &str) -> StoreResult<()> {
        with_conn!(self, conn => {
            diesel::delete(voicemail_message::table.find(id)).execute(conn).await?;
            Ok(())
        })
    }

    /// Every message (for retention and for reconciling files at start).
    pub async fn all_messages(&self) -> StoreResult<Vec<MessageRow>> {
        with_conn!(self, conn => Ok(voicemail_message::table
            .select(MessageRow::as_select())
            .load(conn)
            .await?))
    }

    /// Every mailbox row (for retention).
    pub async fn all_mailboxes(&self) -> StoreResult<Vec<MailboxRow>> {
        with_conn!(self, conn => Ok(mailbox::table
            .select(MailboxRow::as_select())
            .load(conn)
            .await?))
    }
}
