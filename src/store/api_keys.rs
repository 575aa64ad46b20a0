//! API keys: only their SHA-256 is stored.

use super::schema::api_key;
use super::{Store, StoreResult, with_conn};
use diesel::{
    ExpressionMethods, Insertable, OptionalExtension, QueryDsl, Queryable, Selectable,
    SelectableHelper,
};
use diesel_async::RunQueryDsl;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_key, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct ApiKeyRow {
    pub id: String,
    pub pbx_id: String,
    pub prefix: String,
    pub lookup: String,
    pub secret_hash: String,
    pub scopes: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl Store {
    pub async fn insert_api_key(&self, row: &ApiKeyRow) -> StoreResult<()> {
        with_conn!(self, conn => {
            diesel::insert_into(api_key::table).values(row).execute(conn).await?;
            Ok(())
        })
    }

    /// The live (not revoked) key with this lookup id.
    pub async fn api_key_by_lookup(&self, lookup: &str) -> StoreResult<Option<ApiKeyRow>> {
        with_conn!(self, conn => Ok(api_key::table
            .filter(api_key::lookup.eq(lookup))
            .filter(api_key::revoked_at.is_null())
            .select(ApiKeyRow::as_select())
            .first(conn)
            .await
            .optional()?))
    }

    pub async fn api_key_is_live(&self, id: &str) -> StoreResult<bool> {
        with_conn!(self, conn => {
            let n: i64 = api_key::table
                .filter(api_key::id.eq(id))
                .filter(api_key::revoked_at.is_null())
                .count()
                .get_result(conn)
                .await?;
            Ok(n > 0)
        })
    }
}
