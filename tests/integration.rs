//! Integration tests: the real `switchboard` binary over real sockets, on SQLite and
//! PostgreSQL. One test binary; shared helpers live in `tests/common`.

mod common;

mod architecture;
mod auth_and_tenants;
mod calls;
mod cli_and_health;
mod conference;
mod conferences_api;
mod console_browser;
mod extensions_rest;
mod graphql_api;
mod http_errors;
mod registrar;
mod sip_edges;
mod sip_interop;
mod subscriptions;
mod tls;
mod voicemail;
