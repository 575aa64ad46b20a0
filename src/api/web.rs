//! Static pages embedded in the binary: the reception console at `/`, the GraphiQL
//! playground and their assets (no CDN: they must work on an offline LAN).

use super::AppState;
use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;

macro_rules! asset {
    ($path:literal, $mime:literal) => {
        get(|| async {
            (
                [
                    (CONTENT_TYPE, $mime),
                    (CACHE_CONTROL, "public, max-age=3600"),
                ],
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/web-playground/",
                    $path
                ))
                .as_slice(),
            )
                .into_response()
        })
    };
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", asset!("index.html", "text/html; charset=utf-8"))
        .route(
            "/assets/console.js",
            asset!("console.js", "text/javascript"),
        )
        .route("/assets/console.css", asset!("console.css", "text/css"))
        .route(
            "/playground",
            asset!("playground.html", "text/html; charset=utf-8"),
        )
        .route(
            "/assets/vendor/graphiql.min.js",
            asset!("vendor/graphiql.min.js", "text/javascript"),
        )
        .route(
            "/assets/vendor/graphiql.min.css",
            asset!("vendor/graphiql.min.css", "text/css"),
        )
        .route(
            "/assets/vendor/react.production.min.js",
            asset!("vendor/react.production.min.js", "text/javascript"),
        )
        .route(
            "/assets/vendor/react-dom.production.min.js",
            asset!("vendor/react-dom.production.min.js", "text/javascript"),
        )
        .route(
            "/assets/vendor/graphql-ws.min.js",
            asset!("vendor/graphql-ws.min.js", "text/javascript"),
        )
}
