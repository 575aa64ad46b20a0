//! The `/v1/pbx/...` REST shim: JSON in the documented shapes, over the same service
//! functions GraphQL uses.

mod body;
mod calls;
mod conferences;
mod extensions;
mod phones;
mod tokens;
mod voicemail;

use crate::service::Services;
use axum::Router;
use axum::extract::FromRef;
use std::sync::Arc;

/// The REST routes, on any state the services can be taken from.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Services>: FromRef<S>,
{
    Router::new()
        .merge(tokens::routes())
        .merge(extensions::routes())
        .merge(phones::routes())
        .merge(calls::routes())
        .merge(voicemail::routes())
        .merge(conferences::routes())
}
