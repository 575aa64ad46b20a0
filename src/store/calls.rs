//! Call records: written in batches like devices, read for listings.

use super::schema::call;
use super::{Store, StoreError, StoreResult, with_conn};
use crate::domain::{Call, CallDirection, CallState, Disposition, HangupSide};
use diesel::upsert::excluded;
use diesel::{
    BoolExpressionMethods, ExpressionMethods, Insertable, OptionalExtension, QueryDsl, Queryable,
    Selectable, SelectableHelper,
};
use diesel_async::RunQueryDsl;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = call, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct CallRow {
    pub id: String,
    pub pbx_id: String,
    pub sip_call_id: String,
    pub direction: String,
    pub caller_extension_id: Option<String>,
    pub caller_number: String,
    pub caller_name: Option<String>,
    pub callee_extension_id: Option<String>,
    pub callee_number: String,
    pub callee_name: Option<String>,
    pub state: String,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub answered_by: Option<String>,
    pub disposition: Option<String>,
    pub hangup_side: Option<String>,
    pub end_reason: Option<String>,
    pub forwarded_to: Option<String>,
    pub node_id: String,
}

impl From<&Call> for CallRow {
    fn from(c: &Call) -> Self {
        Self {
            id: c.id.clone(),
            pbx_id: c.pbx_id.clone(),
            sip_call_id: c.sip_call_id.clone(),
            direction: c.direction.as_str().to_owned(),
            caller_extension_id: c.caller_extension_id.clone(),
            caller_number: c.caller_number.clone(),
            caller_name: c.caller_name.clone(),
            callee_extension_id: c.callee_extension_id.clone(),
            callee_number: c.callee_number.clone(),
            callee_name: c.callee_name.clone(),
            state: c.state.as_str().to_owned(),
            started_at: c.started_at,
            answered_at: c.answered_at,
            ended_at: c.ended_at,
            answered_by: c.answered_by.clone(),
            disposition: c.disposition.map(|d| d.as_str().to_owned()),
            hangup_side: c.hangup_side.map(|h| h.as_str().to_owned()),
            end_reason: c.end_reason.clone(),
            forwarded_to: c.forwarded_to.clone(),
            node_id: c.node_id.clone(),
        }
    }
}

impl TryFrom<CallRow> for Call {
    type Error = StoreError;

    fn try_from(r: CallRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| {
            StoreError::Query(diesel::result::Error::DeserializationError(
                format!("call {}: bad {what}", r.id).into(),
            ))
        };
        let direction = CallDirection::parse(&r.direction).ok_or_else(|| corrupt("direction"))?;
        let state = CallState::parse(&r.state).ok_or_else(|| corrupt("state"))?;
        let disposition = match r.disposition.as_deref() {
            None => None,
            Some(d) => Some(Disposition::parse(d).ok_or_else(|| corrupt("disposition"))?),
        };
        let hangup_side = match r.hangup_side.as_deref() {
            None => None,
            Some(h) => Some(HangupSide::parse(h).ok_or_else(|| corrupt("hangup side"))?),
        };
        Ok(Call {
            direction,
            state,
            disposition,
            hangup_side,
            id: r.id,
            pbx_id: r.pbx_id,
            sip_call_id: r.sip_call_id,
            caller_extension_id: r.caller_extension_id,
            caller_number: r.caller_number,
            caller_name: r.caller_name,
            callee_extension_id: r.callee_extension_id,
            callee_number: r.callee_number,
            callee_name: r.callee_name,
            started_at: r.started_at,
            answered_at: r.answered_at,
            ended_at: r.ended_at,
            answered_by: r.answered_by,
            end_reason: r.end_reason,
            forwarded_to: r.forwarded_to,
            node_id: r.node_id,
        })
    }
}

/// The columns an upsert overwrites on a known call (everything but who and when).
macro_rules! call_upsert_set {
    () => {
        (
            call::callee_extension_id.eq(excluded(call::callee_extension_id)),
            call::callee_name.eq(excluded(call::callee_name)),
            call::state.eq(excluded(call::state)),
            call::answered_at.eq(excluded(call::answered_at)),
            call::ended_at.eq(excluded(call::ended_at)),
            call::answered_by.eq(excluded(call::answered_by)),
            call::disposition.eq(excluded(call::disposition)),
            call::hangup_side.eq(excluded(call::hangup_side)),
            call::end_reason.eq(excluded(call::end_reason)),
            call::forwarded_to.eq(excluded(call::forwarded_to)),
        )
    };
}

impl super::batch::BatchRow for CallRow {
    fn key(&self) -> &str {
        &self.id
    }

    fn upsert(store: &Store, rows: &[Self]) -> impl Future<Output = StoreResult<()>> + Send {
        store.upsert_calls(rows)
    }
}

/// Which calls a listing wants.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub active_only: bool,
    pub extension_id: Option<String>,
    /// Calls that started before this one (`started_at`, `id`): the page cursor.
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

impl Store {
    /// Inserts new calls and overwrites the state of known ones, as one batch.
    pub async fn upsert_calls(&self, rows: &[CallRow]) -> StoreResult<()> {
        super::batch_upsert!(self, rows, call::table, call::id, call_upsert_set!())
    }

    /// Calls of a PBX, newest first.
    pub async fn list_calls(&self, pbx_id: &str, filter: &CallFilter) -> StoreResult<Vec<Call>> {
        let rows: Vec<CallRow> = with_conn!(self, conn => {
            let mut q = call::table
                .filter(call::pbx_id.eq(pbx_id))
                .select(CallRow::as_select())
                .order((call::started_at.desc(), call::id.desc()))
                .limit(filter.limit)
                .into_boxed();
            if filter.active_only {
                q = q.filter(call::state.ne(CallState::Ended.as_str()));
            }
            if let Some(ext) = &filter.extension_id {
                q = q.filter(
                    call::caller_extension_id
                        .eq(ext.clone())
                        .or(call::callee_extension_id.eq(ext.clone())),
                );
            }
            if let Some((started, id)) = &filter.before {
                q = q.filter(
                    call::started_at
                        .lt(*started)
                        .or(call::started_at.eq(*started).and(call::id.lt(id.clone()))),
                );
            }
            q.load(conn).await
        })?;
        rows.into_iter().map(Call::try_from).collect()
    }

    pub async fn call_by_id(&self, pbx_id: &str, id: &str) -> StoreResult<Option<Call>> {
        let row: Option<CallRow> = with_conn!(self, conn => call::table
            .filter(call::pbx_id.eq(pbx_id))
            .filter(call::id.eq(id))
            .select(CallRow::as_select())
            .first(conn)
            .await
            .optional())?;
        row.map(Call::try_from).transpose()
    }

    /// Calls a previous run of this node left unfinished: they cannot still be up.
    pub async fn end_orphaned_calls(&self, node_id: &str, now: i64) -> StoreResult<usize> {
        with_conn!(self, conn => Ok(diesel::update(
            call::table
                .filter(call::node_id.eq(node_id))
                .filter(call::state.ne(CallState::Ended.as_str())),
        )
        .set((
            call::state.eq(CallState::Ended.as_str()),
            call::ended_at.eq(now),
            call::hangup_side.eq(HangupSide::System.as_str()),
            call::end_reason.eq("server-restart"),
            call::disposition.eq(Disposition::Failed.as_str()),
        ))
        .execute(conn)
        .await?))
    }
}
