//! The `/v1/pbx/...` REST shim: JSON in the documented shapes, over the same service
//! functions GraphQL uses.

mod calls;
mod extensions;
mod phones;
mod voicemail;

use super::AppState;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(super::auth_routes())
        .merge(extensions::routes())
        .merge(phones::routes())
        .merge(calls::routes())
        .merge(voicemail::routes())
}
