//! Tenants.

use super::schema::pbx;
use super::{Store, StoreResult, with_conn};
use diesel::{
    BoolExpressionMethods, ExpressionMethods, Insertable, OptionalExtension, QueryDsl, Queryable,
    Selectable, SelectableHelper,
};
use diesel_async::RunQueryDsl;

/// A PBX (tenant) and the SIP domain its phones register to; the domain is also the
/// digest realm, so it is fixed once extensions exist.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = pbx, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Pbx {
    pub id: String,
    pub name: String,
    pub sip_domain: String,
    pub created_at: i64,
    /// Caller ID presented on outside calls by extensions without their own.
    pub default_caller_id_name: Option<String>,
    pub default_caller_id_number: Option<String>,
}

impl Store {
    pub async fn insert_pbx(&self, row: &Pbx) -> StoreResult<()> {
        with_conn!(self, conn => {
            diesel::insert_into(pbx::table).values(row).execute(conn).await?;
            Ok(())
        })
    }

    pub async fn pbx_count(&self) -> StoreResult<i64> {
        with_conn!(self, conn => Ok(pbx::table.count().get_result(conn).await?))
    }

    pub async fn pbx_by_id(&self, id: &str) -> StoreResult<Option<Pbx>> {
        with_conn!(self, conn => Ok(pbx::table
            .find(id)
            .select(Pbx::as_select())
            .first(conn)
            .await
            .optional()?))
    }

    /// Looks a PBX up by id or, failing that, by name.
    pub async fn pbx_by_id_or_name(&self, key: &str) -> StoreResult<Option<Pbx>> {
        with_conn!(self, conn => Ok(pbx::table
            .filter(pbx::id.eq(key).or(pbx::name.eq(key)))
            .select(Pbx::as_select())
            .order(pbx::created_at)
            .first(conn)
            .await
            .optional()?))
    }

    pub async fn list_pbx(&self) -> StoreResult<Vec<Pbx>> {
        with_conn!(self, conn => Ok(pbx::table
            .select(Pbx::as_select())
            .order(pbx::created_at)
            .load(conn)
            .await?))
    }
}
