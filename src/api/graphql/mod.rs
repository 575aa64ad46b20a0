//! GraphQL: the schema (Query, Mutation, Subscription) and its HTTP and websocket
//! endpoints. `schema.graphql` at the repository root is generated from this module.

mod fanout;
mod http;
mod limits;
mod mutation;
mod protocol;
mod query;
mod subscription;
mod types;
mod ws;

use super::ApiError;
use crate::auth::Principal;
use crate::service::Services;
use async_graphql::{Context, Schema};
use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use std::sync::Arc;

pub use fanout::SubscriptionExecutor;
pub use limits::LimitError;
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Queries deeper than this are refused before they run.
const MAX_DEPTH: usize = 12;
/// A budget on the number of fields one query may select.
const MAX_COMPLEXITY: usize = 1000;
/// The depth of graphql-js's introspection query, which GraphiQL sends (its `TypeRef`
/// nests `ofType` nine times). Still a limit: introspection types refer to each other,
/// and every four levels of `fields { type { ofType { ofType { fields …` multiply the
/// answer by the number of fields.
const MAX_INTROSPECTION_DEPTH: usize = 15;

/// The schema with its services; `None` builds it for printing the SDL only.
pub fn build_schema(services: Option<Arc<Services>>) -> AppSchema {
    let mut builder = Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY);
    if let Some(services) = services {
        builder = builder.data(services);
    }
    builder.finish()
}

/// The schema that answers introspection-only queries: the same types, nothing but
/// introspection resolves, and the depth limit is [`MAX_INTROSPECTION_DEPTH`].
fn build_introspection_schema() -> AppSchema {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .introspection_only()
        .limit_depth(MAX_INTROSPECTION_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The schema in SDL, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    build_schema(None).sdl()
}

/// What the GraphQL endpoints need: the executor every operation runs through, the
/// services (to check credentials) and the shutdown signal (websockets close on it).
#[derive(Clone)]
pub struct GraphqlState {
    pub executor: SubscriptionExecutor,
    pub services: Arc<Services>,
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl FromRef<GraphqlState> for Arc<Services> {
    fn from_ref(state: &GraphqlState) -> Self {
        state.services.clone()
    }
}

/// `/graphql` and `/graphql/ws`, on any state their part can be taken from.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    GraphqlState: FromRef<S>,
    Arc<Services>: FromRef<S>,
{
    Router::new()
        .route("/graphql", post(http::graphql_http))
        .route("/graphql/ws", get(ws::graphql_ws))
}

/// The services and the caller, or `unauthorized`.
fn caller<'a>(ctx: &Context<'a>) -> async_graphql::Result<(&'a Arc<Services>, &'a Principal)> {
    let services = ctx.data::<Arc<Services>>()?;
    let principal = ctx
        .data_opt::<Principal>()
        .ok_or_else(|| ApiError::unauthorized().into_graphql())?;
    Ok((services, principal))
}
