//! Tenants.

use super::schema::pbx;
use super::{Store, StoreResult, with_conn};
use crate::domain::Pbx;
use diesel::{
    BoolExpressionMethods, ExpressionMethods, Insertable, OptionalExtension, QueryDsl, Queryable,
    Selectable, SelectableHelper,
};
use diesel_async::RunQueryDsl;

/// A `pbx` row: [`Pbx`] as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = pbx, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct PbxRow {
    pub id: String,
    pub name: String,
    pub sip_domain: String,
    pub created_at: i64,
    pub default_caller_id_name: Option<String>,
    pub default_caller_id_number: Option<String>,
}

impl From<PbxRow> for Pbx {
    fn from(r: PbxRow) -> Self {
        Pbx {
            id: r.id,
            name: r.name,
            sip_domain: r.sip_domain,
            created_at: r.created_at,
            default_caller_id_name: r.default_caller_id_name,
            default_caller_id_number: r.default_caller_id_number,
        }
    }
}

impl From<&Pbx> for PbxRow {
    fn from(p: &Pbx) -> Self {
        PbxRow {
            id: p.id.clone(),
            name: p.name.clone(),
            sip_domain: p.sip_domain.clone(),
            created_at: p.created_at,
            default_caller_id_name: p.default_caller_id_name.clone(),
            default_caller_id_number: p.default_caller_id_number.clone(),
        }
    }
}

impl Store {
    pub async fn insert_pbx(&self, pbx: &Pbx) -> StoreResult<()> {
        let row = PbxRow::from(pbx);
        with_conn!(self, conn => {
            diesel::insert_into(pbx::table).values(&row).execute(conn).await?;
            Ok(())
        })
    }

    pub async fn pbx_count(&self) -> StoreResult<i64> {
        with_conn!(self, conn => Ok(pbx::table.count().get_result(conn).await?))
    }

    pub async fn pbx_by_id(&self, id: &str) -> StoreResult<Option<Pbx>> {
        let row = with_conn!(self, conn => pbx::table
            .find(id)
            .select(PbxRow::as_select())
            .first(conn)
            .await
            .optional())?;
        Ok(row.map(Pbx::from))
    }

    /// Looks a PBX up by id or, failing that, by name.
    pub async fn pbx_by_id_or_name(&self, key: &str) -> StoreResult<Option<Pbx>> {
        let row = with_conn!(self, conn => pbx::table
            .filter(pbx::id.eq(key).or(pbx::name.eq(key)))
            .select(PbxRow::as_select())
            .order(pbx::created_at)
            .first(conn)
            .await
            .optional())?;
        Ok(row.map(Pbx::from))
    }

    pub async fn list_pbx(&self) -> StoreResult<Vec<Pbx>> {
        let rows: Vec<PbxRow> = with_conn!(self, conn => pbx::table
            .select(PbxRow::as_select())
            .order(pbx::created_at)
            .load(conn)
            .await)?;
        Ok(rows.into_iter().map(Pbx::from).collect())
    }
}
