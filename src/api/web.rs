//! Static pages embedded in the binary: the reception console at `/`, the GraphiQL
//! playground and their assets (no CDN: they must work on an offline LAN).
//!
//! The vendored JavaScript is 3.5 MB, so each asset carries a weak `ETag` (a hash of
//! its bytes, computed on first use) that turns a browser's revalidation into a 304,
//! and goes out gzip-compressed (tower-http) to every client that accepts it.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;
use tower_http::compression::CompressionLayer;

/// One embedded file.
struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    etag: OnceLock<HeaderValue>,
}

impl Asset {
    const fn new(bytes: &'static [u8], content_type: &'static str) -> Self {
        Self {
            bytes,
            content_type,
            etag: OnceLock::new(),
        }
    }

    /// `W/"<hash>"`: weak, since the gzip and identity bodies are the same asset.
    fn etag(&self) -> &HeaderValue {
        self.etag.get_or_init(|| {
            let hash = Sha256::digest(self.bytes);
            HeaderValue::from_str(&format!("W/\"{}\"", hex::encode(&hash[..12])))
                .unwrap_or(HeaderValue::from_static("W/\"0\""))
        })
    }

    fn serve(&self, headers: &HeaderMap) -> Response {
        let etag = self.etag().clone();
        let cache = HeaderValue::from_static("public, max-age=3600");
        if none_match(headers, &etag) {
            return (
                StatusCode::NOT_MODIFIED,
                [(ETAG, etag), (CACHE_CONTROL, cache)],
            )
                .into_response();
        }
        let content_type = HeaderValue::from_static(self.content_type);
        (
            [
                (CONTENT_TYPE, content_type),
                (CACHE_CONTROL, cache),
                (ETAG, etag),
            ],
            self.bytes,
        )
            .into_response()
    }
}

/// Whether `If-None-Match` names `etag` (or is `*`): compared weakly, as RFC 9110
/// §13.1.2 has it for GET.
fn none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.to_str().unwrap_or("").trim_start_matches("W/");
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
}

macro_rules! asset {
    ($path:literal, $mime:literal) => {{
        static ASSET: Asset = Asset::new(
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/web-playground/",
                $path
            )),
            $mime,
        );
        serve(&ASSET)
    }};
}

fn serve<S: Clone + Send + Sync + 'static>(asset: &'static Asset) -> MethodRouter<S> {
    get(move |headers: HeaderMap| async move { asset.serve(&headers) })
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
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
        .layer(CompressionLayer::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn if_none_match(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, value.parse().unwrap());
        headers
    }

    #[test]
    fn a_known_etag_is_not_sent_again() {
        static ASSET: Asset = Asset::new(b"console();", "text/javascript");
        let etag = ASSET.etag().to_str().unwrap().to_owned();
        assert!(etag.starts_with("W/\""));
        assert_eq!(ASSET.serve(&HeaderMap::new()).status(), StatusCode::OK);
        let strong = etag.trim_start_matches("W/");
        for known in [etag.as_str(), strong, "*", &format!("\"other\", {etag}")] {
            let response = ASSET.serve(&if_none_match(known));
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{known}");
            assert_eq!(response.headers()[ETAG], etag.as_str());
        }
        assert_eq!(
            ASSET.serve(&if_none_match("W/\"other\"")).status(),
            StatusCode::OK
        );
    }
}
