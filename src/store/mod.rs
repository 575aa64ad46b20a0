//! Persistence: one [`Store`] over an embedded SQLite file or PostgreSQL.
//!
//! Query bodies are written once and compiled for both backends by [`with_conn!`] and
//! [`with_tx!`]; models carry `check_for_backend(Sqlite, Pg)` so a type mismatch on
//! either backend fails the build, not a request.

pub mod api_keys;
pub mod batch;
pub mod calls;
pub mod devices;
pub mod extensions;
pub mod pbx;
pub mod schema;
pub mod voicemail;

use diesel::SqliteConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::RunQueryDsl;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures_util::FutureExt;
use std::path::Path;

pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// WAL lets readers run beside the one writer; `busy_timeout` makes a second writer wait
/// instead of failing; `synchronous=NORMAL` is durable across process crashes in WAL mode.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

/// A cheap, clonable handle to the database.
#[derive(Clone)]
pub enum Store {
    Sqlite(Lanes<Pool<SqliteConn>>),
    Postgres(Lanes<Pool<AsyncPgConnection>>),
}

/// One backend's connections in two pools: the SIP runtime's threads draw from `sip`,
/// every other thread from `api`, so a flood of API queries that holds every API
/// connection never makes a registration or a call wait for one (see
/// [`crate::runtime`]).
#[derive(Clone)]
pub struct Lanes<P> {
    api: P,
    sip: P,
}

impl<P> Lanes<P> {
    /// The pool for the calling thread.
    pub fn lane(&self) -> &P {
        if crate::runtime::on_sip_thread() {
            &self.sip
        } else {
            &self.api
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint; the string names the constraint or column when known.
    #[error("unique constraint violated: {0}")]
    Unique(String),
    /// A CHECK constraint; the string names it.
    #[error("check constraint violated: {0}")]
    Check(String),
    #[error("database error: {0}")]
    Query(DieselError),
}

impl From<DieselError> for StoreError {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                // Postgres names the constraint; SQLite names the columns in the message.
                let what = info
                    .constraint_name()
                    .map(str::to_owned)
                    .unwrap_or_else(|| info.message().to_owned());
                StoreError::Unique(what)
            }
            DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, info) => {
                let what = info
                    .constraint_name()
                    .map(str::to_owned)
                    .unwrap_or_else(|| info.message().to_owned());
                StoreError::Check(what)
            }
            other => StoreError::Query(other),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for StoreError {
    fn from(err: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        StoreError::Unavailable(err.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Runs `$body` with `$conn: &mut C` for whichever connection type backs the store.
macro_rules! with_conn {
    ($store:expr, $conn:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite(pool) => {
                let mut pooled = pool.lane().get().await?;
                let $conn = &mut *pooled;
                $body
            }
            $crate::store::Store::Postgres(pool) => {
                let mut pooled = pool.lane().get().await?;
                let $conn = &mut *pooled;
                $body
            }
        }
    };
}
pub(crate) use with_conn;

/// Runs `$body` (an expression producing `StoreResult<T>`) in a write transaction.
/// SQLite gets `BEGIN IMMEDIATE`: a deferred transaction that reads and then writes can
/// fail at once with SQLITE_BUSY when another writer committed in between.
macro_rules! with_tx {
    ($store:expr, $conn:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite(pool) => {
                let mut pooled = pool.lane().get().await?;
                pooled.immediate_transaction(async |$conn| $body).await
            }
            $crate::store::Store::Postgres(pool) => {
                let mut pooled = pool.lane().get().await?;
                diesel_async::AsyncConnection::transaction(&mut *pooled, async |$conn| $body).await
            }
        }
    };
}
pub(crate) use with_tx;

/// Writes a batch of rows: inserts new ones and overwrites the `$set` columns of known
/// ones (conflict on `$key`). PostgreSQL takes the batch as one statement; SQLite (where
/// diesel cannot batch an upsert) as one transaction on one blocking call. Evaluates to
/// `StoreResult<()>`.
macro_rules! batch_upsert {
    ($store:expr, $rows:expr, $table:path, $key:expr, $set:expr) => {{
        let rows = $rows;
        if rows.is_empty() {
            return Ok(());
        }
        match $store {
            $crate::store::Store::Postgres(pool) => {
                let mut conn = pool.lane().get().await?;
                diesel::insert_into($table)
                    .values(rows)
                    .on_conflict($key)
                    .do_update()
                    .set($set)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }
            $crate::store::Store::Sqlite(pool) => {
                let mut conn = pool.lane().get().await?;
                let rows = rows.to_vec();
                conn.spawn_blocking(move |conn| {
                    conn.immediate_transaction(|conn| {
                        for row in &rows {
                            let upsert = diesel::insert_into($table)
                                .values(row)
                                .on_conflict($key)
                                .do_update()
                                .set($set);
                            diesel::RunQueryDsl::execute(upsert, conn)?;
                        }
                        Ok(())
                    })
                })
                .await?;
                Ok(())
            }
        }
    }};
}
pub(crate) use batch_upsert;

impl Store {
    /// Opens the database named by `database_url`, or the SQLite file in `data_dir`
    /// when there is none, and brings its schema up to date.
    pub async fn open(database_url: Option<&str>, data_dir: &Path) -> anyhow::Result<Store> {
        let store = match database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let pool = |size| {
                    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
                    Pool::builder(manager).max_size(size).build()
                };
                Store::Postgres(Lanes {
                    api: pool(8)?,
                    sip: pool(16)?,
                })
            }
            Some(url) => {
                let path = url.strip_prefix("sqlite://").unwrap_or(url);
                Self::open_sqlite(path)?
            }
            None => {
                let path = data_dir.join("switchboard.db");
                Self::open_sqlite(&path.to_string_lossy())?
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    fn open_sqlite(path: &str) -> anyhow::Result<Store> {
        let pool = || {
            let mut config = ManagerConfig::<SqliteConn>::default();
            config.custom_setup = Box::new(|url| {
                async move {
                    let mut conn = SqliteConn::establish(url).await?;
                    conn.batch_execute(SQLITE_PRAGMAS)
                        .await
                        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                    Ok(conn)
                }
                .boxed()
            });
            let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(path, config);
            // SQLite has one writer at a time; a few connections serve concurrent readers.
            Pool::builder(manager).max_size(4).build()
        };
        Ok(Store::Sqlite(Lanes {
            api: pool()?,
            sip: pool()?,
        }))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Applies pending migrations (idempotent).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        fn run<C>(
            harness: &mut AsyncMigrationHarness<C>,
            migrations: EmbeddedMigrations,
        ) -> anyhow::Result<()>
        where
            AsyncMigrationHarness<C>: MigrationHarness<C::Backend>,
            C: AsyncConnection,
            EmbeddedMigrations: diesel::migration::MigrationSource<C::Backend>,
        {
            harness
                .run_pending_migrations(migrations)
                .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
            Ok(())
        }
        match self {
            Store::Sqlite(pool) => {
                let mut harness = AsyncMigrationHarness::new(pool.lane().get().await?);
                run(&mut harness, SQLITE_MIGRATIONS)
            }
            Store::Postgres(pool) => {
                let mut harness = AsyncMigrationHarness::new(pool.lane().get().await?);
                run(&mut harness, POSTGRES_MIGRATIONS)
            }
        }
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> StoreResult<()> {
        with_conn!(self, conn => {
            diesel::sql_query("SELECT 1").execute(conn).await?;
            Ok(())
        })
    }
}
